/* Launchers for the tuned-lens training kernels (kernels/ll_k_lens.cu), callable from C
 * (host/lens/ll_lens_cuda.c). The matrix products of the step run on cuBLAS; these are the
 * row-wise pieces between them. They mirror host/lens/ll_tuned_lens_train.c step by step,
 * with the row statistics (norm mean / sigma, log-sum-exps, KL, gradient norm) in double
 * as there, so the two paths agree to fp32 rounding. All pointers are device memory; every
 * launcher returns the launch status. */
#ifndef LL_K_LENS_H
#define LL_K_LENS_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dst[i] = src[i] widened from bf16 (the CUDA backend's LM head) to fp32. */
cudaError_t ll_k_lens_bf16_to_f32(float *dst, const uint16_t *src, size_t n, cudaStream_t s);
/* For k < n: X[k] = H[rows[k]] and U[k] = X[k] + b (rows of d floats). */
cudaError_t ll_k_lens_gather(float *X, float *U, const float *H, const int32_t *rows, const float *b, int n, int d,
                             cudaStream_t s);
/* Final norm of n rows of U: Y = w * (U - mu) / sig (+ nb); mu = 0 for RMSNorm (layer_norm
 * = 0), sig = sqrt(mean((U - mu)^2) + eps). mu and sig per row are kept for the backward. */
cudaError_t ll_k_lens_norm_fwd(float *Y, double *mu, double *sig, const float *U, const float *w, const float *nb,
                               int layer_norm, int n, int d, float eps, cudaStream_t s);
/* Per row k: p = softmax(T[rows[k]]), q = softmax(Z[k]); kl[k] = sum_{p > 0} p (log p -
 * log q). With grad, Z[k] is overwritten by (q - p) * inv_n, the gradient of the mean KL. */
cudaError_t ll_k_lens_kl(double *kl, float *Z, const float *T, const int32_t *rows, int n, int V, int grad,
                         double inv_n, cudaStream_t s);
/* Norm backward: with g = GY * w and xh = (U - mu) / sig,
 * GU = (g - [layer_norm] mean(g) - xh * mean(g xh)) / sig. */
cudaError_t ll_k_lens_norm_bwd(float *GU, const float *GY, const float *U, const double *mu, const double *sig,
                               const float *w, int layer_norm, int n, int d, cudaStream_t s);
/* db[i] = sum_k GU[k][i] (accumulate: db[i] += ...). */
cudaError_t ll_k_lens_colsum(float *db, const float *GU, int n, int d, int accumulate, cudaStream_t s);
/* g[i] += wd * a[i] (when a is not NULL), then *acc += sum g[i]^2 (double, atomically). */
cudaError_t ll_k_lens_decay_sq(float *g, const float *a, float wd, size_t n, double *acc, cudaStream_t s);
/* SGD + Nesterov with the clip factor from the squared norm *acc:
 * sc = clip > 0 && |g| > clip ? clip / |g| : 1; g *= sc; v = mom v + g; x -= lr (g + mom v). */
cudaError_t ll_k_lens_sgd(float *x, float *v, const float *g, size_t n, const double *acc, float clip, float lr,
                          float mom, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
