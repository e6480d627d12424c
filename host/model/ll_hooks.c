/* The hook registry: records (point, layers, positions -> sink) and patches
 * (point, layer, rows, op, source), indexed by site so the forward pass pays one
 * lookup per site when nothing is registered there. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "../core/ll_dtype.h"
#include "ll_hooks_internal.h"

/* A record whose rows are on their way to the host (asynchronous backends): the copy
 * is queued at the hook site, the sink is called after the forward pass synchronised. */
typedef struct {
    int rec;             /* index into rec[] */
    ll_hook_point point;
    int layer, n_rows, width;
    int64_t *rows;       /* owned */
    void *data;          /* inside a pinned arena chunk: fp32, or bf16 for a bf16 record */
    bool bf16;
} ll_pending;

/* Page-locked host memory for pending rows, handed out front to back and reset after each
 * forward; chunks are kept for the next forward (allocating pinned memory is slow). */
typedef struct {
    float *p;
    size_t cap, used; /* floats */
} ll_arena_chunk;

/* A patch's device-side state, for backends with patch_rows: its source vectors uploaded
 * once (first use) and kept, and the per-row squared change of its last application,
 * read back after the forward pass synchronised (ll_hooks_end_forward). */
typedef struct {
    float *src;   /* REPLACE / ADD: [n_rows][width] in backend memory */
    double *sq;   /* [n_rows] */
    bool pending; /* sq holds an application not yet folded into the statistics */
} ll_patch_dev;

#define LL_PENDING_MAX_FLOATS ((size_t)64 << 20) /* 256 MiB in flight, then deliver early */

struct ll_hooks {
    int n_layers;
    uint8_t *active; /* [LL_HOOK_COUNT][n_layers + 1] */
    ll_record *rec;
    int n_rec;
    ll_patch *pat;
    int n_pat;
    ll_patch_stat *stat;
    ll_patch_dev *pdev;        /* [n_pat], used with backends that patch on the device */
    const ll_backend *dev_be;  /* the backend pdev's buffers belong to */
    /* asynchronous recording */
    const ll_backend *arena_be;
    ll_arena_chunk *chunks;
    int n_chunks;
    ll_pending *pend;
    int n_pend, cap_pend;
    size_t pend_floats;
};

static uint8_t *ll_site(const ll_hooks *h, ll_hook_point p, int layer) {
    return &h->active[(size_t)p * (size_t)(h->n_layers + 1) + (size_t)layer];
}

ll_status ll_hooks_new(ll_hooks **out, int n_layers) {
    ll_hooks *h = ll_calloc(1, sizeof *h, "hooks");
    if (!h) return LL_ERR_NOMEM;
    h->n_layers = n_layers;
    h->active = ll_calloc((size_t)LL_HOOK_COUNT * (size_t)(n_layers + 1), 1, "hook table");
    if (!h->active) {
        free(h);
        return LL_ERR_NOMEM;
    }
    *out = h;
    return LL_OK;
}

void ll_hooks_clear(ll_hooks *h) {
    for (int i = 0; i < h->n_rec; i++) free((void *)h->rec[i].rows);
    for (int i = 0; i < h->n_pat; i++) {
        free((void *)h->pat[i].rows);
        free((void *)h->pat[i].src);
        free((void *)h->pat[i].src_rows);
        if (h->pdev && h->pdev[i].src) h->dev_be->free(h->pdev[i].src);
        if (h->pdev && h->pdev[i].sq) h->dev_be->free(h->pdev[i].sq);
    }
    free(h->rec);
    free(h->pat);
    free(h->stat);
    free(h->pdev);
    h->rec = NULL;
    h->pat = NULL;
    h->stat = NULL;
    h->pdev = NULL;
    h->dev_be = NULL;
    h->n_rec = h->n_pat = 0;
    memset(h->active, 0, (size_t)LL_HOOK_COUNT * (size_t)(h->n_layers + 1));
}

static void ll_pending_drop(ll_hooks *h) {
    for (int i = 0; i < h->n_pend; i++) free(h->pend[i].rows);
    h->n_pend = 0;
    h->pend_floats = 0;
    for (int i = 0; i < h->n_chunks; i++) h->chunks[i].used = 0;
}

