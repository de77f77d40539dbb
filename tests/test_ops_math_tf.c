/* Elementwise ops TF 1.x losses and layers write that pstrain's own models do not use
 * (ops_math.c: SquaredDifference, DivNoNan, TruncateDiv, Atan2, Log1p, Expm1, Softplus,
 * Softsign, Selu, Erf, Round, Rint, Ceil, and the *Grad ops of the activations) and
 * FusedBatchNormV2/V3 with their gradient ops (ops_nn.c): values against libm, gradients by
 * finite differences. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "testutil.h"

static pst_output apply(pst_graph *g, const char *op, int n, const pst_output *in) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_inputs(b, n, in);
    pst_nb_attr_type(b, "T", pst_output_dtype(in[0]));
    pst_output o = pst_nb_finish_out(b);
    ck_assert_msg(o.node != NULL, "%s: %s", op, pst_graph_status(g)->msg);
    return o;
}

static const double xs[6] = {-2.5, -0.5, 0.0, 0.5, 1.5, 3.0};
static const double ys[6] = {1.5, -2.0, 0.0, 4.0, -0.5, 2.0};

static double ref_unary(const char *op, double x) {
    const double s = 1.0507009873554804934193349852946, a = 1.6732632423543772848170429916717;
    if (!strcmp(op, "Log1p")) return log1p(x);
    if (!strcmp(op, "Expm1")) return expm1(x);
    if (!strcmp(op, "Softplus")) return log(1 + exp(x));
    if (!strcmp(op, "Softsign")) return x / (1 + fabs(x));
    if (!strcmp(op, "Selu")) return x > 0 ? s * x : s * a * (exp(x) - 1);
    if (!strcmp(op, "Erf")) return erf(x);
    if (!strcmp(op, "Round") || !strcmp(op, "Rint")) return nearbyint(x);
    if (!strcmp(op, "Sinh")) return sinh(x);
    if (!strcmp(op, "Cosh")) return cosh(x);
    if (!strcmp(op, "Tan")) return tan(x);
    if (!strcmp(op, "Asin")) return asin(x);
    if (!strcmp(op, "Acos")) return acos(x);
    return ceil(x);
}

START_TEST(test_unary_values_and_gradients) {
    const char *ops[] = {"Log1p", "Expm1", "Softplus", "Softsign", "Selu", "Erf", "Sinh", "Cosh",
                         "Tan", "Asin", "Acos", "Round", "Rint", "Ceil"};
    const int n_diff = 11; /* the first 11 have gradients */
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        for (int dt = 0; dt < 2; dt++) {
            pst_graph *g = pst_graph_new();
            pst_dtype t = dt ? PST_DOUBLE : PST_FLOAT;
            pst_output x = pst_placeholder(g, "x", t, pst_shape_1d(6));
            pst_output y = apply(g, ops[k], 1, &x);
            pst_tensor *v = pst_tensor_new(t, pst_shape_1d(6), NULL);
            int unit = !strcmp(ops[k], "Asin") || !strcmp(ops[k], "Acos"); /* domain [-1, 1] */
            for (int i = 0; i < 6; i++)
                pst_tensor_set_f64(v, i, unit ? xs[i] / 3.5 : strcmp(ops[k], "Log1p") ? xs[i] : fabs(xs[i]));
            pst_status st = {0};
            pst_session *s = pst_session_new(g, NULL, &st);
            pst_feed f = {x, v};
            pst_tensor *o = pst_test_run(s, y, 1, &f);
            for (int i = 0; i < 6; i++) {
                double want = ref_unary(ops[k], pst_tensor_get_f64(v, i));
                ck_assert_msg(fabs(pst_tensor_get_f64(o, i) - want) < (dt ? 1e-12 : 1e-5) * (1 + fabs(want)),
                              "%s(%g) = %g, want %g", ops[k], pst_tensor_get_f64(v, i), pst_tensor_get_f64(o, i), want);
            }
            pst_tensor_unref(o);
            pst_session_free(s);
            if (dt && (int)k < n_diff) { /* the differentiable ones, away from Selu's kink at 0 */
                pst_tensor_set_f64(v, 2, 0.25);
                double err = pst_gradcheck(g, y, 1, &x, &v, 1e-6);
                ck_assert_msg(err < 1e-6, "%s: gradient error %g", ops[k], err);
            }
            pst_tensor_unref(v);
            pst_graph_free(g);
        }
    }
}
END_TEST

