/* task_client: the calls one task makes to another (see task_client.h). */
#include "task_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "device.h"
#include "metagraph.h"
#include "pstrain_task.pb-c.h"
#include "task_wire.h"

/* The status call's deadline for a task that should be up already (no readiness wait). */
#define STATUS_CALL_MS 5000
/* Deregistering and saying done are courtesies at the end: a short deadline. */
#define DEREGISTER_CALL_MS 2000
#define DONE_CALL_MS 5000

/* A blocking call to the task at device with a packed request (released in every case). */
static int call_device(pst_task *t, const char *device, int method, const ProtobufCMessage *req,
                       int64_t timeout_ms, int flags, uint8_t **resp, size_t *len,
                       pst_status *st) {
    char addr[256];
    if (pst_task_peer_address(t, device, addr, sizeof addr, st) < 0) return st->code;
    pst_msg m;
    if (pst_task_wire_pack(req, &m, st) < 0) return st->code;
    return pst_transport_call_sync(pst_task_transport(t), addr, method, &m, timeout_ms, flags,
                                   resp, len, st);
}

/* ---- variables ---- */

int64_t pst_task_client_push_async(pst_task *t, pst_call_group *g, const char *addr,
                                   const char *key, pst_tensor *value, int flags,
                                   pst_status *st) {
    if (pst_dtype_size(value->dtype) == 0)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "tensor '%s': %s tensors cannot be sent",
                              key, pst_dtype_name(value->dtype));
    const pst_task_opts *o = pst_task_options(t);
    uint64_t total = (uint64_t)value->nbytes, chunk = (uint64_t)o->chunk_bytes;
    uint64_t off = 0;
    do {
        uint64_t l = total - off < chunk ? total - off : chunk;
        pst_msg m;
        if (pst_chunk_msg(key, value, off, l, &m, st) < 0) return st->code;
        pst_call_group_start(g, pst_task_transport(t), addr, PST_TASK_PUSH, &m,
                             o->connect_timeout_ms, flags, NULL, NULL);
        off += l;
    } while (off < total);
    return (int64_t)total;
}

int pst_task_client_push_variables(pst_task *t, const char *device, int n,
                                   const char *const *names, pst_tensor *const *values,
                                   pst_status *st) {
    char addr[256];
    if (pst_task_peer_address(t, device, addr, sizeof addr, st) < 0) return st->code;
    pst_call_group *g = pst_call_group_new();
    if (!g) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory pushing to %s", device);
    int rc = 0;
    int64_t sent = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char key[1100];
        snprintf(key, sizeof key, "var:%s", names[i]);
        int64_t k = pst_task_client_push_async(t, g, addr, key, values[i],
                                               PST_CALL_WAIT_FOR_READY, st);
        if (k < 0) rc = (int)k;
        else sent += k;
    }
    int wrc = pst_call_group_wait(g, rc < 0 ? NULL : st);
    pst_call_group_free(g);
    pst_task_note_sent(t, sent);
    return rc < 0 ? rc : wrc;
}

