/* The GPU ridge path (see host/lspade/ll_ridge_gpu.h): cuBLAS fp64 Grams, cuSOLVER Cholesky.
 * libcusolver is opened at run time (dlopen), not linked: a GPU machine whose CUDA libraries
 * come without cuSOLVER (e.g. only PyTorch's cuBLAS wheel) still runs every other command. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "lspade/ll_ridge_gpu.h"

static struct {
    cusolverStatus_t (*create)(cusolverDnHandle_t *);
    cusolverStatus_t (*destroy)(cusolverDnHandle_t);
    cusolverStatus_t (*potrf_buffer_size)(cusolverDnHandle_t, cublasFillMode_t, int, double *, int, int *);
    cusolverStatus_t (*potrf)(cusolverDnHandle_t, cublasFillMode_t, int, double *, int, double *, int, int *);
    cusolverStatus_t (*potrs)(cusolverDnHandle_t, cublasFillMode_t, int, int, const double *, int, double *, int, int *);
} ll_cusolver;

static ll_status ll_cusolver_open(void) {
    if (ll_cusolver.potrs) return LL_OK;
    const char *names[] = {"libcusolver.so.12", "libcusolver.so.11", "libcusolver.so"};
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    if (!h) return ll_err(LL_ERR_UNSUPPORTED, "ridge on the GPU: cannot load libcusolver (%s)", dlerror());
    *(void **)&ll_cusolver.create = dlsym(h, "cusolverDnCreate");
    *(void **)&ll_cusolver.destroy = dlsym(h, "cusolverDnDestroy");
    *(void **)&ll_cusolver.potrf_buffer_size = dlsym(h, "cusolverDnDpotrf_bufferSize");
    *(void **)&ll_cusolver.potrf = dlsym(h, "cusolverDnDpotrf");
    *(void **)&ll_cusolver.potrs = dlsym(h, "cusolverDnDpotrs");
    if (!ll_cusolver.create || !ll_cusolver.destroy || !ll_cusolver.potrf_buffer_size || !ll_cusolver.potrf ||
        !ll_cusolver.potrs) {
        ll_cusolver.potrs = NULL;
        return ll_err(LL_ERR_UNSUPPORTED, "ridge on the GPU: libcusolver lacks the Dn Cholesky functions");
    }
    return LL_OK;
}

#define LL_GPU_CHUNK 1024 /* rows uploaded per DSYRK */

struct ll_gram_gpu {
    int d_in, d_out, p;
    cublasHandle_t h;
    double *A, *B;    /* device: column-major lower of A (= row-major upper), B^T column-major (= row-major B) */
    double *X, *Y;    /* device chunk buffers */
    double *hx, *hy;  /* host chunk buffers */
    double *yy;       /* host: sum y^2 per target */
    int64_t n;
};

bool ll_ridge_gpu_available(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        ll_err(LL_ERR_DEVICE, "ridge on the GPU: no usable CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "none");
        return false;
    }
    return true;
}

void ll_gram_gpu_free(ll_gram_gpu *g) {
    if (!g) return;
    cudaFree(g->A);
    cudaFree(g->B);
    cudaFree(g->X);
    cudaFree(g->Y);
    if (g->h) cublasDestroy(g->h);
    free(g->hx);
    free(g->hy);
    free(g->yy);
    free(g);
}

ll_status ll_gram_gpu_new(ll_gram_gpu **out, int d_in, int d_out) {
    *out = NULL;
    if (d_in <= 0 || d_out <= 0)
        return ll_err(LL_ERR_ARG, "ridge on the GPU: Gram shape %d x %d", d_in, d_out);
    if (!ll_ridge_gpu_available()) return LL_ERR_DEVICE;
    ll_gram_gpu *g = calloc(1, sizeof *g);
    if (!g) return ll_err(LL_ERR_NOMEM, "ridge on the GPU: no memory");
    g->d_in = d_in;
    g->d_out = d_out;
    g->p = d_in + 1;
    size_t p = g->p, q = d_out;
    int ok = cublasCreate(&g->h) == CUBLAS_STATUS_SUCCESS;
    ok = ok && cudaMalloc((void **)&g->A, p * p * sizeof(double)) == cudaSuccess;
    ok = ok && cudaMalloc((void **)&g->B, p * q * sizeof(double)) == cudaSuccess;
    ok = ok && cudaMalloc((void **)&g->X, (size_t)LL_GPU_CHUNK * p * sizeof(double)) == cudaSuccess;
    ok = ok && cudaMalloc((void **)&g->Y, (size_t)LL_GPU_CHUNK * q * sizeof(double)) == cudaSuccess;
    ok = ok && cudaMemset(g->A, 0, p * p * sizeof(double)) == cudaSuccess;
    ok = ok && cudaMemset(g->B, 0, p * q * sizeof(double)) == cudaSuccess;
    g->hx = malloc((size_t)LL_GPU_CHUNK * p * sizeof(double));
    g->hy = malloc((size_t)LL_GPU_CHUNK * q * sizeof(double));
    g->yy = calloc(q, sizeof(double));
    if (!ok || !g->hx || !g->hy || !g->yy) {
        ll_gram_gpu_free(g);
        return ll_err(LL_ERR_DEVICE, "ridge on the GPU: cannot allocate a %zu x %zu Gram on the device", p, q);
    }
    *out = g;
    return LL_OK;
}

