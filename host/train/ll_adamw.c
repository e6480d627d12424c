/* AdamW, learning-rate schedule and gradient clipping (see ll_adamw.h). */
#include <math.h>

#include "ll_adamw.h"

void ll_adamw_step(float *p, const float *g, float *m, float *v, const uint8_t *decay, size_t n, float lr, int64_t t,
                   const ll_adamw_cfg *c) {
    /* Bias corrections in double: beta2^t is close to 1 for thousands of steps. */
    double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
    float step = (float)(lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2));
    float wd = 1.0f - lr * c->weight_decay;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * g[i];
        v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * g[i] * g[i];
        /* torch.optim.AdamW: decay first, then p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps). */
        if (!decay || decay[i]) p[i] *= wd;
        p[i] -= step * m[i] / (sqrtf(v[i]) * rbc2 + c->eps);
    }
}

float ll_lr_schedule(int64_t s, int64_t warmup, int64_t total, float lr_max, float lr_min) {
    if (s < warmup) return lr_max * (float)(s + 1) / (float)warmup;
    int64_t span = total - 1 - warmup;
    if (span <= 0 || s >= total - 1) return s >= total - 1 ? lr_min : lr_max;
    double prog = (double)(s - warmup) / (double)span;
    return (float)(lr_min + 0.5 * (lr_max - lr_min) * (1.0 + cos(M_PI * prog)));
}

double ll_clip_grad_norm(float *g, size_t n, double max_norm) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    double norm = sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        float s = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < n; i++) g[i] *= s;
    }
    return norm;
}
