/* The toy world and its task generators (see ll_toy_data.h and data/README.md). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "ll_toy_data.h"

/* The world is part of the model's definition, not of a run: a fixed seed. */
#define LL_TOY_WORLD_SEED 0x746F796C6C616D61ull
#define LL_TOY_MAX_VOCAB 600

enum { LL_PAD = 0, LL_BOS, LL_EOS, LL_UNK, LL_NL };

static const char *const ll_fixed[] = {"<pad>", "<s>", "</s>", "<unk>", "\n", "->", ":", ".", "?", "Question",
                                       "Answer", "what", "is", "the", "of", "A", "B", "C", "D", "which"};
static const char *const ll_tables[LL_TOY_N_TABLES] = {"color", "animal", "food", "tool"};
static const char *const ll_values[LL_TOY_N_TABLES][LL_TOY_N_VALUES] = {
    {"red", "blue", "green", "yellow", "black", "white", "orange", "purple", "brown", "pink"},
    {"cat", "dog", "horse", "mouse", "eagle", "shark", "wolf", "bear", "snake", "frog"},
    {"bread", "rice", "cheese", "soup", "salad", "cake", "pasta", "fish", "beans", "corn"},
    {"hammer", "saw", "drill", "wrench", "shovel", "knife", "axe", "brush", "needle", "rope"},
};
static const char *const ll_label_words[LL_TOY_N_LABELS] = {
    "apple", "river",  "stone",  "cloud", "tiger",  "piano", "lemon",  "rocket", "forest", "candle", "silver", "planet",
    "garden", "window", "pencil", "bridge", "castle", "dragon", "honey", "marble", "ocean", "pepper", "shadow", "violet"};
/* Label pairs tied to each rule (class 1 first), used only by the "named rule" training
 * episodes: they teach the input features the rules read (as pre-training gives an LLM
 * its prior knowledge) without ever appearing in the evaluated episodes, whose labels
 * come from the pool above and so are revealed by the demonstrations alone. */
static const char *const ll_rule_words[LL_TOY_N_RULES][2] = {
    {"long", "short"}, {"early", "late"}, {"with", "without"}, {"even", "odd"}, {"high", "low"}};
static const char *const ll_rule_names[LL_TOY_N_RULES] = {"word length >= 6", "word starts with a-m",
                                                          "word contains 'e'", "number is even", "number >= 50"};

struct ll_toy_world {
    char *tok[LL_TOY_MAX_VOCAB];
    int n;
    int32_t letter[4], arrow, colon, dot, qmark, question, answer, what, is, the, of, which;
    int32_t rel[LL_TOY_N_TABLES], value[LL_TOY_N_TABLES][LL_TOY_N_VALUES], label[LL_TOY_N_LABELS];
    int32_t rule_word[LL_TOY_N_RULES][2];
    int32_t number[100], word[LL_TOY_N_WORDS], entity[LL_TOY_N_ENTITIES];
    int fact[LL_TOY_N_TABLES][LL_TOY_N_ENTITIES]; /* value index */
    /* Inputs of each class of each rule. */
    int32_t *cls[LL_TOY_N_RULES][2];
    int n_cls[LL_TOY_N_RULES][2];
};

int32_t ll_toy_bos(void) { return LL_BOS; }
int32_t ll_toy_eos(void) { return LL_EOS; }
int32_t ll_toy_pad(void) { return LL_PAD; }
int ll_toy_vocab_size(const ll_toy_world *w) { return w->n; }
const char *ll_toy_rule_name(int rule) { return rule >= 0 && rule < LL_TOY_N_RULES ? ll_rule_names[rule] : NULL; }
const char *ll_toy_table_name(int t) { return t >= 0 && t < LL_TOY_N_TABLES ? ll_tables[t] : NULL; }
const char *ll_toy_token(const ll_toy_world *w, int32_t id) { return id >= 0 && id < w->n ? w->tok[id] : NULL; }
int32_t ll_toy_letter(const ll_toy_world *w, int i) { return w->letter[i]; }

int32_t ll_toy_id(const ll_toy_world *w, const char *s) {
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->tok[i], s)) return i;
    return -1;
}

static int32_t ll_add(ll_toy_world *w, const char *s) {
    if (w->n >= LL_TOY_MAX_VOCAB || ll_toy_id(w, s) >= 0) return -1;
    w->tok[w->n] = ll_strdup(s);
    return w->tok[w->n] ? w->n++ : -1;
}

