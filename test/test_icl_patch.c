/* ICL patch sweeps against an independent reference: tools/icl_patch_ref.py runs its own
 * torch Llama on the tiny random fixture model and patches rows with forward pre-hooks
 * (test/fixtures/icl/patch_ref.safetensors). The batched sweep (variants as batch rows,
 * shared prefix from the KV cache), the batched sweep without the cache and the naive
 * loop must all reproduce its logits and L2 changes; records must equal its clean
 * residuals; a clean-into-clean patch must leave the logits unchanged and be flagged as
 * a patch that changed nothing. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "icl/ll_icl_patch.h"
#include "ll_test_util.h"

#define LL_REF "test/fixtures/icl/patch_ref.safetensors"
#define LL_MODEL "test/fixtures/llama_gqa"

typedef struct {
    ll_tensor_set ts;
    int32_t *tokens, *layer, *op, *pos;
    float *src, *l2, *logits, *clean_logits, *clean_resid;
    int n, nv, P;
} ll_ref;

static int32_t *ll_i32(const ll_tensor_set *s, const char *name, size_t *n) {
    const ll_tensor_info *t = ll_tensor_set_find(s, name);
    cr_assert(t && t->dtype == LL_I32, "%s: missing or not i32", name);
    size_t c = 1;
    for (int i = 0; i < t->ndim; i++) c *= (size_t)t->shape[i];
    int32_t *o = malloc(c * sizeof *o);
    memcpy(o, t->data, c * sizeof *o);
    if (n) *n = c;
    return o;
}

static void ll_ref_load(ll_ref *r) {
    memset(r, 0, sizeof *r);
    cr_assert_eq(ll_safetensors_open(&r->ts, LL_REF), LL_OK, "%s (make it with tools/icl_patch_ref.py)", ll_last_error());
    size_t n, nv, np;
    r->tokens = ll_i32(&r->ts, "tokens", &n);
    r->layer = ll_i32(&r->ts, "var_layer", &nv);
    r->op = ll_i32(&r->ts, "var_op", NULL);
    r->pos = ll_i32(&r->ts, "var_pos", &np);
    r->n = (int)n;
    r->nv = (int)nv;
    r->P = (int)(np / nv);
    r->src = ll_test_f32(&r->ts, "var_src", NULL);
    r->l2 = ll_test_f32(&r->ts, "var_l2", NULL);
    r->logits = ll_test_f32(&r->ts, "logits", NULL);
    r->clean_logits = ll_test_f32(&r->ts, "clean_logits", NULL);
    r->clean_resid = ll_test_f32(&r->ts, "clean_resid", NULL);
}

static void ll_ref_free(ll_ref *r) {
    free(r->tokens);
    free(r->layer);
    free(r->op);
    free(r->pos);
    free(r->src);
    free(r->l2);
    free(r->logits);
    free(r->clean_logits);
    free(r->clean_resid);
    ll_tensor_set_free(&r->ts);
}

static void ll_sweep_matches(ll_model *m, const ll_ref *r, ll_icl_sweep_opts o, const char *mode) {
    int d = m->cfg.d_model, V = m->cfg.vocab_size;
    ll_icl_variant *v = calloc((size_t)r->nv, sizeof *v);
    for (int i = 0; i < r->nv; i++)
        v[i] = (ll_icl_variant){.layer = r->layer[i], .n_pos = r->P, .pos = (const int *)(r->pos + (size_t)i * r->P),
                                .src = r->src + (size_t)i * r->P * d,
                                .op = r->op[i] ? LL_PATCH_ADD : LL_PATCH_REPLACE};
    float *lg = malloc((size_t)r->nv * V * sizeof *lg);
    ll_icl_patch_report *rep = calloc((size_t)r->nv, sizeof *rep);
    ll_icl_sweep_stats st = {0};
    cr_assert_eq(ll_icl_sweep(m, r->tokens, r->n, v, r->nv, &o, lg, rep, &st), LL_OK, "%s: %s", mode, ll_last_error());
    for (int i = 0; i < r->nv; i++) {
        double e = ll_test_rel_err(lg + (size_t)i * V, r->logits + (size_t)i * V, (size_t)V);
        cr_assert_lt(e, 1e-4, "%s: variant %d (layer %d, op %d): logits differ from the torch reference by %g", mode, i,
                     r->layer[i], r->op[i], e);
        cr_assert_lt(fabs(rep[i].l2_change - r->l2[i]), 1e-4 * fmax(1, r->l2[i]), "%s: variant %d: L2 change %g, reference %g",
                     mode, i, rep[i].l2_change, r->l2[i]);
        cr_assert(!rep[i].noop, "%s: variant %d flagged as changing nothing", mode, i);
        /* the patch mattered: logits moved away from the clean run */
        cr_assert_gt(ll_test_rel_err(lg + (size_t)i * V, r->clean_logits, (size_t)V), 1e-4, "%s: variant %d", mode, i);
    }
    cr_log_info("icl sweep %s: %d variants, %lld forwards, %lld token rows, %lld token-block rows", mode, r->nv,
                (long long)st.forwards, (long long)st.rows, (long long)st.layer_rows);
    if (!o.naive && !o.no_prefix_cache) cr_assert_lt(st.rows, (int64_t)r->nv * r->n, "%s: the prefix was not shared", mode);
    free(v);
    free(lg);
    free(rep);
}

