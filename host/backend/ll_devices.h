/* Which accelerators this build can see, for `layerlab info` and for choosing a default device. */
#ifndef LL_DEVICES_H
#define LL_DEVICES_H

#include <stddef.h>

typedef struct {
    char name[256];
    size_t total_mem;
    int sm_major, sm_minor;
    int n_sms;
} ll_device_info;

/* Number of CUDA devices found (0 when built without CUDA or none is present);
 * fills up to `max` entries. `why` (may be NULL) receives the reason when 0 are found. */
int ll_cuda_devices(ll_device_info *out, int max, char *why, size_t why_len);
/* 1 when the library was compiled with CUDA support. */
int ll_built_with_cuda(void);

#endif
