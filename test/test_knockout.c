/* Attention knockouts (ll_forward_opts.knockouts) against an independent reference:
 * Hugging Face transformers' eager Llama on test/fixtures/llama_gqa with per-layer
 * additive masks (tools/knockout_ref.py -> test/fixtures/knockout/expected.safetensors),
 * and the defining property checked directly: at the first knocked layer (same q and k
 * as without knockouts) the named entries are 0, the rest of a named row is the plain
 * row renormalised, and unnamed rows are bit-identical. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_test_util.h"

#define FIX "test/fixtures/llama_gqa"
#define REF "test/fixtures/knockout/expected.safetensors"

/* Must match KO in tools/knockout_ref.py. */
static const int32_t q0[] = {9, 12, 13}, k0[] = {2, 3, 7};
static const int32_t q1[] = {13}, k1[] = {0, 1, 2, 3, 4, 5};
static const int32_t q2[] = {5, 6, 7, 8}, k2[] = {1, 4};
static const int32_t q3[] = {6}, k3[] = {6};
static const ll_knockout KO[] = {
    {.layer_lo = 0, .layer_hi = 1, .seq = 0, .head = -1, .q = q0, .n_q = 3, .k = k0, .n_k = 3},
    {.layer_lo = 2, .layer_hi = 2, .seq = 0, .head = 3, .q = q1, .n_q = 1, .k = k1, .n_k = 6},
    {.layer_lo = 1, .layer_hi = 2, .seq = 1, .head = -1, .q = q2, .n_q = 4, .k = k2, .n_k = 2},
    {.layer_lo = 0, .layer_hi = 0, .seq = 1, .head = 0, .q = q3, .n_q = 1, .k = k3, .n_k = 1},
};
#define N_KO 4

/* Attention patterns of every layer and sequence: pat[l][s] = [H][n_new][n_keys]. */
typedef struct {
    float *pat[8][4];
    int n_keys[8][4], n_new[8][4], H;
} ll_pat_capture;

static ll_status ll_pat_fn(void *user, const ll_hook_rows *r) {
    ll_pat_capture *c = user;
    size_t n = (size_t)r->n_heads * r->n_rows * r->n_keys;
    free(c->pat[r->layer][r->seq]);
    c->pat[r->layer][r->seq] = malloc(n * sizeof(float));
    memcpy(c->pat[r->layer][r->seq], r->data, n * sizeof(float));
    c->n_keys[r->layer][r->seq] = r->n_keys;
    c->n_new[r->layer][r->seq] = r->n_rows;
    c->H = r->n_heads;
    return LL_OK;
}

static void ll_pat_free(ll_pat_capture *c) {
    for (int l = 0; l < 8; l++)
        for (int s = 0; s < 4; s++) free(c->pat[l][s]);
}

typedef struct {
    ll_model *m;
    ll_tensor_set ref;
    int32_t tok[23];
    int64_t off[3];
} ll_ko_fix;

