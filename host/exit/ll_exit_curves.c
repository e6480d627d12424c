/* Curves and the sweep table from one evaluation pass (see ll_exit_curves.h). */
#include "ll_exit_curves.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ll_lspade_maps *maps;
    float *H; /* [n][L + 1] */
    int L, K;
    float *h, *lg; /* scratch */
    int cap;
} ll_lspade_method;

/* The L-SPADE read-out as a host/lens method: the map's option logits decoded like the
 * others (pick, token, prob, entropy in nats), and the normalised entropy kept for SPADE-EXIT. */
static ll_status ll_lspade_method_fn(void *user, ll_model *m, const ll_spade_states *st, int layer, int p0, int n,
                                     const ll_mcqa_prompts *pr, int pr0, ll_spade_decode decode, ll_spade_pick *out) {
    ll_lspade_method *u = user;
    int d = m->cfg.d_model, K = u->K;
    (void)decode; /* the map only knows the K options */
    if (layer > u->L || !u->maps->W[layer]) {
        for (int i = 0; i < n; i++) out[i] = (ll_spade_pick){.pick = -1, .token = -1, .prob = NAN, .entropy = NAN};
        return LL_OK;
    }
    if (n > u->cap) {
        free(u->h);
        free(u->lg);
        u->h = malloc((size_t)n * d * sizeof(float));
        u->lg = malloc((size_t)n * K * sizeof(float));
        u->cap = n;
        if (!u->h || !u->lg) {
            u->cap = 0;
            return ll_err(LL_ERR_NOMEM, "L-SPADE method: no memory for %d rows", n);
        }
    }
    for (int i = 0; i < n; i++) memcpy(u->h + (size_t)i * d, ll_spade_state(st, layer, p0 + i, 1), (size_t)d * sizeof(float));
    LL_TRY(ll_lspade_apply(u->maps, m, layer, n, u->h, (const int32_t *const *)(pr->cand + pr0), u->lg));
    for (int i = 0; i < n; i++) {
        const float *z = u->lg + (size_t)i * K;
        int a;
        double Hn = ll_lspade_norm_entropy(z, K, &a), s = 0;
        for (int k = 0; k < K; k++) s += exp((double)z[k] - z[a]);
        out[i] = (ll_spade_pick){.pick = a, .token = pr->cand[pr0 + i][a], .prob = (float)(1.0 / s),
                                 .entropy = (float)(Hn * log((double)K))};
        u->H[(size_t)(pr0 + i) * (u->L + 1) + layer] = (float)Hn;
    }
    return LL_OK;
}

void ll_exit_curves_free(ll_exit_curves *c) {
    ll_lens_eval_result_free(&c->ev);
    free(c->H);
    free(c->spade_pick);
    memset(c, 0, sizeof *c);
}

ll_status ll_exit_curves_run(ll_model *m, ll_lspade_maps *maps, const ll_exit_prompts *p, const ll_tuned_lens *tuned,
                             const ll_spade_opts *so, int batch, int min_layer, bool progress, ll_exit_curves *out) {
    memset(out, 0, sizeof *out);
    int L = m->cfg.n_layers, n = p->n;
    out->n = n;
    out->L = L;
    out->H = malloc((size_t)n * (L + 1) * sizeof(float));
    out->spade_pick = malloc((size_t)n * (L + 1) * sizeof(int));
    if (!out->H || !out->spade_pick) {
        ll_exit_curves_free(out);
        return ll_err(LL_ERR_NOMEM, "SPADE-EXIT curves: no memory for %d prompts", n);
    }
    for (size_t i = 0; i < (size_t)n * (L + 1); i++) out->H[i] = NAN;
    ll_lspade_method um = {.maps = maps, .H = out->H, .L = L, .K = p->K};
    ll_lens_eval_opts eo = {.tuned = tuned, .batch = batch, .progress = progress};
    if (so) eo.spade = *so;
    ll_status st = ll_lens_eval_parse_methods(&eo, tuned ? "logit,tuned,spade" : "logit,spade");
    if (!st) st = ll_lens_eval_add_method(&eo, "lspade", ll_lspade_method_fn, &um);
    ll_mcqa_prompts view;
    if (!st) st = ll_exit_prompts_view(p, &view);
    if (!st) {
        st = ll_lens_eval_run(m, &view, &eo, &out->ev);
        ll_exit_prompts_view_free(&view);
    }
    free(um.h);
    free(um.lg);
    if (st) {
        ll_exit_curves_free(out);
        return st;
    }
    out->i_logit = out->i_tuned = out->i_spade = out->i_lspade = -1;
    for (int k = 0; k < out->ev.n_methods; k++) {
        const char *nm = out->ev.names[k];
        if (!strcmp(nm, "logit")) out->i_logit = k;
        else if (!strcmp(nm, "tuned")) out->i_tuned = k;
        else if (!strcmp(nm, "spade")) out->i_spade = k;
        else if (!strcmp(nm, "lspade")) out->i_lspade = k;
    }
    for (int i = 0; i < n; i++)
        for (int l = 0; l <= L; l++)
            out->spade_pick[(size_t)i * (L + 1) + l] = out->ev.pick[ll_lens_eval_idx(&out->ev, out->i_spade, l, i)];
    out->table = (ll_exit_table){.n = n, .L = L, .min_layer = min_layer > 0 ? min_layer : 1, .n_tok = p->n_tok,
                                 .H = out->H, .spade_pick = out->spade_pick, .full_pick = out->ev.full_pick,
                                 .gold = p->gold, .map_macs = ll_lspade_map_macs(maps)};
    return LL_OK;
}

double ll_exit_curve_acc(const ll_exit_curves *c, int method, int l) {
    return method < 0 ? NAN : c->ev.acc[(size_t)method * (c->L + 1) + l];
}

double ll_exit_iso_acc(const ll_exit_curves *c, const ll_exit_prompts *p, int method, int l) {
    if (method < 0) return NAN;
    int ok = 0, scored = 0;
    for (int i = 0; i < c->n; i++) {
        if (p->gold[i] < 0) continue;
        int li = (int)ceil(ll_exit_iso_layer(p->n_tok[i], c->L, l) - 1e-9);
        if (li > c->L) li = c->L;
        scored++;
        ok += c->ev.pick[ll_lens_eval_idx(&c->ev, method, li, i)] == p->gold[i];
    }
    return scored ? (double)ok / scored : NAN;
}

double ll_exit_lspade_agreement(const ll_exit_curves *c, int l) {
    if (c->i_lspade < 0 || c->n == 0) return NAN;
    int same = 0;
    for (int i = 0; i < c->n; i++) {
        int a = c->ev.pick[ll_lens_eval_idx(&c->ev, c->i_lspade, l, i)];
        if (a < 0) return NAN;
        same += a == c->spade_pick[(size_t)i * (c->L + 1) + l];
    }
    return (double)same / c->n;
}
