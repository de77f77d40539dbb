/* TensorArrayV3 and StackV2 families (and TF 0.x's Stack, StackPush, StackPop, StackClose): the per-step containers tf.nn.dynamic_rnn's forward
 * and backward while loops read and write (TensorArray) and its gradients use to hand
 * activations from the forward loop to the backward one (Stack). A handle is a PST_RESOURCE
 * scalar pointing at the container; the node that creates containers owns them (its kernel
 * state) and frees the previous step's when it runs for a new step. Writes to a gradient
 * TensorArray (TensorArrayGradV3) add up, as TF's do. */
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

typedef struct tarray {
    pst_dtype dt;
    pst_shape elem_shape; /* as declared (may be partly unknown) */
    int dynamic, is_grad;
    int64_t n;            /* elements */
    pst_tensor **elems;   /* NULL where never written */
    int n_grads;
    struct tarray **grads;
    char **grad_src;
} tarray;

typedef struct tstack {
    pst_tensor **elems;
    int64_t n, cap, max;
} tstack;

/* Containers a creating node made during its current step. */
typedef struct owner {
    int64_t step;
    int is_stack;
    void **items;
    int n;
} owner;

static void tarray_free(tarray *a) {
    if (a == NULL) return;
    for (int64_t i = 0; i < a->n; i++) pst_tensor_unref(a->elems[i]);
    for (int i = 0; i < a->n_grads; i++) {
        tarray_free(a->grads[i]);
        free(a->grad_src[i]);
    }
    free(a->elems), free(a->grads), free(a->grad_src), free(a);
}

static void tstack_free(tstack *s) {
    if (s == NULL) return;
    for (int64_t i = 0; i < s->n; i++) pst_tensor_unref(s->elems[i]);
    free(s->elems), free(s);
}

static void owner_clear(owner *o) {
    for (int i = 0; i < o->n; i++) {
        if (o->is_stack) tstack_free(o->items[i]);
        else tarray_free(o->items[i]);
    }
    free(o->items);
    o->items = NULL;
    o->n = 0;
}

static void owner_free(void *p) {
    owner *o = p;
    if (o) owner_clear(o);
    free(o);
}

/* Records a new container in the node's state (dropping the last step's). */
static void own(pst_kernel_ctx *c, void *item, int is_stack) {
    owner *o = *c->state;
    if (o == NULL) {
        o = calloc(1, sizeof *o);
        PST_ASSERT(o != NULL);
        o->step = c->step_id;
        o->is_stack = is_stack;
        *c->state = o;
    }
    if (o->step != c->step_id) {
        owner_clear(o);
        o->step = c->step_id;
    }
    o->items = realloc(o->items, (size_t)(o->n + 1) * sizeof *o->items);
    PST_ASSERT(o->items != NULL);
    o->items[o->n++] = item;
}

static pst_tensor *handle_of(void *p) {
    pst_tensor *h = pst_tensor_new(PST_RESOURCE, pst_shape_scalar(), NULL);
    if (h) *(void **)h->data = p;
    return h;
}

static void *handle_get(pst_kernel_ctx *c, int i) {
    const pst_tensor *h = c->inputs[i];
    if (h->dtype != PST_RESOURCE || h->n < 1 || *(void **)h->data == NULL) {
        pst_kctx_error(c, PST_E_INVALID, "input %d is not a TensorArray or Stack handle", i);
        return NULL;
    }
    return *(void **)h->data;
}

static int set_flow(pst_kernel_ctx *c, int i) {
    pst_kctx_set_output(c, i, pst_tensor_scalar_f32(0));
    return 0;
}

/* ---- TensorArrayV3(size) -> handle, flow ----------------------------------------------- */
static int ta_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_RESOURCE, pst_shape_scalar());
    pst_node_set_output(n, 1, PST_FLOAT, pst_shape_scalar());
    return 0;
}

static int ta_resize(tarray *a, int64_t n) {
    if (n <= a->n) return 0;
    pst_tensor **e = realloc(a->elems, (size_t)n * sizeof *e);
    if (e == NULL) return -1;
    memset(e + a->n, 0, (size_t)(n - a->n) * sizeof *e);
    a->elems = e;
    a->n = n;
    return 0;
}

