/* One-token decode steps (see ll_decoder.h).
 *
 * A recordable step cannot be ll_forward: that allocates per call, copies token ids and
 * positions synchronously, writes the new K/V rows at an offset computed on the host and
 * gives attention the cache length as a host value; a recording would replay the first
 * step's values for ever. The step here instead keeps every buffer for the decoder's life
 * and reads the two per-step values (token id, position = cache length) from a parameter
 * block in backend memory, rewritten before each step: embed and rope take their id and
 * position pointers from it, kv_append writes the K/V rows at the position it holds, and
 * attention_at reads it as n_past, with its launch sized for the cache capacity.
 *
 * The ops and their order are ll_forward's for a one-row batch without hooks (the same
 * add_norm fusions), so on the CPU the fixed step equals ll_forward bit for bit
 * (test/test_decoder.c). On the GPU only the attention's key splits differ (sized for the
 * capacity, not the live length), which changes the summation order and nothing else. */
#include "ll_decoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"

struct ll_decoder {
    ll_model *m;
    ll_kv_cache *cache;
    int slot;
    ll_decode_mode mode;
    bool strict;     /* GRAPH asked for by name: a failed recording is the step's error */
    char why[320];   /* why graphs were given up (AUTO), or empty */
    /* LL_DECODE_FIXED / GRAPH: backend buffers kept across steps (a recording points to them). */
    float *x, *xn, *q, *k, *v, *z, *o, *h1, *h2, *logits;
    int32_t *params; /* [token id, position] */
    void *graph;     /* the backend's graph context (GRAPH) */
    int warm;        /* GRAPH: the first step ran eagerly, the scratch is sized */
    int recorded;    /* GRAPH: the step is recorded */
};

static bool ll_graphs_disabled(void) {
    const char *e = getenv("LL_NO_GRAPHS");
    return e && *e && strcmp(e, "0") != 0;
}

static bool ll_can_fixed(const ll_backend *be) { return be->kv_append && be->attention_at; }
static bool ll_can_graph(const ll_backend *be) {
    return ll_can_fixed(be) && be->graph_new && be->graph_free && be->graph_begin && be->graph_end &&
           be->graph_launch;
}

static ll_status ll_decoder_bufs(ll_decoder *d) {
    const ll_config *c = &d->m->cfg;
    const ll_backend *be = d->m->be;
    size_t dm = (size_t)c->d_model, qw = (size_t)c->n_heads * c->head_dim, kw = (size_t)c->n_kv_heads * c->head_dim;
    size_t ff = (size_t)c->d_ff, V = (size_t)c->vocab_size;
    struct {
        void **p;
        size_t bytes;
    } want[] = {
        {(void **)&d->x, dm * 4},  {(void **)&d->xn, dm * 4}, {(void **)&d->q, qw * 4},      {(void **)&d->k, kw * 4},
        {(void **)&d->v, kw * 4},  {(void **)&d->z, qw * 4},  {(void **)&d->o, dm * 4},      {(void **)&d->h1, ff * 4},
        {(void **)&d->h2, ff * 4}, {(void **)&d->logits, V * 4}, {(void **)&d->params, 2 * sizeof(int32_t)},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!(*want[i].p = be->alloc(want[i].bytes ? want[i].bytes : 4)))
            return ll_err_prefix(LL_ERR_NOMEM, "decoder: cannot allocate its buffers (%zu bytes): ", want[i].bytes);
    return LL_OK;
}

ll_status ll_decoder_new_mode(ll_decoder **out, ll_model *m, ll_kv_cache *cache, int slot, ll_decode_mode mode) {
    *out = NULL;
    if (!m || !cache) return ll_err(LL_ERR_ARG, "decoder: needs a model and a KV cache");
    /* The checks ll_forward makes per call, made once here so a bad decoder fails at
     * creation rather than at its first step. */
    if (cache->n_layers != m->cfg.n_layers || cache->kv_width != m->cfg.n_kv_heads * m->cfg.head_dim)
        return ll_err(LL_ERR_ARG, "decoder: the KV cache was made for another model");
    if (cache->be != m->be)
        return ll_err(LL_ERR_ARG, "decoder: the KV cache is in %s memory but the model runs on %s (make the cache "
                                  "after ll_model_use_backend)", cache->be->name, m->be->name);
    if (slot < 0 || slot >= cache->n_slots)
        return ll_err(LL_ERR_ARG, "decoder: KV slot %d does not exist, the cache has %d", slot, cache->n_slots);
    const ll_backend *be = m->be;
    ll_decode_mode asked = mode;
    if (mode == LL_DECODE_AUTO) mode = ll_can_graph(be) && !ll_graphs_disabled() ? LL_DECODE_GRAPH : LL_DECODE_FORWARD;
    if (mode == LL_DECODE_FIXED && !ll_can_fixed(be))
        return ll_err(LL_ERR_UNSUPPORTED, "decoder: the %s backend has no kv_append / attention_at", be->name);
    if (mode == LL_DECODE_GRAPH && !ll_can_graph(be))
        return ll_err(LL_ERR_UNSUPPORTED, "decoder: the %s backend does not record graphs", be->name);
    if (mode != LL_DECODE_FORWARD && mode != LL_DECODE_FIXED && mode != LL_DECODE_GRAPH)
        return ll_err(LL_ERR_ARG, "decoder: unknown mode %d", (int)mode);
    ll_decoder *d = ll_calloc(1, sizeof *d, "decoder");
    if (!d) return LL_ERR_NOMEM;
    d->m = m;
    d->cache = cache;
    d->slot = slot;
    d->mode = mode;
    d->strict = asked == LL_DECODE_GRAPH;
    ll_status st = LL_OK;
    if (mode != LL_DECODE_FORWARD) st = ll_decoder_bufs(d);
    if (!st && mode == LL_DECODE_GRAPH && !(d->graph = be->graph_new()))
        st = ll_err_prefix(LL_ERR_NOMEM, "decoder: ");
    if (st) {
        ll_decoder_free(d);
        return st;
    }
    *out = d;
    return LL_OK;
}

