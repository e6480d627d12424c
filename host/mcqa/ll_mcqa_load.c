/* Loading multiple-choice / yes-no data sets into ll_mcqa_set (formats in ll_mcqa.h). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"
#include "ll_mcqa.h"

static const char *const ll_fmt_names[] = {"auto", "foundry", "boolq", "headqa", "arc", "generic", "tokens"};

const char *ll_mcqa_format_name(ll_mcqa_format f) {
    return (unsigned)f < sizeof ll_fmt_names / sizeof *ll_fmt_names ? ll_fmt_names[f] : "?";
}

ll_status ll_mcqa_parse_format(const char *s, ll_mcqa_format *out) {
    for (unsigned i = 0; s && i < sizeof ll_fmt_names / sizeof *ll_fmt_names; i++)
        if (!strcmp(s, ll_fmt_names[i])) {
            *out = (ll_mcqa_format)i;
            return LL_OK;
        }
    return ll_err(LL_ERR_ARG, "data format: expected auto, foundry, boolq, headqa, arc, generic or tokens, found \"%s\"",
                  s ? s : "(null)");
}

static void ll_item_free(ll_mcqa_item *it) {
    free(it->id);
    free(it->query);
    free(it->passage);
    free(it->prompt);
    free(it->tokens);
    free(it->cand_ids);
    for (int j = 0; j < it->n_choices; j++) free(it->choices[j]);
    free(it->choices);
    memset(it, 0, sizeof *it);
}

void ll_mcqa_set_free(ll_mcqa_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) ll_item_free(&s->items[i]);
    free(s->items);
    free(s->path);
    memset(s, 0, sizeof *s);
}

static ll_status ll_read_all(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return ll_err(LL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return ll_err(LL_ERR_NOMEM, "%s: no memory to read the file", path);
    if (err) {
        free(buf);
        return ll_err(LL_ERR_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return LL_OK;
}

/* Where a record came from, for messages: "file:line" (JSONL) or "file: record i". */
typedef struct {
    const char *path;
    int64_t line;
    bool jsonl;
} ll_where;

#define WHERE_FMT "%s%s%lld"
#define WHERE_ARGS(w) (w)->path, (w)->jsonl ? ":" : ": record ", (long long)(w)->line

static ll_status ll_get_str(const ll_where *w, const cJSON *o, const char *field, bool required, char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    *out = NULL;
    if (!v) {
        if (!required) return LL_OK;
        return ll_err(LL_ERR_MISSING, WHERE_FMT ": field \"%s\" is missing", WHERE_ARGS(w), field);
    }
    if (!cJSON_IsString(v))
        return ll_err(LL_ERR_FORMAT, WHERE_FMT ": field \"%s\": expected a string", WHERE_ARGS(w), field);
    *out = ll_strdup(v->valuestring);
    return *out ? LL_OK : ll_err(LL_ERR_NOMEM, "no memory");
}

static ll_status ll_get_choices(const ll_where *w, const cJSON *o, const char *field, ll_mcqa_item *it) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!v) return ll_err(LL_ERR_MISSING, WHERE_FMT ": field \"%s\" is missing", WHERE_ARGS(w), field);
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 2)
        return ll_err(LL_ERR_FORMAT, WHERE_FMT ": field \"%s\": expected an array of at least 2 strings, found %s",
                      WHERE_ARGS(w), field, n < 0 ? "something else" : "fewer");
    it->choices = ll_calloc((size_t)n, sizeof *it->choices, "choices");
    if (!it->choices) return LL_ERR_NOMEM;
    int j = 0;
    for (const cJSON *x = v->child; x; x = x->next, j++) {
        if (!cJSON_IsString(x))
            return ll_err(LL_ERR_FORMAT, WHERE_FMT ": field \"%s\"[%d]: expected a string", WHERE_ARGS(w), field, j);
        if (!(it->choices[j] = ll_strdup(x->valuestring))) return ll_err(LL_ERR_NOMEM, "no memory");
        it->n_choices = j + 1;
    }
    return LL_OK;
}

static ll_status ll_get_gold(const ll_where *w, const cJSON *o, const char *field, ll_mcqa_item *it) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!v) return ll_err(LL_ERR_MISSING, WHERE_FMT ": field \"%s\" is missing", WHERE_ARGS(w), field);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble || v->valueint < 0 ||
        v->valueint >= it->n_choices)
        return ll_err(LL_ERR_FORMAT, WHERE_FMT ": field \"%s\": expected an integer index in [0, %d)", WHERE_ARGS(w),
                      field, it->n_choices);
    it->gold = v->valueint;
    return LL_OK;
}

