/* Causal attention, written by hand: flash-style (online softmax, the T x T matrix is
 * never built), GQA, ragged sequences over a KV cache, optional sliding window.
 *
 * Work: a block takes one tile of up to LL_ATT_ROWS consecutive query rows of one
 * sequence, one query head, and one of n_split ranges of the keys those rows can see.
 * Each warp owns one query row. The block walks its keys in chunks of LL_ATT_KC = 32:
 * all threads copy the chunk's keys and values into shared memory (coalesced along the
 * head dimension), then each warp scores the chunk with one key per lane, updates its
 * row's running max m and sum l, rescales its accumulator and adds the chunk's values
 * (each lane owns head dimensions lane, lane + 32, ...).
 *
 * Prefill uses n_split = 1 and writes z directly. Decode (a few rows, many keys) would
 * leave most of the chip idle, so the host picks n_split > 1: each block then writes its
 * unnormalised partial state (acc, m, l) and ll_attn_combine merges the splits.
 *
 * Both kernels also store each row's final (m, l), from which ll_attn_pattern_kernel
 * recomputes the softmax probabilities when a hook asked for the attention pattern.
 *
 * Knockouts (ll_k_attn_seq.ko_row): a blocked key is treated like one outside the causal
 * window. A row with every key blocked keeps m = -inf, l = 0 and gets z = 0. */
#include <math.h>

#include "ll_k_common.cuh"
#include "ll_kernels.h"

#define LL_ATT_THREADS (LL_ATT_ROWS * 32)

