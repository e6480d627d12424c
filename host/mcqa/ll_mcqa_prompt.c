/* Prompt templates, candidate answer tokens, and the dump-input writer for ll_mcqa. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "ll_mcqa.h"

static const char *const ll_tpl_names[] = {"auto", "mcq", "boolq", "raw", "vicuna"};

const char *ll_mcqa_template_name(ll_mcqa_template t) {
    return (unsigned)t < sizeof ll_tpl_names / sizeof *ll_tpl_names ? ll_tpl_names[t] : "?";
}

ll_status ll_mcqa_parse_template(const char *s, ll_mcqa_template *out) {
    for (unsigned i = 0; s && i < sizeof ll_tpl_names / sizeof *ll_tpl_names; i++)
        if (!strcmp(s, ll_tpl_names[i])) {
            *out = (ll_mcqa_template)i;
            return LL_OK;
        }
    return ll_err(LL_ERR_ARG, "template: expected auto, mcq, boolq, raw or vicuna, found \"%s\"", s ? s : "(null)");
}

/* A growing string. */
typedef struct {
    char *s;
    size_t n, cap;
    bool oom;
} ll_sb;

static void ll_sb_add(ll_sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ll_sb_add(ll_sb *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t nc = (b->cap ? b->cap : 256);
        while (nc <= b->n + (size_t)k) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
}

static ll_mcqa_template ll_resolve(const ll_mcqa_set *s, ll_mcqa_template t) {
    if (t != LL_TPL_AUTO) return t;
    if (s->format == LL_MCQA_GENERIC || s->format == LL_MCQA_TOKENS) return LL_TPL_RAW;
    if (s->format == LL_MCQA_BOOLQ) return LL_TPL_BOOLQ;
    return LL_TPL_MCQ;
}

static bool ll_starts(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* The question part of item `it` under template t (no trailing "Answer:"). */
static void ll_body(ll_sb *b, const ll_mcqa_item *it, ll_mcqa_template t) {
    if (t == LL_TPL_BOOLQ) {
        size_t n = strlen(it->query);
        /* BoolQ questions are lower case with no question mark. */
        ll_sb_add(b, "%s\nQuestion: %c%s%s\n", it->passage ? it->passage : "",
                  toupper((unsigned char)it->query[0]), it->query + 1, n && it->query[n - 1] == '?' ? "" : "?");
        return;
    }
    /* foundry queries already carry "Question: " (or "Passage: ..."); others get it. */
    bool labelled = ll_starts(it->query, "Question:") || ll_starts(it->query, "Passage:");
    ll_sb_add(b, "%s%s\n", labelled ? "" : "Question: ", it->query);
    for (int j = 0; j < it->n_choices; j++) ll_sb_add(b, "%c. %s\n", 'A' + j, it->choices[j]);
}

static const char ll_vicuna_system[] =
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions.";

static char *ll_label(const ll_mcqa_item *it, ll_mcqa_template t, int j) {
    if (t == LL_TPL_RAW) return ll_strdup(it->choices[j]);
    if (t == LL_TPL_BOOLQ) return ll_strdup(j ? "yes" : "no");
    char b[2] = {(char)('A' + j), 0};
    return ll_strdup(b);
}

void ll_mcqa_labels_free(char **labels, int n) {
    if (!labels) return;
    for (int j = 0; j < n; j++) free(labels[j]);
    free(labels);
}

static ll_status ll_check_item(const ll_mcqa_set *s, int i, ll_mcqa_template t) {
    const ll_mcqa_item *it = &s->items[i];
    if (it->tokens)
        return ll_err(LL_ERR_ARG, "%s item %s: a pre-tokenized item has no prompt text (it is used as is)", s->path,
                      it->id);
    if (t == LL_TPL_RAW && !it->prompt)
        return ll_err(LL_ERR_ARG, "%s item %s: the raw template needs the generic format's \"prompt\"", s->path, it->id);
    if (t != LL_TPL_RAW && !it->query)
        return ll_err(LL_ERR_ARG, "%s item %s: template %s needs a question (generic items only work with raw)",
                      s->path, it->id, ll_mcqa_template_name(t));
    if (t == LL_TPL_BOOLQ && it->n_choices != 2)
        return ll_err(LL_ERR_ARG, "%s item %s: the boolq template needs 2 choices, found %d", s->path, it->id,
                      it->n_choices);
    if ((t == LL_TPL_MCQ || t == LL_TPL_VICUNA) && it->n_choices > 26)
        return ll_err(LL_ERR_ARG, "%s item %s: %d choices, at most 26 letters", s->path, it->id, it->n_choices);
    return LL_OK;
}

ll_status ll_mcqa_prompt(const ll_mcqa_set *s, int i, const ll_mcqa_prompt_opts *o, char **text, char ***labels,
                         int *n_labels) {
    *text = NULL;
    if (labels) *labels = NULL;
    if (i < 0 || i >= s->n) return ll_err(LL_ERR_ARG, "%s: item %d outside 0..%d", s->path, i, s->n - 1);
    ll_mcqa_prompt_opts def = {0};
    if (!o) o = &def;
    ll_mcqa_template t = ll_resolve(s, o->tpl);
    /* Vicuna wraps the MCQ body, or the BoolQ body for yes/no data. */
    ll_mcqa_template inner = t == LL_TPL_VICUNA ? (s->format == LL_MCQA_BOOLQ ? LL_TPL_BOOLQ : LL_TPL_MCQ) : t;
    LL_TRY(ll_check_item(s, i, inner));
    const ll_mcqa_set *shots = o->shots ? o->shots : s;
    ll_sb b = {0};
    if (t == LL_TPL_VICUNA) ll_sb_add(&b, "%s USER: ", ll_vicuna_system);
    int k = 0;
    for (int j = 0; j < shots->n && k < o->k_shot; j++) {
        if (shots == s && j == i) continue;
        const ll_mcqa_item *sh = &shots->items[j];
        if (sh->gold < 0) continue;
        LL_TRY(ll_check_item(shots, j, inner));
        char *lab = ll_label(sh, inner, sh->gold);
        if (!lab) return ll_err(LL_ERR_NOMEM, "no memory");
        if (inner == LL_TPL_RAW) ll_sb_add(&b, "%s %s\n", sh->prompt, lab);
        else {
            ll_body(&b, sh, inner);
            ll_sb_add(&b, "Answer: %s\n\n", lab);
        }
        free(lab);
        k++;
    }
    if (k < o->k_shot) {
        free(b.s);
        return ll_err(LL_ERR_ARG, "%s: %d-shot prompt needs %d solved examples, found %d", s->path, o->k_shot,
                      o->k_shot, k);
    }
    const ll_mcqa_item *it = &s->items[i];
    if (inner == LL_TPL_RAW) ll_sb_add(&b, "%s", it->prompt);
    else {
        ll_body(&b, it, inner);
        /* Vicuna: the answer follows "ASSISTANT:" (the assistant's first token is " A"). */
        if (t == LL_TPL_VICUNA)
            ll_sb_add(&b, "%s ASSISTANT:",
                      inner == LL_TPL_BOOLQ ? "Answer yes or no." : "Answer with the letter of the correct option.");
        else ll_sb_add(&b, "Answer:");
    }
    if (b.oom) {
        free(b.s);
        return ll_err(LL_ERR_NOMEM, "no memory for a prompt");
    }
    *text = b.s;
    if (labels) {
        char **lab = ll_calloc((size_t)it->n_choices, sizeof *lab, "labels");
        if (!lab) {
            free(b.s);
            *text = NULL;
            return LL_ERR_NOMEM;
        }
        for (int j = 0; j < it->n_choices; j++)
            if (!(lab[j] = ll_label(it, inner, j))) {
                ll_mcqa_labels_free(lab, j);
                free(b.s);
                *text = NULL;
                return ll_err(LL_ERR_NOMEM, "no memory");
            }
        *labels = lab;
        *n_labels = it->n_choices;
    }
    return LL_OK;
}

/* The single token `s` encodes to without special tokens, if it is one and decodes back to
 * s (modulo surrounding whitespace: this rejects an unknown-word token); else -1. */
static int32_t ll_single(const ll_tokenizer *t, const char *s) {
    ll_encoding e = {0};
    int32_t id = -1;
    if (ll_tokenizer_encode(t, s, strlen(s), 0, &e) == LL_OK && e.n == 1) {
        char *d = NULL;
        size_t dl;
        if (ll_tokenizer_decode(t, e.ids, 1, false, &d, &dl) == LL_OK) {
            const char *a = d, *x = s;
            while (isspace((unsigned char)*a)) a++;
            while (isspace((unsigned char)*x)) x++;
            size_t la = strlen(a), lx = strlen(x);
            while (la && isspace((unsigned char)a[la - 1])) la--;
            while (lx && isspace((unsigned char)x[lx - 1])) lx--;
            if (la == lx && !memcmp(a, x, la)) id = e.ids[0];
        }
        free(d);
    }
    ll_clear_error();
    ll_encoding_free(&e);
    return id;
}

ll_status ll_mcqa_candidates(const ll_tokenizer *t, const char *const *labels, int n, int32_t *ids, int *variant) {
    int spaced = 0, bare = 0;
    for (int j = 0; j < n; j++) {
        char buf[512];
        snprintf(buf, sizeof buf, " %s", labels[j]);
        int32_t id = ll_single(t, buf);
        if (id >= 0) spaced++;
        else if ((id = ll_single(t, labels[j])) >= 0) bare++;
        if (id < 0)
            return ll_err(LL_ERR_UNSUPPORTED,
                          "answer label \"%s\": neither \" %s\" nor \"%s\" is a single token of this tokenizer (%s)",
                          labels[j], labels[j], labels[j], ll_tokenizer_describe(t));
        for (int k = 0; k < j; k++)
            if (ids[k] == id)
                return ll_err(LL_ERR_UNSUPPORTED, "answer labels \"%s\" and \"%s\" are the same token %d", labels[k],
                              labels[j], id);
        ids[j] = id;
    }
    if (variant) *variant = bare == 0 ? 1 : spaced == 0 ? 0 : 2;
    return LL_OK;
}

void ll_mcqa_prompts_free(ll_mcqa_prompts *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        if (p->id) free(p->id[i]);
        if (p->text) free(p->text[i]);
        if (p->tok) free(p->tok[i]);
        if (p->cand) free(p->cand[i]);
    }
    free(p->id);
    free(p->text);
    free(p->tok);
    free(p->n_tok);
    free(p->cand);
    free(p->n_cand);
    free(p->gold);
    memset(p, 0, sizeof *p);
}

ll_status ll_mcqa_build(const ll_mcqa_set *s, const ll_tokenizer *t, const ll_mcqa_prompt_opts *o,
                        ll_mcqa_prompts *out) {
    memset(out, 0, sizeof *out);
    int n = s->n;
    out->tpl = ll_resolve(s, o ? o->tpl : LL_TPL_AUTO);
    out->id = ll_calloc((size_t)n, sizeof *out->id, "prompts");
    out->text = ll_calloc((size_t)n, sizeof *out->text, "prompts");
    out->tok = ll_calloc((size_t)n, sizeof *out->tok, "prompts");
    out->n_tok = ll_calloc((size_t)n, sizeof *out->n_tok, "prompts");
    out->cand = ll_calloc((size_t)n, sizeof *out->cand, "prompts");
    out->n_cand = ll_calloc((size_t)n, sizeof *out->n_cand, "prompts");
    out->gold = ll_calloc((size_t)n, sizeof *out->gold, "prompts");
    if (!out->id || !out->text || !out->tok || !out->n_tok || !out->cand || !out->n_cand || !out->gold) {
        ll_mcqa_prompts_free(out);
        return LL_ERR_NOMEM;
    }
    out->n = n;
    ll_status st = LL_OK;
    for (int i = 0; i < n && !st; i++) {
        const ll_mcqa_item *it = &s->items[i];
        if (it->tokens) {
            int V = t ? ll_tokenizer_n_vocab(t) : INT32_MAX;
            out->id[i] = ll_strdup(it->id);
            out->text[i] = ll_strdup("");
            out->tok[i] = malloc((size_t)it->n_tokens * sizeof(int32_t));
            out->cand[i] = malloc((size_t)it->n_choices * sizeof(int32_t));
            if (!out->id[i] || !out->text[i] || !out->tok[i] || !out->cand[i]) {
                st = ll_err(LL_ERR_NOMEM, "no memory");
                break;
            }
            memcpy(out->tok[i], it->tokens, (size_t)it->n_tokens * sizeof(int32_t));
            memcpy(out->cand[i], it->cand_ids, (size_t)it->n_choices * sizeof(int32_t));
            out->n_tok[i] = it->n_tokens;
            out->n_cand[i] = it->n_choices;
            out->gold[i] = it->gold;
            for (int j = 0; j < it->n_tokens + it->n_choices && !st; j++) {
                int32_t id = j < it->n_tokens ? it->tokens[j] : it->cand_ids[j - it->n_tokens];
                if (id >= V)
                    st = ll_err(LL_ERR_FORMAT, "%s item %s (line %lld): token id %d is outside the vocabulary (%d)",
                                s->path, it->id, (long long)it->line, id, V);
            }
            continue;
        }
        char **lab = NULL;
        int nl = 0;
        if ((st = ll_mcqa_prompt(s, i, o, &out->text[i], &lab, &nl))) break;
        out->id[i] = ll_strdup(s->items[i].id);
        out->cand[i] = malloc((size_t)nl * sizeof(int32_t));
        out->n_cand[i] = nl;
        out->gold[i] = s->items[i].gold;
        if (!out->id[i] || !out->cand[i]) st = ll_err(LL_ERR_NOMEM, "no memory");
        if (!st && (st = ll_mcqa_candidates(t, (const char *const *)lab, nl, out->cand[i], NULL)))
            ll_err_prefix(st, "%s item %s (line %lld): ", s->path, s->items[i].id, (long long)s->items[i].line);
        ll_mcqa_labels_free(lab, nl);
        if (st) break;
        ll_encoding e = {0};
        if ((st = ll_tokenizer_encode(t, out->text[i], strlen(out->text[i]), LL_TOK_DEFAULT, &e))) {
            ll_err_prefix(st, "%s item %s: ", s->path, s->items[i].id);
            break;
        }
        if (e.n == 0) {
            ll_encoding_free(&e);
            st = ll_err(LL_ERR_FORMAT, "%s item %s: the prompt has no tokens", s->path, s->items[i].id);
            break;
        }
        out->tok[i] = e.ids;
        out->n_tok[i] = (int)e.n;
        e.ids = NULL;
        ll_encoding_free(&e);
    }
    if (st) ll_mcqa_prompts_free(out);
    return st;
}

ll_status ll_mcqa_write_dump_jsonl(const ll_mcqa_prompts *p, const char *path) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 8);
    if (!tmp) return ll_err(LL_ERR_NOMEM, "no memory");
    snprintf(tmp, pl + 8, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        ll_status st = ll_err(LL_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    ll_status st = LL_OK;
    for (int i = 0; i < p->n && !st; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", p->id[i]);
        cJSON_AddItemToObject(o, "tokens", cJSON_CreateIntArray(p->tok[i], p->n_tok[i]));
        cJSON *pos = cJSON_AddObjectToObject(o, "positions");
        cJSON_AddNumberToObject(pos, "answer", p->n_tok[i] - 1);
        cJSON_AddNumberToObject(o, "gold", p->gold[i]);
        cJSON_AddItemToObject(o, "candidates", cJSON_CreateIntArray(p->cand[i], p->n_cand[i]));
        cJSON_AddStringToObject(o, "template", ll_mcqa_template_name(p->tpl));
        cJSON_AddStringToObject(o, "prompt_text", p->text[i]);
        char *js = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!js || fprintf(f, "%s\n", js) < 0) st = ll_err(LL_ERR_IO, "%s: write failed", tmp);
        free(js);
    }
    if (fclose(f) && !st) st = ll_err(LL_ERR_IO, "%s: write failed", tmp);
    if (!st && rename(tmp, path)) st = ll_err(LL_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (st) remove(tmp);
    free(tmp);
    return st;
}
