/*
 * ops_nn — neural-network ops: MatMul and BatchMatMul (OpenBLAS), BiasAdd, Conv2D with both
 * backprops, MaxPool/AvgPool with gradients (NHWC, SAME/VALID as TensorFlow pads), Softmax,
 * LogSoftmax, (sparse) softmax cross entropy, FusedBatchNorm and InTopK. Op and attr names are
 * TensorFlow's, so graphs export and import cleanly. The loops live in kernels_conv.c and
 * kernels_pool.c.
 *
 *     pst_output y = pst_conv2d(g, x, w, 1, 1, "SAME", NULL);
 *     pst_node *xent = pst_sparse_softmax_cross_entropy_with_logits(g, logits, labels, NULL);
 *     pst_output per_example_loss = pst_out(xent, 0);
 *
 * Every builder takes a node name (NULL: the op name, uniquified) and records errors in the
 * graph (see graph.h); shape mismatches are reported when building and name both shapes.
 * Types: MatMul, BatchMatMul, BiasAdd, Conv2D and its backprops, pooling and the softmax family
 * take float32 or float64; FusedBatchNorm float32 only. Only NHWC data and dilation 1 are
 * supported; other data_format or dilations values are rejected when building.
 */
#ifndef PST_OPS_NN_H
#define PST_OPS_NN_H

#include "graph.h"

/* a x b (either transposed first), 2-D. */
pst_output pst_matmul(pst_graph *g, pst_output a, pst_output b, int transpose_a, int transpose_b,
                      const char *name);
/* Matrix products over equal leading (batch) dims; adj_x/adj_y transpose the last two dims. */
pst_output pst_batch_matmul(pst_graph *g, pst_output a, pst_output b, int adj_x, int adj_y,
                            const char *name);
/* x + bias along x's last dimension (data_format NHWC). */
pst_output pst_bias_add(pst_graph *g, pst_output x, pst_output bias, const char *name);
/* BiasAdd's bias gradient: out_backprop summed over all but the last dimension. */
pst_output pst_bias_add_grad(pst_graph *g, pst_output out_backprop, const char *name);

/* NHWC convolution of input [N,H,W,C] with filter [KH,KW,C,OC]; padding "SAME" or "VALID". */
pst_output pst_conv2d(pst_graph *g, pst_output input, pst_output filter, int stride_h, int stride_w,
                      const char *padding, const char *name);
/* Conv2D's input gradient; input_sizes is an int32/int64 vector [N,H,W,C]. */
pst_output pst_conv2d_backprop_input(pst_graph *g, pst_output input_sizes, pst_output filter,
                                     pst_output out_backprop, int stride_h, int stride_w,
                                     const char *padding, const char *name);
/* Conv2D's filter gradient; filter_sizes is an int32/int64 vector [KH,KW,C,OC]. */
pst_output pst_conv2d_backprop_filter(pst_graph *g, pst_output input, pst_output filter_sizes,
                                      pst_output out_backprop, int stride_h, int stride_w,
                                      const char *padding, const char *name);

/* Max / average over kh x kw windows (AvgPool's SAME divisor counts in-image elements only). */
pst_output pst_max_pool(pst_graph *g, pst_output x, int kh, int kw, int sh, int sw,
                        const char *padding, const char *name);
pst_output pst_avg_pool(pst_graph *g, pst_output x, int kh, int kw, int sh, int sw,
                        const char *padding, const char *name);
/* Their input gradients: MaxPoolGrad needs the forward input and output, AvgPoolGrad the input
 * shape as an int vector [N,H,W,C]. */
pst_output pst_max_pool_grad(pst_graph *g, pst_output orig_input, pst_output orig_output,
                             pst_output grad, int kh, int kw, int sh, int sw, const char *padding,
                             const char *name);
pst_output pst_avg_pool_grad(pst_graph *g, pst_output orig_input_shape, pst_output grad, int kh,
                             int kw, int sh, int sw, const char *padding, const char *name);

/* (Log-)softmax along the last axis. */
pst_output pst_softmax(pst_graph *g, pst_output logits, const char *name);
pst_output pst_log_softmax(pst_graph *g, pst_output logits, const char *name);
/* logits [N, C], labels [N, C] (a distribution per row). Output 0: per-example loss [N];
 * output 1: backprop [N, C] = softmax(logits) - labels. Gradients reach the logits from both
 * outputs (assuming label rows sum to 1, as TensorFlow does) and the labels. */
pst_node *pst_softmax_cross_entropy_with_logits(pst_graph *g, pst_output logits, pst_output labels,
                                                const char *name);
/* The same with int32/int64 class labels [N]; a label outside [0, C) is a run-time error that
 * names the label, its index and C. */
pst_node *pst_sparse_softmax_cross_entropy_with_logits(pst_graph *g, pst_output logits,
                                                       pst_output labels, const char *name);

/* Batch normalization over all but the last dimension (NHWC). Outputs: y, batch_mean,
 * batch_variance (unbiased, for moving averages), reserve_space_1 (mean used), reserve_space_2
 * (variance used, biased). With is_training = 0 the given mean and variance are used. */
pst_node *pst_fused_batch_norm(pst_graph *g, pst_output x, pst_output scale, pst_output offset,
                               pst_output mean, pst_output variance, float epsilon, int is_training,
                               const char *name);
/* Its gradient: outputs x_backprop, scale_backprop, offset_backprop and two empty tensors. */
pst_node *pst_fused_batch_norm_grad(pst_graph *g, pst_output y_backprop, pst_output x,
                                    pst_output scale, pst_output reserve_space_1,
                                    pst_output reserve_space_2, float epsilon, int is_training,
                                    const char *name);

/* Bool [N]: whether targets[i] is among the k largest predictions[i] (ties count as in; a
 * target out of range or a non-finite prediction gives false). Not differentiable. */
pst_output pst_in_top_k(pst_graph *g, pst_output predictions, pst_output targets, int k,
                        const char *name);

#endif
