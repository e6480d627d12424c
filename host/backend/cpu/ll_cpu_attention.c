/* Causal multi-head attention with GQA over ragged sequences and a KV cache.
 *
 * Work is split over (sequence, KV head, block of query rows) so short and long
 * sequences share the threads. A work item walks the keys its rows can see in
 * chunks of LL_KC: each chunk is copied once, transposed, into a private tile
 * Kt[hd][keys], and every query vector of the item (its rows x the query heads of
 * the GQA group) computes its scores from that tile with the vector lanes running
 * over keys. Each score is still the plain left-to-right fp32 sum over the head
 * dimension, exactly what a scalar loop computes, so results do not depend on
 * the vector width, the chunking or the blocking. Likewise z is accumulated key by
 * key in order, lanes running over the head dimension. Softmax is the scalar
 * expf / double-sum loop. Knocked-out keys (ll_attn_knock) get a score of -inf
 * before it, one pointer test per row when there are none. The T x T matrix is never built unless the caller asked
 * for the attention pattern. Small problems (single-token decode) run on the
 * calling thread: waking the OpenMP team costs more than the work. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ll_cpu.h"

#define LL_VW 4              /* floats per vector: SSE2, the x86-64 baseline */
#define LL_KB 32             /* keys per score block: 8 vector accumulators (LL_ACC8) */
#define LL_KC 256            /* keys per transposed chunk */
#define LL_QB 32             /* query vectors (rows x group heads) per work item, at most */
#define LL_PAR_MIN (1 << 20) /* multiply-adds below which attention stays on one thread */

/* GCC/Clang vector extension: lane-wise IEEE fp32 operations, no intrinsics. The
 * aligned(4) variant reads and writes unaligned rows (vectors of float may alias float). */
typedef float ll_v4 __attribute__((vector_size(LL_VW * sizeof(float))));
typedef float ll_v4u __attribute__((vector_size(LL_VW * sizeof(float)), aligned(4)));
#define LL_LD(p) (*(const ll_v4u *)(p))
#define LL_ST(p, v) (*(ll_v4u *)(p) = (v))
/* a_u = a_u + b * p[4u .. 4u+3] for u = 0..7, written out so the accumulators stay in registers. */
#define LL_ACC8(p)                                                                                                \
    do {                                                                                                          \
        a0 = a0 + b * LL_LD((p));                                                                                 \
        a1 = a1 + b * LL_LD((p) + 4);                                                                             \
        a2 = a2 + b * LL_LD((p) + 8);                                                                             \
        a3 = a3 + b * LL_LD((p) + 12);                                                                            \
        a4 = a4 + b * LL_LD((p) + 16);                                                                            \
        a5 = a5 + b * LL_LD((p) + 20);                                                                            \
        a6 = a6 + b * LL_LD((p) + 24);                                                                            \
        a7 = a7 + b * LL_LD((p) + 28);                                                                            \
    } while (0)
#define LL_ST8(p, op)                                                                                             \
    do {                                                                                                          \
        LL_ST((p), a0 op);                                                                                        \
        LL_ST((p) + 4, a1 op);                                                                                    \
        LL_ST((p) + 8, a2 op);                                                                                    \
        LL_ST((p) + 12, a3 op);                                                                                   \
        LL_ST((p) + 16, a4 op);                                                                                   \
        LL_ST((p) + 20, a5 op);                                                                                   \
        LL_ST((p) + 24, a6 op);                                                                                   \
        LL_ST((p) + 28, a7 op);                                                                                   \
    } while (0)

/* sc[c] = (sum_i q[i] * Kt[i][c]) * scale for c0 <= c < c1, c1 - c0 a multiple of LL_KB
 * (Kt and sc have room). For each column the sum runs i = 0, 1, ... in fp32 from 0. */
static void ll_scores(float *sc, const float *q, const float *Kt, int ldk, int hd, int c0, int c1, float scale) {
    for (int c = c0; c < c1; c += LL_KB) {
        ll_v4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
        const float *kt = Kt + c;
        for (int i = 0; i < hd; i++, kt += ldk) {
            float b = q[i];
            LL_ACC8(kt);
        }
        LL_ST8(sc + c, *scale);
    }
}

