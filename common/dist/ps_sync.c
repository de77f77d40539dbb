/* ps_sync: the synchronous-replica accumulators of a variable store and the PstSync* kernels
 * (see ps_sync.h). */
#include "ps_sync.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "op.h"
#include "strmap.h"

/* A member of an elastic synchronous job: its worker id and the incarnation of its process. */
typedef struct mref {
    int64_t id;
    uint64_t inc;
} mref;

#define MAX_MEMBERS 128 /* workers of one elastic round at most */
#define MAX_GONE 256    /* members remembered as gone (the oldest are forgotten) */

static int mref_find(const mref *v, int n, mref m) {
    for (int i = 0; i < n; i++)
        if (v[i].id == m.id && v[i].inc == m.inc) return i;
    return -1;
}

/* Adds m to v (of *n, at most cap) unless there; 0, or -1 when full. */
static int mref_add(mref *v, int *n, int cap, mref m) {
    if (mref_find(v, *n, m) >= 0) return 0;
    if (*n >= cap) return -1;
    v[(*n)++] = m;
    return 0;
}

static void mref_remove(mref *v, int *n, int i) {
    memmove(v + i, v + i + 1, (size_t)(*n - i - 1) * sizeof *v);
    (*n)--;
}

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
    int finished;     /* replicas that finished training (they send no more gradients) */
    pst_status aborted; /* set: every wait fails with it */
    /* elastic rounds: the members of round `step` (from the replicas' round tags) and those
     * whose gradient for it arrived */
    mref members[MAX_MEMBERS], contrib[MAX_MEMBERS];
    int n_members, n_contrib;
    struct table *table; /* its store's table (for the gone members) */
} accum;

/* The resource: every accumulator of one store. Lock order: table, then an accumulator. */
typedef struct table {
    pthread_mutex_t mu;
    pst_strmap *accums; /* variable name -> accum */
    int lost;           /* given to accumulators made later */
    char *lost_why;
    int finished;
    pst_status aborted;
    /* Elastic rounds. On the PS holding global_step (PstSyncRound runs there): the members of
     * the current round, fixed when its first replica asks, and the workers waiting to enter
     * at the next round boundary. */
    int rounds_started;
    int64_t round;
    mref members[MAX_MEMBERS], pending[MAX_MEMBERS];
    int n_members, n_pending;
    /* On every PS: members the coordination service no longer lists (guarded by gone_mu, a
     * leaf lock: taken under mu or an accumulator's mu, never the other way) and the running
     * members it listed last (under mu). */
    pthread_mutex_t gone_mu;
    mref gone[MAX_GONE];
    int n_gone;
    mref running[MAX_GONE];
    int n_running;
} table;

static int is_gone(table *t, mref m) {
    pthread_mutex_lock(&t->gone_mu);
    int g = mref_find(t->gone, t->n_gone, m) >= 0;
    pthread_mutex_unlock(&t->gone_mu);
    return g;
}

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
    pthread_mutex_init(&t->gone_mu, NULL);
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
    pthread_mutex_destroy(&t->gone_mu);
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
            a->table = t;
            a->lost = t->lost;
            a->lost_why = why;
            a->finished = t->finished;
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

/* Counts a lost (why set) or finished (why NULL) replica in t and in every accumulator, and
 * wakes the replicas waiting for a step. */
static void replica_gone(pst_var_store *vs, const char *why) {
    table *t = table_of(vs, NULL);
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    if (why) {
        t->lost++;
        /* Out of memory for the reason keeps the older one: the count is what fails steps. */
        char *copy = strdup(why);
        if (copy) {
            free(t->lost_why);
            t->lost_why = copy;
        }
    } else {
        t->finished++;
    }
    void *v;
    for (size_t it = 0; pst_strmap_next(t->accums, &it, NULL, &v);) {
        accum *a = v;
        pthread_mutex_lock(&a->mu);
        a->lost = t->lost;
        a->finished = t->finished;
        char *c = why && t->lost_why ? strdup(t->lost_why) : NULL;
        if (c) {
            free(a->lost_why);
            a->lost_why = c;
        }
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&t->mu);
}

