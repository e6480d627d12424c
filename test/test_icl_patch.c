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

/* ---- experiments -------------------------------------------------------------------- */

#include <hdf5.h>
#include <stdio.h>
#include <unistd.h>

#include "icl/ll_icl_exp.h"
#include "store/ll_h5.h"

/* Positions, dummies and the sweep together: patching the clean prompt's block-0 input
 * (the token embedding, plus the position embedding on GPT-2) at every label token of
 * the dummy prompt must give exactly the logits of the dummy prompt with those label
 * tokens put back as ids. */
static void ll_label_restore_case(const char *model, const char *task_spec, const char *tmpl) {
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, model, NULL), LL_OK, "%s", ll_last_error());
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_for_model(&t, model, NULL, m->cfg.vocab_size), LL_OK, "%s", ll_last_error());
    ll_icl_task *task;
    ll_icl_task_opts to = {.words = "toy", .seed = 3};
    cr_assert_eq(ll_icl_task_load(task_spec, &to, &task), LL_OK, "%s", ll_last_error());
    ll_icl_template tp;
    cr_assert_eq(ll_icl_template_get(tmpl, &tp), LL_OK);
    int k = 5, d = m->cfg.d_model, V = m->cfg.vocab_size, L = m->cfg.n_layers;
    ll_icl_item it[6];
    /* open tasks: the items with the longest labels, so that labels take several tokens */
    int pick[6] = {0, 3, 6, 9, 12, 15};
    if (!task->classification)
        for (int i = 0; i <= k; i++) {
            int best = -1;
            for (int j = 0; j < task->n; j++) {
                bool used = false;
                for (int q = 0; q < i; q++) used |= pick[q] == j;
                if (!used && (best < 0 || strlen(task->output[j]) > strlen(task->output[best]))) best = j;
            }
            pick[i] = best;
        }
    for (int i = 0; i <= k; i++) it[i] = (ll_icl_item){task->input[pick[i]], task->output[pick[i]]};
    ll_icl_prompt p;
    cr_assert_eq(ll_icl_prompt_build(t, &tp, it, k, &it[k], NULL, &p), LL_OK, "%s", ll_last_error());
    int32_t *dummy = malloc((size_t)p.n * sizeof *dummy), *restored = malloc((size_t)p.n * sizeof *restored);
    static const char *const fw[] = {" x", "x", NULL};
    int32_t fill = ll_icl_filler_token(t, fw);
    ll_icl_dummy_ids(&p, fill, fill, NULL, 0, 0, dummy);
    memcpy(restored, dummy, (size_t)p.n * sizeof *restored);
    int pos[64], np = 0;
    for (int i = 0; i < k; i++)
        for (int j = p.demo[i].lab_lo; j <= p.demo[i].lab_hi; j++) {
            pos[np++] = j;
            restored[j] = p.ids[j];
        }
    cr_assert(memcmp(dummy, p.ids, (size_t)p.n * sizeof *dummy), "the dummy equals the prompt");
    float *clean = malloc((size_t)L * np * d * sizeof *clean), *lg = malloc(2 * (size_t)V * sizeof *lg);
    const int32_t *ids[1] = {p.ids};
    const int *pp[1] = {pos};
    cr_assert_eq(ll_icl_record(m, 1, ids, &p.n, pp, &np, LL_HOOK_RESID_PRE, clean, NULL), LL_OK, "%s", ll_last_error());
    ll_icl_variant v = {.layer = 0, .n_pos = np, .pos = pos, .src = clean, .op = LL_PATCH_REPLACE};
    ll_icl_patch_report rep;
    cr_assert_eq(ll_icl_sweep(m, dummy, p.n, &v, 1, NULL, lg, &rep, NULL), LL_OK, "%s", ll_last_error());
    const int32_t *rid[1] = {restored};
    cr_assert_eq(ll_icl_logits(m, 1, rid, &p.n, lg + V), LL_OK);
    double e = ll_test_rel_err(lg, lg + V, (size_t)V);
    cr_log_info("icl label restore %s / %s / %s: %d label tokens, L2 change %.3g, logit error %.3g", model, task_spec,
                tmpl, np, rep.l2_change, e);
    cr_assert_lt(e, 1e-5, "%s: patching label embeddings != restoring label ids (%g)", model, e);
    cr_assert(!rep.noop);
    if ((!task->classification && strstr(model, "gpt2")) || !strcmp(model, LL_MODEL))
        cr_assert_gt(np, k, "expected multi-token labels");
    free(dummy);
    free(restored);
    free(clean);
    free(lg);
    ll_icl_prompt_free(&p);
    ll_icl_task_free(task);
    ll_tokenizer_free(t);
    ll_model_free(m);
}

