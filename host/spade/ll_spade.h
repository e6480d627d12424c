/* SPADE (Space Alignment Decoding, a.k.a. SimLens): decode an intermediate layer l by
 * keeping only the start token <s> (row 0) and the answer token <a> (row n-1) and
 * running just those two rows through the remaining blocks, then the final norm and the
 * LM head. See docs/spade.md.
 *
 * Layer convention (the same for every method in host/lens): layer l in 0..L is the
 * residual stream after l blocks (l = 0: the embeddings, l = L: the last block's output,
 * before the final norm). SPADE at l runs blocks l..L-1 (0-based) on the two rows; at
 * l = L it runs no block and equals the full model's output at the answer position.
 *
 * Row 0 under causal attention depends only on its own token and position 0, so its K/V
 * in every layer is a constant per (model, first token). ll_spade computes it once per
 * distinct first token into a KV-cache slot and copies that one-token prefix in front of
 * each answer row (LL_SPADE_ROWS_CACHED): a SPADE call then runs ONE row per prompt
 * through the blocks. LL_SPADE_ROWS_TWO runs the literal two-row sequence [h_0, h_{n-1}]
 * with no cache; both give the same logits (tested), the first at half the block work.
 * ll_spade_rows_run() counts the rows the blocks processed, for tests and accounting.
 *
 * Switches (recorded with every output, see ll_spade_opts_describe):
 *   positions: orig (RoPE / learned positions 0 and n-1, default) or reindex (0 and 1);
 *   decode:    options (argmax over the candidate tokens, default) or vocab. */
#ifndef LL_SPADE_H
#define LL_SPADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/ll_forward.h"

typedef enum { LL_SPADE_POS_ORIG = 0, LL_SPADE_POS_REINDEX } ll_spade_positions;
typedef enum { LL_SPADE_DECODE_OPTIONS = 0, LL_SPADE_DECODE_VOCAB } ll_spade_decode;
typedef enum {
    LL_SPADE_ROWS_CACHED = 0, /* default: row 0's K/V from a per-first-token cache; one row per prompt */
    LL_SPADE_ROWS_TWO,        /* the literal two-row sequence, no cache */
} ll_spade_rows;

typedef struct {
    ll_spade_positions positions;
    ll_spade_decode decode;
    ll_spade_rows rows;
} ll_spade_opts; /* zero-initialised = the defaults: orig, options, cached */

const char *ll_spade_positions_name(ll_spade_positions p); /* "orig" / "reindex" */
const char *ll_spade_decode_name(ll_spade_decode d);       /* "options" / "vocab" */
const char *ll_spade_rows_name(ll_spade_rows r);           /* "cached" / "two" */
ll_status ll_spade_parse_positions(const char *s, ll_spade_positions *out);
ll_status ll_spade_parse_decode(const char *s, ll_spade_decode *out);
/* "positions=orig decode=options rows=cached": what every output records. */
void ll_spade_opts_describe(const ll_spade_opts *o, char *buf, size_t n);

/* ---- the hidden states SPADE and the lenses start from ----
 * One full forward of a batch of prompts records, for every layer l = 0..L, the residual
 * at row 0 and at the answer row n-1 (resid_pre hooks of blocks 0..L-1 and resid_out),
 * and the full model's logits at the answer row. */
typedef struct {
    int n_prompts, n_layers, d_model, vocab;
    int *n_tok;         /* [n_prompts] prompt lengths */
    int32_t *first_tok; /* [n_prompts] token at row 0 */
    float *h;           /* [n_layers + 1][n_prompts][2][d_model]: h^l_0 then h^l_{n-1} */
    float *full_logits; /* [n_prompts][vocab]: the full model at the answer row, or NULL */
} ll_spade_states;

static inline const float *ll_spade_state(const ll_spade_states *s, int layer, int prompt, int row /* 0 or 1 */) {
    return s->h + (((size_t)layer * (size_t)s->n_prompts + (size_t)prompt) * 2 + (size_t)row) * (size_t)s->d_model;
}

/* tokens[i] holds n_tok[i] >= 1 ids. The prompts run as one ragged batch: callers bound
 * the batch size (memory grows with the total number of tokens). want_full_logits: also
 * fill full_logits. */
ll_status ll_spade_states_collect(ll_model *m, const int32_t *const *tokens, const int *n_tok, int n_prompts,
                                  bool want_full_logits, ll_spade_states *out);
void ll_spade_states_free(ll_spade_states *s);

/* ---- running SPADE ---- */
typedef struct ll_spade ll_spade;

/* A SPADE runner for m (on m's backend) handling up to max_batch prompts per call. */
ll_status ll_spade_new(ll_spade **out, ll_model *m, const ll_spade_opts *o, int max_batch);
void ll_spade_free(ll_spade *sp);
const ll_spade_opts *ll_spade_get_opts(const ll_spade *sp);
/* Hooks applied to SPADE's block runs (not to the row-0 cache fill); NULL = none. The
 * hooks object must outlive its use; row indices are those of SPADE's own batch. */
void ll_spade_set_hooks(ll_spade *sp, ll_hooks *hooks);

/* SPADE from layer `layer` (0..L) for n prompts given their rows directly:
 *   h0[i], ha[i]: h^l_0 and h^l_{n-1} of prompt i (d_model floats each; h0 may be NULL in
 *   cached mode: row 0's state is then never needed, only its first token);
 *   n_tok[i]: prompt length (sets the answer row's position under `orig`);
 *   first_tok[i]: the token at row 0 (keys the row-0 cache).
 * logits_out: [n][vocab] or NULL; resid_out: [n][d_model] (the answer row after the last
 * block, before the final norm) or NULL. n may exceed max_batch (it is split). The caller
 * that runs the model layer by layer (early exit) uses this entry point. */
ll_status ll_spade_run_rows(ll_spade *sp, int layer, int n, const float *const *h0, const float *const *ha,
                            const int *n_tok, const int32_t *first_tok, float *logits_out, float *resid_out);

/* The same for prompts p0 .. p0+n-1 of collected states. */
ll_status ll_spade_run(ll_spade *sp, int layer, const ll_spade_states *st, int p0, int n, float *logits_out,
                       float *resid_out);

/* Rows the blocks have processed so far (sum over calls of rows x blocks run would be
 * token-layers; this counts rows per call, once per call, not per block). */
int64_t ll_spade_rows_run(const ll_spade *sp);
/* Token-layers (one block applied to one row) spent so far. */
int64_t ll_spade_token_layers(const ll_spade *sp);

/* ---- decoding a logits row ----
 * With opts (K candidate ids, decode = options): argmax / probability / entropy over the
 * softmax of just those K logits, .pick = the index into opts. With decode = vocab (or
 * K == 0): over the whole vocabulary, .pick = -1 unless the top token is one of opts.
 * .token = the winning token id; .prob its probability; .entropy in nats (of the
 * distribution decoded from). */
typedef struct {
    int pick;
    int32_t token;
    float prob;
    float entropy;
} ll_spade_pick;

ll_spade_pick ll_spade_decode_row(const float *logits, int vocab, const int32_t *opts, int K, ll_spade_decode mode);

#endif
