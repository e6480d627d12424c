/* ICL experiments E1-E3 on top of the prompt builder and the patch sweep engine
 * (see ll_icl_exp.h). */
#include "ll_icl_exp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"

/* Independent random streams: test prompts, source prompts, dummy queries, dummies. */
enum { LL_S_E1 = 1, LL_S_TEST, LL_S_SRC, LL_S_DQ, LL_S_DUMMY, LL_S_DEV };

static uint64_t ll_stream(uint64_t seed, uint64_t stream, uint64_t i) {
    uint64_t s = seed * 0xD1B54A32D192ED03ull ^ stream * 0x9E3779B97F4A7C15ull ^ i * 0xC2B2AE3D27D4EB4Full;
    ll_icl_rand(&s);
    return s;
}

ll_status ll_icl_dummy_parse(const char *s, ll_icl_dummy *out) {
    if (!strcmp(s, "filler")) *out = LL_ICL_DUMMY_FILLER;
    else if (!strcmp(s, "random")) *out = LL_ICL_DUMMY_RANDOM;
    else return ll_err(LL_ERR_ARG, "dummy \"%s\": expected filler or random", s);
    return LL_OK;
}
const char *ll_icl_dummy_name(ll_icl_dummy d) { return d == LL_ICL_DUMMY_FILLER ? "filler" : "random"; }

ll_status ll_icl_vec_mode_parse(const char *s, ll_icl_vec_mode *out) {
    if (!strcmp(s, "mean")) *out = LL_ICL_VEC_MEAN;
    else if (!strcmp(s, "per-prompt") || !strcmp(s, "hendel")) *out = LL_ICL_VEC_PER_PROMPT;
    else if (!strcmp(s, "dataset")) *out = LL_ICL_VEC_DATASET;
    else return ll_err(LL_ERR_ARG, "vector \"%s\": expected mean, per-prompt or dataset", s);
    return LL_OK;
}
const char *ll_icl_vec_mode_name(ll_icl_vec_mode v) {
    return v == LL_ICL_VEC_MEAN ? "mean" : v == LL_ICL_VEC_PER_PROMPT ? "per-prompt" : "dataset";
}

ll_status ll_icl_base_parse(const char *s, ll_icl_base *out) {
    if (!strcmp(s, "zero")) *out = LL_ICL_BASE_ZERO;
    else if (!strcmp(s, "dummy")) *out = LL_ICL_BASE_DUMMY;
    else return ll_err(LL_ERR_ARG, "base \"%s\": expected zero or dummy", s);
    return LL_OK;
}

ll_status ll_icl_local_mode_parse(const char *s, ll_icl_local_mode *out) {
    if (!strcmp(s, "per-prompt")) *out = LL_ICL_LOCAL_PER_PROMPT;
    else if (!strcmp(s, "slot")) *out = LL_ICL_LOCAL_SLOT_MEAN;
    else if (!strcmp(s, "class")) *out = LL_ICL_LOCAL_CLASS_MEAN;
    else return ll_err(LL_ERR_ARG, "local vectors \"%s\": expected per-prompt, slot or class", s);
    return LL_OK;
}
const char *ll_icl_local_mode_name(ll_icl_local_mode v) {
    return v == LL_ICL_LOCAL_PER_PROMPT ? "per-prompt" : v == LL_ICL_LOCAL_SLOT_MEAN ? "slot" : "class";
}

/* ---- setup ---------------------------------------------------------------------- */

ll_status ll_icl_exp_init(ll_icl_exp *e) {
    const ll_icl_task *t = e->task;
    e->self_check_diff = -1;
    /* Prompts longer than the model's context are refused where they are built. */
    if (!e->popts.max_tokens && e->m) e->popts.max_tokens = e->m->cfg.max_pos;
    e->cand = malloc((size_t)t->n_classes * sizeof *e->cand);
    if (!e->cand) return ll_err(LL_ERR_NOMEM, "ICL: no memory");
    e->n_cand = 0;
    for (int c = 0; c < t->n_classes; c++) {
        int32_t id;
        LL_TRY(ll_icl_label_first_token(e->tok, &e->tp, t->classes[c], &e->popts, &id));
        bool dup = false;
        for (int j = 0; j < e->n_cand && !dup; j++) dup = e->cand[j] == id;
        if (!dup) e->cand[e->n_cand++] = id;
    }
    static const char *const in_w[] = {" x", "x", " _", "_", NULL};
    static const char *const lab_w[] = {" y", "y", " -", "-", NULL};
    e->in_fill = ll_icl_filler_token(e->tok, in_w);
    e->lab_fill = ll_icl_filler_token(e->tok, lab_w);
    /* random dummies: tokens of the task's own inputs and label words */
    int cap = 4096;
    e->pool = malloc((size_t)cap * sizeof *e->pool);
    if (!e->pool) return ll_err(LL_ERR_NOMEM, "ICL: no memory");
    e->n_pool = 0;
    for (int j = 0; j < e->n_cand; j++) e->pool[e->n_pool++] = e->cand[j];
    for (int i = 0; i < t->n && i < 200 && e->n_pool < cap; i++) {
        ll_encoding enc = {0};
        LL_TRY(ll_tokenizer_encode(e->tok, t->input[i], strlen(t->input[i]), 0, &enc));
        for (size_t j = 0; j < enc.n && e->n_pool < cap; j++) e->pool[e->n_pool++] = enc.ids[j];
        ll_encoding_free(&enc);
    }
    return LL_OK;
}

