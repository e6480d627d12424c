/* The dump driver: check the whole input first (so a bad line 90,000 fails before
 * hours of work), then walk this shard's records in token-budgeted batches; each
 * batch is one forward pass whose hook records land directly in a batch buffer of
 * the store, which its writer thread writes while the next forward runs. */
#include "ll_dump.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/ll_hash.h"
#include "../core/ll_progress.h"
#include "../io/ll_mmap.h"

#define MAX_POS_ITEMS 64

typedef struct {
    ll_hook_point hp;
    int32_t *layers;
    int n_layers;
    int width;
    char name[64];
    int slot_of[1025]; /* model layer (0..n_layers) -> stored slot or -1 */
} dump_point;

typedef struct {
    ll_model *m;
    const ll_tokenizer *tok;
    const ll_dump_opts *o;
    dump_point pts[LL_STORE_MAX_POINTS];
    int n_points;
    bool pos_all, pos_last;
    char *pos_items[MAX_POS_ITEMS];
    int n_pos_items;
    int stop_layer;
    /* per batch */
    ll_store_batch *b;
    int64_t *rowmap; /* batch row -> stored row of this batch, or -1 */
    size_t el;
    double bytes; /* activation bytes handed to the writer */
    int64_t rows;  /* rows handed to the writer */
} dump_ctx;

typedef struct {
    dump_ctx *d;
    int pi;
} sink_arg;

static const char *point_definition(ll_hook_point p) {
    switch (p) {
    case LL_HOOK_RESID_PRE: return "residual stream entering block l; Hugging Face hidden_states[l]";
    case LL_HOOK_ATTN_Z: return "per-head attention mix before the output projection, [n_heads * head_dim], head-major";
    case LL_HOOK_ATTN_OUT: return "attention block output after o_proj (and its bias), added to the residual";
    case LL_HOOK_RESID_MID: return "resid_pre + attn_out of block l";
    case LL_HOOK_MLP_OUT: return "MLP block output, added to the residual";
    case LL_HOOK_RESID_POST:
        return "residual leaving block l, before any final norm; Hugging Face hidden_states[l+1] for l < L-1, but "
               "hidden_states[L] is after the final norm (ln_final.hook_normalized)";
    case LL_HOOK_FINAL_NORM: return "after the final norm (layer index L); Hugging Face hidden_states[L] / last_hidden_state";
    case LL_HOOK_LOGITS: return "unembedding output (layer index L), [vocab]";
    default: return "";
    }
}

ll_status ll_parse_layers(const char *spec, int n_layers, int32_t **out, int *n) {
    bool *on = calloc((size_t)n_layers + 1, 1);
    if (!on) return ll_err(LL_ERR_NOMEM, "--layers");
    ll_status st = LL_OK;
    if (!spec || !strcmp(spec, "all")) {
        for (int l = 0; l < n_layers; l++) on[l] = true;
    } else {
        const char *p = spec;
        while (*p && !st) {
            char *end;
            long a = strtol(p, &end, 10), b = a;
            if (end == p) {
                st = ll_err(LL_ERR_ARG, "--layers \"%s\": expected numbers like 0,3,5-7 or \"all\", found \"%s\"", spec, p);
                break;
            }
            if (*end == '-') {
                const char *q = end + 1;
                b = strtol(q, &end, 10);
                if (end == q) {
                    st = ll_err(LL_ERR_ARG, "--layers \"%s\": a range needs an end (like 5-7)", spec);
                    break;
                }
            }
            if (a < 0 || b >= n_layers || a > b) {
                st = ll_err(LL_ERR_ARG, "--layers \"%s\": %ld-%ld is out of range: the model has %d blocks (0-%d)",
                            spec, a, b, n_layers, n_layers - 1);
                break;
            }
            for (long l = a; l <= b; l++) on[l] = true;
            if (*end == ',') end++;
            else if (*end) {
                st = ll_err(LL_ERR_ARG, "--layers \"%s\": unexpected \"%s\"", spec, end);
                break;
            }
            p = end;
        }
    }
    int cnt = 0;
    for (int l = 0; l < n_layers; l++) cnt += on[l];
    if (!st && cnt == 0) st = ll_err(LL_ERR_ARG, "--layers \"%s\" selects no layer", spec ? spec : "");
    int32_t *v = st ? NULL : malloc((size_t)cnt * sizeof *v);
    if (!st && !v) st = ll_err(LL_ERR_NOMEM, "--layers");
    if (!st) {
        int k = 0;
        for (int l = 0; l < n_layers; l++)
            if (on[l]) v[k++] = l;
        *out = v;
        *n = cnt;
    }
    free(on);
    return st;
}

