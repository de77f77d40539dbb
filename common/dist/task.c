/* task: the task object and its service — request handlers, the RunGraph pool, the heartbeat
 * monitor and the shutdown accounting (see task.h). */
#include "task.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "chunk.h"
#include "clock.h"
#include "coord.h"
#include "device.h"
#include "dist_ops.h"
#include "file.h"
#include "log.h"
#include "metagraph.h"
#include "op.h"
#include "ops_accum.h"
#include "ps_sync.h"
#include "pstrain_task.pb-c.h"
#include "saver.h"
#include "security.h"
#include "strmap.h"
#include "task_client.h"
#include "task_wire.h"
#include "transport_mpi.h"
#include "workpool.h"

const char *const pst_task_methods[PST_TASK_METHOD_COUNT] = {
    "/pstrain.Task/RegisterGraph", "/pstrain.Task/DeregisterGraph", "/pstrain.Task/RunGraph",
    "/pstrain.Task/PushTensor",    "/pstrain.Task/FetchVariable",   "/pstrain.Task/Save",
    "/pstrain.Task/Restore",       "/pstrain.Task/Status",          "/pstrain.Task/Shutdown",
};

/* A registered partition. Graphs and sessions stay until the task ends: the variable nodes of
 * a graph describe the store (save, restore, status) after a deregistration too. */
typedef struct part {
    char handle[32];
    char client[PST_DEVICE_MAX];
    pst_graph *g;
    pst_session *s;
    pst_node **targets;
    int n_targets;
    int64_t steps;
    int active;
    int running;         /* RunGraph steps of it in flight */
    int64_t const_bytes; /* what its constants claimed (counted against max_graph_bytes) */
} part;

/* A tensor arriving in chunks. */
typedef struct partial {
    pst_tensor *t;
    uint64_t id;            /* which partial this is (a key may come again after expiry) */
    uint64_t received;      /* bytes copied in */
    uint64_t (*ranges)[2];  /* [lo, hi) claimed by chunks, sorted, disjoint */
    int n_ranges, cap_ranges;
    double started;         /* when its first chunk came (partials expire) */
    char from[128];         /* the sender of its first chunk */
} partial;

static void partial_free(partial *pa) {
    if (!pa) return;
    pst_tensor_unref(pa->t);
    free(pa->ranges);
    free(pa);
}

typedef struct route_rdv {
    pst_rendezvous base;
    struct pst_task *task;
} route_rdv;

struct pst_task {
    pst_task_opts o;
    char device[PST_DEVICE_MAX];
    pst_device_name dn;
    char addr[256];
    int port;
    pst_transport *tr;
    pst_var_store *vars;
    pst_rendezvous *local;
    route_rdv route;
    pst_workpool *pool; /* runs RunGraph steps */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    part *parts;
    int n_parts, cap_parts;
    pst_strmap *var_nodes; /* variable name -> its node in var_graph */
    pst_graph *var_graph;  /* a copy of each variable node registered partitions described
                              (dtype, shape, slice drive save and restore), so a partition's
                              own graph can go when it is deregistered */
    pst_strmap *partials;  /* key -> partial */
    pst_strmap *pulls;     /* tensor name -> count of sends to other tasks */
    pst_strmap *pushes;    /* step id -> pst_call_group of the step's pushes in flight */
    pst_strmap *peers;     /* "job/task" -> address (malloc'd) a registering task serves on */
    int64_t chunks_received, bytes_received, bytes_sent;
    int64_t pending_bytes;   /* sizes of the tensors in `partials` */
    int64_t graph_bytes;     /* constant tensor bytes of the active partitions */
    uint64_t next_partial;   /* partial ids */
    int64_t pushes_refused;  /* pushes refused (overlap, budget, unknown variable, numerics) */
    int64_t partials_expired;
    int64_t member_epoch;  /* the job's membership as the coordination service last said */
    char members[1024];
    char **done_from;
    int n_done;
    int shutdown;         /* the job said this task is done */
    int freeing;          /* pst_task_free has begun: no more steps run */
    pst_status shutdown_why;
    pst_strmap *last_seen; /* client device -> (double *) when it last answered */
    pthread_t monitor;
    int monitor_started;
    double start;
    atomic_llong next_step;
};

const char *pst_task_device(const pst_task *t) { return t->device; }
const char *pst_task_address(const pst_task *t) { return t->addr; }
int pst_task_port(const pst_task *t) { return t->port; }
const pst_cluster *pst_task_cluster(const pst_task *t) { return t->o.cluster; }

int pst_task_set_cluster(pst_task *t, const pst_cluster *c, pst_status *st) {
    if (pst_cluster_check_task(c, t->o.job, t->o.index, st) < 0) return st->code;
    if (t->o.security && pst_security_check_cluster(t->o.security, c, st) < 0) return st->code;
    pthread_mutex_lock(&t->mu);
    t->o.cluster = c;
    pthread_mutex_unlock(&t->mu);
    return 0;
}
const pst_task_opts *pst_task_options(const pst_task *t) { return &t->o; }
pst_var_store *pst_task_vars(pst_task *t) { return t->vars; }
pst_rendezvous *pst_task_rendezvous(pst_task *t) { return &t->route.base; }
pst_transport *pst_task_transport(pst_task *t) { return t->tr; }

#define logf_(t, ...) \
    do { \
        if (!(t)->o.quiet) pst_log_msg_as((t)->device, PST_LOG_INFO, __VA_ARGS__); \
    } while (0)

/* ---- peers ---- */

/* The port of "host:port" (-1 when there is none); an MPI rank ("mpi:R") counts as a port
 * that is known (R + 1). */
static int port_of(const char *addr) {
    const char *colon = strrchr(addr, ':');
    if (strncmp(addr, "mpi:", 4) == 0) return atoi(addr + 4) + 1;
    return colon ? atoi(colon + 1) : -1;
}

/* The key of a device's task in t->peers: "job/task". */
static int peer_key(const char *device, pst_device_name *d, char *key, size_t len) {
    pst_status ignore = {0};
    if (!device || pst_device_parse(device, d, &ignore) < 0 || !d->job[0] || d->replica > 0)
        return -1;
    if (d->task < 0) d->task = 0;
    snprintf(key, len, "%s/%d", d->job, d->task);
    return 0;
}

