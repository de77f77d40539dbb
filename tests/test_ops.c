/* Forward values of the ops against hand-computed results, and their run-time errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_conv.h"
#include "testutil.h"

static pst_session *sess(pst_graph *g) {
    pst_status st = {0};
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    return pst_session_new(g, NULL, &st);
}

#define CHECK(g, out, rank, dims, vals)                                                           \
    do {                                                                                          \
        pst_session *s_ = sess(g);                                                                \
        pst_tensor *t_ = pst_test_run(s_, out, 0, NULL);                                          \
        PST_ASSERT_TENSOR(t_, rank, dims, vals, 1e-5);                                            \
        pst_tensor_unref(t_);                                                                     \
        pst_session_free(s_);                                                                     \
    } while (0)

static pst_output c2(pst_graph *g, int64_t r, int64_t c, const float *v) {
    return pst_const_f32_tensor(g, pst_shape_2d(r, c), v, NULL);
}

START_TEST(test_binary_broadcasting) {
    pst_graph *g = pst_graph_new();
    pst_output a = c2(g, 2, 3, (float[]){1, 2, 3, 4, 5, 6});
    pst_output row = pst_const_f32_tensor(g, pst_shape_1d(3), (float[]){10, 20, 30}, NULL);
    pst_output col = c2(g, 2, 1, (float[]){2, 4});
    CHECK(g, pst_add(g, a, row, NULL), 2, ((int64_t[]){2, 3}), ((double[]){11, 22, 33, 14, 25, 36}));
    CHECK(g, pst_sub(g, a, col, NULL), 2, ((int64_t[]){2, 3}), ((double[]){-1, 0, 1, 0, 1, 2}));
    CHECK(g, pst_mul(g, col, row, NULL), 2, ((int64_t[]){2, 3}), ((double[]){20, 40, 60, 40, 80, 120}));
    CHECK(g, pst_real_div(g, a, col, NULL), 2, ((int64_t[]){2, 3}), ((double[]){0.5, 1, 1.5, 1, 1.25, 1.5}));
    CHECK(g, pst_maximum(g, a, pst_const_f32(g, 3.5f, NULL), NULL), 2, ((int64_t[]){2, 3}),
          ((double[]){3.5, 3.5, 3.5, 4, 5, 6}));
    CHECK(g, pst_minimum(g, a, col, NULL), 2, ((int64_t[]){2, 3}), ((double[]){1, 2, 2, 4, 4, 4}));
    CHECK(g, pst_pow(g, col, pst_const_f32(g, 2, NULL), NULL), 2, ((int64_t[]){2, 1}), ((double[]){4, 16}));
    /* integer arithmetic */
    pst_output i = pst_const_i32_vec(g, 3, (int32_t[]){7, -3, 5}, NULL);
    CHECK(g, pst_add(g, i, pst_const_i32(g, 2, NULL), NULL), 1, ((int64_t[]){3}), ((double[]){9, -1, 7}));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_unary_and_activations) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_const_f32_tensor(g, pst_shape_1d(4), (float[]){-2, -0.5f, 0.5f, 8}, NULL);
    int64_t d[1] = {4};
    CHECK(g, pst_relu(g, x, NULL), 1, d, ((double[]){0, 0, 0.5, 8}));
    CHECK(g, pst_relu6(g, x, NULL), 1, d, ((double[]){0, 0, 0.5, 6}));
    CHECK(g, pst_leaky_relu(g, x, 0.1f, NULL), 1, d, ((double[]){-0.2, -0.05, 0.5, 8}));
    CHECK(g, pst_elu(g, x, NULL), 1, d, ((double[]){exp(-2) - 1, exp(-0.5) - 1, 0.5, 8}));
    CHECK(g, pst_sigmoid(g, x, NULL), 1, d,
          ((double[]){1 / (1 + exp(2)), 1 / (1 + exp(0.5)), 1 / (1 + exp(-0.5)), 1 / (1 + exp(-8))}));
    CHECK(g, pst_tanh(g, x, NULL), 1, d, ((double[]){tanh(-2), tanh(-0.5), tanh(0.5), tanh(8)}));
    CHECK(g, pst_neg(g, x, NULL), 1, d, ((double[]){2, 0.5, -0.5, -8}));
    CHECK(g, pst_square(g, x, NULL), 1, d, ((double[]){4, 0.25, 0.25, 64}));
    CHECK(g, pst_abs(g, x, NULL), 1, d, ((double[]){2, 0.5, 0.5, 8}));
    CHECK(g, pst_floor(g, x, NULL), 1, d, ((double[]){-2, -1, 0, 8}));
    pst_output p = pst_abs(g, x, NULL);
    CHECK(g, pst_sqrt(g, p, NULL), 1, d, ((double[]){sqrt(2), sqrt(0.5), sqrt(0.5), sqrt(8)}));
    CHECK(g, pst_rsqrt(g, p, NULL), 1, d, ((double[]){1 / sqrt(2), 1 / sqrt(0.5), 1 / sqrt(0.5), 1 / sqrt(8)}));
    CHECK(g, pst_exp(g, x, NULL), 1, d, ((double[]){exp(-2), exp(-0.5), exp(0.5), exp(8)}));
    CHECK(g, pst_log(g, p, NULL), 1, d, ((double[]){log(2), log(0.5), log(0.5), log(8)}));
    CHECK(g, pst_l2_loss(g, x, NULL), 0, NULL, ((double[]){(4 + 0.25 + 0.25 + 64) / 2}));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_comparisons_logic_cast_select) {
    pst_graph *g = pst_graph_new();
    pst_output a = pst_const_f32_tensor(g, pst_shape_1d(3), (float[]){1, 2, 3}, NULL);
    pst_output b = pst_const_f32_tensor(g, pst_shape_1d(3), (float[]){3, 2, 1}, NULL);
    int64_t d[1] = {3};
    CHECK(g, pst_equal(g, a, b, NULL), 1, d, ((double[]){0, 1, 0}));
    CHECK(g, pst_not_equal(g, a, b, NULL), 1, d, ((double[]){1, 0, 1}));
    CHECK(g, pst_less(g, a, b, NULL), 1, d, ((double[]){1, 0, 0}));
    CHECK(g, pst_less_equal(g, a, b, NULL), 1, d, ((double[]){1, 1, 0}));
    CHECK(g, pst_greater(g, a, b, NULL), 1, d, ((double[]){0, 0, 1}));
    CHECK(g, pst_greater_equal(g, a, b, NULL), 1, d, ((double[]){0, 1, 1}));
    pst_output lt = pst_less(g, a, b, NULL), ge = pst_greater_equal(g, a, b, NULL);
    CHECK(g, pst_logical_and(g, lt, ge, NULL), 1, d, ((double[]){0, 0, 0}));
    CHECK(g, pst_logical_or(g, lt, ge, NULL), 1, d, ((double[]){1, 1, 1}));
    CHECK(g, pst_logical_not(g, lt, NULL), 1, d, ((double[]){0, 1, 1}));
    CHECK(g, pst_cast(g, pst_const_f32_tensor(g, pst_shape_1d(3), (float[]){1.7f, -1.7f, 0}, NULL), PST_INT32, NULL),
          1, d, ((double[]){1, -1, 0}));
    CHECK(g, pst_select(g, lt, a, b, NULL), 1, d, ((double[]){1, 2, 1}));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_reductions_and_argmax) {
    pst_graph *g = pst_graph_new();
    pst_output x = c2(g, 2, 3, (float[]){1, 5, 3, 4, 2, 6});
    CHECK(g, pst_reduce_sum(g, x, 0, NULL, 0, NULL), 0, NULL, ((double[]){21}));
    CHECK(g, pst_reduce_sum(g, x, 1, (int32_t[]){0}, 0, NULL), 1, ((int64_t[]){3}), ((double[]){5, 7, 9}));
    CHECK(g, pst_reduce_mean(g, x, 1, (int32_t[]){-1}, 1, NULL), 2, ((int64_t[]){2, 1}), ((double[]){3, 4}));
    CHECK(g, pst_reduce_max(g, x, 1, (int32_t[]){1}, 0, NULL), 1, ((int64_t[]){2}), ((double[]){5, 6}));
    CHECK(g, pst_reduce_min(g, x, 1, (int32_t[]){0}, 0, NULL), 1, ((int64_t[]){3}), ((double[]){1, 2, 3}));
    CHECK(g, pst_reduce_prod(g, x, 1, (int32_t[]){1}, 0, NULL), 1, ((int64_t[]){2}), ((double[]){15, 48}));
    CHECK(g, pst_argmax(g, x, 1, PST_INT64, NULL), 1, ((int64_t[]){2}), ((double[]){1, 2}));
    CHECK(g, pst_argmin(g, x, 0, PST_INT32, NULL), 1, ((int64_t[]){3}), ((double[]){0, 1, 0}));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_array_ops) {
    pst_graph *g = pst_graph_new();
    pst_output x = c2(g, 2, 3, (float[]){1, 2, 3, 4, 5, 6});
    CHECK(g, pst_reshape(g, x, 2, (int64_t[]){3, -1}, NULL), 2, ((int64_t[]){3, 2}), ((double[]){1, 2, 3, 4, 5, 6}));
    CHECK(g, pst_shape_of(g, x, PST_INT32, NULL), 1, ((int64_t[]){2}), ((double[]){2, 3}));
    CHECK(g, pst_size_of(g, x, PST_INT32, NULL), 0, NULL, ((double[]){6}));
    CHECK(g, pst_transpose(g, x, 2, (int32_t[]){1, 0}, NULL), 2, ((int64_t[]){3, 2}), ((double[]){1, 4, 2, 5, 3, 6}));
    CHECK(g, pst_expand_dims(g, x, 0, NULL), 3, ((int64_t[]){1, 2, 3}), ((double[]){1, 2, 3, 4, 5, 6}));
    pst_output xs[2] = {x, x};
    CHECK(g, pst_concat(g, 2, xs, 1, NULL), 2, ((int64_t[]){2, 6}), ((double[]){1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6}));
    CHECK(g, pst_stack(g, 2, xs, 0, NULL), 3, ((int64_t[]){2, 2, 3}),
          ((double[]){1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6}));
    pst_output parts[3];
    pst_split(g, x, 1, 3, parts, NULL);
    CHECK(g, parts[1], 2, ((int64_t[]){2, 1}), ((double[]){2, 5}));
    pst_unstack(g, x, 2, 0, parts, NULL);
    CHECK(g, parts[1], 1, ((int64_t[]){3}), ((double[]){4, 5, 6}));
    CHECK(g, pst_slice(g, x, 2, (int64_t[]){0, 1}, (int64_t[]){2, 2}, NULL), 2, ((int64_t[]){2, 2}),
          ((double[]){2, 3, 5, 6}));
    CHECK(g, pst_strided_slice(g, x, 2, (int64_t[]){1, 0}, (int64_t[]){2, 3}, (int64_t[]){1, 2}, 0, 0, 1, NULL),
          1, ((int64_t[]){2}), ((double[]){4, 6}));
    CHECK(g, pst_strided_slice(g, x, 2, (int64_t[]){0, -1}, (int64_t[]){2, 0}, (int64_t[]){1, -1}, 1, 3, 0, NULL),
          2, ((int64_t[]){2, 3}), ((double[]){3, 2, 1, 6, 5, 4}));
    CHECK(g, pst_pad(g, x, 2, (int64_t[]){1, 0, 0, 1}, NULL), 2, ((int64_t[]){3, 4}),
          ((double[]){0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6, 0}));
    CHECK(g, pst_tile(g, x, 2, (int64_t[]){1, 2}, NULL), 2, ((int64_t[]){2, 6}),
          ((double[]){1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6}));
    CHECK(g, pst_gather(g, x, pst_const_i32_vec(g, 3, (int32_t[]){1, 1, 0}, NULL), 0, NULL), 2,
          ((int64_t[]){3, 3}), ((double[]){4, 5, 6, 4, 5, 6, 1, 2, 3}));
    CHECK(g, pst_gather(g, x, pst_const_i32_vec(g, 2, (int32_t[]){2, 0}, NULL), 1, NULL), 2,
          ((int64_t[]){2, 2}), ((double[]){3, 1, 6, 4}));
    CHECK(g, pst_one_hot(g, pst_const_i64_vec(g, 3, (int64_t[]){2, 0, 1}, NULL), 3, 1, 0, -1, NULL), 2,
          ((int64_t[]){3, 3}), ((double[]){0, 0, 1, 1, 0, 0, 0, 1, 0}));
    CHECK(g, pst_fill(g, 2, (int64_t[]){2, 2}, pst_const_f32(g, 7, NULL), NULL), 2, ((int64_t[]){2, 2}),
          ((double[]){7, 7, 7, 7}));
    CHECK(g, pst_range(g, pst_const_i32(g, 1, NULL), pst_const_i32(g, 8, NULL), pst_const_i32(g, 3, NULL), NULL),
          1, ((int64_t[]){3}), ((double[]){1, 4, 7}));
    CHECK(g, pst_squeeze(g, pst_const_f32_tensor(g, pst_shape_4d(1, 2, 1, 1), (float[]){3, 4}, NULL), 0, NULL, NULL),
          1, ((int64_t[]){2}), ((double[]){3, 4}));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_nn_forward) {
    pst_graph *g = pst_graph_new();
    pst_output a = c2(g, 2, 2, (float[]){1, 2, 3, 4}), b = c2(g, 2, 2, (float[]){5, 6, 7, 8});
    CHECK(g, pst_matmul(g, a, b, 0, 0, NULL), 2, ((int64_t[]){2, 2}), ((double[]){19, 22, 43, 50}));
    CHECK(g, pst_matmul(g, a, b, 1, 0, NULL), 2, ((int64_t[]){2, 2}), ((double[]){26, 30, 38, 44}));
    CHECK(g, pst_matmul(g, a, b, 0, 1, NULL), 2, ((int64_t[]){2, 2}), ((double[]){17, 23, 39, 53}));
    CHECK(g, pst_bias_add(g, a, pst_const_f32_tensor(g, pst_shape_1d(2), (float[]){10, 20}, NULL), NULL), 2,
          ((int64_t[]){2, 2}), ((double[]){11, 22, 13, 24}));
    /* A 3x3 image, 2x2 all-ones filter: VALID sums each 2x2 window; SAME pads bottom/right. */
    pst_output img = pst_const_f32_tensor(g, pst_shape_4d(1, 3, 3, 1), (float[]){1, 2, 3, 4, 5, 6, 7, 8, 9}, NULL);
    pst_output f = pst_const_f32_tensor(g, pst_shape_4d(2, 2, 1, 1), (float[]){1, 1, 1, 1}, NULL);
    CHECK(g, pst_conv2d(g, img, f, 1, 1, "VALID", NULL), 4, ((int64_t[]){1, 2, 2, 1}), ((double[]){12, 16, 24, 28}));
    CHECK(g, pst_conv2d(g, img, f, 1, 1, "SAME", NULL), 4, ((int64_t[]){1, 3, 3, 1}),
          ((double[]){12, 16, 9, 24, 28, 15, 15, 17, 9}));
    CHECK(g, pst_conv2d(g, img, f, 2, 2, "SAME", NULL), 4, ((int64_t[]){1, 2, 2, 1}), ((double[]){12, 9, 15, 9}));
    CHECK(g, pst_max_pool(g, img, 2, 2, 2, 2, "SAME", NULL), 4, ((int64_t[]){1, 2, 2, 1}), ((double[]){5, 6, 8, 9}));
    CHECK(g, pst_max_pool(g, img, 2, 2, 1, 1, "VALID", NULL), 4, ((int64_t[]){1, 2, 2, 1}), ((double[]){5, 6, 8, 9}));
    /* SAME average pooling divides by the in-image count only. */
    CHECK(g, pst_avg_pool(g, img, 2, 2, 2, 2, "SAME", NULL), 4, ((int64_t[]){1, 2, 2, 1}), ((double[]){3, 4.5, 7.5, 9}));
    pst_output logits = c2(g, 1, 3, (float[]){1, 2, 3});
    double e1 = exp(1), e2 = exp(2), e3 = exp(3), z = e1 + e2 + e3;
    CHECK(g, pst_softmax(g, logits, NULL), 2, ((int64_t[]){1, 3}), ((double[]){e1 / z, e2 / z, e3 / z}));
    CHECK(g, pst_log_softmax(g, logits, NULL), 2, ((int64_t[]){1, 3}),
          ((double[]){1 - log(z), 2 - log(z), 3 - log(z)}));
    pst_node *xe = pst_sparse_softmax_cross_entropy_with_logits(g, logits, pst_const_i64_vec(g, 1, (int64_t[]){2}, NULL), NULL);
    CHECK(g, pst_out(xe, 0), 1, ((int64_t[]){1}), ((double[]){log(z) - 3}));
    CHECK(g, pst_out(xe, 1), 2, ((int64_t[]){1, 3}), ((double[]){e1 / z, e2 / z, e3 / z - 1}));
    pst_node *xd = pst_softmax_cross_entropy_with_logits(g, logits, c2(g, 1, 3, (float[]){0.5f, 0.5f, 0}), NULL);
    CHECK(g, pst_out(xd, 0), 1, ((int64_t[]){1}), ((double[]){log(z) - 1.5}));
    CHECK(g, pst_in_top_k(g, c2(g, 2, 3, (float[]){0.1f, 0.8f, 0.1f, 0.5f, 0.3f, 0.2f}),
                          pst_const_i32_vec(g, 2, (int32_t[]){1, 1}, NULL), 1, NULL),
          1, ((int64_t[]){2}), ((double[]){1, 0}));
    /* Batch norm over N*H*W: column means 2 and 20; inference with given statistics. */
    pst_output bx = pst_const_f32_tensor(g, pst_shape_4d(2, 1, 1, 2), (float[]){1, 10, 3, 30}, NULL);
    pst_output one2 = pst_const_f32_tensor(g, pst_shape_1d(2), (float[]){1, 1}, NULL);
    pst_output zero2 = pst_const_f32_tensor(g, pst_shape_1d(2), (float[]){0, 0}, NULL);
    pst_node *bn = pst_fused_batch_norm(g, bx, one2, zero2, zero2, one2, 0, 1, NULL);
    CHECK(g, pst_out(bn, 0), 4, ((int64_t[]){2, 1, 1, 2}), ((double[]){-1, -1, 1, 1}));
    CHECK(g, pst_out(bn, 1), 1, ((int64_t[]){2}), ((double[]){2, 20}));
    CHECK(g, pst_out(bn, 2), 1, ((int64_t[]){2}), ((double[]){2, 200})); /* unbiased */
    pst_node *bi = pst_fused_batch_norm(g, bx, one2, zero2, zero2, one2, 0, 0, NULL);
    CHECK(g, pst_out(bi, 0), 4, ((int64_t[]){2, 1, 1, 2}), ((double[]){1, 10, 3, 30}));
    pst_graph_free(g);
}
END_TEST