START_TEST(test_binary_values_and_gradients) {
    const char *ops[] = {"SquaredDifference", "DivNoNan", "Atan2", "TruncateDiv", "Mod"};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        pst_graph *g = pst_graph_new();
        pst_output a = pst_placeholder(g, "a", PST_DOUBLE, pst_shape_2d(2, 3));
        pst_output b = pst_placeholder(g, "b", PST_DOUBLE, pst_shape_2d(2, 3));
        pst_output in[2] = {a, b};
        pst_output y = apply(g, ops[k], 2, in);
        pst_tensor *va = pst_tensor_new(PST_DOUBLE, pst_shape_2d(2, 3), NULL);
        pst_tensor *vb = pst_tensor_new(PST_DOUBLE, pst_shape_2d(2, 3), NULL);
        memcpy(va->data, xs, sizeof xs);
        memcpy(vb->data, ys, sizeof ys);
        pst_status st = {0};
        pst_session *s = pst_session_new(g, NULL, &st);
        pst_feed f[2] = {{a, va}, {b, vb}};
        pst_tensor *o = pst_test_run(s, y, 2, f);
        for (int i = 0; i < 6; i++) {
            double x = xs[i], z = ys[i],
                   want = k == 0   ? (x - z) * (x - z)
                          : k == 1 ? (z == 0 ? 0 : x / z)
                          : k == 2 ? atan2(x, z)
                          : k == 3 ? trunc(x / z)
                                   : fmod(x, z); /* float 0 / 0 and fmod by 0: NaN */
            ck_assert_msg(isnan(want) ? isnan(pst_tensor_f64(o)[i])
                                      : fabs(pst_tensor_f64(o)[i] - want) < 1e-12,
                          "%s element %d: %g want %g", ops[k], i, pst_tensor_f64(o)[i], want);
        }
        pst_tensor_unref(o);
        pst_session_free(s);
        if (k < 3) {
            pst_tensor_f64(vb)[2] = 0.75; /* away from DivNoNan's and Atan2's singular point */
            pst_tensor *v[2] = {va, vb};
            double err = pst_gradcheck(g, y, 2, in, v, 1e-6);
            ck_assert_msg(err < 1e-6, "%s: gradient error %g", ops[k], err);
        }
        pst_tensor_unref(va);
        pst_tensor_unref(vb);
        pst_graph_free(g);
    }
    /* SquaredDifference broadcasts, and its gradient sums back to the smaller operand. */
    pst_graph *g = pst_graph_new();
    pst_output a = pst_placeholder(g, "a", PST_DOUBLE, pst_shape_2d(2, 3));
    pst_output b = pst_placeholder(g, "b", PST_DOUBLE, pst_shape_1d(3));
    pst_output in[2] = {a, b};
    pst_output y = apply(g, "SquaredDifference", 2, in);
    pst_tensor *v[2] = {pst_test_rand(PST_DOUBLE, pst_shape_2d(2, 3), 1, -1, 1),
                        pst_test_rand(PST_DOUBLE, pst_shape_1d(3), 2, -1, 1)};
    double err = pst_gradcheck(g, y, 2, in, v, 1e-6);
    ck_assert_msg(err < 1e-6, "broadcast gradient error %g", err);
    pst_tensor_unref(v[0]);
    pst_tensor_unref(v[1]);
    pst_graph_free(g);
}
END_TEST

/* FusedBatchNormV3 gives V1's values plus an empty sixth output; FusedBatchNormGradV3 with that
 * sixth input gives FusedBatchNormGrad's. */
