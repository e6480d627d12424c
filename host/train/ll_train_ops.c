/* CPU forward/backward operations of the trainer (see ll_train_ops.h). The matrix
 * products go through OpenBLAS; everything else is plain loops, parallel only where
 * each thread owns its outputs so that results do not depend on scheduling. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ll_train_ops.h"

void ll_top_matmul(float *y, const float *x, const float *W, int N, int in, int out) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, x, in, W, in, 0.0f, y, out);
}

void ll_top_matmul_bwd(float *dx, int acc_dx, float *dW, const float *dy, const float *x, const float *W, int N,
                       int in, int out) {
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy, out, W, in, acc_dx ? 1.0f : 0.0f,
                    dx, in);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
}

void ll_top_embed(float *x, const float *E, const int32_t *tok, int N, int d) {
    for (int n = 0; n < N; n++) memcpy(x + (size_t)n * d, E + (size_t)tok[n] * d, (size_t)d * sizeof(float));
}

void ll_top_embed_bwd(float *dE, const float *dx, const int32_t *tok, int N, int d) {
    /* Serial: rows sharing a token add into the same embedding row. */
    for (int n = 0; n < N; n++) {
        float *e = dE + (size_t)tok[n] * d;
        const float *g = dx + (size_t)n * d;
        for (int i = 0; i < d; i++) e[i] += g[i];
    }
}

void ll_top_rmsnorm(float *y, float *rstd, const float *x, const float *w, int N, int d, float eps) {
#pragma omp parallel for schedule(static) if (N > 64)
    for (int n = 0; n < N; n++) {
        const float *r = x + (size_t)n * d;
        float ss = 0;
        for (int i = 0; i < d; i++) ss += r[i] * r[i];
        float s = 1.0f / sqrtf(ss / (float)d + eps);
        rstd[n] = s;
        float *o = y + (size_t)n * d;
        for (int i = 0; i < d; i++) o[i] = w[i] * (r[i] * s);
    }
}

void ll_top_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                        int N, int d) {
    /* With xh = x * s and s = (mean x^2 + eps)^-1/2: dx = s * (dy*w - xh * mean(dy*w*xh)). */
#pragma omp parallel for schedule(static) if (N > 64)
    for (int n = 0; n < N; n++) {
        const float *r = x + (size_t)n * d, *g = dy + (size_t)n * d;
        float s = rstd[n], dot = 0;
        for (int i = 0; i < d; i++) dot += g[i] * w[i] * r[i] * s;
        dot /= (float)d;
        float *o = dx + (size_t)n * d;
        for (int i = 0; i < d; i++) o[i] = s * (g[i] * w[i] - r[i] * s * dot);
    }
    for (int n = 0; n < N; n++) {
        const float *r = x + (size_t)n * d, *g = dy + (size_t)n * d;
        float s = rstd[n];
        for (int i = 0; i < d; i++) dw[i] += g[i] * r[i] * s;
    }
}

void ll_top_rope_table(float *tab, int T, int hd, float theta) {
    int half = hd / 2;
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            float inv = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
            float ang = (float)t * inv;
            tab[(size_t)t * hd + i] = (float)cos((double)ang);
            tab[(size_t)t * hd + half + i] = (float)sin((double)ang);
        }
    }
}

void ll_top_rope(float *x, const float *tab, int B, int T, int n_heads, int hd, int inverse) {
    int half = hd / 2;
    float sg = inverse ? -1.0f : 1.0f;
#pragma omp parallel for schedule(static) if (B * T > 64)
    for (int n = 0; n < B * T; n++) {
        const float *cs = tab + (size_t)(n % T) * hd, *sn = cs + half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)n * n_heads + h) * hd;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half], s = sg * sn[i];
                v[i] = a * cs[i] - b * s;
                v[i + half] = b * cs[i] + a * s;
            }
        }
    }
}

/* Attention inner loops run over keys (j) on transposed K/V tiles, so that they are
 * plain multiply-adds over contiguous floats that the compiler vectorizes without
 * reordering a sum; target_clones gives AVX-512 and AVX2 builds picked at load time on
 * the CPU that runs them, with a portable default. One (sequence, head) per call. */
#define LL_TOP_SIMD __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

