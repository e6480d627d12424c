/* Tuned lens: zero translators are the logit lens; the hand-written KL gradient against
 * central finite differences (RMSNorm and LayerNorm models); training lowers the KL;
 * safetensors save / load. (The logit lens itself is checked against the numpy reference
 * in test_spade.c.) */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lens/ll_lens.h"
#include "lens/ll_lens_eval.h"
#include "lens/ll_lens_cuda.h"
#include "mcqa/ll_mcqa.h"
#include "ll_test_util.h"
#include "train/ll_train_rng.h"

static const int32_t P0[] = {1, 45, 300, 7, 99, 12, 480, 5, 77};
static const int32_t P1[] = {1, 200, 3, 3, 64, 128};
static const int32_t P2[] = {1, 9, 250, 11, 400, 17, 2};

static ll_model *load_fixture(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "test/fixtures/%s", name);
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, p, NULL), LL_OK, "%s", ll_last_error());
    return m;
}

static void collect(ll_model *m, ll_lens_data *d) {
    const int32_t *toks[3] = {P0, P1, P2};
    int n[3] = {9, 6, 7};
    cr_assert_eq(ll_lens_data_collect(m, toks, n, 3, 0, d), LL_OK, "%s", ll_last_error());
    cr_assert_eq(d->n_rows, 22);
}

Test(lens, zero_tuned_lens_is_logit_lens) {
    ll_model *m = load_fixture("llama_gqa");
    ll_lens_data d;
    collect(m, &d);
    int L = m->cfg.n_layers, V = m->cfg.vocab_size, D = m->cfg.d_model;
    ll_tuned_lens *t;
    cr_assert_eq(ll_tuned_lens_new(&t, L, D), LL_OK);
    float *a = malloc((size_t)d.n_rows * V * sizeof(float)), *b = malloc((size_t)d.n_rows * V * sizeof(float));
    for (int l = 0; l <= L; l++) {
        const float *h = d.h + (size_t)l * d.n_rows * D;
        cr_assert_eq(ll_lens_logits(m, d.n_rows, h, a), LL_OK, "%s", ll_last_error());
        cr_assert_eq(ll_tuned_lens_logits(t, m, l, d.n_rows, h, b), LL_OK, "%s", ll_last_error());
        cr_expect_eq(memcmp(a, b, (size_t)d.n_rows * V * sizeof(float)), 0, "layer %d: zero translator != logit lens", l);
    }
    /* At layer L the logit lens is the model's own output. */
    cr_assert_eq(ll_lens_logits(m, d.n_rows, d.h + (size_t)L * d.n_rows * D, a), LL_OK);
    cr_expect(ll_test_rel_err(a, d.logits, (size_t)d.n_rows * V) < 1e-5);
    /* The zero lens has KL 0 exactly only at L; before training it is the logit lens KL. */
    free(a);
    free(b);
    ll_tuned_lens_free(t);
    ll_lens_data_free(&d);
    ll_model_free(m);
}

