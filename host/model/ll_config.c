/* Hugging Face config.json -> ll_config.
 *
 * Architectures are chosen from "architectures"[0] (falling back to "model_type"),
 * and every size is read under both its Llama and its GPT-2 name. Missing optional
 * fields take the defaults transformers itself uses, so that numerics match. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ll_config.h"

const char *ll_arch_name(ll_arch a) {
    switch (a) {
    case LL_ARCH_LLAMA: return "llama";
    case LL_ARCH_MISTRAL: return "mistral";
    case LL_ARCH_QWEN2: return "qwen2";
    case LL_ARCH_GPT2: return "gpt2";
    }
    return "?";
}

/* Read an integer field; `required` makes absence an error. */
static ll_status ll_cfg_int(const cJSON *root, const char *key, int *out, int def, int required, const char *path) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return ll_err(LL_ERR_MISSING, "%s: required field \"%s\" is missing", path, key);
        *out = def;
        return LL_OK;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < -1 ||
        j->valuedouble > 1e9)
        return ll_err(LL_ERR_FORMAT, "%s: field \"%s\": expected an integer, found %s", path, key,
                      cJSON_IsNumber(j) ? "a non-integer or out-of-range number" : "another JSON type");
    *out = (int)j->valuedouble;
    return LL_OK;
}

static ll_status ll_cfg_float(const cJSON *root, const char *key, float *out, float def, const char *path) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return LL_OK;
    }
    if (!cJSON_IsNumber(j)) return ll_err(LL_ERR_FORMAT, "%s: field \"%s\": expected a number", path, key);
    *out = (float)j->valuedouble;
    return LL_OK;
}

static ll_status ll_cfg_bool(const cJSON *root, const char *key, bool *out, bool def, const char *path) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return LL_OK;
    }
    if (!cJSON_IsBool(j)) return ll_err(LL_ERR_FORMAT, "%s: field \"%s\": expected true or false", path, key);
    *out = cJSON_IsTrue(j);
    return LL_OK;
}

/* bos/eos may be an integer or a list (Llama 3.1 lists several eos ids: keep the first). */
static ll_status ll_cfg_token(const cJSON *root, const char *key, int *out, const char *path) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = -1;
    if (!j || cJSON_IsNull(j)) return LL_OK;
    if (cJSON_IsArray(j)) j = cJSON_GetArrayItem(j, 0);
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= -1) || j->valuedouble > 1e9 ||
        j->valuedouble != floor(j->valuedouble))
        return ll_err(LL_ERR_FORMAT, "%s: field \"%s\": expected a token id (a non-negative integer)", path, key);
    *out = (int)j->valuedouble;
    return LL_OK;
}

static ll_status ll_cfg_rope_scaling(ll_config *c, const cJSON *root, const char *path) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    c->rope_scaling = LL_ROPE_SCALING_NONE;
    c->rope_factor = 1.0f;
    if (!rs || cJSON_IsNull(rs)) return LL_OK;
    if (!cJSON_IsObject(rs)) return ll_err(LL_ERR_FORMAT, "%s: field \"rope_scaling\": expected an object or null", path);
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!ty) ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(ty))
        return ll_err(LL_ERR_FORMAT, "%s: field \"rope_scaling.rope_type\": expected a string", path);
    LL_TRY(ll_cfg_float(rs, "factor", &c->rope_factor, 1.0f, path));
    if (strcmp(ty->valuestring, "default") == 0) return LL_OK;
    if (strcmp(ty->valuestring, "linear") == 0) {
        c->rope_scaling = LL_ROPE_SCALING_LINEAR;
        return LL_OK;
    }
    if (strcmp(ty->valuestring, "llama3") == 0) {
        c->rope_scaling = LL_ROPE_SCALING_LLAMA3;
        LL_TRY(ll_cfg_float(rs, "low_freq_factor", &c->rope_low_freq_factor, 1.0f, path));
        LL_TRY(ll_cfg_float(rs, "high_freq_factor", &c->rope_high_freq_factor, 4.0f, path));
        LL_TRY(ll_cfg_int(rs, "original_max_position_embeddings", &c->rope_original_max_pos, 8192, 0, path));
        return LL_OK;
    }
    return ll_err(LL_ERR_UNSUPPORTED,
                  "%s: field \"rope_scaling.rope_type\": \"%s\" is not supported (supported: default, linear, llama3)",
                  path, ty->valuestring);
}

