/* Resource variables (tf.Variable(use_resource=True), the default of TF 1.13+ Estimators and
 * of get_variable under tf.compat.v1 with resource scopes): VarHandleOp, ReadVariableOp,
 * AssignVariableOp, AssignAddVariableOp, AssignSubVariableOp, VarIsInitializedOp,
 * VariableShape, ResourceGather, ResourceScatterAdd/Sub/Update, DestroyResourceOp (and the
 * ref-typed ScatterUpdate on a VariableV2).
 *
 * pstrain keeps a resource variable exactly like a VariableV2: VarHandleOp is a variable op
 * (PST_OP_VARIABLE) whose output is the variable itself, typed and shaped like its value (TF
 * types the handle DT_RESOURCE and carries the value's shape on the side). Ops that update the
 * variable take the handle as a ref input, so the session hands them the pst_var; ReadVariableOp
 * takes it as an ordinary input, which the session turns into a snapshot of the value, exactly
 * TF's read semantics. Placement, the saver, the initializer search and checkpoints therefore
 * treat both kinds alike: the variable's name in the store is the handle's shared_name (TF
 * writes the variable's name there), else the node's name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "varstore.h"

/* ---- VarHandleOp ----------------------------------------------------------------------- */
static int var_handle_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "dtype", PST_DT_INVALID);
    if (!pst_dtype_valid(dt))
        return pst_status_set(st, PST_E_INVALID, "unsupported dtype %d", (int)dt);
    const pst_attr *s = pst_node_attr(n, "shape");
    pst_node_set_output(n, 0, dt, s && s->kind == PST_ATTR_SHAPE ? s->v.shape : pst_shape_unknown());
    return 0;
}

static int var_handle_kernel(pst_kernel_ctx *c) {
    const char *shared = pst_kctx_attr_s(c, "shared_name", "");
    const pst_attr *s = pst_kctx_attr(c, "shape");
    pst_var *v = pst_var_store_get_or_create(
        c->vars, shared[0] ? shared : c->node_name, c->out_dtypes[0],
        s && s->kind == PST_ATTR_SHAPE ? s->v.shape : pst_shape_unknown(), c->status);
    if (v == NULL) return c->status->code;
    c->output_vars[0] = v;
    return 0;
}

/* ---- ReadVariableOp(handle): the session already read a snapshot for this input -------- */
static int read_var_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "dtype", pst_node_in_dtype(n, 0));
    if (dt != pst_node_in_dtype(n, 0))
        return pst_status_set(st, PST_E_INVALID, "reads %s from variable '%s' of %s",
                              pst_dtype_name(dt), n->inputs[0].node->name,
                              pst_dtype_name(pst_node_in_dtype(n, 0)));
    pst_node_set_output(n, 0, dt, pst_node_in_shape(n, 0));
    return 0;
}

static int read_var_kernel(pst_kernel_ctx *c) {
    pst_kctx_set_output(c, 0, pst_tensor_ref(c->inputs[0]));
    return 0;
}

/* The gradient of a read flows to the variable, as through Identity. */
static int read_var_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    (void)g, (void)n;
    dx[0] = dy[0];
    return 0;
}

/* ---- AssignVariableOp, AssignAddVariableOp, AssignSubVariableOp ------------------------ */
static int value_matches(pst_node *n, int i, pst_status *st) {
    pst_dtype want = pst_node_in_dtype(n, 0), got = pst_node_in_dtype(n, i);
    if (want != got)
        return pst_status_set(st, PST_E_INVALID, "variable '%s' is %s, the value is %s",
                              n->inputs[0].node->name, pst_dtype_name(want), pst_dtype_name(got));
    return 0;
}

static int assign_var_shape(pst_node *n, pst_status *st) { return value_matches(n, 1, st); }

/* TF checks only the dtype: a resource variable may take a value of another shape. */
static int assign_var_kernel(pst_kernel_ctx *c) {
    return pst_var_assign(c->input_vars[0], c->inputs[1], 0, c->status);
}

