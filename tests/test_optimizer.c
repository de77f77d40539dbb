/* Optimizers through minimize(): slot names and placement, the first two updates of each
 * against hand-computed values, global step, clipping and create_train_op. */
#include <math.h>
#include <string.h>

#include "optimizer.h"
#include "testutil.h"

/* loss = sum(w * c) with w0 = [1, 2], c = [2, -1]: the gradient is c at every step. */
typedef struct problem {
    pst_graph *g;
    pst_output w, step;
    pst_node *train;
    pst_session *s;
} problem;

static problem setup(const pst_optimizer_opts *o) {
    problem p = {.g = pst_graph_new()};
    float w0[2] = {1, 2}, c[2] = {2, -1};
    pst_graph_push_device(p.g, "/job:ps/task:0");
    p.w = pst_variable(p.g, "w", pst_const_f32_tensor(p.g, pst_shape_1d(2), w0, NULL), 1);
    pst_graph_pop_device(p.g);
    pst_output loss = pst_reduce_sum(
        p.g,
        pst_mul(p.g, pst_variable_value(p.w), pst_const_f32_tensor(p.g, pst_shape_1d(2), c, NULL),
                NULL),
        0, NULL, 0, "loss");
    p.step = pst_train_global_step(p.g);
    p.train = pst_optimizer_minimize(p.g, o, loss, 0, NULL, p.step, NULL);
    ck_assert_msg(p.train != NULL, "%s", pst_graph_status(p.g)->msg);
    pst_node *init = pst_global_variables_initializer(p.g);
    pst_status st = {0};
    p.s = pst_session_new(p.g, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(p.s, init, &st), 0);
    return p;
}

static void step_and_check(problem *p, const double *expect) {
    pst_status st = {0};
    ck_assert_msg(pst_session_run_target(p->s, p->train, &st) == 0, "%s", st.msg);
    pst_tensor *w = pst_session_run1(p->s, pst_variable_value(p->w), &st);
    for (int i = 0; i < 2; i++) ck_assert_double_eq_tol(pst_tensor_f32(w)[i], expect[i], 1e-5);
    pst_tensor_unref(w);
}

static void teardown(problem *p) {
    pst_session_free(p->s);
    pst_graph_free(p->g);
}

static const double C[2] = {2, -1};

START_TEST(test_sgd_two_steps_and_global_step) {
    pst_optimizer_opts o = pst_optimizer_defaults(PST_OPT_SGD, 0.1f);
    problem p = setup(&o);
    double w[2] = {1, 2};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < 2; i++) w[i] -= 0.1 * C[i];
        step_and_check(&p, w);
    }
    pst_status st = {0};
    pst_tensor *gs = pst_session_run1(p.s, pst_variable_value(p.step), &st);
    ck_assert_int_eq(gs->dtype, PST_INT64);
    ck_assert_int_eq(pst_tensor_i64(gs)[0], 2);
    pst_tensor_unref(gs);
    teardown(&p);
}
END_TEST

START_TEST(test_momentum_two_steps) {
    pst_optimizer_opts o = pst_optimizer_defaults(PST_OPT_MOMENTUM, 0.1f);
    problem p = setup(&o);
    ck_assert_ptr_nonnull(pst_graph_find(p.g, "w/Momentum"));
    double w[2] = {1, 2}, acc[2] = {0, 0};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < 2; i++) {
            acc[i] = 0.9 * acc[i] + C[i];
            w[i] -= 0.1 * acc[i];
        }
        step_and_check(&p, w);
    }
    teardown(&p);
}
END_TEST

START_TEST(test_adam_two_steps_and_slot_names) {
    pst_optimizer_opts o = pst_optimizer_defaults(PST_OPT_ADAM, 0.1f);
    problem p = setup(&o);
    pst_node *m = pst_graph_find(p.g, "w/Adam"), *v = pst_graph_find(p.g, "w/Adam_1");
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_nonnull(pst_graph_find(p.g, "beta1_power"));
    ck_assert_ptr_nonnull(pst_graph_find(p.g, "beta2_power"));
    /* Slots live with their variable. */
    ck_assert_str_eq(m->device, "/job:ps/task:0");
    ck_assert_str_eq(pst_graph_find(p.g, "beta1_power")->device, "/job:ps/task:0");
    double w[2] = {1, 2}, mm[2] = {0, 0}, vv[2] = {0, 0};
    for (int s = 1; s <= 2; s++) {
        double lr_t = 0.1 * sqrt(1 - pow(0.999, s)) / (1 - pow(0.9, s));
        for (int i = 0; i < 2; i++) {
            mm[i] = 0.9 * mm[i] + 0.1 * C[i];
            vv[i] = 0.999 * vv[i] + 0.001 * C[i] * C[i];
            w[i] -= lr_t * mm[i] / (sqrt(vv[i]) + 1e-8);
        }
        step_and_check(&p, w);
    }
    teardown(&p);
}
END_TEST

