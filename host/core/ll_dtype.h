/* Element types found in checkpoint files and their conversion to fp32. */
#ifndef LL_DTYPE_H
#define LL_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    LL_F32 = 0,
    LL_F16,
    LL_BF16,
    LL_F64,
    LL_I8,
    LL_I16,
    LL_I32,
    LL_I64,
    LL_U8,
    LL_BOOL,
    LL_DTYPE_COUNT
} ll_dtype;

size_t ll_dtype_size(ll_dtype t);
const char *ll_dtype_name(ll_dtype t);
/* Parse a safetensors dtype string ("F32", "BF16", ...); returns -1 when unknown. */
int ll_dtype_from_safetensors(const char *s);

float ll_f16_to_f32(uint16_t h);
float ll_bf16_to_f32(uint16_t b);
uint16_t ll_f32_to_bf16(float f); /* round to nearest even, NaN kept NaN */
uint16_t ll_f32_to_f16(float f);  /* round to nearest even */

/* Widen n elements of a float dtype (F32, F16, BF16, F64) into dst. Returns -1 for other dtypes. */
int ll_convert_to_f32(float *dst, const void *src, ll_dtype t, size_t n);

#endif
