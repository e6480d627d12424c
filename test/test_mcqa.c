/* Multiple-choice data: the loaders on small temporary files and on ../shared, errors on
 * bad input, the prompt templates, candidate tokens with the real GPT-2 and Llama-2
 * tokenizers, and the dump-input JSONL they write. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dump/ll_dump_input.h"
#include "ll_test_util.h"
#include "mcqa/ll_mcqa.h"
#include "train/ll_toy_data.h"

static void tmpfile_with(char *path, size_t n, const char *text, const char *suffix) {
    cr_assert_eq(ll_test_write_tmp(path, n, text, strlen(text), suffix), 0);
}

static const char foundry[] =
    "{\"query\": \"Question: What is 2+2?\", \"choices\": [\"3\", \"4\", \"5\"], \"gold\": 1}\n"
    "\n"
    "{\"query\": \"Question: Sky colour?\", \"choices\": [\"blue\", \"green\"], \"gold\": 0, \"id\": \"q2\"}\n";

Test(mcqa, foundry_and_mcq_template) {
    char p[256];
    tmpfile_with(p, sizeof p, foundry, ".jsonl");
    ll_mcqa_set s;
    cr_assert_eq(ll_mcqa_load(&s, p, LL_MCQA_AUTO, 0), LL_OK, "%s", ll_last_error());
    cr_expect_eq(s.format, LL_MCQA_FOUNDRY);
    cr_assert_eq(s.n, 2);
    cr_expect_eq(s.items[0].n_choices, 3);
    cr_expect_eq(s.items[0].gold, 1);
    cr_expect_str_eq(s.items[0].id, "0");
    cr_expect_str_eq(s.items[1].id, "q2");
    cr_expect_eq(s.items[1].line, 3, "blank line counted: line %lld", (long long)s.items[1].line);
    char *text, **lab;
    int nl;
    cr_assert_eq(ll_mcqa_prompt(&s, 0, NULL, &text, &lab, &nl), LL_OK, "%s", ll_last_error());
    cr_expect_str_eq(text, "Question: What is 2+2?\nA. 3\nB. 4\nC. 5\nAnswer:");
    cr_assert_eq(nl, 3);
    cr_expect_str_eq(lab[2], "C");
    free(text);
    ll_mcqa_labels_free(lab, nl);
    /* 1-shot: the other item, solved, first. */
    ll_mcqa_prompt_opts o = {.tpl = LL_TPL_MCQ, .k_shot = 1};
    cr_assert_eq(ll_mcqa_prompt(&s, 0, &o, &text, NULL, NULL), LL_OK);
    cr_expect_str_eq(text, "Question: Sky colour?\nA. blue\nB. green\nAnswer: A\n\n"
                           "Question: What is 2+2?\nA. 3\nB. 4\nC. 5\nAnswer:");
    free(text);
    o.k_shot = 2;
    cr_expect_eq(ll_mcqa_prompt(&s, 0, &o, &text, NULL, NULL), LL_ERR_ARG, "only one other solved example");
    o = (ll_mcqa_prompt_opts){.tpl = LL_TPL_VICUNA};
    cr_assert_eq(ll_mcqa_prompt(&s, 1, &o, &text, NULL, NULL), LL_OK);
    cr_expect(strstr(text, " USER: Question: Sky colour?\nA. blue\nB. green\n"), "%s", text);
    size_t n = strlen(text);
    cr_expect(n > 10 && !strcmp(text + n - 10, "ASSISTANT:"), "Vicuna prompt must end at ASSISTANT: (%s)", text);
    free(text);
    o.tpl = LL_TPL_RAW;
    cr_expect_eq(ll_mcqa_prompt(&s, 1, &o, &text, NULL, NULL), LL_ERR_ARG);
    cr_expect(strstr(ll_last_error(), "generic"), "%s", ll_last_error());
    ll_mcqa_set_free(&s);
    unlink(p);
}

