/* Shape and data-movement ops (see ops_array.h). */
#include "ops_array.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "kernels_ew.h"
#include "op.h"
#include "ops.h"
#include "varstore.h"

static const pst_attr_spec t_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"Tshape", PST_ATTR_TYPE, 0},
                                        {"Tidx", PST_ATTR_TYPE, 0}, {"Tperm", PST_ATTR_TYPE, 0},
                                        {"Tpaddings", PST_ATTR_TYPE, 0}, {"Tmultiples", PST_ATTR_TYPE, 0},
                                        {"Index", PST_ATTR_TYPE, 0}, {"Tdim", PST_ATTR_TYPE, 0},
                                        {"N", PST_ATTR_INT, 0},
                                        {0}};

static pst_output const_i64_vec(pst_graph *g, int n, const int64_t *v, const char *name) {
    int32_t buf[PST_MAX_RANK * 2] = {0};
    PST_ASSERT(n <= PST_MAX_RANK * 2);
    for (int i = 0; i < n; i++) buf[i] = (int32_t)v[i];
    return pst_const_i32_vec(g, n, buf, name);
}

/* ---- Reshape, Shape, Size ---------------------------------------------------------------- */

/* Resolves a requested shape (with at most one -1) against n elements. */
static int resolve_shape(const pst_tensor *req, int64_t n, int n_known, pst_shape *out,
                         pst_status *st) {
    if (req->n > PST_MAX_RANK)
        return pst_status_set(st, PST_E_INVALID, "shape has %lld dims, at most %d allowed",
                              (long long)req->n, PST_MAX_RANK);
    out->rank = (int)req->n;
    int unknown = -1;
    int64_t prod = 1;
    for (int i = 0; i < out->rank; i++) {
        int64_t d = pst_tensor_get_i64(req, i);
        if (d == -1) {
            if (unknown >= 0)
                return pst_status_set(st, PST_E_INVALID, "shape has more than one -1");
            unknown = i;
            d = 1;
        } else if (d < 0) {
            return pst_status_set(st, PST_E_INVALID, "shape has a negative dim %lld", (long long)d);
        }
        out->dims[i] = d;
        prod *= d;
    }
    if (!n_known) {
        if (unknown >= 0) out->dims[unknown] = -1;
        return 0;
    }
    if (unknown >= 0) {
        if (prod == 0 || n % prod != 0) {
            char b[128];
            out->dims[unknown] = -1;
            return pst_status_set(st, PST_E_INVALID,
                                  "cannot reshape a tensor of %lld elements to %s", (long long)n,
                                  pst_shape_str(out, b, sizeof b));
        }
        out->dims[unknown] = n / prod;
    } else if (prod != n) {
        char b[128];
        return pst_status_set(st, PST_E_INVALID, "cannot reshape a tensor of %lld elements to %s",
                              (long long)n, pst_shape_str(out, b, sizeof b));
    }
    return 0;
}

static int reshape_shape(pst_node *n, pst_status *st) {
    pst_shape in = pst_node_in_shape(n, 0), out = pst_shape_unknown();
    const pst_tensor *req = pst_node_in_const(n, 1);
    if (req) {
        int64_t cnt = 0;
        int known = pst_shape_is_known(&in) && pst_shape_num_elements(&in, &cnt, NULL) == 0;
        if (resolve_shape(req, cnt, known, &out, st) < 0) return PST_E_INVALID;
    } else if (strcmp(n->inputs[1].node->op->name, "Shape") == 0) {
        out = pst_node_in_shape(n->inputs[1].node, 0); /* Reshape(t, Shape(x)): x's shape */
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int reshape_kernel(pst_kernel_ctx *c) {
    pst_shape s;
    if (resolve_shape(c->inputs[1], c->inputs[0]->n, 1, &s, c->status) < 0) return c->status->code;
    pst_tensor *v = pst_tensor_reshape_view(c->inputs[0], s, c->status);
    if (v == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, v);
    return 0;
}

static int like_x_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    dx[0] = pst_reshape_t(g, dy[0], pst_shape_of(g, n->inputs[0], PST_INT32, NULL), NULL);
    return 0;
}

static int shape_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_dtype ot = pst_node_attr_type(n, "out_type", PST_INT32);
    pst_shape in = pst_node_in_shape(n, 0);
    int is_size = strcmp(n->op->name, "Size") == 0;
    pst_node_set_output(n, 0, ot, is_size ? pst_shape_scalar() : pst_shape_1d(in.rank));
    return 0;
}

static int shape_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int is_size = strcmp(c->op->name, "Size") == 0;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->out_dtypes[0],
                                          is_size ? pst_shape_scalar() : pst_shape_1d(x->shape.rank));
    if (o == NULL) return c->status->code;
    if (is_size)
        pst_tensor_set_f64(o, 0, (double)x->n);
    else
        for (int i = 0; i < x->shape.rank; i++) {
            if (o->dtype == PST_INT64)
                pst_tensor_i64(o)[i] = x->shape.dims[i];
            else
                pst_tensor_i32(o)[i] = (int32_t)x->shape.dims[i];
        }
    return 0;
}

/* ---- ExpandDims, Squeeze ----------------------------------------------------------------- */

static int expand_shape_of(const pst_shape *in, int64_t axis, pst_shape *out, pst_status *st) {
    if (axis < -(in->rank + 1) || axis > in->rank)
        return pst_status_set(st, PST_E_INVALID, "axis %lld is out of range for rank %d",
                              (long long)axis, in->rank);
    if (axis < 0) axis += in->rank + 1;
    out->rank = in->rank + 1;
    for (int i = 0, j = 0; i < out->rank; i++) out->dims[i] = i == axis ? 1 : in->dims[j++];
    return 0;
}

