/* Finite-difference gradient checks (pst_gradcheck) for every differentiable nn op, on several
 * shapes: both paddings, strides 1 and 2, non-square kernels and windows. float64 with a
 * tolerance of 1e-6 wherever the op supports it; FusedBatchNorm is float32-only, and a few
 * float32 cases exercise the float-only kernels (single-channel direct convolution): float32
 * central differences with step 1e-2 are good to about 1e-3, hence a tolerance of 1e-2 there.
 * Also: the build- and run-time errors of the nn ops. */
#include <stdio.h>
#include <string.h>

#include "testutil.h"

typedef pst_output (*build_fn)(pst_graph *g, const pst_output *x);

typedef struct grad_case {
    const char *name;
    int n;
    pst_shape shapes[3];
    build_fn build;
} grad_case;

#define S1(a)                                                                                      \
    {                                                                                              \
        .rank = 1, .dims = { a }                                                                   \
    }
#define S2(a, b)                                                                                   \
    {                                                                                              \
        .rank = 2, .dims = { a, b }                                                                \
    }
#define S3(a, b, c)                                                                                \
    {                                                                                              \
        .rank = 3, .dims = { a, b, c }                                                             \
    }
#define S4(a, b, c, d)                                                                             \
    {                                                                                              \
        .rank = 4, .dims = { a, b, c, d }                                                          \
    }

static pst_output sizes(pst_graph *g, const pst_shape *s) {
    return pst_const_i32_vec(g, 4,
                             (int32_t[]){(int32_t)s->dims[0], (int32_t)s->dims[1],
                                         (int32_t)s->dims[2], (int32_t)s->dims[3]},
                             NULL);
}

/* Convolutions: x[0] input, x[1] filter. */
#define CONV(fn, sh, sw, pad)                                                                      \
    static pst_output fn(pst_graph *g, const pst_output *x) {                                      \
        return pst_conv2d(g, x[0], x[1], sh, sw, pad, NULL);                                       \
    }
CONV(conv_same_1, 1, 1, "SAME")
CONV(conv_valid_1, 1, 1, "VALID")
CONV(conv_same_2, 2, 2, "SAME")
CONV(conv_valid_2, 2, 2, "VALID")
CONV(conv_same_21, 2, 1, "SAME")
CONV(conv_valid_13, 1, 3, "VALID")

/* Conv2DBackpropInput as an op of its own: x[0] filter, x[1] out_backprop; the input sizes
 * follow from the case (stored in the third shape). */
#define CONV_BI(fn, sh, sw, pad, N, H, W, C)                                                       \
    static pst_output fn(pst_graph *g, const pst_output *x) {                                      \
        pst_shape s = pst_shape_4d(N, H, W, C);                                                    \
        return pst_conv2d_backprop_input(g, sizes(g, &s), x[0], x[1], sh, sw, pad, NULL);          \
    }
CONV_BI(bi_same_2, 2, 2, "SAME", 2, 5, 6, 3)
CONV_BI(bi_valid_1, 1, 1, "VALID", 1, 5, 4, 2)

/* Conv2DBackpropFilter as an op: x[0] input, x[1] out_backprop. */
#define CONV_BF(fn, sh, sw, pad, KH, KW, C, OC)                                                    \
    static pst_output fn(pst_graph *g, const pst_output *x) {                                      \
        pst_shape s = pst_shape_4d(KH, KW, C, OC);                                                 \
        return pst_conv2d_backprop_filter(g, x[0], sizes(g, &s), x[1], sh, sw, pad, NULL);         \
    }
CONV_BF(bf_same_1, 1, 1, "SAME", 3, 2, 2, 3)
CONV_BF(bf_valid_2, 2, 2, "VALID", 3, 3, 2, 2)

#define POOL(fn, op, kh, kw, sh, sw, pad)                                                          \
    static pst_output fn(pst_graph *g, const pst_output *x) {                                      \
        return op(g, x[0], kh, kw, sh, sw, pad, NULL);                                             \
    }
POOL(max_same_22, pst_max_pool, 2, 2, 2, 2, "SAME")
POOL(max_valid_32, pst_max_pool, 3, 2, 1, 2, "VALID")
POOL(max_same_33_1, pst_max_pool, 3, 3, 1, 1, "SAME")
POOL(avg_same_33_2, pst_avg_pool, 3, 3, 2, 2, "SAME")
POOL(avg_valid_22_1, pst_avg_pool, 2, 2, 1, 1, "VALID")
POOL(avg_same_23_21, pst_avg_pool, 2, 3, 2, 1, "SAME")

