/* CTCLoss, CTCGreedyDecoder and EditDistance (ops_ctc.c), and TF 0.x's Stack ops: the loss
 * against a brute-force sum over every alignment path (independent of the forward-backward
 * recursion), its gradient output against finite differences, the decoder and edit distances
 * against values worked out by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "testutil.h"

/* -log p(label | x) summed over all C^T paths whose collapse (merge repeats unless !merge,
 * then drop blanks C-1) equals the label. x is [T][C] logits of one batch entry. */
static double brute_ctc(const double *x, int T, int C, const int *label, int L, int merge) {
    double total = 0;
    int path[8];
    long n = 1;
    for (int t = 0; t < T; t++) n *= C;
    for (long code = 0; code < n; code++) {
        long k = code;
        double p = 1;
        for (int t = 0; t < T; t++) {
            path[t] = (int)(k % C);
            k /= C;
            double sum = 0;
            for (int c = 0; c < C; c++) sum += exp(x[t * C + c]);
            p *= exp(x[t * C + path[t]]) / sum;
        }
        int out[8], m = 0;
        for (int t = 0; t < T; t++) {
            if (path[t] == C - 1) continue;
            if (merge && t > 0 && path[t] == path[t - 1]) continue;
            out[m++] = path[t];
        }
        if (m == L && memcmp(out, label, (size_t)L * sizeof *out) == 0) total += p;
    }
    return -log(total);
}

typedef struct ctc_graph {
    pst_graph *g;
    pst_output x, loss, grad;
    pst_node *node;
} ctc_graph;

