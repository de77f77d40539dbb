/* More array and image ops TF 1.x graphs of the kinds pstrain imports use (also Snapshot,
 * IdentityN, TF 0.x's TileGrad, PadV2, MirrorPad(Grad), SparseToDense): Cumsum (RL returns),
 * ReverseV2 (tf.reverse), SplitV (tf.split with sizes), GatherNd and ScatterNd (seq2seq,
 * attention), SelectV2 (tf.where with broadcasting), BroadcastTo, IsNan/IsInf/IsFinite, TopKV2,
 * ResizeNearestNeighbor and ResizeBilinear with their gradient ops (GAN and autoencoder
 * upsampling). Gradients where TF has them, written with the ops TF's own gradients use. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op.h"
#include "ops.h"

/* Row-major unravel of flat in s into idx. */
static void unravel(const pst_shape *s, int64_t flat, int64_t *idx) {
    for (int d = s->rank - 1; d >= 0; d--) {
        int64_t n = s->dims[d] ? s->dims[d] : 1;
        idx[d] = flat % n;
        flat /= n;
    }
}

/* The flat index in `in` (broadcast to `out`, dims right-aligned, 1s repeated) of out's flat. */
static int64_t bcast_src(const pst_shape *out, const pst_shape *in, int64_t flat) {
    int64_t idx[PST_MAX_RANK], at = 0;
    unravel(out, flat, idx);
    for (int d = 0; d < in->rank; d++) {
        int od = out->rank - in->rank + d;
        at = at * in->dims[d] + (in->dims[d] == 1 ? 0 : idx[od]);
    }
    return at;
}

static int axis_of(int64_t a, int rank, int64_t *out) {
    if (a < 0) a += rank;
    if (a < 0 || a >= (rank ? rank : 1)) return -1;
    *out = a;
    return 0;
}

/* ---- Cumsum(x, axis), Cumprod(x, axis) ------------------------------------------------- */
static int cumsum_kernel(pst_kernel_ctx *c) {
    int prod = strcmp(c->op->name, "Cumprod") == 0;
    const pst_tensor *x = c->inputs[0];
    int64_t ax;
    if (axis_of(pst_tensor_get_i64(c->inputs[1], 0), x->shape.rank, &ax) < 0)
        return pst_kctx_error(c, PST_E_INVALID, "axis is outside rank %d", x->shape.rank);
    int excl = pst_kctx_attr_b(c, "exclusive", 0), rev = pst_kctx_attr_b(c, "reverse", 0);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    int64_t len = x->shape.rank ? x->shape.dims[ax] : 1, inner = 1;
    for (int d = (int)ax + 1; d < x->shape.rank; d++) inner *= x->shape.dims[d];
    int64_t outer = (len * inner) != 0 ? x->n / (len * inner) : 0;
    for (int64_t o0 = 0; o0 < outer; o0++)
        for (int64_t i = 0; i < inner; i++) {
            double sum = prod ? 1 : 0;
            for (int64_t k = 0; k < len; k++) {
                int64_t j = rev ? len - 1 - k : k, at = (o0 * len + j) * inner + i;
                double v = pst_tensor_get_f64(x, at);
                if (!excl) sum = prod ? sum * v : sum + v;
                pst_tensor_set_f64(o, at, sum);
                if (excl) sum = prod ? sum * v : sum + v;
            }
        }
    return 0;
}

/* A builder of op(dy, n's input 1, ...) with T = dy's dtype: the gradient of ops that are their
 * own adjoint given the same other inputs (ReverseV2, MatrixBandPart; Cumsum with reverse
 * flipped). */
static pst_node_builder *op_on_dy(pst_graph *g, const char *op, pst_node *n, pst_output dy) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_input(b, dy);
    pst_nb_input(b, n->inputs[1]);
    pst_nb_attr_type(b, "T", pst_output_dtype(dy));
    return b;
}

static int cumsum_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node_builder *b = op_on_dy(g, "Cumsum", n, dy[0]);
    pst_nb_attr_b(b, "exclusive", pst_node_attr_b(n, "exclusive", 0));
    pst_nb_attr_b(b, "reverse", !pst_node_attr_b(n, "reverse", 0));
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

/* TF's: cumsum(cumprod(x) dy) with reverse flipped, over x (a zero of x gives inf/nan there,
 * as in TF). */
static int cumprod_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int excl = pst_node_attr_b(n, "exclusive", 0), rev = pst_node_attr_b(n, "reverse", 0);
    pst_node_builder *b = op_on_dy(g, "Cumsum", n, pst_mul(g, pst_out(n, 0), dy[0], NULL));
    pst_nb_attr_b(b, "exclusive", excl);
    pst_nb_attr_b(b, "reverse", !rev);
    dx[0] = pst_real_div(g, pst_nb_finish_out(b), n->inputs[0], NULL);
    return 0;
}

/* ---- ReverseV2(x, axes) ---------------------------------------------------------------- */
static int reverse_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *axes = c->inputs[1];
    int flip[PST_MAX_RANK] = {0};
    for (int64_t k = 0; k < axes->n; k++) {
        int64_t a;
        if (axis_of(pst_tensor_get_i64(axes, k), x->shape.rank, &a) < 0)
            return pst_kctx_error(c, PST_E_INVALID, "axis %lld is outside rank %d",
                                  (long long)pst_tensor_get_i64(axes, k), x->shape.rank);
        flip[a] = 1;
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    int64_t idx[PST_MAX_RANK];
    for (int64_t i = 0; i < x->n; i++) {
        unravel(&x->shape, i, idx);
        int64_t at = 0;
        for (int d = 0; d < x->shape.rank; d++)
            at = at * x->shape.dims[d] + (flip[d] ? x->shape.dims[d] - 1 - idx[d] : idx[d]);
        if (pst_tensor_copy_elems(o, i, x, at, 1, c->status) < 0) return c->status->code;
    }
    return 0;
}

static int reverse_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    dx[0] = pst_nb_finish_out(op_on_dy(g, "ReverseV2", n, dy[0]));
    return 0;
}

/* ---- SplitV(value, size_splits, axis): num_split pieces; one size may be -1 ------------ */
static int splitv_sizes(const pst_tensor *sizes, int64_t total, int64_t *out, pst_status *st) {
    int64_t sum = 0, free_at = -1;
    for (int64_t i = 0; i < sizes->n; i++) {
        out[i] = pst_tensor_get_i64(sizes, i);
        if (out[i] == -1 && free_at < 0) free_at = i;
        else if (out[i] < 0) return pst_status_set(st, PST_E_INVALID, "size_splits[%lld] is %lld", (long long)i, (long long)out[i]);
        else sum += out[i];
    }
    if (free_at >= 0) out[free_at] = total - sum, sum = total;
    if (sum != total || (free_at >= 0 && out[free_at] < 0))
        return pst_status_set(st, PST_E_INVALID, "size_splits add up to %lld, the dim is %lld",
                              (long long)sum, (long long)total);
    return 0;
}

static int splitv_shape(pst_node *n, pst_status *st) {
    int k = (int)pst_node_attr_i(n, "num_split", 1);
    if (k < 1) return pst_status_set(st, PST_E_INVALID, "num_split must be >= 1");
    pst_node_set_num_outputs(n, k);
    pst_shape x = pst_node_in_shape(n, 0);
    const pst_tensor *sz = pst_node_in_const(n, 1), *axt = pst_node_in_const(n, 2);
    int64_t ax = -1, sizes[256];
    if (axt && x.rank >= 0 && axis_of(pst_tensor_get_i64(axt, 0), x.rank, &ax) < 0)
        return pst_status_set(st, PST_E_INVALID, "axis is outside rank %d", x.rank);
    int known = sz && ax >= 0 && sz->n == k && k <= 256 && x.dims[ax] >= 0 &&
                splitv_sizes(sz, x.dims[ax], sizes, st) == 0;
    if (st->code) return st->code;
    for (int i = 0; i < k; i++) {
        pst_shape s = x;
        if (ax >= 0) s.dims[ax] = known ? sizes[i] : -1;
        else if (x.rank >= 0) s = pst_shape_unknown();
        pst_node_set_output(n, i, pst_node_in_dtype(n, 0), s);
    }
    return 0;
}

