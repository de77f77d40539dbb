/* Lookup tables as feature columns and tf.contrib.lookup put them into graphs.
 *
 * Tables: HashTable(V2) (filled once by an initializer: InitializeTable(V2),
 * LookupTableImport(V2), InitializeTableFromTextFile(V2)), MutableHashTable(V2),
 * MutableHashTableOfTensors(V2) and MutableDenseHashTable(V2) (LookupTableInsert(V2)
 * overwrites, LookupTableRemoveV2 removes, LookupTableImport(V2) replaces the contents; a dense
 * table refuses its empty_key and deleted_key as keys and exports num_buckets rows, free ones
 * holding empty_key, growing its bucket count as TF by max_load_factor). Every table answers
 * LookupTableFind(V2), LookupTableSize(V2) and LookupTableExport(V2). The V1 names take TF 0.x/1.x
 * ref handles and run the same way.
 *
 * A table lives as long as the session's variables (a resource of its variable store, keyed
 * by the node's shared_name, else its name), so a graph's table initializer runs once and later
 * steps find its entries. The handle is a PST_RESOURCE scalar pointing at it. Keys are strings
 * or integers; values are numbers or strings, one per key (of `value_shape` for
 * MutableHashTableOfTensors). As in TF, initializing a HashTable again with the same entries is
 * a no-op, a key already holding another value is an error, finding in a HashTable never
 * initialized is FailedPrecondition, keys not in the table give default_value, and Insert and
 * Remove on a HashTable are Unimplemented. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file.h"
#include "op.h"
#include "ops.h"
#include "ops_io.h"
#include "strmap.h"
#include "varstore.h"

typedef struct table {
    pthread_mutex_t mu;
    pst_dtype key_dt, val_dt;
    int is_mutable;
    int dense;         /* MutableDenseHashTable: keys may not be empty_key / deleted_key, and
                          Export gives num_buckets rows (free ones hold empty_key) */
    pst_tensor *empty_key, *deleted_key; /* dense only (deleted_key: V2 only) */
    int64_t num_buckets;
    double max_load;
    pst_shape vshape;  /* each value's shape (scalar for most tables) */
    int64_t row;       /* elements per value */
    pst_strmap *index; /* encoded key -> position + 1 */
    pst_tensor *keys;  /* 1-D, capacity = its length; n of them used */
    pst_tensor *vals;  /* 1-D, capacity * row elements */
    int64_t n;
    int initialized;
} table;

static void table_free(void *p) {
    table *t = p;
    if (t == NULL) return;
    pst_strmap_free(t->index);
    pst_tensor_unref(t->keys);
    pst_tensor_unref(t->vals);
    pst_tensor_unref(t->empty_key), pst_tensor_unref(t->deleted_key);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

typedef struct table_args {
    pst_dtype key_dt, val_dt;
    int is_mutable, dense;
    pst_shape vshape;
    pst_tensor *empty_key, *deleted_key; /* borrowed */
    int64_t num_buckets;
    double max_load;
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
    t->is_mutable = a->is_mutable;
    t->dense = a->dense;
    t->empty_key = a->empty_key ? pst_tensor_ref(a->empty_key) : NULL;
    t->deleted_key = a->deleted_key ? pst_tensor_ref(a->deleted_key) : NULL;
    t->num_buckets = a->num_buckets;
    t->max_load = a->max_load;
    t->vshape = a->vshape;
    t->row = 1;
    for (int d = 0; d < a->vshape.rank; d++) t->row *= a->vshape.dims[d];
    t->initialized = a->is_mutable;
    return t;
}

/* The map key of element i: "s" + the string's bytes, or "i" + the integer in decimal. Strings
 * holding NUL bytes are encoded in hex so that they stay distinct. */
static const char *encode_key(const pst_tensor *k, int64_t i, char *buf, size_t len) {
    if (k->dtype == PST_STRING) {
        const pst_tstring *s = pst_tensor_str(k) + i;
        if (s->len && memchr(s->p, 0, s->len)) {
            size_t o = (size_t)snprintf(buf, len, "x");
            for (size_t j = 0; j < s->len && o + 3 < len; j++)
                o += (size_t)snprintf(buf + o, len - o, "%02x", (unsigned char)s->p[j]);
        } else {
            snprintf(buf, len, "s%.*s", (int)s->len, s->len ? s->p : "");
        }
    } else {
        snprintf(buf, len, "i%" PRId64, pst_tensor_get_i64(k, i));
    }
    return buf;
}

static int value_dtype_ok(pst_dtype dt) {
    return dt == PST_STRING || pst_dtype_is_float(dt) || pst_dtype_is_int(dt) || dt == PST_BOOL;
}

static int row_equal(const pst_tensor *a, int64_t i, const pst_tensor *b, int64_t j, int64_t n) {
    for (int64_t k = 0; k < n; k++) {
        if (a->dtype == PST_STRING) {
            const pst_tstring *x = pst_tensor_str(a) + i + k, *y = pst_tensor_str(b) + j + k;
            if (x->len != y->len || (x->len && memcmp(x->p, y->p, x->len) != 0)) return 0;
        } else if (pst_tensor_get_f64(a, i + k) != pst_tensor_get_f64(b, j + k)) {
            return 0;
        }
    }
    return 1;
}

/* ---- Table ops --------------------------------------------------------------------------- */
static int is_dense_op(const char *op) { return strncmp(op, "MutableDenseHashTable", 21) == 0; }
static int is_mutable_op(const char *op) {
    return strncmp(op, "MutableHashTable", 16) == 0 || is_dense_op(op);
}
/* Tables whose values have value_shape. */
static int of_tensors_op(const char *op) { return strstr(op, "OfTensors") || is_dense_op(op); }

static int table_shape(pst_node *n, pst_status *st) {
    pst_dtype k = pst_node_attr_type(n, "key_dtype", PST_DT_INVALID);
    pst_dtype v = pst_node_attr_type(n, "value_dtype", PST_DT_INVALID);
    if (k != PST_STRING && !pst_dtype_is_int(k))
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "tables with %s keys", pst_dtype_name(k));
    if (!value_dtype_ok(v))
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "tables with %s values", pst_dtype_name(v));
    if (of_tensors_op(n->op->name)) {
        const pst_attr *vs = pst_node_attr(n, "value_shape");
        if (vs && vs->kind == PST_ATTR_SHAPE && !pst_shape_is_known(&vs->v.shape))
            return pst_status_set(st, PST_E_INVALID, "value_shape must be fully known");
    }
    pst_node_set_output(n, 0, PST_RESOURCE, pst_shape_scalar());
    return 0;
}

