/* A dump read back by someone else's code: h5py (Debian's python3-h5py) compares it
 * with Hugging Face transformers' hidden states and with the values layerlab held in
 * memory; h5dump (hdf5-tools) reads it with no custom filter. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dump/ll_dump.h"
#include "ll_test_util.h"

static int have_h5py(void) {
    return system("/usr/bin/python3 -c 'import h5py, numpy' >/dev/null 2>&1") == 0;
}

static void check_fixture(const char *name) {
    if (!have_h5py()) cr_skip_test("/usr/bin/python3 has no h5py (make test installs python3-h5py)");
    char dir[] = "/tmp/layerlab-dumppy-XXXXXX";
    cr_assert(mkdtemp(dir));
    char model[256], exp_path[256];
    snprintf(model, sizeof model, "test/fixtures/%s", name);
    snprintf(exp_path, sizeof exp_path, "test/fixtures/%s/expected.safetensors", name);
    ll_model *m;
    cr_assert_eq(ll_model_load(&m, model, NULL), LL_OK, "%s", ll_last_error());
    ll_tensor_set exp = {0};
    cr_assert_eq(ll_safetensors_open(&exp, exp_path), LL_OK, "%s", ll_last_error());
    const ll_tensor_info *tk = ll_tensor_set_find(&exp, "tokens"), *so = ll_tensor_set_find(&exp, "seq_offsets"),
                         *po = ll_tensor_set_find(&exp, "position_ids");
    const int32_t *tok = tk->data, *pos = po->data;
    const int64_t *off = so->data;
    /* The fixture's sequences whose position ids start at 0 (a dump numbers positions
     * from 0; the fixture's last sequence deliberately starts at 4). */
    int n_seq = 0;
    while (n_seq < (int)so->shape[0] - 1 && pos[off[n_seq]] == 0) n_seq++;
    cr_assert(n_seq >= 1);
    char in[400];
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    FILE *f = fopen(in, "w");
    for (int s = 0; s < n_seq; s++) {
        fprintf(f, "{\"id\": \"seq-%d\", \"source\": \"fixture\", \"tokens\": [", s);
        for (int64_t t = off[s]; t < off[s + 1]; t++) fprintf(f, "%s%d", t > off[s] ? ", " : "", tok[t]);
        fprintf(f, "]}\n");
    }
    fclose(f);
    ll_dump_input *di;
    cr_assert_eq(ll_dump_input_open(&di, in), LL_OK, "%s", ll_last_error());
    char out32[400], out16[400], raw[400];
    snprintf(out32, sizeof out32, "%s/f32.h5", dir);
    snprintf(out16, sizeof out16, "%s/bf16.h5", dir);
    snprintf(raw, sizeof raw, "%s/inmem.f32", dir);
    ll_dump_opts o = {.out_path = out32, .input = di, .points = "hook_resid_pre,ln_final.hook_normalized",
                      .progress = -1, .model_path = model};
    ll_dump_result r;
    cr_assert_eq(ll_dump_run(m, NULL, &o, &r), LL_OK, "%s", ll_last_error());
    o.out_path = out16;
    o.dtype = LL_BF16;
    o.points = "hook_resid_pre";
    cr_assert_eq(ll_dump_run(m, NULL, &o, &r), LL_OK, "%s", ll_last_error());

    /* The same rows held in memory: one forward of the same batch with a capture hook. */
    int L = m->cfg.n_layers, d = m->cfg.d_model;
    int64_t T = off[n_seq];
    ll_hooks *h;
    cr_assert_eq(ll_hooks_new(&h, L), LL_OK);
    ll_test_capture cap = {.n_layers_total = L, .T = T, .width = d};
    cap.data = calloc((size_t)L * T * d, 4);
    ll_record rec = {.point = LL_HOOK_RESID_PRE, .layer_lo = 0, .layer_hi = L - 1, .fn = ll_test_capture_fn, .user = &cap};
    cr_assert_eq(ll_hooks_add_record(h, &rec), LL_OK);
    ll_batch b = {.n_seq = n_seq, .seq_off = off, .tokens = tok};
    ll_forward_opts fo = {.hooks = h};
    cr_assert_eq(ll_forward(m, &b, &fo), LL_OK, "%s", ll_last_error());
    f = fopen(raw, "wb");
    cr_assert_eq(fwrite(cap.data, 4, (size_t)L * T * d, f), (size_t)L * T * d);
    fclose(f);

    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 test/dump_check.py %s %s %s %s %d 2>&1", out32, out16, exp_path, raw, n_seq);
    FILE *p = popen(cmd, "r");
    char line[512], all[4096] = "";
    while (fgets(line, sizeof line, p)) strncat(all, line, sizeof all - strlen(all) - 1);
    int rc = pclose(p);
    cr_log_info("%s: %s", name, all);
    cr_assert_eq(rc, 0, "%s: h5py check failed:\n%s", name, all);

    if (system("command -v h5dump >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "h5dump -A %s >/dev/null 2>&1 && h5dump -d /acts/hook_resid_pre -c 1,1,4 %s | grep -q DATA",
                 out32, out16);
        cr_assert_eq(system(cmd), 0, "h5dump cannot read %s", out32);
    } else {
        cr_log_warn("h5dump not installed: skipped reading the dump with it (make test installs hdf5-tools)");
    }
    free(cap.data);
    ll_hooks_free(h);
    ll_dump_input_free(di);
    ll_tensor_set_free(&exp);
    ll_model_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {
    }
}

TestSuite(dump_python);
Test(dump_python, llama_gqa_against_transformers) { check_fixture("llama_gqa"); }
Test(dump_python, gpt2_against_transformers) { check_fixture("gpt2"); }
Test(dump_python, qwen2_against_transformers) { check_fixture("qwen2"); }
