/* RoPE inverse frequencies, computed the way Hugging Face computes them
 * (fp32 powers of theta, then llama3 or linear scaling), so angles match bit for bit. */
#include <math.h>
#include <stdlib.h>

#include "../core/ll_alloc.h"
#include "ll_model.h"

ll_status ll_model_init_rope(ll_model *m) {
    const ll_config *c = &m->cfg;
    if (c->rope_layout == LL_ROPE_NONE) return LL_OK;
    int half = c->head_dim / 2;
    float *f = ll_calloc((size_t)half, sizeof(float), "RoPE table");
    if (!f) return LL_ERR_NOMEM;
    for (int i = 0; i < half; i++) {
        float expo = (float)(2 * i) / (float)c->head_dim;
        f[i] = 1.0f / powf(c->rope_theta, expo);
    }
    if (c->rope_scaling == LL_ROPE_SCALING_LINEAR) {
        for (int i = 0; i < half; i++) f[i] /= c->rope_factor;
    } else if (c->rope_scaling == LL_ROPE_SCALING_LLAMA3) {
        /* Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, and the
         * band between them interpolated smoothly. */
        float old = (float)c->rope_original_max_pos;
        float lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor, fac = c->rope_factor;
        float low_wl = old / lo, high_wl = old / hi;
        for (int i = 0; i < half; i++) {
            float wl = 2.0f * (float)M_PI / f[i];
            float g = wl > low_wl ? f[i] / fac : f[i];
            if (!(wl < high_wl) && !(wl > low_wl)) {
                float smooth = (old / wl - lo) / (hi - lo);
                g = (1.0f - smooth) * g / fac + smooth * g;
            }
            f[i] = g;
        }
    }
    /* GGUF conversions of Llama 3.1 carry their long-context scaling only as per-frequency
     * divisors in rope_freqs.weight (the rotation angle is divided by each factor). */
    const ll_tensor_info *rf = ll_tensor_set_find(&m->ts, "rope_freqs.weight");
    if (rf) {
        if (rf->ndim != 1 || rf->shape[0] != half || (rf->dtype != LL_F32 && rf->dtype != LL_F16 && rf->dtype != LL_BF16)) {
            free(f);
            return ll_err(LL_ERR_SHAPE, "%s: tensor rope_freqs.weight: expected %d F32 factors", m->path, half);
        }
        float *fac = ll_calloc((size_t)half, sizeof(float), "rope_freqs");
        if (!fac) {
            free(f);
            return LL_ERR_NOMEM;
        }
        ll_convert_to_f32(fac, rf->data, rf->dtype, (size_t)half);
        for (int i = 0; i < half; i++) f[i] /= fac[i];
        free(fac);
    }
    m->rope_inv_freq = f;
    m->w.rope_inv_freq = f;
    return LL_OK;
}