/* MutableDenseHashTable's inputs and attrs, checked as TF does. */
static int dense_args(pst_kernel_ctx *c, table_args *a) {
    char b1[96], b2[96];
    a->dense = 1;
    a->empty_key = c->inputs[0];
    a->deleted_key = c->n_inputs > 1 ? c->inputs[1] : NULL;
    a->num_buckets = pst_kctx_attr_i(c, "initial_num_buckets", 131072);
    a->max_load = pst_kctx_attr_f(c, "max_load_factor", 0.8f);
    if (!(a->max_load > 0 && a->max_load < 1))
        return pst_kctx_error(c, PST_E_INVALID, "max_load_factor must be between 0 and 1, got: "
                              "%g", a->max_load);
    if (a->vshape.rank > 1)
        return pst_kctx_error(c, PST_E_INVALID, "Empty value must be a scalar or a vector, got "
                              "shape: %s", pst_shape_str(&a->vshape, b1, sizeof b1));
    if (a->empty_key->shape.rank != 0)
        return pst_kctx_error(c, PST_E_UNIMPLEMENTED, "empty_key of shape %s: pstrain's dense "
                              "tables take scalar keys only",
                              pst_shape_str(&a->empty_key->shape, b1, sizeof b1));
    if (a->empty_key->dtype != a->key_dt && !(pst_dtype_is_int(a->empty_key->dtype) &&
                                              pst_dtype_is_int(a->key_dt)))
        return pst_kctx_error(c, PST_E_INVALID, "empty_key is %s, the keys %s",
                              pst_dtype_name(a->empty_key->dtype), pst_dtype_name(a->key_dt));
    if (a->deleted_key) {
        char e[1024], d[1024];
        if (!pst_shape_equal(&a->deleted_key->shape, &a->empty_key->shape))
            return pst_kctx_error(c, PST_E_INVALID, "Empty and deleted keys must have same "
                                  "shape, got shapes: %s and %s",
                                  pst_shape_str(&a->empty_key->shape, b1, sizeof b1),
                                  pst_shape_str(&a->deleted_key->shape, b2, sizeof b2));
        if (strcmp(encode_key(a->empty_key, 0, e, sizeof e),
                   encode_key(a->deleted_key, 0, d, sizeof d)) == 0)
            return pst_kctx_error(c, PST_E_INVALID, "Empty and deleted keys cannot be equal");
    }
    if (a->num_buckets < 4 || (a->num_buckets & (a->num_buckets - 1)) != 0)
        return pst_kctx_error(c, PST_E_INVALID, "Number of buckets must be at least 4 and a "
                              "power of 2, got: %lld", (long long)a->num_buckets);
    return 0;
}

