/* Training runs end to end on a tiny configuration: a resumed run equals an
 * uninterrupted one bit for bit, the exported directory loads through ll_model_load
 * and gives the trainer's own logits, and bad checkpoints are reported, not crashed on. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ll_test_util.h"
#include "model/ll_forward.h"
#include "tokenizer/ll_tokenizer.h"
#include "train/ll_trainer.h"

static void ll_tiny(ll_train_opts *o) {
    ll_train_opts_default(o);
    o->model.d_model = 16, o->model.n_layers = 2, o->model.n_heads = 2, o->model.n_kv_heads = 1;
    o->model.d_ff = 24, o->model.max_seq = 64;
    o->batch = 2, o->seq_len = 40, o->steps = 6, o->warmup = 2, o->seed = 5;
    /* The resume test crosses both curriculum boundaries: steps 0-1 copy without the
     * arrow, 2-3 with it, 4-5 the mixture; it resumes at 3. */
    o->stage_steps[0] = 2, o->stage_steps[1] = 2;
}

static void ll_steps(ll_trainer *t, int n) {
    for (int i = 0; i < n; i++) cr_assert_eq(ll_trainer_step(t), LL_OK, "%s", ll_last_error());
}

Test(train_run, resumed_run_equals_uninterrupted) {
    ll_train_opts o;
    ll_tiny(&o);
    ll_trainer *a, *b, *c;
    cr_assert_eq(ll_trainer_new(&a, &o), LL_OK, "%s", ll_last_error());
    ll_steps(a, 6);
    cr_assert(a->loss > 0 && a->lr > 0);

    cr_assert_eq(ll_trainer_new(&b, &o), LL_OK);
    ll_steps(b, 3);
    char path[256];
    snprintf(path, sizeof path, "/tmp/layerlab-test-ckpt-%d", (int)getpid());
    cr_assert_eq(ll_trainer_save(b, path), LL_OK, "%s", ll_last_error());
    ll_trainer_free(b);
    cr_assert_eq(ll_trainer_resume(&c, path), LL_OK, "%s", ll_last_error());
    remove(path);
    cr_assert_eq(c->step, 3);
    cr_assert_eq(ll_trainer_stage(&c->o, 1), LL_TOY_STAGE_COPY_NOARROW);
    cr_assert_eq(ll_trainer_stage(&c->o, 3), LL_TOY_STAGE_COPY);
    cr_assert_eq(ll_trainer_stage(&c->o, 4), LL_TOY_STAGE_MIX);
    ll_steps(c, 3);
    size_t n = a->m->lay.n * sizeof(float);
    cr_assert(!memcmp(a->m->p, c->m->p, n), "parameters after 3 + resume + 3 steps differ from 6 steps");
    cr_assert(!memcmp(a->adam_m, c->adam_m, n) && !memcmp(a->adam_v, c->adam_v, n), "AdamW moments differ");
    cr_assert_eq(a->loss, c->loss);
    ll_trainer_free(a);
    ll_trainer_free(c);
}

/* The first stage ends at the step whose smoothed loss first falls below
 * stage_auto_loss, the end is recorded in the options (so in checkpoints), and the
 * first stage's batches use its own sequence length. */
