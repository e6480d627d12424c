/* Attention x gradient saliency through the CPU training graph (ll_icl_saliency.h). */
#include "ll_icl_saliency.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "../model/ll_forward.h"
#include "../train/ll_train_model.h"

struct ll_icl_saliency {
    ll_tmodel *tm;
    int L, H, KV, hd, max_seq;
    /* during a step */
    float *I;
    int n;
};

/* W (an ll_mat, fp32 host) -> dst[out][in]. */
static void ll_copy_mat(float *dst, const ll_mat *w) {
    for (int o = 0; o < w->out; o++)
        for (int i = 0; i < w->in; i++)
            dst[(size_t)o * w->in + i] = w->trans ? w->w[(size_t)o * w->ld + i] : w->w[(size_t)i * w->ld + o];
}

static ll_status ll_unsupported(const char *why) {
    return ll_err(LL_ERR_UNSUPPORTED, "saliency: needs a plain Llama model (RMSNorm, SwiGLU, rotate-half RoPE "
                                      "without scaling, no biases): %s", why);
}

void ll_icl_saliency_free(ll_icl_saliency *s) {
    if (!s) return;
    ll_tmodel_free(s->tm);
    free(s);
}

/* The backward pass hands over dL/dz for layer l: accumulate |sum_h A_h * dz_h . v_j|. */
static void ll_sal_fn(void *user, int l, const float *dz) {
    ll_icl_saliency *s = user;
    const ll_tm_acts *a = &s->tm->a[l];
    int n = s->n, H = s->H, hd = s->hd, group = s->H / s->KV, T = s->tm->T;
    int kvw = s->KV * hd;
    float *I = s->I + (size_t)l * n * n;
    for (int r = 0; r < n; r++)
        for (int j = 0; j <= r; j++) {
            double sum = 0;
            for (int h = 0; h < H; h++) {
                const float *g = dz + (size_t)r * H * hd + (size_t)h * hd;
                const float *v = a->v + (size_t)j * kvw + (size_t)(h / group) * hd;
                double dA = 0;
                for (int i = 0; i < hd; i++) dA += (double)g[i] * v[i];
                sum += a->probs[((size_t)h * T + r) * T + j] * dA;
            }
            I[(size_t)r * n + j] = (float)fabs(sum);
        }
}

