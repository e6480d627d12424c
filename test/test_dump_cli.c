/* layerlab dump and merge from the command line: SIGTERM stops after a batch with a
 * resumable file and exit status 143, --resume completes it, usage errors exit 2. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/ll_store.h"

#define BIN "build/layerlab"
#define MODEL "test/fixtures/llama_gqa"

static char dir[64];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/layerlab-dumpcli-XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {
    }
}

static void write_prompts(const char *path, int n) {
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int i = 0; i < n; i++) {
        fprintf(f, "{\"tokens\": [1");
        for (int j = 0; j < 30 + i % 17; j++) fprintf(f, ", %d", 3 + (i * 31 + j * 7) % 500);
        fprintf(f, "], \"id\": \"p%d\"}\n", i);
    }
    fclose(f);
}

/* posix_spawn rather than fork: the child is a fresh program from the first
 * instruction, with none of this test worker's state (Criterion's own sockets and
 * fork handlers) copied into it. */
static pid_t spawn(char *const argv[], const char *err_path) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    extern char **environ;
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ)) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    cr_assert(pid > 0, "cannot start %s", argv[0]);
    return pid;
}

TestSuite(dump_cli, .init = setup, .fini = teardown);

Test(dump_cli, sigterm_leaves_a_resumable_file) {
    char in[128], out[128], err[128];
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.h5", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    write_prompts(in, 3000);
    char *argv[] = {BIN,   "dump", MODEL, "--input",        in,   "--out", out, "--batch-tokens", "256",
                    "--threads", "1", "--commit-every", "0.02", NULL};
    pid_t pid = spawn(argv, err);
    /* Wait until rows are committed (the file exists and says so), then stop it. */
    struct timespec ts = {0, 50 * 1000 * 1000};
    bool stopped = false;
    for (int i = 0; i < 600 && !stopped; i++) {
        nanosleep(&ts, NULL);
        ll_store_reader *r;
        if (access(out, F_OK) == 0 && ll_store_open(&r, out, true) == LL_OK) {
            if (ll_store_n_seq(r) > 0) {
                kill(pid, SIGTERM);
                stopped = true;
            }
            ll_store_reader_free(r);
        }
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(stopped, "no committed rows appeared");
    char msg[4096] = "";
    FILE *f = fopen(err, "r");
    size_t n = fread(msg, 1, sizeof msg - 1, f);
    msg[n] = 0;
    fclose(f);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM, "exit status %d, stderr: %s", status, msg);
    cr_assert(strstr(msg, "--resume"), "stderr says how to continue: %s", msg);
    ll_store_reader *r;
    cr_assert_neq(ll_store_open(&r, out, false), LL_OK, "an interrupted dump never reads as complete");
    cr_assert_eq(ll_store_open(&r, out, true), LL_OK, "%s", ll_last_error());
    int64_t part = ll_store_n_seq(r);
    ll_store_reader_free(r);
    cr_assert(part > 0 && part < 3000, "part: %lld", (long long)part);

    char *again[] = {BIN, "dump", MODEL, "--input", in, "--out", out, "--batch-tokens", "256", "--threads", "1", NULL};
    pid = spawn(again, err);
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "existing file without --resume/--force: status %d", status);
    char *resume[] = {BIN, "dump", MODEL, "--input", in, "--out", out, "--batch-tokens", "256", "--resume", NULL};
    pid = spawn(resume, err);
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "resume: status %d", status);
    cr_assert_eq(ll_store_open(&r, out, false), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_store_n_seq(r), 3000);
    int64_t idx[2];
    ll_store_read_i64(r, "sequences/index", part - 1, 2, idx);
    cr_assert_eq(idx[0], part - 1);
    cr_assert_eq(idx[1], part, "the resumed run continues right after the committed part");
    ll_store_reader_free(r);
}

Test(dump_cli, usage_and_bad_values) {
    char err[128];
    snprintf(err, sizeof err, "%s/err.txt", dir);
    struct {
        char *argv[10];
        int want;
    } cases[] = {
        {{BIN, "dump", MODEL, "--out", "x.h5", NULL}, 2},                                     /* no input */
        {{BIN, "dump", MODEL, "--prompt", "hi", "--out", "/tmp/x.h5", "--dtype", "f8", NULL}, 1},
        {{BIN, "dump", MODEL, "--prompt", "hi", "--out", "/tmp/x.h5", "--shard", "0/2", NULL}, 1},
        {{BIN, "dump", MODEL, "--prompt", "hi", "--out", "/tmp/x.h5", "--resume", "--force", NULL}, 1},
        {{BIN, "merge", NULL}, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pid_t pid = spawn(cases[i].argv, err);
        int status;
        waitpid(pid, &status, 0);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == cases[i].want, "case %zu: status %d, wanted exit %d", i,
                  status, cases[i].want);
    }
}

/* Compressed dumps (standard deflate and shuffle filters) hold the same values. */
Test(dump_cli, compressed_dump_equals_plain) {
    char in[128], a[128], b[128], err[128];
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(a, sizeof a, "%s/a.h5", dir);
    snprintf(b, sizeof b, "%s/b.h5", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    write_prompts(in, 50);
    char *pa[] = {BIN, "dump", MODEL, "--input", in, "--out", a, "--threads", "1", NULL};
    char *pb[] = {BIN, "dump", MODEL, "--input", in, "--out", b, "--threads", "1", "--compress", "shuffle+gzip", NULL};
    int status;
    waitpid(spawn(pa, err), &status, 0);
    cr_assert_eq(status, 0);
    waitpid(spawn(pb, err), &status, 0);
    cr_assert_eq(status, 0);
    ll_store_reader *ra, *rb;
    cr_assert_eq(ll_store_open(&ra, a, false), LL_OK);
    cr_assert_eq(ll_store_open(&rb, b, false), LL_OK);
    const ll_store_point_info *p = ll_store_point_at(ra, 0), *q = ll_store_point_at(rb, 0);
    int64_t R = ll_store_n_rows(ra);
    float *x = malloc((size_t)R * p->width * 4), *y = malloc((size_t)R * p->width * 4);
    for (int s = 0; s < p->n_layers; s++) {
        ll_store_read_rows(ra, p, s, 0, R, x);
        ll_store_read_rows(rb, q, s, 0, R, y);
        cr_assert(!memcmp(x, y, (size_t)R * p->width * 4), "layer slot %d", s);
    }
    char *v;
    cr_assert_eq(ll_store_get_attr(rb, "compression", &v), LL_OK);
    cr_assert_str_eq(v, "shuffle+gzip");
    free(v);
    free(x);
    free(y);
    ll_store_reader_free(ra);
    ll_store_reader_free(rb);
}