void ll_hooks_free(ll_hooks *h) {
    if (!h) return;
    ll_pending_drop(h);
    free(h->pend);
    for (int i = 0; i < h->n_chunks; i++) h->arena_be->host_free(h->chunks[i].p);
    free(h->chunks);
    ll_hooks_clear(h);
    free(h->active);
    free(h);
}

static int ll_is_final_point(ll_hook_point p) { return p == LL_HOOK_FINAL_NORM || p == LL_HOOK_LOGITS; }

static ll_status ll_check_site(const ll_hooks *h, ll_hook_point p, int lo, int hi) {
    if ((unsigned)p >= LL_HOOK_COUNT) return ll_err(LL_ERR_ARG, "hook: unknown hook point %d", (int)p);
    if (ll_is_final_point(p)) {
        if (lo != h->n_layers || hi != h->n_layers)
            return ll_err(LL_ERR_ARG, "hook %s: layer must be %d (after the last block), found %d..%d",
                          ll_hook_name(p), h->n_layers, lo, hi);
        return LL_OK;
    }
    if (lo < 0 || hi >= h->n_layers || lo > hi)
        return ll_err(LL_ERR_ARG, "hook %s: layers %d..%d out of range (model has layers 0..%d)", ll_hook_name(p), lo,
                      hi, h->n_layers - 1);
    return LL_OK;
}

static void *ll_dup(const void *src, size_t n, size_t size) {
    if (!src || n == 0) return NULL;
    void *p = malloc(n * size);
    if (p) memcpy(p, src, n * size);
    return p;
}

ll_status ll_hooks_add_record(ll_hooks *h, const ll_record *r) {
    LL_TRY(ll_check_site(h, r->point, r->layer_lo, r->layer_hi));
    if (!r->fn) return ll_err(LL_ERR_ARG, "hook %s: record without a sink", ll_hook_name(r->point));
    if (r->bf16 && r->point == LL_HOOK_ATTN_PATTERN)
        return ll_err(LL_ERR_ARG, "hook attn.hook_pattern: attention patterns are recorded in fp32 only");
    if (r->pos == LL_POS_LIST && (r->n_rows <= 0 || !r->rows))
        return ll_err(LL_ERR_ARG, "hook %s: position list is empty", ll_hook_name(r->point));
    ll_record *nr = realloc(h->rec, (size_t)(h->n_rec + 1) * sizeof *nr);
    if (!nr) return ll_err(LL_ERR_NOMEM, "hooks: cannot grow record table");
    h->rec = nr;
    ll_record c = *r;
    c.rows = r->pos == LL_POS_LIST ? ll_dup(r->rows, (size_t)r->n_rows, sizeof(int64_t)) : NULL;
    if (r->pos == LL_POS_LIST && !c.rows) return ll_err(LL_ERR_NOMEM, "hooks: cannot copy position list");
    h->rec[h->n_rec++] = c;
    for (int l = r->layer_lo; l <= r->layer_hi; l++) *ll_site(h, r->point, l) = 1;
    return LL_OK;
}

