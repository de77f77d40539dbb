/* Segment reductions of TF 1.x graphs (issue 17), TF 1.15's kernel semantics:
 *   SegmentSum/Mean/Max/Min/Prod(data, segment_ids): ids a vector over data's first dim,
 *     non-decreasing and >= 0 (else an error); the output has last id + 1 rows; a segment
 *     with no entries is 0 (1 for Prod).
 *   UnsortedSegmentMax/Min/Prod(data, segment_ids, num_segments): ids shaped like a prefix of
 *     data's shape, negative ids dropped, ids >= num_segments an error; an empty segment is
 *     the type's lowest value (Max), its highest (Min), 1 (Prod).
 * Gradients as math_grad.py's (SegmentProd has none in TF), built from TF ops only so graphs
 * pstrain differentiates still load in TensorFlow. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD };

typedef struct seg_op {
    pst_op_def def;
    int red;
    int sorted;
} seg_op;

static const seg_op *seg(const pst_op_def *op) { return (const seg_op *)op; }

static double lowest(pst_dtype dt) {
    switch (dt) {
    case PST_FLOAT: return -FLT_MAX;
    case PST_DOUBLE: return -DBL_MAX;
    case PST_INT32: return INT32_MIN;
    case PST_UINT8: return 0;
    default: return (double)INT64_MIN;
    }
}

static double highest(pst_dtype dt) {
    switch (dt) {
    case PST_FLOAT: return FLT_MAX;
    case PST_DOUBLE: return DBL_MAX;
    case PST_INT32: return INT32_MAX;
    case PST_UINT8: return 255;
    default: return (double)INT64_MAX;
    }
}

static int seg_shape(pst_node *n, pst_status *st) {
    const seg_op *so = seg(n->op);
    pst_shape d = pst_node_in_shape(n, 0), ids = pst_node_in_shape(n, 1), out = pst_shape_unknown();
    pst_dtype dt = pst_node_in_dtype(n, 0), it = pst_node_in_dtype(n, 1);
    if (dt == PST_BOOL || dt == PST_STRING || dt == PST_RESOURCE)
        return pst_status_set(st, PST_E_INVALID, "data must be numeric, got %s", pst_dtype_name(dt));
    if (it != PST_INT32 && it != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "segment_ids must be int32 or int64, got %s", pst_dtype_name(it));
    if (so->sorted && ids.rank >= 0 && ids.rank != 1)
        return pst_status_set(st, PST_E_INVALID, "segment_ids should be a vector");
    if (d.rank == 0) return pst_status_set(st, PST_E_INVALID, "data must be at least rank 1");
    if (d.rank >= 0 && ids.rank >= 0) {
        if (ids.rank > d.rank) return pst_status_set(st, PST_E_INVALID, "segment_ids has more dims than data");
        for (int i = 0; i < ids.rank; i++)
            if (ids.dims[i] >= 0 && d.dims[i] >= 0 && ids.dims[i] != d.dims[i])
                return pst_status_set(st, PST_E_INVALID, "segment_ids shape is not a prefix of data's");
        out.rank = 1 + d.rank - ids.rank;
        const pst_tensor *num = so->sorted ? NULL : pst_node_in_const(n, 2);
        out.dims[0] = num ? pst_tensor_get_i64(num, 0) : -1;
        for (int i = ids.rank; i < d.rank; i++) out.dims[1 + i - ids.rank] = d.dims[i];
    }
    pst_node_set_output(n, 0, dt, out);
    return 0;
}

static int seg_kernel(pst_kernel_ctx *c) {
    const seg_op *so = seg(c->op);
    const pst_tensor *d = c->inputs[0], *ids = c->inputs[1];
    char sd[128], si[128];
    int bad = ids->shape.rank > d->shape.rank || d->shape.rank < 1 || (so->sorted && ids->shape.rank != 1);
    for (int i = 0; !bad && i < ids->shape.rank; i++) bad = ids->shape.dims[i] != d->shape.dims[i];
    if (bad)
        return pst_kctx_error(c, PST_E_INVALID, "segment_ids %s do not fit data %s",
                              pst_shape_str(&ids->shape, si, sizeof si), pst_shape_str(&d->shape, sd, sizeof sd));
    int64_t num;
    if (so->sorted) {
        num = 0;
        for (int64_t k = 0; k < ids->n; k++) {
            int64_t s = pst_tensor_get_i64(ids, k);
            if (s < 0) return pst_kctx_error(c, PST_E_INVALID, "segment ids must be >= 0, got %lld at %lld", (long long)s, (long long)k);
            if (s + 1 < num) return pst_kctx_error(c, PST_E_INVALID, "segment ids are not increasing (%lld at %lld)", (long long)s, (long long)k);
            num = s + 1;
        }
    } else {
        if (c->inputs[2]->n != 1) return pst_kctx_error(c, PST_E_INVALID, "num_segments must be a scalar");
        num = pst_tensor_get_i64(c->inputs[2], 0);
        if (num < 0) return pst_kctx_error(c, PST_E_INVALID, "num_segments %lld is negative", (long long)num);
    }
    pst_shape os = {.rank = 1 + d->shape.rank - ids->shape.rank};
    os.dims[0] = num;
    for (int i = ids->shape.rank; i < d->shape.rank; i++) os.dims[1 + i - ids->shape.rank] = d->shape.dims[i];
    int64_t inner = 1;
    for (int i = ids->shape.rank; i < d->shape.rank; i++) inner *= d->shape.dims[i];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, d->dtype, os);
    double *acc = calloc((size_t)(num * inner) + 1, sizeof *acc);
    int64_t *cnt = calloc((size_t)num + 1, sizeof *cnt);
    if (o == NULL || acc == NULL || cnt == NULL) {
        free(acc);
        free(cnt);
        return o ? pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory") : c->status->code;
    }
    int red = so->red;
    double init = red == R_PROD ? 1 : red == R_MAX ? lowest(d->dtype) : red == R_MIN ? highest(d->dtype) : 0;
    for (int64_t i = 0; i < num * inner; i++) acc[i] = init;
    for (int64_t k = 0; k < ids->n; k++) {
        int64_t s = pst_tensor_get_i64(ids, k);
        if (s < 0) continue; /* unsorted: dropped (sorted ids were checked) */
        if (s >= num) {
            free(acc);
            free(cnt);
            return pst_kctx_error(c, PST_E_INVALID, "segment_ids[%lld] = %lld is out of range [0, %lld)",
                                  (long long)k, (long long)s, (long long)num);
        }
        cnt[s]++;
        double *a = acc + s * inner;
        for (int64_t j = 0; j < inner; j++) {
            double v = pst_tensor_get_f64(d, k * inner + j);
            switch (red) {
            case R_MAX: a[j] = v > a[j] ? v : a[j]; break;
            case R_MIN: a[j] = v < a[j] ? v : a[j]; break;
            case R_PROD: a[j] *= v; break;
            default: a[j] += v; break;
            }
        }
    }
    for (int64_t s = 0; s < num; s++)
        for (int64_t j = 0; j < inner; j++) {
            double v = acc[s * inner + j];
            if (red == R_MEAN && cnt[s]) v /= (double)cnt[s];
            if (so->sorted && cnt[s] == 0) v = red == R_PROD ? 1 : 0; /* TF's sorted default */
            if (pst_dtype_is_float(d->dtype))
                pst_tensor_set_f64(o, s * inner + j, v);
            else if (d->dtype == PST_INT64)
                pst_tensor_i64(o)[s * inner + j] = red == R_MAX && cnt[s] == 0 && !so->sorted ? INT64_MIN
                                                   : red == R_MIN && cnt[s] == 0 && !so->sorted ? INT64_MAX
                                                                                              : (int64_t)v;
            else
                pst_tensor_set_f64(o, s * inner + j, v);
        }
    free(acc);
    free(cnt);
    return 0;
}

