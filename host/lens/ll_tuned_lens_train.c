/* Training a tuned lens on the CPU: per layer, minimise the mean KL(final || lens) over
 * training rows with SGD + Nesterov momentum, linear learning-rate decay and gradient-norm
 * clipping (the tuned-lens recipe). The gradient through the final norm (RMSNorm or
 * LayerNorm) and the LM head is written out by hand; test_lens checks it against finite
 * differences. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "../train/ll_train_rng.h"
#include "ll_lens.h"
#include "ll_lens_cuda.h"

/* ---- data ---- */

typedef struct {
    ll_lens_data *d;
} ll_data_sink;

static ll_status ll_data_fn(void *user, const ll_hook_rows *r) {
    ll_lens_data *d = ((ll_data_sink *)user)->d;
    int layer = r->point == LL_HOOK_RESID_POST ? r->layer + 1 : r->layer;
    if (!r->data || r->n_rows != d->n_rows || layer < 0 || layer > d->n_layers)
        return ll_err(LL_ERR_ARG, "lens data: unexpected record");
    memcpy(d->h + (size_t)layer * d->n_rows * d->d_model, r->data, (size_t)r->n_rows * d->d_model * sizeof(float));
    return LL_OK;
}

void ll_lens_data_free(ll_lens_data *d) {
    if (!d) return;
    free(d->h);
    free(d->logits);
    memset(d, 0, sizeof *d);
}

ll_status ll_lens_data_collect(ll_model *m, const int32_t *const *tokens, const int *n_tok, int n_prompts,
                               int max_rows, ll_lens_data *out) {
    memset(out, 0, sizeof *out);
    int L = m->cfg.n_layers, d = m->cfg.d_model, V = m->cfg.vocab_size;
    /* Whole prompts, until the row budget is reached (at least one prompt). */
    int P = 0;
    int64_t T = 0;
    while (P < n_prompts && (max_rows <= 0 || P == 0 || T + n_tok[P] <= max_rows)) {
        if (n_tok[P] < 1) return ll_err(LL_ERR_ARG, "lens data: prompt %d has no tokens", P);
        T += n_tok[P++];
    }
    if (P == 0) return ll_err(LL_ERR_ARG, "lens data: no prompts");
    if (T > (1 << 30)) return ll_err(LL_ERR_ARG, "lens data: %lld rows is too many", (long long)T);
    out->n_rows = (int)T;
    out->n_layers = L;
    out->d_model = d;
    out->vocab = V;
    out->h = ll_calloc((size_t)(L + 1) * T * d, sizeof(float), "lens data");
    out->logits = ll_calloc((size_t)T * V, sizeof(float), "lens data logits");
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    int64_t *off = malloc((size_t)(P + 1) * sizeof *off);
    ll_hooks *hk = NULL;
    ll_status st = LL_OK;
    if (!out->h || !out->logits || !tok || !off) {
        st = ll_err(LL_ERR_NOMEM, "lens data: no memory for %lld rows", (long long)T);
        goto done;
    }
    off[0] = 0;
    for (int i = 0; i < P; i++) {
        memcpy(tok + off[i], tokens[i], (size_t)n_tok[i] * sizeof *tok);
        off[i + 1] = off[i] + n_tok[i];
    }
    if ((st = ll_hooks_new(&hk, L))) goto done;
    ll_data_sink sink = {out};
    ll_record pre = {.point = LL_HOOK_RESID_PRE, .layer_lo = 0, .layer_hi = L - 1, .pos = LL_POS_ALL,
                     .fn = ll_data_fn, .user = &sink};
    ll_record post = pre;
    post.point = LL_HOOK_RESID_POST;
    post.layer_lo = post.layer_hi = L - 1;
    if ((st = ll_hooks_add_record(hk, &pre)) || (st = ll_hooks_add_record(hk, &post))) goto done;
    ll_batch b = {.n_seq = P, .seq_off = off, .tokens = tok};
    ll_forward_opts fo = {.hooks = hk, .logits = LL_LOGITS_ALL, .logits_out = out->logits};
    if ((st = ll_forward(m, &b, &fo))) ll_err_prefix(st, "lens data: ");
done:
    ll_hooks_free(hk);
    free(tok);
    free(off);
    if (st) ll_lens_data_free(out);
    return st;
}

/* ---- gradient ---- */

/* W[o][i] of the LM head whatever its storage order (see ll_mat). */
static inline float ll_head_w(const ll_mat *w, int o, int i) {
    return w->trans ? w->w[(size_t)o * w->ld + i] : w->w[(size_t)i * w->ld + o];
}

static ll_status ll_check_model(const ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data) {
    if (!m->be->host_memory || m->w.lm_head.dtype != LL_F32)
        return ll_err(LL_ERR_UNSUPPORTED, "tuned lens training runs on the CPU with fp32 weights (the model is on %s)",
                      m->be->name);
    if (t->n_layers != m->cfg.n_layers || t->d_model != m->cfg.d_model || data->n_layers != t->n_layers ||
        data->d_model != t->d_model || data->vocab != m->cfg.vocab_size)
        return ll_err(LL_ERR_ARG, "tuned lens: lens (%d x %d), data (%d x %d) and model (%d x %d) disagree",
                      t->n_layers, t->d_model, data->n_layers, data->d_model, m->cfg.n_layers, m->cfg.d_model);
    return LL_OK;
}

