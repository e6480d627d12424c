/* layerlab --device: cpu always works, a bad name is a usage error (exit 2), and cuda
 * without a usable GPU is an error that says why (exit 1) rather than a silent CPU run. */
#include <criterion/criterion.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/ll_backend.h"

/* The CLI built next to this test binary (build/ or build-asan/). */
static void ll_cli_path(char *out, size_t n) {
    char self[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert(k > 0);
    self[k] = 0;
    snprintf(out, n, "%s/layerlab", dirname(self));
}

static int ll_run_cli(const char *args, char *err, size_t n) {
    char cli[PATH_MAX + 16], cmd[PATH_MAX * 2], tmp[] = "/tmp/layerlab-cli-XXXXXX";
    ll_cli_path(cli, sizeof cli);
    int fd = mkstemp(tmp);
    cr_assert(fd >= 0);
    close(fd);
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>%s", cli, args, tmp);
    int rc = system(cmd);
    FILE *f = fopen(tmp, "r");
    size_t got = f ? fread(err, 1, n - 1, f) : 0;
    err[got] = 0;
    if (f) fclose(f);
    unlink(tmp);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

Test(cli_device, cpu_runs_and_bad_name_is_usage_error) {
    char err[4096];
    cr_expect_eq(ll_run_cli("run test/fixtures/llama_gqa --tokens 1,2,3 --device cpu", err, sizeof err), 0, "%s", err);
    cr_expect_eq(ll_run_cli("run test/fixtures/llama_gqa --tokens 1,2 --device tpu", err, sizeof err), 2);
    cr_expect(strstr(err, "expected cuda or cpu, found 'tpu'") != NULL, "stderr: %s", err);
}

Test(cli_device, cuda_without_a_gpu_says_why) {
    if (ll_backend_cuda()) cr_skip_test("a CUDA device is present: this checks the machine without one");
    char err[4096];
    cr_expect_eq(ll_run_cli("run test/fixtures/llama_gqa --tokens 1,2 --device cuda", err, sizeof err), 1);
    cr_expect(strstr(err, "layerlab: error: --device cuda:") != NULL, "stderr: %s", err);
}

Test(cli_device, cuda_runs_the_model_when_present) {
    if (!ll_backend_cuda()) cr_skip_test("no CUDA device: %s", ll_last_error());
    char err[4096];
    cr_expect_eq(ll_run_cli("run test/fixtures/gpt2 --tokens 1,2,3 --device cuda", err, sizeof err), 0, "%s", err);
}