Test(train_run, first_stage_ends_when_its_loss_falls_below_the_threshold) {
    ll_train_opts o;
    ll_tiny(&o);
    o.stage_steps[0] = 4, o.stage0_seq_len = 30;
    o.stage_auto_loss = 0; /* off: always 4 steps */
    ll_trainer *t;
    cr_assert_eq(ll_trainer_new(&t, &o), LL_OK, "%s", ll_last_error());
    ll_steps(t, 3);
    cr_assert_eq(t->m->T, 30, "first-stage batches have %d columns, expected 30", t->m->T);
    cr_assert_eq(t->o.stage_steps[0], 4);
    ll_steps(t, 3);
    cr_assert_eq(t->m->T, 40, "later batches have %d columns, expected seq_len 40", t->m->T);
    ll_trainer_free(t);

    /* A threshold above any loss fires after the first step. */
    o.stage_auto_loss = 100;
    cr_assert_eq(ll_trainer_new(&t, &o), LL_OK);
    ll_steps(t, 1);
    cr_assert_eq(t->o.stage_steps[0], 1, "the first stage should end at step 1, ends at %lld",
                 (long long)t->o.stage_steps[0]);
    cr_assert_eq(t->o.stage_auto_loss, 0);
    cr_assert_eq(ll_trainer_stage(&t->o, 1), LL_TOY_STAGE_COPY);
    char path[256];
    snprintf(path, sizeof path, "/tmp/layerlab-test-ckpt-auto-%d", (int)getpid());
    cr_assert_eq(ll_trainer_save(t, path), LL_OK, "%s", ll_last_error());
    ll_trainer *c;
    cr_assert_eq(ll_trainer_resume(&c, path), LL_OK, "%s", ll_last_error());
    remove(path);
    cr_assert_eq(c->o.stage_steps[0], 1, "the checkpoint keeps where the first stage ended");
    ll_trainer_free(c);
    ll_trainer_free(t);

    /* A threshold between the loss levels fires at the first step whose EMA is below it:
     * replay the EMA of an identical run without the threshold. */
    o.stage_auto_loss = 0;
    cr_assert_eq(ll_trainer_new(&t, &o), LL_OK);
    double ema[5], e = -1;
    for (int i = 1; i <= 4; i++) {
        ll_steps(t, 1);
        ema[i] = e = e < 0 ? t->loss : 0.98 * e + 0.02 * t->loss;
    }
    ll_trainer_free(t);
    o.stage_auto_loss = (float)ema[4] + 1e-4f;
    int expect = 1;
    while (!(ema[expect] < o.stage_auto_loss)) expect++;
    cr_assert_eq(ll_trainer_new(&t, &o), LL_OK);
    ll_steps(t, 4);
    cr_assert_eq(t->o.stage_steps[0], expect, "threshold %.5f: the first stage ends at %lld, expected %d",
                 o.stage_auto_loss, (long long)t->o.stage_steps[0], expect);
    ll_trainer_free(t);
}

Test(train_run, training_lowers_the_loss) {
    ll_train_opts o;
    ll_tiny(&o);
    o.steps = 60, o.lr = 1e-2f, o.batch = 4;
    ll_trainer *t;
    cr_assert_eq(ll_trainer_new(&t, &o), LL_OK);
    ll_steps(t, 1);
    double first = t->loss, last = 0;
    ll_steps(t, 49);
    for (int i = 0; i < 10; i++) {
        ll_steps(t, 1);
        last += t->loss / 10;
    }
    cr_assert(last < first - 1.0, "loss %.3f after 60 steps, %.3f at the first", last, first);
    ll_trainer_free(t);
}

Test(train_run, exported_directory_loads_and_gives_the_trainers_logits) {
    ll_train_opts o;
    ll_tiny(&o);
    ll_trainer *t;
    cr_assert_eq(ll_trainer_new(&t, &o), LL_OK);
    ll_steps(t, 2);
    char dir[] = "/tmp/layerlab-test-export-XXXXXX";
    cr_assert(mkdtemp(dir));
    cr_assert_eq(ll_trainer_export(t, dir), LL_OK, "%s", ll_last_error());

    ll_toy_seq s;
    ll_rng r = {3};
    ll_toy_cat(t->world, &r, 8, &s);
    int T = s.n;
    int32_t tgt[LL_TOY_MAX_TOKENS] = {0};
    float w[LL_TOY_MAX_TOKENS] = {0};
    double loss;
    cr_assert_eq(ll_tmodel_step(t->m, s.ids, tgt, w, 1, T, false, &loss), LL_OK);

    ll_model *m;
    cr_assert_eq(ll_model_load(&m, dir, NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(m->cfg.vocab_size, t->m->c.vocab);
    cr_assert_eq(m->cfg.n_kv_heads, 1);
    cr_assert_eq(ll_model_n_params(m), t->m->lay.n);
    int V = m->cfg.vocab_size;
    float *lg = malloc((size_t)T * V * sizeof(float));
    int64_t off[2] = {0, T};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = s.ids};
    ll_forward_opts fo = {.logits = LL_LOGITS_ALL, .logits_out = lg};
    cr_assert_eq(ll_forward(m, &b, &fo), LL_OK, "%s", ll_last_error());
    double err = ll_test_rel_err(lg, t->m->logits, (size_t)T * V);
    cr_assert(err < 1e-5, "layerlab's forward pass and the trainer's differ: relative error %g", err);

    ll_tokenizer *tok;
    cr_assert_eq(ll_tokenizer_for_model(&tok, dir, NULL, V), LL_OK, "%s", ll_last_error());
    cr_assert(ll_tokenizer_adds_bos(tok) || ll_tokenizer_bos(tok) == ll_toy_bos());
    ll_tokenizer_free(tok);
    ll_model_free(m);
    free(lg);
    const char *files[] = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                           "tokenizer_config.json"};
    for (size_t i = 0; i < 5; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        cr_assert_eq(remove(p), 0, "%s was written", p);
    }
    rmdir(dir);
    ll_trainer_free(t);
}