static void expect_run_error(pst_graph *g, pst_output out, const char *node, const char *text) {
    pst_status st = {0};
    pst_session *s = sess(g);
    ck_assert_ptr_null(pst_session_run1(s, out, &st));
    ck_assert_msg(strstr(st.msg, node) && strstr(st.msg, text), "message '%s' lacks '%s'/'%s'",
                  st.msg, node, text);
    pst_session_free(s);
}

/* BroadcastGradientArgs: for each of two shapes, the dims of their broadcast it was
 * stretched along; incompatible shapes name the node. */
START_TEST(test_broadcast_gradient_args) {
    pst_graph *g = pst_graph_new();
    pst_output s0 = pst_const_i32_vec(g, 3, (int32_t[]){2, 1, 3}, NULL);
    pst_output s1 = pst_const_i32_vec(g, 2, (int32_t[]){4, 1}, NULL);
    pst_node_builder *b = pst_nb_new(g, "BroadcastGradientArgs", "bga");
    pst_nb_input(b, s0);
    pst_nb_input(b, s1);
    pst_node *n = pst_nb_finish(b);
    CHECK(g, pst_out(n, 0), 1, ((int64_t[]){1}), ((double[]){1}));
    CHECK(g, pst_out(n, 1), 1, ((int64_t[]){2}), ((double[]){0, 2}));
    pst_output s2 = pst_const_i32_vec(g, 2, (int32_t[]){2, 3}, NULL);
    b = pst_nb_new(g, "BroadcastGradientArgs", "same");
    pst_nb_input(b, s2);
    pst_nb_input(b, s2);
    n = pst_nb_finish(b);
    CHECK(g, pst_out(n, 0), 1, ((int64_t[]){0}), ((double[]){0}));
    pst_output s3 = pst_const_i32_vec(g, 2, (int32_t[]){5, 3}, NULL);
    b = pst_nb_new(g, "BroadcastGradientArgs", "bad_bga");
    pst_nb_input(b, s2);
    pst_nb_input(b, s3);
    n = pst_nb_finish(b);
    expect_run_error(g, pst_out(n, 0), "'bad_bga'", "dim 0 is 2 in one and 5 in the other");
    pst_graph_free(g);
}
END_TEST

