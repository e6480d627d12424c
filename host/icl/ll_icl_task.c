/* ICL task loaders: JSON pair lists, the classic classification files, and the class
 * index of every item (see ll_icl_task.h). Generators live in ll_icl_gen.c. */
#include "ll_icl_task.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/ll_alloc.h"
#include "ll_icl_task_internal.h"

uint64_t ll_icl_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static bool ll_is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool ll_is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

const char *ll_icl_default_data_root(void) {
    static char buf[4096];
    const char *env = getenv("LAYERLAB_SHARED");
    if (env) {
        snprintf(buf, sizeof buf, "%s/assets", env);
        if (ll_is_dir(buf)) return buf;
    }
    if (ll_is_dir("../shared/assets")) return "../shared/assets";
    return NULL;
}

/* ---- building a task ------------------------------------------------------------- */

ll_status ll_icl_task_new(const char *name, const char *source, ll_icl_task **out) {
    ll_icl_task *t = ll_calloc(1, sizeof *t, "ICL task");
    if (!t) return LL_ERR_NOMEM;
    t->name = ll_strdup(name);
    t->source = ll_strdup(source);
    t->template_hint = "default";
    if (!t->name || !t->source) {
        ll_icl_task_free(t);
        return ll_err(LL_ERR_NOMEM, "ICL task: no memory");
    }
    *out = t;
    return LL_OK;
}

ll_status ll_icl_task_add(ll_icl_task *t, const char *in, size_t in_len, const char *outp, size_t out_len) {
    if ((t->n & (t->n - 1)) == 0) { /* grow at powers of two */
        size_t cap = t->n ? (size_t)t->n * 2 : 64;
        char **a = realloc(t->input, cap * sizeof *a);
        if (a) t->input = a;
        char **b = a ? realloc(t->output, cap * sizeof *b) : NULL;
        if (b) t->output = b;
        if (!a || !b) return ll_err(LL_ERR_NOMEM, "ICL task %s: no memory for items", t->name);
    }
    char *x = malloc(in_len + 1), *y = malloc(out_len + 1);
    if (!x || !y) {
        free(x);
        free(y);
        return ll_err(LL_ERR_NOMEM, "ICL task %s: no memory for items", t->name);
    }
    memcpy(x, in, in_len);
    x[in_len] = 0;
    memcpy(y, outp, out_len);
    y[out_len] = 0;
    t->input[t->n] = x;
    t->output[t->n] = y;
    t->n++;
    return LL_OK;
}

ll_status ll_icl_task_set_classes(ll_icl_task *t, const char *const *fixed, int n_fixed) {
    free(t->cls);
    t->cls = malloc((size_t)(t->n ? t->n : 1) * sizeof *t->cls);
    int cap = n_fixed > 0 ? n_fixed : (t->n ? t->n : 1);
    char **cl = calloc((size_t)cap, sizeof *cl);
    if (!t->cls || !cl) {
        free(cl);
        return ll_err(LL_ERR_NOMEM, "ICL task %s: no memory for classes", t->name);
    }
    int nc = 0;
    for (int i = 0; i < n_fixed; i++) {
        cl[nc] = ll_strdup(fixed[i]);
        if (!cl[nc++]) goto nomem;
    }
    for (int i = 0; i < t->n; i++) {
        int c = -1;
        for (int j = 0; j < nc && c < 0; j++)
            if (!strcmp(cl[j], t->output[i])) c = j;
        if (c < 0) {
            if (n_fixed > 0) {
                for (int j = 0; j < nc; j++) free(cl[j]);
                free(cl);
                return ll_err(LL_ERR_FORMAT, "%s: item %d: label \"%s\" is not one of the task's %d label words",
                              t->source, i, t->output[i], n_fixed);
            }
            cl[nc] = ll_strdup(t->output[i]);
            if (!cl[nc]) goto nomem;
            c = nc++;
        }
        t->cls[i] = c;
    }
    for (int i = 0; i < t->n_classes; i++) free(t->classes[i]);
    free(t->classes);
    t->classes = cl;
    t->n_classes = nc;
    t->classification = n_fixed > 0;
    return LL_OK;
nomem:
    for (int j = 0; j < nc; j++) free(cl[j]);
    free(cl);
    return ll_err(LL_ERR_NOMEM, "ICL task %s: no memory for classes", t->name);
}

