/* Per-layer accuracy of the read-out methods (see ll_lens_eval.h). */
#include "ll_lens_eval.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "../core/ll_progress.h"
#include "../store/ll_h5.h"

ll_status ll_lens_eval_add_method(ll_lens_eval_opts *o, const char *name, ll_lens_method_fn fn, void *user) {
    if (o->n_methods >= LL_LENS_MAX_METHODS) return ll_err(LL_ERR_ARG, "lens: at most %d methods", LL_LENS_MAX_METHODS);
    if (!name || !*name || strlen(name) >= sizeof o->methods[0].name)
        return ll_err(LL_ERR_ARG, "lens: method name \"%s\" must have 1..15 characters", name ? name : "");
    for (int i = 0; i < o->n_methods; i++)
        if (!strcmp(o->methods[i].name, name)) return ll_err(LL_ERR_ARG, "lens: method %s given twice", name);
    ll_lens_method *e = &o->methods[o->n_methods++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->fn = fn;
    e->user = user;
    return LL_OK;
}

ll_status ll_lens_eval_parse_methods(ll_lens_eval_opts *o, const char *list) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list ? list : "");
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "logit") && strcmp(t, "tuned") && strcmp(t, "spade"))
            return ll_err(LL_ERR_ARG, "lens: unknown method \"%s\" (built in: logit, tuned, spade)", t);
        LL_TRY(ll_lens_eval_add_method(o, t, NULL, NULL));
    }
    return LL_OK;
}

void ll_lens_eval_result_free(ll_lens_eval_result *r) {
    if (!r) return;
    free(r->pick);
    free(r->token);
    free(r->prob);
    free(r->entropy);
    free(r->full_pick);
    free(r->full_token);
    free(r->full_prob);
    free(r->acc);
    free(r->cost);
    memset(r, 0, sizeof *r);
}

/* Decode each prompt's logits row against its candidates. */
static void ll_decode_rows(const float *lg, int V, const ll_mcqa_prompts *pr, int pr0, int n, ll_spade_decode mode,
                           ll_spade_pick *out) {
    for (int i = 0; i < n; i++)
        out[i] = ll_spade_decode_row(lg + (size_t)i * V, V, pr->cand[pr0 + i], pr->n_cand[pr0 + i], mode);
}

