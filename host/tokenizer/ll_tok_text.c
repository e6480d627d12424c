/* The aligned text buffer and input sanitizing.
 *
 * Every byte the pipeline handles carries the span of input bytes it stands for,
 * so that normalizers may insert, replace or recompose characters and each token
 * still knows where in the caller's text it came from. */
#include <stdlib.h>
#include <string.h>

#include "ll_tok_internal.h"

ll_status ll_tok_buf_reserve(ll_tok_buf *b, size_t extra) {
    if (b->n + extra <= b->cap) return LL_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) cap *= 2;
    char *nb = realloc(b->b, cap);
    if (nb) b->b = nb;
    int64_t *ns = nb ? realloc(b->os, cap * sizeof *ns) : NULL;
    if (ns) b->os = ns;
    int64_t *ne = ns ? realloc(b->oe, cap * sizeof *ne) : NULL;
    if (ne) b->oe = ne;
    if (!nb || !ns || !ne) return ll_err(LL_ERR_NOMEM, "tokenizer: no memory for %zu bytes of text", cap);
    b->cap = cap;
    return LL_OK;
}

ll_status ll_tok_buf_push(ll_tok_buf *b, const char *s, size_t len, int64_t os, int64_t oe) {
    if (!len) return LL_OK; /* the buffer may not exist yet */
    LL_TRY(ll_tok_buf_reserve(b, len));
    memcpy(b->b + b->n, s, len);
    for (size_t i = 0; i < len; i++) {
        b->os[b->n + i] = os;
        b->oe[b->n + i] = oe;
    }
    b->n += len;
    return LL_OK;
}

ll_status ll_tok_buf_copy(ll_tok_buf *b, size_t from, size_t len) {
    if (!len) return LL_OK;
    LL_TRY(ll_tok_buf_reserve(b, len));
    memmove(b->b + b->n, b->b + from, len);
    memmove(b->os + b->n, b->os + from, len * sizeof *b->os);
    memmove(b->oe + b->n, b->oe + from, len * sizeof *b->oe);
    b->n += len;
    return LL_OK;
}

void ll_tok_buf_free(ll_tok_buf *b) {
    free(b->b);
    free(b->os);
    free(b->oe);
    memset(b, 0, sizeof *b);
}

ll_status ll_tok_pieces_push(ll_tok_pieces *ps, size_t off, size_t len) {
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 64;
        ll_tok_piece *np = realloc(ps->p, cap * sizeof *np);
        if (!np) return ll_err(LL_ERR_NOMEM, "tokenizer: no memory for %zu pieces", cap);
        ps->p = np;
        ps->cap = cap;
    }
    ps->p[ps->n++] = (ll_tok_piece){off, len};
    return LL_OK;
}

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 with *bad set to the
 * length of the maximal invalid subpart (Unicode's "U+FFFD substitution of maximal
 * subparts", which is what Python's decoder does). Table 3-7 of the standard. */
static size_t ll_utf8_valid(const unsigned char *s, size_t n, size_t *bad) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) need = 2;
    else if (c == 0xED) need = 2, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) need = 2;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) need = 3, hi = 0x8F;
    else {
        *bad = 1;
        return 0;
    }
    for (size_t k = 1; k <= need; k++) {
        if (k >= n || s[k] < lo || s[k] > hi) {
            *bad = k;
            return 0;
        }
        lo = 0x80, hi = 0xBF;
    }
    return need + 1;
}

ll_status ll_tok_sanitize(ll_tok_buf *out, const char *text, size_t len, int64_t base) {
    const unsigned char *s = (const unsigned char *)text;
    LL_TRY(ll_tok_buf_reserve(out, len + 16));
    size_t i = 0;
    while (i < len) {
        /* Fast path for ASCII runs. */
        size_t j = i;
        while (j < len && s[j] < 0x80) j++;
        if (j > i) {
            LL_TRY(ll_tok_buf_reserve(out, j - i));
            memcpy(out->b + out->n, s + i, j - i);
            for (size_t k = i; k < j; k++) {
                out->os[out->n] = base + (int64_t)k;
                out->oe[out->n] = base + (int64_t)k + 1;
                out->n++;
            }
            i = j;
            continue;
        }
        size_t bad = 0, ok = ll_utf8_valid(s + i, len - i, &bad);
        if (ok) {
            LL_TRY(ll_tok_buf_reserve(out, ok));
            for (size_t k = 0; k < ok; k++) {
                out->b[out->n] = (char)s[i + k];
                out->os[out->n] = base + (int64_t)(i + k);
                out->oe[out->n] = base + (int64_t)(i + k) + 1;
                out->n++;
            }
            i += ok;
        } else {
            LL_TRY(ll_tok_buf_push(out, "\xEF\xBF\xBD", 3, base + (int64_t)i, base + (int64_t)(i + bad)));
            i += bad;
        }
    }
    return LL_OK;
}
