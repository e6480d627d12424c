/* Joining the shards of a --shard K/N dump. Activations stay where they are: each
 * /acts/<point> of the merged file is a virtual dataset whose row ranges map onto the
 * shards' datasets, so merging terabytes costs nothing. The sequence and row tables
 * are small by comparison and are copied, with offsets and sequence numbers rebased. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ll_h5.h"
#include "ll_store.h"
#include "ll_store_internal.h"

/* Attributes that say which run produced a shard: all shards of one dump share them. */
static const char *same_attrs[] = {"weights_hash", "tokenizer_hash", "input_hash", "bos_policy", "layers",
                                   "positions",    "hook_points",    "dtype",      "n_input_records"};

typedef struct {
    const char *path;
    ll_store_reader *r;
    hid_t f;
    int k, n;
} shard;

/* The path of `target` as seen from the folder holding `from_file`. */
static void rel_path(const char *from_file, const char *target, char *out, size_t n) {
    char a[PATH_MAX], b[PATH_MAX];
    char *dir = strdup(from_file);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash) *slash = 0;
    const char *d = slash ? (dir[0] ? dir : "/") : ".";
    if (!dir || !realpath(d, a) || !realpath(target, b)) {
        snprintf(out, n, "%s", target);
        free(dir);
        return;
    }
    free(dir);
    /* Common leading folders, then one ".." per remaining folder of a. */
    size_t i = 0, last = 0;
    while (a[i] && a[i] == b[i]) {
        if (a[i] == '/') last = i;
        i++;
    }
    if (!a[i] && b[i] == '/') last = i;
    out[0] = 0;
    for (const char *p = a + last; *p; p++)
        if (*p == '/') strncat(out, "../", n - strlen(out) - 1);
    strncat(out, b + last + 1, n - strlen(out) - 1);
}

static herr_t copy_attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    hid_t dst = *(hid_t *)data;
    if (!strcmp(name, "complete")) return 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    hid_t mt = H5Tget_native_type(t, H5T_DIR_ASCEND);
    size_t sz = H5Tget_size(mt) * (size_t)H5Sget_simple_extent_npoints(s);
    void *buf = calloc(1, sz + 8);
    herr_t e = -1;
    if (buf && H5Aread(a, mt, buf) >= 0) {
        if (H5Aexists(dst, name) > 0) H5Adelete(dst, name);
        hid_t b = H5Acreate2(dst, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
        if (b >= 0) {
            e = H5Awrite(b, mt, buf);
            H5Aclose(b);
        }
        if (H5Tis_variable_str(t) > 0) H5Dvlen_reclaim(mt, s, H5P_DEFAULT, buf);
    }
    free(buf);
    H5Tclose(mt);
    H5Tclose(t);
    H5Sclose(s);
    H5Aclose(a);
    return e < 0 ? -1 : 0;
}

/* Concatenate a 1-D table over the shards, adding `rebase` of shard i to every value
 * (offsets and sequence numbers) and, for offset tables, dropping each later shard's
 * leading 0. */
static ll_status concat_table(hid_t out, shard *sh, int ns, const char *name, hid_t ftype, const int64_t *rebase,
                              bool offsets) {
    hid_t ds;
    bool vl = H5Tget_class(ftype) == H5T_STRING;
    LL_TRY(ll_h5_create_1d(out, name, ftype, 65536, &ds));
    hsize_t at = 0;
    ll_status st = LL_OK;
    enum { SLICE = 1 << 20 };
    void *buf = malloc((size_t)SLICE * 8);
    if (!buf) st = ll_err(LL_ERR_NOMEM, "merge: %s", name);
    for (int i = 0; !st && i < ns; i++) {
        hid_t src = H5Dopen2(sh[i].f, name, H5P_DEFAULT);
        if (src < 0) {
            st = ll_h5_err(LL_ERR_FORMAT, "%s: /%s", sh[i].path, name);
            break;
        }
        hsize_t n = ll_h5_extent(src, 0), from = (offsets && i > 0) ? 1 : 0;
        for (hsize_t s0 = from; !st && s0 < n; s0 += SLICE) {
            hsize_t cnt = n - s0 < SLICE ? n - s0 : SLICE;
            hid_t mt = vl ? ftype : H5T_NATIVE_INT64;
            st = ll_h5_get_1d(src, mt, s0, cnt, buf);
            if (!st && !vl && rebase)
                for (hsize_t k = 0; k < cnt; k++) ((int64_t *)buf)[k] += rebase[i];
            if (!st) st = ll_h5_put_1d(ds, mt, at, cnt, buf);
            if (!st && vl) {
                hid_t ms = H5Screate_simple(1, &cnt, NULL);
                H5Dvlen_reclaim(mt, ms, H5P_DEFAULT, buf);
                H5Sclose(ms);
            }
            at += cnt;
        }
        H5Dclose(src);
    }
    free(buf);
    H5Dclose(ds);
    return st;
}