static tarray *ta_new(pst_dtype dt, pst_shape es, int64_t n, int dynamic) {
    tarray *a = calloc(1, sizeof *a);
    PST_ASSERT(a != NULL);
    a->dt = dt;
    a->elem_shape = es;
    a->dynamic = dynamic;
    if (ta_resize(a, n) < 0) {
        free(a);
        return NULL;
    }
    return a;
}

/* TensorArrayV3(size) -> handle, flow; V2 and V1 return the handle only. */
static int ta_kernel(pst_kernel_ctx *c) {
    int64_t n = pst_tensor_get_i64(c->inputs[0], 0);
    if (n < 0) return pst_kctx_error(c, PST_E_INVALID, "size %lld is negative", (long long)n);
    const pst_attr *es = pst_kctx_attr(c, "element_shape");
    tarray *a = ta_new(pst_kctx_attr_type(c, "dtype", PST_FLOAT),
                       es && es->kind == PST_ATTR_SHAPE ? es->v.shape : pst_shape_unknown(), n,
                       pst_kctx_attr_b(c, "dynamic_size", 0));
    if (a == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    own(c, a, 0);
    pst_kctx_set_output(c, 0, handle_of(a));
    return c->n_outputs > 1 ? set_flow(c, 1) : 0;
}

/* ---- TensorArrayGradV3(handle, flow) -> grad handle, flow ------------------------------ */
static int ta_grad_kernel(pst_kernel_ctx *c) {
    tarray *a = handle_get(c, 0);
    if (a == NULL) return c->status->code;
    const char *src = pst_kctx_attr_s(c, "source", "");
    tarray *g = NULL;
    for (int i = 0; i < a->n_grads && !g; i++)
        if (strcmp(a->grad_src[i], src) == 0) g = a->grads[i];
    if (g == NULL) {
        if ((g = ta_new(a->dt, a->elem_shape, a->n, a->dynamic)) == NULL)
            return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
        g->is_grad = 1;
        a->grads = realloc(a->grads, (size_t)(a->n_grads + 1) * sizeof *a->grads);
        a->grad_src = realloc(a->grad_src, (size_t)(a->n_grads + 1) * sizeof *a->grad_src);
        PST_ASSERT(a->grads && a->grad_src);
        a->grads[a->n_grads] = g;
        a->grad_src[a->n_grads++] = strdup(src);
    }
    pst_kctx_set_output(c, 0, handle_of(g));
    return c->n_outputs > 1 ? set_flow(c, 1) : 0;
}

/* Stores v at index i (a gradient array adds to what is there). */
static int ta_put(pst_kernel_ctx *c, tarray *a, int64_t i, pst_tensor *v) {
    if (i < 0 || (i >= a->n && !a->dynamic && !a->is_grad))
        return pst_kctx_error(c, PST_E_OUT_OF_RANGE, "index %lld is outside the TensorArray of "
                              "size %lld", (long long)i, (long long)a->n);
    if (v->dtype != a->dt)
        return pst_kctx_error(c, PST_E_INVALID, "writing %s to a TensorArray of %s",
                              pst_dtype_name(v->dtype), pst_dtype_name(a->dt));
    if (ta_resize(a, i + 1) < 0) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    pst_tensor *old = a->elems[i];
    if (old && a->is_grad) {
        if (!pst_shape_equal(&old->shape, &v->shape))
            return pst_kctx_error(c, PST_E_INVALID, "gradient writes of two shapes at index %lld",
                                  (long long)i);
        pst_tensor *sum = pst_tensor_clone(old, c->status);
        if (sum == NULL) return c->status->code;
        for (int64_t k = 0; k < sum->n; k++)
            pst_tensor_set_f64(sum, k, pst_tensor_get_f64(old, k) + pst_tensor_get_f64(v, k));
        pst_tensor_unref(old);
        a->elems[i] = sum;
        pst_tensor_unref(v);
        return 0;
    }
    pst_tensor_unref(old);
    a->elems[i] = v;
    return 0;
}

/* Element i, or zeros shaped like the array's elements for a gradient never written. */
static pst_tensor *ta_get(pst_kernel_ctx *c, tarray *a, int64_t i) {
    if (i < 0 || i >= a->n) {
        pst_kctx_error(c, PST_E_OUT_OF_RANGE, "index %lld is outside the TensorArray of size %lld",
                       (long long)i, (long long)a->n);
        return NULL;
    }
    if (a->elems[i]) return pst_tensor_ref(a->elems[i]);
    pst_shape s = a->elem_shape;
    for (int64_t k = 0; k < a->n && !pst_shape_is_known(&s); k++)
        if (a->elems[k]) s = a->elems[k]->shape;
    if (!a->is_grad || !pst_shape_is_known(&s)) {
        pst_kctx_error(c, PST_E_INVALID, "TensorArray element %lld was read before it was "
                       "written", (long long)i);
        return NULL;
    }
    return pst_tensor_new_zeros(a->dt, s, c->status);
}

static int ta_write_kernel(pst_kernel_ctx *c) {
    tarray *a = handle_get(c, 0);
    if (a == NULL) return c->status->code;
    if (ta_put(c, a, pst_tensor_get_i64(c->inputs[1], 0), pst_tensor_ref(c->inputs[2])) < 0) {
        return c->status->code;
    }
    return set_flow(c, 0);
}

static int ta_read_kernel(pst_kernel_ctx *c) {
    tarray *a = handle_get(c, 0);
    if (a == NULL) return c->status->code;
    pst_tensor *t = ta_get(c, a, pst_tensor_get_i64(c->inputs[1], 0));
    if (t == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, t);
    return 0;
}

static int ta_size_kernel(pst_kernel_ctx *c) {
    tarray *a = handle_get(c, 0);
    if (a == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, pst_tensor_scalar_i32((int32_t)a->n));
    return 0;
}

/* Index k of idx, or k itself when idx is NULL (TF 0.x's Pack and Unpack: every element). */
static int64_t index_at(const pst_tensor *idx, int64_t k) {
    return idx ? pst_tensor_get_i64(idx, k) : k;
}

/* Scatter(handle, indices, value, flow): value's rows become elements; TF 0.x's
 * Unpack(handle, value, flow) scatters every row to its own index. */
static int ta_scatter_kernel(pst_kernel_ctx *c) {
    tarray *a = handle_get(c, 0);
    if (a == NULL) return c->status->code;
    int unpack = c->n_inputs == 3;
    const pst_tensor *idx = unpack ? NULL : c->inputs[1], *v = c->inputs[unpack ? 1 : 2];
    if (v->shape.rank < 1)
        return pst_kctx_error(c, PST_E_INVALID, "value must be at least a vector");
    int64_t n = idx ? idx->n : v->shape.dims[0];
    if (v->shape.dims[0] != n)
        return pst_kctx_error(c, PST_E_INVALID, "value has %lld rows for %lld indices",
                              (long long)v->shape.dims[0], (long long)n);
    pst_shape es = {.rank = v->shape.rank - 1};
    for (int d = 1; d < v->shape.rank; d++) es.dims[d - 1] = v->shape.dims[d];
    int64_t row = n ? v->n / n : 0;
    for (int64_t k = 0; k < n; k++) {
        pst_tensor *e = pst_tensor_new(v->dtype, es, c->status);
        if (e == NULL || pst_tensor_copy_elems(e, 0, v, k * row, row, c->status) < 0) {
            pst_tensor_unref(e);
            return c->status->code;
        }
        if (ta_put(c, a, index_at(idx, k), e) < 0) return c->status->code;
    }
    return set_flow(c, 0);
}

/* Gather(handle, indices, flow): the elements stacked along a new first axis; TF 0.x's
 * Pack(handle, flow) stacks every element. */
static int ta_gather_kernel(pst_kernel_ctx *c) {
    tarray *a = handle_get(c, 0);
    if (a == NULL) return c->status->code;
    const pst_tensor *idx = c->n_inputs == 3 ? c->inputs[1] : NULL;
    int64_t n = idx ? idx->n : a->n;
    pst_tensor **parts = calloc((size_t)n + 1, sizeof *parts);
    PST_ASSERT(parts != NULL);
    int rc = 0;
    for (int64_t k = 0; k < n && rc == 0; k++) {
        parts[k] = ta_get(c, a, index_at(idx, k));
        if (parts[k] == NULL) rc = c->status->code;
        else if (k > 0 && !pst_shape_equal(&parts[k]->shape, &parts[0]->shape))
            rc = pst_kctx_error(c, PST_E_INVALID, "TensorArray elements differ in shape");
    }
    if (rc == 0) {
        pst_shape es = n ? parts[0]->shape : a->elem_shape;
        pst_shape os = {.rank = es.rank + 1};
        os.dims[0] = n;
        for (int d = 0; d < es.rank; d++) os.dims[d + 1] = es.dims[d] < 0 ? 0 : es.dims[d];
        pst_tensor *o = pst_kctx_alloc_output(c, 0, a->dt, os);
        if (o == NULL) rc = c->status->code;
        int64_t row = n ? parts[0]->n : 0;
        for (int64_t k = 0; o && k < n && rc == 0; k++)
            rc = pst_tensor_copy_elems(o, k * row, parts[k], 0, row, c->status);
    }
    for (int64_t k = 0; k < n; k++) pst_tensor_unref(parts[k]);
    free(parts);
    return rc;
}

/* Split(handle, value, lengths, flow): element i is rows [sum(lengths[:i]), + lengths[i]) of
 * value (tf.TensorArray.split). */
static int ta_split_kernel(pst_kernel_ctx *c) {
    tarray *a = handle_get(c, 0);
    if (a == NULL) return c->status->code;
    const pst_tensor *v = c->inputs[1], *len = c->inputs[2];
    if (v->shape.rank < 1 || len->shape.rank != 1)
        return pst_kctx_error(c, PST_E_INVALID, "value must be at least a vector and lengths a vector");
    int64_t total = 0;
    for (int64_t k = 0; k < len->n; k++) {
        int64_t l = pst_tensor_get_i64(len, k);
        if (l < 0) return pst_kctx_error(c, PST_E_INVALID, "lengths[%lld] = %lld is negative", (long long)k, (long long)l);
        total += l;
    }
    if (total != v->shape.dims[0])
        return pst_kctx_error(c, PST_E_INVALID, "the lengths add up to %lld, value has %lld rows",
                              (long long)total, (long long)v->shape.dims[0]);
    if (!a->dynamic && !a->is_grad && len->n > a->n)
        return pst_kctx_error(c, PST_E_OUT_OF_RANGE, "%lld pieces for a TensorArray of size %lld",
                              (long long)len->n, (long long)a->n);
    int64_t row = v->shape.dims[0] ? v->n / v->shape.dims[0] : 0, at = 0;
    for (int64_t k = 0; k < len->n; k++) {
        pst_shape es = v->shape;
        es.dims[0] = pst_tensor_get_i64(len, k);
        pst_tensor *e = pst_tensor_new(v->dtype, es, c->status);
        if (e == NULL || pst_tensor_copy_elems(e, 0, v, at * row, es.dims[0] * row, c->status) < 0) {
            pst_tensor_unref(e);
            return c->status->code;
        }
        at += es.dims[0];
        if (ta_put(c, a, k, e) < 0) return c->status->code;
    }
    return set_flow(c, 0);
}

/* Concat(handle, flow) -> value, lengths: the elements joined along their first axis
 * (tf.TensorArray.concat), with each one's row count. */
static int ta_concat_kernel(pst_kernel_ctx *c) {
    tarray *a = handle_get(c, 0);
    if (a == NULL) return c->status->code;
    pst_tensor **parts = calloc((size_t)a->n + 1, sizeof *parts);
    PST_ASSERT(parts != NULL);
    int rc = 0;
    int64_t rows = 0;
    char s0[128], sk[128];
    for (int64_t k = 0; k < a->n && rc == 0; k++) {
        parts[k] = ta_get(c, a, k);
        if (parts[k] == NULL) {
            rc = c->status->code;
        } else if (parts[k]->shape.rank < 1) {
            rc = pst_kctx_error(c, PST_E_INVALID, "element %lld is a scalar; concat needs vectors or more", (long long)k);
        } else {
            const pst_shape *p = &parts[k]->shape, *q = &parts[0]->shape;
            int same = p->rank == q->rank;
            for (int d = 1; same && d < p->rank; d++) same = p->dims[d] == q->dims[d];
            if (!same)
                rc = pst_kctx_error(c, PST_E_INVALID, "element %lld is %s, element 0 %s: only the first dims may differ",
                                    (long long)k, pst_shape_str(p, sk, sizeof sk), pst_shape_str(q, s0, sizeof s0));
            rows += p->dims[0];
        }
    }
    pst_shape os = {.rank = 1};
    if (rc == 0 && a->n > 0) {
        os = parts[0]->shape;
        os.dims[0] = rows;
    } else if (rc == 0) { /* empty: [0] + element_shape_except0 */
        const pst_attr *es = pst_kctx_attr(c, "element_shape_except0");
        if (es && es->kind == PST_ATTR_SHAPE && es->v.shape.rank >= 0 && es->v.shape.rank < PST_MAX_RANK) {
            os.rank = es->v.shape.rank + 1;
            for (int d = 0; d < es->v.shape.rank; d++) os.dims[d + 1] = es->v.shape.dims[d] < 0 ? 0 : es->v.shape.dims[d];
        }
        os.dims[0] = 0;
    }
    pst_tensor *o = rc == 0 ? pst_kctx_alloc_output(c, 0, a->dt, os) : NULL;
    pst_tensor *l = o ? pst_kctx_alloc_output(c, 1, PST_INT64, pst_shape_1d(a->n)) : NULL;
    if (rc == 0 && l == NULL) rc = c->status->code;
    for (int64_t k = 0, at = 0; rc == 0 && k < a->n; k++) {
        pst_tensor_i64(l)[k] = parts[k]->shape.dims[0];
        rc = pst_tensor_copy_elems(o, at, parts[k], 0, parts[k]->n, c->status);
        at += parts[k]->n;
    }
    for (int64_t k = 0; k < a->n; k++) pst_tensor_unref(parts[k]);
    free(parts);
    return rc;
}

static int concat_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape s = pst_shape_unknown();
    const pst_attr *es = pst_node_attr(n, "element_shape_except0");
    if (es && es->kind == PST_ATTR_SHAPE && es->v.shape.rank >= 0 && es->v.shape.rank < PST_MAX_RANK) {
        s.rank = es->v.shape.rank + 1;
        s.dims[0] = -1;
        for (int d = 0; d < es->v.shape.rank; d++) s.dims[d + 1] = es->v.shape.dims[d];
    }
    pst_node_set_output(n, 0, pst_node_attr_type(n, "dtype", PST_FLOAT), s);
    pst_node_set_output(n, 1, PST_INT64, pst_shape_1d(-1));
    return 0;
}

