/* More TF 1.x ops for graphs pstrain has not seen (issue 17): values on small inputs against
 * numbers worked out from TF 1.15's kernel semantics, gradients by finite differences, and
 * error cases (bad shapes, indices, divisors) naming the node. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "gradients.h"
#include "ops.h"
#include "ops_nn.h"
#include "session.h"
#include "testutil.h"

static pst_tensor *f64(int64_t n, const double *v) { return pst_tensor_from_f64(pst_shape_1d(n), v); }
static pst_tensor *i32(int64_t n, const int32_t *v) { return pst_tensor_from_i32(pst_shape_1d(n), v); }

/* ---- Einsum ------------------------------------------------------------------------------ */
/* einsum(eq) of a (and b) as a session computes it (a and b stay the caller's). */
static pst_tensor *einsum_run(const char *eq, pst_tensor *a, pst_tensor *b, pst_status *st) {
    pst_graph *g = pst_graph_new();
    pst_tensor_ref(a);
    if (b) pst_tensor_ref(b);
    pst_output in[2] = {pst_test_const(g, a, "a"), b ? pst_test_const(g, b, "b") : (pst_output){0}};
    pst_output y = pst_einsum(g, eq, b ? 2 : 1, in, "e");
    pst_tensor *out = NULL;
    if (!y.node) {
        pst_status_set(st, pst_graph_status(g)->code, "%s", pst_graph_status(g)->msg);
    } else {
        pst_session *s = pst_session_new(g, NULL, st);
        if (s && pst_session_run(s, NULL, 0, &y, 1, NULL, 0, &out, st) < 0) out = NULL;
        pst_session_free(s);
    }
    pst_graph_free(g);
    return out;
}

static void einsum_check(const char *eq, pst_tensor *a, pst_tensor *b, int rank,
                         const int64_t *dims, const double *want) {
    pst_status st = {0};
    pst_tensor *y = einsum_run(eq, a, b, &st);
    ck_assert_msg(y != NULL, "%s: %s", eq, st.msg);
    PST_ASSERT_TENSOR(y, rank, dims, want, 1e-12);
    pst_tensor_unref(y);
}

static pst_tensor *seq(pst_shape s, double start) {
    pst_tensor *t = pst_tensor_new(PST_DOUBLE, s, NULL);
    for (int64_t i = 0; i < t->n; i++) pst_tensor_f64(t)[i] = start + (double)i;
    return t;
}

START_TEST(test_einsum) {
    /* A = [[1,2,3],[4,5,6]], B = [[1,2],[3,4],[5,6]] */
    pst_tensor *A = seq(pst_shape_2d(2, 3), 1), *B = seq(pst_shape_2d(3, 2), 1);
    einsum_check("ij,jk->ik", A, B, 2, (int64_t[]){2, 2}, (double[]){22, 28, 49, 64});
    einsum_check("ij,jk", A, B, 2, (int64_t[]){2, 2}, (double[]){22, 28, 49, 64}); /* implicit */
    einsum_check("ij,jk->ki", A, B, 2, (int64_t[]){2, 2}, (double[]){22, 49, 28, 64});
    einsum_check("ij->ji", A, NULL, 2, (int64_t[]){3, 2}, (double[]){1, 4, 2, 5, 3, 6});
    einsum_check("ij->i", A, NULL, 1, (int64_t[]){2}, (double[]){6, 15});
    einsum_check("ij->", A, NULL, 0, NULL, (double[]){21});
    einsum_check("ij,kj->ik", A, A, 2, (int64_t[]){2, 2}, (double[]){14, 32, 32, 77});
    einsum_check("ij,ij->ij", A, A, 2, (int64_t[]){2, 3}, (double[]){1, 4, 9, 16, 25, 36});
    einsum_check("ij,jk->", A, B, 0, NULL, (double[]){22 + 28 + 49 + 64});
    /* a letter summed in its own operand first: sum_j A[i,j] * sum_k B[l,k] */
    einsum_check("ij,lk->il", A, B, 2, (int64_t[]){2, 3}, (double[]){18, 42, 66, 45, 105, 165});
    pst_tensor *v = seq(pst_shape_1d(3), 1), *w = seq(pst_shape_1d(2), 4);
    einsum_check("i,j->ij", v, w, 2, (int64_t[]){3, 2}, (double[]){4, 5, 8, 10, 12, 15});
    einsum_check("i,i->", v, v, 0, NULL, (double[]){14});
    /* diagonal and trace of M = [[1,2,3],[4,5,6],[7,8,9]] */
    pst_tensor *M = seq(pst_shape_2d(3, 3), 1);
    einsum_check("ii->i", M, NULL, 1, (int64_t[]){3}, (double[]){1, 5, 9});
    einsum_check("ii", M, NULL, 0, NULL, (double[]){15});
    /* batches: "..." and a batch letter; a batch of 1 broadcast against 2 */
    pst_tensor *X = seq(pst_shape_make(3, (int64_t[]){2, 2, 3}), 1); /* X[0] = A, X[1] = A + 6 */
    einsum_check("bij,jk->bik", X, B, 3, (int64_t[]){2, 2, 2},
                 (double[]){22, 28, 49, 64, 76, 100, 103, 136});
    einsum_check("...ij,jk->...ik", X, B, 3, (int64_t[]){2, 2, 2},
                 (double[]){22, 28, 49, 64, 76, 100, 103, 136});
    pst_tensor *A1 = seq(pst_shape_make(3, (int64_t[]){1, 2, 3}), 1);
    pst_tensor *B2 = pst_tensor_new(PST_DOUBLE, pst_shape_make(3, (int64_t[]){2, 3, 2}), NULL);
    for (int i = 0; i < 12; i++) pst_tensor_f64(B2)[i] = pst_tensor_f64(B)[i % 6] * (i < 6 ? 1 : 2);
    einsum_check("...ij,...jk->...ik", A1, B2, 3, (int64_t[]){2, 2, 2},
                 (double[]){22, 28, 49, 64, 44, 56, 98, 128});
    /* float computes alike */
    pst_tensor *Af = pst_tensor_new(PST_FLOAT, pst_shape_2d(2, 3), NULL);
    for (int i = 0; i < 6; i++) pst_tensor_f32(Af)[i] = (float)(i + 1);
    einsum_check("ij->j", Af, NULL, 1, (int64_t[]){3}, (double[]){5, 7, 9});

    /* errors name the equation's fault */
    const struct { const char *eq, *want; } bad[] = {
        {"ijk,jk->ik", "names 3 dims of an operand of rank 2"},
        {"ij,jk->iz", "output dim 'z' is in no operand"},
        {"ij,jk->ii", "output dim 'i' is repeated"},
        {"ij,kj->ik", "dim 'j' is 3 in one place and 2 in another"},
        {"i1,jk->ik", "'1' in 'i1' is not a letter"},
        {"ij->..i", "a malformed '...'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pst_status st = {0};
        pst_tensor *y = einsum_run(bad[i].eq, A, strchr(bad[i].eq, ',') ? B : NULL, &st);
        ck_assert_msg(y == NULL, "%s was computed", bad[i].eq);
        ck_assert_msg(strstr(st.msg, bad[i].want) && strstr(st.msg, "Einsum"), "%s: '%s'",
                      bad[i].eq, st.msg);
    }
    pst_graph *g = pst_graph_new(); /* three operands */
    for (int i = 0; i < 3; i++) pst_tensor_ref(A);
    pst_output three[3] = {pst_test_const(g, A, NULL), pst_test_const(g, A, NULL),
                           pst_test_const(g, A, NULL)};
    ck_assert(pst_einsum(g, "ij,ij,ij->ij", 3, three, NULL).node == NULL);
    ck_assert(strstr(pst_graph_status(g)->msg, "Einsum of 3 operands") != NULL);
    pst_graph_free(g);
    pst_tensor *drop[] = {A, B, v, w, M, X, A1, B2, Af};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) pst_tensor_unref(drop[i]);
}
END_TEST

/* Gradients by finite differences; an equation without one is an error naming it. */
START_TEST(test_einsum_grad) {
    const struct { const char *eq; int n; pst_shape s0, s1; } cases[] = {
        {"ij,jk->ik", 2, pst_shape_2d(2, 3), pst_shape_2d(3, 4)},
        {"bij,bkj->bik", 2, pst_shape_make(3, (int64_t[]){2, 2, 3}),
         pst_shape_make(3, (int64_t[]){2, 4, 3})},
        {"...ij,...jk->...ik", 2, pst_shape_make(3, (int64_t[]){2, 2, 3}),
         pst_shape_make(3, (int64_t[]){2, 3, 2})},
        {"i,j->ij", 2, pst_shape_1d(3), pst_shape_1d(2)},
        {"ij,ij->", 2, pst_shape_2d(2, 3), pst_shape_2d(2, 3)},
        {"ijk->kij", 1, pst_shape_make(3, (int64_t[]){2, 3, 2}), pst_shape_scalar()},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        pst_graph *g = pst_graph_new();
        pst_tensor *vals[2] = {pst_test_rand(PST_DOUBLE, cases[c].s0, 10 + c, -1, 1),
                               pst_test_rand(PST_DOUBLE, cases[c].s1, 20 + c, -1, 1)};
        pst_output ph[2] = {pst_placeholder(g, "x0", PST_DOUBLE, cases[c].s0),
                            pst_placeholder(g, "x1", PST_DOUBLE, cases[c].s1)};
        pst_output y = pst_einsum(g, cases[c].eq, cases[c].n, ph, NULL);
        ck_assert_msg(y.node != NULL, "%s", pst_graph_status(g)->msg);
        double err = pst_gradcheck(g, y, cases[c].n, ph, vals, 1e-6);
        ck_assert_msg(err < 1e-6, "%s: gradient error %g", cases[c].eq, err);
        pst_tensor_unref(vals[0]);
        pst_tensor_unref(vals[1]);
        pst_graph_free(g);
    }
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(2, 3));
    pst_output y = pst_einsum(g, "ij->i", 1, &x, "rowsum");
    pst_output dx;
    pst_status st = {0};
    ck_assert(pst_gradients(g, 1, &y, NULL, 1, &x, &dx, NULL, &st) != 0);
    ck_assert_msg(strstr(st.msg, "Einsum 'ij->i'") && strstr(st.msg, "no gradient"), "%s", st.msg);
    pst_graph_free(g);
}
END_TEST

/* ---- Math ------------------------------------------------------------------------------ */
START_TEST(test_xdivy_xlogy_mulnonan) {
    const double x[4] = {0, 2, 0, -3}, y[4] = {0, 4, INFINITY, 0.5};
    const int64_t d4[1] = {4};
    pst_tensor *in[2] = {f64(4, x), f64(4, y)};
    pst_tensor_ref(in[0]); /* used twice; each Const takes a reference */
    pst_tensor_ref(in[1]);
    pst_test_check_op("Xdivy", 2, in, 1, d4, (double[]){0, 0.5, 0, -6});
    pst_test_check_op("Xlogy", 2, in, 1, d4, (double[]){0, 2 * log(4), 0, -3 * log(0.5)});
    /* MulNoNan: 0 wherever y is 0, even for an infinite x. */
    pst_tensor *m[2] = {f64(4, (double[]){INFINITY, 2, NAN, -3}), f64(4, (double[]){0, 4, 0, 0.5})};
    pst_test_check_op("MulNoNan", 2, m, 1, d4, (double[]){0, 8, 0, -1.5});
    /* Gradients, broadcasting y over x's rows. */
    pst_tensor *gx[2] = {pst_test_rand(PST_DOUBLE, pst_shape_2d(2, 3), 1, 0.5, 2),
                         pst_test_rand(PST_DOUBLE, pst_shape_1d(3), 2, 0.5, 2)};
    pst_test_grad_op("Xdivy", 2, gx, NULL, 0);
    pst_test_grad_op("Xlogy", 2, gx, NULL, 0);
    pst_test_grad_op("MulNoNan", 2, gx, NULL, 0);
    for (int i = 0; i < 2; i++) pst_tensor_unref(gx[i]);
    /* Integer inputs are refused when the node is built. */
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_test_nb_consts(
        g, "Xdivy", 2, (pst_tensor *[]){pst_tensor_scalar_i32(1), pst_tensor_scalar_i32(2)});
    ck_assert(pst_nb_finish(b) == NULL);
    ck_assert(strstr(pst_graph_status(g)->msg, "Xdivy") != NULL);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_truncate_mod) {
    const int64_t d4[1] = {4};
    pst_test_check_op("TruncateMod", 2,
                      (pst_tensor *[]){f64(4, (double[]){-7.5, 7.5, 7.5, -7.5}),
                                       f64(4, (double[]){2, -2, 2, -2})},
                      1, d4, (double[]){-1.5, 1.5, 1.5, -1.5});
    pst_test_check_op("TruncateMod", 2,
                      (pst_tensor *[]){i32(4, (int32_t[]){-7, 7, INT32_MIN, 9}),
                                       i32(4, (int32_t[]){3, -3, -1, 4})},
                      1, d4, (double[]){-1, 1, 0, 1});
    /* A zero integer divisor is an error naming the node. */
    pst_graph *g = pst_graph_new();
    pst_node *nd = pst_test_finish(
        g,
        pst_test_nb_consts(g, "TruncateMod", 2,
                           (pst_tensor *[]){i32(2, (int32_t[]){5, 6}), i32(2, (int32_t[]){2, 0})}));
    pst_test_run_fails(g, nd, "division by zero");
    pst_graph_free(g);
}
END_TEST

START_TEST(test_erfc_and_inverse_hyperbolic) {
    const char *ops[] = {"Erfc", "Acosh", "Asinh", "Atanh"};
    const double xs[4][3] = {{-1, 0.25, 2}, {1.5, 2, 10}, {-2, 0.25, 3}, {-0.5, 0.25, 0.9}};
    for (int k = 0; k < 4; k++) {
        double want[3];
        for (int i = 0; i < 3; i++) {
            double x = xs[k][i];
            want[i] = k == 0 ? erfc(x) : k == 1 ? log(x + sqrt(x * x - 1))
                    : k == 2 ? log(x + sqrt(x * x + 1)) : 0.5 * log((1 + x) / (1 - x));
        }
        const int64_t d3[1] = {3};
        pst_test_check_op(ops[k], 1, (pst_tensor *[]){f64(3, xs[k])}, 1, d3, want);
        pst_tensor *f = pst_tensor_new(PST_FLOAT, pst_shape_1d(3), NULL);
        for (int i = 0; i < 3; i++) pst_tensor_f32(f)[i] = (float)xs[k][i];
        pst_test_check_op(ops[k], 1, (pst_tensor *[]){f}, 1, d3, want);
        pst_tensor *v = f64(3, xs[k]);
        pst_test_grad_op(ops[k], 1, &v, NULL, 0);
        pst_tensor_unref(v);
    }
}
END_TEST

START_TEST(test_bitwise) {
    const int64_t d4[1] = {4};
    /* TF's documented example, then shift counts clamped to [0, bits - 1]. */
    pst_test_check_op(
        "LeftShift", 2,
        (pst_tensor *[]){i32(4, (int32_t[]){-1, -5, -3, -14}), i32(4, (int32_t[]){5, 0, 7, 11})}, 1,
        d4, (double[]){-32, -5, -384, -28672});
    pst_test_check_op(
        "LeftShift", 2,
        (pst_tensor *[]){i32(4, (int32_t[]){-2, 1, 3, 1}), i32(4, (int32_t[]){-1, 31, 40, 30})}, 1,
        d4, (double[]){-2, INT32_MIN, (double)(int32_t)(3u << 31), 1 << 30});
    pst_test_check_op("RightShift", 2,
                      (pst_tensor *[]){i32(4, (int32_t[]){-16, -1, 256, 100}),
                                       i32(4, (int32_t[]){2, 40, 40, -3})},
                      1, d4, (double[]){-4, -1, 0, 100});
    uint8_t u[4] = {200, 5, 255, 1}, us[4] = {7, 1, 9, 3};
    pst_tensor *a = pst_tensor_new_copy(PST_UINT8, pst_shape_1d(4), u, NULL);
    pst_tensor *s = pst_tensor_new_copy(PST_UINT8, pst_shape_1d(4), us, NULL);
    pst_tensor_ref(a);
    pst_tensor_ref(s);
    pst_test_check_op("LeftShift", 2, (pst_tensor *[]){a, s}, 1, d4, (double[]){0, 10, 128, 8});
    pst_tensor_ref(a);
    pst_test_check_op("RightShift", 2, (pst_tensor *[]){a, s}, 1, d4, (double[]){1, 2, 1, 0});
    pst_tensor_ref(a);
    pst_test_check_op("Invert", 1, &a, 1, d4, (double[]){55, 250, 0, 254});
    pst_test_check_op("PopulationCount", 1, &a, 1, d4, (double[]){3, 2, 8, 1});
    pst_test_check_op("Invert", 1, (pst_tensor *[]){i32(4, (int32_t[]){5, -1, 0, INT32_MIN})}, 1,
                      d4, (double[]){-6, 0, -1, INT32_MAX});
    pst_test_check_op("PopulationCount", 1,
                      (pst_tensor *[]){i32(4, (int32_t[]){-1, 7, 0, INT32_MIN})}, 1, d4,
                      (double[]){32, 3, 0, 1});
    pst_test_check_op(
        "PopulationCount", 1,
        (pst_tensor *[]){pst_tensor_from_i64(pst_shape_1d(4), (int64_t[]){-1, 7, 0, INT64_MIN})}, 1,
        d4, (double[]){64, 3, 0, 1});
    pst_test_check_op(
        "BitwiseAnd", 2,
        (pst_tensor *[]){i32(4, (int32_t[]){12, -1, 5, 0}), i32(4, (int32_t[]){10, 7, 2, 9})}, 1,
        d4, (double[]){8, 7, 0, 0});
    pst_test_check_op(
        "BitwiseOr", 2,
        (pst_tensor *[]){i32(4, (int32_t[]){12, -1, 5, 0}), i32(4, (int32_t[]){10, 7, 2, 9})}, 1,
        d4, (double[]){14, -1, 7, 9});
    pst_test_check_op(
        "BitwiseXor", 2,
        (pst_tensor *[]){i32(4, (int32_t[]){12, -1, 5, 0}), i32(4, (int32_t[]){10, 7, 2, 9})}, 1,
        d4, (double[]){6, -8, 7, 9});
    /* PopulationCount gives uint8; float inputs are refused at build. */
    pst_graph *g = pst_graph_new();
    pst_node *nd = pst_test_finish(
        g, pst_test_nb_consts(g, "PopulationCount", 1, (pst_tensor *[]){pst_tensor_scalar_i64(3)}));
    ck_assert_int_eq(nd->out_dtypes[0], PST_UINT8);
    ck_assert(pst_nb_finish(pst_test_nb_consts(
                  g, "Invert", 1, (pst_tensor *[]){pst_tensor_scalar_f32(1)})) == NULL);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_approximate_equal) {
    const int64_t d3[1] = {3};
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_test_nb_consts(
        g, "ApproximateEqual", 2,
        (pst_tensor *[]){pst_tensor_from_f32(pst_shape_1d(3), (float[]){1, 2, 3}),
                         pst_tensor_from_f32(pst_shape_1d(3), (float[]){1.000001f, 2.1f, 3})});
    pst_node *nd = pst_test_finish(g, b);
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 1, d3, ((double[]){1, 0, 1}), 0);
    pst_tensor_unref(o);
    b = pst_test_nb_consts(
        g, "ApproximateEqual", 2,
        (pst_tensor *[]){f64(3, (double[]){1, 2, 3}), f64(3, (double[]){1.4, 2.6, 3})});
    pst_nb_attr_f(b, "tolerance", 0.5f);
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 1, d3, ((double[]){1, 0, 1}), 0);
    pst_tensor_unref(o);
    /* No broadcasting: other shapes are an error when built. */
    b = pst_test_nb_consts(g, "ApproximateEqual", 2,
                           (pst_tensor *[]){f64(3, (double[]){1, 2, 3}), pst_tensor_scalar_f64(1)});
    ck_assert(pst_nb_finish(b) == NULL);
    ck_assert(strstr(pst_graph_status(g)->msg, "same shape") != NULL);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_cumprod) {
    const int64_t d4[1] = {4};
    const double x[4] = {1, 2, 3, 4};
    const double want[4][4] = {{1, 2, 6, 24}, {1, 1, 2, 6}, {24, 24, 12, 4}, {24, 12, 4, 1}};
    for (int mode = 0; mode < 4; mode++) {
        pst_graph *g = pst_graph_new();
        pst_node_builder *b = pst_test_nb_consts(
            g, "Cumprod", 2, (pst_tensor *[]){f64(4, x), pst_tensor_scalar_i32(0)});
        pst_nb_attr_b(b, "exclusive", mode & 1);
        pst_nb_attr_b(b, "reverse", mode >> 1);
        pst_tensor *o = pst_test_run_out(g, pst_test_finish(g, b), 0);
        PST_ASSERT_TENSOR(o, 1, d4, want[mode], 1e-12);
        pst_tensor_unref(o);
        /* Gradient along axis 1 of a 2x3 (axis from a Const, which the gradient reuses). */
        pst_output ph = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(2, 3));
        b = pst_nb_new(g, "Cumprod", NULL);
        pst_nb_input(b, ph);
        pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i32(-1), NULL));
        pst_nb_attr_type(b, "T", PST_DOUBLE);
        pst_nb_attr_b(b, "exclusive", mode & 1);
        pst_nb_attr_b(b, "reverse", mode >> 1);
        pst_output y = pst_nb_finish_out(b);
        pst_tensor *v = pst_test_rand(PST_DOUBLE, pst_shape_2d(2, 3), 3, 0.5, 2);
        double err = pst_gradcheck(g, y, 1, &ph, &v, 1e-6);
        ck_assert_msg(err < 1e-6, "Cumprod mode %d: gradient error %g", mode, err);
        pst_tensor_unref(v);
        pst_graph_free(g);
    }
}
END_TEST