void ll_icl_exp_free(ll_icl_exp *e) {
    free(e->cand);
    free(e->pool);
    e->cand = e->pool = NULL;
}

static bool ll_correct(const ll_icl_exp *e, const float *lg, int32_t gold) {
    int V = e->m->cfg.vocab_size;
    if (e->full_vocab) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (lg[i] > lg[best]) best = i;
        return best == gold;
    }
    /* argmax over the label words; the gold token competes even if the canonical-context
     * tokenization of its label gave another first token */
    int32_t best = gold;
    for (int j = 0; j < e->n_cand; j++)
        if (e->cand[j] >= 0 && e->cand[j] < V && lg[e->cand[j]] > lg[best]) best = e->cand[j];
    return best == gold;
}

static void ll_items(const ll_icl_task *t, const int *idx, int k, ll_icl_item *out) {
    for (int i = 0; i < k; i++) out[i] = (ll_icl_item){t->input[idx[i]], t->output[idx[i]]};
}

/* An episode's prompt: k demonstrations + a query drawn from random state rs. demo_idx
 * (optional, [k]) and *q get the item indices. */
static ll_status ll_episode(ll_icl_exp *e, uint64_t rs, int k, int *demo_idx, int *q_idx, ll_icl_prompt *p) {
    int *d = malloc((size_t)(k ? k : 1) * sizeof *d);
    ll_icl_item *it = malloc((size_t)(k + 1) * sizeof *it);
    int q;
    ll_status st = LL_OK;
    if (!d || !it) st = ll_err(LL_ERR_NOMEM, "ICL: no memory");
    if (!st) st = ll_icl_task_sample(e->task, &rs, k, d, &q);
    if (!st) {
        ll_items(e->task, d, k, it);
        ll_items(e->task, &q, 1, &it[k]);
        st = ll_icl_prompt_build(e->tok, &e->tp, it, k, &it[k], &e->popts, p);
        if (!st && p->n_straddle) e->n_straddle_prompts++;
    }
    if (!st && demo_idx) memcpy(demo_idx, d, (size_t)k * sizeof *d);
    if (!st && q_idx) *q_idx = q;
    free(d);
    free(it);
    return st;
}

static void ll_make_dummy(const ll_icl_exp *e, const ll_icl_prompt *p, uint64_t i, int32_t *out) {
    uint64_t rs = e->dummy == LL_ICL_DUMMY_RANDOM ? ll_stream(e->seed, LL_S_DUMMY, i) | 1 : 0;
    ll_icl_dummy_ids(p, e->in_fill, e->lab_fill, e->pool, e->n_pool, rs, out);
}

ll_status ll_icl_exp_test_prompt(ll_icl_exp *e, int t, int k, int *demo_idx, int *q_idx, ll_icl_prompt *p) {
    return ll_episode(e, ll_stream(e->seed, LL_S_TEST, (uint64_t)t), k, demo_idx, q_idx, p);
}

void ll_icl_exp_dummy(const ll_icl_exp *e, const ll_icl_prompt *p, int t, int32_t *out) {
    ll_make_dummy(e, p, (uint64_t)t, out);
}

bool ll_icl_exp_correct(const ll_icl_exp *e, const float *logits, int32_t gold) { return ll_correct(e, logits, gold); }

static void ll_tick(ll_icl_exp *e, int64_t done) {
    if (e->progress) ll_progress_update(e->progress, done, done, 0);
}

/* ---- E1 ------------------------------------------------------------------------- */

