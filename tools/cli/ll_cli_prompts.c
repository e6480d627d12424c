/* Prompt sets for `layerlab lspade train` and `layerlab exit`: a task file through
 * host/mcqa, or the toy model's multiple-choice generator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_cli.h"

int ll_cli_prompt_opt(int argc, char **argv, int *i, ll_cli_prompt_src *s, int *status) {
    const char *a = argv[*i];
    bool has = *i + 1 < argc;
    *status = 0;
    if (!strcmp(a, "--data") && has) s->data = argv[++*i];
    else if (!strcmp(a, "--format") && has) s->format = argv[++*i];
    else if (!strcmp(a, "--template") && has) s->tpl = argv[++*i];
    else if (!strcmp(a, "--range") && has) {
        const char *v = argv[++*i];
        if (sscanf(v, "%d-%d", &s->from, &s->to) != 2 || s->from < 0 || s->to <= s->from) {
            *status = ll_cli_fail("--range: expected A-B with 0 <= A < B (items A..B-1 of the loaded set), found '%s'", v);
            return 1;
        }
    }
    else if ((!strcmp(a, "--k-shot") || !strcmp(a, "--limit") || !strcmp(a, "--toy-mcq") || !strcmp(a, "--data-seed") ||
              !strcmp(a, "--cloze")) &&
             has) {
        char *end;
        long long v = strtoll(argv[++*i], &end, 10);
        if (*end || v < 0) {
            *status = ll_cli_fail("%s: expected a count, found '%s'", a, argv[*i]);
            return 1;
        }
        if (!strcmp(a, "--k-shot")) s->k_shot = (int)v;
        else if (!strcmp(a, "--limit")) s->limit = (int)v;
        else if (!strcmp(a, "--toy-mcq")) s->toy_n = (int)v;
        else if (!strcmp(a, "--cloze")) s->cloze_n = (int)v;
        else s->seed = (uint64_t)v;
    } else return 0;
    return 1;
}

ll_status ll_cli_cloze(const char *cmd, ll_model *m, const ll_tokenizer *t, int n, uint64_t seed, ll_mcqa_set *set) {
    int avail = 0;
    ll_mcqa_cloze_opts co = {.n_items = n, .seed = seed, .n_available = &avail};
    LL_TRY(ll_mcqa_cloze(m, t, &co, set));
    if (set->n < n)
        fprintf(stderr,
                "%s: warning: --cloze %d: only %d items: the %d stories of --data-seed %llu hold %d distinct usable cut "
                "points (ask for at most %d)\n",
                cmd, n, set->n, LL_MCQA_CLOZE_STORIES, (unsigned long long)seed, avail, avail);
    return LL_OK;
}

/* --range A-B: keep items [A, B) (B capped at the set's size). */
static ll_status ll_cli_prompts_range(const ll_cli_prompt_src *s, ll_exit_prompts *p, char *desc, size_t n) {
    if (!s->to) return LL_OK;
    int to = s->to < p->n ? s->to : p->n;
    if (s->from >= to) {
        ll_status st = ll_err(LL_ERR_ARG, "--range %d-%d: the set has only %d items", s->from, s->to, p->n);
        ll_exit_prompts_free(p);
        return st;
    }
    ll_exit_prompts sub;
    ll_status st = ll_exit_prompts_slice(p, s->from, to, &sub);
    ll_exit_prompts_free(p);
    if (st) return st;
    *p = sub;
    size_t l = strlen(desc);
    snprintf(desc + l, n - l, " range=%d-%d", s->from, to);
    return LL_OK;
}

ll_status ll_cli_prompts_load(const ll_cli_prompt_src *s, const char *model_path, const ll_model *m,
                              ll_exit_prompts *out, char *desc, size_t n) {
    if (!!s->data + !!s->toy_n + !!s->cloze_n != 1)
        return ll_err(LL_ERR_ARG, "give exactly one of --data FILE, --toy-mcq N and --cloze N");
    if (s->toy_n) {
        snprintf(desc, n, "toy-mcq n=%d seed=%llu", s->toy_n, (unsigned long long)s->seed);
        LL_TRY(ll_exit_prompts_toy_mcq(out, s->toy_n, s->seed, m->cfg.vocab_size));
        return ll_cli_prompts_range(s, out, desc, n);
    }
    ll_mcqa_format fmt = LL_MCQA_AUTO;
    ll_mcqa_template tpl = LL_TPL_AUTO;
    if (s->format) LL_TRY(ll_mcqa_parse_format(s->format, &fmt));
    if (s->tpl) LL_TRY(ll_mcqa_parse_template(s->tpl, &tpl));
    ll_tokenizer *t = NULL;
    LL_TRY(ll_cli_load_tokenizer(model_path, m->cfg.vocab_size, &t));
    ll_mcqa_set set = {0};
    ll_mcqa_prompts pr = {0};
    ll_status st;
    if (s->cloze_n) {
        /* The model's own greedy stories cut before a word (host/mcqa): any model has it. */
        st = ll_cli_cloze(s->cmd ? s->cmd : "layerlab", (ll_model *)m, t, s->cloze_n, s->seed, &set);
    } else {
        st = ll_mcqa_load(&set, s->data, fmt, s->limit);
    }
    ll_mcqa_prompt_opts po = {.tpl = tpl, .k_shot = s->k_shot};
    if (!st) st = ll_mcqa_build(&set, t, &po, &pr);
    if (!st) st = ll_exit_prompts_from_mcqa(&pr, out);
    if (!st) {
        char what[64];
        snprintf(what, sizeof what, "cloze n=%d seed=%llu", s->cloze_n, (unsigned long long)s->seed);
        snprintf(desc, n, "%s format=%s template=%s k_shot=%d limit=%d", s->cloze_n ? what : s->data,
                 ll_mcqa_format_name(set.format), ll_mcqa_template_name(pr.tpl), s->k_shot, s->limit);
    }
    if (!st) st = ll_cli_prompts_range(s, out, desc, n);
    ll_mcqa_prompts_free(&pr);
    ll_mcqa_set_free(&set);
    ll_tokenizer_free(t);
    return st;
}
