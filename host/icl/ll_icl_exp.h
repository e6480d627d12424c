/* The ICL experiments E1-E3 (docs/icl.md, ../shared/docs/icl-task-vectors.md):
 *   E1  accuracy vs number of demonstrations;
 *   E2  a global task vector (query-position residual) patched into a zero-shot or
 *       dummy-demonstration prompt, per layer (Hendel et al. 2023);
 *   E3  local task vectors (label-position residuals) patched into a prompt of the same
 *       template and length whose demonstrations are dummies, per layer.
 * Every choice is a field with a default; the CLI records all of them with the results.
 *
 * Answers: the prediction at the query position is the argmax over the task's label-word
 * first tokens (full_vocab: over the whole vocabulary); it is correct when it equals the
 * first token of the query's label as tokenized in context. Episodes are drawn from the
 * seed: the same seed gives the same prompts in every experiment. */
#ifndef LL_ICL_EXP_H
#define LL_ICL_EXP_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/ll_progress.h"
#include "ll_icl_patch.h"
#include "ll_icl_prompt.h"
#include "ll_icl_task.h"

typedef enum { LL_ICL_DUMMY_FILLER = 0, LL_ICL_DUMMY_RANDOM } ll_icl_dummy;
ll_status ll_icl_dummy_parse(const char *s, ll_icl_dummy *out); /* filler|random */
const char *ll_icl_dummy_name(ll_icl_dummy d);

typedef struct {
    /* set by the caller */
    ll_model *m;
    const ll_tokenizer *tok;
    const ll_icl_task *task;
    ll_icl_template tp;
    ll_icl_prompt_opts popts;
    bool full_vocab;
    uint64_t seed;
    /* Dummy demonstrations keep every template token and replace each input token with a
     * filler word (" x") and each label token with another (" y"): filler; or with tokens
     * drawn at random from the task's own input and label tokens: random. */
    ll_icl_dummy dummy;
    ll_icl_sweep_opts sweep;
    bool self_check;          /* run ll_icl_self_check on the first patched prompt; fail above 1e-4 */
    ll_progress *progress;    /* may be NULL */
    /* filled by ll_icl_exp_init */
    int32_t *cand;            /* [n_classes] first token of each class's label word */
    int n_cand;
    int32_t in_fill, lab_fill;
    int32_t *pool;            /* random-dummy token pool */
    int n_pool;
    int n_straddle_prompts;   /* prompts whose tokens straddled a segment boundary (counted, still used) */
    ll_icl_sweep_stats stats; /* accumulated over patched runs */
    double self_check_diff;   /* -1 when not run */
} ll_icl_exp;

ll_status ll_icl_exp_init(ll_icl_exp *e);
void ll_icl_exp_free(ll_icl_exp *e);

/* The prompts E2/E3 test on, for other experiments to share: test prompt t of the seed
 * (k demonstrations + a query; demo_idx [k] and q_idx optional), and its dummy copy
 * (out: [p->n]) as E2 (dummy base) / E3 build it. */
ll_status ll_icl_exp_test_prompt(ll_icl_exp *e, int t, int k, int *demo_idx, int *q_idx, ll_icl_prompt *p);
void ll_icl_exp_dummy(const ll_icl_exp *e, const ll_icl_prompt *p, int t, int32_t *out);
/* Whether last-position logits predict gold under e's answer rule. */
bool ll_icl_exp_correct(const ll_icl_exp *e, const float *logits, int32_t gold);

/* ---- E1 ---- */
typedef struct {
    int n_k;
    int *k;        /* [n_k] */
    double *acc;   /* [n_k] */
    int *n;        /* [n_k] prompts scored */
} ll_icl_e1_result;
ll_status ll_icl_e1(ll_icl_exp *e, const int *ks, int n_k, int n_prompts, ll_icl_e1_result *r);
void ll_icl_e1_free(ll_icl_e1_result *r);

/* ---- E2 ---- */
typedef enum { LL_ICL_VEC_MEAN = 0, LL_ICL_VEC_PER_PROMPT, LL_ICL_VEC_DATASET } ll_icl_vec_mode;
ll_status ll_icl_vec_mode_parse(const char *s, ll_icl_vec_mode *out); /* mean|per-prompt|dataset */
const char *ll_icl_vec_mode_name(ll_icl_vec_mode v);
typedef enum { LL_ICL_BASE_ZERO = 0, LL_ICL_BASE_DUMMY } ll_icl_base;
ll_status ll_icl_base_parse(const char *s, ll_icl_base *out); /* zero|dummy */

typedef struct {
    int k;          /* demonstrations in source (and dummy base) prompts; 0: 5 */
    int n_test;     /* test prompts; 0: 50 */
    int n_src;      /* source prompts averaged (mean); 0: 50; dataset: every item, at most 1000 */
    ll_icl_vec_mode vec;
    ll_icl_base base;
    ll_patch_op op;  /* LL_PATCH_REPLACE (default) or LL_PATCH_ADD */
    int n_dev;      /* dev prompts (another random stream) to choose the layer on; 0: none */
} ll_icl_e2_opts;

/* Per-layer results shared by E2 and E3. */
typedef struct {
    int n_layers;
    double *acc;      /* [L] accuracy of the patched runs */
    double *l2_mean;  /* [L] mean L2 change at the patch site */
    int *n_noop;      /* [L] patches that changed nothing */
    double acc_base;  /* the base prompt unpatched (E2: zero-shot or dummy; E3: dummy) */
    double acc_icl;   /* the clean few-shot prompt */
    int n;            /* test prompts scored */
    int best_layer;   /* argmax of acc */
    /* with n_dev > 0: the layer is chosen on dev prompts, as Hendel et al. do */
    int n_dev;
    double *acc_dev;        /* [L] dev accuracy, NULL without dev prompts */
    int best_layer_dev;     /* argmax of acc_dev */
    double acc_at_best_dev; /* test accuracy at best_layer_dev */
} ll_icl_layer_result;
void ll_icl_layer_result_free(ll_icl_layer_result *r);

ll_status ll_icl_e2(ll_icl_exp *e, const ll_icl_e2_opts *o, ll_icl_layer_result *r);

/* ---- E3 ---- */
typedef enum { LL_ICL_LOCAL_PER_PROMPT = 0, LL_ICL_LOCAL_SLOT_MEAN, LL_ICL_LOCAL_CLASS_MEAN } ll_icl_local_mode;
ll_status ll_icl_local_mode_parse(const char *s, ll_icl_local_mode *out); /* per-prompt|slot|class */
const char *ll_icl_local_mode_name(ll_icl_local_mode v);

typedef struct {
    int k;          /* demonstrations; 0: 8 */
    int n_test;     /* 0: 50 */
    int n_src;      /* source prompts for the slot / class means; 0: 50 */
    ll_icl_local_mode mode;
    ll_icl_label_pos label_pos;
    ll_patch_op op;
    int n_dev;      /* as in E2 */
} ll_icl_e3_opts;

ll_status ll_icl_e3(ll_icl_exp *e, const ll_icl_e3_opts *o, ll_icl_layer_result *r);

#endif
