/* ll_decoder on the CPU: a decode step gives the same logits, bit for bit, and the same
 * KV-cache lengths as the caller's own one-token ll_forward over the cache, on every
 * fixture architecture and on stories260K, greedy for 40 steps after a prompt, both as a
 * plain forward (LL_DECODE_FORWARD) and as the step a GPU records into a graph, run op by
 * op (LL_DECODE_FIXED: per-step values read from the parameter block, K/V appended at the
 * position it holds); and the decoder refuses what ll_forward would refuse. The graph
 * itself is checked on the GPU (test/gpu/test_gpu_decode.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_test_util.h"
#include "model/ll_decoder.h"

static const int32_t prompt[] = {5, 17, 300, 42, 7, 99};
#define NP ((int)(sizeof prompt / sizeof *prompt))
#define STEPS 40

static int32_t ll_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static void ll_prefill(ll_model *m, ll_kv_cache *kc, int slot, float *lg) {
    int64_t off[2] = {0, NP};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = prompt, .slot = &slot};
    ll_forward_opts o = {.cache = kc, .logits = LL_LOGITS_LAST, .logits_out = lg};
    cr_assert_eq(ll_forward(m, &b, &o), LL_OK, "%s", ll_last_error());
}

/* Reference: one-token ll_forward calls on slot 0 of cache a. Decoder: slot 1 of cache b,
 * whose slot 0 holds a different prefix, so a decoder reading the wrong slot shows. */
static void ll_decoder_matches_forward(ll_model *m, const char *name, ll_decode_mode mode) {
    int V = m->cfg.vocab_size, L = m->cfg.n_layers;
    int cap = NP + STEPS;
    cr_assert(m->cfg.max_pos <= 0 || cap <= m->cfg.max_pos, "%s: context %d too short for the test", name,
              m->cfg.max_pos);
    ll_kv_cache *a, *b;
    cr_assert_eq(ll_kv_cache_new(&a, m, 1, cap), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_kv_cache_new(&b, m, 2, cap), LL_OK, "%s", ll_last_error());
    float *la = malloc((size_t)V * sizeof *la), *lb = malloc((size_t)V * sizeof *lb);
    cr_assert(la && lb);
    {
        int32_t other[3] = {1, 2, 3};
        int64_t off[2] = {0, 3};
        ll_batch ob = {.n_seq = 1, .seq_off = off, .tokens = other};
        cr_assert_eq(ll_forward(m, &ob, &(ll_forward_opts){.cache = b}), LL_OK, "%s", ll_last_error());
    }
    ll_prefill(m, a, 0, la);
    ll_prefill(m, b, 1, lb);
    ll_decoder *d;
    cr_assert_eq(ll_decoder_new_mode(&d, m, b, 1, mode), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_decoder_mode(d), mode);
    int32_t next = ll_argmax(la, V);
    for (int i = 0; i < STEPS; i++) {
        int64_t off[2] = {0, 1};
        ll_batch b1 = {.n_seq = 1, .seq_off = off, .tokens = &next};
        ll_forward_opts o = {.cache = a, .logits = LL_LOGITS_LAST, .logits_out = la};
        cr_assert_eq(ll_forward(m, &b1, &o), LL_OK, "%s step %d: %s", name, i, ll_last_error());
        cr_assert_eq(ll_decoder_step(d, next, lb), LL_OK, "%s step %d: %s", name, i, ll_last_error());
        cr_assert(!memcmp(la, lb, (size_t)V * sizeof *la), "%s step %d (token %d): decoder logits differ", name, i,
                  next);
        for (int l = 0; l < L; l++) {
            cr_assert_eq(b->len[l * 2 + 1], a->len[l], "%s step %d layer %d: slot length %d, forward's %d", name, i, l,
                         b->len[l * 2 + 1], a->len[l]);
            cr_assert_eq(b->len[l * 2], 3, "%s step %d: the decoder changed another slot", name, i);
        }
        next = ll_argmax(la, V);
    }
    cr_expect_eq(a->len[0], NP + STEPS);
    /* The cache is full now: one more step is refused, as ll_forward refuses it. */
    cr_expect_neq(ll_decoder_step(d, next, lb), LL_OK, "%s: a step past the cache capacity was accepted", name);
    ll_decoder_free(d);
    ll_kv_cache_free(a);
    ll_kv_cache_free(b);
    free(la);
    free(lb);
}

