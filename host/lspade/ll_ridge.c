/* Streamed ridge regression: Gram accumulation in fp64 (OpenBLAS dsyrk / dgemm) and the
 * closed-form solve (LAPACK dposv, dsyev when the system is not positive definite). */
#include "ll_ridge.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK (OpenBLAS ships it). The trailing size_t are the hidden lengths of the character
 * arguments in the Fortran calling convention. */
extern void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b,
                   const int *ldb, int *info, size_t uplo_len);
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                   double *work, const int *lwork, int *info, size_t jobz_len, size_t uplo_len);


ll_status ll_gram_init(ll_gram *g, int d_in, int d_out) {
    memset(g, 0, sizeof *g);
    if (d_in <= 0 || d_out <= 0)
        return ll_err(LL_ERR_ARG, "ridge: Gram shape: expected d_in > 0 and d_out > 0, found %d and %d", d_in, d_out);
    g->d_in = d_in;
    g->d_out = d_out;
    g->p = d_in + 1;
    size_t n = ll_gram_n_doubles(g);
    g->data = calloc(n, sizeof(double));
    g->lo = calloc(n, sizeof(double));
    if (!g->data || !g->lo) {
        free(g->data);
        free(g->lo);
        g->data = g->lo = NULL;
        return ll_err(LL_ERR_NOMEM, "ridge: Gram of %d x %d: cannot allocate 2 x %zu doubles", d_in, d_out, n);
    }
    g->A = g->data;
    g->B = g->A + (size_t)g->p * g->p;
    g->yy = g->B + (size_t)g->p * d_out;
    g->n = g->yy + d_out;
    return LL_OK;
}

void ll_gram_free(ll_gram *g) {
    free(g->data);
    free(g->lo);
    memset(g, 0, sizeof *g);
}

size_t ll_gram_n_doubles(const ll_gram *g) {
    return (size_t)g->p * g->p + (size_t)g->p * g->d_out + g->d_out + 1;
}

void ll_gram_zero(ll_gram *g) {
    memset(g->data, 0, ll_gram_n_doubles(g) * sizeof(double));
    memset(g->lo, 0, ll_gram_n_doubles(g) * sizeof(double));
}

/* (*hi, *lo) += t, keeping |lo| <= ulp(hi) / 2 (Knuth's TwoSum, then a fast renormalisation). */
static inline void ll_dd_add(double *hi, double *lo, double t) {
    double s = *hi + t, bb = s - *hi, e = (*hi - (s - bb)) + (t - bb);
    e += *lo;
    double h = s + e;
    *lo = e - (h - s);
    *hi = h;
}
/* (*hi, *lo) += (th, tl). */
static inline void ll_dd_add2(double *hi, double *lo, double th, double tl) {
    ll_dd_add(hi, lo, th);
    ll_dd_add(hi, lo, tl);
}

void ll_gram_dd_sum(double *hi, double *lo, const double *src_hi, const double *src_lo, size_t n) {
    for (size_t i = 0; i < n; i++) ll_dd_add2(hi + i, lo + i, src_hi[i], src_lo ? src_lo[i] : 0.0);
}

int64_t ll_gram_count(const ll_gram *g) { return (int64_t)*g->n; }

/* One chunk: its Gram computed on its own (beta = 0) into T, then added in double-double.
 * T holds [A | B | yy | n] like g->data. */
static void ll_gram_add_chunk(ll_gram *g, const double *Xd, const double *Yd, int c, double *T) {
    int p = g->p, q = g->d_out;
    size_t nd = ll_gram_n_doubles(g);
    double *TA = T, *TB = T + (size_t)p * p, *Ty = TB + (size_t)p * q;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, p, c, 1.0, Xd, p, 0.0, TA, p);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p, q, c, 1.0, Xd, p, Yd, q, 0.0, TB, q);
    for (int j = 0; j < q; j++) {
        double s = 0;
        for (int r = 0; r < c; r++) s += Yd[(size_t)r * q + j] * Yd[(size_t)r * q + j];
        Ty[j] = s;
    }
    T[nd - 1] = c;
    /* Only the upper triangle of A is meaningful: skip the rest. */
    for (int i = 0; i < p; i++)
        for (int j = i; j < p; j++) ll_dd_add(g->data + (size_t)i * p + j, g->lo + (size_t)i * p + j, TA[(size_t)i * p + j]);
    size_t off = (size_t)p * p;
    for (size_t k = off; k < nd; k++) ll_dd_add(g->data + k, g->lo + k, T[k]);
}

