/* libFuzzer target: Hugging Face config.json parsing on arbitrary text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/ll_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *txt = malloc(size + 1);
    if (!txt) return 0;
    memcpy(txt, data, size);
    txt[size] = 0;
    ll_config c;
    if (ll_config_from_hf_json(&c, txt, "fuzz/config.json") == LL_OK) {
        /* A config that parses must describe a model the forward pass can size. */
        if (c.n_heads <= 0 || c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads) abort();
    }
    free(txt);
    return 0;
}
