/* Loading: recognise the checkpoint format, build the tensor table, read the
 * config, bind fp32 weights, prepare RoPE. */
#include "ll_model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/ll_alloc.h"
#include "../io/ll_gguf.h"
#include "../io/ll_llama2c.h"

static int ll_has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

static ll_status ll_load_hf(ll_model *m, const char *path) {
    /* `path` is a directory, or a file inside one (model.safetensors / index.json). */
    char dir[4096];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(dir, sizeof dir, "%s", path);
    } else {
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    }
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    char *txt;
    LL_TRY(ll_read_file(cpath, &txt, NULL));
    ll_status s = ll_config_from_hf_json(&m->cfg, txt, cpath);
    free(txt);
    LL_TRY(s);
    /* generation_config.json is optional; where present it is what generate() uses for
     * BOS/EOS, so its ids win over config.json's. */
    snprintf(cpath, sizeof cpath, "%s/generation_config.json", dir);
    if (stat(cpath, &st) == 0) {
        LL_TRY(ll_read_file(cpath, &txt, NULL));
        s = ll_config_apply_generation_json(&m->cfg, txt, cpath);
        free(txt);
        LL_TRY(s);
    }
    return ll_safetensors_open(&m->ts, path);
}

static int ll_file_magic(const char *path, char magic[4]) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 ? 0 : -1;
}

ll_status ll_model_load(ll_model **out, const char *path, const ll_load_opts *opts) {
    (void)opts;
    *out = NULL;
    ll_model *m = ll_calloc(1, sizeof *m, "model");
    if (!m) return LL_ERR_NOMEM;
    m->be = ll_backend_cpu();
    m->path = ll_strdup(path);
    ll_status st = m->path ? LL_OK : LL_ERR_NOMEM;
    struct stat sb;
    if (!st && stat(path, &sb) != 0) st = ll_err(LL_ERR_IO, "%s: no such file or directory", path);
    char magic[4] = {0};
    if (!st) {
        int is_dir = S_ISDIR(sb.st_mode);
        if (is_dir || ll_has_suffix(path, ".safetensors") || ll_has_suffix(path, ".index.json")) {
            st = ll_load_hf(m, path);
        } else if (ll_file_magic(path, magic) == 0 && memcmp(magic, "GGUF", 4) == 0) {
            ll_gguf *g = NULL;
            st = ll_gguf_load_model(path, &m->cfg, &m->ts, &g);
            m->gguf = g;
        } else if (ll_has_suffix(path, ".gguf")) {
            st = ll_err(LL_ERR_FORMAT, "%s: wrong magic: expected \"GGUF\", found bytes %02x %02x %02x %02x", path,
                        (unsigned char)magic[0], (unsigned char)magic[1], (unsigned char)magic[2],
                        (unsigned char)magic[3]);
        } else if (ll_has_suffix(path, ".bin")) {
            st = ll_llama2c_load_model(path, &m->cfg, &m->ts);
        } else {
            st = ll_err(LL_ERR_UNSUPPORTED,
                        "%s: unrecognised checkpoint (expected a Hugging Face directory, a .safetensors file, a .gguf "
                        "file or a llama2.c .bin)",
                        path);
        }
    }
    if (!st && m->cfg.head_dim > 2048)
        st = ll_err(LL_ERR_UNSUPPORTED, "%s: head_dim %d is larger than the supported 2048", path, m->cfg.head_dim);
    if (!st) st = m->cfg.arch == LL_ARCH_GPT2 ? ll_model_bind_gpt2(m) : ll_model_bind_llama(m);
    if (!st) st = ll_model_init_rope(m);
    if (st) {
        ll_model_free(m);
        return st;
    }
    *out = m;
    return LL_OK;
}

void ll_model_free(ll_model *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_bufs; i++) free(m->bufs[i]);
    free(m->bufs);
    for (size_t i = 0; i < m->n_be_bufs; i++) m->be->free(m->be_bufs[i]);
    free(m->be_bufs);
    free(m->w.layers);
    free(m->rope_inv_freq);
    ll_tensor_set_free(&m->ts);
    if (m->gguf) ll_gguf_free(m->gguf);
    free(m->path);
    free(m);
}

