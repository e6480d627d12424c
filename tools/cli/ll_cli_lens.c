/* layerlab lens MODEL: per-layer accuracy of the logit lens, the tuned lens and SPADE on a
 * single-token decision task, or, for one prompt, every layer's top token per method. */
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lens/ll_lens_eval.h"
#include "lspade/ll_lspade.h"
#include "ll_cli.h"

extern char **environ;

static const char usage[] =
    "usage: layerlab lens MODEL (--data FILE | --cloze N | --toy-mcq N) [options]\n"
    "       layerlab lens MODEL (--prompt TEXT | --tokens IDS) [--options A,B,...] [options]\n"
    "Per-layer accuracy (layer l = residual after l blocks, 0..L) of each method, and the\n"
    "full model's, on single-token decision prompts; for one prompt, a TSV with header\n"
    "'layer method token_id token prob': the top token at the last position (--decode vocab)\n"
    "or among the --options tokens, for every layer and method.\n"
    "  --data FILE          data set (see --format)\n"
    "  --format F           auto|foundry|boolq|headqa|arc|generic|tokens (default auto)\n"
    "  --template T         auto|mcq|boolq|raw|vicuna (default auto: mcq, boolq for BoolQ, raw for generic)\n"
    "  --k-shot K           solved examples before each question (default 0)\n"
    "  --cloze N            instead of --data: N cloze items from the model's own greedy stories\n"
    "  --toy-mcq N          instead of --data: N of the toy model's own \"->\" questions (data/models/toy-llama)\n"
    "  --data-seed S        which --cloze stories / --toy-mcq questions (default 0); cloze sets of\n"
    "                       seeds that differ mod 640 share no context\n"
    "  --method LIST        logit,tuned,spade,lspade (default logit,spade)\n"
    "  --tuned FILE         trained tuned lens (layerlab tuned-lens train)\n"
    "  --lspade MAPS        L-SPADE maps for this model (layerlab lspade train), needed by lspade:\n"
    "                       the layer's map on the answer row, argmax over the options ('nan'\n"
    "                       at layers without a map); logits-target maps need K = the options\n"
    "  --positions P        SPADE positions: orig (0 and n-1, default) | reindex (0 and 1)\n"
    "  --decode D           options (argmax over the candidate tokens, default) | vocab\n"
    "  --rows R             SPADE row-0 handling: cached (default, one row per prompt) | two\n"
    "  --limit N            first N items only\n"
    "  --batch N            prompts per forward pass (default 16)\n"
    "  --out-csv F          accuracy table as CSV      --out-h5 F   results as HDF5\n"
    "  --plot F.png         accuracy curves (needs python3-matplotlib; a warning without it)\n"
    "  --dump-prompts F     write the prompts as dump JSONL (positions: answer = n-1) and go on\n"
    "  --device, --threads, --tokenizer as for every command\n";

typedef struct {
    const char *model, *data, *format, *tpl, *methods, *tuned, *positions, *decode, *rows, *csv, *h5, *plot, *dump;
    const char *prompt, *tokens, *options, *lspade;
    int k_shot, cloze, toy_mcq, limit, batch, data_seed;
} ll_lens_args;

/* L-SPADE as a lens method: the layer's map (host/lspade) on the answer row's state, with
 * the file's own switches (target logits: the K option logits directly; target hidden: the
 * predicted final state through the frozen final norm and the candidates' LM-head rows;
 * norm_input: the final norm first), answer = argmax over the prompt's options. */
typedef struct {
    ll_lspade_maps *maps;
    const char *path;
    float *h, *lg;
    size_t cap_h, cap_lg; /* floats */
} ll_lens_lspade;

