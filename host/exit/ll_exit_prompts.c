/* Owned prompt sets (see ll_exit_prompts.h). */
#include "ll_exit_prompts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/ll_toy_data.h"

void ll_exit_prompts_free(ll_exit_prompts *p) {
    for (int i = 0; i < p->n; i++) {
        if (p->tok) free(p->tok[i]);
        if (p->cand) free(p->cand[i]);
        if (p->id) free(p->id[i]);
    }
    free(p->tok);
    free(p->n_tok);
    free(p->cand);
    free(p->gold);
    free(p->id);
    memset(p, 0, sizeof *p);
}

ll_lspade_data ll_exit_prompts_data(const ll_exit_prompts *p) {
    return (ll_lspade_data){.n = p->n, .K = p->K, .tokens = (const int32_t *const *)p->tok, .n_tok = p->n_tok,
                            .cand = (const int32_t *const *)p->cand};
}

static ll_status ll_prompts_alloc(ll_exit_prompts *p, int n, int K) {
    memset(p, 0, sizeof *p);
    p->tok = calloc((size_t)n, sizeof *p->tok);
    p->n_tok = calloc((size_t)n, sizeof *p->n_tok);
    p->cand = calloc((size_t)n, sizeof *p->cand);
    p->gold = calloc((size_t)n, sizeof *p->gold);
    p->id = calloc((size_t)n, sizeof *p->id);
    p->n = n;
    p->K = K;
    if (!p->tok || !p->n_tok || !p->cand || !p->gold || !p->id) {
        ll_exit_prompts_free(p);
        return ll_err(LL_ERR_NOMEM, "prompts: no memory for %d prompts", n);
    }
    return LL_OK;
}

ll_status ll_exit_prompts_toy_mcq(ll_exit_prompts *out, int n, uint64_t seed, int vocab_size) {
    memset(out, 0, sizeof *out);
    if (n <= 0) return ll_err(LL_ERR_ARG, "toy MCQ: need at least one question, asked for %d", n);
    ll_toy_world *w;
    LL_TRY(ll_toy_world_new(&w));
    if (ll_toy_vocab_size(w) != vocab_size) {
        int v = ll_toy_vocab_size(w);
        ll_toy_world_free(w);
        return ll_err(LL_ERR_ARG, "toy MCQ: the model's vocabulary has %d tokens, the toy world %d: "
                                  "--toy-mcq is for data/models/toy-llama", vocab_size, v);
    }
    ll_status st = ll_prompts_alloc(out, n, 4);
    ll_rng r = {.s = seed};
    ll_toy_seq s;
    for (int i = 0; i < n && !st; i++) {
        ll_toy_mcq(w, &r, &s);
        int np = s.n - 1; /* the last token is the answer letter */
        out->tok[i] = malloc((size_t)np * sizeof(int32_t));
        out->cand[i] = malloc(4 * sizeof(int32_t));
        char id[32];
        snprintf(id, sizeof id, "toy-mcq-%d", i);
        out->id[i] = strdup(id);
        if (!out->tok[i] || !out->cand[i] || !out->id[i]) {
            st = ll_err(LL_ERR_NOMEM, "toy MCQ: no memory");
            break;
        }
        memcpy(out->tok[i], s.ids, (size_t)np * sizeof(int32_t));
        out->n_tok[i] = np;
        out->gold[i] = -1;
        for (int k = 0; k < 4; k++) {
            out->cand[i][k] = ll_toy_letter(w, k);
            if (out->cand[i][k] == s.ids[s.n - 1]) out->gold[i] = k;
        }
    }
    ll_toy_world_free(w);
    if (st) ll_exit_prompts_free(out);
    return st;
}

ll_status ll_exit_prompts_slice(const ll_exit_prompts *p, int from, int to, ll_exit_prompts *out) {
    if (from < 0 || to > p->n || from >= to)
        return ll_err(LL_ERR_ARG, "prompts: slice [%d, %d) of %d prompts", from, to, p->n);
    LL_TRY(ll_prompts_alloc(out, to - from, p->K));
    for (int i = 0; i < out->n; i++) {
        int j = from + i;
        out->tok[i] = malloc((size_t)p->n_tok[j] * sizeof(int32_t));
        out->cand[i] = malloc((size_t)p->K * sizeof(int32_t));
        out->id[i] = strdup(p->id[j] ? p->id[j] : "");
        if (!out->tok[i] || !out->cand[i] || !out->id[i]) {
            ll_exit_prompts_free(out);
            return ll_err(LL_ERR_NOMEM, "prompts: no memory");
        }
        memcpy(out->tok[i], p->tok[j], (size_t)p->n_tok[j] * sizeof(int32_t));
        memcpy(out->cand[i], p->cand[j], (size_t)p->K * sizeof(int32_t));
        out->n_tok[i] = p->n_tok[j];
        out->gold[i] = p->gold[j];
    }
    return LL_OK;
}

ll_status ll_exit_prompts_from_mcqa(const ll_mcqa_prompts *src, ll_exit_prompts *out) {
    memset(out, 0, sizeof *out);
    if (src->n <= 0) return ll_err(LL_ERR_ARG, "prompts: the task set is empty");
    int K = src->n_cand[0];
    for (int i = 1; i < src->n; i++)
        if (src->n_cand[i] != K)
            return ll_err(LL_ERR_ARG, "prompts: item %s has %d options, item %s has %d: L-SPADE maps need the same "
                                      "number of options K for every prompt (filter the set, or split it by K)",
                          src->id[0], K, src->id[i], src->n_cand[i]);
    LL_TRY(ll_prompts_alloc(out, src->n, K));
    for (int i = 0; i < src->n; i++) {
        out->tok[i] = malloc((size_t)src->n_tok[i] * sizeof(int32_t));
        out->cand[i] = malloc((size_t)K * sizeof(int32_t));
        out->id[i] = strdup(src->id[i] ? src->id[i] : "");
        if (!out->tok[i] || !out->cand[i] || !out->id[i]) {
            ll_exit_prompts_free(out);
            return ll_err(LL_ERR_NOMEM, "prompts: no memory");
        }
        memcpy(out->tok[i], src->tok[i], (size_t)src->n_tok[i] * sizeof(int32_t));
        memcpy(out->cand[i], src->cand[i], (size_t)K * sizeof(int32_t));
        out->n_tok[i] = src->n_tok[i];
        out->gold[i] = src->gold[i];
    }
    return LL_OK;
}

ll_status ll_exit_prompts_view(const ll_exit_prompts *p, ll_mcqa_prompts *view) {
    memset(view, 0, sizeof *view);
    view->n_cand = malloc((size_t)(p->n > 0 ? p->n : 1) * sizeof(int));
    if (!view->n_cand) return ll_err(LL_ERR_NOMEM, "prompts: no memory");
    for (int i = 0; i < p->n; i++) view->n_cand[i] = p->K;
    view->n = p->n;
    view->id = p->id;
    view->text = NULL;
    view->tok = p->tok;
    view->n_tok = p->n_tok;
    view->cand = p->cand;
    view->gold = p->gold;
    view->tpl = LL_TPL_RAW;
    return LL_OK;
}

void ll_exit_prompts_view_free(ll_mcqa_prompts *view) {
    free(view->n_cand);
    memset(view, 0, sizeof *view);
}
