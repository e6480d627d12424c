/* GGUF reader: the two real files in ../shared/assets, and synthesized files
 * covering every metadata type, versions 1-3, and malformed input. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/ll_gguf.h"
#include "model/ll_model.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* ../shared/assets/<rel> relative to the repository root (the working
 * directory of the test binary), or $LAYERLAB_SHARED/assets/<rel>. */
static bool gg_asset(char *buf, size_t n, const char *rel) {
    const char *env = getenv("LAYERLAB_SHARED");
    snprintf(buf, n, "%s/assets/%s", env && *env ? env : "../shared", rel);
    struct stat st;
    return stat(buf, &st) == 0;
}

#define GG_STORIES "stories260K/tinyllamas-stories-260k-f32.gguf"
#define GG_TINY "llama-2-tiny-random-gguf/llama-2-tiny-random.gguf"

#define GG_NEED_ASSET(buf, rel)                                                                                        \
    do {                                                                                                               \
        if (!gg_asset(buf, sizeof buf, rel))                                                                           \
            cr_skip_test("%s not found: shared assets live in ../shared/assets (or $LAYERLAB_SHARED/assets)", buf);    \
    } while (0)

/* Growing byte buffer that writes GGUF pieces. */
typedef struct {
    unsigned char *p;
    size_t n, cap;
    int version;
} gg_buf;

static void gg_bytes(gg_buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        cr_assert_not_null(b->p);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void gg_u8(gg_buf *b, uint8_t v) { gg_bytes(b, &v, 1); }
static void gg_u32(gg_buf *b, uint32_t v) { gg_bytes(b, &v, 4); } /* test hosts are little-endian */
static void gg_u64(gg_buf *b, uint64_t v) { gg_bytes(b, &v, 8); }
static void gg_count(gg_buf *b, uint64_t v) {
    if (b->version == 1)
        gg_u32(b, (uint32_t)v);
    else
        gg_u64(b, v);
}
static void gg_str(gg_buf *b, const char *s) {
    gg_count(b, strlen(s));
    gg_bytes(b, s, strlen(s));
}
static void gg_header(gg_buf *b, int version, uint64_t n_tensors, uint64_t n_kv) {
    b->version = version;
    gg_bytes(b, "GGUF", 4);
    gg_u32(b, (uint32_t)version);
    gg_count(b, n_tensors);
    gg_count(b, n_kv);
}
static void gg_key(gg_buf *b, const char *k, ll_gguf_type t) {
    gg_str(b, k);
    gg_u32(b, t);
}
static void gg_kv_u32(gg_buf *b, const char *k, uint32_t v) {
    gg_key(b, k, LL_GGUF_U32);
    gg_u32(b, v);
}
static void gg_kv_f32(gg_buf *b, const char *k, float v) {
    gg_key(b, k, LL_GGUF_F32);
    gg_bytes(b, &v, 4);
}
static void gg_kv_str(gg_buf *b, const char *k, const char *v) {
    gg_key(b, k, LL_GGUF_STRING);
    gg_str(b, v);
}
static void gg_tensor(gg_buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                      uint64_t offset) {
    gg_str(b, name);
    gg_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) gg_count(b, ne[i]);
    gg_u32(b, type);
    gg_u64(b, offset);
}
static void gg_pad(gg_buf *b, size_t a) {
    while (b->n % a) gg_u8(b, 0);
}

static void gg_write(const gg_buf *b, char *path, size_t n) {
    snprintf(path, n, "/tmp/layerlab_gguf_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp failed");
    cr_assert_eq(write(fd, b->p, b->n), (ssize_t)b->n);
    close(fd);
}

/* Parse an exact-size heap copy so AddressSanitizer sees any over-read; the
 * result is freed at once (the copy would not outlive it). */
static ll_status gg_parse_copy(const unsigned char *p, size_t n) {
    unsigned char *c = malloc(n ? n : 1);
    cr_assert_not_null(c);
    memcpy(c, p, n);
    ll_gguf *g = (ll_gguf *)1;
    ll_status st = ll_gguf_parse(&g, c, n, "synth.gguf");
    cr_assert(st == LL_OK ? g != NULL : g == NULL, "ll_gguf_parse result and status disagree");
    ll_gguf_free(g);
    free(c);
    return st;
}

static void gg_expect_error(const gg_buf *b, ll_status want, const char *needle) {
    ll_status st = gg_parse_copy(b->p, b->n);
    cr_assert_eq(st, want, "expected %s, got %s: %s", ll_status_name(want), ll_status_name(st), ll_last_error());
    cr_assert(strstr(ll_last_error(), needle), "message \"%s\" lacks \"%s\"", ll_last_error(), needle);
    cr_assert(strstr(ll_last_error(), "synth.gguf"), "message \"%s\" does not name the file", ll_last_error());
}

/* A file exercising every metadata type and two F32 tensors. */
static gg_buf gg_kitchen_sink(int version) {
    gg_buf b = {0};
    gg_header(&b, version, 2, 16);
    gg_key(&b, "t.u8", LL_GGUF_U8);
    gg_u8(&b, 200);
    gg_key(&b, "t.i8", LL_GGUF_I8);
    gg_u8(&b, (uint8_t)-5);
    gg_key(&b, "t.u16", LL_GGUF_U16);
    gg_bytes(&b, &(uint16_t){60000}, 2);
    gg_key(&b, "t.i16", LL_GGUF_I16);
    gg_bytes(&b, &(int16_t){-300}, 2);
    gg_kv_u32(&b, "t.u32", 4000000000u);
    gg_key(&b, "t.i32", LL_GGUF_I32);
    gg_bytes(&b, &(int32_t){-70000}, 4);
    gg_kv_f32(&b, "t.f32", 1.5f);
    gg_key(&b, "t.bool", LL_GGUF_BOOL);
    gg_u8(&b, 1);
    gg_kv_str(&b, "t.str", "héllo");
    gg_key(&b, "t.u64", LL_GGUF_U64);
    gg_u64(&b, 1ull << 40);
    gg_key(&b, "t.i64", LL_GGUF_I64);
    gg_u64(&b, (uint64_t)-12);
    gg_key(&b, "t.f64", LL_GGUF_F64);
    gg_bytes(&b, &(double){0.25}, 8);
    gg_key(&b, "t.arr_str", LL_GGUF_ARRAY);
    gg_u32(&b, LL_GGUF_STRING);
    gg_count(&b, 3);
    gg_str(&b, "<s>");
    gg_str(&b, "");
    gg_str(&b, "\xe2\x96\x81the");
    gg_key(&b, "t.arr_f32", LL_GGUF_ARRAY);
    gg_u32(&b, LL_GGUF_F32);
    gg_count(&b, 2);
    gg_bytes(&b, (float[]){-1.0f, 2.5f}, 8);
    gg_key(&b, "t.arr_i32", LL_GGUF_ARRAY);
    gg_u32(&b, LL_GGUF_I32);
    gg_count(&b, 3);
    gg_bytes(&b, (int32_t[]){1, -2, 3}, 12);
    gg_key(&b, "t.arr_u8", LL_GGUF_ARRAY);
    gg_u32(&b, LL_GGUF_U8);
    gg_count(&b, 0);
    gg_tensor(&b, "a", 2, (uint64_t[]){4, 2}, LL_GGML_F32, 0);
    gg_tensor(&b, "b", 1, (uint64_t[]){3}, LL_GGML_F32, 32);
    gg_pad(&b, 32);
    float data[8 + 3];
    for (int i = 0; i < 11; i++) data[i] = (float)i;
    gg_bytes(&b, data, 32);
    gg_bytes(&b, data + 8, 12); /* the file ends right after "b": no trailing padding */
    return b;
}

