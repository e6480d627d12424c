/* The activation store and layerlab dump: values against Hugging Face and against
 * in-memory hooks, dtypes, positions and layers, resume after a stop, a crash and a
 * full disk, sharding and merging, the reader, and bad input. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dump/ll_dump.h"
#include "ll_test_util.h"
#include "store/ll_store.h"

#define MODEL "test/fixtures/llama_gqa"

static char tmpdir[256];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/layerlab-dump-XXXXXX");
    cr_assert(mkdtemp(tmpdir), "mkdtemp");
}

static void rm_tmpdir(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) {
    }
}

static const char *tpath(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* n prompts: token lists of lengths 3..22 (seeded), every fifth one as text. */
static const char *write_input(const char *name, int n) {
    const char *p = tpath(name);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    uint64_t s = 12345;
    for (int i = 0; i < n; i++) {
        if (i % 5 == 4) {
            fprintf(f, "{\"text\": \"prompt number %d says hello\", \"id\": \"t%d\", \"k\": %d}\n", i, i, i);
            continue;
        }
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int len = 3 + (int)((s >> 33) % 20);
        fprintf(f, "{\"tokens\": [1");
        for (int j = 1; j < len; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            fprintf(f, ", %d", 3 + (int)((s >> 33) % 500));
        }
        fprintf(f, "], \"positions\": {\"answer\": -2}}\n");
    }
    fclose(f);
    return p;
}

typedef struct {
    ll_model *m;
    ll_tokenizer *tok;
    ll_dump_input *in;
} env;

static void env_open(env *e, const char *input) {
    memset(e, 0, sizeof *e);
    ll_set_threads(1); /* a tiny model: threads only add hand-offs, and tests run two at a time */
    cr_assert_eq(ll_model_load(&e->m, MODEL, NULL), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_tokenizer_for_model(&e->tok, MODEL, NULL, e->m->cfg.vocab_size), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_dump_input_open(&e->in, input), LL_OK, "%s", ll_last_error());
}

static void env_close(env *e) {
    ll_dump_input_free(e->in);
    ll_tokenizer_free(e->tok);
    ll_model_free(e->m);
}

static ll_dump_opts base_opts(env *e, const char *out) {
    return (ll_dump_opts){.out_path = out, .input = e->in, .points = "hook_resid_post,hook_attn_z,ln_final.hook_normalized",
                          .batch_tokens = 64, .progress = -1, .commit_seconds = 1e-9, .model_path = MODEL};
}

static ll_status dump(env *e, ll_dump_opts o, ll_dump_result *r) { return ll_dump_run(e->m, e->tok, &o, r); }

