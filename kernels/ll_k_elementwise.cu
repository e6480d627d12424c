/* Element-wise kernels: embedding lookup, activations (the MLP epilogues), residual
 * add, bias rows, fp32 -> bf16 conversion, row gather/scatter for hooks, and the
 * random fills the benchmark builds its weights with. All are grid-stride loops over
 * size_t indices: a 7B model's activations pass 2^31 elements at long T. */
#include "ll_k_common.cuh"
#include "ll_kernels.h"

#define LL_EW_THREADS 256

#define LL_GRID_STRIDE(i, n)                                                                                      \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

static __global__ void ll_embed_kernel(float *x, const uint16_t *tok, int ld, const float *pos_emb,
                                       const int32_t *tokens, const int32_t *pos, int T, int d) {
    size_t n = (size_t)T * (size_t)d;
    LL_GRID_STRIDE(e, n) {
        size_t t = e / (size_t)d, i = e - t * (size_t)d;
        float v = ll_k_bf16_to_f32(tok[(size_t)tokens[t] * (size_t)ld + i]);
        if (pos_emb) v += pos_emb[(size_t)pos[t] * (size_t)d + i];
        x[e] = v;
    }
}

extern "C" cudaError_t ll_k_embed(float *x, const uint16_t *tok, int ld, const float *pos_emb,
                                  const int32_t *tokens, const int32_t *pos, int T, int d, cudaStream_t s) {
    if (T <= 0 || d <= 0) return cudaSuccess;
    ll_embed_kernel<<<ll_k_blocks((size_t)T * d, LL_EW_THREADS), LL_EW_THREADS, 0, s>>>(x, tok, ld, pos_emb, tokens,
                                                                                          pos, T, d);
    return cudaGetLastError();
}

/* The MLP epilogues also write the bf16 copy of their output (outb, may be NULL) that the
 * down projection reads, saving the matmul its own conversion pass. */
static __global__ void ll_swiglu_kernel(float *out, uint16_t *outb, const float *gate, const float *up, size_t n) {
    LL_GRID_STRIDE(i, n) {
        float v = ll_k_swiglu(gate[i], up[i]);
        out[i] = v;
        if (outb) outb[i] = ll_k_f32_to_bf16(v);
    }
}

extern "C" cudaError_t ll_k_swiglu(float *out, uint16_t *outb, const float *gate, const float *up, size_t n,
                                   cudaStream_t s) {
    if (!n) return cudaSuccess;
    ll_swiglu_kernel<<<ll_k_blocks(n, LL_EW_THREADS), LL_EW_THREADS, 0, s>>>(out, outb, gate, up, n);
    return cudaGetLastError();
}

static __global__ void ll_gelu_kernel(float *x, uint16_t *xb, size_t n) {
    LL_GRID_STRIDE(i, n) {
        float v = ll_k_gelu_new(x[i]);
        x[i] = v;
        if (xb) xb[i] = ll_k_f32_to_bf16(v);
    }
}

extern "C" cudaError_t ll_k_gelu_new(float *x, uint16_t *xb, size_t n, cudaStream_t s) {
    if (!n) return cudaSuccess;
    ll_gelu_kernel<<<ll_k_blocks(n, LL_EW_THREADS), LL_EW_THREADS, 0, s>>>(x, xb, n);
    return cudaGetLastError();
}

static __global__ void ll_add_kernel(float *y, const float *x, size_t n) {
    LL_GRID_STRIDE(i, n) y[i] += x[i];
}

extern "C" cudaError_t ll_k_add(float *y, const float *x, size_t n, cudaStream_t s) {
    if (!n) return cudaSuccess;
    ll_add_kernel<<<ll_k_blocks(n, LL_EW_THREADS), LL_EW_THREADS, 0, s>>>(y, x, n);
    return cudaGetLastError();
}

static __global__ void ll_bias_kernel(float *y, const float *bias, int T, int n, int accumulate) {
    size_t tot = (size_t)T * (size_t)n;
    LL_GRID_STRIDE(e, tot) {
        float b = bias[e % (size_t)n];
        y[e] = accumulate ? y[e] + b : b;
    }
}

