/* Per-element formulas shared by the CUDA kernels and host C code.
 *
 * Each helper is written once, as a static inline that compiles as plain C11 on the
 * host and as __host__ __device__ under nvcc, so the host test suite (no GPU needed)
 * checks the very formulas the kernels run against the CPU backend's loops. */
#ifndef LL_KMATH_H
#define LL_KMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define LL_HD __host__ __device__ __forceinline__
#else
#define LL_HD
#endif

/* bf16 <-> fp32 as bit patterns: round to nearest even, NaN kept NaN (quiet). */
static LL_HD float ll_k_bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static LL_HD uint16_t ll_k_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN stays NaN */
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb; /* round half to even; overflow to inf is the correct rounding */
    return (uint16_t)(u >> 16);
}

/* silu(g) * u, as the CPU backend computes it. */
static LL_HD float ll_k_swiglu(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* GPT-2's gelu_new (tanh approximation). */
static LL_HD float ll_k_gelu_new(float v) {
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * v * v * v)));
}

/* RoPE: the angle is pos * inv_freq as an fp32 product (as Hugging Face computes it);
 * cos and sin then in double so they are correctly rounded, on the CPU and the GPU alike. */
static LL_HD void ll_k_rope_angle(int32_t pos, float inv_freq, float *cs, float *sn) {
    float ang = (float)pos * inv_freq;
    *cs = (float)cos((double)ang);
    *sn = (float)sin((double)ang);
}

/* Rotate the pair (a, b) by the angle whose cos and sin are given. */
static LL_HD void ll_k_rope_rotate(float *a, float *b, float cs, float sn) {
    float x = *a, y = *b;
    *a = x * cs - y * sn;
    *b = y * cs + x * sn;
}

/* Attention key ranges. A query at key index qi sees keys first_key(qi) .. qi. */
static LL_HD int ll_k_first_key(int qi, int window) { return (window > 0 && qi - window + 1 > 0) ? qi - window + 1 : 0; }

/* The keys a tile of nrows query rows (rows r0.., n_past cached keys) can see are
 * kv_lo .. kv_hi; walked in chunks of kc keys, split `split` of n_split takes chunks
 * [c_begin, c_end) (empty when c_begin >= c_end). Chunk c covers keys kv_lo + c*kc ... */
typedef struct {
    int kv_lo, kv_hi, c_begin, c_end;
} ll_k_key_range;

static LL_HD ll_k_key_range ll_k_tile_keys(int n_past, int r0, int nrows, int window, int kc, int n_split,
                                           int split) {
    ll_k_key_range k;
    k.kv_lo = ll_k_first_key(n_past + r0, window);
    k.kv_hi = n_past + r0 + nrows - 1;
    int n_chunks = (k.kv_hi - k.kv_lo + kc) / kc;
    int per = (n_chunks + n_split - 1) / n_split;
    k.c_begin = split * per;
    k.c_end = k.c_begin + per < n_chunks ? k.c_begin + per : n_chunks;
    return k;
}

/* Online softmax state for one row: running max m, sum l of exp(s - m). Merging two
 * partial states (from two key ranges) gives the state of their union. An empty state
 * has m = -inf, l = 0. */
typedef struct {
    float m, l;
} ll_k_softmax_state;

/* Scale factors to bring two states to their common max: returns the merged max and
 * writes the factors for each side (0 for an empty side). */
static LL_HD float ll_k_softmax_merge(float m1, float m2, float *f1, float *f2) {
    float m = m1 > m2 ? m1 : m2;
    if (m == -INFINITY) {
        *f1 = *f2 = 0.0f;
        return m;
    }
    *f1 = m1 == -INFINITY ? 0.0f : expf(m1 - m);
    *f2 = m2 == -INFINITY ? 0.0f : expf(m2 - m);
    return m;
}

/* Entropy accumulation over a row in one pass: state (m, S, Sx) with
 * S = sum exp(x - m), Sx = sum exp(x - m) (x - m). Adding x rescales when m grows. */
typedef struct {
    float m, S, Sx;
} ll_k_ent_state;

static LL_HD void ll_k_ent_add(ll_k_ent_state *s, float x) {
    if (x > s->m) {
        if (s->m == -INFINITY) {
            s->S = 1.0f;
            s->Sx = 0.0f;
        } else {
            /* old terms: e^(x_i - m) -> e^(x_i - m') = e^(x_i - m) r, and (x_i - m') = (x_i - m) - dm */
            float dm = x - s->m, r = expf(-dm);
            s->Sx = (s->Sx - dm * s->S) * r;
            s->S = s->S * r + 1.0f;
        }
        s->m = x;
    } else if (x > -INFINITY) {
        float dx = x - s->m, e = expf(dx);
        s->S += e;
        s->Sx += e * dx;
    }
}

static LL_HD ll_k_ent_state ll_k_ent_merge(ll_k_ent_state a, ll_k_ent_state b) {
    if (a.m == -INFINITY) return b;
    if (b.m == -INFINITY) return a;
    if (b.m > a.m) {
        ll_k_ent_state t = a;
        a = b;
        b = t;
    }
    /* a has the larger max m; b's terms: e^(x - mb) r with r = e^(mb - m), (x - m) = (x - mb) - dm */
    float dm = a.m - b.m, r = expf(-dm);
    ll_k_ent_state o = {a.m, a.S + b.S * r, a.Sx + (b.Sx - dm * b.S) * r};
    return o;
}

/* lse and entropy from a final state. */
static LL_HD float ll_k_ent_lse(ll_k_ent_state s) { return s.m + logf(s.S); }
static LL_HD float ll_k_ent_entropy(ll_k_ent_state s) { return logf(s.S) - s.Sx / s.S; }

#endif