static ll_status ll_config_llama_family(ll_config *c, const cJSON *root, const char *path) {
    LL_TRY(ll_cfg_int(root, "hidden_size", &c->d_model, 0, 1, path));
    LL_TRY(ll_cfg_int(root, "num_hidden_layers", &c->n_layers, 0, 1, path));
    LL_TRY(ll_cfg_int(root, "num_attention_heads", &c->n_heads, 0, 1, path));
    LL_TRY(ll_cfg_int(root, "num_key_value_heads", &c->n_kv_heads, c->n_heads, 0, path));
    LL_TRY(ll_cfg_int(root, "intermediate_size", &c->d_ff, 0, 1, path));
    LL_TRY(ll_cfg_int(root, "vocab_size", &c->vocab_size, 0, 1, path));
    LL_TRY(ll_cfg_int(root, "max_position_embeddings", &c->max_pos, 2048, 0, path));
    int hd = c->n_heads > 0 ? c->d_model / c->n_heads : 0;
    LL_TRY(ll_cfg_int(root, "head_dim", &c->head_dim, hd, 0, path));
    LL_TRY(ll_cfg_float(root, "rms_norm_eps", &c->norm_eps, 1e-6f, path));
    LL_TRY(ll_cfg_float(root, "rope_theta", &c->rope_theta, 10000.0f, path));
    /* transformers' default for Llama, Mistral and Qwen2 is an untied head. */
    LL_TRY(ll_cfg_bool(root, "tie_word_embeddings", &c->tied_embeddings, false, path));
    bool attn_bias = c->arch == LL_ARCH_QWEN2;
    LL_TRY(ll_cfg_bool(root, "attention_bias", &attn_bias, attn_bias, path));
    c->qkv_bias = attn_bias;
    /* Llama's attention_bias also puts a bias on o_proj; Qwen2 has biases on q/k/v only. */
    c->proj_bias = false;
    if (c->arch == LL_ARCH_LLAMA && attn_bias)
        return ll_err(LL_ERR_UNSUPPORTED, "%s: field \"attention_bias\": true is not supported for Llama", path);
    bool mlp_bias = false;
    LL_TRY(ll_cfg_bool(root, "mlp_bias", &mlp_bias, false, path));
    if (mlp_bias) return ll_err(LL_ERR_UNSUPPORTED, "%s: field \"mlp_bias\": true is not supported", path);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0))
        return ll_err(LL_ERR_UNSUPPORTED, "%s: field \"hidden_act\": expected \"silu\", found %s", path,
                      cJSON_IsString(act) ? act->valuestring : "a non-string");
    c->norm = LL_NORM_RMS;
    c->mlp = LL_MLP_SWIGLU;
    c->rope_layout = LL_ROPE_ROTATE_HALF;
    c->sliding_window = 0;
    if (c->arch == LL_ARCH_MISTRAL) {
        LL_TRY(ll_cfg_int(root, "sliding_window", &c->sliding_window, 0, 0, path));
    } else if (c->arch == LL_ARCH_QWEN2) {
        bool use_sw = false;
        LL_TRY(ll_cfg_bool(root, "use_sliding_window", &use_sw, false, path));
        if (use_sw)
            return ll_err(LL_ERR_UNSUPPORTED, "%s: field \"use_sliding_window\": true is not supported for Qwen2",
                          path);
    }
    return ll_cfg_rope_scaling(c, root, path);
}

static ll_status ll_config_gpt2(ll_config *c, const cJSON *root, const char *path) {
    LL_TRY(ll_cfg_int(root, "n_embd", &c->d_model, 768, 0, path));
    LL_TRY(ll_cfg_int(root, "n_layer", &c->n_layers, 12, 0, path));
    LL_TRY(ll_cfg_int(root, "n_head", &c->n_heads, 12, 0, path));
    LL_TRY(ll_cfg_int(root, "n_positions", &c->max_pos, 1024, 0, path));
    LL_TRY(ll_cfg_int(root, "vocab_size", &c->vocab_size, 50257, 0, path));
    LL_TRY(ll_cfg_int(root, "n_inner", &c->d_ff, 4 * c->d_model, 0, path));
    LL_TRY(ll_cfg_float(root, "layer_norm_epsilon", &c->norm_eps, 1e-5f, path));
    LL_TRY(ll_cfg_bool(root, "tie_word_embeddings", &c->tied_embeddings, true, path));
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
    if (act && (!cJSON_IsString(act) || (strcmp(act->valuestring, "gelu_new") != 0 &&
                                         strcmp(act->valuestring, "gelu_pytorch_tanh") != 0)))
        return ll_err(LL_ERR_UNSUPPORTED, "%s: field \"activation_function\": expected \"gelu_new\", found %s", path,
                      cJSON_IsString(act) ? act->valuestring : "a non-string");
    bool b = false;
    LL_TRY(ll_cfg_bool(root, "scale_attn_by_inverse_layer_idx", &b, false, path));
    if (b) return ll_err(LL_ERR_UNSUPPORTED, "%s: field \"scale_attn_by_inverse_layer_idx\": true is not supported", path);
    LL_TRY(ll_cfg_bool(root, "reorder_and_upcast_attn", &b, false, path));
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->n_heads > 0 ? c->d_model / c->n_heads : 0;
    c->norm = LL_NORM_LAYER;
    c->mlp = LL_MLP_GELU_NEW;
    c->qkv_bias = true;
    c->proj_bias = true;
    c->learned_pos = true;
    c->rope_layout = LL_ROPE_NONE;
    return LL_OK;
}

