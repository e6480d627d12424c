/* Experiments E4-E7 of docs/icl-task-vectors.md as library calls (docs/icl-analysis.md):
 * episodes (prompts with their positions and classes), scoring under attention
 * knockouts (E4), attention-mass information flow (E5), local/global vector cosines
 * (E6) and the local vectors with their factor levels for PCA / dPCA (E7).
 *
 * The CLI (tools/cli/ll_cli_icl_analysis.c) adds options, files and plots on top. */
#ifndef LL_ICL_FLOW_H
#define LL_ICL_FLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "../model/ll_forward.h"
#include "ll_icl_exp.h"
#include "ll_icl_prompt.h"
#include "ll_icl_task.h"

/* ---- episodes ------------------------------------------------------------------------ */

typedef struct {
    const ll_icl_task *task;
    ll_icl_template tpl;
    int k;           /* demonstrations per prompt */
    int n_prompts;
    uint64_t seed;   /* episode draws (ll_icl_task_sample) */
    ll_icl_label_pos label_pos;
    ll_icl_prompt_opts popts;
    bool full_vocab; /* score by the argmax over the vocabulary, not over the task's label words */
    /* Optional: an initialised E1-E3 context (ll_icl_exp_init) for this task. Then prompt i
     * is its test prompt i (ll_icl_exp_test_prompt: the prompts E2 / E3 test on for the
     * same seed, template and k) and the candidates are its label-word tokens; task, tpl,
     * seed, popts and full_vocab above are not used. NULL: draw with ll_icl_task_sample. */
    ll_icl_exp *exp;
} ll_icl_episode_opts;

typedef struct {
    int n, k;
    ll_icl_prompt *p;  /* [n] */
    int *demo_item;    /* [n][k] task item of each demonstration */
    int *query_item;   /* [n] */
    int *lab;          /* [n][k] position used for demonstration i's label (label_pos switch) */
    int32_t *cands;    /* first token of each of the task's distinct labels (n_cands = n_classes); NULL with full_vocab */
    int n_cands;
    int n_straddle;    /* prompts with a token straddling two segments (positions approximate) */
    int n_unclean;     /* prompts whose answer tokenized differently in context */
} ll_icl_episodes;

/* Draw and tokenize n_prompts episodes. Every prompt must have k label positions and an
 * answer token; a prompt without is an error naming it. */
ll_status ll_icl_episodes_make(const ll_tokenizer *t, const ll_icl_episode_opts *o, ll_icl_episodes *out);
void ll_icl_episodes_free(ll_icl_episodes *e);

/* ---- scoring with knockouts (E4) ------------------------------------------------------ */

typedef enum {
    LL_ICL_KO_QUERY = 0, /* the query position may not read the label positions */
    LL_ICL_KO_LATER,     /* no position after a label position may read it */
    LL_ICL_KO_REVERSE,   /* a label position may not read its own demonstration's input tokens */
} ll_icl_ko_mode;
ll_status ll_icl_ko_mode_parse(const char *s, ll_icl_ko_mode *out); /* query|later|reverse */
const char *ll_icl_ko_mode_name(ll_icl_ko_mode m);

/* The knockouts of prompt i as sequence `seq` of a batch, over layers [lo, hi]. With
 * control, the blocked keys are instead as many positions drawn (from `rng`) among the
 * prompt's tokens that are neither label positions, the query, nor BOS, and (reverse)
 * not the demonstration's own input: the same amount of blocking, aimed elsewhere.
 * Writes up to k knockouts into ko, their index lists into idx (room for 2 n k + 2 n
 * int32, n the prompt length), and returns how many. */
int ll_icl_ko_build(const ll_icl_episodes *e, int i, int seq, ll_icl_ko_mode mode, int lo, int hi, bool control,
                    uint64_t *rng, ll_knockout *ko, int32_t *idx);

/* Score prompts [0, e->n) in batches of `batch`: correct = the answer token is the argmax
 * (over the label-word candidates e->cands, or the vocabulary when there are none), logp = its
 * log-probability under the full softmax. knock(user, i, seq, ko, idx) returns the
 * knockouts of prompt i placed as sequence seq (NULL knock: none). Sums over prompts. */
typedef int (*ll_icl_knock_fn)(void *user, int i, int seq, ll_knockout *ko, int32_t *idx);
typedef struct {
    int n, correct;
    double logp; /* sum */
} ll_icl_score;
ll_status ll_icl_score_run(ll_model *m, const ll_icl_episodes *e, int batch, ll_icl_knock_fn knock, void *user,
                           ll_icl_score *out);

/* ---- information flow (E5) ------------------------------------------------------------ */

/* One prompt, one layer, from its attention pattern A[H][n][n] (rows = query positions,
 * softmax over keys), averaged over heads:
 *   in_label    mean over demonstrations of the mass label position p_i puts on its own
 *               input tokens [in_lo, in_hi]
 *   label_query the mass the query position puts on all label positions together
 * and Wang et al. 2023's per-pair means (their S_wp, S_pq, S_ww, with attention in place
 * of saliency): wp = mean of A[p_i][j] over pairs j < p_i; pq = mean of A[q][p_i] over i;
 * ww = mean of A[r][j] over every other pair j < r. */
typedef struct {
    double in_label, label_query, wp, pq, ww;
} ll_icl_flow;
void ll_icl_flow_prompt(const float *A, int H, int n, int k, const ll_icl_span *spans, const int *lab, int query,
                        ll_icl_flow *out);

/* ---- vectors (E6, E7) ----------------------------------------------------------------- */

/* Residual vectors of every prompt at the hook point (LL_HOOK_RESID_POST or RESID_PRE),
 * every layer: out[l][i][slot][d] with slot 0..k-1 the label positions and slot k the
 * query position. out is [L][n][k + 1][d] floats, caller-allocated. */
ll_status ll_icl_vectors(ll_model *m, const ll_icl_episodes *e, int batch, ll_hook_point point, float *out);

#endif