static void check_grad(const char *name) {
    ll_model *m = load_fixture(name);
    ll_lens_data d;
    collect(m, &d);
    int L = m->cfg.n_layers, D = m->cfg.d_model;
    ll_tuned_lens *t;
    cr_assert_eq(ll_tuned_lens_new(&t, L, D), LL_OK);
    ll_rng r = {42};
    for (size_t i = 0; i < (size_t)L * D * D; i++) t->A[i] = (float)(0.05 * ll_rng_normal(&r));
    for (size_t i = 0; i < (size_t)L * D; i++) t->b[i] = (float)(0.1 * ll_rng_normal(&r));
    float *dA = malloc((size_t)D * D * sizeof(float)), *db = malloc((size_t)D * sizeof(float));
    float *tA = malloc((size_t)D * D * sizeof(float)), *tb = malloc((size_t)D * sizeof(float));
    int rows[5] = {0, 3, 8, 15, 21};
    for (int l = 0; l < L; l++) {
        double kl;
        cr_assert_eq(ll_tuned_lens_grad(t, m, &d, l, rows, 5, &kl, dA, db), LL_OK, "%s", ll_last_error());
        cr_expect(kl > 0, "KL %.3g", kl);
        double worst = 0, scale = 0;
        for (int k = 0; k < 12; k++) {
            int isA = k < 8;
            size_t idx = isA ? (size_t)ll_rng_int(&r, D * D) : (size_t)ll_rng_int(&r, D);
            float *p = isA ? t->A + (size_t)l * D * D + idx : t->b + (size_t)l * D + idx;
            float keep = *p, eps = 1e-2f;
            double kp, km;
            *p = keep + eps;
            cr_assert_eq(ll_tuned_lens_grad(t, m, &d, l, rows, 5, &kp, tA, tb), LL_OK);
            *p = keep - eps;
            cr_assert_eq(ll_tuned_lens_grad(t, m, &d, l, rows, 5, &km, tA, tb), LL_OK);
            *p = keep;
            double fd = (kp - km) / ((double)(keep + eps) - (double)(keep - eps));
            double an = isA ? dA[idx] : db[idx];
            worst = fmax(worst, fabs(fd - an));
            scale = fmax(scale, fabs(an));
        }
        cr_expect(scale > 1e-6, "%s layer %d: gradient is all zero", name, l);
        cr_expect(worst < 2e-3 * scale + 1e-6, "%s layer %d: |finite difference - gradient| = %.3g (scale %.3g)", name,
                  l, worst, scale);
    }
    free(dA), free(db), free(tA), free(tb);
    ll_tuned_lens_free(t);
    ll_lens_data_free(&d);
    ll_model_free(m);
}

Test(lens, grad_vs_finite_differences_rmsnorm) { check_grad("llama_gqa"); }
Test(lens, grad_vs_finite_differences_layernorm) { check_grad("gpt2"); }

Test(lens, training_lowers_kl_and_roundtrips) {
    ll_model *m = load_fixture("qwen2");
    ll_lens_data d;
    collect(m, &d);
    int L = m->cfg.n_layers, D = m->cfg.d_model, V = m->cfg.vocab_size;
    ll_tuned_lens *t;
    cr_assert_eq(ll_tuned_lens_new(&t, L, D), LL_OK);
    double before[8], after[8];
    ll_tuned_lens_train_opts o = {.steps = 40, .batch = 8, .seed = 7};
    cr_assert_eq(ll_tuned_lens_train(t, m, &d, &o, before, after), LL_OK, "%s", ll_last_error());
    for (int l = 0; l < L; l++)
        cr_expect(after[l] < 0.8 * before[l], "layer %d: KL %.4f -> %.4f", l, before[l], after[l]);
    char p[256];
    cr_assert_eq(ll_test_write_tmp(p, sizeof p, "", 0, ".safetensors"), 0);
    cr_assert_eq(ll_tuned_lens_save(t, p, "{\"model\": \"qwen2\"}"), LL_OK, "%s", ll_last_error());
    ll_tuned_lens *t2;
    cr_assert_eq(ll_tuned_lens_load(&t2, p, m), LL_OK, "%s", ll_last_error());
    cr_expect_eq(memcmp(t->A, t2->A, (size_t)L * D * D * sizeof(float)), 0);
    cr_expect_eq(memcmp(t->b, t2->b, (size_t)L * D * sizeof(float)), 0);
    float *lg = malloc((size_t)d.n_rows * V * sizeof(float));
    cr_assert_eq(ll_tuned_lens_logits(t2, m, 0, d.n_rows, d.h, lg), LL_OK);
    free(lg);
    ll_tuned_lens_free(t2);
    /* Another model's sizes: refused with both named. */
    ll_model *g = load_fixture("llama_gqa");
    cr_expect_eq(ll_tuned_lens_load(&t2, p, g), LL_ERR_SHAPE);
    cr_expect(strstr(ll_last_error(), "layers"), "%s", ll_last_error());
    ll_model_free(g);
    /* Not a lens. */
    cr_expect_neq(ll_tuned_lens_load(&t2, "test/fixtures/qwen2/model.safetensors", NULL), LL_OK);
    cr_expect(strstr(ll_last_error(), "A.0"), "%s", ll_last_error());
    unlink(p);
    ll_tuned_lens_free(t);
    ll_lens_data_free(&d);
    ll_model_free(m);
}

static bool ll_same_ctx(const ll_mcqa_item *a, const ll_mcqa_item *b) {
    return a->n_tokens == b->n_tokens && !memcmp(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof *a->tokens);
}

