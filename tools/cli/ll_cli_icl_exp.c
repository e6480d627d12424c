/* layerlab icl e1 | e2 | e3 MODEL --task NAME|FILE [options]: the ICL curve, the global
 * task vector and local task vectors (host/icl/ll_icl_exp.h, docs/icl.md). Each writes
 * OUT/eN.h5 (every switch as an attribute), OUT/eN.csv and OUT/eN.png, and prints a table.
 * e1 takes several tasks (--task A --task B or --task A,B) and writes one table with a
 * task column, as e4-e7 do; e2 and e3 take one and refuse more. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "icl/ll_icl_exp.h"
#include "icl/ll_icl_out.h"
#include "ll_cli.h"

#define LL_ICL_MAX_TASKS 16

static const char usage_fmt[] =
    "usage: layerlab icl %s MODEL --task NAME|FILE [options]\n"
    "  --task T          a JSON file, a bundled data set (antonym, country_capital, sst2, trec, agnews, cb, rte, ...),\n"
    "                    gen:RULE[:ARG] (length, first-letter, contains, parity, threshold) or toy:TABLE;\n"
    "                    e1: several (--task A --task B or --task A,B; one CSV / HDF5 with a task column);\n"
    "                    e2, e3: one task per run\n"
    "  --template T      default | hendel | todd | wang | wang-trec | wang-agnews | nli | auto (the task's own;\n"
    "                    the default) | a custom string with {input} and {label} (\\n, \\t are escapes)\n"
    "  --k K             e1: list of demonstration counts, \"0,1,2,4\" or \"0..16\" (default 0..16);\n"
    "                    e2: demonstrations of the source prompts (default 5); e3: demonstrations (default 8)\n"
    "  --n N             prompts per point (e1, default 50) / test prompts (e2, e3, default 50)\n"
    "  --n-src N         source prompts averaged into the vectors (e2 mean, e3 slot/class; default 50)\n"
    "  --n-dev N         e2, e3: dev prompts (another stream) to choose the best layer on (default 0: none)\n"
    "  --seed S          episodes and generated tasks (default 1)\n"
    "  --out DIR         output directory (default icl-out)\n"
    "  --bos auto|yes|no BOS token (auto: as the tokenizer does)\n"
    "  --full-vocab      answer = argmax over the whole vocabulary (default: over the task's label words)\n"
    "  --dummy filler|random   dummy demonstrations: filler words, or random task tokens (default filler)\n"
    "  --op replace|add  patch operation (default replace)\n"
    "  --point P         hook point patched and recorded (default resid_pre: hidden_states[layer])\n"
    "  --vector mean|per-prompt|dataset   e2: the task vector (default mean over --n-src prompts;\n"
    "                    per-prompt: each test prompt's demonstrations with 2 dummy queries, Hendel et al.)\n"
    "  --base zero|dummy e2: the prompt patched (default zero: the query alone)\n"
    "  --local per-prompt|slot|class   e3: the local vectors (default per-prompt)\n"
    "  --label-pos first|last|separator   e3: the label position (default first)\n"
    "  --per-slot        e3: also patch each demonstration's label position alone (accuracy per layer and slot)\n"
    "  --self-check      patch clean states into the clean prompt first and require unchanged logits\n"
    "  --naive           one forward per patched variant (no batching, no prefix reuse)\n"
    "  --no-resume       every patched variant runs every block (shared prefix from the KV cache only)\n"
    "  --no-prefix-cache batch variants but recompute the shared prefix\n"
    "  --max-batch N     patched variants per forward (default 64)\n"
    "  --data-root DIR   where bundled data sets live (default ../shared/assets)\n"
    "  --split S         classic data sets: train | dev | val | test\n"
    "  --words synthetic|toy   gen: tasks' input words\n"
    "  --labels W0,W1    gen: tasks' label words (default drawn from a pool by the seed)\n"
    "  --n-gen N         gen: tasks' items (default 512)\n"
    "  --max-items N     keep the first N items of the task\n"
    "  --threads N, --device cuda|cpu, --tokenizer FILE\n";

typedef struct {
    const char *exp, *model, *template_s, *k_s, *out, *bos, *dummy, *op, *point, *vec, *base, *local, *lpos;
    int n, n_src, n_dev;
    long long seed;
    bool full_vocab, self_check, naive, no_prefix, no_resume, per_slot, quiet;
    int max_batch;
    ll_icl_task_opts topts;
    char *tasks[LL_ICL_MAX_TASKS]; /* owned copies: --task values split at commas */
    int n_tasks;
} ll_icl_args;

