/* Layers API: argument scopes, naming (repeat/stack), regularizers, batch norm updates,
 * dropout modes, variables and their collections, and the model zoo's shapes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "losses.h"
#include "nets.h"
#include "optimizer.h"
#include "op.h"
#include "variables.h"
#include "testutil.h"
#include "regularizer.h"

static pst_node *find(pst_graph *g, const char *name) {
    pst_node *n = pst_graph_find(g, name);
    ck_assert_msg(n != NULL, "no node '%s'", name);
    return n;
}

static pst_output images(pst_graph *g, int h, int w, int c) {
    return pst_placeholder(g, "images", PST_FLOAT, pst_shape_4d(-1, h, w, c));
}

START_TEST(test_arg_scope_defaults_nesting_overrides) {
    /* The seed's example: conv1..conv3 share an initializer and regularizer; conv2 overrides
     * the padding; an inner scope changes the activation of fully connected layers only. */
    pst_graph *g = pst_graph_new();
    pst_output x = images(g, 8, 8, 3);
    pst_layer_args outer = {.set = PST_ARG_PADDING | PST_ARG_WEIGHTS_INIT | PST_ARG_WEIGHTS_REG,
                            .padding = "SAME",
                            .weights_init = pst_init_truncated_normal(0, 0.01, 1),
                            .weights_reg = pst_regularizer_l2(0.0005)};
    pst_arg_scope_push(PST_L_CONV2D | PST_L_FULLY_CONNECTED, &outer);
    pst_output c1 = pst_layer_conv2d(g, x, 4, 3, 3, NULL, "conv1");
    pst_layer_args valid = {.set = PST_ARG_PADDING, .padding = "VALID"};
    pst_output c2 = pst_layer_conv2d(g, c1, 4, 3, 3, &valid, "conv2");
    pst_layer_args inner = {.set = PST_ARG_ACTIVATION, .activation = PST_ACT_TANH};
    pst_arg_scope_push(PST_L_FULLY_CONNECTED, &inner);
    pst_output c3 = pst_layer_conv2d(g, c2, 4, 3, 3, NULL, "conv3");
    pst_output f = pst_layer_fully_connected(g, pst_layer_flatten(g, c3, NULL), 5, NULL, "fc");
    pst_arg_scope_pop();
    pst_output f2 = pst_layer_fully_connected(g, f, 5, NULL, "fc2");
    pst_arg_scope_pop();
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    ck_assert_str_eq(pst_node_attr_s(find(g, "conv1/Conv2D"), "padding", ""), "SAME");
    ck_assert_str_eq(pst_node_attr_s(find(g, "conv2/Conv2D"), "padding", ""), "VALID");
    ck_assert_str_eq(pst_node_attr_s(find(g, "conv3/Conv2D"), "padding", ""), "SAME");
    ck_assert_int_eq(pst_output_shape(c2).dims[1], 6);
    ck_assert_str_eq(f.node->op->name, "Tanh");
    ck_assert_str_eq(f2.node->op->name, "Relu");
    ck_assert_str_eq(pst_output_shape(c3).rank == 4 ? c3.node->op->name : "", "Relu");
    /* Every weight got the truncated normal initializer and an L2 regularizer. */
    ck_assert_str_eq(find(g, "conv2/weights/TruncatedNormal")->op->name, "TruncatedNormal");
    int n;
    pst_graph_collection(g, PST_REGULARIZATION_LOSSES, &n);
    ck_assert_int_eq(n, 5);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_slim_names_and_collections) {
    pst_graph *g = pst_graph_new();
    pst_output x = images(g, 4, 4, 1);
    pst_layer_conv2d(g, x, 2, 3, 3, NULL, NULL);
    pst_layer_conv2d(g, x, 2, 3, 3, NULL, NULL);
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    find(g, "Conv/weights");
    find(g, "Conv/biases");
    find(g, "Conv/Conv2D");
    find(g, "Conv/BiasAdd");
    find(g, "Conv/Relu");
    find(g, "Conv_1/weights");
    int nm, nt, ng;
    pst_graph_collection(g, PST_MODEL_VARIABLES, &nm);
    pst_graph_collection(g, PST_TRAINABLE_VARIABLES, &nt);
    pst_graph_collection(g, PST_GLOBAL_VARIABLES, &ng);
    ck_assert_int_eq(nm, 4);
    ck_assert_int_eq(nt, 4);
    ck_assert_int_eq(ng, 4);
    pst_graph_free(g);
}
END_TEST

