/*
 * kernels_ew — elementwise and reduction loops on raw buffers, shared by the math ops.
 * Kernels here see pointers, shapes and strides only.
 */
#ifndef PST_KERNELS_EW_H
#define PST_KERNELS_EW_H

#include <stdint.h>

#include "tensor.h"

/* Broadcast iteration plan: output of rank r; per input, element strides (0 where
 * broadcast). */
typedef struct pst_bcast {
    int rank;
    int64_t dims[PST_MAX_RANK];
    int64_t sa[PST_MAX_RANK], sb[PST_MAX_RANK];
    int64_t n;
} pst_bcast;

/* Fills a plan for a op b; returns 0 or -1 when the shapes do not broadcast. */
int pst_bcast_plan(const pst_shape *a, const pst_shape *b, pst_bcast *p);

/* Calls fn(ctx, out_offset, a_offset, b_offset, count, a_step, b_step) over runs of the last
 * dimension. */
typedef void (*pst_bcast_run_fn)(void *ctx, int64_t o, int64_t a, int64_t b, int64_t n,
                                 int64_t sa, int64_t sb);
void pst_bcast_for_each(const pst_bcast *p, pst_bcast_run_fn fn, void *ctx);

/* Reduction plan: for each input element, its output element when `reduced[d]` dims collapse.
 * Contiguous reduced dims give the fast [outer, r, inner] view. */
typedef struct pst_reduce_plan {
    int contiguous;
    int64_t outer, r, inner;
    int rank;
    int64_t dims[PST_MAX_RANK];
    int reduced[PST_MAX_RANK];
    int64_t out_n;
} pst_reduce_plan;

void pst_reduce_plan_make(const pst_shape *in, const int *reduced, pst_reduce_plan *p);
/* Output index of every input element (length: input elements). Caller frees. */
int64_t *pst_reduce_index_map(const pst_reduce_plan *p);



/* Copies an N-d block: element (i0..ir-1) goes from src + sum(i*src_strides) to
 * dst + sum(i*dst_strides); strides in elements (may be negative), es bytes per element. */
void pst_strided_copy(void *dst, const int64_t *dst_strides, const void *src,
                      const int64_t *src_strides, const int64_t *dims, int rank, size_t es);
/* Row-major element strides of a shape. */
void pst_shape_strides(const pst_shape *s, int64_t *strides);
#endif
