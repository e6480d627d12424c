/* Logit lens and applying a tuned lens. */
#include "ll_lens.h"

#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"

/* Rows at most per head call: bounds the logits buffer the forward allocates. */
#define LL_LENS_CHUNK 256

ll_status ll_lens_logits(ll_model *m, int n, const float *h, float *logits_out) {
    if (n < 0 || (n > 0 && (!h || !logits_out))) return ll_err(LL_ERR_ARG, "logit lens: missing rows or output");
    int L = m->cfg.n_layers;
    int64_t *off = malloc((size_t)(LL_LENS_CHUNK + 1) * sizeof *off);
    int32_t *pos = calloc(LL_LENS_CHUNK, sizeof *pos);
    if (!off || !pos) {
        free(off);
        free(pos);
        return ll_err(LL_ERR_NOMEM, "logit lens: no memory");
    }
    for (int i = 0; i <= LL_LENS_CHUNK; i++) off[i] = i;
    ll_status st = LL_OK;
    for (int i0 = 0; i0 < n && !st; i0 += LL_LENS_CHUNK) {
        int k = n - i0 < LL_LENS_CHUNK ? n - i0 : LL_LENS_CHUNK;
        /* Each row a one-row sequence starting at block L: no block runs, only the final
         * norm and the head (positions are unused but must be valid). */
        ll_batch b = {.n_seq = k, .seq_off = off, .pos = pos};
        ll_forward_opts fo = {.start_layer = L, .resid_in = h + (size_t)i0 * m->cfg.d_model, .logits = LL_LOGITS_LAST,
                              .logits_out = logits_out + (size_t)i0 * m->cfg.vocab_size};
        st = ll_forward(m, &b, &fo);
    }
    free(off);
    free(pos);
    return st ? ll_err_prefix(st, "logit lens: ") : LL_OK;
}

ll_status ll_tuned_lens_new(ll_tuned_lens **out, int n_layers, int d_model) {
    *out = NULL;
    if (n_layers <= 0 || d_model <= 0)
        return ll_err(LL_ERR_ARG, "tuned lens: layers (%d) and width (%d) must be positive", n_layers, d_model);
    ll_tuned_lens *t = ll_calloc(1, sizeof *t, "tuned lens");
    if (!t) return LL_ERR_NOMEM;
    t->n_layers = n_layers;
    t->d_model = d_model;
    t->A = ll_calloc((size_t)n_layers * d_model * d_model, sizeof(float), "tuned lens A");
    t->b = ll_calloc((size_t)n_layers * d_model, sizeof(float), "tuned lens b");
    if (!t->A || !t->b) {
        ll_tuned_lens_free(t);
        return LL_ERR_NOMEM;
    }
    *out = t;
    return LL_OK;
}

void ll_tuned_lens_free(ll_tuned_lens *t) {
    if (!t) return;
    free(t->A);
    free(t->b);
    free(t);
}

ll_status ll_tuned_lens_apply(const ll_tuned_lens *t, int layer, int n, const float *h, float *out) {
    if (layer < 0 || layer > t->n_layers)
        return ll_err(LL_ERR_ARG, "tuned lens: layer %d outside 0..%d", layer, t->n_layers);
    size_t d = (size_t)t->d_model;
    if (layer == t->n_layers) {
        memcpy(out, h, (size_t)n * d * sizeof(float));
        return LL_OK;
    }
    const float *A = t->A + (size_t)layer * d * d, *b = t->b + (size_t)layer * d;
    for (int r = 0; r < n; r++) {
        const float *x = h + (size_t)r * d;
        float *y = out + (size_t)r * d;
        for (size_t i = 0; i < d; i++) {
            double s = (double)x[i] + b[i];
            const float *Ai = A + i * d;
            for (size_t j = 0; j < d; j++) s += (double)Ai[j] * x[j];
            y[i] = (float)s;
        }
    }
    return LL_OK;
}

ll_status ll_tuned_lens_logits(const ll_tuned_lens *t, ll_model *m, int layer, int n, const float *h, float *logits_out) {
    if (t->d_model != m->cfg.d_model || t->n_layers != m->cfg.n_layers)
        return ll_err(LL_ERR_ARG, "tuned lens: made for %d layers x %d, the model has %d x %d", t->n_layers, t->d_model,
                      m->cfg.n_layers, m->cfg.d_model);
    float *x = ll_calloc((size_t)(n ? n : 1) * t->d_model, sizeof(float), "tuned lens rows");
    if (!x) return LL_ERR_NOMEM;
    ll_status st = ll_tuned_lens_apply(t, layer, n, h, x);
    if (!st) st = ll_lens_logits(m, n, x, logits_out);
    free(x);
    return st;
}