ll_status ll_lens_eval_run(ll_model *m, const ll_mcqa_prompts *pr, const ll_lens_eval_opts *o, ll_lens_eval_result *r) {
    memset(r, 0, sizeof *r);
    if (o->n_methods <= 0) return ll_err(LL_ERR_ARG, "lens: no methods");
    if (pr->n <= 0) return ll_err(LL_ERR_ARG, "lens: no prompts");
    for (int k = 0; k < o->n_methods; k++)
        if (!strcmp(o->methods[k].name, "tuned") && !o->methods[k].fn && !o->tuned)
            return ll_err(LL_ERR_ARG, "lens: method tuned needs a trained lens (--tuned FILE)");
    int L = m->cfg.n_layers, V = m->cfg.vocab_size, d = m->cfg.d_model, P = pr->n, M = o->n_methods;
    int B = o->batch > 0 ? o->batch : 16;
    r->n_methods = M;
    r->n_layers = L;
    r->n_prompts = P;
    r->spade = o->spade;
    for (int k = 0; k < M; k++) snprintf(r->names[k], sizeof r->names[k], "%s", o->methods[k].name);
    size_t cells = (size_t)M * (L + 1) * P;
    r->pick = ll_calloc(cells, sizeof *r->pick, "lens results");
    r->token = ll_calloc(cells, sizeof *r->token, "lens results");
    r->prob = ll_calloc(cells, sizeof *r->prob, "lens results");
    r->entropy = ll_calloc(cells, sizeof *r->entropy, "lens results");
    r->full_pick = ll_calloc((size_t)P, sizeof *r->full_pick, "lens results");
    r->full_token = ll_calloc((size_t)P, sizeof *r->full_token, "lens results");
    r->full_prob = ll_calloc((size_t)P, sizeof *r->full_prob, "lens results");
    r->acc = ll_calloc((size_t)M * (L + 1), sizeof *r->acc, "lens results");
    r->cost = ll_calloc((size_t)M * (L + 1), sizeof *r->cost, "lens results");
    float *lg = malloc((size_t)B * V * sizeof(float));
    float *rows = malloc((size_t)B * d * sizeof(float));
    ll_spade_pick *pk = malloc((size_t)B * sizeof *pk);
    ll_spade *sp = NULL;
    ll_status st = LL_OK;
    if (!r->pick || !r->token || !r->prob || !r->entropy || !r->full_pick || !r->full_token || !r->full_prob ||
        !r->acc || !r->cost || !lg || !rows || !pk) {
        st = ll_err(LL_ERR_NOMEM, "lens: no memory for %d prompts", P);
        goto done;
    }
    bool want_spade = false;
    for (int k = 0; k < M; k++) want_spade |= !strcmp(o->methods[k].name, "spade") && !o->methods[k].fn;
    if (want_spade && (st = ll_spade_new(&sp, m, &o->spade, B))) goto done;
    ll_progress prog;
    ll_progress_init(&prog, "lens", "prompts", P, o->progress ? 0 : -1);
    for (int p0 = 0; p0 < P && !st; p0 += B) {
        int n = P - p0 < B ? P - p0 : B;
        ll_spade_states ss;
        if ((st = ll_spade_states_collect(m, (const int32_t *const *)pr->tok + p0, pr->n_tok + p0, n, true, &ss))) break;
        ll_decode_rows(ss.full_logits, V, pr, p0, n, o->spade.decode, pk);
        for (int i = 0; i < n; i++) {
            r->full_pick[p0 + i] = pk[i].pick;
            r->full_token[p0 + i] = pk[i].token;
            r->full_prob[p0 + i] = pk[i].prob;
        }
        for (int k = 0; k < M && !st; k++) {
            const ll_lens_method *me = &o->methods[k];
            for (int l = 0; l <= L && !st; l++) {
                if (me->fn) {
                    st = me->fn(me->user, m, &ss, l, 0, n, pr, p0, o->spade.decode, pk);
                } else if (!strcmp(me->name, "spade")) {
                    if (!(st = ll_spade_run(sp, l, &ss, 0, n, lg, NULL)))
                        ll_decode_rows(lg, V, pr, p0, n, o->spade.decode, pk);
                } else {
                    for (int i = 0; i < n; i++)
                        memcpy(rows + (size_t)i * d, ll_spade_state(&ss, l, i, 1), (size_t)d * sizeof(float));
                    st = !strcmp(me->name, "tuned") ? ll_tuned_lens_logits(o->tuned, m, l, n, rows, lg)
                                                    : ll_lens_logits(m, n, rows, lg);
                    if (!st) ll_decode_rows(lg, V, pr, p0, n, o->spade.decode, pk);
                }
                if (st) {
                    ll_err_prefix(st, "lens: method %s at layer %d: ", me->name, l);
                    break;
                }
                for (int i = 0; i < n; i++) {
                    size_t at = ll_lens_eval_idx(r, k, l, p0 + i);
                    r->pick[at] = pk[i].pick;
                    r->token[at] = pk[i].token;
                    r->prob[at] = pk[i].prob;
                    r->entropy[at] = pk[i].entropy;
                }
            }
        }
        ll_spade_states_free(&ss);
        ll_progress_update(&prog, p0 + n, p0 + n, 0);
    }
    ll_progress_finish(&prog);
    if (st) goto done;
    if (sp) r->spade_token_layers = ll_spade_token_layers(sp);
    /* Accuracy: the decoded pick is the gold candidate (under vocab decoding the top token
     * must be the gold candidate's token, else the pick is -1 or another option). */
    int scored = 0, full_ok = 0;
    for (int i = 0; i < P; i++) {
        if (pr->gold[i] < 0) continue;
        scored++;
        full_ok += r->full_pick[i] == pr->gold[i];
        for (int k = 0; k < M; k++)
            for (int l = 0; l <= L; l++) r->acc[k * (L + 1) + l] += r->pick[ll_lens_eval_idx(r, k, l, i)] == pr->gold[i];
    }
    r->n_scored = scored;
    for (int k = 0; k < M * (L + 1); k++) r->acc[k] = scored ? r->acc[k] / scored : 0;
    r->full_acc = scored ? (double)full_ok / scored : 0;
    double mean_n = 0;
    for (int i = 0; i < P; i++) mean_n += pr->n_tok[i];
    mean_n /= P;
    r->full_cost = mean_n * L;
    for (int k = 0; k < M; k++)
        for (int l = 0; l <= L; l++)
            r->cost[k * (L + 1) + l] = mean_n * l + (!strcmp(r->names[k], "spade") || !strcmp(r->names[k], "lspade")
                                                          ? 2.0 * (L - l) : 0.0);
done:
    ll_spade_free(sp);
    free(lg);
    free(rows);
    free(pk);
    if (st) ll_lens_eval_result_free(r);
    return st;
}