/* ---- Max pooling forms ----------------------------------------------------------------- */

/* Image 0 of the pooling tests (4x4, one channel) and image 1 = -image 0. */
static const double img0[16] = {1, 3, 2, 0, 4, 3, 4, 1, 0, 2, 5, 5, 1, 6, 5, 2};

static pst_tensor *pool_input(int batch) {
    pst_tensor *t = pst_tensor_new(PST_DOUBLE, pst_shape_4d(batch, 4, 4, 1), NULL);
    for (int i = 0; i < 16 * batch; i++) pst_tensor_f64(t)[i] = i < 16 ? img0[i] : -img0[i - 16];
    return t;
}

static void window_attrs(pst_node_builder *b, int k, int s, const char *pad) {
    pst_nb_attr_list_i(b, "ksize", 4, (int64_t[]){1, k, k, 1});
    pst_nb_attr_list_i(b, "strides", 4, (int64_t[]){1, s, s, 1});
    pst_nb_attr_s(b, "padding", pad);
}

static pst_tensor *vec4_i32(int a, int b, int c, int d) { return i32(4, (int32_t[]){a, b, c, d}); }

START_TEST(test_max_pool_with_argmax) {
    const int64_t pd[4] = {2, 2, 2, 1};
    for (int with_b = 0; with_b < 2; with_b++) {
        pst_graph *g = pst_graph_new();
        pst_node_builder *b =
            pst_test_nb_consts(g, "MaxPoolWithArgmax", 1, (pst_tensor *[]){pool_input(2)});
        window_attrs(b, 2, 2, "VALID");
        pst_nb_attr_b(b, "include_batch_in_index", with_b);
        pst_node *nd = pst_test_finish(g, b);
        ck_assert_int_eq(nd->out_dtypes[1], PST_INT64);
        pst_tensor *o = pst_test_run_out(g, nd, 0), *a = pst_test_run_out(g, nd, 1);
        PST_ASSERT_TENSOR(o, 4, pd, ((double[]){4, 4, 6, 5, -1, 0, 0, -2}), 0);
        /* ((b * 4 + y) * 4 + x) * 1 + c, b only with include_batch_in_index; first max wins */
        int k = with_b ? 16 : 0;
        PST_ASSERT_TENSOR(a, 4, pd, ((double[]){4, 6, 13, 10, k + 0, k + 3, k + 8, k + 15}), 0);
        pst_tensor_unref(o);
        /* MaxPoolGradWithArgmax scatters a pooled gradient to the maxima; the GradGrad form
         * gathers an input-shaped one from them. */
        pst_tensor *dy = f64(8, (double[]){1, 2, 3, 4, 5, 6, 7, 8});
        pst_tensor *dy4 = pst_tensor_reshape_view(dy, pst_shape_4d(2, 2, 2, 1), NULL);
        pst_tensor_unref(dy);
        pst_tensor_ref(a);
        b = pst_test_nb_consts(g, "MaxPoolGradWithArgmax", 3,
                               (pst_tensor *[]){pool_input(2), dy4, a});
        window_attrs(b, 2, 2, "VALID");
        pst_nb_attr_b(b, "include_batch_in_index", with_b);
        o = pst_test_run_out(g, pst_test_finish(g, b), 0);
        double want[32] = {0};
        want[4] = 1, want[6] = 2, want[13] = 3, want[10] = 4;
        want[16] = 5, want[19] = 6, want[24] = 7, want[31] = 8;
        PST_ASSERT_TENSOR(o, 4, ((int64_t[]){2, 4, 4, 1}), want, 0);
        pst_tensor_unref(o);
        pst_tensor *gi = pst_tensor_new(PST_DOUBLE, pst_shape_4d(2, 4, 4, 1), NULL);
        for (int i = 0; i < 32; i++) pst_tensor_f64(gi)[i] = i;
        b = pst_test_nb_consts(g, "MaxPoolGradGradWithArgmax", 3,
                               (pst_tensor *[]){pool_input(2), gi, a});
        window_attrs(b, 2, 2, "VALID");
        pst_nb_attr_b(b, "include_batch_in_index", with_b);
        o = pst_test_run_out(g, pst_test_finish(g, b), 0);
        PST_ASSERT_TENSOR(o, 4, pd, ((double[]){4, 6, 13, 10, 16, 19, 24, 31}), 0);
        pst_tensor_unref(o);
        pst_graph_free(g);
    }
    /* An argmax outside its image is an error naming the node, not a write out of bounds. */
    for (int with_b = 0; with_b < 2; with_b++) {
        pst_graph *g = pst_graph_new();
        pst_tensor *am = pst_tensor_from_i64(pst_shape_4d(2, 2, 2, 1), (int64_t[]){4, 6, 13, 10, 0, 3, 8, 16});
        if (with_b) pst_tensor_i64(am)[0] = 20; /* image 1's element for image 0 */
        pst_tensor *dy = pst_tensor_new_zeros(PST_DOUBLE, pst_shape_4d(2, 2, 2, 1), NULL);
        pst_node_builder *b = pst_test_nb_consts(g, "MaxPoolGradWithArgmax", 3,
                                                 (pst_tensor *[]){pool_input(2), dy, am});
        window_attrs(b, 2, 2, "VALID");
        pst_nb_attr_b(b, "include_batch_in_index", with_b);
        pst_test_run_fails(g, pst_test_finish(g, b), "outside image");
        pst_graph_free(g);
    }
    /* Gradients: MaxPoolWithArgmax's input, MaxPoolGradWithArgmax's gradient input. */
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_4d(2, 4, 4, 2));
    pst_node_builder *b = pst_nb_new(g, "MaxPoolWithArgmax", NULL);
    pst_nb_input(b, x);
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    window_attrs(b, 3, 2, "SAME");
    pst_node *mp = pst_test_finish(g, b);
    pst_tensor *v = pst_test_rand(PST_DOUBLE, pst_shape_4d(2, 4, 4, 2), 7, -1, 1);
    double err = pst_gradcheck(g, pst_out(mp, 0), 1, &x, &v, 1e-6);
    ck_assert_msg(err < 1e-6, "MaxPoolWithArgmax gradient error %g", err);
    pst_output dyp = pst_placeholder(g, "dy", PST_DOUBLE, pst_shape_4d(2, 2, 2, 2));
    b = pst_nb_new(g, "MaxPoolGradWithArgmax", NULL);
    pst_nb_input(b, x);
    pst_nb_input(b, dyp);
    pst_nb_input(b, pst_out(mp, 1));
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    window_attrs(b, 3, 2, "SAME");
    pst_output gw = pst_nb_finish_out(b);
    pst_tensor *dv = pst_test_rand(PST_DOUBLE, pst_shape_4d(2, 2, 2, 2), 8, -1, 1);
    pst_output ins[2] = {x, dyp};
    pst_tensor *vals[2] = {v, dv};
    err = pst_gradcheck(g, gw, 2, ins, vals, 1e-6);
    ck_assert_msg(err < 1e-6, "MaxPoolGradWithArgmax gradient error %g", err);
    pst_tensor_unref(v);
    pst_tensor_unref(dv);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_max_pool_v2_and_grad_grad) {
    const int64_t pd[4] = {1, 2, 2, 1}, xd[4] = {1, 4, 4, 1};
    pst_graph *g = pst_graph_new();
    /* MaxPoolV2 with ksize 3, stride 2, SAME: windows rows/cols {0..2}, {2, 3} */
    pst_node_builder *b = pst_test_nb_consts(
        g, "MaxPoolV2", 3,
        (pst_tensor *[]){pool_input(1), vec4_i32(1, 3, 3, 1), vec4_i32(1, 2, 2, 1)});
    pst_nb_attr_s(b, "padding", "SAME");
    pst_node *nd = pst_test_finish(g, b);
    ck_assert_int_eq(nd->out_shapes[0].dims[1], 2);
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 4, pd, ((double[]){5, 5, 6, 5}), 0);
    /* MaxPoolGradV2: window (0,0), (0,1) and (1,1) share their maximum (x[10]). */
    pst_tensor *dy = pst_tensor_from_f64(pst_shape_4d(1, 2, 2, 1), (double[]){1, 2, 3, 4});
    b = pst_test_nb_consts(
        g, "MaxPoolGradV2", 5,
        (pst_tensor *[]){pool_input(1), o, dy, vec4_i32(1, 3, 3, 1), vec4_i32(1, 2, 2, 1)});
    pst_nb_attr_s(b, "padding", "SAME");
    pst_tensor *gx = pst_test_run_out(g, pst_test_finish(g, b), 0);
    double want[16] = {0};
    want[10] = 7, want[13] = 3;
    PST_ASSERT_TENSOR(gx, 4, xd, want, 0);
    pst_tensor_unref(gx);
    /* MaxPoolGradGradV2 reads an input-shaped gradient at the maxima. */
    pst_tensor *gi = pst_tensor_new(PST_DOUBLE, pst_shape_4d(1, 4, 4, 1), NULL);
    for (int i = 0; i < 16; i++) pst_tensor_f64(gi)[i] = i;
    b = pst_test_nb_consts(g, "MaxPoolGradGradV2", 5,
                           (pst_tensor *[]){pool_input(1), pst_test_run_out(g, nd, 0), gi,
                                            vec4_i32(1, 3, 3, 1), vec4_i32(1, 2, 2, 1)});
    pst_nb_attr_s(b, "padding", "SAME");
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 4, pd, ((double[]){10, 10, 13, 10}), 0);
    pst_tensor_unref(o);
    /* Pooling over the batch dimension, a Const or fed, is refused naming the node. */
    b = pst_test_nb_consts(
        g, "MaxPoolV2", 3,
        (pst_tensor *[]){pool_input(1), vec4_i32(2, 3, 3, 1), vec4_i32(1, 2, 2, 1)});
    pst_nb_attr_s(b, "padding", "SAME");
    ck_assert(pst_nb_finish(b) == NULL);
    ck_assert(strstr(pst_graph_status(g)->msg, "batch") != NULL);
    pst_graph_free(g);
    g = pst_graph_new();
    pst_output k = pst_placeholder(g, "k", PST_INT32, pst_shape_1d(4));
    b = pst_nb_new(g, "MaxPoolV2", NULL);
    pst_nb_input(b, pst_test_const(g, pool_input(1), NULL));
    pst_nb_input(b, k);
    pst_nb_input(b, pst_test_const(g, vec4_i32(1, 2, 2, 1), NULL));
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    pst_nb_attr_s(b, "padding", "VALID");
    nd = pst_test_finish(g, b);
    pst_tensor *kv = vec4_i32(1, 9, 9, 1);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_feed f = {k, kv};
    pst_output fetch = pst_out(nd, 0);
    pst_tensor *out = NULL;
    ck_assert(pst_session_run(s, &f, 1, &fetch, 1, NULL, 0, &out, &st) != 0);
    ck_assert_msg(strstr(st.msg, nd->name) && strstr(st.msg, "empty output"), "%s", st.msg);
    pst_session_free(s);
    pst_tensor_unref(kv);
    pst_graph_free(g);

    /* Gradients, in double: MaxPoolV2 -> MaxPoolGradV2 -> MaxPoolGradGradV2, and
     * MaxPoolGradGrad -> MaxPoolGradV2. */
    g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_4d(2, 5, 5, 2));
    pst_output ks = pst_test_const(g, vec4_i32(1, 2, 2, 1), NULL), ss = pst_test_const(g, vec4_i32(1, 2, 2, 1), NULL);
    b = pst_nb_new(g, "MaxPoolV2", NULL);
    pst_nb_inputs(b, 3, (pst_output[]){x, ks, ss});
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    pst_nb_attr_s(b, "padding", "SAME");
    pst_output y = pst_nb_finish_out(b);
    pst_tensor *xv = pst_test_rand(PST_DOUBLE, pst_shape_4d(2, 5, 5, 2), 9, -1, 1);
    double err = pst_gradcheck(g, y, 1, &x, &xv, 1e-6);
    ck_assert_msg(err < 1e-6, "MaxPoolV2 gradient error %g", err);
    pst_output d = pst_placeholder(g, "d", PST_DOUBLE, pst_shape_4d(2, 3, 3, 2));
    b = pst_nb_new(g, "MaxPoolGradV2", NULL);
    pst_nb_inputs(b, 5, (pst_output[]){x, y, d, ks, ss});
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    pst_nb_attr_s(b, "padding", "SAME");
    pst_output gv2 = pst_nb_finish_out(b);
    pst_tensor *dv = pst_test_rand(PST_DOUBLE, pst_shape_4d(2, 3, 3, 2), 10, -1, 1);
    err = pst_gradcheck(g, gv2, 2, (pst_output[]){x, d}, (pst_tensor *[]){xv, dv}, 1e-6);
    ck_assert_msg(err < 1e-6, "MaxPoolGradV2 gradient error %g", err);
    pst_output gg = pst_placeholder(g, "gg", PST_DOUBLE, pst_shape_4d(2, 5, 5, 2));
    b = pst_nb_new(g, "MaxPoolGradGrad", NULL);
    pst_nb_inputs(b, 3, (pst_output[]){x, y, gg});
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    window_attrs(b, 2, 2, "SAME");
    pst_output ggo = pst_nb_finish_out(b);
    pst_tensor *gv = pst_test_rand(PST_DOUBLE, pst_shape_4d(2, 5, 5, 2), 11, -1, 1);
    err = pst_gradcheck(g, ggo, 2, (pst_output[]){x, gg}, (pst_tensor *[]){xv, gv}, 1e-6);
    ck_assert_msg(err < 1e-6, "MaxPoolGradGrad gradient error %g", err);
    pst_tensor_unref(xv);
    pst_tensor_unref(dv);
    pst_tensor_unref(gv);
    pst_graph_free(g);
}
END_TEST

/* A gradient penalty's path (WGAN-GP): d/dw of MaxPoolGrad(x, MaxPool(x), w) and of
 * AvgPoolGrad(shape, w), with the float32 ops pstrain's own CNNs write. */
START_TEST(test_pool_grad_gradients) {
    pst_graph *g = pst_graph_new();
    pst_tensor *xv = pst_test_rand(PST_FLOAT, pst_shape_4d(1, 4, 4, 2), 12, -1, 1);
    pst_output x = pst_const(g, xv, NULL);
    pst_output y = pst_max_pool(g, x, 2, 2, 2, 2, "VALID", NULL);
    pst_output w = pst_placeholder(g, "w", PST_FLOAT, pst_shape_4d(1, 2, 2, 2));
    pst_node_builder *b = pst_nb_new(g, "MaxPoolGrad", NULL);
    pst_nb_inputs(b, 3, (pst_output[]){x, y, w});
    pst_nb_attr_type(b, "T", PST_FLOAT);
    window_attrs(b, 2, 2, "VALID");
    pst_output mg = pst_nb_finish_out(b);
    pst_tensor *wv = pst_test_rand(PST_FLOAT, pst_shape_4d(1, 2, 2, 2), 13, -1, 1);
    double err = pst_gradcheck(g, mg, 1, &w, &wv, 1e-2);
    ck_assert_msg(err < 1e-3, "MaxPoolGrad gradient error %g", err);
    b = pst_nb_new(g, "AvgPoolGrad", NULL);
    pst_nb_inputs(b, 2, (pst_output[]){pst_const_i32_vec(g, 4, (int32_t[]){1, 4, 4, 2}, NULL), w});
    pst_nb_attr_type(b, "T", PST_FLOAT);
    window_attrs(b, 2, 2, "VALID");
    pst_output ag = pst_nb_finish_out(b);
    err = pst_gradcheck(g, ag, 1, &w, &wv, 1e-2);
    ck_assert_msg(err < 1e-3, "AvgPoolGrad gradient error %g", err);
    pst_tensor_unref(xv);
    pst_tensor_unref(wv);
    pst_graph_free(g);
}
END_TEST