int pst_task_peer_address(pst_task *t, const char *device, char *out, size_t len,
                          pst_status *st) {
    pst_device_name d;
    char key[PST_DEVICE_NAME_MAX + 16];
    if (peer_key(device, &d, key, sizeof key) < 0)
        return pst_status_set(st, PST_E_NOT_FOUND, "no task in the cluster for device '%s'",
                              device ? device : "(null)");
    const char *a = NULL;
    pthread_mutex_lock(&t->mu);
    if (pst_device_same_task(&d, &t->dn)) {
        a = t->addr;
    } else {
        a = pst_strmap_get(t->peers, key);
        if (!a) a = pst_cluster_address(t->o.cluster, d.job, d.task);
    }
    int rc = 0;
    if (!a) {
        rc = pst_status_set(st, PST_E_NOT_FOUND, "no task in the cluster for device '%s'",
                            device);
    } else if (port_of(a) == 0) {
        rc = pst_status_set(st, PST_E_UNAVAILABLE, "the cluster gives %s for %s (port 0: a port "
                            "picked when it starts) and no partition registered on %s said "
                            "where it serves", a, device, t->device);
    } else if ((size_t)snprintf(out, len, "%s", a) >= len) {
        rc = pst_status_set(st, PST_E_INVALID, "the address of %s is longer than %zu bytes",
                            device, len);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

/* Remembers where the task of `device` serves (a client told us registering a partition). */
static int learn_peer(pst_task *t, const char *device, const char *addr, pst_status *st) {
    pst_device_name d;
    char key[PST_DEVICE_NAME_MAX + 16];
    if (!addr[0] || port_of(addr) <= 0 || peer_key(device, &d, key, sizeof key) < 0 ||
        pst_device_same_task(&d, &t->dn))
        return 0;
    char *copy = strdup(addr);
    pthread_mutex_lock(&t->mu);
    char *old = pst_strmap_get(t->peers, key);
    int rc = 0;
    if (!copy || pst_strmap_put(t->peers, key, copy) < 0) {
        free(copy);
        rc = pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory for the address of %s",
                            t->device, device);
    } else {
        free(old);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

/* ---- the routing rendezvous ---- */

static int same_task(pst_task *t, const char *device) {
    pst_device_name d;
    pst_status ignore = {0};
    if (pst_device_parse(device, &d, &ignore) < 0) return 0;
    return pst_device_same_task(&d, &t->dn);
}

/* Whether two device strings name the same task. */
static int same_device(const char *a, const char *b) {
    pst_device_name da, db;
    pst_status ignore = {0};
    return pst_device_parse(a, &da, &ignore) == 0 && pst_device_parse(b, &db, &ignore) == 0 &&
           pst_device_same_task(&da, &db);
}

/* The i-th ';'-separated field of a rendezvous key. */
static void key_field(const char *key, int i, char *out, size_t len) {
    const char *p = key;
    for (int k = 0; k < i && p; k++) {
        p = strchr(p, ';');
        if (p) p++;
    }
    if (!p) {
        out[0] = 0;
        return;
    }
    const char *e = strchr(p, ';');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    snprintf(out, len, "%.*s", (int)n, p);
}

/* A _Send to another task does not wait: its chunks travel while the step goes on, and the
 * step's end (pst_task_flush_step) waits for all of them. */
static int route_send(pst_rendezvous *r, const char *key, pst_tensor *v, pst_status *st) {
    pst_task *t = ((route_rdv *)r)->task;
    char recv_dev[PST_DEVICE_MAX], step[32], addr[256];
    key_field(key, 1, recv_dev, sizeof recv_dev);
    if (same_task(t, recv_dev)) return pst_rendezvous_send(t->local, key, v, st);
    if (pst_task_peer_address(t, recv_dev, addr, sizeof addr, st) < 0) return st->code;
    key_field(key, 3, step, sizeof step);
    pthread_mutex_lock(&t->mu);
    pst_call_group *g = pst_strmap_get(t->pushes, step);
    if (!g && (g = pst_call_group_new()) && pst_strmap_put(t->pushes, step, g) < 0) {
        pst_call_group_free(g);
        g = NULL;
    }
    pthread_mutex_unlock(&t->mu);
    if (!g)
        return pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory sending '%s'", t->device,
                              key);
    int64_t sent = pst_task_client_push_async(t, g, addr, key, v, 0, st);
    if (sent < 0) return (int)sent;
    char name[1024];
    key_field(key, 2, name, sizeof name);
    pthread_mutex_lock(&t->mu);
    t->bytes_sent += sent;
    intptr_t n = (intptr_t)pst_strmap_get(t->pulls, name);
    pst_strmap_put(t->pulls, name, (void *)(n + 1)); /* a count; losing one to OOM is harmless */
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static int route_recv(pst_rendezvous *r, const char *key, int64_t timeout_ms, pst_tensor **out,
                      pst_status *st) {
    pst_task *t = ((route_rdv *)r)->task;
    if (timeout_ms < t->o.recv_timeout_ms) timeout_ms = t->o.recv_timeout_ms;
    return pst_rendezvous_recv(t->local, key, timeout_ms, out, st);
}

static void route_abort(pst_rendezvous *r, const pst_status *why) {
    pst_task *t = ((route_rdv *)r)->task;
    pst_rendezvous_abort(t->local, why);
}

static void route_free(pst_rendezvous *r) { (void)r; }

static const pst_rendezvous_ops route_ops = {
    .send = route_send, .recv = route_recv, .abort = route_abort, .free = route_free};

int pst_task_flush_step(pst_task *t, int64_t step_id, pst_status *st) {
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)step_id);
    pthread_mutex_lock(&t->mu);
    pst_call_group *g = pst_strmap_del(t->pushes, step);
    pthread_mutex_unlock(&t->mu);
    if (!g) return 0;
    int rc = pst_call_group_wait(g, st);
    pst_call_group_free(g);
    return rc;
}

int64_t pst_task_new_step_id(pst_task *t) { return atomic_fetch_add(&t->next_step, 1); }

void pst_task_abort_steps(pst_task *t, const pst_status *why) {
    pst_rendezvous_abort(t->local, why);
}

void pst_task_resume_steps(pst_task *t) {
    pthread_mutex_lock(&t->mu);
    if (!t->shutdown) pst_rendezvous_local_resume(t->local);
    pthread_mutex_unlock(&t->mu);
}

void pst_task_note_sent(pst_task *t, int64_t bytes) {
    pthread_mutex_lock(&t->mu);
    t->bytes_sent += bytes;
    pthread_mutex_unlock(&t->mu);
}

/* ---- server handlers ---- */

static void reply_error(pst_task *t, pst_server_call *call, const pst_status *st) {
    pst_transport_reply(t->tr, call, st, NULL);
}

/* Answers with a packed message, or with the error when it cannot be packed. */
static void reply_message(pst_task *t, pst_server_call *call, const ProtobufCMessage *msg) {
    pst_status st = {0};
    pst_msg m;
    if (pst_task_wire_pack(msg, &m, &st) < 0) {
        pst_status_prefix(&st, "%s: ", t->device);
        reply_error(t, call, &st);
        return;
    }
    pst_transport_reply(t->tr, call, NULL, &m);
}

static void reply_oom(pst_task *t, pst_server_call *call, const char *what) {
    pst_status st = {0};
    pst_status_set(&st, PST_E_EXHAUSTED, "%s: out of memory %s", t->device, what);
    reply_error(t, call, &st);
}

/* Declares `req` unpacked from buf, or answers the call with an error and returns. */
#define UNPACK_OR_REPLY(Type, type, method, req)                                               \
    Pstrain__##Type *req = pstrain__##type##__unpack(NULL, len, buf);                         \
    if (!req) {                                                                                \
        pst_status_set(&st, PST_E_INVALID, "%s: malformed %s request", t->device, method);    \
        reply_error(t, call, &st);                                                             \
        return;                                                                                \
    }

/* A copy of a registered variable node in t->var_graph (with t->mu held); NULL on error. */
static pst_node *copy_var_node(pst_task *t, const pst_node *n) {
    pst_node_builder *b = pst_nb_new(t->var_graph, n->op->name, NULL);
    pst_nb_exact_name(b, n->name);
    if (n->requested_device && n->requested_device[0]) pst_nb_device(b, n->requested_device);
    for (int i = 0; i < n->n_attrs; i++) pst_nb_attr(b, &n->attrs[i]);
    pst_node *copy = pst_nb_finish(b);
    if (!copy)
        pst_log_msg_as(t->device, PST_LOG_ERROR, "cannot record variable %s: %s", n->name,
                       pst_graph_status(t->var_graph)->msg);
    return copy;
}

/* Frees what a partition holds once it is deregistered and no step of it runs (t->mu held). */
static void release_part(pst_task *t, part *p) {
    if (!p->g) return;
    pst_session_free(p->s);
    pst_graph_free(p->g);
    free(p->targets);
    p->s = NULL;
    p->g = NULL;
    p->targets = NULL;
    t->graph_bytes -= p->const_bytes;
    p->const_bytes = 0;
}

static part *find_part(pst_task *t, const char *handle) {
    for (int i = 0; i < t->n_parts; i++)
        if (t->parts[i].active && strcmp(t->parts[i].handle, handle) == 0) return &t->parts[i];
    return NULL;
}

/* The partition with that handle, deregistered or not. */
static part *find_part_any(pst_task *t, const char *handle) {
    for (int i = 0; i < t->n_parts; i++)
        if (strcmp(t->parts[i].handle, handle) == 0) return &t->parts[i];
    return NULL;
}

/* Builds the session of a registered graph and finds its targets. */
static int prepare_part(pst_task *t, const Pstrain__RegisterGraphRequest *req, pst_graph **gp,
                        pst_node ***targetsp, pst_session **sp, pst_status *st) {
    pst_graph *g = *gp = pst_graph_new();
    pst_node **targets = *targetsp = calloc(req->n_targets + 1, sizeof *targets);
    if (!g || !targets)
        return pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory for a partition of %s",
                              t->device, req->client);
    if (pst_graph_def_import(g, req->graph_def.data, req->graph_def.len, NULL, st) < 0)
        return st->code;
    for (size_t i = 0; i < req->n_targets; i++) {
        targets[i] = pst_graph_find(g, req->targets[i]);
        if (!targets[i])
            return pst_status_set(st, PST_E_NOT_FOUND, "RegisterGraph from %s: no node '%s'",
                                  req->client, req->targets[i]);
    }
    /* A peer's graph touches files as the peer's Save and Restore requests may. */
    pst_session_opts so = {.vars = t->vars, .exec = &t->route.base, .files_confined = 1,
                           .file_root = t->o.checkpoint_dir};
    *sp = pst_session_new(g, &so, st);
    return *sp ? 0 : st->code;
}

