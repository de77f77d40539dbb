/*
 * model — the trainer's graph: a model-zoo network on Fashion-MNIST images (uint8 in, scaled
 * in the graph), its loss, optimizer, train op, global step and a count of correct predictions.
 * Shared by the single-process trainer and the distributed worker (which builds it under a
 * replica device setter).
 */
#ifndef PST_WORKER_MODEL_H
#define PST_WORKER_MODEL_H

#include "flags.h"
#include "graph.h"
#include "dataset.h"
#include "nets.h"
#include "replica_setter.h"
#include "session.h"

struct pst_grad_var; /* optimizer.h */

typedef struct model {
    pst_graph *g;
    pst_output images, labels, is_training, loss, correct, global_step;
    pst_node *train_op, *init;
    /* Set before building to change the gradients before they are applied (the allreduce
     * mode averages them over the ranks: pst_allreduce_transform). */
    void (*transform_grads)(void *ctx, pst_graph *g, int n, struct pst_grad_var *gv);
    void *transform_ctx;
} model;

/* Builds into a new graph (m->g). With device_fn set, every node is placed by it (the replica
 * device setter). f->replicas_to_aggregate > 0 makes the optimizer synchronous
 * (SyncReplicasOptimizer: that many replicas averaged per step, of f->sync_total). */
int pst_worker_build_model(const pst_train_flags *f, const pst_net_def *net, model *m,
                           pst_device_fn device_fn, void *device_ctx, pst_status *st);

/* Worker 0's graph as pstrain-worker builds it for f in a job with num_ps PS: with num_ps > 0
 * under the replica device setter (f->placement; partitioned weights spread over num_ps parts
 * unless --partition-max-parts says otherwise). *rs gets the setter (NULL without PS); free it
 * with pst_replica_setter_free after the graph. */
int pst_worker_build_model_on_ps(pst_train_flags *f, const pst_net_def *net, int num_ps, model *m,
                                 pst_replica_setter **rs, pst_status *st);

/* The serving graph of net (what a SavedModel holds): images (uint8 [-1, 28, 28, 1]) scaled
 * in the graph, the network in inference mode (is_training a PlaceholderWithDefault false),
 * probabilities = softmax of the logits and classes = their argmax (int64). Its variables have
 * the training graph's names, so a training checkpoint restores into it. */
typedef struct serving_model {
    pst_graph *g;
    pst_output images, probabilities, classes;
} serving_model;
int pst_worker_build_serving_model(const pst_train_flags *f, const pst_net_def *net,
                                   serving_model *m, pst_status *st);

/* Runs one evaluation batch: fetches m->correct for the feeds (images, labels, is_training). */
typedef int (*pst_worker_eval_fn)(void *ctx, const pst_feed *feeds, int n, pst_tensor **out,
                                  pst_status *st);
/* Accuracy over a whole dataset in batches of 1000 with is_training = false. */
int pst_worker_accuracy(model *m, const pst_dataset *ds, pst_worker_eval_fn run, void *ctx,
                        double *acc, pst_status *st);

#endif
