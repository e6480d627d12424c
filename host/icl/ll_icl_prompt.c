/* ICL prompt assembly: text from a template, one tokenization, and the token span of
 * every segment found from the tokenizer's byte offsets (see ll_icl_prompt.h). */
#include "ll_icl_prompt.h"

#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"

static const struct {
    const char *name, *prefix, *demo;
} ll_templates[] = {
    {"default", "", "{input} -> {label}\n"},
    {"hendel", "", "example:{input}->{label}\n"},
    {"todd", "", "Q: {input}\nA: {label}\n\n"},
    {"wang", "", "Review: {input}\nSentiment: {label}\n"},
    {"wang-trec", "", "Question: {input}\nAnswer Type: {label}\n"},
    {"wang-agnews", "", "Article: {input}\nAnswer: {label}\n"},
    {"nli", "", "{input}\nAnswer: {label}\n"},
};
#define LL_N_TEMPLATES (sizeof ll_templates / sizeof *ll_templates)

const char *const *ll_icl_template_names(void) {
    static const char *names[LL_N_TEMPLATES + 1];
    for (size_t i = 0; i < LL_N_TEMPLATES; i++) names[i] = ll_templates[i].name;
    names[LL_N_TEMPLATES] = NULL;
    return names;
}

/* Find the first of two spellings of a placeholder; *len gets its length. */
static const char *ll_find_ph(const char *s, const char *a, const char *b, size_t *len) {
    const char *pa = strstr(s, a), *pb = strstr(s, b);
    if (pa && (!pb || pa <= pb)) {
        *len = strlen(a);
        return pa;
    }
    if (pb) *len = strlen(b);
    return pb;
}

/* pre / mid / post of a template, as offsets into tp->demo. */
typedef struct {
    size_t pre_len, mid_off, mid_len, post_off, post_len;
} ll_tsplit;

static ll_status ll_split(const ll_icl_template *tp, ll_tsplit *s) {
    size_t li, ll;
    const char *d = tp->demo;
    const char *pi = ll_find_ph(d, "{input}", "{x}", &li);
    const char *pl = ll_find_ph(d, "{label}", "{y}", &ll);
    if (!pi || !pl)
        return ll_err(LL_ERR_ARG, "template \"%s\": needs both {input} (or {x}) and {label} (or {y}), found \"%s\"",
                      tp->name, d);
    if (pl < pi)
        return ll_err(LL_ERR_ARG, "template \"%s\": {label} must come after {input} (\"%s\")", tp->name, d);
    size_t dummy;
    if (ll_find_ph(pl + ll, "{input}", "{x}", &dummy) || ll_find_ph(pl + ll, "{label}", "{y}", &dummy) ||
        ll_find_ph(pi + li, "{input}", "{x}", &dummy))
        return ll_err(LL_ERR_ARG, "template \"%s\": each placeholder may appear once (\"%s\")", tp->name, d);
    s->pre_len = (size_t)(pi - d);
    s->mid_off = s->pre_len + li;
    s->mid_len = (size_t)(pl - d) - s->mid_off;
    s->post_off = (size_t)(pl - d) + ll;
    s->post_len = strlen(d) - s->post_off;
    return LL_OK;
}

ll_status ll_icl_template_get(const char *s, ll_icl_template *out) {
    if (!s || !*s) s = "default";
    for (size_t i = 0; i < LL_N_TEMPLATES; i++)
        if (!strcmp(s, ll_templates[i].name)) {
            *out = (ll_icl_template){ll_templates[i].name, ll_templates[i].prefix, ll_templates[i].demo};
            return LL_OK;
        }
    size_t n;
    if (!ll_find_ph(s, "{input}", "{x}", &n) || !ll_find_ph(s, "{label}", "{y}", &n)) {
        char names[256] = "";
        for (size_t i = 0; i < LL_N_TEMPLATES; i++) {
            strcat(names, i ? ", " : "");
            strcat(names, ll_templates[i].name);
        }
        return ll_err(LL_ERR_ARG,
                      "template \"%s\": not a bundled template (%s) and not a custom one (a string with {input} "
                      "and {label})",
                      s, names);
    }
    *out = (ll_icl_template){"custom", "", s};
    ll_tsplit sp;
    return ll_split(out, &sp);
}

ll_status ll_icl_label_pos_parse(const char *s, ll_icl_label_pos *out) {
    if (!strcmp(s, "first")) *out = LL_ICL_LABEL_FIRST;
    else if (!strcmp(s, "last")) *out = LL_ICL_LABEL_LAST;
    else if (!strcmp(s, "separator") || !strcmp(s, "sep")) *out = LL_ICL_LABEL_SEP;
    else return ll_err(LL_ERR_ARG, "label position \"%s\": expected first, last or separator", s);
    return LL_OK;
}

