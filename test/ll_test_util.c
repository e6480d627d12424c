#include "ll_test_util.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *ll_test_shared_assets(void) {
    static char buf[4096];
    const char *env = getenv("LAYERLAB_SHARED");
    snprintf(buf, sizeof buf, "%s/assets", env && *env ? env : "../shared");
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? buf : NULL;
}

int ll_test_asset(char *buf, size_t n, const char *rel) {
    const char *a = ll_test_shared_assets();
    if (!a) return 0;
    snprintf(buf, n, "%s/%s", a, rel);
    struct stat st;
    return stat(buf, &st) == 0;
}

double ll_test_rel_err(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    if (mb == 0) return md;
    return md / mb;
}

float *ll_test_f32(const ll_tensor_set *s, const char *name, size_t *n) {
    const ll_tensor_info *t = ll_tensor_set_find(s, name);
    if (!t) return NULL;
    size_t k = ll_tensor_numel(t);
    float *out = malloc((k ? k : 1) * sizeof(float));
    if (!out) return NULL;
    if (ll_convert_to_f32(out, t->data, t->dtype, k) != 0) {
        free(out);
        return NULL;
    }
    if (n) *n = k;
    return out;
}

ll_status ll_test_capture_fn(void *user, const ll_hook_rows *r) {
    ll_test_capture *c = user;
    if (r->width != c->width || r->layer < 0 || r->layer >= c->n_layers_total)
        return ll_err(LL_ERR_ARG, "capture: unexpected width %d or layer %d", r->width, r->layer);
    for (int i = 0; i < r->n_rows; i++)
        memcpy(c->data + ((size_t)r->layer * (size_t)c->T + (size_t)r->rows[i]) * (size_t)c->width,
               r->data + (size_t)i * (size_t)r->width, (size_t)r->width * sizeof(float));
    c->calls++;
    return LL_OK;
}

int ll_test_write_tmp(char *path, size_t pathlen, const void *data, size_t n, const char *suffix) {
    snprintf(path, pathlen, "/tmp/layerlab-test-XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, (const char *)data + off, n - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    close(fd);
    return 0;
}

int ll_test_run_cli(char *const argv[], const char *out, const char *err) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    extern char **environ;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "cannot start %s", argv[0]);
    int ws;
    cr_assert(waitpid(pid, &ws, 0) == pid);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

char *ll_test_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = calloc(1, 1 << 16);
    size_t n = fread(b, 1, (1 << 16) - 1, f);
    b[n] = 0;
    fclose(f);
    return b;
}
