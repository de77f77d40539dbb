/* log: leveled lines on stderr (see log.h). */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_prefix[256];
static int log_level = -1; /* -1: not yet read from the environment */

static int level_now(void) {
    if (log_level < 0) {
        const char *e = getenv("PST_LOG_LEVEL");
        int l = PST_LOG_INFO;
        if (e && strcasecmp(e, "debug") == 0) l = PST_LOG_DEBUG;
        else if (e && strcasecmp(e, "warn") == 0) l = PST_LOG_WARN;
        else if (e && strcasecmp(e, "error") == 0) l = PST_LOG_ERROR;
        log_level = l;
    }
    return log_level;
}

void pst_log_set_prefix(const char *prefix) {
    pthread_mutex_lock(&log_mu);
    snprintf(log_prefix, sizeof log_prefix, "%s", prefix ? prefix : "");
    pthread_mutex_unlock(&log_mu);
}

void pst_log_set_level(pst_log_level level) { log_level = (int)level; }

int pst_log_enabled(pst_log_level level) {
    return level == PST_LOG_ERROR || (int)level >= level_now();
}

static void vlog(const char *prefix, pst_log_level level, const char *fmt, va_list ap) {
    if (!pst_log_enabled(level)) return;
    char line[2048];
    int n = 0;
    if (prefix && prefix[0]) n = snprintf(line, sizeof line, "[%s] ", prefix);
    if (n < 0 || (size_t)n >= sizeof line) n = 0;
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    /* One write per line so lines of concurrent threads and processes do not interleave. */
    flockfile(stderr);
    fputs(line, stderr);
    fputc('\n', stderr);
    funlockfile(stderr);
}

void pst_log_msg(pst_log_level level, const char *fmt, ...) {
    char prefix[sizeof log_prefix];
    pthread_mutex_lock(&log_mu);
    memcpy(prefix, log_prefix, sizeof prefix);
    pthread_mutex_unlock(&log_mu);
    va_list ap;
    va_start(ap, fmt);
    vlog(prefix, level, fmt, ap);
    va_end(ap);
}

void pst_log_msg_as(const char *prefix, pst_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(prefix, level, fmt, ap);
    va_end(ap);
}
