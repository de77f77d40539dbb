/* TF 1.x ops of issue 17's second batch and fixes of older ones: values on small inputs against
 * numbers worked out from TF 1.15's kernel semantics, gradients by finite differences, and
 * error cases naming the node. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "testutil.h"

static pst_tensor *f64(int64_t n, const double *v) {
    return pst_tensor_from_f64(pst_shape_1d(n), v);
}
static pst_tensor *i32(int64_t n, const int32_t *v) {
    return pst_tensor_from_i32(pst_shape_1d(n), v);
}

/* ---- Fixes: division by zero ----------------------------------------------------------- */
START_TEST(test_float_mod_by_zero_is_nan) {
    const char *ops[] = {"Mod", "FloorMod"};
    for (int k = 0; k < 2; k++) {
        for (int dbl = 0; dbl < 2; dbl++) {
            pst_tensor *x = dbl ? f64(2, (double[]){5, -3})
                                : pst_tensor_from_f32(pst_shape_1d(2), (float[]){5, -3});
            pst_tensor *y = dbl ? f64(2, (double[]){0, 2})
                                : pst_tensor_from_f32(pst_shape_1d(2), (float[]){0, 2});
            pst_graph *g = pst_graph_new();
            pst_node *nd =
                pst_test_finish(g, pst_test_nb_consts(g, ops[k], 2, (pst_tensor *[]){x, y}));
            pst_tensor *o = pst_test_run_out(g, nd, 0);
            ck_assert_msg(isnan(pst_tensor_get_f64(o, 0)), "%s(5, 0) = %g", ops[k],
                          pst_tensor_get_f64(o, 0));
            /* fmod(-3, 2) = -1; FloorMod moves it to the divisor's sign: 1 */
            ck_assert_double_eq(pst_tensor_get_f64(o, 1), k == 0 ? -1 : 1);
            pst_tensor_unref(o);
            pst_graph_free(g);
        }
    }
    /* FloorMod of floats follows the divisor's sign; FloorDiv by 0 is an infinity */
    const int64_t d4[1] = {4};
    pst_test_check_op("FloorMod", 2,
                      (pst_tensor *[]){f64(4, (double[]){-7.5, 7.5, 7.5, -7.5}),
                                       f64(4, (double[]){2, -2, 2, -2})},
                      1, d4, (double[]){0.5, -0.5, 1.5, -1.5});
    pst_graph *g = pst_graph_new();
    pst_node *nd = pst_test_finish(
        g,
        pst_test_nb_consts(g, "FloorDiv", 2,
                           (pst_tensor *[]){f64(2, (double[]){1, -1}), f64(2, (double[]){0, 0})}));
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    ck_assert(isinf(pst_tensor_f64(o)[0]) && pst_tensor_f64(o)[0] > 0);
    ck_assert(isinf(pst_tensor_f64(o)[1]) && pst_tensor_f64(o)[1] < 0);
    pst_tensor_unref(o);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_integer_division_by_zero_fails) {
    const char *ops[] = {"FloorDiv", "FloorMod", "TruncateDiv", "TruncateMod", "Div", "Mod"};
    for (int k = 0; k < 6; k++)
        for (int wide = 0; wide < 2; wide++) {
            pst_tensor *x = wide ? pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){5, 6})
                                 : i32(2, (int32_t[]){5, 6});
            pst_tensor *y = wide ? pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){2, 0})
                                 : i32(2, (int32_t[]){2, 0});
            pst_graph *g = pst_graph_new();
            pst_node *nd =
                pst_test_finish(g, pst_test_nb_consts(g, ops[k], 2, (pst_tensor *[]){x, y}));
            pst_test_run_fails(g, nd, "Integer division by zero");
            pst_graph_free(g);
        }
}
END_TEST

START_TEST(test_integer_division_values) {
    /* floor forms round toward -inf, truncating forms toward 0; x / -1 of the lowest int wraps */
    const int64_t d5[1] = {5};
    pst_tensor *x[6], *y[6];
    const char *ops[] = {"FloorDiv", "FloorMod", "TruncateDiv", "TruncateMod", "Div", "Mod"};
    const double want[6][5] = {{-4, -4, 3, 3, INT32_MIN}, {1, -1, 1, -1, 0},
                               {-3, -3, 3, 3, INT32_MIN}, {-1, 1, 1, -1, 0},
                               {-3, -3, 3, 3, INT32_MIN}, {-1, 1, 1, -1, 0}};
    for (int k = 0; k < 6; k++) {
        x[k] = i32(5, (int32_t[]){-7, 7, 7, -7, INT32_MIN});
        y[k] = i32(5, (int32_t[]){2, -2, 2, -2, -1});
        pst_test_check_op(ops[k], 2, (pst_tensor *[]){x[k], y[k]}, 1, d5, want[k]);
    }
    /* int64 in exact integer arithmetic (2^53 + 1 is not a double) */
    pst_graph *g = pst_graph_new();
    pst_node *nd = pst_test_finish(
        g,
        pst_test_nb_consts(
            g, "FloorDiv", 2,
            (pst_tensor *[]){pst_tensor_from_i64(pst_shape_1d(1), (int64_t[]){9007199254740993LL}),
                             pst_tensor_from_i64(pst_shape_1d(1), (int64_t[]){1})}));
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    ck_assert_int_eq(pst_tensor_i64(o)[0], 9007199254740993LL);
    pst_tensor_unref(o);
    pst_graph_free(g);
}
END_TEST

/* ---- Fixes: UnsortedSegmentSum's gradient, double pooling ----------------------------- */
START_TEST(test_unsorted_segment_sum_grad_negative_ids) {
    /* rows of id -1 were dropped by the forward op and get a zero gradient */
    pst_graph *g = pst_graph_new();
    pst_tensor *xv = pst_test_rand(PST_DOUBLE, pst_shape_2d(4, 2), 7, -1, 1);
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(4, 2));
    pst_node_builder *b = pst_nb_new(g, "UnsortedSegmentSum", NULL);
    pst_nb_input(b, x);
    pst_nb_input(b, pst_test_const(g, i32(4, (int32_t[]){1, -1, 0, -2}), NULL));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i32(2), NULL));
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    pst_nb_attr_type(b, "Tindices", PST_INT32);
    pst_output y = pst_nb_finish_out(b);
    ck_assert_msg(y.node != NULL, "%s", pst_graph_status(g)->msg);
    /* d sum(y * w) / dx: row i gets w[id_i], zero for negative ids */
    pst_output w =
        pst_test_const(g, pst_tensor_from_f64(pst_shape_2d(2, 2), (double[]){1, 2, 3, 4}), NULL);
    pst_output loss = pst_reduce_sum(g, pst_mul(g, y, w, NULL), 0, NULL, 0, NULL);
    pst_output dx;
    pst_status st = {0};
    ck_assert_msg(pst_gradients(g, 1, &loss, NULL, 1, &x, &dx, NULL, &st) == 0, "%s", st.msg);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *o = pst_test_run(s, dx, 1, (pst_feed[]){{x, xv}});
    PST_ASSERT_TENSOR(o, 2, ((int64_t[]){4, 2}), ((double[]){3, 4, 0, 0, 1, 2, 0, 0}), 1e-12);
    pst_tensor_unref(o);
    pst_session_free(s);
    pst_graph_free(g);
    pst_tensor_unref(xv);
    pst_test_grad1(
        "UnsortedSegmentSum",
        pst_test_rand(PST_DOUBLE, pst_shape_make(3, (int64_t[]){2, 2, 3}), 8, -1, 1), 2,
        (pst_tensor *[]){pst_tensor_from_i32(pst_shape_2d(2, 2), (int32_t[]){0, -1, 1, 0}),
                         pst_tensor_scalar_i32(2)},
        NULL, 0);
}
END_TEST

static pst_output pool_node(pst_graph *g, const char *op, pst_output x, int k, int s,
                            const char *pad) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_input(b, x);
    pst_nb_attr_type(b, "T", pst_output_dtype(x));
    pst_nb_attr_list_i(b, "ksize", 4, (int64_t[]){1, k, k, 1});
    pst_nb_attr_list_i(b, "strides", 4, (int64_t[]){1, s, s, 1});
    pst_nb_attr_s(b, "padding", pad);
    pst_output y = pst_nb_finish_out(b);
    ck_assert_msg(y.node != NULL, "%s", pst_graph_status(g)->msg);
    return y;
}

