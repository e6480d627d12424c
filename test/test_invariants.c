/* Cheap invariants that need no reference outputs, each a bug seen in some tool:
 * final norm + head on the last resid_post is the logits; KV-cached decoding equals
 * full recompute; a sequence alone equals itself inside a ragged batch; starting from
 * recorded residual rows equals running through; a clean-into-clean patch is a no-op
 * and a real patch changes only what is downstream. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_test_util.h"

static ll_model *ll_load_fixture(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "test/fixtures/%s", name);
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, p, NULL), LL_OK, "%s", ll_last_error());
    return m;
}

static const int32_t toks[] = {5, 17, 300, 42, 7, 99, 511, 3, 250, 128, 64, 1};
#define NT ((int)(sizeof toks / sizeof *toks))

static float *ll_logits_all(ll_model *m, const int32_t *t, int n, ll_hooks *h) {
    int V = m->cfg.vocab_size;
    float *lg = malloc((size_t)n * V * sizeof(float));
    int64_t off[2] = {0, n};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = t};
    ll_forward_opts o = {.logits = LL_LOGITS_ALL, .logits_out = lg, .hooks = h};
    cr_assert_eq(ll_forward(m, &b, &o), LL_OK, "%s", ll_last_error());
    return lg;
}

static void ll_final_norm_head_is_logits(const char *name) {
    ll_model *m = ll_load_fixture(name);
    int L = m->cfg.n_layers, d = m->cfg.d_model, V = m->cfg.vocab_size;
    float *resid = malloc((size_t)NT * d * sizeof(float));
    int64_t off[2] = {0, NT};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = toks};
    float *lg = malloc((size_t)NT * V * sizeof(float));
    ll_forward_opts o = {.logits = LL_LOGITS_ALL, .logits_out = lg, .resid_out = resid};
    cr_assert_eq(ll_forward(m, &b, &o), LL_OK);
    /* The lens path: start at layer L (no blocks) from resid_post(L-1) gives norm + head only. */
    float *lg2 = malloc((size_t)NT * V * sizeof(float));
    ll_forward_opts o2 = {.start_layer = L, .resid_in = resid, .logits = LL_LOGITS_ALL, .logits_out = lg2};
    cr_assert_eq(ll_forward(m, &b, &o2), LL_OK, "%s", ll_last_error());
    cr_expect_eq(memcmp(lg, lg2, (size_t)NT * V * sizeof(float)), 0, "%s: norm+head of resid_post differs", name);
    free(lg);
    free(lg2);
    free(resid);
    ll_model_free(m);
}

Test(invariants, final_norm_and_head_give_logits) {
    ll_final_norm_head_is_logits("llama_gqa");
    ll_final_norm_head_is_logits("gpt2");
}

static void ll_kv_decode_equals_recompute(const char *name) {
    ll_model *m = ll_load_fixture(name);
    int V = m->cfg.vocab_size;
    float *full = ll_logits_all(m, toks, NT, NULL);
    ll_kv_cache *kc;
    cr_assert_eq(ll_kv_cache_new(&kc, m, 1, 64), LL_OK);
    /* prefill 5 tokens, then decode one at a time */
    float *lg = malloc((size_t)NT * V * sizeof(float));
    int64_t off[2] = {0, 5};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = toks};
    ll_forward_opts o = {.cache = kc, .logits = LL_LOGITS_ALL, .logits_out = lg};
    cr_assert_eq(ll_forward(m, &b, &o), LL_OK, "%s", ll_last_error());
    for (int t = 5; t < NT; t++) {
        int64_t o1[2] = {0, 1};
        ll_batch b1 = {.n_seq = 1, .seq_off = o1, .tokens = toks + t};
        ll_forward_opts oo = {.cache = kc, .logits = LL_LOGITS_LAST, .logits_out = lg + (size_t)t * V};
        cr_assert_eq(ll_forward(m, &b1, &oo), LL_OK, "%s", ll_last_error());
    }
    double e = ll_test_rel_err(lg, full, (size_t)NT * V);
    cr_expect(e < 1e-5, "%s: cached decode differs from recompute by %.3g", name, e);
    ll_kv_cache_free(kc);
    free(lg);
    free(full);
    ll_model_free(m);
}

