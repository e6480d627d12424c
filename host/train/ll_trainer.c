/* The training loop's state, steps and checkpoints (see ll_trainer.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "ll_adamw.h"
#include "ll_trainer.h"

void ll_train_opts_default(ll_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = (ll_tm_cfg){.vocab = 0, .d_model = 96, .n_layers = 4, .n_heads = 4, .n_kv_heads = 2, .d_ff = 256,
                           .max_seq = 128, .rope_theta = 10000.0f, .norm_eps = 1e-5f};
    o->batch = 32;
    o->seq_len = 80;
    o->steps = 4000;
    o->warmup = 100;
    o->lr = 3e-3f;
    o->min_lr = 1e-4f;
    o->weight_decay = 0.05f;
    o->clip = 1.0f;
    o->beta1 = 0.9f;
    o->beta2 = 0.98f;
    o->eps = 1e-8f;
    o->seed = 1;
    o->stage_steps[0] = 6000;
    o->stage_steps[1] = 500;
    o->stage_auto_loss = 0.75f;
    o->stage0_seq_len = 58;
}

void ll_trainer_free(ll_trainer *t) {
    if (!t) return;
    ll_toy_world_free(t->world);
    ll_tmodel_free(t->m);
    free(t->adam_m);
    free(t->adam_v);
    free(t->decay);
    free(t->tok);
    free(t->tgt);
    free(t->w);
    free(t);
}

ll_status ll_trainer_new(ll_trainer **out, const ll_train_opts *o) {
    *out = NULL;
    if (o->batch < 1 || o->seq_len < 8 || o->steps < 1 || o->warmup < 0 || !(o->lr > 0) || o->min_lr < 0 ||
        o->clip < 0 || o->weight_decay < 0 || o->stage_steps[0] < 0 || o->stage_steps[1] < 0 ||
        o->stage_auto_loss < 0 || o->stage0_seq_len < 0)
        return ll_err(LL_ERR_ARG,
                      "train: expected batch >= 1, seq_len >= 8, steps >= 1, warmup >= 0, lr > 0, min_lr, clip, "
                      "weight_decay, stage steps, stage-0 loss and length >= 0; found %d, %d, %lld, %lld, %g, "
                      "%g, %g, %g, %lld/%lld, %g, %d",
                      o->batch, o->seq_len, (long long)o->steps, (long long)o->warmup, o->lr, o->min_lr, o->clip,
                      o->weight_decay, (long long)o->stage_steps[0], (long long)o->stage_steps[1],
                      o->stage_auto_loss, o->stage0_seq_len);
    ll_trainer *t = ll_calloc(1, sizeof *t, "trainer");
    if (!t) return LL_ERR_NOMEM;
    t->o = *o;
    ll_status st = ll_toy_world_new(&t->world);
    if (st == LL_OK) {
        t->o.model.vocab = ll_toy_vocab_size(t->world);
        if (t->o.seq_len > t->o.model.max_seq || t->o.seq_len > LL_TOY_MAX_TOKENS)
            st = ll_err(LL_ERR_ARG, "train: seq_len %d exceeds max_seq %d or the generator's %d tokens",
                        t->o.seq_len, t->o.model.max_seq, LL_TOY_MAX_TOKENS);
    }
    if (st == LL_OK) st = ll_tmodel_new(&t->m, &t->o.model);
    if (st != LL_OK) {
        ll_trainer_free(t);
        return st;
    }
    size_t n = t->m->lay.n, N = (size_t)o->batch * o->seq_len;
    t->adam_m = ll_calloc(n, sizeof(float), "AdamW m");
    t->adam_v = ll_calloc(n, sizeof(float), "AdamW v");
    t->decay = ll_calloc(n, 1, "decay mask");
    t->tok = ll_calloc(N, sizeof(int32_t), "batch");
    t->tgt = ll_calloc(N, sizeof(int32_t), "batch");
    t->w = ll_calloc(N, sizeof(float), "batch");
    if (!t->adam_m || !t->adam_v || !t->decay || !t->tok || !t->tgt || !t->w) {
        ll_trainer_free(t);
        return LL_ERR_NOMEM;
    }
    /* Weight decay on matrices only, not on norm gains. */
    for (int i = 0; i < ll_tmodel_n_tensors(t->m); i++) {
        char name[128];
        int nd;
        int64_t sh[2];
        size_t off;
        ll_tmodel_tensor(t->m, i, name, sizeof name, &nd, sh, &off);
        if (nd == 2) memset(t->decay + off, 1, (size_t)(sh[0] * sh[1]));
    }
    ll_tmodel_init(t->m, o->seed);
    t->data.s = o->seed * 0x2545F4914F6CDD1Dull + 0x64617461ull;
    const char *al = getenv("LL_TOY_ALL_LOSS");
    t->all_loss = al ? (float)atof(al) : 0.0f;
    t->stage_ema = -1;
    *out = t;
    return LL_OK;
}

