/* Status codes and error messages with context.
 *
 * Every library call returns an ll_status. On failure the call has stored a
 * human-readable message (naming the file, field or tensor, what was expected
 * and what was found) in a thread-local buffer that ll_last_error() returns.
 * The library never exits or aborts on bad input: callers decide. */
#ifndef LL_STATUS_H
#define LL_STATUS_H

#include <stdarg.h>

typedef enum {
    LL_OK = 0,
    LL_ERR_IO,          /* open/read/write/mmap failed */
    LL_ERR_FORMAT,      /* malformed file contents */
    LL_ERR_UNSUPPORTED, /* well-formed but not something we implement */
    LL_ERR_ARG,         /* bad argument from the caller */
    LL_ERR_NOMEM,       /* allocation failed */
    LL_ERR_SHAPE,       /* tensor shape/dtype disagrees with the config */
    LL_ERR_MISSING,     /* a required tensor or field is absent */
    LL_ERR_DEVICE,      /* accelerator error */
} ll_status;

/* Store a formatted message and return `st`, so code can write
 *   return ll_err(LL_ERR_FORMAT, "%s: field \"x\": expected ..., found ...", path); */
ll_status ll_err(ll_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ll_status ll_verr(ll_status st, const char *fmt, va_list ap);

/* Prefix the current message with more context ("loading model: " + old). */
ll_status ll_err_prefix(ll_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *ll_last_error(void);
const char *ll_status_name(ll_status st);
void ll_clear_error(void);

/* Propagate a failing status unchanged. */
#define LL_TRY(expr)                                                                               \
    do {                                                                                           \
        ll_status ll_try_st_ = (expr);                                                             \
        if (ll_try_st_ != LL_OK) return ll_try_st_;                                                \
    } while (0)

#endif
