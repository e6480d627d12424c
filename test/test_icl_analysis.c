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

/* ---- E5 flow and E4 knockout lists on hand-made prompts ---------------------------- */

#include "icl/ll_icl_flow.h"

/* Uniform causal attention A[r][j] = 1 / (r + 1): every quantity has a closed form.
 * Prompt of 6 tokens: demo 0 input 0, label 1; demo 1 input 2, label 3; query 5. */
Test(icl_analysis, flow_closed_form) {
    int n = 6, H = 2, k = 2;
    float A[2 * 6 * 6] = {0};
    for (int h = 0; h < H; h++)
        for (int r = 0; r < n; r++)
            for (int j = 0; j <= r; j++) A[(h * n + r) * n + j] = 1.0f / (r + 1);
    ll_icl_span sp[2] = {{.in_lo = 0, .in_hi = 0}, {.in_lo = 2, .in_hi = 2}};
    int lab[2] = {1, 3};
    ll_icl_flow f;
    ll_icl_flow_prompt(A, H, n, k, sp, lab, 5, &f);
    cr_assert_float_eq(f.in_label, (0.5 + 0.25) / 2, 1e-7);
    cr_assert_float_eq(f.label_query, 2.0 / 6, 1e-7);
    cr_assert_float_eq(f.wp, (0.5 + 3 * 0.25) / 4, 1e-7);
    cr_assert_float_eq(f.pq, 1.0 / 6, 1e-7);
    double tot = 0.5 + 2.0 / 3 + 0.75 + 0.8 + 5.0 / 6;
    cr_assert_float_eq(f.ww, (tot - 1.25 - 2.0 / 6) / (15 - 4 - 2), 1e-6);
    /* heads are averaged: zero one head's label->query mass, the mean halves */
    for (int j = 0; j < n; j++) A[(1 * n + 5) * n + j] = j == 4 ? 1.0f : 0.0f;
    ll_icl_flow_prompt(A, H, n, k, sp, lab, 5, &f);
    cr_assert_float_eq(f.label_query, 1.0 / 6, 1e-7);
}

/* A 12-token prompt with BOS: demos (input [1,2], label 4) and (input [6,7], label 9), query 11. */
static void ll_fake_episodes(ll_icl_episodes *e, ll_icl_prompt *p, int *lab) {
    memset(p, 0, sizeof *p);
    memset(e, 0, sizeof *e);
    static ll_icl_span demo[2];
    demo[0] = (ll_icl_span){.in_lo = 1, .in_hi = 2, .sep_lo = 3, .sep_hi = 3, .lab_lo = 4, .lab_hi = 4};
    demo[1] = (ll_icl_span){.in_lo = 6, .in_hi = 7, .sep_lo = 8, .sep_hi = 8, .lab_lo = 9, .lab_hi = 9};
    p->n = 12, p->k = 2, p->demo = demo, p->query_pos = 11, p->has_bos = true;
    lab[0] = 4, lab[1] = 9;
    e->n = 1, e->k = 2, e->p = p, e->lab = lab;
}

