/* Hash maps for vocabularies (bytes -> id) and merges ((id, id) -> rank, id).
 * Open addressing with linear probing at load factor <= 1/2: lookups are the hot
 * path of encoding, and both maps are built once and never shrink. */
#include <stdlib.h>
#include <string.h>

#include "ll_tok_internal.h"

uint64_t ll_tok_hash(const char *k, size_t len) {
    /* FNV-1a, then a final mix so that short keys spread over the high bits too. */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static size_t ll_pow2_for(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 2) cap <<= 1;
    return cap;
}

ll_status ll_strmap_init(ll_strmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    m->cap = ll_pow2_for(expected);
    m->key = calloc(m->cap, sizeof *m->key);
    m->klen = calloc(m->cap, sizeof *m->klen);
    m->val = malloc(m->cap * sizeof *m->val);
    if (!m->key || !m->klen || !m->val) {
        ll_strmap_free(m);
        return ll_err(LL_ERR_NOMEM, "tokenizer: no memory for a vocabulary of %zu entries", expected);
    }
    return LL_OK;
}

static ll_status ll_strmap_grow(ll_strmap *m) {
    ll_strmap n;
    LL_TRY(ll_strmap_init(&n, m->cap)); /* doubles the capacity */
    for (size_t i = 0; i < m->cap; i++)
        if (m->key[i]) ll_strmap_put(&n, m->key[i], m->klen[i], m->val[i]);
    ll_strmap_free(m);
    *m = n;
    return LL_OK;
}

ll_status ll_strmap_put(ll_strmap *m, const char *k, size_t len, int32_t v) {
    if ((m->n + 1) * 2 > m->cap) LL_TRY(ll_strmap_grow(m));
    size_t mask = m->cap - 1, i = ll_tok_hash(k, len) & mask;
    while (m->key[i]) {
        if (m->klen[i] == len && !memcmp(m->key[i], k, len)) return LL_OK;
        i = (i + 1) & mask;
    }
    /* An empty key still needs a non-NULL pointer to mark the slot used. */
    m->key[i] = len ? k : "";
    m->klen[i] = (uint32_t)len;
    m->val[i] = v;
    m->n++;
    return LL_OK;
}

int32_t ll_strmap_get(const ll_strmap *m, const char *k, size_t len) {
    if (!m->cap) return -1;
    size_t mask = m->cap - 1, i = ll_tok_hash(k, len) & mask;
    while (m->key[i]) {
        if (m->klen[i] == len && !memcmp(m->key[i], k, len)) return m->val[i];
        i = (i + 1) & mask;
    }
    return -1;
}

void ll_strmap_free(ll_strmap *m) {
    free(m->key);
    free(m->klen);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static inline uint64_t ll_pair_key(int32_t a, int32_t b) {
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

static inline size_t ll_pair_slot(uint64_t k, size_t mask) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k & mask;
}

ll_status ll_pairmap_init(ll_pairmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    m->cap = ll_pow2_for(expected);
    m->key = calloc(m->cap, sizeof *m->key);
    m->rank = malloc(m->cap * sizeof *m->rank);
    m->merged = malloc(m->cap * sizeof *m->merged);
    if (!m->key || !m->rank || !m->merged) {
        ll_pairmap_free(m);
        return ll_err(LL_ERR_NOMEM, "tokenizer: no memory for %zu merges", expected);
    }
    return LL_OK;
}

ll_status ll_pairmap_put(ll_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t merged) {
    if ((m->n + 1) * 2 > m->cap) {
        ll_pairmap n;
        LL_TRY(ll_pairmap_init(&n, m->cap));
        for (size_t i = 0; i < m->cap; i++)
            if (m->key[i]) {
                uint64_t k = m->key[i] - 1;
                ll_pairmap_put(&n, (int32_t)(k >> 32), (int32_t)(uint32_t)k, m->rank[i], m->merged[i]);
            }
        ll_pairmap_free(m);
        *m = n;
    }
    uint64_t k = ll_pair_key(a, b);
    size_t mask = m->cap - 1, i = ll_pair_slot(k, mask);
    while (m->key[i]) {
        if (m->key[i] == k) {
            /* A merges list may repeat a pair; the first (best-ranked) one wins, as in
             * Hugging Face where later duplicates never fire. */
            if (rank < m->rank[i]) {
                m->rank[i] = rank;
                m->merged[i] = merged;
            }
            return LL_OK;
        }
        i = (i + 1) & mask;
    }
    m->key[i] = k;
    m->rank[i] = rank;
    m->merged[i] = merged;
    m->n++;
    return LL_OK;
}

bool ll_pairmap_get(const ll_pairmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *merged) {
    if (!m->cap) return false;
    uint64_t k = ll_pair_key(a, b);
    size_t mask = m->cap - 1, i = ll_pair_slot(k, mask);
    while (m->key[i]) {
        if (m->key[i] == k) {
            *rank = m->rank[i];
            *merged = m->merged[i];
            return true;
        }
        i = (i + 1) & mask;
    }
    return false;
}

void ll_pairmap_free(ll_pairmap *m) {
    free(m->key);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}
