/* Tuned-lens training on a CUDA device: the same algorithm, hyper-parameters, row draws
 * and update as the CPU path (ll_tuned_lens_train in ll_lens.h, which stays the
 * reference), with the step on the GPU: translator (h + A h + b) and the LM head as cuBLAS
 * sgemm in fp32, final norm, softmax / KL and their backward as small kernels
 * (kernels/ll_k_lens.cu) that keep the row statistics in double like the CPU.
 *
 * The model may be on either backend: on CUDA its bf16 LM head is widened to fp32 on the
 * device (so the lens sees exactly the weights the model's own forward uses); on the CPU its
 * fp32 head and norm are uploaded (then the two paths see identical weights, which is what
 * test/gpu/test_gpu_lens.c compares). The training data (every layer's rows, the target
 * logits) stays in host memory; one layer's rows and all target logits are uploaded at a
 * time, so the device needs about 4 (n_rows (d + V) + V d + d^2) bytes plus scratch.
 *
 * Without CUDA in the build (make CUDA=0) or without a usable device every call returns
 * LL_ERR_UNSUPPORTED / LL_ERR_DEVICE with the reason; nothing else changes. */
#ifndef LL_LENS_CUDA_H
#define LL_LENS_CUDA_H

#include <stdbool.h>

#include "ll_lens.h"

/* True when this build has the CUDA path (it may still find no device at run time). */
bool ll_tuned_lens_cuda_built(void);

/* As ll_tuned_lens_train, on the GPU. */
ll_status ll_tuned_lens_train_cuda(ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data,
                                   const ll_tuned_lens_train_opts *o, double *kl_before, double *kl_after);
/* As ll_tuned_lens_grad, on the GPU (rows NULL: rows 0..n-1). */
ll_status ll_tuned_lens_grad_cuda(const ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data, int layer,
                                  const int *rows, int n, double *kl, float *dA, float *db);
/* As ll_tuned_lens_kl, on the GPU. */
ll_status ll_tuned_lens_kl_cuda(const ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data, double *kl);

#endif
