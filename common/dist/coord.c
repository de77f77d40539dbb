/* coord: the job's coordination service and its client (see coord.h). */
#include "coord.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "pstrain_coord.pb-c.h"
#include "transport.h"

enum { M_REGISTER, M_CLUSTER, M_HEARTBEAT, M_LEAVE, M_JOIN, M_COUNT };
static const char *const coord_methods[M_COUNT] = {
    "/pstrain.Coord/Register", "/pstrain.Coord/Cluster", "/pstrain.Coord/Heartbeat",
    "/pstrain.Coord/Leave", "/pstrain.Coord/Join"};

#define CALL_MS 5000 /* every coordination call is small: a short deadline */

const char *pst_member_state_name(pst_member_state s) {
    static const char *names[PST_MEMBER_STATE_COUNT] = {"waiting", "running", "silent", "done",
                                                        "failed"};
    return s >= 0 && s < PST_MEMBER_STATE_COUNT ? names[s] : "?";
}

typedef struct slot {
    pst_coord_member m; /* m.vacant: not part of the job (scaled away, dropped, never used) */
    double last_hb;     /* clock, or 0 */
    double reserved_at; /* clock when Join or the launcher reserved it, or 0 */
} slot;

typedef struct cjob {
    char name[32];
    int n;
    slot *slots;
} cjob;

struct pst_coord {
    pst_transport *tr;
    pthread_mutex_t mu;
    cjob jobs[PST_COORD_MAX_JOBS];
    int n_jobs;
    int64_t epoch;
    int stop;
    int formed;     /* every expected task registered once: later, empty worker slots are not
                       waited for (they get a placeholder address in the cluster) */
    char *job_json; /* handed to joiners */
    double start;
    int64_t hb_timeout_ms;
    char job_id[64];
    char address[160];
};

static cjob *find_job(pst_coord *co, const char *name) {
    for (int j = 0; j < co->n_jobs; j++)
        if (strcmp(co->jobs[j].name, name) == 0) return &co->jobs[j];
    return NULL;
}

static int resize_job(cjob *j, int n) {
    if (n > j->n) {
        slot *s = realloc(j->slots, (size_t)n * sizeof *s);
        if (!s) return PST_E_EXHAUSTED;
        memset(s + j->n, 0, (size_t)(n - j->n) * sizeof *s);
        for (int i = j->n; i < n; i++) {
            snprintf(s[i].m.job, sizeof s[i].m.job, "%s", j->name);
            s[i].m.index = i;
            s[i].m.joined_s = s[i].m.last_heartbeat_s = -1;
        }
        j->slots = s;
    }
    j->n = n;
    return 0;
}

static int all_registered(const pst_coord *co, const char **missing_job, int *missing_index,
                          int *waiting) {
    int w = 0;
    *missing_job = NULL;
    for (int j = 0; j < co->n_jobs; j++)
        for (int i = 0; i < co->jobs[j].n; i++)
            if (co->jobs[j].slots[i].m.address[0] == '\0' && !co->jobs[j].slots[i].m.vacant &&
                !(co->formed && strcmp(co->jobs[j].name, "worker") == 0)) {
                if (!*missing_job) {
                    *missing_job = co->jobs[j].name;
                    *missing_index = i;
                }
                w++;
            }
    if (waiting) *waiting = w;
    if (w == 0) ((pst_coord *)co)->formed = 1;
    return w == 0;
}

/* The spec of the registered addresses; NULL while a slot is empty. mu held. */
static char *cluster_json_locked(pst_coord *co) {
    const char *mj;
    int mi;
    if (!all_registered(co, &mj, &mi, NULL)) return NULL;
    size_t cap = 64;
    for (int j = 0; j < co->n_jobs; j++) cap += 40 + (size_t)co->jobs[j].n * 140;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t off = (size_t)snprintf(s, cap, "{");
    for (int j = 0; j < co->n_jobs; j++) {
        if (co->jobs[j].n == 0) continue;
        off += (size_t)snprintf(s + off, cap - off, "%s\"%s\": [", off > 1 ? ", " : "",
                                co->jobs[j].name);
        for (int i = 0; i < co->jobs[j].n; i++) {
            /* A slot without a task (vacant, or reserved and not registered yet): an address
             * nobody serves on, so the spec keeps every index. */
            const slot *sl = &co->jobs[j].slots[i];
            int none = sl->m.vacant || sl->m.address[0] == '\0';
            off += (size_t)snprintf(s + off, cap - off, "%s\"%s\"", i ? ", " : "",
                                    none ? "127.0.0.1:0" : sl->m.address);
        }
        off += (size_t)snprintf(s + off, cap - off, "]");
    }
    snprintf(s + off, cap - off, "}");
    return s;
}

