/* Batched patch sweeps, multi-prompt records and the clean-into-clean self-test
 * (see ll_icl_patch.h). */
#include "ll_icl_patch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"

#define LL_ICL_ROWS_PER_PASS 4096 /* token rows per forward for records and plain logits */

static int ll_nlayers(const ll_model *m) { return m->cfg.n_layers; }

static ll_status ll_check_variant(const ll_model *m, const ll_icl_variant *v, int i, int n, ll_hook_point pt) {
    if (v->layer < 0 || v->layer >= ll_nlayers(m))
        return ll_err(LL_ERR_ARG, "patch sweep: variant %d: layer %d out of range (model has %d)", i, v->layer,
                      ll_nlayers(m));
    if (v->n_pos <= 0 || !v->pos || !v->src)
        return ll_err(LL_ERR_ARG, "patch sweep: variant %d: no positions or no source vectors", i);
    if (v->op != LL_PATCH_REPLACE && v->op != LL_PATCH_ADD)
        return ll_err(LL_ERR_ARG, "patch sweep: variant %d: only replace and add are sweeps", i);
    if (pt != LL_HOOK_RESID_PRE && pt != LL_HOOK_RESID_MID && pt != LL_HOOK_RESID_POST && pt != LL_HOOK_ATTN_OUT &&
        pt != LL_HOOK_MLP_OUT)
        return ll_err(LL_ERR_ARG, "patch sweep: hook %s is not a d_model-wide site", ll_hook_name(pt));
    for (int j = 0; j < v->n_pos; j++)
        if (v->pos[j] < 0 || v->pos[j] >= n)
            return ll_err(LL_ERR_ARG, "patch sweep: variant %d: position %d outside the prompt (%d tokens)", i,
                          v->pos[j], n);
    return LL_OK;
}

static void ll_report(const ll_hooks *h, int pi, double src_norm, ll_icl_patch_report *r) {
    ll_patch_stat s = ll_hooks_patch_stat(h, pi);
    r->l2_change = s.l2_change;
    r->src_norm = src_norm;
    r->noop = s.n_applied == 0 || s.l2_change <= 1e-6 * fmax(r->src_norm, 1e-12);
}

/* One forward over c variants starting at v, each as its own sequence of ids[p0..n).
 * With a cache, slots 1..c start from slot 0's first p0 tokens. */
