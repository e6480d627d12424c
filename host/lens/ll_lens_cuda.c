/* Tuned-lens training on a CUDA device (CUDA builds only; ll_lens_cuda_none.c otherwise).
 * See ll_lens_cuda.h. One step, for a batch of n rows X (gathered from the layer's rows H):
 *
 *   U  = X + b   (gather kernel)            U += X A^T       (sgemm)
 *   Y  = norm(U) (kernel, mu / sig kept)    Z  = Y W^T       (sgemm, W = LM head [V][d])
 *   kl, Z := (softmax(Z) - softmax(T)) / n  (kernel, the KL gradient wrt the logits)
 *   GY = Z W     (sgemm)                    GU = norm backward (kernel)
 *   dA = GU^T X  (sgemm)                    db = column sums of GU (kernel)
 *   weight decay + squared norm (kernel), then SGD + Nesterov with the clip (kernel)
 *
 * Everything row-major; cuBLAS is column-major, so each product is written for the
 * transposes (a row-major [r][c] matrix is a column-major c x r one). Work is queued on the
 * legacy default stream, which also orders it after the CUDA backend's own stream (that one
 * is created blocking); the host only waits where it reads a result back. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/ll_k_lens.h"
#include "../train/ll_train_rng.h"
#include "ll_lens_cuda.h"

#define LL_LG_CHUNK 256 /* rows per pass when evaluating many rows: bounds the logits scratch */

typedef struct {
    cublasHandle_t blas;
    int d, V, N, C, layer_norm;
    float eps;
    float *W;              /* [V][d] fp32 LM head (owned) */
    float *nw, *nb;        /* final norm weights (owned copies when the model is on the host) */
    const float *nw_use, *nb_use;
    float *T;              /* [N][V] target logits */
    float *H;              /* [N][d] rows of the current layer */
    int32_t *iota;         /* [N] 0..N-1 */
    float *X, *U, *Y, *Z, *GY, *GU; /* [C][d], [C][V] */
    double *mu, *sig, *kl, *acc;    /* [C], [C], [max(N, C)], [1] */
    float *A, *b, *dA, *db, *vA, *vb;
    int32_t *rows;         /* per-call row lists */
    /* First failure (message in msg). */
    int failed;
    char msg[400];
} ll_lg;

static void ll_lg_fail(ll_lg *g, const char *what, const char *why) {
    if (g->failed) return;
    g->failed = 1;
    snprintf(g->msg, sizeof g->msg, "%s: %s", what, why);
}

static void ll_lg_cu(ll_lg *g, cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        ll_lg_fail(g, what, cudaGetErrorString(e));
        cudaGetLastError();
    }
}

static void ll_lg_blas(ll_lg *g, cublasStatus_t e, const char *what) {
    if (e != CUBLAS_STATUS_SUCCESS) {
        char why[64];
        snprintf(why, sizeof why, "cuBLAS status %d", (int)e);
        ll_lg_fail(g, what, why);
    }
}

static void *ll_lg_alloc(ll_lg *g, size_t bytes, const char *what) {
    if (g->failed) return NULL;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        char why[200];
        snprintf(why, sizeof why, "cannot allocate %.1f MB on the device: %s", bytes / 1048576.0,
                 cudaGetErrorString(e));
        ll_lg_fail(g, what, why);
        cudaGetLastError();
        return NULL;
    }
    return p;
}

static void ll_lg_up(ll_lg *g, void *dst, const void *src, size_t bytes, const char *what) {
    if (!g->failed && bytes) ll_lg_cu(g, cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), what);
}

static void ll_lg_down(ll_lg *g, void *dst, const void *src, size_t bytes, const char *what) {
    if (!g->failed && bytes) ll_lg_cu(g, cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), what);
}

/* Waits for the queued work; LL_OK or the first failure as an ll_status. */
static ll_status ll_lg_status(ll_lg *g) {
    if (!g->failed) ll_lg_cu(g, cudaDeviceSynchronize(), "tuned lens (CUDA): a step failed");
    return g->failed ? ll_err(LL_ERR_DEVICE, "tuned lens (CUDA): %s", g->msg) : LL_OK;
}

