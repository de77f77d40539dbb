/* Array and index ops TensorFlow's own Python code puts into graphs (its gradient helpers,
 * tf.unique, tf.where, segment sums, metrics), registered so imported TF graphs run: ShapeN,
 * Rank, ConcatOffset, InvertPermutation, PreventGradient, Where, Unique, UnsortedSegmentSum,
 * ListDiff, All, Any, InTopKV2, ReverseSequence, DenseToDenseSetOperation,
 * IsVariableInitialized. */
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "varstore.h"

static pst_dtype out_type(const pst_node *n, const char *attr) {
    pst_dtype t = pst_node_attr_type(n, attr, PST_INT32);
    return t == PST_INT64 ? PST_INT64 : PST_INT32;
}

/* ---- ShapeN, Rank ---------------------------------------------------------------------- */
static int shape_n_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_num_outputs(n, n->n_inputs);
    for (int i = 0; i < n->n_inputs; i++)
        pst_node_set_output(n, i, out_type(n, "out_type"), pst_shape_1d(pst_node_in_shape(n, i).rank));
    return 0;
}

static int shape_n_kernel(pst_kernel_ctx *c) {
    for (int i = 0; i < c->n_inputs; i++) {
        const pst_tensor *x = c->inputs[i];
        pst_tensor *o = pst_kctx_alloc_output(c, i, c->out_dtypes[i], pst_shape_1d(x->shape.rank));
        if (o == NULL) return c->status->code;
        for (int d = 0; d < x->shape.rank; d++) pst_tensor_set_f64(o, d, (double)x->shape.dims[d]);
    }
    return 0;
}

static int rank_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_INT32, pst_shape_scalar());
    return 0;
}

static int rank_kernel(pst_kernel_ctx *c) {
    pst_tensor *o = pst_tensor_scalar_i32(c->inputs[0]->shape.rank);
    pst_kctx_set_output(c, 0, o);
    return 0;
}

/* ---- ConcatOffset(concat_dim, shape_0 .. shape_N-1): where each input starts in the result */
static int concat_offset_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_num_outputs(n, n->n_inputs - 1);
    for (int i = 1; i < n->n_inputs; i++)
        pst_node_set_output(n, i - 1, pst_node_in_dtype(n, i), pst_node_in_shape(n, i));
    return 0;
}

static int concat_offset_kernel(pst_kernel_ctx *c) {
    const pst_tensor *s0 = c->inputs[1];
    int64_t rank = s0->n, axis = pst_tensor_get_i64(c->inputs[0], 0);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank)
        return pst_kctx_error(c, PST_E_INVALID, "concat_dim %lld is out of range for rank %lld",
                              (long long)pst_tensor_get_i64(c->inputs[0], 0), (long long)rank);
    int64_t off = 0;
    for (int i = 1; i < c->n_inputs; i++) {
        const pst_tensor *s = c->inputs[i];
        if (s->n != rank)
            return pst_kctx_error(c, PST_E_INVALID, "shape %d has %lld dims, shape 0 has %lld",
                                  i - 1, (long long)s->n, (long long)rank);
        for (int64_t d = 0; d < rank; d++)
            if (d != axis && pst_tensor_get_i64(s, d) != pst_tensor_get_i64(s0, d))
                return pst_kctx_error(c, PST_E_INVALID, "shape %d differs from shape 0 in dim %lld",
                                      i - 1, (long long)d);
        pst_tensor *o = pst_kctx_alloc_output(c, i - 1, s->dtype, s->shape);
        if (o == NULL) return c->status->code;
        for (int64_t d = 0; d < rank; d++) pst_tensor_set_f64(o, d, d == axis ? (double)off : 0);
        off += pst_tensor_get_i64(s, axis);
    }
    return 0;
}

