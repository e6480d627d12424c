/* layerlab icl e4 | e5 | e6 | e7: attention knockouts, information flow, convergence
 * of local vectors and their (demixed) PCA (docs/icl-analysis.md).
 *
 * Each writes OUT/eN.csv (a table, one row per task x layer or layer range), OUT/eN.h5
 * (the same columns as datasets, every switch as an attribute, `complete` = 1 only once
 * everything is written; written under a temporary name and renamed) and OUT/eN.png
 * (tools/plot/plot_icl_flow.py through /usr/bin/python3 with matplotlib; a warning and
 * no picture when that is missing), and prints the table. */
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/ll_backend.h"
#include "core/ll_progress.h"
#include "icl/ll_icl_analysis.h"
#include "icl/ll_icl_flow.h"
#include "icl/ll_icl_saliency.h"
#include "ll_cli.h"
#include "store/ll_h5.h"

#define LL_MAX_TASKS 16
#define LL_MAX_COLS 24

static const char usage_fmt[] =
    "usage: layerlab icl %s MODEL --task SPEC [--task SPEC ...] [options]\n"
    "\n"
    "common options:\n"
    "  --task SPEC        task (see docs/icl.md: FILE.json, NAME, gen:RULE[:ARG], toy:TABLE); repeatable\n"
    "  --k N              demonstrations per prompt (default 8)\n"
    "  --n N              prompts per task (default 32)\n"
    "  --seed S           episode draws (default 1); --task-seed S for generated tasks (default 0)\n"
    "  --template T       default|hendel|todd|wang|... or a custom \"{input} -> {label}\\n\" (default: the task's hint, else default)\n"
    "  --label-pos P      first|last|separator: which token is a demonstration's label position (default first)\n"
    "  --bos B            auto|yes|no (default auto)\n"
    "  --batch B          prompts per forward pass (default 8)\n"
    "  --full-vocab       answer = argmax over the vocabulary (default: over the task's label words)\n"
    "  --data-root DIR    ICL data sets (default $LAYERLAB_SHARED/assets or ../shared/assets)\n"
    "  --words W          generated tasks: synthetic|toy input words (default synthetic)\n"
    "  --out DIR          output directory (default icl-%s)\n"
    "  --no-plot          skip the PNG\n"
    "  --threads N, --device cuda|cpu, --tokenizer FILE\n"
    "%s";

static const char *const exp_help[4] = {
    "e4 (knockout): accuracy and answer log-probability with attention blocked, per layer window\n"
    "  --mode M           query: the query may not read the label positions (default)\n"
    "                     later: no position after a label position may read it\n"
    "                     reverse: label positions may not read their own demonstration's input\n"
    "  --window W         layers per window (default max(1, layers / 4)); --stride S (default 1)\n"
    "  --control          also block as many random non-label positions (same windows)\n",
    "e5 (information flow): attention mass per layer, averaged over heads and prompts\n"
    "  in_label (label position <- own input), label_query (query <- label positions),\n"
    "  and Wang et al. 2023's S_wp / S_pq / S_ww with attention in place of saliency\n"
    "  --saliency         also attention x gradient saliency |sum_h A * dL/dA| (Wang et al.), L = -log p(answer):\n"
    "                     plain Llama models only, on the CPU (a warning and attention only otherwise)\n",
    "e6 (convergence): cosine between local vectors (label positions) and to the global one (query)\n"
    "  --hook H           resid_post|resid_pre (default resid_post)\n",
    "e7 (abstraction): PCA and marginalisation-based demixed PCA of the local vectors of all tasks\n"
    "  factors: rule (task), label (label word), input (input text), slot (demonstration index)\n"
    "  --hook H           resid_post|resid_pre (default resid_post)\n"
    "  --components C     principal axes per factor (default 3)\n",
};

typedef struct {
    const char *exp;
    const char *model;
    const char *tasks[LL_MAX_TASKS];
    int n_tasks;
    int k, n, batch;
    uint64_t seed, task_seed;
    const char *tpl, *label_pos_s, *bos_s, *data_root, *words, *out;
    bool no_plot, full_vocab;
    /* e4 */
    const char *mode_s;
    int window, stride;
    bool control;
    bool saliency; /* e5 */
    /* e6 / e7 */
    const char *hook_s;
    int comps;
} ll_ia_opts;

/* A result table: numeric columns plus the task of each row. */
/* An extra array for the HDF5 file only (E7's axes). */
typedef struct {
    const char *name;
    int rank;
    hsize_t dims[4];
    const double *data;
} ll_extra;

typedef struct {
    int n_cols, n_rows, cap;
    const char *col[LL_MAX_COLS];
    double *v;
    int *task;
    ll_extra extra[4];
    int n_extra;
} ll_table;

static int ll_table_row(ll_table *t, int task, const double *vals) {
    if (t->n_rows == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        double *v = realloc(t->v, (size_t)cap * t->n_cols * sizeof *v);
        if (v) t->v = v;
        int *tk = realloc(t->task, (size_t)cap * sizeof *tk);
        if (tk) t->task = tk;
        if (!v || !tk) return -1;
        t->cap = cap;
    }
    memcpy(t->v + (size_t)t->n_rows * t->n_cols, vals, (size_t)t->n_cols * sizeof *vals);
    t->task[t->n_rows++] = task;
    return 0;
}

static int ll_parse_int(const char *opt, const char *s, int lo, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < lo || v > INT_MAX) return ll_cli_fail("%s: expected an integer >= %d, found '%s'", opt, lo, s);
    *out = (int)v;
    return 0;
}

static int ll_parse_u64(const char *opt, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || *s == '-') return ll_cli_fail("%s: expected a non-negative integer, found '%s'", opt, s);
    *out = v;
    return 0;
}