static int expand_dims_shape(pst_node *n, pst_status *st) {
    pst_shape in = pst_node_in_shape(n, 0), out = pst_shape_unknown();
    const pst_tensor *ax = pst_node_in_const(n, 1);
    if (in.rank >= 0 && ax && expand_shape_of(&in, pst_tensor_get_i64(ax, 0), &out, st) < 0)
        return PST_E_INVALID;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int expand_dims_kernel(pst_kernel_ctx *c) {
    pst_shape s;
    if (expand_shape_of(&c->inputs[0]->shape, pst_tensor_get_i64(c->inputs[1], 0), &s, c->status) < 0)
        return c->status->code;
    pst_tensor *v = pst_tensor_reshape_view(c->inputs[0], s, c->status);
    if (v == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, v);
    return 0;
}

static int squeeze_shape_of(const pst_shape *in, const pst_attr *dims, pst_shape *out,
                            pst_status *st) {
    int drop[PST_MAX_RANK] = {0};
    if (dims && dims->n > 0) {
        for (int i = 0; i < dims->n; i++) {
            int64_t a = dims->list.i[i];
            if (a < -in->rank || a >= in->rank)
                return pst_status_set(st, PST_E_INVALID, "squeeze axis %lld out of range for rank %d",
                                      (long long)a, in->rank);
            if (a < 0) a += in->rank;
            if (in->dims[a] != 1 && in->dims[a] != -1)
                return pst_status_set(st, PST_E_INVALID, "cannot squeeze dim %lld of size %lld",
                                      (long long)a, (long long)in->dims[a]);
            drop[a] = 1;
        }
    } else {
        for (int d = 0; d < in->rank; d++) drop[d] = in->dims[d] == 1;
    }
    out->rank = 0;
    for (int d = 0; d < in->rank; d++)
        if (!drop[d]) out->dims[out->rank++] = in->dims[d];
    return 0;
}

static int squeeze_shape(pst_node *n, pst_status *st) {
    pst_shape in = pst_node_in_shape(n, 0), out = pst_shape_unknown();
    if (in.rank >= 0 && squeeze_shape_of(&in, pst_node_attr(n, "squeeze_dims"), &out, st) < 0)
        return PST_E_INVALID;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int squeeze_kernel(pst_kernel_ctx *c) {
    pst_shape s;
    if (squeeze_shape_of(&c->inputs[0]->shape, pst_kctx_attr(c, "squeeze_dims"), &s, c->status) < 0)
        return c->status->code;
    pst_tensor *v = pst_tensor_reshape_view(c->inputs[0], s, c->status);
    if (v == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, v);
    return 0;
}

/* ---- Transpose --------------------------------------------------------------------------- */

static int read_perm(const pst_tensor *p, int rank, int *perm, pst_status *st) {
    if (p->n != rank)
        return pst_status_set(st, PST_E_INVALID, "perm has %lld entries for rank %d",
                              (long long)p->n, rank);
    int seen[PST_MAX_RANK] = {0};
    for (int i = 0; i < rank; i++) {
        int64_t v = pst_tensor_get_i64(p, i);
        if (v < 0 || v >= rank || seen[v])
            return pst_status_set(st, PST_E_INVALID, "perm is not a permutation of 0..%d", rank - 1);
        seen[v] = 1;
        perm[i] = (int)v;
    }
    return 0;
}

static int transpose_shape(pst_node *n, pst_status *st) {
    pst_shape in = pst_node_in_shape(n, 0), out = pst_shape_unknown();
    const pst_tensor *p = pst_node_in_const(n, 1);
    if (in.rank >= 0 && p) {
        int perm[PST_MAX_RANK];
        if (read_perm(p, in.rank, perm, st) < 0) return PST_E_INVALID;
        out.rank = in.rank;
        for (int i = 0; i < in.rank; i++) out.dims[i] = in.dims[perm[i]];
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int transpose_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int perm[PST_MAX_RANK];
    if (read_perm(c->inputs[1], x->shape.rank, perm, c->status) < 0) return c->status->code;
    pst_shape os = x->shape;
    int64_t is[PST_MAX_RANK], ss[PST_MAX_RANK], ds[PST_MAX_RANK];
    pst_shape_strides(&x->shape, is);
    for (int i = 0; i < x->shape.rank; i++) {
        os.dims[i] = x->shape.dims[perm[i]];
        ss[i] = is[perm[i]];
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, os);
    if (o == NULL) return c->status->code;
    pst_shape_strides(&os, ds);
    pst_strided_copy(o->data, ds, x->data, ss, os.dims, os.rank, pst_dtype_size(x->dtype));
    return 0;
}

static int transpose_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    const pst_tensor *p = pst_node_in_const(n, 1);
    if (p == NULL)
        return pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "gradient of '%s' needs a constant perm",
                                   n->name);
    int32_t inv[PST_MAX_RANK];
    for (int i = 0; i < (int)p->n; i++) inv[pst_tensor_get_i64(p, i)] = i;
    dx[0] = pst_transpose(g, dy[0], (int)p->n, inv, NULL);
    return 0;
}

/* ---- Concat, Split, Pack, Unpack --------------------------------------------------------- */

static int concat_shape(pst_node *n, pst_status *st) {
    int k = n->n_inputs - 1;
    const pst_tensor *ax = pst_node_in_const(n, k);
    if (pst_shape_check_same_dtype(n, 0, k - 1, st) < 0) return PST_E_INVALID;
    /* Inputs of unknown rank (imported graphs) check nothing and leave the axis dim unknown. */
    int first = 0, any_unknown = 0;
    while (first < k && pst_node_in_shape(n, first).rank < 0) first++;
    for (int i = 0; i < k; i++) any_unknown |= pst_node_in_shape(n, i).rank < 0;
    pst_shape out = first < k ? pst_node_in_shape(n, first) : pst_shape_unknown();
    if (ax == NULL || out.rank < 0) {
        pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_shape_unknown());
        return 0;
    }
    int64_t a = pst_tensor_get_i64(ax, 0);
    if (a < -out.rank || a >= out.rank)
        return pst_status_set(st, PST_E_INVALID, "concat axis %lld out of range for rank %d",
                              (long long)a, out.rank);
    if (a < 0) a += out.rank;
    for (int i = first + 1; i < k; i++) {
        pst_shape s = pst_node_in_shape(n, i);
        char b1[128], b2[128];
        if (s.rank < 0) continue;
        if (s.rank != out.rank)
            return pst_status_set(st, PST_E_INVALID, "input %d has shape %s, input 0 has %s", i,
                                  pst_shape_str(&s, b1, sizeof b1),
                                  pst_shape_str(&out, b2, sizeof b2));
        for (int d = 0; d < out.rank; d++) {
            if (d == a) {
                out.dims[d] = (out.dims[d] < 0 || s.dims[d] < 0) ? -1 : out.dims[d] + s.dims[d];
            } else if (out.dims[d] >= 0 && s.dims[d] >= 0 && out.dims[d] != s.dims[d]) {
                return pst_status_set(st, PST_E_INVALID, "input %d has shape %s, input 0 has %s",
                                      i, pst_shape_str(&s, b1, sizeof b1),
                                      pst_shape_str(&out, b2, sizeof b2));
            } else if (out.dims[d] < 0) {
                out.dims[d] = s.dims[d];
            }
        }
    }
    if (any_unknown) out.dims[a] = -1;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int concat_kernel(pst_kernel_ctx *c);

/* TF's first Concat(concat_dim, values...): ConcatV2 with the axis first. */
static void rotate_axis_last(pst_output *in, int n) {
    pst_output ax = in[0];
    memmove(in, in + 1, (size_t)(n - 1) * sizeof *in);
    in[n - 1] = ax;
}
static int concat_v1_shape(pst_node *n, pst_status *st) {
    rotate_axis_last(n->inputs, n->n_inputs);
    int rc = concat_shape(n, st);
    for (int i = 0; i < n->n_inputs - 1; i++) rotate_axis_last(n->inputs, n->n_inputs);
    return rc;
}
static int concat_v1_kernel(pst_kernel_ctx *c) {
    pst_tensor *buf[64], **in = c->n_inputs <= 64 ? buf : malloc((size_t)c->n_inputs * sizeof *in);
    PST_ASSERT(in != NULL);
    for (int i = 1; i < c->n_inputs; i++) in[i - 1] = c->inputs[i];
    in[c->n_inputs - 1] = c->inputs[0];
    pst_kernel_ctx c2 = *c;
    c2.inputs = in;
    int rc = concat_kernel(&c2);
    if (in != buf) free(in);
    return rc;
}

static int concat_kernel(pst_kernel_ctx *c) {
    int k = c->n_inputs - 1;
    const pst_tensor *x0 = c->inputs[0];
    int rank = x0->shape.rank;
    int64_t a = pst_tensor_get_i64(c->inputs[k], 0);
    if (a < -rank || a >= rank)
        return pst_kctx_error(c, PST_E_INVALID, "concat axis %lld out of range for rank %d",
                              (long long)a, rank);
    if (a < 0) a += rank;
    pst_shape os = x0->shape;
    os.dims[a] = 0;
    for (int i = 0; i < k; i++) {
        const pst_tensor *x = c->inputs[i];
        if (x->shape.rank != rank) return pst_kctx_error(c, PST_E_INVALID, "input %d rank differs", i);
        for (int d = 0; d < rank; d++)
            if (d != a && x->shape.dims[d] != x0->shape.dims[d])
                return pst_kctx_error(c, PST_E_INVALID, "input %d dim %d is %lld, input 0 has %lld",
                                      i, d, (long long)x->shape.dims[d],
                                      (long long)x0->shape.dims[d]);
        os.dims[a] += x->shape.dims[a];
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x0->dtype, os);
    if (o == NULL) return c->status->code;
    size_t es = pst_dtype_size(x0->dtype);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < a; d++) outer *= os.dims[d];
    for (int d = (int)a + 1; d < rank; d++) inner *= os.dims[d];
    int64_t orow = os.dims[a] * inner, off = 0;
    for (int i = 0; i < k; i++) {
        const pst_tensor *x = c->inputs[i];
        int64_t row = x->shape.dims[a] * inner;
        for (int64_t o2 = 0; o2 < outer; o2++)
            memcpy((char *)o->data + (size_t)(o2 * orow + off) * es,
                   (const char *)x->data + (size_t)(o2 * row) * es, (size_t)row * es);
        off += row;
    }
    return 0;
}

static int concat_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int k = n->n_inputs - 1;
    const pst_tensor *ax = pst_node_in_const(n, k);
    pst_shape s0 = pst_node_in_shape(n, 0);
    if (ax == NULL || s0.rank < 0)
        return pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "gradient of '%s' needs a constant axis",
                                   n->name);
    int64_t a = pst_tensor_get_i64(ax, 0);
    if (a < 0) a += s0.rank;
    int64_t off = 0;
    for (int i = 0; i < k; i++) {
        pst_shape s = pst_node_in_shape(n, i);
        if (s.dims[a] < 0)
            return pst_graph_set_error(g, PST_E_UNIMPLEMENTED,
                                       "gradient of '%s' needs known sizes along the axis", n->name);
        int64_t begin[PST_MAX_RANK] = {0}, size[PST_MAX_RANK];
        for (int d = 0; d < s0.rank; d++) size[d] = -1;
        begin[a] = off;
        size[a] = s.dims[a];
        dx[i] = pst_slice(g, dy[0], s0.rank, begin, size, NULL);
        off += s.dims[a];
    }
    return 0;
}

static int split_shape(pst_node *n, pst_status *st) {
    int num = (int)pst_node_attr_i(n, "num_split", 1);
    if (num < 1) return pst_status_set(st, PST_E_INVALID, "num_split must be positive");
    pst_node_set_num_outputs(n, num);
    const pst_tensor *ax = pst_node_in_const(n, 0);
    pst_shape in = pst_node_in_shape(n, 1), out = pst_shape_unknown();
    if (ax && in.rank >= 0) {
        int64_t a = pst_tensor_get_i64(ax, 0);
        if (a < -in.rank || a >= in.rank)
            return pst_status_set(st, PST_E_INVALID, "split axis %lld out of range for rank %d",
                                  (long long)a, in.rank);
        if (a < 0) a += in.rank;
        if (in.dims[a] >= 0 && in.dims[a] % num != 0)
            return pst_status_set(st, PST_E_INVALID, "dim %lld of size %lld does not split into %d",
                                  (long long)a, (long long)in.dims[a], num);
        out = in;
        if (in.dims[a] >= 0) out.dims[a] = in.dims[a] / num;
    }
    for (int i = 0; i < num; i++) pst_node_set_output(n, i, pst_node_in_dtype(n, 1), out);
    return 0;
}

static int split_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[1];
    int rank = x->shape.rank, num = c->n_outputs;
    int64_t a = pst_tensor_get_i64(c->inputs[0], 0);
    if (a < -rank || a >= rank)
        return pst_kctx_error(c, PST_E_INVALID, "split axis %lld out of range", (long long)a);
    if (a < 0) a += rank;
    if (x->shape.dims[a] % num != 0)
        return pst_kctx_error(c, PST_E_INVALID, "dim %lld of size %lld does not split into %d",
                              (long long)a, (long long)x->shape.dims[a], num);
    pst_shape ps = x->shape;
    ps.dims[a] /= num;
    size_t es = pst_dtype_size(x->dtype);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < a; d++) outer *= x->shape.dims[d];
    for (int d = (int)a + 1; d < rank; d++) inner *= x->shape.dims[d];
    int64_t row = ps.dims[a] * inner, xrow = x->shape.dims[a] * inner;
    for (int i = 0; i < num; i++) {
        pst_tensor *o = pst_kctx_alloc_output(c, i, x->dtype, ps);
        if (o == NULL) return c->status->code;
        for (int64_t k = 0; k < outer; k++)
            memcpy((char *)o->data + (size_t)(k * row) * es,
                   (const char *)x->data + (size_t)(k * xrow + i * row) * es, (size_t)row * es);
    }
    return 0;
}