Test(train_run, bad_checkpoints_are_errors) {
    ll_trainer *t = NULL;
    cr_assert_eq(ll_trainer_resume(&t, "/nonexistent/ckpt"), LL_ERR_IO);
    cr_assert(strstr(ll_last_error(), "/nonexistent/ckpt"), "%s", ll_last_error());
    char p[256];
    cr_assert_eq(ll_test_write_tmp(p, sizeof p, "GGUFxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 52, ".ckpt"), 0);
    cr_assert_eq(ll_trainer_resume(&t, p), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), "not a layerlab training checkpoint"), "%s", ll_last_error());
    remove(p);
    /* A real checkpoint cut short. */
    ll_train_opts o;
    ll_tiny(&o);
    cr_assert_eq(ll_trainer_new(&t, &o), LL_OK);
    snprintf(p, sizeof p, "/tmp/layerlab-test-ckpt-cut-%d", (int)getpid());
    cr_assert_eq(ll_trainer_save(t, p), LL_OK);
    ll_trainer_free(t);
    t = NULL;
    FILE *f = fopen(p, "r+b");
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fclose(f);
    cr_assert_eq(truncate(p, sz - 4), 0);
    cr_assert_eq(ll_trainer_resume(&t, p), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), "truncated"), "%s", ll_last_error());
    cr_assert_null(t);
    remove(p);
    /* Options out of range. */
    o.batch = 0;
    cr_assert_eq(ll_trainer_new(&t, &o), LL_ERR_ARG);
}

/* ---- the command line ---- */
#include <libgen.h>
#include <limits.h>
#include <sys/wait.h>

static int ll_train_cli(const char *args, char *err, size_t n) {
    char self[PATH_MAX], cmd[PATH_MAX * 2], tmp[] = "/tmp/layerlab-cli-XXXXXX";
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert(k > 0);
    self[k] = 0;
    int fd = mkstemp(tmp);
    cr_assert(fd >= 0);
    close(fd);
    snprintf(cmd, sizeof cmd, "%s/layerlab %s >/dev/null 2>%s", dirname(self), args, tmp);
    int rc = system(cmd);
    FILE *f = fopen(tmp, "r");
    size_t got = f ? fread(err, 1, n - 1, f) : 0;
    err[got] = 0;
    if (f) fclose(f);
    unlink(tmp);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

Test(train_run, cli_trains_resumes_evaluates_and_reports_errors, .timeout = 120) {
    char dir[] = "/tmp/layerlab-test-cli-XXXXXX", args[1024], err[4096];
    cr_assert(mkdtemp(dir));
    const char *tiny = "--batch 2 --seq-len 40 --d-model 16 --layers 1 --heads 2 --kv-heads 1 --d-ff 16 --threads 1";
    cr_assert_eq(ll_train_cli("train", err, sizeof err), 2, "no --out: usage");
    snprintf(args, sizeof args, "train --out %s --steps 2 %s", dir, tiny);
    cr_assert_eq(ll_train_cli(args, err, sizeof err), 0, "%s", err);
    snprintf(args, sizeof args, "train --resume %s/train.ckpt --out %s --steps 3 --threads 1", dir, dir);
    cr_assert_eq(ll_train_cli(args, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(err, "3 steps"), "resumed to step 3: %s", err);
    snprintf(args, sizeof args, "train eval %s --n 3 --threads 1", dir);
    cr_assert_eq(ll_train_cli(args, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ll_train_cli("train eval /nonexistent/toy --n 3", err, sizeof err), 1);
    cr_assert(strstr(err, "layerlab: error: ") && strstr(err, "/nonexistent/toy"), "%s", err);
    snprintf(args, sizeof args, "train --out %s --steps 1 %s --heads 3", dir, tiny);
    cr_assert_eq(ll_train_cli(args, err, sizeof err), 1);
    cr_assert(strstr(err, "n_heads"), "%s", err);
    const char *files[] = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                           "tokenizer_config.json", "train.log", "train.ckpt"};
    for (size_t i = 0; i < 7; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        cr_assert_eq(remove(p), 0, "%s was written", p);
    }
    cr_assert_eq(rmdir(dir), 0);
}
