/* The tokenizer object: construction helpers shared by the loaders, accessors, and
 * the small tables every family needs (GPT-2's byte alphabet, known split regexes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_tok_internal.h"

ll_status ll_tok_new(ll_tokenizer **out, const char *name, int32_t n_vocab) {
    *out = NULL;
    if (n_vocab <= 0 || n_vocab > (1 << 28))
        return ll_err(LL_ERR_FORMAT, "%s: vocabulary size %d is out of range", name, (int)n_vocab);
    ll_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return ll_err(LL_ERR_NOMEM, "%s: no memory for a tokenizer", name);
    t->name = strdup(name);
    t->n_vocab = n_vocab;
    t->tok = calloc((size_t)n_vocab, sizeof *t->tok);
    t->tok_len = calloc((size_t)n_vocab, sizeof *t->tok_len);
    t->type = calloc((size_t)n_vocab, 1);
    t->unk_id = t->bos_id = t->eos_id = -1;
    for (int i = 0; i < 256; i++) t->byte_tok[i] = t->byte_sym[i] = -1;
    pthread_mutex_init(&t->cache_lock, NULL);
    t->cache = calloc(LL_TOK_CACHE_SLOTS, sizeof *t->cache);
    if (!t->name || !t->tok || !t->tok_len || !t->type || !t->cache) {
        ll_tokenizer_free(t);
        return ll_err(LL_ERR_NOMEM, "%s: no memory for %d vocabulary entries", name, (int)n_vocab);
    }
    *out = t;
    return LL_OK;
}

/* Grow the id space (added tokens beyond the model vocabulary). */
static ll_status ll_tok_grow(ll_tokenizer *t, int32_t n) {
    if (n <= t->n_vocab) return LL_OK;
    char **nt = realloc(t->tok, (size_t)n * sizeof *nt);
    if (nt) t->tok = nt;
    uint32_t *nl = nt ? realloc(t->tok_len, (size_t)n * sizeof *nl) : NULL;
    if (nl) t->tok_len = nl;
    uint8_t *ty = nl ? realloc(t->type, (size_t)n) : NULL;
    if (ty) t->type = ty;
    if (!nt || !nl || !ty) return ll_err(LL_ERR_NOMEM, "%s: no memory for %d tokens", t->name, (int)n);
    for (int32_t i = t->n_vocab; i < n; i++) {
        t->tok[i] = NULL;
        t->tok_len[i] = 0;
        t->type[i] = 0;
    }
    t->n_vocab = n;
    return LL_OK;
}

ll_status ll_tok_set(ll_tokenizer *t, int32_t id, const char *s, size_t len, ll_tok_type type) {
    if (id < 0 || id >= (1 << 28)) return ll_err(LL_ERR_FORMAT, "%s: token id %d is out of range", t->name, (int)id);
    LL_TRY(ll_tok_grow(t, id + 1));
    char *c = malloc(len + 1);
    if (!c) return ll_err(LL_ERR_NOMEM, "%s: no memory for token %d", t->name, (int)id);
    memcpy(c, s, len);
    c[len] = 0;
    free(t->tok[id]);
    t->tok[id] = c;
    t->tok_len[id] = (uint32_t)len;
    t->type[id] = (uint8_t)type;
    return LL_OK;
}

ll_status ll_tok_index_vocab(ll_tokenizer *t) {
    ll_strmap_free(&t->vocab);
    LL_TRY(ll_strmap_init(&t->vocab, (size_t)t->n_vocab));
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (!t->tok[i]) continue;
        /* Control tokens ("<s>") are matched as added tokens, never by the model, so
         * text spelling "<s>" is encoded as characters when specials are not parsed. */
        if (t->type[i] == LL_TT_CONTROL) continue;
        LL_TRY(ll_strmap_put(&t->vocab, t->tok[i], t->tok_len[i], i));
    }
    if (t->byte_level)
        for (int c = 0; c < 256; c++) {
            char ch = (char)c;
            t->byte_sym[c] = ll_strmap_get(&t->vocab, &ch, 1);
        }
    return LL_OK;
}

