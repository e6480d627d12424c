/* The layerlab command line: one file per subcommand, sharing these helpers. */
#ifndef LL_CLI_H
#define LL_CLI_H

#include <stdint.h>

#include "core/ll_status.h"
#include "model/ll_forward.h"
#include "tokenizer/ll_tokenizer.h"

/* Exit codes: 0 ok, 1 error, 2 usage. */
#define LL_EXIT_ERR 1
#define LL_EXIT_USAGE 2

int ll_cli_info(int argc, char **argv);
int ll_cli_run(int argc, char **argv);
int ll_cli_tokenize(int argc, char **argv);
int ll_cli_generate(int argc, char **argv);
int ll_cli_dump(int argc, char **argv);
int ll_cli_merge(int argc, char **argv);
int ll_cli_train(int argc, char **argv);
/* layerlab icl <experiment>: tools/cli/ll_cli_icl.c dispatches; argv[0] is the experiment. */
int ll_cli_icl(int argc, char **argv);
int ll_cli_icl_e1(int argc, char **argv);
int ll_cli_icl_e2(int argc, char **argv);
int ll_cli_icl_e3(int argc, char **argv);
/* layerlab icl sweep-bench: batched vs naive patch sweeps (tools/cli/ll_cli_icl_bench.c). */
int ll_cli_icl_sweep_bench(int argc, char **argv);
/* E4-E7 (knockout, information flow, convergence, PCA/dPCA): tools/cli/ll_cli_icl_analysis.c. */
int ll_cli_icl_e4(int argc, char **argv);
int ll_cli_icl_e5(int argc, char **argv);
int ll_cli_icl_e6(int argc, char **argv);
int ll_cli_icl_e7(int argc, char **argv);
int ll_cli_lens(int argc, char **argv);
int ll_cli_tuned_lens(int argc, char **argv);
int ll_cli_lspade(int argc, char **argv);
int ll_cli_exit(int argc, char **argv);

/* Print "layerlab: error: <msg>" and return LL_EXIT_ERR. */
int ll_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ll_cli_usage(const char *usage);
/* Report the library's last error for a failed call. */
int ll_cli_status(ll_status st);
/* "1,403,407" -> ids; error names the offending item. */
ll_status ll_cli_parse_ids(const char *s, int32_t **out, int *n);
/* Common options: --threads N, --device cuda|cpu. Returns 1 when argv[*i] was consumed. */
int ll_cli_common_opt(int argc, char **argv, int *i, int *status);
/* Load a model onto the host (for commands that only inspect it). */
ll_status ll_cli_load(const char *path, ll_model **m);
/* --tokenizer FILE when given, else the tokenizer next to the model (see ll_tokenizer_for_model). */
extern const char *ll_cli_tokenizer_path;
ll_status ll_cli_load_tokenizer(const char *model_path, int vocab_size, ll_tokenizer **t);
/* Load a model and move it to the device the command runs on (--device, default cuda
 * when a GPU is present, else cpu). */
ll_status ll_cli_load_for_run(const char *path, ll_model **m);
/* The backend --device selects; NULL (error set) when cuda was asked for and is not
 * usable. `why` says how it was chosen. */
const ll_backend *ll_cli_backend(char *why, size_t why_len);

/* Prompt sets for lspade / exit (tools/cli/ll_cli_prompts.c): --data FILE [--format F]
 * [--template T] [--k-shot K] [--limit N] [--range A-B], --toy-mcq N or --cloze N
 * [--data-seed S]. */
#include "exit/ll_exit_prompts.h"
#include "mcqa/ll_mcqa.h"
typedef struct {
    const char *cmd; /* command name for warnings */
    const char *data, *format, *tpl;
    int k_shot, limit, toy_n, cloze_n;
    int from, to; /* --range A-B (to = 0: all) */
    uint64_t seed;
} ll_cli_prompt_src;
int ll_cli_prompt_opt(int argc, char **argv, int *i, ll_cli_prompt_src *s, int *status);
/* ll_mcqa_cloze with a warning on stderr, naming `cmd`, when fewer items than asked came back. */
ll_status ll_cli_cloze(const char *cmd, ll_model *m, const ll_tokenizer *t, int n, uint64_t seed, ll_mcqa_set *set);
ll_status ll_cli_prompts_load(const ll_cli_prompt_src *s, const char *model_path, const ll_model *m,
                              ll_exit_prompts *out, char *desc, size_t n);

#endif
