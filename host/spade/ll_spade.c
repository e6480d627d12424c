/* SPADE: two-row (or, with the row-0 cache, one-row) continuation of an intermediate
 * layer through the remaining blocks. See ll_spade.h and docs/spade.md. */
#include "ll_spade.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"

/* Distinct first tokens whose row-0 K/V are kept at once. Prompts almost always start with
 * BOS, so one is used; more are recomputed into the least recently filled slot. */
#define LL_SPADE_PREFIX_SLOTS 4

struct ll_spade {
    ll_model *m;
    ll_spade_opts o;
    int max_batch;
    ll_kv_cache *cache;                          /* slots [0, max_batch): answer rows; then prefixes */
    int32_t prefix_tok[LL_SPADE_PREFIX_SLOTS];   /* first token held by each prefix slot, -1 empty */
    int prefix_next;                             /* round-robin victim */
    int32_t *slot_holds;                         /* [max_batch] first token copied into the slot, -1 none */
    float *x, *res;                              /* [2 * max_batch][d] */
    float *lg;                                   /* [max_batch][vocab] */
    int32_t *pos;                                /* [2 * max_batch] */
    int64_t *off;                                /* [max_batch + 1] */
    int *slot;                                   /* [max_batch] */
    int64_t rows_run, token_layers;
    ll_hooks *hooks;
};

const char *ll_spade_positions_name(ll_spade_positions p) { return p == LL_SPADE_POS_REINDEX ? "reindex" : "orig"; }
const char *ll_spade_decode_name(ll_spade_decode d) { return d == LL_SPADE_DECODE_VOCAB ? "vocab" : "options"; }
const char *ll_spade_rows_name(ll_spade_rows r) { return r == LL_SPADE_ROWS_TWO ? "two" : "cached"; }

ll_status ll_spade_parse_positions(const char *s, ll_spade_positions *out) {
    if (s && !strcmp(s, "orig")) *out = LL_SPADE_POS_ORIG;
    else if (s && !strcmp(s, "reindex")) *out = LL_SPADE_POS_REINDEX;
    else return ll_err(LL_ERR_ARG, "positions: expected orig or reindex, found \"%s\"", s ? s : "(null)");
    return LL_OK;
}

ll_status ll_spade_parse_decode(const char *s, ll_spade_decode *out) {
    if (s && !strcmp(s, "options")) *out = LL_SPADE_DECODE_OPTIONS;
    else if (s && !strcmp(s, "vocab")) *out = LL_SPADE_DECODE_VOCAB;
    else return ll_err(LL_ERR_ARG, "decode: expected options or vocab, found \"%s\"", s ? s : "(null)");
    return LL_OK;
}

void ll_spade_opts_describe(const ll_spade_opts *o, char *buf, size_t n) {
    snprintf(buf, n, "positions=%s decode=%s rows=%s", ll_spade_positions_name(o->positions),
             ll_spade_decode_name(o->decode), ll_spade_rows_name(o->rows));
}

/* ---- states ---- */

typedef struct {
    ll_spade_states *s;
    int L;
} ll_states_sink;

/* The record lists rows (row 0, answer row) of every prompt in order, so data row 2i+k is
 * prompt i's row k. resid_pre of block l is h^l; resid_post of the last block is h^L. */
static ll_status ll_states_fn(void *user, const ll_hook_rows *r) {
    ll_states_sink *k = user;
    int layer = r->point == LL_HOOK_RESID_POST ? r->layer + 1 : r->layer;
    if (layer < 0 || layer > k->L || r->n_rows != 2 * k->s->n_prompts || !r->data)
        return ll_err(LL_ERR_ARG, "SPADE states: unexpected record (layer %d, %d rows)", layer, r->n_rows);
    memcpy(k->s->h + (size_t)layer * r->n_rows * k->s->d_model, r->data, (size_t)r->n_rows * k->s->d_model * sizeof(float));
    return LL_OK;
}