template <int HD>
static __global__ void __launch_bounds__(LL_ATT_THREADS) ll_attn_kernel(ll_k_attn_params p) {
    /* Scores read Ks and Qs 16 bytes at a time. Ks rows are padded by 4 floats: lane j
     * reads row j, and with a stride of HD + 4 floats the 8 lanes of each quarter-warp
     * (one 16-byte access each) land in 8 different groups of 4 banks. */
    __shared__ __align__(16) float Ks[LL_ATT_KC][HD + 4];
    __shared__ __align__(16) float Vs[LL_ATT_KC][HD];
    __shared__ __align__(16) float Qs[LL_ATT_ROWS][HD];
    const int h = blockIdx.y, split = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const ll_k_attn_tile tl = p.tiles[blockIdx.x];
    const ll_k_attn_seq sq = p.seqs[tl.seq];
    const int hd = p.head_dim, H = p.n_heads;
    const int hd4 = (hd + 3) & ~3; /* head dims rounded up to whole float4s; the rest is zero */
    const int kh = h / (H / p.n_kv_heads);
    const int nrows = min(LL_ATT_ROWS, sq.n_new - tl.r0);
    const bool active = warp < nrows; /* warp-uniform */
    const int r = tl.r0 + warp;
    const int qi = sq.n_past + r; /* this row's own key index */
    const int lo_r = ll_k_first_key(qi, p.sliding_window);
    /* Knocked-out keys of this row count as invisible: their scores are -inf. */
    const uint32_t *km = active ? ll_k_ko_mask(sq, h, r) : nullptr;
    /* Keys any row of the tile sees: block-uniform, so every thread runs the same chunks
     * and reaches the same barriers. */
    const ll_k_key_range kr = ll_k_tile_keys(sq.n_past, tl.r0, nrows, p.sliding_window, LL_ATT_KC, p.n_split, split);
    const int kv_lo = kr.kv_lo, kv_hi = kr.kv_hi, c_begin = kr.c_begin, c_end = kr.c_end;
    const size_t qrow = (size_t)sq.row0 + (size_t)r;

    for (int i = lane; i < HD; i += 32) Qs[warp][i] = (active && i < hd) ? p.q[(qrow * H + h) * hd + i] : 0.0f;

    constexpr int NU = HD / 32; /* head dimensions per lane */
    float acc[NU];
#pragma unroll
    for (int u = 0; u < NU; u++) acc[u] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    const float *kb = sq.k + (size_t)kh * hd;
    const float *vb = sq.v + (size_t)kh * hd;

    for (int c = c_begin; c < c_end; c++) {
        const int j0 = kv_lo + c * LL_ATT_KC;
        __syncthreads(); /* the previous chunk is consumed (and Qs is written, first time round) */
        for (int e = threadIdx.x; e < LL_ATT_KC * hd4; e += LL_ATT_THREADS) {
            int jj = e / hd4, i = e - jj * hd4;
            int j = j0 + jj;
            float kv = 0.0f, vv = 0.0f;
            if (j <= kv_hi && i < hd) {
                kv = kb[(size_t)j * p.kv_stride + i];
                vv = vb[(size_t)j * p.kv_stride + i];
            }
            Ks[jj][i] = kv;
            Vs[jj][i] = vv;
        }
        __syncthreads();
        if (active) {
            const int j = j0 + lane;
            const bool vis = j >= lo_r && j <= qi && !ll_k_ko_hit(km, j);
            float s = -INFINITY;
            if (vis) {
                /* The same left-to-right fp32 sum over the head dimension as the CPU; the
                 * zero padding up to hd4 adds exact zeros. */
                const float4 *q4 = reinterpret_cast<const float4 *>(&Qs[warp][0]);
                const float4 *k4 = reinterpret_cast<const float4 *>(&Ks[lane][0]);
                float dot = 0.0f;
                for (int i = 0; i < hd4 / 4; i++) {
                    const float4 a = q4[i], b = k4[i];
                    dot += a.x * b.x;
                    dot += a.y * b.y;
                    dot += a.z * b.z;
                    dot += a.w * b.w;
                }
                s = dot * p.scale;
            }
            const float cm = ll_warp_max(s); /* same value in every lane */
            if (cm != -INFINITY) {
                const float mn = fmaxf(m, cm);
                const float alpha = m == -INFINITY ? 0.0f : expf(m - mn);
                const float pj = vis ? expf(s - mn) : 0.0f;
                l = l * alpha + ll_warp_sum(pj);
#pragma unroll
                for (int u = 0; u < NU; u++) acc[u] *= alpha;
                for (int jj = 0; jj < LL_ATT_KC; jj++) {
                    const float pb = __shfl_sync(LL_FULL_MASK, pj, jj);
#pragma unroll
                    for (int u = 0; u < NU; u++) acc[u] += pb * Vs[jj][lane + 32 * u];
                }
                m = mn;
            }
        }
    }
    if (!active) return; /* no barrier follows */
    if (p.n_split == 1) {
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
        for (int u = 0; u < NU; u++) {
            int i = lane + 32 * u;
            if (i < hd) p.z[(qrow * H + h) * hd + i] = acc[u] * inv;
        }
        if (lane == 0) {
            p.ml[(qrow * H + h) * 2] = m;
            p.ml[(qrow * H + h) * 2 + 1] = l;
        }
    } else {
        float *pp = p.part + (((size_t)split * p.T + qrow) * H + h) * (size_t)(hd + 2);
#pragma unroll
        for (int u = 0; u < NU; u++) {
            int i = lane + 32 * u;
            if (i < hd) pp[i] = acc[u];
        }
        if (lane == 0) {
            pp[hd] = m;
            pp[hd + 1] = l;
        }
    }
}

/* One block per (row, head): merge the n_split partial states. */
static __global__ void ll_attn_combine(ll_k_attn_params p) {
    const size_t rh = blockIdx.x; /* row * H + h */
    const int hd = p.head_dim;
    const size_t stride = (size_t)p.T * p.n_heads * (size_t)(hd + 2); /* between splits */
    const float *pp = p.part + rh * (size_t)(hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < p.n_split; s++) M = fmaxf(M, pp[s * stride + hd]);
    float L = 0.0f;
    for (int s = 0; s < p.n_split; s++) {
        float ms = pp[s * stride + hd];
        if (ms != -INFINITY) L += pp[s * stride + hd + 1] * expf(ms - M);
    }
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float a = 0.0f;
        for (int s = 0; s < p.n_split; s++) {
            float ms = pp[s * stride + hd];
            if (ms != -INFINITY) a += pp[s * stride + i] * expf(ms - M);
        }
        p.z[rh * hd + i] = a * inv;
    }
    if (threadIdx.x == 0) {
        p.ml[rh * 2] = M;
        p.ml[rh * 2 + 1] = L;
    }
}