static int ll_ia_parse(int argc, char **argv, const char *exp, ll_ia_opts *o) {
    memset(o, 0, sizeof *o);
    o->exp = exp;
    o->k = 8, o->n = 32, o->batch = 8, o->seed = 1, o->comps = 3, o->stride = 1;
    o->label_pos_s = "first", o->bos_s = "auto", o->mode_s = "query", o->hook_s = "resid_post";
    int ei = exp[1] - '4';
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int cst;
        if (ll_cli_common_opt(argc, argv, &i, &cst)) {
            if (cst) return cst;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf(usage_fmt, exp, exp, exp_help[ei]);
            return -1;
        }
        if (!strcmp(a, "--control")) {
            o->control = true;
            continue;
        }
        if (!strcmp(a, "--saliency") && ei == 1) {
            o->saliency = true;
            continue;
        }
        if (!strcmp(a, "--full-vocab")) {
            o->full_vocab = true;
            continue;
        }
        if (!strcmp(a, "--no-plot")) {
            o->no_plot = true;
            continue;
        }
        if (a[0] == '-' && a[1] == '-') {
            /* options that take a value: common ones, then the experiment's own */
            static const char *const common[] = {"--task", "--k", "--n", "--batch", "--seed", "--task-seed", "--template",
                                                 "--label-pos", "--bos", "--data-root", "--words", "--out", NULL};
            static const char *const own[4][4] = {
                {"--mode", "--window", "--stride", NULL}, {NULL}, {"--hook", NULL}, {"--hook", "--components", NULL}};
            bool known = false;
            for (int c = 0; common[c] && !known; c++) known = !strcmp(a, common[c]);
            for (int c = 0; own[ei][c] && !known; c++) known = !strcmp(a, own[ei][c]);
            if (!known) {
                fprintf(stderr, "layerlab: error: icl %s: unknown option '%s'\n\n", exp, a);
                fprintf(stderr, usage_fmt, exp, exp, exp_help[ei]);
                return LL_EXIT_USAGE;
            }
            if (i + 1 >= argc) return ll_cli_fail("%s needs a value", a);
            const char *v = argv[++i];
            int bad = 0;
            if (!strcmp(a, "--task")) {
                if (o->n_tasks == LL_MAX_TASKS) return ll_cli_fail("--task: at most %d tasks", LL_MAX_TASKS);
                o->tasks[o->n_tasks++] = v;
            } else if (!strcmp(a, "--k")) bad = ll_parse_int(a, v, 1, &o->k);
            else if (!strcmp(a, "--n")) bad = ll_parse_int(a, v, 1, &o->n);
            else if (!strcmp(a, "--batch")) bad = ll_parse_int(a, v, 1, &o->batch);
            else if (!strcmp(a, "--seed")) bad = ll_parse_u64(a, v, &o->seed);
            else if (!strcmp(a, "--task-seed")) bad = ll_parse_u64(a, v, &o->task_seed);
            else if (!strcmp(a, "--template")) o->tpl = v;
            else if (!strcmp(a, "--label-pos")) o->label_pos_s = v;
            else if (!strcmp(a, "--bos")) o->bos_s = v;
            else if (!strcmp(a, "--data-root")) o->data_root = v;
            else if (!strcmp(a, "--words")) o->words = v;
            else if (!strcmp(a, "--out")) o->out = v;
            else if (!strcmp(a, "--mode") && ei == 0) o->mode_s = v;
            else if (!strcmp(a, "--window") && ei == 0) bad = ll_parse_int(a, v, 1, &o->window);
            else if (!strcmp(a, "--stride") && ei == 0) bad = ll_parse_int(a, v, 1, &o->stride);
            else if (!strcmp(a, "--hook") && ei >= 2) o->hook_s = v;
            else if (!strcmp(a, "--components") && ei == 3) bad = ll_parse_int(a, v, 1, &o->comps);
            else {
                fprintf(stderr, "layerlab: error: icl %s: unknown option '%s'\n\n", exp, a);
                fprintf(stderr, usage_fmt, exp, exp, exp_help[ei]);
                return LL_EXIT_USAGE;
            }
            if (bad) return bad;
            continue;
        }
        if (o->model) return ll_cli_fail("icl %s: one model only (found '%s' after '%s')", exp, a, o->model);
        o->model = a;
    }
    if (!o->model || !o->n_tasks) {
        fprintf(stderr, usage_fmt, exp, exp, exp_help[ei]);
        return LL_EXIT_USAGE;
    }
    return 0;
}

/* Everything loaded for a run: the model, its tokenizer, the tasks and their episodes. */
typedef struct {
    ll_model *m;
    ll_tokenizer *tok;
    ll_icl_task *task[LL_MAX_TASKS];
    ll_icl_exp exp[LL_MAX_TASKS]; /* E1-E3's context per task: E4-E7 use its test prompts */
    bool exp_init[LL_MAX_TASKS];
    ll_icl_episodes ep[LL_MAX_TASKS];
    char tpl_name[LL_MAX_TASKS][64];
    ll_icl_label_pos lp;
    ll_icl_bos bos;
} ll_ia_run;

static void ll_ia_free(ll_ia_run *r, int n_tasks) {
    for (int t = 0; t < n_tasks; t++) {
        ll_icl_episodes_free(&r->ep[t]);
        if (r->exp_init[t]) ll_icl_exp_free(&r->exp[t]);
        if (r->task[t]) ll_icl_task_free(r->task[t]);
    }
    if (r->tok) ll_tokenizer_free(r->tok);
    if (r->m) ll_model_free(r->m);
}