void ll_spade_states_free(ll_spade_states *s) {
    if (!s) return;
    free(s->n_tok);
    free(s->first_tok);
    free(s->h);
    free(s->full_logits);
    memset(s, 0, sizeof *s);
}

ll_status ll_spade_states_collect(ll_model *m, const int32_t *const *tokens, const int *n_tok, int n_prompts,
                                  bool want_full_logits, ll_spade_states *out) {
    memset(out, 0, sizeof *out);
    if (n_prompts <= 0) return ll_err(LL_ERR_ARG, "SPADE states: no prompts");
    const ll_config *c = &m->cfg;
    int L = c->n_layers, d = c->d_model;
    int64_t T = 0;
    for (int i = 0; i < n_prompts; i++) {
        if (n_tok[i] < 1 || !tokens[i]) return ll_err(LL_ERR_ARG, "SPADE states: prompt %d has no tokens", i);
        T += n_tok[i];
    }
    out->n_prompts = n_prompts;
    out->n_layers = L;
    out->d_model = d;
    out->vocab = c->vocab_size;
    out->n_tok = malloc((size_t)n_prompts * sizeof *out->n_tok);
    out->first_tok = malloc((size_t)n_prompts * sizeof *out->first_tok);
    out->h = ll_calloc((size_t)(L + 1) * n_prompts * 2 * d, sizeof(float), "SPADE states");
    if (want_full_logits) out->full_logits = ll_calloc((size_t)n_prompts * c->vocab_size, sizeof(float), "SPADE logits");
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    int64_t *off = malloc((size_t)(n_prompts + 1) * sizeof *off);
    int64_t *rows = malloc((size_t)2 * n_prompts * sizeof *rows);
    ll_hooks *hk = NULL;
    ll_status st = LL_OK;
    if (!out->n_tok || !out->first_tok || !out->h || (want_full_logits && !out->full_logits) || !tok || !off || !rows) {
        st = ll_err(LL_ERR_NOMEM, "SPADE states: no memory for %d prompts (%lld tokens)", n_prompts, (long long)T);
        goto done;
    }
    off[0] = 0;
    for (int i = 0; i < n_prompts; i++) {
        memcpy(tok + off[i], tokens[i], (size_t)n_tok[i] * sizeof *tok);
        off[i + 1] = off[i] + n_tok[i];
        out->n_tok[i] = n_tok[i];
        out->first_tok[i] = tokens[i][0];
        rows[2 * i] = off[i];
        rows[2 * i + 1] = off[i + 1] - 1;
    }
    if ((st = ll_hooks_new(&hk, L))) goto done;
    ll_states_sink sink = {.s = out, .L = L};
    ll_record pre = {.point = LL_HOOK_RESID_PRE, .layer_lo = 0, .layer_hi = L - 1, .pos = LL_POS_LIST,
                     .rows = rows, .n_rows = 2 * n_prompts, .fn = ll_states_fn, .user = &sink};
    ll_record post = pre;
    post.point = LL_HOOK_RESID_POST;
    post.layer_lo = post.layer_hi = L - 1;
    if ((st = ll_hooks_add_record(hk, &pre)) || (st = ll_hooks_add_record(hk, &post))) goto done;
    ll_batch b = {.n_seq = n_prompts, .seq_off = off, .tokens = tok};
    ll_forward_opts fo = {.hooks = hk, .logits = want_full_logits ? LL_LOGITS_LAST : LL_LOGITS_NONE,
                          .logits_out = out->full_logits};
    st = ll_forward(m, &b, &fo);
    if (st) ll_err_prefix(st, "SPADE states: ");
done:
    ll_hooks_free(hk);
    free(tok);
    free(off);
    free(rows);
    if (st) ll_spade_states_free(out);
    return st;
}

/* ---- runner ---- */

