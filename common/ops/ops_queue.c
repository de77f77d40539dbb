/* ops_queue: TF 1.x input queues and the ops around them (see ops_queue.h). */
#include "ops_queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op.h"
#include "ops.h"
#include "varstore.h"

enum { Q_FIFO, Q_SHUFFLE, Q_PADDING };

struct pst_queue {
    char *name;
    int kind;
    int nc;              /* components per element */
    pst_dtype *types;
    pst_shape *shapes;   /* NULL when the queue declares none */
    int64_t capacity;    /* <= 0: unbounded */
    int64_t min_after;   /* RandomShuffleQueue's min_after_dequeue */
    uint64_t rng;
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* any change: an element in or out, a close */
    pst_tensor **ring;   /* ring_cap elements of nc tensors each */
    int64_t ring_cap, head, count;
    int closed, cancelled;
};

static void queue_free(void *p) {
    pst_queue *q = p;
    if (q == NULL) return;
    for (int64_t i = 0; i < q->count; i++)
        for (int c = 0; c < q->nc; c++)
            pst_tensor_unref(q->ring[((q->head + i) % q->ring_cap) * q->nc + c]);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q->ring), free(q->types), free(q->shapes), free(q->name), free(q);
}

static uint64_t next_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t seed_of(int64_t seed, int64_t seed2) {
    static atomic_uint_fast64_t counter;
    if (seed == 0 && seed2 == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
               (atomic_fetch_add(&counter, 1) * 0x9e3779b97f4a7c15ULL);
    }
    return (uint64_t)seed * 0x100000001b3ULL ^ (uint64_t)seed2 * 0x9e3779b97f4a7c15ULL;
}

/* ---- The queue itself ------------------------------------------------------------------ */

typedef struct make_ctx {
    pst_kernel_ctx *c;
    const char *name;
} make_ctx;

static void *queue_make(void *p, pst_status *st) {
    make_ctx *m = p;
    pst_kernel_ctx *c = m->c;
    const pst_attr *types = pst_kctx_attr(c, "component_types");
    if (types == NULL || types->kind != PST_ATTR_LIST_TYPE || types->n < 1) {
        pst_status_set(st, PST_E_INVALID, "queue '%s' has no component_types", m->name);
        return NULL;
    }
    const pst_attr *shapes = pst_kctx_attr(c, "shapes");
    int ns = shapes && shapes->kind == PST_ATTR_LIST_SHAPE ? shapes->n : 0;
    if (ns != 0 && ns != types->n) {
        pst_status_set(st, PST_E_INVALID, "queue '%s' has %d component types but %d shapes",
                       m->name, types->n, ns);
        return NULL;
    }
    pst_queue *q = calloc(1, sizeof *q);
    if (q == NULL) goto oom;
    const char *op = c->op->name;
    q->kind = strstr(op, "RandomShuffle") ? Q_SHUFFLE : strstr(op, "Padding") ? Q_PADDING : Q_FIFO;
    q->nc = types->n;
    q->name = strdup(m->name);
    q->types = malloc((size_t)q->nc * sizeof *q->types);
    if (q->name == NULL || q->types == NULL) goto oom;
    memcpy(q->types, types->list.type, (size_t)q->nc * sizeof *q->types);
    if (ns) {
        if ((q->shapes = malloc((size_t)ns * sizeof *q->shapes)) == NULL) goto oom;
        memcpy(q->shapes, shapes->list.shape, (size_t)ns * sizeof *q->shapes);
    }
    q->capacity = pst_kctx_attr_i(c, "capacity", -1);
    q->min_after = q->kind == Q_SHUFFLE ? pst_kctx_attr_i(c, "min_after_dequeue", 0) : 0;
    q->rng = seed_of(pst_kctx_attr_i(c, "seed", 0), pst_kctx_attr_i(c, "seed2", 0));
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    return q;
oom:
    if (q) free(q->name), free(q->types), free(q);
    pst_status_set(st, PST_E_EXHAUSTED, "out of memory creating queue '%s'", m->name);
    return NULL;
}