static slot *find_slot(pst_coord *co, const Pstrain__MemberId *id, pst_status *st) {
    if (!id || !id->job)
        return pst_status_set(st, PST_E_INVALID, "coordination: request without a member id"),
               (slot *)NULL;
    cjob *j = find_job(co, id->job);
    if (!j || id->index < 0 || id->index >= j->n) {
        pst_status_set(st, PST_E_NOT_FOUND, "coordination: /job:%s/task:%d is not a member of "
                       "this job", id->job, id->index);
        return NULL;
    }
    return &j->slots[id->index];
}

static void reply_msg(pst_coord *co, pst_server_call *call, const ProtobufCMessage *m) {
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        pst_status st = {0};
        pst_status_set(&st, PST_E_EXHAUSTED, "coordination: out of memory");
        pst_transport_reply(co->tr, call, &st, NULL);
        return;
    }
    protobuf_c_message_pack(m, buf);
    pst_msg out = pst_msg_of(buf, n);
    out.release = free;
    out.owner = buf;
    pst_transport_reply(co->tr, call, NULL, &out);
}

static void copy_str(char *dst, size_t len, const char *src) {
    snprintf(dst, len, "%s", src ? src : "");
}

/* Whether a slot's task is alive as far as heartbeats tell. mu held. */
static int slot_running(const pst_coord *co, const slot *s, double now) {
    return !s->m.vacant && s->m.state == PST_MEMBER_RUNNING &&
           (s->last_hb <= 0 || (now - s->last_hb) * 1000 <= (double)co->hb_timeout_ms);
}

/* The running worker members as "index:incarnation:joined_s,..." (caller frees; NULL when out
 * of memory), their count, and whether the job is over: the chief (worker 0) left cleanly and
 * no other worker is still running. mu held. */
static char *worker_members_locked(pst_coord *co, double now, int32_t *n, protobuf_c_boolean *over) {
    cjob *j = find_job(co, "worker");
    *n = 0;
    *over = 0;
    if (!j) return NULL;
    size_t cap = 16 + (size_t)j->n * 48, off = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[0] = '\0';
    int running = 0;
    for (int i = 0; i < j->n; i++) {
        const slot *sl = &j->slots[i];
        if (!slot_running(co, sl, now)) continue;
        running++;
        off += (size_t)snprintf(s + off, cap - off, "%s%d:%llx:%.1f", off ? "," : "", i,
                                (unsigned long long)sl->m.incarnation, sl->m.joined_s);
    }
    *n = running;
    *over = j->n > 0 && !j->slots[0].m.vacant && j->slots[0].m.state == PST_MEMBER_DONE &&
            running == 0;
    return s;
}

/* A worker slot for a new task: the lowest vacant one, else a new one at the end. It stays
 * empty until the task registers under its index. Returns the index, or -1 with st set. mu
 * held. */
