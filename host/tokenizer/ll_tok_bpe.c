/* The models: BPE (by merge rank, which also covers SentencePiece's score rule) and
 * WordLevel, for one pre-token at a time.
 *
 * BPE keeps the symbols of the word in a linked list and the candidate merges in a
 * binary heap ordered by (rank, position of the left symbol): the lowest rank merges
 * first and, among equal ranks, the leftmost, which is the rule of both Hugging Face
 * and SentencePiece. Stale heap entries (a symbol already merged away) are skipped
 * when popped. Words seen recently come from a small cache. */
#include <stdlib.h>
#include <string.h>

#include "ll_tok_internal.h"

typedef struct {
    int32_t id;
    uint32_t start, len;
    int32_t prev, next;
} ll_sym;

typedef struct {
    uint32_t rank, pos;
    int32_t a, b, merged;
} ll_cand;

static inline bool ll_cand_less(const ll_cand *x, const ll_cand *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void ll_heap_push(ll_cand *h, size_t *n, ll_cand c) {
    size_t i = (*n)++;
    h[i] = c;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!ll_cand_less(&h[i], &h[up])) break;
        ll_cand t = h[i];
        h[i] = h[up];
        h[up] = t;
        i = up;
    }
}

static ll_cand ll_heap_pop(ll_cand *h, size_t *n) {
    ll_cand top = h[0];
    h[0] = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && ll_cand_less(&h[l], &h[m])) m = l;
        if (r < *n && ll_cand_less(&h[r], &h[m])) m = r;
        if (m == i) break;
        ll_cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
    return top;
}

ll_status ll_encoding_push(ll_encoding *e, int32_t id, int64_t s, int64_t en) {
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        int32_t *ni = realloc(e->ids, cap * sizeof *ni);
        if (ni) e->ids = ni;
        int64_t *ns = ni ? realloc(e->start, cap * sizeof *ns) : NULL;
        if (ns) e->start = ns;
        int64_t *ne = ns ? realloc(e->end, cap * sizeof *ne) : NULL;
        if (ne) e->end = ne;
        if (!ni || !ns || !ne) return ll_err(LL_ERR_NOMEM, "tokenizer: no memory for %zu tokens", cap);
        e->cap = cap;
    }
    e->ids[e->n] = id;
    e->start[e->n] = s;
    e->end[e->n] = en;
    e->n++;
    return LL_OK;
}

/* The input span of piece bytes [a, b): from the first byte that stands for input
 * to the last one; inserted bytes alone give an empty span where they were put. */
static ll_status ll_emit(const ll_tok_buf *b, size_t off, size_t a, size_t e, int32_t id, ll_encoding *enc) {
    int64_t lo = b->os[off + a], hi = lo;
    size_t i;
    for (i = a; i < e; i++)
        if (b->oe[off + i] > b->os[off + i]) {
            lo = b->os[off + i];
            break;
        }
    if (i < e) {
        for (size_t k = e; k > a; k--)
            if (b->oe[off + k - 1] > b->os[off + k - 1]) {
                hi = b->oe[off + k - 1];
                break;
            }
    }
    return ll_encoding_push(enc, id, lo, hi);
}

static bool ll_cache_get(ll_tokenizer *t, const char *s, size_t n, uint64_t h, ll_tok_cache_slot *out) {
    if (!t->cache || pthread_mutex_trylock(&t->cache_lock)) return false;
    const ll_tok_cache_slot *c = &t->cache[h % LL_TOK_CACHE_SLOTS];
    bool hit = c->ntok && c->hash == h && c->klen == n && !memcmp(c->key, s, n);
    if (hit) *out = *c;
    pthread_mutex_unlock(&t->cache_lock);
    return hit;
}

