/* The forward scheduler, written once over the backend op table.
 *
 * One pass per block: norm -> q/k/v -> RoPE -> (KV cache) -> attention -> o_proj ->
 * residual add -> norm -> MLP -> residual add, with a hook site after each named
 * state. Blocks start_layer..stop_layer-1 run; the final norm and LM head run only
 * when the last block did and logits were asked for. */
#include "ll_forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "ll_hooks_internal.h"
#include "ll_knockout.h"

typedef struct {
    float *x, *xn, *q, *k, *v, *z, *o, *h1, *h2; /* backend buffers */
    int32_t *tok, *pos;                           /* backend copies of ids */
} ll_fwd_bufs;

static ll_status ll_check_batch(const ll_model *m, const ll_batch *b, const ll_forward_opts *o, int start, int stop) {
    const ll_config *c = &m->cfg;
    if (!b || b->n_seq <= 0 || !b->seq_off) return ll_err(LL_ERR_ARG, "forward: empty batch");
    if (b->seq_off[0] != 0) return ll_err(LL_ERR_ARG, "forward: seq_off[0] must be 0, found %lld", (long long)b->seq_off[0]);
    for (int s = 0; s < b->n_seq; s++)
        if (b->seq_off[s + 1] <= b->seq_off[s])
            return ll_err(LL_ERR_ARG, "forward: sequence %d is empty or seq_off decreases (%lld -> %lld)", s,
                          (long long)b->seq_off[s], (long long)b->seq_off[s + 1]);
    int64_t T = ll_batch_rows(b);
    if (T > (1 << 30)) return ll_err(LL_ERR_ARG, "forward: %lld rows is too many for one call", (long long)T);
    if (start < 0 || start > c->n_layers || stop < start)
        return ll_err(LL_ERR_ARG, "forward: layers [%d, %d) out of range for a model with %d layers", start, stop,
                      c->n_layers);
    if (start > 0 && !o->resid_in)
        return ll_err(LL_ERR_ARG, "forward: start_layer %d needs residual rows (resid_in)", start);
    if (!o->resid_in) {
        if (!b->tokens) return ll_err(LL_ERR_ARG, "forward: neither token ids nor residual rows given");
        for (int64_t t = 0; t < T; t++)
            if (b->tokens[t] < 0 || b->tokens[t] >= c->vocab_size)
                return ll_err(LL_ERR_ARG, "forward: token id %d at row %lld is outside the vocabulary [0, %d)",
                              b->tokens[t], (long long)t, c->vocab_size);
    }
    if (o->cache) {
        const ll_kv_cache *kc = o->cache;
        if (kc->n_layers != c->n_layers || kc->kv_width != c->n_kv_heads * c->head_dim)
            return ll_err(LL_ERR_ARG, "forward: KV cache was made for another model");
        if (kc->be != m->be)
            return ll_err(LL_ERR_ARG, "forward: the KV cache is in %s memory but the model runs on %s (make the cache "
                                      "after ll_model_use_backend)", kc->be->name, m->be->name);
        for (int s = 0; s < b->n_seq; s++) {
            int slot = b->slot ? b->slot[s] : s;
            if (slot < 0 || slot >= kc->n_slots)
                return ll_err(LL_ERR_ARG, "forward: sequence %d uses KV slot %d, cache has %d", s, slot, kc->n_slots);
            for (int s2 = 0; s2 < s; s2++)
                if ((b->slot ? b->slot[s2] : s2) == slot)
                    return ll_err(LL_ERR_ARG, "forward: sequences %d and %d share KV slot %d", s2, s, slot);
            int n_new = (int)(b->seq_off[s + 1] - b->seq_off[s]);
            for (int l = start; l < stop; l++)
                if (kc->len[l * kc->n_slots + slot] + n_new > kc->cap)
                    return ll_err(LL_ERR_ARG, "forward: KV slot %d would hold %d tokens at layer %d, capacity is %d",
                                  slot, kc->len[l * kc->n_slots + slot] + n_new, l, kc->cap);
        }
    }
    return LL_OK;
}

static void ll_free_bufs(const ll_backend *be, ll_fwd_bufs *f) {
    void *all[] = {f->x, f->xn, f->q, f->k, f->v, f->z, f->o, f->h1, f->h2, f->tok, f->pos};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i]) be->free(all[i]);
}