ll_status ll_hooks_add_patch(ll_hooks *h, const ll_patch *p) {
    LL_TRY(ll_check_site(h, p->point, p->layer, p->layer));
    if (p->point == LL_HOOK_ATTN_PATTERN)
        return ll_err(LL_ERR_ARG, "hook attn.hook_pattern can be recorded, not patched");
    if (p->n_rows <= 0 || !p->rows) return ll_err(LL_ERR_ARG, "patch at %s: no target rows", ll_hook_name(p->point));
    if ((p->op == LL_PATCH_REPLACE || p->op == LL_PATCH_ADD) && !p->src)
        return ll_err(LL_ERR_ARG, "patch at %s: replace/add needs source vectors", ll_hook_name(p->point));
    if ((p->op == LL_PATCH_REPLACE || p->op == LL_PATCH_ADD) && p->width <= 0)
        return ll_err(LL_ERR_ARG, "patch at %s: source width must be positive", ll_hook_name(p->point));
    if (p->op == LL_PATCH_COPY_ROW && !p->src_rows)
        return ll_err(LL_ERR_ARG, "patch at %s: copy-from-row needs source rows", ll_hook_name(p->point));
    if (p->head >= 0 && p->point != LL_HOOK_ATTN_Z)
        return ll_err(LL_ERR_ARG, "patch at %s: a head index is only meaningful for hook_attn_z",
                      ll_hook_name(p->point));
    ll_patch *np = realloc(h->pat, (size_t)(h->n_pat + 1) * sizeof *np);
    if (!np) return ll_err(LL_ERR_NOMEM, "hooks: cannot grow patch table");
    h->pat = np;
    ll_patch_stat *ns = realloc(h->stat, (size_t)(h->n_pat + 1) * sizeof *ns);
    if (!ns) return ll_err(LL_ERR_NOMEM, "hooks: cannot grow patch table");
    h->stat = ns;
    ll_patch_dev *nd = realloc(h->pdev, (size_t)(h->n_pat + 1) * sizeof *nd);
    if (!nd) return ll_err(LL_ERR_NOMEM, "hooks: cannot grow patch table");
    h->pdev = nd;
    h->pdev[h->n_pat] = (ll_patch_dev){0};
    ll_patch c = *p;
    c.rows = ll_dup(p->rows, (size_t)p->n_rows, sizeof(int64_t));
    c.src = NULL;
    c.src_rows = NULL;
    h->pat[h->n_pat] = c;
    h->stat[h->n_pat] = (ll_patch_stat){0};
    h->n_pat++;
    ll_patch *d = &h->pat[h->n_pat - 1];
    if (!d->rows) goto nomem;
    if (p->op == LL_PATCH_REPLACE || p->op == LL_PATCH_ADD) {
        d->src = ll_dup(p->src, (size_t)p->n_rows * (size_t)p->width, sizeof(float));
        if (!d->src) goto nomem;
    }
    if (p->op == LL_PATCH_COPY_ROW) {
        d->src_rows = ll_dup(p->src_rows, (size_t)p->n_rows, sizeof(int64_t));
        if (!d->src_rows) goto nomem;
    }
    *ll_site(h, p->point, p->layer) = 1;
    return LL_OK;
nomem:
    return ll_err(LL_ERR_NOMEM, "hooks: cannot copy patch rows");
}

int ll_hooks_n_patches(const ll_hooks *h) { return h->n_pat; }

ll_patch_stat ll_hooks_patch_stat(const ll_hooks *h, int i) {
    if (i < 0 || i >= h->n_pat) return (ll_patch_stat){0};
    return h->stat[i];
}

int ll_hooks_active(const ll_hooks *h, ll_hook_point p, int layer) { return h && *ll_site(h, p, layer); }

void ll_hooks_begin_forward(ll_hooks *h) {
    if (!h) return;
    for (int i = 0; i < h->n_pat; i++) {
        h->stat[i] = (ll_patch_stat){0};
        h->pdev[i].pending = false;
    }
}

/* ---- applying hooks at a site ---------------------------------------------------- */

static ll_status ll_check_rows(const int64_t *rows, int n, int64_t T, const char *what, ll_hook_point p) {
    for (int i = 0; i < n; i++)
        if (rows[i] < 0 || rows[i] >= T)
            return ll_err(LL_ERR_ARG, "%s at %s: batch row %lld out of range (batch has %lld rows)", what,
                          ll_hook_name(p), (long long)rows[i], (long long)T);
    return LL_OK;
}

/* Fold a device application's per-row squared changes into the patch's statistic: the
 * rows are summed in order and the norm taken, as the host path does. The copy is
 * synchronous; a failure is the backend's to report at its next sync. */
static ll_status ll_patch_fold(ll_hooks *h, int pi) {
    ll_patch_dev *d = &h->pdev[pi];
    size_t n = (size_t)h->pat[pi].n_rows;
    d->pending = false;
    double *sq = malloc(n * sizeof *sq);
    if (!sq) return ll_err(LL_ERR_NOMEM, "patch at %s: no memory for its statistics", ll_hook_name(h->pat[pi].point));
    h->dev_be->to_host(sq, d->sq, n * sizeof *sq);
    double l2 = 0;
    for (size_t r = 0; r < n; r++) l2 += sq[r];
    h->stat[pi].l2_change += sqrt(l2);
    free(sq);
    return LL_OK;
}