static ll_status parse_points(dump_ctx *d, const char *spec, const char *layer_spec) {
    const ll_config *c = &d->m->cfg;
    int L = c->n_layers;
    if (L > 1024) return ll_err(LL_ERR_UNSUPPORTED, "dump: models of more than 1024 blocks");
    char *s = strdup(spec ? spec : "hook_resid_post");
    if (!s) return ll_err(LL_ERR_NOMEM, "--points");
    ll_status st = LL_OK;
    d->stop_layer = 0;
    for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok && !st; tok = strtok_r(NULL, ",", &save)) {
        ll_hook_point hp;
        int layer;
        if ((st = ll_hook_parse(tok, &hp, &layer))) {
            st = ll_err_prefix(st, "--points: ");
            break;
        }
        if (hp == LL_HOOK_ATTN_PATTERN) {
            st = ll_err(LL_ERR_UNSUPPORTED, "--points: %s is ragged per sequence ([heads][rows][keys]) and cannot be "
                                            "dumped as rows; record it through the library's hooks", tok);
            break;
        }
        if (d->n_points == LL_STORE_MAX_POINTS) {
            st = ll_err(LL_ERR_ARG, "--points: at most %d points", LL_STORE_MAX_POINTS);
            break;
        }
        dump_point *p = &d->pts[d->n_points];
        snprintf(p->name, sizeof p->name, "%s", ll_hook_name(hp));
        for (int i = 0; i < d->n_points; i++)
            if (d->pts[i].hp == hp) st = ll_err(LL_ERR_ARG, "--points: %s is named twice", p->name);
        if (st) break;
        p->hp = hp;
        bool final = hp == LL_HOOK_FINAL_NORM || hp == LL_HOOK_LOGITS;
        if (final) {
            p->layers = malloc(sizeof(int32_t));
            if (!p->layers) st = ll_err(LL_ERR_NOMEM, "--points");
            else {
                p->layers[0] = L;
                p->n_layers = 1;
            }
        } else if (layer >= 0) {
            if (layer >= L) {
                st = ll_err(LL_ERR_ARG, "--points %s: layer %d is out of range: the model has %d blocks (0-%d)", tok,
                            layer, L, L - 1);
                break;
            }
            p->layers = malloc(sizeof(int32_t));
            if (!p->layers) st = ll_err(LL_ERR_NOMEM, "--points");
            else {
                p->layers[0] = layer;
                p->n_layers = 1;
            }
        } else {
            st = ll_parse_layers(layer_spec, L, &p->layers, &p->n_layers);
        }
        if (st) break;
        p->width = hp == LL_HOOK_ATTN_Z ? c->n_heads * c->head_dim : hp == LL_HOOK_LOGITS ? c->vocab_size : c->d_model;
        for (int l = 0; l <= L; l++) p->slot_of[l] = -1;
        for (int i = 0; i < p->n_layers; i++) p->slot_of[p->layers[i]] = i;
        int need = final ? L : p->layers[p->n_layers - 1] + 1;
        if (need > d->stop_layer) d->stop_layer = need;
        d->n_points++;
    }
    free(s);
    return st;
}