/* dst[0..hd) = sum_j coef[j] * rows[j * stride + 0..hd), j < n: the probability-weighted
 * sum of V rows (forward) and of K rows (dQ). Always inlined, so that each target clone of
 * its caller vectorizes it for its own instruction set. */
static inline __attribute__((always_inline)) void ll_top_weighted_rows(float *dst, const float *coef,
                                                                       const float *rows, int n, int hd,
                                                                       size_t stride) {
    for (int i = 0; i < hd; i++) dst[i] = 0;
    for (int j = 0; j < n; j++) {
        const float *r = rows + (size_t)j * stride;
        float a = coef[j];
#pragma omp simd
        for (int i = 0; i < hd; i++) dst[i] += a * r[i];
    }
}

/* dst[i * T + j] = src[j * stride + i] for j < T, i < hd. */
static void ll_top_transpose(float *dst, const float *src, int T, int hd, size_t stride) {
    for (int j = 0; j < T; j++)
        for (int i = 0; i < hd; i++) dst[(size_t)i * T + j] = src[(size_t)j * stride + i];
}

LL_TOP_SIMD
static void ll_top_attention_head(float *out, float *probs, const float *q, const float *kt, const float *v, int T,
                                  int hd, size_t qw, size_t kw, float scale) {
    for (int t = 0; t < T; t++) {
        const float *qr = q + (size_t)t * qw;
        float *p = probs + (size_t)t * T;
        int n = t + 1;
        for (int j = 0; j < n; j++) p[j] = 0;
        for (int i = 0; i < hd; i++) {
            const float *kr = kt + (size_t)i * T;
            float a = qr[i];
#pragma omp simd
            for (int j = 0; j < n; j++) p[j] += a * kr[j];
        }
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) {
            p[j] *= scale;
            mx = p[j] > mx ? p[j] : mx;
        }
        float sum = 0;
        for (int j = 0; j < n; j++) {
            p[j] = expf(p[j] - mx);
            sum += p[j];
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (int j = 0; j < n; j++) p[j] *= inv;
        for (int j = n; j < T; j++) p[j] = 0;
        ll_top_weighted_rows(out + (size_t)t * qw, p, v, n, hd, kw);
    }
}

int ll_top_attention(float *out, float *probs, const float *q, const float *k, const float *v, int B, int T, int H,
                     int KV, int hd) {
    int grp = H / KV, failed = 0;
    size_t qw = (size_t)H * hd, kw = (size_t)KV * hd;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
        float *kt = malloc((size_t)hd * T * sizeof(float));
        if (!kt) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int kh = 0; kh < KV; kh++) {
                if (!kt) continue;
                const float *kb = k + (size_t)b * T * kw + (size_t)kh * hd;
                ll_top_transpose(kt, kb, T, hd, kw);
                for (int h = kh * grp; h < (kh + 1) * grp; h++)
                    ll_top_attention_head(out + (size_t)b * T * qw + (size_t)h * hd, probs + ((size_t)b * H + h) * T * T,
                                          q + (size_t)b * T * qw + (size_t)h * hd, kt,
                                          v + (size_t)b * T * kw + (size_t)kh * hd, T, hd, qw, kw, scale);
            }
        }
        free(kt);
    }
    return failed ? -1 : 0;
}

/* Backward of one query head into the transposed dK/dV tiles of its kv head (dkt, dvt:
 * hd x T, accumulated over the group's heads). */
LL_TOP_SIMD
static void ll_top_attention_head_bwd(float *dq, float *dkt, float *dvt, float *ds, const float *dout,
                                      const float *probs, const float *q, const float *k, const float *vt, int T, int hd,
                                      size_t qw, size_t kw, float scale) {
    for (int t = 0; t < T; t++) {
        const float *p = probs + (size_t)t * T, *go = dout + (size_t)t * qw, *qr = q + (size_t)t * qw;
        int n = t + 1;
        /* ds = dP = dO V^T over the keys; dV^T += dO p^T. */
        for (int j = 0; j < n; j++) ds[j] = 0;
        for (int i = 0; i < hd; i++) {
            const float *vr = vt + (size_t)i * T;
            float *dvr = dvt + (size_t)i * T;
            float a = go[i];
#pragma omp simd
            for (int j = 0; j < n; j++) {
                ds[j] += a * vr[j];
                dvr[j] += a * p[j];
            }
        }
        float dot = 0;
        for (int j = 0; j < n; j++) dot += p[j] * ds[j];
        /* Softmax backward, scaled: g_j = p_j (dP_j - sum p dP) / sqrt(hd). */
#pragma omp simd
        for (int j = 0; j < n; j++) ds[j] = p[j] * (ds[j] - dot) * scale;
        ll_top_weighted_rows(dq + (size_t)t * qw, ds, k, n, hd, kw);
        for (int i = 0; i < hd; i++) {
            float *dkr = dkt + (size_t)i * T;
            float a = qr[i];
#pragma omp simd
            for (int j = 0; j < n; j++) dkr[j] += a * ds[j];
        }
    }
}