START_TEST(test_runtime_errors_name_the_node) {
    pst_graph *g = pst_graph_new();
    /* With a constant input the bad reshape is caught while building... */
    pst_reshape(g, pst_const_f32_tensor(g, pst_shape_1d(6), (float[]){1, 2, 3, 4, 5, 6}, NULL), 2,
                (int64_t[]){4, -1}, "const_reshape");
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "'const_reshape'"));
    pst_graph_free(g);
    /* ...and with a fed input when it runs. */
    g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_1d(-1));
    pst_output r = pst_reshape(g, x, 2, (int64_t[]){4, -1}, "bad_reshape");
    pst_tensor *six = pst_tensor_new_zeros(PST_FLOAT, pst_shape_1d(6), NULL);
    pst_feed f = {x, six};
    pst_status st = {0};
    pst_session *s = sess(g);
    pst_tensor *out = NULL;
    ck_assert_int_eq(pst_session_run(s, &f, 1, &r, 1, NULL, 0, &out, &st), PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(st.msg, "'bad_reshape'"));
    ck_assert_ptr_nonnull(strstr(st.msg, "cannot reshape a tensor of 6 elements"));
    pst_tensor_unref(six);
    pst_session_free(s);
    pst_output gth = pst_gather(g, pst_const_f32_tensor(g, pst_shape_1d(3), (float[]){1, 2, 3}, NULL),
                                pst_const_i32_vec(g, 2, (int32_t[]){0, 5}, NULL), 0, "bad_gather");
    expect_run_error(g, gth, "'bad_gather'", "index 5 (at position 1) is out of range [0, 3)");
    pst_node *xe = pst_sparse_softmax_cross_entropy_with_logits(
        g, c2(g, 2, 3, (float[]){0, 0, 0, 0, 0, 0}), pst_const_i64_vec(g, 2, (int64_t[]){1, 7}, NULL), "xent");
    expect_run_error(g, pst_out(xe, 0), "'xent'", "label 7 at index 1 is out of range [0, 3)");
    pst_graph_free(g);
}
END_TEST

