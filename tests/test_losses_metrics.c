/* Losses, streaming metrics and learning-rate schedules against hand-computed values. */
#include <math.h>
#include <string.h>

#include "losses.h"
#include "lr_schedule.h"
#include "metrics.h"
#include "testutil.h"

static double scalar(pst_graph *g, pst_output o) {
    pst_status st = {0};
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *t = pst_test_run(s, o, 0, NULL);
    double v = pst_tensor_get_f64(t, 0);
    pst_tensor_unref(t);
    pst_session_free(s);
    return v;
}

static pst_output vec(pst_graph *g, int n, const float *v) {
    return pst_const_f32_tensor(g, pst_shape_1d(n), v, NULL);
}

START_TEST(test_regression_losses) {
    pst_graph *g = pst_graph_new();
    pst_output p = vec(g, 4, (float[]){1, 2, 3, 4}), l = vec(g, 4, (float[]){1, 0, 5, 3.5f});
    pst_output none = pst_out(NULL, 0);
    /* errors: 0, 2, -2, 0.5 */
    ck_assert_double_eq_tol(scalar(g, pst_loss_mean_squared_error(g, p, l, none, NULL)), (0 + 4 + 4 + 0.25) / 4, 1e-6);
    ck_assert_double_eq_tol(scalar(g, pst_loss_absolute_difference(g, p, l, none, NULL)), (0 + 2 + 2 + 0.5) / 4, 1e-6);
    /* huber, delta 1: 0, 1.5, 1.5, 0.125 */
    ck_assert_double_eq_tol(scalar(g, pst_loss_huber(g, p, l, none, 1.0f, NULL)), (0 + 1.5 + 1.5 + 0.125) / 4, 1e-6);
    /* weights 0 on two elements: sum of the rest over 2 non-zero weights */
    pst_output w = vec(g, 4, (float[]){0, 1, 0, 2});
    ck_assert_double_eq_tol(scalar(g, pst_loss_mean_squared_error(g, p, l, w, NULL)), (4 + 0.5) / 2, 1e-6);
    int n;
    pst_graph_collection(g, PST_LOSSES, &n);
    ck_assert_int_eq(n, 4);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_cross_entropy_losses) {
    pst_graph *g = pst_graph_new();
    pst_output logits = pst_const_f32_tensor(g, pst_shape_2d(2, 3), (float[]){1, 2, 3, 0, 0, 0}, NULL);
    pst_output onehot = pst_const_f32_tensor(g, pst_shape_2d(2, 3), (float[]){0, 0, 1, 1, 0, 0}, NULL);
    double z = exp(1) + exp(2) + exp(3);
    double l0 = log(z) - 3, l1 = log(3.0);
    pst_output none = pst_out(NULL, 0);
    ck_assert_double_eq_tol(scalar(g, pst_loss_softmax_cross_entropy(g, logits, onehot, none, 0, NULL)), (l0 + l1) / 2, 1e-5);
    ck_assert_double_eq_tol(scalar(g, pst_loss_sparse_softmax_cross_entropy(
                                          g, logits, pst_const_i64_vec(g, 2, (int64_t[]){2, 0}, NULL), none, NULL)),
                            (l0 + l1) / 2, 1e-5);
    /* label smoothing 0.3 over 3 classes: targets 0.1, 0.1, 0.8 for row 0 */
    double s0 = -(0.1 * (1 - log(z)) + 0.1 * (2 - log(z)) + 0.8 * (3 - log(z)));
    double s1 = -(0.8 * (0 - log(3.0)) + 0.1 * (0 - log(3.0)) * 2);
    ck_assert_double_eq_tol(scalar(g, pst_loss_softmax_cross_entropy(g, logits, onehot, none, 0.3f, NULL)),
                            (s0 + s1) / 2, 1e-5);
    /* sigmoid xent of x=2, z=1 and x=-1, z=0 */
    pst_output x = vec(g, 2, (float[]){2, -1}), t = vec(g, 2, (float[]){1, 0});
    double sg = (log(1 + exp(-2)) + log(1 + exp(-1))) / 2;
    ck_assert_double_eq_tol(scalar(g, pst_loss_sigmoid_cross_entropy(g, x, t, none, 0, NULL)), sg, 1e-5);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_total_loss_includes_regularization) {
    pst_graph *g = pst_graph_new();
    pst_add_loss(g, pst_const_f32(g, 1.5f, NULL));
    pst_graph_add_to_collection(g, PST_REGULARIZATION_LOSSES, pst_const_f32(g, 0.25f, NULL));
    ck_assert_double_eq_tol(scalar(g, pst_get_total_loss(g, 1, NULL)), 1.75, 1e-6);
    ck_assert_double_eq_tol(scalar(g, pst_get_total_loss(g, 0, "data_loss")), 1.5, 1e-6);
    pst_graph_free(g);
    g = pst_graph_new();
    ck_assert_ptr_null(pst_get_total_loss(g, 1, NULL).node);
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "no losses"));
    pst_graph_free(g);
}
END_TEST

