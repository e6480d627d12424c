/* Device discovery for builds without CUDA (CUDA=0 or no nvcc): the CPU is the only device. */
#include <stdio.h>

#include "ll_devices.h"

int ll_built_with_cuda(void) { return 0; }

int ll_cuda_devices(ll_device_info *out, int max, char *why, size_t why_len) {
    (void)out;
    (void)max;
    if (why) snprintf(why, why_len, "built without CUDA (nvcc not found or CUDA=0)");
    return 0;
}

#include "ll_backend.h"

const ll_backend *ll_backend_cuda(void) {
    ll_err(LL_ERR_UNSUPPORTED, "CUDA backend: built without CUDA (nvcc not found or CUDA=0)");
    return NULL;
}