void ll_icl_e1_free(ll_icl_e1_result *r) {
    free(r->k);
    free(r->acc);
    free(r->n);
    memset(r, 0, sizeof *r);
}

ll_status ll_icl_e1(ll_icl_exp *e, const int *ks, int n_k, int n_prompts, ll_icl_e1_result *r) {
    memset(r, 0, sizeof *r);
    int V = e->m->cfg.vocab_size;
    r->n_k = n_k;
    r->k = malloc((size_t)n_k * sizeof *r->k);
    r->acc = calloc((size_t)n_k, sizeof *r->acc);
    r->n = calloc((size_t)n_k, sizeof *r->n);
    ll_icl_prompt *p = calloc((size_t)n_prompts, sizeof *p);
    const int32_t **ids = malloc((size_t)n_prompts * sizeof *ids);
    int *n = malloc((size_t)n_prompts * sizeof *n);
    float *lg = malloc((size_t)n_prompts * V * sizeof *lg);
    ll_status st = LL_OK;
    if (!r->k || !r->acc || !r->n || !p || !ids || !n || !lg) {
        st = ll_err(LL_ERR_NOMEM, "E1: no memory for %d prompts", n_prompts);
        goto done;
    }
    for (int ki = 0; ki < n_k && !st; ki++) {
        r->k[ki] = ks[ki];
        for (int i = 0; i < n_prompts && !st; i++) {
            st = ll_episode(e, ll_stream(e->seed, LL_S_E1, (uint64_t)ks[ki] * 1000003u + (uint64_t)i), ks[ki], NULL,
                            NULL, &p[i]);
            ids[i] = p[i].ids;
            n[i] = p[i].n;
        }
        if (!st) st = ll_icl_logits(e->m, n_prompts, ids, n, lg);
        int ok = 0;
        for (int i = 0; i < n_prompts && !st; i++) ok += ll_correct(e, lg + (size_t)i * V, p[i].answer[0]);
        for (int i = 0; i < n_prompts; i++) ll_icl_prompt_free(&p[i]);
        r->acc[ki] = (double)ok / n_prompts;
        r->n[ki] = n_prompts;
        ll_tick(e, ki + 1);
    }
done:
    free(p);
    free(ids);
    free(n);
    free(lg);
    if (st) ll_icl_e1_free(r);
    return st;
}

/* ---- shared by E2 / E3 ---------------------------------------------------------- */

void ll_icl_layer_result_free(ll_icl_layer_result *r) {
    free(r->acc_slot);
    free(r->acc_dev);
    free(r->acc);
    free(r->l2_mean);
    free(r->n_noop);
    memset(r, 0, sizeof *r);
}

static ll_status ll_layer_result_new(ll_icl_layer_result *r, int L) {
    memset(r, 0, sizeof *r);
    r->n_layers = L;
    r->acc = calloc((size_t)L, sizeof *r->acc);
    r->l2_mean = calloc((size_t)L, sizeof *r->l2_mean);
    r->n_noop = calloc((size_t)L, sizeof *r->n_noop);
    if (!r->acc || !r->l2_mean || !r->n_noop) return ll_err(LL_ERR_NOMEM, "ICL: no memory");
    return LL_OK;
}

static void ll_layer_result_finish(ll_icl_layer_result *r, int n_ok_base, int n_ok_icl);

/* Fold the dev accumulators into r (takes dev's acc array). */
static void ll_dev_finish(ll_icl_layer_result *r, ll_icl_layer_result *dev) {
    if (!dev->n) return;
    for (int l = 0; l < dev->n_layers; l++) dev->acc[l] /= dev->n;
    r->n_dev = dev->n;
    r->acc_dev = dev->acc;
    dev->acc = NULL;
    r->best_layer_dev = 0;
    for (int l = 1; l < r->n_layers; l++)
        if (r->acc_dev[l] > r->acc_dev[r->best_layer_dev]) r->best_layer_dev = l;
    r->acc_at_best_dev = r->acc[r->best_layer_dev];
}

static void ll_layer_result_finish(ll_icl_layer_result *r, int n_ok_base, int n_ok_icl) {
    for (int l = 0; l < r->n_layers; l++) {
        r->acc[l] /= r->n ? r->n : 1;
        r->l2_mean[l] /= r->n ? r->n : 1;
    }
    r->acc_base = (double)n_ok_base / (r->n ? r->n : 1);
    r->acc_icl = (double)n_ok_icl / (r->n ? r->n : 1);
    r->best_layer = 0;
    for (int l = 1; l < r->n_layers; l++)
        if (r->acc[l] > r->acc[r->best_layer]) r->best_layer = l;
}