int pst_task_client_push_variable(pst_task *t, const char *device, const char *name,
                                  pst_tensor *value, pst_status *st) {
    return pst_task_client_push_variables(t, device, 1, &name, &value, st);
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
    pst_tensor *whole = NULL;
    if (h && pst_chunk_check(h, dl, &shape, &st) == 0 &&
        (whole = pst_chunk_adopt(&c, h, shape, dl, &st)) != NULL) {
        /* the whole variable in memory the transport handed over: no copy */
        pthread_mutex_lock(p->mu);
        if (!p->t) p->t = whole;
        else pst_status_set(&st, PST_E_ABORTED, "variable '%s' arrived twice", h->key);
        pthread_mutex_unlock(p->mu);
        if (st.code) pst_tensor_unref(whole);
    } else if (h && !st.code) {
        pthread_mutex_lock(p->mu);
        if (!p->t) p->t = pst_tensor_new((pst_dtype)h->dtype, shape, &st);
        pst_tensor *dst = p->t ? pst_tensor_ref(p->t) : NULL;
        pthread_mutex_unlock(p->mu);
        if (dst && (uint64_t)dst->nbytes != h->total_bytes) {
            pst_status_set(&st, PST_E_ABORTED, "variable '%s' changed size while being read",
                           h->key);
        } else if (dst) {
            if (dl > 0) pst_chunk_take(&c, (uint8_t *)dst->data + h->offset, (size_t)dl);
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

/* Starts fetching [off, off + len) of variable name from addr in group g. */
static int fetch_async(pst_task *t, pst_call_group *g, const char *addr, const char *name,
                       uint64_t off, uint64_t len, int flags, pull_one *p, pst_status *st) {
    Pstrain__FetchVariableRequest r = PSTRAIN__FETCH_VARIABLE_REQUEST__INIT;
    r.name = (char *)name;
    r.offset = off;
    r.length = len;
    pst_msg m;
    if (pst_task_wire_pack(&r.base, &m, st) < 0) return st->code;
    pst_call_group_start(g, pst_task_transport(t), addr, PST_TASK_FETCH_VAR, &m,
                         pst_task_options(t)->connect_timeout_ms, flags, pull_chunk, p);
    return 0;
}

int pst_task_client_pull_variables(pst_task *t, const char *device, int n,
                                   const char *const *names, pst_tensor **out, pst_status *st) {
    for (int i = 0; i < n; i++) out[i] = NULL;
    char addr[256];
    if (pst_task_peer_address(t, device, addr, sizeof addr, st) < 0) return st->code;
    uint64_t chunk = (uint64_t)pst_task_options(t)->chunk_bytes;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pst_status err = {0};
    pull_one *p = calloc((size_t)n + 1, sizeof *p);
    pst_call_group *g = pst_call_group_new();
    int rc = 0;
    if (!p || !g) {
        rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory pulling from %s", device);
        goto out;
    }
    for (int i = 0; i < n; i++) p[i] = (pull_one){.mu = &mu, .err = &err};
    /* Every variable's first chunk tells its size; then the rest travel concurrently. */
    for (int i = 0; i < n && rc == 0; i++)
        rc = fetch_async(t, g, addr, names[i], 0, chunk, PST_CALL_WAIT_FOR_READY, &p[i], st);
    int wrc = pst_call_group_wait(g, rc < 0 ? NULL : st);
    if (rc == 0) rc = wrc;
    if (rc == 0 && err.code) rc = pst_status_set(st, err.code, "%s", err.msg);
    for (int i = 0; i < n && rc == 0; i++) {
        uint64_t total = (uint64_t)p[i].t->nbytes;
        for (uint64_t off = chunk; off < total && rc == 0; off += chunk) {
            uint64_t l = total - off < chunk ? total - off : chunk;
            rc = fetch_async(t, g, addr, names[i], off, l, 0, &p[i], st);
        }
    }
    wrc = pst_call_group_wait(g, rc < 0 ? NULL : st);
    if (rc == 0) rc = wrc;
    if (rc == 0 && err.code) rc = pst_status_set(st, err.code, "%s", err.msg);
out:
    pst_call_group_free(g);
    for (int i = 0; p && i < n; i++) {
        if (rc == 0) {
            out[i] = p[i].t;
        } else {
            pst_tensor_unref(p[i].t);
        }
    }
    free(p);
    pthread_mutex_destroy(&mu);
    return rc;
}

pst_tensor *pst_task_client_pull_variable(pst_task *t, const char *device, const char *name,
                                          pst_status *st) {
    pst_tensor *out = NULL;
    if (pst_task_client_pull_variables(t, device, 1, &name, &out, st) < 0) return NULL;
    return out;
}

/* ---- partitions ---- */

int pst_task_client_register(pst_task *t, const char *device, const pst_graph *g, int n_targets,
                             pst_node *const *targets, int n_peers, const pst_task_peer *peers,
                             char *handle, size_t hlen, pst_status *st) {
    uint8_t *gd = NULL, *resp = NULL;
    size_t gl = 0, len = 0;
    char **names = calloc((size_t)n_targets + 1, sizeof *names);
    Pstrain__Peer *pv = calloc((size_t)n_peers + 1, sizeof *pv);
    Pstrain__Peer **pp = calloc((size_t)n_peers + 1, sizeof *pp);
    int rc = 0;
    if (!names || !pv || !pp)
        rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory registering on %s", device);
    if (rc == 0) rc = pst_graph_def_export(g, 0, &gd, &gl, st);
    if (rc == 0) {
        Pstrain__RegisterGraphRequest req = PSTRAIN__REGISTER_GRAPH_REQUEST__INIT;
        req.graph_def.data = gd;
        req.graph_def.len = gl;
        req.client = (char *)pst_task_device(t);
        for (int k = 0; k < n_targets; k++) names[k] = targets[k]->name;
        req.n_targets = (size_t)n_targets;
        req.targets = names;
        for (int k = 0; k < n_peers; k++) {
            pstrain__peer__init(&pv[k]);
            pv[k].device = (char *)peers[k].device;
            pv[k].address = (char *)peers[k].address;
            pp[k] = &pv[k];
        }
        req.n_peers = (size_t)n_peers;
        req.peers = pp;
        rc = call_device(t, device, PST_TASK_REGISTER, &req.base,
                         pst_task_options(t)->connect_timeout_ms, PST_CALL_WAIT_FOR_READY, &resp,
                         &len, st);
    }
    free(names);
    free(pv);
    free(pp);
    free(gd);
    if (rc == 0) {
        Pstrain__RegisterGraphResponse *rr =
            pstrain__register_graph_response__unpack(NULL, len, resp);
        if (rr && rr->handle[0] && strlen(rr->handle) < hlen) {
            snprintf(handle, hlen, "%s", rr->handle);
        } else {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: malformed RegisterGraph answer",
                                device);
        }
        if (rr) pstrain__register_graph_response__free_unpacked(rr, NULL);
    }
    free(resp);
    return rc;
}

void pst_task_client_deregister(pst_task *t, const char *addr, const char *handle) {
    Pstrain__DeregisterGraphRequest req = PSTRAIN__DEREGISTER_GRAPH_REQUEST__INIT;
    req.handle = (char *)handle;
    pst_msg m;
    pst_status ignore = {0};
    if (pst_task_wire_pack(&req.base, &m, &ignore) == 0)
        pst_transport_call_sync(pst_task_transport(t), addr, PST_TASK_DEREGISTER, &m,
                                DEREGISTER_CALL_MS, 0, NULL, NULL, &ignore);
}

int pst_task_client_start_run(pst_task *t, pst_call_group *g, const char *addr,
                              const char *handle, int64_t step_id, pst_status *st) {
    Pstrain__RunGraphRequest req = PSTRAIN__RUN_GRAPH_REQUEST__INIT;
    req.handle = (char *)handle;
    req.step_id = step_id;
    pst_msg m;
    if (pst_task_wire_pack(&req.base, &m, st) < 0) {
        pst_status_prefix(st, "running step %lld on %s: ", (long long)step_id, addr);
        return st->code;
    }
    pst_call_group_start(g, pst_task_transport(t), addr, PST_TASK_RUN, &m,
                         pst_task_options(t)->step_timeout_ms, 0, NULL, NULL);
    return 0;
}

/* ---- the job's end, checkpoints ---- */

int pst_task_client_say_done(pst_task *t, const char *device, int failed, const char *reason,
                             pst_status *st) {
    Pstrain__ShutdownRequest r = PSTRAIN__SHUTDOWN_REQUEST__INIT;
    r.from = (char *)pst_task_device(t);
    r.failed = failed != 0;
    r.reason = (char *)(reason ? reason : "");
    /* No wait-for-ready: a task that is gone already is fine. */
    return call_device(t, device, PST_TASK_SHUTDOWN, &r.base, DONE_CALL_MS, 0, NULL, NULL, st);
}

int pst_task_client_save(pst_task *t, const char *device, const char *prefix, int shard,
                         int num_shards, pst_status *st) {
    Pstrain__SaveRequest r = PSTRAIN__SAVE_REQUEST__INIT;
    r.prefix = (char *)prefix;
    r.shard = shard;
    r.num_shards = num_shards;
    /* No wait-for-ready: the task is up (its partitions were registered); a dead one fails at
     * once instead of after the step timeout. */
    return call_device(t, device, PST_TASK_SAVE, &r.base, pst_task_options(t)->step_timeout_ms, 0,
                       NULL, NULL, st);
}

int pst_task_client_restore(pst_task *t, const char *device, const char *prefix,
                            int *n_restored, pst_status *st) {
    Pstrain__RestoreRequest r = PSTRAIN__RESTORE_REQUEST__INIT;
    r.prefix = (char *)prefix;
    uint8_t *resp = NULL;
    size_t len = 0;
    int rc = call_device(t, device, PST_TASK_RESTORE, &r.base,
                         pst_task_options(t)->step_timeout_ms, 0, &resp, &len, st);
    if (rc == 0 && n_restored) {
        Pstrain__RestoreResponse *rr = pstrain__restore_response__unpack(NULL, len, resp);
        *n_restored = rr ? (int)rr->n_restored : 0;
        if (rr) pstrain__restore_response__free_unpacked(rr, NULL);
    }
    free(resp);
    return rc;
}

/* ---- status ---- */

int pst_task_client_query_report(pst_transport *tr, const char *addr, int64_t timeout_ms,
                                 pst_task_status_report *out, pst_status *st) {
    memset(out, 0, sizeof *out);
    uint8_t *resp = NULL;
    size_t len = 0;
    if (pst_transport_call_sync(tr, addr, PST_TASK_STATUS, NULL, timeout_ms, 0, &resp, &len, st) < 0)
        return st->code;
    int rc = pst_task_status_decode(resp, len, addr, out, st);
    free(resp);
    return rc;
}

int pst_task_client_report(pst_task *t, const char *device, int wait_for_ready,
                           pst_task_status_report *out, pst_status *st) {
    memset(out, 0, sizeof *out);
    char addr[256];
    if (pst_task_peer_address(t, device, addr, sizeof addr, st) < 0) return st->code;
    uint8_t *resp = NULL;
    size_t len = 0;
    int64_t timeout = wait_for_ready ? pst_task_options(t)->connect_timeout_ms : STATUS_CALL_MS;
    if (pst_transport_call_sync(pst_task_transport(t), addr, PST_TASK_STATUS, NULL, timeout,
                                wait_for_ready ? PST_CALL_WAIT_FOR_READY : 0, &resp, &len,
                                st) < 0)
        return st->code;
    int rc = pst_task_status_decode(resp, len, device, out, st);
    free(resp);
    return rc;
}

int pst_task_client_list_variables(pst_task *t, const char *device, char ***names,
                                   int **initialized, int64_t **bytes, pst_status *st) {
    pst_task_status_report r;
    if (pst_task_client_report(t, device, 1, &r, st) < 0) return st->code;
    int n = r.n_vars;
    *names = calloc((size_t)n + 1, sizeof **names);
    int *init = initialized ? calloc((size_t)n + 1, sizeof *init) : NULL;
    int64_t *b = bytes ? calloc((size_t)n + 1, sizeof *b) : NULL;
    int oom = !*names || (initialized && !init) || (bytes && !b);
    for (int i = 0; i < n && !oom; i++) {
        /* the names move from the report to the caller */
        (*names)[i] = r.vars[i].name;
        r.vars[i].name = NULL;
        if (init) init[i] = r.vars[i].initialized;
        if (b) b[i] = r.vars[i].bytes;
    }
    pst_task_status_report_destroy(&r);
    if (oom) {
        free(*names);
        *names = NULL;
        free(init);
        free(b);
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory listing the variables of %s",
                              device);
    }
    if (initialized) *initialized = init;
    if (bytes) *bytes = b;
    return n;
}