/* Scratch per call: u, y, gy, gu [d]; z, p [V]. Without want_grad only the KL (dA, db
 * untouched, may be NULL). */
static ll_status ll_lens_grad_impl(const ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data, int layer,
                                   const int *rows, int n, double *kl, float *dA, float *db, bool want_grad) {
    LL_TRY(ll_check_model(t, m, data));
    if (layer < 0 || layer >= t->n_layers) return ll_err(LL_ERR_ARG, "tuned lens: layer %d has no translator", layer);
    int d = t->d_model, V = data->vocab;
    const ll_config *c = &m->cfg;
    const float *A = t->A + (size_t)layer * d * d, *bb = t->b + (size_t)layer * d;
    const ll_mat *W = &m->w.lm_head;
    double *u = malloc((size_t)d * sizeof *u), *y = malloc((size_t)d * sizeof *y);
    double *gy = malloc((size_t)d * sizeof *gy), *gu = malloc((size_t)d * sizeof *gu);
    double *z = malloc((size_t)V * sizeof *z), *pz = malloc((size_t)V * sizeof *pz);
    double *gA = calloc((size_t)d * d, sizeof *gA), *gb = calloc((size_t)d, sizeof *gb);
    if (!u || !y || !gy || !gu || !z || !pz || !gA || !gb) {
        free(u), free(y), free(gy), free(gu), free(z), free(pz), free(gA), free(gb);
        return ll_err(LL_ERR_NOMEM, "tuned lens: no memory for the gradient");
    }
    double total = 0;
    for (int k = 0; k < n; k++) {
        int r = rows ? rows[k] : k;
        const float *h = data->h + ((size_t)layer * data->n_rows + (size_t)r) * d;
        for (int i = 0; i < d; i++) {
            double s = (double)h[i] + bb[i];
            for (int j = 0; j < d; j++) s += (double)A[(size_t)i * d + j] * h[j];
            u[i] = s;
        }
        /* Final norm: y = w * xhat (+ bias), xhat = (u - mu) / sigma (LayerNorm) or u / rms. */
        double mu = 0, var = 0;
        if (c->norm == LL_NORM_LAYER) {
            for (int i = 0; i < d; i++) mu += u[i];
            mu /= d;
        }
        for (int i = 0; i < d; i++) var += (u[i] - mu) * (u[i] - mu);
        double sig = sqrt(var / d + c->norm_eps);
        for (int i = 0; i < d; i++) {
            y[i] = (u[i] - mu) / sig * m->w.norm_w[i];
            if (m->w.norm_b) y[i] += m->w.norm_b[i];
        }
        double zmax = -INFINITY, pmax = -INFINITY;
        const float *tl = data->logits + (size_t)r * V;
        for (int o = 0; o < V; o++) {
            double s = 0;
            for (int i = 0; i < d; i++) s += (double)ll_head_w(W, o, i) * y[i];
            z[o] = s;
            if (s > zmax) zmax = s;
            if (tl[o] > pmax) pmax = tl[o];
        }
        double zq = 0, zp = 0;
        for (int o = 0; o < V; o++) {
            zq += exp(z[o] - zmax);
            zp += exp(tl[o] - pmax);
        }
        double lq = zmax + log(zq), lp = pmax + log(zp);
        /* KL(p || q) = sum p (log p - log q); d/dz = q - p. */
        for (int i = 0; i < d; i++) gy[i] = 0;
        for (int o = 0; o < V; o++) {
            double p = exp(tl[o] - lp), q = exp(z[o] - lq);
            if (p > 0) total += p * ((tl[o] - lp) - (z[o] - lq));
            if (!want_grad) continue;
            double g = (q - p) / n;
            if (g != 0)
                for (int i = 0; i < d; i++) gy[i] += g * ll_head_w(W, o, i);
        }
        if (!want_grad) continue;
        /* Norm backward with g = gy * w: RMS: gu = (g - xhat * mean(g xhat)) / sigma;
         * LayerNorm additionally subtracts mean(g). */
        double mg = 0, mgx = 0;
        for (int i = 0; i < d; i++) {
            double g = gy[i] * m->w.norm_w[i];
            mg += g;
            mgx += g * (u[i] - mu) / sig;
        }
        mg /= d;
        mgx /= d;
        for (int i = 0; i < d; i++) {
            double g = gy[i] * m->w.norm_w[i];
            double xh = (u[i] - mu) / sig;
            gu[i] = (g - (c->norm == LL_NORM_LAYER ? mg : 0) - xh * mgx) / sig;
        }
        for (int i = 0; i < d; i++) {
            gb[i] += gu[i];
            for (int j = 0; j < d; j++) gA[(size_t)i * d + j] += gu[i] * h[j];
        }
    }
    if (kl) *kl = n ? total / n : 0;
    if (want_grad) {
        for (size_t i = 0; i < (size_t)d * d; i++) dA[i] = (float)gA[i];
        for (int i = 0; i < d; i++) db[i] = (float)gb[i];
    }
    free(u), free(y), free(gy), free(gu), free(z), free(pz), free(gA), free(gb);
    return LL_OK;
}