void ll_tok_detect_ws_split(ll_tokenizer *t) {
    t->ws_split = NULL;
    t->ws_split_len = 0;
    if (t->byte_level || t->model != LL_TOKM_BPE) return;
    static const char *const cands[] = {"\xE2\x96\x81", " "};
    for (size_t c = 0; c < 2; c++) {
        const char *m = cands[c];
        size_t ml = strlen(m);
        if (ll_strmap_get(&t->vocab, m, ml) < 0) continue;
        bool ok = true;
        for (int32_t i = 0; i < t->n_vocab && ok; i++) {
            const char *s = t->tok[i];
            size_t n = t->tok_len[i];
            for (size_t k = 1; s && k + ml <= n && ok; k++)
                if (!memcmp(s + k, m, ml) && !(k >= ml && !memcmp(s + k - ml, m, ml))) ok = false;
        }
        if (ok) {
            t->ws_split = m;
            t->ws_split_len = ml;
            return;
        }
    }
}

void ll_tok_find_byte_tokens(ll_tokenizer *t) {
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const char *s = t->tok[i];
        if (!s || t->tok_len[i] != 6 || memcmp(s, "<0x", 3) || s[5] != '>') continue;
        unsigned v;
        char hex[3] = {s[3], s[4], 0};
        char *end;
        v = (unsigned)strtoul(hex, &end, 16);
        if (*end) continue;
        if (t->byte_tok[v] < 0) t->byte_tok[v] = i;
    }
}

typedef struct {
    float score;
    int32_t id;
} ll_scored;

static int ll_scored_cmp(const void *a, const void *b) {
    const ll_scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

ll_status ll_tok_merges_from_scores(ll_tokenizer *t, const float *score) {
    /* Rank = position in score order, equal scores sharing a rank so that the heap's
     * leftmost-first tie-break decides between them, as SentencePiece's does. */
    ll_scored *order = malloc((size_t)t->n_vocab * sizeof *order);
    uint32_t *rank = malloc((size_t)t->n_vocab * sizeof *rank);
    if (!order || !rank) {
        free(order);
        free(rank);
        return ll_err(LL_ERR_NOMEM, "%s: no memory for merge ranks", t->name);
    }
    for (int32_t i = 0; i < t->n_vocab; i++) order[i] = (ll_scored){score[i], i};
    qsort(order, (size_t)t->n_vocab, sizeof *order, ll_scored_cmp);
    uint32_t r = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (i > 0 && order[i].score != order[i - 1].score) r = (uint32_t)i;
        rank[order[i].id] = r;
    }
    free(order);
    ll_pairmap_free(&t->merges);
    ll_status st = ll_pairmap_init(&t->merges, (size_t)t->n_vocab * 4);
    for (int32_t i = 0; i < t->n_vocab && st == LL_OK; i++) {
        if (t->type[i] != LL_TT_NORMAL || !t->tok[i]) continue;
        const char *s = t->tok[i];
        size_t n = t->tok_len[i];
        /* Every split at a character boundary into two normal pieces is a merge. */
        for (size_t k = ll_utf8_len((unsigned char)s[0]); k < n; k += ll_utf8_len((unsigned char)s[k])) {
            int32_t a = ll_strmap_get(&t->vocab, s, k), b = ll_strmap_get(&t->vocab, s + k, n - k);
            if (a < 0 || b < 0 || t->type[a] != LL_TT_NORMAL || t->type[b] != LL_TT_NORMAL) continue;
            st = ll_pairmap_put(&t->merges, a, b, rank[i], i);
            if (st) break;
        }
    }
    free(rank);
    return st;
}

ll_status ll_tok_add_added(ll_tokenizer *t, int32_t id, const char *s, size_t len, bool special, bool lstrip,
                           bool rstrip, bool single_word, bool normalized) {
    if (!len) return ll_err(LL_ERR_FORMAT, "%s: added token %d has empty content", t->name, (int)id);
    ll_added_tok *na = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *na);
    if (!na) return ll_err(LL_ERR_NOMEM, "%s: no memory for added tokens", t->name);
    t->added = na;
    char *c = malloc(len + 1);
    if (!c) return ll_err(LL_ERR_NOMEM, "%s: no memory for added tokens", t->name);
    memcpy(c, s, len);
    c[len] = 0;
    t->added[t->n_added++] = (ll_added_tok){id, c, len, special, lstrip, rstrip, single_word, normalized};
    if (special) t->any_added_special = true;
    else t->any_added_plain = true;
    return LL_OK;
}

#define LL_PUSH_STEP(arr, n, v)                                                                                        \
    do {                                                                                                               \
        void *np_ = realloc((arr), (size_t)((n) + 1) * sizeof *(arr));                                                 \
        if (!np_) return ll_err(LL_ERR_NOMEM, "%s: no memory for tokenizer steps", t->name);                          \
        (arr) = np_;                                                                                                   \
        (arr)[(n)++] = (v);                                                                                            \
    } while (0)

