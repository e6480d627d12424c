/* A loaded model: configuration, fp32 weights bound to the CPU backend, RoPE tables.
 * The public entry points for running it are in ll_forward.h. */
#ifndef LL_MODEL_H
#define LL_MODEL_H

#include "../backend/ll_backend.h"
#include "../io/ll_tensors.h"
#include "ll_config.h"

typedef struct {
    const float *attn_norm_w, *attn_norm_b; /* b: LayerNorm only */
    ll_mat wq, wk, wv, wo;
    const float *bq, *bk, *bv, *bo;
    const float *mlp_norm_w, *mlp_norm_b;
    ll_mat w_gate, w_up, w_down; /* GPT-2: w_up = c_fc, w_down = c_proj, no gate */
    const float *b_up, *b_down;
} ll_layer_weights;

typedef struct {
    const float *tok_emb; /* [vocab][d] */
    const float *pos_emb; /* [max_pos][d] or NULL */
    ll_layer_weights *layers;
    const float *norm_w, *norm_b;
    ll_mat lm_head; /* [vocab][d] (the token embedding when tied) */
    const float *rope_inv_freq; /* [head_dim/2], fp32 in the backend's memory */
} ll_weights;

typedef struct ll_model {
    ll_config cfg;
    char *path;
    ll_tensor_set ts; /* keeps the mapped files alive: fp32 weights point into them */
    ll_weights w;     /* what the forward pass reads: in m->be's memory and weight format */
    float *rope_inv_freq; /* [head_dim/2] with scaling applied */
    void **bufs;          /* converted weights the model owns (released by an upload to another backend) */
    size_t n_bufs;
    const ll_backend *be; /* where w lives and the forward pass runs */
    void **be_bufs;       /* backend memory holding w when be is not the CPU (freed with be->free) */
    size_t n_be_bufs;
    size_t weight_bytes_mapped;    /* fp32 tensors used in place from the files */
    size_t weight_bytes_converted; /* tensors widened from f16/bf16 into owned memory at load */
    void *gguf;                    /* GGUF metadata (vocabulary) when loaded from GGUF, else NULL */
} ll_model;

typedef struct {
    const char *tokenizer_path; /* llama2.c: tokenizer file given separately (unused by the loader itself) */
} ll_load_opts;

/* Load a Hugging Face directory (or its model.safetensors / index.json), a .gguf file or a
 * llama2.c .bin checkpoint. The format is recognised from the path and the file's magic. */
ll_status ll_model_load(ll_model **out, const char *path, const ll_load_opts *opts);
void ll_model_free(ll_model *m);
/* Run the model on `be` from now on: its weights are uploaded in be's weight format
 * (bf16 on CUDA) and the forward pass, hooks and KV caches made afterwards use be. On
 * success the host fp32 weights are released: buffers converted from f16/bf16 at load are
 * freed (weights used in place from the mapped files stay mapped), so a large model does
 * not occupy host RAM twice. On failure nothing changes. Calling it with the backend in
 * use does nothing; going back to the CPU after an upload is not supported. */
ll_status ll_model_use_backend(ll_model *m, const ll_backend *be);
/* Total number of parameters (embedding counted once when tied). */
size_t ll_model_n_params(const ll_model *m);

/* Used by the per-architecture binders (ll_arch_llama.c, ll_arch_gpt2.c). */
ll_status ll_model_bind_llama(ll_model *m);
ll_status ll_model_bind_gpt2(ll_model *m);
/* Look a tensor up, check its shape against the config and return fp32 data
 * (in place when it is fp32 and aligned, else converted into an owned buffer). */
ll_status ll_model_tensor(ll_model *m, const char *name, int ndim, const int64_t *shape, const float **out);
ll_status ll_model_tensor_opt(ll_model *m, const char *name, int ndim, const int64_t *shape, const float **out);
/* Compute rope_inv_freq from the config (theta, llama3 / linear scaling). */
ll_status ll_model_init_rope(ll_model *m);

#endif