pst_queue *pst_queue_from_handle(const pst_tensor *h, pst_status *st) {
    if (h == NULL || h->dtype != PST_RESOURCE || h->n != 1 || *(void **)h->data == NULL) {
        pst_status_set(st, PST_E_INVALID, "not a queue handle");
        return NULL;
    }
    return *(pst_queue **)h->data;
}

const char *pst_queue_name(const pst_queue *q) { return q->name; }

int64_t pst_queue_size(pst_queue *q) {
    pthread_mutex_lock(&q->mu);
    int64_t n = q->count;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void pst_queue_close(pst_queue *q, int cancel_pending_enqueues) {
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    if (cancel_pending_enqueues) q->cancelled = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Checks one element's components against the queue's types and shapes. */
static int check_element(pst_queue *q, pst_tensor *const *e, pst_status *st) {
    char b1[96], b2[96];
    for (int c = 0; c < q->nc; c++) {
        if (e[c]->dtype != q->types[c])
            return pst_status_set(st, PST_E_INVALID, "queue '%s' component %d takes %s, not %s",
                                  q->name, c, pst_dtype_name(q->types[c]),
                                  pst_dtype_name(e[c]->dtype));
        if (q->shapes && !pst_shape_compatible(&q->shapes[c], &e[c]->shape))
            return pst_status_set(st, PST_E_INVALID, "queue '%s' component %d has shape %s; "
                                  "got %s", q->name, c, pst_shape_str(&q->shapes[c], b1, sizeof b1),
                                  pst_shape_str(&e[c]->shape, b2, sizeof b2));
    }
    return 0;
}

/* Appends one element (takes the references) once there is room. Called with mu held. */
static int push_locked(pst_queue *q, pst_tensor **e, pst_status *st) {
    for (;;) {
        if (q->cancelled)
            return pst_status_set(st, PST_E_CANCELLED, "enqueue to queue '%s' was cancelled "
                                  "(the queue was closed)", q->name);
        if (q->capacity <= 0 || q->count < q->capacity) break;
        pthread_cond_wait(&q->cv, &q->mu);
    }
    if (q->count == q->ring_cap) {
        int64_t cap = q->ring_cap ? q->ring_cap * 2 : 16;
        pst_tensor **r = malloc((size_t)(cap * q->nc) * sizeof *r);
        if (r == NULL) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory in queue '%s'",
                                             q->name);
        for (int64_t i = 0; i < q->count; i++)
            memcpy(r + i * q->nc, q->ring + ((q->head + i) % q->ring_cap) * q->nc,
                   (size_t)q->nc * sizeof *r);
        free(q->ring);
        q->ring = r;
        q->ring_cap = cap;
        q->head = 0;
    }
    memcpy(q->ring + ((q->head + q->count) % q->ring_cap) * q->nc, e, (size_t)q->nc * sizeof *e);
    q->count++;
    pthread_cond_broadcast(&q->cv);
    return 0;
}

/* Enqueues elements [0, k) of the batch (k elements of nc components each; references are
 * taken, and released on error). */
static int enqueue(pst_queue *q, pst_tensor **elems, int64_t k, pst_status *st) {
    int rc = 0;
    int64_t done = 0;
    for (int64_t i = 0; i < k && rc == 0; i++) rc = check_element(q, elems + i * q->nc, st);
    pthread_mutex_lock(&q->mu);
    if (rc == 0 && q->closed)
        rc = pst_status_set(st, PST_E_CANCELLED, "queue '%s' is closed", q->name);
    while (rc == 0 && done < k)
        if ((rc = push_locked(q, elems + done * q->nc, st)) == 0) done++;
    pthread_mutex_unlock(&q->mu);
    for (int64_t i = done; i < k; i++) /* what no push took */
        for (int c = 0; c < q->nc; c++) pst_tensor_unref(elems[i * q->nc + c]);
    return rc;
}

/* Removes n elements into out (n * nc references), or once the queue is closed, with up_to,
 * what is left (at least one). Returns how many were taken, -1 with st set. */
static int64_t dequeue(pst_queue *q, int64_t n, int up_to, pst_tensor **out, pst_status *st) {
    pthread_mutex_lock(&q->mu);
    int64_t take = -1;
    for (;;) {
        if (!q->closed) {
            if (q->count >= n + q->min_after) {
                take = n;
                break;
            }
        } else if (q->count >= n) {
            take = n;
            break;
        } else if (up_to && q->count > 0) {
            take = q->count;
            break;
        } else {
            pst_status_set(st, PST_E_OUT_OF_RANGE, "queue '%s' is closed and has insufficient "
                           "elements (requested %lld, current size %lld)", q->name,
                           (long long)n, (long long)q->count);
            break;
        }
        pthread_cond_wait(&q->cv, &q->mu);
    }
    for (int64_t i = 0; i < take; i++) {
        if (q->kind == Q_SHUFFLE && q->count > 1) { /* swap a random element to the head */
            int64_t r = (int64_t)(next_rand(&q->rng) % (uint64_t)q->count);
            pst_tensor **a = q->ring + q->head * q->nc;
            pst_tensor **b = q->ring + ((q->head + r) % q->ring_cap) * q->nc;
            for (int c = 0; c < q->nc; c++) {
                pst_tensor *t = a[c];
                a[c] = b[c];
                b[c] = t;
            }
        }
        memcpy(out + i * q->nc, q->ring + q->head * q->nc, (size_t)q->nc * sizeof *out);
        q->head = (q->head + 1) % q->ring_cap;
        q->count--;
    }
    if (take > 0) pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return take;
}

int pst_queue_dequeue_one(pst_queue *q, pst_tensor **out, pst_status *st) {
    *out = NULL;
    if (q->nc != 1)
        return pst_status_set(st, PST_E_INVALID, "queue '%s' has %d components, not 1", q->name,
                              q->nc);
    return dequeue(q, 1, 0, out, st) == 1 ? 0 : st->code;
}

/* ---- Kernels --------------------------------------------------------------------------- */

pst_tensor *pst_ops_resource_handle(void *p) {
    pst_tensor *h = pst_tensor_new(PST_RESOURCE, pst_shape_scalar(), NULL);
    if (h) *(void **)h->data = p;
    return h;
}

static int queue_kernel(pst_kernel_ctx *c) {
    const char *shared = pst_kctx_attr_s(c, "shared_name", "");
    const char *name = shared[0] ? shared : c->node_name;
    char key[1200];
    snprintf(key, sizeof key, "queue:%s", name);
    make_ctx m = {c, name};
    pst_queue *q = pst_var_store_resource(c->vars, key, queue_make, &m, queue_free, c->status);
    if (q == NULL) return c->status->code;
    pst_tensor *h = pst_ops_resource_handle(q);
    if (h == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    pst_kctx_set_output(c, 0, h);
    return 0;
}

static pst_queue *queue_in(pst_kernel_ctx *c) {
    pst_status st = {0};
    pst_queue *q = pst_queue_from_handle(c->inputs[0], &st);
    if (q == NULL) pst_kctx_error(c, PST_E_INVALID, "input 0 is not a queue handle");
    return q;
}

static int enqueue_kernel(pst_kernel_ctx *c) {
    pst_queue *q = queue_in(c);
    if (q == NULL) return c->status->code;
    int nc = c->n_inputs - 1;
    if (nc != q->nc)
        return pst_kctx_error(c, PST_E_INVALID, "queue '%s' takes %d components, got %d",
                              q->name, q->nc, nc);
    int many = strstr(c->op->name, "Many") != NULL;
    if (!many) {
        pst_tensor **e = malloc((size_t)nc * sizeof *e);
        if (e == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
        for (int i = 0; i < nc; i++) e[i] = pst_tensor_ref(c->inputs[i + 1]);
        int rc = enqueue(q, e, 1, c->status);
        free(e);
        return rc;
    }
    /* EnqueueMany: component tensors share dim 0; element i is slice i of each. */
    int64_t k = -1;
    for (int i = 0; i < nc; i++) {
        const pst_tensor *t = c->inputs[i + 1];
        if (t->shape.rank < 1)
            return pst_kctx_error(c, PST_E_INVALID, "component %d is a scalar; EnqueueMany "
                                  "needs a batch dimension", i);
        if (k >= 0 && t->shape.dims[0] != k)
            return pst_kctx_error(c, PST_E_INVALID, "components have different batch sizes "
                                  "(%lld and %lld)", (long long)k, (long long)t->shape.dims[0]);
        k = t->shape.dims[0];
    }
    pst_tensor **e = calloc((size_t)(k * nc) + 1, sizeof *e);
    if (e == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    int rc = 0;
    for (int i = 0; i < nc && rc == 0; i++) {
        const pst_tensor *t = c->inputs[i + 1];
        pst_shape es = pst_shape_make(t->shape.rank - 1, t->shape.dims + 1);
        int64_t per = k ? t->n / k : 0;
        for (int64_t j = 0; j < k && rc == 0; j++) {
            pst_tensor *x = pst_tensor_new_zeros(t->dtype, es, c->status);
            if (x == NULL || pst_tensor_copy_elems(x, 0, t, j * per, per, c->status) < 0)
                rc = c->status->code;
            e[j * nc + i] = x;
        }
    }
    if (rc == 0) {
        rc = enqueue(q, e, k, c->status);
    } else {
        for (int64_t j = 0; j < k * nc; j++) pst_tensor_unref(e[j]);
    }
    free(e);
    return rc;
}

/* Copies element src (shape s) into dst at element offset base, dst's element shape being
 * ps (each dim >= s's): rows of the last dim at their padded positions. */
static int copy_padded(pst_tensor *dst, int64_t base, const pst_shape *ps, const pst_tensor *src,
                       pst_status *st) {
    int r = src->shape.rank;
    if (r == 0 || src->n == 0) return src->n ? pst_tensor_copy_elems(dst, base, src, 0, 1, st) : 0;
    int64_t row = src->shape.dims[r - 1], rows = src->n / row;
    int64_t idx[PST_MAX_RANK] = {0};
    for (int64_t k = 0; k < rows; k++) {
        int64_t off = 0, rem = k;
        for (int d = r - 2; d >= 0; d--) {
            idx[d] = rem % src->shape.dims[d];
            rem /= src->shape.dims[d];
        }
        for (int d = 0; d < r - 1; d++) off = off * ps->dims[d] + idx[d];
        off *= ps->dims[r - 1];
        if (pst_tensor_copy_elems(dst, base + off, src, k * row, row, st) < 0) return st->code;
    }
    return 0;
}

/* Stacks component c of the k elements into output c (padding for a PaddingFIFOQueue). */
static int stack_component(pst_kernel_ctx *c, pst_queue *q, int comp, pst_tensor **e, int64_t k) {
    pst_shape es;
    char b1[96], b2[96];
    if (k == 0) {
        if (!q->shapes || !pst_shape_is_known(&q->shapes[comp]))
            return pst_kctx_error(c, PST_E_INVALID, "queue '%s' cannot make an empty batch: "
                                  "component %d has no fully known shape", q->name, comp);
        es = q->shapes[comp];
    } else {
        es = e[comp]->shape;
        for (int64_t j = 1; j < k; j++) {
            const pst_shape *s = &e[j * q->nc + comp]->shape;
            if (pst_shape_equal(s, &es)) continue;
            if (q->kind != Q_PADDING || s->rank != es.rank)
                return pst_kctx_error(c, PST_E_INVALID, "queue '%s' component %d: elements of "
                                      "shapes %s and %s cannot be batched", q->name, comp,
                                      pst_shape_str(&es, b1, sizeof b1),
                                      pst_shape_str(s, b2, sizeof b2));
            for (int d = 0; d < es.rank; d++)
                if (s->dims[d] > es.dims[d]) es.dims[d] = s->dims[d];
        }
    }
    if (es.rank + 1 > PST_MAX_RANK)
        return pst_kctx_error(c, PST_E_INVALID, "component %d's rank is too large", comp);
    int64_t dims[PST_MAX_RANK];
    dims[0] = k;
    memcpy(dims + 1, es.dims, (size_t)es.rank * sizeof *dims);
    pst_tensor *o = pst_tensor_new_zeros(q->types[comp], pst_shape_make(es.rank + 1, dims),
                                         c->status);
    if (o == NULL) return c->status->code;
    pst_kctx_set_output(c, comp, o);
    int64_t per = k ? o->n / k : 0;
    for (int64_t j = 0; j < k; j++) {
        const pst_tensor *x = e[j * q->nc + comp];
        int rc = pst_shape_equal(&x->shape, &es)
                     ? pst_tensor_copy_elems(o, j * per, x, 0, per, c->status)
                     : copy_padded(o, j * per, &es, x, c->status);
        if (rc < 0) return rc;
    }
    return 0;
}

static int dequeue_kernel(pst_kernel_ctx *c) {
    pst_queue *q = queue_in(c);
    if (q == NULL) return c->status->code;
    if (c->n_outputs != q->nc)
        return pst_kctx_error(c, PST_E_INVALID, "queue '%s' has %d components; the dequeue "
                              "gives %d", q->name, q->nc, c->n_outputs);
    const char *op = c->op->name;
    int many = strstr(op, "Many") != NULL, up_to = strstr(op, "UpTo") != NULL;
    int64_t n = 1;
    if (many || up_to) {
        n = pst_tensor_get_i64(c->inputs[1], 0);
        if (c->inputs[1]->n != 1 || n < 0)
            return pst_kctx_error(c, PST_E_INVALID, "the number of elements must be a "
                                  "non-negative scalar");
    }
    pst_tensor **e = calloc((size_t)(n * q->nc) + 1, sizeof *e);
    if (e == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    int64_t k = dequeue(q, n, up_to, e, c->status);
    int rc = k < 0 ? c->status->code : 0;
    if (rc == 0 && !(many || up_to)) {
        for (int i = 0; i < q->nc; i++) {
            pst_kctx_set_output(c, i, e[i]);
            e[i] = NULL;
        }
    } else {
        for (int i = 0; i < q->nc && rc == 0; i++) rc = stack_component(c, q, i, e, k);
    }
    for (int64_t j = 0; j < (k > 0 ? k : 0) * q->nc; j++) pst_tensor_unref(e[j]);
    free(e);
    return rc;
}

static int close_kernel(pst_kernel_ctx *c) {
    pst_queue *q = queue_in(c);
    if (q == NULL) return c->status->code;
    pst_queue_close(q, pst_kctx_attr_b(c, "cancel_pending_enqueues", 0));
    return 0;
}

static int size_kernel(pst_kernel_ctx *c) {
    pst_queue *q = queue_in(c);
    if (q == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, pst_tensor_scalar_i32((int32_t)pst_queue_size(q)));
    return 0;
}

static int is_closed_kernel(pst_kernel_ctx *c) {
    pst_queue *q = queue_in(c);
    if (q == NULL) return c->status->code;
    pthread_mutex_lock(&q->mu);
    int closed = q->closed;
    pthread_mutex_unlock(&q->mu);
    pst_kctx_set_output(c, 0, pst_tensor_scalar_bool(closed));
    return 0;
}

/* ---- RandomShuffle(value): a random permutation along dim 0 ----------------------------- */
static void rng_free(void *p) { free(p); }

static int random_shuffle_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    uint64_t *r = *c->state;
    if (r == NULL) {
        if ((r = malloc(sizeof *r)) == NULL)
            return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
        *r = seed_of(pst_kctx_attr_i(c, "seed", 0), pst_kctx_attr_i(c, "seed2", 0));
        *c->state = r;
    }
    pst_tensor *o = pst_tensor_new_zeros(x->dtype, x->shape, c->status);
    if (o == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, o);
    int64_t n = x->shape.rank ? x->shape.dims[0] : 1;
    int64_t per = n ? x->n / n : 0;
    int64_t *perm = malloc(((size_t)n + 1) * sizeof *perm);
    if (perm == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)(next_rand(r) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int rc = 0;
    for (int64_t i = 0; i < n && rc == 0; i++)
        rc = pst_tensor_copy_elems(o, i * per, x, perm[i] * per, per, c->status);
    free(perm);
    return rc;
}

/* ---- DecodeRaw(bytes) -> out_type [..., len / size] ------------------------------------- */
static int decode_raw_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "out_type", PST_DT_INVALID);
    if (pst_dtype_size(dt) == 0 || dt == PST_STRING || dt == PST_RESOURCE || dt == PST_BOOL)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "out_type %s is not supported",
                              pst_dtype_name(dt));
    if (pst_node_in_dtype(n, 0) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "input 0 is not a string tensor");
    pst_shape s = pst_node_in_shape(n, 0);
    if (s.rank >= 0 && s.rank < PST_MAX_RANK) s.dims[s.rank++] = -1;
    else s = pst_shape_unknown();
    pst_node_set_output(n, 0, dt, s);
    return 0;
}

static int decode_raw_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    pst_dtype dt = c->out_dtypes[0];
    size_t sz = pst_dtype_size(dt);
    const pst_tstring *s = pst_tensor_str(x);
    size_t len = x->n ? s[0].len : 0;
    for (int64_t i = 0; i < x->n; i++)
        if (s[i].len != len)
            return pst_kctx_error(c, PST_E_INVALID, "DecodeRaw requires input strings to all be "
                                  "the same size, but element %lld has size %zu != %zu",
                                  (long long)i, s[i].len, len);
    if (len % sz)
        return pst_kctx_error(c, PST_E_INVALID, "input size %zu is not a multiple of %zu (the "
                              "size of %s)", len, sz, pst_dtype_name(dt));
    if (x->shape.rank + 1 > PST_MAX_RANK)
        return pst_kctx_error(c, PST_E_INVALID, "input rank too large");
    pst_shape os = x->shape;
    os.dims[os.rank++] = (int64_t)(len / sz);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, dt, os);
    if (o == NULL) return c->status->code;
    int big = !pst_kctx_attr_b(c, "little_endian", 1);
    uint8_t *d = o->data;
    for (int64_t i = 0; i < x->n; i++) {
        if (len) memcpy(d + (size_t)i * len, s[i].p, len);
        if (big && sz > 1)
            for (size_t e = 0; e < len; e += sz)
                for (size_t a = 0, b = sz - 1; a < b; a++, b--) {
                    uint8_t t = d[(size_t)i * len + e + a];
                    d[(size_t)i * len + e + a] = d[(size_t)i * len + e + b];
                    d[(size_t)i * len + e + b] = t;
                }
    }
    return 0;
}

