/* Prompts for a dump: a JSONL file ({"text": ...} or {"tokens": [...]}, with an
 * optional "id", an optional "positions" object of named token positions, and any
 * other fields kept as metadata), a plain text file with one prompt per line, or a
 * single prompt given on the command line. */
#ifndef LL_DUMP_INPUT_H
#define LL_DUMP_INPUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/ll_status.h"

typedef struct {
    int64_t index;    /* record number in the input, from 0 */
    int64_t line;     /* 1-based line in the file (0 for a command-line prompt) */
    char *id;         /* "id" as text, or "<index>" when the input has none */
    char *text;       /* the prompt, or NULL when tokens are given */
    int32_t *tokens;  /* given token ids, or NULL */
    int n_tokens;
    char *meta;       /* compact JSON object of the remaining fields ("{}" when none) */
    char *positions;  /* compact JSON of the "positions" object, or NULL */
} ll_dump_record;

void ll_dump_record_clear(ll_dump_record *r);

typedef struct ll_dump_input ll_dump_input;

/* JSONL when the file's first non-blank byte is '{', else one prompt per line
 * (blank lines skipped). */
ll_status ll_dump_input_open(ll_dump_input **out, const char *path);
/* A single record: text (tokens NULL) or token ids. */
ll_status ll_dump_input_single(ll_dump_input **out, const char *text, const int32_t *tokens, int n_tokens);
/* Next record; *more = false at the end. A malformed line is an error naming the
 * file and line number. */
ll_status ll_dump_input_next(ll_dump_input *in, ll_dump_record *rec, bool *more);
ll_status ll_dump_input_rewind(ll_dump_input *in);
/* Content hash of everything read so far (the whole input after one full pass). */
uint64_t ll_dump_input_hash(const ll_dump_input *in);
const char *ll_dump_input_name(const ll_dump_input *in);
bool ll_dump_input_is_jsonl(const ll_dump_input *in);
void ll_dump_input_free(ll_dump_input *in);

/* Token position of a named position ("answer") or index ("-1") in a record of n tokens:
 * fills idx with up to max positions, returns how many, or -1 with an error set. */
int ll_dump_record_positions(const ll_dump_record *r, const char *item, int n, int64_t *idx, int max);

#endif
