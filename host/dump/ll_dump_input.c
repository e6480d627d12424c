#include "ll_dump_input.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_hash.h"

struct ll_dump_input {
    char *path;
    FILE *f;
    bool jsonl;
    int64_t line, index;
    uint64_t hash;
    char *buf;
    size_t cap;
    /* single-record input */
    bool single, single_done;
    char *single_text;
    int32_t *single_tokens;
    int single_n;
};

void ll_dump_record_clear(ll_dump_record *r) {
    free(r->id);
    free(r->text);
    free(r->tokens);
    free(r->meta);
    free(r->positions);
    memset(r, 0, sizeof *r);
}

ll_status ll_dump_input_open(ll_dump_input **out, const char *path) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ll_err(LL_ERR_IO, "%s: cannot open the input: %s", path, strerror(errno));
    ll_dump_input *in = calloc(1, sizeof *in);
    if (!in || !(in->path = strdup(path))) {
        free(in);
        fclose(f);
        return ll_err(LL_ERR_NOMEM, "%s", path);
    }
    in->f = f;
    int c;
    while ((c = fgetc(f)) != EOF && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
    }
    in->jsonl = c == '{';
    rewind(f);
    in->hash = ll_hash_mix(0, in->jsonl);
    *out = in;
    return LL_OK;
}

ll_status ll_dump_input_single(ll_dump_input **out, const char *text, const int32_t *tokens, int n_tokens) {
    ll_dump_input *in = calloc(1, sizeof *in);
    if (!in) return ll_err(LL_ERR_NOMEM, "input");
    in->single = true;
    in->path = strdup(tokens ? "--tokens" : "--prompt");
    if (text) in->single_text = strdup(text);
    if (tokens) {
        in->single_tokens = malloc((size_t)(n_tokens > 0 ? n_tokens : 1) * sizeof(int32_t));
        if (in->single_tokens) memcpy(in->single_tokens, tokens, (size_t)n_tokens * sizeof(int32_t));
        in->single_n = n_tokens;
    }
    if (!in->path || (text && !in->single_text) || (tokens && !in->single_tokens)) {
        ll_dump_input_free(in);
        return ll_err(LL_ERR_NOMEM, "input");
    }
    in->hash = text ? ll_hash_bytes(text, strlen(text), 1) : ll_hash_bytes(tokens, (size_t)n_tokens * 4, 2);
    *out = in;
    return LL_OK;
}

/* One line, any length. Returns its length (without the newline) or -1 at the end. */
static long read_line(ll_dump_input *in) {
    size_t n = 0;
    int c;
    while ((c = fgetc(in->f)) != EOF) {
        if (n + 2 > in->cap) {
            size_t nc = in->cap ? in->cap * 2 : 4096;
            char *b = realloc(in->buf, nc);
            if (!b) return -2;
            in->buf = b;
            in->cap = nc;
        }
        if (c == '\n') break;
        in->buf[n++] = (char)c;
    }
    if (c == EOF && n == 0) return -1;
    if (n > 0 && in->buf[n - 1] == '\r') n--;
    in->buf[n] = 0;
    in->line++;
    in->hash = ll_hash_mix(in->hash, ll_hash_bytes(in->buf, n, 3));
    return (long)n;
}

static bool blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t') return false;
    return true;
}

static ll_status parse_json_record(ll_dump_input *in, ll_dump_record *r) {
    cJSON *o = cJSON_Parse(in->buf);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return ll_err(LL_ERR_FORMAT, "%s:%lld: not a JSON object (expected {\"text\": ...} or {\"tokens\": [...]})",
                      in->path, (long long)in->line);
    }
    ll_status st = LL_OK;
    cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
    cJSON *toks = cJSON_GetObjectItemCaseSensitive(o, "tokens");
    cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    cJSON *pos = cJSON_GetObjectItemCaseSensitive(o, "positions");
    if (text && toks)
        st = ll_err(LL_ERR_FORMAT, "%s:%lld: has both \"text\" and \"tokens\"; give one", in->path, (long long)in->line);
    else if (!text && !toks)
        st = ll_err(LL_ERR_FORMAT, "%s:%lld: needs a \"text\" string or a \"tokens\" list", in->path, (long long)in->line);
    else if (text && !cJSON_IsString(text))
        st = ll_err(LL_ERR_FORMAT, "%s:%lld: \"text\" must be a string", in->path, (long long)in->line);
    else if (toks && !cJSON_IsArray(toks))
        st = ll_err(LL_ERR_FORMAT, "%s:%lld: \"tokens\" must be a list of integers", in->path, (long long)in->line);
    else if (pos && !cJSON_IsObject(pos))
        st = ll_err(LL_ERR_FORMAT, "%s:%lld: \"positions\" must be an object of name -> token index or list",
                    in->path, (long long)in->line);
    if (!st && text) r->text = strdup(text->valuestring);
    if (!st && toks) {
        int n = cJSON_GetArraySize(toks);
        r->tokens = malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
        r->n_tokens = n;
        int k = 0;
        for (cJSON *e = toks->child; !st && e; e = e->next, k++) {
            if (!cJSON_IsNumber(e) || e->valuedouble != (double)(int32_t)e->valuedouble || e->valuedouble < 0)
                st = ll_err(LL_ERR_FORMAT, "%s:%lld: \"tokens\"[%d] is not a non-negative integer", in->path,
                            (long long)in->line, k);
            else r->tokens[k] = (int32_t)e->valuedouble;
        }
    }
    if (!st && id) {
        if (cJSON_IsString(id)) r->id = strdup(id->valuestring);
        else r->id = cJSON_PrintUnformatted(id);
    }
    if (!st && pos) r->positions = cJSON_PrintUnformatted(pos);
    if (!st) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "text");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "tokens");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "id");
        r->meta = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(o);
    return st;
}

