#include "metrics.h"

#include <stdlib.h>

#include "ops.h"

static pst_output local_zero(pst_graph *g, const char *name) {
    const char *cols[] = {"metric_variables", NULL};
    pst_variable_opts o = {.name = name, .initial_value = pst_const_f32(g, 0, NULL), .local = 1,
                           .collections = cols};
    return pst_variable_ex(g, &o);
}

/* total / count, 0 when count is 0. */
static pst_output safe_ratio(pst_graph *g, pst_output total, pst_output count, const char *name) {
    return pst_real_div(g, total, pst_maximum(g, count, pst_const_f32(g, 1e-30f, NULL), NULL), name);
}

/* Mean of `values` (cast to float) accumulated over batches. */
static pst_metric mean_of(pst_graph *g, pst_output values, const char *name) {
    pst_metric m = {0};
    pst_graph_push_name_scope(g, name, 0);
    pst_output total = local_zero(g, "total"), count = local_zero(g, "count");
    pst_output v = pst_output_dtype(values) == PST_FLOAT ? values : pst_cast(g, values, PST_FLOAT, NULL);
    pst_output bs = pst_cast(g, pst_size_of(g, v, PST_INT32, NULL), PST_FLOAT, NULL);
    pst_output ut = pst_assign_add(g, total, pst_reduce_sum(g, v, 0, NULL, 0, NULL), "update_total");
    pst_output uc = pst_assign_add(g, count, bs, "update_count");
    m.value = safe_ratio(g, pst_variable_value(total), pst_variable_value(count), "value");
    m.update = safe_ratio(g, ut, uc, "update_op");
    m.n_vars = 2;
    m.vars[0] = total;
    m.vars[1] = count;
    pst_graph_pop_name_scope(g);
    return m;
}

pst_metric pst_metric_mean(pst_graph *g, pst_output values, const char *name) {
    return mean_of(g, values, name ? name : "mean");
}

pst_metric pst_metric_accuracy(pst_graph *g, pst_output labels, pst_output predictions,
                               const char *name) {
    if (labels.node && predictions.node && pst_output_dtype(labels) != pst_output_dtype(predictions))
        predictions = pst_cast(g, predictions, pst_output_dtype(labels), NULL);
    return mean_of(g, pst_equal(g, labels, predictions, NULL), name ? name : "accuracy");
}

pst_metric pst_metric_mean_absolute_error(pst_graph *g, pst_output l, pst_output p, const char *name) {
    return mean_of(g, pst_abs(g, pst_sub(g, p, l, NULL), NULL), name ? name : "mean_absolute_error");
}

pst_metric pst_metric_mean_squared_error(pst_graph *g, pst_output l, pst_output p, const char *name) {
    return mean_of(g, pst_square(g, pst_sub(g, p, l, NULL), NULL), name ? name : "mean_squared_error");
}

pst_metric pst_metric_mean_relative_error(pst_graph *g, pst_output l, pst_output p,
                                          pst_output normalizer, const char *name) {
    return mean_of(g, pst_real_div(g, pst_abs(g, pst_sub(g, p, l, NULL), NULL), normalizer, NULL),
                   name ? name : "mean_relative_error");
}

pst_metric pst_metric_percentage_less(pst_graph *g, pst_output values, float threshold,
                                      const char *name) {
    pst_output t = pst_const_scalar(g, pst_output_dtype(values), threshold, NULL);
    return mean_of(g, pst_less(g, values, t, NULL), name ? name : "percentage_below_threshold");
}

static pst_output as_bool(pst_graph *g, pst_output x) {
    if (x.node == NULL || pst_output_dtype(x) == PST_BOOL) return x;
    return pst_not_equal(g, x, pst_const_scalar(g, pst_output_dtype(x), 0, NULL), NULL);
}