static int ta_close_kernel(pst_kernel_ctx *c) {
    (void)c;
    return 0;
}

/* ---- StackV2, StackPushV2, StackPopV2 -------------------------------------------------- */
/* StackV2(max_size), or TF 0.x's Stack() with no limit (its ref-typed string handle is a
 * resource handle here, like StackV2's). */
static int stack_kernel(pst_kernel_ctx *c) {
    tstack *s = calloc(1, sizeof *s);
    PST_ASSERT(s != NULL);
    s->max = c->n_inputs > 0 ? pst_tensor_get_i64(c->inputs[0], 0) : -1;
    own(c, s, 1);
    pst_kctx_set_output(c, 0, handle_of(s));
    return 0;
}

static int stack_push_kernel(pst_kernel_ctx *c) {
    tstack *s = handle_get(c, 0);
    if (s == NULL) return c->status->code;
    if (s->max >= 0 && s->n >= s->max && s->max > 0)
        return pst_kctx_error(c, PST_E_EXHAUSTED, "stack is full (max_size %lld)", (long long)s->max);
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->elems = realloc(s->elems, (size_t)s->cap * sizeof *s->elems);
        PST_ASSERT(s->elems != NULL);
    }
    s->elems[s->n++] = pst_tensor_ref(c->inputs[1]);
    pst_kctx_set_output(c, 0, pst_tensor_ref(c->inputs[1]));
    return 0;
}