START_TEST(test_build_errors_name_shapes) {
    pst_graph *g = pst_graph_new();
    pst_matmul(g, c2(g, 2, 3, (float[]){0, 0, 0, 0, 0, 0}), c2(g, 2, 2, (float[]){0, 0, 0, 0}), 0, 0, "mm");
    ck_assert_int_eq(pst_graph_error(g), PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "'mm'"));
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "[2,3] x [2,2]"));
    pst_graph_free(g);
    g = pst_graph_new();
    pst_output img = pst_placeholder(g, "img", PST_FLOAT, pst_shape_4d(-1, 8, 8, 3));
    pst_output f = pst_placeholder(g, "f", PST_FLOAT, pst_shape_4d(3, 3, 4, 8));
    pst_conv2d(g, img, f, 1, 1, "SAME", "conv");
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "has 3 channels but filter"));
    pst_graph_free(g);
    g = pst_graph_new();
    pst_add(g, c2(g, 2, 3, (float[]){0, 0, 0, 0, 0, 0}), c2(g, 2, 2, (float[]){0, 0, 0, 0}), "add");
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "shapes [2,3] and [2,2] cannot be broadcast"));
    pst_graph_free(g);
}
END_TEST

/* The convolution kernels against naive loops: single-channel inputs take the direct kernels
 * (16, 32 and 64 output channels), others im2col + sgemm; strides 1 and 2, SAME and VALID,
 * odd sizes; forward and filter gradient. */
