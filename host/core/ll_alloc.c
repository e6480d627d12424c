#include "ll_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int ll_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

void *ll_calloc(size_t n, size_t size, const char *what) {
    size_t bytes;
    if (ll_mul_size(n, size, &bytes)) {
        ll_err(LL_ERR_NOMEM, "%s: size %zu x %zu overflows", what, n, size);
        return NULL;
    }
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) ll_err(LL_ERR_NOMEM, "%s: could not allocate %zu bytes", what, bytes);
    return p;
}

void *ll_alloc_aligned(size_t n, size_t size, const char *what) {
    size_t bytes;
    if (ll_mul_size(n, size, &bytes) || bytes > SIZE_MAX - 64) {
        ll_err(LL_ERR_NOMEM, "%s: size %zu x %zu overflows", what, n, size);
        return NULL;
    }
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        ll_err(LL_ERR_NOMEM, "%s: could not allocate %zu bytes", what, bytes);
        return NULL;
    }
    return p;
}

char *ll_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (!p) {
        ll_err(LL_ERR_NOMEM, "could not allocate %zu bytes for a string", n);
        return NULL;
    }
    memcpy(p, s, n);
    return p;
}
