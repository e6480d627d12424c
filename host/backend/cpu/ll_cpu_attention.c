/* Causal multi-head attention with GQA over ragged sequences and a KV cache.
 *
 * Work is split over (sequence, head, query row) so short and long sequences
 * share the threads. Scores for one query live in a private buffer; the T x T
 * matrix is never built unless the caller asked for the attention pattern. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "ll_cpu.h"

static void ll_attn_row(const ll_attn_args *a, int s, int h, int r, float *sc) {
    int64_t row = a->seq_off[s] + r;
    int past = a->n_past ? a->n_past[s] : 0;
    int qi = past + r; /* index of this query in its sequence */
    int lo = 0;
    if (a->sliding_window > 0 && qi - a->sliding_window + 1 > 0) lo = qi - a->sliding_window + 1;
    int group = a->n_heads / a->n_kv_heads;
    int kh = h / group;
    int hd = a->head_dim;
    const float *q = a->q + ((size_t)row * a->n_heads + h) * hd;
    const float *K = a->k[s] + (size_t)kh * hd;
    const float *V = a->v[s] + (size_t)kh * hd;
    float mx = -FLT_MAX;
    for (int j = lo; j <= qi; j++) {
        const float *k = K + (size_t)j * a->kv_stride;
        float dot = 0;
        for (int i = 0; i < hd; i++) dot += q[i] * k[i];
        dot *= a->scale;
        sc[j] = dot;
        if (dot > mx) mx = dot;
    }
    double sum = 0;
    for (int j = lo; j <= qi; j++) {
        sc[j] = expf(sc[j] - mx);
        sum += sc[j];
    }
    float inv = (float)(1.0 / sum);
    float *z = a->z + ((size_t)row * a->n_heads + h) * hd;
    for (int i = 0; i < hd; i++) z[i] = 0;
    for (int j = lo; j <= qi; j++) {
        float p = sc[j] * inv;
        sc[j] = p;
        const float *v = V + (size_t)j * a->kv_stride;
        for (int i = 0; i < hd; i++) z[i] += p * v[i];
    }
    if (a->pattern && a->pattern[s]) {
        int n_new = (int)(a->seq_off[s + 1] - a->seq_off[s]);
        int nk = past + n_new;
        float *pr = a->pattern[s] + ((size_t)h * n_new + r) * nk;
        for (int j = 0; j < nk; j++) pr[j] = (j >= lo && j <= qi) ? sc[j] : 0.0f;
    }
}

void ll_cpu_attention(const ll_attn_args *a) {
    int max_keys = 1;
    for (int s = 0; s < a->n_seq; s++) {
        int n = (int)(a->seq_off[s + 1] - a->seq_off[s]) + (a->n_past ? a->n_past[s] : 0);
        if (n > max_keys) max_keys = n;
    }
    int H = a->n_heads;
#pragma omp parallel
    {
        float *sc = malloc((size_t)max_keys * sizeof(float));
        /* One flat index over every (row, head) pair keeps all threads busy however ragged the batch. */
#pragma omp for schedule(dynamic, 4)
        for (int64_t idx = 0; idx < (int64_t)a->T * H; idx++) {
            int64_t row = idx / H;
            int h = (int)(idx % H);
            int s = 0;
            while (a->seq_off[s + 1] <= row) s++;
            if (sc) ll_attn_row(a, s, h, (int)(row - a->seq_off[s]), sc);
        }
        free(sc);
    }
}
