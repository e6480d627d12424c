/* SPADE-EXIT (host/exit): the token-layer accounting on hand-computed cases, the tau sweep
 * and operating points on a hand-made table, and the real loop on data/models/toy-llama
 * against decisions rebuilt independently from a whole forward pass (ll_spade_states),
 * SPADE at every layer and the maps applied to the recorded states. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exit/ll_exit.h"
#include "exit/ll_exit_prompts.h"

Test(exit, token_layers_by_hand) {
    /* n = 10 tokens, L = 32: full 320; exit at 8: 10*8 + 2*24 = 128. */
    cr_assert_eq(ll_exit_token_layers(10, 32, 8), 128);
    cr_assert_eq(ll_exit_token_layers(10, 32, 32), 320);
    cr_assert_eq(ll_exit_token_layers(10, 32, 0), 320, "0 means no exit");
    cr_assert_eq(ll_exit_token_layers(3, 4, 1), 3 + 6);
    cr_assert_float_eq(ll_exit_iso_layer(10, 32, 8), 12.8, 1e-12);
    cr_assert_float_eq(ll_exit_iso_layer(4, 32, 30), 31.0, 1e-12);
    ll_exit_tally t = {0};
    ll_exit_tally_add(&t, 10, 32, 8, 8, 100.0); /* 320 / 128 = 2.5 */
    ll_exit_tally_add(&t, 5, 32, 32, 31, 100.0); /* no exit: 160 / 160 = 1 */
    cr_assert_float_eq(t.full, 480, 0);
    cr_assert_float_eq(t.spent, 288, 0);
    cr_assert_float_eq(ll_exit_speedup_aggregate(&t), 480.0 / 288.0, 1e-12);
    cr_assert_float_eq(ll_exit_speedup_mean(&t), 1.75, 1e-12);
    cr_assert_float_eq(t.map_macs, 3900, 0);
    /* One Llama block per token: d 96, 4 heads of 24 (2 kv heads), d_ff 256:
     * q 96*96 + k,v 2*96*48 + o 96*96 + mlp 3*96*256 = 9216 + 9216 + 9216 + 73728. */
    ll_config c = {.d_model = 96, .n_heads = 4, .n_kv_heads = 2, .head_dim = 24, .d_ff = 256, .mlp = LL_MLP_SWIGLU};
    cr_assert_float_eq(ll_exit_layer_macs(&c), 101376, 0);
}

