/*
 * session — runs a graph: fetches with feeds and targets, executing only the nodes they need.
 *
 * The calling thread runs the needed nodes in creation order (a topological order, since a
 * node's inputs exist before it); with inter_op_threads > 1, helper threads run pure nodes
 * (no variable, state or side effect) as soon as their inputs are ready, so independent
 * branches overlap while values, side effects and errors stay those of the sequential order.
 * A tensor is released as soon as its last consumer has run. Plans (which nodes one
 * feeds/fetches/targets signature needs) are cached. Variables live in the session's
 * var store, or in a store shared with others (a parameter server's).
 *
 *     pst_session *s = pst_session_new(g, NULL, &st);
 *     pst_session_run(s, NULL, 0, NULL, 0, &init, 1, NULL, &st);       // run the initializer
 *     pst_feed f = {x, batch};
 *     pst_tensor *out[1];
 *     pst_session_run(s, &f, 1, &loss, 1, &train_op, 1, out, &st);    // out[0]: caller unrefs
 *
 * Errors name the node (and the placeholder or variable) at fault. A session may be run from
 * several threads at once.
 */
#ifndef PST_SESSION_H
#define PST_SESSION_H

#include "graph.h"
#include "status.h"
#include "tensor.h"
#include "varstore.h"

typedef struct pst_session pst_session;

typedef struct pst_session_opts {
    pst_var_store *vars; /* borrowed shared store; NULL: the session owns a new one */
    void *exec;          /* passed to kernels as ctx->exec (rendezvous for Send/Recv) */
    int inter_op_threads; /* threads running one step's nodes, the caller included; 1: one
                             at a time in order; 0: pst_session_default_inter_op_threads() */
    int files_confined;    /* the session runs graphs on behalf of a remote peer: file ops
                              (ReadFile, WriteFile, table text files) may touch only file_root,
                              or without one read anything but write only into directories
                              that exist (as a task's Save and Restore) */
    const char *file_root; /* copied; NULL or "" for none */
} pst_session_opts;

#define PST_INTER_OP_THREADS_DEFAULT 1
#define PST_INTER_OP_THREADS_MAX 64
/* What sessions created with inter_op_threads 0 use: the last value set, else
 * $PST_INTER_OP_THREADS, else PST_INTER_OP_THREADS_DEFAULT (clamped to 1..MAX). */
int pst_session_default_inter_op_threads(void);
void pst_session_set_default_inter_op_threads(int n);

typedef struct pst_feed {
    pst_output output;
    pst_tensor *value; /* borrowed */
} pst_feed;

/* The graph is borrowed and may keep growing after the session is created. */
pst_session *pst_session_new(pst_graph *g, const pst_session_opts *opts, pst_status *st);
void pst_session_free(pst_session *s);
pst_var_store *pst_session_vars(pst_session *s);
pst_graph *pst_session_graph(pst_session *s);
/* How many nodes inter-op helper threads have run for this session so far. */
int64_t pst_session_helper_nodes(pst_session *s);

/* Runs fetches and targets. out (n_fetches entries) receives new references the caller unrefs;
 * on error every out entry is NULL. */
int pst_session_run(pst_session *s, const pst_feed *feeds, int n_feeds, const pst_output *fetches,
                    int n_fetches, pst_node *const *targets, int n_targets, pst_tensor **out,
                    pst_status *st);
/* The same with an explicit step id (>= 0), shared by the partitions of one distributed step
 * so their Send/Recv keys match; -1 picks the session's next id. */
int pst_session_run_step(pst_session *s, int64_t step_id, const pst_feed *feeds, int n_feeds,
                         const pst_output *fetches, int n_fetches, pst_node *const *targets,
                         int n_targets, pst_tensor **out, pst_status *st);
/* One fetch, no feeds: returns a new reference or NULL with st set. */
pst_tensor *pst_session_run1(pst_session *s, pst_output fetch, pst_status *st);
/* One target, no feeds, no fetches. */
int pst_session_run_target(pst_session *s, pst_node *target, pst_status *st);

#endif
