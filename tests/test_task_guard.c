/* What a task refuses, over gRPC on 127.0.0.1 with crafted requests (a member gone wrong, or a
 * stranger holding the token): pushes to variables it does not hold or with another shape,
 * chunks that overlap, pushes past the memory budget, incomplete pushes (dropped after the
 * receive timeout), Shutdown from a non-member or with "now", Save and Restore outside the
 * checkpoint directory, constants that claim more than the graph budget, an attr without its
 * value, and NaN with --check-numerics. After each, the variables are as they were. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chunk.h"
#include "dist_run.h"
#include "pstrain_task.pb-c.h"
#include "security.h"
#include "task_client.h"
#include "task_status.h"
#include "task_wire.h"
#include "testdist.h"
#include "testutil.h"
#include "tf_graph.pb-c.h"
#include "varstore.h"

#define PS "/job:ps/task:0"

/* Sends one chunk [off, off + len) of v under key over tr to addr. */
static int push_to(pst_transport *tr, const char *addr, const char *key, pst_tensor *v,
                   uint64_t off, uint64_t len, pst_status *st) {
    pst_msg m;
    if (pst_chunk_msg(key, v, off, len, &m, st) < 0) return st->code;
    return pst_transport_call_sync(tr, addr, PST_TASK_PUSH, &m, 5000, 0, NULL, NULL, st);
}

static int call_to(pst_transport *tr, const char *addr, int method, const ProtobufCMessage *req,
                   uint8_t **resp, size_t *resp_len, pst_status *st) {
    pst_msg m;
    if (pst_task_wire_pack(req, &m, st) < 0) return st->code;
    return pst_transport_call_sync(tr, addr, method, &m, 5000, 0, resp, resp_len, st);
}

/* The same from the job's worker to its PS. */
static int push_chunk(pst_test_job *j, const char *key, pst_tensor *v, uint64_t off,
                      uint64_t len, pst_status *st) {
    return push_to(pst_task_transport(j->w[0]), pst_task_address(j->ps[0]), key, v, off, len,
                   st);
}

static int call_msg(pst_test_job *j, int method, const ProtobufCMessage *req, pst_status *st) {
    return call_to(pst_task_transport(j->w[0]), pst_task_address(j->ps[0]), method, req, NULL,
                   NULL, st);
}

static pst_task_status_report report(pst_test_job *j) {
    pst_status st = {0};
    pst_task_status_report r;
    ck_assert_msg(pst_task_client_report(j->w[0], PS, 0, &r, &st) == 0, "%s", st.msg);
    return r;
}

/* A variable w of n floats on the PS, holding value (or uninitialized with NULL). */
static pst_var *ps_var(pst_test_job *j, const char *name, int64_t n, const pst_tensor *value) {
    pst_status st = {0};
    pst_var *v = pst_var_store_get_or_create(pst_task_vars(j->ps[0]), name, PST_FLOAT,
                                             pst_shape_1d(n), &st);
    ck_assert_msg(v != NULL, "%s", st.msg);
    if (value) ck_assert_msg(pst_var_assign(v, (pst_tensor *)value, 1, &st) == 0, "%s", st.msg);
    return v;
}

static pst_tensor *filled(int64_t n, float x) {
    pst_status st = {0};
    pst_tensor *t = pst_tensor_new(PST_FLOAT, pst_shape_1d(n), &st);
    for (int64_t i = 0; i < n; i++) pst_tensor_f32(t)[i] = x + (float)i;
    return t;
}

static void assert_value(pst_var *v, const pst_tensor *want) {
    pst_tensor *now = pst_var_read(v);
    ck_assert_ptr_nonnull(now);
    ck_assert(now->nbytes == want->nbytes && memcmp(now->data, want->data, now->nbytes) == 0);
    pst_tensor_unref(now);
}

START_TEST(test_push_unknown_or_mismatched) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "grpc", NULL);
    pst_tensor *w0 = filled(8, 1), *other = filled(9, 5);
    pst_var *w = ps_var(&j, "w", 8, w0);
    pst_status st = {0};
    ck_assert_int_eq(push_chunk(&j, "var:attacker/new_var", w0, 0, w0->nbytes, &st),
                     PST_E_NOT_FOUND);
    ck_assert_msg(strstr(st.msg, "attacker/new_var") && strstr(st.msg, "does not hold"), "%s",
                  st.msg);
    ck_assert_ptr_null(pst_var_store_find(pst_task_vars(j.ps[0]), "attacker/new_var"));
    memset(&st, 0, sizeof st);
    ck_assert_int_ne(push_chunk(&j, "var:w", other, 0, other->nbytes, &st), 0);
    ck_assert_msg(strstr(st.msg, "'w'") || strstr(st.msg, "w:"), "%s", st.msg);
    assert_value(w, w0);
    pst_task_status_report r = report(&j);
    ck_assert_int_eq(r.pushes_refused, 2);
    ck_assert_int_eq(r.pending_bytes, 0);
    pst_task_status_report_destroy(&r);
    pst_tensor_unref(w0);
    pst_tensor_unref(other);
    pst_test_job_stop(&j);
}
END_TEST

