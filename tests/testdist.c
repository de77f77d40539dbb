#include "testdist.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "init.h"
#include "losses.h"
#include "optimizer.h"
#include "replica_setter.h"
#include "testutil.h"

pst_cluster *pst_test_cluster(int n_ps, int n_w, pst_task *const *ps) {
    char json[4096];
    size_t o = (size_t)snprintf(json, sizeof json, "{\"ps\": [");
    for (int i = 0; i < n_ps; i++)
        o += (size_t)snprintf(json + o, sizeof json - o, "%s\"%s\"", i ? "," : "",
                              ps && ps[i] ? pst_task_address(ps[i]) : "127.0.0.1:0");
    o += (size_t)snprintf(json + o, sizeof json - o, "], \"worker\": [");
    for (int i = 0; i < n_w; i++)
        o += (size_t)snprintf(json + o, sizeof json - o, "%s\"127.0.0.1:0\"", i ? "," : "");
    snprintf(json + o, sizeof json - o, "]}");
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse_ex(json, "test cluster", PST_CLUSTER_ALLOW_PORT0, &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    return c;
}

static pst_task *start(const pst_cluster *c, const char *job, int i, const char *tr,
                       const pst_task_opts *base) {
    pst_task_opts o = base ? *base
                           : (pst_task_opts){.quiet = 1, .chunk_bytes = 1 << 20,
                                             .connect_timeout_ms = 5000, .recv_timeout_ms = 5000};
    o.cluster = c;
    o.job = job;
    o.index = i;
    o.transport = tr;
    pst_status st = {0};
    pst_task *t = pst_task_new(&o, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    ck_assert_int_gt(pst_task_port(t), 0);
    return t;
}

void pst_test_job_start(pst_test_job *j, int n_ps, int n_w, const char *transport,
                        const pst_task_opts *o) {
    ck_assert(n_ps <= PST_TEST_JOB_MAX && n_w <= PST_TEST_JOB_MAX);
    memset(j, 0, sizeof *j);
    j->n_ps = n_ps;
    j->n_w = n_w;
    j->ps_view = pst_test_cluster(n_ps, n_w, NULL);
    for (int i = 0; i < n_ps; i++) j->ps[i] = start(j->ps_view, "ps", i, transport, o);
    j->cluster = pst_test_cluster(n_ps, n_w, j->ps);
    for (int i = 0; i < n_w; i++) j->w[i] = start(j->cluster, "worker", i, transport, o);
}

void pst_test_job_stop(pst_test_job *j) {
    for (int i = 0; i < j->n_w; i++) pst_task_free(j->w[i]);
    for (int i = 0; i < j->n_ps; i++) pst_task_free(j->ps[i]);
    pst_cluster_free(j->cluster);
    pst_cluster_free(j->ps_view);
    memset(j, 0, sizeof *j);
}

pst_test_model pst_test_linear_model(int n_ps, const char *worker) {
    pst_test_model m;
    m.g = pst_graph_new();
    pst_status st = {0};
    pst_replica_setter *rs = NULL;
    if (n_ps > 0) {
        rs = pst_replica_setter_new(n_ps, worker, PST_PLACE_ROUND_ROBIN, &st);
        ck_assert_msg(rs != NULL, "%s", st.msg);
        pst_graph_set_device_fn(m.g, pst_replica_setter_fn, rs);
    }
    m.x = pst_placeholder(m.g, "x", PST_FLOAT, pst_shape_2d(8, 5));
    m.y = pst_placeholder(m.g, "y", PST_FLOAT, pst_shape_2d(8, 3));
    pst_tensor *w0 = pst_test_rand(PST_FLOAT, pst_shape_2d(5, 3), 11, -1, 1);
    pst_tensor *b0 = pst_test_rand(PST_FLOAT, pst_shape_1d(3), 12, -1, 1);
    m.w = pst_variable(m.g, "w", pst_const(m.g, w0, "w0"), 1);
    m.b = pst_variable(m.g, "b", pst_const(m.g, b0, "b0"), 1);
    pst_tensor_unref(w0);
    pst_tensor_unref(b0);
    pst_output pred = pst_add(m.g, pst_matmul(m.g, m.x, pst_variable_value(m.w), 0, 0, NULL),
                              pst_variable_value(m.b), "pred");
    m.loss = pst_loss_mean_squared_error(m.g, pred, m.y, pst_out(NULL, 0), NULL);
    pst_optimizer_opts oo = pst_optimizer_defaults(PST_OPT_SGD, 0.1f);
    m.train = pst_optimizer_minimize(m.g, &oo, m.loss, 0, NULL, pst_out(NULL, 0), "train");
    m.init = pst_global_variables_initializer(m.g);
    ck_assert_msg(pst_graph_error(m.g) == 0, "%s", pst_graph_status(m.g)->msg);
    if (rs) {
        pst_graph_set_device_fn(m.g, NULL, NULL);
        pst_replica_setter_free(rs);
    }
    return m;
}

void pst_test_linear_batch(int i, pst_tensor **x, pst_tensor **y) {
    *x = pst_test_rand(PST_FLOAT, pst_shape_2d(8, 5), 100 + (uint64_t)i, -1, 1);
    *y = pst_test_rand(PST_FLOAT, pst_shape_2d(8, 3), 200 + (uint64_t)i, -1, 1);
}

void pst_test_linear_local(int steps, pst_tensor **w, pst_tensor **b, float *last_loss) {
    pst_test_model m = pst_test_linear_model(0, NULL);
    pst_status st = {0};
    pst_session *s = pst_session_new(m.g, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(s, m.init, &st), 0);
    for (int i = 0; i < steps; i++) {
        pst_tensor *xv, *yv;
        pst_test_linear_batch(i, &xv, &yv);
        pst_feed f[2] = {{m.x, xv}, {m.y, yv}};
        pst_tensor *out[1];
        ck_assert_int_eq(pst_session_run(s, f, 2, &m.loss, 1, &m.train, 1, out, &st), 0);
        *last_loss = pst_tensor_f32(out[0])[0];
        pst_tensor_unref(out[0]);
        pst_tensor_unref(xv);
        pst_tensor_unref(yv);
    }
    *w = pst_session_run1(s, pst_variable_value(m.w), &st);
    *b = pst_session_run1(s, pst_variable_value(m.b), &st);
    pst_session_free(s);
    pst_graph_free(m.g);
}

void pst_test_assert_close(const pst_tensor *a, const pst_tensor *b, double tol) {
    ck_assert_int_eq((int)a->n, (int)b->n);
    for (int64_t i = 0; i < a->n; i++)
        ck_assert_msg(fabs(pst_tensor_f32(a)[i] - pst_tensor_f32(b)[i]) <= tol, "%lld: %g vs %g",
                      (long long)i, pst_tensor_f32(a)[i], pst_tensor_f32(b)[i]);
}
