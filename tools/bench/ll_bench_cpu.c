/* layerlab CPU benchmark: prefill and decode throughput, with and without
 * recording hook_resid_post of every layer at the last position.
 *
 *   ll_bench_cpu MODEL [--threads N] [--warmup W] [--reps R] [--seqs 8] [--len 256]
 *                [--prompt 256] [--steps 64] [--json FILE] [--tsv FILE] [--logits FILE]
 *
 * prefill: --seqs sequences of --len tokens in one ragged batch, logits at the last
 *          position of each sequence only.
 * decode:  a --prompt token prompt goes into a KV cache (not timed), then --steps
 *          single-token greedy steps (ll_argmax included) are timed.
 * Each repetition runs the plain and the recording variant back to back (alternating
 * which goes first) so that both see the same machine state; mean +- sample std
 * over --reps repetitions after --warmup untimed ones.
 *
 * Token ids are a fixed formula shared with tools/bench/hf_peer.py so that both
 * programs compute the same thing; --logits writes the prefill logits ([seqs][vocab]
 * float32) for the peer's parity check. Built by tools/bench/run.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "backend/ll_backend.h"
#include "model/ll_forward.h"
#include "model/ll_hooks.h"
#include "model/ll_model.h"

/* Same formula as ll_token_id() in hf_peer.py; ids 0..2 (special tokens) are avoided. */
static int32_t ll_token_id(int s, int i, int vocab) {
    return (int32_t)(((int64_t)s * 1000003 + (int64_t)i * 7919 + 12345) % (vocab - 3) + 3);
}

static double ll_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void ll_die(const char *what) {
    fprintf(stderr, "ll_bench_cpu: %s: %s\n", what, ll_last_error());
    exit(1);
}

/* ---- recording sink: appends every row it is handed to one buffer ------------------ */

typedef struct {
    float *buf;
    size_t cap, used; /* floats */
    long calls;
} ll_rec_sink;

/* ---- the machine's ceilings, measured in the same run ------------------------------ */

/* Best of a few large square sgemm calls through the same OpenBLAS and thread count:
 * the fp32 rate this machine reaches on the work prefill consists of. */
static double ll_ceiling_sgemm_gflops(void) {
    const int n = 1536;
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float));
    float *c = malloc((size_t)n * n * sizeof(float));
    double best = 0;
    if (a && b && c) {
        for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.25f;
        for (int r = 0; r < 4; r++) {
            double t0 = ll_now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            double g = 2.0 * n * n * (double)n / (ll_now_s() - t0) * 1e-9;
            if (r > 0 && g > best) best = g; /* the first call pays for page faults and thread start */
        }
    }
    free(a);
    free(b);
    free(c);
    return best;
}

/* STREAM-style triad x = y + s * z over arrays far larger than the caches, best of a
 * few: the memory bandwidth single-token decode (a pass over all weights) is bound by.
 * Counted as STREAM counts it: two reads and one write per element. */
static double ll_ceiling_stream_gbs(void) {
    const size_t n = (size_t)48 << 20; /* 3 x 192 MiB */
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)), *z = malloc(n * sizeof(float));
    double best = 0;
    if (x && y && z) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) x[i] = y[i] = z[i] = 1.0f; /* first touch on the threads that use them */
        for (int r = 0; r < 5; r++) {
            double t0 = ll_now_s();
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < n; i++) x[i] = y[i] + 0.5f * z[i];
            double g = 3.0 * n * sizeof(float) / (ll_now_s() - t0) * 1e-9;
            if (g > best) best = g;
        }
    }
    free(x);
    free(y);
    free(z);
    return best;
}

static ll_status ll_rec_fn(void *user, const ll_hook_rows *r) {
    ll_rec_sink *s = user;
    size_t n = (size_t)r->n_rows * (size_t)r->width;
    if (s->used + n > s->cap) return ll_err(LL_ERR_ARG, "bench sink: buffer of %zu floats is full", s->cap);
    memcpy(s->buf + s->used, r->data, n * sizeof(float));
    s->used += n;
    s->calls++;
    return LL_OK;
}

/* ---- statistics ---------------------------------------------------------------------- */

typedef struct {
    double mean, std, min, median;
} ll_stats;

