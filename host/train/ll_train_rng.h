/* The trainer's random numbers: splitmix64, one 64-bit word of state, so a checkpoint
 * stores it exactly and a seed reproduces a run on every platform. */
#ifndef LL_TRAIN_RNG_H
#define LL_TRAIN_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct {
    uint64_t s;
} ll_rng;

static inline uint64_t ll_rng_next(ll_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform integer in [0, n) (n > 0; the modulo bias is below 2^-40 for the n used here). */
static inline int ll_rng_int(ll_rng *r, int n) { return (int)(ll_rng_next(r) % (uint64_t)n); }

/* Uniform double in [0, 1). */
static inline double ll_rng_unif(ll_rng *r) { return (double)(ll_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

/* Standard normal (Box-Muller, one value per call). */
static inline double ll_rng_normal(ll_rng *r) {
    double u1 = ll_rng_unif(r), u2 = ll_rng_unif(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
