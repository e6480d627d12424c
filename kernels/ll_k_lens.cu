/* Tuned-lens training on the GPU: the row-wise steps between the cuBLAS products
 * (see ll_k_lens.h). One block per row for the row kernels; the reductions run in double,
 * as the CPU reference (host/lens/ll_tuned_lens_train.c) does, so the two paths differ only
 * by the fp32 rounding of the products. */
#include <math.h>

#include "ll_k_common.cuh"
#include "ll_k_lens.h"

#define LL_LENS_THREADS 256
#define LL_LENS_WARPS (LL_LENS_THREADS / 32)

/* Block-wide sum of a double; every thread gets it. `sh` holds LL_LENS_WARPS doubles. */
static __device__ double ll_lens_block_sum(double v, double *sh) {
    v = ll_warp_sum_d(v);
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    __syncthreads(); /* sh free from an earlier call */
    if (l == 0) sh[w] = v;
    __syncthreads();
    double s = 0;
    for (int i = 0; i < LL_LENS_WARPS; i++) s += sh[i];
    return s;
}

/* Block-wide max of a double; every thread gets it. */
static __device__ double ll_lens_block_max(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(LL_FULL_MASK, v, o));
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    __syncthreads();
    if (l == 0) sh[w] = v;
    __syncthreads();
    double m = sh[0];
    for (int i = 1; i < LL_LENS_WARPS; i++) m = fmax(m, sh[i]);
    return m;
}

static __global__ void ll_lens_widen_kernel(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __uint_as_float((uint32_t)src[i] << 16);
}

static __global__ void ll_lens_gather_kernel(float *X, float *U, const float *H, const int32_t *rows, const float *b,
                                             int d) {
    size_t k = blockIdx.x;
    const float *h = H + (size_t)rows[k] * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float x = h[i];
        X[k * d + i] = x;
        U[k * d + i] = x + b[i];
    }
}

static __global__ void __launch_bounds__(LL_LENS_THREADS)
    ll_lens_norm_fwd_kernel(float *Y, double *mu_out, double *sig_out, const float *U, const float *w,
                            const float *nb, int layer_norm, int d, float eps) {
    __shared__ double sh[LL_LENS_WARPS];
    size_t k = blockIdx.x;
    const float *u = U + k * d;
    double mu = 0;
    if (layer_norm) {
        double s = 0;
        for (int i = threadIdx.x; i < d; i += blockDim.x) s += u[i];
        mu = ll_lens_block_sum(s, sh) / d;
    }
    double v = 0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) v += ((double)u[i] - mu) * ((double)u[i] - mu);
    double sig = sqrt(ll_lens_block_sum(v, sh) / d + (double)eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        double y = ((double)u[i] - mu) / sig * w[i];
        if (nb) y += nb[i];
        Y[k * d + i] = (float)y;
    }
    if (threadIdx.x == 0) {
        mu_out[k] = mu;
        sig_out[k] = sig;
    }
}

static __global__ void __launch_bounds__(LL_LENS_THREADS)
    ll_lens_kl_kernel(double *kl, float *Z, const float *T, const int32_t *rows, int V, int grad, double inv_n) {
    __shared__ double sh[LL_LENS_WARPS];
    size_t k = blockIdx.x;
    float *z = Z + k * V;
    const float *t = T + (size_t)rows[k] * V;
    /* Log-sum-exps of both rows: maxima, then sums of exp(x - max), as the CPU does. */
    double mz = -INFINITY, mt = -INFINITY;
    for (int o = threadIdx.x; o < V; o += blockDim.x) {
        mz = fmax(mz, (double)z[o]);
        mt = fmax(mt, (double)t[o]);
    }
    mz = ll_lens_block_max(mz, sh);
    mt = ll_lens_block_max(mt, sh);
    double sz = 0, st = 0;
    for (int o = threadIdx.x; o < V; o += blockDim.x) {
        sz += exp((double)z[o] - mz);
        st += exp((double)t[o] - mt);
    }
    sz = ll_lens_block_sum(sz, sh);
    st = ll_lens_block_sum(st, sh);
    /* The logs once per row, broadcast (also keeps the kernel free of register spills). */
    __shared__ double lse[2];
    if (threadIdx.x == 0) {
        lse[0] = mz + log(sz);
        lse[1] = mt + log(st);
    }
    __syncthreads();
    double lq = lse[0], lp = lse[1];
    double acc = 0;
    for (int o = threadIdx.x; o < V; o += blockDim.x) {
        double lt = (double)t[o] - lp, lz = (double)z[o] - lq;
        double p = exp(lt), q = exp(lz);
        if (p > 0) acc += p * (lt - lz);
        if (grad) z[o] = (float)((q - p) * inv_n);
    }
    acc = ll_lens_block_sum(acc, sh);
    if (threadIdx.x == 0) kl[k] = acc;
}

