/* The activation store: hidden states of many prompts in one HDF5 file, written by a
 * background thread while the next forward pass runs, resumable after any interruption,
 * read back layer by layer. The file layout is documented in docs/hdf5-layout.md.
 *
 *   /                         provenance attributes, complete (bool)
 *   /sequences/tokens         int32 [n_tokens]      every sequence's ids, concatenated
 *   /sequences/positions      int32 [n_tokens]      position ids fed to the model
 *   /sequences/offsets        int64 [n_seq + 1]     tokens of sequence s: offsets[s]..offsets[s+1]
 *   /sequences/row_offsets    int64 [n_seq + 1]     stored rows of sequence s
 *   /sequences/index          int64 [n_seq]         index of the sequence in the input
 *   /sequences/ids, metadata  str   [n_seq]         input ids and extra JSON fields (at completion)
 *   /rows/sequence, position, token                 per stored row: which sequence, which token
 *   /acts/<point>             [n_layers][n_rows][width]  f32, f16, or bf16 held as uint16
 *   /progress                 int64 [5]             what is committed: seqs, rows, tokens, id and
 *                                                   metadata bytes (the resume record)
 *
 * Crash safety comes from HDF5's single-writer/multiple-reader mode: while a dump runs
 * the file is always consistent on disk, `progress` only ever names data already flushed,
 * and a run killed at any instant resumes from `progress`. */
#ifndef LL_STORE_H
#define LL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/ll_dtype.h"
#include "../core/ll_status.h"

#define LL_STORE_FORMAT "layerlab-activations"
#define LL_STORE_FORMAT_VERSION 1
#define LL_STORE_MAX_POINTS 16 /* hook points per dump */

typedef enum { LL_COMPRESS_NONE = 0, LL_COMPRESS_GZIP, LL_COMPRESS_SHUFFLE_GZIP } ll_compress;

typedef struct {
    const char *name;      /* "hook_resid_post" (the dataset /acts/<name>) */
    int n_layers;          /* layers stored */
    const int32_t *layers; /* model layer index of each stored layer */
    int width;             /* floats per row */
    const char *definition; /* what the point is, in words (written as an attribute) */
} ll_store_point;

typedef struct {
    const char *key, *value;
} ll_store_attr;

typedef struct {
    int64_t seqs, rows, tokens, id_bytes, meta_bytes;
} ll_store_progress;

typedef struct {
    ll_dtype dtype;        /* LL_F32, LL_F16 or LL_BF16 */
    ll_compress compress;
    int gzip_level;        /* 1..9; 0 means 4 */
    int n_points;
    const ll_store_point *points;
    int n_attrs;           /* provenance written at creation (string attributes on /) */
    const ll_store_attr *attrs;
    int n_identity;        /* keys of attrs that must be equal for --resume to continue a file */
    const char *const *identity;
    double commit_seconds; /* flush and advance `progress` at most this often; 0 means 5 s */
    int queue_depth;       /* batches in flight to the writer; 0 means 2 */
    /* Test hook: called on the writer thread after each commit. */
    void (*on_commit)(void *user, const ll_store_progress *p);
    void *on_commit_user;
} ll_store_spec;

/* One batch of sequences, filled by the caller and written by the writer thread. */
typedef struct {
    int n_seq;
    int64_t n_tokens, n_rows;
    int64_t *seq_index;  /* [n_seq] index of each sequence in the input */
    int64_t *seq_len;    /* [n_seq] tokens per sequence */
    int64_t *seq_rows;   /* [n_seq] stored rows per sequence */
    int32_t *tokens;     /* [n_tokens] */
    int32_t *positions;  /* [n_tokens] position ids */
    int32_t *row_pos;    /* [n_rows] token index (within its sequence) of each stored row */
    int64_t *id_len, *meta_len; /* [n_seq] bytes of each id / metadata JSON in ids / meta */
    char *ids, *meta;
    void **acts;         /* per point: [n_layers][n_rows][width] elements of the store dtype */
    /* capacities (owned by the writer) */
    int cap_seq;
    int64_t cap_tokens, cap_rows;
    size_t cap_ids, cap_meta;
} ll_store_batch;

typedef struct ll_store_writer ll_store_writer;

