/* Hugging Face tokenizer.json (and tokenizer_config.json) -> ll_tokenizer.
 *
 * Every component type is either implemented exactly or refused with an error
 * naming it: a tokenizer that silently ignores a step would give ids that look
 * plausible and are wrong. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/ll_mmap.h"
#include "ll_tok_internal.h"

#define LL_METASPACE "\xE2\x96\x81" /* U+2581, SentencePiece's visible space */
/* Oniguruma's Unicode \w (what Hugging Face's patterns mean by it): alphabetic,
 * marks, decimal digits, connector punctuation, join controls (UTS #18). PCRE2 before 10.43 leaves marks out
 * of \w, which would cut "cafe\u0301" in two. */
#define LL_WORD "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]"

static const char *ll_jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool ll_jbool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static char *ll_sdup(const char *s) { return s ? strdup(s) : NULL; }

/* "pattern": {"String": "..."} or {"Regex": "..."}. */
static ll_status ll_pattern(ll_tokenizer *t, const cJSON *o, const char *where, ll_tok_regex **re, char **lit) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const char *s = ll_jstr(p, "String"), *r = ll_jstr(p, "Regex");
    if (!s && !r) return ll_err(LL_ERR_FORMAT, "%s: %s: field \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}", t->name, where);
    if (lit && s) {
        *lit = strdup(s);
        if (!*lit) return ll_err(LL_ERR_NOMEM, "%s: no memory", t->name);
        return LL_OK;
    }
    char ctx[300];
    snprintf(ctx, sizeof ctx, "%s: %s", t->name, where);
    return ll_tok_regex_new(re, s ? s : r, strlen(s ? s : r), s != NULL, ctx);
}

static ll_status ll_parse_normalizer(ll_tokenizer *t, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return LL_OK;
    const char *type = ll_jstr(n, "type");
    if (!type) return ll_err(LL_ERR_FORMAT, "%s: normalizer: field \"type\" is missing", t->name);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *it;
        if (!cJSON_IsArray(list)) return ll_err(LL_ERR_FORMAT, "%s: normalizer Sequence: field \"normalizers\" must be an array", t->name);
        cJSON_ArrayForEach(it, list) LL_TRY(ll_parse_normalizer(t, it));
        return LL_OK;
    }
    ll_tok_step st = {0};
    if (!strcmp(type, "Prepend")) {
        const char *p = ll_jstr(n, "prepend");
        if (!p) return ll_err(LL_ERR_FORMAT, "%s: normalizer Prepend: field \"prepend\" is missing", t->name);
        st = (ll_tok_step){.kind = LL_TNORM_PREPEND, .s = ll_sdup(p), .slen = strlen(p)};
    } else if (!strcmp(type, "Replace")) {
        const char *c = ll_jstr(n, "content");
        if (!c) return ll_err(LL_ERR_FORMAT, "%s: normalizer Replace: field \"content\" is missing", t->name);
        st = (ll_tok_step){.kind = LL_TNORM_REPLACE, .s2 = ll_sdup(c), .s2len = strlen(c)};
        ll_status e = ll_pattern(t, n, "normalizer Replace", &st.re, &st.s);
        if (e) {
            free(st.s2);
            return e;
        }
        if (st.s) st.slen = strlen(st.s);
    } else if (!strcmp(type, "NFC")) st.kind = LL_TNORM_NFC;
    else if (!strcmp(type, "NFD")) st.kind = LL_TNORM_NFD;
    else if (!strcmp(type, "NFKC")) st.kind = LL_TNORM_NFKC;
    else if (!strcmp(type, "NFKD")) st.kind = LL_TNORM_NFKD;
    else if (!strcmp(type, "Lowercase")) st.kind = LL_TNORM_LOWERCASE;
    else if (!strcmp(type, "Strip")) {
        st = (ll_tok_step){.kind = LL_TNORM_STRIP, .left = ll_jbool(n, "strip_left", true), .right = ll_jbool(n, "strip_right", true)};
    } else {
        return ll_err(LL_ERR_UNSUPPORTED,
                      "%s: normalizer type \"%s\" is not supported (supported: Sequence, Prepend, Replace, NFC, NFD, "
                      "NFKC, NFKD, Lowercase, Strip)",
                      t->name, type);
    }
    ll_status e = ll_tok_push_norm(t, st);
    if (e) {
        free(st.s);
        free(st.s2);
        ll_tok_regex_free(st.re);
    }
    return e;
}