ll_toy_stage ll_trainer_stage(const ll_train_opts *o, int64_t step) {
    if (step < o->stage_steps[0]) return LL_TOY_STAGE_COPY_NOARROW;
    if (step < o->stage_steps[0] + o->stage_steps[1]) return LL_TOY_STAGE_COPY;
    return LL_TOY_STAGE_MIX;
}

/* Rows of this step's batch: the first stage may use shorter sequences. */
static int ll_trainer_seq_len(const ll_trainer *t) {
    bool first = ll_trainer_stage(&t->o, t->step) == LL_TOY_STAGE_COPY_NOARROW;
    return first && t->o.stage0_seq_len > 0 && t->o.stage0_seq_len < t->o.seq_len ? t->o.stage0_seq_len : t->o.seq_len;
}

static void ll_trainer_batch(ll_trainer *t) {
    int B = t->o.batch, T = ll_trainer_seq_len(t);
    ll_toy_stage stage = ll_trainer_stage(&t->o, t->step);
    ll_toy_seq s;
    for (int b = 0; b < B; b++) {
        ll_toy_sample_stage(t->world, &t->data, T, stage, &s);
        for (int i = 0; i < T; i++) {
            size_t r = (size_t)b * T + i;
            t->tok[r] = i < s.n ? s.ids[i] : ll_toy_pad();
            t->tgt[r] = i + 1 < s.n ? s.ids[i + 1] : ll_toy_pad();
            t->w[r] = i + 1 < s.n ? (float)s.lab[i + 1] : 0.0f;
            /* LL_TOY_ALL_LOSS=x (diagnostics): weight x on every other next token too. */
            if (i + 1 < s.n && !s.lab[i + 1]) t->w[r] = t->all_loss;
        }
    }
}

ll_status ll_trainer_step(ll_trainer *t) {
    ll_trainer_batch(t);
    bool first = ll_trainer_stage(&t->o, t->step) == LL_TOY_STAGE_COPY_NOARROW;
    LL_TRY(ll_tmodel_step(t->m, t->tok, t->tgt, t->w, t->o.batch, ll_trainer_seq_len(t), true, &t->loss));
    t->grad_norm = ll_clip_grad_norm(t->m->g, t->m->lay.n, t->o.clip);
    t->lr = ll_lr_schedule(t->step, t->o.warmup, t->o.steps, t->o.lr, t->o.min_lr);
    ll_adamw_cfg ac = {t->o.beta1, t->o.beta2, t->o.eps, t->o.weight_decay};
    ll_adamw_step(t->m->p, t->m->g, t->adam_m, t->adam_v, t->decay, t->m->lay.n, t->lr, t->step + 1, &ac);
    t->step++;
    if (first && t->o.stage_auto_loss > 0) {
        t->stage_ema = t->stage_ema < 0 ? t->loss : 0.98 * t->stage_ema + 0.02 * t->loss;
        if (t->stage_ema < t->o.stage_auto_loss && t->step < t->o.stage_steps[0]) {
            t->o.stage_steps[0] = t->step;
            t->o.stage_auto_loss = 0;
        }
    }
    return LL_OK;
}

