/*
 * losses — tf.losses / slim losses. Each returns a scalar, adds it to the "losses" collection
 * and reduces like TensorFlow's default SUM_BY_NONZERO_WEIGHTS: the weighted sum divided by
 * the number of non-zero weights (with no weights: the mean). `weights` may be a null output.
 *
 *     pst_output loss = pst_loss_sparse_softmax_cross_entropy(g, logits, labels,
 *                                                             pst_out(NULL, 0), NULL);
 *     pst_output total = pst_get_total_loss(g, 1, "total_loss");
 */
#ifndef PST_LOSSES_H
#define PST_LOSSES_H

#include "graph.h"

pst_output pst_loss_softmax_cross_entropy(pst_graph *g, pst_output logits, pst_output onehot_labels,
                                          pst_output weights, float label_smoothing,
                                          const char *scope);
pst_output pst_loss_sparse_softmax_cross_entropy(pst_graph *g, pst_output logits,
                                                 pst_output labels, pst_output weights,
                                                 const char *scope);
pst_output pst_loss_sigmoid_cross_entropy(pst_graph *g, pst_output logits, pst_output labels,
                                          pst_output weights, float label_smoothing,
                                          const char *scope);
/* slim's sum_of_squares is the same loss. */
pst_output pst_loss_mean_squared_error(pst_graph *g, pst_output predictions, pst_output labels,
                                       pst_output weights, const char *scope);
pst_output pst_loss_absolute_difference(pst_graph *g, pst_output predictions, pst_output labels,
                                        pst_output weights, const char *scope);
pst_output pst_loss_huber(pst_graph *g, pst_output predictions, pst_output labels,
                          pst_output weights, float delta, const char *scope);
/* Adds a custom scalar loss to "losses". */
void pst_add_loss(pst_graph *g, pst_output loss);
/* Sum of "losses" (and "regularization_losses" when asked); an error when there are none. */
pst_output pst_get_total_loss(pst_graph *g, int add_regularization_losses, const char *name);

#endif
