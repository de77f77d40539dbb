/*
 * coord — the coordination service of a job: who the members are (versioned by an epoch), the
 * address each task actually bound, heartbeats that carry progress, and the launcher's
 * requests travelling back in the heartbeat replies.
 *
 * The launcher serves it (pst_coord_new); every task is a client: it binds its own server on
 * port 0, registers the address it got, polls until every expected task has registered, and
 * then builds its cluster spec from the reply. A task that starts again (supervision) is a new
 * incarnation of its slot: registering bumps the epoch and the older incarnation's heartbeats
 * are answered "superseded". The epoch changes whenever a slot's address or incarnation
 * changes, or the expected shape does.
 *
 *     // launcher
 *     pst_coord *co = pst_coord_new(&(pst_coord_opts){.bind = "127.0.0.1:0", .security = sec,
 *                                     .jobs = {"ps", "worker"}, .expected = {2, 2}, .n_jobs = 2}, &st);
 *     printf("%s\n", pst_coord_address(co));
 *     // task
 *     pst_coord_client *cc = pst_coord_client_new(addr, sec, &st);
 *     pst_coord_register(cc, &(pst_coord_id){"worker", 1, inc}, "127.0.0.1:40123", &epoch, &st);
 *     char *json; pst_coord_wait_cluster(cc, &id, 60000, &json, &epoch, &st);   // all registered
 *     pst_coord_heartbeat(cc, &id, &progress, "running", &reply, &st);          // every second
 */
#ifndef PST_COORD_H
#define PST_COORD_H

#include <stdint.h>

#include "status.h"

struct pst_security;

#define PST_COORD_MAX_JOBS 8

typedef enum pst_member_state {
    PST_MEMBER_EMPTY = 0, /* expected, never registered */
    PST_MEMBER_RUNNING,   /* registered, heartbeats arriving */
    PST_MEMBER_SILENT,    /* registered, no heartbeat for heartbeat_timeout_ms */
    PST_MEMBER_DONE,      /* left cleanly */
    PST_MEMBER_FAILED,    /* left with an error, or its process died */
    PST_MEMBER_STATE_COUNT
} pst_member_state;

const char *pst_member_state_name(pst_member_state s);

typedef struct pst_coord_id {
    const char *job;
    int index;
    uint64_t incarnation;
} pst_coord_id;

typedef struct pst_coord_progress {
    int64_t global_step, total_steps, local_steps;
    double loss, examples_per_sec;
    const char *last_checkpoint; /* may be NULL */
} pst_coord_progress;

/* ---- the service (launcher side) ---- */

typedef struct pst_coord_opts {
    const char *bind;                     /* "host:port" (port 0: any) */
    const struct pst_security *security;  /* borrowed: token and TLS for the service */
    const char *jobs[PST_COORD_MAX_JOBS]; /* job names in cluster order ("ps", "worker") */
    int expected[PST_COORD_MAX_JOBS];     /* tasks expected per job */
    int n_jobs;
    int64_t heartbeat_timeout_ms;         /* silent after this long (default 10000) */
    const char *job_id;                   /* shown to tasks (default "job") */
} pst_coord_opts;

typedef struct pst_coord pst_coord;

pst_coord *pst_coord_new(const pst_coord_opts *o, pst_status *st);
/* Stops serving and frees. */
void pst_coord_free(pst_coord *co);
/* The address it serves on (port resolved). */
const char *pst_coord_address(const pst_coord *co);

/* A member as the launcher sees it (a copy: strings are owned by the view). */
typedef struct pst_coord_member {
    char job[32];
    int index;
    uint64_t incarnation;
    char address[128], host[64], state_text[16];
    int64_t pid;
    pst_member_state state;
    double joined_s, last_heartbeat_s; /* seconds since the service started; -1: never */
    int registrations;                 /* > 1: it was restarted */
    int64_t global_step, total_steps, local_steps;
    double loss, examples_per_sec;
    char last_checkpoint[256];
    char reason[256]; /* why it failed, when it did */
    int vacant;       /* not part of the job: scaled away or dropped (elastic jobs) */
    int leaving;      /* asked to leave (scale-down), not gone yet */
} pst_coord_member;