const char *ll_icl_label_pos_name(ll_icl_label_pos p) {
    return p == LL_ICL_LABEL_FIRST ? "first" : p == LL_ICL_LABEL_LAST ? "last" : "separator";
}

ll_status ll_icl_bos_parse(const char *s, ll_icl_bos *out) {
    if (!strcmp(s, "auto")) *out = LL_ICL_BOS_AUTO;
    else if (!strcmp(s, "yes")) *out = LL_ICL_BOS_YES;
    else if (!strcmp(s, "no")) *out = LL_ICL_BOS_NO;
    else return ll_err(LL_ERR_ARG, "BOS \"%s\": expected auto, yes or no", s);
    return LL_OK;
}

const char *ll_icl_bos_name(ll_icl_bos b) { return b == LL_ICL_BOS_AUTO ? "auto" : b == LL_ICL_BOS_YES ? "yes" : "no"; }

/* ---- text assembly --------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} ll_sbuf;

static void ll_sb_put(ll_sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

/* Byte ranges of one item's segments. */
typedef struct {
    size_t in_lo, in_hi, sep_lo, sep_hi, lab_lo, lab_hi;
} ll_bytes;

/* Append pre input sep [label post] for one item; sep_len excludes mid's trailing spaces. */
static void ll_put_item(ll_sbuf *b, const ll_icl_template *tp, const ll_tsplit *s, size_t sep_len,
                        const ll_icl_item *it, bool with_label, ll_bytes *r) {
    /* pre's trailing spaces go with the input, as mid's go with the label (" hot"). */
    size_t pre_core = s->pre_len;
    while (pre_core > 0 && tp->demo[pre_core - 1] == ' ') pre_core--;
    ll_sb_put(b, tp->demo, pre_core);
    r->in_lo = b->n;
    ll_sb_put(b, tp->demo + pre_core, s->pre_len - pre_core);
    ll_sb_put(b, it->input, strlen(it->input));
    r->in_hi = r->sep_lo = b->n;
    ll_sb_put(b, tp->demo + s->mid_off, sep_len);
    r->sep_hi = r->lab_lo = r->lab_hi = b->n;
    if (!with_label) return;
    ll_sb_put(b, tp->demo + s->mid_off + sep_len, s->mid_len - sep_len);
    ll_sb_put(b, it->label ? it->label : "", it->label ? strlen(it->label) : 0);
    r->lab_hi = b->n;
    ll_sb_put(b, tp->demo + s->post_off, s->post_len);
}

static size_t ll_sep_len(const ll_icl_template *tp, const ll_tsplit *s) {
    size_t n = s->mid_len;
    while (n > 0 && tp->demo[s->mid_off + n - 1] == ' ') n--;
    return n;
}

/* Tokens [lo, hi] whose byte spans overlap [a, b); -1/-1 when none. */
static void ll_overlap(const ll_encoding *e, size_t skip, size_t a, size_t b, int *lo, int *hi) {
    *lo = *hi = -1;
    if (a >= b) return;
    for (size_t i = skip; i < e->n; i++) {
        if (e->start[i] >= e->end[i]) continue;
        if ((size_t)e->end[i] > a && (size_t)e->start[i] < b) {
            if (*lo < 0) *lo = (int)i;
            *hi = (int)i;
        }
    }
}

static ll_status ll_encode(const ll_tokenizer *t, const char *text, size_t len, ll_icl_bos bos, ll_encoding *e,
                           bool *has_bos) {
    *has_bos = false;
    int32_t b = ll_tokenizer_bos(t);
    bool want = bos == LL_ICL_BOS_YES || (bos == LL_ICL_BOS_AUTO && ll_tokenizer_adds_bos(t) && b >= 0);
    if (bos == LL_ICL_BOS_YES && b < 0)
        return ll_err(LL_ERR_ARG, "BOS \"yes\": this tokenizer has no BOS token (%s)", ll_tokenizer_describe(t));
    if (want) {
        /* BOS first, with an empty span, as the tokenizer itself would place it. */
        if (e->cap < 1) {
            e->ids = malloc(16 * sizeof *e->ids);
            e->start = malloc(16 * sizeof *e->start);
            e->end = malloc(16 * sizeof *e->end);
            if (!e->ids || !e->start || !e->end) return ll_err(LL_ERR_NOMEM, "ICL prompt: no memory for tokens");
            e->cap = 16;
        }
        e->ids[0] = b;
        e->start[0] = e->end[0] = 0;
        e->n = 1;
        *has_bos = true;
    }
    /* Special tokens written in the data are plain text: a review may contain "<s>". */
    return ll_tokenizer_encode(t, text, len, 0, e);
}

