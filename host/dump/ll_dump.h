/* layerlab dump, as a library call: run a model over many prompts in token-budgeted
 * batches and stream chosen hook points at chosen layers and positions into an
 * activation store (host/store), with resume and sharding. */
#ifndef LL_DUMP_H
#define LL_DUMP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "../model/ll_forward.h"
#include "../store/ll_store.h"
#include "../tokenizer/ll_tokenizer.h"
#include "ll_dump_input.h"

typedef struct {
    const char *out_path;
    ll_dump_input *input;   /* the caller's; read twice (a checking pass, then the dump) */
    const char *points;     /* "hook_resid_post,hook_attn_out" (NULL: hook_resid_post) */
    const char *layers;     /* "all" or "0,3,5-7" (NULL: all) */
    const char *positions;  /* "all", "last", or a list of indices (negative from the end) and
                               names from the records' "positions" objects (NULL: all) */
    ll_dtype dtype;         /* LL_F32 (default 0), LL_F16, LL_BF16 */
    ll_compress compress;
    int gzip_level;
    int64_t batch_tokens;   /* token budget per forward pass (0: 2048) */
    bool no_special;        /* text prompts without the tokenizer's BOS/EOS */
    bool resume, force;
    int shard_k, shard_n;   /* dump the K-th (1-based) of N contiguous parts; 0/0 = all */
    const char *model_path;
    const char *command_line;
    const char *device;     /* "cpu: 2 threads" / "cuda: NVIDIA H200": written as provenance */
    volatile sig_atomic_t *stop; /* set from a signal handler: finish the batch, commit, stop */
    int progress;           /* ll_progress force flag: 1 always, 0 on a terminal, -1 never */
    double commit_seconds;  /* 0: 5 s */
    void (*on_commit)(void *user, const ll_store_progress *p); /* tests */
    void *on_commit_user;
} ll_dump_opts;

typedef struct {
    int64_t n_input;        /* records in the input */
    int64_t shard_lo, shard_hi; /* this shard's records [lo, hi) */
    int64_t seqs_before;    /* already in the file when resuming */
    int64_t seqs, rows, tokens; /* in the file at the end */
    double bytes, seconds;  /* activation bytes written by this run, wall time */
    bool interrupted;       /* stopped by opts.stop: the file is resumable, not complete */
} ll_dump_result;

ll_status ll_dump_run(ll_model *m, const ll_tokenizer *tok, const ll_dump_opts *o, ll_dump_result *res);

/* "0,3,5-7" or "all" -> sorted distinct layers in [0, n_layers). */
ll_status ll_parse_layers(const char *spec, int n_layers, int32_t **out, int *n);

#endif
