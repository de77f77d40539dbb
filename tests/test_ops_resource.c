/* Resource variables as TF 1.13+ graphs hold them (ops_resource.c, ResourceApply* in
 * ops_train.c): a VarHandleOp initialized through its NAME/Assign, read, updated in place,
 * gathered and scattered, trained by the resource apply ops, checked value by value. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradients.h"
#include "op.h"
#include "ops.h"
#include "testutil.h"
#include "varstore.h"

static pst_node *node(pst_graph *g, const char *op, const char *name, int n, const pst_output *in) {
    pst_node_builder *b = pst_nb_new(g, op, name);
    pst_nb_inputs(b, n, in);
    if (strcmp(op, "ReadVariableOp") == 0 || strncmp(op, "Assign", 6) == 0 ||
        strcmp(op, "ResourceGather") == 0 || strncmp(op, "ResourceScatter", 15) == 0)
        pst_nb_attr_type(b, "dtype", PST_FLOAT);
    if (strncmp(op, "ResourceApply", 13) == 0) pst_nb_attr_type(b, "T", PST_FLOAT);
    pst_node *x = pst_nb_finish(b);
    ck_assert_msg(x != NULL, "%s: %s", op, pst_graph_status(g)->msg);
    return x;
}

static pst_output handle(pst_graph *g, const char *name, pst_shape s) {
    pst_node_builder *b = pst_nb_new(g, "VarHandleOp", name);
    pst_nb_attr_type(b, "dtype", PST_FLOAT);
    pst_nb_attr_shape(b, "shape", s);
    pst_nb_attr_s(b, "shared_name", name);
    pst_nb_attr_s(b, "container", "");
    return pst_nb_finish_out(b);
}

static pst_output fvec(pst_graph *g, pst_shape s, const float *v) {
    return pst_const_f32_tensor(g, s, v, NULL);
}

static void run_targets(pst_session *s, int n, pst_node **t) {
    pst_status st = {0};
    ck_assert_msg(pst_session_run(s, NULL, 0, NULL, 0, t, n, NULL, &st) == 0, "%s", st.msg);
}

static pst_tensor *fetch(pst_session *s, pst_output o) {
    pst_status st = {0};
    pst_tensor *t = NULL;
    ck_assert_msg(pst_session_run(s, NULL, 0, &o, 1, NULL, 0, &t, &st) == 0, "%s", st.msg);
    return t;
}

START_TEST(test_handle_read_assign_gather_scatter) {
    pst_graph *g = pst_graph_new();
    pst_output w = handle(g, "w", pst_shape_2d(3, 2));
    float init[6] = {1, 2, 3, 4, 5, 6}, one[6] = {1, 1, 1, 1, 1, 1}, upd[4] = {10, 20, 30, 40};
    pst_output ai[2] = {w, fvec(g, pst_shape_2d(3, 2), init)};
    pst_node *assign = node(g, "AssignVariableOp", "w/Assign", 2, ai);
    pst_node *isinit = node(g, "VarIsInitializedOp", NULL, 1, &w);
    pst_node *read = node(g, "ReadVariableOp", NULL, 1, &w);
    pst_output aa[2] = {w, fvec(g, pst_shape_2d(3, 2), one)};
    pst_node *add = node(g, "AssignAddVariableOp", NULL, 2, aa);
    pst_node *sub = node(g, "AssignSubVariableOp", NULL, 2, aa);
    int32_t iv[3] = {2, 0, 2};
    pst_tensor *it = pst_tensor_from_i32(pst_shape_1d(3), iv);
    pst_output gi[2] = {w, pst_const(g, it, NULL)};
    pst_node *gather = node(g, "ResourceGather", NULL, 2, gi);
    int32_t sv[2] = {1, 1};
    pst_tensor *st_ = pst_tensor_from_i32(pst_shape_1d(2), sv);
    pst_output si[3] = {w, pst_const(g, st_, NULL), fvec(g, pst_shape_2d(2, 2), upd)};
    pst_node *scat = node(g, "ResourceScatterAdd", NULL, 3, si);
    pst_node *vshape = node(g, "VariableShape", NULL, 1, &w);
    ck_assert_int_eq(pst_output_shape(pst_out(read, 0)).dims[0], 3);
    ck_assert_int_eq(pst_output_shape(pst_out(gather, 0)).rank, 2);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_ptr_nonnull(s);

    /* Before the initializer: not initialized, and a read names the variable. */
    pst_tensor *b = fetch(s, pst_out(isinit, 0));
    ck_assert_int_eq(pst_tensor_u8(b)[0], 0);
    pst_tensor_unref(b);
    pst_output r = pst_out(read, 0);
    pst_tensor *t = NULL;
    ck_assert_int_eq(pst_session_run(s, NULL, 0, &r, 1, NULL, 0, &t, &st), PST_E_PRECONDITION);
    ck_assert_msg(strstr(st.msg, "w") != NULL, "%s", st.msg);

    run_targets(s, 1, &assign);
    b = fetch(s, pst_out(isinit, 0));
    ck_assert_int_eq(pst_tensor_u8(b)[0], 1);
    pst_tensor_unref(b);
    int64_t d32[] = {3, 2}, d1[] = {2};
    t = fetch(s, r);
    PST_ASSERT_TENSOR(t, 2, d32, ((const double[]){1, 2, 3, 4, 5, 6}), 0);
    run_targets(s, 1, &add);
    /* The first read kept its snapshot: updates copy, never change a value someone holds. */
    PST_ASSERT_TENSOR(t, 2, d32, ((const double[]){1, 2, 3, 4, 5, 6}), 0);
    pst_tensor_unref(t);
    t = fetch(s, r);
    PST_ASSERT_TENSOR(t, 2, d32, ((const double[]){2, 3, 4, 5, 6, 7}), 0);
    pst_tensor_unref(t);
    run_targets(s, 1, &sub);
    t = fetch(s, pst_out(gather, 0));
    PST_ASSERT_TENSOR(t, 2, d32, ((const double[]){5, 6, 1, 2, 5, 6}), 0);
    pst_tensor_unref(t);
    run_targets(s, 1, &scat);
    t = fetch(s, r);
    PST_ASSERT_TENSOR(t, 2, d32, ((const double[]){1, 2, 43, 64, 5, 6}), 0);
    pst_tensor_unref(t);
    t = fetch(s, pst_out(vshape, 0));
    PST_ASSERT_TENSOR(t, 1, d1, ((const double[]){3, 2}), 0);
    pst_tensor_unref(t);
    /* The store holds it under the handle's shared_name, like a VariableV2. */
    ck_assert_ptr_nonnull(pst_var_store_find(pst_session_vars(s), "w"));

    /* A gather index outside the variable is an error naming it. */
    int32_t bad[3] = {0, 3, 1};
    pst_tensor *bt = pst_tensor_from_i32(pst_shape_1d(3), bad);
    pst_feed f = {gi[1], bt};
    pst_output go = pst_out(gather, 0);
    st = (pst_status){0};
    ck_assert_int_eq(pst_session_run(s, &f, 1, &go, 1, NULL, 0, &t, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "index 3") != NULL, "%s", st.msg);
    ck_assert_ptr_nonnull(strstr(st.msg, "'w'"));
    pst_tensor_unref(bt);
    pst_tensor_unref(it);
    pst_tensor_unref(st_);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* ResourceApply{GradientDescent,Momentum,Adam,Adagrad,RMSProp}: one step each against the
 * formulas of TF's training_ops, computed here in double. */