static void ll_lg_free(ll_lg *g) {
    if (!g) return;
    void *ps[] = {g->W, g->nw, g->nb, g->T, g->H, g->iota, g->X, g->U, g->Y, g->Z, g->GY, g->GU, g->mu,
                  g->sig, g->kl, g->acc, g->A, g->b, g->dA, g->db, g->vA, g->vb, g->rows};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++)
        if (ps[i]) cudaFree(ps[i]);
    if (g->blas) cublasDestroy(g->blas);
    cudaGetLastError();
    free(g);
}

/* W[o][i] of a host LM head whatever its storage order (see ll_mat). */
static inline float ll_lg_head_w(const ll_mat *w, int o, int i) {
    return w->trans ? w->w[(size_t)o * w->ld + i] : w->w[(size_t)i * w->ld + o];
}

/* A context for t / m / data with scratch for `chunk` rows per pass and `max_rows` row ids. */
static ll_status ll_lg_new(ll_lg **out, const ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data,
                           int chunk, size_t max_rows) {
    *out = NULL;
    if (t->n_layers != m->cfg.n_layers || t->d_model != m->cfg.d_model || data->n_layers != t->n_layers ||
        data->d_model != t->d_model || data->vocab != m->cfg.vocab_size)
        return ll_err(LL_ERR_ARG, "tuned lens: lens (%d x %d), data (%d x %d) and model (%d x %d) disagree",
                      t->n_layers, t->d_model, data->n_layers, data->d_model, m->cfg.n_layers, m->cfg.d_model);
    if (data->n_rows < 1) return ll_err(LL_ERR_ARG, "tuned lens: no training rows");
    /* Opens device 0 and checks its compute capability against the build. */
    if (!ll_backend_cuda()) return ll_err_prefix(LL_ERR_DEVICE, "tuned lens on CUDA: ");
    if (!m->be->host_memory) LL_TRY(m->be->sync());
    const ll_mat *hw = &m->w.lm_head;
    if (!m->be->host_memory && !((hw->dtype == LL_BF16 || hw->dtype == LL_F32) && hw->trans && hw->ld == hw->in))
        return ll_err(LL_ERR_UNSUPPORTED,
                      "tuned lens on CUDA: the model's LM head on %s is not a dense [vocab][d] bf16/fp32 matrix",
                      m->be->name);
    ll_lg *g = calloc(1, sizeof *g);
    if (!g) return ll_err(LL_ERR_NOMEM, "tuned lens (CUDA): no memory");
    int d = t->d_model, V = data->vocab, N = data->n_rows;
    g->d = d;
    g->V = V;
    g->N = N;
    g->C = chunk;
    g->layer_norm = m->cfg.norm == LL_NORM_LAYER;
    g->eps = m->cfg.norm_eps;
    ll_lg_blas(g, cublasCreate(&g->blas), "cuBLAS handle");
    /* fp32 products exactly as asked: no TF32 behind our back. */
    if (!g->failed) ll_lg_blas(g, cublasSetMathMode(g->blas, CUBLAS_PEDANTIC_MATH), "cuBLAS math mode");
    size_t nW = (size_t)V * d, nA = (size_t)d * d;
    g->W = ll_lg_alloc(g, nW * 4, "LM head");
    if (m->be->host_memory) {
        float *hwd = malloc(nW * 4);
        if (!hwd) {
            ll_lg_free(g);
            return ll_err(LL_ERR_NOMEM, "tuned lens (CUDA): no host memory for the LM head");
        }
        for (int o = 0; o < V; o++)
            for (int i = 0; i < d; i++) hwd[(size_t)o * d + i] = ll_lg_head_w(hw, o, i);
        ll_lg_up(g, g->W, hwd, nW * 4, "LM head upload");
        free(hwd);
        g->nw = ll_lg_alloc(g, (size_t)d * 4, "final norm weight");
        ll_lg_up(g, g->nw, m->w.norm_w, (size_t)d * 4, "final norm upload");
        if (m->w.norm_b) {
            g->nb = ll_lg_alloc(g, (size_t)d * 4, "final norm bias");
            ll_lg_up(g, g->nb, m->w.norm_b, (size_t)d * 4, "final norm upload");
        }
        g->nw_use = g->nw;
        g->nb_use = g->nb;
    } else {
        if (g->W && hw->dtype == LL_BF16)
            ll_lg_cu(g, ll_k_lens_bf16_to_f32(g->W, (const uint16_t *)hw->w, nW, 0), "LM head widening");
        else if (g->W)
            ll_lg_cu(g, cudaMemcpy(g->W, hw->w, nW * 4, cudaMemcpyDeviceToDevice), "LM head copy");
        g->nw_use = m->w.norm_w;
        g->nb_use = m->w.norm_b;
    }
    g->T = ll_lg_alloc(g, (size_t)N * V * 4, "target logits");
    ll_lg_up(g, g->T, data->logits, (size_t)N * V * 4, "target logits upload");
    g->H = ll_lg_alloc(g, (size_t)N * d * 4, "layer rows");
    g->iota = ll_lg_alloc(g, (size_t)N * 4, "row ids");
    if (!g->failed) {
        int32_t *io = malloc((size_t)N * 4);
        if (!io) {
            ll_lg_free(g);
            return ll_err(LL_ERR_NOMEM, "tuned lens (CUDA): no memory");
        }
        for (int i = 0; i < N; i++) io[i] = i;
        ll_lg_up(g, g->iota, io, (size_t)N * 4, "row ids upload");
        free(io);
    }
    size_t C = (size_t)chunk;
    g->X = ll_lg_alloc(g, C * d * 4, "scratch X");
    g->U = ll_lg_alloc(g, C * d * 4, "scratch U");
    g->Y = ll_lg_alloc(g, C * d * 4, "scratch Y");
    g->GY = ll_lg_alloc(g, C * d * 4, "scratch GY");
    g->GU = ll_lg_alloc(g, C * d * 4, "scratch GU");
    g->Z = ll_lg_alloc(g, C * V * 4, "scratch logits");
    g->mu = ll_lg_alloc(g, C * 8, "scratch mu");
    g->sig = ll_lg_alloc(g, C * 8, "scratch sigma");
    g->kl = ll_lg_alloc(g, (size_t)(N > chunk ? N : chunk) * 8, "scratch KL");
    g->acc = ll_lg_alloc(g, 8, "scratch norm");
    g->A = ll_lg_alloc(g, nA * 4, "A");
    g->dA = ll_lg_alloc(g, nA * 4, "dA");
    g->vA = ll_lg_alloc(g, nA * 4, "momentum A");
    g->b = ll_lg_alloc(g, (size_t)d * 4, "b");
    g->db = ll_lg_alloc(g, (size_t)d * 4, "db");
    g->vb = ll_lg_alloc(g, (size_t)d * 4, "momentum b");
    g->rows = ll_lg_alloc(g, (max_rows ? max_rows : 1) * 4, "row lists");
    ll_status st = ll_lg_status(g);
    if (st) {
        ll_lg_free(g);
        return st;
    }
    *out = g;
    return LL_OK;
}

