/* Weak placeholders for the ICL experiments E4-E7 so that `layerlab icl` links before
 * they are written; the real definitions (strong symbols) replace these, and this file
 * is deleted when they land. */
#include <stdio.h>

#include "ll_cli.h"

static int ll_not_built(const char *e) {
    fprintf(stderr, "layerlab: icl %s: not built in this version\n", e);
    return LL_EXIT_USAGE;
}

__attribute__((weak)) int ll_cli_icl_e4(int argc, char **argv) { (void)argc, (void)argv; return ll_not_built("e4"); }
__attribute__((weak)) int ll_cli_icl_e5(int argc, char **argv) { (void)argc, (void)argv; return ll_not_built("e5"); }
__attribute__((weak)) int ll_cli_icl_e6(int argc, char **argv) { (void)argc, (void)argv; return ll_not_built("e6"); }
__attribute__((weak)) int ll_cli_icl_e7(int argc, char **argv) { (void)argc, (void)argv; return ll_not_built("e7"); }