/* ---- checkpoints ---- */

#define LL_CKPT_MAGIC "LLTRAIN1"

typedef struct {
    char magic[8];
    uint32_t version, hdr_bytes;
    ll_train_opts o;
    int64_t step;
    uint64_t data_rng, n_params;
    double stage_ema;
} ll_ckpt_hdr;

static ll_status ll_write_all(FILE *f, const void *p, size_t n, const char *path) {
    if (fwrite(p, 1, n, f) != n) return ll_err(LL_ERR_IO, "%s: write failed (disk full?)", path);
    return LL_OK;
}

ll_status ll_trainer_save(const ll_trainer *t, const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return ll_err(LL_ERR_ARG, "checkpoint path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return ll_err(LL_ERR_IO, "%s: cannot create checkpoint", tmp);
    ll_ckpt_hdr h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, LL_CKPT_MAGIC, 8);
    h.version = 3, h.hdr_bytes = sizeof h, h.o = t->o, h.step = t->step, h.data_rng = t->data.s;
    h.stage_ema = t->stage_ema;
    h.n_params = t->m->lay.n;
    size_t n = t->m->lay.n * sizeof(float);
    ll_status st = ll_write_all(f, &h, sizeof h, tmp);
    if (st == LL_OK) st = ll_write_all(f, t->m->p, n, tmp);
    if (st == LL_OK) st = ll_write_all(f, t->adam_m, n, tmp);
    if (st == LL_OK) st = ll_write_all(f, t->adam_v, n, tmp);
    if (fclose(f) != 0 && st == LL_OK) st = ll_err(LL_ERR_IO, "%s: closing failed", tmp);
    if (st == LL_OK && rename(tmp, path) != 0) st = ll_err(LL_ERR_IO, "%s: cannot rename to %s", tmp, path);
    if (st != LL_OK) remove(tmp);
    return st;
}

ll_status ll_trainer_resume(ll_trainer **out, const char *path) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ll_err(LL_ERR_IO, "%s: cannot open checkpoint", path);
    ll_ckpt_hdr h;
    ll_status st = LL_OK;
    if (fread(&h, 1, sizeof h, f) != sizeof h || memcmp(h.magic, LL_CKPT_MAGIC, 8) != 0)
        st = ll_err(LL_ERR_FORMAT, "%s: not a layerlab training checkpoint (expected magic \"%s\")", path,
                    LL_CKPT_MAGIC);
    else if (h.version != 3 || h.hdr_bytes != sizeof h)
        st = ll_err(LL_ERR_UNSUPPORTED, "%s: checkpoint version %u with a %u-byte header; this build reads version 3 (%zu bytes)",
                    path, h.version, h.hdr_bytes, sizeof h);
    ll_trainer *t = NULL;
    if (st == LL_OK) st = ll_trainer_new(&t, &h.o);
    if (st == LL_OK && h.n_params != t->m->lay.n)
        st = ll_err(LL_ERR_FORMAT, "%s: %llu parameters stored, the configuration needs %zu", path,
                    (unsigned long long)h.n_params, t->m->lay.n);
    size_t n = st == LL_OK ? t->m->lay.n : 0;
    if (st == LL_OK && (fread(t->m->p, sizeof(float), n, f) != n || fread(t->adam_m, sizeof(float), n, f) != n ||
                        fread(t->adam_v, sizeof(float), n, f) != n))
        st = ll_err(LL_ERR_FORMAT, "%s: truncated: expected %zu bytes of parameters and moments after the header",
                    path, 3 * n * sizeof(float));
    if (st == LL_OK && fgetc(f) != EOF) st = ll_err(LL_ERR_FORMAT, "%s: unexpected bytes after the moments", path);
    fclose(f);
    if (st != LL_OK) {
        ll_trainer_free(t);
        return st;
    }
    t->step = h.step;
    t->data.s = h.data_rng;
    t->stage_ema = h.stage_ema;
    *out = t;
    return LL_OK;
}