static ll_status ll_model_own(ll_model *m, void *buf) {
    void **nb = realloc(m->bufs, (m->n_bufs + 1) * sizeof *nb);
    if (!nb) {
        free(buf);
        return ll_err(LL_ERR_NOMEM, "model: cannot record a weight buffer");
    }
    m->bufs = nb;
    m->bufs[m->n_bufs++] = buf;
    return LL_OK;
}

static ll_status ll_model_tensor_impl(ll_model *m, const char *name, int ndim, const int64_t *shape,
                                      const float **out, int required) {
    *out = NULL;
    const ll_tensor_info *t = ll_tensor_set_find(&m->ts, name);
    if (!t) {
        if (!required) return LL_OK;
        return ll_err(LL_ERR_MISSING, "%s: missing tensor %s", m->path, name);
    }
    const char *file = ll_tensor_file(&m->ts, t);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        ll_tensor_info want = {.ndim = ndim};
        for (int i = 0; i < ndim; i++) want.shape[i] = shape[i];
        char a[96], b[96];
        ll_tensor_shape_str(&want, a, sizeof a);
        ll_tensor_shape_str(t, b, sizeof b);
        return ll_err(LL_ERR_SHAPE, "%s: tensor %s: expected shape %s from the config, found %s", file, name, a, b);
    }
    size_t n = ll_tensor_numel(t);
    if (t->dtype == LL_F32 && ((uintptr_t)t->data & 3) == 0) {
        /* Used in place: the page cache holds the only copy. */
        *out = t->data;
        m->weight_bytes_mapped += t->nbytes;
        return LL_OK;
    }
    if (t->dtype != LL_F32 && t->dtype != LL_F16 && t->dtype != LL_BF16 && t->dtype != LL_F64)
        return ll_err(LL_ERR_UNSUPPORTED, "%s: tensor %s: dtype %s, expected F32, F16 or BF16", file, name,
                      ll_dtype_name(t->dtype));
    float *buf = ll_alloc_aligned(n, sizeof(float), name);
    if (!buf) return LL_ERR_NOMEM;
    ll_convert_to_f32(buf, t->data, t->dtype, n);
    LL_TRY(ll_model_own(m, buf));
    m->weight_bytes_converted += n * sizeof(float);
    /* The source pages will not be read again: let the kernel drop them so peak memory
     * stays near the fp32 size rather than file + fp32. */
    if (t->file >= 0) ll_mmap_release(&m->ts.files[t->file], t->data, t->nbytes);
    *out = buf;
    return LL_OK;
}

ll_status ll_model_tensor(ll_model *m, const char *name, int ndim, const int64_t *shape, const float **out) {
    return ll_model_tensor_impl(m, name, ndim, shape, out, 1);
}

ll_status ll_model_tensor_opt(ll_model *m, const char *name, int ndim, const int64_t *shape, const float **out) {
    return ll_model_tensor_impl(m, name, ndim, shape, out, 0);
}

size_t ll_model_n_params(const ll_model *m) {
    const ll_config *c = &m->cfg;
    size_t d = (size_t)c->d_model, q = (size_t)c->n_heads * c->head_dim, kv = (size_t)c->n_kv_heads * c->head_dim;
    size_t per = d * q + 2 * d * kv + q * d + (c->mlp == LL_MLP_SWIGLU ? 3 : 2) * d * (size_t)c->d_ff;
    per += (c->norm == LL_NORM_LAYER ? 4 : 2) * d;
    if (c->qkv_bias) per += q + 2 * kv;
    if (c->proj_bias) per += d + d + (size_t)c->d_ff;
    size_t n = per * (size_t)c->n_layers + (size_t)c->vocab_size * d + (c->norm == LL_NORM_LAYER ? 2 : 1) * d;
    if (!c->tied_embeddings) n += (size_t)c->vocab_size * d;
    if (c->learned_pos) n += (size_t)c->max_pos * d;
    return n;
}
