/* Scatters and ND scatters of TF 1.x graphs (issue 17), TF 1.15's semantics:
 *   ScatterMul/Div/Min/Max(ref, indices, updates) and the ResourceScatter* forms: rows
 *     indices of the variable combined with updates (shaped indices.shape + var.shape[1:], or a
 *     scalar); repeated indices apply one after the other.
 *   ScatterNdUpdate/Add/Sub(ref, indices, updates), ResourceScatterNdUpdate/Add/Sub: indices
 *     [..., K] name slices var[i0, .., iK-1] of shape var.shape[K:]; updates must be
 *     indices.shape[:-1] + var.shape[K:].
 *   ScatterNdNonAliasingAdd, TensorScatterUpdate/Add/Sub(tensor, indices, updates): the same
 *     on a copy of a value, with array_grad.py's gradients.
 *   ResourceGatherNd(resource, indices): GatherNd of the variable's value.
 * An index out of range, updates of the wrong shape and an integer division by zero are errors
 * naming the node (and the variable). */
#include <stdio.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "varstore.h"

enum { S_UPDATE, S_ADD, S_SUB, S_MUL, S_DIV, S_MIN, S_MAX };

typedef struct scat_op {
    pst_op_def def;
    int mode;
} scat_op;

static int mode_of(const pst_op_def *op) { return ((const scat_op *)op)->mode; }

/* t[at] = t[at] (mode) u[ui]; -1 for an integer division by zero. */
static int combine(pst_tensor *t, int64_t at, const pst_tensor *u, int64_t ui, int mode) {
    if (mode == S_UPDATE) return pst_tensor_copy_elems(t, at, u, ui, 1, NULL) < 0 ? -1 : 0;
    if (t->dtype == PST_INT64 || t->dtype == PST_INT32 || t->dtype == PST_UINT8) {
        int64_t x = pst_tensor_get_i64(t, at), y = pst_tensor_get_i64(u, ui), r;
        switch (mode) {
        case S_ADD: r = (int64_t)((uint64_t)x + (uint64_t)y); break;
        case S_SUB: r = (int64_t)((uint64_t)x - (uint64_t)y); break;
        case S_MUL: r = (int64_t)((uint64_t)x * (uint64_t)y); break;
        case S_DIV:
            if (y == 0) return -1;
            r = y == -1 ? (int64_t)(0 - (uint64_t)x) : x / y;
            break;
        case S_MIN: r = x < y ? x : y; break;
        default: r = x > y ? x : y; break;
        }
        if (t->dtype == PST_INT64)
            pst_tensor_i64(t)[at] = r;
        else if (t->dtype == PST_INT32)
            pst_tensor_i32(t)[at] = (int32_t)(uint32_t)(uint64_t)r;
        else
            pst_tensor_u8(t)[at] = (uint8_t)(uint64_t)r;
        return 0;
    }
    double x = pst_tensor_get_f64(t, at), y = pst_tensor_get_f64(u, ui), r;
    switch (mode) {
    case S_ADD: r = x + y; break;
    case S_SUB: r = x - y; break;
    case S_MUL: r = x * y; break;
    case S_DIV: r = x / y; break;
    case S_MIN: r = x < y ? x : y; break;
    default: r = x > y ? x : y; break;
    }
    if (t->dtype == PST_FLOAT)
        pst_tensor_f32(t)[at] = (float)r;
    else
        pst_tensor_set_f64(t, at, r);
    return 0;
}

static int div_by_zero(pst_kernel_ctx *c, const char *var) {
    return pst_kctx_error(c, PST_E_INVALID, "integer division by zero updating '%s'", var);
}

