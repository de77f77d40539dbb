/*
 * optimizer — tf.train optimizers as graph builders: compute_gradients and apply_gradients
 * separately (so the distributed runtime can aggregate in between), minimize, clipping by
 * global norm, the global step and slim's create_train_op.
 *
 * Slot variables are named as TensorFlow names them (`w/Momentum`, `w/Adam`, `w/Adam_1`,
 * `w/Adagrad`, `w/RMSProp`, `w/RMSProp_1`; Adam's `beta1_power`, `beta2_power`) and placed on
 * their variable's device, so with a replica device setter they live on the same PS.
 *
 *     pst_optimizer_opts o = pst_optimizer_defaults(PST_OPT_ADAM, 1e-3f);
 *     pst_output step = pst_train_global_step(g);
 *     pst_output loss_after = pst_create_train_op(g, total_loss, &o, step, 0, &train_op);
 *     // run train_op (or fetch loss_after) once per batch
 */
#ifndef PST_OPTIMIZER_H
#define PST_OPTIMIZER_H

#include "graph.h"

typedef enum pst_opt_kind {
    PST_OPT_SGD = 0,
    PST_OPT_MOMENTUM,
    PST_OPT_ADAM,
    PST_OPT_ADAGRAD,
    PST_OPT_RMSPROP,
    PST_OPT_COUNT
} pst_opt_kind;

struct pst_grad_var; /* below */

typedef struct pst_optimizer_opts {
    pst_opt_kind kind;
    float lr;
    pst_output lr_tensor;  /* a schedule (float scalar); overrides lr when set */
    float momentum;        /* Momentum (0.9), RMSProp (0) */
    int use_nesterov;
    float beta1, beta2, epsilon;  /* Adam: 0.9, 0.999, 1e-8 */
    float initial_accumulator;    /* Adagrad: 0.1 */
    float rho, rms_epsilon;       /* RMSProp: decay 0.9, epsilon 1e-10 */
    /* Synchronous replicas (tf.train.SyncReplicasOptimizer): when > 0, each update averages
     * the gradients of sync_replicas replicas for the global step they read, applies them once
     * and drops late ones; global_step then advances once per step. sync_total (>=
     * sync_replicas) counts backup workers too. Needs global_step. */
    int sync_replicas, sync_total;
    /* > 0: the job's last step; a gradient for a step at or past it is refused at once
     * (PST_E_OUT_OF_RANGE) instead of waiting for replicas that finished (pst_sync_apply). */
    int64_t sync_last_step;
    /* Called by pst_create_train_op between computing the gradients and clipping/applying
     * them; may replace gv[i].grad (the allreduce mode averages them over the ranks,
     * allreduce.h). Errors go into the graph. NULL: applied as computed. */
    void (*transform_grads)(void *ctx, pst_graph *g, int n, struct pst_grad_var *gv);
    void *transform_ctx;
    /* Elastic synchronous jobs (workers come and go): sync_elastic makes each round average
     * the gradients of that round's members, whoever they are (PstSyncRound; sync_replicas and
     * sync_total then only say how many backup workers to allow); sync_member is this worker's
     * id and sync_incarnation tells this process from an earlier one of the same id;
     * sync_lr_scale_base > 0 scales the learning rate by members / base. */
    int sync_elastic;
    int64_t sync_member;
    uint64_t sync_incarnation;
    int sync_lr_scale_base;
} pst_optimizer_opts;

/* TensorFlow's defaults for kind with learning rate lr. */
pst_optimizer_opts pst_optimizer_defaults(pst_opt_kind kind, float lr);
/* Parses "sgd", "momentum", "adam", "adagrad", "rmsprop"; -1 if unknown. */
int pst_optimizer_kind_parse(const char *s);
const char *pst_optimizer_name(pst_opt_kind kind); /* "GradientDescent", "Adam", ... */

typedef struct pst_grad_var {
    pst_output grad; /* null when the variable does not affect the loss */
    pst_output var;  /* the VariableV2 output */
    /* Set for a part read only through pst_embedding_lookup: grad is then the gradient of the
     * gathered rows ([k, ...]) and sparse_ids their row numbers in the part. SGD applies it to
     * those rows only (ScatterSub); other optimizers densify it first. */
    pst_output sparse_ids;
} pst_grad_var;

/* Gradients of loss for vars (NULL: the "trainable_variables" collection). *out (caller
 * frees) gets n entries; returns n or a negative error. */
int pst_optimizer_compute_gradients(pst_graph *g, pst_output loss, int n_vars,
                                    const pst_output *vars, pst_grad_var **out, pst_status *st);
/* Adds the update ops (skipping null gradients) and, when global_step is set, its increment;
 * returns the op to run (NULL on error, recorded in the graph). */
pst_node *pst_optimizer_apply_gradients(pst_graph *g, const pst_optimizer_opts *o, int n,
                                        const pst_grad_var *gv, pst_output global_step,
                                        const char *name);
pst_node *pst_optimizer_minimize(pst_graph *g, const pst_optimizer_opts *o, pst_output loss,
                                 int n_vars, const pst_output *vars, pst_output global_step,
                                 const char *name);

/* Scales grads (n entries; nulls pass through) so their global norm is at most clip_norm;
 * returns the global norm before clipping. */
pst_output pst_clip_by_global_norm(pst_graph *g, int n, const pst_output *grads, float clip_norm,
                                   pst_output *clipped);

/* The int64 scalar variable `global_step` (created on first call, in the "global_step"
 * collection, not trainable). */
pst_output pst_train_global_step(pst_graph *g);

/* slim.learning.create_train_op: runs "update_ops" before computing gradients, optionally
 * clips them, applies them, increments global_step; returns the total loss evaluated after
 * the update, and the train op in *train_op. */
pst_output pst_create_train_op(pst_graph *g, pst_output total_loss, const pst_optimizer_opts *o,
                               pst_output global_step, float clip_norm, pst_node **train_op);

#endif