static ll_status ll_sweep_chunk(ll_model *m, const int32_t *ids, int n, int p0, const ll_icl_variant *v, int c,
                                ll_hook_point pt, ll_kv_cache *cache, ll_hooks *h, float *logits,
                                ll_icl_patch_report *rep, ll_icl_sweep_stats *stats) {
    int len = n - p0, d = m->cfg.d_model;
    int64_t *off = malloc((size_t)(c + 1) * sizeof *off);
    int32_t *tok = malloc((size_t)c * (size_t)len * sizeof *tok);
    int *slot = malloc((size_t)c * sizeof *slot);
    int max_pos = 0;
    for (int i = 0; i < c; i++) max_pos = v[i].n_pos > max_pos ? v[i].n_pos : max_pos;
    int64_t *rows = malloc((size_t)(max_pos ? max_pos : 1) * sizeof *rows);
    float *srcb = malloc((size_t)(max_pos ? max_pos : 1) * (size_t)d * sizeof *srcb);
    double *snorm = malloc((size_t)c * sizeof *snorm);
    int *nrows = malloc((size_t)c * sizeof *nrows);
    ll_status st = LL_OK;
    if (!off || !tok || !slot || !rows || !srcb || !snorm || !nrows) {
        st = ll_err(LL_ERR_NOMEM, "patch sweep: no memory for a batch of %d variants", c);
        goto done;
    }
    ll_hooks_clear(h);
    off[0] = 0;
    for (int i = 0; i < c; i++) {
        memcpy(tok + (size_t)i * len, ids + p0, (size_t)len * sizeof *tok);
        off[i + 1] = off[i] + len;
        slot[i] = i + 1;
        if (cache) ll_kv_cache_copy_slot(cache, i + 1, 0, p0);
        /* A position listed twice is one row: replace keeps the last vector, add sums them
         * (so the patch and its L2 statistic see distinct rows only). */
        int nr = 0;
        for (int j = 0; j < v[i].n_pos; j++) {
            int64_t row = off[i] + (v[i].pos[j] - p0);
            int at = -1;
            for (int q = 0; q < nr && at < 0; q++)
                if (rows[q] == row) at = q;
            const float *sv = v[i].src + (size_t)j * d;
            if (at < 0) {
                rows[nr] = row;
                memcpy(srcb + (size_t)nr * d, sv, (size_t)d * sizeof *srcb);
                nr++;
            } else if (v[i].op == LL_PATCH_ADD) {
                for (int e = 0; e < d; e++) srcb[(size_t)at * d + e] += sv[e];
            } else {
                memcpy(srcb + (size_t)at * d, sv, (size_t)d * sizeof *srcb);
            }
        }
        ll_patch p = {.point = pt, .layer = v[i].layer, .n_rows = nr, .rows = rows, .op = v[i].op, .src = srcb,
                      .width = d, .head = -1};
        if ((st = ll_hooks_add_patch(h, &p))) goto done;
        nrows[i] = nr;
        double sn = 0;
        for (size_t e = 0; e < (size_t)nr * d; e++) sn += (double)srcb[e] * srcb[e];
        snorm[i] = sqrt(sn);
    }
    ll_batch b = {.n_seq = c, .seq_off = off, .tokens = tok, .slot = cache ? slot : NULL};
    ll_forward_opts fo = {.cache = cache, .hooks = h, .logits = LL_LOGITS_LAST, .logits_out = logits};
    if ((st = ll_forward(m, &b, &fo))) goto done;
    if (stats) {
        stats->forwards++;
        stats->rows += off[c];
        stats->layer_rows += off[c] * ll_nlayers(m);
    }
    for (int i = 0; rep && i < c; i++) ll_report(h, i, snorm[i], &rep[i]);
done:
    free(srcb);
    free(snorm);
    free(nrows);
    free(off);
    free(tok);
    free(slot);
    free(rows);
    return st;
}

/* ---- records sink (also used by the resume sweep) ---- */
typedef struct {
    float *out;
    const int64_t *map; /* batch row -> output row */
    int64_t R;
    int d;
} ll_rec_sink;

static ll_status ll_rec_fn(void *user, const ll_hook_rows *r) {
    ll_rec_sink *s = user;
    for (int i = 0; i < r->n_rows; i++)
        memcpy(s->out + ((size_t)r->layer * (size_t)s->R + (size_t)s->map[r->rows[i]]) * (size_t)s->d,
               r->data + (size_t)i * (size_t)r->width, (size_t)s->d * sizeof(float));
    return LL_OK;
}


/* ---- resume: blocks l.. over rows p.. only ---------------------------------------- */

typedef struct {
    const ll_icl_variant *v;
    int idx; /* index into the caller's arrays */
    int p;   /* first patched position */
} ll_rv;

static int ll_rv_cmp(const void *a, const void *b) {
    const ll_rv *x = a, *y = b;
    if (x->v->layer != y->v->layer) return x->v->layer - y->v->layer;
    return x->idx - y->idx;
}

/* One batch of c variants, all at layer l. base: residual entering every block for rows
 * pmin..n-1 ([L][n - pmin][d]); slot 0 of the cache holds the unpatched prompt. */