static ll_status parse_positions(dump_ctx *d, const char *spec) {
    if (!spec || !strcmp(spec, "all")) {
        d->pos_all = true;
        return LL_OK;
    }
    if (!strcmp(spec, "last")) {
        d->pos_last = true;
        return LL_OK;
    }
    char *s = strdup(spec);
    if (!s) return ll_err(LL_ERR_NOMEM, "--positions");
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (d->n_pos_items == MAX_POS_ITEMS) {
            free(s);
            return ll_err(LL_ERR_ARG, "--positions: at most %d items", MAX_POS_ITEMS);
        }
        if (!strcmp(t, "all") || !strcmp(t, "last")) {
            free(s);
            return ll_err(LL_ERR_ARG, "--positions: \"%s\" stands alone, not inside a list", t);
        }
        d->pos_items[d->n_pos_items++] = strdup(t);
    }
    free(s);
    return d->n_pos_items ? LL_OK : ll_err(LL_ERR_ARG, "--positions \"%s\" names nothing", spec);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The stored token indices of one record (sorted, distinct); returns the count or -1. */
static int record_rows(const dump_ctx *d, const ll_dump_record *r, int n, int64_t *out, int max) {
    if (d->pos_all) {
        for (int i = 0; i < n && i < max; i++) out[i] = i;
        return n;
    }
    if (d->pos_last) {
        out[0] = n - 1;
        return 1;
    }
    int cnt = 0;
    for (int i = 0; i < d->n_pos_items; i++) {
        int k = ll_dump_record_positions(r, d->pos_items[i], n, out + cnt, max - cnt);
        if (k < 0) return -1;
        cnt += k;
        if (cnt > max) {
            ll_err(LL_ERR_ARG, "record %lld: more than %d positions", (long long)r->index, max);
            return -1;
        }
    }
    qsort(out, (size_t)cnt, sizeof *out, cmp_i64);
    int u = 0;
    for (int i = 0; i < cnt; i++)
        if (u == 0 || out[u - 1] != out[i]) out[u++] = out[i];
    return u;
}

/* Tokens of a record (tokenized, or checked when given). */
static ll_status record_tokens(const dump_ctx *d, const ll_dump_record *r, int32_t **ids, int *n) {
    const char *src = ll_dump_input_name(d->o->input);
    int V = d->m->cfg.vocab_size;
    if (r->tokens) {
        for (int i = 0; i < r->n_tokens; i++)
            if (r->tokens[i] >= V)
                return ll_err(LL_ERR_ARG, "%s: record %lld (line %lld): token %d is %d, outside the vocabulary of %d",
                              src, (long long)r->index, (long long)r->line, i, r->tokens[i], V);
        *ids = malloc((size_t)(r->n_tokens > 0 ? r->n_tokens : 1) * sizeof(int32_t));
        if (!*ids) return ll_err(LL_ERR_NOMEM, "tokens");
        memcpy(*ids, r->tokens, (size_t)r->n_tokens * sizeof(int32_t));
        *n = r->n_tokens;
    } else {
        if (!d->tok)
            return ll_err(LL_ERR_MISSING, "%s: record %lld (line %lld) is text, but no tokenizer was found for the model "
                                          "(give --tokenizer FILE, or token ids)",
                          src, (long long)r->index, (long long)r->line);
        ll_encoding enc = {0};
        unsigned flags = LL_TOK_PARSE_SPECIAL | (d->o->no_special ? 0 : LL_TOK_ADD_SPECIAL);
        ll_status st = ll_tokenizer_encode(d->tok, r->text, strlen(r->text), flags, &enc);
        if (st) return ll_err_prefix(st, "%s: record %lld (line %lld): ", src, (long long)r->index, (long long)r->line);
        *ids = malloc((enc.n > 0 ? enc.n : 1) * sizeof(int32_t));
        if (*ids) memcpy(*ids, enc.ids, enc.n * sizeof(int32_t));
        *n = (int)enc.n;
        ll_encoding_free(&enc);
        if (!*ids) return ll_err(LL_ERR_NOMEM, "tokens");
    }
    if (*n == 0) {
        free(*ids);
        return ll_err(LL_ERR_ARG, "%s: record %lld (line %lld) has no tokens", src, (long long)r->index, (long long)r->line);
    }
    int maxp = d->m->cfg.max_pos;
    if (maxp > 0 && *n > maxp) {
        free(*ids);
        return ll_err(LL_ERR_ARG, "%s: record %lld (line %lld) has %d tokens, longer than the model's context of %d",
                      src, (long long)r->index, (long long)r->line, *n, maxp);
    }
    return LL_OK;
}