static void ll_fixture_case(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "test/fixtures/%s", name);
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, p, NULL), LL_OK, "%s", ll_last_error());
    ll_decoder_matches_forward(m, name, LL_DECODE_FORWARD);
    ll_decoder_matches_forward(m, name, LL_DECODE_FIXED);
    ll_model_free(m);
}

Test(decoder, equals_forward_gpt2) { ll_fixture_case("gpt2"); }
Test(decoder, equals_forward_llama_gqa) { ll_fixture_case("llama_gqa"); }
Test(decoder, equals_forward_llama3_rope) { ll_fixture_case("llama3_rope"); }
Test(decoder, equals_forward_mistral) { ll_fixture_case("mistral"); }
Test(decoder, equals_forward_qwen2) { ll_fixture_case("qwen2"); }

Test(decoder, equals_forward_stories260k) {
    char p[4096];
    if (!ll_test_asset(p, sizeof p, "stories260K/stories260K.bin"))
        cr_skip_test("../shared/assets/stories260K/stories260K.bin not found: real-model check skipped");
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, p, NULL), LL_OK, "%s", ll_last_error());
    ll_decoder_matches_forward(m, "stories260K", LL_DECODE_FORWARD);
    ll_decoder_matches_forward(m, "stories260K", LL_DECODE_FIXED);
    ll_model_free(m);
}

