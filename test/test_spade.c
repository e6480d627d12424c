/* SPADE and the logit lens on the fixture models against the independent numpy reference
 * in tools/spade_ref.py (its outputs committed as test/fixtures/spade/<model>.safetensors),
 * for both position switches and both row modes (row-0 cache / literal two rows); the
 * number of rows SPADE runs through the blocks, counted by a hook record; decoding. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lens/ll_lens.h"
#include "ll_test_util.h"
#include "spade/ll_spade.h"

#define TOL 2e-4

typedef struct {
    ll_model *m;
    ll_tensor_set ref;
    int P;
    int32_t **tok;
    int *n;
    ll_spade_states st;
} ll_sfix;

static void ll_sfix_open(ll_sfix *f, const char *name) {
    memset(f, 0, sizeof *f);
    char p[512];
    snprintf(p, sizeof p, "test/fixtures/%s", name);
    cr_assert_eq(ll_model_load(&f->m, p, NULL), LL_OK, "loading %s: %s", p, ll_last_error());
    snprintf(p, sizeof p, "test/fixtures/spade/%s.safetensors", name);
    cr_assert_eq(ll_safetensors_open(&f->ref, p), LL_OK, "%s (regenerate with /usr/bin/python3 tools/spade_ref.py)",
                 ll_last_error());
    const ll_tensor_info *tk = ll_tensor_set_find(&f->ref, "tokens"), *so = ll_tensor_set_find(&f->ref, "seq_offsets");
    cr_assert(tk && so && tk->dtype == LL_I32 && so->dtype == LL_I64, "%s: tokens / seq_offsets", p);
    f->P = (int)so->shape[0] - 1;
    /* Copied out: tensors in a safetensors file need not be aligned for their type. */
    int32_t *t = malloc(tk->nbytes);
    int64_t *off = malloc(so->nbytes);
    memcpy(t, tk->data, tk->nbytes);
    memcpy(off, so->data, so->nbytes);
    f->tok = calloc((size_t)f->P, sizeof *f->tok);
    f->n = calloc((size_t)f->P, sizeof *f->n);
    for (int i = 0; i < f->P; i++) {
        f->n[i] = (int)(off[i + 1] - off[i]);
        f->tok[i] = malloc((size_t)f->n[i] * sizeof(int32_t));
        memcpy(f->tok[i], t + off[i], (size_t)f->n[i] * sizeof(int32_t));
    }
    free(t);
    free(off);
    cr_assert_eq(ll_spade_states_collect(f->m, (const int32_t *const *)f->tok, f->n, f->P, true, &f->st), LL_OK, "%s",
                 ll_last_error());
}

static void ll_sfix_close(ll_sfix *f) {
    ll_spade_states_free(&f->st);
    for (int i = 0; i < f->P; i++) free(f->tok[i]);
    free(f->tok);
    free(f->n);
    ll_tensor_set_free(&f->ref);
    ll_model_free(f->m);
}

