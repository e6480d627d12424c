/* ll_model_use_backend releases the host fp32 weights converted at load once the upload
 * succeeded. Checked on the CPU with a stand-in device table: the CPU ops over weights
 * "uploaded" into separately allocated fp32 copies, so the forward pass after the upload
 * reads only backend memory. Under `make asan` any read of a released host buffer fails
 * the run. Fixtures: mistral (f16 weights, all converted) and llama3_rope (bf16, sharded). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_test_util.h"

static void *ll_s_alloc(size_t bytes) { return malloc(bytes ? bytes : 1); }
static void ll_s_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }

/* A dense copy of the matrix in its own layout (row stride packed), fp32 as the CPU wants. */
static ll_status ll_s_load_matrix(ll_mat *dst, void **owned, const ll_mat *src, const char *what) {
    size_t rows = (size_t)(src->trans ? src->out : src->in), cols = (size_t)(src->trans ? src->in : src->out);
    float *p = malloc(rows * cols * sizeof *p);
    if (!p) return ll_err(LL_ERR_NOMEM, "stand-in upload of %s", what);
    for (size_t r = 0; r < rows; r++) memcpy(p + r * cols, src->w + r * (size_t)src->ld, cols * sizeof *p);
    *dst = *src;
    dst->w = p;
    dst->ld = (int)cols;
    *owned = p;
    return LL_OK;
}

static void ll_release_check(const char *fixture) {
    char path[256];
    snprintf(path, sizeof path, "test/fixtures/%s", fixture);
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, path, NULL), LL_OK, "%s", ll_last_error());
    cr_assert_gt(m->n_bufs, 0, "%s: expected weights converted at load", fixture);
    ll_backend dev = *ll_backend_cpu();
    dev.name = "cpu-standin-device";
    dev.host_memory = false;
    dev.alloc = ll_s_alloc;
    dev.free = free;
    dev.from_host = ll_s_copy;
    dev.to_host = ll_s_copy;
    dev.copy = ll_s_copy;
    dev.load_matrix = ll_s_load_matrix;
    enum { T = 6 };
    int32_t ids[T] = {3, 17, 1, 99, 42, 7};
    int64_t off[2] = {0, T};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = ids};
    size_t n = (size_t)T * m->cfg.vocab_size;
    float *before = malloc(n * sizeof *before), *after = malloc(n * sizeof *after);
    ll_forward_opts o = {.logits = LL_LOGITS_ALL, .logits_out = before};
    cr_assert_eq(ll_forward(m, &b, &o), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_model_use_backend(m, &dev), LL_OK, "%s", ll_last_error());
    cr_expect_eq(m->n_bufs, 0, "%s: %zu converted host buffers kept after the upload", fixture, m->n_bufs);
    cr_expect_null(m->bufs);
    o.logits_out = after;
    cr_assert_eq(ll_forward(m, &b, &o), LL_OK, "%s", ll_last_error());
    /* the same fp32 values in a packed layout: BLAS may block the sums differently */
    cr_expect(ll_test_rel_err(after, before, n) <= 1e-5, "%s: logits after the upload differ (rel %.3g)", fixture,
              ll_test_rel_err(after, before, n));
    free(before);
    free(after);
    ll_model_free(m);
}

Test(model_release, converted_host_weights_freed_after_upload_mistral_f16) { ll_release_check("mistral"); }
Test(model_release, converted_host_weights_freed_after_upload_llama3_bf16) { ll_release_check("llama3_rope"); }