START_TEST(test_pooling_double) {
    /* a 1x3x3x1 image, 2x2 windows, stride 1, VALID */
    const double img[9] = {1, 5, 2, 4, 3, 9, 0, 7, 6};
    const char *ops[] = {"MaxPool", "AvgPool"};
    const double want[2][4] = {{5, 9, 7, 9}, {13 / 4.0, 19 / 4.0, 14 / 4.0, 25 / 4.0}};
    for (int k = 0; k < 2; k++) {
        pst_graph *g = pst_graph_new();
        pst_output x = pst_test_const(g, pst_tensor_from_f64(pst_shape_4d(1, 3, 3, 1), img), NULL);
        pst_output y = pool_node(g, ops[k], x, 2, 1, "VALID");
        ck_assert_int_eq(pst_output_dtype(y), PST_DOUBLE);
        pst_tensor *o = pst_test_run_out(g, y.node, 0);
        PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 2, 2, 1}), want[k], 1e-15);
        pst_tensor_unref(o);
        /* gradients (MaxPoolGrad / AvgPoolGrad in double) by finite differences, SAME padding,
         * values far enough apart that the max is not near a tie */
        pst_graph *g2 = pst_graph_new();
        pst_tensor *v =
            pst_tensor_from_f64(pst_shape_4d(1, 3, 3, 2), (double[]){1, 18, 5, 2, 2, 16, 4, 14, 3,
                                                                     12, 9, 10, 0, 8, 7, 6, 6, 4});
        pst_output ph = pst_placeholder(g2, "x", PST_DOUBLE, v->shape);
        pst_output y2 = pool_node(g2, ops[k], ph, 2, 2, "SAME");
        double err = pst_gradcheck(g2, y2, 1, &ph, &v, 1e-6);
        ck_assert_msg(err < 1e-8, "%s double gradient error %g", ops[k], err);
        pst_tensor_unref(v);
        pst_graph_free(g2);
        pst_graph_free(g);
    }
    /* MaxPoolGrad's inputs must agree in dtype; int32 pooling is refused at build time */
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "MaxPool", "p");
    pst_nb_input(
        b, pst_test_const(g, pst_tensor_from_i32(pst_shape_4d(1, 2, 2, 1), (int32_t[]){1, 2, 3, 4}),
                          NULL));
    pst_nb_attr_type(b, "T", PST_INT32);
    pst_nb_attr_list_i(b, "ksize", 4, (int64_t[]){1, 2, 2, 1});
    pst_nb_attr_list_i(b, "strides", 4, (int64_t[]){1, 1, 1, 1});
    pst_nb_attr_s(b, "padding", "VALID");
    ck_assert(pst_nb_finish(b) == NULL);
    ck_assert_msg(strstr(pst_graph_status(g)->msg, "int32") != NULL, "%s",
                  pst_graph_status(g)->msg);
    pst_graph_free(g);
}
END_TEST

/* ---- Old TensorArray forms --------------------------------------------------------------- */
static pst_output ta_node(pst_graph *g, const char *op, int n, const pst_output *in, pst_dtype dt) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    for (int i = 0; i < n; i++)
        pst_nb_input(b, in[i]);
    pst_nb_attr_type(b, strcmp(op, "TensorArrayUnpack") == 0 ? "T" : "dtype", dt);
    pst_output o = pst_nb_finish_out(b);
    ck_assert_msg(o.node != NULL, "%s: %s", op, pst_graph_status(g)->msg);
    return o;
}

START_TEST(test_tensor_array_v1_v2) {
    /* TF 0.12 / 1.0 names: handle-only creators; Unpack / Pack are Scatter / Gather of all */
    const char *create[] = {"TensorArrayV2", "TensorArray"};
    const char *sfx[] = {"V2", ""};
    for (int v = 0; v < 2; v++) {
        char op[64];
        pst_graph *g = pst_graph_new();
        pst_output h =
            ta_node(g, create[v], 1, (pst_output[]){pst_const_i32(g, 3, NULL)}, PST_DOUBLE);
        ck_assert_int_eq(h.node->n_outputs, 1);
        pst_output flow = pst_const_f32(g, 0, NULL);
        pst_output value = pst_test_const(
            g, pst_tensor_from_f64(pst_shape_2d(3, 2), (double[]){1, 2, 3, 4, 5, 6}), NULL);
        pst_output f1 =
            v == 1
                ? ta_node(g, "TensorArrayUnpack", 3, (pst_output[]){h, value, flow}, PST_DOUBLE)
                : ta_node(g, "TensorArrayScatterV2", 4,
                          (pst_output[]){h, pst_test_const(g, i32(3, (int32_t[]){2, 1, 0}), NULL),
                                         value, flow},
                          PST_DOUBLE);
        snprintf(op, sizeof op, "TensorArrayWrite%s", sfx[v]);
        pst_output f2 =
            ta_node(g, op, 4,
                    (pst_output[]){h, pst_const_i32(g, 1, NULL),
                                   pst_test_const(g, f64(2, (double[]){7, 8}), NULL), f1},
                    PST_DOUBLE);
        snprintf(op, sizeof op, "TensorArrayRead%s", sfx[v]);
        pst_output r =
            ta_node(g, op, 3, (pst_output[]){h, pst_const_i32(g, 0, NULL), f2}, PST_DOUBLE);
        pst_output all =
            v == 1 ? ta_node(g, "TensorArrayPack", 2, (pst_output[]){h, f2}, PST_DOUBLE)
                   : ta_node(g, "TensorArrayGatherV2", 3,
                             (pst_output[]){
                                 h, pst_test_const(g, i32(3, (int32_t[]){0, 1, 2}), NULL), f2},
                             PST_DOUBLE);
        snprintf(op, sizeof op, "TensorArraySize%s", sfx[v]);
        pst_output size = ta_node(g, op, 2, (pst_output[]){h, f2}, PST_INT32);
        snprintf(op, sizeof op, "TensorArrayConcat%s", sfx[v]);
        pst_output cat = ta_node(g, op, 2, (pst_output[]){h, f2}, PST_DOUBLE);
        pst_status st = {0};
        pst_session *s = pst_session_new(g, NULL, &st);
        pst_output fetch[4] = {r, all, size, cat};
        pst_tensor *out[4] = {0};
        ck_assert_msg(pst_session_run(s, NULL, 0, fetch, 4, NULL, 0, out, &st) == 0, "%s", st.msg);
        /* Unpack puts row k at k; ScatterV2 with {2, 1, 0} reverses the rows */
        double first = v == 1 ? 1 : 5, last = v == 1 ? 5 : 1;
        PST_ASSERT_TENSOR(out[0], 1, ((int64_t[]){2}), ((double[]){first, first + 1}), 0);
        PST_ASSERT_TENSOR(out[1], 2, ((int64_t[]){3, 2}),
                          ((double[]){first, first + 1, 7, 8, last, last + 1}), 0);
        ck_assert_int_eq(pst_tensor_i32(out[2])[0], 3);
        PST_ASSERT_TENSOR(out[3], 1, ((int64_t[]){6}),
                          ((double[]){first, first + 1, 7, 8, last, last + 1}), 0);
        for (int i = 0; i < 4; i++)
            pst_tensor_unref(out[i]);
        pst_session_free(s);
        pst_graph_free(g);
    }
    /* reading past the end names the node */
    pst_graph *g = pst_graph_new();
    pst_output h =
        ta_node(g, "TensorArrayV2", 1, (pst_output[]){pst_const_i32(g, 2, NULL)}, PST_FLOAT);
    pst_output r =
        ta_node(g, "TensorArrayReadV2", 3,
                (pst_output[]){h, pst_const_i32(g, 5, NULL), pst_const_f32(g, 0, NULL)}, PST_FLOAT);
    pst_test_run_fails(g, r.node, "outside the TensorArray");
    pst_graph_free(g);
}
END_TEST