/* An array of at least `min` non-negative integer ids. */
static ll_status ll_get_ids(const ll_where *w, const cJSON *o, const char *field, int min, int32_t **out, int *n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!v) return ll_err(LL_ERR_MISSING, WHERE_FMT ": field \"%s\" is missing", WHERE_ARGS(w), field);
    int k = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (k < min)
        return ll_err(LL_ERR_FORMAT, WHERE_FMT ": field \"%s\": expected an array of at least %d token ids",
                      WHERE_ARGS(w), field, min);
    *out = malloc((size_t)k * sizeof **out);
    if (!*out) return ll_err(LL_ERR_NOMEM, "no memory");
    int j = 0;
    for (const cJSON *x = v->child; x; x = x->next, j++) {
        if (!cJSON_IsNumber(x) || x->valuedouble != (double)(int32_t)x->valuedouble || x->valuedouble < 0)
            return ll_err(LL_ERR_FORMAT, WHERE_FMT ": field \"%s\"[%d]: expected a non-negative integer token id",
                          WHERE_ARGS(w), field, j);
        (*out)[j] = (int32_t)x->valuedouble;
    }
    *n = k;
    return LL_OK;
}

static ll_status ll_get_id(const ll_where *w, const cJSON *o, int index, ll_mcqa_item *it) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "id");
    char buf[64];
    if (v && cJSON_IsString(v)) it->id = ll_strdup(v->valuestring);
    else if (v && cJSON_IsNumber(v)) {
        snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
        it->id = ll_strdup(buf);
    } else {
        snprintf(buf, sizeof buf, "%d", index);
        it->id = ll_strdup(buf);
    }
    it->line = w->line;
    return it->id ? LL_OK : ll_err(LL_ERR_NOMEM, "no memory");
}

static ll_status ll_item_from_jsonl(ll_mcqa_format fmt, const ll_where *w, const cJSON *o, int index,
                                    ll_mcqa_item *it) {
    it->gold = -1;
    LL_TRY(ll_get_id(w, o, index, it));
    switch (fmt) {
    case LL_MCQA_FOUNDRY:
        LL_TRY(ll_get_str(w, o, "query", true, &it->query));
        LL_TRY(ll_get_choices(w, o, "choices", it));
        return ll_get_gold(w, o, "gold", it);
    case LL_MCQA_GENERIC:
        LL_TRY(ll_get_str(w, o, "prompt", true, &it->prompt));
        LL_TRY(ll_get_choices(w, o, "options", it));
        return ll_get_gold(w, o, "gold", it);
    case LL_MCQA_TOKENS: {
        LL_TRY(ll_get_ids(w, o, "tokens", 1, &it->tokens, &it->n_tokens));
        int k;
        LL_TRY(ll_get_ids(w, o, "candidates", 2, &it->cand_ids, &k));
        it->choices = ll_calloc((size_t)k, sizeof *it->choices, "choices");
        if (!it->choices) return LL_ERR_NOMEM;
        for (int j = 0; j < k; j++) {
            char b[16];
            snprintf(b, sizeof b, "%d", it->cand_ids[j]);
            if (!(it->choices[j] = ll_strdup(b))) return ll_err(LL_ERR_NOMEM, "no memory");
            it->n_choices = j + 1;
        }
        return ll_get_gold(w, o, "gold", it);
    }
    case LL_MCQA_BOOLQ: {
        LL_TRY(ll_get_str(w, o, "question", true, &it->query));
        LL_TRY(ll_get_str(w, o, "passage", true, &it->passage));
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "answer");
        if (!a) return ll_err(LL_ERR_MISSING, WHERE_FMT ": field \"answer\" is missing", WHERE_ARGS(w));
        if (!cJSON_IsBool(a)) return ll_err(LL_ERR_FORMAT, WHERE_FMT ": field \"answer\": expected true or false", WHERE_ARGS(w));
        it->choices = ll_calloc(2, sizeof *it->choices, "choices");
        if (!it->choices || !(it->choices[0] = ll_strdup("no")) || !(it->choices[1] = ll_strdup("yes")))
            return ll_err(LL_ERR_NOMEM, "no memory");
        it->n_choices = 2;
        it->gold = cJSON_IsTrue(a) ? 1 : 0;
        return LL_OK;
    }
    default:
        return ll_err(LL_ERR_ARG, "%s: format %s is not line-based", w->path, ll_mcqa_format_name(fmt));
    }
}

