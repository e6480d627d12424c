/* GGUF vocabularies (tokenizer.ggml.*), the way llama.cpp reads them:
 *   "llama": SentencePiece pieces with scores and token types;
 *   "gpt2":  byte-level BPE pieces (GPT-2's alphabet) with merges, and a
 *            pre-tokenizer named by tokenizer.ggml.pre. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/ll_gguf.h"
#include "ll_tok_internal.h"

static bool ll_opt_bool(const ll_gguf *g, const char *key, bool dflt) {
    bool v;
    return ll_gguf_find_key(g, key) >= 0 && ll_gguf_get_bool(g, key, &v) == LL_OK ? v : dflt;
}

static int32_t ll_opt_id(const ll_gguf *g, const char *key) {
    uint32_t v;
    return ll_gguf_find_key(g, key) >= 0 && ll_gguf_get_u32(g, key, &v) == LL_OK ? (int32_t)v : -1;
}

/* The split pattern for tokenizer.ggml.pre (llama.cpp's names). */
static ll_status ll_gguf_pretok(ll_tokenizer *t, const ll_gguf *g, const char *path) {
    const char *pre = "default";
    if (ll_gguf_find_key(g, "tokenizer.ggml.pre") >= 0) LL_TRY(ll_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL));
    const char *pat = NULL;
    bool nfc = false;
    if (!strcmp(pre, "default") || !strcmp(pre, "gpt-2") || !strcmp(pre, "gpt2")) pat = NULL;
    else if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-bpe") || !strcmp(pre, "llama-v3")) {
        pat = ll_tok_pattern("llama3");
        t->ignore_merges = true; /* Llama-3's tokenizer.json sets it; llama.cpp does too */
    }
    else if (!strcmp(pre, "qwen2")) pat = ll_tok_pattern("qwen2"), nfc = true;
    else
        return ll_err(LL_ERR_UNSUPPORTED,
                      "%s: tokenizer.ggml.pre \"%s\" is not supported (supported: default, gpt-2, llama3/llama-bpe, qwen2)",
                      path, pre);
    if (nfc) LL_TRY(ll_tok_push_norm(t, (ll_tok_step){.kind = LL_TNORM_NFC}));
    ll_tok_step bl = {.kind = LL_PRE_BYTELEVEL};
    if (pat) {
        ll_tok_step sp = {.kind = LL_PRE_SPLIT, .behavior = LL_SPLIT_ISOLATED};
        LL_TRY(ll_tok_regex_new(&sp.re, pat, strlen(pat), false, path));
        ll_status e = ll_tok_push_pre(t, sp);
        if (e) {
            ll_tok_regex_free(sp.re);
            return e;
        }
    } else {
        const char *g2 = ll_tok_pattern("gpt2");
        LL_TRY(ll_tok_regex_new(&bl.re, g2, strlen(g2), false, path));
    }
    ll_status e = ll_tok_push_pre(t, bl);
    if (e) ll_tok_regex_free(bl.re);
    return e;
}

