/* Text generation: prefill the prompt once, then decode one token at a time over
 * the KV cache, sampling each next token and streaming its text. */
#ifndef LL_GENERATE_H
#define LL_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../model/ll_forward.h"
#include "../tokenizer/ll_tokenizer.h"
#include "ll_sample.h"

typedef struct {
    int max_new_tokens;
    ll_sample_opts sample;
    bool ignore_eos; /* keep going past EOS (and past BOS, which starts a new document) */
    /* Called with the text each new token completes (possibly empty); a non-zero
     * return stops generation early. May be NULL. */
    int (*on_text)(void *user, const char *text, size_t len);
    void *user;
} ll_generate_opts;

typedef struct {
    int32_t *ids; /* prompt followed by the new tokens (malloc'd) */
    int n_prompt, n;
    double prefill_s, decode_s;
    const char *stop; /* "eos", "bos", "max_new_tokens", "context", "callback" */
} ll_generation;

ll_status ll_generate(ll_model *m, const ll_tokenizer *t, const int32_t *prompt, int n_prompt, const ll_generate_opts *o,
                      ll_generation *out);
void ll_generation_free(ll_generation *g);

#endif