/* Two dumps hold the same sequences, rows and bit-identical activations. */
static void assert_same_dump(const char *a, const char *b, bool allow_incomplete_a) {
    ll_store_reader *ra, *rb;
    cr_assert_eq(ll_store_open(&ra, a, allow_incomplete_a), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_store_open(&rb, b, false), LL_OK, "%s", ll_last_error());
    cr_assert_eq(ll_store_n_seq(ra), ll_store_n_seq(rb), "%s vs %s: sequences", a, b);
    cr_assert_eq(ll_store_n_rows(ra), ll_store_n_rows(rb));
    cr_assert_eq(ll_store_n_tokens(ra), ll_store_n_tokens(rb));
    const char *tables[] = {"sequences/tokens", "sequences/offsets", "sequences/row_offsets", "sequences/index",
                            "rows/sequence",    "rows/position",     "rows/token"};
    int64_t lens[] = {ll_store_n_tokens(ra), ll_store_n_seq(ra) + 1, ll_store_n_seq(ra) + 1, ll_store_n_seq(ra),
                      ll_store_n_rows(ra),   ll_store_n_rows(ra),    ll_store_n_rows(ra)};
    for (int t = 0; t < 7; t++) {
        int64_t *x = malloc((size_t)lens[t] * 8 + 8), *y = malloc((size_t)lens[t] * 8 + 8);
        cr_assert_eq(ll_store_read_i64(ra, tables[t], 0, lens[t], x), LL_OK, "%s", ll_last_error());
        cr_assert_eq(ll_store_read_i64(rb, tables[t], 0, lens[t], y), LL_OK, "%s", ll_last_error());
        cr_assert(!memcmp(x, y, (size_t)lens[t] * 8), "%s differs between %s and %s", tables[t], a, b);
        free(x);
        free(y);
    }
    cr_assert_eq(ll_store_n_points(ra), ll_store_n_points(rb));
    for (int p = 0; p < ll_store_n_points(ra); p++) {
        const ll_store_point_info *pa = ll_store_point_at(ra, p), *pb = ll_store_point_find(rb, pa->name);
        cr_assert(pb, "%s missing in %s", pa->name, b);
        size_t n = (size_t)ll_store_n_rows(ra) * (size_t)pa->width;
        float *x = malloc(n * 4 + 4), *y = malloc(n * 4 + 4);
        for (int s = 0; s < pa->n_layers; s++) {
            cr_assert_eq(ll_store_read_rows(ra, pa, s, 0, ll_store_n_rows(ra), x), LL_OK, "%s", ll_last_error());
            cr_assert_eq(ll_store_read_rows(rb, pb, s, 0, ll_store_n_rows(rb), y), LL_OK, "%s", ll_last_error());
            cr_assert(!memcmp(x, y, n * 4), "/acts/%s layer slot %d differs between %s and %s", pa->name, s, a, b);
        }
        free(x);
        free(y);
    }
    ll_store_reader_free(ra);
    ll_store_reader_free(rb);
}

/* No .timeout: Criterion 2.4's runner leaks a timer record when timed tests overlap. */
TestSuite(dump, .init = make_tmpdir, .fini = rm_tmpdir);

/* Every stored row equals the same row recorded in memory by a forward pass of that
 * sequence alone, at every point and layer (batching must not move rows around). */
