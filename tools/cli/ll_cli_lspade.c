/* layerlab lspade train: fit L-SPADE maps (host/lspade) on SPADE's outputs. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ll_progress.h"
#include "ll_cli.h"
#include "lspade/ll_lspade.h"
#include "lspade/ll_mpi.h"
#include "lspade/ll_ridge_gpu.h"

static const char usage[] =
    "usage: layerlab lspade train MODEL (--data FILE | --toy-mcq N | --cloze N) --out MAPS.safetensors\n"
    "         [--target logits|hidden] [--norm-input] [--lambda-grid L1,L2,...] [--val-frac F]\n"
    "         [--split-seed S] [--select mse|agree] [--no-refit] [--layers LO-HI]\n"
    "         [--positions orig|reindex] [--from-dump F.h5] [--ridge-device cpu|cuda]\n"
    "         [--reduce mpi|nccl] [--format F] [--template T] [--k-shot K] [--limit N]\n"
    "         [--range A-B] [--data-seed S] [--force] [--quiet] [--device cuda|cpu] [--threads N]\n"
    "\n"
    "  --data FILE      a task file (host/mcqa formats: foundry, boolq, headqa, arc, generic)\n"
    "  --toy-mcq N      N multiple-choice questions of the toy world (data/models/toy-llama)\n"
    "  --cloze N        N cloze items cut from the model's own greedy stories (any model)\n"
    "  --target         logits (default): SPADE's K option logits; hidden: SPADE's final hidden\n"
    "                   state, decoded with the frozen final norm and LM head\n"
    "  --norm-input     apply the model's final norm to h^l before the map\n"
    "  --lambda-grid    ridge lambdas relative to mean diag(X^T X) (default 1e-8,...,1e1)\n"
    "  --val-frac F     held-out share for choosing lambda by held-out MSE (default 0.2)\n"
    "  --select         choose lambda by held-out mse (default) or by agree: the share of held-out\n"
    "                   prompts where the map picks SPADE's option (keeps those rows in memory)\n"
    "  --no-refit       keep the map fitted on the training share (default: refit on all)\n"
    "  --layers LO-HI   layers to fit (default 1-(L-1)); layer l = residual after l blocks\n"
    "  --from-dump F    answer rows from `layerlab dump --points hook_resid_post --positions\n"
    "                   answer` of the same prompts instead of forward passes\n"
    "  --ridge-device   cpu (default): fp64 Grams (bit-reproducible) and LAPACK; cuda: Grams\n"
    "                   with cuBLAS (fp64) and the solve with cuSOLVER\n"
    "  --reduce         mpi (default) or nccl: how ranks under mpirun sum their Grams (nccl:\n"
    "                   ncclAllReduce between GPUs, fp64 sums, not bit-equal to mpi)\n"
    "Under mpirun each process takes every N-th block of 64 prompts and one all-reduce per\n"
    "Gram sums them; the maps are bit-equal to a single process's. Rank 0 writes --out and a\n"
    "per-layer summary next to it (MAPS.csv).\n";

static void on_progress(void *user, int64_t done, int64_t total) {
    ll_progress *p = user;
    ll_progress_update(p, done, done, 0);
    (void)total;
}

static ll_status parse_grid(const char *s, double *g, int *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !(v >= 0) || *n >= LL_LSPADE_MAX_GRID)
            return ll_err(LL_ERR_ARG, "--lambda-grid: expected up to %d non-negative numbers separated by commas, found '%s'",
                          LL_LSPADE_MAX_GRID, s);
        g[(*n)++] = v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return ll_err(LL_ERR_ARG, "--lambda-grid: unexpected '%s' in '%s'", end, s);
    }
    if (!*n) return ll_err(LL_ERR_ARG, "--lambda-grid: empty");
    return LL_OK;
}

static ll_status write_summary(const ll_lspade_maps *maps, const char *out) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s.csv", out);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return ll_err(LL_ERR_IO, "%s: cannot create", tmp);
    fprintf(f, "layer,lambda_rel,lambda,val_mse,val_agree,train_mse,switches\n");
    for (int l = 0; l <= maps->n_layers; l++) {
        if (!maps->W[l]) continue;
        fprintf(f, "%d,%g,%.9g,%.9g,%.6f,%.9g,\"", l, maps->lambda_rel[l], maps->lambda[l], maps->val_mse[l],
                maps->val_agree[l], maps->train_mse[l]);
        /* The maps' metadata (every switch of the fit) as one CSV field: quotes doubled. */
        for (const char *c = maps->meta_json; c && *c; c++) {
            if (*c == '"') fputc('"', f);
            fputc(*c, f);
        }
        fputs("\"\n", f);
    }
    int bad = ferror(f);
    if (fclose(f) || bad || rename(tmp, path)) {
        unlink(tmp);
        return ll_err(LL_ERR_IO, "%s: write failed", path);
    }
    return LL_OK;
}