START_TEST(test_resource_apply_ops) {
    pst_graph *g = pst_graph_new();
    float w0[2] = {1.0f, -2.0f}, gr[2] = {0.5f, -0.25f};
    const char *ops[] = {"ResourceApplyGradientDescent", "ResourceApplyMomentum",
                         "ResourceApplyAdam", "ResourceApplyAdagrad", "ResourceApplyRMSProp"};
    pst_node *init[15], *apply[5];
    pst_output vars[5][3];
    int ni = 0;
    for (int k = 0; k < 5; k++) {
        char nm[64];
        for (int j = 0; j < 3; j++) {
            snprintf(nm, sizeof nm, "v%d_%d", k, j);
            vars[k][j] = handle(g, nm, pst_shape_1d(2));
            float slot[2] = {0.1f, 0.2f};
            pst_output ai[2] = {vars[k][j], fvec(g, pst_shape_1d(2), j == 0 ? w0 : slot)};
            snprintf(nm, sizeof nm, "v%d_%d/Assign", k, j);
            init[ni++] = node(g, "AssignVariableOp", nm, 2, ai);
        }
        pst_output lr = pst_const_scalar(g, PST_FLOAT, 0.1, NULL);
        pst_output grad = fvec(g, pst_shape_1d(2), gr);
        pst_output c = pst_const_scalar(g, PST_FLOAT, 0.9, NULL);
        pst_output c2 = pst_const_scalar(g, PST_FLOAT, 0.999, NULL);
        pst_output eps = pst_const_scalar(g, PST_FLOAT, 1e-3, NULL);
        pst_output in[10];
        int n = 0;
        in[n++] = vars[k][0];
        if (k == 0) in[n++] = lr, in[n++] = grad;
        if (k == 1) in[n++] = vars[k][1], in[n++] = lr, in[n++] = grad, in[n++] = c;
        if (k == 2) {
            in[n++] = vars[k][1], in[n++] = vars[k][2];
            in[n++] = pst_const_scalar(g, PST_FLOAT, 0.5, NULL);  /* beta1_power */
            in[n++] = pst_const_scalar(g, PST_FLOAT, 0.75, NULL); /* beta2_power */
            in[n++] = lr, in[n++] = c, in[n++] = c2, in[n++] = eps, in[n++] = grad;
        }
        if (k == 3) in[n++] = vars[k][1], in[n++] = lr, in[n++] = grad;
        if (k == 4) {
            in[n++] = vars[k][1], in[n++] = vars[k][2], in[n++] = lr, in[n++] = c, in[n++] = c;
            in[n++] = eps, in[n++] = grad;
        }
        apply[k] = node(g, ops[k], NULL, n, in);
        ck_assert_int_eq(apply[k]->n_outputs, 0);
    }
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    run_targets(s, ni, init);
    run_targets(s, 5, apply);
    for (int k = 0; k < 5; k++) {
        char nm[64];
        snprintf(nm, sizeof nm, "v%d_0", k);
        pst_tensor *w = pst_var_read(pst_var_store_find(pst_session_vars(s), nm));
        for (int i = 0; i < 2; i++) {
            double x = w0[i], gg = gr[i], s1 = i ? 0.2 : 0.1, want = 0;
            if (k == 0) want = x - 0.1 * gg;
            if (k == 1) want = x - 0.1 * (0.9 * s1 + gg);
            if (k == 2) {
                double m = s1 + (gg - s1) * 0.1, v = s1 + (gg * gg - s1) * 0.001;
                double lr_t = 0.1 * sqrt(1 - 0.75) / (1 - 0.5);
                want = x - lr_t * m / (sqrt(v) + 1e-3);
            }
            if (k == 3) want = x - 0.1 * gg / sqrt(s1 + gg * gg);
            if (k == 4) {
                double ms = 0.9 * s1 + 0.1 * gg * gg, mom = 0.9 * s1 + 0.1 * gg / sqrt(ms + 1e-3);
                want = x - mom;
            }
            ck_assert_msg(fabs(pst_tensor_f32(w)[i] - want) < 1e-5, "%s element %d: %g want %g",
                          ops[k], i, pst_tensor_f32(w)[i], want);
        }
        pst_tensor_unref(w);
    }
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* ReadVariableOp's gradient is the identity (checked by finite differences on a fed value),
 * and pst_gradients reaches a handle through it. */
START_TEST(test_read_variable_gradient) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(2, 2));
    pst_node_builder *b = pst_nb_new(g, "ReadVariableOp", NULL);
    pst_nb_input(b, x);
    pst_nb_attr_type(b, "dtype", PST_DOUBLE);
    pst_output r = pst_nb_finish_out(b);
    pst_output y = pst_mul(g, r, r, NULL);
    pst_tensor *v = pst_test_rand(PST_DOUBLE, pst_shape_2d(2, 2), 3, -1, 1);
    double err = pst_gradcheck(g, y, 1, &x, &v, 1e-6);
    ck_assert_msg(err < 1e-6, "gradient error %g", err);
    pst_tensor_unref(v);

    pst_output w = handle(g, "w", pst_shape_1d(2));
    b = pst_nb_new(g, "ReadVariableOp", NULL);
    pst_nb_input(b, w);
    pst_nb_attr_type(b, "dtype", PST_FLOAT);
    pst_output loss = pst_reduce_sum(g, pst_mul(g, pst_nb_finish_out(b),
                                                pst_const_scalar(g, PST_FLOAT, 3, NULL), NULL),
                                     0, NULL, 0, NULL);
    pst_output dw;
    pst_status st = {0};
    ck_assert_msg(pst_gradients(g, 1, &loss, NULL, 1, &w, &dw, NULL, &st) == 0, "%s", st.msg);
    float w0[2] = {1, 2};
    pst_output ai[2] = {w, fvec(g, pst_shape_1d(2), w0)};
    pst_node *assign = node(g, "AssignVariableOp", "w/Assign", 2, ai);
    pst_session *s = pst_session_new(g, NULL, &st);
    run_targets(s, 1, &assign);
    pst_tensor *t = fetch(s, dw);
    int64_t d2[] = {2};
    PST_ASSERT_TENSOR(t, 1, d2, ((const double[]){3, 3}), 0);
    pst_tensor_unref(t);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* FTRL, Adadelta and the row-wise sparse updates (ops_train_more.c), on resource variables and
 * on a VariableV2, one step each against TF's formulas worked out here. */
