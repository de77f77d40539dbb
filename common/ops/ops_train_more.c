/* More optimizer apply ops, as TF 1.x graphs hold them: AdaMax, AddSign, PowerSign, proximal
 * gradient descent and Adagrad, centered RMSProp (DQN's), FTRL (ApplyFtrl, ApplyFtrlV2, the
 * default of Estimators' linear models), Adadelta (ApplyAdadelta), the row-wise sparse
 * updates of embeddings trained through tf.gather (SparseApply{Momentum,Adagrad,RMSProp,Ftrl,
 * FtrlV2,Adadelta}), and every one of them again on resource variables (ResourceApply...,
 * ResourceSparseApply...: no output). The formulas are TF's training_ops:
 *
 *   Adagrad   accum += g^2; var -= lr g / sqrt(accum)
 *   Momentum  accum = m accum + g; var -= lr accum (nesterov: lr g + lr m accum)
 *   RMSProp   ms = rho ms + (1-rho) g^2; mom = m mom + lr g / sqrt(ms + eps); var -= mom
 *   Centered RMSProp  mg = rho mg + (1-rho) g; ms as RMSProp;
 *             mom = m mom + lr g / sqrt(ms - mg^2 + eps); var -= mom
 *   AdaMax    m = b1 m + (1-b1) g; v = max(b2 v, |g|); var -= lr / (1 - b1^t) m / (v + eps)
 *   AddSign / PowerSign  m = beta m + (1-beta) g; var -= lr g (alpha + d sign(g) sign(m)) /
 *             lr g exp(logbase d sign(g) sign(m))
 *   Proximal GD / Adagrad  var = prox(var - lr g) with lr / sqrt(accum) for Adagrad, where
 *             prox(v) = sign(v) max(|v| - lr l1, 0) / (1 + lr l2)
 *   Adadelta  accum = rho accum + (1-rho) g^2; u = sqrt(upd + eps) / sqrt(accum + eps) g;
 *             upd = rho upd + (1-rho) u^2; var -= lr u
 *   AdagradV2 accum += g^2; var -= lr g / (sqrt(accum) + epsilon)
 *   Keras momentum (tf.keras SGD, TF 1.14+)  accum = m accum - lr g;
 *             var += accum (nesterov: m accum - lr g)
 *   Adam with AMSGrad  m, v as Adam; vhat = max(vhat, v);
 *             var -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(vhat) + eps)
 *   Adagrad DA  ga += g; gg += g^2; var = -lr sign(ga) max(|ga| - l1 t, 0) / (l2 t lr + sqrt(gg))
 *             (t the global step; without l1: -lr ga / (l2 t lr + sqrt(gg)))
 *   Ftrl      (g' = g + 2 l2_shrinkage var for V2) n = accum + g^2;
 *             linear += g' - (n^-p - accum^-p) / lr var; accum = n;
 *             var = |linear| > l1 ? (sign(linear) l1 - linear) / (n^-p / lr + 2 l2) : 0
 *
 * Sparse forms update the rows `indices` names, in order (a repeated row is updated twice),
 * with grad holding one row per index. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "varstore.h"

enum { OPT_MOMENTUM, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADADELTA, OPT_FTRL, OPT_FTRL_V2, OPT_CRMSPROP,
       OPT_ADAMAX, OPT_ADDSIGN, OPT_POWERSIGN, OPT_PROX_GD, OPT_PROX_ADAGRAD, OPT_ADAGRAD_V2,
       OPT_KERAS_MOMENTUM, OPT_AMSGRAD, OPT_ADAGRAD_DA };

static double sgn(double v) { return (v > 0) - (v < 0); }

/* The proximal step: soft-threshold by l1, shrink by l2 (lr the step's rate). */
static double prox(double v, double lr, double l1, double l2) {
    return sgn(v) * fmax(fabs(v) - lr * l1, 0) / (1 + lr * l2);
}