/* layerlab lspade ridge: the ridge fit alone on raw arrays, timed (for tools/bench: the GPU
 * path against torch.linalg.solve, the CPU path against numpy). */
static const char ridge_usage[] =
    "usage: layerlab lspade ridge --x X.f32 --y Y.f32 --n N --d D --q Q --lambda L --out W.f64\n"
    "         [--ridge-device cpu|cuda]\n"
    "X [N][D] and Y [N][Q] raw float32; W [(D+1)][Q] raw float64 (bias last row). Prints the\n"
    "seconds of the Gram accumulation and of the solve.\n";

static int ll_cli_lspade_ridge(int argc, char **argv) {
    const char *xf = NULL, *yf = NULL, *of = NULL;
    long long n = 0;
    int d = 0, q = 0, gpu = 0;
    double lambda = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--x") && has) xf = argv[++i];
        else if (!strcmp(a, "--y") && has) yf = argv[++i];
        else if (!strcmp(a, "--out") && has) of = argv[++i];
        else if (!strcmp(a, "--n") && has) n = atoll(argv[++i]);
        else if (!strcmp(a, "--d") && has) d = atoi(argv[++i]);
        else if (!strcmp(a, "--q") && has) q = atoi(argv[++i]);
        else if (!strcmp(a, "--lambda") && has) lambda = atof(argv[++i]);
        else if (!strcmp(a, "--ridge-device") && has) gpu = !strcmp(argv[++i], "cuda");
        else if (!strcmp(a, "--threads") && has) ll_set_threads(atoi(argv[++i]));
        else if (!strcmp(a, "--help")) {
            fputs(ridge_usage, stdout);
            return 0;
        } else return ll_cli_usage(ridge_usage);
    }
    if (!xf || !yf || !of || n <= 0 || d <= 0 || q <= 0 || lambda < 0) return ll_cli_usage(ridge_usage);
    float *X = malloc((size_t)n * d * sizeof(float)), *Y = malloc((size_t)n * q * sizeof(float));
    double *W = malloc((size_t)(d + 1) * q * sizeof(double));
    FILE *fx = fopen(xf, "rb"), *fy = fopen(yf, "rb");
    int ok = X && Y && W && fx && fy && fread(X, sizeof(float), (size_t)n * d, fx) == (size_t)n * d &&
             fread(Y, sizeof(float), (size_t)n * q, fy) == (size_t)n * q;
    if (fx) fclose(fx);
    if (fy) fclose(fy);
    ll_status st = ok ? LL_OK : ll_err(LL_ERR_IO, "lspade ridge: cannot read %lld x %d / %d floats from %s / %s", n, d, q, xf, yf);
    ll_gram g = {0};
    double t0 = ll_now(), t1 = t0, t2 = t0;
    if (!st) st = ll_gram_init(&g, d, q);
    if (!st && gpu) {
        ll_gram_gpu *gg = NULL;
        st = ll_gram_gpu_new(&gg, d, q);
        if (!st) st = ll_gram_gpu_add(gg, X, d, Y, q, n);
        if (!st) st = ll_gram_gpu_merge_into(gg, &g);
        ll_gram_gpu_free(gg);
    } else if (!st) {
        st = ll_gram_add(&g, X, d, Y, q, n);
    }
    t1 = ll_now();
    if (!st) st = gpu ? ll_ridge_solve_gpu(&g, lambda, W) : ll_ridge_solve(&g, lambda, W, NULL);
    t2 = ll_now();
    if (!st) {
        FILE *fo = fopen(of, "wb");
        if (!fo || fwrite(W, sizeof(double), (size_t)(d + 1) * q, fo) != (size_t)(d + 1) * q)
            st = ll_err(LL_ERR_IO, "%s: write failed", of);
        if (fo) fclose(fo);
    }
    if (!st) printf("gram_s %.6f solve_s %.6f device %s\n", t1 - t0, t2 - t1, gpu ? "cuda" : "cpu");
    ll_gram_free(&g);
    free(X);
    free(Y);
    free(W);
    return st ? ll_cli_status(st) : 0;
}

