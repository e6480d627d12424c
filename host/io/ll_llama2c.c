/* llama2.c legacy checkpoint reader; see ll_llama2c.h for the layout. */
#include "ll_llama2c.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define LL_L2C_HEADER_BYTES 28 /* seven int32 */
/* First word of llama2.c's versioned exports ("ak42" read as a little-endian uint32). */
#define LL_L2C_MAGIC_AK42 0x616b3432u

typedef struct {
    int dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    bool shared;
    uint64_t head_size, kv_dim;
} ll_l2c_header;

/* Checked uint64 arithmetic: a hostile header has sizes up to 2^31 each. */
static uint64_t ll_l2c_mul(uint64_t a, uint64_t b, bool *ovf) {
    if (a && b > UINT64_MAX / a) {
        *ovf = true;
        return 0;
    }
    return a * b;
}

static uint64_t ll_l2c_add(uint64_t a, uint64_t b, bool *ovf) {
    if (b > UINT64_MAX - a) {
        *ovf = true;
        return 0;
    }
    return a + b;
}

static int32_t ll_l2c_i32(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

static ll_status ll_l2c_header_read(const unsigned char *data, size_t size, const char *path, ll_l2c_header *h) {
    if (size < LL_L2C_HEADER_BYTES)
        return ll_err(LL_ERR_FORMAT,
                      "%s: truncated: a llama2.c checkpoint starts with a %d-byte header, the file has %zu bytes", path,
                      LL_L2C_HEADER_BYTES, size);
    if ((uint32_t)ll_l2c_i32(data) == LL_L2C_MAGIC_AK42)
        return ll_err(LL_ERR_UNSUPPORTED,
                      "%s: llama2.c export version %d (magic \"ak42\") is not supported; layerlab reads the legacy "
                      "format (export.py --version 0)",
                      path, size >= 8 ? (int)ll_l2c_i32(data + 4) : -1);
    static const char *const names[7] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                                         "n_kv_heads", "vocab_size", "seq_len"};
    int32_t v[7];
    for (int i = 0; i < 7; i++) v[i] = ll_l2c_i32(data + 4 * i);
    for (int i = 0; i < 7; i++) {
        bool ok = i == 5 ? (v[i] != 0 && v[i] != INT32_MIN) : v[i] > 0;
        if (!ok)
            return ll_err(LL_ERR_FORMAT, "%s: header field %s is %d, expected a positive number%s", path, names[i],
                          (int)v[i], i == 5 ? " (negative for an unshared classifier)" : "");
    }
    h->dim = v[0];
    h->hidden = v[1];
    h->n_layers = v[2];
    h->n_heads = v[3];
    h->n_kv_heads = v[4];
    h->shared = v[5] > 0;
    h->vocab = v[5] > 0 ? v[5] : -v[5];
    h->seq_len = v[6];
    if (h->dim % h->n_heads)
        return ll_err(LL_ERR_FORMAT, "%s: header: dim %d is not a multiple of n_heads %d", path, h->dim, h->n_heads);
    if (h->n_heads % h->n_kv_heads)
        return ll_err(LL_ERR_FORMAT, "%s: header: n_heads %d is not a multiple of n_kv_heads %d", path, h->n_heads,
                      h->n_kv_heads);
    h->head_size = (uint64_t)(h->dim / h->n_heads);
    if (h->head_size % 2)
        return ll_err(LL_ERR_FORMAT, "%s: header: head size %llu (dim / n_heads) must be even for RoPE", path,
                      (unsigned long long)h->head_size);
    h->kv_dim = (uint64_t)h->dim / (uint64_t)h->n_heads * (uint64_t)h->n_kv_heads;
    return LL_OK;
}

/* Element counts of the arrays in file order. */
enum {
    LL_L2C_EMB,
    LL_L2C_RMS_ATT,
    LL_L2C_WQ,
    LL_L2C_WK,
    LL_L2C_WV,
    LL_L2C_WO,
    LL_L2C_RMS_FFN,
    LL_L2C_W1,
    LL_L2C_W2,
    LL_L2C_W3,
    LL_L2C_RMS_FINAL,
    LL_L2C_FREQ_RE,
    LL_L2C_FREQ_IM,
    LL_L2C_WCLS,
    LL_L2C_N
};

