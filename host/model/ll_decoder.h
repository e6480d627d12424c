/* One-token decode steps over a KV-cache slot, replayed as a CUDA graph where the
 * backend can (issue 4): launching a decode step's ~10 ops per layer one by one costs
 * more host time than a small model's kernels take, so the step is recorded once and
 * replayed for every token.
 *
 * Batch 1, no hooks, logits of the new token only: a caller that needs hooks, several
 * sequences or other rows calls ll_forward itself. */
#ifndef LL_DECODER_H
#define LL_DECODER_H

#include <stdint.h>

#include "ll_forward.h"

typedef struct ll_decoder ll_decoder;

typedef enum {
    /* LL_DECODE_GRAPH where the backend records graphs (CUDA), unless LL_NO_GRAPHS is set
     * to anything but "0" in the environment; LL_DECODE_FORWARD otherwise. */
    LL_DECODE_AUTO = 0,
    /* ll_forward with a one-token batch: the reference. */
    LL_DECODE_FORWARD,
    /* The step the graph records (its per-step values read from backend memory), run op by
     * op without recording: checks the recorded step's logic on any backend. */
    LL_DECODE_FIXED,
    /* The first step runs as LL_DECODE_FIXED (sizing the graph's scratch), the second is
     * recorded and replayed, every later one replayed. Backends with graph ops only. If
     * the recording fails, the decoder continues with LL_DECODE_FORWARD steps: under
     * LL_DECODE_AUTO that step succeeds that way (ll_decoder_note says why graphs were
     * given up); asked for by name, that step returns the error. */
    LL_DECODE_GRAPH,
} ll_decode_mode;

/* A decoder for `slot` of `cache`, which must have been made for m on m's backend (after
 * ll_model_use_backend). The decoder borrows m and cache: both must outlive it, and m must
 * not move to another backend meanwhile (a recorded step points to its weights and to the
 * cache's buffers). The slot may already hold a prompt; steps continue from its length.
 * The cache may be truncated or reset between steps. */
ll_status ll_decoder_new(ll_decoder **out, ll_model *m, ll_kv_cache *cache, int slot);
/* The same with the mode chosen; LL_ERR_UNSUPPORTED when the backend cannot run it. */
ll_status ll_decoder_new_mode(ll_decoder **out, ll_model *m, ll_kv_cache *cache, int slot, ll_decode_mode mode);

/* Append `token` at the slot's next position in every layer and write the logits of that
 * position to logits_out (host, vocab_size floats). The slot's length grows by one in
 * every layer, as with a one-token ll_forward. When the slot's layers hold different
 * lengths (a forward that stopped mid-model), the step is a plain ll_forward. On failure
 * the lengths are unchanged (a failed plain step leaves them as ll_forward does). */
ll_status ll_decoder_step(ll_decoder *d, int32_t token, float *logits_out);

/* The mode steps run in (never LL_DECODE_AUTO). */
ll_decode_mode ll_decoder_mode(const ll_decoder *d);
/* Why graphs were given up (a failed recording under LL_DECODE_AUTO), or NULL. */
const char *ll_decoder_note(const ll_decoder *d);

void ll_decoder_free(ll_decoder *d);

#endif
