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

/* The token of rank r (0 = the argmax) among the non-special tokens of one logit row:
 * the r-th best choice is a plausible story start the greedy story would not take. */
static int32_t ll_ranked(const ll_tokenizer *t, const float *r, int V, int rank, int32_t *taken) {
    int32_t best = -1;
    for (int q = 0; q <= rank; q++) {
        best = -1;
        for (int j = 0; j < V; j++) {
            if (ll_tokenizer_is_special(t, j)) continue;
            bool used = false;
            for (int u = 0; u < q; u++) used |= taken[u] == j;
            if (!used && (best < 0 || r[j] > r[best])) best = j;
        }
        if (best < 0) return -1;
        taken[q] = best;
    }
    return best;
}

/* Story k of the pool: opening k mod 10, then LL_CLOZE_FORCED generated tokens taken at the
 * ranks given by the base-LL_CLOZE_RANKS digits of k / 10, then greedy. Distinct k give
 * distinct starts (same opening and earlier digits -> same prefix, then a different-rank token),
 * so contexts cut after the start never coincide between stories. */
#define LL_CLOZE_FORCED 3
#define LL_CLOZE_RANKS 16
#define LL_CLOZE_POOL (LL_N_OPENINGS * LL_CLOZE_RANKS * LL_CLOZE_RANKS * LL_CLOZE_RANKS)
#define LL_CLOZE_CHUNK 16

static int ll_story_rank(int64_t k, int g) {
    int64_t d = k / LL_N_OPENINGS;
    for (int i = 0; i < g; i++) d /= LL_CLOZE_RANKS;
    return (int)(d % LL_CLOZE_RANKS);
}

/* Generate stories k0..k0+S-1 into seq (S x cap), len / plen per story. */
static ll_status ll_cloze_generate(struct ll_model *m, const ll_tokenizer *t, int64_t k0, int S, int cap, int gen_len,
                                   int32_t *seq, int *len, int *plen) {
    int V = m->cfg.vocab_size;
    float *lg = malloc((size_t)S * V * sizeof(float));
    int32_t *step = malloc((size_t)(S * cap) * sizeof *step);
    int64_t *off = malloc((size_t)(S + 1) * sizeof *off);
    int32_t taken[LL_CLOZE_RANKS];
    ll_kv_cache *kc = NULL;
    ll_status st = LL_OK;
    if (!lg || !step || !off) {
        st = ll_err(LL_ERR_NOMEM, "cloze: no memory");
        goto done;
    }
    /* Openings, BOS first (the way the model was trained). */
    int32_t bos = ll_tokenizer_bos(t) >= 0 ? ll_tokenizer_bos(t) : m->cfg.bos_id;
    off[0] = 0;
    for (int s = 0; s < S; s++) {
        const char *op = ll_openings[(k0 + s) % LL_N_OPENINGS];
        ll_encoding e = {0};
        if ((st = ll_tokenizer_encode(t, op, strlen(op), 0, &e))) goto done;
        int k = 0;
        if (bos >= 0) seq[(size_t)s * cap + k++] = bos;
        for (size_t j = 0; j < e.n && k < 16; j++) seq[(size_t)s * cap + k++] = e.ids[j];
        ll_encoding_free(&e);
        len[s] = plen[s] = k;
        memcpy(step + off[s], seq + (size_t)s * cap, (size_t)k * sizeof *step);
        off[s + 1] = off[s] + k;
    }
    if ((st = ll_kv_cache_new(&kc, m, S, cap))) goto done;
    /* All stories at once through the KV cache: ranked tokens first, then greedy. */
    ll_batch b = {.n_seq = S, .seq_off = off, .tokens = step};
    ll_forward_opts fo = {.cache = kc, .logits = LL_LOGITS_LAST, .logits_out = lg};
    for (int g = 0; g < LL_CLOZE_FORCED + gen_len && !st; g++) {
        if ((st = ll_forward(m, &b, &fo))) break;
        for (int s = 0; s < S; s++) {
            const float *r = lg + (size_t)s * V;
            int32_t nx = g < LL_CLOZE_FORCED ? ll_ranked(t, r, V, ll_story_rank(k0 + s, g), taken) : ll_argmax(r, V);
            if (nx < 0) {
                st = ll_err(LL_ERR_UNSUPPORTED, "cloze: the vocabulary has fewer than %d non-special tokens",
                            LL_CLOZE_RANKS);
                break;
            }
            seq[(size_t)s * cap + len[s]++] = nx;
            step[s] = nx;
            off[s + 1] = s + 1;
        }
    }
done:
    ll_kv_cache_free(kc);
    free(lg);
    free(step);
    free(off);
    return st;
}

