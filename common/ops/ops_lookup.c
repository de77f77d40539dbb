/* Lookup tables as feature columns and tf.contrib.lookup put them into graphs: HashTableV2,
 * LookupTableImportV2 / InitializeTableV2 (fill it), LookupTableFindV2, LookupTableSizeV2.
 *
 * A table lives as long as the session's variables (a resource of its variable store, keyed
 * by the node's shared_name, else its name), so a graph's table initializer runs once and later
 * steps find its entries. The handle is a PST_RESOURCE scalar pointing at it. Keys are strings
 * or integers; values are numbers or strings, one per key. As in TF, filling a table again with
 * the same entries is a no-op, a key already holding another value is an error, and finding in
 * a table never filled is FailedPrecondition; keys not in the table give default_value. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "strmap.h"
#include "varstore.h"

typedef struct table {
    pthread_mutex_t mu;
    pst_dtype key_dt, val_dt;
    pst_strmap *index; /* encoded key -> position + 1 in vals */
    pst_tensor *vals;  /* 1-D, capacity = its length; n of them used */
    int64_t n;
    int initialized;
} table;

static void table_free(void *p) {
    table *t = p;
    if (t == NULL) return;
    pst_strmap_free(t->index);
    pst_tensor_unref(t->vals);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

typedef struct table_args {
    pst_dtype key_dt, val_dt;
} table_args;

static void *table_make(void *ctx, pst_status *st) {
    const table_args *a = ctx;
    table *t = calloc(1, sizeof *t);
    if (t == NULL || (t->index = pst_strmap_new()) == NULL) {
        free(t);
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a lookup table");
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    t->key_dt = a->key_dt;
    t->val_dt = a->val_dt;
    return t;
}

/* The map key of element i: "s" + the string's bytes, or "i" + the integer in decimal. */
static const char *encode_key(const pst_tensor *k, int64_t i, char *buf, size_t len) {
    if (k->dtype == PST_STRING) {
        const pst_tstring *s = pst_tensor_str(k) + i;
        snprintf(buf, len, "s%.*s", (int)s->len, s->len ? s->p : "");
    } else {
        snprintf(buf, len, "i%" PRId64, pst_tensor_get_i64(k, i));
    }
    return buf;
}

static int value_dtype_ok(pst_dtype dt) {
    return dt == PST_STRING || pst_dtype_is_float(dt) || pst_dtype_is_int(dt) || dt == PST_BOOL;
}

static int elem_equal(const pst_tensor *a, int64_t i, const pst_tensor *b, int64_t j) {
    if (a->dtype == PST_STRING) {
        const pst_tstring *x = pst_tensor_str(a) + i, *y = pst_tensor_str(b) + j;
        return x->len == y->len && (x->len == 0 || memcmp(x->p, y->p, x->len) == 0);
    }
    return pst_tensor_get_f64(a, i) == pst_tensor_get_f64(b, j);
}

/* ---- HashTableV2 ----------------------------------------------------------------------- */
static int table_shape(pst_node *n, pst_status *st) {
    pst_dtype k = pst_node_attr_type(n, "key_dtype", PST_DT_INVALID);
    pst_dtype v = pst_node_attr_type(n, "value_dtype", PST_DT_INVALID);
    if (k != PST_STRING && !pst_dtype_is_int(k))
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "tables with %s keys", pst_dtype_name(k));
    if (!value_dtype_ok(v))
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "tables with %s values", pst_dtype_name(v));
    pst_node_set_output(n, 0, PST_RESOURCE, pst_shape_scalar());
    return 0;
}

