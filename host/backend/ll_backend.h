/* The op table: every numerical operation the forward pass needs, as one small
 * table of function pointers. The forward pass (host/model/ll_forward.c) is
 * written once over this table; host/backend/cpu/ is the executable
 * specification (fp32, OpenBLAS, OpenMP) and host/backend/cuda/ launches
 * kernels/ and cuBLAS behind the same entries.
 *
 * All tensors are row-major. Activation pointers are in the backend's memory
 * (host memory for the CPU backend); to_host/from_host move data across. Index
 * lists that describe a batch (ll_attn_args' seq_off, n_past and its per-sequence
 * pointer arrays, gather/scatter row lists, entropy candidate lists) stay in host
 * memory: the host knows the batch, and a backend copies what its kernels need.
 *
 * Weights are in the backend's weight format: fp32 on the CPU (used in place from
 * the loaded files), bf16 on CUDA (ll_mat.dtype says which; the token embedding
 * table passed to embed is in the same format as the matrices). Norm weights,
 * biases, position embeddings and the RoPE table are fp32 on every backend.
 *
 * Errors: ops return nothing because a GPU runs them asynchronously, so a failure
 * is only known later. A backend remembers the first failure (with its message)
 * and sync() reports it: the forward pass calls sync() before it returns, so no
 * failure inside an op goes unreported. alloc reports its own failures at once. */
#ifndef LL_BACKEND_H
#define LL_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/ll_dtype.h"
#include "../core/ll_status.h"
#include "../model/ll_config.h"

/* A weight matrix used as y[T, out] = x[T, in] . W^T.
 * trans = true:  W stored [out][in] (torch.nn.Linear, GGUF, llama2.c), row stride ld >= in.
 * trans = false: W stored [in][out] (GPT-2 Conv1D),                      row stride ld >= out.
 * The row stride lets q, k and v be column slices of GPT-2's fused c_attn without a copy.
 * dtype is the element type behind w: LL_F32 for the CPU backend (the loaded weights);
 * LL_BF16 for the CUDA backend, whose upload (load_matrix) stores every matrix dense as
 * [out][in] (trans = true, ld = in). The pointer keeps its float type so the CPU code reads
 * it directly; a backend checks dtype before it reads anything else through it. */
typedef struct {
    const float *w;
    int out, in;
    int ld;
    bool trans;
    ll_dtype dtype; /* LL_F32 (0, the default) or LL_BF16 */
} ll_mat;

/* Attention knockouts of one call (built by host/model/ll_knockout.c from ll_forward_opts'
 * list; host memory, like the other batch descriptions). For sequence s, row r and head
 * h, row_mask[s][h * n_new + r] is -1 (nothing blocked) or the index of a bit mask in
 * mask[s] (words[s] uint32 words each, bit j of word j / 32 = key index j blocked): the
 * blocked keys' scores are -inf before the softmax, so the rest renormalise. A row whose
 * every visible key is blocked attends to nothing: its z is 0 and its pattern row is 0. */
typedef struct {
    const int32_t *const *row_mask; /* per sequence: NULL (no knockout in s) or [n_heads][n_new] */
    const uint32_t *const *mask;    /* per sequence: [n_masks][words[s]] */
    const int *words;               /* per sequence: ceil((n_past + n_new) / 32) */
    const int *n_masks;             /* per sequence: masks in mask[s] */
} ll_attn_knock;

/* Causal attention over ragged sequences, each with n_past cached tokens.
 * Query row r of sequence s sits at index n_past[s] + r of that sequence and attends to
 * key indices j <= that index (and, with a sliding window W, j > index - W). */
