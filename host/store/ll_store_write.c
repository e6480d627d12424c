/* The activation store's writer: file creation and resume, a writer thread fed
 * through a small ring of batch buffers, periodic commits, and the final touches. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/ll_progress.h"
#include "ll_h5.h"
#include "ll_store.h"
#include "ll_store_internal.h"

enum { BUF_FREE = 0, BUF_FILLING, BUF_QUEUED };

struct ll_store_writer {
    char *path;
    ll_store_spec spec;
    hid_t file, fapl;
    ll_store_files ds;
    size_t el_size;
    hid_t memtype; /* in-memory type of activations (same as the file's) */

    ll_store_progress done;  /* committed (what /progress says) */
    ll_store_progress wrote; /* written, maybe not yet committed */
    double last_commit;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int nbuf;
    ll_store_batch *bufs;
    int *state;
    int64_t n_submitted, n_written; /* batches */
    bool stop;
    ll_status err; /* first error on the writer thread */
    char errmsg[1024];
};

static ll_status now_iso(char *buf, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return LL_OK;
}

/* ---- writing one batch (writer thread) ---- */

static ll_status write_batch(ll_store_writer *w, const ll_store_batch *b) {
    ll_store_files *d = &w->ds;
    ll_store_progress *p = &w->wrote;
    LL_TRY(ll_h5_put_1d(d->tokens, H5T_NATIVE_INT32, (hsize_t)p->tokens, (hsize_t)b->n_tokens, b->tokens));
    LL_TRY(ll_h5_put_1d(d->positions, H5T_NATIVE_INT32, (hsize_t)p->tokens, (hsize_t)b->n_tokens, b->positions));
    LL_TRY(ll_h5_put_1d(d->index, H5T_NATIVE_INT64, (hsize_t)p->seqs, (hsize_t)b->n_seq, b->seq_index));
    /* offsets[s+1] for each new sequence (offsets[0] = 0 was written at creation). */
    int64_t *off = malloc((size_t)b->n_seq * 2 * sizeof *off);
    int64_t *rseq = malloc((size_t)(b->n_rows > 0 ? b->n_rows : 1) * sizeof *rseq);
    int32_t *rtok = malloc((size_t)(b->n_rows > 0 ? b->n_rows : 1) * sizeof *rtok);
    if (!off || !rseq || !rtok) {
        free(off);
        free(rseq);
        free(rtok);
        return ll_err(LL_ERR_NOMEM, "%s: batch tables", w->path);
    }
    int64_t t = p->tokens, r = p->rows, tb = 0, rb = 0;
    for (int s = 0; s < b->n_seq; s++) {
        t += b->seq_len[s];
        r += b->seq_rows[s];
        off[s] = t;
        off[b->n_seq + s] = r;
        for (int64_t k = 0; k < b->seq_rows[s]; k++, rb++) {
            rseq[rb] = p->seqs + s;
            rtok[rb] = b->tokens[tb + b->row_pos[rb]];
        }
        tb += b->seq_len[s];
    }
    ll_status st = ll_h5_put_1d(d->offsets, H5T_NATIVE_INT64, (hsize_t)p->seqs + 1, (hsize_t)b->n_seq, off);
    if (!st)
        st = ll_h5_put_1d(d->row_offsets, H5T_NATIVE_INT64, (hsize_t)p->seqs + 1, (hsize_t)b->n_seq,
                          off + b->n_seq);
    if (!st) st = ll_h5_put_1d(d->row_seq, H5T_NATIVE_INT64, (hsize_t)p->rows, (hsize_t)b->n_rows, rseq);
    if (!st) st = ll_h5_put_1d(d->row_pos, H5T_NATIVE_INT32, (hsize_t)p->rows, (hsize_t)b->n_rows, b->row_pos);
    if (!st) st = ll_h5_put_1d(d->row_tok, H5T_NATIVE_INT32, (hsize_t)p->rows, (hsize_t)b->n_rows, rtok);
    free(off);
    free(rseq);
    free(rtok);
    LL_TRY(st);
    int64_t idb = 0, mb = 0;
    for (int s = 0; s < b->n_seq; s++) {
        idb += b->id_len[s];
        mb += b->meta_len[s];
    }
    LL_TRY(ll_h5_put_1d(d->id_len, H5T_NATIVE_INT64, (hsize_t)p->seqs, (hsize_t)b->n_seq, b->id_len));
    LL_TRY(ll_h5_put_1d(d->meta_len, H5T_NATIVE_INT64, (hsize_t)p->seqs, (hsize_t)b->n_seq, b->meta_len));
    LL_TRY(ll_h5_put_1d(d->id_bytes, H5T_NATIVE_UINT8, (hsize_t)p->id_bytes, (hsize_t)idb, b->ids));
    LL_TRY(ll_h5_put_1d(d->meta_bytes, H5T_NATIVE_UINT8, (hsize_t)p->meta_bytes, (hsize_t)mb, b->meta));
    for (int i = 0; i < w->spec.n_points; i++)
        LL_TRY(ll_h5_put_rows(d->acts[i], w->memtype, (hsize_t)p->rows, (hsize_t)b->n_rows, b->acts[i]));
    p->seqs += b->n_seq;
    p->rows += b->n_rows;
    p->tokens += b->n_tokens;
    p->id_bytes += idb;
    p->meta_bytes += mb;
    return LL_OK;
}

