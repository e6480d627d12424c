/* Fused entropy of logits, the CPU reference: per row one pass for the max, one for
 * the exponential sums, in double, plus a running top-k. The softmax is never stored.
 *
 * With m = max and S = sum_i exp(x_i - m):
 *   lse = m + log S,   entropy = -sum p_i log p_i = log S - (sum_i exp(x_i - m)(x_i - m)) / S,
 * which needs only the two sums, so the CUDA twin can do it in a single pass with an
 * online (rescaled) version of the same sums. */
#include <math.h>
#include <stddef.h>

#include "ll_cpu.h"

/* Insert (id, v) into a descending top list of length *n <= k; ties keep the smaller id first. */
static void ll_topk_push(int32_t *ids, float *vals, int *n, int k, int32_t id, float v) {
    if (k <= 0) return;
    if (*n == k && !(v > vals[k - 1] || (v == vals[k - 1] && id < ids[k - 1]))) return;
    int i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && (v > vals[i - 1] || (v == vals[i - 1] && id < ids[i - 1]))) {
        ids[i] = ids[i - 1];
        vals[i] = vals[i - 1];
        i--;
    }
    ids[i] = id;
    vals[i] = v;
}

/* lse and entropy of x[idx[j]] (idx NULL: j itself) for j < n. */
static void ll_lse_entropy(const float *x, const int32_t *idx, int n, float *lse, float *ent, int32_t *arg) {
    float m = -INFINITY;
    int32_t a = -1;
    for (int j = 0; j < n; j++) {
        int32_t i = idx ? idx[j] : j;
        if (x[i] > m || a < 0) {
            m = x[i];
            a = i;
        }
    }
    double S = 0, Sx = 0;
    for (int j = 0; j < n; j++) {
        int32_t i = idx ? idx[j] : j;
        if (x[i] == -INFINITY) continue; /* a masked logit: probability 0, and 0 * -inf would be NaN */
        double dx = (double)x[i] - m, e = exp(dx);
        S += e;
        Sx += e * dx;
    }
    *lse = (float)(m + log(S));
    *ent = (float)(log(S) - Sx / S);
    *arg = a;
}

void ll_cpu_entropy(ll_entropy_row *out, const float *logits, int R, int V, int k, const int32_t *cands,
                    int n_cand) {
    if (k > LL_TOPK_MAX) k = LL_TOPK_MAX;
#pragma omp parallel for schedule(static) if (R > 4)
    for (int r = 0; r < R; r++) {
        const float *x = logits + (size_t)r * V;
        ll_entropy_row *o = &out[r];
        ll_lse_entropy(x, NULL, V, &o->lse, &o->entropy, &o->argmax);
        o->max = x[o->argmax];
        int n = 0;
        for (int i = 0; i < LL_TOPK_MAX; i++) {
            o->top_id[i] = -1;
            o->top_logit[i] = -INFINITY;
        }
        for (int i = 0; i < V; i++) ll_topk_push(o->top_id, o->top_logit, &n, k, i, x[i]);
        o->cand_lse = o->cand_entropy = NAN;
        o->cand_argmax = -1;
        if (cands && n_cand > 0) ll_lse_entropy(x, cands, n_cand, &o->cand_lse, &o->cand_entropy, &o->cand_argmax);
    }
}
