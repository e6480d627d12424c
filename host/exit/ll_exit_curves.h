/* Per-layer accuracy curves and the SPADE-EXIT sweep table of a prompt set, from one pass:
 * host/lens's evaluation (one full forward per batch, every layer decoded by the logit
 * lens, SPADE and the tuned lens when given) with L-SPADE plugged in as a method that also
 * records its normalised option entropy at every layer. */
#ifndef LL_EXIT_CURVES_H
#define LL_EXIT_CURVES_H

#include "../lens/ll_lens_eval.h"
#include "ll_exit.h"
#include "ll_exit_prompts.h"

typedef struct {
    ll_lens_eval_result ev;
    int i_logit, i_tuned, i_spade, i_lspade; /* method indices in ev (-1: not run) */
    int n, L;
    float *H;        /* [n][L + 1] normalised L-SPADE entropy (NAN where no map) */
    int *spade_pick; /* [n][L + 1] */
    ll_exit_table table; /* points into the arrays above and the prompts */
} ll_exit_curves;

ll_status ll_exit_curves_run(ll_model *m, ll_lspade_maps *maps, const ll_exit_prompts *p, const ll_tuned_lens *tuned,
                             const ll_spade_opts *so, int batch, int min_layer, bool progress, ll_exit_curves *out);
void ll_exit_curves_free(ll_exit_curves *c);

/* Accuracy of method k at layer l (0..L). */
double ll_exit_curve_acc(const ll_exit_curves *c, int method, int l);
/* Share of prompts where L-SPADE picks the same option as SPADE at layer l (how well the
 * linear map stands in for SPADE, gold or not); NAN without a map there. */
double ll_exit_lspade_agreement(const ll_exit_curves *c, int l);
/* Iso-Compute: SPADE at l costs n*l + 2(L-l) token-layers, so a lens is compared at
 * l' = l + 2(L-l)/n; per prompt the lens is read at ceil(l'), the first whole layer with at
 * least SPADE's compute (capped at L). Accuracy over prompts with a gold answer. */
double ll_exit_iso_acc(const ll_exit_curves *c, const ll_exit_prompts *p, int method, int l);

#endif