ll_status ll_tokenizer_load_gguf(ll_tokenizer **out, const void *gguf) {
    *out = NULL;
    const ll_gguf *g = gguf;
    const char *path = ll_gguf_path(g) ? ll_gguf_path(g) : "gguf";
    if (ll_gguf_find_key(g, "tokenizer.ggml.model") < 0)
        return ll_err(LL_ERR_MISSING, "%s: no vocabulary (key tokenizer.ggml.model is absent); pass --tokenizer FILE", path);
    const char *model;
    LL_TRY(ll_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL));
    bool spm = !strcmp(model, "llama"), bpe = !strcmp(model, "gpt2");
    if (!spm && !bpe)
        return ll_err(LL_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model \"%s\" is not supported (supported: llama, gpt2)", path, model);
    ll_gguf_type et;
    size_t n;
    LL_TRY(ll_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n));
    if (et != LL_GGUF_STRING) return ll_err(LL_ERR_FORMAT, "%s: tokenizer.ggml.tokens: expected an array of strings, found %s", path, ll_gguf_type_name(et));
    bool has_types = ll_gguf_find_key(g, "tokenizer.ggml.token_type") >= 0;
    size_t ntypes = 0, nscores = 0;
    if (has_types) {
        LL_TRY(ll_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &ntypes));
        if (ntypes != n) return ll_err(LL_ERR_FORMAT, "%s: tokenizer.ggml.token_type has %zu entries, tokenizer.ggml.tokens %zu", path, ntypes, n);
    }
    if (spm) {
        LL_TRY(ll_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &nscores));
        if (nscores != n) return ll_err(LL_ERR_FORMAT, "%s: tokenizer.ggml.scores has %zu entries, tokenizer.ggml.tokens %zu", path, nscores, n);
    }
    ll_tokenizer *t;
    LL_TRY(ll_tok_new(&t, path, (int32_t)n));
    float *score = spm ? malloc(n * sizeof *score) : NULL;
    ll_status st = spm && !score ? ll_err(LL_ERR_NOMEM, "%s: no memory", path) : LL_OK;
    t->byte_level = bpe;
    for (size_t i = 0; i < n && st == LL_OK; i++) {
        const char *s;
        size_t len;
        int32_t ty = LL_TT_NORMAL;
        if ((st = ll_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s, &len))) break;
        if (has_types && (st = ll_gguf_arr_i32(g, "tokenizer.ggml.token_type", i, &ty))) break;
        if (ty < LL_TT_NORMAL || ty > LL_TT_BYTE) {
            st = ll_err(LL_ERR_FORMAT, "%s: tokenizer.ggml.token_type[%zu] = %d, expected 1..6", path, i, (int)ty);
            break;
        }
        if (spm && (st = ll_gguf_arr_f32(g, "tokenizer.ggml.scores", i, &score[i]))) break;
        char *tmp = malloc(len + 1);
        if (!tmp) {
            st = ll_err(LL_ERR_NOMEM, "%s: no memory", path);
            break;
        }
        memcpy(tmp, s, len);
        size_t fl = len;
        if (bpe && (ty == LL_TT_NORMAL || ty == LL_TT_UNKNOWN)) {
            long r = ll_tok_unmap_bytelevel(tmp, len);
            if (r >= 0) fl = (size_t)r;
        }
        st = ll_tok_set(t, (int32_t)i, tmp, fl, (ll_tok_type)ty);
        free(tmp);
    }
    if (st) goto fail;
    t->bos_id = ll_opt_id(g, "tokenizer.ggml.bos_token_id");
    t->eos_id = ll_opt_id(g, "tokenizer.ggml.eos_token_id");
    int32_t unk = ll_opt_id(g, "tokenizer.ggml.unknown_token_id");
    if ((t->bos_id >= (int32_t)n) || (t->eos_id >= (int32_t)n) || unk >= (int32_t)n) {
        st = ll_err(LL_ERR_FORMAT, "%s: a special token id (bos %d, eos %d, unk %d) is outside the %zu-token vocabulary", path,
                    (int)t->bos_id, (int)t->eos_id, (int)unk, n);
        goto fail;
    }
    if (spm) {
        if ((st = ll_tok_setup_spm(t, score, ll_opt_bool(g, "tokenizer.ggml.add_space_prefix", true), "\xE2\x96\x81",
                                   ll_opt_bool(g, "tokenizer.ggml.remove_extra_whitespaces", false))))
            goto fail;
        if (unk >= 0) t->unk_id = unk;
        snprintf(t->desc, sizeof t->desc, "GGUF llama (SentencePiece BPE by score), %zu tokens", n);
    } else {
        if ((st = ll_gguf_pretok(t, g, path))) goto fail;
        if ((st = ll_tok_push_dec(t, (ll_tok_dec){.kind = LL_DEC_BYTELEVEL}))) goto fail;
        if ((st = ll_tok_index_vocab(t))) goto fail;
        size_t nm;
        if ((st = ll_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &nm))) goto fail;
        if ((st = ll_pairmap_init(&t->merges, nm))) goto fail;
        char buf[1024];
        for (size_t i = 0; i < nm && st == LL_OK; i++) {
            const char *s;
            size_t len;
            if ((st = ll_gguf_arr_str(g, "tokenizer.ggml.merges", i, &s, &len))) break;
            const char *sp = memchr(s, ' ', len);
            if (!sp || len >= sizeof buf) {
                st = ll_err(LL_ERR_FORMAT, "%s: tokenizer.ggml.merges[%zu]: expected \"left right\"", path, i);
                break;
            }
            size_t al = (size_t)(sp - s), bl = len - al - 1;
            memcpy(buf, s, al);
            long fa = ll_tok_unmap_bytelevel(buf, al);
            int32_t ia = fa < 0 ? -1 : ll_strmap_get(&t->vocab, buf, (size_t)fa);
            memcpy(buf, sp + 1, bl);
            long fb = ll_tok_unmap_bytelevel(buf, bl);
            int32_t ib = fb < 0 ? -1 : ll_strmap_get(&t->vocab, buf, (size_t)fb);
            memcpy(buf, s, al);
            memcpy(buf + al, sp + 1, bl);
            long fm = ll_tok_unmap_bytelevel(buf, al + bl);
            int32_t im = fm < 0 ? -1 : ll_strmap_get(&t->vocab, buf, (size_t)fm);
            if (ia < 0 || ib < 0 || im < 0) {
                st = ll_err(LL_ERR_FORMAT, "%s: tokenizer.ggml.merges[%zu] (\"%.*s\"): a side or the result is not in the vocabulary", path, i, (int)(len > 60 ? 60 : len), s);
                break;
            }
            st = ll_pairmap_put(&t->merges, ia, ib, (uint32_t)i, im);
        }
        if (st) goto fail;
        for (int32_t i = 0; i < t->n_vocab && st == LL_OK; i++) {
            if (t->type[i] == LL_TT_CONTROL && t->tok_len[i])
                st = ll_tok_add_added(t, i, t->tok[i], t->tok_len[i], true, false, false, false, false);
            else if (t->type[i] == LL_TT_USER && t->tok_len[i])
                st = ll_tok_add_added(t, i, t->tok[i], t->tok_len[i], false, false, false, false, false);
        }
        if (st) goto fail;
        t->unk_id = unk;
        snprintf(t->desc, sizeof t->desc, "GGUF gpt2 (byte-level BPE), %zu tokens", n);
    }
    bool add_bos = ll_opt_bool(g, "tokenizer.ggml.add_bos_token", spm);
    bool add_eos = ll_opt_bool(g, "tokenizer.ggml.add_eos_token", false);
    t->n_prefix = t->n_suffix = 0;
    if (add_bos && t->bos_id >= 0) t->prefix[t->n_prefix++] = t->bos_id;
    if (add_eos && t->eos_id >= 0) t->suffix[t->n_suffix++] = t->eos_id;
    free(score);
    *out = t;
    return LL_OK;
fail:
    free(score);
    ll_tokenizer_free(t);
    return st;
}