/* The layer's rows and translator onto the device. */
static void ll_lg_layer(ll_lg *g, const ll_tuned_lens *t, const ll_lens_data *data, int l) {
    size_t d = (size_t)g->d;
    ll_lg_up(g, g->H, data->h + (size_t)l * g->N * d, (size_t)g->N * d * 4, "layer rows upload");
    ll_lg_up(g, g->A, t->A + (size_t)l * d * d, d * d * 4, "A upload");
    ll_lg_up(g, g->b, t->b + (size_t)l * d, d * 4, "b upload");
}

/* One pass over n <= C rows (device ids): per-row KL into kl; with grad, dA and db of the
 * mean over inv_n^-1 rows, added to what is there when accumulate. */
static void ll_lg_pass(ll_lg *g, const int32_t *rows, int n, double *kl, double inv_n, int grad, int accumulate) {
    if (g->failed || n <= 0) return;
    int d = g->d, V = g->V;
    const float one = 1.0f, zero = 0.0f, beta = accumulate ? 1.0f : 0.0f;
    ll_lg_cu(g, ll_k_lens_gather(g->X, g->U, g->H, rows, g->b, n, d, 0), "gather");
    /* U^T (d x n) += A (d x d) X^T: row-major A read as column-major is A^T, hence op T. */
    ll_lg_blas(g, cublasSgemm(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, d, n, d, &one, g->A, d, g->X, d, &one, g->U, d),
               "sgemm A h");
    ll_lg_cu(g, ll_k_lens_norm_fwd(g->Y, g->mu, g->sig, g->U, g->nw_use, g->nb_use, g->layer_norm, n, d, g->eps, 0),
             "final norm");
    /* Z^T (V x n) = W (V x d) Y^T. */
    ll_lg_blas(g, cublasSgemm(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, V, n, d, &one, g->W, d, g->Y, d, &zero, g->Z, V),
               "sgemm LM head");
    ll_lg_cu(g, ll_k_lens_kl(kl, g->Z, g->T, rows, n, V, grad, inv_n, 0), "softmax / KL");
    if (!grad) return;
    /* GY^T (d x n) = W^T (d x V) G^T. */
    ll_lg_blas(g, cublasSgemm(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, d, n, V, &one, g->W, d, g->Z, V, &zero, g->GY, d),
               "sgemm LM head backward");
    ll_lg_cu(g, ll_k_lens_norm_bwd(g->GU, g->GY, g->U, g->mu, g->sig, g->nw_use, g->layer_norm, n, d, 0),
             "final norm backward");
    /* dA^T (d x d) = X^T (d x n) GU: dA[i][j] = sum_k GU[k][i] X[k][j]. */
    ll_lg_blas(g, cublasSgemm(g->blas, CUBLAS_OP_N, CUBLAS_OP_T, d, d, n, &one, g->X, d, g->GU, d, &beta, g->dA, d),
               "sgemm dA");
    ll_lg_cu(g, ll_k_lens_colsum(g->db, g->GU, n, d, accumulate, 0), "db");
}