/* A patch on a backend with patch_rows: nothing crosses to the host during the forward
 * pass. The source vectors go up once, at the first use, and stay (freed with the
 * patch); the patched rows are built in a temporary buffer and scattered back. The
 * statistic is read after the forward pass synchronised (ll_hooks_end_forward), so a
 * patch costs no wait. Rows were checked by the caller. */
static ll_status ll_apply_patch_device(ll_hooks *h, int pi, const ll_backend *be, float *buf, int width, int off,
                                       int w) {
    const ll_patch *p = &h->pat[pi];
    ll_patch_dev *d = &h->pdev[pi];
    if (h->dev_be && h->dev_be != be)
        return ll_err(LL_ERR_ARG, "patch at %s: the hooks were used on %s and now on %s; make new hooks per backend",
                      ll_hook_name(p->point), h->dev_be->name, be->name);
    h->dev_be = be;
    size_t n = (size_t)p->n_rows;
    if (d->pending) LL_TRY(ll_patch_fold(h, pi)); /* a second application in one pass: keep the first */
    if (!d->sq && !(d->sq = be->alloc(n * sizeof(double))))
        return ll_err_prefix(LL_ERR_NOMEM, "patch at %s: statistics for %zu rows: ", ll_hook_name(p->point), n);
    bool has_src = p->op == LL_PATCH_REPLACE || p->op == LL_PATCH_ADD;
    if (has_src && !d->src) {
        size_t bytes = n * (size_t)w * sizeof(float);
        if (!(d->src = be->alloc(bytes)))
            return ll_err_prefix(LL_ERR_NOMEM, "patch at %s: source vectors (%zu bytes): ", ll_hook_name(p->point),
                                 bytes);
        be->from_host(d->src, p->src, bytes);
    }
    float *out = be->alloc(n * (size_t)width * sizeof(float));
    if (!out)
        return ll_err_prefix(LL_ERR_NOMEM, "patch at %s: %zu rows of %d floats: ", ll_hook_name(p->point), n, width);
    be->patch_rows(out, d->sq, buf, width, p->rows, p->src_rows, d->src, (int)n, off, w, (int)p->op);
    be->scatter_rows(buf, out, p->rows, (int)n, width);
    be->free(out); /* stream-ordered on the GPU: released after the scatter */
    d->pending = true;
    h->stat[pi].n_applied++;
    return LL_OK;
}

static ll_status ll_apply_patch(ll_hooks *h, int pi, const ll_backend *be, float *buf, int width,
                                const ll_batch *b, int n_heads) {
    ll_patch *p = &h->pat[pi];
    int64_t T = ll_batch_rows(b);
    LL_TRY(ll_check_rows(p->rows, p->n_rows, T, "patch", p->point));
    if (p->op == LL_PATCH_COPY_ROW) LL_TRY(ll_check_rows(p->src_rows, p->n_rows, T, "patch source", p->point));
    int off = 0, w = width;
    if (p->head >= 0) {
        if (p->head >= n_heads)
            return ll_err(LL_ERR_ARG, "patch at %s: head %d out of range (%d heads)", ll_hook_name(p->point), p->head,
                          n_heads);
        w = width / n_heads;
        off = p->head * w;
    }
    if ((p->op == LL_PATCH_REPLACE || p->op == LL_PATCH_ADD) && p->width != w)
        return ll_err(LL_ERR_ARG, "patch at %s layer %d: source rows have %d floats, the site has %d",
                      ll_hook_name(p->point), p->layer, p->width, w);
    if (be->patch_rows) return ll_apply_patch_device(h, pi, be, buf, width, off, w);
    size_t n = (size_t)p->n_rows;
    float *cur = malloc(n * (size_t)width * sizeof(float));
    float *src = p->op == LL_PATCH_COPY_ROW ? malloc(n * (size_t)width * sizeof(float)) : NULL;
    if (!cur || (p->op == LL_PATCH_COPY_ROW && !src)) {
        free(cur);
        free(src);
        return ll_err(LL_ERR_NOMEM, "patch at %s: no memory for %zu rows", ll_hook_name(p->point), n);
    }
    /* Rows are moved through host memory: patches touch few rows, and this keeps one
     * implementation for every backend. */
    float *tmp = be->alloc(n * (size_t)width * sizeof(float));
    if (!tmp) {
        free(cur);
        free(src);
        return LL_ERR_NOMEM;
    }
    be->gather_rows(tmp, buf, p->rows, (int)n, width);
    be->to_host(cur, tmp, n * (size_t)width * sizeof(float));
    if (src) {
        be->gather_rows(tmp, buf, p->src_rows, (int)n, width);
        be->to_host(src, tmp, n * (size_t)width * sizeof(float));
    }
    double l2 = 0;
    for (size_t r = 0; r < n; r++) {
        float *row = cur + r * (size_t)width + off;
        for (int i = 0; i < w; i++) {
            float old = row[i], nv;
            switch (p->op) {
            case LL_PATCH_REPLACE: nv = p->src[r * (size_t)w + i]; break;
            case LL_PATCH_ADD: nv = old + p->src[r * (size_t)w + i]; break;
            case LL_PATCH_ZERO: nv = 0.0f; break;
            default: nv = src[r * (size_t)width + off + i]; break;
            }
            row[i] = nv;
            l2 += ((double)nv - old) * ((double)nv - old);
        }
    }
    be->from_host(tmp, cur, n * (size_t)width * sizeof(float));
    be->scatter_rows(buf, tmp, p->rows, (int)n, width);
    be->free(tmp);
    free(cur);
    free(src);
    h->stat[pi].l2_change += sqrt(l2);
    h->stat[pi].n_applied++;
    return LL_OK;
}

