/* The CUDA backend: the op table's twins of host/backend/cpu, launching kernels/ and
 * cuBLAS on device 0.
 *
 * Streams and ordering: every op runs on one stream of our own (g.stream), because the
 * legacy default stream cannot be captured into a CUDA graph (the decode-graph plan in
 * docs/cuda-backend.md). It is created blocking (cudaStreamDefault), so it still
 * synchronises implicitly with the legacy default stream: the synchronous copies
 * (to_host / from_host, cudaMemcpy on the legacy stream) and events recorded on stream 0
 * by the benchmark stay ordered with the ops without any events, as before. cuBLAS is
 * bound to g.stream.
 *
 * Errors: op functions return void (the op table's contract), so each records the
 * first failure — call, op and CUDA's message — in a backend-wide slot, and sync()
 * reports it through ll_err. alloc reports out-of-memory at once, naming the bytes.
 *
 * Numerics: weights are bf16 (load_matrix converts them at upload), activations and
 * the residual stream fp32. A matmul converts its fp32 input rows to bf16 in a scratch
 * buffer and runs cublasGemmEx with bf16 operands, fp32 output and fp32 accumulation.
 *
 * Scratch buffers (bf16 inputs, index lists, attention partials) grow on demand and
 * are kept for the life of the process. Index lists that live on the host (the op
 * table's contract) reach the device through pinned staging slots (ll_stage_copy). */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../kernels/ll_kernels.h"
#include "../../core/ll_alloc.h"
#include "../../model/ll_hooks.h"
#include "ll_cuda.h"

#define LL_STREAM (g.stream) /* see "Streams and ordering" above */
/* Oldest compute capability the kernels were built for (the Makefile's CUDA_ARCH, sm_90
 * by default: -arch=sm_XY embeds that machine code and PTX newer GPUs can compile). */
#ifndef LL_CUDA_MIN_CC
#define LL_CUDA_MIN_CC 90
#endif
#define LL_POOL_KEEP ((uint64_t)2 << 30) /* bytes of freed device memory the pool keeps for reuse */
/* cuBLAS workspace: set explicitly so a GEMM recorded into a graph never allocates; 32 MiB
 * is what NVIDIA's cuBLAS notes recommend for Hopper. */
#define LL_BLAS_WS ((size_t)32 << 20)

/* ---- state and errors ------------------------------------------------------------ */

typedef struct {
    void *p;
    size_t cap;
} ll_scratch;

/* The scratch buffers a decode step uses. A graph context (ll_cuda_graph) has its own set:
 * a captured op keeps pointing to the buffers it was recorded with, so they must not be
 * grown, freed or reused by work outside the graph. */
typedef struct {
    ll_scratch xb, attn_desc, attn_part, attn_ml;
} ll_scratch_set;

static struct {
    pthread_once_t once;
    ll_status init_st;
    char init_msg[512];
    cublasHandle_t blas;
    cudaStream_t stream; /* every op, copy and allocation of this backend */
    int n_sms;
    bool pools; /* stream-ordered allocation available (else plain cudaMalloc/cudaFree) */
    ll_status st; /* first failure since the last sync */
    char msg[512];
    ll_scratch rows, src_rows, ent_out, ent_cands;
    ll_scratch attn_ko; /* knockout masks (ll_forward only; decode steps take none) */
    ll_scratch_set shared; /* the set ops use outside graph_begin / graph_end */
    ll_scratch_set *sc;    /* a graph context's set between graph_begin and graph_end; NULL: shared */
    bool capturing;        /* recording a graph: scratch must not grow (that would allocate) */
    void *blas_ws;         /* cuBLAS workspace, so cuBLAS does not allocate while recorded */
    /* The bf16 copy in xb is of x = xb_src (xb_n floats) and still current while xb_ok:
     * q, k and v (and gate and up) multiply the same normalised rows, which are then
     * converted once. Every op that writes device memory clears xb_ok. */
    const float *xb_src;
    size_t xb_n;
    bool xb_ok;
} g = {.once = PTHREAD_ONCE_INIT};

static inline void ll_xb_stale(void) { g.xb_ok = false; }
static inline ll_scratch_set *ll_sc(void) { return g.sc ? g.sc : &g.shared; }

static pthread_mutex_t ll_err_lock = PTHREAD_MUTEX_INITIALIZER;

static void ll_cu_fail(ll_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ll_cu_fail(ll_status st, const char *fmt, ...) {
    pthread_mutex_lock(&ll_err_lock);
    if (g.st == LL_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g.msg, sizeof g.msg, fmt, ap);
        va_end(ap);
        g.st = st;
    }
    pthread_mutex_unlock(&ll_err_lock);
}

/* Record a failed CUDA call; returns 1 when it failed. */
static int ll_cu_check(cudaError_t e, const char *op, const char *call) {
    if (e == cudaSuccess) return 0;
    ll_cu_fail(e == cudaErrorMemoryAllocation ? LL_ERR_NOMEM : LL_ERR_DEVICE, "CUDA %s: %s failed: %s (%s)", op,
               call, cudaGetErrorString(e), cudaGetErrorName(e));
    return 1;
}

static const char *ll_blas_name(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "error";
    }
}

