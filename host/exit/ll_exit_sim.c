/* The tau sweep from per-layer entropies and SPADE answers (see ll_exit.h). */
#include <math.h>
#include <string.h>

#include "ll_exit.h"

void ll_exit_simulate(const ll_exit_table *t, double tau, double layer_macs, ll_exit_point *p, int *exit_layer,
                      int *pick) {
    int L = t->L, lo = t->min_layer > 0 ? t->min_layer : 1;
    int *hist = p->hist;
    memset(p, 0, sizeof *p);
    p->hist = hist;
    p->tau = tau;
    if (hist) memset(hist, 0, (size_t)(L + 1) * sizeof *hist);
    int correct = 0;
    for (int i = 0; i < t->n; i++) {
        int el = L, checks = 0;
        for (int l = lo; l < L; l++) {
            float h = t->H[(size_t)i * (L + 1) + l];
            if (isnan(h)) continue;
            checks++;
            if (h < tau) {
                el = l;
                break;
            }
        }
        int pk = el < L ? t->spade_pick[(size_t)i * (L + 1) + el] : t->full_pick[i];
        correct += t->gold[i] >= 0 && pk == t->gold[i];
        if (hist) hist[el]++;
        ll_exit_tally_add(&p->tally, t->n_tok[i], L, el, checks, t->map_macs);
        if (exit_layer) exit_layer[i] = el;
        if (pick) pick[i] = pk;
    }
    p->accuracy = t->n ? (double)correct / t->n : 0;
    p->speedup_aggregate = ll_exit_speedup_aggregate(&p->tally);
    p->speedup_mean = ll_exit_speedup_mean(&p->tally);
    p->map_token_layers = t->n && layer_macs > 0 ? p->tally.map_macs / layer_macs / t->n : 0;
}

void ll_exit_operating_points(const ll_exit_point *pts, int n_pts, double full_accuracy, int *best_acc,
                              int *best_within_1pt) {
    *best_acc = *best_within_1pt = -1;
    for (int i = 0; i < n_pts; i++) {
        const ll_exit_point *p = &pts[i];
        if (*best_acc < 0 || p->accuracy > pts[*best_acc].accuracy ||
            (p->accuracy == pts[*best_acc].accuracy && p->speedup_aggregate > pts[*best_acc].speedup_aggregate))
            *best_acc = i;
        /* 1e-12: accuracies are ratios of counts; "within 1 point" includes exactly 1 point. */
        if (p->accuracy >= full_accuracy - 0.01 - 1e-12 &&
            (*best_within_1pt < 0 || p->speedup_aggregate > pts[*best_within_1pt].speedup_aggregate))
            *best_within_1pt = i;
    }
}
