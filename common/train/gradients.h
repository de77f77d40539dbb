/*
 * gradients — reverse-mode autodiff as a graph-to-graph transform (tf.gradients).
 *
 * Adds backward nodes under the name scope "gradients" and returns, for each x, the sum of
 * d(sum of ys)/dx. Each op's gradient function (op.h) builds its part; partial gradients of an
 * output used several times are summed with AddN. Backward nodes are placed on the device of
 * the forward node they differentiate (colocated), so a partitioned graph keeps each layer's
 * backward pass where its forward pass runs.
 *
 *     pst_output dw;
 *     pst_gradients(g, 1, &loss, NULL, 1, &w, &dw, &st);
 *
 * An x that does not affect any y gets a null output (no gradient), not an error; *n_none
 * (optional) counts them.
 */
#ifndef PST_GRADIENTS_H
#define PST_GRADIENTS_H

#include "graph.h"

/* grad_ys: NULL (ones) or n_ys initial gradients. dxs: n_xs outputs. Returns 0 or an error
 * (also recorded in the graph), e.g. an op on the path with no gradient function. */
int pst_gradients(pst_graph *g, int n_ys, const pst_output *ys, const pst_output *grad_ys,
                  int n_xs, const pst_output *xs, pst_output *dxs, int *n_none, pst_status *st);

#endif