static ll_status ll_ia_load(const ll_ia_opts *o, ll_ia_run *r) {
    memset(r, 0, sizeof *r);
    LL_TRY(ll_icl_label_pos_parse(o->label_pos_s, &r->lp));
    LL_TRY(ll_icl_bos_parse(o->bos_s, &r->bos));
    LL_TRY(ll_cli_load_for_run(o->model, &r->m));
    LL_TRY(ll_cli_load_tokenizer(o->model, r->m->cfg.vocab_size, &r->tok));
    for (int t = 0; t < o->n_tasks; t++) {
        ll_icl_task_opts to = {.data_root = o->data_root, .seed = o->task_seed, .words = o->words};
        LL_TRY(ll_icl_task_load(o->tasks[t], &to, &r->task[t]));
        ll_icl_template tp;
        const char *tname = o->tpl ? o->tpl : r->task[t]->template_hint ? r->task[t]->template_hint : "default";
        LL_TRY(ll_icl_template_get(tname, &tp));
        snprintf(r->tpl_name[t], sizeof r->tpl_name[t], "%s", tp.name);
        /* The prompts E2 / E3 test on for the same seed, template and k: one context per task. */
        r->exp[t] = (ll_icl_exp){.m = r->m, .tok = r->tok, .task = r->task[t], .tp = tp, .popts = {.bos = r->bos},
                                 .full_vocab = o->full_vocab, .seed = o->seed};
        LL_TRY(ll_icl_exp_init(&r->exp[t]));
        r->exp_init[t] = true;
        ll_icl_episode_opts eo = {.task = r->task[t], .tpl = tp, .k = o->k, .n_prompts = o->n, .seed = o->seed,
                                  .label_pos = r->lp, .popts = {.bos = r->bos},
                                  .full_vocab = o->full_vocab, .exp = &r->exp[t]};
        ll_status st = ll_icl_episodes_make(r->tok, &eo, &r->ep[t]);
        if (st) return ll_err_prefix(st, "task %s: ", o->tasks[t]);
        if (r->ep[t].n_straddle)
            fprintf(stderr, "layerlab: warning: task %s: %d of %d prompts have a token straddling two segments "
                            "(positions approximate)\n", o->tasks[t], r->ep[t].n_straddle, r->ep[t].n);
    }
    return LL_OK;
}

/* ---- output ---------------------------------------------------------------------------- */

static ll_status ll_mkdir_p(const char *dir) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0777);
            *p = '/';
        }
    if (mkdir(buf, 0777) && errno != EEXIST) return ll_err(LL_ERR_IO, "cannot create directory %s: %s", dir, strerror(errno));
    return LL_OK;
}

static ll_status ll_write_csv(const char *path, const ll_table *t, const ll_ia_opts *o) {
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return ll_err(LL_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "task");
    for (int c = 0; c < t->n_cols; c++) fprintf(f, ",%s", t->col[c]);
    fputc('\n', f);
    for (int r = 0; r < t->n_rows; r++) {
        const char *tn = t->task[r] >= 0 ? o->tasks[t->task[r]] : "all";
        fprintf(f, "%s", tn);
        for (int c = 0; c < t->n_cols; c++) {
            double v = t->v[(size_t)r * t->n_cols + c];
            if (isnan(v)) fputs(",nan", f);
            else fprintf(f, ",%.8g", v);
        }
        fputc('\n', f);
    }
    if (fclose(f) || rename(tmp, path)) return ll_err(LL_ERR_IO, "cannot finish %s: %s", path, strerror(errno));
    return LL_OK;
}