/* ---- Old ref ops ------------------------------------------------------------------------- */
static pst_output ref_op(pst_graph *g, const char *op, int n, const pst_output *in, pst_node *dep) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    for (int i = 0; i < n; i++)
        pst_nb_input(b, in[i]);
    if (dep)
        pst_nb_control(b, dep);
    pst_nb_attr_type(b, strcmp(op, "TemporaryVariable") == 0 ? "dtype" : "T", PST_DOUBLE);
    if (strcmp(op, "TemporaryVariable") == 0)
        pst_nb_attr_shape(b, "shape", pst_shape_1d(2));
    pst_output o = pst_nb_finish_out(b);
    ck_assert_msg(o.node != NULL, "%s: %s", op, pst_graph_status(g)->msg);
    return o;
}

START_TEST(test_temporary_variable_ref_ops) {
    /* TF 1.0's accumulate_n: zeros into a temporary variable, two AssignAdds, then Destroy; run
     * twice (the second run starts from zeros again) */
    pst_graph *g = pst_graph_new();
    pst_output tv = ref_op(g, "TemporaryVariable", 0, NULL, NULL);
    pst_output z = pst_assign(g, tv, pst_test_const(g, f64(2, (double[]){0, 0}), NULL), NULL);
    pst_output a1 = pst_assign_add(g, z, pst_test_const(g, f64(2, (double[]){1, 2}), NULL), NULL);
    pst_output a2 = pst_assign_add(g, z, pst_test_const(g, f64(2, (double[]){10, 20}), NULL), NULL);
    pst_node_builder *b = pst_nb_new(g, "DestroyTemporaryVariable", NULL);
    pst_nb_input(b, z);
    pst_nb_control(b, a1.node);
    pst_nb_control(b, a2.node);
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    pst_output sum = pst_nb_finish_out(b);
    ck_assert_msg(sum.node != NULL, "%s", pst_graph_status(g)->msg);
    /* RefIdentity and RefSelect pass a variable's value and ref on */
    pst_output v1 = pst_variable_v2(g, "v1", PST_DOUBLE, pst_shape_1d(2)),
               v2 = pst_variable_v2(g, "v2", PST_DOUBLE, pst_shape_1d(2));
    pst_node *i1 = pst_assign(g, v1, pst_test_const(g, f64(2, (double[]){5, 6}), NULL), NULL).node;
    pst_node *i2 = pst_assign(g, v2, pst_test_const(g, f64(2, (double[]){7, 8}), NULL), NULL).node;
    pst_output ri = ref_op(g, "RefIdentity", 1, &v1, NULL);
    pst_output rs =
        ref_op(g, "RefSelect", 3, (pst_output[]){pst_const_i32(g, 1, NULL), v1, v2}, NULL);
    pst_output upd = pst_assign_add(g, rs, pst_test_const(g, f64(2, (double[]){1, 1}), NULL), NULL);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert(pst_session_run(s, NULL, 0, NULL, 0, (pst_node *[]){i1, i2}, 2, NULL, &st) == 0);
    for (int run = 0; run < 2; run++) {
        pst_tensor *o = pst_test_run(s, sum, 0, NULL);
        PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){11, 22}), 0);
        pst_tensor_unref(o);
    }
    pst_tensor *o = pst_test_run(s, ri, 0, NULL);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){5, 6}), 0);
    pst_tensor_unref(o);
    o = pst_test_run(s, upd, 0, NULL); /* AssignAdd through RefSelect updates v2 */
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){8, 9}), 0);
    pst_tensor_unref(o);
    pst_session_free(s);
    /* an index past the refs names the node */
    pst_output bad =
        ref_op(g, "RefSelect", 3, (pst_output[]){pst_const_i32(g, 2, NULL), v1, v2}, NULL);
    s = pst_session_new(g, NULL, &st);
    ck_assert(pst_session_run(s, NULL, 0, NULL, 0, (pst_node *[]){i1, i2}, 2, NULL, &st) == 0);
    ck_assert(pst_session_run(s, NULL, 0, &bad, 1, NULL, 0, &o, &st) < 0);
    ck_assert_msg(strstr(st.msg, bad.node->name) && strstr(st.msg, "index 2"), "%s", st.msg);
    pst_session_free(s);
    /* a non-variable where a ref is needed is refused when built */
    b = pst_nb_new(g, "RefIdentity", NULL);
    pst_nb_input(b, pst_test_const(g, f64(1, (double[]){1}), NULL));
    ck_assert(pst_nb_finish(b) == NULL);
    pst_graph_free(g);
}
END_TEST

/* ---- Special functions (expected values from mpmath at 30 digits) ------------------------- */
START_TEST(test_incomplete_gamma_beta) {
    const int64_t d4[1] = {4};
    const double a[4] = {0.5, 2.5, 3, 10}, x[4] = {0.3, 1.0, 7.5, 30};
    const double p[4] = {0.561421973919000136, 0.150854963915390364, 0.979743284943335595,
                         0.999992878249137184};
    double q[4];
    for (int i = 0; i < 4; i++)
        q[i] = 1 - p[i];
    q[3] = 0.00000712175086281557709; /* not 1 - p: Q is computed directly */
    pst_test_check_op("Igamma", 2, (pst_tensor *[]){f64(4, a), f64(4, x)}, 1, d4, p);
    pst_test_check_op("Igammac", 2, (pst_tensor *[]){f64(4, a), f64(4, x)}, 1, d4, q);
    pst_test_check_op("IgammaGradA", 2, (pst_tensor *[]){f64(4, a), f64(4, x)}, 1, d4,
                      (double[]){-0.770570351375351917, -0.180099606954041508,
                                 -0.0250922608556371189, -0.00000850020298912043521});
    pst_test_check_op("RandomGammaGrad", 2, (pst_tensor *[]){f64(4, a), f64(4, x)}, 1, d4,
                      (double[]){1.00980194594885459, 0.650793859686282205, 1.61307988983422218,
                                 1.67469411625938830});
    /* edges as Eigen's: x = 0, a <= 0 (NaN), x = inf */
    pst_graph *g = pst_graph_new();
    pst_node *nd = pst_test_finish(
        g, pst_test_nb_consts(
               g, "Igamma", 2,
               (pst_tensor *[]){f64(3, (double[]){1, -1, 2}), f64(3, (double[]){0, 1, INFINITY})}));
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    ck_assert(pst_tensor_f64(o)[0] == 0 && isnan(pst_tensor_f64(o)[1]) &&
              pst_tensor_f64(o)[2] == 1);
    pst_tensor_unref(o);
    pst_graph_free(g);
    const int64_t d3[1] = {3};
    pst_test_check_op("Betainc", 3,
                      (pst_tensor *[]){f64(3, (double[]){0.5, 3, 20}), f64(3, (double[]){2, 4, 5}),
                                       f64(3, (double[]){0.3, 0.8, 0.7})},
                      1, d3,
                      (double[]){0.739425452631974243, 0.983040000000000014, 0.111075223260922187});
    /* scalars a and b with a vector x; Betainc(1, 1, x) = x */
    pst_test_check_op("Betainc", 3,
                      (pst_tensor *[]){pst_tensor_scalar_f64(1), pst_tensor_scalar_f64(1),
                                       f64(3, (double[]){0, 0.25, 1})},
                      1, d3, (double[]){0, 0.25, 1});
    /* shapes that are neither scalar nor equal */
    g = pst_graph_new();
    pst_node_builder *b =
        pst_test_nb_consts(g, "Betainc", 3,
                           (pst_tensor *[]){f64(2, (double[]){1, 2}), f64(3, (double[]){1, 2, 3}),
                                            pst_tensor_scalar_f64(0.5)});
    ck_assert(pst_nb_finish(b) == NULL);
    ck_assert_msg(strstr(pst_graph_status(g)->msg, "scalars or of one shape") != NULL, "%s",
                  pst_graph_status(g)->msg);
    pst_graph_free(g);
    /* gradients: Igamma/Igammac in a and x, Betainc in x (TF has none for a and b) */
    pst_tensor *ga[2] = {pst_test_rand(PST_DOUBLE, pst_shape_1d(4), 3, 0.5, 4),
                         pst_test_rand(PST_DOUBLE, pst_shape_1d(4), 4, 0.2, 6)};
    pst_test_grad_op("Igamma", 2, ga, NULL, 0);
    pst_test_grad_op("Igammac", 2, ga, NULL, 0);
    for (int i = 0; i < 2; i++)
        pst_tensor_unref(ga[i]);
    pst_graph *g2 = pst_graph_new();
    pst_tensor *xv = pst_test_rand(PST_DOUBLE, pst_shape_1d(4), 5, 0.1, 0.9);
    pst_output xp = pst_placeholder(g2, "x", PST_DOUBLE, xv->shape);
    pst_node_builder *bb = pst_nb_new(g2, "Betainc", NULL);
    pst_nb_input(bb, pst_test_const(g2, f64(4, (double[]){0.5, 2, 3, 1.5}), NULL));
    pst_nb_input(bb, pst_test_const(g2, pst_tensor_scalar_f64(2.5), NULL));
    pst_nb_input(bb, xp);
    pst_nb_attr_type(bb, "T", PST_DOUBLE);
    pst_output y = pst_nb_finish_out(bb);
    double err = pst_gradcheck(g2, y, 1, &xp, &xv, 1e-6);
    ck_assert_msg(err < 1e-6, "Betainc gradient error %g", err);
    pst_tensor_unref(xv);
    pst_graph_free(g2);
}
END_TEST

