/* Streamed ridge regression (host/lspade/ll_ridge.h) against numpy: the reference
 * (test/ridge_ref.py) solves the augmented least-squares problem with numpy.linalg.lstsq,
 * not the normal equations, so it checks the formulation as well as the arithmetic. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lspade/ll_ridge.h"

static int have_numpy(void) { return system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0; }

static uint64_t rng_state;
static double urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}
static double nrand(void) {
    double u = urand(), v = urand();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* Structured data like hidden states: a large shared offset, very different feature
 * scales, targets an affine function of the features plus noise. */
static void make_data(double *X, double *Y, int n, int d, int q, int structured, double noise) {
    double *Wt = malloc((size_t)d * q * sizeof(double)), *off = malloc(d * sizeof(double));
    double *sc = malloc(d * sizeof(double));
    for (int i = 0; i < d; i++) {
        off[i] = structured ? 20.0 * nrand() : 0.0;
        sc[i] = structured ? pow(10.0, 2.0 * urand() - 1.0) : 1.0;
    }
    for (int i = 0; i < d * q; i++) Wt[i] = nrand();
    for (int r = 0; r < n; r++) {
        for (int i = 0; i < d; i++) X[(size_t)r * d + i] = off[i] + sc[i] * nrand();
        for (int j = 0; j < q; j++) {
            double s = structured ? 3.0 + j : 0.0;
            for (int i = 0; i < d; i++) s += X[(size_t)r * d + i] * Wt[(size_t)i * q + j];
            Y[(size_t)r * q + j] = s + noise * nrand();
        }
    }
    free(Wt);
    free(off);
    free(sc);
}

/* Run the numpy reference; returns the (d+1)*q+1 doubles per lambda, or NULL. */
static double *numpy_ref(const double *X, const double *Y, int n, int d, int q, int nt, const double *lam, int nl) {
    char xf[] = "/tmp/ll_ridge_X_XXXXXX", yf[] = "/tmp/ll_ridge_Y_XXXXXX", of[] = "/tmp/ll_ridge_O_XXXXXX";
    int fx = mkstemp(xf), fy = mkstemp(yf), fo = mkstemp(of);
    cr_assert(fx >= 0 && fy >= 0 && fo >= 0);
    cr_assert_eq(write(fx, X, (size_t)n * d * 8), (ssize_t)((size_t)n * d * 8));
    cr_assert_eq(write(fy, Y, (size_t)n * q * 8), (ssize_t)((size_t)n * q * 8));
    close(fx);
    close(fy);
    close(fo);
    char lams[512] = "", cmd[1024];
    for (int i = 0; i < nl; i++)
        snprintf(lams + strlen(lams), sizeof lams - strlen(lams), "%s%.17g", i ? "," : "", lam[i]);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 test/ridge_ref.py %s %s %d %d %d %d %s %s", xf, yf, n, d, q, nt, lams,
             of);
    int rc = system(cmd);
    size_t per = (size_t)(d + 1) * q + 1;
    double *out = malloc(per * nl * sizeof(double));
    FILE *f = fopen(of, "rb");
    size_t got = f ? fread(out, sizeof(double), per * nl, f) : 0;
    if (f) fclose(f);
    unlink(xf);
    unlink(yf);
    unlink(of);
    cr_assert_eq(rc, 0, "%s failed", cmd);
    cr_assert_eq(got, per * nl, "reference output: %zu doubles, expected %zu", got, per * nl);
    return out;
}

static double max_rel(const double *a, const double *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs(a[i] - b[i]));
        mb = fmax(mb, fabs(b[i]));
    }
    return mb > 0 ? md / mb : md;
}

