/* Synchronous replicas on a PS: gradients of a step averaged and applied once, late ones
 * dropped and counted, a lost replica failing the waiting step at once, naming the worker;
 * Adam's powers assigned once per step; a stopping task ending every wait. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dist_ops.h"
#include "op.h"
#include "ops.h"
#include "ps_sync.h"
#include "testutil.h"
#include "varstore.h"

/* Two replicas (separate graphs and sessions over one shared var store, as on a PS). */
typedef struct replica {
    pst_graph *g;
    pst_session *s;
    pst_output upd, step_out;
    pst_output grad_in, local_in;
    float grad;
    int64_t local;
    int rc;
    pst_status st;
} replica;

static void replica_build(replica *r, pst_var_store *vs, int need, int total) {
    r->g = pst_graph_new();
    pst_output w = pst_variable(r->g, "w", pst_const_f32(r->g, 1, NULL), 1);
    pst_output gs = pst_variable(r->g, "global_step", pst_const_i64(r->g, 0, NULL), 0);
    r->grad_in = pst_placeholder(r->g, "grad", PST_FLOAT, pst_shape_scalar());
    r->local_in = pst_placeholder(r->g, "local_step", PST_INT64, pst_shape_scalar());
    pst_output in[3] = {w, pst_const_f32(r->g, 0.5f, NULL), r->grad_in};
    r->upd = pst_sync_apply(r->g, "ApplyGradientDescent", 3, in, r->local_in, need, total, 0, 0, NULL);
    pst_node *deps[1] = {r->upd.node};
    pst_graph_push_control_deps(r->g, 1, deps);
    r->step_out = pst_sync_step_advance(r->g, gs, r->local_in, NULL);
    pst_graph_pop_control_deps(r->g);
    ck_assert_msg(pst_graph_error(r->g) == 0, "%s", pst_graph_status(r->g)->msg);
    pst_status st = {0};
    r->s = pst_session_new(r->g, &(pst_session_opts){.vars = vs}, &st);
}

static void *replica_step(void *arg) {
    replica *r = arg;
    pst_tensor *gt = pst_tensor_scalar_f32(r->grad), *lt = pst_tensor_scalar_i64(r->local);
    pst_feed f[2] = {{r->grad_in, gt}, {r->local_in, lt}};
    pst_tensor *out = NULL;
    pst_status_clear(&r->st);
    r->rc = pst_session_run(r->s, f, 2, &r->step_out, 1, NULL, 0, &out, &r->st);
    pst_tensor_unref(out);
    pst_tensor_unref(gt);
    pst_tensor_unref(lt);
    return NULL;
}

static float read_var(pst_var_store *vs, const char *name) {
    pst_tensor *t = pst_var_read(pst_var_store_find(vs, name));
    float v = (float)pst_tensor_get_f64(t, 0);
    pst_tensor_unref(t);
    return v;
}

/* Step 0 on replicas 0 and 1 at once: gradients 2 and 4 average to 3, w = 1 - 0.5 * 3. */
static void two_replicas_step0(replica *r, pst_var_store *vs) {
    r[0].grad = 2;
    r[1].grad = 4;
    r[0].local = r[1].local = 0;
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, replica_step, &r[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) ck_assert_msg(r[i].rc == 0, "%s", r[i].st.msg);
    ck_assert_float_eq_tol(read_var(vs, "w"), -0.5f, 1e-6);
}

START_TEST(test_sync_replicas_average_once) {
    pst_var_store *vs = pst_var_store_new();
    replica r[3];
    for (int i = 0; i < 3; i++) replica_build(&r[i], vs, 2, 3);
    pst_status st = {0};
    ck_assert_int_eq(pst_session_run_target(r[0].s, pst_global_variables_initializer(r[0].g), &st), 0);
    two_replicas_step0(r, vs);
    ck_assert_float_eq(read_var(vs, "global_step"), 1.0f);
    /* The backup replica arrives late for step 0: dropped, counted, nothing changes. */
    r[2].grad = 100;
    r[2].local = 0;
    replica_step(&r[2]);
    ck_assert_msg(r[2].rc == 0, "%s", r[2].st.msg);
    ck_assert_float_eq_tol(read_var(vs, "w"), -0.5f, 1e-6);
    ck_assert_float_eq(read_var(vs, "global_step"), 1.0f);
    ck_assert_int_eq(pst_ps_sync_stale(vs, "w"), 1);
    for (int i = 0; i < 3; i++) {
        pst_session_free(r[i].s);
        pst_graph_free(r[i].g);
    }
    pst_var_store_free(vs);
}
END_TEST