START_TEST(test_bessel_nextafter) {
    const int64_t d6[1] = {6};
    const double x[6] = {0, 0.5, -1, 7, -45, 100};
    pst_test_check_op("BesselI0e", 1, (pst_tensor *[]){f64(6, x)}, 1, d6,
                      (double[]){1, 0.645035270449150068, 0.465759607593640437,
                                 0.153737744672881248, 0.0596381150117319491,
                                 0.0399443792990966826});
    pst_test_check_op("BesselI1e", 1, (pst_tensor *[]){f64(6, x)}, 1, d6,
                      (double[]){0, 0.156420803184871697, -0.207910415349708449,
                                 0.142289234709598674, -0.0589717031362006435,
                                 0.0397441530251302527});
    /* gradients, including I1e's at 0 (1/2, the limit) */
    pst_tensor *v = f64(5, (double[]){-3, -0.5, 0.7, 2, 50});
    pst_test_grad1("BesselI0e", v, 0, NULL, NULL, 0);
    pst_test_grad1("BesselI1e", f64(5, (double[]){-3, -0.5, 0.7, 2, 50}), 0, NULL, NULL, 0);
    pst_graph *g = pst_graph_new();
    pst_output xp = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_1d(1));
    pst_node_builder *b = pst_nb_new(g, "BesselI1e", NULL);
    pst_nb_input(b, xp);
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    pst_output y = pst_nb_finish_out(b), dx;
    pst_status st = {0};
    ck_assert_msg(pst_gradients(g, 1, &y, NULL, 1, &xp, &dx, NULL, &st) == 0, "%s", st.msg);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *zero = f64(1, (double[]){0});
    pst_tensor *o = pst_test_run(s, dx, 1, (pst_feed[]){{xp, zero}});
    ck_assert_double_eq_tol(pst_tensor_f64(o)[0], 0.5, 1e-15);
    pst_tensor_unref(o);
    pst_tensor_unref(zero);
    pst_session_free(s);
    pst_graph_free(g);
    /* NextAfter in the input's own precision */
    g = pst_graph_new();
    pst_node *nd = pst_test_finish(
        g, pst_test_nb_consts(
               g, "NextAfter", 2,
               (pst_tensor *[]){pst_tensor_from_f32(pst_shape_1d(2), (float[]){1, 0}),
                                pst_tensor_from_f32(pst_shape_1d(2), (float[]){2, -1})}));
    o = pst_test_run_out(g, nd, 0);
    ck_assert(pst_tensor_f32(o)[0] == 1 + FLT_EPSILON && pst_tensor_f32(o)[1] == -0x1p-149f);
    pst_tensor_unref(o);
    pst_graph_free(g);
    pst_test_check_op("NextAfter", 2,
                      (pst_tensor *[]){f64(1, (double[]){1}), f64(1, (double[]){0})}, 1,
                      (int64_t[]){1}, (double[]){1 - DBL_EPSILON / 2});
}
END_TEST

/* ---- Random ---------------------------------------------------------------------------- */
/* Runs op once over Consts of in with attrs dtype (when dt is valid) and seed/seed2. */
static pst_tensor *draw(const char *op, int n, pst_tensor *const *in, pst_dtype dt, int64_t seed) {
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    for (int i = 0; i < n; i++)
        pst_nb_input(b, pst_test_const(g, in[i], NULL));
    if (pst_dtype_valid(dt))
        pst_nb_attr_type(b, "dtype", dt);
    pst_nb_attr_i(b, "seed", seed);
    pst_nb_attr_i(b, "seed2", 7);
    pst_node *nd = pst_test_finish(g, b);
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    pst_graph_free(g);
    return o;
}

static void mean_var(const pst_tensor *t, int64_t stride, int64_t at, double *mean, double *var) {
    double s = 0, s2 = 0;
    int64_t m = 0;
    for (int64_t i = at; i < t->n; i += stride, m++) {
        double v = pst_tensor_get_f64(t, i);
        s += v;
        s2 += v * v;
    }
    *mean = s / (double)m;
    *var = s2 / (double)m - *mean * *mean;
}

/* 20000 draws for each of 3 parameters (o is [20000, 3]) whose mean and variance both equal
 * the parameter (Gamma(alpha, 1), Poisson(rate)): within 5 standard errors and 10%. Takes o. */
static void same_mean_var(pst_tensor *o, const char *what, const double *par) {
    for (int j = 0; j < 3; j++) {
        double m, v;
        mean_var(o, 3, j, &m, &v);
        ck_assert_msg(fabs(m - par[j]) < 5 * sqrt(par[j] / 20000), "%s(%g) mean %g", what, par[j],
                      m);
        ck_assert_msg(fabs(v - par[j]) < 0.1 * par[j], "%s(%g) variance %g", what, par[j], v);
    }
    pst_tensor_unref(o);
}

