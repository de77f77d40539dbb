/* task: the task service (server side) and the calls other tasks make to it. */
#include "task.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunk.h"
#include "clock.h"
#include "format.h"
#include "log.h"
#include "device.h"
#include "metagraph.h"
#include "op.h"
#include "parallel.h"
#include "partition.h"
#include "pstrain_task.pb-c.h"
#include "saver.h"
#include "strmap.h"

const char *const pst_task_methods[PST_TASK_METHOD_COUNT] = {
    "/pstrain.Task/RegisterGraph", "/pstrain.Task/DeregisterGraph", "/pstrain.Task/RunGraph",
    "/pstrain.Task/PushTensor",    "/pstrain.Task/FetchVariable",   "/pstrain.Task/Save",
    "/pstrain.Task/Restore",       "/pstrain.Task/Status",          "/pstrain.Task/Shutdown",
};

#define STEP_CALL_MS (24LL * 3600 * 1000)

typedef struct part {
    char handle[32];
    char client[PST_DEVICE_MAX];
    pst_graph *g;
    pst_session *s;
    pst_node **targets;
    int n_targets;
    int64_t steps;
    int active;
} part;

typedef struct partial {
    pst_tensor *t;
    uint64_t received;
} partial;

typedef struct route_rdv {
    pst_rendezvous base;
    struct pst_task *task;
} route_rdv;

struct pst_task {
    pst_task_opts o;
    char device[PST_DEVICE_MAX];
    pst_device_name dn;
    char addr[256];
    pst_transport *tr;
    pst_var_store *vars;
    pst_rendezvous *local;
    route_rdv route;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    part *parts;
    int n_parts, cap_parts;
    pst_strmap *var_nodes; /* variable name -> its VariableV2 node in a registered graph */
    pst_strmap *partials;  /* key -> partial */
    pst_strmap *pulls;     /* tensor name -> count of sends to other tasks */
    pst_strmap *pushes;    /* step id -> pst_call_group of the step's pushes in flight */
    int64_t chunks_received, bytes_received, bytes_sent;
    int running;           /* RunGraph threads */
    char **done_from;
    int n_done;
    int shutdown;
    pst_status shutdown_why;
    pst_strmap *last_seen; /* client device -> (double *) when it last answered */
    pthread_t monitor;
    int monitor_started;
    double start;
    atomic_llong next_step;
};

const char *pst_task_device(const pst_task *t) { return t->device; }
const char *pst_task_address(const pst_task *t) { return t->addr; }
pst_var_store *pst_task_vars(pst_task *t) { return t->vars; }
pst_rendezvous *pst_task_rendezvous(pst_task *t) { return &t->route.base; }
pst_transport *pst_task_transport(pst_task *t) { return t->tr; }

#define logf_(t, ...) \
    do { \
        if (!(t)->o.quiet) pst_log_msg_as((t)->device, PST_LOG_INFO, __VA_ARGS__); \
    } while (0)

/* The address of a device's task; NULL with st set when the cluster has no such task. */
static const char *address_of(pst_task *t, const char *device, pst_status *st) {
    const char *a = pst_cluster_address_of_device(t->o.cluster, device);
    if (!a) pst_status_set(st, PST_E_NOT_FOUND, "no task in the cluster for device '%s'", device);
    return a;
}

/* ---- messages ---- */

static void free_owner(void *p) { free(p); }

/* A packed protobuf message as a transport message owning its buffer. */
#define PACK(type, msgp, out)                                                                  \
    do {                                                                                       \
        size_t len_ = pstrain__##type##__get_packed_size(msgp);                                \
        uint8_t *buf_ = malloc(len_ + 1);                                                      \
        pstrain__##type##__pack(msgp, buf_);                                                   \
        (out) = pst_msg_of(buf_, len_);                                                        \
        (out).release = free_owner;                                                            \
        (out).owner = buf_;                                                                    \
    } while (0)

/* ---- the routing rendezvous ---- */

static int same_task(pst_task *t, const char *device) {
    pst_device_name d;
    pst_status ignore = {0};
    if (pst_device_parse(device, &d, &ignore) < 0) return 0;
    return pst_device_same_task(&d, &t->dn);
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

/* Starts pushing v's chunks to device within group g (counted in g; errors surface when g is
 * waited for). */
static int push_async(pst_task *t, pst_call_group *g, const char *device, const char *key,
                      pst_tensor *value, pst_status *st) {
    if (pst_dtype_size(value->dtype) == 0)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "tensor '%s': %s tensors cannot be sent",
                              key, pst_dtype_name(value->dtype));
    const char *addr = address_of(t, device, st);
    if (!addr) return st->code;
    uint64_t total = (uint64_t)value->nbytes, chunk = (uint64_t)t->o.chunk_bytes;
    uint64_t off = 0;
    do {
        uint64_t l = total - off < chunk ? total - off : chunk;
        pst_msg m = pst_chunk_msg(key, value, off, l);
        pst_call_group_start(g, t->tr, addr, PST_TASK_PUSH, &m, t->o.connect_timeout_ms, 0, NULL,
                             NULL);
        off += l;
    } while (off < total);
    pthread_mutex_lock(&t->mu);
    t->bytes_sent += (int64_t)total;
    pthread_mutex_unlock(&t->mu);
    return 0;
}

/* A _Send to another task does not wait: its chunks travel while the step goes on, and the
 * step's end (pst__task_flush_step) waits for all of them. */
