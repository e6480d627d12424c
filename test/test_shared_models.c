/* Real checkpoints from ../shared/assets against what Hugging Face transformers computed
 * for them (tools/gen_shared_refs.py -> test/fixtures/shared/). Skipped, with a message,
 * when ../shared is absent. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ll_test_util.h"

Test(shared_models, tiny_gpt2_matches_transformers) {
    char path[4096];
    if (!ll_test_asset(path, sizeof path, "tiny-gpt2/model.safetensors"))
        cr_skip_test("../shared/assets/tiny-gpt2 not found: real-checkpoint check skipped");
    path[strlen(path) - strlen("/model.safetensors")] = 0;
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, path, NULL), LL_OK, "%s", ll_last_error());
    ll_tensor_set ref = {0};
    cr_assert_eq(ll_safetensors_open(&ref, "test/fixtures/shared/tiny-gpt2.safetensors"), LL_OK, "%s",
                 ll_last_error());
    const ll_tensor_info *tk = ll_tensor_set_find(&ref, "tokens"), *so = ll_tensor_set_find(&ref, "seq_offsets");
    cr_assert(tk && so);
    int n_seq = (int)so->shape[0] - 1;
    int64_t T = tk->shape[0];
    int L = m->cfg.n_layers, d = m->cfg.d_model, V = m->cfg.vocab_size;
    ll_hooks *h;
    ll_hooks_new(&h, L);
    ll_test_capture cap = {.n_layers_total = L + 1, .T = T, .width = d};
    cap.data = calloc((size_t)(L + 1) * T * d, sizeof(float));
    ll_record r = {.point = LL_HOOK_RESID_PRE, .layer_lo = 0, .layer_hi = L - 1, .fn = ll_test_capture_fn, .user = &cap};
    ll_hooks_add_record(h, &r);
    r = (ll_record){.point = LL_HOOK_FINAL_NORM, .layer_lo = L, .layer_hi = L, .fn = ll_test_capture_fn, .user = &cap};
    ll_hooks_add_record(h, &r);
    float *last = malloc((size_t)n_seq * V * sizeof(float));
    ll_batch b = {.n_seq = n_seq, .seq_off = so->data, .tokens = tk->data};
    ll_forward_opts o = {.hooks = h, .logits = LL_LOGITS_LAST, .logits_out = last};
    cr_assert_eq(ll_forward(m, &b, &o), LL_OK, "%s", ll_last_error());
    size_t n;
    float *hs = ll_test_f32(&ref, "hidden_states", &n);
    float *lg = ll_test_f32(&ref, "last_logits", NULL);
    cr_assert_eq(n, (size_t)(L + 1) * T * d);
    for (int l = 0; l <= L; l++) {
        double e = ll_test_rel_err(cap.data + (size_t)l * T * d, hs + (size_t)l * T * d, (size_t)T * d);
        cr_expect(e < 1e-4, "hidden_states[%d]: relative error %.3g", l, e);
    }
    double e = ll_test_rel_err(last, lg, (size_t)n_seq * V);
    cr_expect(e < 1e-4, "last-position logits: relative error %.3g", e);
    free(hs);
    free(lg);
    free(last);
    free(cap.data);
    ll_hooks_free(h);
    ll_tensor_set_free(&ref);
    ll_model_free(m);
}