static void naive_conv(const pst_conv_geom *g, const float *in, const float *f, float *out) {
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++)
                for (int64_t o = 0; o < g->oc; o++) {
                    double acc = 0;
                    for (int64_t i = 0; i < g->kh; i++)
                        for (int64_t q = 0; q < g->kw; q++)
                            for (int64_t c = 0; c < g->c; c++) {
                                int64_t ih = oh * g->sh - g->pad_top + i, iw = ow * g->sw - g->pad_left + q;
                                if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                                acc += (double)in[((n * g->h + ih) * g->w + iw) * g->c + c] *
                                       f[((i * g->kw + q) * g->c + c) * g->oc + o];
                            }
                    out[((n * g->oh + oh) * g->ow + ow) * g->oc + o] = (float)acc;
                }
}

/* Both backprops by the definition: df += x * dy and din += f * dy over every window tap. */
static void naive_grads(const pst_conv_geom *g, const float *in, const float *f, const float *dy,
                        float *df, float *din) {
    memset(df, 0, (size_t)(g->kh * g->kw * g->c * g->oc) * sizeof(float));
    memset(din, 0, (size_t)(g->n * g->h * g->w * g->c) * sizeof(float));
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++)
                for (int64_t i = 0; i < g->kh; i++)
                    for (int64_t q = 0; q < g->kw; q++) {
                        int64_t ih = oh * g->sh - g->pad_top + i, iw = ow * g->sw - g->pad_left + q;
                        if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                        for (int64_t c = 0; c < g->c; c++)
                            for (int64_t o = 0; o < g->oc; o++) {
                                int64_t fi = ((i * g->kw + q) * g->c + c) * g->oc + o;
                                int64_t xi = ((n * g->h + ih) * g->w + iw) * g->c + c;
                                float d = dy[((n * g->oh + oh) * g->ow + ow) * g->oc + o];
                                df[fi] += in[xi] * d;
                                din[xi] += f[fi] * d;
                            }
                    }
}

