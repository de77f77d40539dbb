/*
 * readiness — getting a job's variables ready before anyone trains, as TensorFlow's
 * SessionManager does: the chief restores the newest intact checkpoint onto the PS, or keeps
 * what the PS already hold (a worker restarted in a running job), or runs the initializer;
 * every other worker waits until each of its variables is initialized on its PS.
 *
 *     pst_ps_vars pv;                                   // ps_vars.h
 *     pst_ps_vars_collect(g, n_ps, &pv, &st);
 *     if (chief) {
 *         pst_readiness_result res;
 *         pst_readiness_prepare(t, &pv, "/ckpt", 0, init_run, &res, &st);   // init_run: dist_run.h
 *     } else {
 *         pst_readiness_wait(t, &pv, 300000, NULL, NULL, &st);
 *     }
 */
#ifndef PST_READINESS_H
#define PST_READINESS_H

#include <stddef.h>
#include <stdint.h>

#include "dist_run.h"
#include "ps_vars.h"
#include "task.h"

/* How the chief made the variables ready. */
typedef enum pst_readiness_how {
    PST_READY_INITIALIZED, /* ran the initializer */
    PST_READY_RESTORED,    /* restored a checkpoint onto every PS holding variables */
    PST_READY_KEPT,        /* every variable was initialized on its PS already */
    PST_READY_HOW_COUNT
} pst_readiness_how;

typedef struct pst_readiness_result {
    pst_readiness_how how;
    char checkpoint[4096]; /* PST_READY_RESTORED: the prefix restored */
    char warning[2048];    /* e.g. the newest checkpoint was corrupt and an older one used */
} pst_readiness_result;

/* Chief: keeps the PS's values when every variable of pv is already initialized there (a chief
 * restarted in a running job); else, with checkpoint_dir (may be NULL; created when missing),
 * restores its newest intact checkpoint onto the PS; else runs `init` (the initializer's
 * distributed run). start_fresh: neither restores nor
 * keeps: always initializes (pstrain-worker --start-fresh). Returns 0 with *res filled, or
 * a negative error naming the PS or file at fault. */
int pst_readiness_prepare(pst_task *t, const pst_ps_vars *pv, const char *checkpoint_dir,
                          int start_fresh, pst_dist_run *init, pst_readiness_result *res,
                          pst_status *st);

/* How many of pv's variables are initialized on their PS (waiting for each PS to come up);
 * *total gets the count of variables, missing (mlen bytes) names one that is not ready
 * ("NAME on /job:ps/task:K"). Negative on error (a PS that never came up). */
int pst_readiness_count(pst_task *t, const pst_ps_vars *pv, int *total, char *missing,
                        size_t mlen, pst_status *st);

/* Others: polls until every variable of pv is initialized on its PS. progress (may be NULL)
 * is told about every 2 s how many are ready and one that is not. Fails with PST_E_DEADLINE
 * after timeout_ms, naming a missing variable. */
typedef void (*pst_readiness_progress_fn)(void *ctx, int ready, int total, const char *missing);
int pst_readiness_wait(pst_task *t, const pst_ps_vars *pv, int64_t timeout_ms,
                       pst_readiness_progress_fn progress, void *ctx, pst_status *st);

#endif
