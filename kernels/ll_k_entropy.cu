/* Fused entropy of logits: one block per row, one pass over the vocabulary.
 *
 * Each thread keeps, for its strided share of the row, the one-pass entropy state
 * (max m, S = sum e^(x - m), Sx = sum e^(x - m)(x - m); ll_kmath.h), the argmax and a
 * sorted local top-k. The block then merges the states (a tree in shared memory), and
 * takes the global top-k as k rounds of "best head among the threads' sorted lists".
 * The softmax is never written. A second, much shorter pass does the same over the
 * candidate ids when a list is given. */
#include <math.h>

#include "ll_k_common.cuh"
#include "ll_kernels.h"

#define LL_ENT_THREADS 256

/* (value, id) order: larger value first, then smaller id. */
static __device__ __forceinline__ bool ll_better(float v, int id, float bv, int bid) {
    return v > bv || (v == bv && id < bid && id >= 0) || (bid < 0 && id >= 0);
}

/* Block-wide best (value, id, owner thread); every thread gets the result. */
static __device__ void ll_block_best(float *v, int *id, int *owner, float *sv, int *sid, int *sown) {
    int t = threadIdx.x;
    __syncthreads(); /* shared slots free from the previous call */
    sv[t] = *v;
    sid[t] = *id;
    sown[t] = *owner;
    __syncthreads();
    for (int w = LL_ENT_THREADS / 2; w > 0; w >>= 1) {
        if (t < w && ll_better(sv[t + w], sid[t + w], sv[t], sid[t])) {
            sv[t] = sv[t + w];
            sid[t] = sid[t + w];
            sown[t] = sown[t + w];
        }
        __syncthreads();
    }
    *v = sv[0];
    *id = sid[0];
    *owner = sown[0];
}

static __device__ ll_k_ent_state ll_block_ent(ll_k_ent_state st, float *sm, float *sS, float *sSx) {
    int t = threadIdx.x;
    __syncthreads();
    sm[t] = st.m;
    sS[t] = st.S;
    sSx[t] = st.Sx;
    __syncthreads();
    for (int w = LL_ENT_THREADS / 2; w > 0; w >>= 1) {
        if (t < w) {
            ll_k_ent_state a = {sm[t], sS[t], sSx[t]}, b = {sm[t + w], sS[t + w], sSx[t + w]};
            ll_k_ent_state c = ll_k_ent_merge(a, b);
            sm[t] = c.m;
            sS[t] = c.S;
            sSx[t] = c.Sx;
        }
        __syncthreads();
    }
    ll_k_ent_state o = {sm[0], sS[0], sSx[0]};
    return o;
}

static __global__ void __launch_bounds__(LL_ENT_THREADS)
    ll_entropy_kernel(ll_entropy_row *out, const float *logits, int V, int k, const int32_t *cands, int n_cand) {
    __shared__ float sv[LL_ENT_THREADS], sS[LL_ENT_THREADS], sSx[LL_ENT_THREADS];
    __shared__ int sid[LL_ENT_THREADS], sown[LL_ENT_THREADS];
    const float *x = logits + (size_t)blockIdx.x * V;
    ll_entropy_row *o = &out[blockIdx.x];
    const int t = threadIdx.x;

    /* 1. one pass: entropy state, argmax, local top-k (sorted, descending) */
    ll_k_ent_state st = {-INFINITY, 0.0f, 0.0f};
    float bv = -INFINITY;
    int bid = -1;
    float tv[LL_TOPK_MAX];
    int tid[LL_TOPK_MAX];
    int tn = 0;
    for (int i = t; i < V; i += LL_ENT_THREADS) {
        float v = x[i];
        ll_k_ent_add(&st, v);
        if (ll_better(v, i, bv, bid)) {
            bv = v;
            bid = i;
        }
        if (k > 0 && (tn < k || ll_better(v, i, tv[tn - 1], tid[tn - 1]))) {
            int p = tn < k ? tn++ : k - 1;
            while (p > 0 && ll_better(v, i, tv[p - 1], tid[p - 1])) {
                tv[p] = tv[p - 1];
                tid[p] = tid[p - 1];
                p--;
            }
            tv[p] = v;
            tid[p] = i;
        }
    }
    /* 2. merge */
    ll_k_ent_state all = ll_block_ent(st, sv, sS, sSx);
    int own = t;
    ll_block_best(&bv, &bid, &own, sv, sid, sown);
    if (t == 0) {
        o->max = bv;
        o->argmax = bid;
        o->lse = ll_k_ent_lse(all);
        o->entropy = ll_k_ent_entropy(all);
    }
    int head = 0;
    for (int r = 0; r < LL_TOPK_MAX; r++) {
        float v = -INFINITY;
        int id = -1, ow = t;
        if (r < k && head < tn) {
            v = tv[head];
            id = tid[head];
        }
        if (r < k) ll_block_best(&v, &id, &ow, sv, sid, sown); /* r < k is block-uniform */
        if (r < k && ow == t && id >= 0) head++;
        if (t == 0) {
            o->top_id[r] = r < k ? id : -1;
            o->top_logit[r] = r < k && id >= 0 ? v : -INFINITY;
        }
    }
    /* 3. the candidate list */
    if (!cands || n_cand <= 0) {
        if (t == 0) {
            o->cand_lse = o->cand_entropy = NAN;
            o->cand_argmax = -1;
        }
        return;
    }
    ll_k_ent_state cs = {-INFINITY, 0.0f, 0.0f};
    float cv = -INFINITY;
    int cj = -1; /* position in the list: ties go to the earlier entry, as on the CPU */
    for (int j = t; j < n_cand; j += LL_ENT_THREADS) {
        float v = x[cands[j]];
        ll_k_ent_add(&cs, v);
        if (ll_better(v, j, cv, cj)) {
            cv = v;
            cj = j;
        }
    }
    ll_k_ent_state call = ll_block_ent(cs, sv, sS, sSx);
    own = t;
    ll_block_best(&cv, &cj, &own, sv, sid, sown);
    if (t == 0) {
        o->cand_lse = ll_k_ent_lse(call);
        o->cand_entropy = ll_k_ent_entropy(call);
        o->cand_argmax = cj >= 0 ? cands[cj] : -1;
    }
}

extern "C" cudaError_t ll_k_entropy(ll_entropy_row *out, const float *logits, int R, int V, int k,
                                    const int32_t *cands, int n_cand, cudaStream_t s) {
    if (R <= 0) return cudaSuccess;
    if (V <= 0) return cudaErrorInvalidValue;
    if (k > LL_TOPK_MAX) k = LL_TOPK_MAX;
    if (k < 0) k = 0;
    ll_entropy_kernel<<<(unsigned)R, LL_ENT_THREADS, 0, s>>>(out, logits, V, k, cands, n_cand);
    return cudaGetLastError();
}