static void handle_register(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    UNPACK_OR_REPLY(RegisterGraphRequest, register_graph_request, "RegisterGraph", req);
    pst_graph *g = NULL;
    pst_node **targets = NULL;
    pst_session *s = NULL;
    char handle[32] = "";
    int n_nodes = 0;
    /* what its constants will cost, checked before anything is built */
    int64_t claimed = pst_graph_def_constant_bytes(req->graph_def.data, req->graph_def.len);
    int64_t reserved = 0;
    pthread_mutex_lock(&t->mu);
    if (claimed > t->o.max_graph_bytes - t->graph_bytes)
        pst_status_set(&st, PST_E_EXHAUSTED, "RegisterGraph from %.200s: its constants claim "
                       "%lld bytes; with the %lld registered already that passes %s's budget "
                       "of %lld MB (--max-graph-mb)", req->client, (long long)claimed,
                       (long long)t->graph_bytes, t->device,
                       (long long)(t->o.max_graph_bytes >> 20));
    else if (claimed > 0)
        t->graph_bytes += reserved = claimed; /* reserved while it is built */
    pthread_mutex_unlock(&t->mu);
    if (!st.code && prepare_part(t, req, &g, &targets, &s, &st) == 0)
        for (size_t i = 0; i < req->n_peers && !st.code; i++)
            learn_peer(t, req->peers[i]->device, req->peers[i]->address, &st);
    pthread_mutex_lock(&t->mu);
    if (!st.code && t->n_parts == t->cap_parts) {
        int cap = t->cap_parts ? t->cap_parts * 2 : 8;
        part *np = realloc(t->parts, (size_t)cap * sizeof *np);
        if (np) {
            t->parts = np;
            t->cap_parts = cap;
        } else {
            pst_status_set(&st, PST_E_EXHAUSTED, "%s: out of memory for partition %d", t->device,
                           t->n_parts + 1);
        }
    }
    if (!st.code) {
        part *p = &t->parts[t->n_parts];
        memset(p, 0, sizeof *p);
        snprintf(p->handle, sizeof p->handle, "g%d", t->n_parts + 1);
        snprintf(p->client, sizeof p->client, "%s", req->client);
        p->g = g;
        p->s = s;
        p->targets = targets;
        p->n_targets = (int)req->n_targets;
        p->const_bytes = reserved;
        reserved = 0; /* the partition's now */
        t->n_parts++;
        /* The graph is the task's from here on. Each variable's node (dtype, shape, slice)
         * drives save and restore; only when all are recorded does the partition run. */
        int ok = 1;
        for (int i = 0; i < pst_graph_num_nodes(g) && ok; i++) {
            pst_node *n = pst_graph_node(g, i);
            if ((n->op->flags & PST_OP_VARIABLE) && !pst_strmap_has(t->var_nodes, n->name)) {
                pst_node *copy = copy_var_node(t, n);
                ok = copy && pst_strmap_put(t->var_nodes, n->name, copy) == 0;
            }
        }
        if (ok) {
            p->active = 1;
            snprintf(handle, sizeof handle, "%s", p->handle);
            n_nodes = pst_graph_num_nodes(g);
        } else {
            pst_status_set(&st, PST_E_EXHAUSTED, "%s: out of memory recording the variables of "
                           "partition %s", t->device, p->handle);
        }
        g = NULL;
        s = NULL;
        targets = NULL;
    }
    t->graph_bytes -= reserved; /* not registered after all */
    pthread_mutex_unlock(&t->mu);
    if (s) pst_session_free(s);
    pst_graph_free(g);
    free(targets);
    if (st.code) {
        pstrain__register_graph_request__free_unpacked(req, NULL);
        reply_error(t, call, &st);
        return;
    }
    logf_(t, "registered partition %s from %s (%d nodes)", handle, req->client, n_nodes);
    pstrain__register_graph_request__free_unpacked(req, NULL);
    Pstrain__RegisterGraphResponse resp = PSTRAIN__REGISTER_GRAPH_RESPONSE__INIT;
    resp.handle = handle;
    reply_message(t, call, &resp.base);
}

static void handle_deregister(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    UNPACK_OR_REPLY(DeregisterGraphRequest, deregister_graph_request, "DeregisterGraph", req);
    pthread_mutex_lock(&t->mu);
    part *p = find_part(t, req->handle);
    if (p) {
        p->active = 0;
        if (p->running == 0) release_part(t, p); /* else its last step releases it */
    }
    pthread_mutex_unlock(&t->mu);
    if (!p) pst_status_set(&st, PST_E_NOT_FOUND, "no partition '%s' on %s", req->handle, t->device);
    pstrain__deregister_graph_request__free_unpacked(req, NULL);
    reply_error(t, call, st.code ? &st : NULL);
}

/* One RunGraph call waiting for or running on a pool thread. */
typedef struct run_job {
    pst_task *t;
    pst_server_call *call;
    pst_session *s;
    pst_node **targets;
    int n_targets;
    int64_t step;
    char handle[32];
} run_job;

static void run_step(void *arg) {
    run_job *j = arg;
    pst_task *t = j->t;
    pst_status st = {0};
    pthread_mutex_lock(&t->mu);
    int stopping = t->freeing;
    pthread_mutex_unlock(&t->mu);
    int rc = stopping ? pst_status_set(&st, PST_E_CANCELLED, "the task is shutting down")
                      : pst_session_run_step(j->s, j->step, NULL, 0, NULL, 0, j->targets,
                                             j->n_targets, NULL, &st);
    pst_status fst = {0};
    if (!stopping && pst_task_flush_step(t, j->step, &fst) < 0 && rc == 0) {
        rc = fst.code;
        st = fst;
    }
    pthread_mutex_lock(&t->mu);
    part *p = find_part_any(t, j->handle);
    if (p && rc == 0) p->steps++;
    if (p && --p->running == 0 && !p->active) release_part(t, p);
    pthread_mutex_unlock(&t->mu);
    if (rc < 0) {
        pst_status e = {0};
        pst_status_set(&e, st.code, "%s step %lld: %s", t->device, (long long)j->step, st.msg);
        reply_error(t, j->call, &e);
    } else {
        pst_transport_reply(t->tr, j->call, NULL, NULL); /* an empty RunGraphResponse */
    }
    free(j);
}

static void handle_run(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    UNPACK_OR_REPLY(RunGraphRequest, run_graph_request, "RunGraph", req);
    run_job *j = calloc(1, sizeof *j);
    if (!j) {
        pstrain__run_graph_request__free_unpacked(req, NULL);
        reply_oom(t, call, "for a RunGraph call");
        return;
    }
    j->t = t;
    j->call = call;
    j->step = req->step_id;
    snprintf(j->handle, sizeof j->handle, "%s", req->handle);
    pthread_mutex_lock(&t->mu);
    part *p = t->freeing ? NULL : find_part(t, req->handle);
    if (p) {
        j->s = p->s;
        j->targets = p->targets;
        j->n_targets = p->n_targets;
        p->running++;
    } else if (t->shutdown || t->freeing) {
        pst_status_set(&st, PST_E_CANCELLED, "%s is shutting down", t->device);
    } else {
        pst_status_set(&st, PST_E_NOT_FOUND, "no partition '%s' on %s", req->handle, t->device);
    }
    pthread_mutex_unlock(&t->mu);
    if (!st.code && pst_workpool_submit(t->pool, run_step, j, &st) < 0) {
        pst_status_prefix(&st, "%s cannot take step %lld of partition %s (run_threads %d, "
                          "run_queue %d): ", t->device, (long long)j->step, j->handle,
                          t->o.run_threads, t->o.run_queue);
        pthread_mutex_lock(&t->mu);
        p = find_part_any(t, j->handle);
        if (p && --p->running == 0 && !p->active) release_part(t, p);
        pthread_mutex_unlock(&t->mu);
    }
    pstrain__run_graph_request__free_unpacked(req, NULL);
    if (st.code) {
        free(j);
        reply_error(t, call, &st);
    }
}

