/* Finite-difference gradient checks for every differentiable op: float64 where the kernel
 * supports it (tolerance 1e-6), float32 for the convolution and pooling kernels (step 1e-2,
 * tolerance 2e-2: float32 central differences are good to about 1e-3 relative). */
#include <stdio.h>
#include <string.h>

#include "op.h"
#include "testutil.h"

typedef pst_output (*build_fn)(pst_graph *g, const pst_output *x);

typedef struct grad_case {
    const char *name;
    int n;
    pst_shape shapes[3];
    double lo, hi;
    build_fn build;
} grad_case;

#define S1(a) {.rank = 1, .dims = {a}}
#define S2(a, b) {.rank = 2, .dims = {a, b}}
#define S3(a, b, c) {.rank = 3, .dims = {a, b, c}}
#define S4(a, b, c, d) {.rank = 4, .dims = {a, b, c, d}}
#define SC {.rank = 0}

static pst_output b_add(pst_graph *g, const pst_output *x) { return pst_add(g, x[0], x[1], NULL); }
static pst_output b_sub(pst_graph *g, const pst_output *x) { return pst_sub(g, x[0], x[1], NULL); }
static pst_output b_mul(pst_graph *g, const pst_output *x) { return pst_mul(g, x[0], x[1], NULL); }
static pst_output b_div(pst_graph *g, const pst_output *x) { return pst_real_div(g, x[0], x[1], NULL); }
static pst_output b_max(pst_graph *g, const pst_output *x) { return pst_maximum(g, x[0], x[1], NULL); }
static pst_output b_min(pst_graph *g, const pst_output *x) { return pst_minimum(g, x[0], x[1], NULL); }
static pst_output b_pow(pst_graph *g, const pst_output *x) { return pst_pow(g, x[0], x[1], NULL); }
static pst_output u_neg(pst_graph *g, const pst_output *x) { return pst_neg(g, x[0], NULL); }
static pst_output u_square(pst_graph *g, const pst_output *x) { return pst_square(g, x[0], NULL); }
static pst_output u_sqrt(pst_graph *g, const pst_output *x) { return pst_sqrt(g, x[0], NULL); }
static pst_output u_rsqrt(pst_graph *g, const pst_output *x) { return pst_rsqrt(g, x[0], NULL); }
static pst_output u_exp(pst_graph *g, const pst_output *x) { return pst_exp(g, x[0], NULL); }
static pst_output u_log(pst_graph *g, const pst_output *x) { return pst_log(g, x[0], NULL); }
static pst_output u_abs(pst_graph *g, const pst_output *x) { return pst_abs(g, x[0], NULL); }
static pst_output u_cos(pst_graph *g, const pst_output *x) { return pst_cos(g, x[0], NULL); }
static pst_output u_relu(pst_graph *g, const pst_output *x) { return pst_relu(g, x[0], NULL); }
static pst_output u_relu6(pst_graph *g, const pst_output *x) { return pst_relu6(g, x[0], NULL); }
static pst_output u_elu(pst_graph *g, const pst_output *x) { return pst_elu(g, x[0], NULL); }
static pst_output u_sigmoid(pst_graph *g, const pst_output *x) { return pst_sigmoid(g, x[0], NULL); }
static pst_output u_tanh(pst_graph *g, const pst_output *x) { return pst_tanh(g, x[0], NULL); }
static pst_output u_lrelu(pst_graph *g, const pst_output *x) { return pst_leaky_relu(g, x[0], 0.2f, NULL); }
static pst_output u_l2(pst_graph *g, const pst_output *x) { return pst_l2_loss(g, x[0], NULL); }
static pst_output u_cast(pst_graph *g, const pst_output *x) {
    return pst_cast(g, pst_square(g, pst_cast(g, x[0], PST_DOUBLE, NULL), NULL), PST_FLOAT, NULL);
}
static pst_output u_select(pst_graph *g, const pst_output *x) {
    return pst_select(g, pst_greater(g, x[0], x[1], NULL), x[0], x[1], NULL);
}
static pst_output r_sum0(pst_graph *g, const pst_output *x) {
    int32_t a = 0;
    return pst_reduce_sum(g, x[0], 1, &a, 0, NULL);
}
static pst_output r_mean1(pst_graph *g, const pst_output *x) {
    int32_t a = 1;
    return pst_reduce_mean(g, x[0], 1, &a, 1, NULL);
}
static pst_output r_max(pst_graph *g, const pst_output *x) {
    int32_t a[2] = {0, 2};
    return pst_reduce_max(g, x[0], 2, a, 0, NULL);
}
static pst_output r_min_all(pst_graph *g, const pst_output *x) { return pst_reduce_min(g, x[0], 0, NULL, 0, NULL); }
static pst_output r_prod(pst_graph *g, const pst_output *x) {
    int32_t a = -1;
    return pst_reduce_prod(g, x[0], 1, &a, 0, NULL);
}
static pst_output a_reshape(pst_graph *g, const pst_output *x) {
    return pst_reshape(g, x[0], 2, (int64_t[]){-1, 2}, NULL);
}
static pst_output a_transpose(pst_graph *g, const pst_output *x) {
    return pst_transpose(g, x[0], 3, (int32_t[]){2, 0, 1}, NULL);
}
static pst_output a_expand_squeeze(pst_graph *g, const pst_output *x) {
    return pst_squeeze(g, pst_expand_dims(g, x[0], 1, NULL), 1, (int32_t[]){1}, NULL);
}
static pst_output a_concat(pst_graph *g, const pst_output *x) { return pst_concat(g, 2, x, 1, NULL); }
static pst_output a_split(pst_graph *g, const pst_output *x) {
    pst_output parts[3];
    pst_split(g, x[0], 1, 3, parts, NULL);
    return pst_mul(g, parts[0], parts[2], NULL); /* part 1 gets no gradient: zeros */
}
static pst_output a_slice(pst_graph *g, const pst_output *x) {
    return pst_slice(g, x[0], 2, (int64_t[]){1, 0}, (int64_t[]){2, -1}, NULL);
}
static pst_output a_strided(pst_graph *g, const pst_output *x) {
    return pst_strided_slice(g, x[0], 2, (int64_t[]){0, 3}, (int64_t[]){3, 0}, (int64_t[]){2, -1},
                             0, 0, 0, NULL);
}
static pst_output a_pad(pst_graph *g, const pst_output *x) {
    return pst_pad(g, x[0], 2, (int64_t[]){1, 0, 2, 1}, NULL);
}
static pst_output a_tile(pst_graph *g, const pst_output *x) {
    return pst_tile(g, x[0], 2, (int64_t[]){2, 3}, NULL);
}
static pst_output a_stack(pst_graph *g, const pst_output *x) { return pst_stack(g, 2, x, 1, NULL); }
static pst_output a_unstack(pst_graph *g, const pst_output *x) {
    pst_output parts[3];
    pst_unstack(g, x[0], 3, 1, parts, NULL);
    return pst_add(g, parts[0], pst_mul(g, parts[1], parts[2], NULL), NULL);
}
static pst_output a_gather(pst_graph *g, const pst_output *x) {
    return pst_gather(g, x[0], pst_const_i32_vec(g, 4, (int32_t[]){2, 0, 2, 1}, NULL), 0, NULL);
}
static pst_output n_matmul(pst_graph *g, const pst_output *x) { return pst_matmul(g, x[0], x[1], 0, 0, NULL); }
static pst_output n_matmul_tt(pst_graph *g, const pst_output *x) { return pst_matmul(g, x[0], x[1], 1, 1, NULL); }
static pst_output n_matmul_ta(pst_graph *g, const pst_output *x) { return pst_matmul(g, x[0], x[1], 1, 0, NULL); }
static pst_output n_bmm(pst_graph *g, const pst_output *x) { return pst_batch_matmul(g, x[0], x[1], 0, 1, NULL); }
static pst_output n_bias(pst_graph *g, const pst_output *x) { return pst_bias_add(g, x[0], x[1], NULL); }
static pst_output n_softmax(pst_graph *g, const pst_output *x) { return pst_softmax(g, x[0], NULL); }
static pst_output n_log_softmax(pst_graph *g, const pst_output *x) { return pst_log_softmax(g, x[0], NULL); }
static pst_output n_xent(pst_graph *g, const pst_output *x) {
    pst_output labels = pst_softmax(g, x[1], NULL); /* a valid distribution */
    return pst_out(pst_softmax_cross_entropy_with_logits(g, x[0], pst_stop_gradient(g, labels, NULL), NULL), 0);
}
static pst_output n_sparse_xent(pst_graph *g, const pst_output *x) {
    pst_output labels = pst_const_i64_vec(g, 3, (int64_t[]){2, 0, 3}, NULL);
    return pst_out(pst_sparse_softmax_cross_entropy_with_logits(g, x[0], labels, NULL), 0);
}