static ll_status ll_write_h5(const char *path, const ll_table *t, const ll_ia_opts *o, const ll_ia_run *run,
                             const char *const *extra_k, const char *const *extra_v, int n_extra) {
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ll_h5_quiet();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return ll_h5_err(LL_ERR_IO, "creating %s", tmp);
    ll_status st = LL_OK;
    hsize_t n = (hsize_t)t->n_rows;
    double *col = malloc((n ? n : 1) * sizeof *col);
    int32_t *tk = malloc((n ? n : 1) * sizeof *tk);
    if (!col || !tk) st = ll_err(LL_ERR_NOMEM, "writing %s", path);
    for (int c = -1; !st && c < t->n_cols; c++) {
        hid_t sp = H5Screate_simple(1, &n, NULL);
        hid_t ds = H5Dcreate2(f, c < 0 ? "task" : t->col[c], c < 0 ? H5T_STD_I32LE : H5T_IEEE_F64LE, sp, H5P_DEFAULT,
                              H5P_DEFAULT, H5P_DEFAULT);
        herr_t e = -1;
        if (ds >= 0) {
            if (c < 0) {
                for (hsize_t r = 0; r < n; r++) tk[r] = t->task[r];
                e = H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tk);
            } else {
                for (hsize_t r = 0; r < n; r++) col[r] = t->v[(size_t)r * t->n_cols + c];
                e = H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, col);
            }
            H5Dclose(ds);
        }
        H5Sclose(sp);
        if (e < 0) st = ll_h5_err(LL_ERR_IO, "writing column %s of %s", c < 0 ? "task" : t->col[c], tmp);
    }
    for (int x = 0; !st && x < t->n_extra; x++) {
        const ll_extra *e = &t->extra[x];
        hid_t sp = H5Screate_simple(e->rank, e->dims, NULL);
        hid_t ds = H5Dcreate2(f, e->name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        herr_t rc = ds >= 0 ? H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, e->data) : -1;
        if (ds >= 0) H5Dclose(ds);
        H5Sclose(sp);
        if (rc < 0) st = ll_h5_err(LL_ERR_IO, "writing %s of %s", e->name, tmp);
    }
    /* every switch, so a result file says how it was made */
    if (!st) st = ll_h5_attr_str(f, "experiment", o->exp);
    if (!st) st = ll_h5_attr_str(f, "model", o->model);
    if (!st) st = ll_h5_attr_strs(f, "tasks", o->tasks, o->n_tasks);
    if (!st) {
        const char *tp[LL_MAX_TASKS];
        for (int i = 0; i < o->n_tasks; i++) tp[i] = run->tpl_name[i];
        st = ll_h5_attr_strs(f, "templates", tp, o->n_tasks);
    }
    if (!st) st = ll_h5_attr_i64(f, "k", o->k);
    if (!st) st = ll_h5_attr_i64(f, "n_prompts", o->n);
    if (!st) st = ll_h5_attr_i64(f, "seed", (int64_t)o->seed);
    if (!st) st = ll_h5_attr_i64(f, "task_seed", (int64_t)o->task_seed);
    if (!st) st = ll_h5_attr_str(f, "label_pos", o->label_pos_s);
    if (!st) st = ll_h5_attr_str(f, "bos", o->bos_s);
    if (!st) st = ll_h5_attr_str(f, "words", o->words ? o->words : "synthetic");
    if (!st) st = ll_h5_attr_i64(f, "batch", o->batch);
    if (!st) st = ll_h5_attr_str(f, "device", run->m->be->name);
    if (!st) st = ll_h5_attr_str(f, "prompts", "the test prompts of E2 / E3 for the same seed, template and k "
                                               "(ll_icl_exp_test_prompt 0..n-1)");
    for (int i = 0; !st && i < n_extra; i++) st = ll_h5_attr_str(f, extra_k[i], extra_v[i]);
    if (!st) {
        int32_t ns[LL_MAX_TASKS], nu[LL_MAX_TASKS];
        for (int i = 0; i < o->n_tasks; i++) ns[i] = run->ep[i].n_straddle, nu[i] = run->ep[i].n_unclean;
        st = ll_h5_attr_i32s(f, "n_straddle", ns, o->n_tasks);
        if (!st) st = ll_h5_attr_i32s(f, "n_answer_unclean", nu, o->n_tasks);
    }
    if (!st) st = ll_h5_attr_bool(f, "complete", true);
    free(col);
    free(tk);
    if (H5Fclose(f) < 0 && !st) st = ll_h5_err(LL_ERR_IO, "closing %s", tmp);
    if (!st && rename(tmp, path)) st = ll_err(LL_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st) remove(tmp);
    return st;
}

/* tools/plot/plot_icl_flow.py: $LAYERLAB_ROOT, else next to the binary (build/..), else ./ */
static void ll_plot(const char *exp, const char *csv, const char *png) {
    char script[4200] = "", exe[4096];
    const char *root = getenv("LAYERLAB_ROOT");
    struct stat sb;
    if (root && *root) snprintf(script, sizeof script, "%s/tools/plot/plot_icl_flow.py", root);
    if (!script[0] || stat(script, &sb)) {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = 0;
            for (int up = 0; up < 2; up++) {
                char *s = strrchr(exe, '/');
                if (s) *s = 0;
            }
            snprintf(script, sizeof script, "%s/tools/plot/plot_icl_flow.py", exe);
        }
    }
    if (!script[0] || stat(script, &sb)) snprintf(script, sizeof script, "tools/plot/plot_icl_flow.py");
    if (stat(script, &sb)) {
        fprintf(stderr, "layerlab: warning: no plot: %s not found (set LAYERLAB_ROOT)\n", script);
        return;
    }
    char cmd[12800];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' %s '%s' '%s'", script, exp, csv, png);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "layerlab: warning: no plot %s (the plot script failed; see above)\n", png);
}

static int ll_finish(const ll_ia_opts *o, const ll_ia_run *run, const ll_table *t, const char *const *xk,
                     const char *const *xv, int nx) {
    char dir[4096], csv[4200], h5[4200], png[4200];
    snprintf(dir, sizeof dir, "%s", o->out ? o->out : "");
    if (!o->out) snprintf(dir, sizeof dir, "icl-%s", o->exp);
    ll_status st = ll_mkdir_p(dir);
    snprintf(csv, sizeof csv, "%s/%s.csv", dir, o->exp);
    snprintf(h5, sizeof h5, "%s/%s.h5", dir, o->exp);
    snprintf(png, sizeof png, "%s/%s.png", dir, o->exp);
    if (!st) st = ll_write_csv(csv, t, o);
    if (!st) st = ll_write_h5(h5, t, o, run, xk, xv, nx);
    if (st) return ll_cli_status(st);
    /* the table on stdout */
    printf("%-24s", "task");
    for (int c = 0; c < t->n_cols; c++) printf(" %12s", t->col[c]);
    putchar('\n');
    for (int r = 0; r < t->n_rows; r++) {
        printf("%-24.24s", t->task[r] >= 0 ? o->tasks[t->task[r]] : "all");
        for (int c = 0; c < t->n_cols; c++) printf(" %12.4g", t->v[(size_t)r * t->n_cols + c]);
        putchar('\n');
    }
    if (!o->no_plot) ll_plot(o->exp, csv, png);
    fprintf(stderr, "layerlab: icl %s: wrote %s, %s%s%s\n", o->exp, csv, h5, o->no_plot ? "" : ", ",
            o->no_plot ? "" : png);
    return 0;
}

/* ---- E4 ----------------------------------------------------------------------------- */

typedef struct {
    const ll_icl_episodes *e;
    ll_icl_ko_mode mode;
    int lo, hi;
    bool control;
    uint64_t rng;
} ll_e4_ctx;