static int reserve_locked(pst_coord *co, const char *job, double now, pst_status *st) {
    cjob *j = find_job(co, job);
    if (!j) {
        pst_status_set(st, PST_E_NOT_FOUND, "coordination: no job '%s' to join", job);
        return -1;
    }
    int index = -1;
    for (int i = 0; i < j->n && index < 0; i++) {
        const slot *sl = &j->slots[i];
        /* A reservation whose task never registered within 2 minutes is free again. */
        if (sl->m.vacant || (sl->reserved_at > 0 && sl->m.address[0] == '\0' &&
                             now - sl->reserved_at > 120))
            index = i;
    }
    if (index < 0) {
        if (resize_job(j, j->n + 1) < 0) {
            pst_status_set(st, PST_E_EXHAUSTED, "coordination: out of memory for a new slot");
            return -1;
        }
        index = j->n - 1;
    }
    slot *s = &j->slots[index];
    memset(&s->m, 0, sizeof s->m);
    snprintf(s->m.job, sizeof s->m.job, "%s", j->name);
    s->m.index = index;
    s->m.joined_s = s->m.last_heartbeat_s = -1;
    s->last_hb = 0;
    s->reserved_at = now;
    co->epoch++;
    return index;
}

static void handle(void *arg, pst_server_call *call, int method, const pst_iov *req, int nseg) {
    pst_coord *co = arg;
    pst_status st = {0};
    size_t len;
    uint8_t *buf = pst_iov_flatten(req, nseg, &len);
    if (len > (64u << 10)) { /* every coordination message is small */
        free(buf);
        pst_status_set(&st, PST_E_INVALID, "coordination: request of %zu bytes is too large", len);
        pst_transport_reply(co->tr, call, &st, NULL);
        return;
    }
    pthread_mutex_lock(&co->mu);
    double now = pst_clock_now();
    switch (method) {
    case M_REGISTER: {
        Pstrain__CoordRegisterRequest *r = pstrain__coord_register_request__unpack(NULL, len, buf);
        slot *s = r ? find_slot(co, r->id, &st) : NULL;
        if (!r && !st.code) pst_status_set(&st, PST_E_INVALID, "coordination: malformed Register");
        if (s && (!r->address || !r->address[0] || strlen(r->address) >= sizeof s->m.address))
            pst_status_set(&st, PST_E_INVALID, "coordination: Register from /job:%s/task:%d "
                           "without a usable address", r->id->job, r->id->index), s = NULL;
        if (s) {
            if (strcmp(s->m.address, r->address) != 0 || s->m.incarnation != r->id->incarnation ||
                s->m.vacant)
                co->epoch++;
            /* A restarted task takes its slot back even after the slot was dropped. */
            s->m.vacant = 0;
            s->m.leaving = 0;
            s->reserved_at = 0;
            copy_str(s->m.address, sizeof s->m.address, r->address);
            copy_str(s->m.host, sizeof s->m.host, r->host);
            s->m.incarnation = r->id->incarnation;
            s->m.pid = r->pid;
            s->m.state = PST_MEMBER_RUNNING;
            s->m.registrations++;
            s->m.joined_s = now - co->start;
            s->m.reason[0] = '\0';
            copy_str(s->m.state_text, sizeof s->m.state_text, "starting");
            s->last_hb = now;
            Pstrain__CoordRegisterResponse resp = PSTRAIN__COORD_REGISTER_RESPONSE__INIT;
            resp.epoch = co->epoch;
            resp.job_id = co->job_id;
            pthread_mutex_unlock(&co->mu);
            reply_msg(co, call, &resp.base);
            pthread_mutex_lock(&co->mu);
        }
        if (r) pstrain__coord_register_request__free_unpacked(r, NULL);
        break;
    }
    case M_CLUSTER: {
        Pstrain__CoordClusterRequest *r = pstrain__coord_cluster_request__unpack(NULL, len, buf);
        if (!r) {
            pst_status_set(&st, PST_E_INVALID, "coordination: malformed Cluster");
            break;
        }
        if (!find_slot(co, r->id, &st)) {
            pstrain__coord_cluster_request__free_unpacked(r, NULL);
            break;
        }
        pstrain__coord_cluster_request__free_unpacked(r, NULL);
        Pstrain__CoordClusterResponse resp = PSTRAIN__COORD_CLUSTER_RESPONSE__INIT;
        const char *mj;
        int mi = 0, waiting = 0;
        char missing[80] = "";
        resp.complete = all_registered(co, &mj, &mi, &waiting);
        if (mj) snprintf(missing, sizeof missing, "/job:%s/task:%d", mj, mi);
        resp.first_missing = missing;
        resp.waiting_for = waiting;
        resp.epoch = co->epoch;
        char *json = resp.complete ? cluster_json_locked(co) : NULL;
        resp.cluster_json = json ? json : "";
        pthread_mutex_unlock(&co->mu);
        reply_msg(co, call, &resp.base);
        pthread_mutex_lock(&co->mu);
        free(json);
        break;
    }
    case M_HEARTBEAT: {
        Pstrain__CoordHeartbeatRequest *r = pstrain__coord_heartbeat_request__unpack(NULL, len, buf);
        if (!r) {
            pst_status_set(&st, PST_E_INVALID, "coordination: malformed Heartbeat");
            break;
        }
        Pstrain__CoordHeartbeatResponse resp = PSTRAIN__COORD_HEARTBEAT_RESPONSE__INIT;
        pst_status ignore = {0};
        slot *s = find_slot(co, r->id, &ignore);
        resp.member = s != NULL;
        if (s && s->m.incarnation != r->id->incarnation) {
            resp.superseded = 1;
        } else if (s) {
            s->last_hb = now;
            s->m.last_heartbeat_s = now - co->start;
            if (s->m.state == PST_MEMBER_SILENT) s->m.state = PST_MEMBER_RUNNING;
            copy_str(s->m.state_text, sizeof s->m.state_text, r->state);
            resp.leave = s->m.leaving;
            if (r->progress) {
                const Pstrain__Progress *p = r->progress;
                s->m.global_step = p->global_step;
                s->m.total_steps = p->total_steps;
                s->m.local_steps = p->local_steps;
                s->m.loss = p->loss;
                s->m.examples_per_sec = p->examples_per_sec;
                if (p->last_checkpoint && p->last_checkpoint[0])
                    copy_str(s->m.last_checkpoint, sizeof s->m.last_checkpoint,
                             p->last_checkpoint);
            }
        }
        resp.epoch = co->epoch;
        resp.stop = co->stop;
        char *members = worker_members_locked(co, now, &resp.workers, &resp.job_finished);
        resp.members = members ? members : "";
        pstrain__coord_heartbeat_request__free_unpacked(r, NULL);
        pthread_mutex_unlock(&co->mu);
        reply_msg(co, call, &resp.base);
        pthread_mutex_lock(&co->mu);
        free(members);
        break;
    }
    case M_LEAVE: {
        Pstrain__CoordLeaveRequest *r = pstrain__coord_leave_request__unpack(NULL, len, buf);
        slot *s = r ? find_slot(co, r->id, &st) : NULL;
        if (!r && !st.code) pst_status_set(&st, PST_E_INVALID, "coordination: malformed Leave");
        if (s && s->m.incarnation == r->id->incarnation) {
            s->m.state = r->failed ? PST_MEMBER_FAILED : PST_MEMBER_DONE;
            copy_str(s->m.reason, sizeof s->m.reason, r->reason);
            copy_str(s->m.state_text, sizeof s->m.state_text, r->failed ? "failed" : "done");
        }
        if (r) pstrain__coord_leave_request__free_unpacked(r, NULL);
        if (!st.code) {
            Pstrain__CoordEmpty e = PSTRAIN__COORD_EMPTY__INIT;
            pthread_mutex_unlock(&co->mu);
            reply_msg(co, call, &e.base);
            pthread_mutex_lock(&co->mu);
        }
        break;
    }
    case M_JOIN: {
        Pstrain__CoordJoinRequest *r = pstrain__coord_join_request__unpack(NULL, len, buf);
        if (!r) {
            pst_status_set(&st, PST_E_INVALID, "coordination: malformed Join");
            break;
        }
        int index = reserve_locked(co, r->job && r->job[0] ? r->job : "worker", now, &st);
        if (index >= 0) {
            Pstrain__CoordJoinResponse resp = PSTRAIN__COORD_JOIN_RESPONSE__INIT;
            resp.index = index;
            resp.epoch = co->epoch;
            resp.job_id = co->job_id;
            char *json = strdup(co->job_json ? co->job_json : "");
            resp.job_json = json ? json : "";
            pthread_mutex_unlock(&co->mu);
            reply_msg(co, call, &resp.base);
            pthread_mutex_lock(&co->mu);
            free(json);
        }
        pstrain__coord_join_request__free_unpacked(r, NULL);
        break;
    }
    default:
        pst_status_set(&st, PST_E_UNIMPLEMENTED, "coordination: unknown method %d", method);
    }
    pthread_mutex_unlock(&co->mu);
    free(buf);
    if (st.code) pst_transport_reply(co->tr, call, &st, NULL);
}