Test(mcqa, boolq_headqa_arc_generic) {
    char p[256];
    ll_mcqa_set s;
    char *text, **lab;
    int nl;
    tmpfile_with(p, sizeof p,
                 "{\"question\": \"is water wet\", \"title\": \"W\", \"answer\": true, \"passage\": \"Water is wet.\"}\n",
                 ".jsonl");
    cr_assert_eq(ll_mcqa_load(&s, p, LL_MCQA_AUTO, 0), LL_OK, "%s", ll_last_error());
    cr_expect_eq(s.format, LL_MCQA_BOOLQ);
    cr_expect_eq(s.items[0].gold, 1);
    cr_assert_eq(ll_mcqa_prompt(&s, 0, NULL, &text, &lab, &nl), LL_OK);
    cr_expect_str_eq(text, "Water is wet.\nQuestion: Is water wet?\nAnswer:");
    cr_expect_str_eq(lab[0], "no");
    cr_expect_str_eq(lab[1], "yes");
    free(text);
    ll_mcqa_labels_free(lab, nl);
    ll_mcqa_set_free(&s);
    unlink(p);

    tmpfile_with(p, sizeof p,
                 "{\"version\": \"1.0\", \"exams\": {\"E1\": {\"name\": \"E1\", \"data\": [{\"qid\": \"7\", \"qtext\": "
                 "\"Q?\", \"ra\": \"2\", \"answers\": [{\"aid\": 1, \"atext\": \"a\"}, {\"aid\": 2, \"atext\": \"b\"}, "
                 "{\"aid\": 3, \"atext\": \"c\"}]}]}}}",
                 ".json");
    cr_assert_eq(ll_mcqa_load(&s, p, LL_MCQA_AUTO, 0), LL_OK, "%s", ll_last_error());
    cr_expect_eq(s.format, LL_MCQA_HEADQA);
    cr_expect_eq(s.items[0].gold, 1);
    cr_expect_str_eq(s.items[0].id, "E1/7");
    cr_assert_eq(ll_mcqa_prompt(&s, 0, NULL, &text, NULL, NULL), LL_OK);
    cr_expect_str_eq(text, "Question: Q?\nA. a\nB. b\nC. c\nAnswer:");
    free(text);
    ll_mcqa_set_free(&s);
    unlink(p);

    tmpfile_with(p, sizeof p,
                 "[{\"instruction\": \"Please choose the correct answer to the question: Why?\\n\\nAnswer1: one. "
                 "Answer2: two Answer3: three\\n\\nAnswer format: answer1/answer2/answer3\", \"input\": \"\", "
                 "\"output\": \"the correct answer is answer3\", \"answer\": \"answer3\"}]",
                 ".json");
    cr_assert_eq(ll_mcqa_load(&s, p, LL_MCQA_AUTO, 0), LL_OK, "%s", ll_last_error());
    cr_expect_eq(s.format, LL_MCQA_ARC);
    cr_assert_eq(s.items[0].n_choices, 3);
    cr_expect_str_eq(s.items[0].query, "Why?");
    cr_expect_str_eq(s.items[0].choices[0], "one.");
    cr_expect_str_eq(s.items[0].choices[2], "three");
    cr_expect_eq(s.items[0].gold, 2);
    ll_mcqa_set_free(&s);
    unlink(p);

    tmpfile_with(p, sizeof p, "{\"prompt\": \"dog -> animal\\ncar ->\", \"options\": [\"animal\", \"vehicle\"], \"gold\": 1}\n",
                 ".jsonl");
    cr_assert_eq(ll_mcqa_load(&s, p, LL_MCQA_AUTO, 0), LL_OK, "%s", ll_last_error());
    cr_expect_eq(s.format, LL_MCQA_GENERIC);
    cr_assert_eq(ll_mcqa_prompt(&s, 0, NULL, &text, &lab, &nl), LL_OK);
    cr_expect_str_eq(text, "dog -> animal\ncar ->");
    cr_expect_str_eq(lab[1], "vehicle");
    free(text);
    ll_mcqa_labels_free(lab, nl);
    ll_mcqa_set_free(&s);
    unlink(p);
}

static void expect_load_error(const char *text, ll_mcqa_format fmt, const char *want1, const char *want2) {
    char p[256];
    tmpfile_with(p, sizeof p, text, ".jsonl");
    ll_mcqa_set s;
    ll_status st = ll_mcqa_load(&s, p, fmt, 0);
    cr_expect_neq(st, LL_OK, "loading %s should fail", text);
    const char *e = ll_last_error();
    cr_expect(strstr(e, p), "message names the file: %s", e);
    if (want1) cr_expect(strstr(e, want1), "message \"%s\" lacks \"%s\"", e, want1);
    if (want2) cr_expect(strstr(e, want2), "message \"%s\" lacks \"%s\"", e, want2);
    unlink(p);
}

