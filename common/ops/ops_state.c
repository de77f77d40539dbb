/* Constants, placeholders, variables, assignment, identity, NoOp, AddN, Zeros/OnesLike. */
#include "ops_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "varstore.h"

/* ---- Const ----------------------------------------------------------------------------- */
static int const_shape(pst_node *n, pst_status *st) {
    const pst_attr *v = pst_node_attr(n, "value");
    pst_dtype dt = pst_node_attr_type(n, "dtype", v->v.tensor->dtype);
    if (dt != v->v.tensor->dtype)
        return pst_status_set(st, PST_E_INVALID, "attr dtype %s does not match value's %s",
                              pst_dtype_name(dt), pst_dtype_name(v->v.tensor->dtype));
    pst_node_set_output(n, 0, dt, v->v.tensor->shape);
    return 0;
}
static int const_kernel(pst_kernel_ctx *c) {
    pst_kctx_set_output(c, 0, pst_tensor_ref(pst_kctx_attr(c, "value")->v.tensor));
    return 0;
}
static const pst_attr_spec const_attrs[] = {
    {"value", PST_ATTR_TENSOR, 1}, {"dtype", PST_ATTR_TYPE, 0}, {0}};
static const pst_op_def const_op = {.name = "Const", .min_inputs = 0, .max_inputs = 0,
                                    .n_outputs = 1, .attrs = const_attrs, .shape = const_shape,
                                    .kernel = const_kernel,
                                    .flags = PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS};

/* ---- Placeholder ----------------------------------------------------------------------- */
static int placeholder_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "dtype", PST_DT_INVALID);
    if (!pst_dtype_valid(dt))
        return pst_status_set(st, PST_E_INVALID, "unsupported dtype %d", (int)dt);
    const pst_attr *s = pst_node_attr(n, "shape");
    pst_node_set_output(n, 0, dt, s ? s->v.shape : pst_shape_unknown());
    return 0;
}
static int placeholder_kernel(pst_kernel_ctx *c) {
    char buf[128];
    const pst_attr *s = pst_kctx_attr(c, "shape");
    pst_shape sh = s ? s->v.shape : pst_shape_unknown();
    return pst_kctx_error(c, PST_E_INVALID,
                          "You must feed a value for placeholder tensor '%s' with dtype %s and "
                          "shape %s",
                          c->node_name, pst_dtype_name(pst_kctx_attr_type(c, "dtype", 0)),
                          pst_shape_str(&sh, buf, sizeof buf));
}
static const pst_attr_spec placeholder_attrs[] = {
    {"dtype", PST_ATTR_TYPE, 1}, {"shape", PST_ATTR_SHAPE, 0}, {0}};
static const pst_op_def placeholder_op = {
    .name = "Placeholder", .min_inputs = 0, .max_inputs = 0, .n_outputs = 1,
    .attrs = placeholder_attrs, .shape = placeholder_shape, .kernel = placeholder_kernel,
    .flags = PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS};

/* TF 0.12's PlaceholderV2 (shape required): Placeholder under another name. */
static const pst_op_def placeholder_v2_op = {
    .name = "PlaceholderV2", .min_inputs = 0, .max_inputs = 0, .n_outputs = 1,
    .attrs = placeholder_attrs, .shape = placeholder_shape, .kernel = placeholder_kernel,
    .flags = PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS};

static int pwd_shape(pst_node *n, pst_status *st) {
    const pst_attr *s = pst_node_attr(n, "shape");
    pst_shape in = pst_node_in_shape(n, 0);
    if (s && !pst_shape_compatible(&s->v.shape, &in))
        return pst_status_set(st, PST_E_INVALID, "default value does not match attr shape");
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), s ? s->v.shape : in);
    return 0;
}
static int identity_kernel(pst_kernel_ctx *c) {
    pst_kctx_set_output(c, 0, pst_tensor_ref(c->inputs[0]));
    return 0;
}
static int identity_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    (void)g;
    (void)n;
    dx[0] = dy[0];
    return 0;
}
static const pst_attr_spec pwd_attrs[] = {
    {"dtype", PST_ATTR_TYPE, 0}, {"shape", PST_ATTR_SHAPE, 0}, {0}};
