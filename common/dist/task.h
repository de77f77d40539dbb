/*
 * task — a pstrain task: the service every process of a job serves, PS and worker alike (as
 * TensorFlow's worker service), and the object the other task modules work through.
 *
 * A task owns a variable store shared by every partition registered on it, and a rendezvous:
 * a `_Send` whose receiver lives on another task pushes its tensor there (in chunks that travel
 * concurrently, straight from and into tensor memory); a `_Recv` waits for the tensor to be
 * pushed here. Registered partitions run, one step each per RunGraph call, on a bounded pool of
 * threads. A task pings the tasks that registered partitions on it and counts one silent for
 * peer_timeout_ms as a failed worker; it ends once every worker said it is done.
 *
 * The other roles have modules of their own: calls to other tasks (task_client.h), status
 * reports (task_status.h), a step partitioned across tasks (dist_run.h).
 *
 *     pst_task *t = pst_task_new(&(pst_task_opts){.cluster = c, .job = "ps", .index = 0}, &st);
 *     printf("serving on %s\n", pst_task_address(t));    // the port it bound
 *     pst_task_wait_shutdown(t, 0, &st);                 // until every worker is done
 *     pst_task_free(t);
 *
 * A cluster entry with port 0 makes the task bind a free port (pst_task_port says which); tell
 * the others through their own cluster spec, or let them learn it: a task that registers a
 * partition sends the address it serves on, and the receiver reaches it there.
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

/* The methods of the task service, in the order of pst_task_methods (gRPC paths). */
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
    const char *transport;      /* "grpc" (default), "mpi" (the cluster address is "mpi:RANK",
                                   transport_mpi.h) or "inproc" */
    const char *listen;         /* where to listen (default "0.0.0.0:<the cluster's port>");
                                   port 0 picks a free one */
    int64_t connect_timeout_ms; /* how long calls retry while peers start (default 30000) */
    int64_t recv_timeout_ms;    /* how long a _Recv waits for its tensor (default 60000) */
    int64_t chunk_bytes;        /* tensors above this move in chunks of it (default 4 MiB; MPI: 256 MiB) */
    int expected_workers;       /* PS: exit after this many workers said done (default: all) */
    int64_t peer_timeout_ms;    /* a task that registered partitions here and has not answered
                                   a heartbeat for this long counts as a failed worker (default:
                                   connect_timeout_ms); so a PS ends even when workers crash */
    int64_t heartbeat_ms;       /* how often those tasks are pinged (default 1000) */
    int64_t step_timeout_ms;    /* deadline of a call that runs a step, a save or a restore on
                                   another task (default: what such a call may legitimately
                                   wait: recv + sync-replica + peer + connect timeouts) */
    int run_threads;            /* RunGraph steps run at once at most (default: twice the
                                   cluster's tasks, at least 16); synchronous replicas wait
                                   for each other, so keep it above the number of workers */
    int run_queue;              /* RunGraph steps waiting for a thread at most (0: as many as
                                   run_threads; negative: none); beyond, calls fail
                                   ResourceExhausted */
    int quiet;                  /* no log lines on stderr */
    const struct pst_security *security; /* the job's token and TLS (security.h; borrowed):
                                   every call made and served carries and checks the token;
                                   the cluster must pass pst_security_check_cluster. NULL:
                                   no authentication (in-process tests and library use) */
    int supervised;             /* a launcher restarts failed workers: a worker that fails (or
                                   falls silent) is not counted as done, so the task keeps
                                   serving for its next incarnation; synchronous steps waiting
                                   for it still fail at once */
    /* Authorization and budgets (README "Security"): */
    const char *checkpoint_dir; /* Save and Restore requests may name files only inside it;
                                   NULL: any existing directory, never a ".." component */
    int check_numerics;         /* refuse pushed tensors (gradients, values) with NaN or Inf */
    int64_t max_pending_bytes;  /* memory for tensors still arriving in chunks (default 2 GiB);
                                   a push beyond it fails with RESOURCE_EXHAUSTED */
    int64_t max_graph_bytes;    /* constant tensor bytes registered graphs may hold in total
                                   (default 1 GiB) */
} pst_task_opts;