ll_status ll_icl_saliency_new(ll_icl_saliency **out, const ll_model *m, int max_seq) {
    *out = NULL;
    const ll_config *c = &m->cfg;
    if (!m->be->host_memory) return ll_err(LL_ERR_ARG, "saliency: the model's weights must be in host memory (CPU)");
    if (c->norm != LL_NORM_RMS || c->mlp != LL_MLP_SWIGLU) return ll_unsupported("norm or MLP differ");
    if (c->qkv_bias || c->proj_bias || c->learned_pos) return ll_unsupported("the model has biases or learned positions");
    if (c->rope_layout != LL_ROPE_ROTATE_HALF || c->rope_scaling != LL_ROPE_SCALING_NONE)
        return ll_unsupported("RoPE is interleaved or scaled");
    if (c->sliding_window > 0 && c->sliding_window < max_seq) return ll_unsupported("sliding-window attention");
    if (c->head_dim * c->n_heads != c->d_model) return ll_unsupported("head_dim * n_heads != d_model");
    for (int l = 0; l < c->n_layers; l++) {
        const ll_layer_weights *W = &m->w.layers[l];
        if (W->wq.dtype != LL_F32 || W->w_down.dtype != LL_F32) return ll_err(LL_ERR_ARG, "saliency: weights must be fp32");
    }
    ll_tm_cfg tc = {.vocab = c->vocab_size, .d_model = c->d_model, .n_layers = c->n_layers, .n_heads = c->n_heads,
                    .n_kv_heads = c->n_kv_heads, .d_ff = c->d_ff, .max_seq = max_seq, .rope_theta = c->rope_theta,
                    .norm_eps = c->norm_eps};
    ll_icl_saliency *s = ll_calloc(1, sizeof *s, "saliency");
    if (!s) return LL_ERR_NOMEM;
    ll_status st = ll_tmodel_new(&s->tm, &tc);
    if (st) {
        free(s);
        return ll_err_prefix(st, "saliency: ");
    }
    s->L = c->n_layers, s->H = c->n_heads, s->KV = c->n_kv_heads, s->hd = c->head_dim, s->max_seq = max_seq;
    ll_tmodel *tm = s->tm;
    float *P = tm->p;
    size_t d = (size_t)c->d_model;
    memcpy(P + tm->lay.emb, m->w.tok_emb, (size_t)c->vocab_size * d * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        const ll_layer_weights *W = &m->w.layers[l];
        const ll_tm_layer_off *o = &tm->lay.l[l];
        memcpy(P + o->attn_norm, W->attn_norm_w, d * sizeof(float));
        memcpy(P + o->mlp_norm, W->mlp_norm_w, d * sizeof(float));
        ll_copy_mat(P + o->wq, &W->wq);
        ll_copy_mat(P + o->wk, &W->wk);
        ll_copy_mat(P + o->wv, &W->wv);
        ll_copy_mat(P + o->wo, &W->wo);
        ll_copy_mat(P + o->wg, &W->w_gate);
        ll_copy_mat(P + o->wu, &W->w_up);
        ll_copy_mat(P + o->wd, &W->w_down);
    }
    memcpy(P + tm->lay.norm, m->w.norm_w, d * sizeof(float));
    ll_copy_mat(P + tm->lay.lm_head, &m->w.lm_head);

    /* The probe: both graphs on the same tokens must give the same logits. */
    int T = max_seq < 12 ? max_seq : 12, V = c->vocab_size;
    int32_t ids[12], tgt[12];
    float w[12] = {0}, *lg = malloc((size_t)T * V * sizeof *lg);
    for (int t = 0; t < T; t++) ids[t] = tgt[t] = (int32_t)((t * 7919 + 3) % V);
    int64_t off[2] = {0, T};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = ids};
    ll_forward_opts fo = {.logits = LL_LOGITS_ALL, .logits_out = lg};
    st = lg ? ll_forward((ll_model *)m, &b, &fo) : ll_err(LL_ERR_NOMEM, "saliency probe");
    if (!st) st = ll_tmodel_step(tm, ids, tgt, w, 1, T, false, NULL);
    if (!st) {
        double md = 0, mx = 0;
        for (size_t i = 0; i < (size_t)T * V; i++) {
            double e = fabs((double)tm->logits[i] - lg[i]);
            md = e > md ? e : md;
            mx = fabs(lg[i]) > mx ? fabs(lg[i]) : mx;
        }
        if (!(md <= 1e-3 * (mx > 1 ? mx : 1))) {
            char why[160];
            snprintf(why, sizeof why, "the training graph's logits differ from the forward pass's by %.3g (max |logit| "
                                      "%.3g)", md, mx);
            st = ll_unsupported(why);
        }
    }
    free(lg);
    if (st) {
        ll_icl_saliency_free(s);
        return st;
    }
    tm->attn_grad_fn = ll_sal_fn;
    tm->attn_grad_user = s;
    *out = s;
    return LL_OK;
}

ll_status ll_icl_saliency_prompt(ll_icl_saliency *s, const int32_t *ids, int n, int32_t target, float *I,
                                 double *loss) {
    if (n < 1 || n > s->max_seq)
        return ll_err(LL_ERR_ARG, "saliency: a prompt of %d tokens, the limit given was %d", n, s->max_seq);
    int32_t *tgt = malloc((size_t)n * sizeof *tgt);
    float *w = calloc((size_t)n, sizeof *w);
    if (!tgt || !w) {
        free(tgt), free(w);
        return ll_err(LL_ERR_NOMEM, "saliency: prompt of %d tokens", n);
    }
    for (int t = 0; t < n; t++) tgt[t] = ids[t]; /* weight 0: any valid id */
    tgt[n - 1] = target;
    w[n - 1] = 1;
    memset(I, 0, (size_t)s->L * n * n * sizeof *I);
    s->I = I, s->n = n;
    ll_status st = ll_tmodel_step(s->tm, ids, tgt, w, 1, n, true, loss);
    s->I = NULL;
    free(tgt), free(w);
    return st;
}
