/* Causal attention on the tensor cores (bf16 operands, fp32 accumulation): the candidate
 * successor of the SIMT kernel in ll_k_attention.cu for long prefill, which it must match
 * (test/gpu runs both against the CPU). Chosen with LL_ATTN=tc; the SIMT kernel stays
 * the default until a GPU run has checked and timed this one (docs/cuda-backend.md).
 *
 * A block takes 64 query rows of one sequence and one head; each of its 4 warps owns 16
 * rows. Keys and values are walked in chunks of 64, converted to bf16 into shared memory
 * by all threads. Per chunk each warp computes its scores S = Q K^T (16 x 64) with WMMA
 * 16x16x16 tiles into shared memory, runs the online softmax over its rows there (two
 * lanes per row), rescales its rows of the fp32 output O in shared memory and adds P V
 * (P rounded to bf16) with WMMA, loading and storing O through the accumulator
 * fragments. Only K and V are shared between warps, so only their loads need block
 * barriers; the rest is ordered by __syncwarp.
 *
 * Used only for head_dim 64 and 128 and without key splits (prefill); decode keeps the
 * SIMT kernel, whose split-K suits one row. */
#include <cuda_bf16.h>
#include <math.h>
#include <mma.h>

#include "ll_k_common.cuh"
#include "ll_kernels.h"

using namespace nvcuda;

#define LL_TC_ROWS LL_ATT_TC_ROWS /* query rows per block: 4 warps x 16 */
#define LL_TC_KEYS 64 /* keys per chunk */
#define LL_TC_THREADS 128

/* Shared-memory layout, in elements; every array starts 128-byte aligned and every row
 * stride keeps the 32-byte alignment WMMA needs for the tile starts used below. */
template <int HD>
struct ll_tc_smem {
    static constexpr int QLD = HD + 8;          /* bf16 Q, K, V rows */
    static constexpr int SLD = LL_TC_KEYS + 4;  /* fp32 scores */
    static constexpr int PLD = LL_TC_KEYS + 8;  /* bf16 probabilities */
    static constexpr int OLD = HD + 4;          /* fp32 output */
    static constexpr size_t align(size_t b) { return (b + 127) / 128 * 128; }
    static constexpr size_t q_off = 0;
    static constexpr size_t k_off = q_off + align((size_t)LL_TC_ROWS * QLD * 2);
    static constexpr size_t v_off = k_off + align((size_t)LL_TC_KEYS * QLD * 2);
    static constexpr size_t s_off = v_off + align((size_t)LL_TC_KEYS * QLD * 2);
    static constexpr size_t p_off = s_off + align((size_t)LL_TC_ROWS * SLD * 4);
    static constexpr size_t o_off = p_off + align((size_t)LL_TC_ROWS * PLD * 2);
    static constexpr size_t a_off = o_off + align((size_t)LL_TC_ROWS * OLD * 4);
    static constexpr size_t bytes = a_off + align((size_t)LL_TC_ROWS * 4);
};