/* ---- Array ops ------------------------------------------------------------------------- */
static pst_tensor *f64s(pst_shape sh, const double *v) { return pst_tensor_from_f64(sh, v); }

static pst_node *with_i(pst_graph *g, const char *op, int n, pst_tensor *const *in, const char *k, int64_t v) {
    pst_node_builder *b = pst_test_nb_consts(g, op, n, in);
    pst_nb_attr_i(b, k, v);
    return pst_test_finish(g, b);
}

START_TEST(test_roll_reverse) {
    const double x6[6] = {0, 1, 2, 3, 4, 5};
    const int64_t d23[2] = {2, 3};
    pst_test_check_op(
        "Roll", 3, (pst_tensor *[]){f64(6, x6), pst_tensor_scalar_i32(2), pst_tensor_scalar_i32(0)},
        1, (int64_t[]){6}, (double[]){4, 5, 0, 1, 2, 3});
    pst_test_check_op("Roll", 3,
                      (pst_tensor *[]){f64s(pst_shape_2d(2, 3), x6), i32(2, (int32_t[]){1, -1}),
                                       i32(2, (int32_t[]){0, 1})},
                      2, d23, (double[]){4, 5, 3, 1, 2, 0});
    /* shifts on one axis add up */
    pst_test_check_op("Roll", 3,
                      (pst_tensor *[]){f64s(pst_shape_2d(2, 3), x6), i32(2, (int32_t[]){1, 1}),
                                       i32(2, (int32_t[]){-1, 1})},
                      2, d23, (double[]){1, 2, 0, 4, 5, 3});
    pst_graph *g = pst_graph_new();
    pst_node *nd =
        pst_test_finish(g, pst_test_nb_consts(g, "Roll", 3,
                                              (pst_tensor *[]){f64s(pst_shape_2d(2, 3), x6),
                                                               pst_tensor_scalar_i32(1),
                                                               pst_tensor_scalar_i32(2)}));
    pst_test_run_fails(g, nd, "out of range");
    pst_graph_free(g);
    pst_test_grad1("Roll", pst_test_rand(PST_DOUBLE, pst_shape_2d(2, 3), 20, -1, 1), 2,
                   (pst_tensor *[]){i32(2, (int32_t[]){1, -1}), i32(2, (int32_t[]){0, 1})}, NULL,
                   0);

    uint8_t ft[2] = {0, 1}, tt[2] = {1, 1};
    pst_test_check_op("Reverse", 2,
                      (pst_tensor *[]){f64s(pst_shape_2d(2, 3), x6),
                                       pst_tensor_new_copy(PST_BOOL, pst_shape_1d(2), ft, NULL)},
                      2, d23, (double[]){2, 1, 0, 5, 4, 3});
    pst_test_check_op("Reverse", 2,
                      (pst_tensor *[]){f64s(pst_shape_2d(2, 3), x6),
                                       pst_tensor_new_copy(PST_BOOL, pst_shape_1d(2), tt, NULL)},
                      2, d23, (double[]){5, 4, 3, 2, 1, 0});
    pst_test_build_fails("Reverse", 2,
                         (pst_tensor *[]){f64s(pst_shape_2d(2, 3), x6),
                                          pst_tensor_new_copy(PST_BOOL, pst_shape_1d(1), ft, NULL)},
                         NULL, 0, "rank 2");
    pst_test_grad1("Reverse", pst_test_rand(PST_DOUBLE, pst_shape_2d(2, 3), 21, -1, 1), 1,
                   (pst_tensor *[]){pst_tensor_new_copy(PST_BOOL, pst_shape_1d(2), ft, NULL)}, NULL,
                   0);
}
END_TEST

START_TEST(test_depth_space) {
    double x16[16];
    for (int i = 0; i < 16; i++) x16[i] = i + 1;
    /* TF's documented example: [1, 2, 2, 4] -> [1, 4, 4, 1] */
    const double space[16] = {1, 2, 5, 6, 3, 4, 7, 8, 9, 10, 13, 14, 11, 12, 15, 16};
    pst_graph *g = pst_graph_new();
    pst_node *nd = with_i(g, "DepthToSpace", 1, (pst_tensor *[]){f64s(pst_shape_4d(1, 2, 2, 4), x16)}, "block_size", 2);
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 4, 4, 1}), space, 0);
    pst_tensor_unref(o);
    nd = with_i(g, "SpaceToDepth", 1, (pst_tensor *[]){f64s(pst_shape_4d(1, 4, 4, 1), space)}, "block_size", 2);
    o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 2, 2, 4}), x16, 0);
    pst_tensor_unref(o);
    pst_graph_free(g);
    pst_test_build_fails("DepthToSpace", 1, (pst_tensor *[]){f64s(pst_shape_4d(1, 1, 1, 3), x16)},
                         "block_size", 2, "divisible");
    pst_test_build_fails("SpaceToDepth", 1, (pst_tensor *[]){f64s(pst_shape_4d(1, 3, 2, 1), x16)},
                         "block_size", 2, "divisible");
    pst_test_build_fails("SpaceToDepth", 1, (pst_tensor *[]){f64s(pst_shape_4d(1, 2, 2, 1), x16)},
                         "block_size", 1, "block_size");
    pst_test_grad1("DepthToSpace", pst_test_rand(PST_DOUBLE, pst_shape_4d(2, 2, 3, 8), 22, -1, 1),
                   0, NULL, "block_size", 2);
    pst_test_grad1("SpaceToDepth", pst_test_rand(PST_DOUBLE, pst_shape_4d(2, 4, 6, 2), 23, -1, 1),
                   0, NULL, "block_size", 2);
    /* TF 0.x's SpaceToBatch / BatchToSpace (TF's documented example) */
    const double four[4] = {1, 2, 3, 4};
    g = pst_graph_new();
    pst_tensor *zp = pst_tensor_new_zeros(PST_INT32, pst_shape_2d(2, 2), NULL);
    pst_tensor_ref(zp);
    nd = with_i(g, "SpaceToBatch", 2, (pst_tensor *[]){f64s(pst_shape_4d(1, 2, 2, 1), four), zp}, "block_size", 2);
    ck_assert_int_eq(nd->out_shapes[0].dims[0], 4);
    o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){4, 1, 1, 1}), four, 0);
    pst_tensor_unref(o);
    nd = with_i(g, "BatchToSpace", 2, (pst_tensor *[]){f64s(pst_shape_4d(4, 1, 1, 1), four), zp}, "block_size", 2);
    o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 2, 2, 1}), four, 0);
    pst_tensor_unref(o);
    pst_graph_free(g);
    pst_test_grad1(
        "SpaceToBatch", pst_test_rand(PST_DOUBLE, pst_shape_4d(1, 2, 2, 2), 24, -1, 1), 1,
        (pst_tensor *[]){pst_tensor_from_i32(pst_shape_2d(2, 2), (int32_t[]){1, 1, 0, 2})},
        "block_size", 2);
    pst_test_grad1(
        "BatchToSpace", pst_test_rand(PST_DOUBLE, pst_shape_4d(4, 2, 2, 1), 25, -1, 1), 1,
        (pst_tensor *[]){pst_tensor_from_i32(pst_shape_2d(2, 2), (int32_t[]){1, 0, 0, 1})},
        "block_size", 2);
}
END_TEST

START_TEST(test_diag_ops) {
    double want9[9] = {1, 0, 0, 0, 2, 0, 0, 0, 3};
    pst_test_check_op("Diag", 1, (pst_tensor *[]){f64(3, (double[]){1, 2, 3})}, 2,
                      (int64_t[]){3, 3}, want9);
    pst_test_check_op("DiagPart", 1, (pst_tensor *[]){f64s(pst_shape_2d(3, 3), want9)}, 1,
                      (int64_t[]){3}, (double[]){1, 2, 3});
    double want16[16] = {0};
    want16[0] = 1, want16[5] = 2, want16[10] = 3, want16[15] = 4;
    pst_test_check_op("Diag", 1, (pst_tensor *[]){f64s(pst_shape_2d(2, 2), (double[]){1, 2, 3, 4})},
                      4, (int64_t[]){2, 2, 2, 2}, want16);
    pst_test_check_op("DiagPart", 1, (pst_tensor *[]){f64s(pst_shape_4d(2, 2, 2, 2), want16)}, 2,
                      (int64_t[]){2, 2}, (double[]){1, 2, 3, 4});
    pst_test_build_fails("DiagPart", 1, (pst_tensor *[]){f64s(pst_shape_2d(2, 3), want9)}, NULL, 0,
                         "[D..., D...]");
    pst_test_check_op("MatrixDiag", 1,
                      (pst_tensor *[]){f64s(pst_shape_2d(2, 2), (double[]){1, 2, 3, 4})}, 3,
                      (int64_t[]){2, 2, 2}, (double[]){1, 0, 0, 2, 3, 0, 0, 4});
    pst_test_check_op("BatchMatrixDiag", 1,
                      (pst_tensor *[]){f64s(pst_shape_2d(2, 2), (double[]){1, 2, 3, 4})}, 3,
                      (int64_t[]){2, 2, 2}, (double[]){1, 0, 0, 2, 3, 0, 0, 4});
    const double m23[6] = {1, 2, 3, 4, 5, 6};
    pst_test_check_op("MatrixDiagPart", 1, (pst_tensor *[]){f64s(pst_shape_2d(2, 3), m23)}, 1,
                      (int64_t[]){2}, (double[]){1, 5});
    pst_test_check_op("MatrixSetDiag", 2,
                      (pst_tensor *[]){f64s(pst_shape_2d(2, 3), m23), f64(2, (double[]){9, 8})}, 2,
                      (int64_t[]){2, 3}, (double[]){9, 2, 3, 4, 8, 6});
    pst_test_build_fails(
        "MatrixSetDiag", 2,
        (pst_tensor *[]){f64s(pst_shape_2d(2, 3), m23), f64(3, (double[]){9, 8, 7})}, NULL, 0,
        "does not fit");
    pst_test_grad1("Diag", pst_test_rand(PST_DOUBLE, pst_shape_2d(2, 2), 26, -1, 1), 0, NULL, NULL,
                   0);
    pst_test_grad1("DiagPart", pst_test_rand(PST_DOUBLE, pst_shape_2d(3, 3), 27, -1, 1), 0, NULL,
                   NULL, 0);
    pst_test_grad1("MatrixDiag", pst_test_rand(PST_DOUBLE, pst_shape_2d(2, 3), 28, -1, 1), 0, NULL,
                   NULL, 0);
    pst_test_grad1("MatrixDiagPart",
                   pst_test_rand(PST_DOUBLE, pst_shape_make(3, (int64_t[]){2, 2, 3}), 29, -1, 1), 0,
                   NULL, NULL, 0);
    pst_test_grad1("MatrixDiagPart", pst_test_rand(PST_DOUBLE, pst_shape_2d(3, 3), 30, -1, 1), 0,
                   NULL, NULL, 0);
    pst_tensor *v[2] = {pst_test_rand(PST_DOUBLE, pst_shape_2d(2, 3), 31, -1, 1), pst_test_rand(PST_DOUBLE, pst_shape_1d(2), 32, -1, 1)};
    pst_test_grad_op("MatrixSetDiag", 2, v, NULL, 0);
    pst_tensor_unref(v[0]);
    pst_tensor_unref(v[1]);
}
END_TEST

START_TEST(test_unique_forms) {
    const double x[9] = {1, 0, 0, 1, 0, 0, 2, 0, 0};
    pst_graph *g = pst_graph_new();
    pst_node *nd = pst_test_finish(
        g,
        pst_test_nb_consts(g, "UniqueV2", 2,
                           (pst_tensor *[]){f64s(pst_shape_2d(3, 3), x), i32(1, (int32_t[]){0})}));
    pst_tensor *y = pst_test_run_out(g, nd, 0), *idx = pst_test_run_out(g, nd, 1);
    PST_ASSERT_TENSOR(y, 2, ((int64_t[]){2, 3}), ((double[]){1, 0, 0, 2, 0, 0}), 0);
    PST_ASSERT_TENSOR(idx, 1, ((int64_t[]){3}), ((double[]){0, 0, 1}), 0);
    pst_tensor_unref(y);
    pst_tensor_unref(idx);
    nd = pst_test_finish(
        g, pst_test_nb_consts(
               g, "UniqueWithCountsV2", 2,
               (pst_tensor *[]){f64s(pst_shape_2d(3, 3), x),
                                pst_tensor_from_i64(pst_shape_1d(1), (int64_t[]){-1})}));
    y = pst_test_run_out(g, nd, 0), idx = pst_test_run_out(g, nd, 1);
    pst_tensor *cnt = pst_test_run_out(g, nd, 2);
    PST_ASSERT_TENSOR(y, 2, ((int64_t[]){3, 2}), ((double[]){1, 0, 1, 0, 2, 0}), 0);
    PST_ASSERT_TENSOR(idx, 1, ((int64_t[]){3}), ((double[]){0, 1, 1}), 0);
    PST_ASSERT_TENSOR(cnt, 1, ((int64_t[]){2}), ((double[]){1, 2}), 0);
    pst_tensor_unref(y);
    pst_tensor_unref(idx);
    pst_tensor_unref(cnt);
    /* TF's documented UniqueWithCounts example */
    nd = pst_test_finish(
        g, pst_test_nb_consts(g, "UniqueWithCounts", 1,
                              (pst_tensor *[]){i32(9, (int32_t[]){1, 1, 2, 4, 4, 4, 7, 8, 8})}));
    y = pst_test_run_out(g, nd, 0), idx = pst_test_run_out(g, nd, 1),
    cnt = pst_test_run_out(g, nd, 2);
    PST_ASSERT_TENSOR(y, 1, ((int64_t[]){5}), ((double[]){1, 2, 4, 7, 8}), 0);
    PST_ASSERT_TENSOR(idx, 1, ((int64_t[]){9}), ((double[]){0, 0, 1, 2, 2, 2, 3, 4, 4}), 0);
    PST_ASSERT_TENSOR(cnt, 1, ((int64_t[]){5}), ((double[]){2, 1, 3, 1, 2}), 0);
    pst_tensor_unref(y);
    pst_tensor_unref(idx);
    pst_tensor_unref(cnt);
    pst_graph_free(g);
    /* No axis ([]) wants a vector: refused when built from a Const axis, when run from a fed one */
    pst_test_build_fails("UniqueV2", 2,
                         (pst_tensor *[]){f64s(pst_shape_2d(3, 3), x),
                                          pst_tensor_new(PST_INT32, pst_shape_1d(0), NULL)},
                         NULL, 0, "vector");
    g = pst_graph_new();
    pst_output ax = pst_placeholder(g, "axis", PST_INT32, pst_shape_1d(-1));
    pst_node_builder *b = pst_nb_new(g, "UniqueV2", NULL);
    pst_nb_input(b, pst_test_const(g, f64s(pst_shape_2d(3, 3), x), NULL));
    pst_nb_input(b, ax);
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    nd = pst_test_finish(g, b);
    pst_tensor *none = pst_tensor_new(PST_INT32, pst_shape_1d(0), NULL);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_feed f = {ax, none};
    pst_output fetch = pst_out(nd, 0);
    pst_tensor *out = NULL;
    ck_assert(pst_session_run(s, &f, 1, &fetch, 1, NULL, 0, &out, &st) != 0);
    ck_assert_msg(strstr(st.msg, nd->name) && strstr(st.msg, "1-D"), "%s", st.msg);
    pst_session_free(s);
    pst_tensor_unref(none);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_inplace_unravel_bounds) {
    const int64_t d32[2] = {3, 2};
    pst_tensor *i20 = i32(2, (int32_t[]){2, 0}), *v = f64s(pst_shape_2d(2, 2), (double[]){1, 2, 3, 4});
    double ones[6] = {1, 1, 1, 1, 1, 1};
    pst_tensor_ref(i20), pst_tensor_ref(i20), pst_tensor_ref(v), pst_tensor_ref(v);
    pst_test_check_op(
        "InplaceUpdate", 3,
        (pst_tensor *[]){pst_tensor_new_zeros(PST_DOUBLE, pst_shape_2d(3, 2), NULL), i20, v}, 2,
        d32, (double[]){3, 4, 0, 0, 1, 2});
    pst_test_check_op("InplaceAdd", 3, (pst_tensor *[]){f64s(pst_shape_2d(3, 2), ones), i20, v}, 2,
                      d32, (double[]){4, 5, 1, 1, 2, 3});
    pst_test_check_op("InplaceSub", 3, (pst_tensor *[]){f64s(pst_shape_2d(3, 2), ones), i20, v}, 2,
                      d32, (double[]){-2, -3, 1, 1, 0, -1});
    pst_graph *g = pst_graph_new();
    pst_node *nd =
        pst_test_finish(g, pst_test_nb_consts(g, "InplaceAdd", 3,
                                              (pst_tensor *[]){f64s(pst_shape_2d(3, 2), ones),
                                                               i32(1, (int32_t[]){3}),
                                                               f64s(pst_shape_2d(1, 2), ones)}));
    pst_test_run_fails(g, nd, "out of range");
    pst_graph_free(g);

    g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "UnravelIndex", NULL);
    pst_nb_input(b, pst_test_const(g, i32(3, (int32_t[]){2, 5, 7}), NULL));
    pst_nb_input(b, pst_test_const(g, i32(2, (int32_t[]){3, 3}), NULL));
    pst_tensor *o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 2, ((int64_t[]){2, 3}), ((double[]){0, 1, 2, 2, 2, 1}), 0);
    pst_tensor_unref(o);
    b = pst_nb_new(g, "UnravelIndex", NULL);
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(1621), NULL));
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(4), (int64_t[]){6, 7, 8, 9}), NULL));
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){4}), ((double[]){3, 1, 4, 1}), 0);
    pst_tensor_unref(o);
    b = pst_nb_new(g, "UnravelIndex", NULL);
    pst_nb_input(b, pst_test_const(g, i32(1, (int32_t[]){9}), NULL));
    pst_nb_input(b, pst_test_const(g, i32(2, (int32_t[]){3, 3}), NULL));
    pst_test_run_fails(g, pst_test_finish(g, b), "out of bounds");
    pst_graph_free(g);

    pst_tensor *srt = f64s(pst_shape_2d(2, 5), (double[]){0, 3, 9, 9, 10, 1, 2, 3, 4, 5});
    pst_tensor *vals = f64s(pst_shape_2d(2, 3), (double[]){2, 4, 9, 0, 2, 6});
    pst_tensor_ref(srt), pst_tensor_ref(vals);
    pst_test_check_op("LowerBound", 2, (pst_tensor *[]){srt, vals}, 2, (int64_t[]){2, 3},
                      (double[]){1, 2, 2, 0, 1, 5});
    pst_test_check_op("UpperBound", 2, (pst_tensor *[]){srt, vals}, 2, (int64_t[]){2, 3},
                      (double[]){1, 2, 4, 0, 2, 5});
}
END_TEST