/* ---- Row scatters ---------------------------------------------------------------------- */
static int row_scatter(pst_kernel_ctx *c, pst_tensor *t, const char *var) {
    const pst_tensor *idx = c->inputs[1], *u = c->inputs[2];
    char st_[128], su[128];
    if (t->shape.rank < 1) return pst_kctx_error(c, PST_E_INVALID, "variable '%s' is a scalar; it has no rows", var);
    int64_t rows = t->shape.dims[0], row = rows ? t->n / rows : 0;
    int ok = u->dtype == t->dtype && (u->shape.rank == 0 || u->shape.rank == idx->shape.rank + t->shape.rank - 1);
    for (int d = 0; ok && u->shape.rank && d < idx->shape.rank; d++) ok = u->shape.dims[d] == idx->shape.dims[d];
    for (int d = 1; ok && u->shape.rank && d < t->shape.rank; d++) ok = u->shape.dims[idx->shape.rank + d - 1] == t->shape.dims[d];
    if (!ok)
        return pst_kctx_error(c, PST_E_INVALID, "updates %s %s do not fit %lld rows of variable '%s' %s %s",
                              pst_dtype_name(u->dtype), pst_shape_str(&u->shape, su, sizeof su), (long long)idx->n,
                              var, pst_dtype_name(t->dtype), pst_shape_str(&t->shape, st_, sizeof st_));
    for (int64_t k = 0; k < idx->n; k++) {
        int64_t r = pst_tensor_get_i64(idx, k);
        if (r < 0 || r >= rows)
            return pst_kctx_error(c, PST_E_INVALID, "index %lld (at %lld) is not in [0, %lld) for variable '%s'",
                                  (long long)r, (long long)k, (long long)rows, var);
    }
    int mode = mode_of(c->op);
    for (int64_t k = 0; k < idx->n; k++) {
        int64_t r = pst_tensor_get_i64(idx, k);
        for (int64_t j = 0; j < row; j++)
            if (combine(t, r * row + j, u, u->shape.rank ? k * row + j : 0, mode) < 0) return div_by_zero(c, var);
    }
    return 0;
}

/* ---- ND scatters ----------------------------------------------------------------------- */
/* Checks indices [..., K] and updates against t; *slice = elements per slice. */
static int nd_check(pst_kernel_ctx *c, const pst_tensor *t, const pst_tensor *idx, const pst_tensor *u,
                    const char *what, int64_t *slice, int64_t *K) {
    char a[128], b[128], e[128];
    if (idx->shape.rank < 1 || idx->shape.dims[idx->shape.rank - 1] > t->shape.rank)
        return pst_kctx_error(c, PST_E_INVALID, "indices %s: the last dim must be at most the rank %d of %s",
                              pst_shape_str(&idx->shape, a, sizeof a), t->shape.rank, what);
    *K = idx->shape.dims[idx->shape.rank - 1];
    *slice = 1;
    for (int d = (int)*K; d < t->shape.rank; d++) *slice *= t->shape.dims[d];
    if (u == NULL) return 0;
    int ok = u->dtype == t->dtype && u->shape.rank == idx->shape.rank - 1 + t->shape.rank - (int)*K;
    for (int d = 0; ok && d < idx->shape.rank - 1; d++) ok = u->shape.dims[d] == idx->shape.dims[d];
    for (int d = (int)*K; ok && d < t->shape.rank; d++) ok = u->shape.dims[idx->shape.rank - 1 + d - *K] == t->shape.dims[d];
    if (!ok)
        return pst_kctx_error(c, PST_E_INVALID, "updates %s %s must be indices.shape[:-1] + shape[K:] for indices %s "
                              "and %s %s %s", pst_dtype_name(u->dtype), pst_shape_str(&u->shape, b, sizeof b),
                              pst_shape_str(&idx->shape, a, sizeof a), what, pst_dtype_name(t->dtype),
                              pst_shape_str(&t->shape, e, sizeof e));
    return 0;
}

/* The flat offset of index tuple k, or -1 (error set) when out of range. */
static int64_t nd_offset(pst_kernel_ctx *c, const pst_tensor *t, const pst_tensor *idx, int64_t k, int64_t K,
                         int64_t slice, const char *what) {
    int64_t off = 0;
    for (int64_t j = 0; j < K; j++) {
        int64_t i = pst_tensor_get_i64(idx, k * K + j);
        if (i < 0 || i >= t->shape.dims[j]) {
            pst_kctx_error(c, PST_E_INVALID, "indices[%lld] component %lld = %lld does not index into %s (dim %lld)",
                           (long long)k, (long long)j, (long long)i, what, (long long)t->shape.dims[j]);
            return -1;
        }
        off = off * t->shape.dims[j] + i;
    }
    return off * slice;
}