/* pattern[h][r][j] = exp(q.k_j scale - m) / l for visible j, else 0: one thread per entry.
 * Only for the layers a hook asked for, so simplicity wins over speed here. */
static __global__ void ll_attn_pattern_kernel(ll_k_attn_params p, ll_k_attn_seq sq) {
    const int hd = p.head_dim, H = p.n_heads;
    const int nk = sq.n_past + sq.n_new;
    const size_t n = (size_t)H * sq.n_new * (size_t)nk;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
        const int j = (int)(e % (size_t)nk);
        const int r = (int)((e / (size_t)nk) % (size_t)sq.n_new);
        const int h = (int)(e / ((size_t)nk * sq.n_new));
        const int qi = sq.n_past + r;
        float out = 0.0f;
        if (j >= ll_k_first_key(qi, p.sliding_window) && j <= qi && !ll_k_ko_hit(ll_k_ko_mask(sq, h, r), j)) {
            const size_t qrow = (size_t)sq.row0 + r;
            const int kh = h / (H / p.n_kv_heads);
            const float *q = p.q + (qrow * H + h) * hd;
            const float *k = sq.k + (size_t)j * p.kv_stride + (size_t)kh * hd;
            float dot = 0.0f;
            for (int i = 0; i < hd; i++) dot += q[i] * k[i];
            const float m = p.ml[(qrow * H + h) * 2], l = p.ml[(qrow * H + h) * 2 + 1];
            out = expf(dot * p.scale - m) / l;
        }
        sq.pattern[e] = out;
    }
}

template <int HD>
static cudaError_t ll_attn_launch(const ll_k_attn_params *p, cudaStream_t s) {
    dim3 grid((unsigned)p->n_tiles, (unsigned)p->n_heads, (unsigned)p->n_split);
    ll_attn_kernel<HD><<<grid, LL_ATT_THREADS, 0, s>>>(*p);
    return cudaGetLastError();
}

extern "C" cudaError_t ll_k_attention(const ll_k_attn_params *p, cudaStream_t s) {
    if (p->T <= 0 || p->n_tiles <= 0) return cudaSuccess;
    if (p->head_dim <= 0 || p->head_dim > LL_ATT_MAX_HD || p->n_heads % p->n_kv_heads || p->n_split < 1 ||
        p->n_tiles > 2147483647 || p->n_heads > 65535 || p->n_split > 65535)
        return cudaErrorInvalidValue;
    cudaError_t e;
    if (p->head_dim <= 32) e = ll_attn_launch<32>(p, s);
    else if (p->head_dim <= 64) e = ll_attn_launch<64>(p, s);
    else e = ll_attn_launch<128>(p, s);
    if (e != cudaSuccess || p->n_split == 1) return e;
    ll_attn_combine<<<(unsigned)((size_t)p->T * p->n_heads), 128, 0, s>>>(*p);
    return cudaGetLastError();
}

extern "C" cudaError_t ll_k_attn_pattern(const ll_k_attn_params *p, const ll_k_attn_seq *seq, cudaStream_t s) {
    if (!seq->pattern || seq->n_new <= 0) return cudaSuccess;
    size_t n = (size_t)p->n_heads * seq->n_new * (size_t)(seq->n_past + seq->n_new);
    ll_attn_pattern_kernel<<<ll_k_blocks(n, 256), 256, 0, s>>>(*p, *seq);
    return cudaGetLastError();
}
