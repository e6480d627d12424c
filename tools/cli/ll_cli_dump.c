/* layerlab dump: hidden states of many prompts to an HDF5 activation store. */
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ll_backend.h"
#include "backend/ll_devices.h"
#include "dump/ll_dump.h"
#include "ll_cli.h"

static const char usage[] =
    "usage: layerlab dump MODEL (--input FILE | --prompt TEXT | --tokens IDS) --out FILE.h5\n"
    "         [--points hook_resid_post,...] [--layers all|0,3,5-7] [--positions all|last|LIST]\n"
    "         [--dtype f32|f16|bf16] [--batch-tokens N] [--compress none|gzip|shuffle+gzip]\n"
    "         [--resume | --force] [--shard K/N] [--no-special] [--commit-every SECONDS]\n"
    "         [--quiet] [--device cuda|cpu] [--threads N]\n"
    "\n"
    "  --input FILE     JSONL ({\"text\": ...} or {\"tokens\": [...]}, optional \"id\", optional\n"
    "                   \"positions\": {\"answer\": 17, ...}, other fields kept as metadata) or plain\n"
    "                   text, one prompt per line\n"
    "  --points         hook points (TransformerLens names; default hook_resid_post); also\n"
    "                   hook_resid_pre, hook_attn_z, hook_attn_out, hook_resid_mid, hook_mlp_out,\n"
    "                   ln_final.hook_normalized, logits; blocks.3.hook_x stores one layer\n"
    "  --positions      all (default), last, or a list of token indices (negative counts from\n"
    "                   the end) and names from each record's \"positions\"\n"
    "  --batch-tokens   token budget per forward pass (default 2048)\n"
    "  --resume         continue an interrupted dump of the same input and options\n"
    "  --force          write over an existing file\n"
    "  --shard K/N      dump the K-th (1..N) of N contiguous parts of the input; join the\n"
    "                   parts with 'layerlab merge'\n"
    "  --no-special     do not add the tokenizer's BOS/EOS to text prompts\n"
    "  --commit-every   seconds between commits (default 5): what an interruption can lose\n"
    "  --quiet          no progress line\n"
    "The file layout is described in docs/hdf5-layout.md. SIGINT or SIGTERM stop after the\n"
    "current batch and leave a resumable file (complete = false).\n";

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_flag = 1;
    stop_signal = sig;
}

static char *join_argv(int argc, char **argv) {
    size_t n = 16;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 3;
    char *s = malloc(n);
    if (!s) return NULL;
    strcpy(s, "layerlab");
    for (int i = 0; i < argc; i++) {
        strcat(s, " ");
        bool q = strchr(argv[i], ' ') != NULL;
        if (q) strcat(s, "'");
        strcat(s, argv[i]);
        if (q) strcat(s, "'");
    }
    return s;
}

static void device_text(const ll_model *m, char *buf, size_t n) {
    if (m->be && m->be->name && strcmp(m->be->name, "cpu")) {
        ll_device_info info[1];
        if (ll_cuda_devices(info, 1, NULL, 0) > 0) {
            snprintf(buf, n, "%s: %s", m->be->name, info[0].name);
            return;
        }
    }
    char cpu[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                if (c) {
                    snprintf(cpu, sizeof cpu, "%s", c + 2);
                    cpu[strcspn(cpu, "\n")] = 0;
                }
                break;
            }
        fclose(f);
    }
    snprintf(buf, n, "cpu: %d threads, %s", omp_get_max_threads(), cpu);
}