static const pst_op_def pwd_op = {.name = "PlaceholderWithDefault", .min_inputs = 1,
                                  .max_inputs = 1, .n_outputs = 1, .attrs = pwd_attrs,
                                  .shape = pwd_shape, .kernel = identity_kernel,
                                  .grad = identity_grad, .flags = PST_OP_STRINGS};

/* ---- Identity, StopGradient, NoOp ------------------------------------------------------ */
static const pst_attr_spec t_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_op_def identity_op = {.name = "Identity", .min_inputs = 1, .max_inputs = 1,
                                       .n_outputs = 1, .attrs = t_attrs,
                                       .shape = pst_shape_same_as_input0,
                                       .kernel = identity_kernel, .grad = identity_grad,
                                       .flags = PST_OP_STRINGS};
static const pst_op_def stop_gradient_op = {
    .name = "StopGradient", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = t_attrs,
    .shape = pst_shape_same_as_input0, .kernel = identity_kernel,
    .flags = PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS};
static int noop_kernel(pst_kernel_ctx *c) {
    (void)c;
    return 0;
}
static const pst_op_def noop_op = {.name = "NoOp", .min_inputs = 0, .max_inputs = 0,
                                   .n_outputs = 0, .kernel = noop_kernel,
                                   .flags = PST_OP_NOT_DIFFERENTIABLE};

/* ---- VariableV2 and assignment --------------------------------------------------------- */
static int variable_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "dtype", PST_DT_INVALID);
    if (!pst_dtype_valid(dt))
        return pst_status_set(st, PST_E_INVALID, "unsupported dtype %d", (int)dt);
    const pst_attr *s = pst_node_attr(n, "shape");
    pst_node_set_output(n, 0, dt, s ? s->v.shape : pst_shape_unknown());
    return 0;
}
static int variable_kernel(pst_kernel_ctx *c) {
    const char *shared = pst_kctx_attr_s(c, "shared_name", "");
    const pst_attr *s = pst_kctx_attr(c, "shape");
    pst_var *v = pst_var_store_get_or_create(c->vars, shared[0] ? shared : c->node_name,
                                                  c->out_dtypes[0],
                                                  s ? s->v.shape : pst_shape_unknown(),
                                                  c->status);
    if (v == NULL) return c->status->code;
    c->output_vars[0] = v;
    return 0;
}
static const pst_attr_spec variable_attrs[] = {{"dtype", PST_ATTR_TYPE, 1},
                                               {"shape", PST_ATTR_SHAPE, 0},
                                               {"container", PST_ATTR_STRING, 0},
                                               {"shared_name", PST_ATTR_STRING, 0},
                                               {0}};
static const pst_op_def variable_op = {
    .name = "VariableV2", .min_inputs = 0, .max_inputs = 0, .n_outputs = 1,
    .attrs = variable_attrs, .shape = variable_shape, .kernel = variable_kernel,
    .flags = PST_OP_STATEFUL | PST_OP_VARIABLE};
/* TF's first variable op (graphs before TF 1.0 hold it): VariableV2 by another name. */
static const pst_op_def variable_v1_op = {
    .name = "Variable", .min_inputs = 0, .max_inputs = 0, .n_outputs = 1,
    .attrs = variable_attrs, .shape = variable_shape, .kernel = variable_kernel,
    .flags = PST_OP_STATEFUL | PST_OP_VARIABLE};

static int assign_shape(pst_node *n, pst_status *st) {
    char a[128], b[128];
    if (pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    pst_shape ref = pst_node_in_shape(n, 0), val = pst_node_in_shape(n, 1);
    int validate = pst_node_attr_b(n, "validate_shape", 1);
    if (validate && !pst_shape_compatible(&ref, &val))
        return pst_status_set(st, PST_E_INVALID,
                              "cannot assign a value of shape %s to variable '%s' of shape %s",
                              pst_shape_str(&val, a, sizeof a), n->inputs[0].node->name,
                              pst_shape_str(&ref, b, sizeof b));
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), validate ? ref : val);
    return 0;
}
static int assign_kernel(pst_kernel_ctx *c) {
    pst_var *v = c->input_vars[0];
    int rc = pst_var_assign(v, c->inputs[1], pst_kctx_attr_b(c, "validate_shape", 1),
                                 c->status);
    if (rc < 0) return rc;
    pst_kctx_set_output(c, 0, pst_var_read(v));
    c->output_vars[0] = v; /* TF's Assign returns the variable's ref: ops may update it */
    return 0;
}
static const pst_attr_spec assign_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                             {"validate_shape", PST_ATTR_BOOL, 0},
                                             {"use_locking", PST_ATTR_BOOL, 0},
                                             {0}};