Test(mcqa, bad_input_names_file_line_field) {
    expect_load_error("{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n{\"query\": \"q\", \"gold\": 0}\n",
                      LL_MCQA_AUTO, ":2", "\"choices\"");
    expect_load_error("{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}\n", LL_MCQA_AUTO, ":1", "\"gold\"");
    expect_load_error("{\"query\": \"q\", \"choices\": [\"a\", 3], \"gold\": 0}\n", LL_MCQA_FOUNDRY, ":1", "\"choices\"[1]");
    expect_load_error("{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\nnot json\n", LL_MCQA_AUTO, ":2",
                      "JSON");
    expect_load_error("{\"x\": 1}\n", LL_MCQA_AUTO, ":1", "--format");
    expect_load_error("{\"question\": \"q\", \"passage\": \"p\", \"answer\": \"yes\"}\n", LL_MCQA_BOOLQ, ":1", "\"answer\"");
    expect_load_error("\n\n", LL_MCQA_AUTO, "empty", NULL);
    expect_load_error("[{\"instruction\": \"no options here\", \"answer\": \"answer1\"}]", LL_MCQA_AUTO, "record 1",
                      "\"instruction\"");
    ll_mcqa_set s;
    cr_expect_eq(ll_mcqa_load(&s, "/nonexistent/x.jsonl", LL_MCQA_AUTO, 0), LL_ERR_IO);
    ll_mcqa_format f;
    cr_expect_eq(ll_mcqa_parse_format("csv", &f), LL_ERR_ARG);
}

/* GPT-2: " A" is one token (Ġ A), so the spaced form is used; the ids agree with the
 * vocabulary's own pieces. */
Test(mcqa, candidates_gpt2_tokenizer) {
    char p[512];
    if (!ll_test_asset(p, sizeof p, "tiny-gpt2/tokenizer.json")) cr_skip_test("../shared/assets/tiny-gpt2 absent");
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_load_hf(&t, p, NULL), LL_OK, "%s", ll_last_error());
    const char *labels[4] = {"A", "B", "C", "D"};
    int32_t ids[4];
    int variant;
    cr_assert_eq(ll_mcqa_candidates(t, labels, 4, ids, &variant), LL_OK, "%s", ll_last_error());
    cr_expect_eq(variant, 1);
    for (int j = 0; j < 4; j++) {
        char piece[8] = " "; /* byte-level pieces are looked up as raw bytes */
        strcat(piece, labels[j]);
        cr_expect_eq(ids[j], ll_tokenizer_token_id(t, piece, strlen(piece)), "label %s", labels[j]);
    }
    cr_expect_eq(ids[0], 317, "GPT-2's \" A\" is id 317, found %d", ids[0]);
    const char *yn[2] = {"no", "yes"};
    cr_assert_eq(ll_mcqa_candidates(t, yn, 2, ids, NULL), LL_OK);
    cr_expect_eq(ids[0], 645, "\" no\" = 645, found %d", ids[0]);
    cr_expect_eq(ids[1], 3763, "\" yes\" = 3763, found %d", ids[1]);
    const char *bad[1] = {"antidisestablishmentarianism"};
    cr_expect_eq(ll_mcqa_candidates(t, bad, 1, ids, NULL), LL_ERR_UNSUPPORTED);
    cr_expect(strstr(ll_last_error(), "antidisestablishmentarianism"), "%s", ll_last_error());
    const char *dup[2] = {"A", "A"};
    cr_expect_eq(ll_mcqa_candidates(t, dup, 2, ids, NULL), LL_ERR_UNSUPPORTED);
    ll_tokenizer_free(t);
}

/* Llama-2 (SentencePiece): " A" is two tokens (the dummy prefix plus the space), so the bare
 * "A" -> "▁A" is used. */
Test(mcqa, candidates_llama2_tokenizer) {
    char p[512];
    if (!ll_test_asset(p, sizeof p, "llama2-tokenizer/tokenizer.model"))
        cr_skip_test("../shared/assets/llama2-tokenizer absent");
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_load_spm(&t, p), LL_OK, "%s", ll_last_error());
    const char *labels[4] = {"A", "B", "C", "D"};
    int32_t ids[4];
    int variant;
    cr_assert_eq(ll_mcqa_candidates(t, labels, 4, ids, &variant), LL_OK, "%s", ll_last_error());
    for (int j = 0; j < 4; j++) {
        char piece[8] = "\xe2\x96\x81"; /* ▁ */
        strcat(piece, labels[j]);
        cr_expect_eq(ids[j], ll_tokenizer_token_id(t, piece, strlen(piece)), "label %s", labels[j]);
    }
    cr_expect_eq(ids[0], 319, "Llama-2's \"▁A\" is id 319, found %d", ids[0]);
    const char *yn[2] = {"no", "yes"};
    cr_assert_eq(ll_mcqa_candidates(t, yn, 2, ids, NULL), LL_OK);
    cr_expect_eq(ids[1], ll_tokenizer_token_id(t, "\xe2\x96\x81yes", 6));
    ll_tokenizer_free(t);
}

