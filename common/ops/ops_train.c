/* Optimizer apply ops: in-place variable updates (see ops_train.h for the formulas). */
#include "ops_train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "op.h"
#include "varstore.h"

#define MAX_REFS 3

/* Locks and fetches the n_refs ref inputs for update; checks shapes against input grad_idx. */
static int begin_refs(pst_kernel_ctx *c, int n_refs, int grad_idx, pst_tensor **t) {
    char a[128], b[128];
    for (int i = 0; i < n_refs; i++) {
        t[i] = pst_var_begin_update(c->input_vars[i], c->status);
        if (t[i] == NULL) {
            for (int j = 0; j < i; j++) pst_var_end_update(c->input_vars[j]);
            return c->status->code;
        }
    }
    const pst_tensor *grad = c->inputs[grad_idx];
    for (int i = 0; i < n_refs; i++)
        if (!pst_shape_equal(&t[i]->shape, &grad->shape) || t[i]->dtype != grad->dtype) {
            int rc = pst_kctx_error(c, PST_E_INVALID,
                                    "variable '%s' is %s %s but the gradient is %s %s",
                                    c->input_vars[i]->name, pst_dtype_name(t[i]->dtype),
                                    pst_shape_str(&t[i]->shape, a, sizeof a),
                                    pst_dtype_name(grad->dtype),
                                    pst_shape_str(&grad->shape, b, sizeof b));
            for (int j = 0; j < n_refs; j++) pst_var_end_update(c->input_vars[j]);
            return rc;
        }
    return 0;
}

static void end_refs(pst_kernel_ctx *c, int n_refs) {
    for (int i = n_refs - 1; i >= 0; i--) pst_var_end_update(c->input_vars[i]);
    pst_kctx_set_output(c, 0, pst_var_read(c->input_vars[0]));
}

static int scalar_arg(pst_kernel_ctx *c, int i, double *out) {
    const pst_tensor *t = c->inputs[i];
    if (t->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "input %d must be a scalar, got %lld elements", i,
                              (long long)t->n);
    *out = pst_tensor_get_f64(t, 0);
    return 0;
}

/* Element loops for float and double; `BODY` uses var[i], grad[i] and slot arrays s1, s2. */
#define APPLY_LOOP(T, BODY)                                                                       \
    do {                                                                                          \
        T *var = (T *)t[0]->data;                                                                 \
        T *s1 = n_refs > 1 ? (T *)t[1]->data : NULL;                                              \
        T *s2 = n_refs > 2 ? (T *)t[2]->data : NULL;                                              \
        const T *grad = (const T *)c->inputs[grad_idx]->data;                                     \
        int64_t n = t[0]->n;                                                                      \
        (void)s1;                                                                                 \
        (void)s2;                                                                                 \
        for (int64_t i = 0; i < n; i++) { BODY; }                                                 \
    } while (0)

#define DISPATCH(BODY_F, BODY_D)                                                                  \
    do {                                                                                          \
        if (t[0]->dtype == PST_FLOAT)                                                             \
            APPLY_LOOP(float, BODY_F);                                                            \
        else if (t[0]->dtype == PST_DOUBLE)                                                       \
            APPLY_LOOP(double, BODY_D);                                                           \
        else {                                                                                    \
            for (int j = 0; j < n_refs; j++) pst_var_end_update(c->input_vars[j]);                \
            return pst_kctx_error(c, PST_E_INVALID, "unsupported dtype %s",                       \
                                  pst_dtype_name(t[0]->dtype));                                   \
        }                                                                                         \
    } while (0)

static int gd_kernel(pst_kernel_ctx *c) {
    double lr = 0;
    pst_tensor *t[MAX_REFS];
    const int n_refs = 1, grad_idx = 2;
    if (scalar_arg(c, 1, &lr) < 0) return c->status->code;
    if (begin_refs(c, n_refs, grad_idx, t) < 0) return c->status->code;
    float lrf = (float)lr;
    DISPATCH(var[i] -= lrf * grad[i], var[i] -= lr * grad[i]);
    end_refs(c, n_refs);
    return 0;
}

static int momentum_kernel(pst_kernel_ctx *c) {
    double lr = 0, mom = 0;
    pst_tensor *t[MAX_REFS];
    const int n_refs = 2, grad_idx = 3;
    if (scalar_arg(c, 2, &lr) < 0 || scalar_arg(c, 4, &mom) < 0) return c->status->code;
    if (begin_refs(c, n_refs, grad_idx, t) < 0) return c->status->code;
    float lrf = (float)lr, momf = (float)mom;
    if (pst_kctx_attr_b(c, "use_nesterov", 0))
        DISPATCH((s1[i] = momf * s1[i] + grad[i], var[i] -= lrf * grad[i] + lrf * momf * s1[i]),
                 (s1[i] = mom * s1[i] + grad[i], var[i] -= lr * grad[i] + lr * mom * s1[i]));
    else
        DISPATCH((s1[i] = momf * s1[i] + grad[i], var[i] -= lrf * s1[i]),
                 (s1[i] = mom * s1[i] + grad[i], var[i] -= lr * s1[i]));
    end_refs(c, n_refs);
    return 0;
}

