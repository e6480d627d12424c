/* layerlab exit: SPADE-EXIT (host/exit) on a prompt set: per-layer curves, a tau sweep
 * with its operating points, measured runs of the real early-exit loop, Iso-Compute
 * comparison with the lenses; CSV, HDF5 and PNG outputs that record their switches. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ll_progress.h"
#include "exit/ll_exit_curves.h"
#include "ll_cli.h"
#include "store/ll_h5.h"

static const char usage[] =
    "usage: layerlab exit MODEL --lspade MAPS (--data FILE | --toy-mcq N | --cloze N) (--tau T | --sweep)\n"
    "         [--taus T1,T2,...] [--min-layer L] [--batch N] [--tuned-lens FILE]\n"
    "         [--positions orig|reindex] [--out PREFIX] [--no-plot] [--no-run] [--quiet]\n"
    "         [--format F] [--template T] [--k-shot K] [--limit N] [--range A-B] [--data-seed S]\n"
    "         [--device cuda|cpu] [--threads N]\n"
    "\n"
    "  --lspade MAPS    maps from 'layerlab lspade train' for this model (same K options)\n"
    "  --tau T          exit when L-SPADE's normalised option entropy H/log K < T (0: never)\n"
    "  --sweep          all thresholds (quantiles of the observed entropies, or --taus); the\n"
    "                   operating points are the best accuracy and the largest token-layer\n"
    "                   speedup within 1 point of the full model; the real loop runs at both\n"
    "  --min-layer L    first layer checked (default 1)\n"
    "  --tuned-lens F   also compare with a tuned lens (host/lens file)\n"
    "  --no-run         decisions from the sweep table only (no measured wall-clock)\n"
    "  --out PREFIX     PREFIX.layers.csv, .sweep.csv, .runs.csv, .h5 and .png (default 'exit')\n"
    "Compute is counted in token-layers: full n*L, exit at l: n*l + 2(L-l); the L-SPADE checks\n"
    "are reported apart (map_token_layers: their multiply-adds over one block's, per prompt).\n";

static void on_progress(void *user, int64_t done, int64_t total) {
    ll_progress *p = user;
    p->total = total;
    ll_progress_update(p, done, done, 0);
}

static int cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Thresholds for a sweep: 0, the quantiles of the observed entropies (each nudged just
 * above the value, so that "H < tau" lets that value exit), and above 1 (all exit). */
static int sweep_taus(const ll_exit_curves *c, double *taus, int max) {
    size_t nh = 0, tot = (size_t)c->n * (c->L + 1);
    float *v = malloc(tot * sizeof(float));
    if (!v) return 0;
    for (size_t i = 0; i < tot; i++)
        if (!isnan(c->H[i])) v[nh++] = c->H[i];
    qsort(v, nh, sizeof(float), cmpf);
    int k = 0;
    taus[k++] = 0.0;
    for (int q = 1; q < max - 2 && nh; q++) {
        double t = nextafterf(v[(size_t)((double)q / (max - 2) * (nh - 1))], 2.0f);
        if (t > taus[k - 1]) taus[k++] = t;
    }
    taus[k++] = 1.0 + 1e-6;
    free(v);
    return k;
}

/* Wall-clock of the plain full model on the same batches (one ll_forward per batch). */
static ll_status time_full(ll_model *m, const ll_exit_prompts *p, int B, double *sec) {
    int V = m->cfg.vocab_size;
    int64_t maxr = 0;
    for (int p0 = 0; p0 < p->n; p0 += B) {
        int64_t r = 0;
        for (int i = p0; i < p->n && i < p0 + B; i++) r += p->n_tok[i];
        if (r > maxr) maxr = r;
    }
    int32_t *tok = malloc((size_t)maxr * sizeof(int32_t));
    int64_t *off = malloc((size_t)(B + 1) * sizeof(int64_t));
    float *lg = malloc((size_t)B * V * sizeof(float));
    ll_status st = tok && off && lg ? LL_OK : ll_err(LL_ERR_NOMEM, "exit: no memory for the full-model timing");
    double t0 = ll_now();
    for (int p0 = 0; p0 < p->n && !st; p0 += B) {
        int ns = p0 + B <= p->n ? B : p->n - p0;
        off[0] = 0;
        for (int s = 0; s < ns; s++) {
            memcpy(tok + off[s], p->tok[p0 + s], (size_t)p->n_tok[p0 + s] * sizeof(int32_t));
            off[s + 1] = off[s] + p->n_tok[p0 + s];
        }
        ll_batch b = {.n_seq = ns, .seq_off = off, .tokens = tok};
        ll_forward_opts fo = {.logits = LL_LOGITS_LAST, .logits_out = lg};
        st = ll_forward(m, &b, &fo);
    }
    *sec = ll_now() - t0;
    free(tok);
    free(off);
    free(lg);
    return st;
}