void ll_icl_task_free(ll_icl_task *t) {
    if (!t) return;
    for (int i = 0; i < t->n; i++) {
        free(t->input[i]);
        free(t->output[i]);
    }
    for (int i = 0; i < t->n_classes; i++) free(t->classes[i]);
    free(t->input);
    free(t->output);
    free(t->cls);
    free(t->classes);
    free(t->name);
    free(t->source);
    free(t->rule);
    free(t);
}

ll_status ll_icl_task_sample(const ll_icl_task *t, uint64_t *rng, int k, int *demo, int *query) {
    if (k < 0 || k + 1 > t->n)
        return ll_err(LL_ERR_ARG, "ICL task %s: %d demonstrations and a query need %d distinct items, the task has %d",
                      t->name, k, k + 1, t->n);
    /* Rejection of repeats: k is small next to n in every use here. */
    for (int i = 0; i <= k; i++) {
        for (;;) {
            int x = (int)(ll_icl_rand(rng) % (uint64_t)t->n), dup = 0;
            for (int j = 0; j < i; j++) dup |= (j < k ? demo[j] : *query) == x;
            if (!dup) {
                if (i < k) demo[i] = x;
                else *query = x;
                break;
            }
        }
    }
    return LL_OK;
}

/* ---- files ----------------------------------------------------------------------- */

ll_status ll_icl_read_file(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return ll_err(LL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *nb = realloc(b, cap *= 2);
        if (!nb) free(b);
        b = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (!b) return ll_err(LL_ERR_NOMEM, "%s: no memory to read it", path);
    if (err) {
        free(b);
        return ll_err(LL_ERR_IO, "%s: read error", path);
    }
    b[n] = 0;
    *out = b;
    *len = n;
    return LL_OK;
}

static int ll_line_of(const char *s, const char *at) {
    int line = 1;
    for (const char *p = s; p < at && *p; p++) line += *p == '\n';
    return line;
}

static const char *ll_json_kind(const cJSON *v) {
    if (!v) return "nothing";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsArray(v)) return "a list";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "something else";
}

ll_status ll_icl_task_parse_json(const char *json, size_t len, const char *file, ll_icl_task **out) {
    *out = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        const char *at = end ? end : cJSON_GetErrorPtr();
        return ll_err(LL_ERR_FORMAT, "%s:%d: not valid JSON", file, at ? ll_line_of(json, at) : 1);
    }
    const char *base = strrchr(file, '/');
    char name[256];
    snprintf(name, sizeof name, "%s", base ? base + 1 : file);
    char *dot = strrchr(name, '.');
    if (dot) *dot = 0;
    ll_icl_task *t;
    ll_status st = ll_icl_task_new(name, file, &t);
    if (st) goto done;
    if (cJSON_IsArray(root)) {
        int i = 0;
        for (cJSON *it = root->child; it; it = it->next, i++) {
            if (!cJSON_IsObject(it)) {
                st = ll_err(LL_ERR_FORMAT, "%s: item %d: expected an object {\"input\": .., \"output\": ..}, found %s",
                            file, i, ll_json_kind(it));
                goto done;
            }
            const char *names[2] = {"input", "output"};
            const char *v[2];
            for (int f = 0; f < 2; f++) {
                cJSON *x = cJSON_GetObjectItemCaseSensitive(it, names[f]);
                if (!cJSON_IsString(x)) {
                    st = ll_err(x ? LL_ERR_FORMAT : LL_ERR_MISSING, "%s: item %d: field \"%s\": expected a string, found %s",
                                file, i, names[f], ll_json_kind(x));
                    goto done;
                }
                v[f] = x->valuestring;
            }
            if ((st = ll_icl_task_add(t, v[0], strlen(v[0]), v[1], strlen(v[1])))) goto done;
        }
    } else if (cJSON_IsObject(root)) {
        for (cJSON *it = root->child; it; it = it->next) {
            if (!cJSON_IsString(it)) {
                st = ll_err(LL_ERR_FORMAT, "%s: field \"%s\": expected a string (the output), found %s", file,
                            it->string, ll_json_kind(it));
                goto done;
            }
            if ((st = ll_icl_task_add(t, it->string, strlen(it->string), it->valuestring, strlen(it->valuestring))))
                goto done;
        }
    } else {
        st = ll_err(LL_ERR_FORMAT, "%s: expected a list of {\"input\", \"output\"} objects or an object {input: output}, found %s",
                    file, ll_json_kind(root));
        goto done;
    }
    if (t->n < 2) {
        st = ll_err(LL_ERR_FORMAT, "%s: %d items; an ICL task needs at least 2", file, t->n);
        goto done;
    }
    st = ll_icl_task_set_classes(t, NULL, 0);
