/* Pre-tokenizers: cut normalized text into the pieces the model encodes one by one.
 *
 * The split behaviours follow Hugging Face's definitions exactly (which segment a
 * delimiter joins decides token boundaries, so "close enough" changes ids). */
#include <stdlib.h>
#include <string.h>

#include "ll_tok_internal.h"

typedef struct {
    size_t s, e;
    bool delim;
} ll_seg;

typedef struct {
    ll_seg *v;
    size_t n, cap;
} ll_segs;

static ll_status ll_segs_push(ll_segs *g, size_t s, size_t e, bool delim) {
    if (e <= s) return LL_OK;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 32;
        ll_seg *nv = realloc(g->v, cap * sizeof *nv);
        if (!nv) return ll_err(LL_ERR_NOMEM, "tokenizer: no memory while splitting");
        g->v = nv;
        g->cap = cap;
    }
    g->v[g->n++] = (ll_seg){s, e, delim};
    return LL_OK;
}

/* Split piece p by `re`; matches are delimiters unless `invert`. */
static ll_status ll_split(const ll_tok_regex *re, ll_split_behavior bh, bool invert, const ll_tok_buf *b,
                          ll_tok_piece p, ll_tok_pieces *out) {
    ll_segs g = {0};
    ll_status st = LL_OK;
    const char *s = b->b + p.off;
    size_t from = 0, ms, me;
    while (st == LL_OK && from < p.len && ll_tok_regex_next(re, s, p.len, from, &ms, &me)) {
        st = ll_segs_push(&g, from, ms, invert);
        if (st == LL_OK) st = ll_segs_push(&g, ms, me, !invert);
        from = me;
    }
    if (st == LL_OK) st = ll_segs_push(&g, from, p.len, invert);
    if (st) goto done;

    /* Apply the behaviour in place over g. */
    size_t k = 0;
    switch (bh) {
    case LL_SPLIT_REMOVED:
        for (size_t i = 0; i < g.n; i++)
            if (!g.v[i].delim) g.v[k++] = g.v[i];
        g.n = k;
        break;
    case LL_SPLIT_ISOLATED: break;
    case LL_SPLIT_MERGED_PREV: {
        bool prev_delim = false;
        for (size_t i = 0; i < g.n; i++) {
            if (g.v[i].delim && !prev_delim && k > 0) g.v[k - 1].e = g.v[i].e;
            else g.v[k++] = g.v[i];
            prev_delim = g.v[i].delim;
        }
        g.n = k;
        break;
    }
    case LL_SPLIT_MERGED_NEXT: {
        /* Walk backwards: a delimiter joins the segment after it unless that one is a
         * delimiter too. Results are collected from the end. */
        bool next_delim = false;
        size_t w = g.n;
        for (size_t i = g.n; i-- > 0;) {
            if (g.v[i].delim && !next_delim && w < g.n) g.v[w].s = g.v[i].s;
            else g.v[--w] = g.v[i];
            next_delim = g.v[i].delim;
        }
        memmove(g.v, g.v + w, (g.n - w) * sizeof *g.v);
        g.n -= w;
        break;
    }
    case LL_SPLIT_CONTIGUOUS: {
        bool prev_delim = false;
        for (size_t i = 0; i < g.n; i++) {
            if (g.v[i].delim && prev_delim && k > 0) g.v[k - 1].e = g.v[i].e;
            else g.v[k++] = g.v[i];
            prev_delim = g.v[i].delim;
        }
        g.n = k;
        break;
    }
    }
    for (size_t i = 0; i < g.n && st == LL_OK; i++) st = ll_tok_pieces_push(out, p.off + g.v[i].s, g.v[i].e - g.v[i].s);
done:
    free(g.v);
    return st;
}

/* Copy piece p to the arena's end with `pre` (spans empty, at the piece's start) in
 * front and every `from` byte replaced by `to` (spans of the replaced byte). */
static ll_status ll_rewrite(ll_tok_buf *b, ll_tok_piece *p, const char *pre, size_t pre_len, char from,
                            const char *to, size_t to_len) {
    size_t start = b->n;
    if (pre_len) LL_TRY(ll_tok_buf_push(b, pre, pre_len, b->os[p->off], b->os[p->off]));
    size_t run = 0;
    for (size_t i = 0; i < p->len; i++) {
        if (to && b->b[p->off + i] == from) {
            LL_TRY(ll_tok_buf_copy(b, p->off + run, i - run));
            LL_TRY(ll_tok_buf_push(b, to, to_len, b->os[p->off + i], b->oe[p->off + i]));
            run = i + 1;
        }
    }
    LL_TRY(ll_tok_buf_copy(b, p->off + run, p->len - run));
    p->off = start;
    p->len = b->n - start;
    return LL_OK;
}

static ll_status ll_pre_step(const ll_tok_step *st, ll_tok_buf *b, ll_tok_piece p, ll_tok_pieces *out) {
    switch ((ll_pre_kind)st->kind) {
    case LL_PRE_SPLIT: return ll_split(st->re, st->behavior, st->invert, b, p, out);
    case LL_PRE_BYTELEVEL:
        if (st->add_prefix_space && p.len && b->b[p.off] != ' ') LL_TRY(ll_rewrite(b, &p, " ", 1, 0, NULL, 0));
        if (st->re) return ll_split(st->re, LL_SPLIT_ISOLATED, false, b, p, out);
        return ll_tok_pieces_push(out, p.off, p.len);
    case LL_PRE_METASPACE: {
        if (!p.len) return LL_OK;
        bool has_space = memchr(b->b + p.off, ' ', p.len) != NULL;
        bool starts = p.len >= st->slen && !memcmp(b->b + p.off, st->s, st->slen);
        if (has_space) {
            LL_TRY(ll_rewrite(b, &p, NULL, 0, ' ', st->s, st->slen));
            starts = p.len >= st->slen && !memcmp(b->b + p.off, st->s, st->slen);
        }
        bool prepend = !starts && (st->scheme == LL_PREPEND_ALWAYS ||
                                   (st->scheme == LL_PREPEND_FIRST && b->os[p.off] == 0));
        if (prepend) LL_TRY(ll_rewrite(b, &p, st->s, st->slen, 0, NULL, 0));
        if (st->split) return ll_split(st->re, LL_SPLIT_MERGED_NEXT, false, b, p, out);
        return ll_tok_pieces_push(out, p.off, p.len);
    }
    }
    return LL_OK;
}

ll_status ll_tok_pretokenize(const ll_tokenizer *t, ll_tok_buf *b, ll_tok_piece in, ll_tok_pieces *out) {
    out->n = 0;
    if (!in.len) return LL_OK;
    if (t->n_pre == 0) return ll_tok_pieces_push(out, in.off, in.len);
    ll_tok_pieces cur = {0}, next = {0};
    ll_status st = ll_tok_pieces_push(&cur, in.off, in.len);
    for (int k = 0; k < t->n_pre && st == LL_OK; k++) {
        next.n = 0;
        for (size_t i = 0; i < cur.n && st == LL_OK; i++) st = ll_pre_step(&t->pre[k], b, cur.p[i], &next);
        ll_tok_pieces tmp = cur;
        cur = next;
        next = tmp;
    }
    if (st == LL_OK) {
        for (size_t i = 0; i < cur.n && st == LL_OK; i++) st = ll_tok_pieces_push(out, cur.p[i].off, cur.p[i].len);
    }
    free(cur.p);
    free(next.p);
    return st;
}
