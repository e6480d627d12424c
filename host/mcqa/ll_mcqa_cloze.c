/* A cloze task built from the model's own greedy stories (see ll_mcqa.h): a data set any
 * model has, so the whole lens / SPADE pipeline can run end to end on a small model
 * that answers no real multiple-choice questions (stories260K). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "../model/ll_forward.h"
#include "../train/ll_train_rng.h"
#include "ll_mcqa.h"

static const char *const ll_openings[] = {
    "Once upon a time", "One day", "Lily wanted", "Tom and his mom", "The little dog",
    "There was a big", "Sam found a",      "The sun was",  "Mia liked to",     "A bird",
};
#define LL_N_OPENINGS ((int)(sizeof ll_openings / sizeof *ll_openings))

/* A whole-word piece: a leading space / "▁" / "Ġ", then at least two ASCII letters. */
static bool ll_word_piece(const ll_tokenizer *t, int32_t id) {
    size_t n;
    const char *p = ll_tokenizer_piece(t, id, &n);
    if (!p || ll_tokenizer_is_special(t, id)) return false;
    size_t k;
    if (n >= 1 && p[0] == ' ') k = 1;
    else if (n >= 3 && !memcmp(p, "\xe2\x96\x81", 3)) k = 3;
    else if (n >= 2 && !memcmp(p, "\xc4\xa0", 2)) k = 2;
    else return false;
    if (n - k < 2) return false;
    for (size_t i = k; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z'))) return false;
    return true;
}

static int ll_argmax(const float *r, int n) {
    int b = 0;
    for (int j = 1; j < n; j++)
        if (r[j] > r[b]) b = j;
    return b;
}

ll_status ll_mcqa_cloze(struct ll_model *m, const ll_tokenizer *t, const ll_mcqa_cloze_opts *oin, ll_mcqa_set *out) {
    memset(out, 0, sizeof *out);
    ll_mcqa_cloze_opts o = oin ? *oin : (ll_mcqa_cloze_opts){0};
    if (o.n_items <= 0) o.n_items = 32;
    if (o.gen_len <= 0) o.gen_len = 48;
    if (o.min_ctx <= 0) o.min_ctx = 8;
    if (o.n_options <= 1) o.n_options = 4;
    int S = LL_N_OPENINGS, V = m->cfg.vocab_size;
    int cap = 16 + o.gen_len;
    int32_t *seq = ll_calloc((size_t)S * cap, sizeof *seq, "cloze stories");
    int *len = ll_calloc((size_t)S, sizeof *len, "cloze stories");
    int *plen = ll_calloc((size_t)S, sizeof *plen, "cloze stories");
    float *lg = malloc((size_t)S * V * sizeof(float));
    int32_t *step = malloc((size_t)(S * cap) * sizeof *step);
    int64_t *off = malloc((size_t)(S + 1) * sizeof *off);
    ll_kv_cache *kc = NULL;
    ll_status st = LL_OK;
    if (!seq || !len || !plen || !lg || !step || !off) {
        st = ll_err(LL_ERR_NOMEM, "cloze: no memory");
        goto done;
    }
    /* Openings, BOS first (the way the model was trained). */
    int32_t bos = ll_tokenizer_bos(t) >= 0 ? ll_tokenizer_bos(t) : m->cfg.bos_id;
    off[0] = 0;
    for (int s = 0; s < S; s++) {
        ll_encoding e = {0};
        if ((st = ll_tokenizer_encode(t, ll_openings[s], strlen(ll_openings[s]), 0, &e))) goto done;
        int k = 0;
        if (bos >= 0) seq[(size_t)s * cap + k++] = bos;
        for (size_t j = 0; j < e.n && k < 16; j++) seq[(size_t)s * cap + k++] = e.ids[j];
        ll_encoding_free(&e);
        len[s] = plen[s] = k;
        memcpy(step + off[s], seq + (size_t)s * cap, (size_t)k * sizeof *step);
        off[s + 1] = off[s] + k;
    }
    if ((st = ll_kv_cache_new(&kc, m, S, cap))) goto done;
    /* Greedy continuation of all stories at once through the KV cache. */
    ll_batch b = {.n_seq = S, .seq_off = off, .tokens = step};
    ll_forward_opts fo = {.cache = kc, .logits = LL_LOGITS_LAST, .logits_out = lg};
    for (int g = 0; g < o.gen_len && !st; g++) {
        if ((st = ll_forward(m, &b, &fo))) break;
        for (int s = 0; s < S; s++) {
            int32_t nx = ll_argmax(lg + (size_t)s * V, V);
            seq[(size_t)s * cap + len[s]++] = nx;
            step[s] = nx;
            off[s + 1] = s + 1;
        }
    }
    if (st) goto done;
    /* Candidate cut points: (story, position) with a word token there. */
    int n_cut = 0;
    int *cut = malloc((size_t)S * cap * 2 * sizeof *cut);
    bool *is_word = ll_calloc((size_t)V, sizeof *is_word, "cloze");
    if (!cut || !is_word) {
        free(cut);
        free(is_word);
        st = ll_err(LL_ERR_NOMEM, "cloze: no memory");
        goto done;
    }
    int n_words = 0;
    int32_t *words = malloc((size_t)V * sizeof *words);
    for (int s = 0; s < S; s++)
        for (int p = plen[s]; p < len[s]; p++) {
            int32_t id = seq[(size_t)s * cap + p];
            if (!ll_word_piece(t, id)) continue;
            if (!is_word[id] && words) {
                is_word[id] = true;
                words[n_words++] = id;
            }
            if (p >= o.min_ctx) {
                cut[2 * n_cut] = s;
                cut[2 * n_cut + 1] = p;
                n_cut++;
            }
        }
    if (!words || n_cut == 0 || n_words < o.n_options) {
        st = words ? ll_err(LL_ERR_UNSUPPORTED, "cloze: the greedy stories hold %d word tokens at %d usable cuts; need "
                                                "%d distinct words", n_words, n_cut, o.n_options)
                   : ll_err(LL_ERR_NOMEM, "cloze: no memory");
        free(cut);
        free(is_word);
        free(words);
        goto done;
    }
    ll_rng rng = {o.seed ? o.seed : 0xc10e};
    /* Spread the items over the cut points in order, a random subset when there are more. */
    int n = o.n_items < n_cut ? o.n_items : n_cut;
    out->items = ll_calloc((size_t)n, sizeof *out->items, "cloze items");
    out->path = ll_strdup("(cloze)");
    out->format = LL_MCQA_TOKENS;
    if (!out->items || !out->path) st = ll_err(LL_ERR_NOMEM, "cloze: no memory");
    for (int i = 0; i < n && !st; i++) {
        int c = (int)((int64_t)i * n_cut / n);
        int s = cut[2 * c], p = cut[2 * c + 1];
        ll_mcqa_item *it = &out->items[i];
        out->n = i + 1;
        char idb[64];
        snprintf(idb, sizeof idb, "cloze-%d-%d", s, p);
        it->id = ll_strdup(idb);
        it->line = i + 1;
        it->n_tokens = p;
        it->tokens = malloc((size_t)p * sizeof *it->tokens);
        it->cand_ids = malloc((size_t)o.n_options * sizeof *it->cand_ids);
        it->choices = ll_calloc((size_t)o.n_options, sizeof *it->choices, "cloze");
        if (!it->id || !it->tokens || !it->cand_ids || !it->choices) {
            st = ll_err(LL_ERR_NOMEM, "cloze: no memory");
            break;
        }
        memcpy(it->tokens, seq + (size_t)s * cap, (size_t)p * sizeof *it->tokens);
        int32_t gold = seq[(size_t)s * cap + p];
        it->gold = ll_rng_int(&rng, o.n_options);
        for (int j = 0; j < o.n_options; j++) {
            int32_t w = gold;
            if (j != it->gold) {
                bool dup;
                do {
                    w = words[ll_rng_int(&rng, n_words)];
                    dup = w == gold;
                    for (int k = 0; k < j; k++) dup |= it->cand_ids[k] == w;
                } while (dup);
            }
            it->cand_ids[j] = w;
            char b2[16];
            snprintf(b2, sizeof b2, "%d", w);
            it->choices[j] = ll_strdup(b2);
            it->n_choices = j + 1;
        }
    }
    free(cut);
    free(is_word);
    free(words);
done:
    ll_kv_cache_free(kc);
    free(seq);
    free(len);
    free(plen);
    free(lg);
    free(step);
    free(off);
    if (st) ll_mcqa_set_free(out);
    return st;
}