int ll_top_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                         const float *k, const float *v, int B, int T, int H, int KV, int hd) {
    int grp = H / KV, failed = 0;
    size_t qw = (size_t)H * hd, kw = (size_t)KV * hd;
    float scale = 1.0f / sqrtf((float)hd);
    /* One task per (sequence, kv head): the query heads sharing a kv head add into the
     * same dK/dV tiles, so they run in order inside the task. */
#pragma omp parallel
    {
        size_t tile = (size_t)hd * T;
        float *vt = malloc(3 * tile * sizeof(float) + (size_t)T * sizeof(float));
        if (!vt) {
#pragma omp atomic write
            failed = 1;
        }
        float *dkt = vt ? vt + tile : NULL, *dvt = vt ? dkt + tile : NULL, *ds = vt ? dvt + tile : NULL;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++) {
            for (int kh = 0; kh < KV; kh++) {
                if (!vt) continue;
                size_t kv0 = (size_t)b * T * kw + (size_t)kh * hd;
                ll_top_transpose(vt, v + kv0, T, hd, kw);
                memset(dkt, 0, 2 * tile * sizeof(float));
                for (int h = kh * grp; h < (kh + 1) * grp; h++) {
                    size_t q0 = (size_t)b * T * qw + (size_t)h * hd;
                    ll_top_attention_head_bwd(dq + q0, dkt, dvt, ds, dout + q0, probs + ((size_t)b * H + h) * T * T,
                                              q + q0, k + kv0, vt, T, hd, qw, kw, scale);
                }
                /* Back to row layout. */
                for (int j = 0; j < T; j++)
                    for (int i = 0; i < hd; i++) {
                        dk[kv0 + (size_t)j * kw + i] = dkt[(size_t)i * T + j];
                        dv[kv0 + (size_t)j * kw + i] = dvt[(size_t)i * T + j];
                    }
            }
        }
        free(vt);
    }
    return failed ? -1 : 0;
}

static inline float ll_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

void ll_top_swiglu(float *h, const float *g, const float *u, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) h[i] = g[i] * ll_sigmoid(g[i]) * u[i];
}

void ll_top_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        /* Read dh first: callers may pass du == dh. d silu(g) / dg = s * (1 + g * (1 - s)). */
        float s = ll_sigmoid(g[i]), gh = dh[i];
        du[i] = gh * g[i] * s;
        dg[i] = gh * u[i] * s * (1.0f + g[i] * (1.0f - s));
    }
}

double ll_top_xent(float *dlogits, const float *logits, const int32_t *target, const float *w, int N, int V) {
    double wsum = 0;
    for (int n = 0; n < N; n++) wsum += w[n];
    if (dlogits) memset(dlogits, 0, (size_t)N * V * sizeof(float));
    if (wsum <= 0) return 0;
    double loss = 0;
    for (int n = 0; n < N; n++) {
        if (w[n] == 0) continue;
        const float *r = logits + (size_t)n * V;
        float mx = r[0];
        for (int i = 1; i < V; i++) mx = r[i] > mx ? r[i] : mx;
        double sum = 0;
        for (int i = 0; i < V; i++) sum += exp((double)(r[i] - mx));
        double lse = log(sum) + mx;
        loss += w[n] * (lse - r[target[n]]);
        if (dlogits) {
            float *d = dlogits + (size_t)n * V;
            float c = (float)(w[n] / wsum);
            for (int i = 0; i < V; i++) d[i] = c * (float)exp((double)r[i] - lse);
            d[target[n]] -= c;
        }
    }
    return loss / wsum;
}