START_TEST(test_ftrl_adadelta_sparse_apply) {
    pst_graph *g = pst_graph_new();
    float emb0[6] = {1, 2, 3, 4, 5, 6}, tenth[6] = {.1f, .1f, .1f, .1f, .1f, .1f}, zero[6] = {0};
    float w0[2] = {1, -2}, gr[2] = {0.5f, -0.25f};
    const char *vars[] = {"emb", "emb_acc", "w", "w_acc", "w_lin", "d", "d_acc", "d_upd"};
    const float *vals[] = {emb0, tenth, w0, tenth, zero, w0, tenth, tenth};
    pst_output h[8];
    pst_node *init[8];
    for (int i = 0; i < 8; i++) {
        pst_shape s = i < 2 ? pst_shape_2d(3, 2) : pst_shape_1d(2);
        h[i] = handle(g, vars[i], s);
        pst_output ai[2] = {h[i], fvec(g, s, vals[i])};
        init[i] = node(g, "AssignVariableOp", NULL, 2, ai);
    }
    pst_output lr = pst_const_scalar(g, PST_FLOAT, 0.1, NULL), grad = fvec(g, pst_shape_1d(2), gr);
    pst_output row_grad = fvec(g, pst_shape_2d(1, 2), gr);
    pst_output rows = pst_const_i32_vec(g, 1, (const int32_t[]){2}, NULL);
    pst_output ada[5] = {h[0], h[1], lr, row_grad, rows};
    pst_output ftrl[8] = {h[2], h[3], h[4], grad, lr, pst_const_scalar(g, PST_FLOAT, 0.01, NULL),
                          pst_const_scalar(g, PST_FLOAT, 0.02, NULL),
                          pst_const_scalar(g, PST_FLOAT, -0.5, NULL)};
    pst_output dd[7] = {h[5], h[6], h[7], lr, pst_const_scalar(g, PST_FLOAT, 0.9, NULL),
                        pst_const_scalar(g, PST_FLOAT, 1e-3, NULL), grad};
    pst_node *apply[3] = {node(g, "ResourceSparseApplyAdagrad", NULL, 5, ada),
                          node(g, "ResourceApplyFtrl", NULL, 8, ftrl),
                          node(g, "ResourceApplyAdadelta", NULL, 7, dd)};
    /* SparseApplyMomentum on a VariableV2, row 0 named twice: updated twice. */
    pst_output rv = pst_variable_v2(g, "ref", PST_FLOAT, pst_shape_2d(2, 1));
    pst_output racc = pst_variable_v2(g, "ref_acc", PST_FLOAT, pst_shape_2d(2, 1));
    pst_node *rinit[2] = {pst_assign(g, rv, fvec(g, pst_shape_2d(2, 1), w0), NULL).node,
                          pst_assign(g, racc, fvec(g, pst_shape_2d(2, 1), zero), NULL).node};
    pst_output mom[6] = {rv, racc, lr, fvec(g, pst_shape_2d(2, 1), gr),
                         pst_const_i32_vec(g, 2, (const int32_t[]){0, 0}, NULL),
                         pst_const_scalar(g, PST_FLOAT, 0.9, NULL)};
    pst_node *smom = node(g, "SparseApplyMomentum", NULL, 6, mom);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    run_targets(s, 8, init);
    run_targets(s, 2, rinit);
    run_targets(s, 3, apply);
    pst_tensor *o = fetch(s, pst_out(smom, 0));
    /* accum = 0.5, var = 1 - 0.05; then accum = 0.45 - 0.25 = 0.2, var -= 0.02 */
    ck_assert(fabs(pst_tensor_f32(o)[0] - 0.93) < 1e-6 && pst_tensor_f32(o)[1] == -2);
    pst_tensor_unref(o);
    pst_var_store *vs = pst_session_vars(s);
    pst_tensor *emb = pst_var_read(pst_var_store_find(vs, "emb"));
    const double want_emb[6] = {1, 2, 3, 4, 5 - 0.05 / sqrt(0.1 + 0.25), 6 + 0.025 / sqrt(0.1 + 0.0625)};
    for (int i = 0; i < 6; i++) ck_assert(fabs(pst_tensor_f32(emb)[i] - want_emb[i]) < 1e-5);
    pst_tensor_unref(emb);
    pst_tensor *w = pst_var_read(pst_var_store_find(vs, "w"));
    pst_tensor *dv = pst_var_read(pst_var_store_find(vs, "d"));
    for (int i = 0; i < 2; i++) {
        double x = w0[i], gg = gr[i], n = 0.1 + gg * gg;
        double lin = gg - (sqrt(n) - sqrt(0.1)) / 0.1 * x, quad = sqrt(n) / 0.1 + 0.04;
        double want = fabs(lin) > 0.01 ? ((lin > 0 ? 0.01 : -0.01) - lin) / quad : 0;
        ck_assert_msg(fabs(pst_tensor_f32(w)[i] - want) < 1e-5, "ftrl %d: %g vs %g", i,
                      pst_tensor_f32(w)[i], want);
        double acc = 0.9 * 0.1 + 0.1 * gg * gg, u = sqrt(0.1 + 1e-3) / sqrt(acc + 1e-3) * gg;
        ck_assert_msg(fabs(pst_tensor_f32(dv)[i] - (x - 0.1 * u)) < 1e-5, "adadelta %d", i);
    }
    pst_tensor_unref(w);
    pst_tensor_unref(dv);
    /* A row outside the variable is an error naming it. */
    pst_output bad[5] = {h[0], h[1], lr, row_grad, pst_const_i32_vec(g, 1, (const int32_t[]){3}, NULL)};
    pst_node *b = node(g, "ResourceSparseApplyAdagrad", NULL, 5, bad);
    st = (pst_status){0};
    ck_assert_int_eq(pst_session_run(s, NULL, 0, NULL, 0, &b, 1, NULL, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "'emb'") != NULL, "%s", st.msg);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* Centered RMSProp (ApplyCenteredRMSProp on a VariableV2, its resource and sparse forms
 * share the table) and ScatterUpdate. */
START_TEST(test_centered_rmsprop_and_scatter_update) {
    pst_graph *g = pst_graph_new();
    float w0[2] = {1, -2}, gr[2] = {0.5f, -0.25f}, tenth[2] = {.1f, .1f};
    const char *nm[4] = {"v", "mg", "ms", "mom"};
    pst_output r[4];
    pst_node *init[4];
    for (int i = 0; i < 4; i++) {
        r[i] = pst_variable_v2(g, nm[i], PST_FLOAT, pst_shape_1d(2));
        init[i] = pst_assign(g, r[i], fvec(g, pst_shape_1d(2), i == 0 ? w0 : tenth), NULL).node;
    }
    pst_output in[9] = {r[0], r[1], r[2], r[3], pst_const_scalar(g, PST_FLOAT, 0.1, NULL),
                        pst_const_scalar(g, PST_FLOAT, 0.9, NULL), pst_const_scalar(g, PST_FLOAT, 0.5, NULL),
                        pst_const_scalar(g, PST_FLOAT, 1e-2, NULL), fvec(g, pst_shape_1d(2), gr)};
    pst_node *ap = node(g, "ApplyCenteredRMSProp", NULL, 9, in);
    pst_output su[3] = {r[1], pst_const_i32_vec(g, 1, (const int32_t[]){1}, NULL),
                        fvec(g, pst_shape_1d(1), (const float[]){7})};
    pst_node_builder *b = pst_nb_new(g, "ScatterUpdate", NULL);
    pst_nb_inputs(b, 3, su);
    pst_node *upd = pst_nb_finish(b);
    ck_assert_msg(upd != NULL, "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    run_targets(s, 4, init);
    pst_tensor *o = fetch(s, pst_out(ap, 0));
    for (int i = 0; i < 2; i++) {
        double gg = gr[i], mg = 0.9 * 0.1 + 0.1 * gg, ms = 0.9 * 0.1 + 0.1 * gg * gg;
        double mom = 0.5 * 0.1 + 0.1 * gg / sqrt(ms - mg * mg + 1e-2);
        ck_assert_msg(fabs(pst_tensor_f32(o)[i] - (w0[i] - mom)) < 1e-5, "element %d", i);
    }
    pst_tensor_unref(o);
    o = fetch(s, pst_out(upd, 0));
    ck_assert(pst_tensor_f32(o)[1] == 7 && fabs(pst_tensor_f32(o)[0] - (0.09 + 0.05)) < 1e-6);
    pst_tensor_unref(o);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* AdaMax, AddSign, PowerSign and the proximal optimizers, one step each on VariableV2s
 * (var 1 and -2, slots 0.1, gradient 0.5 and -0.25) against TF's formulas. */
START_TEST(test_adamax_sign_proximal) {
    const char *ops[] = {"ApplyAdaMax", "ApplyAddSign", "ApplyPowerSign",
                         "ApplyProximalGradientDescent", "ApplyProximalAdagrad"};
    float w0[2] = {1, -2}, gr[2] = {0.5f, -0.25f}, tenth[2] = {.1f, .1f};
    for (int k = 0; k < 5; k++) {
        pst_graph *g = pst_graph_new();
        int n_refs = k == 0 ? 3 : k == 3 ? 1 : 2;
        pst_output r[3];
        pst_node *init[3];
        for (int i = 0; i < n_refs; i++) {
            char nm[16];
            snprintf(nm, sizeof nm, "v%d", i);
            r[i] = pst_variable_v2(g, nm, PST_FLOAT, pst_shape_1d(2));
            init[i] = pst_assign(g, r[i], fvec(g, pst_shape_1d(2), i == 0 ? w0 : tenth), NULL).node;
        }
        pst_output c[5];
        const double hv[5][5] = {{0.5, 0.1, 0.9, 0.99, 1e-3}, {0.1, 1, 0.5, 0.9}, {0.1, 0.7, 0.5, 0.9},
                                 {0.1, 0.05, 0.2}, {0.1, 0.05, 0.2}};
        const int nh[5] = {5, 4, 4, 3, 3};
        for (int i = 0; i < nh[k]; i++) c[i] = pst_const_scalar(g, PST_FLOAT, hv[k][i], NULL);
        pst_output in[10];
        int n = 0;
        for (int i = 0; i < n_refs; i++) in[n++] = r[i];
        for (int i = 0; i < nh[k]; i++) in[n++] = c[i];
        in[n++] = fvec(g, pst_shape_1d(2), gr);
        pst_node *ap = node(g, ops[k], NULL, n, in);
        pst_status st = {0};
        pst_session *s = pst_session_new(g, NULL, &st);
        run_targets(s, n_refs, init);
        pst_tensor *o = fetch(s, pst_out(ap, 0));
        for (int i = 0; i < 2; i++) {
            double x = w0[i], gg = gr[i], want, sg = gg > 0 ? 1 : -1;
            const double *h = hv[k];
            if (k == 0) {
                double m = h[2] * 0.1 + (1 - h[2]) * gg, v = fmax(h[3] * 0.1, fabs(gg));
                want = x - h[1] / (1 - h[0]) * m / (v + h[4]);
            } else if (k <= 2) {
                double m = h[3] * 0.1 + (1 - h[3]) * gg, sm = m > 0 ? 1 : -1;
                want = x - h[0] * gg * (k == 1 ? h[1] + h[2] * sg * sm : exp(h[1] * h[2] * sg * sm));
            } else {
                double lr = k == 3 ? h[0] : h[0] / sqrt(0.1 + gg * gg), p = x - lr * gg;
                want = (p > 0 ? 1 : -1) * fmax(fabs(p) - lr * h[1], 0) / (1 + lr * h[2]);
            }
            ck_assert_msg(fabs(pst_tensor_f32(o)[i] - want) < 1e-5, "%s element %d: %g want %g", ops[k], i,
                          pst_tensor_f32(o)[i], want);
        }
        pst_tensor_unref(o);
        pst_session_free(s);
        pst_graph_free(g);
    }
}
END_TEST

int main(void) {
    pst_ops_init();
    Suite *s = suite_create("ops_resource");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_handle_read_assign_gather_scatter);
    tcase_add_test(tc, test_resource_apply_ops);
    tcase_add_test(tc, test_read_variable_gradient);
    tcase_add_test(tc, test_ftrl_adadelta_sparse_apply);
    tcase_add_test(tc, test_centered_rmsprop_and_scatter_update);
    tcase_add_test(tc, test_adamax_sign_proximal);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