static int ll_e4_knock(void *user, int i, int seq, ll_knockout *ko, int32_t *idx) {
    ll_e4_ctx *c = user;
    return ll_icl_ko_build(c->e, i, seq, c->mode, c->lo, c->hi, c->control, &c->rng, ko, idx);
}

int ll_cli_icl_e4(int argc, char **argv) {
    ll_ia_opts o;
    int rc = ll_ia_parse(argc, argv, "e4", &o);
    if (rc) return rc < 0 ? 0 : rc;
    ll_icl_ko_mode mode;
    if (ll_icl_ko_mode_parse(o.mode_s, &mode)) return ll_cli_status(LL_ERR_ARG);
    ll_ia_run run;
    ll_status st = ll_ia_load(&o, &run);
    if (st) {
        ll_ia_free(&run, o.n_tasks);
        return ll_cli_status(st);
    }
    int L = run.m->cfg.n_layers;
    int w = o.window ? o.window : (L / 4 > 1 ? L / 4 : 1);
    if (w > L) w = L;
    ll_table t = {.n_cols = 9, .col = {"layer_lo", "layer_hi", "acc", "acc_drop", "logp", "logp_drop", "control_acc",
                                       "control_drop", "n"}};
    int n_ranges = (L - w) / o.stride + 1;
    ll_progress pg;
    ll_progress_init(&pg, "icl e4", "runs", (int64_t)o.n_tasks * (n_ranges + 1), 0);
    int done = 0;
    for (int ti = 0; !st && ti < o.n_tasks; ti++) {
        const ll_icl_episodes *e = &run.ep[ti];
        ll_icl_score base;
        if ((st = ll_icl_score_run(run.m, e, o.batch, NULL, NULL, &base))) break;
        double acc0 = (double)base.correct / base.n, lp0 = base.logp / base.n;
        double row0[9] = {-1, -1, acc0, 0, lp0, 0, NAN, NAN, base.n};
        if (ll_table_row(&t, ti, row0)) st = ll_err(LL_ERR_NOMEM, "e4 table");
        done++;
        ll_progress_update(&pg, done, done, 0);
        for (int lo = 0; !st && lo + w <= L; lo += o.stride) {
            ll_e4_ctx c = {.e = e, .mode = mode, .lo = lo, .hi = lo + w - 1, .rng = o.seed ^ 0x9e3779b97f4a7c15ULL};
            ll_icl_score s, sc = {0};
            if ((st = ll_icl_score_run(run.m, e, o.batch, ll_e4_knock, &c, &s))) break;
            if (o.control) {
                c.control = true;
                if ((st = ll_icl_score_run(run.m, e, o.batch, ll_e4_knock, &c, &sc))) break;
            }
            double acc = (double)s.correct / s.n, lp = s.logp / s.n;
            double cacc = o.control ? (double)sc.correct / sc.n : NAN;
            double row[9] = {lo, lo + w - 1, acc, acc0 - acc, lp, lp0 - lp, cacc, o.control ? acc0 - cacc : NAN, s.n};
            if (ll_table_row(&t, ti, row)) st = ll_err(LL_ERR_NOMEM, "e4 table");
            done++;
        ll_progress_update(&pg, done, done, 0);
        }
    }
    ll_progress_finish(&pg);
    if (!st) {
        char ws[32], ss[32];
        snprintf(ws, sizeof ws, "%d", w);
        snprintf(ss, sizeof ss, "%d", o.stride);
        const char *xk[] = {"mode", "window", "stride", "control", "metric"};
        const char *xv[] = {ll_icl_ko_mode_name(mode), ws, ss, o.control ? "random non-label positions" : "none",
                            o.full_vocab ? "argmax over the vocabulary"
                                         : "argmax over the first tokens of the task's label words"};
        rc = ll_finish(&o, &run, &t, xk, xv, 5);
    } else {
        rc = ll_cli_status(st);
    }
    free(t.v), free(t.task);
    ll_ia_free(&run, o.n_tasks);
    return rc;
}

/* ---- E5 ----------------------------------------------------------------------------- */

typedef struct {
    const ll_icl_episodes *e;
    int i0;             /* first prompt of the batch */
    ll_icl_flow *sum;   /* [L] */
} ll_e5_sink;

static ll_status ll_e5_fn(void *user, const ll_hook_rows *r) {
    ll_e5_sink *s = user;
    int i = s->i0 + r->seq;
    const ll_icl_prompt *p = &s->e->p[i];
    if (r->n_rows != p->n || r->n_keys != p->n)
        return ll_err(LL_ERR_ARG, "e5: pattern of %d x %d for a prompt of %d tokens", r->n_rows, r->n_keys, p->n);
    ll_icl_flow f;
    ll_icl_flow_prompt(r->data, r->n_heads, p->n, s->e->k, p->demo, s->e->lab + (size_t)i * s->e->k, p->query_pos, &f);
    ll_icl_flow *a = &s->sum[r->layer];
    a->in_label += f.in_label, a->label_query += f.label_query, a->wp += f.wp, a->pq += f.pq, a->ww += f.ww;
    return LL_OK;
}