typedef struct {
    const float *q; /* [T][n_heads][head_dim], RoPE applied */
    float *z;       /* [T][n_heads][head_dim] output: softmax(q k^T * scale) v per head */
    int T, n_heads, n_kv_heads, head_dim;
    int n_seq;
    const int64_t *seq_off;   /* [n_seq + 1] rows of q per sequence */
    const float *const *k;    /* per sequence: [n_past + n_new][kv_stride] keys */
    const float *const *v;    /* per sequence: values, same layout */
    int kv_stride;            /* floats between consecutive tokens in k[s] / v[s] */
    const int *n_past;        /* per sequence; NULL = all zero */
    float scale;
    int sliding_window;       /* 0 = none */
    float *const *pattern;    /* NULL, or per sequence NULL / [n_heads][n_new][n_past + n_new] softmax output */
    const ll_attn_knock *knock; /* NULL: no knockout (the default, at no cost); attention_at ignores it */
} ll_attn_args;

/* Fused entropy of logits: one pass over the vocabulary per row, without writing
 * the softmax out. p = softmax(logits row); entropy = -sum p log p (nats). */
#define LL_TOPK_MAX 16
typedef struct {
    float max;        /* largest logit */
    float lse;        /* log-sum-exp of the row */
    float entropy;    /* nats */
    int32_t argmax;   /* smallest index holding the max */
    int32_t top_id[LL_TOPK_MAX];
    float top_logit[LL_TOPK_MAX]; /* descending; ties broken by the smaller id */
    /* Restricted to the candidate ids (when given): softmax over just those logits. */
    float cand_lse, cand_entropy;
    int32_t cand_argmax; /* the candidate id (not its index) with the largest logit */
} ll_entropy_row;

