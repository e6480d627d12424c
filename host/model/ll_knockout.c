/* Attention knockouts: from the caller's list of (layer range, sequence, head, query
 * indices, key indices) to per-row bit masks over key indices (ll_attn_knock).
 *
 * Each (sequence, head, row) that some active knockout names gets one mask: the union of
 * the key sets of every knockout naming it. Rows nothing names keep -1, which the
 * attention ops test once per row, so an unnamed row is computed exactly as without
 * knockouts. Indices of tokens this call does not compute or hold (cached queries, later
 * tokens of a prompt fed in chunks) are skipped, so one list serves every chunk. Masks are rebuilt per layer (layer ranges differ between knockouts); the
 * work is the number of named (row, key) pairs, small next to the attention itself. */
#include "ll_knockout.h"

#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"

ll_status ll_knock_check(const ll_knockout *ko, int n, const ll_batch *b, int n_layers, int n_heads) {
    if (n < 0) return ll_err(LL_ERR_ARG, "forward: n_knockouts is %d", n);
    if (n > 0 && !ko) return ll_err(LL_ERR_ARG, "forward: n_knockouts is %d but the list is NULL", n);
    for (int i = 0; i < n; i++) {
        const ll_knockout *k = &ko[i];
        if (k->layer_lo < 0 || k->layer_hi < k->layer_lo || k->layer_hi >= n_layers)
            return ll_err(LL_ERR_ARG, "forward: knockout %d: layers [%d, %d] outside the model's [0, %d)", i,
                          k->layer_lo, k->layer_hi, n_layers);
        if (k->seq < -1 || k->seq >= b->n_seq)
            return ll_err(LL_ERR_ARG, "forward: knockout %d: sequence %d, the batch has %d (-1 = all)", i, k->seq,
                          b->n_seq);
        if (k->head < -1 || k->head >= n_heads)
            return ll_err(LL_ERR_ARG, "forward: knockout %d: head %d, the model has %d (-1 = all)", i, k->head, n_heads);
        if (k->n_q < 0 || k->n_k < 0 || (k->n_q > 0 && !k->q) || (k->n_k > 0 && !k->k))
            return ll_err(LL_ERR_ARG, "forward: knockout %d: %d query / %d key indices with a NULL list", i, k->n_q,
                          k->n_k);
        for (int j = 0; j < k->n_q; j++)
            if (k->q[j] < 0) return ll_err(LL_ERR_ARG, "forward: knockout %d: query index %d is negative", i, k->q[j]);
        for (int j = 0; j < k->n_k; j++)
            if (k->k[j] < 0) return ll_err(LL_ERR_ARG, "forward: knockout %d: key index %d is negative", i, k->k[j]);
    }
    return LL_OK;
}

static ll_status ll_knock_alloc(ll_knock_tables *t, int n_seq) {
    if (t->n_seq >= n_seq) return LL_OK;
    ll_knock_tables_free(t);
    t->row_mask = calloc((size_t)n_seq, sizeof *t->row_mask);
    t->mask = calloc((size_t)n_seq, sizeof *t->mask);
    t->row_cap = calloc((size_t)n_seq, sizeof *t->row_cap);
    t->mask_cap = calloc((size_t)n_seq, sizeof *t->mask_cap);
    t->words = calloc((size_t)n_seq, sizeof *t->words);
    t->n_masks = calloc((size_t)n_seq, sizeof *t->n_masks);
    t->view_rows = calloc((size_t)n_seq, sizeof *t->view_rows);
    if (!t->row_mask || !t->mask || !t->row_cap || !t->mask_cap || !t->words || !t->n_masks || !t->view_rows) {
        ll_knock_tables_free(t);
        return ll_err(LL_ERR_NOMEM, "forward: no memory for knockout tables of %d sequences", n_seq);
    }
    t->n_seq = n_seq;
    return LL_OK;
}

/* Grow *p (cap entries of `size` bytes) to hold need entries. */
static ll_status ll_grow(void **p, size_t *cap, size_t need, size_t size) {
    if (*cap >= need) return LL_OK;
    size_t want = need < 64 ? 64 : need + need / 2;
    void *q = realloc(*p, want * size);
    if (!q) return ll_err(LL_ERR_NOMEM, "forward: no memory for knockout masks (%zu bytes)", want * size);
    *p = q;
    *cap = want;
    return LL_OK;
}

