/* Lookup tables (ops_lookup.c) and sparse ops (ops_sparse.c) as feature columns use them:
 * values worked out by hand, errors named, gradients by finite differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "testutil.h"

static pst_output i64_vec(pst_graph *g, pst_shape s, const int64_t *v) {
    pst_tensor *t = pst_tensor_new(PST_INT64, s, NULL);
    memcpy(t->data, v, (size_t)t->n * sizeof *v);
    pst_output o = pst_const(g, t, NULL);
    pst_tensor_unref(t);
    return o;
}

static pst_node *op(pst_graph *g, const char *type, int n, const pst_output *in) {
    pst_node_builder *b = pst_nb_new(g, type, NULL);
    pst_nb_inputs(b, n, in);
    pst_node *x = pst_nb_finish(b);
    ck_assert_msg(x != NULL, "%s: %s", type, pst_graph_status(g)->msg);
    return x;
}

static pst_node *table(pst_graph *g, const char *name, pst_dtype k, pst_dtype v) {
    pst_node_builder *b = pst_nb_new(g, "HashTableV2", name);
    pst_nb_attr_type(b, "key_dtype", k);
    pst_nb_attr_type(b, "value_dtype", v);
    pst_nb_attr_s(b, "shared_name", name);
    return pst_nb_finish(b);
}

START_TEST(test_hash_tables) {
    pst_graph *g = pst_graph_new();
    /* string -> int64 (a vocabulary) and int64 -> float */
    pst_node *ts = table(g, "vocab", PST_STRING, PST_INT64), *ti = table(g, "weights", PST_INT64, PST_FLOAT);
    pst_tensor *keys = pst_tensor_from_strs(3, (const char *const[]){"cat", "dog", "emu"});
    int64_t ids[3] = {0, 1, 2}, ik[2] = {10, 20};
    float fv[2] = {0.5f, 1.5f};
    pst_output imp_s[3] = {pst_out(ts, 0), pst_const(g, keys, NULL), i64_vec(g, pst_shape_1d(3), ids)};
    pst_output imp_i[3] = {pst_out(ti, 0), i64_vec(g, pst_shape_1d(2), ik),
                           pst_const_f32_tensor(g, pst_shape_1d(2), fv, NULL)};
    pst_node *init[2] = {op(g, "LookupTableImportV2", 3, imp_s), op(g, "InitializeTableV2", 3, imp_i)};
    pst_output q = pst_placeholder(g, "q", PST_STRING, pst_shape_2d(2, 2));
    pst_tensor *minus1 = pst_tensor_scalar_i64(-1);
    pst_output find_s[3] = {pst_out(ts, 0), q, pst_const(g, minus1, NULL)};
    pst_tensor_unref(minus1);
    int64_t qi[3] = {20, 7, 10};
    pst_output find_i[3] = {pst_out(ti, 0), i64_vec(g, pst_shape_1d(3), qi),
                            pst_const_scalar(g, PST_FLOAT, -9, NULL)};
    pst_node *fs = op(g, "LookupTableFindV2", 3, find_s), *fi = op(g, "LookupTableFindV2", 3, find_i);
    pst_node *size = op(g, "LookupTableSizeV2", 1, find_s);
    ck_assert_int_eq(pst_output_shape(pst_out(fs, 0)).rank, 2);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *qv = pst_tensor_from_strs(4, (const char *const[]){"dog", "cow", "emu", "cat"});
    qv->shape = pst_shape_2d(2, 2);
    pst_feed f = {q, qv};
    pst_output o1 = pst_out(fs, 0);
    pst_tensor *o[3];
    /* Finding before the table is filled is FailedPrecondition. */
    ck_assert_int_eq(pst_session_run(s, &f, 1, &o1, 1, NULL, 0, o, &st), PST_E_PRECONDITION);
    ck_assert_msg(strstr(st.msg, "not initialized"), "%s", st.msg);
    ck_assert_msg(pst_session_run(s, NULL, 0, NULL, 0, init, 2, NULL, &st) == 0, "%s", st.msg);
    /* Filling it again with the same entries changes nothing. */
    ck_assert_msg(pst_session_run(s, NULL, 0, NULL, 0, init, 2, NULL, &st) == 0, "%s", st.msg);
    pst_output fetch[3] = {o1, pst_out(fi, 0), pst_out(size, 0)};
    ck_assert_msg(pst_session_run(s, &f, 1, fetch, 3, NULL, 0, o, &st) == 0, "%s", st.msg);
    int64_t d22[] = {2, 2}, d3[] = {3};
    PST_ASSERT_TENSOR(o[0], 2, d22, ((const double[]){1, -1, 2, 0}), 0);
    PST_ASSERT_TENSOR(o[1], 1, d3, ((const double[]){1.5, -9, 0.5}), 0);
    ck_assert_int_eq(pst_tensor_get_i64(o[2], 0), 3);
    for (int i = 0; i < 3; i++) pst_tensor_unref(o[i]);
    pst_tensor_unref(qv);
    pst_tensor_unref(keys);
    pst_session_free(s);
    pst_graph_free(g);

    /* A key given two values is an error naming the key. */
    g = pst_graph_new();
    ts = table(g, "t", PST_STRING, PST_INT64);
    keys = pst_tensor_from_strs(2, (const char *const[]){"a", "a"});
    int64_t two[2] = {1, 2};
    pst_output bad[3] = {pst_out(ts, 0), pst_const(g, keys, NULL), i64_vec(g, pst_shape_1d(2), two)};
    pst_node *imp = op(g, "LookupTableImportV2", 3, bad);
    s = pst_session_new(g, NULL, &st);
    st = (pst_status){0};
    ck_assert_int_eq(pst_session_run(s, NULL, 0, NULL, 0, &imp, 1, NULL, &st), PST_E_PRECONDITION);
    ck_assert_msg(strstr(st.msg, "key a"), "%s", st.msg);
    pst_tensor_unref(keys);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* data rows 0..3 = [1,2], [3,4], [5,6], [7,8]; indices [0, 2, 3, 1]; segments [0, 0, 2, 2]. */
