/* Array, image and sampling ops of TF 1.x graphs (ops_array_more.c, Multinomial in
 * ops_random.c): values worked out by hand, gradients by finite differences. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "testutil.h"

static pst_node *mk(pst_graph *g, const char *op, int n, const pst_output *in) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_inputs(b, n, in);
    pst_node *x = pst_nb_finish(b);
    ck_assert_msg(x != NULL, "%s: %s", op, pst_graph_status(g)->msg);
    return x;
}

static pst_tensor *dvals(pst_shape s, const double *v) {
    pst_tensor *t = pst_tensor_new(PST_DOUBLE, s, NULL);
    memcpy(t->data, v, (size_t)t->n * sizeof *v);
    return t;
}

/* Runs y with x fed v, checks y's values, then d y / d x by finite differences. */
static void check(pst_graph *g, pst_output x, pst_tensor *v, pst_output y, int rank,
                  const int64_t *dims, const double *want, int grad) {
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_feed f = {x, v};
    pst_tensor *o = pst_test_run(s, y, 1, &f);
    PST_ASSERT_TENSOR(o, rank, dims, want, 1e-9);
    pst_tensor_unref(o);
    pst_session_free(s);
    if (grad) {
        double err = pst_gradcheck(g, y, 1, &x, &v, 1e-6);
        ck_assert_msg(err < 1e-6, "%s: gradient error %g", y.node->op->name, err);
    }
}