static ll_status ll_grow(ll_mcqa_set *s, int *cap) {
    if (s->n < *cap) return LL_OK;
    int nc = *cap ? 2 * *cap : 64;
    ll_mcqa_item *ni = realloc(s->items, (size_t)nc * sizeof *ni);
    if (!ni) return ll_err(LL_ERR_NOMEM, "%s: no memory for %d items", s->path, nc);
    memset(ni + *cap, 0, (size_t)(nc - *cap) * sizeof *ni);
    s->items = ni;
    *cap = nc;
    return LL_OK;
}

static ll_mcqa_format ll_guess(const cJSON *o) {
    if (cJSON_GetObjectItemCaseSensitive(o, "exams")) return LL_MCQA_HEADQA;
    if (cJSON_GetObjectItemCaseSensitive(o, "tokens") && cJSON_GetObjectItemCaseSensitive(o, "candidates"))
        return LL_MCQA_TOKENS;
    if (cJSON_GetObjectItemCaseSensitive(o, "prompt") && cJSON_GetObjectItemCaseSensitive(o, "options"))
        return LL_MCQA_GENERIC;
    if (cJSON_GetObjectItemCaseSensitive(o, "query") && cJSON_GetObjectItemCaseSensitive(o, "choices"))
        return LL_MCQA_FOUNDRY;
    if (cJSON_GetObjectItemCaseSensitive(o, "passage") && cJSON_GetObjectItemCaseSensitive(o, "question"))
        return LL_MCQA_BOOLQ;
    if (cJSON_GetObjectItemCaseSensitive(o, "instruction") && cJSON_GetObjectItemCaseSensitive(o, "answer"))
        return LL_MCQA_ARC;
    return LL_MCQA_AUTO;
}

static ll_status ll_load_jsonl(ll_mcqa_set *s, char *buf, ll_mcqa_format fmt, int limit) {
    int cap = 0;
    int64_t line = 0;
    ll_where w = {.path = s->path, .jsonl = true};
    for (char *p = buf; *p && (limit <= 0 || s->n < limit);) {
        char *e = strchr(p, '\n');
        if (e) *e = 0;
        line++;
        char *q = p;
        while (*q == ' ' || *q == '\t' || *q == '\r') q++;
        if (*q) {
            w.line = line;
            cJSON *o = cJSON_Parse(q);
            if (!o || !cJSON_IsObject(o)) {
                cJSON_Delete(o);
                return ll_err(LL_ERR_FORMAT, "%s:%lld: not a JSON object", s->path, (long long)line);
            }
            ll_mcqa_format f = fmt;
            if (f == LL_MCQA_AUTO) {
                f = ll_guess(o);
                if (f == LL_MCQA_AUTO || f == LL_MCQA_HEADQA || f == LL_MCQA_ARC) {
                    cJSON_Delete(o);
                    return ll_err(LL_ERR_FORMAT,
                                  "%s:%lld: cannot tell the format: expected fields query+choices+gold (foundry), "
                                  "question+passage+answer (boolq), prompt+options+gold (generic) or "
                                  "tokens+candidates+gold (tokens); give --format",
                                  s->path, (long long)line);
                }
                fmt = s->format = f;
            }
            ll_status st = ll_grow(s, &cap);
            if (!st) {
                st = ll_item_from_jsonl(f, &w, o, s->n, &s->items[s->n]);
                s->n++; /* counted even on failure, so the partial item is freed */
            }
            cJSON_Delete(o);
            if (st) return st;
        }
        if (!e) break;
        p = e + 1;
    }
    return LL_OK;
}