/* Make everything written so far durable, then advance /progress: the record never
 * names data that is not on disk. */
static ll_status commit(ll_store_writer *w) {
    if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) return ll_h5_err(LL_ERR_IO, "%s: flushing", w->path);
    int64_t v[5] = {w->wrote.seqs, w->wrote.rows, w->wrote.tokens, w->wrote.id_bytes, w->wrote.meta_bytes};
    if (H5Dwrite(w->ds.progress, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
        return ll_h5_err(LL_ERR_IO, "%s: writing /progress", w->path);
    if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) return ll_h5_err(LL_ERR_IO, "%s: flushing", w->path);
    w->done = w->wrote;
    w->last_commit = ll_now();
    if (w->spec.on_commit) w->spec.on_commit(w->spec.on_commit_user, &w->done);
    return LL_OK;
}

static void *writer_main(void *arg) {
    ll_store_writer *w = arg;
    ll_h5_quiet(); /* HDF5's error stacks (and their printing) are per thread */
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->n_written == w->n_submitted && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
        if (w->n_written == w->n_submitted) break; /* stop and nothing queued */
        int i = (int)(w->n_written % w->nbuf);
        ll_store_batch *b = &w->bufs[i];
        bool failed = w->err != LL_OK;
        pthread_mutex_unlock(&w->mu);
        ll_status st = LL_OK;
        if (!failed) {
            st = write_batch(w, b);
            if (!st && ll_now() - w->last_commit >= w->spec.commit_seconds) st = commit(w);
        }
        pthread_mutex_lock(&w->mu);
        if (st && !w->err) {
            w->err = st;
            snprintf(w->errmsg, sizeof w->errmsg, "%s", ll_last_error());
        }
        w->state[i] = BUF_FREE;
        w->n_written++;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- the file ---- */

static void close_files(ll_store_writer *w) {
    ll_store_files_close(&w->ds, w->spec.n_points);
    if (w->file >= 0) H5Fclose(w->file);
    w->file = -1;
}

static void free_batch(ll_store_batch *b, int n_points) {
    free(b->seq_index);
    free(b->seq_len);
    free(b->seq_rows);
    free(b->tokens);
    free(b->positions);
    free(b->row_pos);
    free(b->id_len);
    free(b->meta_len);
    free(b->ids);
    free(b->meta);
    if (b->acts)
        for (int i = 0; i < n_points; i++) free(b->acts[i]);
    free(b->acts);
}

static void writer_free(ll_store_writer *w) {
    if (!w) return;
    close_files(w);
    if (w->fapl >= 0) H5Pclose(w->fapl);
    if (w->memtype >= 0) H5Tclose(w->memtype);
    if (w->bufs)
        for (int i = 0; i < w->nbuf; i++) free_batch(&w->bufs[i], w->spec.n_points);
    free(w->bufs);
    free(w->state);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->path);
    free(w);
}