static void ll_cuda_init(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(g.init_msg, sizeof g.init_msg, "CUDA backend: no usable CUDA device (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "the runtime reports none");
        g.init_st = LL_ERR_DEVICE;
        return;
    }
    struct cudaDeviceProp prop;
    if ((e = cudaSetDevice(0)) != cudaSuccess || (e = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess) {
        snprintf(g.init_msg, sizeof g.init_msg, "CUDA backend: cannot open device 0: %s", cudaGetErrorString(e));
        g.init_st = LL_ERR_DEVICE;
        return;
    }
    if (prop.major * 10 + prop.minor < LL_CUDA_MIN_CC) {
        snprintf(g.init_msg, sizeof g.init_msg,
                 "CUDA backend: device 0 (%s) is sm_%d%d, this build's kernels are for sm_%d and newer "
                 "(rebuild with make CUDA_ARCH=sm_%d%d)",
                 prop.name, prop.major, prop.minor, LL_CUDA_MIN_CC, prop.major, prop.minor);
        g.init_st = LL_ERR_UNSUPPORTED;
        return;
    }
    g.n_sms = prop.multiProcessorCount;
    /* Blocking with respect to the legacy stream on purpose (see the top of the file). */
    if ((e = cudaStreamCreateWithFlags(&g.stream, cudaStreamDefault)) != cudaSuccess) {
        snprintf(g.init_msg, sizeof g.init_msg, "CUDA backend: cannot create a stream: %s", cudaGetErrorString(e));
        g.init_st = LL_ERR_DEVICE;
        return;
    }
    int pools = 0;
    if (cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, 0) != cudaSuccess) pools = 0;
    g.pools = pools != 0; /* without pools: plain cudaMalloc / cudaFree */
    cudaMemPool_t pool;
    if (g.pools && cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) {
        uint64_t keep = LL_POOL_KEEP;
        cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep); /* a hint: failure is harmless */
    }
    cudaGetLastError();
    cublasStatus_t bs = cublasCreate(&g.blas);
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(g.blas, LL_STREAM);
    /* After cublasSetStream, which resets the workspace to cuBLAS's own pool. */
    if (bs == CUBLAS_STATUS_SUCCESS) {
        if ((e = cudaMalloc(&g.blas_ws, LL_BLAS_WS)) != cudaSuccess) {
            snprintf(g.init_msg, sizeof g.init_msg,
                     "CUDA backend: cannot allocate the cuBLAS workspace (%zu bytes): %s", LL_BLAS_WS,
                     cudaGetErrorString(e));
            cudaGetLastError();
            cublasDestroy(g.blas);
            cudaStreamDestroy(g.stream);
            g.init_st = LL_ERR_DEVICE;
            return;
        }
        bs = cublasSetWorkspace(g.blas, g.blas_ws, LL_BLAS_WS);
    }
    if (bs != CUBLAS_STATUS_SUCCESS) {
        snprintf(g.init_msg, sizeof g.init_msg, "CUDA backend: cuBLAS initialisation failed: %s", ll_blas_name(bs));
        /* the backend stays unusable; nothing else holds these */
        if (g.blas) cublasDestroy(g.blas);
        if (g.blas_ws) cudaFree(g.blas_ws);
        cudaStreamDestroy(g.stream);
        g.init_st = LL_ERR_DEVICE;
        return;
    }
    g.init_st = LL_OK;
}

static ll_status ll_cuda_sync(void) {
    cudaError_t e = cudaDeviceSynchronize();
    ll_cu_check(e, "sync", "cudaDeviceSynchronize");
    pthread_mutex_lock(&ll_err_lock);
    ll_status st = g.st;
    char msg[sizeof g.msg];
    memcpy(msg, g.msg, sizeof msg);
    g.st = LL_OK;
    g.msg[0] = 0;
    pthread_mutex_unlock(&ll_err_lock);
    if (st) return ll_err(st, "%s", msg);
    return LL_OK;
}

/* ---- memory ----------------------------------------------------------------------- */

/* Device memory comes from the stream-ordered allocator (cudaMallocAsync on the one
 * stream we use): the forward pass allocates and frees its activations on every call,
 * and a plain cudaFree would wait for the whole device each time, stalling a decode
 * loop. Freed memory stays in the pool up to LL_POOL_KEEP bytes for the next call; the
 * rest goes back to the device at the next synchronisation. */

static void *ll_cuda_alloc_named(size_t bytes, const char *what) {
    void *p = NULL;
    cudaError_t e = g.pools ? cudaMallocAsync(&p, bytes ? bytes : 4, LL_STREAM) : cudaMalloc(&p, bytes ? bytes : 4);
    if (e == cudaSuccess) return p;
    cudaGetLastError(); /* allocation failures are not sticky: clear it for the next call */
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    cudaGetLastError();
    ll_err(e == cudaErrorMemoryAllocation ? LL_ERR_NOMEM : LL_ERR_DEVICE,
           "CUDA: cannot allocate %s: asked for %zu bytes (%.1f MiB), %.1f MiB free of %.1f MiB on the device (%s)",
           what, bytes, bytes / 1048576.0, fr / 1048576.0, tot / 1048576.0, cudaGetErrorString(e));
    return NULL;
}

static void *ll_cuda_alloc(size_t bytes) { return ll_cuda_alloc_named(bytes, "device buffer"); }

static void ll_cuda_free(void *p) {
    ll_xb_stale();
    if (p) ll_cu_check(g.pools ? cudaFreeAsync(p, LL_STREAM) : cudaFree(p), "free", "cudaFree");
}

static void ll_cuda_to_host(void *dst, const void *src, size_t bytes) {
    if (bytes) ll_cu_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "to_host", "cudaMemcpy");
}

static void ll_cuda_from_host(void *dst, const void *src, size_t bytes) {
    ll_xb_stale();
    if (bytes) ll_cu_check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "from_host", "cudaMemcpy");
}