/* A tiny llama (d 8, 1 layer, 2 heads, 1 kv head, ff 16, vocab 4) whose F32
 * weights hold their element index. */
typedef struct {
    int version;
    bool with_output;
    bool with_tokens;
    bool with_kv_heads;
    uint32_t q_type;
    const char *arch;
    const char *skip_key;
} gg_llama_opt;

static gg_buf gg_llama(gg_llama_opt o) {
    struct {
        const char *name;
        uint32_t n_dims;
        uint64_t ne[2];
    } ts[] = {
        {"token_embd.weight", 2, {8, 4}},     {"blk.0.attn_norm.weight", 1, {8, 1}},
        {"blk.0.attn_q.weight", 2, {8, 8}},   {"blk.0.attn_k.weight", 2, {8, 4}},
        {"blk.0.attn_v.weight", 2, {8, 4}},   {"blk.0.attn_output.weight", 2, {8, 8}},
        {"blk.0.ffn_norm.weight", 1, {8, 1}}, {"blk.0.ffn_gate.weight", 2, {8, 16}},
        {"blk.0.ffn_up.weight", 2, {8, 16}},  {"blk.0.ffn_down.weight", 2, {16, 8}},
        {"output_norm.weight", 1, {8, 1}},    {"rope_freqs.weight", 1, {2, 1}},
        {"output.weight", 2, {8, 4}},
    };
    size_t nt = sizeof ts / sizeof ts[0] - (o.with_output ? 0 : 1);
    struct {
        const char *k;
        int kind; /* 0 u32, 1 f32, 2 str */
        uint32_t u;
        float f;
        const char *s;
    } kvs[] = {
        {"general.architecture", 2, 0, 0, o.arch ? o.arch : "llama"},
        {"llama.embedding_length", 0, 8, 0, NULL},
        {"llama.block_count", 0, 1, 0, NULL},
        {"llama.attention.head_count", 0, 2, 0, NULL},
        {"llama.attention.head_count_kv", 0, 1, 0, NULL},
        {"llama.feed_forward_length", 0, 16, 0, NULL},
        {"llama.context_length", 0, 128, 0, NULL},
        {"llama.attention.layer_norm_rms_epsilon", 1, 0, 1e-6f, NULL},
        {"llama.rope.dimension_count", 0, 4, 0, NULL},
        {"tokenizer.ggml.bos_token_id", 0, 1, 0, NULL},
        {"tokenizer.ggml.eos_token_id", 0, 2, 0, NULL},
    };
    size_t nkv = 0;
    for (size_t i = 0; i < sizeof kvs / sizeof kvs[0]; i++) {
        if (o.skip_key && strcmp(kvs[i].k, o.skip_key) == 0) continue;
        if (!o.with_kv_heads && strcmp(kvs[i].k, "llama.attention.head_count_kv") == 0) continue;
        nkv++;
    }
    gg_buf b = {0};
    gg_header(&b, o.version, nt, nkv + (o.with_tokens ? 1 : 0));
    for (size_t i = 0; i < sizeof kvs / sizeof kvs[0]; i++) {
        if (o.skip_key && strcmp(kvs[i].k, o.skip_key) == 0) continue;
        if (!o.with_kv_heads && strcmp(kvs[i].k, "llama.attention.head_count_kv") == 0) continue;
        if (kvs[i].kind == 0) gg_kv_u32(&b, kvs[i].k, kvs[i].u);
        if (kvs[i].kind == 1) gg_kv_f32(&b, kvs[i].k, kvs[i].f);
        if (kvs[i].kind == 2) gg_kv_str(&b, kvs[i].k, kvs[i].s);
    }
    if (o.with_tokens) {
        gg_key(&b, "tokenizer.ggml.tokens", LL_GGUF_ARRAY);
        gg_u32(&b, LL_GGUF_STRING);
        gg_count(&b, 4);
        const char *tok[] = {"<unk>", "<s>", "</s>", "a"};
        for (int i = 0; i < 4; i++) gg_str(&b, tok[i]);
    }
    uint64_t off = 0, sizes[16];
    for (size_t i = 0; i < nt; i++) {
        uint64_t ne[2] = {ts[i].ne[0], ts[i].ne[1]};
        uint32_t type = LL_GGML_F32;
        uint64_t bytes = ne[0] * ne[1] * 4;
        if (o.q_type != LL_GGML_F32 && strcmp(ts[i].name, "blk.0.attn_q.weight") == 0) {
            uint32_t blck, bb;
            cr_assert(ll_ggml_type_layout(o.q_type, &blck, &bb));
            type = o.q_type;
            ne[0] = blck; /* one block per row */
            bytes = ne[1] * bb;
        }
        gg_tensor(&b, ts[i].name, ts[i].n_dims, ne, type, off);
        sizes[i] = bytes;
        off += (bytes + 31) / 32 * 32;
    }
    gg_pad(&b, 32);
    for (size_t i = 0; i < nt; i++) {
        for (uint64_t k = 0; k < sizes[i] / 4; k++) {
            float v = (float)k + 1000.0f * (float)i;
            gg_bytes(&b, &v, 4);
        }
        if (i + 1 < nt) gg_pad(&b, 32);
    }
    return b;
}

static gg_llama_opt gg_llama_default(void) {
    return (gg_llama_opt){
        .version = 3, .with_output = true, .with_tokens = true, .with_kv_heads = true, .q_type = LL_GGML_F32};
}

static void gg_shape(const ll_tensor_set *ts, const char *name, int ndim, int64_t d0, int64_t d1) {
    const ll_tensor_info *t = ll_tensor_set_find(ts, name);
    cr_assert_not_null(t, "tensor %s missing", name);
    cr_assert_eq(t->ndim, ndim, "%s: ndim %d, expected %d", name, t->ndim, ndim);
    cr_assert_eq(t->shape[0], d0, "%s: shape[0] %lld, expected %lld", name, (long long)t->shape[0], (long long)d0);
    if (ndim > 1)
        cr_assert_eq(t->shape[1], d1, "%s: shape[1] %lld, expected %lld", name, (long long)t->shape[1], (long long)d1);
}

/* ------------------------------------------------------------------------ */
/* real files                                                                */
/* ------------------------------------------------------------------------ */