static pst_output avg_pool_grad_op(pst_graph *g, const pst_output *x) {
    pst_shape s = pst_shape_4d(2, 5, 5, 2);
    return pst_avg_pool_grad(g, sizes(g, &s), x[0], 3, 2, 2, 2, "SAME", NULL);
}

static pst_output mm(pst_graph *g, const pst_output *x) {
    return pst_matmul(g, x[0], x[1], 0, 0, NULL);
}
static pst_output mm_ta(pst_graph *g, const pst_output *x) {
    return pst_matmul(g, x[0], x[1], 1, 0, NULL);
}
static pst_output mm_tb(pst_graph *g, const pst_output *x) {
    return pst_matmul(g, x[0], x[1], 0, 1, NULL);
}
static pst_output mm_tt(pst_graph *g, const pst_output *x) {
    return pst_matmul(g, x[0], x[1], 1, 1, NULL);
}
static pst_output bmm(pst_graph *g, const pst_output *x) {
    return pst_batch_matmul(g, x[0], x[1], 0, 0, NULL);
}
static pst_output bmm_ax(pst_graph *g, const pst_output *x) {
    return pst_batch_matmul(g, x[0], x[1], 1, 0, NULL);
}
static pst_output bmm_xy(pst_graph *g, const pst_output *x) {
    return pst_batch_matmul(g, x[0], x[1], 1, 1, NULL);
}
static pst_output bias(pst_graph *g, const pst_output *x) {
    return pst_bias_add(g, x[0], x[1], NULL);
}
static pst_output bias_grad(pst_graph *g, const pst_output *x) {
    return pst_bias_add_grad(g, x[0], NULL);
}
static pst_output softmax(pst_graph *g, const pst_output *x) {
    return pst_softmax(g, x[0], NULL);
}
static pst_output log_softmax(pst_graph *g, const pst_output *x) {
    return pst_log_softmax(g, x[0], NULL);
}

/* Both outputs of the cross entropies carry gradient: the loss and the backprop output. */
static pst_output xent(pst_graph *g, const pst_output *x) {
    pst_output labels = pst_stop_gradient(g, pst_softmax(g, x[1], NULL), NULL);
    return pst_out(pst_softmax_cross_entropy_with_logits(g, x[0], labels, NULL), 0);
}
/* Labels get a gradient too (dense only), and so does everything through the backprop output.
 * The op's logits gradient assumes each label row sums to 1, so labels are a softmax (of x[1]),
 * which finite differences keep normalized. */
static pst_output xent_labels(pst_graph *g, const pst_output *x) {
    pst_output labels = pst_softmax(g, x[1], NULL);
    return pst_out(pst_softmax_cross_entropy_with_logits(g, x[0], labels, NULL), 0);
}
static pst_output both_outputs(pst_graph *g, pst_node *n) {
    pst_output bp = pst_out(n, 1);
    return pst_add(g, pst_expand_dims(g, pst_out(n, 0), -1, NULL), pst_mul(g, bp, bp, NULL), NULL);
}
static pst_output xent_both(pst_graph *g, const pst_output *x) {
    pst_output labels = pst_softmax(g, x[1], NULL);
    return both_outputs(g, pst_softmax_cross_entropy_with_logits(g, x[0], labels, NULL));
}
static pst_output xent_backprop_only(pst_graph *g, const pst_output *x) {
    pst_output labels = pst_softmax(g, x[1], NULL);
    return pst_out(pst_softmax_cross_entropy_with_logits(g, x[0], labels, NULL), 1);
}
static pst_output sparse_xent_both(pst_graph *g, const pst_output *x) {
    pst_output labels = pst_const_i32_vec(g, 3, (int32_t[]){1, 3, 0}, NULL);
    return both_outputs(g, pst_sparse_softmax_cross_entropy_with_logits(g, x[0], labels, NULL));
}
static pst_output sparse_xent_i32(pst_graph *g, const pst_output *x) {
    pst_output labels = pst_const_i32_vec(g, 4, (int32_t[]){2, 0, 4, 1}, NULL);
    return pst_out(pst_sparse_softmax_cross_entropy_with_logits(g, x[0], labels, NULL), 0);
}
static pst_output sparse_xent_i64(pst_graph *g, const pst_output *x) {
    pst_output labels = pst_const_i64_vec(g, 3, (int64_t[]){1, 0, 2}, NULL);
    return pst_out(pst_sparse_softmax_cross_entropy_with_logits(g, x[0], labels, NULL), 0);
}

