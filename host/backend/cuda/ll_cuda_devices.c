/* CUDA device discovery through the runtime API (compiled only when CUDA is on). */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include "../ll_devices.h"

int ll_built_with_cuda(void) { return 1; }

int ll_cuda_devices(ll_device_info *out, int max, char *why, size_t why_len) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why) snprintf(why, why_len, "no usable CUDA device: %s", cudaGetErrorString(e));
        return 0;
    }
    if (n == 0 && why) snprintf(why, why_len, "the CUDA runtime reports no device");
    for (int i = 0; i < n && i < max; i++) {
        struct cudaDeviceProp p;
        memset(&out[i], 0, sizeof out[i]);
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
        snprintf(out[i].name, sizeof out[i].name, "%s", p.name);
        out[i].total_mem = p.totalGlobalMem;
        out[i].sm_major = p.major;
        out[i].sm_minor = p.minor;
        out[i].n_sms = p.multiProcessorCount;
    }
    return n;
}
