#include "ll_dtype.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} ll_dtypes[LL_DTYPE_COUNT] = {
    [LL_F32] = {"F32", 4}, [LL_F16] = {"F16", 2}, [LL_BF16] = {"BF16", 2}, [LL_F64] = {"F64", 8},
    [LL_I8] = {"I8", 1},   [LL_I16] = {"I16", 2}, [LL_I32] = {"I32", 4},   [LL_I64] = {"I64", 8},
    [LL_U8] = {"U8", 1},   [LL_BOOL] = {"BOOL", 1},
};

size_t ll_dtype_size(ll_dtype t) { return (unsigned)t < LL_DTYPE_COUNT ? ll_dtypes[t].size : 0; }

const char *ll_dtype_name(ll_dtype t) { return (unsigned)t < LL_DTYPE_COUNT ? ll_dtypes[t].name : "?"; }

int ll_dtype_from_safetensors(const char *s) {
    for (int i = 0; i < LL_DTYPE_COUNT; i++)
        if (strcmp(s, ll_dtypes[i].name) == 0) return i;
    return -1;
}

static float ll_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t ll_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float ll_bf16_to_f32(uint16_t b) { return ll_bits_f32((uint32_t)b << 16); }

float ll_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0) {
        if (man == 0) return ll_bits_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (exp == 31) return ll_bits_f32(sign | 0x7f800000u | (man << 13));
    return ll_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ll_f32_to_bf16(float f) {
    uint32_t u = ll_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

uint16_t ll_f32_to_f16(float f) {
    uint32_t u = ll_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t au = u & 0x7fffffffu;
    if (au > 0x7f800000u) return sign | 0x7e00;          /* NaN */
    if (au >= 0x477ff000u) return sign | 0x7c00;         /* overflow to inf (>= 65520) */
    if (au < 0x38800000u) {                               /* subnormal or zero in f16 */
        float a = ll_bits_f32(au);
        /* scale so that one f16 subnormal ulp (2^-24) is 1.0, then round to nearest even */
        float s = a * 16777216.0f;
        uint32_t r = (uint32_t)s;
        float frac = s - (float)r;
        if (frac > 0.5f || (frac == 0.5f && (r & 1))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t mant = au & 0x7fffff;
    uint32_t exp = (au >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
}

int ll_convert_to_f32(float *dst, const void *src, ll_dtype t, size_t n) {
    switch (t) {
    case LL_F32: memmove(dst, src, n * 4); return 0;
    case LL_F16: {
        const uint8_t *p = src; /* may be unaligned inside a GGUF or llama2.c file */
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = ll_f16_to_f32(h);
        }
        return 0;
    }
    case LL_BF16: {
        const uint8_t *p = src;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = ll_bf16_to_f32(h);
        }
        return 0;
    }
    case LL_F64: {
        const uint8_t *p = src;
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    }
    default: return -1;
    }
}