/* Whether a float tensor holds a NaN or an infinity (other dtypes never do). */
static int non_finite(const pst_tensor *v, int64_t *at) {
    if (v->dtype != PST_FLOAT) return 0;
    const float *f = v->data;
    for (int64_t i = 0; i < (int64_t)(v->nbytes / sizeof *f); i++)
        if (!isfinite(f[i])) {
            *at = i;
            return 1;
        }
    return 0;
}

/* Completes a tensor pushed in chunks: a rendezvous key (a step's tensor), or "var:NAME" to
 * assign a variable that exists here, with its dtype and shape. */
static int complete_tensor(pst_task *t, const char *key, const char *from, pst_tensor *v,
                           pst_status *st) {
    int64_t at;
    if (t->o.check_numerics && non_finite(v, &at))
        return pst_status_set(st, PST_E_INVALID, "%s refused tensor '%s' from %s: element %lld "
                              "is %g (--check-numerics)", t->device, key, from, (long long)at,
                              (double)((const float *)v->data)[at]);
    if (strncmp(key, "var:", 4) == 0) {
        pst_var *var = pst_var_store_find(t->vars, key + 4);
        if (!var)
            return pst_status_set(st, PST_E_NOT_FOUND, "%s refused a push from %s to variable "
                                  "'%s', which it does not hold", t->device, from, key + 4);
        if (pst_var_assign_take(var, v, 1, st) < 0) {
            pst_status_prefix(st, "%s refused a push from %s: ", t->device, from);
            return st->code;
        }
        return 0;
    }
    return pst_rendezvous_send(t->local, key, v, st);
}

/* Claims [lo, hi) of a partial; an overlap with bytes claimed before is an error. */
static int claim_range(partial *pa, uint64_t lo, uint64_t hi, const char *key, pst_status *st) {
    if (lo == hi) return 0;
    int i = 0;
    while (i < pa->n_ranges && pa->ranges[i][1] <= lo) i++;
    if (i < pa->n_ranges && pa->ranges[i][0] < hi)
        return pst_status_set(st, PST_E_INVALID, "tensor '%s': bytes [%llu, %llu) arrived twice",
                              key, (unsigned long long)lo, (unsigned long long)hi);
    if (pa->n_ranges == pa->cap_ranges) {
        int cap = pa->cap_ranges ? 2 * pa->cap_ranges : 4;
        void *nr = realloc(pa->ranges, (size_t)cap * sizeof *pa->ranges);
        if (!nr) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory receiving '%s'", key);
        pa->ranges = nr;
        pa->cap_ranges = cap;
    }
    memmove(pa->ranges + i + 1, pa->ranges + i, (size_t)(pa->n_ranges - i) * sizeof *pa->ranges);
    pa->ranges[i][0] = lo;
    pa->ranges[i][1] = hi;
    pa->n_ranges++;
    /* neighbours that touch merge, so a tensor in many chunks keeps one range */
    for (int k = i > 0 ? i - 1 : 0; k + 1 < pa->n_ranges;) {
        if (pa->ranges[k][1] == pa->ranges[k + 1][0]) {
            pa->ranges[k][1] = pa->ranges[k + 1][1];
            memmove(pa->ranges + k + 1, pa->ranges + k + 2,
                    (size_t)(pa->n_ranges - k - 2) * sizeof *pa->ranges);
            pa->n_ranges--;
        } else if (k > i) {
            break;
        } else {
            k++;
        }
    }
    return 0;
}

/* The partial for a chunk, created with its tensor on its first chunk (within the budget);
 * with the chunk's range claimed. Called with t->mu held. */
static partial *partial_for(pst_task *t, const Pstrain__TensorChunk *h, pst_shape shape,
                            uint64_t dl, const char *from, pst_status *st) {
    partial *pa = pst_strmap_get(t->partials, h->key);
    if (!pa) {
        if (strncmp(h->key, "var:", 4) == 0 && !pst_var_store_find(t->vars, h->key + 4)) {
            pst_status_set(st, PST_E_NOT_FOUND, "%s refused a push from %s to variable '%s', "
                           "which it does not hold", t->device, from, h->key + 4);
            return NULL;
        }
        if ((int64_t)h->total_bytes > t->o.max_pending_bytes - t->pending_bytes) {
            pst_status_set(st, PST_E_EXHAUSTED, "%s refused tensor '%s' from %s: %llu bytes "
                           "would pass its budget for tensors arriving in chunks (%lld of %lld "
                           "MB in use; --max-pending-mb)", t->device, h->key, from,
                           (unsigned long long)h->total_bytes,
                           (long long)(t->pending_bytes >> 20),
                           (long long)(t->o.max_pending_bytes >> 20));
            return NULL;
        }
        pa = calloc(1, sizeof *pa);
        if (pa) pa->t = pst_tensor_new((pst_dtype)h->dtype, shape, st);
        else pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory receiving '%s'", t->device,
                            h->key);
        if (pa && pa->t && pst_strmap_put(t->partials, h->key, pa) < 0)
            pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory receiving '%s'", t->device,
                           h->key);
        if (st->code) {
            partial_free(pa);
            return NULL;
        }
        pa->id = ++t->next_partial;
        pa->started = pst_clock_now();
        snprintf(pa->from, sizeof pa->from, "%s", from);
        t->pending_bytes += (int64_t)pa->t->nbytes;
    }
    if ((uint64_t)pa->t->nbytes != h->total_bytes || pa->t->dtype != (pst_dtype)h->dtype) {
        pst_status_set(st, PST_E_INVALID, "tensor '%s': chunks from %s disagree on its dtype or "
                       "size", h->key, from);
        return NULL;
    }
    return claim_range(pa, h->offset, h->offset + dl, h->key, st) < 0 ? NULL : pa;
}

/* Drops partials older than the receive timeout (a sender that died mid-tensor, or one that
 * never meant to finish). Called with t->mu held. */
static void expire_partials(pst_task *t) {
    double now = pst_clock_now();
    const char *k;
    void *v;
    for (size_t it = 0; pst_strmap_next(t->partials, &it, &k, &v);) {
        partial *pa = v;
        if ((now - pa->started) * 1000 < (double)t->o.recv_timeout_ms) continue;
        pst_log_msg_as(t->device, PST_LOG_WARN, "dropped tensor '%s' from %s: %llu of %llu bytes "
                       "arrived in %.0f s", k, pa->from, (unsigned long long)pa->received,
                       (unsigned long long)pa->t->nbytes, now - pa->started);
        t->pending_bytes -= (int64_t)pa->t->nbytes;
        t->partials_expired++;
        pst_strmap_del(t->partials, k);
        partial_free(pa);
        it = 0; /* the map changed: start over */
    }
}

static void handle_push(pst_task *t, pst_server_call *call, const pst_iov *v, int n) {
    pst_status st = {0};
    pst_chunk_cursor c;
    uint64_t dl;
    char from[128];
    pst_transport_peer(t->tr, call, from, sizeof from);
    Pstrain__TensorChunk *h = pst_chunk_parse(v, n, &c, &dl, &st);
    pst_shape shape;
    if (!h || pst_chunk_check(h, dl, &shape, &st) < 0) goto done;
    pst_tensor *complete = pst_chunk_adopt(&c, h, shape, dl, &st);
    if (st.code) goto done;
    if (complete) { /* a whole tensor in memory the transport handed over: no copy */
        pthread_mutex_lock(&t->mu);
        t->chunks_received++;
        t->bytes_received += (int64_t)dl;
        pthread_mutex_unlock(&t->mu);
        goto complete;
    }
    pthread_mutex_lock(&t->mu);
    partial *pa = partial_for(t, h, shape, dl, from, &st);
    pst_tensor *dst = pa ? pst_tensor_ref(pa->t) : NULL;
    uint64_t id = pa ? pa->id : 0;
    if (!pa) t->pushes_refused++;
    pthread_mutex_unlock(&t->mu);
    if (!pa) goto done;
    if (dl > 0) pst_chunk_take(&c, (uint8_t *)dst->data + h->offset, (size_t)dl);
    pst_tensor_unref(dst);
    pthread_mutex_lock(&t->mu);
    t->chunks_received++;
    t->bytes_received += (int64_t)dl;
    pa = pst_strmap_get(t->partials, h->key);
    if (!pa || pa->id != id) {
        pst_status_set(&st, PST_E_DEADLINE, "tensor '%s' from %s: dropped before it was "
                       "complete (its other chunks did not come within %lld ms)", h->key, from,
                       (long long)t->o.recv_timeout_ms);
    } else if ((pa->received += dl) == h->total_bytes) {
        /* every byte claimed exactly once and copied: complete */
        pst_strmap_del(t->partials, h->key);
        t->pending_bytes -= (int64_t)pa->t->nbytes;
        complete = pst_tensor_ref(pa->t);
        partial_free(pa);
    }
    pthread_mutex_unlock(&t->mu);
complete:
    if (complete && complete_tensor(t, h->key, from, complete, &st) < 0) {
        pthread_mutex_lock(&t->mu);
        t->pushes_refused++;
        pthread_mutex_unlock(&t->mu);
        pst_log_msg_as(t->device, PST_LOG_WARN, "%s", st.msg);
    }
    if (complete) pst_tensor_unref(complete);
done:
    if (h) pst_chunk_header_free(h);
    reply_error(t, call, st.code ? &st : NULL);
}