static const grad_case f64_cases[] = {
    {"Add", 2, {S2(3, 4), S2(3, 4)}, -1, 1, b_add},
    {"Add broadcast row", 2, {S2(3, 4), S1(4)}, -1, 1, b_add},
    {"Add broadcast scalar", 2, {SC, S2(2, 3)}, -1, 1, b_add},
    {"Sub broadcast column", 2, {S2(3, 4), S2(3, 1)}, -1, 1, b_sub},
    {"Mul broadcast 3-D", 2, {S3(2, 1, 3), S2(4, 1)}, -1, 1, b_mul},
    {"RealDiv", 2, {S2(2, 3), S2(2, 3)}, 0.5, 2, b_div},
    {"Maximum", 2, {S2(3, 3), S1(3)}, -1, 1, b_max},
    {"Minimum", 2, {S2(3, 3), S2(3, 3)}, -1, 1, b_min},
    {"Pow", 2, {S1(5), S1(5)}, 0.5, 2, b_pow},
    {"Neg", 1, {S2(2, 3)}, -1, 1, u_neg},
    {"Square", 1, {S2(2, 3)}, -1, 1, u_square},
    {"Sqrt", 1, {S1(6)}, 0.5, 2, u_sqrt},
    {"Rsqrt", 1, {S1(6)}, 0.5, 2, u_rsqrt},
    {"Exp", 1, {S1(6)}, -1, 1, u_exp},
    {"Log", 1, {S1(6)}, 0.5, 2, u_log},
    {"Abs", 1, {S1(6)}, 0.1, 1, u_abs},
    {"Cos", 1, {S1(6)}, -2, 2, u_cos},
    {"Relu", 1, {S2(3, 4)}, -1, 1, u_relu},
    {"Relu6", 1, {S2(3, 4)}, -2, 8, u_relu6},
    {"Elu", 1, {S2(3, 4)}, -2, 2, u_elu},
    {"Sigmoid", 1, {S2(3, 4)}, -3, 3, u_sigmoid},
    {"Tanh", 1, {S2(3, 4)}, -2, 2, u_tanh},
    {"LeakyRelu", 1, {S2(3, 4)}, -1, 1, u_lrelu},
    {"L2Loss", 1, {S2(3, 4)}, -1, 1, u_l2},
    {"Select", 2, {S2(3, 4), S2(3, 4)}, -1, 1, u_select},
    {"Sum axis 0", 1, {S2(3, 4)}, -1, 1, r_sum0},
    {"Mean axis 1 keep_dims", 1, {S2(3, 4)}, -1, 1, r_mean1},
    {"Max axes 0,2", 1, {S3(2, 3, 4)}, -1, 1, r_max},
    {"Min all", 1, {S2(3, 4)}, -1, 1, r_min_all},
    {"Prod last axis", 1, {S2(3, 4)}, 0.5, 1.5, r_prod},
    {"Reshape", 1, {S2(3, 4)}, -1, 1, a_reshape},
    {"Transpose", 1, {S3(2, 3, 4)}, -1, 1, a_transpose},
    {"ExpandDims+Squeeze", 1, {S2(3, 4)}, -1, 1, a_expand_squeeze},
    {"ConcatV2", 2, {S2(2, 3), S2(2, 2)}, -1, 1, a_concat},
    {"Split", 1, {S2(2, 6)}, -1, 1, a_split},
    {"Slice", 1, {S2(4, 3)}, -1, 1, a_slice},
    {"StridedSlice", 1, {S2(4, 5)}, -1, 1, a_strided},
    {"Pad", 1, {S2(2, 3)}, -1, 1, a_pad},
    {"Tile", 1, {S2(2, 3)}, -1, 1, a_tile},
    {"Pack", 2, {S2(2, 3), S2(2, 3)}, -1, 1, a_stack},
    {"Unpack", 1, {S3(2, 3, 2)}, -1, 1, a_unstack},
    {"GatherV2", 1, {S2(3, 4)}, -1, 1, a_gather},
    {"MatMul", 2, {S2(3, 4), S2(4, 5)}, -1, 1, n_matmul},
    {"MatMul transposed", 2, {S2(4, 3), S2(5, 4)}, -1, 1, n_matmul_tt},
    {"MatMul transpose_a", 2, {S2(4, 3), S2(4, 2)}, -1, 1, n_matmul_ta},
    {"BatchMatMul adj_y", 2, {S3(2, 3, 4), S3(2, 5, 4)}, -1, 1, n_bmm},
    {"BiasAdd", 2, {S4(2, 3, 3, 4), S1(4)}, -1, 1, n_bias},
    {"Softmax", 1, {S2(3, 5)}, -2, 2, n_softmax},
    {"LogSoftmax", 1, {S2(3, 5)}, -2, 2, n_log_softmax},
    {"SoftmaxCrossEntropyWithLogits", 2, {S2(3, 5), S2(3, 5)}, -2, 2, n_xent},
    {"SparseSoftmaxCrossEntropyWithLogits", 1, {S2(3, 5)}, -2, 2, n_sparse_xent},
};