static int route_send(pst_rendezvous *r, const char *key, pst_tensor *v, pst_status *st) {
    pst_task *t = ((route_rdv *)r)->task;
    char recv_dev[PST_DEVICE_MAX], step[32];
    key_field(key, 1, recv_dev, sizeof recv_dev);
    if (same_task(t, recv_dev)) return pst_rendezvous_send(t->local, key, v, st);
    key_field(key, 3, step, sizeof step);
    pthread_mutex_lock(&t->mu);
    pst_call_group *g = pst_strmap_get(t->pushes, step);
    if (!g) {
        g = pst_call_group_new();
        pst_strmap_put(t->pushes, step, g);
    }
    pthread_mutex_unlock(&t->mu);
    int rc = push_async(t, g, recv_dev, key, v, st);
    if (rc == 0) {
        char name[1024];
        key_field(key, 2, name, sizeof name);
        pthread_mutex_lock(&t->mu);
        intptr_t n = (intptr_t)pst_strmap_get(t->pulls, name);
        pst_strmap_put(t->pulls, name, (void *)(n + 1));
        pthread_mutex_unlock(&t->mu);
    }
    return rc;
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

/* Waits for the pushes a step started; returns the first error (naming the receiver). */
static int flush_step(pst_task *t, int64_t step_id, pst_status *st) {
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

/* ---- server handlers ---- */

static void reply_packed(pst_task *t, pst_server_call *call, pst_msg *m) {
    pst_transport_reply(t->tr, call, NULL, m);
}

static void reply_error(pst_task *t, pst_server_call *call, const pst_status *st) {
    pst_transport_reply(t->tr, call, st, NULL);
}

/* Declares `req` unpacked from buf, or answers the call with an error and returns. */
#define UNPACK_OR_REPLY(Type, type, method, req)                                               \
    Pstrain__##Type *req = pstrain__##type##__unpack(NULL, len, buf);                         \
    if (!req) {                                                                                \
        pst_status_set(&st, PST_E_INVALID, "%s: malformed request", method);                   \
        reply_error(t, call, &st);                                                             \
        return;                                                                                \
    }

static part *find_part(pst_task *t, const char *handle) {
    for (int i = 0; i < t->n_parts; i++)
        if (t->parts[i].active && strcmp(t->parts[i].handle, handle) == 0) return &t->parts[i];
    return NULL;
}

static void handle_register(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    UNPACK_OR_REPLY(RegisterGraphRequest, register_graph_request, "RegisterGraph", req);
    pst_graph *g = pst_graph_new();
    pst_node **targets = calloc(req->n_targets + 1, sizeof *targets);
    pst_session *s = NULL;
    if (pst_graph_def_import(g, req->graph_def.data, req->graph_def.len, NULL, &st) == 0) {
        for (size_t i = 0; i < req->n_targets && !st.code; i++) {
            targets[i] = pst_graph_find(g, req->targets[i]);
            if (!targets[i])
                pst_status_set(&st, PST_E_NOT_FOUND, "RegisterGraph from %s: no node '%s'",
                               req->client, req->targets[i]);
        }
    }
    if (!st.code) {
        pst_session_opts so = {.vars = t->vars, .exec = &t->route.base};
        s = pst_session_new(g, &so, &st);
    }
    if (st.code) {
        if (s) pst_session_free(s);
        pst_graph_free(g);
        free(targets);
        pstrain__register_graph_request__free_unpacked(req, NULL);
        reply_error(t, call, &st);
        return;
    }
    pthread_mutex_lock(&t->mu);
    if (t->n_parts == t->cap_parts) {
        t->cap_parts = t->cap_parts ? t->cap_parts * 2 : 8;
        t->parts = realloc(t->parts, (size_t)t->cap_parts * sizeof *t->parts);
    }
    part *p = &t->parts[t->n_parts];
    memset(p, 0, sizeof *p);
    snprintf(p->handle, sizeof p->handle, "g%d", t->n_parts + 1);
    t->n_parts++;
    snprintf(p->client, sizeof p->client, "%s", req->client);
    p->g = g;
    p->s = s;
    p->targets = targets;
    p->n_targets = (int)req->n_targets;
    p->active = 1;
    /* Remember each variable's node: its dtype, shape and slice info drive save/restore. */
    for (int i = 0; i < pst_graph_num_nodes(g); i++) {
        pst_node *n = pst_graph_node(g, i);
        if ((n->op->flags & PST_OP_VARIABLE) && !pst_strmap_has(t->var_nodes, n->name))
            pst_strmap_put(t->var_nodes, n->name, n);
    }
    Pstrain__RegisterGraphResponse resp = PSTRAIN__REGISTER_GRAPH_RESPONSE__INIT;
    resp.handle = p->handle;
    pst_msg m;
    PACK(register_graph_response, &resp, m);
    pthread_mutex_unlock(&t->mu);
    logf_(t, "registered partition %s from %s (%d nodes)", resp.handle, req->client,
          pst_graph_num_nodes(g));
    pstrain__register_graph_request__free_unpacked(req, NULL);
    reply_packed(t, call, &m);
}

static void handle_deregister(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    UNPACK_OR_REPLY(DeregisterGraphRequest, deregister_graph_request, "DeregisterGraph", req);
    pthread_mutex_lock(&t->mu);
    part *p = find_part(t, req->handle);
    /* The graph stays (its variable nodes describe the store); the session goes when no step
     * runs it any more, at task end. */
    if (p) p->active = 0;
    pthread_mutex_unlock(&t->mu);
    if (!p) pst_status_set(&st, PST_E_NOT_FOUND, "no partition '%s' on %s", req->handle, t->device);
    pstrain__deregister_graph_request__free_unpacked(req, NULL);
    if (st.code) {
        reply_error(t, call, &st);
    } else {
        reply_packed(t, call, NULL);
    }
}

typedef struct run_job {
    pst_task *t;
    pst_server_call *call;
    pst_session *s;
    pst_node **targets;
    int n_targets;
    int64_t step;
    char handle[32];
} run_job;

static void *run_thread(void *arg) {
    run_job *j = arg;
    pst_task *t = j->t;
    pst_status st = {0};
    int rc = pst_session_run_step(j->s, j->step, NULL, 0, NULL, 0, j->targets, j->n_targets, NULL,
                                  &st);
    pst_status fst = {0};
    if (flush_step(t, j->step, &fst) < 0 && rc == 0) {
        rc = fst.code;
        st = fst;
    }
    pthread_mutex_lock(&t->mu);
    part *p = find_part(t, j->handle);
    if (p && rc == 0) p->steps++;
    pthread_mutex_unlock(&t->mu);
    if (rc < 0) {
        pst_status e = {0};
        pst_status_set(&e, st.code, "%s step %lld: %s", t->device, (long long)j->step, st.msg);
        reply_error(t, j->call, &e);
    } else {
        Pstrain__RunGraphResponse resp = PSTRAIN__RUN_GRAPH_RESPONSE__INIT;
        pst_msg m;
        PACK(run_graph_response, &resp, m);
        reply_packed(t, j->call, &m);
    }
    pthread_mutex_lock(&t->mu);
    if (--t->running == 0) pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    free(j);
    return NULL;
}

static void handle_run(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    UNPACK_OR_REPLY(RunGraphRequest, run_graph_request, "RunGraph", req);
    run_job *j = calloc(1, sizeof *j);
    j->t = t;
    j->call = call;
    j->step = req->step_id;
    snprintf(j->handle, sizeof j->handle, "%s", req->handle);
    pthread_mutex_lock(&t->mu);
    part *p = find_part(t, req->handle);
    if (p) {
        j->s = p->s;
        j->targets = p->targets;
        j->n_targets = p->n_targets;
        t->running++;
    } else if (t->shutdown) {
        pst_status_set(&st, PST_E_CANCELLED, "%s is shutting down", t->device);
    }
    pthread_mutex_unlock(&t->mu);
    if (!p && !st.code)
        pst_status_set(&st, PST_E_NOT_FOUND, "no partition '%s' on %s", req->handle, t->device);
    pstrain__run_graph_request__free_unpacked(req, NULL);
    if (st.code) {
        free(j);
        reply_error(t, call, &st);
        return;
    }
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &at, run_thread, j) != 0) {
        pthread_mutex_lock(&t->mu);
        t->running--;
        pthread_mutex_unlock(&t->mu);
        free(j);
        pst_status_set(&st, PST_E_EXHAUSTED, "%s: cannot start a thread", t->device);
        reply_error(t, call, &st);
    }
    pthread_attr_destroy(&at);
}