static void handle_fetch(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    UNPACK_OR_REPLY(FetchVariableRequest, fetch_variable_request, "FetchVariable", req);
    pst_var *v = pst_var_store_find(t->vars, req->name);
    pst_tensor *val = v ? pst_var_read(v) : NULL;
    pst_msg m;
    if (!val) {
        pst_status_set(&st, PST_E_NOT_FOUND, "variable '%s' is %s on %s", req->name,
                       v ? "not initialized" : "not", t->device);
    } else {
        uint64_t total = (uint64_t)(val)->nbytes;
        uint64_t off = req->offset, l = req->length;
        if (off <= total && (l == 0 || l > total - off)) l = total - off; /* to the end */
        if (off > total) {
            pst_status_set(&st, PST_E_OUT_OF_RANGE, "variable '%s': [%llu, +%llu) is outside %llu "
                           "bytes", req->name, (unsigned long long)off, (unsigned long long)l,
                           (unsigned long long)total);
        } else if (pst_chunk_msg(req->name, val, off, l, &m, &st) == 0) {
            pthread_mutex_lock(&t->mu);
            t->bytes_sent += (int64_t)l;
            pthread_mutex_unlock(&t->mu);
            pst_transport_reply(t->tr, call, NULL, &m);
        }
        pst_tensor_unref(val);
    }
    pstrain__fetch_variable_request__free_unpacked(req, NULL);
    if (st.code) reply_error(t, call, &st);
}

/* Save and Restore name files by a prefix. They may touch only the task's checkpoint
 * directory; without one, only directories that exist already, and never through "..". */
static int authorize_prefix(pst_task *t, pst_server_call *call, const char *method,
                            const char *prefix, pst_status *st) {
    if (pst_file_check_inside(t->o.checkpoint_dir, prefix, st) == 0) {
        if (t->o.checkpoint_dir && t->o.checkpoint_dir[0]) return 0;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", prefix);
        char *slash = strrchr(dir, '/');
        if (!slash) return 0;
        if (slash == dir) slash[1] = '\0';
        else *slash = '\0';
        struct stat sb;
        if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return 0;
        pst_status_set(st, PST_E_PERMISSION, "directory %s does not exist (this task has no "
                       "--checkpoint-dir, so it creates none)", dir);
    }
    char from[128];
    pst_transport_peer(t->tr, call, from, sizeof from);
    pst_status_prefix(st, "%s refused %s from %s: ", t->device, method, from);
    pst_log_msg_as(t->device, PST_LOG_WARN, "%s", st->msg);
    return st->code;
}

static void handle_save(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    UNPACK_OR_REPLY(SaveRequest, save_request, "Save", req);
    if (authorize_prefix(t, call, "Save", req->prefix, &st) == 0)
        pst_task_save_local(t, req->prefix, req->shard, req->num_shards, &st);
    pstrain__save_request__free_unpacked(req, NULL);
    reply_error(t, call, st.code ? &st : NULL);
}

static void handle_restore(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    UNPACK_OR_REPLY(RestoreRequest, restore_request, "Restore", req);
    if (authorize_prefix(t, call, "Restore", req->prefix, &st) == 0)
        pst_task_restore_local(t, req->prefix, NULL, &st);
    pstrain__restore_request__free_unpacked(req, NULL);
    if (st.code) {
        reply_error(t, call, &st);
        return;
    }
    /* the variables restored: every variable a registered partition described */
    Pstrain__RestoreResponse resp = PSTRAIN__RESTORE_RESPONSE__INIT;
    pthread_mutex_lock(&t->mu);
    char **names = calloc(pst_strmap_size(t->var_nodes) + 1, sizeof *names);
    size_t it = 0, k = 0;
    const char *name;
    void *v;
    while (names && pst_strmap_next(t->var_nodes, &it, &name, &v)) names[k++] = (char *)name;
    resp.n_restored = k;
    resp.restored = names;
    pst_msg m;
    int rc = names ? pst_task_wire_pack(&resp.base, &m, &st) : -1;
    pthread_mutex_unlock(&t->mu);
    free(names);
    if (rc < 0) {
        reply_oom(t, call, "listing the restored variables");
        return;
    }
    pst_transport_reply(t->tr, call, NULL, &m);
}

/* The status message of the task; every allocation it needs is in `mem` (freed by caller). */
typedef struct status_mem {
    pst_var **vars;
    Pstrain__VariableStatus *vs, **vp;
    int64_t (*shapes)[PST_MAX_RANK];
    char (*slices)[512];
    Pstrain__PartitionStatus *ps, **pp;
    int n_ps;
} status_mem;

static void status_mem_free(status_mem *mem) {
    for (int i = 0; i < mem->n_ps; i++) {
        for (size_t j = 0; j < mem->ps[i].n_nodes; j++) free(mem->ps[i].nodes[j]);
        free(mem->ps[i].nodes);
    }
    free(mem->ps);
    free(mem->pp);
    free(mem->vs);
    free(mem->vp);
    free(mem->shapes);
    free(mem->slices);
    free(mem->vars);
}

/* Fills s from the task's state under t->mu; 0 or -1 when out of memory. */
static int fill_status(pst_task *t, Pstrain__TaskStatus *s, status_mem *mem) {
    int nv = pst_var_store_list(t->vars, &mem->vars);
    if (nv < 0) return -1;
    mem->vs = calloc((size_t)nv + 1, sizeof *mem->vs);
    mem->vp = calloc((size_t)nv + 1, sizeof *mem->vp);
    mem->shapes = calloc((size_t)nv + 1, sizeof *mem->shapes);
    mem->slices = calloc((size_t)nv + 1, sizeof *mem->slices);
    int np = t->n_parts;
    mem->ps = calloc((size_t)np + 1, sizeof *mem->ps);
    mem->pp = calloc((size_t)np + 1, sizeof *mem->pp);
    if (!mem->vars || !mem->vs || !mem->vp || !mem->shapes || !mem->slices || !mem->ps || !mem->pp)
        return -1;
    for (int i = 0; i < nv; i++) {
        pst_var *v = mem->vars[i];
        Pstrain__VariableStatus *vs = &mem->vs[i];
        pstrain__variable_status__init(vs);
        vs->name = v->name;
        vs->dtype = v->dtype;
        pthread_mutex_lock(&v->mu);
        pst_shape sh = v->value ? v->value->shape : v->shape;
        vs->initialized = v->value != NULL;
        vs->updates = v->n_updates;
        pthread_mutex_unlock(&v->mu);
        vs->stale = pst_ps_sync_stale(t->vars, v->name);
        for (int d = 0; d < sh.rank; d++) mem->shapes[i][d] = sh.dims[d];
        vs->n_shape = (size_t)sh.rank;
        vs->shape = mem->shapes[i];
        int64_t el = 1;
        for (int d = 0; d < sh.rank; d++) el *= sh.dims[d] < 0 ? 0 : sh.dims[d];
        vs->bytes = el * (int64_t)pst_dtype_size(v->dtype);
        char tn[1024];
        snprintf(tn, sizeof tn, "%s/read:0", v->name);
        vs->pulls = (intptr_t)pst_strmap_get(t->pulls, tn);
        snprintf(tn, sizeof tn, "%s:0", v->name);
        vs->pulls += (intptr_t)pst_strmap_get(t->pulls, tn);
        pst_node *n = pst_strmap_get(t->var_nodes, v->name);
        const char *full = n ? pst_node_attr_s(n, "_save_slice_full_name", NULL) : NULL;
        vs->full_name = full ? (char *)full : "";
        vs->slice_spec = "";
        if (full) {
            const pst_attr *off = pst_node_attr(n, "_save_slice_var_offset");
            const pst_attr *len = pst_node_attr(n, "_save_slice_var_shape");
            size_t o = 0;
            for (int d = 0; off && len && d < off->n && d < len->n && o < 400; d++)
                o += (size_t)snprintf(mem->slices[i] + o, sizeof mem->slices[i] - o,
                                      "%s%lld,%lld", d ? ":" : "", (long long)off->list.i[d],
                                      (long long)len->list.i[d]);
            vs->slice_spec = mem->slices[i];
        }
        mem->vp[i] = vs;
    }
    s->n_variables = (size_t)nv;
    s->variables = mem->vp;
    for (int i = 0; i < np; i++) {
        part *p = &t->parts[i];
        if (!p->active) continue;
        Pstrain__PartitionStatus *ps = &mem->ps[mem->n_ps];
        pstrain__partition_status__init(ps);
        ps->handle = p->handle;
        ps->client = p->client;
        ps->steps = p->steps;
        mem->pp[mem->n_ps++] = ps;
        int nn = pst_graph_num_nodes(p->g);
        if (!(ps->nodes = calloc((size_t)nn + 1, sizeof *ps->nodes))) return -1;
        for (int j = 0; j < nn; j++) {
            pst_node *nd = pst_graph_node(p->g, j);
            const char *op = nd->op->name;
            if (op[0] == '_' || strcmp(op, "Const") == 0 || strcmp(op, "Identity") == 0 ||
                strcmp(op, "NoOp") == 0)
                continue;
            size_t l = strlen(nd->name) + strlen(op) + 4;
            char *line = malloc(l);
            if (!line) return -1;
            snprintf(line, l, "%s (%s)", nd->name, op);
            ps->nodes[ps->n_nodes++] = line;
        }
    }
    s->n_partitions = (size_t)mem->n_ps;
    s->partitions = mem->pp;
    s->chunks_received = t->chunks_received;
    s->bytes_received = t->bytes_received;
    s->bytes_sent = t->bytes_sent;
    s->pending_bytes = t->pending_bytes;
    s->pushes_refused = t->pushes_refused;
    s->partials_expired = t->partials_expired;
    s->graph_bytes = t->graph_bytes;
    s->workers_done = t->n_done;
    s->membership_epoch = t->member_epoch;
    s->members = t->members;
    return 0;
}