/* The same half twice, or an overlapping range, never completes a tensor: only every byte
 * arriving exactly once does. */
START_TEST(test_chunks_overlap) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "grpc", NULL);
    pst_tensor *w0 = filled(1024, 0), *v = filled(1024, 100);
    pst_var *w = ps_var(&j, "w", 1024, w0);
    pst_status st = {0};
    ck_assert_msg(push_chunk(&j, "var:w", v, 0, 2048, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(push_chunk(&j, "var:w", v, 0, 2048, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "arrived twice"), "%s", st.msg);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(push_chunk(&j, "var:w", v, 1024, 2048, &st), PST_E_INVALID);
    assert_value(w, w0);
    pst_task_status_report r = report(&j);
    ck_assert_int_eq(r.pending_bytes, 4096);
    pst_task_status_report_destroy(&r);
    memset(&st, 0, sizeof st);
    ck_assert_msg(push_chunk(&j, "var:w", v, 2048, 2048, &st) == 0, "%s", st.msg);
    assert_value(w, v);
    r = report(&j);
    ck_assert_int_eq(r.pending_bytes, 0);
    ck_assert_int_eq(r.pushes_refused, 2);
    pst_task_status_report_destroy(&r);
    pst_tensor_unref(w0);
    pst_tensor_unref(v);
    pst_test_job_stop(&j);
}
END_TEST

/* A push claiming more than the budget for tensors in flight costs nothing: refused at its
 * first chunk, before the tensor is allocated. */
START_TEST(test_pending_budget) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "grpc", &(pst_task_opts){.max_pending_bytes = 1 << 20});
    ps_var(&j, "big", 1 << 20, NULL); /* 4 MiB */
    pst_tensor *v = filled(1 << 20, 0);
    pst_status st = {0};
    ck_assert_int_eq(push_chunk(&j, "var:big", v, 0, 4096, &st), PST_E_EXHAUSTED);
    ck_assert_msg(strstr(st.msg, "--max-pending-mb") && strstr(st.msg, "big"), "%s", st.msg);
    pst_task_status_report r = report(&j);
    ck_assert_int_eq(r.pending_bytes, 0);
    ck_assert_int_eq(r.pushes_refused, 1);
    pst_task_status_report_destroy(&r);
    pst_tensor_unref(v);
    pst_test_job_stop(&j);
}
END_TEST

/* Half a tensor and then silence: dropped (and its memory freed) after the receive timeout;
 * the variable keeps its value. */
START_TEST(test_partial_expires) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "grpc",
                       &(pst_task_opts){.recv_timeout_ms = 300, .heartbeat_ms = 100});
    pst_tensor *w0 = filled(1024, 0), *v = filled(1024, 100);
    pst_var *w = ps_var(&j, "w", 1024, w0);
    pst_status st = {0};
    ck_assert_msg(push_chunk(&j, "var:w", v, 0, 2048, &st) == 0, "%s", st.msg);
    pst_task_status_report r = report(&j);
    ck_assert_int_eq(r.pending_bytes, 4096);
    pst_task_status_report_destroy(&r);
    int expired = 0;
    for (int i = 0; i < 100 && !expired; i++) {
        usleep(50 * 1000);
        r = report(&j);
        expired = r.partials_expired == 1 && r.pending_bytes == 0;
        pst_task_status_report_destroy(&r);
    }
    ck_assert_msg(expired, "the half-pushed tensor was not dropped");
    /* the other half alone is a new, incomplete tensor */
    ck_assert_msg(push_chunk(&j, "var:w", v, 2048, 2048, &st) == 0, "%s", st.msg);
    assert_value(w, w0);
    pst_tensor_unref(w0);
    pst_tensor_unref(v);
    pst_test_job_stop(&j);
}
END_TEST

