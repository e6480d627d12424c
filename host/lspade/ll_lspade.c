/* L-SPADE fitting: SPADE's outputs on training prompts streamed into per-layer Grams,
 * summed across processes, then one ridge solve per layer with lambda chosen on a
 * held-out split. */
#include "ll_lspade.h"
#include "ll_ridge_gpu.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ll_lspade_target_name(ll_lspade_target t) { return t == LL_LSPADE_TARGET_HIDDEN ? "hidden" : "logits"; }

ll_status ll_lspade_parse_target(const char *s, ll_lspade_target *out) {
    if (!strcmp(s, "logits")) *out = LL_LSPADE_TARGET_LOGITS;
    else if (!strcmp(s, "hidden")) *out = LL_LSPADE_TARGET_HIDDEN;
    else return ll_err(LL_ERR_ARG, "L-SPADE target: expected logits or hidden, found '%s'", s);
    return LL_OK;
}

void ll_lspade_maps_free(ll_lspade_maps *m) {
    if (!m) return;
    for (int l = 0; m->W && l <= m->n_layers; l++) free(m->W[l]);
    for (int c = 0; m->head_rows && c < m->vocab; c++) free(m->head_rows[c]);
    free(m->head_rows);
    free(m->W);
    free(m->lambda);
    free(m->lambda_rel);
    free(m->val_mse);
    free(m->val_agree);
    free(m->train_mse);
    free(m->meta_json);
    free(m->norm_w);
    free(m->norm_b);
    free(m);
}

/* An empty set of maps for L layers. */
ll_status ll_lspade_maps_alloc(ll_lspade_maps **out, int L, int d, int d_out, int K) {
    ll_lspade_maps *m = calloc(1, sizeof *m);
    if (!m) return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for the maps");
    m->n_layers = L;
    m->d_model = d;
    m->d_out = d_out;
    m->K = K;
    m->W = calloc((size_t)L + 1, sizeof(float *));
    m->lambda = malloc(((size_t)L + 1) * sizeof(double));
    m->lambda_rel = malloc(((size_t)L + 1) * sizeof(double));
    m->val_mse = malloc(((size_t)L + 1) * sizeof(double));
    m->val_agree = malloc(((size_t)L + 1) * sizeof(double));
    m->train_mse = malloc(((size_t)L + 1) * sizeof(double));
    if (!m->W || !m->lambda || !m->lambda_rel || !m->val_mse || !m->val_agree || !m->train_mse) {
        ll_lspade_maps_free(m);
        return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for the maps");
    }
    for (int l = 0; l <= L; l++) m->lambda[l] = m->lambda_rel[l] = m->val_mse[l] = m->val_agree[l] = m->train_mse[l] = NAN;
    *out = m;
    return LL_OK;
}

/* ---- Grams ---- */

void ll_lspade_grams_free(ll_lspade_grams *g) {
    for (int l = 0; g->have && l <= g->L; l++)
        if (g->have[l]) {
            ll_gram_free(&g->train[l]);
            ll_gram_free(&g->val[l]);
            if (g->gpu_train) ll_gram_gpu_free(g->gpu_train[l]);
            if (g->gpu_val) ll_gram_gpu_free(g->gpu_val[l]);
        }
    free(g->gpu_train);
    free(g->gpu_val);
    for (int l = 0; g->vs && l <= g->L; l++) {
        free(g->vs[l].x);
        free(g->vs[l].cand);
        free(g->vs[l].pick);
    }
    free(g->vs);
    free(g->train);
    free(g->val);
    free(g->have);
    memset(g, 0, sizeof *g);
}

