/* Decoding: ids -> token strings -> the decoder chain -> text, as Hugging Face's
 * decode_chain does, plus a streaming decoder for generation. */
#include <stdlib.h>
#include <string.h>

#include "ll_tok_internal.h"

typedef struct {
    char *s;
    size_t n;
} ll_str;

typedef struct {
    ll_str *v;
    size_t n, cap;
} ll_strs;

static void ll_strs_free(ll_strs *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i].s);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static ll_status ll_strs_push(ll_strs *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        ll_str *nv = realloc(l->v, cap * sizeof *nv);
        if (!nv) return ll_err(LL_ERR_NOMEM, "tokenizer decode: no memory");
        l->v = nv;
        l->cap = cap;
    }
    char *c = malloc(n + 1);
    if (!c) return ll_err(LL_ERR_NOMEM, "tokenizer decode: no memory");
    if (n) memcpy(c, s, n);
    c[n] = 0;
    l->v[l->n++] = (ll_str){c, n};
    return LL_OK;
}

/* Replace every `from` by `to` in one string. */
static ll_status ll_str_replace(ll_str *x, const char *from, size_t fl, const char *to, size_t tl) {
    if (!fl || !memmem(x->s, x->n, from, fl)) return LL_OK;
    size_t cap = x->n * (tl > fl ? tl : 1) + 1, w = 0;
    char *o = malloc(cap);
    if (!o) return ll_err(LL_ERR_NOMEM, "tokenizer decode: no memory");
    for (size_t i = 0; i < x->n;) {
        if (i + fl <= x->n && !memcmp(x->s + i, from, fl)) {
            memcpy(o + w, to, tl);
            w += tl;
            i += fl;
        } else {
            o[w++] = x->s[i++];
        }
    }
    o[w] = 0;
    free(x->s);
    x->s = o;
    x->n = w;
    return LL_OK;
}