Test(decoder, refuses_bad_arguments) {
    ll_model *m, *m2;
    cr_assert_eq(ll_model_load(&m, "test/fixtures/llama_gqa", NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_model_load(&m2, "test/fixtures/gpt2", NULL), LL_OK, "%s", ll_last_error());
    ll_kv_cache *kc, *kc2;
    cr_assert_eq(ll_kv_cache_new(&kc, m, 2, 8), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_kv_cache_new(&kc2, m2, 1, 8), LL_OK, "%s", ll_last_error());
    ll_decoder *d = (ll_decoder *)&d;
    cr_expect_eq(ll_decoder_new(&d, m, kc, 2), LL_ERR_ARG);
    cr_expect_null(d, "a refused decoder must not be handed out");
    cr_expect(strstr(ll_last_error(), "slot 2"), "message: %s", ll_last_error());
    cr_expect_eq(ll_decoder_new(&d, m, kc, -1), LL_ERR_ARG);
    cr_expect_eq(ll_decoder_new(&d, m, kc2, 0), LL_ERR_ARG);
    cr_expect(strstr(ll_last_error(), "another model"), "message: %s", ll_last_error());
    cr_expect_eq(ll_decoder_new(&d, m, NULL, 0), LL_ERR_ARG);
    cr_expect_eq(ll_decoder_new_mode(&d, m, kc, 0, LL_DECODE_GRAPH), LL_ERR_UNSUPPORTED,
                 "the CPU backend records no graphs");
    cr_expect_eq(ll_decoder_new_mode(&d, m, kc, 0, (ll_decode_mode)42), LL_ERR_ARG);
    /* On the CPU the default is the plain forward. */
    cr_assert_eq(ll_decoder_new(&d, m, kc, 0), LL_OK, "%s", ll_last_error());
    cr_expect_eq(ll_decoder_mode(d), LL_DECODE_FORWARD);
    ll_decoder_free(d);
    float *lg = malloc((size_t)m->cfg.vocab_size * sizeof *lg);
    for (int mode = LL_DECODE_FORWARD; mode <= LL_DECODE_FIXED; mode++) {
        ll_kv_cache_reset(kc, -1);
        cr_assert_eq(ll_decoder_new_mode(&d, m, kc, 1, (ll_decode_mode)mode), LL_OK, "%s", ll_last_error());
        cr_expect_eq(ll_decoder_step(d, m->cfg.vocab_size, lg), LL_ERR_ARG, "mode %d: a token outside the vocabulary "
                     "was accepted", mode);
        cr_expect_eq(ll_decoder_step(d, -1, lg), LL_ERR_ARG, "mode %d", mode);
        cr_expect_eq(ll_decoder_step(d, 5, NULL), LL_ERR_ARG, "mode %d", mode);
        cr_expect_eq(kc->len[1], 0, "mode %d: a refused step changed the cache length", mode);
        for (int i = 0; i < 8; i++)
            cr_assert_eq(ll_decoder_step(d, 5 + i, lg), LL_OK, "mode %d: %s", mode, ll_last_error());
        for (int l = 0; l < m->cfg.n_layers; l++) {
            cr_expect_eq(kc->len[l * 2 + 1], 8, "mode %d layer %d", mode, l);
            cr_expect_eq(kc->len[l * 2], 0, "mode %d: another slot changed", mode);
        }
        cr_expect_eq(ll_decoder_step(d, 5, lg), LL_ERR_ARG, "mode %d: a step past the capacity was accepted", mode);
        cr_expect(strstr(ll_last_error(), "capacity"), "mode %d: %s", mode, ll_last_error());
        ll_decoder_free(d);
    }
    ll_decoder_free(NULL);
    free(lg);
    ll_kv_cache_free(kc);
    ll_kv_cache_free(kc2);
    ll_model_free(m);
    ll_model_free(m2);
}

/* A slot whose layers hold different lengths (a forward that stopped mid-model): the fixed
 * step hands over to ll_forward, so it gives what ll_forward gives. */
Test(decoder, ragged_slot_follows_forward) {
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, "test/fixtures/llama_gqa", NULL), LL_OK, "%s", ll_last_error());
    int V = m->cfg.vocab_size, L = m->cfg.n_layers;
    cr_assert(L >= 2, "the fixture needs two layers");
    ll_kv_cache *a, *b;
    cr_assert_eq(ll_kv_cache_new(&a, m, 1, 16), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_kv_cache_new(&b, m, 1, 16), LL_OK, "%s", ll_last_error());
    float *la = malloc((size_t)V * sizeof *la), *lb = malloc((size_t)V * sizeof *lb);
    int64_t off[2] = {0, NP};
    ll_batch pb = {.n_seq = 1, .seq_off = off, .tokens = prompt};
    for (int i = 0; i < 2; i++) {
        ll_kv_cache *kc = i ? b : a;
        cr_assert_eq(ll_forward(m, &pb, &(ll_forward_opts){.cache = kc}), LL_OK, "%s", ll_last_error());
        ll_kv_cache_truncate(kc, 0, NP - 2);
        /* only layer 0 gets the last two tokens back: the layers now disagree */
        cr_assert_eq(ll_forward(m, &(ll_batch){.n_seq = 1, .seq_off = (int64_t[]){0, 2}, .tokens = prompt + NP - 2},
                                &(ll_forward_opts){.cache = kc, .stop_layer = 1}),
                     LL_OK, "%s", ll_last_error());
    }
    cr_assert_neq(a->len[0], a->len[1]);
    ll_decoder *d;
    cr_assert_eq(ll_decoder_new_mode(&d, m, b, 0, LL_DECODE_FIXED), LL_OK, "%s", ll_last_error());
    ll_forward_opts o = {.cache = a, .logits = LL_LOGITS_LAST, .logits_out = la};
    int32_t t = 77;
    cr_assert_eq(ll_forward(m, &(ll_batch){.n_seq = 1, .seq_off = (int64_t[]){0, 1}, .tokens = &t}, &o), LL_OK, "%s",
                 ll_last_error());
    cr_assert_eq(ll_decoder_step(d, t, lb), LL_OK, "%s", ll_last_error());
    cr_expect(!memcmp(la, lb, (size_t)V * sizeof *la), "ragged slot: decoder logits differ from ll_forward's");
    for (int l = 0; l < L; l++) cr_expect_eq(b->len[l], a->len[l], "layer %d", l);
    ll_decoder_free(d);
    ll_kv_cache_free(a);
    ll_kv_cache_free(b);
    free(la);
    free(lb);
    ll_model_free(m);
}

/* The graph path's control flow, on the CPU through a stand-in table whose graph ops run
 * the ops eagerly and whose recording fails: under the default mode the decoder must
 * finish that step (and later ones) as plain steps, say why, and match ll_forward; asked
 * for by name it must return the error and leave the cache lengths alone. */
static int ll_fake_captures;
static void *ll_fake_graph_new(void) { return &ll_fake_captures; }
static void ll_fake_graph_free(void *ctx) { (void)ctx; }
static bool ll_fake_capturing;
static ll_status ll_fake_graph_begin(void *ctx, bool capture) {
    (void)ctx;
    ll_fake_capturing = capture;
    return LL_OK;
}
static ll_status ll_fake_graph_end(void *ctx) {
    (void)ctx;
    if (!ll_fake_capturing) return LL_OK;
    ll_fake_capturing = false;
    ll_fake_captures++;
    return ll_err(LL_ERR_DEVICE, "stand-in: recording refused");
}
static ll_status ll_fake_graph_launch(void *ctx) {
    (void)ctx;
    return ll_err(LL_ERR_DEVICE, "stand-in: nothing to launch");
}

