/* Generated ICL tasks: categorization rules whose two label words are drawn from a pool
 * of ordinary words (so the labels say nothing about the rule), and the toy model's
 * fact tables. Everything is a function of the seed. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "../train/ll_toy_data.h"
#include "ll_icl_task_internal.h"

/* Ordinary, mostly single-token words with no bearing on any rule. */
static const char *const ll_label_pool[] = {
    "apple", "river", "stone", "cloud", "tiger", "piano", "lemon", "rocket", "forest", "candle", "silver", "planet",
    "garden", "window", "pencil", "bridge", "castle", "dragon", "honey", "marble", "ocean", "pepper", "shadow", "violet"};
#define LL_N_POOL ((int)(sizeof ll_label_pool / sizeof *ll_label_pool))

typedef enum { LL_R_LENGTH, LL_R_FIRST, LL_R_CONTAINS, LL_R_PARITY, LL_R_THRESHOLD } ll_rule_kind;

typedef struct {
    ll_rule_kind kind;
    int k;          /* length / threshold */
    char set[32];   /* first-letter set */
    char letter;    /* contains */
} ll_rule;

static int ll_rule_class(const ll_rule *r, const char *s) {
    switch (r->kind) {
    case LL_R_LENGTH: return (int)strlen(s) >= r->k;
    case LL_R_FIRST: return strchr(r->set, s[0]) != NULL;
    case LL_R_CONTAINS: return strchr(s, r->letter) != NULL;
    case LL_R_PARITY: return atoi(s) % 2;
    case LL_R_THRESHOLD: return atoi(s) >= r->k;
    }
    return 0;
}

static ll_status ll_parse_rule(const char *spec, ll_rule *r) {
    memset(r, 0, sizeof *r);
    const char *colon = strchr(spec, ':');
    size_t nl = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *arg = colon ? colon + 1 : NULL;
#define IS(name) (nl == strlen(name) && !strncmp(spec, name, nl))
    if (IS("length") || IS("threshold")) {
        r->kind = IS("length") ? LL_R_LENGTH : LL_R_THRESHOLD;
        r->k = r->kind == LL_R_LENGTH ? 6 : 50;
        if (arg) {
            char *end;
            long v = strtol(arg, &end, 10);
            if (*end || end == arg || v < 1 || v > 99)
                return ll_err(LL_ERR_ARG, "task gen:%s: expected a number 1-99 after the colon, found \"%s\"", spec, arg);
            r->k = (int)v;
        }
    } else if (IS("first-letter")) {
        r->kind = LL_R_FIRST;
        const char *s = arg ? arg : "a-m";
        size_t n = 0;
        for (size_t i = 0; s[i]; i++) {
            if (!islower((unsigned char)s[i]))
                return ll_err(LL_ERR_ARG, "task gen:%s: the letter set must be lowercase letters or ranges (a-m), found \"%s\"",
                              spec, s);
            if (s[i + 1] == '-' && islower((unsigned char)s[i + 2])) {
                for (char c = s[i]; c <= s[i + 2] && n < 26; c++) r->set[n++] = c;
                i += 2;
            } else if (n < 26) r->set[n++] = s[i];
        }
    } else if (IS("contains")) {
        r->kind = LL_R_CONTAINS;
        r->letter = 'e';
        if (arg) {
            if (strlen(arg) != 1 || !islower((unsigned char)arg[0]))
                return ll_err(LL_ERR_ARG, "task gen:%s: expected one lowercase letter after the colon, found \"%s\"", spec, arg);
            r->letter = arg[0];
        }
    } else if (IS("parity")) {
        r->kind = LL_R_PARITY;
        if (arg) return ll_err(LL_ERR_ARG, "task gen:%s: parity takes no argument", spec);
    } else {
        return ll_err(LL_ERR_ARG, "task gen:%s: unknown rule \"%.*s\" (expected length, first-letter, contains, parity or threshold)",
                      spec, (int)nl, spec);
    }
#undef IS
    return LL_OK;
}

