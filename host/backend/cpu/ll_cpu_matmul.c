/* Matrix products through OpenBLAS sgemm: the only place the CPU spends most of its time. */
#include <cblas.h>
#include <string.h>

#include "ll_cpu.h"

void ll_cpu_matmul(float *y, const float *x, const ll_mat *w, const float *bias, int T, bool accumulate) {
    if (T <= 0) return;
    float beta = accumulate ? 1.0f : 0.0f;
    if (bias) {
        /* Seed the output with the bias so sgemm adds the product to it in one pass. */
        if (accumulate) {
            for (int t = 0; t < T; t++)
                for (int o = 0; o < w->out; o++) y[(size_t)t * w->out + o] += bias[o];
        } else {
            for (int t = 0; t < T; t++) memcpy(y + (size_t)t * w->out, bias, (size_t)w->out * sizeof(float));
        }
        beta = 1.0f;
    }
    if (T == 1 && w->trans) {
        /* Decode: a matrix-vector product is bandwidth-bound; sgemv avoids sgemm's packing. */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, w->out, w->in, 1.0f, w->w, w->ld, x, 1, beta, y, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, w->trans ? CblasTrans : CblasNoTrans, T, w->out, w->in, 1.0f, x, w->in,
                w->w, w->ld, beta, y, w->out);
}