pst_coord *pst_coord_new(const pst_coord_opts *o, pst_status *st) {
    if (o->n_jobs <= 0 || o->n_jobs > PST_COORD_MAX_JOBS) {
        pst_status_set(st, PST_E_INVALID, "coordination: %d jobs (1..%d allowed)", o->n_jobs,
                       PST_COORD_MAX_JOBS);
        return NULL;
    }
    pst_coord *co = calloc(1, sizeof *co);
    if (!co) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&co->mu, NULL);
    co->start = pst_clock_now();
    co->epoch = 1;
    co->hb_timeout_ms = o->heartbeat_timeout_ms > 0 ? o->heartbeat_timeout_ms : 10000;
    copy_str(co->job_id, sizeof co->job_id, o->job_id ? o->job_id : "job");
    for (int j = 0; j < o->n_jobs; j++) {
        cjob *cj = &co->jobs[co->n_jobs++];
        copy_str(cj->name, sizeof cj->name, o->jobs[j]);
        if (o->expected[j] < 0 || resize_job(cj, o->expected[j]) < 0) {
            pst_status_set(st, PST_E_INVALID, "coordination: job '%s' expects %d tasks", o->jobs[j],
                           o->expected[j]);
            pst_coord_free(co);
            return NULL;
        }
    }
    pst_transport_opts to = {.security = o->security};
    co->tr = pst_transport_grpc_new(coord_methods, M_COUNT, &to, st);
    if (!co->tr) {
        pst_coord_free(co);
        return NULL;
    }
    if (pst_transport_serve(co->tr, o->bind ? o->bind : "127.0.0.1:0", handle, co, co->address,
                            sizeof co->address, st) < 0) {
        pst_status_prefix(st, "coordination service: ");
        pst_coord_free(co);
        return NULL;
    }
    return co;
}