Test(dump, rows_equal_in_memory_hooks) {
    env e;
    env_open(&e, write_input("in.jsonl", 23));
    ll_dump_result r;
    cr_assert_eq(dump(&e, base_opts(&e, tpath("a.h5")), &r), LL_OK, "%s", ll_last_error());
    cr_assert_eq(r.seqs, 23);
    ll_store_reader *rd;
    cr_assert_eq(ll_store_open(&rd, tpath("a.h5"), false), LL_OK, "%s", ll_last_error());
    cr_assert(ll_store_complete(rd));
    int L = e.m->cfg.n_layers, d = e.m->cfg.d_model, qw = e.m->cfg.n_heads * e.m->cfg.head_dim;
    const ll_store_point_info *post = ll_store_point_find(rd, "resid_post");
    const ll_store_point_info *z = ll_store_point_find(rd, "blocks.1.hook_attn_z");
    const ll_store_point_info *fin = ll_store_point_find(rd, "ln_final.hook_normalized");
    cr_assert(post && z && fin);
    cr_assert_eq(post->n_layers, L);
    cr_assert_eq(fin->n_layers, 1);
    cr_assert_eq(fin->layers[0], L);
    cr_assert_eq(z->width, qw);
    int64_t ns = ll_store_n_seq(rd);
    int64_t *off = malloc((size_t)(ns + 1) * 8), *roff = malloc((size_t)(ns + 1) * 8);
    int64_t T = ll_store_n_tokens(rd);
    int64_t *tok64 = malloc((size_t)T * 8);
    cr_assert_eq(ll_store_read_i64(rd, "sequences/offsets", 0, ns + 1, off), LL_OK);
    cr_assert_eq(ll_store_read_i64(rd, "sequences/row_offsets", 0, ns + 1, roff), LL_OK);
    cr_assert_eq(ll_store_read_i64(rd, "sequences/tokens", 0, T, tok64), LL_OK);
    cr_assert_eq(off[ns], T);
    cr_assert_eq(roff[ns], ll_store_n_rows(rd), "positions=all stores every token");
    float *got = malloc((size_t)64 * qw * 4);
    double worst = 0;
    for (int64_t s = 0; s < ns; s++) {
        int64_t n = off[s + 1] - off[s];
        int32_t *tok = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) tok[i] = (int32_t)tok64[off[s] + i];
        ll_hooks *h;
        cr_assert_eq(ll_hooks_new(&h, L), LL_OK);
        ll_test_capture cp = {.n_layers_total = L + 1, .T = n, .width = d}, cz = {.n_layers_total = L, .T = n, .width = qw};
        cp.data = calloc((size_t)(L + 1) * n * d, 4);
        cz.data = calloc((size_t)L * n * qw, 4);
        ll_record rec = {.point = LL_HOOK_RESID_POST, .layer_lo = 0, .layer_hi = L - 1, .fn = ll_test_capture_fn, .user = &cp};
        ll_hooks_add_record(h, &rec);
        rec = (ll_record){.point = LL_HOOK_FINAL_NORM, .layer_lo = L, .layer_hi = L, .fn = ll_test_capture_fn, .user = &cp};
        ll_hooks_add_record(h, &rec);
        rec = (ll_record){.point = LL_HOOK_ATTN_Z, .layer_lo = 0, .layer_hi = L - 1, .fn = ll_test_capture_fn, .user = &cz};
        ll_hooks_add_record(h, &rec);
        int64_t so[2] = {0, n};
        ll_batch b = {.n_seq = 1, .seq_off = so, .tokens = tok};
        ll_forward_opts fo = {.hooks = h};
        cr_assert_eq(ll_forward(e.m, &b, &fo), LL_OK, "%s", ll_last_error());
        for (int l = 0; l <= L; l++) {
            const ll_store_point_info *p = l < L ? post : fin;
            cr_assert_eq(ll_store_read_rows(rd, p, l < L ? l : 0, roff[s], n, got), LL_OK, "%s", ll_last_error());
            double err = ll_test_rel_err(got, cp.data + (size_t)l * n * d, (size_t)n * d);
            worst = err > worst ? err : worst;
            cr_expect(err < 1e-5, "sequence %lld layer %d: relative error %.3g", (long long)s, l, err);
        }
        for (int l = 0; l < L; l++) {
            cr_assert_eq(ll_store_read_rows(rd, z, l, roff[s], n, got), LL_OK);
            double err = ll_test_rel_err(got, cz.data + (size_t)l * n * qw, (size_t)n * qw);
            cr_expect(err < 1e-5, "attn_z sequence %lld layer %d: relative error %.3g", (long long)s, l, err);
        }
        free(cp.data);
        free(cz.data);
        ll_hooks_free(h);
        free(tok);
    }
    cr_log_info("dump vs in-memory hooks: worst relative error %.3g over %lld sequences", worst, (long long)ns);
    free(got);
    free(off);
    free(roff);
    free(tok64);
    ll_store_reader_free(rd);
    env_close(&e);
}

