/* The generation loop. The cache is sized once for prompt + new tokens (capped at
 * the model's context), so decode never reallocates. The prompt is one forward pass;
 * each new token is a step of ll_decoder, the entry point a backend can make cheaper
 * to launch than a full forward call. */
#include "ll_generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../model/ll_decoder.h"

static double ll_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ll_generation_free(ll_generation *g) {
    free(g->ids);
    memset(g, 0, sizeof *g);
}

ll_status ll_generate(ll_model *m, const ll_tokenizer *t, const int32_t *prompt, int n_prompt, const ll_generate_opts *o,
                      ll_generation *out) {
    memset(out, 0, sizeof *out);
    int V = m->cfg.vocab_size;
    if (n_prompt < 1) return ll_err(LL_ERR_ARG, "generate: the prompt has no tokens (give text, or let the tokenizer add BOS)");
    if (o->max_new_tokens < 0) return ll_err(LL_ERR_ARG, "generate: max_new_tokens is negative (%d)", o->max_new_tokens);
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return ll_err(LL_ERR_ARG, "generate: prompt token %d has id %d, outside the model's vocabulary of %d", i,
                          (int)prompt[i], V);
    int ctx = m->cfg.max_pos > 0 ? m->cfg.max_pos : n_prompt + o->max_new_tokens;
    if (n_prompt > ctx)
        return ll_err(LL_ERR_ARG, "generate: the prompt has %d tokens, more than the model's context of %d", n_prompt, ctx);
    int cap = n_prompt + o->max_new_tokens < ctx ? n_prompt + o->max_new_tokens : ctx;
    if (cap < 1) cap = 1;
    ll_status st = LL_OK;
    ll_kv_cache *kc = NULL;
    ll_decoder *dec = NULL;
    ll_sampler sm = {0};
    ll_detok_stream ds = {0};
    float *lg = malloc((size_t)V * sizeof *lg);
    out->ids = malloc((size_t)(n_prompt + o->max_new_tokens + 1) * sizeof *out->ids);
    if (!lg || !out->ids) {
        st = ll_err(LL_ERR_NOMEM, "generate: no memory");
        goto done;
    }
    memcpy(out->ids, prompt, (size_t)n_prompt * sizeof *prompt);
    out->n_prompt = out->n = n_prompt;
    if ((st = ll_kv_cache_new(&kc, m, 1, cap))) goto done;
    if ((st = ll_decoder_new(&dec, m, kc, 0))) goto done;
    if ((st = ll_sampler_init(&sm, &o->sample, V))) goto done;
    if (t && (st = ll_detok_stream_init(&ds, t, prompt, (size_t)n_prompt, true))) goto done;

    double t0 = ll_now();
    int64_t off[2] = {0, n_prompt};
    ll_batch b = {.n_seq = 1, .seq_off = off, .tokens = prompt};
    ll_forward_opts fo = {.cache = kc, .logits = LL_LOGITS_LAST, .logits_out = lg};
    if ((st = ll_forward(m, &b, &fo))) goto done;
    out->prefill_s = ll_now() - t0;
    out->stop = "max_new_tokens";
    double t1 = ll_now();
    for (int i = 0; i < o->max_new_tokens; i++) {
        if (out->n >= ctx) {
            out->stop = "context";
            break;
        }
        int32_t next = ll_sample(&sm, lg, V);
        if (!o->ignore_eos && t && next == ll_tokenizer_eos(t)) {
            out->stop = "eos";
            break;
        }
        /* llama2.c's convention: BOS in the middle starts another document. */
        if (!o->ignore_eos && t && next == ll_tokenizer_bos(t)) {
            out->stop = "bos";
            break;
        }
        out->ids[out->n++] = next;
        if (t && o->on_text) {
            char *txt;
            size_t len;
            if ((st = ll_detok_stream_push(&ds, next, &txt, &len))) goto done;
            int stop = o->on_text(o->user, txt, len);
            free(txt);
            if (stop) {
                out->stop = "callback";
                break;
            }
        }
        if (i + 1 == o->max_new_tokens || out->n >= ctx) break; /* the last token needs no forward */
        if ((st = ll_decoder_step(dec, next, lg))) goto done;
    }
    if (out->n >= ctx && out->n - out->n_prompt < o->max_new_tokens) out->stop = "context";
    if (t && o->on_text) {
        char *txt;
        size_t len;
        if ((st = ll_detok_stream_flush(&ds, &txt, &len))) goto done;
        if (len) o->on_text(o->user, txt, len);
        free(txt);
    }
    out->decode_s = ll_now() - t1;
done:
    free(lg);
    ll_decoder_free(dec); /* before the cache it borrows */
    ll_kv_cache_free(kc);
    ll_sampler_free(&sm);
    ll_detok_stream_free(&ds);
    if (st) ll_generation_free(out);
    return st;
}
