/* L-SPADE maps (host/lspade): the whole fit on data/models/toy-llama against numpy ridge
 * on SPADE's own outputs rebuilt independently (states of a whole forward, SPADE per
 * layer), lambda selection against numpy's held-out MSE, the file round trip, applying a
 * map against hand arithmetic and the hidden target's decoding against the model's own
 * final norm + LM head (ll_lens_logits). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exit/ll_exit_prompts.h"
#include "lens/ll_lens.h"
#include "lspade/ll_lspade.h"

static int have_numpy(void) { return system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0; }

static ll_model *load_toy(void) {
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, "data/models/toy-llama", NULL), LL_OK, "%s", ll_last_error());
    return m;
}

static void write_f64(const char *path, const double *x, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(x, 8, n, f), n);
    fclose(f);
}

Test(lspade, fit_matches_numpy_ridge_on_spade_outputs) {
    if (!have_numpy()) cr_skip_test("/usr/bin/python3 with numpy is missing (make test installs python3-numpy)");
    ll_model *m = load_toy();
    int L = m->cfg.n_layers, d = m->cfg.d_model, V = m->cfg.vocab_size;
    ll_exit_prompts p;
    cr_assert_eq(ll_exit_prompts_toy_mcq(&p, 150, 21, V), LL_OK, "%s", ll_last_error());
    int n = p.n, K = p.K;
    double grid[3] = {1e-4, 1e-2, 1.0};
    ll_lspade_fit_opts fo = {.target = LL_LSPADE_TARGET_LOGITS, .lambda_rel = grid, .n_lambda = 3, .val_frac = 0.3,
                             .seed = 9};
    ll_lspade_data data = ll_exit_prompts_data(&p);
    ll_lspade_maps *maps;
    cr_assert_eq(ll_lspade_fit(m, &data, &fo, "{\"data\":\"toy\"}", &maps), LL_OK, "%s", ll_last_error());
    cr_assert_eq(maps->K, 4);
    cr_assert(maps->W[0] == NULL && maps->W[L] == NULL && maps->W[1] && maps->W[L - 1], "maps for 1..L-1 only");
    /* The reference rebuilds X and Y with one whole forward and SPADE at every layer. */
    ll_spade_states st;
    cr_assert_eq(ll_spade_states_collect(m, (const int32_t *const *)p.tok, p.n_tok, n, false, &st), LL_OK);
    ll_spade *sp;
    cr_assert_eq(ll_spade_new(&sp, m, NULL, 32), LL_OK);
    float *lg = malloc((size_t)n * V * sizeof(float));
    double *X = malloc((size_t)n * d * 8), *Y = malloc((size_t)n * K * 8);
    int order[150], nt = 0;
    for (int i = 0; i < n; i++)
        if (!ll_ridge_is_val(i, 0.3, 9)) order[nt++] = i;
    for (int i = 0, k = nt; i < n; i++)
        if (ll_ridge_is_val(i, 0.3, 9)) order[k++] = i;
    cr_assert(nt > 80 && nt < 130, "split %d / %d", nt, n);
    for (int l = 1; l < L; l++) {
        cr_assert_eq(ll_spade_run(sp, l, &st, 0, n, lg, NULL), LL_OK, "%s", ll_last_error());
        double scale = 0;
        for (int r = 0; r < n; r++) {
            int i = order[r];
            const float *h = ll_spade_state(&st, l, i, 1);
            for (int j = 0; j < d; j++) X[(size_t)r * d + j] = h[j];
            for (int k = 0; k < K; k++) Y[(size_t)r * K + k] = lg[(size_t)i * V + p.cand[i][k]];
            if (r < nt)
                for (int j = 0; j < d; j++) scale += (double)h[j] * h[j];
        }
        scale /= d;
        /* numpy: the held-out MSE of each grid lambda (fit on the training rows), and the
         * final map refit on all rows with the lambda the fit reported. */
        char xf[64], yf[64], of[64], cmd[1024], lams[256];
        snprintf(xf, sizeof xf, "/tmp/ll_lspade_X_%d", getpid());
        snprintf(yf, sizeof yf, "/tmp/ll_lspade_Y_%d", getpid());
        snprintf(of, sizeof of, "/tmp/ll_lspade_O_%d", getpid());
        write_f64(xf, X, (size_t)n * d);
        write_f64(yf, Y, (size_t)n * K);
        snprintf(lams, sizeof lams, "%.17g,%.17g,%.17g", grid[0] * scale, grid[1] * scale, grid[2] * scale);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 test/ridge_ref.py %s %s %d %d %d %d %s %s", xf, yf, n, d, K, nt, lams,
                 of);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
        size_t per = (size_t)(d + 1) * K + 1;
        double *ref = malloc(per * 3 * 8);
        FILE *f = fopen(of, "rb");
        cr_assert(f && fread(ref, 8, per * 3, f) == per * 3);
        fclose(f);
        int want = 0;
        for (int k = 1; k < 3; k++)
            if (ref[per * k + per - 1] < ref[per * want + per - 1]) want = k;
        cr_assert_float_eq(maps->lambda_rel[l], grid[want], 0, "layer %d: chose %g, numpy's held-out best %g", l,
                           maps->lambda_rel[l], grid[want]);
        cr_assert(fabs(maps->val_mse[l] - ref[per * want + per - 1]) <= 1e-6 * ref[per * want + per - 1],
                  "layer %d: held-out MSE %.9g, numpy %.9g", l, maps->val_mse[l], ref[per * want + per - 1]);
        snprintf(lams, sizeof lams, "%.17g", maps->lambda[l]);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 test/ridge_ref.py %s %s %d %d %d %d %s %s", xf, yf, n, d, K, n, lams,
                 of);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
        f = fopen(of, "rb");
        cr_assert(f && fread(ref, 8, per, f) == per);
        fclose(f);
        /* Compare predictions on the training rows (W itself can be ill-conditioned). */
        double md = 0, my = 0, mw = 0, mwr = 0;
        for (int r = 0; r < n; r++)
            for (int k = 0; k < K; k++) {
                double a = maps->W[l][(size_t)d * K + k], b = ref[(size_t)d * K + k];
                for (int j = 0; j < d; j++) {
                    a += X[(size_t)r * d + j] * maps->W[l][(size_t)j * K + k];
                    b += X[(size_t)r * d + j] * ref[(size_t)j * K + k];
                }
                md = fmax(md, fabs(a - b));
                my = fmax(my, fabs(Y[(size_t)r * K + k]));
            }
        for (size_t i = 0; i < (size_t)(d + 1) * K; i++) {
            mw = fmax(mw, fabs(maps->W[l][i] - ref[i]));
            mwr = fmax(mwr, fabs(ref[i]));
        }
        cr_log_info("L-SPADE toy-llama layer %d: lambda_rel %g (numpy agrees), held-out MSE %.4g, max |pred - numpy "
                    "pred| %.2e (max |y| %.3g), max rel |W - numpy W| %.2e",
                    l, maps->lambda_rel[l], maps->val_mse[l], md, my, mw / mwr);
        cr_assert(md <= 1e-4 * my, "layer %d: predictions differ from numpy's by %g", l, md);
        free(ref);
        unlink(xf);
        unlink(yf);
        unlink(of);
    }
    const char *meta = maps->meta_json;
    cr_assert(strstr(meta, "\"data\":\"toy\"") && strstr(meta, "\"target\":\"logits\"") && strstr(meta, "\"spade\""),
              "%s", meta);
    free(lg);
    free(X);
    free(Y);
    ll_spade_free(sp);
    ll_spade_states_free(&st);
    ll_lspade_maps_free(maps);
    ll_exit_prompts_free(&p);
    ll_model_free(m);
}

/* Maps with made-up weights (no fit needed) for the file and apply tests. */
static ll_lspade_maps *made_up(const ll_model *m, ll_lspade_target t, bool norm_input) {
    int d = m->cfg.d_model, L = m->cfg.n_layers, K = 4, q = t == LL_LSPADE_TARGET_LOGITS ? K : d;
    ll_lspade_maps *maps;
    cr_assert_eq(ll_lspade_maps_alloc(&maps, L, d, q, K), LL_OK);
    maps->target = t;
    maps->norm_input = norm_input;
    for (int l = 1; l < L; l++) {
        maps->W[l] = malloc((size_t)(d + 1) * q * sizeof(float));
        for (int i = 0; i < (d + 1) * q; i++) maps->W[l][i] = (float)sin(0.37 * i + l) * (t == LL_LSPADE_TARGET_HIDDEN ? 0.1f : 1.0f);
        if (t == LL_LSPADE_TARGET_HIDDEN)
            for (int j = 0; j < d; j++) maps->W[l][(size_t)j * d + j] += 1.0f;
        maps->lambda[l] = 0.5 * l;
        maps->lambda_rel[l] = 1e-3;
        maps->val_mse[l] = 0.25 * l;
        maps->train_mse[l] = 0.2 * l;
    }
    maps->meta_json = strdup("{\"note\":\"made up\"}");
    return maps;
}

