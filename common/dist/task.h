/*
 * task — the task service every pstrain process serves (PS and worker alike), and the client
 * side that registers and runs graph partitions on other tasks.
 *
 * A task owns a variable store shared by every partition registered on it, and a rendezvous:
 * a `_Send` whose receiver lives on another task pushes its tensor there (in chunks that travel
 * concurrently, straight from and into tensor memory); a `_Recv` waits for the tensor to be
 * pushed here. So one distributed step is: every task runs its partition with the same step id.
 *
 *     pst_task *t = pst_task_new(&(pst_task_opts){.cluster = c, .job = "worker", .index = 0,
 *                                                 .transport = "grpc"}, &st);
 *     pst_dist_run *r = pst_dist_run_new(t, g, 1, &loss, 1, &train_op, &st); // registers parts
 *     pst_dist_run_step(r, feeds, 2, &loss_value, &st);                        // one step
 *
 * A PS is a task that nobody runs steps on itself: `pstrain-ps` creates one and waits in
 * pst_task_wait_shutdown until every worker said it is done.
 */
#ifndef PST_TASK_H
#define PST_TASK_H

#include <stdint.h>

#include "cluster.h"
#include "graph.h"
#include "rendezvous.h"
#include "session.h"
#include "transport.h"
#include "varstore.h"

enum {
    PST_TASK_REGISTER,
    PST_TASK_DEREGISTER,
    PST_TASK_RUN,
    PST_TASK_PUSH,
    PST_TASK_FETCH_VAR,
    PST_TASK_SAVE,
    PST_TASK_RESTORE,
    PST_TASK_STATUS,
    PST_TASK_SHUTDOWN,
    PST_TASK_METHOD_COUNT
};
extern const char *const pst_task_methods[PST_TASK_METHOD_COUNT];

typedef struct pst_task_opts {
    const pst_cluster *cluster; /* borrowed, must outlive the task */
    const char *job;            /* "ps" or "worker" */
    int index;
    const char *transport;      /* "grpc" (default) or "inproc" */
    int64_t connect_timeout_ms; /* how long calls retry while peers start (default 30000) */
    int64_t recv_timeout_ms;    /* how long a _Recv waits for its tensor (default 60000) */
    int64_t chunk_bytes;        /* tensors above this move in chunks of it (default 4 MiB) */
    int expected_workers;       /* PS: exit after this many workers said done (default: all) */
    int64_t peer_timeout_ms;    /* a task that registered partitions here and has not answered
                                   a heartbeat for this long counts as a failed worker (default:
                                   connect_timeout_ms); so a PS ends even when workers crash */
    int64_t heartbeat_ms;       /* how often those tasks are pinged (default 1000) */
    int quiet;                  /* no log lines on stderr */
} pst_task_opts;

typedef struct pst_task pst_task;

/* Creates the task and starts serving on its cluster address. NULL with st set on error (the
 * message names the address). */
pst_task *pst_task_new(const pst_task_opts *o, pst_status *st);
/* Stops serving (aborting steps in progress) and frees everything. */
void pst_task_free(pst_task *t);

const char *pst_task_device(const pst_task *t);  /* "/job:ps/replica:0/task:0" */
const char *pst_task_address(const pst_task *t); /* the cluster address */
pst_var_store *pst_task_vars(pst_task *t);
pst_rendezvous *pst_task_rendezvous(pst_task *t); /* routes sends to their tasks */
pst_transport *pst_task_transport(pst_task *t);

/* Blocks until a Shutdown call (or pst_task_request_shutdown) ends the task's service, or
 * timeout_ms passes (<= 0: forever). Returns 0 when every worker finished cleanly, or the
 * error a failed worker reported (in st). */
int pst_task_wait_shutdown(pst_task *t, int64_t timeout_ms, pst_status *st);
void pst_task_request_shutdown(pst_task *t, const pst_status *why);

/* Tells the task at `device` (e.g. "/job:ps/replica:0/task:1") that this worker is done;
 * failed != 0 with a reason when it stopped on an error. */