ll_status ll_icl_prompt_build(const ll_tokenizer *t, const ll_icl_template *tp, const ll_icl_item *demos, int k,
                              const ll_icl_item *query, const ll_icl_prompt_opts *opts, ll_icl_prompt *out) {
    memset(out, 0, sizeof *out);
    ll_icl_bos bos = opts ? opts->bos : LL_ICL_BOS_AUTO;
    if (k < 0 || (k > 0 && !demos) || !query || !query->input)
        return ll_err(LL_ERR_ARG, "ICL prompt: need k >= 0 demonstrations (found %d) and a query", k);
    for (int i = 0; i < k; i++)
        if (!demos[i].input || !demos[i].label)
            return ll_err(LL_ERR_ARG, "ICL prompt: demonstration %d has no %s", i, demos[i].input ? "label" : "input");
    ll_tsplit s;
    LL_TRY(ll_split(tp, &s));
    size_t sep_len = ll_sep_len(tp, &s);
    ll_bytes *br = calloc((size_t)k + 1, sizeof *br);
    if (!br) return ll_err(LL_ERR_NOMEM, "ICL prompt: no memory");
    ll_sbuf b = {0};
    ll_sb_put(&b, tp->prefix ? tp->prefix : "", tp->prefix ? strlen(tp->prefix) : 0);
    for (int i = 0; i < k; i++) ll_put_item(&b, tp, &s, sep_len, &demos[i], true, &br[i]);
    ll_put_item(&b, tp, &s, sep_len, query, false, &br[k]);
    ll_encoding e = {0};
    ll_status st = LL_OK;
    if (b.oom) {
        st = ll_err(LL_ERR_NOMEM, "ICL prompt: no memory for the text");
        goto fail;
    }
    bool has_bos;
    if ((st = ll_encode(t, b.p, b.n, bos, &e, &has_bos))) goto fail;
    size_t skip = has_bos ? 1 : 0;
    if (opts && opts->max_tokens > 0 && e.n > (size_t)opts->max_tokens) {
        st = ll_err(LL_ERR_ARG,
                    "ICL prompt: prompt of %zu tokens with %d demonstrations exceeds the model's context of %d tokens; "
                    "use fewer demonstrations (--k)",
                    e.n, k, opts->max_tokens);
        goto fail;
    }
    if (e.n <= skip) {
        st = ll_err(LL_ERR_ARG, "ICL prompt: the prompt produced no tokens");
        goto fail;
    }
    out->demo = calloc((size_t)(k ? k : 1), sizeof *out->demo);
    out->ids = malloc(e.n * sizeof *out->ids);
    if (!out->demo || !out->ids) {
        st = ll_err(LL_ERR_NOMEM, "ICL prompt: no memory");
        goto fail;
    }
    memcpy(out->ids, e.ids, e.n * sizeof *out->ids);
    out->n = (int)e.n;
    out->k = k;
    out->has_bos = has_bos;
    out->query_pos = out->n - 1;
    for (int i = 0; i <= k; i++) {
        ll_icl_span *sp = i < k ? &out->demo[i] : &out->query;
        ll_overlap(&e, skip, br[i].in_lo, br[i].in_hi, &sp->in_lo, &sp->in_hi);
        ll_overlap(&e, skip, br[i].sep_lo, br[i].sep_hi, &sp->sep_lo, &sp->sep_hi);
        ll_overlap(&e, skip, br[i].lab_lo, br[i].lab_hi, &sp->lab_lo, &sp->lab_hi);
    }
    /* Straddling tokens: their span crosses a segment boundary. */
    for (size_t j = skip; j < e.n; j++) {
        size_t a = (size_t)e.start[j], z = (size_t)e.end[j];
        if (a >= z) continue;
        for (int i = 0; i <= k; i++) {
            size_t cuts[4] = {br[i].in_lo, br[i].in_hi, br[i].sep_hi, br[i].lab_hi};
            for (int c = 0; c < 4; c++)
                if (cuts[c] > a && cuts[c] < z) {
                    out->n_straddle++;
                    c = 4;
                    i = k + 1;
                }
        }
    }
    /* The answer tokens: the query's label tokenized in context. */
    if (query->label) {
        ll_bytes q2;
        ll_sbuf b2 = {0};
        ll_sb_put(&b2, b.p, b.n);
        size_t pre_core = s.pre_len;
        while (pre_core > 0 && tp->demo[pre_core - 1] == ' ') pre_core--;
        b2.n = br[k].in_lo - pre_core; /* rewrite the query item with its label */
        ll_put_item(&b2, tp, &s, sep_len, query, true, &q2);
        ll_encoding e2 = {0};
        bool hb2;
        if (b2.oom) st = ll_err(LL_ERR_NOMEM, "ICL prompt: no memory");
        else st = ll_encode(t, b2.p, b2.n, bos, &e2, &hb2);
        if (!st) {
            int lo, hi;
            ll_overlap(&e2, skip, q2.lab_lo, q2.lab_hi, &lo, &hi);
            out->answer_clean = e2.n > e.n && !memcmp(e2.ids, e.ids, e.n * sizeof *e.ids) && lo == (int)e.n;
            if (lo >= 0) {
                out->n_answer = hi - lo + 1;
                out->answer = malloc((size_t)out->n_answer * sizeof *out->answer);
                if (!out->answer) st = ll_err(LL_ERR_NOMEM, "ICL prompt: no memory");
                else memcpy(out->answer, e2.ids + lo, (size_t)out->n_answer * sizeof *out->answer);
            } else {
                st = ll_err(LL_ERR_ARG, "ICL prompt: the query's label \"%s\" produced no token", query->label);
            }
        }
        ll_encoding_free(&e2);
        free(b2.p);
        if (st) goto fail;
    }
    out->text = b.p;
    out->text_len = b.n;
    ll_encoding_free(&e);
    free(br);
    return LL_OK;
fail:
    ll_encoding_free(&e);
    free(b.p);
    free(br);
    ll_icl_prompt_free(out);
    return st;
}