void pst_coord_free(pst_coord *co) {
    if (!co) return;
    free(co->job_json);
    if (co->tr) pst_transport_free(co->tr);
    for (int j = 0; j < co->n_jobs; j++) free(co->jobs[j].slots);
    pthread_mutex_destroy(&co->mu);
    free(co);
}

const char *pst_coord_address(const pst_coord *co) { return co->address; }

int pst_coord_snapshot(pst_coord *co, pst_coord_view *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&co->mu);
    double now = pst_clock_now();
    int n = 0;
    for (int j = 0; j < co->n_jobs; j++) n += co->jobs[j].n;
    out->members = calloc((size_t)(n ? n : 1), sizeof *out->members);
    if (!out->members) {
        pthread_mutex_unlock(&co->mu);
        return PST_E_EXHAUSTED;
    }
    for (int j = 0; j < co->n_jobs; j++)
        for (int i = 0; i < co->jobs[j].n; i++) {
            slot *s = &co->jobs[j].slots[i];
            if (s->m.state == PST_MEMBER_RUNNING && s->last_hb > 0 &&
                (now - s->last_hb) * 1000 > (double)co->hb_timeout_ms)
                s->m.state = PST_MEMBER_SILENT;
            out->members[out->n++] = s->m;
        }
    const char *mj;
    int mi;
    out->complete = all_registered(co, &mj, &mi, NULL);
    out->epoch = co->epoch;
    out->stop = co->stop;
    out->uptime_s = now - co->start;
    pthread_mutex_unlock(&co->mu);
    return 0;
}

void pst_coord_view_destroy(pst_coord_view *v) {
    free(v->members);
    memset(v, 0, sizeof *v);
}

