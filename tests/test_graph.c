/* Graph building: names, scopes, devices, collections, attrs and build-time errors. */
#include <string.h>

#include "device.h"
#include "op.h"
#include "testutil.h"

START_TEST(test_unique_names_and_scopes) {
    pst_graph *g = pst_graph_new();
    pst_graph_push_name_scope(g, "cnn", 0);
    pst_graph_push_name_scope(g, "conv_block1", 0);
    pst_output a = pst_const_f32(g, 1, "kernel");
    pst_output b = pst_const_f32(g, 2, "kernel");
    pst_graph_pop_name_scope(g);
    pst_graph_push_name_scope(g, "conv_block1", 0);
    pst_output c = pst_const_f32(g, 3, "kernel");
    pst_graph_pop_name_scope(g);
    pst_graph_pop_name_scope(g);
    ck_assert_int_eq(pst_graph_error(g), 0);
    ck_assert_str_eq(a.node->name, "cnn/conv_block1/kernel");
    ck_assert_str_eq(b.node->name, "cnn/conv_block1/kernel_1");
    ck_assert_str_eq(c.node->name, "cnn/conv_block1_1/kernel");
    ck_assert_ptr_eq(pst_graph_find(g, "cnn/conv_block1/kernel_1"), b.node);
    pst_output o = pst_graph_output_by_name(g, "cnn/conv_block1/kernel:0");
    ck_assert_ptr_eq(o.node, a.node);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_device_parse_forms) {
    pst_status st = {0};
    char buf[128];
    ck_assert_int_eq(pst_device_canonical("/job:ps/task:1", buf, sizeof buf, &st), 0);
    ck_assert_str_eq(buf, "/job:ps/task:1");
    ck_assert_int_eq(pst_device_canonical("/cpu:0", buf, sizeof buf, &st), 0);
    ck_assert_str_eq(buf, "/device:CPU:0");
    ck_assert_int_eq(pst_device_canonical("/task:2/job:worker/device:CPU:0/replica:0", buf,
                                          sizeof buf, &st),
                     0);
    ck_assert_str_eq(buf, "/job:worker/replica:0/task:2/device:CPU:0");
    ck_assert_int_eq(pst_device_canonical("/job:*/task:3", buf, sizeof buf, &st), 0);
    ck_assert_str_eq(buf, "/task:3");
    pst_device_name d;
    ck_assert_int_eq(pst_device_parse("/job:ps/task:1/device:CPU:0", &d, &st), 0);
    pst_device_full_str(&d, buf, sizeof buf);
    ck_assert_str_eq(buf, "/job:ps/replica:0/task:1/device:CPU:0");
}
END_TEST

START_TEST(test_device_parse_errors) {
    const char *bad[] = {"job:ps", "/job:1ps", "/task:x", "/job:ps/tsk:1", "/device:CPU:z",
                         "/job:ps//task:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pst_status st = {0};
        pst_device_name d;
        ck_assert_int_eq(pst_device_parse(bad[i], &d, &st), PST_E_INVALID);
        ck_assert_msg(strstr(st.msg, bad[i]) != NULL, "message '%s' does not name '%s'", st.msg,
                      bad[i]);
    }
}
END_TEST

