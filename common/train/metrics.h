/*
 * metrics — streaming metrics (tf.metrics): each keeps local accumulator variables (in
 * "local_variables" and "metric_variables") and gives a value op (the metric so far) and an
 * update op (adds one batch and returns the new value). pst_evaluate runs the update ops over
 * a dataset and returns the final values.
 *
 *     pst_metric acc = pst_metric_accuracy(g, labels, pst_argmax(g, logits, 1, PST_INT64, NULL),
 *                                          "accuracy");
 *     pst_evaluate(sess, n_batches, feed_batch, &data, 1, &acc, &value, &st);
 */
#ifndef PST_METRICS_H
#define PST_METRICS_H

#include "session.h"

#define PST_METRIC_MAX_VARS 3

typedef struct pst_metric {
    pst_output value;
    pst_output update;
    int n_vars;
    pst_output vars[PST_METRIC_MAX_VARS];
} pst_metric;

pst_metric pst_metric_accuracy(pst_graph *g, pst_output labels, pst_output predictions,
                               const char *name);
pst_metric pst_metric_mean(pst_graph *g, pst_output values, const char *name);
pst_metric pst_metric_mean_absolute_error(pst_graph *g, pst_output labels, pst_output predictions,
                                          const char *name);
pst_metric pst_metric_mean_squared_error(pst_graph *g, pst_output labels, pst_output predictions,
                                         const char *name);
pst_metric pst_metric_mean_relative_error(pst_graph *g, pst_output labels, pst_output predictions,
                                          pst_output normalizer, const char *name);
/* Binary labels and predictions (bool, or numbers where non-zero is true). */
pst_metric pst_metric_precision(pst_graph *g, pst_output labels, pst_output predictions,
                                const char *name);
pst_metric pst_metric_recall(pst_graph *g, pst_output labels, pst_output predictions,
                             const char *name);
/* Fraction of values below threshold (tf.metrics.percentage_below). */
pst_metric pst_metric_percentage_less(pst_graph *g, pst_output values, float threshold,
                                      const char *name);

/* slim.metrics.aggregate_metric_map: the value outputs in order and one op grouping every
 * update. */
pst_node *pst_metrics_aggregate(pst_graph *g, int n, const pst_metric *m, pst_output *values);
/* An op re-initializing the metrics' accumulators. */
pst_node *pst_metrics_reset(pst_graph *g, int n, const pst_metric *m, const char *name);

/* Feeds batch i (0-based) for evaluation; returns 0, or 1 when there are no more batches. */
typedef int (*pst_eval_feed_fn)(void *ctx, int64_t i, pst_feed *feeds, int *n_feeds,
                                pst_status *st);
/* Resets, runs every update for each batch (at most max_batches, -1 for all), then fetches
 * the values into out (doubles). */
int pst_evaluate(pst_session *s, pst_node *reset, int64_t max_batches, pst_eval_feed_fn feed,
                 void *ctx, int n, const pst_metric *m, double *out, pst_status *st);

#endif