START_TEST(test_cumsum_reverse_splitv) {
    const double v6[6] = {1, 2, 3, 4, 5, 6};
    int64_t d23[] = {2, 3};
    for (int mode = 0; mode < 3; mode++) {
        pst_graph *g = pst_graph_new();
        pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(2, 3));
        pst_output in[2] = {x, pst_const_i32(g, 1, NULL)};
        pst_node_builder *b = pst_nb_new(g, "Cumsum", NULL);
        pst_nb_inputs(b, 2, in);
        pst_nb_attr_b(b, "exclusive", mode == 1);
        pst_nb_attr_b(b, "reverse", mode == 2);
        pst_output y = pst_nb_finish_out(b);
        const double want[3][6] = {{1, 3, 6, 4, 9, 15}, {0, 1, 3, 0, 4, 9}, {6, 5, 3, 15, 11, 6}};
        pst_tensor *v = dvals(pst_shape_2d(2, 3), v6);
        check(g, x, v, y, 2, d23, want[mode], 1);
        pst_tensor_unref(v);
        pst_graph_free(g);
    }
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(2, 3));
    pst_output in[2] = {x, pst_const_i32_vec(g, 1, (const int32_t[]){-1}, NULL)};
    pst_output y = pst_out(mk(g, "ReverseV2", 2, in), 0);
    pst_tensor *v = dvals(pst_shape_2d(2, 3), v6);
    check(g, x, v, y, 2, d23, (const double[]){3, 2, 1, 6, 5, 4}, 1);
    pst_tensor_unref(v);
    pst_graph_free(g);

    g = pst_graph_new();
    x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(2, 3));
    pst_output sin[3] = {x, pst_const_i32_vec(g, 2, (const int32_t[]){1, -1}, NULL), pst_const_i32(g, 1, NULL)};
    pst_node_builder *b = pst_nb_new(g, "SplitV", NULL);
    pst_nb_inputs(b, 3, sin);
    pst_nb_attr_i(b, "num_split", 2);
    pst_node *sp = pst_nb_finish(b);
    ck_assert_int_eq(pst_output_shape(pst_out(sp, 1)).dims[1], 2);
    v = dvals(pst_shape_2d(2, 3), v6);
    int64_t d22[] = {2, 2};
    check(g, x, v, pst_out(sp, 1), 2, d22, (const double[]){2, 3, 5, 6}, 1);
    pst_tensor_unref(v);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_gather_scatter_nd) {
    const double p6[6] = {1, 2, 3, 4, 5, 6};
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(3, 2));
    pst_output in[2] = {x, pst_const_i32_vec(g, 2, (const int32_t[]){2, 0}, NULL)};
    pst_node_builder *b = pst_nb_new(g, "Reshape", NULL);
    pst_nb_input(b, in[1]);
    pst_nb_input(b, pst_const_i32_vec(g, 2, (const int32_t[]){2, 1}, NULL));
    in[1] = pst_nb_finish_out(b); /* [[2], [0]]: rows */
    pst_output rows = pst_out(mk(g, "GatherNd", 2, in), 0);
    pst_tensor *v = dvals(pst_shape_2d(3, 2), p6);
    int64_t d22[] = {2, 2}, d1[] = {1};
    check(g, x, v, rows, 2, d22, (const double[]){5, 6, 1, 2}, 1);
    pst_output in2[2] = {x, pst_const_i32_vec(g, 2, (const int32_t[]){1, 1}, NULL)};
    b = pst_nb_new(g, "Reshape", NULL);
    pst_nb_input(b, in2[1]);
    pst_nb_input(b, pst_const_i32_vec(g, 2, (const int32_t[]){1, 2}, NULL));
    in2[1] = pst_nb_finish_out(b); /* [[1, 1]]: one element */
    check(g, x, v, pst_out(mk(g, "GatherNd", 2, in2), 0), 1, d1, (const double[]){4}, 1);
    pst_tensor_unref(v);
    pst_graph_free(g);

    /* ScatterNd sums duplicate indices. */
    g = pst_graph_new();
    pst_output u = pst_placeholder(g, "u", PST_DOUBLE, pst_shape_2d(2, 2));
    b = pst_nb_new(g, "Reshape", NULL);
    pst_nb_input(b, pst_const_i32_vec(g, 2, (const int32_t[]){1, 1}, NULL));
    pst_nb_input(b, pst_const_i32_vec(g, 2, (const int32_t[]){2, 1}, NULL));
    pst_output sin[3] = {pst_nb_finish_out(b), u, pst_const_i32_vec(g, 2, (const int32_t[]){3, 2}, NULL)};
    pst_output y = pst_out(mk(g, "ScatterNd", 3, sin), 0);
    v = dvals(pst_shape_2d(2, 2), (const double[]){1, 2, 3, 4});
    int64_t d32[] = {3, 2};
    check(g, u, v, y, 2, d32, (const double[]){0, 0, 4, 6, 0, 0}, 1);
    pst_tensor_unref(v);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_select_v2_broadcast_to_is_topk) {
    pst_graph *g = pst_graph_new();
    pst_output t = pst_placeholder(g, "t", PST_DOUBLE, pst_shape_2d(2, 3));
    pst_tensor *ct = pst_tensor_new(PST_BOOL, pst_shape_2d(2, 1), NULL);
    pst_tensor_u8(ct)[0] = 1, pst_tensor_u8(ct)[1] = 0;
    pst_output in[3] = {pst_const(g, ct, NULL), t, pst_const_scalar(g, PST_DOUBLE, -1, NULL)};
    pst_tensor_unref(ct);
    pst_output y = pst_out(mk(g, "SelectV2", 3, in), 0);
    pst_tensor *v = dvals(pst_shape_2d(2, 3), (const double[]){1, 2, 3, 4, 5, 6});
    int64_t d23[] = {2, 3}, d3[] = {3};
    check(g, t, v, y, 2, d23, (const double[]){1, 2, 3, -1, -1, -1}, 1);
    pst_tensor_unref(v);
    pst_graph_free(g);

    g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_1d(3));
    pst_output bin[2] = {x, pst_const_i32_vec(g, 2, (const int32_t[]){2, 3}, NULL)};
    y = pst_out(mk(g, "BroadcastTo", 2, bin), 0);
    v = dvals(pst_shape_1d(3), (const double[]){7, 8, 9});
    check(g, x, v, y, 2, d23, (const double[]){7, 8, 9, 7, 8, 9}, 1);
    pst_tensor_unref(v);
    pst_graph_free(g);

    g = pst_graph_new();
    x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_1d(3));
    v = dvals(pst_shape_1d(3), (const double[]){NAN, INFINITY, 1});
    const char *is[] = {"IsNan", "IsInf", "IsFinite"};
    const double want[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
    for (int k = 0; k < 3; k++) check(g, x, v, pst_out(mk(g, is[k], 1, &x), 0), 1, d3, want[k], 0);
    pst_tensor_unref(v);
    pst_output kin[2] = {x, pst_const_i32(g, 2, NULL)};
    pst_node *tk = mk(g, "TopKV2", 2, kin);
    v = dvals(pst_shape_1d(3), (const double[]){5, 9, 5});
    int64_t d2[] = {2};
    check(g, x, v, pst_out(tk, 0), 1, d2, (const double[]){9, 5}, 0);
    check(g, x, v, pst_out(tk, 1), 1, d2, (const double[]){1, 0}, 0);
    pst_tensor_unref(v);
    pst_graph_free(g);
}
END_TEST