static int shutdown_to(pst_transport *tr, const char *addr, const char *from, int now,
                       pst_status *st) {
    Pstrain__ShutdownRequest r = PSTRAIN__SHUTDOWN_REQUEST__INIT;
    r.from = (char *)from;
    r.now = now;
    r.reason = "";
    return call_to(tr, addr, PST_TASK_SHUTDOWN, &r.base, NULL, NULL, st);
}

static int shutdown_from(pst_test_job *j, const char *from, int now, pst_status *st) {
    return shutdown_to(pst_task_transport(j->w[0]), pst_task_address(j->ps[0]), from, now, st);
}

/* Shutdown: only the cluster's workers say they are done, and never "now". */
START_TEST(test_shutdown_refused) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "grpc", NULL);
    pst_status st = {0};
    ck_assert_int_eq(shutdown_from(&j, "/job:worker/replica:0/task:0", 1, &st), PST_E_PERMISSION);
    ck_assert_msg(strstr(st.msg, "now"), "%s", st.msg);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(shutdown_from(&j, "/job:ps/task:0", 0, &st), PST_E_PERMISSION);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(shutdown_from(&j, "/job:worker/task:5", 0, &st), PST_E_PERMISSION);
    ck_assert_msg(strstr(st.msg, "/job:worker/task:5"), "%s", st.msg);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(shutdown_from(&j, "garbage\x01", 0, &st), PST_E_PERMISSION);
    /* still serving: the wait times out */
    memset(&st, 0, sizeof st);
    ck_assert_int_ne(pst_task_wait_shutdown(j.ps[0], 300, &st), 0);
    memset(&st, 0, sizeof st);
    ck_assert_msg(shutdown_from(&j, "/job:worker/replica:0/task:0", 0, &st) == 0, "%s", st.msg);
    ck_assert_msg(pst_task_wait_shutdown(j.ps[0], 5000, &st) == 0, "%s", st.msg);
    pst_test_job_stop(&j);
}
END_TEST

static int save_or_restore_to(pst_transport *tr, const char *addr, int method,
                              const char *prefix, pst_status *st) {
    if (method == PST_TASK_SAVE) {
        Pstrain__SaveRequest r = PSTRAIN__SAVE_REQUEST__INIT;
        r.prefix = (char *)prefix;
        r.num_shards = 1;
        return call_to(tr, addr, method, &r.base, NULL, NULL, st);
    }
    Pstrain__RestoreRequest r = PSTRAIN__RESTORE_REQUEST__INIT;
    r.prefix = (char *)prefix;
    return call_to(tr, addr, method, &r.base, NULL, NULL, st);
}

static int save_or_restore(pst_test_job *j, int method, const char *prefix, pst_status *st) {
    return save_or_restore_to(pst_task_transport(j->w[0]), pst_task_address(j->ps[0]), method,
                              prefix, st);
}

/* Save and Restore stay inside the checkpoint directory: no absolute path elsewhere, no "..",
 * no symbolic link out; without a checkpoint directory, no directory is created. */
START_TEST(test_save_restore_paths) {
    char dir[] = "/tmp/pst-guard-XXXXXX", other[] = "/tmp/pst-guard-other-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_ptr_nonnull(mkdtemp(other));
    char ckpt[256], p[512];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", dir);
    ck_assert_int_eq(mkdir(ckpt, 0755), 0);
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "grpc", &(pst_task_opts){.checkpoint_dir = ckpt});
    pst_status st = {0};
    snprintf(p, sizeof p, "%s/model.ckpt-1", other);
    ck_assert_int_eq(save_or_restore(&j, PST_TASK_SAVE, p, &st), PST_E_PERMISSION);
    ck_assert_msg(strstr(st.msg, "outside") && strstr(st.msg, "Save"), "%s", st.msg);
    memset(&st, 0, sizeof st);
    snprintf(p, sizeof p, "%s/../escape/model", ckpt);
    ck_assert_int_eq(save_or_restore(&j, PST_TASK_SAVE, p, &st), PST_E_PERMISSION);
    ck_assert_msg(strstr(st.msg, ".."), "%s", st.msg);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(save_or_restore(&j, PST_TASK_RESTORE, "/etc/model.ckpt-50", &st),
                     PST_E_PERMISSION);
    snprintf(p, sizeof p, "%s/link", ckpt);
    ck_assert_int_eq(symlink(other, p), 0);
    snprintf(p, sizeof p, "%s/link/sub/model", ckpt);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(save_or_restore(&j, PST_TASK_SAVE, p, &st), PST_E_PERMISSION);
    /* inside: authorized (this PS has no variables to save, which is the error then) */
    snprintf(p, sizeof p, "%s/model.ckpt-1", ckpt);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(save_or_restore(&j, PST_TASK_SAVE, p, &st), PST_E_PRECONDITION);
    /* nothing was written outside */
    snprintf(p, sizeof p, "%s/sub", other);
    ck_assert_int_ne(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/escape", dir);
    ck_assert_int_ne(access(p, F_OK), 0);
    pst_test_job_stop(&j);

    /* no checkpoint directory: no directory is created, no ".." */
    pst_test_job_start(&j, 1, 1, "grpc", NULL);
    snprintf(p, sizeof p, "%s/new/dirs/model", other);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(save_or_restore(&j, PST_TASK_SAVE, p, &st), PST_E_PERMISSION);
    ck_assert_msg(strstr(st.msg, "does not exist"), "%s", st.msg);
    snprintf(p, sizeof p, "%s/new", other);
    ck_assert_int_ne(access(p, F_OK), 0);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(save_or_restore(&j, PST_TASK_RESTORE, "ckpt/../../x", &st),
                     PST_E_PERMISSION);
    pst_test_job_stop(&j);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, other);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* A GraphDef of one Const named name whose float tensor has shape [n] and one value. */
