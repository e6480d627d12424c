/* safetensors reader: 8-byte little-endian header length, a JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the raw data. Offsets are relative to the end of the header. Every claim the
 * header makes is checked against the file before any pointer is handed out. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/ll_alloc.h"
#include "ll_tensors.h"

typedef struct {
    size_t begin, end;
    const char *name;
} ll_span;

static int ll_span_cmp(const void *a, const void *b) {
    const ll_span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* A JSON number that must be a non-negative integer that fits in `max`. */
static int ll_json_uint(const cJSON *j, double max, size_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double v = j->valuedouble;
    if (!(v >= 0) || v > max || v != (double)(size_t)v) return -1;
    *out = (size_t)v;
    return 0;
}

ll_status ll_safetensors_parse(ll_tensor_set *s, const unsigned char *data, size_t size,
                               const char *path, int file_idx) {
    if (size < 8)
        return ll_err(LL_ERR_FORMAT, "%s: file is %zu bytes, a safetensors file needs at least 8 (header length)",
                      path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    if (hlen > size - 8)
        return ll_err(LL_ERR_FORMAT, "%s: header length %llu goes beyond the end of the file (%zu bytes)", path,
                      (unsigned long long)hlen, size);
    if (hlen > 100u * 1024 * 1024)
        return ll_err(LL_ERR_FORMAT, "%s: header length %llu is implausibly large (limit 100 MiB)", path,
                      (unsigned long long)hlen);
    const unsigned char *base = data + 8 + hlen;
    size_t data_size = size - 8 - (size_t)hlen;

    cJSON *root = cJSON_ParseWithLength((const char *)data + 8, (size_t)hlen);
    if (!root) return ll_err(LL_ERR_FORMAT, "%s: header is not valid JSON", path);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ll_err(LL_ERR_FORMAT, "%s: header must be a JSON object", path);
    }
    size_t count = (size_t)cJSON_GetArraySize(root);
    ll_span *spans = ll_calloc(count ? count : 1, sizeof *spans, "safetensors spans");
    if (!spans) {
        cJSON_Delete(root);
        return LL_ERR_NOMEM;
    }
    size_t ns = 0;
    ll_status st = LL_OK;
    size_t first_new = s->n;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        const char *name = e->string ? e->string : "";
        if (strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                st = ll_err(LL_ERR_FORMAT, "%s: \"__metadata__\" must be an object", path);
                break;
            }
            continue;
        }
        if (!cJSON_IsObject(e)) {
            st = ll_err(LL_ERR_FORMAT, "%s: tensor %s: entry must be an object", path, name);
            break;
        }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(jd)) {
            st = ll_err(LL_ERR_FORMAT, "%s: tensor %s: field \"dtype\" missing or not a string", path, name);
            break;
        }
        int dt = ll_dtype_from_safetensors(jd->valuestring);
        if (dt < 0) {
            st = ll_err(LL_ERR_UNSUPPORTED, "%s: tensor %s: unsupported dtype \"%s\"", path, name, jd->valuestring);
            break;
        }
        if (!cJSON_IsArray(js) || cJSON_GetArraySize(js) > LL_MAX_DIMS) {
            st = ll_err(LL_ERR_FORMAT, "%s: tensor %s: field \"shape\" must be an array of at most %d sizes", path,
                        name, LL_MAX_DIMS);
            break;
        }
        ll_tensor_info t = {.name = (char *)name, .dtype = (ll_dtype)dt, .file = file_idx};
        size_t numel = 1;
        const cJSON *d;
        cJSON_ArrayForEach(d, js) {
            size_t v;
            if (ll_json_uint(d, (double)INT64_MAX, &v) || ll_mul_size(numel, v, &numel)) {
                st = ll_err(LL_ERR_FORMAT, "%s: tensor %s: shape entries must be non-negative integers", path, name);
                break;
            }
            t.shape[t.ndim++] = (int64_t)v;
        }
        if (st) break;
        size_t b, en;
        if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 ||
            ll_json_uint(cJSON_GetArrayItem(jo, 0), (double)SIZE_MAX, &b) ||
            ll_json_uint(cJSON_GetArrayItem(jo, 1), (double)SIZE_MAX, &en) || en < b) {
            st = ll_err(LL_ERR_FORMAT, "%s: tensor %s: field \"data_offsets\" must be [begin, end] with begin <= end",
                        path, name);
            break;
        }
        if (en > data_size) {
            st = ll_err(LL_ERR_FORMAT, "%s: tensor %s: data_offsets [%zu, %zu] out of range (data section is %zu bytes)",
                        path, name, b, en, data_size);
            break;
        }
        size_t want;
        if (ll_mul_size(numel, ll_dtype_size((ll_dtype)dt), &want) || want != en - b) {
            char sh[96];
            ll_tensor_shape_str(&t, sh, sizeof sh);
            st = ll_err(LL_ERR_FORMAT, "%s: tensor %s: dtype %s and shape %s need %zu bytes, data_offsets give %zu",
                        path, name, jd->valuestring, sh, numel * ll_dtype_size((ll_dtype)dt), en - b);
            break;
        }
        t.data = base + b;
        t.nbytes = en - b;
        spans[ns++] = (ll_span){b, en, name};
        if ((st = ll_tensor_set_add(s, &t))) break;
    }
    if (!st) {
        /* Overlapping tensors mean a corrupt or hostile file: two names aliasing one buffer. */
        qsort(spans, ns, sizeof *spans, ll_span_cmp);
        for (size_t i = 1; i < ns; i++)
            if (spans[i].begin < spans[i - 1].end && spans[i].end > spans[i].begin &&
                spans[i - 1].end > spans[i - 1].begin) {
                st = ll_err(LL_ERR_FORMAT, "%s: tensors %s [%zu, %zu] and %s [%zu, %zu] overlap", path,
                            spans[i - 1].name, spans[i - 1].begin, spans[i - 1].end, spans[i].name, spans[i].begin,
                            spans[i].end);
                break;
            }
    }
    if (st) { /* roll back what this file added so the set stays consistent */
        for (size_t i = first_new; i < s->n; i++) free(s->t[i].name);
        s->n = first_new;
    }
    free(spans);
    cJSON_Delete(root);
    return st;
}

