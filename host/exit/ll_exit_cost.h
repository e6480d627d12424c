/* Compute accounting for SPADE-EXIT in token-layers (one block applied to one token), as
 * docs/spade.md defines it: the full model costs n*L for an n-token prompt; exiting after
 * layer l (1 <= l < L) costs n*l for the full causal forward so far plus 2*(L-l) for SPADE's
 * two rows through the remaining blocks. The L-SPADE checks and the one LM-head call are
 * counted apart, in multiply-adds (MACs), and also expressed in token-layer equivalents. */
#ifndef LL_EXIT_COST_H
#define LL_EXIT_COST_H

#include <stdint.h>

#include "../model/ll_config.h"

/* Token-layers of one example; l >= L (or l <= 0 meaning "no exit") is the full model. */
int64_t ll_exit_token_layers(int n, int L, int l);
/* Iso-Compute: the lens layer with the same token-layers as SPADE at l: l + 2(L-l)/n. */
double ll_exit_iso_layer(int n, int L, int l);
/* Multiply-adds of one block for one token: the Q, K, V, O projections and the MLP
 * (attention scores, which grow with the context, and norms are left out). */
double ll_exit_layer_macs(const ll_config *c);

/* Running totals over examples. */
typedef struct {
    int64_t n_ex;
    double full, spent;     /* token-layers: sum n_i L and sum C_i */
    double sum_ratio;       /* sum over examples of n_i L / C_i */
    double map_macs;        /* L-SPADE checks, summed */
    int64_t checks;         /* map applications */
} ll_exit_tally;

/* One example of n tokens that exited at l (L: none) after `checks` map applications
 * costing map_macs each. */
void ll_exit_tally_add(ll_exit_tally *t, int n, int L, int l, int checks, double map_macs);
double ll_exit_speedup_aggregate(const ll_exit_tally *t); /* sum n L / sum C */
double ll_exit_speedup_mean(const ll_exit_tally *t);      /* mean of n L / C */

#endif