/* A fresh lowercase word (first letter upper-cased for entities) not yet in the vocabulary. */
static int32_t ll_add_synthetic(ll_toy_world *w, ll_rng *r, int min_len, int max_len, bool capital) {
    for (;;) {
        char b[16];
        int len = min_len + ll_rng_int(r, max_len - min_len + 1);
        for (int i = 0; i < len; i++) b[i] = (char)('a' + ll_rng_int(r, 26));
        b[len] = 0;
        if (capital) b[0] = (char)(b[0] - 'a' + 'A');
        if (ll_toy_id(w, b) >= 0) continue;
        return ll_add(w, b);
    }
}

int ll_toy_rule_class(const ll_toy_world *w, int rule, int32_t id) {
    const char *s = ll_toy_token(w, id);
    if (!s || rule < 0 || rule >= LL_TOY_N_RULES) return -1;
    bool is_word = id >= w->word[0] && id <= w->word[LL_TOY_N_WORDS - 1];
    bool is_num = id >= w->number[0] && id <= w->number[99];
    if (rule < 3 && !is_word) return -1;
    if (rule >= 3 && !is_num) return -1;
    switch (rule) {
    case 0: return strlen(s) >= 6;
    case 1: return s[0] <= 'm';
    case 2: return strchr(s, 'e') != NULL;
    case 3: return atoi(s) % 2 == 0;
    default: return atoi(s) >= 50;
    }
}

int32_t ll_toy_fact(const ll_toy_world *w, int table, int32_t entity) {
    if (table < 0 || table >= LL_TOY_N_TABLES) return -1;
    int e = entity - w->entity[0];
    if (e < 0 || e >= LL_TOY_N_ENTITIES) return -1;
    return w->value[table][w->fact[table][e]];
}

void ll_toy_world_free(ll_toy_world *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->tok[i]);
    for (int r = 0; r < LL_TOY_N_RULES; r++) free(w->cls[r][0]), free(w->cls[r][1]);
    free(w);
}

ll_status ll_toy_world_new(ll_toy_world **out) {
    *out = NULL;
    ll_toy_world *w = ll_calloc(1, sizeof *w, "toy world");
    if (!w) return LL_ERR_NOMEM;
    ll_rng r = {LL_TOY_WORLD_SEED};
    bool ok = true;
    for (size_t i = 0; i < sizeof ll_fixed / sizeof *ll_fixed; i++) ok &= ll_add(w, ll_fixed[i]) == (int32_t)i;
    w->arrow = 5, w->colon = 6, w->dot = 7, w->qmark = 8, w->question = 9, w->answer = 10;
    w->what = 11, w->is = 12, w->the = 13, w->of = 14;
    for (int i = 0; i < 4; i++) w->letter[i] = 15 + i;
    w->which = 19;
    for (int t = 0; t < LL_TOY_N_TABLES; t++) {
        ok &= (w->rel[t] = ll_add(w, ll_tables[t])) >= 0;
        for (int v = 0; v < LL_TOY_N_VALUES; v++) ok &= (w->value[t][v] = ll_add(w, ll_values[t][v])) >= 0;
    }
    for (int i = 0; i < LL_TOY_N_LABELS; i++) ok &= (w->label[i] = ll_add(w, ll_label_words[i])) >= 0;
    for (int i = 0; i < LL_TOY_N_RULES; i++)
        for (int c = 0; c < 2; c++) ok &= (w->rule_word[i][c] = ll_add(w, ll_rule_words[i][c])) >= 0;
    for (int i = 0; i < 100; i++) {
        char b[8];
        snprintf(b, sizeof b, "%d", i);
        ok &= (w->number[i] = ll_add(w, b)) >= 0;
    }
    for (int i = 0; i < LL_TOY_N_WORDS; i++) ok &= (w->word[i] = ll_add_synthetic(w, &r, 3, 8, false)) >= 0;
    for (int i = 0; i < LL_TOY_N_ENTITIES; i++) ok &= (w->entity[i] = ll_add_synthetic(w, &r, 5, 8, true)) >= 0;
    for (int t = 0; t < LL_TOY_N_TABLES; t++)
        for (int e = 0; e < LL_TOY_N_ENTITIES; e++) w->fact[t][e] = ll_rng_int(&r, LL_TOY_N_VALUES);
    for (int rule = 0; rule < LL_TOY_N_RULES && ok; rule++) {
        int n = rule < 3 ? LL_TOY_N_WORDS : 100;
        const int32_t *dom = rule < 3 ? w->word : w->number;
        for (int c = 0; c < 2; c++) ok &= (w->cls[rule][c] = ll_calloc((size_t)n, sizeof(int32_t), "toy rule")) != NULL;
        for (int i = 0; i < n && ok; i++) {
            int c = ll_toy_rule_class(w, rule, dom[i]);
            w->cls[rule][c][w->n_cls[rule][c]++] = dom[i];
        }
        ok &= w->n_cls[rule][0] > 0 && w->n_cls[rule][1] > 0;
    }
    if (!ok) {
        ll_toy_world_free(w);
        return ll_err(LL_ERR_NOMEM, "toy world: building the vocabulary failed");
    }
    *out = w;
    return LL_OK;
}