Test(gguf, stories260k_v1_f32) {
    char path[4096];
    GG_NEED_ASSET(path, GG_STORIES);
    ll_config c;
    ll_tensor_set ts;
    ll_gguf *g;
    cr_assert_eq(ll_gguf_load_model(path, &c, &ts, &g), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_gguf_version(g), 1);
    cr_assert_eq(ll_gguf_alignment(g), 32);
    cr_assert_eq(ll_gguf_data_offset(g), 11456); /* infos end at 11450, padded to 32 */
    cr_assert_eq(c.arch, LL_ARCH_LLAMA);
    cr_assert_eq(c.format, LL_FMT_GGUF);
    cr_assert_str_eq(c.arch_name, "llama");
    cr_assert_eq(c.d_model, 64);
    cr_assert_eq(c.n_layers, 5);
    cr_assert_eq(c.n_heads, 8);
    cr_assert_eq(c.n_kv_heads, 4);
    cr_assert_eq(c.head_dim, 8);
    cr_assert_eq(c.d_ff, 172);
    cr_assert_eq(c.vocab_size, 512);
    cr_assert_eq(c.max_pos, 512);
    cr_assert_float_eq(c.norm_eps, 1e-5f, 1e-12f);
    cr_assert_float_eq(c.rope_theta, 10000.0f, 0.0f); /* default: the file has no freq_base */
    cr_assert_eq(c.rope_layout, LL_ROPE_INTERLEAVED);
    cr_assert_eq(c.norm, LL_NORM_RMS);
    cr_assert_eq(c.mlp, LL_MLP_SWIGLU);
    cr_assert_eq(c.bos_id, 1);
    cr_assert_eq(c.eos_id, 2);
    cr_assert(!c.tied_embeddings); /* output.weight is stored (as a copy of token_embd) */

    cr_assert_eq(ts.n, 48);
    gg_shape(&ts, "model.embed_tokens.weight", 2, 512, 64);
    gg_shape(&ts, "model.layers.0.self_attn.q_proj.weight", 2, 64, 64);
    gg_shape(&ts, "model.layers.0.self_attn.k_proj.weight", 2, 32, 64);
    gg_shape(&ts, "model.layers.4.self_attn.v_proj.weight", 2, 32, 64);
    gg_shape(&ts, "model.layers.4.self_attn.o_proj.weight", 2, 64, 64);
    gg_shape(&ts, "model.layers.2.mlp.gate_proj.weight", 2, 172, 64);
    gg_shape(&ts, "model.layers.2.mlp.up_proj.weight", 2, 172, 64);
    gg_shape(&ts, "model.layers.2.mlp.down_proj.weight", 2, 64, 172);
    gg_shape(&ts, "model.layers.3.input_layernorm.weight", 1, 64, 0);
    gg_shape(&ts, "model.layers.3.post_attention_layernorm.weight", 1, 64, 0);
    gg_shape(&ts, "model.norm.weight", 1, 64, 0);
    gg_shape(&ts, "lm_head.weight", 2, 512, 64);
    for (size_t i = 0; i < ts.n; i++) {
        cr_assert_eq(ts.t[i].dtype, LL_F32, "%s", ts.t[i].name);
        cr_assert_eq(ts.t[i].nbytes, ll_tensor_numel(&ts.t[i]) * 4, "%s", ts.t[i].name);
        cr_assert_str_eq(ll_tensor_file(&ts, &ts.t[i]), path);
    }

    /* The vocabulary stays readable after the tensor set (and its mapping) is gone. */
    ll_tensor_set_free(&ts);
    size_t n;
    ll_gguf_type et;
    cr_assert_eq(ll_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n), LL_OK);
    cr_assert_eq(et, LL_GGUF_STRING);
    cr_assert_eq(n, 512);
    const char *s;
    cr_assert_eq(ll_gguf_arr_str(g, "tokenizer.ggml.tokens", 1, &s, NULL), LL_OK);
    cr_assert_str_eq(s, "<s>");
    cr_assert_eq(ll_gguf_arr_str(g, "tokenizer.ggml.tokens", 3, &s, NULL), LL_OK);
    cr_assert_str_eq(s, "<0x00>");
    int32_t tt;
    cr_assert_eq(ll_gguf_arr_i32(g, "tokenizer.ggml.token_type", 1, &tt), LL_OK);
    cr_assert_eq(tt, 3); /* control */
    float score;
    cr_assert_eq(ll_gguf_arr_f32(g, "tokenizer.ggml.scores", 0, &score), LL_OK);
    cr_assert_str_eq((ll_gguf_get_str(g, "llama.tensor_data_layout", &s, NULL), s), "Meta AI original pth");
    cr_assert_null(ll_gguf_tensor_data(g, ll_gguf_find_tensor(g, "output.weight"))); /* handed over */
    ll_gguf_free(g);
}

