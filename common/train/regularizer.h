/*
 * regularizer — slim's weight regularizers: the penalty of a weight tensor, which layers add to
 * the "regularization_losses" collection.
 *
 *     pst_regularizer r = pst_regularizer_l2(1e-4);
 *     pst_output penalty = pst_regularizer_build(g, &r, weights);
 */
#ifndef PST_REGULARIZER_H
#define PST_REGULARIZER_H

#include "graph.h"

typedef enum pst_regularizer_kind { PST_REG_NONE = 0, PST_REG_L1, PST_REG_L2, PST_REG_L1_L2 } pst_regularizer_kind;
typedef struct pst_regularizer {
    pst_regularizer_kind kind;
    double l1, l2; /* scales */
} pst_regularizer;

pst_regularizer pst_regularizer_none(void);
pst_regularizer pst_regularizer_l1(double scale);
/* scale * sum(w^2) / 2, like slim.l2_regularizer (tf.nn.l2_loss). */
pst_regularizer pst_regularizer_l2(double scale);
pst_regularizer pst_regularizer_l1_l2(double l1, double l2);
/* Builds the penalty of w (a scalar), or a null output for PST_REG_NONE. */
pst_output pst_regularizer_build(pst_graph *g, const pst_regularizer *r, pst_output w);

#endif
