/* Decode with graphs equals decode without (issue 4). On the fixture models and
 * stories260K, on the GPU: a prompt, then 40 greedy steps three ways from the same
 * prefilled cache: plain one-token ll_forward steps (LL_DECODE_FORWARD), the recordable
 * step run op by op (LL_DECODE_FIXED), and that step recorded once and replayed
 * (LL_DECODE_GRAPH). The graph must pick the same tokens; its logits must equal the
 * op-by-op run's (same kernels, same launches: 1e-12 normalised MSE, bit for bit in
 * practice) and the plain forward's within rounding (the recorded attention sizes its key
 * splits for the cache capacity, not the live length, so it sums in another order). The
 * caches are made with a capacity of up to 512, so the recorded attention has splits with
 * no live key. Then the replay must follow the cache when it is truncated between steps,
 * and LL_NO_GRAPHS=1 must give plain steps. Skipped, saying why, without a CUDA device. */
#include "ll_gpu_test.h"
#include "ll_test_util.h"
#include "model/ll_decoder.h"

#define STEPS 40
#define LL_SAME_NMSE 1e-12
#define LL_SPLIT_NMSE 1e-10
static const int32_t prompt[] = {5, 17, 300, 42, 7, 99};
#define NP ((int)(sizeof prompt / sizeof *prompt))

static int32_t ll_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Prefill, then STEPS greedy steps in `mode`; ids[STEPS] and logits[STEPS][V] out. */
static ll_kv_cache *ll_decode_run(ll_model *m, int cap, ll_decode_mode mode, int32_t *ids, float *logits) {
    int V = m->cfg.vocab_size;
    ll_kv_cache *kc;
    cr_assert_eq(ll_kv_cache_new(&kc, m, 1, cap), LL_OK, "%s", ll_last_error());
    float *lg = malloc((size_t)V * sizeof *lg);
    int64_t off[2] = {0, NP};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = prompt};
    ll_forward_opts o = {.cache = kc, .logits = LL_LOGITS_LAST, .logits_out = lg};
    cr_assert_eq(ll_forward(m, &b, &o), LL_OK, "prefill: %s", ll_last_error());
    ll_decoder *d;
    cr_assert_eq(ll_decoder_new_mode(&d, m, kc, 0, mode), LL_OK, "mode %d: %s", (int)mode, ll_last_error());
    int32_t next = ll_argmax(lg, V);
    for (int i = 0; i < STEPS; i++) {
        ids[i] = next;
        cr_assert_eq(ll_decoder_step(d, next, logits + (size_t)i * V), LL_OK, "mode %d step %d: %s", (int)mode, i,
                     ll_last_error());
        cr_assert_eq(ll_decoder_mode(d), mode, "mode %d step %d: the decoder fell back", (int)mode, i);
        next = ll_argmax(logits + (size_t)i * V, V);
    }
    ll_decoder_free(d);
    free(lg);
    return kc;
}