Test(lspade, file_round_trip_and_errors) {
    ll_model *m = load_toy();
    ll_lspade_maps *a = made_up(m, LL_LSPADE_TARGET_HIDDEN, true), *b;
    char path[128];
    snprintf(path, sizeof path, "/tmp/ll_lspade_maps_%d.safetensors", getpid());
    cr_assert_eq(ll_lspade_save(a, path), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_lspade_load(&b, path, m), LL_OK, "%s", ll_last_error());
    int d = m->cfg.d_model;
    cr_assert(b->target == LL_LSPADE_TARGET_HIDDEN && b->norm_input && b->K == 4 && b->d_out == d);
    for (int l = 0; l <= m->cfg.n_layers; l++) {
        cr_assert_eq(!a->W[l], !b->W[l]);
        if (a->W[l]) {
            cr_assert_eq(memcmp(a->W[l], b->W[l], (size_t)(d + 1) * d * sizeof(float)), 0, "layer %d", l);
            cr_assert_float_eq(b->lambda[l], a->lambda[l], 0);
            cr_assert_float_eq(b->val_mse[l], a->val_mse[l], 0);
        }
    }
    cr_assert(strstr(b->meta_json, "\"note\":\"made up\"") && strstr(b->meta_json, "layerlab-lspade"), "%s",
              b->meta_json);
    ll_lspade_maps_free(b);
    /* A model of another size is refused, naming both. */
    a->n_layers = 3;
    free(a->W[3]);
    a->W[3] = NULL;
    cr_assert_eq(ll_lspade_save(a, path), LL_OK);
    cr_assert_eq(ll_lspade_load(&b, path, m), LL_ERR_SHAPE);
    cr_assert(strstr(ll_last_error(), "layers"), "%s", ll_last_error());
    /* Not a maps file. */
    cr_assert_eq(ll_lspade_load(&b, "data/models/toy-llama/model.safetensors", m), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), "model.safetensors"), "%s", ll_last_error());
    cr_assert_eq(ll_lspade_load(&b, "/nonexistent/maps.safetensors", m), LL_ERR_IO);
    unlink(path);
    a->n_layers = m->cfg.n_layers;
    ll_lspade_maps_free(a);
    ll_model_free(m);
}

