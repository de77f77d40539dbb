/* Task service and client calls (in one process, over the in-process transport and over gRPC
 * on 127.0.0.1): ports picked and reported, peers found by their cluster entry or by the
 * address they registered with, variables pushed and pulled in chunks, status, shutdown
 * accounting, the bounded RunGraph pool, and a task ending while steps wait. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "dist_run.h"
#include "ps_sync.h"
#include "task_client.h"
#include "task_status.h"
#include "testdist.h"
#include "testutil.h"
#include "varstore.h"

/* A cluster entry with port 0: the task binds a free port, reports it, and serves there. */
static void port_zero(const char *tr) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, tr, NULL);
    int port = pst_task_port(j.ps[0]);
    ck_assert_int_gt(port, 0);
    char expect[64];
    snprintf(expect, sizeof expect, "127.0.0.1:%d", port);
    ck_assert_str_eq(pst_task_address(j.ps[0]), expect);
    /* the worker finds it through its own cluster, which names that port */
    pst_status st = {0};
    pst_task_status_report r;
    ck_assert_msg(pst_task_client_report(j.w[0], "/job:ps/task:0", 0, &r, &st) == 0, "%s",
                  st.msg);
    ck_assert_str_eq(r.address, expect);
    ck_assert_str_eq(r.task, "/job:ps/replica:0/task:0");
    pst_task_status_report_destroy(&r);
    pst_test_job_stop(&j);
}
START_TEST(test_inproc_port_zero) { port_zero("inproc"); }
END_TEST
START_TEST(test_grpc_port_zero) { port_zero("grpc"); }
END_TEST

/* opts.listen picks the interface; the address others use keeps the cluster's host. */
START_TEST(test_grpc_listen_address) {
    pst_cluster *c = pst_test_cluster(1, 1, NULL);
    pst_status st = {0};
    pst_task_opts o = {.cluster = c, .job = "ps", .index = 0, .quiet = 1, .listen = "127.0.0.1:0"};
    pst_task *t = pst_task_new(&o, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    pst_transport *tr = pst_transport_grpc_new(pst_task_methods, PST_TASK_METHOD_COUNT, NULL, &st);
    pst_task_status_report r;
    ck_assert_msg(pst_task_client_query_report(tr, pst_task_address(t), 2000, &r, &st) == 0,
                  "%s", st.msg);
    pst_task_status_report_destroy(&r);
    pst_transport_free(tr);
    pst_task_free(t);
    pst_cluster_free(c);
}
END_TEST

/* A peer whose cluster entry has port 0 and that never registered cannot be reached: the
 * error names the device; once it registers a partition, the task knows its address. */
START_TEST(test_inproc_peer_learned_from_registration) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "inproc", NULL);
    pst_status st = {0};
    char addr[256];
    ck_assert_int_eq(pst_task_peer_address(j.ps[0], "/job:worker/task:0", addr, sizeof addr, &st),
                     PST_E_UNAVAILABLE);
    ck_assert_msg(strstr(st.msg, "/job:worker/task:0") != NULL, "%s", st.msg);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(pst_task_peer_address(j.ps[0], "/job:chief/task:0", addr, sizeof addr, &st),
                     PST_E_NOT_FOUND);
    ck_assert_msg(strstr(st.msg, "/job:chief/task:0") != NULL, "%s", st.msg);
    /* its own address, whatever the cluster says */
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(pst_task_peer_address(j.ps[0], "/job:ps/replica:0/task:0/device:CPU:0", addr,
                                           sizeof addr, &st), 0);
    ck_assert_str_eq(addr, pst_task_address(j.ps[0]));
    pst_test_model m = pst_test_linear_model(1, "/job:worker/task:0");
    pst_dist_run *init = pst_dist_run_new(j.w[0], m.g, 0, NULL, 1, &m.init, &st);
    ck_assert_msg(init != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_task_peer_address(j.ps[0], "/job:worker/task:0", addr, sizeof addr, &st),
                     0);
    ck_assert_str_eq(addr, pst_task_address(j.w[0]));
    pst_dist_run_free(init);
    pst_test_job_stop(&j);
    pst_graph_free(m.g);
}
END_TEST