static void *ll_cuda_host_alloc(size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaHostAlloc(&p, bytes ? bytes : 4, cudaHostAllocDefault);
    if (e == cudaSuccess) return p;
    cudaGetLastError();
    ll_err(LL_ERR_NOMEM, "CUDA: cannot allocate %zu bytes of page-locked host memory for recording (%s)", bytes,
           cudaGetErrorString(e));
    return NULL;
}

static void ll_cuda_host_free(void *p) {
    if (p) ll_cu_check(cudaFreeHost(p), "host_free", "cudaFreeHost");
}

static void ll_cuda_to_host_async(void *dst, const void *src, size_t bytes) {
    if (bytes)
        ll_cu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, LL_STREAM), "to_host_async",
                    "cudaMemcpyAsync");
}

static void ll_cuda_copy(void *dst, const void *src, size_t bytes) {
    ll_xb_stale();
    if (bytes)
        ll_cu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, LL_STREAM), "copy", "cudaMemcpyAsync");
}

static void ll_cuda_zero(void *dst, size_t bytes) {
    ll_xb_stale();
    if (bytes) ll_cu_check(cudaMemsetAsync(dst, 0, bytes, LL_STREAM), "zero", "cudaMemsetAsync");
}

/* Grow a scratch buffer to at least `bytes`. The old one is freed stream-ordered, after
 * the work already queued on it. NULL on failure (recorded). */
static void *ll_scratch_get(ll_scratch *s, size_t bytes, const char *what) {
    if (s->cap >= bytes && s->p) return s->p;
    if (g.capturing) {
        /* Growing would free a buffer earlier recorded ops point to, and allocate inside
         * the graph: the eager run before the capture should have sized it. */
        ll_cu_fail(LL_ERR_DEVICE, "CUDA graph capture: the %s scratch (%zu bytes) would have to grow to %zu bytes "
                                    "while recording", what, s->cap, bytes);
        return NULL;
    }
    if (s->p) {
        ll_cuda_free(s->p);
        s->p = NULL;
        s->cap = 0;
    }
    size_t want = bytes + bytes / 4 + 256; /* headroom so slowly growing T does not reallocate each call */
    s->p = ll_cuda_alloc_named(want, what);
    if (!s->p) {
        ll_cu_fail(LL_ERR_NOMEM, "%s", ll_last_error());
        return NULL;
    }
    s->cap = want;
    return s->p;
}

/* Small host -> device uploads (index lists, attention descriptors) go through a ring
 * of pinned staging slots, so the copy is truly asynchronous: a copy from pageable
 * memory would first wait for all queued work, once per call, and leave the GPU idle
 * while the host prepares the next op. A slot is reused only after the event recorded
 * behind its last copy has fired. */
#define LL_STAGE_SLOTS 64
static struct {
    void *buf[LL_STAGE_SLOTS];
    size_t cap[LL_STAGE_SLOTS];
    cudaEvent_t ev[LL_STAGE_SLOTS];
    int used[LL_STAGE_SLOTS];
    int next;
} ll_stage;

static int ll_stage_copy(void *dst, const void *host, size_t bytes, const char *what) {
    int i = ll_stage.next;
    ll_stage.next = (i + 1) % LL_STAGE_SLOTS;
    if (!ll_stage.ev[i] && ll_cu_check(cudaEventCreateWithFlags(&ll_stage.ev[i], cudaEventDisableTiming), what,
                                       "cudaEventCreate"))
        return -1;
    if (ll_stage.used[i] && ll_cu_check(cudaEventSynchronize(ll_stage.ev[i]), what, "cudaEventSynchronize")) return -1;
    if (ll_stage.cap[i] < bytes) {
        if (ll_stage.buf[i] && ll_cu_check(cudaFreeHost(ll_stage.buf[i]), what, "cudaFreeHost")) return -1;
        ll_stage.buf[i] = NULL;
        ll_stage.cap[i] = 0;
        size_t want = bytes < 4096 ? 4096 : bytes + bytes / 2;
        if (ll_cu_check(cudaHostAlloc(&ll_stage.buf[i], want, cudaHostAllocDefault), what, "cudaHostAlloc")) return -1;
        ll_stage.cap[i] = want;
    }
    memcpy(ll_stage.buf[i], host, bytes);
    if (ll_cu_check(cudaMemcpyAsync(dst, ll_stage.buf[i], bytes, cudaMemcpyHostToDevice, LL_STREAM), what,
                    "cudaMemcpyAsync"))
        return -1;
    if (ll_cu_check(cudaEventRecord(ll_stage.ev[i], LL_STREAM), what, "cudaEventRecord")) return -1;
    ll_stage.used[i] = 1;
    return 0;
}

/* Host list -> device scratch, staged; the caller may reuse its array at once. */
static const void *ll_upload_list(ll_scratch *s, const void *host, size_t bytes, const char *what) {
    void *d = ll_scratch_get(s, bytes, what);
    if (!d) return NULL;
    return ll_stage_copy(d, host, bytes, what) ? NULL : d;
}

/* ---- weights ---------------------------------------------------------------------- */

/* Host fp32 [out][in] view of src -> bf16 dense [out][in], converted here on the host
 * (the upload is bandwidth-bound either way, and the host copy may not fit the device). */