Test(icl_analysis, knockout_lists) {
    ll_icl_episodes e;
    ll_icl_prompt p;
    int lab[2];
    ll_fake_episodes(&e, &p, lab);
    ll_knockout ko[4];
    int32_t idx[2 * 12 * 2 + 2 * 12];
    uint64_t rng = 5;
    int n = ll_icl_ko_build(&e, 0, 3, LL_ICL_KO_QUERY, 1, 2, false, &rng, ko, idx);
    cr_assert_eq(n, 1);
    cr_assert(ko[0].seq == 3 && ko[0].layer_lo == 1 && ko[0].layer_hi == 2 && ko[0].head == -1);
    cr_assert(ko[0].n_q == 1 && ko[0].q[0] == 11 && ko[0].n_k == 2 && ko[0].k[0] == 4 && ko[0].k[1] == 9);
    n = ll_icl_ko_build(&e, 0, 0, LL_ICL_KO_LATER, 0, 0, false, &rng, ko, idx);
    cr_assert_eq(n, 2);
    cr_assert(ko[0].n_k == 1 && ko[0].k[0] == 4 && ko[0].n_q == 7 && ko[0].q[0] == 5 && ko[0].q[6] == 11);
    cr_assert(ko[1].n_k == 1 && ko[1].k[0] == 9 && ko[1].n_q == 2 && ko[1].q[0] == 10);
    n = ll_icl_ko_build(&e, 0, 0, LL_ICL_KO_REVERSE, 0, 0, false, &rng, ko, idx);
    cr_assert_eq(n, 2);
    cr_assert(ko[1].n_q == 1 && ko[1].q[0] == 9 && ko[1].n_k == 2 && ko[1].k[0] == 6 && ko[1].k[1] == 7);
    /* controls: same amount of blocking, never a label, the query, BOS or (reverse) the own input */
    for (int trial = 0; trial < 50; trial++) {
        n = ll_icl_ko_build(&e, 0, 0, LL_ICL_KO_QUERY, 0, 0, true, &rng, ko, idx);
        cr_assert(n == 1 && ko[0].n_k == 2 && ko[0].k[0] != ko[0].k[1]);
        for (int j = 0; j < 2; j++)
            cr_assert(ko[0].k[j] > 0 && ko[0].k[j] < 11 && ko[0].k[j] != 4 && ko[0].k[j] != 9, "key %d", ko[0].k[j]);
        n = ll_icl_ko_build(&e, 0, 0, LL_ICL_KO_REVERSE, 0, 0, true, &rng, ko, idx);
        cr_assert(n == 2 && ko[1].n_k == 2);
        for (int j = 0; j < 2; j++)
            cr_assert(ko[1].k[j] > 0 && ko[1].k[j] < 9 && ko[1].k[j] != 4 && ko[1].k[j] != 6 && ko[1].k[j] != 7,
                      "reverse control key %d", ko[1].k[j]);
    }
}

/* ---- on the toy model (data/models/toy-llama, in the repository) -------------------- */

#include "tokenizer/ll_tokenizer.h"

#define TOY "data/models/toy-llama"

typedef struct {
    ll_model *m;
    ll_tokenizer *t;
    ll_icl_task *task;
    ll_icl_episodes e;
} ll_toy_run;

