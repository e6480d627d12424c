/* The GPU path of the ridge fit: Gram accumulation with cuBLAS (DSYRK / DGEMM in fp64 on
 * the device) and the solve with cuSOLVER (Cholesky: Dpotrf + Dpotrs). Built when CUDA=1
 * (host/backend/cuda/ll_cuda_ridge.c); otherwise stubs that report "no CUDA in this build"
 * (host/lspade/ll_ridge_gpu_none.c).
 *
 * Differences from the CPU path (ll_ridge.h): the device sums chunks in plain fp64 (no
 * double-double), so Grams agree with the CPU's to rounding (relative 1e-15 or so), not
 * bit for bit, and a system that is not positive definite is an error (the CPU falls back
 * to the eigendecomposition). Tested on a GPU by test/gpu/test_gpu_ridge.c. */
#ifndef LL_RIDGE_GPU_H
#define LL_RIDGE_GPU_H

#include <stdbool.h>

#include "ll_ridge.h"

/* true when this build has CUDA and a device is usable (the reason in ll_last_error() if not). */
bool ll_ridge_gpu_available(void);

typedef struct ll_gram_gpu ll_gram_gpu;
ll_status ll_gram_gpu_new(ll_gram_gpu **out, int d_in, int d_out);
void ll_gram_gpu_free(ll_gram_gpu *g);
/* Add n host rows (as ll_gram_add; the bias column is appended). */
ll_status ll_gram_gpu_add(ll_gram_gpu *g, const float *X, int ldx, const float *Y, int ldy, int64_t n);
/* dst += the device sums (shapes must match); the device sums are left as they are. */
ll_status ll_gram_gpu_merge_into(ll_gram_gpu *g, ll_gram *dst);

/* ll_ridge_solve on the device (Cholesky only). */
ll_status ll_ridge_solve_gpu(const ll_gram *g, double lambda, double *W);

#endif