/* Sweep one base prompt over every layer with per-layer sources src[l] ([n_pos][d] each,
 * given as one [L][n_pos][d] array); score and accumulate into r. */
static ll_status ll_sweep_layers(ll_icl_exp *e, const int32_t *ids, int n, const int *pos, int n_pos, const float *src,
                                 ll_patch_op op, int32_t gold, ll_icl_layer_result *r) {
    int L = e->m->cfg.n_layers, d = e->m->cfg.d_model, V = e->m->cfg.vocab_size;
    if (e->self_check && e->self_check_diff < 0) {
        LL_TRY(ll_icl_self_check(e->m, ids, n, pos, n_pos, &e->sweep, &e->self_check_diff));
        if (e->self_check_diff > 1e-4)
            return ll_err(LL_ERR_ARG,
                          "self-check failed: patching clean states into the clean prompt changed the logits by %.3g "
                          "(relative); the patch path is broken",
                          e->self_check_diff);
    }
    ll_icl_variant *v = malloc((size_t)L * sizeof *v);
    float *lg = malloc((size_t)L * V * sizeof *lg);
    ll_icl_patch_report *rep = malloc((size_t)L * sizeof *rep);
    ll_status st = LL_OK;
    if (!v || !lg || !rep) st = ll_err(LL_ERR_NOMEM, "ICL: no memory for a sweep");
    for (int l = 0; l < L && !st; l++)
        v[l] = (ll_icl_variant){.layer = l, .n_pos = n_pos, .pos = pos, .src = src + (size_t)l * n_pos * d, .op = op};
    if (!st) st = ll_icl_sweep(e->m, ids, n, v, L, &e->sweep, lg, rep, &e->stats);
    for (int l = 0; l < L && !st; l++) {
        r->acc[l] += ll_correct(e, lg + (size_t)l * V, gold);
        r->l2_mean[l] += rep[l].l2_change;
        r->n_noop[l] += rep[l].noop;
    }
    free(v);
    free(lg);
    free(rep);
    return st;
}

/* One variant per (layer, slot): only slot j's position patched, with its vector. */
static ll_status ll_sweep_slots(ll_icl_exp *e, const int32_t *ids, int n, const int *pos, int k, const float *src,
                                ll_patch_op op, int32_t gold, double *acc_slot) {
    int L = e->m->cfg.n_layers, d = e->m->cfg.d_model, V = e->m->cfg.vocab_size, nv = L * k;
    ll_icl_variant *v = malloc((size_t)nv * sizeof *v);
    float *lg = malloc((size_t)nv * V * sizeof *lg);
    ll_status st = LL_OK;
    if (!v || !lg) st = ll_err(LL_ERR_NOMEM, "ICL: no memory for a per-slot sweep");
    for (int l = 0; l < L && !st; l++)
        for (int j = 0; j < k; j++)
            v[l * k + j] = (ll_icl_variant){.layer = l, .n_pos = 1, .pos = &pos[j],
                                            .src = src + ((size_t)l * k + j) * d, .op = op};
    if (!st) st = ll_icl_sweep(e->m, ids, n, v, nv, &e->sweep, lg, NULL, &e->stats);
    for (int i = 0; i < nv && !st; i++) acc_slot[i] += ll_correct(e, lg + (size_t)i * V, gold);
    free(v);
    free(lg);
    return st;
}

/* Mean of the recorded rows: acc [L][d] += rows; used for source vectors. */
#define LL_SRC_GROUP 16 /* source prompts recorded per forward batch */

/* ---- E2 ------------------------------------------------------------------------- */

