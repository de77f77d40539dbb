#include "op.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

/* The registry knows no op family: families register themselves from the layers above
 * (ops/ops_init.c registers the built-in ones). Registration normally happens once at start;
 * the lock keeps late registrations (a plugin's ops) safe against concurrent lookups. */
static pst_strmap *registry;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;
static pthread_rwlock_t registry_mu = PTHREAD_RWLOCK_INITIALIZER;
static int n_duplicates;           /* registrations refused as duplicates (under registry_mu) */
static char first_duplicate[128];

static void registry_create(void) {
    registry = pst_strmap_new();
    PST_ASSERT(registry != NULL);
}

int pst_op_register(const pst_op_def *def) {
    pthread_once(&registry_once, registry_create);
    pthread_rwlock_wrlock(&registry_mu);
    int rc = pst_strmap_has(registry, def->name)                       ? PST_E_EXISTS
             : pst_strmap_put(registry, def->name, (void *)def) < 0 ? PST_E_EXHAUSTED
                                                                    : 0;
    if (rc == PST_E_EXISTS && n_duplicates++ == 0)
        snprintf(first_duplicate, sizeof first_duplicate, "%s", def->name);
    pthread_rwlock_unlock(&registry_mu);
    return rc;
}

int pst_op_registry_duplicates(char *first, size_t len) {
    pthread_rwlock_rdlock(&registry_mu);
    int n = n_duplicates;
    if (first && len) snprintf(first, len, "%s", first_duplicate);
    pthread_rwlock_unlock(&registry_mu);
    return n;
}

const pst_op_def *pst_op_lookup(const char *name) {
    pthread_once(&registry_once, registry_create);
    pthread_rwlock_rdlock(&registry_mu);
    const pst_op_def *d = pst_strmap_get(registry, name);
    pthread_rwlock_unlock(&registry_mu);
    return d;
}

int pst_op_registry_size(void) {
    pthread_once(&registry_once, registry_create);
    pthread_rwlock_rdlock(&registry_mu);
    int n = (int)pst_strmap_size(registry);
    pthread_rwlock_unlock(&registry_mu);
    return n;
}

const pst_tensor *pst_node_in_const(const pst_node *n, int i) {
    if (i >= n->n_inputs) return NULL;
    const pst_node *in = n->inputs[i].node;
    if (strcmp(in->op->name, "Const") != 0) return NULL;
    const pst_attr *a = pst_node_attr(in, "value");
    return (a && a->kind == PST_ATTR_TENSOR) ? a->v.tensor : NULL;
}

void pst_node_set_output(pst_node *n, int i, pst_dtype dt, pst_shape s) {
    PST_ASSERT(i >= 0 && i < n->n_outputs);
    n->out_dtypes[i] = dt;
    n->out_shapes[i] = s;
}

int pst_shape_same_as_input0(pst_node *n, pst_status *st) {
    (void)st;
    for (int i = 0; i < n->n_outputs; i++)
        pst_node_set_output(n, i, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 0));
    return 0;
}

int pst_shape_check_same_dtype(const pst_node *n, int first, int last, pst_status *st) {
    for (int i = first + 1; i <= last; i++)
        if (pst_node_in_dtype(n, i) != pst_node_in_dtype(n, first))
            return pst_status_set(st, PST_E_INVALID,
                                  "input %d ('%s') has dtype %s but input %d ('%s') has %s", i,
                                  n->inputs[i].node->name,
                                  pst_dtype_name(pst_node_in_dtype(n, i)), first,
                                  n->inputs[first].node->name,
                                  pst_dtype_name(pst_node_in_dtype(n, first)));
    return 0;
}

int pst_shape_broadcast(const pst_shape *a, const pst_shape *b, pst_shape *out, pst_status *st) {
    if (a->rank < 0 || b->rank < 0) {
        *out = pst_shape_unknown();
        return 0;
    }
    int r = a->rank > b->rank ? a->rank : b->rank;
    pst_shape o;
    memset(&o, 0, sizeof o);
    o.rank = r;
    for (int i = 0; i < r; i++) {
        int ia = a->rank - r + i, ib = b->rank - r + i;
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da == 1)
            o.dims[i] = db;
        else if (db == 1)
            o.dims[i] = da;
        else if (da < 0)
            o.dims[i] = db;
        else if (db < 0)
            o.dims[i] = da;
        else if (da == db)
            o.dims[i] = da;
        else {
            char sa[128], sb[128];
            return pst_status_set(st, PST_E_INVALID, "shapes %s and %s cannot be broadcast",
                                  pst_shape_str(a, sa, sizeof sa), pst_shape_str(b, sb, sizeof sb));
        }
    }
    *out = o;
    return 0;
}

int pst_shape_broadcast_binary(pst_node *n, pst_status *st) {
    if (pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    pst_shape a = pst_node_in_shape(n, 0), b = pst_node_in_shape(n, 1),
              o = pst_shape_unknown();
    if (pst_shape_broadcast(&a, &b, &o, st) < 0) return PST_E_INVALID;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), o);
    return 0;
}

const pst_attr *pst_kctx_attr(const pst_kernel_ctx *c, const char *name) {
    return pst_attr_find(c->attrs, c->n_attrs, name);
}
int64_t pst_kctx_attr_i(const pst_kernel_ctx *c, const char *name, int64_t dflt) {
    const pst_attr *a = pst_kctx_attr(c, name);
    return (a && a->kind == PST_ATTR_INT) ? a->v.i : dflt;
}
float pst_kctx_attr_f(const pst_kernel_ctx *c, const char *name, float dflt) {
    const pst_attr *a = pst_kctx_attr(c, name);
    return (a && a->kind == PST_ATTR_FLOAT) ? a->v.f : dflt;
}
int pst_kctx_attr_b(const pst_kernel_ctx *c, const char *name, int dflt) {
    const pst_attr *a = pst_kctx_attr(c, name);
    return (a && a->kind == PST_ATTR_BOOL) ? a->v.b : dflt;
}
const char *pst_kctx_attr_s(const pst_kernel_ctx *c, const char *name, const char *dflt) {
    const pst_attr *a = pst_kctx_attr(c, name);
    return (a && a->kind == PST_ATTR_STRING) ? a->v.s : dflt;
}
pst_dtype pst_kctx_attr_type(const pst_kernel_ctx *c, const char *name, pst_dtype dflt) {
    const pst_attr *a = pst_kctx_attr(c, name);
    return (a && a->kind == PST_ATTR_TYPE) ? a->v.type : dflt;
}

pst_tensor *pst_kctx_alloc_output(pst_kernel_ctx *c, int i, pst_dtype dt, pst_shape s) {
    PST_ASSERT(i >= 0 && i < c->n_outputs);
    pst_tensor *t = pst_tensor_new(dt, s, c->status);
    if (t == NULL) return NULL;
    pst_tensor_unref(c->outputs[i]);
    c->outputs[i] = t;
    return t;
}

void pst_kctx_set_output(pst_kernel_ctx *c, int i, pst_tensor *t) {
    PST_ASSERT(i >= 0 && i < c->n_outputs);
    pst_tensor_unref(c->outputs[i]);
    c->outputs[i] = t;
}

int pst_kctx_error(pst_kernel_ctx *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pst_status_vset(c->status, code, fmt, ap);
    va_end(ap);
    return code;
}