/* --task A,B adds A and B; repeated --task adds to the list. */
static int ll_add_tasks(ll_icl_args *a, const char *v) {
    const char *p = v;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == 0) return ll_cli_fail("icl %s: --task: empty task name in '%s'", a->exp, v), 0;
        if (a->n_tasks == LL_ICL_MAX_TASKS) return ll_cli_fail("icl %s: --task: at most %d tasks", a->exp, LL_ICL_MAX_TASKS), 0;
        if (!(a->tasks[a->n_tasks] = strndup(p, n))) return ll_cli_fail("no memory"), 0;
        a->n_tasks++;
        if (!c) return 1;
        p = c + 1;
    }
}

static char *ll_unescape(const char *s) {
    char *o = malloc(strlen(s) + 1), *w = o;
    if (!o) return NULL;
    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            *w++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
        } else *w++ = *s;
    }
    *w = 0;
    return o;
}

static int ll_int_arg(const char *opt, const char *v, int lo, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > INT_MAX) {
        ll_cli_fail("%s: expected an integer >= %d, found '%s'", opt, lo, v);
        return 0;
    }
    *out = (int)x;
    return 1;
}

static int ll_parse(int argc, char **argv, ll_icl_args *a) {
    const char *usage = NULL;
    (void)usage;
    for (int i = 1; i < argc; i++) {
        int st;
        if (ll_cli_common_opt(argc, argv, &i, &st)) {
            if (st) return st;
            continue;
        }
        const char *o = argv[i];
        bool has = i + 1 < argc;
#define STR(flag, field)                                                                                               \
    if (!strcmp(o, flag) && has) {                                                                                     \
        a->field = argv[++i];                                                                                          \
        continue;                                                                                                      \
    }
#define INT(flag, field, lo)                                                                                           \
    if (!strcmp(o, flag) && has) {                                                                                     \
        if (!ll_int_arg(flag, argv[++i], lo, &a->field)) return LL_EXIT_USAGE;                                         \
        continue;                                                                                                      \
    }
        if (!strcmp(o, "--task") && has) {
            if (!ll_add_tasks(a, argv[++i])) return LL_EXIT_USAGE;
            continue;
        }
        STR("--template", template_s) STR("--k", k_s) STR("--out", out) STR("--bos", bos)
        STR("--dummy", dummy) STR("--op", op) STR("--point", point) STR("--vector", vec) STR("--base", base)
        STR("--local", local) STR("--label-pos", lpos) STR("--data-root", topts.data_root) STR("--split", topts.split)
        STR("--words", topts.words) STR("--labels", topts.labels)
        INT("--n", n, 1) INT("--n-src", n_src, 1) INT("--n-dev", n_dev, 0) INT("--max-batch", max_batch, 1) INT("--n-gen", topts.n_gen, 2)
        INT("--max-items", topts.max_items, 2)
        if (!strcmp(o, "--seed") && has) {
            char *end;
            a->seed = strtoll(argv[++i], &end, 10);
            if (*end || a->seed < 0) return ll_cli_fail("--seed: expected a non-negative integer, found '%s'", argv[i]), LL_EXIT_USAGE;
            continue;
        }
        if (!strcmp(o, "--full-vocab")) a->full_vocab = true;
        else if (!strcmp(o, "--self-check")) a->self_check = true;
        else if (!strcmp(o, "--naive")) a->naive = true;
        else if (!strcmp(o, "--no-prefix-cache")) a->no_prefix = true;
        else if (!strcmp(o, "--no-resume")) a->no_resume = true;
        else if (!strcmp(o, "--per-slot")) a->per_slot = true;
        else if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            printf(usage_fmt, a->exp);
            return -1;
        } else if (o[0] == '-') {
            ll_cli_fail("icl %s: unknown option %s (or missing value)", a->exp, o);
            return LL_EXIT_USAGE;
        } else if (!a->model) a->model = o;
        else {
            ll_cli_fail("icl %s: unexpected argument '%s'", a->exp, o);
            return LL_EXIT_USAGE;
        }
#undef STR
#undef INT
    }
    if (!a->model || !a->n_tasks) {
        fprintf(stderr, usage_fmt, a->exp);
        return LL_EXIT_USAGE;
    }
    if (a->n_tasks > 1 && strcmp(a->exp, "e1")) {
        /* Silently keeping one of them would mislabel the results. */
        ll_cli_fail("icl %s: one --task per run, given %d (%s, %s%s): run %s once per task; e1 and e4-e7 take several",
                    a->exp, a->n_tasks, a->tasks[0], a->tasks[1], a->n_tasks > 2 ? ", ..." : "", a->exp);
        return LL_EXIT_USAGE;
    }
    return 0;
}