/* ---- CountUpTo(ref, limit): the old value, then +1; OutOfRange once it reached limit ------ */
/* string_input_producer(num_epochs=N) and friends count epochs with it. */
static int count_up_to_kernel(pst_kernel_ctx *c) {
    pst_var *v = c->input_vars[0];
    int64_t limit = pst_kctx_attr_i(c, "limit", 0);
    pst_tensor *t = pst_var_begin_update(v, c->status);
    if (t == NULL) return c->status->code;
    if (t->n != 1 || (t->dtype != PST_INT32 && t->dtype != PST_INT64)) {
        pst_var_end_update(v);
        return pst_kctx_error(c, PST_E_INVALID, "variable '%s' is not an int32 or int64 scalar",
                              v->name);
    }
    int64_t old = pst_tensor_get_i64(t, 0);
    if (old >= limit) {
        pst_var_end_update(v);
        return pst_kctx_error(c, PST_E_OUT_OF_RANGE, "Reached limit of %lld", (long long)limit);
    }
    pst_tensor_set_f64(t, 0, (double)(old + 1));
    pst_dtype dt = t->dtype;
    pst_var_end_update(v);
    pst_kctx_set_output(c, 0, dt == PST_INT32 ? pst_tensor_scalar_i32((int32_t)old)
                                              : pst_tensor_scalar_i64(old));
    return 0;
}