/* A dense table refuses its empty and deleted keys (element i of k). */
static int dense_key_ok(pst_kernel_ctx *c, const table *t, const pst_tensor *k, int64_t i) {
    if (!t->dense) return 0;
    char a[1024], b[1024];
    const char *key = encode_key(k, i, a, sizeof a);
    if (strcmp(key, encode_key(t->empty_key, 0, b, sizeof b)) == 0)
        return pst_kctx_error(c, PST_E_INVALID, "Using the empty_key as a table key is not "
                              "allowed");
    if (t->deleted_key && strcmp(key, encode_key(t->deleted_key, 0, b, sizeof b)) == 0)
        return pst_kctx_error(c, PST_E_INVALID, "Using the deleted_key as a table key is not "
                              "allowed");
    return 0;
}

/* A dense table grows its bucket count (doubling) so that `more` entries fit under
 * max_load_factor, as TF does before an insert. */
static void dense_reserve(table *t, int64_t more) {
    while (t->dense && (double)(t->n + more) > (double)t->num_buckets * t->max_load)
        t->num_buckets <<= 1;
}

static int table_kernel(pst_kernel_ctx *c) {
    const char *shared = pst_kctx_attr_s(c, "shared_name", "");
    char key[1200];
    snprintf(key, sizeof key, "lookup_table:%s", shared[0] ? shared : c->node_name);
    const char *op = c->op->name;
    table_args a = {.key_dt = pst_kctx_attr_type(c, "key_dtype", PST_STRING),
                    .val_dt = pst_kctx_attr_type(c, "value_dtype", PST_INT64),
                    .is_mutable = is_mutable_op(op), .vshape = pst_shape_scalar()};
    const pst_attr *vs = pst_kctx_attr(c, "value_shape");
    if (of_tensors_op(op) && vs && vs->kind == PST_ATTR_SHAPE) a.vshape = vs->v.shape;
    if (is_dense_op(op) && dense_args(c, &a) < 0) return c->status->code;
    table *t = pst_var_store_resource(c->vars, key, table_make, &a, table_free, c->status);
    if (t == NULL) return c->status->code;
    if (t->key_dt != a.key_dt || t->val_dt != a.val_dt || t->is_mutable != a.is_mutable ||
        t->dense != a.dense ||
        !pst_shape_equal(&t->vshape, &a.vshape))
        return pst_kctx_error(c, PST_E_INVALID, "table '%s' exists with another kind, key/value "
                              "types or value shape", key + 13);
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

/* ---- Filling ----------------------------------------------------------------------------- */
static int grow(pst_kernel_ctx *c, table *t, int64_t need) {
    int64_t cap = t->keys ? t->keys->n : 0;
    if (need <= cap) return 0;
    int64_t ncap = cap ? cap : 16;
    while (ncap < need) ncap *= 2;
    pst_tensor *k = pst_tensor_new_zeros(t->key_dt, pst_shape_1d(ncap), c->status);
    pst_tensor *v = k ? pst_tensor_new_zeros(t->val_dt, pst_shape_1d(ncap * t->row), c->status)
                      : NULL;
    if (v == NULL || (t->n > 0 && (pst_tensor_copy_elems(k, 0, t->keys, 0, t->n, c->status) < 0 ||
                                   pst_tensor_copy_elems(v, 0, t->vals, 0, t->n * t->row,
                                                         c->status) < 0))) {
        pst_tensor_unref(k), pst_tensor_unref(v);
        return c->status->code ? c->status->code : PST_E_EXHAUSTED;
    }
    pst_tensor_unref(t->keys), pst_tensor_unref(t->vals);
    t->keys = k, t->vals = v;
    return 0;
}

/* Checks keys and values against the table: dtypes, and values shaped keys + value_shape. */
static int check_kv(pst_kernel_ctx *c, table *t, const pst_tensor *k, const pst_tensor *v) {
    char b1[96], b2[96];
    if (k->dtype != t->key_dt && !(pst_dtype_is_int(k->dtype) && pst_dtype_is_int(t->key_dt)))
        return pst_kctx_error(c, PST_E_INVALID, "keys are %s, the table's %s",
                              pst_dtype_name(k->dtype), pst_dtype_name(t->key_dt));
    if (v->dtype != t->val_dt)
        return pst_kctx_error(c, PST_E_INVALID, "values are %s, the table's %s",
                              pst_dtype_name(v->dtype), pst_dtype_name(t->val_dt));
    pst_shape want = k->shape;
    if (want.rank + t->vshape.rank > PST_MAX_RANK)
        return pst_kctx_error(c, PST_E_INVALID, "keys of rank %d are too many dims",
                              want.rank);
    for (int d = 0; d < t->vshape.rank; d++) want.dims[want.rank++] = t->vshape.dims[d];
    if (t->vshape.rank == 0 ? k->n != v->n : !pst_shape_equal(&want, &v->shape))
        return pst_kctx_error(c, PST_E_INVALID, "expected values of shape %s for keys of shape "
                              "%s, got %s", pst_shape_str(&want, b1, sizeof b1),
                              pst_shape_str(&k->shape, b2, sizeof b2),
                              pst_shape_str(&v->shape, b1 + 48, sizeof b1 - 48));
    return 0;
}

/* Puts key i / value row i; `overwrite` (mutable tables) replaces, else a different value is
 * an error naming the key. Called with mu held. */
static int put(pst_kernel_ctx *c, table *t, const pst_tensor *k, const pst_tensor *v, int64_t i,
               int overwrite) {
    char buf[1024];
    const char *key = encode_key(k, i, buf, sizeof buf);
    intptr_t at = (intptr_t)pst_strmap_get(t->index, key);
    if (at > 0) {
        if (overwrite) return pst_tensor_copy_elems(t->vals, (at - 1) * t->row, v, i * t->row,
                                                    t->row, c->status);
        if (!row_equal(t->vals, (at - 1) * t->row, v, i * t->row, t->row))
            return pst_kctx_error(c, PST_E_PRECONDITION, "table already holds another value for "
                                  "key %s", key + 1);
        return 0;
    }
    int rc = grow(c, t, t->n + 1);
    if (rc == 0) rc = pst_tensor_copy_elems(t->keys, t->n, k, i, 1, c->status);
    if (rc == 0)
        rc = pst_tensor_copy_elems(t->vals, t->n * t->row, v, i * t->row, t->row, c->status);
    if (rc == 0 && pst_strmap_put(t->index, key, (void *)(intptr_t)(t->n + 1)) < 0)
        rc = pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    if (rc == 0) t->n++;
    return rc;
}

/* Removes entry at (0-based) position p by moving the last entry into its place. */
static int remove_at(pst_kernel_ctx *c, table *t, int64_t p, const char *key) {
    char buf[1024];
    pst_strmap_del(t->index, key);
    int64_t last = t->n - 1;
    if (p != last) {
        if (pst_tensor_copy_elems(t->keys, p, t->keys, last, 1, c->status) < 0 ||
            pst_tensor_copy_elems(t->vals, p * t->row, t->vals, last * t->row, t->row,
                                  c->status) < 0)
            return c->status->code;
        if (pst_strmap_put(t->index, encode_key(t->keys, p, buf, sizeof buf),
                           (void *)(intptr_t)(p + 1)) < 0)
            return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    }
    t->n--;
    return 0;
}

/* Initializes a HashTable (or replaces a mutable table's contents) with keys/values. */
static int import_entries(pst_kernel_ctx *c, table *t, const pst_tensor *k, const pst_tensor *v) {
    if (check_kv(c, t, k, v) < 0) return c->status->code;
    pthread_mutex_lock(&t->mu);
    int rc = 0;
    if (t->is_mutable) { /* Import replaces */
        pst_strmap_free(t->index);
        t->index = pst_strmap_new();
        t->n = 0;
        if (t->index == NULL) rc = pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    }
    if (t->dense) { /* TF rebuilds with the imported bucket count, skipping free buckets */
        int64_t nb = k->n;
        if (nb < 4 || (nb & (nb - 1)) != 0)
            rc = pst_kctx_error(c, PST_E_INVALID, "Number of buckets must be at least 4 and a "
                                "power of 2, got: %lld", (long long)nb);
        else
            t->num_buckets = nb;
    }
    char eb[1024], db[1024], kb[1024];
    for (int64_t i = 0; i < k->n && rc == 0; i++) {
        if (t->dense) {
            const char *key = encode_key(k, i, kb, sizeof kb);
            if (strcmp(key, encode_key(t->empty_key, 0, eb, sizeof eb)) == 0 ||
                (t->deleted_key && strcmp(key, encode_key(t->deleted_key, 0, db, sizeof db)) == 0))
                continue;
            dense_reserve(t, 1);
        }
        rc = put(c, t, k, v, i, t->is_mutable);
    }
    if (rc == 0) t->initialized = 1;
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static int import_kernel(pst_kernel_ctx *c) {
    table *t = table_of(c);
    if (t == NULL) return c->status->code;
    return import_entries(c, t, c->inputs[1], c->inputs[2]);
}

static int insert_kernel(pst_kernel_ctx *c) {
    table *t = table_of(c);
    if (t == NULL) return c->status->code;
    if (!t->is_mutable)
        return pst_kctx_error(c, PST_E_UNIMPLEMENTED, "Insert is not supported by HashTable "
                              "(an initializable table); use a MutableHashTable");
    const pst_tensor *k = c->inputs[1], *v = c->inputs[2];
    if (check_kv(c, t, k, v) < 0) return c->status->code;
    for (int64_t i = 0; i < k->n; i++)
        if (dense_key_ok(c, t, k, i) < 0) return c->status->code;
    pthread_mutex_lock(&t->mu);
    dense_reserve(t, k->n);
    int rc = 0;
    for (int64_t i = 0; i < k->n && rc == 0; i++) rc = put(c, t, k, v, i, 1);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static int remove_kernel(pst_kernel_ctx *c) {
    table *t = table_of(c);
    if (t == NULL) return c->status->code;
    if (!t->is_mutable)
        return pst_kctx_error(c, PST_E_UNIMPLEMENTED, "Remove is not supported by HashTable "
                              "(an initializable table); use a MutableHashTable");
    const pst_tensor *k = c->inputs[1];
    if (k->dtype != t->key_dt && !(pst_dtype_is_int(k->dtype) && pst_dtype_is_int(t->key_dt)))
        return pst_kctx_error(c, PST_E_INVALID, "keys are %s, the table's %s",
                              pst_dtype_name(k->dtype), pst_dtype_name(t->key_dt));
    for (int64_t i = 0; i < k->n; i++)
        if (dense_key_ok(c, t, k, i) < 0) return c->status->code;
    char buf[1024];
    pthread_mutex_lock(&t->mu);
    int rc = 0;
    for (int64_t i = 0; i < k->n && rc == 0; i++) {
        const char *key = encode_key(k, i, buf, sizeof buf);
        intptr_t at = (intptr_t)pst_strmap_get(t->index, key);
        if (at > 0) rc = remove_at(c, t, at - 1, key);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

/* ---- LookupTableFind(table, keys, default_value) -> values shaped keys + value_shape --- */
static int find_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape k = pst_node_in_shape(n, 1), d = pst_node_in_shape(n, 2);
    /* MutableHashTableOfTensors: the default has the value shape, appended to the keys'. */
    if (k.rank >= 0 && d.rank > 0 && k.rank + d.rank <= PST_MAX_RANK) {
        const pst_node *tn = n->inputs[0].node;
        if (of_tensors_op(tn->op->name))
            for (int i = 0; i < d.rank; i++) k.dims[k.rank++] = d.dims[i];
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 2), k);
    return 0;
}

static int find_kernel(pst_kernel_ctx *c) {
    table *t = table_of(c);
    if (t == NULL) return c->status->code;
    const pst_tensor *k = c->inputs[1], *dflt = c->inputs[2];
    char b1[96], b2[96];
    int per_key = t->vshape.rank == 0 && dflt->n == k->n && dflt->n != 1;
    if (t->vshape.rank > 0 ? !pst_shape_equal(&dflt->shape, &t->vshape)
                           : (dflt->n != 1 && !per_key))
        return pst_kctx_error(c, PST_E_INVALID, "default_value must have shape %s, got %s",
                              pst_shape_str(&t->vshape, b1, sizeof b1),
                              pst_shape_str(&dflt->shape, b2, sizeof b2));
    if (dflt->dtype != t->val_dt)
        return pst_kctx_error(c, PST_E_INVALID, "default_value is %s, the table's values %s",
                              pst_dtype_name(dflt->dtype), pst_dtype_name(t->val_dt));
    for (int64_t i = 0; i < k->n; i++)
        if (dense_key_ok(c, t, k, i) < 0) return c->status->code;
    pst_shape os = k->shape;
    if (os.rank + t->vshape.rank > PST_MAX_RANK)
        return pst_kctx_error(c, PST_E_INVALID, "keys of rank %d are too many dims", os.rank);
    for (int d = 0; d < t->vshape.rank; d++) os.dims[os.rank++] = t->vshape.dims[d];
    pst_tensor *o = pst_tensor_new_zeros(t->val_dt, os, c->status);
    if (o == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, o);
    pthread_mutex_lock(&t->mu);
    int rc = t->initialized ? 0 : pst_kctx_error(c, PST_E_PRECONDITION, "table not initialized");
    char buf[1024];
    for (int64_t i = 0; i < k->n && rc == 0; i++) {
        intptr_t at = (intptr_t)pst_strmap_get(t->index, encode_key(k, i, buf, sizeof buf));
        rc = at > 0 ? pst_tensor_copy_elems(o, i * t->row, t->vals, (at - 1) * t->row, t->row,
                                            c->status)
                    : pst_tensor_copy_elems(o, i * t->row, dflt, per_key ? i : 0, t->row,
                                            c->status);
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

/* ---- LookupTableExport(table) -> keys [n], values [n, value_shape...] --------------------- */
static int export_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_dtype kd = pst_node_attr_type(n, "Tkeys", PST_DT_INVALID);
    pst_dtype vd = pst_node_attr_type(n, "Tvalues", PST_DT_INVALID);
    const pst_node *tn = n->inputs[0].node;
    if (kd == PST_DT_INVALID) kd = pst_node_attr_type(tn, "key_dtype", PST_STRING);
    if (vd == PST_DT_INVALID) vd = pst_node_attr_type(tn, "value_dtype", PST_INT64);
    pst_shape vs = pst_shape_1d(-1);
    const pst_attr *a = of_tensors_op(tn->op->name) ? pst_node_attr(tn, "value_shape") : NULL;
    if (a && a->kind == PST_ATTR_SHAPE && a->v.shape.rank + 1 <= PST_MAX_RANK) {
        vs.rank = 1 + a->v.shape.rank;
        memcpy(vs.dims + 1, a->v.shape.dims, (size_t)a->v.shape.rank * sizeof *vs.dims);
    }
    pst_node_set_output(n, 0, kd, pst_shape_1d(-1));
    pst_node_set_output(n, 1, vd, vs);
    return 0;
}

static int export_kernel(pst_kernel_ctx *c) {
    table *t = table_of(c);
    if (t == NULL) return c->status->code;
    pthread_mutex_lock(&t->mu);
    int64_t rows = t->dense ? t->num_buckets : t->n;
    pst_shape vs = t->vshape;
    memmove(vs.dims + 1, vs.dims, (size_t)vs.rank * sizeof *vs.dims);
    vs.dims[0] = rows;
    vs.rank++;
    pst_tensor *k = pst_tensor_new_zeros(t->key_dt, pst_shape_1d(rows), c->status);
    pst_tensor *v = k ? pst_tensor_new_zeros(t->val_dt, vs, c->status) : NULL;
    int rc = v ? 0 : c->status->code;
    /* A dense table's free buckets hold empty_key (and zeros); its entries come first, not in
     * TF's bucket order (TF's import reinserts them, so a round trip holds the same entries). */
    for (int64_t i = t->n; rc == 0 && t->dense && i < rows; i++)
        rc = pst_tensor_copy_elems(k, i, t->empty_key, 0, 1, c->status);
    if (rc == 0 && t->n > 0) rc = pst_tensor_copy_elems(k, 0, t->keys, 0, t->n, c->status);
    if (rc == 0 && t->n > 0) rc = pst_tensor_copy_elems(v, 0, t->vals, 0, t->n * t->row, c->status);
    pthread_mutex_unlock(&t->mu);
    if (rc < 0) {
        pst_tensor_unref(k), pst_tensor_unref(v);
        return rc;
    }
    pst_kctx_set_output(c, 0, k);
    pst_kctx_set_output(c, 1, v);
    return 0;
}

/* ---- InitializeTableFromTextFile(V2)(table, filename) ---------------------------------- */
enum { LINE_NUMBER = -1, WHOLE_LINE = -2 };

/* Parses one field into element i of out (its dtype); errors name the file and line. */
static int set_field(pst_kernel_ctx *c, pst_tensor *out, int64_t i, const char *f, size_t len,
                     const char *file, int64_t line) {
    if (out->dtype == PST_STRING) {
        if (pst_tstring_set(pst_tensor_str(out) + i, f, len) < 0)
            return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
        return 0;
    }
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        goto bad;
    memcpy(buf, f, len);
    buf[len] = 0;
    char *end;
    errno = 0;
    if (pst_dtype_is_int(out->dtype)) {
        long long v = strtoll(buf, &end, 10);
        if (*end || errno || (out->dtype == PST_INT32 && (v < INT32_MIN || v > INT32_MAX)))
            goto bad;
        pst_tensor_set_f64(out, i, 0);
        if (out->dtype == PST_INT64) pst_tensor_i64(out)[i] = v;
        else pst_tensor_set_f64(out, i, (double)v);
    } else {
        double v = strtod(buf, &end);
        if (*end || errno == ERANGE) goto bad;
        pst_tensor_set_f64(out, i, v);
    }
    return 0;
bad:
    return pst_kctx_error(c, PST_E_INVALID, "%s line %" PRId64 ": field '%.*s' is not a valid %s",
                          file, line, (int)(len > 64 ? 64 : len), f, pst_dtype_name(out->dtype));
}

/* Field `index` of a line (LINE_NUMBER / WHOLE_LINE / a column) into element i of out. */
static int take_field(pst_kernel_ctx *c, pst_tensor *out, int64_t i, int64_t index,
                      const char *line, size_t len, const char *delim, const char *file,
                      int64_t lineno) {
    if (index == LINE_NUMBER) {
        pst_tensor_set_f64(out, i, 0);
        if (out->dtype == PST_INT64) pst_tensor_i64(out)[i] = lineno;
        else pst_tensor_set_f64(out, i, (double)lineno);
        return 0;
    }
    if (index == WHOLE_LINE) return set_field(c, out, i, line, len, file, lineno);
    /* Columns are separated by any byte of the delimiter (TF splits with str_util::Split). */
    size_t start = 0, dl = strlen(delim);
    int64_t col = 0;
    for (;;) {
        size_t end = start;
        while (end < len && (dl == 0 || memchr(delim, line[end], dl) == NULL)) end++;
        if (col == index) return set_field(c, out, i, line + start, end - start, file, lineno);
        if (end >= len) break;
        start = end + 1;
        col++;
    }
    return pst_kctx_error(c, PST_E_INVALID, "%s line %" PRId64 " has %" PRId64 " column(s); "
                          "column %" PRId64 " is wanted", file, lineno, col + 1, index);
}

static int index_dtype_ok(pst_kernel_ctx *c, int64_t index, pst_dtype dt, const char *what) {
    if (index == LINE_NUMBER && dt != PST_INT64)
        return pst_kctx_error(c, PST_E_INVALID, "%s_index -1 (the line number) needs int64 %ss, "
                              "the table's are %s", what, what, pst_dtype_name(dt));
    if (index == WHOLE_LINE && dt != PST_STRING)
        return pst_kctx_error(c, PST_E_INVALID, "%s_index -2 (the whole line) needs string %ss, "
                              "the table's are %s", what, what, pst_dtype_name(dt));
    if (index < WHOLE_LINE)
        return pst_kctx_error(c, PST_E_INVALID, "%s_index must be >= -2, not %" PRId64, what,
                              index);
    return 0;
}

static int text_file_kernel(pst_kernel_ctx *c) {
    table *t = table_of(c);
    if (t == NULL) return c->status->code;
    const pst_tensor *fn = c->inputs[1];
    if (fn->dtype != PST_STRING || fn->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "filename must be a string scalar");
    const char *file = pst_tensor_str(fn)[0].len ? pst_tensor_str(fn)[0].p : "";
    int64_t ki = pst_kctx_attr_i(c, "key_index", -2), vi = pst_kctx_attr_i(c, "value_index", -1);
    int64_t vocab = pst_kctx_attr_i(c, "vocab_size", -1);
    const char *delim = pst_kctx_attr_s(c, "delimiter", "\t");
    if (index_dtype_ok(c, ki, t->key_dt, "key") < 0 ||
        index_dtype_ok(c, vi, t->val_dt, "value") < 0)
        return c->status->code;
    if (t->row != 1)
        return pst_kctx_error(c, PST_E_INVALID, "a text file initializes tables of scalar values");
    if (pst_ops_file_allowed(c, file, 0) < 0) return c->status->code;
    uint8_t *buf = NULL;
    size_t len = 0;
    pst_status fst = {0};
    if (pst_file_read(file, (size_t)1 << 31, &buf, &len, &fst) < 0)
        return pst_kctx_error(c, fst.code, "%s", fst.msg);
    /* Lines first: count them (a final line may lack its newline). */
    int64_t lines = 0;
    for (size_t p = 0; p < len; p++) lines += buf[p] == '\n';
    if (len && buf[len - 1] != '\n') lines++;
    int64_t n = vocab > 0 && vocab < lines ? vocab : lines;
    int rc = 0;
    if (vocab > 0 && lines < vocab)
        rc = pst_kctx_error(c, PST_E_INVALID, "Invalid vocab_size in %s: expected %" PRId64
                            " but got %" PRId64, file, vocab, lines);
    pst_tensor *k = rc ? NULL : pst_tensor_new_zeros(t->key_dt, pst_shape_1d(n), c->status);
    pst_tensor *v = k ? pst_tensor_new_zeros(t->val_dt, pst_shape_1d(n), c->status) : NULL;
    if (rc == 0 && v == NULL) rc = c->status->code;
    size_t p = 0;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        size_t e = p;
        while (e < len && buf[e] != '\n') e++;
        size_t l = e - p;
        if (l && buf[p + l - 1] == '\r') l--;
        const char *line = (const char *)buf + p;
        if (l == 0)
            rc = pst_kctx_error(c, PST_E_INVALID, "Invalid content in %s: empty line %" PRId64,
                                file, i);
        if (rc == 0) rc = take_field(c, k, i, ki, line, l, delim, file, i);
        if (rc == 0) rc = take_field(c, v, i, vi, line, l, delim, file, i);
        p = e + 1;
    }
    free(buf);
    if (rc == 0) rc = import_entries(c, t, k, v);
    pst_tensor_unref(k), pst_tensor_unref(v);
    return rc;
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
                                            {"value_shape", PST_ATTR_SHAPE, 0},
                                            {0}};
static const pst_attr_spec dense_attrs[] = {{"container", PST_ATTR_STRING, 0},
                                            {"shared_name", PST_ATTR_STRING, 0},
                                            {"use_node_name_sharing", PST_ATTR_BOOL, 0},
                                            {"key_dtype", PST_ATTR_TYPE, 1},
                                            {"value_dtype", PST_ATTR_TYPE, 1},
                                            {"value_shape", PST_ATTR_SHAPE, 0},
                                            {"initial_num_buckets", PST_ATTR_INT, 0},
                                            {"max_load_factor", PST_ATTR_FLOAT, 0},
                                            {0}};
static const pst_attr_spec io_attrs[] = {
    {"Tin", PST_ATTR_TYPE, 0}, {"Tout", PST_ATTR_TYPE, 0}, {"Tkey", PST_ATTR_TYPE, 0},
    {"Tval", PST_ATTR_TYPE, 0}, {"Tkeys", PST_ATTR_TYPE, 0}, {"Tvalues", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec text_attrs[] = {
    {"key_index", PST_ATTR_INT, 1}, {"value_index", PST_ATTR_INT, 1},
    {"vocab_size", PST_ATTR_INT, 0}, {"delimiter", PST_ATTR_STRING, 0}, {0}};

#define LK (PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS)
#define TABLE(nm) {.name = nm, .n_outputs = 1, .attrs = table_attrs, .shape = table_shape, \
                   .kernel = table_kernel, .flags = LK}
#define KV(nm, k)                                                                                  \
    {                                                                                              \
        .name = nm, .min_inputs = 3, .max_inputs = 3, .n_outputs = 0, .attrs = io_attrs,           \
        .shape = no_outputs, .kernel = k, .flags = LK                                              \
    }
#define FIND(nm) {.name = nm, .min_inputs = 3, .max_inputs = 3, .n_outputs = 1, .attrs = io_attrs, \
                  .shape = find_shape, .kernel = find_kernel, .flags = LK}
#define SIZE(nm) {.name = nm, .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, \
                  .shape = size_shape, .kernel = size_kernel, .flags = LK}
#define EXPORT(nm) {.name = nm, .min_inputs = 1, .max_inputs = 1, .n_outputs = 2, \
                    .attrs = io_attrs, .shape = export_shape, .kernel = export_kernel, .flags = LK}
#define TEXT(nm) {.name = nm, .min_inputs = 2, .max_inputs = 2, .n_outputs = 0, \
                  .attrs = text_attrs, .shape = no_outputs, .kernel = text_file_kernel, .flags = LK}
