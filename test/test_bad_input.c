/* Bad checkpoints: each gets one clear error naming the file and the field or tensor,
 * never a crash. safetensors and config.json are synthesized here; every prefix of a
 * valid file must be rejected cleanly. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ll_test_util.h"

/* Build a safetensors file from a JSON header and a data section. */
static size_t ll_st_build(unsigned char *out, const char *header, size_t data_len) {
    size_t h = strlen(header);
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(out + 8, header, h);
    for (size_t i = 0; i < data_len; i++) out[8 + h + i] = (unsigned char)i;
    return 8 + h + data_len;
}

static ll_status ll_st_parse(const char *header, size_t data_len, ll_tensor_set *s) {
    static unsigned char buf[8192];
    size_t n = ll_st_build(buf, header, data_len);
    memset(s, 0, sizeof *s);
    return ll_safetensors_parse(s, buf, n, "t.safetensors", -1);
}

static void ll_expect_err(const char *header, size_t data_len, ll_status want, const char *needle) {
    ll_tensor_set s;
    ll_status st = ll_st_parse(header, data_len, &s);
    cr_expect_eq(st, want, "header %s: status %s, expected %s (%s)", header, ll_status_name(st), ll_status_name(want),
                 ll_last_error());
    cr_expect(strstr(ll_last_error(), needle) != NULL, "message \"%s\" should mention \"%s\"", ll_last_error(),
              needle);
    cr_expect(strstr(ll_last_error(), "t.safetensors") != NULL, "message must name the file: %s", ll_last_error());
    ll_tensor_set_free(&s);
}

Test(bad_input, safetensors_valid_file_parses) {
    ll_tensor_set s;
    cr_assert_eq(ll_st_parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                             "\"__metadata__\":{\"format\":\"pt\"}}",
                             24, &s),
                 LL_OK, "%s", ll_last_error());
    cr_assert_eq(s.n, 1);
    cr_expect_eq(s.t[0].shape[1], 3);
    ll_tensor_set_free(&s);
}

