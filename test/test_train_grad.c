/* Every backward pass of the trainer against central finite differences, and the whole
 * model's loss gradient the same way. Shapes are tiny so this runs in milliseconds; each
 * check compares the largest disagreement with the largest gradient, so a missing or
 * wrong term (an O(1) error) fails while float rounding (about 1e-4) passes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/ll_train_model.h"
#include "train/ll_train_ops.h"
#include "train/ll_train_rng.h"

#define FD_H 1e-2f
#define FD_TOL 1e-2

static void ll_fill(float *x, size_t n, ll_rng *r, double s) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(s * ll_rng_normal(r));
}

static double ll_dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Scalar test loss of an op: sum(out * R). f evaluates it for the current inputs. */
typedef double (*ll_loss_fn)(void *ctx);

/* Checks ana (the analytic gradient of f with respect to x[0..n)) by perturbing x. */
static void ll_check(const char *what, ll_loss_fn f, void *ctx, float *x, const float *ana, size_t n) {
    double maxa = 0, maxe = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + FD_H;
        double lp = f(ctx);
        x[i] = keep - FD_H;
        double lm = f(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * FD_H), e = fabs(num - ana[i]);
        if (fabs(ana[i]) > maxa) maxa = fabs(ana[i]);
        if (e > maxe) maxe = e, worst = i;
    }
    cr_assert(maxa > 1e-3, "%s: the analytic gradient is all ~0 (max %g): nothing checked", what, maxa);
    cr_assert(maxe <= FD_TOL * maxa, "%s: finite differences disagree at element %zu: error %g, largest gradient %g",
              what, worst, maxe, maxa);
}

/* ---- matmul ---- */
typedef struct {
    float x[6 * 5], W[4 * 5], y[6 * 4], R[6 * 4];
} ll_mm_ctx;
static double ll_mm_loss(void *p) {
    ll_mm_ctx *c = p;
    ll_top_matmul(c->y, c->x, c->W, 6, 5, 4);
    return ll_dot(c->y, c->R, 24);
}
Test(train_grad, matmul) {
    ll_rng r = {1};
    ll_mm_ctx c;
    ll_fill(c.x, 30, &r, 1), ll_fill(c.W, 20, &r, 1), ll_fill(c.R, 24, &r, 1);
    float dx[30], dW[20] = {0}, dx2[30];
    ll_top_matmul_bwd(dx, 0, dW, c.R, c.x, c.W, 6, 5, 4);
    ll_check("matmul dx", ll_mm_loss, &c, c.x, dx, 30);
    ll_check("matmul dW", ll_mm_loss, &c, c.W, dW, 20);
    /* acc_dx adds: twice the same gradient. */
    memcpy(dx2, dx, sizeof dx);
    ll_top_matmul_bwd(dx2, 1, dW, c.R, c.x, c.W, 6, 5, 4);
    for (int i = 0; i < 30; i++) cr_assert_float_eq(dx2[i], 2 * dx[i], 1e-5);
}

/* ---- embedding ---- */
typedef struct {
    float E[7 * 3], x[5 * 3], R[5 * 3];
    int32_t tok[5];
} ll_emb_ctx;
static double ll_emb_loss(void *p) {
    ll_emb_ctx *c = p;
    ll_top_embed(c->x, c->E, c->tok, 5, 3);
    return ll_dot(c->x, c->R, 15);
}
Test(train_grad, embedding) {
    ll_rng r = {2};
    ll_emb_ctx c = {.tok = {3, 0, 3, 6, 1}}; /* token 3 twice: its gradient adds up */
    ll_fill(c.E, 21, &r, 1), ll_fill(c.R, 15, &r, 1);
    float dE[21] = {0};
    ll_top_embed_bwd(dE, c.R, c.tok, 5, 3);
    ll_check("embedding", ll_emb_loss, &c, c.E, dE, 21);
}

/* ---- RMSNorm ---- */
typedef struct {
    float x[4 * 6], w[6], y[4 * 6], R[4 * 6], rstd[4];
} ll_rms_ctx;
static double ll_rms_loss(void *p) {
    ll_rms_ctx *c = p;
    ll_top_rmsnorm(c->y, c->rstd, c->x, c->w, 4, 6, 1e-5f);
    return ll_dot(c->y, c->R, 24);
}
Test(train_grad, rmsnorm) {
    ll_rng r = {3};
    ll_rms_ctx c;
    ll_fill(c.x, 24, &r, 1), ll_fill(c.w, 6, &r, 1), ll_fill(c.R, 24, &r, 1);
    ll_rms_loss(&c);
    float dx[24], dw[6] = {0};
    ll_top_rmsnorm_bwd(dx, dw, c.R, c.x, c.w, c.rstd, 4, 6);
    ll_check("rmsnorm dx", ll_rms_loss, &c, c.x, dx, 24);
    ll_check("rmsnorm dw", ll_rms_loss, &c, c.w, dw, 6);
}