static int ll_byte_token(const ll_str *x) {
    if (x->n != 6 || memcmp(x->s, "<0x", 3) || x->s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = x->s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static bool ll_valid_utf8(const char *s, size_t n) {
    ll_tok_buf b = {0};
    if (ll_tok_sanitize(&b, s, n, 0)) return false;
    bool same = b.n == n && !memcmp(b.b, s, n);
    ll_tok_buf_free(&b);
    return same;
}

static ll_status ll_dec_bytefallback(ll_strs *l) {
    ll_strs o = {0};
    ll_status st = LL_OK;
    char *bytes = malloc(l->n + 1); /* a run has at most one byte per token */
    if (!bytes) return ll_err(LL_ERR_NOMEM, "tokenizer decode: no memory");
    for (size_t i = 0; i < l->n && st == LL_OK;) {
        if (ll_byte_token(&l->v[i]) < 0) {
            st = ll_strs_push(&o, l->v[i].s, l->v[i].n);
            i++;
            continue;
        }
        size_t k = 0, j = i;
        while (j < l->n && ll_byte_token(&l->v[j]) >= 0) bytes[k++] = (char)ll_byte_token(&l->v[j++]);
        if (ll_valid_utf8(bytes, k)) {
            st = ll_strs_push(&o, bytes, k);
        } else {
            /* Hugging Face: one U+FFFD per byte token of an invalid run. */
            for (size_t q = 0; q < k && st == LL_OK; q++) st = ll_strs_push(&o, "\xEF\xBF\xBD", 3);
        }
        i = j;
    }
    free(bytes);
    if (st) {
        ll_strs_free(&o);
        return st;
    }
    ll_strs_free(l);
    *l = o;
    return LL_OK;
}

static ll_status ll_dec_fuse(ll_strs *l) {
    size_t tot = 0;
    for (size_t i = 0; i < l->n; i++) tot += l->v[i].n;
    char *o = malloc(tot + 1);
    if (!o) return ll_err(LL_ERR_NOMEM, "tokenizer decode: no memory");
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++) {
        memcpy(o + w, l->v[i].s, l->v[i].n);
        w += l->v[i].n;
    }
    o[w] = 0;
    for (size_t i = 0; i < l->n; i++) free(l->v[i].s);
    if (!l->cap) {
        l->v = malloc(sizeof *l->v);
        if (!l->v) {
            free(o);
            return ll_err(LL_ERR_NOMEM, "tokenizer decode: no memory");
        }
        l->cap = 1;
    }
    l->v[0] = (ll_str){o, w};
    l->n = 1;
    return LL_OK;
}

static void ll_dec_strip(ll_str *x, const char *c, size_t cl, int left, int right) {
    size_t a = 0, e = x->n;
    for (int k = 0; k < left && a + cl <= e && !memcmp(x->s + a, c, cl); k++) a += cl;
    for (int k = 0; k < right && e >= a + cl && !memcmp(x->s + e - cl, c, cl); k++) e -= cl;
    memmove(x->s, x->s + a, e - a);
    x->n = e - a;
    x->s[x->n] = 0;
}

/* at_start: the ids begin the text. Decoders that only act at the start of the text
 * (Strip's leading count, Metaspace's first-token space) are skipped for a window that
 * begins later, so that windows decode to exact pieces of the whole. */
static ll_status ll_decode_list(const ll_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, bool at_start,
                                ll_strs *l) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab || !t->tok[id])
            return ll_err(LL_ERR_ARG, "%s: decode: token id %d is not in the vocabulary (size %d)", t->name, (int)id,
                          (int)t->n_vocab);
        if (skip_special && ll_tokenizer_is_special(t, id)) continue;
        LL_TRY(ll_strs_push(l, t->tok[id], t->tok_len[id]));
    }
    for (int k = 0; k < t->n_dec; k++) {
        const ll_tok_dec *d = &t->dec[k];
        switch (d->kind) {
        case LL_DEC_BYTELEVEL: break; /* byte-level vocabularies are stored as raw bytes */
        case LL_DEC_REPLACE:
            for (size_t i = 0; i < l->n; i++) LL_TRY(ll_str_replace(&l->v[i], d->s, d->slen, d->s2, d->s2len));
            break;
        case LL_DEC_BYTEFALLBACK: LL_TRY(ll_dec_bytefallback(l)); break;
        case LL_DEC_FUSE: LL_TRY(ll_dec_fuse(l)); break;
        case LL_DEC_STRIP:
            for (size_t i = 0; i < l->n; i++) ll_dec_strip(&l->v[i], d->s, d->slen, at_start ? d->left : 0, d->right);
            break;
        case LL_DEC_METASPACE:
            for (size_t i = 0; i < l->n; i++) {
                LL_TRY(ll_str_replace(&l->v[i], d->s, d->slen, " ", 1));
                if (i == 0 && at_start && d->strip_first) ll_dec_strip(&l->v[i], " ", 1, 1, 0);
            }
            break;
        case LL_DEC_WORDPIECE:
            for (size_t i = 0; i < l->n; i++) {
                if (l->v[i].n >= 2 && !memcmp(l->v[i].s, "##", 2)) ll_dec_strip(&l->v[i], "#", 1, 2, 0);
                else if (i > 0) {
                    ll_str *x = &l->v[i];
                    char *o = malloc(x->n + 2);
                    if (!o) return ll_err(LL_ERR_NOMEM, "tokenizer decode: no memory");
                    o[0] = ' ';
                    memcpy(o + 1, x->s, x->n + 1);
                    free(x->s);
                    x->s = o;
                    x->n++;
                }
            }
            break;
        }
    }
    return LL_OK;
}

static ll_status ll_decode(const ll_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, bool at_start,
                           char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    ll_strs l = {0};
    ll_status st = ll_decode_list(t, ids, n, skip_special, at_start, &l);
    ll_tok_buf joined = {0}, clean = {0};
    for (size_t i = 0; i < l.n && st == LL_OK; i++) {
        if (t->dec_join_space && i > 0) st = ll_tok_buf_push(&joined, " ", 1, 0, 0);
        if (st == LL_OK) st = ll_tok_buf_push(&joined, l.v[i].s, l.v[i].n, 0, 0);
    }
    /* Bytes from byte-level tokens may not be valid UTF-8 on their own: the same
     * lossy repair Hugging Face applies (String::from_utf8_lossy). */
    if (st == LL_OK) st = ll_tok_sanitize(&clean, joined.b ? joined.b : "", joined.n, 0);
    if (st == LL_OK) st = ll_tok_buf_reserve(&clean, 1);
    if (st == LL_OK) {
        clean.b[clean.n] = 0;
        *out = clean.b;
        if (out_len) *out_len = clean.n;
        clean.b = NULL;
    }
    ll_strs_free(&l);
    ll_tok_buf_free(&joined);
    ll_tok_buf_free(&clean);
    return st;
}

