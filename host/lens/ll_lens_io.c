/* Saving and loading a tuned lens as safetensors ("A.{l}" [d][d], "b.{l}" [d], F32). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/ll_tensors.h"
#include "ll_lens.h"

ll_status ll_tuned_lens_save(const ll_tuned_lens *t, const char *path, const char *meta_json) {
    int L = t->n_layers;
    size_t d = (size_t)t->d_model;
    cJSON *h = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
    if (meta_json) {
        cJSON *extra = cJSON_Parse(meta_json);
        if (!extra || !cJSON_IsObject(extra)) {
            cJSON_Delete(extra);
            cJSON_Delete(h);
            return ll_err(LL_ERR_ARG, "tuned lens: metadata must be a JSON object of strings");
        }
        for (cJSON *x = extra->child; x; x = x->next)
            if (cJSON_IsString(x)) cJSON_AddStringToObject(meta, x->string, x->valuestring);
        cJSON_Delete(extra);
    }
    char num[32];
    cJSON_AddStringToObject(meta, "format", "layerlab-tuned-lens");
    snprintf(num, sizeof num, "%d", L);
    cJSON_AddStringToObject(meta, "n_layers", num);
    snprintf(num, sizeof num, "%zu", d);
    cJSON_AddStringToObject(meta, "d_model", num);
    size_t off = 0;
    for (int l = 0; l < L; l++) {
        char name[32];
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, k ? "b.%d" : "A.%d", l);
            size_t bytes = (k ? d : d * d) * sizeof(float);
            cJSON *e = cJSON_AddObjectToObject(h, name);
            cJSON_AddStringToObject(e, "dtype", "F32");
            double sh[2] = {(double)d, (double)d};
            cJSON_AddItemToObject(e, "shape", cJSON_CreateDoubleArray(sh, k ? 1 : 2));
            double offs[2] = {(double)off, (double)(off + bytes)};
            cJSON_AddItemToObject(e, "data_offsets", cJSON_CreateDoubleArray(offs, 2));
            off += bytes;
        }
    }
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!js) return ll_err(LL_ERR_NOMEM, "tuned lens: no memory for the header");
    size_t hl = strlen(js), pad = (8 - hl % 8) % 8;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(js);
        return ll_err(LL_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    uint64_t h64 = hl + pad;
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(h64 >> (8 * i));
    bool ok = fwrite(lenb, 1, 8, f) == 8 && fwrite(js, 1, hl, f) == hl && fwrite("        ", 1, pad, f) == pad;
    /* Little-endian hosts only, as the reader. */
    for (int l = 0; l < L && ok; l++)
        ok = fwrite(t->A + (size_t)l * d * d, sizeof(float), d * d, f) == d * d &&
             fwrite(t->b + (size_t)l * d, sizeof(float), d, f) == d;
    free(js);
    if (fclose(f) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return ll_err(LL_ERR_IO, "%s: write failed", path);
    }
    return LL_OK;
}

ll_status ll_tuned_lens_load(ll_tuned_lens **out, const char *path, const ll_model *m) {
    *out = NULL;
    ll_tensor_set s = {0};
    LL_TRY(ll_safetensors_open(&s, path));
    ll_status st = LL_OK;
    const ll_tensor_info *a0 = ll_tensor_set_find(&s, "A.0");
    int L = 0;
    char name[32];
    for (;; L++) {
        snprintf(name, sizeof name, "A.%d", L);
        if (!ll_tensor_set_find(&s, name)) break;
    }
    if (!a0 || a0->ndim != 2 || a0->shape[0] != a0->shape[1]) {
        st = ll_err(LL_ERR_FORMAT, "%s: not a tuned lens (tensor \"A.0\" [d, d] missing)", path);
        goto done;
    }
    int d = (int)a0->shape[0];
    if (m && (m->cfg.n_layers != L || m->cfg.d_model != d)) {
        st = ll_err(LL_ERR_SHAPE, "%s: tuned lens for %d layers x %d, the model has %d x %d", path, L, d,
                    m->cfg.n_layers, m->cfg.d_model);
        goto done;
    }
    ll_tuned_lens *t;
    if ((st = ll_tuned_lens_new(&t, L, d))) goto done;
    for (int l = 0; l < L && !st; l++)
        for (int k = 0; k < 2 && !st; k++) {
            snprintf(name, sizeof name, k ? "b.%d" : "A.%d", l);
            const ll_tensor_info *ti = ll_tensor_set_find(&s, name);
            size_t want = k ? (size_t)d : (size_t)d * d;
            if (!ti || ti->dtype != LL_F32 || ll_tensor_numel(ti) != want || ti->ndim != (k ? 1 : 2))
                st = ll_err(LL_ERR_SHAPE, "%s: tensor \"%s\": expected F32 %s[%d%s], %s", path, name, "", d,
                            k ? "" : ", d", ti ? "found another dtype or shape" : "missing");
            else memcpy(k ? t->b + (size_t)l * d : t->A + (size_t)l * d * d, ti->data, want * sizeof(float));
        }
    if (st) ll_tuned_lens_free(t);
    else *out = t;
done:
    ll_tensor_set_free(&s);
    return st;
}
