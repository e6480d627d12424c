/* Reading a dump back: what it holds, rows of one layer as fp32, integer tables, and
 * layer-major streaming for lens and probe training. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_h5.h"
#include "ll_store.h"
#include "ll_store_internal.h"
#include "model/ll_hooks.h"

typedef struct {
    ll_store_point_info info;
    char *name;
    int32_t *layers;
    hid_t ds;
} reader_point;

struct ll_store_reader {
    char *path;
    hid_t file;
    bool complete;
    ll_store_progress p;
    int n_points;
    reader_point pts[LL_STORE_MAX_POINTS];
    void *scratch;
    size_t scratch_cap;
};

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    ll_store_reader *r = data;
    (void)info;
    if (r->n_points >= LL_STORE_MAX_POINTS) return 0;
    reader_point *p = &r->pts[r->n_points];
    p->ds = H5Dopen2(g, name, H5P_DEFAULT);
    if (p->ds < 0) return -1;
    p->name = strdup(name);
    r->n_points++;
    return 0;
}

void ll_store_reader_free(ll_store_reader *r) {
    if (!r) return;
    for (int i = 0; i < r->n_points; i++) {
        if (r->pts[i].ds >= 0) H5Dclose(r->pts[i].ds);
        free(r->pts[i].name);
        free(r->pts[i].layers);
    }
    if (r->file >= 0) H5Fclose(r->file);
    free(r->scratch);
    free(r->path);
    free(r);
}

static ll_status load_point(ll_store_reader *r, reader_point *p) {
    int n;
    LL_TRY(ll_h5_get_i32s(p->ds, "layers", &p->layers, &n));
    char *dt = NULL;
    LL_TRY(ll_h5_get_str(p->ds, "dtype", &dt));
    ll_dtype t = !strcmp(dt, "F32") ? LL_F32 : !strcmp(dt, "F16") ? LL_F16 : !strcmp(dt, "BF16") ? LL_BF16 : LL_DTYPE_COUNT;
    ll_status st = LL_OK;
    if (t == LL_DTYPE_COUNT)
        st = ll_err(LL_ERR_FORMAT, "%s: /acts/%s: dtype \"%s\" is not F32, F16 or BF16", r->path, p->name, dt);
    free(dt);
    LL_TRY(st);
    if ((int)ll_h5_extent(p->ds, 0) != n)
        return ll_err(LL_ERR_FORMAT, "%s: /acts/%s has %d layers but its \"layers\" attribute lists %d", r->path,
                      p->name, (int)ll_h5_extent(p->ds, 0), n);
    if ((int64_t)ll_h5_extent(p->ds, 1) < r->p.rows)
        return ll_err(LL_ERR_FORMAT, "%s: /acts/%s has %lld rows, /progress says %lld", r->path, p->name,
                      (long long)ll_h5_extent(p->ds, 1), (long long)r->p.rows);
    p->info = (ll_store_point_info){.name = p->name, .n_layers = n, .layers = p->layers,
                                    .width = (int)ll_h5_extent(p->ds, 2), .dtype = t};
    return LL_OK;
}

ll_status ll_store_open(ll_store_reader **out, const char *path, bool allow_incomplete) {
    ll_h5_quiet();
    *out = NULL;
    ll_store_reader *r = calloc(1, sizeof *r);
    if (!r) return ll_err(LL_ERR_NOMEM, "%s", path);
    r->path = strdup(path);
    for (int i = 0; i < LL_STORE_MAX_POINTS; i++) r->pts[i].ds = -1;
    r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    /* A file still being written, or left by a killed run, is marked open for writing:
     * single-writer/multiple-reader mode reads it as of its last flush. */
    if (r->file < 0 && allow_incomplete) {
        H5Eclear2(H5E_DEFAULT);
        r->file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    }
    ll_status st = LL_OK;
    if (r->file < 0) {
        st = ll_h5_err(LL_ERR_IO, "%s: cannot open as HDF5", path);
        if (strstr(ll_last_error(), "truncated file"))
            st = ll_err_prefix(st, "(a write failed, e.g. on a full disk: 'layerlab dump --resume' repairs and "
                                   "continues it) ");
    }
    char *fmt = NULL;
    if (!st && (ll_h5_get_str(r->file, "format", &fmt) || strcmp(fmt, LL_STORE_FORMAT)))
        st = ll_err(LL_ERR_FORMAT, "%s: not a layerlab activation dump (attribute \"format\" is not \"%s\")", path,
                    LL_STORE_FORMAT);
    free(fmt);
    if (!st) st = ll_h5_get_bool(r->file, "complete", &r->complete);
    if (!st && !r->complete && !allow_incomplete)
        st = ll_err(LL_ERR_ARG, "%s: the dump is not complete (interrupted or still running); resume it with "
                                "layerlab dump --resume, or read its committed part explicitly", path);
    if (!st) {
        hid_t pr = H5Dopen2(r->file, "progress", H5P_DEFAULT);
        st = pr < 0 ? ll_h5_err(LL_ERR_FORMAT, "%s: /progress is missing", path) : ll_store_read_progress(pr, path, &r->p);
        if (pr >= 0) H5Dclose(pr);
    }
    if (!st) {
        hid_t g = H5Gopen2(r->file, "acts", H5P_DEFAULT);
        if (g < 0) st = ll_h5_err(LL_ERR_FORMAT, "%s: group /acts is missing", path);
        else {
            if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, list_cb, r) < 0)
                st = ll_h5_err(LL_ERR_FORMAT, "%s: listing /acts", path);
            H5Gclose(g);
        }
    }
    for (int i = 0; !st && i < r->n_points; i++) st = load_point(r, &r->pts[i]);
    if (st) {
        ll_store_reader_free(r);
        return st;
    }
    *out = r;
    return LL_OK;
}

