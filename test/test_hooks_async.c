/* Asynchronous recording (backends with to_host_async: CUDA) checked on the CPU: the
 * CPU table with the three asynchronous entries filled in by plain host functions takes
 * the same code path in ll_hooks.c as the GPU does (gather, queue the copy, deliver to
 * the sink after the forward pass), and must hand the sinks exactly what the
 * synchronous path hands them, in the same order, for every position mode. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ll_test_util.h"

static void *ll_h_alloc(size_t bytes) { return malloc(bytes ? bytes : 1); }
static void ll_h_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }

typedef struct {
    ll_test_capture cap;
    int order[64];
    int n_order;
    int fail_at; /* call number that fails, or -1 */
} ll_async_sink;

static ll_status ll_async_fn(void *user, const ll_hook_rows *r) {
    ll_async_sink *s = user;
    if (s->n_order < 64) s->order[s->n_order++] = r->layer * 16 + (int)r->point;
    if (s->fail_at >= 0 && s->cap.calls == s->fail_at) return ll_err(LL_ERR_IO, "test sink: refused");
    return ll_test_capture_fn(&s->cap, r);
}

static void ll_record_all(ll_model *m, const ll_backend *be, ll_async_sink *s, int T, const int32_t *ids,
                          ll_pos_mode mode, ll_status want) {
    const ll_config *c = &m->cfg;
    m->be = be;
    ll_hooks *h;
    cr_assert_eq(ll_hooks_new(&h, c->n_layers), LL_OK);
    int64_t list[3] = {4, 0, 2};
    ll_record r = {.point = LL_HOOK_RESID_POST, .layer_lo = 0, .layer_hi = c->n_layers - 1, .pos = mode,
                   .rows = list, .n_rows = 3, .fn = ll_async_fn, .user = s};
    cr_assert_eq(ll_hooks_add_record(h, &r), LL_OK);
    ll_record r2 = r;
    r2.point = LL_HOOK_ATTN_Z;
    r2.layer_lo = r2.layer_hi = 1;
    r2.pos = LL_POS_ALL;
    cr_assert_eq(ll_hooks_add_record(h, &r2), LL_OK);
    int64_t off[3] = {0, 2, T};
    ll_batch b = {.n_seq = 2, .seq_off = off, .tokens = ids};
    ll_forward_opts o = {.hooks = h};
    cr_expect_eq(ll_forward(m, &b, &o), want, "%s", ll_last_error());
    ll_hooks_free(h);
}

Test(hooks_async, deferred_delivery_equals_synchronous_recording) {
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, "test/fixtures/llama_gqa", NULL), LL_OK, "%s", ll_last_error());
    ll_backend async = *ll_backend_cpu();
    async.name = "cpu-async-test";
    async.host_alloc = ll_h_alloc;
    async.host_free = free;
    async.to_host_async = ll_h_copy;
    const ll_config *c = &m->cfg;
    enum { T = 6 };
    int32_t ids[T] = {5, 9, 1, 77, 3, 12};
    int W = c->n_heads * c->head_dim > c->d_model ? c->n_heads * c->head_dim : c->d_model;
    ll_pos_mode modes[] = {LL_POS_ALL, LL_POS_LAST, LL_POS_LIST};
    for (int mi = 0; mi < 3; mi++) {
        ll_async_sink a = {.cap = {.n_layers_total = c->n_layers, .T = T, .width = c->d_model}, .fail_at = -1};
        ll_async_sink s = a;
        size_t n = (size_t)c->n_layers * T * W;
        a.cap.data = calloc(n, sizeof(float));
        s.cap.data = calloc(n, sizeof(float));
        /* attn_z has another width: capture it separately by giving only resid_post the capture width */
        if (c->n_heads * c->head_dim != c->d_model) cr_skip_test("fixture has attn_z width != d_model");
        ll_record_all(m, ll_backend_cpu(), &s, T, ids, modes[mi], LL_OK);
        ll_record_all(m, &async, &a, T, ids, modes[mi], LL_OK);
        cr_expect_eq(a.cap.calls, s.cap.calls, "mode %d: %d sink calls, synchronous %d", mi, a.cap.calls, s.cap.calls);
        cr_expect_eq(a.n_order, s.n_order);
        cr_expect_eq(memcmp(a.order, s.order, sizeof a.order), 0, "mode %d: sinks called in another order", mi);
        cr_expect_eq(memcmp(a.cap.data, s.cap.data, n * sizeof(float)), 0, "mode %d: recorded rows differ", mi);
        free(a.cap.data);
        free(s.cap.data);
    }
    /* a failing sink fails the forward pass, as it does synchronously */
    ll_async_sink f = {.cap = {.n_layers_total = c->n_layers, .T = T, .width = c->d_model}, .fail_at = 1};
    f.cap.data = calloc((size_t)c->n_layers * T * W, sizeof(float));
    ll_record_all(m, &async, &f, T, ids, LL_POS_ALL, LL_ERR_IO);
    cr_expect(strstr(ll_last_error(), "test sink: refused") != NULL, "%s", ll_last_error());
    free(f.cap.data);
    m->be = ll_backend_cpu();
    ll_model_free(m);
}