static ll_status ll_split_behavior_of(ll_tokenizer *t, const char *b, const char *where, ll_split_behavior *out) {
    if (!b) return ll_err(LL_ERR_FORMAT, "%s: %s: field \"behavior\" is missing", t->name, where);
    if (!strcmp(b, "Removed")) *out = LL_SPLIT_REMOVED;
    else if (!strcmp(b, "Isolated")) *out = LL_SPLIT_ISOLATED;
    else if (!strcmp(b, "MergedWithPrevious")) *out = LL_SPLIT_MERGED_PREV;
    else if (!strcmp(b, "MergedWithNext")) *out = LL_SPLIT_MERGED_NEXT;
    else if (!strcmp(b, "Contiguous")) *out = LL_SPLIT_CONTIGUOUS;
    else return ll_err(LL_ERR_FORMAT, "%s: %s: unknown behavior \"%s\"", t->name, where, b);
    return LL_OK;
}

static ll_status ll_regex_step(ll_tokenizer *t, const char *pattern, bool literal, ll_split_behavior bh, bool invert,
                               const char *where) {
    ll_tok_step st = {.kind = LL_PRE_SPLIT, .behavior = bh, .invert = invert};
    char ctx[300];
    snprintf(ctx, sizeof ctx, "%s: %s", t->name, where);
    LL_TRY(ll_tok_regex_new(&st.re, pattern, strlen(pattern), literal, ctx));
    ll_status e = ll_tok_push_pre(t, st);
    if (e) ll_tok_regex_free(st.re);
    return e;
}

static ll_status ll_prepend_scheme_of(ll_tokenizer *t, const cJSON *o, ll_prepend_scheme *out) {
    const char *ps = ll_jstr(o, "prepend_scheme");
    if (!ps) {
        /* Files from before tokenizers 0.14 say add_prefix_space instead. */
        *out = ll_jbool(o, "add_prefix_space", true) ? LL_PREPEND_ALWAYS : LL_PREPEND_NEVER;
        return LL_OK;
    }
    if (!strcmp(ps, "always")) *out = LL_PREPEND_ALWAYS;
    else if (!strcmp(ps, "first")) *out = LL_PREPEND_FIRST;
    else if (!strcmp(ps, "never")) *out = LL_PREPEND_NEVER;
    else return ll_err(LL_ERR_FORMAT, "%s: Metaspace: unknown prepend_scheme \"%s\"", t->name, ps);
    return LL_OK;
}

