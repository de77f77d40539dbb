/* ps_sync: the synchronous-replica accumulators of a variable store and the PstSync* kernels
 * (see ps_sync.h). */
#include "ps_sync.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "op.h"
#include "strmap.h"

/* One variable's accumulator; every field is guarded by mu. */
typedef struct accum {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t step;     /* the step whose gradients are being accumulated (or next assigned) */
    int count;        /* gradients in sum */
    pst_tensor *sum;
    int64_t stale;    /* gradients dropped because their step had passed */
    int lost;         /* replicas known to have failed, with the latest one's reason */
    char *lost_why;
    pst_status aborted; /* set: every wait fails with it */
} accum;

/* The resource: every accumulator of one store. Lock order: table, then an accumulator. */
typedef struct table {
    pthread_mutex_t mu;
    pst_strmap *accums; /* variable name -> accum */
    int lost;           /* given to accumulators made later */
    char *lost_why;
    pst_status aborted;
} table;

static void *table_make(void *ctx, pst_status *st) {
    (void)ctx;
    table *t = calloc(1, sizeof *t);
    if (t && !(t->accums = pst_strmap_new())) {
        free(t);
        t = NULL;
    }
    if (!t) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory for the sync accumulators");
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

static void table_free(void *p) {
    table *t = p;
    const char *k;
    void *v;
    for (size_t it = 0; pst_strmap_next(t->accums, &it, &k, &v);) {
        accum *a = v;
        pst_tensor_unref(a->sum);
        free(a->lost_why);
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        free(a);
    }
    pst_strmap_free(t->accums);
    free(t->lost_why);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static table *table_of(pst_var_store *vs, pst_status *st) {
    return pst_var_store_resource(vs, PST_PS_SYNC_RESOURCE, table_make, NULL, table_free, st);
}

/* The accumulator of variable `name`, made on first use. NULL with st set when out of memory. */
static accum *accum_of(pst_var_store *vs, const char *name, pst_status *st) {
    table *t = table_of(vs, st);
    if (!t) return NULL;
    pthread_mutex_lock(&t->mu);
    accum *a = pst_strmap_get(t->accums, name);
    if (!a) {
        a = calloc(1, sizeof *a);
        char *why = a && t->lost_why ? strdup(t->lost_why) : NULL;
        if (!a || (t->lost_why && !why) || pst_strmap_put(t->accums, name, a) < 0) {
            free(why);
            free(a);
            a = NULL;
            pst_status_set(st, PST_E_EXHAUSTED, "out of memory for the sync accumulator of "
                           "variable '%s'", name);
        } else {
            pthread_mutex_init(&a->mu, NULL);
            pthread_cond_init(&a->cv, NULL);
            a->lost = t->lost;
            a->lost_why = why;
            a->aborted = t->aborted;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return a;
}

int64_t pst_ps_sync_stale(pst_var_store *vs, const char *var) {
    table *t = pst_var_store_find_resource(vs, PST_PS_SYNC_RESOURCE);
    if (!t) return 0;
    int64_t n = 0;
    pthread_mutex_lock(&t->mu);
    accum *a = pst_strmap_get(t->accums, var);
    if (a) {
        pthread_mutex_lock(&a->mu);
        n = a->stale;
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

void pst_ps_sync_replica_lost(pst_var_store *vs, const char *why) {
    table *t = table_of(vs, NULL);
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->lost++;
    /* Out of memory for the reason keeps the older one: the count is what fails steps. */
    char *copy = strdup(why);
    if (copy) {
        free(t->lost_why);
        t->lost_why = copy;
    }
    void *v;
    for (size_t it = 0; pst_strmap_next(t->accums, &it, NULL, &v);) {
        accum *a = v;
        pthread_mutex_lock(&a->mu);
        a->lost = t->lost;
        char *c = t->lost_why ? strdup(t->lost_why) : NULL;
        if (c) {
            free(a->lost_why);
            a->lost_why = c;
        }
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&t->mu);
}

void pst_ps_sync_abort(pst_var_store *vs, const pst_status *why) {
    table *t = table_of(vs, NULL);
    if (!t || !why || !why->code) return;
    pthread_mutex_lock(&t->mu);
    if (!t->aborted.code) t->aborted = *why;
    void *v;
    for (size_t it = 0; pst_strmap_next(t->accums, &it, NULL, &v);) {
        accum *a = v;
        pthread_mutex_lock(&a->mu);
        if (!a->aborted.code) a->aborted = *why;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&t->mu);
}

/* ---- kernels ---- */

static void add_into(pst_tensor *sum, const pst_tensor *g) {
    if (sum->dtype == PST_FLOAT) {
        float *d = pst_tensor_f32(sum);
        const float *x = pst_tensor_f32(g);
        for (int64_t i = 0; i < sum->n; i++) d[i] += x[i];
    } else {
        for (int64_t i = 0; i < sum->n; i++)
            pst_tensor_set_f64(sum, i, pst_tensor_get_f64(sum, i) + pst_tensor_get_f64(g, i));
    }
}

static void scale(pst_tensor *t, double k) {
    if (t->dtype == PST_FLOAT) {
        float *d = pst_tensor_f32(t), kf = (float)k;
        for (int64_t i = 0; i < t->n; i++) d[i] *= kf;
    } else {
        for (int64_t i = 0; i < t->n; i++) pst_tensor_set_f64(t, i, pst_tensor_get_f64(t, i) * k);
    }
}

/* The asynchronous apply op each synchronous one wraps, with the index of its gradient. */
enum { SYNC_GD, SYNC_MOMENTUM, SYNC_ADAM, SYNC_ADAGRAD, SYNC_RMSPROP, SYNC_KIND_COUNT };
static const struct {
    const char *inner;
    int grad_idx;
} kinds[SYNC_KIND_COUNT] = {
    [SYNC_GD] = {"ApplyGradientDescent", 2}, [SYNC_MOMENTUM] = {"ApplyMomentum", 3},
    [SYNC_ADAM] = {"ApplyAdam", 9},          [SYNC_ADAGRAD] = {"ApplyAdagrad", 3},
    [SYNC_RMSPROP] = {"ApplyRMSProp", 7},
};
/* Looked up once at registration (pst_ops_init has registered them by then). */
static pst_kernel_fn inner_kernels[SYNC_KIND_COUNT];

/* Accumulates this replica's gradient for its step; the replica completing the set averages
 * the gradients and applies them with the asynchronous kernel; the others wait until the step
 * is applied. A gradient for a step already applied is dropped and counted. */
static int sync_apply(pst_kernel_ctx *c, int kind) {
    pst_var *v = c->input_vars[0];
    int grad_idx = kinds[kind].grad_idx;
    pst_kernel_fn inner = inner_kernels[kind];
    if (!inner)
        return pst_kctx_error(c, PST_E_UNIMPLEMENTED, "%s is not registered (call pst_ops_init "
                              "before pst_dist_ops_init)", kinds[kind].inner);
    accum *a = accum_of(c->vars, v->name, c->status);
    if (!a) return c->status->code;
    int64_t step = pst_tensor_get_i64(c->inputs[c->n_inputs - 1], 0);
    int64_t need = pst_kctx_attr_i(c, "replicas_to_aggregate", 1);
    int64_t timeout = pst_kctx_attr_i(c, "timeout_ms", PST_PS_SYNC_TIMEOUT_MS_DEFAULT);
    const pst_tensor *grad = c->inputs[grad_idx];
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    if (step < a->step) {
        a->stale++;
        goto done;
    }
    if (step > a->step) {
        /* Replicas of an earlier step never completed it; their partial sum is stale. */
        a->stale += a->count;
        a->step = step;
        a->count = 0;
        pst_tensor_unref(a->sum);
        a->sum = NULL;
    }
    if (a->sum == NULL) {
        a->sum = pst_tensor_clone(grad, c->status);
        if (a->sum == NULL) {
            rc = c->status->code;
            goto done;
        }
    } else if (!pst_shape_equal(&a->sum->shape, &grad->shape)) {
        rc = pst_kctx_error(c, PST_E_INVALID, "gradient shapes of variable '%s' differ between "
                            "replicas", v->name);
        goto done;
    } else {
        add_into(a->sum, grad);
    }
    if (++a->count >= need) {
        scale(a->sum, 1.0 / (double)a->count);
        pst_tensor *ins[16];
        PST_ASSERT(c->n_inputs <= 16);
        for (int i = 0; i < c->n_inputs; i++) ins[i] = c->inputs[i];
        ins[grad_idx] = a->sum;
        pst_kernel_ctx c2 = *c;
        c2.inputs = ins;
        c2.n_inputs = c->n_inputs - 1;
        rc = inner(&c2);
        a->step = step + 1;
        a->count = 0;
        pst_tensor_unref(a->sum);
        a->sum = NULL;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        return rc;
    }
    struct timespec dl;
    pst_clock_deadline_in(&dl, timeout);
    int64_t total = pst_kctx_attr_i(c, "total_replicas", 0);
    if (total < need) total = need;
    while (a->step <= step && rc == 0)
        if (a->aborted.code)
            rc = pst_kctx_error(c, a->aborted.code, "step %lld of variable '%s': %s",
                                (long long)step, v->name, a->aborted.msg);
        else if (total - a->lost < need)
            rc = pst_kctx_error(c, PST_E_ABORTED,
                                "step %lld of variable '%s' cannot gather the gradients of %lld "
                                "replicas: %d of %lld replicas failed (%s)",
                                (long long)step, v->name, (long long)need, a->lost,
                                (long long)total, a->lost_why ? a->lost_why : "");
        else if (pthread_cond_timedwait(&a->cv, &a->mu, &dl) == ETIMEDOUT)
            rc = pst_kctx_error(c, PST_E_DEADLINE,
                                "waited %lld ms for the gradients of %lld replicas for step %lld "
                                "of variable '%s'; %d arrived",
                                (long long)timeout, (long long)need, (long long)step, v->name,
                                a->count);
done:
    pthread_mutex_unlock(&a->mu);
    if (rc == 0) pst_kctx_set_output(c, 0, pst_var_read(v));
    return rc;
}

static int sync_gd_kernel(pst_kernel_ctx *c) { return sync_apply(c, SYNC_GD); }
static int sync_momentum_kernel(pst_kernel_ctx *c) { return sync_apply(c, SYNC_MOMENTUM); }
static int sync_adam_kernel(pst_kernel_ctx *c) { return sync_apply(c, SYNC_ADAM); }
static int sync_adagrad_kernel(pst_kernel_ctx *c) { return sync_apply(c, SYNC_ADAGRAD); }
static int sync_rmsprop_kernel(pst_kernel_ctx *c) { return sync_apply(c, SYNC_RMSPROP); }

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

/* PstSyncAssignOnce(ref, value, local_step): ref := value unless a replica already did it for
 * this step (the accumulator's step records the last step assigned): Adam's bias-correction
 * powers advance once per synchronous step however many replicas run the assignment. */
static int sync_assign_once_kernel(pst_kernel_ctx *c) {
    pst_var *v = c->input_vars[0];
    accum *a = accum_of(c->vars, v->name, c->status);
    if (!a) return c->status->code;
    int64_t local = pst_tensor_get_i64(c->inputs[2], 0);
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    if (local >= a->step) {
        rc = pst_var_assign(v, c->inputs[1], 1, c->status);
        if (rc == 0) a->step = local + 1;
    }
    pthread_mutex_unlock(&a->mu);
    if (rc < 0) return rc;
    pst_kctx_set_output(c, 0, pst_var_read(v));
    return 0;
}

/* ---- op definitions ---- */

/* The apply op's checks plus the local step: inputs before it share the variable's dtype, its
 * slots (ref inputs) its shape; the local step (last input) is int64. */
static int sync_apply_shape(pst_node *n, pst_status *st) {
    int last = n->n_inputs - 1;
    if (pst_node_in_dtype(n, last) != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "the local step (input %d) must be int64", last);
    unsigned mask = pst_op_ref_mask(n->op);
    pst_shape vs = pst_node_in_shape(n, 0);
    char a[128], b[128];
    for (int i = 0; i < last; i++) {
        if (pst_node_in_dtype(n, i) != pst_node_in_dtype(n, 0))
            return pst_status_set(st, PST_E_INVALID, "input %d ('%s') is %s, the variable is %s",
                                  i, n->inputs[i].node->name,
                                  pst_dtype_name(pst_node_in_dtype(n, i)),
                                  pst_dtype_name(pst_node_in_dtype(n, 0)));
        pst_shape s = pst_node_in_shape(n, i);
        if (((mask >> i) & 1) && !pst_shape_compatible(&s, &vs))
            return pst_status_set(st, PST_E_INVALID, "slot '%s' has shape %s, variable %s",
                                  n->inputs[i].node->name, pst_shape_str(&s, a, sizeof a),
                                  pst_shape_str(&vs, b, sizeof b));
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), vs);
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
                                    .shape = sync_apply_shape,                                    \
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

void pst__ps_sync_register_ops(void) {
    for (int k = 0; k < SYNC_KIND_COUNT; k++) {
        const pst_op_def *d = pst_op_lookup(kinds[k].inner);
        inner_kernels[k] = d ? d->kernel : NULL;
    }
    pst_op_register(&sync_assign_once_op);
    pst_op_register(&sync_gd_op);
    pst_op_register(&sync_momentum_op);
    pst_op_register(&sync_adam_op);
    pst_op_register(&sync_adagrad_op);
    pst_op_register(&sync_rmsprop_op);
    pst_op_register(&sync_step_op);
}
