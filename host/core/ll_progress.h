/* A one-line progress display for long work: done/total, a rate of some finer unit
 * (rows/s), MB/s and the time left. Drawn on stderr only when stderr is a terminal, at most 10 times
 * a second; silent otherwise, so logs and pipes stay clean. */
#ifndef LL_PROGRESS_H
#define LL_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *label; /* "dump" */
    const char *unit;  /* "seqs": what done/total count */
    const char *rate_unit; /* "rows": the unit of the rate shown (NULL: unit) */
    int64_t total;     /* 0 when unknown */
    bool enabled;
    double t0, last_draw;
    int64_t done, rate_count;
    double bytes;
} ll_progress;

/* force: 1 draw even when stderr is not a terminal, 0 only on a terminal, -1 never. */
void ll_progress_init(ll_progress *p, const char *label, const char *unit, int64_t total, int force);
/* Report `done` units, `rate_count` rate units and `bytes` written so far. */
void ll_progress_update(ll_progress *p, int64_t done, int64_t rate_count, double bytes);
/* Final line (newline), when enabled. */
void ll_progress_finish(ll_progress *p);
/* Monotonic seconds. */
double ll_now(void);

#endif
