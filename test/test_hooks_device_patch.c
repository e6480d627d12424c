/* The device patch path of host/model/ll_hooks.c (backends with patch_rows: CUDA) checked
 * on the CPU: the CPU table with patch_rows filled in by a plain host implementation of
 * the op's contract takes the same code path as the GPU (sources uploaded once and kept,
 * patched rows built apart and scattered back, the statistic read after the pass), and
 * must give exactly the logits of the host path and the same L2 change per patch, over
 * two passes with the same hooks (the cached sources reused, the statistics reset). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ll_patch_cases.h"
#include "ll_test_util.h"

/* The op's contract (ll_backend.h), on host memory. */
static void ll_h_patch_rows(float *out, double *sq, const float *buf, int width, const int64_t *rows,
                            const int64_t *src_rows, const float *src, int n, int off, int w, int op) {
    for (int r = 0; r < n; r++) {
        const float *row = buf + (size_t)rows[r] * width;
        double acc = 0;
        for (int c = 0; c < width; c++) {
            float old = row[c], nv = old;
            if (c >= off && c < off + w) {
                int i = c - off;
                switch (op) {
                case LL_PATCH_REPLACE: nv = src[(size_t)r * w + i]; break;
                case LL_PATCH_ADD: nv = old + src[(size_t)r * w + i]; break;
                case LL_PATCH_ZERO: nv = 0.0f; break;
                default: nv = buf[(size_t)src_rows[r] * width + c]; break;
                }
                acc += ((double)nv - old) * ((double)nv - old);
            }
            out[(size_t)r * width + c] = nv;
        }
        sq[r] = acc;
    }
}

static int ll_dev_allocs; /* live allocations through the test table: the cached sources must be freed */
static void *ll_h_alloc(size_t bytes) {
    ll_dev_allocs++;
    return malloc(bytes ? bytes : 1);
}
static void ll_h_free(void *p) {
    if (p) ll_dev_allocs--;
    free(p);
}

static ll_backend ll_patch_table(void) {
    ll_backend t = *ll_backend_cpu();
    t.name = "cpu-device-patch-test";
    t.patch_rows = ll_h_patch_rows;
    t.alloc = ll_h_alloc;
    t.free = ll_h_free;
    return t;
}

/* Logits [T][V] of two passes with the patches `which` (bit i = patch i); stats after each. */
static float *ll_patched(ll_model *m, const ll_backend *be, const ll_patch_cases *pc, unsigned which,
                         ll_patch_stat st[2][LL_PC_N]) {
    m->be = be;
    ll_hooks *h;
    cr_assert_eq(ll_hooks_new(&h, m->cfg.n_layers), LL_OK);
    for (int i = 0; i < LL_PC_N; i++)
        if (which >> i & 1) cr_assert_eq(ll_hooks_add_patch(h, &pc->p[i]), LL_OK, "%s", ll_last_error());
    int32_t ids[LL_PC_T];
    for (int t = 0; t < LL_PC_T; t++) ids[t] = (t * 37 + 1) % m->cfg.vocab_size;
    size_t n = (size_t)LL_PC_T * m->cfg.vocab_size;
    float *lg = malloc(2 * n * sizeof *lg);
    ll_batch b = {.n_seq = 2, .seq_off = ll_pc_off, .tokens = ids};
    for (int pass = 0; pass < 2; pass++) {
        ll_forward_opts o = {.hooks = h, .logits = LL_LOGITS_ALL, .logits_out = lg + pass * n};
        cr_assert_eq(ll_forward(m, &b, &o), LL_OK, "%s: %s", be->name, ll_last_error());
        for (int i = 0, k = 0; i < LL_PC_N; i++)
            if (which >> i & 1) st[pass][i] = ll_hooks_patch_stat(h, k++);
    }
    cr_expect_eq(memcmp(lg, lg + n, n * sizeof *lg), 0, "%s: the second pass differs from the first", be->name);
    ll_hooks_free(h);
    m->be = ll_backend_cpu();
    return lg;
}