START_TEST(test_bincount_histogram_nth) {
    pst_tensor *arr = i32(5, (int32_t[]){1, 1, 2, 5, 7});
    pst_tensor_ref(arr);
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "Bincount", NULL);
    pst_nb_input(b, pst_test_const(g, arr, NULL));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i32(6), NULL));
    pst_nb_input(b, pst_test_const(g, pst_tensor_new(PST_FLOAT, pst_shape_1d(0), NULL), NULL));
    pst_nb_attr_type(b, "T", PST_FLOAT);
    pst_tensor *o =
        pst_test_run_out(g, pst_test_finish(g, b), 0); /* 7 is past the last bin: dropped */
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){6}), ((double[]){0, 2, 1, 0, 0, 1}), 0);
    pst_tensor_unref(o);
    b = pst_nb_new(g, "Bincount", NULL);
    pst_nb_input(b, pst_test_const(g, arr, NULL));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i32(6), NULL));
    pst_nb_input(b, pst_test_const(g, f64(5, (double[]){0.5, 1, 2, 3, 4}), NULL));
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){6}), ((double[]){0, 1.5, 2, 0, 0, 3}), 0);
    pst_tensor_unref(o);
    b = pst_nb_new(g, "Bincount", NULL);
    pst_nb_input(b, pst_test_const(g, i32(2, (int32_t[]){1, -1}), NULL));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i32(6), NULL));
    pst_nb_input(b, pst_test_const(g, pst_tensor_new(PST_FLOAT, pst_shape_1d(0), NULL), NULL));
    pst_nb_attr_type(b, "T", PST_FLOAT);
    pst_test_run_fails(g, pst_test_finish(g, b), "non-negative");
    /* TF's documented HistogramFixedWidth example */
    b = pst_test_nb_consts(g, "HistogramFixedWidth", 3,
                           (pst_tensor *[]){f64(6, (double[]){-1, 0, 1.5, 2, 5, 15}),
                                            f64(2, (double[]){0, 5}), pst_tensor_scalar_i32(5)});
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    ck_assert_int_eq(o->dtype, PST_INT32);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){5}), ((double[]){2, 1, 1, 0, 2}), 0);
    pst_tensor_unref(o);
    b = pst_test_nb_consts(g, "HistogramFixedWidth", 3,
                           (pst_tensor *[]){f64(1, (double[]){1}), f64(2, (double[]){0, 5}),
                                            pst_tensor_scalar_i32(0)});
    pst_test_run_fails(g, pst_test_finish(g, b), "nbins");
    /* NthElement: n-th smallest, or largest with reverse, of the last dim */
    const double x6[6] = {3, 1, 2, 6, 5, 4};
    b = pst_test_nb_consts(
        g, "NthElement", 2,
        (pst_tensor *[]){f64s(pst_shape_2d(2, 3), x6), pst_tensor_scalar_i32(1)});
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){2, 5}), 0);
    pst_tensor_unref(o);
    b = pst_test_nb_consts(
        g, "NthElement", 2,
        (pst_tensor *[]){f64s(pst_shape_2d(2, 3), x6), pst_tensor_scalar_i32(0)});
    pst_nb_attr_b(b, "reverse", 1);
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){3, 6}), 0);
    pst_tensor_unref(o);
    pst_graph_free(g);
    pst_test_build_fails("NthElement", 2,
                         (pst_tensor *[]){f64s(pst_shape_2d(2, 3), x6), pst_tensor_scalar_i32(3)},
                         NULL, 0, "last dimension");
    pst_test_grad1("NthElement", pst_test_rand(PST_DOUBLE, pst_shape_2d(3, 4), 33, -1, 1), 1,
                   (pst_tensor *[]){pst_tensor_scalar_i32(2)}, NULL, 0);
}
END_TEST


/* ---- Segment reductions ---------------------------------------------------------------- */
static pst_tensor *i64v(int64_t n, const int64_t *v) { return pst_tensor_from_i64(pst_shape_1d(n), v); }

START_TEST(test_sorted_segments) {
    const double data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const int64_t d32[2] = {3, 2};
    const char *ops[] = {"SegmentSum", "SegmentMean", "SegmentMax", "SegmentMin", "SegmentProd"};
    /* ids [0, 0, 2, 2]: segment 1 is empty (0, or 1 for Prod) */
    const double want[5][6] = {{4, 6, 0, 0, 12, 14}, {2, 3, 0, 0, 6, 7}, {3, 4, 0, 0, 7, 8},
                               {1, 2, 0, 0, 5, 6}, {3, 8, 1, 1, 35, 48}};
    for (int k = 0; k < 5; k++) {
        pst_test_check_op(
            ops[k], 2,
            (pst_tensor *[]){f64s(pst_shape_2d(4, 2), data), i32(4, (int32_t[]){0, 0, 2, 2})}, 2,
            d32, want[k]);
        pst_graph *g = pst_graph_new();
        pst_node *nd = pst_test_finish(
            g, pst_test_nb_consts(g, ops[k], 2,
                                  (pst_tensor *[]){f64s(pst_shape_2d(4, 2), data),
                                                   i32(4, (int32_t[]){0, 2, 1, 2})}));
        pst_test_run_fails(g, nd, "not increasing");
        nd = pst_test_finish(
            g, pst_test_nb_consts(g, ops[k], 2,
                                  (pst_tensor *[]){f64s(pst_shape_2d(4, 2), data),
                                                   i32(4, (int32_t[]){-1, 0, 1, 2})}));
        pst_test_run_fails(g, nd, ">= 0");
        pst_graph_free(g);
        if (k < 4)
            pst_test_grad1(ops[k], pst_test_rand(PST_DOUBLE, pst_shape_2d(4, 2), 40 + k, -1, 1), 1,
                           (pst_tensor *[]){i64v(4, (int64_t[]){0, 0, 2, 2})}, NULL, 0);
    }
}
END_TEST

START_TEST(test_unsorted_segments) {
    const double data[5] = {1, 5, 3, 2, 4};
    const int64_t d4[1] = {4};
    const char *ops[] = {"UnsortedSegmentMax", "UnsortedSegmentMin", "UnsortedSegmentProd"};
    /* id -1 is dropped; empty segments are lowest / highest / 1 */
    const double want[3][4] = {{3, -DBL_MAX, 4, -DBL_MAX}, {1, DBL_MAX, 2, DBL_MAX}, {3, 1, 8, 1}};
    for (int k = 0; k < 3; k++) {
        pst_test_check_op(ops[k], 3,
                          (pst_tensor *[]){f64(5, data), i32(5, (int32_t[]){0, -1, 0, 2, 2}),
                                           pst_tensor_scalar_i32(4)},
                          1, d4, want[k]);
        pst_graph *g = pst_graph_new();
        pst_node *nd = pst_test_finish(
            g, pst_test_nb_consts(g, ops[k], 3,
                                  (pst_tensor *[]){f64(5, data), i32(5, (int32_t[]){0, 4, 0, 2, 2}),
                                                   pst_tensor_scalar_i32(4)}));
        pst_test_run_fails(g, nd, "out of range");
        pst_graph_free(g);
        /* gradients with 2-D ids (a prefix of data's shape) holding a dropped -1 (and no empty
         * segment, whose lowest/highest value would swamp the finite differences) */
        pst_tensor *v = pst_test_rand(PST_DOUBLE, pst_shape_make(3, (int64_t[]){2, 2, 3}), 50 + k, 0.5, 2);
        if (k == 2) pst_tensor_f64(v)[0] = 0; /* a zero in a product */
        pst_test_grad1(
            ops[k], v, 2,
            (pst_tensor *[]){pst_tensor_from_i32(pst_shape_2d(2, 2), (int32_t[]){0, -1, 1, 0}),
                             pst_tensor_scalar_i32(2)},
            NULL, 0);
    }
    /* float32: the lowest float for an empty max */
    pst_test_check_op("UnsortedSegmentMax", 3,
                      (pst_tensor *[]){pst_tensor_from_f32(pst_shape_1d(2), (float[]){1, 2}),
                                       i32(2, (int32_t[]){0, 0}), pst_tensor_scalar_i32(2)},
                      1, (int64_t[]){2}, (double[]){2, -FLT_MAX});
}
END_TEST


/* ---- Scatters on variables and values -------------------------------------------------- */
static const double var_init[6] = {1, 2, 3, 4, 5, 6};

/* A [3, 2] double variable (VariableV2, or a resource VarHandleOp) and its initializer. */
static pst_output make_var(pst_graph *g, int resource, pst_node **init) {
    pst_output v, value = pst_test_const(g, f64s(pst_shape_2d(3, 2), var_init), NULL);
    if (!resource) {
        v = pst_variable_v2(g, "v", PST_DOUBLE, pst_shape_2d(3, 2));
        *init = pst_assign(g, v, value, NULL).node;
    } else {
        pst_node_builder *b = pst_nb_new(g, "VarHandleOp", "r");
        pst_nb_attr_type(b, "dtype", PST_DOUBLE);
        pst_nb_attr_shape(b, "shape", pst_shape_2d(3, 2));
        pst_nb_attr_s(b, "shared_name", "r");
        v = pst_nb_finish_out(b);
        b = pst_nb_new(g, "AssignVariableOp", NULL);
        pst_nb_inputs(b, 2, (pst_output[]){v, value});
        pst_nb_attr_type(b, "dtype", PST_DOUBLE);
        *init = pst_test_finish(g, b);
    }
    ck_assert(v.node && *init);
    return v;
}

/* op(var, consts...) run once after the initializer; returns the variable's value then, or
 * NULL with the run's message in msg. */
static pst_tensor *var_op(const char *op, int resource, int n, pst_tensor *const *in, const char *ikey,
                          int64_t ival, char *msg) {
    pst_graph *g = pst_graph_new();
    pst_node *init;
    pst_output v = make_var(g, resource, &init);
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_input(b, v);
    for (int i = 0; i < n; i++) pst_nb_input(b, pst_test_const(g, in[i], NULL));
    pst_nb_attr_type(b, strncmp(op, "ResourceScatter", 15) && strncmp(op, "ResourceGather", 14) ? "T" : "dtype", PST_DOUBLE);
    if (ikey) pst_nb_attr_i(b, ikey, ival);
    pst_node *nd = pst_test_finish(g, b);
    pst_output read = v;
    if (resource) {
        b = pst_nb_new(g, "ReadVariableOp", NULL);
        pst_nb_input(b, v);
        pst_nb_attr_type(b, "dtype", PST_DOUBLE);
        read = pst_nb_finish_out(b);
    }
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_msg(pst_session_run(s, NULL, 0, NULL, 0, &init, 1, NULL, &st) == 0, "%s", st.msg);
    pst_tensor *out = NULL;
    if (pst_session_run(s, NULL, 0, NULL, 0, &nd, 1, NULL, &st) != 0) {
        ck_assert_msg(strstr(st.msg, nd->name) != NULL, "'%s' does not name the node", st.msg);
        snprintf(msg, 256, "%.200s", st.msg);
    } else {
        pst_output o = strcmp(op, "ResourceGatherNd") == 0 ? pst_out(nd, 0) : read;
        ck_assert_msg(pst_session_run(s, NULL, 0, &o, 1, NULL, 0, &out, &st) == 0, "%s", st.msg);
    }
    pst_session_free(s);
    pst_graph_free(g);
    return out;
}

static void check_var_op(const char *op, int resource, int n, pst_tensor *const *in, const char *ikey, int64_t ival,
                         int rank, const int64_t *dims, const double *want) {
    char msg[256] = "";
    pst_tensor *o = var_op(op, resource, n, in, ikey, ival, msg);
    ck_assert_msg(o != NULL, "%s: %s", op, msg);
    pst_test_assert_tensor(o, rank, dims, want, 1e-12, __FILE__, __LINE__);
    pst_tensor_unref(o);
}

static void var_op_fails(const char *op, int resource, int n, pst_tensor *const *in, const char *want) {
    char msg[256] = "";
    pst_tensor *o = var_op(op, resource, n, in, NULL, 0, msg);
    ck_assert_msg(o == NULL, "%s ran", op);
    ck_assert_msg(strstr(msg, want) != NULL, "message '%s'", msg);
}

START_TEST(test_row_scatters) {
    const int64_t d32[2] = {3, 2};
    const char *ops[] = {"ScatterMul", "ScatterDiv", "ScatterMin", "ScatterMax"};
    /* indices [2, 0, 2]: row 2 is combined twice, in order */
    const double want[4][6] = {{3, 6, 3, 4, 5, 48}, {1.0 / 3, 2.0 / 3, 3, 4, 5, 0.75}, {1, 2, 3, 4, 0.5, 2}, {3, 3, 3, 4, 5, 6}};
    for (int k = 0; k < 4; k++)
        for (int res = 0; res < 2; res++) {
            char op[64];
            snprintf(op, sizeof op, "%s%s", res ? "Resource" : "", ops[k]);
            check_var_op(op, res, 2, (pst_tensor *[]){i32(3, (int32_t[]){2, 0, 2}), f64s(pst_shape_2d(3, 2), (double[]){2, 2, 3, 3, 0.5, 4})},
                         NULL, 0, 2, d32, want[k]);
            var_op_fails(op, res, 2, (pst_tensor *[]){i32(1, (int32_t[]){3}), f64s(pst_shape_2d(1, 2), (double[]){2, 2})}, "not in [0, 3)");
            var_op_fails(op, res, 2, (pst_tensor *[]){i32(1, (int32_t[]){1}), f64s(pst_shape_2d(1, 3), (double[]){2, 2, 2})}, "do not fit");
        }
    /* a scalar update applies to every element of the rows */
    check_var_op("ScatterMul", 0, 2, (pst_tensor *[]){i32(2, (int32_t[]){0, 1}), pst_tensor_scalar_f64(10)}, NULL, 0, 2, d32,
                 (double[]){10, 20, 30, 40, 5, 6});
}
END_TEST

START_TEST(test_nd_scatters) {
    const int64_t d32[2] = {3, 2};
    const char *ops[] = {"ScatterNdUpdate", "ScatterNdAdd", "ScatterNdSub"};
    const double want[3][6] = {{1, 10, 3, 4, 20, 6}, {1, 12, 3, 4, 25, 6}, {1, -8, 3, 4, -15, 6}};
    pst_tensor *idx = pst_tensor_from_i32(pst_shape_2d(2, 2), (int32_t[]){0, 1, 2, 0});
    for (int k = 0; k < 3; k++)
        for (int res = 0; res < 2; res++) {
            char op[64];
            snprintf(op, sizeof op, "%s%s", res ? "Resource" : "", ops[k]);
            pst_tensor_ref(idx);
            check_var_op(op, res, 2, (pst_tensor *[]){idx, f64(2, (double[]){10, 20})}, NULL, 0, 2, d32, want[k]);
            var_op_fails(op, res, 2, (pst_tensor *[]){pst_tensor_from_i32(pst_shape_2d(1, 2), (int32_t[]){3, 0}), f64(1, (double[]){1})},
                         "does not index into");
            pst_tensor_ref(idx);
            var_op_fails(op, res, 2, (pst_tensor *[]){idx, f64(3, (double[]){1, 2, 3})}, "indices.shape[:-1]");
        }
    pst_tensor_unref(idx);
    /* K = 1: whole rows */
    check_var_op("ScatterNdUpdate", 0, 2, (pst_tensor *[]){pst_tensor_from_i32(pst_shape_2d(1, 1), (int32_t[]){1}),
                                                            f64s(pst_shape_2d(1, 2), (double[]){7, 8})}, NULL, 0, 2, d32,
                 (double[]){1, 2, 7, 8, 5, 6});
    check_var_op("ResourceGatherNd", 1, 1, (pst_tensor *[]){pst_tensor_from_i32(pst_shape_2d(2, 2), (int32_t[]){0, 1, 2, 0})}, NULL, 0,
                 1, (int64_t[]){2}, (double[]){2, 5});
    check_var_op("ResourceGatherNd", 1, 1, (pst_tensor *[]){pst_tensor_from_i32(pst_shape_2d(1, 1), (int32_t[]){1})}, NULL, 0,
                 2, (int64_t[]){1, 2}, (double[]){3, 4});
    var_op_fails("ResourceGatherNd", 1, 1, (pst_tensor *[]){pst_tensor_from_i32(pst_shape_2d(1, 1), (int32_t[]){-1})}, "does not index into");

    /* The value forms, and their gradients */
    const char *vops[] = {"TensorScatterUpdate", "TensorScatterAdd", "TensorScatterSub", "ScatterNdNonAliasingAdd"};
    const double vwant[4][6] = {{1, 10, 3, 4, 20, 6}, {1, 12, 3, 4, 25, 6}, {1, -8, 3, 4, -15, 6}, {1, 12, 3, 4, 25, 6}};
    for (int k = 0; k < 4; k++) {
        pst_test_check_op(
            vops[k], 3,
            (pst_tensor *[]){f64s(pst_shape_2d(3, 2), var_init),
                             pst_tensor_from_i32(pst_shape_2d(2, 2), (int32_t[]){0, 1, 2, 0}),
                             f64(2, (double[]){10, 20})},
            2, d32, vwant[k]);
        pst_graph *g = pst_graph_new();
        pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(3, 2)), u = pst_placeholder(g, "u", PST_DOUBLE, pst_shape_1d(2));
        pst_node_builder *b = pst_nb_new(g, vops[k], NULL);
        pst_nb_inputs(b, 3, (pst_output[]){x, pst_test_const(g, pst_tensor_from_i32(pst_shape_2d(2, 2), (int32_t[]){0, 1, 2, 0}), NULL), u});
        pst_nb_attr_type(b, "T", PST_DOUBLE);
        pst_output y = pst_nb_finish_out(b);
        pst_tensor *vals[2] = {pst_test_rand(PST_DOUBLE, pst_shape_2d(3, 2), 60 + k, -1, 1), pst_test_rand(PST_DOUBLE, pst_shape_1d(2), 70 + k, -1, 1)};
        double err = pst_gradcheck(g, y, 2, (pst_output[]){x, u}, vals, 1e-6);
        ck_assert_msg(err < 1e-6, "%s: gradient error %g", vops[k], err);
        pst_tensor_unref(vals[0]);
        pst_tensor_unref(vals[1]);
        pst_graph_free(g);
    }
    pst_graph *g = pst_graph_new();
    pst_node *nd = pst_test_finish(
        g, pst_test_nb_consts(
               g, "TensorScatterAdd", 3,
               (pst_tensor *[]){f64s(pst_shape_2d(3, 2), var_init),
                                pst_tensor_from_i32(pst_shape_2d(1, 2), (int32_t[]){0, 2}),
                                f64(1, (double[]){1})}));
    pst_test_run_fails(g, nd, "does not index into");
    pst_graph_free(g);
}
END_TEST

