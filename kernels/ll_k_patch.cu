/* Hook patches applied on the device: replace, add, zero and copy-from-row over a slice of
 * the target rows, with the squared change of each row for ll_hooks_patch_stat.
 *
 * The patched rows are written to a separate buffer and put back by scatter_rows, so a
 * copy-from-row patch reads every source row before any target row changes, exactly as
 * the CPU path (host/model/ll_hooks.c) gathers both sides first. One block per target
 * row: the row's squared change is reduced in double in a fixed order (strided partial
 * sums, then a warp tree), so the statistic does not depend on scheduling. */
#include "ll_k_common.cuh"
#include "ll_kernels.h"

#define LL_PATCH_THREADS 256

static __global__ void ll_patch_rows_kernel(float *out, double *sq, const float *buf, int width,
                                            const int64_t *rows, const int64_t *src_rows, const float *src, int off,
                                            int w, int op) {
    const int r = blockIdx.x;
    const float *row = buf + (size_t)rows[r] * (size_t)width;
    const float *from = op == LL_K_PATCH_COPY_ROW ? buf + (size_t)src_rows[r] * (size_t)width : NULL;
    float *dst = out + (size_t)r * (size_t)width;
    double acc = 0.0;
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
        float old = row[c], nv = old;
        if (c >= off && c < off + w) {
            int i = c - off;
            switch (op) {
            case LL_K_PATCH_REPLACE: nv = src[(size_t)r * (size_t)w + i]; break;
            case LL_K_PATCH_ADD: nv = __fadd_rn(old, src[(size_t)r * (size_t)w + i]); break;
            case LL_K_PATCH_ZERO: nv = 0.0f; break;
            default: nv = from[c]; break;
            }
            /* the same expression as the CPU's: the difference taken in double */
            double dd = (double)nv - (double)old;
            acc += dd * dd;
        }
        dst[c] = nv;
    }
    __shared__ double part[LL_PATCH_THREADS / 32];
    acc = ll_warp_sum_d(acc);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x < 32) {
        double v = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.0;
        v = ll_warp_sum_d(v);
        if (threadIdx.x == 0) sq[r] = v;
    }
}

extern "C" cudaError_t ll_k_patch_rows(float *out, double *sq, const float *buf, int width, const int64_t *rows,
                                       const int64_t *src_rows, const float *src, int n, int off, int w, int op,
                                       cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    if (width <= 0 || off < 0 || w < 0 || off + w > width || op < LL_K_PATCH_REPLACE || op > LL_K_PATCH_COPY_ROW ||
        (op == LL_K_PATCH_COPY_ROW && !src_rows) || ((op == LL_K_PATCH_REPLACE || op == LL_K_PATCH_ADD) && !src))
        return cudaErrorInvalidValue;
    ll_patch_rows_kernel<<<(unsigned)n, LL_PATCH_THREADS, 0, s>>>(out, sq, buf, width, rows, src_rows, src, off, w,
                                                                  op);
    return cudaGetLastError();
}