static const pst_op_def lookup_ops[] = {
    TABLE("HashTableV2"), TABLE("HashTable"),
    TABLE("MutableHashTableV2"), TABLE("MutableHashTable"),
    TABLE("MutableHashTableOfTensorsV2"), TABLE("MutableHashTableOfTensors"),
    {.name = "MutableDenseHashTableV2", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = dense_attrs, .shape = table_shape, .kernel = table_kernel, .flags = LK},
    {.name = "MutableDenseHashTable", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = dense_attrs, .shape = table_shape, .kernel = table_kernel, .flags = LK},
    KV("LookupTableImportV2", import_kernel), KV("LookupTableImport", import_kernel),
    KV("InitializeTableV2", import_kernel), KV("InitializeTable", import_kernel),
    KV("LookupTableInsertV2", insert_kernel), KV("LookupTableInsert", insert_kernel),
    FIND("LookupTableFindV2"), FIND("LookupTableFind"),
    SIZE("LookupTableSizeV2"), SIZE("LookupTableSize"),
    EXPORT("LookupTableExportV2"), EXPORT("LookupTableExport"),
    TEXT("InitializeTableFromTextFileV2"), TEXT("InitializeTableFromTextFile"),
    {.name = "LookupTableRemoveV2", .min_inputs = 2, .max_inputs = 2, .n_outputs = 0,
     .attrs = io_attrs, .shape = no_outputs, .kernel = remove_kernel, .flags = LK},
};

void pst__register_lookup_ops(void) {
    for (size_t i = 0; i < sizeof lookup_ops / sizeof lookup_ops[0]; i++)
        pst_op_register(&lookup_ops[i]);
}