static const grad_case f64_cases[] = {
    {"Conv2D SAME stride 1, 3x3", 2, {S4(2, 5, 5, 3), S4(3, 3, 3, 4)}, conv_same_1},
    {"Conv2D SAME stride 1, 2x2 (uneven padding)",
     2,
     {S4(1, 4, 5, 2), S4(2, 2, 2, 3)},
     conv_same_1},
    {"Conv2D VALID stride 1, 3x2", 2, {S4(2, 5, 4, 2), S4(3, 2, 2, 3)}, conv_valid_1},
    {"Conv2D SAME stride 2, 3x3", 2, {S4(2, 6, 5, 2), S4(3, 3, 2, 2)}, conv_same_2},
    {"Conv2D VALID stride 2, 3x2", 2, {S4(2, 7, 6, 2), S4(3, 2, 2, 3)}, conv_valid_2},
    {"Conv2D SAME strides 2x1, 5x3", 2, {S4(1, 6, 5, 2), S4(5, 3, 2, 2)}, conv_same_21},
    {"Conv2D VALID strides 1x3, 2x4", 2, {S4(1, 4, 9, 2), S4(2, 4, 2, 2)}, conv_valid_13},
    {"Conv2D 1x1 VALID (pointwise)", 2, {S4(2, 3, 3, 4), S4(1, 1, 4, 2)}, conv_valid_1},
    {"Conv2D 1x1 SAME stride 2", 2, {S4(2, 5, 5, 3), S4(1, 1, 3, 2)}, conv_same_2},
    {"Conv2D one input channel", 2, {S4(2, 5, 4, 1), S4(3, 3, 1, 3)}, conv_same_1},
    {"Conv2D C > OC (flipped input gradient)", 2, {S4(1, 5, 5, 6), S4(3, 2, 6, 2)}, conv_same_1},
    {"Conv2DBackpropInput SAME stride 2", 2, {S4(3, 3, 3, 2), S4(2, 3, 3, 2)}, bi_same_2},
    {"Conv2DBackpropInput VALID stride 1", 2, {S4(2, 2, 2, 3), S4(1, 4, 3, 3)}, bi_valid_1},
    {"Conv2DBackpropFilter SAME stride 1", 2, {S4(1, 4, 4, 2), S4(1, 4, 4, 3)}, bf_same_1},
    {"Conv2DBackpropFilter VALID stride 2", 2, {S4(2, 6, 5, 2), S4(2, 2, 2, 2)}, bf_valid_2},
    {"MaxPool SAME 2x2 stride 2", 1, {S4(2, 5, 5, 3)}, max_same_22},
    {"MaxPool VALID 3x2 strides 1x2", 1, {S4(1, 6, 6, 2)}, max_valid_32},
    {"MaxPool SAME 3x3 stride 1", 1, {S4(1, 4, 5, 2)}, max_same_33_1},
    {"AvgPool SAME 3x3 stride 2", 1, {S4(2, 5, 5, 3)}, avg_same_33_2},
    {"AvgPool VALID 2x2 stride 1", 1, {S4(1, 4, 4, 2)}, avg_valid_22_1},
    {"AvgPool SAME 2x3 strides 2x1", 1, {S4(1, 5, 4, 2)}, avg_same_23_21},
    {"AvgPoolGrad", 1, {S4(2, 3, 3, 2)}, avg_pool_grad_op},
    {"MatMul", 2, {S2(3, 4), S2(4, 5)}, mm},
    {"MatMul transpose_a", 2, {S2(4, 3), S2(4, 2)}, mm_ta},
    {"MatMul transpose_b", 2, {S2(3, 4), S2(5, 4)}, mm_tb},
    {"MatMul both transposed", 2, {S2(4, 3), S2(5, 4)}, mm_tt},
    {"BatchMatMul", 2, {S3(2, 3, 4), S3(2, 4, 2)}, bmm},
    {"BatchMatMul adj_x", 2, {S3(3, 4, 2), S3(3, 4, 3)}, bmm_ax},
    {"BatchMatMul adj_x adj_y, 4-D", 2, {S4(2, 2, 3, 2), S4(2, 2, 4, 3)}, bmm_xy},
    {"BiasAdd 4-D", 2, {S4(2, 3, 3, 4), S1(4)}, bias},
    {"BiasAdd 2-D", 2, {S2(5, 3), S1(3)}, bias},
    {"BiasAddGrad", 1, {S3(2, 3, 4)}, bias_grad},
    {"Softmax 2-D", 1, {S2(3, 5)}, softmax},
    {"Softmax 3-D", 1, {S3(2, 2, 4)}, softmax},
    {"LogSoftmax 3-D", 1, {S3(2, 3, 3)}, log_softmax},
    {"SoftmaxCrossEntropyWithLogits", 2, {S2(3, 5), S2(3, 5)}, xent},
    {"SoftmaxCrossEntropyWithLogits, labels too", 2, {S2(3, 4), S2(3, 4)}, xent_labels},
    {"SoftmaxCrossEntropyWithLogits, both outputs", 2, {S2(3, 4), S2(3, 4)}, xent_both},
    {"SoftmaxCrossEntropyWithLogits, backprop output", 2, {S2(2, 5), S2(2, 5)}, xent_backprop_only},
    {"SparseSoftmaxCrossEntropyWithLogits, both outputs", 1, {S2(3, 4)}, sparse_xent_both},
    {"SparseSoftmaxCrossEntropyWithLogits int32", 1, {S2(4, 5)}, sparse_xent_i32},
    {"SparseSoftmaxCrossEntropyWithLogits int64", 1, {S2(3, 3)}, sparse_xent_i64},
};

