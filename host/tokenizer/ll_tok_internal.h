/* Internals shared by the tokenizer files: the tokenizer object, the aligned text
 * buffer the pipeline works on, and the steps (normalizers, pre-tokenizers,
 * decoders) that the loaders fill in. */
#ifndef LL_TOK_INTERNAL_H
#define LL_TOK_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ll_tokenizer.h"

/* ---- hash maps ---- */
/* Byte string -> id (open addressing; keys point into storage the owner keeps). */
typedef struct {
    const char **key;
    uint32_t *klen;
    int32_t *val;
    size_t cap, n; /* cap is a power of two */
} ll_strmap;

ll_status ll_strmap_init(ll_strmap *m, size_t expected);
ll_status ll_strmap_put(ll_strmap *m, const char *k, size_t len, int32_t v); /* keeps the first value */
int32_t ll_strmap_get(const ll_strmap *m, const char *k, size_t len);   /* -1 when absent */
void ll_strmap_free(ll_strmap *m);
uint64_t ll_tok_hash(const char *k, size_t len);

/* Pair of ids -> merge (rank, id of the merged token). */
typedef struct {
    uint64_t *key; /* (a << 32 | b) + 1, 0 = empty */
    uint32_t *rank;
    int32_t *merged;
    size_t cap, n;
} ll_pairmap;

ll_status ll_pairmap_init(ll_pairmap *m, size_t expected);
ll_status ll_pairmap_put(ll_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t merged); /* keeps the best rank */
bool ll_pairmap_get(const ll_pairmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *merged);
void ll_pairmap_free(ll_pairmap *m);

/* ---- aligned text ----
 * The pipeline's text: bytes plus, for every byte, the span [os, oe) of input
 * bytes it stands for. Pieces are ranges of this arena; a step that rewrites a
 * piece appends the new version and moves the range. */
typedef struct {
    char *b;
    int64_t *os, *oe;
    size_t n, cap;
} ll_tok_buf;

typedef struct {
    size_t off, len;
} ll_tok_piece;

typedef struct {
    ll_tok_piece *p;
    size_t n, cap;
} ll_tok_pieces;

ll_status ll_tok_buf_reserve(ll_tok_buf *b, size_t extra);
/* Append bytes that all stand for input span [os, oe). */
ll_status ll_tok_buf_push(ll_tok_buf *b, const char *s, size_t len, int64_t os, int64_t oe);
/* Append bytes copied from position `from` of the same buffer, keeping their spans. */
ll_status ll_tok_buf_copy(ll_tok_buf *b, size_t from, size_t len);
void ll_tok_buf_free(ll_tok_buf *b);
ll_status ll_tok_pieces_push(ll_tok_pieces *ps, size_t off, size_t len);

/* Input bytes -> valid UTF-8 with spans; each maximal invalid subsequence becomes
 * U+FFFD (what Python's errors="replace" and hence Hugging Face do). */
ll_status ll_tok_sanitize(ll_tok_buf *out, const char *text, size_t len, int64_t base);
/* Length of the UTF-8 character at s (1 for a bad lead byte; input is sanitized). */
static inline size_t ll_utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* ---- steps ---- */
typedef enum {
    LL_TNORM_PREPEND,   /* s: prefix, only when the text is not empty */
    LL_TNORM_REPLACE,   /* s -> s2 (literal), or regex -> s2 */
    LL_TNORM_NFC,
    LL_TNORM_NFD,
    LL_TNORM_NFKC,
    LL_TNORM_NFKD,
    LL_TNORM_LOWERCASE,
    LL_TNORM_STRIP,     /* left / right whitespace */
    LL_TNORM_COLLAPSE_WS, /* SentencePiece remove_extra_whitespaces (on ' ') */
    LL_TNORM_RSTRIP_STR,  /* drop trailing copies of s (SentencePiece strips escaped spaces at the end) */
} ll_tnorm_kind;

typedef enum {
    LL_SPLIT_REMOVED,
    LL_SPLIT_ISOLATED,
    LL_SPLIT_MERGED_PREV,
    LL_SPLIT_MERGED_NEXT,
    LL_SPLIT_CONTIGUOUS,
} ll_split_behavior;