static void ll_check_spade(const char *name) {
    ll_sfix f;
    ll_sfix_open(&f, name);
    int L = f.m->cfg.n_layers, V = f.m->cfg.vocab_size, d = f.m->cfg.d_model, P = f.P;
    size_t n;
    float *full = ll_test_f32(&f.ref, "full", &n);
    cr_assert(full && n == (size_t)P * V);
    double e = ll_test_rel_err(f.st.full_logits, full, n);
    cr_expect(e < TOL, "%s: full logits rel err %.3g", name, e);

    float *lens = ll_test_f32(&f.ref, "logit_lens", &n);
    cr_assert(lens && n == (size_t)(L + 1) * P * V);
    float *out = malloc((size_t)P * V * sizeof(float));
    float *rows = malloc((size_t)P * d * sizeof(float));
    for (int l = 0; l <= L; l++) {
        for (int i = 0; i < P; i++) memcpy(rows + (size_t)i * d, ll_spade_state(&f.st, l, i, 1), (size_t)d * sizeof(float));
        cr_assert_eq(ll_lens_logits(f.m, P, rows, out), LL_OK, "%s", ll_last_error());
        e = ll_test_rel_err(out, lens + (size_t)l * P * V, (size_t)P * V);
        cr_expect(e < TOL, "%s: logit lens at layer %d rel err %.3g", name, l, e);
    }
    const char *keys[2] = {"spade_orig", "spade_reindex"};
    for (int pz = 0; pz < 2; pz++) {
        float *ref = ll_test_f32(&f.ref, keys[pz], &n);
        cr_assert(ref && n == (size_t)(L + 1) * P * V);
        for (int rm = 0; rm < 2; rm++) {
            ll_spade_opts o = {.positions = pz ? LL_SPADE_POS_REINDEX : LL_SPADE_POS_ORIG,
                               .rows = rm ? LL_SPADE_ROWS_TWO : LL_SPADE_ROWS_CACHED};
            /* max_batch 2 < P: the runner splits and reuses its slots across chunks. */
            ll_spade *sp;
            cr_assert_eq(ll_spade_new(&sp, f.m, &o, 2), LL_OK, "%s", ll_last_error());
            /* Twice over the layers: the second pass reuses the warm row-0 cache. */
            for (int rep = 0; rep < 2; rep++)
                for (int l = 0; l <= L; l++) {
                    cr_assert_eq(ll_spade_run(sp, l, &f.st, 0, P, out, NULL), LL_OK, "%s", ll_last_error());
                    e = ll_test_rel_err(out, ref + (size_t)l * P * V, (size_t)P * V);
                    cr_expect(e < TOL, "%s: SPADE %s rows=%s at layer %d rel err %.3g", name, keys[pz],
                              ll_spade_rows_name(o.rows), l, e);
                }
            ll_spade_free(sp);
        }
        free(ref);
    }
    /* SPADE from the last layer runs no block: it is the full model. */
    ll_spade *sp;
    cr_assert_eq(ll_spade_new(&sp, f.m, NULL, 8), LL_OK);
    cr_assert_eq(ll_spade_run(sp, L, &f.st, 0, P, out, NULL), LL_OK);
    cr_expect(ll_test_rel_err(out, f.st.full_logits, (size_t)P * V) < 1e-6);
    cr_expect_eq(ll_spade_rows_run(sp), 0);
    ll_spade_free(sp);
    free(out);
    free(rows);
    free(lens);
    free(full);
    ll_sfix_close(&f);
}

Test(spade, llama_gqa_vs_numpy) { ll_check_spade("llama_gqa"); }
Test(spade, gpt2_vs_numpy) { ll_check_spade("gpt2"); }
Test(spade, qwen2_vs_numpy) { ll_check_spade("qwen2"); }

typedef struct {
    int calls;
    int64_t rows;
} ll_row_count;

static ll_status ll_count_fn(void *user, const ll_hook_rows *r) {
    ll_row_count *c = user;
    c->calls++;
    c->rows += r->n_rows;
    return LL_OK;
}

/* "A SPADE call really runs two rows" — or one with the row-0 cache: a record at the first
 * block SPADE runs sees every row that enters the blocks. */
Test(spade, rows_processed_counted_by_hook) {
    ll_sfix f;
    ll_sfix_open(&f, "llama_gqa");
    int L = f.m->cfg.n_layers;
    int multi = 0;
    for (int i = 0; i < f.P; i++) multi += f.n[i] > 1;
    for (int rm = 0; rm < 2; rm++) {
        ll_spade_opts o = {.rows = rm ? LL_SPADE_ROWS_TWO : LL_SPADE_ROWS_CACHED};
        ll_spade *sp;
        cr_assert_eq(ll_spade_new(&sp, f.m, &o, 16), LL_OK);
        for (int l = 0; l < L; l++) {
            ll_hooks *h;
            cr_assert_eq(ll_hooks_new(&h, L), LL_OK);
            ll_row_count c = {0};
            ll_record r = {.point = LL_HOOK_RESID_PRE, .layer_lo = l, .layer_hi = l, .fn = ll_count_fn, .user = &c};
            cr_assert_eq(ll_hooks_add_record(h, &r), LL_OK);
            ll_spade_set_hooks(sp, h);
            int64_t before = ll_spade_rows_run(sp);
            cr_assert_eq(ll_spade_run(sp, l, &f.st, 0, f.P, NULL, NULL), LL_OK, "%s", ll_last_error());
            /* cached: one row per prompt; two: two per prompt of length > 1 (a 1-token
             * prompt is its own answer row). */
            int64_t want = rm ? f.P + multi : f.P;
            cr_expect_eq(c.calls, 1, "layer %d: one block run of the batch", l);
            cr_expect_eq(c.rows, want, "rows=%s layer %d: %lld rows entered the blocks, expected %lld",
                         ll_spade_rows_name(o.rows), l, (long long)c.rows, (long long)want);
            cr_expect_eq(ll_spade_rows_run(sp) - before, want);
            ll_spade_set_hooks(sp, NULL);
            ll_hooks_free(h);
        }
        ll_spade_free(sp);
    }
    ll_sfix_close(&f);
}

