/* Batched activation-patching sweeps for the ICL experiments.
 *
 * A sweep runs one prompt many times, each variant patching vectors into chosen positions
 * at one layer (replace or add). Instead of one forward pass per variant:
 *   - variants are rows of one ragged batch (ll_forward takes several sequences; each
 *     variant's patch targets its own batch rows), up to max_batch per pass;
 *   - the prompt prefix before the earliest patched position is the same in every variant
 *     (a patch only changes its row and the rows after it), so it is computed once into
 *     KV-cache slot 0 and copied to each variant's slot (ll_kv_cache_copy_slot); the batch
 *     then holds only the suffixes.
 * The default goes further (resume): a patch at layer l and position p cannot change
 * blocks before l, nor rows before p. The unpatched prompt is run once, keeping its KV
 * cache and the residual entering every block; each variant then runs only blocks l..L-1
 * over rows p..n-1 (ll_forward with start_layer = l and resid_in), its slot holding the
 * cached keys/values of rows < p. Variants are grouped by layer, one batch per group.
 * no_resume = true keeps the plain shared-prefix scheme; no_prefix_cache = true batches
 * full prompts; naive = true runs the plain loop (one full forward per variant) for
 * reference and benchmarks. Every variant reports the L2 change its patch made at the patch site
 * (ll_hooks_patch_stat) and whether it changed nothing. */
#ifndef LL_ICL_PATCH_H
#define LL_ICL_PATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "../model/ll_forward.h"

typedef struct {
    int layer;        /* patch site: `point` of this block */
    int n_pos;
    const int *pos;   /* prompt positions (token indices) to patch; a position listed twice is one
                       * row (replace: the last vector wins; add: the vectors are summed) */
    const float *src; /* [n_pos][d_model] */
    ll_patch_op op;   /* LL_PATCH_REPLACE or LL_PATCH_ADD */
} ll_icl_variant;

typedef struct {
    ll_hook_point point; /* 0 = LL_HOOK_RESID_PRE (Hugging Face hidden_states[layer]) */
    int max_batch;       /* variants per forward pass (<= 0: 64) */
    bool naive;          /* one forward per variant, no batching, no prefix reuse */
    bool no_prefix_cache;/* batch variants but recompute the shared prefix in every row */
    bool no_resume;      /* shared prefix only: every variant runs every block from the prefix on */
} ll_icl_sweep_opts;

typedef struct {
    double l2_change; /* ||patched - unpatched|| over the variant's patched rows */
    double src_norm;  /* ||src|| over the same rows (the scale l2_change is judged against) */
    bool noop;        /* the patch changed nothing: l2_change <= 1e-6 * max(src_norm, 1e-12) */
} ll_icl_patch_report;

typedef struct {
    int64_t forwards;   /* forward calls */
    int64_t rows;       /* token rows run through the model (prefix once + suffixes) */
    int64_t layer_rows; /* token rows x blocks run: the compute actually done */
} ll_icl_sweep_stats;

/* Run n_var variants of prompt ids[0..n); logits: [n_var][vocab] at the last position.
 * rep: [n_var] or NULL; stats may be NULL (accumulated into, not reset). */
ll_status ll_icl_sweep(ll_model *m, const int32_t *ids, int n, const ll_icl_variant *v, int n_var,
                       const ll_icl_sweep_opts *o, float *logits, ll_icl_patch_report *rep, ll_icl_sweep_stats *stats);

/* Record `point` at every layer for several prompts in one ragged batch.
 * Prompt p has n[p] tokens ids[p] and n_pos[p] positions pos[p]; out is
 * [n_layers][R][d_model] with R = sum n_pos, rows in prompt order. logits: [n_prompts][vocab]
 * at each prompt's last position, or NULL. */
ll_status ll_icl_record(ll_model *m, int n_prompts, const int32_t *const *ids, const int *n, const int *const *pos,
                        const int *n_pos, ll_hook_point point, float *out, float *logits);

/* Last-position logits of several prompts (one ragged batch, no hooks): [n_prompts][vocab]. */
ll_status ll_icl_logits(ll_model *m, int n_prompts, const int32_t *const *ids, const int *n, float *logits);

/* The built-in self-test: patch the clean states of positions pos at every layer back into
 * the same prompt (one variant per layer, through ll_icl_sweep with opts o) and compare the
 * logits with the unpatched run. *max_diff: max |logit difference| over variants and
 * vocabulary, relative to max |logit|. */
ll_status ll_icl_self_check(ll_model *m, const int32_t *ids, int n, const int *pos, int n_pos,
                            const ll_icl_sweep_opts *o, double *max_diff);

#endif