/* One replica of two sends gradient 1 for step `local` through the update build() makes on
 * w; returns the run's code (st its message), with w and its stale count afterwards. */
static int lone_gradient(pst_output (*build)(replica *r, pst_output *in), int64_t local,
                         pst_status *st, float *w_after, int64_t *stale) {
    pst_var_store *vs = pst_var_store_new();
    replica r;
    replica_build(&r, vs, 2, 2);
    pst_session_run_target(r.s, pst_global_variables_initializer(r.g), st);
    pst_output in[3] = {pst_out(pst_graph_find(r.g, "w"), 0), pst_const_f32(r.g, 0.5f, NULL), r.grad_in};
    pst_output upd = build(&r, in);
    ck_assert_ptr_nonnull(upd.node);
    pst_tensor *gt = pst_tensor_scalar_f32(1), *lt = pst_tensor_scalar_i64(local);
    pst_feed f[2] = {{r.grad_in, gt}, {r.local_in, lt}};
    pst_tensor *out = NULL;
    int rc = pst_session_run(r.s, f, 2, &upd, 1, NULL, 0, &out, st);
    pst_tensor_unref(out);
    *w_after = read_var(vs, "w");
    *stale = pst_ps_sync_stale(vs, "w");
    pst_tensor_unref(gt);
    pst_tensor_unref(lt);
    pst_session_free(r.s);
    pst_graph_free(r.g);
    pst_var_store_free(vs);
    return rc;
}

static pst_output short_wait_update(replica *r, pst_output *in) {
    pst_node_builder *nb = pst_nb_new(r->g, "PstSyncApplyGradientDescent", "short_wait");
    pst_nb_inputs(nb, 3, in);
    pst_nb_input(nb, r->local_in);
    pst_nb_attr_i(nb, "replicas_to_aggregate", 2);
    pst_nb_attr_i(nb, "timeout_ms", 100);
    return pst_nb_finish_out(nb);
}

/* Only one of two replicas ever arrives; a short wait gives up with an error. */
START_TEST(test_sync_timeout_names_variable) {
    pst_status st = {0};
    float w;
    int64_t stale;
    ck_assert_int_eq(lone_gradient(short_wait_update, 0, &st, &w, &stale), PST_E_DEADLINE);
    ck_assert_ptr_nonnull(strstr(st.msg, "variable 'w'"));
    ck_assert_ptr_nonnull(strstr(st.msg, "short_wait"));
}
END_TEST

static pst_output last_step_5_update(replica *r, pst_output *in) {
    return pst_sync_apply(r->g, "ApplyGradientDescent", 3, in, r->local_in, 2, 2, 0, 5,
                          "last_step_5");
}

/* The job's last step (attr last_step 5): a gradient for step 5 (a replica whose step began
 * as the others reached the end) is refused at once with PST_E_OUT_OF_RANGE, not after the
 * wait for a second replica, counted as stale and never applied. */
START_TEST(test_sync_gradient_past_last_step_refused) {
    pst_status st = {0};
    float w;
    int64_t stale;
    ck_assert_int_eq(lone_gradient(last_step_5_update, 5, &st, &w, &stale), PST_E_OUT_OF_RANGE);
    ck_assert_msg(strstr(st.msg, "step 5 of variable 'w' is past the job's last step 5") != NULL,
                  "%s", st.msg);
    ck_assert_float_eq(w, 1.0f);
    ck_assert_int_eq(stale, 1);
}
END_TEST

