/* The SPADE-EXIT loop (see ll_exit.h). */
#include "ll_exit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ll_progress.h"
#include "lens/ll_lens.h"

void ll_exit_result_free(ll_exit_result *r) {
    free(r->exit_layer);
    free(r->pick);
    free(r->H);
    free(r->checks);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

/* Per-batch working memory. */
typedef struct {
    int cap_seq;
    int64_t cap_rows;
    float *h, *h2;        /* [rows][d] residuals entering / leaving the block */
    int32_t *tok;         /* [rows] */
    int64_t *off, *off2;  /* [seq + 1] */
    int *who, *who2;      /* [seq] prompt index of each running sequence */
    float *ans, *lg, *vl; /* answer rows [seq][d], option logits [seq][K], vocab logits [seq][V] */
    const float **p0, **pa;
    int *ntk;
    int32_t *ftk;
    const int32_t **cand;
} ll_exit_work;

static void ll_exit_work_free(ll_exit_work *w) {
    free(w->h);
    free(w->h2);
    free(w->tok);
    free(w->off);
    free(w->off2);
    free(w->who);
    free(w->who2);
    free(w->ans);
    free(w->lg);
    free(w->vl);
    free(w->p0);
    free(w->pa);
    free(w->ntk);
    free(w->ftk);
    free(w->cand);
}

/* Answer the sequences listed in sel[0..ns) of the running batch from layer l: SPADE for
 * l < L, the full model (final norm + head on the answer row) at l = L. */
static ll_status ll_exit_answer(ll_model *m, const ll_exit_opts *o, const ll_lspade_data *data, ll_exit_work *w,
                                int l, const int *sel, int ns, ll_exit_result *out) {
    int d = m->cfg.d_model, V = m->cfg.vocab_size, L = m->cfg.n_layers;
    for (int j = 0; j < ns; j++) {
        int s = sel[j], p = w->who[s];
        w->p0[j] = w->h + (size_t)w->off[s] * d;
        w->pa[j] = w->h + (size_t)(w->off[s + 1] - 1) * d;
        w->ntk[j] = data->n_tok[p];
        w->ftk[j] = data->tokens[p][0];
        memcpy(w->ans + (size_t)j * d, w->pa[j], (size_t)d * sizeof(float));
    }
    ll_status st;
    if (l < L) st = ll_spade_run_rows(o->sp, l, ns, w->p0, w->pa, w->ntk, w->ftk, w->vl, NULL);
    else st = ll_lens_logits(m, ns, w->ans, w->vl);
    if (st) return st;
    ll_spade_decode mode = ll_spade_get_opts(o->sp)->decode;
    for (int j = 0; j < ns; j++) {
        int p = w->who[sel[j]];
        ll_spade_pick pk = ll_spade_decode_row(w->vl + (size_t)j * V, V, data->cand[p], data->K, mode);
        out->pick[p] = pk.pick;
        out->exit_layer[p] = l;
    }
    return LL_OK;
}

ll_status ll_exit_run(ll_model *m, const ll_exit_opts *o, const ll_lspade_data *data, ll_exit_result *out) {
    memset(out, 0, sizeof *out);
    const ll_config *c = &m->cfg;
    int L = c->n_layers, d = c->d_model, V = c->vocab_size, K = data->K, n = data->n;
    int lo = o->min_layer > 0 ? o->min_layer : 1, B = o->batch > 0 ? o->batch : 16;
    if (!o->maps || !o->sp) return ll_err(LL_ERR_ARG, "SPADE-EXIT: maps and a SPADE runner are required");
    if (o->maps->K != K)
        return ll_err(LL_ERR_SHAPE, "SPADE-EXIT: the maps are for K = %d options, the prompts have %d", o->maps->K, K);
    if (!(o->tau >= 0)) return ll_err(LL_ERR_ARG, "SPADE-EXIT: tau must be >= 0, found %g", o->tau);
    out->n = n;
    out->L = L;
    out->exit_layer = malloc((size_t)n * sizeof(int));
    out->pick = malloc((size_t)n * sizeof(int));
    out->H = malloc((size_t)n * (L + 1) * sizeof(float));
    out->checks = calloc((size_t)n, sizeof(int));
    out->rows = calloc((size_t)L, sizeof(int64_t));
    ll_exit_work w = {0};
    int64_t maxrows = 0;
    for (int p0 = 0; p0 < n; p0 += B) {
        int64_t r = 0;
        for (int i = p0; i < n && i < p0 + B; i++) r += data->n_tok[i];
        if (r > maxrows) maxrows = r;
    }
    w.h = malloc((size_t)maxrows * d * sizeof(float));
    w.h2 = malloc((size_t)maxrows * d * sizeof(float));
    w.tok = malloc((size_t)maxrows * sizeof(int32_t));
    w.off = malloc((size_t)(B + 1) * sizeof(int64_t));
    w.off2 = malloc((size_t)(B + 1) * sizeof(int64_t));
    w.who = malloc((size_t)B * sizeof(int));
    w.who2 = malloc((size_t)B * sizeof(int));
    w.ans = malloc((size_t)B * d * sizeof(float));
    w.lg = malloc((size_t)B * K * sizeof(float));
    w.vl = malloc((size_t)B * V * sizeof(float));
    w.p0 = malloc((size_t)B * sizeof(float *));
    w.pa = malloc((size_t)B * sizeof(float *));
    w.ntk = malloc((size_t)B * sizeof(int));
    w.ftk = malloc((size_t)B * sizeof(int32_t));
    w.cand = malloc((size_t)B * sizeof(int32_t *));
    int *sel = malloc((size_t)B * sizeof(int));
    ll_status st = LL_OK;
    if (!out->exit_layer || !out->pick || !out->H || !out->checks || !out->rows || !w.h || !w.h2 || !w.tok ||
        !w.off || !w.off2 || !w.who || !w.who2 || !w.ans || !w.lg || !w.vl || !w.p0 || !w.pa || !w.ntk || !w.ftk ||
        !w.cand || !sel)
        st = ll_err(LL_ERR_NOMEM, "SPADE-EXIT: no memory for batches of %d prompts (%lld tokens)", B, (long long)maxrows);
    for (size_t i = 0; !st && i < (size_t)n * (L + 1); i++) out->H[i] = NAN;
    int64_t sp0 = st ? 0 : ll_spade_token_layers(o->sp);
    double t0 = ll_now(), tmap = 0;
    for (int p0 = 0; p0 < n && !st; p0 += B) {
        int ns = p0 + B <= n ? B : n - p0;
        w.off[0] = 0;
        for (int s = 0; s < ns; s++) {
            int p = p0 + s;
            if (data->n_tok[p] < 1) {
                st = ll_err(LL_ERR_ARG, "SPADE-EXIT: prompt %d is empty", p);
                break;
            }
            w.who[s] = p;
            memcpy(w.tok + w.off[s], data->tokens[p], (size_t)data->n_tok[p] * sizeof(int32_t));
            w.off[s + 1] = w.off[s] + data->n_tok[p];
        }
        for (int l = 1; l <= L && ns > 0 && !st; l++) {
            /* Block l-1 (0-based) takes h^{l-1} of the running sequences to h^l. */
            ll_batch b = {.n_seq = ns, .seq_off = w.off, .tokens = l == 1 ? w.tok : NULL};
            ll_forward_opts fo = {.start_layer = l - 1, .stop_layer = l, .resid_in = l == 1 ? NULL : w.h,
                                  .resid_out = w.h2};
            if ((st = ll_forward(m, &b, &fo))) break;
            out->rows[l - 1] += w.off[ns];
            float *t = w.h;
            w.h = w.h2;
            w.h2 = t;
            if (l == L) {
                for (int s = 0; s < ns; s++) sel[s] = s;
                st = ll_exit_answer(m, o, data, &w, L, sel, ns, out);
                break;
            }
            if (l < lo || !o->maps->W[l]) continue;
            double tm = ll_now();
            for (int s = 0; s < ns; s++) {
                memcpy(w.ans + (size_t)s * d, w.h + (size_t)(w.off[s + 1] - 1) * d, (size_t)d * sizeof(float));
                w.cand[s] = data->cand[w.who[s]];
            }
            if ((st = ll_lspade_apply(o->maps, m, l, ns, w.ans, w.cand, w.lg))) break;
            int ne = 0;
            for (int s = 0; s < ns; s++) {
                int p = w.who[s];
                double H = ll_lspade_norm_entropy(w.lg + (size_t)s * K, K, NULL);
                out->H[(size_t)p * (L + 1) + l] = (float)H;
                out->checks[p]++;
                /* The stored float is what the decision compares, so the sweep (which reads
                 * the stored value) decides exactly as the loop did. */
                if ((float)H < o->tau) sel[ne++] = s;
            }
            tmap += ll_now() - tm;
            if (!ne) continue;
            if ((st = ll_exit_answer(m, o, data, &w, l, sel, ne, out))) break;
            /* Drop the exited sequences: compact rows, offsets and the prompt list. */
            int ns2 = 0, e = 0;
            w.off2[0] = 0;
            for (int s = 0; s < ns; s++) {
                if (e < ne && sel[e] == s) {
                    e++;
                    continue;
                }
                int64_t len = w.off[s + 1] - w.off[s];
                memcpy(w.h2 + (size_t)w.off2[ns2] * d, w.h + (size_t)w.off[s] * d, (size_t)len * d * sizeof(float));
                w.off2[ns2 + 1] = w.off2[ns2] + len;
                w.who2[ns2++] = w.who[s];
            }
            float *t2 = w.h;
            w.h = w.h2;
            w.h2 = t2;
            int64_t *to = w.off;
            w.off = w.off2;
            w.off2 = to;
            int *tw = w.who;
            w.who = w.who2;
            w.who2 = tw;
            ns = ns2;
        }
        if (o->progress) o->progress(o->progress_user, p0 + (p0 + B <= n ? B : n - p0), n);
    }
    out->seconds = ll_now() - t0;
    out->map_seconds = tmap;
    if (!st) out->spade_token_layers = ll_spade_token_layers(o->sp) - sp0;
    free(sel);
    ll_exit_work_free(&w);
    if (st) ll_exit_result_free(out);
    return st;
}
