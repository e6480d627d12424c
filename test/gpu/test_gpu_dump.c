/* layerlab dump on the GPU against the same dump on the CPU: the rows recorded from the
 * CUDA backend (bf16 weights, asynchronous bf16 or fp32 records) land in the store at
 * the same places as the CPU's, within the bf16 tolerance of test_gpu_model. Skipped,
 * saying why, without a CUDA device. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dump/ll_dump.h"
#include "ll_gpu_test.h"
#include "ll_test_util.h"
#include "store/ll_store.h"

static void dump_with(const ll_backend *be, const char *in, const char *out, ll_dtype dt) {
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, "test/fixtures/llama_gqa", NULL), LL_OK, "%s", ll_last_error());
    if (be) cr_assert_eq(ll_model_use_backend(m, be), LL_OK, "%s", ll_last_error());
    ll_dump_input *di;
    cr_assert_eq(ll_dump_input_open(&di, in), LL_OK);
    ll_dump_opts o = {.out_path = out, .input = di, .points = "hook_resid_post,hook_attn_z,ln_final.hook_normalized",
                      .dtype = dt, .progress = -1, .force = true, .batch_tokens = 40};
    ll_dump_result r;
    cr_assert_eq(ll_dump_run(m, NULL, &o, &r), LL_OK, "%s", ll_last_error());
    ll_dump_input_free(di);
    ll_model_free(m);
}

Test(gpu_dump, cuda_rows_match_cpu_rows) {
    const ll_backend *be;
    LL_NEED_GPU(be);
    char dir[] = "/tmp/layerlab-gpudump-XXXXXX";
    cr_assert(mkdtemp(dir));
    char in[128], cpu[128], gpu[128], gpub[128];
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(cpu, sizeof cpu, "%s/cpu.h5", dir);
    snprintf(gpu, sizeof gpu, "%s/gpu.h5", dir);
    snprintf(gpub, sizeof gpub, "%s/gpu-bf16.h5", dir);
    FILE *f = fopen(in, "w");
    for (int s = 0; s < 20; s++) {
        fprintf(f, "{\"tokens\": [1");
        for (int t = 0; t < 5 + s % 9; t++) fprintf(f, ", %d", (s * 31 + t * 17) % 500 + 3);
        fprintf(f, "]}\n");
    }
    fclose(f);
    dump_with(NULL, in, cpu, LL_F32);
    dump_with(be, in, gpu, LL_F32);
    dump_with(be, in, gpub, LL_BF16);
    ll_store_reader *rc, *rg, *rb;
    cr_assert_eq(ll_store_open(&rc, cpu, false), LL_OK);
    cr_assert_eq(ll_store_open(&rg, gpu, false), LL_OK);
    cr_assert_eq(ll_store_open(&rb, gpub, false), LL_OK);
    int64_t R = ll_store_n_rows(rc);
    cr_assert_eq(ll_store_n_rows(rg), R);
    for (int p = 0; p < ll_store_n_points(rc); p++) {
        const ll_store_point_info *pc = ll_store_point_at(rc, p);
        const ll_store_point_info *pg = ll_store_point_find(rg, pc->name), *pb = ll_store_point_find(rb, pc->name);
        size_t n = (size_t)R * pc->width;
        float *a = malloc(n * 4), *g = malloc(n * 4), *b = malloc(n * 4);
        for (int s = 0; s < pc->n_layers; s++) {
            ll_store_read_rows(rc, pc, s, 0, R, a);
            ll_store_read_rows(rg, pg, s, 0, R, g);
            ll_store_read_rows(rb, pb, s, 0, R, b);
            double e = ll_gt_nmse(g, a, n), eb = ll_gt_nmse(b, a, n);
            cr_expect(e <= 1e-3, "%s layer slot %d: GPU vs CPU nmse %.3g", pc->name, s, e);
            cr_expect(eb <= 2e-3, "%s layer slot %d: GPU bf16 records vs CPU nmse %.3g", pc->name, s, eb);
        }
        free(a);
        free(g);
        free(b);
    }
    ll_store_reader_free(rc);
    ll_store_reader_free(rg);
    ll_store_reader_free(rb);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {
    }
}