/* ---- Gradients ------------------------------------------------------------------------- */

static pst_output seg_sum(pst_graph *g, pst_node *n, pst_output x, pst_output ids) {
    int sorted = seg(n->op)->sorted;
    pst_node_builder *b = pst_nb_new(g, sorted ? "SegmentSum" : "UnsortedSegmentSum", NULL);
    pst_nb_input(b, x);
    pst_nb_input(b, ids);
    if (!sorted) pst_nb_input(b, n->inputs[2]);
    pst_nb_attr_type(b, "T", pst_output_dtype(x));
    pst_nb_attr_type(b, "Tindices", pst_output_dtype(ids));
    return pst_nb_finish_out(b);
}

/* t with trailing dims of 1 up to rank r (so it broadcasts against data-shaped tensors). */
static pst_output expand_to(pst_graph *g, pst_output t, int r) {
    for (int k = pst_output_shape(t).rank; k < r; k++) t = pst_expand_dims(g, t, -1, NULL);
    return t;
}

/* ids >= 0, broadcast to like's shape (bool). */
static pst_output positive_like(pst_graph *g, pst_output ids, pst_output like) {
    pst_dtype dt = pst_output_dtype(like);
    pst_output idf = pst_cast(g, expand_to(g, ids, pst_output_shape(like).rank), dt, NULL);
    return pst_greater_equal(g, pst_add(g, idf, pst_zeros_like(g, like, NULL), NULL),
                             pst_const_scalar(g, dt, 0, NULL), NULL);
}