char *pst_coord_cluster_json(pst_coord *co) {
    pthread_mutex_lock(&co->mu);
    char *s = cluster_json_locked(co);
    pthread_mutex_unlock(&co->mu);
    return s;
}

void pst_coord_request_stop(pst_coord *co) {
    pthread_mutex_lock(&co->mu);
    co->stop = 1;
    pthread_mutex_unlock(&co->mu);
}

void pst_coord_task_exited(pst_coord *co, const char *job, int index, uint64_t incarnation,
                           int failed, const char *reason) {
    pthread_mutex_lock(&co->mu);
    cjob *j = find_job(co, job);
    if (j && index >= 0 && index < j->n) {
        slot *s = &j->slots[index];
        if (incarnation == 0 || s->m.incarnation == incarnation) {
            if (failed || s->m.state != PST_MEMBER_DONE) {
                s->m.state = failed ? PST_MEMBER_FAILED : PST_MEMBER_DONE;
                copy_str(s->m.reason, sizeof s->m.reason, reason);
                copy_str(s->m.state_text, sizeof s->m.state_text, failed ? "failed" : "done");
            }
        }
    }
    pthread_mutex_unlock(&co->mu);
}

int pst_coord_set_job_json(pst_coord *co, const char *json, pst_status *st) {
    char *copy = strdup(json ? json : "");
    if (!copy) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    pthread_mutex_lock(&co->mu);
    free(co->job_json);
    co->job_json = copy;
    pthread_mutex_unlock(&co->mu);
    return 0;
}

int pst_coord_reserve(pst_coord *co, const char *job, pst_status *st) {
    pthread_mutex_lock(&co->mu);
    int index = reserve_locked(co, job, pst_clock_now(), st);
    pthread_mutex_unlock(&co->mu);
    return index < 0 ? st->code : index;
}

/* The slot of job/index, or NULL. mu held. */
static slot *slot_at(pst_coord *co, const char *job, int index) {
    cjob *j = find_job(co, job);
    return j && index >= 0 && index < j->n ? &j->slots[index] : NULL;
}

int pst_coord_request_leave(pst_coord *co, const char *job, int index) {
    pthread_mutex_lock(&co->mu);
    slot *s = slot_at(co, job, index);
    if (s && !s->m.vacant) s->m.leaving = 1;
    pthread_mutex_unlock(&co->mu);
    return s ? 0 : PST_E_NOT_FOUND;
}

void pst_coord_vacate(pst_coord *co, const char *job, int index) {
    pthread_mutex_lock(&co->mu);
    slot *s = slot_at(co, job, index);
    if (s && !s->m.vacant) {
        s->m.vacant = 1;
        s->m.leaving = 0;
        s->m.address[0] = '\0';
        s->reserved_at = 0;
        co->epoch++;
    }
    pthread_mutex_unlock(&co->mu);
}

int pst_coord_set_expected(pst_coord *co, const char *job, int n, pst_status *st) {
    pthread_mutex_lock(&co->mu);
    cjob *j = find_job(co, job);
    int rc = 0;
    if (!j)
        rc = pst_status_set(st, PST_E_NOT_FOUND, "coordination: no job '%s'", job);
    else if (n < 0 || resize_job(j, n) < 0)
        rc = pst_status_set(st, PST_E_INVALID, "coordination: job '%s' cannot expect %d tasks",
                            job, n);
    else
        co->epoch++;
    pthread_mutex_unlock(&co->mu);
    return rc;
}

/* ---- client ---- */

struct pst_coord_client {
    pst_transport *tr;
    char addr[160];
};

pst_coord_client *pst_coord_client_new(const char *addr, const struct pst_security *security,
                                       pst_status *st) {
    pst_coord_client *c = calloc(1, sizeof *c);
    if (!c) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        return NULL;
    }
    copy_str(c->addr, sizeof c->addr, addr);
    pst_transport_opts to = {.security = security};
    c->tr = pst_transport_grpc_new(coord_methods, M_COUNT, &to, st);
    if (!c->tr) {
        free(c);
        return NULL;
    }
    return c;
}