/* "0,1,2" or "0..16" */
static int ll_parse_ks(const char *s, int **out, int *n) {
    int cap = 64, *k = malloc(cap * sizeof *k);
    *n = 0;
    const char *dots = strstr(s, "..");
    if (dots) {
        char *end;
        long a = strtol(s, &end, 10), b = strtol(dots + 2, &end, 10);
        if (end == dots + 2 || *end || a < 0 || b < a || b - a >= cap) {
            free(k);
            return ll_cli_fail("--k: expected A..B with 0 <= A <= B < A+64, found '%s'", s), 0;
        }
        for (long x = a; x <= b; x++) k[(*n)++] = (int)x;
    } else {
        const char *p = s;
        while (*p && *n < cap) {
            char *end;
            long x = strtol(p, &end, 10);
            if (end == p || x < 0 || x > 4096 || (*end && *end != ',')) {
                free(k);
                return ll_cli_fail("--k: expected numbers separated by commas, found '%s'", s), 0;
            }
            k[(*n)++] = (int)x;
            p = *end ? end + 1 : end;
        }
    }
    *out = k;
    return 1;
}

/* tools/plot/plot_icl.py next to the executable's repository (build/layerlab -> ..), else
 * relative to the working directory. */
static void ll_plot(const char *exp, const char *csv, const char *png) {
    char exe[4096], script[4200];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    script[0] = 0;
    if (n > 0) {
        exe[n] = 0;
        char *s = strrchr(exe, '/');
        if (s) *s = 0;
        snprintf(script, sizeof script, "%s/../tools/plot/plot_icl.py", exe);
        if (access(script, R_OK)) script[0] = 0;
    }
    if (!script[0]) snprintf(script, sizeof script, "tools/plot/plot_icl.py");
    if (access(script, R_OK)) {
        fprintf(stderr, "layerlab: warning: %s not found, no plot\n", script);
        return;
    }
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' %s '%s' '%s'", script, exp, csv, png);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "layerlab: warning: plotting failed (is python3-matplotlib installed?); %s not written\n", png);
}

typedef struct {
    ll_icl_args *a;
    ll_icl_exp *e;
    const char *template_name;
} ll_run_info;

/* The one task's attributes (every run with one task). */
static ll_status ll_task_attrs(ll_icl_out *o, const ll_run_info *ri) {
    const ll_icl_exp *e = ri->e;
    LL_TRY(ll_icl_out_attr_str(o, "task", e->task->name));
    LL_TRY(ll_icl_out_attr_str(o, "task_source", e->task->source));
    LL_TRY(ll_icl_out_attr_str(o, "task_rule", e->task->rule ? e->task->rule : ""));
    LL_TRY(ll_icl_out_attr_i64(o, "task_items", e->task->n));
    LL_TRY(ll_icl_out_attr_i64(o, "task_classes", e->task->n_classes));
    LL_TRY(ll_icl_out_attr_str(o, "template", ri->template_name));
    LL_TRY(ll_icl_out_attr_str(o, "template_demo", e->tp.demo));
    LL_TRY(ll_icl_out_attr_i64(o, "n_label_tokens", e->n_cand));
    LL_TRY(ll_icl_out_attr_f64(o, "self_check_max_rel_diff", e->self_check_diff));
    LL_TRY(ll_icl_out_attr_i64(o, "straddling_prompts", e->n_straddle_prompts));
    return LL_OK;
}