/* Every kernel path: direct 16- and 8-channel blocks (oc 16/32/64 and 8/24, including input
 * gradients that become 8- or 16-channel convolutions), im2col + sgemm (oc 10, c 3). */
START_TEST(test_conv_kernels_match_naive_loops) {
    const int64_t ocs[] = {16, 32, 64, 8, 24, 10};
    const int64_t cs[] = {1, 1, 1, 3, 16, 3};
    const char *pads[] = {"SAME", "VALID"};
    for (int k = 0; k < 6; k++)
        for (int s = 1; s <= 2; s++)
            for (int pi = 0; pi < 2; pi++) {
                pst_conv_geom g;
                ck_assert_int_eq(pst_conv_geom_make(&g, 3, 9, 11, cs[k], 5, 3, ocs[k], s, s, pads[pi]), 0);
                size_t ni = (size_t)(g.n * g.h * g.w * g.c), nf = (size_t)(g.kh * g.kw * g.c * g.oc),
                       no = (size_t)(g.n * g.oh * g.ow * g.oc);
                pst_tensor *in = pst_test_rand(PST_FLOAT, pst_shape_1d((int64_t)ni), 1, -1, 1);
                pst_tensor *f = pst_test_rand(PST_FLOAT, pst_shape_1d((int64_t)nf), 2, -1, 1);
                pst_tensor *dy = pst_test_rand(PST_FLOAT, pst_shape_1d((int64_t)no), 3, -1, 1);
                float *out = malloc(no * sizeof(float)), *ref = malloc(no * sizeof(float));
                float *df = malloc(nf * sizeof(float)), *dref = malloc(nf * sizeof(float));
                pst_conv2d_forward(&g, pst_tensor_f32(in), pst_tensor_f32(f), out);
                naive_conv(&g, pst_tensor_f32(in), pst_tensor_f32(f), ref);
                for (size_t i = 0; i < no; i++)
                    ck_assert_msg(fabsf(out[i] - ref[i]) < 1e-4f, "oc %lld stride %d %s: out[%zu] %g vs %g",
                                  (long long)g.oc, s, pads[pi], i, out[i], ref[i]);
                float *din = malloc(ni * sizeof(float)), *diref = malloc(ni * sizeof(float));
                naive_grads(&g, pst_tensor_f32(in), pst_tensor_f32(f), pst_tensor_f32(dy), dref, diref);
                pst_conv2d_backprop_filter(&g, pst_tensor_f32(in), pst_tensor_f32(dy), df);
                for (size_t i = 0; i < nf; i++)
                    ck_assert_msg(fabsf(df[i] - dref[i]) < 1e-3f, "oc %lld stride %d %s: df[%zu] %g vs %g",
                                  (long long)g.oc, s, pads[pi], i, df[i], dref[i]);
                pst_conv2d_backprop_input(&g, pst_tensor_f32(f), pst_tensor_f32(dy), din);
                for (size_t i = 0; i < ni; i++)
                    ck_assert_msg(fabsf(din[i] - diref[i]) < 1e-3f, "oc %lld stride %d %s: din[%zu] %g vs %g",
                                  (long long)g.oc, s, pads[pi], i, din[i], diref[i]);
                free(din);
                free(diref);
                free(out);
                free(ref);
                free(df);
                free(dref);
                pst_tensor_unref(in);
                pst_tensor_unref(f);
                pst_tensor_unref(dy);
            }
}
END_TEST