/* var += sign * d, elementwise, in place; shapes must be equal. */
static int update_in_place(pst_kernel_ctx *c, pst_var *v, const pst_tensor *d, int sign) {
    char a[128], b[128];
    pst_tensor *t = pst_var_begin_update(v, c->status);
    if (t == NULL) return c->status->code;
    int rc = 0;
    if (!pst_shape_equal(&t->shape, &d->shape) || t->dtype != d->dtype) {
        rc = pst_kctx_error(c, PST_E_INVALID, "variable '%s' is %s %s, the update %s %s", v->name,
                            pst_dtype_name(t->dtype), pst_shape_str(&t->shape, a, sizeof a),
                            pst_dtype_name(d->dtype), pst_shape_str(&d->shape, b, sizeof b));
    } else if (t->dtype == PST_FLOAT) {
        float *x = pst_tensor_f32(t);
        const float *y = (const float *)d->data;
        for (int64_t i = 0; i < t->n; i++) x[i] += (float)sign * y[i];
    } else if (pst_dtype_is_float(t->dtype) || pst_dtype_is_int(t->dtype)) {
        for (int64_t i = 0; i < t->n; i++)
            pst_tensor_set_f64(t, i, pst_tensor_get_f64(t, i) + sign * pst_tensor_get_f64(d, i));
    } else {
        rc = pst_kctx_error(c, PST_E_INVALID, "unsupported dtype %s", pst_dtype_name(t->dtype));
    }
    pst_var_end_update(v);
    return rc;
}

static int assign_add_var_kernel(pst_kernel_ctx *c) {
    return update_in_place(c, c->input_vars[0], c->inputs[1], 1);
}
static int assign_sub_var_kernel(pst_kernel_ctx *c) {
    return update_in_place(c, c->input_vars[0], c->inputs[1], -1);
}

/* ---- VarIsInitializedOp, VariableShape, DestroyResourceOp ------------------------------ */
/* VarIsInitializedOp runs IsVariableInitialized's shape and kernel (ops_array_tf.c). */
int pst__is_initialized_shape(pst_node *n, pst_status *st);
int pst__is_initialized_kernel(pst_kernel_ctx *c);

static int var_shape_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_dtype dt = pst_node_attr_type(n, "out_type", PST_INT32);
    pst_node_set_output(n, 0, dt == PST_INT64 ? PST_INT64 : PST_INT32,
                        pst_shape_1d(pst_node_in_shape(n, 0).rank));
    return 0;
}
static int var_shape_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->out_dtypes[0], pst_shape_1d(x->shape.rank));
    if (o == NULL) return c->status->code;
    for (int d = 0; d < x->shape.rank; d++) pst_tensor_set_f64(o, d, (double)x->shape.dims[d]);
    return 0;
}

static int nothing_kernel(pst_kernel_ctx *c) {
    (void)c;
    return 0;
}

/* ---- ResourceGather(handle, indices): rows of the variable ----------------------------- */
static int gather_shape(pst_node *n, pst_status *st) {
    if (pst_node_attr_i(n, "batch_dims", 0) != 0)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "batch_dims other than 0");
    pst_shape p = pst_node_in_shape(n, 0), idx = pst_node_in_shape(n, 1), s = pst_shape_unknown();
    if (p.rank >= 1 && idx.rank >= 0 && idx.rank + p.rank - 1 <= PST_MAX_RANK) {
        s.rank = idx.rank + p.rank - 1;
        for (int d = 0; d < idx.rank; d++) s.dims[d] = idx.dims[d];
        for (int d = 1; d < p.rank; d++) s.dims[idx.rank + d - 1] = p.dims[d];
    }
    pst_node_set_output(n, 0, pst_node_attr_type(n, "dtype", pst_node_in_dtype(n, 0)), s);
    return 0;
}

/* Checks indices against a value with rows[0] rows; row = elements per row. */
static int check_rows(pst_kernel_ctx *c, const pst_tensor *val, const pst_tensor *idx,
                      const char *var, int64_t *row) {
    if (val->shape.rank < 1)
        return pst_kctx_error(c, PST_E_INVALID, "variable '%s' is a scalar; it has no rows", var);
    *row = val->shape.dims[0] ? val->n / val->shape.dims[0] : 0;
    for (int64_t k = 0; k < idx->n; k++) {
        int64_t i = pst_tensor_get_i64(idx, k);
        if (i < 0 || i >= val->shape.dims[0])
            return pst_kctx_error(c, PST_E_INVALID, "index %lld (at %lld) is not in [0, %lld) "
                                  "for variable '%s'", (long long)i, (long long)k,
                                  (long long)val->shape.dims[0], var);
    }
    return 0;
}