/* One element: x[0] the variable, x[1..3] its slots; h the scalar hyperparameters in the
 * op's input order; flag: use_nesterov (Momentum) or update_slots (Adagrad). */
static void update(int opt, double *x, double g, const double *h, int flag) {
    switch (opt) {
    case OPT_MOMENTUM: /* lr, momentum */
        x[1] = h[1] * x[1] + g;
        x[0] -= flag ? h[0] * g + h[0] * h[1] * x[1] : h[0] * x[1];
        break;
    case OPT_ADAGRAD: /* lr */
        if (flag) x[1] += g * g;
        x[0] -= h[0] * g / sqrt(x[1]);
        break;
    case OPT_RMSPROP: /* lr, rho, momentum, epsilon */
        x[1] = h[1] * x[1] + (1 - h[1]) * g * g;
        x[2] = h[2] * x[2] + h[0] * g / sqrt(x[1] + h[3]);
        x[0] -= x[2];
        break;
    case OPT_CRMSPROP: /* lr, rho, momentum, epsilon; x: var, mg, ms, mom */
        x[1] = h[1] * x[1] + (1 - h[1]) * g;
        x[2] = h[1] * x[2] + (1 - h[1]) * g * g;
        x[3] = h[2] * x[3] + h[0] * g / sqrt(x[2] - x[1] * x[1] + h[3]);
        x[0] -= x[3];
        break;
    case OPT_ADAMAX: /* beta1_power, lr, beta1, beta2, epsilon; x: var, m, v */
        x[1] = h[2] * x[1] + (1 - h[2]) * g;
        x[2] = fmax(h[3] * x[2], fabs(g));
        x[0] -= h[1] / (1 - h[0]) * x[1] / (x[2] + h[4]);
        break;
    case OPT_ADDSIGN:   /* lr, alpha, sign_decay, beta */
    case OPT_POWERSIGN: /* lr, logbase, sign_decay, beta */
        x[1] = h[3] * x[1] + (1 - h[3]) * g;
        x[0] -= h[0] * g * (opt == OPT_ADDSIGN ? h[1] + h[2] * sgn(g) * sgn(x[1])
                                               : exp(h[1] * h[2] * sgn(g) * sgn(x[1])));
        break;
    case OPT_PROX_GD: /* alpha, l1, l2 */
        x[0] = prox(x[0] - h[0] * g, h[0], h[1], h[2]);
        break;
    case OPT_PROX_ADAGRAD: { /* lr, l1, l2 */
        x[1] += g * g;
        double lr = h[0] / sqrt(x[1]);
        x[0] = prox(x[0] - lr * g, lr, h[1], h[2]);
        break;
    }
    case OPT_ADADELTA: { /* lr, rho, epsilon */
        x[1] = h[1] * x[1] + (1 - h[1]) * g * g;
        double u = sqrt(x[2] + h[2]) / sqrt(x[1] + h[2]) * g;
        x[2] = h[1] * x[2] + (1 - h[1]) * u * u;
        x[0] -= h[0] * u;
        break;
    }
    case OPT_ADAGRAD_V2: /* lr, epsilon */
        if (flag) x[1] += g * g;
        x[0] -= h[0] * g / (sqrt(x[1]) + h[1]);
        break;
    case OPT_KERAS_MOMENTUM: /* lr, momentum */
        x[1] = x[1] * h[1] - h[0] * g;
        x[0] += flag ? x[1] * h[1] - h[0] * g : x[1];
        break;
    case OPT_AMSGRAD: { /* beta1_power, beta2_power, lr, beta1, beta2, epsilon; x: var, m, v, vhat */
        double lr = h[2] * sqrt(1 - h[1]) / (1 - h[0]);
        x[1] = h[3] * x[1] + (1 - h[3]) * g;
        x[2] = h[4] * x[2] + (1 - h[4]) * g * g;
        x[3] = fmax(x[3], x[2]);
        x[0] -= lr * x[1] / (sqrt(x[3]) + h[5]);
        break;
    }
    case OPT_ADAGRAD_DA: { /* lr, l1, l2, global_step; x: var, grad accum, squared accum */
        x[1] += g;
        x[2] += g * g;
        double den = h[2] * h[3] * h[0] + sqrt(x[2]);
        x[0] = h[1] > 0 ? -h[0] * sgn(x[1]) * fmax(fabs(x[1]) - h[3] * h[1], 0) / den : -h[0] * x[1] / den;
        break;
    }
    case OPT_FTRL:
    case OPT_FTRL_V2: { /* lr, l1, l2, [l2_shrinkage,] lr_power */
        double lr = h[0], l1 = h[1], l2 = h[2], p = opt == OPT_FTRL_V2 ? h[4] : h[3];
        double gs = opt == OPT_FTRL_V2 ? g + 2 * h[3] * x[0] : g;
        double n = x[1] + g * g;
        x[2] += gs - (pow(n, -p) - pow(x[1], -p)) / lr * x[0];
        double quad = pow(n, -p) / lr + 2 * l2;
        x[0] = fabs(x[2]) > l1 ? ((x[2] > 0 ? l1 : -l1) - x[2]) / quad : 0;
        x[1] = n;
        break;
    }
    }
}

