/* ICL tasks: lists of (input, label) items from files or generators, with the set of
 * distinct labels (classes) an answer is chosen from.
 *
 * Task specs (ll_icl_task_load):
 *   PATH.json            a JSON list of {"input": .., "output": ..} objects (Todd et al.'s
 *                        function-vector files) or one object {input: output, ...}
 *                        (Hendel et al.'s task-vector files)
 *   NAME                 a bundled data set under the data root: a function-vector file
 *                        (abstractive/NAME.json, extractive/NAME.json of icl-function-vectors),
 *                        a task-vector file (knowledge|linguistic|translation/NAME.json of
 *                        icl-task-vectors), or sst2 | trec | agnews | cb | rte
 *                        (icl-calibrate-before-use; label words below)
 *   gen:RULE[:ARG]       a generated categorization task (two classes, label words drawn
 *                        from a pool of ordinary words by the seed, so they carry no prior):
 *                          length[:K]        word shorter than K letters (default 6) -> class 0, else 1
 *                          first-letter[:S]  first letter in the set S (default a-m) -> class 1
 *                          contains[:C]      contains the letter C (default e) -> class 1
 *                          parity            number 0-99 even -> class 0, odd -> class 1
 *                          threshold[:K]     number 0-99 below K (default 50) -> class 0, else 1
 *                        Inputs are synthetic lowercase words (3-8 letters) drawn by the seed,
 *                        or the toy model's own words (opts.words = "toy").
 *   toy:TABLE            the toy model's fact table (color | animal | food | tool):
 *                        entity -> value (data/models/toy-llama).
 * Classic label words: sst2 negative/positive; trec abbreviation, entity, description,
 * person, location, number; agnews World, Sports, Business, Technology; cb true / false /
 * neither; rte True / False. CB and RTE inputs are "PREMISE\nquestion: HYPOTHESIS true,
 * false or neither?" (CB) / "... True or False?" (RTE), to be used with the nli template. */
#ifndef LL_ICL_TASK_H
#define LL_ICL_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/ll_status.h"

typedef struct {
    char *name;     /* "country_capital", "gen:length:6", "sst2" */
    char *source;   /* the file read, or the generator's description */
    char *rule;     /* generated tasks: the rule in words ("word shorter than 6 letters -> river, else apple") */
    int n;          /* items */
    char **input;   /* [n] */
    char **output;  /* [n] */
    int *cls;       /* [n] class index of each item's output */
    int n_classes;  /* distinct outputs */
    char **classes; /* [n_classes]: fixed class order for classification tasks, else order of first appearance */
    bool classification; /* a small fixed label set (classic data sets, generators) */
    const char *template_hint; /* the bundled template that suits the data ("wang" for sst2) */
} ll_icl_task;

typedef struct {
    const char *data_root; /* directory holding icl-function-vectors/ etc.; NULL: $LAYERLAB_SHARED/assets or ../shared/assets */
    uint64_t seed;         /* generators: items and label words (default 0 is a valid seed) */
    int n_gen;             /* generators: number of items (0: 512) */
    const char *words;     /* generators: "synthetic" (NULL) or "toy" */
    const char *labels;    /* generators: "w0,w1" to fix the two label words instead of drawing them */
    const char *split;     /* classic data sets: train (default) | dev | val | test (agnews: test only, its default) */
    int max_items;         /* keep at most this many items (0: all), the first ones of the file */
} ll_icl_task_opts;

ll_status ll_icl_task_load(const char *spec, const ll_icl_task_opts *opts, ll_icl_task **out);
void ll_icl_task_free(ll_icl_task *t);

/* Parse a task from JSON text (file name only labels messages). */
ll_status ll_icl_task_parse_json(const char *json, size_t len, const char *file, ll_icl_task **out);

/* An episode: k distinct demonstration items and a query item distinct from them, drawn
 * uniformly by the 64-bit state *rng (splitmix64). demo: [k]. Needs k + 1 <= t->n. */
ll_status ll_icl_task_sample(const ll_icl_task *t, uint64_t *rng, int k, int *demo, int *query);

/* splitmix64 step, shared by the ICL code for reproducible draws. */
uint64_t ll_icl_rand(uint64_t *state);

/* The default data root (see data_root above); NULL when none exists. */
const char *ll_icl_default_data_root(void);

#endif
