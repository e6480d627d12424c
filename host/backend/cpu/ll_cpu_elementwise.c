/* Embedding lookup, activations, residual adds and row gathers for hooks. */
#include <math.h>
#include <string.h>

#include "../../core/ll_dtype.h"
#include "ll_cpu.h"

void ll_cpu_embed(float *x, const float *tok_emb, const float *pos_emb, const int32_t *tokens, const int32_t *pos,
                  int T, int d) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) {
        float *xr = x + (size_t)t * d;
        memcpy(xr, tok_emb + (size_t)tokens[t] * d, (size_t)d * sizeof(float));
        if (pos_emb) {
            const float *p = pos_emb + (size_t)pos[t] * d;
            for (int i = 0; i < d; i++) xr[i] += p[i];
        }
    }
}

void ll_cpu_swiglu(float *out, const float *gate, const float *up, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void ll_cpu_gelu_new(float *x, size_t n) {
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * v * v * v)));
    }
}

void ll_cpu_add(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void ll_cpu_to_bf16(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = ll_f32_to_bf16(src[i]);
}

void ll_cpu_gather_rows(float *dst, const float *src, const int64_t *rows, int n, int width) {
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)i * width, src + (size_t)rows[i] * width, (size_t)width * sizeof(float));
}

void ll_cpu_scatter_rows(float *dst, const float *src, const int64_t *rows, int n, int width) {
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)rows[i] * width, src + (size_t)i * width, (size_t)width * sizeof(float));
}
