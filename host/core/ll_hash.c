#include "ll_hash.h"

#include <string.h>

#define LL_HASH_BLOCK (1u << 20)

static const uint64_t K1 = 0x9e3779b97f4a7c15ull, K2 = 0xbf58476d1ce4e5b9ull, K3 = 0x94d049bb133111ebull;

/* splitmix64's finaliser: every input bit reaches every output bit. */
static inline uint64_t fmix(uint64_t x) {
    x ^= x >> 30;
    x *= K2;
    x ^= x >> 27;
    x *= K3;
    x ^= x >> 31;
    return x;
}

uint64_t ll_hash_mix(uint64_t h, uint64_t v) { return fmix(h ^ (v + K1 + (h << 6) + (h >> 2))); }

/* Four independent lanes so the multiply latency overlaps; 32 bytes per round. */
static uint64_t hash_block(const unsigned char *p, size_t n, uint64_t seed) {
    uint64_t a = seed ^ K1, b = seed ^ K2, c = seed ^ K3, d = ~seed;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        a = (a ^ w[0]) * K2;
        a ^= a >> 29;
        b = (b ^ w[1]) * K3;
        b ^= b >> 29;
        c = (c ^ w[2]) * K2;
        c ^= c >> 29;
        d = (d ^ w[3]) * K3;
        d ^= d >> 29;
    }
    uint64_t tail[4] = {0, 0, 0, 0};
    memcpy(tail, p + i, n - i);
    a ^= tail[0];
    b ^= tail[1];
    c ^= tail[2];
    d ^= tail[3];
    uint64_t h = fmix(a) ^ fmix(b + K1) ^ fmix(c + K2) ^ fmix(d + K3);
    return fmix(h ^ (uint64_t)n);
}

uint64_t ll_hash_bytes(const void *data, size_t n, uint64_t seed) {
    const unsigned char *p = data;
    size_t nb = (n + LL_HASH_BLOCK - 1) / LL_HASH_BLOCK;
    uint64_t h = fmix(seed ^ (uint64_t)n);
    if (nb <= 1) return ll_hash_mix(h, hash_block(p, n, seed));
    uint64_t acc = h;
    /* Blocks in parallel, folded in order: a per-thread partial fold would make the
     * value depend on the schedule. Block hashes go through a small ring instead. */
    enum { RING = 256 };
    uint64_t ring[RING];
    for (size_t b0 = 0; b0 < nb; b0 += RING) {
        size_t cnt = nb - b0 < RING ? nb - b0 : RING;
#pragma omp parallel for schedule(static) if (cnt > 4)
        for (size_t j = 0; j < cnt; j++) {
            size_t off = (b0 + j) * LL_HASH_BLOCK;
            size_t len = n - off < LL_HASH_BLOCK ? n - off : LL_HASH_BLOCK;
            ring[j] = hash_block(p + off, len, seed);
        }
        for (size_t j = 0; j < cnt; j++) acc = ll_hash_mix(acc, ring[j]);
    }
    return acc;
}