static int splitv_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *sz = c->inputs[1];
    int64_t ax;
    if (axis_of(pst_tensor_get_i64(c->inputs[2], 0), x->shape.rank, &ax) < 0 || x->shape.rank == 0)
        return pst_kctx_error(c, PST_E_INVALID, "axis is outside rank %d", x->shape.rank);
    if (sz->n != c->n_outputs)
        return pst_kctx_error(c, PST_E_INVALID, "%lld sizes for %d outputs", (long long)sz->n, c->n_outputs);
    int64_t *sizes = malloc((size_t)(sz->n + 1) * sizeof *sizes);
    PST_ASSERT(sizes != NULL);
    int rc = splitv_sizes(sz, x->shape.dims[ax], sizes, c->status);
    int64_t len = x->shape.dims[ax], inner = 1, off = 0;
    for (int d = (int)ax + 1; d < x->shape.rank; d++) inner *= x->shape.dims[d];
    int64_t outer = (len * inner) != 0 ? x->n / (len * inner) : 0;
    for (int i = 0; i < c->n_outputs && rc == 0; i++) {
        pst_shape s = x->shape;
        s.dims[ax] = sizes[i];
        pst_tensor *o = pst_kctx_alloc_output(c, i, x->dtype, s);
        if (o == NULL) rc = c->status->code;
        for (int64_t o0 = 0; o0 < outer && rc == 0; o0++)
            rc = pst_tensor_copy_elems(o, o0 * sizes[i] * inner, x, (o0 * len + off) * inner,
                                       sizes[i] * inner, c->status);
        off += sizes[i];
    }
    free(sizes);
    return rc;
}

static int splitv_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    const pst_tensor *axt = pst_node_in_const(n, 2);
    if (axt == NULL) return 0; /* a computed axis: no gradient (the path errors if needed) */
    pst_output *parts = calloc((size_t)n->n_outputs, sizeof *parts);
    PST_ASSERT(parts != NULL);
    for (int i = 0; i < n->n_outputs; i++)
        parts[i] = dy[i].node ? dy[i] : pst_zeros_like(g, pst_out(n, i), NULL);
    dx[0] = pst_concat(g, n->n_outputs, parts, (int)pst_tensor_get_i64(axt, 0), NULL);
    free(parts);
    return 0;
}

/* ---- GatherNd(params, indices), ScatterNd(indices, updates, shape) --------------------- */
static int gather_nd_shape(pst_node *n, pst_status *st) {
    pst_shape p = pst_node_in_shape(n, 0), i = pst_node_in_shape(n, 1), s = pst_shape_unknown();
    if (p.rank >= 0 && i.rank >= 1 && i.dims[i.rank - 1] >= 0) {
        int64_t K = i.dims[i.rank - 1];
        if (K > p.rank) return pst_status_set(st, PST_E_INVALID, "indices index %lld dims of rank %d", (long long)K, p.rank);
        s.rank = i.rank - 1 + p.rank - (int)K;
        if (s.rank > PST_MAX_RANK) return pst_status_set(st, PST_E_INVALID, "result rank too large");
        for (int d = 0; d < i.rank - 1; d++) s.dims[d] = i.dims[d];
        for (int d = (int)K; d < p.rank; d++) s.dims[i.rank - 1 + d - (int)K] = p.dims[d];
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), s);
    return 0;
}

/* Checks indices [..., K] against dims[0..K) of `of`; *slice = elements per index. */
static int nd_slices(pst_kernel_ctx *c, const pst_tensor *idx, const pst_shape *of, int64_t *K,
                     int64_t *slice) {
    if (idx->shape.rank < 1) return pst_kctx_error(c, PST_E_INVALID, "indices must have rank >= 1");
    *K = idx->shape.dims[idx->shape.rank - 1];
    if (*K > of->rank) return pst_kctx_error(c, PST_E_INVALID, "indices index %lld dims of rank %d", (long long)*K, of->rank);
    *slice = 1;
    for (int d = (int)*K; d < of->rank; d++) *slice *= of->dims[d];
    for (int64_t i = 0; i < idx->n; i++) {
        int64_t v = pst_tensor_get_i64(idx, i), d = *K ? i % *K : 0;
        if (v < 0 || v >= of->dims[d])
            return pst_kctx_error(c, PST_E_INVALID, "index %lld is not in [0, %lld) in dim %lld",
                                  (long long)v, (long long)of->dims[d], (long long)d);
    }
    return 0;
}

static int64_t nd_offset(const pst_tensor *idx, int64_t row, int64_t K, const pst_shape *of, int64_t slice) {
    int64_t at = 0;
    for (int64_t d = 0; d < K; d++) at = at * of->dims[d] + pst_tensor_get_i64(idx, row * K + d);
    return at * slice;
}

static int gather_nd_kernel(pst_kernel_ctx *c) {
    const pst_tensor *p = c->inputs[0], *idx = c->inputs[1];
    int64_t K, slice;
    if (nd_slices(c, idx, &p->shape, &K, &slice) < 0) return c->status->code;
    pst_shape s = {.rank = idx->shape.rank - 1 + p->shape.rank - (int)K};
    if (s.rank > PST_MAX_RANK) return pst_kctx_error(c, PST_E_INVALID, "result rank too large");
    for (int d = 0; d < idx->shape.rank - 1; d++) s.dims[d] = idx->shape.dims[d];
    for (int d = (int)K; d < p->shape.rank; d++) s.dims[idx->shape.rank - 1 + d - (int)K] = p->shape.dims[d];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, p->dtype, s);
    if (o == NULL) return c->status->code;
    int64_t rows = K ? idx->n / K : 0;
    for (int64_t r = 0; r < rows; r++)
        if (pst_tensor_copy_elems(o, r * slice, p, nd_offset(idx, r, K, &p->shape, slice), slice, c->status) < 0)
            return c->status->code;
    return 0;
}

static pst_output nd_op(pst_graph *g, const char *op, pst_output a, pst_output b, pst_output c3) {
    pst_node_builder *nb = pst_nb_new(g, op, NULL);
    pst_nb_input(nb, a);
    pst_nb_input(nb, b);
    if (c3.node) pst_nb_input(nb, c3);
    return pst_nb_finish_out(nb);
}

static int gather_nd_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    dx[0] = nd_op(g, "ScatterNd", n->inputs[1], dy[0],
                  pst_shape_of(g, n->inputs[0], pst_output_dtype(n->inputs[1]), NULL));
    return 0;
}

/* The shape input i holds when it is a Const, else unknown. */
static pst_shape const_shape_input(const pst_node *n, int i) {
    const pst_tensor *sh = pst_node_in_const(n, i);
    pst_shape s = pst_shape_unknown();
    if (sh && sh->n <= PST_MAX_RANK) {
        s.rank = (int)sh->n;
        for (int d = 0; d < s.rank; d++) s.dims[d] = pst_tensor_get_i64(sh, d);
    }
    return s;
}

static int scatter_nd_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 1), const_shape_input(n, 2));
    return 0;
}

static int scatter_nd_kernel(pst_kernel_ctx *c) {
    const pst_tensor *idx = c->inputs[0], *u = c->inputs[1], *sh = c->inputs[2];
    if (sh->n > PST_MAX_RANK) return pst_kctx_error(c, PST_E_INVALID, "shape has too many dims");
    pst_shape s = {.rank = (int)sh->n};
    for (int d = 0; d < s.rank; d++) s.dims[d] = pst_tensor_get_i64(sh, d);
    int64_t K, slice;
    if (nd_slices(c, idx, &s, &K, &slice) < 0) return c->status->code;
    int64_t rows = K ? idx->n / K : 0;
    if (u->n != rows * slice)
        return pst_kctx_error(c, PST_E_INVALID, "updates hold %lld elements, %lld indices of %lld "
                              "need %lld", (long long)u->n, (long long)rows, (long long)slice,
                              (long long)(rows * slice));
    pst_tensor *o = pst_tensor_new_zeros(u->dtype, s, c->status);
    if (o == NULL) return c->status->code;
    for (int64_t r = 0; r < rows; r++) {
        int64_t at = nd_offset(idx, r, K, &s, slice);
        for (int64_t j = 0; j < slice; j++)
            pst_tensor_set_f64(o, at + j, pst_tensor_get_f64(o, at + j) + pst_tensor_get_f64(u, r * slice + j));
    }
    pst_kctx_set_output(c, 0, o);
    return 0;
}

static int scatter_nd_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    dx[1] = nd_op(g, "GatherNd", dy[0], n->inputs[0], (pst_output){NULL, 0});
    return 0;
}

/* ---- SelectV2(cond, t, e) and BroadcastTo(x, shape): NumPy broadcasting ---------------- */
static int select_v2_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_BOOL) return pst_status_set(st, PST_E_INVALID, "condition must be bool");
    if (pst_shape_check_same_dtype(n, 1, 2, st) < 0) return st->code;
    pst_shape a = pst_node_in_shape(n, 0), b = pst_node_in_shape(n, 1), e = pst_node_in_shape(n, 2), ab, out;
    if (pst_shape_broadcast(&a, &b, &ab, st) < 0 || pst_shape_broadcast(&ab, &e, &out, st) < 0) return st->code;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 1), out);
    return 0;
}

static int bcast_shapes(pst_kernel_ctx *c, int n, const pst_shape *in, pst_shape *out) {
    *out = in[0];
    for (int i = 1; i < n; i++) {
        pst_shape r;
        if (pst_shape_broadcast(out, &in[i], &r, c->status) < 0) return c->status->code;
        *out = r;
    }
    return 0;
}

