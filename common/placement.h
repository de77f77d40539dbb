/*
 * placement — where nodes run: the replica device setter and partitioned variables.
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
 *     pst_replica_setter_report(rs, stdout);      // per-PS table with bytes and imbalance
 *
 * Partitioned variables split axis 0 into parts `w/part_0`, `w/part_1`, ... (the first
 * dim % n parts get one more row), each its own variable that the setter may put on another
 * PS; the model reads the concatenation.
 */
#ifndef PST_PLACEMENT_H
#define PST_PLACEMENT_H

#include <stdio.h>

#include "graph.h"
#include "init.h"

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

/* Placement table of a built graph: for each PS task, its variables (name, shape, bytes),
 * totals, and the imbalance max/min bytes. Written as text to f. */
void pst_placement_report(const pst_graph *g, int ps_tasks, FILE *f);

/* Number of parts for a partitioned variable: a fixed count, or (when fixed <= 0) as many as
 * keep each part at least min_slice_bytes, at most max_parts (tf.min_max_variable_partitioner). */
int pst_partition_count(pst_shape shape, pst_dtype dt, int fixed, int64_t min_slice_bytes,
                        int max_parts);
/* Rows of part i of n for a dim of `rows`: returns the first row, *len the count. */
int64_t pst_partition_rows(int64_t rows, int n, int i, int64_t *len);

typedef struct pst_partitioned_var {
    int n_parts;
    pst_output *parts;   /* the VariableV2 outputs, owned by this struct */
    pst_output value;    /* the concatenated read (what the model uses) */
    char *name;
    pst_shape full_shape;
} pst_partitioned_var;

/* Creates `name/part_i` variables (each with its slice of the full shape and initializer
 * `init`; each part carries TF's save-slice info as `_save_slice_*` attrs so checkpoints store
 * it under the full name), and builds `value` = concat of their reads along axis 0. NULL on
 * error (recorded in the graph). */
pst_partitioned_var *pst_partitioned_variable(pst_graph *g, const char *name, pst_dtype dt,
                                              pst_shape shape, int n_parts,
                                              const pst_initializer *init, int trainable);
void pst_partitioned_var_free(pst_partitioned_var *pv);
#endif