static int ll_cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static ll_stats ll_stats_of(const double *v, int n) {
    ll_stats s = {0};
    double *tmp = malloc((size_t)n * sizeof *tmp);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    s.mean = sum / n;
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (v[i] - s.mean) * (v[i] - s.mean);
    s.std = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
    memcpy(tmp, v, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, ll_cmp_dbl);
    s.min = tmp[0];
    s.median = n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
    free(tmp);
    return s;
}

/* ---- the workloads ------------------------------------------------------------------- */

typedef struct {
    ll_model *m;
    int seqs, len, prompt, steps;
    int32_t *pf_tokens;
    int64_t *pf_off;
    float *pf_logits;  /* [seqs][V] */
    int32_t *dec_tokens; /* prompt, then the generated tokens */
    float *dec_logits;   /* [V] */
    ll_kv_cache *cache;
} ll_bench;

static double ll_run_prefill(ll_bench *B, ll_hooks *h, ll_rec_sink *sink) {
    if (sink) sink->used = 0;
    ll_batch b = {.n_seq = B->seqs, .seq_off = B->pf_off, .tokens = B->pf_tokens};
    ll_forward_opts o = {.hooks = h, .logits = LL_LOGITS_LAST, .logits_out = B->pf_logits};
    double t0 = ll_now_s();
    if (ll_forward(B->m, &b, &o)) ll_die("prefill");
    double t = ll_now_s() - t0;
    if (sink && sink->used != (size_t)B->m->cfg.n_layers * B->seqs * B->m->cfg.d_model) {
        fprintf(stderr, "ll_bench_cpu: prefill recorded %zu floats, expected %d x %d x %d\n", sink->used,
                B->m->cfg.n_layers, B->seqs, B->m->cfg.d_model);
        exit(1);
    }
    return t;
}

static int ll_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Returns the time of the decode steps; the prompt is run first, untimed. */
static double ll_run_decode(ll_bench *B, ll_hooks *h, ll_rec_sink *sink) {
    int V = B->m->cfg.vocab_size;
    if (sink) sink->used = 0;
    ll_kv_cache_reset(B->cache, -1);
    int64_t off[2] = {0, B->prompt};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = B->dec_tokens};
    ll_forward_opts o = {.cache = B->cache, .hooks = h, .logits = LL_LOGITS_LAST, .logits_out = B->dec_logits};
    if (ll_forward(B->m, &b, &o)) ll_die("decode prompt");
    B->dec_tokens[B->prompt] = ll_argmax(B->dec_logits, V);
    double t0 = ll_now_s();
    for (int i = 0; i < B->steps; i++) {
        int64_t off1[2] = {0, 1};
        ll_batch b1 = {.n_seq = 1, .seq_off = off1, .tokens = &B->dec_tokens[B->prompt + i]};
        if (ll_forward(B->m, &b1, &o)) ll_die("decode step");
        B->dec_tokens[B->prompt + i + 1] = ll_argmax(B->dec_logits, V);
    }
    double t = ll_now_s() - t0;
    if (sink && sink->used != (size_t)(B->steps + 1) * B->m->cfg.n_layers * B->m->cfg.d_model) {
        fprintf(stderr, "ll_bench_cpu: decode recorded %zu floats, expected %d x %d x %d\n", sink->used,
                B->steps + 1, B->m->cfg.n_layers, B->m->cfg.d_model);
        exit(1);
    }
    return t;
}

static long ll_parse_int(const char *opt, const char *v, long lo, long hi) {
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) {
        fprintf(stderr, "ll_bench_cpu: %s: expected an integer in [%ld, %ld], found '%s'\n", opt, lo, hi, v);
        exit(2);
    }
    return n;
}

static const char ll_usage[] =
    "usage: ll_bench_cpu MODEL [--threads N] [--warmup W] [--reps R] [--seqs 8] [--len 256]\n"
    "                    [--prompt 256] [--steps 64] [--json FILE] [--tsv FILE] [--logits FILE]\n";

