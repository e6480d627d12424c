/* layerlab icl sweep-bench MODEL --task T [--k K] [--n N] [--json FILE]: time the classic
 * (layer x position) activation-patching sweep -- every clean state patched alone into the
 * dummy-demonstration prompt -- four ways: the default engine (resume: blocks l.. over rows
 * p.. only, from the unpatched run's KV cache and residuals), the batched engine with only
 * the shared prefix from the KV cache, batched full prompts, and the naive
 * one-forward-per-variant loop.
 * The four must agree (max relative logit difference printed). --json writes the prompts,
 * positions and the batched logits so tools/bench/icl_sweep_torch.py can run the same
 * sweep with PyTorch forward hooks and compare. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "icl/ll_icl_exp.h"
#include "ll_cli.h"

static const char usage[] =
    "usage: layerlab icl sweep-bench MODEL --task T [--k K] [--n N] [--seed S] [--template T] [--words W]\n"
    "       [--max-batch N] [--json FILE]\n"
    "  every (layer, position) from the first label position to the end, one replace patch each,\n"
    "  clean states into the dummy-demonstration prompt; timed resume / batched+cache / batched / naive\n";

int ll_cli_icl_sweep_bench(int argc, char **argv) {
    const char *model = NULL, *task_s = NULL, *json = NULL, *tmpl = NULL, *words = NULL;
    int k = 4, n_prompts = 4, max_batch = 0;
    long long seed = 1;
    for (int i = 1; i < argc; i++) {
        int st;
        if (ll_cli_common_opt(argc, argv, &i, &st)) {
            if (st) return st;
            continue;
        }
        bool has = i + 1 < argc;
        if (!strcmp(argv[i], "--task") && has) task_s = argv[++i];
        else if (!strcmp(argv[i], "--json") && has) json = argv[++i];
        else if (!strcmp(argv[i], "--template") && has) tmpl = argv[++i];
        else if (!strcmp(argv[i], "--words") && has) words = argv[++i];
        else if (!strcmp(argv[i], "--k") && has) k = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--n") && has) n_prompts = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-batch") && has) max_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && has) seed = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (argv[i][0] == '-') return ll_cli_fail("icl sweep-bench: unknown option %s", argv[i]);
        else model = argv[i];
    }
    if (!model || !task_s || k < 1 || n_prompts < 1) return ll_cli_usage(usage);
    ll_icl_task *task = NULL;
    ll_model *m = NULL;
    ll_tokenizer *tok = NULL;
    ll_icl_exp e = {.seed = (uint64_t)seed};
    ll_icl_task_opts to = {.seed = (uint64_t)seed, .words = words};
    ll_status s = ll_icl_task_load(task_s, &to, &task);
    if (!s) s = ll_icl_template_get(tmpl ? tmpl : task->template_hint, &e.tp);
    if (!s) s = ll_cli_load_for_run(model, &m);
    if (!s) s = ll_cli_load_tokenizer(model, m->cfg.vocab_size, &tok);
    if (s) return ll_cli_status(s);
    e.m = m;
    e.tok = tok;
    e.task = task;
    if ((s = ll_icl_exp_init(&e))) return ll_cli_status(s);
    int L = m->cfg.n_layers, d = m->cfg.d_model, V = m->cfg.vocab_size;
    FILE *jf = json ? fopen(json, "w") : NULL;
    if (json && !jf) return ll_cli_fail("%s: cannot create", json);
    if (jf) fprintf(jf, "{\"model\": \"%s\", \"n_layers\": %d, \"prompts\": [\n", model, L);
    double t_mode[4] = {0, 0, 0, 0}, maxdiff = 0;
    int64_t n_var_total = 0, rows_mode[4] = {0, 0, 0, 0};
    for (int pi = 0; pi < n_prompts && !s; pi++) {
        ll_icl_prompt p;
        uint64_t rs = (uint64_t)seed * 7919u + (uint64_t)pi;
        int *dm = malloc((size_t)k * sizeof *dm), q;
        ll_icl_item *it = malloc((size_t)(k + 1) * sizeof *it);
        s = ll_icl_task_sample(task, &rs, k, dm, &q);
        for (int i = 0; i < k; i++) it[i] = (ll_icl_item){task->input[dm[i]], task->output[dm[i]]};
        it[k] = (ll_icl_item){task->input[q], task->output[q]};
        if (!s) s = ll_icl_prompt_build(tok, &e.tp, it, k, &it[k], NULL, &p);
        free(dm);
        free(it);
        if (s) break;
        int32_t *dummy = malloc((size_t)p.n * sizeof *dummy);
        ll_icl_dummy_ids(&p, e.in_fill, e.lab_fill, NULL, 0, 0, dummy);
        int p0 = p.demo[0].lab_lo, np = p.n - p0;
        int *pos = malloc((size_t)np * sizeof *pos);
        for (int j = 0; j < np; j++) pos[j] = p0 + j;
        float *clean = malloc((size_t)L * np * d * sizeof *clean);
        const int32_t *ids[1] = {p.ids};
        const int *pp[1] = {pos};
        s = ll_icl_record(m, 1, ids, &p.n, pp, &np, LL_HOOK_RESID_PRE, clean, NULL);
        int nv = L * np;
        ll_icl_variant *v = malloc((size_t)nv * sizeof *v);
        for (int l = 0; l < L; l++)
            for (int j = 0; j < np; j++)
                v[l * np + j] = (ll_icl_variant){.layer = l, .n_pos = 1, .pos = &pos[j],
                                                 .src = clean + ((size_t)l * np + j) * d, .op = LL_PATCH_REPLACE};
        float *lg[4];
        for (int md = 0; md < 4; md++) lg[md] = malloc((size_t)nv * V * sizeof(float));
        ll_icl_sweep_opts so[4] = {{.max_batch = max_batch},
                                   {.max_batch = max_batch, .no_resume = true},
                                   {.max_batch = max_batch, .no_prefix_cache = true},
                                   {.naive = true}};
        for (int md = 0; md < 4 && !s; md++) {
            ll_icl_sweep_stats st = {0};
            double t0 = ll_now();
            s = ll_icl_sweep(m, dummy, p.n, v, nv, &so[md], lg[md], NULL, &st);
            t_mode[md] += ll_now() - t0;
            rows_mode[md] += st.layer_rows;
        }
        for (int md = 1; md < 4 && !s; md++)
            for (size_t i = 0; i < (size_t)nv * V; i++) {
                double den = fmax(1.0, fabs(lg[0][i]));
                maxdiff = fmax(maxdiff, fabs((double)lg[md][i] - lg[0][i]) / den);
            }
        n_var_total += nv;
        if (jf && !s) {
            fprintf(jf, "%s{\"dummy\": [", pi ? ",\n" : "");
            for (int i = 0; i < p.n; i++) fprintf(jf, "%s%d", i ? ", " : "", dummy[i]);
            fprintf(jf, "], \"clean\": [");
            for (int i = 0; i < p.n; i++) fprintf(jf, "%s%d", i ? ", " : "", p.ids[i]);
            fprintf(jf, "], \"positions\": [");
            for (int j = 0; j < np; j++) fprintf(jf, "%s%d", j ? ", " : "", pos[j]);
            /* the argmax token of every variant and the logits of the first 3 variants */
            fprintf(jf, "], \"argmax\": [");
            for (int i = 0; i < nv; i++) {
                int b = 0;
                for (int t = 1; t < V; t++)
                    if (lg[0][(size_t)i * V + t] > lg[0][(size_t)i * V + b]) b = t;
                fprintf(jf, "%s%d", i ? ", " : "", b);
            }
            fprintf(jf, "], \"logits_head\": [");
            for (int i = 0; i < 3 && i < nv; i++) {
                fprintf(jf, "%s[", i ? ", " : "");
                for (int t = 0; t < V; t++) fprintf(jf, "%s%.6g", t ? ", " : "", lg[0][(size_t)i * V + t]);
                fprintf(jf, "]");
            }
            fprintf(jf, "]}");
        }
        for (int md = 0; md < 4; md++) free(lg[md]);
        free(v);
        free(clean);
        free(pos);
        free(dummy);
        ll_icl_prompt_free(&p);
    }
    if (jf) {
        fprintf(jf, "\n], \"seconds\": {\"resume\": %.6f, \"batched_cache\": %.6f, \"batched\": %.6f, \"naive\": %.6f}}\n",
                t_mode[0], t_mode[1], t_mode[2], t_mode[3]);
        fclose(jf);
    }
    int rc = 0;
    if (s) rc = ll_cli_status(s);
    else {
        static const char *names[4] = {"resume (default)", "batched + prefix cache", "batched, no cache", "naive loop"};
        printf("sweep-bench: %s, task %s, %d prompts x k=%d, %lld (layer, position) variants, %d layers\n", model,
               task->name, n_prompts, k, (long long)n_var_total, L);
        printf("%-24s %10s %12s %16s %8s\n", "mode", "seconds", "variants/s", "token x blocks", "speedup");
        for (int md = 0; md < 4; md++)
            printf("%-24s %10.3f %12.1f %16lld %7.2fx\n", names[md], t_mode[md], n_var_total / fmax(t_mode[md], 1e-9),
                   (long long)rows_mode[md], t_mode[3] / fmax(t_mode[md], 1e-9));
        printf("max relative logit difference between modes: %.3g\n", maxdiff);
        if (maxdiff > 1e-4) rc = ll_cli_fail("the sweep modes disagree (%.3g)", maxdiff);
    }
    ll_icl_exp_free(&e);
    ll_icl_task_free(task);
    ll_tokenizer_free(tok);
    ll_model_free(m);
    return rc;
}
