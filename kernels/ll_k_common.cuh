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

/* The knockout mask of row r, head h of a sequence (an ll_k_attn_seq), or NULL when nothing
 * is blocked there; ll_k_ko_hit says whether key index j is blocked by it. */
template <class SEQ>
static __device__ __forceinline__ const uint32_t *ll_k_ko_mask(const SEQ &sq, int h, int r) {
    if (!sq.ko_row) return nullptr;
    const int32_t mi = sq.ko_row[(size_t)h * sq.n_new + r];
    return mi < 0 ? nullptr : sq.ko_mask + (size_t)mi * sq.ko_words;
}
static __device__ __forceinline__ bool ll_k_ko_hit(const uint32_t *km, int j) {
    return km && ((km[j >> 5] >> (j & 31)) & 1u);
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
