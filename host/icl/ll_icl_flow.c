/* E4-E7 building blocks (ll_icl_flow.h): episodes, knockout lists, scoring, attention
 * flow and residual vectors at the label / query positions. */
#include "ll_icl_flow.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"

/* ---- episodes ------------------------------------------------------------------------ */

void ll_icl_episodes_free(ll_icl_episodes *e) {
    if (!e) return;
    for (int i = 0; e->p && i < e->n; i++) ll_icl_prompt_free(&e->p[i]);
    free(e->p);
    free(e->demo_item);
    free(e->query_item);
    free(e->lab);
    free(e->cands);
    memset(e, 0, sizeof *e);
}

ll_status ll_icl_episodes_make(const ll_tokenizer *t, const ll_icl_episode_opts *o, ll_icl_episodes *e) {
    memset(e, 0, sizeof *e);
    const ll_icl_task *task = o->task;
    if (o->k < 1 || o->n_prompts < 1)
        return ll_err(LL_ERR_ARG, "icl episodes: need k >= 1 demonstrations and n >= 1 prompts, got k %d, n %d", o->k,
                      o->n_prompts);
    if (o->k + 1 > task->n)
        return ll_err(LL_ERR_ARG, "icl episodes: task %s has %d items, %d demonstrations + a query need %d", task->name,
                      task->n, o->k, o->k + 1);
    int n = o->n_prompts, k = o->k;
    e->n = n, e->k = k;
    e->p = ll_calloc((size_t)n, sizeof *e->p, "icl prompts");
    e->demo_item = ll_calloc((size_t)n * k, sizeof *e->demo_item, "icl episodes");
    e->query_item = ll_calloc((size_t)n, sizeof *e->query_item, "icl episodes");
    e->lab = ll_calloc((size_t)n * k, sizeof *e->lab, "icl episodes");
    ll_icl_item *items = ll_calloc((size_t)k, sizeof *items, "icl episodes");
    ll_status st = (e->p && e->demo_item && e->query_item && e->lab && items) ? LL_OK : LL_ERR_NOMEM;
    uint64_t rng = o->seed;
    int built = 0;
    for (int i = 0; !st && i < n; i++) {
        int *dm = e->demo_item + (size_t)i * k;
        if (o->exp) {
            st = ll_icl_exp_test_prompt(o->exp, i, k, dm, &e->query_item[i], &e->p[i]);
        } else if (!(st = ll_icl_task_sample(task, &rng, k, dm, &e->query_item[i]))) {
            for (int j = 0; j < k; j++) items[j] = (ll_icl_item){task->input[dm[j]], task->output[dm[j]]};
            ll_icl_item q = {task->input[e->query_item[i]], task->output[e->query_item[i]]};
            st = ll_icl_prompt_build(t, &o->tpl, items, k, &q, &o->popts, &e->p[i]);
        }
        if (st) {
            st = ll_err_prefix(st, "icl episodes: prompt %d: ", i);
            break;
        }
        built = i + 1;
        const ll_icl_prompt *p = &e->p[i];
        if (p->n_answer < 1) {
            st = ll_err(LL_ERR_ARG, "icl episodes: prompt %d: the query's label \"%s\" gives no answer token", i,
                        task->output[e->query_item[i]]);
            break;
        }
        e->n_straddle += p->n_straddle > 0;
        e->n_unclean += !p->answer_clean;
        for (int j = 0; j < k; j++) {
            int pos = ll_icl_label_position(p, j, o->label_pos);
            if (pos < 0 || pos >= p->query_pos) {
                st = ll_err(LL_ERR_ARG, "icl episodes: prompt %d: demonstration %d has no %s label position", i, j,
                            ll_icl_label_pos_name(o->label_pos));
                break;
            }
            e->lab[(size_t)i * k + j] = pos;
        }
    }
    if (!st && o->exp) {
        if (o->exp->n_cand > 0 && !o->exp->full_vocab) {
            e->n_cands = o->exp->n_cand;
            e->cands = ll_calloc((size_t)e->n_cands, sizeof *e->cands, "icl candidates");
            if (!e->cands) st = LL_ERR_NOMEM;
            else memcpy(e->cands, o->exp->cand, (size_t)e->n_cands * sizeof *e->cands);
        }
    } else if (!st && !o->full_vocab && task->n_classes > 0) {
        e->n_cands = task->n_classes;
        e->cands = ll_calloc((size_t)e->n_cands, sizeof *e->cands, "icl candidates");
        if (!e->cands) st = LL_ERR_NOMEM;
        for (int c = 0; !st && c < e->n_cands; c++)
            st = ll_icl_label_first_token(t, &o->tpl, task->classes[c], &o->popts, &e->cands[c]);
    }
    free(items);
    if (st) {
        e->n = built;
        ll_icl_episodes_free(e);
    }
    return st;
}

