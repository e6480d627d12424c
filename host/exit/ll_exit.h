/* SPADE-EXIT: run the model one layer at a time; after each layer l >= min_layer (l < L)
 * apply the L-SPADE map of l to every prompt's answer row, and a prompt whose normalised
 * option entropy H_l / log K is below tau exits: SPADE from layer l answers it (host/spade)
 * and it is DROPPED from the batch of the later layers. Prompts that never exit get the
 * full model's answer. See docs/lspade-exit.md.
 *
 * The forward runs as ll_forward calls of one block each, chaining the residual rows of
 * the prompts still running (resid_in / resid_out); no KV cache is needed because every
 * call sees the whole prompts.
 *
 * ll_exit_table / ll_exit_simulate: the same decisions from per-layer entropies and SPADE
 * answers computed once for every layer, so a whole tau sweep costs one pass (the loop and
 * the simulation agree exactly; tested). */
#ifndef LL_EXIT_H
#define LL_EXIT_H

#include <stdbool.h>
#include <stdint.h>

#include "../lspade/ll_lspade.h"
#include "../spade/ll_spade.h"
#include "ll_exit_cost.h"

typedef struct {
    double tau;        /* exit when the normalised entropy < tau; 0 never exits */
    int min_layer;     /* first layer checked (default 1 when 0) */
    int batch;         /* prompts per batch (default 16) */
    ll_lspade_maps *maps;
    ll_spade *sp;      /* the SPADE runner (its switches decide positions / decode) */
    /* Progress: prompts finished so far. */
    void (*progress)(void *user, int64_t done, int64_t total);
    void *progress_user;
} ll_exit_opts;

typedef struct {
    int n, L;
    int *exit_layer;    /* [n] layer the prompt exited at; L = full model */
    int *pick;          /* [n] chosen option index (-1 when the vocabulary decode picked no option) */
    float *H;           /* [n][L + 1] normalised entropy of each check (NAN where not checked) */
    int *checks;        /* [n] map applications */
    int64_t *rows;      /* [L] rows (tokens) each block processed in the full forward, summed */
    int64_t spade_token_layers; /* what SPADE's runner spent (its own count) */
    double seconds;     /* wall-clock of the whole loop */
    double map_seconds; /* of which L-SPADE maps and entropies */
} ll_exit_result;

void ll_exit_result_free(ll_exit_result *r);

ll_status ll_exit_run(ll_model *m, const ll_exit_opts *o, const ll_lspade_data *data, ll_exit_result *out);

/* ---- the sweep ---- */
typedef struct {
    int n, L, min_layer;
    const int *n_tok;      /* [n] */
    const float *H;        /* [n][L + 1] normalised L-SPADE entropy at l (NAN: no map there) */
    const int *spade_pick; /* [n][L + 1] SPADE's option at l */
    const int *full_pick;  /* [n] the full model's option */
    const int *gold;       /* [n] (-1: unknown, counted wrong) */
    double map_macs;       /* per check */
} ll_exit_table;

typedef struct {
    double tau, accuracy;
    double speedup_aggregate, speedup_mean;
    double map_token_layers; /* the checks' MACs in token-layer equivalents, per example */
    int *hist;               /* [L + 1] exits per layer (L: none); caller-owned, may be NULL */
    ll_exit_tally tally;
} ll_exit_point;

/* Decisions for one tau; exit_layer / pick ([n], may be NULL) get each prompt's outcome.
 * layer_macs: one block's MACs per token (ll_exit_layer_macs), for map_token_layers. */
void ll_exit_simulate(const ll_exit_table *t, double tau, double layer_macs, ll_exit_point *p, int *exit_layer,
                      int *pick);

/* Operating points of a sweep (points sorted by tau or not): best accuracy (ties: the
 * larger aggregate speedup) and the largest aggregate speedup with accuracy >= full - 0.01.
 * Returns their indices (-1 when none qualifies). */
void ll_exit_operating_points(const ll_exit_point *pts, int n_pts, double full_accuracy, int *best_acc,
                              int *best_within_1pt);

#endif