static int split_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    const pst_tensor *ax = pst_node_in_const(n, 0);
    if (ax == NULL)
        return pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "gradient of '%s' needs a constant axis",
                                   n->name);
    pst_output *parts = calloc((size_t)n->n_outputs, sizeof *parts);
    PST_ASSERT(parts != NULL);
    for (int i = 0; i < n->n_outputs; i++)
        parts[i] = dy[i].node ? dy[i] : pst_zeros_like(g, pst_out(n, i), NULL);
    dx[1] = pst_concat(g, n->n_outputs, parts, (int)pst_tensor_get_i64(ax, 0), NULL);
    free(parts);
    return 0;
}

/* ---- Slice, StridedSlice, Pad, Tile -------------------------------------------------------- */

/* Per-dimension begin/size of a slice; size -1 runs to the end. */
static int slice_bounds(const pst_shape *in, const pst_tensor *b, const pst_tensor *s, int64_t *begin,
                        int64_t *size, pst_status *st) {
    if (b->n != in->rank || s->n != in->rank)
        return pst_status_set(st, PST_E_INVALID, "begin and size need %d entries", in->rank);
    for (int d = 0; d < in->rank; d++) {
        begin[d] = pst_tensor_get_i64(b, d);
        size[d] = pst_tensor_get_i64(s, d);
        if (size[d] == -1) size[d] = in->dims[d] - begin[d];
        if (begin[d] < 0 || size[d] < 0 || begin[d] + size[d] > in->dims[d])
            return pst_status_set(st, PST_E_INVALID,
                                  "slice [%lld, %lld) is out of bounds for dim %d of size %lld",
                                  (long long)begin[d], (long long)(begin[d] + size[d]), d,
                                  (long long)in->dims[d]);
    }
    return 0;
}

static int slice_shape(pst_node *n, pst_status *st) {
    pst_shape in = pst_node_in_shape(n, 0), out = pst_shape_unknown();
    const pst_tensor *b = pst_node_in_const(n, 1), *s = pst_node_in_const(n, 2);
    if (s && in.rank >= 0 && s->n == in.rank) {
        out = in;
        for (int d = 0; d < in.rank; d++) {
            int64_t sz = pst_tensor_get_i64(s, d);
            int64_t bg = b ? pst_tensor_get_i64(b, d) : -1;
            out.dims[d] = sz >= 0 ? sz : (in.dims[d] >= 0 && bg >= 0 ? in.dims[d] - bg : -1);
        }
    }
    (void)st;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int slice_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int64_t begin[PST_MAX_RANK], size[PST_MAX_RANK], is[PST_MAX_RANK], ds[PST_MAX_RANK];
    if (slice_bounds(&x->shape, c->inputs[1], c->inputs[2], begin, size, c->status) < 0)
        return c->status->code;
    pst_shape os = pst_shape_make(x->shape.rank, size);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, os);
    if (o == NULL) return c->status->code;
    pst_shape_strides(&x->shape, is);
    pst_shape_strides(&os, ds);
    int64_t off = 0;
    for (int d = 0; d < x->shape.rank; d++) off += begin[d] * is[d];
    size_t es = pst_dtype_size(x->dtype);
    pst_strided_copy(o->data, ds, (const char *)x->data + off * (int64_t)es, is, size, os.rank, es);
    return 0;
}

/* PstSliceGrad(dy, x, begin): zeros shaped like x with dy at begin. */
static int slice_grad_kernel(pst_kernel_ctx *c) {
    const pst_tensor *dy = c->inputs[0], *x = c->inputs[1], *b = c->inputs[2];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, dy->dtype, x->shape);
    if (o == NULL) return c->status->code;
    memset(o->data, 0, o->nbytes);
    int64_t os[PST_MAX_RANK], ss[PST_MAX_RANK], off = 0;
    pst_shape_strides(&x->shape, os);
    pst_shape_strides(&dy->shape, ss);
    for (int d = 0; d < x->shape.rank; d++) off += pst_tensor_get_i64(b, d) * os[d];
    size_t es = pst_dtype_size(dy->dtype);
    pst_strided_copy((char *)o->data + off * (int64_t)es, os, dy->data, ss, dy->shape.dims,
                     dy->shape.rank, es);
    return 0;
}

static int like_input1_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 1));
    return 0;
}

static pst_output two(pst_graph *g, const char *op, pst_output a, pst_output b, const char *name);

/* Slice's gradient as TensorFlow builds it: dy padded with zeros out to x's shape, by
 * constant paddings when the shapes and begin are known, else by begin and
 * Shape(x) - Shape(dy) - begin. */
static int slice_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output x = n->inputs[0], begin = n->inputs[1];
    pst_shape sx = pst_output_shape(x), sd = pst_output_shape(dy[0]);
    const pst_tensor *bc = pst_node_in_const(n, 1);
    if (bc && pst_shape_is_known(&sx) && pst_shape_is_known(&sd) && sx.rank == sd.rank &&
        bc->n == sx.rank) {
        int64_t p[2 * PST_MAX_RANK];
        for (int d = 0; d < sx.rank; d++) {
            p[2 * d] = pst_tensor_get_i64(bc, d);
            p[2 * d + 1] = sx.dims[d] - sd.dims[d] - p[2 * d];
        }
        dx[0] = pst_pad(g, dy[0], sx.rank, p, NULL);
        return 0;
    }
    pst_dtype it = pst_output_dtype(begin);
    pst_output after = pst_sub(g, pst_sub(g, pst_shape_of(g, x, it, NULL),
                                          pst_shape_of(g, dy[0], it, NULL), NULL),
                               begin, NULL);
    pst_output pads[2] = {begin, after};
    dx[0] = two(g, "Pad", dy[0], pst_stack(g, 2, pads, 1, "paddings"), NULL);
    return 0;
}

/* StridedSlice with begin/end/shrink masks (no ellipsis or new axes). */
typedef struct ss_spec {
    int rank;
    int64_t begin[PST_MAX_RANK], len[PST_MAX_RANK], stride[PST_MAX_RANK];
    pst_shape out;
} ss_spec;

static int ss_compute(const pst_shape *in, const pst_tensor *b, const pst_tensor *e,
                      const pst_tensor *s, int64_t bmask, int64_t emask, int64_t smask,
                      ss_spec *sp, pst_status *st) {
    int k = (int)b->n;
    if (k > in->rank || e->n != k || s->n != k)
        return pst_status_set(st, PST_E_INVALID, "begin/end/strides need at most %d equal-length "
                              "entries", in->rank);
    sp->rank = in->rank;
    sp->out.rank = 0;
    for (int d = 0; d < in->rank; d++) {
        int64_t dim = in->dims[d];
        if (d >= k) {
            sp->begin[d] = 0;
            sp->len[d] = dim;
            sp->stride[d] = 1;
            sp->out.dims[sp->out.rank++] = dim;
            continue;
        }
        int64_t stride = pst_tensor_get_i64(s, d);
        if (stride == 0) return pst_status_set(st, PST_E_INVALID, "stride %d is zero", d);
        int64_t bg = pst_tensor_get_i64(b, d), en = pst_tensor_get_i64(e, d);
        if ((smask >> d) & 1) {
            if (bg < 0) bg += dim;
            if (bg < 0 || bg >= dim)
                return pst_status_set(st, PST_E_INVALID, "index %lld out of range for dim %d of "
                                      "size %lld", (long long)pst_tensor_get_i64(b, d), d,
                                      (long long)dim);
            sp->begin[d] = bg;
            sp->len[d] = 1;
            sp->stride[d] = 1;
            continue;
        }
        if (stride > 0) {
            bg = ((bmask >> d) & 1) ? 0 : (bg < 0 ? bg + dim : bg);
            en = ((emask >> d) & 1) ? dim : (en < 0 ? en + dim : en);
            bg = bg < 0 ? 0 : bg > dim ? dim : bg;
            en = en < 0 ? 0 : en > dim ? dim : en;
            sp->len[d] = en > bg ? (en - bg + stride - 1) / stride : 0;
        } else {
            bg = ((bmask >> d) & 1) ? dim - 1 : (bg < 0 ? bg + dim : bg);
            en = ((emask >> d) & 1) ? -1 : (en < 0 ? en + dim : en);
            bg = bg < -1 ? -1 : bg > dim - 1 ? dim - 1 : bg;
            en = en < -1 ? -1 : en > dim - 1 ? dim - 1 : en;
            sp->len[d] = bg > en ? (bg - en - stride - 1) / (-stride) : 0;
        }
        sp->begin[d] = bg;
        sp->stride[d] = stride;
        sp->out.dims[sp->out.rank++] = sp->len[d];
    }
    return 0;
}