static void ll_l2c_counts(const ll_l2c_header *h, uint64_t per_layer[LL_L2C_N], uint64_t layers[LL_L2C_N], bool *ovf) {
    uint64_t d = (uint64_t)h->dim, f = (uint64_t)h->hidden, V = (uint64_t)h->vocab;
    memset(per_layer, 0, LL_L2C_N * sizeof *per_layer);
    for (int i = 0; i < LL_L2C_N; i++) layers[i] = 1;
    per_layer[LL_L2C_EMB] = ll_l2c_mul(V, d, ovf);
    per_layer[LL_L2C_RMS_ATT] = d;
    per_layer[LL_L2C_WQ] = ll_l2c_mul(d, d, ovf);
    per_layer[LL_L2C_WK] = ll_l2c_mul(h->kv_dim, d, ovf);
    per_layer[LL_L2C_WV] = per_layer[LL_L2C_WK];
    per_layer[LL_L2C_WO] = per_layer[LL_L2C_WQ];
    per_layer[LL_L2C_RMS_FFN] = d;
    per_layer[LL_L2C_W1] = ll_l2c_mul(f, d, ovf);
    per_layer[LL_L2C_W2] = per_layer[LL_L2C_W1];
    per_layer[LL_L2C_W3] = per_layer[LL_L2C_W1];
    per_layer[LL_L2C_RMS_FINAL] = d;
    per_layer[LL_L2C_FREQ_RE] = ll_l2c_mul((uint64_t)h->seq_len, h->head_size / 2, ovf);
    per_layer[LL_L2C_FREQ_IM] = per_layer[LL_L2C_FREQ_RE];
    per_layer[LL_L2C_WCLS] = h->shared ? 0 : per_layer[LL_L2C_EMB];
    for (int i = LL_L2C_RMS_ATT; i <= LL_L2C_W3; i++) layers[i] = (uint64_t)h->n_layers;
}

static ll_status ll_l2c_tensor(ll_tensor_set *ts, const char *name, const float *p, int ndim, int64_t d0, int64_t d1,
                               int file_idx) {
    ll_tensor_info t;
    memset(&t, 0, sizeof t);
    t.name = (char *)name;
    t.dtype = LL_F32;
    t.ndim = ndim;
    t.shape[0] = d0;
    if (ndim > 1) t.shape[1] = d1;
    t.data = p;
    t.nbytes = (size_t)(ndim == 1 ? d0 : d0 * d1) * sizeof(float);
    t.file = file_idx;
    return ll_tensor_set_add(ts, &t);
}