/* ---- InvertPermutation ----------------------------------------------------------------- */
static int invert_permutation_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    if (x->shape.rank != 1) return pst_kctx_error(c, PST_E_INVALID, "x must be a vector");
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < x->n; i++) pst_tensor_set_f64(o, i, -1);
    for (int64_t i = 0; i < x->n; i++) {
        int64_t v = pst_tensor_get_i64(x, i);
        if (v < 0 || v >= x->n || pst_tensor_get_i64(o, v) != -1)
            return pst_kctx_error(c, PST_E_INVALID, "%lld (at %lld) is not a permutation entry",
                                  (long long)v, (long long)i);
        pst_tensor_set_f64(o, v, (double)i);
    }
    return 0;
}

/* ---- PreventGradient: identity forward, an error when differentiated ------------------- */
static int identity_kernel(pst_kernel_ctx *c) {
    pst_kctx_set_output(c, 0, pst_tensor_ref(c->inputs[0]));
    return 0;
}

static int prevent_gradient_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    (void)dy;
    (void)dx;
    return pst_graph_set_error(g, PST_E_INVALID, "node '%s': gradient explicitly disabled: %s",
                               n->name, pst_node_attr_s(n, "message", ""));
}

/* ---- Where(condition) -> int64 [num_true, rank] coordinates ---------------------------- */
static int where_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape in = pst_node_in_shape(n, 0);
    pst_node_set_output(n, 0, PST_INT64, pst_shape_2d(-1, in.rank >= 0 ? in.rank : -1));
    return 0;
}

static int where_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int64_t k = 0, r = x->shape.rank;
    for (int64_t i = 0; i < x->n; i++) k += pst_tensor_get_f64(x, i) != 0;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_INT64, pst_shape_2d(k, r));
    if (o == NULL) return c->status->code;
    int64_t row = 0;
    for (int64_t i = 0; i < x->n; i++) {
        if (pst_tensor_get_f64(x, i) == 0) continue;
        int64_t rem = i;
        for (int64_t d = r - 1; d >= 0; d--) {
            pst_tensor_i64(o)[row * r + d] = rem % x->shape.dims[d];
            rem /= x->shape.dims[d];
        }
        row++;
    }
    return 0;
}

/* ---- Unique(x) -> y, idx; ListDiff(x, y) -> out, idx ----------------------------------- */
static int unique_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_shape(n, 0).rank > 1)
        return pst_status_set(st, PST_E_INVALID, "x must be a vector");
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_shape_1d(-1));
    pst_node_set_output(n, 1, out_type(n, "out_idx"),
                        strcmp(n->op->name, "ListDiff") == 0 ? pst_shape_1d(-1)
                                                             : pst_node_in_shape(n, 0));
    return 0;
}

static int same_elem(const pst_tensor *a, int64_t i, const pst_tensor *b, int64_t j) {
    if (a->dtype == PST_INT64) return pst_tensor_i64(a)[i] == pst_tensor_i64(b)[j];
    return pst_tensor_get_f64(a, i) == pst_tensor_get_f64(b, j);
}

static int unique_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int64_t *first = malloc(((size_t)x->n + 1) * sizeof *first);
    pst_tensor *idx = pst_kctx_alloc_output(c, 1, c->out_dtypes[1], x->shape);
    if (first == NULL || idx == NULL) {
        free(first);
        return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    }
    int64_t k = 0; /* quadratic in the number of distinct values: vocabularies of a batch */
    for (int64_t i = 0; i < x->n; i++) {
        int64_t j = 0;
        while (j < k && !same_elem(x, i, x, first[j])) j++;
        if (j == k) first[k++] = i;
        pst_tensor_set_f64(idx, i, (double)j);
    }
    pst_tensor *y = pst_kctx_alloc_output(c, 0, x->dtype, pst_shape_1d(k));
    int rc = 0;
    for (int64_t j = 0; y && j < k && rc == 0; j++)
        rc = pst_tensor_copy_elems(y, j, x, first[j], 1, c->status);
    free(first);
    return y ? rc : c->status->code;
}