/* Batch of 2 over T=4 steps and C=3 classes (blank 2): labels [0, 1] and [1, 1]. */
static ctc_graph build(int merge, pst_dtype dt) {
    ctc_graph c = {.g = pst_graph_new()};
    c.x = pst_placeholder(c.g, "x", dt, pst_shape_make(3, (const int64_t[]){4, 2, 3}));
    int64_t iv[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    int32_t vv[4] = {0, 1, 1, 1}, sl[2] = {4, 3};
    pst_tensor *it = pst_tensor_new(PST_INT64, pst_shape_2d(4, 2), NULL);
    memcpy(it->data, iv, sizeof iv);
    pst_output in[4] = {c.x, pst_const(c.g, it, NULL), pst_const_i32_vec(c.g, 4, vv, NULL),
                        pst_const_i32_vec(c.g, 2, sl, NULL)};
    pst_tensor_unref(it);
    pst_node_builder *b = pst_nb_new(c.g, "CTCLoss", "ctc");
    pst_nb_inputs(b, 4, in);
    pst_nb_attr_type(b, "T", dt);
    pst_nb_attr_b(b, "ctc_merge_repeated", merge);
    c.node = pst_nb_finish(b);
    ck_assert_msg(c.node != NULL, "%s", pst_graph_status(c.g)->msg);
    c.loss = pst_out(c.node, 0);
    c.grad = pst_out(c.node, 1);
    return c;
}

START_TEST(test_ctc_loss_against_all_paths) {
    for (int merge = 1; merge >= 0; merge--) {
        ctc_graph c = build(merge, PST_DOUBLE);
        pst_tensor *xv = pst_test_rand(PST_DOUBLE, pst_shape_make(3, (const int64_t[]){4, 2, 3}), 11, -2, 2);
        pst_status st = {0};
        pst_session *s = pst_session_new(c.g, NULL, &st);
        pst_feed f = {c.x, xv};
        pst_output outs[2] = {c.loss, c.grad};
        pst_tensor *o[2];
        ck_assert_msg(pst_session_run(s, &f, 1, outs, 2, NULL, 0, o, &st) == 0, "%s", st.msg);
        const int lab0[2] = {0, 1}, lab1[2] = {1, 1};
        for (int b = 0; b < 2; b++) {
            double x[12];
            int T = b == 0 ? 4 : 3;
            for (int t = 0; t < T; t++)
                for (int k = 0; k < 3; k++) x[t * 3 + k] = pst_tensor_f64(xv)[(t * 2 + b) * 3 + k];
            double want = brute_ctc(x, T, 3, b ? lab1 : lab0, 2, merge);
            ck_assert_msg(fabs(pst_tensor_f64(o[0])[b] - want) < 1e-9, "merge %d entry %d: %.12g vs %.12g",
                          merge, b, pst_tensor_f64(o[0])[b], want);
        }
        /* Entry 1 is 3 steps long: the gradient is zero at step 3. */
        for (int k = 0; k < 3; k++) ck_assert(pst_tensor_f64(o[1])[(3 * 2 + 1) * 3 + k] == 0);
        pst_tensor_unref(o[0]);
        pst_tensor_unref(o[1]);
        /* The gradient output is d loss / d logits: finite differences through CTCLoss's
         * gradient function (which scales it by the incoming gradient). */
        double err = pst_gradcheck(c.g, c.loss, 1, &c.x, &xv, 1e-6);
        ck_assert_msg(err < 1e-6, "merge %d: gradient error %g", merge, err);
        pst_tensor_unref(xv);
        pst_session_free(s);
        pst_graph_free(c.g);
    }
}
END_TEST

/* [1, 1] needs a blank between its labels: with merging, two steps are not enough (p = 0,
 * loss inf, gradient the softmax); labels longer than the sequence are an error unless
 * ignore_longer_outputs_than_inputs, which gives a zero loss. */
START_TEST(test_ctc_loss_impossible_and_errors) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_make(3, (const int64_t[]){2, 1, 3}));
    pst_output lab_idx = pst_placeholder(g, "li", PST_INT64, pst_shape_2d(-1, 2));
    pst_output lab_val = pst_placeholder(g, "lv", PST_INT32, pst_shape_1d(-1));
    pst_output sl = pst_placeholder(g, "sl", PST_INT32, pst_shape_1d(1));
    pst_output in[4] = {x, lab_idx, lab_val, sl};
    pst_node *n[2];
    for (int k = 0; k < 2; k++) {
        pst_node_builder *b = pst_nb_new(g, "CTCLoss", k ? "ctc_ignore" : "ctc");
        pst_nb_inputs(b, 4, in);
        pst_nb_attr_b(b, "ignore_longer_outputs_than_inputs", k);
        n[k] = pst_nb_finish(b);
    }
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    float xv[6] = {0, 0, 0, 0, 0, 0};
    int64_t idx[4] = {0, 0, 0, 1};
    int32_t val[2] = {1, 1}, len[1] = {2};
    pst_tensor *t[4] = {pst_tensor_from_f32(pst_shape_make(3, (const int64_t[]){2, 1, 3}), xv),
                        pst_tensor_new(PST_INT64, pst_shape_2d(2, 2), NULL),
                        pst_tensor_from_i32(pst_shape_1d(2), val), pst_tensor_from_i32(pst_shape_1d(1), len)};
    memcpy(t[1]->data, idx, sizeof idx);
    pst_feed f[4] = {{x, t[0]}, {lab_idx, t[1]}, {lab_val, t[2]}, {sl, t[3]}};
    pst_output outs[2] = {pst_out(n[0], 0), pst_out(n[0], 1)};
    pst_tensor *o[2];
    ck_assert_msg(pst_session_run(s, f, 4, outs, 2, NULL, 0, o, &st) == 0, "%s", st.msg);
    ck_assert(isinf(pst_tensor_f32(o[0])[0]));
    ck_assert(fabs(pst_tensor_f32(o[1])[0] - 1.0 / 3) < 1e-6);
    pst_tensor_unref(o[0]);
    pst_tensor_unref(o[1]);
    pst_tensor_i32(t[3])[0] = 1; /* two labels, one step */
    ck_assert_int_eq(pst_session_run(s, f, 4, outs, 1, NULL, 0, o, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "not enough time") && strstr(st.msg, "'ctc'"), "%s", st.msg);
    pst_output ig = pst_out(n[1], 0);
    ck_assert_msg(pst_session_run(s, f, 4, &ig, 1, NULL, 0, o, &st) == 0, "%s", st.msg);
    ck_assert(pst_tensor_f32(o[0])[0] == 0);
    pst_tensor_unref(o[0]);
    pst_tensor_i32(t[2])[0] = -1;
    pst_tensor_i32(t[3])[0] = 2;
    st = (pst_status){0};
    ck_assert_int_eq(pst_session_run(s, f, 4, outs, 1, NULL, 0, o, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "negative"), "%s", st.msg);
    for (int k = 0; k < 4; k++) pst_tensor_unref(t[k]);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* EditDistance over the six inputs, unnormalized (ed[0]) and normalized (ed[1]). */
static void edit_nodes(pst_graph *g, const pst_output *in, pst_dtype dt, pst_node **ed) {
    for (int k = 0; k < 2; k++) {
        pst_node_builder *b = pst_nb_new(g, "EditDistance", NULL);
        pst_nb_inputs(b, 6, in);
        pst_nb_attr_type(b, "T", dt);
        pst_nb_attr_b(b, "normalize", k);
        ed[k] = pst_nb_finish(b);
        ck_assert_msg(ed[k] != NULL, "%s", pst_graph_status(g)->msg);
    }
}