static pst_output fc_layer(pst_graph *g, pst_output x, int i, void *ctx, const char *scope) {
    const int *sizes = ctx;
    return pst_layer_fully_connected(g, x, sizes[i], NULL, scope);
}

START_TEST(test_repeat_and_stack_names) {
    pst_graph *g = pst_graph_new();
    pst_output x = images(g, 8, 8, 2);
    pst_output f = pst_layer_flatten(g, x, NULL);
    static const int sizes[3] = {32, 64, 128};
    pst_output s = pst_layer_stack(g, f, 3, fc_layer, (void *)sizes, "fc");
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    find(g, "fc/fc_1/weights");
    find(g, "fc/fc_2/weights");
    find(g, "fc/fc_3/weights");
    ck_assert_int_eq(pst_output_shape(s).dims[1], 128);
    ck_assert_int_eq(pst_output_shape(pst_out(find(g, "fc/fc_2/weights"), 0)).dims[1], 64);
    pst_graph_free(g);
}
END_TEST

static pst_output conv3(pst_graph *g, pst_output x, int i, void *ctx, const char *scope) {
    (void)i;
    (void)ctx;
    return pst_layer_conv2d(g, x, 4, 3, 3, NULL, scope);
}

START_TEST(test_repeat_conv_names) {
    pst_graph *g = pst_graph_new();
    pst_output x = images(g, 8, 8, 2);
    pst_layer_repeat(g, x, 3, conv3, NULL, "conv3");
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    find(g, "conv3/conv3_1/weights");
    find(g, "conv3/conv3_2/Conv2D");
    find(g, "conv3/conv3_3/biases");
    pst_graph_free(g);
}
END_TEST

static double run_scalar(pst_session *s, pst_output o, int n, const pst_feed *f) {
    pst_tensor *t = pst_test_run(s, o, n, f);
    double v = pst_tensor_get_f64(t, 0);
    pst_tensor_unref(t);
    return v;
}

