/* Which tokenizer goes with a model: the file next to the weights, the vocabulary
 * inside a GGUF, or the one the user named. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/ll_gguf.h"
#include "ll_tok_internal.h"

static bool ll_is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static bool ll_is_file(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

static bool ll_ends(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static void ll_dirname(const char *path, char *out, size_t cap) {
    const char *sl = strrchr(path, '/');
    if (!sl) snprintf(out, cap, ".");
    else snprintf(out, cap, "%.*s", (int)(sl - path), path);
}

static ll_status ll_load_file(ll_tokenizer **out, const char *path, int vocab_size);

static ll_status ll_load_dir(ll_tokenizer **out, const char *dir, int vocab_size, bool *found) {
    char p[4096], c[4096];
    *found = true;
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    if (ll_is_file(p)) {
        snprintf(c, sizeof c, "%s/tokenizer_config.json", dir);
        return ll_tokenizer_load_hf(out, p, ll_is_file(c) ? c : NULL);
    }
    snprintf(p, sizeof p, "%s/tokenizer.model", dir);
    if (ll_is_file(p)) return ll_tokenizer_load_spm(out, p);
    (void)vocab_size;
    *found = false;
    return LL_OK;
}

static ll_status ll_load_gguf_file(ll_tokenizer **out, const char *path) {
    ll_gguf *g;
    LL_TRY(ll_gguf_open(&g, path));
    ll_status st = ll_tokenizer_load_gguf(out, g);
    ll_gguf_free(g);
    return st;
}

static ll_status ll_load_file(ll_tokenizer **out, const char *path, int vocab_size) {
    if (ll_is_dir(path)) {
        bool found;
        LL_TRY(ll_load_dir(out, path, vocab_size, &found));
        if (!found) return ll_err(LL_ERR_MISSING, "%s: no tokenizer.json or tokenizer.model in this directory", path);
        return LL_OK;
    }
    if (!ll_is_file(path)) return ll_err(LL_ERR_IO, "%s: tokenizer file not found", path);
    if (ll_ends(path, ".json")) {
        char dir[4096], c[4200];
        ll_dirname(path, dir, sizeof dir);
        snprintf(c, sizeof c, "%s/tokenizer_config.json", dir);
        return ll_tokenizer_load_hf(out, path, ll_is_file(c) ? c : NULL);
    }
    if (ll_ends(path, ".model")) return ll_tokenizer_load_spm(out, path);
    if (ll_ends(path, ".gguf")) return ll_load_gguf_file(out, path);
    return ll_tokenizer_load_llama2c(out, path, vocab_size);
}

ll_status ll_tokenizer_for_model(ll_tokenizer **out, const char *model_path, const char *override, int vocab_size) {
    *out = NULL;
    ll_status st;
    if (override) {
        st = ll_load_file(out, override, vocab_size);
    } else if (ll_is_dir(model_path)) {
        bool found;
        st = ll_load_dir(out, model_path, vocab_size, &found);
        if (st == LL_OK && !found)
            return ll_err(LL_ERR_MISSING,
                          "%s: no tokenizer.json or tokenizer.model next to the weights; pass --tokenizer FILE", model_path);
    } else if (ll_ends(model_path, ".gguf")) {
        st = ll_load_gguf_file(out, model_path);
    } else if (ll_ends(model_path, ".model") || ll_ends(model_path, "tokenizer.json")) {
        st = ll_load_file(out, model_path, vocab_size); /* a tokenizer file given as the model */
    } else {
        char dir[4096];
        bool found;
        ll_dirname(model_path, dir, sizeof dir);
        if (ll_ends(model_path, ".safetensors") || ll_ends(model_path, ".json")) {
            st = ll_load_dir(out, dir, vocab_size, &found);
            if (st == LL_OK && !found)
                return ll_err(LL_ERR_MISSING, "%s: no tokenizer.json or tokenizer.model in %s; pass --tokenizer FILE", model_path, dir);
        } else {
            return ll_err(LL_ERR_MISSING,
                          "%s: a llama2.c checkpoint carries no vocabulary; pass --tokenizer FILE (its tokenizer.bin, "
                          "e.g. tok512.bin for stories260K)",
                          model_path);
        }
    }
    if (st) return st;
    /* Ids the model cannot embed would fail later, far from the cause. */
    if (vocab_size > 0 && (*out)->n_vocab > vocab_size) {
        int32_t nv = (*out)->n_vocab;
        ll_tokenizer_free(*out);
        *out = NULL;
        return ll_err(LL_ERR_SHAPE, "%s: the tokenizer has %d tokens but the model's vocabulary has %d",
                      override ? override : model_path, (int)nv, vocab_size);
    }
    return LL_OK;
}
