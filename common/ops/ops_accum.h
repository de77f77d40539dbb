/*
 * ops_accum — TensorFlow 1.x's gradient accumulators, as tf.train.SyncReplicasOptimizer puts
 * them into graphs: ConditionalAccumulator / ResourceConditionalAccumulator (dense) and
 * SparseConditionalAccumulator (IndexedSlices), with Accumulator{ApplyGradient,
 * NumAccumulated, SetGlobalStep, TakeGradient} (and their Resource* / Sparse* forms).
 *
 * An accumulator is a resource of the session's variable store named by its node (or its
 * shared_name), as a queue is; its node outputs a PST_RESOURCE handle (the ref-handle forms
 * run the same way). TensorFlow's semantics:
 *   - ApplyGradient(local_step, g): dropped silently when local_step < the accumulator's global
 *     step (a stale gradient); else checked (dtype, shape against the `shape` attr and the
 *     gradients already summed) and added; the count goes up by one;
 *   - TakeGradient(num_required): waits until count >= num_required (> 0), then returns the
 *     sum divided by the count (reduction_type MEAN, the default) or the sum (SUM), resets the
 *     count to 0 and advances the global step by one (later gradients of the old step are
 *     stale). A sparse accumulator merges indices (both sorted, as TF assumes) and divides each
 *     row by the number of gradients that had it;
 *   - SetGlobalStep(s) sets the global step (a smaller one too, as TF, which only warns).
 * TakeGradient is not left waiting forever: it fails with PST_E_DEADLINE after the op's
 * `timeout_ms` attr (a pstrain extension; default PST_ACCUM_TIMEOUT_MS_DEFAULT), and at once
 * with the reason given to pst_accumulators_cancel (a task or session shutting down).
 *
 *     pst_accumulators_cancel(vars, &why);   // every waiting and later take fails with why
 */
#ifndef PST_OPS_ACCUM_H
#define PST_OPS_ACCUM_H

#include "status.h"

typedef struct pst_var_store pst_var_store;

/* How long a TakeGradient waits for its gradients unless its timeout_ms attr says. */
#define PST_ACCUM_TIMEOUT_MS_DEFAULT 600000

/* Fails every current and later TakeGradient of the accumulators of vs with why's code and
 * message (borrowed). Harmless when vs holds no accumulator. */
void pst_accumulators_cancel(pst_var_store *vs, const pst_status *why);

#endif
