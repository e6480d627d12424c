/* A checkpoint seen as a table of named tensors.
 *
 * Every loader (safetensors, GGUF, llama2.c) produces an ll_tensor_set whose
 * names follow the Hugging Face convention ("model.layers.3.self_attn.q_proj.weight",
 * "transformer.h.0.attn.c_attn.weight", ...) and whose shapes are row-major in
 * PyTorch order. The model builder then only knows one naming scheme; the GGUF
 * and llama2.c loaders translate their own names into it. Data pointers point
 * into memory-mapped files (or, for synthesized tensors, into buffers the set owns). */
#ifndef LL_TENSORS_H
#define LL_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/ll_dtype.h"
#include "../core/ll_status.h"
#include "ll_mmap.h"

#define LL_MAX_DIMS 4

typedef struct {
    char *name;
    ll_dtype dtype;
    int ndim;
    int64_t shape[LL_MAX_DIMS]; /* row-major, PyTorch order */
    const void *data;
    size_t nbytes;
    int file; /* index into ll_tensor_set.files (-1 when owned by the set) */
} ll_tensor_info;

typedef struct {
    ll_tensor_info *t;
    size_t n, cap;
    ll_mmap *files;
    size_t n_files;
    void **owned; /* buffers the set frees (synthesized tensors) */
    size_t n_owned;
} ll_tensor_set;

void ll_tensor_set_free(ll_tensor_set *s);
/* Append a tensor (name copied). */
ll_status ll_tensor_set_add(ll_tensor_set *s, const ll_tensor_info *t);
/* Add a mapped file; returns its index in *idx. Takes ownership of *m. */
ll_status ll_tensor_set_add_file(ll_tensor_set *s, ll_mmap *m, int *idx);
/* Keep `buf` alive until the set is freed. */
ll_status ll_tensor_set_own(ll_tensor_set *s, void *buf);
const ll_tensor_info *ll_tensor_set_find(const ll_tensor_set *s, const char *name);
size_t ll_tensor_numel(const ll_tensor_info *t);
/* "[64, 512]" */
void ll_tensor_shape_str(const ll_tensor_info *t, char *buf, size_t n);
/* Path of the file a tensor lives in ("(synthesized)" when owned). */
const char *ll_tensor_file(const ll_tensor_set *s, const ll_tensor_info *t);

/* safetensors: a single file, or a directory / index.json naming shards. */
ll_status ll_safetensors_open(ll_tensor_set *s, const char *path);
/* Parse one safetensors file already mapped; appends its tensors. Exposed for fuzzing. */
ll_status ll_safetensors_parse(ll_tensor_set *s, const unsigned char *data, size_t size,
                               const char *path, int file_idx);

#endif