typedef struct {
    double tau, acc, agg, mean, wall_exit, wall_full, map_sec;
    int64_t spade_tl, rows;
    int mismatches;
    int *exit_layer;
} run_rec;

static ll_status h5_put(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, const void *buf) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ds = sp < 0 ? -1 : H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = ds < 0 ? -1 : H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (ds >= 0) H5Dclose(ds);
    if (sp >= 0) H5Sclose(sp);
    return e < 0 ? ll_h5_err(LL_ERR_IO, "HDF5: cannot write dataset %s", name) : LL_OK;
}

static FILE *open_tmp(const char *path, char *tmp, size_t n) {
    snprintf(tmp, n, "%s.tmp%ld", path, (long)getpid());
    return fopen(tmp, "w");
}

static ll_status close_tmp(FILE *f, const char *tmp, const char *path) {
    int bad = ferror(f);
    if (fclose(f) || bad || rename(tmp, path)) {
        unlink(tmp);
        return ll_err(LL_ERR_IO, "%s: write failed", path);
    }
    return LL_OK;
}

int ll_cli_exit(int argc, char **argv) {
    const char *path = NULL, *maps_path = NULL, *tuned_path = NULL, *prefix = "exit", *taus_arg = NULL;
    ll_cli_prompt_src src = {.cmd = "exit", .seed = 1};
    ll_spade_opts so = {0};
    double tau = -1;
    int sweep = 0, min_layer = 1, B = 16, no_plot = 0, no_run = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        int st;
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (ll_cli_common_opt(argc, argv, &i, &st) || ll_cli_prompt_opt(argc, argv, &i, &src, &st)) {
            if (st) return st;
        } else if (!strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--lspade") && has) maps_path = argv[++i];
        else if (!strcmp(a, "--tuned-lens") && has) tuned_path = argv[++i];
        else if (!strcmp(a, "--out") && has) prefix = argv[++i];
        else if (!strcmp(a, "--taus") && has) {
            taus_arg = argv[++i];
            sweep = 1;
        } else if (!strcmp(a, "--tau") && has) {
            char *end;
            tau = strtod(argv[++i], &end);
            if (*end || !(tau >= 0)) return ll_cli_fail("exit: --tau: expected a number >= 0, found '%s'", argv[i]);
        } else if ((!strcmp(a, "--min-layer") || !strcmp(a, "--batch")) && has) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1) return ll_cli_fail("exit: %s: expected a positive number, found '%s'", a, argv[i]);
            if (!strcmp(a, "--batch")) B = (int)v;
            else min_layer = (int)v;
        } else if (!strcmp(a, "--positions") && has) {
            if (ll_spade_parse_positions(argv[++i], &so.positions)) return ll_cli_status(LL_ERR_ARG);
        } else if (!strcmp(a, "--sweep")) sweep = 1;
        else if (!strcmp(a, "--no-plot")) no_plot = 1;
        else if (!strcmp(a, "--no-run")) no_run = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (a[0] == '-') return ll_cli_fail("exit: unknown option %s (or missing value)", a);
        else if (!path) path = a;
        else return ll_cli_usage(usage);
    }
    if (!path || !maps_path || (tau >= 0) == sweep) return ll_cli_usage(usage);
    ll_model *m = NULL;
    ll_lspade_maps *maps = NULL;
    ll_tuned_lens *tl = NULL;
    ll_exit_prompts pr = {0};
    ll_exit_curves cv = {0};
    ll_spade *sp = NULL;
    double taus[64];
    int nt = 0;
    ll_exit_point pts[64];
    int *hists = NULL;
    run_rec runs[2];
    int n_runs = 0;
    char desc[1024] = "", sw[2048], tmp[4400], fpath[4200];
    ll_status st = ll_cli_load_for_run(path, &m);
    if (!st) st = ll_lspade_load(&maps, maps_path, m);
    if (!st) st = ll_cli_prompts_load(&src, path, m, &pr, desc, sizeof desc);
    if (!st && pr.K != maps->K)
        st = ll_err(LL_ERR_SHAPE, "exit: %s was fitted for K = %d options, the prompts have %d", maps_path, maps->K, pr.K);
    if (!st && tuned_path) st = ll_tuned_lens_load(&tl, tuned_path, m);
    if (st) goto done;
    int L = m->cfg.n_layers, n = pr.n;
    {
        char sp_desc[128];
        ll_spade_opts_describe(&so, sp_desc, sizeof sp_desc);
        snprintf(sw, sizeof sw, "min_layer=%d batch=%d spade[%s] lspade[%s target=%s norm_input=%s] data[%s] device=%s",
                 min_layer, B, sp_desc, maps_path, ll_lspade_target_name(maps->target), maps->norm_input ? "true" : "false",
                 desc, m->be && m->be->name ? m->be->name : "cpu");
    }
    /* 1. Curves and the sweep table (one full forward per batch; every layer decoded). */
    if ((st = ll_exit_curves_run(m, maps, &pr, tl, &so, B, min_layer, !quiet, &cv))) goto done;
    double full_acc = cv.ev.full_acc, lmacs = ll_exit_layer_macs(&m->cfg);
    /* 2. The sweep. */
    if (sweep) {
        if (taus_arg) {
            const char *p = taus_arg;
            while (*p && nt < 64) {
                char *end;
                taus[nt] = strtod(p, &end);
                if (end == p || !(taus[nt] >= 0)) {
                    st = ll_err(LL_ERR_ARG, "exit: --taus: expected non-negative numbers separated by commas, found '%s'",
                                taus_arg);
                    goto done;
                }
                nt++;
                p = *end == ',' ? end + 1 : end;
            }
        } else {
            nt = sweep_taus(&cv, taus, 42);
        }
    } else {
        taus[nt++] = tau;
    }
    hists = calloc((size_t)nt * (L + 1), sizeof(int));
    if (!hists) {
        st = ll_err(LL_ERR_NOMEM, "exit: no memory");
        goto done;
    }
    for (int k = 0; k < nt; k++) {
        pts[k].hist = hists + (size_t)k * (L + 1);
        ll_exit_simulate(&cv.table, taus[k], lmacs, &pts[k], NULL, NULL);
    }
    int best = 0, within = -1;
    if (sweep) ll_exit_operating_points(pts, nt, full_acc, &best, &within);
    /* 3. Measured runs of the real loop. */
    double run_taus[2];
    int nrt = 0;
    if (!no_run) {
        run_taus[nrt++] = pts[best].tau;
        if (sweep && within >= 0 && within != best) run_taus[nrt++] = pts[within].tau;
    }
    if (nrt && (st = ll_spade_new(&sp, m, &so, B))) goto done;
    double wall_full = 0;
    if (nrt) {
        /* Twice, keeping the faster: the first pass also warms caches and page-ins, which
         * would otherwise be charged to the full model and flatter the early exit. */
        double w2 = 0;
        if ((st = time_full(m, &pr, B, &wall_full)) || (st = time_full(m, &pr, B, &w2))) goto done;
        if (w2 < wall_full) wall_full = w2;
    }
    ll_lspade_data data = ll_exit_prompts_data(&pr);
    for (int k = 0; k < nrt; k++) {
        ll_progress prog;
        ll_progress_init(&prog, "exit", "prompts", n, quiet ? -1 : 0);
        ll_exit_opts eo = {.tau = run_taus[k], .min_layer = min_layer, .batch = B, .maps = maps, .sp = sp,
                           .progress = on_progress, .progress_user = &prog};
        ll_exit_result r;
        st = ll_exit_run(m, &eo, &data, &r);
        ll_progress_finish(&prog);
        if (st) goto done;
        int *el = malloc((size_t)n * sizeof(int)), *pk = malloc((size_t)n * sizeof(int));
        ll_exit_point p = {0};
        ll_exit_simulate(&cv.table, run_taus[k], lmacs, &p, el, pk);
        run_rec *rr = &runs[n_runs++];
        memset(rr, 0, sizeof *rr);
        rr->tau = run_taus[k];
        ll_exit_tally t = {0};
        int ok = 0, scored = 0;
        for (int i = 0; i < n; i++) {
            rr->mismatches += r.exit_layer[i] != el[i] || r.pick[i] != pk[i];
            ll_exit_tally_add(&t, pr.n_tok[i], L, r.exit_layer[i], r.checks[i], ll_lspade_map_macs(maps));
            if (pr.gold[i] >= 0) {
                scored++;
                ok += r.pick[i] == pr.gold[i];
            }
        }
        rr->acc = scored ? (double)ok / scored : NAN;
        rr->agg = ll_exit_speedup_aggregate(&t);
        rr->mean = ll_exit_speedup_mean(&t);
        rr->wall_exit = r.seconds;
        rr->wall_full = wall_full;
        rr->map_sec = r.map_seconds;
        rr->spade_tl = r.spade_token_layers;
        for (int l = 0; l < L; l++) rr->rows += r.rows[l];
        rr->exit_layer = el;
        free(pk);
        ll_exit_result_free(&r);
    }
    /* 4. Outputs: CSV, HDF5, plots. */
    snprintf(fpath, sizeof fpath, "%s.layers.csv", prefix);
    FILE *f = open_tmp(fpath, tmp, sizeof tmp);
    if (!f) {
        st = ll_err(LL_ERR_IO, "%s: cannot create", tmp);
        goto done;
    }
    fprintf(f, "layer,logit,tuned,spade,lspade,logit_iso,tuned_iso,full,lspade_spade_agree,switches\n");
    for (int l = 0; l <= L; l++)
        fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,\"%s\"\n", l, ll_exit_curve_acc(&cv, cv.i_logit, l),
                ll_exit_curve_acc(&cv, cv.i_tuned, l), ll_exit_curve_acc(&cv, cv.i_spade, l),
                maps->W[l] ? ll_exit_curve_acc(&cv, cv.i_lspade, l) : NAN, ll_exit_iso_acc(&cv, &pr, cv.i_logit, l),
                ll_exit_iso_acc(&cv, &pr, cv.i_tuned, l), full_acc, ll_exit_lspade_agreement(&cv, l), sw);
    if ((st = close_tmp(f, tmp, fpath))) goto done;
    snprintf(fpath, sizeof fpath, "%s.sweep.csv", prefix);
    if (!(f = open_tmp(fpath, tmp, sizeof tmp))) {
        st = ll_err(LL_ERR_IO, "%s: cannot create", tmp);
        goto done;
    }
    fprintf(f, "tau,accuracy,full_accuracy,speedup_aggregate,speedup_mean,map_token_layers,operating_point");
    for (int l = 0; l <= L; l++) fprintf(f, ",exits_%d", l);
    fprintf(f, ",switches\n");
    for (int k = 0; k < nt; k++) {
        const ll_exit_point *p = &pts[k];
        const char *op = !sweep ? "" : k == best && k == within ? "best_accuracy+within_1pt" : k == best ? "best_accuracy"
                                                                                  : k == within ? "within_1pt" : "";
        fprintf(f, "%.9g,%.6f,%.6f,%.6f,%.6f,%.6g,%s", p->tau, p->accuracy, full_acc, p->speedup_aggregate,
                p->speedup_mean, p->map_token_layers, op);
        for (int l = 0; l <= L; l++) fprintf(f, ",%d", p->hist[l]);
        fprintf(f, ",\"%s\"\n", sw);
    }
    if ((st = close_tmp(f, tmp, fpath))) goto done;
    snprintf(fpath, sizeof fpath, "%s.runs.csv", prefix);
    if (!(f = open_tmp(fpath, tmp, sizeof tmp))) {
        st = ll_err(LL_ERR_IO, "%s: cannot create", tmp);
        goto done;
    }
    /* The per-layer check against one layer's forward: measured (all checks' time over the
     * rest of the loop, which is mostly block time) and counted (one map application's MACs
     * over one block on a prompt of mean length). */
    double mean_n = 0;
    for (int i = 0; i < n; i++) mean_n += pr.n_tok[i];
    mean_n /= n;
    double check_mac_frac = ll_lspade_map_macs(maps) / (mean_n * lmacs);
    fprintf(f, "tau,accuracy,speedup_aggregate,speedup_mean,wall_exit_s,wall_full_s,wall_speedup,map_s,"
               "check_time_frac,check_mac_frac,block_rows,spade_token_layers,mismatches_vs_sweep,switches\n");
    for (int k = 0; k < n_runs; k++)
        fprintf(f, "%.9g,%.6f,%.6f,%.6f,%.6f,%.6f,%.4f,%.6f,%.5f,%.5f,%lld,%lld,%d,\"%s\"\n", runs[k].tau, runs[k].acc,
                runs[k].agg, runs[k].mean, runs[k].wall_exit, runs[k].wall_full, runs[k].wall_full / runs[k].wall_exit,
                runs[k].map_sec, runs[k].map_sec / (runs[k].wall_exit - runs[k].map_sec), check_mac_frac,
                (long long)runs[k].rows, (long long)runs[k].spade_tl, runs[k].mismatches, sw);
    if ((st = close_tmp(f, tmp, fpath))) goto done;
    snprintf(fpath, sizeof fpath, "%s.h5", prefix);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", fpath, (long)getpid());
    ll_h5_quiet();
    hid_t h = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (h < 0) {
        st = ll_h5_err(LL_ERR_IO, "%s: cannot create", tmp);
        goto done;
    }
    {
        double *acc = malloc(nt * sizeof(double)), *agg = malloc(nt * sizeof(double)), *mn = malloc(nt * sizeof(double));
        for (int k = 0; k < nt; k++) {
            acc[k] = pts[k].accuracy;
            agg[k] = pts[k].speedup_aggregate;
            mn[k] = pts[k].speedup_mean;
        }
        hsize_t d1[1] = {(hsize_t)nt}, d2[2] = {(hsize_t)nt, (hsize_t)L + 1}, dn[1] = {(hsize_t)n},
                dnl[2] = {(hsize_t)n, (hsize_t)L + 1}, dm[2] = {(hsize_t)cv.ev.n_methods, (hsize_t)L + 1},
                dr[2] = {(hsize_t)n_runs, (hsize_t)n};
        st = h5_put(h, "sweep_tau", H5T_NATIVE_DOUBLE, 1, d1, taus);
        if (!st) st = h5_put(h, "sweep_accuracy", H5T_NATIVE_DOUBLE, 1, d1, acc);
        if (!st) st = h5_put(h, "sweep_speedup_aggregate", H5T_NATIVE_DOUBLE, 1, d1, agg);
        if (!st) st = h5_put(h, "sweep_speedup_mean", H5T_NATIVE_DOUBLE, 1, d1, mn);
        if (!st) st = h5_put(h, "sweep_exit_hist", H5T_NATIVE_INT, 2, d2, hists);
        if (!st) st = h5_put(h, "layer_accuracy", H5T_NATIVE_DOUBLE, 2, dm, cv.ev.acc);
        if (!st) st = h5_put(h, "lspade_entropy", H5T_NATIVE_FLOAT, 2, dnl, cv.H);
        if (!st) st = h5_put(h, "spade_pick", H5T_NATIVE_INT, 2, dnl, cv.spade_pick);
        if (!st) st = h5_put(h, "full_pick", H5T_NATIVE_INT, 1, dn, cv.ev.full_pick);
        if (!st) st = h5_put(h, "gold", H5T_NATIVE_INT, 1, dn, pr.gold);
        if (!st) st = h5_put(h, "n_tok", H5T_NATIVE_INT, 1, dn, pr.n_tok);
        if (!st && n_runs) {
            int *el = malloc((size_t)n_runs * n * sizeof(int));
            double rt[2] = {n_runs > 0 ? runs[0].tau : 0, n_runs > 1 ? runs[1].tau : 0};
            for (int k = 0; k < n_runs; k++) memcpy(el + (size_t)k * n, runs[k].exit_layer, (size_t)n * sizeof(int));
            hsize_t dt[1] = {(hsize_t)n_runs};
            st = h5_put(h, "run_exit_layer", H5T_NATIVE_INT, 2, dr, el);
            if (!st) st = h5_put(h, "run_tau", H5T_NATIVE_DOUBLE, 1, dt, rt);
            free(el);
        }
        const char *names[LL_LENS_MAX_METHODS];
        for (int k = 0; k < cv.ev.n_methods; k++) names[k] = cv.ev.names[k];
        hid_t root = H5Gopen2(h, "/", H5P_DEFAULT);
        if (!st) st = ll_h5_attr_strs(root, "methods", names, cv.ev.n_methods);
        if (!st) st = ll_h5_attr_str(root, "switches", sw);
        if (!st) st = ll_h5_attr_str(root, "lspade_metadata", maps->meta_json ? maps->meta_json : "{}");
        if (!st) st = ll_h5_attr_f64(root, "full_accuracy", full_acc);
        if (!st) st = ll_h5_attr_i64(root, "n_layers", L);
        if (!st) st = ll_h5_attr_str(root, "cost_unit", "token-layers: full n*L, exit at l: n*l + 2(L-l)");
        if (!st) st = ll_h5_attr_str(root, "layer_convention", "l = residual after l blocks (0 = embeddings)");
        if (!st) st = ll_h5_attr_bool(root, "complete", true);
        H5Gclose(root);
        free(acc);
        free(agg);
        free(mn);
    }
    if (H5Fclose(h) < 0 && !st) st = ll_h5_err(LL_ERR_IO, "%s: close failed", tmp);
    if (!st && rename(tmp, fpath)) st = ll_err(LL_ERR_IO, "%s: rename failed", fpath);
    if (st) {
        unlink(tmp);
        goto done;
    }
    /* 5. Report. */
    printf("SPADE-EXIT: %d prompts, K = %d, L = %d; full model accuracy %.4f\n", n, pr.K, L, full_acc);
    printf("switches: %s\n", sw);
    printf("layer  logit   spade   lspade  =spade  logit@iso%s\n", cv.i_tuned >= 0 ? "  tuned   tuned@iso" : "");
    for (int l = 1; l <= L; l++) {
        printf("%5d  %.4f  %.4f  %.4f  %.4f  %.4f", l, ll_exit_curve_acc(&cv, cv.i_logit, l),
               ll_exit_curve_acc(&cv, cv.i_spade, l), maps->W[l] ? ll_exit_curve_acc(&cv, cv.i_lspade, l) : NAN,
               ll_exit_lspade_agreement(&cv, l), ll_exit_iso_acc(&cv, &pr, cv.i_logit, l));
        if (cv.i_tuned >= 0)
            printf("     %.4f  %.4f", ll_exit_curve_acc(&cv, cv.i_tuned, l), ll_exit_iso_acc(&cv, &pr, cv.i_tuned, l));
        printf("\n");
    }
    for (int k = 0; k < nt; k++) {
        if (sweep && k != best && k != within) continue;
        const ll_exit_point *p = &pts[k];
        printf("%s tau %.6g: accuracy %.4f (full %.4f), token-layer speedup %.3fx aggregate, %.3fx mean; "
               "L-SPADE checks %.4g token-layers per prompt; exits by layer:",
               !sweep ? "" : k == best ? "[best accuracy]" : "[within 1 point]", p->tau, p->accuracy, full_acc,
               p->speedup_aggregate, p->speedup_mean, p->map_token_layers);
        for (int l = 1; l <= L; l++) printf(" %d", p->hist[l]);
        printf("\n");
    }
    if (sweep && within < 0) printf("no threshold keeps accuracy within 1 point of the full model\n");
    for (int k = 0; k < n_runs; k++)
        printf("measured tau %.6g: loop %.3f s (maps %.3f s), full model %.3f s: wall-clock speedup %.3fx; "
               "token-layer speedup %.3fx; %d decisions differ from the sweep\n",
               runs[k].tau, runs[k].wall_exit, runs[k].map_sec, runs[k].wall_full, runs[k].wall_full / runs[k].wall_exit,
               runs[k].agg, runs[k].mismatches);
    printf("outputs: %s.layers.csv %s.sweep.csv %s.runs.csv %s.h5\n", prefix, prefix, prefix, prefix);
    if (!no_plot) {
        char cmd[9000];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 tools/plot/plot_exit.py '%s' 2>&1", prefix);
        const char *dir = getenv("LAYERLAB_ROOT");
        if (dir) snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tools/plot/plot_exit.py' '%s' 2>&1", dir, prefix);
        if (access(dir ? dir : "tools/plot/plot_exit.py", F_OK) != 0 && !dir)
            fprintf(stderr, "layerlab: warning: tools/plot/plot_exit.py not found (run from the repository root or set "
                            "LAYERLAB_ROOT): no plot\n");
        else if (system(cmd) != 0)
            fprintf(stderr, "layerlab: warning: plotting failed (python3-matplotlib missing? tools/deps.sh plot): "
                            "the CSV and HDF5 outputs are complete\n");
        else
            printf("plot: %s.png\n", prefix);
    }
done:
    for (int k = 0; k < n_runs; k++) free(runs[k].exit_layer);
    free(hists);
    ll_spade_free(sp);
    ll_exit_curves_free(&cv);
    ll_tuned_lens_free(tl);
    ll_exit_prompts_free(&pr);
    ll_lspade_maps_free(maps);
    ll_model_free(m);
    return st ? ll_cli_status(st) : 0;
}