static int strided_slice_shape(pst_node *n, pst_status *st) {
    pst_shape in = pst_node_in_shape(n, 0), out = pst_shape_unknown();
    const pst_tensor *b = pst_node_in_const(n, 1), *e = pst_node_in_const(n, 2),
                     *s = pst_node_in_const(n, 3);
    if (pst_node_attr_i(n, "ellipsis_mask", 0) || pst_node_attr_i(n, "new_axis_mask", 0))
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "ellipsis_mask and new_axis_mask are not "
                              "supported");
    if (b && e && s && in.rank >= 0) {
        ss_spec sp;
        int unknown = !pst_shape_is_known(&in);
        pst_shape tmp = in;
        for (int d = 0; d < tmp.rank; d++)
            if (tmp.dims[d] < 0) tmp.dims[d] = 1 << 30;
        if (ss_compute(&tmp, b, e, s, pst_node_attr_i(n, "begin_mask", 0),
                       pst_node_attr_i(n, "end_mask", 0), pst_node_attr_i(n, "shrink_axis_mask", 0),
                       &sp, unknown ? NULL : st) == 0) {
            out = sp.out;
            for (int d = 0, o = 0; d < in.rank && o < out.rank; d++) {
                if ((pst_node_attr_i(n, "shrink_axis_mask", 0) >> d) & 1) continue;
                if (in.dims[d] < 0 && out.dims[o] > (1 << 29)) out.dims[o] = -1;
                if (in.dims[d] < 0 && d < (int)b->n) out.dims[o] = -1;
                o++;
            }
        } else if (!unknown) {
            return PST_E_INVALID;
        }
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

/* Copies between x (shape xs) and the slice described by sp: gather (x -> slice) or
 * scatter (slice -> x, which the caller zeroed). */
static void ss_copy(const pst_shape *xs, const ss_spec *sp, void *x, void *slice, size_t es,
                    int scatter) {
    int64_t is[PST_MAX_RANK], ds[PST_MAX_RANK], ss[PST_MAX_RANK], off = 0;
    pst_shape_strides(xs, is);
    pst_shape full = pst_shape_make(sp->rank, sp->len);
    pst_shape_strides(&full, ds);
    for (int d = 0; d < sp->rank; d++) {
        off += sp->begin[d] * is[d];
        ss[d] = is[d] * sp->stride[d];
    }
    char *xo = (char *)x + off * (int64_t)es;
    if (scatter)
        pst_strided_copy(xo, ss, slice, ds, sp->len, sp->rank, es);
    else
        pst_strided_copy(slice, ds, xo, ss, sp->len, sp->rank, es);
}

static int ss_spec_of(pst_kernel_ctx *c, const pst_shape *xs, int first, ss_spec *sp) {
    return ss_compute(xs, c->inputs[first], c->inputs[first + 1], c->inputs[first + 2],
                      pst_kctx_attr_i(c, "begin_mask", 0), pst_kctx_attr_i(c, "end_mask", 0),
                      pst_kctx_attr_i(c, "shrink_axis_mask", 0), sp, c->status);
}

static int strided_slice_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    ss_spec sp;
    if (ss_spec_of(c, &x->shape, 1, &sp) < 0) return c->status->code;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, sp.out);
    if (o == NULL) return c->status->code;
    ss_copy(&x->shape, &sp, x->data, o->data, pst_dtype_size(x->dtype), 0);
    return 0;
}

/* StridedSliceAssign(ref, begin, end, strides, value) and ResourceStridedSliceAssign: value,
 * shaped as StridedSlice's result, written into the variable's slice in place. */
static int ss_assign_kernel(pst_kernel_ctx *c) {
    pst_var *v = c->input_vars[0];
    const pst_tensor *val = c->inputs[4];
    pst_tensor *t = pst_var_begin_update(v, c->status);
    if (t == NULL) return c->status->code;
    ss_spec sp;
    char a[128], b[128];
    int rc = 0;
    if (ss_spec_of(c, &t->shape, 1, &sp) < 0)
        rc = c->status->code;
    else if (val->dtype != t->dtype || !pst_shape_equal(&val->shape, &sp.out))
        rc = pst_kctx_error(c, PST_E_INVALID, "sliced l-value shape %s of variable '%s' does not match "
                            "r-value %s %s", pst_shape_str(&sp.out, a, sizeof a), v->name,
                            pst_dtype_name(val->dtype), pst_shape_str(&val->shape, b, sizeof b));
    else
        ss_copy(&t->shape, &sp, t->data, val->data, pst_dtype_size(t->dtype), 1);
    pst_var_end_update(v);
    if (rc == 0 && c->n_outputs > 0) {
        pst_kctx_set_output(c, 0, pst_var_read(v));
        c->output_vars[0] = v;
    }
    return rc;
}

static int ss_assign_shape(pst_node *n, pst_status *st) {
    if (pst_node_attr_i(n, "ellipsis_mask", 0) || pst_node_attr_i(n, "new_axis_mask", 0))
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "ellipsis_mask and new_axis_mask are not "
                              "supported");
    if (pst_node_in_dtype(n, 0) != pst_node_in_dtype(n, 4))
        return pst_status_set(st, PST_E_INVALID, "variable '%s' is %s, the value %s",
                              n->inputs[0].node->name, pst_dtype_name(pst_node_in_dtype(n, 0)),
                              pst_dtype_name(pst_node_in_dtype(n, 4)));
    if (n->op->n_outputs > 0) pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 0));
    return 0;
}

static int pad_shape(pst_node *n, pst_status *st) {
    pst_shape in = pst_node_in_shape(n, 0), out = pst_shape_unknown();
    const pst_tensor *p = pst_node_in_const(n, 1);
    if (p && in.rank >= 0) {
        if (p->n != 2 * in.rank)
            return pst_status_set(st, PST_E_INVALID, "paddings must be [%d, 2]", in.rank);
        out = in;
        for (int d = 0; d < in.rank; d++)
            if (in.dims[d] >= 0)
                out.dims[d] += pst_tensor_get_i64(p, 2 * d) + pst_tensor_get_i64(p, 2 * d + 1);
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int pad_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *p = c->inputs[1];
    int r = x->shape.rank;
    if (p->n != 2 * r) return pst_kctx_error(c, PST_E_INVALID, "paddings must be [%d, 2]", r);
    pst_shape os = x->shape;
    for (int d = 0; d < r; d++) {
        int64_t a = pst_tensor_get_i64(p, 2 * d), b = pst_tensor_get_i64(p, 2 * d + 1);
        if (a < 0 || b < 0) return pst_kctx_error(c, PST_E_INVALID, "negative padding");
        os.dims[d] += a + b;
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, os);
    if (o == NULL) return c->status->code;
    memset(o->data, 0, o->nbytes);
    int64_t ds[PST_MAX_RANK], is[PST_MAX_RANK], off = 0;
    pst_shape_strides(&os, ds);
    pst_shape_strides(&x->shape, is);
    for (int d = 0; d < r; d++) off += pst_tensor_get_i64(p, 2 * d) * ds[d];
    size_t es = pst_dtype_size(x->dtype);
    pst_strided_copy((char *)o->data + off * (int64_t)es, ds, x->data, is, x->shape.dims, r, es);
    return 0;
}

static int pad_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    const pst_tensor *p = pst_node_in_const(n, 1);
    if (p == NULL)
        return pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "gradient of '%s' needs constant "
                                   "paddings", n->name);
    int r = (int)(p->n / 2);
    int64_t begin[PST_MAX_RANK];
    for (int d = 0; d < r; d++) begin[d] = pst_tensor_get_i64(p, 2 * d);
    pst_node_builder *b = pst_nb_new(g, "Slice", NULL);
    pst_nb_input(b, dy[0]);
    /* begin and size share TensorFlow's Index type (int32 here), named by the Index attr. */
    pst_nb_input(b, const_i64_vec(g, r, begin, NULL));
    pst_nb_input(b, pst_shape_of(g, n->inputs[0], PST_INT32, NULL));
    pst_nb_attr_type(b, "T", pst_node_in_dtype(n, 0));
    pst_nb_attr_type(b, "Index", PST_INT32);
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

static int tile_shape(pst_node *n, pst_status *st) {
    pst_shape in = pst_node_in_shape(n, 0), out = pst_shape_unknown();
    const pst_tensor *m = pst_node_in_const(n, 1);
    if (m && in.rank >= 0) {
        if (m->n != in.rank)
            return pst_status_set(st, PST_E_INVALID, "multiples has %lld entries for rank %d",
                                  (long long)m->n, in.rank);
        out = in;
        for (int d = 0; d < in.rank; d++)
            if (in.dims[d] >= 0) out.dims[d] *= pst_tensor_get_i64(m, d);
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int tile_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *m = c->inputs[1];
    int r = x->shape.rank;
    if (m->n != r) return pst_kctx_error(c, PST_E_INVALID, "multiples has %lld entries for rank %d",
                                         (long long)m->n, r);
    pst_shape os = x->shape;
    int64_t mult[PST_MAX_RANK], tiles = 1;
    for (int d = 0; d < r; d++) {
        mult[d] = pst_tensor_get_i64(m, d);
        if (mult[d] < 0) return pst_kctx_error(c, PST_E_INVALID, "negative multiple");
        os.dims[d] *= mult[d];
        tiles *= mult[d];
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, os);
    if (o == NULL) return c->status->code;
    int64_t ds[PST_MAX_RANK], is[PST_MAX_RANK], t[PST_MAX_RANK] = {0};
    pst_shape_strides(&os, ds);
    pst_shape_strides(&x->shape, is);
    size_t es = pst_dtype_size(x->dtype);
    for (int64_t k = 0; k < tiles; k++) {
        int64_t off = 0;
        for (int d = 0; d < r; d++) off += t[d] * x->shape.dims[d] * ds[d];
        pst_strided_copy((char *)o->data + off * (int64_t)es, ds, x->data, is, x->shape.dims, r, es);
        for (int d = r - 1; d >= 0; d--) {
            if (++t[d] < mult[d]) break;
            t[d] = 0;
        }
    }
    return 0;
}

/* PstTileGrad(dy, x): sums the tiles of dy back into x's shape. */
static int tile_grad_kernel(pst_kernel_ctx *c) {
    const pst_tensor *dy = c->inputs[0], *x = c->inputs[1];
    int r = x->shape.rank;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, dy->dtype, x->shape);
    if (o == NULL) return c->status->code;
    memset(o->data, 0, o->nbytes);
    int64_t idx[PST_MAX_RANK] = {0}, xs[PST_MAX_RANK];
    pst_shape_strides(&x->shape, xs);
    for (int64_t i = 0; i < dy->n; i++) {
        int64_t xo = 0;
        for (int d = 0; d < r; d++) xo += (idx[d] % x->shape.dims[d]) * xs[d];
        pst_tensor_set_f64(o, xo, pst_tensor_get_f64(o, xo) + pst_tensor_get_f64(dy, i));
        for (int d = r - 1; d >= 0; d--) {
            if (++idx[d] < dy->shape.dims[d]) break;
            idx[d] = 0;
        }
    }
    return 0;
}