int ll_cli_icl_e5(int argc, char **argv) {
    ll_ia_opts o;
    int rc = ll_ia_parse(argc, argv, "e5", &o);
    if (rc) return rc < 0 ? 0 : rc;
    ll_ia_run run;
    ll_status st = ll_ia_load(&o, &run);
    if (st) {
        ll_ia_free(&run, o.n_tasks);
        return ll_cli_status(st);
    }
    int L = run.m->cfg.n_layers;
    ll_table t = {.n_cols = 11, .col = {"layer", "in_label", "label_query", "wang_wp", "wang_pq", "wang_ww", "sal_in_label",
                                        "sal_label_query", "sal_wp", "sal_pq", "sal_ww"}};
    ll_icl_flow *sum = calloc((size_t)L, sizeof *sum), *ssum = calloc((size_t)L, sizeof *ssum);
    /* Saliency (opt-in): the CPU training graph on a host copy of the model. */
    ll_icl_saliency *sal = NULL;
    ll_model *hm = NULL;
    char sal_why[512] = "not asked for (--saliency)";
    float *I = NULL;
    if (o.saliency) {
        int max_n = 0;
        for (int ti = 0; ti < o.n_tasks; ti++)
            for (int i = 0; i < run.ep[ti].n; i++) max_n = run.ep[ti].p[i].n > max_n ? run.ep[ti].p[i].n : max_n;
        ll_model *src = run.m;
        ll_status ss = LL_OK;
        if (!run.m->be->host_memory && !(ss = ll_cli_load(o.model, &hm))) src = hm;
        if (!ss) ss = ll_icl_saliency_new(&sal, src, max_n);
        if (!ss && !(I = malloc((size_t)L * max_n * max_n * sizeof *I))) ss = ll_err(LL_ERR_NOMEM, "saliency matrices");
        if (ss) {
            snprintf(sal_why, sizeof sal_why, "not computed: %s", ll_last_error());
            fprintf(stderr, "layerlab: warning: icl e5: saliency %s\n", sal_why);
            ll_icl_saliency_free(sal);
            sal = NULL;
        } else {
            snprintf(sal_why, sizeof sal_why, "|sum_h A_h * dL/dA_h|, L = -log p(answer token) at the query, CPU "
                                              "training graph (checked against the forward pass)");
        }
    }
    ll_hooks *h = NULL;
    if (!sum || !ssum || (st = ll_hooks_new(&h, L))) st = st ? st : ll_err(LL_ERR_NOMEM, "e5");
    ll_progress pg;
    ll_progress_init(&pg, "icl e5", "prompts", (int64_t)o.n_tasks * o.n, 0);
    int done = 0;
    for (int ti = 0; !st && ti < o.n_tasks; ti++) {
        const ll_icl_episodes *e = &run.ep[ti];
        memset(sum, 0, (size_t)L * sizeof *sum);
        ll_e5_sink sink = {.e = e, .sum = sum};
        for (int i0 = 0; !st && i0 < e->n; i0 += o.batch) {
            int nb = e->n - i0 < o.batch ? e->n - i0 : o.batch;
            size_t T = 0;
            for (int s = 0; s < nb; s++) T += (size_t)e->p[i0 + s].n;
            int32_t *ids = malloc(T * sizeof *ids);
            int64_t *off = malloc((size_t)(nb + 1) * sizeof *off);
            if (!ids || !off) {
                free(ids), free(off);
                st = ll_err(LL_ERR_NOMEM, "e5: batch");
                break;
            }
            off[0] = 0;
            for (int s = 0; s < nb; s++) {
                memcpy(ids + off[s], e->p[i0 + s].ids, (size_t)e->p[i0 + s].n * sizeof *ids);
                off[s + 1] = off[s] + e->p[i0 + s].n;
            }
            sink.i0 = i0;
            ll_hooks_clear(h);
            ll_record rec = {.point = LL_HOOK_ATTN_PATTERN, .layer_lo = 0, .layer_hi = L - 1, .fn = ll_e5_fn,
                             .user = &sink};
            st = ll_hooks_add_record(h, &rec);
            ll_batch b = {.n_seq = nb, .seq_off = off, .tokens = ids};
            ll_forward_opts fo = {.hooks = h};
            if (!st) st = ll_forward(run.m, &b, &fo);
            free(ids), free(off);
            done += nb;
            ll_progress_update(&pg, done, done, 0);
        }
        memset(ssum, 0, (size_t)L * sizeof *ssum);
        for (int i = 0; !st && sal && i < e->n; i++) {
            const ll_icl_prompt *p = &e->p[i];
            if ((st = ll_icl_saliency_prompt(sal, p->ids, p->n, p->answer[0], I, NULL))) break;
            for (int l = 0; l < L; l++) {
                ll_icl_flow f;
                ll_icl_flow_prompt(I + (size_t)l * p->n * p->n, 1, p->n, e->k, p->demo, e->lab + (size_t)i * e->k,
                                   p->query_pos, &f);
                ll_icl_flow *a = &ssum[l];
                a->in_label += f.in_label, a->label_query += f.label_query, a->wp += f.wp, a->pq += f.pq, a->ww += f.ww;
            }
        }
        for (int l = 0; !st && l < L; l++) {
            double nn = sal ? e->n : NAN;
            double row[11] = {l, sum[l].in_label / e->n, sum[l].label_query / e->n, sum[l].wp / e->n, sum[l].pq / e->n,
                              sum[l].ww / e->n, ssum[l].in_label / nn, ssum[l].label_query / nn, ssum[l].wp / nn,
                              ssum[l].pq / nn, ssum[l].ww / nn};
            if (ll_table_row(&t, ti, row)) st = ll_err(LL_ERR_NOMEM, "e5 table");
        }
    }
    ll_progress_finish(&pg);
    if (!st) {
        const char *xk[] = {"measure", "saliency"};
        const char *xv[] = {"attention probabilities averaged over heads and prompts", sal_why};
        rc = ll_finish(&o, &run, &t, xk, xv, 2);
    } else {
        rc = ll_cli_status(st);
    }
    ll_hooks_free(h);
    ll_icl_saliency_free(sal);
    if (hm) ll_model_free(hm);
    free(I), free(ssum);
    free(sum);
    free(t.v), free(t.task);
    ll_ia_free(&run, o.n_tasks);
    return rc;
}

