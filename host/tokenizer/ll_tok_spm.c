/* SentencePiece .model files (a serialized ModelProto) of BPE type.
 *
 * Only the fields that change encoding are read: the pieces (text, score, type),
 * trainer_spec.model_type / byte_fallback / treat_whitespace_as_suffix, and
 * normalizer_spec (name, add_dummy_prefix, remove_extra_whitespaces,
 * escape_whitespaces). The protobuf wire format is small enough to read by hand
 * and every length is checked against the buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/ll_mmap.h"
#include "ll_tok_internal.h"

typedef struct {
    const unsigned char *p, *end;
    const char *path;
} ll_pb;

static bool ll_pb_varint(ll_pb *b, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return false;
        unsigned char c = *b->p++;
        *v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) return true;
    }
    return false;
}

/* Next field: number, wire type, and for length-delimited fields a sub-reader. */
static ll_status ll_pb_next(ll_pb *b, uint32_t *field, uint32_t *wire, ll_pb *sub, uint64_t *val, const char *where) {
    uint64_t key;
    if (!ll_pb_varint(b, &key)) return ll_err(LL_ERR_FORMAT, "%s: %s: truncated field key", b->path, where);
    *field = (uint32_t)(key >> 3);
    *wire = (uint32_t)(key & 7);
    *val = 0;
    switch (*wire) {
    case 0:
        if (!ll_pb_varint(b, val)) return ll_err(LL_ERR_FORMAT, "%s: %s: field %u: truncated varint", b->path, where, *field);
        return LL_OK;
    case 1:
        if (b->end - b->p < 8) return ll_err(LL_ERR_FORMAT, "%s: %s: field %u: truncated", b->path, where, *field);
        memcpy(val, b->p, 8);
        b->p += 8;
        return LL_OK;
    case 5: {
        if (b->end - b->p < 4) return ll_err(LL_ERR_FORMAT, "%s: %s: field %u: truncated", b->path, where, *field);
        uint32_t u;
        memcpy(&u, b->p, 4);
        *val = u;
        b->p += 4;
        return LL_OK;
    }
    case 2: {
        uint64_t len;
        if (!ll_pb_varint(b, &len) || len > (uint64_t)(b->end - b->p))
            return ll_err(LL_ERR_FORMAT, "%s: %s: field %u: length runs past the end of the file", b->path, where, *field);
        sub->p = b->p;
        sub->end = b->p + len;
        sub->path = b->path;
        b->p += len;
        return LL_OK;
    }
    default: return ll_err(LL_ERR_FORMAT, "%s: %s: field %u has unknown wire type %u (not a SentencePiece model?)", b->path, where, *field, *wire);
    }
}

typedef struct {
    char *s;
    size_t n;
    float score;
    int type;
} ll_spm_piece;

