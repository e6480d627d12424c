/* A Llama model being trained: hyper-parameters, every parameter in one flat fp32 buffer
 * (so the optimizer, clipping and checkpoints see a single array) with the gradient
 * beside it, and the forward pass that keeps what its backward pass needs. */
#ifndef LL_TRAIN_MODEL_H
#define LL_TRAIN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/ll_status.h"

#define LL_TM_MAX_LAYERS 32
#define LL_TM_MAX_SEQ 1024

typedef struct {
    int vocab, d_model, n_layers, n_heads, n_kv_heads, d_ff, max_seq;
    float rope_theta, norm_eps;
} ll_tm_cfg;

/* Offsets (in floats) of each tensor in the flat buffer; HF names in ll_tm_tensor_name. */
typedef struct {
    size_t attn_norm, wq, wk, wv, wo, mlp_norm, wg, wu, wd;
} ll_tm_layer_off;

typedef struct {
    size_t emb, norm, lm_head;
    ll_tm_layer_off l[LL_TM_MAX_LAYERS];
    size_t n;
} ll_tm_layout;

typedef struct {
    float *x, *rstd1, *xn1, *q, *k, *v, *probs, *att, *x2, *rstd2, *xn2, *g, *u, *h;
} ll_tm_acts;

typedef struct {
    ll_tm_cfg c;
    ll_tm_layout lay;
    float *p, *g; /* parameters and gradients, lay.n floats each */
    /* Activations for a batch of B sequences of T positions (grown on demand). */
    int B, T;
    ll_tm_acts a[LL_TM_MAX_LAYERS];
    float *xL, *rstdf, *xf, *logits, *rope;
    float *d0, *d1, *d2, *d3, *dq, *dk, *dv, *dff1, *dff2, *dlogits;
    /* Optional observer of the backward pass: called for every layer with dL/d(attention
     * output before o_proj), [B*T][n_heads * head_dim], valid during the call (a->probs
     * and a->v of that layer are still in place). With a->v it gives dL/dA for attention
     * x gradient saliency (host/icl/ll_icl_saliency.c). NULL: not called. */
    void (*attn_grad_fn)(void *user, int layer, const float *datt);
    void *attn_grad_user;
} ll_tmodel;

/* Checks the configuration (names the bad field) and allocates parameters (zeroed). */
ll_status ll_tmodel_new(ll_tmodel **out, const ll_tm_cfg *c);
void ll_tmodel_free(ll_tmodel *m);
/* Normal(0, 0.02) matrices and embeddings, output projections scaled by 1/sqrt(2L),
 * norm weights 1: deterministic from the seed. */
void ll_tmodel_init(ll_tmodel *m, uint64_t seed);

/* Number of tensors, and the i-th one's Hugging Face name, shape and offset. */
int ll_tmodel_n_tensors(const ll_tmodel *m);
void ll_tmodel_tensor(const ll_tmodel *m, int i, char *name, size_t name_len, int *ndim, int64_t shape[2],
                      size_t *off);

/* Forward pass over tokens[B*T] (positions 0..T-1 in each sequence); the loss is the
 * weighted cross-entropy of target[n] predicted at row n (weights w[n], see
 * ll_top_xent). With grad, m->g is overwritten with the loss's gradient. After the
 * call m->logits holds [B*T][vocab]. */
ll_status ll_tmodel_step(ll_tmodel *m, const int32_t *tokens, const int32_t *target, const float *w, int B, int T,
                         bool grad, double *loss);

#endif