static ll_status writer_new(ll_store_writer **out, const char *path, const ll_store_spec *spec) {
    if (spec->dtype != LL_F32 && spec->dtype != LL_F16 && spec->dtype != LL_BF16)
        return ll_err(LL_ERR_ARG, "%s: activations are stored as f32, f16 or bf16, not %s", path,
                      ll_dtype_name(spec->dtype));
    if (spec->n_points < 1) return ll_err(LL_ERR_ARG, "%s: no hook point to store", path);
    ll_store_writer *w = calloc(1, sizeof *w);
    if (!w) return ll_err(LL_ERR_NOMEM, "%s: writer", path);
    w->file = w->fapl = w->memtype = -1;
    ll_store_files_init(&w->ds);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->path = strdup(path);
    w->spec = *spec;
    if (w->spec.commit_seconds <= 0) w->spec.commit_seconds = 5;
    if (w->spec.gzip_level <= 0) w->spec.gzip_level = 4;
    w->nbuf = w->spec.queue_depth > 0 ? w->spec.queue_depth : 2;
    w->bufs = calloc((size_t)w->nbuf, sizeof *w->bufs);
    w->state = calloc((size_t)w->nbuf, sizeof *w->state);
    w->el_size = ll_dtype_size(spec->dtype);
    w->memtype = ll_h5_type(spec->dtype);
    if (!w->path || !w->bufs || !w->state) {
        writer_free(w);
        return ll_err(LL_ERR_NOMEM, "%s: writer", path);
    }
    for (int i = 0; i < w->nbuf; i++) {
        w->bufs[i].acts = calloc((size_t)spec->n_points, sizeof(void *));
        if (!w->bufs[i].acts) {
            writer_free(w);
            return ll_err(LL_ERR_NOMEM, "%s: writer", path);
        }
    }
    /* The newest file format: required for single-writer/multiple-reader mode, which is
     * what keeps the file consistent on disk at every instant of a run. */
    w->fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(w->fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    /* The chunk cache, per dataset: big enough for the partly filled chunk of every
     * stored layer (twice over), so each chunk is written once, when full or at a
     * commit, instead of each time a batch touches it. It is set on the file because
     * starting SWMR mode (and a resume) reopens the datasets with the file's defaults. */
    size_t cache = 0;
    for (int i = 0; i < spec->n_points; i++) {
        size_t c = ll_store_chunk_rows(spec->points[i].width, w->el_size) * (size_t)spec->points[i].width *
                   w->el_size * (size_t)spec->points[i].n_layers * 2;
        if (c > cache) cache = c;
    }
    H5Pset_cache(w->fapl, 0, 100003, cache + ((size_t)1 << 20), 1.0);
    *out = w;
    return LL_OK;
}

static ll_status start_streaming(ll_store_writer *w) {
    if (H5Fstart_swmr_write(w->file) < 0) return ll_h5_err(LL_ERR_IO, "%s: starting SWMR writing", w->path);
    w->last_commit = ll_now();
    if (pthread_create(&w->thread, NULL, writer_main, w))
        return ll_err(LL_ERR_NOMEM, "%s: cannot start the writer thread", w->path);
    w->thread_started = true;
    return LL_OK;
}

/* A write that failed for lack of space can leave the file shorter than the end-of-file
 * address its superblock records, and HDF5 then refuses to open it ("truncated file").
 * Nothing past the last commit is part of the dump, so growing the file back to that
 * address (a sparse tail of zeros) is all the repair it needs. Superblock versions 2
 * and 3 (what the latest format writes) hold the end-of-file address at byte 28. */
static ll_status repair_short_file(const char *path) {
    FILE *f = fopen(path, "r+b");
    if (!f) return ll_err(LL_ERR_IO, "%s: cannot open to resume: %s", path, strerror(errno));
    unsigned char sb[48];
    size_t n = fread(sb, 1, sizeof sb, f);
    ll_status st = LL_OK;
    if (n == sizeof sb && !memcmp(sb, "\x89HDF\r\n\x1a\n", 8) && sb[8] >= 2 && sb[9] == 8) {
        uint64_t base = 0, eoa = 0;
        for (int i = 7; i >= 0; i--) {
            base = base << 8 | sb[12 + i];
            eoa = eoa << 8 | sb[28 + i];
        }
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        if (size >= 0 && (uint64_t)size < base + eoa && ftruncate(fileno(f), (off_t)(base + eoa)))
            st = ll_err(LL_ERR_IO, "%s: the file ends early (a full disk?) and cannot be extended back: %s", path,
                        strerror(errno));
    }
    fclose(f);
    return st;
}

ll_status ll_store_create(ll_store_writer **out, const char *path, const ll_store_spec *spec, bool force) {
    ll_h5_quiet();
    *out = NULL;
    if (!force && access(path, F_OK) == 0)
        return ll_err(LL_ERR_ARG, "%s already exists (use --force to write over it, or --resume to continue it)",
                      path);
    ll_store_writer *w;
    LL_TRY(writer_new(&w, path, spec));
    /* A fresh name first: an old file of the same name must not be half-overwritten. */
    if (force) unlink(path);
    w->file = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, w->fapl);
    ll_status st = LL_OK;
    if (w->file < 0) {
        int e = errno;
        st = ll_h5_err(LL_ERR_IO, "%s: cannot create the file (%s)", path, e ? strerror(e) : "?");
    }
    if (!st) st = ll_store_files_create(w->file, path, spec, &w->ds);
    if (!st) {
        char t[32];
        now_iso(t, sizeof t);
        st = ll_h5_attr_str(w->file, "started_at", t);
    }
    if (!st) {
        int64_t zero = 0;
        st = ll_h5_put_1d(w->ds.offsets, H5T_NATIVE_INT64, 0, 1, &zero);
        if (!st) st = ll_h5_put_1d(w->ds.row_offsets, H5T_NATIVE_INT64, 0, 1, &zero);
    }
    if (!st) st = commit(w);
    if (!st) st = start_streaming(w);
    if (st) {
        writer_free(w);
        unlink(path); /* nothing of value was written yet */
        return st;
    }
    *out = w;
    return LL_OK;
}

