/* Tokenizers: text -> token ids with the byte span each token came from, and back.
 *
 * One engine serves every vocabulary layerlab reads:
 *   - Hugging Face tokenizer.json: BPE (byte-level as in GPT-2 / Llama-3 / Qwen2, or
 *     SentencePiece-style with the "▁" metaspace and <0x..> byte fallback as in
 *     Llama-2 / Mistral) and WordLevel, with added and special tokens, normalizers,
 *     pre-tokenizers, post-processor and decoders; tokenizer_config.json's
 *     add_bos_token / add_eos_token when it sits next to it (what transformers honours);
 *   - SentencePiece .model files (BPE type), GGUF vocabularies (tokenizer.ggml.*, the
 *     "llama" score model and the "gpt2" merges model) and llama2.c tokenizer.bin files.
 * SentencePiece-style vocabularies become a BPE whose merge priority is the score of
 * the merged piece, which is exactly SentencePiece's own BPE rule.
 *
 * Spans are byte offsets into the caller's input, [start, end). Bytes a normalizer
 * inserted (the "▁" dummy prefix, a prepended space) belong to no input byte, so a
 * token made only of them has an empty span. Unlike Hugging Face's trim_offsets, the
 * leading space of "Ġworld" counts as part of its span: for lossless tokenizers the
 * spans tile the input. Invalid UTF-8 in the input is read the way Hugging Face sees
 * it from Python (each maximal invalid subsequence becomes U+FFFD), and the span of the
 * resulting token(s) covers the invalid bytes.
 *
 * A tokenizer is immutable after loading except for an internal word cache that is
 * guarded by a lock, so it can be shared by threads. */
#ifndef LL_TOKENIZER_H
#define LL_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/ll_status.h"

typedef struct ll_tokenizer ll_tokenizer;

typedef struct {
    int32_t *ids;
    int64_t *start, *end; /* byte span of each token in the input */
    size_t n, cap;
} ll_encoding;

enum {
    /* Add BOS/EOS as the tokenizer does by default (template / add_bos_token). */
    LL_TOK_ADD_SPECIAL = 1u << 0,
    /* Recognise special tokens written in the text ("<s>", "<|endoftext|>") as
     * themselves; without it they are ordinary text. Non-special added tokens are
     * always recognised, as in Hugging Face. */
    LL_TOK_PARSE_SPECIAL = 1u << 1,
    LL_TOK_DEFAULT = LL_TOK_ADD_SPECIAL | LL_TOK_PARSE_SPECIAL,
};

/* ---- loading ---- */
/* tokenizer.json; `config_path` (tokenizer_config.json) may be NULL. */
ll_status ll_tokenizer_load_hf(ll_tokenizer **out, const char *json_path, const char *config_path);
/* Same from memory (fuzzing, tests); `name` only labels messages. */
ll_status ll_tokenizer_parse_hf(ll_tokenizer **out, const char *json, size_t len, const char *config_json,
                                size_t config_len, const char *name);
/* A SentencePiece ModelProto (.model) of BPE type. */
ll_status ll_tokenizer_load_spm(ll_tokenizer **out, const char *path);
/* A llama2.c tokenizer.bin. vocab_size <= 0 reads entries until the end of the file. */
ll_status ll_tokenizer_load_llama2c(ll_tokenizer **out, const char *path, int vocab_size);
/* The tokenizer.ggml.* keys of an open GGUF file (an ll_gguf *, see io/ll_gguf.h). */
ll_status ll_tokenizer_load_gguf(ll_tokenizer **out, const void *gguf);
/* The tokenizer that goes with a model path: `override` when given (tokenizer.json,
 * .model, llama2.c .bin, or a directory holding one), else tokenizer.json next to the
 * weights, the vocabulary inside a .gguf, or tokenizer.model in the directory.
 * vocab_size (from the model's config; <= 0 unknown) bounds llama2.c files and is
 * checked against the tokenizer. */
ll_status ll_tokenizer_for_model(ll_tokenizer **out, const char *model_path, const char *override, int vocab_size);
void ll_tokenizer_free(ll_tokenizer *t);

/* ---- using ---- */
/* Appends to *enc (which may start zeroed). On failure *enc keeps what it had. */
ll_status ll_tokenizer_encode(const ll_tokenizer *t, const char *text, size_t len, unsigned flags, ll_encoding *enc);
void ll_encoding_free(ll_encoding *enc);

/* Decode ids into a NUL-terminated UTF-8 string (malloc'd, *out_len without the NUL).
 * skip_special leaves out control/special tokens. Invalid byte sequences produced by
 * byte tokens become U+FFFD, as Hugging Face does. */
ll_status ll_tokenizer_decode(const ll_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out,
                              size_t *out_len);

/* The vocabulary entry of one id as stored (byte-level vocabularies in raw bytes).
 * NULL for ids out of range. */
const char *ll_tokenizer_piece(const ll_tokenizer *t, int32_t id, size_t *len);
int32_t ll_tokenizer_n_vocab(const ll_tokenizer *t);
int32_t ll_tokenizer_bos(const ll_tokenizer *t); /* -1 when none */
int32_t ll_tokenizer_eos(const ll_tokenizer *t);
bool ll_tokenizer_adds_bos(const ll_tokenizer *t);
bool ll_tokenizer_is_special(const ll_tokenizer *t, int32_t id);
/* A one-line description: "tokenizer.json BPE byte-level (regex split), 50257 tokens". */
const char *ll_tokenizer_describe(const ll_tokenizer *t);
/* Look a token string up (special tokens included); -1 when absent. */
int32_t ll_tokenizer_token_id(const ll_tokenizer *t, const char *s, size_t len);

/* ---- streaming decode ----
 * Feeds ids one at a time and returns only text that can no longer change: a
 * character split across byte tokens is held back until complete, and the
 * context-dependent first-token space handling is the same as decoding the whole
 * sequence at once. `context` ids (the prompt) are decoded but not emitted. */
typedef struct {
    const ll_tokenizer *t;
    int32_t *ids;
    size_t n, cap;
    size_t prefix, read; /* ids[prefix:read] is the window already emitted */
    bool skip_special;
} ll_detok_stream;

ll_status ll_detok_stream_init(ll_detok_stream *s, const ll_tokenizer *t, const int32_t *context, size_t n,
                               bool skip_special);
/* *out (malloc'd, NUL-terminated, possibly empty) is the new text after this id. */
ll_status ll_detok_stream_push(ll_detok_stream *s, int32_t id, char **out, size_t *out_len);
/* Whatever is still held back (an incomplete character comes out as U+FFFD). */
ll_status ll_detok_stream_flush(ll_detok_stream *s, char **out, size_t *out_len);
void ll_detok_stream_free(ll_detok_stream *s);

#endif