static int seg_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    const seg_op *so = seg(n->op);
    pst_output data = n->inputs[0], ids = n->inputs[1], d = dy[0];
    pst_dtype dt = pst_output_dtype(data);
    int r = pst_output_shape(data).rank, ri = pst_output_shape(ids).rank;
    if (r < 0 || ri < 0)
        return pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "the gradient of %s '%s' needs data and "
                                   "segment_ids of known ranks", n->op->name, n->name);
    /* ids clipped at 0 for the gathers; negative ids (unsorted) are masked out after. */
    pst_output clipped = so->sorted ? ids : pst_maximum(g, ids, pst_zeros_like(g, ids, NULL), NULL);
    switch (so->red) {
    case R_SUM:
        dx[0] = pst_gather(g, d, ids, 0, NULL);
        break;
    case R_MEAN: { /* dy / count, gathered */
        pst_output counts = seg_sum(g, n, pst_cast(g, pst_ones_like(g, ids, NULL), dt, NULL), ids);
        dx[0] = pst_gather(g, pst_real_div(g, d, expand_to(g, counts, pst_output_shape(d).rank), NULL), ids, 0, NULL);
        break;
    }
    case R_MAX:
    case R_MIN: { /* dy split evenly among the entries equal to their segment's result */
        pst_output sel = pst_equal(g, data, pst_gather(g, pst_out(n, 0), clipped, 0, NULL), NULL);
        if (!so->sorted) sel = pst_logical_and(g, sel, positive_like(g, ids, data), NULL);
        pst_output num = seg_sum(g, n, pst_cast(g, sel, dt, NULL), ids);
        pst_output w = pst_gather(g, pst_real_div(g, d, num, NULL), clipped, 0, NULL);
        dx[0] = pst_select(g, sel, w, pst_zeros_like(g, w, NULL), NULL);
        break;
    }
    case R_PROD: { /* UnsortedSegmentProd (math_grad.py's handling of zeros) */
        pst_output zero = pst_const_scalar(g, dt, 0, NULL);
        pst_output is_zero = pst_equal(g, data, zero, NULL);
        pst_output nz = seg_sum(g, n, pst_cast(g, is_zero, PST_INT32, NULL), ids);
        pst_output gd = pst_select(g, pst_greater(g, nz, pst_const_scalar(g, PST_INT32, 1, NULL), NULL),
                                   pst_zeros_like(g, d, NULL), d, NULL);
        pst_output nzd = pst_select(g, is_zero, pst_ones_like(g, data, NULL), data, NULL);
        pst_node_builder *b = pst_nb_new(g, "UnsortedSegmentProd", NULL);
        pst_nb_inputs(b, 3, (pst_output[]){nzd, ids, n->inputs[2]});
        pst_nb_attr_type(b, "T", dt);
        pst_nb_attr_type(b, "Tindices", pst_output_dtype(ids));
        pst_output nzprod = pst_nb_finish_out(b);
        pst_output gp = pst_gather(g, pst_out(n, 0), clipped, 0, NULL);
        pst_output gnz = pst_gather(g, nzprod, clipped, 0, NULL);
        pst_output part = pst_select(g, is_zero, gnz, pst_real_div(g, gp, data, NULL), NULL);
        pst_output gg = pst_gather(g, gd, clipped, 0, NULL);
        gg = pst_select(g, positive_like(g, ids, gg), gg, pst_zeros_like(g, gg, NULL), NULL);
        dx[0] = pst_mul(g, gg, part, NULL);
        break;
    }
    default: break;
    }
    return 0;
}

