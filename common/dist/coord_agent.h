/*
 * coord_agent — a task's side of its launcher: registration, heartbeats with progress every
 * heartbeat_ms on a thread of its own, the launcher's requests (stop, superseded), and dying
 * with the launcher.
 *
 *     pst_coord_agent_die_with_launcher(&st);     // PR_SET_PDEATHSIG when $PST_LAUNCHER_PID
 *     pst_coord_agent *a = pst_coord_agent_new(&(pst_coord_agent_opts){
 *         .address = coord, .security = sec, .job = "worker", .index = 1,
 *         .heartbeat_ms = 1000, .progress = fill, .ctx = me}, &st);
 *     pst_coord_agent_register(a, my_bound_address, &st);
 *     char *cluster_json; pst_coord_agent_wait_cluster(a, 600000, &cluster_json, &st);
 *     pst_coord_agent_start_heartbeats(a);
 *     while (!pst_coord_agent_stop_requested(a)) ... train ...
 *     pst_coord_agent_leave(a, failed, reason);
 *     pst_coord_agent_free(a);
 */
#ifndef PST_COORD_AGENT_H
#define PST_COORD_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "coord.h"
#include "status.h"

/* Fills the progress to report (called on the agent's thread; keep it quick and thread-safe).
 * *state: "starting", "running", "saving", ... */
typedef void (*pst_coord_progress_fn)(void *ctx, pst_coord_progress *p, const char **state);

typedef struct pst_coord_agent_opts {
    const char *address;                 /* the coordination service */
    const struct pst_security *security; /* borrowed */
    const char *job;
    int index;
    int64_t heartbeat_ms;                /* default 1000 */
    pst_coord_progress_fn progress;      /* may be NULL */
    void *ctx;
} pst_coord_agent_opts;

typedef struct pst_coord_agent pst_coord_agent;

pst_coord_agent *pst_coord_agent_new(const pst_coord_agent_opts *o, pst_status *st);
/* Leaves nothing running: stops the heartbeat thread. */
void pst_coord_agent_free(pst_coord_agent *a);
uint64_t pst_coord_agent_incarnation(const pst_coord_agent *a);

int pst_coord_agent_register(pst_coord_agent *a, const char *bound_address, pst_status *st);
int pst_coord_agent_wait_cluster(pst_coord_agent *a, int64_t timeout_ms, char **cluster_json,
                                 pst_status *st);
int pst_coord_agent_start_heartbeats(pst_coord_agent *a, pst_status *st);

int pst_coord_agent_stop_requested(const pst_coord_agent *a);
/* A newer incarnation took this task's slot: exit without touching shared state. */
int pst_coord_agent_superseded(const pst_coord_agent *a);
int64_t pst_coord_agent_epoch(const pst_coord_agent *a);
/* Scale-down asked this task to leave: finish the current step, deregister, exit 0. */
int pst_coord_agent_leave_requested(const pst_coord_agent *a);
/* The chief finished and no worker runs any more (a PS may exit). */
int pst_coord_agent_job_finished(const pst_coord_agent *a);
/* The running worker members as the last heartbeat reply listed them
 * ("index:incarnation:joined_s,...") into buf; returns their count. */
int pst_coord_agent_members(pst_coord_agent *a, char *buf, size_t len);
/* Consecutive heartbeats that failed (the launcher is gone when this keeps growing). */
int pst_coord_agent_missed(const pst_coord_agent *a);

/* Tells the service this incarnation ends (best effort, short deadline). */
void pst_coord_agent_leave(pst_coord_agent *a, int failed, const char *reason);

/* With $PST_LAUNCHER_PID set: the kernel sends SIGKILL to this process when its parent (the
 * launcher) dies; an error when the parent is already another process (the launcher died
 * before we got here). Without the variable: nothing. */
int pst_coord_agent_die_with_launcher(pst_status *st);

/* Ssh tasks: reads the job token's line from standard input (the launcher writes it there, so
 * it never appears on a command line) into buf, then watches stdin on a thread: when it closes
 * (the launcher or its ssh connection is gone) the process gets SIGTERM, and SIGKILL 10 s
 * later. */
int pst_coord_agent_token_from_stdin(char *buf, size_t len, pst_status *st);

#endif
