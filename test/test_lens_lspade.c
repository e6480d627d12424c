/* `layerlab lens --method lspade`: the lens command's L-SPADE read-out against the one
 * `layerlab exit` reports for the same maps and questions. The two commands build their
 * prompts on separate paths (lens: the toy questions as text through the tokenizer and
 * host/mcqa; exit: the generator's token ids through host/exit) and plug the maps in with
 * separate code, so equal per-layer accuracies and equal agreement with SPADE (per prompt)
 * check the wiring, the switches (target, norm_input) and the prompts together. Plus the
 * refusals: no maps, maps of another model (shape, weights), K against the options. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ll_test_util.h"



#define L_MAX 16
#define N_Q 64

static char dir[64], out_f[128], err_f[128];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/ll_lens_lspade_XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(out_f, sizeof out_f, "%s/out", dir);
    snprintf(err_f, sizeof err_f, "%s/err", dir);
}

static void teardown(void) {
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {
    }
}

/* A model and its prompt source: the toy model's questions or a model's own cloze items. */
typedef struct {
    const char *model, *tok; /* tok: --tokenizer or NULL */
    const char *src;         /* "--toy-mcq" or "--cloze" */
    const char *exit_seed;   /* exit's --data-seed for the same items as lens's */
    int L;
} src_t;

static const src_t TOY = {"data/models/toy-llama", NULL, "--toy-mcq", "1806", 4};

/* argv builder: fixed words, then optional --tokenizer, then NULL. */
static void push(char **v, int *n, const char *w) { v[(*n)++] = (char *)w; }

static void fit(const src_t *S, const char *maps, const char *target, bool norm_input) {
    char *a[32];
    int n = 0;
    const char *w[] = {"build/layerlab", "lspade", "train", S->model, S->src, "128", "--target", target, "--out", maps,
                       "--device", "cpu", "--threads", "1"};
    for (size_t i = 0; i < sizeof w / sizeof *w; i++) push(a, &n, w[i]);
    if (norm_input) push(a, &n, "--norm-input");
    if (S->tok) push(a, &n, "--tokenizer"), push(a, &n, S->tok);
    a[n] = NULL;
    cr_assert_eq(ll_test_run_cli(a, out_f, err_f), 0, "lspade train failed: %s", ll_test_slurp(err_f));
}

/* lens CSV rows "method,layer,accuracy,...": acc[layer] of one method. */
static void lens_csv(const char *path, const char *method, int L, double *acc) {
    for (int l = 0; l <= L; l++) acc[l] = -1;
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s missing", path);
    char line[512], m[32];
    int l;
    double a;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%31[^,],%d,%lf", m, &l, &a) == 3 && !strcmp(m, method) && l >= 0 && l <= L) acc[l] = a;
    fclose(f);
}

/* exit's PREFIX.layers.csv: layer,logit,tuned,spade,lspade,logit_iso,tuned_iso,full,lspade_spade_agree,... */
static void exit_csv(const char *path, int L, double *spade, double *lspade, double *agree) {
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s missing", path);
    char line[2048];
    cr_assert(fgets(line, sizeof line, f));
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        double v[8];
        char *p = line;
        int l = (int)strtol(p, &p, 10);
        for (int k = 0; k < 8; k++) v[k] = strtod(p + 1, &p);
        cr_assert(l >= 0 && l <= L, "%s", line);
        spade[l] = v[2];
        lspade[l] = v[3];
        agree[l] = v[7];
        rows++;
    }
    fclose(f);
    cr_assert_eq(rows, L + 1);
}

static void same(double a, double b, const char *what, int l) {
    if (isnan(b)) cr_expect(isnan(a), "%s layer %d: lens %g, exit nan", what, l, a);
    else cr_expect(fabs(a - b) < 1e-6, "%s layer %d: lens %.6f, exit %.6f", what, l, a, b);
}

