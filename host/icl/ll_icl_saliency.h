/* Attention x gradient saliency (Wang et al. 2023) for E5: per layer
 *     I(r, j) = | sum_h A_h(r, j) * dL/dA_h(r, j) |,
 * L the cross-entropy of one target token predicted at the last prompt position.
 *
 * The gradients come from the CPU training graph (host/train), which has backward
 * passes for plain Llama blocks only: the loaded model's weights are copied into it, and
 * a probe forward must reproduce ll_forward's logits (else LL_ERR_UNSUPPORTED saying
 * so), which rules out RoPE scaling, biases, sliding windows, LayerNorm, GPT-2 and any
 * other difference. dL/dA_h(r, j) = dL/dz_h(r) . v_h(j), with dL/dz the gradient at
 * the attention output that the training graph hands out. fp32, CPU, one prompt at a
 * time, parameters and their gradients both held: small models only. */
#ifndef LL_ICL_SALIENCY_H
#define LL_ICL_SALIENCY_H

#include <stdint.h>

#include "../model/ll_model.h"

typedef struct ll_icl_saliency ll_icl_saliency;

/* m must have its weights in host memory (the CPU backend). max_seq <= 1024. */
ll_status ll_icl_saliency_new(ll_icl_saliency **out, const ll_model *m, int max_seq);
void ll_icl_saliency_free(ll_icl_saliency *s);

/* Saliency of one prompt ids[n] for `target` at position n - 1: I[L][n][n] (entries
 * j > r are 0); loss (may be NULL) = -log p(target). */
ll_status ll_icl_saliency_prompt(ll_icl_saliency *s, const int32_t *ids, int n, int32_t target, float *I,
                                 double *loss);

#endif
