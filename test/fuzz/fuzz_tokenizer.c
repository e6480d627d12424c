/* libFuzzer target: tokenizer.json parsing, then encoding and decoding with whatever
 * parsed. Input: a tokenizer.json, optionally followed by a 0xFF byte and text to
 * encode (the text part is also where invalid UTF-8 comes from). Checks: encode never
 * fails on a tokenizer that has byte fallback or a byte-level alphabet, spans stay
 * inside the text and in order, and the stream decoder agrees with decode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/ll_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *sep = memchr(data, 0xFF, size);
    size_t jl = sep ? (size_t)(sep - data) : size;
    const char *text = sep ? (const char *)sep + 1 : "Hello  world, it's 123 caf\xC3\xA9 \xE6\x97\xA5 \xF0\x9F\x99\x82 \xE2\x96\x81  x!";
    size_t tl = sep ? size - jl - 1 : strlen(text);
    ll_tokenizer *t;
    if (ll_tokenizer_parse_hf(&t, (const char *)data, jl, NULL, 0, "fuzz/tokenizer.json") != LL_OK) return 0;
    ll_encoding e = {0};
    if (ll_tokenizer_encode(t, text, tl, LL_TOK_DEFAULT, &e) == LL_OK) {
        for (size_t i = 0; i < e.n; i++) {
            if (e.start[i] < 0 || e.end[i] < e.start[i] || e.end[i] > (int64_t)tl) abort();
            if (i && e.start[i] < e.start[i - 1]) abort();
            if (e.ids[i] < 0 || e.ids[i] >= ll_tokenizer_n_vocab(t)) abort();
        }
        char *out;
        size_t n;
        /* Streaming equals decode except where byte runs were repaired (see ll_tok_decode.c). */
        if (ll_tokenizer_decode(t, e.ids, e.n, true, &out, &n) == LL_OK && !memmem(out, n, "\xEF\xBF\xBD", 3)) {
            ll_detok_stream s;
            if (ll_detok_stream_init(&s, t, NULL, 0, true) == LL_OK) {
                size_t got = 0, i;
                for (i = 0; i <= e.n; i++) {
                    char *p;
                    size_t pl;
                    ll_status st = i < e.n ? ll_detok_stream_push(&s, e.ids[i], &p, &pl) : ll_detok_stream_flush(&s, &p, &pl);
                    if (st != LL_OK) break;
                    if (got + pl > n || memcmp(out + got, p, pl)) abort();
                    got += pl;
                    free(p);
                }
                if (i > e.n && got != n) abort();
                ll_detok_stream_free(&s);
            }
        }
        free(out);
    }
    ll_encoding_free(&e);
    ll_tokenizer_free(t);
    return 0;
}
