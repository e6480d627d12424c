/* Choosing the next token from logits: greedy, temperature, nucleus (top-p), with a
 * small seeded generator so a run can be repeated exactly. */
#ifndef LL_SAMPLE_H
#define LL_SAMPLE_H

#include <stdint.h>

#include "../core/ll_status.h"

typedef struct {
    float temperature; /* 0: greedy (argmax, lowest id on ties) */
    float top_p;       /* in (0, 1]; 1 = no nucleus cut */
    uint64_t seed;
} ll_sample_opts;

typedef struct {
    ll_sample_opts o;
    uint64_t state;
    /* scratch for top-p: indices and probabilities of the vocabulary */
    int32_t *idx;
    float *prob;
    int cap;
} ll_sampler;

ll_status ll_sampler_init(ll_sampler *s, const ll_sample_opts *o, int vocab);
void ll_sampler_free(ll_sampler *s);
/* One token from logits[vocab] (not modified). */
int32_t ll_sample(ll_sampler *s, const float *logits, int vocab);
/* Uniform float in [0, 1) from the sampler's stream. */
float ll_sampler_uniform(ll_sampler *s);

#endif
