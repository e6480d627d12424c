/* Cosines, PCA and marginalisation-based demixed PCA (ll_icl_analysis.h).
 *
 * Both PCAs reduce to "the top eigenvectors of Y^T Y" for a matrix Y[m][d] of weighted,
 * centred rows: plain PCA has Y = (X - mean) / sqrt(n - 1), a factor's marginalisation
 * has one row per level, sqrt(n_level / n) (level mean - grand mean). When d > m the
 * m x m Gram matrix Y Y^T is decomposed instead (the same non-zero eigenvalues; an
 * eigenvector u maps to the axis Y^T u / sqrt(lambda)), which keeps the work at m^3 for
 * wide residual vectors (d = 4096) and few prompts. */
#include "ll_icl_analysis.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"

/* LAPACK (Fortran ABI; gfortran passes each character argument's length at the end). */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t, size_t);

double ll_icl_cosine(const float *a, const float *b, int d) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < d; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    if (aa == 0 || bb == 0) return NAN;
    double c = ab / sqrt(aa * bb);
    return c > 1 ? 1 : c < -1 ? -1 : c; /* rounding can overshoot by an ulp */
}

void ll_icl_cos_summary(const float *local, int k, const float *global, int d, double *local_local,
                        double *local_global, double *per_demo) {
    double s = 0;
    int n = 0;
    for (int i = 0; i < k; i++)
        for (int j = i + 1; j < k; j++) {
            double c = ll_icl_cosine(local + (size_t)i * d, local + (size_t)j * d, d);
            if (isfinite(c)) s += c, n++;
        }
    if (local_local) *local_local = n ? s / n : NAN;
    s = 0, n = 0;
    for (int i = 0; i < k; i++) {
        double c = ll_icl_cosine(local + (size_t)i * d, global, d);
        if (per_demo) per_demo[i] = c;
        if (isfinite(c)) s += c, n++;
    }
    if (local_global) *local_global = n ? s / n : NAN;
}

ll_status ll_icl_eigh(double *A, int n, double *w) {
    if (n <= 0) return ll_err(LL_ERR_ARG, "eigh: matrix order %d", n);
    int lwork = -1, liwork = -1, info = 0, iq;
    double wq;
    dsyevd_("V", "U", &n, A, &n, w, &wq, &lwork, &iq, &liwork, &info, 1, 1);
    if (info) return ll_err(LL_ERR_ARG, "eigh: LAPACK dsyevd workspace query failed (info %d)", info);
    lwork = (int)wq + 1;
    liwork = iq;
    double *work = malloc((size_t)lwork * sizeof *work);
    int *iwork = malloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork) {
        free(work);
        free(iwork);
        return ll_err(LL_ERR_NOMEM, "eigh: no memory for the workspace of a %d x %d problem", n, n);
    }
    dsyevd_("V", "U", &n, A, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    free(work);
    free(iwork);
    if (info) return ll_err(LL_ERR_ARG, "eigh: LAPACK dsyevd did not converge (info %d, order %d)", info, n);
    return LL_OK;
}

/* Make the largest-magnitude coordinate positive, so axes are comparable across runs. */
static void ll_fix_sign(double *v, int d) {
    int im = 0;
    for (int i = 1; i < d; i++)
        if (fabs(v[i]) > fabs(v[im])) im = i;
    if (v[im] < 0)
        for (int i = 0; i < d; i++) v[i] = -v[i];
}

/* Top k eigenpairs of Y^T Y for Y[m][d] (double): axes[k][d] (may be NULL), vals[k]
 * descending (may be NULL). Eigenvalues below 0 (rounding) are reported as 0, and their
 * axes (null directions, arbitrary) as 0 vectors when they come from the Gram route. */