static int adam_kernel(pst_kernel_ctx *c) {
    double b1p = 0, b2p = 0, lr = 0, b1 = 0, b2 = 0, eps = 0;
    pst_tensor *t[MAX_REFS];
    const int n_refs = 3, grad_idx = 9;
    if (scalar_arg(c, 3, &b1p) < 0 || scalar_arg(c, 4, &b2p) < 0 || scalar_arg(c, 5, &lr) < 0 ||
        scalar_arg(c, 6, &b1) < 0 || scalar_arg(c, 7, &b2) < 0 || scalar_arg(c, 8, &eps) < 0)
        return c->status->code;
    if (begin_refs(c, n_refs, grad_idx, t) < 0) return c->status->code;
    double lr_t = lr * sqrt(1 - b2p) / (1 - b1p);
    float lrtf = (float)lr_t, b1f = (float)(1 - b1), b2f = (float)(1 - b2), epsf = (float)eps;
    DISPATCH((s1[i] += (grad[i] - s1[i]) * b1f, s2[i] += (grad[i] * grad[i] - s2[i]) * b2f,
              var[i] -= lrtf * s1[i] / (sqrtf(s2[i]) + epsf)),
             (s1[i] += (grad[i] - s1[i]) * (1 - b1), s2[i] += (grad[i] * grad[i] - s2[i]) * (1 - b2),
              var[i] -= lr_t * s1[i] / (sqrt(s2[i]) + eps)));
    end_refs(c, n_refs);
    return 0;
}

static int adagrad_kernel(pst_kernel_ctx *c) {
    double lr = 0;
    pst_tensor *t[MAX_REFS];
    const int n_refs = 2, grad_idx = 3;
    if (scalar_arg(c, 2, &lr) < 0) return c->status->code;
    if (begin_refs(c, n_refs, grad_idx, t) < 0) return c->status->code;
    float lrf = (float)lr;
    DISPATCH((s1[i] += grad[i] * grad[i], var[i] -= lrf * grad[i] / sqrtf(s1[i])),
             (s1[i] += grad[i] * grad[i], var[i] -= lr * grad[i] / sqrt(s1[i])));
    end_refs(c, n_refs);
    return 0;
}

static int rmsprop_kernel(pst_kernel_ctx *c) {
    double lr = 0, rho = 0, mom = 0, eps = 0;
    pst_tensor *t[MAX_REFS];
    const int n_refs = 3, grad_idx = 7;
    if (scalar_arg(c, 3, &lr) < 0 || scalar_arg(c, 4, &rho) < 0 || scalar_arg(c, 5, &mom) < 0 ||
        scalar_arg(c, 6, &eps) < 0)
        return c->status->code;
    if (begin_refs(c, n_refs, grad_idx, t) < 0) return c->status->code;
    float lrf = (float)lr, rhof = (float)rho, momf = (float)mom, epsf = (float)eps;
    DISPATCH((s1[i] = rhof * s1[i] + (1 - rhof) * grad[i] * grad[i],
              s2[i] = momf * s2[i] + lrf * grad[i] / sqrtf(s1[i] + epsf), var[i] -= s2[i]),
             (s1[i] = rho * s1[i] + (1 - rho) * grad[i] * grad[i],
              s2[i] = mom * s2[i] + lr * grad[i] / sqrt(s1[i] + eps), var[i] -= s2[i]));
    end_refs(c, n_refs);
    return 0;
}