static void ll_graph_check(const ll_backend *be, const char *path) {
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, path, NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_model_use_backend(m, be), LL_OK, "%s: upload: %s", path, ll_last_error());
    int V = m->cfg.vocab_size, L = m->cfg.n_layers;
    int cap = m->cfg.max_pos > 0 && m->cfg.max_pos < 512 ? m->cfg.max_pos : 512;
    cr_assert(cap >= NP + STEPS, "%s: context %d too short", path, cap);
    int32_t ids[3][STEPS];
    float *lg[3];
    ll_kv_cache *kc[3];
    ll_decode_mode modes[3] = {LL_DECODE_FORWARD, LL_DECODE_FIXED, LL_DECODE_GRAPH};
    for (int r = 0; r < 3; r++) {
        lg[r] = malloc((size_t)STEPS * V * sizeof(float));
        kc[r] = ll_decode_run(m, cap, modes[r], ids[r], lg[r]);
    }
    for (int i = 0; i < STEPS; i++) {
        cr_expect_eq(ids[2][i], ids[0][i], "%s step %d: graph token %d, plain forward %d", path, i, ids[2][i],
                     ids[0][i]);
        double same = ll_gt_nmse(lg[2] + (size_t)i * V, lg[1] + (size_t)i * V, (size_t)V);
        double fwd = ll_gt_nmse(lg[2] + (size_t)i * V, lg[0] + (size_t)i * V, (size_t)V);
        cr_expect(same <= LL_SAME_NMSE, "%s step %d: graph vs the same step op by op: nmse %.3g", path, i, same);
        cr_expect(fwd <= LL_SPLIT_NMSE, "%s step %d: graph vs plain forward: nmse %.3g", path, i, fwd);
    }
    for (int l = 0; l < L; l++)
        cr_expect_eq(kc[2]->len[l], kc[0]->len[l], "%s layer %d: cache length %d after graph steps, %d after forward",
                     path, l, kc[2]->len[l], kc[0]->len[l]);

    /* The replay reads the position from the parameter block: truncate the slot back to
     * step 10 and decode the same tokens again with a new graph decoder (recorded at
     * another position than the first), then, once it replays, truncate back to step 15
     * and go on; every step must give the logits it gave the first time. */
    ll_decoder *d;
    float *again = malloc((size_t)V * sizeof *again);
    ll_kv_cache_truncate(kc[2], 0, NP + 10);
    cr_assert_eq(ll_decoder_new_mode(&d, m, kc[2], 0, LL_DECODE_GRAPH), LL_OK, "%s", ll_last_error());
    for (int i = 10; i < STEPS; i++) {
        cr_assert_eq(ll_decoder_step(d, ids[2][i], again), LL_OK, "%s replay step %d: %s", path, i, ll_last_error());
        double e = ll_gt_nmse(again, lg[2] + (size_t)i * V, (size_t)V);
        cr_expect(e <= LL_SAME_NMSE, "%s: step %d decoded again after a truncation: nmse %.3g", path, i, e);
        if (i == 20) { /* and once more mid-way, back to step 15 */
            ll_kv_cache_truncate(kc[2], 0, NP + 15);
            for (int j = 15; j <= 20; j++) {
                cr_assert_eq(ll_decoder_step(d, ids[2][j], again), LL_OK, "%s: %s", path, ll_last_error());
                e = ll_gt_nmse(again, lg[2] + (size_t)j * V, (size_t)V);
                cr_expect(e <= LL_SAME_NMSE, "%s: step %d after a second truncation: nmse %.3g", path, j, e);
            }
        }
    }
    cr_expect_eq(kc[2]->len[0], NP + STEPS);
    ll_decoder_free(d);
    free(again);
    for (int r = 0; r < 3; r++) {
        free(lg[r]);
        ll_kv_cache_free(kc[r]);
    }
    ll_model_free(m);
}

Test(gpu_decode, graphs_equal_plain_gpt2) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    ll_graph_check(be, "test/fixtures/gpt2");
}
Test(gpu_decode, graphs_equal_plain_llama_gqa) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    ll_graph_check(be, "test/fixtures/llama_gqa");
}
Test(gpu_decode, graphs_equal_plain_llama3_rope) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    ll_graph_check(be, "test/fixtures/llama3_rope");
}
Test(gpu_decode, graphs_equal_plain_mistral_sliding_window) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    ll_graph_check(be, "test/fixtures/mistral");
}
Test(gpu_decode, graphs_equal_plain_qwen2) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    ll_graph_check(be, "test/fixtures/qwen2");
}
Test(gpu_decode, graphs_equal_plain_stories260k) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    char path[4096];
    if (!ll_test_asset(path, sizeof path, "stories260K/stories260K.bin"))
        cr_skip_test("../shared/assets/stories260K not found: real-model GPU check skipped");
    ll_graph_check(be, path);
}

/* The default is graphs on the GPU; LL_NO_GRAPHS=1 (and only a value other than "0")
 * gives plain steps. */
Test(gpu_decode, no_graphs_env) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, "test/fixtures/llama_gqa", NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_model_use_backend(m, be), LL_OK, "%s", ll_last_error());
    ll_kv_cache *kc;
    cr_assert_eq(ll_kv_cache_new(&kc, m, 1, 8), LL_OK, "%s", ll_last_error());
    const char *vals[] = {NULL, "0", "1"};
    ll_decode_mode want[] = {LL_DECODE_GRAPH, LL_DECODE_GRAPH, LL_DECODE_FORWARD};
    for (int i = 0; i < 3; i++) {
        if (vals[i]) setenv("LL_NO_GRAPHS", vals[i], 1);
        else unsetenv("LL_NO_GRAPHS");
        ll_decoder *d;
        cr_assert_eq(ll_decoder_new(&d, m, kc, 0), LL_OK, "%s", ll_last_error());
        cr_expect_eq(ll_decoder_mode(d), want[i], "LL_NO_GRAPHS=%s: mode %d", vals[i] ? vals[i] : "(unset)",
                     (int)ll_decoder_mode(d));
        ll_decoder_free(d);
    }
    unsetenv("LL_NO_GRAPHS");
    ll_kv_cache_free(kc);
    ll_model_free(m);
}