static int select_v2_kernel(pst_kernel_ctx *c) {
    const pst_tensor *cond = c->inputs[0], *t = c->inputs[1], *e = c->inputs[2];
    pst_shape in[3] = {cond->shape, t->shape, e->shape}, os;
    if (bcast_shapes(c, 3, in, &os) < 0) return c->status->code;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, t->dtype, os);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < o->n; i++) {
        int take = pst_tensor_u8(cond)[bcast_src(&os, &cond->shape, i)];
        const pst_tensor *src = take ? t : e;
        if (pst_tensor_copy_elems(o, i, src, bcast_src(&os, &src->shape, i), 1, c->status) < 0)
            return c->status->code;
    }
    return 0;
}

static int select_v2_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output z = pst_zeros_like(g, dy[0], NULL);
    for (int k = 1; k <= 2; k++) {
        pst_node_builder *b = pst_nb_new(g, "SelectV2", NULL);
        pst_nb_input(b, n->inputs[0]);
        pst_nb_input(b, k == 1 ? dy[0] : z);
        pst_nb_input(b, k == 1 ? z : dy[0]);
        pst_nb_attr_type(b, "T", pst_output_dtype(dy[0]));
        dx[k] = pst_reduce_to_shape_of(g, pst_nb_finish_out(b), n->inputs[k], NULL);
    }
    return 0;
}

static int broadcast_to_shape(pst_node *n, pst_status *st) {
    pst_shape s = const_shape_input(n, 1), x = pst_node_in_shape(n, 0), r;
    if (s.rank >= 0 && pst_shape_broadcast(&x, &s, &r, st) < 0) return st->code;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), s);
    return 0;
}

static int broadcast_to_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *sh = c->inputs[1];
    if (sh->n > PST_MAX_RANK) return pst_kctx_error(c, PST_E_INVALID, "shape has too many dims");
    pst_shape in[2] = {x->shape, {.rank = (int)sh->n}}, os;
    for (int d = 0; d < in[1].rank; d++) in[1].dims[d] = pst_tensor_get_i64(sh, d);
    if (bcast_shapes(c, 2, in, &os) < 0) return c->status->code;
    if (!pst_shape_equal(&os, &in[1]))
        return pst_kctx_error(c, PST_E_INVALID, "input does not broadcast to the shape");
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, os);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < o->n; i++)
        if (pst_tensor_copy_elems(o, i, x, bcast_src(&os, &x->shape, i), 1, c->status) < 0)
            return c->status->code;
    return 0;
}

static int broadcast_to_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    dx[0] = pst_reduce_to_shape_of(g, dy[0], n->inputs[0], NULL);
    return 0;
}

/* ---- IsNan, IsInf, IsFinite ------------------------------------------------------------ */
static int is_shape(pst_node *n, pst_status *st) {
    if (!pst_dtype_is_float(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "%s takes floats", n->op->name);
    pst_node_set_output(n, 0, PST_BOOL, pst_node_in_shape(n, 0));
    return 0;
}

static int is_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_BOOL, x->shape);
    if (o == NULL) return c->status->code;
    char k = c->op->name[2]; /* IsNan, IsInf, IsFinite */
    for (int64_t i = 0; i < x->n; i++) {
        double v = pst_tensor_get_f64(x, i);
        pst_tensor_u8(o)[i] = k == 'N' ? isnan(v) : k == 'I' ? isinf(v) : isfinite(v);
    }
    return 0;
}

/* ---- TopKV2(x, k): the k largest along the last dim (ties: lower index first) ---------- */
typedef struct kv {
    double v;
    int64_t i;
} kv;

static int cmp_kv(const void *a, const void *b) {
    const kv *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int topk_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape s = pst_node_in_shape(n, 0);
    const pst_tensor *k = pst_node_in_const(n, 1);
    if (s.rank >= 1) s.dims[s.rank - 1] = k ? pst_tensor_get_i64(k, 0) : -1;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), s);
    pst_node_set_output(n, 1, PST_INT32, s);
    return 0;
}

static int topk_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int64_t k = pst_tensor_get_i64(c->inputs[1], 0);
    if (x->shape.rank < 1 || k < 0 || k > x->shape.dims[x->shape.rank - 1])
        return pst_kctx_error(c, PST_E_INVALID, "k = %lld for a last dim of %lld", (long long)k,
                              (long long)(x->shape.rank ? x->shape.dims[x->shape.rank - 1] : 0));
    int64_t len = x->shape.dims[x->shape.rank - 1], rows = len ? x->n / len : 0;
    pst_shape s = x->shape;
    s.dims[s.rank - 1] = k;
    pst_tensor *v = pst_kctx_alloc_output(c, 0, x->dtype, s), *ix = v ? pst_kctx_alloc_output(c, 1, PST_INT32, s) : NULL;
    if (ix == NULL) return c->status->code;
    kv *buf = malloc((size_t)(len + 1) * sizeof *buf);
    PST_ASSERT(buf != NULL);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < len; j++) buf[j] = (kv){pst_tensor_get_f64(x, r * len + j), j};
        qsort(buf, (size_t)len, sizeof *buf, cmp_kv);
        for (int64_t j = 0; j < k; j++) {
            pst_tensor_set_f64(v, r * k + j, buf[j].v);
            pst_tensor_i32(ix)[r * k + j] = (int32_t)buf[j].i;
        }
    }
    free(buf);
    return 0;
}

/* ---- ResizeNearestNeighbor / ResizeBilinear (NHWC) and their gradients -----------------
 * TF 1.x's coordinate rules: scale = in/out, or (in-1)/(out-1) with align_corners; nearest
 * takes floor(x scale) (round with align_corners; floor((x + 0.5) scale) with
 * half_pixel_centers), clamped; bilinear interpolates at x scale (or (x + 0.5) scale - 0.5)
 * between floor and ceil, clamped. */
static double rs_scale(int64_t in, int64_t out, int align) {
    return align && out > 1 ? (double)(in - 1) / (double)(out - 1) : (double)in / (double)out;
}

static int64_t nearest(int64_t x, double scale, int64_t in, int align, int half) {
    double f = half ? (x + 0.5) * scale : x * scale;
    int64_t i = align && !half ? (int64_t)roundf((float)f) : (int64_t)floorf((float)f);
    if (i > in - 1) i = in - 1;
    return i < 0 ? 0 : i;
}

static void bilinear(int64_t x, double scale, int64_t in, int half, int64_t *lo, int64_t *hi, double *w) {
    double f = half ? (x + 0.5) * scale - 0.5 : x * scale, fl = floor(f);
    *lo = fl < 0 ? 0 : (int64_t)fl;
    *hi = (int64_t)ceil(f) < in - 1 ? (int64_t)ceil(f) : in - 1;
    if (*hi < 0) *hi = 0;
    *w = f - fl;
}

/* Forward (grad = 0): out[N, OH, OW, C] from img[N, H, W, C]; backward (grad = 1): img gets the
 * sum of out's contributions (img zeroed by the caller). */
