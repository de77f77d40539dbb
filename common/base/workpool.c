/* workpool: a bounded pool of job threads (see workpool.h). */
#include "workpool.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct job {
    pst_work_fn fn;
    void *arg;
} job;

struct pst_workpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int max_threads, max_queued;
    pthread_t *threads;
    int n_threads;
    /* Accepted jobs not yet taken by a thread: a ring of max_threads + max_queued slots, as
     * many as can be accepted at once. */
    job *ring;
    int cap, head, count;
    int running;  /* jobs being run by a thread */
    int stopping;
};

static void *pool_main(void *arg) {
    pst_workpool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->count == 0 && !p->stopping) pthread_cond_wait(&p->cv, &p->mu);
        if (p->count == 0) break; /* stopping, and nothing left to run */
        job j = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        j.fn(j.arg);
        pthread_mutex_lock(&p->mu);
        p->running--;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

pst_workpool *pst_workpool_new(int max_threads, int max_queued, pst_status *st) {
    if (max_threads < 1 || max_queued < 0 || max_threads > (1 << 20) || max_queued > (1 << 20)) {
        pst_status_set(st, PST_E_INVALID, "a work pool needs 1..%d threads and 0..%d queued "
                       "jobs, not %d and %d", 1 << 20, 1 << 20, max_threads, max_queued);
        return NULL;
    }
    pst_workpool *p = calloc(1, sizeof *p);
    if (p) {
        p->cap = max_threads + max_queued;
        p->threads = calloc((size_t)max_threads, sizeof *p->threads);
        p->ring = calloc((size_t)p->cap, sizeof *p->ring);
    }
    if (!p || !p->threads || !p->ring) {
        if (p) {
            free(p->threads);
            free(p->ring);
            free(p);
        }
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a work pool of %d threads",
                       max_threads);
        return NULL;
    }
    p->max_threads = max_threads;
    p->max_queued = max_queued;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    return p;
}

int pst_workpool_submit(pst_workpool *p, pst_work_fn fn, void *arg, pst_status *st) {
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    if (p->stopping) {
        rc = pst_status_set(st, PST_E_CANCELLED, "the work pool is shutting down");
        goto out;
    }
    /* Threads not running a job and not yet claimed by a waiting one are free for this job;
     * with none, start another while the limit allows. */
    if (p->running + p->count >= p->n_threads && p->n_threads < p->max_threads &&
        pthread_create(&p->threads[p->n_threads], NULL, pool_main, p) == 0)
        p->n_threads++;
    if (p->n_threads == 0) {
        rc = pst_status_set(st, PST_E_EXHAUSTED, "cannot start a work pool thread");
        goto out;
    }
    if (p->running + p->count >= p->n_threads + p->max_queued) {
        rc = pst_status_set(st, PST_E_EXHAUSTED, "%d jobs run and %d wait, the most this pool "
                            "takes", p->running, p->count);
        goto out;
    }
    p->ring[(p->head + p->count) % p->cap] = (job){fn, arg};
    p->count++;
    pthread_cond_signal(&p->cv);
out:
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int pst_workpool_threads(pst_workpool *p) {
    pthread_mutex_lock(&p->mu);
    int n = p->n_threads;
    pthread_mutex_unlock(&p->mu);
    return n;
}

int pst_workpool_pending(pst_workpool *p) {
    pthread_mutex_lock(&p->mu);
    int n = p->running + p->count;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void pst_workpool_free(pst_workpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    /* Threads leave only once the ring is empty, so every accepted job runs first. */
    for (int i = 0; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p->ring);
    free(p);
}