START_TEST(test_random_gamma_poisson) {
    /* 20000 draws per parameter: mean and variance within 5 standard errors */
    pst_tensor *o = draw("RandomGamma", 2,
                         (pst_tensor *[]){pst_tensor_from_i32(pst_shape_1d(1), (int32_t[]){20000}),
                                          f64(3, (double[]){0.3, 2, 9})},
                         PST_DT_INVALID, 5);
    ck_assert_int_eq(o->shape.rank, 2);
    ck_assert_int_eq(o->shape.dims[1], 3);
    same_mean_var(o, "gamma", (double[]){0.3, 2, 9});
    const double rate[3] = {0.5, 4, 60};
    for (int v2 = 0; v2 < 2; v2++) {
        o = draw(v2 ? "RandomPoissonV2" : "RandomPoisson", 2,
                 (pst_tensor *[]){pst_tensor_from_i32(pst_shape_1d(1), (int32_t[]){20000}),
                                  f64(3, rate)},
                 v2 ? PST_INT32 : PST_DOUBLE, 5);
        ck_assert_int_eq(o->dtype, v2 ? PST_INT32 : PST_DOUBLE);
        same_mean_var(o, "poisson", rate);
    }
    /* RandomGamma's gradient: d E[sum(samples)] / d alpha = number of samples (the mean is alpha)
     */
    pst_graph *g = pst_graph_new();
    pst_output al = pst_placeholder(g, "alpha", PST_DOUBLE, pst_shape_1d(2));
    pst_node_builder *b = pst_nb_new(g, "RandomGamma", NULL);
    pst_nb_input(b,
                 pst_test_const(g, pst_tensor_from_i32(pst_shape_1d(1), (int32_t[]){20000}), NULL));
    pst_nb_input(b, al);
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    pst_nb_attr_i(b, "seed", 3);
    pst_output y = pst_nb_finish_out(b);
    ck_assert_msg(y.node != NULL, "%s", pst_graph_status(g)->msg);
    pst_output loss = pst_reduce_sum(g, y, 0, NULL, 0, NULL), dal;
    pst_status st = {0};
    ck_assert_msg(pst_gradients(g, 1, &loss, NULL, 1, &al, &dal, NULL, &st) == 0, "%s", st.msg);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *av = f64(2, (double[]){0.5, 4});
    o = pst_test_run(s, dal, 1, (pst_feed[]){{al, av}});
    for (int j = 0; j < 2; j++)
        ck_assert_msg(fabs(pst_tensor_f64(o)[j] - 20000) < 400, "d sum / d alpha[%d] = %g", j,
                      pst_tensor_f64(o)[j]);
    pst_tensor_unref(o);
    pst_tensor_unref(av);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_parameterized_truncated_normal) {
    /* 3 batches: a tail [2, inf), a narrow window around 0, a window below the mean */
    pst_tensor *o =
        draw("ParameterizedTruncatedNormal", 5,
             (pst_tensor *[]){pst_tensor_from_i32(pst_shape_1d(2), (int32_t[]){3, 20000}),
                              f64(3, (double[]){0, 0, 10}), pst_tensor_scalar_f64(1),
                              f64(3, (double[]){2, -0.1, 5}), f64(3, (double[]){INFINITY, 0.3, 8})},
             PST_DOUBLE, 9);
    const double lo[3] = {2, -0.1, 5}, hi[3] = {INFINITY, 0.3, 8};
    for (int bi = 0; bi < 3; bi++)
        for (int64_t j = 0; j < 20000; j++) {
            double v = pst_tensor_f64(o)[bi * 20000 + j];
            ck_assert_msg(v >= lo[bi] && v <= hi[bi], "batch %d: %g outside [%g, %g]", bi, v,
                          lo[bi], hi[bi]);
        }
    /* the tail's mean: phi(2) / (1 - Phi(2)) = 2.3732155 */
    double m = 0;
    for (int64_t j = 0; j < 20000; j++)
        m += pst_tensor_f64(o)[j] / 20000;
    ck_assert_msg(fabs(m - 2.3732155) < 0.02, "tail mean %g", m);
    pst_tensor_unref(o);
    /* minval >= maxval is an error naming the node */
    pst_graph *g = pst_graph_new();
    pst_node_builder *b =
        pst_test_nb_consts(g, "ParameterizedTruncatedNormal", 5,
                           (pst_tensor *[]){pst_tensor_from_i32(pst_shape_1d(1), (int32_t[]){2}),
                                            pst_tensor_scalar_f64(0), pst_tensor_scalar_f64(1),
                                            pst_tensor_scalar_f64(1), pst_tensor_scalar_f64(1)});
    pst_nb_attr_type(b, "dtype", PST_DOUBLE);
    pst_test_run_fails(g, pst_test_finish(g, b), "must be below maxval");
    pst_graph_free(g);
}
END_TEST

START_TEST(test_stateless_random) {
    /* the same seed gives the same values on every run, another seed others */
    const char *ops[] = {"StatelessRandomUniform", "StatelessRandomNormal",
                         "StatelessTruncatedNormal"};
    for (int k = 0; k < 3; k++) {
        pst_tensor *o[3];
        for (int r = 0; r < 3; r++)
            o[r] = draw(ops[k], 2,
                        (pst_tensor *[]){
                            pst_tensor_from_i32(pst_shape_1d(1), (int32_t[]){1000}),
                            pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){r == 2 ? 4 : 3, 9})},
                        PST_FLOAT, 0);
        ck_assert(memcmp(o[0]->data, o[1]->data, o[0]->nbytes) == 0);
        ck_assert(memcmp(o[0]->data, o[2]->data, o[0]->nbytes) != 0);
        double m, v;
        mean_var(o[0], 1, 0, &m, &v);
        double want_m = k == 0 ? 0.5 : 0, want_v = k == 0 ? 1.0 / 12 : k == 1 ? 1 : 0.7737413;
        ck_assert_msg(fabs(m - want_m) < 0.1 && fabs(v - want_v) < 0.15 * want_v,
                      "%s: mean %g var %g", ops[k], m, v);
        for (int64_t i = 0; k == 2 && i < 1000; i++)
            ck_assert(fabs(pst_tensor_f32(o[0])[i]) <= 2);
        for (int r = 0; r < 3; r++)
            pst_tensor_unref(o[r]);
    }
    pst_tensor *u = draw("StatelessRandomUniformInt", 4,
                         (pst_tensor *[]){pst_tensor_from_i32(pst_shape_1d(1), (int32_t[]){500}),
                                          pst_tensor_from_i32(pst_shape_1d(2), (int32_t[]){1, 2}),
                                          pst_tensor_scalar_i32(-3), pst_tensor_scalar_i32(4)},
                         PST_INT32, 0);
    int seen[7] = {0};
    for (int64_t i = 0; i < 500; i++) {
        int32_t v = pst_tensor_i32(u)[i];
        ck_assert(v >= -3 && v < 4);
        seen[v + 3] = 1;
    }
    for (int i = 0; i < 7; i++)
        ck_assert(seen[i]);
    pst_tensor_unref(u);
    /* StatelessMultinomial: a class of logit -inf is never drawn */
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "StatelessMultinomial", NULL);
    pst_nb_input(
        b, pst_test_const(g, pst_tensor_from_f32(pst_shape_2d(1, 3), (float[]){0, -INFINITY, 1}),
                          NULL));
    pst_nb_input(b, pst_const_i32(g, 200, NULL));
    pst_nb_input(b,
                 pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){5, 6}), NULL));
    pst_nb_attr_type(b, "T", PST_FLOAT);
    pst_node *nd = pst_test_finish(g, b);
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    ck_assert_int_eq(o->shape.dims[1], 200);
    for (int64_t i = 0; i < 200; i++)
        ck_assert(pst_tensor_i64(o)[i] != 1);
    pst_tensor_unref(o);
    pst_graph_free(g);
    /* a seed that is not [2] is an error naming the node */
    g = pst_graph_new();
    b = pst_nb_new(g, "StatelessRandomUniform", NULL);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_i32(pst_shape_1d(1), (int32_t[]){4}), NULL));
    pst_nb_input(
        b, pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(3), (int64_t[]){1, 2, 3}), NULL));
    pst_nb_attr_type(b, "dtype", PST_FLOAT);
    pst_test_run_fails(g, pst_test_finish(g, b), "seed must be a vector of 2");
    pst_graph_free(g);
}
END_TEST

/* ---- Detection: non-max suppression, CropAndResize --------------------------------------- */
/* Runs op over Consts (boxes, scores, then scalars) with attrs; returns output `out`. */
static pst_tensor *nms_run(const char *op, int n, pst_tensor *const *in, int pad, int out) {
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_test_nb_consts(g, op, n, in);
    if (strcmp(op, "NonMaxSuppression") == 0)
        pst_nb_attr_f(b, "iou_threshold", 0.5f);
    if (pad)
        pst_nb_attr_b(b, "pad_to_max_output_size", 1);
    pst_node *nd = pst_test_finish(g, b);
    pst_tensor *o = pst_test_run_out(g, nd, out);
    pst_graph_free(g);
    return o;
}

static const float nms_boxes[24] = {0, 0,  1, 1,  0, 0.1f,  1, 1.1f,  0, -0.1f, 1, 0.9f,
                                    0, 10, 1, 11, 0, 10.1f, 1, 11.1f, 0, 100,   1, 101};
static const float nms_scores[6] = {0.9f, 0.75f, 0.6f, 0.95f, 0.5f, 0.3f};

static pst_tensor *fvec(int64_t n, const float *v) {
    return pst_tensor_from_f32(pst_shape_1d(n), v);
}

