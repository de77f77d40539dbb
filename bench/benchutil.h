/*
 * benchutil — the few helpers every benchmark needs: a monotonic clock and a comparison for
 * sorting timings (benchmarks report medians).
 *
 *     double t0 = pst_bench_now();  ...;  t[i] = pst_bench_now() - t0;
 *     qsort(t, n, sizeof t[0], pst_bench_cmp);   // median: t[n / 2]
 */
#ifndef PST_BENCHUTIL_H
#define PST_BENCHUTIL_H

#include <time.h>

/* Monotonic seconds. */
static inline double pst_bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* qsort comparison of doubles, ascending. */
static inline int pst_bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
