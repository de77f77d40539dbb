/* ops_accum: TF 1.x's conditional gradient accumulators (see ops_accum.h). */
#include "ops_accum.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op.h"
#include "ops.h"
#include "ops_queue.h"
#include "varstore.h"

/* Every accumulator of a store, so that pst_accumulators_cancel can wake them. */
#define REGISTRY_KEY "accumulator.registry"

typedef struct registry {
    pthread_mutex_t mu;
    atomic_int cancelled;
    pst_status why;
    struct accum **list;
    int n, cap;
} registry;

typedef struct accum {
    char *name;
    int sparse;
    pst_dtype dt;
    pst_shape shape; /* the `shape` attr (rank -1: unknown) */
    int sum;         /* reduction_type SUM (else MEAN) */
    registry *reg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t global_step;
    int64_t counter;
    pst_tensor *acc; /* dense: the sum; sparse: the summed rows [nnz, ...] */
    int64_t *idx;    /* sparse: the rows' indices (nnz of them) */
    int32_t *cnt;    /* sparse: how many gradients each row summed */
    int64_t nnz;
} accum;

static void registry_free(void *p) {
    registry *r = p;
    if (r == NULL) return;
    pthread_mutex_destroy(&r->mu);
    free(r->list);
    free(r);
}

static void *registry_make(void *ctx, pst_status *st) {
    (void)ctx;
    registry *r = calloc(1, sizeof *r);
    if (r == NULL) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void accum_free(void *p) {
    accum *a = p;
    if (a == NULL) return;
    pst_tensor_unref(a->acc);
    free(a->idx), free(a->cnt), free(a->name);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
}

void pst_accumulators_cancel(pst_var_store *vs, const pst_status *why) {
    pst_status st = {0};
    registry *r = pst_var_store_resource(vs, REGISTRY_KEY, registry_make, NULL, registry_free, &st);
    if (r == NULL) return;
    pthread_mutex_lock(&r->mu);
    r->why = *why;
    atomic_store(&r->cancelled, 1);
    for (int i = 0; i < r->n; i++) {
        pthread_mutex_lock(&r->list[i]->mu);
        pthread_cond_broadcast(&r->list[i]->cv);
        pthread_mutex_unlock(&r->list[i]->mu);
    }
    pthread_mutex_unlock(&r->mu);
}

typedef struct make_args {
    pst_kernel_ctx *c;
    const char *name;
    registry *reg;
} make_args;

static void *accum_make(void *p, pst_status *st) {
    make_args *m = p;
    pst_kernel_ctx *c = m->c;
    accum *a = calloc(1, sizeof *a);
    if (a == NULL || (a->name = strdup(m->name)) == NULL) {
        free(a);
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory creating accumulator '%s'", m->name);
        return NULL;
    }
    pthread_mutex_lock(&m->reg->mu);
    if (m->reg->n == m->reg->cap) {
        int cap = m->reg->cap ? m->reg->cap * 2 : 8;
        accum **l = realloc(m->reg->list, (size_t)cap * sizeof *l);
        if (l == NULL) {
            pthread_mutex_unlock(&m->reg->mu);
            free(a->name), free(a);
            pst_status_set(st, PST_E_EXHAUSTED, "out of memory creating accumulator '%s'",
                           m->name);
            return NULL;
        }
        m->reg->list = l;
        m->reg->cap = cap;
    }
    m->reg->list[m->reg->n++] = a;
    pthread_mutex_unlock(&m->reg->mu);
    a->sparse = strcmp(c->op->name, "SparseConditionalAccumulator") == 0;
    a->dt = pst_kctx_attr_type(c, "dtype", PST_FLOAT);
    const pst_attr *sh = pst_kctx_attr(c, "shape");
    a->shape = sh && sh->kind == PST_ATTR_SHAPE ? sh->v.shape : pst_shape_unknown();
    a->sum = strcmp(pst_kctx_attr_s(c, "reduction_type", "MEAN"), "SUM") == 0;
    a->reg = m->reg;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    return a;
}

static int numeric(pst_dtype dt) {
    return dt == PST_FLOAT || dt == PST_DOUBLE || dt == PST_INT32 || dt == PST_INT64 ||
           dt == PST_UINT8;
}

/* ---- Shapes ---------------------------------------------------------------------------- */
static int accum_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "dtype", PST_DT_INVALID);
    if (!numeric(dt))
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "accumulators of %s",
                              pst_dtype_name(dt));
    const char *rt = pst_node_attr_s(n, "reduction_type", "MEAN");
    if (strcmp(rt, "MEAN") != 0 && strcmp(rt, "SUM") != 0)
        return pst_status_set(st, PST_E_INVALID, "reduction_type must be MEAN or SUM, not '%s'",
                              rt);
    pst_node_set_output(n, 0, PST_RESOURCE, pst_shape_scalar());
    return 0;
}

