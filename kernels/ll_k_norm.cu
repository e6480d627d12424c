/* RMSNorm and LayerNorm: one block per row. The row statistics are accumulated in
 * double, as the CPU reference does: a 4096-wide row's sum of squares is where fp32
 * drift starts, and this pass is memory-bound, so the double adds cost nothing. */
#include "ll_k_common.cuh"
#include "ll_kernels.h"

#define LL_NORM_THREADS 256 /* a multiple of 32, at most 32 warps */

/* Store an output element, and its bf16 copy when the next matmul's input is asked for
 * (yb non-NULL): the conversion the matmul would otherwise do in a pass of its own. */
static __device__ __forceinline__ void ll_put(float *y, uint16_t *yb, int i, float v) {
    y[i] = v;
    if (yb) yb[i] = ll_k_f32_to_bf16(v);
}

/* Sum of v over the block, returned to every thread. `sh` holds one double per warp. */
static __device__ double ll_block_sum_d(double v, double *sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = ll_warp_sum_d(v);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    double t = 0;
    for (int i = 0; i < nw; i++) t += sh[i]; /* every thread sums the same values in the same order */
    return t;
}

static __global__ void __launch_bounds__(LL_NORM_THREADS) ll_rmsnorm_kernel(float *y, uint16_t *yb, const float *x,
                                                                            const float *w, int d, float eps) {
    __shared__ double sh[32];
    const float *xr = x + (size_t)blockIdx.x * d;
    float *yr = y + (size_t)blockIdx.x * d;
    uint16_t *ybr = yb ? yb + (size_t)blockIdx.x * d : NULL;
    double ss = 0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) ss += (double)xr[i] * xr[i];
    ss = ll_block_sum_d(ss, sh);
    /* Hugging Face: rsqrt(mean + eps) in fp32, x * r, then the weight. */
    float r = 1.0f / sqrtf((float)(ss / d) + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) ll_put(yr, ybr, i, w[i] * (xr[i] * r));
}

static __global__ void __launch_bounds__(LL_NORM_THREADS) ll_layernorm_kernel(float *y, uint16_t *yb,
                                                                              const float *x, const float *w,
                                                                              const float *b, int d, float eps) {
    __shared__ double sh[32];
    const float *xr = x + (size_t)blockIdx.x * d;
    float *yr = y + (size_t)blockIdx.x * d;
    uint16_t *ybr = yb ? yb + (size_t)blockIdx.x * d : NULL;
    double s = 0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
    double mean = ll_block_sum_d(s, sh) / d;
    double v = 0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) v += ((double)xr[i] - mean) * ((double)xr[i] - mean);
    v = ll_block_sum_d(v, sh);
    float r = (float)(1.0 / sqrt(v / d + eps));
    float m = (float)mean;
    for (int i = threadIdx.x; i < d; i += blockDim.x) ll_put(yr, ybr, i, (xr[i] - m) * r * w[i] + (b ? b[i] : 0.0f));
}

/* The residual add fused with the norm that follows it. Each thread adds, stores and
 * accumulates the same elements it later normalises (the same stride), so its own
 * stores are visible to it without a barrier; the block sums have theirs. The add and
 * the statistics are the same operations in the same order as ll_add_kernel followed by
 * the norm kernels above, so the results are identical to the unfused pair. */
static __global__ void __launch_bounds__(LL_NORM_THREADS) ll_add_norm_kernel(float *x, float *y, uint16_t *yb,
                                                                             const float *o, const float *w,
                                                                             const float *b, int layer, int d,
                                                                             float eps) {
    __shared__ double sh[32];
    float *xr = x + (size_t)blockIdx.x * d;
    const float *orow = o + (size_t)blockIdx.x * d;
    float *yr = y + (size_t)blockIdx.x * d;
    uint16_t *ybr = yb ? yb + (size_t)blockIdx.x * d : NULL;
    double s = 0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = xr[i] + orow[i];
        xr[i] = v;
        s += layer ? (double)v : (double)v * v;
    }
    s = ll_block_sum_d(s, sh);
    if (!layer) {
        float r = 1.0f / sqrtf((float)(s / d) + eps);
        for (int i = threadIdx.x; i < d; i += blockDim.x) ll_put(yr, ybr, i, w[i] * (xr[i] * r));
        return;
    }
    double mean = s / d, v = 0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) v += ((double)xr[i] - mean) * ((double)xr[i] - mean);
    v = ll_block_sum_d(v, sh);
    float r = (float)(1.0 / sqrt(v / d + eps));
    float m = (float)mean;
    for (int i = threadIdx.x; i < d; i += blockDim.x) ll_put(yr, ybr, i, (xr[i] - m) * r * w[i] + (b ? b[i] : 0.0f));
}

extern "C" cudaError_t ll_k_add_norm(float *x, float *y, uint16_t *yb, const float *o, const float *w,
                                     const float *b, int layer, int T, int d, float eps, cudaStream_t s) {
    if (T <= 0 || d <= 0) return cudaSuccess;
    ll_add_norm_kernel<<<(unsigned)T, LL_NORM_THREADS, 0, s>>>(x, y, yb, o, w, b, layer, d, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t ll_k_rmsnorm(float *y, uint16_t *yb, const float *x, const float *w, int T, int d, float eps,
                                    cudaStream_t s) {
    if (T <= 0 || d <= 0) return cudaSuccess;
    ll_rmsnorm_kernel<<<(unsigned)T, LL_NORM_THREADS, 0, s>>>(y, yb, x, w, d, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t ll_k_layernorm(float *y, uint16_t *yb, const float *x, const float *w, const float *b, int T,
                                      int d, float eps, cudaStream_t s) {
    if (T <= 0 || d <= 0) return cudaSuccess;
    ll_layernorm_kernel<<<(unsigned)T, LL_NORM_THREADS, 0, s>>>(y, yb, x, w, b, d, eps);
    return cudaGetLastError();
}
