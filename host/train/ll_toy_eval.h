/* Held-out evaluation of a model on the toy tasks through layerlab's own loader,
 * tokenizer and forward pass: prompts are rendered as text and tokenized, exactly as
 * a user of the exported directory would see them. */
#ifndef LL_TOY_EVAL_H
#define LL_TOY_EVAL_H

#include <stdint.h>

#include "../core/ll_status.h"
#include "ll_toy_data.h"

#define LL_TOY_EVAL_CAT_K 6 /* 0, 1, 2, 4, 8, 16 demonstrations */
#define LL_TOY_EVAL_MAP_K 3 /* 0, 1, 4 */

typedef struct {
    int n; /* episodes per cell */
    int cat_k[LL_TOY_EVAL_CAT_K];
    /* Categorization: the larger logit of the episode's two label words is the correct
     * one (chance 50%); "full" is the argmax over the whole vocabulary. */
    double cat[LL_TOY_EVAL_CAT_K], cat_full[LL_TOY_EVAL_CAT_K];
    int map_k[LL_TOY_EVAL_MAP_K];
    double map[LL_TOY_EVAL_MAP_K]; /* argmax over the vocabulary is the table's value */
    double mcq;                    /* argmax over the vocabulary is the right letter */
    double mcq_letters;            /* the right letter has the largest logit among A-D */
    /* Categorization with the most demonstrations (cat_k[last]) by rule: two-label
     * accuracy and episode count (rules are drawn at random, so counts differ). */
    double cat_rule[LL_TOY_N_RULES];
    int cat_rule_n[LL_TOY_N_RULES];
} ll_toy_eval_result;

/* n episodes per cell, drawn from `seed` (use one the training run did not use). */
ll_status ll_toy_eval(const char *model_dir, int n, uint64_t seed, ll_toy_eval_result *r);

#endif
