/* layerlab GPU benchmark: a Llama-7B-shaped model with random bf16 weights made on the
 * device (no download), measured against the machine's own ceilings in the same run.
 *
 *   layerlab_bench_gpu [--layers 32] [--seqs 8] [--len 2048] [--prompt 128] [--steps 64]
 *                      [--reps 3] [--out FILE]
 *
 * ceilings: bf16 GEMM rate through cuBLAS (bf16 operands, fp32 output and accumulation,
 *           as the model's projections run), 8192^3, median of 10 after 3 warm-ups;
 *           device-to-device copy bandwidth (bytes read + written), 2 GiB, median of 10.
 * prefill:  --seqs x --len tokens in one ragged batch, no KV cache, logits at the last
 *           position of each sequence; tokens/s and MFU = model FLOPs / time / GEMM rate,
 *           counting 2 x params (without the embedding) per token plus causal attention.
 * decode:   a --prompt token prompt into the KV cache (untimed), then --steps single
 *           token steps at batch 1; tokens/s and GB/s = (bf16 weights + KV read) / time,
 *           as a fraction of the measured copy bandwidth.
 *           These are plain ll_forward steps (no CUDA graph).
 * graphs:   the same decode through ll_decoder with the step recorded as a CUDA graph and
 *           replayed (two untimed steps first: the eager one and the recording); tokens/s
 *           and the speed-up over plain steps.
 * record:   the same decode with hook_resid_post of every layer recorded at the last
 *           position; overhead relative to plain decode.
 * Times are wall-clock around ll_forward, which returns after the device finished.
 * Prints one `key value` line per number, and writes them to --out too. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../kernels/ll_kernels.h"
#include "backend/cuda/ll_cuda.h"
#include "backend/ll_backend.h"
#include "model/ll_decoder.h"
#include "model/ll_forward.h"
#include "model/ll_hooks.h"
#include "model/ll_model.h"

static FILE *ll_out;

static void ll_put(const char *key, double v) {
    printf("%-28s %.6g\n", key, v);
    if (ll_out) fprintf(ll_out, "%s %.6g\n", key, v);
    fflush(stdout);
}

static void ll_die(const char *what) {
    fprintf(stderr, "layerlab_bench_gpu: %s: %s\n", what, ll_last_error());
    exit(1);
}

static void ll_cu(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        fprintf(stderr, "layerlab_bench_gpu: %s: %s\n", what, cudaGetErrorString(e));
        exit(1);
    }
}

static double ll_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int ll_cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double ll_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, ll_cmp_dbl);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Same formula as tools/bench/hf_peer_gpu.py; ids 0..2 avoided. */
static int32_t ll_token_id(int s, int i, int vocab) {
    return (int32_t)(((int64_t)s * 1000003 + (int64_t)i * 7919 + 12345) % (vocab - 3) + 3);
}

/* ---- ceilings ------------------------------------------------------------------------ */

static double ll_ceiling_gemm_tflops(void) {
    const int n = 8192;
    uint16_t *a, *b;
    float *c;
    ll_cu(cudaMalloc((void **)&a, (size_t)n * n * 2), "GEMM ceiling: A");
    ll_cu(cudaMalloc((void **)&b, (size_t)n * n * 2), "GEMM ceiling: B");
    ll_cu(cudaMalloc((void **)&c, (size_t)n * n * 4), "GEMM ceiling: C");
    /* random data: zeros run measurably faster on this hardware */
    ll_cu(ll_k_fill_random_bf16(a, (size_t)n * n, 1, 1.0f, 0), "fill");
    ll_cu(ll_k_fill_random_bf16(b, (size_t)n * n, 2, 1.0f, 0), "fill");
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) ll_die("cublasCreate");
    cudaEvent_t e0, e1;
    ll_cu(cudaEventCreate(&e0), "cudaEventCreate");
    ll_cu(cudaEventCreate(&e1), "cudaEventCreate");
    const float one = 1.0f, zero = 0.0f;
    double t[10];
    for (int r = -3; r < 10; r++) {
        ll_cu(cudaEventRecord(e0, 0), "cudaEventRecord");
        cublasStatus_t s = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, a, CUDA_R_16BF, n, b, CUDA_R_16BF,
                                        n, &zero, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (s != CUBLAS_STATUS_SUCCESS) ll_die("cublasGemmEx ceiling");
        ll_cu(cudaEventRecord(e1, 0), "cudaEventRecord");
        ll_cu(cudaEventSynchronize(e1), "GEMM ceiling");
        float ms;
        ll_cu(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
        if (r >= 0) t[r] = ms * 1e-3;
    }
    double med = ll_median(t, 10);
    cublasDestroy(h);
    ll_cu(cudaFree(a), "cudaFree");
    ll_cu(cudaFree(b), "cudaFree");
    ll_cu(cudaFree(c), "cudaFree");
    ll_cu(cudaEventDestroy(e0), "cudaEventDestroy");
    ll_cu(cudaEventDestroy(e1), "cudaEventDestroy");
    return 2.0 * n * (double)n * n / med * 1e-12;
}

