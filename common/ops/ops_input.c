/* Ops TF 1 input pipelines apply to what their readers produce: the SparseTensorsMap ops
 * (tf.train.batch of SparseTensors), StringToNumber (labels read as text) and AdjustContrastv2 (tf.image.random_contrast of the CIFAR-10 tutorial's
 * distorted inputs). (SparseToDense, for tf.sparse_tensor_to_dense of a VarLenFeature, is in
 * ops_array_more.c.) */
#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "varstore.h"

/* ---- StringToNumber(strings) -> out_type ------------------------------------------------ */
static int string_to_number_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "out_type", PST_FLOAT);
    if (dt != PST_FLOAT && dt != PST_DOUBLE && dt != PST_INT32 && dt != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "out_type %s is not a number type",
                              pst_dtype_name(dt));
    if (pst_node_in_dtype(n, 0) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "input 0 is not a string tensor");
    pst_node_set_output(n, 0, dt, pst_node_in_shape(n, 0));
    return 0;
}

static int string_to_number_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    pst_dtype dt = c->out_dtypes[0];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, dt, x->shape);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < x->n; i++) {
        const char *s = pst_tensor_str(x)[i].p ? pst_tensor_str(x)[i].p : "";
        char *end;
        errno = 0;
        int ok;
        if (dt == PST_FLOAT || dt == PST_DOUBLE) {
            double v = strtod(s, &end);
            ok = end != s && *end == '\0';
            if (ok) pst_tensor_set_f64(o, i, v);
        } else {
            long long v = strtoll(s, &end, 10);
            ok = end != s && *end == '\0' && errno == 0 &&
                 (dt == PST_INT64 || (v >= INT32_MIN && v <= INT32_MAX));
            if (ok && dt == PST_INT32) pst_tensor_i32(o)[i] = (int32_t)v;
            if (ok && dt == PST_INT64) pst_tensor_i64(o)[i] = v;
        }
        if (!ok)
            return pst_kctx_error(c, PST_E_INVALID, "StringToNumber could not correctly convert "
                                  "string: '%s' (element %lld) to %s", s, (long long)i,
                                  pst_dtype_name(dt));
    }
    return 0;
}

/* ---- AdjustContrastv2(images [..., h, w, c], factor) ------------------------------------ */
/* Per image and channel: (x - mean over h and w) * factor + mean. */
static int adjust_contrast_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    if (x->shape.rank < 3 || c->inputs[1]->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "images must be [..., height, width, channels] "
                              "and contrast_factor a scalar");
    double f = pst_tensor_get_f64(c->inputs[1], 0);
    int r = x->shape.rank;
    int64_t ch = x->shape.dims[r - 1], hw = x->shape.dims[r - 2] * x->shape.dims[r - 3];
    int64_t imgs = (hw * ch) != 0 ? x->n / (hw * ch) : 0;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    for (int64_t b = 0; b < imgs; b++)
        for (int64_t k = 0; k < ch; k++) {
            double mean = 0;
            for (int64_t p = 0; p < hw; p++) mean += pst_tensor_get_f64(x, (b * hw + p) * ch + k);
            mean /= (double)hw;
            for (int64_t p = 0; p < hw; p++) {
                int64_t i = (b * hw + p) * ch + k;
                pst_tensor_set_f64(o, i, (pst_tensor_get_f64(x, i) - mean) * f + mean);
            }
        }
    return 0;
}

