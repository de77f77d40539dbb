/* coord_agent: a task's registration, heartbeats and launcher requests (see coord_agent.h). */
#include "coord_agent.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

struct pst_coord_agent {
    pst_coord_agent_opts o;
    char job[32];
    pst_coord_client *client;
    pst_coord_id id;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;
    atomic_int stop, superseded, missed, leave, job_finished;
    atomic_llong epoch;
    char members[1024]; /* the latest reply's worker members (guarded by mu) */
    int workers;
};

pst_coord_agent *pst_coord_agent_new(const pst_coord_agent_opts *o, pst_status *st) {
    pst_coord_agent *a = calloc(1, sizeof *a);
    if (!a) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        return NULL;
    }
    a->o = *o;
    if (a->o.heartbeat_ms <= 0) a->o.heartbeat_ms = 1000;
    snprintf(a->job, sizeof a->job, "%s", o->job);
    a->id = (pst_coord_id){a->job, o->index, pst_coord_new_incarnation()};
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (!(a->client = pst_coord_client_new(o->address, o->security, st))) {
        pst_coord_agent_free(a);
        return NULL;
    }
    return a;
}

void pst_coord_agent_free(pst_coord_agent *a) {
    if (!a) return;
    if (a->thread_started) {
        pthread_mutex_lock(&a->mu);
        a->quit = 1;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    pst_coord_client_free(a->client);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

uint64_t pst_coord_agent_incarnation(const pst_coord_agent *a) { return a->id.incarnation; }

int pst_coord_agent_register(pst_coord_agent *a, const char *bound, pst_status *st) {
    int64_t epoch = 0;
    int rc = pst_coord_register(a->client, &a->id, bound, 60000, &epoch, st);
    if (rc == 0) atomic_store(&a->epoch, epoch);
    return rc;
}

int pst_coord_agent_wait_cluster(pst_coord_agent *a, int64_t timeout_ms, char **json,
                                 pst_status *st) {
    int64_t epoch = 0;
    int rc = pst_coord_wait_cluster(a->client, &a->id, timeout_ms, json, &epoch, st);
    if (rc == 0) atomic_store(&a->epoch, epoch);
    return rc;
}

static void *heartbeat_loop(void *arg) {
    pst_coord_agent *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->quit) {
        pthread_mutex_unlock(&a->mu);
        pst_coord_progress p = {0};
        const char *state = "running";
        if (a->o.progress) a->o.progress(a->o.ctx, &p, &state);
        pst_coord_reply r;
        pst_status st = {0};
        if (pst_coord_heartbeat(a->client, &a->id, &p, state, &r, &st) == 0) {
            atomic_store(&a->missed, 0);
            atomic_store(&a->epoch, r.epoch);
            if (r.stop) atomic_store(&a->stop, 1);
            if (r.superseded || !r.member) atomic_store(&a->superseded, 1);
            if (r.leave) atomic_store(&a->leave, 1);
            atomic_store(&a->job_finished, r.job_finished);
            pthread_mutex_lock(&a->mu);
            memcpy(a->members, r.members, sizeof a->members);
            a->workers = r.workers;
            pthread_mutex_unlock(&a->mu);
        } else if (atomic_fetch_add(&a->missed, 1) == 2) {
            pst_log_msg(PST_LOG_WARN, "coordination service unreachable: %s", st.msg);
        }
        pthread_mutex_lock(&a->mu);
        struct timespec dl;
        pst_clock_deadline_in(&dl, a->o.heartbeat_ms);
        while (!a->quit && pthread_cond_timedwait(&a->cv, &a->mu, &dl) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

int pst_coord_agent_start_heartbeats(pst_coord_agent *a, pst_status *st) {
    if (a->thread_started) return 0;
    if (pthread_create(&a->thread, NULL, heartbeat_loop, a) != 0)
        return pst_status_set(st, PST_E_EXHAUSTED, "cannot start the heartbeat thread");
    a->thread_started = 1;
    return 0;
}

int pst_coord_agent_stop_requested(const pst_coord_agent *a) {
    return a && atomic_load(&((pst_coord_agent *)a)->stop);
}
int pst_coord_agent_superseded(const pst_coord_agent *a) {
    return a && atomic_load(&((pst_coord_agent *)a)->superseded);
}
int pst_coord_agent_leave_requested(const pst_coord_agent *a) {
    return a && atomic_load(&((pst_coord_agent *)a)->leave);
}
int pst_coord_agent_job_finished(const pst_coord_agent *a) {
    return a && atomic_load(&((pst_coord_agent *)a)->job_finished);
}
int pst_coord_agent_members(pst_coord_agent *a, char *buf, size_t len) {
    pthread_mutex_lock(&a->mu);
    snprintf(buf, len, "%s", a->members);
    int n = a->workers;
    pthread_mutex_unlock(&a->mu);
    return n;
}
int64_t pst_coord_agent_epoch(const pst_coord_agent *a) {
    return atomic_load(&((pst_coord_agent *)a)->epoch);
}
int pst_coord_agent_missed(const pst_coord_agent *a) {
    return atomic_load(&((pst_coord_agent *)a)->missed);
}

void pst_coord_agent_leave(pst_coord_agent *a, int failed, const char *reason) {
    pst_status st = {0};
    /* A last heartbeat first, so the launcher's view ends with this task's final progress. */
    if (a->o.progress) {
        pst_coord_progress p = {0};
        const char *state = "running";
        a->o.progress(a->o.ctx, &p, &state);
        pst_coord_reply r;
        pst_coord_heartbeat(a->client, &a->id, &p, failed ? "failed" : "done", &r, &st);
        pst_status_clear(&st);
    }
    pst_coord_leave(a->client, &a->id, failed, reason, &st);
}

int pst_coord_agent_die_with_launcher(pst_status *st) {
    const char *e = getenv("PST_LAUNCHER_PID");
    if (!e || !e[0]) return 0;
    char *end;
    long pid = strtol(e, &end, 10);
    if (*end || pid <= 1)
        return pst_status_set(st, PST_E_INVALID, "PST_LAUNCHER_PID: '%s' is not a process id", e);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        return pst_status_set(st, PST_E_INTERNAL, "prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
    /* The launcher may have died between our start and the prctl: then we were re-parented. */
    if ((long)getppid() != pid)
        return pst_status_set(st, PST_E_ABORTED, "the launcher (pid %ld) is gone", pid);
    return 0;
}

static void *stdin_watch(void *arg) {
    (void)arg;
    char b[256];
    for (;;) {
        ssize_t r = read(0, b, sizeof b);
        if (r > 0 || (r < 0 && errno == EINTR)) continue;
        break; /* EOF or error: the launcher's end is gone */
    }
    pst_log_msg(PST_LOG_WARN, "the launcher's connection closed: stopping");
    kill(getpid(), SIGTERM);
    struct timespec ts = {10, 0};
    nanosleep(&ts, NULL);
    kill(getpid(), SIGKILL);
    return NULL;
}

int pst_coord_agent_token_from_stdin(char *buf, size_t len, pst_status *st) {
    size_t n = 0;
    while (n + 1 < len) {
        char c;
        ssize_t r = read(0, &c, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (c == '\n') {
            buf[n] = '\0';
            pthread_t th;
            if (pthread_create(&th, NULL, stdin_watch, NULL) != 0)
                return pst_status_set(st, PST_E_EXHAUSTED, "cannot start the stdin watcher");
            pthread_detach(th);
            return 0;
        }
        buf[n++] = c;
    }
    memset(buf, 0, len);
    return pst_status_set(st, PST_E_UNAUTHENTICATED,
                          "--token-stdin: no job token line on standard input");
}
