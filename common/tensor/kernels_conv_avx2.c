/*
 * kernels_conv_avx2 — kernels_conv.c compiled a second time for AVX2 + FMA, its public
 * functions renamed pst__*_avx2. kernels_conv.c calls them when the CPU has AVX2 and FMA (and
 * $PST_KERNELS is not "generic"), so a default build runs on any x86-64 and still uses the
 * wide kernels where it can. The build adds -mavx2 -mfma for this file alone.
 */
#if defined(PST_HAVE_KERNELS_AVX2) && defined(__AVX2__) && defined(__FMA__)
#define PST_KERNELS_VARIANT_AVX2 1
#define pst_conv_geom_make pst__conv_geom_make_avx2
#define pst_conv_out_size pst__conv_out_size_avx2
#define pst_conv2d_forward pst__conv2d_forward_avx2
#define pst_conv2d_backprop_input pst__conv2d_backprop_input_avx2
#define pst_conv2d_backprop_filter pst__conv2d_backprop_filter_avx2
#define pst_maxpool_forward pst__maxpool_forward_avx2
#define pst_maxpool_backward pst__maxpool_backward_avx2
#define pst_avgpool_forward pst__avgpool_forward_avx2
#define pst_avgpool_backward pst__avgpool_backward_avx2
#include "kernels_conv.c"
#else
typedef int pst__kernels_conv_avx2_unused; /* ISO C: no empty translation unit */
#endif
