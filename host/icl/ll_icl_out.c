/* HDF5 result files for the ICL experiments (see ll_icl_out.h). */
#include "ll_icl_out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "../store/ll_h5.h"

struct ll_icl_out {
    hid_t f;
    char *path, *tmp;
};

ll_status ll_icl_out_open(ll_icl_out **out, const char *path) {
    ll_h5_quiet();
    ll_icl_out *o = ll_calloc(1, sizeof *o, "ICL output");
    if (!o) return LL_ERR_NOMEM;
    size_t n = strlen(path) + 8;
    o->path = ll_strdup(path);
    o->tmp = malloc(n);
    if (!o->path || !o->tmp) {
        free(o->path);
        free(o->tmp);
        free(o);
        return ll_err(LL_ERR_NOMEM, "ICL output: no memory");
    }
    snprintf(o->tmp, n, "%s.tmp", path);
    o->f = H5Fcreate(o->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (o->f < 0) {
        ll_status st = ll_h5_err(LL_ERR_IO, "%s: cannot create", o->tmp);
        free(o->path);
        free(o->tmp);
        free(o);
        return st;
    }
    *out = o;
    return LL_OK;
}

ll_status ll_icl_out_attr_str(ll_icl_out *o, const char *name, const char *v) {
    return ll_h5_attr_str(o->f, name, v ? v : "");
}
ll_status ll_icl_out_attr_i64(ll_icl_out *o, const char *name, int64_t v) { return ll_h5_attr_i64(o->f, name, v); }
ll_status ll_icl_out_attr_f64(ll_icl_out *o, const char *name, double v) { return ll_h5_attr_f64(o->f, name, v); }
ll_status ll_icl_out_attr_bool(ll_icl_out *o, const char *name, bool v) { return ll_h5_attr_bool(o->f, name, v); }
ll_status ll_icl_out_attr_strs(ll_icl_out *o, const char *name, const char *const *v, int n) {
    return ll_h5_attr_strs(o->f, name, v, n);
}
ll_status ll_icl_out_attr_i32s(ll_icl_out *o, const char *name, const int32_t *v, int n) {
    return ll_h5_attr_i32s(o->f, name, v, n);
}

static ll_status ll_put_nd(ll_icl_out *o, const char *name, hid_t type, const void *v, int rank, const hsize_t *dims) {
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ds = sp >= 0 ? H5Dcreate2(o->f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    herr_t w = ds >= 0 && n > 0 ? H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) : 0;
    if (ds >= 0) H5Dclose(ds);
    if (sp >= 0) H5Sclose(sp);
    if (ds < 0 || w < 0) return ll_h5_err(LL_ERR_IO, "%s: cannot write dataset %s", o->tmp, name);
    return LL_OK;
}

static ll_status ll_put(ll_icl_out *o, const char *name, hid_t type, const void *v, int n) {
    hsize_t dim = (hsize_t)n;
    return ll_put_nd(o, name, type, v, 1, &dim);
}

ll_status ll_icl_out_f64_2d(ll_icl_out *o, const char *name, const double *v, int rows, int cols) {
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    return ll_put_nd(o, name, H5T_NATIVE_DOUBLE, v, 2, dims);
}

ll_status ll_icl_out_f64(ll_icl_out *o, const char *name, const double *v, int n) {
    return ll_put(o, name, H5T_NATIVE_DOUBLE, v, n);
}
ll_status ll_icl_out_i32(ll_icl_out *o, const char *name, const int *v, int n) {
    return ll_put(o, name, H5T_NATIVE_INT, v, n);
}

ll_status ll_icl_out_close(ll_icl_out *o, bool ok) {
    if (!o) return LL_OK;
    ll_status st = LL_OK;
    if (ok) st = ll_h5_attr_bool(o->f, "complete", true);
    if (H5Fclose(o->f) < 0 && !st) st = ll_h5_err(LL_ERR_IO, "%s: cannot close", o->tmp);
    if (ok && !st && rename(o->tmp, o->path) != 0) st = ll_err(LL_ERR_IO, "%s: cannot rename to %s", o->tmp, o->path);
    if (!ok || st) remove(o->tmp);
    free(o->path);
    free(o->tmp);
    free(o);
    return st;
}
