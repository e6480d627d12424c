/* Every layer's hidden states, the per-block hook points, the logits and the loss of
 * each fixture model against Hugging Face transformers (test/fixtures, made by
 * tools/gen_fixtures.py), on a ragged batch with explicit position ids. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_test_util.h"

#define TOL 1e-4

typedef struct {
    ll_model *m;
    ll_tensor_set exp;
    int32_t *tokens, *pos;
    int64_t *off;
    int n_seq;
    int64_t T;
} ll_fixture;

static void ll_fixture_open(ll_fixture *f, const char *name) {
    memset(f, 0, sizeof *f);
    char p[512];
    snprintf(p, sizeof p, "test/fixtures/%s", name);
    ll_status st = ll_model_load(&f->m, p, NULL);
    cr_assert_eq(st, LL_OK, "loading %s: %s", p, ll_last_error());
    snprintf(p, sizeof p, "test/fixtures/%s/expected.safetensors", name);
    st = ll_safetensors_open(&f->exp, p);
    cr_assert_eq(st, LL_OK, "%s", ll_last_error());
    const ll_tensor_info *tk = ll_tensor_set_find(&f->exp, "tokens");
    const ll_tensor_info *so = ll_tensor_set_find(&f->exp, "seq_offsets");
    const ll_tensor_info *po = ll_tensor_set_find(&f->exp, "position_ids");
    cr_assert(tk && so && po, "%s: tokens, seq_offsets and position_ids must be present", p);
    cr_assert(tk->dtype == LL_I32 && so->dtype == LL_I64 && po->dtype == LL_I32, "%s: fixture dtypes", p);
    f->T = tk->shape[0];
    f->n_seq = (int)so->shape[0] - 1;
    f->tokens = malloc(tk->nbytes);
    f->pos = malloc(po->nbytes);
    f->off = malloc(so->nbytes);
    memcpy(f->tokens, tk->data, tk->nbytes);
    memcpy(f->pos, po->data, po->nbytes);
    memcpy(f->off, so->data, so->nbytes);
}

static void ll_fixture_close(ll_fixture *f) {
    ll_model_free(f->m);
    ll_tensor_set_free(&f->exp);
    free(f->tokens);
    free(f->pos);
    free(f->off);
}

/* Per-sequence mean next-token cross-entropy, as transformers computes `loss`. */
static double ll_seq_loss(const float *logits, const int32_t *tok, int64_t a, int64_t b, int V) {
    double sum = 0;
    for (int64_t t = a; t + 1 < b; t++) {
        const float *r = logits + (size_t)t * V;
        double mx = r[0];
        for (int j = 1; j < V; j++) mx = r[j] > mx ? r[j] : mx;
        double z = 0;
        for (int j = 0; j < V; j++) z += exp(r[j] - mx);
        sum += (log(z) + mx) - r[tok[t + 1]];
    }
    return sum / (double)(b - a - 1);
}