Test(icl_exp, label_positions_restore_labels) {
    ll_label_restore_case("data/models/toy-llama", "toy:color", "default");
    ll_label_restore_case("data/models/toy-llama", "gen:length", "default");
    /* the fixture Llama's small SentencePiece-style vocabulary: words split into pieces */
    ll_label_restore_case(LL_MODEL, "gen:contains", "todd");
    char p[4096];
    if (!ll_test_asset(p, sizeof p, "tiny-gpt2")) cr_skip_test("../shared/assets/tiny-gpt2 not found");
    /* GPT-2 BPE: multi-token labels and inputs; every template */
    for (const char *const *n = ll_icl_template_names(); *n; n++) ll_label_restore_case(p, "gen:first-letter", *n);
    /* multi-token labels (and inputs) */
    const char *js = "{\"Sri Lanka\": \"Sri Jayawardenepura Kotte\", \"Burkina Faso\": \"Ouagadougou\", "
                     "\"Tonga\": \"Nuku'alofa\", \"Micronesia\": \"Palikir\", \"Bhutan\": \"Thimphu\", "
                     "\"Eswatini\": \"Mbabane\"}";
    char jp[256];
    cr_assert_eq(ll_test_write_tmp(jp, sizeof jp, js, strlen(js), ".json"), 0);
    ll_label_restore_case(p, jp, "todd");
    ll_label_restore_case(p, jp, "hendel");
    remove(jp);
}