/* ---- E6 / E7 ------------------------------------------------------------------------ */

static ll_status ll_hook_of(const char *s, ll_hook_point *p) {
    if (!strcmp(s, "resid_post")) *p = LL_HOOK_RESID_POST;
    else if (!strcmp(s, "resid_pre")) *p = LL_HOOK_RESID_PRE;
    else return ll_err(LL_ERR_ARG, "--hook: expected resid_post or resid_pre, found '%s'", s);
    return LL_OK;
}

int ll_cli_icl_e6(int argc, char **argv) {
    ll_ia_opts o;
    int rc = ll_ia_parse(argc, argv, "e6", &o);
    if (rc) return rc < 0 ? 0 : rc;
    ll_hook_point hp = LL_HOOK_RESID_POST;
    if (ll_hook_of(o.hook_s, &hp)) return ll_cli_status(LL_ERR_ARG);
    ll_ia_run run;
    ll_status st = ll_ia_load(&o, &run);
    if (st) {
        ll_ia_free(&run, o.n_tasks);
        return ll_cli_status(st);
    }
    int L = run.m->cfg.n_layers, d = run.m->cfg.d_model, k = o.k;
    ll_table t = {.n_cols = 5, .col = {"layer", "local_local", "local_global", "first_global", "last_global"}};
    float *vec = malloc((size_t)L * o.n * (k + 1) * d * sizeof *vec);
    double *per = malloc((size_t)k * sizeof *per);
    if (!vec || !per) st = ll_err(LL_ERR_NOMEM, "e6: no memory for %d x %d x %d vectors", L, o.n, k + 1);
    for (int ti = 0; !st && ti < o.n_tasks; ti++) {
        const ll_icl_episodes *e = &run.ep[ti];
        fprintf(stderr, "layerlab: icl e6: task %s: %d prompts\n", o.tasks[ti], e->n);
        if ((st = ll_icl_vectors(run.m, e, o.batch, hp, vec))) break;
        for (int l = 0; l < L; l++) {
            double s_ll = 0, s_lg = 0, s_f = 0, s_la = 0;
            int n_ll = 0, n_lg = 0;
            for (int i = 0; i < e->n; i++) {
                const float *loc = vec + ((size_t)l * e->n + i) * (k + 1) * d;
                double ll, lg;
                ll_icl_cos_summary(loc, k, loc + (size_t)k * d, d, &ll, &lg, per);
                if (isfinite(ll)) s_ll += ll, n_ll++;
                if (isfinite(lg)) s_lg += lg, s_f += per[0], s_la += per[k - 1], n_lg++;
            }
            double row[5] = {l, n_ll ? s_ll / n_ll : NAN, n_lg ? s_lg / n_lg : NAN, n_lg ? s_f / n_lg : NAN,
                             n_lg ? s_la / n_lg : NAN};
            if (ll_table_row(&t, ti, row)) st = ll_err(LL_ERR_NOMEM, "e6 table");
        }
    }
    if (!st) {
        const char *xk[] = {"hook", "local", "global"};
        const char *xv[] = {o.hook_s, "residual at each demonstration's label position (label_pos)",
                            "residual at the query position (last prompt token), same prompt"};
        rc = ll_finish(&o, &run, &t, xk, xv, 3);
    } else {
        rc = ll_cli_status(st);
    }
    free(vec), free(per);
    free(t.v), free(t.task);
    ll_ia_free(&run, o.n_tasks);
    return rc;
}

/* Index of s in names[0..*n), appended when new. */
static int ll_intern(char **names, int *n, int cap, const char *s) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(names[i], s)) return i;
    if (*n == cap) return cap - 1;
    names[*n] = strdup(s);
    return (*n)++;
}