/* Mean query-position state over n_src source prompts -> v [L][d]. */
static ll_status ll_e2_mean_vector(ll_icl_exp *e, int k, int n_src, bool dataset, float *v) {
    int L = e->m->cfg.n_layers, d = e->m->cfg.d_model;
    double *acc = calloc((size_t)L * d, sizeof *acc);
    float *rec = malloc((size_t)L * LL_SRC_GROUP * d * sizeof *rec);
    ll_icl_prompt p[LL_SRC_GROUP];
    memset(p, 0, sizeof p);
    ll_status st = LL_OK;
    if (!acc || !rec) st = ll_err(LL_ERR_NOMEM, "E2: no memory");
    for (int s0 = 0; s0 < n_src && !st; s0 += LL_SRC_GROUP) {
        int g = n_src - s0 < LL_SRC_GROUP ? n_src - s0 : LL_SRC_GROUP;
        const int32_t *ids[LL_SRC_GROUP];
        int n[LL_SRC_GROUP], qp[LL_SRC_GROUP], np[LL_SRC_GROUP];
        const int *pp[LL_SRC_GROUP];
        for (int i = 0; i < g && !st; i++) {
            uint64_t rs = ll_stream(e->seed, LL_S_SRC, (uint64_t)(s0 + i));
            if (dataset) {
                /* every item once as the query, with k random other items as demonstrations */
                int qi = s0 + i, *dm = malloc((size_t)(k ? k : 1) * sizeof *dm), dq;
                ll_icl_item *it = malloc((size_t)(k + 1) * sizeof *it);
                if (!dm || !it) st = ll_err(LL_ERR_NOMEM, "E2: no memory");
                int j = 0;
                while (!st && j < k) {
                    int x = (int)(ll_icl_rand(&rs) % (uint64_t)e->task->n), dup = x == qi;
                    for (int a = 0; a < j; a++) dup |= dm[a] == x;
                    if (!dup) dm[j++] = x;
                }
                (void)dq;
                if (!st) {
                    ll_items(e->task, dm, k, it);
                    ll_items(e->task, &qi, 1, &it[k]);
                    st = ll_icl_prompt_build(e->tok, &e->tp, it, k, &it[k], &e->popts, &p[i]);
                }
                free(dm);
                free(it);
            } else {
                st = ll_episode(e, rs, k, NULL, NULL, &p[i]);
            }
            if (st) break;
            ids[i] = p[i].ids;
            n[i] = p[i].n;
            qp[i] = p[i].query_pos;
            pp[i] = &qp[i];
            np[i] = 1;
        }
        if (!st) st = ll_icl_record(e->m, g, ids, n, pp, np, e->sweep.point, rec, NULL);
        for (int l = 0; l < L && !st; l++)
            for (int i = 0; i < g; i++)
                for (int j = 0; j < d; j++) acc[(size_t)l * d + j] += rec[((size_t)l * g + i) * d + j];
        for (int i = 0; i < g; i++) ll_icl_prompt_free(&p[i]);
    }
    for (size_t j = 0; !st && j < (size_t)L * d; j++) v[j] = (float)(acc[j] / n_src);
    free(acc);
    free(rec);
    return st;
}

