/* Single-token decision tasks (multiple choice, yes/no): loading data sets, writing
 * prompts that end where the answer token is emitted, and finding the candidate answer
 * tokens with the tokenizer. See docs/spade.md ("Data and prompts").
 *
 * Formats (ll_mcqa_format, recognised from the file when AUTO):
 *   foundry  JSONL {"query": str, "choices": [str...], "gold": int} (mcqa-llm-foundry)
 *   boolq    JSONL {"question": str, "passage": str, "answer": bool} (boolq/dev.jsonl)
 *   headqa   JSON {"exams": {name: {"data": [{"qtext", "answers": [{"aid", "atext"}], "ra"}]}}}
 *   arc      JSON array of {"instruction": "... question: Q\n\nAnswer1: a Answer2: b ...",
 *            "answer": "answerK"} (arc-llm-adapters)
 *   generic  JSONL {"prompt": str, "options": [str...], "gold": int, "id"?: any}: the prompt
 *            is used verbatim (any format, e.g. the toy model's "->" tasks) and the options
 *            are the answer strings themselves (each must be one token).
 *   tokens   JSONL {"tokens": [ids], "candidates": [ids], "gold": int, "id"?: any}: prompts
 *            already tokenized (what ll_mcqa_write_dump_jsonl writes, and the cloze
 *            generator's items); used as they are, no template, no BOS added.
 * Errors name the file, the line (JSONL) or record index (JSON), and the field. */
#ifndef LL_MCQA_H
#define LL_MCQA_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/ll_status.h"
#include "../tokenizer/ll_tokenizer.h"

typedef enum {
    LL_MCQA_AUTO = 0,
    LL_MCQA_FOUNDRY,
    LL_MCQA_BOOLQ,
    LL_MCQA_HEADQA,
    LL_MCQA_ARC,
    LL_MCQA_GENERIC,
    LL_MCQA_TOKENS,
} ll_mcqa_format;

typedef struct {
    char *id;        /* from the file, or "<index>" */
    int64_t line;    /* 1-based line (JSONL) or record index + 1 (JSON) */
    char *query;     /* the question (foundry: its "query" verbatim); NULL for generic */
    char *passage;   /* BoolQ passage, else NULL */
    char *prompt;    /* generic: the verbatim prompt, else NULL */
    char **choices;  /* answer texts (generic: the option strings) */
    int n_choices;
    int gold;        /* index into choices (or cand_ids), -1 when unknown */
    /* tokens format: the prompt's ids and the candidate ids (n_choices of them; choices
     * holds their decimal strings); NULL otherwise */
    int32_t *tokens;
    int n_tokens;
    int32_t *cand_ids;
} ll_mcqa_item;

typedef struct {
    ll_mcqa_item *items;
    int n;
    ll_mcqa_format format;
    char *path;
} ll_mcqa_set;

ll_status ll_mcqa_parse_format(const char *s, ll_mcqa_format *out); /* auto|foundry|boolq|headqa|arc|generic|tokens */
const char *ll_mcqa_format_name(ll_mcqa_format f);
/* Load at most `limit` items (<= 0: all). AUTO looks at the first record's fields. */
ll_status ll_mcqa_load(ll_mcqa_set *out, const char *path, ll_mcqa_format fmt, int limit);
void ll_mcqa_set_free(ll_mcqa_set *s);

/* ---- prompts ---- */
typedef enum {
    LL_TPL_AUTO = 0, /* boolq -> BOOLQ, generic -> RAW, else MCQ */
    LL_TPL_MCQ,      /* "Question: q\nA. c0\nB. c1\n...\nAnswer:" -> labels A, B, ... */
    LL_TPL_BOOLQ,    /* "passage\nQuestion: q?\nAnswer:" -> labels no, yes (gold: false -> no) */
    LL_TPL_RAW,      /* the generic prompt verbatim; labels are the options */
    LL_TPL_VICUNA,   /* Vicuna v1.1 chat around the MCQ/BoolQ body: "... USER: body ASSISTANT:" */
} ll_mcqa_template;

typedef struct {
    ll_mcqa_template tpl;
    int k_shot;       /* solved examples before the question (taken from `shots`, or from the
                         set itself skipping the item, in order) */
    const ll_mcqa_set *shots;
} ll_mcqa_prompt_opts;

ll_status ll_mcqa_parse_template(const char *s, ll_mcqa_template *out); /* auto|mcq|boolq|raw|vicuna */
const char *ll_mcqa_template_name(ll_mcqa_template t);

