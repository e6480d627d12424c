/* host/icl/ll_icl_analysis.c on constructed inputs with known answers (identical vectors
 * have cosine 1, orthogonal ones 0; a planted direction is PCA's first axis with its
 * variance; planted factor variance is attributed to its factor by dPCA), then the same
 * quantities against an independent numpy implementation (tools/icl_analysis_ref.py,
 * run with /usr/bin/python3 when it has numpy, skipped otherwise). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "icl/ll_icl_analysis.h"

static double ll_rn(uint64_t *s) { /* uniform in [-1, 1) */
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / (double)(1ULL << 53) * 2.0 - 1.0;
}

Test(icl_analysis, cosine_known) {
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4}, c[4] = {-2, 1, -4, 3}, z[4] = {0};
    float m[4] = {-1, -2, -3, -4}, s[4] = {10, 20, 30, 40};
    cr_assert_float_eq(ll_icl_cosine(a, b, 4), 1.0, 1e-12);
    cr_assert_float_eq(ll_icl_cosine(a, s, 4), 1.0, 1e-12, "scale-free");
    cr_assert_float_eq(ll_icl_cosine(a, c, 4), 0.0, 1e-12);
    cr_assert_float_eq(ll_icl_cosine(a, m, 4), -1.0, 1e-12);
    cr_assert(isnan(ll_icl_cosine(a, z, 4)), "a zero vector has no direction");
    /* locals e1, e1, e2 and global e1: pairs (1, 0, 0) -> 1/3; to global (1, 1, 0) -> 2/3 */
    float loc[3 * 3] = {1, 0, 0, 1, 0, 0, 0, 1, 0}, g[3] = {2, 0, 0};
    double ll, lg, per[3];
    ll_icl_cos_summary(loc, 3, g, 3, &ll, &lg, per);
    cr_assert_float_eq(ll, 1.0 / 3, 1e-12);
    cr_assert_float_eq(lg, 2.0 / 3, 1e-12);
    cr_assert_float_eq(per[2], 0.0, 1e-12);
    ll_icl_cos_summary(loc, 1, g, 3, &ll, &lg, NULL);
    cr_assert(isnan(ll), "one demonstration has no pairs");
    /* a zero local vector is left out of the means */
    float loc2[2 * 3] = {1, 0, 0, 0, 0, 0};
    ll_icl_cos_summary(loc2, 2, g, 3, &ll, &lg, NULL);
    cr_assert(isnan(ll));
    cr_assert_float_eq(lg, 1.0, 1e-12);
}

/* n rows = mean + t_i * sigma * u + eps * noise, u a unit vector. */
static float *ll_planted(int n, int d, const double *u, double sigma, double eps, uint64_t seed) {
    float *X = malloc((size_t)n * d * sizeof *X);
    for (int r = 0; r < n; r++) {
        double t = ll_rn(&seed) * sqrt(3.0); /* unit variance */
        for (int i = 0; i < d; i++) X[(size_t)r * d + i] = (float)(0.5 * i + t * sigma * u[i] + eps * ll_rn(&seed));
    }
    return X;
}

static void ll_pca_planted(int n, int d) {
    double *u = calloc((size_t)d, sizeof *u);
    for (int i = 0; i < d; i++) u[i] = (i % 3 == 0) ? 1 : (i % 3 == 1 ? -0.5 : 0.25);
    double nn = 0;
    for (int i = 0; i < d; i++) nn += u[i] * u[i];
    for (int i = 0; i < d; i++) u[i] /= sqrt(nn);
    float *X = ll_planted(n, d, u, 2.0, 1e-3, 7);
    double axes[2 * 64], var[2], total;
    cr_assert_eq(ll_icl_pca(X, n, d, 2, axes, var, &total), LL_OK, "%s", ll_last_error());
    /* the sample variance along u, computed directly */
    double m = 0, s = 0;
    for (int r = 0; r < n; r++) {
        double p = 0;
        for (int i = 0; i < d; i++) p += X[(size_t)r * d + i] * u[i];
        m += p, s += p * p;
    }
    double vu = (s - m * m / n) / (n - 1);
    double dot = 0;
    for (int i = 0; i < d; i++) dot += axes[i] * u[i];
    cr_assert(fabs(fabs(dot) - 1) < 1e-5, "n %d d %d: first axis . u = %g", n, d, dot);
    cr_assert(fabs(var[0] - vu) < 1e-4 * vu, "n %d d %d: first variance %g, along u %g", n, d, var[0], vu);
    cr_assert(var[1] < 1e-5, "second variance %g is noise", var[1]);
    cr_assert(fabs(total - var[0]) < 1e-4 * total, "total %g vs %g", total, var[0]);
    free(X);
    free(u);
}