static ll_status ll_resume_chunk(ll_model *m, int n, int pmin, const float *base, const ll_rv *rv, int c,
                                 ll_hook_point pt, ll_kv_cache *cache, ll_hooks *h, float *lg_tmp, float *logits,
                                 ll_icl_patch_report *rep, ll_icl_sweep_stats *stats) {
    int d = m->cfg.d_model, V = m->cfg.vocab_size, L = ll_nlayers(m), l = rv[0].v->layer;
    int64_t *off = malloc((size_t)(c + 1) * sizeof *off);
    int *slot = malloc((size_t)c * sizeof *slot);
    double *snorm = malloc((size_t)c * sizeof *snorm);
    int max_pos = 0;
    off[0] = 0;
    for (int i = 0; off && i < c; i++) {
        off[i + 1] = off[i] + (n - rv[i].p);
        max_pos = rv[i].v->n_pos > max_pos ? rv[i].v->n_pos : max_pos;
    }
    int64_t T = off ? off[c] : 0;
    float *x = malloc((size_t)(T ? T : 1) * (size_t)d * sizeof *x);
    int64_t *rows = malloc((size_t)max_pos * sizeof *rows);
    float *srcb = malloc((size_t)max_pos * (size_t)d * sizeof *srcb);
    ll_status st = LL_OK;
    if (!off || !slot || !snorm || !x || !rows || !srcb) {
        st = ll_err(LL_ERR_NOMEM, "patch sweep: no memory for a batch of %d variants", c);
        goto done;
    }
    ll_hooks_clear(h);
    for (int i = 0; i < c; i++) {
        const ll_icl_variant *v = rv[i].v;
        int p = rv[i].p;
        slot[i] = i + 1;
        ll_kv_cache_copy_slot(cache, i + 1, 0, p);
        memcpy(x + (size_t)off[i] * d, base + ((size_t)l * (n - pmin) + (size_t)(p - pmin)) * d,
               (size_t)(n - p) * d * sizeof *x);
        int nr = 0;
        for (int j = 0; j < v->n_pos; j++) {
            int64_t row = off[i] + (v->pos[j] - p);
            int at = -1;
            for (int q = 0; q < nr && at < 0; q++)
                if (rows[q] == row) at = q;
            const float *sv = v->src + (size_t)j * d;
            if (at < 0) {
                rows[nr] = row;
                memcpy(srcb + (size_t)nr * d, sv, (size_t)d * sizeof *srcb);
                nr++;
            } else if (v->op == LL_PATCH_ADD) {
                for (int e = 0; e < d; e++) srcb[(size_t)at * d + e] += sv[e];
            } else {
                memcpy(srcb + (size_t)at * d, sv, (size_t)d * sizeof *srcb);
            }
        }
        ll_patch pa = {.point = pt, .layer = l, .n_rows = nr, .rows = rows, .op = v->op, .src = srcb, .width = d,
                       .head = -1};
        if ((st = ll_hooks_add_patch(h, &pa))) goto done;
        double sn = 0;
        for (size_t e = 0; e < (size_t)nr * d; e++) sn += (double)srcb[e] * srcb[e];
        snorm[i] = sqrt(sn);
    }
    ll_batch b = {.n_seq = c, .seq_off = off, .slot = slot};
    ll_forward_opts fo = {.start_layer = l, .resid_in = x, .cache = cache, .hooks = h, .logits = LL_LOGITS_LAST,
                          .logits_out = lg_tmp};
    if ((st = ll_forward(m, &b, &fo))) goto done;
    if (stats) {
        stats->forwards++;
        stats->rows += T;
        stats->layer_rows += T * (L - l);
    }
    for (int i = 0; i < c; i++) {
        memcpy(logits + (size_t)rv[i].idx * V, lg_tmp + (size_t)i * V, (size_t)V * sizeof *logits);
        if (rep) ll_report(h, i, snorm[i], &rep[rv[i].idx]);
    }
done:
    free(off);
    free(slot);
    free(snorm);
    free(x);
    free(rows);
    free(srcb);
    return st;
}