static ll_icl_exp ll_toy_exp(ll_model **m, ll_tokenizer **t, ll_icl_task **task, const char *spec) {
    cr_assert_eq(ll_model_load(m, "data/models/toy-llama", NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_tokenizer_for_model(t, "data/models/toy-llama", NULL, 0), LL_OK, "%s", ll_last_error());
    ll_icl_task_opts to = {.words = "toy", .seed = 1};
    cr_assert_eq(ll_icl_task_load(spec, &to, task), LL_OK, "%s", ll_last_error());
    ll_icl_exp e = {.m = *m, .tok = *t, .task = *task, .seed = 9, .self_check = true, .full_vocab = true};
    cr_assert_eq(ll_icl_template_get("default", &e.tp), LL_OK);
    cr_assert_eq(ll_icl_exp_init(&e), LL_OK, "%s", ll_last_error());
    return e;
}

/* E1-E3 on the toy model's color table, which it solves from one demonstration (its model
 * card: 100%) but not from none (27%). */
Test(icl_exp, toy_mapping_e1_e2_e3) {
    ll_model *m;
    ll_tokenizer *t;
    ll_icl_task *task;
    ll_icl_exp e = ll_toy_exp(&m, &t, &task, "toy:color");
    int ks[3] = {0, 1, 4};
    ll_icl_e1_result r1, r1b;
    cr_assert_eq(ll_icl_e1(&e, ks, 3, 40, &r1), LL_OK, "%s", ll_last_error());
    cr_log_info("icl e1 toy:color full vocab: k=0 %.3f, k=1 %.3f, k=4 %.3f", r1.acc[0], r1.acc[1], r1.acc[2]);
    cr_assert_lt(r1.acc[0], 0.6);
    cr_assert_geq(r1.acc[1], 0.9);
    cr_assert_geq(r1.acc[2], 0.9);
    cr_assert_eq(ll_icl_e1(&e, ks, 3, 40, &r1b), LL_OK);
    cr_assert_arr_eq(r1.acc, r1b.acc, 3 * sizeof(double), "same seed, same episodes");
    ll_icl_e1_free(&r1);
    ll_icl_e1_free(&r1b);

    ll_icl_layer_result r2;
    ll_icl_e2_opts o2 = {.k = 4, .n_test = 20, .n_src = 20};
    cr_assert_eq(ll_icl_e2(&e, &o2, &r2), LL_OK, "%s", ll_last_error());
    cr_assert_lt(e.self_check_diff, 1e-5, "self-check %g", e.self_check_diff);
    cr_assert_eq(r2.n, 20);
    cr_assert_geq(r2.acc_icl, 0.9);
    /* Block 0's input at the query position is the embedding of "->" in every prompt, so
     * the mean vector equals it and every layer-0 patch changes nothing -- and says so. */
    cr_assert_eq(r2.n_noop[0], 20, "layer-0 patches flagged as no-ops: %d of 20", r2.n_noop[0]);
    cr_assert_float_eq(r2.acc[0], r2.acc_base, 1e-12);
    for (int l = 1; l < r2.n_layers; l++) cr_assert_eq(r2.n_noop[l], 0);
    /* dev prompts choose the layer without changing the test prompts */
    ll_icl_layer_result r2d;
    ll_icl_e2_opts o2d = o2;
    o2d.n_dev = 8;
    cr_assert_eq(ll_icl_e2(&e, &o2d, &r2d), LL_OK, "%s", ll_last_error());
    cr_assert_arr_eq(r2d.acc, r2.acc, (size_t)r2.n_layers * sizeof(double));
    cr_assert_eq(r2d.n_dev, 8);
    for (int l = 0; l < r2d.n_layers; l++) cr_assert_leq(r2d.acc_dev[l], r2d.acc_dev[r2d.best_layer_dev]);
    cr_assert_float_eq(r2d.acc_at_best_dev, r2.acc[r2d.best_layer_dev], 1e-12);
    ll_icl_layer_result_free(&r2d);
    ll_icl_layer_result_free(&r2);

    ll_icl_layer_result r3;
    ll_icl_e3_opts o3 = {.k = 4, .n_test = 20};
    cr_assert_eq(ll_icl_e3(&e, &o3, &r3), LL_OK, "%s", ll_last_error());
    cr_log_info("icl e3 toy:color: dummy %.2f, clean %.2f, per layer %.2f %.2f %.2f %.2f", r3.acc_base, r3.acc_icl,
                r3.acc[0], r3.acc[1], r3.acc[2], r3.acc[3]);
    /* at block 0 the label positions hold the label embeddings: patching them back makes the
     * dummy prompt a prompt with the true labels and filler inputs, which names the table */
    cr_assert_geq(r3.acc[0], 0.9);
    /* The dummy prompt still scores above chance (1 in 10): the answer is the argmax over
     * the table's own values, and the model knows the entity's facts in every table, so
     * only which table is asked is missing. Patching the labels back must add most of it. */
    cr_assert_leq(r3.acc_base, 0.75, "dummy-prompt accuracy %g", r3.acc_base);
    cr_assert_geq(r3.acc[0], r3.acc_base + 0.25, "layer-0 patch %g against dummy %g", r3.acc[0], r3.acc_base);
    ll_icl_layer_result_free(&r3);
    /* one slot alone at block 0 restores one label word: one demonstration names the table */
    ll_icl_e3_opts o3s = {.k = 4, .n_test = 20, .per_slot = true};
    cr_assert_eq(ll_icl_e3(&e, &o3s, &r3), LL_OK, "%s", ll_last_error());
    cr_assert(r3.acc_slot);
    cr_assert_eq(r3.k, 4);
    for (int j = 0; j < 4; j++) cr_assert_geq(r3.acc_slot[j], 0.8, "slot %d: %g", j, r3.acc_slot[j]);
    ll_icl_layer_result_free(&r3);
    for (int mode = 1; mode < 3; mode++) {
        ll_icl_e3_opts o = {.k = 4, .n_test = 10, .n_src = 10, .mode = (ll_icl_local_mode)mode, .op = LL_PATCH_ADD};
        cr_assert_eq(ll_icl_e3(&e, &o, &r3), LL_OK, "%s", ll_last_error());
        ll_icl_layer_result_free(&r3);
    }
    /* the exported test prompts are E3's: its clean accuracy is theirs */
    int ok = 0;
    for (int t2 = 0; t2 < 20; t2++) {
        ll_icl_prompt p;
        cr_assert_eq(ll_icl_exp_test_prompt(&e, t2, 4, NULL, NULL, &p), LL_OK, "%s", ll_last_error());
        cr_assert_eq(p.k, 4);
        int32_t *dmy = malloc((size_t)p.n * sizeof *dmy);
        ll_icl_exp_dummy(&e, &p, t2, dmy);
        cr_assert(memcmp(dmy, p.ids, (size_t)p.n * sizeof *dmy));
        cr_assert_eq(dmy[p.n - 1], p.ids[p.n - 1]);
        float *lgt = malloc((size_t)m->cfg.vocab_size * sizeof *lgt);
        const int32_t *pid[1] = {p.ids};
        cr_assert_eq(ll_icl_logits(m, 1, pid, &p.n, lgt), LL_OK);
        ok += ll_icl_exp_correct(&e, lgt, p.answer[0]);
        free(lgt);
        free(dmy);
        ll_icl_prompt_free(&p);
    }
    ll_icl_layer_result r3c;
    ll_icl_e3_opts o3c = {.k = 4, .n_test = 20};
    cr_assert_eq(ll_icl_e3(&e, &o3c, &r3c), LL_OK);
    cr_assert_float_eq(r3c.acc_icl, ok / 20.0, 1e-12);
    ll_icl_layer_result_free(&r3c);
    ll_icl_e2_opts o2b = {.k = 4, .n_test = 10, .vec = LL_ICL_VEC_PER_PROMPT, .base = LL_ICL_BASE_DUMMY};
    cr_assert_eq(ll_icl_e2(&e, &o2b, &r2), LL_OK, "%s", ll_last_error());
    ll_icl_layer_result_free(&r2);
    ll_icl_exp_free(&e);
    ll_icl_task_free(task);
    ll_tokenizer_free(t);
    ll_model_free(m);
}

/* The CLI writes complete HDF5 files with the switches, CSVs with one row per layer. */
Test(icl_exp, cli_outputs_record_switches) {
    if (access("build/layerlab", X_OK)) cr_skip_test("build/layerlab not built");
    char dir[] = "/tmp/ll_icl_cli_XXXXXX";
    cr_assert(mkdtemp(dir));
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 build/layerlab icl e2 data/models/toy-llama --task toy:animal --n 6 --n-src 6 --k 3 "
             "--vector per-prompt --base dummy --op add --threads 1 --device cpu --out %s > %s/log 2>&1",
             dir, dir);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    char p[1200];
    snprintf(p, sizeof p, "%s/e2.h5", dir);
    ll_h5_quiet();
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0, "%s missing", p);
    bool complete = false;
    cr_assert_eq(ll_h5_get_bool(f, "complete", &complete), LL_OK);
    cr_assert(complete);
    const char *want[][2] = {{"vector", "per-prompt"}, {"base", "dummy"}, {"op", "add"}, {"template", "default"},
                             {"task", "toy:animal"}, {"answer", "label-words"}, {"dummy", "filler"}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char *v;
        cr_assert_eq(ll_h5_get_str(f, want[i][0], &v), LL_OK, "attribute %s", want[i][0]);
        cr_assert_str_eq(v, want[i][1], "attribute %s", want[i][0]);
        free(v);
    }
    int64_t k;
    cr_assert_eq(ll_h5_get_i64(f, "k", &k), LL_OK);
    cr_assert_eq(k, 3);
    H5Fclose(f);
    snprintf(p, sizeof p, "%s/e2.csv", dir);
    FILE *c = fopen(p, "r");
    cr_assert(c);
    int lines = 0;
    char buf[512];
    while (fgets(buf, sizeof buf, c)) lines++;
    fclose(c);
    cr_assert_eq(lines, 1 + 4, "header + 4 layers, found %d lines", lines);
    /* a bad switch is a usage error naming it, and leaves no result file */
    snprintf(cmd, sizeof cmd,
             "build/layerlab icl e3 data/models/toy-llama --task toy:animal --local nonsense --out %s/bad > %s/log2 2>&1",
             dir, dir);
    cr_assert_neq(system(cmd), 0);
    snprintf(p, sizeof p, "%s/bad/e3.h5", dir);
    cr_assert(access(p, F_OK), "a failed run left %s", p);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

