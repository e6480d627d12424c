/* layerlab run MODEL --tokens IDS: one forward pass; per position the input id and
 * the argmax of the next-token distribution. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_cli.h"

static const char usage[] =
    "usage: layerlab run MODEL --tokens 1,403,407 [--device cuda|cpu] [--threads N]\n"
    "prints one line per position: position, input token id, argmax next-token id, its logit\n";

int ll_cli_run(int argc, char **argv) {
    const char *path = NULL, *tokens = NULL;
    for (int i = 1; i < argc; i++) {
        int st;
        if (ll_cli_common_opt(argc, argv, &i, &st)) {
            if (st) return st;
        } else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            tokens = argv[++i];
        } else if (!strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            return ll_cli_fail("run: unknown option %s (or missing value)", argv[i]);
        } else if (!path) {
            path = argv[i];
        } else {
            return ll_cli_usage(usage);
        }
    }
    if (!path || !tokens) return ll_cli_usage(usage);
    int32_t *ids;
    int n;
    ll_status s = ll_cli_parse_ids(tokens, &ids, &n);
    if (s) return ll_cli_status(s);
    ll_model *m;
    if ((s = ll_cli_load_for_run(path, &m))) {
        free(ids);
        return ll_cli_status(s);
    }
    int V = m->cfg.vocab_size;
    float *logits = malloc((size_t)n * (size_t)V * sizeof(float));
    int rc = 0;
    if (!logits) {
        rc = ll_cli_fail("run: no memory for %d x %d logits", n, V);
    } else {
        int64_t off[2] = {0, n};
        ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = ids};
        ll_forward_opts o = {.logits = LL_LOGITS_ALL, .logits_out = logits};
        if ((s = ll_forward(m, &b, &o))) {
            rc = ll_cli_status(s);
        } else {
            printf("pos\ttoken\tnext\tlogit\n");
            for (int t = 0; t < n; t++) {
                const float *r = logits + (size_t)t * V;
                int best = 0;
                for (int j = 1; j < V; j++)
                    if (r[j] > r[best]) best = j;
                printf("%d\t%d\t%d\t%.4f\n", t, ids[t], best, (double)r[best]);
            }
        }
    }
    free(logits);
    free(ids);
    ll_model_free(m);
    return rc;
}
