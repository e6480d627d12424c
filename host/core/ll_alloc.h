/* Allocation that reports failure through ll_err instead of crashing.
 * Sizes are size_t and checked for overflow: a 7B model's tensors exceed 2^31 elements. */
#ifndef LL_ALLOC_H
#define LL_ALLOC_H

#include <stddef.h>

#include "ll_status.h"

/* Allocate n*size bytes, zeroed. On failure sets the error naming `what`. */
void *ll_calloc(size_t n, size_t size, const char *what);
/* Allocate n*size bytes aligned to 64 (cache lines / AVX-512), not zeroed. */
void *ll_alloc_aligned(size_t n, size_t size, const char *what);
char *ll_strdup(const char *s);
/* Checked multiply: returns 0 and sets *out on success, -1 on overflow. */
int ll_mul_size(size_t a, size_t b, size_t *out);

#endif
