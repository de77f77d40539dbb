/*
 * replica_setter — where nodes run: the replica device setter (tf.train.replica_device_setter).
 *
 * The replica device setter (tf.train.replica_device_setter) is a graph device function:
 * variables (and their initializers, snapshots, optimizer slots and apply ops, which follow
 * their variable) go to `/job:ps/task:k`, chosen round robin or by the least bytes so far;
 * every other node goes to the worker device. A device set explicitly by a scope wins: a layer
 * under `/job:worker/task:1` runs there (model parallelism), a variable under
 * `/job:ps/task:2` stays on that PS.
 *
 *     pst_replica_setter *rs = pst_replica_setter_new(2, "/job:worker/task:0", PST_PLACE_ROUND_ROBIN);
 *     pst_graph_set_device_fn(g, pst_replica_setter_fn, rs);
 *     ... build the model ...
 *     pst_replica_setter_report(g, 2, stdout);     // per-PS table with bytes and imbalance
 *
 * Partitioned variables (train/partitioned_var.h) are variables like any other to the setter.
 */
#ifndef PST_REPLICA_SETTER_H
#define PST_REPLICA_SETTER_H

#include <stdio.h>

#include "graph.h"

typedef enum pst_place_strategy { PST_PLACE_ROUND_ROBIN = 0, PST_PLACE_GREEDY } pst_place_strategy;

typedef struct pst_replica_setter pst_replica_setter;

/* ps_tasks > 0; worker_device e.g. "/job:worker/task:0". NULL on a bad device (st set). */
pst_replica_setter *pst_replica_setter_new(int ps_tasks, const char *worker_device,
                                           pst_place_strategy strategy, pst_status *st);
void pst_replica_setter_free(pst_replica_setter *rs);
/* The pst_device_fn to install with pst_graph_set_device_fn (ctx = the setter). */
void pst_replica_setter_fn(void *ctx, const pst_node *node, const char *requested, char *out);
/* Bytes of variables placed on PS task k so far, and how many. */
int64_t pst_replica_setter_bytes(const pst_replica_setter *rs, int k, int *n_vars);
int pst_replica_setter_num_ps(const pst_replica_setter *rs);

/* Placement table of a built graph (what the setter, or any device strings, decided): for each PS task, its variables (name, shape, bytes),
 * totals, and the imbalance max/min bytes. Written as text to f. */
void pst_replica_setter_report(const pst_graph *g, int ps_tasks, FILE *f);

#endif
