#include "ll_status.h"

#include <stdio.h>
#include <string.h>

/* One message per thread: OpenMP workers and the HDF5 writer thread may fail
 * independently without clobbering each other's diagnostics. */
static _Thread_local char ll_msg[2048];

ll_status ll_verr(ll_status st, const char *fmt, va_list ap) {
    vsnprintf(ll_msg, sizeof ll_msg, fmt, ap);
    return st;
}

ll_status ll_err(ll_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ll_verr(st, fmt, ap);
    va_end(ap);
    return st;
}

ll_status ll_err_prefix(ll_status st, const char *fmt, ...) {
    char old[sizeof ll_msg];
    memcpy(old, ll_msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(ll_msg, sizeof ll_msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof ll_msg) snprintf(ll_msg + n, sizeof ll_msg - (size_t)n, "%s", old);
    return st;
}

const char *ll_last_error(void) { return ll_msg[0] ? ll_msg : "no error"; }

void ll_clear_error(void) { ll_msg[0] = 0; }

const char *ll_status_name(ll_status st) {
    switch (st) {
    case LL_OK: return "ok";
    case LL_ERR_IO: return "i/o error";
    case LL_ERR_FORMAT: return "format error";
    case LL_ERR_UNSUPPORTED: return "unsupported";
    case LL_ERR_ARG: return "bad argument";
    case LL_ERR_NOMEM: return "out of memory";
    case LL_ERR_SHAPE: return "shape mismatch";
    case LL_ERR_MISSING: return "missing";
    case LL_ERR_DEVICE: return "device error";
    }
    return "unknown status";
}