static ll_status ll_top_axes(const double *Y, int m, int d, int k, double *axes, double *vals) {
    int small = d <= m ? d : m;
    double *A = ll_calloc((size_t)small * small, sizeof *A, "PCA matrix");
    double *w = ll_calloc((size_t)small, sizeof *w, "PCA eigenvalues");
    ll_status st = (A && w) ? LL_OK : LL_ERR_NOMEM;
    if (!st) {
        if (d <= m) { /* covariance: A = Y^T Y */
            for (int r = 0; r < m; r++) {
                const double *y = Y + (size_t)r * d;
                for (int i = 0; i < d; i++) {
                    if (y[i] == 0) continue;
                    double *a = A + (size_t)i * d;
                    for (int j = i; j < d; j++) a[j] += y[i] * y[j];
                }
            }
        } else { /* Gram: A = Y Y^T */
            for (int r = 0; r < m; r++)
                for (int c = r; c < m; c++) {
                    double s = 0;
                    const double *a = Y + (size_t)r * d, *b = Y + (size_t)c * d;
                    for (int i = 0; i < d; i++) s += a[i] * b[i];
                    A[(size_t)r * m + c] = s;
                }
        }
        /* dsyevd reads the upper triangle in column-major order, i.e. our lower one: mirror. */
        for (int i = 0; i < small; i++)
            for (int j = i + 1; j < small; j++) A[(size_t)j * small + i] = A[(size_t)i * small + j];
        st = ll_icl_eigh(A, small, w);
    }
    for (int c = 0; !st && c < k; c++) {
        int e = small - 1 - c; /* eigenvalues ascend */
        double lam = e >= 0 && w[e] > 0 ? w[e] : 0;
        if (vals) vals[c] = lam;
        if (!axes) continue;
        double *ax = axes + (size_t)c * d;
        if (e < 0) {
            memset(ax, 0, (size_t)d * sizeof *ax);
            continue;
        }
        const double *u = A + (size_t)e * small;
        if (d <= m) {
            memcpy(ax, u, (size_t)d * sizeof *ax);
        } else {
            memset(ax, 0, (size_t)d * sizeof *ax);
            if (lam > 0) {
                for (int r = 0; r < m; r++) {
                    const double *y = Y + (size_t)r * d;
                    for (int i = 0; i < d; i++) ax[i] += u[r] * y[i];
                }
                double nn = 0;
                for (int i = 0; i < d; i++) nn += ax[i] * ax[i];
                nn = sqrt(nn);
                for (int i = 0; nn > 0 && i < d; i++) ax[i] /= nn;
            }
        }
        ll_fix_sign(ax, d);
    }
    free(A);
    free(w);
    return st;
}

static double *ll_mean_rows(const float *X, int n, int d) {
    double *mu = ll_calloc((size_t)d, sizeof *mu, "PCA mean");
    if (!mu) return NULL;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < d; i++) mu[i] += X[(size_t)r * d + i];
    for (int i = 0; i < d; i++) mu[i] /= n;
    return mu;
}

ll_status ll_icl_pca(const float *X, int n, int d, int n_comp, double *axes, double *var, double *total) {
    if (n < 2 || d < 1) return ll_err(LL_ERR_ARG, "PCA: needs at least 2 rows of at least 1 value, got %d x %d", n, d);
    if (n_comp < 0 || n_comp > (n < d ? n : d))
        return ll_err(LL_ERR_ARG, "PCA: %d components asked of %d rows of %d values", n_comp, n, d);
    double *mu = ll_mean_rows(X, n, d);
    double *Y = ll_calloc((size_t)n * d, sizeof *Y, "PCA centred rows");
    if (!mu || !Y) {
        free(mu);
        free(Y);
        return LL_ERR_NOMEM;
    }
    double sc = 1.0 / sqrt((double)(n - 1)), tot = 0;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < d; i++) {
            double y = (X[(size_t)r * d + i] - mu[i]) * sc;
            Y[(size_t)r * d + i] = y;
            tot += y * y;
        }
    if (total) *total = tot;
    ll_status st = ll_top_axes(Y, n, d, n_comp, axes, var);
    free(mu);
    free(Y);
    return st;
}

void ll_icl_dpca_free(ll_icl_dpca *r) {
    if (!r) return;
    free(r->var);
    free(r->axes);
    free(r->axis_var);
    free(r->explained);
    memset(r, 0, sizeof *r);
}