static ll_status ll_load_headqa(ll_mcqa_set *s, const cJSON *root, int limit) {
    const cJSON *exams = cJSON_GetObjectItemCaseSensitive(root, "exams");
    if (!cJSON_IsObject(exams)) return ll_err(LL_ERR_FORMAT, "%s: field \"exams\": expected an object", s->path);
    int cap = 0, rec = 0;
    for (const cJSON *ex = exams->child; ex; ex = ex->next) {
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(ex, "data");
        if (!cJSON_IsArray(data))
            return ll_err(LL_ERR_FORMAT, "%s: exams.\"%s\".data: expected an array", s->path, ex->string);
        for (const cJSON *q = data->child; q; q = q->next) {
            if (limit > 0 && s->n >= limit) return LL_OK;
            ll_where w = {.path = s->path, .line = ++rec};
            LL_TRY(ll_grow(s, &cap));
            ll_mcqa_item *it = &s->items[s->n++];
            it->gold = -1;
            it->line = rec;
            const cJSON *qid = cJSON_GetObjectItemCaseSensitive(q, "qid");
            char idb[256];
            snprintf(idb, sizeof idb, "%s/%s", ex->string ? ex->string : "?",
                     cJSON_IsString(qid) ? qid->valuestring : "?");
            if (!(it->id = ll_strdup(idb))) return ll_err(LL_ERR_NOMEM, "no memory");
            LL_TRY(ll_get_str(&w, q, "qtext", true, &it->query));
            const cJSON *ans = cJSON_GetObjectItemCaseSensitive(q, "answers");
            int n = cJSON_IsArray(ans) ? cJSON_GetArraySize(ans) : 0;
            if (n < 2)
                return ll_err(LL_ERR_FORMAT, WHERE_FMT " (%s): field \"answers\": expected an array of at least 2",
                              WHERE_ARGS(&w), idb);
            if (!(it->choices = ll_calloc((size_t)n, sizeof *it->choices, "choices"))) return LL_ERR_NOMEM;
            const cJSON *ra = cJSON_GetObjectItemCaseSensitive(q, "ra");
            int raid = cJSON_IsString(ra) ? atoi(ra->valuestring) : cJSON_IsNumber(ra) ? ra->valueint : -1;
            int j = 0;
            for (const cJSON *a = ans->child; a; a = a->next, j++) {
                const cJSON *at = cJSON_GetObjectItemCaseSensitive(a, "atext");
                const cJSON *aid = cJSON_GetObjectItemCaseSensitive(a, "aid");
                if (!cJSON_IsString(at) || !cJSON_IsNumber(aid))
                    return ll_err(LL_ERR_FORMAT, WHERE_FMT " (%s): answers[%d]: expected \"aid\" (number) and "
                                                 "\"atext\" (string)", WHERE_ARGS(&w), idb, j);
                if (!(it->choices[j] = ll_strdup(at->valuestring))) return ll_err(LL_ERR_NOMEM, "no memory");
                it->n_choices = j + 1;
                if (aid->valueint == raid) it->gold = j;
            }
            if (it->gold < 0)
                return ll_err(LL_ERR_FORMAT, WHERE_FMT " (%s): field \"ra\": the right answer id matches no \"aid\"",
                              WHERE_ARGS(&w), idb);
        }
    }
    return LL_OK;
}

/* arc-llm-adapters: the question and options live inside the instruction text:
 * "...question: Q\n\nAnswer1: a Answer2: b ...\n\nAnswer format: ..."; "answer" is "answerK". */