static const pst_op_def assign_op = {.name = "Assign", .min_inputs = 2, .max_inputs = 2,
                                     .n_outputs = 1, .attrs = assign_attrs, .shape = assign_shape,
                                     .kernel = assign_kernel,
                                     .flags = PST_OP_STATEFUL | PST_OP_REF_INPUT0 |
                                              PST_OP_NOT_DIFFERENTIABLE | PST_OP_REF_OUTPUT};

#define DEFINE_ASSIGN_ARITH(fname, OPSIGN)                                                        \
    static int fname(pst_kernel_ctx *c) {                                                         \
        pst_var *v = c->input_vars[0];                                                       \
        const pst_tensor *d = c->inputs[1];                                                       \
        char a_[128], b_[128];                                                                    \
        pst_tensor *t = pst_var_begin_update(v, c->status);                                  \
        if (t == NULL) return c->status->code;                                                    \
        if (!pst_shape_equal(&t->shape, &d->shape)) {                                             \
            pst_var_end_update(v);                                                           \
            return pst_kctx_error(c, PST_E_INVALID, "variable '%s' has shape %s, update has %s",  \
                                  v->name, pst_shape_str(&t->shape, a_, sizeof a_),               \
                                  pst_shape_str(&d->shape, b_, sizeof b_));                       \
        }                                                                                         \
        switch (t->dtype) {                                                                       \
        case PST_FLOAT:                                                                           \
            for (int64_t i = 0; i < t->n; i++)                                                    \
                pst_tensor_f32(t)[i] OPSIGN pst_tensor_f32(d)[i];                                 \
            break;                                                                                \
        case PST_DOUBLE:                                                                          \
            for (int64_t i = 0; i < t->n; i++)                                                    \
                pst_tensor_f64(t)[i] OPSIGN pst_tensor_f64(d)[i];                                 \
            break;                                                                                \
        case PST_INT32:                                                                           \
            for (int64_t i = 0; i < t->n; i++)                                                    \
                pst_tensor_i32(t)[i] OPSIGN pst_tensor_i32(d)[i];                                 \
            break;                                                                                \
        case PST_INT64:                                                                           \
            for (int64_t i = 0; i < t->n; i++)                                                    \
                pst_tensor_i64(t)[i] OPSIGN pst_tensor_i64(d)[i];                                 \
            break;                                                                                \
        default:                                                                                  \
            pst_var_end_update(v);                                                           \
            return pst_kctx_error(c, PST_E_INVALID, "unsupported dtype %s",                       \
                                  pst_dtype_name(t->dtype));                                      \
        }                                                                                         \
        pst_var_end_update(v);                                                               \
        pst_kctx_set_output(c, 0, pst_var_read(v));                                          \
        return 0;                                                                                 \
    }
DEFINE_ASSIGN_ARITH(assign_add_kernel, +=)
DEFINE_ASSIGN_ARITH(assign_sub_kernel, -=)

static const pst_op_def assign_add_op = {
    .name = "AssignAdd", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, .attrs = assign_attrs,
    .shape = assign_shape, .kernel = assign_add_kernel,
    .flags = PST_OP_STATEFUL | PST_OP_REF_INPUT0 | PST_OP_NOT_DIFFERENTIABLE};
static const pst_op_def assign_sub_op = {
    .name = "AssignSub", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, .attrs = assign_attrs,
    .shape = assign_shape, .kernel = assign_sub_kernel,
    .flags = PST_OP_STATEFUL | PST_OP_REF_INPUT0 | PST_OP_NOT_DIFFERENTIABLE};