ll_status ll_lspade_grams_init(ll_lspade_grams *g, int L, int lo, int hi, int d_in, int d_out) {
    memset(g, 0, sizeof *g);
    if (lo < 0 || hi > L || lo > hi)
        return ll_err(LL_ERR_ARG, "L-SPADE: layers %d..%d outside 0..%d", lo, hi, L);
    g->L = L;
    g->train = calloc((size_t)L + 1, sizeof(ll_gram));
    g->val = calloc((size_t)L + 1, sizeof(ll_gram));
    g->have = calloc((size_t)L + 1, sizeof(bool));
    if (!g->train || !g->val || !g->have) {
        ll_lspade_grams_free(g);
        return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for the Gram table");
    }
    for (int l = lo; l <= hi; l++) {
        ll_status st = ll_gram_init(&g->train[l], d_in, d_out);
        if (!st) st = ll_gram_init(&g->val[l], d_in, d_out);
        if (st) {
            ll_gram_free(&g->train[l]);
            ll_lspade_grams_free(g);
            return ll_err_prefix(st, "L-SPADE layer %d: ", l);
        }
        g->have[l] = true;
    }
    return LL_OK;
}

ll_status ll_lspade_grams_use_gpu(ll_lspade_grams *g) {
    g->gpu_train = calloc((size_t)g->L + 1, sizeof *g->gpu_train);
    g->gpu_val = calloc((size_t)g->L + 1, sizeof *g->gpu_val);
    if (!g->gpu_train || !g->gpu_val) return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for the GPU Gram table");
    for (int l = 0; l <= g->L; l++) {
        if (!g->have[l]) continue;
        LL_TRY(ll_gram_gpu_new(&g->gpu_train[l], g->train[l].d_in, g->train[l].d_out));
        LL_TRY(ll_gram_gpu_new(&g->gpu_val[l], g->val[l].d_in, g->val[l].d_out));
    }
    return LL_OK;
}

/* Device sums into the host Grams (once, before the all-reduce). */
static ll_status ll_lspade_grams_download(ll_lspade_grams *g) {
    if (!g->gpu_train) return LL_OK;
    for (int l = 0; l <= g->L; l++) {
        if (!g->have[l]) continue;
        LL_TRY(ll_gram_gpu_merge_into(g->gpu_train[l], &g->train[l]));
        LL_TRY(ll_gram_gpu_merge_into(g->gpu_val[l], &g->val[l]));
        ll_gram_gpu_free(g->gpu_train[l]);
        ll_gram_gpu_free(g->gpu_val[l]);
        g->gpu_train[l] = g->gpu_val[l] = NULL;
    }
    free(g->gpu_train);
    free(g->gpu_val);
    g->gpu_train = g->gpu_val = NULL;
    return LL_OK;
}

ll_status ll_lspade_grams_add(ll_lspade_grams *g, int layer, const float *X, const float *Y, const int64_t *idx,
                              int n, double val_frac, uint64_t seed) {
    if (layer < 0 || layer > g->L || !g->have[layer]) return ll_err(LL_ERR_ARG, "L-SPADE: no Gram for layer %d", layer);
    if (n > LL_GRAM_CHUNK)
        return ll_err(LL_ERR_ARG, "L-SPADE: a block of %d examples exceeds one Gram chunk (%d)", n, LL_GRAM_CHUNK);
    ll_gram *tr = &g->train[layer], *va = &g->val[layer];
    int din = tr->d_in, dout = tr->d_out;
    float *bx = malloc((size_t)n * (din + dout) * sizeof(float));
    if (!bx) return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for a block");
    float *by = bx + (size_t)n * din;
    /* Held-out rows first into the buffer's end, training rows from its start: one add each. */
    int nt = 0, nv = 0;
    for (int i = 0; i < n; i++) {
        int v = ll_ridge_is_val(idx[i], val_frac, seed);
        int at = v ? n - 1 - nv++ : nt++;
        memcpy(bx + (size_t)at * din, X + (size_t)i * din, (size_t)din * sizeof(float));
        memcpy(by + (size_t)at * dout, Y + (size_t)i * dout, (size_t)dout * sizeof(float));
    }
    /* The held-out rows sit reversed; put them back in index order so the chunk is the same
     * whatever the split of the block. */
    for (int a = nt, b = n - 1; a < b; a++, b--) {
        for (int j = 0; j < din; j++) {
            float t = bx[(size_t)a * din + j];
            bx[(size_t)a * din + j] = bx[(size_t)b * din + j];
            bx[(size_t)b * din + j] = t;
        }
        for (int j = 0; j < dout; j++) {
            float t = by[(size_t)a * dout + j];
            by[(size_t)a * dout + j] = by[(size_t)b * dout + j];
            by[(size_t)b * dout + j] = t;
        }
    }
    ll_status st;
    if (g->gpu_train) {
        st = ll_gram_gpu_add(g->gpu_train[layer], bx, din, by, dout, nt);
        if (!st) st = ll_gram_gpu_add(g->gpu_val[layer], bx + (size_t)nt * din, din, by + (size_t)nt * dout, dout, nv);
    } else {
        st = ll_gram_add(tr, bx, din, by, dout, nt);
        if (!st) st = ll_gram_add(va, bx + (size_t)nt * din, din, by + (size_t)nt * dout, dout, nv);
    }
    free(bx);
    /* Counts are per prompt: take them from the first layer in range. */
    int first = 0;
    while (!g->have[first]) first++;
    if (layer == first) {
        g->n_train += nt;
        g->n_val += nv;
    }
    return st;
}