void pst_coord_client_free(pst_coord_client *c) {
    if (!c) return;
    pst_transport_free(c->tr);
    free(c);
}

static void fill_id(Pstrain__MemberId *m, const pst_coord_id *id) {
    m->job = (char *)id->job;
    m->index = id->index;
    m->incarnation = id->incarnation;
}

/* Packs m, calls method, returns the response bytes (caller frees). */
static int call(pst_coord_client *c, int method, const ProtobufCMessage *m, int64_t timeout_ms,
                int flags, uint8_t **resp, size_t *len, pst_status *st) {
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    protobuf_c_message_pack(m, buf);
    pst_msg req = pst_msg_of(buf, n);
    int rc = pst_transport_call_sync(c->tr, c->addr, method, &req, timeout_ms, flags, resp, len, st);
    free(buf);
    if (rc < 0) pst_status_prefix(st, "coordination service %s: ", c->addr);
    return rc;
}

int pst_coord_register(pst_coord_client *c, const pst_coord_id *id, const char *address,
                       int64_t timeout_ms, int64_t *epoch, pst_status *st) {
    Pstrain__MemberId mid = PSTRAIN__MEMBER_ID__INIT;
    fill_id(&mid, id);
    Pstrain__CoordRegisterRequest r = PSTRAIN__COORD_REGISTER_REQUEST__INIT;
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    r.id = &mid;
    r.address = (char *)address;
    r.pid = getpid();
    r.host = host;
    uint8_t *resp = NULL;
    size_t len = 0;
    int rc = call(c, M_REGISTER, &r.base, timeout_ms > 0 ? timeout_ms : CALL_MS,
                  PST_CALL_WAIT_FOR_READY, &resp, &len, st);
    if (rc < 0) return rc;
    Pstrain__CoordRegisterResponse *p = pstrain__coord_register_response__unpack(NULL, len, resp);
    free(resp);
    if (!p) return pst_status_set(st, PST_E_INVALID, "coordination service %s: malformed reply",
                                  c->addr);
    if (epoch) *epoch = p->epoch;
    pstrain__coord_register_response__free_unpacked(p, NULL);
    return 0;
}

