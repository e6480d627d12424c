/* Builds without CUDA (make CUDA=0): the GPU tuned-lens path says so and does nothing. */
#include "ll_lens_cuda.h"

static ll_status ll_lens_no_cuda(void) {
    return ll_err(LL_ERR_UNSUPPORTED, "tuned lens on CUDA: this build has no CUDA (rebuild with make CUDA=1 where "
                                      "nvcc is installed), train on the CPU instead (--device cpu)");
}

bool ll_tuned_lens_cuda_built(void) { return false; }

ll_status ll_tuned_lens_train_cuda(ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data,
                                   const ll_tuned_lens_train_opts *o, double *kl_before, double *kl_after) {
    return ll_lens_no_cuda();
}

ll_status ll_tuned_lens_grad_cuda(const ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data, int layer,
                                  const int *rows, int n, double *kl, float *dA, float *db) {
    return ll_lens_no_cuda();
}

ll_status ll_tuned_lens_kl_cuda(const ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data, double *kl) {
    return ll_lens_no_cuda();
}
