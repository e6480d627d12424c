/* L-SPADE: one affine map per layer that predicts SPADE's output from the answer row's
 * hidden state alone, fitted by ridge regression (ll_ridge.h). SPADE-EXIT uses it as a
 * cheap confidence at every layer (host/exit). See docs/lspade-exit.md and docs/spade.md.
 *
 * Layer convention (as host/spade): layer l in 0..L is the residual after l blocks. A map
 * for layer l reads x = h^l_{n-1} (optionally through the model's final norm first) and
 * predicts, by target:
 *   logits  SPADE's K option logits at l (the logits of the prompt's candidate tokens, in
 *           option order). K is fixed for a map; with per-prompt candidate ids (e.g. the
 *           options themselves are the answers) the map predicts "the logit of option k".
 *   hidden  SPADE's final hidden state of the answer row (after the last block, before the
 *           final norm), decoded with the frozen final norm and the LM head rows of the
 *           candidates.
 * Prediction: y = x W_l + b_l, with W_l and b_l stored together as [(d+1)][d_out] (bias last).
 *
 * Training data are SPADE's own outputs on in-format prompts (labels are not needed). The
 * examples are cut into fixed blocks of the prompt index (LL_LSPADE_BLOCK prompts), each
 * block one chunk per Gram, and blocks are dealt to processes round-robin, so 1 or N
 * processes build bit-equal Grams (see ll_ridge.h) and so bit-equal maps. */
#ifndef LL_LSPADE_H
#define LL_LSPADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/ll_forward.h"
#include "../spade/ll_spade.h"
#include "ll_ridge.h"

#define LL_LSPADE_BLOCK 64 /* prompts per block: one forward batch, one Gram chunk (<= LL_GRAM_CHUNK) */
#define LL_LSPADE_MAX_GRID 32

typedef enum { LL_LSPADE_TARGET_LOGITS = 0, LL_LSPADE_TARGET_HIDDEN } ll_lspade_target;
const char *ll_lspade_target_name(ll_lspade_target t); /* "logits" / "hidden" */
ll_status ll_lspade_parse_target(const char *s, ll_lspade_target *out);

/* A set of maps, as fitted or as loaded from a file. */
typedef struct {
    int n_layers, d_model, d_out; /* model L and d; d_out = K (logits) or d (hidden) */
    int K;                        /* options the maps were fitted for */
    ll_lspade_target target;
    bool norm_input;
    float **W;      /* [L + 1]: [(d+1)][d_out] or NULL where no map was fitted */
    double *lambda; /* [L + 1] absolute lambda used (NAN where none) */
    double *lambda_rel;
    double *val_mse; /* [L + 1] held-out MSE at the chosen lambda (NAN without a split) */
    double *val_agree; /* [L + 1] held-out share where the map picks SPADE's option (NAN unless
                          the fit selected by agreement) */
    double *train_mse;
    char *meta_json; /* the switches and provenance recorded with the maps (a JSON object) */
    /* Host copies the decoding needs, made on first use (ll_lspade_apply). */
    float *norm_w, *norm_b; /* [d] */
    float **head_rows;      /* [vocab] lazily filled LM-head rows (fp32, host) */
    int vocab;
    ll_norm_kind norm_kind;
    float norm_eps;
} ll_lspade_maps;

void ll_lspade_maps_free(ll_lspade_maps *m);
/* Empty maps for L layers (no W yet, NAN figures). */
ll_status ll_lspade_maps_alloc(ll_lspade_maps **out, int L, int d, int d_out, int K);

/* The all-reduce the fit uses to sum Grams across processes. NULL / size 1: one process.
 * allreduce_dd sums n double-double values (hi[i], lo[i]) over all ranks into every rank. */
typedef struct {
    int rank, size;
    ll_status (*allreduce_dd)(void *user, double *hi, double *lo, size_t n);
    void *user;
    const char *name; /* "mpi", "nccl", "none": recorded in the maps */
} ll_lspade_comm;