ll_status ll_config_from_hf_json(ll_config *c, const char *json, const char *path) {
    memset(c, 0, sizeof *c);
    c->format = LL_FMT_HF;
    cJSON *root = cJSON_Parse(json);
    if (!root) return ll_err(LL_ERR_FORMAT, "%s: not valid JSON (near byte %ld)", path,
                             cJSON_GetErrorPtr() ? (long)(cJSON_GetErrorPtr() - json) : -1L);
    ll_status st = LL_OK;
    if (!cJSON_IsObject(root)) {
        st = ll_err(LL_ERR_FORMAT, "%s: expected a JSON object at the top level", path);
        goto done;
    }
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *name = NULL;
    if (cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        name = cJSON_GetArrayItem(archs, 0)->valuestring;
    else if (cJSON_IsString(mt))
        name = mt->valuestring;
    if (!name) {
        st = ll_err(LL_ERR_MISSING, "%s: neither \"architectures\" nor \"model_type\" says what model this is", path);
        goto done;
    }
    snprintf(c->arch_name, sizeof c->arch_name, "%s", name);
    if (!strcmp(name, "LlamaForCausalLM") || !strcmp(name, "llama")) c->arch = LL_ARCH_LLAMA;
    else if (!strcmp(name, "MistralForCausalLM") || !strcmp(name, "mistral")) c->arch = LL_ARCH_MISTRAL;
    else if (!strcmp(name, "Qwen2ForCausalLM") || !strcmp(name, "qwen2")) c->arch = LL_ARCH_QWEN2;
    else if (!strcmp(name, "GPT2LMHeadModel") || !strcmp(name, "gpt2")) c->arch = LL_ARCH_GPT2;
    else {
        st = ll_err(LL_ERR_UNSUPPORTED,
                    "%s: field \"architectures\": unknown architecture \"%s\" (supported: LlamaForCausalLM, "
                    "MistralForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel)",
                    path, name);
        goto done;
    }
    st = c->arch == LL_ARCH_GPT2 ? ll_config_gpt2(c, root, path) : ll_config_llama_family(c, root, path);
    if (st) goto done;
    if ((st = ll_cfg_token(root, "bos_token_id", &c->bos_id, path))) goto done;
    if ((st = ll_cfg_token(root, "eos_token_id", &c->eos_id, path))) goto done;
    st = ll_config_validate(c, path);
done:
    cJSON_Delete(root);
    return st;
}

ll_status ll_config_validate(const ll_config *c, const char *path) {
#define LL_POS(field, name)                                                                                          \
    if (c->field <= 0) return ll_err(LL_ERR_FORMAT, "%s: field \"%s\": expected a positive integer, found %d", path, \
                                     name, c->field)
    LL_POS(d_model, "hidden_size");
    LL_POS(n_layers, "num_hidden_layers");
    LL_POS(n_heads, "num_attention_heads");
    LL_POS(n_kv_heads, "num_key_value_heads");
    LL_POS(head_dim, "head_dim");
    LL_POS(d_ff, "intermediate_size");
    LL_POS(vocab_size, "vocab_size");
    LL_POS(max_pos, "max_position_embeddings");
#undef LL_POS
    if (c->n_heads % c->n_kv_heads)
        return ll_err(LL_ERR_FORMAT, "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)",
                      path, c->n_heads, c->n_kv_heads);
    if (c->rope_layout != LL_ROPE_NONE && c->head_dim % 2)
        return ll_err(LL_ERR_FORMAT, "%s: head_dim %d must be even for RoPE", path, c->head_dim);
    if (c->arch == LL_ARCH_GPT2 && c->d_model % c->n_heads)
        return ll_err(LL_ERR_FORMAT, "%s: n_embd (%d) is not a multiple of n_head (%d)", path, c->d_model, c->n_heads);
    if (!(c->norm_eps > 0)) return ll_err(LL_ERR_FORMAT, "%s: norm epsilon must be positive", path);
    if (c->rope_layout != LL_ROPE_NONE && !(c->rope_theta > 0))
        return ll_err(LL_ERR_FORMAT, "%s: rope_theta must be positive", path);
    if (c->n_layers > 4096 || c->d_model > 1 << 20 || c->n_heads > 4096)
        return ll_err(LL_ERR_FORMAT, "%s: implausible sizes (layers %d, hidden %d, heads %d)", path, c->n_layers,
                      c->d_model, c->n_heads);
    return LL_OK;
}

ll_status ll_config_apply_generation_json(ll_config *c, const char *json, const char *path) {
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ll_err(LL_ERR_FORMAT, "%s: not a JSON object", path);
    }
    int bos, eos;
    ll_status st = ll_cfg_token(root, "bos_token_id", &bos, path);
    if (!st) st = ll_cfg_token(root, "eos_token_id", &eos, path);
    if (!st) {
        if (bos >= 0) c->bos_id = bos;
        if (eos >= 0) c->eos_id = eos;
    }
    cJSON_Delete(root);
    return st;
}