Test(invariants, kv_cached_decode_equals_recompute) {
    ll_kv_decode_equals_recompute("llama_gqa");
    ll_kv_decode_equals_recompute("mistral");
    ll_kv_decode_equals_recompute("gpt2");
}

Test(invariants, alone_equals_in_ragged_batch) {
    ll_model *m = ll_load_fixture("qwen2");
    int V = m->cfg.vocab_size;
    float *alone = ll_logits_all(m, toks + 3, 6, NULL);
    /* the same 6 tokens as the middle sequence of a ragged batch of 3 */
    int32_t all[3 + 6 + 2];
    memcpy(all, toks, 3 * sizeof(int32_t));
    memcpy(all + 3, toks + 3, 6 * sizeof(int32_t));
    all[9] = 11;
    all[10] = 12;
    int64_t off[4] = {0, 3, 9, 11};
    float *lg = malloc(11 * (size_t)V * sizeof(float));
    ll_batch b = {.n_seq = 3, .seq_off = off, .tokens = all};
    ll_forward_opts o = {.logits = LL_LOGITS_ALL, .logits_out = lg};
    cr_assert_eq(ll_forward(m, &b, &o), LL_OK);
    double e = ll_test_rel_err(lg + 3 * (size_t)V, alone, 6 * (size_t)V);
    cr_expect(e < 1e-6, "alone vs ragged: %.3g", e);
    /* LAST mode returns exactly those rows */
    float *last = malloc(3 * (size_t)V * sizeof(float));
    ll_forward_opts o2 = {.logits = LL_LOGITS_LAST, .logits_out = last};
    cr_assert_eq(ll_forward(m, &b, &o2), LL_OK);
    cr_expect_eq(memcmp(last + (size_t)V, lg + 8 * (size_t)V, (size_t)V * sizeof(float)), 0);
    free(last);
    free(lg);
    free(alone);
    ll_model_free(m);
}

Test(invariants, start_from_recorded_residual_equals_full) {
    ll_model *m = ll_load_fixture("llama3_rope");
    int d = m->cfg.d_model, V = m->cfg.vocab_size;
    ll_hooks *h;
    ll_hooks_new(&h, m->cfg.n_layers);
    ll_test_capture cap = {.n_layers_total = m->cfg.n_layers, .T = NT, .width = d};
    cap.data = calloc((size_t)m->cfg.n_layers * NT * d, sizeof(float));
    ll_record r = {.point = LL_HOOK_RESID_POST, .layer_lo = 0, .layer_hi = 0, .fn = ll_test_capture_fn, .user = &cap};
    ll_hooks_add_record(h, &r);
    float *full = ll_logits_all(m, toks, NT, h);
    cr_assert_eq(cap.calls, 1);
    float *lg = malloc((size_t)NT * V * sizeof(float));
    int64_t off[2] = {0, NT};
    ll_batch b = {.n_seq = 1, .seq_off = off};
    ll_forward_opts o = {.start_layer = 1, .resid_in = cap.data, .logits = LL_LOGITS_ALL, .logits_out = lg};
    cr_assert_eq(ll_forward(m, &b, &o), LL_OK, "%s", ll_last_error());
    cr_expect_eq(memcmp(lg, full, (size_t)NT * V * sizeof(float)), 0, "resuming at layer 1 changed the logits");
    /* stop early: no logits are produced and resid_out is resid_post of the last block run */
    float *res = malloc((size_t)NT * d * sizeof(float));
    ll_batch b2 = {.n_seq = 1, .seq_off = off, .tokens = toks};
    ll_forward_opts o2 = {.stop_layer = 1, .resid_out = res, .logits = LL_LOGITS_ALL, .logits_out = lg};
    memset(lg, 0, (size_t)NT * V * sizeof(float));
    cr_assert_eq(ll_forward(m, &b2, &o2), LL_OK);
    cr_expect_eq(memcmp(res, cap.data, (size_t)NT * d * sizeof(float)), 0);
    cr_expect_eq(lg[0], 0.0f, "stopping early must not compute the head");
    free(res);
    free(lg);
    free(full);
    free(cap.data);
    ll_hooks_free(h);
    ll_model_free(m);
}