/* A 20 MiB variable pushed and pulled in 1 MiB chunks arrives bit for bit. */
static void push_pull(const char *tr) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, tr, NULL);
    pst_task *wk = j.w[0];
    pst_tensor *v = pst_test_rand(PST_FLOAT, pst_shape_2d(1280, 4096), 5, -1, 1);
    pst_status st = {0};
    /* a PS takes pushes only to variables it holds */
    ck_assert_ptr_nonnull(pst_var_store_get_or_create(pst_task_vars(j.ps[0]), "big", PST_FLOAT,
                                                      v->shape, &st));
    ck_assert_ptr_nonnull(pst_var_store_get_or_create(pst_task_vars(j.ps[0]), "empty",
                                                      PST_FLOAT, pst_shape_2d(0, 3), &st));
    ck_assert_msg(pst_task_client_push_variable(wk, "/job:ps/task:0", "big", v, &st) == 0, "%s",
                  st.msg);
    pst_tensor *back = pst_task_client_pull_variable(wk, "/job:ps/task:0", "big", &st);
    ck_assert_msg(back != NULL, "%s", st.msg);
    ck_assert_int_eq(back->shape.rank, 2);
    ck_assert_int_eq(back->shape.dims[1], 4096);
    ck_assert(memcmp(back->data, v->data, v->nbytes) == 0);
    /* an empty tensor too */
    pst_tensor *e = pst_tensor_new(PST_FLOAT, pst_shape_2d(0, 3), &st);
    ck_assert_int_eq(pst_task_client_push_variable(wk, "/job:ps/task:0", "empty", e, &st), 0);
    pst_tensor *eb = pst_task_client_pull_variable(wk, "/job:ps/task:0", "empty", &st);
    ck_assert_msg(eb != NULL, "%s", st.msg);
    ck_assert_int_eq(eb->shape.dims[1], 3);
    /* both sides count the traffic */
    pst_task_status_report r;
    ck_assert_int_eq(pst_task_client_report(wk, "/job:ps/task:0", 0, &r, &st), 0);
    ck_assert_int_eq(r.bytes_received, v->nbytes);
    ck_assert_int_eq(r.bytes_sent, v->nbytes);
    ck_assert_int_eq(r.chunks_received, 20 + 1);
    pst_task_status_report_destroy(&r);
    ck_assert_int_eq(pst_task_client_report(wk, "/job:worker/task:0", 0, &r, &st), 0);
    ck_assert_int_eq(r.bytes_sent, v->nbytes);
    pst_task_status_report_destroy(&r);
    pst_tensor_unref(eb);
    pst_tensor_unref(e);
    pst_tensor_unref(back);
    pst_tensor_unref(v);
    pst_test_job_stop(&j);
}
START_TEST(test_inproc_push_pull) { push_pull("inproc"); }
END_TEST
START_TEST(test_grpc_push_pull) { push_pull("grpc"); }
END_TEST

/* The status after training: variables with pulls and updates, the partition with its steps,
 * as the report and as the text `pstrain-worker --status` prints. */