/* The cloze sets of two seeds are cut from different stories: no context (by tokens) is
 * shared, so L-SPADE can train on one seed and be evaluated on another; a seed gives the
 * count asked for when its stories hold enough cut points, and says how many it has when
 * they do not. (Before: 10 fixed greedy stories for every seed, 181 items at most.) */
Test(lens, stories260k_cloze_seeds_disjoint) {
    char mp[512], tp[512];
    if (!ll_test_asset(mp, sizeof mp, "stories260K/stories260K.bin") ||
        !ll_test_asset(tp, sizeof tp, "stories260K/tok512.bin"))
        cr_skip_test("../shared/assets/stories260K absent: cloze seed check skipped");
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, mp, NULL), LL_OK, "%s", ll_last_error());
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_load_llama2c(&t, tp, m->cfg.vocab_size), LL_OK, "%s", ll_last_error());
    ll_mcqa_set a, b, a2, big;
    int avail = -1;
    ll_mcqa_cloze_opts oa = {.n_items = 600, .seed = 1}, ob = {.n_items = 300, .seed = 2};
    ll_mcqa_cloze_opts obig = {.n_items = 100000, .seed = 1, .n_available = &avail};
    cr_assert_eq(ll_mcqa_cloze(m, t, &oa, &a), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_mcqa_cloze(m, t, &ob, &b), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_mcqa_cloze(m, t, &oa, &a2), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_mcqa_cloze(m, t, &obig, &big), LL_OK, "%s", ll_last_error());
    cr_expect_eq(a.n, 600, "asked 600, got %d", a.n);
    cr_expect_eq(b.n, 300, "asked 300, got %d", b.n);
    /* More than the seed's stories hold: all of them, and the count says so. */
    cr_expect(big.n < 100000 && big.n >= 600 && big.n == avail, "n %d available %d", big.n, avail);
    int shared = 0, dup_a = 0;
    for (int i = 0; i < a.n; i++) {
        for (int j = 0; j < b.n; j++) shared += ll_same_ctx(&a.items[i], &b.items[j]);
        for (int j = 0; j < i; j++) dup_a += ll_same_ctx(&a.items[i], &a.items[j]);
    }
    cr_expect_eq(shared, 0, "seeds 1 and 2 share %d contexts", shared);
    cr_expect_eq(dup_a, 0, "seed 1 repeats %d contexts", dup_a);
    /* The same seed gives the same set (reproducible experiments). */
    bool same = a.n == a2.n;
    for (int i = 0; same && i < a.n; i++) same = ll_same_ctx(&a.items[i], &a2.items[i]) && a.items[i].gold == a2.items[i].gold;
    cr_expect(same, "seed 1 twice gave different sets");
    ll_mcqa_set_free(&a);
    ll_mcqa_set_free(&b);
    ll_mcqa_set_free(&a2);
    ll_mcqa_set_free(&big);
    ll_tokenizer_free(t);
    ll_model_free(m);
}

/* End to end on the real stories260K: a cloze task cut from its own greedy stories, every
 * method at every layer; the full model must score its own greedy words (~100%). */
