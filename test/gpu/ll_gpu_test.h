/* Shared by the CUDA-vs-CPU suites in test/gpu: skipping without a device, device
 * buffers for test data, and the error measure.
 *
 * Every suite here is compiled on every build and run by `make test`; without a CUDA
 * device (or in a build without CUDA) each test skips and says why. */
#ifndef LL_GPU_TEST_H
#define LL_GPU_TEST_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ll_backend.h"

/* The CUDA backend, or skip the calling test with the reason. */
#define LL_NEED_GPU(be)                                                                                           \
    do {                                                                                                          \
        (be) = ll_backend_cuda();                                                                                 \
        if (!(be)) cr_skip_test("no CUDA device: %s", ll_last_error());                                          \
    } while (0)

static inline float ll_gt_rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

static inline float *ll_gt_rand(size_t n, float scale, uint64_t seed) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    cr_assert(p, "no host memory for %zu floats", n);
    for (size_t i = 0; i < n; i++) p[i] = scale * ll_gt_rnd(&seed);
    return p;
}

/* A device copy of host floats. */
static inline float *ll_gt_up(const ll_backend *be, const float *h, size_t n) {
    float *d = be->alloc((n ? n : 1) * sizeof(float));
    cr_assert(d, "device alloc of %zu floats: %s", n, ll_last_error());
    if (n) be->from_host(d, h, n * sizeof(float));
    return d;
}

/* A device buffer of n floats filled with NaN, so an element the kernel misses fails the check. */
static inline float *ll_gt_poisoned(const ll_backend *be, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    float *d = ll_gt_up(be, h, n);
    free(h);
    return d;
}

static inline float *ll_gt_down(const ll_backend *be, const float *d, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    cr_assert(h);
    if (n) be->to_host(h, d, n * sizeof(float));
    ll_status st = be->sync();
    cr_assert_eq(st, LL_OK, "CUDA error: %s", ll_last_error());
    return h;
}

/* Normalised mean squared error sum (a - b)^2 / sum b^2; infinity when a has a NaN. */
static inline double ll_gt_nmse(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) && !isnan(b[i])) return INFINITY;
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return num / den;
}

/* Round to bf16 and back: what the device sees of a weight. */
static inline void ll_gt_round_bf16(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = ll_bf16_to_f32(ll_f32_to_bf16(x[i]));
}

#endif