static int helper_grad(pst_graph *g, const char *op, pst_output dy, pst_output x, pst_output *dx) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_input(b, dy);
    pst_nb_input(b, x);
    *dx = pst_nb_finish_out(b);
    return 0;
}

/* Tile's gradient as TensorFlow builds it: dy seen as [m0, x0, m1, x1, ...] and summed over
 * the m axes; constant shapes when x's shape and the multiples are known, else Pack,
 * Transpose and Range at run time. Inputs of rank over 4 (the split view would pass
 * PST_MAX_RANK) or unknown rank use PstTileGrad. */
static int tile_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output x = n->inputs[0], mult = n->inputs[1];
    pst_shape sx = pst_output_shape(x);
    int r = sx.rank;
    if (r < 0 || 2 * r > PST_MAX_RANK)
        return helper_grad(g, "PstTileGrad", dy[0], x, &dx[0]);
    int32_t axes[PST_MAX_RANK];
    for (int d = 0; d < r; d++) axes[d] = 2 * d;
    const pst_tensor *mc = pst_node_in_const(n, 1);
    if (mc && mc->n == r && pst_shape_is_known(&sx)) {
        int64_t split[PST_MAX_RANK];
        for (int d = 0; d < r; d++) {
            split[2 * d] = pst_tensor_get_i64(mc, d);
            split[2 * d + 1] = sx.dims[d];
        }
        dx[0] = pst_reduce_sum(g, pst_reshape(g, dy[0], 2 * r, split, NULL), r, axes, 0, NULL);
        return 0;
    }
    pst_dtype it = pst_output_dtype(mult);
    pst_output pair[2] = {mult, pst_shape_of(g, x, it, NULL)};
    pst_output split = pst_reshape(g, pst_transpose(g, pst_stack(g, 2, pair, 0, NULL), 2,
                                                    (int32_t[]){1, 0}, NULL),
                                   1, (int64_t[]){-1}, "split_shape");
    pst_output m_axes = pst_range(g, pst_const_scalar(g, it, 0, NULL),
                                  pst_size_of(g, split, it, NULL), pst_const_scalar(g, it, 2, NULL),
                                  NULL);
    pst_output sum = pst_reduce_sum_t(g, pst_reshape_t(g, dy[0], split, NULL), m_axes, 0, NULL);
    dx[0] = pst_reshape_t(g, sum, pst_shape_of(g, x, PST_INT32, NULL), NULL);
    return 0;
}

/* ---- Pack / Unpack ------------------------------------------------------------------------- */

static int pack_shape(pst_node *n, pst_status *st) {
    if (pst_shape_check_same_dtype(n, 0, n->n_inputs - 1, st) < 0) return PST_E_INVALID;
    pst_shape in = pst_node_in_shape(n, 0), out = pst_shape_unknown();
    int64_t axis = pst_node_attr_i(n, "axis", 0);
    if (in.rank >= 0) {
        if (expand_shape_of(&in, axis, &out, st) < 0) return PST_E_INVALID;
        out.dims[axis < 0 ? axis + in.rank + 1 : axis] = n->n_inputs;
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int pack_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x0 = c->inputs[0];
    int64_t axis = pst_kctx_attr_i(c, "axis", 0);
    pst_shape os;
    if (expand_shape_of(&x0->shape, axis, &os, c->status) < 0) return c->status->code;
    if (axis < 0) axis += x0->shape.rank + 1;
    os.dims[axis] = c->n_inputs;
    for (int i = 1; i < c->n_inputs; i++)
        if (!pst_shape_equal(&c->inputs[i]->shape, &x0->shape))
            return pst_kctx_error(c, PST_E_INVALID, "input %d's shape differs from input 0's", i);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x0->dtype, os);
    if (o == NULL) return c->status->code;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= os.dims[d];
    for (int d = (int)axis + 1; d < os.rank; d++) inner *= os.dims[d];
    for (int i = 0; i < c->n_inputs; i++)
        for (int64_t k = 0; k < outer; k++)
            if (pst_tensor_copy_elems(o, (k * c->n_inputs + i) * inner, c->inputs[i], k * inner,
                                      inner, c->status) < 0)
                return c->status->code;
    return 0;
}

static int pack_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_unstack(g, dy[0], n->n_inputs, (int)pst_node_attr_i(n, "axis", 0), dx, NULL);
    return 0;
}

static int unpack_shape(pst_node *n, pst_status *st) {
    int num = (int)pst_node_attr_i(n, "num", 0);
    pst_shape in = pst_node_in_shape(n, 0), out = pst_shape_unknown();
    int64_t axis = pst_node_attr_i(n, "axis", 0);
    if (in.rank >= 0) {
        if (axis < -in.rank || axis >= in.rank)
            return pst_status_set(st, PST_E_INVALID, "axis %lld out of range", (long long)axis);
        if (axis < 0) axis += in.rank;
        if (in.dims[axis] >= 0 && in.dims[axis] != num)
            return pst_status_set(st, PST_E_INVALID, "dim %lld has size %lld, num is %d",
                                  (long long)axis, (long long)in.dims[axis], num);
        out.rank = 0;
        for (int d = 0; d < in.rank; d++)
            if (d != axis) out.dims[out.rank++] = in.dims[d];
    }
    pst_node_set_num_outputs(n, num);
    for (int i = 0; i < num; i++) pst_node_set_output(n, i, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int unpack_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int64_t axis = pst_kctx_attr_i(c, "axis", 0);
    int r = x->shape.rank;
    if (axis < 0) axis += r;
    if (x->shape.dims[axis] != c->n_outputs)
        return pst_kctx_error(c, PST_E_INVALID, "dim %lld has size %lld, num is %d",
                              (long long)axis, (long long)x->shape.dims[axis], c->n_outputs);
    pst_shape os = {0};
    for (int d = 0; d < r; d++)
        if (d != axis) os.dims[os.rank++] = x->shape.dims[d];
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= x->shape.dims[d];
    for (int d = (int)axis + 1; d < r; d++) inner *= x->shape.dims[d];
    size_t es = pst_dtype_size(x->dtype);
    for (int i = 0; i < c->n_outputs; i++) {
        pst_tensor *o = pst_kctx_alloc_output(c, i, x->dtype, os);
        if (o == NULL) return c->status->code;
        for (int64_t k = 0; k < outer; k++)
            memcpy((char *)o->data + (size_t)(k * inner) * es,
                   (const char *)x->data + (size_t)((k * c->n_outputs + i) * inner) * es,
                   (size_t)inner * es);
    }
    return 0;
}

static int unpack_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output *parts = calloc((size_t)n->n_outputs, sizeof *parts);
    PST_ASSERT(parts != NULL);
    for (int i = 0; i < n->n_outputs; i++)
        parts[i] = dy[i].node ? dy[i] : pst_zeros_like(g, pst_out(n, i), NULL);
    dx[0] = pst_stack(g, n->n_outputs, parts, (int)pst_node_attr_i(n, "axis", 0), NULL);
    free(parts);
    return 0;
}

/* ---- Gather, OneHot, Fill, Range ----------------------------------------------------------- */