static int list_diff_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *y = c->inputs[1];
    int64_t *keep = malloc(((size_t)x->n + 1) * sizeof *keep), k = 0;
    if (keep == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    for (int64_t i = 0; i < x->n; i++) {
        int64_t j = 0;
        while (j < y->n && !same_elem(x, i, y, j)) j++;
        if (j == y->n) keep[k++] = i;
    }
    pst_tensor *out = pst_kctx_alloc_output(c, 0, x->dtype, pst_shape_1d(k));
    pst_tensor *idx = pst_kctx_alloc_output(c, 1, c->out_dtypes[1], pst_shape_1d(k));
    for (int64_t j = 0; out && idx && j < k; j++) {
        pst_tensor_copy_elems(out, j, x, keep[j], 1, NULL);
        pst_tensor_set_f64(idx, j, (double)keep[j]);
    }
    free(keep);
    return out && idx ? 0 : c->status->code;
}

/* ---- UnsortedSegmentSum(data, segment_ids, num_segments) ------------------------------- */
static int segment_sum_shape(pst_node *n, pst_status *st) {
    pst_shape d = pst_node_in_shape(n, 0), ids = pst_node_in_shape(n, 1), out = pst_shape_unknown();
    const pst_tensor *num = pst_node_in_const(n, 2);
    if (d.rank >= 0 && ids.rank >= 0) {
        if (ids.rank > d.rank)
            return pst_status_set(st, PST_E_INVALID, "segment_ids has more dims than data");
        out.rank = 1 + d.rank - ids.rank;
        out.dims[0] = num ? pst_tensor_get_i64(num, 0) : -1;
        for (int i = ids.rank; i < d.rank; i++) out.dims[1 + i - ids.rank] = d.dims[i];
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int segment_sum_kernel(pst_kernel_ctx *c) {
    const pst_tensor *d = c->inputs[0], *ids = c->inputs[1];
    int64_t num = pst_tensor_get_i64(c->inputs[2], 0);
    if (num < 0 || ids->shape.rank > d->shape.rank)
        return pst_kctx_error(c, PST_E_INVALID, "bad num_segments or segment_ids rank");
    for (int i = 0; i < ids->shape.rank; i++)
        if (ids->shape.dims[i] != d->shape.dims[i])
            return pst_kctx_error(c, PST_E_INVALID, "segment_ids shape is not a prefix of data's");
    pst_shape os = {.rank = 1 + d->shape.rank - ids->shape.rank};
    os.dims[0] = num;
    for (int i = ids->shape.rank; i < d->shape.rank; i++)
        os.dims[1 + i - ids->shape.rank] = d->shape.dims[i];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, d->dtype, os);
    if (o == NULL) return c->status->code;
    memset(o->data, 0, o->nbytes);
    int64_t inner = ids->n ? d->n / ids->n : 0;
    for (int64_t k = 0; k < ids->n; k++) {
        int64_t s = pst_tensor_get_i64(ids, k);
        if (s < 0) continue; /* TF drops negative ids */
        if (s >= num)
            return pst_kctx_error(c, PST_E_INVALID, "segment id %lld is not in [0, %lld)",
                                  (long long)s, (long long)num);
        if (d->dtype == PST_FLOAT) {
            float *dst = pst_tensor_f32(o) + s * inner;
            const float *src = pst_tensor_f32(d) + k * inner;
            for (int64_t j = 0; j < inner; j++) dst[j] += src[j];
        } else {
            for (int64_t j = 0; j < inner; j++)
                pst_tensor_set_f64(o, s * inner + j, pst_tensor_get_f64(o, s * inner + j) +
                                                         pst_tensor_get_f64(d, k * inner + j));
        }
    }
    return 0;
}

/* The gradient lives in ops_segment.c with the other segment gradients. */
int pst__unsorted_segment_sum_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx);