static uint8_t *const_graph(const char *name, int64_t n, int with_value, size_t *len) {
    Tensorflow__TensorShapeProto__Dim dim = TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT;
    dim.size = n;
    Tensorflow__TensorShapeProto__Dim *dims[] = {&dim};
    Tensorflow__TensorShapeProto shape = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    shape.n_dim = 1;
    shape.dim = dims;
    float one = 1;
    Tensorflow__TensorProto tp = TENSORFLOW__TENSOR_PROTO__INIT;
    tp.dtype = TENSORFLOW__DATA_TYPE__DT_FLOAT;
    tp.tensor_shape = &shape;
    tp.n_float_val = 1;
    tp.float_val = &one;
    Tensorflow__AttrValue value = TENSORFLOW__ATTR_VALUE__INIT;
    value.value_case = TENSORFLOW__ATTR_VALUE__VALUE_TENSOR;
    value.tensor = &tp;
    Tensorflow__AttrValue dtype = TENSORFLOW__ATTR_VALUE__INIT;
    dtype.value_case = TENSORFLOW__ATTR_VALUE__VALUE_TYPE;
    dtype.type = TENSORFLOW__DATA_TYPE__DT_FLOAT;
    Tensorflow__NodeDef__AttrEntry e1 = TENSORFLOW__NODE_DEF__ATTR_ENTRY__INIT,
                                   e2 = TENSORFLOW__NODE_DEF__ATTR_ENTRY__INIT;
    e1.key = "value";
    e1.value = &value;
    e2.key = "dtype";
    e2.value = with_value ? &dtype : NULL; /* an entry with a key and no value */
    Tensorflow__NodeDef__AttrEntry *attrs[] = {&e1, &e2};
    Tensorflow__NodeDef nd = TENSORFLOW__NODE_DEF__INIT;
    nd.name = (char *)name;
    nd.op = "Const";
    nd.n_attr = 2;
    nd.attr = attrs;
    Tensorflow__NodeDef *nodes[] = {&nd};
    Tensorflow__GraphDef gd = TENSORFLOW__GRAPH_DEF__INIT;
    gd.n_node = 1;
    gd.node = nodes;
    *len = tensorflow__graph_def__get_packed_size(&gd);
    uint8_t *buf = malloc(*len);
    tensorflow__graph_def__pack(&gd, buf);
    return buf;
}

static int register_to(pst_transport *tr, const char *addr, uint8_t *gd, size_t len,
                       char *handle, size_t hlen, pst_status *st) {
    Pstrain__RegisterGraphRequest r = PSTRAIN__REGISTER_GRAPH_REQUEST__INIT;
    r.graph_def.data = gd;
    r.graph_def.len = len;
    r.client = "/job:worker/replica:0/task:0";
    uint8_t *resp = NULL;
    size_t rl = 0;
    int rc = call_to(tr, addr, PST_TASK_REGISTER, &r.base, &resp, &rl, st);
    if (rc == 0) {
        Pstrain__RegisterGraphResponse *rr = pstrain__register_graph_response__unpack(NULL, rl,
                                                                                      resp);
        ck_assert_ptr_nonnull(rr);
        snprintf(handle, hlen, "%s", rr->handle);
        pstrain__register_graph_response__free_unpacked(rr, NULL);
    }
    free(resp);
    return rc;
}

static int register_graph(pst_test_job *j, uint8_t *gd, size_t len, char *handle, size_t hlen,
                          pst_status *st) {
    return register_to(pst_task_transport(j->w[0]), pst_task_address(j->ps[0]), gd, len, handle,
                       hlen, st);
}

