/*
 * hybrid — pstrain-worker's --mode hybrid (MPI jobs): partitioned variables (embedding tables)
 * and the global step stay on the PS, where a step gathers only the rows its batch uses and
 * applies their sparse gradient; every other variable is a replica on each worker, whose
 * gradients are averaged among the workers with the fused allreduce (allreduce.h).
 *
 * Two graphs of the same model: the layout graph, placed by the replica device setter as in PS
 * mode (every variable on a PS), initializes, restores and saves (checkpoints are the usual
 * sharded ones, every variable under its name); the training graph has the same variables under
 * the same names, the PS-held ones on the same PS and the dense ones on this worker, and runs
 * the steps and evaluations. Before training each worker pulls the dense variables' values from
 * the PS into its own; the chief pushes its replicas back to the PS before every checkpoint.
 *
 *     model layout = ..., train = {.transform_grads = pst_allreduce_transform, ...};
 *     pst_worker_hybrid_build(&f, net, layout.g, "/job:worker/task:1", &train, &st);
 *     ... readiness ...;  pst_worker_hybrid_pull(task, &train, layout.g, &st);
 *     ... steps ...;      pst_worker_hybrid_push(task, &train, layout.g, &st);  // before a save
 */
#ifndef PST_WORKER_HYBRID_H
#define PST_WORKER_HYBRID_H

#include "model.h"
#include "task.h"

/* Builds the training graph into train->g (train->transform_grads/ctx set by the caller):
 * variables the layout graph put on a PS stay there when partitioned ("name/part_i") or the
 * global step, the rest go to worker_device. */
int pst_worker_hybrid_build(const pst_train_flags *f, const pst_net_def *net,
                            const pst_graph *layout, const char *worker_device, model *train,
                            pst_status *st);
/* This worker's replicas of the dense variables get the values the PS hold. */
int pst_worker_hybrid_pull(pst_task *t, const model *train, const pst_graph *layout,
                           pst_status *st);
/* The PS get this worker's replicas (the chief's, before a checkpoint). */
int pst_worker_hybrid_push(pst_task *t, const model *train, const pst_graph *layout,
                           pst_status *st);

#endif