bool ll_store_complete(const ll_store_reader *r) { return r->complete; }
int64_t ll_store_n_seq(const ll_store_reader *r) { return r->p.seqs; }
int64_t ll_store_n_rows(const ll_store_reader *r) { return r->p.rows; }
int64_t ll_store_n_tokens(const ll_store_reader *r) { return r->p.tokens; }
int ll_store_n_points(const ll_store_reader *r) { return r->n_points; }
const ll_store_point_info *ll_store_point_at(const ll_store_reader *r, int i) {
    return i >= 0 && i < r->n_points ? &r->pts[i].info : NULL;
}

const ll_store_point_info *ll_store_point_find(const ll_store_reader *r, const char *name) {
    for (int i = 0; i < r->n_points; i++)
        if (!strcmp(r->pts[i].name, name)) return &r->pts[i].info;
    ll_hook_point hp;
    int layer;
    if (ll_hook_parse(name, &hp, &layer)) {
        ll_clear_error();
        return NULL;
    }
    const char *canon = ll_hook_name(hp);
    for (int i = 0; i < r->n_points; i++)
        if (!strcmp(r->pts[i].name, canon)) return &r->pts[i].info;
    return NULL;
}

int ll_store_layer_slot(const ll_store_point_info *p, int layer) {
    for (int i = 0; i < p->n_layers; i++)
        if (p->layers[i] == layer) return i;
    return -1;
}

static reader_point *owner(ll_store_reader *r, const ll_store_point_info *p) {
    for (int i = 0; i < r->n_points; i++)
        if (&r->pts[i].info == p) return &r->pts[i];
    return NULL;
}

ll_status ll_store_read_rows(ll_store_reader *r, const ll_store_point_info *p, int slot, int64_t row0, int64_t n,
                             float *out) {
    reader_point *rp = owner(r, p);
    if (!rp) return ll_err(LL_ERR_ARG, "%s: point info does not belong to this reader", r->path);
    if (slot < 0 || slot >= p->n_layers)
        return ll_err(LL_ERR_ARG, "%s: /acts/%s: layer slot %d out of range [0, %d)", r->path, p->name, slot,
                      p->n_layers);
    if (row0 < 0 || n < 0 || row0 + n > r->p.rows)
        return ll_err(LL_ERR_ARG, "%s: /acts/%s: rows [%lld, %lld) outside the %lld rows stored", r->path, p->name,
                      (long long)row0, (long long)(row0 + n), (long long)r->p.rows);
    if (n == 0) return LL_OK;
    size_t cnt = (size_t)n * (size_t)p->width;
    void *dst = out;
    hid_t mt = H5T_NATIVE_FLOAT;
    if (p->dtype != LL_F32) {
        if (r->scratch_cap < cnt * 2) {
            void *s = realloc(r->scratch, cnt * 2);
            if (!s) return ll_err(LL_ERR_NOMEM, "%s: reading %lld rows", r->path, (long long)n);
            r->scratch = s;
            r->scratch_cap = cnt * 2;
        }
        dst = r->scratch;
        mt = H5T_NATIVE_UINT16; /* the bit patterns, widened below */
    }
    hsize_t start[3] = {(hsize_t)slot, (hsize_t)row0, 0}, count[3] = {1, (hsize_t)n, (hsize_t)p->width};
    hid_t fs = H5Dget_space(rp->ds);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(3, count, NULL);
    /* For f16 files read the raw 16 bits: tell HDF5 the memory type is the file type. */
    hid_t ft = p->dtype == LL_F16 ? H5Dget_type(rp->ds) : -1;
    herr_t e = H5Dread(rp->ds, ft >= 0 ? ft : mt, ms, fs, H5P_DEFAULT, dst);
    if (ft >= 0) H5Tclose(ft);
    H5Sclose(ms);
    H5Sclose(fs);
    if (e < 0) return ll_h5_err(LL_ERR_IO, "%s: reading /acts/%s", r->path, p->name);
    if (p->dtype == LL_F16) {
        const uint16_t *h = r->scratch;
        for (size_t i = 0; i < cnt; i++) out[i] = ll_f16_to_f32(h[i]);
    } else if (p->dtype == LL_BF16) {
        const uint16_t *h = r->scratch;
        for (size_t i = 0; i < cnt; i++) out[i] = ll_bf16_to_f32(h[i]);
    }
    return LL_OK;
}

