/* llama2.c legacy checkpoints: stories260K.bin (and its agreement with the
 * GGUF conversion of the same weights), synthesized files, malformed headers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/ll_gguf.h"
#include "io/ll_llama2c.h"

static bool l2_asset(char *buf, size_t n, const char *rel) {
    const char *env = getenv("LAYERLAB_SHARED");
    snprintf(buf, n, "%s/assets/%s", env && *env ? env : "../shared", rel);
    struct stat st;
    return stat(buf, &st) == 0;
}

#define L2_BIN "stories260K/stories260K.bin"
#define L2_GGUF "stories260K/tinyllamas-stories-260k-f32.gguf"

#define L2_NEED_ASSET(buf, rel)                                                                                        \
    do {                                                                                                               \
        if (!l2_asset(buf, sizeof buf, rel))                                                                           \
            cr_skip_test("%s not found: shared assets live in ../shared/assets (or $LAYERLAB_SHARED/assets)", buf);    \
    } while (0)

/* A synthesized checkpoint: header then `n_floats` floats holding their index. */
typedef struct {
    unsigned char *p;
    size_t n;
} l2_file;

static l2_file l2_make(const int32_t h[7], size_t n_floats) {
    l2_file f;
    f.n = 28 + 4 * n_floats;
    f.p = malloc(f.n);
    cr_assert_not_null(f.p);
    memcpy(f.p, h, 28);
    for (size_t i = 0; i < n_floats; i++) {
        float v = (float)i;
        memcpy(f.p + 28 + 4 * i, &v, 4);
    }
    return f;
}

/* Float count a header implies (kept independent of the loader's arithmetic). */
static size_t l2_floats(const int32_t h[7]) {
    size_t dim = (size_t)h[0], hid = (size_t)h[1], L = (size_t)h[2], H = (size_t)h[3], KV = (size_t)h[4];
    size_t V = (size_t)(h[5] < 0 ? -h[5] : h[5]), S = (size_t)h[6];
    size_t hs = dim / H, kvd = dim * KV / H;
    size_t n = V * dim + L * dim + L * dim * dim + 2 * L * kvd * dim + L * dim * dim + L * dim + 3 * L * hid * dim +
               dim + S * hs;
    return n + (h[5] < 0 ? V * dim : 0);
}