static void *ll_aligned(size_t bytes) {
    void *p = NULL;
    /* The same alignment for every buffer handed to BLAS, so that its kernels take the
     * same path (and round the same way) for the same chunk wherever it is computed. */
    return posix_memalign(&p, 64, bytes ? bytes : 64) == 0 ? p : NULL;
}

/* One body for float and double inputs. */
#define LL_GRAM_ADD_BODY(E)                                                                                     \
    if (n < 0 || ldx < g->d_in || ldy < g->d_out)                                                              \
        return ll_err(LL_ERR_ARG, "ridge: add: n = %lld, ldx = %d (d_in %d), ldy = %d (d_out %d)", (long long)n, \
                      ldx, g->d_in, ldy, g->d_out);                                                            \
    int p = g->p, q = g->d_out;                                                                                \
    int64_t cap = n < LL_GRAM_CHUNK ? n : LL_GRAM_CHUNK;                                                       \
    if (cap == 0) return LL_OK;                                                                                \
    double *Xd = ll_aligned((size_t)cap * p * sizeof(double)), *Yd = ll_aligned((size_t)cap * q * sizeof(double)); \
    double *T = ll_aligned(ll_gram_n_doubles(g) * sizeof(double));                                            \
    if (!Xd || !Yd || !T) {                                                                                    \
        free(Xd);                                                                                              \
        free(Yd);                                                                                              \
        free(T);                                                                                               \
        return ll_err(LL_ERR_NOMEM, "ridge: add: cannot allocate a %lld-row chunk", (long long)cap);           \
    }                                                                                                          \
    for (int64_t r0 = 0; r0 < n; r0 += cap) {                                                                  \
        int c = (int)(n - r0 < cap ? n - r0 : cap);                                                            \
        for (int r = 0; r < c; r++) {                                                                          \
            const E *x = X + (size_t)(r0 + r) * ldx, *y = Y + (size_t)(r0 + r) * ldy;                          \
            double *xd = Xd + (size_t)r * p, *yd = Yd + (size_t)r * q;                                         \
            for (int i = 0; i < g->d_in; i++) xd[i] = x[i];                                                    \
            xd[g->d_in] = 1.0;                                                                                 \
            for (int j = 0; j < q; j++) yd[j] = y[j];                                                          \
        }                                                                                                      \
        ll_gram_add_chunk(g, Xd, Yd, c, T);                                                                    \
    }                                                                                                          \
    free(T);                                                                                                   \
    free(Xd);                                                                                                  \
    free(Yd);                                                                                                  \
    return LL_OK;

ll_status ll_gram_add(ll_gram *g, const float *X, int ldx, const float *Y, int ldy, int64_t n) {
    LL_GRAM_ADD_BODY(float)
}

ll_status ll_gram_add_f64(ll_gram *g, const double *X, int ldx, const double *Y, int ldy, int64_t n) {
    LL_GRAM_ADD_BODY(double)
}

ll_status ll_gram_merge(ll_gram *dst, const ll_gram *src) {
    if (dst->d_in != src->d_in || dst->d_out != src->d_out)
        return ll_err(LL_ERR_SHAPE, "ridge: merge: Gram of %d x %d into one of %d x %d", src->d_in, src->d_out,
                      dst->d_in, dst->d_out);
    ll_gram_dd_sum(dst->data, dst->lo, src->data, src->lo, ll_gram_n_doubles(dst));
    return LL_OK;
}

double ll_gram_feature_scale(const ll_gram *g) {
    double s = 0;
    for (int i = 0; i < g->d_in; i++) s += g->A[(size_t)i * g->p + i];
    return s / g->d_in;
}