Test(lspade, apply_by_hand_and_hidden_decoding_equals_the_model_head) {
    ll_model *m = load_toy();
    int d = m->cfg.d_model, V = m->cfg.vocab_size, n = 5, K = 4;
    float *h = malloc((size_t)n * d * sizeof(float)), *out = malloc((size_t)n * K * sizeof(float));
    for (int i = 0; i < n * d; i++) h[i] = (float)cos(0.11 * i) * 2.0f;
    int32_t cs[5][4];
    const int32_t *cand[5];
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < K; k++) cs[i][k] = (int32_t)((7 * i + 31 * k + 5) % V);
        cand[i] = cs[i];
    }
    /* logits target, with and without the final norm on the input. */
    for (int ni = 0; ni < 2; ni++) {
        ll_lspade_maps *a = made_up(m, LL_LSPADE_TARGET_LOGITS, ni);
        cr_assert_eq(ll_lspade_apply(a, m, 2, n, h, cand, out), LL_OK, "%s", ll_last_error());
        float *x = malloc((size_t)n * d * sizeof(float));
        memcpy(x, h, (size_t)n * d * sizeof(float));
        if (ni) ll_backend_cpu()->rmsnorm(x, h, m->w.norm_w, n, d, m->cfg.norm_eps);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < K; k++) {
                double s = a->W[2][(size_t)d * K + k];
                for (int j = 0; j < d; j++) s += (double)x[(size_t)i * d + j] * a->W[2][(size_t)j * K + k];
                cr_assert(fabs(s - out[i * K + k]) <= 1e-4 * fmax(1, fabs(s)), "norm_input %d row %d option %d: %g vs %g",
                          ni, i, k, out[i * K + k], s);
            }
        free(x);
        ll_lspade_maps_free(a);
    }
    ll_lspade_maps *z = made_up(m, LL_LSPADE_TARGET_LOGITS, 0);
    cr_assert_eq(ll_lspade_apply(z, m, 0, n, h, cand, out), LL_ERR_MISSING, "no map at layer 0");
    ll_lspade_maps_free(z);
    /* hidden: predicted state through the model's own final norm + head (ll_lens_logits). */
    ll_lspade_maps *a = made_up(m, LL_LSPADE_TARGET_HIDDEN, false);
    cr_assert_eq(ll_lspade_apply(a, m, 1, n, h, cand, out), LL_OK, "%s", ll_last_error());
    float *y = malloc((size_t)n * d * sizeof(float)), *lg = malloc((size_t)n * V * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d; k++) {
            double s = a->W[1][(size_t)d * d + k];
            for (int j = 0; j < d; j++) s += (double)h[(size_t)i * d + j] * a->W[1][(size_t)j * d + k];
            y[(size_t)i * d + k] = (float)s;
        }
    cr_assert_eq(ll_lens_logits(m, n, y, lg), LL_OK, "%s", ll_last_error());
    double md = 0, mx = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++) {
            md = fmax(md, fabs(out[i * K + k] - lg[(size_t)i * V + cs[i][k]]));
            mx = fmax(mx, fabs(lg[(size_t)i * V + cs[i][k]]));
        }
    cr_log_info("hidden target decode vs ll_lens_logits: max |diff| %.2e (max |logit| %.3g)", md, mx);
    cr_assert(md <= 1e-4 * fmax(1, mx), "hidden decode differs from the model's head by %g", md);
    /* entropy: uniform = 1, one-hot-ish ~ 0, K = 1 -> 0. */
    float u[4] = {1, 1, 1, 1}, s[4] = {50, 0, 0, 0};
    int am;
    cr_assert_float_eq(ll_lspade_norm_entropy(u, 4, &am), 1.0, 1e-12);
    cr_assert_eq(am, 0);
    cr_assert(ll_lspade_norm_entropy(s, 4, &am) < 1e-15 + 1e-19 && am == 0);
    cr_assert_float_eq(ll_lspade_norm_entropy(u, 1, NULL), 0.0, 0);
    float two[2] = {0, (float)log(3.0)}; /* p = 1/4, 3/4: H = 0.5623351446 nats, / log 2 */
    cr_assert_float_eq(ll_lspade_norm_entropy(two, 2, &am), 0.5623351446188083 / log(2.0), 1e-7);
    cr_assert_eq(am, 1);
    free(y);
    free(lg);
    free(h);
    free(out);
    ll_lspade_maps_free(a);
    ll_model_free(m);
}

/* ---- the command line: MPI data parallelism and fitting from a dump ---- */

static int have_layerlab(void) { return access("build/layerlab", X_OK) == 0; }

static ll_lspade_maps *load_maps(const char *path, const ll_model *m) {
    ll_lspade_maps *x;
    cr_assert_eq(ll_lspade_load(&x, path, m), LL_OK, "%s", ll_last_error());
    return x;
}