/* f16 and bf16 dumps are the f32 dump rounded (to nearest even), nothing else. */
Test(dump, half_dtypes_round_the_f32_dump) {
    env e;
    env_open(&e, write_input("in.jsonl", 9));
    ll_dump_result r;
    ll_dump_opts o = base_opts(&e, tpath("f32.h5"));
    o.points = "hook_resid_post";
    cr_assert_eq(dump(&e, o, &r), LL_OK, "%s", ll_last_error());
    ll_dtype types[2] = {LL_F16, LL_BF16};
    const char *names[2] = {"f16.h5", "bf16.h5"};
    for (int k = 0; k < 2; k++) {
        o.out_path = tpath(names[k]);
        o.dtype = types[k];
        cr_assert_eq(dump(&e, o, &r), LL_OK, "%s", ll_last_error());
    }
    ll_store_reader *r32, *r16, *rb;
    cr_assert_eq(ll_store_open(&r32, tpath("f32.h5"), false), LL_OK);
    cr_assert_eq(ll_store_open(&r16, tpath("f16.h5"), false), LL_OK);
    cr_assert_eq(ll_store_open(&rb, tpath("bf16.h5"), false), LL_OK);
    const ll_store_point_info *p32 = ll_store_point_at(r32, 0), *p16 = ll_store_point_at(r16, 0), *pb = ll_store_point_at(rb, 0);
    cr_assert_eq(p16->dtype, LL_F16);
    cr_assert_eq(pb->dtype, LL_BF16);
    int64_t R = ll_store_n_rows(r32);
    size_t n = (size_t)R * p32->width;
    float *a = malloc(n * 4), *h = malloc(n * 4), *b = malloc(n * 4);
    for (int s = 0; s < p32->n_layers; s++) {
        ll_store_read_rows(r32, p32, s, 0, R, a);
        ll_store_read_rows(r16, p16, s, 0, R, h);
        ll_store_read_rows(rb, pb, s, 0, R, b);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(h[i], ll_f16_to_f32(ll_f32_to_f16(a[i])), "f16 element %zu", i);
            cr_assert_eq(b[i], ll_bf16_to_f32(ll_f32_to_bf16(a[i])), "bf16 element %zu", i);
        }
    }
    free(a);
    free(h);
    free(b);
    ll_store_reader_free(r32);
    ll_store_reader_free(r16);
    ll_store_reader_free(rb);
    env_close(&e);
}

/* --positions last / list / names and --layers subsets store exactly those rows. */
Test(dump, positions_and_layers_select_rows) {
    env e;
    env_open(&e, write_input("in.jsonl", 10));
    ll_dump_result r;
    ll_dump_opts o = base_opts(&e, tpath("all.h5"));
    o.points = "hook_resid_post";
    cr_assert_eq(dump(&e, o, &r), LL_OK, "%s", ll_last_error());
    o.out_path = tpath("sel.h5");
    o.positions = "0,answer,-1";
    o.layers = "0,2";
    /* text records have no "answer": the check pass must say so and name the record */
    cr_assert_neq(dump(&e, o, &r), LL_OK);
    cr_assert(strstr(ll_last_error(), "answer") && strstr(ll_last_error(), "record 4"), "%s", ll_last_error());
    cr_assert(access(tpath("sel.h5"), F_OK) != 0, "nothing is created when the input does not check out");
    o.positions = "0,-2,-1,-1";
    cr_assert_eq(dump(&e, o, &r), LL_OK, "%s", ll_last_error());
    ll_store_reader *ra, *rs;
    cr_assert_eq(ll_store_open(&ra, tpath("all.h5"), false), LL_OK);
    cr_assert_eq(ll_store_open(&rs, tpath("sel.h5"), false), LL_OK);
    const ll_store_point_info *pa = ll_store_point_at(ra, 0), *ps = ll_store_point_at(rs, 0);
    cr_assert_eq(ps->n_layers, 2);
    cr_assert_eq(ps->layers[1], 2);
    int64_t ns = ll_store_n_seq(rs), off[16], roff[16];
    ll_store_read_i64(ra, "sequences/offsets", 0, ns + 1, off);
    ll_store_read_i64(rs, "sequences/row_offsets", 0, ns + 1, roff);
    int d = pa->width;
    float *x = malloc((size_t)d * 4), *y = malloc((size_t)d * 4);
    for (int64_t s = 0; s < ns; s++) {
        int64_t n = off[s + 1] - off[s];
        cr_assert_eq(roff[s + 1] - roff[s], 3, "three distinct positions per sequence (duplicates merged)");
        int64_t want[3] = {0, n - 2, n - 1}, pos[3];
        ll_store_read_i64(rs, "rows/position", roff[s], 3, pos);
        for (int k = 0; k < 3; k++) {
            cr_assert_eq(pos[k], want[k]);
            for (int sl = 0; sl < 2; sl++) {
                ll_store_read_rows(rs, ps, sl, roff[s] + k, 1, x);
                ll_store_read_rows(ra, pa, ps->layers[sl], off[s] + want[k], 1, y);
                cr_assert(!memcmp(x, y, (size_t)d * 4), "seq %lld pos %lld layer %d", (long long)s, (long long)want[k],
                          ps->layers[sl]);
            }
        }
    }
    free(x);
    free(y);
    ll_store_reader_free(ra);
    ll_store_reader_free(rs);
    env_close(&e);
}