template <int HD>
static __global__ void __launch_bounds__(LL_TC_THREADS) ll_attn_tc_kernel(ll_k_attn_params p) {
    typedef ll_tc_smem<HD> L;
    extern __shared__ __align__(128) unsigned char smem[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)(smem + L::q_off);
    __nv_bfloat16 *Ks = (__nv_bfloat16 *)(smem + L::k_off);
    __nv_bfloat16 *Vs = (__nv_bfloat16 *)(smem + L::v_off);
    float *Ss = (float *)(smem + L::s_off);
    __nv_bfloat16 *Ps = (__nv_bfloat16 *)(smem + L::p_off);
    float *Os = (float *)(smem + L::o_off);
    float *As = (float *)(smem + L::a_off); /* per-row rescale factor of the current chunk */

    const int h = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const ll_k_attn_tile tl = p.tiles[blockIdx.x];
    const ll_k_attn_seq sq = p.seqs[tl.seq];
    const int H = p.n_heads, kh = h / (H / p.n_kv_heads);
    const int nrows = min(LL_TC_ROWS, sq.n_new - tl.r0);
    const ll_k_key_range kr = ll_k_tile_keys(sq.n_past, tl.r0, nrows, p.sliding_window, LL_TC_KEYS, 1, 0);

    /* Q (bf16) and O (zero) for all 64 rows; rows past the sequence are zero and masked. */
    for (int e = threadIdx.x; e < LL_TC_ROWS * HD; e += LL_TC_THREADS) {
        int r = e / HD, i = e - r * HD;
        float v = r < nrows ? p.q[(((size_t)sq.row0 + tl.r0 + r) * H + h) * HD + i] : 0.0f;
        Qs[r * L::QLD + i] = __float2bfloat16_rn(v);
        Os[r * L::OLD + i] = 0.0f;
    }

    /* Softmax state: lanes 2q and 2q+1 both hold row 16 warp + q's running max and sum. */
    const int rr = warp * 16 + (lane >> 1); /* this lane's row in the tile */
    const int half = lane & 1;              /* which 32 of the chunk's 64 columns it scans */
    const bool row_ok = rr < nrows;
    const int qi = sq.n_past + tl.r0 + rr;
    const int lo = ll_k_first_key(qi, p.sliding_window);
    const uint32_t *km = row_ok ? ll_k_ko_mask(sq, h, tl.r0 + rr) : nullptr; /* knockouts of this row */
    float m = -INFINITY, l = 0.0f;
    const float *kb = sq.k + (size_t)kh * HD, *vb = sq.v + (size_t)kh * HD;

    for (int c = kr.c_begin; c < kr.c_end; c++) {
        const int j0 = kr.kv_lo + c * LL_TC_KEYS;
        __syncthreads(); /* K and V of the previous chunk are consumed; Q and O are written */
        for (int e = threadIdx.x; e < LL_TC_KEYS * HD; e += LL_TC_THREADS) {
            int jj = e / HD, i = e - jj * HD;
            int j = j0 + jj;
            float kv = 0.0f, vv = 0.0f;
            if (j <= kr.kv_hi) {
                kv = kb[(size_t)j * p.kv_stride + i];
                vv = vb[(size_t)j * p.kv_stride + i];
            }
            Ks[jj * L::QLD + i] = __float2bfloat16_rn(kv);
            Vs[jj * L::QLD + i] = __float2bfloat16_rn(vv);
        }
        __syncthreads();

        /* S (this warp's 16 rows x 64 keys) = Q K^T */
        for (int nt = 0; nt < LL_TC_KEYS / 16; nt++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
            for (int kt = 0; kt < HD / 16; kt++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b;
                wmma::load_matrix_sync(a, Qs + (warp * 16) * L::QLD + kt * 16, L::QLD);
                /* K^T as a column-major matrix: element (k, n) is Ks[n][k] */
                wmma::load_matrix_sync(b, Ks + (nt * 16) * L::QLD + kt * 16, L::QLD);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(Ss + (warp * 16) * L::SLD + nt * 16, acc, L::SLD, wmma::mem_row_major);
        }
        __syncwarp();

        /* online softmax over this chunk, two lanes per row */
        float *srow = Ss + rr * L::SLD + half * 32;
        __nv_bfloat16 *prow = Ps + rr * L::PLD + half * 32;
        float cmax = -INFINITY;
        for (int t = 0; t < 32; t++) {
            int j = j0 + half * 32 + t;
            bool vis = row_ok && j >= lo && j <= qi && !ll_k_ko_hit(km, j);
            float s = vis ? srow[t] * p.scale : -INFINITY;
            srow[t] = s;
            cmax = fmaxf(cmax, s);
        }
        cmax = fmaxf(cmax, __shfl_xor_sync(LL_FULL_MASK, cmax, 1));
        const float mn = fmaxf(m, cmax);
        float alpha = 1.0f, sum = 0.0f;
        if (mn == -INFINITY) { /* nothing visible yet: P = 0, O and l stay 0 */
            for (int t = 0; t < 32; t++) prow[t] = __float2bfloat16_rn(0.0f);
        } else {
            alpha = m == -INFINITY ? 0.0f : expf(m - mn);
            for (int t = 0; t < 32; t++) {
                float e = srow[t] == -INFINITY ? 0.0f : expf(srow[t] - mn);
                __nv_bfloat16 eb = __float2bfloat16_rn(e);
                prow[t] = eb;
                sum += __bfloat162float(eb); /* normalise by what P V actually adds */
            }
        }
        sum += __shfl_xor_sync(LL_FULL_MASK, sum, 1);
        l = l * alpha + sum;
        m = mn;
        if (half == 0) As[rr] = alpha;
        __syncwarp();

        /* O = alpha O + P V for this warp's rows */
        for (int e = lane; e < 16 * HD; e += 32) {
            int r = warp * 16 + e / HD, i = e % HD;
            Os[r * L::OLD + i] *= As[r];
        }
        __syncwarp();
        for (int ot = 0; ot < HD / 16; ot++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, Os + (warp * 16) * L::OLD + ot * 16, L::OLD, wmma::mem_row_major);
            for (int kt = 0; kt < LL_TC_KEYS / 16; kt++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b;
                wmma::load_matrix_sync(a, Ps + (warp * 16) * L::PLD + kt * 16, L::PLD);
                wmma::load_matrix_sync(b, Vs + (kt * 16) * L::QLD + ot * 16, L::QLD);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(Os + (warp * 16) * L::OLD + ot * 16, acc, L::OLD, wmma::mem_row_major);
        }
        __syncwarp();
    }
    __syncwarp();

    /* z = O / l, and the row statistics for patterns (both lanes of a row hold m and l) */
    if (half == 0 && row_ok) {
        size_t qrow = (size_t)sq.row0 + tl.r0 + rr;
        p.ml[(qrow * H + h) * 2] = m;
        p.ml[(qrow * H + h) * 2 + 1] = l;
    }
    /* l of row 16 warp + q is in lane 2q; fetch per output row with a shuffle */
    for (int q = 0; q < 16; q++) {
        float lq = __shfl_sync(LL_FULL_MASK, l, 2 * q);
        int r = warp * 16 + q;
        if (r >= nrows) continue;
        float inv = lq > 0.0f ? 1.0f / lq : 0.0f;
        size_t qrow = (size_t)sq.row0 + tl.r0 + r;
        for (int i = lane; i < HD; i += 32) p.z[(qrow * H + h) * HD + i] = Os[r * L::OLD + i] * inv;
    }
}

template <int HD>
static cudaError_t ll_attn_tc_launch(const ll_k_attn_params *p, cudaStream_t s) {
    const size_t smem = ll_tc_smem<HD>::bytes;
    static bool raised = false; /* over 48 KB of dynamic shared memory needs an opt-in, once */
    if (!raised) {
        cudaError_t e =
            cudaFuncSetAttribute(ll_attn_tc_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
        raised = true;
    }
    dim3 grid((unsigned)p->n_tiles, (unsigned)p->n_heads, 1);
    ll_attn_tc_kernel<HD><<<grid, LL_TC_THREADS, smem, s>>>(*p);
    return cudaGetLastError();
}

extern "C" int ll_k_attention_tc_supported(int head_dim) { return head_dim == 64 || head_dim == 128; }

extern "C" cudaError_t ll_k_attention_tc(const ll_k_attn_params *p, cudaStream_t s) {
    if (p->T <= 0 || p->n_tiles <= 0) return cudaSuccess;
    if (!ll_k_attention_tc_supported(p->head_dim) || p->n_heads % p->n_kv_heads || p->n_split != 1 ||
        p->n_heads > 65535)
        return cudaErrorInvalidValue;
    return p->head_dim == 64 ? ll_attn_tc_launch<64>(p, s) : ll_attn_tc_launch<128>(p, s);
}
