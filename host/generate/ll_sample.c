/* Sampling. The random stream is splitmix64 seeded once: tiny, fast, and the same
 * sequence on every platform, so "--seed S" reproduces a sample anywhere. */
#include "ll_sample.h"

#include <math.h>
#include <stdlib.h>

ll_status ll_sampler_init(ll_sampler *s, const ll_sample_opts *o, int vocab) {
    s->o = *o;
    s->state = o->seed ^ 0x9E3779B97F4A7C15ull;
    s->cap = vocab;
    s->idx = malloc((size_t)vocab * sizeof *s->idx);
    s->prob = malloc((size_t)vocab * sizeof *s->prob);
    if (!s->idx || !s->prob) {
        ll_sampler_free(s);
        return ll_err(LL_ERR_NOMEM, "sampler: no memory for a %d-token vocabulary", vocab);
    }
    if (!(o->temperature >= 0) || !(o->top_p > 0 && o->top_p <= 1)) {
        ll_sampler_free(s);
        return ll_err(LL_ERR_ARG, "sampler: temperature must be >= 0 and top_p in (0, 1]; got %g and %g",
                      (double)o->temperature, (double)o->top_p);
    }
    return LL_OK;
}

void ll_sampler_free(ll_sampler *s) {
    free(s->idx);
    free(s->prob);
    s->idx = NULL;
    s->prob = NULL;
}

static uint64_t ll_splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float ll_sampler_uniform(ll_sampler *s) { return (float)(ll_splitmix(&s->state) >> 40) / 16777216.0f; }

static int ll_prob_desc(const void *a, const void *b, void *p) {
    const float *prob = p;
    float x = prob[*(const int32_t *)a], y = prob[*(const int32_t *)b];
    return x > y ? -1 : x < y ? 1 : (*(const int32_t *)a > *(const int32_t *)b) - (*(const int32_t *)a < *(const int32_t *)b);
}

int32_t ll_sample(ll_sampler *s, const float *logits, int vocab) {
    if (s->o.temperature == 0 || vocab == 1) {
        int32_t best = 0;
        for (int i = 1; i < vocab; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    float mx = logits[0];
    for (int i = 1; i < vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < vocab; i++) {
        s->prob[i] = expf((logits[i] - mx) / s->o.temperature);
        sum += s->prob[i];
    }
    float r = ll_sampler_uniform(s);
    if (s->o.top_p >= 1) {
        double acc = 0, target = r * sum;
        for (int i = 0; i < vocab; i++) {
            acc += s->prob[i];
            if (acc > target) return i;
        }
        return vocab - 1;
    }
    /* Nucleus: the smallest set of most likely tokens whose mass reaches top_p. Tokens
     * far below the cut cannot be in it, so only candidates above (1 - p) / (V - 1) of
     * the mass are sorted (the llama2.c trick), which keeps the sort short. */
    double cutoff = (1.0 - s->o.top_p) / (vocab - 1) * sum;
    int n = 0;
    for (int i = 0; i < vocab; i++)
        if (s->prob[i] >= cutoff) s->idx[n++] = i;
    qsort_r(s->idx, (size_t)n, sizeof *s->idx, ll_prob_desc, s->prob);
    double mass = 0;
    int last = n - 1;
    for (int k = 0; k < n; k++) {
        mass += s->prob[s->idx[k]];
        if (mass >= s->o.top_p * sum) {
            last = k;
            break;
        }
    }
    double acc = 0, target = r * mass;
    for (int k = 0; k <= last; k++) {
        acc += s->prob[s->idx[k]];
        if (acc > target) return s->idx[k];
    }
    return s->idx[last];
}