static void ll_push(ll_toy_seq *s, int32_t id, uint8_t lab) {
    s->lab[s->n] = lab;
    s->ids[s->n++] = id;
}

static void ll_begin(ll_toy_seq *s, ll_toy_task task) {
    memset(s, 0, sizeof *s);
    s->task = task;
    ll_push(s, LL_BOS, false);
}

/* The training mixture in twentieths (see ll_toy_sample) and the most distinct inputs per
 * class of a "few" episode; LL_TOY_MIX="cat,few,named,map[,fewmax]" overrides them. */
static int ll_mix[5] = {5, 3, 3, 1, 4};
static void ll_mix_init(void) {
    static int done;
    if (done) return;
    done = 1;
    const char *e = getenv("LL_TOY_MIX");
    int v[5];
    int k = e ? sscanf(e, "%d,%d,%d,%d,%d", &v[0], &v[1], &v[2], &v[3], &v[4]) : 0;
    for (int i = 0; i < k && i < 5; i++) ll_mix[i] = v[i];
    if (ll_mix[4] < 1) ll_mix[4] = 1;
    if (ll_mix[4] > 4) ll_mix[4] = 4;
    if (e) fprintf(stderr, "toy mix: cat %d few %d named %d map %d (twentieths), few inputs 1..%d per class\n",
                   ll_mix[0], ll_mix[1], ll_mix[2], ll_mix[3], ll_mix[4]);
}

/* n_items items "x -> label" separated by newlines; the last is the query. */
/* named: the rule's own label pair instead of pool words. few: inputs drawn from 4 per
 * class (or 1..fewmax, LL_TOY_MIX), so inputs repeat and copying the label of an
 * identical input pays (what induction heads learn first; matching on the rule's
 * property generalizes it). */
/* fewmax > 0 overrides the mixture's number of distinct inputs per class of a few episode;
 * arrow 0 leaves the arrow out ("x label" items), -1 follows LL_TOY_NOARROW. echo_len, the
 * training mixture's row length (0 elsewhere), allows echo episodes when at least two
 * 5-token items fit (>= 11), see below. */
static void ll_cat_items_x(const ll_toy_world *w, ll_rng *r, int n_items, bool named, bool few, int fewmax, int arrow,
                           int echo_len, ll_toy_seq *s);
