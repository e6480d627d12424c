/* The per-element formulas of kernels/ (ll_kmath.h) checked on the host against the CPU
 * backend, which is the specification. The CUDA kernels call these very helpers, so a
 * machine without a GPU still checks the arithmetic they do; test/gpu checks the rest
 * (indexing, reductions, synchronisation) on a machine that has one. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/ll_kmath.h"
#include "backend/cpu/ll_cpu.h"
#include "core/ll_dtype.h"

static float ll_rndf(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

static uint32_t ll_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

Test(kernel_math, bf16_rounding_matches_host_converter) {
    float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, FLT_MAX, -FLT_MAX, FLT_MIN, 1e-40f, -1e-40f,
                       1.0f, 1.00390625f /* halfway 1 + 2^-8: ties to even */, 1.01171875f, 65504.0f, 3.3895314e38f};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) {
        uint16_t a = ll_k_f32_to_bf16(special[i]), b = ll_f32_to_bf16(special[i]);
        if (isnan(special[i])) cr_expect(isnan(ll_k_bf16_to_f32(a)), "NaN must stay NaN");
        else cr_expect_eq(a, b, "bf16(%a): kernel %04x, host %04x", (double)special[i], a, b);
    }
    uint64_t s = 42;
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t u = (uint32_t)s ^ (uint32_t)(s >> 32);
        float f;
        memcpy(&f, &u, 4);
        if (isnan(f)) continue;
        uint16_t a = ll_k_f32_to_bf16(f), b = ll_f32_to_bf16(f);
        if (a != b && bad++ < 5) cr_expect_eq(a, b, "bf16 of bits %08x: kernel %04x, host %04x", u, a, b);
        float back = ll_k_bf16_to_f32(a);
        if (ll_bits(back) != ll_bits(ll_bf16_to_f32(a)) && bad++ < 5) cr_expect_fail("bf16 -> f32 differs for %04x", a);
    }
    cr_expect_eq(bad, 0, "%d bf16 conversions differ", bad);
}

Test(kernel_math, activations_match_cpu_bit_for_bit) {
    enum { N = 4096 };
    float g[N], u[N], out[N], x[N];
    uint64_t s = 7;
    for (int i = 0; i < N; i++) {
        g[i] = 12.0f * ll_rndf(&s);
        u[i] = 3.0f * ll_rndf(&s);
        x[i] = g[i];
    }
    ll_cpu_swiglu(out, g, u, N);
    ll_cpu_gelu_new(x, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(ll_bits(ll_k_swiglu(g[i], u[i])), ll_bits(out[i]), "swiglu(%g, %g)", (double)g[i], (double)u[i]);
        cr_assert_eq(ll_bits(ll_k_gelu_new(g[i])), ll_bits(x[i]), "gelu_new(%g)", (double)g[i]);
    }
}

Test(kernel_math, rope_matches_cpu_bit_for_bit_in_both_layouts) {
    enum { T = 5, H = 3, HD = 16 };
    int32_t pos[T] = {0, 1, 17, 1000, 32767};
    float inv[HD / 2];
    for (int i = 0; i < HD / 2; i++) inv[i] = powf(10000.0f, -2.0f * i / HD);
    ll_rope_layout layouts[] = {LL_ROPE_ROTATE_HALF, LL_ROPE_INTERLEAVED};
    for (int li = 0; li < 2; li++) {
        float a[T * H * HD], b[T * H * HD];
        uint64_t s = 99;
        for (int i = 0; i < T * H * HD; i++) a[i] = b[i] = ll_rndf(&s);
        ll_cpu_rope(a, pos, T, H, HD, inv, layouts[li]);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < HD / 2; i++) {
                float cs, sn;
                ll_k_rope_angle(pos[t], inv[i], &cs, &sn);
                int ia = layouts[li] == LL_ROPE_ROTATE_HALF ? i : 2 * i;
                int ib = layouts[li] == LL_ROPE_ROTATE_HALF ? i + HD / 2 : 2 * i + 1;
                for (int h = 0; h < H; h++) ll_k_rope_rotate(&b[(t * H + h) * HD + ia], &b[(t * H + h) * HD + ib], cs, sn);
            }
        for (int i = 0; i < T * H * HD; i++) cr_assert_eq(ll_bits(a[i]), ll_bits(b[i]), "layout %d element %d", li, i);
    }
}

/* The entropy kernel's arithmetic: 256 strided one-pass states, merged as a tree. */
static void ll_emulate_entropy(const float *x, int V, float *lse, float *ent) {
    enum { NT = 256 };
    ll_k_ent_state st[NT];
    for (int t = 0; t < NT; t++) {
        st[t] = (ll_k_ent_state){-INFINITY, 0.0f, 0.0f};
        for (int i = t; i < V; i += NT) ll_k_ent_add(&st[t], x[i]);
    }
    for (int w = NT / 2; w > 0; w >>= 1)
        for (int t = 0; t < w; t++) st[t] = ll_k_ent_merge(st[t], st[t + w]);
    *lse = ll_k_ent_lse(st[0]);
    *ent = ll_k_ent_entropy(st[0]);
}