Test(icl_analysis, pca_planted_direction) {
    ll_pca_planted(200, 6); /* covariance route */
    ll_pca_planted(12, 64); /* Gram route (d > n) */
}

Test(icl_analysis, pca_bad_input) {
    float X[4] = {1, 2, 3, 4};
    cr_assert_eq(ll_icl_pca(X, 1, 4, 1, NULL, NULL, NULL), LL_ERR_ARG);
    cr_assert_eq(ll_icl_pca(X, 2, 2, 3, NULL, NULL, NULL), LL_ERR_ARG);
    int lv[2] = {0, 3}, nl = 2;
    ll_icl_dpca r;
    cr_assert_eq(ll_icl_dpca_fit(X, 2, 2, lv, 1, &nl, 1, &r), LL_ERR_ARG);
    cr_assert(strstr(ll_last_error(), "level 3"), "%s", ll_last_error());
}

/* Balanced 3 x 2 x 4 design: factor A moves along u by a[A], factor B along v by b[B]. */
#define NA 3
#define NB 2
#define NR 4
static const double fa[NA] = {-1.5, 0.5, 1.0}, fb[NB] = {-0.4, 0.4};

static float *ll_dpca_data(int d, int *lev, double eps, double *u, double *v) {
    int n = NA * NB * NR;
    for (int i = 0; i < d; i++) u[i] = v[i] = 0;
    u[0] = 0.6, u[1] = 0.8;   /* unit */
    v[0] = 0.8, v[1] = -0.6;  /* unit, orthogonal to u */
    v[2] = 0;
    float *X = malloc((size_t)n * d * sizeof *X);
    uint64_t seed = 99;
    int r = 0;
    for (int a = 0; a < NA; a++)
        for (int b = 0; b < NB; b++)
            for (int k = 0; k < NR; k++, r++) {
                lev[r * 2] = a, lev[r * 2 + 1] = b;
                for (int i = 0; i < d; i++)
                    X[(size_t)r * d + i] = (float)(1.0 + fa[a] * u[i] + fb[b] * v[i] + eps * ll_rn(&seed));
            }
    return X;
}

Test(icl_analysis, dpca_planted_factors) {
    int d = 5, n = NA * NB * NR, lev[NA * NB * NR * 2], nl[2] = {NA, NB};
    double u[5], v[5];
    float *X = ll_dpca_data(d, lev, 0.0, u, v);
    ll_icl_dpca r;
    cr_assert_eq(ll_icl_dpca_fit(X, n, d, lev, 2, nl, 2, &r), LL_OK, "%s", ll_last_error());
    double ma = (fa[0] + fa[1] + fa[2]) / 3, va = 0, vb = 0.16;
    for (int a = 0; a < NA; a++) va += (fa[a] - ma) * (fa[a] - ma) / NA;
    cr_assert(fabs(r.var[0] - va) < 1e-5, "factor A variance %g, planted %g", r.var[0], va);
    cr_assert(fabs(r.var[1] - vb) < 1e-5, "factor B variance %g, planted %g", r.var[1], vb);
    cr_assert(fabs(r.total - va - vb) < 1e-5, "total %g", r.total);
    cr_assert(fabs(r.rest) < 1e-5, "no interaction or noise was planted, rest %g", r.rest);
    double da = 0, db = 0;
    for (int i = 0; i < d; i++) da += r.axes[i] * u[i], db += r.axes[(size_t)2 * d + i] * v[i];
    cr_assert(fabs(fabs(da) - 1) < 1e-5 && fabs(fabs(db) - 1) < 1e-5, "axes . planted: %g %g", da, db);
    cr_assert(fabs(r.explained[0] - va / (va + vb)) < 1e-5, "A's axis explains %g", r.explained[0]);
    cr_assert(r.axis_var[1] < 1e-9, "factor A has two directions at most; its second axis variance is %g", r.axis_var[1]);
    ll_icl_dpca_free(&r);
    free(X);
}

static int ll_have_numpy(void) { return system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0; }