ll_status ll_lens_eval_write_csv(const ll_lens_eval_result *r, const char *path) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return ll_err(LL_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    char sw[128];
    ll_spade_opts_describe(&r->spade, sw, sizeof sw);
    fprintf(f, "method,layer,accuracy,n_scored,token_layers,switches\n");
    for (int k = 0; k < r->n_methods; k++)
        for (int l = 0; l <= r->n_layers; l++)
            fprintf(f, "%s,%d,%.6f,%d,%.3f,%s\n", r->names[k], l, r->acc[k * (r->n_layers + 1) + l], r->n_scored,
                    r->cost[k * (r->n_layers + 1) + l], sw);
    fprintf(f, "full,%d,%.6f,%d,%.3f,%s\n", r->n_layers, r->full_acc, r->n_scored, r->full_cost, sw);
    bool ok = !ferror(f);
    if (fclose(f) || !ok || rename(tmp, path)) {
        remove(tmp);
        return ll_err(LL_ERR_IO, "%s: write failed", path);
    }
    return LL_OK;
}

static ll_status ll_h5_put(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ds = sp < 0 ? -1 : H5Dcreate2(file, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = ds < 0 ? -1 : H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (ds >= 0) H5Dclose(ds);
    if (sp >= 0) H5Sclose(sp);
    return e < 0 ? ll_h5_err(LL_ERR_IO, "dataset %s", name) : LL_OK;
}

ll_status ll_lens_eval_write_h5(const ll_lens_eval_result *r, const ll_mcqa_prompts *pr, const char *path) {
    ll_h5_quiet();
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return ll_h5_err(LL_ERR_IO, "%s: cannot create", tmp);
    int M = r->n_methods, L1 = r->n_layers + 1, P = r->n_prompts;
    hsize_t d2[2] = {(hsize_t)M, (hsize_t)L1}, d3[3] = {(hsize_t)M, (hsize_t)L1, (hsize_t)P}, d1[1] = {(hsize_t)P};
    hsize_t one[1] = {1};
    const char *names[LL_LENS_MAX_METHODS];
    for (int k = 0; k < M; k++) names[k] = r->names[k];
    ll_status st = ll_h5_put(f, "accuracy", H5T_NATIVE_DOUBLE, 2, d2, r->acc);
    if (!st) st = ll_h5_put(f, "cost", H5T_NATIVE_DOUBLE, 2, d2, r->cost);
    if (!st) st = ll_h5_put(f, "full_accuracy", H5T_NATIVE_DOUBLE, 1, one, &r->full_acc);
    if (!st) st = ll_h5_put(f, "pick", H5T_NATIVE_INT, 3, d3, r->pick);
    if (!st) st = ll_h5_put(f, "token", H5T_NATIVE_INT32, 3, d3, r->token);
    if (!st) st = ll_h5_put(f, "prob", H5T_NATIVE_FLOAT, 3, d3, r->prob);
    if (!st) st = ll_h5_put(f, "entropy", H5T_NATIVE_FLOAT, 3, d3, r->entropy);
    if (!st) st = ll_h5_put(f, "full_pick", H5T_NATIVE_INT, 1, d1, r->full_pick);
    if (!st && pr) st = ll_h5_put(f, "gold", H5T_NATIVE_INT, 1, d1, pr->gold);
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    if (!st) st = ll_h5_attr_strs(root, "methods", names, M);
    if (!st) st = ll_h5_attr_str(root, "positions", ll_spade_positions_name(r->spade.positions));
    if (!st) st = ll_h5_attr_str(root, "decode", ll_spade_decode_name(r->spade.decode));
    if (!st) st = ll_h5_attr_str(root, "rows", ll_spade_rows_name(r->spade.rows));
    if (!st) st = ll_h5_attr_i64(root, "n_layers", r->n_layers);
    if (!st) st = ll_h5_attr_i64(root, "n_scored", r->n_scored);
    if (!st) st = ll_h5_attr_str(root, "layer_convention", "l = residual after l blocks (0 = embeddings)");
    /* Written last: a file without it was interrupted. */
    if (!st) st = ll_h5_attr_bool(root, "complete", true);
    H5Gclose(root);
    if (H5Fclose(f) < 0 && !st) st = ll_h5_err(LL_ERR_IO, "%s: close", tmp);
    if (!st && rename(tmp, path)) st = ll_err(LL_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (st) remove(tmp);
    return st;
}
