/* Weight binding for GPT-2: Conv1D weights stored [in][out], fused c_attn split into
 * q/k/v column slices (no copy), learned positions, LayerNorm with bias, tied head.
 * Names appear with and without the "transformer." prefix depending on who saved the file. */
#include <stdio.h>

#include "../core/ll_alloc.h"
#include "ll_model.h"

static ll_status ll_gpt2_tensor(ll_model *m, const char *prefix, const char *name, int ndim, const int64_t *shape,
                                const float **out) {
    char n[200];
    snprintf(n, sizeof n, "%s%s", prefix, name);
    return ll_model_tensor(m, n, ndim, shape, out);
}

static ll_mat ll_conv1d(const float *w, int in, int out, int ld) {
    return (ll_mat){.w = w, .out = out, .in = in, .ld = ld, .trans = false};
}

ll_status ll_model_bind_gpt2(ll_model *m) {
    const ll_config *c = &m->cfg;
    int64_t d = c->d_model, ff = c->d_ff, V = c->vocab_size, P = c->max_pos;
    const char *pre = ll_tensor_set_find(&m->ts, "transformer.wte.weight") ? "transformer." : "";
    ll_weights *w = &m->w;
    w->layers = ll_calloc((size_t)c->n_layers, sizeof *w->layers, "layer table");
    if (!w->layers) return LL_ERR_NOMEM;
    LL_TRY(ll_gpt2_tensor(m, pre, "wte.weight", 2, (int64_t[]){V, d}, &w->tok_emb));
    LL_TRY(ll_gpt2_tensor(m, pre, "wpe.weight", 2, (int64_t[]){P, d}, &w->pos_emb));
    LL_TRY(ll_gpt2_tensor(m, pre, "ln_f.weight", 1, (int64_t[]){d}, &w->norm_w));
    LL_TRY(ll_gpt2_tensor(m, pre, "ln_f.bias", 1, (int64_t[]){d}, &w->norm_b));
    char n[160];
    const float *p, *b;
    for (int l = 0; l < c->n_layers; l++) {
        ll_layer_weights *L = &w->layers[l];
#define LL_NAME(fmt) (snprintf(n, sizeof n, "h.%d." fmt, l), n)
        LL_TRY(ll_gpt2_tensor(m, pre, LL_NAME("ln_1.weight"), 1, (int64_t[]){d}, &L->attn_norm_w));
        LL_TRY(ll_gpt2_tensor(m, pre, LL_NAME("ln_1.bias"), 1, (int64_t[]){d}, &L->attn_norm_b));
        LL_TRY(ll_gpt2_tensor(m, pre, LL_NAME("ln_2.weight"), 1, (int64_t[]){d}, &L->mlp_norm_w));
        LL_TRY(ll_gpt2_tensor(m, pre, LL_NAME("ln_2.bias"), 1, (int64_t[]){d}, &L->mlp_norm_b));
        LL_TRY(ll_gpt2_tensor(m, pre, LL_NAME("attn.c_attn.weight"), 2, (int64_t[]){d, 3 * d}, &p));
        LL_TRY(ll_gpt2_tensor(m, pre, LL_NAME("attn.c_attn.bias"), 1, (int64_t[]){3 * d}, &b));
        L->wq = ll_conv1d(p, (int)d, (int)d, (int)(3 * d));
        L->wk = ll_conv1d(p + d, (int)d, (int)d, (int)(3 * d));
        L->wv = ll_conv1d(p + 2 * d, (int)d, (int)d, (int)(3 * d));
        L->bq = b;
        L->bk = b + d;
        L->bv = b + 2 * d;
        LL_TRY(ll_gpt2_tensor(m, pre, LL_NAME("attn.c_proj.weight"), 2, (int64_t[]){d, d}, &p));
        LL_TRY(ll_gpt2_tensor(m, pre, LL_NAME("attn.c_proj.bias"), 1, (int64_t[]){d}, &L->bo));
        L->wo = ll_conv1d(p, (int)d, (int)d, (int)d);
        LL_TRY(ll_gpt2_tensor(m, pre, LL_NAME("mlp.c_fc.weight"), 2, (int64_t[]){d, ff}, &p));
        LL_TRY(ll_gpt2_tensor(m, pre, LL_NAME("mlp.c_fc.bias"), 1, (int64_t[]){ff}, &L->b_up));
        L->w_up = ll_conv1d(p, (int)d, (int)ff, (int)ff);
        LL_TRY(ll_gpt2_tensor(m, pre, LL_NAME("mlp.c_proj.weight"), 2, (int64_t[]){ff, d}, &p));
        LL_TRY(ll_gpt2_tensor(m, pre, LL_NAME("mlp.c_proj.bias"), 1, (int64_t[]){d}, &L->b_down));
        L->w_down = ll_conv1d(p, (int)ff, (int)d, (int)d);
#undef LL_NAME
    }
    if (c->tied_embeddings || !ll_tensor_set_find(&m->ts, "lm_head.weight")) {
        w->lm_head = (ll_mat){.w = w->tok_emb, .out = (int)V, .in = (int)d, .ld = (int)d, .trans = true};
    } else {
        LL_TRY(ll_model_tensor(m, "lm_head.weight", 2, (int64_t[]){V, d}, &p));
        w->lm_head = (ll_mat){.w = p, .out = (int)V, .in = (int)d, .ld = (int)d, .trans = true};
    }
    return LL_OK;
}