/* Completes a tensor pushed in chunks: a rendezvous key, or "var:NAME" to assign a variable. */
static int complete_tensor(pst_task *t, const char *key, pst_tensor *v, pst_status *st) {
    if (strncmp(key, "var:", 4) == 0) {
        pst_var *var = pst_var_store_get_or_create(t->vars, key + 4, v->dtype, v->shape, st);
        return var ? pst_var_assign_take(var, v, 1, st) : st->code;
    }
    return pst_rendezvous_send(t->local, key, v, st);
}

static void handle_push(pst_task *t, pst_server_call *call, const pst_iov *v, int n) {
    pst_status st = {0};
    pst_chunk_cursor c;
    uint64_t dl;
    Pstrain__TensorChunk *h = pst_chunk_parse(v, n, &c, &dl, &st);
    pst_shape shape;
    if (!h || pst_chunk_check(h, dl, &shape, &st) < 0) goto done;
    pthread_mutex_lock(&t->mu);
    partial *pa = pst_strmap_get(t->partials, h->key);
    if (!pa) {
        pa = calloc(1, sizeof *pa);
        pa->t = pst_tensor_new((pst_dtype)h->dtype, shape, &st);
        if (!pa->t) {
            free(pa);
            pthread_mutex_unlock(&t->mu);
            goto done;
        }
        pst_strmap_put(t->partials, h->key, pa);
    }
    pst_tensor *dst = pst_tensor_ref(pa->t);
    pthread_mutex_unlock(&t->mu);
    if ((uint64_t)dst->nbytes != h->total_bytes) {
        pst_status_set(&st, PST_E_INVALID, "tensor '%s': chunks disagree on its size", h->key);
    } else {
        pst_chunk_take(&c, (uint8_t *)dst->data + h->offset, (size_t)dl);
    }
    pst_tensor_unref(dst);
    pthread_mutex_lock(&t->mu);
    t->chunks_received++;
    t->bytes_received += (int64_t)dl;
    pst_tensor *complete = NULL;
    pa->received += dl;
    if (pa->received >= h->total_bytes) {
        pst_strmap_del(t->partials, h->key);
        complete = pa->t;
        free(pa);
    }
    pthread_mutex_unlock(&t->mu);
    if (complete && !st.code) complete_tensor(t, h->key, complete, &st);
    if (complete) pst_tensor_unref(complete);
done:
    if (h) pst_chunk_header_free(h);
    if (st.code) {
        reply_error(t, call, &st);
    } else {
        reply_packed(t, call, NULL);
    }
}

static void handle_fetch(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    UNPACK_OR_REPLY(FetchVariableRequest, fetch_variable_request, "FetchVariable", req);
    pst_var *v = pst_var_store_find(t->vars, req->name);
    pst_tensor *val = v ? pst_var_read(v) : NULL;
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
        } else {
            pst_msg m = pst_chunk_msg(req->name, val, off, l);
            pthread_mutex_lock(&t->mu);
            t->bytes_sent += (int64_t)l;
            pthread_mutex_unlock(&t->mu);
            reply_packed(t, call, &m);
        }
        pst_tensor_unref(val);
    }
    pstrain__fetch_variable_request__free_unpacked(req, NULL);
    if (st.code) reply_error(t, call, &st);
}

static void handle_save(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    Pstrain__SaveRequest *req = pstrain__save_request__unpack(NULL, len, buf);
    if (!req) {
        pst_status_set(&st, PST_E_INVALID, "Save: malformed request");
    } else {
        pst_task_save_local(t, req->prefix, req->shard, req->num_shards, &st);
        pstrain__save_request__free_unpacked(req, NULL);
    }
    if (st.code) {
        reply_error(t, call, &st);
    } else {
        reply_packed(t, call, NULL);
    }
}

static void handle_restore(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    Pstrain__RestoreRequest *req = pstrain__restore_request__unpack(NULL, len, buf);
    if (!req) {
        pst_status_set(&st, PST_E_INVALID, "Restore: malformed request");
    } else {
        pst_task_restore_local(t, req->prefix, NULL, &st);
        pstrain__restore_request__free_unpacked(req, NULL);
    }
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
    while (pst_strmap_next(t->var_nodes, &it, &name, &v)) names[k++] = (char *)name;
    resp.n_restored = k;
    resp.restored = names;
    pst_msg m;
    PACK(restore_response, &resp, m);
    pthread_mutex_unlock(&t->mu);
    free(names);
    reply_packed(t, call, &m);
}