static void resize(int bilin, int grad, const pst_tensor *img, pst_tensor *out, int align, int half) {
    int64_t N = img->shape.dims[0], H = img->shape.dims[1], W = img->shape.dims[2], C = img->shape.dims[3];
    int64_t OH = out->shape.dims[1], OW = out->shape.dims[2];
    double sy = rs_scale(H, OH, align), sx = rs_scale(W, OW, align);
    pst_tensor *dst = grad ? (pst_tensor *)img : out;
    const pst_tensor *src = grad ? out : img;
    for (int64_t b = 0; b < N; b++)
        for (int64_t y = 0; y < OH; y++)
            for (int64_t x = 0; x < OW; x++)
                for (int64_t ch = 0; ch < C; ch++) {
                    int64_t o = ((b * OH + y) * OW + x) * C + ch;
#define AT(yy, xx) (((b * H + (yy)) * W + (xx)) * C + ch)
                    if (!bilin) {
                        int64_t i = AT(nearest(y, sy, H, align, half), nearest(x, sx, W, align, half));
                        if (grad) pst_tensor_set_f64(dst, i, pst_tensor_get_f64(dst, i) + pst_tensor_get_f64(src, o));
                        else pst_tensor_set_f64(dst, o, pst_tensor_get_f64(src, i));
                        continue;
                    }
                    int64_t y0, y1, x0, x1;
                    double wy, wx;
                    bilinear(y, sy, H, half, &y0, &y1, &wy);
                    bilinear(x, sx, W, half, &x0, &x1, &wx);
                    int64_t at[4] = {AT(y0, x0), AT(y0, x1), AT(y1, x0), AT(y1, x1)};
                    double w[4] = {(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx};
#undef AT
                    if (grad) {
                        double g = pst_tensor_get_f64(src, o);
                        for (int k = 0; k < 4; k++)
                            pst_tensor_set_f64(dst, at[k], pst_tensor_get_f64(dst, at[k]) + g * w[k]);
                    } else {
                        double v = 0;
                        for (int k = 0; k < 4; k++) v += w[k] * pst_tensor_get_f64(src, at[k]);
                        pst_tensor_set_f64(dst, o, v);
                    }
                }
}

static int resize_shape(pst_node *n, pst_status *st) {
    pst_shape x = pst_node_in_shape(n, 0);
    if (x.rank >= 0 && x.rank != 4) return pst_status_set(st, PST_E_INVALID, "images must be 4-D NHWC");
    const pst_tensor *sz = pst_node_in_const(n, 1);
    pst_shape s = pst_shape_4d(x.rank == 4 ? x.dims[0] : -1, sz ? pst_tensor_get_i64(sz, 0) : -1,
                               sz ? pst_tensor_get_i64(sz, 1) : -1, x.rank == 4 ? x.dims[3] : -1);
    int bilin = strstr(n->op->name, "Bilinear") != NULL, is_grad = strstr(n->op->name, "Grad") != NULL;
    if (is_grad && bilin) s = pst_node_in_shape(n, 1);
    pst_node_set_output(n, 0, bilin && !is_grad ? PST_FLOAT : (is_grad && bilin ? pst_node_in_dtype(n, 1) : pst_node_in_dtype(n, 0)), s);
    return 0;
}

static int resize_kernel(pst_kernel_ctx *c) {
    int bilin = strstr(c->op->name, "Bilinear") != NULL, is_grad = strstr(c->op->name, "Grad") != NULL;
    int align = pst_kctx_attr_b(c, "align_corners", 0), half = pst_kctx_attr_b(c, "half_pixel_centers", 0);
    const pst_tensor *x = c->inputs[0], *arg = c->inputs[1];
    if (x->shape.rank != 4) return pst_kctx_error(c, PST_E_INVALID, "images must be 4-D NHWC");
    pst_shape s;
    if (is_grad && bilin) {
        s = arg->shape; /* the original image */
    } else {
        if (arg->n != 2 || pst_tensor_get_i64(arg, 0) <= 0 || pst_tensor_get_i64(arg, 1) <= 0)
            return pst_kctx_error(c, PST_E_INVALID, "size must hold 2 positive dims");
        s = pst_shape_4d(x->shape.dims[0], pst_tensor_get_i64(arg, 0), pst_tensor_get_i64(arg, 1), x->shape.dims[3]);
    }
    if (s.rank != 4 || s.dims[0] != x->shape.dims[0] || s.dims[3] != x->shape.dims[3])
        return pst_kctx_error(c, PST_E_INVALID, "batch and channels must agree");
    if (!is_grad) {
        pst_tensor *o = pst_kctx_alloc_output(c, 0, c->out_dtypes[0], s);
        if (o == NULL) return c->status->code;
        if (x->shape.dims[1] > 0 && x->shape.dims[2] > 0) resize(bilin, 0, x, o, align, half);
        return 0;
    }
    pst_tensor *o = pst_tensor_new_zeros(c->out_dtypes[0], s, c->status);
    if (o == NULL) return c->status->code;
    if (s.dims[1] > 0 && s.dims[2] > 0) resize(bilin, 1, o, (pst_tensor *)x, align, half);
    pst_kctx_set_output(c, 0, o);
    return 0;
}

static int resize_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int bilin = strstr(n->op->name, "Bilinear") != NULL;
    pst_node_builder *b = pst_nb_new(g, bilin ? "ResizeBilinearGrad" : "ResizeNearestNeighborGrad", NULL);
    pst_nb_input(b, dy[0]);
    if (bilin) {
        pst_nb_input(b, n->inputs[0]);
    } else {
        int64_t begin = 1, size = 2;
        pst_nb_input(b, pst_slice(g, pst_shape_of(g, n->inputs[0], PST_INT32, NULL), 1, &begin, &size, NULL));
    }
    pst_nb_attr_type(b, "T", pst_output_dtype(bilin ? n->inputs[0] : dy[0]));
    pst_nb_attr_b(b, "align_corners", pst_node_attr_b(n, "align_corners", 0));
    pst_nb_attr_b(b, "half_pixel_centers", pst_node_attr_b(n, "half_pixel_centers", 0));
    dx[0] = pst_nb_finish_out(b);
    return 0;
}


/* ---- Snapshot, IdentityN --------------------------------------------------------------- */
static int identity_n_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_num_outputs(n, n->n_inputs);
    for (int i = 0; i < n->n_inputs; i++)
        pst_node_set_output(n, i, pst_node_in_dtype(n, i), pst_node_in_shape(n, i));
    return 0;
}

static int identity_n_kernel(pst_kernel_ctx *c) {
    for (int i = 0; i < c->n_inputs; i++) pst_kctx_set_output(c, i, pst_tensor_ref(c->inputs[i]));
    return 0;
}

static int identity_n_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    (void)g;
    for (int i = 0; i < n->n_inputs; i++) dx[i] = dy[i];
    return 0;
}

/* ---- TileGrad(dy, multiples) (TF 0.x graphs): the tiles of dy summed -------------------- */
static int tile_grad_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape s = pst_node_in_shape(n, 0);
    const pst_tensor *m = pst_node_in_const(n, 1);
    for (int d = 0; d < s.rank; d++)
        s.dims[d] = m && m->n == s.rank && s.dims[d] >= 0 && pst_tensor_get_i64(m, d) > 0
                        ? s.dims[d] / pst_tensor_get_i64(m, d) : -1;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), s);
    return 0;
}

static int tile_grad_kernel(pst_kernel_ctx *c) {
    const pst_tensor *dy = c->inputs[0], *m = c->inputs[1];
    if (m->n != dy->shape.rank) return pst_kctx_error(c, PST_E_INVALID, "multiples has %lld entries for rank %d", (long long)m->n, dy->shape.rank);
    pst_shape xs = dy->shape;
    for (int d = 0; d < xs.rank; d++) {
        int64_t k = pst_tensor_get_i64(m, d);
        if (k <= 0 || xs.dims[d] % k) return pst_kctx_error(c, PST_E_INVALID, "dim %d of %lld is not a multiple of %lld", d, (long long)xs.dims[d], (long long)k);
        xs.dims[d] /= k;
    }
    pst_tensor *o = pst_tensor_new_zeros(dy->dtype, xs, c->status);
    if (o == NULL) return c->status->code;
    int64_t idx[PST_MAX_RANK];
    for (int64_t i = 0; i < dy->n; i++) {
        unravel(&dy->shape, i, idx);
        int64_t at = 0;
        for (int d = 0; d < xs.rank; d++) at = at * xs.dims[d] + idx[d] % xs.dims[d];
        pst_tensor_set_f64(o, at, pst_tensor_get_f64(o, at) + pst_tensor_get_f64(dy, i));
    }
    pst_kctx_set_output(c, 0, o);
    return 0;
}

/* ---- PadV2(x, paddings, constant), MirrorPad(x, paddings), MirrorPadGrad(dy, paddings) --
 * MirrorPad mode REFLECT mirrors around the edge element, SYMMETRIC repeats it. */
enum { PAD_CONST, PAD_REFLECT, PAD_SYMMETRIC };

static int pad_mode(const char *op, const char *mode) {
    if (strcmp(op, "PadV2") == 0) return PAD_CONST;
    return strcmp(mode, "SYMMETRIC") == 0 ? PAD_SYMMETRIC : PAD_REFLECT;
}

/* Source coordinate of padded coordinate o (before elements of padding, n inside); -1: the
 * constant. */
static int64_t pad_src(int mode, int64_t o, int64_t before, int64_t n) {
    int64_t i = o - before;
    if (i >= 0 && i < n) return i;
    if (mode == PAD_CONST) return -1;
    if (i < 0) return mode == PAD_REFLECT ? -i : -i - 1;
    return mode == PAD_REFLECT ? 2 * n - 2 - i : 2 * n - 1 - i;
}

static int pad_like_shape(pst_node *n, pst_status *st) {
    pst_shape s = pst_node_in_shape(n, 0);
    const pst_tensor *p = pst_node_in_const(n, 1);
    int sign = strstr(n->op->name, "Grad") ? -1 : 1;
    if (p && s.rank >= 0 && p->n != 2 * s.rank)
        return pst_status_set(st, PST_E_INVALID, "paddings must be [%d, 2]", s.rank);
    for (int d = 0; d < s.rank; d++)
        s.dims[d] = p && s.dims[d] >= 0 ? s.dims[d] + sign * (pst_tensor_get_i64(p, 2 * d) + pst_tensor_get_i64(p, 2 * d + 1)) : -1;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), s);
    return 0;
}

