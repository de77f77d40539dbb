/*
 * clock — the one monotonic clock and deadline helper every layer uses.
 *
 *     double t0 = pst_clock_now();
 *     ... work ...
 *     printf("%.3f s\n", pst_clock_now() - t0);
 *
 *     struct timespec dl;
 *     pst_clock_deadline_in(&dl, 500);            // for pthread_cond_timedwait
 */
#ifndef PST_CLOCK_H
#define PST_CLOCK_H

#include <stdint.h>

struct timespec;

/* Seconds on CLOCK_MONOTONIC (arbitrary origin): only differences mean anything. */
double pst_clock_now(void);
/* The absolute CLOCK_REALTIME time ms milliseconds from now (pthread_cond_timedwait's clock). */
void pst_clock_deadline_in(struct timespec *ts, int64_t ms);

#endif
