#include "ll_tensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ll_alloc.h"

void ll_tensor_set_free(ll_tensor_set *s) {
    for (size_t i = 0; i < s->n; i++) free(s->t[i].name);
    free(s->t);
    for (size_t i = 0; i < s->n_files; i++) ll_mmap_close(&s->files[i]);
    free(s->files);
    for (size_t i = 0; i < s->n_owned; i++) free(s->owned[i]);
    free(s->owned);
    memset(s, 0, sizeof *s);
}

ll_status ll_tensor_set_add(ll_tensor_set *s, const ll_tensor_info *t) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        ll_tensor_info *nt = realloc(s->t, cap * sizeof *nt);
        if (!nt) return ll_err(LL_ERR_NOMEM, "tensor table: cannot grow to %zu entries", cap);
        s->t = nt;
        s->cap = cap;
    }
    ll_tensor_info *d = &s->t[s->n];
    *d = *t;
    d->name = ll_strdup(t->name);
    if (!d->name) return LL_ERR_NOMEM;
    s->n++;
    return LL_OK;
}

ll_status ll_tensor_set_add_file(ll_tensor_set *s, ll_mmap *m, int *idx) {
    ll_mmap *nf = realloc(s->files, (s->n_files + 1) * sizeof *nf);
    if (!nf) return ll_err(LL_ERR_NOMEM, "tensor table: cannot record file %s", m->path);
    s->files = nf;
    s->files[s->n_files] = *m;
    memset(m, 0, sizeof *m);
    *idx = (int)s->n_files++;
    return LL_OK;
}

ll_status ll_tensor_set_own(ll_tensor_set *s, void *buf) {
    void **no = realloc(s->owned, (s->n_owned + 1) * sizeof *no);
    if (!no) {
        free(buf);
        return ll_err(LL_ERR_NOMEM, "tensor table: cannot record an owned buffer");
    }
    s->owned = no;
    s->owned[s->n_owned++] = buf;
    return LL_OK;
}

const ll_tensor_info *ll_tensor_set_find(const ll_tensor_set *s, const char *name) {
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->t[i].name, name) == 0) return &s->t[i];
    return NULL;
}

size_t ll_tensor_numel(const ll_tensor_info *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

void ll_tensor_shape_str(const ll_tensor_info *t, char *buf, size_t n) {
    size_t used = 0;
    used += (size_t)snprintf(buf + used, n - used, "[");
    for (int i = 0; i < t->ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

const char *ll_tensor_file(const ll_tensor_set *s, const ll_tensor_info *t) {
    if (t->file >= 0 && (size_t)t->file < s->n_files) return s->files[t->file].path;
    return "(synthesized)";
}