static ll_status ll_parse_pre(ll_tokenizer *t, const cJSON *p, bool *byte_level) {
    if (!p || cJSON_IsNull(p)) return LL_OK;
    const char *type = ll_jstr(p, "type");
    if (!type) return ll_err(LL_ERR_FORMAT, "%s: pre_tokenizer: field \"type\" is missing", t->name);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *it;
        if (!cJSON_IsArray(list)) return ll_err(LL_ERR_FORMAT, "%s: pre_tokenizer Sequence: field \"pretokenizers\" must be an array", t->name);
        cJSON_ArrayForEach(it, list) LL_TRY(ll_parse_pre(t, it, byte_level));
        return LL_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        *byte_level = true;
        ll_tok_step st = {.kind = LL_PRE_BYTELEVEL, .add_prefix_space = ll_jbool(p, "add_prefix_space", false)};
        if (ll_jbool(p, "use_regex", true)) {
            const char *pat = ll_tok_pattern("gpt2");
            LL_TRY(ll_tok_regex_new(&st.re, pat, strlen(pat), false, "ByteLevel pre-tokenizer"));
        }
        ll_status e = ll_tok_push_pre(t, st);
        if (e) ll_tok_regex_free(st.re);
        return e;
    }
    if (!strcmp(type, "Split")) {
        ll_tok_step st = {.kind = LL_PRE_SPLIT, .invert = ll_jbool(p, "invert", false)};
        LL_TRY(ll_split_behavior_of(t, ll_jstr(p, "behavior"), "pre_tokenizer Split", &st.behavior));
        LL_TRY(ll_pattern(t, p, "pre_tokenizer Split", &st.re, NULL));
        ll_status e = ll_tok_push_pre(t, st);
        if (e) ll_tok_regex_free(st.re);
        return e;
    }
    if (!strcmp(type, "Metaspace")) {
        const char *rep = ll_jstr(p, "replacement");
        if (!rep || !*rep) return ll_err(LL_ERR_FORMAT, "%s: pre_tokenizer Metaspace: field \"replacement\" is missing", t->name);
        ll_tok_step st = {.kind = LL_PRE_METASPACE, .split = ll_jbool(p, "split", true)};
        LL_TRY(ll_prepend_scheme_of(t, p, &st.scheme));
        st.s = ll_sdup(rep);
        st.slen = strlen(rep);
        if (!st.s) return ll_err(LL_ERR_NOMEM, "%s: no memory", t->name);
        ll_status e = st.split ? ll_tok_regex_new(&st.re, rep, st.slen, true, "Metaspace") : LL_OK;
        if (e == LL_OK) e = ll_tok_push_pre(t, st);
        if (e) {
            free(st.s);
            ll_tok_regex_free(st.re);
        }
        return e;
    }
    if (!strcmp(type, "Whitespace")) return ll_regex_step(t, LL_WORD "+|[^\\s\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]+", false, LL_SPLIT_REMOVED, true, "Whitespace");
    if (!strcmp(type, "WhitespaceSplit")) return ll_regex_step(t, "\\s+", false, LL_SPLIT_REMOVED, false, "WhitespaceSplit");
    if (!strcmp(type, "Digits"))
        return ll_regex_step(t, "\\p{N}", false, ll_jbool(p, "individual_digits", false) ? LL_SPLIT_ISOLATED : LL_SPLIT_CONTIGUOUS,
                             false, "Digits");
    if (!strcmp(type, "Punctuation")) {
        ll_split_behavior bh = LL_SPLIT_ISOLATED;
        if (ll_jstr(p, "behavior")) LL_TRY(ll_split_behavior_of(t, ll_jstr(p, "behavior"), "Punctuation", &bh));
        return ll_regex_step(t, "[\\p{P}!-/:-@\\[-`{-~]", false, bh, false, "Punctuation");
    }
    return ll_err(LL_ERR_UNSUPPORTED,
                  "%s: pre_tokenizer type \"%s\" is not supported (supported: Sequence, ByteLevel, Split, Metaspace, "
                  "Whitespace, WhitespaceSplit, Digits, Punctuation)",
                  t->name, type);
}