static int gather_shape(pst_node *n, pst_status *st) {
    pst_shape p = pst_node_in_shape(n, 0), idx = pst_node_in_shape(n, 1), out = pst_shape_unknown();
    /* Gather (TF's old op) has no axis input: axis 0. */
    const pst_tensor *ax = n->n_inputs > 2 ? pst_node_in_const(n, 2) : NULL;
    if (!pst_dtype_is_int(pst_node_in_dtype(n, 1)))
        return pst_status_set(st, PST_E_INVALID, "indices must be integers");
    if ((ax || n->n_inputs == 2) && p.rank >= 0 && idx.rank >= 0) {
        int64_t a = ax ? pst_tensor_get_i64(ax, 0) : 0;
        if (a < 0) a += p.rank;
        if (a < 0 || a >= p.rank)
            return pst_status_set(st, PST_E_INVALID, "gather axis out of range for rank %d", p.rank);
        if (p.rank + idx.rank - 1 > PST_MAX_RANK)
            return pst_status_set(st, PST_E_INVALID, "gather result rank too large");
        out.rank = 0;
        for (int d = 0; d < a; d++) out.dims[out.rank++] = p.dims[d];
        for (int d = 0; d < idx.rank; d++) out.dims[out.rank++] = idx.dims[d];
        for (int d = (int)a + 1; d < p.rank; d++) out.dims[out.rank++] = p.dims[d];
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int gather_kernel(pst_kernel_ctx *c) {
    const pst_tensor *p = c->inputs[0], *idx = c->inputs[1];
    int64_t a = c->n_inputs > 2 ? pst_tensor_get_i64(c->inputs[2], 0) : 0;
    if (a < 0) a += p->shape.rank;
    if (a < 0 || a >= p->shape.rank)
        return pst_kctx_error(c, PST_E_INVALID, "gather axis out of range");
    pst_shape os = {0};
    for (int d = 0; d < a; d++) os.dims[os.rank++] = p->shape.dims[d];
    for (int d = 0; d < idx->shape.rank; d++) os.dims[os.rank++] = idx->shape.dims[d];
    for (int d = (int)a + 1; d < p->shape.rank; d++) os.dims[os.rank++] = p->shape.dims[d];
    int64_t outer = 1, inner = 1, rows = p->shape.dims[a];
    for (int d = 0; d < a; d++) outer *= p->shape.dims[d];
    for (int d = (int)a + 1; d < p->shape.rank; d++) inner *= p->shape.dims[d];
    for (int64_t i = 0; i < idx->n; i++) {
        int64_t r = pst_tensor_get_i64(idx, i);
        if (r < 0 || r >= rows)
            return pst_kctx_error(c, PST_E_INVALID,
                                  "index %lld (at position %lld) is out of range [0, %lld)",
                                  (long long)r, (long long)i, (long long)rows);
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, p->dtype, os);
    if (o == NULL) return c->status->code;
    for (int64_t k = 0; k < outer; k++)
        for (int64_t i = 0; i < idx->n; i++)
            if (pst_tensor_copy_elems(o, (k * idx->n + i) * inner, p,
                                      (k * rows + pst_tensor_get_i64(idx, i)) * inner, inner,
                                      c->status) < 0)
                return c->status->code;
    return 0;
}

/* PstGatherGrad(dy, indices, params, axis): scatter-add of dy into zeros shaped like params. */
static int gather_grad_kernel(pst_kernel_ctx *c) {
    const pst_tensor *dy = c->inputs[0], *idx = c->inputs[1], *p = c->inputs[2];
    int64_t a = pst_tensor_get_i64(c->inputs[3], 0);
    if (a < 0) a += p->shape.rank;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, dy->dtype, p->shape);
    if (o == NULL) return c->status->code;
    memset(o->data, 0, o->nbytes);
    int64_t outer = 1, inner = 1, rows = p->shape.dims[a];
    for (int d = 0; d < a; d++) outer *= p->shape.dims[d];
    for (int d = (int)a + 1; d < p->shape.rank; d++) inner *= p->shape.dims[d];
    for (int64_t k = 0; k < outer; k++)
        for (int64_t i = 0; i < idx->n; i++) {
            int64_t r = pst_tensor_get_i64(idx, i);
            int64_t dst = (k * rows + r) * inner, src = (k * idx->n + i) * inner;
            if (dy->dtype == PST_FLOAT) {
                float *d = pst_tensor_f32(o) + dst;
                const float *s = pst_tensor_f32(dy) + src;
                for (int64_t j = 0; j < inner; j++) d[j] += s[j];
            } else {
                for (int64_t j = 0; j < inner; j++)
                    pst_tensor_set_f64(o, dst + j, pst_tensor_get_f64(o, dst + j) +
                                                       pst_tensor_get_f64(dy, src + j));
            }
        }
    return 0;
}

static int gather_grad_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 2));
    return 0;
}

static int gather_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node_builder *b = pst_nb_new(g, "PstGatherGrad", NULL);
    pst_nb_input(b, dy[0]);
    pst_nb_input(b, n->inputs[1]);
    pst_nb_input(b, n->inputs[0]);
    pst_nb_input(b, n->n_inputs > 2 ? n->inputs[2] : pst_const_i32(g, 0, NULL));
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

static int one_hot_shape(pst_node *n, pst_status *st) {
    pst_shape in = pst_node_in_shape(n, 0), out = pst_shape_unknown();
    const pst_tensor *depth = pst_node_in_const(n, 1);
    int64_t axis = pst_node_attr_i(n, "axis", -1);
    if (!pst_dtype_is_int(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "indices must be integers");
    if (in.rank >= 0 && depth) {
        if (expand_shape_of(&in, axis, &out, st) < 0) return PST_E_INVALID;
        out.dims[axis < 0 ? axis + in.rank + 1 : axis] = pst_tensor_get_i64(depth, 0);
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 2), out);
    return 0;
}

static int one_hot_kernel(pst_kernel_ctx *c) {
    const pst_tensor *idx = c->inputs[0];
    int64_t depth = pst_tensor_get_i64(c->inputs[1], 0);
    double on = pst_tensor_get_f64(c->inputs[2], 0), off = pst_tensor_get_f64(c->inputs[3], 0);
    int64_t axis = pst_kctx_attr_i(c, "axis", -1);
    if (depth < 0) return pst_kctx_error(c, PST_E_INVALID, "depth must be >= 0");
    pst_shape os;
    if (expand_shape_of(&idx->shape, axis, &os, c->status) < 0) return c->status->code;
    if (axis < 0) axis += idx->shape.rank + 1;
    os.dims[axis] = depth;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->inputs[2]->dtype, os);
    if (o == NULL) return c->status->code;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= os.dims[d];
    for (int d = (int)axis + 1; d < os.rank; d++) inner *= os.dims[d];
    for (int64_t k = 0; k < outer; k++)
        for (int64_t j = 0; j < depth; j++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t v = pst_tensor_get_i64(idx, k * inner + i);
                pst_tensor_set_f64(o, (k * depth + j) * inner + i, v == j ? on : off);
            }
    return 0;
}

static int fill_shape(pst_node *n, pst_status *st) {
    const pst_tensor *dims = pst_node_in_const(n, 0);
    pst_shape out = pst_shape_unknown();
    if (dims) {
        if (dims->n > PST_MAX_RANK) return pst_status_set(st, PST_E_INVALID, "too many dims");
        out.rank = (int)dims->n;
        for (int d = 0; d < out.rank; d++) out.dims[d] = pst_tensor_get_i64(dims, d);
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 1), out);
    return 0;
}

static int fill_kernel(pst_kernel_ctx *c) {
    const pst_tensor *dims = c->inputs[0], *v = c->inputs[1];
    if (dims->n > PST_MAX_RANK) return pst_kctx_error(c, PST_E_INVALID, "too many dims");
    pst_shape s = {.rank = (int)dims->n};
    for (int d = 0; d < s.rank; d++) {
        s.dims[d] = pst_tensor_get_i64(dims, d);
        if (s.dims[d] < 0) return pst_kctx_error(c, PST_E_INVALID, "dim %d is negative", d);
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, v->dtype, s);
    if (o == NULL) return c->status->code;
    size_t es = pst_dtype_size(v->dtype);
    for (int64_t i = 0; i < o->n; i++) memcpy((char *)o->data + (size_t)i * es, v->data, es);
    return 0;
}

static int range_shape(pst_node *n, pst_status *st) {
    (void)st;
    const pst_tensor *a = pst_node_in_const(n, 0), *b = pst_node_in_const(n, 1),
                     *d = pst_node_in_const(n, 2);
    int64_t len = -1;
    if (a && b && d) {
        double s = pst_tensor_get_f64(a, 0), l = pst_tensor_get_f64(b, 0), k = pst_tensor_get_f64(d, 0);
        if (k != 0) len = (int64_t)ceil((l - s) / k);
        if (len < 0) len = 0;
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_shape_1d(len));
    return 0;
}

static int range_kernel(pst_kernel_ctx *c) {
    double s = pst_tensor_get_f64(c->inputs[0], 0), l = pst_tensor_get_f64(c->inputs[1], 0),
           k = pst_tensor_get_f64(c->inputs[2], 0);
    if (k == 0) return pst_kctx_error(c, PST_E_INVALID, "delta must not be 0");
    int64_t len = (int64_t)ceil((l - s) / k);
    if (len < 0) len = 0;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->inputs[0]->dtype, pst_shape_1d(len));
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < len; i++) pst_tensor_set_f64(o, i, s + (double)i * k);
    return 0;
}

/* ---- Registration -------------------------------------------------------------------------- */

static const pst_attr_spec shape_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"out_type", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec squeeze_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                              {"squeeze_dims", PST_ATTR_LIST_INT, 0}, {0}};
static const pst_attr_spec split_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"num_split", PST_ATTR_INT, 1}, {0}};
static const pst_attr_spec ss_attrs[] = {{"T", PST_ATTR_TYPE, 0},          {"Index", PST_ATTR_TYPE, 0},
                                         {"begin_mask", PST_ATTR_INT, 0},  {"end_mask", PST_ATTR_INT, 0},
                                         {"ellipsis_mask", PST_ATTR_INT, 0}, {"new_axis_mask", PST_ATTR_INT, 0},
                                         {"shrink_axis_mask", PST_ATTR_INT, 0}, {0}};
static const pst_attr_spec pack_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"N", PST_ATTR_INT, 0},
                                           {"axis", PST_ATTR_INT, 0}, {"num", PST_ATTR_INT, 0}, {0}};
static const pst_attr_spec gather_attrs[] = {{"Tparams", PST_ATTR_TYPE, 0}, {"Tindices", PST_ATTR_TYPE, 0},
                                             {"Taxis", PST_ATTR_TYPE, 0}, {"batch_dims", PST_ATTR_INT, 0},
                                             {"validate_indices", PST_ATTR_BOOL, 0}, {0}};
static const pst_attr_spec onehot_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"TI", PST_ATTR_TYPE, 0},
                                             {"axis", PST_ATTR_INT, 0}, {0}};
static const pst_attr_spec range_attrs[] = {{"Tidx", PST_ATTR_TYPE, 0}, {0}};

#define OP(nm, mn, mx, no, at, sh, k, gr, fl)                                                     \
    {.name = nm, .min_inputs = mn, .max_inputs = mx, .n_outputs = no, .attrs = at, .shape = sh,   \
     .kernel = k, .grad = gr, .flags = fl}
