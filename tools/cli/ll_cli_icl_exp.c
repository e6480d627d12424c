/* layerlab icl e1 | e2 | e3 (being written). */
#include <stdio.h>

#include "ll_cli.h"

int ll_cli_icl_e1(int argc, char **argv) { (void)argc, (void)argv; fputs("layerlab: icl e1: not built yet\n", stderr); return LL_EXIT_USAGE; }
int ll_cli_icl_e2(int argc, char **argv) { (void)argc, (void)argv; fputs("layerlab: icl e2: not built yet\n", stderr); return LL_EXIT_USAGE; }
int ll_cli_icl_e3(int argc, char **argv) { (void)argc, (void)argv; fputs("layerlab: icl e3: not built yet\n", stderr); return LL_EXIT_USAGE; }
