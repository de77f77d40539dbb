#include "varstore.h"

#include <stdlib.h>
#include <string.h>

#include "strmap.h"

typedef struct resource {
    void *obj;
    pst_resource_free_fn free_fn;
} resource;

struct pst_var_store {
    pthread_mutex_t mu;
    pst_strmap *vars;
    pst_strmap *resources; /* key -> resource */
};

pst_var_store *pst_var_store_new(void) {
    pst_var_store *vs = calloc(1, sizeof *vs);
    if (vs == NULL) return NULL;
    vs->vars = pst_strmap_new();
    vs->resources = pst_strmap_new();
    if (vs->vars == NULL || vs->resources == NULL) {
        pst_strmap_free(vs->vars);
        pst_strmap_free(vs->resources);
        free(vs);
        return NULL;
    }
    pthread_mutex_init(&vs->mu, NULL);
    return vs;
}

void pst_var_store_free(pst_var_store *vs) {
    if (vs == NULL) return;
    const char *k;
    void *val;
    for (size_t it = 0; pst_strmap_next(vs->vars, &it, &k, &val);) {
        pst_var *v = val;
        pst_tensor_unref(v->value);
        pthread_mutex_destroy(&v->mu);
        free(v->name);
        free(v);
    }
    for (size_t it = 0; pst_strmap_next(vs->resources, &it, &k, &val);) {
        resource *r = val;
        if (r->free_fn) r->free_fn(r->obj);
        free(r);
    }
    pst_strmap_free(vs->resources);
    pst_strmap_free(vs->vars);
    pthread_mutex_destroy(&vs->mu);
    free(vs);
}

pst_var *pst_var_store_get_or_create(pst_var_store *vs, const char *name, pst_dtype dt,
                                          pst_shape shape, pst_status *st) {
    pthread_mutex_lock(&vs->mu);
    pst_var *v = pst_strmap_get(vs->vars, name);
    if (v == NULL) {
        v = calloc(1, sizeof *v);
        if (v) v->name = strdup(name);
        if (v == NULL || v->name == NULL || pst_strmap_put(vs->vars, name, v) < 0) {
            if (v) free(v->name);
            free(v);
            v = NULL;
            pst_status_set(st, PST_E_EXHAUSTED, "out of memory creating variable '%s'", name);
        } else {
            v->dtype = dt;
            v->shape = shape;
            pthread_mutex_init(&v->mu, NULL);
        }
    } else if (v->dtype != dt) {
        pst_status_set(st, PST_E_INVALID, "variable '%s' exists with dtype %s, requested %s",
                       name, pst_dtype_name(v->dtype), pst_dtype_name(dt));
        v = NULL;
    }
    pthread_mutex_unlock(&vs->mu);
    return v;
}

pst_var *pst_var_store_find(pst_var_store *vs, const char *name) {
    pthread_mutex_lock(&vs->mu);
    pst_var *v = pst_strmap_get(vs->vars, name);
    pthread_mutex_unlock(&vs->mu);
    return v;
}

static int cmp_var(const void *a, const void *b) {
    return strcmp((*(pst_var *const *)a)->name, (*(pst_var *const *)b)->name);
}

int pst_var_store_list(pst_var_store *vs, pst_var ***out) {
    pthread_mutex_lock(&vs->mu);
    size_t n = pst_strmap_size(vs->vars);
    pst_var **arr = calloc(n + 1, sizeof *arr);
    if (arr == NULL) {
        pthread_mutex_unlock(&vs->mu);
        *out = NULL;
        return -1;
    }
    size_t i = 0;
    void *val;
    for (size_t it = 0; pst_strmap_next(vs->vars, &it, NULL, &val);) arr[i++] = val;
    pthread_mutex_unlock(&vs->mu);
    qsort(arr, n, sizeof *arr, cmp_var);
    *out = arr;
    return (int)n;
}

void *pst_var_store_resource(pst_var_store *vs, const char *key, pst_resource_make_fn make,
                             void *ctx, pst_resource_free_fn free_fn, pst_status *st) {
    pthread_mutex_lock(&vs->mu);
    resource *r = pst_strmap_get(vs->resources, key);
    void *obj = r ? r->obj : NULL;
    if (!r) {
        r = malloc(sizeof *r);
        obj = r ? make(ctx, st) : NULL;
        if (!r) pst_status_set(st, PST_E_EXHAUSTED, "out of memory for resource '%s'", key);
        if (obj) {
            *r = (resource){obj, free_fn};
            if (pst_strmap_put(vs->resources, key, r) < 0) {
                if (free_fn) free_fn(obj);
                obj = NULL;
                pst_status_set(st, PST_E_EXHAUSTED, "out of memory for resource '%s'", key);
            }
        }
        if (!obj) free(r);
    }
    pthread_mutex_unlock(&vs->mu);
    return obj;
}