START_TEST(test_fused_batch_norm_v3) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_4d(2, 2, 2, 3));
    float one[3] = {1, 2, 0.5f}, zero[3] = {0.1f, 0, -0.2f};
    pst_output empty = pst_const_f32_tensor(g, pst_shape_1d(0), NULL, NULL);
    pst_output in[5] = {x, pst_const_f32_tensor(g, pst_shape_1d(3), one, NULL),
                        pst_const_f32_tensor(g, pst_shape_1d(3), zero, NULL), empty, empty};
    pst_node *bn[2];
    const char *names[2] = {"FusedBatchNorm", "FusedBatchNormV3"};
    for (int k = 0; k < 2; k++) {
        pst_node_builder *b = pst_nb_new(g, names[k], NULL);
        pst_nb_inputs(b, 5, in);
        pst_nb_attr_f(b, "epsilon", 1e-3f);
        pst_nb_attr_b(b, "is_training", 1);
        bn[k] = pst_nb_finish(b);
        ck_assert_msg(bn[k] != NULL, "%s", pst_graph_status(g)->msg);
    }
    ck_assert_int_eq(bn[1]->n_outputs, 6);
    pst_output dy = pst_placeholder(g, "dy", PST_FLOAT, pst_shape_4d(2, 2, 2, 3));
    pst_node *gr[2];
    for (int k = 0; k < 2; k++) {
        pst_node_builder *b = pst_nb_new(g, k ? "FusedBatchNormGradV3" : "FusedBatchNormGrad", NULL);
        pst_output gi[6] = {dy, x, in[1], pst_out(bn[k], 3), pst_out(bn[k], 4), pst_out(bn[1], 5)};
        pst_nb_inputs(b, k ? 6 : 5, gi);
        pst_nb_attr_f(b, "epsilon", 1e-3f);
        gr[k] = pst_nb_finish(b);
        ck_assert_msg(gr[k] != NULL, "%s", pst_graph_status(g)->msg);
    }
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *xv = pst_test_rand(PST_FLOAT, pst_shape_4d(2, 2, 2, 3), 4, -1, 1);
    pst_tensor *dv = pst_test_rand(PST_FLOAT, pst_shape_4d(2, 2, 2, 3), 5, -1, 1);
    pst_feed f[2] = {{x, xv}, {dy, dv}};
    pst_output fetch[7] = {pst_out(bn[0], 0), pst_out(bn[1], 0), pst_out(bn[1], 5), pst_out(gr[0], 0),
                           pst_out(gr[1], 0), pst_out(gr[0], 1), pst_out(gr[1], 1)};
    pst_tensor *o[7];
    ck_assert_msg(pst_session_run(s, f, 2, fetch, 7, NULL, 0, o, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(memcmp(o[0]->data, o[1]->data, o[0]->nbytes), 0);
    ck_assert_int_eq(o[2]->n, 0);
    ck_assert_int_eq(memcmp(o[3]->data, o[4]->data, o[3]->nbytes), 0);
    ck_assert_int_eq(memcmp(o[5]->data, o[6]->data, o[5]->nbytes), 0);
    for (int i = 0; i < 7; i++) pst_tensor_unref(o[i]);
    pst_tensor_unref(xv);
    pst_tensor_unref(dv);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* LRN against its formula, its gradient (LRNGrad) by finite differences; BiasAddV1 = BiasAdd. */
START_TEST(test_lrn_and_bias_add_v1) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_4d(1, 1, 2, 4));
    pst_node_builder *b = pst_nb_new(g, "LRN", NULL);
    pst_nb_input(b, x);
    pst_nb_attr_i(b, "depth_radius", 1);
    pst_nb_attr_f(b, "bias", 2);
    pst_nb_attr_f(b, "alpha", 0.5f);
    pst_nb_attr_f(b, "beta", 0.75f);
    pst_output y = pst_nb_finish_out(b);
    ck_assert_msg(y.node != NULL, "%s", pst_graph_status(g)->msg);
    pst_tensor *v = pst_test_rand(PST_DOUBLE, pst_shape_4d(1, 1, 2, 4), 9, -1, 1);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_feed f = {x, v};
    pst_tensor *o = pst_test_run(s, y, 1, &f);
    for (int p = 0; p < 2; p++)
        for (int c = 0; c < 4; c++) {
            double sq = 0;
            for (int k = c - 1; k <= c + 1; k++)
                if (k >= 0 && k < 4) sq += pow(pst_tensor_f64(v)[p * 4 + k], 2);
            double want = pst_tensor_f64(v)[p * 4 + c] * pow(2 + 0.5 * sq, -0.75);
            ck_assert(fabs(pst_tensor_f64(o)[p * 4 + c] - want) < 1e-12);
        }
    pst_tensor_unref(o);
    pst_session_free(s);
    double err = pst_gradcheck(g, y, 1, &x, &v, 1e-6);
    ck_assert_msg(err < 1e-6, "LRN gradient error %g", err);
    pst_tensor_unref(v);
    pst_output bin[2] = {x, pst_const_scalar(g, PST_DOUBLE, 0, NULL)};
    bin[1] = pst_reshape(g, pst_const_f32_tensor(g, pst_shape_1d(4), (const float[]){1, 2, 3, 4}, NULL), 1, (const int64_t[]){4}, NULL);
    bin[1] = pst_cast(g, bin[1], PST_DOUBLE, NULL);
    pst_output ba = apply(g, "BiasAddV1", 2, bin), bb = apply(g, "BiasAdd", 2, bin);
    v = pst_test_rand(PST_DOUBLE, pst_shape_4d(1, 1, 2, 4), 10, -1, 1);
    s = pst_session_new(g, NULL, &st);
    pst_feed f2 = {x, v};
    pst_output fetch[2] = {ba, bb};
    pst_tensor *r[2];
    ck_assert_msg(pst_session_run(s, &f2, 1, fetch, 2, NULL, 0, r, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(memcmp(r[0]->data, r[1]->data, r[0]->nbytes), 0);
    pst_tensor_unref(r[0]);
    pst_tensor_unref(r[1]);
    pst_tensor_unref(v);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* DepthwiseConv2dNative (SAME, stride 2, channel multiplier 2) against the formula, and its
 * two backprop ops by finite differences (the op is linear: float differences are exact up
 * to rounding). */
START_TEST(test_depthwise_conv) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_4d(1, 4, 4, 2));
    pst_output f = pst_placeholder(g, "f", PST_FLOAT, pst_shape_4d(3, 3, 2, 2));
    pst_node_builder *b = pst_nb_new(g, "DepthwiseConv2dNative", NULL);
    pst_nb_input(b, x);
    pst_nb_input(b, f);
    pst_nb_attr_list_i(b, "strides", 4, (const int64_t[]){1, 2, 2, 1});
    pst_nb_attr_s(b, "padding", "SAME");
    pst_output y = pst_nb_finish_out(b);
    ck_assert_msg(y.node != NULL, "%s", pst_graph_status(g)->msg);
    ck_assert_int_eq(pst_output_shape(y).dims[3], 4);
    pst_tensor *xv = pst_test_rand(PST_FLOAT, pst_shape_4d(1, 4, 4, 2), 21, -1, 1);
    pst_tensor *fv = pst_test_rand(PST_FLOAT, pst_shape_4d(3, 3, 2, 2), 22, -1, 1);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_feed fd[2] = {{x, xv}, {f, fv}};
    pst_tensor *o = pst_test_run(s, y, 2, fd);
    ck_assert_int_eq(o->shape.dims[1], 2);
    /* SAME with stride 2 on 4 with a 3-wide window: output 2, padding 0 before, 1 after. */
    for (int oy = 0; oy < 2; oy++)
        for (int ox = 0; ox < 2; ox++)
            for (int c = 0; c < 2; c++)
                for (int m = 0; m < 2; m++) {
                    double want = 0;
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++) {
                            int iy = oy * 2 + i, ix = ox * 2 + j;
                            if (iy < 4 && ix < 4)
                                want += pst_tensor_f32(xv)[(iy * 4 + ix) * 2 + c] *
                                        pst_tensor_f32(fv)[((i * 3 + j) * 2 + c) * 2 + m];
                        }
                    ck_assert(fabs(pst_tensor_f32(o)[((oy * 2 + ox) * 2 + c) * 2 + m] - want) < 1e-5);
                }
    pst_tensor_unref(o);
    pst_session_free(s);
    pst_output xs2[2] = {x, f};
    pst_tensor *vs[2] = {xv, fv};
    double err = pst_gradcheck(g, y, 2, xs2, vs, 1e-2);
    ck_assert_msg(err < 2e-3, "depthwise gradient error %g", err);
    pst_tensor_unref(xv);
    pst_tensor_unref(fv);
    pst_graph_free(g);
}
END_TEST

