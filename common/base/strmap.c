#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    char *key; /* NULL empty; TOMB deleted */
    void *val;
    uint64_t hash;
} slot;

static char tomb_;
#define TOMB (&tomb_)

struct pst_strmap {
    slot *slots;
    size_t cap, size, used; /* used counts tombstones too */
};

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

pst_strmap *pst_strmap_new(void) {
    pst_strmap *m = calloc(1, sizeof *m);
    if (m == NULL) return NULL;
    m->cap = 16;
    m->slots = calloc(m->cap, sizeof(slot));
    if (m->slots == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void pst_strmap_free(pst_strmap *m) {
    if (m == NULL) return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB) free(m->slots[i].key);
    free(m->slots);
    free(m);
}

static slot *find(const pst_strmap *m, const char *key, uint64_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot *s = &m->slots[i];
        if (s->key == NULL) return NULL;
        if (s->key != TOMB && s->hash == h && strcmp(s->key, key) == 0) return s;
    }
}

static int grow(pst_strmap *m) {
    size_t ncap = m->cap * 2;
    slot *ns = calloc(ncap, sizeof(slot));
    if (ns == NULL) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        slot *s = &m->slots[i];
        if (s->key == NULL || s->key == TOMB) continue;
        size_t j = s->hash & (ncap - 1);
        while (ns[j].key) j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    m->used = m->size;
    return 0;
}

int pst_strmap_put(pst_strmap *m, const char *key, void *val) {
    uint64_t h = hash_str(key);
    slot *s = find(m, key, h);
    if (s) {
        s->val = val;
        return 0;
    }
    if ((m->used + 1) * 4 > m->cap * 3 && grow(m) < 0) return -1;
    size_t mask = m->cap - 1, i = h & mask;
    while (m->slots[i].key && m->slots[i].key != TOMB) i = (i + 1) & mask;
    char *k = strdup(key);
    if (k == NULL) return -1;
    if (m->slots[i].key == NULL) m->used++;
    m->slots[i] = (slot){k, val, h};
    m->size++;
    return 0;
}

void *pst_strmap_get(const pst_strmap *m, const char *key) {
    slot *s = find(m, key, hash_str(key));
    return s ? s->val : NULL;
}

int pst_strmap_has(const pst_strmap *m, const char *key) {
    return find(m, key, hash_str(key)) != NULL;
}

void *pst_strmap_del(pst_strmap *m, const char *key) {
    slot *s = find(m, key, hash_str(key));
    if (s == NULL) return NULL;
    void *v = s->val;
    free(s->key);
    s->key = TOMB;
    s->val = NULL;
    m->size--;
    return v;
}

size_t pst_strmap_size(const pst_strmap *m) { return m->size; }

int pst_strmap_next(const pst_strmap *m, size_t *it, const char **key, void **val) {
    while (*it < m->cap) {
        slot *s = &m->slots[(*it)++];
        if (s->key && s->key != TOMB) {
            if (key) *key = s->key;
            if (val) *val = s->val;
            return 1;
        }
    }
    return 0;
}
