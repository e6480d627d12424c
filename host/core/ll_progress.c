#include "ll_progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double ll_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ll_progress_init(ll_progress *p, const char *label, const char *unit, int64_t total, int force) {
    p->label = label;
    p->unit = unit;
    p->rate_unit = NULL;
    p->rate_count = 0;
    p->total = total;
    p->enabled = force > 0 || (force == 0 && isatty(fileno(stderr)));
    p->t0 = ll_now();
    p->last_draw = 0;
    p->done = 0;
    p->bytes = 0;
}

static void draw(ll_progress *p, double now, const char *end) {
    double dt = now - p->t0 > 1e-9 ? now - p->t0 : 1e-9;
    double rate = (double)(p->rate_unit ? p->rate_count : p->done) / dt, mbs = p->bytes / dt / 1e6;
    double per = (double)p->done / dt;
    const char *ru = p->rate_unit ? p->rate_unit : p->unit;
    char eta[32] = "";
    if (p->total > 0 && p->done > 0 && p->done < p->total) {
        double left = (double)(p->total - p->done) / per;
        snprintf(eta, sizeof eta, " eta %dm%02ds", (int)(left / 60), (int)left % 60);
    }
    if (p->total > 0) {
        int w = 24, fill = (int)((double)w * (double)p->done / (double)p->total);
        if (fill > w) fill = w;
        char bar[32];
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
        bar[w] = 0;
        fprintf(stderr, "\r%s [%s] %lld/%lld %s  %.0f %s/s  %.1f MB/s%s \033[K%s", p->label, bar,
                (long long)p->done, (long long)p->total, p->unit, rate, ru, mbs, eta, end);
    } else {
        fprintf(stderr, "\r%s %lld %s  %.0f %s/s  %.1f MB/s \033[K%s", p->label, (long long)p->done, p->unit,
                rate, ru, mbs, end);
    }
    fflush(stderr);
}

void ll_progress_update(ll_progress *p, int64_t done, int64_t rate_count, double bytes) {
    p->done = done;
    p->rate_count = rate_count;
    p->bytes = bytes;
    if (!p->enabled) return;
    double now = ll_now();
    if (now - p->last_draw < 0.1) return;
    p->last_draw = now;
    draw(p, now, "");
}

void ll_progress_finish(ll_progress *p) {
    if (p->enabled) draw(p, ll_now(), "\n");
}