typedef struct {
    ll_lspade_target target;
    bool norm_input;
    int layer_lo, layer_hi;  /* maps for layers [lo, hi]; 0 and 0 = 1 .. L-1 */
    const double *lambda_rel; /* grid of lambdas relative to mean diag(X^T X) (see ll_ridge.h) */
    int n_lambda;             /* 0 = the default grid 1e-8, 1e-7, ..., 1e1 */
    double val_frac;          /* held-out share for lambda selection (default 0.2 when < 0) */
    uint64_t seed;            /* split seed */
    bool no_refit;            /* false: refit on train + validation with the chosen lambda */
    bool ridge_gpu;           /* solve with cuSOLVER (ll_ridge_gpu.h) instead of LAPACK */
    bool select_agree;        /* choose lambda by held-out agreement with SPADE's option (the
                                 held-out rows are kept in memory) instead of held-out MSE */
    ll_spade_opts spade;
    const ll_lspade_comm *comm;
    /* Progress: called after each block on every rank with prompts done (this rank). */
    void (*progress)(void *user, int64_t done, int64_t total);
    void *progress_user;
} ll_lspade_fit_opts;

/* Training prompts: n prompts, tokens[i] with n_tok[i] ids (row 0 first, the answer row
 * last), cand[i] the K candidate token ids of prompt i. */
typedef struct {
    int n, K;
    const int32_t *const *tokens;
    const int *n_tok;
    const int32_t *const *cand;
} ll_lspade_data;

/* Fit maps for m on data. Every rank runs its share of the blocks; after the all-reduce
 * every rank solves (cheap next to the forward passes) so every rank holds the maps; only
 * the caller decides who writes them. meta_json (may be NULL): a JSON object of extra
 * string fields recorded with the maps (command line, data file, ...). */
ll_status ll_lspade_fit(ll_model *m, const ll_lspade_data *data, const ll_lspade_fit_opts *o, const char *meta_json,
                        ll_lspade_maps **out);

/* Fit from stored activations: a dump made by `layerlab dump --points hook_resid_post
 * --positions answer` (or any positions that include each prompt's last token) of the
 * same prompts (their tokens are checked against the dump's). The answer rows come from
 * the file; SPADE still runs the remaining blocks (row 0 from its per-token cache, so
 * o->spade.rows must be cached). */
ll_status ll_lspade_fit_from_dump(ll_model *m, const ll_lspade_data *data, const char *dump_path,
                                  const ll_lspade_fit_opts *o, const char *meta_json, ll_lspade_maps **out);

/* The Grams alone, per layer l = 0..L (train[l], val[l] initialised for layers in range,
 * zeroed otherwise), before the all-reduce: for tests and for fitting from a dump. */
typedef struct {
    int L;
    ll_gram *train, *val; /* [L + 1] */
    bool *have;           /* [L + 1] */
    int64_t n_train, n_val; /* prompts added on this rank */
    /* With ll_lspade_grams_use_gpu: the sums accumulate on the device (cuBLAS fp64) and
     * ll_lspade_fit_finish brings them into train / val before the all-reduce. */
    struct ll_gram_gpu **gpu_train, **gpu_val; /* [L + 1] or NULL */
    /* With select_agree: this rank's held-out rows per layer (inputs as fed to the map,
     * candidate ids, SPADE's option). */
    struct ll_lspade_valset *vs; /* [L + 1] or NULL */
    int K;
} ll_lspade_grams;
typedef struct ll_lspade_valset {
    int64_t n, cap;
    float *x;      /* [n][d_in] */
    int32_t *cand; /* [n][K] */
    int *pick;     /* [n] SPADE's option */
} ll_lspade_valset;
/* Keep held-out rows (those the split sends to validation) for selection by agreement:
 * X [n][d_in], SPADE's option pick[n], candidates cand[i] (K each), prompt indices idx[n]. */
ll_status ll_lspade_grams_keep_val(ll_lspade_grams *g, int layer, int K, const float *X, const int *pick,
                                   const int32_t *const *cand, const int64_t *idx, int n, double val_frac, uint64_t seed);
/* Accumulate on the GPU from now on (ll_ridge_gpu.h); an error when the build or the
 * machine has no CUDA device. */
