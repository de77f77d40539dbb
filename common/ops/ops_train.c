/* Optimizer apply ops: in-place variable updates (see ops_train.h for the formulas). */
#include "ops_train.h"

#include <stdio.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "op.h"
#include "parallel.h"
#include "varstore.h"
#include "clock.h"

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
            for (int64_t j = 0; j < row; j++) d[j] -= u[j];
        } else {
            for (int64_t j = 0; j < row; j++)
                pst_tensor_set_f64(var, r * row + j, pst_tensor_get_f64(var, r * row + j) -
                                                         pst_tensor_get_f64(upd, k * row + j));
        }
    }
out:
    pst_var_end_update(c->input_vars[0]);
    if (rc == 0) pst_kctx_set_output(c, 0, pst_var_read(c->input_vars[0]));
    return rc;
}

static int apply_shape(pst_node *n, pst_status *st) {
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 0));
    unsigned mask = pst_op_ref_mask(n->op);
    char a[128], b[128];
    pst_shape vs = pst_node_in_shape(n, 0);
    int sync = strncmp(n->op->name, "PstSync", 7) == 0;
    int last = sync ? n->n_inputs - 1 : n->n_inputs;
    if (sync && pst_node_in_dtype(n, last) != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "the local step (input %d) must be int64", last);
    for (int i = 0; i < last; i++) {
        if (pst_node_in_dtype(n, i) != pst_node_in_dtype(n, 0) &&
            strcmp(n->op->name, "ScatterSub") != 0)
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
static const pst_op_def scatter_sub_op = {.name = "ScatterSub",
                                          .min_inputs = 3,
                                          .max_inputs = 3,
                                          .n_outputs = 1,
                                          .attrs = scatter_attrs,
                                          .shape = apply_shape,
                                          .kernel = scatter_sub_kernel,
                                          .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE,
                                          .ref_mask = 0x1};

/* ---- Synchronous replicas -------------------------------------------------------------- */

#define SYNC_TIMEOUT_MS_DEFAULT 300000

static int add_into(pst_tensor *sum, const pst_tensor *g) {
    if (sum->dtype == PST_FLOAT) {
        float *d = pst_tensor_f32(sum);
        const float *x = pst_tensor_f32(g);
        for (int64_t i = 0; i < sum->n; i++) d[i] += x[i];
    } else {
        for (int64_t i = 0; i < sum->n; i++)
            pst_tensor_set_f64(sum, i, pst_tensor_get_f64(sum, i) + pst_tensor_get_f64(g, i));
    }
    return 0;
}

static void scale(pst_tensor *t, double k) {
    if (t->dtype == PST_FLOAT) {
        float *d = pst_tensor_f32(t), kf = (float)k;
        for (int64_t i = 0; i < t->n; i++) d[i] *= kf;
    } else {
        for (int64_t i = 0; i < t->n; i++) pst_tensor_set_f64(t, i, pst_tensor_get_f64(t, i) * k);
    }
}

/* Accumulates this replica's gradient for its step; the replica completing the set averages
 * the gradients and applies them with `inner` (the asynchronous kernel); the others wait until
 * the step is applied. A gradient for a step already applied is dropped and counted. */
static int sync_apply(pst_kernel_ctx *c, pst_kernel_fn inner, int grad_idx) {
    pst_var *v = c->input_vars[0];
    int64_t step = pst_tensor_get_i64(c->inputs[c->n_inputs - 1], 0);
    int64_t need = pst_kctx_attr_i(c, "replicas_to_aggregate", 1);
    int64_t timeout = pst_kctx_attr_i(c, "timeout_ms", SYNC_TIMEOUT_MS_DEFAULT);
    const pst_tensor *grad = c->inputs[grad_idx];
    int rc = 0;
    pthread_mutex_lock(&v->sync_mu);
    if (step < v->sync_step) {
        v->n_stale++;
        goto done;
    }
    if (step > v->sync_step) {
        /* Replicas of an earlier step never completed it; their partial sum is stale. */
        v->n_stale += v->sync_count;
        v->sync_step = step;
        v->sync_count = 0;
        pst_tensor_unref(v->sync_sum);
        v->sync_sum = NULL;
    }
    if (v->sync_sum == NULL) {
        v->sync_sum = pst_tensor_clone(grad, c->status);
        if (v->sync_sum == NULL) {
            rc = c->status->code;
            goto done;
        }
    } else if (!pst_shape_equal(&v->sync_sum->shape, &grad->shape)) {
        rc = pst_kctx_error(c, PST_E_INVALID, "gradient shapes of variable '%s' differ between "
                            "replicas", v->name);
        goto done;
    } else {
        add_into(v->sync_sum, grad);
    }
    if (++v->sync_count >= need) {
        scale(v->sync_sum, 1.0 / (double)v->sync_count);
        pst_tensor *ins[16];
        PST_ASSERT(c->n_inputs <= 16);
        for (int i = 0; i < c->n_inputs; i++) ins[i] = c->inputs[i];
        ins[grad_idx] = v->sync_sum;
        pst_kernel_ctx c2 = *c;
        c2.inputs = ins;
        c2.n_inputs = c->n_inputs - 1;
        rc = inner(&c2);
        v->sync_step = step + 1;
        v->sync_count = 0;
        pst_tensor_unref(v->sync_sum);
        v->sync_sum = NULL;
        pthread_cond_broadcast(&v->sync_cv);
        pthread_mutex_unlock(&v->sync_mu);
        return rc;
    }
    struct timespec dl;
    pst_clock_deadline_in(&dl, timeout);
    int64_t total = pst_kctx_attr_i(c, "total_replicas", 0);
    if (total < need) total = need;
    while (v->sync_step <= step && rc == 0)
        if (total - v->sync_lost < need)
            rc = pst_kctx_error(c, PST_E_ABORTED,
                                "step %lld of variable '%s' cannot gather the gradients of %lld "
                                "replicas: %d of %lld replicas failed (%s)",
                                (long long)step, v->name, (long long)need, v->sync_lost,
                                (long long)total, v->sync_lost_why ? v->sync_lost_why : "");
        else if (pthread_cond_timedwait(&v->sync_cv, &v->sync_mu, &dl) == ETIMEDOUT)
            rc = pst_kctx_error(c, PST_E_DEADLINE,
                                "waited %lld ms for the gradients of %lld replicas for step %lld "
                                "of variable '%s'; %d arrived",
                                (long long)timeout, (long long)need, (long long)step, v->name,
                                v->sync_count);
done:
    pthread_mutex_unlock(&v->sync_mu);
    if (rc == 0) pst_kctx_set_output(c, 0, pst_var_read(v));
    return rc;
}

static int sync_gd_kernel(pst_kernel_ctx *c) { return sync_apply(c, gd_kernel, 2); }
static int sync_momentum_kernel(pst_kernel_ctx *c) { return sync_apply(c, momentum_kernel, 3); }
static int sync_adam_kernel(pst_kernel_ctx *c) { return sync_apply(c, adam_kernel, 9); }
static int sync_adagrad_kernel(pst_kernel_ctx *c) { return sync_apply(c, adagrad_kernel, 3); }
static int sync_rmsprop_kernel(pst_kernel_ctx *c) { return sync_apply(c, rmsprop_kernel, 7); }

/* global_step := local_step + 1 if it still equals local_step: every replica runs it after its
 * updates, the step advances once. */
static int sync_step_kernel(pst_kernel_ctx *c) {
    pst_var *v = c->input_vars[0];
    int64_t local = pst_tensor_get_i64(c->inputs[1], 0);
    pst_tensor *t = pst_var_begin_update(v, c->status);
    if (t == NULL) return c->status->code;
    if (t->dtype != PST_INT64 || t->n != 1) {
        pst_var_end_update(v);
        return pst_kctx_error(c, PST_E_INVALID, "global step '%s' must be an int64 scalar",
                              v->name);
    }
    if (pst_tensor_i64(t)[0] == local) pst_tensor_i64(t)[0] = local + 1;
    pst_var_end_update(v);
    pst_kctx_set_output(c, 0, pst_var_read(v));
    return 0;
}

static const pst_attr_spec sync_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                           {"use_locking", PST_ATTR_BOOL, 0},
                                           {"use_nesterov", PST_ATTR_BOOL, 0},
                                           {"replicas_to_aggregate", PST_ATTR_INT, 1},
                                           {"total_replicas", PST_ATTR_INT, 0},
                                           {"timeout_ms", PST_ATTR_INT, 0},
                                           {0}};

