/* The CPU backend's table, its memory functions and thread control. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../../core/ll_alloc.h"
#include "ll_cpu.h"

/* OpenBLAS exports this; declared here to avoid depending on which cblas.h variant is installed. */
void openblas_set_num_threads(int n);

static int ll_threads = 0;

void ll_set_threads(int n) {
#ifdef _OPENMP
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
#else
    if (n <= 0) n = 1;
#endif
    openblas_set_num_threads(n);
    ll_threads = n;
}

int ll_get_threads(void) {
    if (ll_threads > 0) return ll_threads;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static void *ll_cpu_alloc(size_t bytes) { return ll_alloc_aligned(bytes, 1, "CPU activation buffer"); }
static void ll_cpu_free(void *p) { free(p); }
static void ll_cpu_memcpy(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
static void ll_cpu_zero(void *dst, size_t bytes) {
    if (bytes) memset(dst, 0, bytes);
}

static ll_status ll_cpu_sync(void) { return LL_OK; } /* CPU ops finish before they return */

static const ll_backend ll_cpu_table = {
    .name = "cpu",
    .host_memory = true,
    .sync = ll_cpu_sync,
    .load_matrix = NULL,
    .alloc = ll_cpu_alloc,
    .free = ll_cpu_free,
    .to_host = ll_cpu_memcpy,
    .from_host = ll_cpu_memcpy,
    .copy = ll_cpu_memcpy,
    .zero = ll_cpu_zero,
    .embed = ll_cpu_embed,
    .matmul = ll_cpu_matmul,
    .rmsnorm = ll_cpu_rmsnorm,
    .layernorm = ll_cpu_layernorm,
    .add_norm = ll_cpu_add_norm,
    .rope = ll_cpu_rope,
    .attention = ll_cpu_attention,
    .swiglu = ll_cpu_swiglu,
    .gelu_new = ll_cpu_gelu_new,
    .add = ll_cpu_add,
    .to_bf16 = ll_cpu_to_bf16,
    .gather_rows = ll_cpu_gather_rows,
    .scatter_rows = ll_cpu_scatter_rows,
    .entropy = ll_cpu_entropy,
    .kv_append = ll_cpu_kv_append,
    .attention_at = ll_cpu_attention_at,
};

const ll_backend *ll_backend_cpu(void) { return &ll_cpu_table; }
