/*
 * log — one line per event on stderr, with the process's role as prefix, thread-safe.
 *
 *     pst_log_set_prefix("/job:ps/replica:0/task:0");
 *     pst_log_msg(PST_LOG_INFO, "serving on %s", addr);   // "[/job:ps/replica:0/task:0] serving ..."
 *
 * The level threshold is PST_LOG_INFO, or $PST_LOG_LEVEL (debug, info, warn, error), or what
 * pst_log_set_level says; PST_LOG_QUIET silences everything but errors.
 */
#ifndef PST_LOG_H
#define PST_LOG_H

typedef enum pst_log_level {
    PST_LOG_DEBUG = 0,
    PST_LOG_INFO,
    PST_LOG_WARN,
    PST_LOG_ERROR,
    PST_LOG_QUIET,
    PST_LOG_LEVEL_COUNT
} pst_log_level;

/* The prefix of every line (copied; NULL or "" for none). */
void pst_log_set_prefix(const char *prefix);
void pst_log_set_level(pst_log_level level);
int pst_log_enabled(pst_log_level level);
/* Writes "[prefix] message\n" to stderr when level passes the threshold. */
void pst_log_msg(pst_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with an explicit prefix (a library object's own name, e.g. a task's device). */
void pst_log_msg_as(const char *prefix, pst_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