/* Input i must be a scalar of dtype dt (when known). */
static int scalar_in(pst_node *n, int i, pst_dtype dt, const char *what, pst_status *st) {
    pst_shape s = pst_node_in_shape(n, i);
    if (pst_node_in_dtype(n, i) != dt)
        return pst_status_set(st, PST_E_INVALID, "%s must be %s, not %s", what,
                              pst_dtype_name(dt), pst_dtype_name(pst_node_in_dtype(n, i)));
    if (s.rank > 0)
        return pst_status_set(st, PST_E_INVALID, "%s must be a scalar", what);
    return 0;
}

static int handle_in(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_RESOURCE)
        return pst_status_set(st, PST_E_INVALID, "input 0 is not an accumulator handle");
    return 0;
}

/* ApplyGradient's inputs: handle, local_step, then the gradient's values at input vi (after
 * int64 indices at vi - 1 and an int64 shape at vi + 1 for the sparse form). */
static int apply_inputs(pst_node *n, int vi, pst_status *st) {
    if (handle_in(n, st) < 0 || scalar_in(n, 1, PST_INT64, "local_step", st) < 0)
        return st->code;
    if (vi == 3 && (pst_node_in_dtype(n, 2) != PST_INT64 || pst_node_in_dtype(n, 4) != PST_INT64))
        return pst_status_set(st, PST_E_INVALID, "gradient_indices and gradient_shape must be "
                              "int64");
    pst_dtype dt = pst_node_attr_type(n, "dtype", pst_node_in_dtype(n, vi));
    if (pst_node_in_dtype(n, vi) != dt)
        return pst_status_set(st, PST_E_INVALID, "the gradient is %s but dtype is %s",
                              pst_dtype_name(pst_node_in_dtype(n, vi)), pst_dtype_name(dt));
    return 0;
}

static int apply_shape(pst_node *n, pst_status *st) { return apply_inputs(n, 2, st); }
static int sparse_apply_shape(pst_node *n, pst_status *st) { return apply_inputs(n, 3, st); }

static int num_shape(pst_node *n, pst_status *st) {
    if (handle_in(n, st) < 0) return st->code;
    pst_node_set_output(n, 0, PST_INT32, pst_shape_scalar());
    return 0;
}

static int set_step_shape(pst_node *n, pst_status *st) {
    if (handle_in(n, st) < 0) return st->code;
    return scalar_in(n, 1, PST_INT64, "new_global_step", st);
}

/* The accumulator's `shape` attr when the handle comes straight from its node. */
static pst_shape accum_node_shape(pst_node *n) {
    const pst_attr *sh = pst_node_attr(n->inputs[0].node, "shape");
    return sh && sh->kind == PST_ATTR_SHAPE ? sh->v.shape : pst_shape_unknown();
}

static int take_shape(pst_node *n, pst_status *st) {
    if (handle_in(n, st) < 0 || scalar_in(n, 1, PST_INT32, "num_required", st) < 0)
        return st->code;
    pst_dtype dt = pst_node_attr_type(n, "dtype", PST_DT_INVALID);
    if (!numeric(dt))
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "accumulators of %s", pst_dtype_name(dt));
    pst_node_set_output(n, 0, dt, accum_node_shape(n));
    return 0;
}

static int sparse_take_shape(pst_node *n, pst_status *st) {
    if (handle_in(n, st) < 0 || scalar_in(n, 1, PST_INT32, "num_required", st) < 0)
        return st->code;
    pst_dtype dt = pst_node_attr_type(n, "dtype", PST_DT_INVALID);
    if (!numeric(dt))
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "accumulators of %s", pst_dtype_name(dt));
    pst_shape s = accum_node_shape(n), vs = pst_shape_unknown();
    if (s.rank >= 1) {
        vs = s;
        vs.dims[0] = -1;
    }
    pst_node_set_output(n, 0, PST_INT64, pst_shape_1d(-1));
    pst_node_set_output(n, 1, dt, vs);
    pst_node_set_output(n, 2, PST_INT64, pst_shape_1d(s.rank >= 0 ? s.rank : -1));
    return 0;
}