/* Validate the whole image against its header, then append the tensors to ts. */
static ll_status ll_l2c_build(const unsigned char *data, size_t size, const char *path, ll_config *cfg,
                              ll_tensor_set *ts, int file_idx) {
    ll_l2c_header h = {0};
    LL_TRY(ll_l2c_header_read(data, size, path, &h));
    uint64_t per[LL_L2C_N], nl[LL_L2C_N], off[LL_L2C_N];
    bool ovf = false;
    ll_l2c_counts(&h, per, nl, &ovf);
    uint64_t total = LL_L2C_HEADER_BYTES;
    for (int i = 0; i < LL_L2C_N; i++) {
        off[i] = total;
        total = ll_l2c_add(total, ll_l2c_mul(ll_l2c_mul(per[i], nl[i], &ovf), 4, &ovf), &ovf);
    }
    char desc[200];
    snprintf(desc, sizeof desc,
             "dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, vocab_size %d (%s classifier), seq_len %d",
             h.dim, h.hidden, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab, h.shared ? "shared" : "unshared",
             h.seq_len);
    if (ovf) return ll_err(LL_ERR_FORMAT, "%s: header (%s) implies a size that overflows 64 bits", path, desc);
    if (total != size) {
        /* The usual mismatch is the classifier: name the sign that would fit. */
        uint64_t cls = per[LL_L2C_EMB] * 4;
        const char *hint = "";
        if (h.shared && size >= cls && total == size - cls)
            hint = "; the extra bytes match an unshared classifier, so vocab_size should be negative";
        else if (!h.shared && total - cls == size)
            hint = "; the missing bytes match the classifier, so vocab_size should be positive (shared)";
        return ll_err(LL_ERR_FORMAT, "%s: header (%s) implies a file of %llu bytes, but the file has %zu bytes%s", path,
                      desc, (unsigned long long)total, size, hint);
    }

    ll_config c;
    memset(&c, 0, sizeof c);
    c.arch = LL_ARCH_LLAMA;
    c.format = LL_FMT_LLAMA2C;
    snprintf(c.arch_name, sizeof c.arch_name, "llama2.c");
    c.n_layers = h.n_layers;
    c.d_model = h.dim;
    c.n_heads = h.n_heads;
    c.n_kv_heads = h.n_kv_heads;
    c.head_dim = (int)h.head_size;
    c.d_ff = h.hidden;
    c.vocab_size = h.vocab;
    c.max_pos = h.seq_len;
    /* llama2.c's model.py: RMSNorm eps 1e-5, rope theta 10000 applied to
     * (2i, 2i+1) pairs through complex numbers, sentencepiece bos 1 / eos 2. */
    c.norm_eps = 1e-5f;
    c.norm = LL_NORM_RMS;
    c.mlp = LL_MLP_SWIGLU;
    c.tied_embeddings = h.shared;
    c.rope_layout = LL_ROPE_INTERLEAVED;
    c.rope_theta = 10000.0f;
    c.rope_scaling = LL_ROPE_SCALING_NONE;
    c.rope_factor = 1.0f;
    c.bos_id = 1;
    c.eos_id = 2;
    LL_TRY(ll_config_validate(&c, path));

    /* The header is 28 bytes, so every array starts 4-byte aligned when the
     * image itself is (a mapping is page-aligned). */
    if ((uintptr_t)data % 4)
        return ll_err(LL_ERR_ARG, "%s: the checkpoint image must be 4-byte aligned in memory", path);
    const float *base = (const float *)(const void *)data;
#define LL_AT(arr, layer) (base + off[arr] / 4 + (uint64_t)(layer)*per[arr])
    int64_t d = h.dim, f = h.hidden, kv = (int64_t)h.kv_dim, V = h.vocab;
    LL_TRY(ll_l2c_tensor(ts, "model.embed_tokens.weight", LL_AT(LL_L2C_EMB, 0), 2, V, d, file_idx));
    char n[96];
    for (int l = 0; l < h.n_layers; l++) {
#define LL_NAME(s) (snprintf(n, sizeof n, "model.layers.%d.%s", l, s), n)
        LL_TRY(ll_l2c_tensor(ts, LL_NAME("input_layernorm.weight"), LL_AT(LL_L2C_RMS_ATT, l), 1, d, 0, file_idx));
        LL_TRY(ll_l2c_tensor(ts, LL_NAME("self_attn.q_proj.weight"), LL_AT(LL_L2C_WQ, l), 2, d, d, file_idx));
        LL_TRY(ll_l2c_tensor(ts, LL_NAME("self_attn.k_proj.weight"), LL_AT(LL_L2C_WK, l), 2, kv, d, file_idx));
        LL_TRY(ll_l2c_tensor(ts, LL_NAME("self_attn.v_proj.weight"), LL_AT(LL_L2C_WV, l), 2, kv, d, file_idx));
        LL_TRY(ll_l2c_tensor(ts, LL_NAME("self_attn.o_proj.weight"), LL_AT(LL_L2C_WO, l), 2, d, d, file_idx));
        LL_TRY(
            ll_l2c_tensor(ts, LL_NAME("post_attention_layernorm.weight"), LL_AT(LL_L2C_RMS_FFN, l), 1, d, 0, file_idx));
        LL_TRY(ll_l2c_tensor(ts, LL_NAME("mlp.gate_proj.weight"), LL_AT(LL_L2C_W1, l), 2, f, d, file_idx));
        LL_TRY(ll_l2c_tensor(ts, LL_NAME("mlp.down_proj.weight"), LL_AT(LL_L2C_W2, l), 2, d, f, file_idx));
        LL_TRY(ll_l2c_tensor(ts, LL_NAME("mlp.up_proj.weight"), LL_AT(LL_L2C_W3, l), 2, f, d, file_idx));
#undef LL_NAME
    }
    LL_TRY(ll_l2c_tensor(ts, "model.norm.weight", LL_AT(LL_L2C_RMS_FINAL, 0), 1, d, 0, file_idx));
    /* freq_cis_real/imag are cos/sin tables of the standard theta-10000 RoPE,
     * which the forward pass computes itself; they are not exposed. */
    if (!h.shared) LL_TRY(ll_l2c_tensor(ts, "lm_head.weight", LL_AT(LL_L2C_WCLS, 0), 2, V, d, file_idx));
#undef LL_AT
    *cfg = c;
    return LL_OK;
}

ll_status ll_llama2c_parse(const unsigned char *data, size_t size, const char *path, ll_config *cfg,
                           ll_tensor_set *ts) {
    if (!cfg || !ts || (!data && size)) return ll_err(LL_ERR_ARG, "ll_llama2c_parse: NULL argument");
    if (!path) path = "(memory)";
    ll_tensor_set s;
    memset(&s, 0, sizeof s);
    ll_config c;
    ll_status st = ll_l2c_build(data, size, path, &c, &s, -1);
    if (st != LL_OK) {
        ll_tensor_set_free(&s);
        return st;
    }
    *cfg = c;
    *ts = s;
    return LL_OK;
}

ll_status ll_llama2c_load_model(const char *path, ll_config *cfg, ll_tensor_set *ts) {
    if (!path || !cfg || !ts) return ll_err(LL_ERR_ARG, "ll_llama2c_load_model: NULL argument");
    ll_mmap m;
    LL_TRY(ll_mmap_open(&m, path));
    ll_tensor_set s;
    memset(&s, 0, sizeof s);
    const unsigned char *data = m.data;
    size_t size = m.size;
    int idx = -1;
    ll_status st = ll_tensor_set_add_file(&s, &m, &idx);
    if (st != LL_OK) {
        ll_mmap_close(&m);
        return st;
    }
    /* From here the set owns the mapping and frees it on failure. */
    ll_config c;
    st = ll_l2c_build(data, size, path, &c, &s, idx);
    if (st != LL_OK) {
        ll_tensor_set_free(&s);
        return st;
    }
    *cfg = c;
    *ts = s;
    return LL_OK;
}