static void handle_status(pst_task *t, pst_server_call *call) {
    Pstrain__TaskStatus s = PSTRAIN__TASK_STATUS__INIT;
    s.task = t->device;
    s.address = t->addr;
    s.uptime_s = pst_clock_now() - t->start;
    pst_var **vars = NULL;
    int nv = pst_var_store_list(t->vars, &vars);
    Pstrain__VariableStatus *vs = calloc((size_t)nv + 1, sizeof *vs);
    Pstrain__VariableStatus **vp = calloc((size_t)nv + 1, sizeof *vp);
    int64_t(*shapes)[PST_MAX_RANK] = calloc((size_t)nv + 1, sizeof *shapes);
    char(*slices)[512] = calloc((size_t)nv + 1, sizeof *slices);
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < nv; i++) {
        pst_var *v = vars[i];
        pstrain__variable_status__init(&vs[i]);
        vs[i].name = v->name;
        vs[i].dtype = v->dtype;
        pthread_mutex_lock(&v->mu);
        pst_shape sh = v->value ? v->value->shape : v->shape;
        vs[i].initialized = v->value != NULL;
        vs[i].updates = v->n_updates;
        pthread_mutex_unlock(&v->mu);
        pthread_mutex_lock(&v->sync_mu);
        vs[i].stale = v->n_stale;
        pthread_mutex_unlock(&v->sync_mu);
        for (int d = 0; d < sh.rank; d++) shapes[i][d] = sh.dims[d];
        vs[i].n_shape = (size_t)sh.rank;
        vs[i].shape = shapes[i];
        int64_t el = 1;
        for (int d = 0; d < sh.rank; d++) el *= sh.dims[d] < 0 ? 0 : sh.dims[d];
        vs[i].bytes = el * (int64_t)pst_dtype_size(v->dtype);
        char tn[1024];
        snprintf(tn, sizeof tn, "%s/read:0", v->name);
        vs[i].pulls = (intptr_t)pst_strmap_get(t->pulls, tn);
        snprintf(tn, sizeof tn, "%s:0", v->name);
        vs[i].pulls += (intptr_t)pst_strmap_get(t->pulls, tn);
        pst_node *n = pst_strmap_get(t->var_nodes, v->name);
        const char *full = n ? pst_node_attr_s(n, "_save_slice_full_name", NULL) : NULL;
        vs[i].full_name = full ? (char *)full : "";
        vs[i].slice_spec = "";
        if (full) {
            const pst_attr *off = pst_node_attr(n, "_save_slice_var_offset");
            const pst_attr *len = pst_node_attr(n, "_save_slice_var_shape");
            size_t o = 0;
            for (int d = 0; off && len && d < off->n && d < len->n && o < 400; d++)
                o += (size_t)snprintf(slices[i] + o, sizeof slices[i] - o, "%s%lld,%lld",
                                      d ? ":" : "", (long long)off->list.i[d],
                                      (long long)len->list.i[d]);
            vs[i].slice_spec = slices[i];
        }
        vp[i] = &vs[i];
    }
    s.n_variables = (size_t)nv;
    s.variables = vp;
    int np = t->n_parts;
    Pstrain__PartitionStatus *ps = calloc((size_t)np + 1, sizeof *ps);
    Pstrain__PartitionStatus **pp = calloc((size_t)np + 1, sizeof *pp);
    int k = 0;
    for (int i = 0; i < np; i++) {
        part *p = &t->parts[i];
        if (!p->active) continue;
        pstrain__partition_status__init(&ps[k]);
        ps[k].handle = p->handle;
        ps[k].client = p->client;
        ps[k].steps = p->steps;
        int nn = pst_graph_num_nodes(p->g), m = 0;
        char **names = calloc((size_t)nn + 1, sizeof *names);
        for (int j = 0; j < nn; j++) {
            pst_node *nd = pst_graph_node(p->g, j);
            const char *op = nd->op->name;
            if (op[0] == '_' || strcmp(op, "Const") == 0 || strcmp(op, "Identity") == 0 ||
                strcmp(op, "NoOp") == 0)
                continue;
            size_t l = strlen(nd->name) + strlen(op) + 4;
            names[m] = malloc(l);
            snprintf(names[m], l, "%s (%s)", nd->name, op);
            m++;
        }
        ps[k].n_nodes = (size_t)m;
        ps[k].nodes = names;
        pp[k] = &ps[k];
        k++;
    }
    s.n_partitions = (size_t)k;
    s.partitions = pp;
    s.chunks_received = t->chunks_received;
    s.bytes_received = t->bytes_received;
    s.bytes_sent = t->bytes_sent;
    pst_msg m;
    PACK(task_status, &s, m);
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < k; i++) {
        for (size_t j = 0; j < ps[i].n_nodes; j++) free(ps[i].nodes[j]);
        free(ps[i].nodes);
    }
    free(ps);
    free(pp);
    free(vs);
    free(vp);
    free(shapes);
    free(slices);
    free(vars);
    reply_packed(t, call, &m);
}

static int expected_workers(pst_task *t) {
    if (t->o.expected_workers > 0) return t->o.expected_workers;
    return pst_cluster_num_tasks(t->o.cluster, "worker");
}

static int done_already(pst_task *t, const char *from) {
    for (int i = 0; i < t->n_done; i++)
        if (strcmp(t->done_from[i], from) == 0) return 1;
    return 0;
}

/* Counts `from` as finished (once); ends the service when every worker has. */
static void mark_done(pst_task *t, const char *from, int failed, const char *reason, int now) {
    pthread_mutex_lock(&t->mu);
    int first = !done_already(t, from);
    if (first) {
        t->done_from = realloc(t->done_from, (size_t)(t->n_done + 1) * sizeof *t->done_from);
        t->done_from[t->n_done++] = strdup(from);
    }
    if (failed && !t->shutdown_why.code)
        pst_status_set(&t->shutdown_why, PST_E_ABORTED, "%s failed: %s", from, reason);
    int done = now || t->n_done >= expected_workers(t);
    int n_done = t->n_done;
    pthread_mutex_unlock(&t->mu);
    logf_(t, "%s is done%s%s (%d of %d workers)", from, failed ? ", failed: " : "",
          failed ? reason : "", n_done, expected_workers(t));
    if (failed && first) {
        /* synchronous replicas waiting for its gradients stop waiting */
        char why[PST_STATUS_MSG_MAX + PST_DEVICE_MAX + 16];
        snprintf(why, sizeof why, "%s failed: %s", from, reason);
        pst_var_store_replica_lost(t->vars, why);
    }
    if (done) pst_task_request_shutdown(t, NULL);
}

/* Heartbeats: every task that registered partitions here and has not said it is done is asked
 * for its status; one silent for peer_timeout_ms counts as a failed worker (it crashed or its
 * machine is gone), so a PS never waits forever for a worker that will not come back. */
static void *monitor_thread(void *arg) {
    pst_task *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->shutdown) {
        struct timespec dl;
        pst_clock_deadline_in(&dl, t->o.heartbeat_ms);
        pthread_cond_timedwait(&t->cv, &t->mu, &dl);
        if (t->shutdown) break;
        /* the clients to ping, copied out of the lock */
        int n = 0;
        char(*clients)[PST_DEVICE_MAX] = calloc((size_t)t->n_parts + 1, sizeof *clients);
        for (int i = 0; i < t->n_parts; i++) {
            const char *cl = t->parts[i].client;
            int dup = 0;
            for (int k = 0; k < n; k++) dup |= strcmp(clients[k], cl) == 0;
            if (!dup && !done_already(t, cl) && !same_task(t, cl))
                snprintf(clients[n++], PST_DEVICE_MAX, "%s", cl);
        }
        pthread_mutex_unlock(&t->mu);
        for (int k = 0; k < n; k++) {
            pst_status st = {0};
            const char *addr = address_of(t, clients[k], &st);
            double now = pst_clock_now();
            int ok = addr && pst_transport_call_sync(t->tr, addr, PST_TASK_STATUS, NULL,
                                                     t->o.heartbeat_ms + 1000, 0, NULL, NULL,
                                                     &st) == 0;
            pthread_mutex_lock(&t->mu);
            double *seen = pst_strmap_get(t->last_seen, clients[k]);
            if (!seen) {
                seen = malloc(sizeof *seen);
                *seen = now;
                pst_strmap_put(t->last_seen, clients[k], seen);
            }
            if (ok) *seen = now;
            double silent = now - *seen;
            pthread_mutex_unlock(&t->mu);
            if (!ok && silent * 1000 >= (double)t->o.peer_timeout_ms) {
                char why[PST_STATUS_MSG_MAX + 128];
                snprintf(why, sizeof why, "no answer from %s for %.0f s (%s)",
                         addr ? addr : clients[k], silent, st.msg);
                mark_done(t, clients[k], 1, why, 0);
            }
        }
        free(clients);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void handle_shutdown(pst_task *t, pst_server_call *call, const uint8_t *buf, size_t len) {
    pst_status st = {0};
    UNPACK_OR_REPLY(ShutdownRequest, shutdown_request, "Shutdown", req);
    reply_packed(t, call, NULL);
    mark_done(t, req->from, req->failed, req->reason, req->now);
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
        pst_status_set(&st, PST_E_UNIMPLEMENTED, "method %d", method);
        reply_error(t, call, &st);
    }
    }
    free(buf);
}

