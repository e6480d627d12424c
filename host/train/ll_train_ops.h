/* Forward and backward of the operations of a Llama block, on the CPU in fp32, for the
 * trainer (host/train). Shapes are row-major; a batch is B sequences of T positions laid
 * out as N = B*T rows, row b*T + t. Positions restart at 0 in every sequence.
 *
 * Conventions: backward functions write (=) the gradient of their inputs unless the
 * argument is named acc_*, and always add (+=) into parameter gradients, so a caller
 * zeroes parameter gradients once per step. Every reduction runs in a fixed order, so
 * a step gives the same bits for the same thread count (resume equals uninterrupted). */
#ifndef LL_TRAIN_OPS_H
#define LL_TRAIN_OPS_H

#include <stddef.h>
#include <stdint.h>

/* y[N][out] = x[N][in] W[out][in]^T (W as a PyTorch nn.Linear weight). */
void ll_top_matmul(float *y, const float *x, const float *W, int N, int in, int out);
/* dx (= when acc_dx is 0, += otherwise; may be NULL) and dW += dy^T x. */
void ll_top_matmul_bwd(float *dx, int acc_dx, float *dW, const float *dy, const float *x, const float *W, int N,
                       int in, int out);

void ll_top_embed(float *x, const float *E, const int32_t *tok, int N, int d);
void ll_top_embed_bwd(float *dE, const float *dx, const int32_t *tok, int N, int d);

/* y = x / rms(x) * w; rstd[N] saved for the backward pass. */
void ll_top_rmsnorm(float *y, float *rstd, const float *x, const float *w, int N, int d, float eps);
void ll_top_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                        int N, int d);

/* cos/sin of pos * inv_freq[i] for pos < T, i < hd/2, computed as Hugging Face does
 * (fp32 angle), into tab[T][hd] (cos in the first half, sin in the second). */
void ll_top_rope_table(float *tab, int T, int hd, float theta);
/* Rotate-half RoPE (Hugging Face Llama) in place on x[B*T][n_heads*hd]. inverse rotates
 * by the opposite angle: the backward pass of a rotation is its transpose. */
void ll_top_rope(float *x, const float *tab, int B, int T, int n_heads, int hd, int inverse);

/* Causal attention with grouped KV heads (head h reads kv head h / (H / KV), as
 * transformers' repeat_kv). q, out: [N][H*hd]; k, v: [N][KV*hd]; probs: [B][H][T][T]
 * (the causal triangle, zeros above it). Both return -1 when the per-thread K/V tiles
 * cannot be allocated (nothing is computed then), 0 otherwise. */
int ll_top_attention(float *out, float *probs, const float *q, const float *k, const float *v, int B, int T, int H,
                     int KV, int hd);
int ll_top_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                         const float *k, const float *v, int B, int T, int H, int KV, int hd);

/* h = silu(g) * u over n values. The backward pass allows du == dh (in place). */
void ll_top_swiglu(float *h, const float *g, const float *u, size_t n);
void ll_top_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n);

/* Weighted next-token cross-entropy: sum_n w[n] * -log softmax(logits[n])[target[n]] /
 * sum_n w[n]; rows with w[n] == 0 cost nothing. dlogits (may be NULL) gets its gradient.
 * Returns the loss (0 when every weight is 0). */
double ll_top_xent(float *dlogits, const float *logits, const int32_t *target, const float *w, int N, int V);

#endif