static int adjust_contrast_shape(pst_node *n, pst_status *st) {
    if (!pst_dtype_is_float(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "images must be float");
    return pst_shape_same_as_input0(n, st);
}

/* ---- SparseTensorsMap: tf.train.batch of SparseTensors ----------------------------------- */
/* AddSparseToTensorsMap / AddManySparseToTensorsMap store sparse tensors (one, or one per row
 * of a minibatch) and return int64 handles that can go through queues; TakeMany...
 * (handles [N]) takes them out again as one batch. pstrain keeps one map per session, so
 * handles are unique whatever the ops' container and shared_name. */
typedef struct sp_entry {
    int64_t handle;
    pst_tensor *ind, *val, *shp;
    struct sp_entry *next;
} sp_entry;

typedef struct sp_map {
    pthread_mutex_t mu;
    int64_t next;
    sp_entry *head;
} sp_map;

static void sp_map_free(void *p) {
    sp_map *m = p;
    if (m == NULL) return;
    for (sp_entry *e = m->head, *n; e; e = n) {
        n = e->next;
        pst_tensor_unref(e->ind), pst_tensor_unref(e->val), pst_tensor_unref(e->shp);
        free(e);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void *sp_map_make(void *ctx, pst_status *st) {
    (void)ctx;
    sp_map *m = calloc(1, sizeof *m);
    if (m == NULL) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    m->next = 1;
    return m;
}

static sp_map *sp_map_of(pst_kernel_ctx *c) {
    return pst_var_store_resource(c->vars, "sparse_tensors_map", sp_map_make, NULL, sp_map_free,
                                  c->status);
}

/* Stores (takes the references); returns the handle. */
static int64_t sp_put(sp_map *m, pst_tensor *ind, pst_tensor *val, pst_tensor *shp) {
    sp_entry *e = calloc(1, sizeof *e);
    PST_ASSERT(e != NULL);
    *e = (sp_entry){0, ind, val, shp, NULL};
    pthread_mutex_lock(&m->mu);
    e->handle = m->next++;
    e->next = m->head;
    m->head = e;
    pthread_mutex_unlock(&m->mu);
    return e->handle;
}

static sp_entry *sp_take(sp_map *m, int64_t h) {
    pthread_mutex_lock(&m->mu);
    sp_entry **pp = &m->head;
    while (*pp && (*pp)->handle != h) pp = &(*pp)->next;
    sp_entry *e = *pp;
    if (e) *pp = e->next;
    pthread_mutex_unlock(&m->mu);
    return e;
}

static int check_sparse(pst_kernel_ctx *c, const pst_tensor *ind, const pst_tensor *val,
                        const pst_tensor *shp, int min_rank) {
    if (ind->dtype != PST_INT64 || ind->shape.rank != 2 || shp->shape.rank != 1 ||
        val->shape.rank != 1 || val->n != ind->shape.dims[0] ||
        ind->shape.dims[1] != shp->n || shp->n < min_rank)
        return pst_kctx_error(c, PST_E_INVALID, "not a SparseTensor of rank >= %d (indices "
                              "[N, R], values [N], shape [R])", min_rank);
    return 0;
}

static int add_sparse_kernel(pst_kernel_ctx *c) {
    const pst_tensor *ind = c->inputs[0], *val = c->inputs[1], *shp = c->inputs[2];
    int many = strstr(c->op->name, "Many") != NULL;
    if (check_sparse(c, ind, val, shp, many ? 2 : 1) < 0) return c->status->code;
    sp_map *m = sp_map_of(c);
    if (m == NULL) return c->status->code;
    if (!many) {
        int64_t h = sp_put(m, pst_tensor_clone(ind, c->status), pst_tensor_clone(val, c->status),
                           pst_tensor_clone(shp, c->status));
        pst_kctx_set_output(c, 0, pst_tensor_scalar_i64(h));
        return 0;
    }
    /* One entry per row of the minibatch (dim 0), indices without their first column. */
    int64_t rows = pst_tensor_i64(shp)[0], r = shp->n, n = ind->shape.dims[0];
    if (rows < 0) return pst_kctx_error(c, PST_E_INVALID, "negative minibatch size");
    pst_tensor *handles = pst_kctx_alloc_output(c, 0, PST_INT64, pst_shape_1d(rows));
    if (handles == NULL) return c->status->code;
    pst_shape rs = pst_shape_1d(r - 1);
    for (int64_t b = 0; b < rows; b++) {
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++) k += pst_tensor_i64(ind)[i * r] == b;
        pst_tensor *bi = pst_tensor_new(PST_INT64, pst_shape_2d(k, r - 1), c->status);
        pst_tensor *bv = pst_tensor_new_zeros(val->dtype, pst_shape_1d(k), c->status);
        pst_tensor *bs = pst_tensor_new(PST_INT64, rs, c->status);
        if (bi == NULL || bv == NULL || bs == NULL) {
            pst_tensor_unref(bi), pst_tensor_unref(bv), pst_tensor_unref(bs);
            return c->status->code;
        }
        memcpy(bs->data, pst_tensor_i64(shp) + 1, (size_t)(r - 1) * sizeof(int64_t));
        int64_t j = 0;
        for (int64_t i = 0; i < n; i++) {
            if (pst_tensor_i64(ind)[i * r] != b) continue;
            memcpy(pst_tensor_i64(bi) + j * (r - 1), pst_tensor_i64(ind) + i * r + 1,
                   (size_t)(r - 1) * sizeof(int64_t));
            pst_tensor_copy_elems(bv, j++, val, i, 1, c->status);
        }
        pst_tensor_i64(handles)[b] = sp_put(m, bi, bv, bs);
    }
    return 0;
}

static int take_many_kernel(pst_kernel_ctx *c) {
    const pst_tensor *h = c->inputs[0];
    if (h->dtype != PST_INT64 || h->shape.rank != 1)
        return pst_kctx_error(c, PST_E_INVALID, "sparse_handles must be an int64 vector");
    sp_map *m = sp_map_of(c);
    if (m == NULL) return c->status->code;
    int64_t n = h->n, total = 0, r = -1;
    sp_entry **es = calloc((size_t)n + 1, sizeof *es);
    PST_ASSERT(es != NULL);
    int rc = 0;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        es[i] = sp_take(m, pst_tensor_i64(h)[i]);
        if (es[i] == NULL) {
            rc = pst_kctx_error(c, PST_E_INVALID, "unable to find SparseTensor %lld (handle "
                                "%lld) in the map", (long long)i, (long long)pst_tensor_i64(h)[i]);
        } else if (r >= 0 && es[i]->shp->n != r) {
            rc = pst_kctx_error(c, PST_E_INVALID, "SparseTensors of ranks %lld and %lld cannot "
                                "be batched", (long long)r, (long long)es[i]->shp->n);
        } else {
            r = es[i]->shp->n;
            total += es[i]->val->n;
        }
    }
    if (r < 0) r = 1;
    pst_dtype dt = c->out_dtypes[1];
    pst_tensor *oi = rc ? NULL : pst_kctx_alloc_output(c, 0, PST_INT64, pst_shape_2d(total, r + 1));
    pst_tensor *ov = rc ? NULL : pst_kctx_alloc_output(c, 1, dt, pst_shape_1d(total));
    pst_tensor *os = rc ? NULL : pst_kctx_alloc_output(c, 2, PST_INT64, pst_shape_1d(r + 1));
    if (rc == 0 && (!oi || !ov || !os)) rc = c->status->code;
    if (rc == 0) {
        if (dt == PST_STRING) memset(ov->data, 0, ov->nbytes);
        int64_t at = 0;
        pst_tensor_i64(os)[0] = n;
        for (int64_t d = 1; d <= r; d++) pst_tensor_i64(os)[d] = 0;
        for (int64_t i = 0; i < n && rc == 0; i++) {
            sp_entry *e = es[i];
            if (e->val->dtype != dt) {
                rc = pst_kctx_error(c, PST_E_INVALID, "SparseTensor %lld holds %s, not %s",
                                    (long long)i, pst_dtype_name(e->val->dtype),
                                    pst_dtype_name(dt));
                break;
            }
            for (int64_t d = 0; d < r; d++)
                if (pst_tensor_i64(e->shp)[d] > pst_tensor_i64(os)[d + 1])
                    pst_tensor_i64(os)[d + 1] = pst_tensor_i64(e->shp)[d];
            for (int64_t k = 0; k < e->val->n; k++) {
                int64_t *row = pst_tensor_i64(oi) + (at + k) * (r + 1);
                row[0] = i;
                memcpy(row + 1, pst_tensor_i64(e->ind) + k * r, (size_t)r * sizeof(int64_t));
            }
            rc = pst_tensor_copy_elems(ov, at, e->val, 0, e->val->n, c->status);
            at += e->val->n;
        }
    }
    for (int64_t i = 0; i < n; i++)
        if (es[i]) {
            pst_tensor_unref(es[i]->ind), pst_tensor_unref(es[i]->val);
            pst_tensor_unref(es[i]->shp), free(es[i]);
        }
    free(es);
    return rc;
}

static int add_sparse_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_INT64,
                        strstr(n->op->name, "Many") ? pst_shape_1d(-1) : pst_shape_scalar());
    return 0;
}