static int nd_scatter(pst_kernel_ctx *c, pst_tensor *t, const char *what) {
    const pst_tensor *idx = c->inputs[1], *u = c->inputs[2];
    int64_t slice = 0, K = 0;
    if (nd_check(c, t, idx, u, what, &slice, &K) < 0) return c->status->code;
    int64_t n = 1; /* index tuples */
    for (int d = 0; d < idx->shape.rank - 1; d++) n *= idx->shape.dims[d];
    for (int64_t k = 0; k < n; k++) /* all indices first: no partial update */
        if (nd_offset(c, t, idx, k, K, slice, what) < 0) return c->status->code;
    int mode = mode_of(c->op);
    for (int64_t k = 0; k < n; k++) {
        int64_t off = nd_offset(c, t, idx, k, K, slice, what);
        for (int64_t j = 0; j < slice; j++)
            if (combine(t, off + j, u, k * slice + j, mode) < 0) return div_by_zero(c, what);
    }
    return 0;
}

/* ---- Kernels on variables (ref or resource) and on values ------------------------------ */
static int on_var(pst_kernel_ctx *c, int nd, int ref_out) {
    pst_var *v = c->input_vars[0];
    pst_tensor *t = pst_var_begin_update(v, c->status);
    if (t == NULL) return c->status->code;
    char what[160];
    snprintf(what, sizeof what, "variable '%s'", v->name);
    int rc = nd ? nd_scatter(c, t, what) : row_scatter(c, t, v->name);
    pst_var_end_update(v);
    if (rc == 0 && ref_out) {
        pst_kctx_set_output(c, 0, pst_var_read(v));
        c->output_vars[0] = v;
    }
    return rc;
}
static int ref_row_kernel(pst_kernel_ctx *c) { return on_var(c, 0, 1); }
static int res_row_kernel(pst_kernel_ctx *c) { return on_var(c, 0, 0); }
static int ref_nd_kernel(pst_kernel_ctx *c) { return on_var(c, 1, 1); }
static int res_nd_kernel(pst_kernel_ctx *c) { return on_var(c, 1, 0); }

static int value_nd_kernel(pst_kernel_ctx *c) {
    pst_tensor *o = pst_tensor_clone(c->inputs[0], c->status);
    if (o == NULL) return c->status->code;
    if (nd_scatter(c, o, "the input") < 0) {
        pst_tensor_unref(o);
        return c->status->code;
    }
    pst_kctx_set_output(c, 0, o);
    return 0;
}

/* ResourceGatherNd(resource, indices). */
static int gather_nd_kernel(pst_kernel_ctx *c) {
    pst_var *v = c->input_vars[0];
    const pst_tensor *idx = c->inputs[1];
    pst_tensor *t = pst_var_read(v);
    if (t == NULL) return pst_var_uninit_error(v->name, c->status);
    char what[160];
    snprintf(what, sizeof what, "variable '%s'", v->name);
    int64_t slice = 0, K = 0;
    int rc = nd_check(c, t, idx, NULL, what, &slice, &K);
    pst_shape os = {.rank = idx->shape.rank - 1 + t->shape.rank - (int)K};
    if (rc == 0 && os.rank > PST_MAX_RANK) rc = pst_kctx_error(c, PST_E_INVALID, "the result's rank exceeds %d", PST_MAX_RANK);
    pst_tensor *o = NULL;
    if (rc == 0) {
        for (int d = 0; d < idx->shape.rank - 1; d++) os.dims[d] = idx->shape.dims[d];
        for (int d = (int)K; d < t->shape.rank; d++) os.dims[idx->shape.rank - 1 + d - K] = t->shape.dims[d];
        o = pst_kctx_alloc_output(c, 0, t->dtype, os);
        if (o == NULL) rc = c->status->code;
    }
    int64_t n = slice ? (o ? o->n / slice : 0) : 0;
    for (int64_t k = 0; rc == 0 && k < n; k++) {
        int64_t off = nd_offset(c, t, idx, k, K, slice, what);
        rc = off < 0 ? c->status->code : pst_tensor_copy_elems(o, k * slice, t, off, slice, c->status);
    }
    pst_tensor_unref(t);
    return rc;
}

