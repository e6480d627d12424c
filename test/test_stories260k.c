/* The real trained model ../shared/assets/stories260K, as a llama2.c checkpoint and as
 * GGUF v1: greedy decoding from "Once upon a time" (with BOS) must continue with the
 * documented story. Skipped, with a message, when ../shared is absent. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ll_test_util.h"

static const int32_t prompt[] = {1, 403, 407, 261, 378};
static const int32_t expected[] = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317,
                                   426, 338, 401, 396, 267, 337, 410, 408, 419, 292};
#define NP 5
#define NE 20

static int ll_argmax(const float *r, int n) {
    int b = 0;
    for (int j = 1; j < n; j++)
        if (r[j] > r[b]) b = j;
    return b;
}

static void ll_greedy_story(const char *rel) {
    char path[4096];
    if (!ll_test_asset(path, sizeof path, rel)) cr_skip_test("../shared/assets/%s not found: real-model check skipped", rel);
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, path, NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(m->cfg.vocab_size, 512);
    cr_assert_eq(m->cfg.n_layers, 5);
    int V = m->cfg.vocab_size;
    ll_kv_cache *kc;
    cr_assert_eq(ll_kv_cache_new(&kc, m, 1, 64), LL_OK);
    float *lg = malloc((size_t)V * sizeof(float));
    int64_t off[2] = {0, NP};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = prompt};
    ll_forward_opts o = {.cache = kc, .logits = LL_LOGITS_LAST, .logits_out = lg};
    cr_assert_eq(ll_forward(m, &b, &o), LL_OK, "%s", ll_last_error());
    int32_t got[NE];
    for (int i = 0; i < NE; i++) {
        got[i] = ll_argmax(lg, V);
        int64_t o1[2] = {0, 1};
        ll_batch b1 = {.n_seq = 1, .seq_off = o1, .tokens = &got[i]};
        cr_assert_eq(ll_forward(m, &b1, &o), LL_OK, "%s", ll_last_error());
    }
    for (int i = 0; i < NE; i++)
        cr_expect_eq(got[i], expected[i], "%s: token %d: got %d, the documented story has %d", rel, i, got[i],
                     expected[i]);
    free(lg);
    ll_kv_cache_free(kc);
    ll_model_free(m);
}

Test(stories260k, llama2c_bin_greedy) { ll_greedy_story("stories260K/stories260K.bin"); }
Test(stories260k, gguf_v1_greedy) { ll_greedy_story("stories260K/tinyllamas-stories-260k-f32.gguf"); }

Test(stories260k, bin_and_gguf_agree) {
    char a[4096], g[4096];
    if (!ll_test_asset(a, sizeof a, "stories260K/stories260K.bin") ||
        !ll_test_asset(g, sizeof g, "stories260K/tinyllamas-stories-260k-f32.gguf"))
        cr_skip_test("../shared/assets/stories260K not found");
    ll_model *m1, *m2;
    cr_assert_eq(ll_model_load(&m1, a, NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_model_load(&m2, g, NULL), LL_OK, "%s", ll_last_error());
    int V = 512;
    float *l1 = malloc(NP * (size_t)V * 4), *l2 = malloc(NP * (size_t)V * 4);
    int64_t off[2] = {0, NP};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = prompt};
    ll_forward_opts o1 = {.logits = LL_LOGITS_ALL, .logits_out = l1}, o2 = {.logits = LL_LOGITS_ALL, .logits_out = l2};
    cr_assert_eq(ll_forward(m1, &b, &o1), LL_OK);
    cr_assert_eq(ll_forward(m2, &b, &o2), LL_OK);
    cr_expect(ll_test_rel_err(l1, l2, NP * (size_t)V) < 1e-6);
    free(l1);
    free(l2);
    ll_model_free(m1);
    ll_model_free(m2);
}
