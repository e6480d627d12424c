/* Tokenizer files that are wrong or unsupported: each gets an error naming the file
 * and the field or component, never a crash. Also the edge cases of encoding and
 * decoding that the corpus cannot express (ids out of range, byte runs split
 * across stream pushes, spans of inserted characters). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ll_test_util.h"
#include "tokenizer/ll_tokenizer.h"

/* A minimal valid byte-level BPE tokenizer.json with a few merges; `patch` replaces
 * the named component's JSON. */
static const char *ll_base_vocab =
    "{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"abc\":4,\"\xC4\xA0\":5,\"\xC4\xA0" "a\":6,\"<|end|>\":7}";

static char *ll_json(const char *model_type, const char *normalizer, const char *pre, const char *decoder,
                     const char *merges, const char *extra_model) {
    char *j = malloc(8192);
    snprintf(j, 8192,
             "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":7,\"content\":\"<|end|>\",\"special\":true}],"
             "\"normalizer\":%s,\"pre_tokenizer\":%s,\"post_processor\":null,\"decoder\":%s,"
             "\"model\":{\"type\":\"%s\",\"vocab\":%s,\"merges\":%s%s}}",
             normalizer, pre, decoder, model_type, ll_base_vocab, merges, extra_model);
    return j;
}

static ll_status ll_parse(const char *j, ll_tokenizer **t) {
    return ll_tokenizer_parse_hf(t, j, strlen(j), NULL, 0, "bad/tokenizer.json");
}

static const char *BL = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}";
static const char *MERGES = "[\"a b\",\"ab c\",\"\xC4\xA0 a\"]";

Test(tokenizer_bad, base_is_valid_and_merges_apply) {
    char *j = ll_json("BPE", "null", BL, BL, MERGES, "");
    ll_tokenizer *t;
    cr_assert_eq(ll_parse(j, &t), LL_OK, "%s", ll_last_error());
    ll_encoding e = {0};
    cr_assert_eq(ll_tokenizer_encode(t, "abc a<|end|>", 12, LL_TOK_DEFAULT, &e), LL_OK);
    int32_t want[] = {4, 6, 7};
    cr_assert_eq(e.n, 3);
    for (int i = 0; i < 3; i++) cr_expect_eq(e.ids[i], want[i], "token %d: %d", i, e.ids[i]);
    /* spans: "abc" [0,3), " a" [3,5), "<|end|>" [5,12) */
    cr_expect(e.start[1] == 3 && e.end[1] == 5 && e.start[2] == 5 && e.end[2] == 12);
    ll_encoding_free(&e);
    /* Without parsing specials, "<|end|>" is text: characters not in the vocabulary and
     * no unk token give a clear error naming the character. */
    cr_assert_neq(ll_tokenizer_encode(t, "a<|end|>", 8, 0, &e), LL_OK);
    cr_expect(strstr(ll_last_error(), "not in the vocabulary"), "%s", ll_last_error());
    cr_expect_eq(e.n, 0, "a failed encode leaves the encoding as it was");
    ll_encoding_free(&e);
    ll_tokenizer_free(t);
    free(j);
}

static void ll_expect_error(const char *j, ll_status want, const char *needle1, const char *needle2) {
    ll_tokenizer *t = NULL;
    ll_status st = ll_parse(j, &t);
    cr_assert_eq(st, want, "expected %s, got %s: %s", ll_status_name(want), ll_status_name(st), ll_last_error());
    cr_assert_null(t);
    cr_expect(strstr(ll_last_error(), "bad/tokenizer.json"), "message must name the file: %s", ll_last_error());
    cr_expect(strstr(ll_last_error(), needle1), "message must mention \"%s\": %s", needle1, ll_last_error());
    if (needle2) cr_expect(strstr(ll_last_error(), needle2), "message must mention \"%s\": %s", needle2, ll_last_error());
}

Test(tokenizer_bad, unsupported_model_type) {
    char *j = ll_json("Unigram", "null", BL, BL, MERGES, "");
    ll_expect_error(j, LL_ERR_UNSUPPORTED, "model type", "Unigram");
    free(j);
}

Test(tokenizer_bad, unsupported_pre_tokenizer) {
    char *j = ll_json("BPE", "null", "{\"type\":\"BertPreTokenizer\"}", BL, MERGES, "");
    ll_expect_error(j, LL_ERR_UNSUPPORTED, "pre_tokenizer", "BertPreTokenizer");
    free(j);
}

Test(tokenizer_bad, unsupported_pre_tokenizer_inside_sequence) {
    char *j = ll_json("BPE", "null", "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"ByteLevel\"},{\"type\":\"UnicodeScripts\"}]}", BL, MERGES, "");
    ll_expect_error(j, LL_ERR_UNSUPPORTED, "pre_tokenizer", "UnicodeScripts");
    free(j);
}

