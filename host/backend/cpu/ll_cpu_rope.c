/* Rotary position embedding in both weight layouts.
 * The angle is pos * inv_freq computed in fp32, as Hugging Face does, so that
 * positions in the thousands round the same way; cos/sin are then exact. */
#include <math.h>

#include "ll_cpu.h"

void ll_cpu_rope(float *x, const int32_t *pos, int T, int n_heads, int head_dim, const float *inv_freq,
                 ll_rope_layout layout) {
    if (layout == LL_ROPE_NONE) return;
    int half = head_dim / 2;
#pragma omp parallel for schedule(static) if (T > 4)
    for (int t = 0; t < T; t++) {
        float cs[1024], sn[1024]; /* head_dim <= 2048 is checked at load */
        for (int i = 0; i < half; i++) {
            float ang = (float)pos[t] * inv_freq[i];
            cs[i] = (float)cos((double)ang);
            sn[i] = (float)sin((double)ang);
        }
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * head_dim;
            if (layout == LL_ROPE_ROTATE_HALF) {
                for (int i = 0; i < half; i++) {
                    float a = v[i], b = v[i + half];
                    v[i] = a * cs[i] - b * sn[i];
                    v[i + half] = b * cs[i] + a * sn[i];
                }
            } else {
                for (int i = 0; i < half; i++) {
                    float a = v[2 * i], b = v[2 * i + 1];
                    v[2 * i] = a * cs[i] - b * sn[i];
                    v[2 * i + 1] = b * cs[i] + a * sn[i];
                }
            }
        }
    }
}