/* bf16 recording: the rows arrive as bf16 (data NULL, data_bf16 set), equal to the fp32
 * rows rounded to nearest even, on the synchronous path and the asynchronous one. */
typedef struct {
    uint16_t *data; /* [layers][T][d] */
    float *f32;     /* the same site recorded in fp32 */
    int T, d, calls, bad;
} ll_bf16_sink;

static ll_status ll_bf16_fn(void *user, const ll_hook_rows *r) {
    ll_bf16_sink *s = user;
    if (r->data || !r->data_bf16) s->bad++;
    else
        for (int i = 0; i < r->n_rows; i++)
            memcpy(s->data + ((size_t)r->layer * s->T + (size_t)r->rows[i]) * s->d, r->data_bf16 + (size_t)i * s->d,
                   (size_t)s->d * 2);
    s->calls++;
    return LL_OK;
}

static ll_status ll_f32_fn(void *user, const ll_hook_rows *r) {
    ll_bf16_sink *s = user;
    if (!r->data || r->data_bf16) s->bad++;
    else
        for (int i = 0; i < r->n_rows; i++)
            memcpy(s->f32 + ((size_t)r->layer * s->T + (size_t)r->rows[i]) * s->d, r->data + (size_t)i * s->d,
                   (size_t)s->d * 4);
    return LL_OK;
}

Test(hooks_async, bf16_records_are_the_rounded_fp32_rows) {
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, "test/fixtures/qwen2", NULL), LL_OK, "%s", ll_last_error());
    ll_backend async = *ll_backend_cpu();
    async.host_alloc = ll_h_alloc;
    async.host_free = free;
    async.to_host_async = ll_h_copy;
    const ll_config *c = &m->cfg;
    enum { T = 5 };
    int32_t ids[T] = {3, 14, 15, 92, 6};
    int64_t off[2] = {0, T};
    const ll_backend *bes[2] = {ll_backend_cpu(), &async};
    size_t n = (size_t)c->n_layers * T * c->d_model;
    for (int k = 0; k < 2; k++) {
        m->be = bes[k];
        ll_bf16_sink s = {.data = calloc(n, 2), .f32 = calloc(n, 4), .T = T, .d = c->d_model};
        ll_hooks *h;
        cr_assert_eq(ll_hooks_new(&h, c->n_layers), LL_OK);
        ll_record r = {.point = LL_HOOK_RESID_MID, .layer_lo = 0, .layer_hi = c->n_layers - 1, .fn = ll_bf16_fn,
                       .user = &s, .bf16 = true};
        cr_assert_eq(ll_hooks_add_record(h, &r), LL_OK);
        r.fn = ll_f32_fn;
        r.bf16 = false;
        cr_assert_eq(ll_hooks_add_record(h, &r), LL_OK);
        ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = ids};
        ll_forward_opts o = {.hooks = h};
        cr_assert_eq(ll_forward(m, &b, &o), LL_OK, "%s", ll_last_error());
        cr_expect_eq(s.bad, 0, "%s: a sink got the wrong kind of rows", bes[k]->name);
        cr_expect_eq(s.calls, c->n_layers);
        size_t diff = 0;
        for (size_t i = 0; i < n; i++) diff += s.data[i] != ll_f32_to_bf16(s.f32[i]);
        cr_expect_eq(diff, 0, "%s: %zu bf16 values are not the rounded fp32 ones", bes[k]->name, diff);
        ll_hooks_free(h);
        free(s.data);
        free(s.f32);
    }
    m->be = ll_backend_cpu();
    ll_hooks *h;
    cr_assert_eq(ll_hooks_new(&h, c->n_layers), LL_OK);
    ll_record rp = {.point = LL_HOOK_ATTN_PATTERN, .layer_lo = 0, .layer_hi = 0, .fn = ll_bf16_fn, .bf16 = true};
    cr_expect_eq(ll_hooks_add_record(h, &rp), LL_ERR_ARG, "bf16 patterns are refused");
    ll_hooks_free(h);
    ll_model_free(m);
}