/* ---- Kernels --------------------------------------------------------------------------- */
static int accum_kernel(pst_kernel_ctx *c) {
    const char *shared = pst_kctx_attr_s(c, "shared_name", "");
    const char *name = shared[0] ? shared : c->node_name;
    registry *reg = pst_var_store_resource(c->vars, REGISTRY_KEY, registry_make, NULL,
                                           registry_free, c->status);
    if (reg == NULL) return c->status->code;
    char key[1200];
    snprintf(key, sizeof key, "accumulator:%s", name);
    make_args m = {c, name, reg};
    accum *a = pst_var_store_resource(c->vars, key, accum_make, &m, accum_free, c->status);
    if (a == NULL) return c->status->code;
    pst_dtype dt = pst_kctx_attr_type(c, "dtype", PST_FLOAT);
    int sparse = strcmp(c->op->name, "SparseConditionalAccumulator") == 0;
    if (a->dt != dt || a->sparse != sparse)
        return pst_kctx_error(c, PST_E_INVALID, "accumulator '%s' exists as a %s %s accumulator",
                              name, a->sparse ? "sparse" : "dense", pst_dtype_name(a->dt));
    pst_tensor *h = pst_ops_resource_handle(a);
    if (h == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    pst_kctx_set_output(c, 0, h);
    return 0;
}

static accum *accum_in(pst_kernel_ctx *c, int sparse) {
    const pst_tensor *h = c->inputs[0];
    if (h->dtype != PST_RESOURCE || h->n != 1 || *(void **)h->data == NULL) {
        pst_kctx_error(c, PST_E_INVALID, "input 0 is not an accumulator handle");
        return NULL;
    }
    accum *a = *(accum **)h->data;
    if (sparse >= 0 && a->sparse != sparse) {
        pst_kctx_error(c, PST_E_INVALID, "accumulator '%s' is %s; %s takes a %s one", a->name,
                       a->sparse ? "sparse" : "dense", c->op->name, sparse ? "sparse" : "dense");
        return NULL;
    }
    pst_dtype dt = pst_kctx_attr_type(c, "dtype", a->dt);
    if (dt != a->dt) {
        pst_kctx_error(c, PST_E_INVALID, "accumulator '%s' holds %s, not %s", a->name,
                       pst_dtype_name(a->dt), pst_dtype_name(dt));
        return NULL;
    }
    return a;
}

static int scalar_of(pst_kernel_ctx *c, int i, const char *what, int64_t *v) {
    if (c->inputs[i]->n != 1 || c->inputs[i]->shape.rank != 0)
        return pst_kctx_error(c, PST_E_INVALID, "%s must be a scalar", what);
    *v = pst_tensor_get_i64(c->inputs[i], 0);
    return 0;
}

/* dst[di + k] += src[si + k] for k < n (same dtype). */
static void add_elems(pst_tensor *dst, int64_t di, const pst_tensor *src, int64_t si, int64_t n) {
    switch (dst->dtype) {
    case PST_FLOAT:
        for (int64_t k = 0; k < n; k++)
            ((float *)dst->data)[di + k] += ((const float *)src->data)[si + k];
        break;
    case PST_DOUBLE:
        for (int64_t k = 0; k < n; k++)
            ((double *)dst->data)[di + k] += ((const double *)src->data)[si + k];
        break;
    case PST_INT32:
        for (int64_t k = 0; k < n; k++)
            ((int32_t *)dst->data)[di + k] =
                (int32_t)((uint32_t)((int32_t *)dst->data)[di + k] +
                          (uint32_t)((const int32_t *)src->data)[si + k]);
        break;
    case PST_INT64:
        for (int64_t k = 0; k < n; k++)
            ((int64_t *)dst->data)[di + k] =
                (int64_t)((uint64_t)((int64_t *)dst->data)[di + k] +
                          (uint64_t)((const int64_t *)src->data)[si + k]);
        break;
    default: /* uint8 */
        for (int64_t k = 0; k < n; k++)
            ((uint8_t *)dst->data)[di + k] += ((const uint8_t *)src->data)[si + k];
        break;
    }
}

/* t[i .. i+n) /= d (integers truncate toward zero, as TF's integer division). */
static void div_elems(pst_tensor *t, int64_t i, int64_t n, int64_t d) {
    for (int64_t k = i; k < i + n; k++) {
        switch (t->dtype) {
        case PST_FLOAT: ((float *)t->data)[k] /= (float)d; break;
        case PST_DOUBLE: ((double *)t->data)[k] /= (double)d; break;
        case PST_INT32: ((int32_t *)t->data)[k] = (int32_t)(((int32_t *)t->data)[k] / d); break;
        case PST_INT64: ((int64_t *)t->data)[k] /= d; break;
        default: ((uint8_t *)t->data)[k] = (uint8_t)(((uint8_t *)t->data)[k] / d); break;
        }
    }
}

static int apply_kernel(pst_kernel_ctx *c) {
    accum *a = accum_in(c, 0);
    int64_t step = 0;
    if (a == NULL || scalar_of(c, 1, "local_step", &step) < 0) return c->status->code;
    const pst_tensor *g = c->inputs[2];
    char b1[96], b2[96];
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    if (step < a->global_step) goto out; /* stale: dropped silently, as TF */
    if (g->dtype != a->dt) {
        rc = pst_kctx_error(c, PST_E_INVALID, "accumulator '%s' holds %s; the gradient is %s",
                            a->name, pst_dtype_name(a->dt), pst_dtype_name(g->dtype));
        goto out;
    }
    if (a->counter > 0 && !pst_shape_equal(&a->acc->shape, &g->shape)) {
        rc = pst_kctx_error(c, PST_E_INVALID, "accumulator '%s': shape mismatch: expected %s, "
                            "got %s", a->name, pst_shape_str(&a->acc->shape, b1, sizeof b1),
                            pst_shape_str(&g->shape, b2, sizeof b2));
        goto out;
    }
    if (!pst_shape_compatible(&a->shape, &g->shape)) {
        rc = pst_kctx_error(c, PST_E_INVALID, "accumulator '%s': shape mismatch: expected %s, "
                            "got %s", a->name, pst_shape_str(&a->shape, b1, sizeof b1),
                            pst_shape_str(&g->shape, b2, sizeof b2));
        goto out;
    }
    if (a->counter == 0) {
        pst_tensor_unref(a->acc);
        if ((a->acc = pst_tensor_clone(g, c->status)) == NULL) {
            rc = c->status->code;
            goto out;
        }
    } else {
        add_elems(a->acc, 0, g, 0, g->n);
    }
    a->counter++;
    pthread_cond_broadcast(&a->cv);
out:
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* Checks a sparse gradient as TF's SparseConditionalAccumulator does. Called with mu held. */
static int check_sparse(pst_kernel_ctx *c, accum *a, const pst_tensor *ix, const pst_tensor *v,
                        const pst_tensor *shape) {
    char b1[96];
    if (ix->shape.rank != 1)
        return pst_kctx_error(c, PST_E_INVALID, "accumulator '%s': gradient_indices should be a "
                              "vector but has shape %s", a->name,
                              pst_shape_str(&ix->shape, b1, sizeof b1));
    int64_t nnz = ix->shape.dims[0];
    if (v->shape.rank < 1)
        return pst_kctx_error(c, PST_E_INVALID, "accumulator '%s': gradient_values cannot be "
                              "0-dimensional", a->name);
    if (v->shape.dims[0] != nnz)
        return pst_kctx_error(c, PST_E_INVALID, "accumulator '%s': expected %lld values rows "
                              "(one per index), got %lld", a->name, (long long)nnz,
                              (long long)v->shape.dims[0]);
    if (v->dtype != a->dt)
        return pst_kctx_error(c, PST_E_INVALID, "accumulator '%s' holds %s; the values are %s",
                              a->name, pst_dtype_name(a->dt), pst_dtype_name(v->dtype));
    const pst_shape *s = &a->shape;
    if (shape != NULL && s->rank >= 0) {
        if (s->rank > shape->n)
            return pst_kctx_error(c, PST_E_INVALID, "accumulator '%s': shape mismatch: expected "
                                  "shape rank at least %d, got %lld", a->name, s->rank,
                                  (long long)shape->n);
        for (int i = 0; i < s->rank; i++)
            if (s->dims[i] != -1 && s->dims[i] != pst_tensor_get_i64(shape, i))
                return pst_kctx_error(c, PST_E_INVALID, "accumulator '%s': shape mismatch: "
                                      "expected shape dim %d to be %lld, got %lld", a->name, i,
                                      (long long)s->dims[i],
                                      (long long)pst_tensor_get_i64(shape, i));
    }
    const int64_t *id = ix->data;
    for (int64_t i = 0; i < nnz; i++)
        if (id[i] < 0 || (s->rank > 0 && s->dims[0] != -1 && id[i] >= s->dims[0]))
            return pst_kctx_error(c, PST_E_INVALID, "accumulator '%s': index %lld of slice "
                                  "%lld is outside [0, %lld)", a->name, (long long)id[i],
                                  (long long)i, (long long)s->dims[0]);
    if (a->counter > 0) {
        if (a->acc->shape.rank != v->shape.rank)
            return pst_kctx_error(c, PST_E_INVALID, "accumulator '%s': shape mismatch: expected "
                                  "values rank %d, got %d", a->name, a->acc->shape.rank,
                                  v->shape.rank);
        for (int i = 1; i < v->shape.rank; i++)
            if (a->acc->shape.dims[i] != v->shape.dims[i])
                return pst_kctx_error(c, PST_E_INVALID, "accumulator '%s': shape mismatch: "
                                      "expected values dim %d to be %lld, got %lld", a->name, i,
                                      (long long)a->acc->shape.dims[i],
                                      (long long)v->shape.dims[i]);
    } else if (s->rank >= 0) {
        if (s->rank > v->shape.rank)
            return pst_kctx_error(c, PST_E_INVALID, "accumulator '%s': shape mismatch: expected "
                                  "values rank at least %d, got %d", a->name, s->rank,
                                  v->shape.rank);
        for (int i = 1; i < s->rank; i++)
            if (s->dims[i] != -1 && s->dims[i] != v->shape.dims[i])
                return pst_kctx_error(c, PST_E_INVALID, "accumulator '%s': shape mismatch: "
                                      "expected values dim %d to be %lld, got %lld", a->name, i,
                                      (long long)s->dims[i], (long long)v->shape.dims[i]);
    }
    return 0;
}

/* Merges a sorted sparse gradient into the sorted accumulated rows (TF's sparse add: equal
 * indices add up and count once more). Called with mu held. */
static int merge_sparse(pst_kernel_ctx *c, accum *a, const pst_tensor *ix, const pst_tensor *v) {
    const int64_t *gi = ix->data;
    int64_t gn = ix->shape.dims[0], row = gn ? v->n / gn : 0;
    int64_t an = a->counter > 0 ? a->nnz : 0, total = 0;
    for (int64_t i = 0, j = 0; i < an || j < gn; total++) {
        if (j >= gn || (i < an && a->idx[i] < gi[j])) i++;
        else if (i >= an || gi[j] < a->idx[i]) j++;
        else i++, j++;
    }
    if (row == 0 && a->counter > 0) row = a->nnz ? a->acc->n / a->nnz : 0;
    pst_shape s = v->shape;
    s.dims[0] = total;
    pst_tensor *sum = pst_tensor_new_zeros(a->dt, s, c->status);
    int64_t *idx = malloc(((size_t)total + 1) * sizeof *idx);
    int32_t *cnt = malloc(((size_t)total + 1) * sizeof *cnt);
    if (sum == NULL || idx == NULL || cnt == NULL) {
        pst_tensor_unref(sum), free(idx), free(cnt);
        return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory in accumulator '%s'", a->name);
    }
    int64_t i = 0, j = 0;
    for (int64_t k = 0; k < total; k++) {
        int from_a = i < an && (j >= gn || a->idx[i] <= gi[j]);
        int from_g = j < gn && (i >= an || gi[j] <= a->idx[i]);
        idx[k] = from_a ? a->idx[i] : gi[j];
        cnt[k] = (from_a ? a->cnt[i] : 0) + (from_g ? 1 : 0);
        if (from_a) pst_tensor_copy_elems(sum, k * row, a->acc, i * row, row, c->status);
        if (from_a && from_g) add_elems(sum, k * row, v, j * row, row);
        else if (from_g) pst_tensor_copy_elems(sum, k * row, v, j * row, row, c->status);
        i += from_a, j += from_g;
    }
    pst_tensor_unref(a->acc), free(a->idx), free(a->cnt);
    a->acc = sum, a->idx = idx, a->cnt = cnt, a->nnz = total;
    return 0;
}

static int sparse_apply_kernel(pst_kernel_ctx *c) {
    accum *a = accum_in(c, 1);
    int64_t step = 0;
    if (a == NULL || scalar_of(c, 1, "local_step", &step) < 0) return c->status->code;
    int known = pst_kctx_attr_b(c, "has_known_shape", 0);
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    if (step < a->global_step) goto out; /* stale: dropped silently, as TF */
    if ((rc = check_sparse(c, a, c->inputs[2], c->inputs[3], known ? c->inputs[4] : NULL)) < 0)
        goto out;
    if ((rc = merge_sparse(c, a, c->inputs[2], c->inputs[3])) < 0) goto out;
    a->counter++;
    pthread_cond_broadcast(&a->cv);
out:
    pthread_mutex_unlock(&a->mu);
    return rc;
}

static int num_kernel(pst_kernel_ctx *c) {
    accum *a = accum_in(c, -1);
    if (a == NULL) return c->status->code;
    pthread_mutex_lock(&a->mu);
    int64_t n = a->counter;
    pthread_mutex_unlock(&a->mu);
    pst_kctx_set_output(c, 0, pst_tensor_scalar_i32((int32_t)n));
    return 0;
}

static int set_step_kernel(pst_kernel_ctx *c) {
    accum *a = accum_in(c, -1);
    int64_t step = 0;
    if (a == NULL || scalar_of(c, 1, "new_global_step", &step) < 0) return c->status->code;
    pthread_mutex_lock(&a->mu);
    a->global_step = step;
    pthread_mutex_unlock(&a->mu);
    return 0;
}

/* Waits until the accumulator holds n gradients; called with mu held. */
static int wait_for(pst_kernel_ctx *c, accum *a, int64_t n) {
    int64_t ms = pst_kctx_attr_i(c, "timeout_ms", PST_ACCUM_TIMEOUT_MS_DEFAULT);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) dl.tv_sec++, dl.tv_nsec -= 1000000000;
    while (a->counter < n) {
        if (atomic_load(&a->reg->cancelled)) {
            pthread_mutex_lock(&a->reg->mu);
            pst_status why = a->reg->why;
            pthread_mutex_unlock(&a->reg->mu);
            return pst_kctx_error(c, why.code ? why.code : PST_E_CANCELLED, "taking the gradient "
                                  "of accumulator '%s' was cancelled: %s", a->name, why.msg);
        }
        if (pthread_cond_timedwait(&a->cv, &a->mu, &dl) == ETIMEDOUT && a->counter < n)
            return pst_kctx_error(c, PST_E_DEADLINE, "accumulator '%s' got %lld of the %lld "
                                  "gradients required within %lld ms", a->name,
                                  (long long)a->counter, (long long)n, (long long)ms);
    }
    return 0;
}

static int take_kernel(pst_kernel_ctx *c) {
    int sparse = strstr(c->op->name, "Sparse") != NULL;
    accum *a = accum_in(c, sparse);
    int64_t n = 0;
    if (a == NULL || scalar_of(c, 1, "num_required", &n) < 0) return c->status->code;
    if (n <= 0)
        return pst_kctx_error(c, PST_E_INVALID, "num_required must be positive, but was %lld",
                              (long long)n);
    pthread_mutex_lock(&a->mu);
    int rc = wait_for(c, a, n);
    if (rc < 0) goto out;
    a->global_step++; /* later gradients of the step just taken are stale */
    if (!sparse) {
        if (!a->sum) div_elems(a->acc, 0, a->acc->n, a->counter);
        pst_kctx_set_output(c, 0, a->acc);
        a->acc = NULL;
    } else {
        int64_t row = a->nnz ? a->acc->n / a->nnz : 0;
        if (!a->sum)
            for (int64_t i = 0; i < a->nnz; i++) div_elems(a->acc, i * row, row, a->cnt[i]);
        pst_tensor *ix = pst_tensor_from_i64(pst_shape_1d(a->nnz), a->idx);
        int r = a->acc->shape.rank;
        int64_t dims[PST_MAX_RANK];
        dims[0] = a->shape.rank > 0 ? a->shape.dims[0] : -1;
        for (int i = 1; i < r; i++) dims[i] = a->acc->shape.dims[i];
        pst_tensor *sh = pst_tensor_from_i64(pst_shape_1d(r), dims);
        if (ix == NULL || sh == NULL) {
            pst_tensor_unref(ix), pst_tensor_unref(sh);
            rc = pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
            goto out;
        }
        pst_kctx_set_output(c, 0, ix);
        pst_kctx_set_output(c, 1, a->acc);
        pst_kctx_set_output(c, 2, sh);
        a->acc = NULL;
        free(a->idx), free(a->cnt);
        a->idx = NULL, a->cnt = NULL, a->nnz = 0;
    }
    a->counter = 0;
out:
    pthread_mutex_unlock(&a->mu);
    return rc;
}

static const pst_attr_spec accum_attrs[] = {
    {"dtype", PST_ATTR_TYPE, 1},           {"shape", PST_ATTR_SHAPE, 1},
    {"container", PST_ATTR_STRING, 0},     {"shared_name", PST_ATTR_STRING, 0},
    {"reduction_type", PST_ATTR_STRING, 0}, {0}};
static const pst_attr_spec dtype_attrs[] = {{"dtype", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec sparse_apply_attrs[] = {
    {"dtype", PST_ATTR_TYPE, 0}, {"has_known_shape", PST_ATTR_BOOL, 1}, {0}};
static const pst_attr_spec take_attrs[] = {
    {"dtype", PST_ATTR_TYPE, 1}, {"timeout_ms", PST_ATTR_INT, 0}, {0}};

#define AF (PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE)
#define MAKE(nm) {.name = nm, .n_outputs = 1, .attrs = accum_attrs, .shape = accum_shape, \
                  .kernel = accum_kernel, .flags = AF}
#define APPLY(nm) {.name = nm, .min_inputs = 3, .max_inputs = 3, .n_outputs = 0, \
                   .attrs = dtype_attrs, .shape = apply_shape, .kernel = apply_kernel, .flags = AF}
#define NUM(nm) {.name = nm, .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, \
                 .shape = num_shape, .kernel = num_kernel, .flags = AF}