static void ll_ko_open(ll_ko_fix *f) {
    memset(f, 0, sizeof *f);
    cr_assert_eq(ll_model_load(&f->m, FIX, NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_safetensors_open(&f->ref, REF), LL_OK, "%s", ll_last_error());
    const ll_tensor_info *t0 = ll_tensor_set_find(&f->ref, "tokens_0"), *t1 = ll_tensor_set_find(&f->ref, "tokens_1");
    cr_assert(t0 && t1 && t0->dtype == LL_I32 && t0->shape[0] == 14 && t1->shape[0] == 9, "%s: tokens", REF);
    memcpy(f->tok, t0->data, 14 * 4);
    memcpy(f->tok + 14, t1->data, 9 * 4);
    f->off[0] = 0, f->off[1] = 14, f->off[2] = 23;
}

static void ll_ko_close(ll_ko_fix *f) {
    ll_model_free(f->m);
    ll_tensor_set_free(&f->ref);
}

/* Forward of the two-sequence batch with patterns recorded at every layer. */
static ll_status ll_ko_run(ll_ko_fix *f, const ll_knockout *ko, int n_ko, ll_pat_capture *pc, float *logits) {
    int L = f->m->cfg.n_layers;
    ll_hooks *h;
    cr_assert_eq(ll_hooks_new(&h, L), LL_OK);
    ll_record r = {.point = LL_HOOK_ATTN_PATTERN, .layer_lo = 0, .layer_hi = L - 1, .fn = ll_pat_fn, .user = pc};
    cr_assert_eq(ll_hooks_add_record(h, &r), LL_OK);
    ll_batch b = {.n_seq = 2, .seq_off = f->off, .tokens = f->tok};
    ll_forward_opts o = {.hooks = h, .logits = LL_LOGITS_ALL, .logits_out = logits, .knockouts = ko,
                         .n_knockouts = n_ko};
    ll_status st = ll_forward(f->m, &b, &o);
    ll_hooks_free(h);
    return st;
}

static double ll_max_abs(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

static void ll_check_against_ref(int knock) {
    ll_ko_fix f;
    ll_ko_open(&f);
    const ll_config *c = &f.m->cfg;
    int L = c->n_layers, H = c->n_heads, V = c->vocab_size;
    ll_pat_capture pc = {0};
    float *logits = malloc((size_t)23 * V * sizeof(float));
    cr_assert_eq(ll_ko_run(&f, knock ? KO : NULL, knock ? N_KO : 0, &pc, logits), LL_OK, "%s", ll_last_error());
    const char *tag = knock ? "ko" : "base";
    for (int s = 0; s < 2; s++) {
        int n = s ? 9 : 14;
        char name[64];
        snprintf(name, sizeof name, "attn_%s_%d", tag, s);
        size_t na;
        float *ra = ll_test_f32(&f.ref, name, &na);
        cr_assert(ra && na == (size_t)L * H * n * n, "%s: %s missing or mis-sized", REF, name);
        for (int l = 0; l < L; l++) {
            cr_assert(pc.pat[l][s] && pc.n_keys[l][s] == n && pc.n_new[l][s] == n);
            double e = ll_max_abs(pc.pat[l][s], ra + (size_t)l * H * n * n, (size_t)H * n * n);
            cr_expect(e < 2e-5, "%s: layer %d sequence %d: attention differs from transformers by %.3g", tag, l, s, e);
        }
        snprintf(name, sizeof name, "logits_%s_%d", tag, s);
        float *rl = ll_test_f32(&f.ref, name, NULL);
        cr_assert(rl, "%s: %s missing", REF, name);
        double e = ll_test_rel_err(logits + (size_t)f.off[s] * V, rl, (size_t)n * V);
        cr_expect(e < 1e-4, "%s: sequence %d logits differ from transformers (rel %.3g)", tag, s, e);
        free(ra);
        free(rl);
    }
    ll_pat_free(&pc);
    free(logits);
    ll_ko_close(&f);
}

Test(knockout, plain_matches_transformers) { ll_check_against_ref(0); }
Test(knockout, knocked_matches_transformers) { ll_check_against_ref(1); }

/* Is (layer, seq, head, query index q, key j) named by KO? */
static int ll_named(int l, int s, int h, int q, int j) {
    for (int i = 0; i < N_KO; i++) {
        const ll_knockout *k = &KO[i];
        if (l < k->layer_lo || l > k->layer_hi || k->seq != s || (k->head >= 0 && k->head != h)) continue;
        int inq = 0, ink = 0;
        for (int a = 0; a < k->n_q; a++) inq |= k->q[a] == q;
        for (int a = 0; a < k->n_k; a++) ink |= k->k[a] == j;
        if (inq && (ink || j < 0)) return 1;
    }
    return 0;
}

/* Layer 0 sees the same q and k with and without knockouts, so its knocked pattern is a
 * function of the plain one alone: named entries 0, the rest of a named row renormalised,
 * unnamed rows bit-identical. Later layers of an untouched sequence are unchanged too. */
Test(knockout, names_exactly_its_entries) {
    ll_ko_fix f;
    ll_ko_open(&f);
    int V = f.m->cfg.vocab_size, H = f.m->cfg.n_heads;
    ll_pat_capture base = {0}, ko = {0};
    float *lg = malloc((size_t)23 * V * sizeof(float));
    cr_assert_eq(ll_ko_run(&f, NULL, 0, &base, lg), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_ko_run(&f, KO, N_KO, &ko, lg), LL_OK, "%s", ll_last_error());
    int n_named = 0, n_same = 0;
    for (int s = 0; s < 2; s++) {
        int n = s ? 9 : 14;
        for (int h = 0; h < H; h++)
            for (int q = 0; q < n; q++) {
                const float *pb = base.pat[0][s] + ((size_t)h * n + q) * n;
                const float *pk = ko.pat[0][s] + ((size_t)h * n + q) * n;
                if (!ll_named(0, s, h, q, -1)) {
                    cr_assert(memcmp(pb, pk, (size_t)n * sizeof(float)) == 0, "seq %d head %d row %d: unnamed row changed",
                              s, h, q);
                    n_same++;
                    continue;
                }
                double blocked = 0;
                for (int j = 0; j <= q; j++)
                    if (ll_named(0, s, h, q, j)) blocked += pb[j];
                cr_assert(blocked > 1e-6, "seq %d head %d row %d: the test needs blocked mass", s, h, q);
                for (int j = 0; j < n; j++) {
                    if (ll_named(0, s, h, q, j) || j > q) {
                        cr_assert_eq(pk[j], 0.0f, "seq %d head %d row %d key %d: named entry is %g", s, h, q, j, pk[j]);
                    } else {
                        double want = pb[j] / (1.0 - blocked);
                        cr_assert(fabs(pk[j] - want) <= 1e-6 + 1e-5 * want, "seq %d head %d row %d key %d: %g, "
                                  "renormalised plain %g", s, h, q, j, pk[j], want);
                    }
                }
                n_named++;
            }
    }
    cr_assert_eq(n_named, 4 * 3 + 1, "named rows at layer 0: 4 heads x 3 rows of seq 0 + 1 row of seq 1");
    cr_assert_gt(n_same, 0);
    ll_pat_free(&base);
    ll_pat_free(&ko);
    free(lg);
    ll_ko_close(&f);
}

/* With a KV cache, indices count from the sequence's first cached token: sequence 0 run
 * as 8 + 6 tokens gives transformers' knocked logits for its last 6 rows. */
Test(knockout, kv_cache_indices) {
    ll_ko_fix f;
    ll_ko_open(&f);
    int V = f.m->cfg.vocab_size;
    ll_kv_cache *kc;
    cr_assert_eq(ll_kv_cache_new(&kc, f.m, 1, 32), LL_OK, "%s", ll_last_error());
    ll_knockout ko[2] = {KO[0], KO[1]};
    ko[0].seq = ko[1].seq = 0;
    float *lg = malloc((size_t)8 * V * sizeof(float));
    int64_t o1[2] = {0, 8}, o2[2] = {0, 6};
    ll_batch b1 = {.n_seq = 1, .seq_off = o1, .tokens = f.tok};
    ll_forward_opts fo = {.cache = kc, .logits = LL_LOGITS_ALL, .logits_out = lg, .knockouts = ko, .n_knockouts = 2};
    cr_assert_eq(ll_forward(f.m, &b1, &fo), LL_OK, "%s", ll_last_error());
    ll_batch b2 = {.n_seq = 1, .seq_off = o2, .tokens = f.tok + 8};
    cr_assert_eq(ll_forward(f.m, &b2, &fo), LL_OK, "%s", ll_last_error());
    float *rl = ll_test_f32(&f.ref, "logits_ko_0", NULL);
    double e = ll_test_rel_err(lg, rl + (size_t)8 * V, (size_t)6 * V);
    cr_expect(e < 1e-4, "cached knockout logits differ from transformers (rel %.3g)", e);
    free(rl);
    free(lg);
    ll_kv_cache_free(kc);
    ll_ko_close(&f);
}

/* A row whose every visible key is blocked attends to nothing: pattern row 0, head output 0. */
Test(knockout, fully_blocked_row) {
    ll_ko_fix f;
    ll_ko_open(&f);
    const ll_config *c = &f.m->cfg;
    int V = c->vocab_size, H = c->n_heads, hd = c->head_dim;
    int32_t q[] = {3}, k[] = {0, 1, 2, 3};
    ll_knockout ko = {.layer_lo = 1, .layer_hi = 1, .seq = 1, .head = 2, .q = q, .n_q = 1, .k = k, .n_k = 4};
    ll_hooks *h;
    cr_assert_eq(ll_hooks_new(&h, c->n_layers), LL_OK);
    ll_pat_capture pc = {0};
    ll_test_capture z = {.n_layers_total = c->n_layers, .T = 23, .width = H * hd};
    z.data = calloc((size_t)c->n_layers * 23 * H * hd, sizeof(float));
    ll_record r1 = {.point = LL_HOOK_ATTN_PATTERN, .layer_lo = 1, .layer_hi = 1, .fn = ll_pat_fn, .user = &pc};
    ll_record r2 = {.point = LL_HOOK_ATTN_Z, .layer_lo = 1, .layer_hi = 1, .fn = ll_test_capture_fn, .user = &z};
    cr_assert_eq(ll_hooks_add_record(h, &r1), LL_OK);
    cr_assert_eq(ll_hooks_add_record(h, &r2), LL_OK);
    float *lg = malloc((size_t)23 * V * sizeof(float));
    ll_batch b = {.n_seq = 2, .seq_off = f.off, .tokens = f.tok};
    ll_forward_opts o = {.hooks = h, .logits = LL_LOGITS_ALL, .logits_out = lg, .knockouts = &ko, .n_knockouts = 1};
    cr_assert_eq(ll_forward(f.m, &b, &o), LL_OK, "%s", ll_last_error());
    const float *row = pc.pat[1][1] + ((size_t)2 * 9 + 3) * 9;
    for (int j = 0; j < 9; j++) cr_assert_eq(row[j], 0.0f, "key %d: %g", j, row[j]);
    const float *zr = z.data + ((size_t)1 * 23 + 14 + 3) * H * hd + 2 * hd;
    for (int i = 0; i < hd; i++) cr_assert_eq(zr[i], 0.0f, "z[%d] = %g", i, zr[i]);
    for (size_t i = 0; i < (size_t)23 * V; i++) cr_assert(isfinite(lg[i]), "logit %zu is %g", i, lg[i]);
    /* the neighbouring head of the same row still attends */
    const float *row1 = pc.pat[1][1] + ((size_t)1 * 9 + 3) * 9;
    double s = 0;
    for (int j = 0; j < 9; j++) s += row1[j];
    cr_assert(fabs(s - 1) < 1e-5, "head 1 row sum %g", s);
    ll_pat_free(&pc);
    free(z.data);
    free(lg);
    ll_hooks_free(h);
    ll_ko_close(&f);
}

/* Knockouts that name nothing computed here leave the forward bit-identical. */
Test(knockout, naming_nothing_is_free) {
    ll_ko_fix f;
    ll_ko_open(&f);
    int V = f.m->cfg.vocab_size;
    float *a = malloc((size_t)23 * V * sizeof(float)), *b2 = malloc((size_t)23 * V * sizeof(float));
    ll_batch b = {.n_seq = 2, .seq_off = f.off, .tokens = f.tok};
    ll_forward_opts o = {.logits = LL_LOGITS_ALL, .logits_out = a};
    cr_assert_eq(ll_forward(f.m, &b, &o), LL_OK);
    int32_t q[] = {5, 40}; /* 40: past both sequences' ends, skipped */
    ll_knockout ko[2] = {{.layer_lo = 0, .layer_hi = 2, .seq = -1, .head = -1, .q = q, .n_q = 2, .k = NULL, .n_k = 0},
                         {.layer_lo = 0, .layer_hi = 2, .seq = 0, .head = -1, .q = q, .n_q = 1, .k = q, .n_k = 1}};
    ko[1].layer_lo = ko[1].layer_hi = 0;
    int32_t k6[] = {6};
    ko[1].k = k6; /* a later key: not visible to query 5 anyway */
    o.logits_out = b2;
    o.knockouts = ko;
    o.n_knockouts = 2;
    cr_assert_eq(ll_forward(f.m, &b, &o), LL_OK, "%s", ll_last_error());
    cr_assert(memcmp(a, b2, (size_t)23 * V * sizeof(float)) == 0, "logits changed");
    free(a);
    free(b2);
    ll_ko_close(&f);
}

Test(knockout, bad_specs_are_refused) {
    ll_ko_fix f;
    ll_ko_open(&f);
    int V = f.m->cfg.vocab_size;
    float *lg = malloc((size_t)23 * V * sizeof(float));
    ll_batch b = {.n_seq = 2, .seq_off = f.off, .tokens = f.tok};
    int32_t q[] = {3}, k[] = {1}, neg[] = {-1};
    struct {
        ll_knockout ko;
        const char *says;
    } bad[] = {
        {{.layer_lo = 0, .layer_hi = 3, .seq = 0, .head = -1, .q = q, .n_q = 1, .k = k, .n_k = 1}, "layers [0, 3]"},
        {{.layer_lo = 1, .layer_hi = 0, .seq = 0, .head = -1, .q = q, .n_q = 1, .k = k, .n_k = 1}, "layers [1, 0]"},
        {{.layer_lo = 0, .layer_hi = 0, .seq = 2, .head = -1, .q = q, .n_q = 1, .k = k, .n_k = 1}, "sequence 2"},
        {{.layer_lo = 0, .layer_hi = 0, .seq = 0, .head = 4, .q = q, .n_q = 1, .k = k, .n_k = 1}, "head 4"},
        {{.layer_lo = 0, .layer_hi = 0, .seq = 0, .head = -1, .q = q, .n_q = 1, .k = neg, .n_k = 1}, "negative"},
        {{.layer_lo = 0, .layer_hi = 0, .seq = 0, .head = -1, .q = NULL, .n_q = 1, .k = k, .n_k = 1}, "NULL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ll_forward_opts o = {.logits = LL_LOGITS_ALL, .logits_out = lg, .knockouts = &bad[i].ko, .n_knockouts = 1};
        ll_status st = ll_forward(f.m, &b, &o);
        cr_expect_eq(st, LL_ERR_ARG, "case %zu accepted", i);
        cr_expect(strstr(ll_last_error(), bad[i].says), "case %zu: message \"%s\" lacks \"%s\"", i, ll_last_error(),
                  bad[i].says);
    }
    free(lg);
    ll_ko_close(&f);
}