Test(gguf, tiny_random_v3_f16) {
    char path[4096];
    GG_NEED_ASSET(path, GG_TINY);
    ll_config c;
    ll_tensor_set ts;
    cr_assert_eq(ll_gguf_load_model(path, &c, &ts, NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(c.d_model, 8);
    cr_assert_eq(c.n_layers, 1);
    cr_assert_eq(c.n_heads, 2);
    cr_assert_eq(c.n_kv_heads, 2);
    cr_assert_eq(c.head_dim, 4);
    cr_assert_eq(c.d_ff, 32);
    cr_assert_eq(c.vocab_size, 32000);
    cr_assert_eq(c.max_pos, 4096);
    cr_assert_eq(c.bos_id, 1);
    cr_assert_eq(c.eos_id, 2);
    cr_assert(!c.tied_embeddings);
    cr_assert_eq(ts.n, 12);
    gg_shape(&ts, "model.embed_tokens.weight", 2, 32000, 8);
    gg_shape(&ts, "lm_head.weight", 2, 32000, 8);
    gg_shape(&ts, "model.layers.0.mlp.down_proj.weight", 2, 8, 32);
    /* general.file_type says "mostly F16": matrices are F16, norms stay F32. */
    cr_assert_eq(ll_tensor_set_find(&ts, "model.embed_tokens.weight")->dtype, LL_F16);
    cr_assert_eq(ll_tensor_set_find(&ts, "model.layers.0.self_attn.q_proj.weight")->dtype, LL_F16);
    cr_assert_eq(ll_tensor_set_find(&ts, "model.layers.0.input_layernorm.weight")->dtype, LL_F32);
    cr_assert_eq(ll_tensor_set_find(&ts, "model.norm.weight")->dtype, LL_F32);
    cr_assert_eq(ll_tensor_set_find(&ts, "model.embed_tokens.weight")->nbytes, 32000 * 8 * 2);
    ll_tensor_set_free(&ts);

    ll_gguf *g;
    cr_assert_eq(ll_gguf_open(&g, path), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_gguf_version(g), 3);
    cr_assert_eq(ll_gguf_n_kv(g), 18);
    cr_assert_eq(ll_gguf_data_offset(g), 724416);
    uint32_t ft;
    cr_assert_eq(ll_gguf_get_u32(g, "general.file_type", &ft), LL_OK);
    cr_assert_eq(ft, 1);
    const ll_gguf_tensor *t = ll_gguf_find_tensor(g, "token_embd.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->n_dims, 2);
    cr_assert_eq(t->ne[0], 8); /* ggml order: innermost first */
    cr_assert_eq(t->ne[1], 32000);
    cr_assert_eq(t->type, LL_GGML_F16);
    cr_assert_not_null(ll_gguf_tensor_data(g, t));
    ll_gguf_free(g);
}

/* Every prefix of the real v1 header region, and samples of the data
 * region, must be refused without a crash. */
Test(gguf, stories260k_truncated) {
    char path[4096];
    GG_NEED_ASSET(path, GG_STORIES);
    ll_gguf *g;
    cr_assert_eq(ll_gguf_open(&g, path), LL_OK, "%s", ll_last_error());
    ll_gguf_free(g);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    rewind(f);
    unsigned char *img = malloc(size);
    cr_assert_eq(fread(img, 1, size, f), size);
    fclose(f);
    for (size_t n = 0; n < size; n += n < 11600 ? 1 : 997) {
        cr_assert_neq(gg_parse_copy(img, n), LL_OK, "prefix of %zu bytes parsed", n);
    }
    free(img);
}

/* ------------------------------------------------------------------------ */
/* synthesized: well-formed                                                  */
/* ------------------------------------------------------------------------ */

static void gg_check_kitchen_sink(int version) {
    gg_buf b = gg_kitchen_sink(version);
    ll_gguf *g;
    cr_assert_eq(ll_gguf_parse(&g, b.p, b.n, "synth.gguf"), LL_OK, "v%d: %s", version, ll_last_error());
    cr_assert_eq(ll_gguf_version(g), version);
    cr_assert_eq(ll_gguf_n_kv(g), 16);
    cr_assert_str_eq(ll_gguf_kv_key(g, 0), "t.u8");
    cr_assert_eq(ll_gguf_kv_type(g, 15), LL_GGUF_ARRAY);
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float f;
    bool bo;
    const char *s;
    size_t len;
    cr_assert_eq(ll_gguf_get_u32(g, "t.u8", &u32), LL_OK);
    cr_assert_eq(u32, 200);
    cr_assert_eq(ll_gguf_get_i32(g, "t.i8", &i32), LL_OK);
    cr_assert_eq(i32, -5);
    cr_assert_eq(ll_gguf_get_u32(g, "t.u16", &u32), LL_OK);
    cr_assert_eq(u32, 60000);
    cr_assert_eq(ll_gguf_get_i32(g, "t.i16", &i32), LL_OK);
    cr_assert_eq(i32, -300);
    cr_assert_eq(ll_gguf_get_u32(g, "t.u32", &u32), LL_OK);
    cr_assert_eq(u32, 4000000000u);
    cr_assert_eq(ll_gguf_get_i32(g, "t.i32", &i32), LL_OK);
    cr_assert_eq(i32, -70000);
    cr_assert_eq(ll_gguf_get_f32(g, "t.f32", &f), LL_OK);
    cr_assert_float_eq(f, 1.5f, 0.0f);
    cr_assert_eq(ll_gguf_get_bool(g, "t.bool", &bo), LL_OK);
    cr_assert(bo);
    cr_assert_eq(ll_gguf_get_str(g, "t.str", &s, &len), LL_OK);
    cr_assert_str_eq(s, "héllo");
    cr_assert_eq(len, 6);
    cr_assert_eq(ll_gguf_get_u64(g, "t.u64", &u64), LL_OK);
    cr_assert_eq(u64, 1ull << 40);
    cr_assert_eq(ll_gguf_get_i32(g, "t.i64", &i32), LL_OK);
    cr_assert_eq(i32, -12);
    cr_assert_eq(ll_gguf_get_f32(g, "t.f64", &f), LL_OK);
    cr_assert_float_eq(f, 0.25f, 0.0f);

    ll_gguf_type et;
    size_t n;
    cr_assert_eq(ll_gguf_get_arr(g, "t.arr_str", &et, &n), LL_OK);
    cr_assert_eq(et, LL_GGUF_STRING);
    cr_assert_eq(n, 3);
    cr_assert_eq(ll_gguf_arr_str(g, "t.arr_str", 0, &s, &len), LL_OK);
    cr_assert_str_eq(s, "<s>");
    cr_assert_eq(ll_gguf_arr_str(g, "t.arr_str", 1, &s, &len), LL_OK);
    cr_assert_str_eq(s, "");
    cr_assert_eq(len, 0);
    cr_assert_eq(ll_gguf_arr_str(g, "t.arr_str", 2, &s, &len), LL_OK);
    cr_assert_str_eq(s, "\xe2\x96\x81the");
    cr_assert_eq(ll_gguf_arr_f32(g, "t.arr_f32", 1, &f), LL_OK);
    cr_assert_float_eq(f, 2.5f, 0.0f);
    cr_assert_eq(ll_gguf_arr_i32(g, "t.arr_i32", 1, &i32), LL_OK);
    cr_assert_eq(i32, -2);
    cr_assert_eq(ll_gguf_get_arr(g, "t.arr_u8", &et, &n), LL_OK);
    cr_assert_eq(n, 0);

    cr_assert_eq(ll_gguf_n_tensors(g), 2);
    const ll_gguf_tensor *a = ll_gguf_find_tensor(g, "a"), *bt = ll_gguf_find_tensor(g, "b");
    cr_assert_not_null(a);
    cr_assert_not_null(bt);
    cr_assert_null(ll_gguf_find_tensor(g, "c"));
    cr_assert_eq(a->nbytes, 32);
    cr_assert_eq(bt->nbytes, 12);
    float v;
    memcpy(&v, (const unsigned char *)ll_gguf_tensor_data(g, bt) + 4, 4);
    cr_assert_float_eq(v, 9.0f, 0.0f);
    cr_assert_eq(ll_gguf_data_offset(g) % 32, 0);
    cr_assert_eq(ll_gguf_data_offset(g) + 32 + 12, b.n);
    ll_gguf_free(g);
    free(b.p);
}

Test(gguf, all_metadata_types_v1) { gg_check_kitchen_sink(1); }
Test(gguf, all_metadata_types_v2) { gg_check_kitchen_sink(2); }
Test(gguf, all_metadata_types_v3) { gg_check_kitchen_sink(3); }

Test(gguf, getter_errors_name_the_key) {
    gg_buf b = gg_kitchen_sink(3);
    ll_gguf *g;
    cr_assert_eq(ll_gguf_parse(&g, b.p, b.n, "synth.gguf"), LL_OK, "%s", ll_last_error());
    uint32_t u32;
    int32_t i32;
    float f;
    bool bo;
    const char *s;
    cr_assert_eq(ll_gguf_get_u32(g, "no.such.key", &u32), LL_ERR_MISSING);
    cr_assert(strstr(ll_last_error(), "synth.gguf: metadata key \"no.such.key\" is missing"), "%s", ll_last_error());
    cr_assert_eq(ll_gguf_get_str(g, "t.u32", &s, NULL), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), "key \"t.u32\": expected string, found u32"), "%s", ll_last_error());
    cr_assert_eq(ll_gguf_get_u32(g, "t.i8", &u32), LL_ERR_FORMAT); /* negative */
    cr_assert(strstr(ll_last_error(), "\"t.i8\""), "%s", ll_last_error());
    cr_assert_eq(ll_gguf_get_i32(g, "t.u32", &i32), LL_ERR_FORMAT); /* 4e9 does not fit */
    cr_assert_eq(ll_gguf_get_u32(g, "t.u64", &u32), LL_ERR_FORMAT);
    cr_assert_eq(ll_gguf_get_f32(g, "t.str", &f), LL_ERR_FORMAT);
    cr_assert_eq(ll_gguf_get_bool(g, "t.u8", &bo), LL_ERR_FORMAT);
    cr_assert_eq(ll_gguf_get_u32(g, "t.arr_i32", &u32), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), "found an array of i32"), "%s", ll_last_error());
    cr_assert_eq(ll_gguf_arr_str(g, "t.arr_f32", 0, &s, NULL), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), "\"t.arr_f32\": expected an array of strings, found an array of f32"), "%s",
              ll_last_error());
    cr_assert_eq(ll_gguf_arr_str(g, "t.arr_str", 3, &s, NULL), LL_ERR_ARG);
    cr_assert(strstr(ll_last_error(), "index 3 is out of range"), "%s", ll_last_error());
    cr_assert_eq(ll_gguf_arr_i32(g, "t.str", 0, &i32), LL_ERR_FORMAT);
    cr_assert_eq(ll_gguf_find_key(g, "t.str"), 8);
    cr_assert_eq(ll_gguf_find_key(g, "t.st"), -1);
    ll_gguf_free(g);
    free(b.p);
}

Test(gguf, alignment_key_moves_the_data_section) {
    gg_buf b = {0};
    gg_header(&b, 3, 1, 1);
    gg_kv_u32(&b, "general.alignment", 256);
    gg_tensor(&b, "x", 1, (uint64_t[]){4}, LL_GGML_F32, 0);
    gg_pad(&b, 256);
    gg_bytes(&b, (float[]){1, 2, 3, 4}, 16);
    ll_gguf *g;
    cr_assert_eq(ll_gguf_parse(&g, b.p, b.n, "synth.gguf"), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_gguf_alignment(g), 256);
    cr_assert_eq(ll_gguf_data_offset(g), 256);
    ll_gguf_free(g);
    free(b.p);
}