static ll_status ll_cuda_load_matrix(ll_mat *dst, void **owned, const ll_mat *src, const char *what) {
    ll_xb_stale();
    *owned = NULL;
    if (src->dtype != LL_F32 || !src->w)
        return ll_err(LL_ERR_ARG, "CUDA upload of %s: expected host fp32 weights", what);
    size_t out = (size_t)src->out, in = (size_t)src->in, n;
    if (ll_mul_size(out, in, &n) || n > SIZE_MAX / 2) return ll_err(LL_ERR_NOMEM, "CUDA upload of %s: too large", what);
    uint16_t *host = malloc(n ? n * 2 : 2);
    if (!host) return ll_err(LL_ERR_NOMEM, "CUDA upload of %s: no host memory for %zu bytes of bf16", what, n * 2);
    const float *w = src->w;
    size_t ld = (size_t)src->ld;
    if (src->trans) {
#pragma omp parallel for schedule(static) if (n > (1u << 20))
        for (size_t o = 0; o < out; o++)
            for (size_t i = 0; i < in; i++) host[o * in + i] = ll_f32_to_bf16(w[o * ld + i]);
    } else {
        /* Conv1D [in][out]: transpose in 64 x 64 tiles so both sides stay in cache. */
#pragma omp parallel for schedule(static) if (n > (1u << 20))
        for (size_t o0 = 0; o0 < out; o0 += 64)
            for (size_t i0 = 0; i0 < in; i0 += 64)
                for (size_t i = i0; i < in && i < i0 + 64; i++)
                    for (size_t o = o0; o < out && o < o0 + 64; o++) host[o * in + i] = ll_f32_to_bf16(w[i * ld + o]);
    }
    char name[160];
    snprintf(name, sizeof name, "%s (%zu x %zu bf16)", what, out, in);
    void *d = ll_cuda_alloc_named(n * 2, name);
    if (!d) {
        free(host);
        return LL_ERR_NOMEM;
    }
    cudaError_t e = cudaMemcpy(d, host, n * 2, cudaMemcpyHostToDevice);
    free(host);
    if (e != cudaSuccess) {
        ll_cuda_free(d);
        return ll_err(LL_ERR_DEVICE, "CUDA upload of %s: cudaMemcpy failed: %s", what, cudaGetErrorString(e));
    }
    *dst = (ll_mat){.w = d, .out = src->out, .in = src->in, .ld = src->in, .trans = true, .dtype = LL_BF16};
    *owned = d;
    return LL_OK;
}

/* ---- ops -------------------------------------------------------------------------- */

#define LL_LAUNCH(op, expr) ll_cu_check((expr), op, "kernel launch")

static void ll_cuda_embed(float *x, const float *tok_emb, const float *pos_emb, const int32_t *tokens,
                          const int32_t *pos, int T, int d) {
    ll_xb_stale();
    /* The table is bf16 [vocab][d] here (see ll_backend.h): load_matrix stored it dense. */
    LL_LAUNCH("embed", ll_k_embed(x, (const uint16_t *)tok_emb, d, pos_emb, tokens, pos, T, d, LL_STREAM));
}

void ll_cuda_matmul_bf16(float *y, const uint16_t *xb, const ll_mat *w, int T, float beta) {
    const float alpha = 1.0f;
    /* Row-major y[T][out] = x[T][in] . W[out][in]^T is, read column-major,
     * Y'(out x T) = W'(in x out)^T . X'(in x T): op(A) = T on W, op(B) = N on x. */
    cublasStatus_t s = cublasGemmEx(g.blas, CUBLAS_OP_T, CUBLAS_OP_N, w->out, T, w->in, &alpha, w->w, CUDA_R_16BF,
                                    w->ld, xb, CUDA_R_16BF, w->in, &beta, y, CUDA_R_32F, w->out, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS)
        ll_cu_fail(LL_ERR_DEVICE, "CUDA matmul: cublasGemmEx (%d x %d x %d, bf16 -> fp32) failed: %s", T, w->out,
                   w->in, ll_blas_name(s));
}

static void ll_cuda_matmul(float *y, const float *x, const ll_mat *w, const float *bias, int T, bool accumulate) {
    if (T <= 0) return;
    if (w->dtype != LL_BF16 || !w->trans || w->ld < w->in) {
        ll_cu_fail(LL_ERR_ARG, "CUDA matmul: weight %d x %d is not an uploaded bf16 matrix (was the model moved "
                               "with ll_model_use_backend?)", w->out, w->in);
        return;
    }
    size_t n = (size_t)T * (size_t)w->in;
    uint16_t *xb;
    if (g.xb_ok && g.xb_src == x && g.xb_n == n) {
        xb = ll_sc()->xb.p; /* the same rows as the previous matmul, nothing written since */
    } else {
        g.xb_ok = false;
        if (!(xb = ll_scratch_get(&ll_sc()->xb, n * 2, "matmul bf16 input"))) return;
        if (LL_LAUNCH("matmul", ll_k_f32_to_bf16(xb, x, n, LL_STREAM))) return;
        g.xb_src = x;
        g.xb_n = n;
        g.xb_ok = true;
    }
    /* The product (and a bias seed) writes y: if y overlaps x the copy is stale after. */
    if ((const float *)y < x + n && x < (const float *)y + (size_t)T * (size_t)w->out) g.xb_ok = false;
    float beta = accumulate ? 1.0f : 0.0f;
    if (bias) {
        /* Seed the output with the bias so the GEMM adds the product to it (beta = 1). */
        if (LL_LAUNCH("matmul bias", ll_k_bias_rows(y, bias, T, w->out, accumulate, LL_STREAM))) return;
        beta = 1.0f;
    }
    ll_cuda_matmul_bf16(y, xb, w, T, beta);
}

/* Ops whose output is normally the next matmul's input (norms, MLP activations) write its
 * bf16 copy into the xb scratch as they go and mark it current for y, so that matmul skips
 * its conversion pass. NULL (no copy) when the scratch cannot grow: the matmul converts. */
static uint16_t *ll_xb_for(const float *y, size_t n) {
    g.xb_ok = false;
    ll_scratch *xb = &ll_sc()->xb;
    if (xb->cap < n * 2) {
        ll_scratch_get(xb, n * 2, "bf16 activations");
        if (!xb->p) return NULL;
    }
    return xb->p;
}

