/* layerlab tuned-lens train MODEL: fit a tuned lens (one affine translator per layer) on
 * the hidden states of a data set's prompts, on the CPU, and save it as safetensors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lens/ll_lens.h"
#include "ll_cli.h"
#include "mcqa/ll_mcqa.h"
#include "model/ll_model.h"

static const char usage[] =
    "usage: layerlab tuned-lens train MODEL (--data FILE | --cloze N) --out LENS.safetensors [options]\n"
    "Trains one translator h -> h + A h + b per layer (A, b start at zero: the logit lens) to\n"
    "minimise KL(final model || lens) over every position of the prompts, with SGD + Nesterov\n"
    "momentum, linear decay and gradient clipping, on the CPU.\n"
    "  --data FILE, --format F, --template T, --limit N   the prompts (as for layerlab lens)\n"
    "  --cloze N            N cloze prompts from the model's own greedy stories instead\n"
    "  --steps N            steps per layer (default 250)     --batch N   rows per step (default 32)\n"
    "  --lr X               learning rate (default 1.0)       --clip X    gradient-norm clip (default 1.0)\n"
    "  --max-rows N         training rows kept (default 4096)  --seed N\n"
    "  --threads N, --tokenizer FILE as for every command (training runs on the CPU)\n";

static void ll_progress_cb(void *user, int layer, int step, int steps, double kl) {
    (void)user;
    if (step == steps) fprintf(stderr, "tuned-lens: layer %d: %d steps, last batch KL %.4f nats\n", layer, steps, kl);
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
    int limit = 0, cloze = 0, max_rows = 4096;
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
        else if (!strcmp(o, "--max-rows") && has) max_rows = atoi(argv[++i]);
        else if (!strcmp(o, "--steps") && has) to.steps = atoi(argv[++i]);
        else if (!strcmp(o, "--batch") && has) to.batch = atoi(argv[++i]);
        else if (!strcmp(o, "--lr") && has) to.lr = (float)atof(argv[++i]);
        else if (!strcmp(o, "--clip") && has) to.clip = (float)atof(argv[++i]);
        else if (!strcmp(o, "--seed") && has) to.seed = strtoull(argv[++i], NULL, 10);
        else if (o[0] == '-') return ll_cli_fail("tuned-lens: unknown option %s (or missing value)", o);
        else if (!model) model = o;
        else return ll_cli_usage(usage);
    }
    if (!model || !out || (!data) == (cloze <= 0)) return ll_cli_usage(usage);
    ll_model *m = NULL;
    ll_tokenizer *tk = NULL;
    ll_mcqa_set set = {0};
    ll_mcqa_prompts pr = {0};
    ll_lens_data ld = {0};
    ll_tuned_lens *tl = NULL;
    double *before = NULL, *after = NULL;
    ll_status s;
    int rc = 0;
    /* The gradient is hand-written for host fp32 weights: the model stays on the CPU. */
    if ((s = ll_cli_load(model, &m))) return ll_cli_status(s);
    if ((s = ll_cli_load_tokenizer(model, m->cfg.vocab_size, &tk))) goto fail;
    if (cloze > 0) {
        ll_mcqa_cloze_opts co = {.n_items = cloze};
        if ((s = ll_mcqa_cloze(m, tk, &co, &set))) goto fail;
    } else {
        ll_mcqa_format f;
        if ((s = ll_mcqa_parse_format(format, &f))) goto fail;
        if ((s = ll_mcqa_load(&set, data, f, limit))) goto fail;
    }
    ll_mcqa_prompt_opts po = {0};
    if ((s = ll_mcqa_parse_template(tpl, &po.tpl))) goto fail;
    if ((s = ll_mcqa_build(&set, tk, &po, &pr))) goto fail;
    if ((s = ll_lens_data_collect(m, (const int32_t *const *)pr.tok, pr.n_tok, pr.n, max_rows, &ld))) goto fail;
    fprintf(stderr, "tuned-lens: %d training rows from %s\n", ld.n_rows, cloze > 0 ? "cloze prompts" : data);
    if ((s = ll_tuned_lens_new(&tl, m->cfg.n_layers, m->cfg.d_model))) goto fail;
    before = calloc((size_t)m->cfg.n_layers, sizeof *before);
    after = calloc((size_t)m->cfg.n_layers, sizeof *after);
    if (!before || !after) {
        s = ll_err(LL_ERR_NOMEM, "no memory");
        goto fail;
    }
    to.progress = ll_progress_cb;
    if ((s = ll_tuned_lens_train(tl, m, &ld, &to, before, after))) goto fail;
    printf("layer\tkl_logit_lens\tkl_tuned_lens\n");
    for (int l = 0; l < m->cfg.n_layers; l++) printf("%d\t%.5f\t%.5f\n", l, before[l], after[l]);
    char meta[1024];
    ll_tuned_lens_train_defaults(&to);
    snprintf(meta, sizeof meta,
             "{\"model\": \"%s\", \"rows\": \"%d\", \"steps\": \"%d\", \"lr\": \"%g\", \"batch\": \"%d\", "
             "\"optimizer\": \"sgd-nesterov momentum %g clip %g wd %g\"}",
             m->cfg.arch_name, ld.n_rows, to.steps, (double)to.lr, to.batch, (double)to.momentum, (double)to.clip,
             (double)to.weight_decay);
    if ((s = ll_tuned_lens_save(tl, out, meta))) goto fail;
    fprintf(stderr, "tuned-lens: saved to %s\n", out);
    goto done;
fail:
    rc = ll_cli_status(s);
done:
    free(before);
    free(after);
    ll_tuned_lens_free(tl);
    ll_lens_data_free(&ld);
    ll_mcqa_prompts_free(&pr);
    ll_mcqa_set_free(&set);
    ll_tokenizer_free(tk);
    ll_model_free(m);
    return rc;
}