ll_status ll_decoder_new(ll_decoder **out, ll_model *m, ll_kv_cache *cache, int slot) {
    return ll_decoder_new_mode(out, m, cache, slot, LL_DECODE_AUTO);
}

ll_decode_mode ll_decoder_mode(const ll_decoder *d) { return d->mode; }

const char *ll_decoder_note(const ll_decoder *d) { return d->why[0] ? d->why : NULL; }

static void ll_norm(const ll_backend *be, const ll_config *c, float *y, const float *x, const float *w,
                    const float *b) {
    if (c->norm == LL_NORM_RMS) be->rmsnorm(y, x, w, 1, c->d_model, c->norm_eps);
    else be->layernorm(y, x, w, b, 1, c->d_model, c->norm_eps);
}

/* Queue one step's ops: ll_forward's for one row without hooks, reading the token id and
 * position from d->params. Host work only decides what to launch; no value of this step
 * is baked into any launch. */
static void ll_decode_ops(ll_decoder *d) {
    const ll_model *m = d->m;
    const ll_config *c = &m->cfg;
    const ll_backend *be = m->be;
    ll_kv_cache *kc = d->cache;
    int L = c->n_layers, dm = c->d_model, H = c->n_heads, Hkv = c->n_kv_heads, hd = c->head_dim;
    int kw = Hkv * hd;
    const int32_t *tok = d->params, *pos = d->params + 1;
    float scale = 1.0f / sqrtf((float)hd);
    int64_t off[2] = {0, 1};
    be->embed(d->x, m->w.tok_emb, c->learned_pos ? m->w.pos_emb : NULL, tok, pos, 1, dm);
    bool fuse = be->add_norm != NULL, xn_ready = false, layer_norm = c->norm == LL_NORM_LAYER;
    for (int l = 0; l < L; l++) {
        const ll_layer_weights *W = &m->w.layers[l];
        if (!xn_ready) ll_norm(be, c, d->xn, d->x, W->attn_norm_w, W->attn_norm_b);
        xn_ready = false;
        be->matmul(d->q, d->xn, &W->wq, W->bq, 1, false);
        be->matmul(d->k, d->xn, &W->wk, W->bk, 1, false);
        be->matmul(d->v, d->xn, &W->wv, W->bv, 1, false);
        be->rope(d->q, pos, 1, H, hd, m->w.rope_inv_freq, c->rope_layout);
        be->rope(d->k, pos, 1, Hkv, hd, m->w.rope_inv_freq, c->rope_layout);
        size_t base = ((size_t)l * kc->n_slots + (size_t)d->slot) * (size_t)kc->cap * (size_t)kw;
        const float *ks = kc->k + base, *vs = kc->v + base;
        be->kv_append(kc->k + base, kc->v + base, d->k, d->v, pos, kw);
        ll_attn_args aa = {.q = d->q, .z = d->z, .T = 1, .n_heads = H, .n_kv_heads = Hkv, .head_dim = hd,
                           .n_seq = 1, .seq_off = off, .k = &ks, .v = &vs, .kv_stride = kw, .scale = scale,
                           .sliding_window = c->sliding_window};
        be->attention_at(&aa, pos, kc->cap);
        be->matmul(d->o, d->z, &W->wo, W->bo, 1, false);
        if (fuse) {
            be->add_norm(d->x, d->xn, d->o, W->mlp_norm_w, W->mlp_norm_b, layer_norm, 1, dm, c->norm_eps);
        } else {
            be->add(d->x, d->o, (size_t)dm);
            ll_norm(be, c, d->xn, d->x, W->mlp_norm_w, W->mlp_norm_b);
        }
        if (c->mlp == LL_MLP_SWIGLU) {
            be->matmul(d->h1, d->xn, &W->w_gate, NULL, 1, false);
            be->matmul(d->h2, d->xn, &W->w_up, NULL, 1, false);
            be->swiglu(d->h1, d->h1, d->h2, (size_t)c->d_ff);
        } else {
            be->matmul(d->h1, d->xn, &W->w_up, W->b_up, 1, false);
            be->gelu_new(d->h1, (size_t)c->d_ff);
        }
        be->matmul(d->o, d->h1, &W->w_down, W->b_down, 1, false);
        if (fuse && l + 1 < L) {
            const ll_layer_weights *Wn = &m->w.layers[l + 1];
            be->add_norm(d->x, d->xn, d->o, Wn->attn_norm_w, Wn->attn_norm_b, layer_norm, 1, dm, c->norm_eps);
            xn_ready = true;
        } else {
            be->add(d->x, d->o, (size_t)dm);
        }
    }
    ll_norm(be, c, d->xn, d->x, m->w.norm_w, m->w.norm_b);
    be->matmul(d->logits, d->xn, &m->w.lm_head, NULL, 1, false);
}

