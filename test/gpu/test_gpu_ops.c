/* Every CUDA op against the CPU backend over a table of shapes, by normalised mean
 * squared error with a threshold per op (ggml's test-backend-ops is the pattern).
 *
 * Thresholds, and why:
 *   exact ops (embed, gather/scatter): 0, the same fp32 arithmetic on the same bf16 values;
 *   norms, RoPE, activations, attention: 1e-10, fp32 with a different summation order
 *     or device libm (expf, tanhf) a few ulps off glibc;
 *   matmul against the CPU on the same bf16-rounded operands: 1e-9 (fp32 accumulation
 *     order), and against the unrounded fp32 product: 1e-4 (bf16 operands, ~2^-9 each).
 * Outputs are poisoned with NaN before each run, so an element a kernel never wrote fails. */
#include "ll_gpu_test.h"

#include "backend/cpu/ll_cpu.h"
#include "model/ll_hooks.h"

#define LL_EXPECT_NMSE(got, ref, n, thr, ...)                                                                     \
    do {                                                                                                          \
        double e_ = ll_gt_nmse((got), (ref), (n));                                                                \
        cr_expect(e_ <= (thr), "nmse %.3g > %.1g: " __VA_ARGS__, e_, (double)(thr));                              \
    } while (0)

Test(gpu_ops, embed_bf16_table_with_and_without_positions) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    struct { int T, d, V, P; } cases[] = {{1, 64, 50, 0}, {37, 100, 301, 64}, {300, 4096, 1000, 512}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int T = cases[c].T, d = cases[c].d, V = cases[c].V, P = cases[c].P;
        float *tok = ll_gt_rand((size_t)V * d, 1.0f, 11 + c);
        ll_gt_round_bf16(tok, (size_t)V * d); /* the CPU sees what the GPU stores */
        float *pe = P ? ll_gt_rand((size_t)P * d, 0.5f, 12 + c) : NULL;
        int32_t *ids = malloc((size_t)T * 4), *pos = malloc((size_t)T * 4);
        for (int t = 0; t < T; t++) {
            ids[t] = (t * 7919 + 3) % V;
            pos[t] = P ? (t * 31) % P : t;
        }
        float *ref = malloc((size_t)T * d * 4);
        ll_cpu_embed(ref, tok, pe, ids, pos, T, d);
        ll_mat src = {.w = tok, .out = V, .in = d, .ld = d, .trans = true}, dm;
        void *owned;
        cr_assert_eq(be->load_matrix(&dm, &owned, &src, "test table"), LL_OK, "%s", ll_last_error());
        float *dpe = pe ? ll_gt_up(be, pe, (size_t)P * d) : NULL;
        int32_t *dids = be->alloc((size_t)T * 4), *dpos = be->alloc((size_t)T * 4);
        be->from_host(dids, ids, (size_t)T * 4);
        be->from_host(dpos, pos, (size_t)T * 4);
        float *dx = ll_gt_poisoned(be, (size_t)T * d);
        be->embed(dx, dm.w, dpe, dids, dpos, T, d);
        float *got = ll_gt_down(be, dx, (size_t)T * d);
        LL_EXPECT_NMSE(got, ref, (size_t)T * d, 0.0, "embed T %d d %d", T, d);
        be->free(owned);
        if (dpe) be->free(dpe);
        be->free(dids);
        be->free(dpos);
        be->free(dx);
        free(tok);
        free(pe);
        free(ids);
        free(pos);
        free(ref);
        free(got);
    }
}

Test(gpu_ops, rmsnorm_and_layernorm) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    struct { int T, d; } cases[] = {{1, 64}, {7, 100}, {513, 4096}, {3, 5000}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int T = cases[c].T, d = cases[c].d;
        size_t n = (size_t)T * d;
        float *x = ll_gt_rand(n, 3.0f, 21 + c), *w = ll_gt_rand((size_t)d, 1.0f, 22 + c),
              *b = ll_gt_rand((size_t)d, 0.1f, 23 + c);
        float *ref = malloc(n * 4);
        float *dx = ll_gt_up(be, x, n), *dw = ll_gt_up(be, w, (size_t)d), *db = ll_gt_up(be, b, (size_t)d);
        for (int kind = 0; kind < 3; kind++) {
            float *dy = ll_gt_poisoned(be, n);
            if (kind == 0) {
                ll_cpu_rmsnorm(ref, x, w, T, d, 1e-5f);
                be->rmsnorm(dy, dx, dw, T, d, 1e-5f);
            } else {
                ll_cpu_layernorm(ref, x, w, kind == 1 ? b : NULL, T, d, 1e-5f);
                be->layernorm(dy, dx, dw, kind == 1 ? db : NULL, T, d, 1e-5f);
            }
            float *got = ll_gt_down(be, dy, n);
            LL_EXPECT_NMSE(got, ref, n, 1e-10, "%s T %d d %d", kind == 0 ? "rmsnorm" : kind == 1 ? "layernorm" : "layernorm (no bias)", T, d);
            free(got);
            be->free(dy);
        }
        be->free(dx);
        be->free(dw);
        be->free(db);
        free(x);
        free(w);
        free(b);
        free(ref);
    }
}

