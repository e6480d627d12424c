#include "ll_h5.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ll_h5_quiet(void) {
    /* HDF5's own exit handler closes files left open, and crashes (1.10) on a file whose
     * close failed after a write error (a full disk). Such a file is already as good as
     * it gets on disk (committed part intact), so let the OS close it instead. */
    static int once;
    if (!once) {
        once = 1;
        H5dont_atexit();
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

typedef struct {
    char func[64];
    char desc[256];
    int depth;
} h5_inner;

/* Walked downward from the API call: the last entry is the innermost cause, the one
 * that says what really happened (errno text for a failed write). */
static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    h5_inner *in = data;
    snprintf(in->func, sizeof in->func, "%s", e->func_name ? e->func_name : "?");
    snprintf(in->desc, sizeof in->desc, "%s", e->desc ? e->desc : "");
    in->depth = (int)n + 1;
    return 0;
}

/* Message from a saved error stack (or the current one when es < 0). */
static ll_status err_from_stack(ll_status st, hid_t es, const char *what) {
    h5_inner in = {.depth = 0};
    H5Ewalk2(es >= 0 ? es : H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &in);
    if (es >= 0) H5Eclose_stack(es);
    H5Eclear2(H5E_DEFAULT);
    if (!in.depth) return ll_err(st, "%s", what);
    /* A failed system call: HDF5's text carries errno's message among many details. */
    const char *em = strstr(in.desc, "error message = '");
    if (em) {
        em += 17;
        const char *end = strchr(em, '\'');
        return ll_err(st, "%s: %.*s", what, end ? (int)(end - em) : 80, em);
    }
    return ll_err(st, "%s: %s (HDF5, in %s)", what, in.desc, in.func);
}

ll_status ll_h5_err(ll_status st, const char *fmt, ...) {
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return err_from_stack(st, -1, what);
}

/* "<verb> <file>: <dataset>: <cause>", taking HDF5's error stack before the calls that
 * find the names (every API call clears it). */
static ll_status ds_err_es(ll_status st, hid_t ds, const char *verb, hid_t es) {
    char file[512] = "?", name[256] = "?";
    if (H5Fget_name(ds, file, sizeof file) < 0) snprintf(file, sizeof file, "?");
    if (H5Iget_name(ds, name, sizeof name) < 0) snprintf(name, sizeof name, "?");
    char what[900];
    snprintf(what, sizeof what, "%s: %s %s", file, verb, name);
    return err_from_stack(st, es, what);
}

static ll_status ds_err(ll_status st, hid_t ds, const char *verb) {
    return ds_err_es(st, ds, verb, H5Eget_current_stack());
}

hid_t ll_h5_type(ll_dtype t) {
    switch (t) {
    case LL_F32: return H5Tcopy(H5T_IEEE_F32LE);
    case LL_BF16: return H5Tcopy(H5T_STD_U16LE);
    case LL_F16: {
        /* IEEE binary16: sign at 15, 5 exponent bits at 10, 10 mantissa bits, bias 15.
         * h5py maps exactly this layout to numpy.float16. */
        hid_t h = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(h, 15, 10, 5, 0, 10);
        H5Tset_size(h, 2);
        H5Tset_ebias(h, 15);
        return h;
    }
    case LL_I32: return H5Tcopy(H5T_STD_I32LE);
    case LL_I64: return H5Tcopy(H5T_STD_I64LE);
    case LL_U8: return H5Tcopy(H5T_STD_U8LE);
    default: return H5I_INVALID_HID;
    }
}

hid_t ll_h5_bool_type(void) {
    hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
    int8_t f = 0, tr = 1;
    H5Tenum_insert(t, "FALSE", &f);
    H5Tenum_insert(t, "TRUE", &tr);
    return t;
}

/* Replace an attribute: delete it first when present (values change at resume and
 * at the end of a run). */
