/*
 * ops_array — shapes and data movement: Reshape, Shape, Size, Squeeze, ExpandDims, Transpose,
 * ConcatV2, Split, Slice, StridedSlice, Pad, Tile, Pack, Unpack, GatherV2, OneHot, Fill, Range.
 *
 * Shape functions fold constant inputs so static shapes flow through the graph (a Reshape to
 * a constant shape has that shape at build time); kernels check what depends on values
 * (reshape sizes, indices) and name the problem.
 *
 *     pst_output flat = pst_reshape(g, x, 2, (int64_t[]){-1, 784}, NULL);
 */
#ifndef PST_OPS_ARRAY_H
#define PST_OPS_ARRAY_H

#include "graph.h"

pst_output pst_reshape(pst_graph *g, pst_output x, int n, const int64_t *dims, const char *name);
pst_output pst_reshape_t(pst_graph *g, pst_output x, pst_output shape, const char *name);
pst_output pst_shape_of(pst_graph *g, pst_output x, pst_dtype out_type, const char *name);
pst_output pst_size_of(pst_graph *g, pst_output x, pst_dtype out_type, const char *name);
/* n = 0: squeeze every dim of size 1. */
pst_output pst_squeeze(pst_graph *g, pst_output x, int n, const int32_t *axes, const char *name);
pst_output pst_expand_dims(pst_graph *g, pst_output x, int axis, const char *name);
pst_output pst_transpose(pst_graph *g, pst_output x, int n, const int32_t *perm, const char *name);
pst_output pst_concat(pst_graph *g, int n, const pst_output *xs, int axis, const char *name);
/* Outputs go to outs[0..num-1]; returns the Split node. */
pst_node *pst_split(pst_graph *g, pst_output x, int axis, int num, pst_output *outs,
                    const char *name);
/* size -1: to the end of the dim. */
pst_output pst_slice(pst_graph *g, pst_output x, int n, const int64_t *begin, const int64_t *size,
                     const char *name);
pst_output pst_strided_slice(pst_graph *g, pst_output x, int n, const int64_t *begin,
                             const int64_t *end, const int64_t *strides, int begin_mask,
                             int end_mask, int shrink_axis_mask, const char *name);
/* paddings: n pairs (before, after). */
pst_output pst_pad(pst_graph *g, pst_output x, int n, const int64_t *paddings, const char *name);
pst_output pst_tile(pst_graph *g, pst_output x, int n, const int64_t *multiples, const char *name);
pst_output pst_tile_t(pst_graph *g, pst_output x, pst_output multiples, const char *name);
pst_output pst_stack(pst_graph *g, int n, const pst_output *xs, int axis, const char *name);
pst_node *pst_unstack(pst_graph *g, pst_output x, int num, int axis, pst_output *outs,
                      const char *name);
pst_output pst_gather(pst_graph *g, pst_output params, pst_output indices, int axis,
                      const char *name);
pst_output pst_one_hot(pst_graph *g, pst_output indices, int depth, float on, float off, int axis,
                       const char *name);
pst_output pst_fill(pst_graph *g, int n, const int64_t *dims, pst_output value, const char *name);
pst_output pst_range(pst_graph *g, pst_output start, pst_output limit, pst_output delta,
                     const char *name);

#endif