Test(icl_patch, sweep_matches_torch_hooks) {
    ll_ref r;
    ll_ref_load(&r);
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, LL_MODEL, NULL), LL_OK, "%s", ll_last_error());
    ll_sweep_matches(m, &r, (ll_icl_sweep_opts){0}, "resume (default)");
    ll_sweep_matches(m, &r, (ll_icl_sweep_opts){.max_batch = 2}, "resume, batches of 2");
    ll_sweep_matches(m, &r, (ll_icl_sweep_opts){.no_resume = true}, "batched+prefix cache");
    ll_sweep_matches(m, &r, (ll_icl_sweep_opts){.no_resume = true, .max_batch = 2}, "batched by 2+prefix cache");
    ll_sweep_matches(m, &r, (ll_icl_sweep_opts){.no_prefix_cache = true}, "batched, no cache");
    ll_sweep_matches(m, &r, (ll_icl_sweep_opts){.naive = true}, "naive loop");
    ll_model_free(m);
    ll_ref_free(&r);
}

Test(icl_patch, record_matches_clean_residuals) {
    ll_ref r;
    ll_ref_load(&r);
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, LL_MODEL, NULL), LL_OK, "%s", ll_last_error());
    int L = m->cfg.n_layers, d = m->cfg.d_model, V = m->cfg.vocab_size;
    /* three prompts in one batch: the reference prompt, a shorter one, the reference again;
     * positions out of order and one listed twice */
    int pa[] = {13, 0, 5, 5}, pb[] = {2}, pc[] = {7, 1};
    int32_t shortp[] = {1, 2, 3, 4};
    const int32_t *ids[3] = {r.tokens, shortp, r.tokens};
    int n[3] = {r.n, 4, r.n}, np[3] = {4, 1, 2};
    const int *pos[3] = {pa, pb, pc};
    int R = 7;
    float *out = malloc((size_t)L * R * d * sizeof *out), *lg = malloc(3 * (size_t)V * sizeof *lg);
    cr_assert_eq(ll_icl_record(m, 3, ids, n, pos, np, LL_HOOK_RESID_PRE, out, lg), LL_OK, "%s", ll_last_error());
    int rows_from_ref[7] = {13, 0, 5, 5, -1, 7, 1};
    for (int l = 0; l < L; l++)
        for (int k = 0; k < R; k++) {
            if (rows_from_ref[k] < 0) continue;
            double e = ll_test_rel_err(out + ((size_t)l * R + k) * d, r.clean_resid + ((size_t)l * r.n + rows_from_ref[k]) * d,
                                       (size_t)d);
            cr_assert_lt(e, 1e-4, "layer %d row %d: %g", l, k, e);
        }
    cr_assert_lt(ll_test_rel_err(lg, r.clean_logits, (size_t)V), 1e-4);
    cr_assert_lt(ll_test_rel_err(lg + 2 * (size_t)V, r.clean_logits, (size_t)V), 1e-4);
    free(out);
    free(lg);
    ll_model_free(m);
    ll_ref_free(&r);
}

