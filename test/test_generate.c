/* Sampling and generation: the sampler's distributions, reproducibility by seed, and
 * greedy generation from text on the real stories260K model, whose greedy story is
 * documented in ../shared/assets/llama2-tokenizer/stories260K.md. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate/ll_generate.h"
#include "io/ll_mmap.h"
#include "ll_test_util.h"

Test(sample, greedy_is_argmax_lowest_id_on_ties) {
    ll_sampler s;
    cr_assert_eq(ll_sampler_init(&s, &(ll_sample_opts){.temperature = 0, .top_p = 1}, 5), LL_OK);
    float l[5] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
    cr_expect_eq(ll_sample(&s, l, 5), 1);
    ll_sampler_free(&s);
}

Test(sample, temperature_matches_softmax) {
    ll_sampler s;
    cr_assert_eq(ll_sampler_init(&s, &(ll_sample_opts){.temperature = 1, .top_p = 1, .seed = 7}, 3), LL_OK);
    float l[3] = {0, logf(2), logf(4)};
    int cnt[3] = {0};
    const int N = 70000;
    for (int i = 0; i < N; i++) cnt[ll_sample(&s, l, 3)]++;
    double want[3] = {1 / 7.0, 2 / 7.0, 4 / 7.0};
    for (int k = 0; k < 3; k++)
        cr_expect(fabs(cnt[k] / (double)N - want[k]) < 0.01, "token %d: frequency %.4f, softmax %.4f", k, cnt[k] / (double)N, want[k]);
    ll_sampler_free(&s);
    /* temperature 2 flattens: probabilities proportional to sqrt(1, 2, 4) */
    cr_assert_eq(ll_sampler_init(&s, &(ll_sample_opts){.temperature = 2, .top_p = 1, .seed = 8}, 3), LL_OK);
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < N; i++) cnt[ll_sample(&s, l, 3)]++;
    double z = 1 + sqrt(2) + 2;
    cr_expect(fabs(cnt[2] / (double)N - 2 / z) < 0.01, "T=2: frequency %.4f, expected %.4f", cnt[2] / (double)N, 2 / z);
    ll_sampler_free(&s);
}