/* ---- AddN, ZerosLike, OnesLike --------------------------------------------------------- */
static int add_n_shape(pst_node *n, pst_status *st) {
    if (pst_shape_check_same_dtype(n, 0, n->n_inputs - 1, st) < 0) return PST_E_INVALID;
    pst_shape s = pst_node_in_shape(n, 0);
    for (int i = 1; i < n->n_inputs; i++) {
        pst_shape o = pst_node_in_shape(n, i);
        if (!pst_shape_compatible(&s, &o)) {
            char a[128], b[128];
            return pst_status_set(st, PST_E_INVALID, "input %d has shape %s, input 0 has %s", i,
                                  pst_shape_str(&o, a, sizeof a), pst_shape_str(&s, b, sizeof b));
        }
        if (s.rank < 0) s = o;
        for (int d = 0; d < s.rank && o.rank == s.rank; d++)
            if (s.dims[d] < 0) s.dims[d] = o.dims[d];
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), s);
    return 0;
}
static int add_n_kernel(pst_kernel_ctx *c) {
    const pst_tensor *a = c->inputs[0];
    for (int i = 1; i < c->n_inputs; i++)
        if (!pst_shape_equal(&a->shape, &c->inputs[i]->shape))
            return pst_kctx_error(c, PST_E_INVALID, "input %d shape differs from input 0", i);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, a->dtype, a->shape);
    if (o == NULL) return c->status->code;
    int64_t n = a->n;
    switch (a->dtype) {
    case PST_FLOAT: {
        float *y = pst_tensor_f32(o);
        memcpy(y, a->data, a->nbytes);
        for (int k = 1; k < c->n_inputs; k++) {
            const float *x = pst_tensor_f32(c->inputs[k]);
            for (int64_t i = 0; i < n; i++) y[i] += x[i];
        }
        break;
    }
    case PST_DOUBLE:
    case PST_INT32:
    case PST_INT64:
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int k = 0; k < c->n_inputs; k++) s += pst_tensor_get_f64(c->inputs[k], i);
            pst_tensor_set_f64(o, i, s);
        }
        break;
    default: return pst_kctx_error(c, PST_E_INVALID, "unsupported dtype %s", pst_dtype_name(a->dtype));
    }
    return 0;
}
static int add_n_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    (void)g;
    for (int i = 0; i < n->n_inputs; i++) dx[i] = dy[0];
    return 0;
}
static const pst_attr_spec add_n_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"N", PST_ATTR_INT, 0}, {0}};
static const pst_op_def add_n_op = {.name = "AddN", .min_inputs = 1, .max_inputs = -1,
                                    .n_outputs = 1, .attrs = add_n_attrs, .shape = add_n_shape,
                                    .kernel = add_n_kernel, .grad = add_n_grad};

static int fill_like(pst_kernel_ctx *c, double v) {
    const pst_tensor *a = c->inputs[0];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, a->dtype, a->shape);
    if (o == NULL) return c->status->code;
    if (a->dtype == PST_FLOAT) {
        float *y = pst_tensor_f32(o);
        for (int64_t i = 0; i < o->n; i++) y[i] = (float)v;
    } else {
        for (int64_t i = 0; i < o->n; i++) pst_tensor_set_f64(o, i, v);
    }
    return 0;
}
static int zeros_like_kernel(pst_kernel_ctx *c) { return fill_like(c, 0); }
static int ones_like_kernel(pst_kernel_ctx *c) { return fill_like(c, 1); }
static const pst_op_def zeros_like_op = {
    .name = "ZerosLike", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = t_attrs,
    .shape = pst_shape_same_as_input0, .kernel = zeros_like_kernel,
    .flags = PST_OP_NOT_DIFFERENTIABLE};
static const pst_op_def ones_like_op = {
    .name = "OnesLike", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = t_attrs,
    .shape = pst_shape_same_as_input0, .kernel = ones_like_kernel,
    .flags = PST_OP_NOT_DIFFERENTIABLE};

/* ---- Old ref ops: TemporaryVariable, DestroyTemporaryVariable, RefIdentity, RefSelect ------
 * TemporaryVariable (TF 1.0's tf.accumulate_n: assigned zeros, added to, then destroyed) is a
 * variable of the store under "TemporaryVariable/" + var_name (the node's name when empty);
 * DestroyTemporaryVariable returns its value. The store keeps the variable (one tensor) until
 * the session ends, where TF frees it; its next run's Assign re-initializes it. */
