/* Helpers shared by the .cu files: launch shapes and warp reductions. */
#ifndef LL_K_COMMON_CUH
#define LL_K_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "ll_kmath.h"

#define LL_FULL_MASK 0xffffffffu

/* Blocks for a grid-stride loop over n items: enough to fill the chip, never zero. */
static inline unsigned ll_k_blocks(size_t n, int threads) {
    size_t b = (n + (size_t)threads - 1) / (size_t)threads;
    if (b > 65535u * 8u) b = 65535u * 8u; /* grid-stride loops cover the rest */
    return b ? (unsigned)b : 1u;
}

static __device__ __forceinline__ float ll_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(LL_FULL_MASK, v, o));
    return v;
}

static __device__ __forceinline__ float ll_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(LL_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ double ll_warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(LL_FULL_MASK, v, o);
    return v;
}

#endif