void pst_task_set_membership(pst_task *t, int64_t epoch, const char *members) {
    pthread_mutex_lock(&t->mu);
    t->member_epoch = epoch;
    snprintf(t->members, sizeof t->members, "%s", members ? members : "");
    pthread_mutex_unlock(&t->mu);
}

static void handle_status(pst_task *t, pst_server_call *call) {
    Pstrain__TaskStatus s = PSTRAIN__TASK_STATUS__INIT;
    s.task = t->device;
    s.address = t->addr;
    s.uptime_s = pst_clock_now() - t->start;
    status_mem mem = {0};
    pst_status st = {0};
    pst_msg m;
    pthread_mutex_lock(&t->mu);
    int rc = fill_status(t, &s, &mem);
    if (rc == 0) rc = pst_task_wire_pack(&s.base, &m, &st);
    pthread_mutex_unlock(&t->mu);
    status_mem_free(&mem);
    if (rc < 0) {
        reply_oom(t, call, "for its status");
        return;
    }
    pst_transport_reply(t->tr, call, NULL, &m);
}

/* ---- shutdown accounting ---- */

static int expected_workers(pst_task *t) {
    if (t->o.expected_workers > 0) return t->o.expected_workers;
    return pst_cluster_num_tasks(t->o.cluster, "worker");
}

static int done_already(pst_task *t, const char *from) {
    for (int i = 0; i < t->n_done; i++)
        if (strcmp(t->done_from[i], from) == 0) return 1;
    return 0;
}

/* Counts `from` as finished (once); ends the service when every worker has. A failed worker
 * fails the synchronous steps that waited for its gradients. Returns 0, or PST_E_EXHAUSTED
 * when it could not be recorded (it is then not counted). */
static int mark_done(pst_task *t, const char *from, int failed, const char *reason, int now,
                     pst_status *st) {
    pthread_mutex_lock(&t->mu);
    int first = !done_already(t, from);
    if (first) {
        char **nd = realloc(t->done_from, (size_t)(t->n_done + 1) * sizeof *nd);
        char *copy = nd ? strdup(from) : NULL;
        if (nd) t->done_from = nd;
        if (!copy) {
            pthread_mutex_unlock(&t->mu);
            return pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory counting %s as done",
                                  t->device, from);
        }
        t->done_from[t->n_done++] = copy;
    }
    if (failed && t->o.supervised && first) {
        /* Its launcher starts it again: not done, and not the end of the job. */
        free(t->done_from[--t->n_done]);
    } else if (failed && !t->shutdown_why.code) {
        pst_status_set(&t->shutdown_why, PST_E_ABORTED, "%s failed: %s", from, reason);
    }
    int done = now || t->n_done >= expected_workers(t);
    int n_done = t->n_done;
    pthread_mutex_unlock(&t->mu);
    if (expected_workers(t) >= (1 << 30)) /* elastic: the coordination service ends the job */
        logf_(t, "%s is done%s%s", from, failed ? ", failed: " : "", failed ? reason : "");
    else
        logf_(t, "%s is done%s%s (%d of %d workers)", from, failed ? ", failed: " : "",
              failed ? reason : "", n_done, expected_workers(t));
    if (failed && first) {
        /* synchronous replicas waiting for its gradients stop waiting */
        char why[PST_STATUS_MSG_MAX];
        snprintf(why, sizeof why, "%.*s failed: %.*s", PST_DEVICE_MAX, from,
                 (int)(sizeof why - PST_DEVICE_MAX - 16), reason);
        pst_ps_sync_replica_lost(t->vars, why);
    } else if (!failed && first) {
        /* it sends no more gradients: a step waiting for them ends */
        pst_ps_sync_replica_finished(t->vars);
    }
    if (done) pst_task_request_shutdown(t, NULL);
    return 0;
}

/* Heartbeats: every task that registered partitions here and has not said it is done is asked
 * for its status at the address it registered with; one silent for peer_timeout_ms counts as a
 * failed worker (it crashed or its machine is gone), so a PS never waits forever for a worker
 * that will not come back. */