/* Max relative difference of all maps (0 = bit-equal, checked with memcmp as well). */
static double maps_diff(const ll_lspade_maps *a, const ll_lspade_maps *b, int *bit_equal) {
    double md = 0, mx = 0;
    *bit_equal = 1;
    for (int l = 0; l <= a->n_layers; l++) {
        cr_assert_eq(!a->W[l], !b->W[l], "layer %d present in one file only", l);
        if (!a->W[l]) continue;
        size_t n = (size_t)(a->d_model + 1) * a->d_out;
        if (memcmp(a->W[l], b->W[l], n * sizeof(float))) *bit_equal = 0;
        for (size_t i = 0; i < n; i++) {
            md = fmax(md, fabs((double)a->W[l][i] - b->W[l][i]));
            mx = fmax(mx, fabs((double)b->W[l][i]));
        }
    }
    return mx > 0 ? md / mx : md;
}

Test(lspade, mpirun_two_processes_give_the_same_maps) {
    if (!have_layerlab()) cr_skip_test("build/layerlab is not built (make build/layerlab)");
    if (system("command -v mpirun >/dev/null 2>&1") != 0)
        cr_skip_test("mpirun is missing (tools/deps.sh build installs openmpi-bin)");
    if (system("build/layerlab lspade train --help | grep -q mpirun") != 0) cr_skip_test("layerlab lacks lspade");
    /* Containers without a usable MPI runtime (no shared memory, no loopback) cannot start
     * two processes at all: that is the environment, not layerlab. */
    if (system("mpirun --allow-run-as-root --oversubscribe -np 2 true >/dev/null 2>&1") != 0)
        cr_skip_test("mpirun cannot start 2 processes here ('mpirun -np 2 true' fails)");
    char one[128], two[128], cmd[1024];
    snprintf(one, sizeof one, "/tmp/ll_lspade_np1_%d.safetensors", getpid());
    snprintf(two, sizeof two, "/tmp/ll_lspade_np2_%d.safetensors", getpid());
    const char *args = "data/models/toy-llama --toy-mcq 200 --data-seed 5 --val-frac 0.25 --threads 1 --quiet --force";
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 build/layerlab lspade train %s --out %s >/dev/null", args, one);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np 2 build/layerlab lspade train %s --out %s "
             ">/tmp/ll_lspade_mpi_%d.log 2>&1",
             args, two, getpid());
    int rc = system(cmd);
    if (rc != 0) {
        char log[256];
        snprintf(log, sizeof log, "cat /tmp/ll_lspade_mpi_%d.log >&2", getpid());
        (void)!system(log);
    }
    cr_assert_eq(rc, 0, "%s", cmd);
    ll_model *m = load_toy();
    ll_lspade_maps *a = load_maps(one, m), *b = load_maps(two, m);
    int eq;
    double d = maps_diff(b, a, &eq);
    cr_log_info("mpirun -np 2 vs one process: maps %s (max rel diff %.3g); reduce recorded as: %s",
                eq ? "bit-equal" : "differ", d, strstr(b->meta_json, "mpi x 2") ? "mpi x 2" : "?");
    cr_assert(strstr(b->meta_json, "\"reduce\":\"mpi x 2\""), "%s", b->meta_json);
    cr_assert(eq, "maps from 2 ranks differ from one process's by %g (relative)", d);
    ll_lspade_maps_free(a);
    ll_lspade_maps_free(b);
    ll_model_free(m);
    unlink(one);
    unlink(two);
    char lg[128];
    snprintf(lg, sizeof lg, "/tmp/ll_lspade_mpi_%d.log", getpid());
    unlink(lg);
}