static int pad_like_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *p = c->inputs[1];
    int mode = pad_mode(c->op->name, pst_kctx_attr_s(c, "mode", "REFLECT"));
    int grad = strstr(c->op->name, "Grad") != NULL, r = x->shape.rank;
    if (p->n != 2 * r) return pst_kctx_error(c, PST_E_INVALID, "paddings must be [%d, 2]", r);
    pst_shape small = x->shape, big = x->shape;
    for (int d = 0; d < r; d++) {
        int64_t a = pst_tensor_get_i64(p, 2 * d), b = pst_tensor_get_i64(p, 2 * d + 1);
        if (grad) small.dims[d] -= a + b;
        else big.dims[d] += a + b;
        int64_t n = small.dims[d], lim = mode == PAD_REFLECT ? n - 1 : n;
        if (a < 0 || b < 0 || n < 0 || (mode != PAD_CONST && (a > lim || b > lim)))
            return pst_kctx_error(c, PST_E_INVALID, "paddings (%lld, %lld) do not fit dim %d of %lld",
                                  (long long)a, (long long)b, d, (long long)n);
    }
    pst_tensor *o = grad ? pst_tensor_new_zeros(x->dtype, small, c->status)
                         : pst_kctx_alloc_output(c, 0, x->dtype, big);
    if (o == NULL) return c->status->code;
    const pst_tensor *cv = mode == PAD_CONST ? c->inputs[2] : NULL;
    int64_t idx[PST_MAX_RANK];
    for (int64_t i = 0; i < (grad ? x->n : o->n); i++) {
        unravel(&big, i, idx);
        int64_t at = 0;
        for (int d = 0; d < r && at >= 0; d++) {
            int64_t sd = pad_src(mode, idx[d], pst_tensor_get_i64(p, 2 * d), small.dims[d]);
            at = sd < 0 ? -1 : at * small.dims[d] + sd;
        }
        int rc = 0;
        if (grad && at >= 0) pst_tensor_set_f64(o, at, pst_tensor_get_f64(o, at) + pst_tensor_get_f64(x, i));
        else if (!grad) rc = pst_tensor_copy_elems(o, i, at < 0 ? cv : x, at < 0 ? 0 : at, 1, c->status);
        if (rc < 0) return rc;
    }
    if (grad) pst_kctx_set_output(c, 0, o);
    return 0;
}

/* MirrorPad: MirrorPadGrad (the mirrored-in elements add back); PadV2: the inside, a Slice at
 * the leading paddings (constant paddings only, as for Pad). */
static int pad_like_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node_builder *b;
    if (strcmp(n->op->name, "PadV2") == 0) {
        const pst_tensor *p = pst_node_in_const(n, 1);
        if (p == NULL || p->n > 2 * PST_MAX_RANK)
            return pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "gradient of '%s' needs constant "
                                       "paddings", n->name);
        int32_t begin[PST_MAX_RANK];
        for (int64_t d = 0; d < p->n / 2; d++) begin[d] = (int32_t)pst_tensor_get_i64(p, 2 * d);
        b = pst_nb_new(g, "Slice", NULL);
        pst_nb_input(b, dy[0]);
        pst_nb_input(b, pst_const_i32_vec(g, (int)(p->n / 2), begin, NULL));
        pst_nb_input(b, pst_shape_of(g, n->inputs[0], PST_INT32, NULL));
        pst_nb_attr_type(b, "Index", PST_INT32);
    } else {
        b = pst_nb_new(g, "MirrorPadGrad", NULL);
        pst_nb_input(b, dy[0]);
        pst_nb_input(b, n->inputs[1]);
        pst_nb_attr_s(b, "mode", pst_node_attr_s(n, "mode", "REFLECT"));
    }
    pst_nb_attr_type(b, "T", pst_output_dtype(dy[0]));
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

/* ---- SparseToDense(indices, output_shape, values, default_value) ----------------------- */
static int s2d_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 2), const_shape_input(n, 1));
    return 0;
}

static int s2d_kernel(pst_kernel_ctx *c) {
    const pst_tensor *idx = c->inputs[0], *sh = c->inputs[1], *v = c->inputs[2], *dv = c->inputs[3];
    if (sh->n > PST_MAX_RANK || dv->n != 1) return pst_kctx_error(c, PST_E_INVALID, "bad output_shape or default_value");
    pst_shape s = {.rank = (int)sh->n};
    for (int d = 0; d < s.rank; d++) s.dims[d] = pst_tensor_get_i64(sh, d);
    int64_t R = idx->shape.rank == 2 ? idx->shape.dims[1] : 1, N = idx->shape.rank == 0 ? 1 : idx->shape.dims[0];
    if (R != s.rank || (v->n != N && v->n != 1))
        return pst_kctx_error(c, PST_E_INVALID, "%lld indices of rank %lld and %lld values for a "
                              "rank-%d shape", (long long)N, (long long)R, (long long)v->n, s.rank);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, v->dtype, s);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < o->n; i++)
        if (pst_tensor_copy_elems(o, i, dv, 0, 1, c->status) < 0) return c->status->code;
    for (int64_t k = 0; k < N; k++) {
        int64_t at = 0;
        for (int64_t d = 0; d < R; d++) {
            int64_t x = pst_tensor_get_i64(idx, k * R + d);
            if (x < 0 || x >= s.dims[d])
                return pst_kctx_error(c, PST_E_INVALID, "index %lld of entry %lld is outside dim %lld",
                                      (long long)x, (long long)k, (long long)d);
            at = at * s.dims[d] + x;
        }
        if (pst_tensor_copy_elems(o, at, v, v->n == 1 ? 0 : k, 1, c->status) < 0) return c->status->code;
    }
    return 0;
}


/* ---- EnsureShape, Empty, AccumulateNV2, BroadcastArgs, MatrixBandPart ------------------ */
static int ensure_shape_shape(pst_node *n, pst_status *st) {
    const pst_attr *a = pst_node_attr(n, "shape");
    pst_shape in = pst_node_in_shape(n, 0), want = a && a->kind == PST_ATTR_SHAPE ? a->v.shape : in;
    if (!pst_shape_compatible(&in, &want)) {
        char x[128], y[128];
        return pst_status_set(st, PST_E_INVALID, "shape %s is not %s", pst_shape_str(&in, x, sizeof x),
                              pst_shape_str(&want, y, sizeof y));
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), want.rank >= 0 ? want : in);
    return 0;
}

static int ensure_shape_kernel(pst_kernel_ctx *c) {
    const pst_attr *a = pst_kctx_attr(c, "shape");
    if (a && a->kind == PST_ATTR_SHAPE && !pst_shape_compatible(&c->inputs[0]->shape, &a->v.shape)) {
        char x[128], y[128];
        return pst_kctx_error(c, PST_E_INVALID, "shape of tensor %s is not compatible with expected "
                              "shape %s", pst_shape_str(&c->inputs[0]->shape, x, sizeof x),
                              pst_shape_str(&a->v.shape, y, sizeof y));
    }
    return identity_n_kernel(c);
}

static int empty_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, pst_node_attr_type(n, "dtype", PST_FLOAT), const_shape_input(n, 0));
    return 0;
}

static int empty_kernel(pst_kernel_ctx *c) {
    const pst_tensor *sh = c->inputs[0];
    if (sh->n > PST_MAX_RANK) return pst_kctx_error(c, PST_E_INVALID, "shape has too many dims");
    pst_shape s = {.rank = (int)sh->n};
    for (int d = 0; d < s.rank; d++) s.dims[d] = pst_tensor_get_i64(sh, d);
    pst_tensor *o = pst_tensor_new_zeros(c->out_dtypes[0], s, c->status);
    if (o == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, o);
    return 0;
}

static int accumulate_kernel(pst_kernel_ctx *c) {
    const pst_tensor *a = c->inputs[0];
    for (int i = 1; i < c->n_inputs; i++)
        if (!pst_shape_equal(&c->inputs[i]->shape, &a->shape) || c->inputs[i]->dtype != a->dtype)
            return pst_kctx_error(c, PST_E_INVALID, "input %d differs from input 0 in shape or dtype", i);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, a->dtype, a->shape);
    if (o == NULL) return c->status->code;
    for (int64_t k = 0; k < a->n; k++) {
        double sum = 0;
        for (int i = 0; i < c->n_inputs; i++) sum += pst_tensor_get_f64(c->inputs[i], k);
        pst_tensor_set_f64(o, k, sum);
    }
    return 0;
}

static int accumulate_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    (void)g;
    for (int i = 0; i < n->n_inputs; i++) dx[i] = dy[0];
    return 0;
}

static int bargs_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_shape_1d(-1));
    return 0;
}

static int bargs_kernel(pst_kernel_ctx *c) {
    const pst_tensor *a = c->inputs[0], *b = c->inputs[1];
    if (a->n > PST_MAX_RANK || b->n > PST_MAX_RANK) return pst_kctx_error(c, PST_E_INVALID, "too many dims");
    pst_shape sa = {.rank = (int)a->n}, sb = {.rank = (int)b->n}, r;
    for (int d = 0; d < sa.rank; d++) sa.dims[d] = pst_tensor_get_i64(a, d);
    for (int d = 0; d < sb.rank; d++) sb.dims[d] = pst_tensor_get_i64(b, d);
    if (pst_shape_broadcast(&sa, &sb, &r, c->status) < 0) return c->status->code;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, a->dtype, pst_shape_1d(r.rank));
    if (o == NULL) return c->status->code;
    for (int d = 0; d < r.rank; d++) pst_tensor_set_f64(o, d, (double)r.dims[d]);
    return 0;
}

