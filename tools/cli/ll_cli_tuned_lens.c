/* layerlab tuned-lens train MODEL: fit a tuned lens (one affine translator per layer) on
 * the hidden states of a data set's prompts, on the CPU or the GPU, report the KL on
 * held-out prompts and save it as safetensors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ll_progress.h"
#include "lens/ll_lens.h"
#include "ll_cli.h"
#include "mcqa/ll_mcqa.h"
#include "model/ll_model.h"
#include "train/ll_train_rng.h"

static const char usage[] =
    "usage: layerlab tuned-lens train MODEL (--data FILE | --cloze N | --toy-mcq N) --out LENS.safetensors [options]\n"
    "Trains one translator h -> h + A h + b per layer (A, b start at zero: the logit lens) to\n"
    "minimise KL(final model || lens) over every position of the prompts, with SGD + Nesterov\n"
    "momentum, linear decay and gradient clipping, on the device the model runs on (--device:\n"
    "cuda when a GPU is present, the same algorithm and settings as on the CPU).\n"
    "A share of the prompts (--val-frac) is held out: their KL per layer, for the logit lens and\n"
    "the trained lens, is printed at the end and stored in the file's metadata.\n"
    "  --data FILE, --format F, --template T, --limit N   the prompts (as for layerlab lens)\n"
    "  --cloze N            N cloze prompts from the model's own greedy stories instead\n"
    "  --toy-mcq N          N of the toy model's own \"->\" questions instead (data/models/toy-llama)\n"
    "  --data-seed S        which --cloze stories / --toy-mcq questions (default 0)\n"
    "  --steps N            steps per layer (default 250)     --batch N   rows per step (default 32)\n"
    "  --lr X               learning rate (default 1.0)       --clip X    gradient-norm clip (default 1.0)\n"
    "  --max-rows N         training rows kept (default 4096)  --seed N\n"
    "  --val-frac X         share of the prompts held out for validation (default 0.1; 0 = none)\n"
    "  --device cuda|cpu, --threads N, --tokenizer FILE as for every command\n";

typedef struct {
    ll_progress bar; /* steps over all layers; drawn on a terminal only */
    int n_layers;
} ll_tl_progress;

static void ll_progress_cb(void *user, int layer, int step, int steps, double kl) {
    ll_tl_progress *p = user;
    ll_progress_update(&p->bar, (int64_t)layer * steps + step, (int64_t)layer * steps + step, 0);
    if (step == steps) {
        if (p->bar.enabled) fputc('\n', stderr); /* keep the drawn bar off the layer line */
        fprintf(stderr, "tuned-lens: layer %d (%d/%d): %d steps, last batch KL %.4f nats\n", layer, layer + 1,
                p->n_layers, steps, kl);
    }
}

/* "0.1234,0.0456,..." for the metadata (a JSON string), into a malloc'd buffer. */
static char *ll_kl_list(const double *kl, int n) {
    char *s = malloc((size_t)n * 24 + 1);
    if (!s) return NULL;
    size_t k = 0;
    s[0] = 0;
    for (int i = 0; i < n; i++) k += (size_t)sprintf(s + k, "%s%.6g", i ? "," : "", kl[i]);
    return s;
}

/* Held-out split by whole prompts (positions of one prompt are not independent): a seeded
 * shuffle, then the first n_val prompts are validation. order [n] gets the permutation. */