static void ll_xb_written(const float *y, size_t n, cudaError_t launch) {
    if (launch != cudaSuccess) return;
    g.xb_src = y;
    g.xb_n = n;
    g.xb_ok = true;
}

static void ll_cuda_rmsnorm(float *y, const float *x, const float *w, int T, int d, float eps) {
    size_t n = (size_t)T * (size_t)d;
    uint16_t *yb = ll_xb_for(y, n);
    cudaError_t e = ll_k_rmsnorm(y, yb, x, w, T, d, eps, LL_STREAM);
    if (!LL_LAUNCH("rmsnorm", e) && yb) ll_xb_written(y, n, e);
}

static void ll_cuda_layernorm(float *y, const float *x, const float *w, const float *b, int T, int d, float eps) {
    size_t n = (size_t)T * (size_t)d;
    uint16_t *yb = ll_xb_for(y, n);
    cudaError_t e = ll_k_layernorm(y, yb, x, w, b, T, d, eps, LL_STREAM);
    if (!LL_LAUNCH("layernorm", e) && yb) ll_xb_written(y, n, e);
}

static void ll_cuda_add_norm(float *x, float *y, const float *o, const float *w, const float *b, bool layer, int T,
                             int d, float eps) {
    size_t n = (size_t)T * (size_t)d;
    uint16_t *yb = ll_xb_for(y, n);
    cudaError_t e = ll_k_add_norm(x, y, yb, o, w, b, layer ? 1 : 0, T, d, eps, LL_STREAM);
    if (!LL_LAUNCH("add_norm", e) && yb) ll_xb_written(y, n, e);
}

static void ll_cuda_rope(float *x, const int32_t *pos, int T, int n_heads, int head_dim, const float *inv_freq,
                         ll_rope_layout layout) {
    ll_xb_stale();
    LL_LAUNCH("rope", ll_k_rope(x, pos, T, n_heads, head_dim, inv_freq, (int)layout, LL_STREAM));
}

static void ll_cuda_swiglu(float *out, const float *gate, const float *up, size_t n) {
    uint16_t *ob = ll_xb_for(out, n);
    cudaError_t e = ll_k_swiglu(out, ob, gate, up, n, LL_STREAM);
    if (!LL_LAUNCH("swiglu", e) && ob) ll_xb_written(out, n, e);
}

static void ll_cuda_gelu_new(float *x, size_t n) {
    uint16_t *xb = ll_xb_for(x, n);
    cudaError_t e = ll_k_gelu_new(x, xb, n, LL_STREAM);
    if (!LL_LAUNCH("gelu_new", e) && xb) ll_xb_written(x, n, e);
}

static void ll_cuda_add(float *y, const float *x, size_t n) {
    ll_xb_stale();
    LL_LAUNCH("add", ll_k_add(y, x, n, LL_STREAM));
}

static void ll_cuda_to_bf16(uint16_t *dst, const float *src, size_t n) {
    ll_xb_stale();
    LL_LAUNCH("to_bf16", ll_k_f32_to_bf16(dst, src, n, LL_STREAM));
}

static void ll_cuda_gather_rows(float *dst, const float *src, const int64_t *rows, int n, int width) {
    ll_xb_stale();
    if (n <= 0) return;
    const int64_t *dr = ll_upload_list(&g.rows, rows, (size_t)n * sizeof *rows, "gather_rows index list");
    if (dr) LL_LAUNCH("gather_rows", ll_k_gather_rows(dst, src, dr, n, width, LL_STREAM));
}

static void ll_cuda_scatter_rows(float *dst, const float *src, const int64_t *rows, int n, int width) {
    ll_xb_stale();
    if (n <= 0) return;
    const int64_t *dr = ll_upload_list(&g.rows, rows, (size_t)n * sizeof *rows, "scatter_rows index list");
    if (dr) LL_LAUNCH("scatter_rows", ll_k_scatter_rows(dst, src, dr, n, width, LL_STREAM));
}

/* The patch kernel's op numbers are ll_patch_op's. */
_Static_assert(LL_K_PATCH_REPLACE == (int)LL_PATCH_REPLACE && LL_K_PATCH_ADD == (int)LL_PATCH_ADD &&
                   LL_K_PATCH_ZERO == (int)LL_PATCH_ZERO && LL_K_PATCH_COPY_ROW == (int)LL_PATCH_COPY_ROW,
               "kernels/ll_kernels.h and host/model/ll_hooks.h disagree on the patch ops");

static void ll_cuda_patch_rows(float *out, double *sq, const float *buf, int width, const int64_t *rows,
                               const int64_t *src_rows, const float *src, int n, int off, int w, int op) {
    ll_xb_stale();
    if (n <= 0) return;
    /* Two index lists in flight at once: each needs its own scratch (a second upload into
     * the same one would overwrite the first before the kernel reads it). */
    const int64_t *dr = ll_upload_list(&g.rows, rows, (size_t)n * sizeof *rows, "patch target rows");
    if (!dr) return;
    const int64_t *ds = NULL;
    if (op == LL_PATCH_COPY_ROW &&
        !(ds = ll_upload_list(&g.src_rows, src_rows, (size_t)n * sizeof *src_rows, "patch source rows")))
        return;
    LL_LAUNCH("patch_rows", ll_k_patch_rows(out, sq, buf, width, dr, ds, src, n, off, w, op, LL_STREAM));
}

/* Key-range splits for a launch of `blocks` blocks whose tiles see up to max_keys keys:
 * enough blocks for two waves over the SMs, each split at least 4 chunks long. */