/* Constants are paid for before they are built: a few bytes claiming gigabytes are refused;
 * a registered graph counts against the budget until DeregisterGraph frees it. An attr entry
 * without its value is an error, not a crash. */
START_TEST(test_graph_budget) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "grpc", &(pst_task_opts){.max_graph_bytes = 1 << 20});
    pst_status st = {0};
    size_t len;
    char handle[64];
    uint8_t *bomb = const_graph("bomb", (int64_t)1 << 27, 1, &len);
    ck_assert_uint_lt(len, 200);
    ck_assert_int_eq(register_graph(&j, bomb, len, handle, sizeof handle, &st), PST_E_EXHAUSTED);
    ck_assert_msg(strstr(st.msg, "--max-graph-mb"), "%s", st.msg);
    free(bomb);
    uint8_t *small = const_graph("small", 1000, 1, &len);
    memset(&st, 0, sizeof st);
    ck_assert_msg(register_graph(&j, small, len, handle, sizeof handle, &st) == 0, "%s", st.msg);
    free(small);
    pst_task_status_report r = report(&j);
    ck_assert_int_eq(r.graph_bytes, 4000);
    ck_assert_int_eq(r.n_partitions, 1);
    pst_task_status_report_destroy(&r);
    Pstrain__DeregisterGraphRequest d = PSTRAIN__DEREGISTER_GRAPH_REQUEST__INIT;
    d.handle = handle;
    ck_assert_msg(call_msg(&j, PST_TASK_DEREGISTER, &d.base, &st) == 0, "%s", st.msg);
    r = report(&j);
    ck_assert_int_eq(r.graph_bytes, 0);
    ck_assert_int_eq(r.n_partitions, 0);
    pst_task_status_report_destroy(&r);
    uint8_t *noval = const_graph("noval", 4, 0, &len);
    memset(&st, 0, sizeof st);
    ck_assert_int_ne(register_graph(&j, noval, len, handle, sizeof handle, &st), 0);
    ck_assert_msg(strstr(st.msg, "noval"), "%s", st.msg);
    free(noval);
    r = report(&j); /* still serving */
    ck_assert_int_eq(r.graph_bytes, 0);
    pst_task_status_report_destroy(&r);
    pst_test_job_stop(&j);
}
END_TEST

/* --check-numerics: a pushed NaN or infinity is refused, naming the tensor and the sender. */
START_TEST(test_check_numerics) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "grpc", &(pst_task_opts){.check_numerics = 1});
    pst_tensor *w0 = filled(16, 0), *v = filled(16, 3);
    pst_var *w = ps_var(&j, "w", 16, w0);
    pst_tensor_f32(v)[7] = NAN;
    pst_status st = {0};
    ck_assert_int_eq(push_chunk(&j, "var:w", v, 0, v->nbytes, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "var:w") && strstr(st.msg, "element 7") &&
                      strstr(st.msg, "127.0.0.1"), "%s", st.msg);
    pst_tensor_f32(v)[7] = INFINITY;
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(push_chunk(&j, "var:w", v, 0, v->nbytes, &st), PST_E_INVALID);
    assert_value(w, w0);
    pst_tensor_f32(v)[7] = 1;
    memset(&st, 0, sizeof st);
    ck_assert_msg(push_chunk(&j, "var:w", v, 0, v->nbytes, &st) == 0, "%s", st.msg);
    assert_value(w, v);
    pst_tensor_unref(w0);
    pst_tensor_unref(v);
    pst_test_job_stop(&j);
}
END_TEST

/* A PS that stops answering (here: SIGSTOP, as a hung process or a machine gone from the
 * network) fails the worker's step with an error naming the PS, through the connection's
 * keepalive, long before the step's own deadline. The PS is a child process forked before this
 * process starts gRPC. */