/* The reader streams every stored layer in turn, in batches, covering every row once. */
Test(dump, reader_streams_layer_major) {
    env e;
    env_open(&e, write_input("in.jsonl", 12));
    ll_dump_result r;
    ll_dump_opts o = base_opts(&e, tpath("a.h5"));
    o.points = "hook_mlp_out";
    o.layers = "1-2";
    cr_assert_eq(dump(&e, o, &r), LL_OK, "%s", ll_last_error());
    ll_store_reader *rd;
    cr_assert_eq(ll_store_open(&rd, tpath("a.h5"), false), LL_OK);
    const ll_store_point_info *p = ll_store_point_find(rd, "hook_mlp_out");
    ll_store_stream *st;
    cr_assert_eq(ll_store_stream_open(&st, rd, p, 7), LL_OK);
    int64_t R = ll_store_n_rows(rd), seen[2] = {0, 0};
    float *row = malloc((size_t)p->width * 4);
    ll_store_chunk c;
    bool more;
    int last_slot = 0;
    while (ll_store_stream_next(st, &c, &more) == LL_OK && more) {
        cr_assert(c.slot >= last_slot, "layer-major order");
        last_slot = c.slot;
        cr_assert_eq(c.layer, 1 + c.slot);
        cr_assert_eq(c.row0, seen[c.slot]);
        cr_assert(c.n >= 1 && c.n <= 7);
        ll_store_read_rows(rd, p, c.slot, c.row0 + c.n - 1, 1, row);
        cr_assert(!memcmp(row, c.data + (size_t)(c.n - 1) * p->width, (size_t)p->width * 4));
        seen[c.slot] += c.n;
    }
    cr_assert_eq(seen[0], R);
    cr_assert_eq(seen[1], R);
    free(row);
    ll_store_stream_free(st);
    ll_store_reader_free(rd);
    env_close(&e);
}

/* ---- interruptions ---- */

typedef struct {
    volatile sig_atomic_t *flag;
    int after, seen;
    bool crash;
} commit_hook;

static void on_commit(void *user, const ll_store_progress *p) {
    commit_hook *h = user;
    (void)p;
    if (++h->seen < h->after) return;
    if (h->crash) _exit(0); /* no cleanup at all: what kill -9 or a segfault leaves */
    *h->flag = 1;
}

/* A stop request (what SIGINT/SIGTERM set in the CLI) leaves complete = false and the
 * committed sequences; --resume finishes the file and it equals an uninterrupted run. */