static void run_case(const grad_case *c, pst_dtype dt, double eps, double tol, uint64_t seed) {
    pst_graph *g = pst_graph_new();
    pst_output xs[3];
    pst_tensor *vals[3];
    for (int i = 0; i < c->n; i++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", i);
        xs[i] = pst_placeholder(g, name, dt, c->shapes[i]);
        vals[i] = pst_test_rand(dt, c->shapes[i], seed + (uint64_t)i * 77, -1, 1);
    }
    pst_output y = c->build(g, xs);
    ck_assert_msg(pst_graph_error(g) == 0, "%s: %s", c->name, pst_graph_status(g)->msg);
    double err = pst_gradcheck(g, y, c->n, xs, vals, eps);
    ck_assert_msg(err < tol, "%s (%s): gradient error %.3g exceeds %.3g", c->name,
                  pst_dtype_name(dt), err, tol);
    for (int i = 0; i < c->n; i++)
        pst_tensor_unref(vals[i]);
    pst_graph_free(g);
}

START_TEST(test_float64_gradients) {
    run_case(&f64_cases[_i], PST_DOUBLE, 1e-6, 1e-6, 1000 + (uint64_t)_i);
}
END_TEST

static pst_output bn(pst_graph *g, const pst_output *x, int training) {
    pst_output mean = pst_const_f32_tensor(g, pst_shape_1d(3), (float[]){0.1f, -0.2f, 0.3f}, NULL);
    pst_output var = pst_const_f32_tensor(g, pst_shape_1d(3), (float[]){1.5f, 0.5f, 2}, NULL);
    return pst_out(pst_fused_batch_norm(g, x[0], x[1], x[2], mean, var, 1e-3f, training, NULL), 0);
}
static pst_output bn_train(pst_graph *g, const pst_output *x) {
    return bn(g, x, 1);
}
static pst_output bn_infer(pst_graph *g, const pst_output *x) {
    return bn(g, x, 0);
}

static const grad_case f32_cases[] = {
    {"FusedBatchNorm training", 3, {S4(2, 3, 2, 3), S1(3), S1(3)}, bn_train},
    {"FusedBatchNorm training, 2-D", 3, {S2(6, 3), S1(3), S1(3)}, bn_train},
    {"FusedBatchNorm inference", 3, {S4(2, 2, 2, 3), S1(3), S1(3)}, bn_infer},
    {"Conv2D one input channel, 16 outputs (direct kernel)",
     2,
     {S4(2, 5, 4, 1), S4(3, 2, 1, 16)},
     conv_same_1},
    {"Conv2D one input channel, stride 2 (direct kernel)",
     2,
     {S4(1, 7, 6, 1), S4(3, 3, 1, 32)},
     conv_valid_2},
    {"Conv2D SAME stride 2", 2, {S4(2, 6, 5, 2), S4(3, 3, 2, 2)}, conv_same_2},
};