START_TEST(test_inproc_status_report_and_text) {
    pst_test_job j;
    pst_test_job_start(&j, 2, 1, "inproc", NULL);
    pst_test_model m = pst_test_linear_model(2, "/job:worker/task:0");
    pst_status st = {0};
    pst_dist_run *init = pst_dist_run_new(j.w[0], m.g, 0, NULL, 1, &m.init, &st);
    ck_assert_msg(init && pst_dist_run_step(init, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pst_dist_run *train = pst_dist_run_new(j.w[0], m.g, 1, &m.loss, 1, &m.train, &st);
    ck_assert_msg(train != NULL, "%s", st.msg);
    for (int i = 0; i < 6; i++) {
        pst_tensor *xv, *yv;
        pst_test_linear_batch(i, &xv, &yv);
        pst_feed f[2] = {{m.x, xv}, {m.y, yv}};
        pst_tensor *out[1];
        ck_assert_msg(pst_dist_run_step(train, f, 2, out, &st) == 0, "%s", st.msg);
        pst_tensor_unref(out[0]);
        pst_tensor_unref(xv);
        pst_tensor_unref(yv);
    }
    pst_task_status_report r;
    ck_assert_msg(pst_task_client_report(j.w[0], "/job:ps/task:0", 0, &r, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(r.n_vars, 1);
    ck_assert_str_eq(r.vars[0].name, "w");
    ck_assert_int_eq(r.vars[0].pulls, 6);
    ck_assert_int_eq(r.vars[0].updates, 7);
    ck_assert_int_eq(r.vars[0].bytes, 5 * 3 * 4);
    ck_assert_int_eq(r.n_partitions, 2); /* init, train */
    char *text = pst_task_status_text(&r);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "var w "));
    ck_assert_ptr_nonnull(strstr(text, "pulls 6"));
    ck_assert_ptr_nonnull(strstr(text, "updates 7")); /* init + 6 steps */
    ck_assert_ptr_nonnull(strstr(text, "from /job:worker/replica:0/task:0: 6 steps"));
    free(text);
    pst_task_status_report_destroy(&r);
    char **names = NULL;
    int *init_flags = NULL;
    int64_t *bytes = NULL;
    int n = pst_task_client_list_variables(j.w[0], "/job:ps/task:1", &names, &init_flags, &bytes,
                                           &st);
    ck_assert_msg(n == 1, "%s", st.msg);
    ck_assert_str_eq(names[0], "b");
    ck_assert_int_eq(init_flags[0], 1);
    ck_assert_int_eq(bytes[0], 12);
    free(names[0]);
    free(names);
    free(init_flags);
    free(bytes);
    pst_dist_run_free(train);
    pst_dist_run_free(init);
    pst_test_job_stop(&j);
    pst_graph_free(m.g);
}
END_TEST

/* Shutdown: the PS returns from its wait once every worker said done; a failure is reported. */
START_TEST(test_inproc_shutdown_after_workers) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 2, "inproc", NULL);
    pst_status st = {0};
    ck_assert_int_eq(pst_task_client_say_done(j.w[0], "/job:ps/task:0", 0, NULL, &st), 0);
    ck_assert_int_eq(pst_task_wait_shutdown(j.ps[0], 200, &st), PST_E_DEADLINE);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(pst_task_client_say_done(j.w[1], "/job:ps/task:0", 1, "out of data", &st), 0);
    ck_assert_int_lt(pst_task_wait_shutdown(j.ps[0], 2000, &st), 0);
    ck_assert_ptr_nonnull(strstr(st.msg, "/job:worker/replica:0/task:1 failed: out of data"));
    pst_test_job_stop(&j);
}
END_TEST

/* Worker k's synchronous update of w on PS 0 (2 replicas to aggregate, waiting timeout_ms for
 * the other). */
typedef struct sync_worker {
    pst_graph *g;
    pst_dist_run *run, *init;
    pst_status st;
    int rc;
} sync_worker;

static void sync_worker_build(sync_worker *w, pst_task *t, int k, int64_t timeout_ms) {
    memset(w, 0, sizeof *w);
    w->g = pst_graph_new();
    pst_graph_push_device(w->g, "/job:ps/task:0");
    pst_output v = pst_variable(w->g, "w", pst_const_f32(w->g, 1, NULL), 1);
    pst_output lr = pst_const_f32(w->g, 0.5f, NULL);
    pst_graph_pop_device(w->g);
    char dev[64];
    snprintf(dev, sizeof dev, "/job:worker/task:%d", k);
    pst_graph_push_device(w->g, dev);
    pst_output grad = pst_const_f32(w->g, 1, NULL), local = pst_const_i64(w->g, 0, NULL);
    pst_graph_pop_device(w->g);
    pst_node_builder *nb = pst_nb_new(w->g, "PstSyncApplyGradientDescent", "sync_update");
    pst_output in[4] = {v, lr, grad, local};
    pst_nb_inputs(nb, 4, in);
    pst_nb_attr_type(nb, "T", PST_FLOAT);
    pst_nb_attr_i(nb, "replicas_to_aggregate", 2);
    pst_nb_attr_i(nb, "total_replicas", 2);
    pst_nb_attr_i(nb, "timeout_ms", timeout_ms);
    pst_nb_device(nb, "/job:ps/task:0");
    pst_output upd = pst_nb_finish_out(nb);
    pst_node *ini = pst_global_variables_initializer(w->g);
    ck_assert_msg(pst_graph_error(w->g) == 0, "%s", pst_graph_status(w->g)->msg);
    pst_status st = {0};
    w->init = pst_dist_run_new(t, w->g, 0, NULL, 1, &ini, &st);
    ck_assert_msg(w->init != NULL, "%s", st.msg);
    w->run = pst_dist_run_new(t, w->g, 0, NULL, 1, &upd.node, &st);
    ck_assert_msg(w->run != NULL, "%s", st.msg);
}

