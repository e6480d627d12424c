/* The toy task generator: reproducible from a seed, every label follows its episode's
 * rule or table, and the toy tokenizer reads rendered text back as the same ids. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/ll_tokenizer.h"
#include "train/ll_toy_data.h"

static ll_toy_world *w;
static void setup(void) { cr_assert_eq(ll_toy_world_new(&w), LL_OK, "%s", ll_last_error()); }
static void teardown(void) { ll_toy_world_free(w); }
TestSuite(train_data, .init = setup, .fini = teardown);

Test(train_data, same_seed_same_stream_other_seed_other_stream) {
    ll_rng a = {42}, b = {42}, c = {43};
    int differ = 0;
    for (int i = 0; i < 50; i++) {
        ll_toy_seq x, y, z;
        ll_toy_sample(w, &a, 80, &x);
        ll_toy_sample(w, &b, 80, &y);
        ll_toy_sample(w, &c, 80, &z);
        cr_assert(x.n == y.n && !memcmp(x.ids, y.ids, sizeof x.ids) && !memcmp(x.lab, y.lab, sizeof x.lab));
        differ += x.n != z.n || memcmp(x.ids, z.ids, (size_t)x.n * sizeof(int32_t));
    }
    cr_assert(differ > 40, "another seed gives other sequences (%d of 50 differ)", differ);
    /* The world itself does not depend on anything. */
    ll_toy_world *w2;
    cr_assert_eq(ll_toy_world_new(&w2), LL_OK);
    cr_assert_eq(ll_toy_vocab_size(w2), ll_toy_vocab_size(w));
    for (int i = 0; i < ll_toy_vocab_size(w); i++) cr_assert_str_eq(ll_toy_token(w, i), ll_toy_token(w2, i));
    ll_toy_world_free(w2);
}

Test(train_data, categorization_labels_follow_the_rule) {
    ll_rng r = {7};
    int rules[LL_TOY_N_RULES] = {0}, cls[2] = {0};
    for (int e = 0; e < 300; e++) {
        ll_toy_seq s;
        ll_toy_cat(w, &r, 16, &s);
        cr_assert_eq(s.n, 1 + 17 * 4 - 1);
        cr_assert_neq(s.labels[0], s.labels[1]);
        rules[s.rule]++;
        int n_lab = 0;
        for (int i = 1; i < s.n; i++) {
            if (!s.lab[i]) continue;
            n_lab++;
            cr_assert_str_eq(ll_toy_token(w, s.ids[i - 1]), "->");
            int c = ll_toy_rule_class(w, s.rule, s.ids[i - 2]);
            cr_assert(c == 0 || c == 1, "input %s is in the domain of rule %s", ll_toy_token(w, s.ids[i - 2]),
                      ll_toy_rule_name(s.rule));
            cls[c]++;
            cr_assert_eq(s.ids[i], s.labels[c], "episode %d item %d: label %s, rule %s says %s", e, n_lab,
                         ll_toy_token(w, s.ids[i]), ll_toy_rule_name(s.rule), ll_toy_token(w, s.labels[c]));
        }
        cr_assert_eq(n_lab, 17);
        cr_assert(s.lab[s.n - 1], "the query's label is the last token");
    }
    for (int i = 0; i < LL_TOY_N_RULES; i++) cr_assert(rules[i] > 20, "rule %d drawn %d times", i, rules[i]);
    cr_assert(cls[0] > 2000 && cls[1] > 2000, "classes are balanced: %d / %d", cls[0], cls[1]);
    /* Spot-check the rules themselves. */
    int32_t even = ll_toy_id(w, "42"), odd = ll_toy_id(w, "7");
    cr_assert_eq(ll_toy_rule_class(w, 3, even), 1);
    cr_assert_eq(ll_toy_rule_class(w, 3, odd), 0);
    cr_assert_eq(ll_toy_rule_class(w, 4, ll_toy_id(w, "50")), 1);
    cr_assert_eq(ll_toy_rule_class(w, 4, ll_toy_id(w, "49")), 0);
    cr_assert_eq(ll_toy_rule_class(w, 0, even), -1, "word rules do not apply to numbers");
}

/* The curriculum's copying stages: categorization episodes with one input per class, so
 * every query input appeared before; without the arrow in the first stage, with it in the
 * second; the mixture stage is ll_toy_sample itself. */