done:
    cJSON_Delete(root);
    if (st) ll_icl_task_free(t);
    else *out = t;
    return st;
}

static ll_status ll_load_json(const char *path, ll_icl_task **out) {
    char *buf;
    size_t len;
    LL_TRY(ll_icl_read_file(path, &buf, &len));
    ll_status st = ll_icl_task_parse_json(buf, len, path, out);
    free(buf);
    return st;
}

/* Next line of a text buffer: [*p, eol) with the newline (and a \r) stripped. */
static bool ll_next_line(const char **p, const char *end, const char **ls, size_t *ll) {
    if (*p >= end) return false;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *e = nl ? nl : end;
    *ls = *p;
    *ll = (size_t)(e - *p);
    if (*ll && (*ls)[*ll - 1] == '\r') (*ll)--;
    *p = nl ? nl + 1 : end;
    return true;
}

/* SST-2 (stsa.binary.*): "L text" per line, L = 0 negative, 1 positive. */
static ll_status ll_parse_sst2(ll_icl_task *t, const char *buf, size_t len) {
    const char *p = buf, *ls;
    size_t ll;
    int line = 0;
    static const char *const lab[2] = {"negative", "positive"};
    while (ll_next_line(&p, buf + len, &ls, &ll)) {
        line++;
        if (!ll) continue;
        if (ll < 3 || (ls[0] != '0' && ls[0] != '1') || ls[1] != ' ')
            return ll_err(LL_ERR_FORMAT, "%s:%d: expected \"0 text\" or \"1 text\", found \"%.40s\"", t->source, line, ls);
        LL_TRY(ll_icl_task_add(t, ls + 2, ll - 2, lab[ls[0] - '0'], strlen(lab[ls[0] - '0'])));
    }
    return ll_icl_task_set_classes(t, lab, 2);
}

/* TREC: "COARSE:fine question" per line. */
static ll_status ll_parse_trec(ll_icl_task *t, const char *buf, size_t len) {
    static const char *const code[6] = {"ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"};
    static const char *const lab[6] = {"abbreviation", "entity", "description", "person", "location", "number"};
    const char *p = buf, *ls;
    size_t ll;
    int line = 0;
    while (ll_next_line(&p, buf + len, &ls, &ll)) {
        line++;
        if (!ll) continue;
        const char *colon = memchr(ls, ':', ll), *sp = memchr(ls, ' ', ll);
        int c = -1;
        for (int i = 0; i < 6 && colon; i++)
            if ((size_t)(colon - ls) == strlen(code[i]) && !memcmp(ls, code[i], strlen(code[i]))) c = i;
        if (c < 0 || !sp || sp < colon)
            return ll_err(LL_ERR_FORMAT, "%s:%d: expected \"COARSE:fine question\" with COARSE one of ABBR ENTY DESC HUM LOC NUM, found \"%.40s\"",
                          t->source, line, ls);
        LL_TRY(ll_icl_task_add(t, sp + 1, ll - (size_t)(sp + 1 - ls), lab[c], strlen(lab[c])));
    }
    return ll_icl_task_set_classes(t, lab, 6);
}