Test(kernel_math, one_pass_entropy_matches_cpu_reference) {
    int Vs[] = {1, 7, 255, 256, 257, 5000, 32000};
    float scales[] = {0.01f, 1.0f, 8.0f, 40.0f};
    uint64_t s = 2024;
    for (size_t vi = 0; vi < sizeof Vs / sizeof *Vs; vi++)
        for (size_t si = 0; si < sizeof scales / sizeof *scales; si++) {
            int V = Vs[vi];
            float *x = malloc((size_t)V * sizeof(float));
            for (int i = 0; i < V; i++) x[i] = scales[si] * ll_rndf(&s);
            if (V > 10) {
                x[3] = -INFINITY; /* masked logits must not break the sums */
                x[V - 1] = 3.0f * scales[si];
            }
            ll_entropy_row ref;
            ll_cpu_entropy(&ref, x, 1, V, 0, NULL, 0);
            float lse, ent;
            ll_emulate_entropy(x, V, &lse, &ent);
            cr_expect(fabsf(lse - ref.lse) <= 1e-5f * fmaxf(1.0f, fabsf(ref.lse)), "V %d scale %g: lse %.7g, ref %.7g",
                      V, (double)scales[si], (double)lse, (double)ref.lse);
            cr_expect(fabsf(ent - ref.entropy) <= 2e-5f * fmaxf(1.0f, ref.entropy),
                      "V %d scale %g: entropy %.7g, ref %.7g", V, (double)scales[si], (double)ent, (double)ref.entropy);
            free(x);
        }
}

Test(kernel_math, cpu_entropy_reference_is_right_on_a_known_row) {
    /* Four equal logits and one masked: entropy log 4, lse x + log 4, argmax the first. */
    float x[5] = {2.0f, 2.0f, -INFINITY, 2.0f, 2.0f};
    int32_t c[2] = {4, 2};
    ll_entropy_row r;
    ll_cpu_entropy(&r, x, 1, 5, 3, c, 2);
    cr_expect(fabsf(r.entropy - logf(4.0f)) < 1e-6f, "entropy %g", (double)r.entropy);
    cr_expect(fabsf(r.lse - (2.0f + logf(4.0f))) < 1e-6f, "lse %g", (double)r.lse);
    cr_expect_eq(r.argmax, 0);
    cr_expect_eq(r.top_id[0], 0);
    cr_expect_eq(r.top_id[1], 1);
    cr_expect_eq(r.top_id[2], 3);
    cr_expect_eq(r.top_id[3], -1, "only k = 3 entries are filled");
    cr_expect_eq(r.cand_argmax, 4);
    cr_expect(fabsf(r.cand_entropy) < 1e-6f, "one live candidate: entropy 0, found %g", (double)r.cand_entropy);
}

Test(kernel_math, softmax_merge_of_pieces_equals_whole) {
    float sc[100];
    uint64_t s = 5;
    for (int i = 0; i < 100; i++) sc[i] = 10.0f * ll_rndf(&s);
    float mx = -INFINITY;
    double S = 0;
    for (int i = 0; i < 100; i++) mx = fmaxf(mx, sc[i]);
    for (int i = 0; i < 100; i++) S += exp((double)sc[i] - mx);
    /* pieces [0,30) [30,30) (empty) [30,100) */
    int cut[4] = {0, 30, 30, 100};
    float m = -INFINITY, l = 0;
    for (int p = 0; p < 3; p++) {
        float pm = -INFINITY, pl = 0;
        for (int i = cut[p]; i < cut[p + 1]; i++) pm = fmaxf(pm, sc[i]);
        for (int i = cut[p]; i < cut[p + 1]; i++) pl += expf(sc[i] - pm);
        float f1, f2;
        float nm = ll_k_softmax_merge(m, pm, &f1, &f2);
        l = l * f1 + pl * f2;
        m = nm;
    }
    cr_expect_eq(m, mx);
    cr_expect(fabs(l - S) <= 1e-5 * S, "merged sum %g, whole %g", (double)l, S);
}

/* The attention kernel's key partition: over every split, the chunks cover each row's
 * visible keys exactly once, and never reach past the tile's last key. */
Test(kernel_math, attention_key_splits_cover_every_visible_key_once) {
    int pasts[] = {0, 1, 31, 32, 33, 700, 4095};
    int news[] = {1, 3, 8};
    int windows[] = {0, 1, 5, 64, 4096};
    int splits[] = {1, 2, 3, 7, 64};
    const int kc = 32;
    for (size_t a = 0; a < sizeof pasts / sizeof *pasts; a++)
        for (size_t b = 0; b < sizeof news / sizeof *news; b++)
            for (size_t w = 0; w < sizeof windows / sizeof *windows; w++)
                for (size_t sp = 0; sp < sizeof splits / sizeof *splits; sp++) {
                    int n_past = pasts[a], nrows = news[b], win = windows[w], ns = splits[sp];
                    int nk = n_past + nrows;
                    int *seen = calloc((size_t)nk, sizeof(int));
                    for (int split = 0; split < ns; split++) {
                        ll_k_key_range k = ll_k_tile_keys(n_past, 0, nrows, win, kc, ns, split);
                        cr_assert(k.kv_hi == nk - 1);
                        for (int c = k.c_begin; c < k.c_end; c++)
                            for (int l = 0; l < kc; l++) {
                                int j = k.kv_lo + c * kc + l;
                                if (j > k.kv_hi) continue; /* zero-filled lanes */
                                cr_assert(j >= 0 && j < nk);
                                seen[j]++;
                            }
                    }
                    int lo = ll_k_first_key(n_past, win);
                    for (int j = 0; j < nk; j++)
                        cr_assert_eq(seen[j], j >= lo ? 1 : 0, "past %d rows %d window %d splits %d: key %d seen %d",
                                     n_past, nrows, win, ns, j, seen[j]);
                    free(seen);
                }
}