void ll_icl_prompt_free(ll_icl_prompt *p) {
    if (!p) return;
    free(p->text);
    free(p->ids);
    free(p->demo);
    free(p->answer);
    memset(p, 0, sizeof *p);
}

int ll_icl_label_position(const ll_icl_prompt *p, int i, ll_icl_label_pos mode) {
    if (i < 0 || i >= p->k) return -1;
    const ll_icl_span *s = &p->demo[i];
    return mode == LL_ICL_LABEL_FIRST ? s->lab_lo : mode == LL_ICL_LABEL_LAST ? s->lab_hi : s->sep_hi;
}

ll_status ll_icl_label_first_token(const ll_tokenizer *t, const ll_icl_template *tp, const char *label,
                                   const ll_icl_prompt_opts *opts, int32_t *out) {
    /* A fixed, neutral query input: the label's first token depends on what precedes it
     * only through the separator, which the template fixes. */
    ll_icl_item q = {"x", label};
    ll_icl_prompt p;
    LL_TRY(ll_icl_prompt_build(t, tp, NULL, 0, &q, opts, &p));
    *out = p.answer[0];
    ll_icl_prompt_free(&p);
    return LL_OK;
}

/* splitmix64, local so the ICL code does not depend on the trainer. */
static uint64_t ll_mix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void ll_icl_dummy_ids(const ll_icl_prompt *p, int32_t in_fill, int32_t lab_fill, const int32_t *pool, int n_pool,
                      uint64_t rand_seed, int32_t *out) {
    memcpy(out, p->ids, (size_t)p->n * sizeof *out);
    uint64_t s = rand_seed;
    for (int i = 0; i < p->k; i++) {
        const ll_icl_span *d = &p->demo[i];
        for (int j = d->in_lo; j >= 0 && j <= d->in_hi; j++)
            out[j] = rand_seed && n_pool > 0 ? pool[ll_mix64(&s) % (uint64_t)n_pool] : in_fill;
        for (int j = d->lab_lo; j >= 0 && j <= d->lab_hi; j++)
            out[j] = rand_seed && n_pool > 0 ? pool[ll_mix64(&s) % (uint64_t)n_pool] : lab_fill;
    }
}

int32_t ll_icl_filler_token(const ll_tokenizer *t, const char *const *words) {
    for (int i = 0; words && words[i]; i++) {
        ll_encoding e = {0};
        if (ll_tokenizer_encode(t, words[i], strlen(words[i]), 0, &e) == LL_OK && e.n == 1 &&
            !ll_tokenizer_is_special(t, e.ids[0])) {
            int32_t id = e.ids[0];
            ll_encoding_free(&e);
            return id;
        }
        ll_encoding_free(&e);
    }
    int32_t unk = ll_tokenizer_token_id(t, "<unk>", 5);
    return unk >= 0 ? unk : 0;
}
