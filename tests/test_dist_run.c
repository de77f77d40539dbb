/* Distributed runs: a graph's steps partitioned across tasks (in one process, over the
 * in-process transport and over gRPC on 127.0.0.1) give what one process gives; an error on
 * any task stops the step naming it; a step returns only once every call it started ended. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "dist_run.h"
#include "embedding.h"
#include "init.h"
#include "optimizer.h"
#include "partitioned_var.h"
#include "replica_setter.h"
#include "task_client.h"
#include "testdist.h"
#include "testutil.h"

/* Two PS and one worker: training steps partitioned across them give what one process gives. */
static void dist_matches_local(const char *tr) {
    pst_test_job j;
    pst_test_job_start(&j, 2, 1, tr, NULL);
    pst_task *wk = j.w[0];
    pst_test_model m = pst_test_linear_model(2, "/job:worker/task:0");
    ck_assert_ptr_nonnull(strstr(m.w.node->device, "/job:ps/task:0"));
    ck_assert_ptr_nonnull(strstr(m.b.node->device, "/job:ps/task:1"));
    pst_status st = {0};
    pst_dist_run *init = pst_dist_run_new(wk, m.g, 0, NULL, 1, &m.init, &st);
    ck_assert_msg(init != NULL, "%s", st.msg);
    ck_assert_msg(pst_dist_run_step(init, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pst_dist_run *train = pst_dist_run_new(wk, m.g, 1, &m.loss, 1, &m.train, &st);
    ck_assert_msg(train != NULL, "%s", st.msg);
    float loss = 0;
    for (int i = 0; i < 6; i++) {
        pst_tensor *xv, *yv;
        pst_test_linear_batch(i, &xv, &yv);
        pst_feed f[2] = {{m.x, xv}, {m.y, yv}};
        pst_tensor *out[1];
        ck_assert_msg(pst_dist_run_step(train, f, 2, out, &st) == 0, "%s", st.msg);
        loss = pst_tensor_f32(out[0])[0];
        pst_tensor_unref(out[0]);
        pst_tensor_unref(xv);
        pst_tensor_unref(yv);
    }
    pst_tensor *lw, *lb;
    float lloss;
    pst_test_linear_local(6, &lw, &lb, &lloss);
    ck_assert_float_eq_tol(loss, lloss, 1e-6);
    pst_tensor *dw = pst_task_client_pull_variable(wk, "/job:ps/task:0", "w", &st);
    ck_assert_msg(dw != NULL, "%s", st.msg);
    pst_tensor *db = pst_task_client_pull_variable(wk, "/job:ps/task:1", "b", &st);
    ck_assert_msg(db != NULL, "%s", st.msg);
    pst_test_assert_close(dw, lw, 1e-6);
    pst_test_assert_close(db, lb, 1e-6);
    /* w lives on ps0 only */
    ck_assert_ptr_null(pst_task_client_pull_variable(wk, "/job:ps/task:1", "w", &st));
    ck_assert_ptr_nonnull(strstr(st.msg, "variable 'w' is not on /job:ps/replica:0/task:1"));
    for (pst_tensor **p = (pst_tensor *[]){dw, db, lw, lb, NULL}; *p; p++) pst_tensor_unref(*p);
    pst_dist_run_free(train);
    pst_dist_run_free(init);
    pst_test_job_stop(&j);
    pst_graph_free(m.g);
}
START_TEST(test_inproc_dist_matches_local) { dist_matches_local("inproc"); }
END_TEST
START_TEST(test_grpc_dist_matches_local) { dist_matches_local("grpc"); }
END_TEST

/* A PS that is gone: the worker's call fails within the connect limit naming its address. */
START_TEST(test_grpc_unreachable_ps_named) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "grpc", NULL);
    char addr[256];
    snprintf(addr, sizeof addr, "%s", pst_task_address(j.ps[0]));
    pst_task_free(j.ps[0]); /* the worker's cluster still names its address */
    j.ps[0] = NULL;
    pst_test_model m = pst_test_linear_model(1, "/job:worker/task:0");
    pst_status st = {0};
    pst_dist_run *init = pst_dist_run_new(j.w[0], m.g, 0, NULL, 1, &m.init, &st);
    ck_assert_ptr_null(init);
    ck_assert_msg(strstr(st.msg, addr) != NULL, "%s", st.msg);
    pst_test_job_stop(&j);
    pst_graph_free(m.g);
}
END_TEST