/* ---- All, Any (bool reductions over axes) ---------------------------------------------- */
static int logical_reduce_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_BOOL)
        return pst_status_set(st, PST_E_INVALID, "input must be bool");
    pst_shape in = pst_node_in_shape(n, 0), out = pst_shape_unknown();
    const pst_tensor *ax = pst_node_in_const(n, 1);
    int keep = pst_node_attr_b(n, "keep_dims", 0);
    if (in.rank >= 0 && ax) {
        int red[PST_MAX_RANK] = {0};
        for (int64_t i = 0; i < ax->n; i++) {
            int64_t a = pst_tensor_get_i64(ax, i);
            if (a < 0) a += in.rank;
            if (a < 0 || a >= in.rank)
                return pst_status_set(st, PST_E_INVALID, "axis out of range for rank %d", in.rank);
            red[a] = 1;
        }
        out.rank = 0;
        for (int d = 0; d < in.rank; d++)
            if (!red[d]) out.dims[out.rank++] = in.dims[d];
            else if (keep) out.dims[out.rank++] = 1;
    }
    pst_node_set_output(n, 0, PST_BOOL, out);
    return 0;
}

static int logical_reduce_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *ax = c->inputs[1];
    int all = strcmp(c->op->name, "All") == 0, keep = pst_kctx_attr_b(c, "keep_dims", 0);
    int red[PST_MAX_RANK] = {0}, r = x->shape.rank;
    for (int64_t i = 0; i < ax->n; i++) {
        int64_t a = pst_tensor_get_i64(ax, i);
        if (a < 0) a += r;
        if (a < 0 || a >= r) return pst_kctx_error(c, PST_E_INVALID, "axis out of range");
        red[a] = 1;
    }
    pst_shape os = {0};
    for (int d = 0; d < r; d++)
        if (!red[d]) os.dims[os.rank++] = x->shape.dims[d];
        else if (keep) os.dims[os.rank++] = 1;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_BOOL, os);
    if (o == NULL) return c->status->code;
    memset(o->data, all ? 1 : 0, o->nbytes);
    for (int64_t i = 0; i < x->n; i++) {
        int64_t rem = i, oi = 0;
        int64_t coord[PST_MAX_RANK];
        for (int d = r - 1; d >= 0; d--) {
            coord[d] = rem % x->shape.dims[d];
            rem /= x->shape.dims[d];
        }
        for (int d = 0; d < r; d++)
            if (!red[d]) oi = oi * x->shape.dims[d] + coord[d];
        uint8_t v = pst_tensor_u8(x)[i] != 0;
        if (all) pst_tensor_u8(o)[oi] &= v;
        else pst_tensor_u8(o)[oi] |= v;
    }
    return 0;
}

/* ---- InTopKV2(predictions, targets, k) ------------------------------------------------- */
static int in_top_k_v2_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape t = pst_node_in_shape(n, 1);
    pst_node_set_output(n, 0, PST_BOOL, t);
    return 0;
}

static int in_top_k_v2_kernel(pst_kernel_ctx *c) {
    const pst_tensor *p = c->inputs[0], *t = c->inputs[1];
    int64_t k = pst_tensor_get_i64(c->inputs[2], 0);
    if (p->shape.rank != 2 || t->shape.rank != 1 || t->n != p->shape.dims[0])
        return pst_kctx_error(c, PST_E_INVALID, "predictions must be [batch, classes] and targets "
                              "[batch]");
    int64_t classes = p->shape.dims[1];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_BOOL, t->shape);
    if (o == NULL) return c->status->code;
    for (int64_t b = 0; b < t->n; b++) {
        int64_t tg = pst_tensor_get_i64(t, b), above = 0;
        int ok = tg >= 0 && tg < classes;
        double v = ok ? pst_tensor_get_f64(p, b * classes + tg) : 0;
        for (int64_t j = 0; ok && j < classes; j++)
            above += pst_tensor_get_f64(p, b * classes + j) > v;
        pst_tensor_u8(o)[b] = ok && v == v && above < k;
    }
    return 0;
}

/* ---- ReverseSequence(input, seq_lengths): the first seq_lengths[b] steps of each batch
 * entry reversed along seq_dim, the rest left in place. */