/* 2x2 -> 4x4 (TF's default coordinates: source = 0.5 x, clamped). */
START_TEST(test_resize_and_gradients) {
    const char *ops[] = {"ResizeNearestNeighbor", "ResizeBilinear"};
    const double want[2][16] = {{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4},
                                {1, 1.5, 2, 2, 2, 2.5, 3, 3, 3, 3.5, 4, 4, 3, 3.5, 4, 4}};
    for (int k = 0; k < 2; k++) {
        pst_graph *g = pst_graph_new();
        pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_4d(1, 2, 2, 1));
        pst_output in[2] = {x, pst_const_i32_vec(g, 2, (const int32_t[]){4, 4}, NULL)};
        pst_node_builder *b = pst_nb_new(g, ops[k], NULL);
        pst_nb_inputs(b, 2, in);
        pst_nb_attr_type(b, "T", PST_DOUBLE);
        pst_output y = pst_nb_finish_out(b);
        ck_assert_msg(y.node != NULL, "%s", pst_graph_status(g)->msg);
        if (k == 1) y = pst_cast(g, y, PST_DOUBLE, NULL); /* ResizeBilinear gives float32 */
        pst_tensor *v = dvals(pst_shape_4d(1, 2, 2, 1), (const double[]){1, 2, 3, 4});
        int64_t d[] = {1, 4, 4, 1};
        check(g, x, v, y, 4, d, want[k], k == 0);
        pst_tensor_unref(v);
        pst_graph_free(g);
    }
    /* The bilinear gradient in float: each input pixel gets its interpolation weights' sum. */
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_4d(1, 2, 2, 1));
    pst_output in[2] = {x, pst_const_i32_vec(g, 2, (const int32_t[]){4, 4}, NULL)};
    pst_output y = pst_out(mk(g, "ResizeBilinear", 2, in), 0);
    pst_output loss = pst_reduce_sum(g, y, 0, NULL, 0, NULL), dx;
    pst_status st = {0};
    ck_assert(pst_gradients(g, 1, &loss, NULL, 1, &x, &dx, NULL, &st) == 0);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *v = pst_tensor_from_f32(pst_shape_4d(1, 2, 2, 1), (const float[]){1, 2, 3, 4});
    pst_feed f = {x, v};
    pst_tensor *o = pst_test_run(s, dx, 1, &f);
    /* per axis the 4 outputs weigh source 0 by 1 + 0.5 and source 1 by 0.5 + 1 + 1 */
    int64_t d[] = {1, 2, 2, 1};
    PST_ASSERT_TENSOR(o, 4, d, ((const double[]){1.5 * 1.5, 1.5 * 2.5, 2.5 * 1.5, 2.5 * 2.5}), 1e-6);
    pst_tensor_unref(o);
    pst_tensor_unref(v);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* Multinomial: a row whose logits leave one class possible always draws it. */