static int gather_kernel(pst_kernel_ctx *c) {
    pst_var *v = c->input_vars[0];
    const pst_tensor *idx = c->inputs[1];
    pst_tensor *val = pst_var_read(v);
    if (val == NULL) return pst_var_uninit_error(v->name, c->status);
    int64_t row = 0;
    int rc = check_rows(c, val, idx, v->name, &row);
    if (rc == 0 && idx->shape.rank + val->shape.rank - 1 > PST_MAX_RANK)
        rc = pst_kctx_error(c, PST_E_INVALID, "the result's rank exceeds %d", PST_MAX_RANK);
    if (rc == 0) {
        pst_shape s = {.rank = idx->shape.rank + val->shape.rank - 1};
        for (int d = 0; d < idx->shape.rank; d++) s.dims[d] = idx->shape.dims[d];
        for (int d = 1; d < val->shape.rank; d++) s.dims[idx->shape.rank + d - 1] = val->shape.dims[d];
        pst_tensor *o = pst_kctx_alloc_output(c, 0, val->dtype, s);
        if (o == NULL) rc = c->status->code;
        for (int64_t k = 0; rc == 0 && k < idx->n; k++)
            rc = pst_tensor_copy_elems(o, k * row, val, pst_tensor_get_i64(idx, k) * row, row,
                                       c->status);
    }
    pst_tensor_unref(val);
    return rc;
}

/* ---- ResourceScatterAdd / Sub / Update(handle, indices, updates) ----------------------- */
static int scatter(pst_kernel_ctx *c, int mode) {
    pst_var *v = c->input_vars[0];
    const pst_tensor *idx = c->inputs[1], *u = c->inputs[2];
    pst_tensor *t = pst_var_begin_update(v, c->status);
    if (t == NULL) return c->status->code;
    int64_t row = 0;
    int rc = check_rows(c, t, idx, v->name, &row);
    if (rc == 0 && (u->dtype != t->dtype || (u->n != idx->n * row && u->n != 1)))
        rc = pst_kctx_error(c, PST_E_INVALID, "updates of %lld %s elements for %lld rows of %lld "
                            "%s elements in variable '%s'", (long long)u->n,
                            pst_dtype_name(u->dtype), (long long)idx->n, (long long)row,
                            pst_dtype_name(t->dtype), v->name);
    for (int64_t k = 0; rc == 0 && k < idx->n; k++) {
        int64_t at = pst_tensor_get_i64(idx, k) * row;
        for (int64_t j = 0; j < row; j++) {
            double x = pst_tensor_get_f64(u, u->n == 1 ? 0 : k * row + j);
            double y = mode == 0 ? x : pst_tensor_get_f64(t, at + j) + (mode == 1 ? x : -x);
            pst_tensor_set_f64(t, at + j, y);
        }
    }
    pst_var_end_update(v);
    return rc;
}
static int scatter_update_kernel(pst_kernel_ctx *c) { return scatter(c, 0); }
static int scatter_add_kernel(pst_kernel_ctx *c) { return scatter(c, 1); }
static int scatter_sub_kernel(pst_kernel_ctx *c) { return scatter(c, -1); }

/* ScatterUpdate(ref, indices, updates): the same on a VariableV2, returning its ref. */
static int ref_scatter_update_kernel(pst_kernel_ctx *c) {
    int rc = scatter(c, 0);
    if (rc == 0) {
        pst_kctx_set_output(c, 0, pst_var_read(c->input_vars[0]));
        c->output_vars[0] = c->input_vars[0];
    }
    return rc;
}

static int ref_scatter_shape(pst_node *n, pst_status *st) {
    if (value_matches(n, 2, st) < 0) return st->code;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 0));
    return 0;
}

static int no_outputs(pst_node *n, pst_status *st) {
    (void)n, (void)st;
    return 0;
}
static int scatter_shape(pst_node *n, pst_status *st) { return value_matches(n, 2, st); }

static const pst_attr_spec ref_scatter_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                                  {"Tindices", PST_ATTR_TYPE, 0},
                                                  {"use_locking", PST_ATTR_BOOL, 0},
                                                  {0}};
static const pst_attr_spec handle_attrs[] = {{"dtype", PST_ATTR_TYPE, 1},
                                             {"shape", PST_ATTR_SHAPE, 1},
                                             {"container", PST_ATTR_STRING, 0},
                                             {"shared_name", PST_ATTR_STRING, 0},
                                             {"allowed_devices", PST_ATTR_LIST_STRING, 0},
                                             {0}};