/* A batch whose output is larger than a quarter of the last-level cache is written with
 * streaming stores; its values equal the same images convolved one at a time (cached stores). */
START_TEST(test_conv_large_output_equals_per_image) {
    pst_conv_geom g, g1;
    ck_assert_int_eq(pst_conv_geom_make(&g, 48, 64, 64, 1, 5, 5, 32, 1, 1, "SAME"), 0);
    ck_assert_int_eq(pst_conv_geom_make(&g1, 1, 64, 64, 1, 5, 5, 32, 1, 1, "SAME"), 0);
    int64_t per_in = 64 * 64, per_out = 64 * 64 * 32;
    pst_tensor *in = pst_test_rand(PST_FLOAT, pst_shape_1d(48 * per_in), 4, -1, 1);
    pst_tensor *f = pst_test_rand(PST_FLOAT, pst_shape_1d(25 * 32), 5, -1, 1);
    pst_status st = {0};
    pst_tensor *out = pst_tensor_new(PST_FLOAT, pst_shape_1d(48 * per_out), &st);
    pst_tensor *one = pst_tensor_new(PST_FLOAT, pst_shape_1d(per_out), &st);
    ck_assert(out != NULL && one != NULL);
    pst_conv2d_forward(&g, pst_tensor_f32(in), pst_tensor_f32(f), pst_tensor_f32(out));
    for (int64_t n = 0; n < 48; n += 7) {
        pst_conv2d_forward(&g1, pst_tensor_f32(in) + n * per_in, pst_tensor_f32(f), pst_tensor_f32(one));
        ck_assert_msg(memcmp(pst_tensor_f32(out) + n * per_out, one->data, one->nbytes) == 0,
                      "image %lld differs", (long long)n);
    }
    pst_tensor_unref(in);
    pst_tensor_unref(f);
    pst_tensor_unref(out);
    pst_tensor_unref(one);
}
END_TEST