static uint64_t ll_ctx_hash(const int32_t *x, int n) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) h = (h ^ (uint32_t)x[i]) * 1099511628211ull;
    return h ^ (uint64_t)n;
}

ll_status ll_mcqa_cloze(struct ll_model *m, const ll_tokenizer *t, const ll_mcqa_cloze_opts *oin, ll_mcqa_set *out) {
    memset(out, 0, sizeof *out);
    ll_mcqa_cloze_opts o = oin ? *oin : (ll_mcqa_cloze_opts){0};
    if (o.n_items <= 0) o.n_items = 32;
    if (o.gen_len <= 0) o.gen_len = 48;
    if (o.min_ctx <= 0) o.min_ctx = 8;
    if (o.n_options <= 1) o.n_options = 4;
    if (oin && oin->n_available) *oin->n_available = 0;
    int S = LL_MCQA_CLOZE_STORIES, V = m->cfg.vocab_size;
    int cap = 16 + LL_CLOZE_FORCED + o.gen_len;
    /* The seed's own block of story slots: different seeds (mod the block count) never share a
     * story, hence never share a context. */
    int64_t k0 = (int64_t)(o.seed % (uint64_t)(LL_CLOZE_POOL / S)) * S;
    int32_t *seq = ll_calloc((size_t)S * cap, sizeof *seq, "cloze stories");
    int *len = ll_calloc((size_t)S, sizeof *len, "cloze stories");
    int *plen = ll_calloc((size_t)S, sizeof *plen, "cloze stories");
    int *cut = malloc((size_t)S * cap * 2 * sizeof *cut);
    uint64_t *hs = malloc((size_t)S * cap * sizeof *hs);
    bool *is_word = ll_calloc((size_t)V, sizeof *is_word, "cloze");
    int32_t *words = malloc((size_t)V * sizeof *words);
    ll_status st = LL_OK;
    if (!seq || !len || !plen || !cut || !hs || !is_word || !words) {
        st = ll_err(LL_ERR_NOMEM, "cloze: no memory");
        goto done;
    }
    /* Stories in chunks, until there are enough cut points (or the block is used up). Candidate
     * cut points: (story, position) with a word token there, after the ranked start, and a context
     * not seen before (checked by token content). */
    int n_cut = 0, n_words = 0, n_gen = 0;
    while (n_gen < S && n_cut < o.n_items && !st) {
        int c = S - n_gen < LL_CLOZE_CHUNK ? S - n_gen : LL_CLOZE_CHUNK;
        st = ll_cloze_generate(m, t, k0 + n_gen, c, cap, o.gen_len, seq + (size_t)n_gen * cap, len + n_gen, plen + n_gen);
        for (int s = n_gen; s < n_gen + c && !st; s++) {
            int lo = plen[s] + LL_CLOZE_FORCED > o.min_ctx ? plen[s] + LL_CLOZE_FORCED : o.min_ctx;
            for (int p = plen[s]; p < len[s]; p++) {
                int32_t id = seq[(size_t)s * cap + p];
                if (!ll_word_piece(t, id)) continue;
                if (!is_word[id]) {
                    is_word[id] = true;
                    words[n_words++] = id;
                }
                if (p < lo) continue;
                uint64_t h = ll_ctx_hash(seq + (size_t)s * cap, p);
                bool dup = false;
                for (int q = 0; q < n_cut && !dup; q++)
                    dup = hs[q] == h && cut[2 * q + 1] == p &&
                          !memcmp(seq + (size_t)cut[2 * q] * cap, seq + (size_t)s * cap, (size_t)p * sizeof *seq);
                if (dup) continue;
                hs[n_cut] = h;
                cut[2 * n_cut] = s;
                cut[2 * n_cut + 1] = p;
                n_cut++;
            }
        }
        n_gen += c;
    }
    if (st) goto done;
    if (oin && oin->n_available) *oin->n_available = n_cut;
    if (n_cut == 0 || n_words < o.n_options) {
        st = ll_err(LL_ERR_UNSUPPORTED,
                    "cloze: the %d greedy stories hold %d word tokens at %d usable cuts; need %d distinct words", n_gen,
                    n_words, n_cut, o.n_options);
        goto done;
    }
    ll_rng rng = {o.seed ? o.seed : 0xc10e};
    /* Spread the items over the cut points in order, a subset when there are more. */
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
        snprintf(idb, sizeof idb, "cloze-%lld-%d", (long long)(k0 + s), p);
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
done:
    free(seq);
    free(len);
    free(plen);
    free(cut);
    free(hs);
    free(is_word);
    free(words);
    if (st) ll_mcqa_set_free(out);
    return st;
}