static int reverse_sequence_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *len = c->inputs[1];
    int64_t sd = pst_kctx_attr_i(c, "seq_dim", 0), bd = pst_kctx_attr_i(c, "batch_dim", 0);
    int r = x->shape.rank;
    if (sd < 0 || sd >= r || bd < 0 || bd >= r || sd == bd || len->n != x->shape.dims[bd])
        return pst_kctx_error(c, PST_E_INVALID, "bad seq_dim %lld / batch_dim %lld for rank %d "
                              "with %lld lengths", (long long)sd, (long long)bd, r,
                              (long long)len->n);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    int64_t strides[PST_MAX_RANK], st = 1;
    for (int d = r - 1; d >= 0; d--) {
        strides[d] = st;
        st *= x->shape.dims[d];
    }
    for (int64_t i = 0; i < x->n; i++) {
        int64_t b = (i / strides[bd]) % x->shape.dims[bd], t = (i / strides[sd]) % x->shape.dims[sd];
        int64_t l = pst_tensor_get_i64(len, b), src = i;
        if (l < 0 || l > x->shape.dims[sd])
            return pst_kctx_error(c, PST_E_INVALID, "seq_lengths[%lld] = %lld is out of range",
                                  (long long)b, (long long)l);
        if (t < l) src = i + (l - 1 - 2 * t) * strides[sd];
        if (pst_tensor_copy_elems(o, i, x, src, 1, c->status) < 0) return c->status->code;
    }
    return 0;
}

static int reverse_sequence_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node_builder *b = pst_nb_new(g, "ReverseSequence", NULL);
    pst_nb_input(b, dy[0]);
    pst_nb_input(b, n->inputs[1]);
    pst_nb_attr_type(b, "T", pst_output_dtype(dy[0]));
    pst_nb_attr_type(b, "Tlen", pst_output_dtype(n->inputs[1]));
    pst_nb_attr_i(b, "seq_dim", pst_node_attr_i(n, "seq_dim", 0));
    pst_nb_attr_i(b, "batch_dim", pst_node_attr_i(n, "batch_dim", 0));
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

/* ---- DenseToDenseSetOperation(set1, set2) -> SparseTensor (indices, values, shape): per row
 * (all dims but the last), the sorted distinct values of set1 op set2 for op "a-b", "b-a",
 * "intersection" or "union" (tf.sets, as tf.losses' shape assertions use them). */
static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t sorted_unique(int64_t *v, int64_t n) {
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (k == 0 || v[k - 1] != v[i]) v[k++] = v[i];
    return k;
}

static int in_sorted(const int64_t *v, int64_t n, int64_t x) {
    return bsearch(&x, v, (size_t)n, sizeof *v, cmp_i64) != NULL;
}

static int set_op_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (!pst_dtype_is_int(dt))
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "sets of %s are not supported", pst_dtype_name(dt));
    pst_node_set_output(n, 0, PST_INT64, pst_shape_2d(-1, -1));
    pst_node_set_output(n, 1, dt, pst_shape_1d(-1));
    pst_node_set_output(n, 2, PST_INT64, pst_shape_1d(-1));
    return 0;
}