/* n floats of pinned host memory from the arena; NULL with the error set. */
static float *ll_arena_get(ll_hooks *h, const ll_backend *be, size_t n) {
    if (h->arena_be && h->arena_be != be) return ll_err(LL_ERR_ARG, "hooks: used with two backends"), NULL;
    h->arena_be = be;
    for (int i = 0; i < h->n_chunks; i++)
        if (h->chunks[i].cap - h->chunks[i].used >= n) {
            float *p = h->chunks[i].p + h->chunks[i].used;
            h->chunks[i].used += n;
            return p;
        }
    size_t cap = n > ((size_t)1 << 20) ? n : ((size_t)1 << 20); /* at least 4 MiB a chunk */
    ll_arena_chunk *nc = realloc(h->chunks, (size_t)(h->n_chunks + 1) * sizeof *nc);
    if (!nc) return ll_err(LL_ERR_NOMEM, "hooks: cannot grow the recording arena"), NULL;
    h->chunks = nc;
    float *p = be->host_alloc(cap * sizeof(float));
    if (!p) return NULL;
    h->chunks[h->n_chunks++] = (ll_arena_chunk){.p = p, .cap = cap, .used = n};
    return p;
}

/* Call the sinks of every pending record, in the order the records were made. The rows
 * must have arrived (the caller synchronised the backend). */
static ll_status ll_pending_deliver(ll_hooks *h) {
    ll_status st = LL_OK;
    for (int i = 0; i < h->n_pend && !st; i++) {
        const ll_pending *q = &h->pend[i];
        const ll_record *r = &h->rec[q->rec];
        ll_hook_rows hr = {.point = q->point, .layer = q->layer, .n_rows = q->n_rows, .rows = q->rows,
                           .width = q->width, .data = q->bf16 ? NULL : (const float *)q->data,
                           .data_bf16 = q->bf16 ? (const uint16_t *)q->data : NULL, .seq = -1};
        st = r->fn(r->user, &hr);
    }
    ll_pending_drop(h);
    return st;
}

/* The statistics of the patches applied on the device in this pass. After a failed pass
 * they are dropped: the rows may never have been written. */
static ll_status ll_patch_stats_end(ll_hooks *h, ll_status forward_status) {
    ll_status st = LL_OK;
    bool read = false;
    for (int i = 0; i < h->n_pat; i++) {
        if (!h->pdev[i].pending) continue;
        if (forward_status) {
            h->pdev[i].pending = false;
            continue;
        }
        ll_status fst = ll_patch_fold(h, i);
        if (!st) st = fst;
        read = true;
    }
    /* the copies report their failures at a sync */
    if (read) {
        ll_status sst = h->dev_be->sync();
        if (!st) st = sst;
    }
    return st;
}

