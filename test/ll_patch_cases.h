/* One table of hook patches covering every op (replace, add, zero, copy-from-row, a single
 * head on hook_attn_z, two patches at one site whose order matters, a copy whose source
 * row is also a target), shared by the suite that checks the device patch path on the CPU
 * (test/test_hooks_device_patch.c) and the one that checks it on the GPU
 * (test/gpu/test_gpu_model.c). Batch: 10 rows in two sequences (7, then 3). */
#ifndef LL_PATCH_CASES_H
#define LL_PATCH_CASES_H

#include <stdint.h>
#include <stdlib.h>

#include "model/ll_forward.h"

#define LL_PC_T 10
#define LL_PC_N 8

static const int64_t ll_pc_off[3] = {0, 7, 10};

typedef struct {
    ll_patch p[LL_PC_N];
    const char *name[LL_PC_N];
    float *src[LL_PC_N]; /* owned source vectors (NULL where the op has none) */
} ll_patch_cases;

static inline float *ll_pc_rand(size_t n, uint64_t seed, float scale) {
    float *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; v && i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        v[i] = scale * (float)((double)(seed >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
    }
    return v;
}

/* Needs a model with at least 2 layers and 2 heads. */
static inline void ll_patch_cases_make(ll_patch_cases *pc, const ll_config *c) {
    static const int64_t r_rep[2] = {1, 8}, r_add[2] = {3, 9}, r_zero[1] = {2}, r_cp[2] = {4, 6}, s_cp[2] = {6, 0};
    static const int64_t r_h1[1] = {5}, r_h0[2] = {7, 0}, r_two[1] = {0};
    int d = c->d_model, hd = c->head_dim;
    *pc = (ll_patch_cases){0};
    pc->src[0] = ll_pc_rand((size_t)2 * d, 11, 2.0f);
    pc->src[1] = ll_pc_rand((size_t)2 * d, 12, 0.5f);
    pc->src[4] = ll_pc_rand((size_t)hd, 13, 1.0f);
    pc->src[5] = ll_pc_rand((size_t)2 * hd, 14, 1.0f);
    pc->src[7] = ll_pc_rand((size_t)d, 15, 0.25f);
    pc->name[0] = "replace resid_post 0";
    pc->p[0] = (ll_patch){.point = LL_HOOK_RESID_POST, .layer = 0, .n_rows = 2, .rows = r_rep,
                          .op = LL_PATCH_REPLACE, .src = pc->src[0], .width = d, .head = -1};
    pc->name[1] = "add resid_mid 1";
    pc->p[1] = (ll_patch){.point = LL_HOOK_RESID_MID, .layer = 1, .n_rows = 2, .rows = r_add, .op = LL_PATCH_ADD,
                          .src = pc->src[1], .width = d, .head = -1};
    pc->name[2] = "zero mlp_out 0";
    pc->p[2] = (ll_patch){.point = LL_HOOK_MLP_OUT, .layer = 0, .n_rows = 1, .rows = r_zero, .op = LL_PATCH_ZERO,
                          .head = -1};
    pc->name[3] = "copy-row resid_pre 1 (a source is also a target)";
    pc->p[3] = (ll_patch){.point = LL_HOOK_RESID_PRE, .layer = 1, .n_rows = 2, .rows = r_cp,
                          .op = LL_PATCH_COPY_ROW, .src_rows = s_cp, .head = -1};
    pc->name[4] = "replace head 1 of attn_z 1";
    pc->p[4] = (ll_patch){.point = LL_HOOK_ATTN_Z, .layer = 1, .n_rows = 1, .rows = r_h1, .op = LL_PATCH_REPLACE,
                          .src = pc->src[4], .width = hd, .head = 1};
    pc->name[5] = "add head 0 of attn_z 0";
    pc->p[5] = (ll_patch){.point = LL_HOOK_ATTN_Z, .layer = 0, .n_rows = 2, .rows = r_h0, .op = LL_PATCH_ADD,
                          .src = pc->src[5], .width = hd, .head = 0};
    pc->name[6] = "zero resid_post 1 (then an add at the same site)";
    pc->p[6] = (ll_patch){.point = LL_HOOK_RESID_POST, .layer = 1, .n_rows = 1, .rows = r_two, .op = LL_PATCH_ZERO,
                          .head = -1};
    pc->name[7] = "add resid_post 1 (after the zero)";
    pc->p[7] = (ll_patch){.point = LL_HOOK_RESID_POST, .layer = 1, .n_rows = 1, .rows = r_two, .op = LL_PATCH_ADD,
                          .src = pc->src[7], .width = d, .head = -1};
}

static inline void ll_patch_cases_free(ll_patch_cases *pc) {
    for (int i = 0; i < LL_PC_N; i++) free(pc->src[i]);
}

#endif