ll_status ll_store_merge(const char *out, const char *const *paths, int n_shards, bool force) {
    ll_h5_quiet();
    if (!force && access(out, F_OK) == 0) return ll_err(LL_ERR_ARG, "%s already exists (use --force to replace it)", out);
    shard *sh = calloc((size_t)n_shards, sizeof *sh);
    if (!sh) return ll_err(LL_ERR_NOMEM, "merge");
    ll_status st = LL_OK;
    for (int i = 0; !st && i < n_shards; i++) {
        sh[i].path = paths[i];
        sh[i].f = -1;
        st = ll_store_open(&sh[i].r, paths[i], false);
        if (st) break;
        char *v = NULL;
        st = ll_store_get_attr(sh[i].r, "shard", &v);
        if (!st && sscanf(v, "%d/%d", &sh[i].k, &sh[i].n) != 2)
            st = ll_err(LL_ERR_FORMAT, "%s: attribute \"shard\" is \"%s\", expected K/N", paths[i], v);
        free(v);
        if (!st) {
            sh[i].f = H5Fopen(paths[i], H5F_ACC_RDONLY, H5P_DEFAULT);
            if (sh[i].f < 0) st = ll_h5_err(LL_ERR_IO, "%s", paths[i]);
        }
    }
    /* Order by K; every K of 1..N exactly once; one run. */
    for (int i = 1; !st && i < n_shards; i++)
        for (int j = i; j > 0 && sh[j].k < sh[j - 1].k; j--) {
            shard t = sh[j];
            sh[j] = sh[j - 1];
            sh[j - 1] = t;
        }
    for (int i = 0; !st && i < n_shards; i++) {
        if (sh[i].n != n_shards)
            st = ll_err(LL_ERR_ARG, "merge: %s is shard %d/%d, but %d shard files were given: all %d are needed",
                        sh[i].path, sh[i].k, sh[i].n, n_shards, sh[i].n);
        else if (sh[i].k != i + 1)
            st = ll_err(LL_ERR_ARG, "merge: shard %d/%d is missing (or given twice: %s is %d/%d)", i + 1, n_shards,
                        sh[i].path, sh[i].k, sh[i].n);
        for (size_t a = 0; !st && i > 0 && a < sizeof same_attrs / sizeof *same_attrs; a++) {
            char *x = NULL, *y = NULL;
            st = ll_store_get_attr(sh[0].r, same_attrs[a], &x);
            if (!st) st = ll_store_get_attr(sh[i].r, same_attrs[a], &y);
            if (!st && strcmp(x, y))
                st = ll_err(LL_ERR_ARG, "merge: %s and %s come from different runs: %s is \"%.120s\" vs \"%.120s\"",
                            sh[0].path, sh[i].path, same_attrs[a], x, y);
            free(x);
            free(y);
        }
    }
    int np = st ? 0 : ll_store_n_points(sh[0].r);
    for (int i = 1; !st && i < n_shards; i++)
        for (int p = 0; !st && p < np; p++) {
            const ll_store_point_info *a = ll_store_point_at(sh[0].r, p);
            const ll_store_point_info *b = ll_store_point_find(sh[i].r, a->name);
            if (!b || b->width != a->width || b->n_layers != a->n_layers || b->dtype != a->dtype)
                st = ll_err(LL_ERR_ARG, "merge: %s and %s hold different /acts/%s", sh[0].path, sh[i].path, a->name);
        }
    int64_t *seq_base = calloc((size_t)n_shards + 1, sizeof(int64_t));
    int64_t *row_base = calloc((size_t)n_shards + 1, sizeof(int64_t));
    int64_t *tok_base = calloc((size_t)n_shards + 1, sizeof(int64_t));
    if (!st && (!seq_base || !row_base || !tok_base)) st = ll_err(LL_ERR_NOMEM, "merge");
    for (int i = 0; !st && i < n_shards; i++) {
        seq_base[i + 1] = seq_base[i] + ll_store_n_seq(sh[i].r);
        row_base[i + 1] = row_base[i] + ll_store_n_rows(sh[i].r);
        tok_base[i + 1] = tok_base[i] + ll_store_n_tokens(sh[i].r);
    }

    hid_t f = -1, fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    if (!st) {
        if (force) unlink(out);
        f = H5Fcreate(out, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
        if (f < 0) st = ll_h5_err(LL_ERR_IO, "%s: cannot create", out);
    }
    if (!st && H5Aiterate2(sh[0].f, H5_INDEX_NAME, H5_ITER_INC, NULL, copy_attr_cb, &f) < 0)
        st = ll_h5_err(LL_ERR_IO, "%s: copying attributes", out);
    if (!st) st = ll_h5_attr_bool(f, "complete", false);
    hid_t g = -1, gr = -1, ga = -1;
    if (!st) {
        g = H5Gcreate2(f, "sequences", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        gr = H5Gcreate2(f, "rows", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ga = H5Gcreate2(f, "acts", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0 || gr < 0 || ga < 0) st = ll_h5_err(LL_ERR_IO, "%s: groups", out);
    }
    hid_t vls = H5Tcopy(H5T_C_S1);
    H5Tset_size(vls, H5T_VARIABLE);
    H5Tset_cset(vls, H5T_CSET_UTF8);
    if (!st) st = concat_table(f, sh, n_shards, "sequences/tokens", H5T_STD_I32LE, NULL, false);
    if (!st) st = concat_table(f, sh, n_shards, "sequences/positions", H5T_STD_I32LE, NULL, false);
    if (!st) st = concat_table(f, sh, n_shards, "sequences/offsets", H5T_STD_I64LE, tok_base, true);
    if (!st) st = concat_table(f, sh, n_shards, "sequences/row_offsets", H5T_STD_I64LE, row_base, true);
    if (!st) st = concat_table(f, sh, n_shards, "sequences/index", H5T_STD_I64LE, NULL, false);
    if (!st) st = concat_table(f, sh, n_shards, "sequences/ids", vls, NULL, false);
    if (!st) st = concat_table(f, sh, n_shards, "sequences/metadata", vls, NULL, false);
    if (!st) st = concat_table(f, sh, n_shards, "rows/sequence", H5T_STD_I64LE, seq_base, false);
    if (!st) st = concat_table(f, sh, n_shards, "rows/position", H5T_STD_I32LE, NULL, false);
    if (!st) st = concat_table(f, sh, n_shards, "rows/token", H5T_STD_I32LE, NULL, false);
    H5Tclose(vls);

    for (int p = 0; !st && p < np; p++) {
        const ll_store_point_info *pi = ll_store_point_at(sh[0].r, p);
        char src_name[300];
        snprintf(src_name, sizeof src_name, "/acts/%s", pi->name);
        hsize_t dims[3] = {(hsize_t)pi->n_layers, (hsize_t)row_base[n_shards], (hsize_t)pi->width};
        hid_t vspace = H5Screate_simple(3, dims, NULL);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        hid_t src0 = H5Dopen2(sh[0].f, src_name, H5P_DEFAULT);
        hid_t ftype = H5Dget_type(src0);
        for (int i = 0; !st && i < n_shards; i++) {
            hsize_t rows = (hsize_t)(row_base[i + 1] - row_base[i]);
            if (rows == 0) continue;
            hsize_t sdims[3] = {dims[0], rows, dims[2]};
            /* The shard's dataset is extendable; map exactly its committed rows. */
            hid_t sspace = H5Screate_simple(3, sdims, NULL);
            hsize_t start[3] = {0, (hsize_t)row_base[i], 0};
            H5Sselect_hyperslab(vspace, H5S_SELECT_SET, start, NULL, sdims, NULL);
            char rel[PATH_MAX];
            rel_path(out, sh[i].path, rel, sizeof rel);
            if (H5Pset_virtual(dcpl, vspace, rel, src_name, sspace) < 0)
                st = ll_h5_err(LL_ERR_IO, "%s: mapping %s of %s", out, src_name, sh[i].path);
            H5Sclose(sspace);
        }
        H5Sselect_all(vspace);
        hid_t vds = st ? -1 : H5Dcreate2(ga, pi->name, ftype, vspace, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (!st && vds < 0) st = ll_h5_err(LL_ERR_IO, "%s: creating virtual /acts/%s", out, pi->name);
        if (!st && H5Aiterate2(src0, H5_INDEX_NAME, H5_ITER_INC, NULL, copy_attr_cb, &vds) < 0)
            st = ll_h5_err(LL_ERR_IO, "%s: attributes of /acts/%s", out, pi->name);
        if (vds >= 0) H5Dclose(vds);
        H5Tclose(ftype);
        H5Dclose(src0);
        H5Pclose(dcpl);
        H5Sclose(vspace);
    }
    if (!st) {
        hsize_t five = 5;
        hid_t s = H5Screate_simple(1, &five, NULL);
        hid_t pr = H5Dcreate2(f, "progress", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        int64_t v[5] = {seq_base[n_shards], row_base[n_shards], tok_base[n_shards], 0, 0};
        if (pr < 0 || H5Dwrite(pr, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
            st = ll_h5_err(LL_ERR_IO, "%s: /progress", out);
        if (pr >= 0) H5Dclose(pr);
        H5Sclose(s);
    }
    if (!st) {
        char range[64], shards[32];
        snprintf(range, sizeof range, "0-%lld", (long long)seq_base[n_shards]);
        snprintf(shards, sizeof shards, "merged %d", n_shards);
        st = ll_h5_attr_str(f, "shard", shards);
        if (!st) st = ll_h5_attr_str(f, "shard_records", range);
        const char **rels = calloc((size_t)n_shards, sizeof *rels);
        char (*buf)[PATH_MAX] = calloc((size_t)n_shards, sizeof *buf);
        for (int i = 0; rels && buf && i < n_shards; i++) {
            rel_path(out, sh[i].path, buf[i], PATH_MAX);
            rels[i] = buf[i];
        }
        if (!st && rels && buf) st = ll_h5_attr_strs(f, "merged_from", rels, n_shards);
        free(rels);
        free(buf);
        if (!st) st = ll_h5_attr_i64(f, "n_sequences", seq_base[n_shards]);
        if (!st) st = ll_h5_attr_i64(f, "n_rows", row_base[n_shards]);
        if (!st) st = ll_h5_attr_i64(f, "n_tokens", tok_base[n_shards]);
        if (!st) st = ll_h5_attr_bool(f, "complete", true);
    }
    if (g >= 0) H5Gclose(g);
    if (gr >= 0) H5Gclose(gr);
    if (ga >= 0) H5Gclose(ga);
    if (f >= 0 && H5Fclose(f) < 0 && !st) st = ll_h5_err(LL_ERR_IO, "%s: closing", out);
    H5Pclose(fapl);
    if (st && f >= 0) unlink(out); /* never leave a half-merged file */
    for (int i = 0; i < n_shards; i++) {
        if (sh[i].f >= 0) H5Fclose(sh[i].f);
        ll_store_reader_free(sh[i].r);
    }
    free(sh);
    free(seq_base);
    free(row_base);
    free(tok_base);
    return st;
}