START_TEST(test_float32_gradients) {
    run_case(&f32_cases[_i], PST_FLOAT, 1e-2, 1e-2, 5000 + (uint64_t)_i);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------------- */

static pst_output c2(pst_graph *g, int64_t r, int64_t c) {
    float z[64] = {0};
    return pst_const_f32_tensor(g, pst_shape_2d(r, c), z, NULL);
}

static void expect_build_error(pst_graph *g, const char *node, const char *text) {
    const char *msg = pst_graph_status(g)->msg;
    ck_assert_msg(pst_graph_error(g) != 0, "no build error, expected '%s'", text);
    ck_assert_msg(strstr(msg, node) && strstr(msg, text), "message '%s' lacks '%s' or '%s'", msg,
                  node, text);
}

START_TEST(test_build_errors_name_both_shapes) {
    pst_graph *g = pst_graph_new();
    pst_matmul(g, c2(g, 2, 3), c2(g, 2, 2), 0, 0, "mm");
    expect_build_error(g, "'mm'", "inner dimensions differ: [2,3] x [2,2]");
    pst_graph_free(g);
    g = pst_graph_new();
    pst_matmul(g, c2(g, 2, 3), c2(g, 3, 4), 1, 0, "mm_t");
    expect_build_error(g, "'mm_t'", "[2,3]^T x [3,4]");
    pst_graph_free(g);
    g = pst_graph_new();
    pst_output img = pst_placeholder(g, "img", PST_FLOAT, pst_shape_4d(-1, 8, 8, 3));
    pst_conv2d(g, img, pst_placeholder(g, "f", PST_FLOAT, pst_shape_4d(3, 3, 4, 8)), 1, 1, "SAME",
               "conv");
    expect_build_error(g, "'conv'",
                       "input [?,8,8,3] has 3 channels but filter [3,3,4,8] expects 4");
    pst_graph_free(g);
    g = pst_graph_new();
    pst_bias_add(g, pst_placeholder(g, "x", PST_FLOAT, pst_shape_2d(4, 5)),
                 pst_placeholder(g, "b", PST_FLOAT, pst_shape_1d(3)), "bias");
    expect_build_error(g, "'bias'", "bias [3] does not match the last dim of [4,5]");
    pst_graph_free(g);
    g = pst_graph_new();
    pst_batch_matmul(g, pst_placeholder(g, "a", PST_FLOAT, pst_shape_make(3, (int64_t[]){2, 3, 4})),
                     pst_placeholder(g, "b", PST_FLOAT, pst_shape_make(3, (int64_t[]){3, 4, 5})), 0,
                     0, "bmm");
    expect_build_error(g, "'bmm'", "batch dims differ: [2,3,4], [3,4,5]");
    pst_graph_free(g);
    g = pst_graph_new();
    pst_output dy = pst_placeholder(g, "dy", PST_FLOAT, pst_shape_4d(1, 4, 4, 2));
    pst_output f = pst_placeholder(g, "f", PST_FLOAT, pst_shape_4d(3, 3, 3, 2));
    pst_conv2d_backprop_input(g, pst_const_i32_vec(g, 4, (int32_t[]){1, 5, 5, 3}, NULL), f, dy, 2,
                              2, "SAME", "bi");
    expect_build_error(g, "'bi'", "out_backprop [1,4,4,2] does not match the [1,3,3,2]");
    pst_graph_free(g);
}
END_TEST

START_TEST(test_unsupported_attrs_are_rejected) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_4d(1, 4, 4, 2));
    pst_output f = pst_placeholder(g, "f", PST_FLOAT, pst_shape_4d(2, 2, 2, 2));
    pst_node_builder *b = pst_nb_new(g, "Conv2D", "nchw");
    pst_nb_input(b, x);
    pst_nb_input(b, f);
    pst_nb_attr_list_i(b, "strides", 4, (int64_t[]){1, 1, 1, 1});
    pst_nb_attr_s(b, "padding", "SAME");
    pst_nb_attr_s(b, "data_format", "NCHW");
    pst_nb_finish(b);
    expect_build_error(g, "'nchw'", "data_format NCHW is not supported (NHWC only)");
    pst_graph_free(g);

    g = pst_graph_new();
    x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_4d(1, 4, 4, 2));
    f = pst_placeholder(g, "f", PST_FLOAT, pst_shape_4d(2, 2, 2, 2));
    b = pst_nb_new(g, "Conv2D", "dilated");
    pst_nb_input(b, x);
    pst_nb_input(b, f);
    pst_nb_attr_list_i(b, "strides", 4, (int64_t[]){1, 1, 1, 1});
    pst_nb_attr_list_i(b, "dilations", 4, (int64_t[]){1, 2, 2, 1});
    pst_nb_attr_s(b, "padding", "SAME");
    pst_nb_finish(b);
    expect_build_error(g, "'dilated'", "dilations other than 1 are not supported");
    pst_graph_free(g);

    g = pst_graph_new();
    pst_conv2d(g, pst_placeholder(g, "x", PST_FLOAT, pst_shape_4d(1, 4, 4, 2)),
               pst_placeholder(g, "f", PST_FLOAT, pst_shape_4d(2, 2, 2, 2)), 1, 1, "EXPLICIT",
               "pad");
    expect_build_error(g, "'pad'", "padding must be SAME or VALID, got 'EXPLICIT'");
    pst_graph_free(g);

    g = pst_graph_new();
    pst_max_pool(g, pst_placeholder(g, "x", PST_FLOAT, pst_shape_4d(1, 4, 4, 2)), 5, 5, 1, 1,
                 "VALID", "big");
    expect_build_error(g, "'big'", "window 5x5 is larger than input [1,4,4,2] (VALID)");
    pst_graph_free(g);

    g = pst_graph_new();
    b = pst_nb_new(g, "BiasAdd", "bias_nchw");
    pst_nb_input(b, pst_placeholder(g, "x", PST_FLOAT, pst_shape_4d(1, 2, 4, 4)));
    pst_nb_input(b, pst_placeholder(g, "b", PST_FLOAT, pst_shape_1d(2)));
    pst_nb_attr_s(b, "data_format", "NCHW");
    pst_nb_finish(b);
    expect_build_error(g, "'bias_nchw'", "data_format NCHW is not supported");
    pst_graph_free(g);
}
END_TEST