ll_status ll_store_resume(ll_store_writer **out, const char *path, const ll_store_spec *spec,
                          ll_store_progress *done) {
    ll_h5_quiet();
    *out = NULL;
    if (access(path, F_OK) != 0) return ll_err(LL_ERR_IO, "%s: cannot resume: %s", path, strerror(errno));
    ll_store_writer *w;
    LL_TRY(writer_new(&w, path, spec));
    /* A run killed while writing leaves the superblock marked "open for writing";
     * clearing that mark is what h5clear -s does, through the same file-access property. */
    ll_status rst = repair_short_file(path);
    if (rst) {
        writer_free(w);
        return rst;
    }
    hid_t fapl = H5Pcopy(w->fapl);
    hbool_t clear = 1;
    H5Pset(fapl, "clear_status_flags", &clear);
    w->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    ll_status st = LL_OK;
    if (w->file < 0) st = ll_h5_err(LL_ERR_IO, "%s: cannot open to resume", path);
    bool complete = false;
    if (!st) st = ll_store_check_identity(w->file, path, spec, &complete);
    if (!st && complete)
        st = ll_err(LL_ERR_ARG, "%s is already complete: nothing to resume (use --force to write it again)", path);
    if (!st) st = ll_store_files_open(w->file, path, spec, &w->ds);
    if (!st) st = ll_store_read_progress(w->ds.progress, path, &w->done);
    if (!st) st = ll_store_files_truncate(&w->ds, spec->n_points, &w->done);
    if (!st) {
        w->wrote = w->done;
        char t[32];
        now_iso(t, sizeof t);
        int64_t n = 0;
        ll_h5_get_i64(w->file, "resumed", &n);
        ll_clear_error();
        st = ll_h5_attr_i64(w->file, "resumed", n + 1);
        if (!st) st = ll_h5_attr_str(w->file, "resumed_at", t);
    }
    if (!st) st = commit(w);
    if (!st) st = start_streaming(w);
    if (st) {
        writer_free(w);
        return st;
    }
    *done = w->done;
    *out = w;
    return LL_OK;
}

/* ---- the ring of batch buffers (caller's thread) ---- */

static int grow(void **p, size_t need, size_t el) {
    void *q = realloc(*p, need ? need * el : el);
    if (!q) return -1;
    *p = q;
    return 0;
}

static ll_status writer_error(ll_store_writer *w) {
    return ll_err(w->err, "%s", w->errmsg);
}

ll_status ll_store_batch_get(ll_store_writer *w, ll_store_batch **out, int n_seq, int64_t n_tokens,
                             int64_t n_rows, size_t id_bytes, size_t meta_bytes) {
    pthread_mutex_lock(&w->mu);
    int i = (int)(w->n_submitted % w->nbuf);
    while (w->state[i] != BUF_FREE && !w->err) pthread_cond_wait(&w->cv, &w->mu);
    if (w->err) {
        ll_status st = writer_error(w);
        pthread_mutex_unlock(&w->mu);
        return st;
    }
    w->state[i] = BUF_FILLING;
    pthread_mutex_unlock(&w->mu);
    ll_store_batch *b = &w->bufs[i];
    int fail = 0;
    if (n_seq > b->cap_seq) {
        fail |= grow((void **)&b->seq_index, (size_t)n_seq, 8) | grow((void **)&b->seq_len, (size_t)n_seq, 8) |
                grow((void **)&b->seq_rows, (size_t)n_seq, 8) | grow((void **)&b->id_len, (size_t)n_seq, 8) |
                grow((void **)&b->meta_len, (size_t)n_seq, 8);
        if (!fail) b->cap_seq = n_seq;
    }
    if (n_tokens > b->cap_tokens) {
        fail |= grow((void **)&b->tokens, (size_t)n_tokens, 4) | grow((void **)&b->positions, (size_t)n_tokens, 4);
        if (!fail) b->cap_tokens = n_tokens;
    }
    if (n_rows > b->cap_rows) {
        fail |= grow((void **)&b->row_pos, (size_t)n_rows, 4);
        for (int p = 0; p < w->spec.n_points; p++)
            fail |= grow(&b->acts[p],
                         (size_t)n_rows * (size_t)w->spec.points[p].n_layers * (size_t)w->spec.points[p].width,
                         w->el_size);
        if (!fail) b->cap_rows = n_rows;
    }
    if (id_bytes > b->cap_ids || !b->ids) {
        fail |= grow((void **)&b->ids, id_bytes, 1);
        if (!fail) b->cap_ids = id_bytes;
    }
    if (meta_bytes > b->cap_meta || !b->meta) {
        fail |= grow((void **)&b->meta, meta_bytes, 1);
        if (!fail) b->cap_meta = meta_bytes;
    }
    if (fail) {
        pthread_mutex_lock(&w->mu);
        w->state[i] = BUF_FREE;
        pthread_mutex_unlock(&w->mu);
        return ll_err(LL_ERR_NOMEM, "%s: no memory for a batch of %lld rows", w->path, (long long)n_rows);
    }
    b->n_seq = 0;
    b->n_tokens = b->n_rows = 0;
    *out = b;
    return LL_OK;
}