static const pst_op_def array_ops[] = {
    OP("Reshape", 2, 2, 1, t_attrs, reshape_shape, reshape_kernel, like_x_grad, PST_OP_STRINGS),
    OP("Shape", 1, 1, 1, shape_attrs, shape_shape, shape_kernel, NULL,
       PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS),
    OP("Size", 1, 1, 1, shape_attrs, shape_shape, shape_kernel, NULL,
       PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS),
    OP("ExpandDims", 2, 2, 1, t_attrs, expand_dims_shape, expand_dims_kernel, like_x_grad,
       PST_OP_STRINGS),
    OP("Squeeze", 1, 1, 1, squeeze_attrs, squeeze_shape, squeeze_kernel, like_x_grad,
       PST_OP_STRINGS),
    OP("Transpose", 2, 2, 1, t_attrs, transpose_shape, transpose_kernel, transpose_grad, 0),
    OP("ConcatV2", 2, -1, 1, t_attrs, concat_shape, concat_kernel, concat_grad, 0),
    OP("Concat", 2, -1, 1, t_attrs, concat_v1_shape, concat_v1_kernel, NULL, 0),
    OP("Split", 2, 2, -1, split_attrs, split_shape, split_kernel, split_grad, 0),
    OP("Slice", 3, 3, 1, t_attrs, slice_shape, slice_kernel, slice_grad, 0),
    OP("PstSliceGrad", 3, 3, 1, NULL, like_input1_shape, slice_grad_kernel, NULL, 0),
    OP("Pad", 2, 2, 1, t_attrs, pad_shape, pad_kernel, pad_grad, 0),
    OP("Tile", 2, 2, 1, t_attrs, tile_shape, tile_kernel, tile_grad, 0),
    OP("PstTileGrad", 2, 2, 1, NULL, like_input1_shape, tile_grad_kernel, NULL, 0),
    OP("Pack", 1, -1, 1, pack_attrs, pack_shape, pack_kernel, pack_grad, PST_OP_STRINGS),
    OP("Unpack", 1, 1, -1, pack_attrs, unpack_shape, unpack_kernel, unpack_grad, 0),
    OP("GatherV2", 3, 3, 1, gather_attrs, gather_shape, gather_kernel, gather_grad, PST_OP_STRINGS),
    OP("Gather", 2, 2, 1, gather_attrs, gather_shape, gather_kernel, gather_grad, PST_OP_STRINGS),
    OP("PstGatherGrad", 4, 4, 1, NULL, gather_grad_shape, gather_grad_kernel, NULL, 0),
    OP("OneHot", 4, 4, 1, onehot_attrs, one_hot_shape, one_hot_kernel, NULL, PST_OP_NOT_DIFFERENTIABLE),
    OP("Fill", 2, 2, 1, t_attrs, fill_shape, fill_kernel, NULL, PST_OP_NOT_DIFFERENTIABLE),
    OP("Range", 3, 3, 1, range_attrs, range_shape, range_kernel, NULL, PST_OP_NOT_DIFFERENTIABLE),
};

/* PstStridedSliceGrad(dy, x, begin, end, strides): what graphs exported by earlier versions
 * hold; kept so they still load. */
static int ss_grad_kernel(pst_kernel_ctx *c) {
    const pst_tensor *dy = c->inputs[0], *x = c->inputs[1];
    ss_spec sp;
    if (ss_spec_of(c, &x->shape, 2, &sp) < 0) return c->status->code;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, dy->dtype, x->shape);
    if (o == NULL) return c->status->code;
    memset(o->data, 0, o->nbytes);
    ss_copy(&x->shape, &sp, o->data, dy->data, pst_dtype_size(dy->dtype), 1);
    return 0;
}

/* StridedSliceGrad(shape, begin, end, strides, dy), TensorFlow's op: zeros of `shape` with dy
 * written where StridedSlice read. */
static int tf_ss_grad_kernel(pst_kernel_ctx *c) {
    const pst_tensor *s = c->inputs[0], *dy = c->inputs[4];
    if (s->shape.rank != 1 || s->n > PST_MAX_RANK)
        return pst_kctx_error(c, PST_E_INVALID, "shape must be a vector of at most %d dims",
                              PST_MAX_RANK);
    pst_shape xs = {.rank = (int)s->n};
    for (int d = 0; d < xs.rank; d++) xs.dims[d] = pst_tensor_get_i64(s, d);
    ss_spec sp;
    if (ss_spec_of(c, &xs, 1, &sp) < 0) return c->status->code;
    int64_t n = 1;
    for (int d = 0; d < sp.out.rank; d++) n *= sp.out.dims[d];
    if (n != dy->n)
        return pst_kctx_error(c, PST_E_INVALID, "the gradient has %lld elements, the slice %lld",
                              (long long)dy->n, (long long)n);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, dy->dtype, xs);
    if (o == NULL) return c->status->code;
    memset(o->data, 0, o->nbytes);
    ss_copy(&xs, &sp, o->data, dy->data, pst_dtype_size(dy->dtype), 1);
    return 0;
}

static int tf_ss_grad_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape out = pst_shape_unknown();
    const pst_tensor *s = pst_node_in_const(n, 0);
    if (s && s->shape.rank == 1 && s->n <= PST_MAX_RANK) {
        out.rank = (int)s->n;
        for (int d = 0; d < out.rank; d++) out.dims[d] = pst_tensor_get_i64(s, d);
    } else if (strcmp(n->inputs[0].node->op->name, "Shape") == 0) {
        out = pst_node_in_shape(n->inputs[0].node, 0);
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 4), out);
    return 0;
}

/* StridedSlice's gradient as TensorFlow builds it. */
static int ss_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output x = n->inputs[0];
    pst_shape sx = pst_output_shape(x);
    pst_dtype it = pst_output_dtype(n->inputs[1]);
    pst_output shape;
    if (pst_shape_is_known(&sx) && it == PST_INT64) {
        shape = pst_const_i64_vec(g, sx.rank, sx.dims, "shape");
    } else if (pst_shape_is_known(&sx)) {
        int32_t v[PST_MAX_RANK];
        for (int d = 0; d < sx.rank; d++) v[d] = (int32_t)sx.dims[d];
        shape = pst_const_i32_vec(g, sx.rank, v, "shape");
    } else {
        shape = pst_shape_of(g, x, it, NULL);
    }
    pst_node_builder *b = pst_nb_new(g, "StridedSliceGrad", NULL);
    pst_nb_input(b, shape);
    for (int i = 1; i < 4; i++) pst_nb_input(b, n->inputs[i]);
    pst_nb_input(b, dy[0]);
    pst_nb_attr_type(b, "T", pst_output_dtype(dy[0]));
    pst_nb_attr_type(b, "Index", it);
    static const char *masks[] = {"begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask",
                                  "shrink_axis_mask"};
    for (int i = 0; i < 5; i++) pst_nb_attr_i(b, masks[i], pst_node_attr_i(n, masks[i], 0));
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

static const pst_attr_spec ss_assign_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                                {"Index", PST_ATTR_TYPE, 0},
                                                {"begin_mask", PST_ATTR_INT, 0},
                                                {"end_mask", PST_ATTR_INT, 0},
                                                {"ellipsis_mask", PST_ATTR_INT, 0},
                                                {"new_axis_mask", PST_ATTR_INT, 0},
                                                {"shrink_axis_mask", PST_ATTR_INT, 0},
                                                {0}};
static const pst_op_def ss_assign_op = {.name = "StridedSliceAssign", .min_inputs = 5, .max_inputs = 5,
                                        .n_outputs = 1, .attrs = ss_assign_attrs, .shape = ss_assign_shape,
                                        .kernel = ss_assign_kernel,
                                        .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | PST_OP_REF_OUTPUT,
                                        .ref_mask = 0x1};
static const pst_op_def res_ss_assign_op = {.name = "ResourceStridedSliceAssign", .min_inputs = 5,
                                            .max_inputs = 5, .n_outputs = 0, .attrs = ss_assign_attrs,
                                            .shape = ss_assign_shape, .kernel = ss_assign_kernel,
                                            .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE,
                                            .ref_mask = 0x1};
static const pst_op_def strided_slice_op = OP("StridedSlice", 4, 4, 1, ss_attrs, strided_slice_shape,
                                              strided_slice_kernel, ss_grad, 0);
static const pst_op_def ss_grad_op = OP("PstStridedSliceGrad", 5, 5, 1, ss_attrs, like_input1_shape,
                                        ss_grad_kernel, NULL, 0);
static const pst_op_def tf_ss_grad_op = OP("StridedSliceGrad", 5, 5, 1, ss_attrs, tf_ss_grad_shape,
                                           tf_ss_grad_kernel, NULL, 0);

void pst__register_array_ops(void) {
    pst_op_register(&strided_slice_op);
    pst_op_register(&ss_assign_op);
    pst_op_register(&res_ss_assign_op);
    pst_op_register(&ss_grad_op);
    pst_op_register(&tf_ss_grad_op);
    for (size_t i = 0; i < sizeof array_ops / sizeof array_ops[0]; i++)
        pst_op_register(&array_ops[i]);
}

/* ---- Builders ------------------------------------------------------------------------------ */

/* Ops of a tensor and an integer argument; the argument's dtype goes in the attr TensorFlow
 * names for it (its default is int32, so an int64 shape without it would not load there). */