static ll_status ll_forward_step(ll_decoder *d, int32_t token, float *logits_out) {
    int64_t off[2] = {0, 1};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = &token, .slot = &d->slot};
    ll_forward_opts fo = {.cache = d->cache, .logits = LL_LOGITS_LAST, .logits_out = logits_out};
    /* ll_forward checks the token id and the slot's remaining capacity. */
    return ll_forward(d->m, &b, &fo);
}

/* GRAPH: eager first, then record once, then replay. A failed recording leaves plain
 * ll_forward steps for the rest of the decoder's life (mode LL_DECODE_FORWARD). */
static ll_status ll_graph_step(ll_decoder *d) {
    const ll_backend *be = d->m->be;
    ll_status st;
    if (!d->warm) {
        if ((st = be->graph_begin(d->graph, false))) return st;
        ll_decode_ops(d);
        if ((st = be->graph_end(d->graph))) return st;
        d->warm = 1;
        return LL_OK;
    }
    if (!d->recorded) {
        if ((st = be->graph_begin(d->graph, true))) return st;
        ll_decode_ops(d);
        if ((st = be->graph_end(d->graph))) {
            d->mode = LL_DECODE_FORWARD;
            return ll_err_prefix(st, "decoder: recording the decode step failed (plain steps from now on; "
                                     "LL_NO_GRAPHS=1 avoids graphs): ");
        }
        d->recorded = 1;
    }
    return be->graph_launch(d->graph);
}

ll_status ll_decoder_step(ll_decoder *d, int32_t token, float *logits_out) {
    if (!logits_out) return ll_err(LL_ERR_ARG, "decoder: no buffer for the logits");
    if (d->mode == LL_DECODE_FORWARD) return ll_forward_step(d, token, logits_out);
    const ll_config *c = &d->m->cfg;
    const ll_backend *be = d->m->be;
    ll_kv_cache *kc = d->cache;
    int *len = kc->len, ns = kc->n_slots, n = len[d->slot];
    for (int l = 1; l < c->n_layers; l++)
        if (len[l * ns + d->slot] != n) return ll_forward_step(d, token, logits_out); /* ragged: ll_forward's rules */
    /* ll_forward's refusals, with its words. */
    if (token < 0 || token >= c->vocab_size)
        return ll_err(LL_ERR_ARG, "forward: token id %d at row 0 is outside the vocabulary [0, %d)", token,
                      c->vocab_size);
    if (n + 1 > kc->cap)
        return ll_err(LL_ERR_ARG, "forward: KV slot %d would hold %d tokens at layer 0, capacity is %d", d->slot, n + 1,
                      kc->cap);
    if (c->learned_pos && n >= c->max_pos)
        return ll_err(LL_ERR_ARG, "forward: position %d at row 0 is outside the model's range [0, %d)", n, c->max_pos);
    int32_t params[2] = {token, n};
    be->from_host(d->params, params, sizeof params);
    ll_status st = LL_OK;
    if (d->mode == LL_DECODE_FIXED) ll_decode_ops(d);
    else st = ll_graph_step(d);
    if (st && d->mode == LL_DECODE_FORWARD && !d->strict) {
        /* The recording failed (nothing of it ran) and graphs were only the default: keep
         * decoding without them rather than fail a generation that plain steps can do,
         * and keep the reason for ll_decoder_note. */
        snprintf(d->why, sizeof d->why, "%s", ll_last_error());
        return ll_forward_step(d, token, logits_out);
    }
    if (!st) be->to_host(logits_out, d->logits, (size_t)c->vocab_size * sizeof(float));
    /* Ops report failures at the next sync; the first failure wins. */
    ll_status sst = be->sync();
    if (!st) st = sst;
    if (st) return st;
    for (int l = 0; l < c->n_layers; l++) len[l * ns + d->slot]++;
    return LL_OK;
}

void ll_decoder_free(ll_decoder *d) {
    if (!d) return;
    const ll_backend *be = d->m->be;
    if (d->graph) be->graph_free(d->graph);
    void *all[] = {d->x, d->xn, d->q, d->k, d->v, d->z, d->o, d->h1, d->h2, d->logits, d->params};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i]) be->free(all[i]);
    free(d);
}
