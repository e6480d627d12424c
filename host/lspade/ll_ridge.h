/* Closed-form ridge regression on the normal equations, streamed.
 *
 * The fit only needs sums over examples: A = X^T X and B = X^T Y (X with a bias column of
 * ones appended) and, to score a fit on held-out data, the per-target sums of squares
 * sum y_j^2. Those sums can be accumulated batch by batch, on any number of processes, and
 * added together (one all-reduce), so no example has to stay in memory. Everything is
 * fp64: a Gram over 10^5 rows of 4096-wide hidden states loses about 11 digits in fp32.
 *
 * Layout: one contiguous block of doubles, [A (p*p) | B (p*q) | yy (q) | n (1)], p = d_in + 1
 * (the bias is the last column), q = d_out, so that a sum across processes is a reduction
 * over ll_gram_n_doubles() values. n is held as a double: exact for counts below 2^53. Only
 * A's upper triangle (row <= column) is kept up to date (dsyrk), which halves the cost.
 *
 * Reproducibility across shardings: each ll_gram_add call of at most LL_GRAM_CHUNK rows is one
 * chunk whose Gram is computed on its own, and chunks are summed in double-double (data
 * holds the high parts, lo the low parts), so the total is the exact sum of the chunk Grams
 * rounded once: independent of the order in which chunks or shards are added. A driver that
 * feeds the same chunks (e.g. fixed blocks of the global example index) on 1 or N processes
 * and sums the shards with ll_gram_merge / ll_mpi_allreduce_gram gets bit-equal Grams. */
#ifndef LL_RIDGE_H
#define LL_RIDGE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/ll_status.h"

typedef struct {
    int d_in, d_out, p; /* p = d_in + 1 */
    double *data;       /* the block above (high parts); owned */
    double *lo;         /* low parts, same layout; owned */
    double *A, *B, *yy, *n;
} ll_gram;

ll_status ll_gram_init(ll_gram *g, int d_in, int d_out);
void ll_gram_free(ll_gram *g);
void ll_gram_zero(ll_gram *g);
size_t ll_gram_n_doubles(const ll_gram *g);
int64_t ll_gram_count(const ll_gram *g);
#define LL_GRAM_CHUNK 256
/* Add n examples (chunks of LL_GRAM_CHUNK rows from the first): rows of X [n][d_in] (row stride ldx) and Y [n][d_out] (stride ldy). */
ll_status ll_gram_add(ll_gram *g, const float *X, int ldx, const float *Y, int ldy, int64_t n);
ll_status ll_gram_add_f64(ll_gram *g, const double *X, int ldx, const double *Y, int ldy, int64_t n);
/* dst += src (same shapes), in double-double. */
ll_status ll_gram_merge(ll_gram *dst, const ll_gram *src);

/* hi/lo += src_hi/src_lo elementwise in double-double (src_lo may be NULL): the reduction
 * the all-reduce glue uses as its operator. */
void ll_gram_dd_sum(double *hi, double *lo, const double *src_hi, const double *src_lo, size_t n);

/* Mean diagonal of A over the d_in feature columns (the bias excluded): the scale that
 * relative lambdas multiply (see ll_ridge_solve). 0 when empty. */
double ll_gram_feature_scale(const ll_gram *g);

/* W [p][q] row-major (rows 0..d_in-1 the weights, row d_in the bias) minimising
 * ||X W - Y||^2 + lambda ||W[0..d_in)||^2: the bias is not penalised. Solved by Cholesky
 * (LAPACK dposv) of A + lambda I'; when that matrix is not positive definite (lambda = 0 with
 * collinear features, or too few examples) by the eigendecomposition (dsyev) with
 * eigenvalues below 1e-12 * the largest treated as zero (the minimum-norm solution).
 * *method (may be NULL) is set to "cholesky" or "eigen". */
ll_status ll_ridge_solve(const ll_gram *g, double lambda, double *W, const char **method);

/* Mean squared error per target value of W on the examples summed in g:
 * (tr(W^T A W) - 2 tr(W^T B) + sum yy) / (n * q), from the sums alone. */
double ll_ridge_mse(const ll_gram *g, const double *W);

/* Lambda selection: fit on `train` with each lambda_rel[i] * ll_gram_feature_scale(train)
 * and score on `val` by held-out MSE (ll_ridge_mse). Fills mse[i] (may be NULL) and returns
 * the index of the smallest (the first on ties) in *best. */
ll_status ll_ridge_select(const ll_gram *train, const ll_gram *val, const double *lambda_rel, int n_lambda,
                          double *mse, int *best);

/* The same with another solver (e.g. ll_ridge_solve_gpu); NULL = ll_ridge_solve. */
typedef ll_status (*ll_ridge_solver)(const ll_gram *g, double lambda, double *W);
ll_status ll_ridge_select_with(const ll_gram *train, const ll_gram *val, const double *lambda_rel, int n_lambda,
                               ll_ridge_solver solve, double *mse, int *best);

/* Prediction for rows of X: Y[n][q] = X W[0..d_in) + W[d_in]. */
ll_status ll_ridge_predict(const double *W, int d_in, int d_out, const float *X, int ldx, int64_t n, float *Y, int ldy);

/* Deterministic train/validation split by example index (not by shard or arrival order,
 * so every sharding gives the same split): true when example `index` is held out. */
int ll_ridge_is_val(int64_t index, double val_frac, uint64_t seed);

#endif
