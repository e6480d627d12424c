/* Tokenizers against Hugging Face `tokenizers` / transformers and Debian's spm_encode.
 *
 * test/tokenizer/corpus.jsonl holds a few hundred strings (prose, code, numbers,
 * whitespace runs, contractions, accents, CJK, emoji, invalid UTF-8, the empty
 * string); test/tokenizer/expected/<name>.jsonl holds, per string, the ids Hugging
 * Face gives (tools/gen_tok_fixtures.py wrote them). Every id must match. Besides the
 * ids: decode must equal Hugging Face's decode, spans must be ordered and inside the
 * input (and tile it for byte-level vocabularies), decode(encode(s)) == s where the
 * tokenizer is lossless, and the streaming decoder must give the same text as a
 * whole decode. Real tokenizers from ../shared are skipped with a message when it is
 * absent. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ll_mmap.h"
#include "ll_test_util.h"
#include "tokenizer/ll_tokenizer.h"

typedef struct {
    int id;
    char cat[32];
    char *bytes;
    size_t n;
    bool valid_utf8;
} ll_tc_str;

static ll_tc_str *g_corpus;
static int g_ncorpus;

static int ll_hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static char *ll_unhex(const char *h, size_t *n) {
    size_t l = strlen(h);
    char *o = malloc(l / 2 + 1);
    cr_assert(o && l % 2 == 0, "bad hex string");
    for (size_t i = 0; i < l / 2; i++) o[i] = (char)(ll_hexval(h[2 * i]) * 16 + ll_hexval(h[2 * i + 1]));
    o[l / 2] = 0;
    *n = l / 2;
    return o;
}

/* Each line of a .jsonl file, parsed; returns the count. */
static int ll_read_jsonl(const char *path, cJSON ***out) {
    char *text;
    size_t len;
    cr_assert_eq(ll_read_file(path, &text, &len), LL_OK, "%s", ll_last_error());
    int n = 0, cap = 512;
    cJSON **v = malloc((size_t)cap * sizeof *v);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!*line) continue;
        cJSON *j = cJSON_Parse(line);
        cr_assert(j, "%s: line %d is not JSON", path, n + 1);
        if (n == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        v[n++] = j;
    }
    free(text);
    *out = v;
    return n;
}

static void ll_free_jsonl(cJSON **v, int n) {
    for (int i = 0; i < n; i++) cJSON_Delete(v[i]);
    free(v);
}

static void ll_load_corpus(void) {
    if (g_corpus) return;
    cJSON **v;
    int n = ll_read_jsonl("test/tokenizer/corpus.jsonl", &v);
    g_corpus = calloc((size_t)n, sizeof *g_corpus);
    for (int i = 0; i < n; i++) {
        ll_tc_str *s = &g_corpus[i];
        s->id = cJSON_GetObjectItem(v[i], "id")->valueint;
        cr_assert_eq(s->id, i, "corpus ids must be 0..n-1 in order");
        const cJSON *cat = cJSON_GetObjectItem(v[i], "cat");
        snprintf(s->cat, sizeof s->cat, "%s", cJSON_IsString(cat) ? cat->valuestring : "?");
        s->bytes = ll_unhex(cJSON_GetObjectItem(v[i], "hex")->valuestring, &s->n);
        s->valid_utf8 = cJSON_IsString(cJSON_GetObjectItem(v[i], "text"));
    }
    g_ncorpus = n;
    ll_free_jsonl(v, n);
    cr_assert_gt(g_ncorpus, 200, "the corpus should hold a few hundred strings");
}

static bool ll_ids_equal(const ll_encoding *e, const cJSON *arr, char *msg, size_t cap) {
    int n = cJSON_GetArraySize(arr);
    bool ok = (size_t)n == e->n;
    for (int i = 0; ok && i < n; i++) ok = cJSON_GetArrayItem(arr, i)->valueint == e->ids[i];
    if (!ok) {
        int w = snprintf(msg, cap, "expected [");
        for (int i = 0; i < n && w < (int)cap - 20; i++) w += snprintf(msg + w, cap - (size_t)w, "%s%d", i ? " " : "", cJSON_GetArrayItem(arr, i)->valueint);
        w += snprintf(msg + w, cap - (size_t)w, "] got [");
        for (size_t i = 0; i < e->n && w < (int)cap - 20; i++) w += snprintf(msg + w, cap - (size_t)w, "%s%d", i ? " " : "", e->ids[i]);
        snprintf(msg + w, cap - (size_t)w, "]");
    }
    return ok;
}