int ll_cuda_attn_splits(int blocks, int max_keys, int n_sms) {
    int chunks = (max_keys + LL_ATT_KC - 1) / LL_ATT_KC;
    if (blocks >= n_sms || chunks < 8) return 1;
    int want = (2 * n_sms + blocks - 1) / blocks;
    int most = chunks / 4;
    if (want > most) want = most;
    if (want > 64) want = 64;
    return want < 1 ? 1 : want;
}

/* Knockout tables (host, ll_attn_knock) -> one device blob: per sequence with knockouts,
 * its row table then its masks; the descriptors get device pointers into it. Nonzero
 * (error recorded) on failure. */
static int ll_cuda_knock_upload(const ll_attn_args *a, ll_k_attn_seq *seqs) {
    const ll_attn_knock *ko = a->knock;
    size_t words = 0; /* 4-byte words in the blob */
    for (int s = 0; s < a->n_seq; s++)
        if (ko->row_mask[s])
            words += (size_t)a->n_heads * (size_t)seqs[s].n_new + (size_t)ko->n_masks[s] * (size_t)ko->words[s];
    if (!words) return 0;
    uint32_t *blob = malloc(words * 4);
    if (!blob) {
        ll_cu_fail(LL_ERR_NOMEM, "CUDA attention: no host memory for %zu bytes of knockout masks", words * 4);
        return -1;
    }
    size_t off = 0;
    size_t *at = calloc((size_t)a->n_seq, sizeof *at);
    if (!at) {
        free(blob);
        ll_cu_fail(LL_ERR_NOMEM, "CUDA attention: no host memory for knockout offsets");
        return -1;
    }
    for (int s = 0; s < a->n_seq; s++) {
        if (!ko->row_mask[s]) continue;
        size_t nr = (size_t)a->n_heads * (size_t)seqs[s].n_new, nm = (size_t)ko->n_masks[s] * (size_t)ko->words[s];
        at[s] = off;
        memcpy(blob + off, ko->row_mask[s], nr * 4);
        if (nm) memcpy(blob + off + nr, ko->mask[s], nm * 4);
        off += nr + nm;
    }
    const uint32_t *dev = ll_upload_list(&g.attn_ko, blob, words * 4, "attention knockout masks");
    if (dev)
        for (int s = 0; s < a->n_seq; s++) {
            if (!ko->row_mask[s]) continue;
            seqs[s].ko_row = (const int32_t *)(dev + at[s]);
            seqs[s].ko_mask = dev + at[s] + (size_t)a->n_heads * (size_t)seqs[s].n_new;
            seqs[s].ko_words = ko->words[s];
        }
    free(at);
    free(blob);
    return dev ? 0 : -1;
}

static void ll_cuda_attention(const ll_attn_args *a) {
    ll_xb_stale();
    if (a->T <= 0) return;
    if (a->head_dim > LL_ATT_MAX_HD || a->head_dim <= 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads) {
        ll_cu_fail(LL_ERR_UNSUPPORTED, "CUDA attention: head_dim %d with %d/%d heads is not supported (head_dim <= %d)",
                   a->head_dim, a->n_heads, a->n_kv_heads, LL_ATT_MAX_HD);
        return;
    }
    /* Which kernel: the SIMT one (tiles of LL_ATT_ROWS rows, key splits for decode), or with
     * LL_ATTN=tc in the environment the tensor-core one where it applies (head_dim 64/128,
     * no splits wanted). */
    int64_t n_tiles = 0, n_tiles_tc = 0;
    int max_keys = 0;
    for (int s = 0; s < a->n_seq; s++) {
        int n_new = (int)(a->seq_off[s + 1] - a->seq_off[s]);
        int nk = n_new + (a->n_past ? a->n_past[s] : 0);
        if (nk > max_keys) max_keys = nk;
        n_tiles += (n_new + LL_ATT_ROWS - 1) / LL_ATT_ROWS;
        n_tiles_tc += (n_new + LL_ATT_TC_ROWS - 1) / LL_ATT_TC_ROWS;
    }
    int n_split = ll_cuda_attn_splits((int)(n_tiles * a->n_heads), max_keys, g.n_sms);
    const char *mode = getenv("LL_ATTN");
    bool tc = mode && !strcmp(mode, "tc") && n_split == 1 && ll_k_attention_tc_supported(a->head_dim);
    int rows_per_tile = tc ? LL_ATT_TC_ROWS : LL_ATT_ROWS;
    if (tc) n_tiles = n_tiles_tc;
    /* Host descriptors: one per sequence, then one per tile of rows_per_tile rows. */
    size_t seq_bytes = (size_t)a->n_seq * sizeof(ll_k_attn_seq);
    seq_bytes = (seq_bytes + 15) & ~(size_t)15; /* tiles start 16-byte aligned */
    size_t bytes = seq_bytes + (size_t)n_tiles * sizeof(ll_k_attn_tile);
    unsigned char *host = malloc(bytes);
    if (!host) {
        ll_cu_fail(LL_ERR_NOMEM, "CUDA attention: no host memory for %zu bytes of descriptors", bytes);
        return;
    }
    ll_k_attn_seq *seqs = (ll_k_attn_seq *)host;
    ll_k_attn_tile *tiles = (ll_k_attn_tile *)(host + seq_bytes);
    int64_t ti = 0;
    for (int s = 0; s < a->n_seq; s++) {
        int n_new = (int)(a->seq_off[s + 1] - a->seq_off[s]);
        seqs[s] = (ll_k_attn_seq){.row0 = a->seq_off[s], .n_new = n_new, .n_past = a->n_past ? a->n_past[s] : 0,
                                  .k = a->k[s], .v = a->v[s], .pattern = a->pattern ? a->pattern[s] : NULL};
        for (int r0 = 0; r0 < n_new; r0 += rows_per_tile) tiles[ti++] = (ll_k_attn_tile){.seq = s, .r0 = r0};
    }
    if (a->knock && ll_cuda_knock_upload(a, seqs)) goto out;
    const unsigned char *dev = ll_upload_list(&ll_sc()->attn_desc, host, bytes, "attention descriptors");
    ll_k_attn_params p = {.q = a->q, .z = a->z, .T = a->T, .n_heads = a->n_heads, .n_kv_heads = a->n_kv_heads,
                          .head_dim = a->head_dim, .kv_stride = a->kv_stride, .sliding_window = a->sliding_window,
                          .scale = a->scale, .n_tiles = (int)n_tiles, .n_split = 1};
    if (!dev) goto out;
    p.seqs = (const ll_k_attn_seq *)dev;
    p.tiles = (const ll_k_attn_tile *)(dev + seq_bytes);
    if (n_tiles * a->n_heads > 0) {
        p.n_split = n_split;
        /* Splits cost a partial-state buffer; only decode-sized batches use them. */
        if (p.n_split > 1) {
            size_t pb = (size_t)p.n_split * (size_t)a->T * a->n_heads * (size_t)(a->head_dim + 2) * sizeof(float);
            p.part = ll_scratch_get(&ll_sc()->attn_part, pb, "attention split partials");
            if (!p.part) goto out;
        }
    }
    p.ml = ll_scratch_get(&ll_sc()->attn_ml, (size_t)a->T * a->n_heads * 2 * sizeof(float), "attention row statistics");
    if (!p.ml) goto out;
    if (LL_LAUNCH("attention", tc ? ll_k_attention_tc(&p, LL_STREAM) : ll_k_attention(&p, LL_STREAM))) goto out;
    if (a->pattern)
        for (int s = 0; s < a->n_seq; s++)
            if (seqs[s].pattern && LL_LAUNCH("attention pattern", ll_k_attn_pattern(&p, &seqs[s], LL_STREAM))) break;
out:
    free(host);
}

