/* libFuzzer target for the GGUF reader.
 *
 * Any byte string must either parse or yield an error, never crash, leak or
 * read out of bounds. When it parses, every metadata getter is called on every
 * key (the wrong-type paths matter as much as the right ones), every tensor's
 * first and last byte is read (so AddressSanitizer checks the range
 * validation against the exact-size input buffer), and the llama
 * config/tensor conversion runs. tools/fuzz.sh builds and runs it. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "io/ll_gguf.h"

static volatile unsigned ll_fuzz_sink;

static void ll_fuzz_metadata(const ll_gguf *g) {
    for (size_t i = 0; i < ll_gguf_n_kv(g); i++) {
        const char *key = ll_gguf_kv_key(g, i);
        if ((size_t)ll_gguf_find_key(g, key) != i) __builtin_trap();
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        float f;
        bool b;
        const char *s;
        size_t len;
        ll_gguf_get_u32(g, key, &u32);
        ll_gguf_get_i32(g, key, &i32);
        ll_gguf_get_u64(g, key, &u64);
        ll_gguf_get_f32(g, key, &f);
        ll_gguf_get_bool(g, key, &b);
        if (ll_gguf_get_str(g, key, &s, &len) == LL_OK && len) ll_fuzz_sink += (unsigned char)s[len - 1];
        ll_gguf_type et;
        size_t n;
        if (ll_gguf_get_arr(g, key, &et, &n) == LL_OK) {
            /* First, last and one past the end (which must be refused). */
            size_t idx[3] = {0, n ? n - 1 : 0, n};
            for (int k = 0; k < 3; k++) {
                if (ll_gguf_arr_str(g, key, idx[k], &s, &len) == LL_OK && len)
                    ll_fuzz_sink += (unsigned char)s[len - 1];
                ll_gguf_arr_f32(g, key, idx[k], &f);
                ll_gguf_arr_i32(g, key, idx[k], &i32);
            }
            if (ll_gguf_arr_str(g, key, n, &s, &len) == LL_OK) __builtin_trap();
        }
    }
    ll_gguf_kv_type(g, ll_gguf_n_kv(g)); /* out of range on purpose */
}

static void ll_fuzz_tensors(const ll_gguf *g) {
    for (size_t i = 0; i < ll_gguf_n_tensors(g); i++) {
        const ll_gguf_tensor *t = ll_gguf_tensor_at(g, i);
        if (ll_gguf_find_tensor(g, t->name) != t) __builtin_trap();
        const unsigned char *p = ll_gguf_tensor_data(g, t);
        if (t->nbytes) ll_fuzz_sink += p[0] + p[t->nbytes - 1];
        char hf[128];
        ll_gguf_hf_name(t->name, hf, sizeof hf);
    }
    ll_config c;
    if (ll_gguf_model_config(g, &c) == LL_OK) {
        ll_tensor_set ts;
        memset(&ts, 0, sizeof ts);
        ll_gguf_model_tensors(g, &ts, -1);
        ll_tensor_set_free(&ts);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ll_gguf *g;
    if (ll_gguf_parse(&g, data, size, "fuzz.gguf") == LL_OK) {
        ll_fuzz_metadata(g);
        ll_fuzz_tensors(g);
        ll_gguf_free(g);
    }
    return 0;
}
