/* GGUF reader: header, metadata, tensor infos, validation, and the llama
 * mapping onto Hugging Face names. See ll_gguf.h for the format outline. */
#include "ll_gguf.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"

/* GGUF is little-endian and values are copied byte for byte into host
 * integers/floats (arrays of f32 scores, i32 token types), so a big-endian
 * host would need byte swaps everywhere. layerlab targets x86-64 and arm64. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ll_gguf.c assumes a little-endian host"
#endif

/* ------------------------------------------------------------------------ */
/* ggml and GGUF type tables                                                 */
/* ------------------------------------------------------------------------ */

/* Block layouts from ggml's block structs: e.g. Q4_K packs 256 weights as
 * d, dmin (2 x f16) + 12 bytes of 6-bit scales + 128 bytes of nibbles = 144.
 * Q8_1 is 36 (two f16 + 32 int8), as ggml's C struct has it; it is an
 * activation format that never appears in model files anyway. */
static const struct {
    const char *name;
    uint32_t blck, bytes;
} ll_ggml_types[LL_GGML_TYPE_COUNT] = {
    [LL_GGML_F32] = {"F32", 1, 4},
    [LL_GGML_F16] = {"F16", 1, 2},
    [LL_GGML_Q4_0] = {"Q4_0", 32, 18},
    [LL_GGML_Q4_1] = {"Q4_1", 32, 20},
    [LL_GGML_Q5_0] = {"Q5_0", 32, 22},
    [LL_GGML_Q5_1] = {"Q5_1", 32, 24},
    [LL_GGML_Q8_0] = {"Q8_0", 32, 34},
    [LL_GGML_Q8_1] = {"Q8_1", 32, 36},
    [LL_GGML_Q2_K] = {"Q2_K", 256, 84},
    [LL_GGML_Q3_K] = {"Q3_K", 256, 110},
    [LL_GGML_Q4_K] = {"Q4_K", 256, 144},
    [LL_GGML_Q5_K] = {"Q5_K", 256, 176},
    [LL_GGML_Q6_K] = {"Q6_K", 256, 210},
    [LL_GGML_Q8_K] = {"Q8_K", 256, 292},
    [LL_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [LL_GGML_IQ2_XS] = {"IQ2_XS", 256, 74},
    [LL_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [LL_GGML_IQ1_S] = {"IQ1_S", 256, 50},
    [LL_GGML_IQ4_NL] = {"IQ4_NL", 32, 18},
    [LL_GGML_IQ3_S] = {"IQ3_S", 256, 110},
    [LL_GGML_IQ2_S] = {"IQ2_S", 256, 82},
    [LL_GGML_IQ4_XS] = {"IQ4_XS", 256, 136},
    [LL_GGML_I8] = {"I8", 1, 1},
    [LL_GGML_I16] = {"I16", 1, 2},
    [LL_GGML_I32] = {"I32", 1, 4},
    [LL_GGML_I64] = {"I64", 1, 8},
    [LL_GGML_F64] = {"F64", 1, 8},
    [LL_GGML_IQ1_M] = {"IQ1_M", 256, 56},
    [LL_GGML_BF16] = {"BF16", 1, 2},
    [LL_GGML_Q4_0_4_4] = {"Q4_0_4_4", 32, 18},
    [LL_GGML_Q4_0_4_8] = {"Q4_0_4_8", 32, 18},
    [LL_GGML_Q4_0_8_8] = {"Q4_0_8_8", 32, 18},
    [LL_GGML_TQ1_0] = {"TQ1_0", 256, 54},
    [LL_GGML_TQ2_0] = {"TQ2_0", 256, 66},
    [LL_GGML_IQ4_NL_4_4] = {"IQ4_NL_4_4", 32, 18},
    [LL_GGML_IQ4_NL_4_8] = {"IQ4_NL_4_8", 32, 18},
    [LL_GGML_IQ4_NL_8_8] = {"IQ4_NL_8_8", 32, 18},
    [LL_GGML_MXFP4] = {"MXFP4", 32, 17},
    [LL_GGML_NVFP4] = {"NVFP4", 64, 36},
    [LL_GGML_Q1_0] = {"Q1_0", 128, 18},
};

const char *ll_ggml_type_name(uint32_t type) { return type < LL_GGML_TYPE_COUNT ? ll_ggml_types[type].name : NULL; }

bool ll_ggml_type_layout(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes) {
    if (type >= LL_GGML_TYPE_COUNT || !ll_ggml_types[type].name) return false;
    if (block_elems) *block_elems = ll_ggml_types[type].blck;
    if (block_bytes) *block_bytes = ll_ggml_types[type].bytes;
    return true;
}

static const char *const ll_gguf_type_names[LL_GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

/* Byte size of a scalar value type; 0 for string and array. */
static const uint8_t ll_gguf_scalar_size[LL_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *ll_gguf_type_name(ll_gguf_type t) { return (unsigned)t < LL_GGUF_TYPE_COUNT ? ll_gguf_type_names[t] : "?"; }

/* ------------------------------------------------------------------------ */
/* In-memory representation                                                  */
/* ------------------------------------------------------------------------ */

/* One metadata entry. Strings and array payloads live in the arena and are
 * referred to by offset because the arena grows (moves) while parsing. */
typedef struct {
    size_t key; /* arena offset of the NUL-terminated key */
    ll_gguf_type type;
    ll_gguf_type elem; /* arrays: element type */
    uint64_t n;        /* strings: byte length; arrays: element count */
    size_t off;        /* strings: arena offset of the bytes (NUL-terminated);
                          numeric arrays: of the elements as stored in the file;
                          string arrays: of n (offset, length) size_t pairs */
    union {
        uint64_t u;
        int64_t i;
        double f;
    } v; /* scalars */
} ll_gguf_kv;

/* Open-addressing hash set of indices, used for duplicate detection and
 * lookup of keys and tensor names; a hostile file may hold ~10^5 of them. */
typedef struct {
    uint32_t *slot; /* index + 1; 0 = empty */
    size_t cap;     /* power of two */
} ll_gguf_index;

struct ll_gguf {
    char *path;
    int version;
    ll_mmap map;               /* set by ll_gguf_open until handed to a tensor set */
    const unsigned char *data; /* the file image; NULL after the hand-over */
    size_t size;
    char *arena;
    size_t arena_len, arena_cap;
    ll_gguf_kv *kv;
    size_t n_kv;
    ll_gguf_tensor *t;
    size_t *t_name; /* arena offsets of tensor names until the arena is final */
    size_t n_t;
    ll_gguf_index kv_index, t_index;
    uint32_t alignment;
    uint64_t data_offset;
};

static const char *ll_gguf_arena_str(const ll_gguf *g, size_t off) { return g->arena + off; }

/* Reserve `n` bytes at the end of the arena; returns their offset. */
static ll_status ll_gguf_arena_reserve(ll_gguf *g, size_t n, size_t *off) {
    if (n > SIZE_MAX - g->arena_len) return ll_err(LL_ERR_NOMEM, "%s: metadata does not fit in memory", g->path);
    size_t need = g->arena_len + n;
    if (need > g->arena_cap) {
        size_t cap = g->arena_cap ? g->arena_cap : 4096;
        while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        char *p = realloc(g->arena, cap);
        if (!p) return ll_err(LL_ERR_NOMEM, "%s: cannot allocate %zu bytes for metadata", g->path, cap);
        g->arena = p;
        g->arena_cap = cap;
    }
    *off = g->arena_len;
    g->arena_len = need;
    return LL_OK;
}

/* FNV-1a: tiny and good enough for a few thousand short ASCII names. */
static uint64_t ll_gguf_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static ll_status ll_gguf_index_init(ll_gguf_index *ix, size_t n, const char *path) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    ix->slot = ll_calloc(cap, sizeof *ix->slot, path);
    if (!ix->slot) return LL_ERR_NOMEM;
    ix->cap = cap;
    return LL_OK;
}

/* Slot of `name` in a key or tensor-name index: the one holding it, or the
 * empty one where it would go. */
static size_t ll_gguf_index_probe(const ll_gguf *g, const ll_gguf_index *ix, const char *name, bool tensors) {
    size_t mask = ix->cap - 1, i = (size_t)ll_gguf_hash(name) & mask;
    for (;;) {
        uint32_t s = ix->slot[i];
        if (!s) return i;
        size_t off = tensors ? g->t_name[s - 1] : g->kv[s - 1].key;
        if (strcmp(ll_gguf_arena_str(g, off), name) == 0) return i;
        i = (i + 1) & mask;
    }
}

/* ------------------------------------------------------------------------ */
/* Bounds-checked reader                                                     */
/* ------------------------------------------------------------------------ */

typedef struct {
    ll_gguf *g;
    const unsigned char *p;
    size_t size, pos;
    char what[200]; /* the item being read, for messages */
} ll_gguf_rd;

static void ll_gguf_what(ll_gguf_rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ll_gguf_what(ll_gguf_rd *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->what, sizeof r->what, fmt, ap);
    va_end(ap);
}

static ll_status ll_gguf_need(ll_gguf_rd *r, uint64_t n) {
    if (n > r->size - r->pos)
        return ll_err(LL_ERR_FORMAT, "%s: truncated: %s needs %llu bytes at offset %zu but the file ends at %zu bytes",
                      r->g->path, r->what, (unsigned long long)n, r->pos, r->size);
    return LL_OK;
}

static uint64_t ll_gguf_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static ll_status ll_gguf_u32(ll_gguf_rd *r, uint32_t *v) {
    LL_TRY(ll_gguf_need(r, 4));
    *v = (uint32_t)ll_gguf_le(r->p + r->pos, 4);
    r->pos += 4;
    return LL_OK;
}

static ll_status ll_gguf_u64(ll_gguf_rd *r, uint64_t *v) {
    LL_TRY(ll_gguf_need(r, 8));
    *v = ll_gguf_le(r->p + r->pos, 8);
    r->pos += 8;
    return LL_OK;
}

/* Counts, string lengths and dims: uint32 in version 1, uint64 later. */
static size_t ll_gguf_count_width(const ll_gguf *g) { return g->version == 1 ? 4 : 8; }

static ll_status ll_gguf_count(ll_gguf_rd *r, uint64_t *v) {
    if (r->g->version == 1) {
        uint32_t u = 0;
        LL_TRY(ll_gguf_u32(r, &u));
        *v = u;
        return LL_OK;
    }
    return ll_gguf_u64(r, v);
}

/* Read a length-prefixed string into the arena (NUL appended). */
static ll_status ll_gguf_string(ll_gguf_rd *r, size_t *off, uint64_t *len) {
    uint64_t n = 0;
    LL_TRY(ll_gguf_count(r, &n));
    LL_TRY(ll_gguf_need(r, n));
    LL_TRY(ll_gguf_arena_reserve(r->g, (size_t)n + 1, off));
    memcpy(r->g->arena + *off, r->p + r->pos, (size_t)n);
    r->g->arena[*off + n] = 0;
    r->pos += (size_t)n;
    *len = n;
    return LL_OK;
}

/* Names (keys, tensor names) are looked up as C strings, so they must be
 * non-empty and free of NUL bytes. */
static ll_status ll_gguf_name(ll_gguf_rd *r, size_t *off, const char *kind, size_t idx) {
    uint64_t len = 0;
    LL_TRY(ll_gguf_string(r, off, &len));
    const char *s = ll_gguf_arena_str(r->g, *off);
    if (len == 0) return ll_err(LL_ERR_FORMAT, "%s: %s %zu has an empty name", r->g->path, kind, idx);
    if (strlen(s) != len)
        return ll_err(LL_ERR_FORMAT, "%s: %s %zu (\"%s...\") has a NUL byte inside its name", r->g->path, kind, idx, s);
    return LL_OK;
}

/* ------------------------------------------------------------------------ */
/* Metadata                                                                  */
/* ------------------------------------------------------------------------ */

static ll_status ll_gguf_value(ll_gguf_rd *r, ll_gguf_kv *e, const char *key) {
    ll_gguf *g = r->g;
    if (e->type == LL_GGUF_STRING) {
        ll_gguf_what(r, "the string value of \"%s\"", key);
        return ll_gguf_string(r, &e->off, &e->n);
    }
    if (e->type != LL_GGUF_ARRAY) {
        int sz = ll_gguf_scalar_size[e->type];
        ll_gguf_what(r, "the %s value of \"%s\"", ll_gguf_type_names[e->type], key);
        LL_TRY(ll_gguf_need(r, (uint64_t)sz));
        uint64_t raw = ll_gguf_le(r->p + r->pos, sz);
        r->pos += (size_t)sz;
        switch (e->type) {
        case LL_GGUF_I8: e->v.i = (int8_t)raw; break;
        case LL_GGUF_I16: e->v.i = (int16_t)raw; break;
        case LL_GGUF_I32: e->v.i = (int32_t)raw; break;
        case LL_GGUF_I64: e->v.i = (int64_t)raw; break;
        case LL_GGUF_F32: {
            uint32_t b = (uint32_t)raw;
            float f;
            memcpy(&f, &b, 4);
            e->v.f = f;
            break;
        }
        case LL_GGUF_F64: memcpy(&e->v.f, &raw, 8); break;
        case LL_GGUF_BOOL:
            if (raw > 1)
                return ll_err(LL_ERR_FORMAT, "%s: key \"%s\": bool value must be 0 or 1, found %llu", g->path, key,
                              (unsigned long long)raw);
            e->v.u = raw;
            break;
        default: e->v.u = raw; break;
        }
        return LL_OK;
    }

    uint32_t et = 0;
    ll_gguf_what(r, "the element type of array \"%s\"", key);
    LL_TRY(ll_gguf_u32(r, &et));
    if (et >= LL_GGUF_TYPE_COUNT)
        return ll_err(LL_ERR_FORMAT, "%s: key \"%s\": unknown array element type %u (expected 0..%d)", g->path, key, et,
                      LL_GGUF_TYPE_COUNT - 1);
    if (et == LL_GGUF_ARRAY)
        return ll_err(LL_ERR_UNSUPPORTED, "%s: key \"%s\": arrays of arrays are not supported", g->path, key);
    e->elem = (ll_gguf_type)et;
    ll_gguf_what(r, "the length of array \"%s\"", key);
    LL_TRY(ll_gguf_count(r, &e->n));
    size_t remain = r->size - r->pos;

    if (e->elem == LL_GGUF_STRING) {
        /* Each string costs at least its length prefix, which bounds n (and
         * so the index allocation) by the file size before allocating. */
        size_t cw = ll_gguf_count_width(g);
        if (e->n > remain / cw)
            return ll_err(LL_ERR_FORMAT,
                          "%s: key \"%s\": array of %llu strings cannot fit in the %zu bytes left in the file", g->path,
                          key, (unsigned long long)e->n, remain);
        size_t n = (size_t)e->n, index_bytes;
        if (ll_mul_size(n, 2 * sizeof(size_t), &index_bytes))
            return ll_err(LL_ERR_NOMEM, "%s: key \"%s\": %zu strings do not fit in memory", g->path, key, n);
        LL_TRY(ll_gguf_arena_reserve(g, index_bytes, &e->off));
        for (size_t i = 0; i < n; i++) {
            size_t soff = 0;
            uint64_t slen = 0;
            ll_gguf_what(r, "string %zu of array \"%s\"", i, key);
            LL_TRY(ll_gguf_string(r, &soff, &slen));
            size_t pair[2] = {soff, (size_t)slen};
            memcpy(g->arena + e->off + i * sizeof pair, pair, sizeof pair);
        }
        return LL_OK;
    }

    size_t esz = ll_gguf_scalar_size[e->elem];
    if (e->n > remain / esz)
        return ll_err(
            LL_ERR_FORMAT,
            "%s: key \"%s\": array of %llu %s values (%zu bytes each) cannot fit in the %zu bytes left in the file",
            g->path, key, (unsigned long long)e->n, ll_gguf_type_names[e->elem], esz, remain);
    size_t bytes = (size_t)e->n * esz;
    LL_TRY(ll_gguf_arena_reserve(g, bytes, &e->off));
    memcpy(g->arena + e->off, r->p + r->pos, bytes);
    r->pos += bytes;
    return LL_OK;
}

static ll_status ll_gguf_read_kvs(ll_gguf_rd *r, uint64_t n_kv) {
    ll_gguf *g = r->g;
    /* Smallest entry: key length prefix + 1 key byte + type + a 1-byte value. */
    size_t min_entry = ll_gguf_count_width(g) + 1 + 4 + 1;
    size_t remain = r->size - r->pos;
    if (n_kv > remain / min_entry || n_kv >= UINT32_MAX)
        return ll_err(LL_ERR_FORMAT,
                      "%s: header claims %llu metadata entries but only %zu bytes follow (each needs at least %zu)",
                      g->path, (unsigned long long)n_kv, remain, min_entry);
    g->kv = ll_calloc((size_t)n_kv, sizeof *g->kv, g->path);
    if (!g->kv) return LL_ERR_NOMEM;
    LL_TRY(ll_gguf_index_init(&g->kv_index, (size_t)n_kv, g->path));

    for (size_t i = 0; i < (size_t)n_kv; i++) {
        ll_gguf_kv *e = &g->kv[i];
        ll_gguf_what(r, "the key of metadata entry %zu", i);
        LL_TRY(ll_gguf_name(r, &e->key, "metadata entry", i));
        g->n_kv = i + 1; /* the key is now readable by the index */
        const char *key = ll_gguf_arena_str(g, e->key);
        size_t slot = ll_gguf_index_probe(g, &g->kv_index, key, false);
        if (g->kv_index.slot[slot])
            return ll_err(LL_ERR_FORMAT, "%s: metadata key \"%s\" appears twice (entries %u and %zu)", g->path, key,
                          g->kv_index.slot[slot] - 1, i);
        g->kv_index.slot[slot] = (uint32_t)(i + 1);

        uint32_t type = 0;
        ll_gguf_what(r, "the value type of \"%s\"", key);
        LL_TRY(ll_gguf_u32(r, &type));
        if (type >= LL_GGUF_TYPE_COUNT)
            return ll_err(LL_ERR_FORMAT, "%s: key \"%s\": unknown value type %u (expected 0..%d)", g->path, key, type,
                          LL_GGUF_TYPE_COUNT - 1);
        e->type = (ll_gguf_type)type;
        /* `key` may move when the value grows the arena: pass a fresh pointer. */
        char kbuf[96];
        snprintf(kbuf, sizeof kbuf, "%s", key);
        LL_TRY(ll_gguf_value(r, e, kbuf));
    }
    return LL_OK;
}

/* ------------------------------------------------------------------------ */
/* Tensor infos and the data section                                         */
/* ------------------------------------------------------------------------ */

static ll_status ll_gguf_read_tensor_infos(ll_gguf_rd *r, uint64_t n_t) {
    ll_gguf *g = r->g;
    size_t cw = ll_gguf_count_width(g);
    /* Smallest info: name prefix + 1 byte + n_dims + one dim + type + offset. */
    size_t min_info = cw + 1 + 4 + cw + 4 + 8;
    size_t remain = r->size - r->pos;
    if (n_t > remain / min_info || n_t >= UINT32_MAX)
        return ll_err(LL_ERR_FORMAT,
                      "%s: header claims %llu tensors but only %zu bytes follow (each tensor info needs at least %zu)",
                      g->path, (unsigned long long)n_t, remain, min_info);
    size_t n = (size_t)n_t;
    g->t = ll_calloc(n, sizeof *g->t, g->path);
    g->t_name = ll_calloc(n, sizeof *g->t_name, g->path);
    if (!g->t || !g->t_name) return LL_ERR_NOMEM;
    LL_TRY(ll_gguf_index_init(&g->t_index, n, g->path));

    for (size_t i = 0; i < n; i++) {
        ll_gguf_tensor *t = &g->t[i];
        ll_gguf_what(r, "the name of tensor info %zu", i);
        LL_TRY(ll_gguf_name(r, &g->t_name[i], "tensor", i));
        g->n_t = i + 1;
        char name[128];
        snprintf(name, sizeof name, "%s", ll_gguf_arena_str(g, g->t_name[i]));
        size_t slot = ll_gguf_index_probe(g, &g->t_index, ll_gguf_arena_str(g, g->t_name[i]), true);
        if (g->t_index.slot[slot])
            return ll_err(LL_ERR_FORMAT, "%s: tensor \"%s\" appears twice (tensor infos %u and %zu)", g->path, name,
                          g->t_index.slot[slot] - 1, i);
        g->t_index.slot[slot] = (uint32_t)(i + 1);

        ll_gguf_what(r, "n_dims of tensor \"%s\"", name);
        LL_TRY(ll_gguf_u32(r, &t->n_dims));
        if (t->n_dims < 1 || t->n_dims > LL_GGUF_MAX_DIMS)
            return ll_err(LL_ERR_FORMAT, "%s: tensor \"%s\": n_dims is %u, expected 1 to %d", g->path, name, t->n_dims,
                          LL_GGUF_MAX_DIMS);
        uint64_t numel = 1;
        for (int d = 0; d < LL_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            ll_gguf_what(r, "ne[%u] of tensor \"%s\"", d, name);
            LL_TRY(ll_gguf_count(r, &t->ne[d]));
            if (t->ne[d] > (uint64_t)INT64_MAX || (t->ne[d] && numel > (uint64_t)INT64_MAX / t->ne[d]))
                return ll_err(LL_ERR_FORMAT, "%s: tensor \"%s\": ne[%u] = %llu makes the element count overflow",
                              g->path, name, d, (unsigned long long)t->ne[d]);
            numel *= t->ne[d];
        }
        ll_gguf_what(r, "the type of tensor \"%s\"", name);
        LL_TRY(ll_gguf_u32(r, &t->type));
        uint32_t blck = 0, bytes = 0;
        if (!ll_ggml_type_layout(t->type, &blck, &bytes))
            return ll_err(LL_ERR_FORMAT, "%s: tensor \"%s\": unknown ggml type id %u", g->path, name, t->type);
        if (t->ne[0] % blck)
            return ll_err(LL_ERR_FORMAT, "%s: tensor \"%s\": ne[0] = %llu is not a multiple of the %s block size %u",
                          g->path, name, (unsigned long long)t->ne[0], ll_ggml_types[t->type].name, blck);
        /* numel < 2^63, yet 8 bytes per element (F64, I64) can still pass 2^64. */
        uint64_t blocks = numel / blck;
        if (blocks > UINT64_MAX / bytes)
            return ll_err(LL_ERR_FORMAT, "%s: tensor \"%s\": byte size overflows", g->path, name);
        t->nbytes = blocks * bytes;
        ll_gguf_what(r, "the data offset of tensor \"%s\"", name);
        LL_TRY(ll_gguf_u64(r, &t->offset));
    }
    return LL_OK;
}

/* A tensor's byte range in the data section, for the overlap check. */
typedef struct {
    uint64_t off, end;
    size_t idx;
} ll_gguf_span;

static int ll_gguf_span_cmp(const void *a, const void *b) {
    const ll_gguf_span *x = a, *y = b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static ll_status ll_gguf_check_data(ll_gguf *g, size_t infos_end) {
    /* The data section starts at the end of the tensor infos rounded up to the
     * alignment. Version 1 files pad the same way: the v1 stories260K file's
     * infos end at 11450 and its data starts at 11456. */
    uint64_t a = g->alignment;
    uint64_t start = ((uint64_t)infos_end + a - 1) / a * a;
    g->data_offset = start;
    if (g->n_t == 0) return LL_OK;
    if (start > g->size)
        return ll_err(LL_ERR_FORMAT,
                      "%s: truncated: the data section should start at offset %llu (tensor infos end at %zu, "
                      "alignment %u) but the file ends at %zu bytes",
                      g->path, (unsigned long long)start, infos_end, g->alignment, g->size);
    uint64_t avail = g->size - start;
    for (size_t i = 0; i < g->n_t; i++) {
        const ll_gguf_tensor *t = &g->t[i];
        if (t->offset % a)
            return ll_err(LL_ERR_FORMAT, "%s: tensor \"%s\": offset %llu is not a multiple of the alignment %u",
                          g->path, t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return ll_err(LL_ERR_FORMAT,
                          "%s: tensor \"%s\": %llu bytes at offset %llu of the data section run past the end of "
                          "the file (the data section starts at file offset %llu and holds %llu bytes)",
                          g->path, t->name, (unsigned long long)t->nbytes, (unsigned long long)t->offset,
                          (unsigned long long)start, (unsigned long long)avail);
    }
    /* Sort the non-empty ranges by offset; with each range inside the data
     * section, any overlap shows up between neighbours once we track the
     * furthest end seen so far (a long tensor can cover several short ones). */
    ll_gguf_span *sp = ll_calloc(g->n_t, sizeof *sp, g->path);
    if (!sp) return LL_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < g->n_t; i++)
        if (g->t[i].nbytes) sp[n++] = (ll_gguf_span){g->t[i].offset, g->t[i].offset + g->t[i].nbytes, i};
    qsort(sp, n, sizeof *sp, ll_gguf_span_cmp);
    ll_status st = LL_OK;
    size_t far = 0; /* index in sp of the range reaching furthest so far */
    for (size_t k = 1; k < n; k++) {
        if (sp[far].end > sp[k].off) {
            const ll_gguf_tensor *a = &g->t[sp[far].idx], *b = &g->t[sp[k].idx];
            st = ll_err(LL_ERR_FORMAT,
                        "%s: tensors \"%s\" (bytes [%llu, %llu) of the data section) and \"%s\" (bytes [%llu, "
                        "%llu)) overlap",
                        g->path, a->name, (unsigned long long)sp[far].off, (unsigned long long)sp[far].end, b->name,
                        (unsigned long long)sp[k].off, (unsigned long long)sp[k].end);
            break;
        }
        if (sp[k].end > sp[far].end) far = k;
    }
    free(sp);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Parse / open / free                                                       */
/* ------------------------------------------------------------------------ */

static ll_status ll_gguf_parse_into(ll_gguf *g) {
    ll_gguf_rd r = {.g = g, .p = g->data, .size = g->size, .pos = 0};
    ll_gguf_what(&r, "the magic");
    LL_TRY(ll_gguf_need(&r, 4));
    if (memcmp(g->data, "GGUF", 4) != 0) {
        char shown[20];
        int k = 0;
        for (int i = 0; i < 4; i++) {
            unsigned c = g->data[i];
            k += snprintf(shown + k, sizeof shown - (size_t)k, c >= 32 && c < 127 ? "%c" : "\\x%02x", c);
        }
        return ll_err(LL_ERR_FORMAT, "%s: not a GGUF file: magic is \"%s\", expected \"GGUF\"", g->path, shown);
    }
    r.pos = 4;
    uint32_t version = 0;
    ll_gguf_what(&r, "the version");
    LL_TRY(ll_gguf_u32(&r, &version));
    if (version < 1 || version > 3) {
        /* A big-endian GGUF (written for s390x) shows its version byte-swapped. */
        if (version == 0x01000000u || version == 0x02000000u || version == 0x03000000u)
            return ll_err(LL_ERR_UNSUPPORTED,
                          "%s: this GGUF file is big-endian (version field 0x%08x); layerlab reads little-endian files",
                          g->path, version);
        return ll_err(LL_ERR_UNSUPPORTED, "%s: unsupported GGUF version %u (layerlab reads versions 1, 2 and 3)",
                      g->path, version);
    }
    g->version = (int)version;

    uint64_t n_t = 0, n_kv = 0;
    ll_gguf_what(&r, "the tensor count");
    LL_TRY(ll_gguf_count(&r, &n_t));
    ll_gguf_what(&r, "the metadata count");
    LL_TRY(ll_gguf_count(&r, &n_kv));
    LL_TRY(ll_gguf_read_kvs(&r, n_kv));

    g->alignment = LL_GGUF_DEFAULT_ALIGNMENT;
    if (ll_gguf_find_key(g, "general.alignment") >= 0) {
        LL_TRY(ll_gguf_get_u32(g, "general.alignment", &g->alignment));
        if (g->alignment == 0 || (g->alignment & (g->alignment - 1)))
            return ll_err(LL_ERR_FORMAT, "%s: key \"general.alignment\": expected a power of two, found %u", g->path,
                          g->alignment);
    }

    LL_TRY(ll_gguf_read_tensor_infos(&r, n_t));
    /* The arena is final now: give tensors their name pointers. */
    for (size_t i = 0; i < g->n_t; i++) g->t[i].name = ll_gguf_arena_str(g, g->t_name[i]);
    return ll_gguf_check_data(g, r.pos);
}

ll_status ll_gguf_parse(ll_gguf **out, const unsigned char *data, size_t size, const char *path) {
    if (!out) return ll_err(LL_ERR_ARG, "ll_gguf_parse: out is NULL");
    *out = NULL;
    if (!data && size) return ll_err(LL_ERR_ARG, "ll_gguf_parse: data is NULL");
    ll_gguf *g = ll_calloc(1, sizeof *g, "ll_gguf");
    if (!g) return LL_ERR_NOMEM;
    g->path = ll_strdup(path ? path : "(memory)");
    if (!g->path) {
        free(g);
        return LL_ERR_NOMEM;
    }
    g->data = data;
    g->size = size;
    ll_status st = ll_gguf_parse_into(g);
    if (st != LL_OK) {
        ll_gguf_free(g);
        return st;
    }
    *out = g;
    return LL_OK;
}

ll_status ll_gguf_open(ll_gguf **out, const char *path) {
    if (!out || !path) return ll_err(LL_ERR_ARG, "ll_gguf_open: NULL argument");
    *out = NULL;
    ll_mmap m;
    LL_TRY(ll_mmap_open(&m, path));
    ll_gguf *g;
    ll_status st = ll_gguf_parse(&g, m.data, m.size, path);
    if (st != LL_OK) {
        ll_mmap_close(&m);
        return st;
    }
    g->map = m;
    *out = g;
    return LL_OK;
}

void ll_gguf_free(ll_gguf *g) {
    if (!g) return;
    ll_mmap_close(&g->map);
    free(g->path);
    free(g->arena);
    free(g->kv);
    free(g->t);
    free(g->t_name);
    free(g->kv_index.slot);
    free(g->t_index.slot);
    free(g);
}

int ll_gguf_version(const ll_gguf *g) { return g->version; }
const char *ll_gguf_path(const ll_gguf *g) { return g->path; }
uint32_t ll_gguf_alignment(const ll_gguf *g) { return g->alignment; }
uint64_t ll_gguf_data_offset(const ll_gguf *g) { return g->data_offset; }

/* ------------------------------------------------------------------------ */
/* Metadata access                                                           */
/* ------------------------------------------------------------------------ */

size_t ll_gguf_n_kv(const ll_gguf *g) { return g->n_kv; }

const char *ll_gguf_kv_key(const ll_gguf *g, size_t i) {
    return i < g->n_kv ? ll_gguf_arena_str(g, g->kv[i].key) : NULL;
}

ll_gguf_type ll_gguf_kv_type(const ll_gguf *g, size_t i) { return i < g->n_kv ? g->kv[i].type : LL_GGUF_TYPE_COUNT; }

long ll_gguf_find_key(const ll_gguf *g, const char *key) {
    if (!g->kv_index.cap || !key) return -1;
    uint32_t s = g->kv_index.slot[ll_gguf_index_probe(g, &g->kv_index, key, false)];
    return s ? (long)s - 1 : -1;
}

static ll_status ll_gguf_lookup(const ll_gguf *g, const char *key, const ll_gguf_kv **e) {
    long i = ll_gguf_find_key(g, key);
    if (i < 0) return ll_err(LL_ERR_MISSING, "%s: metadata key \"%s\" is missing", g->path, key);
    *e = &g->kv[i];
    return LL_OK;
}

static ll_status ll_gguf_wrong_type(const ll_gguf *g, const char *key, const ll_gguf_kv *e, const char *want) {
    if (e->type == LL_GGUF_ARRAY)
        return ll_err(LL_ERR_FORMAT, "%s: key \"%s\": expected %s, found an array of %s", g->path, key, want,
                      ll_gguf_type_names[e->elem]);
    return ll_err(LL_ERR_FORMAT, "%s: key \"%s\": expected %s, found %s", g->path, key, want,
                  ll_gguf_type_names[e->type]);
}

static bool ll_gguf_is_int(ll_gguf_type t) { return t <= LL_GGUF_I32 || t == LL_GGUF_U64 || t == LL_GGUF_I64; }
static bool ll_gguf_is_signed(ll_gguf_type t) {
    return t == LL_GGUF_I8 || t == LL_GGUF_I16 || t == LL_GGUF_I32 || t == LL_GGUF_I64;
}

/* Any integer value, checked against [lo, hi]. */
static ll_status ll_gguf_int(const ll_gguf *g, const char *key, int64_t lo, uint64_t hi, const char *want,
                             int64_t *s_out, uint64_t *u_out) {
    const ll_gguf_kv *e = NULL;
    LL_TRY(ll_gguf_lookup(g, key, &e));
    if (e->type == LL_GGUF_ARRAY || !ll_gguf_is_int(e->type)) return ll_gguf_wrong_type(g, key, e, want);
    if (ll_gguf_is_signed(e->type) && e->v.i < 0) {
        if (e->v.i < lo)
            return ll_err(LL_ERR_FORMAT, "%s: key \"%s\": expected %s, found %lld", g->path, key, want,
                          (long long)e->v.i);
        *s_out = e->v.i;
        *u_out = 0;
        return LL_OK;
    }
    if (e->v.u > hi)
        return ll_err(LL_ERR_FORMAT, "%s: key \"%s\": expected %s, found %llu", g->path, key, want,
                      (unsigned long long)e->v.u);
    *u_out = e->v.u;
    *s_out = (int64_t)(e->v.u > (uint64_t)INT64_MAX ? INT64_MAX : e->v.u);
    return LL_OK;
}

ll_status ll_gguf_get_u32(const ll_gguf *g, const char *key, uint32_t *out) {
    int64_t s = 0;
    uint64_t u = 0;
    LL_TRY(ll_gguf_int(g, key, 0, UINT32_MAX, "an unsigned 32-bit integer", &s, &u));
    *out = (uint32_t)u;
    return LL_OK;
}

ll_status ll_gguf_get_i32(const ll_gguf *g, const char *key, int32_t *out) {
    int64_t s = 0;
    uint64_t u = 0;
    LL_TRY(ll_gguf_int(g, key, INT32_MIN, INT32_MAX, "a signed 32-bit integer", &s, &u));
    *out = (int32_t)s;
    return LL_OK;
}

ll_status ll_gguf_get_u64(const ll_gguf *g, const char *key, uint64_t *out) {
    int64_t s = 0;
    uint64_t u = 0;
    LL_TRY(ll_gguf_int(g, key, 0, UINT64_MAX, "an unsigned integer", &s, &u));
    *out = u;
    return LL_OK;
}

ll_status ll_gguf_get_f32(const ll_gguf *g, const char *key, float *out) {
    const ll_gguf_kv *e = NULL;
    LL_TRY(ll_gguf_lookup(g, key, &e));
    if (e->type != LL_GGUF_F32 && e->type != LL_GGUF_F64) return ll_gguf_wrong_type(g, key, e, "f32");
    *out = (float)e->v.f;
    return LL_OK;
}

ll_status ll_gguf_get_bool(const ll_gguf *g, const char *key, bool *out) {
    const ll_gguf_kv *e = NULL;
    LL_TRY(ll_gguf_lookup(g, key, &e));
    if (e->type != LL_GGUF_BOOL) return ll_gguf_wrong_type(g, key, e, "bool");
    *out = e->v.u != 0;
    return LL_OK;
}

ll_status ll_gguf_get_str(const ll_gguf *g, const char *key, const char **s, size_t *len) {
    const ll_gguf_kv *e = NULL;
    LL_TRY(ll_gguf_lookup(g, key, &e));
    if (e->type != LL_GGUF_STRING) return ll_gguf_wrong_type(g, key, e, "string");
    *s = ll_gguf_arena_str(g, e->off);
    if (len) *len = (size_t)e->n;
    return LL_OK;
}

ll_status ll_gguf_get_arr(const ll_gguf *g, const char *key, ll_gguf_type *elem_type, size_t *n) {
    const ll_gguf_kv *e = NULL;
    LL_TRY(ll_gguf_lookup(g, key, &e));
    if (e->type != LL_GGUF_ARRAY)
        return ll_err(LL_ERR_FORMAT, "%s: key \"%s\": expected an array, found %s", g->path, key,
                      ll_gguf_type_names[e->type]);
    if (elem_type) *elem_type = e->elem;
    if (n) *n = (size_t)e->n;
    return LL_OK;
}

/* Element `i` of array `key`, whose element type must be accepted by `ok`. */
static ll_status ll_gguf_elem(const ll_gguf *g, const char *key, size_t i, bool (*ok)(ll_gguf_type), const char *want,
                              const ll_gguf_kv **e) {
    LL_TRY(ll_gguf_lookup(g, key, e));
    if ((*e)->type != LL_GGUF_ARRAY || !ok((*e)->elem)) {
        if ((*e)->type != LL_GGUF_ARRAY)
            return ll_err(LL_ERR_FORMAT, "%s: key \"%s\": expected an array of %s, found %s", g->path, key, want,
                          ll_gguf_type_names[(*e)->type]);
        return ll_err(LL_ERR_FORMAT, "%s: key \"%s\": expected an array of %s, found an array of %s", g->path, key,
                      want, ll_gguf_type_names[(*e)->elem]);
    }
    if (i >= (*e)->n)
        return ll_err(LL_ERR_ARG, "%s: key \"%s\": index %zu is out of range (the array has %llu elements)", g->path,
                      key, i, (unsigned long long)(*e)->n);
    return LL_OK;
}

static bool ll_gguf_is_string(ll_gguf_type t) { return t == LL_GGUF_STRING; }
static bool ll_gguf_is_float(ll_gguf_type t) { return t == LL_GGUF_F32 || t == LL_GGUF_F64; }

ll_status ll_gguf_arr_str(const ll_gguf *g, const char *key, size_t i, const char **s, size_t *len) {
    const ll_gguf_kv *e = NULL;
    LL_TRY(ll_gguf_elem(g, key, i, ll_gguf_is_string, "strings", &e));
    size_t pair[2];
    memcpy(pair, g->arena + e->off + i * sizeof pair, sizeof pair);
    *s = ll_gguf_arena_str(g, pair[0]);
    if (len) *len = pair[1];
    return LL_OK;
}

ll_status ll_gguf_arr_f32(const ll_gguf *g, const char *key, size_t i, float *out) {
    const ll_gguf_kv *e = NULL;
    LL_TRY(ll_gguf_elem(g, key, i, ll_gguf_is_float, "floats", &e));
    if (e->elem == LL_GGUF_F32) {
        memcpy(out, g->arena + e->off + i * 4, 4);
    } else {
        double d;
        memcpy(&d, g->arena + e->off + i * 8, 8);
        *out = (float)d;
    }
    return LL_OK;
}

ll_status ll_gguf_arr_i32(const ll_gguf *g, const char *key, size_t i, int32_t *out) {
    const ll_gguf_kv *e = NULL;
    LL_TRY(ll_gguf_elem(g, key, i, ll_gguf_is_int, "integers", &e));
    int sz = ll_gguf_scalar_size[e->elem];
    uint64_t raw = ll_gguf_le((const unsigned char *)g->arena + e->off + i * (size_t)sz, sz);
    int64_t v;
    if (ll_gguf_is_signed(e->elem)) {
        int sh = 64 - 8 * sz; /* sign-extend the stored width */
        v = (int64_t)(raw << sh) >> sh;
    } else {
        v = raw > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)raw;
    }
    if (v < INT32_MIN || v > INT32_MAX)
        return ll_err(LL_ERR_FORMAT, "%s: key \"%s\": element %zu is %lld, outside the 32-bit range", g->path, key, i,
                      (long long)v);
    *out = (int32_t)v;
    return LL_OK;
}

/* ------------------------------------------------------------------------ */
/* Tensor access                                                             */
/* ------------------------------------------------------------------------ */

size_t ll_gguf_n_tensors(const ll_gguf *g) { return g->n_t; }

const ll_gguf_tensor *ll_gguf_tensor_at(const ll_gguf *g, size_t i) { return i < g->n_t ? &g->t[i] : NULL; }

const ll_gguf_tensor *ll_gguf_find_tensor(const ll_gguf *g, const char *name) {
    if (!g->t_index.cap || !name) return NULL;
    uint32_t s = g->t_index.slot[ll_gguf_index_probe(g, &g->t_index, name, true)];
    return s ? &g->t[s - 1] : NULL;
}

const void *ll_gguf_tensor_data(const ll_gguf *g, const ll_gguf_tensor *t) {
    if (!g->data || !t) return NULL;
    return g->data + g->data_offset + t->offset;
}

/* ------------------------------------------------------------------------ */
/* llama: names                                                              */
/* ------------------------------------------------------------------------ */

static const struct {
    const char *gguf, *hf;
} ll_gguf_global_names[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

/* Per-block names without the ".weight"/".bias" suffix, which carries over. */
static const struct {
    const char *gguf, *hf;
} ll_gguf_block_names[] = {
    {"attn_norm", "input_layernorm"}, {"attn_q", "self_attn.q_proj"},      {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},   {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},    {"ffn_up", "mlp.up_proj"},           {"ffn_down", "mlp.down_proj"},
};

static int ll_gguf_put(char *out, size_t cap, const char *s) {
    size_t n = strlen(s);
    if (n + 1 > cap) return -1;
    memcpy(out, s, n + 1);
    return 0;
}

int ll_gguf_hf_name(const char *name, char *out, size_t cap) {
    if (!name || !out || cap == 0) return -1;
    for (size_t i = 0; i < sizeof ll_gguf_global_names / sizeof ll_gguf_global_names[0]; i++)
        if (strcmp(name, ll_gguf_global_names[i].gguf) == 0)
            return ll_gguf_put(out, cap, ll_gguf_global_names[i].hf) ? -1 : 1;

    /* "blk.<N>.<part>.<weight|bias>", N canonical decimal (no sign, no leading
     * zeros) so two GGUF names can never map to one HF name. */
    if (strncmp(name, "blk.", 4) == 0) {
        const char *p = name + 4, *q = p;
        while (*q >= '0' && *q <= '9') q++;
        size_t nd = (size_t)(q - p);
        if (nd >= 1 && nd <= 9 && !(nd > 1 && *p == '0') && *q == '.') {
            const char *part = q + 1;
            const char *dot = strrchr(part, '.');
            if (dot && (strcmp(dot, ".weight") == 0 || strcmp(dot, ".bias") == 0)) {
                size_t plen = (size_t)(dot - part);
                for (size_t i = 0; i < sizeof ll_gguf_block_names / sizeof ll_gguf_block_names[0]; i++) {
                    if (strlen(ll_gguf_block_names[i].gguf) != plen ||
                        strncmp(part, ll_gguf_block_names[i].gguf, plen) != 0)
                        continue;
                    int n = snprintf(out, cap, "model.layers.%.*s.%s%s", (int)nd, p, ll_gguf_block_names[i].hf, dot);
                    return n < 0 || (size_t)n >= cap ? -1 : 1;
                }
            }
        }
    }
    return ll_gguf_put(out, cap, name) ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* llama: config                                                             */
/* ------------------------------------------------------------------------ */

/* A required positive count that must fit an int. */
static ll_status ll_gguf_req_int(const ll_gguf *g, const char *key, int *out) {
    uint32_t v = 0;
    LL_TRY(ll_gguf_get_u32(g, key, &v));
    if (v == 0 || v > INT_MAX)
        return ll_err(LL_ERR_FORMAT, "%s: key \"%s\": expected a positive count, found %u", g->path, key, v);
    *out = (int)v;
    return LL_OK;
}

static ll_status ll_gguf_opt_int(const ll_gguf *g, const char *key, int dflt, int *out) {
    if (ll_gguf_find_key(g, key) < 0) {
        *out = dflt;
        return LL_OK;
    }
    return ll_gguf_req_int(g, key, out);
}

static ll_status ll_gguf_token_id(const ll_gguf *g, const char *key, int *out) {
    *out = -1;
    if (ll_gguf_find_key(g, key) < 0) return LL_OK;
    uint32_t v = 0;
    LL_TRY(ll_gguf_get_u32(g, key, &v));
    if (v > INT_MAX) return ll_err(LL_ERR_FORMAT, "%s: key \"%s\": token id %u is out of range", g->path, key, v);
    *out = (int)v;
    return LL_OK;
}

ll_status ll_gguf_model_config(const ll_gguf *g, ll_config *out) {
    const char *arch = NULL;
    size_t arch_len = 0;
    LL_TRY(ll_gguf_get_str(g, "general.architecture", &arch, &arch_len));
    if (strcmp(arch, "llama") != 0 || arch_len != 5)
        return ll_err(LL_ERR_UNSUPPORTED,
                      "%s: general.architecture is \"%.64s\"; layerlab reads GGUF files of architecture \"llama\"",
                      g->path, arch);

    ll_config c;
    memset(&c, 0, sizeof c);
    c.arch = LL_ARCH_LLAMA;
    c.format = LL_FMT_GGUF;
    snprintf(c.arch_name, sizeof c.arch_name, "%s", arch);
    c.norm = LL_NORM_RMS;
    c.mlp = LL_MLP_SWIGLU;
    /* llama.cpp's converters permute Hugging Face q/k weights into Meta's
     * interleaved-pair layout (and Meta/llama2.c checkpoints already are),
     * so GGUF llama weights are always for interleaved RoPE. They are used as
     * stored, never permuted back. The v1 stories260K file even says so:
     * llama.tensor_data_layout = "Meta AI original pth". */
    c.rope_layout = LL_ROPE_INTERLEAVED;
    c.rope_scaling = LL_ROPE_SCALING_NONE;
    c.rope_factor = 1.0f;

    LL_TRY(ll_gguf_req_int(g, "llama.embedding_length", &c.d_model));
    LL_TRY(ll_gguf_req_int(g, "llama.block_count", &c.n_layers));
    LL_TRY(ll_gguf_req_int(g, "llama.attention.head_count", &c.n_heads));
    LL_TRY(ll_gguf_opt_int(g, "llama.attention.head_count_kv", c.n_heads, &c.n_kv_heads));
    LL_TRY(ll_gguf_req_int(g, "llama.feed_forward_length", &c.d_ff));
    LL_TRY(ll_gguf_req_int(g, "llama.context_length", &c.max_pos));
    LL_TRY(ll_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &c.norm_eps));
    if (!(c.norm_eps > 0.0f) || !isfinite(c.norm_eps))
        return ll_err(LL_ERR_FORMAT,
                      "%s: key \"llama.attention.layer_norm_rms_epsilon\": expected a positive number, found %g",
                      g->path, (double)c.norm_eps);
    /* Optional keys take llama.cpp's defaults; neither real test file has
     * llama.rope.freq_base or general.alignment, and older writers also omit
     * head_count_kv (no GQA) and rope.dimension_count (= head size). */
    c.rope_theta = 10000.0f;
    if (ll_gguf_find_key(g, "llama.rope.freq_base") >= 0) {
        LL_TRY(ll_gguf_get_f32(g, "llama.rope.freq_base", &c.rope_theta));
        if (!(c.rope_theta > 0.0f) || !isfinite(c.rope_theta))
            return ll_err(LL_ERR_FORMAT, "%s: key \"llama.rope.freq_base\": expected a positive number, found %g",
                          g->path, (double)c.rope_theta);
    }

    if (c.n_heads % c.n_kv_heads)
        return ll_err(LL_ERR_FORMAT,
                      "%s: llama.attention.head_count (%d) is not a multiple of llama.attention.head_count_kv (%d)",
                      g->path, c.n_heads, c.n_kv_heads);
    /* Head size: key_length when given (models whose heads do not tile the
     * embedding), else embedding_length / head_count. */
    if (ll_gguf_find_key(g, "llama.attention.key_length") >= 0) {
        LL_TRY(ll_gguf_req_int(g, "llama.attention.key_length", &c.head_dim));
        int vlen = 0;
        LL_TRY(ll_gguf_opt_int(g, "llama.attention.value_length", c.head_dim, &vlen));
        if (vlen != c.head_dim)
            return ll_err(LL_ERR_UNSUPPORTED,
                          "%s: llama.attention.value_length (%d) differs from key_length (%d); not supported", g->path,
                          vlen, c.head_dim);
    } else {
        if (c.d_model % c.n_heads)
            return ll_err(LL_ERR_FORMAT,
                          "%s: llama.embedding_length (%d) is not a multiple of llama.attention.head_count (%d)",
                          g->path, c.d_model, c.n_heads);
        c.head_dim = c.d_model / c.n_heads;
    }
    /* rope.dimension_count < head size would be partial rotary embedding. */
    int rot = 0;
    LL_TRY(ll_gguf_opt_int(g, "llama.rope.dimension_count", c.head_dim, &rot));
    if (rot != c.head_dim)
        return ll_err(LL_ERR_UNSUPPORTED,
                      "%s: llama.rope.dimension_count is %d but the head size is %d (partial rotary embeddings are "
                      "not supported)",
                      g->path, rot, c.head_dim);

    if (ll_gguf_find_key(g, "llama.rope.scaling.type") >= 0) {
        const char *st = NULL;
        LL_TRY(ll_gguf_get_str(g, "llama.rope.scaling.type", &st, NULL));
        if (strcmp(st, "linear") == 0) {
            c.rope_scaling = LL_ROPE_SCALING_LINEAR;
            LL_TRY(ll_gguf_get_f32(g, "llama.rope.scaling.factor", &c.rope_factor));
        } else if (strcmp(st, "none") != 0) {
            return ll_err(LL_ERR_UNSUPPORTED,
                          "%s: llama.rope.scaling.type \"%.32s\" is not supported (layerlab handles none and linear)",
                          g->path, st);
        }
    } else if (ll_gguf_find_key(g, "llama.rope.scale_linear") >= 0) { /* older spelling */
        LL_TRY(ll_gguf_get_f32(g, "llama.rope.scale_linear", &c.rope_factor));
        if (c.rope_factor != 1.0f) c.rope_scaling = LL_ROPE_SCALING_LINEAR;
    }
    if (c.rope_scaling == LL_ROPE_SCALING_LINEAR && (!(c.rope_factor > 0.0f) || !isfinite(c.rope_factor)))
        return ll_err(LL_ERR_FORMAT, "%s: rope scaling factor must be positive, found %g", g->path,
                      (double)c.rope_factor);

    /* Vocabulary: the tokenizer's token list is the authority (as in
     * llama.cpp); token_embd rows serve when a file carries no tokenizer. */
    const ll_gguf_tensor *emb = ll_gguf_find_tensor(g, "token_embd.weight");
    long tok = ll_gguf_find_key(g, "tokenizer.ggml.tokens");
    if (tok >= 0) {
        size_t n = 0;
        ll_gguf_type et = LL_GGUF_U8;
        LL_TRY(ll_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n));
        if (et != LL_GGUF_STRING)
            return ll_err(LL_ERR_FORMAT,
                          "%s: key \"tokenizer.ggml.tokens\": expected an array of strings, found an array of %s",
                          g->path, ll_gguf_type_names[et]);
        if (n == 0 || n > INT_MAX)
            return ll_err(LL_ERR_FORMAT, "%s: key \"tokenizer.ggml.tokens\": %zu tokens", g->path, n);
        c.vocab_size = (int)n;
        if (emb && emb->n_dims == 2 && emb->ne[1] != n)
            return ll_err(LL_ERR_SHAPE, "%s: tokenizer.ggml.tokens has %zu tokens but token_embd.weight has %llu rows",
                          g->path, n, (unsigned long long)emb->ne[1]);
    } else if (emb && emb->n_dims == 2 && emb->ne[1] > 0 && emb->ne[1] <= INT_MAX) {
        c.vocab_size = (int)emb->ne[1];
    } else {
        return ll_err(LL_ERR_MISSING,
                      "%s: cannot tell the vocabulary size: no tokenizer.ggml.tokens and no 2-d token_embd.weight",
                      g->path);
    }

    LL_TRY(ll_gguf_token_id(g, "tokenizer.ggml.bos_token_id", &c.bos_id));
    LL_TRY(ll_gguf_token_id(g, "tokenizer.ggml.eos_token_id", &c.eos_id));

    c.tied_embeddings = ll_gguf_find_tensor(g, "output.weight") == NULL;
    c.qkv_bias = ll_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;

    LL_TRY(ll_config_validate(&c, g->path));
    *out = c;
    return LL_OK;
}

/* ------------------------------------------------------------------------ */
/* llama: tensors                                                            */
/* ------------------------------------------------------------------------ */

/* ggml types an ll_tensor_info can describe; -1 for block-quantized ones. */
static int ll_gguf_dtype(uint32_t type) {
    switch (type) {
    case LL_GGML_F32: return LL_F32;
    case LL_GGML_F16: return LL_F16;
    case LL_GGML_BF16: return LL_BF16;
    case LL_GGML_F64: return LL_F64;
    case LL_GGML_I8: return LL_I8;
    case LL_GGML_I16: return LL_I16;
    case LL_GGML_I32: return LL_I32;
    case LL_GGML_I64: return LL_I64;
    default: return -1;
    }
}

static int ll_gguf_cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Names kept unmapped could spell an HF name that a mapped tensor also gets
 * ("model.norm.weight" next to "output_norm.weight"): refuse the ambiguity. */
static ll_status ll_gguf_check_unique(const ll_gguf *g, const ll_tensor_set *ts, size_t first) {
    size_t n = ts->n - first;
    if (n < 2) return LL_OK;
    char **names = ll_calloc(n, sizeof *names, g->path);
    if (!names) return LL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) names[i] = ts->t[first + i].name;
    qsort(names, n, sizeof *names, ll_gguf_cmp_name);
    ll_status st = LL_OK;
    for (size_t i = 1; i < n && st == LL_OK; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            st = ll_err(LL_ERR_FORMAT, "%s: two tensors end up named \"%s\" (one under its GGUF name, one translated)",
                        g->path, names[i]);
    free(names);
    return st;
}

ll_status ll_gguf_model_tensors(const ll_gguf *g, ll_tensor_set *ts, int file_idx) {
    if (!g->data && g->n_t) return ll_err(LL_ERR_ARG, "%s: tensor data is no longer held by this ll_gguf", g->path);
    size_t first = ts->n;
    for (size_t i = 0; i < g->n_t; i++) {
        const ll_gguf_tensor *t = &g->t[i];
        ll_tensor_info info;
        memset(&info, 0, sizeof info);
        /* HF names are at most ~40 bytes longer than the GGUF ones. */
        char name[320];
        int mapped = ll_gguf_hf_name(t->name, name, sizeof name);
        if (mapped < 0)
            return ll_err(LL_ERR_UNSUPPORTED, "%s: tensor name \"%.64s...\" is too long (%zu bytes)", g->path, t->name,
                          strlen(t->name));
        int dt = ll_gguf_dtype(t->type);
        if (mapped) {
            if (t->type != LL_GGML_F32 && t->type != LL_GGML_F16 && t->type != LL_GGML_BF16)
                return ll_err(LL_ERR_UNSUPPORTED,
                              "%s: unsupported tensor type %s in tensor %s (layerlab runs F32, F16 and BF16 tensors)",
                              g->path, ll_ggml_types[t->type].name, t->name);
        } else if (dt < 0) {
            /* A quantized tensor the model does not use (none in llama files
             * today): ll_dtype cannot describe it, and nothing reads it. */
            continue;
        }
        info.name = name;
        info.dtype = (ll_dtype)dt;
        info.ndim = (int)t->n_dims;
        /* ggml lists dims innermost first; PyTorch outermost first. */
        for (uint32_t d = 0; d < t->n_dims; d++) info.shape[d] = (int64_t)t->ne[t->n_dims - 1 - d];
        info.data = g->data + g->data_offset + t->offset;
        /* The forward pass reads F32 weights in place as floats; a file with
         * general.alignment below the element size could misplace them. */
        if ((uintptr_t)info.data % ll_dtype_size(info.dtype))
            return ll_err(LL_ERR_UNSUPPORTED,
                          "%s: tensor %s starts at file offset %llu, not a multiple of its %zu-byte element size "
                          "(general.alignment is %u)",
                          g->path, t->name, (unsigned long long)(g->data_offset + t->offset), ll_dtype_size(info.dtype),
                          g->alignment);
        info.nbytes = (size_t)t->nbytes;
        info.file = file_idx;
        LL_TRY(ll_tensor_set_add(ts, &info));
    }
    return ll_gguf_check_unique(g, ts, first);
}

ll_status ll_gguf_load_model(const char *path, ll_config *cfg, ll_tensor_set *ts, ll_gguf **meta_out) {
    if (!path || !cfg || !ts) return ll_err(LL_ERR_ARG, "ll_gguf_load_model: NULL argument");
    if (meta_out) *meta_out = NULL;
    ll_gguf *g;
    LL_TRY(ll_gguf_open(&g, path));
    ll_config c;
    ll_status st = ll_gguf_model_config(g, &c);
    if (st != LL_OK) {
        ll_gguf_free(g);
        return st;
    }
    /* Build into a local set so the caller's is untouched on failure. */
    ll_tensor_set s;
    memset(&s, 0, sizeof s);
    int idx = -1;
    st = ll_tensor_set_add_file(&s, &g->map, &idx);
    if (st != LL_OK) {
        ll_tensor_set_free(&s);
        ll_gguf_free(g);
        return st;
    }
    /* The set owns the mapping now; the pages stay where they are. */
    memset(&g->map, 0, sizeof g->map);
    st = ll_gguf_model_tensors(g, &s, idx);
    g->data = NULL;
    if (st != LL_OK) {
        ll_tensor_set_free(&s);
        ll_gguf_free(g);
        return st;
    }
    *cfg = c;
    *ts = s;
    if (meta_out)
        *meta_out = g;
    else
        ll_gguf_free(g);
    return LL_OK;
}