START_TEST(test_strided_slice_assign) {
    const int64_t d32[2] = {3, 2};
    for (int res = 0; res < 2; res++) {
        const char *op = res ? "ResourceStridedSliceAssign" : "StridedSliceAssign";
        /* rows 0 and 2 (stride 2) of column 1 */
        check_var_op(op, res, 4, (pst_tensor *[]){i32(2, (int32_t[]){0, 1}), i32(2, (int32_t[]){3, 2}), i32(2, (int32_t[]){2, 1}),
                                                  f64s(pst_shape_2d(2, 1), (double[]){10, 20})}, NULL, 0, 2, d32,
                     (double[]){1, 10, 3, 4, 5, 20});
        /* shrink_axis_mask on dim 1: the value is [2] */
        check_var_op(op, res, 4, (pst_tensor *[]){i32(2, (int32_t[]){0, 1}), i32(2, (int32_t[]){3, 2}), i32(2, (int32_t[]){2, 1}),
                                                  f64(2, (double[]){10, 20})}, "shrink_axis_mask", 2, 2, d32,
                     (double[]){1, 10, 3, 4, 5, 20});
        var_op_fails(op, res, 4, (pst_tensor *[]){i32(2, (int32_t[]){0, 1}), i32(2, (int32_t[]){3, 2}), i32(2, (int32_t[]){2, 1}),
                                                  f64(3, (double[]){10, 20, 30})}, "does not match");
    }
}
END_TEST


/* ---- Training ops, TF 0.x batch norm, TensorArray split/concat --------------------------- */

/* Runs op on nv variables (VariableV2 or resource) of n doubles each, initialized from init,
 * with the other inputs `rest` (Consts, in the op's order after the variables); the
 * variables' values after one run into got[nv][n]. */
static void run_apply(const char *op, int resource, int nv, int n, const double *init, int nrest,
                      pst_tensor *const *rest, const char *bkey, int bval, double *got) {
    pst_graph *g = pst_graph_new();
    pst_output v[4], reads[4];
    pst_node *inits[4];
    for (int i = 0; i < nv; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "v%d", i);
        pst_output value = pst_test_const(g, f64(n, init + i * n), NULL);
        if (!resource) {
            v[i] = pst_variable_v2(g, nm, PST_DOUBLE, pst_shape_1d(n));
            inits[i] = pst_assign(g, v[i], value, NULL).node;
            reads[i] = v[i];
        } else {
            pst_node_builder *b = pst_nb_new(g, "VarHandleOp", nm);
            pst_nb_attr_type(b, "dtype", PST_DOUBLE);
            pst_nb_attr_shape(b, "shape", pst_shape_1d(n));
            pst_nb_attr_s(b, "shared_name", nm);
            v[i] = pst_nb_finish_out(b);
            b = pst_nb_new(g, "AssignVariableOp", NULL);
            pst_nb_inputs(b, 2, (pst_output[]){v[i], value});
            pst_nb_attr_type(b, "dtype", PST_DOUBLE);
            inits[i] = pst_test_finish(g, b);
            b = pst_nb_new(g, "ReadVariableOp", NULL);
            pst_nb_input(b, v[i]);
            pst_nb_attr_type(b, "dtype", PST_DOUBLE);
            reads[i] = pst_nb_finish_out(b);
        }
    }
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_inputs(b, nv, v);
    for (int i = 0; i < nrest; i++) pst_nb_input(b, pst_test_const(g, rest[i], NULL));
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    if (bkey) pst_nb_attr_b(b, bkey, bval);
    pst_node *nd = pst_test_finish(g, b);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_msg(pst_session_run(s, NULL, 0, NULL, 0, inits, nv, NULL, &st) == 0, "%s", st.msg);
    ck_assert_msg(pst_session_run(s, NULL, 0, NULL, 0, &nd, 1, NULL, &st) == 0, "%s: %s", op, st.msg);
    pst_tensor *out[4];
    ck_assert_msg(pst_session_run(s, NULL, 0, reads, nv, NULL, 0, out, &st) == 0, "%s", st.msg);
    for (int i = 0; i < nv; i++) {
        memcpy(got + i * n, out[i]->data, (size_t)n * sizeof(double));
        pst_tensor_unref(out[i]);
    }
    pst_session_free(s);
    pst_graph_free(g);
}

static void expect_vals(const char *op, int n, const double *got, const double *want) {
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) < 1e-12 * (1 + fabs(want[i])), "%s: value %d is %.15g, want %.15g", op, i,
                      got[i], want[i]);
}

static pst_tensor *sc(double v) { return pst_tensor_scalar_f64(v); }

START_TEST(test_apply_ops_more) {
    double got[8];
    for (int res = 0; res < 2; res++) {
        /* AdagradV2: accum += g^2; var -= lr g / (sqrt(accum) + eps) */
        const double init[4] = {1, 2, 0.1, 0.1};
        run_apply(res ? "ResourceApplyAdagradV2" : "ApplyAdagradV2", res, 2, 2, init, 3,
                  (pst_tensor *[]){sc(0.5), sc(0.01), f64(2, (double[]){0.5, -1})}, NULL, 0, got);
        expect_vals("ApplyAdagradV2", 4, got, (double[]){1 - 0.5 * 0.5 / (sqrt(0.35) + 0.01), 2 + 0.5 / (sqrt(1.1) + 0.01), 0.35, 1.1});
        /* update_slots = false leaves accum */
        run_apply(res ? "ResourceApplyAdagradV2" : "ApplyAdagradV2", res, 2, 2, init, 3,
                  (pst_tensor *[]){sc(0.5), sc(0.01), f64(2, (double[]){0.5, -1})}, "update_slots", 0, got);
        expect_vals("ApplyAdagradV2 (no slot update)", 4, got,
                    (double[]){1 - 0.5 * 0.5 / (sqrt(0.1) + 0.01), 2 + 0.5 / (sqrt(0.1) + 0.01), 0.1, 0.1});
        /* SparseApplyAdagradV2 on row 1 only */
        run_apply(res ? "ResourceSparseApplyAdagradV2" : "SparseApplyAdagradV2", res, 2, 2, init, 4,
                  (pst_tensor *[]){sc(0.5), sc(0.01), f64(1, (double[]){-1}), i32(1, (int32_t[]){1})}, NULL, 0, got);
        expect_vals("SparseApplyAdagradV2", 4, got, (double[]){1, 2 + 0.5 / (sqrt(1.1) + 0.01), 0.1, 1.1});
        /* AdagradDA with and without l1 (global step 3) */
        const double da[6] = {0, 0, 0.1, -0.1, 0.1, 0.1};
        for (int l1 = 0; l1 < 2; l1++) {
            run_apply(res ? "ResourceApplyAdagradDA" : "ApplyAdagradDA", res, 3, 2, da, 5,
                      (pst_tensor *[]){f64(2, (double[]){0.2, 0.05}), sc(0.1), sc(l1 ? 0.01 : 0), sc(0.02), pst_tensor_scalar_i64(3)},
                      NULL, 0, got);
            double den0 = 0.02 * 3 * 0.1 + sqrt(0.14), den1 = 0.02 * 3 * 0.1 + sqrt(0.1025);
            double w0 = l1 ? -0.1 * (0.3 - 0.03) / den0 : -0.1 * 0.3 / den0;
            double w1 = l1 ? -0.1 * -1 * (0.05 - 0.03) / den1 : -0.1 * -0.05 / den1;
            expect_vals("ApplyAdagradDA", 6, got, (double[]){w0, w1, 0.3, -0.05, 0.14, 0.1025});
        }
    }
    /* tf.keras SGD with momentum: accum = m accum - lr g; var += accum (nesterov: m accum - lr g) */
    const double km[4] = {1, 2, 0.5, -0.5};
    for (int nesterov = 0; nesterov < 2; nesterov++) {
        run_apply("ResourceApplyKerasMomentum", 1, 2, 2, km, 3, (pst_tensor *[]){sc(0.1), f64(2, (double[]){1, 2}), sc(0.9)},
                  "use_nesterov", nesterov, got);
        expect_vals("ResourceApplyKerasMomentum", 4, got,
                    nesterov ? (double[]){1 + 0.9 * 0.35 - 0.1, 2 + 0.9 * -0.65 - 0.2, 0.35, -0.65}
                             : (double[]){1.35, 1.35, 0.35, -0.65});
    }
    run_apply("ResourceSparseApplyKerasMomentum", 1, 2, 2, km, 4,
              (pst_tensor *[]){sc(0.1), f64(1, (double[]){2}), i32(1, (int32_t[]){1}), sc(0.9)}, NULL, 0, got);
    expect_vals("ResourceSparseApplyKerasMomentum", 4, got, (double[]){1, 1.35, 0.5, -0.65});
    /* Adam with AMSGrad: vhat = max(vhat, v) scales the step */
    const double am[8] = {1, 1, 0.1, 0.1, 0.2, 0.2, 0.5, 0.1};
    run_apply("ResourceApplyAdamWithAmsgrad", 1, 4, 2, am, 7,
              (pst_tensor *[]){sc(0.9), sc(0.999), sc(0.01), sc(0.9), sc(0.999), sc(1e-7), f64(2, (double[]){0.3, 0.3})}, NULL, 0, got);
    double m = 0.9 * 0.1 + 0.1 * 0.3, v = 0.999 * 0.2 + 0.001 * 0.09, lr = 0.01 * sqrt(1 - 0.999) / (1 - 0.9);
    expect_vals("ResourceApplyAdamWithAmsgrad", 8, got,
                (double[]){1 - lr * m / (sqrt(0.5) + 1e-7), 1 - lr * m / (sqrt(v) + 1e-7), m, m, v, v, 0.5, v});
    /* TF has no ref-typed KerasMomentum or AdamWithAmsgrad */
    ck_assert(pst_op_lookup("ApplyKerasMomentum") == NULL);
    ck_assert(pst_op_lookup("ApplyAdamWithAmsgrad") == NULL);
}
END_TEST

START_TEST(test_batch_norm_global) {
    const double t[4] = {1, 2, 3, 4};
    for (int scale = 0; scale < 2; scale++) {
        pst_graph *g = pst_graph_new();
        pst_node_builder *b = pst_test_nb_consts(
            g, "BatchNormWithGlobalNormalization", 5,
            (pst_tensor *[]){f64s(pst_shape_4d(1, 1, 2, 2), t), f64(2, (double[]){1, 2}),
                             f64(2, (double[]){4, 0.25}), f64(2, (double[]){0.5, -1}),
                             f64(2, (double[]){2, 3})});
        pst_nb_attr_f(b, "variance_epsilon", 0);
        pst_nb_attr_b(b, "scale_after_normalization", scale);
        pst_tensor *o = pst_test_run_out(g, pst_test_finish(g, b), 0);
        PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 1, 2, 2}), (scale ? (double[]){0.5, -1, 2.5, 11} : (double[]){0.5, -1, 1.5, 3}), 1e-12);
        pst_tensor_unref(o);
        pst_graph_free(g);
        /* all five gradients (the Grad op's formulas) against finite differences */
        g = pst_graph_new();
        pst_output in[5];
        pst_tensor *vals[5];
        const char *names[5] = {"t", "m", "v", "beta", "gamma"};
        for (int i = 0; i < 5; i++) {
            pst_shape sh = i == 0 ? pst_shape_4d(2, 2, 2, 3) : pst_shape_1d(3);
            in[i] = pst_placeholder(g, names[i], PST_DOUBLE, sh);
            vals[i] = pst_test_rand(PST_DOUBLE, sh, 80 + i, i == 2 ? 0.5 : -1, i == 2 ? 2 : 1);
        }
        b = pst_nb_new(g, "BatchNormWithGlobalNormalization", NULL);
        pst_nb_inputs(b, 5, in);
        pst_nb_attr_type(b, "T", PST_DOUBLE);
        pst_nb_attr_f(b, "variance_epsilon", 0.001f);
        pst_nb_attr_b(b, "scale_after_normalization", scale);
        pst_output y = pst_nb_finish_out(b);
        double err = pst_gradcheck(g, y, 5, in, vals, 1e-6);
        ck_assert_msg(err < 1e-6, "BatchNormWithGlobalNormalization (scale %d): gradient error %g", scale, err);
        for (int i = 0; i < 5; i++) pst_tensor_unref(vals[i]);
        pst_graph_free(g);
    }
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_test_nb_consts(
        g, "BatchNormWithGlobalNormalization", 5,
        (pst_tensor *[]){f64s(pst_shape_2d(2, 2), t), f64(2, t), f64(2, t), f64(2, t), f64(2, t)});
    pst_nb_attr_f(b, "variance_epsilon", 0);
    pst_nb_attr_b(b, "scale_after_normalization", 1);
    ck_assert(pst_nb_finish(b) == NULL);
    ck_assert_msg(strstr(pst_graph_status(g)->msg, "4-dimensional") != NULL, "%s", pst_graph_status(g)->msg);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_tensor_array_split_concat) {
    double v[10];
    for (int i = 0; i < 10; i++) v[i] = i;
    for (int bad = 0; bad < 2; bad++) {
        pst_graph *g = pst_graph_new();
        pst_node_builder *b = pst_nb_new(g, "TensorArrayV3", NULL);
        pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i32(2), NULL));
        pst_nb_attr_type(b, "dtype", PST_DOUBLE);
        pst_node *ta = pst_test_finish(g, b);
        b = pst_nb_new(g, "TensorArraySplitV3", NULL);
        pst_nb_inputs(b, 4, (pst_output[]){pst_out(ta, 0), pst_test_const(g, f64s(pst_shape_2d(5, 2), v), NULL),
                                           pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){2, bad ? 2 : 3}), NULL),
                                           pst_out(ta, 1)});
        pst_nb_attr_type(b, "T", PST_DOUBLE);
        pst_node *split = pst_test_finish(g, b);
        b = pst_nb_new(g, "TensorArrayConcatV3", NULL);
        pst_nb_inputs(b, 2, (pst_output[]){pst_out(ta, 0), pst_out(split, 0)});
        pst_nb_attr_type(b, "dtype", PST_DOUBLE);
        pst_nb_attr_shape(b, "element_shape_except0", pst_shape_1d(2));
        pst_node *cat = pst_test_finish(g, b);
        ck_assert_int_eq(cat->out_shapes[0].dims[1], 2);
        if (bad) { /* the error names the split */
            pst_status st = {0};
            pst_session *s = pst_session_new(g, NULL, &st);
            ck_assert(pst_session_run1(s, pst_out(cat, 0), &st) == NULL);
            ck_assert_msg(strstr(st.msg, split->name) && strstr(st.msg, "add up to 4"), "%s", st.msg);
            pst_session_free(s);
        } else {
            pst_status st = {0};
            pst_session *s = pst_session_new(g, NULL, &st);
            pst_output f[3] = {pst_out(cat, 0), pst_out(cat, 1)};
            pst_tensor *o[2];
            ck_assert_msg(pst_session_run(s, NULL, 0, f, 2, NULL, 0, o, &st) == 0, "%s", st.msg);
            PST_ASSERT_TENSOR(o[0], 2, ((int64_t[]){5, 2}), v, 0);
            PST_ASSERT_TENSOR(o[1], 1, ((int64_t[]){2}), ((double[]){2, 3}), 0);
            pst_tensor_unref(o[0]);
            pst_tensor_unref(o[1]);
            pst_session_free(s);
        }
        pst_graph_free(g);
    }
}
END_TEST


/* ---- Images ---------------------------------------------------------------------------- */
static pst_node *resize_node(pst_graph *g, const char *op, pst_output x, int h, int w, int align, int half) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_input(b, x);
    pst_nb_input(b, pst_test_const(g, i32(2, (int32_t[]){h, w}), NULL));
    pst_nb_attr_type(b, "T", pst_output_dtype(x));
    pst_nb_attr_b(b, "align_corners", align);
    pst_nb_attr_b(b, "half_pixel_centers", half);
    return pst_test_finish(g, b);
}