static ll_status ll_load_arc(ll_mcqa_set *s, const cJSON *root, int limit) {
    if (!cJSON_IsArray(root)) return ll_err(LL_ERR_FORMAT, "%s: expected a JSON array of records", s->path);
    int cap = 0, rec = 0;
    for (const cJSON *r = root->child; r && (limit <= 0 || s->n < limit); r = r->next) {
        ll_where w = {.path = s->path, .line = ++rec};
        LL_TRY(ll_grow(s, &cap));
        ll_mcqa_item *it = &s->items[s->n++];
        it->gold = -1;
        LL_TRY(ll_get_id(&w, r, rec - 1, it));
        char *ins, *ansf;
        LL_TRY(ll_get_str(&w, r, "instruction", true, &ins));
        ll_status st = ll_get_str(&w, r, "answer", true, &ansf);
        if (st) {
            free(ins);
            return st;
        }
        const char *qkey = "question: ";
        char *qs = strstr(ins, qkey);
        char *a1 = strstr(ins, "\n\nAnswer1: ");
        if (!qs || !a1 || a1 < qs) {
            st = ll_err(LL_ERR_FORMAT, WHERE_FMT ": field \"instruction\": expected \"question: Q\\n\\nAnswer1: ...\"",
                        WHERE_ARGS(&w));
            goto arc_done;
        }
        qs += strlen(qkey);
        it->query = strndup(qs, (size_t)(a1 - qs));
        char *end = strstr(a1, "\n\nAnswer format");
        if (!end) end = ins + strlen(ins);
        const char *p = a1 + 2;
        for (int k = 1;; k++) {
            char tag[32], next[32];
            snprintf(tag, sizeof tag, "Answer%d: ", k);
            snprintf(next, sizeof next, " Answer%d: ", k + 1);
            if (strncmp(p, tag, strlen(tag))) break;
            p += strlen(tag);
            const char *e = strstr(p, next);
            if (!e || e > end) e = end;
            char **nc = realloc(it->choices, (size_t)(k) * sizeof *nc);
            if (!nc) {
                st = ll_err(LL_ERR_NOMEM, "no memory");
                goto arc_done;
            }
            it->choices = nc;
            it->choices[k - 1] = strndup(p, (size_t)(e - p));
            it->n_choices = k;
            if (e == end) break;
            p = e + 1;
        }
        if (it->n_choices < 2) {
            st = ll_err(LL_ERR_FORMAT, WHERE_FMT ": field \"instruction\": fewer than 2 \"AnswerK: \" options",
                        WHERE_ARGS(&w));
            goto arc_done;
        }
        int g = -1;
        if (!strncmp(ansf, "answer", 6)) g = atoi(ansf + 6) - 1;
        if (g < 0 || g >= it->n_choices) {
            st = ll_err(LL_ERR_FORMAT, WHERE_FMT ": field \"answer\": expected answer1..answer%d, found \"%s\"",
                        WHERE_ARGS(&w), it->n_choices, ansf);
            goto arc_done;
        }
        it->gold = g;
    arc_done:
        free(ins);
        free(ansf);
        if (st) return st;
    }
    return LL_OK;
}

ll_status ll_mcqa_load(ll_mcqa_set *out, const char *path, ll_mcqa_format fmt, int limit) {
    memset(out, 0, sizeof *out);
    if (!(out->path = ll_strdup(path))) return ll_err(LL_ERR_NOMEM, "no memory");
    out->format = fmt;
    char *buf = NULL;
    size_t len;
    ll_status st = ll_read_all(path, &buf, &len);
    if (st) {
        ll_mcqa_set_free(out);
        return st;
    }
    const char *p = buf;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
    if (!*p) {
        st = ll_err(LL_ERR_FORMAT, "%s: the file is empty", path);
    } else if (fmt == LL_MCQA_HEADQA || fmt == LL_MCQA_ARC || (fmt == LL_MCQA_AUTO && *p == '[')) {
        cJSON *root = cJSON_Parse(p);
        if (!root) {
            st = ll_err(LL_ERR_FORMAT, "%s: not valid JSON (near byte %lld)", path,
                        (long long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - buf : 0));
        } else {
            if (fmt == LL_MCQA_AUTO) fmt = LL_MCQA_ARC;
            out->format = fmt;
            st = fmt == LL_MCQA_HEADQA ? ll_load_headqa(out, root, limit) : ll_load_arc(out, root, limit);
            cJSON_Delete(root);
        }
    } else {
        /* JSONL, unless AUTO finds one JSON document holding "exams" (HeadQA). */
        cJSON *root = NULL;
        if (fmt == LL_MCQA_AUTO) {
            const char *e = strchr(p, '\n');
            cJSON *first = cJSON_ParseWithLength(p, e ? (size_t)(e - p) : strlen(p));
            if (!first) root = cJSON_Parse(p);
            else if (cJSON_GetObjectItemCaseSensitive(first, "exams")) root = cJSON_Parse(p);
            cJSON_Delete(first);
            if (root && !cJSON_GetObjectItemCaseSensitive(root, "exams")) {
                cJSON_Delete(root);
                root = NULL;
            }
        }
        if (root) {
            out->format = LL_MCQA_HEADQA;
            st = ll_load_headqa(out, root, limit);
            cJSON_Delete(root);
        } else {
            st = ll_load_jsonl(out, buf, fmt, limit);
        }
    }
    free(buf);
    if (!st && out->n == 0) st = ll_err(LL_ERR_FORMAT, "%s: no records", path);
    if (st) ll_mcqa_set_free(out);
    return st;
}
