/*
 * ops_train — TensorFlow's optimizer apply ops. Each updates its variable (and slot
 * variables) in place, under the variables' locks, and outputs the variable's new value.
 *
 *   ApplyGradientDescent  var -= lr * grad
 *   ApplyMomentum         accum = momentum * accum + grad; var -= lr * accum
 *                         (use_nesterov: var -= lr * grad + lr * momentum * accum)
 *   ApplyAdam             lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t);
 *                         m += (1 - beta1) * (grad - m); v += (1 - beta2) * (grad^2 - v);
 *                         var -= lr_t * m / (sqrt(v) + epsilon)
 *   ApplyAdagrad          accum += grad^2; var -= lr * grad / sqrt(accum)
 *   ApplyRMSProp          ms = rho * ms + (1 - rho) * grad^2;
 *                         mom = momentum * mom + lr * grad / sqrt(ms + epsilon); var -= mom
 *   ScatterSub            var[indices[i], ...] -= updates[i, ...] (sparse updates)
 *
 *     pst_output upd = pst_apply_gradient_descent(g, w, pst_const_f32(g, 0.1f, NULL), dw, NULL);
 */
#ifndef PST_OPS_TRAIN_H
#define PST_OPS_TRAIN_H

#include "graph.h"

/* Scalar hyperparameters (lr, momentum, beta1...) are tensors of the variable's dtype. */
pst_output pst_apply_gradient_descent(pst_graph *g, pst_output var, pst_output lr, pst_output grad,
                                      const char *name);
pst_output pst_apply_momentum(pst_graph *g, pst_output var, pst_output accum, pst_output lr,
                              pst_output grad, pst_output momentum, int use_nesterov,
                              const char *name);
pst_output pst_apply_adam(pst_graph *g, pst_output var, pst_output m, pst_output v,
                          pst_output beta1_power, pst_output beta2_power, pst_output lr,
                          pst_output beta1, pst_output beta2, pst_output epsilon, pst_output grad,
                          const char *name);
pst_output pst_apply_adagrad(pst_graph *g, pst_output var, pst_output accum, pst_output lr,
                             pst_output grad, const char *name);
pst_output pst_apply_rms_prop(pst_graph *g, pst_output var, pst_output ms, pst_output mom,
                              pst_output lr, pst_output rho, pst_output momentum,
                              pst_output epsilon, pst_output grad, const char *name);
/* indices: int32/int64 [k]; updates: [k, rest of var's dims]. */
pst_output pst_scatter_sub(pst_graph *g, pst_output var, pst_output indices, pst_output updates,
                           const char *name);

/* Synchronous replicas (SyncReplicasOptimizer semantics): `apply_op` names the TF apply op
 * ("ApplyGradientDescent", "ApplyAdam", ...) and `inputs` are its inputs; local_step (int64
 * scalar) is the global step the replica read. Gradients of a step are averaged once
 * replicas_to_aggregate arrived and applied once; late ones (backup workers) are dropped and
 * counted as stale; the others wait until the update is done. These three builders only name
 * the PstSync* ops: their kernels and accumulators are the parameter server's (dist/ps_sync.h),
 * registered by pst_dist_ops_init(). */
/* last_step > 0: the job's last step; a gradient for a step at or past it (a replica whose
 * step began as the others reached the end) fails at once with PST_E_OUT_OF_RANGE, unapplied. */
pst_output pst_sync_apply(pst_graph *g, const char *apply_op, int n, const pst_output *inputs,
                          pst_output local_step, int replicas_to_aggregate, int total_replicas,
                          int use_nesterov, int64_t last_step, const char *name);
/* ref := value once per synchronous step (the first replica to run it for local_step). */
pst_output pst_sync_assign_once(pst_graph *g, pst_output ref, pst_output value,
                                pst_output local_step, const char *name);
/* Elastic synchronous jobs: the round tag of worker `member` (int64 [id, incarnation]) read
 * on global_step's PS; it stands for local_step in the sync ops, whose kernels then average
 * the gradients of the round's members (see dist/ps_sync.h). lr_scale_base > 0: the learning
 * rate is scaled by (gradients averaged) / lr_scale_base (the linear scaling rule). */
pst_output pst_sync_round(pst_graph *g, pst_output global_step, pst_output member,
                          int lr_scale_base, const char *name);
/* Sets global_step to local_step + 1 unless another replica already did. */
pst_output pst_sync_step_advance(pst_graph *g, pst_output global_step, pst_output local_step,
                                 const char *name);

#endif
