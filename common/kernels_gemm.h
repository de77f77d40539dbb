/*
 * kernels_gemm — dense matrix products on raw row-major buffers through OpenBLAS, split over
 * pstrain's thread pool (parallel.h) with a single-threaded BLAS call per part, so pool threads
 * and BLAS threads never compete.
 *
 *     pst_gemm_f32(0, 1, m, n, k, a, b, c);   // c[m x n] = a[m x k] * b[n x k]^T
 *
 * a is m x k (k x m when ta), b is k x n (n x k when tb), all contiguous; c is overwritten.
 */
#ifndef PST_KERNELS_GEMM_H
#define PST_KERNELS_GEMM_H

#include <stdint.h>

/* c = op(a) op(b). Splits the rows of c over the pool, or its columns when c is wider than
 * tall (a batch-sized m), so that each part packs only its share of the larger operand. */
void pst_gemm_f32(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, const float *b,
                  float *c);
void pst_gemm_f64(int ta, int tb, int64_t m, int64_t n, int64_t k, const double *a, const double *b,
                  double *c);

#endif