Test(gpu_ops, rope_both_layouts) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    struct { int T, H, hd; } cases[] = {{1, 4, 8}, {9, 32, 64}, {300, 8, 128}, {5, 3, 16}};
    ll_rope_layout lay[] = {LL_ROPE_ROTATE_HALF, LL_ROPE_INTERLEAVED};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int li = 0; li < 2; li++) {
            int T = cases[c].T, H = cases[c].H, hd = cases[c].hd;
            size_t n = (size_t)T * H * hd;
            float *x = ll_gt_rand(n, 1.0f, 31 + c), *inv = malloc((size_t)hd / 2 * 4);
            for (int i = 0; i < hd / 2; i++) inv[i] = powf(500000.0f, -2.0f * i / hd);
            int32_t *pos = malloc((size_t)T * 4);
            for (int t = 0; t < T; t++) pos[t] = (t * 977 + 13) % 8000;
            float *dx = ll_gt_up(be, x, n), *dinv = ll_gt_up(be, inv, (size_t)hd / 2);
            int32_t *dpos = be->alloc((size_t)T * 4);
            be->from_host(dpos, pos, (size_t)T * 4);
            ll_cpu_rope(x, pos, T, H, hd, inv, lay[li]);
            be->rope(dx, dpos, T, H, hd, dinv, lay[li]);
            float *got = ll_gt_down(be, dx, n);
            LL_EXPECT_NMSE(got, x, n, 1e-10, "rope layout %d T %d H %d hd %d", li, T, H, hd);
            be->free(dx);
            be->free(dinv);
            be->free(dpos);
            free(x);
            free(inv);
            free(pos);
            free(got);
        }
}

Test(gpu_ops, activations_and_residual_add) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    size_t sizes[] = {1, 1000, (1u << 20) + 3};
    for (size_t c = 0; c < sizeof sizes / sizeof *sizes; c++) {
        size_t n = sizes[c];
        float *g = ll_gt_rand(n, 8.0f, 41 + c), *u = ll_gt_rand(n, 2.0f, 42 + c);
        float *ref = malloc(n * 4);
        float *dg = ll_gt_up(be, g, n), *du = ll_gt_up(be, u, n), *dout = ll_gt_poisoned(be, n);
        ll_cpu_swiglu(ref, g, u, n);
        be->swiglu(dout, dg, du, n);
        float *got = ll_gt_down(be, dout, n);
        LL_EXPECT_NMSE(got, ref, n, 1e-10, "swiglu n %zu", n);
        free(got);
        memcpy(ref, g, n * 4);
        ll_cpu_gelu_new(ref, n);
        be->gelu_new(dg, n);
        got = ll_gt_down(be, dg, n);
        LL_EXPECT_NMSE(got, ref, n, 1e-10, "gelu_new n %zu", n);
        free(got);
        memcpy(ref, u, n * 4);
        ll_cpu_add(ref, g, n);
        be->free(dg);
        dg = ll_gt_up(be, g, n);
        be->add(du, dg, n);
        got = ll_gt_down(be, du, n);
        LL_EXPECT_NMSE(got, ref, n, 0.0, "add n %zu", n);
        free(got);
        be->free(dg);
        be->free(du);
        be->free(dout);
        free(g);
        free(u);
        free(ref);
    }
}