static ll_status ll_sweep_resume(ll_model *m, const int32_t *ids, int n, const ll_icl_variant *v, int n_var, int chunk,
                                 ll_hook_point pt, float *logits, ll_icl_patch_report *rep, ll_icl_sweep_stats *stats) {
    int L = ll_nlayers(m), d = m->cfg.d_model, V = m->cfg.vocab_size;
    ll_rv *rv = malloc((size_t)n_var * sizeof *rv);
    if (!rv) return ll_err(LL_ERR_NOMEM, "patch sweep: no memory");
    int pmin = n - 1;
    for (int i = 0; i < n_var; i++) {
        int p = n - 1;
        for (int j = 0; j < v[i].n_pos; j++) p = v[i].pos[j] < p ? v[i].pos[j] : p;
        rv[i] = (ll_rv){&v[i], i, p};
        pmin = p < pmin ? p : pmin;
    }
    qsort(rv, (size_t)n_var, sizeof *rv, ll_rv_cmp);
    int nb = n - pmin;
    float *base = malloc((size_t)L * nb * d * sizeof *base);
    float *lg_tmp = malloc((size_t)chunk * V * sizeof *lg_tmp);
    int64_t *brows = malloc((size_t)nb * sizeof *brows);
    int64_t *map = calloc((size_t)n, sizeof *map);
    ll_kv_cache *cache = NULL;
    ll_hooks *h = NULL;
    ll_status st = LL_OK;
    if (!base || !lg_tmp || !brows || !map) {
        st = ll_err(LL_ERR_NOMEM, "patch sweep: no memory for the base states (%d layers x %d rows)", L, nb);
        goto done;
    }
    if ((st = ll_kv_cache_new(&cache, m, chunk + 1, n))) goto done;
    if ((st = ll_hooks_new(&h, L))) goto done;
    /* the unpatched run: slot 0 keeps its keys/values, the record keeps every block's input */
    for (int j = 0; j < nb; j++) {
        brows[j] = pmin + j;
        map[pmin + j] = j;
    }
    ll_rec_sink sink = {base, map, nb, d};
    ll_record r = {.point = LL_HOOK_RESID_PRE, .layer_lo = 0, .layer_hi = L - 1, .pos = LL_POS_LIST, .rows = brows,
                   .n_rows = nb, .fn = ll_rec_fn, .user = &sink};
    if ((st = ll_hooks_add_record(h, &r))) goto done;
    int64_t off[2] = {0, n};
    int slot0 = 0;
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = ids, .slot = &slot0};
    ll_forward_opts fo = {.cache = cache, .hooks = h, .logits = LL_LOGITS_NONE};
    if ((st = ll_forward(m, &b, &fo))) goto done;
    if (stats) {
        stats->forwards++;
        stats->rows += n;
        stats->layer_rows += (int64_t)n * L;
    }
    for (int i = 0; i < n_var && !st;) {
        int c = 1;
        while (i + c < n_var && c < chunk && rv[i + c].v->layer == rv[i].v->layer) c++;
        st = ll_resume_chunk(m, n, pmin, base, rv + i, c, pt, cache, h, lg_tmp, logits, rep, stats);
        i += c;
    }
done:
    ll_hooks_free(h);
    ll_kv_cache_free(cache);
    free(rv);
    free(base);
    free(lg_tmp);
    free(brows);
    free(map);
    return st;
}

ll_status ll_icl_sweep(ll_model *m, const int32_t *ids, int n, const ll_icl_variant *v, int n_var,
                       const ll_icl_sweep_opts *o, float *logits, ll_icl_patch_report *rep, ll_icl_sweep_stats *stats) {
    ll_icl_sweep_opts opt = o ? *o : (ll_icl_sweep_opts){0};
    ll_hook_point pt = opt.point;
    if (n <= 0 || n_var <= 0) return ll_err(LL_ERR_ARG, "patch sweep: empty prompt (%d tokens) or no variants (%d)", n, n_var);
    for (int i = 0; i < n_var; i++) LL_TRY(ll_check_variant(m, &v[i], i, n, pt));
    int V = m->cfg.vocab_size;
    ll_hooks *h;
    LL_TRY(ll_hooks_new(&h, ll_nlayers(m)));
    ll_status st = LL_OK;
    ll_kv_cache *cache = NULL;
    if (opt.naive) {
        for (int i = 0; i < n_var && !st; i++)
            st = ll_sweep_chunk(m, ids, n, 0, &v[i], 1, pt, NULL, h, logits + (size_t)i * V, rep ? &rep[i] : NULL, stats);
        goto done;
    }
    int chunk = opt.max_batch > 0 ? opt.max_batch : 64;
    if (chunk > n_var) chunk = n_var;
    if (!opt.no_prefix_cache && !opt.no_resume) {
        st = ll_sweep_resume(m, ids, n, v, n_var, chunk, pt, logits, rep, stats);
        goto done;
    }
    /* The shared prefix: everything before the earliest patched position. */
    int p0 = n - 1;
    for (int i = 0; i < n_var; i++)
        for (int j = 0; j < v[i].n_pos; j++) p0 = v[i].pos[j] < p0 ? v[i].pos[j] : p0;
    if (opt.no_prefix_cache) p0 = 0;
    if (p0 > 0) {
        if ((st = ll_kv_cache_new(&cache, m, chunk + 1, n))) goto done;
        int64_t off[2] = {0, p0};
        int slot0 = 0;
        ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = ids, .slot = &slot0};
        ll_forward_opts fo = {.cache = cache, .logits = LL_LOGITS_NONE};
        if ((st = ll_forward(m, &b, &fo))) goto done;
        if (stats) {
            stats->forwards++;
            stats->rows += p0;
            stats->layer_rows += (int64_t)p0 * ll_nlayers(m);
        }
    }
    for (int i = 0; i < n_var && !st; i += chunk) {
        int c = n_var - i < chunk ? n_var - i : chunk;
        st = ll_sweep_chunk(m, ids, n, p0, &v[i], c, pt, cache, h, logits + (size_t)i * V, rep ? &rep[i] : NULL, stats);
    }