Test(tokenizer_bad, unsupported_normalizer_and_decoder) {
    char *j = ll_json("BPE", "{\"type\":\"BertNormalizer\"}", BL, BL, MERGES, "");
    ll_expect_error(j, LL_ERR_UNSUPPORTED, "normalizer", "BertNormalizer");
    free(j);
    j = ll_json("BPE", "null", BL, "{\"type\":\"CTC\"}", MERGES, "");
    ll_expect_error(j, LL_ERR_UNSUPPORTED, "decoder", "CTC");
    free(j);
}

Test(tokenizer_bad, bad_regex_is_named) {
    char *j = ll_json("BPE", "null", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(unclosed\"},\"behavior\":\"Isolated\"}", BL, MERGES, "");
    ll_expect_error(j, LL_ERR_UNSUPPORTED, "regex", "(unclosed");
    free(j);
}

Test(tokenizer_bad, malformed_fields) {
    char *j = ll_json("BPE", "null", BL, BL, "[\"a b c\"]", "");
    ll_expect_error(j, LL_ERR_FORMAT, "model.merges[0]", "left right");
    free(j);
    j = ll_json("BPE", "null", BL, BL, "[\"a q\"]", "");
    ll_expect_error(j, LL_ERR_FORMAT, "model.merges[0]", "right token");
    free(j);
    j = ll_json("BPE", "null", BL, BL, "[\"a b\", 7]", "");
    ll_expect_error(j, LL_ERR_FORMAT, "model.merges[1]", NULL);
    free(j);
    j = ll_json("BPE", "null", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"}}", BL, MERGES, "");
    ll_expect_error(j, LL_ERR_FORMAT, "behavior", NULL);
    free(j);
    j = ll_json("BPE", "null", BL, BL, MERGES, ",\"unk_token\":\"<nope>\"");
    ll_expect_error(j, LL_ERR_FORMAT, "unk_token", "<nope>");
    free(j);
    j = ll_json("BPE", "null", BL, BL, MERGES, ",\"dropout\":0.1");
    ll_expect_error(j, LL_ERR_UNSUPPORTED, "dropout", NULL);
    free(j);
    const char *no_model = "{\"added_tokens\":[]}";
    ll_expect_error(no_model, LL_ERR_FORMAT, "\"model\"", NULL);
    const char *bad_vocab = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"zero\"},\"merges\":[]}}";
    ll_expect_error(bad_vocab, LL_ERR_FORMAT, "model.vocab[\"a\"]", NULL);
    const char *truncated = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0";
    ll_expect_error(truncated, LL_ERR_FORMAT, "not valid JSON", NULL);
    const char *bad_template =
        "{\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"a\":0},\"unk_token\":\"a\"},\"post_processor\":"
        "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],"
        "\"special_tokens\":{}}}";
    ll_expect_error(bad_template, LL_ERR_FORMAT, "post_processor", "<s>");
}

Test(tokenizer_bad, files_that_are_not_tokenizers) {
    char path[4096];
    ll_tokenizer *t = NULL;
    const char junk[] = "\x08\x01\x12\x05hello"; /* protobuf with a bad nested length */
    cr_assert(ll_test_write_tmp(path, sizeof path, junk, sizeof junk - 1, ".model") == 0);
    cr_assert_neq(ll_tokenizer_load_spm(&t, path), LL_OK);
    cr_expect(strstr(ll_last_error(), path), "%s", ll_last_error());
    unlink(path);
    /* a llama2.c tokenizer whose second token's length runs past the end */
    unsigned char l2c[4 + 8 + 1 + 8] = {16, 0, 0, 0};
    float sc = 0;
    int32_t one = 1, big = 9;
    memcpy(l2c + 4, &sc, 4);
    memcpy(l2c + 8, &one, 4);
    l2c[12] = 'a';
    memcpy(l2c + 13, &sc, 4);
    memcpy(l2c + 17, &big, 4);
    cr_assert(ll_test_write_tmp(path, sizeof path, l2c, sizeof l2c, ".bin") == 0);
    cr_assert_neq(ll_tokenizer_load_llama2c(&t, path, 0), LL_OK);
    cr_expect(strstr(ll_last_error(), "token 1") && strstr(ll_last_error(), path), "%s", ll_last_error());
    unlink(path);
    cr_assert_neq(ll_tokenizer_load_hf(&t, "/nonexistent/tokenizer.json", NULL), LL_OK);
    cr_expect(strstr(ll_last_error(), "/nonexistent/tokenizer.json"), "%s", ll_last_error());
    /* a llama2.c checkpoint needs --tokenizer */
    cr_assert_neq(ll_tokenizer_for_model(&t, "some/model.bin", NULL, 512), LL_OK);
    cr_expect(strstr(ll_last_error(), "--tokenizer"), "%s", ll_last_error());
}

Test(tokenizer_bad, vocabulary_larger_than_the_model) {
    if (!ll_test_shared_assets()) cr_skip_test("../shared/assets not found");
    char p[4096];
    if (!ll_test_asset(p, sizeof p, "tiny-gpt2")) cr_skip_test("tiny-gpt2 not found");
    ll_tokenizer *t;
    cr_assert_neq(ll_tokenizer_for_model(&t, p, NULL, 1000), LL_OK);
    cr_expect(strstr(ll_last_error(), "50257") && strstr(ll_last_error(), "1000"), "%s", ll_last_error());
}

Test(tokenizer_bad, decode_rejects_unknown_ids) {
    char *j = ll_json("BPE", "null", BL, BL, MERGES, "");
    ll_tokenizer *t;
    cr_assert_eq(ll_parse(j, &t), LL_OK);
    int32_t ids[] = {0, 99};
    char *out;
    size_t n;
    cr_assert_neq(ll_tokenizer_decode(t, ids, 2, false, &out, &n), LL_OK);
    cr_expect(strstr(ll_last_error(), "99"), "%s", ll_last_error());
    ll_tokenizer_free(t);
    free(j);
}

/* A character split over byte tokens comes out of the stream only when complete. */
Test(tokenizer_bad, stream_holds_partial_utf8) {
    /* vocabulary with the three bytes of "€" (E2 82 AC) as single-byte tokens */
    const char *json =
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\xC3\xA2\":0,\"\xC4\xA4\":1,\"\xC2\xAC\":2,\"a\":3},\"merges\":[]},"
        "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"use_regex\":false},\"decoder\":{\"type\":\"ByteLevel\"}}";
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_parse_hf(&t, json, strlen(json), NULL, 0, "euro.json"), LL_OK, "%s", ll_last_error());
    ll_encoding e = {0};
    cr_assert_eq(ll_tokenizer_encode(t, "a\xE2\x82\xAC", 4, 0, &e), LL_OK, "%s", ll_last_error());
    cr_assert_eq(e.n, 4);
    int32_t want[] = {3, 0, 1, 2};
    for (int i = 0; i < 4; i++) cr_assert_eq(e.ids[i], want[i]);
    /* byte spans split the character exactly */
    cr_expect(e.start[1] == 1 && e.end[1] == 2 && e.start[3] == 3 && e.end[3] == 4);
    ll_detok_stream s;
    cr_assert_eq(ll_detok_stream_init(&s, t, NULL, 0, true), LL_OK);
    const char *expect_out[] = {"a", "", "", "\xE2\x82\xAC"};
    for (int i = 0; i < 4; i++) {
        char *o;
        size_t n;
        cr_assert_eq(ll_detok_stream_push(&s, e.ids[i], &o, &n), LL_OK);
        cr_expect_str_eq(o, expect_out[i], "push %d", i);
        free(o);
    }
    ll_detok_stream_free(&s);
    /* a lone lead byte decodes to U+FFFD, as Hugging Face's lossy decode does */
    char *o;
    size_t n;
    cr_assert_eq(ll_tokenizer_decode(t, (int32_t[]){3, 0}, 2, false, &o, &n), LL_OK);
    cr_expect_str_eq(o, "a\xEF\xBF\xBD");
    free(o);
    ll_encoding_free(&e);
    ll_tokenizer_free(t);
}