static int table_kernel(pst_kernel_ctx *c) {
    const char *shared = pst_kctx_attr_s(c, "shared_name", "");
    char key[1200];
    snprintf(key, sizeof key, "lookup_table:%s", shared[0] ? shared : c->node_name);
    table_args a = {pst_kctx_attr_type(c, "key_dtype", PST_STRING),
                    pst_kctx_attr_type(c, "value_dtype", PST_INT64)};
    table *t = pst_var_store_resource(c->vars, key, table_make, &a, table_free, c->status);
    if (t == NULL) return c->status->code;
    if (t->key_dt != a.key_dt || t->val_dt != a.val_dt)
        return pst_kctx_error(c, PST_E_INVALID, "table '%s' exists with other key/value types",
                              key + 13);
    pst_tensor *h = pst_tensor_new(PST_RESOURCE, pst_shape_scalar(), c->status);
    if (h == NULL) return c->status->code;
    *(void **)h->data = t;
    pst_kctx_set_output(c, 0, h);
    return 0;
}

static table *table_of(pst_kernel_ctx *c) {
    const pst_tensor *h = c->inputs[0];
    if (h->dtype != PST_RESOURCE || h->n != 1 || *(void **)h->data == NULL) {
        pst_kctx_error(c, PST_E_INVALID, "input 0 is not a lookup table handle");
        return NULL;
    }
    return *(void **)h->data;
}

/* ---- LookupTableImportV2 / InitializeTableV2(table, keys, values) ---------------------- */
static int grow(pst_kernel_ctx *c, table *t, int64_t need) {
    int64_t cap = t->vals ? t->vals->n : 0;
    if (need <= cap) return 0;
    int64_t ncap = cap ? cap : 16;
    while (ncap < need) ncap *= 2;
    pst_tensor *v = pst_tensor_new_zeros(t->val_dt, pst_shape_1d(ncap), c->status);
    if (v == NULL) return c->status->code;
    if (t->n > 0 && pst_tensor_copy_elems(v, 0, t->vals, 0, t->n, c->status) < 0) {
        pst_tensor_unref(v);
        return c->status->code;
    }
    pst_tensor_unref(t->vals);
    t->vals = v;
    return 0;
}

static int import_kernel(pst_kernel_ctx *c) {
    table *t = table_of(c);
    if (t == NULL) return c->status->code;
    const pst_tensor *k = c->inputs[1], *v = c->inputs[2];
    if (k->n != v->n)
        return pst_kctx_error(c, PST_E_INVALID, "%lld keys but %lld values", (long long)k->n,
                              (long long)v->n);
    if (k->dtype != t->key_dt && !(pst_dtype_is_int(k->dtype) && pst_dtype_is_int(t->key_dt)))
        return pst_kctx_error(c, PST_E_INVALID, "keys are %s, the table's %s",
                              pst_dtype_name(k->dtype), pst_dtype_name(t->key_dt));
    if (v->dtype != t->val_dt)
        return pst_kctx_error(c, PST_E_INVALID, "values are %s, the table's %s",
                              pst_dtype_name(v->dtype), pst_dtype_name(t->val_dt));
    pthread_mutex_lock(&t->mu);
    int rc = grow(c, t, t->n + k->n);
    char buf[1024];
    for (int64_t i = 0; i < k->n && rc == 0; i++) {
        const char *key = encode_key(k, i, buf, sizeof buf);
        intptr_t at = (intptr_t)pst_strmap_get(t->index, key);
        if (at > 0) {
            if (!elem_equal(t->vals, at - 1, v, i))
                rc = pst_kctx_error(c, PST_E_PRECONDITION, "table already holds another value "
                                    "for key %s", key + 1);
            continue;
        }
        rc = pst_tensor_copy_elems(t->vals, t->n, v, i, 1, c->status);
        if (rc == 0 && pst_strmap_put(t->index, key, (void *)(intptr_t)(t->n + 1)) < 0)
            rc = pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
        if (rc == 0) t->n++;
    }
    if (rc == 0) t->initialized = 1;
    pthread_mutex_unlock(&t->mu);
    return rc;
}

/* ---- LookupTableFindV2(table, keys, default_value) -> values shaped like keys ---------- */
static int find_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 2), pst_node_in_shape(n, 1));
    return 0;
}