static void lens_matches_exit(const src_t *S, const char *target, bool norm_input) {
    char maps[128], csv[128], h5[128], prefix[128], layers[160], nq[16];
    int L = S->L;
    snprintf(maps, sizeof maps, "%s/maps.safetensors", dir);
    snprintf(csv, sizeof csv, "%s/lens.csv", dir);
    snprintf(h5, sizeof h5, "%s/lens.h5", dir);
    snprintf(prefix, sizeof prefix, "%s/exit", dir);
    snprintf(layers, sizeof layers, "%s.layers.csv", prefix);
    snprintf(nq, sizeof nq, "%d", N_Q);
    fit(S, maps, target, norm_input);
    char *a1[32];
    int n = 0;
    const char *w1[] = {"build/layerlab", "lens", S->model, S->src, nq, "--method", "spade,lspade", "--lspade", maps,
                        "--out-csv", csv, "--out-h5", h5, "--device", "cpu", "--threads", "1"};
    for (size_t i = 0; i < sizeof w1 / sizeof *w1; i++) push(a1, &n, w1[i]);
    if (S->tok) push(a1, &n, "--tokenizer"), push(a1, &n, S->tok);
    a1[n] = NULL;
    cr_assert_eq(ll_test_run_cli(a1, out_f, err_f), 0, "lens failed: %s", ll_test_slurp(err_f));
    char *txt = ll_test_slurp(out_f);
    char want[64];
    snprintf(want, sizeof want, "target=%s norm_input=%s", target, norm_input ? "true" : "false");
    cr_expect(txt && strstr(txt, want), "the table records the maps' switches: %s", txt);
    free(txt);
    char *a2[40];
    n = 0;
    const char *w2[] = {"build/layerlab", "exit", S->model, "--lspade", maps, S->src, nq, "--data-seed", S->exit_seed,
                        "--tau", "0.5", "--no-run", "--no-plot", "--quiet", "--out", prefix, "--device", "cpu",
                        "--threads", "1"};
    for (size_t i = 0; i < sizeof w2 / sizeof *w2; i++) push(a2, &n, w2[i]);
    if (S->tok) push(a2, &n, "--tokenizer"), push(a2, &n, S->tok);
    a2[n] = NULL;
    cr_assert_eq(ll_test_run_cli(a2, out_f, err_f), 0, "exit failed: %s", ll_test_slurp(err_f));
    double ls[L_MAX + 1], sp[L_MAX + 1], esp[L_MAX + 1], els[L_MAX + 1], eag[L_MAX + 1];
    lens_csv(csv, "lspade", L, ls);
    lens_csv(csv, "spade", L, sp);
    exit_csv(layers, L, esp, els, eag);
    for (int l = 0; l <= L; l++) {
        same(sp[l], esp[l], "spade (same prompts)", l);
        same(ls[l], els[l], "lspade", l);
    }
    cr_expect(isnan(ls[0]) && isnan(ls[L]), "no maps at 0 and L: nan, not 0");
    /* Per prompt: the share where L-SPADE picks SPADE's option, from the lens's picks. */
    hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0);
    int *pick = malloc(sizeof(int) * 2 * (L + 1) * N_Q);
    hid_t ds = H5Dopen2(f, "pick", H5P_DEFAULT);
    cr_assert(ds >= 0);
    cr_assert(H5Dread(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, pick) >= 0);
    H5Dclose(ds);
    H5Fclose(f);
    for (int l = 1; l < L; l++) {
        int agree = 0;
        for (int i = 0; i < N_Q; i++) {
            int s = pick[(0 * (L + 1) + l) * N_Q + i], m = pick[(1 * (L + 1) + l) * N_Q + i];
            cr_assert(m >= 0 && m < 4, "lspade pick %d", m);
            agree += s == m;
        }
        same((double)agree / N_Q, eag[l], "lspade = spade share", l);
    }
    free(pick);
}

Test(lens_lspade, logits_target_matches_exit, .init = setup, .fini = teardown) {
    if (access("build/layerlab", X_OK)) cr_skip_test("build/layerlab not built");
    lens_matches_exit(&TOY, "logits", false);
}