START_TEST(test_l2_regularizer_value) {
    pst_graph *g = pst_graph_new();
    float w0[4] = {1, -2, 3, 0.5f};
    pst_output w = pst_variable(g, "w", pst_const_f32_tensor(g, pst_shape_1d(4), w0, NULL), 1);
    pst_regularizer l2 = pst_regularizer_l2(0.1), l1 = pst_regularizer_l1(0.5), l1l2 = pst_regularizer_l1_l2(0.5, 0.1);
    pst_output r2 = pst_regularizer_build(g, &l2, pst_variable_value(w));
    pst_output r1 = pst_regularizer_build(g, &l1, pst_variable_value(w));
    pst_output r12 = pst_regularizer_build(g, &l1l2, pst_variable_value(w));
    pst_node *init = pst_global_variables_initializer(g);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, init, &st);
    double sumsq = 1 + 4 + 9 + 0.25, sumabs = 1 + 2 + 3 + 0.5;
    ck_assert_double_eq_tol(run_scalar(s, r2, 0, NULL), 0.1 * sumsq / 2, 1e-6);
    ck_assert_double_eq_tol(run_scalar(s, r1, 0, NULL), 0.5 * sumabs, 1e-6);
    ck_assert_double_eq_tol(run_scalar(s, r12, 0, NULL), 0.5 * sumabs + 0.1 * sumsq / 2, 1e-6);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_dropout_training_vs_inference) {
    pst_graph *g = pst_graph_new();
    pst_graph_set_seed(g, 7);
    pst_output flag = pst_placeholder_with_default(g, pst_const_scalar(g, PST_BOOL, 1, NULL),
                                                   pst_shape_scalar(), "is_training");
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_2d(-1, 1000));
    pst_layer_args a = {.set = PST_ARG_IS_TRAINING | PST_ARG_KEEP_PROB,
                        .is_training = flag,
                        .keep_prob = 0.5f};
    pst_output y = pst_layer_dropout(g, x, &a, "dropout");
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *ones = pst_tensor_new(PST_FLOAT, pst_shape_2d(2, 1000), NULL);
    for (int64_t i = 0; i < ones->n; i++) pst_tensor_f32(ones)[i] = 1;
    pst_feed f[2] = {{x, ones}, {flag, NULL}};
    pst_tensor *tr = pst_test_run(s, y, 1, f);
    int zeros = 0, twos = 0;
    for (int64_t i = 0; i < tr->n; i++) {
        float v = pst_tensor_f32(tr)[i];
        ck_assert(v == 0.0f || v == 2.0f);
        zeros += v == 0.0f;
        twos += v == 2.0f;
    }
    ck_assert_int_gt(zeros, 800);
    ck_assert_int_gt(twos, 800);
    pst_tensor *no = pst_tensor_scalar_bool(0);
    f[1].value = no;
    pst_tensor *inf = pst_test_run(s, y, 2, f);
    for (int64_t i = 0; i < inf->n; i++) ck_assert_float_eq(pst_tensor_f32(inf)[i], 1.0f);
    pst_tensor_unref(tr);
    pst_tensor_unref(inf);
    pst_tensor_unref(no);
    pst_tensor_unref(ones);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_batch_norm_update_ops) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_2d(-1, 2));
    pst_layer_args a = {.set = PST_ARG_BN, .bn_decay = 0.9f, .bn_epsilon = 0.001f,
                        .bn_center = 1, .bn_scale = 1};
    pst_output y = pst_layer_batch_norm(g, x, &a, "bn");
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    int nu;
    const pst_output *ups = pst_graph_collection(g, PST_UPDATE_OPS, &nu);
    ck_assert_int_eq(nu, 2);
    pst_node *deps[2] = {ups[0].node, ups[1].node};
    pst_node *upd = pst_group(g, 2, deps, NULL);
    pst_node *init = pst_global_variables_initializer(g);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, init, &st);
    float xv[8] = {1, 10, 3, 20, 5, 30, 7, 40};
    pst_tensor *xt = pst_tensor_from_f32(pst_shape_2d(4, 2), xv);
    pst_feed f = {x, xt};
    pst_tensor *out = NULL;
    ck_assert_int_eq(pst_session_run(s, &f, 1, &y, 1, &upd, 1, &out, &st), 0);
    /* Normalized per column: mean 0. */
    double m0 = 0;
    for (int i = 0; i < 4; i++) m0 += pst_tensor_f32(out)[2 * i];
    ck_assert_double_eq_tol(m0, 0, 1e-4);
    pst_tensor *mm = pst_session_run1(s, pst_variable_value(pst_out(find(g, "bn/moving_mean"), 0)), &st);
    /* moving_mean = 0 - (0 - batch_mean) * 0.1 = 0.1 * [4, 25] */
    ck_assert_double_eq_tol(pst_tensor_f32(mm)[0], 0.4, 1e-5);
    ck_assert_double_eq_tol(pst_tensor_f32(mm)[1], 2.5, 1e-5);
    pst_tensor_unref(mm);
    pst_tensor_unref(out);
    pst_tensor_unref(xt);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_variable_scope_device_and_filters) {
    pst_graph *g = pst_graph_new();
    pst_layer_args dev = {.set = PST_ARG_DEVICE, .device = "/job:ps/task:1"};
    pst_arg_scope_push(PST_L_VARIABLE, &dev);
    pst_graph_push_name_scope(g, "model", 0);
    pst_output v = pst_layer_model_variable(g, "w", PST_FLOAT, pst_shape_2d(2, 2), NULL, NULL);
    pst_output l = pst_layer_variable(g, "counter", PST_FLOAT, pst_shape_scalar(), NULL, NULL);
    pst_graph_pop_name_scope(g);
    pst_arg_scope_pop();
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    ck_assert_str_eq(v.node->name, "model/w");
    ck_assert_str_eq(v.node->device, "/job:ps/task:1");
    ck_assert_str_eq(l.node->device, "/job:ps/task:1");
    int n;
    pst_graph_collection(g, PST_MODEL_VARIABLES, &n);
    ck_assert_int_eq(n, 1);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_zoo_output_shapes) {
    const char *names[] = {"softmax", "mlp", "simple_cnn", "cnn5", "lenet5"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        pst_graph *g = pst_graph_new();
        const pst_net_def *net = pst_net_lookup(names[i]);
        ck_assert_ptr_nonnull(net);
        pst_net_opts o = pst_net_defaults();
        o.training = 0;
        pst_output x = images(g, 28, 28, 1);
        pst_output logits = net->build(g, x, &o);
        ck_assert_msg(pst_graph_error(g) == 0, "%s: %s", names[i], pst_graph_status(g)->msg);
        pst_node *init = pst_global_variables_initializer(g);
        pst_status st = {0};
        pst_session *s = pst_session_new(g, NULL, &st);
        ck_assert_int_eq(pst_session_run_target(s, init, &st), 0);
        pst_tensor *in = pst_test_rand(PST_FLOAT, pst_shape_4d(3, 28, 28, 1), 1, 0, 1);
        pst_feed f = {x, in};
        pst_tensor *out = pst_test_run(s, logits, 1, &f);
        ck_assert_int_eq(out->shape.rank, 2);
        ck_assert_int_eq(out->shape.dims[0], 3);
        ck_assert_int_eq(out->shape.dims[1], 10);
        for (int64_t k = 0; k < out->n; k++) ck_assert(isfinite(pst_tensor_f32(out)[k]));
        pst_tensor_unref(out);
        pst_tensor_unref(in);
        pst_session_free(s);
        pst_graph_free(g);
    }
    ck_assert_ptr_null(pst_net_lookup("resnet9000"));
}
END_TEST