ll_status ll_dump_input_next(ll_dump_input *in, ll_dump_record *r, bool *more) {
    ll_dump_record_clear(r);
    *more = false;
    if (in->single) {
        if (in->single_done) return LL_OK;
        in->single_done = true;
        if (in->single_text) r->text = strdup(in->single_text);
        if (in->single_tokens) {
            r->tokens = malloc((size_t)(in->single_n > 0 ? in->single_n : 1) * sizeof(int32_t));
            if (r->tokens) memcpy(r->tokens, in->single_tokens, (size_t)in->single_n * sizeof(int32_t));
            r->n_tokens = in->single_n;
        }
        r->meta = strdup("{}");
    } else {
        long n;
        do {
            n = read_line(in);
            if (n == -2) return ll_err(LL_ERR_NOMEM, "%s:%lld: line too long for memory", in->path, (long long)in->line + 1);
            if (n == -1) {
                if (ferror(in->f)) return ll_err(LL_ERR_IO, "%s: read error: %s", in->path, strerror(errno));
                return LL_OK;
            }
        } while (blank(in->buf));
        r->line = in->line;
        if (in->jsonl) {
            ll_status st = parse_json_record(in, r);
            if (st) {
                ll_dump_record_clear(r);
                return st;
            }
        } else {
            r->text = strdup(in->buf);
            r->meta = strdup("{}");
        }
    }
    r->index = in->index++;
    if (!r->id) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)r->index);
        r->id = strdup(b);
    }
    if (!r->id || !r->meta || (!r->text && !r->tokens)) {
        ll_dump_record_clear(r);
        return ll_err(LL_ERR_NOMEM, "%s: record %lld", in->path, (long long)in->index);
    }
    *more = true;
    return LL_OK;
}

ll_status ll_dump_input_rewind(ll_dump_input *in) {
    in->index = 0;
    in->line = 0;
    if (in->single) {
        in->single_done = false;
        return LL_OK;
    }
    in->hash = ll_hash_mix(0, in->jsonl);
    if (fseek(in->f, 0, SEEK_SET)) return ll_err(LL_ERR_IO, "%s: cannot rewind: %s", in->path, strerror(errno));
    return LL_OK;
}

uint64_t ll_dump_input_hash(const ll_dump_input *in) { return in->hash; }
const char *ll_dump_input_name(const ll_dump_input *in) { return in->path; }
bool ll_dump_input_is_jsonl(const ll_dump_input *in) { return in->jsonl; }

void ll_dump_input_free(ll_dump_input *in) {
    if (!in) return;
    if (in->f) fclose(in->f);
    free(in->path);
    free(in->buf);
    free(in->single_text);
    free(in->single_tokens);
    free(in);
}

static int put_pos(const ll_dump_record *r, const char *item, int64_t v, int n, int64_t *idx, int cnt, int max) {
    int64_t p = v < 0 ? n + v : v;
    if (p < 0 || p >= n) {
        ll_err(LL_ERR_ARG, "record %lld (line %lld): position %s = %lld is outside its %d tokens", (long long)r->index,
               (long long)r->line, item, (long long)v, n);
        return -1;
    }
    if (cnt < max) idx[cnt] = p;
    return cnt + 1;
}

int ll_dump_record_positions(const ll_dump_record *r, const char *item, int n, int64_t *idx, int max) {
    char *end;
    long long v = strtoll(item, &end, 10);
    if (end != item && *end == 0) return put_pos(r, item, v, n, idx, 0, max);
    cJSON *o = r->positions ? cJSON_Parse(r->positions) : NULL;
    cJSON *e = o ? cJSON_GetObjectItemCaseSensitive(o, item) : NULL;
    int cnt = 0;
    if (!e) {
        ll_err(LL_ERR_ARG,
               "record %lld (line %lld): no named position \"%s\" (a JSONL record names positions with "
               "\"positions\": {\"%s\": <index or list>})",
               (long long)r->index, (long long)r->line, item, item);
        cnt = -1;
    } else if (cJSON_IsNumber(e)) {
        cnt = put_pos(r, item, (int64_t)e->valuedouble, n, idx, 0, max);
    } else if (cJSON_IsArray(e)) {
        for (cJSON *x = e->child; x && cnt >= 0; x = x->next) {
            if (!cJSON_IsNumber(x)) {
                ll_err(LL_ERR_ARG, "record %lld (line %lld): positions \"%s\" must hold integers", (long long)r->index,
                       (long long)r->line, item);
                cnt = -1;
            } else cnt = put_pos(r, item, (int64_t)x->valuedouble, n, idx, cnt, max);
        }
    } else {
        ll_err(LL_ERR_ARG, "record %lld (line %lld): positions \"%s\" must be an integer or a list", (long long)r->index,
               (long long)r->line, item);
        cnt = -1;
    }
    cJSON_Delete(o);
    return cnt;
}