static ll_status put_attr(hid_t obj, const char *name, hid_t type, hid_t space, const void *v) {
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0)
        return ll_h5_err(LL_ERR_IO, "replacing attribute \"%s\"", name);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return ll_h5_err(LL_ERR_IO, "creating attribute \"%s\"", name);
    herr_t e = H5Awrite(a, type, v);
    H5Aclose(a);
    if (e < 0) return ll_h5_err(LL_ERR_IO, "writing attribute \"%s\"", name);
    return LL_OK;
}

static hid_t vlstr_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

ll_status ll_h5_attr_str(hid_t obj, const char *name, const char *value) {
    hid_t t = vlstr_type(), s = H5Screate(H5S_SCALAR);
    const char *v = value ? value : "";
    ll_status st = put_attr(obj, name, t, s, &v);
    H5Tclose(t);
    H5Sclose(s);
    return st;
}

ll_status ll_h5_attr_strs(hid_t obj, const char *name, const char *const *v, int n) {
    hid_t t = vlstr_type();
    hsize_t dim = (hsize_t)n;
    hid_t s = H5Screate_simple(1, &dim, NULL);
    ll_status st = put_attr(obj, name, t, s, v);
    H5Tclose(t);
    H5Sclose(s);
    return st;
}

static ll_status scalar_attr(hid_t obj, const char *name, hid_t type, const void *v) {
    hid_t s = H5Screate(H5S_SCALAR);
    ll_status st = put_attr(obj, name, type, s, v);
    H5Sclose(s);
    return st;
}

ll_status ll_h5_attr_i64(hid_t obj, const char *name, int64_t value) {
    return scalar_attr(obj, name, H5T_NATIVE_INT64, &value);
}
ll_status ll_h5_attr_f64(hid_t obj, const char *name, double value) {
    return scalar_attr(obj, name, H5T_NATIVE_DOUBLE, &value);
}
ll_status ll_h5_attr_bool(hid_t obj, const char *name, bool value) {
    hid_t t = ll_h5_bool_type();
    int8_t v = value ? 1 : 0;
    ll_status st = scalar_attr(obj, name, t, &v);
    H5Tclose(t);
    return st;
}

ll_status ll_h5_attr_i32s(hid_t obj, const char *name, const int32_t *v, int n) {
    hsize_t dim = (hsize_t)n;
    hid_t s = H5Screate_simple(1, &dim, NULL);
    ll_status st = put_attr(obj, name, H5T_NATIVE_INT32, s, v);
    H5Sclose(s);
    return st;
}

static ll_status open_attr(hid_t obj, const char *name, hid_t *a) {
    if (H5Aexists(obj, name) <= 0) return ll_err(LL_ERR_MISSING, "attribute \"%s\" is missing", name);
    *a = H5Aopen(obj, name, H5P_DEFAULT);
    if (*a < 0) return ll_h5_err(LL_ERR_FORMAT, "opening attribute \"%s\"", name);
    return LL_OK;
}

ll_status ll_h5_get_str(hid_t obj, const char *name, char **out) {
    hid_t a;
    LL_TRY(open_attr(obj, name, &a));
    hid_t ft = H5Aget_type(a);
    ll_status st = LL_OK;
    *out = NULL;
    if (H5Tget_class(ft) != H5T_STRING) {
        st = ll_err(LL_ERR_FORMAT, "attribute \"%s\": expected a string", name);
    } else if (H5Tis_variable_str(ft) > 0) {
        hid_t t = vlstr_type();
        char *v = NULL;
        if (H5Aread(a, t, &v) < 0) {
            st = ll_h5_err(LL_ERR_FORMAT, "reading attribute \"%s\"", name);
        } else {
            *out = strdup(v ? v : "");
            hid_t s = H5Aget_space(a);
            H5Dvlen_reclaim(t, s, H5P_DEFAULT, &v);
            H5Sclose(s);
        }
        H5Tclose(t);
    } else {
        size_t n = H5Tget_size(ft);
        char *v = calloc(n + 1, 1);
        if (!v) st = ll_err(LL_ERR_NOMEM, "attribute \"%s\"", name);
        else if (H5Aread(a, ft, v) < 0) {
            free(v);
            st = ll_h5_err(LL_ERR_FORMAT, "reading attribute \"%s\"", name);
        } else *out = v;
    }
    H5Tclose(ft);
    H5Aclose(a);
    if (!st && !*out) st = ll_err(LL_ERR_NOMEM, "attribute \"%s\"", name);
    return st;
}