typedef struct pst_coord_view {
    int64_t epoch;
    int complete;   /* every expected slot registered */
    int stop;       /* a stop was requested */
    double uptime_s;
    int n;
    pst_coord_member *members; /* in cluster order */
} pst_coord_view;

/* A consistent snapshot (caller destroys). */
int pst_coord_snapshot(pst_coord *co, pst_coord_view *out);
void pst_coord_view_destroy(pst_coord_view *v);
/* The cluster spec of the registered addresses (JSON, caller frees); NULL while incomplete. */
char *pst_coord_cluster_json(pst_coord *co);

/* Asks every task to finish (heartbeat replies say stop; the chief saves first). */
void pst_coord_request_stop(pst_coord *co);
/* The launcher saw a task's process end: its slot becomes DONE or FAILED (unless a newer
 * incarnation already registered). */
void pst_coord_task_exited(pst_coord *co, const char *job, int index, uint64_t incarnation,
                           int failed, const char *reason);
/* ---- elastic membership (see README "Elastic jobs") ----
 * Once every expected task has registered (the job formed), worker slots come and go: the
 * cluster spec then gives an empty or vacant worker slot the placeholder "127.0.0.1:0" and
 * nobody waits for it. Every change of a slot bumps the epoch. */

/* The job file as launched, handed to workers that join by hand (copied). */
int pst_coord_set_job_json(pst_coord *co, const char *json, pst_status *st);
/* Reserves a worker slot for a new task (the lowest vacant index, else a new one at the end)
 * and returns its index; the task then registers under it. Negative PST_E_* on error. */
int pst_coord_reserve(pst_coord *co, const char *job, pst_status *st);
/* Scale-down: the slot's heartbeat replies say leave (finish the step, deregister, exit). */
int pst_coord_request_leave(pst_coord *co, const char *job, int index);
/* The slot is no longer part of the job (its task left or was dropped); a task registering
 * under its index later takes it back. */
void pst_coord_vacate(pst_coord *co, const char *job, int index);
/* Changes how many tasks a job expects (scale); bumps the epoch. */
int pst_coord_set_expected(pst_coord *co, const char *job, int n, pst_status *st);

/* ---- the client (task side) ---- */

typedef struct pst_coord_client pst_coord_client;

/* A client of the service at addr, with the job's security (borrowed). */
pst_coord_client *pst_coord_client_new(const char *addr, const struct pst_security *security,
                                       pst_status *st);
void pst_coord_client_free(pst_coord_client *c);

/* Registers this incarnation with the address it bound. Retries while the service starts
 * (up to timeout_ms). */
int pst_coord_register(pst_coord_client *c, const pst_coord_id *id, const char *address,
                       int64_t timeout_ms, int64_t *epoch, pst_status *st);
/* Polls until every expected task registered; *cluster_json (caller frees) is the spec with
 * the actual addresses. Fails after timeout_ms naming the first task still missing. */
int pst_coord_wait_cluster(pst_coord_client *c, const pst_coord_id *id, int64_t timeout_ms,
                           char **cluster_json, int64_t *epoch, pst_status *st);

/* Joining by hand: asks the service at c for a slot of `job` ("worker"). *index gets the
 * worker id to register under, *job_json (caller frees) the job's settings. Needs the job's
 * token like every call: without it the service refuses and nothing changes. */
int pst_coord_join(pst_coord_client *c, const char *job, int64_t timeout_ms, int *index,
                   int64_t *epoch, char **job_json, pst_status *st);

typedef struct pst_coord_reply {
    int64_t epoch;
    int stop, superseded, member;
    int leave;        /* scale-down asked this task to leave */
    int job_finished; /* the chief finished and no worker runs: a PS may exit */
    int workers;      /* running worker members */
    char members[1024]; /* "index:incarnation:joined_s,..." (truncated beyond) */
} pst_coord_reply;

int pst_coord_heartbeat(pst_coord_client *c, const pst_coord_id *id, const pst_coord_progress *p,
                        const char *state, pst_coord_reply *r, pst_status *st);
int pst_coord_leave(pst_coord_client *c, const pst_coord_id *id, int failed, const char *reason,
                    pst_status *st);

/* A new incarnation number: different for every process start (time, pid and randomness). */
uint64_t pst_coord_new_incarnation(void);

#endif