typedef struct apply_def {
    const char *name; /* without the Resource prefix */
    int opt, n_in, n_refs, grad, indices; /* input positions; indices -1: dense */
    int hyper[6], n_hyper;
    int resource_only; /* TF has only the ResourceApply... form */
} apply_def;

static const apply_def defs[] = {
    {"ApplyAdadelta", OPT_ADADELTA, 7, 3, 6, -1, {3, 4, 5}, 3, 0},
    {"ApplyFtrl", OPT_FTRL, 8, 3, 3, -1, {4, 5, 6, 7}, 4, 0},
    {"ApplyFtrlV2", OPT_FTRL_V2, 9, 3, 3, -1, {4, 5, 6, 7, 8}, 5, 0},
    {"SparseApplyMomentum", OPT_MOMENTUM, 6, 2, 3, 4, {2, 5}, 2, 0},
    {"SparseApplyAdagrad", OPT_ADAGRAD, 5, 2, 3, 4, {2}, 1, 0},
    {"SparseApplyRMSProp", OPT_RMSPROP, 9, 3, 7, 8, {3, 4, 5, 6}, 4, 0},
    {"SparseApplyAdadelta", OPT_ADADELTA, 8, 3, 6, 7, {3, 4, 5}, 3, 0},
    {"SparseApplyFtrl", OPT_FTRL, 9, 3, 3, 4, {5, 6, 7, 8}, 4, 0},
    {"SparseApplyFtrlV2", OPT_FTRL_V2, 10, 3, 3, 4, {5, 6, 7, 8, 9}, 5, 0},
    {"ApplyCenteredRMSProp", OPT_CRMSPROP, 9, 4, 8, -1, {4, 5, 6, 7}, 4, 0},
    {"SparseApplyCenteredRMSProp", OPT_CRMSPROP, 10, 4, 8, 9, {4, 5, 6, 7}, 4, 0},
    {"ApplyAdaMax", OPT_ADAMAX, 9, 3, 8, -1, {3, 4, 5, 6, 7}, 5, 0},
    {"ApplyAddSign", OPT_ADDSIGN, 7, 2, 6, -1, {2, 3, 4, 5}, 4, 0},
    {"ApplyPowerSign", OPT_POWERSIGN, 7, 2, 6, -1, {2, 3, 4, 5}, 4, 0},
    {"ApplyProximalGradientDescent", OPT_PROX_GD, 5, 1, 4, -1, {1, 2, 3}, 3, 0},
    {"ApplyProximalAdagrad", OPT_PROX_ADAGRAD, 6, 2, 5, -1, {2, 3, 4}, 3, 0},
    {"SparseApplyProximalGradientDescent", OPT_PROX_GD, 6, 1, 4, 5, {1, 2, 3}, 3, 0},
    {"SparseApplyProximalAdagrad", OPT_PROX_ADAGRAD, 7, 2, 5, 6, {2, 3, 4}, 3, 0},
    {"ApplyAdagradV2", OPT_ADAGRAD_V2, 5, 2, 4, -1, {2, 3}, 2, 0},
    {"SparseApplyAdagradV2", OPT_ADAGRAD_V2, 6, 2, 4, 5, {2, 3}, 2, 0},
    {"ApplyKerasMomentum", OPT_KERAS_MOMENTUM, 5, 2, 3, -1, {2, 4}, 2, 1},
    {"SparseApplyKerasMomentum", OPT_KERAS_MOMENTUM, 6, 2, 3, 4, {2, 5}, 2, 1},
    {"ApplyAdamWithAmsgrad", OPT_AMSGRAD, 11, 4, 10, -1, {4, 5, 6, 7, 8, 9}, 6, 1},
    {"ApplyAdagradDA", OPT_ADAGRAD_DA, 8, 3, 3, -1, {4, 5, 6, 7}, 4, 0},
    {"SparseApplyAdagradDA", OPT_ADAGRAD_DA, 9, 3, 3, 4, {5, 6, 7, 8}, 4, 0},
};
#define N_DEFS (sizeof defs / sizeof defs[0])