#define SYNC_OP(var_, opname, nin, kern, mask)                                                    \
    static const pst_op_def var_ = {.name = opname,                                               \
                                    .min_inputs = nin + 1,                                        \
                                    .max_inputs = nin + 1,                                        \
                                    .n_outputs = 1,                                               \
                                    .attrs = sync_attrs,                                          \
                                    .shape = apply_shape,                                         \
                                    .kernel = kern,                                               \
                                    .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE,         \
                                    .ref_mask = mask}
SYNC_OP(sync_gd_op, "PstSyncApplyGradientDescent", 3, sync_gd_kernel, 0x1);
SYNC_OP(sync_momentum_op, "PstSyncApplyMomentum", 5, sync_momentum_kernel, 0x3);
SYNC_OP(sync_adam_op, "PstSyncApplyAdam", 10, sync_adam_kernel, 0x7);
SYNC_OP(sync_adagrad_op, "PstSyncApplyAdagrad", 4, sync_adagrad_kernel, 0x3);
SYNC_OP(sync_rmsprop_op, "PstSyncApplyRMSProp", 8, sync_rmsprop_kernel, 0x7);

static int sync_step_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_INT64 || pst_node_in_dtype(n, 1) != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "global step and local step must be int64");
    pst_node_set_output(n, 0, PST_INT64, pst_shape_scalar());
    return 0;
}
static const pst_op_def sync_step_op = {.name = "PstSyncStepAdvance",
                                        .min_inputs = 2,
                                        .max_inputs = 2,
                                        .n_outputs = 1,
                                        .shape = sync_step_shape,
                                        .kernel = sync_step_kernel,
                                        .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE,
                                        .ref_mask = 0x1};

