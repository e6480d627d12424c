/* Writing a trained model as a Hugging Face directory (see ll_trainer_export). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ll_trainer.h"

static ll_status ll_write_file(const char *dir, const char *name, const void *data, size_t n) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return ll_err(LL_ERR_IO, "%s: cannot create (%s)", tmp, strerror(errno));
    size_t w = fwrite(data, 1, n, f);
    int c = fclose(f);
    if (w != n || c != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return ll_err(LL_ERR_IO, "%s: write failed", path);
    }
    return LL_OK;
}

/* safetensors: u64 header length, JSON header (padded with spaces to 8 bytes), data. */
static ll_status ll_write_safetensors(const ll_tmodel *m, const char *dir) {
    int nt = ll_tmodel_n_tensors(m);
    size_t hcap = 256 + (size_t)nt * 192, hl = 0, data_off = 0;
    char *hdr = malloc(hcap);
    if (!hdr) return ll_err(LL_ERR_NOMEM, "export: no memory");
    hl += snprintf(hdr + hl, hcap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < nt; i++) {
        char name[128];
        int nd;
        int64_t sh[2];
        size_t off;
        ll_tmodel_tensor(m, i, name, sizeof name, &nd, sh, &off);
        size_t bytes = (size_t)sh[0] * (nd == 2 ? (size_t)sh[1] : 1) * sizeof(float);
        if (nd == 2)
            hl += snprintf(hdr + hl, hcap - hl, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                           name, (long long)sh[0], (long long)sh[1], data_off, data_off + bytes);
        else
            hl += snprintf(hdr + hl, hcap - hl, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                           name, (long long)sh[0], data_off, data_off + bytes);
        data_off += bytes;
    }
    hl += snprintf(hdr + hl, hcap - hl, "}");
    while (hl % 8) hdr[hl++] = ' ';
    size_t total = 8 + hl + data_off;
    unsigned char *buf = malloc(total);
    if (!buf) {
        free(hdr);
        return ll_err(LL_ERR_NOMEM, "export: no memory for %zu bytes", total);
    }
    uint64_t h64 = hl;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(h64 >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    size_t at = 8 + hl;
    for (int i = 0; i < nt; i++) {
        char name[128];
        int nd;
        int64_t sh[2];
        size_t off;
        ll_tmodel_tensor(m, i, name, sizeof name, &nd, sh, &off);
        size_t bytes = (size_t)sh[0] * (nd == 2 ? (size_t)sh[1] : 1) * sizeof(float);
        memcpy(buf + at, m->p + off, bytes); /* little-endian hosts only, as the loader */
        at += bytes;
    }
    ll_status st = ll_write_file(dir, "model.safetensors", buf, total);
    free(buf);
    free(hdr);
    return st;
}

ll_status ll_trainer_export(const ll_trainer *t, const char *dir) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return ll_err(LL_ERR_IO, "%s: cannot create directory (%s)", dir, strerror(errno));
    const ll_tm_cfg *c = &t->m->c;
    char cfg[2048];
    int n = snprintf(cfg, sizeof cfg,
                     "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
                     "  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
                     "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n"
                     "  \"head_dim\": %d,\n  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %g,\n"
                     "  \"rope_theta\": %.1f,\n  \"rope_scaling\": null,\n  \"hidden_act\": \"silu\",\n"
                     "  \"attention_bias\": false,\n  \"mlp_bias\": false,\n  \"tie_word_embeddings\": false,\n"
                     "  \"initializer_range\": 0.02,\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n"
                     "  \"pad_token_id\": %d,\n  \"torch_dtype\": \"float32\"\n}\n",
                     c->vocab, c->d_model, c->d_ff, c->n_layers, c->n_heads, c->n_kv_heads, c->d_model / c->n_heads,
                     c->max_seq, c->norm_eps, c->rope_theta, ll_toy_bos(), ll_toy_eos(), ll_toy_pad());
    LL_TRY(ll_write_file(dir, "config.json", cfg, (size_t)n));
    n = snprintf(cfg, sizeof cfg, "{\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n  \"pad_token_id\": %d\n}\n",
                 ll_toy_bos(), ll_toy_eos(), ll_toy_pad());
    LL_TRY(ll_write_file(dir, "generation_config.json", cfg, (size_t)n));
    LL_TRY(ll_write_safetensors(t->m, dir));
    char *tj, *tc;
    LL_TRY(ll_toy_tokenizer_json(t->world, &tj, &tc));
    ll_status st = ll_write_file(dir, "tokenizer.json", tj, strlen(tj));
    if (st == LL_OK) st = ll_write_file(dir, "tokenizer_config.json", tc, strlen(tc));
    free(tj);
    free(tc);
    return st;
}
