/* GGUF model files (llama.cpp's format), versions 1, 2 and 3.
 *
 * A GGUF file is a header (magic "GGUF", version, tensor count, metadata
 * count), typed key/value metadata, one info record per tensor (name, ggml
 * dims with ne[0] innermost, ggml type, offset) and then a data section that
 * starts at the next multiple of `general.alignment` (default 32). Version 1
 * writes counts, string lengths and dims as uint32; versions 2 and 3 as uint64.
 *
 * Parsing validates every count, length and offset against the file size, so
 * a truncated or hostile file yields an error naming the file and the key or
 * tensor, never a crash. Metadata (keys, strings, arrays: the tokenizer's
 * vocabulary lives here) is copied into memory the ll_gguf owns, so it stays
 * valid after the mapping itself has been handed to an ll_tensor_set.
 *
 * ll_gguf_load_model() turns a GGUF llama file into the same (ll_config,
 * ll_tensor_set) pair the Hugging Face loader produces: HF tensor names,
 * PyTorch-order shapes, weights used in place from the mapping. */
#ifndef LL_GGUF_H
#define LL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/ll_status.h"
#include "../model/ll_config.h"
#include "ll_tensors.h"

#define LL_GGUF_MAX_DIMS 4
#define LL_GGUF_DEFAULT_ALIGNMENT 32

/* Metadata value types (ids as stored in the file). */
typedef enum {
    LL_GGUF_U8 = 0,
    LL_GGUF_I8 = 1,
    LL_GGUF_U16 = 2,
    LL_GGUF_I16 = 3,
    LL_GGUF_U32 = 4,
    LL_GGUF_I32 = 5,
    LL_GGUF_F32 = 6,
    LL_GGUF_BOOL = 7,
    LL_GGUF_STRING = 8,
    LL_GGUF_ARRAY = 9,
    LL_GGUF_U64 = 10,
    LL_GGUF_I64 = 11,
    LL_GGUF_F64 = 12,
    LL_GGUF_TYPE_COUNT
} ll_gguf_type;

/* ggml tensor type ids as stored in tensor infos. Ids 4, 5 (Q4_2, Q4_3) were
 * removed from ggml before GGUF existed and are unknown here. */
typedef enum {
    LL_GGML_F32 = 0,
    LL_GGML_F16 = 1,
    LL_GGML_Q4_0 = 2,
    LL_GGML_Q4_1 = 3,
    LL_GGML_Q5_0 = 6,
    LL_GGML_Q5_1 = 7,
    LL_GGML_Q8_0 = 8,
    LL_GGML_Q8_1 = 9,
    LL_GGML_Q2_K = 10,
    LL_GGML_Q3_K = 11,
    LL_GGML_Q4_K = 12,
    LL_GGML_Q5_K = 13,
    LL_GGML_Q6_K = 14,
    LL_GGML_Q8_K = 15,
    LL_GGML_IQ2_XXS = 16,
    LL_GGML_IQ2_XS = 17,
    LL_GGML_IQ3_XXS = 18,
    LL_GGML_IQ1_S = 19,
    LL_GGML_IQ4_NL = 20,
    LL_GGML_IQ3_S = 21,
    LL_GGML_IQ2_S = 22,
    LL_GGML_IQ4_XS = 23,
    LL_GGML_I8 = 24,
    LL_GGML_I16 = 25,
    LL_GGML_I32 = 26,
    LL_GGML_I64 = 27,
    LL_GGML_F64 = 28,
    LL_GGML_IQ1_M = 29,
    LL_GGML_BF16 = 30,
    LL_GGML_Q4_0_4_4 = 31, /* 31..33, 36..38: repacked layouts ggml wrote for a while */
    LL_GGML_Q4_0_4_8 = 32,
    LL_GGML_Q4_0_8_8 = 33,
    LL_GGML_TQ1_0 = 34,
    LL_GGML_TQ2_0 = 35,
    LL_GGML_IQ4_NL_4_4 = 36,
    LL_GGML_IQ4_NL_4_8 = 37,
    LL_GGML_IQ4_NL_8_8 = 38,
    LL_GGML_MXFP4 = 39,
    LL_GGML_NVFP4 = 40,
    LL_GGML_Q1_0 = 41,
    LL_GGML_TYPE_COUNT
} ll_ggml_type;

/* "Q4_K", "F16", ...; NULL for an unknown id. */
const char *ll_ggml_type_name(uint32_t type);
/* Elements per block and bytes per block (1 and the element size for plain
 * types). Returns false for an unknown id. */
bool ll_ggml_type_layout(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);
/* "u32", "string", "array", ... ("?" when out of range). */
const char *ll_gguf_type_name(ll_gguf_type t);

typedef struct {
    const char *name;              /* NUL-terminated, owned by the ll_gguf */
    uint32_t n_dims;               /* 1..4 */
    uint64_t ne[LL_GGUF_MAX_DIMS]; /* ggml order: ne[0] innermost (contiguous); unused dims are 1 */
    uint32_t type;                 /* ll_ggml_type */
    uint64_t offset;               /* from the start of the data section, a multiple of the alignment */
    uint64_t nbytes;
} ll_gguf_tensor;