static int stack_pop_kernel(pst_kernel_ctx *c) {
    tstack *s = handle_get(c, 0);
    if (s == NULL) return c->status->code;
    if (s->n == 0) return pst_kctx_error(c, PST_E_OUT_OF_RANGE, "pop from an empty stack");
    pst_kctx_set_output(c, 0, s->elems[--s->n]);
    return 0;
}

/* ---- Shapes ---------------------------------------------------------------------------- */
static int handle_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_RESOURCE, pst_shape_scalar());
    if (n->n_outputs > 1) pst_node_set_output(n, 1, PST_FLOAT, pst_shape_scalar());
    return 0;
}
static int flow_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_FLOAT, pst_shape_scalar());
    return 0;
}
static int read_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_dtype dt = pst_node_attr_type(n, "dtype", pst_node_attr_type(n, "elem_type", PST_FLOAT));
    pst_shape s = pst_shape_unknown();
    const pst_attr *es = pst_node_attr(n, "element_shape");
    int gather = strncmp(n->op->name, "TensorArrayGather", 17) == 0 ||
                 strcmp(n->op->name, "TensorArrayPack") == 0;
    if (gather && es && es->kind == PST_ATTR_SHAPE &&
        es->v.shape.rank >= 0 && es->v.shape.rank < PST_MAX_RANK) {
        s.rank = es->v.shape.rank + 1;
        s.dims[0] = -1;
        for (int d = 0; d < es->v.shape.rank; d++) s.dims[d + 1] = es->v.shape.dims[d];
    }
    pst_node_set_output(n, 0, dt, s);
    return 0;
}
static int size_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_INT32, pst_shape_scalar());
    return 0;
}
static int push_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 1), pst_node_in_shape(n, 1));
    return 0;
}