typedef enum { LL_TC_HF, LL_TC_SPM } ll_tc_kind;

typedef struct {
    bool byte_level; /* lossless: spans tile the input and decode(encode(s)) == s */
    bool skip_collapsible; /* only strings whose whitespace SentencePiece would not squeeze */
    bool spm_roundtrip;    /* SentencePiece with byte fallback: lossless but for a leading space */
    bool collapses;        /* the vocabulary squeezes whitespace (remove_extra_whitespaces) */
} ll_tc_opts;

/* SentencePiece's remove_extra_whitespaces changes strings with leading, trailing or
 * repeated spaces; vocabularies that do not carry the flag (llama2.c, GGUF) are
 * compared on the other strings only. */
static bool ll_collapsible(const ll_tc_str *s) {
    if (!s->n) return false;
    if (s->bytes[0] == ' ' || s->bytes[s->n - 1] == ' ') return true;
    /* Literal U+2581 in the input: SentencePiece treats it as an escaped space, a
     * llama2.c vocabulary (spaces stored as ' ') cannot. */
    return memmem(s->bytes, s->n, "  ", 2) || memmem(s->bytes, s->n, "\xE2\x96\x81", 3);
}

/* Compare `t` with an expected-ids file. Returns the number of strings compared. */
static int ll_check(const ll_tokenizer *t, const char *expected, ll_tc_kind kind, ll_tc_opts o) {
    ll_load_corpus();
    cJSON **v;
    int n = ll_read_jsonl(expected, &v);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(v[0], "header")), "%s: first line must be the header", expected);
    int compared = 0, bad = 0, roundtrips = 0;
    char msg[2048];
    for (int i = 1; i < n; i++) {
        int id = cJSON_GetObjectItem(v[i], "id")->valueint;
        cr_assert(id >= 0 && id < g_ncorpus, "%s: id %d outside the corpus", expected, id);
        const ll_tc_str *s = &g_corpus[id];
        if (o.skip_collapsible && ll_collapsible(s)) continue;
        compared++;
        /* ids without specials added; special tokens in the text are parsed by HF. */
        ll_encoding e = {0};
        unsigned flags = kind == LL_TC_HF ? LL_TOK_PARSE_SPECIAL : 0;
        ll_status st = ll_tokenizer_encode(t, s->bytes, s->n, flags, &e);
        cr_assert_eq(st, LL_OK, "%s: string %d: %s", expected, id, ll_last_error());
        if (!ll_ids_equal(&e, cJSON_GetObjectItem(v[i], "ids"), msg, sizeof msg)) {
            if (bad++ < 5) cr_log_error("%s: string %d (%s, \"%.60s\"): %s", expected, id, s->cat, s->bytes, msg);
        }
        /* spans: ordered, inside the input */
        for (size_t k = 0; k < e.n; k++) {
            cr_assert(e.start[k] >= 0 && e.start[k] <= e.end[k] && e.end[k] <= (int64_t)s->n,
                      "%s: string %d: token %zu span [%lld, %lld) outside [0, %zu]", expected, id, k, (long long)e.start[k], (long long)e.end[k], s->n);
            if (k) cr_assert(e.start[k] >= e.start[k - 1], "%s: string %d: spans out of order at token %zu", expected, id, k);
        }
        if (o.byte_level && s->valid_utf8) {
            /* tiles: no gap, no overlap; each token's bytes are exactly its span */
            int64_t at = 0;
            for (size_t k = 0; k < e.n; k++) {
                if (ll_tokenizer_is_special(t, e.ids[k])) {
                    at = e.end[k];
                    continue;
                }
                cr_assert_eq(e.start[k], at, "%s: string %d: token %zu starts at %lld, expected %lld", expected, id, k, (long long)e.start[k], (long long)at);
                size_t pl;
                const char *p = ll_tokenizer_piece(t, e.ids[k], &pl);
                cr_assert(pl == (size_t)(e.end[k] - e.start[k]) && !memcmp(p, s->bytes + e.start[k], pl),
                          "%s: string %d: token %zu (id %d) is not the text of its span", expected, id, k, e.ids[k]);
                at = e.end[k];
            }
            cr_assert_eq(at, (int64_t)s->n, "%s: string %d: spans end at %lld of %zu bytes", expected, id, (long long)at, s->n);
            char *rt;
            size_t rl;
            cr_assert_eq(ll_tokenizer_decode(t, e.ids, e.n, false, &rt, &rl), LL_OK);
            cr_expect(rl == s->n && !memcmp(rt, s->bytes, rl), "%s: string %d: decode(encode(s)) != s", expected, id);
            free(rt);
        }
        if (o.spm_roundtrip && s->valid_utf8 && !(s->n && s->bytes[0] == ' ') && !memmem(s->bytes, s->n, "\xE2\x96\x81", 3) &&
            !(o.collapses && ll_collapsible(s))) {
            char *rt;
            size_t rl;
            cr_assert_eq(ll_tokenizer_decode(t, e.ids, e.n, false, &rt, &rl), LL_OK);
            cr_expect(rl == s->n && !memcmp(rt, s->bytes, rl), "%s: string %d: decode(encode(s)) = \"%s\" != s", expected, id, rt);
            roundtrips++;
            free(rt);
        }
        if (kind == LL_TC_HF) {
            /* decode as Hugging Face does (specials kept) */
            const cJSON *dh = cJSON_GetObjectItem(v[i], "decoded_hex");
            if (cJSON_IsString(dh)) {
                size_t dl;
                char *want = ll_unhex(dh->valuestring, &dl);
                char *got;
                size_t gl;
                cr_assert_eq(ll_tokenizer_decode(t, e.ids, e.n, false, &got, &gl), LL_OK, "%s", ll_last_error());
                if (!(gl == dl && !memcmp(got, want, dl)) && bad++ < 5)
                    cr_log_error("%s: string %d: decode gives \"%s\", Hugging Face \"%s\"", expected, id, got, want);
                free(got);
                free(want);
            }
            /* with the default special tokens (what transformers' tokenizer(text) gives) */
            const cJSON *dflt = cJSON_GetObjectItem(v[i], "ids_default");
            if (cJSON_IsArray(dflt)) {
                ll_encoding d = {0};
                cr_assert_eq(ll_tokenizer_encode(t, s->bytes, s->n, LL_TOK_DEFAULT, &d), LL_OK);
                if (!ll_ids_equal(&d, dflt, msg, sizeof msg) && bad++ < 5)
                    cr_log_error("%s: string %d, default specials: %s", expected, id, msg);
                ll_encoding_free(&d);
            }
        }
        /* streaming decode == whole decode */
        {
            char *whole;
            size_t wl;
            cr_assert_eq(ll_tokenizer_decode(t, e.ids, e.n, true, &whole, &wl), LL_OK);
            ll_detok_stream ds;
            cr_assert_eq(ll_detok_stream_init(&ds, t, NULL, 0, true), LL_OK);
            char *acc = malloc(wl + 64);
            size_t al = 0;
            bool over = false;
            for (size_t k = 0; k <= e.n; k++) {
                char *piece;
                size_t pl;
                if (k < e.n) cr_assert_eq(ll_detok_stream_push(&ds, e.ids[k], &piece, &pl), LL_OK);
                else cr_assert_eq(ll_detok_stream_flush(&ds, &piece, &pl), LL_OK);
                if (al + pl > wl + 63) over = true;
                else memcpy(acc + al, piece, pl);
                al += pl;
                free(piece);
            }
            cr_expect(!over && al == wl && !memcmp(acc, whole, wl), "%s: string %d: streamed decode differs from decode", expected, id);
            free(acc);
            free(whole);
            ll_detok_stream_free(&ds);
        }
        ll_encoding_free(&e);
    }
    ll_free_jsonl(v, n);
    if (o.spm_roundtrip) cr_assert_gt(roundtrips, 100, "%s: only %d round trips checked", expected, roundtrips);
    cr_assert_eq(bad, 0, "%s: %d of %d strings differ from the reference (first ones logged above)", expected, bad, compared);
    return compared;
}