/* PstSyncAssignOnce(ref, value, local_step): ref := value unless a replica already did it for
 * this step (the variable's sync_step records the last step assigned): Adam's bias-correction
 * powers advance once per synchronous step however many replicas run the assignment. */
static int sync_assign_once_kernel(pst_kernel_ctx *c) {
    pst_var *v = c->input_vars[0];
    int64_t local = pst_tensor_get_i64(c->inputs[2], 0);
    int rc = 0;
    pthread_mutex_lock(&v->sync_mu);
    if (local >= v->sync_step) {
        rc = pst_var_assign(v, c->inputs[1], 1, c->status);
        if (rc == 0) v->sync_step = local + 1;
    }
    pthread_mutex_unlock(&v->sync_mu);
    if (rc < 0) return rc;
    pst_kctx_set_output(c, 0, pst_var_read(v));
    return 0;
}

static int sync_assign_once_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 2) != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "local step must be int64");
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 0));
    return 0;
}

static const pst_attr_spec sync_assign_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_op_def sync_assign_once_op = {.name = "PstSyncAssignOnce",
                                               .min_inputs = 3,
                                               .max_inputs = 3,
                                               .n_outputs = 1,
                                               .attrs = sync_assign_attrs,
                                               .shape = sync_assign_once_shape,
                                               .kernel = sync_assign_once_kernel,
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
    pst_op_register(&sync_assign_once_op);
    pst_op_register(&sync_gd_op);
    pst_op_register(&sync_momentum_op);
    pst_op_register(&sync_adam_op);
    pst_op_register(&sync_adagrad_op);
    pst_op_register(&sync_rmsprop_op);
    pst_op_register(&sync_step_op);
    pst_op_register(&gd_op);
    pst_op_register(&momentum_op);
    pst_op_register(&adam_op);
    pst_op_register(&adagrad_op);
    pst_op_register(&rmsprop_op);
    pst_op_register(&scatter_sub_op);
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
                          int use_nesterov, const char *name) {
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