/* The built-in self-test, on the fixture and on the toy model, in every sweep mode; and
 * the clean-into-clean patch is flagged as changing nothing. */
Test(icl_patch, clean_into_clean_leaves_logits) {
    const char *models[] = {LL_MODEL, "data/models/toy-llama"};
    int32_t ids[] = {1, 30, 7, 99, 12, 5, 17, 2, 44, 8, 21};
    int pos[] = {3, 6, 10};
    for (int mi = 0; mi < 2; mi++) {
        ll_model *m;
        cr_assert_eq(ll_model_load(&m, models[mi], NULL), LL_OK, "%s", ll_last_error());
        ll_icl_sweep_opts modes[4] = {{0}, {.no_resume = true}, {.no_prefix_cache = true}, {.naive = true}};
        for (int k = 0; k < 4; k++) {
            double md = 1;
            cr_assert_eq(ll_icl_self_check(m, ids, 11, pos, 3, &modes[k], &md), LL_OK, "%s", ll_last_error());
            cr_log_info("icl self-check %s mode %d: max relative logit change %.3g", models[mi], k, md);
            cr_assert_lt(md, 1e-5, "%s mode %d: clean-into-clean changed logits by %g", models[mi], k, md);
        }
        /* noop flag */
        int d = m->cfg.d_model, V = m->cfg.vocab_size, L = m->cfg.n_layers;
        float *clean = malloc((size_t)L * 3 * d * sizeof *clean), *lg = malloc((size_t)V * 2 * sizeof *lg);
        const int32_t *pi[1] = {ids};
        const int *pp[1] = {pos};
        int n = 11, np = 3;
        cr_assert_eq(ll_icl_record(m, 1, pi, &n, pp, &np, LL_HOOK_RESID_PRE, clean, NULL), LL_OK);
        float *other = malloc((size_t)3 * d * sizeof *other);
        for (int j = 0; j < 3 * d; j++) other[j] = clean[(size_t)(L - 1) * 3 * d + j] + 0.5f;
        ll_icl_variant v[2] = {{.layer = L - 1, .n_pos = 3, .pos = pos, .src = clean + (size_t)(L - 1) * 3 * d},
                               {.layer = L - 1, .n_pos = 3, .pos = pos, .src = other}};
        ll_icl_patch_report rep[2];
        cr_assert_eq(ll_icl_sweep(m, ids, 11, v, 2, NULL, lg, rep, NULL), LL_OK, "%s", ll_last_error());
        cr_assert(rep[0].noop, "%s: clean-into-clean not flagged (L2 change %g)", models[mi], rep[0].l2_change);
        cr_assert(!rep[1].noop);
        cr_assert_lt(fabs(rep[1].l2_change - 0.5 * sqrt(3.0 * d)), 1e-3, "%s: L2 change %g", models[mi], rep[1].l2_change);
        free(clean);
        free(lg);
        free(other);
        ll_model_free(m);
    }
}

Test(icl_patch, bad_variants_are_errors) {
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, LL_MODEL, NULL), LL_OK, "%s", ll_last_error());
    int32_t ids[] = {1, 2, 3};
    int pos[] = {5};
    float src[64] = {0};
    float lg[512];
    ll_icl_variant v = {.layer = 0, .n_pos = 1, .pos = pos, .src = src};
    cr_assert_eq(ll_icl_sweep(m, ids, 3, &v, 1, NULL, lg, NULL, NULL), LL_ERR_ARG);
    cr_assert(strstr(ll_last_error(), "position 5"), "%s", ll_last_error());
    pos[0] = 1;
    v.layer = 7;
    cr_assert_eq(ll_icl_sweep(m, ids, 3, &v, 1, NULL, lg, NULL, NULL), LL_ERR_ARG);
    cr_assert(strstr(ll_last_error(), "layer 7"), "%s", ll_last_error());
    ll_model_free(m);
}