static int temp_var_kernel(pst_kernel_ctx *c) {
    const char *vn = pst_kctx_attr_s(c, "var_name", "");
    char key[512];
    snprintf(key, sizeof key, "TemporaryVariable/%s", vn[0] ? vn : c->node_name);
    const pst_attr *s = pst_kctx_attr(c, "shape");
    pst_var *v = pst_var_store_get_or_create(c->vars, key, c->out_dtypes[0],
                                             s ? s->v.shape : pst_shape_unknown(), c->status);
    if (v == NULL) return c->status->code;
    c->output_vars[0] = v;
    return 0;
}

/* The value of the ref input `at` (a new reference), or an error naming the node's input. */
static pst_tensor *ref_value(pst_kernel_ctx *c, int at) {
    pst_tensor *t = pst_var_read(c->input_vars[at]);
    if (t == NULL)
        pst_kctx_error(c, PST_E_PRECONDITION, "input %d is an uninitialized variable", at);
    return t;
}

static int destroy_temp_var_kernel(pst_kernel_ctx *c) {
    pst_tensor *t = ref_value(c, 0);
    if (t == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, t);
    return 0;
}

/* RefIdentity(ref) and RefSelect(index, refs...): the chosen variable's value and ref. */
static int ref_select_kernel(pst_kernel_ctx *c) {
    int at = 0;
    if (c->n_inputs > 1 && c->inputs[0] != NULL) { /* RefSelect: input 0 is the index */
        int64_t i = pst_tensor_get_i64(c->inputs[0], 0);
        if (i < 0 || i >= c->n_inputs - 1)
            return pst_kctx_error(c, PST_E_INVALID, "index %lld is not in [0, %d)", (long long)i,
                                  c->n_inputs - 1);
        at = (int)i + 1;
    }
    pst_tensor *t = ref_value(c, at);
    if (t == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, t);
    c->output_vars[0] = c->input_vars[at];
    return 0;
}

static int ref_select_shape(pst_node *n, pst_status *st) {
    int first = n->n_inputs > 1 ? 1 : 0;
    if (first && !pst_dtype_is_int(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "index must be int32");
    if (pst_shape_check_same_dtype(n, first, n->n_inputs - 1, st) < 0) return PST_E_INVALID;
    pst_shape s = pst_node_in_shape(n, first);
    for (int i = first + 1; i < n->n_inputs; i++) {
        pst_shape si = pst_node_in_shape(n, i);
        if (!pst_shape_equal(&s, &si)) s = pst_shape_unknown();
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, first), s);
    return 0;
}

static const pst_attr_spec temp_var_attrs[] = {{"dtype", PST_ATTR_TYPE, 1},
                                               {"shape", PST_ATTR_SHAPE, 0},
                                               {"var_name", PST_ATTR_STRING, 0},
                                               {0}};
static const pst_attr_spec ref_attrs[] = {
    {"T", PST_ATTR_TYPE, 0}, {"N", PST_ATTR_INT, 0}, {"var_name", PST_ATTR_STRING, 0}, {0}};
static const pst_op_def temp_var_op = {
    .name = "TemporaryVariable", .min_inputs = 0, .max_inputs = 0, .n_outputs = 1,
    .attrs = temp_var_attrs, .shape = variable_shape, .kernel = temp_var_kernel,
    .flags = PST_OP_STATEFUL | PST_OP_VARIABLE};
static const pst_op_def destroy_temp_var_op = {
    .name = "DestroyTemporaryVariable", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
    .attrs = ref_attrs, .shape = pst_shape_same_as_input0, .kernel = destroy_temp_var_kernel,
    .flags = PST_OP_STATEFUL | PST_OP_REF_INPUT0 | PST_OP_NOT_DIFFERENTIABLE};
static const pst_op_def ref_identity_op = {
    .name = "RefIdentity", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = ref_attrs,
    .shape = ref_select_shape, .kernel = ref_select_kernel,
    .flags = PST_OP_STATEFUL | PST_OP_REF_INPUT0 | PST_OP_REF_OUTPUT | PST_OP_NOT_DIFFERENTIABLE};