Test(lspade, cli_from_dump_equals_live_fit_and_exit_runs) {
    if (!have_layerlab()) cr_skip_test("build/layerlab is not built (make build/layerlab)");
    ll_model *m = load_toy();
    ll_exit_prompts p;
    cr_assert_eq(ll_exit_prompts_toy_mcq(&p, 80, 4, m->cfg.vocab_size), LL_OK);
    char dir[] = "/tmp/ll_lspade_cli_XXXXXX";
    cr_assert(mkdtemp(dir));
    char jl[256], h5[256], live[256], fromd[256], cmd[2048];
    snprintf(jl, sizeof jl, "%s/prompts.jsonl", dir);
    snprintf(h5, sizeof h5, "%s/acts.h5", dir);
    snprintf(live, sizeof live, "%s/live.safetensors", dir);
    snprintf(fromd, sizeof fromd, "%s/dump.safetensors", dir);
    FILE *f = fopen(jl, "w");
    for (int i = 0; i < p.n; i++) {
        fprintf(f, "{\"id\": \"%s\", \"tokens\": [", p.id[i]);
        for (int k = 0; k < p.n_tok[i]; k++) fprintf(f, "%s%d", k ? ", " : "", p.tok[i][k]);
        fprintf(f, "]}\n");
    }
    fclose(f);
    const char *q = "--threads 1 --quiet";
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 build/layerlab dump data/models/toy-llama --input %s --out %s --positions last %s "
             ">/dev/null 2>&1 && OMP_NUM_THREADS=1 build/layerlab lspade train data/models/toy-llama --toy-mcq 80 --data-seed "
             "4 --target hidden --norm-input --out %s %s >/dev/null && OMP_NUM_THREADS=1 build/layerlab lspade train "
             "data/models/toy-llama --toy-mcq 80 --data-seed 4 --target hidden --norm-input --from-dump %s --out %s %s "
             ">/dev/null",
             jl, h5, q, live, q, h5, fromd, q);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    ll_lspade_maps *a = load_maps(live, m), *b = load_maps(fromd, m);
    int eq;
    double d = maps_diff(b, a, &eq);
    cr_log_info("--from-dump vs live forward passes (hidden target, norm input): %s, max rel diff %.3g",
                eq ? "bit-equal" : "close", d);
    cr_assert(d < 1e-4, "maps from the dump differ by %g", d);
    cr_assert(strstr(b->meta_json, "\"inputs\":\"dump ") && b->norm_input && b->target == LL_LSPADE_TARGET_HIDDEN,
              "%s", b->meta_json);
    /* A dump of other prompts is refused, naming the first difference. */
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 build/layerlab lspade train data/models/toy-llama --toy-mcq 80 --data-seed 5 --from-dump "
             "%s --out %s/x.safetensors %s 2>%s/err.txt",
             h5, dir, q, dir);
    cr_assert_neq(system(cmd), 0, "a dump of other prompts must be refused");
    char ep[300], err[1024] = "";
    snprintf(ep, sizeof ep, "%s/err.txt", dir);
    f = fopen(ep, "r");
    size_t ne = f ? fread(err, 1, sizeof err - 1, f) : 0;
    err[ne] = 0;
    if (f) fclose(f);
    cr_assert(strstr(err, "not the same prompts"), "%s", err);
    /* exit: a sweep end to end, every output present and recording its switches. */
    snprintf(cmd, sizeof cmd,
             "cd %s && OMP_NUM_THREADS=1 %s/build/layerlab exit %s/data/models/toy-llama --lspade live.safetensors "
             "--toy-mcq 40 --data-seed 9 --sweep --out ex --no-plot %s > out.txt",
             dir, getcwd((char[1024]){0}, 1024), getcwd((char[1024]){0}, 1024), q);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    const char *outs[] = {"ex.layers.csv", "ex.sweep.csv", "ex.runs.csv", "ex.h5"};
    for (int i = 0; i < 4; i++) {
        char op[300];
        snprintf(op, sizeof op, "%s/%s", dir, outs[i]);
        cr_assert_eq(access(op, R_OK), 0, "%s missing", op);
    }
    char rp[300], line[4096] = "";
    snprintf(rp, sizeof rp, "%s/ex.runs.csv", dir);
    f = fopen(rp, "r");
    cr_assert(f && fgets(line, sizeof line, f) && fgets(line, sizeof line, f));
    fclose(f);
    cr_assert(strstr(line, "target=hidden norm_input=true") && strstr(line, "positions=orig"), "%s", line);
    /* the 13th field: decisions of the measured loop that differ from the sweep table */
    char *c = line;
    for (int k = 0; k < 12; k++) c = strchr(c, ',') + 1;
    cr_assert_eq(atoi(c), 0, "the measured loop disagrees with the sweep: %s", line);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    ll_lspade_maps_free(a);
    ll_lspade_maps_free(b);
    ll_exit_prompts_free(&p);
    ll_model_free(m);
}