/* ---- knockouts (E4) ------------------------------------------------------------------- */

ll_status ll_icl_ko_mode_parse(const char *s, ll_icl_ko_mode *out) {
    static const char *names[] = {"query", "later", "reverse"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = (ll_icl_ko_mode)i;
            return LL_OK;
        }
    return ll_err(LL_ERR_ARG, "knockout mode: expected query, later or reverse, found '%s'", s);
}

const char *ll_icl_ko_mode_name(ll_icl_ko_mode m) {
    return m == LL_ICL_KO_QUERY ? "query" : m == LL_ICL_KO_LATER ? "later" : "reverse";
}

/* Is position j a label position (the chosen one, or any label token) of prompt i? */
static bool ll_is_label(const ll_icl_episodes *e, int i, int j) {
    const ll_icl_prompt *p = &e->p[i];
    for (int d = 0; d < e->k; d++) {
        if (e->lab[(size_t)i * e->k + d] == j) return true;
        if (p->demo[d].lab_lo >= 0 && j >= p->demo[d].lab_lo && j <= p->demo[d].lab_hi) return true;
    }
    return false;
}

/* Control keys: up to `want` distinct positions < `below` that are no label, query or BOS
 * token, nor in [skip_lo, skip_hi]; drawn by partial Fisher-Yates. Returns how many. */
static int ll_control_keys(const ll_icl_episodes *e, int i, int below, int skip_lo, int skip_hi, int want,
                           uint64_t *rng, int32_t *out) {
    const ll_icl_prompt *p = &e->p[i];
    int *pool = malloc((size_t)(below > 0 ? below : 1) * sizeof *pool), m = 0;
    if (!pool) return 0;
    for (int j = p->has_bos ? 1 : 0; j < below; j++)
        if (!ll_is_label(e, i, j) && j != p->query_pos && !(j >= skip_lo && j <= skip_hi)) pool[m++] = j;
    int got = want < m ? want : m;
    for (int a = 0; a < got; a++) {
        int b = a + (int)(ll_icl_rand(rng) % (uint64_t)(m - a));
        int tmp = pool[a];
        pool[a] = pool[b], pool[b] = tmp;
        out[a] = pool[a];
    }
    free(pool);
    return got;
}

int ll_icl_ko_build(const ll_icl_episodes *e, int i, int seq, ll_icl_ko_mode mode, int lo, int hi, bool control,
                    uint64_t *rng, ll_knockout *ko, int32_t *idx) {
    const ll_icl_prompt *p = &e->p[i];
    const int *lab = e->lab + (size_t)i * e->k;
    int n = p->n, nk = 0;
    int32_t *at = idx;
    ll_knockout base = {.layer_lo = lo, .layer_hi = hi, .seq = seq, .head = -1};
    if (mode == LL_ICL_KO_QUERY) {
        ll_knockout k = base;
        at[0] = p->query_pos;
        k.q = at, k.n_q = 1;
        at += 1;
        if (control) k.n_k = ll_control_keys(e, i, p->query_pos, -1, -1, e->k, rng, at);
        else {
            for (int d = 0; d < e->k; d++) at[d] = lab[d];
            k.n_k = e->k;
        }
        k.k = at;
        ko[nk++] = k;
        return nk;
    }
    for (int d = 0; d < e->k; d++) {
        ll_knockout k = base;
        if (mode == LL_ICL_KO_LATER) {
            int key = lab[d];
            if (control && ll_control_keys(e, i, p->query_pos, -1, -1, 1, rng, &key) < 1) continue;
            at[0] = key;
            k.k = at, k.n_k = 1;
            at += 1;
            k.q = at;
            for (int r = key + 1; r < n; r++) *at++ = r;
            k.n_q = n - key - 1;
        } else { /* reverse: label position d may not read its demonstration's input */
            const ll_icl_span *s = &p->demo[d];
            if (s->in_lo < 0) continue;
            at[0] = lab[d];
            k.q = at, k.n_q = 1;
            at += 1;
            k.k = at;
            int want = s->in_hi - s->in_lo + 1;
            if (control) k.n_k = ll_control_keys(e, i, lab[d], s->in_lo, s->in_hi, want, rng, at);
            else {
                for (int j = 0; j < want; j++) at[j] = s->in_lo + j;
                k.n_k = want;
            }
            at += k.n_k;
        }
        ko[nk++] = k;
    }
    return nk;
}