void pst_ps_sync_replica_lost(pst_var_store *vs, const char *why) { replica_gone(vs, why); }

void pst_ps_sync_replica_finished(pst_var_store *vs) { replica_gone(vs, NULL); }

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

/* Averages the accumulated gradients of a->step, applies them with the asynchronous kernel
 * (with c's other inputs; the learning rate times count / lr_base when lr_base > 0: the
 * linear scaling rule) and opens the next step. a->mu held. */
static int apply_sum(pst_kernel_ctx *c, int kind, accum *a, int64_t lr_base) {
    static const int lr_idx[SYNC_KIND_COUNT] = {1, 2, 5, 2, 3};
    int grad_idx = kinds[kind].grad_idx;
    scale(a->sum, 1.0 / (double)a->count);
    pst_tensor *ins[16];
    PST_ASSERT(c->n_inputs <= 16);
    for (int i = 0; i < c->n_inputs; i++) ins[i] = c->inputs[i];
    ins[grad_idx] = a->sum;
    pst_tensor *lr = NULL;
    int rc = 0;
    if (lr_base > 0 && c->inputs[lr_idx[kind]]) {
        lr = pst_tensor_clone(c->inputs[lr_idx[kind]], c->status);
        if (!lr) rc = c->status->code;
        else scale(lr, (double)a->count / (double)lr_base);
        ins[lr_idx[kind]] = lr;
    }
    if (rc == 0) {
        pst_kernel_ctx c2 = *c;
        c2.inputs = ins;
        c2.n_inputs = c->n_inputs - 1;
        rc = inner_kernels[kind](&c2);
    }
    pst_tensor_unref(lr);
    a->step++;
    a->count = 0;
    a->n_members = a->n_contrib = 0;
    pst_tensor_unref(a->sum);
    a->sum = NULL;
    pthread_cond_broadcast(&a->cv);
    return rc;
}

/* A gradient for `step` arrives: 1 when that step was applied already (the gradient is dropped
 * and counted as stale); a later step than the one accumulating starts it (the partial sum of
 * the step no replica completed is stale). a->mu held. */
static int open_step(accum *a, int64_t step) {
    if (step < a->step) {
        a->stale++;
        return 1;
    }
    if (step > a->step) {
        a->stale += a->count;
        a->step = step;
        a->count = 0;
        a->n_members = a->n_contrib = 0;
        pst_tensor_unref(a->sum);
        a->sum = NULL;
    }
    return 0;
}

/* Adds grad into the step's sum. a->mu held. */
static int add_gradient(pst_kernel_ctx *c, accum *a, const pst_tensor *grad) {
    if (a->sum == NULL) {
        if (!(a->sum = pst_tensor_clone(grad, c->status))) return c->status->code;
    } else if (!pst_shape_equal(&a->sum->shape, &grad->shape)) {
        return pst_kctx_error(c, PST_E_INVALID, "gradient shapes of variable '%s' differ "
                              "between replicas", c->input_vars[0]->name);
    } else {
        add_into(a->sum, grad);
    }
    return 0;
}

/* An elastic round is complete when every member of the round has sent its gradient or is
 * gone (the coordination service dropped it), less the backup workers. a->mu held. */
static int round_complete(accum *a, int64_t backups) {
    int live = 0;
    for (int i = 0; i < a->n_members; i++)
        if (mref_find(a->contrib, a->n_contrib, a->members[i]) >= 0 ||
            !is_gone(a->table, a->members[i]))
            live++;
    int64_t need = live - backups;
    return a->count >= (need > 1 ? need : 1);
}

/* The elastic form of sync_apply: the replica's round tag (PstSyncRound) names the round's
 * members, so the round applies once each of them contributed or is gone; nothing waits for
 * a worker that left or died, and joiners count from the round they entered. */