/* Mean KL (and with grad the mean gradient) over n rows given as device ids, in passes. */
static double ll_lg_rows(ll_lg *g, const int32_t *rows, int n, int grad) {
    for (int c0 = 0; c0 < n; c0 += g->C) {
        int cn = n - c0 < g->C ? n - c0 : g->C;
        ll_lg_pass(g, rows + c0, cn, g->kl + c0, 1.0 / n, grad, c0 > 0);
    }
    double *h = malloc((size_t)(n ? n : 1) * sizeof *h);
    if (!h) {
        ll_lg_fail(g, "KL read-back", "no host memory");
        return 0;
    }
    ll_lg_down(g, h, g->kl, (size_t)n * 8, "KL read-back");
    double s = 0;
    for (int i = 0; i < n && !g->failed; i++) s += h[i];
    free(h);
    return n ? s / n : 0;
}

bool ll_tuned_lens_cuda_built(void) { return true; }

ll_status ll_tuned_lens_grad_cuda(const ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data, int layer,
                                  const int *rows, int n, double *kl, float *dA, float *db) {
    if (layer < 0 || layer >= t->n_layers) return ll_err(LL_ERR_ARG, "tuned lens: layer %d has no translator", layer);
    if (n < 1 || !dA || !db) return ll_err(LL_ERR_ARG, "tuned lens: gradient needs rows and outputs");
    for (int k = 0; rows && k < n; k++)
        if (rows[k] < 0 || rows[k] >= data->n_rows)
            return ll_err(LL_ERR_ARG, "tuned lens: row %d outside 0..%d", rows[k], data->n_rows - 1);
    ll_lg *g;
    LL_TRY(ll_lg_new(&g, t, m, data, n < LL_LG_CHUNK ? n : LL_LG_CHUNK, (size_t)n));
    int32_t *r32 = malloc((size_t)n * 4);
    if (!r32) {
        ll_lg_free(g);
        return ll_err(LL_ERR_NOMEM, "tuned lens (CUDA): no memory");
    }
    for (int k = 0; k < n; k++) r32[k] = rows ? rows[k] : k;
    ll_lg_up(g, g->rows, r32, (size_t)n * 4, "row ids upload");
    free(r32);
    ll_lg_layer(g, t, data, layer);
    double v = ll_lg_rows(g, g->rows, n, 1);
    size_t d = (size_t)g->d;
    ll_lg_down(g, dA, g->dA, d * d * 4, "dA read-back");
    ll_lg_down(g, db, g->db, d * 4, "db read-back");
    ll_status st = ll_lg_status(g);
    if (!st && kl) *kl = v;
    ll_lg_free(g);
    return st;
}

ll_status ll_tuned_lens_kl_cuda(const ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data, double *kl) {
    ll_lg *g;
    int N = data->n_rows;
    LL_TRY(ll_lg_new(&g, t, m, data, N < LL_LG_CHUNK ? N : LL_LG_CHUNK, 0));
    for (int l = 0; l < t->n_layers && !g->failed; l++) {
        ll_lg_layer(g, t, data, l);
        kl[l] = ll_lg_rows(g, g->iota, N, 0);
    }
    ll_status st = ll_lg_status(g);
    ll_lg_free(g);
    return st;
}