static ll_status ll_alloc_bufs(const ll_model *m, int64_t T, ll_fwd_bufs *f) {
    const ll_config *c = &m->cfg;
    const ll_backend *be = m->be;
    size_t t = (size_t)T, d = (size_t)c->d_model, qw = (size_t)c->n_heads * c->head_dim;
    size_t kw = (size_t)c->n_kv_heads * c->head_dim, ff = (size_t)c->d_ff;
    struct {
        void **p;
        size_t bytes;
    } want[] = {
        {(void **)&f->x, t * d * 4},   {(void **)&f->xn, t * d * 4},  {(void **)&f->q, t * qw * 4},
        {(void **)&f->k, t * kw * 4},  {(void **)&f->v, t * kw * 4},  {(void **)&f->z, t * qw * 4},
        {(void **)&f->o, t * d * 4},   {(void **)&f->h1, t * ff * 4}, {(void **)&f->h2, t * ff * 4},
        {(void **)&f->tok, t * 4},     {(void **)&f->pos, t * 4},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        *want[i].p = be->alloc(want[i].bytes ? want[i].bytes : 4);
        if (!*want[i].p) {
            ll_free_bufs(be, f);
            /* keep the backend's own words (on CUDA: free and total device memory) after ours */
            return ll_err_prefix(LL_ERR_NOMEM, "forward: cannot allocate activations for %lld rows (%zu bytes): ",
                                 (long long)T, want[i].bytes);
        }
    }
    return LL_OK;
}

/* Replace each sequence's pattern in backend memory by a host copy (freed with free()).
 * All host buffers are allocated before any is swapped in, so on failure every entry is
 * still backend memory and the caller's cleanup frees it the usual way. */
static ll_status ll_patterns_to_host(const ll_backend *be, const ll_batch *b, float **pattern, int H,
                                     const int *n_past) {
    float **h = calloc((size_t)b->n_seq, sizeof *h);
    size_t *bytes = calloc((size_t)b->n_seq, sizeof *bytes);
    ll_status st = (h && bytes) ? LL_OK : ll_err(LL_ERR_NOMEM, "forward: no memory for attention pattern copies");
    for (int s = 0; !st && s < b->n_seq; s++) {
        int n_new = (int)(b->seq_off[s + 1] - b->seq_off[s]);
        bytes[s] = (size_t)H * n_new * (size_t)(n_new + n_past[s]) * sizeof(float);
        h[s] = malloc(bytes[s] ? bytes[s] : 1);
        if (!h[s]) st = ll_err(LL_ERR_NOMEM, "forward: no host memory for an attention pattern (%zu bytes)", bytes[s]);
    }
    for (int s = 0; h && s < b->n_seq; s++) {
        if (st) {
            free(h[s]);
            continue;
        }
        be->to_host(h[s], pattern[s], bytes[s]);
        be->free(pattern[s]);
        pattern[s] = h[s];
    }
    free(h);
    free(bytes);
    return st;
}

#define LL_HOOK(point, layer, buf, width)                                                                         \
    do {                                                                                                          \
        if (ll_hooks_active(o->hooks, point, layer))                                                              \
            if ((st = ll_hooks_run(o->hooks, be, point, layer, buf, width, b, c->n_heads))) goto done;            \
    } while (0)