static ll_status ll_parse_decoder(ll_tokenizer *t, const cJSON *d) {
    if (!d || cJSON_IsNull(d)) return LL_OK;
    const char *type = ll_jstr(d, "type");
    if (!type) return ll_err(LL_ERR_FORMAT, "%s: decoder: field \"type\" is missing", t->name);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders"), *it;
        if (!cJSON_IsArray(list)) return ll_err(LL_ERR_FORMAT, "%s: decoder Sequence: field \"decoders\" must be an array", t->name);
        cJSON_ArrayForEach(it, list) LL_TRY(ll_parse_decoder(t, it));
        return LL_OK;
    }
    ll_tok_dec dc = {0};
    if (!strcmp(type, "ByteLevel")) dc.kind = LL_DEC_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) dc.kind = LL_DEC_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) dc.kind = LL_DEC_FUSE;
    else if (!strcmp(type, "Replace")) {
        const char *c = ll_jstr(d, "content");
        const char *s = ll_jstr(cJSON_GetObjectItemCaseSensitive(d, "pattern"), "String");
        if (!c || !s) return ll_err(LL_ERR_UNSUPPORTED, "%s: decoder Replace: only {\"String\": ...} patterns with a \"content\" are supported", t->name);
        dc = (ll_tok_dec){.kind = LL_DEC_REPLACE, .s = ll_sdup(s), .slen = strlen(s), .s2 = ll_sdup(c), .s2len = strlen(c)};
    } else if (!strcmp(type, "Strip")) {
        const char *c = ll_jstr(d, "content");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(d, "start"), *b = cJSON_GetObjectItemCaseSensitive(d, "stop");
        if (!c || !cJSON_IsNumber(a) || !cJSON_IsNumber(b)) return ll_err(LL_ERR_FORMAT, "%s: decoder Strip: fields \"content\", \"start\", \"stop\" are required", t->name);
        dc = (ll_tok_dec){.kind = LL_DEC_STRIP, .s = ll_sdup(c), .slen = strlen(c), .left = a->valueint, .right = b->valueint};
    } else if (!strcmp(type, "Metaspace")) {
        const char *rep = ll_jstr(d, "replacement");
        if (!rep) return ll_err(LL_ERR_FORMAT, "%s: decoder Metaspace: field \"replacement\" is missing", t->name);
        ll_prepend_scheme sc;
        LL_TRY(ll_prepend_scheme_of(t, d, &sc));
        dc = (ll_tok_dec){.kind = LL_DEC_METASPACE, .s = ll_sdup(rep), .slen = strlen(rep), .strip_first = sc != LL_PREPEND_NEVER};
    } else if (!strcmp(type, "WordPiece")) {
        dc.kind = LL_DEC_WORDPIECE;
    } else {
        return ll_err(LL_ERR_UNSUPPORTED,
                      "%s: decoder type \"%s\" is not supported (supported: Sequence, ByteLevel, ByteFallback, Fuse, "
                      "Replace, Strip, Metaspace, WordPiece)",
                      t->name, type);
    }
    ll_status e = ll_tok_push_dec(t, dc);
    if (e) {
        free(dc.s);
        free(dc.s2);
    }
    return e;
}

/* The id of a special token named in the post-processor. */
static ll_status ll_template_ids(ll_tokenizer *t, const cJSON *specials, const char *name, int32_t *ids, int *n, int cap) {
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(specials, name);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(sp, "ids"), *it;
    if (!cJSON_IsArray(list))
        return ll_err(LL_ERR_FORMAT, "%s: post_processor: special token \"%s\" has no \"ids\" in \"special_tokens\"", t->name, name);
    cJSON_ArrayForEach(it, list) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= t->n_vocab)
            return ll_err(LL_ERR_FORMAT, "%s: post_processor: special token \"%s\" has an id out of range", t->name, name);
        if (*n >= cap) return ll_err(LL_ERR_UNSUPPORTED, "%s: post_processor: more than %d special tokens around a sequence", t->name, cap);
        ids[(*n)++] = (int32_t)it->valuedouble;
    }
    return LL_OK;
}