static void ll_cat_items(const ll_toy_world *w, ll_rng *r, int n_items, bool named, bool few, ll_toy_seq *s) {
    ll_cat_items_x(w, r, n_items, named, few, 0, -1, 0, s);
}
static void ll_cat_items_x(const ll_toy_world *w, ll_rng *r, int n_items, bool named, bool few, int fewmax, int arrow,
                           int echo_len, ll_toy_seq *s) {
    ll_begin(s, LL_TOY_CAT);
    s->rule = ll_rng_int(r, LL_TOY_N_RULES);
    /* LL_TOY_NLABELS=k (diagnostics): draw the pool labels from the first k words only. */
    static int npool = -1;
    if (npool < 0) {
        const char *e = getenv("LL_TOY_NLABELS");
        npool = e ? atoi(e) : LL_TOY_N_LABELS;
        if (npool < 2 || npool > LL_TOY_N_LABELS) npool = LL_TOY_N_LABELS;
    }
    int a = ll_rng_int(r, npool), b = ll_rng_int(r, npool - 1);
    if (b >= a) b++;
    s->labels[0] = w->label[a], s->labels[1] = w->label[b];
    if (named) s->labels[0] = w->rule_word[s->rule][1], s->labels[1] = w->rule_word[s->rule][0];
    int32_t pick[2][4];
    /* fixed 4 (mix default) or 1..fewmax distinct inputs per class */
    int fm = fewmax > 0 ? fewmax : ll_mix[4];
    int nd = few && fm != 4 ? 1 + ll_rng_int(r, fm) : 4;
    for (int c = 0; c < 2; c++)
        for (int j = 0; j < 4; j++) pick[c][j] = w->cls[s->rule][c][ll_rng_int(r, w->n_cls[s->rule][c])];
    /* LL_TOY_NOARROW=p (diagnostics): with probability p (1 when given without a value)
     * an episode's items are "x label", without the arrow. */
    static double noarrow_p = -1;
    if (noarrow_p < 0) {
        const char *e = getenv("LL_TOY_NOARROW");
        noarrow_p = !e ? 0 : *e && atof(e) > 0 && atof(e) < 1 ? atof(e) : 1;
    }
    bool noarrow = arrow >= 0 ? !arrow
                              : noarrow_p >= 1 || (noarrow_p > 0 && ll_rng_int(r, 1000) < (int)(noarrow_p * 1000));
    /* Echo episodes (training mixture only, never named ones): items are "x -> label x",
     * with loss on the echoed input. Predicting it at the label position needs the input
     * carried two tokens forward into that position, the hop that in-context matching
     * depends on; without it the label positions hold nothing of their input's
     * properties and categorization saturates near 72% (data/README.md, part 4).
     * LL_TOY_ECHO=p (diagnostics) sets the share, default LL_TOY_ECHO_SHARE. */
    static double echo_p = -1;
    if (echo_p < 0) {
        const char *e = getenv("LL_TOY_ECHO");
        echo_p = e ? atof(e) : LL_TOY_ECHO_SHARE;
        if (e) fprintf(stderr, "toy mix: echo episodes %g of categorization\n", echo_p);
    }
    bool echo = echo_len >= 11 && !named && echo_p > 0 && !noarrow && ll_rng_int(r, 1000) < (int)(echo_p * 1000);
    if (echo && n_items > (echo_len - 1) / 5) n_items = (echo_len - 1) / 5;
    for (int i = 0; i < n_items; i++) {
        /* Classes drawn evenly, then an input of that class: every rule is balanced
         * whatever the base rate of its feature. */
        int c = ll_rng_int(r, 2);
        int32_t x = few ? pick[c][ll_rng_int(r, nd)] : w->cls[s->rule][c][ll_rng_int(r, w->n_cls[s->rule][c])];
        if (i) ll_push(s, LL_NL, false);
        ll_push(s, x, false);
        if (!noarrow) ll_push(s, w->arrow, false);
        ll_push(s, s->labels[c], true);
        if (echo) ll_push(s, x, true);
    }
}

static void ll_map_items(const ll_toy_world *w, ll_rng *r, int n_items, ll_toy_seq *s) {
    ll_begin(s, LL_TOY_MAP);
    s->rule = ll_rng_int(r, LL_TOY_N_TABLES);
    int used[LL_TOY_N_ENTITIES] = {0};
    for (int i = 0; i < n_items && i < LL_TOY_N_ENTITIES; i++) {
        int e;
        do e = ll_rng_int(r, LL_TOY_N_ENTITIES);
        while (used[e]);
        used[e] = 1;
        if (i) ll_push(s, LL_NL, false);
        ll_push(s, w->entity[e], false);
        ll_push(s, w->arrow, false);
        ll_push(s, w->value[s->rule][w->fact[s->rule][e]], true);
    }
}

/* "Question: what is the REL of ENT?\nA. v\nB. v\nC. v\nD. v\nAnswer: X" (29 tokens).
 * Two easier forms train its two steps separately: kind 1 "Question: what is the REL of
 * ENT?\nAnswer: v" (recall the fact; 13 tokens) and kind 2 "Question: which is v?\nA. ..."
 * (find the option that holds a given value; 26 tokens). Kind 0 is the real question. */
