/* The CPU attention kernel against a plain double-precision loop written here from the
 * definition (softmax(q k^T * scale) v, causal, optional sliding window, GQA, cached
 * keys). The kernel walks keys in transposed chunks of 256 and query rows in blocks, so
 * the cases below cross those edges: long cached contexts (over 600 keys), windows that
 * start inside a chunk, head dims that are not multiples of the vector width, and a
 * one-token decode row next to long prefill rows in the same ragged batch. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ll_backend.h"
#include "ll_test_util.h"

typedef struct {
    int n_heads, n_kv, hd, window;
    int n_seq;
    int n_new[4], n_past[4];
    int want_pattern;
} ll_attn_case;

/* Deterministic values in [-1, 1). */
static float ll_rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

static void ll_attn_reference(const ll_attn_args *a, float *z, float *const *pattern) {
    int group = a->n_heads / a->n_kv_heads;
    for (int s = 0; s < a->n_seq; s++) {
        int past = a->n_past ? a->n_past[s] : 0;
        int n_new = (int)(a->seq_off[s + 1] - a->seq_off[s]);
        int nk = past + n_new;
        double *p = malloc((size_t)nk * sizeof(double));
        for (int r = 0; r < n_new; r++)
            for (int h = 0; h < a->n_heads; h++) {
                int qi = past + r, kh = h / group;
                const float *q = a->q + ((size_t)(a->seq_off[s] + r) * a->n_heads + h) * a->head_dim;
                double mx = -DBL_MAX, sum = 0;
                for (int j = 0; j < nk; j++) {
                    int seen = j <= qi && (a->sliding_window <= 0 || j > qi - a->sliding_window);
                    if (!seen) {
                        p[j] = -INFINITY;
                        continue;
                    }
                    const float *k = a->k[s] + (size_t)j * a->kv_stride + (size_t)kh * a->head_dim;
                    double d = 0;
                    for (int i = 0; i < a->head_dim; i++) d += (double)q[i] * k[i];
                    p[j] = d * a->scale;
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j < nk; j++) {
                    p[j] = isinf(p[j]) ? 0.0 : exp(p[j] - mx);
                    sum += p[j];
                }
                float *out = z + ((size_t)(a->seq_off[s] + r) * a->n_heads + h) * a->head_dim;
                for (int i = 0; i < a->head_dim; i++) {
                    double acc = 0;
                    for (int j = 0; j < nk; j++)
                        acc += p[j] / sum * a->v[s][(size_t)j * a->kv_stride + (size_t)kh * a->head_dim + i];
                    out[i] = (float)acc;
                }
                if (pattern && pattern[s])
                    for (int j = 0; j < nk; j++) pattern[s][((size_t)h * n_new + r) * nk + j] = (float)(p[j] / sum);
            }
        free(p);
    }
}

/* Runs one case with `threads` threads; fills z (and the patterns) from the kernel and checks
 * them against the reference. Returns the kernel's z for cross-thread comparison. */
