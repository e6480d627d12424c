/* Normalizers: rewrite a piece of text, keeping each output byte's input span.
 *
 * A step appends the rewritten piece to the arena and moves the piece there, so
 * earlier versions stay valid for anyone still holding their range. Unicode
 * normalization and case mapping come from libunistring. */
#include <stdlib.h>
#include <string.h>
#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>

#include "ll_tok_internal.h"

static uint32_t ll_cp_at(const char *s, size_t *len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t l = ll_utf8_len(u[0]);
    *len = l;
    switch (l) {
    case 1: return u[0];
    case 2: return ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
    case 3: return ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
    default:
        return ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) | ((uint32_t)(u[2] & 0x3F) << 6) |
               (u[3] & 0x3F);
    }
}

static int64_t ll_span_lo(const ll_tok_buf *b, size_t a, size_t e) {
    for (size_t i = a; i < e; i++)
        if (b->oe[i] > b->os[i]) return b->os[i];
    return b->os[a];
}

static int64_t ll_span_hi(const ll_tok_buf *b, size_t a, size_t e) {
    for (size_t i = e; i > a; i--)
        if (b->oe[i - 1] > b->os[i - 1]) return b->oe[i - 1];
    return b->os[a];
}

/* Unicode normal forms, chunk by chunk: a chunk runs from one ASCII character to the
 * next. No ASCII character composes with what precedes it or decomposes, so the
 * normal form of the text is the concatenation of the chunks' normal forms, and a
 * chunk that comes out unchanged keeps its exact byte spans. */
static ll_status ll_norm_unicode(ll_tok_buf *b, ll_tok_piece *p, uninorm_t nf) {
    size_t off = p->off, n = p->len;
    bool ascii = true;
    for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)b->b[off + i] < 0x80;
    if (ascii) return LL_OK;
    size_t start = b->n;
    size_t i = 0;
    while (i < n) {
        size_t j = i + 1;
        while (j < n && (unsigned char)b->b[off + j] >= 0x80) j++;
        bool has_non_ascii = j - i > 1 || (unsigned char)b->b[off + i] >= 0x80;
        if (!has_non_ascii) {
            LL_TRY(ll_tok_buf_copy(b, off + i, j - i));
        } else {
            size_t rl = 0;
            uint8_t *r = u8_normalize(nf, (const uint8_t *)b->b + off + i, j - i, NULL, &rl);
            if (!r) return ll_err(LL_ERR_NOMEM, "tokenizer: Unicode normalization failed (no memory)");
            if (rl == j - i && !memcmp(r, b->b + off + i, rl)) {
                ll_status st = ll_tok_buf_copy(b, off + i, j - i);
                free(r);
                LL_TRY(st);
            } else {
                int64_t lo = ll_span_lo(b, off + i, off + j), hi = ll_span_hi(b, off + i, off + j);
                ll_status st = ll_tok_buf_push(b, (const char *)r, rl, lo, hi);
                free(r);
                LL_TRY(st);
            }
        }
        i = j;
    }
    p->off = start;
    p->len = b->n - start;
    return LL_OK;
}

static bool ll_is_cased_letter(uint32_t cp) {
    return uc_is_property_alphabetic(cp) && (uc_tolower(cp) != cp || uc_toupper(cp) != cp);
}

/* Full lowercase mapping character by character (so spans stay exact), with the
 * one context rule Rust's str::to_lowercase applies: a capital sigma that ends a
 * word becomes the final form. */
static ll_status ll_norm_lower(ll_tok_buf *b, ll_tok_piece *p) {
    size_t off = p->off, n = p->len, start = b->n;
    uint32_t prev = 0;
    for (size_t i = 0; i < n;) {
        size_t l;
        unsigned char c = (unsigned char)b->b[off + i];
        if (c < 0x80) {
            char lc = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            LL_TRY(ll_tok_buf_push(b, &lc, 1, b->os[off + i], b->oe[off + i]));
            prev = c;
            i++;
            continue;
        }
        uint32_t cp = ll_cp_at(b->b + off + i, &l);
        int64_t lo = b->os[off + i], hi = b->oe[off + i + l - 1];
        if (cp == 0x03A3) {
            size_t l2 = 0;
            uint32_t next = i + l < n ? ll_cp_at(b->b + off + i + l, &l2) : 0;
            bool final = ll_is_cased_letter(prev) && !ll_is_cased_letter(next);
            LL_TRY(ll_tok_buf_push(b, final ? "\xCF\x82" : "\xCF\x83", 2, lo, hi));
        } else {
            uint8_t buf[32];
            size_t rl = sizeof buf;
            uint8_t *r = u8_tolower((const uint8_t *)b->b + off + i, l, NULL, NULL, buf, &rl);
            if (!r) return ll_err(LL_ERR_NOMEM, "tokenizer: lowercasing failed (no memory)");
            ll_status st = ll_tok_buf_push(b, (const char *)r, rl, lo, hi);
            if (r != buf) free(r);
            LL_TRY(st);
        }
        prev = cp;
        i += l;
    }
    p->off = start;
    p->len = b->n - start;
    return LL_OK;
}

