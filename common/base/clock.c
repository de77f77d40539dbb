/* clock: monotonic seconds and condition-variable deadlines (see clock.h). */
#include "clock.h"

#include <time.h>

double pst_clock_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void pst_clock_deadline_in(struct timespec *ts, int64_t ms) {
    if (ms < 0) ms = 0;
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}
