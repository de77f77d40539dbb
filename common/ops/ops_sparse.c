/* Sparse ops of feature columns and tf.nn.embedding_lookup_sparse: SparseSegmentSum, Mean and
 * SqrtN (also ...WithNumSegments), the gradient ops TF writes for them
 * (SparseSegmentMeanGrad, SparseSegmentSqrtNGrad), SparseFillEmptyRows and its gradient
 * SparseFillEmptyRowsGrad, and SparseReshape.
 *
 * SparseSegment{Sum,Mean,SqrtN}(data, indices, segment_ids[, num_segments]): output row s is
 * the sum of data[indices[i]] over the i with segment_ids[i] == s, divided by the count (Mean)
 * or its square root (SqrtN); segment ids must be sorted, rows of segments nobody names are 0;
 * the output has last id + 1 rows (or num_segments). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

enum { SEG_SUM, SEG_MEAN, SEG_SQRTN };

static int seg_mode(const char *op) {
    if (strstr(op, "Mean")) return SEG_MEAN;
    if (strstr(op, "SqrtN")) return SEG_SQRTN;
    return SEG_SUM;
}

static double seg_scale(int mode, int64_t count) {
    if (count == 0 || mode == SEG_SUM) return 1;
    return mode == SEG_MEAN ? 1.0 / (double)count : 1.0 / sqrt((double)count);
}

/* Output shape [rows, data.shape[1:]]. */
static pst_shape rows_like(pst_shape data, int64_t rows) {
    pst_shape s = pst_shape_unknown();
    if (data.rank >= 1) {
        s = data;
        s.dims[0] = rows;
    }
    return s;
}

static int segment_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (!pst_dtype_is_float(dt) && !pst_dtype_is_int(dt))
        return pst_status_set(st, PST_E_INVALID, "data must be numeric, not %s", pst_dtype_name(dt));
    const pst_tensor *ns = n->n_inputs > 3 ? pst_node_in_const(n, 3) : NULL;
    pst_node_set_output(n, 0, dt, rows_like(pst_node_in_shape(n, 0), ns ? pst_tensor_get_i64(ns, 0) : -1));
    return 0;
}

/* Checks indices (into rows of data with `rows` rows) and sorted segment ids, the same length. */
static int check_segments(pst_kernel_ctx *c, const pst_tensor *idx, const pst_tensor *seg,
                          int64_t rows, int64_t nseg) {
    if (idx->shape.rank != 1 || seg->n != idx->n)
        return pst_kctx_error(c, PST_E_INVALID, "indices (%lld) and segment_ids (%lld) must be "
                              "vectors of one length", (long long)idx->n, (long long)seg->n);
    for (int64_t i = 0; i < idx->n; i++) {
        int64_t x = pst_tensor_get_i64(idx, i), s = pst_tensor_get_i64(seg, i);
        if (x < 0 || x >= rows)
            return pst_kctx_error(c, PST_E_INVALID, "indices[%lld] = %lld is not in [0, %lld)",
                                  (long long)i, (long long)x, (long long)rows);
        if (s < 0 || (nseg >= 0 && s >= nseg) || (i > 0 && s < pst_tensor_get_i64(seg, i - 1)))
            return pst_kctx_error(c, PST_E_INVALID, "segment_ids[%lld] = %lld: segment ids must "
                                  "be sorted and in [0, %lld)", (long long)i, (long long)s,
                                  (long long)(nseg >= 0 ? nseg : INT64_MAX));
    }
    return 0;
}

/* The end of the run of equal segment ids starting at i. */
static int64_t segment_end(const pst_tensor *seg, int64_t i) {
    int64_t s = pst_tensor_get_i64(seg, i), j = i;
    while (j < seg->n && pst_tensor_get_i64(seg, j) == s) j++;
    return j;
}

