/* Helpers shared by the Criterion suites. */
#ifndef LL_TEST_UTIL_H
#define LL_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "io/ll_tensors.h"
#include "model/ll_forward.h"

/* ../shared/assets (or $LAYERLAB_SHARED/assets); NULL when absent. */
const char *ll_test_shared_assets(void);
/* Path inside shared assets, or NULL (after cr_skip-able message) when absent. */
int ll_test_asset(char *buf, size_t n, const char *rel);

/* Max |a-b| / max |b| over n values (0 when both are all zero). */
double ll_test_rel_err(const float *a, const float *b, size_t n);

/* Widen a tensor of an expected-values file into a new float array. */
float *ll_test_f32(const ll_tensor_set *s, const char *name, size_t *n);
/* Record sink that copies rows into a dense [layers][T][width] host array. */
typedef struct {
    float *data;
    int n_layers_total; /* L+1 so FINAL_NORM (layer L) fits */
    int64_t T;
    int width;
    int calls;
} ll_test_capture;
ll_status ll_test_capture_fn(void *user, const ll_hook_rows *r);

/* Write `n` bytes to a fresh temporary file and return its path (static buffer per call site). */
/* Run a command (argv[0] a path) with stdout and stderr to the files out and err; its exit
 * status (-1 when it did not exit normally). Asserts that it started. */
int ll_test_run_cli(char *const argv[], const char *out, const char *err);
/* The first 64 KiB of a file as a NUL-terminated string (free it); NULL when unreadable. */
char *ll_test_slurp(const char *path);
int ll_test_write_tmp(char *path, size_t pathlen, const void *data, size_t n, const char *suffix);

#endif
