/* Attention knockouts on the CUDA backend against the CPU backend (test/test_knockout.c
 * checks the CPU against transformers): knocked-out pattern entries are exactly 0 on the
 * GPU too, patterns agree within bf16 error, a fully blocked row is all zero, and a
 * cached prefix with one new row (indices counted from the cache start) agrees too.
 * Skipped, saying why, without a CUDA device. Not yet run on a GPU (none was available
 * when it was written). */
#include "ll_gpu_test.h"
#include "ll_test_util.h"

#define FIX "test/fixtures/llama_gqa"
#define NT 40

typedef struct {
    float *pat[4];
    int n_new, n_keys;
} ll_gk_pat;

static ll_status ll_gk_fn(void *user, const ll_hook_rows *r) {
    ll_gk_pat *c = user;
    size_t n = (size_t)r->n_heads * r->n_rows * r->n_keys;
    free(c->pat[r->layer]);
    c->pat[r->layer] = malloc(n * sizeof(float));
    memcpy(c->pat[r->layer], r->data, n * sizeof(float));
    c->n_new = r->n_rows;
    c->n_keys = r->n_keys;
    return LL_OK;
}

static void ll_gk_run(ll_model *m, const int32_t *ids, int n_prefix, const ll_knockout *ko, int n_ko, ll_gk_pat *pc,
                      float *logits) {
    const ll_config *c = &m->cfg;
    ll_kv_cache *kc = NULL;
    cr_assert_eq(ll_kv_cache_new(&kc, m, 1, NT + 4), LL_OK, "%s", ll_last_error());
    if (n_prefix > 0) {
        int64_t o[2] = {0, n_prefix};
        ll_batch b = {.n_seq = 1, .seq_off = o, .tokens = ids};
        ll_forward_opts fo = {.cache = kc, .knockouts = ko, .n_knockouts = n_ko};
        cr_assert_eq(ll_forward(m, &b, &fo), LL_OK, "%s: %s", m->be->name, ll_last_error());
    }
    ll_hooks *h;
    cr_assert_eq(ll_hooks_new(&h, c->n_layers), LL_OK);
    ll_record r = {.point = LL_HOOK_ATTN_PATTERN, .layer_lo = 0, .layer_hi = c->n_layers - 1, .fn = ll_gk_fn,
                   .user = pc};
    cr_assert_eq(ll_hooks_add_record(h, &r), LL_OK);
    int64_t o[2] = {0, NT - n_prefix};
    ll_batch b = {.n_seq = 1, .seq_off = o, .tokens = ids + n_prefix};
    ll_forward_opts fo = {.cache = kc, .hooks = h, .logits = LL_LOGITS_ALL, .logits_out = logits, .knockouts = ko,
                          .n_knockouts = n_ko};
    cr_assert_eq(ll_forward(m, &b, &fo), LL_OK, "%s: %s", m->be->name, ll_last_error());
    ll_hooks_free(h);
    ll_kv_cache_free(kc);
}

static void ll_gk_case(int n_prefix) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    ll_model *mc, *mg;
    cr_assert_eq(ll_model_load(&mc, FIX, NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_model_load(&mg, FIX, NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_model_use_backend(mg, be), LL_OK, "%s", ll_last_error());
    const ll_config *c = &mc->cfg;
    int L = c->n_layers, H = c->n_heads, V = c->vocab_size;
    int32_t ids[NT];
    for (int t = 0; t < NT; t++) ids[t] = (t * 37 + 5) % V;
    int32_t q[] = {20, 33, 38, 39}, k[] = {1, 2, 17, 30, 31, 32, 35};
    int32_t q1[] = {39}, k1[40];
    for (int j = 0; j < 40; j++) k1[j] = j;
    ll_knockout ko[2] = {
        {.layer_lo = 0, .layer_hi = 1, .seq = 0, .head = -1, .q = q, .n_q = 4, .k = k, .n_k = 7},
        {.layer_lo = 2, .layer_hi = 2, .seq = 0, .head = 1, .q = q1, .n_q = 1, .k = k1, .n_k = 40}, /* fully blocked */
    };
    ll_gk_pat pc = {0}, pg = {0};
    float *lc = malloc((size_t)NT * V * sizeof(float)), *lg = malloc((size_t)NT * V * sizeof(float));
    ll_gk_run(mc, ids, n_prefix, ko, 2, &pc, lc);
    ll_gk_run(mg, ids, n_prefix, ko, 2, &pg, lg);
    int n_new = NT - n_prefix;
    for (int l = 0; l < L; l++) {
        size_t n = (size_t)H * n_new * NT;
        double e = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)pg.pat[l][i] - pc.pat[l][i]);
            if (!(d <= e)) e = d;
            if (pc.pat[l][i] == 0.0f)
                cr_assert_eq(pg.pat[l][i], 0.0f, "layer %d entry %zu: blocked or causal entry is %g on the GPU", l, i,
                             pg.pat[l][i]);
        }
        cr_expect(e < 2e-2, "layer %d: GPU pattern differs from the CPU by %.3g", l, e);
    }
    /* the fully blocked row (query 39, head 1, layer 2) is all zero on both */
    const float *row = pg.pat[2] + ((size_t)1 * n_new + (39 - n_prefix)) * NT;
    for (int j = 0; j < NT; j++) cr_assert_eq(row[j], 0.0f);
    double e = ll_gt_nmse(lg, lc, (size_t)n_new * V);
    cr_expect(e < 2e-3, "logits nmse %.3g", e);
    for (int l = 0; l < L; l++) {
        free(pc.pat[l]);
        free(pg.pat[l]);
    }
    free(lc);
    free(lg);
    ll_model_free(mc);
    ll_model_free(mg);
}

Test(gpu_knockout, prefill) { ll_gk_case(0); }
Test(gpu_knockout, cached_prefix_one_row) { ll_gk_case(NT - 1); }