ll_status ll_lspade_grams_keep_val(ll_lspade_grams *g, int layer, int K, const float *X, const int *pick,
                                   const int32_t *const *cand, const int64_t *idx, int n, double val_frac, uint64_t seed) {
    if (layer < 0 || layer > g->L || !g->have[layer]) return ll_err(LL_ERR_ARG, "L-SPADE: no Gram for layer %d", layer);
    if (!g->vs) {
        g->vs = calloc((size_t)g->L + 1, sizeof *g->vs);
        if (!g->vs) return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for held-out rows");
    }
    g->K = K;
    ll_lspade_valset *v = &g->vs[layer];
    int d = g->train[layer].d_in;
    for (int i = 0; i < n; i++) {
        if (!ll_ridge_is_val(idx[i], val_frac, seed)) continue;
        if (v->n == v->cap) {
            int64_t cap = v->cap ? 2 * v->cap : 64;
            float *x = realloc(v->x, (size_t)cap * d * sizeof(float));
            if (x) v->x = x;
            int32_t *c = realloc(v->cand, (size_t)cap * K * sizeof(int32_t));
            if (c) v->cand = c;
            int *pk = realloc(v->pick, (size_t)cap * sizeof(int));
            if (pk) v->pick = pk;
            if (!x || !c || !pk) return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for %lld held-out rows", (long long)cap);
            v->cap = cap;
        }
        memcpy(v->x + (size_t)v->n * d, X + (size_t)i * d, (size_t)d * sizeof(float));
        memcpy(v->cand + (size_t)v->n * K, cand[i], (size_t)K * sizeof(int32_t));
        v->pick[v->n++] = pick[i];
    }
    return LL_OK;
}

/* Held-out rows of layer l on which the map W (double, [(d+1)][q]) picks SPADE's option;
 * tm is a scratch set of maps of the right shape (norm_input off: rows are kept normalised). */
static ll_status ll_count_agree(const ll_lspade_valset *v, ll_lspade_maps *tm, ll_model *m, int l, const double *W,
                                int64_t *agree) {
    int d = tm->d_model, q = tm->d_out, K = tm->K;
    for (size_t i = 0; i < (size_t)(d + 1) * q; i++) tm->W[l][i] = (float)W[i];
    *agree = 0;
    enum { CH = 256 };
    float *out = malloc((size_t)CH * K * sizeof(float));
    const int32_t *cp[CH];
    if (!out) return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory to score held-out rows");
    ll_status st = LL_OK;
    for (int64_t r0 = 0; r0 < v->n && !st; r0 += CH) {
        int c = (int)(v->n - r0 < CH ? v->n - r0 : CH);
        for (int i = 0; i < c; i++) cp[i] = v->cand + (size_t)(r0 + i) * K;
        st = ll_lspade_apply(tm, m, l, c, v->x + (size_t)r0 * d, cp, out);
        for (int i = 0; i < c && !st; i++) {
            int a;
            ll_lspade_norm_entropy(out + (size_t)i * K, K, &a);
            *agree += a == v->pick[r0 + i];
        }
    }
    free(out);
    return st;
}

