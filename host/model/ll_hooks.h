/* Hook points: where a hidden state can be recorded or patched during ll_forward.
 *
 * Names follow TransformerLens: blocks.{l}.hook_resid_pre ... hook_resid_post,
 * ln_final.hook_normalized, logits. Hugging Face's hidden_states[l] is
 * blocks.{l}.hook_resid_pre (l < L); its last entry hidden_states[L] is AFTER the
 * final norm, i.e. ln_final.hook_normalized, not blocks.{L-1}.hook_resid_post.
 *
 * At a hook site the patches registered for it run first, in registration order,
 * then the records: a record sees the patched state, as downstream layers do.
 * When nothing is registered at a site the cost is one table lookup. */
#ifndef LL_HOOKS_H
#define LL_HOOKS_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/ll_status.h"

typedef enum {
    LL_HOOK_RESID_PRE = 0, /* [T][d]    residual entering block l */
    LL_HOOK_ATTN_Z,        /* [T][H*hd] per-head attention mix, before the output projection */
    LL_HOOK_ATTN_OUT,      /* [T][d]    attention block output (after o_proj and its bias) */
    LL_HOOK_RESID_MID,     /* [T][d]    resid_pre + attn_out */
    LL_HOOK_MLP_OUT,       /* [T][d]    MLP output */
    LL_HOOK_RESID_POST,    /* [T][d]    resid_mid + mlp_out (before any final norm) */
    LL_HOOK_FINAL_NORM,    /* [T][d]    ln_final.hook_normalized (layer index = n_layers) */
    LL_HOOK_LOGITS,        /* [T][V]    logits (layer index = n_layers) */
    LL_HOOK_ATTN_PATTERN,  /* per sequence [H][n_new][n_keys]: softmax probabilities; record only */
    LL_HOOK_COUNT
} ll_hook_point;

typedef enum { LL_POS_ALL = 0, LL_POS_LAST, LL_POS_LIST } ll_pos_mode;
typedef enum { LL_PATCH_REPLACE = 0, LL_PATCH_ADD, LL_PATCH_ZERO, LL_PATCH_COPY_ROW } ll_patch_op;

/* What a record sink receives: n_rows rows of `width` floats, in host memory,
 * valid only during the call. For LL_HOOK_ATTN_PATTERN one call per sequence:
 * rows are that sequence's new rows, data is [n_heads][n_rows][n_keys]. */
typedef struct {
    ll_hook_point point;
    int layer;
    int n_rows;
    const int64_t *rows; /* batch row index of each row */
    int width;
    const float *data;         /* fp32 rows; NULL for a bf16 record */
    const uint16_t *data_bf16; /* bf16 rows (fp32 rounded to nearest even) for a bf16 record, else NULL */
    int seq;             /* ATTN_PATTERN only */
    int n_heads, n_keys; /* ATTN_PATTERN only */
} ll_hook_rows;

typedef ll_status (*ll_record_fn)(void *user, const ll_hook_rows *r);

typedef struct {
    ll_hook_point point;
    int layer_lo, layer_hi; /* inclusive range; FINAL_NORM and LOGITS use n_layers */
    ll_pos_mode pos;
    const int64_t *rows;    /* LL_POS_LIST: batch rows (copied at registration) */
    int n_rows;
    ll_record_fn fn;
    void *user;
    bool bf16;              /* hand the rows over as bf16 (data_bf16): half the bytes to move and keep */
} ll_record;

typedef struct {
    ll_hook_point point;
    int layer;
    int n_rows;
    const int64_t *rows;     /* target batch rows (copied) */
    ll_patch_op op;
    const float *src;        /* REPLACE / ADD: [n_rows][width] host floats (copied) */
    int width;               /* floats per source row: the point's width, or head_dim with a head */
    const int64_t *src_rows; /* COPY_ROW: source batch row per target row (copied) */
    int head;                /* -1: whole row; else only this head's slice (ATTN_Z) */
} ll_patch;

/* Per-site statistics of the last forward, for the "a patch that changed nothing" check. */
typedef struct {
    double l2_change; /* ||patched - unpatched|| over the patched rows */
    int n_applied;
} ll_patch_stat;

typedef struct ll_hooks ll_hooks;

ll_status ll_hooks_new(ll_hooks **out, int n_layers);
void ll_hooks_free(ll_hooks *h);
void ll_hooks_clear(ll_hooks *h);
ll_status ll_hooks_add_record(ll_hooks *h, const ll_record *r);
ll_status ll_hooks_add_patch(ll_hooks *h, const ll_patch *p);
int ll_hooks_n_patches(const ll_hooks *h);
/* Statistics for patch i of the last forward pass. */
ll_patch_stat ll_hooks_patch_stat(const ll_hooks *h, int i);

/* "blocks.3.hook_resid_post" / "hook_resid_post" / "resid_post" -> point; layer from the name or -1. */
ll_status ll_hook_parse(const char *name, ll_hook_point *point, int *layer);
const char *ll_hook_name(ll_hook_point p); /* "hook_resid_post", "ln_final.hook_normalized", "logits" */

#endif
