/*
 * kernels_pool — NHWC max and average pooling with their gradients on raw float32 / float64
 * buffers, parallel over pstrain's thread pool, loops vectorized over channels. The geometry
 * is a pst_conv_geom with oc = c (see kernels_conv.h; padding as TensorFlow's SAME/VALID).
 *
 *     pst_conv_geom g;
 *     pst_conv_geom_make(&g, n, h, w, c, 2, 2, c, 2, 2, "SAME");
 *     pst_pool_max_forward(&g, x, y);                  // y: n x g.oh x g.ow x c
 *     pst_pool_max_backward(&g, x, y, dy, dx);         // dx: n x h x w x c
 *
 * Semantics follow TensorFlow: max pooling sends each window's gradient to the first input
 * (in row-major window order) equal to the window's maximum; average pooling divides by the
 * number of window elements inside the image, so SAME padding is excluded from the divisor.
 */
#ifndef PST_KERNELS_POOL_H
#define PST_KERNELS_POOL_H

#include "kernels_conv.h"

/* out = max over each window. */
void pst_pool_max_forward(const pst_conv_geom *g, const float *in, float *out);
void pst_pool_max_forward_f64(const pst_conv_geom *g, const double *in, double *out);
/* din = gradient w.r.t. the pooling input; y is the forward output for in (overwrites din). */
void pst_pool_max_backward(const pst_conv_geom *g, const float *in, const float *y, const float *dy,
                           float *din);
void pst_pool_max_backward_f64(const pst_conv_geom *g, const double *in, const double *y,
                               const double *dy, double *din);
/* out = mean over the in-image part of each window. */
void pst_pool_avg_forward(const pst_conv_geom *g, const float *in, float *out);
void pst_pool_avg_forward_f64(const pst_conv_geom *g, const double *in, double *out);
/* din = gradient w.r.t. the pooling input (overwrites din). */
void pst_pool_avg_backward(const pst_conv_geom *g, const float *dy, float *din);
void pst_pool_avg_backward_f64(const pst_conv_geom *g, const double *dy, double *din);

#endif