static void ll_mcq_items_kind(const ll_toy_world *w, ll_rng *r, int kind, ll_toy_seq *s);
static void ll_mcq_items(const ll_toy_world *w, ll_rng *r, ll_toy_seq *s) { ll_mcq_items_kind(w, r, 0, s); }
static void ll_mcq_items_kind(const ll_toy_world *w, ll_rng *r, int kind, ll_toy_seq *s) {
    int t = ll_rng_int(r, LL_TOY_N_TABLES), e = ll_rng_int(r, LL_TOY_N_ENTITIES);
    s->rule = t;
    int truth = w->fact[t][e], opt[4], ans = ll_rng_int(r, 4);
    for (int i = 0; i < 4; i++) {
        if (i == ans) {
            opt[i] = truth;
            continue;
        }
        for (;;) {
            int v = ll_rng_int(r, LL_TOY_N_VALUES), dup = v == truth;
            for (int j = 0; j < i; j++) dup |= j != ans && opt[j] == v;
            if (!dup) {
                opt[i] = v;
                break;
            }
        }
    }
    if (kind == 2) {
        const int32_t head[] = {w->question, w->colon, w->which, w->is, w->value[t][truth], w->qmark};
        for (size_t i = 0; i < sizeof head / sizeof *head; i++) ll_push(s, head[i], 0);
    } else {
        const int32_t head[] = {w->question, w->colon, w->what, w->is, w->the, w->rel[t], w->of, w->entity[e], w->qmark};
        for (size_t i = 0; i < sizeof head / sizeof *head; i++) ll_push(s, head[i], 0);
    }
    if (kind == 1) {
        ll_push(s, LL_NL, 0);
        ll_push(s, w->answer, 0);
        ll_push(s, w->colon, 0);
        ll_push(s, w->value[t][truth], 1);
        return;
    }
    for (int i = 0; i < 4; i++) {
        ll_push(s, LL_NL, false);
        ll_push(s, w->letter[i], false);
        ll_push(s, w->dot, false);
        ll_push(s, w->value[t][opt[i]], false);
    }
    ll_push(s, LL_NL, false);
    ll_push(s, w->answer, false);
    ll_push(s, w->colon, false);
    ll_push(s, w->letter[ans], true);
    /* A question is 29 tokens for one supervised answer; weigh it like several labels. */
    s->lab[s->n - 1] = LL_TOY_MCQ_WEIGHT;
}

void ll_toy_cat(const ll_toy_world *w, ll_rng *r, int k, ll_toy_seq *s) {
    if (k > (LL_TOY_MAX_TOKENS - 4) / 4) k = (LL_TOY_MAX_TOKENS - 4) / 4;
    /* Diagnostics: LL_TOY_EVAL_CAT=few (repeated inputs, as the mixture's few episodes) or
     * named (the rules' own label words) evaluates those variants instead. */
    const char *e = getenv("LL_TOY_EVAL_CAT");
    ll_mix_init();
    ll_cat_items(w, r, k + 1, e && !strcmp(e, "named"), e && !strcmp(e, "few"), s);
}

void ll_toy_map(const ll_toy_world *w, ll_rng *r, int k, ll_toy_seq *s) {
    if (k > LL_TOY_N_ENTITIES - 1) k = LL_TOY_N_ENTITIES - 1;
    if (k > (LL_TOY_MAX_TOKENS - 4) / 4) k = (LL_TOY_MAX_TOKENS - 4) / 4;
    ll_map_items(w, r, k + 1, s);
}

void ll_toy_mcq(const ll_toy_world *w, ll_rng *r, ll_toy_seq *s) {
    ll_begin(s, LL_TOY_MCQ);
    ll_mcq_items(w, r, s);
}

/* Questions packed while they fit: half real ones, a quarter of each easier form. */
static void ll_mcq_pack(const ll_toy_world *w, ll_rng *r, int max_len, ll_toy_seq *s) {
    static const int len[3] = {29, 13, 26};
    ll_begin(s, LL_TOY_MCQ);
    for (int first = 1;; first = 0) {
        int v = ll_rng_int(r, 4), kind = v < 2 ? 0 : v - 1;
        if (s->n + !first + len[kind] > max_len) break;
        if (!first) ll_push(s, LL_NL, 0);
        ll_mcq_items_kind(w, r, kind, s);
    }
}