/* The dump JSONL is read back by host/dump with the answer position at n-1. */
Test(mcqa, dump_jsonl_roundtrip) {
    char p[512];
    if (!ll_test_asset(p, sizeof p, "tiny-gpt2/tokenizer.json")) cr_skip_test("../shared/assets/tiny-gpt2 absent");
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_load_hf(&t, p, NULL), LL_OK);
    char d[256];
    tmpfile_with(d, sizeof d, foundry, ".jsonl");
    ll_mcqa_set s;
    cr_assert_eq(ll_mcqa_load(&s, d, LL_MCQA_AUTO, 0), LL_OK);
    ll_mcqa_prompts pr;
    cr_assert_eq(ll_mcqa_build(&s, t, NULL, &pr), LL_OK, "%s", ll_last_error());
    cr_assert_eq(pr.n, 2);
    char out[300];
    snprintf(out, sizeof out, "%s.dump.jsonl", d);
    cr_assert_eq(ll_mcqa_write_dump_jsonl(&pr, out), LL_OK, "%s", ll_last_error());
    ll_dump_input *in;
    cr_assert_eq(ll_dump_input_open(&in, out), LL_OK, "%s", ll_last_error());
    for (int i = 0; i < pr.n; i++) {
        ll_dump_record r = {0};
        bool more;
        cr_assert_eq(ll_dump_input_next(in, &r, &more), LL_OK, "%s", ll_last_error());
        cr_assert(more);
        cr_assert_eq(r.n_tokens, pr.n_tok[i]);
        cr_expect_eq(memcmp(r.tokens, pr.tok[i], (size_t)r.n_tokens * 4), 0);
        int64_t idx;
        cr_assert_eq(ll_dump_record_positions(&r, "answer", r.n_tokens, &idx, 1), 1, "%s", ll_last_error());
        cr_expect_eq(idx, pr.n_tok[i] - 1);
        ll_dump_record_clear(&r);
    }
    ll_dump_input_free(in);
    ll_mcqa_prompts_free(&pr);
    ll_mcqa_set_free(&s);
    ll_tokenizer_free(t);
    unlink(out);
    unlink(d);
}

/* The real files: every loader reads the first records with valid gold indices. */
Test(mcqa, shared_datasets) {
    struct {
        const char *rel;
        ll_mcqa_format want;
        int min_choices;
    } sets[] = {
        {"mcqa-llm-foundry/arc_easy.jsonl", LL_MCQA_FOUNDRY, 3},
        {"mcqa-llm-foundry/boolq.jsonl", LL_MCQA_FOUNDRY, 2},
        {"boolq/dev.jsonl", LL_MCQA_BOOLQ, 2},
        {"headqa/HEAD_EN/dev_HEAD_EN.json", LL_MCQA_HEADQA, 4},
        {"arc-llm-adapters/ARC-Easy/test.json", LL_MCQA_ARC, 3},
        {"arc-llm-adapters/ARC-Challenge/train.json", LL_MCQA_ARC, 3},
    };
    char p[512];
    if (!ll_test_shared_assets()) cr_skip_test("../shared/assets absent");
    for (size_t k = 0; k < sizeof sets / sizeof *sets; k++) {
        if (!ll_test_asset(p, sizeof p, sets[k].rel)) {
            cr_log_warn("skipping %s: absent", sets[k].rel);
            continue;
        }
        ll_mcqa_set s;
        cr_assert_eq(ll_mcqa_load(&s, p, LL_MCQA_AUTO, 50), LL_OK, "%s", ll_last_error());
        cr_expect_eq(s.format, sets[k].want, "%s: format %s", sets[k].rel, ll_mcqa_format_name(s.format));
        cr_expect_eq(s.n, 50, "%s: %d records", sets[k].rel, s.n);
        for (int i = 0; i < s.n; i++) {
            cr_expect(s.items[i].n_choices >= sets[k].min_choices, "%s item %d: %d choices", sets[k].rel, i,
                      s.items[i].n_choices);
            cr_expect(s.items[i].gold >= 0 && s.items[i].gold < s.items[i].n_choices);
            char *text;
            cr_expect_eq(ll_mcqa_prompt(&s, i, NULL, &text, NULL, NULL), LL_OK, "%s", ll_last_error());
            free(text);
        }
        ll_mcqa_set_free(&s);
    }
    /* The whole HeadQA dev file: its README counts per-exam questions. */
    if (ll_test_asset(p, sizeof p, "headqa/HEAD_EN/dev_HEAD_EN.json")) {
        ll_mcqa_set s;
        cr_assert_eq(ll_mcqa_load(&s, p, LL_MCQA_HEADQA, 0), LL_OK, "%s", ll_last_error());
        cr_expect(s.n > 1000, "HeadQA dev has %d questions", s.n);
        ll_mcqa_set_free(&s);
    }
}