static double ll_ceiling_copy_gbs(void) {
    const size_t bytes = (size_t)2 << 30;
    void *a, *b;
    ll_cu(cudaMalloc(&a, bytes), "copy ceiling");
    ll_cu(cudaMalloc(&b, bytes), "copy ceiling");
    ll_cu(cudaMemset(a, 1, bytes), "copy ceiling");
    cudaEvent_t e0, e1;
    ll_cu(cudaEventCreate(&e0), "cudaEventCreate");
    ll_cu(cudaEventCreate(&e1), "cudaEventCreate");
    double t[10];
    for (int r = -3; r < 10; r++) {
        ll_cu(cudaEventRecord(e0, 0), "cudaEventRecord");
        ll_cu(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0), "copy");
        ll_cu(cudaEventRecord(e1, 0), "cudaEventRecord");
        ll_cu(cudaEventSynchronize(e1), "copy ceiling");
        float ms;
        ll_cu(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
        if (r >= 0) t[r] = ms * 1e-3;
    }
    double med = ll_median(t, 10);
    ll_cu(cudaFree(a), "cudaFree");
    ll_cu(cudaFree(b), "cudaFree");
    ll_cu(cudaEventDestroy(e0), "cudaEventDestroy");
    ll_cu(cudaEventDestroy(e1), "cudaEventDestroy");
    return 2.0 * (double)bytes / med * 1e-9;
}

/* ---- the random 7B-shaped model, built on the device ---------------------------------- */

typedef struct {
    void **p;
    int n, cap;
} ll_bufs;

static void *ll_dev(ll_bufs *b, const ll_backend *be, size_t bytes, const char *what) {
    void *p = be->alloc(bytes);
    if (!p) ll_die(what);
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->p = realloc(b->p, (size_t)b->cap * sizeof *b->p);
        if (!b->p) ll_die("host memory");
    }
    b->p[b->n++] = p;
    return p;
}

static uint64_t ll_seed = 1000;

static ll_mat ll_rand_mat(ll_bufs *b, const ll_backend *be, int out, int in) {
    uint16_t *w = ll_dev(b, be, (size_t)out * in * 2, "weight matrix");
    /* uniform(-a, a) with a = sqrt(3 / in): unit-variance outputs for unit-variance inputs */
    ll_cu(ll_k_fill_random_bf16(w, (size_t)out * in, ll_seed++, sqrtf(3.0f / (float)in), 0), "fill weights");
    return (ll_mat){.w = (const float *)w, .out = out, .in = in, .ld = in, .trans = true, .dtype = LL_BF16};
}

static const float *ll_rand_vec(ll_bufs *b, const ll_backend *be, int n, float scale, float offset) {
    float *v = ll_dev(b, be, (size_t)n * 4, "weight vector");
    ll_cu(ll_k_fill_random_f32(v, (size_t)n, ll_seed++, scale, offset, 0), "fill vector");
    return v;
}