START_TEST(test_resize_bicubic_area) {
    pst_graph *g = pst_graph_new();
    /* legacy coordinates, 2x along a row: TF's table gives weights (-0.09375, 0.59375, 0.59375,
     * -0.09375) half way between pixels, taps clamped at the border */
    pst_output row = pst_test_const(g, f64s(pst_shape_4d(1, 1, 4, 1), (double[]){1, 2, 4, 8}), NULL);
    pst_node *nd = resize_node(g, "ResizeBicubic", row, 1, 8, 0, 0);
    ck_assert_int_eq(nd->out_dtypes[0], PST_FLOAT);
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 1, 8, 1}), ((double[]){1, 1.3125, 2, 2.71875, 4, 6.1875, 8, 8.375}), 1e-6);
    pst_tensor_unref(o);
    /* ResizeArea: means over the covered cells, fractional ones weighted */
    o = pst_test_run_out(g, resize_node(g, "ResizeArea", row, 1, 2, 0, 0), 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 1, 2, 1}), ((double[]){1.5, 6}), 1e-6);
    pst_tensor_unref(o);
    pst_output row3 = pst_test_const(g, f64s(pst_shape_4d(1, 1, 3, 1), (double[]){3, 6, 9}), NULL);
    o = pst_test_run_out(g, resize_node(g, "ResizeArea", row3, 1, 2, 0, 0), 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 1, 2, 1}), ((double[]){4, 8}), 1e-6);
    pst_tensor_unref(o);
    /* a constant image stays constant in every mode (half_pixel_centers renormalizes the taps
     * left inside the image) */
    double seven[12];
    for (int i = 0; i < 12; i++) seven[i] = 7;
    pst_output cst = pst_test_const(g, f64s(pst_shape_4d(1, 2, 3, 2), seven), NULL);
    for (int mode = 0; mode < 3; mode++) {
        o = pst_test_run_out(g, resize_node(g, "ResizeBicubic", cst, 5, 4, mode == 1, mode == 2),
                             0);
        double want[40];
        for (int i = 0; i < 40; i++) want[i] = 7;
        PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 5, 4, 2}), want, 1e-5);
        pst_tensor_unref(o);
    }
    pst_graph_free(g);
    /* align_corners with half_pixel_centers is refused */
    g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "ResizeBicubic", NULL);
    pst_nb_input(b, pst_test_const(g, f64s(pst_shape_4d(1, 2, 3, 2), seven), NULL));
    pst_nb_input(b, pst_test_const(g, i32(2, (int32_t[]){2, 2}), NULL));
    pst_nb_attr_b(b, "align_corners", 1);
    pst_nb_attr_b(b, "half_pixel_centers", 1);
    ck_assert(pst_nb_finish(b) == NULL);
    pst_graph_free(g);
    /* ResizeBicubicGrad is the adjoint of the resize (float32 finite differences of a linear op) */
    for (int mode = 0; mode < 3; mode++) {
        g = pst_graph_new();
        pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_4d(2, 3, 4, 2));
        pst_node *r = resize_node(g, "ResizeBicubic", x, 5, 3, mode == 1, mode == 2);
        pst_tensor *v = pst_test_rand(PST_FLOAT, pst_shape_4d(2, 3, 4, 2), 90 + mode, -1, 1);
        double err = pst_gradcheck(g, pst_out(r, 0), 1, &x, &v, 1e-2);
        ck_assert_msg(err < 1e-3, "ResizeBicubic mode %d: gradient error %g", mode, err);
        pst_tensor_unref(v);
        pst_graph_free(g);
    }
}
END_TEST

START_TEST(test_dilation_random_crop) {
    double x9[9];
    for (int i = 0; i < 9; i++) x9[i] = i + 1;
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_test_nb_consts(
        g, "Dilation2D", 2,
        (pst_tensor *[]){f64s(pst_shape_4d(1, 3, 3, 1), x9),
                         f64s(pst_shape_make(3, (int64_t[]){2, 2, 1}), (double[]){0, 1, 2, -10})});
    pst_nb_attr_list_i(b, "strides", 4, (int64_t[]){1, 1, 1, 1});
    pst_nb_attr_list_i(b, "rates", 4, (int64_t[]){1, 1, 1, 1});
    pst_nb_attr_s(b, "padding", "VALID");
    pst_node *nd = pst_test_finish(g, b);
    ck_assert_int_eq(nd->out_shapes[0].dims[1], 2);
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 2, 2, 1}), ((double[]){6, 7, 9, 10}), 0);
    pst_tensor_unref(o);
    pst_graph_free(g);
    /* gradients (Dilation2DBackpropInput/Filter), strided and dilated, SAME and VALID */
    for (int k = 0; k < 2; k++) {
        g = pst_graph_new();
        pst_output in[2] = {pst_placeholder(g, "x", PST_DOUBLE, pst_shape_4d(2, 5, 6, 2)),
                            pst_placeholder(g, "f", PST_DOUBLE, pst_shape_make(3, (int64_t[]){2, 3, 2}))};
        b = pst_nb_new(g, "Dilation2D", NULL);
        pst_nb_inputs(b, 2, in);
        pst_nb_attr_type(b, "T", PST_DOUBLE);
        pst_nb_attr_list_i(b, "strides", 4, (int64_t[]){1, k ? 2 : 1, 1, 1});
        pst_nb_attr_list_i(b, "rates", 4, (int64_t[]){1, 1, k ? 2 : 1, 1});
        pst_nb_attr_s(b, "padding", k ? "SAME" : "VALID");
        pst_output y = pst_nb_finish_out(b);
        pst_tensor *vals[2] = {pst_test_rand(PST_DOUBLE, pst_shape_4d(2, 5, 6, 2), 95, -1, 1),
                               pst_test_rand(PST_DOUBLE, pst_shape_make(3, (int64_t[]){2, 3, 2}), 96, -1, 1)};
        double err = pst_gradcheck(g, y, 2, in, vals, 1e-6);
        ck_assert_msg(err < 1e-6, "Dilation2D: gradient error %g", err);
        pst_tensor_unref(vals[0]);
        pst_tensor_unref(vals[1]);
        pst_graph_free(g);
    }
    /* RandomCrop: some size[0] x size[1] window of the image */
    g = pst_graph_new();
    pst_tensor *img = pst_test_rand(PST_DOUBLE, pst_shape_make(3, (int64_t[]){4, 5, 2}), 97, -1, 1);
    pst_tensor_ref(img);
    b = pst_test_nb_consts(
        g, "RandomCrop", 2,
        (pst_tensor *[]){img, pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){2, 3})});
    pst_nb_attr_i(b, "seed", 5);
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    ck_assert_int_eq(o->shape.rank, 3);
    ck_assert(o->shape.dims[0] == 2 && o->shape.dims[1] == 3 && o->shape.dims[2] == 2);
    int found = 0;
    for (int y0 = 0; y0 <= 2 && !found; y0++)
        for (int x0 = 0; x0 <= 2 && !found; x0++) {
            int same = 1;
            for (int i = 0; i < 2 && same; i++)
                same = memcmp(pst_tensor_f64(o) + i * 6, pst_tensor_f64(img) + ((y0 + i) * 5 + x0) * 2, 6 * sizeof(double)) == 0;
            found = same;
        }
    ck_assert_msg(found, "the crop is no window of the image");
    pst_tensor_unref(o);
    pst_tensor_ref(img);
    b = pst_test_nb_consts(
        g, "RandomCrop", 2,
        (pst_tensor *[]){img, pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){5, 1})});
    pst_test_run_fails(g, pst_test_finish(g, b), "must be at least");
    pst_tensor_unref(img);
    pst_graph_free(g);
}
END_TEST


/* ---- Color ops, PlaceholderV2 ---------------------------------------------------------- */
START_TEST(test_color_ops) {
    const double rgb[12] = {0.2, 0.4, 0.8, 1, 0, 0, 0.5, 0.5, 0.5, 0, 1, 0.5};
    const int64_t d43[2] = {4, 3};
    const double hsv[12] = {4.0 / 6 - 0.2 / 3.6, 0.75, 0.8, 0, 1, 1, 0, 0, 0.5, 1.0 / 3 + 0.5 / 6, 1, 1};
    pst_test_check_op("RGBToHSV", 1, (pst_tensor *[]){f64s(pst_shape_2d(4, 3), rgb)}, 2, d43, hsv);
    pst_test_check_op("HSVToRGB", 1, (pst_tensor *[]){f64s(pst_shape_2d(4, 3), hsv)}, 2, d43, rgb);
    pst_test_check_op(
        "AdjustHue", 2,
        (pst_tensor *[]){f64s(pst_shape_2d(1, 3), rgb + 3), pst_tensor_scalar_f64(0.5)}, 2,
        (int64_t[]){1, 3}, (double[]){0, 1, 1});
    pst_test_check_op(
        "AdjustHue", 2,
        (pst_tensor *[]){f64s(pst_shape_2d(1, 3), rgb + 3), pst_tensor_scalar_f64(-1.5)}, 2,
        (int64_t[]){1, 3}, (double[]){0, 1, 1});
    pst_test_check_op("AdjustSaturation", 2,
                      (pst_tensor *[]){f64s(pst_shape_2d(1, 3), rgb), pst_tensor_scalar_f64(0)}, 2,
                      (int64_t[]){1, 3}, (double[]){0.8, 0.8, 0.8});
    pst_test_check_op("AdjustSaturation", 2,
                      (pst_tensor *[]){f64s(pst_shape_2d(1, 3), rgb), pst_tensor_scalar_f64(2)}, 2,
                      (int64_t[]){1, 3}, (double[]){0, 0.8 * (2 - 5.0 / 3), 0.8});
    pst_test_build_fails("RGBToHSV", 1, (pst_tensor *[]){f64s(pst_shape_2d(3, 4), rgb)}, NULL, 0,
                         "must be 3");
    /* PlaceholderV2 is fed like Placeholder */
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "PlaceholderV2", "p");
    pst_nb_attr_type(b, "dtype", PST_DOUBLE);
    pst_nb_attr_shape(b, "shape", pst_shape_1d(2));
    pst_output p = pst_nb_finish_out(b);
    pst_output y = pst_mul(g, p, p, NULL);
    pst_tensor *v = f64(2, (double[]){3, 4});
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_feed f = {p, v};
    pst_tensor *o = pst_test_run(s, y, 1, &f);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){9, 16}), 0);
    pst_tensor_unref(o);
    pst_tensor_unref(v);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST


/* ---- Candidate samplers, accidental hits, Bucketize ------------------------------------ */
static pst_node *sampler(pst_graph *g, const char *op, int k, int unique, int range) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_2d(2, 1), (int64_t[]){1, 7}), NULL));
    pst_nb_attr_i(b, "num_true", 1);
    pst_nb_attr_i(b, "num_sampled", k);
    pst_nb_attr_b(b, "unique", unique);
    if (range) pst_nb_attr_i(b, "range_max", range);
    pst_nb_attr_i(b, "seed", 3);
    return pst_test_finish(g, b);
}

START_TEST(test_candidate_samplers) {
    for (int unique = 0; unique < 2; unique++) {
        pst_graph *g = pst_graph_new();
        pst_node *nd = sampler(g, "LogUniformCandidateSampler", 5, unique, 10);
        pst_status st = {0};
        pst_session *s = pst_session_new(g, NULL, &st);
        pst_output f[3] = {pst_out(nd, 0), pst_out(nd, 1), pst_out(nd, 2)};
        pst_tensor *o[3];
        ck_assert_msg(pst_session_run(s, NULL, 0, f, 3, NULL, 0, o, &st) == 0, "%s", st.msg);
        const int64_t *v = pst_tensor_i64(o[0]);
        /* expected counts: p * 5 without rejections, 1 - (1 - p)^tries with; P(k) = log((k+2)/(k+1)) / log(11) */
        int tries = 5;
        if (unique) {
            double p0 = log((v[0] + 2.0) / (v[0] + 1.0)) / log(11.0);
            for (int t = 5; t < 10000; t++)
                if (fabs(-expm1(t * log1p(-p0)) - pst_tensor_f32(o[2])[0]) < 1e-6 ||
                    (t == 5 && fabs(p0 * 5 - pst_tensor_f32(o[2])[0]) < 1e-6)) {
                    tries = t;
                    break;
                }
        }
        for (int i = 0; i < 5; i++) {
            ck_assert(v[i] >= 0 && v[i] < 10);
            for (int j = 0; unique && j < i; j++) ck_assert_msg(v[i] != v[j], "repeated candidate %lld", (long long)v[i]);
            double p = log((v[i] + 2.0) / (v[i] + 1.0)) / log(11.0);
            double want = tries == 5 ? p * 5 : -expm1(tries * log1p(-p));
            ck_assert_msg(fabs(pst_tensor_f32(o[2])[i] - want) < 1e-6, "sampled expected count %g, want %g", pst_tensor_f32(o[2])[i], want);
        }
        double p1 = log(3.0 / 2) / log(11.0), p7 = log(9.0 / 8) / log(11.0);
        ck_assert(fabs(pst_tensor_f32(o[1])[0] - (tries == 5 ? 5 * p1 : -expm1(tries * log1p(-p1)))) < 1e-6);
        ck_assert(fabs(pst_tensor_f32(o[1])[1] - (tries == 5 ? 5 * p7 : -expm1(tries * log1p(-p7)))) < 1e-6);
        for (int i = 0; i < 3; i++) pst_tensor_unref(o[i]);
        pst_session_free(s);
        pst_graph_free(g);
    }
    pst_graph *g = pst_graph_new();
    pst_node *nd = sampler(g, "AllCandidateSampler", 4, 1, 0);
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){4}), ((double[]){0, 1, 2, 3}), 0);
    pst_tensor_unref(o);
    o = pst_test_run_out(g, nd, 2);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){4}), ((double[]){1, 1, 1, 1}), 0);
    pst_tensor_unref(o);
    pst_test_run_fails(g, sampler(g, "UniformCandidateSampler", 11, 1, 10), "too small");
    /* every class of a range, drawn uniquely */
    o = pst_test_run_out(g, sampler(g, "UniformCandidateSampler", 3000, 1, 3000), 0);
    uint8_t *hit = calloc(3000, 1);
    for (int i = 0; i < 3000; i++) {
        int64_t x = pst_tensor_i64(o)[i];
        ck_assert(x >= 0 && x < 3000 && !hit[x]);
        hit[x] = 1;
    }
    free(hit);
    pst_tensor_unref(o);
    /* accidental hits: a candidate sampled twice counts at its last position */
    pst_node_builder *b = pst_nb_new(g, "ComputeAccidentalHits", NULL);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_2d(2, 2), (int64_t[]){1, 2, 3, 4}), NULL));
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(4), (int64_t[]){4, 1, 9, 1}), NULL));
    pst_nb_attr_i(b, "num_true", 2);
    nd = pst_test_finish(g, b);
    o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){0, 1}), 0);
    pst_tensor_unref(o);
    o = pst_test_run_out(g, nd, 1);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){3, 0}), 0);
    pst_tensor_unref(o);
    o = pst_test_run_out(g, nd, 2);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){-FLT_MAX, -FLT_MAX}), 0);
    pst_tensor_unref(o);
    /* Bucketize: TF's documented example */
    b = pst_test_nb_consts(g, "Bucketize", 1,
                           (pst_tensor *[]){i32(6, (int32_t[]){-5, 10000, 150, 10, 5, 100})});
    pst_nb_attr_list_f(b, "boundaries", 3, (float[]){0, 10, 100});
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){6}), ((double[]){0, 3, 3, 2, 1, 3}), 0);
    pst_tensor_unref(o);
    b = pst_test_nb_consts(g, "Bucketize", 1, (pst_tensor *[]){i32(1, (int32_t[]){1})});
    pst_nb_attr_list_f(b, "boundaries", 2, (float[]){10, 0});
    ck_assert(pst_nb_finish(b) == NULL);
    pst_graph_free(g);
}
END_TEST


/* TensorSummaryV2: a Summary holding the tensor as TF's kernel serializes it. */
START_TEST(test_tensor_summary) {
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "TensorSummaryV2", NULL);
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str("t"), NULL));
    pst_nb_input(b, pst_test_const(g, i32(2, (int32_t[]){1, 2}), NULL));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str(""), NULL));
    pst_nb_attr_type(b, "T", PST_INT32);
    pst_tensor *o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    /* Summary { value { tag "t"; tensor { dtype 3; shape { dim { size 2 } }; content } ; metadata {} } } */
    const uint8_t want[] = {0x0a, 0x19, 0x0a, 0x01, 't', 0x42, 0x12, 0x08, 0x03, 0x12, 0x04, 0x12, 0x02, 0x08, 0x02,
                            0x22, 0x08, 1, 0, 0, 0, 2, 0, 0, 0, 0x4a, 0x00};
    ck_assert_int_eq(o->dtype, PST_STRING);
    ck_assert_int_eq(pst_tensor_str(o)[0].len, sizeof want);
    ck_assert(memcmp(pst_tensor_str(o)[0].p, want, sizeof want) == 0);
    pst_tensor_unref(o);
    pst_graph_free(g);
}
END_TEST


/* Lgamma, Digamma, Polygamma, Zeta against known values; their gradients. */
START_TEST(test_special_functions) {
    const double euler = 0.5772156649015329, pi2_6 = 1.6449340668482264;
    pst_test_check_op("Lgamma", 1, (pst_tensor *[]){f64(3, (double[]){0.5, 5, 1})}, 1,
                      (int64_t[]){3}, (double[]){0.5723649429247001, log(24.0), 0});
    pst_test_check_op("Digamma", 1, (pst_tensor *[]){f64(3, (double[]){1, 0.5, -0.5})}, 1,
                      (int64_t[]){3},
                      (double[]){-euler, -euler - 2 * log(2.0), 0.03648997397857652});
    pst_test_check_op("Zeta", 2,
                      (pst_tensor *[]){f64(3, (double[]){2, 3, 2}), f64(3, (double[]){1, 2, 0.5})},
                      1, (int64_t[]){3}, (double[]){pi2_6, 0.2020569031595942, 3 * pi2_6});
    pst_test_check_op("Polygamma", 2,
                      (pst_tensor *[]){f64(3, (double[]){0, 1, 2}), f64(3, (double[]){1, 1, 1})}, 1,
                      (int64_t[]){3}, (double[]){-euler, pi2_6, -2.4041138063191885});
    pst_graph *g = pst_graph_new();
    pst_node *pg = pst_test_finish(
        g,
        pst_test_nb_consts(g, "Polygamma", 2,
                           (pst_tensor *[]){f64(2, (double[]){1.5, 1}), f64(2, (double[]){1, 0})}));
    pst_tensor *o = pst_test_run_out(g, pg, 0);
    ck_assert(isnan(pst_tensor_f64(o)[0])); /* n not an integer */
    ck_assert(isinf(pst_tensor_f64(o)[1]));  /* a pole */
    pst_tensor_unref(o);
    pst_graph_free(g);
    pst_test_grad1("Lgamma", pst_test_rand(PST_DOUBLE, pst_shape_1d(5), 100, 0.5, 3), 0, NULL, NULL,
                   0);
    pst_test_grad1("Digamma", pst_test_rand(PST_DOUBLE, pst_shape_1d(5), 101, 0.5, 3), 0, NULL,
                   NULL, 0);
    /* Polygamma / Zeta: the gradient for x / q, the other input constant */
    const char *ops[2] = {"Polygamma", "Zeta"};
    for (int k = 0; k < 2; k++) {
        g = pst_graph_new();
        pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_1d(4));
        pst_node_builder *b = pst_nb_new(g, ops[k], NULL);
        pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_f64(k ? 3 : 1), NULL));
        pst_nb_input(b, x);
        pst_nb_attr_type(b, "T", PST_DOUBLE);
        pst_output y = pst_nb_finish_out(b);
        pst_tensor *v = pst_test_rand(PST_DOUBLE, pst_shape_1d(4), 102 + k, 0.5, 3);
        double err = pst_gradcheck(g, y, 1, &x, &v, 1e-6);
        ck_assert_msg(err < 1e-6, "%s: gradient error %g", ops[k], err);
        pst_tensor_unref(v);
        pst_graph_free(g);
    }
}
END_TEST


