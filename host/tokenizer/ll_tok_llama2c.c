/* llama2.c tokenizer.bin: int32 max_token_length, then per token a float score,
 * an int32 byte length and the bytes. The export wrote SentencePiece pieces with
 * "▁" turned into a space and BOS / EOS as "\n<s>\n" / "\n</s>\n"; ids 0, 1, 2 are
 * unk, BOS and EOS by run.c's convention. Encoding follows run.c (and therefore
 * SentencePiece): a dummy space in front, merges by score, <0xXX> byte fallback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/ll_mmap.h"
#include "ll_tok_internal.h"

ll_status ll_tokenizer_load_llama2c(ll_tokenizer **out, const char *path, int vocab_size) {
    *out = NULL;
    ll_mmap m = {0};
    LL_TRY(ll_mmap_open(&m, path));
    const unsigned char *p = m.data, *end = m.data + m.size;
    ll_status st = LL_OK;
    ll_tokenizer *t = NULL;
    float *score = NULL;
    int32_t maxlen;
    if (m.size < 4) {
        st = ll_err(LL_ERR_FORMAT, "%s: truncated: a llama2.c tokenizer starts with a 4-byte max_token_length", path);
        goto done;
    }
    memcpy(&maxlen, p, 4);
    p += 4;
    if (maxlen <= 0 || maxlen > 4096) {
        st = ll_err(LL_ERR_FORMAT, "%s: max_token_length is %d, expected 1..4096 (not a llama2.c tokenizer?)", path, (int)maxlen);
        goto done;
    }
    /* Count entries (the file does not say how many) and validate as we go. */
    size_t n = 0;
    for (const unsigned char *q = p; q < end && (vocab_size <= 0 || n < (size_t)vocab_size); n++) {
        int32_t len;
        if (end - q < 8) {
            st = ll_err(LL_ERR_FORMAT, "%s: token %zu: truncated header (score and length)", path, n);
            goto done;
        }
        memcpy(&len, q + 4, 4);
        if (len < 0 || len > maxlen || end - q - 8 < len) {
            st = ll_err(LL_ERR_FORMAT, "%s: token %zu: length %d is negative, above max_token_length %d, or runs past the end", path, n, (int)len, (int)maxlen);
            goto done;
        }
        q += 8 + len;
    }
    if (vocab_size > 0 && n < (size_t)vocab_size) {
        st = ll_err(LL_ERR_FORMAT, "%s: has %zu tokens, the model's vocabulary has %d", path, n, vocab_size);
        goto done;
    }
    if (n < 3) {
        st = ll_err(LL_ERR_FORMAT, "%s: has %zu tokens; a llama2.c vocabulary has at least unk, BOS and EOS", path, n);
        goto done;
    }
    if ((st = ll_tok_new(&t, path, (int32_t)n))) goto done;
    score = malloc(n * sizeof *score);
    if (!score) {
        st = ll_err(LL_ERR_NOMEM, "%s: no memory", path);
        goto done;
    }
    for (size_t i = 0; i < n && st == LL_OK; i++) {
        int32_t len;
        memcpy(&score[i], p, 4);
        memcpy(&len, p + 4, 4);
        const char *s = (const char *)p + 8;
        p += 8 + len;
        ll_tok_type ty = LL_TT_NORMAL;
        if (i == 0) ty = LL_TT_UNKNOWN;
        else if (i == 1) ty = LL_TT_CONTROL, s = "<s>", len = 3;
        else if (i == 2) ty = LL_TT_CONTROL, s = "</s>", len = 4;
        else if (len == 6 && !memcmp(s, "<0x", 3) && s[5] == '>') ty = LL_TT_BYTE;
        st = ll_tok_set(t, (int32_t)i, s, (size_t)len, ty);
    }
    if (st) goto done;
    if ((st = ll_tok_setup_spm(t, score, true, " ", false))) goto done;
    t->bos_id = 1;
    t->eos_id = 2;
    t->prefix[0] = 1;
    t->n_prefix = 1;
    snprintf(t->desc, sizeof t->desc, "llama2.c tokenizer (SentencePiece BPE by score), %d tokens", (int)t->n_vocab);
done:
    free(score);
    ll_mmap_close(&m);
    if (st) {
        ll_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LL_OK;
}