static void check_against_numpy(int structured, int n, int d, int q, double noise) {
    if (!have_numpy()) cr_skip_test("/usr/bin/python3 with numpy is missing (make test installs python3-numpy)");
    rng_state = 0x1234567u + structured;
    double *X = malloc((size_t)n * d * 8), *Y = malloc((size_t)n * q * 8);
    make_data(X, Y, n, d, q, structured, noise);
    int nt = n * 3 / 4;
    double lam[] = {1e-3, 0.1, 10.0, 1000.0};
    int nl = 4;
    double *ref = numpy_ref(X, Y, n, d, q, nt, lam, nl);
    ll_gram tr, va;
    cr_assert_eq(ll_gram_init(&tr, d, q), LL_OK);
    cr_assert_eq(ll_gram_init(&va, d, q), LL_OK);
    cr_assert_eq(ll_gram_add_f64(&tr, X, d, Y, q, nt), LL_OK);
    cr_assert_eq(ll_gram_add_f64(&va, X + (size_t)nt * d, d, Y + (size_t)nt * q, q, n - nt), LL_OK);
    size_t per = (size_t)(d + 1) * q + 1;
    double *W = malloc((per - 1) * 8);
    for (int k = 0; k < nl; k++) {
        const char *how;
        cr_assert_eq(ll_ridge_solve(&tr, lam[k], W, &how), LL_OK, "%s", ll_last_error());
        double e = max_rel(W, ref + per * k, per - 1);
        double mse = ll_ridge_mse(&va, W), mref = ref[per * k + per - 1];
        cr_log_info("ridge %s n %d d %d q %d lambda %g (%s): max rel |W - numpy| %.2e, val MSE %.6g vs numpy %.6g",
                    structured ? "structured" : "random", n, d, q, lam[k], how, e, mse, mref);
        cr_assert(e < 1e-8, "lambda %g: W differs from numpy.linalg.lstsq by %g (relative)", lam[k], e);
        cr_assert(fabs(mse - mref) <= 1e-8 * fmax(1.0, mref), "lambda %g: val MSE %.12g, numpy %.12g", lam[k], mse,
                  mref);
    }
    /* Selection picks numpy's argmin of the held-out MSE. Relative grid: scale first. */
    double s = ll_gram_feature_scale(&tr), rel[4], mses[4];
    for (int k = 0; k < nl; k++) rel[k] = lam[k] / s;
    int best, want = 0;
    cr_assert_eq(ll_ridge_select(&tr, &va, rel, nl, mses, &best), LL_OK, "%s", ll_last_error());
    for (int k = 1; k < nl; k++)
        if (ref[per * k + per - 1] < ref[per * want + per - 1]) want = k;
    cr_assert_eq(best, want, "selected lambda %g, numpy's best %g", lam[best], lam[want]);
    free(W);
    free(ref);
    free(X);
    free(Y);
    ll_gram_free(&tr);
    ll_gram_free(&va);
}

Test(ridge, random_data_matches_numpy_lstsq) { check_against_numpy(0, 300, 12, 3, 0.5); }

Test(ridge, structured_data_matches_numpy_lstsq) { check_against_numpy(1, 500, 24, 5, 0.01); }

/* lambda = 0 with duplicated features: not positive definite, so the eigen path gives the
 * minimum-norm solution, which is what lstsq returns too. */
Test(ridge, collinear_features_minimum_norm) {
    if (!have_numpy()) cr_skip_test("/usr/bin/python3 with numpy is missing (make test installs python3-numpy)");
    rng_state = 99;
    int n = 80, d = 6, q = 2;
    double *X = malloc((size_t)n * d * 8), *Y = malloc((size_t)n * q * 8);
    make_data(X, Y, n, d, q, 0, 0.1);
    for (int r = 0; r < n; r++) X[(size_t)r * d + 5] = X[(size_t)r * d + 4]; /* a duplicate column */
    double lam = 0;
    double *ref = numpy_ref(X, Y, n, d, q, n, &lam, 1);
    ll_gram g;
    cr_assert_eq(ll_gram_init(&g, d, q), LL_OK);
    cr_assert_eq(ll_gram_add_f64(&g, X, d, Y, q, n), LL_OK);
    double W[(6 + 1) * 2];
    const char *how;
    cr_assert_eq(ll_ridge_solve(&g, 0, W, &how), LL_OK, "%s", ll_last_error());
    double e = max_rel(W, ref, (size_t)(d + 1) * q);
    cr_log_info("collinear, lambda 0 (%s): max rel |W - numpy| %.2e", how, e);
    cr_assert_str_eq(how, "eigen");
    cr_assert(e < 1e-7, "minimum-norm solution differs from numpy by %g", e);
    free(ref);
    free(X);
    free(Y);
    ll_gram_free(&g);
}

/* The Gram of all rows equals the sum of the Grams of shards (what the all-reduce relies
 * on). Shards cut at chunk boundaries and summed in any order give bit-equal Grams and so
 * bit-equal solutions; arbitrary cuts agree to rounding. Float input equals the same values
 * given as doubles. */
static void shard_sum(const double *X, const double *Y, int d, int q, const int *cuts, const int *order, int ns,
                      ll_gram *sum) {
    ll_gram part;
    cr_assert_eq(ll_gram_init(&part, d, q), LL_OK);
    for (int k = 0; k < ns; k++) {
        int s = order[k];
        ll_gram_zero(&part);
        cr_assert_eq(ll_gram_add_f64(&part, X + (size_t)cuts[s] * d, d, Y + (size_t)cuts[s] * q, q, cuts[s + 1] - cuts[s]),
                     LL_OK);
        cr_assert_eq(ll_gram_merge(sum, &part), LL_OK);
    }
    ll_gram_free(&part);
}