Test(gguf, no_tensors_is_fine) {
    gg_buf b = {0};
    gg_header(&b, 2, 0, 1);
    gg_kv_str(&b, "general.name", "empty");
    ll_gguf *g;
    cr_assert_eq(ll_gguf_parse(&g, b.p, b.n, NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_gguf_n_tensors(g), 0);
    cr_assert_str_eq(ll_gguf_path(g), "(memory)");
    ll_gguf_free(g);
    free(b.p);
}

Test(gguf, synthesized_llama_loads) {
    for (int version = 1; version <= 3; version++) {
        gg_llama_opt o = gg_llama_default();
        o.version = version;
        gg_buf b = gg_llama(o);
        char path[64];
        gg_write(&b, path, sizeof path);
        ll_config c;
        ll_tensor_set ts;
        cr_assert_eq(ll_gguf_load_model(path, &c, &ts, NULL), LL_OK, "v%d: %s", version, ll_last_error());
        cr_assert_eq(c.d_model, 8);
        cr_assert_eq(c.n_heads, 2);
        cr_assert_eq(c.n_kv_heads, 1);
        cr_assert_eq(c.head_dim, 4);
        cr_assert_eq(c.d_ff, 16);
        cr_assert_eq(c.vocab_size, 4);
        cr_assert_eq(c.max_pos, 128);
        cr_assert_float_eq(c.norm_eps, 1e-6f, 1e-12f);
        cr_assert(!c.tied_embeddings);
        cr_assert_eq(ts.n, 13);
        gg_shape(&ts, "model.embed_tokens.weight", 2, 4, 8);
        gg_shape(&ts, "model.layers.0.self_attn.k_proj.weight", 2, 4, 8);
        gg_shape(&ts, "model.layers.0.mlp.down_proj.weight", 2, 8, 16);
        gg_shape(&ts, "rope_freqs.weight", 1, 2, 0); /* no HF name: kept under its GGUF name */
        gg_shape(&ts, "lm_head.weight", 2, 4, 8);
        /* Data pointers land on the right bytes: tensor i holds 1000*i + k. */
        const float *q = ll_tensor_set_find(&ts, "model.layers.0.self_attn.q_proj.weight")->data;
        cr_assert_float_eq(q[0], 2000.0f, 0.0f);
        cr_assert_float_eq(q[63], 2063.0f, 0.0f);
        const float *down = ll_tensor_set_find(&ts, "model.layers.0.mlp.down_proj.weight")->data;
        cr_assert_float_eq(down[127], 9127.0f, 0.0f);
        ll_tensor_set_free(&ts);
        unlink(path);
        free(b.p);
    }
}

Test(gguf, tied_and_defaults) {
    gg_llama_opt o = gg_llama_default();
    o.with_output = false;
    o.with_tokens = false;
    o.with_kv_heads = false;
    o.skip_key = "llama.rope.dimension_count";
    gg_buf b = gg_llama(o);
    char path[64];
    gg_write(&b, path, sizeof path);
    ll_config c;
    ll_tensor_set ts;
    cr_assert_eq(ll_gguf_load_model(path, &c, &ts, NULL), LL_OK, "%s", ll_last_error());
    cr_assert(c.tied_embeddings);
    cr_assert_null(ll_tensor_set_find(&ts, "lm_head.weight"));
    cr_assert_eq(c.n_kv_heads, 2); /* head_count_kv defaults to head_count */
    cr_assert_eq(c.vocab_size, 4); /* from token_embd rows */
    cr_assert_float_eq(c.rope_theta, 10000.0f, 0.0f);
    ll_tensor_set_free(&ts);
    unlink(path);
    free(b.p);
}

Test(gguf, name_mapping) {
    char out[128];
    cr_assert_eq(ll_gguf_hf_name("token_embd.weight", out, sizeof out), 1);
    cr_assert_str_eq(out, "model.embed_tokens.weight");
    cr_assert_eq(ll_gguf_hf_name("output_norm.weight", out, sizeof out), 1);
    cr_assert_str_eq(out, "model.norm.weight");
    cr_assert_eq(ll_gguf_hf_name("output.weight", out, sizeof out), 1);
    cr_assert_str_eq(out, "lm_head.weight");
    static const char *pairs[][2] = {
        {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
        {"blk.1.attn_q.weight", "model.layers.1.self_attn.q_proj.weight"},
        {"blk.22.attn_k.weight", "model.layers.22.self_attn.k_proj.weight"},
        {"blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight"},
        {"blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"},
        {"blk.10.ffn_norm.weight", "model.layers.10.post_attention_layernorm.weight"},
        {"blk.4.ffn_gate.weight", "model.layers.4.mlp.gate_proj.weight"},
        {"blk.4.ffn_up.weight", "model.layers.4.mlp.up_proj.weight"},
        {"blk.4.ffn_down.weight", "model.layers.4.mlp.down_proj.weight"},
        {"blk.0.attn_q.bias", "model.layers.0.self_attn.q_proj.bias"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        cr_assert_eq(ll_gguf_hf_name(pairs[i][0], out, sizeof out), 1, "%s", pairs[i][0]);
        cr_assert_str_eq(out, pairs[i][1]);
    }
    /* Not translated: kept as they are. */
    static const char *keep[] = {"rope_freqs.weight",
                                 "blk.01.attn_q.weight",
                                 "blk.-1.attn_q.weight",
                                 "blk..attn_q.weight",
                                 "blk.0.attn_q",
                                 "blk.0.attn_qq.weight",
                                 "blk.0.attn_q.weight.x",
                                 "blk.1234567890.attn_q.weight",
                                 "blk.0",
                                 ""};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        cr_assert_eq(ll_gguf_hf_name(keep[i], out, sizeof out), 0, "%s", keep[i]);
        cr_assert_str_eq(out, keep[i]);
    }
    cr_assert_eq(ll_gguf_hf_name("blk.0.attn_q.weight", out, 10), -1);
    cr_assert_eq(ll_gguf_hf_name("rope_freqs.weight", out, 5), -1);
}

Test(gguf, ggml_type_table) {
    static const struct {
        uint32_t id;
        const char *name;
        uint32_t blck, bytes;
    } want[] = {
        {LL_GGML_F32, "F32", 1, 4},         {LL_GGML_F16, "F16", 1, 2},
        {LL_GGML_BF16, "BF16", 1, 2},       {LL_GGML_F64, "F64", 1, 8},
        {LL_GGML_I8, "I8", 1, 1},           {LL_GGML_I64, "I64", 1, 8},
        {LL_GGML_Q4_0, "Q4_0", 32, 18},     {LL_GGML_Q4_1, "Q4_1", 32, 20},
        {LL_GGML_Q5_0, "Q5_0", 32, 22},     {LL_GGML_Q5_1, "Q5_1", 32, 24},
        {LL_GGML_Q8_0, "Q8_0", 32, 34},     {LL_GGML_Q2_K, "Q2_K", 256, 84},
        {LL_GGML_Q3_K, "Q3_K", 256, 110},   {LL_GGML_Q4_K, "Q4_K", 256, 144},
        {LL_GGML_Q5_K, "Q5_K", 256, 176},   {LL_GGML_Q6_K, "Q6_K", 256, 210},
        {LL_GGML_Q8_K, "Q8_K", 256, 292},   {LL_GGML_IQ2_XXS, "IQ2_XXS", 256, 66},
        {LL_GGML_IQ4_NL, "IQ4_NL", 32, 18}, {LL_GGML_IQ4_XS, "IQ4_XS", 256, 136},
        {LL_GGML_IQ1_M, "IQ1_M", 256, 56},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        uint32_t blck, bytes;
        cr_assert(ll_ggml_type_layout(want[i].id, &blck, &bytes), "%s", want[i].name);
        cr_assert_str_eq(ll_ggml_type_name(want[i].id), want[i].name);
        cr_assert_eq(blck, want[i].blck, "%s", want[i].name);
        cr_assert_eq(bytes, want[i].bytes, "%s", want[i].name);
    }
    cr_assert(!ll_ggml_type_layout(4, NULL, NULL)); /* Q4_2, removed before GGUF */
    cr_assert(!ll_ggml_type_layout(5, NULL, NULL));
    cr_assert(!ll_ggml_type_layout(1000, NULL, NULL));
    cr_assert_null(ll_ggml_type_name(4));
}

/* ------------------------------------------------------------------------ */
/* synthesized: malformed                                                    */
/* ------------------------------------------------------------------------ */

Test(gguf, every_prefix_is_an_error) {
    for (int version = 1; version <= 3; version++) {
        gg_buf b = gg_kitchen_sink(version);
        gg_buf l = gg_llama((gg_llama_opt){.version = version,
                                           .with_output = true,
                                           .with_tokens = true,
                                           .with_kv_heads = true,
                                           .q_type = LL_GGML_F32});
        const gg_buf *files[2] = {&b, &l};
        for (int k = 0; k < 2; k++) {
            for (size_t n = 0; n < files[k]->n; n++) {
                ll_status st = gg_parse_copy(files[k]->p, n);
                cr_assert_neq(st, LL_OK, "v%d file %d: prefix of %zu of %zu bytes parsed", version, k, n, files[k]->n);
                cr_assert(strstr(ll_last_error(), "synth.gguf"), "%s", ll_last_error());
            }
            cr_assert_eq(gg_parse_copy(files[k]->p, files[k]->n), LL_OK, "%s", ll_last_error());
        }
        free(b.p);
        free(l.p);
    }
}

Test(gguf, truncated_file_on_disk) {
    gg_buf b = gg_llama(gg_llama_default());
    b.n -= 1;
    char path[64];
    gg_write(&b, path, sizeof path);
    ll_config c;
    ll_tensor_set ts;
    memset(&c, 0x5a, sizeof c);
    memset(&ts, 0x5a, sizeof ts);
    ll_config c0 = c;
    ll_tensor_set ts0 = ts;
    cr_assert_eq(ll_gguf_load_model(path, &c, &ts, NULL), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), path), "%s", ll_last_error());
    cr_assert(strstr(ll_last_error(), "output.weight"), "%s", ll_last_error());
    /* Failure leaves the outputs untouched. */
    cr_assert_eq(memcmp(&c, &c0, sizeof c), 0);
    cr_assert_eq(memcmp(&ts, &ts0, sizeof ts), 0);
    unlink(path);
    free(b.p);
}