static int sync_apply_elastic(pst_kernel_ctx *c, int kind, accum *a, const pst_tensor *tag) {
    pst_var *v = c->input_vars[0];
    const int64_t *tg = pst_tensor_i64((pst_tensor *)tag);
    int64_t step = tg[0], lr_base = tg[3], n = tg[4];
    mref me = {tg[1], (uint64_t)tg[2]};
    if (n < 0 || n > MAX_MEMBERS || tag->n < 5 + 2 * n)
        return pst_kctx_error(c, PST_E_INVALID, "variable '%s': a malformed round tag", v->name);
    int64_t timeout = pst_kctx_attr_i(c, "timeout_ms", PST_PS_SYNC_TIMEOUT_MS_DEFAULT);
    int64_t need = pst_kctx_attr_i(c, "replicas_to_aggregate", 1);
    int64_t total = pst_kctx_attr_i(c, "total_replicas", 0);
    int64_t backups = total > need ? total - need : 0;
    const pst_tensor *grad = c->inputs[kinds[kind].grad_idx];
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    if (open_step(a, step)) goto done;
    for (int64_t i = 0; i < n; i++)
        mref_add(a->members, &a->n_members, MAX_MEMBERS,
                 (mref){tg[5 + 2 * i], (uint64_t)tg[6 + 2 * i]});
    if (mref_find(a->contrib, a->n_contrib, me) >= 0) {
        rc = pst_kctx_error(c, PST_E_INVALID, "variable '%s': worker %lld sent two gradients for "
                            "round %lld", v->name, (long long)me.id, (long long)step);
        goto done;
    }
    if ((rc = add_gradient(c, a, grad)) < 0) goto done;
    a->count++;
    mref_add(a->contrib, &a->n_contrib, MAX_MEMBERS, me);
    struct timespec dl;
    pst_clock_deadline_in(&dl, timeout);
    /* Whoever finds the round complete applies it: the last member to arrive, or a waiting one
     * woken because a member is gone. */
    while (a->step <= step && rc == 0) {
        if (round_complete(a, backups)) {
            rc = apply_sum(c, kind, a, lr_base);
        } else if (a->aborted.code) {
            rc = pst_kctx_error(c, a->aborted.code, "round %lld of variable '%s': %s",
                                (long long)step, v->name, a->aborted.msg);
        } else if (pthread_cond_timedwait(&a->cv, &a->mu, &dl) == ETIMEDOUT) {
            rc = pst_kctx_error(c, PST_E_DEADLINE, "waited %lld ms for the %d members of round "
                                "%lld of variable '%s'; %d gradients arrived",
                                (long long)timeout, a->n_members, (long long)step, v->name,
                                a->count);
        }
    }
done:
    pthread_mutex_unlock(&a->mu);
    if (rc == 0) pst_kctx_set_output(c, 0, pst_var_read(v));
    return rc;
}

/* A gradient for a step at or past the job's last step (attr last_step): the replica's step
 * began as the others reached the end, and no step follows to complete it. Refused at once,
 * counted as stale: 1 (c's status set), else 0. */