static const pst_op_def ref_select_op = {
    .name = "RefSelect", .min_inputs = 2, .max_inputs = 31, .n_outputs = 1, .attrs = ref_attrs,
    .shape = ref_select_shape, .kernel = ref_select_kernel,
    .flags = PST_OP_STATEFUL | PST_OP_REF_OUTPUT | PST_OP_NOT_DIFFERENTIABLE, .ref_mask = ~1u};

void pst__register_state_ops(void) {
    static const pst_op_def *defs[] = {&const_op,      &placeholder_op, &placeholder_v2_op, &pwd_op,
                                       &identity_op,   &stop_gradient_op, &noop_op,
                                       &variable_op,   &variable_v1_op, &assign_op,      &assign_add_op,
                                       &assign_sub_op, &add_n_op,       &zeros_like_op,
                                       &ones_like_op,  &temp_var_op,    &destroy_temp_var_op,
                                       &ref_identity_op, &ref_select_op};
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) pst_op_register(defs[i]);
}

/* ---- Builders -------------------------------------------------------------------------- */
pst_output pst_const(pst_graph *g, pst_tensor *value, const char *name) {
    if (value == NULL) {
        pst_graph_set_error(g, PST_E_INVALID, "Const '%s': value is NULL", name ? name : "Const");
        return pst_out(NULL, 0);
    }
    pst_node_builder *b = pst_nb_new(g, "Const", name);
    pst_nb_attr_tensor(b, "value", value);
    pst_nb_attr_type(b, "dtype", value->dtype);
    return pst_nb_finish_out(b);
}

static pst_output const_owned(pst_graph *g, pst_tensor *t, const char *name) {
    pst_output o = pst_const(g, t, name);
    pst_tensor_unref(t);
    return o;
}
pst_output pst_const_f32(pst_graph *g, float v, const char *name) {
    return const_owned(g, pst_tensor_scalar_f32(v), name);
}
pst_output pst_const_f64(pst_graph *g, double v, const char *name) {
    return const_owned(g, pst_tensor_scalar_f64(v), name);
}
pst_output pst_const_i32(pst_graph *g, int32_t v, const char *name) {
    return const_owned(g, pst_tensor_scalar_i32(v), name);
}
pst_output pst_const_i64(pst_graph *g, int64_t v, const char *name) {
    return const_owned(g, pst_tensor_scalar_i64(v), name);
}
pst_output pst_const_scalar(pst_graph *g, pst_dtype dt, double v, const char *name) {
    pst_tensor *t = pst_tensor_new(dt, pst_shape_scalar(), NULL);
    if (t) pst_tensor_set_f64(t, 0, v);
    return const_owned(g, t, name);
}
pst_output pst_const_i32_vec(pst_graph *g, int n, const int32_t *v, const char *name) {
    return const_owned(g, pst_tensor_from_i32(pst_shape_1d(n), v), name);
}
pst_output pst_const_i64_vec(pst_graph *g, int n, const int64_t *v, const char *name) {
    return const_owned(g, pst_tensor_from_i64(pst_shape_1d(n), v), name);
}
pst_output pst_const_f32_tensor(pst_graph *g, pst_shape shape, const float *v, const char *name) {
    return const_owned(g, pst_tensor_from_f32(shape, v), name);
}

pst_output pst_placeholder(pst_graph *g, const char *name, pst_dtype dt, pst_shape shape) {
    pst_node_builder *b = pst_nb_new(g, "Placeholder", name);
    pst_nb_attr_type(b, "dtype", dt);
    pst_nb_attr_shape(b, "shape", shape);
    return pst_nb_finish_out(b);
}

pst_output pst_placeholder_with_default(pst_graph *g, pst_output dflt, pst_shape shape,
                                        const char *name) {
    pst_node_builder *b = pst_nb_new(g, "PlaceholderWithDefault", name);
    pst_nb_input(b, dflt);
    if (dflt.node) pst_nb_attr_type(b, "dtype", pst_output_dtype(dflt));
    pst_nb_attr_shape(b, "shape", shape);
    return pst_nb_finish_out(b);
}