static void ll_cache_put(ll_tokenizer *t, const char *s, size_t n, uint64_t h, const ll_sym *sym, int32_t first) {
    ll_tok_cache_slot c = {.hash = h, .klen = (uint8_t)n};
    memcpy(c.key, s, n);
    for (int32_t k = first; k >= 0; k = sym[k].next) {
        if (c.ntok == LL_TOK_CACHE_TOKS || sym[k].len > 255) return;
        c.ids[c.ntok] = sym[k].id;
        c.lens[c.ntok] = (uint8_t)sym[k].len;
        c.ntok++;
    }
    if (pthread_mutex_trylock(&t->cache_lock)) return;
    t->cache[h % LL_TOK_CACHE_SLOTS] = c;
    pthread_mutex_unlock(&t->cache_lock);
}

static ll_status ll_bpe(const ll_tokenizer *tc, const ll_tok_buf *b, ll_tok_piece p, ll_encoding *enc) {
    ll_tokenizer *t = (ll_tokenizer *)tc; /* only the locked cache is written */
    const char *s = b->b + p.off;
    size_t n = p.len;
    if (t->ignore_merges) {
        int32_t id = ll_strmap_get(&t->vocab, s, n);
        if (id >= 0) return ll_emit(b, p.off, 0, n, id, enc);
    }
    uint64_t h = 0;
    bool cacheable = t->cache && n <= LL_TOK_CACHE_KEY;
    if (cacheable) {
        h = ll_tok_hash(s, n);
        ll_tok_cache_slot c;
        if (ll_cache_get(t, s, n, h, &c)) {
            size_t at = 0;
            for (int k = 0; k < c.ntok; k++) {
                LL_TRY(ll_emit(b, p.off, at, at + c.lens[k], c.ids[k], enc));
                at += c.lens[k];
            }
            return LL_OK;
        }
    }

    /* At most n - 1 initial candidates plus two per merge: 3n heap entries suffice. */
    /* Initial symbols: bytes (byte-level) or characters, with byte fallback or unk. */
    ll_sym stack_sym[64];
    ll_cand stack_heap[3 * 64 + 1];
    ll_sym *sym = n <= 64 ? stack_sym : malloc(n * sizeof *sym);
    ll_cand *heap = n <= 64 ? stack_heap : malloc((3 * n + 1) * sizeof *heap);
    if (!sym || !heap) {
        if (sym != stack_sym) free(sym);
        if (heap != stack_heap) free(heap);
        return ll_err(LL_ERR_NOMEM, "tokenizer: no memory for a %zu-byte word", n);
    }
    ll_status st = LL_OK;
    int32_t ns = 0;
    char tmp[64];
    for (size_t i = 0; i < n;) {
        size_t l = t->byte_level ? 1 : ll_utf8_len((unsigned char)s[i]);
        if (i + l > n) l = n - i;
        int32_t id;
        if (t->byte_level) {
            id = t->byte_sym[(unsigned char)s[i]];
        } else if (i > 0 && t->cont_prefix_len && t->cont_prefix_len + l <= sizeof tmp) {
            memcpy(tmp, t->cont_prefix, t->cont_prefix_len);
            memcpy(tmp + t->cont_prefix_len, s + i, l);
            id = ll_strmap_get(&t->vocab, tmp, t->cont_prefix_len + l);
        } else {
            id = ll_strmap_get(&t->vocab, s + i, l);
        }
        if (id >= 0) {
            sym[ns] = (ll_sym){id, (uint32_t)i, (uint32_t)l, ns - 1, -1};
            ns++;
        } else if (t->byte_fallback && t->byte_tok[(unsigned char)s[i]] >= 0) {
            bool all = true;
            for (size_t k = 0; k < l; k++) all = all && t->byte_tok[(unsigned char)s[i + k]] >= 0;
            for (size_t k = 0; k < l && all; k++) {
                sym[ns] = (ll_sym){t->byte_tok[(unsigned char)s[i + k]], (uint32_t)(i + k), 1, ns - 1, -1};
                ns++;
            }
            if (!all) goto unk;
        } else {
        unk:
            if (t->unk_id < 0) {
                st = ll_err(LL_ERR_ARG,
                            "%s: the text has a character (\"%.*s\", byte 0x%02x) that is not in the vocabulary, and "
                            "the tokenizer has neither an unk token nor byte fallback",
                            t->name, (int)l, s + i, (unsigned char)s[i]);
                goto out;
            }
            if (t->fuse_unk && ns > 0 && sym[ns - 1].id == t->unk_id) {
                sym[ns - 1].len += (uint32_t)l;
            } else {
                sym[ns] = (ll_sym){t->unk_id, (uint32_t)i, (uint32_t)l, ns - 1, -1};
                ns++;
            }
        }
        i += l;
    }
    for (int32_t k = 0; k + 1 < ns; k++) sym[k].next = k + 1;

    size_t nh = 0;
    for (int32_t k = 0; k + 1 < ns; k++) {
        uint32_t rank;
        int32_t merged;
        if (ll_pairmap_get(&t->merges, sym[k].id, sym[k + 1].id, &rank, &merged))
            ll_heap_push(heap, &nh, (ll_cand){rank, (uint32_t)k, sym[k].id, sym[k + 1].id, merged});
    }
    while (nh) {
        ll_cand c = ll_heap_pop(heap, &nh);
        ll_sym *l = &sym[c.pos];
        if (l->len == 0 || l->id != c.a || l->next < 0) continue;
        ll_sym *r = &sym[l->next];
        if (r->id != c.b) continue;
        l->id = c.merged;
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = (int32_t)c.pos;
        r->len = 0;
        uint32_t rank;
        int32_t merged;
        if (l->prev >= 0 && ll_pairmap_get(&t->merges, sym[l->prev].id, l->id, &rank, &merged))
            ll_heap_push(heap, &nh, (ll_cand){rank, (uint32_t)l->prev, sym[l->prev].id, l->id, merged});
        if (l->next >= 0 && ll_pairmap_get(&t->merges, l->id, sym[l->next].id, &rank, &merged))
            ll_heap_push(heap, &nh, (ll_cand){rank, c.pos, l->id, sym[l->next].id, merged});
    }
    for (int32_t k = ns ? 0 : -1; k >= 0 && st == LL_OK; k = sym[k].next)
        st = ll_emit(b, p.off, sym[k].start, sym[k].start + sym[k].len, sym[k].id, enc);
    if (st == LL_OK && cacheable && ns) ll_cache_put(t, s, n, h, sym, 0);
out:
    if (sym != stack_sym) free(sym);
    if (heap != stack_heap) free(heap);
    return st;
}

