/*
 * strmap — a string-keyed hash map (open addressing). Keys are copied; values are borrowed
 * pointers the caller manages. Not thread-safe.
 *
 *     pst_strmap *m = pst_strmap_new();
 *     pst_strmap_put(m, "w", ptr);
 *     void *p = pst_strmap_get(m, "w");
 *     pst_strmap_free(m);
 */
#ifndef PST_STRMAP_H
#define PST_STRMAP_H

#include <stddef.h>

typedef struct pst_strmap pst_strmap;

pst_strmap *pst_strmap_new(void);
void pst_strmap_free(pst_strmap *m);
/* Inserts or replaces; returns 0, or -1 when out of memory. */
int pst_strmap_put(pst_strmap *m, const char *key, void *val);
/* The value, or NULL when absent. */
void *pst_strmap_get(const pst_strmap *m, const char *key);
int pst_strmap_has(const pst_strmap *m, const char *key);
/* Removes key; returns the old value or NULL. */
void *pst_strmap_del(pst_strmap *m, const char *key);
size_t pst_strmap_size(const pst_strmap *m);
/* Iteration: for (size_t it = 0; pst_strmap_next(m, &it, &k, &v);) — any order. */
int pst_strmap_next(const pst_strmap *m, size_t *it, const char **key, void **val);

#endif