/* ---- the hook sink: rows of one point at one layer into the batch buffer ---- */
static ll_status sink(void *user, const ll_hook_rows *h) {
    sink_arg *a = user;
    dump_ctx *d = a->d;
    const dump_point *p = &d->pts[a->pi];
    int slot = p->slot_of[h->layer];
    if (slot < 0) return LL_OK;
    ll_store_batch *b = d->b;
    size_t w = (size_t)p->width;
    unsigned char *base = (unsigned char *)b->acts[a->pi] + (size_t)slot * (size_t)b->n_rows * w * d->el;
    for (int i = 0; i < h->n_rows; i++) {
        int64_t dst = d->rowmap[h->rows[i]];
        if (dst < 0) continue;
        unsigned char *o = base + (size_t)dst * w * d->el;
        if (d->o->dtype == LL_BF16) {
            if (h->data_bf16) memcpy(o, h->data_bf16 + (size_t)i * w, w * 2);
            else
                for (size_t k = 0; k < w; k++) ((uint16_t *)o)[k] = ll_f32_to_bf16(h->data[(size_t)i * w + k]);
        } else if (d->o->dtype == LL_F16) {
            const float *src = h->data + (size_t)i * w;
            for (size_t k = 0; k < w; k++) ((uint16_t *)o)[k] = ll_f32_to_f16(src[k]);
        } else {
            memcpy(o, h->data + (size_t)i * w, w * 4);
        }
    }
    return LL_OK;
}

/* ---- one batch ---- */
typedef struct {
    ll_dump_record *rec;
    int32_t **ids;
    int *len;
    int64_t **rows;
    int *n_rows;
    int n, cap;
    int64_t tokens;
} pending;

static void pending_clear(pending *p) {
    for (int i = 0; i < p->n; i++) {
        ll_dump_record_clear(&p->rec[i]);
        free(p->ids[i]);
        free(p->rows[i]);
    }
    p->n = 0;
    p->tokens = 0;
}

static void pending_free(pending *p) {
    pending_clear(p);
    free(p->rec);
    free(p->ids);
    free(p->len);
    free(p->rows);
    free(p->n_rows);
}