static ll_tokenizer *ll_load_fixture(const char *dir) {
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_for_model(&t, dir, NULL, 0), LL_OK, "%s", ll_last_error());
    return t;
}

#define LL_FIXTURE_TEST(name, dir, expected, bl)                                                                       \
    Test(tokenizer_hf, name) {                                                                                         \
        ll_tokenizer *t = ll_load_fixture(dir);                                                                        \
        int n = ll_check(t, "test/tokenizer/expected/" expected ".jsonl", LL_TC_HF, (ll_tc_opts){.byte_level = bl});   \
        cr_assert_gt(n, 200);                                                                                          \
        ll_tokenizer_free(t);                                                                                          \
    }

/* Model fixtures (tokenizers trained by the fixture generator, vocab 512). */
LL_FIXTURE_TEST(fx_llama_gqa, "test/fixtures/llama_gqa", "fx-llama_gqa", false)
LL_FIXTURE_TEST(fx_llama3_rope, "test/fixtures/llama3_rope", "fx-llama3_rope", false)
LL_FIXTURE_TEST(fx_mistral, "test/fixtures/mistral", "fx-mistral", false)
LL_FIXTURE_TEST(fx_qwen2, "test/fixtures/qwen2", "fx-qwen2", false)
LL_FIXTURE_TEST(fx_gpt2, "test/fixtures/gpt2", "fx-gpt2", true)