START_TEST(test_multinomial) {
    pst_graph *g = pst_graph_new();
    float lv[6] = {0, -1e30f, -1e30f, -1e30f, -1e30f, 5};
    pst_output in[2] = {pst_const_f32_tensor(g, pst_shape_2d(2, 3), lv, NULL), pst_const_i32(g, 50, NULL)};
    pst_node_builder *b = pst_nb_new(g, "Multinomial", NULL);
    pst_nb_inputs(b, 2, in);
    pst_nb_attr_i(b, "seed", 7);
    pst_output y = pst_nb_finish_out(b);
    ck_assert_int_eq(pst_output_dtype(y), PST_INT64);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *o = pst_test_run(s, y, 0, NULL);
    ck_assert_int_eq(o->shape.dims[0], 2);
    ck_assert_int_eq(o->shape.dims[1], 50);
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(pst_tensor_i64(o)[i], 0);
        ck_assert_int_eq(pst_tensor_i64(o)[50 + i], 2);
    }
    pst_tensor_unref(o);
    pst_session_free(s);
    pst_graph_free(g);
    /* Two equal logits: both classes come up, about half each. */
    g = pst_graph_new();
    float ev[2] = {1, 1};
    pst_output in2[2] = {pst_const_f32_tensor(g, pst_shape_2d(1, 2), ev, NULL), pst_const_i32(g, 2000, NULL)};
    y = pst_out(mk(g, "Multinomial", 2, in2), 0);
    s = pst_session_new(g, NULL, &st);
    o = pst_test_run(s, y, 0, NULL);
    int ones = 0;
    for (int i = 0; i < 2000; i++) ones += pst_tensor_i64(o)[i] == 1;
    ck_assert_msg(ones > 850 && ones < 1150, "%d of 2000 draws were class 1", ones);
    pst_tensor_unref(o);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* PadV2 (constant), MirrorPad REFLECT/SYMMETRIC and their gradient (MirrorPadGrad), TF 0.x's
 * TileGrad, SparseToDense, Snapshot and IdentityN. */
START_TEST(test_pads_tile_grad_sparse_to_dense) {
    const double v3[3] = {1, 2, 3};
    int64_t d7[] = {7};
    const double want[3][7] = {{9, 9, 1, 2, 3, 9, 9}, {3, 2, 1, 2, 3, 2, 1}, {2, 1, 1, 2, 3, 3, 2}};
    for (int k = 0; k < 3; k++) {
        pst_graph *g = pst_graph_new();
        pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_1d(3));
        pst_tensor *pt = pst_tensor_from_i32(pst_shape_2d(1, 2), (const int32_t[]){2, 2});
        pst_output pads = pst_const(g, pt, NULL);
        pst_tensor_unref(pt);
        pst_output in[3] = {x, pads, pst_const_scalar(g, PST_DOUBLE, 9, NULL)};
        pst_node_builder *b = pst_nb_new(g, k ? "MirrorPad" : "PadV2", NULL);
        pst_nb_inputs(b, k ? 2 : 3, in);
        if (k) pst_nb_attr_s(b, "mode", k == 1 ? "REFLECT" : "SYMMETRIC");
        pst_output y = pst_nb_finish_out(b);
        ck_assert_msg(y.node != NULL, "%s", pst_graph_status(g)->msg);
        pst_tensor *v = dvals(pst_shape_1d(3), v3);
        check(g, x, v, y, 1, d7, want[k], 1);
        pst_tensor_unref(v);
        pst_graph_free(g);
    }
    pst_graph *g = pst_graph_new();
    pst_output dy = pst_placeholder(g, "dy", PST_DOUBLE, pst_shape_2d(2, 4));
    pst_output tin[2] = {dy, pst_const_i32_vec(g, 2, (const int32_t[]){1, 2}, NULL)};
    pst_tensor *v = dvals(pst_shape_2d(2, 4), (const double[]){1, 2, 3, 4, 5, 6, 7, 8});
    int64_t d22[] = {2, 2};
    check(g, dy, v, pst_out(mk(g, "TileGrad", 2, tin), 0), 2, d22, (const double[]){4, 6, 12, 14}, 0);
    pst_tensor_unref(v);
    /* SparseToDense: [[0, 1], [2, 0]] of a [3, 2] shape, the rest -1. */
    pst_output idx = pst_reshape(g, pst_const_i32_vec(g, 4, (const int32_t[]){0, 1, 2, 0}, NULL), 2,
                                 (const int64_t[]){2, 2}, NULL);
    pst_output sin[4] = {idx, pst_const_i32_vec(g, 2, (const int32_t[]){3, 2}, NULL),
                         pst_const_i32_vec(g, 2, (const int32_t[]){5, 6}, NULL), pst_const_i32(g, -1, NULL)};
    pst_output sd = pst_out(mk(g, "SparseToDense", 4, sin), 0);
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_1d(3));
    pst_node *idn = mk(g, "IdentityN", 2, (pst_output[]){x, sd});
    pst_output snap = pst_out(mk(g, "Snapshot", 1, &x), 0);
    v = dvals(pst_shape_1d(3), v3);
    int64_t d32[] = {3, 2}, d3[] = {3};
    check(g, x, v, pst_out(idn, 1), 2, d32, (const double[]){-1, 5, -1, -1, 6, -1}, 0);
    check(g, x, v, pst_out(idn, 0), 1, d3, v3, 1);
    check(g, x, v, snap, 1, d3, v3, 1);
    pst_tensor_unref(v);
    pst_graph_free(g);
}
END_TEST