/* Full symmetric copy of A (from its upper triangle) plus lambda on the feature diagonal. */
static void ll_gram_system(const ll_gram *g, double lambda, double *M) {
    int p = g->p;
    for (int i = 0; i < p; i++)
        for (int j = i; j < p; j++) M[(size_t)i * p + j] = M[(size_t)j * p + i] = g->A[(size_t)i * p + j];
    for (int i = 0; i < g->d_in; i++) M[(size_t)i * p + i] += lambda;
}

ll_status ll_ridge_solve(const ll_gram *g, double lambda, double *W, const char **method) {
    int p = g->p, q = g->d_out, info = 0;
    if (!(lambda >= 0) || !isfinite(lambda)) return ll_err(LL_ERR_ARG, "ridge: lambda must be >= 0, found %g", lambda);
    if (ll_gram_count(g) == 0) return ll_err(LL_ERR_ARG, "ridge: no examples were added: nothing to fit");
    double *M = malloc((size_t)p * p * sizeof(double)), *Bc = malloc((size_t)p * q * sizeof(double));
    if (!M || !Bc) {
        free(M);
        free(Bc);
        return ll_err(LL_ERR_NOMEM, "ridge: solve: cannot allocate a %d x %d system", p, p);
    }
    /* LAPACK is column-major: M is symmetric (the same either way), B is transposed. */
    ll_gram_system(g, lambda, M);
    for (int i = 0; i < p; i++)
        for (int j = 0; j < q; j++) Bc[(size_t)j * p + i] = g->B[(size_t)i * q + j];
    dposv_("U", &p, &q, M, &p, Bc, &p, &info, 1);
    ll_status st = LL_OK;
    if (info == 0) {
        if (method) *method = "cholesky";
        for (int i = 0; i < p; i++)
            for (int j = 0; j < q; j++) W[(size_t)i * q + j] = Bc[(size_t)j * p + i];
    } else if (info > 0) {
        /* Not positive definite: minimum-norm solution from the eigendecomposition. */
        if (method) *method = "eigen";
        ll_gram_system(g, lambda, M);
        for (int i = 0; i < p; i++)
            for (int j = 0; j < q; j++) Bc[(size_t)j * p + i] = g->B[(size_t)i * q + j];
        double *ev = malloc((size_t)p * sizeof(double)), wq = 0;
        double *C = malloc((size_t)p * q * sizeof(double));
        int lwork = -1;
        if (!ev || !C) {
            st = ll_err(LL_ERR_NOMEM, "ridge: solve: cannot allocate the eigendecomposition");
            goto eig_done;
        }
        dsyev_("V", "U", &p, M, &p, ev, &wq, &lwork, &info, 1, 1);
        lwork = (int)wq;
        double *work = malloc((size_t)(lwork > 1 ? lwork : 1) * sizeof(double));
        if (!work) {
            st = ll_err(LL_ERR_NOMEM, "ridge: solve: cannot allocate %d doubles of LAPACK workspace", lwork);
            goto eig_done;
        }
        dsyev_("V", "U", &p, M, &p, ev, work, &lwork, &info, 1, 1);
        free(work);
        if (info != 0) {
            st = ll_err(LL_ERR_FORMAT, "ridge: dsyev did not converge (info %d) on a %d x %d system", info, p, p);
            goto eig_done;
        }
        /* M's columns are the eigenvectors V: W = V diag(1/ev) V^T B over the kept ones. */
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, p, q, p, 1.0, M, p, Bc, p, 0.0, C, p);
        double top = fabs(ev[p - 1]);
        for (int k = 0; k < p; k++) {
            double s = ev[k] > 1e-12 * top ? 1.0 / ev[k] : 0.0;
            for (int j = 0; j < q; j++) C[(size_t)j * p + k] *= s;
        }
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, p, q, p, 1.0, M, p, C, p, 0.0, Bc, p);
        for (int i = 0; i < p; i++)
            for (int j = 0; j < q; j++) W[(size_t)i * q + j] = Bc[(size_t)j * p + i];
    eig_done:
        free(ev);
        free(C);
    } else {
        st = ll_err(LL_ERR_ARG, "ridge: dposv rejected argument %d", -info);
    }
    free(M);
    free(Bc);
    return st;
}