static void ll_compare(const char *fixture) {
    char path[256];
    snprintf(path, sizeof path, "test/fixtures/%s", fixture);
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, path, NULL), LL_OK, "%s", ll_last_error());
    ll_patch_cases pc;
    ll_patch_cases_make(&pc, &m->cfg);
    ll_backend dev = ll_patch_table();
    size_t n = (size_t)LL_PC_T * m->cfg.vocab_size;
    float *clean = ll_patched(m, ll_backend_cpu(), &pc, 0, (ll_patch_stat[2][LL_PC_N]){0});
    /* each patch alone, then all together */
    for (int k = 0; k <= LL_PC_N; k++) {
        unsigned which = k < LL_PC_N ? 1u << k : (1u << LL_PC_N) - 1;
        const char *what = k < LL_PC_N ? pc.name[k] : "all patches";
        ll_patch_stat sh[2][LL_PC_N] = {0}, sd[2][LL_PC_N] = {0};
        float *lh = ll_patched(m, ll_backend_cpu(), &pc, which, sh);
        float *ld = ll_patched(m, &dev, &pc, which, sd);
        cr_expect_eq(ll_dev_allocs, 0, "%s, %s: %d buffers of the device path not freed", fixture, what, ll_dev_allocs);
        cr_expect_eq(memcmp(lh, ld, n * sizeof *lh), 0, "%s, %s: device-path logits differ from the host path",
                     fixture, what);
        cr_expect_neq(memcmp(lh, clean, n * sizeof *lh), 0, "%s, %s: the patch changed nothing", fixture, what);
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < LL_PC_N; i++) {
                if (!(which >> i & 1)) continue;
                cr_expect_eq(sd[pass][i].n_applied, 1, "%s, %s: patch %d applied %d times", fixture, what, i,
                             sd[pass][i].n_applied);
                cr_expect_eq(sh[pass][i].n_applied, 1);
                double a = sd[pass][i].l2_change, e = sh[pass][i].l2_change;
                cr_expect(fabs(a - e) <= 1e-12 * e, "%s, %s, pass %d: patch %d L2 change %.17g, host path %.17g",
                          fixture, what, pass, i, a, e);
                /* every case here moves its rows, except an add after a zero only if src is nonzero: it is */
                cr_expect(a > 0, "%s, %s: patch %d reports no change", fixture, what, i);
            }
        free(lh);
        free(ld);
    }
    free(clean);
    ll_patch_cases_free(&pc);
    ll_model_free(m);
}

Test(hooks_device_patch, equals_host_path_llama_gqa) { ll_compare("llama_gqa"); }
Test(hooks_device_patch, equals_host_path_gpt2) { ll_compare("gpt2"); }

/* Hooks that patched on one device backend refuse another (their cached buffers belong to
 * the first), with an error, not a crash. */
Test(hooks_device_patch, two_device_backends_refused) {
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, "test/fixtures/llama_gqa", NULL), LL_OK, "%s", ll_last_error());
    ll_backend a = ll_patch_table(), b = ll_patch_table();
    b.name = "another-device";
    ll_hooks *h;
    cr_assert_eq(ll_hooks_new(&h, m->cfg.n_layers), LL_OK);
    int64_t row = 1;
    ll_patch z = {.point = LL_HOOK_RESID_POST, .layer = 0, .n_rows = 1, .rows = &row, .op = LL_PATCH_ZERO, .head = -1};
    cr_assert_eq(ll_hooks_add_patch(h, &z), LL_OK);
    int32_t ids[3] = {1, 2, 3};
    int64_t off[2] = {0, 3};
    ll_batch bt = {.n_seq = 1, .seq_off = off, .tokens = ids};
    ll_forward_opts o = {.hooks = h};
    m->be = &a;
    cr_expect_eq(ll_forward(m, &bt, &o), LL_OK, "%s", ll_last_error());
    m->be = &b;
    cr_expect_eq(ll_forward(m, &bt, &o), LL_ERR_ARG);
    cr_expect(strstr(ll_last_error(), "another-device") != NULL, "message: %s", ll_last_error());
    m->be = ll_backend_cpu();
    ll_hooks_free(h);
    cr_expect_eq(ll_dev_allocs, 0, "cached patch buffers not freed with the hooks");
    ll_model_free(m);
}