Test(dump, resume_after_stop_equals_uninterrupted) {
    env e;
    env_open(&e, write_input("in.jsonl", 40));
    ll_dump_result r;
    cr_assert_eq(dump(&e, base_opts(&e, tpath("ref.h5")), &r), LL_OK, "%s", ll_last_error());
    volatile sig_atomic_t flag = 0;
    commit_hook hk = {.flag = &flag, .after = 3};
    ll_dump_opts o = base_opts(&e, tpath("a.h5"));
    o.stop = &flag;
    o.on_commit = on_commit;
    o.on_commit_user = &hk;
    cr_assert_eq(dump(&e, o, &r), LL_OK, "%s", ll_last_error());
    cr_assert(r.interrupted);
    cr_assert(r.seqs > 0 && r.seqs < 40, "stopped part-way: %lld", (long long)r.seqs);
    ll_store_reader *rd;
    cr_assert_neq(ll_store_open(&rd, tpath("a.h5"), false), LL_OK, "an interrupted dump does not open as complete");
    cr_assert(strstr(ll_last_error(), "not complete"), "%s", ll_last_error());
    cr_assert_eq(ll_store_open(&rd, tpath("a.h5"), true), LL_OK, "%s", ll_last_error());
    cr_assert(!ll_store_complete(rd));
    cr_assert_eq(ll_store_n_seq(rd), r.seqs);
    ll_store_reader_free(rd);
    /* without --resume or --force the file is not touched */
    o = base_opts(&e, tpath("a.h5"));
    cr_assert_neq(dump(&e, o, &r), LL_OK);
    cr_assert(strstr(ll_last_error(), "already exists"), "%s", ll_last_error());
    o.resume = true;
    cr_assert_eq(dump(&e, o, &r), LL_OK, "%s", ll_last_error());
    cr_assert(r.seqs_before > 0);
    assert_same_dump(tpath("a.h5"), tpath("ref.h5"), false);
    /* resuming a complete file is refused */
    cr_assert_neq(dump(&e, o, &r), LL_OK);
    cr_assert(strstr(ll_last_error(), "already complete"), "%s", ll_last_error());
    env_close(&e);
}

/* A process killed in the middle (no cleanup at all) leaves a file whose committed part
 * reads back; --resume completes it to the uninterrupted result. */
Test(dump, resume_after_crash_equals_uninterrupted) {
    make_tmpdir();
    const char *in = write_input("in.jsonl", 40);
    /* fork before this process starts any thread pool */
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        env e;
        env_open(&e, in);
        volatile sig_atomic_t flag = 0;
        commit_hook hk = {.flag = &flag, .after = 4, .crash = true};
        ll_dump_opts o = base_opts(&e, tpath("a.h5"));
        o.on_commit = on_commit;
        o.on_commit_user = &hk;
        ll_dump_result r;
        dump(&e, o, &r);
        _exit(3); /* the crash did not happen */
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child crashed on purpose (status %d)", status);
    env e;
    env_open(&e, in);
    ll_store_reader *rd;
    cr_assert_eq(ll_store_open(&rd, tpath("a.h5"), true), LL_OK, "the committed part reads back: %s", ll_last_error());
    cr_assert(!ll_store_complete(rd));
    int64_t part = ll_store_n_seq(rd);
    cr_assert(part > 0 && part < 40, "committed %lld of 40", (long long)part);
    ll_store_reader_free(rd);
    ll_dump_result r;
    cr_assert_eq(dump(&e, base_opts(&e, tpath("ref.h5")), &r), LL_OK, "%s", ll_last_error());
    ll_dump_opts o = base_opts(&e, tpath("a.h5"));
    o.resume = true;
    cr_assert_eq(dump(&e, o, &r), LL_OK, "%s", ll_last_error());
    cr_assert_eq(r.seqs_before, part);
    assert_same_dump(tpath("a.h5"), tpath("ref.h5"), false);
    env_close(&e);
}

/* A full disk (a file-size limit here) fails with an error naming the file and the
 * cause; what was committed stays, and --resume with room again completes it. The
 * failing run is its own process, as it would be in use. */
