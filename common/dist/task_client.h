/*
 * task_client — the calls a task makes to another task's service: variables pushed and pulled
 * in chunks (every chunk of every variable in flight together), partitions registered and run,
 * checkpoint shards saved and restored, status asked for, and "this worker is done".
 *
 * Calls go through the calling task's transport to the address of the target device
 * (pst_task_peer_address); every call has a deadline from the task's options (connect timeout
 * for transfers, step timeout for steps, saves and restores) and fails naming the address.
 *
 *     pst_tensor *w = pst_task_client_pull_variable(t, "/job:ps/task:0", "w", &st);
 *     pst_task_client_push_variable(t, "/job:ps/task:0", "w", w, &st);
 *     pst_task_client_say_done(t, "/job:ps/task:0", 0, NULL, &st);
 */
#ifndef PST_TASK_CLIENT_H
#define PST_TASK_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"
#include "task.h"
#include "task_status.h"
#include "tensor.h"
#include "transport.h"

/* Assigns a variable on another task (creating it), moving its bytes in chunks; waits for the
 * task to come up (connect timeout), as pulls do. Borrows value. */
int pst_task_client_push_variable(pst_task *t, const char *device, const char *name,
                                  pst_tensor *value, pst_status *st);
/* Reads a variable of another task (in concurrent chunks): a new tensor the caller unrefs, or
 * NULL with st set (naming the variable and the task). */
pst_tensor *pst_task_client_pull_variable(pst_task *t, const char *device, const char *name,
                                          pst_status *st);
/* The same for many variables at once: every chunk of every variable in flight together.
 * out[n] gets new references, all NULL on error. */
int pst_task_client_push_variables(pst_task *t, const char *device, int n,
                                   const char *const *names, pst_tensor *const *values,
                                   pst_status *st);
int pst_task_client_pull_variables(pst_task *t, const char *device, int n,
                                   const char *const *names, pst_tensor **out, pst_status *st);

/* Starts pushing value's chunks under key (a rendezvous key, or "var:NAME" to assign a
 * variable) to the task at addr, counted in group g, with the transport's call flags (a step's
 * sends: 0, failing fast; PST_CALL_WAIT_FOR_READY while a job starts); errors surface when g is
 * waited for. Returns the bytes pushed, or a negative error (nothing started) for a tensor that
 * cannot be sent. Takes references to value for as long as its chunks travel. */
int64_t pst_task_client_push_async(pst_task *t, pst_call_group *g, const char *addr,
                                   const char *key, pst_tensor *value, int flags,
                                   pst_status *st);

/* Where a task of a step serves, as this task knows it. */
typedef struct pst_task_peer {
    const char *device;  /* "/job:ps/replica:0/task:1" */
    const char *address; /* "host:port" */
} pst_task_peer;

/* Registers a partition (graph g, run its `targets` each step) on the task at device, telling
 * it where the step's tasks serve (peers: every task the partition may send to, this one
 * included; the receiver uses these addresses over its own cluster's). Its handle is written to
 * handle (hlen bytes). Waits for the task to come up (connect timeout). */
int pst_task_client_register(pst_task *t, const char *device, const pst_graph *g, int n_targets,
                             pst_node *const *targets, int n_peers, const pst_task_peer *peers,
                             char *handle, size_t hlen, pst_status *st);
/* Deregisters a partition at addr (best effort, a short deadline). */
void pst_task_client_deregister(pst_task *t, const char *addr, const char *handle);
/* Starts one step of the partition `handle` registered at addr, counted in group g, with the
 * task's step timeout as deadline; its error surfaces when g is waited for. Returns 0, or
 * PST_E_EXHAUSTED (nothing started) when out of memory. */
int pst_task_client_start_run(pst_task *t, pst_call_group *g, const char *addr,
                              const char *handle, int64_t step_id, pst_status *st);

/* Tells the task at device that this worker is done; failed != 0 with a reason when it stopped
 * on an error. A task that is gone already fails fast (no waiting for it to come up). */
int pst_task_client_say_done(pst_task *t, const char *device, int failed, const char *reason,
                             pst_status *st);

/* Asks the task at device to write its variables as shard `shard` of `num_shards` of
 * checkpoint `prefix` (pst_bundle format with slices); or to restore them from prefix
 * (*n_restored, may be NULL, gets how many it restored). The task should be up (it knows its
 * variables from registered partitions): one that is not fails at once, naming it. */
int pst_task_client_save(pst_task *t, const char *device, const char *prefix, int shard,
                         int num_shards, pst_status *st);
int pst_task_client_restore(pst_task *t, const char *device, const char *prefix,
                            int *n_restored, pst_status *st);

/* The report of the task at device (pst_task_status_report_destroy it). With wait_for_ready
 * the call waits up to the connect timeout for the task to come up (a readiness poll); else a
 * task that is gone fails within 5 s. */
int pst_task_client_report(pst_task *t, const char *device, int wait_for_ready,
                           pst_task_status_report *out, pst_status *st);
/* The same asked over any transport made with pst_task_methods (a process outside the
 * cluster: `pstrain inspect`); fails within timeout_ms naming addr when nothing answers. */
int pst_task_client_query_report(pst_transport *tr, const char *addr, int64_t timeout_ms,
                                 pst_task_status_report *out, pst_status *st);
/* Variables of the task at device (waiting for it to come up): names (caller frees each and
 * the array), their initialized flags and byte sizes (each may be NULL). Returns the count or
 * a negative error. */
int pst_task_client_list_variables(pst_task *t, const char *device, char ***names,
                                   int **initialized, int64_t **bytes, pst_status *st);

#endif
