/* Prompt sets for L-SPADE fitting and SPADE-EXIT, owned: token ids (row 0 first, the
 * answer row last), K candidate ids per prompt and the gold option. Made from the toy
 * model's multiple-choice generator (host/train) or from a task file through host/mcqa. */
#ifndef LL_EXIT_PROMPTS_H
#define LL_EXIT_PROMPTS_H

#include <stdint.h>

#include "../lspade/ll_lspade.h"
#include "../mcqa/ll_mcqa.h"

typedef struct {
    int n, K;
    int32_t **tok;
    int *n_tok;
    int32_t **cand;
    int *gold; /* -1 when unknown */
    char **id;
} ll_exit_prompts;

void ll_exit_prompts_free(ll_exit_prompts *p);
/* The view ll_lspade_fit / ll_exit_run take (valid while p lives). */
ll_lspade_data ll_exit_prompts_data(const ll_exit_prompts *p);
/* n questions of the toy world's multiple-choice task ("Question: ... Answer:", options
 * A-D) drawn from seed; for data/models/toy-llama (checks vocab_size against the world). */
ll_status ll_exit_prompts_toy_mcq(ll_exit_prompts *out, int n, uint64_t seed, int vocab_size);
/* Split: prompts [from, to) as a new owned set (copies). */
ll_status ll_exit_prompts_slice(const ll_exit_prompts *p, int from, int to, ll_exit_prompts *out);

/* Copy a built task set (host/mcqa); every prompt must have the same number of options. */
ll_status ll_exit_prompts_from_mcqa(const ll_mcqa_prompts *src, ll_exit_prompts *out);
/* A read-only ll_mcqa_prompts view of p (for host/lens's evaluation); free with
 * ll_exit_prompts_view_free (not ll_mcqa_prompts_free). */
ll_status ll_exit_prompts_view(const ll_exit_prompts *p, ll_mcqa_prompts *view);
void ll_exit_prompts_view_free(ll_mcqa_prompts *view);

#endif
