/* The synthetic task mixture the built-in model organism (data/models/toy-llama) is
 * trained and evaluated on, generated in C from a seed so training streams batches
 * without files. All prompts use the `{input} -> {label}` format; every label and
 * every answer letter is one token of the toy WordLevel vocabulary.
 *
 * The world (vocabulary, synthetic words, entities, fact tables) is fixed: it is
 * built from a constant seed, so a model and its evaluation always agree on it. Only
 * episodes depend on the caller's seed. See data/README.md for the task description. */
#ifndef LL_TOY_DATA_H
#define LL_TOY_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/ll_status.h"
#include "ll_train_rng.h"

#define LL_TOY_MAX_TOKENS 128
#define LL_TOY_N_RULES 5 /* categorization rules: 3 over words, 2 over numbers */
#define LL_TOY_N_TABLES 4
#define LL_TOY_N_VALUES 10 /* values per table */
#define LL_TOY_N_ENTITIES 48
#define LL_TOY_N_WORDS 256
#define LL_TOY_N_LABELS 24 /* pool of categorization label words */
#define LL_TOY_MCQ_WEIGHT 4
/* Share of the mixture's categorization episodes (pool and repeated-input) written as
 * "x -> label x" echo episodes (ll_toy_data.c). */
#define LL_TOY_ECHO_SHARE 0.5

typedef struct ll_toy_world ll_toy_world;

typedef enum { LL_TOY_CAT = 0, LL_TOY_MAP, LL_TOY_MCQ } ll_toy_task;

/* One sequence: ids[0] is BOS; lab[i] marks ids[i] as a supervised label (predicted at
 * row i - 1). For the single-episode generators the last token is the answer and
 * ids[0..n-1) is the prompt. */
typedef struct {
    ll_toy_task task;
    int n;
    int32_t ids[LL_TOY_MAX_TOKENS];
    uint8_t lab[LL_TOY_MAX_TOKENS]; /* loss weight, 0 for tokens that are not labels */
    int rule;          /* categorization: the rule index; mapping / MCQ: the table */
    int32_t labels[2]; /* categorization: label word of class 0 and of class 1 */
} ll_toy_seq;

ll_status ll_toy_world_new(ll_toy_world **out);
void ll_toy_world_free(ll_toy_world *w);
int ll_toy_vocab_size(const ll_toy_world *w);
const char *ll_toy_token(const ll_toy_world *w, int32_t id); /* NULL when out of range */
int32_t ll_toy_id(const ll_toy_world *w, const char *tok);  /* -1 when absent */
int32_t ll_toy_bos(void);
int32_t ll_toy_eos(void);
int32_t ll_toy_pad(void);
const char *ll_toy_rule_name(int rule);
const char *ll_toy_table_name(int table);

/* Ground truth, for tests and checks. */
/* Class (0/1) of an input token under a rule; -1 when the token is not in its domain. */
int ll_toy_rule_class(const ll_toy_world *w, int rule, int32_t input);
int32_t ll_toy_fact(const ll_toy_world *w, int table, int32_t entity); /* -1 when not an entity */
/* Option letter token ("A".."D") at index i. */
int32_t ll_toy_letter(const ll_toy_world *w, int i);

/* A training sequence of at most max_len tokens, the task drawn from the mixture:
 * 40% categorization with 16-18 demonstrations and pool labels (in 15 of the 40 the
 * inputs come from 4 per class and repeat), 15% the same with each rule's own label
 * pair ("long"/"short", ...), 5% mapping, 40% packed multiple-choice questions (half
 * of them real, the rest one of two easier forms, see ll_toy_data.c). Every label in it is supervised: lab[i] is its loss weight
 * (1, LL_TOY_MCQ_WEIGHT for answer letters). */
void ll_toy_sample(const ll_toy_world *w, ll_rng *r, int max_len, ll_toy_seq *s);
/* The training curriculum: two copying stages, then the mixture (see ll_toy_data.c). */
typedef enum { LL_TOY_STAGE_COPY_NOARROW = 0, LL_TOY_STAGE_COPY, LL_TOY_STAGE_MIX } ll_toy_stage;
void ll_toy_sample_stage(const ll_toy_world *w, ll_rng *r, int max_len, ll_toy_stage stage, ll_toy_seq *s);
/* Single episodes with k demonstrations then the query; the last token is its answer. */
void ll_toy_cat(const ll_toy_world *w, ll_rng *r, int k, ll_toy_seq *s);
void ll_toy_map(const ll_toy_world *w, ll_rng *r, int k, ll_toy_seq *s);
void ll_toy_mcq(const ll_toy_world *w, ll_rng *r, ll_toy_seq *s);

/* The text of ids[from..to) as the tokenizer reads it back (BOS left out: the
 * tokenizer adds it). malloc'd. */
ll_status ll_toy_render(const ll_toy_world *w, const int32_t *ids, int from, int to, char **out);
/* tokenizer.json (WordLevel, Whitespace pre-tokenizer, "\n" an added token, BOS added
 * by the post-processor) and tokenizer_config.json, malloc'd. */
ll_status ll_toy_tokenizer_json(const ll_toy_world *w, char **tokenizer, char **config);

#endif
