/* The GPU ridge path (cuBLAS fp64 Grams, cuSOLVER Cholesky) against the CPU path
 * (host/lspade/ll_ridge.c, itself tested against numpy in test/test_ridge.c). Skips
 * without a device or in a build without CUDA. */
#include "ll_gpu_test.h"
#include "lspade/ll_ridge_gpu.h"

static double rel(const double *a, const double *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs(a[i] - b[i]));
        mb = fmax(mb, fabs(b[i]));
    }
    return mb > 0 ? md / mb : md;
}

Test(gpu_ridge, gram_and_solve_match_the_cpu) {
    if (!ll_ridge_gpu_available()) cr_skip_test("no CUDA device for the ridge path: %s", ll_last_error());
    int n = 3000, d = 200, q = 5; /* more rows than one device chunk */
    float *X = ll_gt_rand((size_t)n * d, 1.0f, 1), *Y = ll_gt_rand((size_t)n * q, 1.0f, 2);
    for (int r = 0; r < n; r++)
        for (int i = 0; i < d; i++) X[(size_t)r * d + i] += 3.0f + 0.01f * i; /* an offset, as in hidden states */
    ll_gram cpu, gpu;
    cr_assert_eq(ll_gram_init(&cpu, d, q), LL_OK);
    cr_assert_eq(ll_gram_init(&gpu, d, q), LL_OK);
    cr_assert_eq(ll_gram_add(&cpu, X, d, Y, q, n), LL_OK);
    ll_gram_gpu *g;
    cr_assert_eq(ll_gram_gpu_new(&g, d, q), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_gram_gpu_add(g, X, d, Y, q, 1234), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_gram_gpu_add(g, X + (size_t)1234 * d, d, Y + (size_t)1234 * q, q, n - 1234), LL_OK, "%s",
                 ll_last_error());
    cr_assert_eq(ll_gram_gpu_merge_into(g, &gpu), LL_OK, "%s", ll_last_error());
    /* Compare the upper triangle of A (the part kept), B, yy and n. */
    int p = d + 1;
    double mA = 0, mAr = 0;
    for (int i = 0; i < p; i++)
        for (int j = i; j < p; j++) {
            mA = fmax(mA, fabs(gpu.A[(size_t)i * p + j] - cpu.A[(size_t)i * p + j]));
            mAr = fmax(mAr, fabs(cpu.A[(size_t)i * p + j]));
        }
    double eB = rel(gpu.B, cpu.B, (size_t)p * q);
    cr_assert_eq(ll_gram_count(&gpu), n);
    double *W1 = malloc((size_t)p * q * 8), *W2 = malloc((size_t)p * q * 8);
    cr_assert_eq(ll_ridge_solve(&cpu, 0.1, W1, NULL), LL_OK);
    cr_assert_eq(ll_ridge_solve_gpu(&cpu, 0.1, W2), LL_OK, "%s", ll_last_error());
    double eW = rel(W2, W1, (size_t)p * q);
    cr_log_info("GPU vs CPU ridge: A %.2e, B %.2e, W %.2e (max relative)", mA / mAr, eB, eW);
    cr_assert(mA / mAr < 1e-13 && eB < 1e-13, "Grams differ: A %g, B %g", mA / mAr, eB);
    cr_assert(eW < 1e-8, "solutions differ by %g", eW);
    ll_gram_gpu_free(g);
    ll_gram_free(&cpu);
    ll_gram_free(&gpu);
    free(W1);
    free(W2);
    free(X);
    free(Y);
}