ll_status ll_hooks_end_forward(ll_hooks *h, const ll_backend *be, ll_status forward_status) {
    if (!h) return LL_OK;
    ll_status st = ll_patch_stats_end(h, forward_status);
    if (h->n_pend == 0) return st;
    if (forward_status) { /* the rows may never have arrived: drop them, report nothing new */
        ll_pending_drop(h);
        return LL_OK;
    }
    if (st) { /* the pass's device work failed after all: same as above */
        ll_pending_drop(h);
        return st;
    }
    (void)be;
    return ll_pending_deliver(h);
}

/* Asynchronous variant of ll_run_record: gather on the device, queue the copy into pinned
 * memory, and leave the sink call for ll_hooks_end_forward. `rows` is owned from here on. */
static ll_status ll_queue_record(ll_hooks *h, int ri, const ll_backend *be, ll_hook_point p, int layer,
                                 const float *buf, int width, int n, int64_t *rows) {
    size_t nf = (size_t)n * (size_t)width;
    bool bf16 = h->rec[ri].bf16;
    size_t slots = bf16 ? (nf + 1) / 2 : nf; /* arena floats the rows take */
    if (h->pend_floats + slots > LL_PENDING_MAX_FLOATS && h->n_pend > 0) {
        /* Bound the pinned memory in flight: wait for what is queued and deliver it now. */
        ll_status st = be->sync();
        if (st) {
            free(rows);
            return st;
        }
        if ((st = ll_pending_deliver(h))) {
            free(rows);
            return st;
        }
    }
    if (h->n_pend == h->cap_pend) {
        int cap = h->cap_pend ? 2 * h->cap_pend : 64;
        ll_pending *np = realloc(h->pend, (size_t)cap * sizeof *np);
        if (!np) {
            free(rows);
            return ll_err(LL_ERR_NOMEM, "record at %s: cannot grow the pending list", ll_hook_name(p));
        }
        h->pend = np;
        h->cap_pend = cap;
    }
    float *host = ll_arena_get(h, be, slots ? slots : 1);
    float *tmp = host ? be->alloc(nf ? nf * sizeof(float) : 4) : NULL;
    uint16_t *tmpb = tmp && bf16 ? be->alloc(nf ? nf * 2 : 4) : NULL;
    if (!host || !tmp || (bf16 && !tmpb)) {
        if (tmp) be->free(tmp);
        free(rows);
        return ll_err_prefix(LL_ERR_NOMEM, "record at %s (%d rows of %d floats): ", ll_hook_name(p), n, width);
    }
    be->gather_rows(tmp, buf, rows, n, width);
    if (bf16) {
        /* rounded on the device: half the bytes cross to the host */
        be->to_bf16(tmpb, tmp, nf);
        be->to_host_async(host, tmpb, nf * 2);
        be->free(tmpb);
    } else {
        be->to_host_async(host, tmp, nf * sizeof(float));
    }
    be->free(tmp); /* stream-ordered: released after the copy */
    h->pend[h->n_pend++] = (ll_pending){.rec = ri, .point = p, .layer = layer, .n_rows = n, .width = width,
                                        .rows = rows, .data = host, .bf16 = bf16};
    h->pend_floats += slots;
    return LL_OK;
}