/* LSTMBlockCell (with peepholes and the cell clip) against the formulas, and its gradient
 * (LSTMBlockCellGrad, MatMul, SplitV, BiasAddGrad) by finite differences, clip off. */
START_TEST(test_lstm_block_cell) {
    for (int peep = 0; peep < 2; peep++) {
        pst_graph *g = pst_graph_new();
        const int64_t B = 2, I = 3, H = 2;
        pst_shape shp[8] = {pst_shape_2d(B, I), pst_shape_2d(B, H), pst_shape_2d(B, H), pst_shape_2d(I + H, 4 * H),
                            pst_shape_1d(H), pst_shape_1d(H), pst_shape_1d(H), pst_shape_1d(4 * H)};
        pst_output in[8];
        pst_tensor *v[8];
        for (int k = 0; k < 8; k++) {
            char nm[32];
            snprintf(nm, sizeof nm, "in%d", k);
            in[k] = pst_placeholder(g, nm, PST_DOUBLE, shp[k]);
            v[k] = pst_test_rand(PST_DOUBLE, shp[k], 40 + (uint64_t)k, -1, 1);
        }
        pst_node_builder *b = pst_nb_new(g, "LSTMBlockCell", NULL);
        pst_nb_inputs(b, 8, in);
        pst_nb_attr_f(b, "forget_bias", 0.5f);
        pst_nb_attr_f(b, "cell_clip", peep ? 0.3f : -1.0f);
        pst_nb_attr_b(b, "use_peephole", peep);
        pst_node *cell = pst_nb_finish(b);
        ck_assert_msg(cell != NULL, "%s", pst_graph_status(g)->msg);
        pst_status st = {0};
        pst_session *s = pst_session_new(g, NULL, &st);
        pst_feed f[8];
        for (int k = 0; k < 8; k++) f[k] = (pst_feed){in[k], v[k]};
        pst_output fo[2] = {pst_out(cell, 1), pst_out(cell, 6)};
        pst_tensor *o[2];
        ck_assert_msg(pst_session_run(s, f, 8, fo, 2, NULL, 0, o, &st) == 0, "%s", st.msg);
        const double *X = pst_tensor_f64(v[0]), *C = pst_tensor_f64(v[1]), *Hp = pst_tensor_f64(v[2]),
                     *W = pst_tensor_f64(v[3]), *P[3] = {pst_tensor_f64(v[4]), pst_tensor_f64(v[5]), pst_tensor_f64(v[6])},
                     *Bv = pst_tensor_f64(v[7]);
        for (int r = 0; r < B; r++)
            for (int j = 0; j < H; j++) {
                double gt[4];
                for (int q = 0; q < 4; q++) {
                    gt[q] = Bv[q * H + j];
                    for (int k = 0; k < I; k++) gt[q] += X[r * I + k] * W[k * 4 * H + q * H + j];
                    for (int k = 0; k < H; k++) gt[q] += Hp[r * H + k] * W[(I + k) * 4 * H + q * H + j];
                }
                double cp = C[r * H + j];
                double i = 1 / (1 + exp(-(gt[0] + (peep ? cp * P[0][j] : 0)))), ci = tanh(gt[1]);
                double fg = 1 / (1 + exp(-(gt[2] + 0.5 + (peep ? cp * P[1][j] : 0))));
                double cs = ci * i + cp * fg;
                if (peep) cs = fmin(0.3, fmax(-0.3, cs));
                double og = 1 / (1 + exp(-(gt[3] + (peep ? cs * P[2][j] : 0))));
                ck_assert(fabs(pst_tensor_f64(o[0])[r * H + j] - cs) < 1e-6);
                ck_assert(fabs(pst_tensor_f64(o[1])[r * H + j] - tanh(cs) * og) < 1e-6);
            }
        pst_tensor_unref(o[0]);
        pst_tensor_unref(o[1]);
        pst_session_free(s);
        if (!peep) { /* the clip is not differentiated, as in TF: check without it */
            double err = pst_gradcheck(g, pst_out(cell, 6), 8, in, v, 1e-6);
            ck_assert_msg(err < 1e-6, "LSTMBlockCell h gradient error %g", err);
            err = pst_gradcheck(g, pst_out(cell, 1), 8, in, v, 1e-6);
            ck_assert_msg(err < 1e-6, "LSTMBlockCell cs gradient error %g", err);
        }
        for (int k = 0; k < 8; k++) pst_tensor_unref(v[k]);
        pst_graph_free(g);
    }
}
END_TEST

