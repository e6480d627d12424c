/* layerlab merge OUT.h5 SHARDS...: one dump from the shards of a --shard K/N run. */
#include <stdio.h>
#include <string.h>

#include "ll_cli.h"
#include "store/ll_store.h"

static const char usage[] =
    "usage: layerlab merge OUT.h5 SHARD.h5... [--force]\n"
    "joins complete shard dumps of one input (dumped with --shard K/N, all N of them) into\n"
    "OUT.h5: activations are virtual datasets over the shard files (keep them next to it),\n"
    "sequence and row tables are copied; it reads like an unsharded dump.\n";

int ll_cli_merge(int argc, char **argv) {
    const char *out = NULL;
    const char *shards[4096];
    int n = 0;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--force")) force = true;
        else if (argv[i][0] == '-') return ll_cli_fail("merge: unknown option %s", argv[i]);
        else if (!out) out = argv[i];
        else if (n < 4096) shards[n++] = argv[i];
        else return ll_cli_fail("merge: at most 4096 shards");
    }
    if (!out || n < 1) return ll_cli_usage(usage);
    ll_status s = ll_store_merge(out, shards, n, force);
    if (s) return ll_cli_status(s);
    fprintf(stderr, "merge: %s joins %d shard%s\n", out, n, n == 1 ? "" : "s");
    return 0;
}