static void ll_check_fixture(const char *name) {
    ll_fixture f;
    ll_fixture_open(&f, name);
    const ll_config *c = &f.m->cfg;
    int L = c->n_layers, d = c->d_model, V = c->vocab_size, qw = c->n_heads * c->head_dim;
    ll_hooks *h;
    cr_assert_eq(ll_hooks_new(&h, L), LL_OK);
    ll_test_capture pre = {.n_layers_total = L + 1, .T = f.T, .width = d};
    ll_test_capture z = {.n_layers_total = L, .T = f.T, .width = qw};
    ll_test_capture ao = {.n_layers_total = L, .T = f.T, .width = d};
    ll_test_capture mo = {.n_layers_total = L, .T = f.T, .width = d};
    pre.data = calloc((size_t)(L + 1) * f.T * d, sizeof(float));
    z.data = calloc((size_t)L * f.T * qw, sizeof(float));
    ao.data = calloc((size_t)L * f.T * d, sizeof(float));
    mo.data = calloc((size_t)L * f.T * d, sizeof(float));
    ll_record r = {.point = LL_HOOK_RESID_PRE, .layer_lo = 0, .layer_hi = L - 1, .fn = ll_test_capture_fn, .user = &pre};
    cr_assert_eq(ll_hooks_add_record(h, &r), LL_OK, "%s", ll_last_error());
    /* HF's last hidden state is after the final norm: record it at layer index L. */
    r = (ll_record){.point = LL_HOOK_FINAL_NORM, .layer_lo = L, .layer_hi = L, .fn = ll_test_capture_fn, .user = &pre};
    cr_assert_eq(ll_hooks_add_record(h, &r), LL_OK, "%s", ll_last_error());
    r = (ll_record){.point = LL_HOOK_ATTN_Z, .layer_lo = 0, .layer_hi = L - 1, .fn = ll_test_capture_fn, .user = &z};
    cr_assert_eq(ll_hooks_add_record(h, &r), LL_OK);
    r = (ll_record){.point = LL_HOOK_ATTN_OUT, .layer_lo = 0, .layer_hi = L - 1, .fn = ll_test_capture_fn, .user = &ao};
    cr_assert_eq(ll_hooks_add_record(h, &r), LL_OK);
    r = (ll_record){.point = LL_HOOK_MLP_OUT, .layer_lo = 0, .layer_hi = L - 1, .fn = ll_test_capture_fn, .user = &mo};
    cr_assert_eq(ll_hooks_add_record(h, &r), LL_OK);

    float *logits = malloc((size_t)f.T * V * sizeof(float));
    ll_batch b = {.n_seq = f.n_seq, .seq_off = f.off, .tokens = f.tokens, .pos = f.pos};
    ll_forward_opts o = {.hooks = h, .logits = LL_LOGITS_ALL, .logits_out = logits};
    cr_assert_eq(ll_forward(f.m, &b, &o), LL_OK, "%s: forward: %s", name, ll_last_error());

    size_t n;
    float *hs = ll_test_f32(&f.exp, "hidden_states", &n);
    cr_assert(hs && n == (size_t)(L + 1) * f.T * d, "%s: hidden_states has %zu values", name, n);
    for (int l = 0; l <= L; l++) {
        double e = ll_test_rel_err(pre.data + (size_t)l * f.T * d, hs + (size_t)l * f.T * d, (size_t)f.T * d);
        cr_expect(e < TOL, "%s: hidden_states[%d] relative error %.3g", name, l, e);
    }
    struct {
        const char *key;
        ll_test_capture *cap;
        int w;
    } per_layer[] = {{"attn_z", &z, qw}, {"attn_out", &ao, d}, {"mlp_out", &mo, d}};
    for (int k = 0; k < 3; k++) {
        float *ref = ll_test_f32(&f.exp, per_layer[k].key, &n);
        cr_assert(ref && n == (size_t)L * f.T * per_layer[k].w, "%s: %s missing or wrong size", name, per_layer[k].key);
        for (int l = 0; l < L; l++) {
            size_t sz = (size_t)f.T * per_layer[k].w;
            double e = ll_test_rel_err(per_layer[k].cap->data + l * sz, ref + l * sz, sz);
            cr_expect(e < TOL, "%s: %s[%d] relative error %.3g", name, per_layer[k].key, l, e);
        }
        free(ref);
    }
    float *lg = ll_test_f32(&f.exp, "logits", &n);
    cr_assert(lg && n == (size_t)f.T * V);
    double e = ll_test_rel_err(logits, lg, n);
    cr_expect(e < TOL, "%s: logits relative error %.3g", name, e);
    float *loss = ll_test_f32(&f.exp, "loss", &n);
    cr_assert(loss && n == (size_t)f.n_seq);
    for (int s = 0; s < f.n_seq; s++) {
        if (f.off[s + 1] - f.off[s] < 2) continue; /* HF's loss of a 1-token sequence is NaN */
        double ours = ll_seq_loss(logits, f.tokens, f.off[s], f.off[s + 1], V);
        cr_expect(fabs(ours - loss[s]) < 1e-4 * fmax(1.0, fabs(loss[s])), "%s: loss of sequence %d: %.6f vs HF %.6f",
                  name, s, ours, (double)loss[s]);
    }
    free(loss);
    free(lg);
    free(hs);
    free(logits);
    free(pre.data);
    free(z.data);
    free(ao.data);
    free(mo.data);
    ll_hooks_free(h);
    ll_fixture_close(&f);
}

Test(hf_parity, llama_gqa) { ll_check_fixture("llama_gqa"); }
Test(hf_parity, llama3_rope_bf16_sharded) { ll_check_fixture("llama3_rope"); }
Test(hf_parity, mistral_f16) { ll_check_fixture("mistral"); }
Test(hf_parity, qwen2_bias) { ll_check_fixture("qwen2"); }
Test(hf_parity, gpt2) { ll_check_fixture("gpt2"); }