int pst_task_say_done(pst_task *t, const char *device, int failed, const char *reason,
                      pst_status *st);

/* Assigns a variable on another task (creating it), moving its bytes in chunks. */
int pst_task_push_variable(pst_task *t, const char *device, const char *name, pst_tensor *value,
                           pst_status *st);
/* Reads a variable of another task (in concurrent chunks); NULL with st set on error. */
pst_tensor *pst_task_pull_variable(pst_task *t, const char *device, const char *name,
                                   pst_status *st);

/* The same for many variables at once: every chunk of every variable in flight together. */
int pst_task_push_variables(pst_task *t, const char *device, int n, const char *const *names,
                            pst_tensor *const *values, pst_status *st);
int pst_task_pull_variables(pst_task *t, const char *device, int n, const char *const *names,
                            pst_tensor **out, pst_status *st);


/* A task's status (see proto TaskStatus) as text lines: its variables with bytes and
 * pull/update counts, its partitions with their nodes and step counts. Caller frees. */
char *pst_task_status_text(pst_task *t, const char *device, pst_status *st);

/* What a task reports about itself (for `pstrain inspect placement`), queried by a process
 * outside the cluster too. */
typedef struct pst_var_report {
    char *name, *full_name, *slice; /* full_name/slice: "" unless a part of a partitioned var */
    int dtype, initialized;
    pst_shape shape;
    int64_t bytes, pulls, updates, stale;
} pst_var_report;

typedef struct pst_task_report {
    char *task, *address;
    double uptime_s;
    int n_vars;
    pst_var_report *vars;
    int n_partitions;
    int64_t bytes_received, bytes_sent, chunks_received;
} pst_task_report;

/* Asks the task at addr for its report over tr (a transport made with pst_task_methods).
 * Fails within timeout_ms, naming addr, when nothing answers. */
int pst_task_query_report(pst_transport *tr, const char *addr, int64_t timeout_ms,
                          pst_task_report *out, pst_status *st);
void pst_task_report_destroy(pst_task_report *r);

/* Variables of another task: names (caller frees each and the array), their initialized flags
 * and byte sizes. Returns the count or a negative error. */
int pst_task_list_variables(pst_task *t, const char *device, char ***names, int **initialized,
                            int64_t **bytes, pst_status *st);

/* Asks the task at device to write its variables as shard `shard` of `num_shards` of
 * checkpoint `prefix` (pst_bundle format with slices); or to restore them from `prefix`. */
int pst_task_save_remote(pst_task *t, const char *device, const char *prefix, int shard,
                         int num_shards, pst_status *st);
int pst_task_restore_remote(pst_task *t, const char *device, const char *prefix, int *n_restored,
                            pst_status *st);
/* The same done by this task on its own variables (what the Save/Restore calls run). */
int pst_task_save_local(pst_task *t, const char *prefix, int shard, int num_shards,
                        pst_status *st);
int pst_task_restore_local(pst_task *t, const char *prefix, int *n_restored, pst_status *st);

/* ---- distributed runs: one (fetches, targets) signature partitioned across tasks ---- */
typedef struct pst_dist_run pst_dist_run;

/* Partitions g for the fetches and targets (nodes placed by device strings), registers every
 * other task's partition on that task and keeps this task's one. The graph is borrowed. */
pst_dist_run *pst_dist_run_new(pst_task *t, pst_graph *g, int n_fetches, const pst_output *fetches,
                               int n_targets, pst_node *const *targets, pst_status *st);
/* Runs one step: every registered partition with a new step id, this task's with the feeds
 * (outputs of g's placeholders). out[n_fetches] gets new references. An error on any task
 * stops the step at once and names that task. */
int pst_dist_run_step(pst_dist_run *r, const pst_feed *feeds, int n_feeds, pst_tensor **out,
                      pst_status *st);
/* Deregisters the remote partitions (best effort) and frees. */
void pst_dist_run_free(pst_dist_run *r);

#endif
