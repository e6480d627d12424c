/* ICL prompt builder: token positions of inputs, separators, labels and the query on
 * real tokenizers (GPT-2 byte-level BPE, Llama-2 SentencePiece, the toy WordLevel).
 *
 * The positions come from the tokenizer's byte offsets; the checks here go through other
 * paths: decoding the token slices back to text, hand-counted positions on the WordLevel
 * vocabulary, and the label tokenized as the query's answer matching the same label's
 * tokens inside a demonstration. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "icl/ll_icl_prompt.h"
#include "ll_test_util.h"

static char *ll_trimmed_decode(const ll_tokenizer *t, const int32_t *ids, int lo, int hi) {
    cr_assert(lo >= 0 && hi >= lo, "empty span %d..%d", lo, hi);
    char *s;
    size_t n;
    cr_assert_eq(ll_tokenizer_decode(t, ids + lo, (size_t)(hi - lo + 1), false, &s, &n), LL_OK, "%s", ll_last_error());
    size_t a = 0;
    while (s[a] && isspace((unsigned char)s[a])) a++;
    while (n > a && isspace((unsigned char)s[n - 1])) n--;
    memmove(s, s + a, n - a);
    s[n - a] = 0;
    return s;
}

/* Check every invariant of a prompt built from items (k demos + query). */
static void ll_check_prompt(const ll_tokenizer *t, const ll_icl_template *tp, const ll_icl_item *it, int k,
                            bool expect_clean) {
    ll_icl_prompt p;
    cr_assert_eq(ll_icl_prompt_build(t, tp, it, k, &it[k], NULL, &p), LL_OK, "%s", ll_last_error());
    cr_assert_eq(p.k, k);
    cr_assert_eq(p.query_pos, p.n - 1);
    if (expect_clean) cr_assert_eq(p.n_straddle, 0, "template %s: %d straddling tokens", tp->name, p.n_straddle);
    int prev = p.has_bos ? 0 : -1;
    for (int i = 0; i <= k; i++) {
        const ll_icl_span *s = i < k ? &p.demo[i] : &p.query;
        /* spans are ordered and do not overlap */
        cr_assert_gt(s->in_lo, prev, "template %s item %d: input starts at %d after %d", tp->name, i, s->in_lo, prev);
        cr_assert_geq(s->in_hi, s->in_lo);
        cr_assert_gt(s->sep_lo, s->in_hi, "template %s item %d", tp->name, i);
        cr_assert_geq(s->sep_hi, s->sep_lo);
        prev = s->sep_hi;
        char *x = ll_trimmed_decode(t, p.ids, s->in_lo, s->in_hi);
        cr_assert_str_eq(x, it[i].input, "template %s item %d: input tokens decode to \"%s\"", tp->name, i, x);
        free(x);
        if (i < k) {
            cr_assert_gt(s->lab_lo, s->sep_hi);
            cr_assert_geq(s->lab_hi, s->lab_lo);
            char *y = ll_trimmed_decode(t, p.ids, s->lab_lo, s->lab_hi);
            cr_assert_str_eq(y, it[i].label, "template %s demo %d: label tokens decode to \"%s\"", tp->name, i, y);
            free(y);
            prev = s->lab_hi;
            cr_assert_eq(ll_icl_label_position(&p, i, LL_ICL_LABEL_FIRST), s->lab_lo);
            cr_assert_eq(ll_icl_label_position(&p, i, LL_ICL_LABEL_LAST), s->lab_hi);
            cr_assert_eq(ll_icl_label_position(&p, i, LL_ICL_LABEL_SEP), s->sep_hi);
        } else {
            cr_assert_eq(s->lab_lo, -1);
            cr_assert_eq(s->sep_hi, p.n - 1, "template %s: the query ends on its separator", tp->name);
        }
    }
    /* The answer: the query's label as the model should continue the prompt. */
    cr_assert(p.n_answer >= 1);
    char *a = ll_trimmed_decode(t, p.answer, 0, p.n_answer - 1);
    cr_assert_str_eq(a, it[k].label, "template %s: answer decodes to \"%s\"", tp->name, a);
    free(a);
    if (expect_clean) cr_assert(p.answer_clean, "template %s: appending the label changed the prompt's tokens", tp->name);
    /* A demonstration with the query's label tokenizes it the same way. */
    for (int i = 0; i < k; i++)
        if (!strcmp(it[i].label, it[k].label)) {
            cr_assert_eq(p.demo[i].lab_hi - p.demo[i].lab_lo + 1, p.n_answer, "template %s demo %d", tp->name, i);
            cr_assert_arr_eq(p.ids + p.demo[i].lab_lo, p.answer, (size_t)p.n_answer * sizeof(int32_t));
        }
    /* Dummies keep length and every template token. */
    int32_t *d = malloc((size_t)p.n * sizeof *d);
    ll_icl_dummy_ids(&p, 11, 12, NULL, 0, 0, d);
    for (int j = 0; j < p.n; j++) {
        bool in_demo = false;
        for (int i = 0; i < k; i++)
            in_demo |= (j >= p.demo[i].in_lo && j <= p.demo[i].in_hi) || (j >= p.demo[i].lab_lo && j <= p.demo[i].lab_hi);
        if (in_demo) cr_assert(d[j] == 11 || d[j] == 12);
        else cr_assert_eq(d[j], p.ids[j], "dummy changed a template/query token at %d", j);
    }
    free(d);
    ll_icl_prompt_free(&p);
}

static const ll_icl_item ll_words[] = {
    {"hot", "cold"}, {"big", "small"}, {"Tughlaq dynasty", "Delhi"}, {"up", "down"}, {"Uusimaa", "Helsinki"},
    {"Second Spanish Republic", "Madrid"}, {"wet", "dry"}, {"left", "Medina Kyrgyzstan"}, {"dark", "cold"}};
