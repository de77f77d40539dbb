/*
 * lr_schedule — learning-rate schedules as graph ops of the global step (TensorFlow's
 * formulas); each returns a float32 scalar to put in pst_optimizer_opts.lr_tensor.
 *
 *     pst_output lr = pst_lr_exponential_decay(g, 0.1f, pst_train_global_step(g), 1000, 0.96f, 1);
 */
#ifndef PST_LR_SCHEDULE_H
#define PST_LR_SCHEDULE_H

#include "graph.h"

/* lr * rate ^ (step / decay_steps), the exponent floored when staircase. */
pst_output pst_lr_exponential_decay(pst_graph *g, float lr, pst_output step, int64_t decay_steps,
                                    float rate, int staircase);
/* values[i] while step <= boundaries[i] (n boundaries, n + 1 values). */
pst_output pst_lr_piecewise_constant(pst_graph *g, pst_output step, int n, const int64_t *boundaries,
                                     const float *values);
/* (lr - end) * (1 - min(step, decay) / decay) ^ power + end; with cycle the decay period grows
 * to the next multiple of decay_steps. */
pst_output pst_lr_polynomial_decay(pst_graph *g, float lr, pst_output step, int64_t decay_steps,
                                   float end_lr, float power, int cycle);
/* lr * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay) / decay)) + alpha) */
pst_output pst_lr_cosine_decay(pst_graph *g, float lr, pst_output step, int64_t decay_steps,
                               float alpha);

/* A schedule chosen at run time (a trainer's flags): its op, and its value at a step computed
 * in C with the same formulas (for logs and TensorBoard, without running the graph). */
typedef enum { PST_LR_CONSTANT, PST_LR_EXPONENTIAL, PST_LR_COSINE, PST_LR_POLYNOMIAL } pst_lr_kind;
typedef struct pst_lr_schedule {
    pst_lr_kind kind;
    float lr;
    int64_t decay_steps; /* > 0 unless constant */
    float rate;          /* exponential: the factor per decay_steps */
    float end_lr;        /* cosine, polynomial (power 1): the rate after decay_steps */
    int staircase;       /* exponential: whole periods */
} pst_lr_schedule;
/* "none", "exponential", "cosine", "polynomial"; -1 for anything else. */
int pst_lr_kind_parse(const char *name);
/* The schedule's rate as an op of step (NULL node for a constant rate). */
pst_output pst_lr_schedule_op(pst_graph *g, const pst_lr_schedule *s, pst_output step);
double pst_lr_schedule_at(const pst_lr_schedule *s, int64_t step);

#endif
