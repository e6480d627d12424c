/* The CPU's decode-step ops (ll_backend.h: kv_append, attention_at). CPU memory is host
 * memory, so pos is read directly; these exist so that the decode step the CUDA backend
 * captures into a graph also runs, eagerly, on the executable specification, and can be
 * checked there against ll_forward (test/test_decoder.c). */
#include <string.h>

#include "ll_cpu.h"

void ll_cpu_kv_append(float *k_dst, float *v_dst, const float *k_src, const float *v_src, const int32_t *pos,
                      int width) {
    size_t base = (size_t)*pos * (size_t)width;
    memcpy(k_dst + base, k_src, (size_t)width * sizeof(float));
    memcpy(v_dst + base, v_src, (size_t)width * sizeof(float));
}

void ll_cpu_attention_at(const ll_attn_args *a, const int32_t *pos, int max_keys) {
    (void)max_keys; /* the CPU sizes nothing ahead */
    ll_attn_args one = *a;
    int n_past = *pos;
    int64_t off[2] = {0, 1};
    one.T = 1;
    one.n_seq = 1;
    one.seq_off = off;
    one.n_past = &n_past;
    one.pattern = NULL;
    one.knock = NULL; /* decode steps take no knockouts (ll_backend.h) */
    ll_cpu_attention(&one);
}