static int count_up_to_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (dt != PST_INT32 && dt != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "input 0 must be an int32 or int64 variable");
    pst_node_set_output(n, 0, dt, pst_shape_scalar());
    return 0;
}

/* ---- Shapes ---------------------------------------------------------------------------- */
int pst_ops_resource_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_RESOURCE, pst_shape_scalar());
    return 0;
}

static int handle_input(pst_node *n, pst_status *st) {
    if (n->n_inputs < 1 || pst_node_in_dtype(n, 0) != PST_RESOURCE)
        return pst_status_set(st, PST_E_INVALID, "input 0 is not a queue handle");
    return 0;
}

static int enqueue_shape(pst_node *n, pst_status *st) { return handle_input(n, st); }

/* Outputs from component_types; shapes from the queue node's `shapes` attr when the handle
 * comes straight from it, with a batch dim for DequeueMany (n when constant) and UpTo. */
static int dequeue_shape(pst_node *n, pst_status *st) {
    if (handle_input(n, st) < 0) return st->code;
    const pst_attr *types = pst_node_attr(n, "component_types");
    if (types == NULL || types->kind != PST_ATTR_LIST_TYPE || types->n < 1)
        return pst_status_set(st, PST_E_INVALID, "no component_types");
    pst_node_set_num_outputs(n, types->n);
    const pst_attr *shapes = pst_node_attr(n->inputs[0].node, "shapes");
    if (shapes && (shapes->kind != PST_ATTR_LIST_SHAPE || shapes->n != types->n)) shapes = NULL;
    int batch = n->n_inputs > 1;
    int64_t b = -1;
    const pst_tensor *k = batch ? pst_node_in_const(n, 1) : NULL;
    if (k && k->n == 1 && strstr(n->op->name, "Many")) b = pst_tensor_get_i64(k, 0);
    for (int i = 0; i < types->n; i++) {
        pst_shape s = shapes ? shapes->list.shape[i] : pst_shape_unknown();
        pst_node_set_output(n, i, types->list.type[i], batch ? pst_shape_prepend(s, b) : s);
    }
    return 0;
}

