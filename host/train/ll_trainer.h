/* Training the toy Llama on the synthetic task mixture: the optimizer state, the data
 * stream's RNG and the step counter live together so that a checkpoint captures a run
 * exactly and a resumed run gives the same bits as an uninterrupted one (same thread
 * count: OpenBLAS splits its sums by thread). */
#ifndef LL_TRAINER_H
#define LL_TRAINER_H

#include <stdint.h>

#include "ll_toy_data.h"
#include "ll_train_model.h"

typedef struct {
    ll_tm_cfg model; /* vocab is taken from the toy world */
    int batch, seq_len;
    int64_t steps, warmup;
    float lr, min_lr, weight_decay, clip, beta1, beta2, eps;
    uint64_t seed; /* initialisation and data stream */
    /* Curriculum (ll_toy_sample_stage): the first stage_steps[0] steps draw arrow-less
     * copying episodes, the next stage_steps[1] copying episodes with the arrow, the rest
     * the task mixture. {0, 0}: the mixture from the start. */
    int64_t stage_steps[2];
    /* The first stage ends early, at the step where the smoothed loss (EMA, 0.98) first
     * falls below stage_auto_loss: the matching circuit has formed, and copying longer
     * only spends budget; stage_steps[0] is then the cap (0: off). When it fires,
     * stage_steps[0] is set to that step and stage_auto_loss to 0, so a checkpoint
     * records where the stage ended. */
    float stage_auto_loss;
    /* Sequence length of the first stage (0 or above seq_len: seq_len): its arrow-less episodes are 57
     * tokens, so the padding to seq_len would only cost time. */
    int stage0_seq_len;
} ll_train_opts;

typedef struct {
    ll_train_opts o;
    ll_toy_world *world;
    ll_tmodel *m;
    float *adam_m, *adam_v;
    uint8_t *decay;
    ll_rng data;
    int64_t step; /* optimizer steps done */
    int32_t *tok, *tgt;
    float *w;
    float all_loss; /* loss weight of non-label tokens (LL_TOY_ALL_LOSS; 0: labels only) */
    double loss, grad_norm; /* of the last step */
    double stage_ema;       /* smoothed loss of the first stage, for stage_auto_loss (-1: none yet) */
    float lr;
} ll_trainer;

/* The toy model's defaults (the sizes data/models/toy-llama was trained with). */
void ll_train_opts_default(ll_train_opts *o);
ll_status ll_trainer_new(ll_trainer **out, const ll_train_opts *o);
void ll_trainer_free(ll_trainer *t);
/* The curriculum stage a step draws its batch from. */
ll_toy_stage ll_trainer_stage(const ll_train_opts *o, int64_t step);
/* One optimizer step on a fresh batch. */
ll_status ll_trainer_step(ll_trainer *t);
/* Checkpoint: options, step, data RNG, parameters and AdamW moments, written to a
 * temporary file then renamed, so a crash never leaves a half-written checkpoint. */
ll_status ll_trainer_save(const ll_trainer *t, const char *path);
ll_status ll_trainer_resume(ll_trainer **out, const char *path);
/* A Hugging Face directory: config.json (LlamaForCausalLM), generation_config.json,
 * model.safetensors (F32, transformers' tensor names), tokenizer.json and
 * tokenizer_config.json. The directory is created when missing. */
ll_status ll_trainer_export(const ll_trainer *t, const char *dir);

#endif