START_TEST(test_non_max_suppression) {
    /* three clusters: the best of each, by score */
    pst_tensor *o = nms_run("NonMaxSuppression", 3,
                            (pst_tensor *[]){pst_tensor_from_f32(pst_shape_2d(6, 4), nms_boxes),
                                             fvec(6, nms_scores), pst_tensor_scalar_i32(3)},
                            0, 0);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){3}), ((double[]){3, 0, 5}), 0);
    pst_tensor_unref(o);
    o = nms_run("NonMaxSuppressionV2", 4,
                (pst_tensor *[]){pst_tensor_from_f32(pst_shape_2d(6, 4), nms_boxes),
                                 fvec(6, nms_scores), pst_tensor_scalar_i32(2),
                                 pst_tensor_scalar_f32(0.5f)},
                0, 0);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){3, 0}), 0);
    pst_tensor_unref(o);
    /* score_threshold 0.4 drops box 5; V4 pads to 5 with zeros and counts 2 */
    o = nms_run("NonMaxSuppressionV3", 5,
                (pst_tensor *[]){pst_tensor_from_f32(pst_shape_2d(6, 4), nms_boxes),
                                 fvec(6, nms_scores), pst_tensor_scalar_i32(6),
                                 pst_tensor_scalar_f32(0.5f), pst_tensor_scalar_f32(0.4f)},
                0, 0);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){3, 0}), 0);
    pst_tensor_unref(o);
    for (int out = 0; out < 2; out++) {
        o = nms_run("NonMaxSuppressionV4", 5,
                    (pst_tensor *[]){pst_tensor_from_f32(pst_shape_2d(6, 4), nms_boxes),
                                     fvec(6, nms_scores), pst_tensor_scalar_i32(5),
                                     pst_tensor_scalar_f32(0.5f), pst_tensor_scalar_f32(0.4f)},
                    1, out);
        if (out == 0)
            PST_ASSERT_TENSOR(o, 1, ((int64_t[]){5}), ((double[]){3, 0, 0, 0, 0}), 0);
        else
            ck_assert_int_eq(pst_tensor_i32(o)[0], 2);
        pst_tensor_unref(o);
    }
    /* soft NMS: B (IoU 1/3 with A) decays by exp(-(1/9) / (2 * 0.5)) and is kept after C */
    const float sb[12] = {0, 0, 1, 1, 0, 0.5f, 1, 1.5f, 0, 10, 1, 11};
    pst_tensor *sv[2];
    for (int out = 0; out < 2; out++) {
        sv[out] = nms_run("NonMaxSuppressionV5", 6,
                          (pst_tensor *[]){pst_tensor_from_f32(pst_shape_2d(3, 4), sb),
                                           fvec(3, (float[]){0.9f, 0.8f, 0.85f}),
                                           pst_tensor_scalar_i32(3), pst_tensor_scalar_f32(0.5f),
                                           pst_tensor_scalar_f32(0), pst_tensor_scalar_f32(0.5f)},
                          0, out);
    }
    PST_ASSERT_TENSOR(sv[0], 1, ((int64_t[]){3}), ((double[]){0, 2, 1}), 0);
    PST_ASSERT_TENSOR(sv[1], 1, ((int64_t[]){3}), ((double[]){0.9, 0.85, 0.8 * exp(-1.0 / 9)}),
                      1e-6);
    pst_tensor_unref(sv[0]);
    pst_tensor_unref(sv[1]);
    /* precomputed overlaps */
    o = nms_run(
        "NonMaxSuppressionWithOverlaps", 5,
        (pst_tensor *[]){pst_tensor_from_f32(pst_shape_2d(3, 3),
                                             (float[]){1, 0.7f, 0, 0.7f, 1, 0.2f, 0, 0.2f, 1}),
                         fvec(3, (float[]){0.9f, 0.8f, 0.7f}), pst_tensor_scalar_i32(3),
                         pst_tensor_scalar_f32(0.5f), pst_tensor_scalar_f32(0)},
        0, 0);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){0, 2}), 0);
    pst_tensor_unref(o);
    /* an iou_threshold outside [0, 1] names the node */
    pst_graph *g = pst_graph_new();
    pst_node *nd = pst_test_finish(
        g, pst_test_nb_consts(g, "NonMaxSuppressionV2", 4,
                              (pst_tensor *[]){pst_tensor_from_f32(pst_shape_2d(6, 4), nms_boxes),
                                               fvec(6, nms_scores), pst_tensor_scalar_i32(2),
                                               pst_tensor_scalar_f32(1.5f)}));
    pst_test_run_fails(g, nd, "iou_threshold");
    pst_graph_free(g);
}
END_TEST

START_TEST(test_draw_bounding_boxes) {
    /* a 5x5 grey image: box 0 outlines rows/cols 1..3 in 1; box 1 starts above the image (no
     * top edge) and ends right of it (no right edge), in 0.5; box 2 is inverted, not drawn */
    float zeros[25] = {0};
    pst_tensor *boxes = pst_tensor_from_f32(
        pst_shape_make(3, (int64_t[]){1, 3, 4}),
        (float[]){0.25f, 0.25f, 0.75f, 0.75f, -0.5f, 0.5f, 0.5f, 1.5f, 0.75f, 0, 0.25f, 1});
    pst_tensor *colors = pst_tensor_from_f32(pst_shape_2d(3, 4),
                                             (float[]){1, 0, 0, 1, 0.5f, 0, 0, 1, 0.2f, 0, 0, 1});
    pst_graph *g = pst_graph_new();
    pst_node *nd = pst_test_finish(
        g, pst_test_nb_consts(g, "DrawBoundingBoxesV2", 3,
                              (pst_tensor *[]){pst_tensor_from_f32(pst_shape_4d(1, 5, 5, 1), zeros),
                                               boxes, colors}));
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 5, 5, 1}),
                      ((double[]){0,   0,   0.5, 0, 0, 0, 1, 0.5, 1, 0, 0, 1, 0.5,
                                  0.5, 0.5, 0,   1, 1, 1, 0, 0,   0, 0, 0, 0}),
                      0);
    pst_tensor_unref(o);
    /* V1 on RGB: TF's first color, yellow (1, 1, 0) */
    float rgb[27] = {0};
    nd = pst_test_finish(
        g, pst_test_nb_consts(
               g, "DrawBoundingBoxes", 2,
               (pst_tensor *[]){pst_tensor_from_f32(pst_shape_4d(1, 3, 3, 3), rgb),
                                pst_tensor_from_f32(pst_shape_make(3, (int64_t[]){1, 1, 4}),
                                                    (float[]){0, 0, 1, 1})}));
    o = pst_test_run_out(g, nd, 0);
    ck_assert(pst_tensor_f32(o)[0] == 1 && pst_tensor_f32(o)[1] == 1 && pst_tensor_f32(o)[2] == 0);
    ck_assert(pst_tensor_f32(o)[4 * 3] == 0); /* the centre pixel */
    pst_tensor_unref(o);
    /* depth 2 is refused, naming the node */
    nd = pst_test_finish(
        g, pst_test_nb_consts(
               g, "DrawBoundingBoxes", 2,
               (pst_tensor *[]){pst_tensor_from_f32(pst_shape_4d(1, 1, 1, 2), (float[]){0, 0}),
                                pst_tensor_from_f32(pst_shape_make(3, (int64_t[]){1, 1, 4}),
                                                    (float[]){0, 0, 1, 1})}));
    pst_test_run_fails(g, nd, "depth 2");
    pst_graph_free(g);
}
END_TEST

/* CropAndResize of the 1x3x3x1 image 0..8 (row-major). */
static pst_tensor *crop_run(const float *box, int nb, int ch, int cw, const char *method,
                            float extra) {
    pst_graph *g = pst_graph_new();
    float img[9];
    for (int i = 0; i < 9; i++)
        img[i] = (float)i;
    pst_node_builder *b = pst_nb_new(g, "CropAndResize", NULL);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_f32(pst_shape_4d(1, 3, 3, 1), img), NULL));
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_f32(pst_shape_2d(nb, 4), box), NULL));
    pst_nb_input(
        b, pst_test_const(g, pst_tensor_from_i32(pst_shape_1d(nb), (int32_t[]){0, 0, 0, 0}), NULL));
    pst_nb_input(
        b, pst_test_const(g, pst_tensor_from_i32(pst_shape_1d(2), (int32_t[]){ch, cw}), NULL));
    pst_nb_attr_type(b, "T", PST_FLOAT);
    pst_nb_attr_s(b, "method", method);
    pst_nb_attr_f(b, "extrapolation_value", extra);
    pst_node *nd = pst_test_finish(g, b);
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    pst_graph_free(g);
    return o;
}