ll_status ll_icl_e2(ll_icl_exp *e, const ll_icl_e2_opts *oin, ll_icl_layer_result *r) {
    ll_icl_e2_opts o = *oin;
    if (o.k <= 0) o.k = 5;
    if (o.n_test <= 0) o.n_test = 50;
    if (o.n_src <= 0) o.n_src = 50;
    if (o.vec == LL_ICL_VEC_DATASET) o.n_src = e->task->n < 1000 ? e->task->n : 1000;
    if (o.k + 3 > e->task->n)
        return ll_err(LL_ERR_ARG, "E2: task %s has %d items; %d demonstrations, a query and 2 dummy queries need %d",
                      e->task->name, e->task->n, o.k, o.k + 3);
    int L = e->m->cfg.n_layers, d = e->m->cfg.d_model, V = e->m->cfg.vocab_size;
    LL_TRY(ll_layer_result_new(r, L));
    float *vec = malloc((size_t)L * d * sizeof *vec);
    float *rec = malloc((size_t)L * 2 * d * sizeof *rec);
    float *lg = malloc((size_t)2 * V * sizeof *lg);
    int *dm = malloc((size_t)o.k * sizeof *dm);
    ll_icl_item *it = malloc((size_t)(o.k + 1) * sizeof *it);
    int32_t *base = NULL;
    ll_status st = LL_OK;
    int ok_base = 0, ok_icl = 0;
    if (!vec || !rec || !lg || !dm || !it) st = ll_err(LL_ERR_NOMEM, "E2: no memory");
    ll_icl_layer_result dev = {0};
    if (!st && o.n_dev > 0) st = ll_layer_result_new(&dev, L);
    if (!st && o.vec != LL_ICL_VEC_PER_PROMPT) st = ll_e2_mean_vector(e, o.k, o.n_src, o.vec == LL_ICL_VEC_DATASET, vec);
    int n_dev = o.n_dev > 0 ? o.n_dev : 0;
    for (int tt = 0; tt < n_dev + o.n_test && !st; tt++) {
        /* dev prompts first (their own stream), then the test prompts */
        bool is_dev = tt < n_dev;
        int t = is_dev ? tt : tt - n_dev;
        ll_icl_layer_result *tgt = is_dev ? &dev : r;
        ll_icl_prompt icl = {0}, zero = {0}, dq[2] = {{0}};
        int q;
        st = ll_episode(e, ll_stream(e->seed, is_dev ? LL_S_DEV : LL_S_TEST, (uint64_t)t), o.k, dm, &q, &icl);
        ll_icl_item qi = {e->task->input[q], e->task->output[q]};
        if (!st && o.base == LL_ICL_BASE_ZERO) st = ll_icl_prompt_build(e->tok, &e->tp, NULL, 0, &qi, &e->popts, &zero);
        if (!st && o.vec == LL_ICL_VEC_PER_PROMPT) {
            /* Hendel et al.: the same demonstrations with two other queries (dummy
             * queries); the vector is the mean of their last-position states. */
            uint64_t rs = ll_stream(e->seed, LL_S_DQ, (is_dev ? 1ull << 32 : 0) + (uint64_t)t);
            int x[2];
            for (int a = 0; a < 2; a++)
                for (;;) {
                    x[a] = (int)(ll_icl_rand(&rs) % (uint64_t)e->task->n);
                    int dup = x[a] == q || (a && x[1] == x[0]);
                    for (int j = 0; j < o.k; j++) dup |= dm[j] == x[a];
                    if (!dup) break;
                }
            ll_items(e->task, dm, o.k, it);
            for (int a = 0; a < 2 && !st; a++) {
                ll_icl_item dqi = {e->task->input[x[a]], NULL};
                st = ll_icl_prompt_build(e->tok, &e->tp, it, o.k, &dqi, &e->popts, &dq[a]);
            }
            if (!st) {
                const int32_t *ids[2] = {dq[0].ids, dq[1].ids};
                int n[2] = {dq[0].n, dq[1].n}, qp[2] = {dq[0].query_pos, dq[1].query_pos}, np[2] = {1, 1};
                const int *pp[2] = {&qp[0], &qp[1]};
                st = ll_icl_record(e->m, 2, ids, n, pp, np, e->sweep.point, rec, NULL);
                for (int l = 0; l < L && !st; l++)
                    for (int j = 0; j < d; j++)
                        vec[(size_t)l * d + j] = 0.5f * (rec[((size_t)l * 2) * d + j] + rec[((size_t)l * 2 + 1) * d + j]);
            }
        }
        const int32_t *bids = NULL;
        int bn = 0;
        if (!st) {
            if (o.base == LL_ICL_BASE_ZERO) {
                bids = zero.ids;
                bn = zero.n;
            } else {
                free(base);
                base = malloc((size_t)icl.n * sizeof *base);
                if (!base) st = ll_err(LL_ERR_NOMEM, "E2: no memory");
                else ll_make_dummy(e, &icl, (is_dev ? 1ull << 32 : 0) + (uint64_t)t, base);
                bids = base;
                bn = icl.n;
            }
        }
        int32_t gold = !st ? icl.answer[0] : 0;
        if (!st) {
            /* unpatched base and the clean ICL prompt */
            const int32_t *ids[2] = {bids, icl.ids};
            int n[2] = {bn, icl.n};
            st = ll_icl_logits(e->m, 2, ids, n, lg);
            if (!st && !is_dev) {
                ok_base += ll_correct(e, lg, gold);
                ok_icl += ll_correct(e, lg + V, gold);
            }
        }
        if (!st) {
            int last = bn - 1;
            st = ll_sweep_layers(e, bids, bn, &last, 1, vec, o.op, gold, tgt);
        }
        if (!st) tgt->n++;
        ll_icl_prompt_free(&icl);
        ll_icl_prompt_free(&zero);
        ll_icl_prompt_free(&dq[0]);
        ll_icl_prompt_free(&dq[1]);
        ll_tick(e, tt + 1);
    }
    if (!st) {
        ll_layer_result_finish(r, ok_base, ok_icl);
        ll_dev_finish(r, &dev);
    }
    ll_icl_layer_result_free(&dev);
    free(vec);
    free(rec);
    free(lg);
    free(dm);
    free(it);
    free(base);
    if (st) ll_icl_layer_result_free(r);
    return st;
}

/* ---- E3 ------------------------------------------------------------------------- */

/* Label positions of a prompt under the chosen mode; false when one is missing. */
static bool ll_label_positions(const ll_icl_prompt *p, ll_icl_label_pos lp, int *pos) {
    for (int i = 0; i < p->k; i++)
        if ((pos[i] = ll_icl_label_position(p, i, lp)) < 0) return false;
    return true;
}