Test(train_data, curriculum_stages_draw_copying_episodes) {
    for (int stage = 0; stage < 3; stage++) {
        ll_rng r = {11}, q = {11};
        int n_cat = 0, n_seq = 400;
        for (int e = 0; e < n_seq; e++) {
            ll_toy_seq s, m;
            ll_toy_sample_stage(w, &r, 80, (ll_toy_stage)stage, &s);
            if (stage == LL_TOY_STAGE_MIX) {
                ll_toy_sample(w, &q, 80, &m);
                cr_assert_eq(s.n, m.n);
                cr_assert(!memcmp(s.ids, m.ids, sizeof(int32_t) * (size_t)s.n), "the mixture stage is ll_toy_sample");
                continue;
            }
            if (s.task != LL_TOY_CAT) continue;
            n_cat++;
            int32_t seen[2] = {-1, -1};
            int arrow = stage == LL_TOY_STAGE_COPY;
            for (int i = 1; i < s.n; i++) {
                if (!s.lab[i]) continue;
                int32_t x = s.ids[i - 1 - arrow];
                if (arrow) cr_assert_str_eq(ll_toy_token(w, s.ids[i - 1]), "->");
                else cr_assert_str_neq(ll_toy_token(w, s.ids[i - 1]), "->");
                int c = ll_toy_rule_class(w, s.rule, x);
                cr_assert(c == 0 || c == 1, "stage %d: input %s outside rule %s", stage, ll_toy_token(w, x),
                          ll_toy_rule_name(s.rule));
                cr_assert_eq(s.ids[i], s.labels[c]);
                if (seen[c] < 0) seen[c] = x;
                cr_assert_eq(seen[c], x, "stage %d: one input per class", stage);
            }
        }
        if (stage != LL_TOY_STAGE_MIX)
            cr_assert(n_cat > n_seq * 7 / 10 && n_cat < n_seq * 9 / 10, "stage %d: %d of %d are copying episodes", stage,
                      n_cat, n_seq);
    }
}

/* Echo episodes of the mixture: "x -> label x" items, the echoed input supervised, so that
 * the label position learns to carry its input (data/README.md, part 4). About half the
 * pool and repeated-input episodes, never the rule-named ones or held-out episodes. */
Test(train_data, mixture_echo_episodes_repeat_the_input_after_its_label) {
    static const char *const rule_words[10] = {"long", "short", "early", "late", "with",
                                               "without", "even", "odd", "high", "low"};
    ll_rng r = {21};
    int echo = 0, plain = 0, named_echo = 0;
    for (int e = 0; e < 1000; e++) {
        ll_toy_seq s;
        ll_toy_sample(w, &r, 80, &s);
        if (s.task != LL_TOY_CAT) continue;
        cr_assert(s.n <= 80, "episode of %d tokens in 80-token rows", s.n);
        bool named = false;
        for (int j = 0; j < 10; j++) named |= s.labels[0] == ll_toy_id(w, rule_words[j]);
        bool is_echo = s.n > 5 && s.ids[4] == s.ids[1];
        if (!is_echo) {
            plain++;
            cr_assert_str_eq(ll_toy_token(w, s.ids[4]), "\n", "a plain episode's second item starts after a newline");
            continue;
        }
        echo++;
        named_echo += named;
        /* Items of 5 tokens: NL x -> label x (the first without its newline). */
        cr_assert_eq(s.n % 5, 0, "echo episode of %d tokens (BOS, items of 5 with the newline, the first without)", s.n);
        int items = 0;
        for (int i = 1; i < s.n; i += 5, items++) {
            int32_t x = s.ids[i];
            cr_assert_str_eq(ll_toy_token(w, s.ids[i + 1]), "->");
            int c = ll_toy_rule_class(w, s.rule, x);
            cr_assert(c == 0 || c == 1);
            cr_assert_eq(s.ids[i + 2], s.labels[c]);
            cr_assert_eq(s.lab[i + 2], 1, "the label is supervised");
            cr_assert_eq(s.ids[i + 3], x, "the input is echoed after its label");
            cr_assert_eq(s.lab[i + 3], 1, "the echo is supervised");
            if (i + 4 < s.n) cr_assert_str_eq(ll_toy_token(w, s.ids[i + 4]), "\n");
        }
        cr_assert(items >= 10, "an echo episode has %d items", items);
    }
    cr_assert_eq(named_echo, 0, "rule-named episodes are never echoed");
    cr_assert(echo > 120 && echo < 280, "about half the pool and repeated-input episodes echo: %d echo, %d not", echo,
              plain);
    /* Held-out episodes never echo. */
    for (int e = 0; e < 50; e++) {
        ll_toy_seq s;
        ll_toy_cat(w, &r, 16, &s);
        cr_assert_eq(s.n, 1 + 17 * 4 - 1);
    }
}