/* ---- scoring -------------------------------------------------------------------------- */

ll_status ll_icl_score_run(ll_model *m, const ll_icl_episodes *e, int batch, ll_icl_knock_fn knock, void *user,
                           ll_icl_score *out) {
    memset(out, 0, sizeof *out);
    if (batch < 1) batch = 1;
    int V = m->cfg.vocab_size;
    int max_n = 0;
    for (int i = 0; i < e->n; i++) max_n = e->p[i].n > max_n ? e->p[i].n : max_n;
    size_t idx_per = 2 * (size_t)max_n * e->k + 2 * (size_t)max_n + 4;
    int32_t *ids = malloc((size_t)batch * max_n * sizeof *ids);
    int64_t *off = malloc((size_t)(batch + 1) * sizeof *off);
    float *lg = malloc((size_t)batch * V * sizeof *lg);
    ll_knockout *ko = malloc((size_t)batch * (e->k + 1) * sizeof *ko);
    int32_t *idx = malloc((size_t)batch * idx_per * sizeof *idx);
    ll_status st = (ids && off && lg && ko && idx) ? LL_OK : ll_err(LL_ERR_NOMEM, "icl scoring: no memory for a batch");
    for (int i0 = 0; !st && i0 < e->n; i0 += batch) {
        int nb = e->n - i0 < batch ? e->n - i0 : batch, n_ko = 0;
        off[0] = 0;
        for (int s = 0; s < nb; s++) {
            const ll_icl_prompt *p = &e->p[i0 + s];
            memcpy(ids + off[s], p->ids, (size_t)p->n * sizeof *ids);
            off[s + 1] = off[s] + p->n;
            if (knock) n_ko += knock(user, i0 + s, s, ko + n_ko, idx + (size_t)s * idx_per);
        }
        ll_batch b = {.n_seq = nb, .seq_off = off, .tokens = ids};
        ll_forward_opts fo = {.logits = LL_LOGITS_LAST, .logits_out = lg, .knockouts = n_ko ? ko : NULL,
                              .n_knockouts = n_ko};
        if ((st = ll_forward(m, &b, &fo))) break;
        for (int s = 0; s < nb; s++) {
            const ll_icl_prompt *p = &e->p[i0 + s];
            const float *r = lg + (size_t)s * V;
            int32_t ans = p->answer[0];
            double mx = r[0];
            for (int v = 1; v < V; v++) mx = r[v] > mx ? r[v] : mx;
            double z = 0;
            for (int v = 0; v < V; v++) z += exp(r[v] - mx);
            out->logp += r[ans] - mx - log(z);
            int best = -1;
            if (e->cands) {
                for (int c = 0; c < e->n_cands; c++)
                    if (best < 0 || r[e->cands[c]] > r[best]) best = e->cands[c];
            } else {
                best = 0;
                for (int v = 1; v < V; v++)
                    if (r[v] > r[best]) best = v;
            }
            out->correct += best == ans;
            out->n++;
        }
    }
    free(ids), free(off), free(lg), free(ko), free(idx);
    return st;
}

/* ---- information flow (E5) ------------------------------------------------------------ */

void ll_icl_flow_prompt(const float *A, int H, int n, int k, const ll_icl_span *spans, const int *lab, int query,
                        ll_icl_flow *out) {
    double in_label = 0, label_query = 0, wp = 0, pq = 0, ww = 0;
    double n_wp = 0, n_ww = 0;
    for (int h = 0; h < H; h++) {
        const float *Ah = A + (size_t)h * n * n;
        double tot = 0; /* every pair j < r */
        for (int r = 1; r < n; r++)
            for (int j = 0; j < r; j++) tot += Ah[(size_t)r * n + j];
        double s_wp = 0, s_pq = 0, s_in = 0;
        for (int d = 0; d < k; d++) {
            const float *row = Ah + (size_t)lab[d] * n;
            for (int j = 0; j < lab[d]; j++) s_wp += row[j];
            if (spans[d].in_lo >= 0)
                for (int j = spans[d].in_lo; j <= spans[d].in_hi && j < lab[d]; j++) s_in += row[j];
            s_pq += Ah[(size_t)query * n + lab[d]];
        }
        in_label += s_in / k;
        label_query += s_pq;
        wp += s_wp;
        pq += s_pq / k;
        ww += tot - s_wp - s_pq;
    }
    for (int d = 0; d < k; d++) n_wp += lab[d];
    n_ww = (double)n * (n - 1) / 2 - n_wp - k;
    out->in_label = in_label / H;
    out->label_query = label_query / H;
    out->wp = n_wp > 0 ? wp / H / n_wp : NAN;
    out->pq = pq / H;
    out->ww = n_ww > 0 ? ww / H / n_ww : NAN;
}