static ll_status ll_lens_lspade_fn(void *user, ll_model *m, const ll_spade_states *st, int layer, int p0, int n,
                                   const ll_mcqa_prompts *pr, int pr0, ll_spade_decode decode, ll_spade_pick *out) {
    ll_lens_lspade *u = user;
    ll_lspade_maps *mp = u->maps;
    int d = m->cfg.d_model, K = mp->K;
    (void)decode; /* a map knows only the options: it always picks among them */
    if (layer > mp->n_layers || !mp->W[layer]) {
        for (int i = 0; i < n; i++) out[i] = (ll_spade_pick){.pick = -1, .token = -1, .prob = NAN, .entropy = NAN};
        return LL_OK;
    }
    int kmax = K;
    for (int i = 0; i < n; i++)
        if (pr->n_cand[pr0 + i] > kmax) kmax = pr->n_cand[pr0 + i];
    size_t nh = (size_t)n * d, nl = (size_t)n * kmax;
    if (nh > u->cap_h || nl > u->cap_lg) {
        free(u->h);
        free(u->lg);
        u->h = malloc(nh * sizeof(float));
        u->lg = malloc(nl * sizeof(float));
        u->cap_h = u->h && u->lg ? nh : 0;
        u->cap_lg = u->h && u->lg ? nl : 0;
        if (!u->cap_h) return ll_err(LL_ERR_NOMEM, "lens: lspade: no memory for %d rows", n);
    }
    for (int i = 0; i < n; i++) memcpy(u->h + (size_t)i * d, ll_spade_state(st, layer, p0 + i, 1), (size_t)d * sizeof(float));
    if (mp->target == LL_LSPADE_TARGET_LOGITS) {
        /* K was checked against every prompt before the run. */
        LL_TRY(ll_lspade_apply(mp, m, layer, n, u->h, (const int32_t *const *)(pr->cand + pr0), u->lg));
    } else {
        /* The hidden target decodes any number of candidates: one row at a time with K set
         * to that prompt's count (K only tells ll_lspade_apply how many head rows to read). */
        ll_status s = LL_OK;
        for (int i = 0; i < n && !s; i++) {
            mp->K = pr->n_cand[pr0 + i];
            s = ll_lspade_apply(mp, m, layer, 1, u->h + (size_t)i * d, (const int32_t *const *)(pr->cand + pr0 + i),
                                u->lg + (size_t)i * kmax);
        }
        mp->K = K;
        LL_TRY(s);
    }
    for (int i = 0; i < n; i++) {
        int ki = pr->n_cand[pr0 + i], stride = mp->target == LL_LSPADE_TARGET_LOGITS ? K : kmax, a = 0;
        const float *z = u->lg + (size_t)i * stride;
        for (int k = 1; k < ki; k++)
            if (z[k] > z[a]) a = k; /* the first on ties, as SPADE's decode */
        double sum = 0, ez = 0;
        for (int k = 0; k < ki; k++) {
            double e = exp((double)z[k] - z[a]);
            sum += e;
            ez += e * ((double)z[k] - z[a]);
        }
        out[i] = (ll_spade_pick){.pick = a, .token = pr->cand[pr0 + i][a], .prob = (float)(1.0 / sum),
                                 .entropy = (float)(log(sum) - ez / sum)};
    }
    return LL_OK;
}

/* Load the maps (ll_lspade_load refuses another model: weights hash, width, layer count)
 * and plug them in under the name "lspade". */
static ll_status ll_cli_lens_add_lspade(ll_lens_eval_opts *o, ll_model *m, const char *path, ll_lens_lspade *u) {
    if (!path)
        return ll_err(LL_ERR_ARG, "lens: --method lspade needs --lspade MAPS (the maps of 'layerlab lspade train' "
                                  "for this model)");
    u->path = path;
    LL_TRY(ll_lspade_load(&u->maps, path, m));
    return ll_lens_eval_add_method(o, "lspade", ll_lens_lspade_fn, u);
}

/* Before the run: a logits-target map predicts exactly K option logits, so every prompt
 * must have K options; the hidden target needs at least one. */
static ll_status ll_lens_lspade_check(const ll_lens_lspade *u, const ll_mcqa_prompts *pr) {
    for (int i = 0; i < pr->n; i++) {
        int k = pr->n_cand[i];
        const char *id = pr->id && pr->id[i] ? pr->id[i] : "?";
        if (u->maps->target == LL_LSPADE_TARGET_LOGITS && k != u->maps->K)
            return ll_err(LL_ERR_SHAPE, "lens: %s: logits-target maps fitted for K = %d options; prompt %d (%s) has %d",
                          u->path, u->maps->K, i, id, k);
        if (k < 1)
            return ll_err(LL_ERR_ARG, "lens: lspade picks among the options; prompt %d (%s) has none (give --options)",
                          i, id);
    }
    return LL_OK;
}

static int ll_int_arg(const char *opt, const char *v, int *out) {
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 0 || n > 1 << 30) return ll_cli_fail("lens: %s: expected a non-negative integer, found '%s'", opt, v);
    *out = (int)n;
    return 0;
}

/* tools/plot/lens_accuracy.py next to the binary (build/layerlab -> ../tools) or in the
 * working directory. */
static int ll_find_plot_script(char *buf, size_t n) {
    char exe[4096];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    struct stat st;
    if (k > 0) {
        exe[k] = 0;
        char *s = strrchr(exe, '/');
        if (s) {
            *s = 0;
            snprintf(buf, n, "%s/../tools/plot/lens_accuracy.py", exe);
            if (!stat(buf, &st)) return 1;
        }
    }
    snprintf(buf, n, "tools/plot/lens_accuracy.py");
    return !stat(buf, &st);
}

