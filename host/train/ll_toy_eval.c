/* Held-out accuracies of a toy model (see ll_toy_eval.h). */
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "../model/ll_forward.h"
#include "../tokenizer/ll_tokenizer.h"
#include "ll_toy_data.h"
#include "ll_toy_eval.h"

typedef struct {
    ll_model *m;
    ll_tokenizer *tok;
    ll_toy_world *w;
} ll_eval_ctx;

/* Runs n prompts (each seq's ids without its last token, through text and the
 * tokenizer) and returns the last-position logits [n][V]. */
static ll_status ll_eval_logits(ll_eval_ctx *c, const ll_toy_seq *seqs, int n, float *logits) {
    int32_t *ids = malloc((size_t)n * LL_TOY_MAX_TOKENS * sizeof(int32_t));
    int64_t *off = malloc(((size_t)n + 1) * sizeof(int64_t));
    if (!ids || !off) {
        free(ids), free(off);
        return ll_err(LL_ERR_NOMEM, "toy eval: no memory");
    }
    ll_status st = LL_OK;
    off[0] = 0;
    for (int i = 0; i < n && st == LL_OK; i++) {
        const ll_toy_seq *s = &seqs[i];
        char *text = NULL;
        ll_encoding enc = {0};
        st = ll_toy_render(c->w, s->ids, 0, s->n - 1, &text);
        if (st == LL_OK) st = ll_tokenizer_encode(c->tok, text, strlen(text), LL_TOK_DEFAULT, &enc);
        if (st == LL_OK && (enc.n != (size_t)(s->n - 1) || memcmp(enc.ids, s->ids, enc.n * sizeof(int32_t))))
            st = ll_err(LL_ERR_FORMAT,
                        "toy eval: the tokenizer reads prompt \"%.60s...\" as %zu tokens, the generator made %d: "
                        "is this model's tokenizer.json the toy one?",
                        text, enc.n, s->n - 1);
        if (st == LL_OK) {
            memcpy(ids + off[i], enc.ids, enc.n * sizeof(int32_t));
            off[i + 1] = off[i] + (int64_t)enc.n;
        }
        free(text);
        ll_encoding_free(&enc);
    }
    if (st == LL_OK) {
        ll_batch b = {.n_seq = n, .seq_off = off, .tokens = ids};
        ll_forward_opts o = {.logits = LL_LOGITS_LAST, .logits_out = logits};
        st = ll_forward(c->m, &b, &o);
    }
    free(ids);
    free(off);
    return st;
}

static int32_t ll_argmax(const float *r, int V) {
    int32_t best = 0;
    for (int i = 1; i < V; i++)
        if (r[i] > r[best]) best = i;
    return best;
}

#define LL_EVAL_CHUNK 64

ll_status ll_toy_eval(const char *model_dir, int n, uint64_t seed, ll_toy_eval_result *r) {
    memset(r, 0, sizeof *r);
    if (n < 1) return ll_err(LL_ERR_ARG, "toy eval: episodes per cell must be >= 1, found %d", n);
    ll_eval_ctx c = {0};
    ll_status st = ll_model_load(&c.m, model_dir, NULL);
    if (st == LL_OK) st = ll_tokenizer_for_model(&c.tok, model_dir, NULL, c.m->cfg.vocab_size);
    if (st == LL_OK) st = ll_toy_world_new(&c.w);
    if (st == LL_OK && ll_toy_vocab_size(c.w) != c.m->cfg.vocab_size)
        st = ll_err(LL_ERR_SHAPE, "%s: vocab_size %d, the toy tasks have %d tokens", model_dir, c.m->cfg.vocab_size,
                    ll_toy_vocab_size(c.w));
    int V = st == LL_OK ? c.m->cfg.vocab_size : 1;
    ll_toy_seq *seqs = malloc(LL_EVAL_CHUNK * sizeof *seqs);
    float *logits = malloc((size_t)LL_EVAL_CHUNK * V * sizeof(float));
    if (st == LL_OK && (!seqs || !logits)) st = ll_err(LL_ERR_NOMEM, "toy eval: no memory");
    static const int cat_k[LL_TOY_EVAL_CAT_K] = {0, 1, 2, 4, 8, 16}, map_k[LL_TOY_EVAL_MAP_K] = {0, 1, 4};
    r->n = n;
    memcpy(r->cat_k, cat_k, sizeof cat_k);
    memcpy(r->map_k, map_k, sizeof map_k);
    /* cells: categorization k's, mapping k's, MCQ; each from its own stream of the seed. */
    for (int cell = 0; cell < LL_TOY_EVAL_CAT_K + LL_TOY_EVAL_MAP_K + 1 && st == LL_OK; cell++) {
        ll_rng rng = {seed * 0x9E3779B97F4A7C15ull + (uint64_t)cell * 0x51ED27ull + 7};
        long good = 0, good2 = 0;
        for (int done = 0; done < n && st == LL_OK; done += LL_EVAL_CHUNK) {
            int m = n - done < LL_EVAL_CHUNK ? n - done : LL_EVAL_CHUNK;
            for (int i = 0; i < m; i++) {
                if (cell < LL_TOY_EVAL_CAT_K) ll_toy_cat(c.w, &rng, cat_k[cell], &seqs[i]);
                else if (cell < LL_TOY_EVAL_CAT_K + LL_TOY_EVAL_MAP_K)
                    ll_toy_map(c.w, &rng, map_k[cell - LL_TOY_EVAL_CAT_K], &seqs[i]);
                else ll_toy_mcq(c.w, &rng, &seqs[i]);
            }
            st = ll_eval_logits(&c, seqs, m, logits);
            for (int i = 0; i < m && st == LL_OK; i++) {
                const ll_toy_seq *s = &seqs[i];
                const float *lg = logits + (size_t)i * V;
                int32_t want = s->ids[s->n - 1];
                good += ll_argmax(lg, V) == want;
                if (s->task == LL_TOY_CAT) {
                    int32_t other = s->labels[0] == want ? s->labels[1] : s->labels[0];
                    int ok = lg[want] > lg[other];
                    good2 += ok;
                    if (cell == LL_TOY_EVAL_CAT_K - 1 && s->rule >= 0 && s->rule < LL_TOY_N_RULES) {
                        r->cat_rule[s->rule] += ok;
                        r->cat_rule_n[s->rule]++;
                    }
                } else if (s->task == LL_TOY_MCQ) {
                    int32_t best = ll_toy_letter(c.w, 0);
                    for (int j = 1; j < 4; j++)
                        if (lg[ll_toy_letter(c.w, j)] > lg[best]) best = ll_toy_letter(c.w, j);
                    good2 += best == want;
                }
            }
        }
        if (cell < LL_TOY_EVAL_CAT_K) {
            r->cat_full[cell] = (double)good / n;
            r->cat[cell] = (double)good2 / n;
        } else if (cell < LL_TOY_EVAL_CAT_K + LL_TOY_EVAL_MAP_K) {
            r->map[cell - LL_TOY_EVAL_CAT_K] = (double)good / n;
        } else {
            r->mcq = (double)good / n;
            r->mcq_letters = (double)good2 / n;
        }
    }
    for (int k = 0; k < LL_TOY_N_RULES; k++)
        if (r->cat_rule_n[k]) r->cat_rule[k] /= r->cat_rule_n[k];
    free(seqs);
    free(logits);
    ll_toy_world_free(c.w);
    ll_tokenizer_free(c.tok);
    ll_model_free(c.m);
    return st;
}