typedef struct ll_gguf ll_gguf;

/* Map and parse a file. */
ll_status ll_gguf_open(ll_gguf **out, const char *path);
/* Parse an image already in memory (`path` only names it in messages; may be
 * NULL). The ll_gguf refers to `data` for tensor contents, so `data` must
 * outlive it; metadata is copied. Exposed for the fuzzer. */
ll_status ll_gguf_parse(ll_gguf **out, const unsigned char *data, size_t size, const char *path);
void ll_gguf_free(ll_gguf *g);

int ll_gguf_version(const ll_gguf *g);
const char *ll_gguf_path(const ll_gguf *g);
uint32_t ll_gguf_alignment(const ll_gguf *g);
/* Absolute file offset of the data section. */
uint64_t ll_gguf_data_offset(const ll_gguf *g);

/* ---- metadata ---- */
size_t ll_gguf_n_kv(const ll_gguf *g);
const char *ll_gguf_kv_key(const ll_gguf *g, size_t i);
ll_gguf_type ll_gguf_kv_type(const ll_gguf *g, size_t i);
/* Index of `key`, or -1 when absent. */
long ll_gguf_find_key(const ll_gguf *g, const char *key);

/* Typed getters. A missing key gives LL_ERR_MISSING, a value of another type
 * (or out of range for the requested integer width) LL_ERR_FORMAT; both
 * messages name the file and the key. Integer getters accept any integer
 * type whose value fits, since writers disagree on widths (token ids are
 * u32 in some files, i32 in others); the float getter accepts f32 and f64. */
ll_status ll_gguf_get_u32(const ll_gguf *g, const char *key, uint32_t *out);
ll_status ll_gguf_get_i32(const ll_gguf *g, const char *key, int32_t *out);
ll_status ll_gguf_get_u64(const ll_gguf *g, const char *key, uint64_t *out);
ll_status ll_gguf_get_f32(const ll_gguf *g, const char *key, float *out);
ll_status ll_gguf_get_bool(const ll_gguf *g, const char *key, bool *out);
/* NUL-terminated copy owned by the ll_gguf; *len (may be NULL) is the byte
 * length (strlen would stop early if the value holds NUL bytes). */
ll_status ll_gguf_get_str(const ll_gguf *g, const char *key, const char **s, size_t *len);
/* Arrays: element type and length. */
ll_status ll_gguf_get_arr(const ll_gguf *g, const char *key, ll_gguf_type *elem_type, size_t *n);
ll_status ll_gguf_arr_str(const ll_gguf *g, const char *key, size_t i, const char **s, size_t *len);
ll_status ll_gguf_arr_f32(const ll_gguf *g, const char *key, size_t i, float *out);
ll_status ll_gguf_arr_i32(const ll_gguf *g, const char *key, size_t i, int32_t *out);

/* ---- tensors ---- */
size_t ll_gguf_n_tensors(const ll_gguf *g);
const ll_gguf_tensor *ll_gguf_tensor_at(const ll_gguf *g, size_t i);
const ll_gguf_tensor *ll_gguf_find_tensor(const ll_gguf *g, const char *name);
/* Start of a tensor's bytes, or NULL once the mapping was handed to a tensor set. */
const void *ll_gguf_tensor_data(const ll_gguf *g, const ll_gguf_tensor *t);

/* ---- llama models ---- */

/* Translate a GGUF llama tensor name into its Hugging Face name
 * ("blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight").
 * Returns 1 when translated, 0 when the name has no HF counterpart (out gets
 * the GGUF name unchanged), -1 when `cap` is too small. */
int ll_gguf_hf_name(const char *gguf_name, char *out, size_t cap);

/* Hyper-parameters of a general.architecture = "llama" file. */
ll_status ll_gguf_model_config(const ll_gguf *g, ll_config *cfg);
/* Append the tensors, HF-named with PyTorch-order shapes, pointing into the
 * parsed image; `file_idx` is recorded in each ll_tensor_info. Tensors the
 * model uses must be F32, F16 or BF16; tensors without an HF name are kept
 * under their GGUF name (quantized ones of those are skipped). */
ll_status ll_gguf_model_tensors(const ll_gguf *g, ll_tensor_set *ts, int file_idx);

/* Open `path`, fill *cfg and *ts (overwritten, so pass unused ones; on
 * failure both are left untouched). The tensor set takes the mapping, so its
 * data pointers stay valid until ll_tensor_set_free. If meta_out is not NULL
 * it receives the parsed metadata (the tokenizer vocabulary lives there);
 * free it with ll_gguf_free, in any order relative to the tensor set. */
ll_status ll_gguf_load_model(const char *path, ll_config *cfg, ll_tensor_set *ts, ll_gguf **meta_out);

#endif