static int size_shape(pst_node *n, pst_status *st) {
    if (handle_input(n, st) < 0) return st->code;
    pst_node_set_output(n, 0, PST_INT32, pst_shape_scalar());
    return 0;
}

static int is_closed_shape(pst_node *n, pst_status *st) {
    if (handle_input(n, st) < 0) return st->code;
    pst_node_set_output(n, 0, PST_BOOL, pst_shape_scalar());
    return 0;
}

static const pst_attr_spec queue_attrs[] = {
    {"component_types", PST_ATTR_LIST_TYPE, 1}, {"shapes", PST_ATTR_LIST_SHAPE, 0},
    {"capacity", PST_ATTR_INT, 0},              {"min_after_dequeue", PST_ATTR_INT, 0},
    {"seed", PST_ATTR_INT, 0},                  {"seed2", PST_ATTR_INT, 0},
    {"container", PST_ATTR_STRING, 0},          {"shared_name", PST_ATTR_STRING, 0},
    {0}};
static const pst_attr_spec enqueue_attrs[] = {
    {"Tcomponents", PST_ATTR_LIST_TYPE, 0}, {"timeout_ms", PST_ATTR_INT, 0}, {0}};
static const pst_attr_spec dequeue_attrs[] = {
    {"component_types", PST_ATTR_LIST_TYPE, 1}, {"timeout_ms", PST_ATTR_INT, 0}, {0}};