static ll_status ll_run_record(const ll_record *r, const ll_backend *be, ll_hook_point p, int layer,
                               const float *buf, int width, const ll_batch *b) {
    int64_t T = ll_batch_rows(b);
    int n;
    int64_t *rows;
    if (r->pos == LL_POS_LIST) {
        LL_TRY(ll_check_rows(r->rows, r->n_rows, T, "record", p));
        n = r->n_rows;
        rows = (int64_t *)r->rows;
    } else {
        n = r->pos == LL_POS_ALL ? (int)T : b->n_seq;
        rows = malloc((size_t)(n ? n : 1) * sizeof *rows);
        if (!rows) return ll_err(LL_ERR_NOMEM, "record at %s: no memory", ll_hook_name(p));
        for (int i = 0; i < n; i++) rows[i] = r->pos == LL_POS_ALL ? i : b->seq_off[i + 1] - 1;
    }
    size_t bytes = (size_t)n * (size_t)width * sizeof(float);
    float *host = malloc(bytes ? bytes : 1);
    float *tmp = be->alloc(bytes ? bytes : 4);
    ll_status st = LL_OK;
    if (!host || !tmp) {
        st = ll_err(LL_ERR_NOMEM, "record at %s: no memory for %d rows", ll_hook_name(p), n);
    } else {
        be->gather_rows(tmp, buf, rows, n, width);
        be->to_host(host, tmp, bytes);
        ll_hook_rows hr = {.point = p, .layer = layer, .n_rows = n, .rows = rows, .width = width, .data = host,
                           .seq = -1};
        uint16_t *hb = NULL;
        if (r->bf16) {
            /* Rounded here, with the same rounding as the device's (kernels/ll_kmath.h,
             * tested bit for bit against this converter). */
            hb = malloc(bytes ? bytes / 2 : 2);
            if (!hb) st = ll_err(LL_ERR_NOMEM, "record at %s: no memory for %d bf16 rows", ll_hook_name(p), n);
            for (size_t i = 0; hb && i < (size_t)n * (size_t)width; i++) hb[i] = ll_f32_to_bf16(host[i]);
            hr.data = NULL;
            hr.data_bf16 = hb;
        }
        if (!st) st = r->fn(r->user, &hr);
        free(hb);
    }
    free(host);
    if (tmp) be->free(tmp);
    if (rows != r->rows) free(rows);
    return st;
}

ll_status ll_hooks_run(ll_hooks *h, const ll_backend *be, ll_hook_point p, int layer, float *buf, int width,
                       const ll_batch *b, int n_heads) {
    for (int i = 0; i < h->n_pat; i++)
        if (h->pat[i].point == p && h->pat[i].layer == layer) LL_TRY(ll_apply_patch(h, i, be, buf, width, b, n_heads));
    for (int i = 0; i < h->n_rec; i++) {
        const ll_record *r = &h->rec[i];
        if (r->point != p || layer < r->layer_lo || layer > r->layer_hi) continue;
        int64_t T = ll_batch_rows(b);
        int n = r->pos == LL_POS_LIST ? r->n_rows : r->pos == LL_POS_ALL ? (int)T : b->n_seq;
        if (be->to_host_async && (size_t)n * (size_t)width > LL_PENDING_MAX_FLOATS) {
            /* Too large to hold in pinned memory (all logits of a long batch, say): deliver
             * what is pending, in order, then take this one the synchronous way. */
            if (h->n_pend > 0) {
                LL_TRY(be->sync());
                LL_TRY(ll_pending_deliver(h));
            }
            LL_TRY(ll_run_record(r, be, p, layer, buf, width, b));
            continue;
        }
        if (!be->to_host_async) {
            LL_TRY(ll_run_record(r, be, p, layer, buf, width, b));
            continue;
        }
        if (r->pos == LL_POS_LIST) LL_TRY(ll_check_rows(r->rows, r->n_rows, T, "record", p));
        int64_t *rows = malloc((size_t)(n ? n : 1) * sizeof *rows);
        if (!rows) return ll_err(LL_ERR_NOMEM, "record at %s: no memory", ll_hook_name(p));
        for (int k = 0; k < n; k++)
            rows[k] = r->pos == LL_POS_LIST ? r->rows[k] : r->pos == LL_POS_ALL ? k : b->seq_off[k + 1] - 1;
        LL_TRY(ll_queue_record(h, i, be, p, layer, buf, width, n, rows));
    }
    return LL_OK;
}