typedef enum {
    LL_PRE_SPLIT,     /* regex (or literal) split with a behaviour */
    LL_PRE_BYTELEVEL, /* optional prefix space, then the GPT-2 regex split when use_regex */
    LL_PRE_METASPACE, /* ' ' -> replacement, prepend per scheme, optional split */
} ll_pre_kind;

typedef enum { LL_PREPEND_ALWAYS, LL_PREPEND_FIRST, LL_PREPEND_NEVER } ll_prepend_scheme;

typedef struct ll_tok_regex ll_tok_regex; /* PCRE2, see ll_tok_regex.c */

typedef struct {
    int kind;
    char *s, *s2;
    size_t slen, s2len;
    ll_tok_regex *re;
    bool left, right;
    /* pre-tokenizers */
    ll_split_behavior behavior;
    bool invert;
    bool add_prefix_space;
    ll_prepend_scheme scheme;
    bool split;
} ll_tok_step;

typedef enum {
    LL_DEC_BYTELEVEL,   /* tokens are raw bytes already: nothing per token */
    LL_DEC_REPLACE,     /* s -> s2 in each token */
    LL_DEC_BYTEFALLBACK,/* runs of <0xXX> tokens -> bytes (U+FFFD each when invalid) */
    LL_DEC_FUSE,
    LL_DEC_STRIP,       /* up to `left` leading and `right` trailing copies of s */
    LL_DEC_METASPACE,   /* replacement -> ' ', and drop the first token's leading space */
    LL_DEC_WORDPIECE,   /* "##" continuation joined, others separated by spaces */
} ll_dec_kind;

typedef struct {
    ll_dec_kind kind;
    char *s, *s2;
    size_t slen, s2len;
    int left, right;
    bool strip_first; /* metaspace: prepend scheme is not "never" */
} ll_tok_dec;

typedef struct {
    int32_t id;
    char *content;
    size_t len;
    bool special, lstrip, rstrip, single_word, normalized;
} ll_added_tok;

typedef enum { LL_TT_NORMAL = 1, LL_TT_UNKNOWN, LL_TT_CONTROL, LL_TT_USER, LL_TT_UNUSED, LL_TT_BYTE } ll_tok_type;

typedef enum { LL_TOKM_BPE, LL_TOKM_WORDLEVEL } ll_tok_model;

/* The word cache: recent pre-token -> tokens, direct-mapped. */
#define LL_TOK_CACHE_SLOTS 16384
#define LL_TOK_CACHE_KEY 40
#define LL_TOK_CACHE_TOKS 12
typedef struct {
    uint64_t hash;
    uint8_t klen, ntok;
    char key[LL_TOK_CACHE_KEY];
    int32_t ids[LL_TOK_CACHE_TOKS];
    uint8_t lens[LL_TOK_CACHE_TOKS];
} ll_tok_cache_slot;

struct ll_tokenizer {
    char *name;        /* the file, for messages */
    char desc[256];
    ll_tok_model model;
    int32_t n_vocab;   /* ids 0..n_vocab-1 (model vocabulary and added tokens) */
    char **tok;        /* id -> bytes (byte-level vocabularies in raw bytes) */
    uint32_t *tok_len;
    uint8_t *type;     /* ll_tok_type */
    ll_strmap vocab;   /* model vocabulary: bytes -> id */
    ll_pairmap merges;
    bool byte_level;
    bool byte_fallback;
    int32_t byte_tok[256]; /* <0xXX> ids for byte fallback, -1 when absent */
    int32_t byte_sym[256]; /* byte-level: id of each single byte */
    int32_t unk_id;
    bool fuse_unk;
    bool ignore_merges;
    /* Speed only: when no vocabulary entry has this space marker after another
     * character, no merge can cross the start of a run of it, so BPE runs word by word
     * (and words hit the cache) with the same result as on the whole piece. */
    const char *ws_split;
    size_t ws_split_len;
    char *cont_prefix; /* BPE continuing_subword_prefix / WordPiece style ("##") */
    size_t cont_prefix_len;