int ll_cli_lspade(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? LL_EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "ridge")) return ll_cli_lspade_ridge(argc - 1, argv + 1);
    if (strcmp(argv[1], "train")) return ll_cli_fail("lspade: unknown subcommand '%s' (train, ridge)", argv[1]);
    argc--;
    argv++;
    const char *path = NULL, *out = NULL, *dump = NULL, *layers = NULL;
    ll_cli_prompt_src src = {.cmd = "lspade", .seed = 1};
    ll_lspade_fit_opts o = {.val_frac = -1, .seed = 1};
    double grid[LL_LSPADE_MAX_GRID];
    bool force = false, quiet = false, use_nccl = false;
    for (int i = 1; i < argc; i++) {
        int st;
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (ll_cli_common_opt(argc, argv, &i, &st) || ll_cli_prompt_opt(argc, argv, &i, &src, &st)) {
            if (st) return st;
        } else if (!strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--out") && has) out = argv[++i];
        else if (!strcmp(a, "--from-dump") && has) dump = argv[++i];
        else if (!strcmp(a, "--layers") && has) layers = argv[++i];
        else if (!strcmp(a, "--target") && has) {
            if (ll_lspade_parse_target(argv[++i], &o.target)) return ll_cli_status(LL_ERR_ARG);
        } else if (!strcmp(a, "--positions") && has) {
            if (ll_spade_parse_positions(argv[++i], &o.spade.positions)) return ll_cli_status(LL_ERR_ARG);
        } else if (!strcmp(a, "--lambda-grid") && has) {
            if (parse_grid(argv[++i], grid, &o.n_lambda)) return ll_cli_status(LL_ERR_ARG);
            o.lambda_rel = grid;
        } else if (!strcmp(a, "--val-frac") && has) {
            char *end;
            o.val_frac = strtod(argv[++i], &end);
            if (*end || !(o.val_frac >= 0 && o.val_frac < 1))
                return ll_cli_fail("lspade: --val-frac: expected a number in [0, 1), found '%s'", argv[i]);
        } else if (!strcmp(a, "--split-seed") && has) o.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--norm-input")) o.norm_input = true;
        else if (!strcmp(a, "--no-refit")) o.no_refit = true;
        else if (!strcmp(a, "--select") && has) {
            const char *v = argv[++i];
            if (strcmp(v, "mse") && strcmp(v, "agree"))
                return ll_cli_fail("lspade: --select: expected mse or agree, found '%s'", v);
            o.select_agree = !strcmp(v, "agree");
        }
        else if (!strcmp(a, "--reduce") && has) {
            const char *v = argv[++i];
            if (strcmp(v, "mpi") && strcmp(v, "nccl"))
                return ll_cli_fail("lspade: --reduce: expected mpi or nccl, found '%s'", v);
            use_nccl = !strcmp(v, "nccl");
        }
        else if (!strcmp(a, "--ridge-device") && has) {
            const char *v = argv[++i];
            if (strcmp(v, "cpu") && strcmp(v, "cuda"))
                return ll_cli_fail("lspade: --ridge-device: expected cpu or cuda, found '%s'", v);
            o.ridge_gpu = !strcmp(v, "cuda");
        }
        else if (!strcmp(a, "--force")) force = true;
        else if (!strcmp(a, "--quiet")) quiet = true;
        else if (a[0] == '-') return ll_cli_fail("lspade train: unknown option %s (or missing value)", a);
        else if (!path) path = a;
        else return ll_cli_usage(usage);
    }
    if (!path || !out) return ll_cli_usage(usage);
    if (layers && sscanf(layers, "%d-%d", &o.layer_lo, &o.layer_hi) != 2)
        return ll_cli_fail("lspade: --layers: expected LO-HI (like 1-31), found '%s'", layers);
    ll_lspade_comm comm;
    ll_status st = ll_mpi_init(&argc, &argv, &comm);
    if (!st && use_nccl) st = ll_nccl_init(&comm);
    if (st) {
        ll_mpi_finalize();
        return ll_cli_status(st);
    }
    o.comm = &comm;
    bool root = comm.rank == 0;
    struct stat sb;
    /* Every rank looks (they share the file system), so all stop together. */
    if (!force && stat(out, &sb) == 0) {
        ll_mpi_finalize();
        return ll_cli_fail("lspade: %s exists (--force to replace it)", out);
    }
    ll_model *m = NULL;
    ll_exit_prompts pr = {0};
    ll_lspade_maps *maps = NULL;
    char desc[1024] = "";
    st = ll_cli_load_for_run(path, &m);
    if (!st) st = ll_cli_prompts_load(&src, path, m, &pr, desc, sizeof desc);
    ll_progress prog;
    ll_progress_init(&prog, "lspade", "prompts", 0, quiet || !root ? -1 : 0);
    o.progress = on_progress;
    o.progress_user = &prog;
    if (!st) {
        /* The command line and the data go with the maps. */
        char cmd[2048] = "layerlab lspade train";
        for (int i = 1; i < argc && strlen(cmd) + strlen(argv[i]) + 2 < sizeof cmd; i++) {
            strcat(cmd, " ");
            strcat(cmd, argv[i]);
        }
        cJSON *j = cJSON_CreateObject();
        char kb[16];
        snprintf(kb, sizeof kb, "%d", pr.K);
        cJSON_AddStringToObject(j, "command", cmd);
        cJSON_AddStringToObject(j, "data", desc);
        cJSON_AddStringToObject(j, "K", kb);
        cJSON_AddStringToObject(j, "device", m->be && m->be->name ? m->be->name : "cpu");
        char *meta = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        ll_lspade_data data = ll_exit_prompts_data(&pr);
        prog.total = pr.n;
        st = dump ? ll_lspade_fit_from_dump(m, &data, dump, &o, meta, &maps) : ll_lspade_fit(m, &data, &o, meta, &maps);
        free(meta);
    }
    ll_progress_finish(&prog);
    if (!st && root) st = ll_lspade_save(maps, out);
    if (!st && root) st = write_summary(maps, out);
    if (!st && root) {
        printf("L-SPADE: %d prompts (K = %d), target %s%s, %s x %d process%s -> %s\n", pr.n, pr.K,
               ll_lspade_target_name(o.target), o.norm_input ? ", norm input" : "", comm.name, comm.size,
               comm.size > 1 ? "es" : "", out);
        printf("layer  lambda_rel  held-out MSE  held-out =SPADE  train MSE\n");
        for (int l = 0; l <= maps->n_layers; l++)
            if (maps->W[l])
                printf("%5d  %10.3g  %12.6g  %15.4f  %9.6g\n", l, maps->lambda_rel[l], maps->val_mse[l], maps->val_agree[l],
                       maps->train_mse[l]);
    }
    ll_lspade_maps_free(maps);
    ll_exit_prompts_free(&pr);
    ll_model_free(m);
    if (st && comm.size > 1) {
        /* The other ranks may be waiting in an all-reduce this one will never join. */
        int rc = ll_cli_status(st);
        fflush(NULL);
        ll_mpi_abort(rc);
    }
    ll_nccl_finalize();
    ll_mpi_finalize();
    return st ? ll_cli_status(st) : 0;
}