static const pst_attr_spec ta_attrs[] = {{"dtype", PST_ATTR_TYPE, 0},
                                         {"element_shape", PST_ATTR_SHAPE, 0},
                                         {"dynamic_size", PST_ATTR_BOOL, 0},
                                         {"clear_after_read", PST_ATTR_BOOL, 0},
                                         {"identical_element_shapes", PST_ATTR_BOOL, 0},
                                         {"tensor_array_name", PST_ATTR_STRING, 0},
                                         {"source", PST_ATTR_STRING, 0},
                                         {"T", PST_ATTR_TYPE, 0},
                                         {"element_shape_except0", PST_ATTR_SHAPE, 0},
                                         {0}};
static const pst_attr_spec stack_attrs[] = {{"elem_type", PST_ATTR_TYPE, 0},
                                            {"stack_name", PST_ATTR_STRING, 0},
                                            {"T", PST_ATTR_TYPE, 0},
                                            {"swap_memory", PST_ATTR_BOOL, 0},
                                            {0}};

#define TA(nm, nin, nout, sh, k, fl)                                                              \
    {.name = nm, .min_inputs = nin, .max_inputs = nin, .n_outputs = nout, .attrs = ta_attrs,      \
     .shape = sh, .kernel = k, .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | (fl)}
/* An op of TF 0.12's V2 family and its V1 twin (same inputs and outputs). */
#define TA_OLD(nm, nin, nout, sh, k, fl)                                                           \
    TA(nm "V2", nin, nout, sh, k, fl), TA(nm, nin, nout, sh, k, fl)
