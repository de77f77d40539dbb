/* Session: the seed example, feeds, fetches, targets, variables and their errors. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "losses.h"
#include "nets.h"
#include "op.h"
#include "optimizer.h"
#include "parallel.h"
#include "testutil.h"
#include "variables.h"
#include "clock.h"

START_TEST(test_seed_variables_example) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_variable(g, "x", pst_const_f32(g, 20, NULL), 1);
    pst_output y = pst_variable(g, "y", pst_const_f32(g, 10, NULL), 1);
    pst_output xy[2] = {pst_variable_value(x), pst_variable_value(y)};
    pst_output z = pst_add(g, xy[0], xy[1], "z");
    pst_node *init = pst_global_variables_initializer(g);
    ck_assert_int_eq(pst_graph_error(g), 0);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    /* Before initializing: FailedPrecondition naming x. */
    ck_assert_ptr_null(pst_session_run1(s, z, &st));
    ck_assert_int_eq(st.code, PST_E_PRECONDITION);
    ck_assert_ptr_nonnull(strstr(st.msg, "Attempting to use uninitialized value x"));
    pst_status_clear(&st);
    ck_assert_int_eq(pst_session_run_target(s, init, &st), 0);
    pst_tensor *t = pst_session_run1(s, z, &st);
    ck_assert_ptr_nonnull(t);
    ck_assert_float_eq(pst_tensor_f32(t)[0], 30.0f);
    pst_tensor_unref(t);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_feed_wrong_dtype_names_placeholder) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "images", PST_FLOAT, pst_shape_2d(-1, 4));
    pst_output y = pst_identity(g, x, NULL);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *bad = pst_tensor_new_zeros(PST_INT32, pst_shape_2d(2, 4), NULL);
    pst_feed f = {x, bad};
    pst_tensor *out = NULL;
    ck_assert_int_eq(pst_session_run(s, &f, 1, &y, 1, NULL, 0, &out, &st), PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(st.msg, "'images'"));
    ck_assert_ptr_nonnull(strstr(st.msg, "int32"));
    ck_assert_ptr_null(out);
    pst_tensor_unref(bad);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_feed_wrong_shape_names_placeholder) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "images", PST_FLOAT, pst_shape_2d(-1, 4));
    pst_output y = pst_identity(g, x, NULL);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *bad = pst_tensor_new_zeros(PST_FLOAT, pst_shape_2d(2, 5), NULL);
    pst_feed f = {x, bad};
    pst_tensor *out = NULL;
    ck_assert_int_eq(pst_session_run(s, &f, 1, &y, 1, NULL, 0, &out, &st), PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(st.msg, "'images'"));
    ck_assert_ptr_nonnull(strstr(st.msg, "[2,5]"));
    ck_assert_ptr_nonnull(strstr(st.msg, "[?,4]"));
    pst_tensor *ok = pst_tensor_new_zeros(PST_FLOAT, pst_shape_2d(7, 4), NULL);
    f.value = ok;
    pst_status_clear(&st);
    ck_assert_int_eq(pst_session_run(s, &f, 1, &y, 1, NULL, 0, &out, &st), 0);
    ck_assert_int_eq(out->shape.dims[0], 7);
    pst_tensor_unref(out);
    pst_tensor_unref(ok);
    pst_tensor_unref(bad);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_unfed_placeholder_error) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "labels", PST_INT64, pst_shape_1d(-1));
    pst_output y = pst_identity(g, x, NULL);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_ptr_null(pst_session_run1(s, y, &st));
    ck_assert_ptr_nonnull(strstr(st.msg, "You must feed a value for placeholder tensor 'labels'"));
    ck_assert_ptr_nonnull(strstr(st.msg, "int64"));
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_only_needed_subgraph_runs) {
    /* An unfed placeholder on an unrelated branch must not be executed. */
    pst_graph *g = pst_graph_new();
    pst_output unused = pst_placeholder(g, "unused", PST_FLOAT, pst_shape_scalar());
    pst_identity(g, unused, "never");
    pst_output c = pst_const_f32(g, 4, "c");
    pst_output d = pst_identity(g, c, "d");
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *t = pst_session_run1(s, d, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    ck_assert_float_eq(pst_tensor_f32(t)[0], 4.0f);
    pst_tensor_unref(t);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_assign_add_and_sub) {
    pst_graph *g = pst_graph_new();
    pst_output v = pst_variable(g, "counter", pst_const_f32(g, 1, NULL), 0);
    pst_output inc = pst_assign_add(g, v, pst_const_f32(g, 2.5f, NULL), "inc");
    pst_output dec = pst_assign_sub(g, v, pst_const_f32(g, 1, NULL), "dec");
    pst_node *init = pst_global_variables_initializer(g);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(s, init, &st), 0);
    pst_tensor *t = pst_session_run1(s, inc, &st);
    ck_assert_float_eq(pst_tensor_f32(t)[0], 3.5f);
    pst_tensor_unref(t);
    t = pst_session_run1(s, inc, &st);
    ck_assert_float_eq(pst_tensor_f32(t)[0], 6.0f);
    pst_tensor_unref(t);
    t = pst_session_run1(s, dec, &st);
    ck_assert_float_eq(pst_tensor_f32(t)[0], 5.0f);
    pst_tensor_unref(t);
    t = pst_session_run1(s, pst_variable_value(v), &st);
    ck_assert_float_eq(pst_tensor_f32(t)[0], 5.0f);
    pst_tensor_unref(t);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_read_snapshot_survives_update) {
    /* A value fetched before an update keeps its old contents (copy-on-write). */
    pst_graph *g = pst_graph_new();
    pst_output v = pst_variable(g, "v", pst_const_f32(g, 1, NULL), 0);
    pst_output inc = pst_assign_add(g, v, pst_const_f32(g, 1, NULL), "inc");
    pst_node *init = pst_global_variables_initializer(g);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, init, &st);
    pst_tensor *before = pst_session_run1(s, pst_variable_value(v), &st);
    pst_tensor *after = pst_session_run1(s, inc, &st);
    ck_assert_float_eq(pst_tensor_f32(before)[0], 1.0f);
    ck_assert_float_eq(pst_tensor_f32(after)[0], 2.0f);
    pst_tensor_unref(before);
    pst_tensor_unref(after);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_control_dependencies_run_first) {
    pst_graph *g = pst_graph_new();
    pst_output v = pst_variable(g, "v", pst_const_f32(g, 0, NULL), 0);
    pst_output inc = pst_assign_add(g, v, pst_const_f32(g, 1, NULL), "inc");
    pst_node *deps[1] = {inc.node};
    /* Reading the variable itself (not its earlier snapshot) after the update. */
    pst_output after = pst_with_dependencies(g, 1, deps, v, "after");
    pst_node *init = pst_global_variables_initializer(g);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, init, &st);
    pst_tensor *t = pst_session_run1(s, after, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    ck_assert_float_eq(pst_tensor_f32(t)[0], 1.0f);
    pst_tensor_unref(t);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_gradient_of_unrelated_variable_is_none) {
    pst_graph *g = pst_graph_new();
    pst_output a = pst_variable(g, "a", pst_const_f32(g, 2, NULL), 1);
    pst_output b = pst_variable(g, "b", pst_const_f32(g, 3, NULL), 1);
    pst_output ins[2] = {pst_variable_value(a), pst_variable_value(a)};
    pst_output y = pst_add_n(g, 2, ins, "y");
    pst_output xs[2] = {a, b}, dxs[2];
    int none = 0;
    pst_status st = {0};
    ck_assert_int_eq(pst_gradients(g, 1, &y, NULL, 2, xs, dxs, &none, &st), 0);
    ck_assert_ptr_nonnull(dxs[0].node);
    ck_assert_ptr_null(dxs[1].node);
    ck_assert_int_eq(none, 1);
    pst_node *init = pst_global_variables_initializer(g);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, init, &st);
    pst_tensor *t = pst_session_run1(s, dxs[0], &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    ck_assert_float_eq(pst_tensor_f32(t)[0], 2.0f);
    pst_tensor_unref(t);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* ---- Inter-op concurrency ------------------------------------------------------------------
 * TestMeet: a pure op that waits (up to wait_ms) for a second TestMeet kernel to start and
 * outputs how many had started when it stopped waiting. Two independent ones meet only when
 * they really run at the same time. */
static pthread_mutex_t meet_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t meet_cv = PTHREAD_COND_INITIALIZER;
static int meet_arrived;

static int meet_kernel(pst_kernel_ctx *c) {
    int64_t wait_ms = pst_kctx_attr_i(c, "wait_ms", 0);
    struct timespec dl;
    pst_clock_deadline_in(&dl, wait_ms);
    pthread_mutex_lock(&meet_mu);
    meet_arrived++;
    pthread_cond_broadcast(&meet_cv);
    while (meet_arrived < 2)
        if (pthread_cond_timedwait(&meet_cv, &meet_mu, &dl) == ETIMEDOUT) break;
    int seen = meet_arrived;
    pthread_mutex_unlock(&meet_mu);
    pst_tensor *t = pst_kctx_alloc_output(c, 0, PST_FLOAT, c->inputs[0]->shape);
    if (t == NULL) return c->status->code;
    for (int64_t i = 0; i < t->n; i++) pst_tensor_f32(t)[i] = (float)seen;
    return 0;
}

static const pst_attr_spec meet_attrs[] = {{"wait_ms", PST_ATTR_INT, 0}, {0}};
static const pst_op_def meet_op = {.name = "TestMeet", .min_inputs = 1, .max_inputs = 1,
                                   .n_outputs = 1, .attrs = meet_attrs,
                                   .shape = pst_shape_same_as_input0, .kernel = meet_kernel,
                                   .flags = PST_OP_NOT_DIFFERENTIABLE};

static pst_output meet(pst_graph *g, pst_output x, int64_t wait_ms, const char *name) {
    pst_node_builder *b = pst_nb_new(g, "TestMeet", name);
    pst_nb_input(b, x);
    pst_nb_attr_i(b, "wait_ms", wait_ms);
    return pst_nb_finish_out(b);
}

/* Runs a and b together in a session with `threads` inter-op threads; returns what each saw. */
static void run_meet(pst_graph *g, pst_output a, pst_output b, int threads, float seen[2]) {
    pst_status st = {0};
    pst_session *s = pst_session_new(g, &(pst_session_opts){.inter_op_threads = threads}, &st);
    pst_output fetch[2] = {a, b};
    pst_tensor *out[2];
    meet_arrived = 0;
    ck_assert_msg(pst_session_run(s, NULL, 0, fetch, 2, NULL, 0, out, &st) == 0, "%s", st.msg);
    for (int i = 0; i < 2; i++) {
        seen[i] = pst_tensor_f32(out[i])[0];
        pst_tensor_unref(out[i]);
    }
    pst_session_free(s);
}

START_TEST(test_independent_branches_run_concurrently) {
    pst_op_register(&meet_op);
    pst_graph *g = pst_graph_new();
    pst_output c = pst_const_f32(g, 1, "c");
    /* Two branches after a shared input, each two ops deep. */
    pst_output a = meet(g, pst_square(g, c, "a0"), 20000, "a");
    pst_output b = meet(g, pst_square(g, c, "b0"), 20000, "b");
    float seen[2];
    run_meet(g, a, b, 2, seen);
    ck_assert_float_eq(seen[0], 2.0f);
    ck_assert_float_eq(seen[1], 2.0f);
    pst_graph_free(g);

    /* One thread: the first runs alone (gives up after its short wait), then the second. */
    g = pst_graph_new();
    c = pst_const_f32(g, 1, "c");
    a = meet(g, pst_square(g, c, "a0"), 50, "a");
    b = meet(g, pst_square(g, c, "b0"), 50, "b");
    run_meet(g, a, b, 1, seen);
    ck_assert_float_eq(seen[0], 1.0f);
    ck_assert_float_eq(seen[1], 2.0f);
    pst_graph_free(g);
}
END_TEST

/* A training step of a net with dropout, batch norm and Adam: every value after three steps is
 * bit for bit the same with 1 and with 4 inter-op threads, and helpers did run nodes. Kernels
 * split their loops over 2 threads too, so their partial sums must not depend on which
 * thread ran which range. */
START_TEST(test_concurrent_training_steps_equal_sequential) {
    pst_parallel_set_threads(2);
    pst_graph *g = pst_graph_new();
    pst_graph_set_seed(g, 7);
    pst_output x = pst_placeholder(g, "images", PST_FLOAT, pst_shape_4d(8, 28, 28, 1));
    pst_output y = pst_placeholder(g, "labels", PST_INT32, pst_shape_1d(8));
    pst_net_opts o = pst_net_defaults();
    pst_output logits = pst_net_lookup("cnn5")->build(g, x, &o);
    pst_loss_sparse_softmax_cross_entropy(g, logits, y, (pst_output){0}, NULL);
    pst_output total = pst_get_total_loss(g, 1, NULL);
    pst_optimizer_opts oo = pst_optimizer_defaults(PST_OPT_ADAM, 1e-3f);
    pst_node *train = NULL;
    pst_output after = pst_create_train_op(g, total, &oo, pst_train_global_step(g), 0, &train);
    pst_node *init = pst_global_variables_initializer(g);
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    pst_tensor *images = pst_test_rand(PST_FLOAT, pst_shape_4d(8, 28, 28, 1), 3, 0, 1);
    pst_tensor *labels = pst_tensor_new(PST_INT32, pst_shape_1d(8), NULL);
    for (int i = 0; i < 8; i++) ((int32_t *)labels->data)[i] = (i * 7) % 10;
    pst_feed feeds[2] = {{x, images}, {y, labels}};
    pst_session *s[2];
    float loss[2][3];
    int threads[2] = {1, 4};
    pst_status st = {0};
    for (int k = 0; k < 2; k++) {
        s[k] = pst_session_new(g, &(pst_session_opts){.inter_op_threads = threads[k]}, &st);
        ck_assert_int_eq(pst_session_run_target(s[k], init, &st), 0);
        for (int step = 0; step < 3; step++) {
            pst_tensor *out = NULL;
            ck_assert_msg(pst_session_run(s[k], feeds, 2, &after, 1, NULL, 0, &out, &st) == 0,
                          "%s", st.msg);
            loss[k][step] = pst_tensor_f32(out)[0];
            pst_tensor_unref(out);
        }
    }
    ck_assert_int_eq(pst_session_helper_nodes(s[0]), 0);
    ck_assert_int_gt(pst_session_helper_nodes(s[1]), 0);
    for (int step = 0; step < 3; step++) {
        ck_assert(isfinite(loss[0][step]));
        ck_assert_float_eq(loss[0][step], loss[1][step]);
    }
    int n;
    const pst_output *vars = pst_graph_collection(g, PST_GLOBAL_VARIABLES, &n);
    ck_assert_int_gt(n, 10);
    for (int i = 0; i < n; i++) {
        pst_tensor *v[2];
        for (int k = 0; k < 2; k++) {
            v[k] = pst_var_read(pst_var_store_find(pst_session_vars(s[k]), vars[i].node->name));
            ck_assert_ptr_nonnull(v[k]);
        }
        ck_assert_msg(v[0]->nbytes == v[1]->nbytes &&
                          memcmp(v[0]->data, v[1]->data, v[0]->nbytes) == 0,
                      "variable %s differs", vars[i].node->name);
        pst_tensor_unref(v[0]);
        pst_tensor_unref(v[1]);
    }
    for (int k = 0; k < 2; k++) pst_session_free(s[k]);
    pst_tensor_unref(images);
    pst_tensor_unref(labels);
    pst_graph_free(g);
}
END_TEST

/* Two independent nodes fail in one step: the error is always the one earlier in the graph,
 * as in a sequential run, and a stateful node after them never runs. */
START_TEST(test_concurrent_failure_reports_the_earliest) {
    pst_graph *g = pst_graph_new();
    pst_output a = pst_placeholder(g, "a", PST_FLOAT, pst_shape_2d(-1, -1));
    pst_output b = pst_placeholder(g, "b", PST_FLOAT, pst_shape_2d(-1, -1));
    pst_output bad1 = pst_matmul(g, a, a, 0, 0, "first_bad");
    pst_output bad2 = pst_matmul(g, b, b, 0, 0, "second_bad");
    pst_output counter = pst_variable(g, "counter", pst_const_f32(g, 0, NULL), 0);
    pst_output inc = pst_assign_add(g, counter, pst_const_f32(g, 1, NULL), "inc");
    pst_node *init = pst_global_variables_initializer(g);
    pst_tensor *m = pst_test_rand(PST_FLOAT, pst_shape_2d(2, 3), 1, 0, 1);
    pst_feed feeds[2] = {{a, m}, {b, m}};
    pst_output fetch[3] = {bad1, bad2, inc};
    for (int threads = 1; threads <= 4; threads += 3) {
        pst_status st = {0};
        pst_session *s = pst_session_new(g, &(pst_session_opts){.inter_op_threads = threads}, &st);
        ck_assert_int_eq(pst_session_run_target(s, init, &st), 0);
        for (int rep = 0; rep < 50; rep++) {
            pst_tensor *out[3];
            pst_status_clear(&st);
            ck_assert_int_eq(pst_session_run(s, feeds, 2, fetch, 3, NULL, 0, out, &st),
                             PST_E_INVALID);
            ck_assert_msg(strstr(st.msg, "'first_bad'") != NULL, "threads %d: %s", threads,
                          st.msg);
            for (int i = 0; i < 3; i++) ck_assert_ptr_null(out[i]);
        }
        pst_tensor *c = pst_session_run1(s, pst_variable_value(counter), &st);
        ck_assert_ptr_nonnull(c);
        ck_assert_float_eq(pst_tensor_f32(c)[0], 0.0f);
        pst_tensor_unref(c);
        pst_session_free(s);
    }
    pst_tensor_unref(m);
    pst_graph_free(g);
}
END_TEST

/* Resources dropped by key prefix are freed at once; the others stay until the store goes. */
static int freed_resources;
static void *make_counter(void *ctx, pst_status *st) {
    (void)st;
    return ctx;
}
static void free_counter(void *r) { freed_resources += *(int *)r; }

START_TEST(test_drop_resources_by_prefix) {
    pst_var_store *vs = pst_var_store_new();
    static int one = 1, ten = 10, hundred = 100;
    pst_status st = {0};
    freed_resources = 0;
    ck_assert_ptr_eq(pst_var_store_resource(vs, "iter:a", make_counter, &one, free_counter, &st), &one);
    ck_assert_ptr_eq(pst_var_store_resource(vs, "iter:b", make_counter, &ten, free_counter, &st), &ten);
    ck_assert_ptr_eq(pst_var_store_resource(vs, "queue:c", make_counter, &hundred, free_counter,
                                            &st), &hundred);
    ck_assert_int_eq(pst_var_store_drop_resources(vs, "iter:"), 2);
    ck_assert_int_eq(freed_resources, 11);
    ck_assert_ptr_null(pst_var_store_find_resource(vs, "iter:a"));
    ck_assert_ptr_eq(pst_var_store_find_resource(vs, "queue:c"), &hundred);
    ck_assert_int_eq(pst_var_store_drop_resources(vs, "iter:"), 0);
    pst_var_store_free(vs);
    ck_assert_int_eq(freed_resources, 111);
}
END_TEST

int main(void) {
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_seed_variables_example);
    tcase_add_test(tc, test_feed_wrong_dtype_names_placeholder);
    tcase_add_test(tc, test_feed_wrong_shape_names_placeholder);
    tcase_add_test(tc, test_unfed_placeholder_error);
    tcase_add_test(tc, test_only_needed_subgraph_runs);
    tcase_add_test(tc, test_assign_add_and_sub);
    tcase_add_test(tc, test_read_snapshot_survives_update);
    tcase_add_test(tc, test_control_dependencies_run_first);
    tcase_add_test(tc, test_gradient_of_unrelated_variable_is_none);
    suite_add_tcase(s, tc);
    TCase *io = tcase_create("inter_op");
    tcase_add_test(io, test_independent_branches_run_concurrently);
    tcase_add_test(io, test_concurrent_training_steps_equal_sequential);
    tcase_add_test(io, test_concurrent_failure_reports_the_earliest);
    tcase_add_test(io, test_drop_resources_by_prefix);
    tcase_set_timeout(io, 120);
    suite_add_tcase(s, io);
    return pst_test_main(s);
}