Test(dump, disk_full_keeps_committed_part) {
    make_tmpdir();
    /* enough rows for several 1 MiB chunks per layer: the file grows a chunk at a time */
    const char *in = write_input("in.jsonl", 900);
    const char *msg = tpath("msg.txt");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        env e;
        env_open(&e, in);
        ll_dump_result r;
        ll_dump_opts o = base_opts(&e, tpath("a.h5"));
        o.batch_tokens = 1024;
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim;
        getrlimit(RLIMIT_FSIZE, &lim);
        lim.rlim_cur = 12u << 20; /* the whole dump takes about 26 MB */
        setrlimit(RLIMIT_FSIZE, &lim);
        ll_status st = dump(&e, o, &r);
        FILE *f = fopen(msg, "w");
        fputs(ll_last_error(), f);
        fclose(f);
        _exit(st == LL_OK ? 3 : 0);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the dump must fail on the full disk (status %d)", status);
    char text[2048] = "";
    FILE *f = fopen(msg, "r");
    cr_assert(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    cr_log_info("disk full: %s", text);
    cr_assert(strstr(text, tpath("a.h5")) && strstr(text, "File too large"), "the error names the file and the cause: %s",
              text);
    env e;
    env_open(&e, in);
    ll_store_reader *rd;
    cr_assert_neq(ll_store_open(&rd, tpath("a.h5"), false), LL_OK, "a failed dump never opens as complete");
    ll_dump_result r;
    ll_dump_opts o = base_opts(&e, tpath("ref.h5"));
    o.batch_tokens = 1024;
    cr_assert_eq(dump(&e, o, &r), LL_OK, "%s", ll_last_error());
    o.out_path = tpath("a.h5");
    o.resume = true;
    cr_assert_eq(dump(&e, o, &r), LL_OK, "%s", ll_last_error());
    cr_assert(r.seqs_before > 0 && r.seqs_before < 900, "committed before the disk filled: %lld of 900",
              (long long)r.seqs_before);
    assert_same_dump(tpath("a.h5"), tpath("ref.h5"), false);
    env_close(&e);
}

/* A resume must continue the same dump: other options or another input are refused. */
Test(dump, resume_refuses_a_different_run) {
    env e;
    env_open(&e, write_input("in.jsonl", 20));
    volatile sig_atomic_t flag = 0;
    commit_hook hk = {.flag = &flag, .after = 2};
    ll_dump_opts o = base_opts(&e, tpath("a.h5"));
    o.stop = &flag;
    o.on_commit = on_commit;
    o.on_commit_user = &hk;
    ll_dump_result r;
    cr_assert_eq(dump(&e, o, &r), LL_OK, "%s", ll_last_error());
    cr_assert(r.interrupted);
    o = base_opts(&e, tpath("a.h5"));
    o.resume = true;
    o.positions = "last";
    cr_assert_neq(dump(&e, o, &r), LL_OK);
    cr_assert(strstr(ll_last_error(), "positions"), "%s", ll_last_error());
    o.positions = NULL;
    o.dtype = LL_BF16;
    cr_assert_neq(dump(&e, o, &r), LL_OK);
    cr_assert(strstr(ll_last_error(), "dtype"), "%s", ll_last_error());
    o.dtype = LL_F32;
    o.points = "hook_resid_post";
    cr_assert_neq(dump(&e, o, &r), LL_OK);
    cr_assert(strstr(ll_last_error(), "hook_points"), "%s", ll_last_error());
    ll_dump_input_free(e.in);
    cr_assert_eq(ll_dump_input_open(&e.in, write_input("other.jsonl", 21)), LL_OK);
    o = base_opts(&e, tpath("a.h5"));
    o.resume = true;
    cr_assert_neq(dump(&e, o, &r), LL_OK);
    cr_assert(strstr(ll_last_error(), "input_hash"), "%s", ll_last_error());
    env_close(&e);
}

/* Shards 1..3 of an input, merged, read exactly like the unsharded dump. */
Test(dump, shards_merge_into_the_unsharded_dump) {
    env e;
    env_open(&e, write_input("in.jsonl", 25));
    ll_dump_result r;
    ll_dump_opts o = base_opts(&e, tpath("ref.h5"));
    o.batch_tokens = 1; /* one sequence per batch: shard boundaries cannot change the batches */
    cr_assert_eq(dump(&e, o, &r), LL_OK, "%s", ll_last_error());
    mkdir(tpath("parts"), 0755);
    const char *parts[3];
    int64_t covered = 0;
    for (int k = 1; k <= 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "parts/s%d.h5", k);
        parts[3 - k] = tpath(name); /* any order */
        o.out_path = parts[3 - k];
        o.shard_k = k;
        o.shard_n = 3;
        cr_assert_eq(dump(&e, o, &r), LL_OK, "%s", ll_last_error());
        cr_assert_eq(r.shard_lo, covered);
        covered = r.shard_hi;
    }
    cr_assert_eq(covered, 25);
    cr_assert_eq(ll_store_merge(tpath("merged.h5"), parts, 2, false), LL_ERR_ARG, "two of three shards are refused");
    cr_assert(strstr(ll_last_error(), "all 3"), "%s", ll_last_error());
    cr_assert_eq(ll_store_merge(tpath("merged.h5"), parts, 3, false), LL_OK, "%s", ll_last_error());
    assert_same_dump(tpath("merged.h5"), tpath("ref.h5"), false);
    /* the virtual datasets find their shards relative to the merged file, from any folder */
    char cwd[1024];
    cr_assert(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir("/"), 0);
    char abs_m[600], abs_r[600];
    snprintf(abs_m, sizeof abs_m, "%s", tpath("merged.h5"));
    snprintf(abs_r, sizeof abs_r, "%s", tpath("ref.h5"));
    assert_same_dump(abs_m, abs_r, false);
    cr_assert_eq(chdir(cwd), 0);
    env_close(&e);
}