START_TEST(test_device_scopes_merge_inner_wins) {
    pst_graph *g = pst_graph_new();
    pst_graph_push_device(g, "/job:worker/task:0");
    pst_output a = pst_const_f32(g, 1, "a");
    pst_graph_push_device(g, "/task:1/cpu:0");
    pst_output b = pst_const_f32(g, 1, "b");
    pst_graph_push_device(g, "/job:ps");
    pst_output c = pst_const_f32(g, 1, "c");
    pst_graph_pop_device(g);
    pst_graph_pop_device(g);
    pst_graph_pop_device(g);
    pst_output d = pst_const_f32(g, 1, "d");
    ck_assert_str_eq(a.node->device, "/job:worker/task:0");
    ck_assert_str_eq(b.node->device, "/job:worker/task:1/device:CPU:0");
    ck_assert_str_eq(c.node->device, "/job:ps/task:1/device:CPU:0");
    ck_assert_str_eq(d.node->device, "");
    ck_assert_int_eq(pst_graph_push_device(g, "/job:bad/task:q"), PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "/task:q"));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_collections) {
    pst_graph *g = pst_graph_new();
    pst_output a = pst_const_f32(g, 1, "a"), b = pst_const_f32(g, 2, "b");
    pst_graph_add_to_collection(g, "train_var", a);
    pst_graph_add_to_collection(g, "train_var", b);
    pst_graph_add_to_collection(g, "train_var", a);
    pst_graph_add_to_collection(g, "hparams", b);
    int n;
    const pst_output *items = pst_graph_collection(g, "train_var", &n);
    ck_assert_int_eq(n, 2);
    ck_assert_ptr_eq(items[0].node, a.node);
    ck_assert_ptr_eq(items[1].node, b.node);
    pst_graph_collection(g, "nothing", &n);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(pst_graph_num_collections(g), 2);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_unknown_op_names_node) {
    pst_graph *g = pst_graph_new();
    pst_node *n = pst_nb_finish(pst_nb_new(g, "FrobnicateV9", "frob"));
    ck_assert_ptr_null(n);
    ck_assert_int_eq(pst_graph_error(g), PST_E_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "frob"));
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "FrobnicateV9"));
    /* Later builds are no-ops; the first error stays. */
    ck_assert_ptr_null(pst_const_f32(g, 1, "x").node);
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "FrobnicateV9"));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_wrong_input_count_names_node) {
    pst_graph *g = pst_graph_new();
    pst_output a = pst_const_f32(g, 1, "a");
    pst_node_builder *b = pst_nb_new(g, "Identity", "ident");
    pst_nb_input(b, a);
    pst_nb_input(b, a);
    ck_assert_ptr_null(pst_nb_finish(b));
    ck_assert_int_eq(pst_graph_error(g), PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "'ident'"));
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "takes 1 inputs, got 2"));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_attr_wrong_type_names_attr) {
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "Placeholder", "x");
    pst_nb_attr_i(b, "dtype", 1);
    ck_assert_ptr_null(pst_nb_finish(b));
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "attr 'dtype' must be type, got int"));
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "'x'"));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_missing_required_attr) {
    pst_graph *g = pst_graph_new();
    ck_assert_ptr_null(pst_nb_finish(pst_nb_new(g, "Placeholder", "x")));
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "missing required attr 'dtype'"));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_shape_mismatch_at_build) {
    pst_graph *g = pst_graph_new();
    pst_output a = pst_placeholder(g, "a", PST_FLOAT, pst_shape_2d(2, 3));
    pst_output b = pst_placeholder(g, "b", PST_FLOAT, pst_shape_2d(3, 3));
    pst_output outs[2] = {a, b};
    ck_assert_ptr_null(pst_add_n(g, 2, outs, "sum").node);
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "'sum'"));
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "[3,3]"));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_dtype_mismatch_at_build) {
    pst_graph *g = pst_graph_new();
    pst_output a = pst_const_f32(g, 1, "a");
    pst_output b = pst_const_i32(g, 1, "b");
    pst_output outs[2] = {a, b};
    ck_assert_ptr_null(pst_add_n(g, 2, outs, "sum").node);
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "int32"));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_variable_nodes_and_collections) {
    pst_graph *g = pst_graph_new();
    pst_graph_push_name_scope(g, "model", 0);
    pst_output w = pst_variable(g, "w", pst_const_f32(g, 1, NULL), 1);
    pst_output w2 = pst_variable(g, "w", pst_const_f32(g, 1, NULL), 0);
    pst_graph_pop_name_scope(g);
    ck_assert_int_eq(pst_graph_error(g), 0);
    ck_assert_str_eq(w.node->name, "model/w");
    ck_assert_str_eq(w2.node->name, "model/w_1");
    ck_assert_str_eq(pst_variable_value(w).node->name, "model/w/read");
    ck_assert_str_eq(pst_variable_initializer(w2)->name, "model/w_1/Assign");
    int n;
    pst_graph_collection(g, PST_GLOBAL_VARIABLES, &n);
    ck_assert_int_eq(n, 2);
    pst_graph_collection(g, PST_TRAINABLE_VARIABLES, &n);
    ck_assert_int_eq(n, 1);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_control_dependency_scope) {
    pst_graph *g = pst_graph_new();
    pst_node *first = pst_no_op(g, "first");
    pst_graph_push_control_deps(g, 1, &first);
    pst_output a = pst_const_f32(g, 1, "a");
    pst_graph_pop_control_deps(g);
    pst_output b = pst_const_f32(g, 1, "b");
    ck_assert_int_eq(a.node->n_control, 1);
    ck_assert_ptr_eq(a.node->control_inputs[0], first);
    ck_assert_int_eq(b.node->n_control, 0);
    pst_graph_free(g);
}
END_TEST

static void device_fn_ps(void *ctx, const pst_node *n, const char *req, char *out) {
    (void)ctx;
    if ((n->op->flags & PST_OP_VARIABLE) && req[0] == '\0') strcpy(out, "/job:ps/task:0");
}

START_TEST(test_device_function) {
    pst_graph *g = pst_graph_new();
    pst_graph_set_device_fn(g, device_fn_ps, NULL);
    pst_output w = pst_variable(g, "w", pst_const_f32(g, 1, "init"), 1);
    ck_assert_str_eq(w.node->device, "/job:ps/task:0");
    ck_assert_str_eq(pst_graph_find(g, "init")->device, "");
    ck_assert_str_eq(pst_variable_value(w).node->device, "/job:ps/task:0");
    pst_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("graph");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_unique_names_and_scopes);
    tcase_add_test(tc, test_device_parse_forms);
    tcase_add_test(tc, test_device_parse_errors);
    tcase_add_test(tc, test_device_scopes_merge_inner_wins);
    tcase_add_test(tc, test_collections);
    tcase_add_test(tc, test_unknown_op_names_node);
    tcase_add_test(tc, test_wrong_input_count_names_node);
    tcase_add_test(tc, test_attr_wrong_type_names_attr);
    tcase_add_test(tc, test_missing_required_attr);
    tcase_add_test(tc, test_shape_mismatch_at_build);
    tcase_add_test(tc, test_dtype_mismatch_at_build);
    tcase_add_test(tc, test_variable_nodes_and_collections);
    tcase_add_test(tc, test_control_dependency_scope);
    tcase_add_test(tc, test_device_function);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