static const apply_def *def_of(const char *op) {
    if (strncmp(op, "Resource", 8) == 0) op += 8;
    for (size_t i = 0; i < N_DEFS; i++)
        if (strcmp(defs[i].name, op) == 0) return &defs[i];
    return NULL;
}

static int apply_kernel(pst_kernel_ctx *c) {
    const apply_def *d = def_of(c->op->name);
    int resource = strncmp(c->op->name, "Resource", 8) == 0;
    char a[128], b[128];
    double h[6];
    for (int k = 0; k < d->n_hyper; k++) {
        const pst_tensor *t = c->inputs[d->hyper[k]];
        if (t->n != 1)
            return pst_kctx_error(c, PST_E_INVALID, "input %d must be a scalar", d->hyper[k]);
        h[k] = pst_tensor_get_f64(t, 0);
    }
    pst_tensor *t[4];
    for (int i = 0; i < d->n_refs; i++) {
        t[i] = pst_var_begin_update(c->input_vars[i], c->status);
        if (t[i] == NULL) {
            while (--i >= 0) pst_var_end_update(c->input_vars[i]);
            return c->status->code;
        }
    }
    const pst_tensor *g = c->inputs[d->grad], *idx = d->indices >= 0 ? c->inputs[d->indices] : NULL;
    int rc = 0;
    int64_t rows = t[0]->shape.rank > 0 ? t[0]->shape.dims[0] : 1;
    int64_t row = idx ? (rows ? t[0]->n / rows : 0) : t[0]->n, nrows = idx ? idx->n : 1;
    for (int i = 0; i < d->n_refs && rc == 0; i++)
        if (!pst_shape_equal(&t[i]->shape, &t[0]->shape) || t[i]->dtype != t[0]->dtype ||
            !pst_dtype_is_float(t[i]->dtype))
            rc = pst_kctx_error(c, PST_E_INVALID, "slot '%s' is %s %s, variable '%s' %s %s",
                                c->input_vars[i]->name, pst_dtype_name(t[i]->dtype),
                                pst_shape_str(&t[i]->shape, a, sizeof a), c->input_vars[0]->name,
                                pst_dtype_name(t[0]->dtype), pst_shape_str(&t[0]->shape, b, sizeof b));
    if (rc == 0 && (g->dtype != t[0]->dtype || g->n != nrows * row))
        rc = pst_kctx_error(c, PST_E_INVALID, "the gradient is %s %s for variable '%s' %s %s%s",
                            pst_dtype_name(g->dtype), pst_shape_str(&g->shape, a, sizeof a),
                            c->input_vars[0]->name, pst_dtype_name(t[0]->dtype),
                            pst_shape_str(&t[0]->shape, b, sizeof b), idx ? " (rows by indices)" : "");
    for (int64_t k = 0; idx && k < idx->n && rc == 0; k++) {
        int64_t r = pst_tensor_get_i64(idx, k);
        if (r < 0 || r >= rows)
            rc = pst_kctx_error(c, PST_E_INVALID, "indices[%lld] = %lld is not a row of variable "
                                "'%s' (%lld rows)", (long long)k, (long long)r,
                                c->input_vars[0]->name, (long long)rows);
    }
    int flag = d->opt == OPT_ADAGRAD || d->opt == OPT_ADAGRAD_V2 ? pst_kctx_attr_b(c, "update_slots", 1)
                                     : pst_kctx_attr_b(c, "use_nesterov", 0);
    for (int64_t k = 0; k < nrows && rc == 0; k++) {
        int64_t base = idx ? pst_tensor_get_i64(idx, k) * row : 0;
        for (int64_t j = 0; j < row; j++) {
            double x[4] = {0, 0, 0, 0};
            for (int i = 0; i < d->n_refs; i++) x[i] = pst_tensor_get_f64(t[i], base + j);
            update(d->opt, x, pst_tensor_get_f64(g, k * row + j), h, flag);
            for (int i = 0; i < d->n_refs; i++) pst_tensor_set_f64(t[i], base + j, x[i]);
        }
    }
    for (int i = d->n_refs - 1; i >= 0; i--) pst_var_end_update(c->input_vars[i]);
    if (rc == 0 && !resource) pst_kctx_set_output(c, 0, pst_var_read(c->input_vars[0]));
    return rc;
}