static int find_kernel(pst_kernel_ctx *c) {
    table *t = table_of(c);
    if (t == NULL) return c->status->code;
    const pst_tensor *k = c->inputs[1], *dflt = c->inputs[2];
    if (dflt->n != 1 && dflt->n != k->n)
        return pst_kctx_error(c, PST_E_INVALID, "default_value must be a scalar");
    if (dflt->dtype != t->val_dt)
        return pst_kctx_error(c, PST_E_INVALID, "default_value is %s, the table's values %s",
                              pst_dtype_name(dflt->dtype), pst_dtype_name(t->val_dt));
    pst_tensor *o = pst_kctx_alloc_output(c, 0, t->val_dt, k->shape);
    if (o == NULL) return c->status->code;
    pthread_mutex_lock(&t->mu);
    int rc = t->initialized ? 0 : pst_kctx_error(c, PST_E_PRECONDITION, "table not initialized");
    char buf[1024];
    for (int64_t i = 0; i < k->n && rc == 0; i++) {
        intptr_t at = (intptr_t)pst_strmap_get(t->index, encode_key(k, i, buf, sizeof buf));
        rc = at > 0 ? pst_tensor_copy_elems(o, i, t->vals, at - 1, 1, c->status)
                    : pst_tensor_copy_elems(o, i, dflt, dflt->n == 1 ? 0 : i, 1, c->status);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static int size_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_INT64, pst_shape_scalar());
    return 0;
}

static int size_kernel(pst_kernel_ctx *c) {
    table *t = table_of(c);
    if (t == NULL) return c->status->code;
    pthread_mutex_lock(&t->mu);
    int64_t n = t->n;
    pthread_mutex_unlock(&t->mu);
    pst_kctx_set_output(c, 0, pst_tensor_scalar_i64(n));
    return 0;
}

static int no_outputs(pst_node *n, pst_status *st) {
    (void)n, (void)st;
    return 0;
}

static const pst_attr_spec table_attrs[] = {{"container", PST_ATTR_STRING, 0},
                                            {"shared_name", PST_ATTR_STRING, 0},
                                            {"use_node_name_sharing", PST_ATTR_BOOL, 0},
                                            {"key_dtype", PST_ATTR_TYPE, 1},
                                            {"value_dtype", PST_ATTR_TYPE, 1},
                                            {0}};
static const pst_attr_spec io_attrs[] = {
    {"Tin", PST_ATTR_TYPE, 0}, {"Tout", PST_ATTR_TYPE, 0}, {"Tkey", PST_ATTR_TYPE, 0},
    {"Tval", PST_ATTR_TYPE, 0}, {0}};

#define LK (PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS)
static const pst_op_def lookup_ops[] = {
    {.name = "HashTableV2", .n_outputs = 1, .attrs = table_attrs, .shape = table_shape,
     .kernel = table_kernel, .flags = LK},
    {.name = "LookupTableImportV2", .min_inputs = 3, .max_inputs = 3, .n_outputs = 0,
     .attrs = io_attrs, .shape = no_outputs, .kernel = import_kernel, .flags = LK},
    {.name = "InitializeTableV2", .min_inputs = 3, .max_inputs = 3, .n_outputs = 0,
     .attrs = io_attrs, .shape = no_outputs, .kernel = import_kernel, .flags = LK},
    {.name = "LookupTableFindV2", .min_inputs = 3, .max_inputs = 3, .n_outputs = 1,
     .attrs = io_attrs, .shape = find_shape, .kernel = find_kernel, .flags = LK},
    {.name = "LookupTableSizeV2", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .shape = size_shape, .kernel = size_kernel, .flags = LK},
};

void pst__register_lookup_ops(void) {
    for (size_t i = 0; i < sizeof lookup_ops / sizeof lookup_ops[0]; i++)
        pst_op_register(&lookup_ops[i]);
}