Test(gguf, missing_file) {
    ll_gguf *g = (ll_gguf *)1;
    cr_assert_eq(ll_gguf_open(&g, "/nonexistent/model.gguf"), LL_ERR_IO);
    cr_assert_null(g);
    cr_assert(strstr(ll_last_error(), "/nonexistent/model.gguf"), "%s", ll_last_error());
}

Test(gguf, wrong_magic) {
    gg_buf b = gg_kitchen_sink(3);
    memcpy(b.p, "GGML", 4);
    gg_expect_error(&b, LL_ERR_FORMAT, "magic is \"GGML\", expected \"GGUF\"");
    memcpy(b.p, "\x00\x01GU", 4);
    gg_expect_error(&b, LL_ERR_FORMAT, "magic is \"\\x00\\x01GU\"");
    free(b.p);
}

Test(gguf, unsupported_versions) {
    gg_buf b = gg_kitchen_sink(3);
    uint32_t v = 4;
    memcpy(b.p + 4, &v, 4);
    gg_expect_error(&b, LL_ERR_UNSUPPORTED, "unsupported GGUF version 4 (layerlab reads versions 1, 2 and 3)");
    v = 0;
    memcpy(b.p + 4, &v, 4);
    gg_expect_error(&b, LL_ERR_UNSUPPORTED, "unsupported GGUF version 0");
    v = 0x03000000u;
    memcpy(b.p + 4, &v, 4);
    gg_expect_error(&b, LL_ERR_UNSUPPORTED, "big-endian");
    free(b.p);
}

Test(gguf, tensor_offset_beyond_file) {
    gg_buf b = {0};
    gg_header(&b, 3, 2, 0);
    gg_tensor(&b, "ok", 1, (uint64_t[]){8}, LL_GGML_F32, 0);
    gg_tensor(&b, "far", 1, (uint64_t[]){8}, LL_GGML_F32, 1u << 20);
    gg_pad(&b, 32);
    gg_bytes(&b, (float[8]){0}, 32);
    gg_expect_error(&b, LL_ERR_FORMAT,
                    "tensor \"far\": 32 bytes at offset 1048576 of the data section run past the end");
    free(b.p);
}

Test(gguf, tensor_straddles_the_end) {
    gg_buf b = {0};
    gg_header(&b, 3, 1, 0);
    gg_tensor(&b, "t", 2, (uint64_t[]){8, 2}, LL_GGML_F32, 0);
    gg_pad(&b, 32);
    gg_bytes(&b, (float[12]){0}, 48); /* 64 needed */
    gg_expect_error(&b, LL_ERR_FORMAT, "tensor \"t\": 64 bytes at offset 0");
    free(b.p);
}

Test(gguf, overlapping_tensors) {
    gg_buf b = {0};
    gg_header(&b, 3, 3, 0);
    gg_tensor(&b, "first", 1, (uint64_t[]){8}, LL_GGML_F32, 0);
    gg_tensor(&b, "big", 1, (uint64_t[]){32}, LL_GGML_F32, 32);  /* [32, 160) */
    gg_tensor(&b, "inner", 1, (uint64_t[]){8}, LL_GGML_F32, 96); /* inside "big" */
    gg_pad(&b, 32);
    gg_bytes(&b, (float[40]){0}, 160);
    gg_expect_error(&b, LL_ERR_FORMAT,
                    "tensors \"big\" (bytes [32, 160) of the data section) and \"inner\" (bytes [96, 128)) overlap");
    free(b.p);

    /* Same start, listed in either order. */
    gg_buf c = {0};
    gg_header(&c, 2, 2, 0);
    gg_tensor(&c, "x", 1, (uint64_t[]){8}, LL_GGML_F32, 0);
    gg_tensor(&c, "y", 1, (uint64_t[]){4}, LL_GGML_F16, 0);
    gg_pad(&c, 32);
    gg_bytes(&c, (float[8]){0}, 32);
    gg_expect_error(&c, LL_ERR_FORMAT, "overlap");
    free(c.p);
}

Test(gguf, empty_tensors_do_not_overlap) {
    gg_buf b = {0};
    gg_header(&b, 3, 2, 0);
    gg_tensor(&b, "x", 1, (uint64_t[]){8}, LL_GGML_F32, 0);
    gg_tensor(&b, "empty", 2, (uint64_t[]){0, 4}, LL_GGML_F32, 0);
    gg_pad(&b, 32);
    gg_bytes(&b, (float[8]){0}, 32);
    ll_gguf *g;
    cr_assert_eq(ll_gguf_parse(&g, b.p, b.n, "synth.gguf"), LL_OK, "%s", ll_last_error());
    ll_gguf_free(g);
    free(b.p);
}

Test(gguf, misaligned_offset) {
    gg_buf b = {0};
    gg_header(&b, 3, 1, 0);
    gg_tensor(&b, "t", 1, (uint64_t[]){2}, LL_GGML_F32, 4);
    gg_pad(&b, 32);
    gg_bytes(&b, (float[4]){0}, 16);
    gg_expect_error(&b, LL_ERR_FORMAT, "tensor \"t\": offset 4 is not a multiple of the alignment 32");
    free(b.p);
}