Test(gpu_ops, matmul_bf16_against_cpu) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    struct { int T, out, in; bool trans; int ld_extra; bool bias, acc; } cases[] = {
        {1, 64, 64, true, 0, false, false},      {7, 96, 80, false, 192, true, false},
        {129, 512, 384, true, 16, true, false},  {1, 4096, 4096, true, 0, false, false},
        {300, 1000, 768, true, 0, true, true},   {33, 48, 16, false, 0, false, true},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int T = cases[c].T, O = cases[c].out, I = cases[c].in;
        bool tr = cases[c].trans;
        int ld = (tr ? I : O) + cases[c].ld_extra;
        size_t wn = (size_t)(tr ? O : I) * ld;
        float *w = ll_gt_rand(wn, 0.05f, 51 + c), *x = ll_gt_rand((size_t)T * I, 1.0f, 52 + c);
        float *bias = cases[c].bias ? ll_gt_rand((size_t)O, 0.5f, 53 + c) : NULL;
        float *y0 = ll_gt_rand((size_t)T * O, 1.0f, 54 + c); /* starting y for accumulate */
        ll_mat m = {.w = w, .out = O, .in = I, .ld = ld, .trans = tr}, dm;
        void *owned;
        cr_assert_eq(be->load_matrix(&dm, &owned, &m, "test matrix"), LL_OK, "%s", ll_last_error());
        float *dx = ll_gt_up(be, x, (size_t)T * I), *db = bias ? ll_gt_up(be, bias, (size_t)O) : NULL;
        float *dy = cases[c].acc ? ll_gt_up(be, y0, (size_t)T * O) : ll_gt_poisoned(be, (size_t)T * O);
        be->matmul(dy, dx, &dm, db, T, cases[c].acc);
        float *got = ll_gt_down(be, dy, (size_t)T * O);
        /* fp32 reference, then the same on bf16-rounded operands */
        float *ref = malloc((size_t)T * O * 4);
        memcpy(ref, y0, (size_t)T * O * 4);
        ll_cpu_matmul(ref, x, &m, bias, T, cases[c].acc);
        LL_EXPECT_NMSE(got, ref, (size_t)T * O, 1e-4, "matmul vs fp32, case %zu", c);
        ll_gt_round_bf16(w, wn);
        ll_gt_round_bf16(x, (size_t)T * I);
        memcpy(ref, y0, (size_t)T * O * 4);
        ll_cpu_matmul(ref, x, &m, bias, T, cases[c].acc);
        LL_EXPECT_NMSE(got, ref, (size_t)T * O, 1e-9, "matmul vs bf16-rounded operands, case %zu", c);
        be->free(owned);
        be->free(dx);
        be->free(dy);
        if (db) be->free(db);
        free(w);
        free(x);
        free(bias);
        free(y0);
        free(ref);
        free(got);
    }
}

Test(gpu_ops, matmul_refuses_host_weights_and_says_so) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    float w[4] = {1, 2, 3, 4};
    ll_mat m = {.w = w, .out = 2, .in = 2, .ld = 2, .trans = true}; /* fp32 host: never uploaded */
    float *dx = ll_gt_poisoned(be, 2), *dy = ll_gt_poisoned(be, 2);
    be->matmul(dy, dx, &m, NULL, 1, false);
    cr_expect_eq(be->sync(), LL_ERR_ARG);
    cr_expect(strstr(ll_last_error(), "not an uploaded bf16 matrix") != NULL, "message: %s", ll_last_error());
    cr_expect_eq(be->sync(), LL_OK, "the error is reported once");
    be->free(dx);
    be->free(dy);
}

Test(gpu_ops, out_of_memory_names_the_size) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    void *p = be->alloc((size_t)1 << 50);
    cr_expect_null(p);
    cr_expect(strstr(ll_last_error(), "1125899906842624 bytes") != NULL, "message: %s", ll_last_error());
    cr_expect_eq(be->sync(), LL_OK, "a refused allocation leaves the device usable");
}

Test(gpu_ops, gather_and_scatter_rows) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    int T = 50, W = 300, n = 7;
    int64_t rows[7] = {49, 0, 3, 3, 17, 48, 1};
    int64_t urows[7] = {49, 0, 3, 17, 48, 1, 22}; /* scatter needs distinct targets */
    float *x = ll_gt_rand((size_t)T * W, 1.0f, 61), *g = malloc((size_t)n * W * 4), *s = malloc((size_t)T * W * 4);
    ll_cpu_gather_rows(g, x, rows, n, W);
    float *dx = ll_gt_up(be, x, (size_t)T * W), *dg = ll_gt_poisoned(be, (size_t)n * W);
    be->gather_rows(dg, dx, rows, n, W);
    float *got = ll_gt_down(be, dg, (size_t)n * W);
    LL_EXPECT_NMSE(got, g, (size_t)n * W, 0.0, "gather");
    memcpy(s, x, (size_t)T * W * 4);
    ll_cpu_scatter_rows(s, g, urows, n, W);
    be->scatter_rows(dx, dg, urows, n, W);
    free(got);
    got = ll_gt_down(be, dx, (size_t)T * W);
    LL_EXPECT_NMSE(got, s, (size_t)T * W, 0.0, "scatter");
    be->free(dx);
    be->free(dg);
    free(x);
    free(g);
    free(s);
    free(got);
}