pst_output pst_variable_v2(pst_graph *g, const char *name, pst_dtype dt, pst_shape shape) {
    pst_node_builder *b = pst_nb_new(g, "VariableV2", name);
    pst_nb_attr_type(b, "dtype", dt);
    pst_nb_attr_shape(b, "shape", shape);
    pst_nb_attr_s(b, "container", "");
    pst_nb_attr_s(b, "shared_name", "");
    return pst_nb_finish_out(b);
}

static pst_output assign_like(pst_graph *g, const char *op, pst_output ref, pst_output value,
                              const char *name) {
    pst_node_builder *b = pst_nb_new(g, op, name);
    pst_nb_input(b, ref);
    pst_nb_input(b, value);
    if (ref.node) pst_nb_attr_type(b, "T", pst_output_dtype(ref));
    pst_nb_attr_b(b, "use_locking", 1);
    if (strcmp(op, "Assign") == 0) pst_nb_attr_b(b, "validate_shape", 1);
    return pst_nb_finish_out(b);
}
pst_output pst_assign(pst_graph *g, pst_output ref, pst_output value, const char *name) {
    return assign_like(g, "Assign", ref, value, name);
}
pst_output pst_assign_add(pst_graph *g, pst_output ref, pst_output value, const char *name) {
    return assign_like(g, "AssignAdd", ref, value, name);
}
pst_output pst_assign_sub(pst_graph *g, pst_output ref, pst_output value, const char *name) {
    return assign_like(g, "AssignSub", ref, value, name);
}

pst_output pst_variable_ex(pst_graph *g, const pst_variable_opts *o) {
    pst_output none = pst_out(NULL, 0);
    if (pst_graph_error(g)) return none;
    if (o->name == NULL || o->name[0] == '\0') {
        pst_graph_set_error(g, PST_E_INVALID, "a variable needs a name");
        return none;
    }
    if (o->device) pst_graph_push_device(g, o->device);
    pst_graph_push_name_scope(g, o->name, 0);
    char *full = strdup(pst_graph_name_scope(g));
    pst_dtype dt = o->dtype;
    pst_shape shape = o->shape;
    pst_output init = o->initial_value;
    if (o->init_fn) {
        init = o->init_fn(g, dt, shape, o->init_ctx);
    } else if (init.node && dt == PST_DT_INVALID) {
        dt = pst_output_dtype(init);
        shape = pst_output_shape(init);
    }
    pst_output var = none;
    if (init.node == NULL && !pst_graph_error(g)) {
        pst_graph_set_error(g, PST_E_INVALID, "variable '%s' has no initial value", full);
    } else if (!pst_graph_error(g)) {
        if (!pst_shape_is_known(&shape)) {
            char buf[128];
            pst_graph_set_error(g, PST_E_INVALID, "variable '%s' needs a fully known shape, got %s",
                                full, pst_shape_str(&shape, buf, sizeof buf));
        }
        pst_node_builder *b = pst_nb_new(g, "VariableV2", NULL);
        pst_nb_exact_name(b, full);
        pst_nb_attr_type(b, "dtype", dt);
        pst_nb_attr_shape(b, "shape", shape);
        pst_nb_attr_s(b, "container", "");
        pst_nb_attr_s(b, "shared_name", "");
        var = pst_nb_finish_out(b);
        /* The initializer and the snapshot go with the variable (colocated). */
        if (var.node) pst_graph_push_device(g, var.node->device);
        pst_assign(g, var, init, "Assign");
        pst_identity(g, var, "read");
        if (var.node) pst_graph_pop_device(g);
    }
    pst_graph_pop_name_scope(g);
    if (o->device) pst_graph_pop_device(g);
    free(full);
    if (pst_graph_error(g)) return none;
    pst_graph_add_to_collection(g, o->local ? PST_LOCAL_VARIABLES : PST_GLOBAL_VARIABLES, var);
    if (o->trainable && !o->local) pst_graph_add_to_collection(g, PST_TRAINABLE_VARIABLES, var);
    for (const char *const *k = o->collections; k && *k; k++)
        pst_graph_add_to_collection(g, *k, var);
    return var;
}