void ll_spade_free(ll_spade *sp) {
    if (!sp) return;
    ll_kv_cache_free(sp->cache);
    free(sp->slot_holds);
    free(sp->x);
    free(sp->res);
    free(sp->lg);
    free(sp->pos);
    free(sp->off);
    free(sp->slot);
    free(sp);
}

ll_status ll_spade_new(ll_spade **out, ll_model *m, const ll_spade_opts *o, int max_batch) {
    *out = NULL;
    if (max_batch <= 0) return ll_err(LL_ERR_ARG, "SPADE: max_batch must be positive, found %d", max_batch);
    if (o && (o->positions > LL_SPADE_POS_REINDEX || o->decode > LL_SPADE_DECODE_VOCAB || o->rows > LL_SPADE_ROWS_TWO))
        return ll_err(LL_ERR_ARG, "SPADE: unknown switch value");
    ll_spade *sp = ll_calloc(1, sizeof *sp, "SPADE");
    if (!sp) return LL_ERR_NOMEM;
    sp->m = m;
    if (o) sp->o = *o;
    sp->max_batch = max_batch;
    int d = m->cfg.d_model;
    sp->slot_holds = malloc((size_t)max_batch * sizeof *sp->slot_holds);
    sp->x = malloc((size_t)2 * max_batch * d * sizeof(float));
    sp->res = malloc((size_t)2 * max_batch * d * sizeof(float));
    sp->lg = malloc((size_t)max_batch * m->cfg.vocab_size * sizeof(float));
    sp->pos = malloc((size_t)2 * max_batch * sizeof *sp->pos);
    sp->off = malloc((size_t)(max_batch + 1) * sizeof *sp->off);
    sp->slot = malloc((size_t)max_batch * sizeof *sp->slot);
    if (!sp->slot_holds || !sp->x || !sp->res || !sp->lg || !sp->pos || !sp->off || !sp->slot) {
        ll_spade_free(sp);
        return ll_err(LL_ERR_NOMEM, "SPADE: no memory for a batch of %d", max_batch);
    }
    for (int i = 0; i < max_batch; i++) sp->slot_holds[i] = -1;
    for (int i = 0; i < LL_SPADE_PREFIX_SLOTS; i++) sp->prefix_tok[i] = -1;
    if (sp->o.rows == LL_SPADE_ROWS_CACHED) {
        /* Capacity 2: the row-0 prefix and the answer row. */
        ll_status st = ll_kv_cache_new(&sp->cache, m, max_batch + LL_SPADE_PREFIX_SLOTS, 2);
        if (st) {
            ll_spade_free(sp);
            return ll_err_prefix(st, "SPADE: ");
        }
    }
    *out = sp;
    return LL_OK;
}

const ll_spade_opts *ll_spade_get_opts(const ll_spade *sp) { return &sp->o; }
void ll_spade_set_hooks(ll_spade *sp, ll_hooks *hooks) { sp->hooks = hooks; }
int64_t ll_spade_rows_run(const ll_spade *sp) { return sp->rows_run; }
int64_t ll_spade_token_layers(const ll_spade *sp) { return sp->token_layers; }

/* The cache slot holding row 0's K/V (every layer) for first token t, computed on first
 * use by a one-token forward at position 0: exactly what row 0 of any prompt starting with
 * t computes, since causal attention lets it see nothing else. */
static ll_status ll_spade_prefix(ll_spade *sp, int32_t t, int *slot_out) {
    for (int i = 0; i < LL_SPADE_PREFIX_SLOTS; i++)
        if (sp->prefix_tok[i] == t) {
            *slot_out = sp->max_batch + i;
            return LL_OK;
        }
    int i = sp->prefix_next;
    sp->prefix_next = (i + 1) % LL_SPADE_PREFIX_SLOTS;
    int slot = sp->max_batch + i;
    sp->prefix_tok[i] = -1;
    ll_kv_cache_reset(sp->cache, slot);
    int64_t off[2] = {0, 1};
    int32_t pos0 = 0;
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = &t, .pos = &pos0, .slot = &slot};
    ll_forward_opts fo = {.cache = sp->cache};
    ll_status st = ll_forward(sp->m, &b, &fo);
    if (st) return ll_err_prefix(st, "SPADE: row-0 cache for token %d: ", t);
    sp->prefix_tok[i] = t;
    *slot_out = slot;
    return LL_OK;
}