int ll_cli_dump(int argc, char **argv) {
    const char *path = NULL, *input = NULL, *prompt = NULL, *tokens = NULL;
    ll_dump_opts o = {.dtype = LL_F32};
    for (int i = 1; i < argc; i++) {
        int st;
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (ll_cli_common_opt(argc, argv, &i, &st)) {
            if (st) return st;
        } else if (!strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--input") && has) input = argv[++i];
        else if (!strcmp(a, "--prompt") && has) prompt = argv[++i];
        else if (!strcmp(a, "--tokens") && has) tokens = argv[++i];
        else if (!strcmp(a, "--out") && has) o.out_path = argv[++i];
        else if (!strcmp(a, "--points") && has) o.points = argv[++i];
        else if (!strcmp(a, "--layers") && has) o.layers = argv[++i];
        else if (!strcmp(a, "--positions") && has) o.positions = argv[++i];
        else if (!strcmp(a, "--dtype") && has) {
            const char *v = argv[++i];
            if (!strcmp(v, "f32")) o.dtype = LL_F32;
            else if (!strcmp(v, "f16")) o.dtype = LL_F16;
            else if (!strcmp(v, "bf16")) o.dtype = LL_BF16;
            else return ll_cli_fail("dump: --dtype: expected f32, f16 or bf16, found '%s'", v);
        } else if (!strcmp(a, "--compress") && has) {
            const char *v = argv[++i];
            if (!strcmp(v, "none")) o.compress = LL_COMPRESS_NONE;
            else if (!strcmp(v, "gzip")) o.compress = LL_COMPRESS_GZIP;
            else if (!strcmp(v, "shuffle+gzip")) o.compress = LL_COMPRESS_SHUFFLE_GZIP;
            else return ll_cli_fail("dump: --compress: expected none, gzip or shuffle+gzip, found '%s'", v);
        } else if (!strcmp(a, "--batch-tokens") && has) {
            char *end;
            long long v = strtoll(argv[++i], &end, 10);
            if (*end || v < 1) return ll_cli_fail("dump: --batch-tokens: expected a positive number, found '%s'", argv[i]);
            o.batch_tokens = v;
        } else if (!strcmp(a, "--shard") && has) {
            const char *v = argv[++i];
            if (sscanf(v, "%d/%d", &o.shard_k, &o.shard_n) != 2 || o.shard_n < 1 || o.shard_k < 1 || o.shard_k > o.shard_n)
                return ll_cli_fail("dump: --shard: expected K/N with 1 <= K <= N (like 2/8), found '%s'", v);
        } else if (!strcmp(a, "--resume")) o.resume = true;
        else if (!strcmp(a, "--force")) o.force = true;
        else if (!strcmp(a, "--no-special")) o.no_special = true;
        else if (!strcmp(a, "--quiet")) o.progress = -1;
        else if (!strcmp(a, "--commit-every") && has) {
            char *end;
            o.commit_seconds = strtod(argv[++i], &end);
            if (*end || !(o.commit_seconds > 0))
                return ll_cli_fail("dump: --commit-every: expected a positive number of seconds, found '%s'", argv[i]);
        }
        else if (a[0] == '-') return ll_cli_fail("dump: unknown option %s (or missing value)", a);
        else if (!path) path = a;
        else return ll_cli_usage(usage);
    }
    if (!path || !o.out_path || (!!input + !!prompt + !!tokens) != 1) return ll_cli_usage(usage);
    /* One core for the writer thread: with every core in the forward pass, OpenMP's
     * spinning workers and the writer take turns on the same cores, and each of the many
     * short parallel regions waits out a descheduled worker (measured: a 2-core machine
     * ran a small model 16x slower). --threads N overrides. */
    bool threads_given = false;
    for (int i = 1; i < argc; i++) threads_given |= !strcmp(argv[i], "--threads");
    int ncores = omp_get_num_procs();
    if (!threads_given && ncores > 1) ll_set_threads(ncores - 1);
    if (o.resume && o.force) return ll_cli_fail("dump: --resume and --force contradict each other");

    ll_dump_input *in = NULL;
    ll_status s;
    int32_t *ids = NULL;
    int n_ids = 0;
    if (input) s = ll_dump_input_open(&in, input);
    else if (prompt) s = ll_dump_input_single(&in, prompt, NULL, 0);
    else {
        s = ll_cli_parse_ids(tokens, &ids, &n_ids);
        if (!s) s = ll_dump_input_single(&in, NULL, ids, n_ids);
        free(ids);
    }
    if (s) return ll_cli_status(s);
    ll_model *m = NULL;
    if ((s = ll_cli_load_for_run(path, &m))) {
        ll_dump_input_free(in);
        return ll_cli_status(s);
    }
    /* A tokenizer only matters for text; token-id input runs without one. */
    ll_tokenizer *tok = NULL;
    if ((s = ll_cli_load_tokenizer(path, m->cfg.vocab_size, &tok))) {
        if (prompt) {
            ll_model_free(m);
            ll_dump_input_free(in);
            return ll_cli_status(s);
        }
        ll_clear_error();
        tok = NULL;
    }
    char dev[512];
    device_text(m, dev, sizeof dev);
    char *cmd = join_argv(argc, argv);
    o.model_path = path;
    o.command_line = cmd ? cmd : "";
    o.device = dev;
    o.input = in;
    o.stop = &stop_flag;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C kills at once; the file stays resumable */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    ll_dump_result res;
    s = ll_dump_run(m, tok, &o, &res);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    int rc = 0;
    if (s) {
        rc = ll_cli_status(s);
        fprintf(stderr, "layerlab: %s keeps what was committed (complete = false); rerun with --resume to continue\n",
                o.out_path);
    } else {
        double mb = res.bytes / 1e6, t = res.seconds > 0 ? res.seconds : 1e-9;
        fprintf(stderr, "dump: %s: %lld sequences (records %lld-%lld of %lld%s), %lld rows, %.1f MB of activations in %.2f s (%.1f MB/s)%s\n",
                o.out_path, (long long)res.seqs, (long long)res.shard_lo, (long long)res.shard_hi - 1,
                (long long)res.n_input, res.seqs_before ? ", resumed" : "", (long long)res.rows, mb, res.seconds, mb / t,
                res.interrupted ? " -- interrupted" : "");
        if (res.interrupted) {
            fprintf(stderr, "layerlab: interrupted: %s holds the first %lld sequences (complete = false); rerun with --resume to continue\n",
                    o.out_path, (long long)res.seqs);
            rc = 128 + (int)stop_signal;
        }
    }
    free(cmd);
    ll_tokenizer_free(tok);
    ll_model_free(m);
    ll_dump_input_free(in);
    return rc;
}