ll_status ll_tuned_lens_train_cuda(ll_tuned_lens *t, const ll_model *m, const ll_lens_data *data,
                                   const ll_tuned_lens_train_opts *opts, double *kl_before, double *kl_after) {
    ll_tuned_lens_train_opts o = opts ? *opts : (ll_tuned_lens_train_opts){0};
    ll_tuned_lens_train_defaults(&o);
    int d = t->d_model, L = t->n_layers, N = data->n_rows;
    int B = o.batch < N ? o.batch : N;
    int C = B > LL_LG_CHUNK ? B : (N < LL_LG_CHUNK ? N : LL_LG_CHUNK);
    size_t nA = (size_t)d * d;
    /* All the row draws of one layer at once: the same sequence the CPU path draws step by
     * step (nothing else uses the generator), uploaded once per layer. */
    size_t n_ids = (size_t)o.steps * B;
    int32_t *ids = malloc(n_ids * sizeof *ids);
    if (!ids) return ll_err(LL_ERR_NOMEM, "tuned lens (CUDA): no memory for %zu row ids", n_ids);
    ll_lg *g;
    ll_status st = ll_lg_new(&g, t, m, data, C, n_ids);
    if (st) {
        free(ids);
        return st;
    }
    ll_rng rng = {o.seed ? o.seed : 0x5eed};
    double *klh = malloc((size_t)B * sizeof *klh);
    if (!klh) ll_lg_fail(g, "training", "no host memory");
    for (int l = 0; l < L && !g->failed; l++) {
        ll_lg_layer(g, t, data, l);
        if (kl_before) kl_before[l] = ll_lg_rows(g, g->iota, N, 0);
        for (size_t i = 0; i < n_ids; i++) ids[i] = B == N ? (int32_t)(i % (size_t)B) : ll_rng_int(&rng, N);
        ll_lg_up(g, g->rows, ids, n_ids * 4, "row ids upload");
        ll_lg_cu(g, cudaMemset(g->vA, 0, nA * 4), "momentum reset");
        ll_lg_cu(g, cudaMemset(g->vb, 0, (size_t)d * 4), "momentum reset");
        for (int s = 0; s < o.steps && !g->failed; s++) {
            ll_lg_pass(g, g->rows + (size_t)s * B, B, g->kl, 1.0 / B, 1, 0);
            ll_lg_cu(g, cudaMemsetAsync(g->acc, 0, 8, 0), "norm reset");
            ll_lg_cu(g, ll_k_lens_decay_sq(g->dA, g->A, o.weight_decay, nA, g->acc, 0), "weight decay");
            ll_lg_cu(g, ll_k_lens_decay_sq(g->db, NULL, 0.0f, (size_t)d, g->acc, 0), "gradient norm");
            float lr = o.lr * (1.0f - (float)s / (float)o.steps);
            ll_lg_cu(g, ll_k_lens_sgd(g->A, g->vA, g->dA, nA, g->acc, o.clip, lr, o.momentum, 0), "update A");
            ll_lg_cu(g, ll_k_lens_sgd(g->b, g->vb, g->db, (size_t)d, g->acc, o.clip, lr, o.momentum, 0), "update b");
            if (o.progress && (s + 1 == o.steps || s % 25 == 0)) {
                /* The batch KL before this step's update, as the CPU path reports it. */
                ll_lg_down(g, klh, g->kl, (size_t)B * 8, "KL read-back");
                double kl = 0;
                for (int k = 0; k < B; k++) kl += klh[k];
                if (!g->failed) o.progress(o.user, l, s + 1, o.steps, kl / B);
            }
        }
        if (kl_after) kl_after[l] = ll_lg_rows(g, g->iota, N, 0);
        ll_lg_down(g, t->A + (size_t)l * nA, g->A, nA * 4, "A read-back");
        ll_lg_down(g, t->b + (size_t)l * d, g->b, (size_t)d * 4, "b read-back");
    }
    st = ll_lg_status(g);
    ll_lg_free(g);
    free(ids);
    free(klh);
    return st;
}