#include <sys/wait.h>

static char *ll_slurp_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = calloc(1, 1 << 16);
    size_t n = b ? fread(b, 1, (1 << 16) - 1, f) : 0;
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

/* e1 with several tasks (repeated --task and a comma list): one CSV / HDF5 with a task
 * column whose rows are those of each task run alone; e2 and e3 refuse a second task
 * (a usage error naming both, no output) instead of silently keeping the last. */
Test(icl_exp, cli_e1_several_tasks_e2_e3_refuse) {
    if (access("build/layerlab", X_OK)) cr_skip_test("build/layerlab not built");
    char dir[] = "/tmp/ll_icl_tasks_XXXXXX";
    cr_assert(mkdtemp(dir));
    char cmd[1024], p[1200];
    const char *common = "--k 0,1,2 --n 6 --full-vocab --threads 1 --device cpu";
    const char *runs[][2] = {{"both", "--task toy:color --task toy:animal"}, {"comma", "--task toy:color,toy:animal"},
                             {"color", "--task toy:color"}, {"animal", "--task toy:animal"}};
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 build/layerlab icl e1 data/models/toy-llama %s %s --out %s/%s > %s/log 2>&1",
                 runs[i][1], common, dir, runs[i][0], dir);
        cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    }
    char *csv[4];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s/e1.csv", dir, runs[i][0]);
        csv[i] = ll_slurp_file(p);
        cr_assert(csv[i], "%s missing", p);
    }
    cr_assert(!strncmp(csv[0], "task,k,accuracy,n\n", 18), "%s", csv[0]);
    cr_assert_str_eq(csv[0], csv[1], "repeated --task and a comma list give the same table");
    /* both = header + color's rows + animal's rows, each as run alone */
    char want[4096];
    snprintf(want, sizeof want, "%s%s", csv[2], strchr(csv[3], '\n') + 1);
    cr_assert_str_eq(csv[0], want, "several tasks:\n%s\nalone:\n%s", csv[0], want);
    int rows = 0;
    for (char *c = csv[0]; *c; c++) rows += *c == '\n';
    cr_assert_eq(rows, 1 + 2 * 3);
    for (int i = 0; i < 4; i++) free(csv[i]);
    snprintf(p, sizeof p, "%s/both/e1.h5", dir);
    ll_h5_quiet();
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0, "%s missing", p);
    bool complete = false;
    cr_assert_eq(ll_h5_get_bool(f, "complete", &complete), LL_OK);
    cr_assert(complete);
    int task[6] = {-1, -1, -1, -1, -1, -1};
    hid_t ds = H5Dopen2(f, "task", H5P_DEFAULT);
    cr_assert_geq(ds, 0, "dataset task");
    hid_t sp = H5Dget_space(ds);
    cr_assert_eq(H5Sget_simple_extent_npoints(sp), 6);
    H5Sclose(sp);
    cr_assert_geq(H5Dread(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, task), 0);
    H5Dclose(ds);
    for (int i = 0; i < 6; i++) cr_expect_eq(task[i], i / 3, "row %d: task %d", i, task[i]);
    cr_assert(H5Aexists(f, "tasks") > 0 && H5Aexists(f, "templates") > 0, "list attributes tasks, templates");
    H5Fclose(f);
    /* e2 / e3: one task per run */
    const char *bad[] = {"e2 data/models/toy-llama --task toy:color --task toy:animal",
                         "e3 data/models/toy-llama --task toy:color,toy:animal"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "build/layerlab icl %s --n 4 --out %s/bad%d > %s/log3 2>&1", bad[i], dir, i, dir);
        int rc = system(cmd);
        cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "%s: expected the usage exit status 2", cmd);
        snprintf(p, sizeof p, "%s/log3", dir);
        char *log = ll_slurp_file(p);
        cr_assert(log && strstr(log, "one --task per run") && strstr(log, "toy:color") && strstr(log, "toy:animal"),
                  "%s", log);
        free(log);
        snprintf(p, sizeof p, "%s/bad%d", dir, i);
        cr_assert(access(p, F_OK), "a refused run created %s", p);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Too many demonstrations for the context: refused where the prompt is built, naming its
 * length, k and the model's context (before: "position 128 at row 128 is outside the
 * model's range" from deep in the forward pass). The bound is exact: a prompt of exactly
 * max_tokens tokens is built, one more token is refused. */