static int segment_kernel(pst_kernel_ctx *c) {
    const pst_tensor *data = c->inputs[0], *idx = c->inputs[1], *seg = c->inputs[2];
    int mode = seg_mode(c->op->name);
    if (data->shape.rank < 1) return pst_kctx_error(c, PST_E_INVALID, "data must have rank >= 1");
    int64_t nseg = c->n_inputs > 3 ? pst_tensor_get_i64(c->inputs[3], 0) : -1;
    if (check_segments(c, idx, seg, data->shape.dims[0], nseg) < 0) return c->status->code;
    if (nseg < 0) nseg = seg->n ? pst_tensor_get_i64(seg, seg->n - 1) + 1 : 0;
    pst_tensor *o = pst_tensor_new_zeros(data->dtype, rows_like(data->shape, nseg), c->status);
    if (o == NULL) return c->status->code;
    int64_t row = data->shape.dims[0] ? data->n / data->shape.dims[0] : 0;
    for (int64_t i = 0; i < idx->n;) {
        int64_t s = pst_tensor_get_i64(seg, i), j = segment_end(seg, i);
        double scale = seg_scale(mode, j - i);
        for (int64_t k = 0; k < row; k++) {
            double sum = 0;
            for (int64_t m = i; m < j; m++)
                sum += pst_tensor_get_f64(data, pst_tensor_get_i64(idx, m) * row + k);
            pst_tensor_set_f64(o, s * row + k, sum * scale);
        }
        i = j;
    }
    pst_kctx_set_output(c, 0, o);
    return 0;
}

/* SparseSegment{Mean,SqrtN}Grad(grad, indices, segment_ids, output_dim0): row indices[i] of
 * the result gets grad[segment_ids[i]] scaled as the forward op scaled it. */
static int segment_grad_shape(pst_node *n, pst_status *st) {
    (void)st;
    const pst_tensor *d0 = pst_node_in_const(n, 3);
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0),
                        rows_like(pst_node_in_shape(n, 0), d0 ? pst_tensor_get_i64(d0, 0) : -1));
    return 0;
}

static int segment_grad_kernel(pst_kernel_ctx *c) {
    const pst_tensor *g = c->inputs[0], *idx = c->inputs[1], *seg = c->inputs[2];
    int mode = seg_mode(c->op->name);
    int64_t dim0 = pst_tensor_get_i64(c->inputs[3], 0);
    if (g->shape.rank < 1) return pst_kctx_error(c, PST_E_INVALID, "grad must have rank >= 1");
    if (check_segments(c, idx, seg, dim0, g->shape.dims[0]) < 0) return c->status->code;
    pst_tensor *o = pst_tensor_new_zeros(g->dtype, rows_like(g->shape, dim0), c->status);
    if (o == NULL) return c->status->code;
    int64_t row = g->shape.dims[0] ? g->n / g->shape.dims[0] : 0;
    for (int64_t i = 0; i < idx->n;) {
        int64_t s = pst_tensor_get_i64(seg, i), j = segment_end(seg, i);
        double scale = seg_scale(mode, j - i);
        for (int64_t m = i; m < j; m++) {
            int64_t to = pst_tensor_get_i64(idx, m) * row;
            for (int64_t k = 0; k < row; k++)
                pst_tensor_set_f64(o, to + k, pst_tensor_get_f64(o, to + k) +
                                                  scale * pst_tensor_get_f64(g, s * row + k));
        }
        i = j;
    }
    pst_kctx_set_output(c, 0, o);
    return 0;
}

/* pstrain's gradient of the forward ops, written as TF writes it: SparseSegment{Mean,SqrtN}Grad,
 * and for a Sum UnsortedSegmentSum(Gather(dy, segment_ids), indices, rows of data). */
static int segment_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    if (dy[0].node == NULL) return 0;
    int64_t b0 = 0, s1 = 1;
    pst_output dim0 = pst_slice(g, pst_shape_of(g, n->inputs[0], PST_INT32, NULL), 1, &b0, &s1, NULL);
    int mode = seg_mode(n->op->name);
    if (mode == SEG_SUM) {
        pst_output rows = pst_gather(g, dy[0], n->inputs[2], 0, NULL);
        pst_node_builder *b = pst_nb_new(g, "UnsortedSegmentSum", NULL);
        pst_nb_input(b, rows);
        pst_nb_input(b, n->inputs[1]);
        pst_nb_input(b, pst_reshape(g, dim0, 0, NULL, NULL));
        dx[0] = pst_nb_finish_out(b);
        return 0;
    }
    pst_node_builder *b = pst_nb_new(g, mode == SEG_MEAN ? "SparseSegmentMeanGrad" : "SparseSegmentSqrtNGrad", NULL);
    pst_nb_input(b, dy[0]);
    pst_nb_input(b, n->inputs[1]);
    pst_nb_input(b, n->inputs[2]);
    pst_nb_input(b, pst_reshape(g, dim0, 0, NULL, NULL));
    pst_nb_attr_type(b, "T", pst_output_dtype(dy[0]));
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