/* Invalid UTF-8 becomes U+FFFD (maximal subparts), and the token's span covers the
 * invalid bytes: here each invalid sequence is encoded with byte fallback. */
Test(tokenizer_bad, invalid_utf8_spans) {
    const char *json =
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<0xEF>\":0,\"<0xBF>\":1,\"<0xBD>\":2,\"a\":3},\"merges\":[],"
        "\"byte_fallback\":true},\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]}}";
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_parse_hf(&t, json, strlen(json), NULL, 0, "bf.json"), LL_OK, "%s", ll_last_error());
    /* "a", then E2 82 (truncated 3-byte sequence: one U+FFFD), then FF (one U+FFFD), then "a" */
    const char in[] = "a\xE2\x82\xFF" "a";
    ll_encoding e = {0};
    cr_assert_eq(ll_tokenizer_encode(t, in, 5, 0, &e), LL_OK, "%s", ll_last_error());
    int32_t want[] = {3, 0, 1, 2, 0, 1, 2, 3};
    cr_assert_eq(e.n, 8, "got %zu tokens", e.n);
    for (int i = 0; i < 8; i++) cr_expect_eq(e.ids[i], want[i], "token %d", i);
    cr_expect(e.start[1] == 1 && e.end[1] == 3, "first U+FFFD covers the two bytes of the truncated sequence");
    cr_expect(e.start[4] == 3 && e.end[4] == 4, "second U+FFFD covers 0xFF");
    char *o;
    size_t n;
    cr_assert_eq(ll_tokenizer_decode(t, e.ids, e.n, false, &o, &n), LL_OK);
    cr_expect_str_eq(o, "a\xEF\xBF\xBD\xEF\xBF\xBD" "a");
    free(o);
    ll_encoding_free(&e);
    ll_tokenizer_free(t);
}