void *pst_var_store_find_resource(pst_var_store *vs, const char *key) {
    pthread_mutex_lock(&vs->mu);
    resource *r = pst_strmap_get(vs->resources, key);
    void *obj = r ? r->obj : NULL;
    pthread_mutex_unlock(&vs->mu);
    return obj;
}

pst_tensor *pst_var_read(pst_var *v) {
    pthread_mutex_lock(&v->mu);
    pst_tensor *t = pst_tensor_ref(v->value);
    if (t) v->n_reads++;
    pthread_mutex_unlock(&v->mu);
    return t;
}

int pst_var_is_initialized(pst_var *v) {
    pthread_mutex_lock(&v->mu);
    int r = v->value != NULL;
    pthread_mutex_unlock(&v->mu);
    return r;
}

int pst_var_uninit_error(const char *name, pst_status *st) {
    return pst_status_set(st, PST_E_PRECONDITION, "Attempting to use uninitialized value %s",
                          name);
}

/* Whether t may be assigned to v (dtype, and shape when validate_shape). */
static int check_assign(const pst_var *v, const pst_tensor *t, int validate_shape, pst_status *st) {
    char a[128], b[128];
    if (t->dtype != v->dtype)
        return pst_status_set(st, PST_E_INVALID, "cannot assign a %s value to %s variable '%s'",
                              pst_dtype_name(t->dtype), pst_dtype_name(v->dtype), v->name);
    if (validate_shape && !pst_shape_compatible(&v->shape, &t->shape))
        return pst_status_set(st, PST_E_INVALID,
                              "cannot assign a value of shape %s to variable '%s' of shape %s",
                              pst_shape_str(&t->shape, a, sizeof a), v->name,
                              pst_shape_str(&v->shape, b, sizeof b));
    return 0;
}

int pst_var_assign(pst_var *v, pst_tensor *t, int validate_shape, pst_status *st) {
    int rc = check_assign(v, t, validate_shape, st);
    if (rc < 0) return rc;
    pthread_mutex_lock(&v->mu);
    if (v->value && atomic_load(&v->value->refs) == 1 && v->value->base == NULL &&
        pst_shape_equal(&v->value->shape, &t->shape)) {
        memcpy(v->value->data, t->data, t->nbytes);
    } else {
        pst_tensor *c = pst_tensor_clone(t, st);
        if (c == NULL) {
            pthread_mutex_unlock(&v->mu);
            return st ? st->code : PST_E_EXHAUSTED;
        }
        pst_tensor_unref(v->value);
        v->value = c;
    }
    v->version++;
    v->n_updates++;
    pthread_mutex_unlock(&v->mu);
    return 0;
}

int pst_var_assign_take(pst_var *v, pst_tensor *t, int validate_shape, pst_status *st) {
    if (atomic_load(&t->refs) != 1 || t->base != NULL) return pst_var_assign(v, t, validate_shape, st);
    int rc = check_assign(v, t, validate_shape, st);
    if (rc < 0) return rc;
    pthread_mutex_lock(&v->mu);
    pst_tensor *old = v->value;
    v->value = pst_tensor_ref(t);
    v->version++;
    v->n_updates++;
    pthread_mutex_unlock(&v->mu);
    pst_tensor_unref(old);
    return 0;
}

pst_tensor *pst_var_begin_update(pst_var *v, pst_status *st) {
    pthread_mutex_lock(&v->mu);
    if (v->value == NULL) {
        pthread_mutex_unlock(&v->mu);
        pst_var_uninit_error(v->name, st);
        return NULL;
    }
    if (atomic_load(&v->value->refs) > 1 || v->value->base != NULL) {
        pst_tensor *c = pst_tensor_clone(v->value, st);
        if (c == NULL) {
            pthread_mutex_unlock(&v->mu);
            return NULL;
        }
        pst_tensor_unref(v->value);
        v->value = c;
    }
    return v->value;
}

void pst_var_end_update(pst_var *v) {
    v->version++;
    v->n_updates++;
    pthread_mutex_unlock(&v->mu);
}

int pst_var_store_drop_resources(pst_var_store *vs, const char *prefix) {
    size_t len = strlen(prefix);
    pthread_mutex_lock(&vs->mu);
    size_t cap = pst_strmap_size(vs->resources);
    resource **gone = calloc(cap + 1, sizeof *gone);
    char **keys = calloc(cap + 1, sizeof *keys);
    int n = 0;
    const char *k;
    void *val;
    for (size_t it = 0; gone && keys && pst_strmap_next(vs->resources, &it, &k, &val);)
        if (strncmp(k, prefix, len) == 0 && (keys[n] = strdup(k))) n++;
    for (int i = 0; i < n; i++) gone[i] = pst_strmap_del(vs->resources, keys[i]);
    pthread_mutex_unlock(&vs->mu);
    for (int i = 0; i < n; i++) {
        if (gone[i] && gone[i]->free_fn) gone[i]->free_fn(gone[i]->obj);
        free(gone[i]);
        free(keys[i]);
    }
    free(gone);
    free(keys);
    return n;
}