static ll_status run_batch(dump_ctx *d, ll_store_writer *w, pending *pb) {
    int ns = pb->n;
    int64_t T = pb->tokens, R = 0;
    size_t idb = 0, mb = 0;
    for (int s = 0; s < ns; s++) {
        R += pb->n_rows[s];
        idb += strlen(pb->rec[s].id);
        mb += strlen(pb->rec[s].meta);
    }
    ll_store_batch *b;
    LL_TRY(ll_store_batch_get(w, &b, ns, T, R, idb + 1, mb + 1));
    int64_t *seq_off = malloc((size_t)(ns + 1) * sizeof *seq_off);
    int64_t *rowmap = malloc((size_t)T * sizeof *rowmap);
    int64_t *sel = malloc((size_t)(R > 0 ? R : 1) * sizeof *sel);
    sink_arg args[LL_STORE_MAX_POINTS];
    ll_hooks *h = NULL;
    ll_status st = (!seq_off || !rowmap || !sel) ? ll_err(LL_ERR_NOMEM, "dump: batch of %lld tokens", (long long)T) : LL_OK;
    if (!st) {
        b->n_seq = ns;
        b->n_tokens = T;
        b->n_rows = R;
        int64_t t = 0, r = 0;
        char *ip = b->ids, *mp = b->meta;
        seq_off[0] = 0;
        for (int s = 0; s < ns; s++) {
            b->seq_index[s] = pb->rec[s].index;
            b->seq_len[s] = pb->len[s];
            b->seq_rows[s] = pb->n_rows[s];
            size_t il = strlen(pb->rec[s].id), ml = strlen(pb->rec[s].meta);
            memcpy(ip, pb->rec[s].id, il);
            memcpy(mp, pb->rec[s].meta, ml);
            ip += il;
            mp += ml;
            b->id_len[s] = (int64_t)il;
            b->meta_len[s] = (int64_t)ml;
            for (int k = 0; k < pb->len[s]; k++) {
                b->tokens[t + k] = pb->ids[s][k];
                b->positions[t + k] = k;
                rowmap[t + k] = -1;
            }
            for (int k = 0; k < pb->n_rows[s]; k++) {
                b->row_pos[r] = (int32_t)pb->rows[s][k];
                rowmap[t + pb->rows[s][k]] = r;
                sel[r] = t + pb->rows[s][k];
                r++;
            }
            t += pb->len[s];
            seq_off[s + 1] = t;
        }
        d->b = b;
        d->rowmap = rowmap;
        st = ll_hooks_new(&h, d->m->cfg.n_layers);
    }
    for (int i = 0; !st && i < d->n_points; i++) {
        dump_point *p = &d->pts[i];
        args[i] = (sink_arg){d, i};
        /* One record per run of consecutive layers keeps the hook table small. */
        for (int k = 0; !st && k < p->n_layers;) {
            int e = k;
            while (e + 1 < p->n_layers && p->layers[e + 1] == p->layers[e] + 1) e++;
            ll_record rec = {.point = p->hp, .layer_lo = p->layers[k], .layer_hi = p->layers[e],
                             .pos = d->pos_all ? LL_POS_ALL : LL_POS_LIST, .rows = sel, .n_rows = (int)R,
                             .fn = sink, .user = &args[i], .bf16 = d->o->dtype == LL_BF16};
            st = ll_hooks_add_record(h, &rec);
            k = e + 1;
        }
    }
    if (!st) {
        ll_batch lb = {.n_seq = ns, .seq_off = seq_off, .tokens = b->tokens, .pos = b->positions};
        ll_forward_opts fo = {.stop_layer = d->stop_layer, .hooks = h, .logits = LL_LOGITS_NONE};
        st = ll_forward(d->m, &lb, &fo);
    }
    ll_hooks_free(h);
    free(seq_off);
    free(rowmap);
    free(sel);
    if (!st) d->rows += R;
    for (int i = 0; !st && i < d->n_points; i++)
        d->bytes += (double)R * d->pts[i].n_layers * d->pts[i].width * (double)d->el;
    if (!st) st = ll_store_batch_submit(w, b);
    else ll_store_batch_submit(w, b); /* hand the buffer back either way; the caller stops */
    return st;
}

/* ---- provenance ---- */
static char *config_text(const ll_model *m) {
    if (m->cfg.format == LL_FMT_HF) {
        char p[4096];
        snprintf(p, sizeof p, "%s/config.json", m->path);
        char *txt;
        size_t n;
        if (!ll_read_file(p, &txt, &n)) return txt;
        ll_clear_error();
    }
    const ll_config *c = &m->cfg;
    char *s = malloc(1024);
    if (s)
        snprintf(s, 1024,
                 "{\"layerlab_summary\": true, \"architecture\": \"%s\", \"num_hidden_layers\": %d, \"hidden_size\": %d, "
                 "\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"head_dim\": %d, \"intermediate_size\": %d, "
                 "\"vocab_size\": %d, \"max_position_embeddings\": %d, \"rope_theta\": %g}",
                 c->arch_name, c->n_layers, c->d_model, c->n_heads, c->n_kv_heads, c->head_dim, c->d_ff, c->vocab_size,
                 c->max_pos, (double)c->rope_theta);
    return s;
}

static uint64_t weights_hash(const ll_model *m) {
    uint64_t h = ll_hash_mix(0, m->ts.n_files);
    for (size_t i = 0; i < m->ts.n_files; i++)
        h = ll_hash_mix(h, ll_hash_bytes(m->ts.files[i].data, m->ts.files[i].size, 7));
    return h;
}