static void *monitor_thread(void *arg) {
    pst_task *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->shutdown) {
        struct timespec dl;
        pst_clock_deadline_in(&dl, t->o.heartbeat_ms);
        pthread_cond_timedwait(&t->cv, &t->mu, &dl);
        if (t->shutdown) break;
        expire_partials(t);
        /* the clients to ping, copied out of the lock (none this round when out of memory) */
        int n = 0;
        char(*clients)[PST_DEVICE_MAX] = calloc((size_t)t->n_parts + 1, sizeof *clients);
        for (int i = 0; clients && i < t->n_parts; i++) {
            const char *cl = t->parts[i].client;
            int dup = 0;
            for (int k = 0; k < n; k++) dup |= strcmp(clients[k], cl) == 0;
            if (!dup && !done_already(t, cl) && !same_task(t, cl))
                snprintf(clients[n++], PST_DEVICE_MAX, "%s", cl);
        }
        pthread_mutex_unlock(&t->mu);
        for (int k = 0; k < n; k++) {
            pst_status st = {0};
            char addr[256] = "";
            int known = pst_task_peer_address(t, clients[k], addr, sizeof addr, &st) == 0;
            double now = pst_clock_now();
            int ok = known && pst_transport_call_sync(t->tr, addr, PST_TASK_STATUS, NULL,
                                                      t->o.heartbeat_ms + 1000, 0, NULL, NULL,
                                                      &st) == 0;
            pthread_mutex_lock(&t->mu);
            double *seen = pst_strmap_get(t->last_seen, clients[k]);
            if (!seen && (seen = malloc(sizeof *seen))) {
                *seen = now;
                if (pst_strmap_put(t->last_seen, clients[k], seen) < 0) {
                    free(seen);
                    seen = NULL;
                }
            }
            if (ok && seen) *seen = now;
            double silent = seen ? now - *seen : 0;
            pthread_mutex_unlock(&t->mu);
            if (!ok && silent * 1000 >= (double)t->o.peer_timeout_ms) {
                char why[PST_STATUS_MSG_MAX + 320];
                snprintf(why, sizeof why, "no answer from %s for %.0f s (%s)",
                         known ? addr : clients[k], silent, st.msg);
                pst_status ignore = {0};
                mark_done(t, clients[k], 1, why, 0, &ignore);
            }
        }
        free(clients);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Who may say it is done: a worker of the cluster, or a task that registered partitions here
 * (a worker that joined later); "now" (end the service at once) is no part of the protocol. */
static int authorize_shutdown(pst_task *t, pst_server_call *call,
                              const Pstrain__ShutdownRequest *req, pst_status *st) {
    pst_device_name d;
    pst_status ignore = {0};
    int member = 0;
    if (req->now) {
        pst_status_set(st, PST_E_PERMISSION, "Shutdown with 'now' is not accepted");
    } else if (pst_device_parse(req->from, &d, &ignore) < 0 || strcmp(d.job, "worker") != 0 ||
               d.task < 0) {
        pst_status_set(st, PST_E_PERMISSION, "Shutdown from '%.200s', which is not a worker",
                       req->from);
    } else {
        pthread_mutex_lock(&t->mu);
        member = d.task < pst_cluster_num_tasks(t->o.cluster, "worker");
        for (int i = 0; i < t->n_parts && !member; i++) member = same_device(t->parts[i].client,
                                                                             req->from);
        pthread_mutex_unlock(&t->mu);
        if (!member)
            pst_status_set(st, PST_E_PERMISSION, "Shutdown from %.200s, which is neither in the "
                           "cluster nor registered here", req->from);
    }
    if (!st->code) return 0;
    char from[128];
    pst_transport_peer(t->tr, call, from, sizeof from);
    pst_status_prefix(st, "%s refused a call from %s: ", t->device, from);
    pst_log_msg_as(t->device, PST_LOG_WARN, "%s", st->msg);
    return st->code;
}

static void handle_shutdown(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    UNPACK_OR_REPLY(ShutdownRequest, shutdown_request, "Shutdown", req);
    if (authorize_shutdown(t, call, req, &st) < 0) {
        pstrain__shutdown_request__free_unpacked(req, NULL);
        reply_error(t, call, &st);
        return;
    }
    /* Answered first: counting the last worker ends the service, which cancels calls not yet
     * answered. A worker that could not be counted (out of memory) is logged. */
    reply_error(t, call, NULL);
    if (mark_done(t, req->from, req->failed, req->reason, req->now, &st) < 0)
        pst_log_msg_as(t->device, PST_LOG_ERROR, "%s", st.msg);
    pstrain__shutdown_request__free_unpacked(req, NULL);
}

static void task_handler(void *arg, pst_server_call *call, int method, const pst_iov *req, int n) {
    pst_task *t = arg;
    if (method == PST_TASK_PUSH) {
        handle_push(t, call, req, n);
        return;
    }
    size_t len = 0;
    uint8_t *buf = pst_iov_flatten(req, n, &len);
    if (len > 0 && !buf) {
        reply_oom(t, call, "for a request");
        return;
    }
    switch (method) {
    case PST_TASK_REGISTER: handle_register(t, call, buf, len); break;
    case PST_TASK_DEREGISTER: handle_deregister(t, call, buf, len); break;
    case PST_TASK_RUN: handle_run(t, call, buf, len); break;
    case PST_TASK_FETCH_VAR: handle_fetch(t, call, buf, len); break;
    case PST_TASK_SAVE: handle_save(t, call, buf, len); break;
    case PST_TASK_RESTORE: handle_restore(t, call, buf, len); break;
    case PST_TASK_STATUS: handle_status(t, call); break;
    case PST_TASK_SHUTDOWN: handle_shutdown(t, call, buf, len); break;
    default: {
        pst_status st = {0};
        pst_status_set(&st, PST_E_UNIMPLEMENTED, "%s: method %d", t->device, method);
        reply_error(t, call, &st);
    }
    }
    free(buf);
}

/* ---- lifecycle ---- */

/* Defaults for the options left 0. */
static void fill_defaults(pst_task_opts *o) {
    if (o->connect_timeout_ms <= 0) o->connect_timeout_ms = 30000;
    if (o->recv_timeout_ms <= 0) o->recv_timeout_ms = 60000;
    /* gRPC: 4 MiB messages by default. MPI moves a tensor of any size up to its 2 GiB message
     * limit as one message received straight into the tensor's memory: chunks of 256 MiB keep
     * most tensors whole (no copy) and still well inside the limit. */
    if (o->chunk_bytes <= 0)
        o->chunk_bytes = o->transport && strcmp(o->transport, "mpi") == 0 ? 256 << 20 : 4 << 20;
    if (o->peer_timeout_ms <= 0) o->peer_timeout_ms = o->connect_timeout_ms;
    if (o->heartbeat_ms <= 0) o->heartbeat_ms = 1000;
    /* A remote step may wait for its tensors, for the other replicas of a synchronous step and
     * for a dead one to be noticed, after the call itself waited for the peer to come up. */
    if (o->step_timeout_ms <= 0)
        o->step_timeout_ms = o->recv_timeout_ms + PST_PS_SYNC_TIMEOUT_MS_DEFAULT +
                             o->peer_timeout_ms + o->connect_timeout_ms;
    if (o->run_threads <= 0) {
        int tasks = 0;
        for (int j = 0; j < pst_cluster_num_jobs(o->cluster); j++)
            tasks += pst_cluster_num_tasks(o->cluster, pst_cluster_job_name(o->cluster, j));
        o->run_threads = 2 * tasks < 16 ? 16 : 2 * tasks;
    }
    if (o->run_queue == 0) o->run_queue = o->run_threads;
    if (o->run_queue < 0) o->run_queue = 0;
    if (o->max_pending_bytes <= 0) o->max_pending_bytes = (int64_t)2 << 30;
    if (o->max_graph_bytes <= 0) o->max_graph_bytes = (int64_t)1 << 30;
}

/* Starts serving: on opts.listen, else on every interface at the cluster's port (the cluster's
 * host may be a name only others resolve); in-process servers take the address itself. Sets
 * t->addr to the cluster's host with the port bound. */
static int serve(pst_task *t, int inproc, pst_status *st) {
    char listen[300], bound[300];
    const char *colon = strrchr(t->addr, ':');
    if (t->o.listen && t->o.listen[0]) {
        snprintf(listen, sizeof listen, "%s", t->o.listen);
    } else if (inproc || !colon) {
        snprintf(listen, sizeof listen, "%s", t->addr);
    } else {
        /* The host the cluster gives this task, not every interface: a task answers only where
         * the job says it lives (opts.listen, e.g. 0.0.0.0:2222, widens it explicitly). */
        snprintf(listen, sizeof listen, "%s", t->addr);
    }
    if (pst_transport_serve(t->tr, listen, task_handler, t, bound, sizeof bound, st) < 0) {
        pst_status_set(st, st->code, "%s (%s in the cluster)", st->msg, t->device);
        return st->code;
    }
    t->port = port_of(bound);
    char host[256];
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - t->addr) : 0, t->addr);
    if (inproc || !colon) {
        snprintf(t->addr, sizeof t->addr, "%.255s", bound);
    } else {
        snprintf(t->addr, sizeof t->addr, "%.200s:%d", host, t->port);
    }
    return 0;
}

