/* The datasets of an activation store file: creating them, opening them again for a
 * resume, checking a file belongs to the same run, cutting back uncommitted data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_version.h"
#include "ll_h5.h"
#include "ll_store_internal.h"

void ll_store_files_init(ll_store_files *d) {
    memset(d, 0, sizeof *d);
    hid_t *h = (hid_t *)d;
    for (size_t i = 0; i < sizeof *d / sizeof(hid_t); i++) h[i] = -1;
}

void ll_store_files_close(ll_store_files *d, int n_points) {
    hid_t *h = (hid_t *)d;
    for (size_t i = 0; i < sizeof *d / sizeof(hid_t); i++)
        if (h[i] >= 0) H5Dclose(h[i]);
    ll_store_files_init(d);
    (void)n_points;
}

/* 1-D tables: chunks of 64 Ki elements keep per-batch appends cheap and whole-table
 * reads fast. */
#define TABLE_CHUNK 65536

size_t ll_store_chunk_rows(int width, size_t el) {
    /* About 1 MiB per chunk: one chunk is one layer's slab of consecutive rows, so
     * reading one layer of many rows (what probe and lens training do) is sequential. */
    size_t r = ((size_t)1 << 20) / ((size_t)width * el);
    if (r < 1) r = 1;
    if (r > 65536) r = 65536;
    return r;
}