Test(lens, stories260k_cloze_end_to_end) {
    char mp[512], tp[512];
    if (!ll_test_asset(mp, sizeof mp, "stories260K/stories260K.bin") ||
        !ll_test_asset(tp, sizeof tp, "stories260K/tok512.bin"))
        cr_skip_test("../shared/assets/stories260K absent: end-to-end check skipped");
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, mp, NULL), LL_OK, "%s", ll_last_error());
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_load_llama2c(&t, tp, m->cfg.vocab_size), LL_OK, "%s", ll_last_error());
    ll_mcqa_set set;
    ll_mcqa_cloze_opts co = {.n_items = 48};
    cr_assert_eq(ll_mcqa_cloze(m, t, &co, &set), LL_OK, "%s", ll_last_error());
    cr_assert_eq(set.n, 48);
    ll_mcqa_prompts pr;
    cr_assert_eq(ll_mcqa_build(&set, t, NULL, &pr), LL_OK, "%s", ll_last_error());
    /* A tuned lens trained briefly on the same prompts (it only has to run here). */
    ll_lens_data ld;
    cr_assert_eq(ll_lens_data_collect(m, (const int32_t *const *)pr.tok, pr.n_tok, pr.n, 0, &ld), LL_OK);
    ll_tuned_lens *tl;
    cr_assert_eq(ll_tuned_lens_new(&tl, m->cfg.n_layers, m->cfg.d_model), LL_OK);
    ll_tuned_lens_train_opts to = {.steps = 20};
    cr_assert_eq(ll_tuned_lens_train(tl, m, &ld, &to, NULL, NULL), LL_OK, "%s", ll_last_error());
    ll_lens_eval_opts eo = {.tuned = tl, .batch = 16};
    cr_assert_eq(ll_lens_eval_parse_methods(&eo, "logit,tuned,spade"), LL_OK);
    ll_lens_eval_result r;
    cr_assert_eq(ll_lens_eval_run(m, &pr, &eo, &r), LL_OK, "%s", ll_last_error());
    int L = m->cfg.n_layers;
    cr_expect_eq(r.n_scored, 48);
    cr_expect(r.full_acc >= 0.95, "the full model scores its own greedy words: %.3f", r.full_acc);
    char line[256];
    for (int l = 0; l <= L; l++) {
        int k = snprintf(line, sizeof line, "stories260K cloze layer %d:", l);
        for (int j = 0; j < r.n_methods; j++)
            k += snprintf(line + k, sizeof line - (size_t)k, " %s %.3f", r.names[j], r.acc[j * (L + 1) + l]);
        cr_log_info("%s", line);
        fprintf(stderr, "%s\n", line);
    }
    fprintf(stderr, "stories260K cloze full model %.3f\n", r.full_acc);
    /* At layer L the logit lens, the tuned lens (identity there) and SPADE are the model. */
    for (int j = 0; j < r.n_methods; j++)
        cr_expect(fabs(r.acc[j * (L + 1) + L] - r.full_acc) < 1e-9, "%s at layer L", r.names[j]);
    /* With 4 options chance is 0.25: the logit lens at layer 0 must not be perfect, or the
     * task is trivial. */
    cr_expect(r.acc[0] < 0.9, "logit lens at layer 0: %.3f", r.acc[0]);
    ll_lens_eval_result_free(&r);
    ll_tuned_lens_free(tl);
    ll_lens_data_free(&ld);
    ll_mcqa_prompts_free(&pr);
    ll_mcqa_set_free(&set);
    ll_tokenizer_free(t);
    ll_model_free(m);
}

/* ll_tuned_lens_kl (the validation KL) against the KL of the lens logits computed the other
 * way: ll_tuned_lens_logits through the model's forward pass, softmax and KL on the host. */