Test(exit, sweep_and_operating_points_by_hand) {
    /* 3 prompts, L = 4, maps at 1..3. */
    enum { L = 4 };
    int n_tok[3] = {10, 6, 8}, full[3] = {0, 1, 2}, gold[3] = {0, 1, 3};
    float H[3][L + 1] = {{NAN, 0.9f, 0.2f, 0.1f, NAN}, {NAN, 0.5f, 0.6f, 0.05f, NAN}, {NAN, 0.3f, 0.9f, 0.9f, NAN}};
    int sp[3][L + 1] = {{0, 1, 0, 0, 0}, {0, 2, 1, 1, 0}, {0, 3, 2, 2, 0}};
    ll_exit_table t = {.n = 3, .L = L, .min_layer = 1, .n_tok = n_tok, .H = &H[0][0], .spade_pick = &sp[0][0],
                       .full_pick = full, .gold = gold, .map_macs = 50};
    int hist[L + 1], el[3], pk[3];
    ll_exit_point p = {.hist = hist};
    /* tau 0: nobody exits; the full model gets 2 of 3. */
    ll_exit_simulate(&t, 0.0, 100.0, &p, el, pk);
    cr_assert(el[0] == 4 && el[1] == 4 && el[2] == 4);
    cr_assert_float_eq(p.accuracy, 2.0 / 3, 1e-12);
    cr_assert_float_eq(p.speedup_aggregate, 1.0, 1e-12);
    cr_assert_eq(hist[4], 3);
    cr_assert_float_eq(p.map_token_layers, 3 * 50.0 / 100.0, 1e-12, "3 checks of 50 MACs per prompt / 100");
    /* tau 0.4: prompt 0 exits at 2 (H 0.2, pick 0: right), 1 at 3 (0.05, pick 1: right),
     * 2 at 1 (0.3, pick 3: right). Costs 10*2+2*2 = 24, 6*3+2 = 20, 8+6 = 14 of 40+24+32. */
    ll_exit_simulate(&t, 0.4, 100.0, &p, el, pk);
    cr_assert(el[0] == 2 && el[1] == 3 && el[2] == 1, "%d %d %d", el[0], el[1], el[2]);
    cr_assert(pk[0] == 0 && pk[1] == 1 && pk[2] == 3);
    cr_assert_float_eq(p.accuracy, 1.0, 1e-12);
    cr_assert_float_eq(p.speedup_aggregate, 96.0 / 58.0, 1e-12);
    cr_assert_float_eq(p.speedup_mean, (40.0 / 24 + 24.0 / 20 + 32.0 / 14) / 3, 1e-12);
    cr_assert(hist[1] == 1 && hist[2] == 1 && hist[3] == 1 && hist[4] == 0);
    /* min_layer 2: prompt 2 is not checked at 1 and never exits (0.9, 0.9). */
    t.min_layer = 2;
    ll_exit_simulate(&t, 0.4, 100.0, &p, el, pk);
    cr_assert(el[0] == 2 && el[1] == 3 && el[2] == 4);
    /* Operating points. */
    ll_exit_point pts[4] = {{.accuracy = 0.70, .speedup_aggregate = 1.0},
                            {.accuracy = 0.72, .speedup_aggregate = 1.2},
                            {.accuracy = 0.695, .speedup_aggregate = 1.5},
                            {.accuracy = 0.68, .speedup_aggregate = 2.0}};
    int best, within;
    ll_exit_operating_points(pts, 4, 0.70, &best, &within);
    cr_assert_eq(best, 1);
    cr_assert_eq(within, 2, "0.695 is within 1 point of 0.70; 0.68 is not");
}

/* ---- the loop on the toy model ---- */

static ll_model *toy;
static ll_exit_prompts train_p, eval_p;
static ll_lspade_maps *maps;