START_TEST(test_sparse_segments) {
    const char *ops[] = {"SparseSegmentSum", "SparseSegmentMean", "SparseSegmentSqrtN",
                         "SparseSegmentSumWithNumSegments"};
    const double r2 = sqrt(2.0);
    const double want[4][8] = {{6, 8, 0, 0, 10, 12},
                               {3, 4, 0, 0, 5, 6},
                               {6 / r2, 8 / r2, 0, 0, 10 / r2, 12 / r2},
                               {6, 8, 0, 0, 10, 12, 0, 0}};
    for (int k = 0; k < 4; k++) {
        pst_graph *g = pst_graph_new();
        pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(4, 2));
        pst_output in[4] = {x, pst_const_i32_vec(g, 4, (const int32_t[]){0, 2, 3, 1}, NULL),
                            pst_const_i32_vec(g, 4, (const int32_t[]){0, 0, 2, 2}, NULL),
                            pst_const_i32(g, 4, NULL)};
        pst_node *n = op(g, ops[k], k == 3 ? 4 : 3, in);
        double xv[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        pst_tensor *t = pst_tensor_new(PST_DOUBLE, pst_shape_2d(4, 2), NULL);
        memcpy(t->data, xv, sizeof xv);
        pst_status st = {0};
        pst_session *s = pst_session_new(g, NULL, &st);
        pst_feed f = {x, t};
        pst_tensor *o = pst_test_run(s, pst_out(n, 0), 1, &f);
        int64_t dims[2] = {k == 3 ? 4 : 3, 2};
        PST_ASSERT_TENSOR(o, 2, dims, want[k], 1e-12);
        pst_tensor_unref(o);
        pst_session_free(s);
        /* The gradient (SparseSegment{Mean,SqrtN}Grad, or UnsortedSegmentSum of a Gather). */
        pst_tensor *v = pst_test_rand(PST_DOUBLE, pst_shape_2d(4, 2), 3 + (uint64_t)k, -1, 1);
        double err = pst_gradcheck(g, pst_out(n, 0), 1, &x, &v, 1e-6);
        ck_assert_msg(err < 1e-6, "%s: gradient error %g", ops[k], err);
        pst_tensor_unref(v);
        pst_tensor_unref(t);
        pst_graph_free(g);
    }
    /* Unsorted segment ids are an error. */
    pst_graph *g = pst_graph_new();
    pst_output in[3] = {pst_const_f32_tensor(g, pst_shape_2d(2, 1), (const float[]){1, 2}, NULL),
                        pst_const_i32_vec(g, 2, (const int32_t[]){0, 1}, NULL),
                        pst_const_i32_vec(g, 2, (const int32_t[]){1, 0}, NULL)};
    pst_node *n = op(g, "SparseSegmentSum", 3, in);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_output o = pst_out(n, 0);
    pst_tensor *t;
    ck_assert_int_eq(pst_session_run(s, NULL, 0, &o, 1, NULL, 0, &t, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "sorted"), "%s", st.msg);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* Dense shape [4, 3]; entries at (1,0)=a, (3,2)=b, (1,2)=c (rows 1 out of order): rows 0 and 2
 * are filled with the default d. */
START_TEST(test_fill_empty_rows_and_reshape) {
    pst_graph *g = pst_graph_new();
    int64_t iv[6] = {1, 0, 3, 2, 1, 2}, sh[2] = {4, 3};
    pst_output vals = pst_placeholder(g, "v", PST_DOUBLE, pst_shape_1d(3));
    pst_output dflt = pst_placeholder(g, "d", PST_DOUBLE, pst_shape_scalar());
    pst_output idx = i64_vec(g, pst_shape_2d(3, 2), iv);
    pst_output in[4] = {idx, vals, i64_vec(g, pst_shape_1d(2), sh), dflt};
    pst_node *n = op(g, "SparseFillEmptyRows", 4, in);
    int64_t ns[2] = {-1, 2};
    pst_output rin[3] = {pst_out(n, 0), i64_vec(g, pst_shape_1d(2), sh), i64_vec(g, pst_shape_1d(2), ns)};
    pst_node *r = op(g, "SparseReshape", 3, rin);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *vt = pst_tensor_new(PST_DOUBLE, pst_shape_1d(3), NULL), *dt = pst_tensor_scalar_f64(-1);
    memcpy(vt->data, (const double[]){10, 20, 30}, 3 * sizeof(double));
    pst_feed f[2] = {{vals, vt}, {dflt, dt}};
    pst_output fetch[6] = {pst_out(n, 0), pst_out(n, 1), pst_out(n, 2), pst_out(n, 3), pst_out(r, 0), pst_out(r, 1)};
    pst_tensor *o[6];
    ck_assert_msg(pst_session_run(s, f, 2, fetch, 6, NULL, 0, o, &st) == 0, "%s", st.msg);
    int64_t d52[] = {5, 2}, d5[] = {5}, d4[] = {4}, d3[] = {3}, d2[] = {2};
    PST_ASSERT_TENSOR(o[0], 2, d52, ((const double[]){0, 0, 1, 0, 1, 2, 2, 0, 3, 2}), 0);
    PST_ASSERT_TENSOR(o[1], 1, d5, ((const double[]){-1, 10, 30, -1, 20}), 0);
    PST_ASSERT_TENSOR(o[2], 1, d4, ((const double[]){1, 0, 1, 0}), 0);
    PST_ASSERT_TENSOR(o[3], 1, d3, ((const double[]){1, 4, 2}), 0);
    /* [4,3] -> [6,2]: linear positions 0, 3, 5, 6, 11 */
    PST_ASSERT_TENSOR(o[4], 2, d52, ((const double[]){0, 0, 1, 1, 2, 1, 3, 0, 5, 1}), 0);
    PST_ASSERT_TENSOR(o[5], 1, d2, ((const double[]){6, 2}), 0);
    for (int i = 0; i < 6; i++) pst_tensor_unref(o[i]);
    pst_session_free(s);
    /* Gradients to the values and the default (SparseFillEmptyRowsGrad). */
    pst_output y = pst_mul(g, pst_out(n, 1), pst_out(n, 1), NULL);
    pst_output xs[2] = {vals, dflt};
    pst_tensor *xv[2] = {vt, dt};
    double err = pst_gradcheck(g, y, 2, xs, xv, 1e-6);
    ck_assert_msg(err < 1e-6, "gradient error %g", err);
    pst_tensor_unref(vt);
    pst_tensor_unref(dt);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    pst_ops_init();
    Suite *s = suite_create("ops_sparse");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_hash_tables);
    tcase_add_test(tc, test_sparse_segments);
    tcase_add_test(tc, test_fill_empty_rows_and_reshape);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