/* z[i] = sum_{c = c0..c1} p[c] * V[c][i], summed over c in order, starting from 0. */
static void ll_mix(float *z, const float *p, const float *V, size_t ldv, int hd, int c0, int c1) {
    int i = 0;
    for (; i + LL_KB <= hd; i += LL_KB) {
        ll_v4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
        const float *v = V + (size_t)c0 * ldv + i;
        for (int c = c0; c <= c1; c++, v += ldv) {
            float b = p[c];
            LL_ACC8(v);
        }
        LL_ST8(z + i, );
    }
    for (; i + LL_VW <= hd; i += LL_VW) {
        ll_v4 a0 = {0};
        const float *v = V + (size_t)c0 * ldv + i;
        for (int c = c0; c <= c1; c++, v += ldv) a0 = a0 + p[c] * LL_LD(v);
        LL_ST(z + i, a0);
    }
    for (; i < hd; i++) {
        float a = 0;
        const float *v = V + (size_t)c0 * ldv + i;
        for (int c = c0; c <= c1; c++, v += ldv) a += p[c] * *v;
        z[i] = a;
    }
}

/* First key index query index qi may see. */
static inline int ll_first_key(const ll_attn_args *a, int qi) {
    return (a->sliding_window > 0 && qi - a->sliding_window + 1 > 0) ? qi - a->sliding_window + 1 : 0;
}

/* Rows r0..r1-1 of sequence s, every query head of KV head kh.
 * Kt: [hd][LL_KC + LL_KB]; S: [(r1 - r0) * group][lds] scores, column c = key index - lo0. */
static void ll_attn_block(const ll_attn_args *a, int s, int kh, int r0, int r1, float *Kt, float *S, size_t lds) {
    int past = a->n_past ? a->n_past[s] : 0;
    int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    int lo0 = ll_first_key(a, past + r0), hi = past + r1 - 1; /* keys some row of the block sees */
    int n = hi - lo0 + 1;
    const int ldk = LL_KC + LL_KB;
    const float *K = a->k[s] + (size_t)kh * hd + (size_t)lo0 * a->kv_stride;
    const float *V = a->v[s] + (size_t)kh * hd + (size_t)lo0 * a->kv_stride;
    int64_t row0 = a->seq_off[s];

    /* 1. scores, one chunk of keys at a time */
    for (int cc = 0; cc < n; cc += LL_KC) {
        int m = n - cc < LL_KC ? n - cc : LL_KC;
        for (int j = 0; j < m; j++) {
            const float *k = K + (size_t)(cc + j) * a->kv_stride;
            for (int i = 0; i < hd; i++) Kt[(size_t)i * ldk + j] = k[i];
        }
        for (int i = 0; i < hd; i++) memset(Kt + (size_t)i * ldk + m, 0, (size_t)(ldk - m) * sizeof(float));
        for (int r = r0; r < r1; r++) {
            int qi = past + r;
            int c0 = ll_first_key(a, qi) - lo0, c1 = qi - lo0;
            int b0 = c0 > cc ? c0 : cc, b1 = c1 < cc + m - 1 ? c1 : cc + m - 1;
            if (b0 > b1) continue;
            /* Blocks run from b0 in steps of LL_KB: at most LL_KB - 1 columns past the chunk,
             * which land in the tile's zero padding and are overwritten by the next chunk. */
            int bend = b0 + (b1 - b0 + LL_KB) / LL_KB * LL_KB;
            for (int g = 0; g < group; g++) {
                const float *q = a->q + ((size_t)(row0 + r) * a->n_heads + (size_t)(kh * group + g)) * hd;
                float *sc = S + (size_t)((r - r0) * group + g) * lds;
                ll_scores(sc + cc, q, Kt, ldk, hd, b0 - cc, bend - cc, a->scale);
            }
        }
    }

    /* 2. softmax and the mix of values, per row and head */
    int n_new = (int)(a->seq_off[s + 1] - a->seq_off[s]);
    const int32_t *ko_rows = a->knock ? a->knock->row_mask[s] : NULL; /* NULL: nothing blocked in s */
    for (int r = r0; r < r1; r++) {
        int qi = past + r;
        int lo = ll_first_key(a, qi);
        int c0 = lo - lo0, c1 = qi - lo0;
        for (int g = 0; g < group; g++) {
            int h = kh * group + g;
            float *sc = S + (size_t)((r - r0) * group + g) * lds;
            if (ko_rows) {
                int32_t mi = ko_rows[(size_t)h * n_new + r];
                if (mi >= 0) {
                    const uint32_t *km = a->knock->mask[s] + (size_t)mi * a->knock->words[s];
                    for (int c = c0; c <= c1; c++) {
                        int j = c + lo0;
                        if (km[j >> 5] >> (j & 31) & 1u) sc[c] = -INFINITY;
                    }
                }
            }
            float mx = -FLT_MAX;
            for (int c = c0; c <= c1; c++)
                if (sc[c] > mx) mx = sc[c];
            double sum = 0;
            for (int c = c0; c <= c1; c++) {
                sc[c] = expf(sc[c] - mx);
                sum += sc[c];
            }
            /* sum is 0 only when a knockout blocked every visible key: the row attends to
             * nothing (all weights 0, z = 0). Without knockouts the row's own key keeps it > 0. */
            float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f;
            for (int c = c0; c <= c1; c++) sc[c] = sc[c] * inv;
            ll_mix(a->z + ((size_t)(row0 + r) * a->n_heads + h) * hd, sc, V, (size_t)a->kv_stride, hd, c0, c1);
            if (a->pattern && a->pattern[s]) {
                int nk = past + n_new;
                float *pr = a->pattern[s] + ((size_t)h * n_new + r) * nk;
                for (int j = 0; j < nk; j++) pr[j] = (j >= lo && j <= qi) ? sc[j - lo0] : 0.0f;
            }
        }
    }
}