ll_status ll_h5_get_i64(hid_t obj, const char *name, int64_t *out) {
    hid_t a;
    LL_TRY(open_attr(obj, name, &a));
    herr_t e = H5Aread(a, H5T_NATIVE_INT64, out);
    H5Aclose(a);
    return e < 0 ? ll_h5_err(LL_ERR_FORMAT, "reading attribute \"%s\" as an integer", name) : LL_OK;
}

ll_status ll_h5_get_bool(hid_t obj, const char *name, bool *out) {
    hid_t a;
    LL_TRY(open_attr(obj, name, &a));
    hid_t t = ll_h5_bool_type();
    int8_t v = 0;
    herr_t e = H5Aread(a, t, &v);
    H5Tclose(t);
    H5Aclose(a);
    if (e < 0) return ll_h5_err(LL_ERR_FORMAT, "reading attribute \"%s\" as a boolean", name);
    *out = v != 0;
    return LL_OK;
}

ll_status ll_h5_get_i32s(hid_t obj, const char *name, int32_t **out, int *n) {
    hid_t a;
    LL_TRY(open_attr(obj, name, &a));
    hid_t s = H5Aget_space(a);
    hssize_t cnt = H5Sget_simple_extent_npoints(s);
    H5Sclose(s);
    int32_t *v = malloc((size_t)(cnt > 0 ? cnt : 1) * sizeof *v);
    if (!v) {
        H5Aclose(a);
        return ll_err(LL_ERR_NOMEM, "attribute \"%s\"", name);
    }
    herr_t e = H5Aread(a, H5T_NATIVE_INT32, v);
    H5Aclose(a);
    if (e < 0) {
        free(v);
        return ll_h5_err(LL_ERR_FORMAT, "reading attribute \"%s\" as integers", name);
    }
    *out = v;
    *n = (int)cnt;
    return LL_OK;
}

ll_status ll_h5_create_1d(hid_t loc, const char *name, hid_t type, hsize_t chunk, hid_t *out) {
    hsize_t dim = 0, maxd = H5S_UNLIMITED;
    hid_t s = H5Screate_simple(1, &dim, &maxd);
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(p, 1, &chunk);
    *out = H5Dcreate2(loc, name, type, s, H5P_DEFAULT, p, H5P_DEFAULT);
    H5Pclose(p);
    H5Sclose(s);
    return *out < 0 ? ll_h5_err(LL_ERR_IO, "creating dataset \"%s\"", name) : LL_OK;
}

ll_status ll_h5_create_rows(hid_t loc, const char *name, hid_t type, hsize_t n_layers, hsize_t width,
                            hsize_t chunk_rows, int level, bool shuffle, hid_t *out) {
    hsize_t dim[3] = {n_layers, 0, width}, maxd[3] = {n_layers, H5S_UNLIMITED, width};
    hsize_t chunk[3] = {1, chunk_rows, width};
    hid_t s = H5Screate_simple(3, dim, maxd);
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(p, 3, chunk);
    if (level > 0) {
        if (shuffle) H5Pset_shuffle(p);
        H5Pset_deflate(p, (unsigned)level);
    }
    /* (the chunk cache comes from the file access list: see ll_store_write.c) */
    *out = H5Dcreate2(loc, name, type, s, H5P_DEFAULT, p, H5P_DEFAULT);
    H5Pclose(p);
    H5Sclose(s);
    return *out < 0 ? ll_h5_err(LL_ERR_IO, "creating dataset \"%s\"", name) : LL_OK;
}