static void ll_toy_open(ll_toy_run *r, int k, int n) {
    memset(r, 0, sizeof *r);
    cr_assert_eq(ll_model_load(&r->m, TOY, NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_tokenizer_for_model(&r->t, TOY, NULL, r->m->cfg.vocab_size), LL_OK, "%s", ll_last_error());
    ll_icl_task_opts to = {0};
    cr_assert_eq(ll_icl_task_load("toy:color", &to, &r->task), LL_OK, "%s", ll_last_error());
    ll_icl_episode_opts eo = {.task = r->task, .k = k, .n_prompts = n, .seed = 3, .label_pos = LL_ICL_LABEL_FIRST};
    cr_assert_eq(ll_icl_template_get("default", &eo.tpl), LL_OK);
    cr_assert_eq(ll_icl_episodes_make(r->t, &eo, &r->e), LL_OK, "%s", ll_last_error());
}

static void ll_toy_close(ll_toy_run *r) {
    ll_icl_episodes_free(&r->e);
    ll_icl_task_free(r->task);
    ll_tokenizer_free(r->t);
    ll_model_free(r->m);
}

typedef struct {
    const ll_icl_episodes *e;
    int lo, hi;
    ll_icl_ko_mode mode;
    bool control;
} ll_qctx;

static int ll_qknock(void *user, int i, int seq, ll_knockout *ko, int32_t *idx) {
    ll_qctx *c = user;
    uint64_t rng = 1;
    return ll_icl_ko_build(c->e, i, seq, c->mode, c->lo, c->hi, c->control, &rng, ko, idx);
}

/* The toy model reads which table a mapping prompt asks for from its demonstrations'
 * labels: with no later position allowed to read a label position, in every layer, the
 * answer's log-probability falls (by 0.7 nats per prompt for the committed model). The
 * query's own reads of the labels are not needed (blocking only those costs 0.07 nats):
 * this model routes the labels through the positions after them. The random control is
 * logged, not compared: with this many blocked keys it also cuts the query's own input
 * off. Scores do not depend on how the prompts are batched. */
Test(icl_analysis, toy_knockout_scores) {
    ll_toy_run r;
    ll_toy_open(&r, 3, 12);
    ll_icl_score s1, s4, sk, sc;
    cr_assert_eq(ll_icl_score_run(r.m, &r.e, 1, NULL, NULL, &s1), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_icl_score_run(r.m, &r.e, 5, NULL, NULL, &s4), LL_OK, "%s", ll_last_error());
    cr_assert(s1.n == 12 && s1.correct == s4.correct && fabs(s1.logp - s4.logp) < 1e-3, "batching changed the scores");
    cr_assert_geq(s1.correct, 10, "the toy model solves toy:color with 3 demonstrations (%d / 12)", s1.correct);
    ll_qctx c = {.e = &r.e, .lo = 0, .hi = r.m->cfg.n_layers - 1, .mode = LL_ICL_KO_LATER};
    cr_assert_eq(ll_icl_score_run(r.m, &r.e, 5, ll_qknock, &c, &sk), LL_OK, "%s", ll_last_error());
    c.control = true;
    cr_assert_eq(ll_icl_score_run(r.m, &r.e, 5, ll_qknock, &c, &sc), LL_OK, "%s", ll_last_error());
    cr_log_info("toy:color k=3, 12 prompts: logp %.3f, labels cut off %.3f, control %.3f", s1.logp, sk.logp, sc.logp);
    cr_assert_lt(sk.logp, s1.logp - 0.3 * 12, "cutting the labels off in every layer: logp %g vs %g", sk.logp, s1.logp);
    ll_toy_close(&r);
}

/* The query slot of the last layer's resid_post is the residual ll_forward returns. */
Test(icl_analysis, toy_vectors_rows) {
    ll_toy_run r;
    ll_toy_open(&r, 2, 3);
    int L = r.m->cfg.n_layers, d = r.m->cfg.d_model, k = 2, n = 3;
    float *v = malloc((size_t)L * n * (k + 1) * d * sizeof *v);
    cr_assert_eq(ll_icl_vectors(r.m, &r.e, 2, LL_HOOK_RESID_POST, v), LL_OK, "%s", ll_last_error());
    for (int i = 0; i < n; i++) {
        const ll_icl_prompt *p = &r.e.p[i];
        float *ro = malloc((size_t)p->n * d * sizeof *ro);
        int64_t off[2] = {0, p->n};
        ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = p->ids};
        ll_forward_opts fo = {.resid_out = ro};
        cr_assert_eq(ll_forward(r.m, &b, &fo), LL_OK);
        const float *q = v + (((size_t)(L - 1) * n + i) * (k + 1) + k) * d;
        const float *l1 = v + (((size_t)(L - 1) * n + i) * (k + 1) + 1) * d;
        for (int j = 0; j < d; j++) {
            cr_assert(fabs(q[j] - ro[(size_t)p->query_pos * d + j]) < 1e-4, "prompt %d query dim %d", i, j);
            cr_assert(fabs(l1[j] - ro[(size_t)r.e.lab[i * k + 1] * d + j]) < 1e-4, "prompt %d label 1 dim %d", i, j);
        }
        free(ro);
    }
    free(v);
    ll_toy_close(&r);
}

/* ---- attention x gradient saliency against torch autograd --------------------------- */

#include "icl/ll_icl_saliency.h"
#include "io/ll_tensors.h"