/* Placeholders declared with shapes decl (-1: unknown) are fed values of shapes fed; with
 * tf_ops_only, the gradient graph must not use pstrain's own helper ops. */
static void check_grad(const char *name, int n, const pst_shape *decl, const pst_shape *fed,
                       double lo, double hi, build_fn build, pst_dtype dt, double eps, double tol,
                       uint64_t seed, int tf_ops_only) {
    pst_graph *g = pst_graph_new();
    pst_output xs[3];
    pst_tensor *vals[3];
    for (int i = 0; i < n; i++) {
        char pname[16];
        snprintf(pname, sizeof pname, "x%d", i);
        xs[i] = pst_placeholder(g, pname, dt, decl[i]);
        vals[i] = pst_test_rand(dt, fed[i], seed + (uint64_t)i * 77, lo, hi);
    }
    pst_output y = build(g, xs);
    ck_assert_msg(pst_graph_error(g) == 0, "%s: %s", name, pst_graph_status(g)->msg);
    double err = pst_gradcheck(g, y, n, xs, vals, eps);
    ck_assert_msg(err < tol, "%s: gradient error %.3g exceeds %.3g", name, err, tol);
    for (int id = 0; tf_ops_only && id < pst_graph_num_nodes(g); id++)
        ck_assert_msg(strncmp(pst_graph_node(g, id)->op->name, "Pst", 3) != 0,
                      "%s: gradient uses %s", name, pst_graph_node(g, id)->op->name);
    for (int i = 0; i < n; i++) pst_tensor_unref(vals[i]);
    pst_graph_free(g);
}

