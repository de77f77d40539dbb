/*
 * kernels_conv — NHWC convolution and pooling on raw float buffers. The convolution and both
 * backprops run register-blocked direct kernels when the output channels are a multiple of 8
 * (the input gradient with stride 1 is a convolution with the flipped filter, so it needs the
 * input channels to be one), im2col + OpenBLAS sgemm otherwise; pooling runs direct loops
 * vectorized over channels.
 * Kernels see pointers and a geometry, never the graph.
 */
#ifndef PST_KERNELS_CONV_H
#define PST_KERNELS_CONV_H

#include <stdint.h>

typedef struct pst_conv_geom {
    int64_t n, h, w, c;     /* input NHWC */
    int64_t kh, kw, oc;     /* filter HWIO: kh x kw x c x oc (oc = c for pooling) */
    int64_t sh, sw;
    int64_t oh, ow;         /* output height and width */
    int64_t pad_top, pad_left;
} pst_conv_geom;

/* TF's output size and padding: SAME gives ceil(in / s), VALID ceil((in - k + 1) / s).
 * Returns -1 for an unknown padding string or an empty output. */
int pst_conv_geom_make(pst_conv_geom *g, int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh,
                       int64_t kw, int64_t oc, int64_t sh, int64_t sw, const char *padding);
/* Output size along one dim (or -1 when in is unknown). */
int64_t pst_conv_out_size(int64_t in, int64_t k, int64_t s, int same);

void pst_conv2d_forward(const pst_conv_geom *g, const float *in, const float *filter, float *out);
void pst_conv2d_backprop_input(const pst_conv_geom *g, const float *filter, const float *dy,
                               float *din);
void pst_conv2d_backprop_filter(const pst_conv_geom *g, const float *in, const float *dy,
                                float *dfilter);

void pst_maxpool_forward(const pst_conv_geom *g, const float *in, float *out);
/* y is the forward output: the gradient goes to the first input equal to its window's max. */
void pst_maxpool_backward(const pst_conv_geom *g, const float *in, const float *y, const float *dy,
                          float *din);
void pst_avgpool_forward(const pst_conv_geom *g, const float *in, float *out);
void pst_avgpool_backward(const pst_conv_geom *g, const float *dy, float *din);

/* Float64 pooling (simple loops) for MaxPool/AvgPool and their gradients on double graphs.
 * Forward modes read in and write out (NHWC, oh x ow); backward modes read dy (and, for max,
 * in and the forward output y) and write out (n x h x w x c). y and dy may be NULL when the
 * mode does not read them. */
typedef enum pst_pool_mode {
    PST_POOL_MAX_FWD,
    PST_POOL_AVG_FWD,
    PST_POOL_MAX_BWD,
    PST_POOL_AVG_BWD,
    PST_POOL_MODE_COUNT
} pst_pool_mode;
void pst_pool_f64(const pst_conv_geom *g, pst_pool_mode mode, const double *in, const double *y,
                  const double *dy, double *out);

#endif
