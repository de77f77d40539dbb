/*
 * ps_sync — synchronous replicas on a parameter server (TensorFlow's SyncReplicasOptimizer):
 * the gradient accumulator of each variable, and the kernels of the PstSync* ops that use it.
 *
 * In every synchronous step each replica runs PstSyncApply<Op>(var, slots..., grad, local_step)
 * on the task holding var. The gradients of one step add up until replicas_to_aggregate have
 * arrived; the replica completing the set applies their average once, with the asynchronous
 * kernel (ApplyGradientDescent, ApplyAdam, ...); the others wait until it has. A gradient for a
 * step already applied (a backup worker's, late) is dropped and counted as stale, as are the
 * partial sums of a step no replica completed. PstSyncAssignOnce(ref, value, local_step)
 * assigns once per step (Adam's beta powers advance once however many replicas run it);
 * PstSyncStepAdvance moves the global step once. A waiting replica fails at once, naming the
 * worker, when so many replicas were lost (pst_ps_sync_replica_lost) that its step can no
 * longer gather its gradients; otherwise after the op's timeout_ms (default below).
 *
 * The accumulators live in a resource of the variable store (pst_var_store_resource under
 * PST_PS_SYNC_RESOURCE), so they last as long as the variables and pst_var knows nothing of
 * them. The graph builders (pst_sync_apply, pst_sync_assign_once, pst_sync_step_advance in
 * ops_train.h) only name the ops; the kernels are registered by pst_dist_ops_init() (dist_ops.h),
 * which every program that builds or serves synchronous graphs calls after pst_ops_init().
 *
 *     pst_dist_ops_init();
 *     ... a PS learns that a worker is gone:
 *     pst_ps_sync_replica_lost(pst_task_vars(t), "/job:worker/replica:0/task:2 failed: ...");
 *     int64_t dropped = pst_ps_sync_stale(pst_task_vars(t), "mlp/fc1/weights");
 */
#ifndef PST_PS_SYNC_H
#define PST_PS_SYNC_H

#include <stdint.h>

#include "status.h"
#include "varstore.h"

/* The store resource key of the accumulators. */
#define PST_PS_SYNC_RESOURCE "pst.ps_sync"
/* How long a replica waits for the others of its step unless the op's timeout_ms says. */
#define PST_PS_SYNC_TIMEOUT_MS_DEFAULT 300000

/* Gradients of variable `var` dropped because their step had passed (0 when none or when var
 * never took part in a synchronous step). */
int64_t pst_ps_sync_stale(pst_var_store *vs, const char *var);

/* Records that a synchronous replica failed (why names it) and wakes the replicas waiting for
 * a step of any variable of vs: a step that can no longer gather its gradients fails at once
 * with why instead of waiting out its timeout. Counts for accumulators made later too. */
void pst_ps_sync_replica_lost(pst_var_store *vs, const char *why);

/* Records that a synchronous replica finished training (it sends no more gradients) and wakes
 * the waiting replicas: a step that can no longer gather its gradients from the replicas still
 * training fails at once with PST_E_OUT_OF_RANGE instead of waiting out its timeout (a worker
 * that trains on after the others stopped, or one in a graph without the ops' last_step; a step
 * past last_step is refused before it waits). Its gradients are not applied. */
void pst_ps_sync_replica_finished(pst_var_store *vs);

/* Fails every current and future wait for other replicas with why (the task is stopping). */
void pst_ps_sync_abort(pst_var_store *vs, const pst_status *why);

/* Elastic jobs: the worker members the coordination service lists as running,
 * "index:incarnation-hex:joined_s,..." (its heartbeat replies). Members listed before and not
 * now are gone: the rounds that wait for them finish without them, and PstSyncRound leaves
 * them out of the next round. */
int pst_ps_sync_set_running(pst_var_store *vs, const char *members, pst_status *st);

/* Registers the PstSync* ops; called once by pst_dist_ops_init. */
void pst__ps_sync_register_ops(void);

#endif