/* MatrixBandPart(x, num_lower, num_upper): keeps x[..., i, j] where (num_lower < 0 or
 * i - j <= num_lower) and (num_upper < 0 or j - i <= num_upper); the rest 0. */
static int band_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    if (x->shape.rank < 2) return pst_kctx_error(c, PST_E_INVALID, "input must have rank >= 2");
    int64_t lo = pst_tensor_get_i64(c->inputs[1], 0), up = pst_tensor_get_i64(c->inputs[2], 0);
    int64_t R = x->shape.dims[x->shape.rank - 2], C = x->shape.dims[x->shape.rank - 1];
    pst_tensor *o = pst_tensor_new_zeros(x->dtype, x->shape, c->status);
    if (o == NULL) return c->status->code;
    for (int64_t k = 0; k < x->n; k++) {
        int64_t j = k % C, i = (k / C) % (R ? R : 1);
        if ((lo < 0 || i - j <= lo) && (up < 0 || j - i <= up)) pst_tensor_set_f64(o, k, pst_tensor_get_f64(x, k));
    }
    pst_kctx_set_output(c, 0, o);
    return 0;
}

static int band_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node_builder *b = op_on_dy(g, "MatrixBandPart", n, dy[0]);
    pst_nb_input(b, n->inputs[2]);
    dx[0] = pst_nb_finish_out(b);
    return 0;
}


/* ---- SpaceToBatchND(x, block, paddings) and BatchToSpaceND(x, block, crops) -------------
 * (dilated convolutions: tf.nn.convolution with dilation_rate). Batch entry o*B + b of the
 * batched tensor (o the row-major position in the block) at spatial (y1..yM) is the padded
 * space tensor's entry b at (y1*k1 + o1, ...). Each op's gradient is the other one. */
static int s2b_geometry(pst_kernel_ctx *c, const pst_tensor *blk, const pst_tensor *pads,
                        const pst_shape *space, int64_t *k, int64_t *before, pst_shape *batched) {
    int64_t M = blk->n;
    if (M < 1 || space->rank < M + 1 || pads->n != 2 * M)
        return pst_kctx_error(c, PST_E_INVALID, "block_shape of %lld dims and paddings/crops of "
                              "%lld values for rank %d", (long long)M, (long long)pads->n, space->rank);
    *batched = *space;
    int64_t prod = 1;
    for (int64_t i = 0; i < M; i++) {
        k[i] = pst_tensor_get_i64(blk, i);
        before[i] = pst_tensor_get_i64(pads, 2 * i);
        int64_t padded = space->dims[i + 1] + before[i] + pst_tensor_get_i64(pads, 2 * i + 1);
        if (k[i] < 1 || padded % k[i] || before[i] < 0)
            return pst_kctx_error(c, PST_E_INVALID, "spatial dim %lld (%lld padded) is not a "
                                  "multiple of block %lld", (long long)i, (long long)padded, (long long)k[i]);
        batched->dims[i + 1] = padded / k[i];
        prod *= k[i];
    }
    batched->dims[0] = space->dims[0] * prod;
    return 0;
}

static int s2b_kernel(pst_kernel_ctx *c) {
    int to_batch = strncmp(c->op->name, "SpaceToBatch", 12) == 0;
    const pst_tensor *x = c->inputs[0], *blk = c->inputs[1], *pads = c->inputs[2];
    int64_t k[PST_MAX_RANK], before[PST_MAX_RANK], M = blk->n;
    pst_shape space = x->shape, batched;
    if (M < 1 || M >= PST_MAX_RANK) return pst_kctx_error(c, PST_E_INVALID, "bad block_shape");
    if (!to_batch) { /* the space shape from the batched input and the crops */
        int64_t prod = 1;
        for (int64_t i = 0; i < M; i++) {
            prod *= pst_tensor_get_i64(blk, i);
            space.dims[i + 1] = x->shape.dims[i + 1] * pst_tensor_get_i64(blk, i) -
                                pst_tensor_get_i64(pads, 2 * i) - pst_tensor_get_i64(pads, 2 * i + 1);
        }
        if (prod < 1 || x->shape.dims[0] % prod) return pst_kctx_error(c, PST_E_INVALID, "batch is not a multiple of the block");
        space.dims[0] = x->shape.dims[0] / prod;
    }
    if (s2b_geometry(c, blk, pads, &space, k, before, &batched) < 0) return c->status->code;
    pst_tensor *o = pst_tensor_new_zeros(x->dtype, to_batch ? batched : space, c->status);
    if (o == NULL) return c->status->code;
    int64_t idx[PST_MAX_RANK], B = space.dims[0];
    for (int64_t i = 0; i < (to_batch ? o->n : x->n); i++) {
        unravel(&batched, i, idx);
        int64_t off = B ? idx[0] / B : 0, at = idx[0] % (B ? B : 1);
        int inside = 1;
        for (int64_t d = M - 1, rest = off; d >= 0; d--) { /* the block position, row-major */
            idx[d + 1] = idx[d + 1] * k[d] + rest % k[d] - before[d];
            rest /= k[d];
            inside &= idx[d + 1] >= 0 && idx[d + 1] < space.dims[d + 1];
        }
        if (!inside) continue;
        for (int d = 1; d < space.rank; d++) at = at * space.dims[d] + idx[d];
        int rc = to_batch ? pst_tensor_copy_elems(o, i, x, at, 1, c->status)
                          : pst_tensor_copy_elems(o, at, x, i, 1, c->status);
        if (rc < 0) {
            pst_tensor_unref(o);
            return rc;
        }
    }
    pst_kctx_set_output(c, 0, o);
    return 0;
}

static int s2b_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape s = pst_node_in_shape(n, 0);
    const pst_tensor *blk = pst_node_in_const(n, 1), *pads = pst_node_in_const(n, 2);
    int to_batch = strncmp(n->op->name, "SpaceToBatch", 12) == 0;
    if (s.rank >= 0 && blk && pads && blk->n < s.rank && pads->n == 2 * blk->n) {
        int64_t prod = 1;
        for (int64_t i = 0; i < blk->n; i++) {
            int64_t kk = pst_tensor_get_i64(blk, i), pb = pst_tensor_get_i64(pads, 2 * i) + pst_tensor_get_i64(pads, 2 * i + 1);
            prod *= kk;
            if (s.dims[i + 1] >= 0 && kk > 0) s.dims[i + 1] = to_batch ? (s.dims[i + 1] + pb) / kk : s.dims[i + 1] * kk - pb;
        }
        if (s.dims[0] >= 0 && prod > 0) s.dims[0] = to_batch ? s.dims[0] * prod : s.dims[0] / prod;
    } else if (s.rank >= 0) {
        for (int d = 0; d < s.rank; d++) s.dims[d] = -1;
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), s);
    return 0;
}

/* TF 0.x's SpaceToBatch(input, paddings) and BatchToSpace(input, crops): 4-D NHWC with one
 * block_size attr for both spatial dims, the ND ops with block_shape [block_size, block_size]. */
static int s2b_v1_kernel(pst_kernel_ctx *c) {
    int64_t bs = pst_kctx_attr_i(c, "block_size", 0);
    if (bs < 2) return pst_kctx_error(c, PST_E_INVALID, "block_size must be greater than 1, got %lld", (long long)bs);
    if (c->inputs[0]->shape.rank != 4 || c->inputs[1]->n != 4)
        return pst_kctx_error(c, PST_E_INVALID, "input must be 4-D and paddings/crops 2x2");
    pst_tensor *blk = pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){bs, bs});
    if (blk == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    pst_tensor *in[3] = {c->inputs[0], blk, c->inputs[1]};
    pst_kernel_ctx nd = *c;
    nd.inputs = in;
    nd.n_inputs = 3;
    int rc = s2b_kernel(&nd);
    pst_tensor_unref(blk);
    return rc;
}

static int s2b_v1_shape(pst_node *n, pst_status *st) {
    pst_shape s = pst_node_in_shape(n, 0);
    int64_t bs = pst_node_attr_i(n, "block_size", 0);
    const pst_tensor *pads = pst_node_in_const(n, 1);
    int to_batch = strcmp(n->op->name, "SpaceToBatch") == 0;
    char sx[128];
    if (bs < 2) return pst_status_set(st, PST_E_INVALID, "block_size must be greater than 1");
    if (s.rank >= 0 && s.rank != 4)
        return pst_status_set(st, PST_E_INVALID, "input must be 4-D, got %s", pst_shape_str(&s, sx, sizeof sx));
    if (s.rank < 0) s = pst_shape_4d(-1, -1, -1, -1);
    for (int d = 1; d < 3; d++) {
        int64_t pb = pads && pads->n == 4 ? pst_tensor_get_i64(pads, 2 * (d - 1)) + pst_tensor_get_i64(pads, 2 * d - 1) : -1;
        s.dims[d] = pb < 0 || s.dims[d] < 0 ? -1 : to_batch ? (s.dims[d] + pb) / bs : s.dims[d] * bs - pb;
    }
    if (s.dims[0] >= 0) s.dims[0] = to_batch ? s.dims[0] * bs * bs : s.dims[0] / (bs * bs);
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), s);
    return 0;
}