static const pst_attr_spec close_attrs[] = {{"cancel_pending_enqueues", PST_ATTR_BOOL, 0}, {0}};
static const pst_attr_spec shuffle_attrs[] = {
    {"T", PST_ATTR_TYPE, 0}, {"seed", PST_ATTR_INT, 0}, {"seed2", PST_ATTR_INT, 0}, {0}};
static const pst_attr_spec count_attrs[] = {{"limit", PST_ATTR_INT, 1}, {"T", PST_ATTR_TYPE, 0},
                                            {0}};
static const pst_attr_spec decode_raw_attrs[] = {
    {"out_type", PST_ATTR_TYPE, 1}, {"little_endian", PST_ATTR_BOOL, 0}, {0}};

#define QF (PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS)
#define QUEUE(nm) {.name = nm, .min_inputs = 0, .max_inputs = 0, .n_outputs = 1, \
                   .attrs = queue_attrs, .shape = pst_ops_resource_shape, .kernel = queue_kernel, .flags = QF}
#define ENQ(nm) {.name = nm, .min_inputs = 2, .max_inputs = -1, .n_outputs = 0, \
                 .attrs = enqueue_attrs, .shape = enqueue_shape, .kernel = enqueue_kernel, .flags = QF}
#define DEQ(nm, k) {.name = nm, .min_inputs = k, .max_inputs = k, .n_outputs = -1, \
                    .attrs = dequeue_attrs, .shape = dequeue_shape, .kernel = dequeue_kernel, \
                    .flags = QF}