static void run_case(const grad_case *c, pst_dtype dt, double eps, double tol, uint64_t seed) {
    check_grad(c->name, c->n, c->shapes, c->shapes, c->lo, c->hi, c->build, dt, eps, tol, seed, 0);
}

START_TEST(test_float64_gradients) {
    const grad_case *c = &f64_cases[_i];
    run_case(c, PST_DOUBLE, 1e-6, 1e-6, 1000 + (uint64_t)_i);
}
END_TEST

static pst_output n_conv(pst_graph *g, const pst_output *x, int sh, int sw, const char *pad) {
    return pst_conv2d(g, x[0], x[1], sh, sw, pad, NULL);
}
static pst_output c_same1(pst_graph *g, const pst_output *x) { return n_conv(g, x, 1, 1, "SAME"); }
static pst_output c_valid2(pst_graph *g, const pst_output *x) { return n_conv(g, x, 2, 2, "VALID"); }
static pst_output c_same2_rect(pst_graph *g, const pst_output *x) { return n_conv(g, x, 2, 1, "SAME"); }
static pst_output c_pointwise(pst_graph *g, const pst_output *x) { return n_conv(g, x, 1, 1, "VALID"); }
static pst_output p_max_same(pst_graph *g, const pst_output *x) { return pst_max_pool(g, x[0], 2, 2, 2, 2, "SAME", NULL); }
static pst_output p_max_valid3(pst_graph *g, const pst_output *x) { return pst_max_pool(g, x[0], 3, 2, 1, 2, "VALID", NULL); }
static pst_output p_avg_same(pst_graph *g, const pst_output *x) { return pst_avg_pool(g, x[0], 3, 3, 2, 2, "SAME", NULL); }
static pst_output p_avg_valid(pst_graph *g, const pst_output *x) { return pst_avg_pool(g, x[0], 2, 2, 1, 1, "VALID", NULL); }
static pst_output bn_train(pst_graph *g, const pst_output *x) {
    pst_output mean = pst_const_f32_tensor(g, pst_shape_1d(3), (float[]){0, 0, 0}, NULL);
    pst_output var = pst_const_f32_tensor(g, pst_shape_1d(3), (float[]){1, 1, 1}, NULL);
    return pst_out(pst_fused_batch_norm(g, x[0], x[1], x[2], mean, var, 1e-3f, 1, NULL), 0);
}
static pst_output bn_infer(pst_graph *g, const pst_output *x) {
    pst_output mean = pst_const_f32_tensor(g, pst_shape_1d(3), (float[]){0.1f, -0.2f, 0.3f}, NULL);
    pst_output var = pst_const_f32_tensor(g, pst_shape_1d(3), (float[]){1.5f, 0.5f, 2}, NULL);
    return pst_out(pst_fused_batch_norm(g, x[0], x[1], x[2], mean, var, 1e-3f, 0, NULL), 0);
}