ll_status ll_lspade_grams_use_gpu(ll_lspade_grams *g);
void ll_lspade_grams_free(ll_lspade_grams *g);
ll_status ll_lspade_grams_init(ll_lspade_grams *g, int L, int lo, int hi, int d_in, int d_out);
/* Add one block of examples of layer l: X [n][d_in] (already normalised when norm_input),
 * Y [n][d_out], global prompt indices idx[n]; rows go to train or val by the split. */
ll_status ll_lspade_grams_add(ll_lspade_grams *g, int layer, const float *X, const float *Y, const int64_t *idx,
                              int n, double val_frac, uint64_t seed);
/* Sum over ranks (comm NULL or size 1: nothing to do). */
ll_status ll_lspade_grams_allreduce(ll_lspade_grams *g, const ll_lspade_comm *comm);
/* Select lambda per layer and solve into maps (m decodes the hidden target when selecting
 * by agreement; o->comm sums the agreement counts across ranks). */
ll_status ll_lspade_solve(const ll_lspade_grams *g, const ll_lspade_fit_opts *o, ll_model *m, ll_lspade_maps *maps);
/* All-reduce, solve and record the switches: the common end of both fits (lo..hi resolved,
 * o->val_frac resolved). */
ll_status ll_lspade_fit_finish(ll_model *m, const ll_lspade_data *data, const ll_lspade_fit_opts *o, int lo, int hi,
                               ll_lspade_grams *g, const char *meta_json, ll_lspade_maps *maps);
/* One block of nb prompts (p0..p0+nb-1) at layer l into the Grams: the option-logit targets
 * taken from SPADE's vocabulary logits lg [nb][V] (logits target; the hidden target is
 * already in Y), SPADE's own pick for --select agree, the final norm on X for --norm-input.
 * X [nb][d] holds the answer-position states; idx the prompts' indices. The common middle
 * of both fits: only where X comes from differs. */
ll_status ll_lspade_fit_block(ll_lspade_grams *g, ll_lspade_maps *maps, ll_model *m, const ll_lspade_data *data,
                              const ll_lspade_fit_opts *o, int l, int p0, int nb, const float *lg, int V, float *X,
                              float *Y, const int64_t *idx, int *pick, double vf);

/* ---- files: safetensors, "W.{l}" [(d+1)][d_out] F32, metadata format=layerlab-lspade,
 * target, norm_input, n_layers, d_model, d_out, K, layers, lambda.{l}, lambda_rel.{l},
 * val_mse.{l}, train_mse.{l}, val_agree.{l} and the fit's meta_json fields. Written to a temporary name and
 * renamed, so an interrupted write leaves no file that looks complete. */
ll_status ll_lspade_save(const ll_lspade_maps *maps, const char *path);
/* Checks d_model and n_layers against m when m is given, and the weights hash when the
 * file records one ("model_hash", written by fits since it was added; older files have
 * none and are checked on shape alone). */
ll_status ll_lspade_load(ll_lspade_maps **out, const char *path, const ll_model *m);
/* "llh64:<16 hex>" of m's weight files (the same value as a dump's weights_hash), the
 * identity a maps file is tied to: buf of at least 24 bytes. */
void ll_lspade_model_hash(const ll_model *m, char *buf, size_t n);

/* ---- applying ---- */
/* Option logits for n answer rows h [n][d] of layer l: out [n][K]. cand[i] (K ids each) is
 * only read for the hidden target (which LM-head rows decode it). Runs on the host (a few
 * K x d or d x d products per row, next to a layer's forward); the first call copies the
 * final norm (and for hidden, LM-head rows as they are needed) to the host. */
ll_status ll_lspade_apply(ll_lspade_maps *maps, ll_model *m, int layer, int n, const float *h,
                          const int32_t *const *cand, float *out);
/* Multiply-adds of one map application for one row (the cost reported next to token-layers). */
double ll_lspade_map_macs(const ll_lspade_maps *maps);
/* The model's final norm on the host: out [n][d] (out may equal h). */
ll_status ll_lspade_final_norm(ll_lspade_maps *maps, ll_model *m, int n, const float *h, float *out);

/* Normalised entropy over K logits: H(softmax) / log K in [0, 1] (0 for K = 1); *argmax
 * (may be NULL) the index of the largest (the first on ties). */
double ll_lspade_norm_entropy(const float *logits, int K, int *argmax);

#endif