ll_status ll_tok_model_encode(const ll_tokenizer *t, const ll_tok_buf *b, ll_tok_piece p, ll_encoding *enc) {
    if (!p.len) return LL_OK;
    if (t->model == LL_TOKM_WORDLEVEL) {
        int32_t id = ll_strmap_get(&t->vocab, b->b + p.off, p.len);
        if (id < 0) id = t->unk_id;
        if (id < 0)
            return ll_err(LL_ERR_ARG, "%s: word \"%.*s\" is not in the vocabulary and there is no unk token", t->name,
                          (int)(p.len > 60 ? 60 : p.len), b->b + p.off);
        return ll_emit(b, p.off, 0, p.len, id, enc);
    }
    if (!t->ws_split) return ll_bpe(t, b, p, enc);
    /* Word by word: cut before every run of the space marker that follows a character. */
    const char *s = b->b + p.off, *m = t->ws_split;
    size_t ml = t->ws_split_len, start = 0;
    for (size_t k = 1; k + ml <= p.len; k++) {
        if (memcmp(s + k, m, ml) || (k >= ml && !memcmp(s + k - ml, m, ml))) continue;
        LL_TRY(ll_bpe(t, b, (ll_tok_piece){p.off + start, k - start}, enc));
        start = k;
    }
    return ll_bpe(t, b, (ll_tok_piece){p.off + start, p.len - start}, enc);
}
