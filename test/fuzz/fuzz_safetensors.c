/* libFuzzer target: the safetensors header parser on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/ll_tensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size heap copy so AddressSanitizer sees any read past the end. */
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    ll_tensor_set s = {0};
    if (ll_safetensors_parse(&s, buf, size, "fuzz.safetensors", -1) == LL_OK) {
        /* Touch every byte a parsed tensor claims, so a wrong bound shows up here. */
        volatile unsigned char acc = 0;
        for (size_t i = 0; i < s.n; i++) {
            const unsigned char *p = s.t[i].data;
            for (size_t k = 0; k < s.t[i].nbytes; k++) acc ^= p[k];
            char sh[128];
            ll_tensor_shape_str(&s.t[i], sh, sizeof sh);
        }
        (void)acc;
    }
    ll_tensor_set_free(&s);
    free(buf);
    return 0;
}
