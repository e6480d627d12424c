/* libFuzzer target: the llama2.c checkpoint reader on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/ll_llama2c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    ll_config c;
    ll_tensor_set s = {0};
    if (ll_llama2c_parse(buf, size, "fuzz.bin", &c, &s) == LL_OK) {
        volatile unsigned char acc = 0;
        for (size_t i = 0; i < s.n; i++) {
            const unsigned char *p = s.t[i].data;
            if (s.t[i].nbytes) acc ^= p[0] ^ p[s.t[i].nbytes - 1];
        }
        (void)acc;
    }
    ll_tensor_set_free(&s);
    free(buf);
    return 0;
}
