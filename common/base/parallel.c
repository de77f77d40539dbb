#include "parallel.h"

/* A spin-wait hint: PAUSE on x86, YIELD on Arm, nothing elsewhere. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

#include <time.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define MAX_THREADS 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER, done_cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t run_mu = PTHREAD_MUTEX_INITIALIZER; /* one loop at a time */
static int n_threads = -1, n_started;
static pthread_t workers[MAX_THREADS];
static _Thread_local int in_loop;

/* The current job. */
static pst_range_fn job_fn;
static void *job_ctx;
static int64_t job_n, job_chunk;
static atomic_llong job_next;
static atomic_int job_gen;
static int job_active;
static atomic_int sleepers;

static void run_chunks(void) {
    for (;;) {
        int64_t b = atomic_fetch_add(&job_next, job_chunk);
        if (b >= job_n) return;
        int64_t e = b + job_chunk < job_n ? b + job_chunk : job_n;
        job_fn(job_ctx, b, e);
    }
}

/* Workers spin briefly before sleeping: kernels come in quick succession during a step, and
 * a futex wake-up per loop would cost more than small loops take. */
#define SPIN_ITERS 200000

static void *worker_main(void *arg) {
    (void)arg;
    in_loop = 1;
    int seen = 0;
    pthread_mutex_lock(&mu);
    for (;;) {
        if (atomic_load(&job_gen) == seen) {
            pthread_mutex_unlock(&mu);
            for (int i = 0; i < SPIN_ITERS && atomic_load_explicit(&job_gen, memory_order_acquire) == seen; i++)
                cpu_relax();
            pthread_mutex_lock(&mu);
            atomic_fetch_add(&sleepers, 1);
            while (atomic_load(&job_gen) == seen) pthread_cond_wait(&work_cv, &mu);
            atomic_fetch_sub(&sleepers, 1);
        }
        seen = atomic_load(&job_gen);
        pthread_mutex_unlock(&mu);
        run_chunks();
        pthread_mutex_lock(&mu);
        if (--job_active == 0) pthread_cond_signal(&done_cv);
    }
    return NULL;
}

void pst_parallel_set_threads(int n) {
    pthread_mutex_lock(&mu);
    n_threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
    pthread_mutex_unlock(&mu);
}

int pst_parallel_threads(void) {
    pthread_mutex_lock(&mu);
    if (n_threads < 0) {
        const char *e = getenv("PST_NUM_THREADS");
        n_threads = e ? atoi(e) : 1;
        if (n_threads < 1) n_threads = 1;
        if (n_threads > MAX_THREADS) n_threads = MAX_THREADS;
    }
    int n = n_threads;
    pthread_mutex_unlock(&mu);
    return n;
}

void pst_parallel_for(int64_t n, int64_t grain, pst_range_fn fn, void *ctx) {
    if (n <= 0) return;
    int t = pst_parallel_threads();
    if (grain < 1) grain = 1;
    if (t <= 1 || in_loop || n < 2 * grain) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&run_mu);
    pthread_mutex_lock(&mu);
    while (n_started < t - 1) {
        if (pthread_create(&workers[n_started], NULL, worker_main, NULL) != 0) break;
        pthread_detach(workers[n_started]);
        n_started++;
    }
    int helpers = n_started < t - 1 ? n_started : t - 1;
    /* Up to RANGES_PER_THREAD ranges per thread, taken in order by whichever thread is free:
     * on a shared machine one core often runs slower for a while, and one range per thread
     * would leave the other idle at the end. */
    int64_t chunks = (n + grain - 1) / grain;
    int64_t per = (chunks + (int64_t)t * PST_PARALLEL_RANGES_PER_THREAD - 1) /
                  ((int64_t)t * PST_PARALLEL_RANGES_PER_THREAD);
    job_fn = fn;
    job_ctx = ctx;
    job_n = n;
    job_chunk = per * grain;
    atomic_store(&job_next, 0);
    job_active = n_started; /* every started worker wakes and checks in */
    (void)helpers;
    atomic_fetch_add(&job_gen, 1);
    if (atomic_load(&sleepers) > 0) pthread_cond_broadcast(&work_cv);
    pthread_mutex_unlock(&mu);
    in_loop = 1;
    run_chunks();
    in_loop = 0;
    pthread_mutex_lock(&mu);
    while (job_active > 0) pthread_cond_wait(&done_cv, &mu);
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&run_mu);
}