extern "C" cudaError_t ll_k_bias_rows(float *y, const float *bias, int T, int n, int accumulate, cudaStream_t s) {
    if (T <= 0 || n <= 0) return cudaSuccess;
    ll_bias_kernel<<<ll_k_blocks((size_t)T * n, LL_EW_THREADS), LL_EW_THREADS, 0, s>>>(y, bias, T, n, accumulate);
    return cudaGetLastError();
}

static __global__ void ll_to_bf16_kernel(uint16_t *dst, const float *src, size_t n) {
    LL_GRID_STRIDE(i, n) dst[i] = ll_k_f32_to_bf16(src[i]);
}

extern "C" cudaError_t ll_k_f32_to_bf16(uint16_t *dst, const float *src, size_t n, cudaStream_t s) {
    if (!n) return cudaSuccess;
    ll_to_bf16_kernel<<<ll_k_blocks(n, LL_EW_THREADS), LL_EW_THREADS, 0, s>>>(dst, src, n);
    return cudaGetLastError();
}

/* One block row per copied row would leave most threads idle for narrow rows; a flat
 * index over n x width keeps every thread busy and the accesses coalesced along width. */
static __global__ void ll_gather_kernel(float *dst, const float *src, const int64_t *rows, int n, int width) {
    size_t tot = (size_t)n * (size_t)width;
    LL_GRID_STRIDE(e, tot) {
        size_t r = e / (size_t)width, i = e - r * (size_t)width;
        dst[e] = src[(size_t)rows[r] * (size_t)width + i];
    }
}

static __global__ void ll_scatter_kernel(float *dst, const float *src, const int64_t *rows, int n, int width) {
    size_t tot = (size_t)n * (size_t)width;
    LL_GRID_STRIDE(e, tot) {
        size_t r = e / (size_t)width, i = e - r * (size_t)width;
        dst[(size_t)rows[r] * (size_t)width + i] = src[e];
    }
}

extern "C" cudaError_t ll_k_gather_rows(float *dst, const float *src, const int64_t *rows, int n, int width,
                                        cudaStream_t s) {
    if (n <= 0 || width <= 0) return cudaSuccess;
    ll_gather_kernel<<<ll_k_blocks((size_t)n * width, LL_EW_THREADS), LL_EW_THREADS, 0, s>>>(dst, src, rows, n,
                                                                                               width);
    return cudaGetLastError();
}

extern "C" cudaError_t ll_k_scatter_rows(float *dst, const float *src, const int64_t *rows, int n, int width,
                                         cudaStream_t s) {
    if (n <= 0 || width <= 0) return cudaSuccess;
    ll_scatter_kernel<<<ll_k_blocks((size_t)n * width, LL_EW_THREADS), LL_EW_THREADS, 0, s>>>(dst, src, rows, n,
                                                                                                width);
    return cudaGetLastError();
}

/* splitmix64 of (seed, index): a counter-based generator, so any thread can draw element
 * i directly and the same seed always gives the same weights. */
static __device__ __forceinline__ float ll_uniform(uint64_t seed, size_t i) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f; /* 24 bits -> [-1, 1) */
}

static __global__ void ll_fill_bf16_kernel(uint16_t *dst, size_t n, uint64_t seed, float scale) {
    LL_GRID_STRIDE(i, n) dst[i] = ll_k_f32_to_bf16(scale * ll_uniform(seed, i));
}

static __global__ void ll_fill_f32_kernel(float *dst, size_t n, uint64_t seed, float scale, float offset) {
    LL_GRID_STRIDE(i, n) dst[i] = offset + scale * ll_uniform(seed, i);
}

extern "C" cudaError_t ll_k_fill_random_bf16(uint16_t *dst, size_t n, uint64_t seed, float scale, cudaStream_t s) {
    if (!n) return cudaSuccess;
    ll_fill_bf16_kernel<<<ll_k_blocks(n, LL_EW_THREADS), LL_EW_THREADS, 0, s>>>(dst, n, seed, scale);
    return cudaGetLastError();
}

extern "C" cudaError_t ll_k_fill_random_f32(float *dst, size_t n, uint64_t seed, float scale, float offset,
                                            cudaStream_t s) {
    if (!n) return cudaSuccess;
    ll_fill_f32_kernel<<<ll_k_blocks(n, LL_EW_THREADS), LL_EW_THREADS, 0, s>>>(dst, n, seed, scale, offset);
    return cudaGetLastError();
}