static void ll_write(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* Both PCAs and dPCA against numpy on noisy data (noise makes every quantity non-trivial). */
static void ll_vs_numpy(int d) {
    if (!ll_have_numpy()) cr_skip_test("/usr/bin/python3 has no numpy");
    int n = NA * NB * NR, lev[NA * NB * NR * 2], nl[2] = {NA, NB}, K = 2;
    double *u = calloc((size_t)d, sizeof *u), *v = calloc((size_t)d, sizeof *v);
    float *X = ll_dpca_data(d, lev, 0.3, u, v);
    char dir[] = "/tmp/ll_icl_anXXXXXX", px[64], pl[64], po[64], cmd[512];
    cr_assert(mkdtemp(dir));
    snprintf(px, sizeof px, "%s/x", dir), snprintf(pl, sizeof pl, "%s/l", dir), snprintf(po, sizeof po, "%s/o", dir);
    ll_write(px, X, (size_t)n * d * sizeof *X);
    ll_write(pl, lev, sizeof lev);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tools/icl_analysis_ref.py %s %d %d %s 2 %d,%d %d %s", px, n, d, pl, NA,
             NB, K, po);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    size_t nv = (size_t)K + (size_t)K * d + 1 + 1 + 2 + 2 * (size_t)K * d + 2 * K + 2 * K;
    double *ref = malloc(nv * sizeof *ref);
    FILE *f = fopen(po, "rb");
    cr_assert(f);
    cr_assert_eq(fread(ref, sizeof *ref, nv, f), nv, "short reference output");
    fclose(f);
    double *axes = malloc((size_t)K * d * sizeof *axes), var[2], tot;
    cr_assert_eq(ll_icl_pca(X, n, d, K, axes, var, &tot), LL_OK, "%s", ll_last_error());
    const double *p = ref;
    for (int c = 0; c < K; c++) cr_expect(fabs(var[c] - p[c]) < 1e-5 * p[0], "d %d PCA var %d: %g vs numpy %g", d, c, var[c], p[c]);
    p += K;
    for (int i = 0; i < K * d; i++) cr_expect(fabs(axes[i] - p[i]) < 1e-4, "d %d PCA axis entry %d: %g vs %g", d, i, axes[i], p[i]);
    p += (size_t)K * d;
    cr_expect(fabs(tot - *p) < 1e-6 * *p, "PCA total %g vs %g", tot, *p);
    p++;
    ll_icl_dpca r;
    cr_assert_eq(ll_icl_dpca_fit(X, n, d, lev, 2, nl, K, &r), LL_OK, "%s", ll_last_error());
    cr_expect(fabs(r.total - *p) < 1e-6 * *p, "dPCA total %g vs %g", r.total, *p);
    p++;
    for (int f = 0; f < 2; f++) cr_expect(fabs(r.var[f] - p[f]) < 1e-6 * r.total, "factor %d var %g vs %g", f, r.var[f], p[f]);
    p += 2;
    /* factor B has 2 levels: one non-null axis; compare only axes with variance */
    for (int f = 0; f < 2; f++)
        for (int c = 0; c < K; c++) {
            const double *ra = p + ((size_t)f * K + c) * d;
            if (r.axis_var[f * K + c] < 1e-9 * r.total) continue;
            for (int i = 0; i < d; i++)
                cr_expect(fabs(r.axes[((size_t)f * K + c) * d + i] - ra[i]) < 1e-4, "factor %d axis %d entry %d: %g vs %g",
                          f, c, i, r.axes[((size_t)f * K + c) * d + i], ra[i]);
        }
    p += 2 * (size_t)K * d;
    for (int e = 0; e < 2 * K; e++) cr_expect(fabs(r.axis_var[e] - p[e]) < 1e-6 * r.total, "axis var %d: %g vs %g", e, r.axis_var[e], p[e]);
    p += 2 * K;
    for (int e = 0; e < 2 * K; e++) {
        if (r.axis_var[e] < 1e-9 * r.total) continue;
        cr_expect(fabs(r.explained[e] - p[e]) < 1e-5, "explained %d: %g vs %g", e, r.explained[e], p[e]);
    }
    ll_icl_dpca_free(&r);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    free(ref), free(axes), free(X), free(u), free(v);
}

Test(icl_analysis, against_numpy_cov_route) { ll_vs_numpy(5); }
Test(icl_analysis, against_numpy_gram_route) { ll_vs_numpy(40); }
