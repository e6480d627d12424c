/* Attention knockouts (ll_forward_opts.knockouts): validation, and the per-layer tables the
 * attention ops read (ll_attn_knock in ll_backend.h). Internal to the forward pass. */
#ifndef LL_KNOCKOUT_H
#define LL_KNOCKOUT_H

#include "../backend/ll_backend.h"
#include "ll_forward.h"

/* Host tables for one layer, reused from layer to layer (grown, never shrunk). */
typedef struct {
    int n_seq;
    int32_t **row_mask; /* per sequence [n_heads][n_new] or NULL */
    uint32_t **mask;    /* per sequence [n_masks][words] */
    size_t *row_cap, *mask_cap; /* allocated entries */
    int *words, *n_masks;
    const int32_t **view_rows; /* per sequence: row_mask[s] when it has masks, else NULL */
    ll_attn_knock view;
} ll_knock_tables;

/* What can be checked before the pass: sequence, head and layer ranges, index signs. */
ll_status ll_knock_check(const ll_knockout *ko, int n, const ll_batch *b, int n_layers, int n_heads);

/* The tables for `layer`: *out = NULL when no knockout covers this layer (or none names a
 * row computed in this call), else a view valid until the next call. */
ll_status ll_knock_build(ll_knock_tables *t, const ll_knockout *ko, int n, int layer, const ll_batch *b,
                         const int *n_past, int n_heads, const ll_attn_knock **out);

void ll_knock_tables_free(ll_knock_tables *t);

#endif