int main(int argc, char **argv) {
    const char *path = NULL, *json_path = NULL, *tsv_path = NULL, *logits_path = NULL;
    int threads = 0, warmup = 1, reps = 5, seqs = 8, len = 256, prompt = 256, steps = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            fputs(ll_usage, stdout);
            return 0;
        } else if (a[0] == '-' && !v) {
            fprintf(stderr, "ll_bench_cpu: %s needs a value\n%s", a, ll_usage);
            return 2;
        } else if (!strcmp(a, "--threads")) threads = (int)ll_parse_int(a, argv[++i], 0, 4096);
        else if (!strcmp(a, "--warmup")) warmup = (int)ll_parse_int(a, argv[++i], 0, 1000);
        else if (!strcmp(a, "--reps")) reps = (int)ll_parse_int(a, argv[++i], 1, 100000);
        else if (!strcmp(a, "--seqs")) seqs = (int)ll_parse_int(a, argv[++i], 1, 4096);
        else if (!strcmp(a, "--len")) len = (int)ll_parse_int(a, argv[++i], 1, 1 << 20);
        else if (!strcmp(a, "--prompt")) prompt = (int)ll_parse_int(a, argv[++i], 1, 1 << 20);
        else if (!strcmp(a, "--steps")) steps = (int)ll_parse_int(a, argv[++i], 1, 1 << 20);
        else if (!strcmp(a, "--json")) json_path = argv[++i];
        else if (!strcmp(a, "--tsv")) tsv_path = argv[++i];
        else if (!strcmp(a, "--logits")) logits_path = argv[++i];
        else if (a[0] == '-') {
            fprintf(stderr, "ll_bench_cpu: unknown option %s\n%s", a, ll_usage);
            return 2;
        } else if (!path) path = a;
        else {
            fputs(ll_usage, stderr);
            return 2;
        }
    }
    if (!path) {
        fputs(ll_usage, stderr);
        return 2;
    }
    ll_set_threads(threads);
    threads = ll_get_threads();

    ll_bench B = {.seqs = seqs, .len = len, .prompt = prompt, .steps = steps};
    if (ll_model_load(&B.m, path, NULL)) ll_die("loading the model");
    const ll_config *c = &B.m->cfg;
    int V = c->vocab_size, L = c->n_layers, d = c->d_model;
    if (V < 4) {
        fprintf(stderr, "ll_bench_cpu: vocabulary too small\n");
        return 1;
    }

    /* inputs */
    size_t T = (size_t)seqs * len;
    B.pf_tokens = malloc(T * sizeof(int32_t));
    B.pf_off = malloc((size_t)(seqs + 1) * sizeof(int64_t));
    B.pf_logits = malloc((size_t)seqs * V * sizeof(float));
    B.dec_tokens = malloc((size_t)(prompt + steps + 1) * sizeof(int32_t));
    B.dec_logits = malloc((size_t)V * sizeof(float));
    if (!B.pf_tokens || !B.pf_off || !B.pf_logits || !B.dec_tokens || !B.dec_logits) {
        fprintf(stderr, "ll_bench_cpu: out of memory\n");
        return 1;
    }
    for (int s = 0; s <= seqs; s++) B.pf_off[s] = (int64_t)s * len;
    for (int s = 0; s < seqs; s++)
        for (int i = 0; i < len; i++) B.pf_tokens[(size_t)s * len + i] = ll_token_id(s, i, V);
    for (int i = 0; i < prompt; i++) B.dec_tokens[i] = ll_token_id(0, i, V);
    if (ll_kv_cache_new(&B.cache, B.m, 1, prompt + steps + 1)) ll_die("KV cache");

    /* hooks: hook_resid_post of every layer, last position of each sequence */
    ll_rec_sink sink = {0};
    size_t rows_max = (size_t)(seqs > steps + 1 ? seqs : steps + 1);
    sink.cap = rows_max * (size_t)L * (size_t)d;
    sink.buf = malloc(sink.cap * sizeof(float));
    ll_hooks *hooks;
    if (!sink.buf || ll_hooks_new(&hooks, L)) ll_die("hooks");
    ll_record rec = {.point = LL_HOOK_RESID_POST, .layer_lo = 0, .layer_hi = L - 1, .pos = LL_POS_LAST,
                     .fn = ll_rec_fn, .user = &sink};
    if (ll_hooks_add_record(hooks, &rec)) ll_die("hooks");

    /* work per pass (fp32, multiply-add = 2 flops) */
    int H = c->n_heads, hd = c->head_dim, qw = H * hd, kw = c->n_kv_heads * hd;
    double layer_mm = (double)d * qw + 2.0 * d * kw + (double)qw * d +
                      (c->mlp == LL_MLP_SWIGLU ? 3.0 : 2.0) * d * c->d_ff; /* matmul weights per block */
    double head_mm = (double)V * d;
    double pf_mm_flops = 2.0 * layer_mm * L * (double)T + 2.0 * head_mm * seqs; /* LM head on last rows only */
    double pf_attn_flops = (double)L * seqs * H * 4.0 * hd * ((double)len * (len + 1) / 2.0);
    double pf_flops = pf_mm_flops + pf_attn_flops;
    double norm_floats = (double)L * (c->norm == LL_NORM_LAYER ? 4.0 : 2.0) * d + d;
    double dec_weight_bytes = 4.0 * (layer_mm * L + head_mm + norm_floats + d); /* + one embedding row */
    double dec_ctx_mean = prompt + (steps + 1) / 2.0;                           /* keys seen per step, averaged */
    double dec_kv_bytes = 4.0 * 2.0 * L * kw * dec_ctx_mean;
    double dec_flops = 2.0 * layer_mm * L + 2.0 * head_mm + (double)L * H * 4.0 * hd * dec_ctx_mean;

    int n = warmup + reps;
    double *pf = calloc((size_t)n, sizeof(double)), *pfr = calloc((size_t)n, sizeof(double));
    double *dc = calloc((size_t)n, sizeof(double)), *dcr = calloc((size_t)n, sizeof(double));
    int32_t *gen = malloc((size_t)(steps + 1) * sizeof(int32_t));
    int gen_mismatch = 0;
    fprintf(stderr, "ll_bench_cpu: %s, %d threads, %d warm-up + %d reps\n", path, threads, warmup, reps);
    for (int r = 0; r < n; r++) {
        if (r % 2 == 0) {
            pf[r] = ll_run_prefill(&B, NULL, NULL);
            pfr[r] = ll_run_prefill(&B, hooks, &sink);
        } else {
            pfr[r] = ll_run_prefill(&B, hooks, &sink);
            pf[r] = ll_run_prefill(&B, NULL, NULL);
        }
        if (r % 2 == 0) {
            dc[r] = ll_run_decode(&B, NULL, NULL);
            memcpy(gen, B.dec_tokens + prompt, (size_t)(steps + 1) * sizeof(int32_t));
            dcr[r] = ll_run_decode(&B, hooks, &sink);
        } else {
            dcr[r] = ll_run_decode(&B, hooks, &sink);
            dc[r] = ll_run_decode(&B, NULL, NULL);
            memcpy(gen, B.dec_tokens + prompt, (size_t)(steps + 1) * sizeof(int32_t));
        }
        /* recording must not change the generated tokens (both runs are deterministic) */
        gen_mismatch |= memcmp(gen, B.dec_tokens + prompt, (size_t)(steps + 1) * sizeof(int32_t)) != 0;
        fprintf(stderr, "  %s %d: prefill %.3f s (rec %.3f s), decode %.3f s (rec %.3f s)\n",
                r < warmup ? "warm-up" : "rep", r < warmup ? r + 1 : r - warmup + 1, pf[r], pfr[r], dc[r], dcr[r]);
    }
    if (gen_mismatch) fprintf(stderr, "ll_bench_cpu: WARNING: recording changed the generated tokens\n");

    /* per-rep rates, then statistics over the timed reps */
    double *tmp = malloc((size_t)reps * 4 * sizeof(double));
    double *pf_tps = tmp, *pfr_tps = tmp + reps, *dc_tps = tmp + 2 * reps, *dcr_tps = tmp + 3 * reps;
    for (int i = 0; i < reps; i++) {
        pf_tps[i] = (double)T / pf[warmup + i];
        pfr_tps[i] = (double)T / pfr[warmup + i];
        dc_tps[i] = steps / dc[warmup + i];
        dcr_tps[i] = steps / dcr[warmup + i];
    }
    ll_stats s_pf = ll_stats_of(pf + warmup, reps), s_pfr = ll_stats_of(pfr + warmup, reps);
    ll_stats s_dc = ll_stats_of(dc + warmup, reps), s_dcr = ll_stats_of(dcr + warmup, reps);
    ll_stats r_pf = ll_stats_of(pf_tps, reps), r_pfr = ll_stats_of(pfr_tps, reps);
    ll_stats r_dc = ll_stats_of(dc_tps, reps), r_dcr = ll_stats_of(dcr_tps, reps);
    double ovh_pf = 100.0 * (s_pfr.mean - s_pf.mean) / s_pf.mean;
    double ovh_dc = 100.0 * (s_dcr.mean - s_dc.mean) / s_dc.mean;
    double ms_tok = 1e3 * s_dc.mean / steps, ms_tok_r = 1e3 * s_dcr.mean / steps;
    double gflops = pf_flops / s_pf.mean * 1e-9, gflops_r = pf_flops / s_pfr.mean * 1e-9;
    double gbs = dec_weight_bytes * steps / s_dc.mean * 1e-9, gbs_r = dec_weight_bytes * steps / s_dcr.mean * 1e-9;

    printf("layerlab CPU benchmark: %s (%.2fM parameters, %d layers, d %d, vocab %d), %d threads, %d reps\n", path,
           ll_model_n_params(B.m) * 1e-6, L, d, V, threads, reps);
    printf("%-28s %18s %18s %10s\n", "", "plain", "recording", "overhead");
    printf("%-28s %10.1f +- %5.1f %10.1f +- %5.1f %9.1f%%\n", "prefill tok/s", r_pf.mean, r_pf.std, r_pfr.mean,
           r_pfr.std, ovh_pf);
    printf("%-28s %10.2f +- %5.2f %10.2f +- %5.2f\n", "prefill GFLOP/s", gflops, gflops * s_pf.std / s_pf.mean,
           gflops_r, gflops_r * s_pfr.std / s_pfr.mean);
    printf("%-28s %10.1f +- %5.1f %10.1f +- %5.1f %9.1f%%\n", "decode tok/s", r_dc.mean, r_dc.std, r_dcr.mean,
           r_dcr.std, ovh_dc);
    printf("%-28s %10.3f +- %5.3f %10.3f +- %5.3f\n", "decode ms/token", ms_tok, 1e3 * s_dc.std / steps, ms_tok_r,
           1e3 * s_dcr.std / steps);
    printf("%-28s %10.2f +- %5.2f %10.2f +- %5.2f\n", "decode GB/s (fp32 weights)", gbs, gbs * s_dc.std / s_dc.mean,
           gbs_r, gbs_r * s_dcr.std / s_dcr.mean);
    printf("recording overhead from the fastest repetitions: prefill %+.1f%%, decode %+.1f%%\n",
           100.0 * (s_pfr.min / s_pf.min - 1), 100.0 * (s_dcr.min / s_dc.min - 1));
    printf("prefill: %d x %d tokens, %.2f GFLOP per pass (%.2f matmul + %.2f attention)\n", seqs, len, pf_flops * 1e-9,
           pf_mm_flops * 1e-9, pf_attn_flops * 1e-9);
    printf("decode: %d steps after a %d-token prompt, %.1f MB of weights per token\n", steps, prompt,
           dec_weight_bytes * 1e-6);
    double peak_gflops = ll_ceiling_sgemm_gflops(), peak_gbs = ll_ceiling_stream_gbs();
    printf("machine ceilings, measured now with %d threads: sgemm %.1f GFLOP/s, STREAM triad %.2f GB/s\n", threads,
           peak_gflops, peak_gbs);
    printf("prefill at %.0f%% of the sgemm rate; decode at %.0f%% of the triad bandwidth\n",
           peak_gflops > 0 ? 100.0 * gflops / peak_gflops : 0.0, peak_gbs > 0 ? 100.0 * gbs / peak_gbs : 0.0);

    if (logits_path) {
        FILE *f = fopen(logits_path, "wb");
        if (!f || fwrite(B.pf_logits, sizeof(float), (size_t)seqs * V, f) != (size_t)seqs * V) {
            fprintf(stderr, "ll_bench_cpu: cannot write %s\n", logits_path);
            return 1;
        }
        fclose(f);
    }
    if (json_path) {
        FILE *f = fopen(json_path, "w");
        if (!f) {
            fprintf(stderr, "ll_bench_cpu: cannot write %s\n", json_path);
            return 1;
        }
        fprintf(f, "{\n \"impl\": \"layerlab\",\n \"model\": \"%s\",\n \"n_params\": %zu,\n \"threads\": %d,\n", path,
                ll_model_n_params(B.m), threads);
        fprintf(f, " \"warmup\": %d,\n \"reps\": %d,\n \"seqs\": %d,\n \"len\": %d,\n \"prompt\": %d,\n \"steps\": %d,\n",
                warmup, reps, seqs, len, prompt, steps);
        fprintf(f, " \"prefill_flops\": %.6g,\n \"prefill_attn_flops\": %.6g,\n \"decode_weight_bytes\": %.6g,\n"
                   " \"decode_kv_bytes_mean\": %.6g,\n \"decode_flops_mean\": %.6g,\n",
                pf_flops, pf_attn_flops, dec_weight_bytes, dec_kv_bytes, dec_flops);
        const char *names[] = {"prefill_s", "prefill_rec_s", "decode_s", "decode_rec_s"};
        const double *sv[] = {pf, pfr, dc, dcr};
        for (int k = 0; k < 4; k++) {
            ll_stats st = ll_stats_of(sv[k] + warmup, reps);
            fprintf(f, " \"%s\": {\"mean\": %.6g, \"std\": %.6g, \"min\": %.6g, \"median\": %.6g, \"all\": [", names[k],
                    st.mean, st.std, st.min, st.median);
            for (int i = 0; i < reps; i++) fprintf(f, "%s%.6g", i ? ", " : "", sv[k][warmup + i]);
            fprintf(f, "]},\n");
        }
        fprintf(f, " \"prefill_tok_s\": {\"mean\": %.6g, \"std\": %.6g},\n", r_pf.mean, r_pf.std);
        fprintf(f, " \"prefill_rec_tok_s\": {\"mean\": %.6g, \"std\": %.6g},\n", r_pfr.mean, r_pfr.std);
        fprintf(f, " \"decode_tok_s\": {\"mean\": %.6g, \"std\": %.6g},\n", r_dc.mean, r_dc.std);
        fprintf(f, " \"decode_rec_tok_s\": {\"mean\": %.6g, \"std\": %.6g},\n", r_dcr.mean, r_dcr.std);
        fprintf(f, " \"decode_ms_per_token\": %.6g,\n \"decode_rec_ms_per_token\": %.6g,\n", ms_tok, ms_tok_r);
        fprintf(f, " \"prefill_gflop_s\": %.6g,\n \"prefill_rec_gflop_s\": %.6g,\n", gflops, gflops_r);
        fprintf(f, " \"decode_gb_s\": %.6g,\n \"decode_rec_gb_s\": %.6g,\n", gbs, gbs_r);
        fprintf(f, " \"ceiling_sgemm_gflop_s\": %.6g,\n \"ceiling_stream_gb_s\": %.6g,\n", peak_gflops, peak_gbs);
        fprintf(f, " \"prefill_rec_overhead_pct\": %.6g,\n \"decode_rec_overhead_pct\": %.6g,\n", ovh_pf, ovh_dc);
        fprintf(f, " \"recording_changed_tokens\": %s,\n \"decode_tokens\": [", gen_mismatch ? "true" : "false");
        for (int i = 0; i <= steps; i++) fprintf(f, "%s%d", i ? ", " : "", gen[i]);
        fprintf(f, "]\n}\n");
        fclose(f);
    }
    if (tsv_path) {
        FILE *f = fopen(tsv_path, "w");
        if (!f) {
            fprintf(stderr, "ll_bench_cpu: cannot write %s\n", tsv_path);
            return 1;
        }
        fprintf(f, "impl\tcase\tmean_s\tstd_s\tmin_s\tmedian_s\ttok_s\ttok_s_std\n");
        const char *cases[] = {"prefill", "prefill_rec", "decode", "decode_rec"};
        const double *sv[] = {pf, pfr, dc, dcr};
        const ll_stats *rv[] = {&r_pf, &r_pfr, &r_dc, &r_dcr};
        for (int k = 0; k < 4; k++) {
            ll_stats st = ll_stats_of(sv[k] + warmup, reps);
            fprintf(f, "layerlab\t%s\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\n", cases[k], st.mean, st.std, st.min,
                    st.median, rv[k]->mean, rv[k]->std);
        }
        fclose(f);
    }

    free(tmp);
    free(pf);
    free(pfr);
    free(dc);
    free(dcr);
    free(gen);
    free(sink.buf);
    ll_hooks_free(hooks);
    ll_kv_cache_free(B.cache);
    free(B.pf_tokens);
    free(B.pf_off);
    free(B.pf_logits);
    free(B.dec_tokens);
    free(B.dec_logits);
    ll_model_free(B.m);
    return 0;
}