/* One CSV field (RFC 4180 quoting) starting at *p; appended unquoted to out. */
static bool ll_csv_field(const char **p, const char *end, char *out, size_t *on, size_t cap) {
    const char *s = *p;
    *on = 0;
    if (s < end && *s == '"') {
        s++;
        for (;;) {
            if (s >= end) return false;
            if (*s == '"') {
                if (s + 1 < end && s[1] == '"') {
                    if (*on < cap) out[(*on)++] = '"';
                    s += 2;
                    continue;
                }
                s++;
                break;
            }
            if (*on < cap) out[(*on)++] = *s;
            s++;
        }
    } else {
        while (s < end && *s != ',' && *s != '\n' && *s != '\r') {
            if (*on < cap) out[(*on)++] = *s;
            s++;
        }
    }
    *p = s;
    return true;
}

/* AG News test.csv: "Class Index,Title,Description" with a header line; input is
 * "Title Description". */
static ll_status ll_parse_agnews(ll_icl_task *t, const char *buf, size_t len) {
    static const char *const lab[4] = {"World", "Sports", "Business", "Technology"};
    const char *p = buf, *end = buf + len;
    int line = 1;
    const char *nl = memchr(p, '\n', len);
    if (!nl || strncmp(p, "Class Index", 11))
        return ll_err(LL_ERR_FORMAT, "%s:1: expected the header \"Class Index,Title,Description\"", t->source);
    p = nl + 1;
    size_t cap = 1 << 16;
    char *f[3];
    size_t fn[3];
    for (int i = 0; i < 3; i++) f[i] = malloc(cap);
    char *in = malloc(2 * cap + 2);
    ll_status st = LL_OK;
    if (!f[0] || !f[1] || !f[2] || !in) {
        st = ll_err(LL_ERR_NOMEM, "%s: no memory", t->source);
        goto done;
    }
    while (p < end) {
        line++;
        if (*p == '\n' || *p == '\r') {
            p++;
            continue;
        }
        int startline = line;
        for (int i = 0; i < 3; i++) {
            const char *before = p;
            if (!ll_csv_field(&p, end, f[i], &fn[i], cap)) {
                st = ll_err(LL_ERR_FORMAT, "%s:%d: unterminated quoted field", t->source, startline);
                goto done;
            }
            for (const char *q = before; q < p; q++) line += *q == '\n';
            if (i < 2) {
                if (p >= end || *p != ',') {
                    st = ll_err(LL_ERR_FORMAT, "%s:%d: expected 3 comma-separated fields (class, title, description)",
                                t->source, startline);
                    goto done;
                }
                p++;
            }
        }
        while (p < end && *p != '\n') p++;
        if (p < end) p++;
        if (fn[0] != 1 || f[0][0] < '1' || f[0][0] > '4') {
            st = ll_err(LL_ERR_FORMAT, "%s:%d: field \"Class Index\": expected 1-4, found \"%.*s\"", t->source,
                        startline, (int)(fn[0] < 20 ? fn[0] : 20), f[0]);
            goto done;
        }
        memcpy(in, f[1], fn[1]);
        in[fn[1]] = ' ';
        memcpy(in + fn[1] + 1, f[2], fn[2]);
        int c = f[0][0] - '1';
        if ((st = ll_icl_task_add(t, in, fn[1] + 1 + fn[2], lab[c], strlen(lab[c])))) goto done;
    }
    st = ll_icl_task_set_classes(t, lab, 4);
done:
    for (int i = 0; i < 3; i++) free(f[i]);
    free(in);
    return st;
}