/* The toy model's "->" questions as generic items: the prompt text tokenized by the toy
 * tokenizer gives back the generator's ids, and the candidates are the letters A-D. */
Test(mcqa, toy_mcq_generic_roundtrip) {
    ll_tokenizer *t;
    cr_assert_eq(ll_tokenizer_load_hf(&t, "data/models/toy-llama/tokenizer.json", "data/models/toy-llama/tokenizer_config.json"),
                 LL_OK, "%s", ll_last_error());
    ll_mcqa_set s;
    cr_assert_eq(ll_mcqa_toy_mcq(20, 3, &s), LL_OK, "%s", ll_last_error());
    ll_mcqa_prompts pr;
    cr_assert_eq(ll_mcqa_build(&s, t, NULL, &pr), LL_OK, "%s", ll_last_error());
    cr_expect_eq(pr.tpl, LL_TPL_RAW);
    /* The same questions straight from the generator. */
    ll_toy_world *w;
    cr_assert_eq(ll_toy_world_new(&w), LL_OK);
    ll_rng r = {3};
    for (int i = 0; i < pr.n; i++) {
        ll_toy_seq q;
        ll_toy_mcq(w, &r, &q);
        cr_assert_eq(pr.n_tok[i], q.n - 1, "question %d: %d tokens, the generator wrote %d before the answer", i,
                     pr.n_tok[i], q.n - 1);
        cr_expect_eq(memcmp(pr.tok[i], q.ids, (size_t)(q.n - 1) * sizeof(int32_t)), 0, "question %d tokens", i);
        cr_assert_eq(pr.n_cand[i], 4);
        for (int j = 0; j < 4; j++) cr_expect_eq(pr.cand[i][j], ll_toy_letter(w, j));
        cr_expect_eq(pr.cand[i][pr.gold[i]], q.ids[q.n - 1], "question %d gold", i);
    }
    ll_toy_world_free(w);
    ll_mcqa_prompts_free(&pr);
    ll_mcqa_set_free(&s);
    ll_tokenizer_free(t);
}

/* Pre-tokenized items (what --dump-prompts writes): read back as they are; bad ids refused. */
Test(mcqa, tokens_format) {
    char p[256];
    tmpfile_with(p, sizeof p,
                 "{\"id\": \"a\", \"tokens\": [1, 5, 9], \"positions\": {\"answer\": 2}, \"gold\": 1, \"candidates\": [4, 7]}\n",
                 ".jsonl");
    ll_mcqa_set s;
    cr_assert_eq(ll_mcqa_load(&s, p, LL_MCQA_AUTO, 0), LL_OK, "%s", ll_last_error());
    cr_expect_eq(s.format, LL_MCQA_TOKENS);
    ll_mcqa_prompts pr;
    cr_assert_eq(ll_mcqa_build(&s, NULL, NULL, &pr), LL_OK, "%s", ll_last_error());
    cr_assert_eq(pr.n_tok[0], 3);
    cr_expect_eq(pr.tok[0][2], 9);
    cr_expect_eq(pr.cand[0][1], 7);
    cr_expect_eq(pr.gold[0], 1);
    char *text;
    cr_expect_eq(ll_mcqa_prompt(&s, 0, NULL, &text, NULL, NULL), LL_ERR_ARG, "no text to template");
    ll_mcqa_prompts_free(&pr);
    ll_mcqa_set_free(&s);
    unlink(p);
    expect_load_error("{\"tokens\": [1, -5], \"candidates\": [4, 7], \"gold\": 0}\n", LL_MCQA_AUTO, ":1", "\"tokens\"[1]");
    expect_load_error("{\"tokens\": [1, 5], \"candidates\": [4], \"gold\": 0}\n", LL_MCQA_TOKENS, ":1", "\"candidates\"");
}
