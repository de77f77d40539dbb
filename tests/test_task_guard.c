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
#include "task_client.h"
#include "task_status.h"
#include "task_wire.h"
#include "testdist.h"
#include "testutil.h"
#include "tf_graph.pb-c.h"
#include "varstore.h"

#define PS "/job:ps/task:0"

/* Sends one chunk [off, off + len) of v under key from the worker to the PS. */
static int push_chunk(pst_test_job *j, const char *key, pst_tensor *v, uint64_t off,
                      uint64_t len, pst_status *st) {
    pst_msg m;
    if (pst_chunk_msg(key, v, off, len, &m, st) < 0) return st->code;
    return pst_transport_call_sync(pst_task_transport(j->w[0]), pst_task_address(j->ps[0]),
                                   PST_TASK_PUSH, &m, 5000, 0, NULL, NULL, st);
}

static int call_msg(pst_test_job *j, int method, const ProtobufCMessage *req, pst_status *st) {
    pst_msg m;
    if (pst_task_wire_pack(req, &m, st) < 0) return st->code;
    return pst_transport_call_sync(pst_task_transport(j->w[0]), pst_task_address(j->ps[0]),
                                   method, &m, 5000, 0, NULL, NULL, st);
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

static int shutdown_from(pst_test_job *j, const char *from, int now, pst_status *st) {
    Pstrain__ShutdownRequest r = PSTRAIN__SHUTDOWN_REQUEST__INIT;
    r.from = (char *)from;
    r.now = now;
    r.reason = "";
    return call_msg(j, PST_TASK_SHUTDOWN, &r.base, st);
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

static int save_or_restore(pst_test_job *j, int method, const char *prefix, pst_status *st) {
    if (method == PST_TASK_SAVE) {
        Pstrain__SaveRequest r = PSTRAIN__SAVE_REQUEST__INIT;
        r.prefix = (char *)prefix;
        r.num_shards = 1;
        return call_msg(j, method, &r.base, st);
    }
    Pstrain__RestoreRequest r = PSTRAIN__RESTORE_REQUEST__INIT;
    r.prefix = (char *)prefix;
    return call_msg(j, method, &r.base, st);
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

static int register_graph(pst_test_job *j, uint8_t *gd, size_t len, char *handle, size_t hlen,
                          pst_status *st) {
    Pstrain__RegisterGraphRequest r = PSTRAIN__REGISTER_GRAPH_REQUEST__INIT;
    r.graph_def.data = gd;
    r.graph_def.len = len;
    r.client = "/job:worker/replica:0/task:0";
    pst_msg m;
    if (pst_task_wire_pack(&r.base, &m, st) < 0) return st->code;
    uint8_t *resp = NULL;
    size_t rl = 0;
    int rc = pst_transport_call_sync(pst_task_transport(j->w[0]), pst_task_address(j->ps[0]),
                                     PST_TASK_REGISTER, &m, 5000, 0, &resp, &rl, st);
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
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