/* ---- RoPE ---- */
typedef struct {
    float x[2 * 5 * 3 * 8], y[2 * 5 * 3 * 8], R[2 * 5 * 3 * 8], tab[5 * 8];
} ll_rope_ctx;
static double ll_rope_loss(void *p) {
    ll_rope_ctx *c = p;
    memcpy(c->y, c->x, sizeof c->x);
    ll_top_rope(c->y, c->tab, 2, 5, 3, 8, 0);
    return ll_dot(c->y, c->R, 240);
}
Test(train_grad, rope) {
    ll_rng r = {4};
    ll_rope_ctx c;
    ll_fill(c.x, 240, &r, 1), ll_fill(c.R, 240, &r, 1);
    ll_top_rope_table(c.tab, 5, 8, 100.0f);
    float dx[240];
    memcpy(dx, c.R, sizeof dx);
    ll_top_rope(dx, c.tab, 2, 5, 3, 8, 1);
    ll_check("rope", ll_rope_loss, &c, c.x, dx, 240);
    /* Position 0 is the identity; the rotation keeps norms. */
    ll_rope_loss(&c);
    for (int i = 0; i < 24; i++) cr_assert_float_eq(c.y[i], c.x[i], 1e-6);
    cr_assert_float_eq(ll_dot(c.y, c.y, 240), ll_dot(c.x, c.x, 240), 1e-3);
}

/* ---- attention (4 query heads over 2 kv heads) ---- */
#define AB 2
#define AT 5
#define AH 4
#define AKV 2
#define AD 4
typedef struct {
    float q[AB * AT * AH * AD], k[AB * AT * AKV * AD], v[AB * AT * AKV * AD], out[AB * AT * AH * AD],
        R[AB * AT * AH * AD], probs[AB * AH * AT * AT];
} ll_att_ctx;
static double ll_att_loss(void *p) {
    ll_att_ctx *c = p;
    ll_top_attention(c->out, c->probs, c->q, c->k, c->v, AB, AT, AH, AKV, AD);
    return ll_dot(c->out, c->R, sizeof c->R / sizeof(float));
}
Test(train_grad, attention_gqa) {
    ll_rng r = {5};
    ll_att_ctx c;
    ll_fill(c.q, sizeof c.q / 4, &r, 1), ll_fill(c.k, sizeof c.k / 4, &r, 1), ll_fill(c.v, sizeof c.v / 4, &r, 1);
    ll_fill(c.R, sizeof c.R / 4, &r, 1);
    ll_att_loss(&c);
    float dq[sizeof c.q / 4], dk[sizeof c.k / 4], dv[sizeof c.v / 4];
    ll_top_attention_bwd(dq, dk, dv, c.R, c.probs, c.q, c.k, c.v, AB, AT, AH, AKV, AD);
    ll_check("attention dq", ll_att_loss, &c, c.q, dq, sizeof c.q / 4);
    ll_check("attention dk", ll_att_loss, &c, c.k, dk, sizeof c.k / 4);
    ll_check("attention dv", ll_att_loss, &c, c.v, dv, sizeof c.v / 4);
    /* Causal: the first position of each sequence sees only its own value. */
    for (int h = 0; h < AH; h++)
        for (int i = 0; i < AD; i++) cr_assert_float_eq(c.out[h * AD + i], c.v[(h / 2) * AD + i], 1e-6);
}

/* ---- SwiGLU ---- */
typedef struct {
    float g[20], u[20], h[20], R[20];
} ll_sw_ctx;
static double ll_sw_loss(void *p) {
    ll_sw_ctx *c = p;
    ll_top_swiglu(c->h, c->g, c->u, 20);
    return ll_dot(c->h, c->R, 20);
}
Test(train_grad, swiglu) {
    ll_rng r = {6};
    ll_sw_ctx c;
    ll_fill(c.g, 20, &r, 2), ll_fill(c.u, 20, &r, 1), ll_fill(c.R, 20, &r, 1);
    float dg[20], du[20];
    ll_top_swiglu_bwd(dg, du, c.R, c.g, c.u, 20);
    ll_check("swiglu dg", ll_sw_loss, &c, c.g, dg, 20);
    ll_check("swiglu du", ll_sw_loss, &c, c.u, du, 20);
    /* In place (du == dh) gives the same. */
    float dh[20], dg2[20];
    memcpy(dh, c.R, sizeof dh);
    ll_top_swiglu_bwd(dg2, dh, dh, c.g, c.u, 20);
    for (int i = 0; i < 20; i++) cr_assert(dg2[i] == dg[i] && dh[i] == du[i]);
}