ll_status ll_lspade_grams_allreduce(ll_lspade_grams *g, const ll_lspade_comm *comm) {
    if (!comm || comm->size <= 1) return LL_OK;
    for (int l = 0; l <= g->L; l++) {
        if (!g->have[l]) continue;
        LL_TRY(comm->allreduce_dd(comm->user, g->train[l].data, g->train[l].lo, ll_gram_n_doubles(&g->train[l])));
        LL_TRY(comm->allreduce_dd(comm->user, g->val[l].data, g->val[l].lo, ll_gram_n_doubles(&g->val[l])));
    }
    double c[2] = {(double)g->n_train, (double)g->n_val}, z[2] = {0, 0};
    LL_TRY(comm->allreduce_dd(comm->user, c, z, 2));
    g->n_train = (int64_t)c[0];
    g->n_val = (int64_t)c[1];
    return LL_OK;
}

static const double ll_default_grid[] = {1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0};

ll_status ll_lspade_solve(const ll_lspade_grams *g, const ll_lspade_fit_opts *o, ll_model *m, ll_lspade_maps *maps) {
    const double *grid = o->n_lambda > 0 ? o->lambda_rel : ll_default_grid;
    int ng = o->n_lambda > 0 ? o->n_lambda : (int)(sizeof ll_default_grid / sizeof *ll_default_grid);
    ll_status st = LL_OK;
    ll_lspade_maps *tm = NULL; /* scratch maps for scoring by agreement */
    if (o->select_agree) {
        if (!g->vs) return ll_err(LL_ERR_ARG, "L-SPADE: selection by agreement needs the held-out rows (none were kept)");
        int first = 0;
        while (first <= g->L && !g->have[first]) first++;
        LL_TRY(ll_lspade_maps_alloc(&tm, g->L, g->train[first].d_in, g->train[first].d_out, g->K));
        tm->target = maps->target;
        tm->norm_input = false;
    }
    for (int l = 0; l <= g->L && !st; l++) {
        if (!g->have[l]) continue;
        const ll_gram *tr = &g->train[l], *va = &g->val[l];
        int p = tr->p, q = tr->d_out, best = 0;
        double mses[LL_LSPADE_MAX_GRID];
        if (ng > LL_LSPADE_MAX_GRID) st = ll_err(LL_ERR_ARG, "L-SPADE: at most %d lambdas", LL_LSPADE_MAX_GRID);
        if (!st && (ng > 1 || ll_gram_count(va) > 0) && ll_gram_count(va) == 0)
            st = ll_err(LL_ERR_ARG, "L-SPADE layer %d: %d lambdas to choose from but no held-out examples "
                                    "(raise --val-frac or give one lambda)", l, ng);
        if (!st && ll_gram_count(va) > 0 && !o->select_agree) {
            if ((st = ll_ridge_select_with(tr, va, grid, ng, o->ridge_gpu ? ll_ridge_solve_gpu : NULL, mses, &best)))
                ll_err_prefix(st, "L-SPADE layer %d: ", l);
            else
                maps->val_mse[l] = mses[best];
        } else if (!st && ll_gram_count(va) > 0) {
            /* Agreement with SPADE's option on the held-out rows of every rank, summed. */
            double cnt[LL_LSPADE_MAX_GRID], zero[LL_LSPADE_MAX_GRID] = {0}, scale = ll_gram_feature_scale(tr);
            double *W = malloc((size_t)p * q * sizeof(double));
            if (!tm->W[l]) tm->W[l] = malloc((size_t)p * q * sizeof(float));
            if (!W || !tm->W[l]) st = ll_err(LL_ERR_NOMEM, "L-SPADE layer %d: no memory", l);
            for (int i = 0; i < ng && !st; i++) {
                int64_t a = 0;
                st = o->ridge_gpu ? ll_ridge_solve_gpu(tr, grid[i] * scale, W) : ll_ridge_solve(tr, grid[i] * scale, W, NULL);
                if (!st) st = ll_count_agree(&g->vs[l], tm, m, l, W, &a);
                cnt[i] = (double)a;
                mses[i] = ll_ridge_mse(va, W);
            }
            free(W);
            if (!st && o->comm && o->comm->size > 1) st = o->comm->allreduce_dd(o->comm->user, cnt, zero, (size_t)ng);
            for (int i = 1; i < ng && !st; i++)
                if (cnt[i] > cnt[best]) best = i;
            if (!st) {
                maps->val_agree[l] = cnt[best] / (double)ll_gram_count(va);
                maps->val_mse[l] = mses[best];
            } else {
                ll_err_prefix(st, "L-SPADE layer %d: ", l);
            }
        }
        if (st) break;
        ll_gram all;
        const ll_gram *fit = tr;
        if (!o->no_refit && ll_gram_count(va) > 0) {
            if ((st = ll_gram_init(&all, tr->d_in, q))) return st;
            ll_gram_merge(&all, tr);
            ll_gram_merge(&all, va);
            fit = &all;
        }
        double lam = grid[best] * ll_gram_feature_scale(fit);
        double *W = malloc((size_t)p * q * sizeof(double));
        maps->W[l] = malloc((size_t)p * q * sizeof(float));
        if (!W || !maps->W[l]) st = ll_err(LL_ERR_NOMEM, "L-SPADE layer %d: no memory for the map", l);
        if (!st) st = o->ridge_gpu ? ll_ridge_solve_gpu(fit, lam, W) : ll_ridge_solve(fit, lam, W, NULL);
        if (!st) {
            for (size_t i = 0; i < (size_t)p * q; i++) maps->W[l][i] = (float)W[i];
            maps->lambda[l] = lam;
            maps->lambda_rel[l] = grid[best];
            maps->train_mse[l] = ll_ridge_mse(fit, W);
        } else {
            ll_err_prefix(st, "L-SPADE layer %d: ", l);
        }
        free(W);
        if (fit == &all) ll_gram_free(&all);
    }
    ll_lspade_maps_free(tm);
    return st;
}