static int past_last_step(pst_kernel_ctx *c, accum *a, int64_t step) {
    int64_t last = pst_kctx_attr_i(c, "last_step", 0);
    if (last <= 0 || step < last) return 0;
    pthread_mutex_lock(&a->mu);
    a->stale++;
    pthread_mutex_unlock(&a->mu);
    pst_kctx_error(c, PST_E_OUT_OF_RANGE, "step %lld of variable '%s' is past the job's last "
                   "step %lld: not applied", (long long)step, c->input_vars[0]->name,
                   (long long)last);
    return 1;
}

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
    const pst_tensor *tag = c->inputs[c->n_inputs - 1];
    if (tag->n < 1)
        return pst_kctx_error(c, PST_E_INVALID, "variable '%s': the local step is empty",
                              v->name);
    int64_t step = pst_tensor_get_i64(tag, 0); /* the elastic tag starts with it too */
    if (past_last_step(c, a, step)) return c->status->code;
    if (tag->n >= 5) return sync_apply_elastic(c, kind, a, tag);
    int64_t need = pst_kctx_attr_i(c, "replicas_to_aggregate", 1);
    int64_t timeout = pst_kctx_attr_i(c, "timeout_ms", PST_PS_SYNC_TIMEOUT_MS_DEFAULT);
    const pst_tensor *grad = c->inputs[grad_idx];
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    if (open_step(a, step)) goto done;
    if ((rc = add_gradient(c, a, grad)) < 0) goto done;
    if (++a->count >= need) {
        rc = apply_sum(c, kind, a, 0);
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
        else if (total - a->lost - a->finished < need)
            /* The others finished training and send no more gradients (this worker trains
             * on past their last step). */
            rc = pst_kctx_error(c, PST_E_OUT_OF_RANGE,
                                "step %lld of variable '%s' cannot gather the gradients of %lld "
                                "replicas: %d of %lld replicas finished training",
                                (long long)step, v->name, (long long)need, a->finished,
                                (long long)total);
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

/* PstSyncRound(global_step, me): the round tag of worker me = [id, incarnation] for the
 * round it takes part in, [k, id, inc, lr_base, n, id_0, inc_0, ...]: k the round (global
 * step), then its n members. A round's members are fixed when its first replica asks: the
 * members of the round before that are still there, and the workers that asked since (new
 * workers enter at a round boundary). A worker that is not a member waits here for the
 * boundary, or enters at once when no member of the current round is left. */
static int sync_round_kernel(pst_kernel_ctx *c) {
    pst_var *gv = c->input_vars[0];
    const pst_tensor *mt = c->inputs[1];
    if (!mt || mt->dtype != PST_INT64 || mt->n != 2)
        return pst_kctx_error(c, PST_E_INVALID, "the member must be int64 [id, incarnation]");
    mref me = {pst_tensor_i64((pst_tensor *)mt)[0], (uint64_t)pst_tensor_i64((pst_tensor *)mt)[1]};
    int64_t lr_base = pst_kctx_attr_i(c, "lr_scale_base", 0);
    int64_t timeout = pst_kctx_attr_i(c, "timeout_ms", PST_PS_SYNC_TIMEOUT_MS_DEFAULT);
    table *t = table_of(c->vars, c->status);
    if (!t) return c->status->code;
    double deadline = pst_clock_now() + (double)timeout / 1000.0;
    int rc = 0;
    int64_t k = 0;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        pst_tensor *cur = pst_var_read(gv);
        if (!cur) {
            rc = pst_kctx_error(c, PST_E_PRECONDITION, "global step '%s' is not "
                                "initialized", gv->name);
            break;
        }
        k = pst_tensor_get_i64(cur, 0);
        pst_tensor_unref(cur);
        int boundary = !t->rounds_started || k > t->round;
        int in = mref_find(t->members, t->n_members, me) >= 0 && !is_gone(t, me);
        if (!in && !boundary) {
            if (mref_find(t->pending, t->n_pending, me) < 0 &&
                mref_add(t->pending, &t->n_pending, MAX_MEMBERS, me) < 0) {
                rc = pst_kctx_error(c, PST_E_EXHAUSTED, "more than %d workers in a round",
                                    MAX_MEMBERS);
                break;
            }
            /* A member that was dropped and runs again is alive after all. */
            pthread_mutex_lock(&t->gone_mu);
            int g = mref_find(t->gone, t->n_gone, me);
            if (g >= 0) mref_remove(t->gone, &t->n_gone, g);
            pthread_mutex_unlock(&t->gone_mu);
            int live = 0;
            for (int i = 0; i < t->n_members; i++) live += !is_gone(t, t->members[i]);
            boundary = live == 0; /* nobody left to finish the round: enter it now */
        }
        if (boundary) {
            /* The round's members: those still there, and the workers waiting to enter. */
            for (int i = t->n_members - 1; i >= 0; i--)
                if (is_gone(t, t->members[i])) mref_remove(t->members, &t->n_members, i);
            for (int i = 0; i < t->n_pending; i++)
                mref_add(t->members, &t->n_members, MAX_MEMBERS, t->pending[i]);
            t->n_pending = 0;
            if (!in && mref_find(t->members, t->n_members, me) < 0)
                mref_add(t->members, &t->n_members, MAX_MEMBERS, me);
            t->round = k;
            t->rounds_started = 1;
            continue;
        }
        if (in) break;
        if (pst_clock_now() > deadline) {
            rc = pst_kctx_error(c, PST_E_DEADLINE, "worker %lld waited %lld ms to enter round "
                                "%lld", (long long)me.id, (long long)timeout, (long long)k + 1);
            break;
        }
        pthread_mutex_unlock(&t->mu);
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&t->mu);
    }
    pst_tensor *out = NULL;
    if (rc == 0) {
        out = pst_tensor_new(PST_INT64, pst_shape_1d(5 + 2 * t->n_members), c->status);
        if (!out) rc = c->status->code;
    }
    if (out) {
        int64_t *o = pst_tensor_i64(out);
        o[0] = k;
        o[1] = me.id;
        o[2] = (int64_t)me.inc;
        o[3] = lr_base;
        o[4] = t->n_members;
        for (int i = 0; i < t->n_members; i++) {
            o[5 + 2 * i] = t->members[i].id;
            o[6 + 2 * i] = (int64_t)t->members[i].inc;
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (rc == 0) pst_kctx_set_output(c, 0, out);
    return rc;
}

/* Members the coordination service lists no more become gone; rounds waiting for them are
 * woken to finish without them. */
int pst_ps_sync_set_running(pst_var_store *vs, const char *members, pst_status *st) {
    mref now[MAX_GONE];
    int n = 0;
    for (const char *p = members; p && *p && n < MAX_GONE;) {
        char *end;
        long long id = strtoll(p, &end, 10);
        if (*end != ':') return pst_status_set(st, PST_E_INVALID, "members: '%s'", members);
        unsigned long long inc = strtoull(end + 1, &end, 16);
        if (*end != ':') return pst_status_set(st, PST_E_INVALID, "members: '%s'", members);
        now[n++] = (mref){id, (uint64_t)inc};
        p = strchr(end, ',');
        p = p ? p + 1 : NULL;
    }
    table *t = table_of(vs, st);
    if (!t) return st->code;
    pthread_mutex_lock(&t->mu);
    int changed = 0;
    for (int i = 0; i < t->n_running; i++) {
        if (mref_find(now, n, t->running[i]) >= 0) continue;
        pthread_mutex_lock(&t->gone_mu);
        if (t->n_gone == MAX_GONE) mref_remove(t->gone, &t->n_gone, 0);
        mref_add(t->gone, &t->n_gone, MAX_GONE, t->running[i]);
        pthread_mutex_unlock(&t->gone_mu);
        changed = 1;
    }
    memcpy(t->running, now, (size_t)n * sizeof *now);
    t->n_running = n;
    if (changed) {
        void *v;
        for (size_t it = 0; pst_strmap_next(t->accums, &it, NULL, &v);) {
            accum *a = v;
            pthread_mutex_lock(&a->mu);
            pthread_cond_broadcast(&a->cv);
            pthread_mutex_unlock(&a->mu);
        }
    }
    pthread_mutex_unlock(&t->mu);
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
                                           {"last_step", PST_ATTR_INT, 0},
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

static int sync_round_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_INT64 || pst_node_in_dtype(n, 1) != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "global step and member must be int64");
    pst_node_set_output(n, 0, PST_INT64, pst_shape_1d(-1));
    return 0;
}
static const pst_attr_spec sync_round_attrs[] = {{"lr_scale_base", PST_ATTR_INT, 0},
                                                 {"timeout_ms", PST_ATTR_INT, 0},
                                                 {0}};
static const pst_op_def sync_round_op = {.name = "PstSyncRound",
                                         .min_inputs = 2,
                                         .max_inputs = 2,
                                         .n_outputs = 1,
                                         .attrs = sync_round_attrs,
                                         .shape = sync_round_shape,
                                         .kernel = sync_round_kernel,
                                         .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE,
                                         .ref_mask = 0x1};

void pst__ps_sync_register_ops(void) {
    pst_op_register(&sync_round_op);
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
