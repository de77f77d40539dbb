/* regularizer: weight penalties (see regularizer.h). */
#include "regularizer.h"

#include "ops.h"

pst_regularizer pst_regularizer_none(void) { return (pst_regularizer){PST_REG_NONE, 0, 0}; }
pst_regularizer pst_regularizer_l1(double scale) { return (pst_regularizer){PST_REG_L1, scale, 0}; }
pst_regularizer pst_regularizer_l2(double scale) { return (pst_regularizer){PST_REG_L2, 0, scale}; }
pst_regularizer pst_regularizer_l1_l2(double l1, double l2) {
    return (pst_regularizer){PST_REG_L1_L2, l1, l2};
}

pst_output pst_regularizer_build(pst_graph *g, const pst_regularizer *r, pst_output w) {
    if (r == NULL || r->kind == PST_REG_NONE || w.node == NULL) return pst_out(NULL, 0);
    pst_dtype dt = pst_output_dtype(w);
    pst_output l1 = pst_out(NULL, 0), l2 = pst_out(NULL, 0);
    if ((r->kind == PST_REG_L1 || r->kind == PST_REG_L1_L2) && r->l1 != 0)
        l1 = pst_mul(g, pst_const_scalar(g, dt, r->l1, "scale"),
                     pst_reduce_sum(g, pst_abs(g, w, NULL), 0, NULL, 0, NULL), "l1_regularizer");
    if ((r->kind == PST_REG_L2 || r->kind == PST_REG_L1_L2) && r->l2 != 0)
        l2 = pst_mul(g, pst_const_scalar(g, dt, r->l2, "scale"), pst_l2_loss(g, w, NULL),
                     "l2_regularizer");
    if (l1.node && l2.node) return pst_add(g, l1, l2, "l1_l2_regularizer");
    return l1.node ? l1 : l2;
}