done:
    ll_kv_cache_free(cache);
    ll_hooks_free(h);
    if (st) ll_err_prefix(st, "patch sweep: ");
    return st;
}

/* ---- records -------------------------------------------------------------------- */

/* Prompts [a, b) as one batch: records (when out) and last logits (when logits). */
static ll_status ll_run_group(ll_model *m, int a, int b, const int32_t *const *ids, const int *n, const int *const *pos,
                              const int *n_pos, int64_t row0, int64_t R, ll_hook_point pt, float *out, float *logits) {
    int ns = b - a, d = m->cfg.d_model;
    int64_t T = 0, P = 0;
    for (int p = a; p < b; p++) {
        T += n[p];
        if (out) P += n_pos[p];
    }
    int64_t *off = malloc((size_t)(ns + 1) * sizeof *off);
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    int64_t *rows = malloc((size_t)(P ? P : 1) * sizeof *rows);
    int64_t *map = calloc((size_t)T, sizeof *map);
    ll_hooks *h = NULL;
    ll_status st = LL_OK;
    if (!off || !tok || !rows || !map) {
        st = ll_err(LL_ERR_NOMEM, "ICL record: no memory for a batch of %lld rows", (long long)T);
        goto done;
    }
    off[0] = 0;
    int64_t k = 0;
    for (int p = a; p < b; p++) {
        int s = p - a;
        memcpy(tok + off[s], ids[p], (size_t)n[p] * sizeof *tok);
        off[s + 1] = off[s] + n[p];
        for (int j = 0; out && j < n_pos[p]; j++) {
            if (pos[p][j] < 0 || pos[p][j] >= n[p]) {
                st = ll_err(LL_ERR_ARG, "ICL record: prompt %d: position %d outside its %d tokens", p, pos[p][j], n[p]);
                goto done;
            }
            rows[k] = off[s] + pos[p][j];
            map[rows[k]] = row0 + k;
            k++;
        }
    }
    ll_rec_sink sink = {out, map, R, d};
    if (out) {
        if ((st = ll_hooks_new(&h, ll_nlayers(m)))) goto done;
        /* The same batch row may be asked for twice (a position listed twice): the hook
         * wants distinct rows, so record the distinct ones and copy the rest after. */
        ll_record r = {.point = pt, .layer_lo = 0, .layer_hi = ll_nlayers(m) - 1, .pos = LL_POS_LIST, .rows = rows,
                       .n_rows = (int)P, .fn = ll_rec_fn, .user = &sink};
        if ((st = ll_hooks_add_record(h, &r))) goto done;
    }
    ll_batch bt = {.n_seq = ns, .seq_off = off, .tokens = tok};
    ll_forward_opts fo = {.hooks = h, .logits = logits ? LL_LOGITS_LAST : LL_LOGITS_NONE,
                          .logits_out = logits ? logits + (size_t)a * m->cfg.vocab_size : NULL};
    if ((st = ll_forward(m, &bt, &fo))) goto done;
    /* duplicates: a later listing of a row got the map entry; fill earlier ones from it */
    if (out)
        for (int64_t i = 0; i < P; i++)
            if (map[rows[i]] != row0 + i)
                for (int l = 0; l < ll_nlayers(m); l++)
                    memcpy(out + ((size_t)l * R + (size_t)(row0 + i)) * d, out + ((size_t)l * R + (size_t)map[rows[i]]) * d,
                           (size_t)d * sizeof(float));
done:
    ll_hooks_free(h);
    free(off);
    free(tok);
    free(rows);
    free(map);
    return st;
}

