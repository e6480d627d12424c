/* CPU backend ops (the reference implementation). Declared here so the table in
 * ll_cpu_backend.c and the tests can name them. */
#ifndef LL_CPU_H
#define LL_CPU_H

#include "../ll_backend.h"

void ll_cpu_embed(float *x, const float *tok_emb, const float *pos_emb, const int32_t *tokens, const int32_t *pos,
                  int T, int d);
void ll_cpu_matmul(float *y, const float *x, const ll_mat *w, const float *bias, int T, bool accumulate);
void ll_cpu_rmsnorm(float *y, const float *x, const float *w, int T, int d, float eps);
void ll_cpu_layernorm(float *y, const float *x, const float *w, const float *b, int T, int d, float eps);
void ll_cpu_add_norm(float *x, float *y, const float *o, const float *w, const float *b, bool layer, int T, int d,
                     float eps);
void ll_cpu_rope(float *x, const int32_t *pos, int T, int n_heads, int head_dim, const float *inv_freq,
                 ll_rope_layout layout);
void ll_cpu_attention(const ll_attn_args *a);
void ll_cpu_kv_append(float *k_dst, float *v_dst, const float *k_src, const float *v_src, const int32_t *pos,
                      int width);
void ll_cpu_attention_at(const ll_attn_args *a, const int32_t *pos, int max_keys);
void ll_cpu_swiglu(float *out, const float *gate, const float *up, size_t n);
void ll_cpu_gelu_new(float *x, size_t n);
void ll_cpu_add(float *y, const float *x, size_t n);
void ll_cpu_to_bf16(uint16_t *dst, const float *src, size_t n);
void ll_cpu_gather_rows(float *dst, const float *src, const int64_t *rows, int n, int width);
void ll_cpu_scatter_rows(float *dst, const float *src, const int64_t *rows, int n, int width);

void ll_cpu_entropy(ll_entropy_row *out, const float *logits, int R, int V, int k, const int32_t *cands, int n_cand);

#endif
