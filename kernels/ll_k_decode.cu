/* Kernels that let a captured decode step (a CUDA graph, see host/model/ll_decoder.c)
 * take its per-step values from device memory instead of launch arguments: a graph
 * replays its launches with the arguments they were captured with, so anything that
 * changes from one token to the next (the KV row to write, the attention's n_past) is
 * read here from a small parameter block the host rewrites before each launch. */
#include "ll_k_common.cuh"
#include "ll_kernels.h"

#define LL_DEC_THREADS 256

/* Row *pos of the [cap][width] key and value buffers := the new token's rows. */
static __global__ void ll_kv_append_kernel(float *k_dst, float *v_dst, const float *k_src, const float *v_src,
                                           const int32_t *pos, int width) {
    const size_t base = (size_t)*pos * (size_t)width;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < width; i += gridDim.x * blockDim.x) {
        k_dst[base + i] = k_src[i];
        v_dst[base + i] = v_src[i];
    }
}

extern "C" cudaError_t ll_k_kv_append(float *k_dst, float *v_dst, const float *k_src, const float *v_src,
                                      const int32_t *pos, int width, cudaStream_t s) {
    if (width <= 0) return cudaSuccess;
    ll_kv_append_kernel<<<ll_k_blocks((size_t)width, LL_DEC_THREADS), LL_DEC_THREADS, 0, s>>>(k_dst, v_dst, k_src,
                                                                                             v_src, pos, width);
    return cudaGetLastError();
}

/* One sequence of one new row at key index *pos, and its one tile: the attention
 * kernel reads n_past from this descriptor, so the key range follows *pos. */
static __global__ void ll_attn_decode_desc_kernel(ll_k_attn_seq *seq, ll_k_attn_tile *tile, const float *k,
                                                  const float *v, const int32_t *pos) {
    seq->row0 = 0;
    seq->n_new = 1;
    seq->n_past = *pos;
    seq->k = k;
    seq->v = v;
    seq->pattern = NULL;
    seq->ko_row = NULL; /* decode steps take no knockouts */
    seq->ko_mask = NULL;
    seq->ko_words = 0;
    tile->seq = 0;
    tile->r0 = 0;
}

extern "C" cudaError_t ll_k_attn_decode_desc(ll_k_attn_seq *seq, ll_k_attn_tile *tile, const float *k, const float *v,
                                             const int32_t *pos, cudaStream_t s) {
    ll_attn_decode_desc_kernel<<<1, 1, 0, s>>>(seq, tile, k, v, pos);
    return cudaGetLastError();
}