ll_status ll_tuned_lens_grad(const ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data, int layer,
                             const int *rows, int n, double *kl, float *dA, float *db) {
    if (!dA || !db) return ll_err(LL_ERR_ARG, "tuned lens: gradient outputs missing");
    return ll_lens_grad_impl(t, m, data, layer, rows, n, kl, dA, db, true);
}

ll_status ll_tuned_lens_kl(const ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data, double *kl) {
    if (!m->be->host_memory) return ll_tuned_lens_kl_cuda(t, m, data, kl);
    for (int l = 0; l < t->n_layers; l++)
        LL_TRY(ll_lens_grad_impl(t, m, data, l, NULL, data->n_rows, &kl[l], NULL, NULL, false));
    return LL_OK;
}

/* ---- training ---- */

void ll_tuned_lens_train_defaults(ll_tuned_lens_train_opts *o) {
    if (o->steps <= 0) o->steps = 250;
    if (o->batch <= 0) o->batch = 32;
    if (o->lr <= 0) o->lr = 1.0f;
    if (o->momentum <= 0) o->momentum = 0.9f;
    if (o->clip == 0) o->clip = 1.0f;
    if (o->weight_decay == 0) o->weight_decay = 1e-3f;
}

ll_status ll_tuned_lens_train(ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data,
                              const ll_tuned_lens_train_opts *opts, double *kl_before, double *kl_after) {
    LL_TRY(ll_check_model(t, m, data));
    ll_tuned_lens_train_opts o = opts ? *opts : (ll_tuned_lens_train_opts){0};
    ll_tuned_lens_train_defaults(&o);
    int d = t->d_model, L = t->n_layers, N = data->n_rows;
    int B = o.batch < N ? o.batch : N;
    size_t nA = (size_t)d * d;
    float *dA = malloc(nA * sizeof *dA), *db = malloc((size_t)d * sizeof *db);
    float *vA = malloc(nA * sizeof *vA), *vb = malloc((size_t)d * sizeof *vb);
    int *rows = malloc((size_t)B * sizeof *rows);
    if (!dA || !db || !vA || !vb || !rows) {
        free(dA), free(db), free(vA), free(vb), free(rows);
        return ll_err(LL_ERR_NOMEM, "tuned lens: no memory for training");
    }
    ll_rng rng = {o.seed ? o.seed : 0x5eed};
    ll_status st = LL_OK;
    for (int l = 0; l < L && !st; l++) {
        float *A = t->A + (size_t)l * nA, *b = t->b + (size_t)l * d;
        if (kl_before && (st = ll_lens_grad_impl(t, m, data, l, NULL, N, &kl_before[l], NULL, NULL, false))) break;
        memset(vA, 0, nA * sizeof *vA);
        memset(vb, 0, (size_t)d * sizeof *vb);
        double kl = 0;
        for (int s = 0; s < o.steps && !st; s++) {
            for (int k = 0; k < B; k++) rows[k] = B == N ? k : ll_rng_int(&rng, N);
            if ((st = ll_tuned_lens_grad(t, m, data, l, rows, B, &kl, dA, db))) break;
            double nrm = 0;
            for (size_t i = 0; i < nA; i++) {
                dA[i] += o.weight_decay * A[i];
                nrm += (double)dA[i] * dA[i];
            }
            for (int i = 0; i < d; i++) nrm += (double)db[i] * db[i];
            nrm = sqrt(nrm);
            float sc = (o.clip > 0 && nrm > o.clip) ? (float)(o.clip / nrm) : 1.0f;
            float lr = o.lr * (1.0f - (float)s / (float)o.steps);
            /* Nesterov: v = mu v + g; step along g + mu v. */
            for (size_t i = 0; i < nA; i++) {
                float g = dA[i] * sc;
                vA[i] = o.momentum * vA[i] + g;
                A[i] -= lr * (g + o.momentum * vA[i]);
            }
            for (int i = 0; i < d; i++) {
                float g = db[i] * sc;
                vb[i] = o.momentum * vb[i] + g;
                b[i] -= lr * (g + o.momentum * vb[i]);
            }
            if (o.progress && (s + 1 == o.steps || s % 25 == 0)) o.progress(o.user, l, s + 1, o.steps, kl);
        }
        if (!st && kl_after) st = ll_lens_grad_impl(t, m, data, l, NULL, N, &kl_after[l], NULL, NULL, false);
    }
    free(dA), free(db), free(vA), free(vb), free(rows);
    return st;
}

ll_status ll_tuned_lens_train_auto(ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data,
                                   const ll_tuned_lens_train_opts *o, double *kl_before, double *kl_after) {
    if (m->be->host_memory) return ll_tuned_lens_train(t, m, data, o, kl_before, kl_after);
    return ll_tuned_lens_train_cuda(t, m, data, o, kl_before, kl_after);
}