/* ---- attention ----------------------------------------------------------------------- */

typedef struct {
    int H, Hkv, hd, window;
    int n_seq;
    int n_new[3], n_past[3];
    int pattern;
} ll_gpu_attn_case;

static void ll_gpu_attn_run(const ll_backend *be, const ll_gpu_attn_case *c, size_t ci, double thr) {
    int64_t off[4] = {0};
    for (int s = 0; s < c->n_seq; s++) off[s + 1] = off[s] + c->n_new[s];
    int T = (int)off[c->n_seq], kw = c->Hkv * c->hd;
    int kv_stride = kw + (ci % 2 ? 0 : 8); /* a padded stride in half the cases */
    size_t qn = (size_t)T * c->H * c->hd;
    float *q = ll_gt_rand(qn, 2.0f, 71 + ci);
    float *hk[3], *hv[3], *dk[3], *dv[3], *hp[3] = {0}, *dp[3] = {0};
    int nk[3];
    for (int s = 0; s < c->n_seq; s++) {
        nk[s] = c->n_past[s] + c->n_new[s];
        hk[s] = ll_gt_rand((size_t)nk[s] * kv_stride, 1.0f, 72 + ci * 8 + s);
        hv[s] = ll_gt_rand((size_t)nk[s] * kv_stride, 1.0f, 73 + ci * 8 + s);
        dk[s] = ll_gt_up(be, hk[s], (size_t)nk[s] * kv_stride);
        dv[s] = ll_gt_up(be, hv[s], (size_t)nk[s] * kv_stride);
        if (c->pattern) {
            size_t pn = (size_t)c->H * c->n_new[s] * nk[s];
            hp[s] = malloc(pn * 4);
            dp[s] = ll_gt_poisoned(be, pn);
        }
    }
    float *ref = malloc(qn * 4);
    ll_attn_args a = {.q = q, .z = ref, .T = T, .n_heads = c->H, .n_kv_heads = c->Hkv, .head_dim = c->hd,
                      .n_seq = c->n_seq, .seq_off = off, .k = (const float *const *)hk,
                      .v = (const float *const *)hv, .kv_stride = kv_stride, .n_past = c->n_past,
                      .scale = 1.0f / sqrtf((float)c->hd), .sliding_window = c->window,
                      .pattern = c->pattern ? hp : NULL};
    ll_cpu_attention(&a);
    float *dq = ll_gt_up(be, q, qn), *dz = ll_gt_poisoned(be, qn);
    ll_attn_args b = a;
    b.q = dq;
    b.z = dz;
    b.k = (const float *const *)dk;
    b.v = (const float *const *)dv;
    b.pattern = c->pattern ? dp : NULL;
    be->attention(&b);
    float *got = ll_gt_down(be, dz, qn);
    LL_EXPECT_NMSE(got, ref, qn, thr, "attention case %zu (H %d/%d hd %d T %d window %d, LL_ATTN=%s)", ci, c->H,
                   c->Hkv, c->hd, T, c->window, getenv("LL_ATTN") ? getenv("LL_ATTN") : "");
    free(got);
    for (int s = 0; s < c->n_seq; s++) {
        if (c->pattern) {
            size_t pn = (size_t)c->H * c->n_new[s] * nk[s];
            float *gp = ll_gt_down(be, dp[s], pn);
            LL_EXPECT_NMSE(gp, hp[s], pn, thr, "attention pattern case %zu seq %d", ci, s);
            free(gp);
            be->free(dp[s]);
            free(hp[s]);
        }
        be->free(dk[s]);
        be->free(dv[s]);
        free(hk[s]);
        free(hv[s]);
    }
    be->free(dq);
    be->free(dz);
    free(q);
    free(ref);
}