Test(lens_lspade, hidden_target_norm_input_matches_exit, .init = setup, .fini = teardown) {
    if (access("build/layerlab", X_OK)) cr_skip_test("build/layerlab not built");
    lens_matches_exit(&TOY, "hidden", true);
}

/* stories260K on its own cloze items: per-prompt options (the hidden target decodes each
 * prompt's own candidates). Both commands draw the items with seed 0. */
Test(lens_lspade, stories260k_cloze_hidden_matches_exit, .init = setup, .fini = teardown) {
    if (access("build/layerlab", X_OK)) cr_skip_test("build/layerlab not built");
    char model[512], tok[512];
    if (!ll_test_asset(model, sizeof model, "stories260K/stories260K.bin") ||
        !ll_test_asset(tok, sizeof tok, "stories260K/tok512.bin"))
        cr_skip_test("../shared/assets/stories260K absent");
    src_t S = {model, tok, "--cloze", "0", 5};
    lens_matches_exit(&S, "hidden", false);
}

static void expect_refusal(char **argv, const char *needle) {
    int rc = ll_test_run_cli(argv, out_f, err_f);
    char *e = ll_test_slurp(err_f);
    cr_expect_neq(rc, 0, "%s: expected a refusal", needle);
    cr_expect(e && strstr(e, needle), "stderr should name '%s': %s", needle, e);
    free(e);
}

Test(lens_lspade, refusals, .init = setup, .fini = teardown) {
    if (access("build/layerlab", X_OK)) cr_skip_test("build/layerlab not built");
    char maps[128], hmaps[128], data[128], other[128], cmd[512];
    snprintf(maps, sizeof maps, "%s/maps.safetensors", dir);
    snprintf(hmaps, sizeof hmaps, "%s/hmaps.safetensors", dir);
    snprintf(data, sizeof data, "%s/d3.jsonl", dir);
    snprintf(other, sizeof other, "%s/toy-copy", dir);
    fit(&TOY, maps, "logits", false);
    fit(&TOY, hmaps, "hidden", false);
    /* No maps file; a maps file without the method. */
    char *a1[] = {"build/layerlab", "lens", "data/models/toy-llama", "--toy-mcq", "8", "--method", "lspade",
                  "--device", "cpu", NULL};
    expect_refusal(a1, "--lspade MAPS");
    char *a2[] = {"build/layerlab", "lens", "data/models/toy-llama", "--toy-mcq", "8", "--method", "logit",
                  "--lspade", maps, "--device", "cpu", NULL};
    expect_refusal(a2, "--method has no lspade");
    /* Another model's shape: the fixture (different width and depth). */
    char *a3[] = {"build/layerlab", "lens", "test/fixtures/llama_gqa", "--tokens", "1,5,9", "--options", "a,b",
                  "--method", "lspade", "--lspade", maps, "--device", "cpu", NULL};
    expect_refusal(a3, "d_model");
    /* The same shape with other weights: a copy of the toy model with one weight byte changed. */
    snprintf(cmd, sizeof cmd,
             "cp -r data/models/toy-llama %s && printf '\\x55' | dd of=%s/model.safetensors bs=1 seek=2000000 "
             "conv=notrunc status=none",
             other, other);
    cr_assert_eq(system(cmd), 0);
    char *a4[] = {"build/layerlab", "lens", other, "--toy-mcq", "8", "--method", "lspade", "--lspade", maps,
                  "--device", "cpu", NULL};
    expect_refusal(a4, "weights llh64:");
    /* Three options against logits maps fitted for four; the hidden target decodes any number. */
    FILE *f = fopen(data, "w");
    cr_assert(f);
    for (int i = 0; i < 6; i++)
        fprintf(f, "{\"tokens\": [1, %d, %d, %d], \"candidates\": [5, 7, 9], \"gold\": %d}\n", 10 + i, 100 + 7 * i,
                200 + i, i % 3);
    fclose(f);
    char *a5[] = {"build/layerlab", "lens", "data/models/toy-llama", "--data", data, "--method", "lspade",
                  "--lspade", maps, "--device", "cpu", "--threads", "1", NULL};
    expect_refusal(a5, "K = 4 options");
    char *a6[] = {"build/layerlab", "lens", "data/models/toy-llama", "--data", data, "--method", "lspade",
                  "--lspade", hmaps, "--device", "cpu", "--threads", "1", NULL};
    cr_expect_eq(ll_test_run_cli(a6, out_f, err_f), 0, "hidden maps on 3 options: %s", ll_test_slurp(err_f));
    /* One prompt without --options: nothing for a map to pick among. */
    char *a7[] = {"build/layerlab", "lens", "data/models/toy-llama", "--tokens", "1,5,9", "--method", "lspade",
                  "--lspade", hmaps, "--device", "cpu", NULL};
    expect_refusal(a7, "--options");
}