void ll_cpu_attention(const ll_attn_args *a) {
    int Hkv = a->n_kv_heads, group = a->n_heads / a->n_kv_heads;
    int rb = LL_QB / group > 0 ? LL_QB / group : 1; /* query rows per work item */
    /* Work items: per sequence, Hkv x ceil(n_new / rb); unit_off is their prefix sum. */
    int64_t *unit_off = malloc((size_t)(a->n_seq + 1) * sizeof *unit_off);
    if (!unit_off) return;
    int max_keys = 1;
    double work = 0;
    unit_off[0] = 0;
    for (int s = 0; s < a->n_seq; s++) {
        int n_new = (int)(a->seq_off[s + 1] - a->seq_off[s]);
        int n = n_new + (a->n_past ? a->n_past[s] : 0);
        if (n > max_keys) max_keys = n;
        unit_off[s + 1] = unit_off[s] + (int64_t)Hkv * ((n_new + rb - 1) / rb);
        work += (double)n_new * n * a->n_heads * a->head_dim;
    }
    int64_t n_units = unit_off[a->n_seq];
    size_t lds = (size_t)max_keys + 2 * LL_KB; /* score row: the keys, plus one block of overrun */
    size_t s_floats = (size_t)rb * (size_t)group * lds;
    size_t kt_floats = (size_t)a->head_dim * (LL_KC + LL_KB);
#pragma omp parallel if (work >= LL_PAR_MIN)
    {
        float *Kt = malloc(kt_floats * sizeof(float));
        float *S = malloc(s_floats * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < n_units; u++) {
            int lo = 0, hi = a->n_seq - 1; /* the sequence s with unit_off[s] <= u < unit_off[s + 1] */
            while (lo < hi) {
                int mid = (lo + hi + 1) / 2;
                if (unit_off[mid] <= u) lo = mid;
                else hi = mid - 1;
            }
            int s = lo;
            int64_t k = u - unit_off[s];
            int kh = (int)(k % Hkv), blk = (int)(k / Hkv);
            int n_new = (int)(a->seq_off[s + 1] - a->seq_off[s]);
            int r0 = blk * rb, r1 = r0 + rb < n_new ? r0 + rb : n_new;
            if (Kt && S) ll_attn_block(a, s, kh, r0, r1, Kt, S, lds);
        }
        free(Kt);
        free(S);
    }
    free(unit_off);
}