static void ll_rule_text(const ll_rule *r, const char *l0, const char *l1, char *buf, size_t n) {
    switch (r->kind) {
    case LL_R_LENGTH: snprintf(buf, n, "word shorter than %d letters -> %s, else %s", r->k, l0, l1); break;
    case LL_R_FIRST: snprintf(buf, n, "first letter in {%s} -> %s, else %s", r->set, l1, l0); break;
    case LL_R_CONTAINS: snprintf(buf, n, "word contains '%c' -> %s, else %s", r->letter, l1, l0); break;
    case LL_R_PARITY: snprintf(buf, n, "number even -> %s, odd -> %s", l0, l1); break;
    case LL_R_THRESHOLD: snprintf(buf, n, "number below %d -> %s, else %s", r->k, l0, l1); break;
    }
}

/* The input pool: words (synthetic or the toy world's) or the numbers 0-99. */
static ll_status ll_input_pool(const ll_rule *r, const ll_icl_task_opts *o, uint64_t *rng, char ***out, int *n_out) {
    bool numbers = r->kind == LL_R_PARITY || r->kind == LL_R_THRESHOLD;
    bool toy = o->words && !strcmp(o->words, "toy");
    if (o->words && !toy && strcmp(o->words, "synthetic"))
        return ll_err(LL_ERR_ARG, "generator words \"%s\": expected synthetic or toy", o->words);
    int cap = 512, n = 0;
    char **w = calloc((size_t)cap, sizeof *w);
    if (!w) return ll_err(LL_ERR_NOMEM, "generator: no memory");
    ll_status st = LL_OK;
    if (numbers) {
        for (int i = 0; i < 100; i++) {
            char b[8];
            snprintf(b, sizeof b, "%d", i);
            if (!(w[n++] = ll_strdup(b))) st = LL_ERR_NOMEM;
        }
    } else if (toy) {
        ll_toy_world *tw;
        if ((st = ll_toy_world_new(&tw))) goto done;
        for (int32_t id = 0; id < ll_toy_vocab_size(tw) && n < cap; id++)
            if (ll_toy_rule_class(tw, 0, id) >= 0)
                if (!(w[n++] = ll_strdup(ll_toy_token(tw, id)))) st = LL_ERR_NOMEM;
        ll_toy_world_free(tw);
    } else {
        /* 400 distinct lowercase strings of 3-8 letters */
        while (n < 400 && !st) {
            char b[9];
            int len = 3 + (int)(ll_icl_rand(rng) % 6);
            for (int i = 0; i < len; i++) b[i] = (char)('a' + ll_icl_rand(rng) % 26);
            b[len] = 0;
            bool dup = false;
            for (int i = 0; i < n && !dup; i++) dup = !strcmp(w[i], b);
            if (!dup && !(w[n++] = ll_strdup(b))) st = LL_ERR_NOMEM;
        }
    }
done:
    if (st == LL_ERR_NOMEM) st = ll_err(LL_ERR_NOMEM, "generator: no memory");
    if (st) {
        for (int i = 0; i < n; i++) free(w[i]);
        free(w);
        return st;
    }
    *out = w;
    *n_out = n;
    return LL_OK;
}