/* ---- SparseFillEmptyRows(indices [N,R], values [N], dense_shape [R], default_value) -----
 * Every row (first index) of the dense shape that has no entry gets one at (row, 0, ..., 0)
 * holding default_value. Entries come out grouped by row in ascending order, each row's in
 * their input order; empty_row_indicator marks the rows filled; reverse_index_map[i] is where
 * input entry i went. */
static int fill_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_INT64, pst_shape_2d(-1, pst_node_in_shape(n, 0).rank == 2 ?
                                                          pst_node_in_shape(n, 0).dims[1] : -1));
    pst_node_set_output(n, 1, pst_node_in_dtype(n, 1), pst_shape_1d(-1));
    pst_node_set_output(n, 2, PST_BOOL, pst_shape_1d(-1));
    pst_node_set_output(n, 3, PST_INT64, pst_shape_1d(pst_node_in_shape(n, 1).rank == 1 ?
                                                          pst_node_in_shape(n, 1).dims[0] : -1));
    return 0;
}

static int fill_kernel(pst_kernel_ctx *c) {
    const pst_tensor *idx = c->inputs[0], *val = c->inputs[1], *shp = c->inputs[2], *dv = c->inputs[3];
    int64_t N = val->n, R = shp->n;
    if (idx->shape.rank != 2 || idx->shape.dims[0] != N || idx->shape.dims[1] != R || R < 1 || dv->n != 1 ||
        dv->dtype != val->dtype)
        return pst_kctx_error(c, PST_E_INVALID, "indices must be [N, R] for N values and a dense "
                              "shape of R >= 1 dims, default_value a scalar of the values' type");
    int64_t rows = pst_tensor_get_i64(shp, 0);
    int64_t *count = calloc((size_t)rows + 1, sizeof *count), *start = calloc((size_t)rows + 2, sizeof *start);
    PST_ASSERT(count && start);
    int rc = 0;
    for (int64_t i = 0; i < N && rc == 0; i++) {
        int64_t r = pst_tensor_get_i64(idx, i * R);
        if (r < 0 || r >= rows)
            rc = pst_kctx_error(c, PST_E_INVALID, "indices[%lld, 0] = %lld is not in [0, %lld)",
                                (long long)i, (long long)r, (long long)rows);
        else
            count[r]++;
    }
    int64_t total = 0;
    for (int64_t r = 0; r < rows; r++) {
        start[r] = total;
        total += count[r] ? count[r] : 1;
    }
    pst_tensor *oi = rc == 0 ? pst_kctx_alloc_output(c, 0, PST_INT64, pst_shape_2d(total, R)) : NULL;
    pst_tensor *ov = oi ? pst_kctx_alloc_output(c, 1, val->dtype, pst_shape_1d(total)) : NULL;
    pst_tensor *oe = ov ? pst_kctx_alloc_output(c, 2, PST_BOOL, pst_shape_1d(rows)) : NULL;
    pst_tensor *om = oe ? pst_kctx_alloc_output(c, 3, PST_INT64, pst_shape_1d(N)) : NULL;
    if (rc == 0 && om == NULL) rc = c->status->code;
    for (int64_t r = 0; rc == 0 && r < rows; r++) {
        pst_tensor_u8(oe)[r] = count[r] == 0;
        if (count[r]) continue;
        for (int64_t d = 0; d < R; d++) pst_tensor_i64(oi)[start[r] * R + d] = d == 0 ? r : 0;
        rc = pst_tensor_copy_elems(ov, start[r], dv, 0, 1, c->status);
    }
    for (int64_t i = 0; rc == 0 && i < N; i++) {
        int64_t r = pst_tensor_get_i64(idx, i * R), at = start[r]++;
        for (int64_t d = 0; d < R; d++) pst_tensor_i64(oi)[at * R + d] = pst_tensor_get_i64(idx, i * R + d);
        rc = pst_tensor_copy_elems(ov, at, val, i, 1, c->status);
        pst_tensor_i64(om)[i] = at;
    }
    free(count), free(start);
    return rc;
}

