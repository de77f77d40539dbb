#include "varstore.h"

#include <stdlib.h>
#include <string.h>

#include "strmap.h"

struct pst_var_store {
    pthread_mutex_t mu;
    pst_strmap *vars;
    int lost;       /* replicas lost so far, given to variables created later */
    char *lost_why;
};

pst_var_store *pst_var_store_new(void) {
    pst_var_store *vs = calloc(1, sizeof *vs);
    PST_ASSERT(vs != NULL);
    pthread_mutex_init(&vs->mu, NULL);
    vs->vars = pst_strmap_new();
    PST_ASSERT(vs->vars != NULL);
    return vs;
}

void pst_var_store_free(pst_var_store *vs) {
    if (vs == NULL) return;
    const char *k;
    void *val;
    for (size_t it = 0; pst_strmap_next(vs->vars, &it, &k, &val);) {
        pst_var *v = val;
        pst_tensor_unref(v->value);
        pst_tensor_unref(v->sync_sum);
        pthread_mutex_destroy(&v->mu);
        pthread_mutex_destroy(&v->sync_mu);
        pthread_cond_destroy(&v->sync_cv);
        free(v->name);
        free(v->sync_lost_why);
        free(v);
    }
    free(vs->lost_why);
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
        PST_ASSERT(v != NULL);
        v->name = strdup(name);
        v->dtype = dt;
        v->shape = shape;
        pthread_mutex_init(&v->mu, NULL);
        pthread_mutex_init(&v->sync_mu, NULL);
        pthread_cond_init(&v->sync_cv, NULL);
        v->sync_lost = vs->lost;
        v->sync_lost_why = vs->lost_why ? strdup(vs->lost_why) : NULL;
        pst_strmap_put(vs->vars, name, v);
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
    PST_ASSERT(arr != NULL);
    size_t i = 0;
    void *val;
    for (size_t it = 0; pst_strmap_next(vs->vars, &it, NULL, &val);) arr[i++] = val;
    pthread_mutex_unlock(&vs->mu);
    qsort(arr, n, sizeof *arr, cmp_var);
    *out = arr;
    return (int)n;
}

void pst_var_store_replica_lost(pst_var_store *vs, const char *why) {
    pthread_mutex_lock(&vs->mu);
    vs->lost++;
    free(vs->lost_why);
    vs->lost_why = strdup(why);
    void *val;
    for (size_t it = 0; pst_strmap_next(vs->vars, &it, NULL, &val);) {
        pst_var *v = val;
        pthread_mutex_lock(&v->sync_mu);
        v->sync_lost = vs->lost;
        free(v->sync_lost_why);
        v->sync_lost_why = strdup(why);
        pthread_cond_broadcast(&v->sync_cv);
        pthread_mutex_unlock(&v->sync_mu);
    }
    pthread_mutex_unlock(&vs->mu);
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
