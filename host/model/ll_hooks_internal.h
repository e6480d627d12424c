/* What the forward scheduler needs from the hook registry. */
#ifndef LL_HOOKS_INTERNAL_H
#define LL_HOOKS_INTERNAL_H

#include "../backend/ll_backend.h"
#include "ll_forward.h"
#include "ll_hooks.h"

/* One branch per site when nothing is registered. */
int ll_hooks_active(const ll_hooks *h, ll_hook_point p, int layer);
/* Apply the patches, then the records, registered at (p, layer) to buf [rows_in_buf][width].
 * `row_map` (may be NULL) maps buffer row -> batch row when buf holds a subset of rows. */
ll_status ll_hooks_run(ll_hooks *h, const ll_backend *be, ll_hook_point p, int layer, float *buf, int width,
                       const ll_batch *b, int n_heads);
/* Hand attention patterns (host, per sequence) to the ATTN_PATTERN records of this layer. */
ll_status ll_hooks_emit_pattern(ll_hooks *h, int layer, const ll_batch *b, float *const *pattern, int n_heads,
                                const int *n_past);
void ll_hooks_begin_forward(ll_hooks *h);
/* After the forward pass synchronised the backend: fold the statistics of patches applied
 * on the device (backends with patch_rows) and hand the rows recorded asynchronously
 * (backends with to_host_async) to their sinks, in order. With a failed forward both are
 * dropped. Returns the first failure (reading the statistics, or a sink's). */
ll_status ll_hooks_end_forward(ll_hooks *h, const ll_backend *be, ll_status forward_status);

#endif