ll_status ll_knock_build(ll_knock_tables *t, const ll_knockout *ko, int n, int layer, const ll_batch *b,
                         const int *n_past, int H, const ll_attn_knock **out) {
    *out = NULL;
    int any = 0;
    for (int i = 0; i < n; i++)
        if (ko[i].layer_lo <= layer && layer <= ko[i].layer_hi && ko[i].n_q > 0 && ko[i].n_k > 0) any = 1;
    if (!any) return LL_OK;
    LL_TRY(ll_knock_alloc(t, b->n_seq));
    int used = 0;
    for (int s = 0; s < b->n_seq; s++) {
        int n_new = (int)(b->seq_off[s + 1] - b->seq_off[s]);
        int past = n_past ? n_past[s] : 0, nk = past + n_new;
        int words = (nk + 31) / 32;
        t->words[s] = words;
        t->n_masks[s] = 0;
        int named = 0;
        for (int i = 0; i < n && !named; i++)
            named = ko[i].layer_lo <= layer && layer <= ko[i].layer_hi && (ko[i].seq < 0 || ko[i].seq == s) &&
                    ko[i].n_q > 0 && ko[i].n_k > 0;
        if (!named) continue; /* n_masks 0: no row table for this sequence */
        size_t rows = (size_t)H * (size_t)n_new;
        LL_TRY(ll_grow((void **)&t->row_mask[s], &t->row_cap[s], rows, sizeof(int32_t)));
        for (size_t e = 0; e < rows; e++) t->row_mask[s][e] = -1;
        for (int i = 0; i < n; i++) {
            const ll_knockout *k = &ko[i];
            if (!(k->layer_lo <= layer && layer <= k->layer_hi && (k->seq < 0 || k->seq == s))) continue;
            for (int qi = 0; qi < k->n_q; qi++) {
                int q = k->q[qi];
                if (q < past || q >= nk) continue; /* a cached or a later token: not computed now */
                int r = q - past;
                for (int h = k->head < 0 ? 0 : k->head; h < (k->head < 0 ? H : k->head + 1); h++) {
                    int32_t *mi = &t->row_mask[s][(size_t)h * n_new + r];
                    if (*mi < 0) {
                        size_t need = ((size_t)t->n_masks[s] + 1) * (size_t)words;
                        LL_TRY(ll_grow((void **)&t->mask[s], &t->mask_cap[s], need, sizeof(uint32_t)));
                        *mi = t->n_masks[s]++;
                        memset(t->mask[s] + (size_t)*mi * words, 0, (size_t)words * sizeof(uint32_t));
                    }
                    uint32_t *m = t->mask[s] + (size_t)*mi * words;
                    for (int j = 0; j < k->n_k; j++) /* a key past the end is a later token: unseen anyway */
                        if (k->k[j] < nk) m[k->k[j] >> 5] |= 1u << (k->k[j] & 31);
                }
            }
        }
        if (t->n_masks[s] > 0) used = 1;
    }
    if (!used) return LL_OK;
    /* The view: a sequence without a mask has a NULL row table. */
    for (int s = 0; s < b->n_seq; s++) t->view_rows[s] = t->n_masks[s] > 0 ? t->row_mask[s] : NULL;
    t->view.row_mask = t->view_rows;
    t->view.mask = (const uint32_t *const *)t->mask;
    t->view.words = t->words;
    t->view.n_masks = t->n_masks;
    *out = &t->view;
    return LL_OK;
}

void ll_knock_tables_free(ll_knock_tables *t) {
    for (int s = 0; s < t->n_seq; s++) {
        if (t->row_mask) free(t->row_mask[s]);
        if (t->mask) free(t->mask[s]);
    }
    free(t->row_mask);
    free(t->mask);
    free(t->row_cap);
    free(t->mask_cap);
    free(t->words);
    free(t->n_masks);
    free(t->view_rows);
    memset(t, 0, sizeof *t);
}
