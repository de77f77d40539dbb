/*
 * kernels_conv — NHWC 2-D convolution on raw buffers: the forward pass and both backprops as
 * im2col + OpenBLAS GEMM, in float32 and float64. Kernels see pointers and a geometry, never
 * the graph. Work is split over pstrain's thread pool (parallel.h), each part calling a
 * single-threaded GEMM on an im2col block sized to stay in cache.
 *
 *     pst_conv_geom g;
 *     if (pst_conv_geom_make(&g, n, h, w, c, kh, kw, oc, 1, 1, "SAME") == 0)
 *         pst_conv_forward(&g, input, filter, output);   // output: n x g.oh x g.ow x oc
 *
 * Layouts: input and input gradients NHWC (n x h x w x c), filters HWIO (kh x kw x c x oc),
 * outputs and output gradients n x oh x ow x oc. No function modifies its inputs.
 */
#ifndef PST_KERNELS_CONV_H
#define PST_KERNELS_CONV_H

#include <stdint.h>

typedef struct pst_conv_geom {
    int64_t n, h, w, c; /* input NHWC */
    int64_t kh, kw, oc; /* filter HWIO: kh x kw x c x oc (oc = c for pooling) */
    int64_t sh, sw;
    int64_t oh, ow; /* output height and width */
    int64_t pad_top, pad_left;
} pst_conv_geom;

/* Fills g with TensorFlow's output size and padding: SAME gives ceil(in / s) with the padding
 * split so the extra row/column goes at the bottom/right, VALID gives ceil((in - k + 1) / s).
 * Returns 0, or -1 for an unknown padding string, a non-positive stride or window, or an empty
 * output. */
int pst_conv_geom_make(pst_conv_geom *g, int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh,
                       int64_t kw, int64_t oc, int64_t sh, int64_t sw, const char *padding);
/* Output size along one dimension (-1 when in is unknown, i.e. negative). */
int64_t pst_conv_out_size(int64_t in, int64_t k, int64_t s, int same);

/* out = conv(in, filter). */
void pst_conv_forward(const pst_conv_geom *g, const float *in, const float *filter, float *out);
void pst_conv_forward_f64(const pst_conv_geom *g, const double *in, const double *filter,
                          double *out);
/* din = gradient of the convolution's input given dy (overwritten, not accumulated). */
void pst_conv_backprop_input(const pst_conv_geom *g, const float *filter, const float *dy,
                             float *din);
void pst_conv_backprop_input_f64(const pst_conv_geom *g, const double *filter, const double *dy,
                                 double *din);
/* dfilter = gradient of the filter given the input and dy (overwritten). */
void pst_conv_backprop_filter(const pst_conv_geom *g, const float *in, const float *dy,
                              float *dfilter);
void pst_conv_backprop_filter_f64(const pst_conv_geom *g, const double *in, const double *dy,
                                  double *dfilter);

#endif