ll_status ll_tokenizer_load_spm(ll_tokenizer **out, const char *path) {
    *out = NULL;
    ll_mmap m = {0};
    LL_TRY(ll_mmap_open(&m, path));
    ll_pb b = {m.data, m.data + m.size, path};
    ll_spm_piece *pieces = NULL;
    size_t np = 0, cap = 0;
    int model_type = 1; /* UNIGRAM is the proto default */
    bool byte_fallback = false, ws_suffix = false, dummy = true, collapse = true, escape = true;
    const char *norm_name = NULL;
    size_t norm_name_len = 0;
    ll_status st = LL_OK;
    ll_tokenizer *t = NULL;
    float *score = NULL;
    while (b.p < b.end && st == LL_OK) {
        uint32_t f, w;
        uint64_t v;
        ll_pb sub = {0};
        if ((st = ll_pb_next(&b, &f, &w, &sub, &v, "ModelProto"))) break;
        if (f == 1 && w == 2) {
            ll_spm_piece pc = {.type = LL_TT_NORMAL};
            const unsigned char *ps = NULL;
            size_t pl = 0;
            while (sub.p < sub.end && st == LL_OK) {
                uint32_t f2, w2;
                uint64_t v2;
                ll_pb s2 = {0};
                if ((st = ll_pb_next(&sub, &f2, &w2, &s2, &v2, "SentencePiece"))) break;
                if (f2 == 1 && w2 == 2) ps = s2.p, pl = (size_t)(s2.end - s2.p);
                else if (f2 == 2 && w2 == 5) {
                    uint32_t u = (uint32_t)v2;
                    memcpy(&pc.score, &u, 4);
                } else if (f2 == 3 && w2 == 0) pc.type = (int)v2;
            }
            if (st) break;
            if (pc.type < LL_TT_NORMAL || pc.type > LL_TT_BYTE) {
                st = ll_err(LL_ERR_FORMAT, "%s: piece %zu has type %d (expected 1..6)", path, np, pc.type);
                break;
            }
            if (np == cap) {
                cap = cap ? cap * 2 : 1024;
                ll_spm_piece *nv = realloc(pieces, cap * sizeof *nv);
                if (!nv) {
                    st = ll_err(LL_ERR_NOMEM, "%s: no memory for pieces", path);
                    break;
                }
                pieces = nv;
            }
            pc.s = malloc(pl + 1);
            if (!pc.s) {
                st = ll_err(LL_ERR_NOMEM, "%s: no memory for pieces", path);
                break;
            }
            if (pl) memcpy(pc.s, ps, pl);
            pc.s[pl] = 0;
            pc.n = pl;
            pieces[np++] = pc;
        } else if (f == 2 && w == 2) { /* TrainerSpec */
            while (sub.p < sub.end && st == LL_OK) {
                uint32_t f2, w2;
                uint64_t v2;
                ll_pb s2 = {0};
                if ((st = ll_pb_next(&sub, &f2, &w2, &s2, &v2, "TrainerSpec"))) break;
                if (f2 == 3 && w2 == 0) model_type = (int)v2;
                else if (f2 == 35 && w2 == 0) byte_fallback = v2 != 0;
                else if (f2 == 24 && w2 == 0) ws_suffix = v2 != 0;
            }
        } else if (f == 3 && w == 2) { /* NormalizerSpec */
            while (sub.p < sub.end && st == LL_OK) {
                uint32_t f2, w2;
                uint64_t v2;
                ll_pb s2 = {0};
                if ((st = ll_pb_next(&sub, &f2, &w2, &s2, &v2, "NormalizerSpec"))) break;
                if (f2 == 1 && w2 == 2) norm_name = (const char *)s2.p, norm_name_len = (size_t)(s2.end - s2.p);
                else if (f2 == 3 && w2 == 0) dummy = v2 != 0;
                else if (f2 == 4 && w2 == 0) collapse = v2 != 0;
                else if (f2 == 5 && w2 == 0) escape = v2 != 0;
            }
        }
    }
    if (st) goto done;
    if (np == 0) {
        st = ll_err(LL_ERR_FORMAT, "%s: no pieces (not a SentencePiece model?)", path);
        goto done;
    }
    if (model_type != 2) {
        static const char *names[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
        st = ll_err(LL_ERR_UNSUPPORTED, "%s: trainer_spec.model_type is %s; only BPE SentencePiece models are supported", path,
                    model_type >= 0 && model_type <= 4 ? names[model_type] : "unknown");
        goto done;
    }
    if (ws_suffix) {
        st = ll_err(LL_ERR_UNSUPPORTED, "%s: trainer_spec.treat_whitespace_as_suffix is not supported", path);
        goto done;
    }
    if (norm_name && !(norm_name_len == 8 && !memcmp(norm_name, "identity", 8))) {
        st = ll_err(LL_ERR_UNSUPPORTED,
                    "%s: normalizer_spec.name is \"%.*s\"; only the \"identity\" normalizer is supported (its "
                    "precompiled character map is not implemented)",
                    path, (int)(norm_name_len > 40 ? 40 : norm_name_len), norm_name);
        goto done;
    }
    if ((st = ll_tok_new(&t, path, (int32_t)np))) goto done;
    score = malloc(np * sizeof *score);
    if (!score) {
        st = ll_err(LL_ERR_NOMEM, "%s: no memory", path);
        goto done;
    }
    for (size_t i = 0; i < np && st == LL_OK; i++) {
        score[i] = pieces[i].score;
        st = ll_tok_set(t, (int32_t)i, pieces[i].s, pieces[i].n, (ll_tok_type)pieces[i].type);
        if (pieces[i].type == LL_TT_CONTROL && t->bos_id < 0 && !strcmp(pieces[i].s, "<s>")) t->bos_id = (int32_t)i;
        if (pieces[i].type == LL_TT_CONTROL && t->eos_id < 0 && !strcmp(pieces[i].s, "</s>")) t->eos_id = (int32_t)i;
    }
    if (st) goto done;
    if ((st = ll_tok_setup_spm(t, score, dummy, escape ? "\xE2\x96\x81" : " ", collapse))) goto done;
    t->byte_fallback = byte_fallback;
    if (t->bos_id >= 0) {
        t->prefix[0] = t->bos_id;
        t->n_prefix = 1;
    }
    snprintf(t->desc, sizeof t->desc, "SentencePiece BPE%s, %d pieces", byte_fallback ? " with byte fallback" : "",
             (int)t->n_vocab);
done:
    for (size_t i = 0; i < np; i++) free(pieces[i].s);
    free(pieces);
    free(score);
    ll_mmap_close(&m);
    if (st) {
        ll_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LL_OK;
}
