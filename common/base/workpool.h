/*
 * workpool — a bounded pool of threads running submitted jobs (a task's RunGraph steps), so a
 * burst of requests never turns into a burst of threads. Threads start on demand, up to
 * max_threads, and stay until the pool is freed; beyond them at most max_queued jobs wait, in
 * order. A job that finds every thread busy and the queue full is refused at once
 * (PST_E_EXHAUSTED), never run late and never blocking the submitter: a server thread that
 * submits must stay free to deliver the tensors running jobs wait for.
 *
 *     pst_workpool *p = pst_workpool_new(16, 64, &st);
 *     if (pst_workpool_submit(p, run_one, job, &st) < 0) ... reply st (ResourceExhausted) ...
 *     pst_workpool_free(p);                 // runs what was queued, then joins the threads
 *
 * Jobs that wait for each other (synchronous replicas) need as many threads as jobs that wait
 * at once: a queued job cannot run while every thread waits.
 */
#ifndef PST_WORKPOOL_H
#define PST_WORKPOOL_H

#include "status.h"

typedef struct pst_workpool pst_workpool;
typedef void (*pst_work_fn)(void *arg);

/* A pool of at most max_threads (>= 1) threads and max_queued (>= 0) waiting jobs. NULL with
 * st set when out of memory or a limit is out of range. */
pst_workpool *pst_workpool_new(int max_threads, int max_queued, pst_status *st);
/* Runs fn(arg) on a pool thread: an idle one, a new one while fewer than max_threads exist,
 * else after the jobs queued before it. Returns 0; or, without calling fn, PST_E_EXHAUSTED when
 * max_threads jobs run and max_queued wait (or no thread could be started at all), and
 * PST_E_CANCELLED once pst_workpool_free has begun. Thread-safe; never blocks on other jobs. */
int pst_workpool_submit(pst_workpool *p, pst_work_fn fn, void *arg, pst_status *st);
/* Threads started so far, and jobs running or waiting now. */
int pst_workpool_threads(pst_workpool *p);
int pst_workpool_pending(pst_workpool *p);
/* Refuses new jobs, waits until every accepted job has run, joins the threads and frees p
 * (NULL is fine). Must not be called from a job. */
void pst_workpool_free(pst_workpool *p);

#endif