/* Switches of the fit: a layer range, one lambda without a held-out split, --no-refit,
 * and the errors for an impossible selection and bad candidates. */
Test(lspade, fit_switches_and_errors) {
    ll_model *m = load_toy();
    ll_exit_prompts p;
    cr_assert_eq(ll_exit_prompts_toy_mcq(&p, 70, 8, m->cfg.vocab_size), LL_OK);
    ll_lspade_data data = ll_exit_prompts_data(&p);
    double one = 1e-3, grid[2] = {1e-4, 1e-1};
    ll_lspade_fit_opts fo = {.layer_lo = 2, .layer_hi = 2, .lambda_rel = &one, .n_lambda = 1, .val_frac = 0};
    ll_lspade_maps *a, *b, *c;
    cr_assert_eq(ll_lspade_fit(m, &data, &fo, NULL, &a), LL_OK, "%s", ll_last_error());
    for (int l = 0; l <= m->cfg.n_layers; l++) cr_assert_eq(!!a->W[l], l == 2, "layer %d", l);
    cr_assert(isnan(a->val_mse[2]) && a->lambda_rel[2] == 1e-3 && a->train_mse[2] >= 0);
    /* Several lambdas need a held-out split. */
    fo.lambda_rel = grid;
    fo.n_lambda = 2;
    cr_assert_eq(ll_lspade_fit(m, &data, &fo, NULL, &b), LL_ERR_ARG);
    cr_assert(strstr(ll_last_error(), "--val-frac"), "%s", ll_last_error());
    /* Refit on all rows vs the training share only: same lambda, different maps. */
    fo.val_frac = 0.3;
    cr_assert_eq(ll_lspade_fit(m, &data, &fo, NULL, &b), LL_OK, "%s", ll_last_error());
    fo.no_refit = true;
    cr_assert_eq(ll_lspade_fit(m, &data, &fo, NULL, &c), LL_OK, "%s", ll_last_error());
    cr_assert_float_eq(b->lambda_rel[2], c->lambda_rel[2], 0);
    cr_assert_neq(memcmp(b->W[2], c->W[2], (size_t)(m->cfg.d_model + 1) * 4 * sizeof(float)), 0);
    cr_assert(strstr(c->meta_json, "\"refit\":\"train only\"") && strstr(b->meta_json, "train + validation"));
    /* A candidate outside the vocabulary is named. */
    p.cand[3][1] = m->cfg.vocab_size + 5;
    ll_lspade_maps *e;
    cr_assert_eq(ll_lspade_fit(m, &data, &fo, NULL, &e), LL_ERR_ARG);
    cr_assert_null(e);
    cr_assert(strstr(ll_last_error(), "prompt 3"), "%s", ll_last_error());
    ll_lspade_maps_free(a);
    ll_lspade_maps_free(b);
    ll_lspade_maps_free(c);
    ll_exit_prompts_free(&p);
    ll_model_free(m);
}

/* --select agree: the held-out agreement with SPADE's option, recomputed here from an
 * independent pass (whole-forward states, SPADE at the layer, a Gram of the training rows,
 * each grid lambda solved and applied to the held-out rows). */
