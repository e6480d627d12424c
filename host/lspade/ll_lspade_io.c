/* L-SPADE maps as safetensors: one F32 tensor per layer and the fit's switches and
 * figures as string metadata. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ll_hash.h"
#include "io/ll_tensors.h"
#include "ll_lspade.h"

/* The same fold as host/dump's weights_hash, so a maps file and a dump of one model carry
 * the same identity. */
void ll_lspade_model_hash(const ll_model *m, char *buf, size_t n) {
    uint64_t h = ll_hash_mix(0, m->ts.n_files);
    for (size_t i = 0; i < m->ts.n_files; i++)
        h = ll_hash_mix(h, ll_hash_bytes(m->ts.files[i].data, m->ts.files[i].size, 7));
    snprintf(buf, n, "llh64:%016llx", (unsigned long long)h);
}

static void ll_meta_num(cJSON *j, const char *key, double v) {
    char b[64];
    snprintf(b, sizeof b, "%.17g", v);
    cJSON_AddStringToObject(j, key, b);
}

ll_status ll_lspade_save(const ll_lspade_maps *maps, const char *path) {
    int L = maps->n_layers, p = maps->d_model + 1, q = maps->d_out;
    cJSON *h = cJSON_CreateObject(), *meta = maps->meta_json ? cJSON_Parse(maps->meta_json) : NULL;
    if (!meta || !cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        meta = cJSON_CreateObject();
    }
    /* The fields the loader relies on override whatever the free-form metadata says. */
    const char *keys[] = {"format", "target", "norm_input", "n_layers", "d_model", "d_out", "K"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) cJSON_DeleteItemFromObjectCaseSensitive(meta, keys[i]);
    cJSON_AddStringToObject(meta, "format", "layerlab-lspade");
    cJSON_AddStringToObject(meta, "target", ll_lspade_target_name(maps->target));
    cJSON_AddStringToObject(meta, "norm_input", maps->norm_input ? "true" : "false");
    ll_meta_num(meta, "n_layers", L);
    ll_meta_num(meta, "d_model", maps->d_model);
    ll_meta_num(meta, "d_out", q);
    ll_meta_num(meta, "K", maps->K);
    size_t off = 0, per = (size_t)p * q * sizeof(float);
    char name[64];
    for (int l = 0; l <= L; l++) {
        if (!maps->W[l]) continue;
        snprintf(name, sizeof name, "W.%d", l);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "dtype", "F32");
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(p));
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(q));
        cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + per)));
        cJSON_AddItemToObject(h, name, t);
        off += per;
        snprintf(name, sizeof name, "lambda.%d", l);
        ll_meta_num(meta, name, maps->lambda[l]);
        snprintf(name, sizeof name, "lambda_rel.%d", l);
        ll_meta_num(meta, name, maps->lambda_rel[l]);
        snprintf(name, sizeof name, "val_mse.%d", l);
        ll_meta_num(meta, name, maps->val_mse[l]);
        snprintf(name, sizeof name, "train_mse.%d", l);
        ll_meta_num(meta, name, maps->train_mse[l]);
        snprintf(name, sizeof name, "val_agree.%d", l);
        ll_meta_num(meta, name, maps->val_agree[l]);
    }
    cJSON_AddItemToObject(h, "__metadata__", meta);
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!js) return ll_err(LL_ERR_NOMEM, "%s: no memory for the header", path);
    size_t hl = strlen(js), pad = (8 - hl % 8) % 8;
    uint64_t hlen = hl + pad;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(js);
        return ll_err(LL_ERR_IO, "%s: cannot create", tmp);
    }
    int ok = fwrite(&hlen, 8, 1, f) == 1 && fwrite(js, 1, hl, f) == hl;
    for (size_t i = 0; i < pad && ok; i++) ok = fputc(' ', f) != EOF;
    for (int l = 0; l <= L && ok; l++)
        if (maps->W[l]) ok = fwrite(maps->W[l], 1, per, f) == per;
    free(js);
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return ll_err(LL_ERR_IO, "%s: write failed", path);
    }
    return LL_OK;
}

/* The __metadata__ object of a safetensors file, as text. */
static ll_status ll_read_meta(const char *path, cJSON **out) {
    FILE *f = fopen(path, "rb");
    if (!f) return ll_err(LL_ERR_IO, "%s: cannot open", path);
    uint64_t hl = 0;
    char *js = NULL;
    ll_status st = LL_OK;
    if (fread(&hl, 8, 1, f) != 1 || hl == 0 || hl > (1u << 26)) st = ll_err(LL_ERR_FORMAT, "%s: not a safetensors file", path);
    if (!st && !(js = malloc(hl + 1))) st = ll_err(LL_ERR_NOMEM, "%s: header of %llu bytes", path, (unsigned long long)hl);
    if (!st && fread(js, 1, hl, f) != hl) st = ll_err(LL_ERR_FORMAT, "%s: truncated header", path);
    fclose(f);
    if (st) {
        free(js);
        return st;
    }
    js[hl] = 0;
    cJSON *h = cJSON_Parse(js);
    free(js);
    cJSON *meta = h ? cJSON_DetachItemFromObjectCaseSensitive(h, "__metadata__") : NULL;
    cJSON_Delete(h);
    if (!meta || !cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        return ll_err(LL_ERR_FORMAT, "%s: no \"__metadata__\" object: not an L-SPADE maps file", path);
    }
    *out = meta;
    return LL_OK;
}