Test(train_data, mappings_and_questions_follow_the_tables) {
    ll_rng r = {9};
    for (int e = 0; e < 200; e++) {
        ll_toy_seq s;
        ll_toy_map(w, &r, 8, &s);
        cr_assert_eq(s.n, 36);
        for (int i = 3; i < s.n; i += 4) {
            cr_assert(s.lab[i]);
            cr_assert_eq(s.ids[i], ll_toy_fact(w, s.rule, s.ids[i - 2]), "entity %s table %s",
                         ll_toy_token(w, s.ids[i - 2]), ll_toy_table_name(s.rule));
            for (int j = 1; j < i - 2; j += 4) cr_assert_neq(s.ids[j], s.ids[i - 2], "entities repeat");
        }
        ll_toy_mcq(w, &r, &s);
        cr_assert_eq(s.n, 30);
        int32_t ent = s.ids[8], ans = s.ids[s.n - 1], truth = ll_toy_fact(w, s.rule, ent);
        cr_assert(truth >= 0, "%s is an entity", ll_toy_token(w, ent));
        int hits = 0;
        for (int o = 0; o < 4; o++) {
            int32_t letter = s.ids[11 + 4 * o], val = s.ids[13 + 4 * o];
            cr_assert_eq(letter, ll_toy_letter(w, o));
            hits += val == truth;
            if (val == truth) cr_assert_eq(ans, letter, "the answer letter points at the true value");
            for (int p = 0; p < o; p++) cr_assert_neq(val, s.ids[13 + 4 * p], "options are distinct");
        }
        cr_assert_eq(hits, 1);
    }
}

Test(train_data, tokenizer_reads_rendered_text_back) {
    char *tj, *tc;
    cr_assert_eq(ll_toy_tokenizer_json(w, &tj, &tc), LL_OK);
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_parse_hf(&t, tj, strlen(tj), tc, strlen(tc), "toy"), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_tokenizer_n_vocab(t), ll_toy_vocab_size(w));
    ll_rng r = {11};
    for (int e = 0; e < 150; e++) {
        ll_toy_seq s;
        if (e % 3 == 0) ll_toy_sample(w, &r, 80, &s);
        else if (e % 3 == 1) ll_toy_mcq(w, &r, &s);
        else ll_toy_cat(w, &r, e % 17, &s);
        cr_assert(s.n <= 80);
        char *text;
        cr_assert_eq(ll_toy_render(w, s.ids, 0, s.n, &text), LL_OK);
        ll_encoding enc = {0};
        cr_assert_eq(ll_tokenizer_encode(t, text, strlen(text), LL_TOK_DEFAULT, &enc), LL_OK);
        cr_assert_eq(enc.n, (size_t)s.n, "\"%s\": %zu tokens, generated %d", text, enc.n, s.n);
        cr_assert(!memcmp(enc.ids, s.ids, enc.n * sizeof(int32_t)), "\"%s\" reads back as other ids", text);
        ll_encoding_free(&enc);
        free(text);
    }
    /* The prompt formats the later suites rely on. */
    ll_toy_seq s;
    ll_toy_cat(w, &r, 1, &s);
    char *text;
    cr_assert_eq(ll_toy_render(w, s.ids, 0, s.n - 1, &text), LL_OK);
    cr_assert(strstr(text, " -> ") && strchr(text, '\n') && !strcmp(text + strlen(text) - 3, " ->"), "%s", text);
    free(text);
    ll_toy_mcq(w, &r, &s);
    cr_assert_eq(ll_toy_render(w, s.ids, 0, s.n - 1, &text), LL_OK);
    cr_assert(!strncmp(text, "Question: what is the ", 22) && strstr(text, "?\nA. ") && strstr(text, "\nD. ") &&
                  !strcmp(text + strlen(text) - 8, "\nAnswer:"),
              "%s", text);
    free(text);
    free(tj);
    free(tc);
    ll_tokenizer_free(t);
}