static ll_status ll_spade_chunk(ll_spade *sp, int layer, int n, const float *const *h0, const float *const *ha,
                                const int *n_tok, const int32_t *first_tok, float *logits_out, float *resid_out) {
    const ll_config *c = &sp->m->cfg;
    int d = c->d_model, L = c->n_layers;
    bool cached = sp->o.rows == LL_SPADE_ROWS_CACHED;
    int64_t T = 0;
    sp->off[0] = 0;
    for (int i = 0; i < n; i++) {
        if (n_tok[i] < 1) return ll_err(LL_ERR_ARG, "SPADE: prompt %d has length %d", i, n_tok[i]);
        if (!ha[i]) return ll_err(LL_ERR_ARG, "SPADE: prompt %d has no answer-row state", i);
        int32_t apos = sp->o.positions == LL_SPADE_POS_REINDEX ? 1 : n_tok[i] - 1;
        /* A one-token prompt: row 0 is the answer row; it runs alone at position 0, which is
         * what the full model computes for it. */
        bool single = n_tok[i] == 1;
        if (single) apos = 0;
        if (!cached && !single) {
            if (!h0 || !h0[i]) return ll_err(LL_ERR_ARG, "SPADE: prompt %d has no row-0 state (two-row mode)", i);
            memcpy(sp->x + T * d, h0[i], (size_t)d * sizeof(float));
            sp->pos[T++] = 0;
        }
        memcpy(sp->x + T * d, ha[i], (size_t)d * sizeof(float));
        sp->pos[T++] = apos;
        sp->off[i + 1] = T;
        if (cached) {
            sp->slot[i] = i;
            if (single) {
                ll_kv_cache_reset(sp->cache, i);
                sp->slot_holds[i] = -1;
            } else if (sp->slot_holds[i] != first_tok[i]) {
                /* The slot keeps its prefix between calls (truncated back to it after
                 * each), so it is copied only when the first token changes. */
                int ps = -1;
                LL_TRY(ll_spade_prefix(sp, first_tok[i], &ps));
                ll_kv_cache_copy_slot(sp->cache, i, ps, 1);
                sp->slot_holds[i] = first_tok[i];
            }
        }
    }
    ll_batch b = {.n_seq = n, .seq_off = sp->off, .pos = sp->pos, .slot = cached ? sp->slot : NULL};
    ll_forward_opts fo = {.start_layer = layer, .resid_in = sp->x, .cache = cached ? sp->cache : NULL, .hooks = sp->hooks,
                          .logits = logits_out ? LL_LOGITS_LAST : LL_LOGITS_NONE, .logits_out = logits_out,
                          .resid_out = resid_out ? sp->res : NULL};
    ll_status st = ll_forward(sp->m, &b, &fo);
    if (cached)
        for (int i = 0; i < n; i++) ll_kv_cache_truncate(sp->cache, i, n_tok[i] == 1 ? 0 : 1);
    if (st) return ll_err_prefix(st, "SPADE at layer %d: ", layer);
    if (layer < L) {
        sp->rows_run += T;
        sp->token_layers += T * (int64_t)(L - layer);
    }
    if (resid_out)
        for (int i = 0; i < n; i++) memcpy(resid_out + (size_t)i * d, sp->res + (size_t)(sp->off[i + 1] - 1) * d, (size_t)d * sizeof(float));
    return LL_OK;
}