ll_status ll_tok_push_norm(ll_tokenizer *t, ll_tok_step st) {
    LL_PUSH_STEP(t->norm, t->n_norm, st);
    return LL_OK;
}
ll_status ll_tok_push_pre(ll_tokenizer *t, ll_tok_step st) {
    LL_PUSH_STEP(t->pre, t->n_pre, st);
    return LL_OK;
}
ll_status ll_tok_push_dec(ll_tokenizer *t, ll_tok_dec d) {
    LL_PUSH_STEP(t->dec, t->n_dec, d);
    return LL_OK;
}

static char *ll_dup(const char *s, size_t n) {
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = 0;
    }
    return c;
}

ll_status ll_tok_setup_spm(ll_tokenizer *t, const float *score, bool add_dummy_prefix, const char *space,
                           bool remove_extra_ws) {
    size_t sl = strlen(space);
    bool escape = strcmp(space, " ") != 0;
    if (remove_extra_ws) LL_TRY(ll_tok_push_norm(t, (ll_tok_step){.kind = LL_TNORM_COLLAPSE_WS}));
    if (add_dummy_prefix) {
        ll_tok_step p = {.kind = LL_TNORM_PREPEND, .s = ll_dup(" ", 1), .slen = 1};
        if (!p.s) return ll_err(LL_ERR_NOMEM, "%s: no memory", t->name);
        LL_TRY(ll_tok_push_norm(t, p));
    }
    if (escape) {
        ll_tok_step r = {.kind = LL_TNORM_REPLACE, .s = ll_dup(" ", 1), .slen = 1, .s2 = ll_dup(space, sl), .s2len = sl};
        if (!r.s || !r.s2) return ll_err(LL_ERR_NOMEM, "%s: no memory", t->name);
        LL_TRY(ll_tok_push_norm(t, r));
    }
    if (remove_extra_ws) {
        ll_tok_step r = {.kind = LL_TNORM_RSTRIP_STR, .s = ll_dup(space, sl), .slen = sl};
        if (!r.s) return ll_err(LL_ERR_NOMEM, "%s: no memory", t->name);
        LL_TRY(ll_tok_push_norm(t, r));
    }
    t->byte_fallback = true;
    ll_tok_find_byte_tokens(t);
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (t->type[i] == LL_TT_UNKNOWN && t->unk_id < 0) t->unk_id = i;
        if (t->type[i] == LL_TT_BYTE || t->type[i] == LL_TT_CONTROL) continue;
    }
    LL_TRY(ll_tok_index_vocab(t));
    LL_TRY(ll_tok_merges_from_scores(t, score));
    ll_tok_detect_ws_split(t);
    /* Control tokens are special added tokens; user-defined pieces always match. */
    for (int32_t i = 0; i < t->n_vocab; i++) {
        /* <unk> too: Hugging Face's conversion makes it a special added token. */
        if ((t->type[i] == LL_TT_CONTROL || t->type[i] == LL_TT_UNKNOWN) && t->tok_len[i])
            LL_TRY(ll_tok_add_added(t, i, t->tok[i], t->tok_len[i], true, false, false, false, false));
        else if (t->type[i] == LL_TT_USER && t->tok_len[i])
            LL_TRY(ll_tok_add_added(t, i, t->tok[i], t->tok_len[i], false, false, false, false, false));
    }
    /* Decoder: the Llama chain (spaces back, bytes fused, the dummy prefix dropped). */
    if (escape) {
        ll_tok_dec r = {.kind = LL_DEC_REPLACE, .s = ll_dup(space, sl), .slen = sl, .s2 = ll_dup(" ", 1), .s2len = 1};
        if (!r.s || !r.s2) return ll_err(LL_ERR_NOMEM, "%s: no memory", t->name);
        LL_TRY(ll_tok_push_dec(t, r));
    }
    LL_TRY(ll_tok_push_dec(t, (ll_tok_dec){.kind = LL_DEC_BYTEFALLBACK}));
    LL_TRY(ll_tok_push_dec(t, (ll_tok_dec){.kind = LL_DEC_FUSE}));
    if (add_dummy_prefix) {
        ll_tok_dec s = {.kind = LL_DEC_STRIP, .s = ll_dup(" ", 1), .slen = 1, .left = 1};
        if (!s.s) return ll_err(LL_ERR_NOMEM, "%s: no memory", t->name);
        LL_TRY(ll_tok_push_dec(t, s));
    }
    return LL_OK;
}