/* Switches shared by every task of a run (e: any task's context). */
static ll_status ll_shared_attrs(ll_icl_out *o, const ll_run_info *ri) {
    const ll_icl_args *a = ri->a;
    const ll_icl_exp *e = ri->e;
    LL_TRY(ll_icl_out_attr_str(o, "experiment", a->exp));
    LL_TRY(ll_icl_out_attr_str(o, "model", a->model));
    LL_TRY(ll_icl_out_attr_str(o, "bos", ll_icl_bos_name(e->popts.bos)));
    LL_TRY(ll_icl_out_attr_i64(o, "seed", (int64_t)e->seed));
    LL_TRY(ll_icl_out_attr_str(o, "answer", e->full_vocab ? "full-vocab" : "label-words"));
    LL_TRY(ll_icl_out_attr_str(o, "dummy", ll_icl_dummy_name(e->dummy)));
    LL_TRY(ll_icl_out_attr_str(o, "point", ll_hook_name(e->sweep.point)));
    LL_TRY(ll_icl_out_attr_str(o, "sweep", e->sweep.naive             ? "naive"
                                        : e->sweep.no_prefix_cache ? "batched"
                                        : e->sweep.no_resume       ? "batched+prefix-cache"
                                                                   : "resume"));
    LL_TRY(ll_icl_out_attr_i64(o, "max_batch", e->sweep.max_batch > 0 ? e->sweep.max_batch : 64));
    LL_TRY(ll_icl_out_attr_str(o, "split", a->topts.split ? a->topts.split : "train"));
    LL_TRY(ll_icl_out_attr_str(o, "words", a->topts.words ? a->topts.words : "synthetic"));
    return LL_OK;
}

static ll_status ll_common_attrs(ll_icl_out *o, const ll_run_info *ri) {
    LL_TRY(ll_shared_attrs(o, ri));
    return ll_task_attrs(o, ri);
}

static FILE *ll_csv_open(const char *path, char *tmp, size_t n) {
    snprintf(tmp, n, "%s.tmp", path);
    return fopen(tmp, "w");
}

static ll_status ll_csv_close(FILE *f, const char *tmp, const char *path) {
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return ll_err(LL_ERR_IO, "%s: cannot write", path);
    }
    return LL_OK;
}