/* ---- decode steps and graphs ----------------------------------------------------- */

static void ll_cuda_kv_append(float *k_dst, float *v_dst, const float *k_src, const float *v_src, const int32_t *pos,
                              int width) {
    ll_xb_stale();
    LL_LAUNCH("kv_append", ll_k_kv_append(k_dst, v_dst, k_src, v_src, pos, width, LL_STREAM));
}

/* One query row at key index *pos. The descriptor is written on the device from *pos and
 * the key splits are sized for max_keys, so the launch is the same for every position:
 * splits beyond the live keys find no chunk, leave m = -inf, and the combine skips them. */
static void ll_cuda_attention_at(const ll_attn_args *a, const int32_t *pos, int max_keys) {
    ll_xb_stale();
    if (a->head_dim > LL_ATT_MAX_HD || a->head_dim <= 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads) {
        ll_cu_fail(LL_ERR_UNSUPPORTED, "CUDA attention: head_dim %d with %d/%d heads is not supported (head_dim <= %d)",
                   a->head_dim, a->n_heads, a->n_kv_heads, LL_ATT_MAX_HD);
        return;
    }
    ll_scratch_set *sc = ll_sc();
    size_t seq_bytes = (sizeof(ll_k_attn_seq) + 15) & ~(size_t)15; /* the tile 16-byte aligned, as in attention */
    unsigned char *desc = ll_scratch_get(&sc->attn_desc, seq_bytes + sizeof(ll_k_attn_tile), "attention descriptors");
    if (!desc) return;
    ll_k_attn_seq *seq = (ll_k_attn_seq *)desc;
    ll_k_attn_tile *tile = (ll_k_attn_tile *)(desc + seq_bytes);
    if (LL_LAUNCH("attention_at descriptor", ll_k_attn_decode_desc(seq, tile, a->k[0], a->v[0], pos, LL_STREAM)))
        return;
    ll_k_attn_params p = {.q = a->q, .z = a->z, .T = 1, .n_heads = a->n_heads, .n_kv_heads = a->n_kv_heads,
                          .head_dim = a->head_dim, .kv_stride = a->kv_stride, .sliding_window = a->sliding_window,
                          .scale = a->scale, .seqs = seq, .tiles = tile, .n_tiles = 1,
                          .n_split = ll_cuda_attn_splits(a->n_heads, max_keys, g.n_sms)};
    if (p.n_split > 1) {
        size_t pb = (size_t)p.n_split * a->n_heads * (size_t)(a->head_dim + 2) * sizeof(float);
        if (!(p.part = ll_scratch_get(&sc->attn_part, pb, "attention split partials"))) return;
    }
    p.ml = ll_scratch_get(&sc->attn_ml, (size_t)a->n_heads * 2 * sizeof(float), "attention row statistics");
    if (!p.ml) return;
    LL_LAUNCH("attention_at", ll_k_attention(&p, LL_STREAM));
}

/* A recorded decode step: its graph and the scratch its ops point to. */
typedef struct {
    ll_scratch_set sc;
    cudaGraphExec_t exec;
} ll_cuda_graph;

static void *ll_cuda_graph_new(void) {
    ll_cuda_graph *c = calloc(1, sizeof *c);
    if (!c) ll_err(LL_ERR_NOMEM, "CUDA graph: no host memory for a context");
    return c;
}