/* tp / (tp + other), other = false positives (precision) or false negatives (recall). */
static pst_metric ratio_metric(pst_graph *g, pst_output labels, pst_output predictions, int recall,
                               const char *name) {
    pst_metric m = {0};
    pst_graph_push_name_scope(g, name, 0);
    pst_output l = as_bool(g, labels), p = as_bool(g, predictions);
    pst_output tp = local_zero(g, "true_positives");
    pst_output other = local_zero(g, recall ? "false_negatives" : "false_positives");
    pst_output is_tp = pst_logical_and(g, l, p, NULL);
    pst_output is_other = recall ? pst_logical_and(g, l, pst_logical_not(g, p, NULL), NULL)
                                 : pst_logical_and(g, pst_logical_not(g, l, NULL), p, NULL);
    pst_output ut = pst_assign_add(g, tp, pst_reduce_sum(g, pst_cast(g, is_tp, PST_FLOAT, NULL), 0, NULL, 0, NULL),
                                   "update_tp");
    pst_output uo = pst_assign_add(g, other,
                                   pst_reduce_sum(g, pst_cast(g, is_other, PST_FLOAT, NULL), 0, NULL, 0, NULL),
                                   "update_other");
    m.value = safe_ratio(g, pst_variable_value(tp),
                         pst_add(g, pst_variable_value(tp), pst_variable_value(other), NULL), "value");
    m.update = safe_ratio(g, ut, pst_add(g, ut, uo, NULL), "update_op");
    m.n_vars = 2;
    m.vars[0] = tp;
    m.vars[1] = other;
    pst_graph_pop_name_scope(g);
    return m;
}

pst_metric pst_metric_precision(pst_graph *g, pst_output labels, pst_output predictions,
                                const char *name) {
    return ratio_metric(g, labels, predictions, 0, name ? name : "precision");
}

pst_metric pst_metric_recall(pst_graph *g, pst_output labels, pst_output predictions,
                             const char *name) {
    return ratio_metric(g, labels, predictions, 1, name ? name : "recall");
}

pst_node *pst_metrics_aggregate(pst_graph *g, int n, const pst_metric *m, pst_output *values) {
    pst_node **ups = calloc((size_t)n + 1, sizeof *ups);
    PST_ASSERT(ups != NULL);
    for (int i = 0; i < n; i++) {
        values[i] = m[i].value;
        ups[i] = m[i].update.node;
    }
    pst_node *grp = pst_group(g, n, ups, "metric_updates");
    free(ups);
    return grp;
}

pst_node *pst_metrics_reset(pst_graph *g, int n, const pst_metric *m, const char *name) {
    pst_output vars[64];
    int k = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m[i].n_vars && k < 64; j++) vars[k++] = m[i].vars[j];
    return pst_variables_initializer(g, k, vars, name ? name : "reset_metrics");
}

int pst_evaluate(pst_session *s, pst_node *reset, int64_t max_batches, pst_eval_feed_fn feed,
                 void *ctx, int n, const pst_metric *m, double *out, pst_status *st) {
    int rc;
    if (reset && (rc = pst_session_run_target(s, reset, st)) < 0) return rc;
    pst_node **ups = calloc((size_t)n + 1, sizeof *ups);
    PST_ASSERT(ups != NULL);
    for (int i = 0; i < n; i++) ups[i] = m[i].update.node;
    rc = 0;
    for (int64_t b = 0; max_batches < 0 || b < max_batches; b++) {
        pst_feed feeds[8];
        int nf = 0;
        int r = feed(ctx, b, feeds, &nf, st);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r == 1) break;
        if ((rc = pst_session_run(s, feeds, nf, NULL, 0, ups, n, NULL, st)) < 0) break;
    }
    for (int i = 0; rc == 0 && i < n; i++) {
        pst_tensor *t = pst_session_run1(s, m[i].value, st);
        if (t == NULL) {
            rc = st ? st->code : PST_E_INTERNAL;
            break;
        }
        out[i] = pst_tensor_get_f64(t, 0);
        pst_tensor_unref(t);
    }
    free(ups);
    return rc;
}