ll_status ll_gram_gpu_add(ll_gram_gpu *g, const float *X, int ldx, const float *Y, int ldy, int64_t n) {
    int p = g->p, q = g->d_out;
    const double one = 1.0;
    for (int64_t r0 = 0; r0 < n; r0 += LL_GPU_CHUNK) {
        int c = (int)(n - r0 < LL_GPU_CHUNK ? n - r0 : LL_GPU_CHUNK);
        for (int r = 0; r < c; r++) {
            const float *x = X + (size_t)(r0 + r) * ldx, *y = Y + (size_t)(r0 + r) * ldy;
            double *hx = g->hx + (size_t)r * p, *hy = g->hy + (size_t)r * q;
            for (int i = 0; i < g->d_in; i++) hx[i] = x[i];
            hx[g->d_in] = 1.0;
            for (int j = 0; j < q; j++) {
                hy[j] = y[j];
                g->yy[j] += (double)y[j] * y[j];
            }
        }
        if (cudaMemcpy(g->X, g->hx, (size_t)c * p * sizeof(double), cudaMemcpyHostToDevice) != cudaSuccess ||
            cudaMemcpy(g->Y, g->hy, (size_t)c * q * sizeof(double), cudaMemcpyHostToDevice) != cudaSuccess)
            return ll_err(LL_ERR_DEVICE, "ridge on the GPU: upload of %d rows failed", c);
        /* Row-major X [c][p] is column-major X^T (p x c): A += X^T X = M M^T. */
        if (cublasDsyrk(g->h, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, p, c, &one, g->X, p, &one, g->A, p) !=
                CUBLAS_STATUS_SUCCESS ||
            /* B^T (q x p, column-major) += Y^T X: Y is column-major Y^T (q x c), X^T is (p x c). */
            cublasDgemm(g->h, CUBLAS_OP_N, CUBLAS_OP_T, q, p, c, &one, g->Y, q, g->X, p, &one, g->B, q) !=
                CUBLAS_STATUS_SUCCESS)
            return ll_err(LL_ERR_DEVICE, "ridge on the GPU: cuBLAS DSYRK / DGEMM failed");
        g->n += c;
    }
    return LL_OK;
}

ll_status ll_gram_gpu_merge_into(ll_gram_gpu *g, ll_gram *dst) {
    if (dst->d_in != g->d_in || dst->d_out != g->d_out)
        return ll_err(LL_ERR_SHAPE, "ridge on the GPU: merge a %d x %d Gram into %d x %d", g->d_in, g->d_out, dst->d_in,
                      dst->d_out);
    size_t p = g->p, q = g->d_out, nd = ll_gram_n_doubles(dst);
    double *t = calloc(nd, sizeof(double));
    if (!t) return ll_err(LL_ERR_NOMEM, "ridge on the GPU: no memory");
    if (cudaMemcpy(t, g->A, p * p * sizeof(double), cudaMemcpyDeviceToHost) != cudaSuccess ||
        cudaMemcpy(t + p * p, g->B, p * q * sizeof(double), cudaMemcpyDeviceToHost) != cudaSuccess) {
        free(t);
        return ll_err(LL_ERR_DEVICE, "ridge on the GPU: download failed");
    }
    memcpy(t + p * p + p * q, g->yy, q * sizeof(double));
    t[nd - 1] = (double)g->n;
    ll_gram_dd_sum(dst->data, dst->lo, t, NULL, nd);
    free(t);
    return LL_OK;
}

