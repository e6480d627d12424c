/* Tokenizer benchmark, layerlab side: encode every line of a text file (one document
 * per line, the newline not included) on one thread, best of N passes, and print one
 * JSON line like tools/bench/tok_peer.py does for Hugging Face `tokenizers`.
 *
 *   ll_bench_tok --tokenizer PATH --text FILE [--reps N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/ll_mmap.h"
#include "tokenizer/ll_tokenizer.h"

static double ll_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *tok = NULL, *text = NULL, *dump = NULL;
    int reps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokenizer")) tok = argv[i + 1];
        else if (!strcmp(argv[i], "--text")) text = argv[i + 1];
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dump")) dump = argv[i + 1]; /* ids per document, for parity checks */
    }
    if (!tok || !text || reps < 1) {
        fprintf(stderr, "usage: ll_bench_tok --tokenizer PATH --text FILE [--reps N]\n");
        return 2;
    }
    ll_tokenizer *t;
    double t0 = ll_now();
    if (ll_tokenizer_for_model(&t, tok, NULL, 0)) {
        fprintf(stderr, "ll_bench_tok: %s\n", ll_last_error());
        return 1;
    }
    double load_s = ll_now() - t0;
    char *buf;
    size_t len;
    if (ll_read_file(text, &buf, &len)) {
        fprintf(stderr, "ll_bench_tok: %s\n", ll_last_error());
        return 1;
    }
    FILE *df = dump ? fopen(dump, "w") : NULL;
    double best = 1e30;
    size_t bytes = 0, ntok = 0, docs = 0;
    ll_encoding e = {0};
    for (int r = 0; r < reps; r++) {
        bytes = ntok = docs = 0;
        double s = ll_now();
        for (size_t at = 0; at < len;) {
            const char *nl = memchr(buf + at, '\n', len - at);
            size_t n = nl ? (size_t)(nl - (buf + at)) : len - at;
            e.n = 0;
            if (ll_tokenizer_encode(t, buf + at, n, LL_TOK_PARSE_SPECIAL, &e)) { /* as HF encode(add_special_tokens=False) */
                fprintf(stderr, "ll_bench_tok: line %zu: %s\n", docs + 1, ll_last_error());
                return 1;
            }
            if (df && r == 0) {
                for (size_t k = 0; k < e.n; k++) fprintf(df, k ? " %d" : "%d", (int)e.ids[k]);
                fputc('\n', df);
            }
            bytes += n;
            ntok += e.n;
            docs++;
            at += n + 1;
        }
        double el = ll_now() - s;
        if (el < best) best = el;
    }
    printf("{\"impl\": \"layerlab\", \"tokenizer\": \"%s\", \"describe\": \"%s\", \"bytes\": %zu, \"docs\": %zu, "
           "\"n_tokens\": %zu, \"best_s\": %.6f, \"mb_per_s\": %.4f, \"load_s\": %.4f, \"reps\": %d}\n",
           tok, ll_tokenizer_describe(t), bytes, docs, ntok, best, bytes / best / 1e6, load_s, reps);
    if (df) fclose(df);
    ll_encoding_free(&e);
    free(buf);
    ll_tokenizer_free(t);
    return 0;
}