Test(lens, kl_matches_forward_logits) {
    ll_model *m = load_fixture("gpt2");
    ll_lens_data d;
    collect(m, &d);
    int L = m->cfg.n_layers, D = m->cfg.d_model, V = m->cfg.vocab_size, N = d.n_rows;
    ll_tuned_lens *t;
    cr_assert_eq(ll_tuned_lens_new(&t, L, D), LL_OK);
    ll_rng r = {5};
    for (size_t i = 0; i < (size_t)L * D * D; i++) t->A[i] = (float)(0.05 * ll_rng_normal(&r));
    for (size_t i = 0; i < (size_t)L * D; i++) t->b[i] = (float)(0.1 * ll_rng_normal(&r));
    double kl[16];
    cr_assert(L <= 16);
    cr_assert_eq(ll_tuned_lens_kl(t, m, &d, kl), LL_OK, "%s", ll_last_error());
    float *lg = malloc((size_t)N * V * sizeof(float));
    for (int l = 0; l < L; l++) {
        cr_assert_eq(ll_tuned_lens_logits(t, m, l, N, d.h + (size_t)l * N * D, lg), LL_OK, "%s", ll_last_error());
        double tot = 0;
        for (int k = 0; k < N; k++) {
            const float *q = lg + (size_t)k * V, *p = d.logits + (size_t)k * V;
            double mq = -INFINITY, mp = -INFINITY, sq = 0, sp = 0;
            for (int o = 0; o < V; o++) mq = fmax(mq, q[o]), mp = fmax(mp, p[o]);
            for (int o = 0; o < V; o++) sq += exp(q[o] - mq), sp += exp(p[o] - mp);
            double lq = mq + log(sq), lp = mp + log(sp);
            for (int o = 0; o < V; o++) tot += exp(p[o] - lp) * ((p[o] - lp) - (q[o] - lq));
        }
        tot /= N;
        cr_expect(kl[l] > 0.01, "layer %d: KL %.4g of a random lens", l, kl[l]);
        cr_expect(fabs(kl[l] - tot) <= 1e-4 * tot, "layer %d: ll_tuned_lens_kl %.8g, from the logits %.8g", l, kl[l],
                  tot);
    }
    /* The same numbers as the training report (kl_after) for the trained lens. */
    double before[16], after[16];
    ll_tuned_lens_train_opts o = {.steps = 5, .batch = 8, .seed = 3};
    cr_assert_eq(ll_tuned_lens_train(t, m, &d, &o, before, after), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_tuned_lens_kl(t, m, &d, kl), LL_OK);
    for (int l = 0; l < L; l++) cr_expect_eq(kl[l], after[l], "layer %d", l);
    /* On the CPU the dispatcher is the CPU path: bit for bit the same lens. */
    ll_tuned_lens *t2;
    cr_assert_eq(ll_tuned_lens_new(&t2, L, D), LL_OK);
    ll_tuned_lens_free(t);
    cr_assert_eq(ll_tuned_lens_new(&t, L, D), LL_OK);
    cr_assert_eq(ll_tuned_lens_train(t, m, &d, &o, NULL, NULL), LL_OK);
    cr_assert_eq(ll_tuned_lens_train_auto(t2, m, &d, &o, NULL, NULL), LL_OK, "%s", ll_last_error());
    cr_expect_eq(memcmp(t->A, t2->A, (size_t)L * D * D * sizeof(float)), 0);
    free(lg);
    ll_tuned_lens_free(t);
    ll_tuned_lens_free(t2);
    ll_lens_data_free(&d);
    ll_model_free(m);
}

/* Without a usable device (or without CUDA in the build) the GPU path refuses with the
 * reason and leaves the lens alone; with a device, test/gpu/test_gpu_lens.c covers it. */
Test(lens, cuda_path_without_device_says_why) {
    if (ll_tuned_lens_cuda_built() && ll_backend_cuda())
        cr_skip_test("a CUDA device is present: the GPU path is tested in gpu_lens/*");
    ll_model *m = load_fixture("llama_gqa");
    ll_lens_data d;
    collect(m, &d);
    ll_tuned_lens *t;
    cr_assert_eq(ll_tuned_lens_new(&t, m->cfg.n_layers, m->cfg.d_model), LL_OK);
    ll_status st = ll_tuned_lens_train_cuda(t, m, &d, NULL, NULL, NULL);
    cr_expect(st == LL_ERR_DEVICE || st == LL_ERR_UNSUPPORTED, "status %s", ll_status_name(st));
    cr_expect(strstr(ll_last_error(), "CUDA"), "%s", ll_last_error());
    cr_log_info("GPU tuned lens here: %s", ll_last_error());
    float dA[1], db[1];
    double kl[8];
    cr_expect_neq(ll_tuned_lens_grad_cuda(t, m, &d, 0, NULL, 4, NULL, dA, db), LL_OK);
    cr_expect_neq(ll_tuned_lens_kl_cuda(t, m, &d, kl), LL_OK);
    for (size_t i = 0; i < (size_t)m->cfg.n_layers * m->cfg.d_model * m->cfg.d_model; i++)
        cr_assert_eq(t->A[i], 0.0f);
    ll_tuned_lens_free(t);
    ll_lens_data_free(&d);
    ll_model_free(m);
}

/* ---- the command line ---- */
#include <fcntl.h>
#include <hdf5.h>
#include <spawn.h>
#include <sys/wait.h>

#include "store/ll_h5.h"