static bool ll_is_ws_at(const char *s, size_t n, size_t *l) {
    if ((unsigned char)s[0] < 0x80) {
        *l = 1;
        return s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r');
    }
    (void)n;
    uint32_t cp = ll_cp_at(s, l);
    return uc_is_property_white_space(cp);
}

/* Replace every match of `re` (or the literal s) by s2; the inserted bytes stand for
 * the matched bytes. */
static ll_status ll_norm_replace(const ll_tok_step *st, ll_tok_buf *b, ll_tok_piece *p) {
    size_t off = p->off, n = p->len;
    size_t start = b->n, from = 0, ms, me;
    bool any = false;
    while (from < n) {
        bool hit;
        if (st->re) {
            hit = ll_tok_regex_next(st->re, b->b + off, n, from, &ms, &me);
        } else {
            const char *f = st->slen ? memmem(b->b + off + from, n - from, st->s, st->slen) : NULL;
            hit = f != NULL;
            if (hit) ms = (size_t)(f - (b->b + off)), me = ms + st->slen;
        }
        if (!hit) break;
        any = true;
        LL_TRY(ll_tok_buf_copy(b, off + from, ms - from));
        int64_t lo = ll_span_lo(b, off + ms, off + me), hi = ll_span_hi(b, off + ms, off + me);
        LL_TRY(ll_tok_buf_push(b, st->s2, st->s2len, lo, hi));
        from = me;
    }
    if (!any) {
        b->n = start;
        return LL_OK;
    }
    LL_TRY(ll_tok_buf_copy(b, off + from, n - from));
    p->off = start;
    p->len = b->n - start;
    return LL_OK;
}

static ll_status ll_norm_strip(const ll_tok_step *st, ll_tok_buf *b, ll_tok_piece *p) {
    size_t off = p->off, a = 0, e = p->len, l;
    if (st->left)
        while (a < e && ll_is_ws_at(b->b + off + a, e - a, &l)) a += l;
    if (st->right)
        while (e > a) {
            size_t k = e - 1;
            while (k > a && ((unsigned char)b->b[off + k] & 0xC0) == 0x80) k--;
            if (!ll_is_ws_at(b->b + off + k, e - k, &l)) break;
            e = k;
        }
    p->off = off + a;
    p->len = e - a;
    return LL_OK;
}

/* SentencePiece's remove_extra_whitespaces: drop leading and trailing spaces and
 * squeeze internal runs to one. SentencePiece then also strips trailing escaped
 * spaces ("▁") from its output, literal ones from the input included: that is a
 * separate step after the escaping (LL_TNORM_RSTRIP_STR). */
static ll_status ll_norm_collapse(ll_tok_buf *b, ll_tok_piece *p) {
    size_t off = p->off, n = p->len, start = b->n;
    size_t i = 0;
    while (i < n && b->b[off + i] == ' ') i++;
    bool pending = false;
    for (; i < n; i++) {
        if (b->b[off + i] == ' ') {
            pending = true;
            continue;
        }
        if (pending) LL_TRY(ll_tok_buf_copy(b, off + i - 1, 1));
        pending = false;
        LL_TRY(ll_tok_buf_copy(b, off + i, 1));
    }
    p->off = start;
    p->len = b->n - start;
    return LL_OK;
}

ll_status ll_tok_normalize(const ll_tokenizer *t, ll_tok_buf *b, ll_tok_piece *p) {
    for (int k = 0; k < t->n_norm; k++) {
        const ll_tok_step *st = &t->norm[k];
        switch ((ll_tnorm_kind)st->kind) {
        case LL_TNORM_PREPEND:
            if (p->len) {
                size_t start = b->n;
                int64_t at = b->os[p->off];
                LL_TRY(ll_tok_buf_push(b, st->s, st->slen, at, at));
                LL_TRY(ll_tok_buf_copy(b, p->off, p->len));
                p->off = start;
                p->len = b->n - start;
            }
            break;
        case LL_TNORM_REPLACE: LL_TRY(ll_norm_replace(st, b, p)); break;
        case LL_TNORM_NFC: LL_TRY(ll_norm_unicode(b, p, UNINORM_NFC)); break;
        case LL_TNORM_NFD: LL_TRY(ll_norm_unicode(b, p, UNINORM_NFD)); break;
        case LL_TNORM_NFKC: LL_TRY(ll_norm_unicode(b, p, UNINORM_NFKC)); break;
        case LL_TNORM_NFKD: LL_TRY(ll_norm_unicode(b, p, UNINORM_NFKD)); break;
        case LL_TNORM_LOWERCASE: LL_TRY(ll_norm_lower(b, p)); break;
        case LL_TNORM_STRIP: LL_TRY(ll_norm_strip(st, b, p)); break;
        case LL_TNORM_COLLAPSE_WS: LL_TRY(ll_norm_collapse(b, p)); break;
        case LL_TNORM_RSTRIP_STR:
            while (st->slen && p->len >= st->slen && !memcmp(b->b + p->off + p->len - st->slen, st->s, st->slen))
                p->len -= st->slen;
            break;
        }
    }
    return LL_OK;
}