/* ---- lifecycle ---- */

pst_task *pst_task_new(const pst_task_opts *o, pst_status *st) {
    if (!o || !o->cluster || !o->job) {
        pst_status_set(st, PST_E_INVALID, "a task needs a cluster, a job and an index");
        return NULL;
    }
    if (pst_cluster_check_task(o->cluster, o->job, o->index, st) < 0) return NULL;
    pst_task *t = calloc(1, sizeof *t);
    t->o = *o;
    if (t->o.connect_timeout_ms <= 0) t->o.connect_timeout_ms = 30000;
    if (t->o.recv_timeout_ms <= 0) t->o.recv_timeout_ms = 60000;
    if (t->o.chunk_bytes <= 0) t->o.chunk_bytes = 4 << 20;
    if (t->o.peer_timeout_ms <= 0) t->o.peer_timeout_ms = t->o.connect_timeout_ms;
    if (t->o.heartbeat_ms <= 0) t->o.heartbeat_ms = 1000;
    pst_cluster_task_device(o->cluster, o->job, o->index, t->device, sizeof t->device);
    pst_device_parse(t->device, &t->dn, st);
    snprintf(t->addr, sizeof t->addr, "%s", pst_cluster_address(o->cluster, o->job, o->index));
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->vars = pst_var_store_new();
    t->local = pst_rendezvous_local_new();
    t->route.base.ops = &route_ops;
    t->route.task = t;
    t->var_nodes = pst_strmap_new();
    t->partials = pst_strmap_new();
    t->pulls = pst_strmap_new();
    t->pushes = pst_strmap_new();
    t->last_seen = pst_strmap_new();
    t->start = pst_clock_now();
    atomic_init(&t->next_step, ((long long)(o->index + 1) << 40) +
                                   (strcmp(o->job, "worker") == 0 ? 0 : (1LL << 50)));
    int inproc = o->transport && strcmp(o->transport, "inproc") == 0;
    if (inproc) {
        t->tr = pst_transport_inproc_new(pst_task_methods, PST_TASK_METHOD_COUNT);
    } else {
        t->tr = pst_transport_grpc_new(pst_task_methods, PST_TASK_METHOD_COUNT, NULL, st);
    }
    if (!t->tr) {
        pst_task_free(t);
        return NULL;
    }
    /* Listen on every interface at the cluster's port (the cluster's host may be a name that
     * only others resolve); in-process servers take the address itself. */
    char listen[300], bound[300];
    const char *colon = strrchr(t->addr, ':');
    if (inproc || !colon) {
        snprintf(listen, sizeof listen, "%s", t->addr);
    } else {
        snprintf(listen, sizeof listen, "0.0.0.0%s", colon);
    }
    if (pst_transport_serve(t->tr, listen, task_handler, t, bound, sizeof bound, st) < 0) {
        pst_status_set(st, st->code, "%s (%s in the cluster)", st->msg, t->device);
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

void pst_task_free(pst_task *t) {
    if (!t) return;
    if (t->local) {
        pst_status why = {0};
        pst_status_set(&why, PST_E_CANCELLED, "%s is shutting down", t->device);
        pst_rendezvous_abort(t->local, &why);
    }
    pthread_mutex_lock(&t->mu);
    t->shutdown = 1;
    pthread_cond_broadcast(&t->cv);
    while (t->running > 0) pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    if (t->monitor_started) pthread_join(t->monitor, NULL);
    if (t->tr) pst_transport_free(t->tr);
    for (int i = 0; i < t->n_parts; i++) {
        pst_session_free(t->parts[i].s);
        pst_graph_free(t->parts[i].g);
        free(t->parts[i].targets);
    }
    free(t->parts);
    if (t->partials) {
        size_t it = 0;
        const char *k;
        void *v;
        while (pst_strmap_next(t->partials, &it, &k, &v)) {
            partial *pa = v;
            pst_tensor_unref(pa->t);
            free(pa);
        }
        pst_strmap_free(t->partials);
    }
    if (t->last_seen) {
        size_t it = 0;
        const char *k;
        void *v;
        while (pst_strmap_next(t->last_seen, &it, &k, &v)) free(v);
        pst_strmap_free(t->last_seen);
    }
    pst_strmap_free(t->var_nodes);
    pst_strmap_free(t->pulls);
    if (t->pushes) {
        size_t it = 0;
        const char *k;
        void *v;
        while (pst_strmap_next(t->pushes, &it, &k, &v)) pst_call_group_free(v);
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

/* ---- client calls ---- */

static int call_packed(pst_task *t, const char *device, int method, pst_msg *req, int64_t timeout,
                       uint8_t **resp, size_t *len, pst_status *st) {
    const char *addr = address_of(t, device, st);
    if (!addr) {
        if (req && req->release) req->release(req->owner);
        return st->code;
    }
    return pst_transport_call_sync(t->tr, addr, method, req, timeout, PST_CALL_WAIT_FOR_READY, resp,
                                   len, st);
}

int pst_task_push_variable(pst_task *t, const char *device, const char *name, pst_tensor *value,
                           pst_status *st) {
    return pst_task_push_variables(t, device, 1, &name, &value, st);
}

int pst_task_push_variables(pst_task *t, const char *device, int n, const char *const *names,
                            pst_tensor *const *values, pst_status *st) {
    pst_call_group *g = pst_call_group_new();
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char key[1100];
        snprintf(key, sizeof key, "var:%s", names[i]);
        rc = push_async(t, g, device, key, values[i], st);
    }
    int wrc = pst_call_group_wait(g, rc < 0 ? NULL : st);
    pst_call_group_free(g);
    return rc < 0 ? rc : wrc;
}

/* One variable being pulled: the first chunk tells its dtype and shape. */
typedef struct pull_one {
    pst_tensor *t;
    pthread_mutex_t *mu;
    pst_status *err;
} pull_one;

static void pull_chunk(void *arg, const pst_iov *v, int n) {
    pull_one *p = arg;
    pst_status st = {0};
    pst_chunk_cursor c;
    uint64_t dl;
    pst_shape shape;
    Pstrain__TensorChunk *h = pst_chunk_parse(v, n, &c, &dl, &st);
    if (h && pst_chunk_check(h, dl, &shape, &st) == 0) {
        pthread_mutex_lock(p->mu);
        if (!p->t) p->t = pst_tensor_new((pst_dtype)h->dtype, shape, &st);
        pst_tensor *dst = p->t ? pst_tensor_ref(p->t) : NULL;
        pthread_mutex_unlock(p->mu);
        if (dst && (uint64_t)dst->nbytes != h->total_bytes) {
            pst_status_set(&st, PST_E_ABORTED, "variable '%s' changed size while being read",
                           h->key);
        } else if (dst) {
            pst_chunk_take(&c, (uint8_t *)dst->data + h->offset, (size_t)dl);
        }
        pst_tensor_unref(dst);
    }
    if (h) pst_chunk_header_free(h);
    if (st.code) {
        pthread_mutex_lock(p->mu);
        pst_status_set(p->err, st.code, "%s", st.msg);
        pthread_mutex_unlock(p->mu);
    }
}

static pst_msg fetch_req(const char *name, uint64_t off, uint64_t len) {
    Pstrain__FetchVariableRequest r = PSTRAIN__FETCH_VARIABLE_REQUEST__INIT;
    r.name = (char *)name;
    r.offset = off;
    r.length = len;
    pst_msg m;
    PACK(fetch_variable_request, &r, m);
    return m;
}

int pst_task_pull_variables(pst_task *t, const char *device, int n, const char *const *names,
                            pst_tensor **out, pst_status *st) {
    const char *addr = address_of(t, device, st);
    if (!addr) return st->code;
    uint64_t chunk = (uint64_t)t->o.chunk_bytes;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pst_status err = {0};
    pull_one *p = calloc((size_t)n + 1, sizeof *p);
    for (int i = 0; i < n; i++) p[i] = (pull_one){.mu = &mu, .err = &err};
    /* Every variable's first chunk tells its size; then the rest travel concurrently. */
    pst_call_group *g = pst_call_group_new();
    for (int i = 0; i < n; i++) {
        pst_msg m = fetch_req(names[i], 0, chunk);
        pst_call_group_start(g, t->tr, addr, PST_TASK_FETCH_VAR, &m, t->o.connect_timeout_ms,
                             PST_CALL_WAIT_FOR_READY, pull_chunk, &p[i]);
    }
    int rc = pst_call_group_wait(g, st);
    if (rc == 0 && err.code) rc = pst_status_set(st, err.code, "%s", err.msg);
    for (int i = 0; i < n && rc == 0; i++) {
        uint64_t total = (uint64_t)p[i].t->nbytes;
        for (uint64_t off = chunk; off < total; off += chunk) {
            uint64_t l = total - off < chunk ? total - off : chunk;
            pst_msg q = fetch_req(names[i], off, l);
            pst_call_group_start(g, t->tr, addr, PST_TASK_FETCH_VAR, &q, t->o.connect_timeout_ms,
                                 0, pull_chunk, &p[i]);
        }
    }
    if (rc == 0) rc = pst_call_group_wait(g, st);
    if (rc == 0 && err.code) rc = pst_status_set(st, err.code, "%s", err.msg);
    pst_call_group_free(g);
    for (int i = 0; i < n; i++) {
        if (rc == 0) {
            out[i] = p[i].t;
        } else {
            pst_tensor_unref(p[i].t);
            out[i] = NULL;
        }
    }
    free(p);
    pthread_mutex_destroy(&mu);
    return rc;
}

pst_tensor *pst_task_pull_variable(pst_task *t, const char *device, const char *name,
                                   pst_status *st) {
    pst_tensor *out = NULL;
    if (pst_task_pull_variables(t, device, 1, &name, &out, st) < 0) return NULL;
    return out;
}

int pst_task_say_done(pst_task *t, const char *device, int failed, const char *reason,
                      pst_status *st) {
    Pstrain__ShutdownRequest r = PSTRAIN__SHUTDOWN_REQUEST__INIT;
    r.from = t->device;
    r.failed = failed != 0;
    r.reason = (char *)(reason ? reason : "");
    pst_msg m;
    PACK(shutdown_request, &r, m);
    const char *addr = address_of(t, device, st);
    if (!addr) {
        free(m.owner);
        return st->code;
    }
    /* No wait-for-ready: a task that is gone already is fine. */
    return pst_transport_call_sync(t->tr, addr, PST_TASK_SHUTDOWN, &m, 5000, 0, NULL, NULL, st);
}

/* Status of a task that should be up (readiness polls wait for it to come up); with
 * `wait` 0 a task that is gone fails at once. */
static Pstrain__TaskStatus *get_status(pst_task *t, const char *device, int wait, pst_status *st) {
    uint8_t *resp = NULL;
    size_t len = 0;
    const char *addr = address_of(t, device, st);
    if (!addr) return NULL;
    if (pst_transport_call_sync(t->tr, addr, PST_TASK_STATUS, NULL,
                                wait ? t->o.connect_timeout_ms : 5000,
                                wait ? PST_CALL_WAIT_FOR_READY : 0, &resp, &len, st) < 0)
        return NULL;
    Pstrain__TaskStatus *s = pstrain__task_status__unpack(NULL, len, resp);
    free(resp);
    if (!s) pst_status_set(st, PST_E_DATA_LOSS, "%s sent a malformed status", device);
    return s;
}

int pst_task_list_variables(pst_task *t, const char *device, char ***names, int **initialized,
                            int64_t **bytes, pst_status *st) {
    Pstrain__TaskStatus *s = get_status(t, device, 1, st);
    if (!s) return st->code;
    int n = (int)s->n_variables;
    *names = calloc((size_t)n + 1, sizeof **names);
    if (initialized) *initialized = calloc((size_t)n + 1, sizeof **initialized);
    if (bytes) *bytes = calloc((size_t)n + 1, sizeof **bytes);
    for (int i = 0; i < n; i++) {
        (*names)[i] = strdup(s->variables[i]->name);
        if (initialized) (*initialized)[i] = s->variables[i]->initialized;
        if (bytes) (*bytes)[i] = s->variables[i]->bytes;
    }
    pstrain__task_status__free_unpacked(s, NULL);
    return n;
}

int pst_task_query_report(pst_transport *tr, const char *addr, int64_t timeout_ms,
                          pst_task_report *out, pst_status *st) {
    memset(out, 0, sizeof *out);
    uint8_t *resp = NULL;
    size_t len = 0;
    if (pst_transport_call_sync(tr, addr, PST_TASK_STATUS, NULL, timeout_ms, 0, &resp, &len, st) < 0)
        return st->code;
    Pstrain__TaskStatus *s = pstrain__task_status__unpack(NULL, len, resp);
    free(resp);
    if (!s) return pst_status_set(st, PST_E_DATA_LOSS, "task %s sent a malformed status", addr);
    out->task = strdup(s->task);
    out->address = strdup(s->address);
    out->uptime_s = s->uptime_s;
    out->n_vars = (int)s->n_variables;
    out->vars = calloc(s->n_variables + 1, sizeof *out->vars);
    for (size_t i = 0; i < s->n_variables; i++) {
        Pstrain__VariableStatus *v = s->variables[i];
        pst_var_report *r = &out->vars[i];
        r->name = strdup(v->name);
        r->full_name = strdup(v->full_name);
        r->slice = strdup(v->slice_spec);
        r->dtype = v->dtype;
        r->initialized = v->initialized;
        r->shape.rank = v->n_shape > PST_MAX_RANK ? PST_MAX_RANK : (int)v->n_shape;
        for (int d = 0; d < r->shape.rank; d++) r->shape.dims[d] = v->shape[d];
        r->bytes = v->bytes;
        r->pulls = v->pulls;
        r->updates = v->updates;
        r->stale = v->stale;
    }
    out->n_partitions = (int)s->n_partitions;
    out->bytes_received = s->bytes_received;
    out->bytes_sent = s->bytes_sent;
    out->chunks_received = s->chunks_received;
    pstrain__task_status__free_unpacked(s, NULL);
    return 0;
}

void pst_task_report_destroy(pst_task_report *r) {
    for (int i = 0; i < r->n_vars; i++) {
        free(r->vars[i].name);
        free(r->vars[i].full_name);
        free(r->vars[i].slice);
    }
    free(r->vars);
    free(r->task);
    free(r->address);
    memset(r, 0, sizeof *r);
}

char *pst_task_status_text(pst_task *t, const char *device, pst_status *st) {
    Pstrain__TaskStatus *s = get_status(t, device, 0, st);
    if (!s) return NULL;
    size_t cap = 4096, off = 0;
    char *out = malloc(cap);
#define OUT(...)                                                                               \
    do {                                                                                       \
        int k_ = snprintf(NULL, 0, __VA_ARGS__);                                               \
        while (off + (size_t)k_ + 1 > cap) out = realloc(out, cap *= 2);                       \
        off += (size_t)snprintf(out + off, cap - off, __VA_ARGS__);                            \
    } while (0)
    char a[32], b[32], c[32];
    int64_t total = 0;
    for (size_t i = 0; i < s->n_variables; i++) total += s->variables[i]->bytes;
    OUT("%s at %s: up %.1f s, %zu variables (%s), received %s in %lld chunks, sent %s\n", s->task,
        s->address, s->uptime_s, s->n_variables, pst_format_bytes((double)total, a, sizeof a),
        pst_format_bytes((double)s->bytes_received, b, sizeof b), (long long)s->chunks_received,
        pst_format_bytes((double)s->bytes_sent, c, sizeof c));
    for (size_t i = 0; i < s->n_variables; i++) {
        Pstrain__VariableStatus *v = s->variables[i];
        char shape[128] = "[";
        size_t so = 1;
        for (size_t d = 0; d < v->n_shape; d++)
            so += (size_t)snprintf(shape + so, sizeof shape - so, "%s%lld", d ? "," : "",
                                   (long long)v->shape[d]);
        snprintf(shape + so, sizeof shape - so, "]");
        OUT("  var %-40s %-8s %-16s %10lld bytes  pulls %lld  updates %lld", v->name,
            pst_dtype_name((pst_dtype)v->dtype), shape, (long long)v->bytes, (long long)v->pulls,
            (long long)v->updates);
        if (v->stale) OUT("  stale gradients dropped %lld", (long long)v->stale);
        if (!v->initialized) OUT("  (uninitialized)");
        if (v->full_name[0]) OUT("  slice of %s", v->full_name);
        OUT("\n");
        if (v->slice_spec[0]) OUT("      slice %s\n", v->slice_spec);
    }
    for (size_t i = 0; i < s->n_partitions; i++) {
        Pstrain__PartitionStatus *p = s->partitions[i];
        OUT("  partition %s from %s: %lld steps, %zu ops\n", p->handle, p->client,
            (long long)p->steps, p->n_nodes);
        for (size_t j = 0; j < p->n_nodes; j++) OUT("      %s\n", p->nodes[j]);
    }
#undef OUT
    pstrain__task_status__free_unpacked(s, NULL);
    return out;
}

int pst_task_save_remote(pst_task *t, const char *device, const char *prefix, int shard,
                         int num_shards, pst_status *st) {
    Pstrain__SaveRequest r = PSTRAIN__SAVE_REQUEST__INIT;
    r.prefix = (char *)prefix;
    r.shard = shard;
    r.num_shards = num_shards;
    pst_msg m;
    PACK(save_request, &r, m);
    return call_packed(t, device, PST_TASK_SAVE, &m, STEP_CALL_MS, NULL, NULL, st);
}

int pst_task_restore_remote(pst_task *t, const char *device, const char *prefix, int *n_restored,
                            pst_status *st) {
    Pstrain__RestoreRequest r = PSTRAIN__RESTORE_REQUEST__INIT;
    r.prefix = (char *)prefix;
    pst_msg m;
    PACK(restore_request, &r, m);
    uint8_t *resp = NULL;
    size_t len = 0;
    int rc = call_packed(t, device, PST_TASK_RESTORE, &m, STEP_CALL_MS, &resp, &len, st);
    if (rc == 0 && n_restored) {
        Pstrain__RestoreResponse *rr = pstrain__restore_response__unpack(NULL, len, resp);
        *n_restored = rr ? (int)rr->n_restored : 0;
        if (rr) pstrain__restore_response__free_unpacked(rr, NULL);
    }
    free(resp);
    return rc;
}

/* The variable nodes registered partitions described (save/restore cover them); with
 * initialized_only, just those whose variable has a value here. Caller frees. */
static pst_output *described_vars(pst_task *t, int initialized_only, int *n) {
    pthread_mutex_lock(&t->mu);
    pst_output *outs = calloc(pst_strmap_size(t->var_nodes) + 1, sizeof *outs);
    int k = 0;
    size_t it = 0;
    const char *name;
    void *v;
    while (pst_strmap_next(t->var_nodes, &it, &name, &v)) {
        pst_var *var = initialized_only ? pst_var_store_find(t->vars, name) : NULL;
        if (!initialized_only || (var && pst_var_is_initialized(var))) outs[k++] = pst_out(v, 0);
    }
    pthread_mutex_unlock(&t->mu);
    *n = k;
    return outs;
}

int pst_task_save_local(pst_task *t, const char *prefix, int shard, int num_shards,
                        pst_status *st) {
    (void)shard;
    (void)num_shards;
    int n = 0;
    pst_output *vars = described_vars(t, 1, &n);
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
    pst_output *vars = described_vars(t, 0, &n);
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

/* ---- distributed runs ---- */

struct pst_dist_run {
    pst_task *t;
    pst_graph *g;
    pst_partition_set ps;
    char (*handles)[32];
    pst_session *local;
    pst_partition *mine;
};

pst_dist_run *pst_dist_run_new(pst_task *t, pst_graph *g, int n_fetches, const pst_output *fetches,
                               int n_targets, pst_node *const *targets, pst_status *st) {
    pst_dist_run *r = calloc(1, sizeof *r);
    r->t = t;
    r->g = g;
    if (pst_partition_graph(g, t->device, n_fetches, fetches, n_targets, targets, &r->ps, st) < 0) {
        free(r);
        return NULL;
    }
    r->handles = calloc((size_t)r->ps.n + 1, sizeof *r->handles);
    int rc = 0;
    for (int i = 0; i < r->ps.n && rc == 0; i++) {
        pst_partition *p = &r->ps.parts[i];
        if (i == r->ps.client) continue;
        uint8_t *gd = NULL;
        size_t gl = 0;
        if ((rc = pst_graph_def_export(p->graph, 0, &gd, &gl, st)) < 0) break;
        Pstrain__RegisterGraphRequest req = PSTRAIN__REGISTER_GRAPH_REQUEST__INIT;
        req.graph_def.data = gd;
        req.graph_def.len = gl;
        req.client = t->device;
        char **names = calloc((size_t)p->n_targets + 1, sizeof *names);
        for (int k = 0; k < p->n_targets; k++) names[k] = p->targets[k]->name;
        req.n_targets = (size_t)p->n_targets;
        req.targets = names;
        pst_msg m;
        PACK(register_graph_request, &req, m);
        free(names);
        free(gd);
        uint8_t *resp = NULL;
        size_t len = 0;
        rc = call_packed(t, p->task, PST_TASK_REGISTER, &m, t->o.connect_timeout_ms, &resp, &len,
                         st);
        if (rc == 0) {
            Pstrain__RegisterGraphResponse *rr =
                pstrain__register_graph_response__unpack(NULL, len, resp);
            if (rr) {
                snprintf(r->handles[i], sizeof r->handles[i], "%s", rr->handle);
                pstrain__register_graph_response__free_unpacked(rr, NULL);
            } else {
                rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: malformed RegisterGraph answer",
                                    p->task);
            }
        }
        free(resp);
    }
    if (rc == 0) {
        r->mine = &r->ps.parts[r->ps.client];
        pst_session_opts so = {.vars = t->vars, .exec = &t->route.base};
        r->local = pst_session_new(r->mine->graph, &so, st);
        if (!r->local) rc = st->code;
    }
    if (rc < 0) {
        pst_dist_run_free(r);
        return NULL;
    }
    return r;
}

typedef struct step_ctx {
    pst_task *t;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;
    pst_status err;
} step_ctx;

static void step_done(void *arg, const pst_status *st, const pst_iov *resp, int n) {
    (void)resp;
    (void)n;
    step_ctx *c = arg;
    if (st && st->code) {
        pthread_mutex_lock(&c->mu);
        int first = !c->err.code;
        if (first) c->err = *st;
        pthread_mutex_unlock(&c->mu);
        /* Stop this task's part of the step at once: its _Recvs would wait in vain. */
        if (first) pst_rendezvous_abort(c->t->local, st);
    }
    pthread_mutex_lock(&c->mu);
    if (--c->pending == 0) pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int pst_dist_run_step(pst_dist_run *r, const pst_feed *feeds, int n_feeds, pst_tensor **out,
                      pst_status *st) {
    pst_task *t = r->t;
    int64_t step = atomic_fetch_add(&t->next_step, 1);
    step_ctx c = {.t = t, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    for (int i = 0; i < r->ps.n; i++) {
        if (i == r->ps.client) continue;
        const char *addr = address_of(t, r->ps.parts[i].task, st);
        if (!addr) return st->code;
        Pstrain__RunGraphRequest req = PSTRAIN__RUN_GRAPH_REQUEST__INIT;
        req.handle = r->handles[i];
        req.step_id = step;
        pst_msg m;
        PACK(run_graph_request, &req, m);
        pthread_mutex_lock(&c.mu);
        c.pending++;
        pthread_mutex_unlock(&c.mu);
        pst_transport_call(t->tr, addr, PST_TASK_RUN, &m, STEP_CALL_MS, 0, step_done, &c);
    }
    /* Feeds name g's placeholders; this task's partition has nodes of the same names. */
    pst_feed *lf = calloc((size_t)n_feeds + 1, sizeof *lf);
    int nl = 0;
    for (int i = 0; i < n_feeds; i++) {
        pst_node *n = pst_graph_find(r->mine->graph, feeds[i].output.node->name);
        if (!n) continue;
        lf[nl].output = pst_out(n, feeds[i].output.index);
        lf[nl].value = feeds[i].value;
        nl++;
    }
    pst_status lst = {0};
    int rc = pst_session_run_step(r->local, step, lf, nl, r->mine->fetches, r->mine->n_fetches,
                                  r->mine->targets, r->mine->n_targets, out, &lst);
    free(lf);
    pst_status fst = {0};
    if (flush_step(t, step, &fst) < 0 && rc == 0) {
        rc = fst.code;
        lst = fst;
    }
    pthread_mutex_lock(&c.mu);
    while (c.pending > 0) pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
    if (c.err.code) {
        /* The remote task's error explains the local one (an aborted _Recv). */
        if (out && rc == 0)
            for (int i = 0; i < r->mine->n_fetches; i++) {
                pst_tensor_unref(out[i]);
                out[i] = NULL;
            }
        return pst_status_set(st, c.err.code, "%s", c.err.msg);
    }
    if (rc < 0) return pst_status_set(st, lst.code, "%s", lst.msg);
    return 0;
}

void pst_dist_run_free(pst_dist_run *r) {
    if (!r) return;
    for (int i = 0; i < r->ps.n; i++) {
        if (i == r->ps.client || !r->handles[i][0]) continue;
        Pstrain__DeregisterGraphRequest req = PSTRAIN__DEREGISTER_GRAPH_REQUEST__INIT;
        req.handle = r->handles[i];
        pst_msg m;
        PACK(deregister_graph_request, &req, m);
        const char *addr = pst_cluster_address_of_device(r->t->o.cluster, r->ps.parts[i].task);
        pst_status ignore = {0};
        if (addr)
            pst_transport_call_sync(r->t->tr, addr, PST_TASK_DEREGISTER, &m, 2000, 0, NULL, NULL,
                                    &ignore);
        else
            free(m.owner);
    }
    if (r->local) pst_session_free(r->local);
    pst_partition_set_destroy(&r->ps);
    free(r->handles);
    free(r);
}