Test(lspade, select_by_agreement_matches_an_independent_count) {
    ll_model *m = load_toy();
    int d = m->cfg.d_model, V = m->cfg.vocab_size, K = 4;
    ll_exit_prompts p;
    cr_assert_eq(ll_exit_prompts_toy_mcq(&p, 160, 31, V), LL_OK);
    int n = p.n;
    double grid[4] = {1e-6, 1e-3, 1e-1, 3.0};
    ll_lspade_fit_opts fo = {.layer_lo = 1, .layer_hi = 3, .lambda_rel = grid, .n_lambda = 4, .val_frac = 0.4,
                             .seed = 77, .select_agree = true};
    ll_lspade_data data = ll_exit_prompts_data(&p);
    ll_lspade_maps *maps;
    cr_assert_eq(ll_lspade_fit(m, &data, &fo, NULL, &maps), LL_OK, "%s", ll_last_error());
    cr_assert(strstr(maps->meta_json, "agreement"), "%s", maps->meta_json);
    ll_spade_states st;
    cr_assert_eq(ll_spade_states_collect(m, (const int32_t *const *)p.tok, p.n_tok, n, false, &st), LL_OK);
    ll_spade *sp;
    cr_assert_eq(ll_spade_new(&sp, m, NULL, 32), LL_OK);
    float *lg = malloc((size_t)n * V * sizeof(float)), *X = malloc((size_t)n * d * sizeof(float));
    float *Y = malloc((size_t)n * K * sizeof(float)), *pred = malloc((size_t)n * K * sizeof(float));
    double *W = malloc((size_t)(d + 1) * K * sizeof(double));
    for (int l = 1; l <= 3; l++) {
        cr_assert_eq(ll_spade_run(sp, l, &st, 0, n, lg, NULL), LL_OK);
        ll_gram tr;
        cr_assert_eq(ll_gram_init(&tr, d, K), LL_OK);
        int nv = 0, pick[160], isv[160];
        for (int i = 0; i < n; i++) {
            memcpy(X + (size_t)i * d, ll_spade_state(&st, l, i, 1), (size_t)d * sizeof(float));
            for (int k = 0; k < K; k++) Y[(size_t)i * K + k] = lg[(size_t)i * V + p.cand[i][k]];
            ll_lspade_norm_entropy(Y + (size_t)i * K, K, &pick[i]);
            isv[i] = ll_ridge_is_val(i, 0.4, 77);
            nv += isv[i];
            if (!isv[i]) cr_assert_eq(ll_gram_add(&tr, X + (size_t)i * d, d, Y + (size_t)i * K, K, 1), LL_OK);
        }
        int cnt[4], best = 0;
        for (int g = 0; g < 4; g++) {
            cr_assert_eq(ll_ridge_solve(&tr, grid[g] * ll_gram_feature_scale(&tr), W, NULL), LL_OK);
            cr_assert_eq(ll_ridge_predict(W, d, K, X, d, n, pred, K), LL_OK);
            cnt[g] = 0;
            for (int i = 0; i < n; i++) {
                int a;
                ll_lspade_norm_entropy(pred + (size_t)i * K, K, &a);
                cnt[g] += isv[i] && a == pick[i];
            }
            if (cnt[g] > cnt[best]) best = g;
        }
        int chosen = -1;
        for (int g = 0; g < 4; g++)
            if (maps->lambda_rel[l] == grid[g]) chosen = g;
        cr_log_info("select agree, layer %d: held-out agreement per lambda %d %d %d %d of %d; fit chose %g (%.4f), "
                    "reference best %g",
                    l, cnt[0], cnt[1], cnt[2], cnt[3], nv, maps->lambda_rel[l], maps->val_agree[l], grid[best]);
        cr_assert(chosen >= 0, "layer %d: lambda %g not on the grid", l, maps->lambda_rel[l]);
        /* Rows summed in other chunks can round a near-tie the other way: allow one prompt. */
        cr_assert(cnt[chosen] >= cnt[best] - 1, "layer %d: chose %g (%d agree), best %g (%d)", l, grid[chosen],
                  cnt[chosen], grid[best], cnt[best]);
        cr_assert(fabs(maps->val_agree[l] - (double)cnt[chosen] / nv) <= 1.0 / nv + 1e-12,
                  "layer %d: reported agreement %.4f, recounted %d / %d", l, maps->val_agree[l], cnt[chosen], nv);
        ll_gram_free(&tr);
    }
    free(lg);
    free(X);
    free(Y);
    free(pred);
    free(W);
    ll_spade_free(sp);
    ll_spade_states_free(&st);
    ll_lspade_maps_free(maps);
    ll_exit_prompts_free(&p);
    ll_model_free(m);
}