START_TEST(test_sparse_xent_label_out_of_range_at_run_time) {
    pst_graph *g = pst_graph_new();
    pst_output logits = pst_placeholder(g, "logits", PST_FLOAT, pst_shape_2d(-1, 3));
    pst_output labels = pst_placeholder(g, "labels", PST_INT32, pst_shape_1d(-1));
    pst_node *xe = pst_sparse_softmax_cross_entropy_with_logits(g, logits, labels, "xent");
    ck_assert_int_eq(pst_graph_error(g), 0);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *lv = pst_test_rand(PST_FLOAT, pst_shape_2d(3, 3), 1, -1, 1);
    pst_tensor *tv = pst_tensor_new_zeros(PST_INT32, pst_shape_1d(3), NULL);
    pst_tensor_i32(tv)[1] = 2;
    pst_tensor_i32(tv)[2] = -1;
    pst_feed feeds[2] = {{logits, lv}, {labels, tv}};
    pst_output loss = pst_out(xe, 0);
    pst_tensor *out = NULL;
    ck_assert_int_eq(pst_session_run(s, feeds, 2, &loss, 1, NULL, 0, &out, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "'xent'") &&
                      strstr(st.msg, "label -1 at index 2 is out of range [0, 3)"),
                  "message: %s", st.msg);
    pst_tensor_unref(lv);
    pst_tensor_unref(tv);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* Gradients stop at InTopK (not differentiable) without an error. */
START_TEST(test_in_top_k_stops_gradients) {
    pst_graph *g = pst_graph_new();
    pst_output p = pst_placeholder(g, "p", PST_DOUBLE, pst_shape_2d(2, 3));
    pst_output hit =
        pst_cast(g,
                 pst_in_top_k(g, pst_cast(g, p, PST_FLOAT, NULL),
                              pst_const_i32_vec(g, 2, (int32_t[]){0, 1}, NULL), 1, NULL),
                 PST_DOUBLE, NULL);
    pst_output y = pst_add(g, pst_reduce_sum(g, hit, 0, NULL, 0, NULL),
                           pst_reduce_sum(g, p, 0, NULL, 0, NULL), NULL);
    pst_output dp;
    pst_status st = {0};
    ck_assert_int_eq(pst_gradients(g, 1, &y, NULL, 1, &p, &dp, NULL, &st), 0);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_nn_grad");
    TCase *tc = tcase_create("gradients");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_float64_gradients, 0,
                        (int)(sizeof f64_cases / sizeof f64_cases[0]));
    tcase_add_loop_test(tc, test_float32_gradients, 0,
                        (int)(sizeof f32_cases / sizeof f32_cases[0]));
    tcase_add_test(tc, test_build_errors_name_both_shapes);
    tcase_add_test(tc, test_unsupported_attrs_are_rejected);
    tcase_add_test(tc, test_sparse_xent_label_out_of_range_at_run_time);
    tcase_add_test(tc, test_in_top_k_stops_gradients);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
