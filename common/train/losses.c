#include "losses.h"

#include <stdlib.h>

#include "ops.h"

/* Weighted reduction of per-element losses (SUM_BY_NONZERO_WEIGHTS). */
static pst_output reduce_loss(pst_graph *g, pst_output per, pst_output w) {
    if (w.node == NULL) return pst_reduce_mean(g, per, 0, NULL, 0, "value");
    pst_dtype dt = pst_output_dtype(per);
    pst_output wb = pst_mul(g, w, pst_ones_like(g, per, NULL), "broadcast_weights");
    pst_output sum = pst_reduce_sum(g, pst_mul(g, per, wb, NULL), 0, NULL, 0, "Sum");
    pst_output nz = pst_reduce_sum(
        g, pst_cast(g, pst_not_equal(g, wb, pst_const_scalar(g, dt, 0, NULL), NULL), dt, NULL), 0,
        NULL, 0, "num_present");
    /* safe division: 0 when no weight is present */
    pst_output den = pst_maximum(g, nz, pst_const_scalar(g, dt, 1e-30, NULL), NULL);
    return pst_real_div(g, sum, den, "value");
}

static pst_output finish(pst_graph *g, pst_output loss) {
    pst_graph_pop_name_scope(g);
    if (loss.node) pst_graph_add_to_collection(g, PST_LOSSES, loss);
    return loss;
}

pst_output pst_loss_softmax_cross_entropy(pst_graph *g, pst_output logits, pst_output onehot,
                                          pst_output weights, float smoothing, const char *scope) {
    pst_graph_push_name_scope(g, scope ? scope : "softmax_cross_entropy_loss", 0);
    if (smoothing > 0 && onehot.node) {
        pst_shape s = pst_output_shape(onehot);
        double k = s.rank == 2 && s.dims[1] > 0 ? (double)s.dims[1] : 1;
        onehot = pst_add(g, pst_mul(g, onehot, pst_const_f32(g, 1.0f - smoothing, NULL), NULL),
                         pst_const_f32(g, (float)(smoothing / k), NULL), "smoothed_labels");
    }
    pst_node *x = pst_softmax_cross_entropy_with_logits(g, logits, onehot, "xentropy");
    return finish(g, x ? reduce_loss(g, pst_out(x, 0), weights) : pst_out(NULL, 0));
}

pst_output pst_loss_sparse_softmax_cross_entropy(pst_graph *g, pst_output logits,
                                                 pst_output labels, pst_output weights,
                                                 const char *scope) {
    pst_graph_push_name_scope(g, scope ? scope : "sparse_softmax_cross_entropy_loss", 0);
    pst_node *x = pst_sparse_softmax_cross_entropy_with_logits(g, logits, labels, "xentropy");
    return finish(g, x ? reduce_loss(g, pst_out(x, 0), weights) : pst_out(NULL, 0));
}

pst_output pst_loss_sigmoid_cross_entropy(pst_graph *g, pst_output logits, pst_output z,
                                          pst_output weights, float smoothing, const char *scope) {
    pst_graph_push_name_scope(g, scope ? scope : "sigmoid_cross_entropy_loss", 0);
    if (smoothing > 0)
        z = pst_add(g, pst_mul(g, z, pst_const_f32(g, 1.0f - smoothing, NULL), NULL),
                    pst_const_f32(g, 0.5f * smoothing, NULL), "smoothed_labels");
    /* max(x, 0) - x * z + log(1 + exp(-|x|)), stable for any x */
    pst_output zero = pst_zeros_like(g, logits, NULL);
    pst_output per = pst_add(
        g, pst_sub(g, pst_maximum(g, logits, zero, NULL), pst_mul(g, logits, z, NULL), NULL),
        pst_log(g, pst_add(g, pst_ones_like(g, logits, NULL),
                           pst_exp(g, pst_neg(g, pst_abs(g, logits, NULL), NULL), NULL), NULL),
                NULL),
        "logistic_loss");
    return finish(g, reduce_loss(g, per, weights));
}

pst_output pst_loss_mean_squared_error(pst_graph *g, pst_output p, pst_output l, pst_output w,
                                       const char *scope) {
    pst_graph_push_name_scope(g, scope ? scope : "mean_squared_error", 0);
    pst_output per = pst_square(g, pst_sub(g, p, l, NULL), NULL);
    return finish(g, reduce_loss(g, per, w));
}

pst_output pst_loss_absolute_difference(pst_graph *g, pst_output p, pst_output l, pst_output w,
                                        const char *scope) {
    pst_graph_push_name_scope(g, scope ? scope : "absolute_difference", 0);
    pst_output per = pst_abs(g, pst_sub(g, p, l, NULL), NULL);
    return finish(g, reduce_loss(g, per, w));
}

pst_output pst_loss_huber(pst_graph *g, pst_output p, pst_output l, pst_output w, float delta,
                          const char *scope) {
    pst_graph_push_name_scope(g, scope ? scope : "huber_loss", 0);
    pst_output err = pst_abs(g, pst_sub(g, p, l, NULL), NULL);
    pst_output d = pst_const_scalar(g, pst_output_dtype(p), delta, "delta");
    pst_output quad = pst_minimum(g, err, d, "quadratic");
    pst_output lin = pst_sub(g, err, quad, "linear");
    pst_output per = pst_add(
        g, pst_mul(g, pst_const_scalar(g, pst_output_dtype(p), 0.5, NULL), pst_square(g, quad, NULL), NULL),
        pst_mul(g, d, lin, NULL), NULL);
    return finish(g, reduce_loss(g, per, w));
}

void pst_add_loss(pst_graph *g, pst_output loss) { pst_graph_add_to_collection(g, PST_LOSSES, loss); }

pst_output pst_get_total_loss(pst_graph *g, int add_reg, const char *name) {
    int n1, n2 = 0;
    const pst_output *l = pst_graph_collection(g, PST_LOSSES, &n1);
    const pst_output *r = add_reg ? pst_graph_collection(g, PST_REGULARIZATION_LOSSES, &n2) : NULL;
    if (n1 + n2 == 0) {
        pst_graph_set_error(g, PST_E_INVALID, "get_total_loss: no losses have been added");
        return pst_out(NULL, 0);
    }
    pst_output *all = malloc((size_t)(n1 + n2) * sizeof *all);
    PST_ASSERT(all != NULL);
    for (int i = 0; i < n1; i++) all[i] = l[i];
    for (int i = 0; i < n2; i++) all[n1 + i] = r[i];
    pst_output t = n1 + n2 == 1 ? pst_identity(g, all[0], name ? name : "total_loss")
                                : pst_add_n(g, n1 + n2, all, name ? name : "total_loss");
    free(all);
    return t;
}