static void ll_cuda_graph_free(void *ctx) {
    ll_cuda_graph *c = ctx;
    if (!c) return;
    if (g.sc == &c->sc) g.sc = NULL; /* freed between begin and end (after a failure): back to shared */
    if (c->exec) ll_cu_check(cudaGraphExecDestroy(c->exec), "graph_free", "cudaGraphExecDestroy");
    ll_scratch *all[] = {&c->sc.xb, &c->sc.attn_desc, &c->sc.attn_part, &c->sc.attn_ml};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i]->p) ll_cuda_free(all[i]->p);
    free(c);
}

static ll_status ll_cuda_graph_begin(void *ctx, bool capture) {
    ll_cuda_graph *c = ctx;
    if (g.sc) return ll_err(LL_ERR_ARG, "CUDA graph: graph_begin while another graph context is in use");
    g.sc = &c->sc;
    ll_xb_stale(); /* the bf16 copy in the shared scratch is not this set's */
    if (!capture) return LL_OK;
    /* Thread-local mode: only this thread's unsafe calls (synchronous copies, allocation)
     * invalidate the recording, not other threads' work. */
    cudaError_t e = cudaStreamBeginCapture(LL_STREAM, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        g.sc = NULL;
        return ll_err(LL_ERR_DEVICE, "CUDA graph: cudaStreamBeginCapture failed: %s", cudaGetErrorString(e));
    }
    g.capturing = true;
    return LL_OK;
}

static ll_status ll_cuda_graph_end(void *ctx) {
    ll_cuda_graph *c = ctx;
    if (g.capturing) {
        g.capturing = false;
        cudaGraph_t graph = NULL;
        cudaError_t e = cudaStreamEndCapture(LL_STREAM, &graph);
        if (!ll_cu_check(e, "graph capture", "cudaStreamEndCapture")) {
            if (c->exec) {
                ll_cu_check(cudaGraphExecDestroy(c->exec), "graph capture", "cudaGraphExecDestroy");
                c->exec = NULL;
            }
            if (ll_cu_check(cudaGraphInstantiate(&c->exec, graph, 0), "graph capture", "cudaGraphInstantiate"))
                c->exec = NULL;
        }
        if (graph) ll_cu_check(cudaGraphDestroy(graph), "graph capture", "cudaGraphDestroy"); /* exec keeps its copy */
    }
    g.sc = NULL;
    ll_xb_stale();
    return ll_cuda_sync();
}

static ll_status ll_cuda_graph_launch(void *ctx) {
    ll_cuda_graph *c = ctx;
    if (!c->exec) return ll_err(LL_ERR_ARG, "CUDA graph: nothing recorded to launch");
    ll_xb_stale(); /* the graph writes device memory */
    cudaError_t e = cudaGraphLaunch(c->exec, LL_STREAM);
    if (e != cudaSuccess) return ll_err(LL_ERR_DEVICE, "CUDA graph: cudaGraphLaunch failed: %s", cudaGetErrorString(e));
    return LL_OK;
}

static void ll_cuda_entropy(ll_entropy_row *out, const float *logits, int R, int V, int k, const int32_t *cands,
                            int n_cand) {
    if (R <= 0) return;
    const int32_t *dc = NULL;
    if (cands && n_cand > 0) {
        dc = ll_upload_list(&g.ent_cands, cands, (size_t)n_cand * sizeof *cands, "entropy candidate ids");
        if (!dc) return;
    }
    ll_entropy_row *d = ll_scratch_get(&g.ent_out, (size_t)R * sizeof *d, "entropy rows");
    if (!d) return;
    if (LL_LAUNCH("entropy", ll_k_entropy(d, logits, R, V, k, dc, dc ? n_cand : 0, LL_STREAM))) return;
    ll_cuda_to_host(out, d, (size_t)R * sizeof *d);
}

static const ll_backend ll_cuda_table = {
    .name = "cuda",
    .host_memory = false,
    .alloc = ll_cuda_alloc,
    .free = ll_cuda_free,
    .to_host = ll_cuda_to_host,
    .from_host = ll_cuda_from_host,
    .copy = ll_cuda_copy,
    .zero = ll_cuda_zero,
    .sync = ll_cuda_sync,
    .load_matrix = ll_cuda_load_matrix,
    .host_alloc = ll_cuda_host_alloc,
    .host_free = ll_cuda_host_free,
    .to_host_async = ll_cuda_to_host_async,
    .embed = ll_cuda_embed,
    .matmul = ll_cuda_matmul,
    .rmsnorm = ll_cuda_rmsnorm,
    .layernorm = ll_cuda_layernorm,
    .add_norm = ll_cuda_add_norm,
    .rope = ll_cuda_rope,
    .attention = ll_cuda_attention,
    .swiglu = ll_cuda_swiglu,
    .gelu_new = ll_cuda_gelu_new,
    .add = ll_cuda_add,
    .to_bf16 = ll_cuda_to_bf16,
    .gather_rows = ll_cuda_gather_rows,
    .scatter_rows = ll_cuda_scatter_rows,
    .patch_rows = ll_cuda_patch_rows,
    .entropy = ll_cuda_entropy,
    .kv_append = ll_cuda_kv_append,
    .attention_at = ll_cuda_attention_at,
    .graph_new = ll_cuda_graph_new,
    .graph_free = ll_cuda_graph_free,
    .graph_begin = ll_cuda_graph_begin,
    .graph_end = ll_cuda_graph_end,
    .graph_launch = ll_cuda_graph_launch,
};

const ll_backend *ll_backend_cuda(void) {
    pthread_once(&g.once, ll_cuda_init);
    if (g.init_st) {
        ll_err(g.init_st, "%s", g.init_msg);
        return NULL;
    }
    return &ll_cuda_table;
}

int ll_cuda_n_sms(void) { return g.n_sms; }