static int ll_split(int n, double frac, uint64_t seed, int *order) {
    for (int i = 0; i < n; i++) order[i] = i;
    ll_rng r = {seed ^ 0x9e3779b97f4a7c15ULL};
    for (int i = n - 1; i > 0; i--) {
        int j = ll_rng_int(&r, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    if (frac <= 0 || n < 2) return 0;
    int v = (int)lround(frac * n);
    if (v < 1) v = 1;
    if (v > n - 1) v = n - 1;
    return v;
}

int ll_cli_tuned_lens(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "train")) {
        if (argc >= 2 && !strcmp(argv[1], "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        return ll_cli_usage(usage);
    }
    const char *model = NULL, *data = NULL, *format = "auto", *tpl = "auto", *out = NULL;
    int limit = 0, cloze = 0, toy_mcq = 0, max_rows = 4096;
    uint64_t data_seed = 0;
    double val_frac = 0.1;
    ll_tuned_lens_train_opts to = {0};
    for (int i = 2; i < argc; i++) {
        int st;
        const char *o = argv[i];
        bool has = i + 1 < argc;
        if (ll_cli_common_opt(argc, argv, &i, &st)) {
            if (st) return st;
        } else if (!strcmp(o, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(o, "--data") && has) data = argv[++i];
        else if (!strcmp(o, "--format") && has) format = argv[++i];
        else if (!strcmp(o, "--template") && has) tpl = argv[++i];
        else if (!strcmp(o, "--out") && has) out = argv[++i];
        else if (!strcmp(o, "--limit") && has) limit = atoi(argv[++i]);
        else if (!strcmp(o, "--cloze") && has) cloze = atoi(argv[++i]);
        else if (!strcmp(o, "--toy-mcq") && has) toy_mcq = atoi(argv[++i]);
        else if (!strcmp(o, "--data-seed") && has) {
            char *end;
            long long v = strtoll(argv[++i], &end, 10);
            if (*end || v < 0) return ll_cli_fail("tuned-lens: --data-seed: expected a count, found '%s'", argv[i]);
            data_seed = (uint64_t)v;
        }
        else if (!strcmp(o, "--max-rows") && has) max_rows = atoi(argv[++i]);
        else if (!strcmp(o, "--steps") && has) to.steps = atoi(argv[++i]);
        else if (!strcmp(o, "--batch") && has) to.batch = atoi(argv[++i]);
        else if (!strcmp(o, "--lr") && has) to.lr = (float)atof(argv[++i]);
        else if (!strcmp(o, "--clip") && has) to.clip = (float)atof(argv[++i]);
        else if (!strcmp(o, "--seed") && has) to.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(o, "--val-frac") && has) {
            char *end;
            val_frac = strtod(argv[++i], &end);
            if (*end || !(val_frac >= 0 && val_frac < 1))
                return ll_cli_fail("tuned-lens: --val-frac: expected a share in [0, 1), found '%s'", argv[i]);
        }
        else if (o[0] == '-') return ll_cli_fail("tuned-lens: unknown option %s (or missing value)", o);
        else if (!model) model = o;
        else return ll_cli_usage(usage);
    }
    if (!model || !out) return ll_cli_usage(usage);
    if ((data != NULL) + (cloze > 0) + (toy_mcq > 0) != 1)
        return ll_cli_fail("tuned-lens: give exactly one of --data FILE, --cloze N and --toy-mcq N");
    ll_model *m = NULL;
    ll_tokenizer *tk = NULL;
    ll_mcqa_set set = {0};
    ll_mcqa_prompts pr = {0};
    ll_lens_data ld = {0}, vd = {0};
    ll_tuned_lens *tl = NULL, *zero = NULL;
    double *before = NULL, *after = NULL, *vk0 = NULL, *vk = NULL;
    int *order = NULL;
    const int32_t **vt = NULL;
    int *vn = NULL;
    char *meta = NULL, *l_tr0 = NULL, *l_tr = NULL, *l_v0 = NULL, *l_v = NULL;
    ll_status s;
    int rc = 0;
    /* On the GPU (--device cuda, or by default when one is present) the data is collected and
     * the lens trained there; on the CPU the reference path with host fp32 weights. */
    if ((s = ll_cli_load_for_run(model, &m))) return ll_cli_status(s);
    if ((s = ll_cli_load_tokenizer(model, m->cfg.vocab_size, &tk))) goto fail;
    if (cloze > 0) {
        if ((s = ll_cli_cloze("tuned-lens", m, tk, cloze, data_seed, &set))) goto fail;
    } else if (toy_mcq > 0) {
        if ((s = ll_mcqa_toy_mcq(toy_mcq, data_seed, &set))) goto fail;
    } else {
        ll_mcqa_format f;
        if ((s = ll_mcqa_parse_format(format, &f))) goto fail;
        if ((s = ll_mcqa_load(&set, data, f, limit))) goto fail;
    }
    ll_mcqa_prompt_opts po = {0};
    if ((s = ll_mcqa_parse_template(tpl, &po.tpl))) goto fail;
    if ((s = ll_mcqa_build(&set, tk, &po, &pr))) goto fail;
    int L = m->cfg.n_layers, P = pr.n;
    order = malloc((size_t)(P ? P : 1) * sizeof *order);
    vt = malloc((size_t)(P ? P : 1) * sizeof *vt);
    vn = malloc((size_t)(P ? P : 1) * sizeof *vn);
    before = calloc((size_t)L, sizeof *before);
    after = calloc((size_t)L, sizeof *after);
    vk0 = calloc((size_t)L, sizeof *vk0);
    vk = calloc((size_t)L, sizeof *vk);
    if (!order || !vt || !vn || !before || !after || !vk0 || !vk) {
        s = ll_err(LL_ERR_NOMEM, "no memory");
        goto fail;
    }
    int n_val = ll_split(P, val_frac, to.seed, order);
    if (val_frac > 0 && n_val == 0)
        fprintf(stderr, "tuned-lens: warning: %d prompt(s): too few to hold any out, no validation\n", P);
    /* Shuffled prompt lists: validation first, then training. */
    for (int i = 0; i < P; i++) {
        vt[i] = pr.tok[order[i]];
        vn[i] = pr.n_tok[order[i]];
    }
    if ((s = ll_lens_data_collect(m, vt + n_val, vn + n_val, P - n_val, max_rows, &ld))) goto fail;
    if (n_val) {
        /* The validation rows in proportion to the training budget. */
        int vmax = max_rows > 0 ? (int)ceil(max_rows * val_frac / (1 - val_frac)) : 0;
        if ((s = ll_lens_data_collect(m, vt, vn, n_val, vmax, &vd))) goto fail;
    }
    const char *dev = m->be->host_memory ? "cpu" : "cuda";
    fprintf(stderr, "tuned-lens: %d training rows from %d prompts, %d validation rows from %d prompts (%s), on %s\n",
            ld.n_rows, P - n_val, vd.n_rows, n_val, cloze > 0 ? "cloze prompts" : toy_mcq > 0 ? "toy-mcq prompts" : data, dev);
    if ((s = ll_tuned_lens_new(&tl, L, m->cfg.d_model))) goto fail;
    ll_tuned_lens_train_defaults(&to);
    ll_tl_progress prog = {.n_layers = L};
    ll_progress_init(&prog.bar, "tuned-lens", "steps", (int64_t)L * to.steps, 0);
    to.progress = ll_progress_cb;
    to.user = &prog;
    if ((s = ll_tuned_lens_train_auto(tl, m, &ld, &to, before, after))) goto fail;
    ll_progress_finish(&prog.bar);
    if (n_val) {
        if ((s = ll_tuned_lens_new(&zero, L, m->cfg.d_model))) goto fail;
        if ((s = ll_tuned_lens_kl(zero, m, &vd, vk0)) || (s = ll_tuned_lens_kl(tl, m, &vd, vk))) goto fail;
    }
    printf("layer\tkl_logit_lens\tkl_tuned_lens%s\n", n_val ? "\tval_kl_logit_lens\tval_kl_tuned_lens" : "");
    for (int l = 0; l < L; l++) {
        printf("%d\t%.5f\t%.5f", l, before[l], after[l]);
        if (n_val) printf("\t%.5f\t%.5f", vk0[l], vk[l]);
        printf("\n");
    }
    l_tr0 = ll_kl_list(before, L);
    l_tr = ll_kl_list(after, L);
    l_v0 = ll_kl_list(vk0, n_val ? L : 0);
    l_v = ll_kl_list(vk, n_val ? L : 0);
    size_t ml = 1024 + 4 * ((size_t)L * 24 + 1);
    meta = malloc(ml);
    if (!meta || !l_tr0 || !l_tr || !l_v0 || !l_v) {
        s = ll_err(LL_ERR_NOMEM, "no memory");
        goto fail;
    }
    /* The KL lists are per layer 0..L-1, in nats (the translator of layer L is the identity). */
    snprintf(meta, ml,
             "{\"model\": \"%s\", \"rows\": \"%d\", \"steps\": \"%d\", \"lr\": \"%g\", \"batch\": \"%d\", "
             "\"optimizer\": \"sgd-nesterov momentum %g clip %g wd %g\", \"device\": \"%s\", \"seed\": \"%llu\", "
             "\"val_frac\": \"%g\", \"val_prompts\": \"%d\", \"val_rows\": \"%d\", "
             "\"train_kl_logit_lens\": \"%s\", \"train_kl\": \"%s\", \"val_kl_logit_lens\": \"%s\", \"val_kl\": \"%s\"}",
             m->cfg.arch_name, ld.n_rows, to.steps, (double)to.lr, to.batch, (double)to.momentum, (double)to.clip,
             (double)to.weight_decay, dev, (unsigned long long)to.seed, val_frac, n_val, vd.n_rows, l_tr0, l_tr, l_v0,
             l_v);
    if ((s = ll_tuned_lens_save(tl, out, meta))) goto fail;
    fprintf(stderr, "tuned-lens: saved to %s\n", out);
    goto done;
fail:
    rc = ll_cli_status(s);
done:
    free(meta), free(l_tr0), free(l_tr), free(l_v0), free(l_v);
    free(before), free(after), free(vk0), free(vk), free(order), free(vt), free(vn);
    ll_tuned_lens_free(tl);
    ll_tuned_lens_free(zero);
    ll_lens_data_free(&ld);
    ll_lens_data_free(&vd);
    ll_mcqa_prompts_free(&pr);
    ll_mcqa_set_free(&set);
    ll_tokenizer_free(tk);
    ll_model_free(m);
    return rc;
}