static ll_status ll_meta_int(const cJSON *meta, const char *path, const char *key, int *v) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(meta, key);
    if (!cJSON_IsString(e)) return ll_err(LL_ERR_FORMAT, "%s: metadata field \"%s\" missing", path, key);
    char *end;
    long x = strtol(e->valuestring, &end, 10);
    if (*end || x < 0 || x > (1 << 30))
        return ll_err(LL_ERR_FORMAT, "%s: metadata field \"%s\": expected a count, found \"%s\"", path, key, e->valuestring);
    *v = (int)x;
    return LL_OK;
}

static double ll_meta_double(const cJSON *meta, const char *key) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(meta, key);
    return cJSON_IsString(e) ? strtod(e->valuestring, NULL) : NAN;
}

ll_status ll_lspade_load(ll_lspade_maps **out, const char *path, const ll_model *m) {
    *out = NULL;
    cJSON *meta = NULL;
    LL_TRY(ll_read_meta(path, &meta));
    ll_status st = LL_OK;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(meta, "format");
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(meta, "target");
    const cJSON *ni = cJSON_GetObjectItemCaseSensitive(meta, "norm_input");
    int L = 0, d = 0, q = 0, K = 0;
    ll_lspade_target target = LL_LSPADE_TARGET_LOGITS;
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "layerlab-lspade"))
        st = ll_err(LL_ERR_FORMAT, "%s: metadata \"format\": expected layerlab-lspade, found %s", path,
                    cJSON_IsString(fmt) ? fmt->valuestring : "nothing");
    if (!st) st = ll_meta_int(meta, path, "n_layers", &L);
    if (!st) st = ll_meta_int(meta, path, "d_model", &d);
    if (!st) st = ll_meta_int(meta, path, "d_out", &q);
    if (!st) st = ll_meta_int(meta, path, "K", &K);
    if (!st && !cJSON_IsString(tg)) st = ll_err(LL_ERR_FORMAT, "%s: metadata field \"target\" missing", path);
    if (!st) st = ll_lspade_parse_target(tg->valuestring, &target);
    if (!st && (target == LL_LSPADE_TARGET_LOGITS ? q != K : q != d))
        st = ll_err(LL_ERR_FORMAT, "%s: d_out %d does not fit target %s (K %d, d_model %d)", path, q,
                    ll_lspade_target_name(target), K, d);
    if (!st && m && (m->cfg.d_model != d || m->cfg.n_layers != L))
        st = ll_err(LL_ERR_SHAPE, "%s: maps for d_model %d and %d layers, the model has %d and %d", path, d, L,
                    m->cfg.d_model, m->cfg.n_layers);
    const cJSON *mh = cJSON_GetObjectItemCaseSensitive(meta, "model_hash");
    if (!st && m && cJSON_IsString(mh)) {
        char have[32];
        ll_lspade_model_hash(m, have, sizeof have);
        if (strcmp(have, mh->valuestring))
            st = ll_err(LL_ERR_ARG, "%s: maps fitted for the model with weights %s, this model (%s) has %s", path,
                        mh->valuestring, m->path ? m->path : "?", have);
    }
    ll_lspade_maps *maps = NULL;
    ll_tensor_set ts = {0};
    if (!st) st = ll_lspade_maps_alloc(&maps, L, d, q, K);
    if (!st) st = ll_safetensors_open(&ts, path);
    int found = 0;
    for (int l = 0; l <= L && !st; l++) {
        char name[64];
        snprintf(name, sizeof name, "W.%d", l);
        const ll_tensor_info *t = ll_tensor_set_find(&ts, name);
        if (!t) continue;
        if (t->ndim != 2 || t->shape[0] != d + 1 || t->shape[1] != q || t->dtype != LL_F32) {
            char sh[64];
            ll_tensor_shape_str(t, sh, sizeof sh);
            st = ll_err(LL_ERR_SHAPE, "%s: tensor %s: expected F32 [%d, %d], found %s %s", path, name, d + 1, q,
                        ll_dtype_name(t->dtype), sh);
            break;
        }
        maps->W[l] = malloc(t->nbytes);
        if (!maps->W[l]) {
            st = ll_err(LL_ERR_NOMEM, "%s: no memory for %s", path, name);
            break;
        }
        memcpy(maps->W[l], t->data, t->nbytes);
        found++;
        snprintf(name, sizeof name, "lambda.%d", l);
        maps->lambda[l] = ll_meta_double(meta, name);
        snprintf(name, sizeof name, "lambda_rel.%d", l);
        maps->lambda_rel[l] = ll_meta_double(meta, name);
        snprintf(name, sizeof name, "val_mse.%d", l);
        maps->val_mse[l] = ll_meta_double(meta, name);
        snprintf(name, sizeof name, "train_mse.%d", l);
        maps->train_mse[l] = ll_meta_double(meta, name);
        snprintf(name, sizeof name, "val_agree.%d", l);
        maps->val_agree[l] = ll_meta_double(meta, name);
    }
    if (!st && !found) st = ll_err(LL_ERR_MISSING, "%s: no W.<layer> tensors", path);
    ll_tensor_set_free(&ts);
    if (!st) {
        maps->target = target;
        maps->norm_input = cJSON_IsString(ni) && !strcmp(ni->valuestring, "true");
        maps->meta_json = cJSON_PrintUnformatted(meta);
    }
    cJSON_Delete(meta);
    if (st) {
        ll_lspade_maps_free(maps);
        return st;
    }
    *out = maps;
    return LL_OK;
}
