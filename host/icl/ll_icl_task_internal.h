/* Shared by the task loaders (ll_icl_task.c) and the generators (ll_icl_gen.c). */
#ifndef LL_ICL_TASK_INTERNAL_H
#define LL_ICL_TASK_INTERNAL_H

#include <stddef.h>

#include "ll_icl_task.h"

ll_status ll_icl_task_new(const char *name, const char *source, ll_icl_task **out);
ll_status ll_icl_task_add(ll_icl_task *t, const char *in, size_t in_len, const char *out, size_t out_len);
/* Class index of every item: fixed label words (classification; an item with another
 * label is an error naming it) or, with n_fixed = 0, distinct outputs in order of
 * first appearance. */
ll_status ll_icl_task_set_classes(ll_icl_task *t, const char *const *fixed, int n_fixed);
ll_status ll_icl_read_file(const char *path, char **out, size_t *len);
/* "length:6", "parity", ... (the part after "gen:"). */
ll_status ll_icl_task_generate(const char *rule, const ll_icl_task_opts *o, ll_icl_task **out);
/* "color" | "animal" | "food" | "tool" (after "toy:"). */
ll_status ll_icl_task_toy(const char *table, ll_icl_task **out);

#endif
