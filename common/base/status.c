#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pst_status_vset(pst_status *st, int code, const char *fmt, va_list ap) {
    if (st == NULL || st->code != 0) return code;
    st->code = code;
    vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    return code;
}

int pst_status_set(pst_status *st, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pst_status_vset(st, code, fmt, ap);
    va_end(ap);
    return code;
}

void pst_status_prefix(pst_status *st, const char *fmt, ...) {
    if (st == NULL) return;
    char pre[PST_STATUS_MSG_MAX], old[PST_STATUS_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, st->msg, sizeof old);
    size_t n = strlen(pre);
    if (n >= sizeof st->msg) n = sizeof st->msg - 1;
    memcpy(st->msg, pre, n);
    size_t m = strlen(old);
    if (m > sizeof st->msg - 1 - n) m = sizeof st->msg - 1 - n;
    memcpy(st->msg + n, old, m);
    st->msg[n + m] = '\0';
}

void pst_status_clear(pst_status *st) {
    if (st == NULL) return;
    st->code = 0;
    st->msg[0] = '\0';
}

const char *pst_strerror(int code) {
    static const char *names[] = {"OK",
                                  "Cancelled",
                                  "Unknown",
                                  "InvalidArgument",
                                  "DeadlineExceeded",
                                  "NotFound",
                                  "AlreadyExists",
                                  "PermissionDenied",
                                  "ResourceExhausted",
                                  "FailedPrecondition",
                                  "Aborted",
                                  "OutOfRange",
                                  "Unimplemented",
                                  "Internal",
                                  "Unavailable",
                                  "DataLoss",
                                  "Unauthenticated",
                                  "IOError"};
    if (code > 0 || code <= PST_E_COUNT_) return "Unknown";
    return names[-code];
}

void pst__assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "pstrain: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
