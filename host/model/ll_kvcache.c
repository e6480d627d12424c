/* KV cache: keys after RoPE and values, per layer and per sequence slot.
 * Lengths are kept per layer so a forward that starts or stops mid-model (SPADE,
 * early exit) extends only the layers it ran. */
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "ll_forward.h"

ll_status ll_kv_cache_new(ll_kv_cache **out, const ll_model *m, int n_slots, int cap) {
    *out = NULL;
    if (n_slots <= 0 || cap <= 0)
        return ll_err(LL_ERR_ARG, "KV cache: slots (%d) and capacity (%d) must be positive", n_slots, cap);
    ll_kv_cache *c = ll_calloc(1, sizeof *c, "KV cache");
    if (!c) return LL_ERR_NOMEM;
    c->n_layers = m->cfg.n_layers;
    c->n_slots = n_slots;
    c->cap = cap;
    c->kv_width = m->cfg.n_kv_heads * m->cfg.head_dim;
    c->be = m->be;
    size_t n = (size_t)c->n_layers * (size_t)n_slots * (size_t)cap * (size_t)c->kv_width;
    size_t bytes;
    if (ll_mul_size(n, sizeof(float), &bytes)) {
        free(c);
        return ll_err(LL_ERR_NOMEM, "KV cache: size overflows");
    }
    c->k = c->be->alloc(bytes);
    c->v = c->k ? c->be->alloc(bytes) : NULL;
    c->len = ll_calloc((size_t)c->n_layers * (size_t)n_slots, sizeof(int), "KV cache lengths");
    if (!c->k || !c->v || !c->len) {
        ll_kv_cache_free(c);
        return ll_err_prefix(LL_ERR_NOMEM, "KV cache: cannot allocate 2 x %zu bytes (%d layers x %d slots x %d tokens x %d): ",
                             bytes, m->cfg.n_layers, n_slots, cap, m->cfg.n_kv_heads * m->cfg.head_dim);
    }
    *out = c;
    return LL_OK;
}

void ll_kv_cache_free(ll_kv_cache *c) {
    if (!c) return;
    if (c->k) c->be->free(c->k);
    if (c->v) c->be->free(c->v);
    free(c->len);
    free(c);
}

void ll_kv_cache_reset(ll_kv_cache *c, int slot) { ll_kv_cache_truncate(c, slot, 0); }

void ll_kv_cache_truncate(ll_kv_cache *c, int slot, int n) {
    for (int l = 0; l < c->n_layers; l++)
        for (int s = 0; s < c->n_slots; s++)
            if ((slot < 0 || s == slot) && c->len[l * c->n_slots + s] > n) c->len[l * c->n_slots + s] = n;
}

void ll_kv_cache_copy_slot(ll_kv_cache *c, int dst, int src, int n) {
    size_t w = (size_t)c->kv_width;
    for (int l = 0; l < c->n_layers; l++) {
        int have = c->len[l * c->n_slots + src];
        int k = n < have ? n : have;
        size_t so = (((size_t)l * c->n_slots + (size_t)src) * (size_t)c->cap) * w;
        size_t d = (((size_t)l * c->n_slots + (size_t)dst) * (size_t)c->cap) * w;
        c->be->copy(c->k + d, c->k + so, (size_t)k * w * sizeof(float));
        c->be->copy(c->v + d, c->v + so, (size_t)k * w * sizeof(float));
        c->len[l * c->n_slots + dst] = k;
    }
}