ll_status ll_store_batch_submit(ll_store_writer *w, ll_store_batch *b) {
    pthread_mutex_lock(&w->mu);
    int i = (int)(w->n_submitted % w->nbuf);
    if (b != &w->bufs[i] || w->state[i] != BUF_FILLING) {
        pthread_mutex_unlock(&w->mu);
        return ll_err(LL_ERR_ARG, "%s: batch submitted out of order", w->path);
    }
    if (w->err) {
        w->state[i] = BUF_FREE;
        ll_status st = writer_error(w);
        pthread_mutex_unlock(&w->mu);
        return st;
    }
    w->state[i] = BUF_QUEUED;
    w->n_submitted++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return LL_OK;
}

/* ---- the end ---- */

ll_status ll_store_close(ll_store_writer *w, bool complete, const char *reason) {
    if (!w) return LL_OK;
    if (w->thread_started) {
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
        w->thread_started = false;
    }
    ll_status st = w->err ? writer_error(w) : LL_OK;
    if (!st && w->file >= 0) st = commit(w);
    /* Leave SWMR mode by closing; reopen plainly for what SWMR forbids (new datasets,
     * attributes). If the run failed, the committed part stays resumable as it is. */
    close_files(w);
    if (st) {
        /* After a failed write HDF5's view of the file cannot be trusted, so it is not
         * reopened: /progress already says what is complete, and complete = false. */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", ll_last_error());
        writer_free(w);
        return ll_err(st, "%s", msg);
    }
    w->file = H5Fopen(w->path, H5F_ACC_RDWR, w->fapl);
    if (w->file < 0) st = ll_h5_err(LL_ERR_IO, "%s: reopening to finish", w->path);
    char t[32];
    now_iso(t, sizeof t);
    /* Cut the activations back to the rows that exist (they grow by doubling). */
    if (!st) {
        ll_store_files d;
        ll_store_files_init(&d);
        st = ll_store_files_open(w->file, w->path, &w->spec, &d);
        if (!st) st = ll_store_files_truncate(&d, w->spec.n_points, &w->done);
        ll_store_files_close(&d, w->spec.n_points);
    }
    if (!st && complete) st = ll_store_write_strings(w->file, w->path, &w->done);
    if (!st) st = ll_h5_attr_i64(w->file, "n_sequences", w->done.seqs);
    if (!st) st = ll_h5_attr_i64(w->file, "n_rows", w->done.rows);
    if (!st) st = ll_h5_attr_i64(w->file, "n_tokens", w->done.tokens);
    if (!st) st = ll_h5_attr_str(w->file, complete ? "finished_at" : "stopped_at", t);
    if (!st && !complete) st = ll_h5_attr_str(w->file, "interrupted", reason ? reason : "stopped");
    if (!st && complete && H5Aexists(w->file, "interrupted") > 0) H5Adelete(w->file, "interrupted");
    /* Last of all, and only when everything before it worked. */
    if (!st) st = ll_h5_attr_bool(w->file, "complete", complete);
    if (w->file >= 0 && H5Fclose(w->file) < 0 && !st) st = ll_h5_err(LL_ERR_IO, "%s: closing", w->path);
    w->file = -1;
    writer_free(w);
    return st;
}