static int set_op_kernel(pst_kernel_ctx *c) {
    const pst_tensor *a = c->inputs[0], *b = c->inputs[1];
    const char *op = pst_kctx_attr_s(c, "set_operation", "");
    int mode = strcmp(op, "a-b") == 0 ? 0 : strcmp(op, "b-a") == 0 ? 1
             : strcmp(op, "intersection") == 0 ? 2 : strcmp(op, "union") == 0 ? 3 : -1;
    int r = a->shape.rank;
    if (mode < 0) return pst_kctx_error(c, PST_E_INVALID, "unknown set_operation '%s'", op);
    if (r < 2 || b->shape.rank != r)
        return pst_kctx_error(c, PST_E_INVALID, "sets must have the same rank >= 2");
    for (int d = 0; d < r - 1; d++)
        if (a->shape.dims[d] != b->shape.dims[d])
            return pst_kctx_error(c, PST_E_INVALID, "sets differ in dim %d", d);
    int64_t la = a->shape.dims[r - 1], lb = b->shape.dims[r - 1], rows = la ? a->n / la : 0;
    if (la == 0) rows = lb ? b->n / lb : 0;
    int64_t *va = malloc(((size_t)la + 1) * sizeof *va), *vb = malloc(((size_t)lb + 1) * sizeof *vb);
    int64_t *res = malloc(((size_t)(la + lb) * (size_t)(rows ? rows : 1) + 1) * sizeof *res);
    int64_t *cnt = calloc((size_t)rows + 1, sizeof *cnt), total = 0, width = 0;
    PST_ASSERT(va && vb && res && cnt);
    for (int64_t row = 0; row < rows; row++) {
        for (int64_t i = 0; i < la; i++) va[i] = pst_tensor_get_i64(a, row * la + i);
        for (int64_t i = 0; i < lb; i++) vb[i] = pst_tensor_get_i64(b, row * lb + i);
        int64_t na = sorted_unique(va, la), nb = sorted_unique(vb, lb), k = 0;
        const int64_t *x = mode == 1 ? vb : va, *y = mode == 1 ? va : vb;
        int64_t nx = mode == 1 ? nb : na, ny = mode == 1 ? na : nb;
        int64_t *out = res + total;
        for (int64_t i = 0; i < nx; i++) {
            int in_y = in_sorted(y, ny, x[i]);
            if ((mode <= 1 && !in_y) || (mode == 2 && in_y) || mode == 3) out[k++] = x[i];
        }
        if (mode == 3)
            for (int64_t i = 0; i < ny; i++)
                if (!in_sorted(x, nx, y[i])) out[k++] = y[i];
        if (mode == 3) k = sorted_unique(out, k);
        cnt[row] = k;
        total += k;
        if (k > width) width = k;
    }
    pst_tensor *idx = pst_kctx_alloc_output(c, 0, PST_INT64, pst_shape_2d(total, r));
    pst_tensor *val = pst_kctx_alloc_output(c, 1, a->dtype, pst_shape_1d(total));
    pst_tensor *shp = pst_kctx_alloc_output(c, 2, PST_INT64, pst_shape_1d(r));
    int rc = idx && val && shp ? 0 : c->status->code;
    for (int64_t row = 0, at = 0; rc == 0 && row < rows; row++)
        for (int64_t j = 0; j < cnt[row]; j++, at++) {
            int64_t rem = row;
            for (int d = r - 2; d >= 0; d--) {
                pst_tensor_i64(idx)[at * r + d] = rem % a->shape.dims[d];
                rem /= a->shape.dims[d];
            }
            pst_tensor_i64(idx)[at * r + r - 1] = j;
            pst_tensor_set_f64(val, at, (double)res[at]);
        }
    for (int d = 0; rc == 0 && d < r; d++)
        pst_tensor_i64(shp)[d] = d < r - 1 ? a->shape.dims[d] : width;
    free(va), free(vb), free(res), free(cnt);
    return rc;
}

/* ---- IsVariableInitialized(ref) -------------------------------------------------------- */
/* Shared with VarIsInitializedOp (ops_resource.c): a variable's "initialized" flag. */
int pst__is_initialized_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_BOOL, pst_shape_scalar());
    return 0;
}

int pst__is_initialized_kernel(pst_kernel_ctx *c) {
    pst_kctx_set_output(c, 0, pst_tensor_scalar_bool(pst_var_is_initialized(c->input_vars[0])));
    return 0;
}

static const pst_attr_spec shape_n_attrs[] = {
    {"N", PST_ATTR_INT, 0}, {"T", PST_ATTR_TYPE, 0}, {"out_type", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec t_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"N", PST_ATTR_INT, 0}, {0}};
static const pst_attr_spec prevent_attrs[] = {
    {"T", PST_ATTR_TYPE, 0}, {"message", PST_ATTR_STRING, 0}, {0}};