/* `lens --data-seed` picks other items (the default 0 being the items without it), and
 * `tuned-lens train --toy-mcq N [--data-seed S]` takes the toy questions like the other
 * commands do. (Before: lens refused --data-seed, tuned-lens refused --toy-mcq.) */
Test(lens_lspade, data_seed_and_toy_mcq_options, .init = setup, .fini = teardown) {
    if (access("build/layerlab", X_OK)) cr_skip_test("build/layerlab not built");
    char d0[128], d0b[128], d5[128], tl[128];
    snprintf(d0, sizeof d0, "%s/d0.jsonl", dir);
    snprintf(d0b, sizeof d0b, "%s/d0b.jsonl", dir);
    snprintf(d5, sizeof d5, "%s/d5.jsonl", dir);
    snprintf(tl, sizeof tl, "%s/tl.safetensors", dir);
    char *a0[] = {"build/layerlab", "lens", "data/models/toy-llama", "--toy-mcq", "16", "--method", "logit",
                  "--dump-prompts", d0, "--device", "cpu", "--threads", "1", NULL};
    char *a0b[] = {"build/layerlab", "lens", "data/models/toy-llama", "--toy-mcq", "16", "--data-seed", "0",
                   "--method", "logit", "--dump-prompts", d0b, "--device", "cpu", "--threads", "1", NULL};
    char *a5[] = {"build/layerlab", "lens", "data/models/toy-llama", "--toy-mcq", "16", "--data-seed", "5",
                  "--method", "logit", "--dump-prompts", d5, "--device", "cpu", "--threads", "1", NULL};
    cr_assert_eq(ll_test_run_cli(a0, out_f, err_f), 0, "%s", ll_test_slurp(err_f));
    cr_assert_eq(ll_test_run_cli(a0b, out_f, err_f), 0, "lens --data-seed 0: %s", ll_test_slurp(err_f));
    cr_assert_eq(ll_test_run_cli(a5, out_f, err_f), 0, "lens --data-seed 5: %s", ll_test_slurp(err_f));
    char *s0 = ll_test_slurp(d0), *s0b = ll_test_slurp(d0b), *s5 = ll_test_slurp(d5);
    cr_assert(s0 && s0b && s5);
    cr_expect_str_eq(s0, s0b, "--data-seed 0 is the default");
    cr_expect_str_neq(s0, s5, "--data-seed 5 gave the same items as seed 0");
    free(s0);
    free(s0b);
    free(s5);
    char *t1[] = {"build/layerlab", "tuned-lens", "train", "data/models/toy-llama", "--toy-mcq", "24", "--data-seed",
                  "2", "--steps", "3", "--out", tl, "--device", "cpu", "--threads", "1", NULL};
    int rc = ll_test_run_cli(t1, out_f, err_f);
    char *e = ll_test_slurp(err_f);
    cr_expect_eq(rc, 0, "tuned-lens --toy-mcq: %s", e);
    cr_expect(e && strstr(e, "toy-mcq prompts"), "%s", e);
    free(e);
    cr_expect_eq(access(tl, R_OK), 0, "no lens file written");
    /* One source only. */
    char *t2[] = {"build/layerlab", "tuned-lens", "train", "data/models/toy-llama", "--toy-mcq", "24", "--cloze",
                  "8", "--out", tl, "--device", "cpu", NULL};
    expect_refusal(t2, "exactly one of");
}