static void *sync_worker_step(void *arg) {
    sync_worker *w = arg;
    w->rc = pst_dist_run_step(w->run, NULL, 0, NULL, &w->st);
    return NULL;
}

/* Waits until a synchronous step waits on the PS (its accumulators exist from then on). */
static void wait_sync_started(pst_task *ps) {
    for (int i = 0; i < 1000; i++) {
        if (pst_var_store_find_resource(pst_task_vars(ps), PST_PS_SYNC_RESOURCE)) return;
        usleep(10 * 1000);
    }
    ck_abort_msg("no synchronous step reached the PS within 10 s");
}

static void sync_worker_free(sync_worker *w) {
    pst_dist_run_free(w->run);
    pst_dist_run_free(w->init);
    pst_graph_free(w->g);
}

/* The RunGraph pool is bounded: with one thread and no queue, a PS busy with one replica's
 * synchronous step (waiting for the other) refuses the other replica's step at once with
 * ResourceExhausted naming itself, instead of starting a thread per call. */
START_TEST(test_grpc_run_pool_bounded) {
    pst_task_opts o = {.quiet = 1, .connect_timeout_ms = 5000, .recv_timeout_ms = 5000,
                       .run_threads = 1, .run_queue = -1};
    pst_test_job j;
    pst_test_job_start(&j, 1, 2, "grpc", &o);
    sync_worker w[2];
    for (int k = 0; k < 2; k++) sync_worker_build(&w[k], j.w[k], k, 5000);
    pst_status st = {0};
    /* w is initialized on the PS directly: a step run to initialize it would leave the only
     * run thread busy answering it for a moment after the answer arrived (and the step below
     * refused for that reason instead). */
    pst_var *wv = pst_var_store_get_or_create(pst_task_vars(j.ps[0]), "w", PST_FLOAT,
                                              pst_shape_scalar(), &st);
    ck_assert_msg(wv != NULL, "%s", st.msg);
    pst_tensor *one = pst_tensor_scalar_f32(1);
    ck_assert_msg(pst_var_assign(wv, one, 0, &st) == 0, "%s", st.msg);
    pst_tensor_unref(one);
    pthread_t th;
    pthread_create(&th, NULL, sync_worker_step, &w[0]);
    wait_sync_started(j.ps[0]); /* worker 0's step now waits on the PS's only run thread */
    ck_assert_int_eq(pst_dist_run_step(w[1].run, NULL, 0, NULL, &st), PST_E_EXHAUSTED);
    ck_assert_msg(strstr(st.msg, "/job:ps/replica:0/task:0 cannot take step") != NULL, "%s",
                  st.msg);
    ck_assert_msg(strstr(st.msg, "run_threads 1, run_queue 0") != NULL, "%s", st.msg);
    pthread_join(th, NULL);
    ck_assert_int_eq(w[0].rc, PST_E_DEADLINE); /* its partner never came */
    for (int k = 0; k < 2; k++) sync_worker_free(&w[k]);
    pst_test_job_stop(&j);
}
END_TEST

/* With room in the queue, both replicas' steps run (one at a time would deadlock: with two
 * threads they meet and the update applies once). */