Test(icl_exp, too_many_demonstrations_refused) {
    ll_model *m;
    ll_tokenizer *t;
    ll_icl_task *task;
    ll_icl_exp e = ll_toy_exp(&m, &t, &task, "toy:color");
    int C = m->cfg.max_pos;
    cr_assert_eq(C, 128);
    cr_assert_eq(e.popts.max_tokens, C, "ll_icl_exp_init sets the context bound");
    /* The smallest k whose prompts overflow (a k-demonstration prompt, unbounded, as reference). */
    ll_icl_prompt_opts free_o = {0};
    int k = 1, n = 0;
    ll_icl_item *it = calloc((size_t)task->n, sizeof *it);
    cr_assert(it);
    for (int i = 0; i < task->n; i++) it[i] = (ll_icl_item){task->input[i], task->output[i]};
    for (; k < task->n; k++) {
        ll_icl_prompt p;
        cr_assert_eq(ll_icl_prompt_build(t, &e.tp, it, k, &it[k], &free_o, &p), LL_OK, "%s", ll_last_error());
        n = p.n;
        ll_icl_prompt_free(&p);
        if (n > C) break;
    }
    cr_assert(n > C, "toy:color has %d items: no prompt over %d tokens", task->n, C);
    ll_icl_prompt p;
    ll_icl_prompt_opts at = {.max_tokens = n}, below = {.max_tokens = n - 1};
    cr_expect_eq(ll_icl_prompt_build(t, &e.tp, it, k, &it[k], &at, &p), LL_OK, "%s", ll_last_error());
    ll_icl_prompt_free(&p);
    cr_expect_eq(ll_icl_prompt_build(t, &e.tp, it, k, &it[k], &below, &p), LL_ERR_ARG);
    char want[160];
    snprintf(want, sizeof want, "prompt of %d tokens with %d demonstrations exceeds the model's context of %d tokens",
             n, k, n - 1);
    cr_expect(strstr(ll_last_error(), want), "%s", ll_last_error());
    free(it);
    /* The experiments stop on it with that message (k demonstrations, many more than fit). */
    int kk = k + 4 < task->n ? k + 4 : task->n - 1;
    ll_icl_e1_result r1;
    cr_expect_eq(ll_icl_e1(&e, &kk, 1, 4, &r1), LL_ERR_ARG);
    cr_expect(strstr(ll_last_error(), "exceeds the model's context of 128 tokens; use fewer demonstrations (--k)"),
              "%s", ll_last_error());
    ll_icl_layer_result r2;
    ll_icl_e2_opts o2 = {.k = kk, .n_test = 2, .n_src = 2};
    cr_expect_eq(ll_icl_e2(&e, &o2, &r2), LL_ERR_ARG);
    cr_expect(strstr(ll_last_error(), "exceeds the model's context of 128 tokens"), "%s", ll_last_error());
    ll_icl_e3_opts o3 = {.k = kk, .n_test = 2};
    ll_icl_layer_result r3;
    cr_expect_eq(ll_icl_e3(&e, &o3, &r3), LL_ERR_ARG);
    cr_expect(strstr(ll_last_error(), "exceeds the model's context of 128 tokens"), "%s", ll_last_error());
    ll_icl_exp_free(&e);
    ll_icl_task_free(task);
    ll_tokenizer_free(t);
    ll_model_free(m);
}