static ll_model *ll_random_llama7b(const ll_backend *be, int layers, ll_bufs *b) {
    ll_model *m = calloc(1, sizeof *m);
    if (!m) ll_die("host memory");
    ll_config *c = &m->cfg;
    snprintf(c->arch_name, sizeof c->arch_name, "LlamaForCausalLM (random, 7B shape)");
    c->arch = LL_ARCH_LLAMA;
    c->n_layers = layers;
    c->d_model = 4096;
    c->n_heads = 32;
    c->n_kv_heads = 32;
    c->head_dim = 128;
    c->d_ff = 11008;
    c->vocab_size = 32000;
    c->max_pos = 4096;
    c->norm_eps = 1e-5f;
    c->norm = LL_NORM_RMS;
    c->mlp = LL_MLP_SWIGLU;
    c->rope_layout = LL_ROPE_ROTATE_HALF;
    c->rope_theta = 10000.0f;
    c->bos_id = 1;
    c->eos_id = 2;
    m->be = be;
    if (ll_model_init_rope(m)) ll_die("RoPE table");
    float *inv = ll_dev(b, be, (size_t)c->head_dim / 2 * 4, "RoPE table");
    be->from_host(inv, m->rope_inv_freq, (size_t)c->head_dim / 2 * 4);
    m->w.rope_inv_freq = inv;
    int d = c->d_model, ff = c->d_ff, qw = c->n_heads * c->head_dim, kw = c->n_kv_heads * c->head_dim;
    ll_mat emb = ll_rand_mat(b, be, c->vocab_size, d);
    m->w.tok_emb = emb.w;
    m->w.lm_head = ll_rand_mat(b, be, c->vocab_size, d);
    m->w.norm_w = ll_rand_vec(b, be, d, 0.1f, 1.0f);
    m->w.layers = calloc((size_t)layers, sizeof *m->w.layers);
    if (!m->w.layers) ll_die("host memory");
    for (int l = 0; l < layers; l++) {
        ll_layer_weights *L = &m->w.layers[l];
        L->attn_norm_w = ll_rand_vec(b, be, d, 0.1f, 1.0f);
        L->mlp_norm_w = ll_rand_vec(b, be, d, 0.1f, 1.0f);
        L->wq = ll_rand_mat(b, be, qw, d);
        L->wk = ll_rand_mat(b, be, kw, d);
        L->wv = ll_rand_mat(b, be, kw, d);
        L->wo = ll_rand_mat(b, be, d, qw);
        L->w_gate = ll_rand_mat(b, be, ff, d);
        L->w_up = ll_rand_mat(b, be, ff, d);
        L->w_down = ll_rand_mat(b, be, d, ff);
    }
    if (be->sync()) ll_die("building the model");
    return m;
}

static void ll_free_model(ll_model *m, const ll_backend *be, ll_bufs *b) {
    for (int i = 0; i < b->n; i++) be->free(b->p[i]);
    free(b->p);
    free(m->w.layers);
    free(m->rope_inv_freq);
    free(m);
}

/* ---- recording sink --------------------------------------------------------------------- */

typedef struct {
    float *buf;
    size_t cap, used;
    long calls;
} ll_rec_sink;

static ll_status ll_rec_fn(void *user, const ll_hook_rows *r) {
    ll_rec_sink *s = user;
    size_t n = (size_t)r->n_rows * (size_t)r->width;
    if (s->used + n > s->cap) s->used = 0; /* a ring: the bench only needs the copies made */
    memcpy(s->buf + s->used, r->data, n * sizeof(float));
    s->used += n;
    s->calls++;
    return LL_OK;
}

/* ---- runs ------------------------------------------------------------------------------ */

/* Seconds per decode step through ll_decoder recording the step as a graph. */
static double ll_decode_graph_s(ll_model *m, int prompt, int steps, float *logits) {
    int V = m->cfg.vocab_size;
    ll_kv_cache *kc;
    if (ll_kv_cache_new(&kc, m, 1, prompt + steps + 2)) ll_die("KV cache");
    int32_t *ids = malloc((size_t)(prompt + steps + 2) * sizeof *ids);
    for (int i = 0; i < prompt + steps + 2; i++) ids[i] = ll_token_id(0, i, V);
    int64_t off[2] = {0, prompt};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = ids};
    ll_forward_opts o = {.cache = kc, .logits = LL_LOGITS_LAST, .logits_out = logits};
    if (ll_forward(m, &b, &o)) ll_die("decode prompt");
    ll_decoder *d;
    if (ll_decoder_new_mode(&d, m, kc, 0, LL_DECODE_GRAPH)) ll_die("graph decoder");
    /* untimed: the eager step that sizes the graph's scratch, and the recording */
    for (int i = 0; i < 2; i++)
        if (ll_decoder_step(d, ids[prompt + i], logits)) ll_die("graph decode warm-up");
    double t0 = ll_now_s();
    for (int i = 0; i < steps; i++)
        if (ll_decoder_step(d, ids[prompt + 2 + i], logits)) ll_die("graph decode step");
    double t = (ll_now_s() - t0) / steps;
    ll_decoder_free(d);
    free(ids);
    ll_kv_cache_free(kc);
    return t;
}