static const grad_case f32_cases[] = {
    {"Conv2D SAME stride 1", 2, {S4(2, 5, 5, 3), S4(3, 3, 3, 4)}, -1, 1, c_same1},
    {"Conv2D VALID stride 2", 2, {S4(2, 7, 6, 2), S4(3, 2, 2, 3)}, -1, 1, c_valid2},
    {"Conv2D SAME strides 2x1, 5x3 kernel", 2, {S4(1, 6, 5, 2), S4(5, 3, 2, 2)}, -1, 1, c_same2_rect},
    {"Conv2D 1x1", 2, {S4(2, 3, 3, 4), S4(1, 1, 4, 2)}, -1, 1, c_pointwise},
    {"Conv2D one input channel SAME", 2, {S4(2, 5, 4, 1), S4(3, 3, 1, 3)}, -1, 1, c_same1},
    {"Conv2D one input channel VALID stride 2", 2, {S4(1, 7, 6, 1), S4(3, 2, 1, 2)}, -1, 1, c_valid2},
    {"MaxPool SAME", 1, {S4(2, 5, 5, 3)}, -1, 1, p_max_same},
    {"MaxPool VALID 3x2 strides 1x2", 1, {S4(1, 6, 6, 2)}, -1, 1, p_max_valid3},
    {"AvgPool SAME 3x3 stride 2", 1, {S4(2, 5, 5, 3)}, -1, 1, p_avg_same},
    {"AvgPool VALID", 1, {S4(1, 4, 4, 2)}, -1, 1, p_avg_valid},
    {"FusedBatchNorm training", 3, {S4(2, 3, 2, 3), S1(3), S1(3)}, -1, 1, bn_train},
    {"Cast float32->float64->float32", 1, {S2(2, 3)}, -1, 1, u_cast},
    {"FusedBatchNorm inference", 3, {S4(2, 2, 2, 3), S1(3), S1(3)}, -1, 1, bn_infer},
};

START_TEST(test_float32_gradients) {
    run_case(&f32_cases[_i], PST_FLOAT, 1e-2, 2e-2, 5000 + (uint64_t)_i);
}
END_TEST

/* Gradients through placeholders whose shapes are unknown when the graph is built: the
 * broadcast dims and the reduced sizes are found at run time (Shape, BroadcastGradientArgs,
 * Select), and the result still matches finite differences. */
typedef struct dyn_case {
    const char *name;
    int n;
    pst_shape decl[2]; /* as declared (-1: unknown) */
    pst_shape fed[2];  /* as fed */
    build_fn build;
} dyn_case;