static int scatter_sub_kernel(pst_kernel_ctx *c) {
    const pst_tensor *idx = c->inputs[1], *upd = c->inputs[2];
    pst_status *st = c->status;
    double sign = strcmp(c->op->name, "ScatterAdd") == 0 ? 1 : -1; /* ScatterSub: -1 */
    pst_tensor *var = pst_var_begin_update(c->input_vars[0], st);
    if (var == NULL) return st->code;
    int rc = 0;
    int64_t rows = var->shape.rank > 0 ? var->shape.dims[0] : 1;
    int64_t row = rows > 0 ? var->n / rows : 0;
    if (var->dtype != upd->dtype || upd->n != idx->n * row) {
        rc = pst_kctx_error(c, PST_E_INVALID,
                            "updates for variable '%s' must be %s with %lld elements, got %lld",
                            c->input_vars[0]->name, pst_dtype_name(var->dtype),
                            (long long)(idx->n * row), (long long)upd->n);
        goto out;
    }
    for (int64_t k = 0; k < idx->n; k++) {
        int64_t r = pst_tensor_get_i64(idx, k);
        if (r < 0 || r >= rows) {
            rc = pst_kctx_error(c, PST_E_OUT_OF_RANGE,
                                "index %lld (position %lld) is out of range for variable '%s' "
                                "with %lld rows",
                                (long long)r, (long long)k, c->input_vars[0]->name, (long long)rows);
            goto out;
        }
        if (var->dtype == PST_FLOAT) {
            float *d = pst_tensor_f32(var) + r * row;
            const float *u = pst_tensor_f32(upd) + k * row;
            for (int64_t j = 0; j < row; j++) d[j] += (float)sign * u[j];
        } else {
            for (int64_t j = 0; j < row; j++)
                pst_tensor_set_f64(var, r * row + j, pst_tensor_get_f64(var, r * row + j) +
                                                         sign * pst_tensor_get_f64(upd, k * row + j));
        }
    }
out:
    pst_var_end_update(c->input_vars[0]);
    if (rc == 0) pst_kctx_set_output(c, 0, pst_var_read(c->input_vars[0]));
    return rc;
}

/* Checks an apply op's inputs: one dtype (indices excepted), slots shaped like the variable. */
static int check_apply_inputs(pst_node *n, pst_status *st) {
    unsigned mask = pst_op_ref_mask(n->op);
    char a[128], b[128];
    pst_shape vs = pst_node_in_shape(n, 0);
    for (int i = 0; i < n->n_inputs; i++) {
        if (pst_node_in_dtype(n, i) != pst_node_in_dtype(n, 0) &&
            strncmp(n->op->name, "Scatter", 7) != 0)
            return pst_status_set(st, PST_E_INVALID, "input %d ('%s') is %s, the variable is %s",
                                  i, n->inputs[i].node->name,
                                  pst_dtype_name(pst_node_in_dtype(n, i)),
                                  pst_dtype_name(pst_node_in_dtype(n, 0)));
        if ((mask >> i) & 1) {
            pst_shape s = pst_node_in_shape(n, i);
            if (!pst_shape_compatible(&s, &vs))
                return pst_status_set(st, PST_E_INVALID, "slot '%s' has shape %s, variable %s",
                                      n->inputs[i].node->name, pst_shape_str(&s, a, sizeof a),
                                      pst_shape_str(&vs, b, sizeof b));
        }
    }
    return 0;
}

static int apply_shape(pst_node *n, pst_status *st) {
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 0));
    return check_apply_inputs(n, st);
}

/* ResourceApply*: the same update on resource variables (ops_resource.c: a handle is the
 * variable), with no output. */
static int resource_apply_kernel(pst_kernel_ctx *c) {
    static const struct {
        const char *name;
        pst_kernel_fn k;
    } inner[] = {{"ResourceApplyGradientDescent", gd_kernel},
                 {"ResourceApplyMomentum", momentum_kernel},
                 {"ResourceApplyAdam", adam_kernel},
                 {"ResourceApplyAdagrad", adagrad_kernel},
                 {"ResourceApplyRMSProp", rmsprop_kernel}};
    for (size_t i = 0; i < sizeof inner / sizeof inner[0]; i++) {
        if (strcmp(c->op->name, inner[i].name) != 0) continue;
        pst_tensor *out[1] = {NULL};
        pst_var *outv[1] = {NULL};
        pst_kernel_ctx r = *c;
        r.n_outputs = 1;
        r.outputs = out;
        r.output_vars = outv;
        int rc = inner[i].k(&r);
        pst_tensor_unref(out[0]);
        return rc;
    }
    return pst_kctx_error(c, PST_E_INTERNAL, "no kernel for %s", c->op->name);
}

static const pst_attr_spec apply_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                            {"use_locking", PST_ATTR_BOOL, 0},
                                            {"use_nesterov", PST_ATTR_BOOL, 0},
                                            {"update_slots", PST_ATTR_BOOL, 0},
                                            {0}};
static const pst_attr_spec scatter_attrs[] = {
    {"T", PST_ATTR_TYPE, 0}, {"Tindices", PST_ATTR_TYPE, 0}, {"use_locking", PST_ATTR_BOOL, 0},
    {0}};