static ll_status ll_keep_rows(void *user, const ll_hook_rows *r) {
    size_t heads = r->point == LL_HOOK_ATTN_PATTERN ? (size_t)r->n_heads : 1;
    memcpy(user, r->data, heads * (size_t)r->n_rows * r->width * sizeof(float));
    return LL_OK;
}

Test(invariants, clean_patch_is_noop_and_real_patch_propagates) {
    ll_model *m = ll_load_fixture("llama_gqa");
    int d = m->cfg.d_model, V = m->cfg.vocab_size, L = m->cfg.n_layers;
    float *clean = ll_logits_all(m, toks, NT, NULL);
    /* record resid_post at layer 1 for rows 2 and 5 */
    ll_hooks *h;
    ll_hooks_new(&h, L);
    int64_t rows[2] = {2, 5};
    float rec[2 * 64];
    cr_assert(d <= 64);
    ll_record r = {.point = LL_HOOK_RESID_POST, .layer_lo = 1, .layer_hi = 1, .pos = LL_POS_LIST, .rows = rows,
                   .n_rows = 2, .fn = ll_keep_rows, .user = rec};
    ll_hooks_add_record(h, &r);
    free(ll_logits_all(m, toks, NT, h));
    ll_hooks_clear(h);
    /* clean-into-clean: replace with its own values */
    ll_patch p = {.point = LL_HOOK_RESID_POST, .layer = 1, .n_rows = 2, .rows = rows, .op = LL_PATCH_REPLACE,
                  .src = rec, .width = d, .head = -1};
    cr_assert_eq(ll_hooks_add_patch(h, &p), LL_OK, "%s", ll_last_error());
    float *same = ll_logits_all(m, toks, NT, h);
    cr_expect_eq(memcmp(same, clean, (size_t)NT * V * sizeof(float)), 0, "clean-into-clean patch changed logits");
    cr_expect_eq(ll_hooks_patch_stat(h, 0).l2_change, 0.0);
    cr_expect_eq(ll_hooks_patch_stat(h, 0).n_applied, 1);
    free(same);
    ll_hooks_clear(h);
    /* a real patch: zero row 5 at layer 1 -> rows < 5 unchanged, rows >= 5 changed */
    int64_t r5 = 5;
    ll_patch z = {.point = LL_HOOK_RESID_POST, .layer = 1, .n_rows = 1, .rows = &r5, .op = LL_PATCH_ZERO, .head = -1};
    cr_assert_eq(ll_hooks_add_patch(h, &z), LL_OK);
    float *pat = ll_logits_all(m, toks, NT, h);
    cr_expect(ll_hooks_patch_stat(h, 0).l2_change > 0);
    for (int t = 0; t < NT; t++) {
        int same_row = memcmp(pat + (size_t)t * V, clean + (size_t)t * V, (size_t)V * sizeof(float)) == 0;
        if (t < 5) cr_expect(same_row, "row %d is upstream of the patch and must not change", t);
        else cr_expect(!same_row, "row %d is downstream of the patch and must change", t);
    }
    free(pat);
    ll_hooks_clear(h);
    /* copy-from-row and add with a head slice on attn_z */
    int64_t tgt = 4, src = 1;
    ll_patch cp = {.point = LL_HOOK_RESID_PRE, .layer = 0, .n_rows = 1, .rows = &tgt, .op = LL_PATCH_COPY_ROW,
                   .src_rows = &src, .head = -1};
    cr_assert_eq(ll_hooks_add_patch(h, &cp), LL_OK);
    float cap4[64];
    ll_record r4 = {.point = LL_HOOK_RESID_PRE, .layer_lo = 0, .layer_hi = 0, .pos = LL_POS_LIST, .rows = &tgt,
                    .n_rows = 1, .fn = ll_keep_rows, .user = cap4};
    ll_hooks_add_record(h, &r4);
    free(ll_logits_all(m, toks, NT, h));
    /* the recorded row 4 is now token 17's embedding (row 1) */
    cr_expect_eq(memcmp(cap4, m->w.tok_emb + (size_t)toks[1] * d, (size_t)d * sizeof(float)), 0);
    ll_hooks_free(h);
    free(clean);
    ll_model_free(m);
}

