/* layerlab: entry point and subcommand dispatch. */
#include <stdio.h>
#include <string.h>

#include "ll_cli.h"
#include "core/ll_version.h"

static const char usage[] =
    "usage: layerlab <command> [options]\n"
    "\n"
    "commands:\n"
    "  info MODEL                  architecture, sizes, hook points and devices\n"
    "  run MODEL --tokens IDS      per position: input id and argmax next-token id\n"
    "  tokenize MODEL TEXT         token ids of TEXT (--pieces: pieces and byte spans)\n"
    "  generate MODEL --prompt T   continue a prompt (greedy or sampled)\n"
    "  dump MODEL --input F --out X.h5   hidden states of many prompts to HDF5\n"
    "  merge OUT.h5 SHARDS...      join the shards of a --shard K/N dump\n"
    "  train --out DIR             train the built-in toy Llama (train eval MODEL: its accuracies)\n"
    "  icl e1|e2|...|e7 MODEL      in-context-learning experiments (task vectors, label words)\n"
    "  lens MODEL --data F         per-layer accuracy: logit lens, tuned lens, SPADE (docs/spade.md)\n"
    "  tuned-lens train MODEL      fit a tuned lens (one affine translator per layer)\n"
    "  lspade train MODEL ...      fit L-SPADE maps (linear SPADE per layer) by ridge regression\n"
    "  exit MODEL --lspade F ...   SPADE-EXIT: early exit with L-SPADE confidence, tau sweeps\n"
    "\n"
    "MODEL is a Hugging Face directory (config.json + safetensors), a .gguf file or a\n"
    "llama2.c .bin checkpoint. Common options: --threads N (default: all cores),\n"
    "--tokenizer FILE (needed for llama2.c checkpoints, e.g. tok512.bin),\n"
    "--device cuda|cpu (default: cuda when a GPU is present, else cpu).\n"
    "Run 'layerlab <command> --help' for a command's options.\n";

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? LL_EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("layerlab %s\n", LL_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "info")) return ll_cli_info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "run")) return ll_cli_run(argc - 1, argv + 1);
    if (!strcmp(argv[1], "tokenize")) return ll_cli_tokenize(argc - 1, argv + 1);
    if (!strcmp(argv[1], "generate")) return ll_cli_generate(argc - 1, argv + 1);
    if (!strcmp(argv[1], "dump")) return ll_cli_dump(argc - 1, argv + 1);
    if (!strcmp(argv[1], "merge")) return ll_cli_merge(argc - 1, argv + 1);
    if (!strcmp(argv[1], "train")) return ll_cli_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "icl")) return ll_cli_icl(argc - 1, argv + 1);
    if (!strcmp(argv[1], "lens")) return ll_cli_lens(argc - 1, argv + 1);
    if (!strcmp(argv[1], "tuned-lens")) return ll_cli_tuned_lens(argc - 1, argv + 1);
    if (!strcmp(argv[1], "lspade")) return ll_cli_lspade(argc - 1, argv + 1);
    if (!strcmp(argv[1], "exit")) return ll_cli_exit(argc - 1, argv + 1);
    fprintf(stderr, "layerlab: error: unknown command '%s'\n\n%s", argv[1], usage);
    return LL_EXIT_USAGE;
}