static const dyn_case dyn_cases[] = {
    {"Add [?,3] + [1,3]", 2, {S2(-1, 3), S2(1, 3)}, {S2(4, 3), S2(1, 3)}, b_add},
    {"Mul [?,?] * [?,1]", 2, {S2(-1, -1), S2(-1, 1)}, {S2(2, 3), S2(2, 1)}, b_mul},
    {"Sub [?,?,?] - [?]", 2, {S3(-1, -1, -1), S1(-1)}, {S3(2, 2, 3), S1(3)}, b_sub},
    {"RealDiv [?,?] / [?,?] broadcast both", 2, {S2(-1, -1), S2(-1, -1)}, {S2(3, 1), S2(1, 4)}, b_div},
    {"Maximum [?,2] vs [?,2] same shape", 2, {S2(-1, 2), S2(-1, 2)}, {S2(3, 2), S2(3, 2)}, b_max},
    {"Sum over axis 0 of [?,3]", 1, {S2(-1, 3)}, {S2(5, 3)}, r_sum0},
    {"Mean over axis 1 of [?,?] keep_dims", 1, {S2(-1, -1)}, {S2(3, 4)}, r_mean1},
    {"Max over axes 0,2 of [?,2,?]", 1, {S3(-1, 2, -1)}, {S3(3, 2, 2)}, r_max},
    {"Min over all of [?,2]", 1, {S2(-1, 2)}, {S2(4, 2)}, r_min_all},
    {"Prod over the last axis of [2,?]", 1, {S2(2, -1)}, {S2(2, 3)}, r_prod},
    {"Slice of [?,?]", 1, {S2(-1, -1)}, {S2(4, 3)}, a_slice},
    {"StridedSlice of [?,5]", 1, {S2(-1, 5)}, {S2(4, 5)}, a_strided},
    {"Tile of [?,3]", 1, {S2(-1, 3)}, {S2(2, 3)}, a_tile},
};

START_TEST(test_gradients_with_unknown_dims) {
    const dyn_case *c = &dyn_cases[_i];
    check_grad(c->name, c->n, c->decl, c->fed, 0.5, 2.0, c->build, PST_DOUBLE, 1e-6, 1e-6,
               3000 + (uint64_t)_i, 1);
}
END_TEST

START_TEST(test_no_gradient_op_is_reported) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_2d(2, 2));
    /* PstReduceToShapeOf (kept for graphs exported by earlier versions) has no gradient. */
    pst_node_builder *b = pst_nb_new(g, "PstReduceToShapeOf", "rts");
    pst_nb_input(b, x);
    pst_nb_input(b, x);
    pst_output y = pst_nb_finish_out(b);
    pst_output dx;
    pst_status st = {0};
    ck_assert_int_eq(pst_gradients(g, 1, &y, NULL, 1, &x, &dx, NULL, &st), PST_E_UNIMPLEMENTED);
    ck_assert_ptr_nonnull(strstr(st.msg, "no gradient defined for op PstReduceToShapeOf"));
    ck_assert_ptr_nonnull(strstr(st.msg, "'rts'"));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_gradient_stops_at_integer_ops) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(2, 3));
    pst_output am = pst_cast(g, pst_argmax(g, x, 1, PST_INT64, NULL), PST_DOUBLE, NULL);
    pst_output y = pst_add(g, pst_reduce_sum(g, x, 0, NULL, 0, NULL),
                           pst_reduce_sum(g, am, 0, NULL, 0, NULL), NULL);
    pst_output dx;
    pst_status st = {0};
    ck_assert_int_eq(pst_gradients(g, 1, &y, NULL, 1, &x, &dx, NULL, &st), 0);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *xv = pst_test_rand(PST_DOUBLE, pst_shape_2d(2, 3), 3, -1, 1);
    pst_feed f = {x, xv};
    pst_tensor *d = pst_test_run(s, dx, 1, &f);
    for (int64_t i = 0; i < d->n; i++) ck_assert_double_eq_tol(pst_tensor_f64(d)[i], 1.0, 1e-12);
    pst_tensor_unref(d);
    pst_tensor_unref(xv);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gradients");
    TCase *tc = tcase_create("finite_differences");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_float64_gradients, 0, (int)(sizeof f64_cases / sizeof f64_cases[0]));
    tcase_add_loop_test(tc, test_float32_gradients, 0, (int)(sizeof f32_cases / sizeof f32_cases[0]));
    tcase_add_loop_test(tc, test_gradients_with_unknown_dims, 0,
                        (int)(sizeof dyn_cases / sizeof dyn_cases[0]));
    tcase_add_test(tc, test_no_gradient_op_is_reported);
    tcase_add_test(tc, test_gradient_stops_at_integer_ops);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