typedef struct ll_backend {
    const char *name;
    bool host_memory; /* activation pointers are plain host memory (the CPU backend) */
    /* memory */
    void *(*alloc)(size_t bytes); /* NULL on failure, error set */
    void (*free)(void *p);
    void (*to_host)(void *dst, const void *src, size_t bytes);
    void (*from_host)(void *dst, const void *src, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);
    void (*zero)(void *dst, size_t bytes);
    /* Wait for queued work; return the first failure of any call since the last sync
     * (its message in ll_last_error()) and clear it. LL_OK on the CPU. */
    ll_status (*sync)(void);
    /* Put a host fp32 weight matrix into the backend's weight format and memory; *dst
     * is the backend's view and *owned what to release with be->free. NULL on the CPU
     * backend, which uses the loaded weights in place. `what` names the tensor in errors. */
    ll_status (*load_matrix)(ll_mat *dst, void **owned, const ll_mat *src, const char *what);
    /* Asynchronous copies to the host, so recording overlaps compute. NULL on the CPU.
     * host_alloc gives page-locked host memory (NULL with the error set); to_host_async
     * queues a copy behind the work already queued: dst is valid after the next sync(). */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p);
    void (*to_host_async)(void *dst, const void *src, size_t bytes);
    /* ops */
    void (*embed)(float *x, const float *tok_emb, const float *pos_emb, const int32_t *tokens, const int32_t *pos,
                  int T, int d);
    /* y = x . W^T (+ bias); accumulate adds into y instead of overwriting it. */
    void (*matmul)(float *y, const float *x, const ll_mat *w, const float *bias, int T, bool accumulate);
    void (*rmsnorm)(float *y, const float *x, const float *w, int T, int d, float eps);
    void (*layernorm)(float *y, const float *x, const float *w, const float *b, int T, int d, float eps);
    /* The residual add fused with the next norm: x += o, then y = norm(x) with w (and b for
     * LayerNorm; b NULL and layer false for RMSNorm). Same results as add then norm. */
    void (*add_norm)(float *x, float *y, const float *o, const float *w, const float *b, bool layer, int T, int d,
                     float eps);
    /* In-place rotation of [T][n_heads][head_dim] at positions pos[T]. inv_freq has head_dim/2 entries. */
    void (*rope)(float *x, const int32_t *pos, int T, int n_heads, int head_dim, const float *inv_freq,
                 ll_rope_layout layout);
    void (*attention)(const ll_attn_args *a);
    void (*swiglu)(float *out, const float *gate, const float *up, size_t n); /* silu(gate) * up */
    void (*gelu_new)(float *x, size_t n);                                   /* tanh approximation, in place */
    void (*add)(float *y, const float *x, size_t n);                        /* y += x */
    void (*to_bf16)(uint16_t *dst, const float *src, size_t n); /* round to nearest even (bf16 recording) */
    /* dst[i] = src[rows[i]] for rows of `width` floats (src row stride = width). */
    void (*gather_rows)(float *dst, const float *src, const int64_t *rows, int n, int width);
    void (*scatter_rows)(float *dst, const float *src, const int64_t *rows, int n, int width);
    /* Hook patches on the device (NULL on the CPU, whose patches run through host memory in
     * host/model/ll_hooks.c). out[r] = buf[rows[r]] (rows of `width` floats) with columns
     * [off, off + w) patched by op (an ll_patch_op): replace with src[r][0..w), add
     * src[r][0..w), zero, or copy buf[src_rows[r]]'s columns; sq[r] = sum over those columns
     * of ((double)new - old)^2. The caller scatters out back into buf. rows and src_rows are
     * host lists (as for gather_rows); src, out and sq are backend memory. */
    void (*patch_rows)(float *out, double *sq, const float *buf, int width, const int64_t *rows,
                       const int64_t *src_rows, const float *src, int n, int off, int w, int op);
    /* out[r] (host) for rows r < R of logits [R][V] (backend memory); top-k for k <= LL_TOPK_MAX;
     * cands (host, may be NULL) lists n_cand ids each in [0, V). */
    void (*entropy)(ll_entropy_row *out, const float *logits, int R, int V, int k, const int32_t *cands, int n_cand);
    /* Decode steps whose per-step values are read from backend memory, so that a step
     * captured once (below) replays right for every token (host/model/ll_decoder.c). pos
     * points to one int32 in backend memory: the new token's index in the KV cache.
     * kv_append: row *pos of k_dst and v_dst (each [cap][width]) := the rows k_src, v_src.
     * attention_at: attention of one query row (a->T = 1, a->n_seq = 1, a->k[0] / a->v[0]
     * the slot's keys and values; a->n_past and a->pattern are ignored) at key index *pos,
     * over keys 0..*pos; max_keys >= *pos + 1 sizes the launch, which therefore does not
     * depend on *pos. Both on every backend. */
    void (*kv_append)(float *k_dst, float *v_dst, const float *k_src, const float *v_src, const int32_t *pos,
                      int width);
    void (*attention_at)(const ll_attn_args *a, const int32_t *pos, int max_keys);
    /* Graphs: record a sequence of ops once and replay it (CUDA graphs; NULL on the CPU).
     * graph_new: a context with scratch buffers of its own, so that nothing else can move
     * what a recorded op points to (NULL with the error set). graph_begin(ctx, capture): the
     * ops that follow use ctx's scratch; with capture they are recorded, not run (they must
     * not allocate: run the same ops once with capture = false first, which sizes the
     * scratch). graph_end: back to the shared scratch; after a capture the recording becomes
     * ctx's graph, replacing any earlier one; waits and reports the first failure like sync.
     * graph_launch queues one replay of ctx's graph. */
    void *(*graph_new)(void);
    void (*graph_free)(void *ctx);
    ll_status (*graph_begin)(void *ctx, bool capture);
    ll_status (*graph_end)(void *ctx);
    ll_status (*graph_launch)(void *ctx);
} ll_backend;

const ll_backend *ll_backend_cpu(void);
/* The CUDA backend on device 0, or NULL (with the reason in ll_last_error()) when the
 * build has no CUDA or no device is usable. */
const ll_backend *ll_backend_cuda(void);

/* Worker threads for the CPU backend (OpenMP and OpenBLAS). n <= 0: all cores. */
void ll_set_threads(int n);
int ll_get_threads(void);

#endif
