/* Launchers for the hand-written CUDA kernels, callable from C (host/backend/cuda).
 *
 * Every launcher checks its arguments' shapes it depends on, launches on `s` and returns
 * the launch status (cudaGetLastError right after the launch): the caller records the
 * first failure. Pointers are device memory unless said otherwise. */
#ifndef LL_KERNELS_H
#define LL_KERNELS_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/ll_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* kernels/ll_k_elementwise.cu */
/* x[t] = tok[tokens[t]] (bf16 rows of stride ld) + pos_emb[pos[t]] (fp32, may be NULL). */
cudaError_t ll_k_embed(float *x, const uint16_t *tok, int ld, const float *pos_emb, const int32_t *tokens,
                       const int32_t *pos, int T, int d, cudaStream_t s);
/* The activations (MLP epilogues) and the norms also write a bf16 copy of their output to
 * the `..b` pointer when it is not NULL: the input of the matmul that follows. */
cudaError_t ll_k_swiglu(float *out, uint16_t *outb, const float *gate, const float *up, size_t n, cudaStream_t s);
cudaError_t ll_k_gelu_new(float *x, uint16_t *xb, size_t n, cudaStream_t s);
cudaError_t ll_k_add(float *y, const float *x, size_t n, cudaStream_t s);
/* y[t][o] = bias[o] (accumulate = 0) or y[t][o] += bias[o] (accumulate = 1). */
cudaError_t ll_k_bias_rows(float *y, const float *bias, int T, int n, int accumulate, cudaStream_t s);
cudaError_t ll_k_f32_to_bf16(uint16_t *dst, const float *src, size_t n, cudaStream_t s);
/* dst[i] = src[rows[i]] / dst[rows[i]] = src[i] for rows of `width` floats; rows in device memory. */
cudaError_t ll_k_gather_rows(float *dst, const float *src, const int64_t *rows, int n, int width, cudaStream_t s);
cudaError_t ll_k_scatter_rows(float *dst, const float *src, const int64_t *rows, int n, int width, cudaStream_t s);
/* dst[i] = bf16(scale * u), u uniform in [-1, 1) from a counter hash of (seed, i): benchmark weights. */
cudaError_t ll_k_fill_random_bf16(uint16_t *dst, size_t n, uint64_t seed, float scale, cudaStream_t s);
cudaError_t ll_k_fill_random_f32(float *dst, size_t n, uint64_t seed, float scale, float offset, cudaStream_t s);

/* kernels/ll_k_patch.cu: hook patches. out[r] = buf[rows[r]] (width floats) with columns
 * [off, off + w) replaced: REPLACE src[r][i], ADD old + src[r][i], ZERO, COPY_ROW
 * buf[src_rows[r]][off + i]; sq[r] = sum of (new - old)^2 over those columns, in double.
 * n blocks (n < 2^31); rows, src_rows, src, out and sq in device memory. The op numbers are
 * ll_patch_op's (host/model/ll_hooks.h). */
enum { LL_K_PATCH_REPLACE = 0, LL_K_PATCH_ADD = 1, LL_K_PATCH_ZERO = 2, LL_K_PATCH_COPY_ROW = 3 };
cudaError_t ll_k_patch_rows(float *out, double *sq, const float *buf, int width, const int64_t *rows,
                            const int64_t *src_rows, const float *src, int n, int off, int w, int op, cudaStream_t s);

/* kernels/ll_k_norm.cu: one block per row, statistics accumulated in double like the CPU. */
cudaError_t ll_k_rmsnorm(float *y, uint16_t *yb, const float *x, const float *w, int T, int d, float eps,
                         cudaStream_t s);
cudaError_t ll_k_layernorm(float *y, uint16_t *yb, const float *x, const float *w, const float *b, int T, int d,
                           float eps, cudaStream_t s);

