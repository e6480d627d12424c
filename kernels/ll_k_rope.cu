/* RoPE in both layouts. One thread per (row, frequency): it computes the angle's cos
 * and sin once (in double, like the CPU, so they round the same way) and rotates that
 * pair in every head of the row. */
#include "ll_k_common.cuh"
#include "ll_kernels.h"

#define LL_ROPE_THREADS 128

static __global__ void ll_rope_kernel(float *x, const int32_t *pos, int T, int n_heads, int head_dim,
                                      const float *inv_freq, int layout) {
    int half = head_dim / 2;
    size_t n = (size_t)T * (size_t)half;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        size_t t = e / (size_t)half;
        int i = (int)(e - t * (size_t)half);
        float cs, sn;
        ll_k_rope_angle(pos[t], inv_freq[i], &cs, &sn);
        /* pair (i, i + half) for rotate-half, (2i, 2i + 1) for interleaved */
        int ia = layout == LL_ROPE_ROTATE_HALF ? i : 2 * i;
        int ib = layout == LL_ROPE_ROTATE_HALF ? i + half : 2 * i + 1;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (t * (size_t)n_heads + (size_t)h) * (size_t)head_dim;
            ll_k_rope_rotate(&v[ia], &v[ib], cs, sn);
        }
    }
}

extern "C" cudaError_t ll_k_rope(float *x, const int32_t *pos, int T, int n_heads, int head_dim,
                                 const float *inv_freq, int layout, cudaStream_t s) {
    if (layout == LL_ROPE_NONE || T <= 0 || head_dim < 2) return cudaSuccess;
    size_t n = (size_t)T * (size_t)(head_dim / 2);
    ll_rope_kernel<<<ll_k_blocks(n, LL_ROPE_THREADS), LL_ROPE_THREADS, 0, s>>>(x, pos, T, n_heads, head_dim,
                                                                                inv_freq, layout);
    return cudaGetLastError();
}
