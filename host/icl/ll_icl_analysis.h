/* Vector analyses of ICL representations (experiments E6 and E7, docs/icl-analysis.md):
 * cosine similarity between local task vectors (residual at each demonstration's label
 * position) and the global one (query position), PCA, and marginalisation-based demixed
 * PCA over labelled factors (rule / label / surface input).
 *
 * Pure numerics on host arrays, double accumulation, no model: the E6 / E7 drivers
 * (host/icl/ll_icl_flow.c) collect the vectors and call these. Eigen-decompositions use
 * LAPACK's dsyevd (shipped by OpenBLAS). */
#ifndef LL_ICL_ANALYSIS_H
#define LL_ICL_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/ll_status.h"

/* cos(a, b) over d floats; NAN when either vector is all zero (no direction). */
double ll_icl_cosine(const float *a, const float *b, int d);

/* One prompt, one layer: local[k][d] (one vector per demonstration), global[d].
 * local_local: mean cos over pairs i < j (NAN when k < 2); local_global: mean over i of
 * cos(local_i, global) (NAN when k == 0); per_demo (may be NULL): [k] cos(local_i, global).
 * Pairs with a zero vector are left out of the means (NAN when none is left). */
void ll_icl_cos_summary(const float *local, int k, const float *global, int d, double *local_local,
                        double *local_global, double *per_demo);

/* PCA of n rows of d floats (X[n][d]): the top n_comp principal axes (unit vectors,
 * axes[c][d], sign fixed so the largest-magnitude coordinate is positive), their
 * variances var[c] (eigenvalues of the covariance, divisor n - 1), and the total
 * variance (trace). The eigenproblem is the d x d covariance when d <= n, else the
 * n x n Gram matrix of the centred rows (same non-zero spectrum; axes mapped back).
 * n_comp <= min(n, d); axes and var may be NULL. Needs n >= 2. */
ll_status ll_icl_pca(const float *X, int n, int d, int n_comp, double *axes, double *var, double *total);

/* Marginalisation-based demixed PCA (Kobak et al. 2016's marginalisation, without its
 * decoder fit): X[n][d] rows, each with a level per factor, level[i * n_fac + f] in
 * [0, n_levels[f]). For factor f the marginalisation replaces every row by the mean of
 * the rows sharing its level of f, minus the grand mean; its variance (divisor n, as
 * is the total's here) is the variance that factor explains. With a balanced crossed
 * design the marginalisations are orthogonal and `rest` = total - sum is interactions
 * and noise. */
typedef struct {
    int n_fac;
    double total;     /* mean squared distance of a row from the grand mean */
    double *var;      /* [n_fac] variance of each factor's marginalisation */
    double rest;      /* total - sum of var */
    int n_comp;       /* axes kept per factor */
    double *axes;     /* [n_fac][n_comp][d]: principal axes of each marginalisation */
    double *axis_var; /* [n_fac][n_comp]: the marginalisation's variance along each axis */
    double *explained;/* [n_fac][n_comp]: variance of the full data along that axis / total */
} ll_icl_dpca;

ll_status ll_icl_dpca_fit(const float *X, int n, int d, const int *level, int n_fac, const int *n_levels, int n_comp,
                          ll_icl_dpca *out);
void ll_icl_dpca_free(ll_icl_dpca *r);

/* Symmetric eigen-decomposition (LAPACK dsyevd): A[n][n] is replaced by the eigenvectors,
 * eigenvector j being A[j * n .. j * n + n), eigenvalues ascending in w[n]. */
ll_status ll_icl_eigh(double *A, int n, double *w);

#endif
