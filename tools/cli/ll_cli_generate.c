/* layerlab generate MODEL --prompt TEXT: the prompt and its continuation on stdout,
 * streamed as tokens are produced; timing and the stop reason on stderr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "generate/ll_generate.h"
#include "ll_cli.h"

static const char usage[] =
    "usage: layerlab generate MODEL --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-p P]\n"
    "                         [--seed S] [--ignore-eos] [--tokenizer FILE] [--threads N] [--device cuda|cpu]\n"
    "  --max-new-tokens N  at most N new tokens (default 64)\n"
    "  --temperature T     0 (the default) is greedy; otherwise softmax(logits / T) is sampled\n"
    "  --top-p P           nucleus sampling: keep the most likely tokens holding mass P (default 1)\n"
    "  --seed S            random seed for sampling (default: from the clock, printed on stderr)\n"
    "  --ignore-eos        do not stop at EOS (or at BOS, which starts a new document)\n"
    "stdout gets exactly the prompt followed by the continuation (and a newline on a terminal).\n";

static int ll_print_text(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int ll_parse_num(const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !(x >= lo && x <= hi))
        return ll_cli_fail("generate: %s expects a number in [%g, %g], found '%s'", opt, lo, hi, v);
    *out = x;
    return 0;
}

int ll_cli_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL;
    double max_new = 64, temp = 0, top_p = 1, seed = -1;
    bool ignore_eos = false;
    for (int i = 1; i < argc; i++) {
        int st;
        if (ll_cli_common_opt(argc, argv, &i, &st)) {
            if (st) return st;
        } else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) {
            prompt = argv[++i];
        } else if (!strcmp(argv[i], "--max-new-tokens") && i + 1 < argc) {
            if ((st = ll_parse_num("--max-new-tokens", argv[++i], 0, 1 << 24, &max_new))) return st;
        } else if (!strcmp(argv[i], "--temperature") && i + 1 < argc) {
            if ((st = ll_parse_num("--temperature", argv[++i], 0, 1e6, &temp))) return st;
        } else if (!strcmp(argv[i], "--top-p") && i + 1 < argc) {
            if ((st = ll_parse_num("--top-p", argv[++i], 1e-9, 1, &top_p))) return st;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            if ((st = ll_parse_num("--seed", argv[++i], 0, 1.8e19, &seed))) return st;
        } else if (!strcmp(argv[i], "--ignore-eos")) {
            ignore_eos = true;
        } else if (!strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            return ll_cli_fail("generate: unknown option %s (or missing value)", argv[i]);
        } else if (!model) {
            model = argv[i];
        } else {
            return ll_cli_usage(usage);
        }
    }
    if (!model || !prompt) return ll_cli_usage(usage);
    uint64_t sd = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL);
    ll_model *m = NULL;
    ll_tokenizer *t = NULL;
    ll_encoding e = {0};
    ll_generation g = {0};
    int rc = 0;
    ll_status s = ll_cli_load_for_run(model, &m);
    if (!s) s = ll_cli_load_tokenizer(model, m->cfg.vocab_size, &t);
    if (!s) s = ll_tokenizer_encode(t, prompt, strlen(prompt), LL_TOK_DEFAULT, &e);
    if (!s) {
        if (temp > 0) fprintf(stderr, "layerlab: sampling with temperature %g, top-p %g, seed %llu\n", temp, top_p, (unsigned long long)sd);
        fputs(prompt, stdout);
        fflush(stdout);
        ll_generate_opts go = {.max_new_tokens = (int)max_new,
                               .sample = {.temperature = (float)temp, .top_p = (float)top_p, .seed = sd},
                               .ignore_eos = ignore_eos,
                               .on_text = ll_print_text};
        s = ll_generate(m, t, e.ids, (int)e.n, &go, &g);
        /* stdout is exactly the text; a terminal also gets a final newline. */
        if (isatty(fileno(stdout))) putchar('\n');
        fflush(stdout);
    }
    if (s) {
        rc = ll_cli_status(s);
    } else {
        int nn = g.n - g.n_prompt;
        fprintf(stderr, "layerlab: %d prompt tokens in %.3f s (%.1f tok/s), %d new tokens in %.3f s (%.1f tok/s), stopped: %s\n",
                g.n_prompt, g.prefill_s, g.prefill_s > 0 ? g.n_prompt / g.prefill_s : 0.0, nn, g.decode_s,
                g.decode_s > 0 ? nn / g.decode_s : 0.0, g.stop);
    }
    ll_generation_free(&g);
    ll_encoding_free(&e);
    ll_tokenizer_free(t);
    if (m) ll_model_free(m);
    return rc;
}
