/* In-context-learning prompts: k demonstrations and a query assembled from a template,
 * tokenized once, with the token positions every ICL experiment needs.
 *
 * A template is one demonstration with {input} and {label} placeholders ({x} / {y} are
 * accepted too), e.g. "{input} -> {label}\n". It splits into
 *     pre {input} mid {label} post
 * and a prompt is   prefix  (pre input sep label post) x k   pre input sep
 * where sep is `mid` without its trailing spaces: those spaces belong to the label (and
 * the trailing spaces of `pre` to the input), as
 * BPE vocabularies glue a word to the space before it (" Paris"), so the query ends on
 * the separator ("Paris ->") and the model's next token is the label's first token.
 *
 * Positions are token indices into the prompt's ids (BOS included when the tokenizer
 * adds one). Every segment's token span is [lo, hi] inclusive, -1/-1 when the segment
 * is empty; a token is in a segment's span when its byte span overlaps the segment's
 * bytes. A token that straddles two segments (a merge across the boundary) is counted
 * in n_straddle: positions are then approximate and callers may refuse the prompt. */
#ifndef LL_ICL_PROMPT_H
#define LL_ICL_PROMPT_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/ll_status.h"
#include "../tokenizer/ll_tokenizer.h"

typedef struct {
    const char *name;   /* "default", "hendel", ... or "custom" */
    const char *prefix; /* text before the first demonstration ("" for none) */
    const char *demo;   /* one demonstration with {input} and {label} */
} ll_icl_template;

/* Bundled templates (the names --template takes):
 *   default  "{input} -> {label}\n"
 *   hendel   "example:{input}->{label}\n"          (Hendel et al. 2023)
 *   todd     "Q: {input}\nA: {label}\n\n"          (Todd et al. 2024)
 *   wang     "Review: {input}\nSentiment: {label}\n"  (Wang et al. 2023, SST-2)
 *   wang-trec   "Question: {input}\nAnswer Type: {label}\n"
 *   wang-agnews "Article: {input}\nAnswer: {label}\n"
 *   nli      "{input}\nAnswer: {label}\n"  (CB / RTE: the input holds premise and question)
 * Any other string containing {input} (or {x}) and {label} (or {y}) is a custom template
 * (backslash escapes are the caller's business: the CLI turns "\n" into a newline).
 * A name that is neither is LL_ERR_ARG naming it. */
ll_status ll_icl_template_get(const char *name_or_custom, ll_icl_template *out);
/* Names of the bundled templates, NULL-terminated. */
const char *const *ll_icl_template_names(void);

typedef enum { LL_ICL_LABEL_FIRST = 0, LL_ICL_LABEL_LAST, LL_ICL_LABEL_SEP } ll_icl_label_pos;
ll_status ll_icl_label_pos_parse(const char *s, ll_icl_label_pos *out); /* first|last|separator */
const char *ll_icl_label_pos_name(ll_icl_label_pos p);

typedef enum { LL_ICL_BOS_AUTO = 0, LL_ICL_BOS_YES, LL_ICL_BOS_NO } ll_icl_bos;
ll_status ll_icl_bos_parse(const char *s, ll_icl_bos *out); /* auto|yes|no */
const char *ll_icl_bos_name(ll_icl_bos b);

typedef struct {
    const char *input;
    const char *label; /* the query's label may be NULL (then no answer tokens) */
} ll_icl_item;

/* Token spans of one demonstration (or of the query: label lo/hi are then -1). */
typedef struct {
    int in_lo, in_hi;
    int sep_lo, sep_hi;
    int lab_lo, lab_hi;
} ll_icl_span;

typedef struct {
    char *text; /* the prompt text (NUL-terminated; BOS is not in it) */
    size_t text_len;
    int32_t *ids;
    int n;         /* tokens */
    int k;         /* demonstrations */
    ll_icl_span *demo;  /* [k] */
    ll_icl_span query;
    int query_pos;      /* answer-prediction position: the last prompt token (n - 1) */
    bool has_bos;       /* ids[0] is a BOS the tokenizer (or LL_ICL_BOS_YES) put there */
    int n_straddle;     /* tokens overlapping two segments (0 for a clean alignment) */
    /* The query's label as it tokenizes in context (prompt text + label + post), when the
     * query item had a label: answer[0] is the token the model should predict. */
    int32_t *answer;
    int n_answer;
    bool answer_clean;  /* the prompt's own tokens were unchanged by appending the label */
} ll_icl_prompt;

typedef struct {
    ll_icl_bos bos;
    /* The model's context (cfg.max_pos; 0: unchecked): a longer prompt is refused here, with
     * its length and k, instead of failing deep in the forward pass. ll_icl_exp_init sets it. */
    int max_tokens;
} ll_icl_prompt_opts;

/* Build and tokenize. demos may be NULL when k == 0 (a zero-shot prompt). opts may be NULL.
 * LL_ERR_ARG when the prompt has more than opts->max_tokens tokens (when set). */
ll_status ll_icl_prompt_build(const ll_tokenizer *t, const ll_icl_template *tp, const ll_icl_item *demos, int k,
                              const ll_icl_item *query, const ll_icl_prompt_opts *opts, ll_icl_prompt *out);
void ll_icl_prompt_free(ll_icl_prompt *p);

/* The position used for demonstration i's label: its first / last label token or the
 * last separator token. -1 when that span is empty. */
int ll_icl_label_position(const ll_icl_prompt *p, int i, ll_icl_label_pos mode);

/* The first token of `label` where the model would predict it after a query of template
 * tp (tokenized in context after a fixed query input): the label-word candidate set of
 * a task. -1 with an error when the label produces no token. */
ll_status ll_icl_label_first_token(const ll_tokenizer *t, const ll_icl_template *tp, const char *label,
                                   const ll_icl_prompt_opts *opts, int32_t *out);

/* A "dummy" copy of prompt p (same length and template tokens, so every position lines
 * up): each input token of every demonstration becomes in_fill and each label token
 * lab_fill. With rand_seed != 0, fills are instead drawn per token (deterministically
 * from the seed) from pool[0..n_pool). The query is left as it is. ids out: [p->n],
 * caller-allocated. */
void ll_icl_dummy_ids(const ll_icl_prompt *p, int32_t in_fill, int32_t lab_fill, const int32_t *pool, int n_pool,
                      uint64_t rand_seed, int32_t *out);

/* The id of a filler word for dummies: the first of the candidate words (" x", "x", ...)
 * that is a single token in this vocabulary, else the unknown token, else 0. */
int32_t ll_icl_filler_token(const ll_tokenizer *t, const char *const *words);

#endif