Test(lens, cli_table_csv_h5_tsv) {
    if (access("build/layerlab", X_OK)) cr_skip_test("build/layerlab not built");
    char dir[] = "/tmp/layerlab-lenscli-XXXXXX";
    cr_assert(mkdtemp(dir));
    char data[128], csv[128], h5[128], out[128], err[128];
    snprintf(data, sizeof data, "%s/d.jsonl", dir);
    snprintf(csv, sizeof csv, "%s/a.csv", dir);
    snprintf(h5, sizeof h5, "%s/a.h5", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    FILE *f = fopen(data, "w");
    cr_assert(f);
    for (int i = 0; i < 6; i++)
        fprintf(f, "{\"tokens\": [1, %d, %d, %d], \"candidates\": [5, 7, 9], \"gold\": %d}\n", 10 + i, 100 + 7 * i,
                200 + i, i % 3);
    fclose(f);
    char *a1[] = {"build/layerlab", "lens", "test/fixtures/llama_gqa", "--data", data, "--method", "logit,spade",
                  "--positions", "reindex", "--out-csv", csv, "--out-h5", h5, "--device", "cpu", "--threads", "1", NULL};
    cr_assert_eq(ll_test_run_cli(a1, out, err), 0, "lens failed: %s", ll_test_slurp(err));
    char *txt = ll_test_slurp(out), *c = ll_test_slurp(csv);
    cr_assert(txt && c);
    cr_expect(strstr(txt, "positions=reindex decode=options rows=cached"), "%s", txt);
    cr_expect(strstr(txt, "full model\t"), "%s", txt);
    int lines = 0;
    for (char *p = c; *p; p++) lines += *p == '\n';
    cr_expect_eq(lines, 1 + 2 * 4 + 1, "CSV: header, 2 methods x 4 layers, full: %s", c);
    cr_expect(strstr(c, "spade,0,"), "%s", c);
    free(txt);
    free(c);
    hid_t h = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(h >= 0, "HDF5 output missing");
    bool complete = false;
    char *pos = NULL;
    cr_expect_eq(ll_h5_get_bool(h, "complete", &complete), LL_OK);
    cr_expect(complete);
    cr_expect_eq(ll_h5_get_str(h, "positions", &pos), LL_OK);
    cr_expect_str_eq(pos ? pos : "", "reindex");
    free(pos);
    H5Fclose(h);
    /* One prompt: the TSV, every layer x method, plus the full model. */
    char *a2[] = {"build/layerlab", "lens", "test/fixtures/llama_gqa", "--tokens", "1,45,300,7", "--method", "logit,spade",
                  "--device", "cpu", "--threads", "1", NULL};
    cr_assert_eq(ll_test_run_cli(a2, out, err), 0, "lens --tokens failed: %s", ll_test_slurp(err));
    txt = ll_test_slurp(out);
    cr_assert(txt);
    cr_expect(!strncmp(txt, "layer\tmethod\ttoken_id\ttoken\tprob\n", 33), "%s", txt);
    lines = 0;
    for (char *p = txt; *p; p++) lines += *p == '\n';
    cr_expect_eq(lines, 1 + 4 * 2 + 1, "%s", txt);
    free(txt);
    /* Bad input: an unknown method and a missing tuned lens are errors naming them. */
    char *a3[] = {"build/layerlab", "lens", "test/fixtures/llama_gqa", "--data", data, "--method", "logit,nope",
                  "--device", "cpu", NULL};
    cr_expect_eq(ll_test_run_cli(a3, out, err), 1);
    txt = ll_test_slurp(err);
    cr_expect(txt && strstr(txt, "nope"), "%s", txt);
    free(txt);
    char *a4[] = {"build/layerlab", "lens", "test/fixtures/llama_gqa", "--data", data, "--method", "tuned",
                  "--device", "cpu", NULL};
    cr_expect_eq(ll_test_run_cli(a4, out, err), 1);
    txt = ll_test_slurp(err);
    cr_expect(txt && strstr(txt, "--tuned"), "%s", txt);
    free(txt);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {
    }
}

/* tuned-lens train end to end on the CPU: held-out prompts, the validation KL in the table
 * and in the file's metadata (the same numbers), the lens loads; bad --val-frac refused. */
Test(lens, cli_tuned_lens_train_val_split) {
    char dir[] = "/tmp/ll_tl_cli_XXXXXX";
    cr_assert(mkdtemp(dir));
    char data[128], lens[128], out[128], err[128];
    snprintf(data, sizeof data, "%s/d.jsonl", dir);
    snprintf(lens, sizeof lens, "%s/tl.safetensors", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    FILE *f = fopen(data, "w");
    cr_assert(f);
    for (int i = 0; i < 10; i++)
        fprintf(f, "{\"tokens\": [1, %d, %d, %d, %d], \"candidates\": [5, 7], \"gold\": 0}\n", 10 + i, 100 + 7 * i,
                200 + i, 300 + 3 * i);
    fclose(f);
    char *a1[] = {"build/layerlab", "tuned-lens", "train", "test/fixtures/llama_gqa", "--data", data, "--out", lens,
                  "--steps", "15", "--batch", "8", "--val-frac", "0.3", "--device", "cpu", "--threads", "1", NULL};
    cr_assert_eq(ll_test_run_cli(a1, out, err), 0, "tuned-lens failed: %s", ll_test_slurp(err));
    char *txt = ll_test_slurp(out), *e = ll_test_slurp(err);
    cr_assert(txt && e);
    cr_expect(strstr(e, "35 training rows from 7 prompts, 15 validation rows from 3 prompts"), "%s", e);
    cr_expect(strstr(e, "layer 0 (1/"), "progress line per layer: %s", e);
    cr_expect(strstr(txt, "layer\tkl_logit_lens\tkl_tuned_lens\tval_kl_logit_lens\tval_kl_tuned_lens\n"), "%s", txt);
    ll_model *m = load_fixture("llama_gqa");
    int L = m->cfg.n_layers;
    ll_tuned_lens *t;
    cr_assert_eq(ll_tuned_lens_load(&t, lens, m), LL_OK, "%s", ll_last_error());
    ll_tuned_lens_free(t);
    /* The metadata: read the safetensors header. */
    FILE *h = fopen(lens, "rb");
    cr_assert(h);
    uint64_t hl = 0;
    cr_assert_eq(fread(&hl, 8, 1, h), 1);
    char *js = calloc(1, hl + 1);
    cr_assert_eq(fread(js, 1, hl, h), hl);
    fclose(h);
    cJSON *root = cJSON_Parse(js), *md = cJSON_GetObjectItem(root, "__metadata__");
    cr_assert(md, "no metadata: %s", js);
    const char *vk = cJSON_GetStringValue(cJSON_GetObjectItem(md, "val_kl"));
    const char *vk0 = cJSON_GetStringValue(cJSON_GetObjectItem(md, "val_kl_logit_lens"));
    cr_assert(vk && vk0, "%s", js);
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(md, "val_rows")), "15");
    cr_expect_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(md, "device")), "cpu");
    /* Table rows against the metadata lists, layer by layer; training lowers the held-out KL. */
    const char *row = strchr(txt, '\n') + 1, *p = vk, *p0 = vk0;
    for (int l = 0; l < L; l++) {
        int ll;
        double a, b, c, d;
        cr_assert_eq(sscanf(row, "%d %lf %lf %lf %lf", &ll, &a, &b, &c, &d), 5, "row %d: %s", l, row);
        double mv = strtod(p, (char **)&p), mv0 = strtod(p0, (char **)&p0);
        cr_expect(fabs(mv - d) < 1e-5 + 1e-4 * d && fabs(mv0 - c) < 1e-5 + 1e-4 * c,
                  "layer %d: table %.5f %.5f, metadata %.6g %.6g", l, c, d, mv0, mv);
        cr_expect(d < c, "layer %d: held-out KL %.4f not below the logit lens's %.4f", l, d, c);
        if (*p == ',') p++;
        if (*p0 == ',') p0++;
        row = strchr(row, '\n') + 1;
    }
    cr_expect_eq(*p, 0, "metadata lists %d layers: %s", L, vk);
    cJSON_Delete(root);
    free(js);
    free(txt);
    free(e);
    /* Bad shares are refused, naming the option. */
    char *a2[] = {"build/layerlab", "tuned-lens", "train", "test/fixtures/llama_gqa", "--data", data, "--out", lens,
                  "--val-frac", "1", "--device", "cpu", NULL};
    cr_expect_neq(ll_test_run_cli(a2, out, err), 0);
    e = ll_test_slurp(err);
    cr_expect(e && strstr(e, "--val-frac"), "%s", e);
    free(e);
    ll_model_free(m);
    unlink(data), unlink(lens), unlink(out), unlink(err);
    rmdir(dir);
}