static void l2_write(const l2_file *f, char *path, size_t n) {
    snprintf(path, n, "/tmp/layerlab_l2c_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, f->p, f->n), (ssize_t)f->n);
    close(fd);
}

/* Load through a real file; returns the status, frees everything. */
static ll_status l2_load_file(const l2_file *f, char *path, size_t pathlen) {
    l2_write(f, path, pathlen);
    ll_config c;
    ll_tensor_set ts;
    ll_status st = ll_llama2c_load_model(path, &c, &ts);
    if (st == LL_OK) ll_tensor_set_free(&ts);
    unlink(path);
    return st;
}

static void l2_shape(const ll_tensor_set *ts, const char *name, int ndim, int64_t d0, int64_t d1) {
    const ll_tensor_info *t = ll_tensor_set_find(ts, name);
    cr_assert_not_null(t, "tensor %s missing", name);
    cr_assert_eq(t->ndim, ndim, "%s: ndim %d", name, t->ndim);
    cr_assert_eq(t->shape[0], d0, "%s: shape[0] %lld, expected %lld", name, (long long)t->shape[0], (long long)d0);
    if (ndim > 1)
        cr_assert_eq(t->shape[1], d1, "%s: shape[1] %lld, expected %lld", name, (long long)t->shape[1], (long long)d1);
    cr_assert_eq(t->dtype, LL_F32);
    cr_assert_eq(t->nbytes, ll_tensor_numel(t) * 4);
}

static float l2_first(const ll_tensor_set *ts, const char *name) {
    const ll_tensor_info *t = ll_tensor_set_find(ts, name);
    cr_assert_not_null(t, "tensor %s missing", name);
    float v;
    memcpy(&v, t->data, 4);
    return v;
}

/* ------------------------------------------------------------------------ */

Test(llama2c, stories260k) {
    char path[4096];
    L2_NEED_ASSET(path, L2_BIN);
    ll_config c;
    ll_tensor_set ts;
    cr_assert_eq(ll_llama2c_load_model(path, &c, &ts), LL_OK, "%s", ll_last_error());
    cr_assert_eq(c.arch, LL_ARCH_LLAMA);
    cr_assert_eq(c.format, LL_FMT_LLAMA2C);
    cr_assert_eq(c.d_model, 64);
    cr_assert_eq(c.d_ff, 172);
    cr_assert_eq(c.n_layers, 5);
    cr_assert_eq(c.n_heads, 8);
    cr_assert_eq(c.n_kv_heads, 4);
    cr_assert_eq(c.head_dim, 8);
    cr_assert_eq(c.vocab_size, 512);
    cr_assert_eq(c.max_pos, 512);
    cr_assert(c.tied_embeddings); /* positive vocab_size: shared classifier */
    cr_assert_float_eq(c.norm_eps, 1e-5f, 0.0f);
    cr_assert_float_eq(c.rope_theta, 10000.0f, 0.0f);
    cr_assert_eq(c.rope_layout, LL_ROPE_INTERLEAVED);
    cr_assert_eq(c.norm, LL_NORM_RMS);
    cr_assert_eq(c.mlp, LL_MLP_SWIGLU);
    cr_assert_eq(c.bos_id, 1);
    cr_assert_eq(c.eos_id, 2);
    cr_assert_eq(ts.n, 1 + 5 * 9 + 1);
    l2_shape(&ts, "model.embed_tokens.weight", 2, 512, 64);
    l2_shape(&ts, "model.layers.0.input_layernorm.weight", 1, 64, 0);
    l2_shape(&ts, "model.layers.0.self_attn.q_proj.weight", 2, 64, 64);
    l2_shape(&ts, "model.layers.1.self_attn.k_proj.weight", 2, 32, 64);
    l2_shape(&ts, "model.layers.2.self_attn.v_proj.weight", 2, 32, 64);
    l2_shape(&ts, "model.layers.3.self_attn.o_proj.weight", 2, 64, 64);
    l2_shape(&ts, "model.layers.4.post_attention_layernorm.weight", 1, 64, 0);
    l2_shape(&ts, "model.layers.4.mlp.gate_proj.weight", 2, 172, 64);
    l2_shape(&ts, "model.layers.4.mlp.up_proj.weight", 2, 172, 64);
    l2_shape(&ts, "model.layers.4.mlp.down_proj.weight", 2, 64, 172);
    l2_shape(&ts, "model.norm.weight", 1, 64, 0);
    cr_assert_null(ll_tensor_set_find(&ts, "lm_head.weight"));
    ll_tensor_set_free(&ts);
}

/* The GGUF in the same directory was converted from these weights: every
 * tensor, wq and wk included, is stored byte for byte the same (llama.cpp's
 * llama2.c converter writes Meta's interleaved layout unpermuted). */
Test(llama2c, stories260k_matches_gguf) {
    char bin[4096], gguf[4096];
    L2_NEED_ASSET(bin, L2_BIN);
    L2_NEED_ASSET(gguf, L2_GGUF);
    ll_config c1, c2;
    ll_tensor_set a, b;
    cr_assert_eq(ll_llama2c_load_model(bin, &c1, &a), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_gguf_load_model(gguf, &c2, &b, NULL), LL_OK, "%s", ll_last_error());
    for (size_t i = 0; i < a.n; i++) {
        const ll_tensor_info *x = &a.t[i], *y = ll_tensor_set_find(&b, x->name);
        cr_assert_not_null(y, "%s missing from the GGUF", x->name);
        cr_assert_eq(x->nbytes, y->nbytes, "%s", x->name);
        cr_assert_eq(memcmp(x->data, y->data, x->nbytes), 0, "%s differs", x->name);
    }
    /* The GGUF stores an explicit output.weight; it is a copy of the embedding. */
    const ll_tensor_info *emb = ll_tensor_set_find(&a, "model.embed_tokens.weight");
    cr_assert_eq(memcmp(ll_tensor_set_find(&b, "lm_head.weight")->data, emb->data, emb->nbytes), 0);
    /* Same hyper-parameters, apart from where they came from. */
    cr_assert_eq(c1.d_model, c2.d_model);
    cr_assert_eq(c1.n_kv_heads, c2.n_kv_heads);
    cr_assert_eq(c1.d_ff, c2.d_ff);
    cr_assert_eq(c1.max_pos, c2.max_pos);
    cr_assert_float_eq(c1.norm_eps, c2.norm_eps, 0.0f);
    cr_assert_eq(c1.rope_layout, c2.rope_layout);
    ll_tensor_set_free(&a);
    ll_tensor_set_free(&b);
}

Test(llama2c, synthesized_shared_and_unshared) {
    /* dim 8, hidden 12, 2 layers, 4 heads, 2 kv heads, vocab 5, seq_len 6 */
    for (int unshared = 0; unshared <= 1; unshared++) {
        int32_t h[7] = {8, 12, 2, 4, 2, unshared ? -5 : 5, 6};
        l2_file f = l2_make(h, l2_floats(h));
        ll_config c;
        ll_tensor_set ts;
        cr_assert_eq(ll_llama2c_parse(f.p, f.n, "s.bin", &c, &ts), LL_OK, "%s", ll_last_error());
        cr_assert_eq(c.tied_embeddings, !unshared);
        cr_assert_eq(c.vocab_size, 5);
        cr_assert_eq(c.head_dim, 2);
        cr_assert_eq(ts.n, (size_t)(2 + 2 * 9 + unshared));
        /* Offsets, in floats: emb 40, rms_att 2x8, wq 2x64, wk 2x32, wv 2x32,
         * wo 2x64, rms_ffn 2x8, w1 2x96, w2 2x96, w3 2x96, rms_final 8,
         * freq 6x1 twice, wcls 40. */
        cr_assert_float_eq(l2_first(&ts, "model.embed_tokens.weight"), 0.0f, 0.0f);
        cr_assert_float_eq(l2_first(&ts, "model.layers.1.input_layernorm.weight"), 48.0f, 0.0f);
        cr_assert_float_eq(l2_first(&ts, "model.layers.0.self_attn.q_proj.weight"), 56.0f, 0.0f);
        cr_assert_float_eq(l2_first(&ts, "model.layers.1.self_attn.q_proj.weight"), 120.0f, 0.0f);
        cr_assert_float_eq(l2_first(&ts, "model.layers.1.self_attn.k_proj.weight"), 216.0f, 0.0f);
        cr_assert_float_eq(l2_first(&ts, "model.layers.0.self_attn.v_proj.weight"), 248.0f, 0.0f);
        cr_assert_float_eq(l2_first(&ts, "model.layers.0.self_attn.o_proj.weight"), 312.0f, 0.0f);
        cr_assert_float_eq(l2_first(&ts, "model.layers.1.post_attention_layernorm.weight"), 448.0f, 0.0f);
        cr_assert_float_eq(l2_first(&ts, "model.layers.0.mlp.gate_proj.weight"), 456.0f, 0.0f);
        cr_assert_float_eq(l2_first(&ts, "model.layers.1.mlp.down_proj.weight"), 744.0f, 0.0f);
        cr_assert_float_eq(l2_first(&ts, "model.layers.1.mlp.up_proj.weight"), 936.0f, 0.0f);
        cr_assert_float_eq(l2_first(&ts, "model.norm.weight"), 1032.0f, 0.0f);
        l2_shape(&ts, "model.layers.1.self_attn.k_proj.weight", 2, 4, 8);
        l2_shape(&ts, "model.layers.1.mlp.down_proj.weight", 2, 8, 12);
        if (unshared) {
            l2_shape(&ts, "lm_head.weight", 2, 5, 8);
            cr_assert_float_eq(l2_first(&ts, "lm_head.weight"), 1052.0f, 0.0f);
        } else {
            cr_assert_null(ll_tensor_set_find(&ts, "lm_head.weight"));
        }
        ll_tensor_set_free(&ts);

        char path[64];
        cr_assert_eq(l2_load_file(&f, path, sizeof path), LL_OK, "%s", ll_last_error());
        free(f.p);
    }
}

Test(llama2c, size_disagrees_with_header) {
    int32_t h[7] = {8, 12, 2, 4, 2, 5, 6};
    size_t n = l2_floats(h);
    char path[64], want[256];

    l2_file f = l2_make(h, n + 1);
    cr_assert_eq(l2_load_file(&f, path, sizeof path), LL_ERR_FORMAT);
    snprintf(want, sizeof want,
             "%s: header (dim 8, hidden_dim 12, n_layers 2, n_heads 4, n_kv_heads 2, vocab_size 5 "
             "(shared classifier), seq_len 6) implies a file of %zu bytes, but the file has %zu bytes",
             path, 28 + 4 * n, 28 + 4 * n + 4);
    cr_assert(strstr(ll_last_error(), want), "%s", ll_last_error());
    free(f.p);

    /* An unshared classifier under a positive vocab_size: the hint names the sign. */
    f = l2_make(h, n + 5 * 8);
    cr_assert_eq(l2_load_file(&f, path, sizeof path), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), "so vocab_size should be negative"), "%s", ll_last_error());
    free(f.p);

    int32_t hu[7] = {8, 12, 2, 4, 2, -5, 6};
    f = l2_make(hu, n);
    cr_assert_eq(l2_load_file(&f, path, sizeof path), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), "so vocab_size should be positive"), "%s", ll_last_error());
    free(f.p);
}