Test(ridge, sharded_sum_equals_one_shot) {
    rng_state = 7;
    int n = 1000, d = 16, q = 4;
    double *X = malloc((size_t)n * d * 8), *Y = malloc((size_t)n * q * 8);
    make_data(X, Y, n, d, q, 1, 0.1);
    float *Xf = malloc((size_t)n * d * 4), *Yf = malloc((size_t)n * q * 4);
    for (int i = 0; i < n * d; i++) X[i] = Xf[i] = (float)X[i];
    for (int i = 0; i < n * q; i++) Y[i] = Yf[i] = (float)Y[i];
    ll_gram all, aligned, ragged, fl;
    cr_assert_eq(ll_gram_init(&all, d, q), LL_OK);
    cr_assert_eq(ll_gram_init(&aligned, d, q), LL_OK);
    cr_assert_eq(ll_gram_init(&ragged, d, q), LL_OK);
    cr_assert_eq(ll_gram_init(&fl, d, q), LL_OK);
    cr_assert_eq(ll_gram_add_f64(&all, X, d, Y, q, n), LL_OK);
    cr_assert_eq(ll_gram_add(&fl, Xf, d, Yf, q, n), LL_OK);
    int cuts_a[] = {0, 256, 512, 768, 1000}, order_a[] = {2, 0, 3, 1};
    int cuts_r[] = {0, 137, 512, 513, 1000}, order_r[] = {0, 1, 2, 3};
    shard_sum(X, Y, d, q, cuts_a, order_a, 4, &aligned);
    shard_sum(X, Y, d, q, cuts_r, order_r, 4, &ragged);
    size_t nd = ll_gram_n_doubles(&all);
    cr_assert_eq(ll_gram_count(&aligned), n);
    cr_assert_eq(memcmp(aligned.data, all.data, nd * 8), 0, "chunk-aligned shards in another order: Gram not bit-equal");
    double ef = max_rel(fl.data, all.data, nd), er = max_rel(ragged.data, all.data, nd);
    cr_assert(ef <= 1e-15, "float and double input (same values) give Grams %g apart", ef);
    double W1[17 * 4], W2[17 * 4], W3[17 * 4];
    cr_assert_eq(ll_ridge_solve(&all, 0.5, W1, NULL), LL_OK);
    cr_assert_eq(ll_ridge_solve(&aligned, 0.5, W2, NULL), LL_OK);
    cr_assert_eq(ll_ridge_solve(&ragged, 0.5, W3, NULL), LL_OK);
    cr_assert_eq(memcmp(W1, W2, sizeof W1), 0, "bit-equal Grams gave different solutions");
    double m1 = ll_ridge_mse(&all, W1), m3 = ll_ridge_mse(&all, W3);
    cr_log_info("shards at chunk boundaries: bit-equal; ragged shards: Gram max rel diff %.2e, W max rel diff %.2e "
                "(conditioning), training MSE %.12g vs %.12g",
                er, max_rel(W3, W1, 17 * 4), m3, m1);
    cr_assert(er <= 1e-14, "ragged shards: Gram differs by %g", er);
    cr_assert(fabs(m3 - m1) <= 1e-9 * m1, "ragged shards: fit quality %.12g vs %.12g", m3, m1);
    /* The MSE from sums equals the MSE computed row by row. */
    float *P = malloc((size_t)n * q * 4);
    cr_assert_eq(ll_ridge_predict(W1, d, q, Xf, d, n, P, q), LL_OK);
    double direct = 0;
    for (int i = 0; i < n * q; i++) direct += ((double)P[i] - Y[i]) * ((double)P[i] - Y[i]);
    direct /= (double)n * q;
    cr_assert(fabs(m1 - direct) <= 1e-4 * direct, "MSE from the Gram %.9g, row by row %.9g", m1, direct);
    free(P);
    free(X);
    free(Y);
    free(Xf);
    free(Yf);
    ll_gram_free(&all);
    ll_gram_free(&aligned);
    ll_gram_free(&ragged);
    ll_gram_free(&fl);
}

Test(ridge, bad_arguments_are_errors) {
    ll_gram g;
    cr_assert_eq(ll_gram_init(&g, 0, 3), LL_ERR_ARG);
    cr_assert(strstr(ll_last_error(), "d_in"), "%s", ll_last_error());
    cr_assert_eq(ll_gram_init(&g, 3, 2), LL_OK);
    double W[8];
    cr_assert_eq(ll_ridge_solve(&g, 1.0, W, NULL), LL_ERR_ARG, "empty Gram must be refused");
    cr_assert_eq(ll_ridge_solve(&g, -1.0, W, NULL), LL_ERR_ARG);
    ll_gram h;
    cr_assert_eq(ll_gram_init(&h, 4, 2), LL_OK);
    cr_assert_eq(ll_gram_merge(&g, &h), LL_ERR_SHAPE);
    double rel = 1;
    int best;
    cr_assert_eq(ll_ridge_select(&g, &g, &rel, 1, NULL, &best), LL_ERR_ARG, "empty validation split");
    ll_gram_free(&g);
    ll_gram_free(&h);
}

Test(ridge, validation_split_is_deterministic) {
    int n = 20000, held = 0;
    for (int i = 0; i < n; i++) {
        int v = ll_ridge_is_val(i, 0.2, 5);
        cr_assert_eq(v, ll_ridge_is_val(i, 0.2, 5));
        held += v;
    }
    cr_assert(fabs(held / (double)n - 0.2) < 0.015, "held out %d of %d for 0.2", held, n);
    cr_assert_eq(ll_ridge_is_val(3, 0.0, 1), 0);
    cr_assert_eq(ll_ridge_is_val(3, 1.0, 1), 1);
}