static uint64_t tokenizer_hash(const ll_tokenizer *t) {
    if (!t) return 0;
    int32_t n = ll_tokenizer_n_vocab(t);
    uint64_t h = ll_hash_mix(0, (uint64_t)n);
    for (int32_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *p = ll_tokenizer_piece(t, i, &len);
        h = ll_hash_mix(h, p ? ll_hash_bytes(p, len, 11) : 0);
    }
    h = ll_hash_mix(h, (uint64_t)(int64_t)ll_tokenizer_bos(t));
    h = ll_hash_mix(h, (uint64_t)(int64_t)ll_tokenizer_eos(t));
    return ll_hash_mix(h, ll_tokenizer_adds_bos(t));
}

ll_status ll_dump_run(ll_model *m, const ll_tokenizer *tok, const ll_dump_opts *o, ll_dump_result *res) {
    memset(res, 0, sizeof *res);
    double t0 = ll_now();
    dump_ctx d = {.m = m, .tok = tok, .o = o};
    d.el = ll_dtype_size(o->dtype);
    ll_status st = LL_OK;
    if (!o->out_path || !o->input) return ll_err(LL_ERR_ARG, "dump: an output path and an input are needed");
    if (o->shard_n < 0 || (o->shard_n > 0 && (o->shard_k < 1 || o->shard_k > o->shard_n)))
        return ll_err(LL_ERR_ARG, "--shard %d/%d: K counts from 1 to N", o->shard_k, o->shard_n);
    if (o->resume && o->force) return ll_err(LL_ERR_ARG, "--resume and --force contradict each other");
    int64_t budget = o->batch_tokens > 0 ? o->batch_tokens : 2048;
    st = parse_points(&d, o->points, o->layers);
    if (!st) st = parse_positions(&d, o->positions);

    /* Pass 1: every record parses, tokenizes, fits the context and has its positions. */
    ll_dump_record r = {0};
    int64_t *rows = malloc(sizeof(int64_t) * 1);
    int64_t n_input = 0;
    if (!st) st = ll_dump_input_rewind(o->input);
    for (bool more = true; !st;) {
        st = ll_dump_input_next(o->input, &r, &more);
        if (st || !more) break;
        int32_t *ids;
        int n;
        st = record_tokens(&d, &r, &ids, &n);
        if (st) break;
        int64_t *nr = realloc(rows, (size_t)n * sizeof *nr + 64 * sizeof *nr);
        if (!nr) st = ll_err(LL_ERR_NOMEM, "positions");
        else {
            rows = nr;
            if (record_rows(&d, &r, n, rows, n + 64) < 0)
                st = ll_err_prefix(LL_ERR_ARG, "%s: --positions %s: ", ll_dump_input_name(o->input), o->positions);
        }
        free(ids);
        n_input++;
    }
    ll_dump_record_clear(&r);
    res->n_input = n_input;
    if (!st && n_input == 0) st = ll_err(LL_ERR_ARG, "%s: no prompts in the input", ll_dump_input_name(o->input));
    int64_t lo = 0, hi = n_input;
    if (o->shard_n > 0) {
        lo = n_input * (o->shard_k - 1) / o->shard_n;
        hi = n_input * o->shard_k / o->shard_n;
    }
    res->shard_lo = lo;
    res->shard_hi = hi;

    /* Provenance, and what must match for a resume to continue the same dump. */
    char whash[32], thash[32], ihash[32], shard[48], range[64], bt[32], nin[32], nl[16], dm[16];
    snprintf(whash, sizeof whash, "llh64:%016llx", (unsigned long long)weights_hash(m));
    snprintf(thash, sizeof thash, "llh64:%016llx", (unsigned long long)tokenizer_hash(tok));
    snprintf(ihash, sizeof ihash, "llh64:%016llx", (unsigned long long)ll_dump_input_hash(o->input));
    snprintf(shard, sizeof shard, "%d/%d", o->shard_n ? o->shard_k : 1, o->shard_n ? o->shard_n : 1);
    snprintf(range, sizeof range, "%lld-%lld", (long long)lo, (long long)hi);
    snprintf(bt, sizeof bt, "%lld", (long long)budget);
    snprintf(nin, sizeof nin, "%lld", (long long)n_input);
    snprintf(nl, sizeof nl, "%d", m->cfg.n_layers);
    snprintf(dm, sizeof dm, "%d", m->cfg.d_model);
    char bos[160];
    if (!tok) snprintf(bos, sizeof bos, "token ids used as given (no tokenizer)");
    else if (o->no_special) snprintf(bos, sizeof bos, "text: no special tokens added; token ids used as given");
    else
        snprintf(bos, sizeof bos, "text: tokenizer default (%s BOS %d); token ids used as given",
                 ll_tokenizer_adds_bos(tok) ? "adds" : "does not add", ll_tokenizer_bos(tok));
    char hooks[2048] = "";
    char pts[512] = "";
    for (int i = 0; i < d.n_points; i++) {
        size_t hl = strlen(hooks), pl = strlen(pts);
        snprintf(hooks + hl, sizeof hooks - hl, "%s%s: %s", i ? "\n" : "", d.pts[i].name, point_definition(d.pts[i].hp));
        snprintf(pts + pl, sizeof pts - pl, "%s%s", i ? "," : "", d.pts[i].name);
    }
    char *cfg = st ? NULL : config_text(m);
    char mpath[PATH_MAX];
    if (!realpath(o->model_path ? o->model_path : m->path, mpath))
        snprintf(mpath, sizeof mpath, "%s", o->model_path ? o->model_path : m->path);
    ll_store_attr attrs[] = {
        {"model_path", mpath},
        {"model_config", cfg ? cfg : ""},
        {"model_architecture", m->cfg.arch_name},
        {"n_layers", nl},
        {"d_model", dm},
        {"weights_hash", whash},
        {"tokenizer", tok ? ll_tokenizer_describe(tok) : "(none)"},
        {"tokenizer_hash", thash},
        {"bos_policy", bos},
        {"device", o->device ? o->device : "cpu"},
        {"hook_points", pts},
        {"hook_definitions", hooks},
        {"layer_convention",
         "layer l of a block point is block l (0-based); ln_final.hook_normalized and logits use layer index "
         "n_layers. Hugging Face's hidden_states[i] is hook_resid_pre of block i for i < n_layers; its last entry is "
         "after the final norm, i.e. ln_final.hook_normalized, not hook_resid_post of the last block"},
        {"layers", o->layers ? o->layers : "all"},
        {"positions", o->positions ? o->positions : "all"},
        {"batch_tokens", bt},
        {"input", ll_dump_input_name(o->input)},
        {"input_hash", ihash},
        {"n_input_records", nin},
        {"shard", shard},
        {"shard_records", range},
        {"command_line", o->command_line ? o->command_line : ""},
    };
    static const char *identity[] = {"weights_hash", "tokenizer_hash", "bos_policy", "layers", "positions",
                                     "batch_tokens", "input_hash", "shard", "hook_points"};
    ll_store_spec spec = {.dtype = o->dtype, .compress = o->compress, .gzip_level = o->gzip_level,
                          .n_attrs = (int)(sizeof attrs / sizeof *attrs), .attrs = attrs,
                          .n_identity = (int)(sizeof identity / sizeof *identity), .identity = identity,
                          .commit_seconds = o->commit_seconds, .on_commit = o->on_commit,
                          .on_commit_user = o->on_commit_user};
    ll_store_point sp[LL_STORE_MAX_POINTS];
    for (int i = 0; i < d.n_points; i++)
        sp[i] = (ll_store_point){.name = d.pts[i].name, .n_layers = d.pts[i].n_layers, .layers = d.pts[i].layers,
                                 .width = d.pts[i].width, .definition = point_definition(d.pts[i].hp)};
    spec.n_points = d.n_points;
    spec.points = sp;

    ll_store_writer *w = NULL;
    ll_store_progress done = {0};
    if (!st) {
        if (o->resume) st = ll_store_resume(&w, o->out_path, &spec, &done);
        else st = ll_store_create(&w, o->out_path, &spec, o->force);
    }
    free(cfg);
    res->seqs_before = done.seqs;

    /* Pass 2: this shard's records not yet in the file, batch by batch. */
    pending pb = {0};
    ll_progress prog;
    int64_t total = hi - lo;
    ll_progress_init(&prog, "dump", "seqs", total, o->progress);
    prog.rate_unit = "rows";
    int64_t next = lo + done.seqs, seqs_done = done.seqs;
    if (!st) st = ll_dump_input_rewind(o->input);
    bool interrupted = false;
    while (!st) {
        if (o->stop && *o->stop) {
            interrupted = true;
            break;
        }
        bool more;
        st = ll_dump_input_next(o->input, &r, &more);
        if (st || !more || r.index >= hi) break;
        if (r.index < next) continue;
        int32_t *ids;
        int n;
        st = record_tokens(&d, &r, &ids, &n);
        if (st) break;
        /* Greedy batches from the shard's first record: a resume starts on a batch
         * boundary (commits only happen between batches), so it forms the very same
         * batches an uninterrupted run would, and gives the same numbers. */
        if (pb.n > 0 && pb.tokens + n > budget) {
            st = run_batch(&d, w, &pb);
            seqs_done += pb.n;
            pending_clear(&pb);
            ll_progress_update(&prog, seqs_done - done.seqs, d.rows, d.bytes);
            if (!st && o->stop && *o->stop) interrupted = true;
            if (st || interrupted) {
                free(ids);
                break;
            }
        }
        if (pb.n == pb.cap) {
            int nc = pb.cap ? pb.cap * 2 : 64;
            ll_dump_record *a = realloc(pb.rec, (size_t)nc * sizeof *a);
            if (a) pb.rec = a;
            int32_t **b = a ? realloc(pb.ids, (size_t)nc * sizeof *b) : NULL;
            if (b) pb.ids = b;
            int *c = b ? realloc(pb.len, (size_t)nc * sizeof *c) : NULL;
            if (c) pb.len = c;
            int64_t **e = c ? realloc(pb.rows, (size_t)nc * sizeof *e) : NULL;
            if (e) pb.rows = e;
            int *f = e ? realloc(pb.n_rows, (size_t)nc * sizeof *f) : NULL;
            if (f) pb.n_rows = f;
            if (!f) {
                free(ids);
                st = ll_err(LL_ERR_NOMEM, "dump: pending batch");
                break;
            }
            pb.cap = nc;
        }
        int64_t *rr = malloc(((size_t)n + 64) * sizeof *rr);
        int nr = rr ? record_rows(&d, &r, n, rr, n + 64) : -1;
        if (nr < 0) {
            free(ids);
            free(rr);
            st = rr ? ll_err_prefix(LL_ERR_ARG, "--positions: ") : ll_err(LL_ERR_NOMEM, "rows");
            break;
        }
        pb.rec[pb.n] = r;
        memset(&r, 0, sizeof r);
        pb.ids[pb.n] = ids;
        pb.len[pb.n] = n;
        pb.rows[pb.n] = rr;
        pb.n_rows[pb.n] = nr;
        pb.n++;
        pb.tokens += n;
    }
    if (!st && !interrupted && pb.n > 0) {
        st = run_batch(&d, w, &pb);
        seqs_done += pb.n;
        ll_progress_update(&prog, seqs_done - done.seqs, d.rows, d.bytes);
    }
    ll_dump_record_clear(&r);
    pending_free(&pb);
    free(rows);
    res->bytes = d.bytes;
    if (w) {
        bool complete = !st && !interrupted;
        ll_status cst = ll_store_close(w, complete, interrupted ? "stopped by a signal" : st ? ll_last_error() : NULL);
        if (!st) st = cst;
    }
    ll_progress_finish(&prog);
    for (int i = 0; i < d.n_points; i++) free(d.pts[i].layers);
    for (int i = 0; i < d.n_pos_items; i++) free(d.pos_items[i]);
    res->interrupted = interrupted && !st;
    res->seqs = seqs_done;
    res->seconds = ll_now() - t0;
    if (!st && w) {
        ll_store_reader *rd;
        if (!ll_store_open(&rd, o->out_path, true)) {
            res->rows = ll_store_n_rows(rd);
            res->tokens = ll_store_n_tokens(rd);
            ll_store_reader_free(rd);
        }
        ll_clear_error();
    }
    return st;
}