static void ll_plot(const char *csv, const char *png, const char *title) {
    char script[4200];
    if (!ll_find_plot_script(script, sizeof script)) {
        fprintf(stderr, "layerlab: warning: --plot: tools/plot/lens_accuracy.py not found; no plot written\n");
        return;
    }
    char *argv[] = {"python3", script, (char *)csv, (char *)png, (char *)title, NULL};
    pid_t pid;
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    if (posix_spawnp(&pid, py, NULL, NULL, argv, environ) != 0) {
        fprintf(stderr, "layerlab: warning: --plot: cannot run python3; no plot written\n");
        return;
    }
    int ws;
    if (waitpid(pid, &ws, 0) < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        fprintf(stderr, "layerlab: warning: --plot: the plot script failed (is python3-matplotlib installed? "
                        "tools/deps.sh plot); no plot written\n");
    else fprintf(stderr, "lens: plot written to %s\n", png);
}

static void ll_print_piece(const ll_tokenizer *t, int32_t id) {
    char *s = NULL;
    size_t n = 0;
    if (!t || id < 0 || ll_tokenizer_decode(t, &id, 1, false, &s, &n)) {
        printf("?");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\t') printf("\\t");
        else if (c == '\n') printf("\\n");
        else if (c == '\\') printf("\\\\");
        else if (c < 0x20) printf("\\x%02x", c);
        else putchar(c);
    }
    free(s);
}

static void ll_print_table(const ll_lens_eval_result *r) {
    char sw[128];
    ll_spade_opts_describe(&r->spade, sw, sizeof sw);
    printf("# accuracy per layer (layer l = residual after l blocks), %d scored prompts; %s\n", r->n_scored, sw);
    printf("layer");
    for (int k = 0; k < r->n_methods; k++) printf("\t%s", r->names[k]);
    printf("\n");
    for (int l = 0; l <= r->n_layers; l++) {
        printf("%d", l);
        for (int k = 0; k < r->n_methods; k++) printf("\t%.4f", r->acc[k * (r->n_layers + 1) + l]);
        printf("\n");
    }
    printf("full model\t%.4f\n", r->full_acc);
}

static int ll_lens_main(ll_lens_args *a) {
    ll_lens_eval_opts eo = {.batch = a->batch, .progress = true};
    ll_status s;
    if ((s = ll_spade_parse_positions(a->positions, &eo.spade.positions))) return ll_cli_status(s);
    if ((s = ll_spade_parse_decode(a->decode, &eo.spade.decode))) return ll_cli_status(s);
    if (!strcmp(a->rows, "two")) eo.spade.rows = LL_SPADE_ROWS_TWO;
    else if (strcmp(a->rows, "cached")) return ll_cli_fail("lens: --rows: expected cached or two, found '%s'", a->rows);
    /* Built-in methods; lspade through its hook. */
    char list[256], rest[256] = "";
    snprintf(list, sizeof list, "%s", a->methods);
    bool want_lspade = false;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "lspade")) want_lspade = true;
        else snprintf(rest + strlen(rest), sizeof rest - strlen(rest), "%s%s", *rest ? "," : "", t);
    }
    if ((s = ll_lens_eval_parse_methods(&eo, rest))) return ll_cli_status(s);
    ll_model *m = NULL;
    ll_tokenizer *tk = NULL;
    ll_tuned_lens *tl = NULL;
    ll_mcqa_set set = {0};
    ll_mcqa_prompts pr = {0};
    ll_lens_eval_result res = {0};
    ll_lens_lspade lsp = {0};
    int rc = 0;
    if ((s = ll_cli_load_for_run(a->model, &m))) return ll_cli_status(s);
    if (want_lspade && (s = ll_cli_lens_add_lspade(&eo, m, a->lspade, &lsp))) goto fail;
    if (!want_lspade && a->lspade) {
        s = ll_err(LL_ERR_ARG, "lens: --lspade given but --method has no lspade");
        goto fail;
    }
    if (eo.n_methods == 0) {
        s = ll_err(LL_ERR_ARG, "lens: no methods given");
        goto fail;
    }
    if ((s = ll_cli_load_tokenizer(a->model, m->cfg.vocab_size, &tk))) goto fail;
    if (a->tuned) {
        if ((s = ll_tuned_lens_load(&tl, a->tuned, m))) goto fail;
        eo.tuned = tl;
    }
    bool single = a->prompt || a->tokens;
    if (single) {
        /* One prompt: its tokens, and the --options labels' tokens when given. */
        pr.n = 1;
        pr.id = calloc(1, sizeof *pr.id);
        pr.text = calloc(1, sizeof *pr.text);
        pr.tok = calloc(1, sizeof *pr.tok);
        pr.n_tok = calloc(1, sizeof *pr.n_tok);
        pr.cand = calloc(1, sizeof *pr.cand);
        pr.n_cand = calloc(1, sizeof *pr.n_cand);
        pr.gold = calloc(1, sizeof *pr.gold);
        if (!pr.id || !pr.text || !pr.tok || !pr.n_tok || !pr.cand || !pr.n_cand || !pr.gold) {
            s = ll_err(LL_ERR_NOMEM, "no memory");
            goto fail;
        }
        pr.gold[0] = -1;
        if (a->tokens) {
            if ((s = ll_cli_parse_ids(a->tokens, &pr.tok[0], &pr.n_tok[0]))) goto fail;
        } else {
            ll_encoding e = {0};
            if ((s = ll_tokenizer_encode(tk, a->prompt, strlen(a->prompt), LL_TOK_DEFAULT, &e))) goto fail;
            pr.tok[0] = e.ids;
            pr.n_tok[0] = (int)e.n;
            e.ids = NULL;
            ll_encoding_free(&e);
            if (pr.n_tok[0] == 0) {
                s = ll_err(LL_ERR_ARG, "lens: the prompt has no tokens");
                goto fail;
            }
        }
        if (a->options) {
            char buf[1024];
            snprintf(buf, sizeof buf, "%s", a->options);
            const char *labels[64];
            int nl = 0;
            for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && nl < 64; t = strtok_r(NULL, ",", &save))
                labels[nl++] = t;
            pr.cand[0] = malloc((size_t)(nl ? nl : 1) * sizeof(int32_t));
            if (!pr.cand[0]) {
                s = ll_err(LL_ERR_NOMEM, "no memory");
                goto fail;
            }
            if ((s = ll_mcqa_candidates(tk, labels, nl, pr.cand[0], NULL))) goto fail;
            pr.n_cand[0] = nl;
        } else {
            eo.spade.decode = LL_SPADE_DECODE_VOCAB;
        }
        eo.progress = false;
    } else {
        if (a->cloze > 0) {
            if ((s = ll_cli_cloze("lens", m, tk, a->cloze, (uint64_t)a->data_seed, &set))) goto fail;
        } else if (a->toy_mcq > 0) {
            if ((s = ll_mcqa_toy_mcq(a->toy_mcq, (uint64_t)a->data_seed, &set))) goto fail;
        } else {
            ll_mcqa_format f;
            if ((s = ll_mcqa_parse_format(a->format, &f))) goto fail;
            if ((s = ll_mcqa_load(&set, a->data, f, a->limit))) goto fail;
        }
        ll_mcqa_prompt_opts po = {.k_shot = a->k_shot};
        if ((s = ll_mcqa_parse_template(a->tpl, &po.tpl))) goto fail;
        if ((s = ll_mcqa_build(&set, tk, &po, &pr))) goto fail;
        if (a->dump) {
            if ((s = ll_mcqa_write_dump_jsonl(&pr, a->dump))) goto fail;
            fprintf(stderr, "lens: %d prompts written to %s (layerlab dump --positions answer)\n", pr.n, a->dump);
        }
    }
    if (lsp.maps && (s = ll_lens_lspade_check(&lsp, &pr))) goto fail;
    if ((s = ll_lens_eval_run(m, &pr, &eo, &res))) goto fail;
    for (int k = 0; k < res.n_methods && lsp.maps; k++) {
        if (strcmp(res.names[k], "lspade")) continue;
        /* No map at a layer (0 and L by default): no accuracy there, not a zero. */
        for (int l = 0; l <= res.n_layers; l++)
            if (l > lsp.maps->n_layers || !lsp.maps->W[l]) res.acc[(size_t)k * (res.n_layers + 1) + l] = NAN;
        if (!single)
            printf("# lspade: %s target=%s norm_input=%s K=%d\n", lsp.path, ll_lspade_target_name(lsp.maps->target),
                   lsp.maps->norm_input ? "true" : "false", lsp.maps->K);
    }
    if (single) {
        char sw[128];
        ll_spade_opts_describe(&eo.spade, sw, sizeof sw);
        /* stdout stays a plain TSV; the switches go to stderr. */
        fprintf(stderr, "lens: %d tokens; %s\n", pr.n_tok[0], sw);
        printf("layer\tmethod\ttoken_id\ttoken\tprob\n");
        for (int l = 0; l <= res.n_layers; l++)
            for (int k = 0; k < res.n_methods; k++) {
                size_t at = ll_lens_eval_idx(&res, k, l, 0);
                printf("%d\t%s\t%d\t", l, res.names[k], res.token[at]);
                ll_print_piece(tk, res.token[at]);
                printf("\t%.6f\n", (double)res.prob[at]);
            }
        printf("%d\tfull\t%d\t", res.n_layers, res.full_token[0]);
        ll_print_piece(tk, res.full_token[0]);
        printf("\t%.6f\n", (double)res.full_prob[0]);
    } else {
        ll_print_table(&res);
        if (a->csv && (s = ll_lens_eval_write_csv(&res, a->csv))) goto fail;
        if (a->h5 && (s = ll_lens_eval_write_h5(&res, &pr, a->h5))) goto fail;
        if (a->plot) {
            char tmpcsv[] = "/tmp/layerlab-lens-XXXXXX.csv";
            const char *csv = a->csv;
            int fd = -1;
            if (!csv) {
                fd = mkstemps(tmpcsv, 4);
                if (fd >= 0) {
                    close(fd);
                    if (!ll_lens_eval_write_csv(&res, tmpcsv)) csv = tmpcsv;
                }
            }
            if (csv) ll_plot(csv, a->plot, a->cloze > 0 ? "cloze (own greedy stories)" : a->toy_mcq > 0 ? "toy MCQ" : a->data);
            else fprintf(stderr, "layerlab: warning: --plot: cannot write a temporary CSV; no plot\n");
            if (fd >= 0) unlink(tmpcsv);
        }
    }
    goto out;