/* A zoo model's whole training graph (loss, regularization, gradients, Adam, global step)
 * uses only ops TensorFlow has, so its exported .meta loads in TensorFlow. */
START_TEST(test_zoo_training_graphs_use_tensorflow_ops) {
    const char *names[] = {"softmax", "mlp", "simple_cnn", "cnn5", "lenet5"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        pst_graph *g = pst_graph_new();
        pst_net_opts o = pst_net_defaults();
        o.weight_decay = 1e-4f;
        pst_output x = pst_placeholder(g, "images", PST_FLOAT, pst_shape_4d(-1, 28, 28, 1));
        pst_output y = pst_placeholder(g, "labels", PST_INT64, pst_shape_1d(-1));
        pst_output logits = pst_net_lookup(names[i])->build(g, x, &o);
        pst_loss_sparse_softmax_cross_entropy(g, logits, y, pst_out(NULL, 0), NULL);
        pst_optimizer_opts oo = pst_optimizer_defaults(PST_OPT_ADAM, 1e-3f);
        pst_node *train = NULL;
        pst_create_train_op(g, pst_get_total_loss(g, 1, NULL), &oo, pst_train_global_step(g), 0,
                            &train);
        ck_assert_msg(pst_graph_error(g) == 0, "%s: %s", names[i], pst_graph_status(g)->msg);
        ck_assert_ptr_nonnull(train);
        for (int id = 0; id < pst_graph_num_nodes(g); id++) {
            const char *op = pst_graph_node(g, id)->op->name;
            pst_node *n = pst_graph_node(g, id);
            ck_assert_msg(strncmp(op, "Pst", 3) != 0, "%s: node '%s' is a %s", names[i],
                          n->name, op);
            /* TensorFlow's attr for the shape's dtype defaults to int32: it must be set. */
            if (strcmp(op, "Reshape") == 0)
                ck_assert_msg(pst_node_attr_type(n, "Tshape", PST_DT_INVALID) ==
                                  pst_output_dtype(n->inputs[1]),
                              "%s: Reshape '%s' lacks Tshape", names[i], n->name);
        }
        pst_graph_free(g);
    }
}
END_TEST