/* Create `path`. An existing file is an error unless `force`. */
ll_status ll_store_create(ll_store_writer **out, const char *path, const ll_store_spec *spec, bool force);
/* Continue an interrupted file: checks that it was made with the same identity
 * attributes, points and dtype, drops anything written after the last commit, and
 * reports what is already there. A complete file is an error. */
ll_status ll_store_resume(ll_store_writer **out, const char *path, const ll_store_spec *spec,
                          ll_store_progress *done);
/* A free batch buffer with room for the sizes asked (waits for the writer when both
 * are in flight). Fails with the writer's error once the writer has failed. */
ll_status ll_store_batch_get(ll_store_writer *w, ll_store_batch **b, int n_seq, int64_t n_tokens,
                             int64_t n_rows, size_t id_bytes, size_t meta_bytes);
ll_status ll_store_batch_submit(ll_store_writer *w, ll_store_batch *b);
/* Finish: drain the queue and commit. complete = true also turns ids and metadata into
 * string datasets, sets complete = true and the end time; false leaves a resumable file
 * that says complete = false and why (`reason`). Frees w in every case; returns the
 * first error of the whole run. */
ll_status ll_store_close(ll_store_writer *w, bool complete, const char *reason);

/* ---- reading ---- */
typedef struct ll_store_reader ll_store_reader;

typedef struct {
    const char *name;
    int n_layers;
    const int32_t *layers;
    int width;
    ll_dtype dtype;
} ll_store_point_info;

/* Open a dump for reading. An incomplete file (interrupted, or still being written)
 * is an error unless allow_incomplete; then only its committed rows are visible. */
ll_status ll_store_open(ll_store_reader **out, const char *path, bool allow_incomplete);
void ll_store_reader_free(ll_store_reader *r);
bool ll_store_complete(const ll_store_reader *r);
int64_t ll_store_n_seq(const ll_store_reader *r);
int64_t ll_store_n_rows(const ll_store_reader *r);
int64_t ll_store_n_tokens(const ll_store_reader *r);
int ll_store_n_points(const ll_store_reader *r);
const ll_store_point_info *ll_store_point_at(const ll_store_reader *r, int i);
/* By name ("hook_resid_post", "resid_post" or "blocks.3.hook_resid_post" all find it); NULL when absent. */
const ll_store_point_info *ll_store_point_find(const ll_store_reader *r, const char *name);
/* Stored-layer slot of model layer `layer`, or -1. */
int ll_store_layer_slot(const ll_store_point_info *p, int layer);
/* Rows [row0, row0+n) of one stored layer as fp32: out [n][width]. */
ll_status ll_store_read_rows(ll_store_reader *r, const ll_store_point_info *p, int slot, int64_t row0, int64_t n,
                             float *out);
/* A 1-D integer dataset ("sequences/offsets", "rows/sequence", ...) as int64. */
ll_status ll_store_read_i64(ll_store_reader *r, const char *dataset, int64_t at, int64_t n, int64_t *out);
/* A root string attribute (malloc'd). */
ll_status ll_store_get_attr(ll_store_reader *r, const char *name, char **out);

/* Layer-major streaming for training code: every stored layer in turn, each as
 * consecutive batches of at most batch_rows rows, read chunk-aligned (the layout makes
 * each batch one sequential read). */
typedef struct ll_store_stream ll_store_stream;
typedef struct {
    int slot, layer;  /* stored slot and model layer index */
    int64_t row0, n;  /* rows [row0, row0+n) */
    const float *data; /* [n][width] fp32, valid until the next call */
} ll_store_chunk;
ll_status ll_store_stream_open(ll_store_stream **out, ll_store_reader *r, const ll_store_point_info *p,
                               int64_t batch_rows);
/* *more = false at the end. */
ll_status ll_store_stream_next(ll_store_stream *s, ll_store_chunk *c, bool *more);
void ll_store_stream_free(ll_store_stream *s);

/* ---- sharding ---- */
/* Join complete shard dumps of one input (made with --shard K/N, any order) into `out`:
 * activations become HDF5 virtual datasets over the shard files (no copy), sequence
 * and row tables are copied with their offsets rebased, so the result reads like an
 * unsharded dump. Shard paths are stored relative to out's folder. */
ll_status ll_store_merge(const char *out, const char *const *shards, int n_shards, bool force);

#endif
