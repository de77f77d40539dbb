/*
 * kernels_softmax — row-wise softmax, log-softmax and softmax cross entropy on raw float32 /
 * float64 buffers, rows split over pstrain's thread pool. The float32 loops vectorize: the
 * exponential is a polynomial (no libm call in the loop) and the row max and sum use eight
 * partial lanes.
 *
 *     pst_softmax_f32(logits, probs, rows, classes, 0);       // softmax along each row
 *     pst_softmax_xent_f32(logits, NULL, labels, rows, classes, loss, backprop);
 */
#ifndef PST_KERNELS_SOFTMAX_H
#define PST_KERNELS_SOFTMAX_H

#include <stdint.h>

/* y = softmax(x) (log_out = 0) or log_softmax(x) (log_out = 1) of each C-wide row; y may not
 * alias x. */
void pst_softmax_f32(const float *x, float *y, int64_t rows, int64_t C, int log_out);
void pst_softmax_f64(const double *x, double *y, int64_t rows, int64_t C, int log_out);

/* Per row i: loss[i] = -sum_k p[i,k] log softmax(x)[i,k] and backprop[i] = softmax(x)[i] - p[i],
 * where p is dense_labels (rows x C) or, when that is NULL, one-hot at sparse_labels[i] (which
 * the caller has checked to lie in [0, C)). */
void pst_softmax_xent_f32(const float *x, const float *dense_labels, const int64_t *sparse_labels,
                          int64_t rows, int64_t C, float *loss, float *backprop);
void pst_softmax_xent_f64(const double *x, const double *dense_labels, const int64_t *sparse_labels,
                          int64_t rows, int64_t C, double *loss, double *backprop);

#endif