START_TEST(test_get_variables_filters) {
    pst_graph *g = pst_graph_new();
    pst_output x = images(g, 8, 8, 1);
    pst_graph_push_name_scope(g, "vgg", 0);
    x = pst_layer_conv2d(g, x, 2, 3, 3, NULL, "conv1");
    x = pst_layer_conv2d(g, x, 2, 3, 3, NULL, "conv2");
    pst_layer_fully_connected(g, pst_layer_flatten(g, x, NULL), 3, NULL, "fc8");
    pst_graph_pop_name_scope(g);
    pst_output *v;
    ck_assert_int_eq(pst_get_variables(g, "vgg/conv1", NULL, NULL, &v), 2);
    free(v);
    ck_assert_int_eq(pst_get_variables(g, NULL, "weights", NULL, &v), 3);
    free(v);
    ck_assert_int_eq(pst_get_variables(g, "vgg", "biases", PST_TRAINABLE_VARIABLES, &v), 3);
    free(v);
    const char *excl[] = {"vgg/fc8", NULL};
    int n = pst_get_variables_to_restore(g, NULL, excl, &v);
    ck_assert_int_eq(n, 4);
    for (int i = 0; i < n; i++) ck_assert(strstr(v[i].node->name, "fc8") == NULL);
    free(v);
    const char *incl[] = {"vgg/conv2", "vgg/fc8", NULL};
    ck_assert_int_eq(pst_get_variables_to_restore(g, incl, excl, &v), 2);
    free(v);
    ck_assert_ptr_nonnull(pst_get_variable_by_name(g, "vgg/conv2/biases").node);
    ck_assert_ptr_null(pst_get_variable_by_name(g, "vgg/conv2").node);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_transpose_and_separable_convolutions) {
    pst_graph *g = pst_graph_new();
    pst_output x = images(g, 5, 5, 3);
    pst_layer_args lin = {.set = PST_ARG_ACTIVATION | PST_ARG_STRIDE, .activation = PST_ACT_NONE,
                          .stride_h = 2, .stride_w = 2};
    pst_output t = pst_layer_conv2d_transpose(g, x, 4, 3, 3, &lin, "deconv");
    pst_output s2 = pst_layer_separable_conv2d(g, x, 6, 3, 3, NULL, "sep");
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    ck_assert_int_eq(pst_output_shape(t).dims[1], 10);
    ck_assert_int_eq(pst_output_shape(s2).dims[3], 6);
    find(g, "sep/depthwise_weights");
    find(g, "sep/pointwise_weights");
    pst_node *init = pst_global_variables_initializer(g);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, init, &st);
    pst_tensor *in = pst_test_rand(PST_FLOAT, pst_shape_4d(2, 5, 5, 3), 3, -1, 1);
    pst_feed f = {x, in};
    pst_tensor *a = pst_test_run(s, t, 1, &f), *b = pst_test_run(s, s2, 1, &f);
    ck_assert_int_eq(a->shape.dims[0], 2);
    ck_assert_int_eq(a->shape.dims[2], 10);
    ck_assert_int_eq(a->shape.dims[3], 4);
    ck_assert_int_eq(b->shape.dims[1], 5);
    pst_tensor_unref(a);
    pst_tensor_unref(b);
    pst_tensor_unref(in);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_vgg16_one_training_step) {
    pst_graph *g = pst_graph_new();
    pst_output x = images(g, 224, 224, 3);
    pst_output y = pst_placeholder(g, "labels", PST_INT64, pst_shape_1d(-1));
    pst_net_opts o = pst_net_defaults();
    o.num_classes = 20;
    pst_output logits = pst_net_vgg16(g, x, &o);
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    find(g, "vgg_16/conv3/conv3_3/weights");
    find(g, "vgg_16/fc8/weights");
    pst_node *xe = pst_sparse_softmax_cross_entropy_with_logits(g, logits, y, NULL);
    pst_output loss = pst_reduce_mean(g, pst_out(xe, 0), 0, NULL, 0, "loss");
    pst_optimizer_opts opt = pst_optimizer_defaults(PST_OPT_SGD, 1e-3f);
    pst_node *train = pst_optimizer_minimize(g, &opt, loss, 0, NULL, pst_out(NULL, 0), NULL);
    ck_assert_msg(train != NULL, "%s", pst_graph_status(g)->msg);
    pst_node *init = pst_global_variables_initializer(g);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(s, init, &st), 0);
    pst_tensor *in = pst_test_rand(PST_FLOAT, pst_shape_4d(2, 224, 224, 3), 4, 0, 1);
    pst_tensor *lab = pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){3, 17});
    pst_feed f[2] = {{x, in}, {y, lab}};
    pst_tensor *l = NULL;
    ck_assert_msg(pst_session_run(s, f, 2, &loss, 1, &train, 1, &l, &st) == 0, "%s", st.msg);
    ck_assert(isfinite(pst_tensor_f32(l)[0]));
    ck_assert(pst_tensor_f32(l)[0] > 0);
    pst_tensor_unref(l);
    pst_tensor_unref(in);
    pst_tensor_unref(lab);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("layers");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_arg_scope_defaults_nesting_overrides);
    tcase_add_test(tc, test_slim_names_and_collections);
    tcase_add_test(tc, test_repeat_and_stack_names);
    tcase_add_test(tc, test_repeat_conv_names);
    tcase_add_test(tc, test_l2_regularizer_value);
    tcase_add_test(tc, test_dropout_training_vs_inference);
    tcase_add_test(tc, test_batch_norm_update_ops);
    tcase_add_test(tc, test_variable_scope_device_and_filters);
    tcase_add_test(tc, test_zoo_output_shapes);
    tcase_add_test(tc, test_zoo_training_graphs_use_tensorflow_ops);
    tcase_add_test(tc, test_get_variables_filters);
    tcase_add_test(tc, test_transpose_and_separable_convolutions);
    tcase_add_test(tc, test_vgg16_one_training_step);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