Test(sample, top_p_keeps_the_nucleus_only) {
    ll_sampler s;
    cr_assert_eq(ll_sampler_init(&s, &(ll_sample_opts){.temperature = 1, .top_p = 0.5f, .seed = 3}, 4), LL_OK);
    float l[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
    int cnt[4] = {0};
    const int N = 40000;
    for (int i = 0; i < N; i++) cnt[ll_sample(&s, l, 4)]++;
    cr_expect(cnt[0] == 0 && cnt[1] == 0, "tokens outside the 0.5 nucleus were drawn: %d, %d", cnt[0], cnt[1]);
    cr_expect(fabs(cnt[3] / (double)N - 4 / 7.0) < 0.012, "renormalised nucleus: %.4f vs %.4f", cnt[3] / (double)N, 4 / 7.0);
    ll_sampler_free(&s);
}

Test(sample, seed_reproduces) {
    float l[50];
    for (int i = 0; i < 50; i++) l[i] = sinf((float)i);
    int32_t a[64], b[64], c[64];
    for (int run = 0; run < 3; run++) {
        ll_sampler s;
        cr_assert_eq(ll_sampler_init(&s, &(ll_sample_opts){.temperature = 1, .top_p = 0.9f, .seed = run == 2 ? 43 : 42}, 50), LL_OK);
        for (int i = 0; i < 64; i++) (run == 0 ? a : run == 1 ? b : c)[i] = ll_sample(&s, l, 50);
        ll_sampler_free(&s);
    }
    cr_expect(!memcmp(a, b, sizeof a), "same seed, different draws");
    cr_expect(memcmp(a, c, sizeof a), "different seeds, same 64 draws");
}

Test(sample, bad_options) {
    ll_sampler s;
    cr_expect_neq(ll_sampler_init(&s, &(ll_sample_opts){.temperature = -1, .top_p = 1}, 4), LL_OK);
    cr_expect_neq(ll_sampler_init(&s, &(ll_sample_opts){.temperature = 1, .top_p = 0}, 4), LL_OK);
}

/* The documented greedy story: the block that follows the "-t 0.0" command. */
static char *ll_documented_story(void) {
    char p[4096];
    if (!ll_test_asset(p, sizeof p, "llama2-tokenizer/stories260K.md")) return NULL;
    char *md;
    size_t n;
    cr_assert_eq(ll_read_file(p, &md, &n), LL_OK);
    const char *cmd = strstr(md, "-t 0.0\n");
    cr_assert(cmd, "stories260K.md: the greedy command line was not found");
    const char *start = cmd + strlen("-t 0.0\n"), *end = strstr(start, "```");
    cr_assert(end);
    char *story = strndup(start, (size_t)(end - start));
    free(md);
    return story;
}

typedef struct {
    char buf[1 << 14];
    size_t n;
} ll_sink;

static int ll_collect(void *u, const char *t, size_t n) {
    ll_sink *s = u;
    cr_assert(s->n + n < sizeof s->buf);
    memcpy(s->buf + s->n, t, n);
    s->n += n;
    s->buf[s->n] = 0;
    return 0;
}

static void ll_story_case(const char *model_rel, const char *tok_rel) {
    char mp[4096], tp[4096];
    char *story = ll_documented_story();
    if (!story || !ll_test_asset(mp, sizeof mp, model_rel) || (tok_rel && !ll_test_asset(tp, sizeof tp, tok_rel)))
        cr_skip_test("../shared/assets stories260K files not found: real-model check skipped");
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, mp, NULL), LL_OK, "%s", ll_last_error());
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_for_model(&t, mp, tok_rel ? tp : NULL, m->cfg.vocab_size), LL_OK, "%s", ll_last_error());
    const char *prompt = "Once upon a time";
    ll_encoding e = {0};
    cr_assert_eq(ll_tokenizer_encode(t, prompt, strlen(prompt), LL_TOK_DEFAULT, &e), LL_OK);
    int32_t want_prompt[] = {1, 403, 407, 261, 378};
    cr_assert_eq(e.n, 5);
    for (int i = 0; i < 5; i++) cr_assert_eq(e.ids[i], want_prompt[i], "prompt token %d", i);
    ll_sink sink = {.n = 0};
    memcpy(sink.buf, prompt, strlen(prompt));
    sink.n = strlen(prompt);
    ll_generation g;
    ll_generate_opts o = {.max_new_tokens = 100, .sample = {.temperature = 0, .top_p = 1}, .on_text = ll_collect, .user = &sink};
    cr_assert_eq(ll_generate(m, t, e.ids, (int)e.n, &o, &g), LL_OK, "%s", ll_last_error());
    cr_expect_eq(g.n - g.n_prompt, 100, "stopped early: %s", g.stop);
    /* word for word, for as far as it runs */
    cr_expect(sink.n > 250 && !strncmp(sink.buf, story, sink.n), "%s: generated text differs from the documented story:\n%s\n---\n%s",
              model_rel, sink.buf, story);
    /* the streamed text equals one decode of all tokens */
    char *whole;
    size_t wl;
    cr_assert_eq(ll_tokenizer_decode(t, g.ids, (size_t)g.n, true, &whole, &wl), LL_OK);
    cr_expect(wl == sink.n && !memcmp(whole, sink.buf, wl), "streamed text != decode");
    free(whole);
    ll_generation_free(&g);
    ll_encoding_free(&e);
    ll_tokenizer_free(t);
    ll_model_free(m);
    free(story);
}

Test(generate, stories260k_gguf_greedy_story) { ll_story_case("stories260K/tinyllamas-stories-260k-f32.gguf", NULL); }
Test(generate, stories260k_bin_with_tok512) { ll_story_case("stories260K/stories260K.bin", "stories260K/tok512.bin"); }

/* The CLI prints exactly prompt + continuation on stdout. */
Test(generate, cli_stdout_is_the_text_only) {
    char mp[4096];
    char *story = ll_documented_story();
    if (!story || !ll_test_asset(mp, sizeof mp, "stories260K/tinyllamas-stories-260k-f32.gguf"))
        cr_skip_test("../shared/assets stories260K not found");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "build/layerlab generate '%s' --prompt 'Once upon a time' --max-new-tokens 60 --temperature 0 2>/dev/null", mp);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    cr_assert_eq(pclose(f), 0, "layerlab generate failed");
    cr_assert(n > 1 && out[n - 1] != '\n', "stdout must be exactly the text (no newline when not a terminal)");
    cr_expect(n > 150 && !strncmp(out, story, n), "stdout is not the story's beginning:\n%s", out);
    free(story);
}
