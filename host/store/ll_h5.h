/* Thin helpers over the HDF5 C API for the activation store: error messages taken
 * from HDF5's error stack, typed attributes, extendable chunked datasets.
 *
 * Debian's libhdf5 is built without thread safety, so every HDF5 call of a store
 * happens on one thread at a time (the writer thread while it runs). */
#ifndef LL_H5_H
#define LL_H5_H

#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/ll_dtype.h"
#include "../core/ll_status.h"

/* Turn off HDF5's own printing of error stacks (we report them ourselves). */
void ll_h5_quiet(void);
/* ll_err with "<what>: <HDF5's innermost message>" ("No space left on device", ...). */
ll_status ll_h5_err(ll_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The HDF5 file type for our element types: f32, IEEE half (as h5py and numpy read it),
 * and bf16 as uint16 (HDF5 has no bfloat16; the dataset carries an attribute saying so). */
hid_t ll_h5_type(ll_dtype t); /* caller closes with H5Tclose */
/* numpy/h5py's boolean: an int8 enum FALSE=0, TRUE=1. */
hid_t ll_h5_bool_type(void);

ll_status ll_h5_attr_str(hid_t obj, const char *name, const char *value);
ll_status ll_h5_attr_i64(hid_t obj, const char *name, int64_t value);
ll_status ll_h5_attr_f64(hid_t obj, const char *name, double value);
ll_status ll_h5_attr_bool(hid_t obj, const char *name, bool value);
ll_status ll_h5_attr_i32s(hid_t obj, const char *name, const int32_t *v, int n);
ll_status ll_h5_attr_strs(hid_t obj, const char *name, const char *const *v, int n);
/* Readers: a missing attribute is LL_ERR_MISSING naming it. *out from ll_h5_get_str is malloc'd. */
ll_status ll_h5_get_str(hid_t obj, const char *name, char **out);
ll_status ll_h5_get_i64(hid_t obj, const char *name, int64_t *out);
ll_status ll_h5_get_bool(hid_t obj, const char *name, bool *out);
ll_status ll_h5_get_i32s(hid_t obj, const char *name, int32_t **out, int *n);

/* Extendable chunked dataset with the first dimension unlimited... or the second for
 * rank 3 ([layer][row][width]: rows grow). `level` > 0 adds gzip at that level,
 * `shuffle` the byte shuffle before it. */
ll_status ll_h5_create_1d(hid_t loc, const char *name, hid_t type, hsize_t chunk, hid_t *out);
ll_status ll_h5_create_rows(hid_t loc, const char *name, hid_t type, hsize_t n_layers, hsize_t width,
                            hsize_t chunk_rows, int level, bool shuffle, hid_t *out);
/* Current extent (dimension `dim`). */
hsize_t ll_h5_extent(hid_t ds, int dim);
/* Write n elements at [at, at+n) of a 1-D dataset, growing it to at+n first. */
ll_status ll_h5_put_1d(hid_t ds, hid_t memtype, hsize_t at, hsize_t n, const void *buf);
/* Write rows [at, at+n) of every layer from buf [n_layers][n][width], growing the row
 * extent to at least at+n (geometrically: it may end up larger; see ll_h5_truncate). */
ll_status ll_h5_put_rows(hid_t ds, hid_t memtype, hsize_t at, hsize_t n, const void *buf);
/* Set the growing dimension of a dataset to n (shrinks after a crash on resume). */
ll_status ll_h5_truncate(hid_t ds, hsize_t n);
/* Read n elements from a 1-D dataset. */
ll_status ll_h5_get_1d(hid_t ds, hid_t memtype, hsize_t at, hsize_t n, void *buf);

#endif