static ll_status ll_parse_post(ll_tokenizer *t, const cJSON *p) {
    if (!p || cJSON_IsNull(p)) return LL_OK;
    const char *type = ll_jstr(p, "type");
    if (!type) return ll_err(LL_ERR_FORMAT, "%s: post_processor: field \"type\" is missing", t->name);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "processors"), *it;
        if (!cJSON_IsArray(list)) return ll_err(LL_ERR_FORMAT, "%s: post_processor Sequence: field \"processors\" must be an array", t->name);
        cJSON_ArrayForEach(it, list) LL_TRY(ll_parse_post(t, it));
        return LL_OK;
    }
    if (!strcmp(type, "ByteLevel")) return LL_OK; /* only trims offsets, which we define differently */
    if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single"), *it;
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
        if (!cJSON_IsArray(single)) return ll_err(LL_ERR_FORMAT, "%s: post_processor TemplateProcessing: field \"single\" must be an array", t->name);
        bool after = false;
        t->n_prefix = t->n_suffix = 0;
        cJSON_ArrayForEach(it, single) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
            if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
                after = true;
                continue;
            }
            const char *id = ll_jstr(sp, "id");
            if (!id) return ll_err(LL_ERR_FORMAT, "%s: post_processor TemplateProcessing: items must be SpecialToken or Sequence", t->name);
            if (after) LL_TRY(ll_template_ids(t, specials, id, t->suffix, &t->n_suffix, 8));
            else LL_TRY(ll_template_ids(t, specials, id, t->prefix, &t->n_prefix, 8));
        }
        return LL_OK;
    }
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(p, "cls"), *sep = cJSON_GetObjectItemCaseSensitive(p, "sep");
        const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
        if (!cJSON_IsNumber(ci) || !cJSON_IsNumber(si)) return ll_err(LL_ERR_FORMAT, "%s: post_processor %s: fields \"cls\" and \"sep\" must be [token, id]", t->name, type);
        t->prefix[0] = (int32_t)ci->valuedouble;
        t->suffix[0] = (int32_t)si->valuedouble;
        t->n_prefix = t->n_suffix = 1;
        return LL_OK;
    }
    return ll_err(LL_ERR_UNSUPPORTED,
                  "%s: post_processor type \"%s\" is not supported (supported: Sequence, ByteLevel, "
                  "TemplateProcessing, RobertaProcessing, BertProcessing)",
                  t->name, type);
}

/* A vocab / merge string in the model's form: byte-level vocabularies are stored as
 * raw bytes. Strings outside GPT-2's alphabet stay as they are. */
static size_t ll_model_form(const ll_tokenizer *t, char *s, size_t n) {
    if (!t->byte_level) return n;
    long r = ll_tok_unmap_bytelevel(s, n);
    return r < 0 ? n : (size_t)r;
}

static ll_status ll_parse_merges(ll_tokenizer *t, const cJSON *merges) {
    if (!merges || cJSON_IsNull(merges)) return LL_OK;
    if (!cJSON_IsArray(merges)) return ll_err(LL_ERR_FORMAT, "%s: model: field \"merges\" must be an array", t->name);
    LL_TRY(ll_pairmap_init(&t->merges, (size_t)cJSON_GetArraySize(merges)));
    const cJSON *it;
    uint32_t rank = 0;
    char buf[1024];
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        size_t al, bl;
        if (cJSON_IsString(it)) {
            const char *sp = strchr(it->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return ll_err(LL_ERR_FORMAT, "%s: model.merges[%u]: expected \"left right\", found \"%.60s\"", t->name, rank, it->valuestring);
            a = it->valuestring, al = (size_t)(sp - a), b = sp + 1, bl = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            a = cJSON_GetArrayItem(it, 0)->valuestring, al = strlen(a);
            b = cJSON_GetArrayItem(it, 1)->valuestring, bl = strlen(b);
        } else {
            return ll_err(LL_ERR_FORMAT, "%s: model.merges[%u]: expected a string or a pair of strings", t->name, rank);
        }
        if (al + bl + t->cont_prefix_len >= sizeof buf)
            return ll_err(LL_ERR_FORMAT, "%s: model.merges[%u]: token longer than %zu bytes", t->name, rank, sizeof buf);
        memcpy(buf, a, al);
        size_t fa = ll_model_form(t, buf, al);
        int32_t ia = ll_strmap_get(&t->vocab, buf, fa);
        memcpy(buf, b, bl);
        size_t fb = ll_model_form(t, buf, bl);
        int32_t ib = ll_strmap_get(&t->vocab, buf, fb);
        /* The merged token: left + right without the right's continuation prefix. */
        memcpy(buf, a, al);
        size_t skip = t->cont_prefix_len && bl >= t->cont_prefix_len && !memcmp(b, t->cont_prefix, t->cont_prefix_len)
                          ? t->cont_prefix_len
                          : 0;
        memcpy(buf + al, b + skip, bl - skip);
        size_t fm = ll_model_form(t, buf, al + bl - skip);
        int32_t im = ll_strmap_get(&t->vocab, buf, fm);
        if (ia < 0 || ib < 0 || im < 0)
            return ll_err(LL_ERR_FORMAT, "%s: model.merges[%u] (\"%.*s\" + \"%.*s\"): %s is not in the vocabulary", t->name,
                          rank, (int)al, a, (int)bl, b, ia < 0 ? "the left token" : ib < 0 ? "the right token" : "the merged token");
        LL_TRY(ll_pairmap_put(&t->merges, ia, ib, rank, im));
        rank++;
    }
    return LL_OK;
}

