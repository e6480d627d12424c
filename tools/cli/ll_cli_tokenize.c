/* layerlab tokenize MODEL TEXT: the ids Hugging Face would give, or pieces with
 * the byte span of the text each token came from. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_cli.h"

static const char usage[] =
    "usage: layerlab tokenize MODEL TEXT [--no-special] [--pieces] [--tokenizer FILE]\n"
    "  MODEL        model directory, .gguf, tokenizer.json / .model, or a llama2.c .bin with --tokenizer\n"
    "  TEXT         the text; '-' reads it from standard input (bytes as they are)\n"
    "  --no-special no BOS/EOS, and special tokens written in TEXT are plain text\n"
    "  --pieces     one line per token: index, id, byte span [start, end), piece, text of the span\n";

/* Print bytes with control characters, backslashes and invalid UTF-8 escaped. */
static void ll_put_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c == '\\') fputs("\\\\", stdout);
        else if (c < 0x20 || c == 0x7F) printf("\\x%02x", c);
        else if (c >= 0x80) {
            /* Whole valid multi-byte characters print as themselves. */
            size_t l = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
            bool ok = l && i + l <= n && c <= 0xF4;
            for (size_t k = 1; ok && k < l; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
            if (ok) {
                fwrite(s + i, 1, l, stdout);
                i += l - 1;
            } else {
                printf("\\x%02x", c);
            }
        } else putchar(c);
    }
}

static char *ll_read_stdin(size_t *n) {
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap);
    while (b) {
        size_t r = fread(b + len, 1, cap - len, stdin);
        len += r;
        if (len < cap) break;
        char *nb = realloc(b, cap *= 2);
        if (!nb) free(b);
        b = nb;
    }
    *n = len;
    return b;
}

int ll_cli_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL;
    bool pieces = false, special = true;
    for (int i = 1; i < argc; i++) {
        int st;
        if (ll_cli_common_opt(argc, argv, &i, &st)) {
            if (st) return st;
        } else if (!strcmp(argv[i], "--no-special")) {
            special = false;
        } else if (!strcmp(argv[i], "--pieces")) {
            pieces = true;
        } else if (!strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return ll_cli_fail("tokenize: unknown option %s (or missing value)", argv[i]);
        } else if (!model) {
            model = argv[i];
        } else if (!text) {
            text = argv[i];
        } else {
            return ll_cli_usage(usage);
        }
    }
    if (!model || !text) return ll_cli_usage(usage);
    size_t len;
    char *owned = NULL;
    if (!strcmp(text, "-")) {
        owned = ll_read_stdin(&len);
        if (!owned) return ll_cli_fail("tokenize: no memory for standard input");
        text = owned;
    } else {
        len = strlen(text);
    }
    ll_tokenizer *t;
    ll_status s = ll_cli_load_tokenizer(model, 0, &t);
    if (s) {
        free(owned);
        return ll_cli_status(s);
    }
    ll_encoding e = {0};
    s = ll_tokenizer_encode(t, text, len, special ? LL_TOK_DEFAULT : 0, &e);
    if (s) {
        free(owned);
        ll_tokenizer_free(t);
        return ll_cli_status(s);
    }
    if (pieces) {
        for (size_t i = 0; i < e.n; i++) {
            size_t pl;
            const char *p = ll_tokenizer_piece(t, e.ids[i], &pl);
            printf("%zu\t%d\t%lld\t%lld\t", i, (int)e.ids[i], (long long)e.start[i], (long long)e.end[i]);
            ll_put_escaped(p ? p : "", p ? pl : 0);
            putchar('\t');
            ll_put_escaped(text + e.start[i], (size_t)(e.end[i] - e.start[i]));
            putchar('\n');
        }
    } else {
        for (size_t i = 0; i < e.n; i++) printf(i ? " %d" : "%d", (int)e.ids[i]);
        putchar('\n');
    }
    ll_encoding_free(&e);
    ll_tokenizer_free(t);
    free(owned);
    return 0;
}