Test(gpu_ops, attention_shape_table) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    const ll_gpu_attn_case cases[] = {
        /* T = 1 prefill, head sizes 64 and 128 */
        {8, 8, 64, 0, 1, {1}, {0}, 0},
        {8, 8, 128, 0, 1, {1}, {0}, 0},
        /* odd T, GQA 1, 2, 4, 8 */
        {8, 8, 64, 0, 1, {37}, {0}, 1},
        {8, 4, 128, 0, 1, {37}, {0}, 0},
        {16, 4, 64, 0, 1, {45}, {0}, 0},
        {32, 4, 128, 0, 1, {13}, {0}, 1},
        /* long T */
        {8, 2, 128, 0, 1, {1030}, {0}, 0},
        {4, 1, 64, 0, 1, {2049}, {0}, 0},
        /* decode over a long cache: the split-K path, GQA 4 and 8 */
        {32, 8, 128, 0, 1, {1}, {4000}, 0},
        {32, 4, 64, 0, 2, {1, 1}, {3000, 17}, 1},
        {64, 8, 128, 0, 1, {1}, {8191}, 0},
        /* small heads (the fixture models, stories260K) and odd head dims */
        {4, 2, 16, 0, 3, {5, 1, 11}, {0, 9, 3}, 1},
        {8, 4, 8, 0, 1, {23}, {0}, 0},
        {4, 4, 100, 0, 1, {19}, {40}, 0},
        /* sliding window: inside a chunk, across chunks, with a cache */
        {8, 2, 64, 5, 1, {70}, {0}, 1},
        {8, 2, 128, 40, 2, {1, 100}, {900, 33}, 0},
        /* ragged batch mixing decode rows and prefill rows */
        {16, 8, 128, 0, 3, {1, 300, 8}, {500, 0, 64}, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) ll_gpu_attn_run(be, &cases[c], c, 1e-10);
    /* The tensor-core kernel (bf16 Q, K, V, P; head_dim 64 and 128, prefill; the other
     * cases fall back to the SIMT kernel): bf16 tolerance, about 1e-5 expected. */
    setenv("LL_ATTN", "tc", 1);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) ll_gpu_attn_run(be, &cases[c], c, 1e-4);
    unsetenv("LL_ATTN");
}

Test(gpu_ops, attention_refuses_head_dim_over_128) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    int64_t off[2] = {0, 1};
    float *d = ll_gt_poisoned(be, 256);
    const float *kv[1] = {d};
    ll_attn_args a = {.q = d, .z = d, .T = 1, .n_heads = 1, .n_kv_heads = 1, .head_dim = 256, .n_seq = 1,
                      .seq_off = off, .k = kv, .v = kv, .kv_stride = 256, .scale = 1.0f};
    be->attention(&a);
    cr_expect_eq(be->sync(), LL_ERR_UNSUPPORTED, "%s", ll_last_error());
    be->free(d);
}

/* ---- fused entropy -------------------------------------------------------------------- */

Test(gpu_ops, fused_entropy_against_cpu) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    struct { int R, V, k, nc; float scale; } cases[] = {
        {1, 100, 5, 0, 3.0f}, {5, 32000, 16, 7, 8.0f}, {3, 151936, 10, 300, 20.0f}, {2, 257, 0, 1, 0.01f}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int R = cases[c].R, V = cases[c].V, k = cases[c].k, nc = cases[c].nc;
        float *x = ll_gt_rand((size_t)R * V, cases[c].scale, 81 + c);
        x[V / 2] = -INFINITY; /* a masked logit in row 0 */
        int32_t *cands = nc ? malloc((size_t)nc * 4) : NULL;
        for (int j = 0; j < nc; j++) cands[j] = (int32_t)(((int64_t)j * 7919 + 5) % V);
        ll_entropy_row *ref = calloc((size_t)R, sizeof *ref), *got = calloc((size_t)R, sizeof *got);
        ll_cpu_entropy(ref, x, R, V, k, cands, nc);
        float *dx = ll_gt_up(be, x, (size_t)R * V);
        be->entropy(got, dx, R, V, k, cands, nc);
        cr_assert_eq(be->sync(), LL_OK, "%s", ll_last_error());
        for (int r = 0; r < R; r++) {
            cr_expect(fabsf(got[r].lse - ref[r].lse) <= 1e-5f * fmaxf(1, fabsf(ref[r].lse)), "case %zu row %d lse %g vs %g",
                      c, r, (double)got[r].lse, (double)ref[r].lse);
            cr_expect(fabsf(got[r].entropy - ref[r].entropy) <= 1e-4f * fmaxf(1, ref[r].entropy),
                      "case %zu row %d entropy %g vs %g", c, r, (double)got[r].entropy, (double)ref[r].entropy);
            cr_expect_eq(got[r].argmax, ref[r].argmax, "case %zu row %d argmax", c, r);
            cr_expect_eq(got[r].max, ref[r].max);
            for (int i = 0; i < LL_TOPK_MAX; i++) {
                cr_expect_eq(got[r].top_id[i], ref[r].top_id[i], "case %zu row %d top %d", c, r, i);
                if (i < k) cr_expect_eq(got[r].top_logit[i], ref[r].top_logit[i]);
            }
            cr_expect_eq(got[r].cand_argmax, ref[r].cand_argmax, "case %zu row %d candidate argmax", c, r);
            if (nc) {
                cr_expect(fabsf(got[r].cand_lse - ref[r].cand_lse) <= 1e-5f * fmaxf(1, fabsf(ref[r].cand_lse)));
                cr_expect(fabsf(got[r].cand_entropy - ref[r].cand_entropy) <= 1e-4f * fmaxf(1, ref[r].cand_entropy));
            } else {
                cr_expect(isnan(got[r].cand_lse) && isnan(got[r].cand_entropy));
            }
        }
        be->free(dx);
        free(x);
        free(cands);
        free(ref);
        free(got);
    }
}