typedef struct pst_task pst_task;

/* Creates the task and starts serving. NULL with st set on error (the message names the
 * address). Registers the distributed ops (pst_dist_ops_init) so any partition can run. */
pst_task *pst_task_new(const pst_task_opts *o, pst_status *st);
/* Stops serving (failing steps in progress, waits of synchronous replicas included) and frees
 * everything (NULL is fine). */
void pst_task_free(pst_task *t);

const char *pst_task_device(const pst_task *t);  /* "/job:ps/replica:0/task:0" */
const char *pst_task_address(const pst_task *t); /* the cluster's host with the bound port */
int pst_task_port(const pst_task *t);            /* the port it serves on */
const pst_cluster *pst_task_cluster(const pst_task *t);
/* Replaces the cluster (borrowed; must outlive the task), e.g. the spec with every task's
 * actual address once a coordination service has it. The task's own entry keeps its bound
 * address. Fails when the new cluster has no entry for this task or breaks the cleartext rule
 * (security.h). */
int pst_task_set_cluster(pst_task *t, const pst_cluster *c, pst_status *st);
/* The options in effect (defaults filled in). */
const pst_task_opts *pst_task_options(const pst_task *t);
pst_var_store *pst_task_vars(pst_task *t);
pst_rendezvous *pst_task_rendezvous(pst_task *t); /* routes sends to their tasks */
pst_transport *pst_task_transport(pst_task *t);

/* Writes the address of the task running `device` ("/job:ps/task:1", any device string of
 * it) into out: this task's own, the one that task registered with, or the cluster's. Returns
 * 0, or PST_E_NOT_FOUND naming the device when the cluster has no such task, PST_E_UNAVAILABLE
 * when its cluster entry has port 0 and it never registered here, PST_E_INVALID when out is
 * too small. */
int pst_task_peer_address(pst_task *t, const char *device, char *out, size_t len,
                          pst_status *st);

/* The job's membership (a launched task learns it from the coordination service), reported
 * by the Status call: the epoch and the running workers "index:incarnation:joined_s,...". */
void pst_task_set_membership(pst_task *t, int64_t epoch, const char *members);

/* Blocks until a Shutdown call (or pst_task_request_shutdown) ends the task's service, or
 * timeout_ms passes (<= 0: forever). Returns 0 when every worker finished cleanly, or the
 * error a failed worker reported (in st). */
int pst_task_wait_shutdown(pst_task *t, int64_t timeout_ms, pst_status *st);
void pst_task_request_shutdown(pst_task *t, const pst_status *why);

/* Writes this task's variables (those registered partitions described, with their slices) as
 * a checkpoint shard at prefix, or restores them from prefix: what the Save and Restore calls
 * run. *n_restored (may be NULL) gets the count. */
int pst_task_save_local(pst_task *t, const char *prefix, int shard, int num_shards,
                        pst_status *st);
int pst_task_restore_local(pst_task *t, const char *prefix, int *n_restored, pst_status *st);

/* ---- the plumbing of a step run from this task (dist_run.h) ---- */

/* A step id no other step of this job uses. */
int64_t pst_task_new_step_id(pst_task *t);
/* Waits until the tensors this task's sends of step_id pushed to other tasks have arrived;
 * returns the first error (naming the receiver). */
int pst_task_flush_step(pst_task *t, int64_t step_id, pst_status *st);
/* Fails every current and future _Recv of this task with why (a peer's part of a step
 * failed: the tensors it would send never come). */
void pst_task_abort_steps(pst_task *t, const pst_status *why);
/* Lets steps run again after a failed one that the caller decided was not fatal (no step
 * running); a task that is stopping stays aborted. */
void pst_task_resume_steps(pst_task *t);
/* Counts bytes this task sent to others, for its status (task_client.c pushes count here). */
void pst_task_note_sent(pst_task *t, int64_t bytes);

#endif