static ll_status ll_safetensors_add_file(ll_tensor_set *s, const char *path) {
    ll_mmap m;
    LL_TRY(ll_mmap_open(&m, path));
    int idx;
    ll_status st = ll_tensor_set_add_file(s, &m, &idx);
    if (st) {
        ll_mmap_close(&m);
        return st;
    }
    const ll_mmap *f = &s->files[idx];
    return ll_safetensors_parse(s, f->data, f->size, f->path, idx);
}

static int ll_is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int ll_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* model.safetensors.index.json: {"weight_map": {"tensor": "model-00001-of-00002.safetensors", ...}} */
static ll_status ll_safetensors_open_index(ll_tensor_set *s, const char *index_path, const char *dir) {
    char *txt;
    LL_TRY(ll_read_file(index_path, &txt, NULL));
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    if (!root) return ll_err(LL_ERR_FORMAT, "%s: not valid JSON", index_path);
    ll_status st = LL_OK;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        st = ll_err(LL_ERR_FORMAT, "%s: field \"weight_map\" missing or not an object", index_path);
        goto done;
    }
    /* Collect the distinct shard names in first-seen order. */
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e)) {
            st = ll_err(LL_ERR_FORMAT, "%s: weight_map entry %s is not a file name", index_path,
                        e->string ? e->string : "?");
            goto done;
        }
        const char *shard = e->valuestring;
        if (strchr(shard, '/') || strcmp(shard, "..") == 0) {
            st = ll_err(LL_ERR_FORMAT, "%s: weight_map entry %s names \"%s\", expected a file in the same directory",
                        index_path, e->string, shard);
            goto done;
        }
        int seen = 0;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", dir, shard);
        for (size_t i = 0; i < s->n_files; i++)
            if (strcmp(s->files[i].path, full) == 0) seen = 1;
        if (!seen && (st = ll_safetensors_add_file(s, full))) goto done;
    }
    /* Every tensor the index promises must be in the shard it names. */
    cJSON_ArrayForEach(e, wm) {
        const ll_tensor_info *t = ll_tensor_set_find(s, e->string);
        if (!t) {
            st = ll_err(LL_ERR_MISSING, "%s: tensor %s is listed in the index but not found in %s", index_path,
                        e->string, e->valuestring);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return st;
}

ll_status ll_safetensors_open(ll_tensor_set *s, const char *path) {
    if (!ll_is_dir(path)) {
        size_t n = strlen(path);
        if (n > 11 && strcmp(path + n - 11, ".index.json") == 0) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s", path);
            char *slash = strrchr(dir, '/');
            if (slash) *slash = 0;
            else snprintf(dir, sizeof dir, ".");
            return ll_safetensors_open_index(s, path, dir);
        }
        return ll_safetensors_add_file(s, path);
    }
    char p[4096];
    snprintf(p, sizeof p, "%s/model.safetensors", path);
    if (ll_exists(p)) return ll_safetensors_add_file(s, p);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
    if (ll_exists(p)) return ll_safetensors_open_index(s, p, path);
    return ll_err(LL_ERR_MISSING, "%s: no model.safetensors or model.safetensors.index.json in this directory",
                  path);
}
