/* A fast 64-bit content hash for provenance (which weights, which tokenizer produced
 * a dump). Not cryptographic: it tells files apart, it does not defend against
 * someone forging a collision.
 *
 * "llh64": the input is cut into 1 MiB blocks; each block is hashed on its own
 * (blocks in parallel, so a 15 GB checkpoint hashes at memory speed) and the block
 * hashes are folded in order with the total length, so the value depends on the bytes
 * only, never on the thread count. */
#ifndef LL_HASH_H
#define LL_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t ll_hash_bytes(const void *data, size_t n, uint64_t seed);
/* Fold another value into a running hash (order matters). */
uint64_t ll_hash_mix(uint64_t h, uint64_t v);

#endif