static float *ll_attn_check(const ll_attn_case *c, int threads, const char *what) {
    uint64_t seed = 0x1234567ULL + (uint64_t)c->hd * 7919 + (uint64_t)c->window;
    int64_t off[5] = {0};
    for (int s = 0; s < c->n_seq; s++) off[s + 1] = off[s] + c->n_new[s];
    int T = (int)off[c->n_seq];
    size_t qn = (size_t)T * c->n_heads * c->hd;
    float *q = malloc(qn * sizeof(float));
    for (size_t i = 0; i < qn; i++) q[i] = 2.0f * ll_rnd(&seed); /* scores spread enough to matter */
    int kv_stride = c->n_kv * c->hd + 3; /* padding: the kernel must honour the stride */
    float *kbuf[4] = {0}, *vbuf[4] = {0}, *pat[4] = {0}, *pat_ref[4] = {0};
    for (int s = 0; s < c->n_seq; s++) {
        size_t n = (size_t)(c->n_past[s] + c->n_new[s]) * kv_stride;
        kbuf[s] = malloc(n * sizeof(float));
        vbuf[s] = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            kbuf[s][i] = ll_rnd(&seed);
            vbuf[s][i] = ll_rnd(&seed);
        }
        if (c->want_pattern) {
            size_t pn = (size_t)c->n_heads * c->n_new[s] * (c->n_past[s] + c->n_new[s]);
            pat[s] = malloc(pn * sizeof(float));
            pat_ref[s] = malloc(pn * sizeof(float));
            for (size_t i = 0; i < pn; i++) pat[s][i] = NAN; /* every entry must be written */
        }
    }
    float *z = malloc(qn * sizeof(float)), *zr = malloc(qn * sizeof(float));
    for (size_t i = 0; i < qn; i++) z[i] = NAN;
    ll_attn_args a = {.q = q, .z = z, .T = T, .n_heads = c->n_heads, .n_kv_heads = c->n_kv, .head_dim = c->hd,
                      .n_seq = c->n_seq, .seq_off = off, .k = (const float *const *)kbuf,
                      .v = (const float *const *)vbuf, .kv_stride = kv_stride, .n_past = c->n_past,
                      .scale = 1.0f / sqrtf((float)c->hd), .sliding_window = c->window,
                      .pattern = c->want_pattern ? pat : NULL};
    ll_set_threads(threads);
    ll_backend_cpu()->attention(&a);
    ll_attn_reference(&a, zr, c->want_pattern ? pat_ref : NULL);
    for (size_t i = 0; i < qn; i++) cr_assert(isfinite(z[i]), "%s: z[%zu] not written", what, i);
    double e = ll_test_rel_err(z, zr, qn);
    cr_expect_lt(e, 2e-6, "%s (%d threads): z rel err %.3g", what, threads, e);
    for (int s = 0; s < c->n_seq && c->want_pattern; s++) {
        size_t pn = (size_t)c->n_heads * c->n_new[s] * (c->n_past[s] + c->n_new[s]);
        double ep = 0;
        for (size_t i = 0; i < pn; i++) {
            cr_assert(!isnan(pat[s][i]), "%s: pattern[%d][%zu] not written", what, s, i);
            ep = fmax(ep, fabs(pat[s][i] - pat_ref[s][i]));
        }
        cr_expect_lt(ep, 1e-6, "%s: pattern of sequence %d max abs err %.3g", what, s, ep);
    }
    for (int s = 0; s < c->n_seq; s++) {
        free(kbuf[s]);
        free(vbuf[s]);
        free(pat[s]);
        free(pat_ref[s]);
    }
    free(q);
    free(zr);
    return z;
}

static void ll_attn_run(const ll_attn_case *c, const char *what) {
    float *z1 = ll_attn_check(c, 1, what);
    float *z4 = ll_attn_check(c, 4, what);
    size_t n = 0;
    for (int s = 0; s < c->n_seq; s++) n += (size_t)c->n_new[s];
    n *= (size_t)c->n_heads * c->hd;
    /* Work is split differently with more threads; the sums must not change with it. */
    cr_expect_eq(memcmp(z1, z4, n * sizeof(float)), 0, "%s: 1 and 4 threads differ", what);
    free(z1);
    free(z4);
    ll_set_threads(0);
}

Test(cpu_attention, long_cached_context_gqa) {
    /* Decode row (1 new after 700 cached), a 300-row prefill after 280 cached, a short fresh one. */
    ll_attn_case c = {.n_heads = 8, .n_kv = 2, .hd = 64, .n_seq = 3, .n_new = {1, 300, 37}, .n_past = {700, 280, 0}};
    ll_attn_run(&c, "gqa hd64");
}

Test(cpu_attention, sliding_window_crossing_chunks) {
    ll_attn_case c = {.n_heads = 4, .n_kv = 1, .hd = 40, .window = 100, .n_seq = 2, .n_new = {290, 1},
                      .n_past = {250, 530}};
    ll_attn_run(&c, "window 100 hd40");
    ll_attn_case c2 = {.n_heads = 2, .n_kv = 2, .hd = 32, .window = 300, .n_seq = 1, .n_new = {520}, .n_past = {0}};
    ll_attn_run(&c2, "window 300 hd32");
}

Test(cpu_attention, odd_head_dim_with_pattern) {
    ll_attn_case c = {.n_heads = 3, .n_kv = 3, .hd = 7, .n_seq = 3, .n_new = {5, 33, 1}, .n_past = {0, 260, 9},
                      .want_pattern = 1};
    ll_attn_run(&c, "hd7 pattern");
    ll_attn_case c2 = {.n_heads = 6, .n_kv = 2, .hd = 36, .window = 20, .n_seq = 2, .n_new = {70, 2},
                       .n_past = {200, 40}, .want_pattern = 1};
    ll_attn_run(&c2, "hd36 window pattern");
}