/* resid_out is the answer row before the final norm: the lens of it gives the logits. */
Test(spade, resid_out_matches_logits) {
    ll_sfix f;
    ll_sfix_open(&f, "qwen2");
    int V = f.m->cfg.vocab_size, d = f.m->cfg.d_model;
    float *lg = malloc((size_t)f.P * V * sizeof(float)), *lg2 = malloc((size_t)f.P * V * sizeof(float));
    float *res = malloc((size_t)f.P * d * sizeof(float));
    ll_spade *sp;
    cr_assert_eq(ll_spade_new(&sp, f.m, NULL, 4), LL_OK);
    cr_assert_eq(ll_spade_run(sp, 1, &f.st, 0, f.P, lg, res), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_lens_logits(f.m, f.P, res, lg2), LL_OK);
    cr_expect(ll_test_rel_err(lg2, lg, (size_t)f.P * V) < 1e-5);
    ll_spade_free(sp);
    free(lg);
    free(lg2);
    free(res);
    ll_sfix_close(&f);
}

Test(spade, decode_row) {
    float lg[6] = {0.0f, 3.0f, 1.0f, 2.0f, -1.0f, 0.5f};
    int32_t opts[3] = {2, 3, 5};
    ll_spade_pick p = ll_spade_decode_row(lg, 6, opts, 3, LL_SPADE_DECODE_OPTIONS);
    cr_expect_eq(p.pick, 1);
    cr_expect_eq(p.token, 3);
    double z = exp(1.0) + exp(2.0) + exp(0.5);
    cr_expect(fabs(p.prob - exp(2.0) / z) < 1e-6);
    double H = 0;
    float v[3] = {1.0f, 2.0f, 0.5f};
    for (int i = 0; i < 3; i++) H -= exp(v[i]) / z * (v[i] - log(z));
    cr_expect(fabs(p.entropy - H) < 1e-5, "entropy %.6f vs %.6f", p.entropy, H);
    p = ll_spade_decode_row(lg, 6, opts, 3, LL_SPADE_DECODE_VOCAB);
    cr_expect_eq(p.token, 1);
    cr_expect_eq(p.pick, -1, "top token 1 is not an option");
    opts[0] = 1;
    p = ll_spade_decode_row(lg, 6, opts, 3, LL_SPADE_DECODE_VOCAB);
    cr_expect_eq(p.pick, 0);
}

Test(spade, bad_input) {
    ll_sfix f;
    ll_sfix_open(&f, "gpt2");
    ll_spade *sp;
    cr_expect_neq(ll_spade_new(&sp, f.m, NULL, 0), LL_OK);
    cr_assert_eq(ll_spade_new(&sp, f.m, NULL, 2), LL_OK);
    float *lg = malloc((size_t)f.P * f.m->cfg.vocab_size * sizeof(float));
    cr_expect_eq(ll_spade_run(sp, f.m->cfg.n_layers + 1, &f.st, 0, f.P, lg, NULL), LL_ERR_ARG);
    cr_expect(strstr(ll_last_error(), "layer"), "%s", ll_last_error());
    cr_expect_eq(ll_spade_run(sp, 0, &f.st, 1, f.P, lg, NULL), LL_ERR_ARG);
    ll_spade_positions pz;
    ll_spade_decode dc;
    cr_expect_eq(ll_spade_parse_positions("nope", &pz), LL_ERR_ARG);
    cr_expect(strstr(ll_last_error(), "orig or reindex"), "%s", ll_last_error());
    cr_expect_eq(ll_spade_parse_decode("vocab", &dc), LL_OK);
    cr_expect_eq(dc, LL_SPADE_DECODE_VOCAB);
    /* GPT-2 has 128 learned positions: a 200-token answer position is out of range under orig. */
    float *h = calloc((size_t)f.m->cfg.d_model, sizeof(float));
    const float *hp[1] = {h};
    int n_tok[1] = {200};
    int32_t ft[1] = {1};
    cr_expect_neq(ll_spade_run_rows(sp, 0, 1, hp, hp, n_tok, ft, lg, NULL), LL_OK);
    cr_expect(strstr(ll_last_error(), "position"), "%s", ll_last_error());
    char desc[128];
    ll_spade_opts o = {.positions = LL_SPADE_POS_REINDEX};
    ll_spade_opts_describe(&o, desc, sizeof desc);
    cr_expect_str_eq(desc, "positions=reindex decode=options rows=cached");
    free(h);
    free(lg);
    ll_spade_free(sp);
    ll_sfix_close(&f);
}