/* A creator of TensorArrays: the handle, and for V3 the flow. */
#define TA_NEW(nm, nout, sh)                                                                      \
    {.name = nm, .min_inputs = 1, .max_inputs = 1, .n_outputs = nout, .attrs = ta_attrs,          \
     .shape = sh, .kernel = ta_kernel, .state_free = owner_free,                                  \
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE}
static const pst_op_def tensor_array_ops[] = {
    TA_NEW("TensorArrayV3", 2, ta_shape),
    TA("TensorArrayGradV3", 2, 2, handle_shape, ta_grad_kernel, 0),
    TA("TensorArrayWriteV3", 4, 1, flow_shape, ta_write_kernel, PST_OP_STRINGS),
    TA("TensorArrayReadV3", 3, 1, read_shape, ta_read_kernel, PST_OP_STRINGS),
    TA("TensorArrayScatterV3", 4, 1, flow_shape, ta_scatter_kernel, PST_OP_STRINGS),
    TA("TensorArrayGatherV3", 3, 1, read_shape, ta_gather_kernel, PST_OP_STRINGS),
    TA("TensorArraySizeV3", 2, 1, size_shape, ta_size_kernel, 0),
    TA("TensorArraySplitV3", 4, 1, flow_shape, ta_split_kernel, PST_OP_STRINGS),
    TA("TensorArrayConcatV3", 2, 2, concat_shape, ta_concat_kernel, PST_OP_STRINGS),
    TA("TensorArrayCloseV3", 1, 0, NULL, ta_close_kernel, 0),
    /* TF 0.12 / 1.0 graphs: V2 takes and returns string handles (resource handles here), V1
     * ref-typed ones; neither creator nor grad returns a flow. Pack and Unpack are Gather and
     * Scatter over every element. */
    TA_NEW("TensorArrayV2", 1, handle_shape),
    TA_NEW("TensorArray", 1, handle_shape),
    TA_OLD("TensorArrayGrad", 2, 1, handle_shape, ta_grad_kernel, 0),
    TA_OLD("TensorArrayWrite", 4, 1, flow_shape, ta_write_kernel, PST_OP_STRINGS),
    TA_OLD("TensorArrayRead", 3, 1, read_shape, ta_read_kernel, PST_OP_STRINGS),
    TA_OLD("TensorArrayScatter", 4, 1, flow_shape, ta_scatter_kernel, PST_OP_STRINGS),
    TA_OLD("TensorArrayGather", 3, 1, read_shape, ta_gather_kernel, PST_OP_STRINGS),
    TA_OLD("TensorArraySize", 2, 1, size_shape, ta_size_kernel, 0),
    TA_OLD("TensorArraySplit", 4, 1, flow_shape, ta_split_kernel, PST_OP_STRINGS),
    TA_OLD("TensorArrayConcat", 2, 2, concat_shape, ta_concat_kernel, PST_OP_STRINGS),
    TA_OLD("TensorArrayClose", 1, 0, NULL, ta_close_kernel, 0),
    TA("TensorArrayUnpack", 3, 1, flow_shape, ta_scatter_kernel, PST_OP_STRINGS),
    TA("TensorArrayPack", 2, 1, read_shape, ta_gather_kernel, PST_OP_STRINGS),
    {.name = "StackV2", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = stack_attrs,
     .shape = handle_shape, .kernel = stack_kernel, .state_free = owner_free,
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "StackPushV2", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = stack_attrs, .shape = push_shape, .kernel = stack_push_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS},
    {.name = "StackPopV2", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = stack_attrs, .shape = read_shape, .kernel = stack_pop_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS},
    {.name = "StackCloseV2", .min_inputs = 1, .max_inputs = 1, .n_outputs = 0,
     .attrs = stack_attrs, .kernel = ta_close_kernel, .flags = PST_OP_STATEFUL},
    {.name = "Stack", .min_inputs = 0, .max_inputs = 0, .n_outputs = 1, .attrs = stack_attrs,
     .shape = handle_shape, .kernel = stack_kernel, .state_free = owner_free,
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "StackPush", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = stack_attrs, .shape = push_shape, .kernel = stack_push_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS},
    {.name = "StackPop", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = stack_attrs, .shape = read_shape, .kernel = stack_pop_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS},
    {.name = "StackClose", .min_inputs = 1, .max_inputs = 1, .n_outputs = 0,
     .attrs = stack_attrs, .kernel = ta_close_kernel, .flags = PST_OP_STATEFUL},
};

void pst__register_tensor_array_ops(void) {
    for (size_t i = 0; i < sizeof tensor_array_ops / sizeof tensor_array_ops[0]; i++)
        pst_op_register(&tensor_array_ops[i]);
}
