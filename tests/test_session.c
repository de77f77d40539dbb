/* Session: the seed example, feeds, fetches, targets, variables and their errors. */
#include <string.h>

#include "testutil.h"

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
    return pst_test_main(s);
}
