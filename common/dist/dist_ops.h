/*
 * dist_ops — registers the op families of the distributed layer, the way pst_ops_init (ops.h)
 * registers the built-in ones: today the synchronous-replica ops PstSync* (ps_sync.h), whose
 * builders live in ops_train.h but whose kernels need the parameter server's accumulators.
 * A program that builds, imports or serves graphs with those ops calls it once, after
 * pst_ops_init (it calls pst_ops_init itself, so either order works):
 *
 *     pst_ops_init();
 *     pst_dist_ops_init();
 *     pst_task *t = pst_task_new(&opts, &st);
 *
 * pst_task_new calls it too, so every task can run the partitions it is given.
 */
#ifndef PST_DIST_OPS_H
#define PST_DIST_OPS_H

/* Registers the distributed layer's ops (and the built-in ones); idempotent, thread-safe. */
void pst_dist_ops_init(void);

#endif
