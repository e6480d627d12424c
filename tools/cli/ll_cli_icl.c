/* layerlab icl <experiment>: dispatch to the in-context-learning experiments
 * (docs/icl.md). E1-E3 are in ll_cli_icl_exp.c, E4-E7 in their own files. */
#include <stdio.h>
#include <string.h>

#include "ll_cli.h"

static const char usage[] =
    "usage: layerlab icl <experiment> MODEL --task NAME|FILE [options]\n"
    "\n"
    "experiments:\n"
    "  e1   accuracy vs number of demonstrations (ICL curve)\n"
    "  e2   global task vector: query-position state patched into a zero-shot / dummy prompt, per layer\n"
    "  e3   local task vectors: label-position states patched into a dummy-demonstration prompt, per layer\n"
    "  e4   attention knockout of label positions, per layer range\n"
    "  e5   information flow: attention mass / saliency between inputs, labels and the query\n"
    "  e6   convergence of local vectors to the global vector (cosine per layer)\n"
    "  e7   PCA / demixed PCA of local vectors\n"
    "  sweep-bench   time the batched (layer x position) patch sweep against the naive loop\n"
    "\n"
    "Run 'layerlab icl <experiment> --help' for its options; docs/icl.md explains them.\n";

int ll_cli_icl(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? LL_EXIT_USAGE : 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } exps[] = {{"e1", ll_cli_icl_e1}, {"e2", ll_cli_icl_e2}, {"e3", ll_cli_icl_e3}, {"e4", ll_cli_icl_e4},
                {"e5", ll_cli_icl_e5}, {"e6", ll_cli_icl_e6}, {"e7", ll_cli_icl_e7},
                {"sweep-bench", ll_cli_icl_sweep_bench}};
    for (size_t i = 0; i < sizeof exps / sizeof *exps; i++)
        if (!strcmp(argv[1], exps[i].name)) return exps[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "layerlab: error: icl: unknown experiment '%s'\n\n%s", argv[1], usage);
    return LL_EXIT_USAGE;
}