int ll_cli_icl_e7(int argc, char **argv) {
    ll_ia_opts o;
    int rc = ll_ia_parse(argc, argv, "e7", &o);
    if (rc) return rc < 0 ? 0 : rc;
    ll_hook_point hp = LL_HOOK_RESID_POST;
    if (ll_hook_of(o.hook_s, &hp)) return ll_cli_status(LL_ERR_ARG);
    ll_ia_run run;
    ll_status st = ll_ia_load(&o, &run);
    if (st) {
        ll_ia_free(&run, o.n_tasks);
        return ll_cli_status(st);
    }
    int L = run.m->cfg.n_layers, d = run.m->cfg.d_model, k = o.k, C = o.comps;
    int rows = o.n_tasks * o.n * k; /* one local vector per task x prompt x demonstration */
    enum { F_RULE, F_LABEL, F_INPUT, F_SLOT, NF };
    static const char *fname[NF] = {"rule", "label", "input", "slot"};
    float *vec = malloc((size_t)L * o.n * (k + 1) * d * sizeof *vec);
    float *X = malloc((size_t)L * rows * d * sizeof *X);
    int *lev = malloc((size_t)rows * NF * sizeof *lev);
    int n_lev[NF] = {o.n_tasks, 0, 0, k};
    char **lab_names = calloc((size_t)rows, sizeof *lab_names), **in_names = calloc((size_t)rows, sizeof *in_names);
    if (!vec || !X || !lev || !lab_names || !in_names) st = ll_err(LL_ERR_NOMEM, "e7: no memory for %d vectors", rows);
    int r = 0;
    for (int ti = 0; !st && ti < o.n_tasks; ti++) {
        const ll_icl_episodes *e = &run.ep[ti];
        fprintf(stderr, "layerlab: icl e7: task %s: %d prompts\n", o.tasks[ti], e->n);
        if ((st = ll_icl_vectors(run.m, e, o.batch, hp, vec))) break;
        for (int i = 0; i < e->n; i++)
            for (int j = 0; j < k; j++, r++) {
                int item = e->demo_item[(size_t)i * k + j];
                lev[r * NF + F_RULE] = ti;
                lev[r * NF + F_LABEL] = ll_intern(lab_names, &n_lev[F_LABEL], rows, run.task[ti]->output[item]);
                lev[r * NF + F_INPUT] = ll_intern(in_names, &n_lev[F_INPUT], rows, run.task[ti]->input[item]);
                lev[r * NF + F_SLOT] = j;
                for (int l = 0; l < L; l++)
                    memcpy(X + ((size_t)l * rows + r) * d, vec + (((size_t)l * e->n + i) * (k + 1) + j) * d,
                           (size_t)d * sizeof *X);
            }
    }
    if (!st && n_lev[F_INPUT] > rows / 2)
        fprintf(stderr, "layerlab: warning: icl e7: %d distinct inputs among %d vectors: the input factor is nearly "
                        "one level per vector and so explains almost everything (use tasks over the same inputs, e.g. "
                        "gen: rules with one --task-seed)\n", n_lev[F_INPUT], rows);
    if (!st && C > d) C = d;
    if (!st && C > rows) C = rows;
    /* columns: layer, total, pc1..pcC (fraction of variance), then per factor var fraction and
     * the fraction its first axis explains, then rest */
    ll_table t = {0};
    static char cn[LL_MAX_COLS][32];
    int nc = 0;
    t.col[nc++] = "layer";
    t.col[nc++] = "total_var";
    int cmax = C < 6 ? C : 6;
    for (int c = 0; c < cmax; c++) snprintf(cn[nc], 32, "pc%d", c + 1), t.col[nc] = cn[nc], nc++;
    for (int f = 0; f < NF; f++) snprintf(cn[nc], 32, "var_%s", fname[f]), t.col[nc] = cn[nc], nc++;
    for (int f = 0; f < NF; f++) snprintf(cn[nc], 32, "ax1_%s", fname[f]), t.col[nc] = cn[nc], nc++;
    t.col[nc++] = "rest";
    t.n_cols = nc;
    double *var = malloc((size_t)(C ? C : 1) * sizeof *var), *row = malloc((size_t)nc * sizeof *row);
    /* axes for the HDF5 file: pca_axes [L][C][d], dpca_axes [L][factor][C][d], dpca_axis_var [L][factor][C] */
    double *pax = malloc((size_t)L * C * d * sizeof *pax), *dax = malloc((size_t)L * NF * C * d * sizeof *dax);
    double *dav = malloc((size_t)L * NF * C * sizeof *dav);
    if (!st && (!var || !row || !pax || !dax || !dav)) st = ll_err(LL_ERR_NOMEM, "e7: axes of %d layers", L);
    for (int l = 0; !st && l < L; l++) {
        const float *Xl = X + (size_t)l * rows * d;
        double tot;
        if ((st = ll_icl_pca(Xl, rows, d, C, pax + (size_t)l * C * d, var, &tot))) break;
        ll_icl_dpca dp;
        if ((st = ll_icl_dpca_fit(Xl, rows, d, lev, NF, n_lev, C, &dp))) break;
        int c = 0;
        row[c++] = l;
        row[c++] = tot;
        for (int a = 0; a < cmax; a++) row[c++] = tot > 0 ? var[a] / tot : NAN;
        for (int f = 0; f < NF; f++) row[c++] = dp.total > 0 ? dp.var[f] / dp.total : NAN;
        for (int f = 0; f < NF; f++) row[c++] = dp.explained[(size_t)f * C];
        row[c++] = dp.total > 0 ? dp.rest / dp.total : NAN;
        memcpy(dax + (size_t)l * NF * C * d, dp.axes, (size_t)NF * C * d * sizeof *dax);
        memcpy(dav + (size_t)l * NF * C, dp.axis_var, (size_t)NF * C * sizeof *dav);
        ll_icl_dpca_free(&dp);
        if (ll_table_row(&t, -1, row)) st = ll_err(LL_ERR_NOMEM, "e7 table");
    }
    if (!st) {
        char nl[128];
        snprintf(nl, sizeof nl, "rule %d, label %d, input %d, slot %d", n_lev[0], n_lev[1], n_lev[2], n_lev[3]);
        t.extra[0] = (ll_extra){"pca_axes", 3, {(hsize_t)L, (hsize_t)C, (hsize_t)d}, pax};
        t.extra[1] = (ll_extra){"dpca_axes", 4, {(hsize_t)L, NF, (hsize_t)C, (hsize_t)d}, dax};
        t.extra[2] = (ll_extra){"dpca_axis_var", 3, {(hsize_t)L, NF, (hsize_t)C}, dav};
        t.n_extra = 3;
        const char *xk[] = {"hook", "factor_levels", "pca", "dpca"};
        const char *xv[] = {o.hook_s, nl, "covariance (divisor n-1) of all local vectors; pcN = variance fraction",
                            "factors rule, label, input, slot (dpca_axes order); marginalisation per factor (divisor n): var_F = variance of F-marginalised means / "
                            "total; ax1_F = fraction of the total variance along F's first marginal axis; rest = "
                            "1 - sum (interactions and noise when the design is balanced)"};
        rc = ll_finish(&o, &run, &t, xk, xv, 4);
    } else {
        rc = ll_cli_status(st);
    }
    for (int i = 0; i < rows && lab_names; i++) free(lab_names[i]);
    for (int i = 0; i < rows && in_names; i++) free(in_names[i]);
    free(lab_names), free(in_names), free(var), free(row), free(pax), free(dax), free(dav);
    free(vec), free(X), free(lev);
    free(t.v), free(t.task);
    ll_ia_free(&run, o.n_tasks);
    return rc;
}