#define APPLY_OP(var_, opname, nin, kern, mask)                                                  \
    static const pst_op_def var_ = {.name = opname,                                               \
                                    .min_inputs = nin,                                            \
                                    .max_inputs = nin,                                            \
                                    .n_outputs = 1,                                               \
                                    .attrs = apply_attrs,                                         \
                                    .shape = apply_shape,                                         \
                                    .kernel = kern,                                               \
                                    .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE,         \
                                    .ref_mask = mask}
APPLY_OP(gd_op, "ApplyGradientDescent", 3, gd_kernel, 0x1);
APPLY_OP(momentum_op, "ApplyMomentum", 5, momentum_kernel, 0x3);
APPLY_OP(adam_op, "ApplyAdam", 10, adam_kernel, 0x7);
APPLY_OP(adagrad_op, "ApplyAdagrad", 4, adagrad_kernel, 0x3);
APPLY_OP(rmsprop_op, "ApplyRMSProp", 8, rmsprop_kernel, 0x7);
#define RESOURCE_APPLY_OP(var_, opname, nin, mask)                                                \
    static const pst_op_def var_ = {.name = opname,                                               \
                                    .min_inputs = nin,                                            \
                                    .max_inputs = nin,                                            \
                                    .n_outputs = 0,                                               \
                                    .attrs = apply_attrs,                                         \
                                    .shape = check_apply_inputs,                                  \
                                    .kernel = resource_apply_kernel,                              \
                                    .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE,         \
                                    .ref_mask = mask}
RESOURCE_APPLY_OP(res_gd_op, "ResourceApplyGradientDescent", 3, 0x1);
RESOURCE_APPLY_OP(res_momentum_op, "ResourceApplyMomentum", 5, 0x3);
RESOURCE_APPLY_OP(res_adam_op, "ResourceApplyAdam", 10, 0x7);
RESOURCE_APPLY_OP(res_adagrad_op, "ResourceApplyAdagrad", 4, 0x3);
RESOURCE_APPLY_OP(res_rmsprop_op, "ResourceApplyRMSProp", 8, 0x7);
static const pst_op_def scatter_sub_op = {.name = "ScatterSub",
                                          .min_inputs = 3,
                                          .max_inputs = 3,
                                          .n_outputs = 1,
                                          .attrs = scatter_attrs,
                                          .shape = apply_shape,
                                          .kernel = scatter_sub_kernel,
                                          .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE,
                                          .ref_mask = 0x1};

static const pst_op_def scatter_add_op = {.name = "ScatterAdd",
                                          .min_inputs = 3,
                                          .max_inputs = 3,
                                          .n_outputs = 1,
                                          .attrs = scatter_attrs,
                                          .shape = apply_shape,
                                          .kernel = scatter_sub_kernel,
                                          .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE,
                                          .ref_mask = 0x1};

pst_output pst_sync_assign_once(pst_graph *g, pst_output ref, pst_output value,
                                pst_output local_step, const char *name) {
    pst_node_builder *b = pst_nb_new(g, "PstSyncAssignOnce", name);
    pst_nb_input(b, ref);
    pst_nb_input(b, value);
    pst_nb_input(b, local_step);
    if (ref.node) {
        pst_nb_attr_type(b, "T", pst_output_dtype(ref));
        pst_nb_device(b, ref.node->device);
    }
    return pst_nb_finish_out(b);
}

void pst__register_train_ops(void) {
    pst_op_register(&gd_op);
    pst_op_register(&momentum_op);
    pst_op_register(&adam_op);
    pst_op_register(&adagrad_op);
    pst_op_register(&rmsprop_op);
    pst_op_register(&res_gd_op);
    pst_op_register(&res_momentum_op);
    pst_op_register(&res_adam_op);
    pst_op_register(&res_adagrad_op);
    pst_op_register(&res_rmsprop_op);
    pst_op_register(&scatter_sub_op);
    pst_op_register(&scatter_add_op);
}

static pst_output apply(pst_graph *g, const char *op, int n, const pst_output *in,
                        const char *name) {
    pst_node_builder *b = pst_nb_new(g, op, name);
    pst_nb_inputs(b, n, in);
    if (in[0].node) pst_nb_attr_type(b, "T", pst_output_dtype(in[0]));
    pst_nb_attr_b(b, "use_locking", 1);
    /* Apply ops run where their variable lives. */
    if (in[0].node) pst_nb_device(b, in[0].node->device);
    return pst_nb_finish_out(b);
}

pst_output pst_apply_gradient_descent(pst_graph *g, pst_output var, pst_output lr, pst_output grad,
                                      const char *name) {
    pst_output in[] = {var, lr, grad};
    return apply(g, "ApplyGradientDescent", 3, in, name);
}