ll_status ll_hooks_emit_pattern(ll_hooks *h, int layer, const ll_batch *b, float *const *pattern, int n_heads,
                                const int *n_past) {
    for (int i = 0; i < h->n_rec; i++) {
        const ll_record *r = &h->rec[i];
        if (r->point != LL_HOOK_ATTN_PATTERN || layer < r->layer_lo || layer > r->layer_hi) continue;
        for (int s = 0; s < b->n_seq; s++) {
            int n_new = (int)(b->seq_off[s + 1] - b->seq_off[s]);
            int nk = n_new + (n_past ? n_past[s] : 0);
            int64_t *rows = malloc((size_t)(n_new ? n_new : 1) * sizeof *rows);
            if (!rows) return ll_err(LL_ERR_NOMEM, "attention pattern record: no memory");
            for (int j = 0; j < n_new; j++) rows[j] = b->seq_off[s] + j;
            ll_hook_rows hr = {.point = LL_HOOK_ATTN_PATTERN, .layer = layer, .n_rows = n_new, .rows = rows,
                               .width = nk, .data = pattern[s], .seq = s, .n_heads = n_heads, .n_keys = nk};
            ll_status st = r->fn(r->user, &hr);
            free(rows);
            LL_TRY(st);
        }
    }
    return LL_OK;
}

/* ---- names -------------------------------------------------------------------------- */

static const char *const ll_hook_names[LL_HOOK_COUNT] = {
    [LL_HOOK_RESID_PRE] = "hook_resid_pre",   [LL_HOOK_ATTN_Z] = "hook_attn_z",
    [LL_HOOK_ATTN_OUT] = "hook_attn_out",     [LL_HOOK_RESID_MID] = "hook_resid_mid",
    [LL_HOOK_MLP_OUT] = "hook_mlp_out",       [LL_HOOK_RESID_POST] = "hook_resid_post",
    [LL_HOOK_FINAL_NORM] = "ln_final.hook_normalized", [LL_HOOK_LOGITS] = "logits",
    [LL_HOOK_ATTN_PATTERN] = "attn.hook_pattern",
};

const char *ll_hook_name(ll_hook_point p) { return (unsigned)p < LL_HOOK_COUNT ? ll_hook_names[p] : "?"; }

ll_status ll_hook_parse(const char *name, ll_hook_point *point, int *layer) {
    *layer = -1;
    const char *s = name;
    if (strncmp(s, "blocks.", 7) == 0) {
        char *end;
        long l = strtol(s + 7, &end, 10);
        if (end == s + 7 || *end != '.' || l < 0 || l > 100000)
            return ll_err(LL_ERR_ARG, "hook point \"%s\": expected blocks.<layer>.<hook>", name);
        *layer = (int)l;
        s = end + 1;
    }
    static const struct {
        const char *alias;
        ll_hook_point p;
    } aliases[] = {
        {"hook_resid_pre", LL_HOOK_RESID_PRE},   {"resid_pre", LL_HOOK_RESID_PRE},
        {"hook_attn_z", LL_HOOK_ATTN_Z},         {"attn.hook_z", LL_HOOK_ATTN_Z},
        {"attn_z", LL_HOOK_ATTN_Z},              {"hook_attn_out", LL_HOOK_ATTN_OUT},
        {"attn_out", LL_HOOK_ATTN_OUT},          {"hook_resid_mid", LL_HOOK_RESID_MID},
        {"resid_mid", LL_HOOK_RESID_MID},        {"hook_mlp_out", LL_HOOK_MLP_OUT},
        {"mlp_out", LL_HOOK_MLP_OUT},            {"hook_resid_post", LL_HOOK_RESID_POST},
        {"resid_post", LL_HOOK_RESID_POST},      {"ln_final.hook_normalized", LL_HOOK_FINAL_NORM},
        {"final_norm", LL_HOOK_FINAL_NORM},      {"logits", LL_HOOK_LOGITS},
        {"attn.hook_pattern", LL_HOOK_ATTN_PATTERN}, {"hook_pattern", LL_HOOK_ATTN_PATTERN},
        {"attn_pattern", LL_HOOK_ATTN_PATTERN},
    };
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
        if (strcmp(s, aliases[i].alias) == 0) {
            *point = aliases[i].p;
            if (*layer >= 0 && ll_is_final_point(*point))
                return ll_err(LL_ERR_ARG, "hook point \"%s\": %s has no block index", name, ll_hook_name(*point));
            return LL_OK;
        }
    return ll_err(LL_ERR_ARG,
                  "unknown hook point \"%s\" (known: hook_resid_pre, hook_attn_z, hook_attn_out, hook_resid_mid, "
                  "hook_mlp_out, hook_resid_post, ln_final.hook_normalized, logits, attn.hook_pattern)",
                  name);
}
