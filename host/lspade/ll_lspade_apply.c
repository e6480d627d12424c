/* Applying L-SPADE maps on the host: the affine map, the frozen final norm and, for the
 * hidden target, the candidates' LM-head rows; and the normalised option entropy that
 * SPADE-EXIT thresholds. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ll_lspade.h"

/* Host fp32 copies of the final norm's weights (they live in the backend's memory). */
static ll_status ll_maps_norm(ll_lspade_maps *maps, ll_model *m) {
    if (maps->norm_w) return LL_OK;
    int d = m->cfg.d_model;
    maps->norm_kind = m->cfg.norm;
    maps->norm_eps = m->cfg.norm_eps;
    maps->norm_w = malloc((size_t)d * sizeof(float));
    if (!maps->norm_w) return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for the final norm");
    m->be->to_host(maps->norm_w, m->w.norm_w, (size_t)d * sizeof(float));
    if (m->w.norm_b) {
        maps->norm_b = malloc((size_t)d * sizeof(float));
        if (!maps->norm_b) return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for the final norm");
        m->be->to_host(maps->norm_b, m->w.norm_b, (size_t)d * sizeof(float));
    }
    return m->be->sync();
}

ll_status ll_lspade_final_norm(ll_lspade_maps *maps, ll_model *m, int n, const float *h, float *out) {
    LL_TRY(ll_maps_norm(maps, m));
    const ll_backend *cpu = ll_backend_cpu();
    if (maps->norm_kind == LL_NORM_LAYER)
        cpu->layernorm(out, h, maps->norm_w, maps->norm_b, n, m->cfg.d_model, maps->norm_eps);
    else
        cpu->rmsnorm(out, h, maps->norm_w, n, m->cfg.d_model, maps->norm_eps);
    return LL_OK;
}

/* LM-head row of token c as host fp32, copied on first use. */
static ll_status ll_maps_head_row(ll_lspade_maps *maps, ll_model *m, int32_t c, const float **row) {
    const ll_mat *H = &m->w.lm_head;
    int d = m->cfg.d_model;
    if (!maps->head_rows) {
        maps->vocab = m->cfg.vocab_size;
        maps->head_rows = calloc((size_t)maps->vocab, sizeof(float *));
        if (!maps->head_rows) return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for the LM-head row table");
    }
    if (c < 0 || c >= maps->vocab)
        return ll_err(LL_ERR_ARG, "L-SPADE: candidate token %d outside the vocabulary [0, %d)", c, maps->vocab);
    if (maps->head_rows[c]) {
        *row = maps->head_rows[c];
        return LL_OK;
    }
    float *r = malloc((size_t)d * sizeof(float));
    if (!r) return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for an LM-head row");
    if (H->dtype == LL_BF16) {
        /* Device uploads are dense [vocab][d] (trans = true). */
        uint16_t *tmp = malloc((size_t)d * sizeof(uint16_t));
        if (!tmp) {
            free(r);
            return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for an LM-head row");
        }
        m->be->to_host(tmp, (const uint16_t *)(const void *)H->w + (size_t)c * H->ld, (size_t)d * sizeof(uint16_t));
        ll_status st = m->be->sync();
        for (int i = 0; i < d; i++) r[i] = ll_bf16_to_f32(tmp[i]);
        free(tmp);
        if (st) {
            free(r);
            return st;
        }
    } else if (H->trans) {
        m->be->to_host(r, H->w + (size_t)c * H->ld, (size_t)d * sizeof(float));
    } else {
        if (!m->be->host_memory) {
            free(r);
            return ll_err(LL_ERR_UNSUPPORTED, "L-SPADE: an untransposed LM head on a device backend");
        }
        for (int i = 0; i < d; i++) r[i] = H->w[(size_t)i * H->ld + c];
    }
    maps->head_rows[c] = r;
    *row = r;
    return LL_OK;
}

ll_status ll_lspade_apply(ll_lspade_maps *maps, ll_model *m, int layer, int n, const float *h,
                          const int32_t *const *cand, float *out) {
    int d = maps->d_model, q = maps->d_out, K = maps->K;
    if (d != m->cfg.d_model)
        return ll_err(LL_ERR_SHAPE, "L-SPADE maps are for d_model %d, the model has %d", d, m->cfg.d_model);
    if (layer < 0 || layer > maps->n_layers || !maps->W[layer])
        return ll_err(LL_ERR_MISSING, "L-SPADE: no map for layer %d", layer);
    if (n <= 0) return LL_OK;
    const float *W = maps->W[layer];
    float *x = NULL, *y = malloc((size_t)n * q * sizeof(float));
    if (!y) return ll_err(LL_ERR_NOMEM, "L-SPADE: no memory for %d predictions", n);
    if (maps->norm_input) {
        x = malloc((size_t)n * d * sizeof(float));
        ll_status st = x ? ll_lspade_final_norm(maps, m, n, h, x) : ll_err(LL_ERR_NOMEM, "L-SPADE: no memory");
        if (st) {
            free(x);
            free(y);
            return st;
        }
    }
    for (int i = 0; i < n; i++) memcpy(y + (size_t)i * q, W + (size_t)d * q, (size_t)q * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, q, d, 1.0f, x ? x : h, d, W, q, 1.0f, y, q);
    free(x);
    if (maps->target == LL_LSPADE_TARGET_LOGITS) {
        memcpy(out, y, (size_t)n * K * sizeof(float));
        free(y);
        return LL_OK;
    }
    /* hidden: the predicted final state through the frozen final norm and the candidates' head rows. */
    ll_status st = ll_lspade_final_norm(maps, m, n, y, y);
    for (int i = 0; i < n && !st; i++)
        for (int k = 0; k < K && !st; k++) {
            const float *r = NULL;
            if ((st = ll_maps_head_row(maps, m, cand[i][k], &r))) break;
            double s = 0;
            for (int j = 0; j < d; j++) s += (double)r[j] * y[(size_t)i * d + j];
            out[(size_t)i * K + k] = (float)s;
        }
    free(y);
    return st;
}

double ll_lspade_map_macs(const ll_lspade_maps *maps) {
    double d = maps->d_model, macs = (d + 1) * maps->d_out;
    if (maps->norm_input) macs += 2 * d;
    if (maps->target == LL_LSPADE_TARGET_HIDDEN) macs += 2 * d + d * maps->K;
    return macs;
}

double ll_lspade_norm_entropy(const float *logits, int K, int *argmax) {
    int a = 0;
    for (int k = 1; k < K; k++)
        if (logits[k] > logits[a]) a = k;
    if (argmax) *argmax = a;
    if (K <= 1) return 0.0;
    double mx = logits[a], z = 0, s = 0;
    for (int k = 0; k < K; k++) {
        double e = exp((double)logits[k] - mx);
        z += e;
        s += e * ((double)logits[k] - mx);
    }
    /* H = log Z - E[x - max] */
    double H = log(z) - s / z;
    return fmax(H, 0.0) / log((double)K);
}