static ll_status ll_parse_model(ll_tokenizer *t, const cJSON *model, const cJSON *added) {
    const char *type = ll_jstr(model, "type");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!type) type = merges ? "BPE" : "WordLevel";
    if (!strcmp(type, "BPE")) t->model = LL_TOKM_BPE;
    else if (!strcmp(type, "WordLevel")) t->model = LL_TOKM_WORDLEVEL;
    else
        return ll_err(LL_ERR_UNSUPPORTED, "%s: model type \"%s\" is not supported (supported: BPE, WordLevel)", t->name, type);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return ll_err(LL_ERR_UNSUPPORTED, "%s: model.dropout = %g: BPE dropout is a training-time option and is not supported", t->name, dropout->valuedouble);
    const char *eow = ll_jstr(model, "end_of_word_suffix");
    if (eow && *eow) return ll_err(LL_ERR_UNSUPPORTED, "%s: model.end_of_word_suffix \"%s\" is not supported", t->name, eow);
    const char *cp = ll_jstr(model, "continuing_subword_prefix");
    if (cp && *cp) {
        t->cont_prefix = strdup(cp);
        t->cont_prefix_len = strlen(cp);
    }
    t->byte_fallback = ll_jbool(model, "byte_fallback", false);
    t->fuse_unk = ll_jbool(model, "fuse_unk", false);
    t->ignore_merges = ll_jbool(model, "ignore_merges", false);

    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *it;
    if (!cJSON_IsObject(vocab)) return ll_err(LL_ERR_FORMAT, "%s: model: field \"vocab\" must be an object of token -> id", t->name);
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= (1 << 28) || it->valuedouble != (int32_t)it->valuedouble)
            return ll_err(LL_ERR_FORMAT, "%s: model.vocab[\"%.60s\"]: expected a token id, found %s", t->name, it->string,
                          cJSON_IsNumber(it) ? "a number out of range" : "something else");
        /* cJSON keeps strings NUL-terminated, so a key "\u0000" arrives empty. An empty
         * token can never be produced, so an empty key is read as the NUL byte. */
        size_t n = strlen(it->string);
        char *tmp = strdup(it->string);
        if (n == 0) n = 1;
        if (!tmp) return ll_err(LL_ERR_NOMEM, "%s: no memory", t->name);
        size_t fn = ll_model_form(t, tmp, n);
        ll_status st = ll_tok_set(t, (int32_t)it->valuedouble, tmp, fn, LL_TT_NORMAL);
        free(tmp);
        LL_TRY(st);
    }
    /* Added tokens: their text as written (byte-level ones mapped back like the
     * decoder does: through the alphabet when every character is in it). */
    cJSON_ArrayForEach(it, added) {
        const cJSON *idv = cJSON_GetObjectItemCaseSensitive(it, "id");
        const char *content = ll_jstr(it, "content");
        if (!cJSON_IsNumber(idv) || idv->valuedouble < 0 || idv->valuedouble >= (1 << 28) || !content)
            return ll_err(LL_ERR_FORMAT, "%s: added_tokens: every entry needs a numeric \"id\" and a \"content\"", t->name);
        int32_t id = (int32_t)idv->valuedouble;
        bool special = ll_jbool(it, "special", false);
        size_t n = strlen(content);
        char *tmp = strdup(content);
        if (!tmp) return ll_err(LL_ERR_NOMEM, "%s: no memory", t->name);
        size_t fn = t->byte_level ? ll_model_form(t, tmp, n) : n;
        ll_status st = ll_tok_set(t, id, tmp, fn, special ? LL_TT_CONTROL : LL_TT_USER);
        free(tmp);
        LL_TRY(st);
        LL_TRY(ll_tok_add_added(t, id, content, n, special, ll_jbool(it, "lstrip", false), ll_jbool(it, "rstrip", false),
                                ll_jbool(it, "single_word", false), ll_jbool(it, "normalized", !special)));
    }
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (!t->tok[i]) LL_TRY(ll_tok_set(t, i, "", 0, LL_TT_UNUSED)); /* holes in the id space */
    /* Index the model vocabulary: every vocab entry, added ones included (the model
     * may produce an added token's string, as Hugging Face's vocab lookup does). */
    ll_strmap_free(&t->vocab);
    LL_TRY(ll_strmap_init(&t->vocab, (size_t)t->n_vocab));
    cJSON_ArrayForEach(it, vocab) {
        int32_t id = (int32_t)it->valuedouble;
        LL_TRY(ll_strmap_put(&t->vocab, t->tok[id], t->tok_len[id], id));
    }
    if (t->byte_level)
        for (int c = 0; c < 256; c++) {
            char ch = (char)c;
            t->byte_sym[c] = ll_strmap_get(&t->vocab, &ch, 1);
        }
    const char *unk = ll_jstr(model, "unk_token");
    if (unk) {
        t->unk_id = ll_strmap_get(&t->vocab, unk, strlen(unk));
        if (t->unk_id < 0) t->unk_id = ll_tokenizer_token_id(t, unk, strlen(unk));
        if (t->unk_id < 0) return ll_err(LL_ERR_FORMAT, "%s: model.unk_token \"%s\" is not in the vocabulary", t->name, unk);
    }
    if (t->byte_fallback) ll_tok_find_byte_tokens(t);
    if (t->model == LL_TOKM_BPE) LL_TRY(ll_parse_merges(t, merges));
    ll_tok_detect_ws_split(t);
    return LL_OK;
}