START_TEST(test_adagrad_two_steps) {
    pst_optimizer_opts o = pst_optimizer_defaults(PST_OPT_ADAGRAD, 0.1f);
    problem p = setup(&o);
    ck_assert_ptr_nonnull(pst_graph_find(p.g, "w/Adagrad"));
    double w[2] = {1, 2}, acc[2] = {0.1, 0.1};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < 2; i++) {
            acc[i] += C[i] * C[i];
            w[i] -= 0.1 * C[i] / sqrt(acc[i]);
        }
        step_and_check(&p, w);
    }
    teardown(&p);
}
END_TEST

START_TEST(test_rmsprop_two_steps) {
    pst_optimizer_opts o = pst_optimizer_defaults(PST_OPT_RMSPROP, 0.1f);
    problem p = setup(&o);
    ck_assert_ptr_nonnull(pst_graph_find(p.g, "w/RMSProp"));
    ck_assert_ptr_nonnull(pst_graph_find(p.g, "w/RMSProp_1"));
    double w[2] = {1, 2}, ms[2] = {1, 1}, mom[2] = {0, 0};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < 2; i++) {
            ms[i] = 0.9 * ms[i] + 0.1 * C[i] * C[i];
            mom[i] = 0 * mom[i] + 0.1 * C[i] / sqrt(ms[i] + 1e-10);
            w[i] -= mom[i];
        }
        step_and_check(&p, w);
    }
    teardown(&p);
}
END_TEST

START_TEST(test_clip_by_global_norm) {
    pst_graph *g = pst_graph_new();
    float a[2] = {3, 0}, b[1] = {4};
    pst_output grads[2] = {pst_const_f32_tensor(g, pst_shape_1d(2), a, NULL),
                           pst_const_f32_tensor(g, pst_shape_1d(1), b, NULL)};
    pst_output clipped[2];
    pst_output norm = pst_clip_by_global_norm(g, 2, grads, 1.0f, clipped);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *n = pst_session_run1(s, norm, &st), *c0 = pst_session_run1(s, clipped[0], &st),
               *c1 = pst_session_run1(s, clipped[1], &st);
    ck_assert_double_eq_tol(pst_tensor_f32(n)[0], 5.0, 1e-5);
    ck_assert_double_eq_tol(pst_tensor_f32(c0)[0], 0.6, 1e-6);
    ck_assert_double_eq_tol(pst_tensor_f32(c1)[0], 0.8, 1e-6);
    pst_tensor_unref(n);
    pst_tensor_unref(c0);
    pst_tensor_unref(c1);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_no_gradient_for_any_variable_is_error) {
    pst_graph *g = pst_graph_new();
    pst_output w = pst_variable(g, "w", pst_const_f32(g, 1, NULL), 1);
    pst_output loss = pst_const_f32(g, 3, "constant_loss");
    pst_optimizer_opts o = pst_optimizer_defaults(PST_OPT_SGD, 0.1f);
    ck_assert_ptr_null(pst_optimizer_minimize(g, &o, loss, 1, &w, pst_out(NULL, 0), NULL));
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "no gradients"));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_create_train_op_runs_update_ops_first) {
    pst_graph *g = pst_graph_new();
    pst_output w = pst_variable(g, "w", pst_const_f32(g, 1, NULL), 1);
    pst_output counter = pst_variable(g, "counter", pst_const_f32(g, 0, NULL), 0);
    pst_graph_add_to_collection(g, PST_UPDATE_OPS,
                                pst_assign_add(g, counter, pst_const_f32(g, 1, NULL), "count"));
    pst_output loss = pst_square(g, pst_variable_value(w), "loss");
    pst_optimizer_opts o = pst_optimizer_defaults(PST_OPT_SGD, 0.25f);
    pst_node *train = NULL;
    pst_output after = pst_create_train_op(g, loss, &o, pst_train_global_step(g), 0, &train);
    ck_assert_msg(after.node != NULL, "%s", pst_graph_status(g)->msg);
    pst_node *init = pst_global_variables_initializer(g);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, init, &st);
    pst_tensor *l = pst_session_run1(s, after, &st);
    ck_assert_msg(l != NULL, "%s", st.msg);
    ck_assert_double_eq_tol(pst_tensor_f32(l)[0], 1.0, 1e-6); /* loss before the update */
    pst_tensor *wv = pst_session_run1(s, pst_variable_value(w), &st);
    ck_assert_double_eq_tol(pst_tensor_f32(wv)[0], 0.5, 1e-6); /* 1 - 0.25 * 2 */
    pst_tensor *cv = pst_session_run1(s, pst_variable_value(counter), &st);
    ck_assert_double_eq_tol(pst_tensor_f32(cv)[0], 1.0, 1e-6);
    pst_tensor_unref(l);
    pst_tensor_unref(wv);
    pst_tensor_unref(cv);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("optimizer");
    TCase *tc = tcase_create("optimizer");
    tcase_add_test(tc, test_sgd_two_steps_and_global_step);
    tcase_add_test(tc, test_momentum_two_steps);
    tcase_add_test(tc, test_adam_two_steps_and_slot_names);
    tcase_add_test(tc, test_adagrad_two_steps);
    tcase_add_test(tc, test_rmsprop_two_steps);
    tcase_add_test(tc, test_clip_by_global_norm);
    tcase_add_test(tc, test_no_gradient_for_any_variable_is_error);
    tcase_add_test(tc, test_create_train_op_runs_update_ops_first);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
