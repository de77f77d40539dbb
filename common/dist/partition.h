/*
 * partition — splits a placed graph into one subgraph per task.
 *
 * Only the nodes needed for the given fetches and targets are kept. Each node goes to the
 * task its device names (`/job:ps/replica:0/task:1`; a node with no job goes to the client
 * task). Every edge between tasks becomes a `_Send` in the producer's partition and a `_Recv`
 * in the consumer's, keyed by the edge's tensor name; a control edge between tasks sends a
 * dummy scalar. Fetches that live on another task are sent to the client. Running every
 * partition with the same step id (pst_session_run_step) and rendezvous performs the original
 * step.
 *
 *     pst_partition_set ps;
 *     pst_partition_graph(g, "/job:worker/task:0", 1, &loss, 1, &train_op, &ps, &st);
 *     for (int i = 0; i < ps.n; i++) ... register ps.parts[i].graph on ps.parts[i].task ...
 */
#ifndef PST_PARTITION_H
#define PST_PARTITION_H

#include "graph.h"

typedef struct pst_partition {
    char task[PST_DEVICE_MAX]; /* "/job:ps/replica:0/task:0" */
    pst_graph *graph;          /* owned */
    int n_targets;
    pst_node **targets;        /* to run each step: its sends and the original targets here */
    int n_fetches;
    pst_output *fetches;       /* client partition only: the original fetches, in order */
} pst_partition;

typedef struct pst_partition_set {
    int n;
    pst_partition *parts;
    int client; /* index of the client's partition */
} pst_partition_set;

/* The partitions' graphs find g's functions in g's library (g must outlive them). */
int pst_partition_graph(const pst_graph *g, const char *client_task, int n_fetches,
                        const pst_output *fetches, int n_targets, pst_node *const *targets,
                        pst_partition_set *out, pst_status *st);
void pst_partition_set_destroy(pst_partition_set *ps);
/* The partition for a task, or NULL. */
pst_partition *pst_partition_find(pst_partition_set *ps, const char *task);

#endif