ll_status ll_store_read_i64(ll_store_reader *r, const char *dataset, int64_t at, int64_t n, int64_t *out) {
    if (H5Lexists(r->file, dataset, H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return ll_err(LL_ERR_MISSING, "%s: no dataset /%s", r->path, dataset);
    }
    hid_t ds = H5Dopen2(r->file, dataset, H5P_DEFAULT);
    if (ds < 0) return ll_h5_err(LL_ERR_FORMAT, "%s: opening /%s", r->path, dataset);
    hsize_t have = ll_h5_extent(ds, 0);
    ll_status st = LL_OK;
    if (at < 0 || n < 0 || (hsize_t)(at + n) > have)
        st = ll_err(LL_ERR_ARG, "%s: /%s: elements [%lld, %lld) outside its %llu", r->path, dataset, (long long)at,
                    (long long)(at + n), (unsigned long long)have);
    else st = ll_h5_get_1d(ds, H5T_NATIVE_INT64, (hsize_t)at, (hsize_t)n, out);
    H5Dclose(ds);
    return st;
}

ll_status ll_store_get_attr(ll_store_reader *r, const char *name, char **out) {
    ll_status st = ll_h5_get_str(r->file, name, out);
    return st ? ll_err_prefix(st, "%s: ", r->path) : LL_OK;
}

struct ll_store_stream {
    ll_store_reader *r;
    const ll_store_point_info *p;
    int64_t batch, row;
    int slot;
    float *buf;
};

ll_status ll_store_stream_open(ll_store_stream **out, ll_store_reader *r, const ll_store_point_info *p,
                               int64_t batch_rows) {
    if (!owner(r, p)) return ll_err(LL_ERR_ARG, "%s: point info does not belong to this reader", r->path);
    if (batch_rows < 1) return ll_err(LL_ERR_ARG, "%s: batch_rows must be positive, got %lld", r->path, (long long)batch_rows);
    ll_store_stream *s = calloc(1, sizeof *s);
    if (s) s->buf = malloc((size_t)batch_rows * (size_t)p->width * sizeof(float));
    if (!s || !s->buf) {
        free(s);
        return ll_err(LL_ERR_NOMEM, "%s: stream of %lld rows", r->path, (long long)batch_rows);
    }
    s->r = r;
    s->p = p;
    s->batch = batch_rows;
    *out = s;
    return LL_OK;
}

ll_status ll_store_stream_next(ll_store_stream *s, ll_store_chunk *c, bool *more) {
    int64_t rows = s->r->p.rows;
    if (s->row >= rows) {
        s->row = 0;
        s->slot++;
    }
    if (s->slot >= s->p->n_layers || rows == 0) {
        *more = false;
        return LL_OK;
    }
    int64_t n = rows - s->row < s->batch ? rows - s->row : s->batch;
    LL_TRY(ll_store_read_rows(s->r, s->p, s->slot, s->row, n, s->buf));
    *c = (ll_store_chunk){.slot = s->slot, .layer = s->p->layers[s->slot], .row0 = s->row, .n = n, .data = s->buf};
    s->row += n;
    *more = true;
    return LL_OK;
}

void ll_store_stream_free(ll_store_stream *s) {
    if (!s) return;
    free(s->buf);
    free(s);
}