/* The V2 ops take a resource handle; TF 0.x's (FIFOQueue, QueueEnqueue, ...) a string ref,
 * which pstrain runs the same way. */
static const pst_op_def queue_ops[] = {
    QUEUE("FIFOQueueV2"), QUEUE("RandomShuffleQueueV2"), QUEUE("PaddingFIFOQueueV2"),
    QUEUE("FIFOQueue"), QUEUE("RandomShuffleQueue"), QUEUE("PaddingFIFOQueue"),
    ENQ("QueueEnqueueV2"), ENQ("QueueEnqueueManyV2"), ENQ("QueueEnqueue"),
    ENQ("QueueEnqueueMany"),
    DEQ("QueueDequeueV2", 1), DEQ("QueueDequeueManyV2", 2), DEQ("QueueDequeueUpToV2", 2),
    DEQ("QueueDequeue", 1), DEQ("QueueDequeueMany", 2), DEQ("QueueDequeueUpTo", 2),
    {.name = "QueueCloseV2", .min_inputs = 1, .max_inputs = 1, .n_outputs = 0,
     .attrs = close_attrs, .shape = enqueue_shape, .kernel = close_kernel, .flags = QF},
    {.name = "QueueClose", .min_inputs = 1, .max_inputs = 1, .n_outputs = 0,
     .attrs = close_attrs, .shape = enqueue_shape, .kernel = close_kernel, .flags = QF},
    {.name = "QueueSizeV2", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .shape = size_shape, .kernel = size_kernel, .flags = QF},
    {.name = "QueueSize", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .shape = size_shape, .kernel = size_kernel, .flags = QF},
    {.name = "QueueIsClosedV2", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .shape = is_closed_shape, .kernel = is_closed_kernel, .flags = QF},
    {.name = "QueueIsClosed", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .shape = is_closed_shape, .kernel = is_closed_kernel, .flags = QF},
    {.name = "RandomShuffle", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = shuffle_attrs, .shape = pst_shape_same_as_input0, .kernel = random_shuffle_kernel,
     .flags = QF, .state_free = rng_free},
    {.name = "CountUpTo", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = count_attrs,
     .shape = count_up_to_shape, .kernel = count_up_to_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_REF_INPUT0 | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "DecodeRaw", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = decode_raw_attrs, .shape = decode_raw_shape, .kernel = decode_raw_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
};

void pst__register_queue_ops(void) {
    for (size_t i = 0; i < sizeof queue_ops / sizeof queue_ops[0]; i++)
        pst_op_register(&queue_ops[i]);
}