static pst_node_builder *patches_builder(pst_graph *g, pst_output x, int k, int st, int r, const char *pad) {
    pst_node_builder *b = pst_nb_new(g, "ExtractImagePatches", NULL);
    pst_nb_input(b, x);
    pst_nb_attr_type(b, "T", pst_output_dtype(x));
    pst_nb_attr_list_i(b, "ksizes", 4, (int64_t[]){1, k, k, 1});
    pst_nb_attr_list_i(b, "strides", 4, (int64_t[]){1, st, st, 1});
    pst_nb_attr_list_i(b, "rates", 4, (int64_t[]){1, r, r, 1});
    pst_nb_attr_s(b, "padding", pad);
    return b;
}

START_TEST(test_extract_image_patches) {
    double img[100];
    for (int i = 0; i < 100; i++) img[i] = i + 1;
    pst_graph *g = pst_graph_new();
    /* TF's documented example: 3x3 patches, stride 5, of a 10x10 image numbered 1..100 */
    pst_node *nd = pst_test_finish(
        g, patches_builder(g, pst_test_const(g, f64s(pst_shape_4d(1, 10, 10, 1), img), NULL), 3, 5,
                           1, "VALID"));
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 2, 2, 9}),
                      ((double[]){1, 2, 3, 11, 12, 13, 21, 22, 23, 6, 7, 8, 16, 17, 18, 26, 27, 28,
                                  51, 52, 53, 61, 62, 63, 71, 72, 73, 56, 57, 58, 66, 67, 68, 76, 77, 78}), 0);
    pst_tensor_unref(o);
    /* SAME pads with zeros: a 2x2 image, 2x2 windows at stride 1 */
    nd = pst_test_finish(
        g, patches_builder(g, pst_test_const(g, f64s(pst_shape_4d(1, 2, 2, 1), img), NULL), 2, 1, 1,
                           "SAME"));
    o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 4, ((int64_t[]){1, 2, 2, 4}), ((double[]){1, 2, 3, 4, 2, 0, 4, 0, 3, 4, 0, 0, 4, 0, 0, 0}), 0);
    pst_tensor_unref(o);
    pst_graph_free(g);
    /* gradient (index patches + UnsortedSegmentSum), dilated and padded */
    g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_4d(2, 5, 4, 2));
    pst_output y = pst_nb_finish_out(patches_builder(g, x, 2, 2, 2, "SAME"));
    pst_tensor *v = pst_test_rand(PST_DOUBLE, pst_shape_4d(2, 5, 4, 2), 110, -1, 1);
    double err = pst_gradcheck(g, y, 1, &x, &v, 1e-6);
    ck_assert_msg(err < 1e-6, "ExtractImagePatches: gradient error %g", err);
    pst_tensor_unref(v);
    pst_graph_free(g);
}
END_TEST


/* ---- Linear algebra -------------------------------------------------------------------- */
static pst_node *la_node(pst_graph *g, const char *op, int n, const pst_output *in, int adjoint, int lower) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_inputs(b, n, in);
    pst_nb_attr_type(b, "T", pst_output_dtype(in[0]));
    if (adjoint >= 0) pst_nb_attr_b(b, "adjoint", adjoint);
    if (lower >= 0) pst_nb_attr_b(b, "lower", lower);
    return pst_test_finish(g, b);
}

static pst_output cst(pst_graph *g, pst_shape s, const double *v) { return pst_test_const(g, f64s(s, v), NULL); }

START_TEST(test_linalg) {
    const double a[4] = {4, 7, 2, 6}, sing[4] = {1, 2, 2, 4};
    const int64_t d22[2] = {2, 2};
    pst_graph *g = pst_graph_new();
    pst_output A = cst(g, pst_shape_2d(2, 2), a);
    pst_tensor *o = pst_test_run_out(g, la_node(g, "MatrixInverse", 1, &A, 0, -1), 0);
    PST_ASSERT_TENSOR(o, 2, d22, ((double[]){0.6, -0.7, -0.2, 0.4}), 1e-12);
    pst_tensor_unref(o);
    o = pst_test_run_out(g, la_node(g, "MatrixInverse", 1, &A, 1, -1), 0);
    PST_ASSERT_TENSOR(o, 2, d22, ((double[]){0.6, -0.2, -0.7, 0.4}), 1e-12);
    pst_tensor_unref(o);
    pst_output S = cst(g, pst_shape_2d(2, 2), sing);
    pst_test_run_fails(g, la_node(g, "MatrixInverse", 1, &S, 0, -1), "not invertible");
    double two[8] = {4, 7, 2, 6, 1, 2, 2, 4};
    pst_output A2 = cst(g, pst_shape_make(3, (int64_t[]){2, 2, 2}), two);
    o = pst_test_run_out(g, la_node(g, "MatrixDeterminant", 1, &A2, -1, -1), 0);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){10, 0}), 1e-12);
    pst_tensor_unref(o);
    double lg[8] = {0, 1, 1, 0, 2, 0, 0, 3};
    pst_output L2 = cst(g, pst_shape_make(3, (int64_t[]){2, 2, 2}), lg);
    pst_node *ld = la_node(g, "LogMatrixDeterminant", 1, &L2, -1, -1);
    o = pst_test_run_out(g, ld, 0);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){-1, 1}), 0);
    pst_tensor_unref(o);
    o = pst_test_run_out(g, ld, 1);
    PST_ASSERT_TENSOR(o, 1, ((int64_t[]){2}), ((double[]){0, log(6.0)}), 1e-12);
    pst_tensor_unref(o);
    o = pst_test_run_out(g,
                         la_node(g, "MatrixSolve", 2,
                                 (pst_output[]){A, cst(g, pst_shape_2d(2, 1), (double[]){1, 2})}, 0,
                                 -1),
                         0);
    PST_ASSERT_TENSOR(o, 2, ((int64_t[]){2, 1}), ((double[]){-0.8, 0.6}), 1e-12);
    pst_tensor_unref(o);
    o = pst_test_run_out(g,
                         la_node(g, "Cholesky", 1,
                                 (pst_output[]){cst(g, pst_shape_2d(2, 2), (double[]){4, 2, 2, 3})},
                                 -1, -1),
                         0);
    PST_ASSERT_TENSOR(o, 2, d22, ((double[]){2, 0, 1, sqrt(2.0)}), 1e-12);
    pst_tensor_unref(o);
    pst_test_run_fails(g,
                       la_node(g, "Cholesky", 1,
                               (pst_output[]){cst(g, pst_shape_2d(2, 2), (double[]){1, 2, 2, 1})},
                               -1, -1),
                       "not successful");
    /* the upper triangle (99) is ignored for lower = true */
    pst_output T = cst(g, pst_shape_2d(2, 2), (double[]){2, 99, 1, 1}), rhs = cst(g, pst_shape_2d(2, 1), (double[]){2, 3});
    o = pst_test_run_out(g, la_node(g, "MatrixTriangularSolve", 2, (pst_output[]){T, rhs}, 0, 1),
                         0);
    PST_ASSERT_TENSOR(o, 2, ((int64_t[]){2, 1}), ((double[]){1, 2}), 1e-12);
    pst_tensor_unref(o);
    o = pst_test_run_out(g, la_node(g, "MatrixTriangularSolve", 2, (pst_output[]){T, rhs}, 1, 1),
                         0);
    PST_ASSERT_TENSOR(o, 2, ((int64_t[]){2, 1}), ((double[]){-0.5, 3}), 1e-12);
    pst_tensor_unref(o);
    pst_graph_free(g);

    /* gradients on well-conditioned batches of 3x3 matrices */
    for (int adj = 0; adj < 2; adj++) {
        const char *ops[5] = {"MatrixInverse", "MatrixDeterminant", "LogMatrixDeterminant", "MatrixSolve", "MatrixTriangularSolve"};
        for (int k = 0; k < 5; k++) {
            if (adj && (k == 1 || k == 2)) continue;
            g = pst_graph_new();
            pst_output in[2] = {pst_placeholder(g, "a", PST_DOUBLE, pst_shape_make(3, (int64_t[]){2, 3, 3})),
                                pst_placeholder(g, "b", PST_DOUBLE, pst_shape_make(3, (int64_t[]){2, 3, 2}))};
            pst_tensor *v[2] = {pst_test_rand(PST_DOUBLE, pst_shape_make(3, (int64_t[]){2, 3, 3}), 120 + k, -0.5, 0.5),
                                pst_test_rand(PST_DOUBLE, pst_shape_make(3, (int64_t[]){2, 3, 2}), 130 + k, -1, 1)};
            for (int q = 0; q < 2; q++)
                for (int i = 0; i < 3; i++) pst_tensor_f64(v[0])[q * 9 + i * 4] += 2; /* dominant diagonal */
            int ni = k >= 3 ? 2 : 1;
            pst_node *nd = la_node(g, ops[k], ni, in, k == 1 || k == 2 ? -1 : adj, k == 4 ? adj : -1);
            double err = pst_gradcheck(g, pst_out(nd, k == 2 ? 1 : 0), ni, in, v, 1e-6);
            ck_assert_msg(err < 1e-6, "%s (adjoint %d): gradient error %g", ops[k], adj, err);
            pst_tensor_unref(v[0]);
            pst_tensor_unref(v[1]);
            pst_graph_free(g);
        }
    }
    /* Cholesky's gradient (CholeskyGrad) through a symmetric A = X X^T + 3 I */
    g = pst_graph_new();
    pst_output X = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(3, 3));
    pst_output A3 = pst_add(g, pst_matmul(g, X, X, 0, 1, NULL),
                            cst(g, pst_shape_2d(3, 3), (double[]){3, 0, 0, 0, 3, 0, 0, 0, 3}), NULL);
    pst_node *ch = la_node(g, "Cholesky", 1, &A3, -1, -1);
    pst_tensor *xv = pst_test_rand(PST_DOUBLE, pst_shape_2d(3, 3), 140, -1, 1);
    double err = pst_gradcheck(g, pst_out(ch, 0), 1, &X, &xv, 1e-6);
    ck_assert_msg(err < 1e-6, "Cholesky: gradient error %g", err);
    pst_tensor_unref(xv);
    pst_graph_free(g);
}
END_TEST


/* MatrixDiagV2 family (TF 1.15's tf.linalg.diag / diag_part / set_diag), TF's documented band
 * example: k = (-1, 0), diagonals left aligned, the shorter one padded at its end. */
START_TEST(test_matrix_diag_v2) {
    const double diags[12] = {1, 2, 3, 4, 5, 0, 6, 7, 9, 9, 1, 0};
    const double mats[18] = {1, 0, 0, 4, 2, 0, 0, 5, 3, 6, 0, 0, 9, 7, 0, 0, 1, 9};
    const int64_t d233[3] = {2, 3, 3}, d223[3] = {2, 2, 3};
    pst_graph *g = pst_graph_new();
    pst_node_builder *b =
        pst_test_nb_consts(g, "MatrixDiagV2", 5,
                           (pst_tensor *[]){f64s(pst_shape_make(3, d223), diags),
                                            i32(2, (int32_t[]){-1, 0}), pst_tensor_scalar_i32(-1),
                                            pst_tensor_scalar_i32(-1), pst_tensor_scalar_f64(0)});
    pst_tensor *o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 3, d233, mats, 0);
    pst_tensor_unref(o);
    b = pst_test_nb_consts(g, "MatrixDiagPartV2", 3,
                           (pst_tensor *[]){f64s(pst_shape_make(3, d233), mats),
                                            i32(2, (int32_t[]){-1, 0}), pst_tensor_scalar_f64(0)});
    pst_node *nd = pst_test_finish(g, b);
    ck_assert_int_eq(nd->out_shapes[0].rank, 3);
    o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, 3, d223, diags, 0);
    pst_tensor_unref(o);
    b = pst_test_nb_consts(
        g, "MatrixSetDiagV2", 3,
        (pst_tensor *[]){pst_tensor_new_zeros(PST_DOUBLE, pst_shape_make(3, d233), NULL),
                         f64s(pst_shape_make(3, d223), diags), i32(2, (int32_t[]){-1, 0})});
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    PST_ASSERT_TENSOR(o, 3, d233, mats, 0);
    pst_tensor_unref(o);
    /* k = 1 alone, padding 9: a 5 x 5 result (TF's example, one batch) */
    b = pst_test_nb_consts(g, "MatrixDiagV2", 5,
                           (pst_tensor *[]){f64(4, (double[]){1, 2, 3, 4}),
                                            pst_tensor_scalar_i32(1), pst_tensor_scalar_i32(-1),
                                            pst_tensor_scalar_i32(-1), pst_tensor_scalar_f64(9)});
    o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    double want[25];
    for (int i = 0; i < 25; i++) want[i] = 9;
    want[1] = 1, want[7] = 2, want[13] = 3, want[19] = 4;
    PST_ASSERT_TENSOR(o, 2, ((int64_t[]){5, 5}), want, 0);
    pst_tensor_unref(o);
    /* diagonals out of the matrix */
    b = pst_test_nb_consts(g, "MatrixDiagPartV2", 3,
                           (pst_tensor *[]){f64s(pst_shape_make(3, d233), mats),
                                            pst_tensor_scalar_i32(3), pst_tensor_scalar_f64(0)});
    pst_test_run_fails(g, pst_test_finish(g, b), "out of bounds");
    pst_graph_free(g);
    /* gradients on a non-square band */
    pst_test_grad1("MatrixDiagPartV2",
                   pst_test_rand(PST_DOUBLE, pst_shape_make(3, (int64_t[]){2, 3, 4}), 150, -1, 1),
                   2, (pst_tensor *[]){i32(2, (int32_t[]){-1, 1}), pst_tensor_scalar_f64(0)}, NULL,
                   0);
    pst_test_grad1("MatrixDiagV2", pst_test_rand(PST_DOUBLE, pst_shape_make(3, d223), 151, -1, 1),
                   4,
                   (pst_tensor *[]){i32(2, (int32_t[]){-1, 0}), pst_tensor_scalar_i32(-1),
                                    pst_tensor_scalar_i32(-1), pst_tensor_scalar_f64(0)},
                   NULL, 0);
    g = pst_graph_new();
    pst_output in[2] = {pst_placeholder(g, "x", PST_DOUBLE, pst_shape_make(3, d233)), pst_placeholder(g, "d", PST_DOUBLE, pst_shape_make(3, d223))};
    b = pst_nb_new(g, "MatrixSetDiagV2", NULL);
    pst_nb_inputs(b, 3, (pst_output[]){in[0], in[1], pst_test_const(g, i32(2, (int32_t[]){-1, 0}), NULL)});
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    pst_output y = pst_nb_finish_out(b);
    pst_tensor *v[2] = {pst_test_rand(PST_DOUBLE, pst_shape_make(3, d233), 152, -1, 1), pst_test_rand(PST_DOUBLE, pst_shape_make(3, d223), 153, -1, 1)};
    double err = pst_gradcheck(g, y, 2, in, v, 1e-6);
    ck_assert_msg(err < 1e-6, "MatrixSetDiagV2: gradient error %g", err);
    pst_tensor_unref(v[0]);
    pst_tensor_unref(v[1]);
    pst_graph_free(g);
}
END_TEST


/* Cross, TF 1.0's TensorSummary and QueueIsClosed. */
START_TEST(test_cross_summary_queue) {
    const int64_t d23[2] = {2, 3};
    pst_test_check_op("Cross", 2,
                      (pst_tensor *[]){f64s(pst_shape_2d(2, 3), (double[]){1, 0, 0, 0, 1, 0}),
                                       f64s(pst_shape_2d(2, 3), (double[]){0, 1, 0, 0, 0, 1})},
                      2, d23, (double[]){0, 0, 1, 1, 0, 0});
    pst_test_check_op("Cross", 2,
                      (pst_tensor *[]){pst_tensor_from_i32(pst_shape_1d(3), (int32_t[]){1, 2, 3}),
                                       pst_tensor_from_i32(pst_shape_1d(3), (int32_t[]){4, 5, 6})},
                      1, (int64_t[]){3}, (double[]){-3, 6, -3});
    pst_tensor *v[2] = {pst_test_rand(PST_DOUBLE, pst_shape_2d(2, 3), 160, -1, 1), pst_test_rand(PST_DOUBLE, pst_shape_2d(2, 3), 161, -1, 1)};
    pst_test_grad_op("Cross", 2, v, NULL, 0);
    pst_tensor_unref(v[0]);
    pst_tensor_unref(v[1]);
    pst_test_build_fails("Cross", 2,
                         (pst_tensor *[]){f64(2, (double[]){1, 2}), f64(2, (double[]){1, 2})}, NULL,
                         0, "innermost dim of 3");
    /* TensorSummary: Value { node_name 7; tensor 8 } */
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "TensorSummary", "ts");
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i32(5), NULL));
    pst_nb_attr_type(b, "T", PST_INT32);
    pst_tensor *o = pst_test_run_out(g, pst_test_finish(g, b), 0);
    const uint8_t want[] = {0x0a, 0x10, 0x3a, 0x02, 't', 's', 0x42, 0x0a, 0x08, 0x03, 0x12, 0x00, 0x22, 0x04, 5, 0, 0, 0};
    ck_assert_int_eq(pst_tensor_str(o)[0].len, sizeof want);
    for (size_t i = 0; i < sizeof want; i++)
        ck_assert_msg((uint8_t)pst_tensor_str(o)[0].p[i] == want[i], "byte %zu is %02x, want %02x", i,
                      (uint8_t)pst_tensor_str(o)[0].p[i], want[i]);
    pst_tensor_unref(o);
    /* TF 0.x's ref-queue QueueIsClosed */
    b = pst_nb_new(g, "FIFOQueue", "q");
    pst_dtype t = PST_INT32;
    pst_nb_attr_list_type(b, "component_types", 1, &t);
    pst_output q = pst_out(pst_test_finish(g, b), 0);
    b = pst_nb_new(g, "QueueIsClosed", NULL);
    pst_nb_input(b, q);
    pst_output closed = pst_out(pst_test_finish(g, b), 0);
    b = pst_nb_new(g, "QueueClose", NULL);
    pst_nb_input(b, q);
    pst_node *close = pst_test_finish(g, b);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    o = pst_session_run1(s, closed, &st);
    ck_assert_msg(o != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_tensor_u8(o)[0], 0);
    pst_tensor_unref(o);
    ck_assert_msg(pst_session_run_target(s, close, &st) == 0, "%s", st.msg);
    o = pst_session_run1(s, closed, &st);
    ck_assert_int_eq(pst_tensor_u8(o)[0], 1);
    pst_tensor_unref(o);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST


/* GRUBlockCell (tf.contrib.rnn.GRUBlockCell): one step by TF's formulas; the gradient op and
 * function against finite differences of h. */