/* The matmul converts its input rows to bf16 once for consecutive products over the same
 * rows; a write to those rows in between (any op) must be seen by the next product. */
Test(gpu_ops, matmul_sees_writes_between_products_over_the_same_rows) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    int T = 5, I = 64, O = 48;
    float *w = ll_gt_rand((size_t)O * I, 0.1f, 91), *x = ll_gt_rand((size_t)T * I, 1.0f, 92);
    float *x2 = ll_gt_rand((size_t)T * I, 1.0f, 93);
    ll_gt_round_bf16(w, (size_t)O * I);
    ll_gt_round_bf16(x, (size_t)T * I);
    ll_gt_round_bf16(x2, (size_t)T * I);
    ll_mat m = {.w = w, .out = O, .in = I, .ld = I, .trans = true}, dm;
    void *owned;
    cr_assert_eq(be->load_matrix(&dm, &owned, &m, "test matrix"), LL_OK, "%s", ll_last_error());
    float *dx = ll_gt_up(be, x, (size_t)T * I), *dy = ll_gt_poisoned(be, (size_t)T * O);
    float *ref = malloc((size_t)T * O * 4), *ref2 = malloc((size_t)T * O * 4);
    ll_cpu_matmul(ref, x, &m, NULL, T, false);
    ll_cpu_matmul(ref2, x2, &m, NULL, T, false);
    be->matmul(dy, dx, &dm, NULL, T, false);
    be->matmul(dy, dx, &dm, NULL, T, false); /* reuses the converted rows */
    float *got = ll_gt_down(be, dy, (size_t)T * O);
    LL_EXPECT_NMSE(got, ref, (size_t)T * O, 1e-9, "second product over the same rows");
    free(got);
    be->from_host(dx, x2, (size_t)T * I * 4); /* new rows at the same address */
    be->matmul(dy, dx, &dm, NULL, T, false);
    got = ll_gt_down(be, dy, (size_t)T * O);
    LL_EXPECT_NMSE(got, ref2, (size_t)T * O, 1e-9, "product after the rows were overwritten");
    free(got);
    float *dz = ll_gt_up(be, x, (size_t)T * I);
    be->add(dx, dz, (size_t)T * I); /* rows = x2 + x, written by a kernel */
    for (size_t i = 0; i < (size_t)T * I; i++) x2[i] += x[i];
    ll_gt_round_bf16(x2, (size_t)T * I);
    ll_cpu_matmul(ref2, x2, &m, NULL, T, false);
    be->matmul(dy, dx, &dm, NULL, T, false);
    got = ll_gt_down(be, dy, (size_t)T * O);
    LL_EXPECT_NMSE(got, ref2, (size_t)T * O, 1e-9, "product after a kernel wrote the rows");
    free(got);
    be->free(owned);
    be->free(dx);
    be->free(dy);
    be->free(dz);
    free(w);
    free(x);
    free(x2);
    free(ref);
    free(ref2);
}

