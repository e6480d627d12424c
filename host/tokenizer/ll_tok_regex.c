/* Pre-tokenizer regexes through PCRE2.
 *
 * Hugging Face compiles these patterns with Oniguruma in Unicode mode; PCRE2 with
 * PCRE2_UTF | PCRE2_UCP gives the same meaning to \p{L}, \s, \w, (?i:...) and the
 * (?!\S) look-ahead the GPT-2 family relies on. Patterns are JIT-compiled when the
 * platform allows it: matching is most of the pre-tokenizer's time. Input is always
 * valid UTF-8 (sanitized first), so the per-match UTF check is switched off. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "ll_tok_internal.h"

struct ll_tok_regex {
    pcre2_code *code;
    bool jit;
};

/* One match-data block per thread: a tokenizer may be shared by threads, and
 * allocating match data per call would cost more than many matches. */
static _Thread_local pcre2_match_data *ll_tls_md;

ll_status ll_tok_regex_new(ll_tok_regex **out, const char *pattern, size_t len, bool literal, const char *where) {
    *out = NULL;
    int err;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &err, &off, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return ll_err(LL_ERR_UNSUPPORTED, "%s: regex /%.*s/ does not compile at offset %zu: %s", where,
                      (int)(len > 200 ? 200 : len), pattern, (size_t)off, (const char *)msg);
    }
    ll_tok_regex *re = calloc(1, sizeof *re);
    if (!re) {
        pcre2_code_free(code);
        return ll_err(LL_ERR_NOMEM, "%s: no memory for a regex", where);
    }
    re->code = code;
    re->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    *out = re;
    return LL_OK;
}

void ll_tok_regex_free(ll_tok_regex *re) {
    if (!re) return;
    pcre2_code_free(re->code);
    free(re);
}

bool ll_tok_regex_next(const ll_tok_regex *re, const char *s, size_t n, size_t from, size_t *ms, size_t *me) {
    if (!ll_tls_md) {
        /* Enough ovector pairs for any pattern we accept; freed at thread exit by the OS
         * for the main thread, and small (a few hundred bytes) per worker thread. */
        ll_tls_md = pcre2_match_data_create(32, NULL);
        if (!ll_tls_md) return false;
    }
    while (from <= n) {
        int rc = re->jit ? pcre2_jit_match(re->code, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, ll_tls_md, NULL)
                         : pcre2_match(re->code, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, ll_tls_md, NULL);
        if (rc < 0) return false;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ll_tls_md);
        if (ov[1] > ov[0]) {
            *ms = ov[0];
            *me = ov[1];
            return true;
        }
        /* An empty match splits nothing: step over one character and look again. */
        if (ov[0] >= n) return false;
        from = ov[0] + ll_utf8_len((unsigned char)s[ov[0]]);
    }
    return false;
}