pst_output pst_apply_momentum(pst_graph *g, pst_output var, pst_output accum, pst_output lr,
                              pst_output grad, pst_output momentum, int use_nesterov,
                              const char *name) {
    pst_output in[] = {var, accum, lr, grad, momentum};
    pst_node_builder *b = pst_nb_new(g, "ApplyMomentum", name);
    pst_nb_inputs(b, 5, in);
    if (var.node) {
        pst_nb_attr_type(b, "T", pst_output_dtype(var));
        pst_nb_device(b, var.node->device);
    }
    pst_nb_attr_b(b, "use_locking", 1);
    pst_nb_attr_b(b, "use_nesterov", use_nesterov);
    return pst_nb_finish_out(b);
}

pst_output pst_apply_adam(pst_graph *g, pst_output var, pst_output m, pst_output v,
                          pst_output beta1_power, pst_output beta2_power, pst_output lr,
                          pst_output beta1, pst_output beta2, pst_output epsilon, pst_output grad,
                          const char *name) {
    pst_output in[] = {var, m, v, beta1_power, beta2_power, lr, beta1, beta2, epsilon, grad};
    return apply(g, "ApplyAdam", 10, in, name);
}

pst_output pst_apply_adagrad(pst_graph *g, pst_output var, pst_output accum, pst_output lr,
                             pst_output grad, const char *name) {
    pst_output in[] = {var, accum, lr, grad};
    return apply(g, "ApplyAdagrad", 4, in, name);
}

pst_output pst_apply_rms_prop(pst_graph *g, pst_output var, pst_output ms, pst_output mom,
                              pst_output lr, pst_output rho, pst_output momentum,
                              pst_output epsilon, pst_output grad, const char *name) {
    pst_output in[] = {var, ms, mom, lr, rho, momentum, epsilon, grad};
    return apply(g, "ApplyRMSProp", 8, in, name);
}

pst_output pst_scatter_sub(pst_graph *g, pst_output var, pst_output indices, pst_output updates,
                           const char *name) {
    pst_node_builder *b = pst_nb_new(g, "ScatterSub", name);
    pst_nb_input(b, var);
    pst_nb_input(b, indices);
    pst_nb_input(b, updates);
    if (var.node) {
        pst_nb_attr_type(b, "T", pst_output_dtype(var));
        pst_nb_device(b, var.node->device);
    }
    if (indices.node) pst_nb_attr_type(b, "Tindices", pst_output_dtype(indices));
    pst_nb_attr_b(b, "use_locking", 1);
    return pst_nb_finish_out(b);
}

pst_output pst_sync_apply(pst_graph *g, const char *apply_op, int n, const pst_output *inputs,
                          pst_output local_step, int replicas_to_aggregate, int total_replicas,
                          int use_nesterov, int64_t last_step, const char *name) {
    char opname[64];
    snprintf(opname, sizeof opname, "PstSync%s", apply_op);
    pst_node_builder *b = pst_nb_new(g, opname, name);
    pst_nb_inputs(b, n, inputs);
    pst_nb_input(b, local_step);
    if (inputs[0].node) {
        pst_nb_attr_type(b, "T", pst_output_dtype(inputs[0]));
        pst_nb_device(b, inputs[0].node->device);
    }
    pst_nb_attr_b(b, "use_locking", 1);
    if (strcmp(apply_op, "ApplyMomentum") == 0) pst_nb_attr_b(b, "use_nesterov", use_nesterov);
    pst_nb_attr_i(b, "replicas_to_aggregate", replicas_to_aggregate);
    pst_nb_attr_i(b, "total_replicas", total_replicas);
    if (last_step > 0) pst_nb_attr_i(b, "last_step", last_step);
    return pst_nb_finish_out(b);
}

pst_output pst_sync_round(pst_graph *g, pst_output global_step, pst_output member,
                          int lr_scale_base, const char *name) {
    pst_node_builder *b = pst_nb_new(g, "PstSyncRound", name);
    pst_nb_input(b, global_step);
    pst_nb_input(b, member);
    if (global_step.node) pst_nb_device(b, global_step.node->device);
    pst_nb_attr_i(b, "lr_scale_base", lr_scale_base);
    return pst_nb_finish_out(b);
}

pst_output pst_sync_step_advance(pst_graph *g, pst_output global_step, pst_output local_step,
                                 const char *name) {
    pst_node_builder *b = pst_nb_new(g, "PstSyncStepAdvance", name);
    pst_nb_input(b, global_step);
    pst_nb_input(b, local_step);
    if (global_step.node) pst_nb_device(b, global_step.node->device);
    return pst_nb_finish_out(b);
}