/* |sum_h A * dL/dA| of every layer of the fixture Llama (GQA) against transformers +
 * autograd (tools/saliency_ref.py -> test/fixtures/knockout/saliency.safetensors). */
Test(icl_analysis, saliency_matches_autograd) {
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, "test/fixtures/llama_gqa", NULL), LL_OK, "%s", ll_last_error());
    ll_tensor_set ref = {0}; /* open appends to the set */
    cr_assert_eq(ll_safetensors_open(&ref, "test/fixtures/knockout/saliency.safetensors"), LL_OK, "%s", ll_last_error());
    const ll_tensor_info *tk = ll_tensor_set_find(&ref, "tokens"), *tg = ll_tensor_set_find(&ref, "target");
    const ll_tensor_info *sa = ll_tensor_set_find(&ref, "saliency"), *lo = ll_tensor_set_find(&ref, "loss");
    cr_assert(tk && tg && sa && lo && sa->dtype == LL_F32);
    int n = (int)tk->shape[0], L = m->cfg.n_layers;
    cr_assert_eq(sa->shape[0], L);
    ll_icl_saliency *s;
    cr_assert_eq(ll_icl_saliency_new(&s, m, 64), LL_OK, "%s", ll_last_error());
    float *I = malloc((size_t)L * n * n * sizeof *I);
    double loss;
    cr_assert_eq(ll_icl_saliency_prompt(s, (const int32_t *)tk->data, n, ((const int32_t *)tg->data)[0], I, &loss),
                 LL_OK, "%s", ll_last_error());
    cr_assert(fabs(loss - ((const double *)lo->data)[0]) < 1e-4, "loss %g vs %g", loss, ((const double *)lo->data)[0]);
    const float *R = (const float *)sa->data;
    double mx = 0, md = 0;
    for (size_t i = 0; i < (size_t)L * n * n; i++) {
        mx = fabs(R[i]) > mx ? fabs(R[i]) : mx;
        md = fabs(I[i] - R[i]) > md ? fabs(I[i] - R[i]) : md;
    }
    cr_assert(mx > 1e-3, "the reference saliency is all but zero");
    cr_expect(md < 1e-4 * mx + 1e-6, "saliency differs from autograd by %.3g (max %.3g)", md, mx);
    free(I);
    ll_icl_saliency_free(s);
    ll_tensor_set_free(&ref);
    ll_model_free(m);
}

/* Models the training graph cannot reproduce are refused, not silently mis-attributed. */
Test(icl_analysis, saliency_refuses_other_models) {
    const char *other[] = {"test/fixtures/qwen2", "test/fixtures/gpt2", "test/fixtures/llama3_rope", "test/fixtures/mistral"};
    for (int i = 0; i < 4; i++) {
        ll_model *m;
        cr_assert_eq(ll_model_load(&m, other[i], NULL), LL_OK, "%s", ll_last_error());
        ll_icl_saliency *s = NULL;
        ll_status st = ll_icl_saliency_new(&s, m, 32);
        cr_expect_eq(st, LL_ERR_UNSUPPORTED, "%s accepted", other[i]);
        cr_expect(strstr(ll_last_error(), "plain Llama"), "%s: %s", other[i], ll_last_error());
        ll_icl_saliency_free(s);
        ll_model_free(m);
    }
}

/* ---- the command line --------------------------------------------------------------- */

#include <hdf5.h>
#include <sys/stat.h>

#include "store/ll_h5.h"

#define BIN "build/layerlab"

/* layerlab icl e4 on the toy model: CSV rows, HDF5 columns, switches and `complete`,
 * no temporary files left, a bad option refused with usage status 2. */