ll_status ll_store_files_create(hid_t file, const char *path, const ll_store_spec *spec, ll_store_files *d) {
    if (spec->n_points > LL_STORE_MAX_POINTS)
        return ll_err(LL_ERR_ARG, "%s: at most %d hook points per dump, asked for %d", path, LL_STORE_MAX_POINTS,
                      spec->n_points);
    hid_t g = H5Gcreate2(file, "sequences", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t gr = H5Gcreate2(file, "rows", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t ga = H5Gcreate2(file, "acts", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ll_status st = (g < 0 || gr < 0 || ga < 0) ? ll_h5_err(LL_ERR_IO, "%s: creating groups", path) : LL_OK;
    hid_t i32 = H5T_STD_I32LE, i64 = H5T_STD_I64LE, u8 = H5T_STD_U8LE;
    if (!st) st = ll_h5_create_1d(g, "tokens", i32, TABLE_CHUNK, &d->tokens);
    if (!st) st = ll_h5_create_1d(g, "positions", i32, TABLE_CHUNK, &d->positions);
    if (!st) st = ll_h5_create_1d(g, "offsets", i64, TABLE_CHUNK, &d->offsets);
    if (!st) st = ll_h5_create_1d(g, "row_offsets", i64, TABLE_CHUNK, &d->row_offsets);
    if (!st) st = ll_h5_create_1d(g, "index", i64, TABLE_CHUNK, &d->index);
    if (!st) st = ll_h5_create_1d(g, "_id_len", i64, TABLE_CHUNK, &d->id_len);
    if (!st) st = ll_h5_create_1d(g, "_meta_len", i64, TABLE_CHUNK, &d->meta_len);
    if (!st) st = ll_h5_create_1d(g, "_id_bytes", u8, TABLE_CHUNK, &d->id_bytes);
    if (!st) st = ll_h5_create_1d(g, "_meta_bytes", u8, TABLE_CHUNK, &d->meta_bytes);
    if (!st) st = ll_h5_create_1d(gr, "sequence", i64, TABLE_CHUNK, &d->row_seq);
    if (!st) st = ll_h5_create_1d(gr, "position", i32, TABLE_CHUNK, &d->row_pos);
    if (!st) st = ll_h5_create_1d(gr, "token", i32, TABLE_CHUNK, &d->row_tok);
    if (!st) {
        hsize_t five = 5;
        hid_t s = H5Screate_simple(1, &five, NULL);
        d->progress = H5Dcreate2(file, "progress", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Sclose(s);
        if (d->progress < 0) st = ll_h5_err(LL_ERR_IO, "%s: creating /progress", path);
        if (!st)
            st = ll_h5_attr_str(d->progress, "meaning",
                                "committed: sequences, rows, tokens, id bytes, metadata bytes; data beyond these "
                                "counts is not part of the dump");
    }
    hid_t ft = ll_h5_type(spec->dtype);
    for (int i = 0; !st && i < spec->n_points; i++) {
        const ll_store_point *p = &spec->points[i];
        int level = spec->compress == LL_COMPRESS_NONE ? 0 : (spec->gzip_level > 0 ? spec->gzip_level : 4);
        st = ll_h5_create_rows(ga, p->name, ft, (hsize_t)p->n_layers, (hsize_t)p->width,
                               ll_store_chunk_rows(p->width, ll_dtype_size(spec->dtype)), level,
                               spec->compress == LL_COMPRESS_SHUFFLE_GZIP, &d->acts[i]);
        if (!st) st = ll_h5_attr_i32s(d->acts[i], "layers", p->layers, p->n_layers);
        if (!st) st = ll_h5_attr_str(d->acts[i], "point", p->name);
        if (!st) st = ll_h5_attr_str(d->acts[i], "dtype", ll_dtype_name(spec->dtype));
        if (!st) st = ll_h5_attr_str(d->acts[i], "definition", p->definition ? p->definition : "");
        if (!st && spec->dtype == LL_BF16)
            st = ll_h5_attr_str(d->acts[i], "storage",
                                "bfloat16 bit patterns in uint16: widen with (x.astype(uint32) << 16).view(float32)");
    }
    H5Tclose(ft);
    if (!st) st = ll_h5_attr_str(file, "format", LL_STORE_FORMAT);
    if (!st) st = ll_h5_attr_i64(file, "format_version", LL_STORE_FORMAT_VERSION);
    if (!st) st = ll_h5_attr_str(file, "layerlab_version", LL_VERSION);
    if (!st) st = ll_h5_attr_str(file, "dtype", ll_dtype_name(spec->dtype));
    if (!st)
        st = ll_h5_attr_str(file, "compression",
                            spec->compress == LL_COMPRESS_NONE ? "none"
                            : spec->compress == LL_COMPRESS_GZIP ? "gzip"
                                                                 : "shuffle+gzip");
    for (int i = 0; !st && i < spec->n_attrs; i++) st = ll_h5_attr_str(file, spec->attrs[i].key, spec->attrs[i].value);
    if (!st) st = ll_h5_attr_bool(file, "complete", false);
    if (g >= 0) H5Gclose(g);
    if (gr >= 0) H5Gclose(gr);
    if (ga >= 0) H5Gclose(ga);
    return st;
}

static ll_status open_ds(hid_t file, const char *path, const char *name, hid_t *out) {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
        return ll_err(LL_ERR_FORMAT, "%s: dataset /%s is missing (not a layerlab dump?)", path, name);
    *out = H5Dopen2(file, name, H5P_DEFAULT);
    return *out < 0 ? ll_h5_err(LL_ERR_FORMAT, "%s: opening /%s", path, name) : LL_OK;
}

ll_status ll_store_files_open(hid_t file, const char *path, const ll_store_spec *spec, ll_store_files *d) {
    static const char *names[] = {"sequences/tokens",   "sequences/positions", "sequences/offsets",
                                  "sequences/row_offsets", "sequences/index", "rows/sequence",
                                  "rows/position",      "rows/token",          "sequences/_id_len",
                                  "sequences/_meta_len", "sequences/_id_bytes", "sequences/_meta_bytes",
                                  "progress"};
    hid_t *slots[] = {&d->tokens,  &d->positions, &d->offsets,  &d->row_offsets, &d->index,
                      &d->row_seq, &d->row_pos,   &d->row_tok,  &d->id_len,      &d->meta_len,
                      &d->id_bytes, &d->meta_bytes, &d->progress};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) LL_TRY(open_ds(file, path, names[i], slots[i]));
    for (int i = 0; i < spec->n_points; i++) {
        char nm[256];
        snprintf(nm, sizeof nm, "acts/%s", spec->points[i].name);
        if (H5Lexists(file, "acts", H5P_DEFAULT) <= 0 || H5Lexists(file, nm, H5P_DEFAULT) <= 0)
            return ll_err(LL_ERR_ARG, "%s: cannot resume: the file has no /%s (it was dumped with other --points)",
                          path, nm);
        LL_TRY(open_ds(file, path, nm, &d->acts[i]));
        int32_t *layers;
        int n;
        LL_TRY(ll_h5_get_i32s(d->acts[i], "layers", &layers, &n));
        bool same = n == spec->points[i].n_layers;
        for (int k = 0; same && k < n; k++) same = layers[k] == spec->points[i].layers[k];
        free(layers);
        if (!same) return ll_err(LL_ERR_ARG, "%s: cannot resume: /%s holds other layers than --layers asks for", path, nm);
        if ((int)ll_h5_extent(d->acts[i], 2) != spec->points[i].width)
            return ll_err(LL_ERR_ARG, "%s: cannot resume: /%s has rows of %d, the model gives %d", path, nm,
                          (int)ll_h5_extent(d->acts[i], 2), spec->points[i].width);
    }
    return LL_OK;
}

ll_status ll_store_check_identity(hid_t file, const char *path, const ll_store_spec *spec, bool *complete) {
    char *fmt = NULL;
    if (ll_h5_get_str(file, "format", &fmt) || strcmp(fmt, LL_STORE_FORMAT)) {
        free(fmt);
        return ll_err(LL_ERR_FORMAT, "%s: not a layerlab activation dump (attribute \"format\" is not \"%s\")", path,
                      LL_STORE_FORMAT);
    }
    free(fmt);
    LL_TRY(ll_h5_get_bool(file, "complete", complete));
    char *dt = NULL;
    LL_TRY(ll_h5_get_str(file, "dtype", &dt));
    bool same = !strcmp(dt, ll_dtype_name(spec->dtype));
    if (!same) {
        ll_status st = ll_err(LL_ERR_ARG, "%s: cannot resume: the file holds %s, --dtype asks for %s", path, dt,
                              ll_dtype_name(spec->dtype));
        free(dt);
        return st;
    }
    free(dt);
    for (int i = 0; i < spec->n_identity; i++) {
        const char *key = spec->identity[i], *want = NULL;
        for (int k = 0; k < spec->n_attrs; k++)
            if (!strcmp(spec->attrs[k].key, key)) want = spec->attrs[k].value;
        char *have = NULL;
        ll_status st = ll_h5_get_str(file, key, &have);
        if (st) return ll_err_prefix(st, "%s: cannot resume: ", path);
        if (want && strcmp(have, want)) {
            st = ll_err(LL_ERR_ARG, "%s: cannot resume: %s differs: the file says \"%.200s\", this run \"%.200s\"",
                        path, key, have, want);
            free(have);
            return st;
        }
        free(have);
    }
    return LL_OK;
}

ll_status ll_store_read_progress(hid_t progress, const char *path, ll_store_progress *p) {
    int64_t v[5];
    if (H5Dread(progress, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
        return ll_h5_err(LL_ERR_FORMAT, "%s: reading /progress", path);
    for (int i = 0; i < 5; i++)
        if (v[i] < 0) return ll_err(LL_ERR_FORMAT, "%s: /progress[%d] is negative (%lld)", path, i, (long long)v[i]);
    *p = (ll_store_progress){v[0], v[1], v[2], v[3], v[4]};
    return LL_OK;
}

ll_status ll_store_files_truncate(ll_store_files *d, int n_points, const ll_store_progress *p) {
    LL_TRY(ll_h5_truncate(d->tokens, (hsize_t)p->tokens));
    LL_TRY(ll_h5_truncate(d->positions, (hsize_t)p->tokens));
    LL_TRY(ll_h5_truncate(d->offsets, (hsize_t)p->seqs + 1));
    LL_TRY(ll_h5_truncate(d->row_offsets, (hsize_t)p->seqs + 1));
    LL_TRY(ll_h5_truncate(d->index, (hsize_t)p->seqs));
    LL_TRY(ll_h5_truncate(d->id_len, (hsize_t)p->seqs));
    LL_TRY(ll_h5_truncate(d->meta_len, (hsize_t)p->seqs));
    LL_TRY(ll_h5_truncate(d->id_bytes, (hsize_t)p->id_bytes));
    LL_TRY(ll_h5_truncate(d->meta_bytes, (hsize_t)p->meta_bytes));
    LL_TRY(ll_h5_truncate(d->row_seq, (hsize_t)p->rows));
    LL_TRY(ll_h5_truncate(d->row_pos, (hsize_t)p->rows));
    LL_TRY(ll_h5_truncate(d->row_tok, (hsize_t)p->rows));
    for (int i = 0; i < n_points; i++) LL_TRY(ll_h5_truncate(d->acts[i], (hsize_t)p->rows));
    return LL_OK;
}

/* One string dataset from a byte table and its per-sequence lengths, in slices so a
 * dump of millions of prompts needs no more memory than one slice. */
static ll_status strings_from_bytes(hid_t g, const char *path, const char *len_name, const char *bytes_name,
                                    const char *out_name, int64_t n) {
    hid_t dl = H5Dopen2(g, len_name, H5P_DEFAULT), db = H5Dopen2(g, bytes_name, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t out = -1;
    ll_status st = (dl < 0 || db < 0) ? ll_h5_err(LL_ERR_FORMAT, "%s: opening %s", path, bytes_name) : LL_OK;
    if (!st) st = ll_h5_create_1d(g, out_name, t, 4096, &out);
    enum { SLICE = 65536 };
    int64_t *len = malloc(SLICE * sizeof *len);
    char **ptr = malloc(SLICE * sizeof *ptr);
    char *buf = NULL;
    if (!st && (!len || !ptr)) st = ll_err(LL_ERR_NOMEM, "%s: strings", path);
    int64_t at_bytes = 0;
    for (int64_t s0 = 0; !st && s0 < n; s0 += SLICE) {
        int64_t cnt = n - s0 < SLICE ? n - s0 : SLICE, total = 0;
        st = ll_h5_get_1d(dl, H5T_NATIVE_INT64, (hsize_t)s0, (hsize_t)cnt, len);
        for (int64_t i = 0; !st && i < cnt; i++) total += len[i] + 1;
        char *nb = st ? NULL : realloc(buf, (size_t)total + 1);
        if (!st && !nb) st = ll_err(LL_ERR_NOMEM, "%s: strings", path);
        if (st) break;
        buf = nb;
        /* Read the bytes packed, then spread them out with NUL terminators. */
        int64_t packed = total - cnt;
        st = ll_h5_get_1d(db, H5T_NATIVE_UINT8, (hsize_t)at_bytes, (hsize_t)packed, buf + cnt);
        if (st) break;
        char *dst = buf;
        const char *src = buf + cnt;
        for (int64_t i = 0; i < cnt; i++) {
            memmove(dst, src, (size_t)len[i]);
            dst[len[i]] = 0;
            ptr[i] = dst;
            dst += len[i] + 1;
            src += len[i];
        }
        at_bytes += packed;
        st = ll_h5_put_1d(out, t, (hsize_t)s0, (hsize_t)cnt, ptr);
    }
    free(len);
    free(ptr);
    free(buf);
    H5Tclose(t);
    if (out >= 0) H5Dclose(out);
    if (dl >= 0) H5Dclose(dl);
    if (db >= 0) H5Dclose(db);
    if (!st && (H5Ldelete(g, len_name, H5P_DEFAULT) < 0 || H5Ldelete(g, bytes_name, H5P_DEFAULT) < 0))
        st = ll_h5_err(LL_ERR_IO, "%s: removing %s", path, bytes_name);
    return st;
}

ll_status ll_store_write_strings(hid_t file, const char *path, const ll_store_progress *p) {
    hid_t g = H5Gopen2(file, "sequences", H5P_DEFAULT);
    if (g < 0) return ll_h5_err(LL_ERR_FORMAT, "%s: opening /sequences", path);
    ll_status st = strings_from_bytes(g, path, "_id_len", "_id_bytes", "ids", p->seqs);
    if (!st) st = strings_from_bytes(g, path, "_meta_len", "_meta_bytes", "metadata", p->seqs);
    H5Gclose(g);
    return st;
}