/* ---- residual vectors (E6, E7) -------------------------------------------------------- */

typedef struct {
    float *out;
    const int *row_prompt, *row_slot; /* per batch row: prompt (-1 none) and slot */
    int n, k, d;
} ll_vec_sink;

static ll_status ll_vec_fn(void *user, const ll_hook_rows *r) {
    ll_vec_sink *v = user;
    if (r->width != v->d) return ll_err(LL_ERR_ARG, "icl vectors: rows of %d floats, expected %d", r->width, v->d);
    for (int a = 0; a < r->n_rows; a++) {
        int i = v->row_prompt[r->rows[a]], slot = v->row_slot[r->rows[a]];
        if (i < 0) continue;
        float *dst = v->out + (((size_t)r->layer * v->n + i) * (v->k + 1) + slot) * v->d;
        memcpy(dst, r->data + (size_t)a * v->d, (size_t)v->d * sizeof(float));
    }
    return LL_OK;
}

ll_status ll_icl_vectors(ll_model *m, const ll_icl_episodes *e, int batch, ll_hook_point point, float *out) {
    if (point != LL_HOOK_RESID_POST && point != LL_HOOK_RESID_PRE)
        return ll_err(LL_ERR_ARG, "icl vectors: hook point must be resid_pre or resid_post");
    if (batch < 1) batch = 1;
    int L = m->cfg.n_layers, d = m->cfg.d_model, k = e->k;
    int max_n = 0;
    for (int i = 0; i < e->n; i++) max_n = e->p[i].n > max_n ? e->p[i].n : max_n;
    size_t T = (size_t)batch * max_n;
    int32_t *ids = malloc(T * sizeof *ids);
    int64_t *off = malloc((size_t)(batch + 1) * sizeof *off), *rows = malloc((size_t)batch * (k + 1) * sizeof *rows);
    int *rp = malloc(T * sizeof *rp), *rs = malloc(T * sizeof *rs);
    ll_hooks *h = NULL;
    ll_status st = (ids && off && rows && rp && rs) ? ll_hooks_new(&h, L) : ll_err(LL_ERR_NOMEM, "icl vectors");
    ll_vec_sink sink = {.out = out, .row_prompt = rp, .row_slot = rs, .n = e->n, .k = k, .d = d};
    for (int i0 = 0; !st && i0 < e->n; i0 += batch) {
        int nb = e->n - i0 < batch ? e->n - i0 : batch, nr = 0;
        off[0] = 0;
        for (int s = 0; s < nb; s++) {
            const ll_icl_prompt *p = &e->p[i0 + s];
            memcpy(ids + off[s], p->ids, (size_t)p->n * sizeof *ids);
            off[s + 1] = off[s] + p->n;
            for (int64_t t = off[s]; t < off[s + 1]; t++) rp[t] = -1;
            for (int slot = 0; slot <= k; slot++) {
                int pos = slot < k ? e->lab[(size_t)(i0 + s) * k + slot] : p->query_pos;
                rows[nr++] = off[s] + pos;
                rp[off[s] + pos] = i0 + s;
                rs[off[s] + pos] = slot;
            }
        }
        ll_hooks_clear(h);
        ll_record rec = {.point = point, .layer_lo = 0, .layer_hi = L - 1, .pos = LL_POS_LIST, .rows = rows,
                         .n_rows = nr, .fn = ll_vec_fn, .user = &sink};
        if ((st = ll_hooks_add_record(h, &rec))) break;
        ll_batch b = {.n_seq = nb, .seq_off = off, .tokens = ids};
        ll_forward_opts fo = {.hooks = h, .stop_layer = L};
        st = ll_forward(m, &b, &fo);
    }
    ll_hooks_free(h);
    free(ids), free(off), free(rows), free(rp), free(rs);
    return st;
}