START_TEST(test_hung_ps_named) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(fds[0]);
        pst_status st = {0};
        pst_cluster *c = pst_test_cluster(1, 1, NULL);
        pst_task *t = pst_task_new(&(pst_task_opts){.cluster = c, .job = "ps", .index = 0,
                                                    .quiet = 1}, &st);
        int port = t ? pst_task_port(t) : -1;
        if (write(fds[1], &port, sizeof port) != (ssize_t)sizeof port || !t) _exit(1);
        pst_task_wait_shutdown(t, 0, &st);
        _exit(0);
    }
    close(fds[1]);
    int port = 0;
    ck_assert_int_eq(read(fds[0], &port, sizeof port), (ssize_t)sizeof port);
    ck_assert_int_gt(port, 0);
    char json[160];
    snprintf(json, sizeof json, "{\"ps\": [\"127.0.0.1:%d\"], \"worker\": [\"127.0.0.1:0\"]}", port);
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse_ex(json, "test", PST_CLUSTER_ALLOW_PORT0, &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    /* steps may take minutes: only the keepalive names the hung PS */
    pst_task *wk = pst_task_new(&(pst_task_opts){.cluster = c, .job = "worker", .index = 0,
                                                 .quiet = 1, .recv_timeout_ms = 600000,
                                                 .step_timeout_ms = 600000}, &st);
    ck_assert_msg(wk != NULL, "%s", st.msg);
    pst_test_model m = pst_test_linear_model(1, "/job:worker/task:0");
    pst_dist_run *init = pst_dist_run_new(wk, m.g, 0, NULL, 1, &m.init, &st);
    ck_assert_msg(init && pst_dist_run_step(init, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pst_dist_run *train = pst_dist_run_new(wk, m.g, 1, &m.loss, 1, &m.train, &st);
    ck_assert_msg(train != NULL, "%s", st.msg);
    int rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        if (i == 3) kill(child, SIGSTOP);
        pst_tensor *xv, *yv, *out[1] = {NULL};
        pst_test_linear_batch(i % 8, &xv, &yv);
        pst_feed f[2] = {{m.x, xv}, {m.y, yv}};
        rc = pst_dist_run_step(train, f, 2, out, &st);
        pst_tensor_unref(out[0]);
        pst_tensor_unref(xv);
        pst_tensor_unref(yv);
    }
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(st.msg, "/job:ps/replica:0/task:0"), "%s", st.msg);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    ck_assert_msg(strstr(st.msg, addr), "%s", st.msg);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    pst_dist_run_free(train);
    pst_dist_run_free(init);
    pst_task_free(wk);
    pst_cluster_free(c);
    pst_graph_free(m.g);
}
END_TEST

/* ---- a real pstrain-ps process against hostile clients ---- */

#define TOKEN_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define TOKEN_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static void write_file(const char *path, const char *text, mode_t mode) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, mode), 0);
}

/* Starts pstrain-ps (token A, checkpoint directory dir/ckpt, TLS with tls_dir when given) on a
 * port it picks; returns its pid and sets addr. */
static pid_t start_ps(const char *dir, const char *tls_dir, char *addr, size_t len) {
    char cluster[512], token[512], port_file[512], ckpt[512], bin[1024];
    snprintf(cluster, sizeof cluster, "%s/cluster.json", dir);
    snprintf(token, sizeof token, "%s/token", dir);
    snprintf(port_file, sizeof port_file, "%s/ps.port", dir);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", dir);
    snprintf(bin, sizeof bin, "%s/ps/pstrain-ps", getenv("PST_BINARY_DIR"));
    write_file(cluster, "{\"ps\": [\"127.0.0.1:0\"], \"worker\": [\"127.0.0.1:0\"]}", 0644);
    write_file(token, TOKEN_A "\n", 0600);
    unlink(port_file);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execl(bin, "pstrain-ps", "--cluster", cluster, "--task", "0", "--port-file", port_file,
              "--token-file", token, "--checkpoint-dir", ckpt, "--quiet",
              tls_dir ? "--tls-dir" : NULL, tls_dir, (char *)NULL);
        _exit(127);
    }
    int port = 0;
    for (int i = 0; i < 300 && port <= 0; i++) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1) port = 0;
            fclose(f);
        }
        if (port <= 0) usleep(100 * 1000);
    }
    ck_assert_msg(port > 0, "pstrain-ps did not report its port");
    snprintf(addr, len, "127.0.0.1:%d", port);
    return pid;
}

static pst_security *security(const char *token, const char *tls_dir) {
    pst_status st = {0};
    pst_security *s = pst_security_new(
        &(pst_security_opts){.token = token, .tls_dir = tls_dir ? tls_dir : ""}, &st);
    ck_assert_msg(s != NULL, "%s", st.msg);
    return s;
}

