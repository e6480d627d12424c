/* RMSNorm (Llama family) and LayerNorm (GPT-2), accumulated in double like
 * nothing else here: the statistics of a 4096-wide row are where fp32 drift starts. */
#include <math.h>

#include "ll_cpu.h"

void ll_cpu_rmsnorm(float *y, const float *x, const float *w, int T, int d, float eps) {
#pragma omp parallel for schedule(static) if (T > 4)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * d;
        float *yr = y + (size_t)t * d;
        double ss = 0;
        for (int i = 0; i < d; i++) ss += (double)xr[i] * xr[i];
        /* Hugging Face computes rsqrt(mean + eps) in fp32, multiplies, then scales by the weight. */
        float r = 1.0f / sqrtf((float)(ss / d) + eps);
        for (int i = 0; i < d; i++) yr[i] = w[i] * (xr[i] * r);
    }
}

void ll_cpu_layernorm(float *y, const float *x, const float *w, const float *b, int T, int d, float eps) {
#pragma omp parallel for schedule(static) if (T > 4)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * d;
        float *yr = y + (size_t)t * d;
        double s = 0;
        for (int i = 0; i < d; i++) s += xr[i];
        double mean = s / d, v = 0;
        for (int i = 0; i < d; i++) v += ((double)xr[i] - mean) * ((double)xr[i] - mean);
        float r = (float)(1.0 / sqrt(v / d + eps));
        float m = (float)mean;
        for (int i = 0; i < d; i++) yr[i] = (xr[i] - m) * r * w[i] + (b ? b[i] : 0.0f);
    }
}

/* The CPU gains nothing from fusing (the row is in cache either way): add, then norm,
 * exactly the two reference ops, so results are the same bit for bit. */
void ll_cpu_add_norm(float *x, float *y, const float *o, const float *w, const float *b, bool layer, int T, int d,
                     float eps) {
    ll_cpu_add(x, o, (size_t)T * (size_t)d);
    if (layer) ll_cpu_layernorm(y, x, w, b, T, d, eps);
    else ll_cpu_rmsnorm(y, x, w, T, d, eps);
}