/* With 2 of 3 to aggregate: replica 2 goes (gone(vs, first)) and replicas 0 and 1 still
 * complete step 0; at step 1 replica 0 waits for a second gradient and replica 1 goes too
 * (gone(vs, second)). Returns replica 0's step-1 code, its message in msg; asserts step 1
 * was never applied. */
static int step1_after_two_gone(void (*gone)(pst_var_store *, const char *), const char *first,
                                const char *second, char *msg, size_t len) {
    pst_var_store *vs = pst_var_store_new();
    replica r[2];
    for (int i = 0; i < 2; i++) replica_build(&r[i], vs, 2, 3);
    pst_status st = {0};
    ck_assert_int_eq(pst_session_run_target(r[0].s, pst_global_variables_initializer(r[0].g), &st), 0);
    gone(vs, first);
    two_replicas_step0(r, vs);
    pthread_t th;
    r[0].grad = 1;
    r[0].local = 1;
    pthread_create(&th, NULL, replica_step, &r[0]);
    usleep(100 * 1000);
    gone(vs, second);
    pthread_join(th, NULL);
    snprintf(msg, len, "%s", r[0].st.msg);
    ck_assert_float_eq_tol(read_var(vs, "w"), -0.5f, 1e-6); /* step 1 never applied */
    for (int i = 0; i < 2; i++) {
        pst_session_free(r[i].s);
        pst_graph_free(r[i].g);
    }
    pst_var_store_free(vs);
    return r[0].rc;
}

/* Replicas lost: losing one still lets a step complete; after the second, a replica waiting
 * for its step fails at once with the reason, not at its timeout. */
START_TEST(test_sync_replica_lost_fails_waiting_step) {
    char msg[PST_STATUS_MSG_MAX];
    int rc = step1_after_two_gone(pst_ps_sync_replica_lost,
                                  "/job:worker/replica:0/task:2 failed: no answer",
                                  "/job:worker/replica:0/task:1 failed: no answer", msg, sizeof msg);
    ck_assert_int_eq(rc, PST_E_ABORTED);
    ck_assert_msg(strstr(msg, "2 of 3 replicas failed") != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, "task:1 failed: no answer") != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, "variable 'w'") != NULL, "%s", msg);
}
END_TEST

static void finished(pst_var_store *vs, const char *who) {
    (void)who;
    pst_ps_sync_replica_finished(vs);
}

/* Replicas finished (one backup): a replica whose step began as the other two reached the end
 * waits for a gradient that never comes; when they say they are done it fails at once with
 * PST_E_OUT_OF_RANGE saying why, not at its timeout. One finished replica alone does not end
 * a step the other two can still complete. */
START_TEST(test_sync_replicas_finished_end_waiting_step) {
    char msg[PST_STATUS_MSG_MAX];
    int rc = step1_after_two_gone(finished, NULL, NULL, msg, sizeof msg);
    ck_assert_int_eq(rc, PST_E_OUT_OF_RANGE);
    ck_assert_msg(strstr(msg, "2 of 3 replicas finished training") != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, "variable 'w'") != NULL, "%s", msg);
}
END_TEST

/* PstSyncAssignOnce: the first replica of a step assigns, the others of that step do not;
 * the next step assigns again. */
START_TEST(test_sync_assign_once_per_step) {
    pst_var_store *vs = pst_var_store_new();
    pst_graph *g = pst_graph_new();
    pst_output p = pst_variable(g, "beta1_power", pst_const_f32(g, 0.9f, NULL), 0);
    pst_output val = pst_placeholder(g, "value", PST_FLOAT, pst_shape_scalar());
    pst_output local = pst_placeholder(g, "local_step", PST_INT64, pst_shape_scalar());
    pst_output upd = pst_sync_assign_once(g, p, val, local, NULL);
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, &(pst_session_opts){.vars = vs}, &st);
    ck_assert_int_eq(pst_session_run_target(s, pst_global_variables_initializer(g), &st), 0);
    float values[4] = {0.81f, 0.5f, 0.729f, 0.1f};
    int64_t steps[4] = {0, 0, 1, 1};
    float expect[4] = {0.81f, 0.81f, 0.729f, 0.729f};
    for (int i = 0; i < 4; i++) {
        pst_tensor *vt = pst_tensor_scalar_f32(values[i]), *lt = pst_tensor_scalar_i64(steps[i]);
        pst_feed f[2] = {{val, vt}, {local, lt}};
        pst_tensor *out = NULL;
        ck_assert_msg(pst_session_run(s, f, 2, &upd, 1, NULL, 0, &out, &st) == 0, "%s", st.msg);
        ck_assert_float_eq_tol(pst_tensor_f32(out)[0], expect[i], 1e-7);
        pst_tensor_unref(out);
        pst_tensor_unref(vt);
        pst_tensor_unref(lt);
    }
    pst_session_free(s);
    pst_graph_free(g);
    pst_var_store_free(vs);
}
END_TEST