/* ---- cross-entropy ---- */
typedef struct {
    float logits[6 * 9], w[6];
    int32_t tgt[6];
} ll_xe_ctx;
static double ll_xe_loss(void *p) {
    ll_xe_ctx *c = p;
    return ll_top_xent(NULL, c->logits, c->tgt, c->w, 6, 9);
}
Test(train_grad, cross_entropy) {
    ll_rng r = {7};
    ll_xe_ctx c = {.w = {1, 0, 1, 1, 0, 2}, .tgt = {0, 8, 3, 3, 5, 1}};
    ll_fill(c.logits, 54, &r, 2);
    float d[54];
    double l = ll_top_xent(d, c.logits, c.tgt, c.w, 6, 9);
    ll_check("cross-entropy", ll_xe_loss, &c, c.logits, d, 54);
    /* Zero-weight rows get no gradient; uniform logits cost log V. */
    for (int i = 0; i < 9; i++) cr_assert(d[9 + i] == 0 && d[36 + i] == 0);
    cr_assert(l > 0);
    float flat[9] = {0};
    float one = 1;
    int32_t t0 = 4;
    cr_assert_float_eq(ll_top_xent(NULL, flat, &t0, &one, 1, 9), log(9.0), 1e-6);
}

/* ---- the whole model ---- */
typedef struct {
    ll_tmodel *m;
    int32_t tok[2 * 6], tgt[2 * 6];
    float w[2 * 6];
} ll_model_ctx;
static double ll_model_loss(void *p) {
    ll_model_ctx *c = p;
    double l;
    cr_assert_eq(ll_tmodel_step(c->m, c->tok, c->tgt, c->w, 2, 6, false, &l), LL_OK, "%s", ll_last_error());
    return l;
}
Test(train_grad, whole_model) {
    ll_tm_cfg cfg = {.vocab = 11, .d_model = 8, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .d_ff = 12,
                     .max_seq = 8, .rope_theta = 10000.0f, .norm_eps = 1e-5f};
    ll_model_ctx c;
    cr_assert_eq(ll_tmodel_new(&c.m, &cfg), LL_OK, "%s", ll_last_error());
    ll_rng r = {8};
    /* Large random weights (not the 0.02 init) so that every path carries gradient. */
    ll_fill(c.m->p, c.m->lay.n, &r, 0.5);
    for (int i = 0; i < 12; i++) {
        c.tok[i] = ll_rng_int(&r, 11);
        c.tgt[i] = ll_rng_int(&r, 11);
        c.w[i] = (float)(i % 3 != 0);
    }
    double l;
    cr_assert_eq(ll_tmodel_step(c.m, c.tok, c.tgt, c.w, 2, 6, true, &l), LL_OK);
    float *g = malloc(c.m->lay.n * sizeof(float));
    memcpy(g, c.m->g, c.m->lay.n * sizeof(float));
    cr_assert_float_eq(l, ll_model_loss(&c), 1e-6, "the loss does not depend on computing gradients");
    /* Tensor by tensor, so a failure names the tensor. */
    for (int i = 0; i < ll_tmodel_n_tensors(c.m); i++) {
        char name[128];
        int nd;
        int64_t sh[2];
        size_t off;
        ll_tmodel_tensor(c.m, i, name, sizeof name, &nd, sh, &off);
        size_t n = (size_t)sh[0] * (nd == 2 ? (size_t)sh[1] : 1);
        ll_check(name, ll_model_loss, &c, c.m->p + off, g + off, n);
    }
    free(g);
    ll_tmodel_free(c.m);
}

Test(train_grad, bad_config_is_an_error) {
    ll_tm_cfg cfg = {.vocab = 11, .d_model = 8, .n_layers = 2, .n_heads = 3, .n_kv_heads = 1, .d_ff = 12,
                     .max_seq = 8, .rope_theta = 10000.0f, .norm_eps = 1e-5f};
    ll_tmodel *m;
    cr_assert_eq(ll_tmodel_new(&m, &cfg), LL_ERR_ARG);
    cr_assert(strstr(ll_last_error(), "n_heads"), "%s", ll_last_error());
}