fail:
    rc = ll_cli_status(s);
out:
    ll_lens_eval_result_free(&res);
    ll_lspade_maps_free(lsp.maps);
    free(lsp.h);
    free(lsp.lg);
    ll_mcqa_prompts_free(&pr);
    ll_mcqa_set_free(&set);
    ll_tuned_lens_free(tl);
    ll_tokenizer_free(tk);
    ll_model_free(m);
    return rc;
}

int ll_cli_lens(int argc, char **argv) {
    ll_lens_args a = {.format = "auto", .tpl = "auto", .methods = "logit,spade", .positions = "orig",
                      .decode = "options", .rows = "cached"};
    for (int i = 1; i < argc; i++) {
        int st;
        const char *o = argv[i];
        bool has = i + 1 < argc;
        if (ll_cli_common_opt(argc, argv, &i, &st)) {
            if (st) return st;
        } else if (!strcmp(o, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
#define STR_OPT(name, field)                                                                                           \
    else if (!strcmp(o, name) && has) a.field = argv[++i];
#define INT_OPT(name, field)                                                                                           \
    else if (!strcmp(o, name) && has) {                                                                                \
        if (ll_int_arg(name, argv[++i], &a.field)) return LL_EXIT_USAGE;                                               \
    }
        STR_OPT("--data", data) STR_OPT("--format", format) STR_OPT("--template", tpl) STR_OPT("--method", methods)
        STR_OPT("--tuned", tuned) STR_OPT("--positions", positions) STR_OPT("--decode", decode) STR_OPT("--rows", rows)
        STR_OPT("--out-csv", csv) STR_OPT("--out-h5", h5) STR_OPT("--plot", plot) STR_OPT("--dump-prompts", dump)
        STR_OPT("--prompt", prompt) STR_OPT("--tokens", tokens) STR_OPT("--options", options) STR_OPT("--lspade", lspade)
        INT_OPT("--k-shot", k_shot) INT_OPT("--cloze", cloze) INT_OPT("--toy-mcq", toy_mcq) INT_OPT("--limit", limit) INT_OPT("--batch", batch)
        INT_OPT("--data-seed", data_seed)
#undef STR_OPT
#undef INT_OPT
        else if (o[0] == '-') return ll_cli_fail("lens: unknown option %s (or missing value)", o);
        else if (!a.model) a.model = o;
        else return ll_cli_usage(usage);
    }
    int sources = (a.data != NULL) + (a.cloze > 0) + (a.toy_mcq > 0) + (a.prompt != NULL) + (a.tokens != NULL);
    if (!a.model || sources != 1) {
        if (a.model && sources > 1) return ll_cli_fail("lens: give one of --data, --cloze, --toy-mcq, --prompt, --tokens");
        return ll_cli_usage(usage);
    }
    return ll_lens_main(&a);
}