/* ---- bad input ---- */

static void expect_fail(env *e, ll_dump_opts o, const char *needle) {
    ll_dump_result r;
    ll_status st = dump(e, o, &r);
    cr_assert_neq(st, LL_OK, "expected an error mentioning \"%s\"", needle);
    cr_assert(strstr(ll_last_error(), needle), "error \"%s\" should mention \"%s\"", ll_last_error(), needle);
}

Test(dump, bad_input_is_named) {
    env e;
    const char *p = tpath("bad.jsonl");
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"tokens\": [1, 2, 3]}\n{\"text\": \"fine\"}\n\n{\"text\": \"broken\",\n");
    fclose(f);
    env_open(&e, p);
    expect_fail(&e, base_opts(&e, tpath("x.h5")), "bad.jsonl:4");
    cr_assert(access(tpath("x.h5"), F_OK) != 0, "a bad input creates no file");
    ll_dump_input_free(e.in);

    f = fopen(p, "w");
    fprintf(f, "{\"tokens\": [1, 2, 3000]}\n");
    fclose(f);
    cr_assert_eq(ll_dump_input_open(&e.in, p), LL_OK);
    expect_fail(&e, base_opts(&e, tpath("x.h5")), "outside the vocabulary");
    ll_dump_input_free(e.in);

    f = fopen(p, "w");
    fprintf(f, "{\"tokens\": [1");
    for (int i = 0; i < e.m->cfg.max_pos + 5; i++) fprintf(f, ", 7");
    fprintf(f, "]}\n");
    fclose(f);
    cr_assert_eq(ll_dump_input_open(&e.in, p), LL_OK);
    expect_fail(&e, base_opts(&e, tpath("x.h5")), "longer than the model's context");
    ll_dump_input_free(e.in);

    cr_assert_eq(ll_dump_input_open(&e.in, write_input("in.jsonl", 3)), LL_OK);
    ll_dump_opts o = base_opts(&e, tpath("x.h5"));
    o.points = "hook_resid_postt";
    expect_fail(&e, o, "resid_postt");
    o.points = "hook_resid_post";
    o.layers = "0,7";
    expect_fail(&e, o, "out of range");
    o.layers = "1-";
    expect_fail(&e, o, "--layers");
    o.layers = NULL;
    o.out_path = "/nonexistent-dir/x.h5";
    expect_fail(&e, o, "/nonexistent-dir/x.h5");
    o.out_path = tpath("x.h5");
    o.shard_k = 4;
    o.shard_n = 3;
    expect_fail(&e, o, "--shard");
    env_close(&e);
}