static int s2b_v1_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int to_batch = strcmp(n->op->name, "SpaceToBatch") == 0;
    pst_node_builder *b = op_on_dy(g, to_batch ? "BatchToSpace" : "SpaceToBatch", n, dy[0]);
    pst_nb_attr_i(b, "block_size", pst_node_attr_i(n, "block_size", 2));
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

static int s2b_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int to_batch = strncmp(n->op->name, "SpaceToBatch", 12) == 0;
    pst_node_builder *b = op_on_dy(g, to_batch ? "BatchToSpaceND" : "SpaceToBatchND", n, dy[0]);
    pst_nb_input(b, n->inputs[2]);
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

/* ---- ClipByValue(t, lo, hi): the gradient goes to t where it lies within [lo, hi] ------- */
static int clip_kernel(pst_kernel_ctx *c) {
    const pst_tensor *t = c->inputs[0], *lo = c->inputs[1], *hi = c->inputs[2];
    if ((lo->n != 1 && lo->n != t->n) || (hi->n != 1 && hi->n != t->n))
        return pst_kctx_error(c, PST_E_INVALID, "clip bounds must be scalars or shaped like t");
    pst_tensor *o = pst_kctx_alloc_output(c, 0, t->dtype, t->shape);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < t->n; i++) {
        double v = pst_tensor_get_f64(t, i), a = pst_tensor_get_f64(lo, lo->n == 1 ? 0 : i),
               b = pst_tensor_get_f64(hi, hi->n == 1 ? 0 : i);
        pst_tensor_set_f64(o, i, v < a ? a : v > b ? b : v);
    }
    return 0;
}

static int clip_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output t = n->inputs[0], inside = pst_logical_and(g, pst_greater_equal(g, t, n->inputs[1], NULL),
                                                          pst_less_equal(g, t, n->inputs[2], NULL), NULL);
    dx[0] = pst_select(g, inside, dy[0], pst_zeros_like(g, dy[0], NULL), NULL);
    return 0;
}

/* ---- LinSpace(start, stop, num), TopK (TF 0.x: k an attr), Timestamp, DebugGradientIdentity */
static int linspace_shape(pst_node *n, pst_status *st) {
    (void)st;
    const pst_tensor *k = pst_node_in_const(n, 2);
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_shape_1d(k ? pst_tensor_get_i64(k, 0) : -1));
    return 0;
}

static int linspace_kernel(pst_kernel_ctx *c) {
    double a = pst_tensor_get_f64(c->inputs[0], 0), b = pst_tensor_get_f64(c->inputs[1], 0);
    int64_t k = pst_tensor_get_i64(c->inputs[2], 0);
    if (k < 1) return pst_kctx_error(c, PST_E_INVALID, "num must be positive, got %lld", (long long)k);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->inputs[0]->dtype, pst_shape_1d(k));
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < k; i++) pst_tensor_set_f64(o, i, k == 1 ? a : a + (b - a) * (double)i / (double)(k - 1));
    return 0;
}

static int topk_v1_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape s = pst_node_in_shape(n, 0);
    if (s.rank >= 1) s.dims[s.rank - 1] = pst_node_attr_i(n, "k", -1);
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), s);
    pst_node_set_output(n, 1, PST_INT32, s);
    return 0;
}

static int topk_v1_kernel(pst_kernel_ctx *c) {
    pst_tensor *k = pst_tensor_scalar_i64(pst_kctx_attr_i(c, "k", 1));
    pst_tensor *const ins[2] = {c->inputs[0], k};
    pst_kernel_ctx v2 = *c;
    v2.n_inputs = 2;
    v2.inputs = ins;
    int rc = topk_kernel(&v2);
    pst_tensor_unref(k);
    return rc;
}

static int timestamp_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_DOUBLE, pst_shape_scalar());
    return 0;
}

static int timestamp_kernel(pst_kernel_ctx *c) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pst_kctx_set_output(c, 0, pst_tensor_scalar_f64((double)ts.tv_sec + ts.tv_nsec * 1e-9));
    return 0;
}


/* ---- DynamicPartition(data, partitions): output k holds the rows of data whose partition
 * is k, in order (embedding lookups on partitioned variables, masked losses). The gradient
 * stitches the output gradients back by the rows' positions, as TF's does. */
static int dpart_shape(pst_node *n, pst_status *st) {
    int k = (int)pst_node_attr_i(n, "num_partitions", 1);
    if (k < 1) return pst_status_set(st, PST_E_INVALID, "num_partitions must be >= 1");
    pst_node_set_num_outputs(n, k);
    pst_shape d = pst_node_in_shape(n, 0), p = pst_node_in_shape(n, 1), s = pst_shape_unknown();
    if (d.rank >= 0 && p.rank >= 0 && d.rank >= p.rank) {
        s.rank = d.rank - p.rank + 1;
        s.dims[0] = -1;
        for (int i = p.rank; i < d.rank; i++) s.dims[i - p.rank + 1] = d.dims[i];
    }
    for (int i = 0; i < k; i++) pst_node_set_output(n, i, pst_node_in_dtype(n, 0), s);
    return 0;
}

static int dpart_kernel(pst_kernel_ctx *c) {
    const pst_tensor *d = c->inputs[0], *p = c->inputs[1];
    int r = p->shape.rank, K = c->n_outputs;
    for (int i = 0; i < r; i++)
        if (i >= d->shape.rank || d->shape.dims[i] != p->shape.dims[i])
            return pst_kctx_error(c, PST_E_INVALID, "partitions' shape is not a prefix of data's");
    int64_t row = p->n ? d->n / p->n : 0, *count = calloc((size_t)K, sizeof *count);
    PST_ASSERT(count != NULL);
    int rc = 0;
    for (int64_t i = 0; i < p->n && rc == 0; i++) {
        int64_t k = pst_tensor_get_i64(p, i);
        if (k < 0 || k >= K)
            rc = pst_kctx_error(c, PST_E_INVALID, "partitions[%lld] = %lld is not in [0, %d)", (long long)i, (long long)k, K);
        else
            count[k]++;
    }
    for (int k = 0; k < K && rc == 0; k++) {
        pst_shape s = {.rank = d->shape.rank - r + 1};
        s.dims[0] = count[k];
        for (int i = r; i < d->shape.rank; i++) s.dims[i - r + 1] = d->shape.dims[i];
        pst_tensor *o = pst_kctx_alloc_output(c, k, d->dtype, s);
        if (o == NULL) rc = c->status->code;
        count[k] = 0; /* now the fill position */
    }
    for (int64_t i = 0; i < p->n && rc == 0; i++) {
        int64_t k = pst_tensor_get_i64(p, i);
        rc = pst_tensor_copy_elems(c->outputs[k], count[k]++ * row, d, i * row, row, c->status);
    }
    free(count);
    return rc;
}

static int dpart_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int K = n->n_outputs;
    pst_output *parts = calloc((size_t)(2 * K), sizeof *parts);
    PST_ASSERT(parts != NULL);
    /* the position of each row: range(size(partitions)) shaped like partitions */
    pst_node_builder *b = pst_nb_new(g, "Range", NULL);
    pst_nb_input(b, pst_const_i32(g, 0, NULL));
    pst_nb_input(b, pst_size_of(g, n->inputs[1], PST_INT32, NULL));
    pst_nb_input(b, pst_const_i32(g, 1, NULL));
    pst_output pos = pst_reshape_t(g, pst_nb_finish_out(b), pst_shape_of(g, n->inputs[1], PST_INT32, NULL), NULL);
    b = pst_nb_new(g, "DynamicPartition", NULL);
    pst_nb_input(b, pos);
    pst_nb_input(b, n->inputs[1]);
    pst_nb_attr_i(b, "num_partitions", K);
    pst_nb_attr_type(b, "T", PST_INT32);
    pst_node *pp = pst_nb_finish(b);
    for (int k = 0; pp && k < K; k++) {
        parts[k] = pst_out(pp, k);
        parts[K + k] = dy[k].node ? dy[k] : pst_zeros_like(g, pst_out(n, k), NULL);
    }
    b = pst_nb_new(g, "DynamicStitch", NULL);
    pst_nb_inputs(b, 2 * K, parts);
    pst_nb_attr_i(b, "N", K);
    pst_nb_attr_type(b, "T", pst_node_in_dtype(n, 0));
    pst_output flat = pst_nb_finish_out(b);
    dx[0] = pst_reshape_t(g, flat, pst_shape_of(g, n->inputs[0], PST_INT32, NULL), NULL);
    free(parts);
    return pp ? 0 : pst_graph_status(g)->code;
}