static int take_many_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "dtype", PST_DT_INVALID);
    if (pst_dtype_size(dt) == 0 || dt == PST_RESOURCE)
        return pst_status_set(st, PST_E_INVALID, "dtype %s is not supported", pst_dtype_name(dt));
    pst_node_set_output(n, 0, PST_INT64, pst_shape_2d(-1, -1));
    pst_node_set_output(n, 1, dt, pst_shape_1d(-1));
    pst_node_set_output(n, 2, PST_INT64, pst_shape_1d(-1));
    return 0;
}

static const pst_attr_spec sp_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                         {"dtype", PST_ATTR_TYPE, 0},
                                         {"container", PST_ATTR_STRING, 0},
                                         {"shared_name", PST_ATTR_STRING, 0},
                                         {0}};
static const pst_attr_spec s2n_attrs[] = {{"out_type", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec t_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};

#define SPF (PST_OP_STATEFUL | PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE)
static const pst_op_def input_ops[] = {
    {.name = "AddSparseToTensorsMap", .min_inputs = 3, .max_inputs = 3, .n_outputs = 1,
     .attrs = sp_attrs, .shape = add_sparse_shape, .kernel = add_sparse_kernel, .flags = SPF},
    {.name = "AddManySparseToTensorsMap", .min_inputs = 3, .max_inputs = 3, .n_outputs = 1,
     .attrs = sp_attrs, .shape = add_sparse_shape, .kernel = add_sparse_kernel, .flags = SPF},
    {.name = "TakeManySparseFromTensorsMap", .min_inputs = 1, .max_inputs = 1, .n_outputs = 3,
     .attrs = sp_attrs, .shape = take_many_shape, .kernel = take_many_kernel, .flags = SPF},
    {.name = "StringToNumber", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = s2n_attrs, .shape = string_to_number_shape, .kernel = string_to_number_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "AdjustContrastv2", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = t_attrs, .shape = adjust_contrast_shape, .kernel = adjust_contrast_kernel,
     .flags = PST_OP_NOT_DIFFERENTIABLE},
};

void pst__register_input_ops(void) {
    for (size_t i = 0; i < sizeof input_ops / sizeof input_ops[0]; i++)
        pst_op_register(&input_ops[i]);
}
