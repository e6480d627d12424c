/* Read-only memory mapping of checkpoint files.
 *
 * Weights are used straight from the page cache where their dtype and layout
 * allow (fp32 on the CPU), so a checkpoint never needs twice its size in memory. */
#ifndef LL_MMAP_H
#define LL_MMAP_H

#include <stddef.h>

#include "../core/ll_status.h"

typedef struct {
    char *path;
    const unsigned char *data;
    size_t size;
} ll_mmap;

ll_status ll_mmap_open(ll_mmap *m, const char *path);
void ll_mmap_close(ll_mmap *m);
/* Tell the kernel a converted range will not be read again (pages can be dropped). */
void ll_mmap_release(const ll_mmap *m, const void *p, size_t n);

/* Read a whole small file (config.json, index.json) into a NUL-terminated buffer. */
ll_status ll_read_file(const char *path, char **out, size_t *len);

#endif