/* StringFormat + PrintV2 (tf.print), EnsureShape, Empty, AccumulateNV2, BroadcastArgs,
 * MatrixBandPart. */
START_TEST(test_format_ensure_accumulate_band) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(3, 3));
    pst_node_builder *b = pst_nb_new(g, "StringFormat", NULL);
    pst_nb_input(b, pst_const_i32_vec(g, 2, (const int32_t[]){4, 5}, NULL));
    pst_nb_attr_s(b, "template", "loss {} at {}");
    pst_nb_attr_s(b, "placeholder", "{}");
    pst_nb_input(b, pst_const_scalar(g, PST_DOUBLE, 2.5, NULL));
    pst_node *fmt = pst_nb_finish(b);
    ck_assert_msg(fmt != NULL, "%s", pst_graph_status(g)->msg);
    b = pst_nb_new(g, "PrintV2", NULL);
    pst_nb_input(b, pst_out(fmt, 0));
    pst_node *pr = pst_nb_finish(b);
    pst_output lohi[3] = {x, pst_const_i32(g, 0, NULL), pst_const_i32(g, 1, NULL)};
    pst_output band = pst_out(mk(g, "MatrixBandPart", 3, lohi), 0);
    pst_output acc_in[3] = {x, x, band};
    pst_output acc = pst_out(mk(g, "AccumulateNV2", 3, acc_in), 0);
    pst_output ba_in[2] = {pst_const_i32_vec(g, 2, (const int32_t[]){2, 1}, NULL),
                           pst_const_i32_vec(g, 3, (const int32_t[]){4, 1, 3}, NULL)};
    pst_output bargs = pst_out(mk(g, "BroadcastArgs", 2, ba_in), 0);
    b = pst_nb_new(g, "EnsureShape", NULL);
    pst_nb_input(b, x);
    pst_nb_attr_shape(b, "shape", pst_shape_2d(-1, 3));
    pst_output ens = pst_nb_finish_out(b);
    b = pst_nb_new(g, "Empty", NULL);
    pst_nb_input(b, pst_const_i32_vec(g, 2, (const int32_t[]){2, 2}, NULL));
    pst_nb_attr_type(b, "dtype", PST_FLOAT);
    pst_output empty = pst_nb_finish_out(b);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *v = pst_test_rand(PST_DOUBLE, pst_shape_2d(3, 3), 31, -1, 1);
    pst_feed f = {x, v};
    pst_output fetch[5] = {pst_out(fmt, 0), band, bargs, ens, empty};
    pst_tensor *o[5];
    ck_assert_msg(pst_session_run(s, &f, 1, fetch, 5, &pr, 1, o, &st) == 0, "%s", st.msg);
    ck_assert_str_eq(pst_tensor_str(o[0])[0].p, "loss [4 5] at [2.5]");
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            ck_assert(pst_tensor_f64(o[1])[i * 3 + j] == (j - i >= 0 && j - i <= 1 ? pst_tensor_f64(v)[i * 3 + j] : 0));
    int64_t d3[] = {3}, d22[] = {2, 2};
    PST_ASSERT_TENSOR(o[2], 1, d3, ((const double[]){4, 2, 3}), 0);
    ck_assert_int_eq(memcmp(o[3]->data, v->data, v->nbytes), 0);
    PST_ASSERT_TENSOR(o[4], 2, d22, ((const double[]){0, 0, 0, 0}), 0);
    for (int i = 0; i < 5; i++) pst_tensor_unref(o[i]);
    pst_session_free(s);
    double err = pst_gradcheck(g, acc, 1, &x, &v, 1e-6);
    ck_assert_msg(err < 1e-6, "AccumulateNV2/MatrixBandPart gradient error %g", err);
    pst_tensor_unref(v);
    /* A value of another shape is an error naming both shapes. */
    pst_output y = pst_placeholder(g, "y", PST_DOUBLE, pst_shape_unknown());
    b = pst_nb_new(g, "EnsureShape", NULL);
    pst_nb_input(b, y);
    pst_nb_attr_shape(b, "shape", pst_shape_2d(-1, 3));
    pst_output e2 = pst_nb_finish_out(b);
    s = pst_session_new(g, NULL, &st);
    v = pst_test_rand(PST_DOUBLE, pst_shape_2d(3, 2), 32, -1, 1);
    pst_feed f2 = {y, v};
    pst_tensor *t;
    ck_assert_int_eq(pst_session_run(s, &f2, 1, &e2, 1, NULL, 0, &t, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "[3,2]") && strstr(st.msg, "[?,3]"), "%s", st.msg);
    pst_tensor_unref(v);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* SpaceToBatchND / BatchToSpaceND (each the other's inverse and gradient), ClipByValue,
 * LinSpace, TF 0.x's TopK. */
START_TEST(test_space_to_batch_clip_linspace) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_4d(1, 2, 4, 1));
    pst_tensor *pt = pst_tensor_from_i32(pst_shape_2d(2, 2), (const int32_t[]){1, 1, 0, 0});
    pst_output blk = pst_const_i32_vec(g, 2, (const int32_t[]){2, 2}, NULL), pads = pst_const(g, pt, NULL);
    pst_tensor_unref(pt);
    pst_output in[3] = {x, blk, pads};
    pst_output sb = pst_out(mk(g, "SpaceToBatchND", 3, in), 0);
    ck_assert_int_eq(pst_output_shape(sb).dims[0], 4);
    pst_output back_in[3] = {sb, blk, pads};
    pst_output back = pst_out(mk(g, "BatchToSpaceND", 3, back_in), 0);
    pst_tensor *v = dvals(pst_shape_4d(1, 2, 4, 1), (const double[]){1, 2, 3, 4, 5, 6, 7, 8});
    /* padded rows: 0 | 1 2 3 4 | 5 6 7 8 | 0; block offset (o1, o2) takes rows o1, o1+2 and
     * columns o2, o2+2 */
    int64_t ds[] = {4, 2, 2, 1}, dx[] = {1, 2, 4, 1};
    check(g, x, v, sb, 4, ds, (const double[]){0, 0, 5, 7, 0, 0, 6, 8, 1, 3, 0, 0, 2, 4, 0, 0}, 1);
    check(g, x, v, back, 4, dx, (const double[]){1, 2, 3, 4, 5, 6, 7, 8}, 1);
    pst_tensor_unref(v);
    pst_graph_free(g);

    g = pst_graph_new();
    x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_1d(4));
    pst_output cin[3] = {x, pst_const_scalar(g, PST_DOUBLE, -0.5, NULL), pst_const_scalar(g, PST_DOUBLE, 0.5, NULL)};
    pst_output cl = pst_out(mk(g, "ClipByValue", 3, cin), 0);
    v = dvals(pst_shape_1d(4), (const double[]){-2, -0.25, 0.3, 0.9});
    int64_t d4[] = {4}, d5[] = {5}, d2[] = {2};
    check(g, x, v, cl, 1, d4, (const double[]){-0.5, -0.25, 0.3, 0.5}, 1);
    pst_output lin[3] = {pst_const_scalar(g, PST_DOUBLE, 1, NULL), pst_const_scalar(g, PST_DOUBLE, 3, NULL),
                         pst_const_i32(g, 5, NULL)};
    check(g, x, v, pst_out(mk(g, "LinSpace", 3, lin), 0), 1, d5, (const double[]){1, 1.5, 2, 2.5, 3}, 0);
    pst_node_builder *b = pst_nb_new(g, "TopK", NULL);
    pst_nb_input(b, x);
    pst_nb_attr_i(b, "k", 2);
    pst_node *tk = pst_nb_finish(b);
    check(g, x, v, pst_out(tk, 0), 1, d2, (const double[]){0.9, 0.3}, 0);
    check(g, x, v, pst_out(tk, 1), 1, d2, (const double[]){3, 2}, 0);
    pst_tensor_unref(v);
    pst_graph_free(g);
}
END_TEST