ll_status ll_ridge_solve_gpu(const ll_gram *g, double lambda, double *W) {
    int p = g->p, q = g->d_out, lwork = 0, info = 0;
    if (!(lambda >= 0)) return ll_err(LL_ERR_ARG, "ridge on the GPU: lambda must be >= 0, found %g", lambda);
    if (ll_gram_count(g) == 0) return ll_err(LL_ERR_ARG, "ridge on the GPU: no examples were added");
    if (!ll_ridge_gpu_available()) return LL_ERR_DEVICE;
    LL_TRY(ll_cusolver_open());
    double *M = malloc((size_t)p * p * sizeof(double)), *Bc = malloc((size_t)p * q * sizeof(double));
    double *dM = NULL, *dB = NULL, *dw = NULL;
    int *dinfo = NULL;
    cusolverDnHandle_t h = NULL;
    ll_status st = LL_OK;
    if (!M || !Bc) {
        st = ll_err(LL_ERR_NOMEM, "ridge on the GPU: no memory for a %d x %d system", p, p);
        goto done;
    }
    for (int i = 0; i < p; i++)
        for (int j = i; j < p; j++) M[(size_t)i * p + j] = M[(size_t)j * p + i] = g->A[(size_t)i * p + j];
    for (int i = 0; i < g->d_in; i++) M[(size_t)i * p + i] += lambda;
    for (int i = 0; i < p; i++)
        for (int j = 0; j < q; j++) Bc[(size_t)j * p + i] = g->B[(size_t)i * q + j];
    if (ll_cusolver.create(&h) != CUSOLVER_STATUS_SUCCESS || cudaMalloc((void **)&dM, (size_t)p * p * 8) != cudaSuccess ||
        cudaMalloc((void **)&dB, (size_t)p * q * 8) != cudaSuccess || cudaMalloc((void **)&dinfo, sizeof(int)) != cudaSuccess ||
        cudaMemcpy(dM, M, (size_t)p * p * 8, cudaMemcpyHostToDevice) != cudaSuccess ||
        cudaMemcpy(dB, Bc, (size_t)p * q * 8, cudaMemcpyHostToDevice) != cudaSuccess ||
        ll_cusolver.potrf_buffer_size(h, CUBLAS_FILL_MODE_UPPER, p, dM, p, &lwork) != CUSOLVER_STATUS_SUCCESS ||
        cudaMalloc((void **)&dw, (size_t)(lwork > 0 ? lwork : 1) * 8) != cudaSuccess) {
        st = ll_err(LL_ERR_DEVICE, "ridge on the GPU: cuSOLVER setup for a %d x %d system failed", p, p);
        goto done;
    }
    if (ll_cusolver.potrf(h, CUBLAS_FILL_MODE_UPPER, p, dM, p, dw, lwork, dinfo) != CUSOLVER_STATUS_SUCCESS ||
        cudaMemcpy(&info, dinfo, sizeof(int), cudaMemcpyDeviceToHost) != cudaSuccess) {
        st = ll_err(LL_ERR_DEVICE, "ridge on the GPU: Dpotrf failed");
        goto done;
    }
    if (info != 0) {
        st = ll_err(LL_ERR_ARG, "ridge on the GPU: the system is not positive definite (Dpotrf info %d; raise lambda, or "
                                "solve on the CPU, which falls back to the eigendecomposition)", info);
        goto done;
    }
    if (ll_cusolver.potrs(h, CUBLAS_FILL_MODE_UPPER, p, q, dM, p, dB, p, dinfo) != CUSOLVER_STATUS_SUCCESS ||
        cudaMemcpy(Bc, dB, (size_t)p * q * 8, cudaMemcpyDeviceToHost) != cudaSuccess) {
        st = ll_err(LL_ERR_DEVICE, "ridge on the GPU: Dpotrs failed");
        goto done;
    }
    for (int i = 0; i < p; i++)
        for (int j = 0; j < q; j++) W[(size_t)i * q + j] = Bc[(size_t)j * p + i];
done:
    cudaFree(dM);
    cudaFree(dB);
    cudaFree(dw);
    cudaFree(dinfo);
    if (h) ll_cusolver.destroy(h);
    free(M);
    free(Bc);
    return st;
}