pst_task *pst_task_new(const pst_task_opts *o, pst_status *st) {
    if (!o || !o->cluster || !o->job) {
        pst_status_set(st, PST_E_INVALID, "a task needs a cluster, a job and an index");
        return NULL;
    }
    if (pst_cluster_check_task(o->cluster, o->job, o->index, st) < 0) return NULL;
    if (o->security && pst_security_check_cluster(o->security, o->cluster, st) < 0) return NULL;
    pst_dist_ops_init();
    pst_task *t = calloc(1, sizeof *t);
    if (!t) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory for task /job:%s/task:%d", o->job,
                       o->index);
        return NULL;
    }
    t->o = *o;
    fill_defaults(&t->o);
    pst_cluster_task_device(o->cluster, o->job, o->index, t->device, sizeof t->device);
    pst_device_parse(t->device, &t->dn, st);
    snprintf(t->addr, sizeof t->addr, "%s", pst_cluster_address(o->cluster, o->job, o->index));
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->route.base.ops = &route_ops;
    t->route.task = t;
    t->start = pst_clock_now();
    /* Step ids: task index and job in the middle bits, a random incarnation in the top ones,
     * so a restarted task's steps never collide with its former incarnation's transfers still
     * pending on a PS. */
    uint64_t inc = pst_coord_new_incarnation() & 0xfff;
    atomic_init(&t->next_step, (long long)((inc << 51) | ((uint64_t)(o->index + 1) << 36) |
                                           (strcmp(o->job, "worker") == 0 ? 0 : (1ULL << 50))));
    t->vars = pst_var_store_new();
    t->local = pst_rendezvous_local_new();
    t->var_nodes = pst_strmap_new();
    t->var_graph = pst_graph_new();
    t->partials = pst_strmap_new();
    t->pulls = pst_strmap_new();
    t->pushes = pst_strmap_new();
    t->peers = pst_strmap_new();
    t->last_seen = pst_strmap_new();
    if (!t->vars || !t->local || !t->var_nodes || !t->var_graph || !t->partials || !t->pulls || !t->pushes ||
        !t->peers || !t->last_seen) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory for task %s", t->device);
        pst_task_free(t);
        return NULL;
    }
    if (!(t->pool = pst_workpool_new(t->o.run_threads, t->o.run_queue, st))) {
        pst_status_prefix(st, "%s: ", t->device);
        pst_task_free(t);
        return NULL;
    }
    int inproc = o->transport && strcmp(o->transport, "inproc") == 0;
    int mpi = o->transport && strcmp(o->transport, "mpi") == 0;
    if (inproc) {
        t->tr = pst_transport_inproc_new(pst_task_methods, PST_TASK_METHOD_COUNT);
        if (!t->tr) pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a transport");
    } else if (mpi) {
        /* Every task is an MPI rank; its cluster address is "mpi:RANK" (transport_mpi.h). */
        int rank = 0;
        if (pst_mpi_parse_address(t->addr, &rank, st) == 0)
            t->tr = pst_transport_mpi_new(pst_task_methods, PST_TASK_METHOD_COUNT, NULL, st);
        else
            pst_status_prefix(st, "%s over MPI: ", t->device);
        inproc = 1; /* serve where the cluster says: the address is the rank */
    } else if (o->transport && strcmp(o->transport, "grpc") != 0) {
        pst_status_set(st, PST_E_INVALID, "%s: unknown transport '%s' (grpc, mpi or inproc)",
                       t->device, o->transport);
    } else {
        pst_transport_opts to = {.security = o->security};
        t->tr = pst_transport_grpc_new(pst_task_methods, PST_TASK_METHOD_COUNT, &to, st);
    }
    if (!t->tr || serve(t, inproc, st) < 0) {
        pst_task_free(t);
        return NULL;
    }
    logf_(t, "serving on %s", t->addr);
    t->monitor_started = pthread_create(&t->monitor, NULL, monitor_thread, t) == 0;
    return t;
}

void pst_task_request_shutdown(pst_task *t, const pst_status *why) {
    pthread_mutex_lock(&t->mu);
    if (why && why->code && !t->shutdown_why.code) t->shutdown_why = *why;
    t->shutdown = 1;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

int pst_task_wait_shutdown(pst_task *t, int64_t timeout_ms, pst_status *st) {
    struct timespec dl;
    pst_clock_deadline_in(&dl, timeout_ms > 0 ? timeout_ms : 0);
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    while (!t->shutdown) {
        if (timeout_ms > 0) {
            if (pthread_cond_timedwait(&t->cv, &t->mu, &dl) == ETIMEDOUT) {
                rc = pst_status_set(st, PST_E_DEADLINE, "%s: no shutdown within %lld ms",
                                    t->device, (long long)timeout_ms);
                break;
            }
        } else {
            pthread_cond_wait(&t->cv, &t->mu);
        }
    }
    if (!rc && t->shutdown_why.code)
        rc = pst_status_set(st, t->shutdown_why.code, "%s", t->shutdown_why.msg);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static void free_map_values(pst_strmap *m) {
    const char *k;
    void *v;
    for (size_t it = 0; m && pst_strmap_next(m, &it, &k, &v);) free(v);
    pst_strmap_free(m);
}

void pst_task_free(pst_task *t) {
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->shutdown = 1;
    t->freeing = 1;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    /* Steps in progress fail at once: their _Recvs and their waits for other replicas. */
    pst_status why = {0};
    pst_status_set(&why, PST_E_CANCELLED, "%s is shutting down", t->device);
    if (t->local) pst_rendezvous_abort(t->local, &why);
    if (t->vars) pst_ps_sync_abort(t->vars, &why);
    if (t->vars) pst_accumulators_cancel(t->vars, &why);
    /* No new calls; returns once every arrived one is answered, RunGraph steps included (the
     * pool answers the queued ones without running them). */
    if (t->tr) pst_transport_stop(t->tr);
    pst_workpool_free(t->pool);
    if (t->monitor_started) pthread_join(t->monitor, NULL);
    if (t->tr) pst_transport_free(t->tr);
    for (int i = 0; i < t->n_parts; i++) {
        pst_session_free(t->parts[i].s);
        pst_graph_free(t->parts[i].g);
        free(t->parts[i].targets);
    }
    free(t->parts);
    if (t->partials) {
        const char *k;
        void *v;
        for (size_t it = 0; pst_strmap_next(t->partials, &it, &k, &v);) partial_free(v);
        pst_strmap_free(t->partials);
    }
    free_map_values(t->last_seen);
    free_map_values(t->peers);
    pst_strmap_free(t->var_nodes);
    pst_graph_free(t->var_graph);
    pst_strmap_free(t->pulls);
    if (t->pushes) {
        const char *k;
        void *v;
        for (size_t it = 0; pst_strmap_next(t->pushes, &it, &k, &v);) pst_call_group_free(v);
        pst_strmap_free(t->pushes);
    }
    for (int i = 0; i < t->n_done; i++) free(t->done_from[i]);
    free(t->done_from);
    if (t->local) pst_rendezvous_free(t->local);
    if (t->vars) pst_var_store_free(t->vars);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

/* ---- this task's variables in checkpoints ---- */

/* The variable nodes registered partitions described (save/restore cover them); with
 * initialized_only, just those whose variable has a value here. Caller frees; NULL with st set
 * when out of memory. */
static pst_output *described_vars(pst_task *t, int initialized_only, int *n, pst_status *st) {
    pthread_mutex_lock(&t->mu);
    pst_output *outs = calloc(pst_strmap_size(t->var_nodes) + 1, sizeof *outs);
    int k = 0;
    size_t it = 0;
    const char *name;
    void *v;
    while (outs && pst_strmap_next(t->var_nodes, &it, &name, &v)) {
        pst_var *var = initialized_only ? pst_var_store_find(t->vars, name) : NULL;
        if (!initialized_only || (var && pst_var_is_initialized(var))) outs[k++] = pst_out(v, 0);
    }
    pthread_mutex_unlock(&t->mu);
    *n = k;
    if (!outs) pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory listing its variables",
                              t->device);
    return outs;
}

int pst_task_save_local(pst_task *t, const char *prefix, int shard, int num_shards,
                        pst_status *st) {
    (void)shard;
    (void)num_shards;
    int n = 0;
    pst_output *vars = described_vars(t, 1, &n, st);
    if (!vars) return st->code;
    int rc = 0;
    if (n == 0) {
        rc = pst_status_set(st, PST_E_PRECONDITION, "%s has no initialized variables to save",
                            t->device);
    } else {
        pst_saver_opts so = {.n_vars = n, .vars = vars};
        pst_saver *sv = pst_saver_new(vars[0].node->graph, &so, st);
        rc = sv ? pst_saver_write_store(sv, t->vars, prefix, st) : st->code;
        pst_saver_free(sv);
    }
    free(vars);
    if (rc == 0) logf_(t, "saved %d variables to %s", n, prefix);
    return rc;
}

int pst_task_restore_local(pst_task *t, const char *prefix, int *n_restored, pst_status *st) {
    int n = 0;
    pst_output *vars = described_vars(t, 0, &n, st);
    if (!vars) return st->code;
    int rc = 0;
    if (n > 0) {
        pst_saver_opts so = {.n_vars = n, .vars = vars};
        pst_saver *sv = pst_saver_new(vars[0].node->graph, &so, st);
        rc = sv ? pst_saver_restore_store(sv, t->vars, prefix, st) : st->code;
        pst_saver_free(sv);
    }
    free(vars);
    if (n_restored) *n_restored = rc == 0 ? n : 0;
    if (rc == 0) logf_(t, "restored %d variables from %s", n, prefix);
    return rc;
}