Test(bad_input, safetensors_malformed_headers) {
    ll_expect_err("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,48]}}", 24, LL_ERR_FORMAT, "out of range");
    ll_expect_err("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24, LL_ERR_FORMAT, "need 24 bytes");
    ll_expect_err("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                  16, LL_ERR_FORMAT, "overlap");
    ll_expect_err("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, LL_ERR_UNSUPPORTED, "Q4");
    ll_expect_err("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, LL_ERR_FORMAT, "dtype");
    ll_expect_err("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, LL_ERR_FORMAT, "shape");
    ll_expect_err("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, LL_ERR_FORMAT, "data_offsets");
    ll_expect_err("[1,2]", 0, LL_ERR_FORMAT, "object");
    ll_expect_err("{\"a\": 1", 0, LL_ERR_FORMAT, "JSON");
    ll_expect_err("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, LL_ERR_FORMAT, "shape");
}

Test(bad_input, safetensors_header_length_beyond_file) {
    unsigned char buf[64] = {0};
    buf[0] = 0xff;
    buf[1] = 0xff; /* 65535-byte header in a 64-byte file */
    ll_tensor_set s = {0};
    cr_expect_eq(ll_safetensors_parse(&s, buf, sizeof buf, "t.safetensors", -1), LL_ERR_FORMAT);
    cr_expect(strstr(ll_last_error(), "beyond the end") != NULL, "%s", ll_last_error());
    cr_expect_eq(ll_safetensors_parse(&s, buf, 5, "t.safetensors", -1), LL_ERR_FORMAT);
    ll_tensor_set_free(&s);
}

Test(bad_input, safetensors_every_truncation_is_an_error) {
    unsigned char buf[512];
    size_t n = ll_st_build(buf, "{\"w\":{\"dtype\":\"BF16\",\"shape\":[4,4],\"data_offsets\":[0,32]}}", 32);
    for (size_t k = 0; k < n; k++) {
        ll_tensor_set s = {0};
        unsigned char *copy = malloc(k ? k : 1); /* exact-size buffer so ASan sees any over-read */
        memcpy(copy, buf, k);
        cr_expect_neq(ll_safetensors_parse(&s, copy, k, "t.safetensors", -1), LL_OK, "prefix of %zu bytes accepted", k);
        free(copy);
        ll_tensor_set_free(&s);
    }
}

/* Copy a fixture directory to /tmp so it can be damaged. */
static void ll_copy_fixture(const char *name, char *dir, size_t n) {
    snprintf(dir, n, "/tmp/layerlab-bad-XXXXXX");
    cr_assert(mkdtemp(dir));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp test/fixtures/%s/config.json test/fixtures/%s/model.safetensors %s/", name, name, dir);
    cr_assert_eq(system(cmd), 0);
}

static void ll_rm(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

static void ll_write(const char *dir, const char *file, const char *text) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

static void ll_expect_load_err(const char *dir, ll_status want, const char *needle) {
    ll_model *m = NULL;
    ll_status st = ll_model_load(&m, dir, NULL);
    cr_expect_eq(st, want, "status %s, expected %s: %s", ll_status_name(st), ll_status_name(want), ll_last_error());
    cr_expect_null(m);
    cr_expect(strstr(ll_last_error(), needle) != NULL, "message \"%s\" should mention \"%s\"", ll_last_error(),
              needle);
}

Test(bad_input, config_problems_name_the_field) {
    char dir[64];
    ll_copy_fixture("llama_gqa", dir, sizeof dir);
    ll_write(dir, "config.json", "{ this is not json");
    ll_expect_load_err(dir, LL_ERR_FORMAT, "config.json: not valid JSON");
    ll_write(dir, "config.json", "{\"architectures\": [\"BertModel\"], \"hidden_size\": 64}");
    ll_expect_load_err(dir, LL_ERR_UNSUPPORTED, "BertModel");
    ll_write(dir, "config.json", "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64}");
    ll_expect_load_err(dir, LL_ERR_MISSING, "num_hidden_layers");
    ll_write(dir, "config.json",
             "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": \"64\", \"num_hidden_layers\": 3}");
    ll_expect_load_err(dir, LL_ERR_FORMAT, "hidden_size");
    ll_write(dir, "config.json",
             "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_hidden_layers\":3,"
             "\"num_attention_heads\":4,\"num_key_value_heads\":3,\"intermediate_size\":160,\"vocab_size\":512}");
    ll_expect_load_err(dir, LL_ERR_FORMAT, "num_key_value_heads");
    ll_write(dir, "config.json",
             "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_hidden_layers\":3,"
             "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":160,\"vocab_size\":512,"
             "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}");
    ll_expect_load_err(dir, LL_ERR_UNSUPPORTED, "yarn");
    /* found by fuzz_config: an id beyond int range must be an error, not a float->int overflow */
    ll_write(dir, "config.json", "{\"model_type\": \"gpt2\", \"eos_token_id\": 2222222222222222222222222222222}");
    ll_expect_load_err(dir, LL_ERR_FORMAT, "eos_token_id");
    ll_rm(dir);
}

Test(bad_input, weights_disagreeing_with_config) {
    char dir[64];
    ll_copy_fixture("llama_gqa", dir, sizeof dir);
    /* intermediate_size 160 in the file; claim 128 */
    ll_write(dir, "config.json",
             "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_hidden_layers\":3,"
             "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":128,\"vocab_size\":512,"
             "\"tie_word_embeddings\":false}");
    ll_expect_load_err(dir, LL_ERR_SHAPE, "model.layers.0.mlp.gate_proj.weight: expected shape [128, 64]");
    /* four layers claimed, three stored */
    ll_write(dir, "config.json",
             "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_hidden_layers\":4,"
             "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":160,\"vocab_size\":512,"
             "\"tie_word_embeddings\":false}");
    ll_expect_load_err(dir, LL_ERR_MISSING, "missing tensor model.layers.3.input_layernorm.weight");
    ll_rm(dir);
}

Test(bad_input, truncated_and_missing_files) {
    char dir[64];
    ll_copy_fixture("gpt2", dir, sizeof dir);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(truncate(p, st.st_size / 2), 0);
    ll_expect_load_err(dir, LL_ERR_FORMAT, "out of range");
    cr_assert_eq(unlink(p), 0);
    ll_expect_load_err(dir, LL_ERR_MISSING, "no model.safetensors");
    ll_rm(dir);
    ll_expect_load_err("/nonexistent/model", LL_ERR_IO, "/nonexistent/model");
}

Test(bad_input, sharded_index_problems) {
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/layerlab-bad-XXXXXX");
    cr_assert(mkdtemp(dir));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp test/fixtures/llama3_rope/* %s/ && rm -f %s/model-00002-of-00003.safetensors", dir, dir);
    cr_assert_eq(system(cmd), 0);
    ll_expect_load_err(dir, LL_ERR_IO, "model-00002-of-00003.safetensors");
    ll_write(dir, "model.safetensors.index.json", "{\"weight_map\": {\"x\": \"../etc/passwd\"}}");
    ll_expect_load_err(dir, LL_ERR_FORMAT, "same directory");
    ll_write(dir, "model.safetensors.index.json", "{\"metadata\": {}}");
    ll_expect_load_err(dir, LL_ERR_FORMAT, "weight_map");
    ll_rm(dir);
}

Test(bad_input, tensor_of_a_non_float_dtype) {
    char dir[64];
    ll_copy_fixture("llama_gqa", dir, sizeof dir);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    FILE *f = fopen(p, "r+b");
    cr_assert(f);
    static char head[65536];
    size_t n = fread(head, 1, sizeof head - 1, f);
    head[n] = 0;
    /* Same element size, other meaning: the file stays self-consistent, the model does not. */
    char *at = strstr(head + 8, "\"model.norm.weight\":{\"dtype\":\"F32\"");
    cr_assert(at, "fixture header layout changed");
    char *dt = strstr(at, "F32");
    fseek(f, dt - head, SEEK_SET);
    fwrite("I32", 1, 3, f);
    fclose(f);
    ll_expect_load_err(dir, LL_ERR_UNSUPPORTED, "model.norm.weight: dtype I32, expected F32, F16 or BF16");
    ll_rm(dir);
}

Test(bad_input, fp32_weights_are_used_in_place) {
    /* The memory promise behind "a 7B checkpoint must not need twice its size": fp32
     * tensors are read from the mapping, nothing is copied. */
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, "test/fixtures/llama_gqa", NULL), LL_OK, "%s", ll_last_error());
    cr_expect_eq(m->weight_bytes_converted, 0);
    cr_expect_gt(m->weight_bytes_mapped, 0);
    const ll_mmap *f = &m->ts.files[0];
    const unsigned char *p = (const unsigned char *)m->w.layers[0].wq.w;
    cr_expect(p >= f->data && p < f->data + f->size, "wq should point into the mapped file");
    ll_model_free(m);
    /* bf16 weights are widened once, tensor by tensor */
    cr_assert_eq(ll_model_load(&m, "test/fixtures/llama3_rope", NULL), LL_OK, "%s", ll_last_error());
    cr_expect_eq(m->weight_bytes_mapped, 0);
    cr_expect_eq(m->weight_bytes_converted, ll_model_n_params(m) * 4);
    ll_model_free(m);
}
