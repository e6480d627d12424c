/* Encoding: the pipeline Hugging Face runs, in the same order.
 *   1. the input is made valid UTF-8 (U+FFFD for invalid bytes) with byte spans;
 *   2. added tokens are found in the raw text (leftmost, then longest) and cut out,
 *      honouring lstrip / rstrip / single_word;
 *   3. every remaining section is normalized, pre-tokenized and encoded by the model;
 *   4. the post-processor's BOS / EOS go around the whole. */
#include <stdlib.h>
#include <string.h>
#include <unictype.h>

#include "ll_tok_internal.h"

static bool ll_is_space_byte(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static bool ll_word_char_before(const char *s, size_t at) {
    if (at == 0) return false;
    size_t k = at - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    unsigned char c = (unsigned char)s[k];
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    uint32_t cp = 0;
    size_t l = ll_utf8_len(c);
    cp = c & (l == 2 ? 0x1F : l == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < l; i++) cp = (cp << 6) | ((unsigned char)s[k + i] & 0x3F);
    return uc_is_alnum(cp);
}

static bool ll_word_char_at(const char *s, size_t n, size_t at) {
    if (at >= n) return false;
    unsigned char c = (unsigned char)s[at];
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    size_t l = ll_utf8_len(c);
    uint32_t cp = c & (l == 2 ? 0x1F : l == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < l && at + i < n; i++) cp = (cp << 6) | ((unsigned char)s[at + i] & 0x3F);
    return uc_is_alnum(cp);
}

typedef struct {
    size_t *next; /* per added token: next occurrence, SIZE_MAX - 1 = not searched, SIZE_MAX = none */
} ll_added_scan;

static void ll_scan_reset(const ll_tokenizer *t, ll_added_scan *sc) {
    for (int k = 0; k < t->n_added; k++) sc->next[k] = SIZE_MAX - 1;
}

/* Leftmost, then longest match at or after `pos` in s[0..n) among the added tokens
 * whose `normalized` flag equals `normalized` (Hugging Face matches the others on the
 * raw text first, these on each normalized section after). */
static int ll_find_added(const ll_tokenizer *t, const char *s, size_t n, size_t pos, unsigned flags, bool normalized,
                         ll_added_scan *sc, size_t *ms) {
    int best = -1;
    size_t best_at = SIZE_MAX;
    for (int k = 0; k < t->n_added; k++) {
        const ll_added_tok *a = &t->added[k];
        if (a->normalized != normalized) continue;
        if (a->special && !(flags & LL_TOK_PARSE_SPECIAL)) continue;
        if (sc->next[k] == SIZE_MAX - 1 || (sc->next[k] != SIZE_MAX && sc->next[k] < pos)) {
            const char *f = pos < n ? memmem(s + pos, n - pos, a->content, a->len) : NULL;
            sc->next[k] = f ? (size_t)(f - s) : SIZE_MAX;
        }
        /* single_word: only when not glued to a word character on either side; a
         * rejected occurrence is searched past. */
        while (sc->next[k] != SIZE_MAX && a->single_word &&
               (ll_word_char_before(s, sc->next[k]) || ll_word_char_at(s, n, sc->next[k] + a->len))) {
            size_t from = sc->next[k] + 1;
            const char *f = from < n ? memmem(s + from, n - from, a->content, a->len) : NULL;
            sc->next[k] = f ? (size_t)(f - s) : SIZE_MAX;
        }
        size_t at = sc->next[k];
        if (at == SIZE_MAX) continue;
        if (at < best_at || (at == best_at && a->len > t->added[best].len)) {
            best = k;
            best_at = at;
        }
    }
    *ms = best_at;
    return best;
}

typedef struct {
    const ll_tokenizer *t;
    ll_tok_buf *b;
    ll_tok_pieces *ps;
    ll_encoding *enc;
    ll_added_scan *sc;
    unsigned flags;
} ll_enc_ctx;

static ll_status ll_model_section(ll_enc_ctx *c, size_t s, size_t e) {
    if (e <= s) return LL_OK;
    LL_TRY(ll_tok_pretokenize(c->t, c->b, (ll_tok_piece){s, e - s}, c->ps));
    for (size_t i = 0; i < c->ps->n; i++) LL_TRY(ll_tok_model_encode(c->t, c->b, c->ps->p[i], c->enc));
    return LL_OK;
}

/* Cut added tokens (of one `normalized` kind) out of b[base, base + n); the gaps go
 * to `gap`. */
static ll_status ll_cut_added(ll_enc_ctx *c, size_t base, size_t n, bool normalized,
                              ll_status (*gap)(ll_enc_ctx *, size_t, size_t)) {
    const ll_tokenizer *t = c->t;
    bool want = false;
    for (int k = 0; k < t->n_added && !want; k++)
        want = t->added[k].normalized == normalized && (!t->added[k].special || (c->flags & LL_TOK_PARSE_SPECIAL));
    if (!want) return gap(c, base, base + n);
    ll_scan_reset(t, c->sc);
    size_t pos = 0;
    while (pos < n) {
        size_t ms;
        /* The arena may move while gaps are encoded: take the pointer afresh. */
        int k = ll_find_added(t, c->b->b + base, n, pos, c->flags, normalized, c->sc, &ms);
        if (k < 0) break;
        const ll_added_tok *a = &t->added[k];
        size_t me = ms + a->len, cut_s = ms, cut_e = me;
        if (a->lstrip)
            while (cut_s > pos && ll_is_space_byte(c->b->b[base + cut_s - 1])) cut_s--;
        if (a->rstrip)
            while (cut_e < n && ll_is_space_byte(c->b->b[base + cut_e])) cut_e++;
        LL_TRY(gap(c, base + pos, base + cut_s));
        int64_t lo = c->b->os[base + ms], hi = c->b->oe[base + me - 1];
        LL_TRY(ll_encoding_push(c->enc, a->id, lo, hi));
        pos = cut_e;
    }
    return gap(c, base + pos, base + n);
}

/* A section between raw-matched added tokens: normalize it, then cut the
 * normalized added tokens out of the result. */
static ll_status ll_raw_section(ll_enc_ctx *c, size_t s, size_t e) {
    if (e <= s) return LL_OK;
    ll_tok_piece p = {s, e - s};
    LL_TRY(ll_tok_normalize(c->t, c->b, &p));
    /* The scan state belongs to the raw pass; the normalized pass gets its own. */
    size_t stack_next[64];
    ll_added_scan inner = {.next = c->t->n_added <= 64 ? stack_next : malloc((size_t)c->t->n_added * sizeof(size_t))};
    if (!inner.next) return ll_err(LL_ERR_NOMEM, "tokenizer encode: no memory");
    ll_added_scan *outer = c->sc;
    c->sc = &inner;
    ll_status st = ll_cut_added(c, p.off, p.len, true, ll_model_section);
    c->sc = outer;
    if (inner.next != stack_next) free(inner.next);
    return st;
}

static ll_status ll_encode_all(ll_enc_ctx *c, const char *text, size_t len) {
    LL_TRY(ll_tok_sanitize(c->b, text, len, 0));
    size_t n = c->b->n; /* normalizers append after the sanitized text */
    if (c->flags & LL_TOK_ADD_SPECIAL)
        for (int k = 0; k < c->t->n_prefix; k++) LL_TRY(ll_encoding_push(c->enc, c->t->prefix[k], 0, 0));
    LL_TRY(ll_cut_added(c, 0, n, false, ll_raw_section));
    if (c->flags & LL_TOK_ADD_SPECIAL)
        for (int k = 0; k < c->t->n_suffix; k++)
            LL_TRY(ll_encoding_push(c->enc, c->t->suffix[k], (int64_t)len, (int64_t)len));
    return LL_OK;
}

ll_status ll_tokenizer_encode(const ll_tokenizer *t, const char *text, size_t len, unsigned flags, ll_encoding *enc) {
    if (!t || (!text && len)) return ll_err(LL_ERR_ARG, "tokenizer encode: no tokenizer or no text");
    size_t n0 = enc->n;
    ll_tok_buf b = {0};
    ll_tok_pieces ps = {0};
    size_t stack_next[64];
    ll_added_scan sc = {.next = t->n_added <= 64 ? stack_next : malloc((size_t)t->n_added * sizeof(size_t))};
    if (!sc.next) return ll_err(LL_ERR_NOMEM, "tokenizer encode: no memory");
    ll_enc_ctx c = {t, &b, &ps, enc, &sc, flags};
    ll_status st = ll_encode_all(&c, text ? text : "", len);
    if (st) enc->n = n0;
    if (sc.next != stack_next) free(sc.next);
    ll_tok_buf_free(&b);
    free(ps.p);
    return st;
}
