/* Legacy llama2.c checkpoints (the ".bin" files run.c reads, e.g. stories260K.bin).
 *
 * Layout: seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len; a negative vocab_size means the classifier is not
 * shared with the token embedding and is stored at the end), then fp32 arrays
 * with layers stacked: token_embedding [vocab, dim], rms_att [L, dim],
 * wq [L, dim, dim], wk [L, kv_dim, dim], wv [L, kv_dim, dim], wo [L, dim, dim],
 * rms_ffn [L, dim], w1 [L, hidden, dim], w2 [L, dim, hidden], w3 [L, hidden, dim],
 * rms_final [dim], freq_cis_real [seq_len, head_size/2], freq_cis_imag [same],
 * and wcls [vocab, dim] when unshared.
 *
 * The loader exposes these as per-layer Hugging Face-named tensors pointing
 * into the mapping (w1 = gate_proj, w3 = up_proj, w2 = down_proj). The newer
 * llama2.c export versions (magic "ak42") are recognised and refused. */
#ifndef LL_LLAMA2C_H
#define LL_LLAMA2C_H

#include "../core/ll_status.h"
#include "../model/ll_config.h"
#include "ll_tensors.h"

/* Fill *cfg and *ts (overwritten, so pass unused ones; on failure both are
 * left untouched). The tensor set owns the mapping. */
ll_status ll_llama2c_load_model(const char *path, ll_config *cfg, ll_tensor_set *ts);

/* Same from an image already in memory (`data` must outlive the tensor set,
 * whose tensors get file index -1). `path` only names it in messages. */
ll_status ll_llama2c_parse(const unsigned char *data, size_t size, const char *path, ll_config *cfg, ll_tensor_set *ts);

#endif
