/* Weight binding for the Llama family (Llama, Mistral, Qwen2), under Hugging Face names.
 * GGUF and llama2.c checkpoints arrive here renamed by their loaders. */
#include <stdio.h>

#include "../core/ll_alloc.h"
#include "ll_model.h"

static ll_mat ll_linear(const float *w, int out, int in) {
    return (ll_mat){.w = w, .out = out, .in = in, .ld = in, .trans = true};
}

ll_status ll_model_bind_llama(ll_model *m) {
    const ll_config *c = &m->cfg;
    int64_t d = c->d_model, q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t ff = c->d_ff, V = c->vocab_size;
    ll_weights *w = &m->w;
    w->layers = ll_calloc((size_t)c->n_layers, sizeof *w->layers, "layer table");
    if (!w->layers) return LL_ERR_NOMEM;
    const float *p;
    LL_TRY(ll_model_tensor(m, "model.embed_tokens.weight", 2, (int64_t[]){V, d}, &w->tok_emb));
    LL_TRY(ll_model_tensor(m, "model.norm.weight", 1, (int64_t[]){d}, &w->norm_w));
    char n[160];
    for (int l = 0; l < c->n_layers; l++) {
        ll_layer_weights *L = &w->layers[l];
#define LL_NAME(fmt) (snprintf(n, sizeof n, "model.layers.%d." fmt, l), n)
        LL_TRY(ll_model_tensor(m, LL_NAME("input_layernorm.weight"), 1, (int64_t[]){d}, &L->attn_norm_w));
        LL_TRY(ll_model_tensor(m, LL_NAME("post_attention_layernorm.weight"), 1, (int64_t[]){d}, &L->mlp_norm_w));
        LL_TRY(ll_model_tensor(m, LL_NAME("self_attn.q_proj.weight"), 2, (int64_t[]){q, d}, &p));
        L->wq = ll_linear(p, (int)q, (int)d);
        LL_TRY(ll_model_tensor(m, LL_NAME("self_attn.k_proj.weight"), 2, (int64_t[]){kv, d}, &p));
        L->wk = ll_linear(p, (int)kv, (int)d);
        LL_TRY(ll_model_tensor(m, LL_NAME("self_attn.v_proj.weight"), 2, (int64_t[]){kv, d}, &p));
        L->wv = ll_linear(p, (int)kv, (int)d);
        LL_TRY(ll_model_tensor(m, LL_NAME("self_attn.o_proj.weight"), 2, (int64_t[]){d, q}, &p));
        L->wo = ll_linear(p, (int)d, (int)q);
        if (c->qkv_bias) {
            LL_TRY(ll_model_tensor(m, LL_NAME("self_attn.q_proj.bias"), 1, (int64_t[]){q}, &L->bq));
            LL_TRY(ll_model_tensor(m, LL_NAME("self_attn.k_proj.bias"), 1, (int64_t[]){kv}, &L->bk));
            LL_TRY(ll_model_tensor(m, LL_NAME("self_attn.v_proj.bias"), 1, (int64_t[]){kv}, &L->bv));
        }
        LL_TRY(ll_model_tensor(m, LL_NAME("mlp.gate_proj.weight"), 2, (int64_t[]){ff, d}, &p));
        L->w_gate = ll_linear(p, (int)ff, (int)d);
        LL_TRY(ll_model_tensor(m, LL_NAME("mlp.up_proj.weight"), 2, (int64_t[]){ff, d}, &p));
        L->w_up = ll_linear(p, (int)ff, (int)d);
        LL_TRY(ll_model_tensor(m, LL_NAME("mlp.down_proj.weight"), 2, (int64_t[]){d, ff}, &p));
        L->w_down = ll_linear(p, (int)d, (int)ff);
#undef LL_NAME
    }
    /* A tied checkpoint usually omits lm_head; an untied one must have it. Some tied
     * checkpoints still store a copy: the config decides, as in transformers. */
    if (c->tied_embeddings) {
        w->lm_head = ll_linear(w->tok_emb, (int)V, (int)d);
    } else {
        LL_TRY(ll_model_tensor(m, "lm_head.weight", 2, (int64_t[]){V, d}, &p));
        w->lm_head = ll_linear(p, (int)V, (int)d);
    }
    return LL_OK;
}