static int same_shape(pst_node *n, pst_status *st) { return pst_shape_same_as_input0(n, st); }

static const pst_attr_spec cum_attrs[] = {
    {"T", PST_ATTR_TYPE, 0}, {"Tidx", PST_ATTR_TYPE, 0}, {"exclusive", PST_ATTR_BOOL, 0},
    {"reverse", PST_ATTR_BOOL, 0}, {0}};
static const pst_attr_spec t_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"Tidx", PST_ATTR_TYPE, 0},
                                        {"Tindices", PST_ATTR_TYPE, 0}, {"Tparams", PST_ATTR_TYPE, 0},
                                        {"Tmultiples", PST_ATTR_TYPE, 0},
                                        {"Tlen", PST_ATTR_TYPE, 0}, {"num_split", PST_ATTR_INT, 0},
                                        {"sorted", PST_ATTR_BOOL, 0}, {0}};
static const pst_attr_spec ensure_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"shape", PST_ATTR_SHAPE, 0}, {0}};
static const pst_attr_spec empty_attrs[] = {{"dtype", PST_ATTR_TYPE, 1}, {"init", PST_ATTR_BOOL, 0}, {0}};
static const pst_attr_spec accum_attrs[] = {
    {"T", PST_ATTR_TYPE, 0}, {"N", PST_ATTR_INT, 0}, {"shape", PST_ATTR_SHAPE, 0}, {0}};
static const pst_attr_spec band_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"Tindex", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec s2b_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                          {"Tblock_shape", PST_ATTR_TYPE, 0},
                                          {"Tpaddings", PST_ATTR_TYPE, 0},
                                          {"Tcrops", PST_ATTR_TYPE, 0},
                                          {0}};
static const pst_attr_spec s2b_v1_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                             {"Tpaddings", PST_ATTR_TYPE, 0},
                                             {"Tidx", PST_ATTR_TYPE, 0},
                                             {"block_size", PST_ATTR_INT, 1},
                                             {0}};
static const pst_attr_spec topk_v1_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"k", PST_ATTR_INT, 1}, {"sorted", PST_ATTR_BOOL, 0}, {0}};
static const pst_attr_spec dpart_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"num_partitions", PST_ATTR_INT, 1}, {0}};
static const pst_attr_spec identity_n_attrs[] = {{"T", PST_ATTR_LIST_TYPE, 0}, {0}};
static const pst_attr_spec pad_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                          {"Tpaddings", PST_ATTR_TYPE, 0},
                                          {"mode", PST_ATTR_STRING, 0},
                                          {0}};
static const pst_attr_spec s2d_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                          {"Tindices", PST_ATTR_TYPE, 0},
                                          {"validate_indices", PST_ATTR_BOOL, 0},
                                          {0}};
static const pst_attr_spec resize_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                             {"align_corners", PST_ATTR_BOOL, 0},
                                             {"half_pixel_centers", PST_ATTR_BOOL, 0},
                                             {0}};

#define ND PST_OP_NOT_DIFFERENTIABLE
#define OP2(nm, mn, no, at, sh, k, gr, fl) \
    {.name = nm, .min_inputs = mn, .max_inputs = mn, .n_outputs = no, .attrs = at, .shape = sh, \
     .kernel = k, .grad = gr, .flags = fl}
static const pst_op_def more_ops[] = {
    OP2("Cumsum", 2, 1, cum_attrs, same_shape, cumsum_kernel, cumsum_grad, 0),
    OP2("Cumprod", 2, 1, cum_attrs, same_shape, cumsum_kernel, cumprod_grad, 0),
    OP2("ReverseV2", 2, 1, t_attrs, same_shape, reverse_kernel, reverse_grad, PST_OP_STRINGS),
    OP2("SplitV", 3, -1, t_attrs, splitv_shape, splitv_kernel, splitv_grad, PST_OP_STRINGS),
    OP2("GatherNd", 2, 1, t_attrs, gather_nd_shape, gather_nd_kernel, gather_nd_grad, PST_OP_STRINGS),
    OP2("ScatterNd", 3, 1, t_attrs, scatter_nd_shape, scatter_nd_kernel, scatter_nd_grad, 0),
    OP2("SelectV2", 3, 1, t_attrs, select_v2_shape, select_v2_kernel, select_v2_grad, PST_OP_STRINGS),
    OP2("BroadcastTo", 2, 1, t_attrs, broadcast_to_shape, broadcast_to_kernel, broadcast_to_grad, 0),
    OP2("IsNan", 1, 1, t_attrs, is_shape, is_kernel, NULL, ND),
    OP2("IsInf", 1, 1, t_attrs, is_shape, is_kernel, NULL, ND),
    OP2("IsFinite", 1, 1, t_attrs, is_shape, is_kernel, NULL, ND),
    OP2("TopKV2", 2, 2, t_attrs, topk_shape, topk_kernel, NULL, ND),
    OP2("ResizeNearestNeighbor", 2, 1, resize_attrs, resize_shape, resize_kernel, resize_grad, 0),
    OP2("ResizeNearestNeighborGrad", 2, 1, resize_attrs, resize_shape, resize_kernel, NULL, 0),
    OP2("ResizeBilinear", 2, 1, resize_attrs, resize_shape, resize_kernel, resize_grad, 0),
    OP2("ResizeBilinearGrad", 2, 1, resize_attrs, resize_shape, resize_kernel, NULL, 0),
    OP2("Snapshot", 1, 1, t_attrs, same_shape, identity_n_kernel, identity_n_grad, PST_OP_STRINGS),
    {.name = "IdentityN", .min_inputs = 1, .max_inputs = -1, .n_outputs = -1, .attrs = identity_n_attrs,
     .shape = identity_n_shape, .kernel = identity_n_kernel, .grad = identity_n_grad,
     .flags = PST_OP_STRINGS},
    OP2("TileGrad", 2, 1, t_attrs, tile_grad_shape, tile_grad_kernel, NULL, 0),
    OP2("PadV2", 3, 1, pad_attrs, pad_like_shape, pad_like_kernel, pad_like_grad, PST_OP_STRINGS),
    OP2("MirrorPad", 2, 1, pad_attrs, pad_like_shape, pad_like_kernel, pad_like_grad, PST_OP_STRINGS),
    OP2("MirrorPadGrad", 2, 1, pad_attrs, pad_like_shape, pad_like_kernel, NULL, 0),
    OP2("SparseToDense", 4, 1, s2d_attrs, s2d_shape, s2d_kernel, NULL, ND | PST_OP_STRINGS),
    OP2("EnsureShape", 1, 1, ensure_attrs, ensure_shape_shape, ensure_shape_kernel, identity_n_grad, PST_OP_STRINGS),
    OP2("Empty", 1, 1, empty_attrs, empty_shape, empty_kernel, NULL, ND),
    {.name = "AccumulateNV2", .min_inputs = 1, .max_inputs = -1, .n_outputs = 1, .attrs = accum_attrs,
     .shape = same_shape, .kernel = accumulate_kernel, .grad = accumulate_grad},
    OP2("BroadcastArgs", 2, 1, t_attrs, bargs_shape, bargs_kernel, NULL, ND),
    OP2("MatrixBandPart", 3, 1, band_attrs, same_shape, band_kernel, band_grad, 0),
    OP2("BatchMatrixBandPart", 3, 1, band_attrs, same_shape, band_kernel, band_grad, 0), /* TF 0.x */
    OP2("SpaceToBatchND", 3, 1, s2b_attrs, s2b_shape, s2b_kernel, s2b_grad, 0),
    OP2("SpaceToBatch", 2, 1, s2b_v1_attrs, s2b_v1_shape, s2b_v1_kernel, s2b_v1_grad, 0),
    OP2("BatchToSpace", 2, 1, s2b_v1_attrs, s2b_v1_shape, s2b_v1_kernel, s2b_v1_grad, 0),
    OP2("BatchToSpaceND", 3, 1, s2b_attrs, s2b_shape, s2b_kernel, s2b_grad, 0),
    OP2("ClipByValue", 3, 1, t_attrs, same_shape, clip_kernel, clip_grad, 0),
    OP2("LinSpace", 3, 1, t_attrs, linspace_shape, linspace_kernel, NULL, ND),
    OP2("TopK", 1, 2, topk_v1_attrs, topk_v1_shape, topk_v1_kernel, NULL, ND),
    OP2("Timestamp", 0, 1, NULL, timestamp_shape, timestamp_kernel, NULL, ND | PST_OP_STATEFUL),
    OP2("DebugGradientIdentity", 1, 1, t_attrs, same_shape, identity_n_kernel, identity_n_grad, 0),
    OP2("DynamicPartition", 2, -1, dpart_attrs, dpart_shape, dpart_kernel, dpart_grad, PST_OP_STRINGS),
};

void pst__register_array_more_ops(void) {
    for (size_t i = 0; i < sizeof more_ops / sizeof more_ops[0]; i++) pst_op_register(&more_ops[i]);
}