ll_status ll_tokenizer_decode(const ll_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out,
                              size_t *out_len) {
    return ll_decode(t, ids, n, skip_special, true, out, out_len);
}

/* ---- streaming ----
 * The window ids[prefix:] is decoded twice per push (without and with the new ids)
 * and the difference is emitted once it is final. The window only moves after text
 * came out, so start-of-text rules (Strip, Metaspace) have settled by then. One case
 * differs from a whole decode: a run of byte tokens whose valid first character was
 * already emitted and which then turns invalid is repaired per character here ("é" +
 * U+FFFD), where Hugging Face repairs the whole run (one U+FFFD per byte). */

static ll_status ll_stream_text(ll_detok_stream *s, size_t from, size_t to, char **txt, size_t *n) {
    return ll_decode(s->t, s->ids + from, to - from, s->skip_special, from == 0, txt, n);
}

ll_status ll_detok_stream_init(ll_detok_stream *s, const ll_tokenizer *t, const int32_t *context, size_t n,
                               bool skip_special) {
    memset(s, 0, sizeof *s);
    s->t = t;
    s->skip_special = skip_special;
    s->cap = n + 64;
    s->ids = malloc(s->cap * sizeof *s->ids);
    if (!s->ids) return ll_err(LL_ERR_NOMEM, "tokenizer stream: no memory");
    if (n) memcpy(s->ids, context, n * sizeof *s->ids);
    s->n = n;
    /* A few ids of context are enough for decoders that look at neighbours (the
     * first-token space rule, byte runs); decoding the window keeps each step cheap. */
    s->read = n;
    s->prefix = n > 6 ? n - 6 : 0;
    return LL_OK;
}

static bool ll_ends_incomplete(const char *s, size_t n) {
    return n >= 3 && !memcmp(s + n - 3, "\xEF\xBF\xBD", 3);
}

static ll_status ll_stream_emit(ll_detok_stream *s, bool final, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    ll_status st = ll_stream_text(s, s->prefix, s->read, &a, &na);
    if (st == LL_OK) st = ll_stream_text(s, s->prefix, s->n, &b, &nb);
    if (st == LL_OK) {
        bool ready = nb > na && (final || !ll_ends_incomplete(b, nb));
        /* The window's old text is a prefix of the new text unless a decoder changed
         * it (it cannot for the decoders we have); be safe and emit nothing then. */
        if (ready && !memcmp(a, b, na)) {
            size_t k = nb - na;
            memmove(b, b + na, k);
            b[k] = 0;
            *out = b;
            *out_len = k;
            b = NULL;
            s->prefix = s->read;
            s->read = s->n;
        }
    }
    if (st == LL_OK && !*out) {
        *out = calloc(1, 1);
        if (!*out) st = ll_err(LL_ERR_NOMEM, "tokenizer stream: no memory");
    }
    free(a);
    free(b);
    return st;
}

ll_status ll_detok_stream_push(ll_detok_stream *s, int32_t id, char **out, size_t *out_len) {
    if (s->n == s->cap) {
        size_t cap = s->cap * 2;
        int32_t *ni = realloc(s->ids, cap * sizeof *ni);
        if (!ni) return ll_err(LL_ERR_NOMEM, "tokenizer stream: no memory");
        s->ids = ni;
        s->cap = cap;
    }
    s->ids[s->n++] = id;
    ll_status st = ll_stream_emit(s, false, out, out_len);
    if (st) s->n--;
    return st;
}

ll_status ll_detok_stream_flush(ll_detok_stream *s, char **out, size_t *out_len) {
    return ll_stream_emit(s, true, out, out_len);
}

void ll_detok_stream_free(ll_detok_stream *s) {
    free(s->ids);
    memset(s, 0, sizeof *s);
}