#define LL_NW 8 /* 8 demonstrations + the last item as the query */

static void ll_all_templates(const ll_tokenizer *t) {
    for (const char *const *n = ll_icl_template_names(); *n; n++) {
        ll_icl_template tp;
        cr_assert_eq(ll_icl_template_get(*n, &tp), LL_OK);
        ll_check_prompt(t, &tp, ll_words, LL_NW, true);
        ll_check_prompt(t, &tp, ll_words + LL_NW, 0, true); /* zero-shot */
    }
    ll_icl_template tp;
    cr_assert_eq(ll_icl_template_get("In: {x} | Out: {y};\n", &tp), LL_OK, "%s", ll_last_error());
    cr_assert_str_eq(tp.name, "custom");
    ll_check_prompt(t, &tp, ll_words, LL_NW, false);
}

Test(icl_prompt, gpt2_every_template) {
    char p[4096];
    if (!ll_test_asset(p, sizeof p, "tiny-gpt2/tokenizer.json")) cr_skip_test("../shared/assets/tiny-gpt2 not found");
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_for_model(&t, p, NULL, 50257), LL_OK, "%s", ll_last_error());
    ll_all_templates(t);
    /* multi-token labels keep all their positions */
    ll_icl_template tp;
    ll_icl_template_get("default", &tp);
    ll_icl_prompt q;
    cr_assert_eq(ll_icl_prompt_build(t, &tp, ll_words, LL_NW, &ll_words[LL_NW], NULL, &q), LL_OK);
    cr_assert(!q.has_bos, "GPT-2 adds no BOS");
    cr_assert_gt(q.demo[7].lab_hi, q.demo[7].lab_lo, "\"Medina Kyrgyzstan\" is several GPT-2 tokens");
    ll_icl_prompt_free(&q);
    ll_icl_prompt_opts o = {.bos = LL_ICL_BOS_YES};
    cr_assert_eq(ll_icl_prompt_build(t, &tp, ll_words, 2, &ll_words[2], &o, &q), LL_OK, "%s", ll_last_error());
    cr_assert(q.has_bos);
    cr_assert_eq(q.ids[0], 50256);
    cr_assert_eq(q.demo[0].in_lo, 1);
    ll_icl_prompt_free(&q);
    ll_tokenizer_free(t);
}

Test(icl_prompt, llama2_every_template) {
    char p[4096];
    if (!ll_test_asset(p, sizeof p, "llama2-tokenizer/tokenizer.model"))
        cr_skip_test("../shared/assets/llama2-tokenizer not found");
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_for_model(&t, p, NULL, 0), LL_OK, "%s", ll_last_error());
    ll_all_templates(t);
    ll_icl_template tp;
    ll_icl_template_get("default", &tp);
    ll_icl_prompt q;
    cr_assert_eq(ll_icl_prompt_build(t, &tp, ll_words, LL_NW, &ll_words[LL_NW], NULL, &q), LL_OK);
    cr_assert(q.has_bos, "Llama-2 adds BOS");
    cr_assert_eq(q.ids[0], 1);
    cr_assert_gt(q.demo[7].lab_hi, q.demo[7].lab_lo, "multi-token label");
    ll_icl_prompt_free(&q);
    ll_tokenizer_free(t);
}

/* The toy WordLevel vocabulary: one token per word, so positions can be counted by hand. */
Test(icl_prompt, toy_wordlevel_positions_by_hand) {
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_for_model(&t, "data/models/toy-llama", NULL, 0), LL_OK, "%s", ll_last_error());
    ll_icl_template tp;
    ll_icl_template_get("default", &tp);
    ll_icl_item it[3] = {{"7", "apple"}, {"12", "river"}, {"41", "apple"}};
    ll_icl_prompt p;
    cr_assert_eq(ll_icl_prompt_build(t, &tp, it, 2, &it[2], NULL, &p), LL_OK, "%s", ll_last_error());
    /* <s> 7 -> apple \n 12 -> river \n 41 -> */
    cr_assert_eq(p.n, 11);
    cr_assert(p.has_bos);
    int want[2][6] = {{1, 1, 2, 2, 3, 3}, {5, 5, 6, 6, 7, 7}};
    for (int i = 0; i < 2; i++) {
        int got[6] = {p.demo[i].in_lo, p.demo[i].in_hi, p.demo[i].sep_lo, p.demo[i].sep_hi, p.demo[i].lab_lo,
                      p.demo[i].lab_hi};
        cr_assert_arr_eq(got, want[i], sizeof got, "demo %d", i);
    }
    cr_assert_eq(p.query.in_lo, 9);
    cr_assert_eq(p.query.sep_hi, 10);
    cr_assert_eq(p.query_pos, 10);
    ll_icl_prompt_free(&p);
    ll_tokenizer_free(t);
}

Test(icl_prompt, bad_templates_are_errors) {
    ll_icl_template tp;
    cr_assert_eq(ll_icl_template_get("nonesuch", &tp), LL_ERR_ARG);
    cr_assert(strstr(ll_last_error(), "nonesuch"));
    cr_assert_eq(ll_icl_template_get("{label} then {input}", &tp), LL_ERR_ARG);
    cr_assert(strstr(ll_last_error(), "after"));
    cr_assert_eq(ll_icl_template_get("{input} {label} {input}", &tp), LL_ERR_ARG);
    ll_icl_label_pos lp;
    cr_assert_eq(ll_icl_label_pos_parse("middle", &lp), LL_ERR_ARG);
    cr_assert_eq(ll_icl_label_pos_parse("separator", &lp), LL_OK);
    cr_assert_eq(lp, LL_ICL_LABEL_SEP);
}
