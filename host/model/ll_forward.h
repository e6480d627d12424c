/* The forward scheduler: walks blocks start_layer..stop_layer over a ragged batch,
 * applying patches and handing records to their sinks at every hook point. */
#ifndef LL_FORWARD_H
#define LL_FORWARD_H

#include <stdint.h>

#include "ll_hooks.h"
#include "ll_model.h"

/* Several sequences of different lengths in one call: tokens concatenated, no padding. */
typedef struct {
    int n_seq;
    const int64_t *seq_off; /* [n_seq + 1], seq_off[0] = 0; rows of sequence s are seq_off[s]..seq_off[s+1]-1 */
    const int32_t *tokens;  /* [T] token ids; may be NULL when opts.resid_in is given */
    const int32_t *pos;     /* [T] position ids; NULL = n_past + index within the sequence */
    const int *slot;        /* [n_seq] KV-cache slot of each sequence; NULL = slot s for sequence s */
} ll_batch;

static inline int64_t ll_batch_rows(const ll_batch *b) { return b->seq_off[b->n_seq]; }

/* Keys (after RoPE) and values of every layer for n_slots independent sequences. */
typedef struct {
    int n_layers, n_slots, cap, kv_width;
    float *k, *v; /* backend memory: [n_layers][n_slots][cap][kv_width] */
    int *len;     /* host: [n_layers][n_slots] tokens held per layer and slot */
    const ll_backend *be;
} ll_kv_cache;

ll_status ll_kv_cache_new(ll_kv_cache **out, const ll_model *m, int n_slots, int cap);
void ll_kv_cache_free(ll_kv_cache *c);
void ll_kv_cache_reset(ll_kv_cache *c, int slot); /* slot < 0: all */
/* Truncate a slot to n tokens in every layer (e.g. to reuse a shared prefix). */
void ll_kv_cache_truncate(ll_kv_cache *c, int slot, int n);
/* Copy slot src's first n tokens into slot dst (prefix reuse for batched variants). */
void ll_kv_cache_copy_slot(ll_kv_cache *c, int dst, int src, int n);

typedef enum { LL_LOGITS_NONE = 0, LL_LOGITS_LAST, LL_LOGITS_ALL } ll_logits_mode;

/* Attention knockout: in blocks layer_lo..layer_hi (inclusive), the attention scores of
 * the query tokens q[] for the keys k[] are set to -inf before the softmax, so each such
 * row's remaining weights renormalise; every other entry is computed as usual. Indices
 * are key indices within the sequence (0 = its first token, including tokens held in the
 * KV cache: a new row r of a sequence with n_past cached tokens is index n_past + r).
 * Indices of tokens this call does not compute are skipped: queries of cached tokens
 * (< n_past) and indices at or past the sequence's current end (later tokens of a prompt
 * fed in chunks), so one list serves every chunk. Keys a query cannot see anyway (later
 * tokens, outside a sliding window) are simply not there to block. A query
 * whose every visible key is blocked attends to nothing: its head output is 0 and its
 * attention pattern row is 0. Several knockouts may name the same entries (union). */
typedef struct {
    int layer_lo, layer_hi;
    int seq;            /* batch sequence; -1 = every sequence */
    int head;           /* query head; -1 = every head */
    const int32_t *q;   /* [n_q] query key indices */
    int n_q;
    const int32_t *k;   /* [n_k] blocked key indices */
    int n_k;
} ll_knockout;

typedef struct {
    int start_layer;         /* first block to run (0 = from the embeddings) */
    int stop_layer;          /* run blocks [start_layer, stop_layer); <= 0 or > n_layers means n_layers */
    const float *resid_in;   /* host [T][d]: residual rows entering start_layer instead of embeddings */
    ll_kv_cache *cache;      /* NULL: attention within this batch only */
    ll_hooks *hooks;         /* NULL: no hooks (no cost) */
    ll_logits_mode logits;   /* only when the last block is run */
    float *logits_out;       /* host: [T or n_seq][vocab] for ALL / LAST */
    float *resid_out;        /* host [T][d] or NULL: residual after the last block run (pre final norm) */
    const ll_knockout *knockouts; /* [n_knockouts] or NULL (no cost): attention entries to block */
    int n_knockouts;
} ll_forward_opts;

ll_status ll_forward(ll_model *m, const ll_batch *b, const ll_forward_opts *o);

#endif
