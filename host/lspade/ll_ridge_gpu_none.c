/* The GPU ridge path in a build without CUDA. */
#include "ll_ridge_gpu.h"

bool ll_ridge_gpu_available(void) {
    ll_err(LL_ERR_UNSUPPORTED, "ridge on the GPU: this layerlab was built without CUDA (CUDA=0 or no nvcc)");
    return false;
}

ll_status ll_gram_gpu_new(ll_gram_gpu **out, int d_in, int d_out) {
    *out = 0;
    return ll_err(LL_ERR_UNSUPPORTED, "ridge on the GPU: this layerlab was built without CUDA");
}

void ll_gram_gpu_free(ll_gram_gpu *g) { (void)g; }

ll_status ll_gram_gpu_add(ll_gram_gpu *g, const float *X, int ldx, const float *Y, int ldy, int64_t n) {
    return ll_err(LL_ERR_UNSUPPORTED, "ridge on the GPU: this layerlab was built without CUDA");
}

ll_status ll_gram_gpu_merge_into(ll_gram_gpu *g, ll_gram *dst) {
    return ll_err(LL_ERR_UNSUPPORTED, "ridge on the GPU: this layerlab was built without CUDA");
}

ll_status ll_ridge_solve_gpu(const ll_gram *g, double lambda, double *W) {
    return ll_err(LL_ERR_UNSUPPORTED, "ridge on the GPU: this layerlab was built without CUDA");
}