Test(gguf, unknown_ggml_type) {
    gg_buf b = {0};
    gg_header(&b, 3, 1, 0);
    gg_tensor(&b, "blk.0.attn_q.weight", 1, (uint64_t[]){32}, 4, 0);
    gg_pad(&b, 32);
    gg_bytes(&b, (float[8]){0}, 32);
    gg_expect_error(&b, LL_ERR_FORMAT, "tensor \"blk.0.attn_q.weight\": unknown ggml type id 4");
    free(b.p);
}

Test(gguf, partial_quant_block) {
    gg_buf b = {0};
    gg_header(&b, 3, 1, 0);
    gg_tensor(&b, "q", 2, (uint64_t[]){100, 2}, LL_GGML_Q4_K, 0);
    gg_pad(&b, 32);
    gg_bytes(&b, (char[288]){0}, 288);
    gg_expect_error(&b, LL_ERR_FORMAT, "tensor \"q\": ne[0] = 100 is not a multiple of the Q4_K block size 256");
    free(b.p);
}

Test(gguf, too_many_dims) {
    gg_buf b = {0};
    gg_header(&b, 3, 1, 0);
    gg_tensor(&b, "t5", 5, (uint64_t[]){1, 1, 1, 1, 1}, LL_GGML_F32, 0);
    gg_pad(&b, 32);
    gg_bytes(&b, (float[8]){0}, 32);
    gg_expect_error(&b, LL_ERR_FORMAT, "tensor \"t5\": n_dims is 5, expected 1 to 4");
    free(b.p);
}

Test(gguf, element_count_overflow) {
    gg_buf b = {0};
    gg_header(&b, 3, 1, 0);
    gg_tensor(&b, "huge", 2, (uint64_t[]){1ull << 40, 1ull << 40}, LL_GGML_F32, 0);
    gg_expect_error(&b, LL_ERR_FORMAT, "tensor \"huge\": ne[1] = 1099511627776 makes the element count overflow");
    free(b.p);
}

Test(gguf, counts_that_cannot_fit) {
    gg_buf b = {0};
    gg_header(&b, 3, 0, 1ull << 60);
    gg_kv_u32(&b, "a", 1);
    gg_expect_error(&b, LL_ERR_FORMAT, "header claims 1152921504606846976 metadata entries");
    free(b.p);

    gg_buf c = {0};
    gg_header(&c, 1, 0xffffffffu, 0);
    gg_expect_error(&c, LL_ERR_FORMAT, "header claims 4294967295 tensors");
    free(c.p);

    gg_buf d = {0};
    gg_header(&d, 3, 0, 1);
    gg_key(&d, "tokenizer.ggml.tokens", LL_GGUF_ARRAY);
    gg_u32(&d, LL_GGUF_STRING);
    gg_count(&d, 1ull << 62);
    gg_expect_error(&d, LL_ERR_FORMAT,
                    "key \"tokenizer.ggml.tokens\": array of 4611686018427387904 strings cannot fit");
    free(d.p);

    gg_buf e = {0};
    gg_header(&e, 3, 0, 1);
    gg_key(&e, "scores", LL_GGUF_ARRAY);
    gg_u32(&e, LL_GGUF_F32);
    gg_count(&e, 1000);
    gg_bytes(&e, (float[4]){0}, 16);
    gg_expect_error(&e, LL_ERR_FORMAT, "key \"scores\": array of 1000 f32 values");
    free(e.p);

    gg_buf f = {0};
    gg_header(&f, 3, 0, 1);
    gg_key(&f, "name", LL_GGUF_STRING);
    gg_count(&f, UINT64_MAX);
    gg_expect_error(&f, LL_ERR_FORMAT, "truncated: the string value of \"name\" needs 18446744073709551615 bytes");
    free(f.p);
}

Test(gguf, bad_metadata) {
    gg_buf b = {0};
    gg_header(&b, 3, 0, 1);
    gg_key(&b, "k", 13);
    gg_u32(&b, 0);
    gg_expect_error(&b, LL_ERR_FORMAT, "key \"k\": unknown value type 13");
    free(b.p);

    gg_buf c = {0};
    gg_header(&c, 3, 0, 1);
    gg_key(&c, "nested", LL_GGUF_ARRAY);
    gg_u32(&c, LL_GGUF_ARRAY);
    gg_count(&c, 0);
    gg_expect_error(&c, LL_ERR_UNSUPPORTED, "key \"nested\": arrays of arrays are not supported");
    free(c.p);

    gg_buf d = {0};
    gg_header(&d, 3, 0, 2);
    gg_kv_u32(&d, "dup", 1);
    gg_kv_u32(&d, "dup", 2);
    gg_expect_error(&d, LL_ERR_FORMAT, "metadata key \"dup\" appears twice");
    free(d.p);

    gg_buf e = {0};
    gg_header(&e, 3, 0, 1);
    gg_key(&e, "flag", LL_GGUF_BOOL);
    gg_u8(&e, 7);
    gg_expect_error(&e, LL_ERR_FORMAT, "key \"flag\": bool value must be 0 or 1, found 7");
    free(e.p);

    gg_buf f = {0};
    gg_header(&f, 3, 0, 1);
    gg_kv_u32(&f, "general.alignment", 48);
    gg_expect_error(&f, LL_ERR_FORMAT, "key \"general.alignment\": expected a power of two, found 48");
    free(f.p);

    gg_buf g = {0};
    gg_header(&g, 3, 0, 1);
    gg_kv_str(&g, "general.alignment", "32");
    gg_expect_error(&g, LL_ERR_FORMAT, "key \"general.alignment\": expected an unsigned 32-bit integer, found string");
    free(g.p);

    gg_buf h = {0};
    gg_header(&h, 3, 0, 1);
    gg_count(&h, 3);
    gg_bytes(&h, "a\0b", 3);
    gg_u32(&h, LL_GGUF_U8);
    gg_u8(&h, 0);
    gg_expect_error(&h, LL_ERR_FORMAT, "has a NUL byte inside its name");
    free(h.p);

    gg_buf k = {0};
    gg_header(&k, 3, 0, 1);
    gg_kv_u32(&k, "", 1);
    gg_expect_error(&k, LL_ERR_FORMAT, "metadata entry 0 has an empty name");
    free(k.p);
}

Test(gguf, duplicate_tensor) {
    gg_buf b = {0};
    gg_header(&b, 3, 2, 0);
    gg_tensor(&b, "w", 1, (uint64_t[]){8}, LL_GGML_F32, 0);
    gg_tensor(&b, "w", 1, (uint64_t[]){8}, LL_GGML_F32, 32);
    gg_pad(&b, 32);
    gg_bytes(&b, (float[16]){0}, 64);
    gg_expect_error(&b, LL_ERR_FORMAT, "tensor \"w\" appears twice");
    free(b.p);
}

/* ------------------------------------------------------------------------ */
/* llama conversion errors                                                   */
/* ------------------------------------------------------------------------ */

static void gg_load_error(gg_llama_opt o, ll_status want, const char *needle) {
    gg_buf b = gg_llama(o);
    char path[64];
    gg_write(&b, path, sizeof path);
    ll_config c;
    ll_tensor_set ts;
    ll_gguf *meta = (ll_gguf *)1;
    ll_status st = ll_gguf_load_model(path, &c, &ts, &meta);
    cr_assert_eq(st, want, "expected %s, got %s: %s", ll_status_name(want), ll_status_name(st), ll_last_error());
    cr_assert_null(meta);
    char full[512];
    snprintf(full, sizeof full, "%s: %s", path, needle);
    cr_assert(strstr(ll_last_error(), full), "message \"%s\" lacks \"%s\"", ll_last_error(), full);
    unlink(path);
    free(b.p);
}