ll_status ll_icl_task_generate(const char *spec, const ll_icl_task_opts *o, ll_icl_task **out) {
    ll_rule r;
    LL_TRY(ll_parse_rule(spec, &r));
    uint64_t rng = o->seed ^ 0x1C1A5EEDull;
    char l[2][64];
    if (o->labels) {
        const char *c = strchr(o->labels, ',');
        if (!c || c == o->labels || !c[1] || strchr(c + 1, ',') || (size_t)(c - o->labels) >= sizeof l[0] ||
            strlen(c + 1) >= sizeof l[1])
            return ll_err(LL_ERR_ARG, "generator labels \"%s\": expected two words \"w0,w1\"", o->labels);
        snprintf(l[0], sizeof l[0], "%.*s", (int)(c - o->labels), o->labels);
        snprintf(l[1], sizeof l[1], "%s", c + 1);
        if (!strcmp(l[0], l[1])) return ll_err(LL_ERR_ARG, "generator labels \"%s\": the two words must differ", o->labels);
    } else {
        int a = (int)(ll_icl_rand(&rng) % LL_N_POOL), b = (int)(ll_icl_rand(&rng) % (LL_N_POOL - 1));
        if (b >= a) b++;
        snprintf(l[0], sizeof l[0], "%s", ll_label_pool[a]);
        snprintf(l[1], sizeof l[1], "%s", ll_label_pool[b]);
    }
    char **pool = NULL;
    int n_pool = 0;
    LL_TRY(ll_input_pool(&r, o, &rng, &pool, &n_pool));
    int have[2] = {0, 0};
    for (int i = 0; i < n_pool; i++) have[ll_rule_class(&r, pool[i])]++;
    char name[128], src[256];
    snprintf(name, sizeof name, "gen:%s", spec);
    snprintf(src, sizeof src, "generator gen:%s, seed %llu, inputs %s", spec, (unsigned long long)o->seed,
             r.kind == LL_R_PARITY || r.kind == LL_R_THRESHOLD ? "numbers 0-99"
             : o->words && !strcmp(o->words, "toy")            ? "toy words"
                                                               : "synthetic words");
    ll_icl_task *t = NULL;
    ll_status st;
    if (!have[0] || !have[1]) {
        st = ll_err(LL_ERR_ARG, "task gen:%s: every input falls in one class (%d / %d); change the rule's argument", spec,
                    have[0], have[1]);
        goto done;
    }
    if ((st = ll_icl_task_new(name, src, &t))) goto done;
    int n = o->n_gen > 0 ? o->n_gen : 512;
    for (int i = 0; i < n && !st; i++) {
        /* class first, then an input of it: balanced whatever the rule's base rate */
        int c = (int)(ll_icl_rand(&rng) % 2);
        const char *x;
        do x = pool[ll_icl_rand(&rng) % (uint64_t)n_pool];
        while (ll_rule_class(&r, x) != c);
        st = ll_icl_task_add(t, x, strlen(x), l[c], strlen(l[c]));
    }
    if (!st) {
        const char *fixed[2] = {l[0], l[1]};
        st = ll_icl_task_set_classes(t, fixed, 2);
    }
    if (!st) {
        char rule[256];
        ll_rule_text(&r, l[0], l[1], rule, sizeof rule);
        if (!(t->rule = ll_strdup(rule))) st = ll_err(LL_ERR_NOMEM, "generator: no memory");
    }
done:
    for (int i = 0; i < n_pool; i++) free(pool[i]);
    free(pool);
    if (st) ll_icl_task_free(t);
    else *out = t;
    return st;
}

ll_status ll_icl_task_toy(const char *table, ll_icl_task **out) {
    static const char *const tables[] = {"color", "animal", "food", "tool"};
    int ti = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(table, tables[i])) ti = i;
    if (ti < 0) return ll_err(LL_ERR_ARG, "task toy:%s: expected toy:color, toy:animal, toy:food or toy:tool", table);
    ll_toy_world *w;
    LL_TRY(ll_toy_world_new(&w));
    char name[64];
    snprintf(name, sizeof name, "toy:%s", table);
    ll_icl_task *t;
    ll_status st = ll_icl_task_new(name, "toy world fact table (host/train/ll_toy_data.c)", &t);
    for (int32_t id = 0; !st && id < ll_toy_vocab_size(w); id++) {
        int32_t v = ll_toy_fact(w, ti, id);
        if (v < 0) continue;
        const char *x = ll_toy_token(w, id), *y = ll_toy_token(w, v);
        st = ll_icl_task_add(t, x, strlen(x), y, strlen(y));
    }
    if (!st) st = ll_icl_task_set_classes(t, NULL, 0);
    ll_toy_world_free(w);
    if (st) ll_icl_task_free(t);
    else *out = t;
    return st;
}