/* x += o, then y = RMSNorm (layer = 0) or LayerNorm (layer = 1) of x: one pass fewer over x. */
cudaError_t ll_k_add_norm(float *x, float *y, uint16_t *yb, const float *o, const float *w, const float *b, int layer,
                          int T, int d, float eps, cudaStream_t s);

/* kernels/ll_k_rope.cu: in place on [T][n_heads][head_dim]; layout is an ll_rope_layout. */
cudaError_t ll_k_rope(float *x, const int32_t *pos, int T, int n_heads, int head_dim, const float *inv_freq,
                      int layout, cudaStream_t s);

/* kernels/ll_k_attention.cu */
#define LL_ATT_ROWS 8    /* query rows per block: one warp each */
#define LL_ATT_KC 32     /* keys per chunk: one per lane */
#define LL_ATT_MAX_HD 128
typedef struct {
    int64_t row0;        /* first row of the sequence in q / z */
    int n_new, n_past;
    const float *k, *v;  /* [n_past + n_new][kv_stride] */
    float *pattern;      /* NULL or [n_heads][n_new][n_past + n_new] */
    /* Knockouts (ll_attn_knock in ll_backend.h), device memory: ko_row NULL = none in this
     * sequence, else [n_heads][n_new] mask index or -1; ko_mask [n_masks][ko_words] bits. */
    const int32_t *ko_row;
    const uint32_t *ko_mask;
    int ko_words;
} ll_k_attn_seq;
typedef struct {
    int seq, r0;         /* rows r0 .. r0 + LL_ATT_ROWS - 1 (clipped) of sequence seq */
} ll_k_attn_tile;
typedef struct {
    const float *q;
    float *z;
    int T, n_heads, n_kv_heads, head_dim, kv_stride, sliding_window;
    float scale;
    const ll_k_attn_seq *seqs;   /* device */
    const ll_k_attn_tile *tiles; /* device */
    int n_tiles;
    int n_split;   /* key ranges per tile processed by separate blocks (long-context decode) */
    float *part;   /* n_split > 1: [n_split][T][n_heads][head_dim + 2] partial states */
    float *ml;     /* [T][n_heads][2]: softmax max and sum of each row (for patterns) */
} ll_k_attn_params;
/* z = causal softmax(q k^T scale) v; also fills ml. head_dim <= LL_ATT_MAX_HD. */
cudaError_t ll_k_attention(const ll_k_attn_params *p, cudaStream_t s);
/* kernels/ll_k_attention_tc.cu: the same on the tensor cores (bf16 Q, K, V and P, fp32
 * accumulation), tiles of LL_ATT_TC_ROWS rows, n_split = 1, head_dim 64 or 128 only. */
#define LL_ATT_TC_ROWS 64
int ll_k_attention_tc_supported(int head_dim);
cudaError_t ll_k_attention_tc(const ll_k_attn_params *p, cudaStream_t s);
/* The pattern of sequence `seq` (host copy of its descriptor given) from q, k and ml. */
cudaError_t ll_k_attn_pattern(const ll_k_attn_params *p, const ll_k_attn_seq *seq, cudaStream_t s);

/* kernels/ll_k_decode.cu: per-step values of a captured decode step read from device
 * memory. k_dst/v_dst row *pos := k_src/v_src (one row of width floats). */
cudaError_t ll_k_kv_append(float *k_dst, float *v_dst, const float *k_src, const float *v_src, const int32_t *pos,
                           int width, cudaStream_t s);
/* Fill the descriptor of one sequence with one new row at key index *pos over k/v, and its
 * one tile (for ll_k_attention with n_tiles = 1). */
cudaError_t ll_k_attn_decode_desc(ll_k_attn_seq *seq, ll_k_attn_tile *tile, const float *k, const float *v,
                                  const int32_t *pos, cudaStream_t s);

/* kernels/ll_k_entropy.cu: out (device) [R]; cands device or NULL. */
cudaError_t ll_k_entropy(ll_entropy_row *out, const float *logits, int R, int V, int k, const int32_t *cands,
                         int n_cand, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