/* ---- fitting from live forward passes ---- */

static char *ll_fit_meta(const ll_model *m, const ll_lspade_data *data, const ll_lspade_fit_opts *o, int lo, int hi,
                         const ll_lspade_grams *g, const char *extra) {
    cJSON *j = extra ? cJSON_Parse(extra) : NULL;
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        j = cJSON_CreateObject();
    }
    char buf[256];
    const double *grid = o->n_lambda > 0 ? o->lambda_rel : ll_default_grid;
    int ng = o->n_lambda > 0 ? o->n_lambda : (int)(sizeof ll_default_grid / sizeof *ll_default_grid);
    cJSON_AddStringToObject(j, "format", "layerlab-lspade");
    cJSON_AddStringToObject(j, "target", ll_lspade_target_name(o->target));
    cJSON_AddStringToObject(j, "norm_input", o->norm_input ? "true" : "false");
    snprintf(buf, sizeof buf, "%d-%d", lo, hi);
    cJSON_AddStringToObject(j, "layers", buf);
    buf[0] = 0;
    for (int i = 0; i < ng; i++) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%g", i ? "," : "", grid[i]);
    cJSON_AddStringToObject(j, "lambda_grid", buf);
    cJSON_AddStringToObject(j, "lambda_scale", "mean diag of X^T X over the features of the Gram solved");
    cJSON_AddStringToObject(j, "lambda_selection", o->select_agree ? "held-out agreement with SPADE's option"
                                                                   : "held-out MSE over the target values");
    snprintf(buf, sizeof buf, "%g", o->val_frac);
    cJSON_AddStringToObject(j, "val_frac", buf);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(j, "split_seed", buf);
    cJSON_AddStringToObject(j, "refit", o->no_refit ? "train only" : "train + validation");
    cJSON_AddStringToObject(j, "ridge_solver", o->ridge_gpu ? "cuBLAS fp64 Grams, cuSOLVER Dpotrf/Dpotrs"
                                                            : "fp64 double-double Grams, LAPACK dposv (dsyev fallback)");
    ll_spade_opts_describe(&o->spade, buf, sizeof buf);
    cJSON_AddStringToObject(j, "spade", buf);
    snprintf(buf, sizeof buf, "%s x %d", o->comm && o->comm->name ? o->comm->name : "none",
             o->comm ? o->comm->size : 1);
    cJSON_AddStringToObject(j, "reduce", buf);
    snprintf(buf, sizeof buf, "%d", data ? data->n : 0);
    cJSON_AddStringToObject(j, "n_prompts", buf);
    snprintf(buf, sizeof buf, "%lld", (long long)g->n_train);
    cJSON_AddStringToObject(j, "n_train", buf);
    snprintf(buf, sizeof buf, "%lld", (long long)g->n_val);
    cJSON_AddStringToObject(j, "n_val", buf);
    if (m && m->path) cJSON_AddStringToObject(j, "model", m->path);
    if (m) {
        ll_lspade_model_hash(m, buf, sizeof buf);
        cJSON_DeleteItemFromObjectCaseSensitive(j, "model_hash");
        cJSON_AddStringToObject(j, "model_hash", buf);
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

ll_status ll_lspade_fit_finish(ll_model *m, const ll_lspade_data *data, const ll_lspade_fit_opts *o, int lo, int hi,
                               ll_lspade_grams *g, const char *meta_json, ll_lspade_maps *maps) {
    LL_TRY(ll_lspade_grams_download(g));
    LL_TRY(ll_lspade_grams_allreduce(g, o->comm));
    maps->target = o->target;
    maps->norm_input = o->norm_input;
    LL_TRY(ll_lspade_solve(g, o, m, maps));
    maps->meta_json = ll_fit_meta(m, data, o, lo, hi, g, meta_json);
    if (!maps->meta_json) return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for the metadata");
    return LL_OK;
}

ll_status ll_lspade_fit_block(ll_lspade_grams *g, ll_lspade_maps *maps, ll_model *m, const ll_lspade_data *data,
                              const ll_lspade_fit_opts *o, int l, int p0, int nb, const float *lg, int V, float *X,
                              float *Y, const int64_t *idx, int *pick, double vf) {
    int K = data->K;
    for (int i = 0; i < nb; i++) {
        if (o->target == LL_LSPADE_TARGET_LOGITS)
            for (int k = 0; k < K; k++) Y[(size_t)i * K + k] = lg[(size_t)i * V + data->cand[p0 + i][k]];
        if (o->select_agree)
            pick[i] = ll_spade_decode_row(lg + (size_t)i * V, V, data->cand[p0 + i], K, LL_SPADE_DECODE_OPTIONS).pick;
    }
    if (o->norm_input) LL_TRY(ll_lspade_final_norm(maps, m, nb, X, X));
    LL_TRY(ll_lspade_grams_add(g, l, X, Y, idx, nb, vf, o->seed));
    if (o->select_agree) LL_TRY(ll_lspade_grams_keep_val(g, l, K, X, pick, data->cand + p0, idx, nb, vf, o->seed));
    return LL_OK;
}

ll_status ll_lspade_fit(ll_model *m, const ll_lspade_data *data, const ll_lspade_fit_opts *o, const char *meta_json,
                        ll_lspade_maps **out) {
    *out = NULL;
    const ll_config *c = &m->cfg;
    int L = c->n_layers, d = c->d_model, V = c->vocab_size, K = data->K;
    int lo = o->layer_lo, hi = o->layer_hi;
    if (lo == 0 && hi == 0) {
        lo = L > 1 ? 1 : 0;
        hi = L > 1 ? L - 1 : 0;
    }
    if (data->n <= 0) return ll_err(LL_ERR_ARG, "L-SPADE: no training prompts");
    if (K <= 0) return ll_err(LL_ERR_ARG, "L-SPADE: prompts need candidate tokens (K = %d)", K);
    for (int i = 0; i < data->n; i++) {
        if (data->n_tok[i] < 1) return ll_err(LL_ERR_ARG, "L-SPADE: prompt %d is empty", i);
        for (int k = 0; k < K; k++)
            if (data->cand[i][k] < 0 || data->cand[i][k] >= V)
                return ll_err(LL_ERR_ARG, "L-SPADE: prompt %d: candidate %d is token %d, outside [0, %d)", i, k,
                              data->cand[i][k], V);
    }
    int dout = o->target == LL_LSPADE_TARGET_LOGITS ? K : d;
    double vf = o->val_frac < 0 ? 0.2 : o->val_frac;
    ll_lspade_fit_opts oo = *o;
    oo.val_frac = vf;
    ll_lspade_grams g;
    LL_TRY(ll_lspade_grams_init(&g, L, lo, hi, d, dout));
    if (o->ridge_gpu) {
        ll_status gs = ll_lspade_grams_use_gpu(&g);
        if (gs) {
            ll_lspade_grams_free(&g);
            return ll_err_prefix(gs, "L-SPADE --ridge-device cuda: ");
        }
    }
    ll_lspade_maps *maps = NULL;
    ll_spade *sp = NULL;
    ll_spade_states states = {0};
    int B = LL_LSPADE_BLOCK;
    float *X = malloc((size_t)B * d * sizeof(float)), *Y = malloc((size_t)B * dout * sizeof(float));
    bool need_lg = o->target == LL_LSPADE_TARGET_LOGITS || o->select_agree;
    float *lg = need_lg ? malloc((size_t)B * V * sizeof(float)) : NULL;
    int64_t idx[LL_LSPADE_BLOCK];
    int pick[LL_LSPADE_BLOCK];
    ll_status st = ll_lspade_maps_alloc(&maps, L, d, dout, K);
    if (!st && (!X || !Y || (need_lg && !lg)))
        st = ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for a block of %d prompts", B);
    if (!st) st = ll_spade_new(&sp, m, &o->spade, B);
    int rank = o->comm ? o->comm->rank : 0, size = o->comm && o->comm->size > 0 ? o->comm->size : 1;
    int n_blocks = (data->n + B - 1) / B;
    int64_t mine = 0, done = 0;
    for (int b = rank; b < n_blocks; b += size) mine += (b + 1) * B <= data->n ? B : data->n - b * B;
    for (int b = rank; b < n_blocks && !st; b += size) {
        int p0 = b * B, nb = p0 + B <= data->n ? B : data->n - p0;
        st = ll_spade_states_collect(m, data->tokens + p0, data->n_tok + p0, nb, false, &states);
        for (int l = lo; l <= hi && !st; l++) {
            st = ll_spade_run(sp, l, &states, 0, nb, lg, o->target == LL_LSPADE_TARGET_HIDDEN ? Y : NULL);
            if (st) break;
            for (int i = 0; i < nb; i++) {
                memcpy(X + (size_t)i * d, ll_spade_state(&states, l, i, 1), (size_t)d * sizeof(float));
                idx[i] = p0 + i;
            }
            st = ll_lspade_fit_block(&g, maps, m, data, o, l, p0, nb, lg, V, X, Y, idx, pick, vf);
        }
        ll_spade_states_free(&states);
        done += nb;
        if (o->progress) o->progress(o->progress_user, done, mine);
    }
    if (!st) st = ll_lspade_fit_finish(m, data, &oo, lo, hi, &g, meta_json, maps);
    ll_spade_free(sp);
    ll_lspade_grams_free(&g);
    free(X);
    free(Y);
    free(lg);
    if (st) {
        ll_lspade_maps_free(maps);
        return st;
    }
    *out = maps;
    return LL_OK;
}