/* DynamicPartition (and its gradient, a DynamicStitch of the rows' positions) and
 * ParallelDynamicStitch putting the parts back. */
START_TEST(test_dynamic_partition_and_stitch) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(4, 2));
    pst_output parts = pst_const_i32_vec(g, 4, (const int32_t[]){1, 0, 1, 1}, NULL);
    pst_node_builder *b = pst_nb_new(g, "DynamicPartition", NULL);
    pst_nb_input(b, x);
    pst_nb_input(b, parts);
    pst_nb_attr_i(b, "num_partitions", 2);
    pst_node *dp = pst_nb_finish(b);
    ck_assert_msg(dp != NULL, "%s", pst_graph_status(g)->msg);
    pst_output st_in[4] = {pst_const_i32_vec(g, 1, (const int32_t[]){1}, NULL),
                           pst_const_i32_vec(g, 3, (const int32_t[]){0, 2, 3}, NULL), pst_out(dp, 0), pst_out(dp, 1)};
    b = pst_nb_new(g, "ParallelDynamicStitch", NULL);
    pst_nb_inputs(b, 4, st_in);
    pst_nb_attr_i(b, "N", 2);
    pst_output back = pst_nb_finish_out(b);
    pst_tensor *v = dvals(pst_shape_2d(4, 2), (const double[]){1, 2, 3, 4, 5, 6, 7, 8});
    int64_t d12[] = {1, 2}, d32[] = {3, 2}, d42[] = {4, 2};
    check(g, x, v, pst_out(dp, 0), 2, d12, (const double[]){3, 4}, 1);
    check(g, x, v, pst_out(dp, 1), 2, d32, (const double[]){1, 2, 5, 6, 7, 8}, 1);
    check(g, x, v, back, 2, d42, (const double[]){1, 2, 3, 4, 5, 6, 7, 8}, 1);
    pst_tensor_unref(v);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    pst_ops_init();
    Suite *s = suite_create("ops_array_tf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_cumsum_reverse_splitv);
    tcase_add_test(tc, test_gather_scatter_nd);
    tcase_add_test(tc, test_select_v2_broadcast_to_is_topk);
    tcase_add_test(tc, test_resize_and_gradients);
    tcase_add_test(tc, test_multinomial);
    tcase_add_test(tc, test_pads_tile_grad_sparse_to_dense);
    tcase_add_test(tc, test_format_ensure_accumulate_band);
    tcase_add_test(tc, test_space_to_batch_clip_linspace);
    tcase_add_test(tc, test_dynamic_partition_and_stitch);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
