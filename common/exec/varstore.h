/*
 * varstore — the variables of a session or a parameter server: name -> tensor.
 *
 * A variable is created on first use by its VariableV2 kernel and stays uninitialized (no value)
 * until assigned. Reads take a reference to the current value; updates that would change a
 * value someone else still holds copy it first (copy-on-write), so a reader always sees one
 * consistent snapshot. Each variable has its own mutex; the store's map has another.
 *
 * A store also keeps resources: objects other modules attach to it by key (like TensorFlow's
 * ResourceMgr), so state that lives as long as the variables (a parameter server's
 * synchronous-replica accumulators, dist/ps_sync.h) needs no field here.
 *
 *     pst_var_store *vs = pst_var_store_new();
 *     pst_var *v = pst_var_store_get_or_create(vs, "w", PST_FLOAT, shape, &st);
 *     pst_var_assign(v, t, &st);               // borrows t, copies it
 *     pst_tensor *cur = pst_var_read(v);       // caller unrefs; NULL if uninitialized
 */
#ifndef PST_VARSTORE_H
#define PST_VARSTORE_H

#include <pthread.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef struct pst_var {
    char *name;
    pst_dtype dtype;
    pst_shape shape;      /* declared shape (may have unknown dims when validate_shape=false) */
    pst_tensor *value;    /* NULL until initialized; guarded by mu */
    pthread_mutex_t mu;
    int64_t version;      /* bumped on every update */
    int64_t n_reads, n_updates;
} pst_var;

typedef struct pst_var_store pst_var_store;

/* NULL when out of memory. */
pst_var_store *pst_var_store_new(void);
void pst_var_store_free(pst_var_store *vs);
/* Finds or creates; an existing variable with another dtype is an error naming it (as is
 * running out of memory). */
pst_var *pst_var_store_get_or_create(pst_var_store *vs, const char *name, pst_dtype dt,
                                          pst_shape shape, pst_status *st);
pst_var *pst_var_store_find(pst_var_store *vs, const char *name);
/* The variables in name order in *out (the caller frees the array) and their count; -1 (and
 * *out NULL) when out of memory. */
int pst_var_store_list(pst_var_store *vs, pst_var ***out);

/* The resource stored under key, created by make(ctx, st) on first use (under the store's
 * lock, so concurrent first users get one object; make must not call back into vs). The store
 * owns it: free_fn (may be NULL) releases it when the store is freed. NULL with st set when
 * make fails or memory runs out. */
typedef void *(*pst_resource_make_fn)(void *ctx, pst_status *st);
typedef void (*pst_resource_free_fn)(void *resource);
void *pst_var_store_resource(pst_var_store *vs, const char *key, pst_resource_make_fn make,
                             void *ctx, pst_resource_free_fn free_fn, pst_status *st);
/* The resource stored under key, or NULL when none was made. */
void *pst_var_store_find_resource(pst_var_store *vs, const char *key);
/* Frees every resource whose key starts with prefix (none may be in use: e.g. tf.data
 * iterators whose datasets run functions of a graph about to be freed); returns how many. */
int pst_var_store_drop_resources(pst_var_store *vs, const char *prefix);

/* Current value with a new reference, or NULL when uninitialized. */
pst_tensor *pst_var_read(pst_var *v);
int pst_var_is_initialized(pst_var *v);
/* Sets the value to a copy of t (or takes t itself when the caller holds its only reference
 * and `steal` is set). Checks dtype, and shape unless validate_shape is 0. */
int pst_var_assign(pst_var *v, pst_tensor *t, int validate_shape, pst_status *st);
/* The same, but when nobody else holds t (one reference, not a view) the variable keeps t
 * itself instead of a copy; the caller still unrefs its reference. */
int pst_var_assign_take(pst_var *v, pst_tensor *t, int validate_shape, pst_status *st);
/* Locks v and returns a tensor the caller may update in place (copying the value first if it
 * is shared). Must be followed by pst_var_end_update. NULL (and unlocked) when the
 * variable is uninitialized; st names it. */
pst_tensor *pst_var_begin_update(pst_var *v, pst_status *st);
void pst_var_end_update(pst_var *v);
/* The standard error for reading an uninitialized variable (FailedPrecondition). */
int pst_var_uninit_error(const char *name, pst_status *st);

#endif