/* BlockLSTM over 3 steps with seq_len_max 2: steps 0 and 1 equal two chained LSTMBlockCells,
 * step 2 is zero; BlockLSTMGrad by finite differences (peepholes on, clip off). */
START_TEST(test_block_lstm) {
    pst_graph *g = pst_graph_new();
    const int64_t T = 3, B = 2, I = 2, H = 2;
    pst_shape shp[8] = {pst_shape_make(3, (const int64_t[]){T, B, I}), pst_shape_2d(B, H), pst_shape_2d(B, H),
                        pst_shape_2d(I + H, 4 * H), pst_shape_1d(H), pst_shape_1d(H), pst_shape_1d(H), pst_shape_1d(4 * H)};
    pst_output in[9];
    pst_tensor *v[8];
    pst_tensor *two = pst_tensor_scalar_i64(2); /* seq_len_max */
    in[0] = pst_const(g, two, NULL);
    pst_tensor_unref(two);
    for (int k = 0; k < 8; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "in%d", k);
        in[k + 1] = pst_placeholder(g, nm, PST_DOUBLE, shp[k]);
        v[k] = pst_test_rand(PST_DOUBLE, shp[k], 60 + (uint64_t)k, -1, 1);
    }
    pst_node_builder *b = pst_nb_new(g, "BlockLSTM", NULL);
    pst_nb_inputs(b, 9, in);
    pst_nb_attr_f(b, "cell_clip", -1);
    pst_nb_attr_b(b, "use_peephole", 1);
    pst_node *blk = pst_nb_finish(b);
    ck_assert_msg(blk != NULL, "%s", pst_graph_status(g)->msg);
    /* the same two steps with LSTMBlockCell on slices of x */
    pst_output h = in[3], cs = in[2];
    pst_node *cells[2];
    for (int t = 0; t < 2; t++) {
        int64_t begin[3] = {t, 0, 0}, size[3] = {1, B, I};
        pst_output xt = pst_reshape(g, pst_slice(g, in[1], 3, begin, size, NULL), 2, (const int64_t[]){B, I}, NULL);
        pst_output ci[8] = {xt, cs, h, in[4], in[5], in[6], in[7], in[8]};
        b = pst_nb_new(g, "LSTMBlockCell", NULL);
        pst_nb_inputs(b, 8, ci);
        pst_nb_attr_f(b, "cell_clip", -1);
        pst_nb_attr_b(b, "use_peephole", 1);
        cells[t] = pst_nb_finish(b);
        cs = pst_out(cells[t], 1);
        h = pst_out(cells[t], 6);
    }
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_feed f[8];
    for (int k = 0; k < 8; k++) f[k] = (pst_feed){in[k + 1], v[k]};
    pst_output fo[3] = {pst_out(blk, 6), pst_out(cells[0], 6), pst_out(cells[1], 6)};
    pst_tensor *o[3];
    ck_assert_msg(pst_session_run(s, f, 8, fo, 3, NULL, 0, o, &st) == 0, "%s", st.msg);
    for (int64_t k = 0; k < B * H; k++) {
        ck_assert(fabs(pst_tensor_f64(o[0])[k] - pst_tensor_f64(o[1])[k]) < 1e-12);
        ck_assert(fabs(pst_tensor_f64(o[0])[B * H + k] - pst_tensor_f64(o[2])[k]) < 1e-12);
        ck_assert(pst_tensor_f64(o[0])[2 * B * H + k] == 0);
    }
    for (int k = 0; k < 3; k++) pst_tensor_unref(o[k]);
    pst_session_free(s);
    double err = pst_gradcheck(g, pst_out(blk, 6), 8, in + 1, v, 1e-6);
    ck_assert_msg(err < 1e-6, "BlockLSTM h gradient error %g", err);
    err = pst_gradcheck(g, pst_out(blk, 1), 8, in + 1, v, 1e-6);
    ck_assert_msg(err < 1e-6, "BlockLSTM cs gradient error %g", err);
    for (int k = 0; k < 8; k++) pst_tensor_unref(v[k]);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    pst_ops_init();
    Suite *s = suite_create("ops_math_tf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_unary_values_and_gradients);
    tcase_add_test(tc, test_binary_values_and_gradients);
    tcase_add_test(tc, test_fused_batch_norm_v3);
    tcase_add_test(tc, test_lrn_and_bias_add_v1);
    tcase_add_test(tc, test_depthwise_conv);
    tcase_add_test(tc, test_lstm_block_cell);
    tcase_add_test(tc, test_block_lstm);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