static void toy_setup(ll_lspade_target target) {
    cr_assert_eq(ll_model_load(&toy, "data/models/toy-llama", NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_exit_prompts_toy_mcq(&train_p, 96, 11, toy->cfg.vocab_size), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_exit_prompts_toy_mcq(&eval_p, 40, 12, toy->cfg.vocab_size), LL_OK, "%s", ll_last_error());
    ll_lspade_fit_opts fo = {.target = target, .val_frac = 0.25, .seed = 3};
    ll_lspade_data d = ll_exit_prompts_data(&train_p);
    cr_assert_eq(ll_lspade_fit(toy, &d, &fo, NULL, &maps), LL_OK, "%s", ll_last_error());
}

static void toy_teardown(void) {
    ll_lspade_maps_free(maps);
    ll_exit_prompts_free(&train_p);
    ll_exit_prompts_free(&eval_p);
    ll_model_free(toy);
    maps = NULL;
    toy = NULL;
}

/* The independent table: one whole forward (hooks), the maps on its states, SPADE at every
 * layer from its states, the full model's logits from the same forward. */
typedef struct {
    float *H;
    int *sp, *full;
} ref_table;

static void build_ref(ll_spade *sp, ref_table *r) {
    int n = eval_p.n, L = toy->cfg.n_layers, d = toy->cfg.d_model, V = toy->cfg.vocab_size, K = eval_p.K;
    ll_spade_states st;
    cr_assert_eq(ll_spade_states_collect(toy, (const int32_t *const *)eval_p.tok, eval_p.n_tok, n, true, &st), LL_OK,
                 "%s", ll_last_error());
    r->H = malloc((size_t)n * (L + 1) * sizeof(float));
    r->sp = calloc((size_t)n * (L + 1), sizeof(int));
    r->full = malloc((size_t)n * sizeof(int));
    float *h = malloc((size_t)n * d * sizeof(float)), *lg = malloc((size_t)n * K * sizeof(float));
    float *vl = malloc((size_t)n * V * sizeof(float));
    for (int i = 0; i < n * (L + 1); i++) r->H[i] = NAN;
    for (int l = 1; l < L; l++) {
        for (int i = 0; i < n; i++) memcpy(h + (size_t)i * d, ll_spade_state(&st, l, i, 1), (size_t)d * sizeof(float));
        cr_assert_eq(ll_lspade_apply(maps, toy, l, n, h, (const int32_t *const *)eval_p.cand, lg), LL_OK, "%s",
                     ll_last_error());
        cr_assert_eq(ll_spade_run(sp, l, &st, 0, n, vl, NULL), LL_OK, "%s", ll_last_error());
        for (int i = 0; i < n; i++) {
            r->H[(size_t)i * (L + 1) + l] = (float)ll_lspade_norm_entropy(lg + (size_t)i * K, K, NULL);
            r->sp[(size_t)i * (L + 1) + l] =
                ll_spade_decode_row(vl + (size_t)i * V, V, eval_p.cand[i], K, LL_SPADE_DECODE_OPTIONS).pick;
        }
    }
    for (int i = 0; i < n; i++)
        r->full[i] = ll_spade_decode_row(st.full_logits + (size_t)i * V, V, eval_p.cand[i], K, LL_SPADE_DECODE_OPTIONS).pick;
    free(h);
    free(lg);
    free(vl);
    ll_spade_states_free(&st);
}

static int cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void loop_matches_reference(ll_lspade_target target) {
    toy_setup(target);
    int n = eval_p.n, L = toy->cfg.n_layers;
    ll_spade *sp;
    cr_assert_eq(ll_spade_new(&sp, toy, NULL, 16), LL_OK, "%s", ll_last_error());
    ref_table ref;
    build_ref(sp, &ref);
    /* A tau in the middle of the checked entropies, at a gap, so rounding differences
     * between the two forward paths cannot flip a decision. */
    int nh = 0;
    float *hs = malloc((size_t)n * L * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int l = 1; l < L; l++) hs[nh++] = ref.H[(size_t)i * (L + 1) + l];
    qsort(hs, nh, sizeof(float), cmpf);
    double mid = NAN;
    for (int k = nh / 2; k < nh - 1; k++)
        if (hs[k + 1] - hs[k] > 1e-4) {
            mid = 0.5 * (hs[k] + hs[k + 1]);
            break;
        }
    cr_assert(!isnan(mid));
    double taus[3] = {0.0, mid, 2.0};
    ll_lspade_data d = ll_exit_prompts_data(&eval_p);
    ll_exit_table t = {.n = n, .L = L, .min_layer = 1, .n_tok = eval_p.n_tok, .H = ref.H, .spade_pick = ref.sp,
                       .full_pick = ref.full, .gold = eval_p.gold};
    for (int k = 0; k < 3; k++) {
        ll_exit_opts o = {.tau = taus[k], .min_layer = 1, .batch = 7, .maps = maps, .sp = sp};
        ll_exit_result r;
        cr_assert_eq(ll_exit_run(toy, &o, &d, &r), LL_OK, "%s", ll_last_error());
        int el[64], pk[64], hist[8];
        ll_exit_point p = {.hist = hist};
        ll_exit_simulate(&t, taus[k], 1.0, &p, el, pk);
        double maxdh = 0;
        int64_t rows_want[8] = {0};
        for (int i = 0; i < n; i++) {
            cr_assert_eq(r.exit_layer[i], el[i], "tau %g prompt %d: loop exits at %d, reference at %d", taus[k], i,
                         r.exit_layer[i], el[i]);
            cr_assert_eq(r.pick[i], pk[i], "tau %g prompt %d: loop picks %d, reference %d", taus[k], i, r.pick[i], pk[i]);
            for (int l = 1; l <= r.exit_layer[i] && l < L; l++)
                maxdh = fmax(maxdh, fabs(r.H[(size_t)i * (L + 1) + l] - ref.H[(size_t)i * (L + 1) + l]));
            for (int l = r.exit_layer[i] + 1; l < L; l++)
                cr_assert(isnan(r.H[(size_t)i * (L + 1) + l]), "prompt %d checked at %d after exiting", i, l);
            for (int l = 1; l <= r.exit_layer[i]; l++) rows_want[l - 1] += eval_p.n_tok[i];
        }
        for (int l = 0; l < L; l++)
            cr_assert_eq(r.rows[l], rows_want[l], "block %d ran %lld rows, exited prompts dropped: want %lld", l,
                         (long long)r.rows[l], (long long)rows_want[l]);
        if (k == 0) {
            for (int i = 0; i < n; i++) cr_assert_eq(r.exit_layer[i], L, "tau 0 never exits");
            for (int i = 0; i < n; i++) cr_assert_eq(r.pick[i], ref.full[i], "tau 0 gives the full model");
        }
        if (k == 2)
            for (int i = 0; i < n; i++) cr_assert_eq(r.exit_layer[i], 1, "a huge tau exits at min_layer");
        cr_log_info("SPADE-EXIT toy-llama %s target, tau %.4f: accuracy %.3f, token-layer speedup %.3f (mean %.3f), "
                    "exits %d/%d/%d/%d at layers 1-4, max |H loop - H reference| %.2e, %.3f s",
                    ll_lspade_target_name(target), taus[k], p.accuracy, p.speedup_aggregate, p.speedup_mean, hist[1],
                    hist[2], hist[3], hist[4], maxdh, r.seconds);
        cr_assert(maxdh < 1e-4, "entropies differ by %g between the loop and the reference", maxdh);
        ll_exit_result_free(&r);
    }
    /* min_layer 3 with a huge tau: everyone exits at 3. */
    ll_exit_opts o = {.tau = 2.0, .min_layer = 3, .batch = 40, .maps = maps, .sp = sp};
    ll_exit_result r;
    cr_assert_eq(ll_exit_run(toy, &o, &d, &r), LL_OK, "%s", ll_last_error());
    for (int i = 0; i < n; i++) cr_assert_eq(r.exit_layer[i], 3);
    for (int i = 0; i < n; i++) cr_assert_eq(r.pick[i], ref.sp[(size_t)i * (L + 1) + 3], "SPADE at 3 answers");
    ll_exit_result_free(&r);
    free(hs);
    free(ref.H);
    free(ref.sp);
    free(ref.full);
    ll_spade_free(sp);
    toy_teardown();
}

Test(exit, loop_matches_independent_reference_logits_target) { loop_matches_reference(LL_LSPADE_TARGET_LOGITS); }

Test(exit, loop_matches_independent_reference_hidden_target) { loop_matches_reference(LL_LSPADE_TARGET_HIDDEN); }

Test(exit, bad_arguments_are_errors) {
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, "data/models/toy-llama", NULL), LL_OK, "%s", ll_last_error());
    ll_exit_prompts p;
    cr_assert_eq(ll_exit_prompts_toy_mcq(&p, 4, 1, m->cfg.vocab_size + 1), LL_ERR_ARG);
    cr_assert(strstr(ll_last_error(), "toy-llama"), "%s", ll_last_error());
    cr_assert_eq(ll_exit_prompts_toy_mcq(&p, 4, 1, m->cfg.vocab_size), LL_OK);
    ll_lspade_data d = ll_exit_prompts_data(&p);
    ll_exit_opts o = {.tau = 0.5};
    ll_exit_result r;
    cr_assert_eq(ll_exit_run(m, &o, &d, &r), LL_ERR_ARG, "no maps");
    ll_exit_prompts_free(&p);
    ll_model_free(m);
}