Test(decoder, failed_recording_falls_back_or_fails) {
    ll_backend fake = *ll_backend_cpu();
    fake.name = "stand-in";
    fake.graph_new = ll_fake_graph_new;
    fake.graph_free = ll_fake_graph_free;
    fake.graph_begin = ll_fake_graph_begin;
    fake.graph_end = ll_fake_graph_end;
    fake.graph_launch = ll_fake_graph_launch;
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, "test/fixtures/qwen2", NULL), LL_OK, "%s", ll_last_error());
    int V = m->cfg.vocab_size, L = m->cfg.n_layers;
    ll_kv_cache *ref;
    cr_assert_eq(ll_kv_cache_new(&ref, m, 1, 16), LL_OK, "%s", ll_last_error());
    m->be = &fake; /* CPU memory and ops, graph ops of the stand-in */
    ll_kv_cache *kc;
    cr_assert_eq(ll_kv_cache_new(&kc, m, 1, 16), LL_OK, "%s", ll_last_error());
    float *la = malloc((size_t)V * sizeof *la), *lb = malloc((size_t)V * sizeof *lb);
    for (int strict = 0; strict < 2; strict++) {
        ll_kv_cache_reset(kc, -1);
        ll_fake_captures = 0;
        ll_decoder *d;
        cr_assert_eq(ll_decoder_new_mode(&d, m, kc, 0, strict ? LL_DECODE_GRAPH : LL_DECODE_AUTO), LL_OK, "%s",
                     ll_last_error());
        cr_assert_eq(ll_decoder_mode(d), LL_DECODE_GRAPH, "a backend with graph ops defaults to graphs");
        cr_assert_eq(ll_decoder_step(d, 11, lb), LL_OK, "the eager first step: %s", ll_last_error());
        cr_expect_eq(ll_fake_captures, 0);
        ll_status st = ll_decoder_step(d, 12, lb);
        cr_expect_eq(ll_fake_captures, 1, "the second step records");
        cr_expect_eq(ll_decoder_mode(d), LL_DECODE_FORWARD, "a failed recording leaves plain steps");
        if (strict) {
            cr_expect_eq(st, LL_ERR_DEVICE, "LL_DECODE_GRAPH by name: the failed recording is the step's error");
            cr_expect(strstr(ll_last_error(), "recording refused"), "%s", ll_last_error());
            for (int l = 0; l < L; l++) cr_expect_eq(kc->len[l], 1, "layer %d: a failed step moved the length", l);
            cr_expect_null(ll_decoder_note(d));
        } else {
            cr_expect_eq(st, LL_OK, "default mode: the step falls back and succeeds: %s", ll_last_error());
            cr_expect(ll_decoder_note(d) && strstr(ll_decoder_note(d), "recording refused"), "note: %s",
                      ll_decoder_note(d) ? ll_decoder_note(d) : "(none)");
            cr_expect_eq(ll_decoder_step(d, 13, lb), LL_OK, "%s", ll_last_error());
            cr_expect_eq(ll_fake_captures, 1, "no second recording after giving up");
            /* the same three tokens through ll_forward on the CPU */
            m->be = ll_backend_cpu();
            ll_kv_cache_reset(ref, -1);
            for (int t = 11; t <= 13; t++) {
                int32_t tok = t;
                ll_forward_opts o = {.cache = ref, .logits = LL_LOGITS_LAST, .logits_out = la};
                cr_assert_eq(ll_forward(m, &(ll_batch){.n_seq = 1, .seq_off = (int64_t[]){0, 1}, .tokens = &tok}, &o),
                             LL_OK, "%s", ll_last_error());
            }
            m->be = &fake;
            cr_expect(!memcmp(la, lb, (size_t)V * sizeof *la),
                      "after the fallback the logits differ from ll_forward's");
            for (int l = 0; l < L; l++) cr_expect_eq(kc->len[l], 3, "layer %d", l);
        }
        ll_decoder_free(d);
    }
    ll_kv_cache_free(kc);
    m->be = ll_backend_cpu();
    ll_kv_cache_free(ref);
    free(la);
    free(lb);
    ll_model_free(m);
}
