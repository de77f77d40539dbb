/*
 * ops_math — elementwise arithmetic with NumPy broadcasting, activations, comparisons and
 * logic, casts and select, reductions over axes, argmax/argmin and L2Loss.
 *
 * Float32 loops have fast paths (same shape, scalar operand, row broadcast) written so gcc
 * vectorizes them; float64 and integer types take a general path. Gradients of broadcasting
 * ops sum over the broadcast dimensions (PstReduceToShapeOf).
 *
 *     pst_output y = pst_relu(g, pst_add(g, pst_matmul(g, x, w, 0, 0, NULL), b, NULL), NULL);
 *     pst_output loss = pst_reduce_mean(g, pst_square(g, pst_sub(g, y, t, NULL), NULL),
 *                                       0, NULL, 0, "loss");
 */
#ifndef PST_OPS_MATH_H
#define PST_OPS_MATH_H

#include "graph.h"

pst_output pst_add(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_sub(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_mul(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_real_div(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_maximum(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_minimum(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_pow(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_equal(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_not_equal(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_less(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_less_equal(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_greater(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_greater_equal(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_logical_and(pst_graph *g, pst_output a, pst_output b, const char *name);
pst_output pst_logical_or(pst_graph *g, pst_output a, pst_output b, const char *name);

pst_output pst_neg(pst_graph *g, pst_output x, const char *name);
pst_output pst_square(pst_graph *g, pst_output x, const char *name);
pst_output pst_sqrt(pst_graph *g, pst_output x, const char *name);
pst_output pst_rsqrt(pst_graph *g, pst_output x, const char *name);
pst_output pst_exp(pst_graph *g, pst_output x, const char *name);
pst_output pst_log(pst_graph *g, pst_output x, const char *name);
pst_output pst_abs(pst_graph *g, pst_output x, const char *name);
pst_output pst_floor(pst_graph *g, pst_output x, const char *name);
pst_output pst_cos(pst_graph *g, pst_output x, const char *name);
pst_output pst_sin(pst_graph *g, pst_output x, const char *name);
pst_output pst_relu(pst_graph *g, pst_output x, const char *name);
pst_output pst_relu6(pst_graph *g, pst_output x, const char *name);
pst_output pst_elu(pst_graph *g, pst_output x, const char *name);
pst_output pst_sigmoid(pst_graph *g, pst_output x, const char *name);
pst_output pst_tanh(pst_graph *g, pst_output x, const char *name);
pst_output pst_logical_not(pst_graph *g, pst_output x, const char *name);
pst_output pst_leaky_relu(pst_graph *g, pst_output x, float alpha, const char *name);
/* sum(x^2) / 2 */
pst_output pst_l2_loss(pst_graph *g, pst_output x, const char *name);

pst_output pst_cast(pst_graph *g, pst_output x, pst_dtype dst, const char *name);
/* cond ? t : e, elementwise (cond the same shape as t, or a scalar). */
pst_output pst_select(pst_graph *g, pst_output cond, pst_output t, pst_output e, const char *name);

/* Reductions; n_axes = 0 with axes = NULL reduces every axis; negative axes count from the
 * end. */
pst_output pst_reduce_sum(pst_graph *g, pst_output x, int n_axes, const int32_t *axes,
                          int keep_dims, const char *name);
pst_output pst_reduce_mean(pst_graph *g, pst_output x, int n_axes, const int32_t *axes,
                           int keep_dims, const char *name);
pst_output pst_reduce_max(pst_graph *g, pst_output x, int n_axes, const int32_t *axes,
                          int keep_dims, const char *name);
pst_output pst_reduce_min(pst_graph *g, pst_output x, int n_axes, const int32_t *axes,
                          int keep_dims, const char *name);
pst_output pst_reduce_prod(pst_graph *g, pst_output x, int n_axes, const int32_t *axes,
                           int keep_dims, const char *name);
pst_output pst_reduce_sum_t(pst_graph *g, pst_output x, pst_output axes, int keep_dims,
                            const char *name);
/* Any reduction op ("Sum", "Mean", "Max", "Min", "Prod") over an axes tensor. */
pst_output pst_reduce_sum_t_named(pst_graph *g, const char *op, pst_output x, pst_output axes,
                                  int keep_dims, const char *name);

pst_output pst_argmax(pst_graph *g, pst_output x, int axis, pst_dtype out_type, const char *name);
pst_output pst_argmin(pst_graph *g, pst_output x, int axis, pst_dtype out_type, const char *name);

/* dy summed over the dimensions along which x was broadcast: the result has x's shape. */
pst_output pst_reduce_to_shape_of(pst_graph *g, pst_output dy, pst_output x, const char *name);

#endif
