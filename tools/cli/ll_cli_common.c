/* Helpers shared by the subcommands: errors, id lists, common options, loading. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ll_backend.h"
#include "ll_cli.h"

int ll_cli_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("layerlab: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return LL_EXIT_ERR;
}

int ll_cli_usage(const char *usage) {
    fputs(usage, stderr);
    return LL_EXIT_USAGE;
}

int ll_cli_status(ll_status st) {
    (void)st;
    return ll_cli_fail("%s", ll_last_error());
}

ll_status ll_cli_parse_ids(const char *s, int32_t **out, int *n) {
    *out = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',' || *p == ' ';
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return ll_err(LL_ERR_NOMEM, "--tokens: no memory");
    const char *p = s;
    int k = 0;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) {
            free(ids);
            return ll_err(LL_ERR_ARG, "--tokens: item %d (\"%.*s\") is not a token id", k + 1,
                          (int)strcspn(p, ", "), p);
        }
        ids[k++] = (int32_t)v;
        p = end;
        if (*p && *p != ',' && *p != ' ') {
            free(ids);
            return ll_err(LL_ERR_ARG, "--tokens: unexpected character '%c' after item %d", *p, k);
        }
    }
    if (k == 0) {
        free(ids);
        return ll_err(LL_ERR_ARG, "--tokens: no token ids given");
    }
    *out = ids;
    *n = k;
    return LL_OK;
}

/* --device: "cuda", "cpu", or unset (cuda when a usable GPU is present, else cpu). */
static const char *ll_cli_device = NULL;

int ll_cli_common_opt(int argc, char **argv, int *i, int *status) {
    *status = 0;
    if (!strcmp(argv[*i], "--device")) {
        if (*i + 1 >= argc) {
            *status = ll_cli_fail("--device needs cuda or cpu");
            return 1;
        }
        const char *d = argv[++*i];
        if (strcmp(d, "cuda") && strcmp(d, "cpu")) {
            fprintf(stderr, "layerlab: error: --device: expected cuda or cpu, found '%s'\n", d);
            *status = LL_EXIT_USAGE;
            return 1;
        }
        ll_cli_device = d;
        return 1;
    }
    if (!strcmp(argv[*i], "--threads")) {
        if (*i + 1 >= argc) {
            *status = ll_cli_fail("--threads needs a number");
            return 1;
        }
        char *end;
        long n = strtol(argv[++*i], &end, 10);
        if (*end || n < 0 || n > 4096) {
            *status = ll_cli_fail("--threads: expected a thread count, found '%s'", argv[*i]);
            return 1;
        }
        ll_set_threads((int)n);
        return 1;
    }
    if (!strcmp(argv[*i], "--tokenizer")) {
        if (*i + 1 >= argc) {
            *status = ll_cli_fail("--tokenizer needs a file (tokenizer.json, tokenizer.model, .gguf or llama2.c .bin)");
            return 1;
        }
        ll_cli_tokenizer_path = argv[++*i];
        return 1;
    }
    return 0;
}

const char *ll_cli_tokenizer_path;

ll_status ll_cli_load_tokenizer(const char *model_path, int vocab_size, ll_tokenizer **t) {
    return ll_tokenizer_for_model(t, model_path, ll_cli_tokenizer_path, vocab_size);
}

ll_status ll_cli_load(const char *path, ll_model **m) {
    ll_load_opts lo = {0};
    return ll_model_load(m, path, &lo);
}

const ll_backend *ll_cli_backend(char *why, size_t why_len) {
    if (ll_cli_device && !strcmp(ll_cli_device, "cpu")) {
        snprintf(why, why_len, "--device cpu");
        return ll_backend_cpu();
    }
    const ll_backend *be = ll_backend_cuda();
    if (be) {
        snprintf(why, why_len, ll_cli_device ? "--device cuda" : "a CUDA device is present");
        return be;
    }
    if (ll_cli_device) return NULL; /* asked for cuda explicitly: the error stays set */
    snprintf(why, why_len, "%s", ll_last_error());
    return ll_backend_cpu();
}

ll_status ll_cli_load_for_run(const char *path, ll_model **m) {
    char why[512];
    const ll_backend *be = ll_cli_backend(why, sizeof why);
    if (!be) return ll_err_prefix(LL_ERR_DEVICE, "--device cuda: ");
    LL_TRY(ll_cli_load(path, m));
    ll_status st = ll_model_use_backend(*m, be);
    if (st) {
        ll_model_free(*m);
        *m = NULL;
    }
    return st;
}