int pst_coord_wait_cluster(pst_coord_client *c, const pst_coord_id *id, int64_t timeout_ms,
                           char **cluster_json, int64_t *epoch, pst_status *st) {
    *cluster_json = NULL;
    double deadline = pst_clock_now() + (double)(timeout_ms > 0 ? timeout_ms : 600000) / 1000.0;
    Pstrain__MemberId mid = PSTRAIN__MEMBER_ID__INIT;
    fill_id(&mid, id);
    Pstrain__CoordClusterRequest r = PSTRAIN__COORD_CLUSTER_REQUEST__INIT;
    r.id = &mid;
    char missing[80] = "";
    int waiting = 0;
    for (int delay_ms = 20;; delay_ms = delay_ms < 200 ? delay_ms * 2 : 200) {
        uint8_t *resp = NULL;
        size_t len = 0;
        int rc = call(c, M_CLUSTER, &r.base, CALL_MS, PST_CALL_WAIT_FOR_READY, &resp, &len, st);
        if (rc < 0) return rc;
        Pstrain__CoordClusterResponse *p = pstrain__coord_cluster_response__unpack(NULL, len, resp);
        free(resp);
        if (!p) return pst_status_set(st, PST_E_INVALID, "coordination service %s: malformed "
                                      "reply", c->addr);
        if (p->complete && p->cluster_json && p->cluster_json[0]) {
            *cluster_json = strdup(p->cluster_json);
            if (epoch) *epoch = p->epoch;
            pstrain__coord_cluster_response__free_unpacked(p, NULL);
            return *cluster_json ? 0 : pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        }
        copy_str(missing, sizeof missing, p->first_missing);
        waiting = p->waiting_for;
        pstrain__coord_cluster_response__free_unpacked(p, NULL);
        if (pst_clock_now() > deadline)
            return pst_status_set(st, PST_E_DEADLINE, "coordination service %s: after %lld ms "
                                  "still waiting for %d task(s) to register, first %s",
                                  c->addr, (long long)timeout_ms, waiting, missing);
        struct timespec ts = {0, (long)delay_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int pst_coord_join(pst_coord_client *c, const char *job, int64_t timeout_ms, int *index,
                   int64_t *epoch, char **job_json, pst_status *st) {
    *job_json = NULL;
    Pstrain__CoordJoinRequest r = PSTRAIN__COORD_JOIN_REQUEST__INIT;
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    r.job = (char *)job;
    r.pid = getpid();
    r.host = host;
    uint8_t *resp = NULL;
    size_t len = 0;
    int rc = call(c, M_JOIN, &r.base, timeout_ms > 0 ? timeout_ms : CALL_MS,
                  PST_CALL_WAIT_FOR_READY, &resp, &len, st);
    if (rc < 0) return rc;
    Pstrain__CoordJoinResponse *p = pstrain__coord_join_response__unpack(NULL, len, resp);
    free(resp);
    if (!p) return pst_status_set(st, PST_E_INVALID, "coordination service %s: malformed reply",
                                  c->addr);
    *index = p->index;
    if (epoch) *epoch = p->epoch;
    *job_json = strdup(p->job_json ? p->job_json : "");
    pstrain__coord_join_response__free_unpacked(p, NULL);
    return *job_json ? 0 : pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
}

int pst_coord_heartbeat(pst_coord_client *c, const pst_coord_id *id, const pst_coord_progress *p,
                        const char *state, pst_coord_reply *out, pst_status *st) {
    Pstrain__MemberId mid = PSTRAIN__MEMBER_ID__INIT;
    fill_id(&mid, id);
    Pstrain__Progress pr = PSTRAIN__PROGRESS__INIT;
    if (p) {
        pr.global_step = p->global_step;
        pr.total_steps = p->total_steps;
        pr.local_steps = p->local_steps;
        pr.loss = p->loss;
        pr.examples_per_sec = p->examples_per_sec;
        pr.last_checkpoint = (char *)(p->last_checkpoint ? p->last_checkpoint : "");
    }
    Pstrain__CoordHeartbeatRequest r = PSTRAIN__COORD_HEARTBEAT_REQUEST__INIT;
    r.id = &mid;
    r.progress = &pr;
    r.state = (char *)(state ? state : "");
    uint8_t *resp = NULL;
    size_t len = 0;
    int rc = call(c, M_HEARTBEAT, &r.base, CALL_MS, 0, &resp, &len, st);
    if (rc < 0) return rc;
    Pstrain__CoordHeartbeatResponse *h = pstrain__coord_heartbeat_response__unpack(NULL, len, resp);
    free(resp);
    if (!h) return pst_status_set(st, PST_E_INVALID, "coordination service %s: malformed reply",
                                  c->addr);
    if (out) {
        *out = (pst_coord_reply){.epoch = h->epoch, .stop = h->stop, .superseded = h->superseded,
                                 .member = h->member, .leave = h->leave,
                                 .job_finished = h->job_finished, .workers = h->workers};
        snprintf(out->members, sizeof out->members, "%s", h->members ? h->members : "");
    }
    pstrain__coord_heartbeat_response__free_unpacked(h, NULL);
    return 0;
}

int pst_coord_leave(pst_coord_client *c, const pst_coord_id *id, int failed, const char *reason,
                    pst_status *st) {
    Pstrain__MemberId mid = PSTRAIN__MEMBER_ID__INIT;
    fill_id(&mid, id);
    Pstrain__CoordLeaveRequest r = PSTRAIN__COORD_LEAVE_REQUEST__INIT;
    r.id = &mid;
    r.failed = failed;
    r.reason = (char *)(reason ? reason : "");
    uint8_t *resp = NULL;
    size_t len = 0;
    int rc = call(c, M_LEAVE, &r.base, CALL_MS, 0, &resp, &len, st);
    free(resp);
    return rc;
}

uint64_t pst_coord_new_incarnation(void) {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) r = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r ^= ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40);
    return r ? r : 1;
}