static int ll_icl_main(int argc, char **argv, const char *exp) {
    ll_icl_args a = {.exp = exp, .seed = 1, .out = "icl-out"};
    int pr = ll_parse(argc, argv, &a);
    if (pr) {
        for (int t = 0; t < a.n_tasks; t++) free(a.tasks[t]);
        return pr < 0 ? 0 : pr;
    }
    ll_icl_exp e = {0}; /* the switches every task's context starts from */
    ll_icl_exp ex[LL_ICL_MAX_TASKS] = {0};
    ll_icl_task *tk[LL_ICL_MAX_TASKS] = {0};
    char *custom[LL_ICL_MAX_TASKS] = {0};
    const char *tnames[LL_ICL_MAX_TASKS] = {0};
    int n_init = 0;
    ll_model *m = NULL;
    ll_tokenizer *tok = NULL;
    int *ks = NULL, n_k = 0;
    ll_status s = LL_OK;
    int rc = 0;
    a.topts.seed = (uint64_t)a.seed;
    e.seed = (uint64_t)a.seed;
    e.full_vocab = a.full_vocab;
    e.self_check = a.self_check;
    e.sweep = (ll_icl_sweep_opts){.max_batch = a.max_batch, .naive = a.naive, .no_prefix_cache = a.no_prefix,
                                  .no_resume = a.no_resume};
    if (a.bos && (s = ll_icl_bos_parse(a.bos, &e.popts.bos))) goto fail;
    if (a.dummy && (s = ll_icl_dummy_parse(a.dummy, &e.dummy))) goto fail;
    ll_patch_op op = LL_PATCH_REPLACE;
    if (a.op) {
        if (!strcmp(a.op, "add")) op = LL_PATCH_ADD;
        else if (strcmp(a.op, "replace")) {
            s = ll_err(LL_ERR_ARG, "--op \"%s\": expected replace or add", a.op);
            goto fail;
        }
    }
    if (a.point) {
        int lay;
        if ((s = ll_hook_parse(a.point, &e.sweep.point, &lay))) goto fail;
    }
    int kk = 0;
    if ((!strcmp(exp, "e1") && !ll_parse_ks(a.k_s ? a.k_s : "0..16", &ks, &n_k)) ||
        (strcmp(exp, "e1") && a.k_s && !ll_int_arg("--k", a.k_s, 1, &kk))) {
        rc = LL_EXIT_USAGE;
        goto done;
    }

    /* Every task and its template first (a bad one fails before the model loads). */
    for (int t = 0; t < a.n_tasks; t++) {
        if ((s = ll_icl_task_load(a.tasks[t], &a.topts, &tk[t]))) goto fail;
        tnames[t] = a.template_s && strcmp(a.template_s, "auto") ? a.template_s : tk[t]->template_hint;
        if (!(custom[t] = ll_unescape(tnames[t]))) {
            s = ll_err(LL_ERR_NOMEM, "no memory");
            goto fail;
        }
        ex[t] = e;
        if ((s = ll_icl_template_get(custom[t], &ex[t].tp))) goto fail;
    }
    if ((s = ll_cli_load_for_run(a.model, &m))) goto fail;
    if ((s = ll_cli_load_tokenizer(a.model, m->cfg.vocab_size, &tok))) goto fail;
    for (int t = 0; t < a.n_tasks; t++) {
        ex[t].m = m;
        ex[t].tok = tok;
        ex[t].task = tk[t];
        if ((s = ll_icl_exp_init(&ex[t]))) goto fail;
        n_init = t + 1;
        if (t > 0)
            fprintf(stderr, "layerlab icl %s: task %s (%d items, %d label words%s%s), template %s\n", exp, tk[t]->name,
                    tk[t]->n, tk[t]->n_classes, tk[t]->rule ? "; rule: " : "", tk[t]->rule ? tk[t]->rule : "",
                    ex[t].tp.name);
    }
    ll_icl_exp *ep = &ex[0];
    fprintf(stderr, "layerlab icl %s: %s, task %s (%d items, %d label words%s%s), template %s\n", exp, a.model,
            tk[0]->name, tk[0]->n, tk[0]->n_classes, tk[0]->rule ? "; rule: " : "", tk[0]->rule ? tk[0]->rule : "",
            ep->tp.name);

    /* mkdir -p */
    char dirb[4096];
    snprintf(dirb, sizeof dirb, "%s", a.out);
    for (char *c = dirb + 1; *c; c++)
        if (*c == '/') {
            *c = 0;
            mkdir(dirb, 0777);
            *c = '/';
        }
    if (mkdir(a.out, 0777) && errno != EEXIST) {
        s = ll_err(LL_ERR_IO, "%s: cannot create the output directory: %s", a.out, strerror(errno));
        goto fail;
    }
    char h5[4096], csv[4096], png[4096], tmp[8400];
    snprintf(h5, sizeof h5, "%s/%s.h5", a.out, exp);
    snprintf(csv, sizeof csv, "%s/%s.csv", a.out, exp);
    snprintf(png, sizeof png, "%s/%s.png", a.out, exp);
    ll_progress prog;
    ep->progress = &prog;
    ll_run_info ri = {&a, ep, tnames[0]};
    ll_icl_out *o = NULL;

    if (!strcmp(exp, "e1")) {
        /* Every task in turn; one table: rows task x k, the task column first (as e4-e7). */
        int n = a.n ? a.n : 50, rows = 0, cap = a.n_tasks * n_k;
        int *r_task = malloc((size_t)cap * sizeof(int)), *r_k = malloc((size_t)cap * sizeof(int));
        int *r_n = malloc((size_t)cap * sizeof(int));
        double *r_acc = malloc((size_t)cap * sizeof(double));
        if (!r_task || !r_k || !r_n || !r_acc) s = ll_err(LL_ERR_NOMEM, "icl e1: no memory");
        double self_check = -1;
        for (int t = 0; t < a.n_tasks && !s; t++) {
            ll_icl_e1_result r;
            ex[t].progress = &prog;
            ll_progress_init(&prog, "icl e1", "k", n_k, 0);
            if ((s = ll_icl_e1(&ex[t], ks, n_k, n, &r))) break;
            ll_progress_finish(&prog);
            if (a.n_tasks > 1) printf("task %s\n", a.tasks[t]);
            printf("%-6s %-9s %s\n", "k", "accuracy", "prompts");
            for (int i = 0; i < r.n_k && rows < cap; i++, rows++) {
                printf("%-6d %-9.3f %d\n", r.k[i], r.acc[i], r.n[i]);
                r_task[rows] = t, r_k[rows] = r.k[i], r_acc[rows] = r.acc[i], r_n[rows] = r.n[i];
            }
            if (ex[t].self_check_diff > self_check) self_check = ex[t].self_check_diff;
            ll_icl_e1_free(&r);
        }
        FILE *f = !s ? ll_csv_open(csv, tmp, sizeof tmp) : NULL;
        if (!s && !f) s = ll_err(LL_ERR_IO, "%s: cannot create", tmp);
        if (f) {
            fprintf(f, "task,k,accuracy,n\n");
            for (int i = 0; i < rows; i++) fprintf(f, "%s,%d,%.6f,%d\n", a.tasks[r_task[i]], r_k[i], r_acc[i], r_n[i]);
            s = ll_csv_close(f, tmp, csv);
        }
        if (!s) s = ll_icl_out_open(&o, h5);
        /* One task: its attributes as ever; several: lists, one entry per task. */
        if (!s) s = a.n_tasks == 1 ? ll_common_attrs(o, &ri) : ll_shared_attrs(o, &ri);
        if (!s && a.n_tasks > 1) {
            const char *names[LL_ICL_MAX_TASKS], *srcs[LL_ICL_MAX_TASKS], *demos[LL_ICL_MAX_TASKS];
            int32_t items[LL_ICL_MAX_TASKS], classes[LL_ICL_MAX_TASKS], ncand[LL_ICL_MAX_TASKS], strad[LL_ICL_MAX_TASKS];
            for (int t = 0; t < a.n_tasks; t++) {
                names[t] = tk[t]->name, srcs[t] = tk[t]->source, demos[t] = ex[t].tp.demo;
                items[t] = tk[t]->n, classes[t] = tk[t]->n_classes, ncand[t] = ex[t].n_cand;
                strad[t] = ex[t].n_straddle_prompts;
            }
            s = ll_icl_out_attr_strs(o, "task_names", names, a.n_tasks);
            if (!s) s = ll_icl_out_attr_strs(o, "task_sources", srcs, a.n_tasks);
            if (!s) s = ll_icl_out_attr_strs(o, "templates", tnames, a.n_tasks);
            if (!s) s = ll_icl_out_attr_strs(o, "template_demos", demos, a.n_tasks);
            if (!s) s = ll_icl_out_attr_i32s(o, "task_items", items, a.n_tasks);
            if (!s) s = ll_icl_out_attr_i32s(o, "task_classes", classes, a.n_tasks);
            if (!s) s = ll_icl_out_attr_i32s(o, "n_label_tokens", ncand, a.n_tasks);
            if (!s) s = ll_icl_out_attr_i32s(o, "straddling_prompts", strad, a.n_tasks);
            if (!s) s = ll_icl_out_attr_f64(o, "self_check_max_rel_diff", self_check);
        }
        if (!s) s = ll_icl_out_attr_strs(o, "tasks", (const char *const *)a.tasks, a.n_tasks);
        if (!s) s = ll_icl_out_attr_i64(o, "n", n);
        if (!s) s = ll_icl_out_i32(o, "task", r_task, rows);
        if (!s) s = ll_icl_out_i32(o, "k", r_k, rows);
        if (!s) s = ll_icl_out_f64(o, "accuracy", r_acc, rows);
        if (!s) s = ll_icl_out_i32(o, "n_prompts", r_n, rows);
        free(r_task), free(r_k), free(r_n), free(r_acc);
    } else {
        ll_icl_layer_result r;
        int n = a.n ? a.n : 50;
        ll_progress_init(&prog, exp, "prompts", n, 0);
        if (!strcmp(exp, "e2")) {
            ll_icl_e2_opts eo = {.k = kk, .n_test = n, .n_src = a.n_src, .op = op, .n_dev = a.n_dev};
            if (a.vec && (s = ll_icl_vec_mode_parse(a.vec, &eo.vec))) goto fail;
            if (a.base && (s = ll_icl_base_parse(a.base, &eo.base))) goto fail;
            if ((s = ll_icl_e2(ep, &eo, &r))) goto fail;
            if (!(s = ll_icl_out_open(&o, h5))) {
                s = ll_common_attrs(o, &ri);
                if (!s) s = ll_icl_out_attr_i64(o, "k", eo.k ? eo.k : 5);
                if (!s) s = ll_icl_out_attr_str(o, "vector", ll_icl_vec_mode_name(eo.vec));
                if (!s) s = ll_icl_out_attr_str(o, "base", eo.base == LL_ICL_BASE_ZERO ? "zero" : "dummy");
                if (!s) s = ll_icl_out_attr_i64(o, "n_src", eo.vec == LL_ICL_VEC_PER_PROMPT ? 2 : eo.vec == LL_ICL_VEC_DATASET ? (tk[0]->n < 1000 ? tk[0]->n : 1000) : (a.n_src ? a.n_src : 50));
            }
        } else {
            ll_icl_e3_opts eo = {.k = kk, .n_test = n, .n_src = a.n_src, .op = op, .n_dev = a.n_dev, .per_slot = a.per_slot};
            if (a.local && (s = ll_icl_local_mode_parse(a.local, &eo.mode))) goto fail;
            if (a.lpos && (s = ll_icl_label_pos_parse(a.lpos, &eo.label_pos))) goto fail;
            if ((s = ll_icl_e3(ep, &eo, &r))) goto fail;
            if (!(s = ll_icl_out_open(&o, h5))) {
                s = ll_common_attrs(o, &ri);
                if (!s) s = ll_icl_out_attr_i64(o, "k", eo.k ? eo.k : 8);
                if (!s) s = ll_icl_out_attr_str(o, "local", ll_icl_local_mode_name(eo.mode));
                if (!s) s = ll_icl_out_attr_str(o, "label_pos", ll_icl_label_pos_name(eo.label_pos));
                if (!s) s = ll_icl_out_attr_i64(o, "n_src", a.n_src ? a.n_src : 50);
                if (!s) s = ll_icl_out_attr_bool(o, "per_slot", eo.per_slot);
                if (!s && r.acc_slot) s = ll_icl_out_f64_2d(o, "accuracy_slot", r.acc_slot, r.n_layers, r.k);
            }
            if (!s && r.acc_slot) {
                printf("accuracy with one slot patched (rows: layer, columns: demonstration):\n");
                for (int l = 0; l < r.n_layers; l++) {
                    printf("%-6d", l);
                    for (int j = 0; j < r.k; j++) printf(" %5.2f", r.acc_slot[(size_t)l * r.k + j]);
                    printf("\n");
                }
                char sc[4400];
                snprintf(sc, sizeof sc, "%s/e3_slots.csv", a.out);
                FILE *f = ll_csv_open(sc, tmp, sizeof tmp);
                if (!f) s = ll_err(LL_ERR_IO, "%s: cannot create", tmp);
                else {
                    fprintf(f, "layer,slot,accuracy\n");
                    for (int l = 0; l < r.n_layers; l++)
                        for (int j = 0; j < r.k; j++) fprintf(f, "%d,%d,%.6f\n", l, j, r.acc_slot[(size_t)l * r.k + j]);
                    s = ll_csv_close(f, tmp, sc);
                }
            }
        }
        ll_progress_finish(&prog);
        if (!s) s = ll_icl_out_attr_str(o, "op", op == LL_PATCH_ADD ? "add" : "replace");
        if (!s) s = ll_icl_out_attr_i64(o, "n", r.n);
        if (!s) s = ll_icl_out_attr_f64(o, "accuracy_base", r.acc_base);
        if (!s) s = ll_icl_out_attr_f64(o, "accuracy_icl", r.acc_icl);
        if (!s) s = ll_icl_out_attr_i64(o, "best_layer", r.best_layer);
        if (!s) s = ll_icl_out_attr_i64(o, "n_dev", r.n_dev);
        if (!s && r.n_dev) s = ll_icl_out_attr_i64(o, "best_layer_dev", r.best_layer_dev);
        if (!s && r.n_dev) s = ll_icl_out_attr_f64(o, "accuracy_at_best_dev_layer", r.acc_at_best_dev);
        if (!s && r.n_dev) s = ll_icl_out_f64(o, "accuracy_dev", r.acc_dev, r.n_layers);
        if (!s) s = ll_icl_out_attr_i64(o, "forwards", ep->stats.forwards);
        if (!s) s = ll_icl_out_attr_i64(o, "token_rows", ep->stats.rows);
        int *layers = malloc((size_t)r.n_layers * sizeof *layers);
        for (int l = 0; layers && l < r.n_layers; l++) layers[l] = l;
        if (!s && layers) s = ll_icl_out_i32(o, "layer", layers, r.n_layers);
        if (!s) s = ll_icl_out_f64(o, "accuracy", r.acc, r.n_layers);
        if (!s) s = ll_icl_out_f64(o, "l2_change_mean", r.l2_mean, r.n_layers);
        if (!s) s = ll_icl_out_i32(o, "n_noop", r.n_noop, r.n_layers);
        free(layers);
        printf("%s on %s: %d test prompts; unpatched %s %.3f, clean ICL %.3f\n", exp, tk[0]->name, r.n,
               !strcmp(exp, "e2") ? "base" : "dummy", r.acc_base, r.acc_icl);
        printf("%-6s %-9s %-12s %s\n", "layer", "accuracy", "mean L2", "no-op patches");
        for (int l = 0; l < r.n_layers; l++)
            printf("%-6d %-9.3f %-12.4g %d%s\n", l, r.acc[l], r.l2_mean[l], r.n_noop[l],
                   r.n_noop[l] ? "  <- patches that changed nothing" : "");
        if (r.n_dev)
            printf("layer chosen on %d dev prompts: %d (dev %.3f), test accuracy there %.3f\n", r.n_dev, r.best_layer_dev,
                   r.acc_dev[r.best_layer_dev], r.acc_at_best_dev);
        if (ep->self_check_diff >= 0) printf("self-check: clean-into-clean max relative logit change %.3g\n", ep->self_check_diff);
        FILE *f = !s ? ll_csv_open(csv, tmp, sizeof tmp) : NULL;
        if (!s && !f) s = ll_err(LL_ERR_IO, "%s: cannot create", tmp);
        if (f) {
            fprintf(f, "layer,accuracy,l2_change_mean,n_noop,accuracy_base,accuracy_icl,n,accuracy_dev\n");
            for (int l = 0; l < r.n_layers; l++) {
                fprintf(f, "%d,%.6f,%.6g,%d,%.6f,%.6f,%d,", l, r.acc[l], r.l2_mean[l], r.n_noop[l], r.acc_base, r.acc_icl, r.n);
                if (r.n_dev) fprintf(f, "%.6f", r.acc_dev[l]);
                fputc('\n', f);
            }
            s = ll_csv_close(f, tmp, csv);
        }
        ll_icl_layer_result_free(&r);
    }
    if (o) {
        ll_status cs = ll_icl_out_close(o, s == LL_OK);
        if (!s) s = cs;
    }
    if (s) goto fail;
    if (!strcmp(exp, "e3") && !a.per_slot) {
        /* a per-slot table of an earlier run is not this run's */
        char sc[4400];
        snprintf(sc, sizeof sc, "%s/e3_slots.csv", a.out);
        remove(sc);
    }
    ll_plot(exp, csv, png);
    fprintf(stderr, "layerlab: wrote %s, %s, %s\n", h5, csv, png);
    goto done;
fail:
    rc = ll_cli_status(s);
done:
    for (int t = 0; t < n_init; t++) ll_icl_exp_free(&ex[t]);
    for (int t = 0; t < a.n_tasks; t++) {
        ll_icl_task_free(tk[t]);
        free(custom[t]);
        free(a.tasks[t]);
    }
    ll_tokenizer_free(tok);
    if (m) ll_model_free(m);
    free(ks);
    return rc;
}

int ll_cli_icl_e1(int argc, char **argv) { return ll_icl_main(argc, argv, "e1"); }
int ll_cli_icl_e2(int argc, char **argv) { return ll_icl_main(argc, argv, "e2"); }
int ll_cli_icl_e3(int argc, char **argv) { return ll_icl_main(argc, argv, "e3"); }