static pst_transport *client(const pst_security *sec) {
    pst_status st = {0};
    pst_transport *t = pst_transport_grpc_new(pst_task_methods, PST_TASK_METHOD_COUNT,
                                              &(pst_transport_opts){.security = sec}, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    return t;
}

static int status_of(pst_transport *tr, const char *addr, pst_status *st) {
    uint8_t *resp = NULL;
    size_t len = 0;
    int rc = pst_transport_call_sync(tr, addr, PST_TASK_STATUS, NULL, 5000, 0, &resp, &len, st);
    free(resp);
    return rc;
}

static int exit_code_of(pid_t pid) {
    int ws = 0;
    for (int i = 0; i < 300; i++) {
        if (waitpid(pid, &ws, WNOHANG) == pid) return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128;
        usleep(100 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &ws, 0);
    return -1;
}

/* pstrain-ps with the job token, a member worker training the linear model on it, and every
 * attack of the security issue from other clients: no token, another job's token, and a
 * client holding the token that forges Shutdown, Save, Restore and PushTensor requests, sends
 * a chunk twice, a Const bomb and an attr without its value. Each gets its status; the PS keeps
 * serving and its variables are unchanged; the member then ends it normally (exit 0). */
START_TEST(test_hostile_clients) {
    char dir[] = "/tmp/pst-hostile-XXXXXX", addr[64], p[600];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    pid_t ps = start_ps(dir, NULL, addr, sizeof addr);
    char json[160];
    snprintf(json, sizeof json, "{\"ps\": [\"%s\"], \"worker\": [\"127.0.0.1:0\"]}", addr);
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse_ex(json, "test", PST_CLUSTER_ALLOW_PORT0, &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    pst_security *sa = security(TOKEN_A, NULL), *sb = security(TOKEN_B, NULL);
    pst_task *wk = pst_task_new(&(pst_task_opts){.cluster = c, .job = "worker", .index = 0,
                                                 .quiet = 1, .security = sa}, &st);
    ck_assert_msg(wk != NULL, "%s", st.msg);
    pst_test_model m = pst_test_linear_model(1, "/job:worker/task:0");
    pst_dist_run *init = pst_dist_run_new(wk, m.g, 0, NULL, 1, &m.init, &st);
    ck_assert_msg(init && pst_dist_run_step(init, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pst_dist_run *train = pst_dist_run_new(wk, m.g, 1, &m.loss, 1, &m.train, &st);
    ck_assert_msg(train != NULL, "%s", st.msg);
    for (int i = 0; i < 3; i++) {
        pst_tensor *xv, *yv;
        pst_test_linear_batch(i, &xv, &yv);
        pst_feed f[2] = {{m.x, xv}, {m.y, yv}};
        ck_assert_msg(pst_dist_run_step(train, f, 2, NULL, &st) == 0, "%s", st.msg);
        pst_tensor_unref(xv);
        pst_tensor_unref(yv);
    }
    pst_tensor *w0 = pst_task_client_pull_variable(wk, PS, "w", &st);
    pst_tensor *b0 = pst_task_client_pull_variable(wk, PS, "b", &st);
    ck_assert_msg(w0 && b0, "%s", st.msg);

    /* strangers: no token, another job's token */
    pst_transport *none = client(NULL), *other = client(sb), *member = client(sa);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(status_of(none, addr, &st), PST_E_UNAUTHENTICATED);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(push_to(other, addr, "var:w", w0, 0, w0->nbytes, &st),
                     PST_E_UNAUTHENTICATED);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(shutdown_to(none, addr, "/job:worker/replica:0/task:0", 0, &st),
                     PST_E_UNAUTHENTICATED);
    /* a member gone wrong */
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(shutdown_to(member, addr, "/job:worker/replica:0/task:0", 1, &st),
                     PST_E_PERMISSION);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(shutdown_to(member, addr, "/job:worker/task:9", 0, &st), PST_E_PERMISSION);
    snprintf(p, sizeof p, "%s/elsewhere/model", dir);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(save_or_restore_to(member, addr, PST_TASK_SAVE, p, &st), PST_E_PERMISSION);
    snprintf(p, sizeof p, "%s/elsewhere", dir);
    ck_assert_int_ne(access(p, F_OK), 0);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(save_or_restore_to(member, addr, PST_TASK_RESTORE, "/tmp/model.ckpt-50",
                                        &st), PST_E_PERMISSION);
    pst_tensor *nan = pst_tensor_clone(w0, &st);
    for (int64_t i = 0; i < nan->n; i++) pst_tensor_f32(nan)[i] = NAN;
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(push_to(member, addr, "var:attacker/new_var", nan, 0, nan->nbytes, &st),
                     PST_E_NOT_FOUND);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(push_to(member, addr, "var:w", nan, 0, 8, &st), 0);
    ck_assert_int_eq(push_to(member, addr, "var:w", nan, 0, 8, &st), PST_E_INVALID);
    size_t len;
    char handle[64];
    uint8_t *bomb = const_graph("bomb", (int64_t)1 << 30, 1, &len);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(register_to(member, addr, bomb, len, handle, sizeof handle, &st),
                     PST_E_EXHAUSTED);
    free(bomb);
    uint8_t *noval = const_graph("noval", 4, 0, &len);
    memset(&st, 0, sizeof st);
    ck_assert_int_ne(register_to(member, addr, noval, len, handle, sizeof handle, &st), 0);
    free(noval);
    /* the PS serves on, its variables as they were */
    ck_assert_int_eq(waitpid(ps, NULL, WNOHANG), 0);
    pst_tensor *w1 = pst_task_client_pull_variable(wk, PS, "w", &st);
    pst_tensor *b1 = pst_task_client_pull_variable(wk, PS, "b", &st);
    ck_assert_msg(w1 && b1, "%s", st.msg);
    pst_test_assert_close(w1, w0, 0);
    pst_test_assert_close(b1, b0, 0);
    for (pst_tensor **t = (pst_tensor *[]){w0, b0, w1, b1, nan, NULL}; *t; t++) pst_tensor_unref(*t);
    pst_transport_free(none);
    pst_transport_free(other);
    pst_transport_free(member);
    pst_dist_run_free(train);
    pst_dist_run_free(init);
    memset(&st, 0, sizeof st);
    ck_assert_msg(pst_task_client_say_done(wk, PS, 0, "", &st) == 0, "%s", st.msg);
    ck_assert_int_eq(exit_code_of(ps), 0);
    pst_task_free(wk);
    pst_cluster_free(c);
    pst_graph_free(m.g);
    pst_security_free(sa);
    pst_security_free(sb);
    snprintf(p, sizeof p, "rm -rf %s", dir);
    ck_assert_int_eq(system(p), 0);
}
END_TEST

/* pstrain-ps with mutual TLS: a client whose certificate another CA signed never gets an
 * answer, token or not; a client of the job's CA does. */
START_TEST(test_tls_stranger_refused) {
    char dir[] = "/tmp/pst-hostile-tls-XXXXXX", addr[64], cmd[1600], p[3][600];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *src = getenv("PST_SOURCE_DIR");
    snprintf(cmd, sizeof cmd, "%s/scripts/tls_certs.sh %s/job ps0=127.0.0.1 client=127.0.0.1 "
             ">/dev/null && %s/scripts/tls_certs.sh %s/other client=127.0.0.1 >/dev/null",
             src, dir, src, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(p[0], sizeof p[0], "%s/job/ps0", dir);
    snprintf(p[1], sizeof p[1], "%s/job/client", dir);
    snprintf(p[2], sizeof p[2], "%s/other/client", dir);
    pid_t ps = start_ps(dir, p[0], addr, sizeof addr);
    pst_security *ok = security(TOKEN_A, p[1]), *stranger = security(TOKEN_A, p[2]),
                 *plain = security(TOKEN_A, NULL);
    pst_transport *a = client(ok), *b = client(stranger), *c = client(plain);
    pst_status st = {0};
    ck_assert_int_ne(status_of(b, addr, &st), 0);
    memset(&st, 0, sizeof st);
    ck_assert_int_ne(shutdown_to(c, addr, "/job:worker/replica:0/task:0", 0, &st), 0);
    ck_assert_int_eq(waitpid(ps, NULL, WNOHANG), 0);
    memset(&st, 0, sizeof st);
    ck_assert_msg(status_of(a, addr, &st) == 0, "%s", st.msg);
    ck_assert_msg(shutdown_to(a, addr, "/job:worker/replica:0/task:0", 0, &st) == 0, "%s",
                  st.msg);
    ck_assert_int_eq(exit_code_of(ps), 0);
    pst_transport_free(a);
    pst_transport_free(b);
    pst_transport_free(c);
    pst_security_free(ok);
    pst_security_free(stranger);
    pst_security_free(plain);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("task_guard");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_push_unknown_or_mismatched);
    tcase_add_test(tc, test_chunks_overlap);
    tcase_add_test(tc, test_pending_budget);
    tcase_add_test(tc, test_partial_expires);
    tcase_add_test(tc, test_shutdown_refused);
    tcase_add_test(tc, test_save_restore_paths);
    tcase_add_test(tc, test_graph_budget);
    tcase_add_test(tc, test_check_numerics);
    tcase_add_test(tc, test_hung_ps_named);
    tcase_add_test(tc, test_hostile_clients);
    tcase_add_test(tc, test_tls_stranger_refused);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