ll_status ll_spade_run_rows(ll_spade *sp, int layer, int n, const float *const *h0, const float *const *ha,
                            const int *n_tok, const int32_t *first_tok, float *logits_out, float *resid_out) {
    const ll_config *c = &sp->m->cfg;
    if (layer < 0 || layer > c->n_layers)
        return ll_err(LL_ERR_ARG, "SPADE: layer %d outside 0..%d", layer, c->n_layers);
    if (n < 0 || (n > 0 && (!ha || !n_tok || !first_tok))) return ll_err(LL_ERR_ARG, "SPADE: missing inputs");
    for (int i0 = 0; i0 < n; i0 += sp->max_batch) {
        int k = n - i0 < sp->max_batch ? n - i0 : sp->max_batch;
        LL_TRY(ll_spade_chunk(sp, layer, k, h0 ? h0 + i0 : NULL, ha + i0, n_tok + i0, first_tok + i0,
                              logits_out ? logits_out + (size_t)i0 * c->vocab_size : NULL,
                              resid_out ? resid_out + (size_t)i0 * c->d_model : NULL));
    }
    return LL_OK;
}

ll_status ll_spade_run(ll_spade *sp, int layer, const ll_spade_states *st, int p0, int n, float *logits_out,
                       float *resid_out) {
    if (!st || p0 < 0 || n < 0 || p0 + n > st->n_prompts)
        return ll_err(LL_ERR_ARG, "SPADE: prompts [%d, %d) outside the %d collected", p0, p0 + n, st ? st->n_prompts : 0);
    if (st->d_model != sp->m->cfg.d_model || st->n_layers != sp->m->cfg.n_layers)
        return ll_err(LL_ERR_ARG, "SPADE: states were collected with another model");
    if (layer < 0 || layer > st->n_layers)
        return ll_err(LL_ERR_ARG, "SPADE: layer %d outside 0..%d", layer, st->n_layers);
    const float **h0 = malloc((size_t)(n ? n : 1) * sizeof *h0);
    const float **ha = malloc((size_t)(n ? n : 1) * sizeof *ha);
    if (!h0 || !ha) {
        free(h0);
        free(ha);
        return ll_err(LL_ERR_NOMEM, "SPADE: no memory");
    }
    for (int i = 0; i < n; i++) {
        h0[i] = ll_spade_state(st, layer, p0 + i, 0);
        ha[i] = ll_spade_state(st, layer, p0 + i, 1);
    }
    ll_status s = ll_spade_run_rows(sp, layer, n, h0, ha, st->n_tok + p0, st->first_tok + p0, logits_out, resid_out);
    free(h0);
    free(ha);
    return s;
}

ll_spade_pick ll_spade_decode_row(const float *logits, int vocab, const int32_t *opts, int K, ll_spade_decode mode) {
    ll_spade_pick r = {.pick = -1, .token = -1, .prob = 0, .entropy = 0};
    bool over_opts = mode == LL_SPADE_DECODE_OPTIONS && opts && K > 0;
    int n = over_opts ? K : vocab;
    double mx = -INFINITY;
    int best = -1;
    for (int i = 0; i < n; i++) {
        int32_t id = over_opts ? opts[i] : i;
        if (id < 0 || id >= vocab) continue;
        if (logits[id] > mx) {
            mx = logits[id];
            best = i;
        }
    }
    if (best < 0) return r;
    double z = 0, s = 0;
    for (int i = 0; i < n; i++) {
        int32_t id = over_opts ? opts[i] : i;
        if (id < 0 || id >= vocab) continue;
        double e = exp((double)logits[id] - mx);
        z += e;
        s += e * ((double)logits[id] - mx);
    }
    r.token = over_opts ? opts[best] : best;
    r.prob = (float)(1.0 / z);
    r.entropy = (float)(log(z) - s / z);
    if (over_opts) r.pick = best;
    else
        for (int k = 0; k < K && opts; k++)
            if (opts[k] == r.token) {
                r.pick = k;
                break;
            }
    return r;
}