START_TEST(test_static_shapes_flow) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_4d(-1, 28, 28, 1));
    pst_output f = pst_placeholder(g, "f", PST_FLOAT, pst_shape_4d(5, 5, 1, 32));
    pst_output c = pst_conv2d(g, x, f, 1, 1, "SAME", NULL);
    pst_output p = pst_max_pool(g, c, 2, 2, 2, 2, "SAME", NULL);
    pst_output r = pst_reshape(g, p, 2, (int64_t[]){-1, 14 * 14 * 32}, NULL);
    pst_shape s = pst_output_shape(r);
    ck_assert_int_eq(s.rank, 2);
    ck_assert_int_eq(s.dims[0], -1);
    ck_assert_int_eq(s.dims[1], 6272);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_random_ops_seeded) {
    float first[2][4];
    for (int k = 0; k < 2; k++) {
        pst_graph *g = pst_graph_new();
        pst_graph_set_seed(g, 42);
        pst_output u = pst_random_uniform(g, pst_shape_1d(4), PST_FLOAT, -1, NULL);
        pst_session *s = sess(g);
        pst_tensor *a = pst_test_run(s, u, 0, NULL), *b = pst_test_run(s, u, 0, NULL);
        memcpy(first[k], a->data, sizeof first[k]);
        ck_assert(memcmp(a->data, b->data, a->nbytes) != 0); /* a new draw each run */
        for (int i = 0; i < 4; i++) ck_assert(pst_tensor_f32(a)[i] >= 0 && pst_tensor_f32(a)[i] < 1);
        pst_tensor_unref(a);
        pst_tensor_unref(b);
        pst_session_free(s);
        pst_graph_free(g);
    }
    ck_assert(memcmp(first[0], first[1], sizeof first[0]) == 0); /* same seeds, same numbers */
    pst_graph *g = pst_graph_new();
    pst_output t = pst_truncated_normal(g, pst_shape_1d(20000), PST_FLOAT, 1, 2, 7, NULL);
    pst_output n = pst_random_normal(g, pst_shape_1d(20000), PST_FLOAT, 0, 1, 8, NULL);
    pst_output ri = pst_random_uniform_int(g, pst_shape_1d(1000), 3, 6, PST_INT64, 9, NULL);
    pst_session *s = sess(g);
    pst_tensor *tv = pst_test_run(s, t, 0, NULL), *nv = pst_test_run(s, n, 0, NULL), *iv = pst_test_run(s, ri, 0, NULL);
    double mean = 0, var = 0;
    for (int64_t i = 0; i < tv->n; i++) {
        float v = pst_tensor_f32(tv)[i];
        ck_assert(v >= 1 - 4.0001f && v <= 1 + 4.0001f);
    }
    for (int64_t i = 0; i < nv->n; i++) mean += pst_tensor_f32(nv)[i];
    mean /= (double)nv->n;
    for (int64_t i = 0; i < nv->n; i++) var += pow(pst_tensor_f32(nv)[i] - mean, 2);
    var /= (double)nv->n;
    ck_assert(fabs(mean) < 0.05 && fabs(var - 1) < 0.1);
    for (int64_t i = 0; i < iv->n; i++) ck_assert(pst_tensor_i64(iv)[i] >= 3 && pst_tensor_i64(iv)[i] < 6);
    pst_tensor_unref(tv);
    pst_tensor_unref(nv);
    pst_tensor_unref(iv);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_add_test(tc, test_binary_broadcasting);
    tcase_add_test(tc, test_unary_and_activations);
    tcase_add_test(tc, test_comparisons_logic_cast_select);
    tcase_add_test(tc, test_reductions_and_argmax);
    tcase_add_test(tc, test_array_ops);
    tcase_add_test(tc, test_nn_forward);
    tcase_add_test(tc, test_runtime_errors_name_the_node);
    tcase_add_test(tc, test_broadcast_gradient_args);
    tcase_add_test(tc, test_build_errors_name_shapes);
    tcase_add_test(tc, test_static_shapes_flow);
    tcase_add_test(tc, test_conv_kernels_match_naive_loops);
    tcase_add_test(tc, test_conv_large_output_equals_per_image);
    tcase_add_test(tc, test_random_ops_seeded);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
