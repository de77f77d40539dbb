/* Optimizer apply ops: the first two updates against values worked out by hand. */
#include <math.h>
#include <string.h>

#include "varstore.h"

#include "testutil.h"

typedef struct fixture {
    pst_graph *g;
    pst_session *s;
    pst_output var, s1, s2;
} fixture;

static pst_output var_f64(pst_graph *g, const char *name, double v) {
    return pst_variable(g, name, pst_const_f64(g, v, NULL), 1);
}

static void init_all(fixture *f) {
    pst_status st = {0};
    pst_node *init = pst_global_variables_initializer(f->g);
    ck_assert_msg(pst_graph_error(f->g) == 0, "%s", pst_graph_status(f->g)->msg);
    f->s = pst_session_new(f->g, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(f->s, init, &st), 0);
}

static double run_update(fixture *f, pst_output upd) {
    pst_status st = {0};
    pst_tensor *t = pst_session_run1(f->s, upd, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    double v = pst_tensor_f64(t)[0];
    pst_tensor_unref(t);
    return v;
}

static void done(fixture *f) {
    pst_session_free(f->s);
    pst_graph_free(f->g);
}

START_TEST(test_gradient_descent) {
    fixture f = {.g = pst_graph_new()};
    f.var = var_f64(f.g, "w", 1.0);
    pst_output upd = pst_apply_gradient_descent(f.g, f.var, pst_const_f64(f.g, 0.1, NULL),
                                                pst_const_f64(f.g, 2.0, NULL), NULL);
    init_all(&f);
    ck_assert_double_eq_tol(run_update(&f, upd), 1.0 - 0.1 * 2, 1e-12);
    ck_assert_double_eq_tol(run_update(&f, upd), 1.0 - 2 * 0.1 * 2, 1e-12);
    done(&f);
}
END_TEST

static void momentum_case(int nesterov) {
    fixture f = {.g = pst_graph_new()};
    f.var = var_f64(f.g, "w", 1.0);
    f.s1 = var_f64(f.g, "w/Momentum", 0.0);
    pst_output upd =
        pst_apply_momentum(f.g, f.var, f.s1, pst_const_f64(f.g, 0.1, NULL),
                           pst_const_f64(f.g, 2.0, NULL), pst_const_f64(f.g, 0.9, NULL), nesterov,
                           NULL);
    init_all(&f);
    double var = 1, acc = 0;
    for (int step = 0; step < 2; step++) {
        acc = 0.9 * acc + 2;
        var -= nesterov ? 0.1 * 2 + 0.1 * 0.9 * acc : 0.1 * acc;
        ck_assert_double_eq_tol(run_update(&f, upd), var, 1e-12);
    }
    /* Step 1: accum 2, var 0.8 (plain) / 0.62 (Nesterov). */
    done(&f);
}

START_TEST(test_momentum) { momentum_case(0); }
END_TEST
START_TEST(test_momentum_nesterov) { momentum_case(1); }
END_TEST

START_TEST(test_adam_first_two_steps) {
    fixture f = {.g = pst_graph_new()};
    f.var = var_f64(f.g, "w", 1.0);
    f.s1 = var_f64(f.g, "w/Adam", 0.0);
    f.s2 = var_f64(f.g, "w/Adam_1", 0.0);
    pst_output b1p = pst_placeholder(f.g, "b1p", PST_DOUBLE, pst_shape_scalar());
    pst_output b2p = pst_placeholder(f.g, "b2p", PST_DOUBLE, pst_shape_scalar());
    pst_output upd = pst_apply_adam(f.g, f.var, f.s1, f.s2, b1p, b2p, pst_const_f64(f.g, 0.1, NULL),
                                    pst_const_f64(f.g, 0.9, NULL), pst_const_f64(f.g, 0.999, NULL),
                                    pst_const_f64(f.g, 1e-8, NULL), pst_const_f64(f.g, 2.0, NULL),
                                    NULL);
    init_all(&f);
    /* By hand: step 1 moves var by exactly lr (m/sqrt(v) = 1 after bias correction): 0.9;
     * step 2 likewise: 0.8. */
    double expect[2] = {0.9, 0.8};
    for (int step = 1; step <= 2; step++) {
        pst_tensor *p1 = pst_tensor_scalar_f64(pow(0.9, step));
        pst_tensor *p2 = pst_tensor_scalar_f64(pow(0.999, step));
        pst_feed feeds[2] = {{b1p, p1}, {b2p, p2}};
        pst_tensor *out = pst_test_run(f.s, upd, 2, feeds);
        ck_assert_double_eq_tol(pst_tensor_f64(out)[0], expect[step - 1], 1e-6);
        pst_tensor_unref(out);
        pst_tensor_unref(p1);
        pst_tensor_unref(p2);
    }
    done(&f);
}
END_TEST

START_TEST(test_adagrad) {
    fixture f = {.g = pst_graph_new()};
    f.var = var_f64(f.g, "w", 1.0);
    f.s1 = var_f64(f.g, "w/Adagrad", 0.1);
    pst_output upd = pst_apply_adagrad(f.g, f.var, f.s1, pst_const_f64(f.g, 0.1, NULL),
                                       pst_const_f64(f.g, 2.0, NULL), NULL);
    init_all(&f);
    ck_assert_double_eq_tol(run_update(&f, upd), 1 - 0.2 / sqrt(4.1), 1e-12);
    ck_assert_double_eq_tol(run_update(&f, upd), 1 - 0.2 / sqrt(4.1) - 0.2 / sqrt(8.1), 1e-12);
    done(&f);
}
END_TEST

START_TEST(test_rmsprop) {
    fixture f = {.g = pst_graph_new()};
    f.var = var_f64(f.g, "w", 1.0);
    f.s1 = var_f64(f.g, "w/RMSProp", 1.0);
    f.s2 = var_f64(f.g, "w/RMSProp_1", 0.0);
    pst_output upd = pst_apply_rms_prop(
        f.g, f.var, f.s1, f.s2, pst_const_f64(f.g, 0.1, NULL), pst_const_f64(f.g, 0.9, NULL),
        pst_const_f64(f.g, 0.5, NULL), pst_const_f64(f.g, 1e-10, NULL),
        pst_const_f64(f.g, 2.0, NULL), NULL);
    init_all(&f);
    double ms1 = 0.9 * 1 + 0.1 * 4, mom1 = 0.1 * 2 / sqrt(ms1 + 1e-10);
    double ms2 = 0.9 * ms1 + 0.1 * 4, mom2 = 0.5 * mom1 + 0.1 * 2 / sqrt(ms2 + 1e-10);
    ck_assert_double_eq_tol(run_update(&f, upd), 1 - mom1, 1e-12);
    ck_assert_double_eq_tol(run_update(&f, upd), 1 - mom1 - mom2, 1e-12);
    done(&f);
}
END_TEST

START_TEST(test_scatter_sub_rows) {
    pst_graph *g = pst_graph_new();
    float init[6] = {1, 2, 3, 4, 5, 6};
    pst_output v = pst_variable(g, "emb", pst_const_f32_tensor(g, pst_shape_2d(3, 2), init, NULL), 1);
    int32_t idx[2] = {2, 0};
    float upd_vals[4] = {1, 1, 0.5f, 0.5f};
    pst_output upd = pst_scatter_sub(g, v, pst_const_i32_vec(g, 2, idx, NULL),
                                     pst_const_f32_tensor(g, pst_shape_2d(2, 2), upd_vals, NULL),
                                     NULL);
    int32_t bad_idx[1] = {3};
    float bad_vals[2] = {0, 0};
    pst_output bad = pst_scatter_sub(g, v, pst_const_i32_vec(g, 1, bad_idx, NULL),
                                     pst_const_f32_tensor(g, pst_shape_2d(1, 2), bad_vals, NULL),
                                     "bad_scatter");
    pst_node *initop = pst_global_variables_initializer(g);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, initop, &st);
    pst_tensor *t = pst_session_run1(s, upd, &st);
    int64_t dims[2] = {3, 2};
    double expect[6] = {0.5, 1.5, 3, 4, 4, 5};
    PST_ASSERT_TENSOR(t, 2, dims, expect, 1e-6);
    pst_tensor_unref(t);
    ck_assert_ptr_null(pst_session_run1(s, bad, &st));
    ck_assert_ptr_nonnull(strstr(st.msg, "bad_scatter"));
    ck_assert_ptr_nonnull(strstr(st.msg, "index 3"));
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_apply_on_non_variable_rejected) {
    pst_graph *g = pst_graph_new();
    pst_output c = pst_const_f32(g, 1, "not_a_var");
    pst_apply_gradient_descent(g, c, pst_const_f32(g, 0.1f, NULL), pst_const_f32(g, 1, NULL),
                               "sgd");
    ck_assert_int_eq(pst_graph_error(g), PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "'not_a_var') must be a variable"));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_apply_uninitialized_names_variable) {
    pst_graph *g = pst_graph_new();
    pst_output v = pst_variable(g, "weights", pst_const_f32(g, 1, NULL), 1);
    pst_output upd = pst_apply_gradient_descent(g, v, pst_const_f32(g, 0.1f, NULL),
                                                pst_const_f32(g, 1, NULL), NULL);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_ptr_null(pst_session_run1(s, upd, &st));
    ck_assert_int_eq(st.code, PST_E_PRECONDITION);
    ck_assert_ptr_nonnull(strstr(st.msg, "uninitialized value weights"));
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_train");
    TCase *tc = tcase_create("apply");
    tcase_add_test(tc, test_gradient_descent);
    tcase_add_test(tc, test_momentum);
    tcase_add_test(tc, test_momentum_nesterov);
    tcase_add_test(tc, test_adam_first_two_steps);
    tcase_add_test(tc, test_adagrad);
    tcase_add_test(tc, test_rmsprop);
    tcase_add_test(tc, test_scatter_sub_rows);
    tcase_add_test(tc, test_apply_on_non_variable_rejected);
    tcase_add_test(tc, test_apply_uninitialized_names_variable);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