START_TEST(test_gru_block_cell) {
    pst_graph *g = pst_graph_new();
    pst_tensor *in[6] = {f64s(pst_shape_2d(1, 1), (double[]){1}), f64s(pst_shape_2d(1, 1), (double[]){0.5}),
                         f64s(pst_shape_2d(2, 2), (double[]){0.1, 0.2, 0.3, 0.4}), f64s(pst_shape_2d(2, 1), (double[]){0.5, 0.6}),
                         f64(2, (double[]){0.1, -0.1}), f64(1, (double[]){0.2})};
    pst_node *nd = pst_test_finish(g, pst_test_nb_consts(g, "GRUBlockCell", 6, in));
    double r = 1 / (1 + exp(-(0.1 + 0.5 * 0.3 + 0.1))), u = 1 / (1 + exp(-(0.2 + 0.5 * 0.4 - 0.1)));
    double c = tanh(0.5 + 0.5 * r * 0.6 + 0.2), h = u * 0.5 + (1 - u) * c;
    const double want[4] = {r, u, c, h};
    for (int k = 0; k < 4; k++) {
        pst_tensor *o = pst_test_run_out(g, nd, k);
        PST_ASSERT_TENSOR(o, 2, ((int64_t[]){1, 1}), &want[k], 1e-12);
        pst_tensor_unref(o);
    }
    pst_graph_free(g);
    g = pst_graph_new();
    pst_shape shapes[6] = {pst_shape_2d(2, 3), pst_shape_2d(2, 2), pst_shape_2d(5, 4), pst_shape_2d(5, 2), pst_shape_1d(4), pst_shape_1d(2)};
    pst_output ph[6];
    pst_tensor *v[6];
    for (int k = 0; k < 6; k++) {
        char nm[16];
        snprintf(nm, sizeof nm, "i%d", k);
        ph[k] = pst_placeholder(g, nm, PST_DOUBLE, shapes[k]);
        v[k] = pst_test_rand(PST_DOUBLE, shapes[k], 170 + k, -1, 1);
    }
    pst_node_builder *b = pst_nb_new(g, "GRUBlockCell", NULL);
    pst_nb_inputs(b, 6, ph);
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    nd = pst_test_finish(g, b);
    double err = pst_gradcheck(g, pst_out(nd, 3), 6, ph, v, 1e-6);
    ck_assert_msg(err < 1e-6, "GRUBlockCell: gradient error %g", err);
    for (int k = 0; k < 6; k++) pst_tensor_unref(v[k]);
    pst_graph_free(g);
    /* mismatched weights are an error naming the node */
    g = pst_graph_new();
    in[0] = f64s(pst_shape_2d(1, 1), (double[]){1}), in[1] = f64s(pst_shape_2d(1, 1), (double[]){0.5});
    in[2] = f64s(pst_shape_2d(2, 3), (double[]){0, 0, 0, 0, 0, 0}), in[3] = f64s(pst_shape_2d(2, 1), (double[]){0.5, 0.6});
    in[4] = f64(2, (double[]){0.1, -0.1}), in[5] = f64(1, (double[]){0.2});
    pst_test_run_fails(g, pst_test_finish(g, pst_test_nb_consts(g, "GRUBlockCell", 6, in)),
                       "w_ru must be");
    pst_graph_free(g);
}
END_TEST


/* 3-D convolution and pooling (NDHWC). */
static pst_node_builder *op3d(pst_graph *g, const char *op, int n, const pst_output *in, int k, const int64_t *strides,
                              const char *pad) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_inputs(b, n, in);
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    if (k) pst_nb_attr_list_i(b, "ksize", 5, (int64_t[]){1, k, k, k, 1});
    pst_nb_attr_list_i(b, "strides", 5, strides);
    pst_nb_attr_s(b, "padding", pad);
    return b;
}

START_TEST(test_conv3d_pool3d) {
    double x8[8], ones[8];
    for (int i = 0; i < 8; i++) x8[i] = i + 1, ones[i] = 1;
    const int64_t s1[5] = {1, 1, 1, 1, 1};
    pst_shape xs = pst_shape_make(5, (int64_t[]){1, 2, 2, 2, 1}), fs = pst_shape_make(5, (int64_t[]){2, 2, 2, 1, 1});
    pst_graph *g = pst_graph_new();
    pst_output in[2] = {cst(g, xs, x8), cst(g, fs, ones)};
    pst_tensor *o =
        pst_test_run_out(g, pst_test_finish(g, op3d(g, "Conv3D", 2, in, 0, s1, "VALID")), 0);
    PST_ASSERT_TENSOR(o, 5, ((int64_t[]){1, 1, 1, 1, 1}), ((double[]){36}), 1e-12);
    pst_tensor_unref(o);
    /* SAME: the padding goes at the end, so output (0,0,0) sees everything and (1,1,1) only x[7] */
    o = pst_test_run_out(g, pst_test_finish(g, op3d(g, "Conv3D", 2, in, 0, s1, "SAME")), 0);
    PST_ASSERT_TENSOR(o, 5, ((int64_t[]){1, 2, 2, 2, 1}), ((double[]){36, 20, 22, 12, 26, 14, 15, 8}), 1e-12);
    pst_tensor_unref(o);
    o = pst_test_run_out(g, pst_test_finish(g, op3d(g, "MaxPool3D", 1, in, 2, s1, "VALID")), 0);
    PST_ASSERT_TENSOR(o, 5, ((int64_t[]){1, 1, 1, 1, 1}), ((double[]){8}), 0);
    pst_tensor_unref(o);
    o = pst_test_run_out(g, pst_test_finish(g, op3d(g, "AvgPool3D", 1, in, 2, s1, "SAME")), 0);
    PST_ASSERT_TENSOR(o, 5, ((int64_t[]){1, 2, 2, 2, 1}), ((double[]){4.5, 5, 5.5, 6, 6.5, 7, 7.5, 8}), 1e-12);
    pst_tensor_unref(o);
    /* MaxPool3DGrad as TF's CPU kernel: every element within 1e-5 of the max gets the gradient */
    pst_output eq = cst(g, xs, ones);
    pst_output gi[3] = {eq, cst(g, pst_shape_make(5, (int64_t[]){1, 1, 1, 1, 1}), (double[]){1}),
                        cst(g, pst_shape_make(5, (int64_t[]){1, 1, 1, 1, 1}), (double[]){3})};
    o = pst_test_run_out(g, pst_test_finish(g, op3d(g, "MaxPool3DGrad", 3, gi, 2, s1, "VALID")), 0);
    PST_ASSERT_TENSOR(o, 5, ((int64_t[]){1, 2, 2, 2, 1}), ((double[]){3, 3, 3, 3, 3, 3, 3, 3}), 0);
    pst_tensor_unref(o);
    pst_graph_free(g);
    /* gradients: strided SAME and dilated VALID convolutions, max and average pooling */
    for (int k = 0; k < 4; k++) {
        g = pst_graph_new();
        pst_shape xsh = pst_shape_make(5, (int64_t[]){1, 3, 4, 3, 2}), fsh = pst_shape_make(5, (int64_t[]){2, 2, 2, 2, 3});
        pst_output ph[2] = {pst_placeholder(g, "x", PST_DOUBLE, xsh), pst_placeholder(g, "f", PST_DOUBLE, fsh)};
        pst_tensor *v[2] = {pst_test_rand(PST_DOUBLE, xsh, 180 + k, -1, 1), pst_test_rand(PST_DOUBLE, fsh, 190 + k, -1, 1)};
        pst_node_builder *b;
        if (k == 0) {
            b = op3d(g, "Conv3D", 2, ph, 0, (int64_t[]){1, 1, 2, 1, 1}, "SAME");
        } else if (k == 1) {
            b = op3d(g, "Conv3D", 2, ph, 0, s1, "VALID");
            pst_nb_attr_list_i(b, "dilations", 5, (int64_t[]){1, 2, 1, 1, 1});
        } else {
            b = op3d(g, k == 2 ? "MaxPool3D" : "AvgPool3D", 1, ph, 2, (int64_t[]){1, 1, 2, 1, 1}, "SAME");
        }
        pst_output y = pst_nb_finish_out(b);
        ck_assert_msg(y.node != NULL, "%s", pst_graph_status(g)->msg);
        double err = pst_gradcheck(g, y, k < 2 ? 2 : 1, ph, v, 1e-6);
        ck_assert_msg(err < 1e-6, "3-D case %d: gradient error %g", k, err);
        pst_tensor_unref(v[0]);
        pst_tensor_unref(v[1]);
        pst_graph_free(g);
    }
}
END_TEST


/* Qr (tf.orthogonal_initializer, Keras' recurrent kernels): Eigen's reflector signs,
 * reconstruction, orthogonality, full_matrices, and TF's gradient (M >= N). */
START_TEST(test_qr) {
    pst_graph *g = pst_graph_new();
    pst_output a = cst(g, pst_shape_2d(2, 2), (double[]){3, 1, 4, 2});
    pst_node_builder *b = pst_nb_new(g, "Qr", NULL);
    pst_nb_input(b, a);
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    pst_node *nd = pst_test_finish(g, b);
    pst_tensor *q = pst_test_run_out(g, nd, 0), *r = pst_test_run_out(g, nd, 1);
    PST_ASSERT_TENSOR(q, 2, ((int64_t[]){2, 2}), ((double[]){-0.6, -0.8, -0.8, 0.6}), 1e-12);
    PST_ASSERT_TENSOR(r, 2, ((int64_t[]){2, 2}), ((double[]){-5, -2.2, 0, 0.4}), 1e-12);
    pst_tensor_unref(q);
    pst_tensor_unref(r);
    pst_graph_free(g);
    /* Q^T Q = I and Q R = A for tall, wide and full forms */
    const int64_t shapes[3][2] = {{4, 3}, {3, 4}, {4, 3}};
    for (int k = 0; k < 3; k++) {
        int64_t M = shapes[k][0], N = shapes[k][1];
        g = pst_graph_new();
        pst_tensor *av = pst_test_rand(PST_DOUBLE, pst_shape_2d(M, N), 200 + k, -1, 1);
        pst_tensor_ref(av);
        b = pst_nb_new(g, "Qr", NULL);
        pst_nb_input(b, pst_test_const(g, av, NULL));
        pst_nb_attr_type(b, "T", PST_DOUBLE);
        pst_nb_attr_b(b, "full_matrices", k == 2);
        nd = pst_test_finish(g, b);
        q = pst_test_run_out(g, nd, 0), r = pst_test_run_out(g, nd, 1);
        int64_t qc = q->shape.dims[1];
        ck_assert_int_eq(qc, k == 2 ? M : (M < N ? M : N));
        for (int64_t i = 0; i < qc; i++)
            for (int64_t j = 0; j < qc; j++) {
                double d = 0;
                for (int64_t t = 0; t < M; t++) d += pst_tensor_f64(q)[t * qc + i] * pst_tensor_f64(q)[t * qc + j];
                ck_assert_msg(fabs(d - (i == j)) < 1e-12, "Q^T Q [%lld,%lld] = %g", (long long)i, (long long)j, d);
            }
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double d = 0;
                for (int64_t t = 0; t < qc; t++) d += pst_tensor_f64(q)[i * qc + t] * pst_tensor_f64(r)[t * N + j];
                ck_assert(fabs(d - pst_tensor_f64(av)[i * N + j]) < 1e-12);
                if (j < i && i < r->shape.dims[0]) ck_assert(pst_tensor_f64(r)[i * N + j] == 0);
            }
        pst_tensor_unref(q);
        pst_tensor_unref(r);
        pst_tensor_unref(av);
        pst_graph_free(g);
    }
    /* gradients of q and of r (4 x 3) */
    for (int out = 0; out < 2; out++) {
        g = pst_graph_new();
        pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(4, 3));
        b = pst_nb_new(g, "Qr", NULL);
        pst_nb_input(b, x);
        pst_nb_attr_type(b, "T", PST_DOUBLE);
        nd = pst_test_finish(g, b);
        pst_tensor *v = pst_test_rand(PST_DOUBLE, pst_shape_2d(4, 3), 210 + out, -1, 1);
        double err = pst_gradcheck(g, pst_out(nd, out), 1, &x, &v, 1e-6);
        ck_assert_msg(err < 1e-6, "Qr output %d: gradient error %g", out, err);
        pst_tensor_unref(v);
        pst_graph_free(g);
    }
}
END_TEST


/* SparseTensorDenseMatMul (tf.sparse_tensor_dense_matmul, GCNs), with adjoints and gradients. */
START_TEST(test_sparse_dense_matmul) {
    /* A = [[1, 0, 2], [0, 3, 0]] (2 x 3) with a repeated entry (0, 2) given as 1.5 + 0.5 */
    const int64_t idx[8] = {0, 0, 0, 2, 1, 1, 0, 2};
    const double vals[4] = {1, 1.5, 3, 0.5};
    const double bv[6] = {1, 2, 3, 4, 5, 6}; /* B 3 x 2 */
    for (int mode = 0; mode < 2; mode++) {
        pst_graph *g = pst_graph_new();
        pst_node_builder *b = pst_nb_new(g, "SparseTensorDenseMatMul", NULL);
        pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_2d(4, 2), idx), NULL));
        pst_nb_input(b, pst_test_const(g, f64(4, vals), NULL));
        pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){2, 3}), NULL));
        /* mode 1: B given transposed (2 x 3) with adjoint_b */
        pst_nb_input(b, mode ? cst(g, pst_shape_2d(2, 3), (double[]){1, 3, 5, 2, 4, 6}) : cst(g, pst_shape_2d(3, 2), bv));
        pst_nb_attr_type(b, "T", PST_DOUBLE);
        pst_nb_attr_type(b, "Tindices", PST_INT64);
        pst_nb_attr_b(b, "adjoint_b", mode);
        pst_tensor *o = pst_test_run_out(g, pst_test_finish(g, b), 0);
        PST_ASSERT_TENSOR(o, 2, ((int64_t[]){2, 2}), ((double[]){11, 14, 9, 12}), 1e-12);
        pst_tensor_unref(o);
        pst_graph_free(g);
    }
    /* an index outside a_shape */
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "SparseTensorDenseMatMul", NULL);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_2d(1, 2), (int64_t[]){2, 0}), NULL));
    pst_nb_input(b, pst_test_const(g, f64(1, (double[]){1}), NULL));
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){2, 3}), NULL));
    pst_nb_input(b, cst(g, pst_shape_2d(3, 2), bv));
    pst_nb_attr_type(b, "T", PST_DOUBLE);
    pst_test_run_fails(g, pst_test_finish(g, b), "outside a_shape");
    pst_graph_free(g);
    /* gradients for a_values and b, each adjoint combination */
    for (int adj = 0; adj < 4; adj++) {
        g = pst_graph_new();
        int aa = adj & 1, ab = adj >> 1;
        pst_output v = pst_placeholder(g, "v", PST_DOUBLE, pst_shape_1d(4));
        pst_shape bs = ab ? pst_shape_2d(2, aa ? 2 : 3) : pst_shape_2d(aa ? 2 : 3, 2);
        pst_output bb = pst_placeholder(g, "b", PST_DOUBLE, bs);
        b = pst_nb_new(g, "SparseTensorDenseMatMul", NULL);
        pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_2d(4, 2), idx), NULL));
        pst_nb_input(b, v);
        pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){2, 3}), NULL));
        pst_nb_input(b, bb);
        pst_nb_attr_type(b, "T", PST_DOUBLE);
        pst_nb_attr_b(b, "adjoint_a", aa);
        pst_nb_attr_b(b, "adjoint_b", ab);
        pst_output y = pst_nb_finish_out(b);
        ck_assert_msg(y.node != NULL, "%s", pst_graph_status(g)->msg);
        pst_tensor *vals2[2] = {pst_test_rand(PST_DOUBLE, pst_shape_1d(4), 220 + adj, -1, 1), pst_test_rand(PST_DOUBLE, bs, 230 + adj, -1, 1)};
        double err = pst_gradcheck(g, y, 2, (pst_output[]){v, bb}, vals2, 1e-6);
        ck_assert_msg(err < 1e-6, "SparseTensorDenseMatMul (adjoints %d %d): gradient error %g", aa, ab, err);
        pst_tensor_unref(vals2[0]);
        pst_tensor_unref(vals2[1]);
        pst_graph_free(g);
    }
}
END_TEST

int main(void) {
    pst_ops_init();
    Suite *s = suite_create("ops_tf_more");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_xdivy_xlogy_mulnonan);
    tcase_add_test(tc, test_truncate_mod);
    tcase_add_test(tc, test_erfc_and_inverse_hyperbolic);
    tcase_add_test(tc, test_bitwise);
    tcase_add_test(tc, test_approximate_equal);
    tcase_add_test(tc, test_cumprod);
    tcase_add_test(tc, test_max_pool_with_argmax);
    tcase_add_test(tc, test_max_pool_v2_and_grad_grad);
    tcase_add_test(tc, test_pool_grad_gradients);
    tcase_add_test(tc, test_roll_reverse);
    tcase_add_test(tc, test_depth_space);
    tcase_add_test(tc, test_diag_ops);
    tcase_add_test(tc, test_unique_forms);
    tcase_add_test(tc, test_inplace_unravel_bounds);
    tcase_add_test(tc, test_bincount_histogram_nth);
    tcase_add_test(tc, test_sorted_segments);
    tcase_add_test(tc, test_unsorted_segments);
    tcase_add_test(tc, test_row_scatters);
    tcase_add_test(tc, test_nd_scatters);
    tcase_add_test(tc, test_strided_slice_assign);
    tcase_add_test(tc, test_apply_ops_more);
    tcase_add_test(tc, test_batch_norm_global);
    tcase_add_test(tc, test_tensor_array_split_concat);
    tcase_add_test(tc, test_resize_bicubic_area);
    tcase_add_test(tc, test_dilation_random_crop);
    tcase_add_test(tc, test_color_ops);
    tcase_add_test(tc, test_candidate_samplers);
    tcase_add_test(tc, test_tensor_summary);
    tcase_add_test(tc, test_special_functions);
    tcase_add_test(tc, test_extract_image_patches);
    tcase_add_test(tc, test_linalg);
    tcase_add_test(tc, test_matrix_diag_v2);
    tcase_add_test(tc, test_cross_summary_queue);
    tcase_add_test(tc, test_gru_block_cell);
    tcase_add_test(tc, test_conv3d_pool3d);
    tcase_add_test(tc, test_qr);
    tcase_add_test(tc, test_sparse_dense_matmul);
    tcase_add_test(tc, test_einsum);
    tcase_add_test(tc, test_einsum_grad);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