START_TEST(test_grpc_run_pool_two_replicas_meet) {
    pst_task_opts o = {.quiet = 1, .connect_timeout_ms = 5000, .recv_timeout_ms = 5000,
                       .run_threads = 2, .run_queue = 4};
    pst_test_job j;
    pst_test_job_start(&j, 1, 2, "grpc", &o);
    sync_worker w[2];
    for (int k = 0; k < 2; k++) sync_worker_build(&w[k], j.w[k], k, 10000);
    pst_status st = {0};
    ck_assert_msg(pst_dist_run_step(w[0].init, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pthread_t th[2];
    for (int k = 0; k < 2; k++) pthread_create(&th[k], NULL, sync_worker_step, &w[k]);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    for (int k = 0; k < 2; k++) ck_assert_msg(w[k].rc == 0, "worker %d: %s", k, w[k].st.msg);
    pst_tensor *v = pst_task_client_pull_variable(j.w[0], "/job:ps/task:0", "w", &st);
    ck_assert_msg(v != NULL, "%s", st.msg);
    ck_assert_float_eq_tol(pst_tensor_f32(v)[0], 0.5f, 1e-6); /* 1 - 0.5 * mean(1, 1) */
    pst_tensor_unref(v);
    for (int k = 0; k < 2; k++) sync_worker_free(&w[k]);
    pst_test_job_stop(&j);
}
END_TEST

/* Freeing a PS whose step waits for a synchronous partner (5 minutes by default) ends the
 * wait at once: the worker's step fails and the free returns promptly. */
START_TEST(test_grpc_free_ends_sync_wait) {
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "grpc", NULL);
    sync_worker w;
    sync_worker_build(&w, j.w[0], 0, 300000);
    pst_status st = {0};
    ck_assert_msg(pst_dist_run_step(w.init, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pthread_t th;
    pthread_create(&th, NULL, sync_worker_step, &w);
    wait_sync_started(j.ps[0]);
    double t0 = pst_clock_now();
    pst_task_free(j.ps[0]);
    j.ps[0] = NULL;
    pthread_join(th, NULL);
    ck_assert_msg(pst_clock_now() - t0 < 10, "freeing took %.1f s", pst_clock_now() - t0);
    ck_assert_int_lt(w.rc, 0);
    sync_worker_free(&w);
    pst_test_job_stop(&j);
}
END_TEST

/* The defaults in effect: every deadline finite and derived from the job's timeouts. */
START_TEST(test_inproc_options_defaults) {
    pst_task_opts o = {.quiet = 1, .connect_timeout_ms = 1000, .recv_timeout_ms = 2000};
    pst_test_job j;
    pst_test_job_start(&j, 1, 1, "inproc", &o);
    const pst_task_opts *e = pst_task_options(j.w[0]);
    ck_assert_int_eq(e->peer_timeout_ms, 1000);
    ck_assert_int_gt(e->step_timeout_ms, 2000 + 1000 + 1000);
    ck_assert_int_lt(e->step_timeout_ms, 24LL * 3600 * 1000);
    ck_assert_int_ge(e->run_threads, 16);
    ck_assert_int_eq(e->run_queue, e->run_threads);
    pst_test_job_stop(&j);
}
END_TEST

int main(void) {
    Suite *s = suite_create("task");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_inproc_port_zero);
    tcase_add_test(tc, test_grpc_port_zero);
    tcase_add_test(tc, test_grpc_listen_address);
    tcase_add_test(tc, test_inproc_peer_learned_from_registration);
    tcase_add_test(tc, test_inproc_push_pull);
    tcase_add_test(tc, test_grpc_push_pull);
    tcase_add_test(tc, test_inproc_status_report_and_text);
    tcase_add_test(tc, test_inproc_shutdown_after_workers);
    tcase_add_test(tc, test_grpc_run_pool_bounded);
    tcase_add_test(tc, test_grpc_run_pool_two_replicas_meet);
    tcase_add_test(tc, test_grpc_free_ends_sync_wait);
    tcase_add_test(tc, test_inproc_options_defaults);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