/* Slot means [L][k][d] and class means [L][C][d] (with counts) over n_src source prompts. */
static ll_status ll_e3_means(ll_icl_exp *e, int k, int n_src, ll_icl_label_pos lp, float *slot, float *cls, int *cls_n) {
    int L = e->m->cfg.n_layers, d = e->m->cfg.d_model, C = e->task->n_classes;
    double *sa = calloc((size_t)L * k * d, sizeof *sa), *ca = calloc((size_t)L * C * d, sizeof *ca);
    float *rec = malloc((size_t)L * LL_SRC_GROUP * k * d * sizeof *rec);
    int *pos = malloc((size_t)LL_SRC_GROUP * k * sizeof *pos), *dm = malloc((size_t)LL_SRC_GROUP * k * sizeof *dm);
    ll_icl_prompt p[LL_SRC_GROUP];
    memset(p, 0, sizeof p);
    memset(cls_n, 0, (size_t)C * sizeof *cls_n);
    int used = 0;
    ll_status st = LL_OK;
    if (!sa || !ca || !rec || !pos || !dm) st = ll_err(LL_ERR_NOMEM, "E3: no memory");
    for (int s0 = 0; s0 < n_src && !st; s0 += LL_SRC_GROUP) {
        int g = 0;
        const int32_t *ids[LL_SRC_GROUP];
        int n[LL_SRC_GROUP], np[LL_SRC_GROUP];
        const int *pp[LL_SRC_GROUP];
        for (int i = 0; i < LL_SRC_GROUP && s0 + i < n_src && !st; i++) {
            st = ll_episode(e, ll_stream(e->seed, LL_S_SRC, (uint64_t)(s0 + i)), k, dm + (size_t)g * k, NULL, &p[g]);
            if (st) break;
            if (!ll_label_positions(&p[g], lp, pos + (size_t)g * k)) {
                ll_icl_prompt_free(&p[g]);
                continue;
            }
            ids[g] = p[g].ids;
            n[g] = p[g].n;
            pp[g] = pos + (size_t)g * k;
            np[g] = k;
            g++;
        }
        if (!st && g) st = ll_icl_record(e->m, g, ids, n, pp, np, e->sweep.point, rec, NULL);
        for (int l = 0; l < L && !st; l++)
            for (int i = 0; i < g; i++)
                for (int j = 0; j < k; j++) {
                    const float *x = rec + (((size_t)l * g + i) * k + j) * d;
                    int c = e->task->cls[dm[(size_t)i * k + j]];
                    for (int a = 0; a < d; a++) {
                        sa[((size_t)l * k + j) * d + a] += x[a];
                        ca[((size_t)l * C + c) * d + a] += x[a];
                    }
                    if (l == 0) cls_n[c]++;
                }
        used += g;
        for (int i = 0; i < g; i++) ll_icl_prompt_free(&p[i]);
    }
    if (!st && !used) st = ll_err(LL_ERR_ARG, "E3: no source prompt had every label position");
    for (int l = 0; l < L && !st; l++) {
        for (size_t a = 0; a < (size_t)k * d; a++) slot[(size_t)l * k * d + a] = (float)(sa[(size_t)l * k * d + a] / used);
        for (int c = 0; c < C; c++)
            for (int a = 0; a < d; a++)
                cls[((size_t)l * C + c) * d + a] = cls_n[c] ? (float)(ca[((size_t)l * C + c) * d + a] / cls_n[c]) : 0.0f;
    }
    free(sa);
    free(ca);
    free(rec);
    free(pos);
    free(dm);
    return st;
}