static double ll_decode_s(ll_model *m, int prompt, int steps, ll_hooks *h, float *logits) {
    int V = m->cfg.vocab_size;
    ll_kv_cache *kc;
    if (ll_kv_cache_new(&kc, m, 1, prompt + steps + 1)) ll_die("KV cache");
    int32_t *ids = malloc((size_t)(prompt + steps) * sizeof *ids);
    for (int i = 0; i < prompt + steps; i++) ids[i] = ll_token_id(0, i, V);
    int64_t off[2] = {0, prompt};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = ids};
    ll_forward_opts o = {.cache = kc, .logits = LL_LOGITS_LAST, .logits_out = logits};
    if (ll_forward(m, &b, &o)) ll_die("decode prompt");
    o.hooks = h;
    int64_t o1[2] = {0, 1};
    double t0 = ll_now_s();
    for (int i = 0; i < steps; i++) {
        ll_batch b1 = {.n_seq = 1, .seq_off = o1, .tokens = &ids[prompt + i]};
        if (ll_forward(m, &b1, &o)) ll_die("decode step");
    }
    double t = (ll_now_s() - t0) / steps;
    free(ids);
    ll_kv_cache_free(kc);
    return t;
}

int main(int argc, char **argv) {
    int layers = 32, seqs = 8, len = 2048, prompt = 128, steps = 64, reps = 3;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        int *t = !strcmp(argv[i], "--layers") ? &layers : !strcmp(argv[i], "--seqs") ? &seqs
                : !strcmp(argv[i], "--len") ? &len : !strcmp(argv[i], "--prompt") ? &prompt
                : !strcmp(argv[i], "--steps") ? &steps : !strcmp(argv[i], "--reps") ? &reps : NULL;
        if (t && i + 1 < argc) *t = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else {
            fprintf(stderr, "usage: layerlab_bench_gpu [--layers N] [--seqs N] [--len N] [--prompt N] [--steps N] "
                            "[--reps N] [--out FILE]\n");
            return 2;
        }
    }
    if (layers < 1 || seqs < 1 || len < 1 || prompt < 1 || steps < 1 || reps < 1) {
        fprintf(stderr, "layerlab_bench_gpu: every count must be positive\n");
        return 2;
    }
    if (out && !(ll_out = fopen(out, "w"))) {
        perror(out);
        return 1;
    }
    const ll_backend *be = ll_backend_cuda();
    if (!be) ll_die("setup");
    struct cudaDeviceProp prop;
    ll_cu(cudaGetDeviceProperties(&prop, 0), "device properties");
    printf("device                       %s, %d SMs\n", prop.name, prop.multiProcessorCount);

    double gemm = ll_ceiling_gemm_tflops(), copy = ll_ceiling_copy_gbs();
    ll_put("ceiling_gemm_bf16_tflops", gemm);
    ll_put("ceiling_copy_gbs", copy);

    ll_bufs bufs = {0};
    ll_model *m = ll_random_llama7b(be, layers, &bufs);
    const ll_config *c = &m->cfg;
    size_t n_params = ll_model_n_params(m);
    size_t n_emb = (size_t)c->vocab_size * c->d_model;
    ll_put("params_b", (double)n_params * 1e-9);
    int V = c->vocab_size;

    /* prefill */
    int T = seqs * len;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    int64_t *off = malloc((size_t)(seqs + 1) * sizeof *off);
    float *logits = malloc((size_t)seqs * V * sizeof(float));
    for (int s = 0; s <= seqs; s++) off[s] = (int64_t)s * len;
    for (int s = 0; s < seqs; s++)
        for (int i = 0; i < len; i++) ids[s * len + i] = ll_token_id(s, i, V);
    ll_batch b = {.n_seq = seqs, .seq_off = off, .tokens = ids};
    ll_forward_opts o = {.logits = LL_LOGITS_LAST, .logits_out = logits};
    double *tp = malloc((size_t)(reps + 1) * sizeof *tp);
    for (int r = -1; r < reps; r++) {
        double t0 = ll_now_s();
        if (ll_forward(m, &b, &o)) ll_die("prefill");
        if (r >= 0) tp[r] = ll_now_s() - t0;
    }
    double t_pre = ll_median(tp, reps);
    /* FLOPs: 2 per weight per token (the embedding lookup is free; the head runs on seqs rows),
     * plus causal attention 2 x 2 x (len^2 / 2) x d per layer and sequence. */
    double flops = 2.0 * (double)(n_params - 2 * n_emb) * T + 2.0 * (double)n_emb * seqs +
                   4.0 * (double)len * len / 2 * c->d_model * c->n_layers * seqs;
    ll_put("prefill_tokens", T);
    ll_put("prefill_s", t_pre);
    ll_put("prefill_tok_s", T / t_pre);
    ll_put("prefill_tflops", flops / t_pre * 1e-12);
    ll_put("prefill_mfu", flops / t_pre * 1e-12 / gemm);

    /* the same with the tensor-core attention kernel (LL_ATTN=tc), and how far its logits
     * are from the SIMT kernel's (bf16 attention: about 1e-5 expected) */
    float *logits_tc = malloc((size_t)seqs * V * sizeof(float));
    o.logits_out = logits_tc;
    setenv("LL_ATTN", "tc", 1);
    for (int r = -1; r < reps; r++) {
        double t0 = ll_now_s();
        if (ll_forward(m, &b, &o)) ll_die("prefill (tensor-core attention)");
        if (r >= 0) tp[r] = ll_now_s() - t0;
    }
    unsetenv("LL_ATTN");
    o.logits_out = logits;
    double t_tc = ll_median(tp, reps), num = 0, den = 0;
    for (size_t i = 0; i < (size_t)seqs * V; i++) {
        double dlt = (double)logits_tc[i] - logits[i];
        num += dlt * dlt;
        den += (double)logits[i] * logits[i];
    }
    ll_put("prefill_tc_s", t_tc);
    ll_put("prefill_tc_tok_s", T / t_tc);
    ll_put("prefill_tc_mfu", flops / t_tc * 1e-12 / gemm);
    ll_put("prefill_tc_logits_nmse", den > 0 ? num / den : (num > 0 ? INFINITY : 0));
    free(logits_tc);

    /* decode, plain and recording, alternating which goes first */
    ll_hooks *h;
    if (ll_hooks_new(&h, c->n_layers)) ll_die("hooks");
    ll_rec_sink sink = {.cap = (size_t)c->n_layers * c->d_model * 4};
    sink.buf = malloc(sink.cap * sizeof(float));
    ll_record rec = {.point = LL_HOOK_RESID_POST, .layer_lo = 0, .layer_hi = c->n_layers - 1, .pos = LL_POS_LAST,
                     .fn = ll_rec_fn, .user = &sink};
    if (ll_hooks_add_record(h, &rec)) ll_die("record");
    double *td = malloc((size_t)reps * sizeof *td), *th = malloc((size_t)reps * sizeof *th);
    ll_decode_s(m, prompt, 4, NULL, logits); /* warm-up */
    for (int r = 0; r < reps; r++) {
        if (r % 2 == 0) {
            td[r] = ll_decode_s(m, prompt, steps, NULL, logits);
            th[r] = ll_decode_s(m, prompt, steps, h, logits);
        } else {
            th[r] = ll_decode_s(m, prompt, steps, h, logits);
            td[r] = ll_decode_s(m, prompt, steps, NULL, logits);
        }
    }
    double t_dec = ll_median(td, reps), t_rec = ll_median(th, reps);
    double *tg = malloc((size_t)reps * sizeof *tg);
    for (int r = 0; r < reps; r++) tg[r] = ll_decode_graph_s(m, prompt, steps, logits);
    double t_graph = ll_median(tg, reps);
    free(tg);
    /* bytes per step: every bf16 weight but the embedding table (one row is read), the head,
     * and the KV cache read at the mean context length */
    double ctx = prompt + steps / 2.0;
    double bytes = 2.0 * (double)(n_params - n_emb) +
                   2.0 * ctx * c->n_layers * (double)c->n_kv_heads * c->head_dim * sizeof(float);
    ll_put("decode_prompt", prompt);
    ll_put("decode_ms_per_token", t_dec * 1e3);
    ll_put("decode_tok_s", 1.0 / t_dec);
    ll_put("decode_gbs", bytes / t_dec * 1e-9);
    ll_put("decode_bw_fraction", bytes / t_dec * 1e-9 / copy);
    ll_put("decode_graph_ms_per_token", t_graph * 1e3);
    ll_put("decode_graph_tok_s", 1.0 / t_graph);
    ll_put("decode_graph_speedup", t_dec / t_graph);
    ll_put("record_ms_per_token", t_rec * 1e3);
    ll_put("record_tok_s", 1.0 / t_rec);
    ll_put("record_overhead", t_rec / t_dec - 1.0);
    if (sink.calls != (long)reps * steps * c->n_layers) {
        fprintf(stderr, "layerlab_bench_gpu: the recording sink saw %ld calls, expected %ld\n", sink.calls,
                (long)reps * steps * c->n_layers);
        return 1;
    }
    ll_hooks_free(h);
    free(sink.buf);
    free(td);
    free(th);
    free(tp);
    free(ids);
    free(off);
    free(logits);
    ll_free_model(m, be, &bufs);
    if (ll_out) fclose(ll_out);
    return 0;
}