/* GPT-2's table: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * are written as U+0100 onwards in byte order, so every vocab string is printable. */
static bool ll_byte_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t ll_tok_byte_to_cp(uint8_t b) {
    if (ll_byte_printable(b)) return b;
    uint32_t k = 0;
    for (unsigned x = 0; x < b; x++)
        if (!ll_byte_printable(x)) k++;
    return 0x100 + k;
}

int ll_tok_cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return ll_byte_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    uint32_t k = cp - 0x100;
    for (unsigned x = 0; x < 256; x++)
        if (!ll_byte_printable(x) && k-- == 0) return (int)x;
    return -1;
}

long ll_tok_unmap_bytelevel(char *s, size_t len) {
    static int table[0x100 + 68];
    static bool init;
    if (!init) {
        for (uint32_t cp = 0; cp < 0x100 + 68; cp++) table[cp] = ll_tok_cp_to_byte(cp);
        init = true;
    }
    size_t w = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = ll_utf8_len(u[i]);
        if (i + l > len || l > 2) return -1;
        cp = l == 1 ? u[i] : (((uint32_t)(u[i] & 0x1F) << 6) | (u[i + 1] & 0x3F));
        if (cp >= 0x100 + 68 || table[cp] < 0) return -1;
        s[w++] = (char)table[cp];
        i += l;
    }
    return (long)w;
}

const char *ll_tok_pattern(const char *name) {
    if (!strcmp(name, "gpt2"))
        return "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    if (!strcmp(name, "llama3"))
        return "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    if (!strcmp(name, "qwen2"))
        return "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    return NULL;
}

void ll_tokenizer_free(ll_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->n_vocab; i++) free(t->tok[i]);
    free(t->tok);
    free(t->tok_len);
    free(t->type);
    ll_strmap_free(&t->vocab);
    ll_pairmap_free(&t->merges);
    for (int k = 0; k < t->n_norm; k++) {
        free(t->norm[k].s);
        free(t->norm[k].s2);
        ll_tok_regex_free(t->norm[k].re);
    }
    for (int k = 0; k < t->n_pre; k++) {
        free(t->pre[k].s);
        free(t->pre[k].s2);
        ll_tok_regex_free(t->pre[k].re);
    }
    for (int k = 0; k < t->n_dec; k++) {
        free(t->dec[k].s);
        free(t->dec[k].s2);
    }
    free(t->norm);
    free(t->pre);
    free(t->dec);
    for (int k = 0; k < t->n_added; k++) free(t->added[k].content);
    free(t->added);
    free(t->cont_prefix);
    free(t->cache);
    pthread_mutex_destroy(&t->cache_lock);
    free(t->name);
    free(t);
}

void ll_encoding_free(ll_encoding *e) {
    free(e->ids);
    free(e->start);
    free(e->end);
    memset(e, 0, sizeof *e);
}

const char *ll_tokenizer_piece(const ll_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab || !t->tok[id]) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->tok_len[id];
    return t->tok[id];
}

int32_t ll_tokenizer_n_vocab(const ll_tokenizer *t) { return t->n_vocab; }
int32_t ll_tokenizer_bos(const ll_tokenizer *t) { return t->bos_id; }
int32_t ll_tokenizer_eos(const ll_tokenizer *t) { return t->eos_id; }
const char *ll_tokenizer_describe(const ll_tokenizer *t) { return t->desc; }

bool ll_tokenizer_adds_bos(const ll_tokenizer *t) {
    return t->n_prefix > 0 && t->bos_id >= 0 && t->prefix[0] == t->bos_id;
}

/* Special added tokens are typed CONTROL by every loader; <unk> counts as special too
 * (Hugging Face's skip_special_tokens drops it). */
bool ll_tokenizer_is_special(const ll_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return false;
    return t->type[id] == LL_TT_CONTROL || t->type[id] == LL_TT_UNKNOWN;
}

int32_t ll_tokenizer_token_id(const ll_tokenizer *t, const char *s, size_t len) {
    for (int k = 0; k < t->n_added; k++)
        if (t->added[k].len == len && !memcmp(t->added[k].content, s, len)) return t->added[k].id;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->tok[i] && t->tok_len[i] == len && !memcmp(t->tok[i], s, len)) return i;
    return -1;
}
