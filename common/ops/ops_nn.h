/*
 * ops_nn — neural-network ops: MatMul and BatchMatMul (OpenBLAS), BiasAdd, Conv2D with both
 * backprops, MaxPool/AvgPool with gradients (NHWC, SAME/VALID as TensorFlow pads), Softmax,
 * LogSoftmax, (sparse) softmax cross entropy, FusedBatchNorm and InTopK.
 *
 *     pst_output y = pst_conv2d(g, x, w, 1, 1, "SAME", NULL);
 *     pst_node *xent = pst_sparse_softmax_cross_entropy_with_logits(g, logits, labels, NULL);
 *     pst_output per_example_loss = pst_out(xent, 0);
 */
#ifndef PST_OPS_NN_H
#define PST_OPS_NN_H

#include "graph.h"

pst_output pst_matmul(pst_graph *g, pst_output a, pst_output b, int transpose_a, int transpose_b,
                      const char *name);
pst_output pst_batch_matmul(pst_graph *g, pst_output a, pst_output b, int adj_x, int adj_y,
                            const char *name);
/* Einsum of n (1 or 2) operands: tf.einsum's equation ("ij,jk->ik", "...", implicit output). */
pst_output pst_einsum(pst_graph *g, const char *equation, int n, const pst_output *in,
                      const char *name);
pst_output pst_bias_add(pst_graph *g, pst_output x, pst_output bias, const char *name);
pst_output pst_conv2d(pst_graph *g, pst_output input, pst_output filter, int stride_h,
                      int stride_w, const char *padding, const char *name);
pst_output pst_max_pool(pst_graph *g, pst_output x, int kh, int kw, int sh, int sw,
                        const char *padding, const char *name);
pst_output pst_avg_pool(pst_graph *g, pst_output x, int kh, int kw, int sh, int sw,
                        const char *padding, const char *name);
pst_output pst_softmax(pst_graph *g, pst_output logits, const char *name);
pst_output pst_log_softmax(pst_graph *g, pst_output logits, const char *name);
/* Output 0: per-example loss [N]; output 1: backprop [N, C]. */
pst_node *pst_softmax_cross_entropy_with_logits(pst_graph *g, pst_output logits,
                                                pst_output labels, const char *name);
pst_node *pst_sparse_softmax_cross_entropy_with_logits(pst_graph *g, pst_output logits,
                                                       pst_output labels, const char *name);
/* Outputs: y, batch_mean, batch_variance, reserve_space_1, reserve_space_2. */
pst_node *pst_fused_batch_norm(pst_graph *g, pst_output x, pst_output scale, pst_output offset,
                               pst_output mean, pst_output variance, float epsilon,
                               int is_training, const char *name);
pst_output pst_in_top_k(pst_graph *g, pst_output predictions, pst_output targets, int k,
                        const char *name);

#endif