pst_output pst_variable(pst_graph *g, const char *name, pst_output initial_value, int trainable) {
    pst_variable_opts o = {.name = name, .initial_value = initial_value, .trainable = trainable};
    return pst_variable_ex(g, &o);
}

static pst_node *var_child(pst_output var, const char *suffix) {
    if (var.node == NULL || !(var.node->op->flags & PST_OP_VARIABLE)) return NULL;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", var.node->name, suffix);
    return pst_graph_find(var.node->graph, buf);
}

pst_output pst_variable_value(pst_output var) { return pst_out(var_child(var, "read"), 0); }
pst_node *pst_variable_initializer(pst_output var) { return var_child(var, "Assign"); }

pst_node *pst_variables_initializer(pst_graph *g, int n, const pst_output *vars, const char *name) {
    pst_node_builder *b = pst_nb_new(g, "NoOp", name ? name : "init");
    for (int i = 0; i < n; i++) {
        pst_node *init = pst_variable_initializer(vars[i]);
        if (init == NULL) {
            pst_graph_set_error(g, PST_E_NOT_FOUND, "variable '%s' has no initializer '%s/Assign'",
                                vars[i].node ? vars[i].node->name : "?",
                                vars[i].node ? vars[i].node->name : "?");
            break;
        }
        pst_nb_control(b, init);
    }
    return pst_nb_finish(b);
}

pst_node *pst_global_variables_initializer(pst_graph *g) {
    int n;
    const pst_output *v = pst_graph_collection(g, PST_GLOBAL_VARIABLES, &n);
    return pst_variables_initializer(g, n, v, "init");
}

pst_node *pst_local_variables_initializer(pst_graph *g) {
    int n;
    const pst_output *v = pst_graph_collection(g, PST_LOCAL_VARIABLES, &n);
    return pst_variables_initializer(g, n, v, "init_local");
}

static pst_output unary(pst_graph *g, const char *op, pst_output x, const char *name) {
    pst_node_builder *b = pst_nb_new(g, op, name);
    pst_nb_input(b, x);
    if (x.node) pst_nb_attr_type(b, "T", pst_output_dtype(x));
    return pst_nb_finish_out(b);
}
pst_output pst_identity(pst_graph *g, pst_output x, const char *name) {
    return unary(g, "Identity", x, name);
}
pst_output pst_stop_gradient(pst_graph *g, pst_output x, const char *name) {
    return unary(g, "StopGradient", x, name);
}
pst_output pst_zeros_like(pst_graph *g, pst_output x, const char *name) {
    return unary(g, "ZerosLike", x, name);
}
pst_output pst_ones_like(pst_graph *g, pst_output x, const char *name) {
    return unary(g, "OnesLike", x, name);
}
pst_node *pst_no_op(pst_graph *g, const char *name) { return pst_nb_finish(pst_nb_new(g, "NoOp", name)); }

pst_node *pst_group(pst_graph *g, int n, pst_node *const *deps, const char *name) {
    pst_node_builder *b = pst_nb_new(g, "NoOp", name ? name : "group_deps");
    for (int i = 0; i < n; i++) pst_nb_control(b, deps[i]);
    return pst_nb_finish(b);
}

pst_output pst_with_dependencies(pst_graph *g, int n, pst_node *const *deps, pst_output x,
                                 const char *name) {
    pst_node_builder *b = pst_nb_new(g, "Identity", name);
    pst_nb_input(b, x);
    if (x.node) pst_nb_attr_type(b, "T", pst_output_dtype(x));
    for (int i = 0; i < n; i++) pst_nb_control(b, deps[i]);
    return pst_nb_finish_out(b);
}

pst_output pst_add_n(pst_graph *g, int n, const pst_output *xs, const char *name) {
    if (n == 1) return xs[0];
    pst_node_builder *b = pst_nb_new(g, "AddN", name);
    pst_nb_inputs(b, n, xs);
    if (n > 0 && xs[0].node) pst_nb_attr_type(b, "T", pst_output_dtype(xs[0]));
    pst_nb_attr_i(b, "N", n);
    return pst_nb_finish_out(b);
}