Test(icl_analysis, cli_e4_outputs) {
    struct stat sb;
    if (stat(BIN, &sb)) cr_skip_test("%s is not built (make builds it)", BIN);
    char dir[] = "/tmp/ll_icl_cliXXXXXX", cmd[1024], path[256];
    cr_assert(mkdtemp(dir));
    snprintf(cmd, sizeof cmd,
             BIN " icl e4 " TOY " --task toy:color --task toy:animal --k 3 --n 4 --window 2 --stride 2 --mode later "
                 "--control --threads 1 --no-plot --out %s >/dev/null 2>&1",
             dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/e4.csv", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f, "no %s", path);
    char line[1024];
    int rows = 0;
    cr_assert(fgets(line, sizeof line, f) && !strncmp(line, "task,layer_lo,layer_hi,acc,", 27), "header: %s", line);
    while (fgets(line, sizeof line, f)) rows++;
    fclose(f);
    cr_assert_eq(rows, 2 * (1 + 2), "2 tasks x (baseline + 2 windows of 2 layers, stride 2)");
    snprintf(path, sizeof path, "%s/e4.h5", dir);
    ll_h5_quiet();
    hid_t h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(h >= 0, "cannot open %s", path);
    bool complete = false;
    char *mode = NULL, *control = NULL;
    int64_t k = 0;
    cr_assert_eq(ll_h5_get_bool(h, "complete", &complete), LL_OK);
    cr_assert_eq(ll_h5_get_str(h, "mode", &mode), LL_OK);
    cr_assert_eq(ll_h5_get_str(h, "control", &control), LL_OK);
    cr_assert_eq(ll_h5_get_i64(h, "k", &k), LL_OK);
    cr_assert(complete && !strcmp(mode, "later") && strstr(control, "random") && k == 3, "%d %s %s %lld", complete,
              mode, control, (long long)k);
    hid_t ds = H5Dopen2(h, "acc_drop", H5P_DEFAULT);
    cr_assert(ds >= 0);
    cr_assert_eq(ll_h5_extent(ds, 0), 6);
    H5Dclose(ds);
    H5Fclose(h);
    free(mode), free(control);
    snprintf(path, sizeof path, "%s/e4.h5.tmp", dir);
    cr_assert(stat(path, &sb) != 0, "temporary file left behind");
    snprintf(cmd, sizeof cmd, BIN " icl e4 " TOY " --task toy:color --window 0 >/dev/null 2>&1");
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "--window 0 gives exit %d", WEXITSTATUS(rc));
    snprintf(cmd, sizeof cmd, BIN " icl e6 " TOY " --task toy:color --bogus >/dev/null 2>&1");
    rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "an unknown option gives exit %d", WEXITSTATUS(rc));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* With an E1-E3 context, the episodes are exactly its test prompts and its candidates. */
Test(icl_analysis, episodes_share_e2_e3_prompts) {
    ll_toy_run r;
    ll_toy_open(&r, 3, 2);
    ll_icl_exp x = {.m = r.m, .tok = r.t, .task = r.task, .seed = 11};
    cr_assert_eq(ll_icl_template_get("default", &x.tp), LL_OK);
    cr_assert_eq(ll_icl_exp_init(&x), LL_OK, "%s", ll_last_error());
    ll_icl_episode_opts eo = {.task = r.task, .k = 3, .n_prompts = 4, .exp = &x};
    ll_icl_episodes e;
    cr_assert_eq(ll_icl_episodes_make(r.t, &eo, &e), LL_OK, "%s", ll_last_error());
    for (int i = 0; i < 4; i++) {
        ll_icl_prompt p;
        int dm[3], q;
        cr_assert_eq(ll_icl_exp_test_prompt(&x, i, 3, dm, &q, &p), LL_OK);
        cr_assert(p.n == e.p[i].n && !memcmp(p.ids, e.p[i].ids, (size_t)p.n * sizeof *p.ids), "prompt %d differs", i);
        cr_assert_eq(q, e.query_item[i]);
        ll_icl_prompt_free(&p);
    }
    cr_assert(e.n_cands == x.n_cand && !memcmp(e.cands, x.cand, (size_t)x.n_cand * sizeof *x.cand));
    ll_icl_episodes_free(&e);
    ll_icl_exp_free(&x);
    ll_toy_close(&r);
}