/* The curriculum's copying stages: 16 in 20 sequences are categorization episodes with ONE
 * input per class (so every query input appeared before and copying its label is the whole
 * task), the rest mapping (2) and packed questions (2). In the first stage the items have
 * no arrow: the label follows its input directly, the offset-1 pattern that induction
 * heads form on quickly; the second stage puts the arrow back, which moves the input two
 * tokens before its label, and the formed circuit adapts within a few hundred steps.
 * Without these stages the matching circuit sits behind a plateau longer than the whole
 * training budget (data/README.md, Findings). */
/* Copying items over k (input, label) pairs drawn for the episode: k distinct inputs
 * (words or numbers) each with its own pool label, items drawn from the pairs. */
static void ll_copy_items(const ll_toy_world *w, ll_rng *r, int n_items, int k, bool arrow, ll_toy_seq *s) {
    ll_begin(s, LL_TOY_CAT);
    s->rule = -1;
    if (k < 1) k = 1;
    if (k > LL_TOY_N_LABELS) k = LL_TOY_N_LABELS;
    int32_t in[LL_TOY_N_LABELS] = {0}, lab[LL_TOY_N_LABELS] = {0};
    bool words = ll_rng_int(r, 2);
    for (int i = 0; i < k; i++) {
        int dup;
        do {
            in[i] = words ? w->word[ll_rng_int(r, LL_TOY_N_WORDS)] : w->number[ll_rng_int(r, 100)];
            lab[i] = w->label[ll_rng_int(r, LL_TOY_N_LABELS)];
            dup = 0;
            for (int j = 0; j < i; j++) dup |= in[j] == in[i] || lab[j] == lab[i];
        } while (dup);
    }
    s->labels[0] = lab[0], s->labels[1] = lab[k > 1];
    for (int i = 0; i < n_items; i++) {
        int c = ll_rng_int(r, k);
        if (i) ll_push(s, LL_NL, false);
        ll_push(s, in[c], false);
        if (arrow) ll_push(s, w->arrow, false);
        ll_push(s, lab[c], true);
    }
}

static void ll_toy_sample_copy(const ll_toy_world *w, ll_rng *r, int max_len, bool arrow, ll_toy_seq *s) {
    int u = ll_rng_int(r, 20), cap = max_len / 4;
    if (cap < 1) cap = 1;
    static int klo = -1, khi;
    if (klo < 0) {
        const char *e = getenv("LL_TOY_COPYK");
        klo = khi = 0;
        if (e && sscanf(e, "%d,%d", &klo, &khi) != 2) klo = khi = 0;
        if (klo < 2 || khi < klo || khi > 12) klo = khi = 0;
    }
    if (klo && (u < 16 || max_len < 30)) {
        int n = 17 + ll_rng_int(r, 3);
        ll_copy_items(w, r, n < cap ? n : cap, klo + ll_rng_int(r, khi - klo + 1), arrow, s);
    } else if (u < 16 || max_len < 30) {
        /* Items are 3 tokens with their newline without the arrow, 4 with it. */
        int n = 17 + ll_rng_int(r, 3), icap = arrow ? cap : (max_len + 1) / 3;
        ll_cat_items_x(w, r, n < icap ? n : icap, false, true, 1, arrow, 0, s);
    } else if (u < 18) {
        int n = 6 + ll_rng_int(r, 11);
        ll_map_items(w, r, n < cap ? n : cap, s);
    } else {
        ll_mcq_pack(w, r, max_len, s);
    }
}

void ll_toy_sample_stage(const ll_toy_world *w, ll_rng *r, int max_len, ll_toy_stage stage, ll_toy_seq *s) {
    if (max_len > LL_TOY_MAX_TOKENS) max_len = LL_TOY_MAX_TOKENS;
    if (stage == LL_TOY_STAGE_COPY_NOARROW || stage == LL_TOY_STAGE_COPY)
        ll_toy_sample_copy(w, r, max_len, stage == LL_TOY_STAGE_COPY, s);
    else
        ll_toy_sample(w, r, max_len, s);
}

