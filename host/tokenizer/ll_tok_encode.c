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
    size_t *next; /* per added token: next occurrence at or after `from`, SIZE_MAX none */
} ll_added_scan;

/* Leftmost, then longest added-token match at or after `pos`. */
static int ll_find_added(const ll_tokenizer *t, const char *s, size_t n, size_t pos, unsigned flags,
                         ll_added_scan *sc, size_t *ms) {
    int best = -1;
    size_t best_at = SIZE_MAX;
    for (int k = 0; k < t->n_added; k++) {
        const ll_added_tok *a = &t->added[k];
        if (a->special && !(flags & LL_TOK_PARSE_SPECIAL)) continue;
        /* next[k]: SIZE_MAX - 1 = not searched yet, SIZE_MAX = no more occurrences. */
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

/* Normalize, pre-tokenize and encode one section [s, e) of the sanitized text. */
static ll_status ll_encode_section(const ll_tokenizer *t, ll_tok_buf *b, size_t s, size_t e, ll_tok_pieces *ps,
                                   ll_encoding *enc) {
    if (e <= s) return LL_OK;
    ll_tok_piece p = {s, e - s};
    LL_TRY(ll_tok_normalize(t, b, &p));
    LL_TRY(ll_tok_pretokenize(t, b, p, s == 0, ps));
    for (size_t i = 0; i < ps->n; i++) LL_TRY(ll_tok_model_encode(t, b, ps->p[i], enc));
    return LL_OK;
}

static ll_status ll_encode_all(const ll_tokenizer *t, const char *text, size_t len, unsigned flags, ll_encoding *enc,
                               ll_tok_buf *b, ll_tok_pieces *ps, ll_added_scan *sc) {
    LL_TRY(ll_tok_sanitize(b, text, len, 0));
    size_t n = b->n; /* normalizers append after the sanitized text */
    if (flags & LL_TOK_ADD_SPECIAL)
        for (int k = 0; k < t->n_prefix; k++) LL_TRY(ll_encoding_push(enc, t->prefix[k], 0, 0));
    size_t pos = 0;
    bool want_added = t->n_added && (t->any_added_plain || (flags & LL_TOK_PARSE_SPECIAL));
    while (want_added && pos < n) {
        size_t ms;
        int k = ll_find_added(t, b->b, n, pos, flags, sc, &ms);
        if (k < 0) break;
        const ll_added_tok *a = &t->added[k];
        size_t me = ms + a->len, cut_s = ms, cut_e = me;
        if (a->lstrip)
            while (cut_s > pos && ll_is_space_byte(b->b[cut_s - 1])) cut_s--;
        if (a->rstrip)
            while (cut_e < n && ll_is_space_byte(b->b[cut_e])) cut_e++;
        LL_TRY(ll_encode_section(t, b, pos, cut_s, ps, enc));
        LL_TRY(ll_encoding_push(enc, a->id, b->os[ms], b->oe[me - 1]));
        pos = cut_e;
    }
    LL_TRY(ll_encode_section(t, b, pos, n, ps, enc));
    if (flags & LL_TOK_ADD_SPECIAL)
        for (int k = 0; k < t->n_suffix; k++)
            LL_TRY(ll_encoding_push(enc, t->suffix[k], (int64_t)len, (int64_t)len));
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
    for (int k = 0; k < t->n_added; k++) sc.next[k] = SIZE_MAX - 1; /* not searched yet */
    ll_status st = ll_encode_all(t, text, len, flags, enc, &b, &ps, &sc);
    if (st) enc->n = n0;
    if (sc.next != stack_next) free(sc.next);
    ll_tok_buf_free(&b);
    free(ps.p);
    return st;
}
