/*
 * parallel — a small persistent thread pool for data-parallel loops inside kernels (im2col,
 * pooling, elementwise ops), so the intra-op threads match OpenBLAS's.
 *
 *     pst_parallel_set_threads(2);
 *     pst_parallel_for(n, 4096, fn, ctx);   // fn(ctx, begin, end) over [0, n) in chunks
 *
 * Calls from inside a running loop run inline (no nesting). Thread-safe.
 */
#ifndef PST_PARALLEL_H
#define PST_PARALLEL_H

#include <stdint.h>

typedef void (*pst_range_fn)(void *ctx, int64_t begin, int64_t end);

/* Number of threads (including the caller) used by pst_parallel_for; default 1 or
 * $PST_NUM_THREADS. */
void pst_parallel_set_threads(int n);
int pst_parallel_threads(void);
/* Runs fn over [0, n) split into contiguous ranges of at least `grain` items, at most
 * PST_PARALLEL_RANGES_PER_THREAD per thread (fewer when n / grain is smaller). */
#define PST_PARALLEL_RANGES_PER_THREAD 4
void pst_parallel_for(int64_t n, int64_t grain, pst_range_fn fn, void *ctx);


#endif
