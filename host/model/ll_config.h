/* Model hyper-parameters, architecture-neutral.
 *
 * Filled from a Hugging Face config.json, from GGUF metadata or from a llama2.c
 * header; the forward pass only reads this struct. */
#ifndef LL_CONFIG_H
#define LL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/ll_status.h"

typedef enum { LL_ARCH_LLAMA = 0, LL_ARCH_MISTRAL, LL_ARCH_QWEN2, LL_ARCH_GPT2 } ll_arch;
typedef enum { LL_NORM_RMS = 0, LL_NORM_LAYER } ll_norm_kind;
typedef enum { LL_MLP_SWIGLU = 0, LL_MLP_GELU_NEW } ll_mlp_kind;
/* Which pairs of a head's dimensions RoPE rotates together.
 * ROTATE_HALF: (i, i + d/2), Hugging Face Llama / Qwen2 / GPT-NeoX weights.
 * INTERLEAVED: (2i, 2i + 1), Meta checkpoints, GGUF llama, llama2.c. */
typedef enum { LL_ROPE_NONE = 0, LL_ROPE_ROTATE_HALF, LL_ROPE_INTERLEAVED } ll_rope_layout;
typedef enum { LL_ROPE_SCALING_NONE = 0, LL_ROPE_SCALING_LLAMA3, LL_ROPE_SCALING_LINEAR } ll_rope_scaling;
typedef enum { LL_FMT_HF = 0, LL_FMT_GGUF, LL_FMT_LLAMA2C } ll_format;

typedef struct {
    ll_arch arch;
    ll_format format;
    char arch_name[64]; /* as written in the file: "LlamaForCausalLM", "llama", ... */
    int n_layers;
    int d_model;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int d_ff;
    int vocab_size;
    int max_pos;        /* context length the model was trained for */
    float norm_eps;
    ll_norm_kind norm;
    ll_mlp_kind mlp;
    bool qkv_bias;      /* Qwen2 and GPT-2 */
    bool proj_bias;     /* bias on attention output and MLP projections (GPT-2) */
    bool learned_pos;   /* GPT-2 wpe */
    bool tied_embeddings;
    int sliding_window; /* 0 = none (Mistral) */
    ll_rope_layout rope_layout;
    float rope_theta;
    ll_rope_scaling rope_scaling;
    float rope_factor;
    float rope_low_freq_factor;
    float rope_high_freq_factor;
    int rope_original_max_pos;
    int bos_id, eos_id; /* -1 when unknown */
} ll_config;

/* Parse a Hugging Face config.json (text already read). `path` is for messages. */
ll_status ll_config_from_hf_json(ll_config *c, const char *json, const char *path);
/* Apply generation_config.json (bos/eos token ids). */
ll_status ll_config_apply_generation_json(ll_config *c, const char *json, const char *path);
/* Sanity-check derived sizes (head_dim * n_heads, GQA divisibility, ...). */
ll_status ll_config_validate(const ll_config *c, const char *path);
const char *ll_arch_name(ll_arch a);

#endif