static const pst_attr_spec unique_attrs[] = {
    {"T", PST_ATTR_TYPE, 0}, {"out_idx", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec segment_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                              {"Tindices", PST_ATTR_TYPE, 0},
                                              {"Tnumsegments", PST_ATTR_TYPE, 0},
                                              {0}};
static const pst_attr_spec logical_attrs[] = {
    {"keep_dims", PST_ATTR_BOOL, 0}, {"Tidx", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec reverse_seq_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                                  {"Tlen", PST_ATTR_TYPE, 0},
                                                  {"seq_dim", PST_ATTR_INT, 1},
                                                  {"batch_dim", PST_ATTR_INT, 0},
                                                  {0}};
static const pst_attr_spec set_op_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                              {"set_operation", PST_ATTR_STRING, 1},
                                              {"validate_indices", PST_ATTR_BOOL, 0},
                                              {0}};
static const pst_attr_spec is_init_attrs[] = {{"dtype", PST_ATTR_TYPE, 0}, {0}};

#define ND PST_OP_NOT_DIFFERENTIABLE
static const pst_op_def array_tf_ops[] = {
    {.name = "ShapeN", .min_inputs = 1, .max_inputs = -1, .n_outputs = -1, .attrs = shape_n_attrs,
     .shape = shape_n_shape, .kernel = shape_n_kernel, .flags = ND | PST_OP_STRINGS},
    {.name = "Rank", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = t_attrs,
     .shape = rank_shape, .kernel = rank_kernel, .flags = ND | PST_OP_STRINGS},
    {.name = "ConcatOffset", .min_inputs = 3, .max_inputs = -1, .n_outputs = -1, .attrs = t_attrs,
     .shape = concat_offset_shape, .kernel = concat_offset_kernel, .flags = ND},
    {.name = "InvertPermutation", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = t_attrs, .shape = pst_shape_same_as_input0, .kernel = invert_permutation_kernel,
     .flags = ND},
    {.name = "PreventGradient", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = prevent_attrs, .shape = pst_shape_same_as_input0, .kernel = identity_kernel,
     .grad = prevent_gradient_grad},
    {.name = "Where", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = t_attrs,
     .shape = where_shape, .kernel = where_kernel, .flags = ND},
    {.name = "Unique", .min_inputs = 1, .max_inputs = 1, .n_outputs = 2, .attrs = unique_attrs,
     .shape = unique_shape, .kernel = unique_kernel, .flags = ND},
    {.name = "ListDiff", .min_inputs = 2, .max_inputs = 2, .n_outputs = 2, .attrs = unique_attrs,
     .shape = unique_shape, .kernel = list_diff_kernel, .flags = ND},
    {.name = "UnsortedSegmentSum", .min_inputs = 3, .max_inputs = 3, .n_outputs = 1,
     .attrs = segment_attrs, .shape = segment_sum_shape, .kernel = segment_sum_kernel,
     .grad = pst__unsorted_segment_sum_grad},
    {.name = "All", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, .attrs = logical_attrs,
     .shape = logical_reduce_shape, .kernel = logical_reduce_kernel, .flags = ND},
    {.name = "Any", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, .attrs = logical_attrs,
     .shape = logical_reduce_shape, .kernel = logical_reduce_kernel, .flags = ND},
    {.name = "InTopKV2", .min_inputs = 3, .max_inputs = 3, .n_outputs = 1, .attrs = t_attrs,
     .shape = in_top_k_v2_shape, .kernel = in_top_k_v2_kernel, .flags = ND},
    {.name = "ReverseSequence", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = reverse_seq_attrs, .shape = pst_shape_same_as_input0,
     .kernel = reverse_sequence_kernel, .grad = reverse_sequence_grad},
    {.name = "DenseToDenseSetOperation", .min_inputs = 2, .max_inputs = 2, .n_outputs = 3,
     .attrs = set_op_attrs, .shape = set_op_shape, .kernel = set_op_kernel, .flags = ND},
    {.name = "IsVariableInitialized", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = is_init_attrs, .shape = pst__is_initialized_shape,
     .kernel = pst__is_initialized_kernel,
     .flags = ND | PST_OP_STATEFUL, .ref_mask = 0x1},
};

void pst__register_array_tf_ops(void) {
    for (size_t i = 0; i < sizeof array_tf_ops / sizeof array_tf_ops[0]; i++)
        pst_op_register(&array_tf_ops[i]);
}