START_TEST(test_crop_and_resize) {
    pst_tensor *o = crop_run((float[]){0, 0, 1, 1}, 1, 3, 3, "bilinear", 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 3, 3, 1}), ((double[]){0, 1, 2, 3, 4, 5, 6, 7, 8}), 0);
    pst_tensor_unref(o);
    /* the top-left quarter at 2x2, and an empty box at (0.5, 0.5) everywhere */
    o = crop_run((float[]){0, 0, 0.5f, 0.5f, 0.25f, 0.25f, 0.25f, 0.25f}, 2, 2, 2, "bilinear", 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){2, 2, 2, 1}), ((double[]){0, 1, 3, 4, 2, 2, 2, 2}), 1e-6);
    pst_tensor_unref(o);
    /* a 1x1 crop samples the box centre: (0.5, 1.5) between 1, 2, 4, 5 */
    o = crop_run((float[]){0, 0.5f, 0.5f, 1}, 1, 1, 1, "bilinear", 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 1, 1, 1}), ((double[]){3}), 1e-6);
    pst_tensor_unref(o);
    /* a row leaving the image takes extrapolation_value */
    o = crop_run((float[]){0, 0, 1, 2}, 1, 1, 3, "bilinear", 9);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 1, 3, 1}), ((double[]){3, 5, 9}), 1e-6);
    pst_tensor_unref(o);
    /* nearest: positions 0, 0.5, 1 round to 0, 1, 1 */
    o = crop_run((float[]){0, 0, 0.5f, 0.5f}, 1, 3, 3, "nearest", 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 3, 3, 1}), ((double[]){0, 1, 1, 3, 4, 4, 3, 4, 4}), 0);
    pst_tensor_unref(o);
    /* gradients for the image (linear in it) and the boxes (away from pixel edges) */
    for (int wrt = 0; wrt < 2; wrt++) {
        pst_graph *g = pst_graph_new();
        pst_tensor *img = pst_test_rand(PST_FLOAT, pst_shape_4d(2, 4, 5, 2), 11, 0, 4);
        pst_tensor *box = pst_tensor_from_f32(
            pst_shape_2d(2, 4), (float[]){0.1f, 0.15f, 0.8f, 0.9f, 0.93f, 0.7f, 0.2f, 0.05f});
        pst_output ph = pst_placeholder(g, "x", PST_FLOAT, wrt ? box->shape : img->shape);
        pst_node_builder *b = pst_nb_new(g, "CropAndResize", NULL);
        pst_nb_input(b, wrt ? pst_test_const(g, img, NULL) : ph);
        pst_nb_input(b, wrt ? ph : pst_test_const(g, box, NULL));
        pst_nb_input(b, pst_test_const(g, i32(2, (int32_t[]){1, 0}), NULL));
        pst_nb_input(b, pst_test_const(g, i32(2, (int32_t[]){3, 4}), NULL));
        pst_nb_attr_type(b, "T", PST_FLOAT);
        pst_output y = pst_nb_finish_out(b);
        ck_assert_msg(y.node != NULL, "%s", pst_graph_status(g)->msg);
        pst_tensor *v = wrt ? box : img;
        double err = pst_gradcheck(g, y, 1, &ph, &v, wrt ? 1e-3 : 1e-2);
        ck_assert_msg(err < 2e-3, "CropAndResize gradient (%s) error %g", wrt ? "boxes" : "image",
                      err);
        pst_tensor_unref(v);
        pst_graph_free(g);
    }
    /* a box index past the batch names the node */
    pst_graph *g = pst_graph_new();
    pst_node *nd = pst_test_finish(
        g,
        pst_test_nb_consts(
            g, "CropAndResize", 4,
            (pst_tensor *[]){pst_tensor_from_f32(pst_shape_4d(1, 2, 2, 1), (float[]){1, 2, 3, 4}),
                             pst_tensor_from_f32(pst_shape_2d(1, 4), (float[]){0, 0, 1, 1}),
                             i32(1, (int32_t[]){3}), i32(2, (int32_t[]){2, 2})}));
    pst_test_run_fails(g, nd, "box_ind[0] = 3");
    pst_graph_free(g);
}
END_TEST

/* ---- EuclideanNorm, Bitcast ------------------------------------------------------------ */
START_TEST(test_euclidean_norm_bitcast) {
    /* rows of [[3, 4, 0], [1, 2, 2]]: 5 and 3; all: sqrt(34); kept dims */
    pst_tensor *x = pst_tensor_from_f64(pst_shape_2d(2, 3), (double[]){3, 4, 0, 1, 2, 2});
    pst_tensor_ref(x);
    pst_test_check_op("EuclideanNorm", 2, (pst_tensor *[]){x, i32(1, (int32_t[]){1})}, 1,
                      (int64_t[]){2}, (double[]){5, 3});
    pst_test_check_op("EuclideanNorm", 2, (pst_tensor *[]){x, i32(2, (int32_t[]){0, -1})}, 0, NULL,
                      (double[]){sqrt(34)});
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_test_nb_consts(
        g, "EuclideanNorm", 2,
        (pst_tensor *[]){pst_tensor_from_f32(pst_shape_2d(2, 2), (float[]){0, 0, 6, 8}),
                         i32(1, (int32_t[]){1})});
    pst_nb_attr_b(b, "keep_dims", 1);
    pst_tensor *o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 2, ((int64_t[]){2, 1}), ((double[]){0, 10}), 1e-6);
    pst_tensor_unref(o);
    pst_graph_free(g);
    pst_test_grad1("EuclideanNorm", pst_test_rand(PST_DOUBLE, pst_shape_2d(3, 4), 21, 0.5, 2), 1,
                   (pst_tensor *[]){i32(1, (int32_t[]){1})}, NULL, 0);
    pst_test_grad1("EuclideanNorm", pst_test_rand(PST_DOUBLE, pst_shape_2d(3, 4), 22, 0.5, 2), 1,
                   (pst_tensor *[]){i32(2, (int32_t[]){0, 1})}, NULL, 0);
    /* Bitcast: 1.0f is 0x3f800000; int32 -> uint8 adds a dim of 4 (little-endian); back drops it */
    g = pst_graph_new();
    b = pst_test_nb_consts(
        g, "Bitcast", 1, (pst_tensor *[]){pst_tensor_from_f32(pst_shape_1d(2), (float[]){1, -2})});
    pst_nb_attr_type(b, "type", PST_INT32);
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    ck_assert_int_eq(pst_tensor_i32(o)[0], 0x3f800000);
    ck_assert_int_eq((uint32_t)pst_tensor_i32(o)[1], 0xc0000000u);
    pst_tensor_unref(o);
    b = pst_test_nb_consts(g, "Bitcast", 1, (pst_tensor *[]){i32(1, (int32_t[]){0x01020304})});
    pst_nb_attr_type(b, "type", PST_UINT8);
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 2, ((int64_t[]){1, 4}), ((double[]){4, 3, 2, 1}), 0);
    pst_tensor_unref(o);
    b = pst_test_nb_consts(g, "Bitcast", 1, (pst_tensor *[]){i32(3, (int32_t[]){1, 2, 3})});
    pst_nb_attr_type(b, "type", PST_INT64);
    ck_assert(pst_nb_finish(b) == NULL);
    ck_assert_msg(strstr(pst_graph_status(g)->msg, "last dim of 2") != NULL, "%s",
                  pst_graph_status(g)->msg);
    pst_graph_free(g);
}
END_TEST