Test(gpu_ops, add_norm_fused_equals_add_then_norm) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    struct { int T, d; } cases[] = {{1, 64}, {9, 100}, {300, 4096}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int layer = 0; layer < 2; layer++) {
            int T = cases[c].T, d = cases[c].d;
            size_t n = (size_t)T * d;
            float *x = ll_gt_rand(n, 2.0f, 101 + c), *o = ll_gt_rand(n, 1.0f, 102 + c);
            float *w = ll_gt_rand((size_t)d, 1.0f, 103 + c), *b = ll_gt_rand((size_t)d, 0.2f, 104 + c);
            float *ry = malloc(n * 4);
            float *dx = ll_gt_up(be, x, n), *dox = ll_gt_up(be, o, n), *dw = ll_gt_up(be, w, (size_t)d),
                  *db = ll_gt_up(be, b, (size_t)d), *dy = ll_gt_poisoned(be, n);
            ll_cpu_add_norm(x, ry, o, w, layer ? b : NULL, layer, T, d, 1e-5f);
            be->add_norm(dx, dy, dox, dw, layer ? db : NULL, layer, T, d, 1e-5f);
            float *gx = ll_gt_down(be, dx, n), *gy = ll_gt_down(be, dy, n);
            LL_EXPECT_NMSE(gx, x, n, 0.0, "add_norm residual, layer %d T %d d %d", layer, T, d);
            LL_EXPECT_NMSE(gy, ry, n, 1e-10, "add_norm output, layer %d T %d d %d", layer, T, d);
            be->free(dx);
            be->free(dox);
            be->free(dw);
            be->free(db);
            be->free(dy);
            free(x);
            free(o);
            free(w);
            free(b);
            free(ry);
            free(gx);
            free(gy);
        }
}

/* Norms and MLP activations hand their bf16 output to the next matmul directly; the
 * product must equal the CPU's on the same rows, rounded to bf16 (and must not pick up
 * a stale copy when another buffer is multiplied instead). */
Test(gpu_ops, matmul_after_norm_and_swiglu_uses_their_bf16_output) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    int T = 7, D = 96, O = 80;
    float *x = ll_gt_rand((size_t)T * D, 2.0f, 111), *nw = ll_gt_rand((size_t)D, 1.0f, 112);
    float *w = ll_gt_rand((size_t)O * D, 0.1f, 113), *u = ll_gt_rand((size_t)T * D, 1.0f, 114);
    ll_gt_round_bf16(w, (size_t)O * D);
    ll_mat m = {.w = w, .out = O, .in = D, .ld = D, .trans = true}, dm;
    void *owned;
    cr_assert_eq(be->load_matrix(&dm, &owned, &m, "test matrix"), LL_OK, "%s", ll_last_error());
    float *dx = ll_gt_up(be, x, (size_t)T * D), *dnw = ll_gt_up(be, nw, (size_t)D), *du = ll_gt_up(be, u, (size_t)T * D);
    float *dxn = ll_gt_poisoned(be, (size_t)T * D), *dy = ll_gt_poisoned(be, (size_t)T * O);
    float *xn = malloc((size_t)T * D * 4), *ref = malloc((size_t)T * O * 4);
    /* norm -> matmul */
    ll_cpu_rmsnorm(xn, x, nw, T, D, 1e-5f);
    ll_gt_round_bf16(xn, (size_t)T * D);
    ll_cpu_matmul(ref, xn, &m, NULL, T, false);
    be->rmsnorm(dxn, dx, dnw, T, D, 1e-5f);
    be->matmul(dy, dxn, &dm, NULL, T, false);
    float *got = ll_gt_down(be, dy, (size_t)T * O);
    /* 1e-7, not 1e-9: a last-bit difference in the fp32 activation can flip one bf16
     * rounding (about 2e-8 here); a stale or missing copy gives about 1 */
    LL_EXPECT_NMSE(got, ref, (size_t)T * O, 1e-7, "rmsnorm -> matmul");
    free(got);
    /* norm of one buffer, then a matmul of another buffer of the same size */
    float *ub = malloc((size_t)T * D * 4);
    memcpy(ub, u, (size_t)T * D * 4);
    ll_gt_round_bf16(ub, (size_t)T * D);
    ll_cpu_matmul(ref, ub, &m, NULL, T, false);
    be->rmsnorm(dxn, dx, dnw, T, D, 1e-5f);
    be->matmul(dy, du, &dm, NULL, T, false);
    got = ll_gt_down(be, dy, (size_t)T * O);
    LL_EXPECT_NMSE(got, ref, (size_t)T * O, 1e-9, "rmsnorm of x, then matmul of u");
    free(got);
    /* swiglu -> matmul */
    float *h = malloc((size_t)T * D * 4);
    ll_cpu_swiglu(h, x, u, (size_t)T * D);
    ll_gt_round_bf16(h, (size_t)T * D);
    ll_cpu_matmul(ref, h, &m, NULL, T, false);
    be->swiglu(dxn, dx, du, (size_t)T * D);
    be->matmul(dy, dxn, &dm, NULL, T, false);
    got = ll_gt_down(be, dy, (size_t)T * O);
    LL_EXPECT_NMSE(got, ref, (size_t)T * O, 1e-7, "swiglu -> matmul");
    free(got);
    be->free(owned);
    be->free(dx);
    be->free(dnw);
    be->free(du);
    be->free(dxn);
    be->free(dy);
    free(x);
    free(nw);
    free(w);
    free(u);
    free(xn);
    free(ref);
    free(ub);
    free(h);
}

