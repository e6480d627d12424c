/* Result files of the ICL experiments: one HDF5 file per run, written under a temporary
 * name and renamed when complete (an interrupted run leaves no file that looks done);
 * the root carries every switch of the run as attributes and `complete` = true. */
#ifndef LL_ICL_OUT_H
#define LL_ICL_OUT_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/ll_status.h"

typedef struct ll_icl_out ll_icl_out;

ll_status ll_icl_out_open(ll_icl_out **out, const char *path);
ll_status ll_icl_out_attr_str(ll_icl_out *o, const char *name, const char *v);
ll_status ll_icl_out_attr_i64(ll_icl_out *o, const char *name, int64_t v);
ll_status ll_icl_out_attr_f64(ll_icl_out *o, const char *name, double v);
ll_status ll_icl_out_attr_bool(ll_icl_out *o, const char *name, bool v);
/* List attributes (one value per task of a several-task run). */
ll_status ll_icl_out_attr_strs(ll_icl_out *o, const char *name, const char *const *v, int n);
ll_status ll_icl_out_attr_i32s(ll_icl_out *o, const char *name, const int32_t *v, int n);
/* 1-D datasets. */
ll_status ll_icl_out_f64(ll_icl_out *o, const char *name, const double *v, int n);
ll_status ll_icl_out_i32(ll_icl_out *o, const char *name, const int *v, int n);
/* A 2-D dataset [rows][cols] of doubles. */
ll_status ll_icl_out_f64_2d(ll_icl_out *o, const char *name, const double *v, int rows, int cols);
/* ok: mark complete, close and rename into place; !ok (or on error): remove the temporary. */
ll_status ll_icl_out_close(ll_icl_out *o, bool ok);

#endif
