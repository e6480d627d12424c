/* Per-layer read-outs of the residual stream: the logit lens and the tuned lens.
 *
 * Layer l in 0..L is the residual after l blocks (0 = embeddings, L = the last block's
 * output before the final norm), as in host/spade/ll_spade.h. The logit lens decodes h^l
 * with the model's own final norm and LM head; at l = L it is the model's output.
 * The tuned lens (Belrose et al. 2023's recipe) first applies a per-layer affine
 * translator h -> h + A_l h + b_l, trained so that the lens distribution matches the
 * model's final distribution (KL(final || lens)); A_l = 0, b_l = 0 gives the logit lens.
 * The translator of layer L is the identity (not stored). */
#ifndef LL_LENS_H
#define LL_LENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/ll_forward.h"

/* Final norm + LM head on n residual rows h [n][d] -> logits_out [n][vocab], on m's
 * backend (ll_forward from start_layer = L). */
ll_status ll_lens_logits(ll_model *m, int n, const float *h, float *logits_out);

/* ---- tuned lens ---- */
typedef struct {
    int n_layers; /* L: translators for layers 0..L-1 */
    int d_model;
    float *A; /* [L][d][d] row-major: (A h)_i = sum_j A[i][j] h_j */
    float *b; /* [L][d] */
} ll_tuned_lens;

/* Zero translators (the logit lens). */
ll_status ll_tuned_lens_new(ll_tuned_lens **out, int n_layers, int d_model);
void ll_tuned_lens_free(ll_tuned_lens *t);
/* out[i] = h[i] + A_l h[i] + b_l for n rows; layer L copies. out may not alias h. */
ll_status ll_tuned_lens_apply(const ll_tuned_lens *t, int layer, int n, const float *h, float *out);
/* Tuned-lens logits of n rows of layer `layer`. */
ll_status ll_tuned_lens_logits(const ll_tuned_lens *t, ll_model *m, int layer, int n, const float *h, float *logits_out);

/* safetensors: "A.{l}" [d][d] and "b.{l}" [d] in F32, metadata format=layerlab-tuned-lens,
 * n_layers, d_model and whatever `meta` (a JSON object of strings, may be NULL) adds.
 * Written to a temporary name and renamed. */
ll_status ll_tuned_lens_save(const ll_tuned_lens *t, const char *path, const char *meta_json);
/* Checks the sizes against m when m is given. */
ll_status ll_tuned_lens_load(ll_tuned_lens **out, const char *path, const ll_model *m);

/* Training data: for n rows (token positions of training prompts), the residual at every
 * layer and the model's final logits there. */
typedef struct {
    int n_rows, n_layers, d_model, vocab;
    float *h;      /* [L+1][n_rows][d] */
    float *logits; /* [n_rows][vocab]: the full model (the KL target) */
} ll_lens_data;

/* All positions of the given prompts (every position is a training row, as in the
 * tuned-lens recipe); at most max_rows rows are kept (0 = no limit). */
ll_status ll_lens_data_collect(ll_model *m, const int32_t *const *tokens, const int *n_tok, int n_prompts,
                               int max_rows, ll_lens_data *out);
void ll_lens_data_free(ll_lens_data *d);

typedef struct {
    int steps;        /* optimiser steps per layer (default 250) */
    int batch;        /* rows per step (default 32; all rows when fewer) */
    float lr;         /* default 1.0 (SGD with Nesterov momentum, linear decay to 0) */
    float momentum;   /* default 0.9 */
    float clip;       /* global gradient-norm clip per layer, default 1.0 (<= 0: none) */
    float weight_decay; /* on A only, default 1e-3 */
    uint64_t seed;
    /* Called after each layer with its final mean KL (nats); may be NULL. */
    void (*progress)(void *user, int layer, int step, int steps, double kl);
    void *user;
} ll_tuned_lens_train_opts;

/* Defaults above for every field left zero. */
void ll_tuned_lens_train_defaults(ll_tuned_lens_train_opts *o);

/* Train every translator of t in place on data, on the CPU, with the hand-written
 * gradient of KL(final || lens) through the final norm and LM head (m must be on the CPU
 * backend with fp32 weights). kl_before / kl_after ([L] each, may be NULL): mean KL over
 * all rows at the start and at the end. The reference for the GPU path (ll_lens_cuda.h). */
ll_status ll_tuned_lens_train(ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data,
                              const ll_tuned_lens_train_opts *o, double *kl_before, double *kl_after);

/* Mean KL(final || lens) over all rows of data for every translator l < L (kl [L]), without
 * the gradient: on the CPU in double when m is on the CPU backend, else on the GPU
 * (ll_lens_cuda.h). For held-out rows: the validation KL of `layerlab tuned-lens train`. */
ll_status ll_tuned_lens_kl(const ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data, double *kl);

/* ll_tuned_lens_train on the model's backend: the CPU path when m is on the CPU, the CUDA
 * path (ll_tuned_lens_train_cuda, same algorithm and settings) when m is on the GPU. */
ll_status ll_tuned_lens_train_auto(ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data,
                                   const ll_tuned_lens_train_opts *o, double *kl_before, double *kl_after);

/* Loss and gradient of one layer's translator on rows [r0, r0 + n) (mean over rows):
 * *kl = mean KL(final || lens); dA [d][d], db [d] (overwritten). Exposed for the
 * finite-difference test. */
ll_status ll_tuned_lens_grad(const ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data, int layer,
                             const int *rows, int n, double *kl, float *dA, float *db);

#endif