/* A PS that dies between steps: the next step fails naming it (no hang). */
START_TEST(test_grpc_ps_dies) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "grpc", NULL);
    char addr[256];
    snprintf(addr, sizeof addr, "%s", pst_task_address(j.ps[0]));
    pst_test_model m = pst_test_linear_model(1, "/job:worker/task:0");
    pst_status st = {0};
    pst_dist_run *init = pst_dist_run_new(j.w[0], m.g, 0, NULL, 1, &m.init, &st);
    ck_assert_msg(init && pst_dist_run_step(init, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pst_dist_run *train = pst_dist_run_new(j.w[0], m.g, 1, &m.loss, 1, &m.train, &st);
    ck_assert_msg(train != NULL, "%s", st.msg);
    pst_task_free(j.ps[0]);
    j.ps[0] = NULL;
    pst_tensor *xv, *yv;
    pst_test_linear_batch(0, &xv, &yv);
    pst_feed f[2] = {{m.x, xv}, {m.y, yv}};
    pst_tensor *out[1] = {NULL};
    ck_assert_int_lt(pst_dist_run_step(train, f, 2, out, &st), 0);
    ck_assert_msg(strstr(st.msg, addr) != NULL, "%s", st.msg);
    ck_assert_ptr_null(out[0]);
    pst_tensor_unref(xv);
    pst_tensor_unref(yv);
    pst_dist_run_free(train);
    pst_dist_run_free(init);
    pst_test_job_stop(&j);
    pst_graph_free(m.g);
}
END_TEST

/* A step whose part on PS 0 fails at once (an uninitialized variable) while its part on PS 1
 * waits a second for a synchronous replica that never comes: the step fails with PS 0's error
 * at once on the worker's side, but returns only after PS 1's call ended too (nothing of the
 * step outlives it; under ASan a callback touching the returned step's frame would show). */
START_TEST(test_grpc_step_returns_after_every_call) {
    pst_test_job j;
    pst_test_job_start(&j, 2, 1, "grpc", NULL);
    pst_graph *g = pst_graph_new();
    pst_graph_push_device(g, "/job:ps/task:0");
    pst_output v0 = pst_variable(g, "v0", pst_const_f32(g, 1, NULL), 1);
    pst_graph_pop_device(g);
    pst_graph_push_device(g, "/job:ps/task:1");
    pst_output v1 = pst_variable(g, "v1", pst_const_f32(g, 1, NULL), 1);
    pst_node_builder *nb = pst_nb_new(g, "PstSyncApplyGradientDescent", "wait_for_two");
    pst_output in[4] = {v1, pst_const_f32(g, 0.5f, NULL), pst_const_f32(g, 1, NULL),
                        pst_const_i64(g, 0, NULL)};
    pst_nb_inputs(nb, 4, in);
    pst_nb_attr_type(nb, "T", PST_FLOAT);
    pst_nb_attr_i(nb, "replicas_to_aggregate", 2);
    pst_nb_attr_i(nb, "timeout_ms", 1000);
    pst_output upd = pst_nb_finish_out(nb);
    pst_graph_pop_device(g);
    pst_output read0 = pst_variable_value(v0);
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    pst_dist_run *r = pst_dist_run_new(j.w[0], g, 1, &read0, 1, &upd.node, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    pst_tensor *out[1] = {NULL};
    double t0 = pst_clock_now();
    ck_assert_int_eq(pst_dist_run_step(r, NULL, 0, out, &st), PST_E_PRECONDITION);
    double took = pst_clock_now() - t0;
    ck_assert_msg(strstr(st.msg, "uninitialized value v0") != NULL, "%s", st.msg);
    ck_assert_msg(strstr(st.msg, pst_task_address(j.ps[0])) != NULL, "%s", st.msg);
    ck_assert_msg(took >= 0.9, "the step returned after %.3f s, before PS 1's call ended", took);
    ck_assert_ptr_null(out[0]);
    pst_dist_run_free(r);
    pst_test_job_stop(&j);
    pst_graph_free(g);
}
END_TEST

/* Feeds are matched to the worker's partition once, when the run is made: the graph's own
 * placeholder is fed, another graph's node of the same name is not this run's (ignored, so the
 * placeholder is unfed), and a feed of a node the run does not need is ignored. */
START_TEST(test_inproc_feeds_resolved_once) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "inproc", NULL);
    pst_test_model m = pst_test_linear_model(1, "/job:worker/task:0");
    pst_status st = {0};
    pst_dist_run *init = pst_dist_run_new(j.w[0], m.g, 0, NULL, 1, &m.init, &st);
    ck_assert_msg(init && pst_dist_run_step(init, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pst_output pred = pst_out(pst_graph_find(m.g, "pred"), 0);
    pst_dist_run *r = pst_dist_run_new(j.w[0], m.g, 1, &pred, 0, NULL, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    pst_test_model other = pst_test_linear_model(0, NULL);
    pst_tensor *xv, *yv;
    pst_test_linear_batch(0, &xv, &yv);
    pst_tensor *out[1] = {NULL};
    pst_feed right[2] = {{m.x, xv}, {m.y, yv}}; /* y: not needed for pred */
    ck_assert_msg(pst_dist_run_step(r, right, 2, out, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(out[0]->shape.dims[1], 3);
    pst_tensor_unref(out[0]);
    out[0] = NULL;
    pst_feed wrong[1] = {{other.x, xv}};
    ck_assert_int_lt(pst_dist_run_step(r, wrong, 1, out, &st), 0);
    ck_assert_msg(strstr(st.msg, "'x'") != NULL || strstr(st.msg, " x") != NULL, "%s", st.msg);
    ck_assert_ptr_null(out[0]);
    pst_dist_run_free(r);
    pst_dist_run_free(init);
    pst_tensor_unref(xv);
    pst_tensor_unref(yv);
    pst_test_job_stop(&j);
    pst_graph_free(other.g);
    pst_graph_free(m.g);
}
END_TEST

/* embedding_lookup on a table partitioned over 2 PS: the lookup returns the asked rows, the PS
 * send only those rows, and SGD's sparse gradient changes only those rows, by exactly -lr times
 * the summed gradient of their occurrences. */
START_TEST(test_inproc_embedding_sparse) {
    pst_test_job j;
    pst_test_job_start(&j, 2, 1, "inproc", NULL);
    pst_task *wk = j.w[0];
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    pst_replica_setter *rs = pst_replica_setter_new(2, "/job:worker/task:0", PST_PLACE_ROUND_ROBIN, &st);
    pst_graph_set_device_fn(g, pst_replica_setter_fn, rs);
    pst_initializer init = pst_init_random_uniform(-1, 1, 7);
    pst_partitioned_var *pv = pst_partitioned_var_new(g, "emb", PST_FLOAT, pst_shape_2d(1000, 8), 2, &init, 1);
    ck_assert_msg(pv != NULL, "%s", pst_graph_status(g)->msg);
    pst_output ids = pst_placeholder(g, "ids", PST_INT64, pst_shape_1d(4));
    pst_output look = pst_embedding_lookup(g, pv, ids, "lookup");
    pst_tensor *wv = pst_test_rand(PST_FLOAT, pst_shape_2d(4, 8), 9, -1, 1);
    pst_output loss = pst_reduce_sum(g, pst_mul(g, look, pst_const(g, wv, "w"), NULL), 0, NULL, 0, "loss");
    pst_optimizer_opts oo = pst_optimizer_defaults(PST_OPT_SGD, 0.5f);
    pst_node *train = pst_optimizer_minimize(g, &oo, loss, 0, NULL, pst_out(NULL, 0), "train");
    pst_node *ini = pst_global_variables_initializer(g);
    pst_graph_set_device_fn(g, NULL, NULL);
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    /* the rows are gathered on the PS */
    ck_assert_ptr_nonnull(strstr(pst_graph_find(g, "lookup/gather_1")->device, "/job:ps/task:1"));
    pst_dist_run *r = pst_dist_run_new(wk, g, 0, NULL, 1, &ini, &st);
    ck_assert_msg(r && pst_dist_run_step(r, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    const char *names[2] = {"emb/part_0", "emb/part_1"};
    pst_tensor *before[2], *after[2];
    ck_assert_int_eq(pst_task_client_pull_variables(wk, "/job:ps/task:0", 1, names, &before[0], &st), 0);
    ck_assert_int_eq(pst_task_client_pull_variables(wk, "/job:ps/task:1", 1, names + 1, &before[1], &st), 0);
    pst_task_status_report rep0;
    ck_assert_int_eq(pst_task_client_query_report(pst_task_transport(wk), pst_task_address(j.ps[0]), 2000, &rep0, &st), 0);
    int64_t sent0 = rep0.bytes_sent, recv0 = rep0.bytes_received;
    pst_task_status_report_destroy(&rep0);
    pst_dist_run *tr = pst_dist_run_new(wk, g, 1, &look, 1, &train, &st);
    ck_assert_msg(tr != NULL, "%s", st.msg);
    pst_tensor *idv = pst_tensor_new(PST_INT64, pst_shape_1d(4), &st);
    int64_t idl[4] = {3, 998, 3, 7};
    memcpy(idv->data, idl, sizeof idl);
    pst_feed f = {ids, idv};
    pst_tensor *out[1];
    ck_assert_msg(pst_dist_run_step(tr, &f, 1, out, &st) == 0, "%s", st.msg);
    /* the lookup is the asked rows (rows >= 500 live in part 1) */
    for (int i = 0; i < 4; i++) {
        int p = idl[i] >= 500;
        int64_t row = idl[i] - (p ? 500 : 0);
        for (int k = 0; k < 8; k++)
            ck_assert_float_eq(pst_tensor_f32(out[0])[i * 8 + k], pst_tensor_f32(before[p])[row * 8 + k]);
    }
    pst_tensor_unref(out[0]);
    /* PS 0 sent its 3 looked-up rows (3 x 32 bytes), not its 500-row part (16000 bytes), and
     * received ids and 3 rows of gradient */
    ck_assert_int_eq(pst_task_client_query_report(pst_task_transport(wk), pst_task_address(j.ps[0]), 2000, &rep0, &st), 0);
    ck_assert_int_lt(rep0.bytes_sent - sent0, 1000);
    ck_assert_int_gt(rep0.bytes_sent - sent0, 0);
    ck_assert_int_lt(rep0.bytes_received - recv0, 1000);
    pst_task_status_report_destroy(&rep0);
    ck_assert_int_eq(pst_task_client_pull_variables(wk, "/job:ps/task:0", 1, names, &after[0], &st), 0);
    ck_assert_int_eq(pst_task_client_pull_variables(wk, "/job:ps/task:1", 1, names + 1, &after[1], &st), 0);
    const float *w = pst_tensor_f32(wv);
    for (int p = 0; p < 2; p++)
        for (int64_t row = 0; row < 500; row++) {
            int64_t id = row + p * 500;
            for (int k = 0; k < 8; k++) {
                double expect = pst_tensor_f32(before[p])[row * 8 + k];
                for (int i = 0; i < 4; i++)
                    if (idl[i] == id) expect -= 0.5 * w[i * 8 + k];
                ck_assert_msg(fabs(pst_tensor_f32(after[p])[row * 8 + k] - expect) < 1e-6,
                              "row %lld col %d", (long long)id, k);
            }
        }
    for (int p = 0; p < 2; p++) {
        pst_tensor_unref(before[p]);
        pst_tensor_unref(after[p]);
    }
    pst_tensor_unref(idv);
    pst_tensor_unref(wv);
    pst_dist_run_free(tr);
    pst_dist_run_free(r);
    pst_test_job_stop(&j);
    pst_partitioned_var_free(pv);
    pst_replica_setter_free(rs);
    pst_graph_free(g);
}
END_TEST

/* With an optimizer that has no sparse form (momentum), the rows' gradient is densified and
 * the result equals a single-process run of the same graph. */
static void embedding_momentum(int dist, pst_tensor **part0_out) {
    pst_test_job j = {0};
    pst_task *wk = NULL;
    if (dist) {
        pst_test_job_start(&j, 2, 1, "inproc", NULL);
        wk = j.w[0];
    }
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    pst_replica_setter *rs = pst_replica_setter_new(2, "/job:worker/task:0", PST_PLACE_ROUND_ROBIN, &st);
    if (dist) pst_graph_set_device_fn(g, pst_replica_setter_fn, rs);
    pst_initializer init = pst_init_random_uniform(-1, 1, 7);
    pst_partitioned_var *pv = pst_partitioned_var_new(g, "emb", PST_FLOAT, pst_shape_2d(10, 3), 2, &init, 1);
    pst_output ids = pst_const_i64_vec(g, 3, (int64_t[]){1, 8, 1}, "ids");
    pst_output look = pst_embedding_lookup(g, pv, ids, "lookup");
    pst_output loss = pst_reduce_sum(g, pst_square(g, look, NULL), 0, NULL, 0, "loss");
    pst_optimizer_opts oo = pst_optimizer_defaults(PST_OPT_MOMENTUM, 0.1f);
    oo.momentum = 0.9f;
    pst_node *train = pst_optimizer_minimize(g, &oo, loss, 0, NULL, pst_out(NULL, 0), "train");
    pst_node *ini = pst_global_variables_initializer(g);
    pst_graph_set_device_fn(g, NULL, NULL);
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    if (dist) {
        pst_dist_run *r = pst_dist_run_new(wk, g, 0, NULL, 1, &ini, &st);
        ck_assert_msg(r && pst_dist_run_step(r, NULL, 0, NULL, &st) == 0, "%s", st.msg);
        pst_dist_run *t = pst_dist_run_new(wk, g, 0, NULL, 1, &train, &st);
        for (int i = 0; i < 3; i++) ck_assert_msg(pst_dist_run_step(t, NULL, 0, NULL, &st) == 0, "%s", st.msg);
        *part0_out = pst_task_client_pull_variable(wk, "/job:ps/task:0", "emb/part_0", &st);
        pst_dist_run_free(t);
        pst_dist_run_free(r);
        pst_test_job_stop(&j);
    } else {
        pst_session *s = pst_session_new(g, NULL, &st);
        ck_assert_int_eq(pst_session_run_target(s, ini, &st), 0);
        for (int i = 0; i < 3; i++) ck_assert_int_eq(pst_session_run_target(s, train, &st), 0);
        *part0_out = pst_session_run1(s, pst_variable_value(pv->parts[0]), &st);
        pst_session_free(s);
    }
    ck_assert_msg(*part0_out != NULL, "%s", st.msg);
    pst_partitioned_var_free(pv);
    pst_replica_setter_free(rs);
    pst_graph_free(g);
}
START_TEST(test_inproc_embedding_dense_fallback) {
    pst_tensor *a, *b;
    embedding_momentum(1, &a);
    embedding_momentum(0, &b);
    pst_test_assert_close(a, b, 1e-6);
    /* row 1 moved, row 0 did not */
    pst_tensor *fresh;
    pst_graph *g = pst_graph_new();
    pst_initializer init = pst_init_random_uniform(-1, 1, 7);
    pst_partitioned_var *pv = pst_partitioned_var_new(g, "emb", PST_FLOAT, pst_shape_2d(10, 3), 2, &init, 1);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, pst_global_variables_initializer(g), &st);
    fresh = pst_session_run1(s, pst_variable_value(pv->parts[0]), &st);
    ck_assert_float_eq(pst_tensor_f32(fresh)[0], pst_tensor_f32(a)[0]);
    ck_assert_float_ne(pst_tensor_f32(fresh)[3], pst_tensor_f32(a)[3]);
    pst_tensor_unref(fresh);
    pst_session_free(s);
    pst_partitioned_var_free(pv);
    pst_graph_free(g);
    pst_tensor_unref(a);
    pst_tensor_unref(b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("dist_run");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_inproc_dist_matches_local);
    tcase_add_test(tc, test_grpc_dist_matches_local);
    tcase_add_test(tc, test_grpc_unreachable_ps_named);
    tcase_add_test(tc, test_grpc_ps_dies);
    tcase_add_test(tc, test_grpc_step_returns_after_every_call);
    tcase_add_test(tc, test_inproc_feeds_resolved_once);
    tcase_add_test(tc, test_inproc_embedding_sparse);
    tcase_add_test(tc, test_inproc_embedding_dense_fallback);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