Test(gguf, quantized_weight_is_refused_by_name) {
    gg_llama_opt o = gg_llama_default();
    o.q_type = LL_GGML_Q4_K;
    gg_load_error(
        o, LL_ERR_UNSUPPORTED,
        "unsupported tensor type Q4_K in tensor blk.0.attn_q.weight (layerlab runs F32, F16 and BF16 tensors)");
    o.q_type = LL_GGML_Q8_0;
    gg_load_error(o, LL_ERR_UNSUPPORTED, "unsupported tensor type Q8_0 in tensor blk.0.attn_q.weight");
    /* The file itself is well-formed: parsing alone succeeds. */
    o.q_type = LL_GGML_Q4_K;
    gg_buf b = gg_llama(o);
    ll_gguf *g;
    cr_assert_eq(ll_gguf_parse(&g, b.p, b.n, "q.gguf"), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_gguf_find_tensor(g, "blk.0.attn_q.weight")->nbytes, 8 * 144);
    ll_gguf_free(g);
    free(b.p);
}

Test(gguf, other_architecture) {
    gg_llama_opt o = gg_llama_default();
    o.arch = "gpt2";
    gg_load_error(o, LL_ERR_UNSUPPORTED,
                  "general.architecture is \"gpt2\"; layerlab reads GGUF files of architecture \"llama\"");
}

Test(gguf, missing_keys) {
    gg_llama_opt o = gg_llama_default();
    o.skip_key = "llama.block_count";
    gg_load_error(o, LL_ERR_MISSING, "metadata key \"llama.block_count\" is missing");
    o.skip_key = "general.architecture";
    gg_load_error(o, LL_ERR_MISSING, "metadata key \"general.architecture\" is missing");
    o.skip_key = "llama.attention.layer_norm_rms_epsilon";
    gg_load_error(o, LL_ERR_MISSING, "metadata key \"llama.attention.layer_norm_rms_epsilon\" is missing");
}

Test(gguf, wrong_key_type) {
    gg_buf b = {0};
    gg_header(&b, 3, 0, 2);
    gg_kv_str(&b, "general.architecture", "llama");
    gg_kv_str(&b, "llama.embedding_length", "8");
    ll_gguf *g;
    cr_assert_eq(ll_gguf_parse(&g, b.p, b.n, "k.gguf"), LL_OK, "%s", ll_last_error());
    ll_config c;
    cr_assert_eq(ll_gguf_model_config(g, &c), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(),
                     "k.gguf: key \"llama.embedding_length\": expected an unsigned 32-bit integer, found string"),
              "%s", ll_last_error());
    ll_gguf_free(g);
    free(b.p);
}

Test(gguf, partial_rotary_is_refused) {
    gg_buf b = {0};
    gg_header(&b, 3, 0, 8);
    gg_kv_str(&b, "general.architecture", "llama");
    gg_kv_u32(&b, "llama.embedding_length", 8);
    gg_kv_u32(&b, "llama.block_count", 1);
    gg_kv_u32(&b, "llama.attention.head_count", 2);
    gg_kv_u32(&b, "llama.feed_forward_length", 16);
    gg_kv_u32(&b, "llama.context_length", 16);
    gg_kv_f32(&b, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gg_kv_u32(&b, "llama.rope.dimension_count", 2);
    ll_gguf *g;
    cr_assert_eq(ll_gguf_parse(&g, b.p, b.n, "r.gguf"), LL_OK, "%s", ll_last_error());
    ll_config c;
    cr_assert_eq(ll_gguf_model_config(g, &c), LL_ERR_UNSUPPORTED);
    cr_assert(strstr(ll_last_error(), "llama.rope.dimension_count is 2 but the head size is 4"), "%s", ll_last_error());
    ll_gguf_free(g);
    free(b.p);
}

Test(gguf, translated_name_collision) {
    gg_buf b = {0};
    gg_header(&b, 3, 2, 0);
    gg_tensor(&b, "output_norm.weight", 1, (uint64_t[]){8}, LL_GGML_F32, 0);
    gg_tensor(&b, "model.norm.weight", 1, (uint64_t[]){8}, LL_GGML_F32, 32);
    gg_pad(&b, 32);
    gg_bytes(&b, (float[16]){0}, 64);
    ll_gguf *g;
    cr_assert_eq(ll_gguf_parse(&g, b.p, b.n, "n.gguf"), LL_OK, "%s", ll_last_error());
    ll_tensor_set ts;
    memset(&ts, 0, sizeof ts);
    cr_assert_eq(ll_gguf_model_tensors(g, &ts, -1), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), "n.gguf: two tensors end up named \"model.norm.weight\""), "%s", ll_last_error());
    ll_tensor_set_free(&ts);
    ll_gguf_free(g);
    free(b.p);
}

/* One F32 tensor under general.alignment 1, `off` bytes into the data section. */
static gg_buf gg_byte_aligned(uint64_t off, size_t *data_start) {
    gg_buf b = {0};
    gg_header(&b, 3, 1, 1);
    gg_kv_u32(&b, "general.alignment", 1);
    gg_tensor(&b, "token_embd.weight", 2, (uint64_t[]){2, 2}, LL_GGML_F32, off);
    *data_start = b.n; /* no padding under alignment 1 */
    for (uint64_t i = 0; i < off; i++) gg_u8(&b, 0);
    gg_bytes(&b, (float[4]){0}, 16);
    return b;
}

Test(gguf, misaligned_weights_are_refused) {
    size_t start;
    free(gg_byte_aligned(0, &start).p);                          /* the header size does not depend on the offset */
    uint64_t offs[2] = {(4 - start % 4) % 4, start % 4 ? 0 : 1}; /* aligned, misaligned */
    for (int k = 0; k < 2; k++) {
        gg_buf b = gg_byte_aligned(offs[k], &start);
        ll_gguf *g;
        cr_assert_eq(ll_gguf_parse(&g, b.p, b.n, "a.gguf"), LL_OK, "%s", ll_last_error());
        cr_assert_eq(ll_gguf_data_offset(g), start);
        ll_tensor_set ts;
        memset(&ts, 0, sizeof ts);
        ll_status st = ll_gguf_model_tensors(g, &ts, -1);
        if (k == 0) {
            cr_assert_eq(st, LL_OK, "%s", ll_last_error());
        } else {
            cr_assert_eq(st, LL_ERR_UNSUPPORTED);
            cr_assert(strstr(ll_last_error(), "a.gguf: tensor token_embd.weight starts at file offset"), "%s",
                      ll_last_error());
        }
        ll_tensor_set_free(&ts);
        ll_gguf_free(g);
        free(b.p);
    }
}

/* llama.cpp's convention for rope_freqs.weight (written by its Llama 3.1 converter): each
 * rotation angle pos * theta^(-2i/d) is divided by factor i. The synthesized file holds
 * factors 11000 and 11001 (tensor 11 stores 1000 * 11 + k). */
Test(gguf, rope_freqs_divide_the_angles) {
    gg_buf b = gg_llama(gg_llama_default());
    char path[64];
    gg_write(&b, path, sizeof path);
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, path, NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(m->cfg.head_dim, 4);
    for (int i = 0; i < 2; i++) {
        double want = pow(10000.0, -2.0 * i / 4.0) / (11000.0 + i);
        cr_expect(fabs(m->rope_inv_freq[i] - want) <= 1e-6 * want, "inv_freq[%d] = %.9g, want %.9g", i,
                  m->rope_inv_freq[i], want);
    }
    ll_model_free(m);
    unlink(path);
    free(b.p);
}