double ll_ridge_mse(const ll_gram *g, const double *W) {
    int p = g->p, q = g->d_out;
    double n = *g->n;
    if (n <= 0) return NAN;
    double *AW = malloc((size_t)p * q * sizeof(double));
    if (!AW) return NAN;
    cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, p, q, 1.0, g->A, p, W, q, 0.0, AW, q);
    double s = 0;
    for (size_t i = 0; i < (size_t)p * q; i++) s += W[i] * (AW[i] - 2.0 * g->B[i]);
    for (int j = 0; j < q; j++) s += g->yy[j];
    free(AW);
    /* Rounding can leave a tiny negative sum for an exact fit. */
    return fmax(s, 0.0) / (n * q);
}

static ll_status ll_ridge_solve_cpu(const ll_gram *g, double lambda, double *W) {
    return ll_ridge_solve(g, lambda, W, NULL);
}

ll_status ll_ridge_select(const ll_gram *train, const ll_gram *val, const double *lambda_rel, int n_lambda,
                          double *mse, int *best) {
    return ll_ridge_select_with(train, val, lambda_rel, n_lambda, NULL, mse, best);
}

ll_status ll_ridge_select_with(const ll_gram *train, const ll_gram *val, const double *lambda_rel, int n_lambda,
                               ll_ridge_solver solve, double *mse, int *best) {
    if (!solve) solve = ll_ridge_solve_cpu;
    if (n_lambda <= 0) return ll_err(LL_ERR_ARG, "ridge: empty lambda grid");
    if (train->d_in != val->d_in || train->d_out != val->d_out)
        return ll_err(LL_ERR_SHAPE, "ridge: validation Gram %d x %d, training Gram %d x %d", val->d_in, val->d_out,
                      train->d_in, train->d_out);
    if (ll_gram_count(val) == 0) return ll_err(LL_ERR_ARG, "ridge: the validation split is empty (raise --val-frac)");
    double scale = ll_gram_feature_scale(train);
    double *W = malloc((size_t)train->p * train->d_out * sizeof(double));
    if (!W) return ll_err(LL_ERR_NOMEM, "ridge: select: cannot allocate the weights");
    double best_mse = INFINITY;
    *best = 0;
    for (int i = 0; i < n_lambda; i++) {
        ll_status st = solve(train, lambda_rel[i] * scale, W);
        if (st != LL_OK) {
            free(W);
            return ll_err_prefix(st, "lambda %g (x %g): ", lambda_rel[i], scale);
        }
        double e = ll_ridge_mse(val, W);
        if (mse) mse[i] = e;
        if (e < best_mse) {
            best_mse = e;
            *best = i;
        }
    }
    free(W);
    return LL_OK;
}

ll_status ll_ridge_predict(const double *W, int d_in, int d_out, const float *X, int ldx, int64_t n, float *Y,
                           int ldy) {
    double *acc = malloc((size_t)d_out * sizeof(double));
    if (!acc) return ll_err(LL_ERR_NOMEM, "ridge: predict: cannot allocate %d doubles", d_out);
    for (int64_t r = 0; r < n; r++) {
        const float *x = X + (size_t)r * ldx;
        for (int j = 0; j < d_out; j++) acc[j] = W[(size_t)d_in * d_out + j];
        for (int i = 0; i < d_in; i++) {
            const double xi = x[i], *w = W + (size_t)i * d_out;
            for (int j = 0; j < d_out; j++) acc[j] += xi * w[j];
        }
        for (int j = 0; j < d_out; j++) Y[(size_t)r * ldy + j] = (float)acc[j];
    }
    free(acc);
    return LL_OK;
}

static uint64_t ll_splitmix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int ll_ridge_is_val(int64_t index, double val_frac, uint64_t seed) {
    double u = (double)(ll_splitmix((uint64_t)index ^ ll_splitmix(seed)) >> 11) * 0x1.0p-53;
    return u < val_frac;
}