static const char *ll_token_name(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    return ll_jstr(v, "content");
}

/* transformers' Llama-family fast tokenizers rebuild the template from
 * add_bos_token / add_eos_token; other classes ignore those keys. */
static ll_status ll_apply_config(ll_tokenizer *t, const cJSON *cfg) {
    const char *bos = ll_token_name(cfg, "bos_token"), *eos = ll_token_name(cfg, "eos_token");
    if (bos) t->bos_id = ll_tokenizer_token_id(t, bos, strlen(bos));
    if (eos) t->eos_id = ll_tokenizer_token_id(t, eos, strlen(eos));
    const char *cls = ll_jstr(cfg, "tokenizer_class");
    static const char *const rebuild[] = {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
                                          "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"};
    bool applies = false;
    for (size_t i = 0; cls && i < sizeof rebuild / sizeof *rebuild; i++) applies = applies || !strcmp(cls, rebuild[i]);
    if (!applies) return LL_OK;
    bool add_bos = ll_jbool(cfg, "add_bos_token", true), add_eos = ll_jbool(cfg, "add_eos_token", false);
    if (add_bos && t->bos_id < 0) return ll_err(LL_ERR_FORMAT, "%s: add_bos_token is true but bos_token is not a known token", t->name);
    if (add_eos && t->eos_id < 0) return ll_err(LL_ERR_FORMAT, "%s: add_eos_token is true but eos_token is not a known token", t->name);
    t->n_prefix = add_bos;
    t->prefix[0] = t->bos_id;
    t->n_suffix = add_eos;
    t->suffix[0] = t->eos_id;
    return LL_OK;
}