Test(llama2c, every_prefix_is_an_error) {
    int32_t h[7] = {8, 12, 1, 4, 4, -5, 2};
    l2_file f = l2_make(h, l2_floats(h));
    for (size_t n = 0; n < f.n; n++) {
        unsigned char *c = malloc(n ? n : 1);
        memcpy(c, f.p, n);
        ll_config cfg;
        ll_tensor_set ts;
        cr_assert_eq(ll_llama2c_parse(c, n, "p.bin", &cfg, &ts), LL_ERR_FORMAT, "prefix of %zu bytes parsed", n);
        cr_assert(strstr(ll_last_error(), "p.bin: "), "%s", ll_last_error());
        free(c);
    }
    free(f.p);
}

Test(llama2c, bad_headers) {
    static const struct {
        int32_t h[7];
        const char *msg;
    } cases[] = {
        {{0, 12, 2, 4, 2, 5, 6}, "header field dim is 0, expected a positive number"},
        {{8, -1, 2, 4, 2, 5, 6}, "header field hidden_dim is -1"},
        {{8, 12, 0, 4, 2, 5, 6}, "header field n_layers is 0"},
        {{8, 12, 2, 0, 2, 5, 6}, "header field n_heads is 0"},
        {{8, 12, 2, 4, 0, 5, 6}, "header field n_kv_heads is 0"},
        {{8, 12, 2, 4, 2, 0, 6},
         "header field vocab_size is 0, expected a positive number (negative for an unshared classifier)"},
        {{8, 12, 2, 4, 2, INT32_MIN, 6}, "header field vocab_size is -2147483648"},
        {{8, 12, 2, 4, 2, 5, 0}, "header field seq_len is 0"},
        {{8, 12, 2, 3, 3, 5, 6}, "header: dim 8 is not a multiple of n_heads 3"},
        {{8, 12, 2, 4, 3, 5, 6}, "header: n_heads 4 is not a multiple of n_kv_heads 3"},
        {{12, 12, 2, 4, 2, 5, 6}, "header: head size 3 (dim / n_heads) must be even for RoPE"},
        {{8, 12, 2, 4, 8, 5, 6}, "header: n_heads 4 is not a multiple of n_kv_heads 8"},
        {{1 << 30, INT32_MAX, INT32_MAX, 2, 1, -INT32_MAX, INT32_MAX}, "implies a size that overflows 64 bits"},
        {{1 << 14, 1 << 14, 1 << 10, 2, 1, 1 << 20, 1 << 20}, "implies a file of"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        l2_file f = l2_make(cases[i].h, 16);
        ll_config c;
        ll_tensor_set ts;
        cr_assert_eq(ll_llama2c_parse(f.p, f.n, "h.bin", &c, &ts), LL_ERR_FORMAT, "case %zu", i);
        char want[256];
        snprintf(want, sizeof want, "h.bin: %s", cases[i].msg);
        cr_assert(strstr(ll_last_error(), cases[i].msg) && strncmp(ll_last_error(), "h.bin: ", 7) == 0,
                  "case %zu: \"%s\" lacks \"%s\"", i, ll_last_error(), want);
        free(f.p);
    }
}

Test(llama2c, versioned_export_is_refused) {
    unsigned char hdr[256] = {0};
    uint32_t magic = 0x616b3432u, version = 2;
    memcpy(hdr, &magic, 4);
    memcpy(hdr + 4, &version, 4);
    ll_config c;
    ll_tensor_set ts;
    cr_assert_eq(ll_llama2c_parse(hdr, sizeof hdr, "v2.bin", &c, &ts), LL_ERR_UNSUPPORTED);
    cr_assert(strstr(ll_last_error(), "v2.bin: llama2.c export version 2 (magic \"ak42\") is not supported"), "%s",
              ll_last_error());
}

Test(llama2c, failure_leaves_outputs_alone) {
    int32_t h[7] = {8, 12, 2, 4, 2, 5, 6};
    l2_file f = l2_make(h, 3);
    char path[64];
    l2_write(&f, path, sizeof path);
    ll_config c;
    ll_tensor_set ts;
    memset(&c, 0x5a, sizeof c);
    memset(&ts, 0x5a, sizeof ts);
    ll_config c0 = c;
    ll_tensor_set ts0 = ts;
    cr_assert_eq(ll_llama2c_load_model(path, &c, &ts), LL_ERR_FORMAT);
    cr_assert_eq(memcmp(&c, &c0, sizeof c), 0);
    cr_assert_eq(memcmp(&ts, &ts0, sizeof ts), 0);
    unlink(path);
    free(f.p);
    cr_assert_eq(ll_llama2c_load_model("/nonexistent/x.bin", &c, &ts), LL_ERR_IO);
    cr_assert(strstr(ll_last_error(), "/nonexistent/x.bin"), "%s", ll_last_error());
}
