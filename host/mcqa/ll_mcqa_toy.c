/* The toy model's multiple-choice questions as a generic data set (see ll_mcqa.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "../train/ll_toy_data.h"
#include "ll_mcqa.h"

ll_status ll_mcqa_toy_mcq(int n, uint64_t seed, ll_mcqa_set *out) {
    memset(out, 0, sizeof *out);
    if (n <= 0) return ll_err(LL_ERR_ARG, "toy MCQ: need a positive number of questions, found %d", n);
    ll_toy_world *w;
    LL_TRY(ll_toy_world_new(&w));
    ll_status st = LL_OK;
    out->items = ll_calloc((size_t)n, sizeof *out->items, "toy MCQ");
    out->path = ll_strdup("(toy-mcq)");
    out->format = LL_MCQA_GENERIC;
    if (!out->items || !out->path) st = ll_err(LL_ERR_NOMEM, "toy MCQ: no memory");
    ll_rng r = {seed ? seed : 0x70e};
    ll_toy_seq s;
    for (int i = 0; i < n && !st; i++) {
        ll_toy_mcq(w, &r, &s);
        ll_mcqa_item *it = &out->items[i];
        out->n = i + 1;
        it->line = i + 1;
        it->gold = -1;
        char idb[32];
        snprintf(idb, sizeof idb, "toy-mcq-%d", i);
        it->id = ll_strdup(idb);
        it->choices = ll_calloc(4, sizeof *it->choices, "toy MCQ");
        if (!it->id || !it->choices) {
            st = ll_err(LL_ERR_NOMEM, "toy MCQ: no memory");
            break;
        }
        for (int j = 0; j < 4 && !st; j++) {
            const char *t = ll_toy_token(w, ll_toy_letter(w, j));
            if (!(it->choices[j] = ll_strdup(t ? t : "?"))) st = ll_err(LL_ERR_NOMEM, "toy MCQ: no memory");
            it->n_choices = j + 1;
            if (s.ids[s.n - 1] == ll_toy_letter(w, j)) it->gold = j;
        }
        if (!st && it->gold < 0) st = ll_err(LL_ERR_FORMAT, "toy MCQ %d: the last token is not an answer letter", i);
        /* ids[0] is BOS (the tokenizer adds it back); the last id is the answer. */
        if (!st) st = ll_toy_render(w, s.ids, 1, s.n - 1, &it->prompt);
    }
    ll_toy_world_free(w);
    if (st) ll_mcqa_set_free(out);
    return st;
}