/* ---- Shape functions ------------------------------------------------------------------- */
static int check_upd(pst_node *n, pst_status *st) {
    pst_dtype t = pst_node_in_dtype(n, 0), u = pst_node_in_dtype(n, 2), it = pst_node_in_dtype(n, 1);
    if (it != PST_INT32 && it != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "indices must be int32 or int64, got %s", pst_dtype_name(it));
    if (t != u)
        return pst_status_set(st, PST_E_INVALID, "'%s' is %s, the updates %s", n->inputs[0].node->name,
                              pst_dtype_name(t), pst_dtype_name(u));
    if (t == PST_STRING || t == PST_BOOL)
        if (mode_of(n->op) != S_UPDATE)
            return pst_status_set(st, PST_E_INVALID, "%s does not take %s", n->op->name, pst_dtype_name(t));
    return 0;
}

static int out_like_input0(pst_node *n, pst_status *st) {
    if (check_upd(n, st) < 0) return st->code;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 0));
    return 0;
}

static int gather_nd_shape(pst_node *n, pst_status *st) {
    pst_shape p = pst_node_in_shape(n, 0), ix = pst_node_in_shape(n, 1), o = pst_shape_unknown();
    if (p.rank >= 0 && ix.rank >= 1 && ix.dims[ix.rank - 1] >= 0) {
        int64_t K = ix.dims[ix.rank - 1];
        if (K > p.rank) return pst_status_set(st, PST_E_INVALID, "indices' last dim %lld exceeds the rank %d", (long long)K, p.rank);
        o.rank = ix.rank - 1 + p.rank - (int)K;
        if (o.rank > PST_MAX_RANK) return pst_status_set(st, PST_E_INVALID, "the result's rank exceeds %d", PST_MAX_RANK);
        for (int d = 0; d < ix.rank - 1; d++) o.dims[d] = ix.dims[d];
        for (int d = (int)K; d < p.rank; d++) o.dims[ix.rank - 1 + d - K] = p.dims[d];
    }
    pst_node_set_output(n, 0, pst_node_attr_type(n, "dtype", pst_node_in_dtype(n, 0)), o);
    return 0;
}

/* ---- Gradients of the value forms (array_grad.py) -------------------------------------- */
static pst_output gather_nd(pst_graph *g, pst_output params, pst_output idx) {
    pst_node_builder *b = pst_nb_new(g, "GatherNd", NULL);
    pst_nb_input(b, params);
    pst_nb_input(b, idx);
    pst_nb_attr_type(b, "Tparams", pst_output_dtype(params));
    pst_nb_attr_type(b, "Tindices", pst_output_dtype(idx));
    return pst_nb_finish_out(b);
}

static int tensor_scatter_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output idx = n->inputs[1];
    switch (mode_of(n->op)) {
    case S_UPDATE: {
        pst_node_builder *b = pst_nb_new(g, "TensorScatterUpdate", NULL);
        pst_nb_inputs(b, 3, (pst_output[]){dy[0], idx, pst_zeros_like(g, n->inputs[2], NULL)});
        pst_nb_attr_type(b, "T", pst_output_dtype(dy[0]));
        pst_nb_attr_type(b, "Tindices", pst_output_dtype(idx));
        dx[0] = pst_nb_finish_out(b);
        dx[2] = gather_nd(g, dy[0], idx);
        break;
    }
    case S_ADD:
        dx[0] = dy[0];
        dx[2] = gather_nd(g, dy[0], idx);
        break;
    default: /* S_SUB */
        dx[0] = dy[0];
        dx[2] = pst_neg(g, gather_nd(g, dy[0], idx), NULL);
        break;
    }
    return 0;
}