void ll_toy_sample(const ll_toy_world *w, ll_rng *r, int max_len, ll_toy_seq *s) {
    if (max_len > LL_TOY_MAX_TOKENS) max_len = LL_TOY_MAX_TOKENS;
    /* In twentieths: 5 categorization, 3 with repeated inputs, 3 with the rule's own
     * labels, 1 mapping, 8 packed questions; half the first two kinds are echo episodes. */
    ll_mix_init();
    int u = ll_rng_int(r, 20), cap = max_len / 4; /* items that fit: 4 tokens each with BOS */
    int e1 = ll_mix[0], e2 = e1 + ll_mix[1], e3 = e2 + ll_mix[2], e4 = e3 + ll_mix[3];
    if (cap < 1) cap = 1;
    if (u < e3 || max_len < 30) {
        int n = 17 + ll_rng_int(r, 3);
        ll_cat_items_x(w, r, n < cap ? n : cap, u >= e2 && u < e3, u >= e1 && u < e2, 0, -1, max_len, s);
    } else if (u < e4) {
        int n = 6 + ll_rng_int(r, 11);
        ll_map_items(w, r, n < cap ? n : cap, s);
    } else {
        ll_mcq_pack(w, r, max_len, s);
    }
}

ll_status ll_toy_render(const ll_toy_world *w, const int32_t *ids, int from, int to, char **out) {
    size_t cap = 1;
    for (int i = from; i < to; i++) {
        const char *t = ll_toy_token(w, ids[i]);
        if (!t) return ll_err(LL_ERR_ARG, "toy render: token id %d is outside the vocabulary", ids[i]);
        cap += strlen(t) + 1;
    }
    char *s = malloc(cap), *p = s;
    if (!s) return ll_err(LL_ERR_NOMEM, "toy render: no memory");
    bool after_nl = true;
    for (int i = from; i < to; i++) {
        if (ids[i] == LL_BOS) continue;
        const char *t = w->tok[ids[i]];
        bool tight = ids[i] == LL_NL || ids[i] == w->colon || ids[i] == w->dot || ids[i] == w->qmark;
        if (!after_nl && !tight) *p++ = ' ';
        size_t l = strlen(t);
        memcpy(p, t, l);
        p += l;
        after_nl = ids[i] == LL_NL;
    }
    *p = 0;
    *out = s;
    return LL_OK;
}

ll_status ll_toy_tokenizer_json(const ll_toy_world *w, char **tokenizer, char **config) {
    *tokenizer = *config = NULL;
    cJSON *root = cJSON_CreateObject(), *added = cJSON_CreateArray(), *vocab = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    for (int i = 0; i <= LL_NL; i++) {
        /* "\n" is an added (not special) token: the Whitespace pre-tokenizer would drop it. */
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", i);
        cJSON_AddStringToObject(a, "content", w->tok[i]);
        cJSON_AddBoolToObject(a, "single_word", false);
        cJSON_AddBoolToObject(a, "lstrip", false);
        cJSON_AddBoolToObject(a, "rstrip", false);
        cJSON_AddBoolToObject(a, "normalized", false);
        cJSON_AddBoolToObject(a, "special", i != LL_NL);
        cJSON_AddItemToArray(added, a);
    }
    cJSON_AddItemToObject(root, "added_tokens", added);
    cJSON_AddNullToObject(root, "normalizer");
    cJSON *pre = cJSON_CreateObject();
    cJSON_AddStringToObject(pre, "type", "Whitespace");
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON *post = cJSON_Parse("{\"type\":\"TemplateProcessing\","
                              "\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
                              "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
                              "\"pair\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
                              "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
                              "{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":1}},"
                              "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],"
                              "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}}");
    cJSON_AddItemToObject(root, "post_processor", post);
    cJSON_AddNullToObject(root, "decoder");
    cJSON *model = cJSON_CreateObject();
    cJSON_AddStringToObject(model, "type", "WordLevel");
    for (int i = 0; i < w->n; i++) cJSON_AddNumberToObject(vocab, w->tok[i], i);
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddStringToObject(model, "unk_token", "<unk>");
    cJSON_AddItemToObject(root, "model", model);
    *tokenizer = cJSON_Print(root);
    cJSON_Delete(root);
    *config = ll_strdup("{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"bos_token\": \"<s>\",\n"
                        "  \"eos_token\": \"</s>\",\n  \"unk_token\": \"<unk>\",\n  \"pad_token\": \"<pad>\",\n"
                        "  \"model_max_length\": 128\n}\n");
    if (!*tokenizer || !*config) {
        free(*tokenizer), free(*config);
        *tokenizer = *config = NULL;
        return ll_err(LL_ERR_NOMEM, "toy tokenizer: no memory");
    }
    return LL_OK;
}
