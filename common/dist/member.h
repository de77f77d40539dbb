/*
 * member — a task started by a launcher: serve on any port, register with the launcher's
 * coordination service, learn the cluster with everybody's actual address, heartbeat.
 *
 *     pst_task_opts to = {.job = "worker", .index = 1, .security = sec, .supervised = 1};
 *     pst_member m;
 *     if (pst_member_start(&(pst_member_opts){.task = to, .bind = "127.0.0.1:0",
 *                          .coordinator = addr, .heartbeat_ms = 1000}, &m, &st) < 0) ...
 *     ... m.task serves; m.cluster is the job's; pst_coord_agent_stop_requested(m.agent) ...
 *     pst_member_finish(&m, failed, reason);   // leaves the service, frees everything
 */
#ifndef PST_MEMBER_H
#define PST_MEMBER_H

#include "cluster.h"
#include "coord_agent.h"
#include "task.h"

typedef struct pst_member_opts {
    pst_task_opts task;          /* cluster and listen are filled in here */
    const char *bind;            /* "host:port" to serve on (port 0: any) */
    const char *coordinator;     /* the launcher's coordination service */
    int64_t heartbeat_ms;
    int64_t cluster_timeout_ms;  /* waiting for every task to register (default 600000) */
    pst_coord_progress_fn progress;
    void *progress_ctx;
} pst_member_opts;

typedef struct pst_member {
    pst_task *task;
    pst_cluster *cluster;  /* the job's, with actual addresses (owned) */
    pst_cluster *boot;     /* the bootstrap spec the task started with (owned) */
    pst_coord_agent *agent;
} pst_member;

int pst_member_start(const pst_member_opts *o, pst_member *m, pst_status *st);
/* Tells the service this incarnation ends and frees the task, agent and clusters. */
void pst_member_finish(pst_member *m, int failed, const char *reason);

#endif