/* ---- Registration ---------------------------------------------------------------------- */
static const pst_attr_spec ref_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                          {"Tindices", PST_ATTR_TYPE, 0},
                                          {"use_locking", PST_ATTR_BOOL, 0},
                                          {0}};
static const pst_attr_spec res_attrs[] = {{"dtype", PST_ATTR_TYPE, 0},
                                          {"T", PST_ATTR_TYPE, 0},
                                          {"Tindices", PST_ATTR_TYPE, 0},
                                          {"use_locking", PST_ATTR_BOOL, 0},
                                          {0}};

#define SF PST_OP_STATEFUL
#define ND PST_OP_NOT_DIFFERENTIABLE
#define REF(nm, mode, k)                                                                          \
    {{.name = nm, .min_inputs = 3, .max_inputs = 3, .n_outputs = 1, .attrs = ref_attrs,           \
      .shape = out_like_input0, .kernel = k, .flags = SF | ND | PST_OP_REF_OUTPUT | PST_OP_STRINGS, \
      .ref_mask = 0x1},                                                                           \
     mode}
#define RES(nm, mode, k)                                                                          \
    {{.name = nm, .min_inputs = 3, .max_inputs = 3, .n_outputs = 0, .attrs = res_attrs,           \
      .shape = check_upd, .kernel = k, .flags = SF | ND | PST_OP_STRINGS, .ref_mask = 0x1},       \
     mode}
#define VAL(nm, mode, gr)                                                                         \
    {{.name = nm, .min_inputs = 3, .max_inputs = 3, .n_outputs = 1, .attrs = ref_attrs,           \
      .shape = out_like_input0, .kernel = value_nd_kernel, .grad = gr, .flags = PST_OP_STRINGS},  \
     mode}

static const scat_op scat_ops[] = {
    REF("ScatterMul", S_MUL, ref_row_kernel),
    REF("ScatterDiv", S_DIV, ref_row_kernel),
    REF("ScatterMin", S_MIN, ref_row_kernel),
    REF("ScatterMax", S_MAX, ref_row_kernel),
    RES("ResourceScatterMul", S_MUL, res_row_kernel),
    RES("ResourceScatterDiv", S_DIV, res_row_kernel),
    RES("ResourceScatterMin", S_MIN, res_row_kernel),
    RES("ResourceScatterMax", S_MAX, res_row_kernel),
    REF("ScatterNdUpdate", S_UPDATE, ref_nd_kernel),
    REF("ScatterNdAdd", S_ADD, ref_nd_kernel),
    REF("ScatterNdSub", S_SUB, ref_nd_kernel),
    RES("ResourceScatterNdUpdate", S_UPDATE, res_nd_kernel),
    RES("ResourceScatterNdAdd", S_ADD, res_nd_kernel),
    RES("ResourceScatterNdSub", S_SUB, res_nd_kernel),
    VAL("ScatterNdNonAliasingAdd", S_ADD, tensor_scatter_grad),
    VAL("TensorScatterUpdate", S_UPDATE, tensor_scatter_grad),
    VAL("TensorScatterAdd", S_ADD, tensor_scatter_grad),
    VAL("TensorScatterSub", S_SUB, tensor_scatter_grad),
};

static const pst_attr_spec gather_attrs[] = {{"dtype", PST_ATTR_TYPE, 0}, {"Tindices", PST_ATTR_TYPE, 0}, {0}};
static const pst_op_def res_gather_nd = {.name = "ResourceGatherNd", .min_inputs = 2, .max_inputs = 2,
                                         .n_outputs = 1, .attrs = gather_attrs, .shape = gather_nd_shape,
                                         .kernel = gather_nd_kernel, .flags = SF | ND | PST_OP_STRINGS,
                                         .ref_mask = 0x1};

void pst__register_scatter_ops(void) {
    for (size_t i = 0; i < sizeof scat_ops / sizeof scat_ops[0]; i++) pst_op_register(&scat_ops[i].def);
    pst_op_register(&res_gather_nd);
}