static void ll_describe(ll_tokenizer *t, const char *kind) {
    snprintf(t->desc, sizeof t->desc, "%s %s%s%s, %d tokens, %d added", kind,
             t->model == LL_TOKM_BPE ? "BPE" : "WordLevel", t->byte_level ? " byte-level" : "",
             t->byte_fallback ? " with byte fallback" : "", (int)t->n_vocab, t->n_added);
}

ll_status ll_tokenizer_parse_hf(ll_tokenizer **out, const char *json, size_t len, const char *config_json,
                                size_t config_len, const char *name) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return ll_err(LL_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", name, (size_t)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - json : 0));
    cJSON *cfg = NULL;
    ll_tokenizer *t = NULL;
    ll_status st = LL_OK;
    if (config_json) {
        cfg = cJSON_ParseWithLength(config_json, config_len);
        if (!cfg) {
            st = ll_err(LL_ERR_FORMAT, "%s: tokenizer_config.json next to it is not valid JSON", name);
            goto done;
        }
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(model)) {
        st = ll_err(LL_ERR_FORMAT, "%s: field \"model\" is missing or not an object", name);
        goto done;
    }
    if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added)) {
        st = ll_err(LL_ERR_FORMAT, "%s: field \"added_tokens\" must be an array", name);
        goto done;
    }
    if ((st = ll_tok_new(&t, name, 1))) goto done;
    t->n_vocab = 0; /* grown by ll_tok_set */
    /* Byte-level-ness decides how vocab strings are stored, so the pre-tokenizer and
     * decoder are read first. */
    bool bl = false;
    if ((st = ll_parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer")))) goto done;
    if ((st = ll_parse_pre(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &bl))) goto done;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (dec && ll_jstr(dec, "type") && !strcmp(ll_jstr(dec, "type"), "ByteLevel")) bl = true;
    t->byte_level = bl;
    if ((st = ll_parse_decoder(t, dec))) goto done;
    t->dec_join_space = !dec || cJSON_IsNull(dec);
    if ((st = ll_parse_model(t, model, added))) goto done;
    if (t->n_vocab == 0) {
        st = ll_err(LL_ERR_FORMAT, "%s: the vocabulary is empty", name);
        goto done;
    }
    if ((st = ll_parse_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor")))) goto done;
    for (int k = 0; k < t->n_prefix + t->n_suffix; k++) {
        int32_t id = k < t->n_prefix ? t->prefix[k] : t->suffix[k - t->n_prefix];
        if (id < 0 || id >= t->n_vocab) {
            st = ll_err(LL_ERR_FORMAT, "%s: post_processor: token id %d is out of range", name, (int)id);
            goto done;
        }
    }
    if (t->n_prefix) t->bos_id = t->prefix[0];
    if (t->n_suffix) t->eos_id = t->suffix[t->n_suffix - 1];
    if (cfg && (st = ll_apply_config(t, cfg))) goto done;
    ll_describe(t, "tokenizer.json");
done:
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    if (st) {
        ll_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LL_OK;
}

ll_status ll_tokenizer_load_hf(ll_tokenizer **out, const char *json_path, const char *config_path) {
    *out = NULL;
    ll_mmap m = {0}, c = {0};
    LL_TRY(ll_mmap_open(&m, json_path));
    ll_status st = LL_OK;
    if (config_path) st = ll_mmap_open(&c, config_path);
    if (st == LL_OK)
        st = ll_tokenizer_parse_hf(out, (const char *)m.data, m.size, config_path ? (const char *)c.data : NULL,
                                   c.size, json_path);
    ll_mmap_close(&m);
    if (config_path) ll_mmap_close(&c);
    return st;
}