ll_status ll_icl_e3(ll_icl_exp *e, const ll_icl_e3_opts *oin, ll_icl_layer_result *r) {
    ll_icl_e3_opts o = *oin;
    if (o.k <= 0) o.k = 8;
    if (o.n_test <= 0) o.n_test = 50;
    if (o.n_src <= 0) o.n_src = 50;
    if (o.k + 1 > e->task->n)
        return ll_err(LL_ERR_ARG, "E3: task %s has %d items; %d demonstrations and a query need %d", e->task->name,
                      e->task->n, o.k, o.k + 1);
    int L = e->m->cfg.n_layers, d = e->m->cfg.d_model, V = e->m->cfg.vocab_size, C = e->task->n_classes, k = o.k;
    LL_TRY(ll_layer_result_new(r, L));
    float *slot = NULL, *cls = NULL;
    int *cls_n = NULL;
    float *src = malloc((size_t)L * k * d * sizeof *src);
    float *lg = malloc((size_t)2 * V * sizeof *lg);
    int *pos = malloc((size_t)k * sizeof *pos), *dm = malloc((size_t)k * sizeof *dm);
    int32_t *dummy = NULL;
    ll_status st = LL_OK;
    int ok_base = 0, ok_icl = 0;
    if (!src || !lg || !pos || !dm) st = ll_err(LL_ERR_NOMEM, "E3: no memory");
    if (!st && o.mode != LL_ICL_LOCAL_PER_PROMPT) {
        slot = malloc((size_t)L * k * d * sizeof *slot);
        cls = malloc((size_t)L * C * d * sizeof *cls);
        cls_n = malloc((size_t)C * sizeof *cls_n);
        if (!slot || !cls || !cls_n) st = ll_err(LL_ERR_NOMEM, "E3: no memory");
        else st = ll_e3_means(e, k, o.n_src, o.label_pos, slot, cls, cls_n);
    }
    ll_icl_layer_result dev = {0};
    if (!st && o.n_dev > 0) st = ll_layer_result_new(&dev, L);
    r->k = k;
    if (!st && o.per_slot && !(r->acc_slot = calloc((size_t)L * k, sizeof *r->acc_slot)))
        st = ll_err(LL_ERR_NOMEM, "E3: no memory");
    int n_dev = o.n_dev > 0 ? o.n_dev : 0;
    for (int tt = 0; tt < n_dev + o.n_test && !st; tt++) {
        bool is_dev = tt < n_dev;
        int t = is_dev ? tt : tt - n_dev;
        ll_icl_layer_result *tgt = is_dev ? &dev : r;
        ll_icl_prompt p = {0};
        int q;
        st = ll_episode(e, ll_stream(e->seed, is_dev ? LL_S_DEV : LL_S_TEST, (uint64_t)t), k, dm, &q, &p);
        if (st) break;
        if (!ll_label_positions(&p, o.label_pos, pos)) {
            ll_icl_prompt_free(&p);
            continue;
        }
        free(dummy);
        dummy = malloc((size_t)p.n * sizeof *dummy);
        if (!dummy) {
            st = ll_err(LL_ERR_NOMEM, "E3: no memory");
            ll_icl_prompt_free(&p);
            break;
        }
        ll_make_dummy(e, &p, (is_dev ? 1ull << 32 : 0) + (uint64_t)t, dummy);
        int32_t gold = p.answer[0];
        const int32_t *ids[2] = {dummy, p.ids};
        int n[2] = {p.n, p.n};
        if (o.mode == LL_ICL_LOCAL_PER_PROMPT) {
            const int *pp[1] = {pos};
            int np = k;
            st = ll_icl_record(e->m, 1, &ids[1], &n[1], pp, &np, e->sweep.point, src, NULL);
        } else {
            for (int l = 0; l < L; l++)
                for (int j = 0; j < k; j++) {
                    const float *x = o.mode == LL_ICL_LOCAL_SLOT_MEAN
                                         ? slot + ((size_t)l * k + j) * d
                                         : cls + ((size_t)l * C + e->task->cls[dm[j]]) * d;
                    memcpy(src + ((size_t)l * k + j) * d, x, (size_t)d * sizeof *src);
                }
        }
        if (!st) st = ll_icl_logits(e->m, 2, ids, n, lg);
        if (!st) {
            if (!is_dev) {
                ok_base += ll_correct(e, lg, gold);
                ok_icl += ll_correct(e, lg + V, gold);
            }
            st = ll_sweep_layers(e, dummy, p.n, pos, k, src, o.op, gold, tgt);
        }
        if (!st && o.per_slot && !is_dev) st = ll_sweep_slots(e, dummy, p.n, pos, k, src, o.op, gold, r->acc_slot);
        if (!st) tgt->n++;
        ll_icl_prompt_free(&p);
        ll_tick(e, tt + 1);
    }
    if (!st && !r->n) st = ll_err(LL_ERR_ARG, "E3: no test prompt had every label position");
    if (!st) {
        for (int a = 0; r->acc_slot && a < L * k; a++) r->acc_slot[a] /= r->n;
        ll_layer_result_finish(r, ok_base, ok_icl);
        ll_dev_finish(r, &dev);
    }
    ll_icl_layer_result_free(&dev);
    free(slot);
    free(cls);
    free(cls_n);
    free(src);
    free(lg);
    free(pos);
    free(dm);
    free(dummy);
    if (st) ll_icl_layer_result_free(r);
    return st;
}