/* Tokenizer-only fixtures shaped like the real Llama-3 / Qwen2 / WordLevel files. */
LL_FIXTURE_TEST(llama3, "test/tokenizer/fixtures/llama3", "llama3", true)
LL_FIXTURE_TEST(qwen2, "test/tokenizer/fixtures/qwen2", "qwen2", false) /* NFC changes some strings */
LL_FIXTURE_TEST(wordlevel, "test/tokenizer/fixtures/wordlevel", "wordlevel", false)
LL_FIXTURE_TEST(gpt2_added, "test/tokenizer/fixtures/gpt2_added", "gpt2_added", false)

/* Real tokenizers from ../shared. */
Test(tokenizer_hf, tiny_gpt2) {
    char p[4096];
    if (!ll_test_asset(p, sizeof p, "tiny-gpt2/tokenizer.json")) cr_skip_test("../shared/assets/tiny-gpt2 not found");
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_for_model(&t, p, NULL, 50257), LL_OK, "%s", ll_last_error());
    ll_check(t, "test/tokenizer/expected/tiny-gpt2.jsonl", LL_TC_HF, (ll_tc_opts){.byte_level = true});
    ll_tokenizer_free(t);
}

/* Llama-2: its SentencePiece model read directly, against transformers' conversion. */
Test(tokenizer_hf, llama2_model_vs_transformers) {
    char p[4096];
    if (!ll_test_asset(p, sizeof p, "llama2-tokenizer/tokenizer.model")) cr_skip_test("../shared/assets/llama2-tokenizer not found");
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_load_spm(&t, p), LL_OK, "%s", ll_last_error());
    ll_check(t, "test/tokenizer/expected/llama2.jsonl", LL_TC_HF, (ll_tc_opts){0});
    ll_tokenizer_free(t);
}

/* SentencePiece vocabularies against Debian's spm_encode. */
static void ll_spm_case(const char *rel, const char *expected, bool skip_collapsible, int vocab, bool collapses) {
    char p[4096];
    if (!ll_test_asset(p, sizeof p, rel)) cr_skip_test("../shared/assets/%s not found", rel);
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_for_model(&t, p, strstr(rel, ".bin") ? p : NULL, vocab), LL_OK,
                 "%s", ll_last_error());
    int n = ll_check(t, expected, LL_TC_SPM,
                     (ll_tc_opts){.skip_collapsible = skip_collapsible, .spm_roundtrip = true, .collapses = collapses});
    cr_assert_gt(n, 100, "%s: only %d strings compared", rel, n);
    ll_tokenizer_free(t);
}

Test(tokenizer_spm, tok512_model) { ll_spm_case("stories260K/tok512.model", "test/tokenizer/expected/spm-tok512.jsonl", false, 0, true); }
Test(tokenizer_spm, tok512_llama2c_bin) { ll_spm_case("stories260K/tok512.bin", "test/tokenizer/expected/spm-tok512.jsonl", true, 512, false); }
Test(tokenizer_spm, stories260k_gguf_vocab) {
    ll_spm_case("stories260K/tinyllamas-stories-260k-f32.gguf", "test/tokenizer/expected/spm-tok512.jsonl", true, 512, false);
}
Test(tokenizer_spm, llama2_model) { ll_spm_case("llama2-tokenizer/tokenizer.model", "test/tokenizer/expected/spm-llama2.jsonl", false, 0, false); }
Test(tokenizer_spm, llama2_llama2c_bin) { ll_spm_case("llama2-tokenizer/tokenizer.bin", "test/tokenizer/expected/spm-llama2.jsonl", true, 32000, false); }
Test(tokenizer_spm, llama2_gguf_vocab) {
    ll_spm_case("llama-2-tiny-random-gguf/llama-2-tiny-random.gguf", "test/tokenizer/expected/spm-llama2.jsonl", true, 0, false);
}