typedef struct batches {
    pst_output l, p;
    pst_tensor *lt[2], *pt[2];
} batches;

static int feed(void *ctx, int64_t i, pst_feed *f, int *n, pst_status *st) {
    (void)st;
    batches *b = ctx;
    if (i >= 2) return 1;
    f[0] = (pst_feed){b->l, b->lt[i]};
    f[1] = (pst_feed){b->p, b->pt[i]};
    *n = 2;
    return 0;
}

START_TEST(test_streaming_metrics_over_batches) {
    pst_graph *g = pst_graph_new();
    batches b;
    b.l = pst_placeholder(g, "labels", PST_FLOAT, pst_shape_1d(-1));
    b.p = pst_placeholder(g, "predictions", PST_FLOAT, pst_shape_1d(-1));
    float l0[3] = {1, 0, 1}, p0[3] = {1, 1, 0}, l1[2] = {0, 1}, p1[2] = {0, 1};
    b.lt[0] = pst_tensor_from_f32(pst_shape_1d(3), l0);
    b.pt[0] = pst_tensor_from_f32(pst_shape_1d(3), p0);
    b.lt[1] = pst_tensor_from_f32(pst_shape_1d(2), l1);
    b.pt[1] = pst_tensor_from_f32(pst_shape_1d(2), p1);
    pst_metric m[8];
    m[0] = pst_metric_accuracy(g, b.l, b.p, NULL);
    m[1] = pst_metric_mean(g, b.p, NULL);
    m[2] = pst_metric_mean_absolute_error(g, b.l, b.p, NULL);
    m[3] = pst_metric_mean_squared_error(g, b.l, b.p, NULL);
    m[4] = pst_metric_precision(g, b.l, b.p, NULL);
    m[5] = pst_metric_recall(g, b.l, b.p, NULL);
    m[6] = pst_metric_percentage_less(g, b.p, 0.5f, NULL);
    m[7] = pst_metric_mean_relative_error(g, b.l, b.p, pst_const_f32(g, 2, NULL), NULL);
    pst_output values[8];
    pst_node *all = pst_metrics_aggregate(g, 8, m, values);
    ck_assert_ptr_nonnull(all);
    pst_node *reset = pst_metrics_reset(g, 8, m, NULL);
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    double out[8];
    ck_assert_msg(pst_evaluate(s, reset, -1, feed, &b, 8, m, out, &st) == 0, "%s", st.msg);
    /* 5 examples: labels 1 0 1 0 1, predictions 1 1 0 0 1 */
    ck_assert_double_eq_tol(out[0], 3.0 / 5, 1e-6); /* accuracy */
    ck_assert_double_eq_tol(out[1], 3.0 / 5, 1e-6); /* mean of predictions */
    ck_assert_double_eq_tol(out[2], 2.0 / 5, 1e-6); /* MAE */
    ck_assert_double_eq_tol(out[3], 2.0 / 5, 1e-6); /* MSE */
    ck_assert_double_eq_tol(out[4], 2.0 / 3, 1e-6); /* precision: tp 2, fp 1 */
    ck_assert_double_eq_tol(out[5], 2.0 / 3, 1e-6); /* recall: tp 2, fn 1 */
    ck_assert_double_eq_tol(out[6], 2.0 / 5, 1e-6); /* predictions below 0.5 */
    ck_assert_double_eq_tol(out[7], 1.0 / 5, 1e-6); /* mean |l - p| / 2 */
    /* Resetting starts over: one batch only. */
    ck_assert_int_eq(pst_evaluate(s, reset, 1, feed, &b, 1, m, out, &st), 0);
    ck_assert_double_eq_tol(out[0], 1.0 / 3, 1e-6);
    for (int i = 0; i < 2; i++) {
        pst_tensor_unref(b.lt[i]);
        pst_tensor_unref(b.pt[i]);
    }
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_learning_rate_schedules) {
    int64_t steps[3] = {0, 250, 1500};
    for (int k = 0; k < 3; k++) {
        pst_graph *g = pst_graph_new();
        pst_output step = pst_const_i64(g, steps[k], "step");
        double t = (double)steps[k];
        ck_assert_double_eq_tol(scalar(g, pst_lr_exponential_decay(g, 0.1f, step, 100, 0.5f, 0)),
                                0.1 * pow(0.5, t / 100), 1e-6);
        ck_assert_double_eq_tol(scalar(g, pst_lr_exponential_decay(g, 0.1f, step, 100, 0.5f, 1)),
                                0.1 * pow(0.5, floor(t / 100)), 1e-6);
        double pc = t <= 100 ? 1.0 : t <= 1000 ? 0.5 : 0.1;
        ck_assert_double_eq_tol(scalar(g, pst_lr_piecewise_constant(g, step, 2, (int64_t[]){100, 1000},
                                                                    (float[]){1.0f, 0.5f, 0.1f})),
                                pc, 1e-6);
        double ts = t < 1000 ? t : 1000;
        ck_assert_double_eq_tol(scalar(g, pst_lr_polynomial_decay(g, 0.1f, step, 1000, 0.01f, 2, 0)),
                                (0.1 - 0.01) * pow(1 - ts / 1000, 2) + 0.01, 1e-6);
        ck_assert_double_eq_tol(scalar(g, pst_lr_cosine_decay(g, 0.1f, step, 1000, 0.1f)),
                                0.1 * (0.9 * 0.5 * (1 + cos(M_PI * ts / 1000)) + 0.1), 1e-6);
        /* a schedule chosen at run time: its op and its value in C agree */
        pst_lr_schedule sch[4] = {{PST_LR_CONSTANT, 0.1f, 0, 0, 0, 0},
                                  {PST_LR_EXPONENTIAL, 0.1f, 100, 0.5f, 0, 1},
                                  {PST_LR_COSINE, 0.1f, 1000, 0, 0.01f, 0},
                                  {PST_LR_POLYNOMIAL, 0.1f, 1000, 0, 0.01f, 0}};
        for (int i = 0; i < 4; i++) {
            pst_output op = pst_lr_schedule_op(g, &sch[i], step);
            ck_assert_int_eq(op.node == NULL, i == 0);
            ck_assert_double_eq_tol(op.node ? scalar(g, op) : 0.1, pst_lr_schedule_at(&sch[i], steps[k]),
                                    1e-6);
        }
        ck_assert_int_eq(pst_lr_kind_parse("cosine"), PST_LR_COSINE);
        ck_assert_int_eq(pst_lr_kind_parse("linear"), -1);
        pst_graph_free(g);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("losses_metrics");
    TCase *tc = tcase_create("losses_metrics");
    tcase_add_test(tc, test_regression_losses);
    tcase_add_test(tc, test_cross_entropy_losses);
    tcase_add_test(tc, test_total_loss_includes_regularization);
    tcase_add_test(tc, test_streaming_metrics_over_batches);
    tcase_add_test(tc, test_learning_rate_schedules);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
