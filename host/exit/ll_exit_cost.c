/* SPADE-EXIT compute accounting (see ll_exit_cost.h). */
#include "ll_exit_cost.h"

int64_t ll_exit_token_layers(int n, int L, int l) {
    if (l <= 0 || l >= L) return (int64_t)n * L;
    return (int64_t)n * l + 2 * (int64_t)(L - l);
}

double ll_exit_iso_layer(int n, int L, int l) { return l + 2.0 * (L - l) / n; }

double ll_exit_layer_macs(const ll_config *c) {
    double d = c->d_model, hd = (double)c->head_dim, kv = hd * c->n_kv_heads, q = hd * c->n_heads;
    double attn = d * q + 2 * d * kv + q * d;
    double mlp = (c->mlp == LL_MLP_SWIGLU ? 3.0 : 2.0) * d * c->d_ff;
    return attn + mlp;
}

void ll_exit_tally_add(ll_exit_tally *t, int n, int L, int l, int checks, double map_macs) {
    double full = (double)n * L, spent = (double)ll_exit_token_layers(n, L, l);
    t->n_ex++;
    t->full += full;
    t->spent += spent;
    t->sum_ratio += full / spent;
    t->checks += checks;
    t->map_macs += checks * map_macs;
}

double ll_exit_speedup_aggregate(const ll_exit_tally *t) { return t->spent > 0 ? t->full / t->spent : 0; }

double ll_exit_speedup_mean(const ll_exit_tally *t) { return t->n_ex ? t->sum_ratio / t->n_ex : 0; }