/* CB / RTE jsonl: {"premise", "hypothesis", "label"} per line. */
static ll_status ll_parse_nli(ll_icl_task *t, const char *buf, size_t len, bool cb) {
    static const char *const cb_lab[3] = {"true", "false", "neither"};
    static const char *const cb_src[3] = {"entailment", "contradiction", "neutral"};
    static const char *const rte_lab[2] = {"True", "False"};
    static const char *const rte_src[2] = {"entailment", "not_entailment"};
    const char *p = buf, *ls;
    size_t ll;
    int line = 0;
    while (ll_next_line(&p, buf + len, &ls, &ll)) {
        line++;
        if (!ll) continue;
        cJSON *o = cJSON_ParseWithLength(ls, ll);
        if (!o || !cJSON_IsObject(o)) {
            cJSON_Delete(o);
            return ll_err(LL_ERR_FORMAT, "%s:%d: expected a JSON object per line", t->source, line);
        }
        const char *f[3] = {"premise", "hypothesis", "label"};
        const char *v[3];
        for (int i = 0; i < 3; i++) {
            cJSON *x = cJSON_GetObjectItemCaseSensitive(o, f[i]);
            if (!cJSON_IsString(x)) {
                ll_status st = ll_err(LL_ERR_FORMAT, "%s:%d: field \"%s\": expected a string, found %s", t->source,
                                      line, f[i], ll_json_kind(x));
                cJSON_Delete(o);
                return st;
            }
            v[i] = x->valuestring;
        }
        int n = cb ? 3 : 2, c = -1;
        for (int i = 0; i < n; i++)
            if (!strcmp(v[2], cb ? cb_src[i] : rte_src[i])) c = i;
        if (c < 0) {
            ll_status st = ll_err(LL_ERR_FORMAT, "%s:%d: field \"label\": expected %s, found \"%s\"", t->source, line,
                                  cb ? "entailment, contradiction or neutral" : "entailment or not_entailment", v[2]);
            cJSON_Delete(o);
            return st;
        }
        size_t need = strlen(v[0]) + strlen(v[1]) + 64;
        char *in = malloc(need);
        if (!in) {
            cJSON_Delete(o);
            return ll_err(LL_ERR_NOMEM, "%s: no memory", t->source);
        }
        snprintf(in, need, "%s\nquestion: %s %s", v[0], v[1], cb ? "true, false or neither?" : "True or False?");
        const char *l = cb ? cb_lab[c] : rte_lab[c];
        ll_status st = ll_icl_task_add(t, in, strlen(in), l, strlen(l));
        free(in);
        cJSON_Delete(o);
        LL_TRY(st);
    }
    return cb ? ll_icl_task_set_classes(t, cb_lab, 3) : ll_icl_task_set_classes(t, rte_lab, 2);
}

static ll_status ll_load_classic(const char *name, const char *root, const char *split, ll_icl_task **out) {
    char path[4096];
    const char *sp = split ? split : "train";
    int kind = !strcmp(name, "sst2") ? 0 : !strcmp(name, "trec") ? 1 : !strcmp(name, "agnews") ? 2 : !strcmp(name, "cb") ? 3 : 4;
    if (kind == 0) snprintf(path, sizeof path, "%s/icl-calibrate-before-use/sst2/stsa.binary.%s", root, sp);
    else if (kind == 1) snprintf(path, sizeof path, "%s/icl-calibrate-before-use/trec/%s.txt", root, sp);
    else if (kind == 2) {
        if (split && strcmp(split, "test"))
            return ll_err(LL_ERR_ARG, "task agnews: only the test split is bundled (asked for \"%s\")", split);
        snprintf(path, sizeof path, "%s/icl-calibrate-before-use/agnews/test.csv", root);
    } else snprintf(path, sizeof path, "%s/icl-calibrate-before-use/%s/%s.jsonl", root, name, sp);
    char *buf;
    size_t len;
    LL_TRY(ll_icl_read_file(path, &buf, &len));
    ll_icl_task *t;
    ll_status st = ll_icl_task_new(name, path, &t);
    if (!st) {
        st = kind == 0 ? ll_parse_sst2(t, buf, len)
             : kind == 1 ? ll_parse_trec(t, buf, len)
             : kind == 2 ? ll_parse_agnews(t, buf, len)
                         : ll_parse_nli(t, buf, len, kind == 3);
        static const char *const hint[5] = {"wang", "wang-trec", "wang-agnews", "nli", "nli"};
        t->template_hint = hint[kind];
        if (!st && t->n < 2) st = ll_err(LL_ERR_FORMAT, "%s: %d items; an ICL task needs at least 2", path, t->n);
    }
    free(buf);
    if (st) ll_icl_task_free(t);
    else *out = t;
    return st;
}