START_TEST(test_greedy_decoder_and_edit_distance) {
    pst_graph *g = pst_graph_new();
    /* T=4, B=2, C=3 (blank 2). Entry 0's best classes 0 0 2 1; entry 1's 1 2 1 (length 3). */
    float xv[24] = {5, 1, 0, /**/ 0, 4, 1,
                    3, 0, 1, /**/ 0, 1, 2,
                    0, 0, 9, /**/ 1, 6, 0,
                    1, 2, 0, /**/ 9, 9, 9};
    int32_t lens[2] = {4, 3};
    pst_output in[2] = {pst_const_f32_tensor(g, pst_shape_make(3, (const int64_t[]){4, 2, 3}), xv, NULL),
                        pst_const_i32_vec(g, 2, lens, NULL)};
    pst_node *dec[2];
    for (int k = 0; k < 2; k++) {
        pst_node_builder *b = pst_nb_new(g, "CTCGreedyDecoder", NULL);
        pst_nb_inputs(b, 2, in);
        pst_nb_attr_b(b, "merge_repeated", k);
        dec[k] = pst_nb_finish(b);
    }
    /* truth: entry 0 = [0, 1], entry 1 = [1, 1, 0] */
    int64_t ti[10] = {0, 0, 0, 1, 1, 0, 1, 1, 1, 2}, ts[2] = {2, 3};
    pst_tensor *tit = pst_tensor_new(PST_INT64, pst_shape_2d(5, 2), NULL);
    pst_tensor *tst = pst_tensor_new(PST_INT64, pst_shape_1d(2), NULL);
    memcpy(tit->data, ti, sizeof ti);
    memcpy(tst->data, ts, sizeof ts);
    pst_tensor *tvt = pst_tensor_new(PST_INT64, pst_shape_1d(5), NULL);
    int64_t tv[5] = {0, 1, 1, 1, 0};
    memcpy(tvt->data, tv, sizeof tv);
    pst_output ed_in[6] = {pst_out(dec[1], 0), pst_out(dec[1], 1), pst_out(dec[1], 2),
                           pst_const(g, tit, NULL), pst_const(g, tvt, NULL), pst_const(g, tst, NULL)};
    pst_node *ed[2];
    edit_nodes(g, ed_in, PST_INT64, ed);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_output f[10] = {pst_out(dec[0], 0), pst_out(dec[0], 1), pst_out(dec[0], 2), pst_out(dec[0], 3),
                        pst_out(dec[1], 0), pst_out(dec[1], 1), pst_out(dec[1], 2),
                        pst_out(ed[0], 0), pst_out(ed[1], 0), pst_out(dec[1], 3)};
    pst_tensor *o[10];
    ck_assert_msg(pst_session_run(s, NULL, 0, f, 10, NULL, 0, o, &st) == 0, "%s", st.msg);
    int64_t d52[] = {5, 2}, d5[] = {5}, d2[] = {2}, d42[] = {4, 2}, d4[] = {4}, d21[] = {2, 1};
    /* without merging: [0, 0, 1] and [1, 1] */
    PST_ASSERT_TENSOR(o[0], 2, d52, ((const double[]){0, 0, 0, 1, 0, 2, 1, 0, 1, 1}), 0);
    PST_ASSERT_TENSOR(o[1], 1, d5, ((const double[]){0, 0, 1, 1, 1}), 0);
    PST_ASSERT_TENSOR(o[2], 1, d2, ((const double[]){2, 3}), 0);
    PST_ASSERT_TENSOR(o[3], 2, d21, ((const double[]){-(5 + 3 + 9 + 2), -(4 + 2 + 6)}), 0);
    /* merging repeats: [0, 1] and [1, 1] (a blank separates entry 1's ones) */
    PST_ASSERT_TENSOR(o[4], 2, d42, ((const double[]){0, 0, 0, 1, 1, 0, 1, 1}), 0);
    PST_ASSERT_TENSOR(o[5], 1, d4, ((const double[]){0, 1, 1, 1}), 0);
    PST_ASSERT_TENSOR(o[6], 1, d2, ((const double[]){2, 2}), 0);
    /* [0,1] vs [0,1]: 0; [1,1] vs [1,1,0]: 1 (1/3 normalized) */
    PST_ASSERT_TENSOR(o[7], 1, d2, ((const double[]){0, 1}), 0);
    PST_ASSERT_TENSOR(o[8], 1, d2, ((const double[]){0, 1.0 / 3}), 1e-6);
    for (int i = 0; i < 10; i++) pst_tensor_unref(o[i]);
    pst_tensor_unref(tit);
    pst_tensor_unref(tst);
    pst_tensor_unref(tvt);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* Strings, an empty hypothesis against a truth (1 normalized), a hypothesis against an empty
 * truth (inf normalized, its length otherwise), and the classic kitten/sitting (3). */
START_TEST(test_edit_distance_strings_and_empty) {
    pst_graph *g = pst_graph_new();
    const char *hyp[] = {"k", "i", "t", "t", "e", "n", "x", "y"};
    const char *tru[] = {"s", "i", "t", "t", "i", "n", "g", "a"};
    /* rows: 0 kitten/sitting, 1 (empty)/a, 2 xy/(empty) */
    int64_t hi[16] = {0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 2, 0, 2, 1};
    int64_t ti[16] = {0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 1, 0};
    int64_t hs[2] = {3, 6}, ts[2] = {2, 7};
    pst_tensor *t[6] = {pst_tensor_new(PST_INT64, pst_shape_2d(8, 2), NULL), pst_tensor_from_strs(8, hyp),
                        pst_tensor_new(PST_INT64, pst_shape_1d(2), NULL),
                        pst_tensor_new(PST_INT64, pst_shape_2d(8, 2), NULL), pst_tensor_from_strs(8, tru),
                        pst_tensor_new(PST_INT64, pst_shape_1d(2), NULL)};
    memcpy(t[0]->data, hi, sizeof hi);
    memcpy(t[2]->data, hs, sizeof hs);
    memcpy(t[3]->data, ti, sizeof ti);
    memcpy(t[5]->data, ts, sizeof ts);
    pst_output in[6];
    for (int k = 0; k < 6; k++) in[k] = pst_const(g, t[k], NULL);
    pst_node *ed[2];
    edit_nodes(g, in, PST_STRING, ed);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_output f[2] = {pst_out(ed[0], 0), pst_out(ed[1], 0)};
    pst_tensor *o[2];
    ck_assert_msg(pst_session_run(s, NULL, 0, f, 2, NULL, 0, o, &st) == 0, "%s", st.msg);
    int64_t d3[] = {3};
    PST_ASSERT_TENSOR(o[0], 1, d3, ((const double[]){3, 1, 2}), 0);
    ck_assert(fabs(pst_tensor_f32(o[1])[0] - 3.0 / 7) < 1e-6 && pst_tensor_f32(o[1])[1] == 1);
    ck_assert(isinf(pst_tensor_f32(o[1])[2]));
    pst_tensor_unref(o[0]);
    pst_tensor_unref(o[1]);
    for (int k = 0; k < 6; k++) pst_tensor_unref(t[k]);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* TF 0.x's Stack/StackPush/StackPop: last in, first out; popping an empty stack fails. */
START_TEST(test_old_stack_ops) {
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "Stack", "stack");
    pst_nb_attr_type(b, "elem_type", PST_FLOAT);
    pst_output h = pst_nb_finish_out(b);
    pst_output in[2] = {h, pst_const_scalar(g, PST_FLOAT, 1, NULL)};
    b = pst_nb_new(g, "StackPush", "push1");
    pst_nb_inputs(b, 2, in);
    pst_node *p1 = pst_nb_finish(b);
    in[1] = pst_const_scalar(g, PST_FLOAT, 2, NULL);
    b = pst_nb_new(g, "StackPush", "push2");
    pst_nb_inputs(b, 2, in);
    pst_nb_control(b, p1);
    pst_node *p2 = pst_nb_finish(b);
    pst_node *pop[3];
    for (int k = 0; k < 3; k++) {
        b = pst_nb_new(g, "StackPop", NULL);
        pst_nb_input(b, h);
        pst_nb_attr_type(b, "elem_type", PST_FLOAT);
        pst_nb_control(b, k ? pop[k - 1] : p2);
        pop[k] = pst_nb_finish(b);
        ck_assert_msg(pop[k] != NULL, "%s", pst_graph_status(g)->msg);
    }
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_output f[2] = {pst_out(pop[0], 0), pst_out(pop[1], 0)};
    pst_tensor *o[2];
    ck_assert_msg(pst_session_run(s, NULL, 0, f, 2, NULL, 0, o, &st) == 0, "%s", st.msg);
    ck_assert(pst_tensor_f32(o[0])[0] == 2 && pst_tensor_f32(o[1])[0] == 1);
    pst_tensor_unref(o[0]);
    pst_tensor_unref(o[1]);
    pst_output third = pst_out(pop[2], 0);
    ck_assert_int_eq(pst_session_run(s, NULL, 0, &third, 1, NULL, 0, o, &st), PST_E_OUT_OF_RANGE);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    pst_ops_init();
    Suite *s = suite_create("ops_ctc");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_ctc_loss_against_all_paths);
    tcase_add_test(tc, test_ctc_loss_impossible_and_errors);
    tcase_add_test(tc, test_greedy_decoder_and_edit_distance);
    tcase_add_test(tc, test_edit_distance_strings_and_empty);
    tcase_add_test(tc, test_old_stack_ops);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