    ll_tok_step *norm;
    int n_norm;
    ll_tok_step *pre;
    int n_pre;
    ll_tok_dec *dec;
    int n_dec;
    bool dec_join_space; /* no decoder: tokens are joined with spaces (HF's default) */

    ll_added_tok *added;
    int n_added;
    bool any_added_special, any_added_plain;

    int32_t bos_id, eos_id;
    int32_t prefix[8], suffix[8];
    int n_prefix, n_suffix;

    pthread_mutex_t cache_lock;
    ll_tok_cache_slot *cache;
    bool cache_ok;
};

/* Constructors shared by the loaders. */
ll_status ll_tok_new(ll_tokenizer **out, const char *name, int32_t n_vocab);
/* Set entry `id` (bytes copied). */
ll_status ll_tok_set(ll_tokenizer *t, int32_t id, const char *s, size_t len, ll_tok_type type);
/* Index the model vocabulary (all ids whose type is not control/byte/unused... see .c). */
ll_status ll_tok_index_vocab(ll_tokenizer *t);
/* SentencePiece-style merges: every split of a normal piece into two pieces is a merge
 * ranked by the piece's score (higher first); ties keep vocabulary order. */
ll_status ll_tok_merges_from_scores(ll_tokenizer *t, const float *score);
/* Decide t->ws_split from the vocabulary (after it is indexed). */
void ll_tok_detect_ws_split(ll_tokenizer *t);
/* Byte fallback ids from "<0xXX>" pieces. */
void ll_tok_find_byte_tokens(ll_tokenizer *t);
ll_status ll_tok_add_added(ll_tokenizer *t, int32_t id, const char *s, size_t len, bool special, bool lstrip,
                           bool rstrip, bool single_word, bool normalized);
ll_status ll_tok_push_norm(ll_tokenizer *t, ll_tok_step st);
ll_status ll_tok_push_pre(ll_tokenizer *t, ll_tok_step st);
ll_status ll_tok_push_dec(ll_tokenizer *t, ll_tok_dec d);
/* The SentencePiece conventions (dummy prefix, spaces as `space`, byte fallback,
 * Llama decoder) on a tokenizer whose vocabulary is already set. */
ll_status ll_tok_setup_spm(ll_tokenizer *t, const float *score, bool add_dummy_prefix, const char *space,
                           bool remove_extra_ws);
/* GPT-2's byte <-> unicode table: the character a byte is written as in vocab files. */
uint32_t ll_tok_byte_to_cp(uint8_t b);
int ll_tok_cp_to_byte(uint32_t cp); /* -1 when not in the table */
/* A vocab string in the GPT-2 alphabet -> raw bytes (in place; returns new length), or
 * -1 when it contains a character outside the alphabet. */
long ll_tok_unmap_bytelevel(char *s, size_t len);
/* Known pre-tokenizer regexes by name: "gpt2", "llama3", "qwen2". */
const char *ll_tok_pattern(const char *name);

/* Regex (PCRE2, UTF + Unicode properties, JIT when available). */
ll_status ll_tok_regex_new(ll_tok_regex **out, const char *pattern, size_t len, bool literal, const char *where);
void ll_tok_regex_free(ll_tok_regex *re);
/* Next match in s[0..n) at or after `from`: returns false when none. */
bool ll_tok_regex_next(const ll_tok_regex *re, const char *s, size_t n, size_t from, size_t *ms, size_t *me);

/* Pipeline steps on a piece of the arena. */
ll_status ll_tok_normalize(const ll_tokenizer *t, ll_tok_buf *b, ll_tok_piece *p);
ll_status ll_tok_pretokenize(const ll_tokenizer *t, ll_tok_buf *b, ll_tok_piece in, ll_tok_pieces *out);
/* Model: tokens of one pre-token, with spans, appended to enc. */
ll_status ll_tok_model_encode(const ll_tokenizer *t, const ll_tok_buf *b, ll_tok_piece p, ll_encoding *enc);
ll_status ll_encoding_push(ll_encoding *e, int32_t id, int64_t s, int64_t en);

#endif