static ll_status ll_cap_items(ll_icl_task *t, int max_items) {
    if (max_items <= 0 || t->n <= max_items) return LL_OK;
    for (int i = max_items; i < t->n; i++) {
        free(t->input[i]);
        free(t->output[i]);
    }
    t->n = max_items;
    if (t->classification) {
        /* keep the fixed label set */
        char **fixed = t->classes;
        int nf = t->n_classes;
        t->classes = NULL;
        t->n_classes = 0;
        ll_status st = ll_icl_task_set_classes(t, (const char *const *)fixed, nf);
        for (int i = 0; i < nf; i++) free(fixed[i]);
        free(fixed);
        return st;
    }
    for (int i = 0; i < t->n_classes; i++) free(t->classes[i]);
    free(t->classes);
    t->classes = NULL;
    t->n_classes = 0;
    return ll_icl_task_set_classes(t, NULL, 0);
}

ll_status ll_icl_task_load(const char *spec, const ll_icl_task_opts *opts, ll_icl_task **out) {
    *out = NULL;
    ll_icl_task_opts o = opts ? *opts : (ll_icl_task_opts){0};
    ll_status st;
    if (!spec || !*spec) return ll_err(LL_ERR_ARG, "ICL task: empty task name");
    if (!strncmp(spec, "gen:", 4)) st = ll_icl_task_generate(spec + 4, &o, out);
    else if (!strncmp(spec, "toy:", 4)) st = ll_icl_task_toy(spec + 4, out);
    else if (ll_is_file(spec)) st = ll_load_json(spec, out);
    else {
        const char *root = o.data_root ? o.data_root : ll_icl_default_data_root();
        if (!root)
            return ll_err(LL_ERR_MISSING,
                          "task \"%s\": not a file, and no data root (../shared/assets or $LAYERLAB_SHARED/assets) to look "
                          "it up in",
                          spec);
        if (!strcmp(spec, "sst2") || !strcmp(spec, "trec") || !strcmp(spec, "agnews") || !strcmp(spec, "cb") ||
            !strcmp(spec, "rte"))
            st = ll_load_classic(spec, root, o.split, out);
        else {
            static const char *const dirs[] = {"icl-function-vectors/abstractive", "icl-function-vectors/extractive",
                                               "icl-task-vectors/knowledge", "icl-task-vectors/linguistic",
                                               "icl-task-vectors/translation"};
            char path[4096];
            st = LL_ERR_MISSING;
            for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
                snprintf(path, sizeof path, "%s/%s/%s.json", root, dirs[i], spec);
                if (ll_is_file(path)) {
                    st = ll_load_json(path, out);
                    break;
                }
            }
            if (st == LL_ERR_MISSING)
                return ll_err(LL_ERR_MISSING,
                              "task \"%s\": not a file, not sst2/trec/agnews/cb/rte, gen:RULE or toy:TABLE, and no "
                              "%s/{icl-function-vectors/abstractive,extractive,icl-task-vectors/knowledge,linguistic,"
                              "translation}/%s.json",
                              spec, root, spec);
        }
    }
    if (st) return st;
    if ((st = ll_cap_items(*out, o.max_items))) {
        ll_icl_task_free(*out);
        *out = NULL;
    }
    return st;
}
