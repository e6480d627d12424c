/* AdamW (decoupled weight decay, as torch.optim.AdamW), the learning-rate schedule
 * (linear warm-up, then cosine decay to a floor) and global-norm gradient clipping. */
#ifndef LL_ADAMW_H
#define LL_ADAMW_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float beta1, beta2, eps, weight_decay;
} ll_adamw_cfg;

/* One step t (1-based) over n parameters: m, v are the moment buffers (zero at t = 1).
 * decay[i] != 0 marks parameters that get weight decay (NULL: all). */
void ll_adamw_step(float *p, const float *g, float *m, float *v, const uint8_t *decay, size_t n, float lr, int64_t t,
                   const ll_adamw_cfg *c);

/* Learning rate at step s (0-based) of `total`: lr_max * (s+1)/warmup for s < warmup, then
 * cosine from lr_max down to lr_min at s = total - 1 (lr_min after that). */
float ll_lr_schedule(int64_t s, int64_t warmup, int64_t total, float lr_max, float lr_min);

/* L2 norm of g; when above max_norm (> 0), g is scaled to max_norm. Returns the norm
 * before clipping. */
double ll_clip_grad_norm(float *g, size_t n, double max_norm);

#endif