/* Stopping the task: a replica waiting for the others fails at once with the reason. */
START_TEST(test_sync_abort_ends_waits) {
    pst_var_store *vs = pst_var_store_new();
    replica r;
    replica_build(&r, vs, 2, 2);
    pst_status st = {0};
    ck_assert_int_eq(pst_session_run_target(r.s, pst_global_variables_initializer(r.g), &st), 0);
    r.grad = 1;
    r.local = 0;
    pthread_t th;
    pthread_create(&th, NULL, replica_step, &r);
    usleep(100 * 1000);
    pst_status why = {0};
    pst_status_set(&why, PST_E_CANCELLED, "/job:ps/replica:0/task:0 is shutting down");
    pst_ps_sync_abort(vs, &why);
    pthread_join(th, NULL);
    ck_assert_int_eq(r.rc, PST_E_CANCELLED);
    ck_assert_msg(strstr(r.st.msg, "is shutting down") != NULL, "%s", r.st.msg);
    ck_assert_int_eq(pst_ps_sync_stale(vs, "w"), 0);
    ck_assert_int_eq(pst_ps_sync_stale(vs, "no such variable"), 0);
    pst_session_free(r.s);
    pst_graph_free(r.g);
    pst_var_store_free(vs);
}
END_TEST

/* The accumulators are a resource of the store, not fields of pst_var: a store that never ran
 * a synchronous step has none. */
START_TEST(test_accumulators_are_a_store_resource) {
    pst_var_store *vs = pst_var_store_new();
    ck_assert_ptr_null(pst_var_store_find_resource(vs, PST_PS_SYNC_RESOURCE));
    pst_ps_sync_replica_lost(vs, "/job:worker/replica:0/task:1 failed");
    ck_assert_ptr_nonnull(pst_var_store_find_resource(vs, PST_PS_SYNC_RESOURCE));
    pst_var_store_free(vs);
}
END_TEST

/* Every op family registers distinct names: a second op of the same name would silently lose
 * its registration (the first one's kernel would run in its place). */
START_TEST(test_no_op_registered_twice) {
    pst_ops_init();
    pst_dist_ops_init();
    char first[128];
    int n = pst_op_registry_duplicates(first, sizeof first);
    ck_assert_msg(n == 0, "%d op registrations refused as duplicates, the first '%s'", n, first);
    ck_assert_int_gt(pst_op_registry_size(), 300);
}
END_TEST

int main(void) {
    pst_dist_ops_init();
    Suite *s = suite_create("ps_sync");
    TCase *tc = tcase_create("sync");
    tcase_add_test(tc, test_no_op_registered_twice);
    tcase_add_test(tc, test_sync_replicas_average_once);
    tcase_add_test(tc, test_sync_timeout_names_variable);
    tcase_add_test(tc, test_sync_replica_lost_fails_waiting_step);
    tcase_add_test(tc, test_sync_replicas_finished_end_waiting_step);
    tcase_add_test(tc, test_sync_gradient_past_last_step_refused);
    tcase_add_test(tc, test_sync_assign_once_per_step);
    tcase_add_test(tc, test_sync_abort_ends_waits);
    tcase_add_test(tc, test_accumulators_are_a_store_resource);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
