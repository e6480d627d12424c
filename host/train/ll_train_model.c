/* The Llama training graph (see ll_train_model.h): forward with saved activations,
 * backward through the same operations in reverse. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "ll_train_model.h"
#include "ll_train_ops.h"
#include "ll_train_rng.h"

ll_status ll_tmodel_new(ll_tmodel **out, const ll_tm_cfg *c) {
    *out = NULL;
#define LL_CHECK(cond, field, what)                                                                                \
    if (!(cond)) return ll_err(LL_ERR_ARG, "train model: %s must be %s, found %d", #field, what, (int)(c->field))
    LL_CHECK(c->vocab >= 2 && c->vocab <= (1 << 20), vocab, "in [2, 2^20]");
    LL_CHECK(c->d_model >= 2 && c->d_model <= 8192, d_model, "in [2, 8192]");
    LL_CHECK(c->n_layers >= 1 && c->n_layers <= LL_TM_MAX_LAYERS, n_layers, "in [1, 32]");
    LL_CHECK(c->n_heads >= 1 && c->d_model % c->n_heads == 0, n_heads, "a divisor of d_model");
    LL_CHECK(c->n_kv_heads >= 1 && c->n_heads % c->n_kv_heads == 0, n_kv_heads, "a divisor of n_heads");
    LL_CHECK((c->d_model / c->n_heads) % 2 == 0, d_model, "such that d_model / n_heads is even");
    LL_CHECK(c->d_ff >= 1 && c->d_ff <= 65536, d_ff, "in [1, 65536]");
    LL_CHECK(c->max_seq >= 1 && c->max_seq <= LL_TM_MAX_SEQ, max_seq, "in [1, 1024]");
#undef LL_CHECK
    if (!(c->norm_eps > 0) || !(c->rope_theta > 1))
        return ll_err(LL_ERR_ARG, "train model: norm_eps must be > 0 and rope_theta > 1, found %g and %g",
                      c->norm_eps, c->rope_theta);
    ll_tmodel *m = ll_calloc(1, sizeof *m, "train model");
    if (!m) return LL_ERR_NOMEM;
    m->c = *c;
    size_t d = (size_t)c->d_model, hd = d / c->n_heads, kvw = hd * c->n_kv_heads, ff = (size_t)c->d_ff;
    size_t off = 0;
    m->lay.emb = off, off += (size_t)c->vocab * d;
    for (int l = 0; l < c->n_layers; l++) {
        ll_tm_layer_off *L = &m->lay.l[l];
        L->attn_norm = off, off += d;
        L->wq = off, off += d * d;
        L->wk = off, off += kvw * d;
        L->wv = off, off += kvw * d;
        L->wo = off, off += d * d;
        L->mlp_norm = off, off += d;
        L->wg = off, off += ff * d;
        L->wu = off, off += ff * d;
        L->wd = off, off += d * ff;
    }
    m->lay.norm = off, off += d;
    m->lay.lm_head = off, off += (size_t)c->vocab * d;
    m->lay.n = off;
    m->p = ll_alloc_aligned(off, sizeof(float), "train parameters");
    m->g = ll_alloc_aligned(off, sizeof(float), "train gradients");
    if (!m->p || !m->g) {
        ll_tmodel_free(m);
        return LL_ERR_NOMEM;
    }
    memset(m->p, 0, off * sizeof(float));
    memset(m->g, 0, off * sizeof(float));
    *out = m;
    return LL_OK;
}

static void ll_tmodel_free_acts(ll_tmodel *m) {
    for (int l = 0; l < LL_TM_MAX_LAYERS; l++) {
        float **f = (float **)&m->a[l];
        for (size_t i = 0; i < sizeof(ll_tm_acts) / sizeof(float *); i++) free(f[i]), f[i] = NULL;
    }
    float **bufs[] = {&m->xL, &m->rstdf, &m->xf, &m->logits, &m->rope, &m->d0, &m->d1, &m->d2, &m->d3,
                      &m->dq, &m->dk, &m->dv, &m->dff1, &m->dff2, &m->dlogits};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(*bufs[i]), *bufs[i] = NULL;
    m->B = m->T = 0;
}

void ll_tmodel_free(ll_tmodel *m) {
    if (!m) return;
    ll_tmodel_free_acts(m);
    free(m->p);
    free(m->g);
    free(m);
}

void ll_tmodel_init(ll_tmodel *m, uint64_t seed) {
    ll_rng r = {seed ^ 0x6C6C696E6974ull};
    const ll_tm_cfg *c = &m->c;
    float out_scale = 1.0f / sqrtf(2.0f * (float)c->n_layers);
    int n = ll_tmodel_n_tensors(m);
    for (int i = 0; i < n; i++) {
        char name[128];
        int nd;
        int64_t sh[2];
        size_t off;
        ll_tmodel_tensor(m, i, name, sizeof name, &nd, sh, &off);
        size_t cnt = (size_t)sh[0] * (nd == 2 ? (size_t)sh[1] : 1);
        float *p = m->p + off;
        if (nd == 1) {
            for (size_t j = 0; j < cnt; j++) p[j] = 1.0f;
            continue;
        }
        float s = 0.02f;
        if (strstr(name, "o_proj") || strstr(name, "down_proj")) s *= out_scale;
        for (size_t j = 0; j < cnt; j++) p[j] = (float)(s * ll_rng_normal(&r));
    }
}

int ll_tmodel_n_tensors(const ll_tmodel *m) { return 3 + 9 * m->c.n_layers; }

void ll_tmodel_tensor(const ll_tmodel *m, int i, char *name, size_t name_len, int *ndim, int64_t shape[2],
                      size_t *off) {
    const ll_tm_cfg *c = &m->c;
    int64_t d = c->d_model, hd = d / c->n_heads, kvw = hd * c->n_kv_heads, ff = c->d_ff;
    if (i == 0) {
        snprintf(name, name_len, "model.embed_tokens.weight");
        *ndim = 2, shape[0] = c->vocab, shape[1] = d, *off = m->lay.emb;
        return;
    }
    if (i == 1 + 9 * c->n_layers) {
        snprintf(name, name_len, "model.norm.weight");
        *ndim = 1, shape[0] = d, shape[1] = 1, *off = m->lay.norm;
        return;
    }
    if (i == 2 + 9 * c->n_layers) {
        snprintf(name, name_len, "lm_head.weight");
        *ndim = 2, shape[0] = c->vocab, shape[1] = d, *off = m->lay.lm_head;
        return;
    }
    int l = (i - 1) / 9, k = (i - 1) % 9;
    const ll_tm_layer_off *L = &m->lay.l[l];
    static const char *names[9] = {"input_layernorm",  "self_attn.q_proj", "self_attn.k_proj",
                                   "self_attn.v_proj", "self_attn.o_proj", "post_attention_layernorm",
                                   "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
    const size_t offs[9] = {L->attn_norm, L->wq, L->wk, L->wv, L->wo, L->mlp_norm, L->wg, L->wu, L->wd};
    const int64_t rows[9] = {d, d, kvw, kvw, d, d, ff, ff, d};
    const int64_t cols[9] = {1, d, d, d, d, 1, d, d, ff};
    snprintf(name, name_len, "model.layers.%d.%s.weight", l, names[k]);
    *ndim = cols[k] == 1 && (k == 0 || k == 5) ? 1 : 2;
    shape[0] = rows[k], shape[1] = cols[k], *off = offs[k];
}

static ll_status ll_tmodel_reserve(ll_tmodel *m, int B, int T) {
    if (m->B == B && m->T == T) return LL_OK;
    ll_tmodel_free_acts(m);
    const ll_tm_cfg *c = &m->c;
    size_t N = (size_t)B * T, d = c->d_model, hd = d / c->n_heads, kvw = hd * c->n_kv_heads, ff = c->d_ff,
           V = c->vocab;
    int ok = 1;
#define LL_A(ptr, n) ok &= ((ptr) = ll_alloc_aligned((n), sizeof(float), "train activations")) != NULL
    for (int l = 0; l < c->n_layers; l++) {
        ll_tm_acts *a = &m->a[l];
        LL_A(a->x, N * d);
        LL_A(a->rstd1, N);
        LL_A(a->xn1, N * d);
        LL_A(a->q, N * d);
        LL_A(a->k, N * kvw);
        LL_A(a->v, N * kvw);
        LL_A(a->probs, (size_t)B * c->n_heads * T * T);
        LL_A(a->att, N * d);
        LL_A(a->x2, N * d);
        LL_A(a->rstd2, N);
        LL_A(a->xn2, N * d);
        LL_A(a->g, N * ff);
        LL_A(a->u, N * ff);
        LL_A(a->h, N * ff);
    }
    LL_A(m->xL, N * d);
    LL_A(m->rstdf, N);
    LL_A(m->xf, N * d);
    LL_A(m->logits, N * V);
    LL_A(m->rope, (size_t)T * hd);
    LL_A(m->d0, N * d);
    LL_A(m->d1, N * d);
    LL_A(m->d2, N * d);
    LL_A(m->d3, N * d);
    LL_A(m->dq, N * d);
    LL_A(m->dk, N * kvw);
    LL_A(m->dv, N * kvw);
    LL_A(m->dff1, N * ff);
    LL_A(m->dff2, N * ff);
    LL_A(m->dlogits, N * V);
#undef LL_A
    if (!ok) {
        ll_tmodel_free_acts(m);
        return LL_ERR_NOMEM;
    }
    m->B = B, m->T = T;
    ll_top_rope_table(m->rope, T, (int)hd, c->rope_theta);
    return LL_OK;
}

ll_status ll_tmodel_step(ll_tmodel *m, const int32_t *tokens, const int32_t *target, const float *w, int B, int T,
                         bool grad, double *loss) {
    const ll_tm_cfg *c = &m->c;
    if (B < 1 || T < 1 || T > c->max_seq)
        return ll_err(LL_ERR_ARG, "train step: batch %d x %d: expected B >= 1 and 1 <= T <= max_seq (%d)", B, T,
                      c->max_seq);
    int N = B * T;
    for (int n = 0; n < N; n++) {
        if (tokens[n] < 0 || tokens[n] >= c->vocab || target[n] < 0 || target[n] >= c->vocab)
            return ll_err(LL_ERR_ARG, "train step: row %d: token %d / target %d outside the vocabulary [0, %d)", n,
                          tokens[n], target[n], c->vocab);
    }
    LL_TRY(ll_tmodel_reserve(m, B, T));
    int d = c->d_model, H = c->n_heads, KV = c->n_kv_heads, hd = d / H, kvw = hd * KV, ff = c->d_ff, V = c->vocab;
    const float *P = m->p;

    ll_top_embed(m->a[0].x, P + m->lay.emb, tokens, N, d);
    for (int l = 0; l < c->n_layers; l++) {
        ll_tm_acts *a = &m->a[l];
        const ll_tm_layer_off *L = &m->lay.l[l];
        ll_top_rmsnorm(a->xn1, a->rstd1, a->x, P + L->attn_norm, N, d, c->norm_eps);
        ll_top_matmul(a->q, a->xn1, P + L->wq, N, d, d);
        ll_top_matmul(a->k, a->xn1, P + L->wk, N, d, kvw);
        ll_top_matmul(a->v, a->xn1, P + L->wv, N, d, kvw);
        ll_top_rope(a->q, m->rope, B, T, H, hd, 0);
        ll_top_rope(a->k, m->rope, B, T, KV, hd, 0);
        if (ll_top_attention(a->att, a->probs, a->q, a->k, a->v, B, T, H, KV, hd))
            return ll_err(LL_ERR_NOMEM, "train step: no memory for the attention tiles");
        ll_top_matmul(a->x2, a->att, P + L->wo, N, d, d);
        for (size_t i = 0; i < (size_t)N * d; i++) a->x2[i] += a->x[i];
        ll_top_rmsnorm(a->xn2, a->rstd2, a->x2, P + L->mlp_norm, N, d, c->norm_eps);
        ll_top_matmul(a->g, a->xn2, P + L->wg, N, d, ff);
        ll_top_matmul(a->u, a->xn2, P + L->wu, N, d, ff);
        ll_top_swiglu(a->h, a->g, a->u, (size_t)N * ff);
        float *next = l + 1 < c->n_layers ? m->a[l + 1].x : m->xL;
        ll_top_matmul(next, a->h, P + L->wd, N, ff, d);
        for (size_t i = 0; i < (size_t)N * d; i++) next[i] += a->x2[i];
    }
    ll_top_rmsnorm(m->xf, m->rstdf, m->xL, P + m->lay.norm, N, d, c->norm_eps);
    ll_top_matmul(m->logits, m->xf, P + m->lay.lm_head, N, d, V);
    double ls = ll_top_xent(grad ? m->dlogits : NULL, m->logits, target, w, N, V);
    if (loss) *loss = ls;
    if (!grad) return LL_OK;

    float *G = m->g;
    memset(G, 0, m->lay.n * sizeof(float));
    /* dx: gradient of the residual stream flowing down (d0); d1..d3 scratch. */
    ll_top_matmul_bwd(m->d1, 0, G + m->lay.lm_head, m->dlogits, m->xf, P + m->lay.lm_head, N, d, V);
    ll_top_rmsnorm_bwd(m->d0, G + m->lay.norm, m->d1, m->xL, P + m->lay.norm, m->rstdf, N, d);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        ll_tm_acts *a = &m->a[l];
        const ll_tm_layer_off *L = &m->lay.l[l];
        /* MLP: d0 is the gradient at the block's output (= at x2 through the skip). */
        float *dh = m->dff1;
        ll_top_matmul_bwd(dh, 0, G + L->wd, m->d0, a->h, P + L->wd, N, ff, d);
        ll_top_swiglu_bwd(m->dff2, dh, dh, a->g, a->u, (size_t)N * ff); /* dff2 = dg, dff1 = du */
        ll_top_matmul_bwd(m->d1, 0, G + L->wg, m->dff2, a->xn2, P + L->wg, N, d, ff);
        ll_top_matmul_bwd(m->d1, 1, G + L->wu, m->dff1, a->xn2, P + L->wu, N, d, ff);
        ll_top_rmsnorm_bwd(m->d2, G + L->mlp_norm, m->d1, a->x2, P + L->mlp_norm, a->rstd2, N, d);
        for (size_t i = 0; i < (size_t)N * d; i++) m->d0[i] += m->d2[i]; /* d0 = dL/dx2 */
        /* Attention. */
        ll_top_matmul_bwd(m->d1, 0, G + L->wo, m->d0, a->att, P + L->wo, N, d, d);
        if (m->attn_grad_fn) m->attn_grad_fn(m->attn_grad_user, l, m->d1);
        if (ll_top_attention_bwd(m->dq, m->dk, m->dv, m->d1, a->probs, a->q, a->k, a->v, B, T, H, KV, hd))
            return ll_err(LL_ERR_NOMEM, "train step: no memory for the attention tiles");
        ll_top_rope(m->dq, m->rope, B, T, H, hd, 1);
        ll_top_rope(m->dk, m->rope, B, T, KV, hd, 1);
        ll_top_matmul_bwd(m->d2, 0, G + L->wq, m->dq, a->xn1, P + L->wq, N, d, d);
        ll_top_matmul_bwd(m->d2, 1, G + L->wk, m->dk, a->xn1, P + L->wk, N, d, kvw);
        ll_top_matmul_bwd(m->d2, 1, G + L->wv, m->dv, a->xn1, P + L->wv, N, d, kvw);
        ll_top_rmsnorm_bwd(m->d3, G + L->attn_norm, m->d2, a->x, P + L->attn_norm, a->rstd1, N, d);
        for (size_t i = 0; i < (size_t)N * d; i++) m->d0[i] += m->d3[i]; /* d0 = dL/dx */
    }
    ll_top_embed_bwd(G + m->lay.emb, m->d0, tokens, N, d);
    return LL_OK;
}