hsize_t ll_h5_extent(hid_t ds, int dim) {
    hsize_t d[3] = {0, 0, 0};
    hid_t s = H5Dget_space(ds);
    H5Sget_simple_extent_dims(s, d, NULL);
    H5Sclose(s);
    return d[dim];
}

ll_status ll_h5_put_1d(hid_t ds, hid_t memtype, hsize_t at, hsize_t n, const void *buf) {
    if (n == 0) return LL_OK;
    hsize_t size = at + n;
    if (H5Dset_extent(ds, &size) < 0) return ds_err(LL_ERR_IO, ds, "growing");
    hid_t fs = H5Dget_space(ds);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &n, NULL);
    hid_t ms = H5Screate_simple(1, &n, NULL);
    herr_t e = H5Dwrite(ds, memtype, ms, fs, H5P_DEFAULT, buf);
    hid_t es = e < 0 ? H5Eget_current_stack() : -1; /* before the closes clear it */
    H5Sclose(ms);
    H5Sclose(fs);
    return e < 0 ? ds_err_es(LL_ERR_IO, ds, "writing", es) : LL_OK;
}

ll_status ll_h5_put_rows(hid_t ds, hid_t memtype, hsize_t at, hsize_t n, const void *buf) {
    if (n == 0) return LL_OK;
    hsize_t d[3];
    hid_t fs = H5Dget_space(ds);
    H5Sget_simple_extent_dims(fs, d, NULL);
    H5Sclose(fs);
    /* Grow the row dimension geometrically, not batch by batch: every change of a
     * chunked dataset's extent re-hashes its chunk cache, and because rows are the
     * middle dimension of [layer][row][width] that evicts (writes out) the partly filled
     * chunk of every layer. Growing by doubling makes that happen a handful of times per
     * run. The extra rows are cut off when the dump completes; until then /progress says
     * how many rows are real. */
    if (at + n > d[1]) {
        hsize_t want = at + n, grow = d[1] * 2;
        hsize_t size[3] = {d[0], grow > want ? grow : want, d[2]};
        if (H5Dset_extent(ds, size) < 0) return ds_err(LL_ERR_IO, ds, "growing");
    }
    fs = H5Dget_space(ds);
    hsize_t start[3] = {0, at, 0}, count[3] = {d[0], n, d[2]};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(3, count, NULL);
    herr_t e = H5Dwrite(ds, memtype, ms, fs, H5P_DEFAULT, buf);
    hid_t es = e < 0 ? H5Eget_current_stack() : -1; /* before the closes clear it */
    H5Sclose(ms);
    H5Sclose(fs);
    return e < 0 ? ds_err_es(LL_ERR_IO, ds, "writing", es) : LL_OK;
}

ll_status ll_h5_truncate(hid_t ds, hsize_t n) {
    hsize_t d[3] = {0, 0, 0};
    hid_t fs = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_dims(fs, d, NULL);
    H5Sclose(fs);
    if (rank == 1) d[0] = n;
    else d[1] = n;
    return H5Dset_extent(ds, d) < 0 ? ds_err(LL_ERR_IO, ds, "resizing") : LL_OK;
}

ll_status ll_h5_get_1d(hid_t ds, hid_t memtype, hsize_t at, hsize_t n, void *buf) {
    if (n == 0) return LL_OK;
    hid_t fs = H5Dget_space(ds);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &n, NULL);
    hid_t ms = H5Screate_simple(1, &n, NULL);
    herr_t e = H5Dread(ds, memtype, ms, fs, H5P_DEFAULT, buf);
    hid_t es = e < 0 ? H5Eget_current_stack() : -1;
    H5Sclose(ms);
    H5Sclose(fs);
    return e < 0 ? ds_err_es(LL_ERR_IO, ds, "reading", es) : LL_OK;
}
