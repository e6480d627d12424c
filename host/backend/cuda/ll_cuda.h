/* CUDA backend internals shared with the GPU benchmark and tests (CUDA builds only). */
#ifndef LL_CUDA_H
#define LL_CUDA_H

#include <stdint.h>

#include "../ll_backend.h"

/* y[T][out] = xb[T][in] (bf16, device) . W^T with W an uploaded bf16 matrix; beta scales y. */
void ll_cuda_matmul_bf16(float *y, const uint16_t *xb, const ll_mat *w, int T, float beta);
/* Key-range splits the attention launch uses for `blocks` blocks over up to max_keys keys. */
int ll_cuda_attn_splits(int blocks, int max_keys, int n_sms);
/* Streaming multiprocessors of device 0 (after ll_backend_cuda() succeeded). */
int ll_cuda_n_sms(void);

#endif
