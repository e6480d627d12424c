/* GGUF "gpt2" vocabularies (byte-level BPE with merges and a named pre-tokenizer), the
 * way llama.cpp's converter writes them: the test writes a vocabulary-only GGUF from a
 * tokenizer.json (tokens by id in GPT-2's alphabet, "left right" merges, token types,
 * tokenizer.ggml.pre) and the tokenizer read from it must give the same ids as
 * Hugging Face on the whole corpus: GPT-2 ("gpt-2"), the Llama-3-shaped fixture
 * ("llama-bpe", with ignore_merges) and the Qwen2-shaped one ("qwen2", with NFC). */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/ll_gguf.h"
#include "io/ll_mmap.h"
#include "ll_test_util.h"
#include "tokenizer/ll_tokenizer.h"

typedef struct {
    unsigned char *p;
    size_t n, cap;
} ll_gb;

static void ll_gb_put(ll_gb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void ll_gb_u32(ll_gb *b, uint32_t v) { ll_gb_put(b, &v, 4); }
static void ll_gb_u64(ll_gb *b, uint64_t v) { ll_gb_put(b, &v, 8); }
static void ll_gb_str(ll_gb *b, const char *s) {
    ll_gb_u64(b, strlen(s));
    ll_gb_put(b, s, strlen(s));
}
static void ll_gb_key(ll_gb *b, const char *k, uint32_t type) {
    ll_gb_str(b, k);
    ll_gb_u32(b, type);
}

/* tokenizer.json -> GGUF bytes. */
static ll_gb ll_gguf_from_hf(const char *json_path, const char *pre, int add_bos, const char *bos) {
    char *txt;
    size_t len;
    cr_assert_eq(ll_read_file(json_path, &txt, &len), LL_OK, "%s", ll_last_error());
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    cr_assert(root);
    const cJSON *model = cJSON_GetObjectItem(root, "model"), *vocab = cJSON_GetObjectItem(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItem(model, "merges"), *added = cJSON_GetObjectItem(root, "added_tokens"), *it;
    int n = 0;
    cJSON_ArrayForEach(it, vocab) if (it->valueint + 1 > n) n = it->valueint + 1;
    cJSON_ArrayForEach(it, added) if (cJSON_GetObjectItem(it, "id")->valueint + 1 > n) n = cJSON_GetObjectItem(it, "id")->valueint + 1;
    const char **tok = calloc((size_t)n, sizeof *tok);
    int32_t *type = calloc((size_t)n, sizeof *type);
    cJSON_ArrayForEach(it, vocab) {
        tok[it->valueint] = it->string;
        type[it->valueint] = 1;
    }
    int bos_id = -1;
    cJSON_ArrayForEach(it, added) {
        int id = cJSON_GetObjectItem(it, "id")->valueint;
        tok[id] = cJSON_GetObjectItem(it, "content")->valuestring;
        type[id] = cJSON_IsTrue(cJSON_GetObjectItem(it, "special")) ? 3 : 4;
        if (bos && !strcmp(tok[id], bos)) bos_id = id;
    }
    for (int i = 0; i < n; i++) cr_assert(tok[i], "%s: id %d has no token", json_path, i);
    ll_gb b = {0};
    ll_gb_put(&b, "GGUF", 4);
    ll_gb_u32(&b, 3);
    ll_gb_u64(&b, 0); /* tensors */
    ll_gb_u64(&b, bos_id >= 0 ? 8 : 7);
    ll_gb_key(&b, "general.architecture", 8);
    ll_gb_str(&b, "llama");
    ll_gb_key(&b, "tokenizer.ggml.model", 8);
    ll_gb_str(&b, "gpt2");
    ll_gb_key(&b, "tokenizer.ggml.pre", 8);
    ll_gb_str(&b, pre);
    ll_gb_key(&b, "tokenizer.ggml.tokens", 9);
    ll_gb_u32(&b, 8);
    ll_gb_u64(&b, (uint64_t)n);
    for (int i = 0; i < n; i++) ll_gb_str(&b, tok[i]);
    ll_gb_key(&b, "tokenizer.ggml.token_type", 9);
    ll_gb_u32(&b, 5);
    ll_gb_u64(&b, (uint64_t)n);
    ll_gb_put(&b, type, (size_t)n * 4);
    ll_gb_key(&b, "tokenizer.ggml.merges", 9);
    ll_gb_u32(&b, 8);
    ll_gb_u64(&b, (uint64_t)cJSON_GetArraySize(merges));
    cJSON_ArrayForEach(it, merges) {
        char m[2048];
        if (cJSON_IsString(it)) snprintf(m, sizeof m, "%s", it->valuestring);
        else snprintf(m, sizeof m, "%s %s", cJSON_GetArrayItem(it, 0)->valuestring, cJSON_GetArrayItem(it, 1)->valuestring);
        ll_gb_str(&b, m);
    }
    ll_gb_key(&b, "tokenizer.ggml.add_bos_token", 7);
    unsigned char ab = (unsigned char)add_bos;
    ll_gb_put(&b, &ab, 1);
    if (bos_id >= 0) {
        ll_gb_key(&b, "tokenizer.ggml.bos_token_id", 4);
        ll_gb_u32(&b, (uint32_t)bos_id);
    }
    /* no tensors: the data section is empty but still aligned */
    while (b.n % 32) ll_gb_put(&b, "", 1);
    free(tok);
    free(type);
    cJSON_Delete(root);
    return b;
}

static int ll_hexv(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

/* Every corpus string: ids (specials parsed, none added) and default ids as expected. */
static void ll_gguf_case(const char *json_path, const char *pre, int add_bos, const char *bos, const char *expected) {
    ll_gb g = ll_gguf_from_hf(json_path, pre, add_bos, bos);
    ll_gguf *gg;
    cr_assert_eq(ll_gguf_parse(&gg, g.p, g.n, "vocab.gguf"), LL_OK, "%s", ll_last_error());
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_load_gguf(&t, gg), LL_OK, "%s", ll_last_error());
    char *corpus, *exp;
    size_t cl, el;
    cr_assert_eq(ll_read_file("test/tokenizer/corpus.jsonl", &corpus, &cl), LL_OK);
    cr_assert_eq(ll_read_file(expected, &exp, &el), LL_OK);
    char *s1 = NULL, *s2 = NULL;
    char *cline = strtok_r(corpus, "\n", &s1);
    char *eline = strtok_r(exp, "\n", &s2); /* header */
    int compared = 0, bad = 0;
    for (eline = strtok_r(NULL, "\n", &s2); cline && eline; cline = strtok_r(NULL, "\n", &s1), eline = strtok_r(NULL, "\n", &s2)) {
        cJSON *c = cJSON_Parse(cline), *e = cJSON_Parse(eline);
        cr_assert_eq(cJSON_GetObjectItem(c, "id")->valueint, cJSON_GetObjectItem(e, "id")->valueint);
        const char *hex = cJSON_GetObjectItem(c, "hex")->valuestring;
        size_t n = strlen(hex) / 2;
        char *bytes = malloc(n + 1);
        for (size_t i = 0; i < n; i++) bytes[i] = (char)(ll_hexv(hex[2 * i]) * 16 + ll_hexv(hex[2 * i + 1]));
        for (int pass = 0; pass < 2; pass++) {
            const cJSON *want = cJSON_GetObjectItem(e, pass ? "ids_default" : "ids");
            ll_encoding en = {0};
            cr_assert_eq(ll_tokenizer_encode(t, bytes, n, pass ? LL_TOK_DEFAULT : LL_TOK_PARSE_SPECIAL, &en), LL_OK, "%s", ll_last_error());
            bool ok = (int)en.n == cJSON_GetArraySize(want);
            for (size_t k = 0; ok && k < en.n; k++) ok = en.ids[k] == cJSON_GetArrayItem(want, (int)k)->valueint;
            if (!ok && bad++ < 5) cr_log_error("%s (GGUF, pre %s): string %d differs (%s)", expected, pre, cJSON_GetObjectItem(c, "id")->valueint, pass ? "default specials" : "ids");
            ll_encoding_free(&en);
        }
        compared++;
        free(bytes);
        cJSON_Delete(c);
        cJSON_Delete(e);
    }
    cr_assert_eq(bad, 0, "%s via GGUF: %d mismatches over %d strings", expected, bad, compared);
    cr_assert_gt(compared, 400);
    free(corpus);
    free(exp);
    ll_tokenizer_free(t);
    ll_gguf_free(gg);
    free(g.p);
}

Test(tokenizer_gguf, gpt2_pre) {
    char p[4096];
    if (!ll_test_asset(p, sizeof p, "tiny-gpt2/tokenizer.json")) cr_skip_test("../shared/assets/tiny-gpt2 not found");
    ll_gguf_case(p, "gpt-2", 0, NULL, "test/tokenizer/expected/tiny-gpt2.jsonl");
}

Test(tokenizer_gguf, llama_bpe_pre) {
    ll_gguf_case("test/tokenizer/fixtures/llama3/tokenizer.json", "llama-bpe", 1, "<|begin_of_text|>", "test/tokenizer/expected/llama3.jsonl");
}

Test(tokenizer_gguf, qwen2_pre) {
    ll_gguf_case("test/tokenizer/fixtures/qwen2/tokenizer.json", "qwen2", 0, NULL, "test/tokenizer/expected/qwen2.jsonl");
}

Test(tokenizer_gguf, unknown_pre_is_named) {
    ll_gb g = ll_gguf_from_hf("test/tokenizer/fixtures/qwen2/tokenizer.json", "chameleon", 0, NULL);
    ll_gguf *gg;
    cr_assert_eq(ll_gguf_parse(&gg, g.p, g.n, "vocab.gguf"), LL_OK, "%s", ll_last_error());
    ll_tokenizer *t;
    cr_assert_neq(ll_tokenizer_load_gguf(&t, gg), LL_OK);
    cr_expect(strstr(ll_last_error(), "tokenizer.ggml.pre") && strstr(ll_last_error(), "chameleon"), "%s", ll_last_error());
    ll_gguf_free(gg);
    free(g.p);
}