static pst_output two(pst_graph *g, const char *op, pst_output a, pst_output b, const char *name) {
    static const char *const index_attr[][2] = {{"Reshape", "Tshape"},   {"ExpandDims", "Tdim"},
                                                {"Transpose", "Tperm"},  {"Pad", "Tpaddings"},
                                                {"Tile", "Tmultiples"}};
    pst_node_builder *nb = pst_nb_new(g, op, name);
    pst_nb_input(nb, a);
    pst_nb_input(nb, b);
    if (a.node) pst_nb_attr_type(nb, "T", pst_output_dtype(a));
    for (size_t i = 0; i < sizeof index_attr / sizeof index_attr[0]; i++)
        if (b.node && strcmp(op, index_attr[i][0]) == 0)
            pst_nb_attr_type(nb, index_attr[i][1], pst_output_dtype(b));
    return pst_nb_finish_out(nb);
}

pst_output pst_reshape(pst_graph *g, pst_output x, int n, const int64_t *dims, const char *name) {
    return pst_reshape_t(g, x, const_i64_vec(g, n, dims, "shape"), name);
}
pst_output pst_reshape_t(pst_graph *g, pst_output x, pst_output shape, const char *name) {
    return two(g, "Reshape", x, shape, name);
}
static pst_output shape_like(pst_graph *g, const char *op, pst_output x, pst_dtype ot,
                             const char *name) {
    pst_node_builder *nb = pst_nb_new(g, op, name);
    pst_nb_input(nb, x);
    if (x.node) pst_nb_attr_type(nb, "T", pst_output_dtype(x));
    pst_nb_attr_type(nb, "out_type", ot);
    return pst_nb_finish_out(nb);
}
pst_output pst_shape_of(pst_graph *g, pst_output x, pst_dtype ot, const char *name) {
    return shape_like(g, "Shape", x, ot, name);
}
pst_output pst_size_of(pst_graph *g, pst_output x, pst_dtype ot, const char *name) {
    return shape_like(g, "Size", x, ot, name);
}
pst_output pst_squeeze(pst_graph *g, pst_output x, int n, const int32_t *axes, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "Squeeze", name);
    pst_nb_input(nb, x);
    if (x.node) pst_nb_attr_type(nb, "T", pst_output_dtype(x));
    int64_t a[PST_MAX_RANK];
    for (int i = 0; i < n && i < PST_MAX_RANK; i++) a[i] = axes[i];
    pst_nb_attr_list_i(nb, "squeeze_dims", n, a);
    return pst_nb_finish_out(nb);
}
pst_output pst_expand_dims(pst_graph *g, pst_output x, int axis, const char *name) {
    return two(g, "ExpandDims", x, pst_const_i32(g, axis, "dim"), name);
}
pst_output pst_transpose(pst_graph *g, pst_output x, int n, const int32_t *perm, const char *name) {
    return two(g, "Transpose", x, pst_const_i32_vec(g, n, perm, "perm"), name);
}
pst_output pst_concat(pst_graph *g, int n, const pst_output *xs, int axis, const char *name) {
    pst_output ax = pst_const_i32(g, axis, "axis");
    pst_node_builder *nb = pst_nb_new(g, "ConcatV2", name);
    pst_nb_inputs(nb, n, xs);
    pst_nb_input(nb, ax);
    if (n > 0 && xs[0].node) pst_nb_attr_type(nb, "T", pst_output_dtype(xs[0]));
    pst_nb_attr_i(nb, "N", n);
    return pst_nb_finish_out(nb);
}
pst_node *pst_split(pst_graph *g, pst_output x, int axis, int num, pst_output *outs,
                    const char *name) {
    pst_output ax = pst_const_i32(g, axis, "split_dim");
    pst_node_builder *nb = pst_nb_new(g, "Split", name);
    pst_nb_input(nb, ax);
    pst_nb_input(nb, x);
    if (x.node) pst_nb_attr_type(nb, "T", pst_output_dtype(x));
    pst_nb_attr_i(nb, "num_split", num);
    pst_node *n = pst_nb_finish(nb);
    for (int i = 0; i < num; i++) outs[i] = pst_out(n, i);
    return n;
}
pst_output pst_slice(pst_graph *g, pst_output x, int n, const int64_t *begin, const int64_t *size,
                     const char *name) {
    pst_output b = const_i64_vec(g, n, begin, "begin"), s = const_i64_vec(g, n, size, "size");
    pst_node_builder *nb = pst_nb_new(g, "Slice", name);
    pst_nb_input(nb, x);
    pst_nb_input(nb, b);
    pst_nb_input(nb, s);
    if (x.node) pst_nb_attr_type(nb, "T", pst_output_dtype(x));
    pst_nb_attr_type(nb, "Index", PST_INT32); /* begin and size are int32 */
    return pst_nb_finish_out(nb);
}
pst_output pst_strided_slice(pst_graph *g, pst_output x, int n, const int64_t *begin,
                             const int64_t *end, const int64_t *strides, int begin_mask,
                             int end_mask, int shrink_axis_mask, const char *name) {
    pst_output b = const_i64_vec(g, n, begin, "stack"), e = const_i64_vec(g, n, end, "stack_1"),
               s = const_i64_vec(g, n, strides, "stack_2");
    pst_node_builder *nb = pst_nb_new(g, "StridedSlice", name);
    pst_nb_input(nb, x);
    pst_nb_input(nb, b);
    pst_nb_input(nb, e);
    pst_nb_input(nb, s);
    if (x.node) pst_nb_attr_type(nb, "T", pst_output_dtype(x));
    pst_nb_attr_type(nb, "Index", PST_INT32);
    pst_nb_attr_i(nb, "begin_mask", begin_mask);
    pst_nb_attr_i(nb, "end_mask", end_mask);
    pst_nb_attr_i(nb, "shrink_axis_mask", shrink_axis_mask);
    pst_nb_attr_i(nb, "ellipsis_mask", 0);
    pst_nb_attr_i(nb, "new_axis_mask", 0);
    return pst_nb_finish_out(nb);
}
pst_output pst_pad(pst_graph *g, pst_output x, int n, const int64_t *paddings, const char *name) {
    int32_t p[PST_MAX_RANK * 2];
    for (int i = 0; i < 2 * n; i++) p[i] = (int32_t)paddings[i];
    pst_tensor *t = pst_tensor_from_i32(pst_shape_2d(n, 2), p);
    pst_output pc = pst_const(g, t, "paddings");
    pst_tensor_unref(t);
    return two(g, "Pad", x, pc, name);
}
pst_output pst_tile(pst_graph *g, pst_output x, int n, const int64_t *multiples, const char *name) {
    return two(g, "Tile", x, const_i64_vec(g, n, multiples, "multiples"), name);
}
pst_output pst_tile_t(pst_graph *g, pst_output x, pst_output multiples, const char *name) {
    return two(g, "Tile", x, multiples, name);
}
pst_output pst_stack(pst_graph *g, int n, const pst_output *xs, int axis, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "Pack", name);
    pst_nb_inputs(nb, n, xs);
    if (n > 0 && xs[0].node) pst_nb_attr_type(nb, "T", pst_output_dtype(xs[0]));
    pst_nb_attr_i(nb, "N", n);
    pst_nb_attr_i(nb, "axis", axis);
    return pst_nb_finish_out(nb);
}
pst_node *pst_unstack(pst_graph *g, pst_output x, int num, int axis, pst_output *outs,
                      const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "Unpack", name);
    pst_nb_input(nb, x);
    if (x.node) pst_nb_attr_type(nb, "T", pst_output_dtype(x));
    pst_nb_attr_i(nb, "num", num);
    pst_nb_attr_i(nb, "axis", axis);
    pst_node *n = pst_nb_finish(nb);
    for (int i = 0; i < num; i++) outs[i] = pst_out(n, i);
    return n;
}
pst_output pst_gather(pst_graph *g, pst_output params, pst_output indices, int axis,
                      const char *name) {
    pst_output ax = pst_const_i32(g, axis, "axis");
    pst_node_builder *nb = pst_nb_new(g, "GatherV2", name);
    pst_nb_input(nb, params);
    pst_nb_input(nb, indices);
    pst_nb_input(nb, ax);
    if (params.node) pst_nb_attr_type(nb, "Tparams", pst_output_dtype(params));
    if (indices.node) pst_nb_attr_type(nb, "Tindices", pst_output_dtype(indices));
    pst_nb_attr_type(nb, "Taxis", PST_INT32);
    return pst_nb_finish_out(nb);
}
pst_output pst_one_hot(pst_graph *g, pst_output indices, int depth, float on, float off, int axis,
                       const char *name) {
    pst_output d = pst_const_i32(g, depth, "depth"), a = pst_const_f32(g, on, "on_value"),
               b = pst_const_f32(g, off, "off_value");
    pst_node_builder *nb = pst_nb_new(g, "OneHot", name);
    pst_nb_input(nb, indices);
    pst_nb_input(nb, d);
    pst_nb_input(nb, a);
    pst_nb_input(nb, b);
    pst_nb_attr_type(nb, "T", PST_FLOAT);
    if (indices.node) pst_nb_attr_type(nb, "TI", pst_output_dtype(indices));
    pst_nb_attr_i(nb, "axis", axis);
    return pst_nb_finish_out(nb);
}
pst_output pst_fill(pst_graph *g, int n, const int64_t *dims, pst_output value, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "Fill", name);
    pst_nb_input(nb, const_i64_vec(g, n, dims, "dims"));
    pst_nb_input(nb, value);
    if (value.node) pst_nb_attr_type(nb, "T", pst_output_dtype(value));
    return pst_nb_finish_out(nb);
}
pst_output pst_range(pst_graph *g, pst_output start, pst_output limit, pst_output delta,
                     const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "Range", name);
    pst_nb_input(nb, start);
    pst_nb_input(nb, limit);
    pst_nb_input(nb, delta);
    if (start.node) pst_nb_attr_type(nb, "Tidx", pst_output_dtype(start));
    return pst_nb_finish_out(nb);
}