/* ---- ParallelConcat, CompareAndBitpack, AdjustContrast, CumulativeLogsumexp ------------- */
START_TEST(test_misc_tf_ops) {
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_test_nb_consts(
        g, "ParallelConcat", 3,
        (pst_tensor *[]){pst_tensor_from_f64(pst_shape_2d(1, 2), (double[]){1, 2}),
                         pst_tensor_from_f64(pst_shape_2d(1, 2), (double[]){3, 4}),
                         pst_tensor_from_f64(pst_shape_2d(1, 2), (double[]){5, 6})});
    pst_nb_attr_shape(b, "shape", pst_shape_2d(3, 2));
    pst_tensor *o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 2, ((int64_t[]){3, 2}), ((double[]){1, 2, 3, 4, 5, 6}), 0);
    pst_tensor_unref(o);
    b = pst_test_nb_consts(
        g, "ParallelConcat", 2,
        (pst_tensor *[]){pst_tensor_from_f64(pst_shape_2d(1, 2), (double[]){1, 2}),
                         pst_tensor_from_f64(pst_shape_2d(2, 1), (double[]){3, 4})});
    pst_test_run_fails(g, pst_test_finish(g, b), "first dim of 1");
    /* CompareAndBitpack: most significant bit first */
    b = pst_test_nb_consts(
        g, "CompareAndBitpack", 2,
        (pst_tensor *[]){
            pst_tensor_from_f32(pst_shape_2d(2, 8), (float[]){1, 0, 0, 0, 0, 0, 0, 1, 0.6f, 0.4f, 1,
                                                              1, 0.5f, 0, 0, 0.7f}),
            pst_tensor_scalar_f32(0.5f)});
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    ck_assert_int_eq(o->dtype, PST_UINT8);
    PST_ASSERT_TENSOR(o, 2, ((int64_t[]){2, 1}), ((double[]){0x81, 0xb1}), 0);
    pst_tensor_unref(o);
    /* AdjustContrast: channel means 2 and 20, factor 2, clipped to [0, 30] */
    b = pst_test_nb_consts(
        g, "AdjustContrast", 4,
        (pst_tensor *[]){
            pst_tensor_from_f32(pst_shape_make(3, (int64_t[]){1, 2, 2}), (float[]){1, 10, 3, 30}),
            pst_tensor_scalar_f32(2), pst_tensor_scalar_f32(0), pst_tensor_scalar_f32(30)});
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 3, ((int64_t[]){1, 2, 2}), ((double[]){0, 0, 4, 30}), 1e-6);
    pst_tensor_unref(o);
    pst_graph_free(g);
    /* CumulativeLogsumexp along axis 1, plain, exclusive, reverse */
    const double x[6] = {0, 1, 2, -1, 3, 0.5};
    const char *modes[3] = {NULL, "exclusive", "reverse"};
    for (int k = 0; k < 3; k++) {
        double want[6];
        for (int row = 0; row < 2; row++)
            for (int i = 0; i < 3; i++) {
                double s = 0;
                for (int j = 0; j < 3; j++)
                    if (k == 0 ? j <= i : k == 1 ? j < i : j >= i)
                        s += exp(x[row * 3 + j]);
                want[row * 3 + i] = log(s);
            }
        g = pst_graph_new();
        b = pst_test_nb_consts(g, "CumulativeLogsumexp", 2,
                               (pst_tensor *[]){pst_tensor_from_f64(pst_shape_2d(2, 3), x),
                                                pst_tensor_scalar_i32(-1)});
        if (modes[k])
            pst_nb_attr_b(b, modes[k], 1);
        o = pst_test_run_out(g, pst_test_finish(g, b), 0);
        for (int i = 0; i < 6; i++)
            ck_assert_msg(k == 1 && i % 3 == 0
                              ? isinf(pst_tensor_f64(o)[i]) && pst_tensor_f64(o)[i] < 0
                              : fabs(pst_tensor_f64(o)[i] - want[i]) < 1e-12,
                          "mode %d element %d: %g want %g", k, i, pst_tensor_f64(o)[i], want[i]);
        pst_tensor_unref(o);
        pst_graph_free(g);
    }
    pst_test_grad1("CumulativeLogsumexp", pst_test_rand(PST_DOUBLE, pst_shape_2d(2, 4), 31, -2, 2),
                   1, (pst_tensor *[]){pst_tensor_scalar_i32(1)}, NULL, 0);
    pst_test_grad1("CumulativeLogsumexp", pst_test_rand(PST_DOUBLE, pst_shape_2d(3, 2), 32, -2, 2),
                   1, (pst_tensor *[]){pst_tensor_scalar_i32(0)}, NULL, 0);
}
END_TEST

/* ---- SampleDistortedBoundingBox(V2) --------------------------------------------------------- */
START_TEST(test_sample_distorted_bounding_box) {
    /* a 100 x 200 image, one box [0.1, 0.1, 0.9, 0.9]: 50 draws, each a crop inside the image
     * with an area in [5%, 100%], an aspect ratio near [0.75, 1.33] (whole pixels) and at least
     * half the box, or the whole image */
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_test_nb_consts(
        g, "SampleDistortedBoundingBoxV2", 3,
        (pst_tensor *[]){i32(3, (int32_t[]){100, 200, 3}),
                         pst_tensor_from_f32(pst_shape_make(3, (int64_t[]){1, 1, 4}),
                                             (float[]){0.1f, 0.1f, 0.9f, 0.9f}),
                         pst_tensor_scalar_f32(0.5f)});
    pst_nb_attr_i(b, "seed", 4);
    pst_node *nd = pst_test_finish(g, b);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_output fetch[3] = {pst_out(nd, 0), pst_out(nd, 1), pst_out(nd, 2)};
    int whole = 0;
    for (int k = 0; k < 50; k++) {
        pst_tensor *o[3] = {0};
        ck_assert_msg(pst_session_run(s, NULL, 0, fetch, 3, NULL, 0, o, &st) == 0, "%s", st.msg);
        const int32_t *bg = pst_tensor_i32(o[0]), *sz = pst_tensor_i32(o[1]);
        const float *bx = pst_tensor_f32(o[2]);
        ck_assert(bg[2] == 0 && sz[2] == -1);
        ck_assert(bg[0] >= 0 && bg[1] >= 0 && bg[0] + sz[0] <= 100 && bg[1] + sz[1] <= 200);
        ck_assert(fabs(bx[0] - bg[0] / 100.0) < 1e-6 &&
                  fabs(bx[3] - (bg[1] + sz[1]) / 200.0) < 1e-6);
        if (sz[0] == 100 && sz[1] == 200) {
            whole++;
        } else {
            double area = (double)sz[0] * sz[1] / 20000, ar = (double)sz[1] / sz[0];
            ck_assert_msg(area >= 0.05 && area <= 1 && ar > 0.7 && ar < 1.4, "crop %d x %d", sz[0],
                          sz[1]);
            double ih = fmin(90, bg[0] + sz[0]) - fmax(10, bg[0]),
                   iw = fmin(180, bg[1] + sz[1]) - fmax(20, bg[1]);
            ck_assert_msg(ih > 0 && iw > 0 && ih * iw / (80.0 * 160) >= 0.5,
                          "crop covers too little of the box");
        }
        for (int i = 0; i < 3; i++)
            pst_tensor_unref(o[i]);
    }
    ck_assert_msg(whole < 50, "every draw fell back to the whole image");
    pst_session_free(s);
    pst_graph_free(g);
    /* no boxes: an error unless use_image_if_no_bounding_boxes */
    for (int use = 0; use < 2; use++) {
        g = pst_graph_new();
        b = pst_test_nb_consts(
            g, "SampleDistortedBoundingBox", 2,
            (pst_tensor *[]){i32(3, (int32_t[]){10, 10, 1}),
                             pst_tensor_from_f32(pst_shape_make(3, (int64_t[]){1, 0, 4}), NULL)});
        pst_nb_attr_b(b, "use_image_if_no_bounding_boxes", use);
        nd = pst_test_finish(g, b);
        if (use)
            pst_tensor_unref(pst_test_run_out(g, nd, 1));
        else
            pst_test_run_fails(g, nd, "no bounding boxes");
        pst_graph_free(g);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_tf_misc");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_float_mod_by_zero_is_nan);
    tcase_add_test(tc, test_integer_division_by_zero_fails);
    tcase_add_test(tc, test_integer_division_values);
    tcase_add_test(tc, test_unsorted_segment_sum_grad_negative_ids);
    tcase_add_test(tc, test_pooling_double);
    tcase_add_test(tc, test_tensor_array_v1_v2);
    tcase_add_test(tc, test_temporary_variable_ref_ops);
    tcase_add_test(tc, test_incomplete_gamma_beta);
    tcase_add_test(tc, test_bessel_nextafter);
    tcase_add_test(tc, test_random_gamma_poisson);
    tcase_add_test(tc, test_parameterized_truncated_normal);
    tcase_add_test(tc, test_stateless_random);
    tcase_add_test(tc, test_non_max_suppression);
    tcase_add_test(tc, test_crop_and_resize);
    tcase_add_test(tc, test_draw_bounding_boxes);
    tcase_add_test(tc, test_euclidean_norm_bitcast);
    tcase_add_test(tc, test_misc_tf_ops);
    tcase_add_test(tc, test_sample_distorted_bounding_box);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
