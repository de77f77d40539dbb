/*
 * dist_run — one (fetches, targets) signature of a graph run as distributed steps: the graph is
 * partitioned by its nodes' device strings, every other task's partition registered on that
 * task once, and each step runs all partitions with one step id (their Send/Recv pairs meet in
 * the tasks' rendezvous), this task's partition on the calling thread.
 *
 *     pst_dist_run *r = pst_dist_run_new(t, g, 1, &loss, 1, &train_op, &st); // registers parts
 *     pst_feed f[2] = {{x, xv}, {y, yv}};
 *     pst_tensor *out[1];
 *     pst_dist_run_step(r, f, 2, out, &st);                                 // one step
 *     pst_dist_run_free(r);                                                 // deregisters
 *
 * Everything a step needs is resolved when the run is made (the tasks' addresses, which
 * partition node each feed goes to), so a step only packs its RunGraph calls. A step's calls
 * have the task's step timeout as deadline, and the step returns only once every call it
 * started has completed, on errors too.
 */
#ifndef PST_DIST_RUN_H
#define PST_DIST_RUN_H

#include "graph.h"
#include "session.h"
#include "task.h"

typedef struct pst_dist_run pst_dist_run;

/* Partitions g for the fetches and targets, registers every other task's partition on that
 * task and keeps this task's one. The graph is borrowed and must outlive the run. NULL with st
 * set (naming the task at fault) on error. */
pst_dist_run *pst_dist_run_new(pst_task *t, pst_graph *g, int n_fetches, const pst_output *fetches,
                               int n_targets, pst_node *const *targets, pst_status *st);
/* Runs one step: every registered partition with a new step id, this task's with the feeds
 * (outputs of g's nodes; feeds of nodes outside this task's partition are ignored).
 * out[n_fetches] gets new references (all NULL on error). An error on any task stops the step
 * at once and names that task. */
int pst_dist_run_step(pst_dist_run *r, const pst_feed *feeds, int n_feeds, pst_tensor **out,
                      pst_status *st);
/* Deregisters the remote partitions (best effort) and frees (NULL is fine). */
void pst_dist_run_free(pst_dist_run *r);

#endif
