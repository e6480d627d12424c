/* Per-layer accuracy of read-out methods (logit lens, tuned lens, SPADE, and methods
 * plugged in from elsewhere such as L-SPADE) on a set of single-token decision prompts.
 *
 * Prompts run in batches: one full forward per batch records h^l at rows 0 and n-1 for
 * every layer (ll_spade_states_collect), then every method decodes every layer l = 0..L
 * from those states. The full model's own answer is scored too. */
#ifndef LL_LENS_EVAL_H
#define LL_LENS_EVAL_H

#include "../mcqa/ll_mcqa.h"
#include "../spade/ll_spade.h"
#include "ll_lens.h"

#define LL_LENS_MAX_METHODS 8

/* A method plugged in by name (the L-SPADE hook point): for prompts p0 .. p0+n-1 of the
 * collected states at `layer`, fill out[i] (ll_spade_decode_row's result: pick = index into
 * the prompt's candidates or -1, token, prob, entropy) under `decode`. */
typedef ll_status (*ll_lens_method_fn)(void *user, ll_model *m, const ll_spade_states *st, int layer, int p0, int n,
                                       const ll_mcqa_prompts *pr, int pr0, ll_spade_decode decode, ll_spade_pick *out);

typedef struct {
    char name[16]; /* "logit", "tuned", "spade", or the plugged-in name ("lspade") */
    ll_lens_method_fn fn; /* NULL for the three built in */
    void *user;
} ll_lens_method;

typedef struct {
    ll_lens_method methods[LL_LENS_MAX_METHODS];
    int n_methods;
    const ll_tuned_lens *tuned; /* needed for "tuned" */
    ll_spade_opts spade;        /* switches: positions, decode (for every method), rows */
    int batch;                  /* prompts per forward (default 16) */
    bool progress;              /* progress line on a terminal */
} ll_lens_eval_opts;

/* "logit,tuned,spade" -> methods (built-ins only; plugged-in ones are added by the caller
 * with ll_lens_eval_add_method before or after). */
ll_status ll_lens_eval_parse_methods(ll_lens_eval_opts *o, const char *list);
ll_status ll_lens_eval_add_method(ll_lens_eval_opts *o, const char *name, ll_lens_method_fn fn, void *user);

typedef struct {
    int n_methods, n_layers, n_prompts;
    char names[LL_LENS_MAX_METHODS][16];
    ll_spade_opts spade;
    /* [method][layer 0..L][prompt] */
    int *pick;
    int32_t *token;
    float *prob;
    float *entropy;
    /* the full model at the answer row: [prompt] */
    int *full_pick;
    int32_t *full_token;
    float *full_prob;
    /* accuracy over prompts with a known gold answer: [method][layer], and the full model */
    double *acc;
    double full_acc;
    int n_scored;
    int64_t spade_token_layers; /* block work SPADE actually ran (token-layers; 1 row per prompt when cached) */
    /* Compute of a read-out at each layer, in token-layers per prompt (mean over prompts), as
     * the spec charges it: n*l for a lens, n*l + 2(L-l) for SPADE (its two rows, whatever the
     * cache saves), n*L for the full model; [method][layer]. For Iso-Compute comparisons. */
    double *cost;
    double full_cost;
} ll_lens_eval_result;

static inline size_t ll_lens_eval_idx(const ll_lens_eval_result *r, int method, int layer, int prompt) {
    return ((size_t)method * (size_t)(r->n_layers + 1) + (size_t)layer) * (size_t)r->n_prompts + (size_t)prompt;
}

ll_status ll_lens_eval_run(ll_model *m, const ll_mcqa_prompts *pr, const ll_lens_eval_opts *o, ll_lens_eval_result *out);
void ll_lens_eval_result_free(ll_lens_eval_result *r);

/* CSV: method,layer,accuracy,n_scored,token_layers,switches; the full model as method "full"
 * at layer L. */
ll_status ll_lens_eval_write_csv(const ll_lens_eval_result *r, const char *path);
/* HDF5: /accuracy [M][L+1], /cost [M][L+1] (token-layers per prompt), /full_accuracy, /pick, /token, /prob [M][L+1][P], /gold [P],
 * attributes methods, positions, decode, rows, complete. */
ll_status ll_lens_eval_write_h5(const ll_lens_eval_result *r, const ll_mcqa_prompts *pr, const char *path);

#endif
