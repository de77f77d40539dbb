/*
 * status — error codes and messages shared by every pstrain module.
 *
 * Fallible functions return 0 on success or a negative PST_E_* code, and fill a caller-owned
 * pst_status with one sentence naming what was wrong (file, field, node, variable, address).
 * A NULL pst_status is allowed everywhere: the code is still returned.
 *
 *     pst_status st = {0};
 *     pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
 *     if (r == NULL) fprintf(stderr, "%s\n", st.msg);   // "cannot open model.ckpt-5.index: ..."
 */
#ifndef PST_STATUS_H
#define PST_STATUS_H

#include <stdarg.h>

/* Codes follow TensorFlow's canonical error space, negated. */
enum {
    PST_OK = 0,
    PST_E_CANCELLED = -1,
    PST_E_UNKNOWN = -2,
    PST_E_INVALID = -3,           /* InvalidArgument */
    PST_E_DEADLINE = -4,          /* DeadlineExceeded */
    PST_E_NOT_FOUND = -5,
    PST_E_EXISTS = -6,            /* AlreadyExists */
    PST_E_PERMISSION = -7,
    PST_E_EXHAUSTED = -8,         /* ResourceExhausted (also out of memory) */
    PST_E_PRECONDITION = -9,      /* FailedPrecondition */
    PST_E_ABORTED = -10,
    PST_E_OUT_OF_RANGE = -11,
    PST_E_UNIMPLEMENTED = -12,
    PST_E_INTERNAL = -13,
    PST_E_UNAVAILABLE = -14,
    PST_E_DATA_LOSS = -15,
    PST_E_UNAUTHENTICATED = -16,
    PST_E_IO = -17, /* an operating-system I/O error; the message carries strerror(errno) */
    PST_E_COUNT_ = -18
};

#define PST_STATUS_MSG_MAX 1024

typedef struct pst_status {
    int code;                      /* 0 or a PST_E_* code */
    char msg[PST_STATUS_MSG_MAX];  /* one sentence, NUL-terminated; "" when code == 0 */
} pst_status;

/* Sets code and a printf-style message; returns code so callers can `return pst_status_set(..)`.
 * Does not overwrite an error already recorded (the first error is the one that explains). */
int pst_status_set(pst_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int pst_status_vset(pst_status *st, int code, const char *fmt, va_list ap);
/* Prepends context ("node conv1/Conv2D: ") to an existing message. */
void pst_status_prefix(pst_status *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pst_status_clear(pst_status *st);
/* A short name of a code, e.g. "InvalidArgument". Never NULL. */
const char *pst_strerror(int code);

/* Programmer errors (broken invariants, not user input) abort with file:line. */
#define PST_ASSERT(cond)                                                                          \
    do {                                                                                          \
        if (!(cond)) pst__assert_fail(#cond, __FILE__, __LINE__);                                 \
    } while (0)
void pst__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif
