/* Moving a loaded model onto another backend: every weight the forward pass reads is
 * uploaded once into that backend's memory and weight format (matrices and the token
 * embedding through load_matrix, bf16 on CUDA; vectors as fp32), and m->w is swapped
 * for the uploaded view. The forward pass stays one piece of code: it reads m->w and
 * calls m->be, whichever backend that is. After a successful upload the host copies
 * converted at load are freed (see the end of ll_model_use_backend). */
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "ll_model.h"

typedef struct {
    ll_model *m;
    const ll_backend *be;
} ll_upload;

static ll_status ll_own(ll_model *m, void *p) {
    void **nb = realloc(m->be_bufs, (m->n_be_bufs + 1) * sizeof *nb);
    if (!nb) return ll_err(LL_ERR_NOMEM, "model upload: cannot record a device buffer");
    m->be_bufs = nb;
    m->be_bufs[m->n_be_bufs++] = p;
    return LL_OK;
}

static ll_status ll_up_vec(ll_upload *u, const float **dst, const float *src, size_t n, const char *what) {
    *dst = NULL;
    if (!src) return LL_OK;
    float *p = u->be->alloc(n * sizeof(float));
    if (!p) return ll_err_prefix(LL_ERR_NOMEM, "uploading %s: ", what);
    ll_status st = ll_own(u->m, p);
    if (st) {
        u->be->free(p);
        return st;
    }
    u->be->from_host(p, src, n * sizeof(float));
    *dst = p;
    return LL_OK;
}

static ll_status ll_up_mat(ll_upload *u, ll_mat *dst, const ll_mat *src, const char *what) {
    void *owned = NULL;
    LL_TRY(u->be->load_matrix(dst, &owned, src, what));
    ll_status st = ll_own(u->m, owned);
    if (st) u->be->free(owned);
    return st;
}

ll_status ll_model_use_backend(ll_model *m, const ll_backend *be) {
    if (!be) return ll_err(LL_ERR_ARG, "model: no backend given");
    if (be == m->be) return LL_OK;
    if (!m->be->host_memory)
        return ll_err(LL_ERR_UNSUPPORTED, "model: already on backend %s; moving it again is not supported",
                      m->be->name);
    if (!be->load_matrix) return ll_err(LL_ERR_UNSUPPORTED, "model: backend %s cannot take weights", be->name);
    const ll_config *c = &m->cfg;
    const ll_weights *h = &m->w;
    ll_weights dw = {0};
    dw.layers = ll_calloc((size_t)c->n_layers, sizeof *dw.layers, "device layer table");
    if (!dw.layers) return LL_ERR_NOMEM;
    /* Buffers are recorded in m->be_bufs as they are made, but m->be still names the CPU
     * until the end: on failure they are released here with be->free. */
    ll_upload u = {m, be};
    size_t d = (size_t)c->d_model, qw = (size_t)c->n_heads * c->head_dim, kw = (size_t)c->n_kv_heads * c->head_dim;
    size_t ff = (size_t)c->d_ff;
    ll_status st = LL_OK;
    ll_mat tok = {.w = h->tok_emb, .out = c->vocab_size, .in = c->d_model, .ld = c->d_model, .trans = true};
    ll_mat tok_dev;
#define LL_UP(expr)                                                                                               \
    do {                                                                                                          \
        if ((st = (expr))) goto fail;                                                                             \
    } while (0)
    LL_UP(ll_up_mat(&u, &tok_dev, &tok, "token embedding"));
    dw.tok_emb = tok_dev.w;
    LL_UP(ll_up_vec(&u, &dw.pos_emb, h->pos_emb, (size_t)c->max_pos * d, "position embedding"));
    LL_UP(ll_up_vec(&u, &dw.norm_w, h->norm_w, d, "final norm weight"));
    LL_UP(ll_up_vec(&u, &dw.norm_b, h->norm_b, d, "final norm bias"));
    LL_UP(ll_up_vec(&u, &dw.rope_inv_freq, h->rope_inv_freq, (size_t)(c->head_dim / 2 > 0 ? c->head_dim / 2 : 1),
                    "RoPE frequencies"));
    /* A tied head is the embedding table itself: one copy on the device too. */
    if (h->lm_head.w == h->tok_emb && h->lm_head.trans && h->lm_head.ld == c->d_model) dw.lm_head = tok_dev;
    else LL_UP(ll_up_mat(&u, &dw.lm_head, &h->lm_head, "lm_head"));
    for (int l = 0; l < c->n_layers; l++) {
        const ll_layer_weights *s = &h->layers[l];
        ll_layer_weights *t = &dw.layers[l];
        LL_UP(ll_up_vec(&u, &t->attn_norm_w, s->attn_norm_w, d, "attention norm weight"));
        LL_UP(ll_up_vec(&u, &t->attn_norm_b, s->attn_norm_b, d, "attention norm bias"));
        LL_UP(ll_up_vec(&u, &t->mlp_norm_w, s->mlp_norm_w, d, "MLP norm weight"));
        LL_UP(ll_up_vec(&u, &t->mlp_norm_b, s->mlp_norm_b, d, "MLP norm bias"));
        LL_UP(ll_up_mat(&u, &t->wq, &s->wq, "q projection"));
        LL_UP(ll_up_mat(&u, &t->wk, &s->wk, "k projection"));
        LL_UP(ll_up_mat(&u, &t->wv, &s->wv, "v projection"));
        LL_UP(ll_up_mat(&u, &t->wo, &s->wo, "o projection"));
        LL_UP(ll_up_vec(&u, &t->bq, s->bq, qw, "q bias"));
        LL_UP(ll_up_vec(&u, &t->bk, s->bk, kw, "k bias"));
        LL_UP(ll_up_vec(&u, &t->bv, s->bv, kw, "v bias"));
        LL_UP(ll_up_vec(&u, &t->bo, s->bo, d, "o bias"));
        if (s->w_gate.w) LL_UP(ll_up_mat(&u, &t->w_gate, &s->w_gate, "gate projection"));
        LL_UP(ll_up_mat(&u, &t->w_up, &s->w_up, "up projection"));
        LL_UP(ll_up_mat(&u, &t->w_down, &s->w_down, "down projection"));
        LL_UP(ll_up_vec(&u, &t->b_up, s->b_up, ff, "up bias"));
        LL_UP(ll_up_vec(&u, &t->b_down, s->b_down, d, "down bias"));
    }
#undef LL_UP
    if ((st = be->sync())) goto fail;
    /* From here on the forward pass reads only the uploaded copy, and going back is not
     * supported: release the host weights. The fp32 buffers widened from f16/bf16 at load
     * are private memory (27 GB for a 7B model), which would otherwise sit in host RAM
     * beside the device copy for the model's life. Weights used in place from the mapped
     * files cost no private memory and stay mapped with the tensor set. The sync above
     * waited for every upload, so nothing reads them any more. */
    free(m->w.layers);
    for (size_t i = 0; i < m->n_bufs; i++) free(m->bufs[i]);
    free(m->bufs);
    m->bufs = NULL;
    m->n_bufs = 0;
    m->w = dw;
    m->be = be;
    return LL_OK;
fail:
    for (size_t i = 0; i < m->n_be_bufs; i++) be->free(m->be_bufs[i]);
    free(m->be_bufs);
    m->be_bufs = NULL;
    m->n_be_bufs = 0;
    free(dw.layers);
    return st;
}