static const pst_attr_spec dtype_attrs[] = {{"dtype", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec shape_attrs[] = {{"out_type", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec destroy_attrs[] = {{"ignore_lookup_error", PST_ATTR_BOOL, 0}, {0}};
static const pst_attr_spec gather_attrs[] = {{"dtype", PST_ATTR_TYPE, 0},
                                             {"Tindices", PST_ATTR_TYPE, 0},
                                             {"batch_dims", PST_ATTR_INT, 0},
                                             {"validate_indices", PST_ATTR_BOOL, 0},
                                             {0}};

#define ND PST_OP_NOT_DIFFERENTIABLE
#define SF PST_OP_STATEFUL
static const pst_op_def resource_ops[] = {
    {.name = "VarHandleOp", .n_outputs = 1, .attrs = handle_attrs, .shape = var_handle_shape,
     .kernel = var_handle_kernel, .flags = SF | PST_OP_VARIABLE},
    {.name = "ReadVariableOp", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = dtype_attrs, .shape = read_var_shape, .kernel = read_var_kernel,
     .grad = read_var_grad, .flags = SF | PST_OP_STRINGS},
    {.name = "AssignVariableOp", .min_inputs = 2, .max_inputs = 2, .n_outputs = 0,
     .attrs = dtype_attrs, .shape = assign_var_shape, .kernel = assign_var_kernel,
     .flags = SF | ND | PST_OP_STRINGS, .ref_mask = 0x1},
    {.name = "AssignAddVariableOp", .min_inputs = 2, .max_inputs = 2, .n_outputs = 0,
     .attrs = dtype_attrs, .shape = assign_var_shape, .kernel = assign_add_var_kernel,
     .flags = SF | ND, .ref_mask = 0x1},
    {.name = "AssignSubVariableOp", .min_inputs = 2, .max_inputs = 2, .n_outputs = 0,
     .attrs = dtype_attrs, .shape = assign_var_shape, .kernel = assign_sub_var_kernel,
     .flags = SF | ND, .ref_mask = 0x1},
    {.name = "VarIsInitializedOp", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .shape = pst__is_initialized_shape, .kernel = pst__is_initialized_kernel,
     .flags = SF | ND | PST_OP_STRINGS,
     .ref_mask = 0x1},
    {.name = "VariableShape", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = shape_attrs, .shape = var_shape_shape, .kernel = var_shape_kernel,
     .flags = ND | PST_OP_STRINGS},
    {.name = "DestroyResourceOp", .min_inputs = 1, .max_inputs = 1, .n_outputs = 0,
     .attrs = destroy_attrs, .shape = no_outputs, .kernel = nothing_kernel,
     .flags = SF | ND | PST_OP_STRINGS},
    {.name = "ResourceGather", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = gather_attrs, .shape = gather_shape, .kernel = gather_kernel,
     .flags = SF | ND | PST_OP_STRINGS, .ref_mask = 0x1},
    {.name = "ResourceScatterAdd", .min_inputs = 3, .max_inputs = 3, .n_outputs = 0,
     .attrs = gather_attrs, .shape = scatter_shape, .kernel = scatter_add_kernel,
     .flags = SF | ND, .ref_mask = 0x1},
    {.name = "ResourceScatterSub", .min_inputs = 3, .max_inputs = 3, .n_outputs = 0,
     .attrs = gather_attrs, .shape = scatter_shape, .kernel = scatter_sub_kernel,
     .flags = SF | ND, .ref_mask = 0x1},
    {.name = "ResourceScatterUpdate", .min_inputs = 3, .max_inputs = 3, .n_outputs = 0,
     .attrs = gather_attrs, .shape = scatter_shape, .kernel = scatter_update_kernel,
     .flags = SF | ND, .ref_mask = 0x1},
    {.name = "ScatterUpdate", .min_inputs = 3, .max_inputs = 3, .n_outputs = 1,
     .attrs = ref_scatter_attrs, .shape = ref_scatter_shape, .kernel = ref_scatter_update_kernel,
     .flags = SF | ND | PST_OP_REF_OUTPUT, .ref_mask = 0x1},
};

void pst__register_resource_ops(void) {
    for (size_t i = 0; i < sizeof resource_ops / sizeof resource_ops[0]; i++)
        pst_op_register(&resource_ops[i]);
}