#define SETSTEP(nm) {.name = nm, .min_inputs = 2, .max_inputs = 2, .n_outputs = 0, \
                     .shape = set_step_shape, .kernel = set_step_kernel, .flags = AF}
#define TAKE(nm) {.name = nm, .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, \
                  .attrs = take_attrs, .shape = take_shape, .kernel = take_kernel, .flags = AF}
/* The ref-handle forms (TF 1.0-1.12's data_flow_ops) run like the resource ones. */
static const pst_op_def accum_ops[] = {
    MAKE("ConditionalAccumulator"), MAKE("ResourceConditionalAccumulator"),
    MAKE("SparseConditionalAccumulator"),
    APPLY("AccumulatorApplyGradient"), APPLY("ResourceAccumulatorApplyGradient"),
    NUM("AccumulatorNumAccumulated"), NUM("ResourceAccumulatorNumAccumulated"),
    SETSTEP("AccumulatorSetGlobalStep"), SETSTEP("ResourceAccumulatorSetGlobalStep"),
    TAKE("AccumulatorTakeGradient"), TAKE("ResourceAccumulatorTakeGradient"),
    {.name = "SparseAccumulatorApplyGradient", .min_inputs = 5, .max_inputs = 5,
     .n_outputs = 0, .attrs = sparse_apply_attrs, .shape = sparse_apply_shape,
     .kernel = sparse_apply_kernel, .flags = AF},
    {.name = "SparseAccumulatorTakeGradient", .min_inputs = 2, .max_inputs = 2, .n_outputs = 3,
     .attrs = take_attrs, .shape = sparse_take_shape, .kernel = take_kernel, .flags = AF},
};

void pst__register_accum_ops(void) {
    for (size_t i = 0; i < sizeof accum_ops / sizeof accum_ops[0]; i++)
        pst_op_register(&accum_ops[i]);
}
