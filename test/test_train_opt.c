/* AdamW against steps worked out by hand, the warm-up + cosine schedule at its
 * landmarks, and global-norm clipping. */
#include <criterion/criterion.h>
#include <math.h>

#include "train/ll_adamw.h"

Test(train_opt, adamw_matches_hand_computed_steps) {
    ll_adamw_cfg c = {0.9f, 0.999f, 1e-8f, 0.01f};
    float p[2] = {1.0f, 1.0f}, m[2] = {0}, v[2] = {0};
    const uint8_t decay[2] = {1, 0};
    float g[2] = {0.5f, 0.5f};
    ll_adamw_step(p, g, m, v, decay, 2, 0.1f, 1, &c);
    /* Step 1: m = 0.05, v = 0.00025, bias-corrected 0.5 / sqrt(0.25) = 1; decay 1 - 0.1*0.01. */
    cr_assert_float_eq(p[0], 0.999f - 0.1f, 1e-6, "%.8f", p[0]);
    cr_assert_float_eq(p[1], 1.0f - 0.1f, 1e-6, "no decay where the mask is 0: %.8f", p[1]);
    cr_assert_float_eq(m[0], 0.05f, 1e-7);
    cr_assert_float_eq(v[0], 0.00025f, 1e-8); /* 1 - 0.999f is 0.00099999 in fp32 */
    /* Step 2 with g = -0.25: m = 0.02, v = 0.00031225, corrections 0.19 and 0.001999. */
    g[0] = g[1] = -0.25f;
    ll_adamw_step(p, g, m, v, decay, 2, 0.1f, 2, &c);
    double upd = (0.02 / 0.19) / (sqrt(0.00031225 / 0.001999) + 1e-8);
    cr_assert_float_eq(p[0], 0.899 * 0.999 - 0.1 * upd, 1e-5, "%.8f vs %.8f", p[0], 0.899 * 0.999 - 0.1 * upd);
    cr_assert_float_eq(p[1], 0.9 - 0.1 * upd, 1e-5);
}

Test(train_opt, schedule_warmup_then_cosine) {
    /* warm-up 10 of 111 steps, 1 -> 0.1 */
    cr_assert_float_eq(ll_lr_schedule(0, 10, 111, 1.0f, 0.1f), 0.1f, 1e-7);
    cr_assert_float_eq(ll_lr_schedule(4, 10, 111, 1.0f, 0.1f), 0.5f, 1e-7);
    cr_assert_float_eq(ll_lr_schedule(9, 10, 111, 1.0f, 0.1f), 1.0f, 1e-7);
    cr_assert_float_eq(ll_lr_schedule(10, 10, 111, 1.0f, 0.1f), 1.0f, 1e-7);
    cr_assert_float_eq(ll_lr_schedule(60, 10, 111, 1.0f, 0.1f), 0.55f, 1e-6);
    cr_assert_float_eq(ll_lr_schedule(35, 10, 111, 1.0f, 0.1f), 0.1 + 0.45 * (1 + cos(M_PI / 4)), 1e-6);
    cr_assert_float_eq(ll_lr_schedule(110, 10, 111, 1.0f, 0.1f), 0.1f, 1e-7);
    cr_assert_float_eq(ll_lr_schedule(500, 10, 111, 1.0f, 0.1f), 0.1f, 1e-7);
    /* monotone decay after the warm-up */
    for (int s = 11; s < 111; s++)
        cr_assert(ll_lr_schedule(s, 10, 111, 1.0f, 0.1f) <= ll_lr_schedule(s - 1, 10, 111, 1.0f, 0.1f));
}

Test(train_opt, clipping_scales_to_the_global_norm) {
    float g[3] = {3, 0, 4};
    cr_assert_float_eq(ll_clip_grad_norm(g, 3, 10.0), 5.0, 1e-9);
    cr_assert(g[0] == 3 && g[2] == 4, "below the limit nothing changes");
    cr_assert_float_eq(ll_clip_grad_norm(g, 3, 1.0), 5.0, 1e-9);
    cr_assert_float_eq(g[0], 0.6f, 1e-6);
    cr_assert_float_eq(g[2], 0.8f, 1e-6);
    cr_assert_float_eq(ll_clip_grad_norm(g, 3, 0), 1.0, 1e-6, "max_norm 0: no clipping");
}