ll_status ll_forward(ll_model *m, const ll_batch *b, const ll_forward_opts *opts) {
    static const ll_forward_opts none = {0};
    const ll_forward_opts *o = opts ? opts : &none;
    const ll_config *c = &m->cfg;
    const ll_backend *be = m->be;
    int L = c->n_layers;
    int start = o->start_layer;
    int stop = (o->stop_layer <= 0 || o->stop_layer > L) ? L : o->stop_layer;
    LL_TRY(ll_check_batch(m, b, o, start, stop));
    if (o->n_knockouts || o->knockouts) LL_TRY(ll_knock_check(o->knockouts, o->n_knockouts, b, L, c->n_heads));
    int64_t T = ll_batch_rows(b);
    int d = c->d_model, H = c->n_heads, Hkv = c->n_kv_heads, hd = c->head_dim;
    int qw = H * hd, kw = Hkv * hd;
    ll_kv_cache *kc = o->cache;

    /* Host-side bookkeeping: positions, per-sequence slots and cache lengths. */
    int32_t *pos = malloc((size_t)T * sizeof *pos);
    int *n_past = ll_calloc((size_t)b->n_seq, sizeof *n_past, "forward");
    const float **kseq = ll_calloc((size_t)b->n_seq, sizeof *kseq, "forward");
    const float **vseq = ll_calloc((size_t)b->n_seq, sizeof *vseq, "forward");
    float **pattern = ll_calloc((size_t)b->n_seq, sizeof *pattern, "forward");
    int64_t *last_rows = ll_calloc((size_t)b->n_seq, sizeof *last_rows, "forward");
    ll_fwd_bufs f = {0};
    ll_knock_tables kt = {0};
    float *lg = NULL, *xs = NULL;
    ll_status st = LL_OK;
    if (!pos || !n_past || !kseq || !vseq || !pattern || !last_rows) {
        st = ll_err(LL_ERR_NOMEM, "forward: no memory for batch bookkeeping");
        goto done;
    }
    if ((st = ll_alloc_bufs(m, T, &f))) goto done;
    for (int s = 0; s < b->n_seq; s++) {
        int slot = b->slot ? b->slot[s] : s;
        /* Default positions continue the cache; with no block to run (start == L) there is none. */
        int past = kc && start < L ? kc->len[start * kc->n_slots + slot] : 0;
        for (int64_t t = b->seq_off[s]; t < b->seq_off[s + 1]; t++)
            pos[t] = b->pos ? b->pos[t] : (int32_t)(past + (t - b->seq_off[s]));
        last_rows[s] = b->seq_off[s + 1] - 1;
    }
    for (int64_t t = 0; t < T; t++)
        if (pos[t] < 0 || (c->learned_pos && pos[t] >= c->max_pos)) {
            st = ll_err(LL_ERR_ARG, "forward: position %d at row %lld is outside the model's range [0, %d)", pos[t],
                        (long long)t, c->max_pos);
            goto done;
        }
    ll_hooks_begin_forward(o->hooks);
    be->from_host(f.pos, pos, (size_t)T * sizeof(int32_t));
    if (o->resid_in) {
        be->from_host(f.x, o->resid_in, (size_t)T * d * sizeof(float));
    } else {
        be->from_host(f.tok, b->tokens, (size_t)T * sizeof(int32_t));
        be->embed(f.x, m->w.tok_emb, c->learned_pos ? m->w.pos_emb : NULL, f.tok, f.pos, (int)T, d);
    }
    float scale = 1.0f / sqrtf((float)hd);

    /* A residual add and the norm right after it run as one op (add_norm) when no hook
     * site between them is in use: one pass over the residual instead of two on the GPU,
     * and exactly add-then-norm on the CPU. xn_ready: the previous block already wrote
     * this block's normalised input. */
    bool fuse = be->add_norm != NULL, xn_ready = false;
    bool layer_norm = c->norm == LL_NORM_LAYER;
    for (int l = start; l < stop; l++) {
        const ll_layer_weights *W = &m->w.layers[l];
        LL_HOOK(LL_HOOK_RESID_PRE, l, f.x, d);
        if (!xn_ready) {
            if (c->norm == LL_NORM_RMS) be->rmsnorm(f.xn, f.x, W->attn_norm_w, (int)T, d, c->norm_eps);
            else be->layernorm(f.xn, f.x, W->attn_norm_w, W->attn_norm_b, (int)T, d, c->norm_eps);
        }
        xn_ready = false;
        be->matmul(f.q, f.xn, &W->wq, W->bq, (int)T, false);
        be->matmul(f.k, f.xn, &W->wk, W->bk, (int)T, false);
        be->matmul(f.v, f.xn, &W->wv, W->bv, (int)T, false);
        be->rope(f.q, f.pos, (int)T, H, hd, m->w.rope_inv_freq, c->rope_layout);
        be->rope(f.k, f.pos, (int)T, Hkv, hd, m->w.rope_inv_freq, c->rope_layout);
        int kv_stride = kw;
        for (int s = 0; s < b->n_seq; s++) {
            int64_t r0 = b->seq_off[s];
            int n_new = (int)(b->seq_off[s + 1] - r0);
            if (kc) {
                int slot = b->slot ? b->slot[s] : s;
                int *len = &kc->len[l * kc->n_slots + slot];
                size_t base = ((size_t)l * kc->n_slots + (size_t)slot) * (size_t)kc->cap * (size_t)kw;
                be->copy(kc->k + base + (size_t)*len * kw, f.k + r0 * kw, (size_t)n_new * kw * sizeof(float));
                be->copy(kc->v + base + (size_t)*len * kw, f.v + r0 * kw, (size_t)n_new * kw * sizeof(float));
                n_past[s] = *len;
                kseq[s] = kc->k + base;
                vseq[s] = kc->v + base;
            } else {
                n_past[s] = 0;
                kseq[s] = f.k + r0 * kw;
                vseq[s] = f.v + r0 * kw;
            }
        }
        int want_pattern = ll_hooks_active(o->hooks, LL_HOOK_ATTN_PATTERN, l);
        if (want_pattern)
            for (int s = 0; s < b->n_seq; s++) {
                int n_new = (int)(b->seq_off[s + 1] - b->seq_off[s]);
                pattern[s] = be->alloc((size_t)H * n_new * (size_t)(n_new + n_past[s]) * sizeof(float));
                if (!pattern[s]) {
                    st = ll_err_prefix(LL_ERR_NOMEM, "forward: attention pattern of layer %d, sequence %d: ", l, s);
                    goto done;
                }
            }
        const ll_attn_knock *knock = NULL;
        if (o->n_knockouts > 0 &&
            (st = ll_knock_build(&kt, o->knockouts, o->n_knockouts, l, b, n_past, H, &knock)))
            goto done;
        ll_attn_args aa = {.q = f.q, .z = f.z, .T = (int)T, .n_heads = H, .n_kv_heads = Hkv, .head_dim = hd,
                           .n_seq = b->n_seq, .seq_off = b->seq_off, .k = kseq, .v = vseq, .kv_stride = kv_stride,
                           .n_past = n_past, .scale = scale, .sliding_window = c->sliding_window,
                           .pattern = want_pattern ? pattern : NULL, .knock = knock};
        be->attention(&aa);
        if (kc)
            for (int s = 0; s < b->n_seq; s++)
                kc->len[l * kc->n_slots + (b->slot ? b->slot[s] : s)] += (int)(b->seq_off[s + 1] - b->seq_off[s]);
        if (want_pattern) {
            /* Patterns are handed over in host memory; on the CPU backend they already are. */
            if (!be->host_memory) {
                if ((st = ll_patterns_to_host(be, b, pattern, H, n_past))) goto done;
            }
            st = ll_hooks_emit_pattern(o->hooks, l, b, pattern, H, n_past);
            for (int s = 0; s < b->n_seq; s++) {
                if (be->host_memory) be->free(pattern[s]);
                else free(pattern[s]);
                pattern[s] = NULL;
            }
            if (st) goto done;
        }
        LL_HOOK(LL_HOOK_ATTN_Z, l, f.z, qw);
        be->matmul(f.o, f.z, &W->wo, W->bo, (int)T, false);
        LL_HOOK(LL_HOOK_ATTN_OUT, l, f.o, d);
        if (fuse && !ll_hooks_active(o->hooks, LL_HOOK_RESID_MID, l)) {
            be->add_norm(f.x, f.xn, f.o, W->mlp_norm_w, W->mlp_norm_b, layer_norm, (int)T, d, c->norm_eps);
        } else {
            be->add(f.x, f.o, (size_t)T * d);
            LL_HOOK(LL_HOOK_RESID_MID, l, f.x, d);
            if (c->norm == LL_NORM_RMS) be->rmsnorm(f.xn, f.x, W->mlp_norm_w, (int)T, d, c->norm_eps);
            else be->layernorm(f.xn, f.x, W->mlp_norm_w, W->mlp_norm_b, (int)T, d, c->norm_eps);
        }
        if (c->mlp == LL_MLP_SWIGLU) {
            be->matmul(f.h1, f.xn, &W->w_gate, NULL, (int)T, false);
            be->matmul(f.h2, f.xn, &W->w_up, NULL, (int)T, false);
            be->swiglu(f.h1, f.h1, f.h2, (size_t)T * c->d_ff);
        } else {
            be->matmul(f.h1, f.xn, &W->w_up, W->b_up, (int)T, false);
            be->gelu_new(f.h1, (size_t)T * c->d_ff);
        }
        be->matmul(f.o, f.h1, &W->w_down, W->b_down, (int)T, false);
        LL_HOOK(LL_HOOK_MLP_OUT, l, f.o, d);
        if (fuse && l + 1 < stop && !ll_hooks_active(o->hooks, LL_HOOK_RESID_POST, l) &&
            !ll_hooks_active(o->hooks, LL_HOOK_RESID_PRE, l + 1)) {
            const ll_layer_weights *Wn = &m->w.layers[l + 1];
            be->add_norm(f.x, f.xn, f.o, Wn->attn_norm_w, Wn->attn_norm_b, layer_norm, (int)T, d, c->norm_eps);
            xn_ready = true;
        } else {
            be->add(f.x, f.o, (size_t)T * d);
            LL_HOOK(LL_HOOK_RESID_POST, l, f.x, d);
        }
    }
    if (o->resid_out) be->to_host(o->resid_out, f.x, (size_t)T * d * sizeof(float));

    int final_hooks = ll_hooks_active(o->hooks, LL_HOOK_FINAL_NORM, L) || ll_hooks_active(o->hooks, LL_HOOK_LOGITS, L);
    if (stop == L && (o->logits != LL_LOGITS_NONE || final_hooks)) {
        /* Hooks at the final sites see every row; otherwise only the rows asked for are unembedded. */
        int all = o->logits == LL_LOGITS_ALL || final_hooks;
        int R = all ? (int)T : b->n_seq;
        float *xin = f.x;
        if (!all) {
            xs = be->alloc((size_t)R * d * sizeof(float));
            if (!xs) {
                st = ll_err_prefix(LL_ERR_NOMEM, "forward: last rows for the head: ");
                goto done;
            }
            be->gather_rows(xs, f.x, last_rows, R, d);
            xin = xs;
        }
        if (c->norm == LL_NORM_RMS) be->rmsnorm(f.xn, xin, m->w.norm_w, R, d, c->norm_eps);
        else be->layernorm(f.xn, xin, m->w.norm_w, m->w.norm_b, R, d, c->norm_eps);
        LL_HOOK(LL_HOOK_FINAL_NORM, L, f.xn, d);
        size_t V = (size_t)c->vocab_size;
        lg = be->alloc((size_t)R * V * sizeof(float));
        if (!lg) {
            st = ll_err(LL_ERR_NOMEM, "forward: cannot allocate logits for %d rows x %zu", R, V);
            goto done;
        }
        be->matmul(lg, f.xn, &m->w.lm_head, NULL, R, false);
        LL_HOOK(LL_HOOK_LOGITS, L, lg, (int)V);
        if (o->logits_out && o->logits != LL_LOGITS_NONE) {
            if (o->logits == LL_LOGITS_LAST && all) {
                float *tmp = be->alloc((size_t)b->n_seq * V * sizeof(float));
                if (!tmp) {
                    st = ll_err_prefix(LL_ERR_NOMEM, "forward: last-row logits: ");
                    goto done;
                }
                be->gather_rows(tmp, lg, last_rows, b->n_seq, (int)V);
                be->to_host(o->logits_out, tmp, (size_t)b->n_seq * V * sizeof(float));
                be->free(tmp);
            } else {
                be->to_host(o->logits_out, lg, (size_t)R * V * sizeof(float));
            }
        }
    }
done:
    /* Ops report failures at the next sync (a GPU runs them asynchronously); the first
     * failure wins, and a failure already on the way out is not masked by a later one. */
    {
        ll_status sst = be->sync();
        if (!st) st = sst;
        /* Records queued asynchronously reach their sinks now that the rows have arrived. */
        ll_status hst = ll_hooks_end_forward(o->hooks, be, st);
        if (!st) st = hst;
    }
    if (lg) be->free(lg);
    if (xs) be->free(xs);
    if (pattern)
        for (int s = 0; s < b->n_seq; s++)
            if (pattern[s]) be->free(pattern[s]);
    ll_free_bufs(be, &f);
    ll_knock_tables_free(&kt);
    free(pos);
    free(n_past);
    free(kseq);
    free(vseq);
    free(pattern);
    free(last_rows);
    return st;
}
