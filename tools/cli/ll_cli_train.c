/* layerlab train: train the built-in toy Llama on the synthetic task mixture and export
 * it as a Hugging Face directory; layerlab train eval MODEL: its held-out accuracies. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ll_cli.h"
#include "train/ll_toy_eval.h"
#include "train/ll_trainer.h"

static const char usage[] =
    "usage: layerlab train --out DIR [--steps N] [--seed S] [--resume CKPT] [--threads N] [options]\n"
    "       layerlab train eval MODEL [--n N] [--seed S] [--threads N]\n"
    "Trains the toy Llama (data/README.md) and writes a Hugging Face directory to DIR, with a\n"
    "checkpoint DIR/train.ckpt (optimizer state included) and the log DIR/train.log.\n"
    "  --steps N        optimizer steps (default 4000)     --seed S        seed (default 1)\n"
    "  --resume CKPT    continue a run from its checkpoint (options come from the checkpoint;\n"
    "                   --steps may extend it, --stages may move the curriculum's boundaries)\n"
    "  --ckpt-every N   checkpoint every N steps (default 250)\n"
    "  --stages A,B     curriculum: A steps of arrow-less copying episodes, then B with the\n"
    "                   arrow, then the task mixture (default 6000,500; 0,0: mixture only)\n"
    "  --stage-auto X   end the first stage early once its smoothed loss is below X, i.e. once\n"
    "                   the copying circuit has formed (default 0.75; 0: always A steps)\n"
    "  --stage0-len N   sequence length of the first stage (default 58: its episodes' length)\n"
    "  --batch N --seq-len N --lr X --warmup N --d-model N --layers N --heads N --kv-heads N --d-ff N\n"
    "eval: accuracies on N held-out episodes per cell (default 500) drawn from seed S (default 12345).\n";

static int ll_num(const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !(x >= lo && x <= hi))
        return ll_cli_fail("train: %s expects a number in [%g, %g], found '%s'", opt, lo, hi, v);
    *out = x;
    return 0;
}

static double ll_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int ll_cli_train_eval(int argc, char **argv) {
    const char *model = NULL;
    double n = 500, seed = 12345;
    for (int i = 1; i < argc; i++) {
        int st;
        if (ll_cli_common_opt(argc, argv, &i, &st)) {
            if (st) return st;
        } else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
            if ((st = ll_num("--n", argv[++i], 1, 1e7, &n))) return st;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            if ((st = ll_num("--seed", argv[++i], 0, 1.8e19, &seed))) return st;
        } else if (!strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (argv[i][0] != '-' && !model) {
            model = argv[i];
        } else {
            return ll_cli_usage(usage);
        }
    }
    if (!model) return ll_cli_usage(usage);
    ll_toy_eval_result r;
    double t0 = ll_now();
    ll_status st = ll_toy_eval(model, (int)n, (uint64_t)seed, &r);
    if (st) return ll_cli_status(st);
    printf("held-out evaluation of %s: %d episodes per cell, seed %.0f (%.1f s)\n", model, r.n, seed, ll_now() - t0);
    printf("| task | demonstrations | accuracy | metric |\n|---|---|---|---|\n");
    for (int i = 0; i < LL_TOY_EVAL_CAT_K; i++)
        printf("| categorization | %d | %.1f%% | larger logit of the 2 label words (chance 50%%); vocabulary argmax %.1f%% |\n",
               r.cat_k[i], 100 * r.cat[i], 100 * r.cat_full[i]);
    for (int i = 0; i < LL_TOY_EVAL_MAP_K; i++)
        printf("| mapping | %d | %.1f%% | vocabulary argmax |\n", r.map_k[i], 100 * r.map[i]);
    printf("| multiple choice | 0 | %.1f%% | vocabulary argmax (among A-D: %.1f%%) |\n", 100 * r.mcq,
           100 * r.mcq_letters);
    printf("\ncategorization with %d demonstrations by rule:", r.cat_k[LL_TOY_EVAL_CAT_K - 1]);
    for (int k = 0; k < LL_TOY_N_RULES; k++)
        printf(" %s %.1f%% (%d)%s", ll_toy_rule_name(k), 100 * r.cat_rule[k], r.cat_rule_n[k],
               k + 1 < LL_TOY_N_RULES ? "," : "\n");
    return 0;
}

int ll_cli_train(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "eval")) return ll_cli_train_eval(argc - 1, argv + 1);
    ll_train_opts o;
    ll_train_opts_default(&o);
    const char *out = NULL, *resume = NULL;
    double v, ckpt_every = 250, steps = -1;
    bool stages = false;
    for (int i = 1; i < argc; i++) {
        int st;
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (ll_cli_common_opt(argc, argv, &i, &st)) {
            if (st) return st;
        } else if (!strcmp(a, "--out") && has) {
            out = argv[++i];
        } else if (!strcmp(a, "--resume") && has) {
            resume = argv[++i];
        } else if (!strcmp(a, "--steps") && has) {
            if ((st = ll_num(a, argv[++i], 1, 1e9, &steps))) return st;
        } else if (!strcmp(a, "--ckpt-every") && has) {
            if ((st = ll_num(a, argv[++i], 1, 1e9, &ckpt_every))) return st;
        } else if (!strcmp(a, "--seed") && has) {
            if ((st = ll_num(a, argv[++i], 0, 1.8e19, &v))) return st;
            o.seed = (uint64_t)v;
        } else if (!strcmp(a, "--lr") && has) {
            if ((st = ll_num(a, argv[++i], 1e-9, 10, &v))) return st;
            o.lr = (float)v;
        } else if (!strcmp(a, "--stages") && has) {
            long long a0, a1;
            char tail;
            if (sscanf(argv[++i], "%lld,%lld%c", &a0, &a1, &tail) != 2 || a0 < 0 || a1 < 0)
                return ll_cli_fail("train: --stages: expected two step counts A,B (e.g. 3500,500), found '%s'", argv[i]);
            o.stage_steps[0] = a0, o.stage_steps[1] = a1;
            stages = true;
        } else if (!strcmp(a, "--stage-auto") && has) {
            if ((st = ll_num(a, argv[++i], 0, 100, &v))) return st;
            o.stage_auto_loss = (float)v;
        } else if (!strcmp(a, "--stage0-len") && has) {
            if ((st = ll_num(a, argv[++i], 0, 65536, &v))) return st;
            o.stage0_seq_len = (int)v;
        } else if (!strcmp(a, "--warmup") && has) {
            if ((st = ll_num(a, argv[++i], 0, 1e9, &v))) return st;
            o.warmup = (int64_t)v;
        } else {
            static const char *const names[] = {"--batch", "--seq-len", "--d-model", "--layers", "--heads", "--kv-heads", "--d-ff"};
            int *dst[] = {&o.batch, &o.seq_len, &o.model.d_model, &o.model.n_layers, &o.model.n_heads, &o.model.n_kv_heads, &o.model.d_ff};
            size_t k = 0;
            while (k < 7 && strcmp(a, names[k])) k++;
            if (k == 7 || !has) {
                if (!strcmp(a, "--help")) {
                    fputs(usage, stdout);
                    return 0;
                }
                return ll_cli_usage(usage);
            }
            if ((st = ll_num(a, argv[++i], 1, 65536, &v))) return st;
            *dst[k] = (int)v;
        }
    }
    if (!out) return ll_cli_usage(usage);
    if (mkdir(out, 0755) != 0 && errno != EEXIST) return ll_cli_fail("train: %s: cannot create directory (%s)", out, strerror(errno));
    ll_trainer *t = NULL;
    ll_status st;
    if (resume) {
        st = ll_trainer_resume(&t, resume);
        if (st == LL_OK && steps > 0) t->o.steps = (int64_t)steps;
        /* The stages are a function of the step, so a run resumed before a boundary with
         * new stages equals a fresh run with those stages. */
        if (st == LL_OK && stages) memcpy(t->o.stage_steps, o.stage_steps, sizeof o.stage_steps);
    } else {
        if (steps > 0) o.steps = (int64_t)steps;
        st = ll_trainer_new(&t, &o);
    }
    if (st) return ll_cli_status(st);
    char logp[4096], ckpt[4096];
    snprintf(logp, sizeof logp, "%s/train.log", out);
    snprintf(ckpt, sizeof ckpt, "%s/train.ckpt", out);
    FILE *log = fopen(logp, resume ? "a" : "w");
    if (!log) {
        ll_trainer_free(t);
        return ll_cli_fail("train: %s: cannot write the log (%s)", logp, strerror(errno));
    }
    const ll_tm_cfg *c = &t->o.model;
    fprintf(log, "# layerlab train%s: d_model %d, layers %d, heads %d (kv %d), d_ff %d, vocab %d, %zu parameters\n",
            resume ? " (resumed)" : "", c->d_model, c->n_layers, c->n_heads, c->n_kv_heads, c->d_ff, c->vocab, t->m->lay.n);
    fprintf(log, "# batch %d x %d, steps %lld (warm-up %lld), lr %g -> %g, weight decay %g, clip %g, seed %llu, threads %d\n",
            t->o.batch, t->o.seq_len, (long long)t->o.steps, (long long)t->o.warmup, t->o.lr, t->o.min_lr,
            t->o.weight_decay, t->o.clip, (unsigned long long)t->o.seed, ll_get_threads());
    fprintf(log, "# curriculum: steps 0-%lld arrow-less copying, %lld-%lld copying with the arrow, then the task mixture\n",
            (long long)t->o.stage_steps[0], (long long)t->o.stage_steps[0],
            (long long)(t->o.stage_steps[0] + t->o.stage_steps[1]));
    fprintf(log, "# step loss grad_norm lr tokens_per_s elapsed_s\n");
    bool tty = isatty(2);
    double t0 = ll_now(), ema = -1;
    int64_t first = t->step;
    size_t tok_step = (size_t)t->o.batch * t->o.seq_len;
    while (t->step < t->o.steps) {
        int64_t stage0 = t->o.stage_steps[0];
        st = ll_trainer_step(t);
        if (st) break;
        if (t->o.stage_steps[0] != stage0) {
            fprintf(log, "# curriculum: the copying circuit formed (smoothed loss %.4f); arrow-less copying ends at step %lld\n",
                    t->stage_ema, (long long)t->step);
            fprintf(stderr, "%scurriculum: the copying circuit formed at step %lld (smoothed loss %.4f)\n", tty ? "\n" : "",
                    (long long)t->step, t->stage_ema);
        }
        ema = ema < 0 ? t->loss : 0.98 * ema + 0.02 * t->loss;
        double el = ll_now() - t0, tps = (double)(t->step - first) * tok_step / el;
        double eta = el / (double)(t->step - first) * (double)(t->o.steps - t->step);
        if (t->step % 25 == 0 || t->step == t->o.steps) {
            fprintf(log, "%lld %.4f %.3f %.3g %.0f %.1f\n", (long long)t->step, ema, t->grad_norm, t->lr, tps, el);
            fflush(log);
        }
        if (tty)
            fprintf(stderr, "\rstep %lld/%lld  loss %.4f  %.0f tok/s  ETA %.0f s   ", (long long)t->step,
                    (long long)t->o.steps, ema, tps, eta);
        else if (t->step % 100 == 0 || t->step == t->o.steps)
            fprintf(stderr, "step %lld/%lld loss %.4f %.0f tok/s ETA %.0f s\n", (long long)t->step,
                    (long long)t->o.steps, ema, tps, eta);
        if (t->step % (int64_t)ckpt_every == 0 && (st = ll_trainer_save(t, ckpt))) break;
    }
    if (tty) fputc('\n', stderr);
    if (st == LL_OK) st = ll_trainer_save(t, ckpt);
    if (st == LL_OK) st = ll_trainer_export(t, out);
    double el = ll_now() - t0;
    if (st == LL_OK) {
        fprintf(log, "# done: %lld steps in %.1f s, %.0f tokens/s\n", (long long)(t->step - first), el,
                (double)(t->step - first) * tok_step / (el > 0 ? el : 1));
        fprintf(stderr, "wrote %s (%lld steps, %.1f s)\n", out, (long long)t->step, el);
    }
    fclose(log);
    ll_trainer_free(t);
    return st ? ll_cli_status(st) : 0;
}
