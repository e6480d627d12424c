/* L-SPADE fitted from a stored activation dump (host/store): the answer rows of
 * hook_resid_post (after block l-1, i.e. h^l) come from the file instead of a forward pass. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_lspade.h"
#include "store/ll_store.h"

ll_status ll_lspade_fit_from_dump(ll_model *m, const ll_lspade_data *data, const char *dump_path,
                                  const ll_lspade_fit_opts *o, const char *meta_json, ll_lspade_maps **out) {
    *out = NULL;
    const ll_config *c = &m->cfg;
    int L = c->n_layers, d = c->d_model, V = c->vocab_size, K = data->K, n = data->n;
    int lo = o->layer_lo, hi = o->layer_hi;
    if (lo == 0 && hi == 0) {
        lo = L > 1 ? 1 : 0;
        hi = L > 1 ? L - 1 : 0;
    }
    if (lo < 1) return ll_err(LL_ERR_ARG, "L-SPADE from a dump: layer %d has no hook_resid_post (layers start at 1)", lo);
    if (o->spade.rows != LL_SPADE_ROWS_CACHED)
        return ll_err(LL_ERR_ARG, "L-SPADE from a dump: SPADE rows=two needs h^l_0, which a dump of answer rows lacks; "
                                  "use rows=cached");
    ll_store_reader *r;
    LL_TRY(ll_store_open(&r, dump_path, false));
    ll_status st = LL_OK;
    const ll_store_point_info *pt = ll_store_point_find(r, "hook_resid_post");
    int64_t nseq = ll_store_n_seq(r), ntok = ll_store_n_tokens(r), nrows = ll_store_n_rows(r);
    int64_t *off = malloc((size_t)(nseq + 1) * sizeof(int64_t)), *roff = malloc((size_t)(nseq + 1) * sizeof(int64_t));
    int64_t *tok = malloc((size_t)(ntok > 0 ? ntok : 1) * sizeof(int64_t)), *rpos = malloc((size_t)(nrows > 0 ? nrows : 1) * sizeof(int64_t));
    int64_t *ans = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    int *slot = calloc((size_t)L + 1, sizeof(int));
    if (!off || !roff || !tok || !rpos || !ans || !slot) st = ll_err(LL_ERR_NOMEM, "%s: no memory for the tables", dump_path);
    if (!st && !pt) st = ll_err(LL_ERR_MISSING, "%s: no hook_resid_post in the dump (dump with --points hook_resid_post)", dump_path);
    if (!st && pt->width != d)
        st = ll_err(LL_ERR_SHAPE, "%s: hook_resid_post rows of %d floats, the model has d_model %d", dump_path, pt->width, d);
    if (!st && nseq != n)
        st = ll_err(LL_ERR_ARG, "%s: %lld sequences, the prompt set has %d (dump the same prompts)", dump_path,
                    (long long)nseq, n);
    for (int l = lo; l <= hi && !st; l++)
        if ((slot[l] = ll_store_layer_slot(pt, l - 1)) < 0)
            st = ll_err(LL_ERR_MISSING, "%s: hook_resid_post of block %d (h^%d) is not in the dump (--layers)", dump_path,
                        l - 1, l);
    if (!st) st = ll_store_read_i64(r, "sequences/offsets", 0, nseq + 1, off);
    if (!st) st = ll_store_read_i64(r, "sequences/row_offsets", 0, nseq + 1, roff);
    if (!st) st = ll_store_read_i64(r, "sequences/tokens", 0, ntok, tok);
    if (!st) st = ll_store_read_i64(r, "rows/position", 0, nrows, rpos);
    for (int s = 0; s < n && !st; s++) {
        int len = (int)(off[s + 1] - off[s]);
        if (len != data->n_tok[s]) {
            st = ll_err(LL_ERR_ARG, "%s: sequence %d has %d tokens, prompt %d has %d (not the same prompts)", dump_path, s,
                        len, s, data->n_tok[s]);
            break;
        }
        for (int i = 0; i < len; i++)
            if (tok[off[s] + i] != data->tokens[s][i]) {
                st = ll_err(LL_ERR_ARG, "%s: sequence %d token %d is %lld, the prompt has %d (not the same prompts)",
                            dump_path, s, i, (long long)tok[off[s] + i], data->tokens[s][i]);
                break;
            }
        ans[s] = -1;
        for (int64_t q = roff[s]; q < roff[s + 1]; q++)
            if (rpos[q] == len - 1) ans[s] = q;
        if (!st && ans[s] < 0)
            st = ll_err(LL_ERR_MISSING, "%s: sequence %d has no stored row at its last token %d (dump with --positions "
                                        "answer or last)", dump_path, s, len - 1);
    }
    int dout = o->target == LL_LSPADE_TARGET_LOGITS ? K : d, B = LL_LSPADE_BLOCK;
    double vf = o->val_frac < 0 ? 0.2 : o->val_frac;
    ll_lspade_fit_opts oo = *o;
    oo.val_frac = vf;
    ll_lspade_grams g = {0};
    ll_lspade_maps *maps = NULL;
    ll_spade *sp = NULL;
    float *X = malloc((size_t)B * d * sizeof(float)), *Y = malloc((size_t)B * dout * sizeof(float));
    bool need_lg = o->target == LL_LSPADE_TARGET_LOGITS || o->select_agree;
    float *lg = need_lg ? malloc((size_t)B * V * sizeof(float)) : NULL;
    int pick[LL_LSPADE_BLOCK];
    const float *pa[LL_LSPADE_BLOCK];
    int32_t ft[LL_LSPADE_BLOCK];
    int64_t idx[LL_LSPADE_BLOCK];
    if (!st && (!X || !Y || (need_lg && !lg))) st = ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for a block");
    if (!st) st = ll_lspade_grams_init(&g, L, lo, hi, d, dout);
    if (!st && o->ridge_gpu) st = ll_lspade_grams_use_gpu(&g);
    if (!st) st = ll_lspade_maps_alloc(&maps, L, d, dout, K);
    if (!st) st = ll_spade_new(&sp, m, &o->spade, B);
    int rank = o->comm ? o->comm->rank : 0, size = o->comm && o->comm->size > 0 ? o->comm->size : 1;
    int n_blocks = (n + B - 1) / B;
    int64_t done = 0, mine = 0;
    for (int b = rank; b < n_blocks; b += size) mine += (b + 1) * B <= n ? B : n - b * B;
    for (int b = rank; b < n_blocks && !st; b += size) {
        int p0 = b * B, nb = p0 + B <= n ? B : n - p0;
        for (int i = 0; i < nb; i++) {
            ft[i] = data->tokens[p0 + i][0];
            idx[i] = p0 + i;
            pa[i] = X + (size_t)i * d;
        }
        for (int l = lo; l <= hi && !st; l++) {
            for (int i = 0; i < nb && !st; i++) st = ll_store_read_rows(r, pt, slot[l], ans[p0 + i], 1, X + (size_t)i * d);
            if (st) break;
            st = ll_spade_run_rows(sp, l, nb, NULL, pa, data->n_tok + p0, ft, lg,
                                   o->target == LL_LSPADE_TARGET_HIDDEN ? Y : NULL);
            if (st) break;
            st = ll_lspade_fit_block(&g, maps, m, data, o, l, p0, nb, lg, V, X, Y, idx, pick, vf);
        }
        done += nb;
        if (o->progress) o->progress(o->progress_user, done, mine);
    }
    char *meta = NULL;
    if (!st) {
        /* Record where the activations came from next to the caller's fields. */
        cJSON *j = meta_json ? cJSON_Parse(meta_json) : NULL;
        if (!j || !cJSON_IsObject(j)) {
            cJSON_Delete(j);
            j = cJSON_CreateObject();
        }
        char buf[4200];
        snprintf(buf, sizeof buf, "dump %s", dump_path);
        cJSON_AddStringToObject(j, "inputs", buf);
        meta = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        st = ll_lspade_fit_finish(m, data, &oo, lo, hi, &g, meta, maps);
    }
    free(meta);
    ll_spade_free(sp);
    ll_lspade_grams_free(&g);
    ll_store_reader_free(r);
    free(off);
    free(roff);
    free(tok);
    free(rpos);
    free(ans);
    free(slot);
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