/* UnsortedSegmentSum: d data = dy gathered at the segment ids (dy[ids] has data's shape), zero
 * for the rows of negative ids, which the forward op dropped (math_grad.py's
 * _GatherDropNegatives). Declared in ops_array_tf.c, which registers the op. */
int pst__unsorted_segment_sum_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx);
int pst__unsorted_segment_sum_grad(pst_graph *g, pst_node *n, const pst_output *dy,
                                   pst_output *dx) {
    pst_output ids = n->inputs[1];
    pst_output clipped = pst_maximum(g, ids, pst_zeros_like(g, ids, NULL), NULL);
    pst_output gathered = pst_gather(g, dy[0], clipped, 0, NULL);
    if (pst_output_shape(ids).rank < 0 || pst_output_shape(gathered).rank < 0)
        return pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "the gradient of %s '%s' needs "
                                   "segment_ids and data of known ranks", n->op->name, n->name);
    dx[0] = pst_select(g, positive_like(g, ids, gathered), gathered,
                       pst_zeros_like(g, gathered, NULL), NULL);
    return 0;
}

/* ---- Registration ---------------------------------------------------------------------- */
static const pst_attr_spec seg_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                          {"Tindices", PST_ATTR_TYPE, 0},
                                          {"Tnumsegments", PST_ATTR_TYPE, 0},
                                          {0}};
#define SEG(nm, ni, red, sorted, gr)                                                              \
    {{.name = nm, .min_inputs = ni, .max_inputs = ni, .n_outputs = 1, .attrs = seg_attrs,         \
      .shape = seg_shape, .kernel = seg_kernel, .grad = gr},                                      \
     red, sorted}
static const seg_op seg_ops[] = {
    SEG("SegmentSum", 2, R_SUM, 1, seg_grad),
    SEG("SegmentMean", 2, R_MEAN, 1, seg_grad),
    SEG("SegmentMax", 2, R_MAX, 1, seg_grad),
    SEG("SegmentMin", 2, R_MIN, 1, seg_grad),
    SEG("SegmentProd", 2, R_PROD, 1, NULL), /* TF has no gradient */
    SEG("UnsortedSegmentMax", 3, R_MAX, 0, seg_grad),
    SEG("UnsortedSegmentMin", 3, R_MIN, 0, seg_grad),
    SEG("UnsortedSegmentProd", 3, R_PROD, 0, seg_grad),
};

void pst__register_segment_ops(void) {
    for (size_t i = 0; i < sizeof seg_ops / sizeof seg_ops[0]; i++) pst_op_register(&seg_ops[i].def);
}