ll_status ll_icl_dpca_fit(const float *X, int n, int d, const int *level, int n_fac, const int *n_levels, int n_comp,
                          ll_icl_dpca *out) {
    memset(out, 0, sizeof *out);
    if (n < 2 || d < 1 || n_fac < 1)
        return ll_err(LL_ERR_ARG, "dPCA: needs 2+ rows, 1+ values and 1+ factors, got %d x %d, %d factors", n, d, n_fac);
    if (n_comp < 0 || n_comp > d) return ll_err(LL_ERR_ARG, "dPCA: %d components of %d values", n_comp, d);
    for (int f = 0; f < n_fac; f++) {
        if (n_levels[f] < 1) return ll_err(LL_ERR_ARG, "dPCA: factor %d has %d levels", f, n_levels[f]);
        for (int i = 0; i < n; i++)
            if (level[(size_t)i * n_fac + f] < 0 || level[(size_t)i * n_fac + f] >= n_levels[f])
                return ll_err(LL_ERR_ARG, "dPCA: row %d has level %d of factor %d, which has %d levels", i,
                              level[(size_t)i * n_fac + f], f, n_levels[f]);
    }
    out->n_fac = n_fac;
    out->n_comp = n_comp;
    out->var = ll_calloc((size_t)n_fac, sizeof *out->var, "dPCA");
    out->axes = ll_calloc((size_t)n_fac * (n_comp ? n_comp : 1) * d, sizeof *out->axes, "dPCA axes");
    out->axis_var = ll_calloc((size_t)n_fac * (n_comp ? n_comp : 1), sizeof *out->axis_var, "dPCA");
    out->explained = ll_calloc((size_t)n_fac * (n_comp ? n_comp : 1), sizeof *out->explained, "dPCA");
    double *mu = ll_mean_rows(X, n, d);
    int max_lv = 1;
    for (int f = 0; f < n_fac; f++) max_lv = n_levels[f] > max_lv ? n_levels[f] : max_lv;
    double *M = ll_calloc((size_t)max_lv * d, sizeof *M, "dPCA level means");
    int *cnt = ll_calloc((size_t)max_lv, sizeof *cnt, "dPCA level counts");
    ll_status st = (out->var && out->axes && out->axis_var && out->explained && mu && M && cnt) ? LL_OK : LL_ERR_NOMEM;
    if (!st) {
        double tot = 0;
        for (int r = 0; r < n; r++)
            for (int i = 0; i < d; i++) {
                double y = X[(size_t)r * d + i] - mu[i];
                tot += y * y;
            }
        out->total = tot / n;
        out->rest = out->total;
    }
    for (int f = 0; !st && f < n_fac; f++) {
        int L = n_levels[f];
        memset(M, 0, (size_t)L * d * sizeof *M);
        memset(cnt, 0, (size_t)L * sizeof *cnt);
        for (int r = 0; r < n; r++) {
            int lv = level[(size_t)r * n_fac + f];
            cnt[lv]++;
            for (int i = 0; i < d; i++) M[(size_t)lv * d + i] += X[(size_t)r * d + i];
        }
        /* rows of Y: sqrt(n_l / n) (mean_l - mu); empty levels contribute nothing */
        double v = 0;
        for (int lv = 0; lv < L; lv++) {
            double *y = M + (size_t)lv * d;
            double w = cnt[lv] ? sqrt((double)cnt[lv] / n) : 0;
            for (int i = 0; i < d; i++) {
                y[i] = cnt[lv] ? (y[i] / cnt[lv] - mu[i]) * w : 0;
                v += y[i] * y[i];
            }
        }
        out->var[f] = v;
        out->rest -= v;
        int k = n_comp;
        if (k == 0) continue;
        double *ax = out->axes + (size_t)f * k * d;
        st = ll_top_axes(M, L, d, k, ax, out->axis_var + (size_t)f * k);
        for (int c = 0; !st && c < k; c++) {
            double s = 0;
            for (int r = 0; r < n; r++) {
                double p = 0;
                for (int i = 0; i < d; i++) p += (X[(size_t)r * d + i] - mu[i]) * ax[(size_t)c * d + i];
                s += p * p;
            }
            out->explained[(size_t)f * k + c] = out->total > 0 ? s / n / out->total : 0;
        }
    }
    free(mu);
    free(M);
    free(cnt);
    if (st) ll_icl_dpca_free(out);
    return st;
}