/* SparseFillEmptyRows's gradient: d_values[i] = grad[reverse_index_map[i]], and
 * d_default_value the sum of the gradient at the filled entries. */
static int fill_grad_op_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 1), pst_node_in_shape(n, 0));
    pst_node_set_output(n, 1, pst_node_in_dtype(n, 1), pst_shape_scalar());
    return 0;
}

static int fill_grad_op_kernel(pst_kernel_ctx *c) {
    const pst_tensor *map = c->inputs[0], *g = c->inputs[1];
    pst_tensor *dv = pst_kctx_alloc_output(c, 0, g->dtype, map->shape);
    pst_tensor *dd = dv ? pst_kctx_alloc_output(c, 1, g->dtype, pst_shape_scalar()) : NULL;
    if (dd == NULL) return c->status->code;
    char *used = calloc((size_t)g->n + 1, 1);
    PST_ASSERT(used != NULL);
    int rc = 0;
    for (int64_t i = 0; i < map->n && rc == 0; i++) {
        int64_t at = pst_tensor_get_i64(map, i);
        if (at < 0 || at >= g->n) {
            rc = pst_kctx_error(c, PST_E_INVALID, "reverse_index_map[%lld] = %lld is not in [0, %lld)",
                                (long long)i, (long long)at, (long long)g->n);
            break;
        }
        used[at] = 1;
        pst_tensor_set_f64(dv, i, pst_tensor_get_f64(g, at));
    }
    double rest = 0;
    for (int64_t j = 0; j < g->n; j++)
        if (!used[j]) rest += pst_tensor_get_f64(g, j);
    pst_tensor_set_f64(dd, 0, rest);
    free(used);
    return rc;
}

static int fill_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    if (dy[1].node == NULL) return 0;
    pst_node_builder *b = pst_nb_new(g, "SparseFillEmptyRowsGrad", NULL);
    pst_nb_input(b, pst_out(n, 3));
    pst_nb_input(b, dy[1]);
    pst_nb_attr_type(b, "T", pst_output_dtype(dy[1]));
    pst_node *x = pst_nb_finish(b);
    if (x == NULL) return pst_graph_status(g)->code;
    dx[1] = pst_out(x, 0);
    dx[3] = pst_out(x, 1);
    return 0;
}

/* ---- SparseReshape(input_indices [N,R], input_shape [R], new_shape [R']) ---------------
 * Each index is linearized row-major in the input shape and laid out again in the new shape
 * (one -1 in new_shape is inferred); the element counts must agree. */
static int reshape_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape ns = pst_node_in_shape(n, 2);
    int64_t r = ns.rank == 1 ? ns.dims[0] : -1;
    pst_node_set_output(n, 0, PST_INT64, pst_shape_2d(pst_node_in_shape(n, 0).rank == 2 ?
                                                          pst_node_in_shape(n, 0).dims[0] : -1, r));
    pst_node_set_output(n, 1, PST_INT64, pst_shape_1d(r));
    return 0;
}