/* The prompt text of item i (malloc'd) and its answer labels (*labels: n_labels malloc'd
 * strings, "A", "B", ... / "no", "yes" / the options). The prompt ends right before the
 * answer token: "Answer:" (the answer is " A") or "ASSISTANT:" (Vicuna). */
ll_status ll_mcqa_prompt(const ll_mcqa_set *s, int i, const ll_mcqa_prompt_opts *o, char **text, char ***labels,
                         int *n_labels);
void ll_mcqa_labels_free(char **labels, int n);

/* The single token for each label: the leading-space form " X" when it is one token, else
 * the bare "X" when that is; an error naming the label otherwise, and when two labels
 * share a token. *variant (may be NULL) gets 1 when the spaced form was used for all
 * labels, 0 when bare, 2 when mixed. */
ll_status ll_mcqa_candidates(const ll_tokenizer *t, const char *const *labels, int n, int32_t *ids, int *variant);

/* A whole set made ready to run: token ids (with the tokenizer's BOS), candidates, gold. */
typedef struct {
    int n;
    char **id, **text;
    int32_t **tok;
    int *n_tok;
    int32_t **cand; /* [n][n_cand[i]] candidate token ids */
    int *n_cand;
    int *gold;      /* -1 unknown */
    ll_mcqa_template tpl;
} ll_mcqa_prompts;

ll_status ll_mcqa_build(const ll_mcqa_set *s, const ll_tokenizer *t, const ll_mcqa_prompt_opts *o,
                        ll_mcqa_prompts *out);
void ll_mcqa_prompts_free(ll_mcqa_prompts *p);

/* Dump input JSONL (host/dump): one line per prompt, {"id", "tokens": [...], "positions":
 * {"answer": n-1}, "gold", "candidates": [...],
 * "template", "prompt_text"} ("text" would make host/dump re-tokenize), so that
 * `layerlab dump --input F --positions answer` records the answer row. Written to a
 * temporary name and renamed. */
ll_status ll_mcqa_write_dump_jsonl(const ll_mcqa_prompts *p, const char *path);

/* ---- a cloze task from the model's own text ----
 * Stories from a pool of 10 openings x 16^3 starts: story k is opening k mod 10 (BOS
 * first), then 3 generated tokens taken at the ranks (0 = argmax, among non-special
 * tokens) given by the base-16 digits of k / 10, then greedy continuation (gen_len
 * tokens). Distinct stories have distinct starts, so their contexts never coincide.
 * The seed owns the block of LL_MCQA_CLOZE_STORIES story slots number seed mod 640:
 * two seeds that differ mod 640 never share a story, hence never share a context
 * (train on one seed, evaluate on another). Stories are generated in chunks of 16 until
 * there are n_items cut points; items cut a story right before a whole-word token (a
 * piece starting with a space / "▁" / "Ġ" followed by at least two letters), after the
 * ranked start and at least min_ctx tokens in; a context equal (by tokens) to one already
 * taken is skipped. The options are that word and n_options-1 other words of the
 * generated text, in random order; gold is the word's index. Items are pre-tokenized
 * (format tokens), so the full model scores its own greedy token: ~100% (exactly, up to
 * argmax ties between batch layouts).
 * Returns fewer than n_items (out->n) when the seed's stories hold fewer cut points; the
 * number available is stored in *n_available when given, so callers can say why. */
#define LL_MCQA_CLOZE_STORIES 64
typedef struct {
    int n_items;      /* default 32 */
    int gen_len;      /* tokens generated greedily per story, default 48 */
    int min_ctx;      /* default 8 */
    int n_options;    /* default 4 */
    uint64_t seed;    /* selects the block of stories (and the distractors) */
    int *n_available; /* out, optional: distinct usable cut points in the seed's stories */
} ll_mcqa_cloze_opts;

struct ll_model;
ll_status ll_mcqa_cloze(struct ll_model *m, const ll_tokenizer *t, const ll_mcqa_cloze_opts *o, ll_mcqa_set *out);

/* The built-in toy model's own multiple-choice task (host/train/ll_toy_data.h,
 * data/models/toy-llama): n questions in its "->" format as generic items (prompt text
 * without BOS, options "A".."D", gold = the letter the generator wrote). */
ll_status ll_mcqa_toy_mcq(int n, uint64_t seed, ll_mcqa_set *out);

#endif