Test(invariants, attention_pattern_rows_sum_to_one) {
    ll_model *m = ll_load_fixture("mistral");
    ll_hooks *h;
    ll_hooks_new(&h, m->cfg.n_layers);
    static float pat[4 * 12 * 12];
    ll_record r = {.point = LL_HOOK_ATTN_PATTERN, .layer_lo = 1, .layer_hi = 1, .fn = ll_keep_rows, .user = pat};
    cr_assert_eq(ll_hooks_add_record(h, &r), LL_OK);
    free(ll_logits_all(m, toks, NT, h));
    int H = m->cfg.n_heads, W = m->cfg.sliding_window;
    cr_assert(H <= 4);
    for (int hh = 0; hh < H; hh++)
        for (int q = 0; q < NT; q++) {
            double s = 0;
            for (int k = 0; k < NT; k++) {
                float p = pat[((size_t)hh * NT + q) * NT + k];
                s += p;
                if (k > q) cr_expect_eq(p, 0.0f, "causal mask: head %d query %d key %d", hh, q, k);
                if (W > 0 && k <= q - W) cr_expect_eq(p, 0.0f, "sliding window: query %d key %d", q, k);
            }
            cr_expect(fabs(s - 1.0) < 1e-5, "pattern row sums to %f", s);
        }
    ll_hooks_free(h);
    ll_model_free(m);
}

Test(invariants, bad_forward_arguments_are_errors) {
    ll_model *m = ll_load_fixture("llama_gqa");
    int32_t bad[2] = {1, 100000};
    int64_t off[2] = {0, 2};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = bad};
    cr_expect_eq(ll_forward(m, &b, NULL), LL_ERR_ARG);
    cr_expect(strstr(ll_last_error(), "100000") != NULL, "%s", ll_last_error());
    ll_batch b2 = {.n_seq = 1, .seq_off = off, .tokens = toks};
    ll_forward_opts o = {.start_layer = 2};
    cr_expect_eq(ll_forward(m, &b2, &o), LL_ERR_ARG, "start_layer without residual rows");
    ll_hooks *h;
    ll_hooks_new(&h, m->cfg.n_layers);
    ll_record r = {.point = LL_HOOK_RESID_POST, .layer_lo = 0, .layer_hi = 99, .fn = ll_test_capture_fn};
    cr_expect_eq(ll_hooks_add_record(h, &r), LL_ERR_ARG);
    int64_t far = 50;
    ll_patch p = {.point = LL_HOOK_RESID_PRE, .layer = 0, .n_rows = 1, .rows = &far, .op = LL_PATCH_ZERO, .head = -1};
    cr_assert_eq(ll_hooks_add_patch(h, &p), LL_OK);
    ll_forward_opts o2 = {.hooks = h};
    cr_expect_eq(ll_forward(m, &b2, &o2), LL_ERR_ARG);
    cr_expect(strstr(ll_last_error(), "row 50") != NULL, "%s", ll_last_error());
    ll_hooks_free(h);
    ll_model_free(m);
}

Test(invariants, hook_names_parse) {
    ll_hook_point p;
    int l;
    cr_expect_eq(ll_hook_parse("blocks.3.hook_resid_post", &p, &l), LL_OK);
    cr_expect(p == LL_HOOK_RESID_POST && l == 3);
    cr_expect_eq(ll_hook_parse("ln_final.hook_normalized", &p, &l), LL_OK);
    cr_expect(p == LL_HOOK_FINAL_NORM && l == -1);
    cr_expect_eq(ll_hook_parse("blocks.0.attn.hook_z", &p, &l), LL_OK);
    cr_expect(p == LL_HOOK_ATTN_Z && l == 0);
    cr_expect_eq(ll_hook_parse("blocks.x.hook_resid_post", &p, &l), LL_ERR_ARG);
    cr_expect_eq(ll_hook_parse("hook_nonsense", &p, &l), LL_ERR_ARG);
}