static ll_status ll_run_all(ll_model *m, int n_prompts, const int32_t *const *ids, const int *n, const int *const *pos,
                            const int *n_pos, ll_hook_point pt, float *out, float *logits) {
    int64_t R = 0;
    for (int p = 0; out && p < n_prompts; p++) R += n_pos[p];
    int a = 0;
    int64_t row0 = 0;
    while (a < n_prompts) {
        int b = a;
        int64_t T = 0, P = 0;
        while (b < n_prompts && (b == a || T + n[b] <= LL_ICL_ROWS_PER_PASS)) {
            T += n[b];
            if (out) P += n_pos[b];
            b++;
        }
        LL_TRY(ll_run_group(m, a, b, ids, n, pos, n_pos, row0, R, pt, out, logits));
        row0 += P;
        a = b;
    }
    return LL_OK;
}

ll_status ll_icl_record(ll_model *m, int n_prompts, const int32_t *const *ids, const int *n, const int *const *pos,
                        const int *n_pos, ll_hook_point point, float *out, float *logits) {
    if (!out) return ll_err(LL_ERR_ARG, "ICL record: no output buffer");
    if (point != LL_HOOK_RESID_PRE && point != LL_HOOK_RESID_MID && point != LL_HOOK_RESID_POST &&
        point != LL_HOOK_ATTN_OUT && point != LL_HOOK_MLP_OUT)
        return ll_err(LL_ERR_ARG, "ICL record: hook %s is not a d_model-wide site", ll_hook_name(point));
    return ll_run_all(m, n_prompts, ids, n, pos, n_pos, point, out, logits);
}

ll_status ll_icl_logits(ll_model *m, int n_prompts, const int32_t *const *ids, const int *n, float *logits) {
    return ll_run_all(m, n_prompts, ids, n, NULL, NULL, 0, NULL, logits);
}

ll_status ll_icl_self_check(ll_model *m, const int32_t *ids, int n, const int *pos, int n_pos,
                            const ll_icl_sweep_opts *o, double *max_diff) {
    int L = ll_nlayers(m), d = m->cfg.d_model, V = m->cfg.vocab_size;
    ll_hook_point pt = o ? o->point : 0;
    float *clean = malloc((size_t)L * n_pos * d * sizeof *clean);
    float *ref = malloc((size_t)V * sizeof *ref);
    float *lg = malloc((size_t)L * V * sizeof *lg);
    ll_icl_variant *v = calloc((size_t)L, sizeof *v);
    ll_icl_patch_report *rep = calloc((size_t)L, sizeof *rep);
    ll_status st = LL_OK;
    if (!clean || !ref || !lg || !v || !rep) {
        st = ll_err(LL_ERR_NOMEM, "self-check: no memory");
        goto done;
    }
    const int32_t *pi[1] = {ids};
    const int *pp[1] = {pos};
    if ((st = ll_icl_record(m, 1, pi, &n, pp, &n_pos, pt, clean, ref))) goto done;
    for (int l = 0; l < L; l++)
        v[l] = (ll_icl_variant){.layer = l, .n_pos = n_pos, .pos = pos, .src = clean + (size_t)l * n_pos * d,
                                .op = LL_PATCH_REPLACE};
    if ((st = ll_icl_sweep(m, ids, n, v, L, o, lg, rep, NULL))) goto done;
    double md = 0, mx = 0;
    for (int i = 0; i < V; i++) mx = fmax(mx, fabs(ref[i]));
    for (int l = 0; l < L; l++)
        for (int i = 0; i < V; i++) md = fmax(md, fabs((double)lg[(size_t)l * V + i] - ref[i]));
    *max_diff = md / fmax(mx, 1e-30);
done:
    free(clean);
    free(ref);
    free(lg);
    free(v);
    free(rep);
    return st;
}