static __global__ void __launch_bounds__(LL_LENS_THREADS)
    ll_lens_norm_bwd_kernel(float *GU, const float *GY, const float *U, const double *mu_in, const double *sig_in,
                            const float *w, int layer_norm, int d) {
    __shared__ double sh[LL_LENS_WARPS];
    size_t k = blockIdx.x;
    const float *gy = GY + k * d, *u = U + k * d;
    double mu = mu_in[k], sig = sig_in[k];
    double mg = 0, mgx = 0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        double g = (double)gy[i] * w[i];
        mg += g;
        mgx += g * ((double)u[i] - mu) / sig;
    }
    mg = ll_lens_block_sum(mg, sh) / d;
    mgx = ll_lens_block_sum(mgx, sh) / d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        double g = (double)gy[i] * w[i];
        double xh = ((double)u[i] - mu) / sig;
        GU[k * d + i] = (float)((g - (layer_norm ? mg : 0) - xh * mgx) / sig);
    }
}

static __global__ void ll_lens_colsum_kernel(float *db, const float *GU, int n, int d, int accumulate) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= d) return;
    double s = accumulate ? db[i] : 0;
    for (int k = 0; k < n; k++) s += GU[(size_t)k * d + i];
    db[i] = (float)s;
}

static __global__ void __launch_bounds__(LL_LENS_THREADS)
    ll_lens_decay_sq_kernel(float *g, const float *a, float wd, size_t n, double *acc) {
    __shared__ double sh[LL_LENS_WARPS];
    double s = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = g[i];
        /* Unfused, as the CPU computes it (no FMA contraction). */
        if (a) x = __fadd_rn(x, __fmul_rn(wd, a[i]));
        g[i] = x;
        s += (double)x * x;
    }
    s = ll_lens_block_sum(s, sh);
    if (threadIdx.x == 0) atomicAdd(acc, s);
}

static __global__ void ll_lens_sgd_kernel(float *x, float *v, const float *g, size_t n, const double *acc, float clip,
                                          float lr, float mom) {
    double nrm = sqrt(*acc);
    float sc = (clip > 0 && nrm > clip) ? (float)(clip / nrm) : 1.0f;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gi = __fmul_rn(g[i], sc);
        float vi = __fadd_rn(__fmul_rn(mom, v[i]), gi);
        v[i] = vi;
        x[i] = __fsub_rn(x[i], __fmul_rn(lr, __fadd_rn(gi, __fmul_rn(mom, vi))));
    }
}

extern "C" {

cudaError_t ll_k_lens_bf16_to_f32(float *dst, const uint16_t *src, size_t n, cudaStream_t s) {
    if (n == 0) return cudaSuccess;
    ll_lens_widen_kernel<<<ll_k_blocks(n, 256), 256, 0, s>>>(dst, src, n);
    return cudaGetLastError();
}

cudaError_t ll_k_lens_gather(float *X, float *U, const float *H, const int32_t *rows, const float *b, int n, int d,
                             cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    ll_lens_gather_kernel<<<n, LL_LENS_THREADS, 0, s>>>(X, U, H, rows, b, d);
    return cudaGetLastError();
}

cudaError_t ll_k_lens_norm_fwd(float *Y, double *mu, double *sig, const float *U, const float *w, const float *nb,
                               int layer_norm, int n, int d, float eps, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    ll_lens_norm_fwd_kernel<<<n, LL_LENS_THREADS, 0, s>>>(Y, mu, sig, U, w, nb, layer_norm, d, eps);
    return cudaGetLastError();
}

cudaError_t ll_k_lens_kl(double *kl, float *Z, const float *T, const int32_t *rows, int n, int V, int grad,
                         double inv_n, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    ll_lens_kl_kernel<<<n, LL_LENS_THREADS, 0, s>>>(kl, Z, T, rows, V, grad, inv_n);
    return cudaGetLastError();
}

cudaError_t ll_k_lens_norm_bwd(float *GU, const float *GY, const float *U, const double *mu, const double *sig,
                               const float *w, int layer_norm, int n, int d, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    ll_lens_norm_bwd_kernel<<<n, LL_LENS_THREADS, 0, s>>>(GU, GY, U, mu, sig, w, layer_norm, d);
    return cudaGetLastError();
}

cudaError_t ll_k_lens_colsum(float *db, const float *GU, int n, int d, int accumulate, cudaStream_t s) {
    if (d <= 0) return cudaSuccess;
    ll_lens_colsum_kernel<<<(d + 255) / 256, 256, 0, s>>>(db, GU, n, d, accumulate);
    return cudaGetLastError();
}

cudaError_t ll_k_lens_decay_sq(float *g, const float *a, float wd, size_t n, double *acc, cudaStream_t s) {
    if (n == 0) return cudaSuccess;
    unsigned blocks = ll_k_blocks(n, LL_LENS_THREADS);
    if (blocks > 1024) blocks = 1024; /* fewer atomics; the grid-stride loop covers the rest */
    ll_lens_decay_sq_kernel<<<blocks, LL_LENS_THREADS, 0, s>>>(g, a, wd, n, acc);
    return cudaGetLastError();
}

cudaError_t ll_k_lens_sgd(float *x, float *v, const float *g, size_t n, const double *acc, float clip, float lr,
                          float mom, cudaStream_t s) {
    if (n == 0) return cudaSuccess;
    ll_lens_sgd_kernel<<<ll_k_blocks(n, 256), 256, 0, s>>>(x, v, g, n, acc, clip, lr, mom);
    return cudaGetLastError();
}

} /* extern "C" */