static int reshape_kernel(pst_kernel_ctx *c) {
    const pst_tensor *idx = c->inputs[0], *in = c->inputs[1], *ns = c->inputs[2];
    int64_t R = in->n, R2 = ns->n, N = idx->shape.rank == 2 ? idx->shape.dims[0] : -1;
    if (N < 0 || idx->shape.dims[1] != R)
        return pst_kctx_error(c, PST_E_INVALID, "input_indices must be [N, %lld]", (long long)R);
    int64_t total = 1, known = 1, unknown = -1;
    for (int64_t d = 0; d < R; d++) total *= pst_tensor_get_i64(in, d);
    pst_tensor *os = pst_kctx_alloc_output(c, 1, PST_INT64, pst_shape_1d(R2));
    if (os == NULL) return c->status->code;
    for (int64_t d = 0; d < R2; d++) {
        int64_t v = pst_tensor_get_i64(ns, d);
        if (v == -1 && unknown < 0) unknown = d;
        else if (v < 0) return pst_kctx_error(c, PST_E_INVALID, "new_shape[%lld] = %lld", (long long)d, (long long)v);
        else known *= v;
        pst_tensor_i64(os)[d] = v;
    }
    if (unknown >= 0) {
        if (known == 0 || total % known != 0)
            return pst_kctx_error(c, PST_E_INVALID, "cannot infer new_shape's -1: %lld elements "
                                  "over %lld", (long long)total, (long long)known);
        pst_tensor_i64(os)[unknown] = total / known;
        known = total;
    }
    if (known != total)
        return pst_kctx_error(c, PST_E_INVALID, "new shape holds %lld elements, the input %lld",
                              (long long)known, (long long)total);
    pst_tensor *oi = pst_kctx_alloc_output(c, 0, PST_INT64, pst_shape_2d(N, R2));
    if (oi == NULL) return c->status->code;
    for (int64_t i = 0; i < N; i++) {
        int64_t lin = 0;
        for (int64_t d = 0; d < R; d++) lin = lin * pst_tensor_get_i64(in, d) + pst_tensor_get_i64(idx, i * R + d);
        for (int64_t d = R2 - 1; d >= 0; d--) {
            int64_t dim = pst_tensor_i64(os)[d];
            pst_tensor_i64(oi)[i * R2 + d] = dim ? lin % dim : 0;
            lin = dim ? lin / dim : 0;
        }
    }
    return 0;
}

static const pst_attr_spec seg_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                          {"Tidx", PST_ATTR_TYPE, 0},
                                          {"Tnumsegments", PST_ATTR_TYPE, 0},
                                          {"Tsegmentids", PST_ATTR_TYPE, 0},
                                          {0}};
static const pst_attr_spec t_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};

#define SEG(nm, nin) \
    {.name = nm, .min_inputs = nin, .max_inputs = nin, .n_outputs = 1, .attrs = seg_attrs, \
     .shape = segment_shape, .kernel = segment_kernel, .grad = segment_grad}
#define ND PST_OP_NOT_DIFFERENTIABLE
static const pst_op_def sparse_ops[] = {
    SEG("SparseSegmentSum", 3),
    SEG("SparseSegmentMean", 3),
    SEG("SparseSegmentSqrtN", 3),
    SEG("SparseSegmentSumWithNumSegments", 4),
    SEG("SparseSegmentMeanWithNumSegments", 4),
    SEG("SparseSegmentSqrtNWithNumSegments", 4),
    {.name = "SparseSegmentMeanGrad", .min_inputs = 4, .max_inputs = 4, .n_outputs = 1,
     .attrs = seg_attrs, .shape = segment_grad_shape, .kernel = segment_grad_kernel, .flags = ND},
    {.name = "SparseSegmentSqrtNGrad", .min_inputs = 4, .max_inputs = 4, .n_outputs = 1,
     .attrs = seg_attrs, .shape = segment_grad_shape, .kernel = segment_grad_kernel, .flags = ND},
    {.name = "SparseFillEmptyRows", .min_inputs = 4, .max_inputs = 4, .n_outputs = 4,
     .attrs = t_attrs, .shape = fill_shape, .kernel = fill_kernel, .grad = fill_grad,
     .flags = PST_OP_STRINGS},
    {.name = "SparseFillEmptyRowsGrad", .min_inputs = 2, .max_inputs = 2, .n_outputs = 2,
     .attrs = t_attrs, .shape = fill_grad_op_shape, .kernel = fill_grad_op_kernel, .flags = ND},
    {.name = "SparseReshape", .min_inputs = 3, .max_inputs = 3, .n_outputs = 2,
     .shape = reshape_shape, .kernel = reshape_kernel, .flags = ND},
};

void pst__register_sparse_ops(void) {
    for (size_t i = 0; i < sizeof sparse_ops / sizeof sparse_ops[0]; i++)
        pst_op_register(&sparse_ops[i]);
}