static int apply_shape(pst_node *n, pst_status *st) {
    const apply_def *d = def_of(n->op->name);
    for (int k = 0; k < d->n_hyper; k++) {
        pst_shape s = pst_node_in_shape(n, d->hyper[k]);
        if (s.rank > 0 && pst_shape_is_known(&s) && s.dims[0] != 1)
            return pst_status_set(st, PST_E_INVALID, "input %d ('%s') must be a scalar",
                                  d->hyper[k], n->inputs[d->hyper[k]].node->name);
    }
    if (strncmp(n->op->name, "Resource", 8) != 0)
        pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 0));
    return 0;
}

static const pst_attr_spec attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                      {"Tindices", PST_ATTR_TYPE, 0},
                                      {"use_locking", PST_ATTR_BOOL, 0},
                                      {"use_nesterov", PST_ATTR_BOOL, 0},
                                      {"update_slots", PST_ATTR_BOOL, 0},
                                      {"multiply_linear_by_lr", PST_ATTR_BOOL, 0},
                                      {0}};

static pst_op_def ops[2 * N_DEFS];
static char names[N_DEFS][48];

void pst__register_train_more_ops(void) {
    for (size_t i = 0; i < N_DEFS; i++) {
        snprintf(names[i], sizeof names[i], "Resource%s", defs[i].name);
        for (int r = defs[i].resource_only; r < 2; r++) {
            pst_op_def *o = &ops[2 * i + (size_t)r];
            *o = (pst_op_def){.name = r ? names[i] : defs[i].name,
                              .min_inputs = defs[i].n_in,
                              .max_inputs = defs[i].n_in,
                              .n_outputs = r ? 0 : 1,
                              .attrs = attrs,
                              .shape = apply_shape,
                              .kernel = apply_kernel,
                              .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE,
                              .ref_mask = (1u << defs[i].n_refs) - 1};
            pst_op_register(o);
        }
    }
}