/* The patch op against its contract computed here on the host: out bit for bit (replace,
 * zero and copy move values; add is one fp32 add), sq to double rounding. Widths around
 * the block size and a head slice; a copy whose source row is also a target reads the
 * unpatched source; outputs poisoned first. */
Test(gpu_ops, patch_rows_against_host) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    struct { int T, width, off, w, n; } cases[] = {{5, 64, 0, 64, 2}, {9, 300, 100, 50, 4}, {40, 4100, 0, 4100, 7},
                                                   {3, 256, 192, 64, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int T = cases[c].T, W = cases[c].width, off = cases[c].off, w = cases[c].w, n = cases[c].n;
        float *buf = ll_gt_rand((size_t)T * W, 1.0f, 70 + c), *src = ll_gt_rand((size_t)n * w, 2.0f, 80 + c);
        int64_t *rows = malloc((size_t)n * sizeof *rows), *from = malloc((size_t)n * sizeof *from);
        for (int i = 0; i < n; i++) {
            rows[i] = (i * 3 + 1) % T;
            from[i] = rows[(i + 1) % n]; /* sources are targets too */
        }
        float *dbuf = ll_gt_up(be, buf, (size_t)T * W), *dsrc = ll_gt_up(be, src, (size_t)n * w);
        for (int op = LL_PATCH_REPLACE; op <= LL_PATCH_COPY_ROW; op++) {
            float *dout = ll_gt_poisoned(be, (size_t)n * W);
            double *dsq = be->alloc((size_t)n * sizeof(double));
            cr_assert(dsq, "%s", ll_last_error());
            be->patch_rows(dout, dsq, dbuf, W, rows, from, dsrc, n, off, w, op);
            float *out = ll_gt_down(be, dout, (size_t)n * W);
            double *sq = malloc((size_t)n * sizeof *sq);
            be->to_host(sq, dsq, (size_t)n * sizeof *sq);
            cr_assert_eq(be->sync(), LL_OK, "%s", ll_last_error());
            size_t bad = 0;
            for (int r = 0; r < n; r++) {
                double acc = 0;
                for (int i = 0; i < W; i++) {
                    float old = buf[(size_t)rows[r] * W + i], nv = old;
                    if (i >= off && i < off + w) {
                        float s = src[(size_t)r * w + i - off];
                        nv = op == LL_PATCH_REPLACE ? s : op == LL_PATCH_ADD ? old + s : op == LL_PATCH_ZERO ? 0.0f
                                                                                 : buf[(size_t)from[r] * W + i];
                        acc += ((double)nv - old) * ((double)nv - old);
                    }
                    bad += memcmp(&nv, &out[(size_t)r * W + i], sizeof nv) != 0;
                }
                cr_expect(fabs(sq[r] - acc) <= 1e-12 * acc, "case %zu op %d row %d: sq %.17g, host %.17g", c, op, r,
                          sq[r], acc);
            }
            cr_expect_eq(bad, 0, "case %zu op %d: %zu values differ from the host", c, op, bad);
            free(out);
            free(sq);
            be->free(dout);
            be->free(dsq);
        }
        be->free(dbuf);
        be->free(dsrc);
        free(buf);
        free(src);
        free(rows);
        free(from);
    }
}
