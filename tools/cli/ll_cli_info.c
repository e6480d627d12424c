/* layerlab info MODEL: what was loaded, in the terms a researcher checks first. */
#include <stdio.h>
#include <string.h>

#include "backend/ll_devices.h"
#include "ll_cli.h"

static const char usage[] = "usage: layerlab info MODEL [--device cuda|cpu] [--threads N]\n";

static const char *ll_rope_name(const ll_config *c) {
    switch (c->rope_layout) {
    case LL_ROPE_ROTATE_HALF: return "rotate-half";
    case LL_ROPE_INTERLEAVED: return "interleaved pairs";
    default: return "none (learned positions)";
    }
}

int ll_cli_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        int st;
        if (ll_cli_common_opt(argc, argv, &i, &st)) {
            if (st) return st;
        } else if (!strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            return ll_cli_fail("info: unknown option %s", argv[i]);
        } else if (!path) {
            path = argv[i];
        } else {
            return ll_cli_usage(usage);
        }
    }
    if (!path) return ll_cli_usage(usage);
    ll_model *m;
    ll_status s = ll_cli_load(path, &m);
    if (s) return ll_cli_status(s);
    const ll_config *c = &m->cfg;
    static const char *fmt[] = {"Hugging Face safetensors", "GGUF", "llama2.c"};
    printf("model           %s\n", path);
    printf("format          %s\n", fmt[c->format]);
    printf("architecture    %s (%s)\n", c->arch_name, ll_arch_name(c->arch));
    printf("layers          %d\n", c->n_layers);
    printf("d_model         %d\n", c->d_model);
    printf("heads           %d query, %d key/value (head_dim %d%s)\n", c->n_heads, c->n_kv_heads, c->head_dim,
           c->n_heads != c->n_kv_heads ? ", GQA" : "");
    printf("d_ff            %d (%s)\n", c->d_ff, c->mlp == LL_MLP_SWIGLU ? "SwiGLU" : "gelu_new");
    printf("vocab           %d\n", c->vocab_size);
    printf("context         %d\n", c->max_pos);
    printf("norm            %s, eps %g\n", c->norm == LL_NORM_RMS ? "RMSNorm" : "LayerNorm", (double)c->norm_eps);
    printf("positions       %s", ll_rope_name(c));
    if (c->rope_layout != LL_ROPE_NONE) {
        printf(", theta %g", (double)c->rope_theta);
        if (c->rope_scaling == LL_ROPE_SCALING_LLAMA3)
            printf(", llama3 scaling (factor %g, low %g, high %g, original context %d)", (double)c->rope_factor,
                   (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor, c->rope_original_max_pos);
        else if (c->rope_scaling == LL_ROPE_SCALING_LINEAR)
            printf(", linear scaling %g", (double)c->rope_factor);
    }
    printf("\n");
    if (c->sliding_window) printf("sliding window  %d\n", c->sliding_window);
    printf("biases          %s\n", c->proj_bias ? "all projections" : c->qkv_bias ? "q/k/v" : "none");
    printf("lm head         %s\n", c->tied_embeddings ? "tied to the token embedding" : "separate");
    printf("bos / eos       %d / %d\n", c->bos_id, c->eos_id);
    {
        /* The tokenizer that would be used: not fatal when there is none. */
        ll_tokenizer *t;
        if (ll_cli_load_tokenizer(path, c->vocab_size, &t) == LL_OK) {
            printf("tokenizer       %s%s\n", ll_tokenizer_describe(t), ll_tokenizer_adds_bos(t) ? ", adds BOS" : "");
            ll_tokenizer_free(t);
        } else {
            printf("tokenizer       none (%s)\n", ll_last_error());
        }
    }
    size_t np = ll_model_n_params(m);
    printf("parameters      %zu (%.2f M)\n", np, (double)np / 1e6);
    printf("weights         %.1f MiB fp32 used in place from the file, %.1f MiB widened from f16/bf16\n",
           (double)m->weight_bytes_mapped / 1048576.0, (double)m->weight_bytes_converted / 1048576.0);
    printf("hook points     blocks.{0..%d}.{hook_resid_pre, hook_attn_z, hook_attn_out, hook_resid_mid, "
           "hook_mlp_out, hook_resid_post, attn.hook_pattern}, ln_final.hook_normalized, logits\n",
           c->n_layers - 1);
    printf("threads         %d\n", ll_get_threads());
    ll_device_info dev[8];
    char why[256] = "";
    int nd = ll_cuda_devices(dev, 8, why, sizeof why);
    if (nd == 0) printf("devices         cpu (%s)\n", why);
    for (int i = 0; i < nd && i < 8; i++)
        printf("devices         cuda:%d %s, %.1f GiB, sm_%d%d, %d SMs\n", i, dev[i].name,
               (double)dev[i].total_mem / (1u << 30), dev[i].sm_major, dev[i].sm_minor, dev[i].n_sms);
    char how[512];
    const ll_backend *be = ll_cli_backend(how, sizeof how);
    if (be) printf("runs on         %s (%s)\n", be->name, how);
    else printf("runs on         nothing: %s\n", ll_last_error());
    ll_model_free(m);
    return be ? 0 : LL_EXIT_ERR;
}
