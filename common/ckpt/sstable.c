#include "sstable.h"

#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "varint.h"

#define TABLE_MAGIC 0xdb4775248b80fb57ull
#define BLOCK_TARGET (256 * 1024)
#define RESTART_INTERVAL 16

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void buf_put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->n + n) c *= 2;
        b->p = realloc(b->p, c);
        PST_ASSERT(b->p != NULL);
        b->cap = c;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_fixed32(buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    buf_put(b, x, 4);
}

static uint32_t get_fixed32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void put_varint(buf *b, uint64_t v) {
    uint8_t x[10];
    buf_put(b, x, pst_varint_put64(x, v));
}

typedef struct block_builder {
    buf data;
    uint32_t *restarts;
    int n_restarts, cap_restarts;
    int counter, interval;
    buf last;
} block_builder;

static void bb_add(block_builder *bb, const void *key, size_t klen, const void *val, size_t vlen) {
    size_t shared = 0;
    if (bb->counter < bb->interval) {
        size_t m = klen < bb->last.n ? klen : bb->last.n;
        while (shared < m && ((const uint8_t *)key)[shared] == bb->last.p[shared]) shared++;
    } else {
        bb->counter = 0;
    }
    if (bb->counter == 0) {
        if (bb->n_restarts == bb->cap_restarts) {
            bb->cap_restarts = bb->cap_restarts ? bb->cap_restarts * 2 : 16;
            bb->restarts = realloc(bb->restarts, (size_t)bb->cap_restarts * sizeof *bb->restarts);
            PST_ASSERT(bb->restarts != NULL);
        }
        bb->restarts[bb->n_restarts++] = (uint32_t)bb->data.n;
        shared = 0;
    }
    put_varint(&bb->data, shared);
    put_varint(&bb->data, klen - shared);
    put_varint(&bb->data, vlen);
    buf_put(&bb->data, (const uint8_t *)key + shared, klen - shared);
    buf_put(&bb->data, val, vlen);
    bb->last.n = 0;
    buf_put(&bb->last, key, klen);
    bb->counter++;
}

/* Appends the block (contents + restarts + trailer) to out; returns its handle. */
static void bb_flush(block_builder *bb, buf *out, uint64_t *off, uint64_t *size) {
    if (bb->n_restarts == 0) {
        bb->restarts = realloc(bb->restarts, sizeof *bb->restarts);
        bb->restarts[0] = 0;
        bb->n_restarts = 1;
    }
    for (int i = 0; i < bb->n_restarts; i++) put_fixed32(&bb->data, bb->restarts[i]);
    put_fixed32(&bb->data, (uint32_t)bb->n_restarts);
    *off = out->n;
    *size = bb->data.n;
    buf_put(out, bb->data.p, bb->data.n);
    uint8_t type = 0;
    uint32_t crc = pst_crc32c(pst_crc32c(0, bb->data.p, bb->data.n), &type, 1);
    buf_put(out, &type, 1);
    put_fixed32(out, pst_crc32c_mask(crc));
    bb->data.n = 0;
    bb->n_restarts = 0;
    bb->counter = 0;
    bb->last.n = 0;
}

struct pst_sstable_builder {
    buf out;
    block_builder data, index;
    buf last_key;
    int has_last;
};

pst_sstable_builder *pst_sstable_builder_new(void) {
    pst_sstable_builder *b = calloc(1, sizeof *b);
    PST_ASSERT(b != NULL);
    b->data.interval = RESTART_INTERVAL;
    b->index.interval = 1;
    return b;
}

static void add_index_entry(pst_sstable_builder *b) {
    uint64_t off, size;
    bb_flush(&b->data, &b->out, &off, &size);
    uint8_t h[20];
    size_t n = pst_varint_put64(h, off);
    n += pst_varint_put64(h + n, size);
    bb_add(&b->index, b->last_key.p, b->last_key.n, h, n);
}

int pst_sstable_add(pst_sstable_builder *b, const void *key, size_t klen, const void *val,
                    size_t vlen) {
    if (b->has_last) {
        size_t m = klen < b->last_key.n ? klen : b->last_key.n;
        int c = m ? memcmp(b->last_key.p, key, m) : 0;
        if (c > 0 || (c == 0 && b->last_key.n >= klen)) return -1;
    }
    bb_add(&b->data, key, klen, val, vlen);
    b->last_key.n = 0;
    buf_put(&b->last_key, key, klen);
    b->has_last = 1;
    if (b->data.data.n >= BLOCK_TARGET) add_index_entry(b);
    return 0;
}

void pst_sstable_finish(pst_sstable_builder *b, uint8_t **out, size_t *len) {
    if (b->data.data.n > 0 || b->data.n_restarts > 0) add_index_entry(b);
    block_builder meta = {.interval = 1};
    uint64_t moff, msize, ioff, isize;
    bb_flush(&meta, &b->out, &moff, &msize);
    bb_flush(&b->index, &b->out, &ioff, &isize);
    uint8_t footer[48] = {0};
    size_t n = pst_varint_put64(footer, moff);
    n += pst_varint_put64(footer + n, msize);
    n += pst_varint_put64(footer + n, ioff);
    pst_varint_put64(footer + n, isize);
    uint64_t magic = TABLE_MAGIC;
    for (int i = 0; i < 8; i++) footer[40 + i] = (uint8_t)(magic >> (8 * i));
    buf_put(&b->out, footer, 48);
    *out = b->out.p;
    *len = b->out.n;
    free(b->data.data.p);
    free(b->data.restarts);
    free(b->data.last.p);
    free(b->index.data.p);
    free(b->index.restarts);
    free(b->index.last.p);
    free(meta.data.p);
    free(meta.restarts);
    free(meta.last.p);
    free(b->last_key.p);
    free(b);
}

/* ---- Reader ------------------------------------------------------------------------------ */

/* Returns the (possibly decompressed) block contents in *contents (malloc'd). */
static int read_block(const uint8_t *buf, size_t len, uint64_t off, uint64_t size, const char *what,
                      uint8_t **contents, size_t *clen, pst_status *st) {
    if (off > len || size > len - off || len - off - size < 5)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: block at %llu (+%llu) is past the end of "
                              "the file (%zu bytes)", what, (unsigned long long)off,
                              (unsigned long long)size, len);
    const uint8_t *p = buf + off;
    uint8_t type = p[size];
    uint32_t want = pst_crc32c_unmask(get_fixed32(p + size + 1));
    uint32_t got = pst_crc32c(pst_crc32c(0, p, size), &type, 1);
    if (want != got)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: checksum mismatch in the block at offset "
                              "%llu", what, (unsigned long long)off);
    if (type == 0) {
        *contents = malloc(size ? size : 1);
        PST_ASSERT(*contents != NULL);
        if (size) memcpy(*contents, p, size);
        *clen = size;
        return 0;
    }
    if (type == 1) {
        size_t ulen;
        if (snappy_uncompressed_length((const char *)p, size, &ulen) != SNAPPY_OK || ulen > (1u << 30))
            return pst_status_set(st, PST_E_DATA_LOSS, "%s: bad Snappy block at offset %llu", what,
                                  (unsigned long long)off);
        *contents = malloc(ulen ? ulen : 1);
        PST_ASSERT(*contents != NULL);
        if (snappy_uncompress((const char *)p, size, (char *)*contents, &ulen) != SNAPPY_OK) {
            free(*contents);
            return pst_status_set(st, PST_E_DATA_LOSS, "%s: bad Snappy block at offset %llu", what,
                                  (unsigned long long)off);
        }
        *clen = ulen;
        return 0;
    }
    return pst_status_set(st, PST_E_DATA_LOSS, "%s: unknown block compression %d", what, type);
}

typedef int (*entry_fn)(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);

static int walk_block(const uint8_t *b, size_t n, const char *what, entry_fn fn, void *ctx,
                      pst_status *st) {
    if (n < 4) return pst_status_set(st, PST_E_DATA_LOSS, "%s: block too short", what);
    uint32_t nr = get_fixed32(b + n - 4);
    if ((uint64_t)nr * 4 + 4 > n) return pst_status_set(st, PST_E_DATA_LOSS, "%s: bad restart count", what);
    const uint8_t *p = b, *end = b + n - 4 - 4 * (size_t)nr;
    buf key = {0};
    int rc = 0;
    while (p < end) {
        uint64_t shared, nonshared, vlen;
        size_t a = pst_varint_get64(p, end, &shared);
        size_t c = a ? pst_varint_get64(p + a, end, &nonshared) : 0;
        size_t d = c ? pst_varint_get64(p + a + c, end, &vlen) : 0;
        if (!d) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: corrupt block entry", what);
            break;
        }
        p += a + c + d;
        if (shared > key.n || nonshared > (size_t)(end - p) || vlen > (size_t)(end - p) - nonshared) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: corrupt block entry", what);
            break;
        }
        key.n = shared;
        buf_put(&key, p, nonshared);
        p += nonshared;
        if ((rc = fn(ctx, key.p, key.n, p, vlen)) < 0) {
            pst_status_set(st, PST_E_DATA_LOSS, "%s: keys out of order or duplicated", what);
            break;
        }
        p += vlen;
    }
    free(key.p);
    return rc;
}

typedef struct collect {
    pst_sstable *t;
    int cap;
} collect;

static int add_entry(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen) {
    collect *c = ctx;
    pst_sstable *t = c->t;
    if (t->n > 0) {
        const pst_sstable_entry *l = &t->entries[t->n - 1];
        size_t m = klen < l->klen ? klen : l->klen;
        int cmp = m ? memcmp(l->key, key, m) : 0;
        if (cmp > 0 || (cmp == 0 && l->klen >= klen)) return -1;
    }
    if (t->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        t->entries = realloc(t->entries, (size_t)c->cap * sizeof *t->entries);
        PST_ASSERT(t->entries != NULL);
    }
    pst_sstable_entry *e = &t->entries[t->n++];
    e->key = malloc(klen + 1);
    e->val = malloc(vlen ? vlen : 1);
    PST_ASSERT(e->key && e->val);
    if (klen) memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    e->klen = klen;
    if (vlen) memcpy(e->val, val, vlen);
    e->vlen = vlen;
    return 0;
}

typedef struct index_walk {
    const uint8_t *file;
    size_t len;
    const char *what;
    collect *c;
    pst_status *st;
} index_walk;

static int visit_handle(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen) {
    (void)key;
    (void)klen;
    index_walk *w = ctx;
    uint64_t off, size;
    size_t a = pst_varint_get64(val, val + vlen, &off);
    if (!a || !pst_varint_get64(val + a, val + vlen, &size)) return -1;
    uint8_t *blk;
    size_t n;
    if (read_block(w->file, w->len, off, size, w->what, &blk, &n, w->st) < 0) return -2;
    int rc = walk_block(blk, n, w->what, add_entry, w->c, w->st);
    free(blk);
    return rc < 0 ? -2 : 0;
}

int pst_sstable_parse(const uint8_t *buf, size_t len, const char *what, pst_sstable **out,
                      pst_status *st) {
    *out = NULL;
    if (len < 48)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: %zu bytes is too short for a table", what, len);
    const uint8_t *f = buf + len - 48;
    uint64_t magic = 0;
    for (int i = 0; i < 8; i++) magic |= (uint64_t)f[40 + i] << (8 * i);
    if (magic != TABLE_MAGIC)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: bad magic number (not a table, or truncated)",
                              what);
    uint64_t moff, msize, ioff, isize;
    size_t a = pst_varint_get64(f, f + 40, &moff), b = a ? pst_varint_get64(f + a, f + 40, &msize) : 0;
    size_t c = b ? pst_varint_get64(f + a + b, f + 40, &ioff) : 0;
    size_t d = c ? pst_varint_get64(f + a + b + c, f + 40, &isize) : 0;
    if (!d) return pst_status_set(st, PST_E_DATA_LOSS, "%s: corrupt footer", what);
    uint8_t *index;
    size_t n;
    int rc = read_block(buf, len - 48, ioff, isize, what, &index, &n, st);
    if (rc < 0) return rc;
    pst_sstable *t = calloc(1, sizeof *t);
    PST_ASSERT(t != NULL);
    collect col = {t, 0};
    index_walk w = {buf, len - 48, what, &col, st};
    pst_status tmp = {0};
    rc = walk_block(index, n, what, visit_handle, &w, &tmp);
    free(index);
    if (rc < 0) {
        if (st && st->code == 0) *st = tmp;
        pst_sstable_free(t);
        return st ? st->code : PST_E_DATA_LOSS;
    }
    *out = t;
    return 0;
}

void pst_sstable_free(pst_sstable *t) {
    if (t == NULL) return;
    for (int i = 0; i < t->n; i++) {
        free(t->entries[i].key);
        free(t->entries[i].val);
    }
    free(t->entries);
    free(t);
}

const pst_sstable_entry *pst_sstable_find(const pst_sstable *t, const void *key, size_t klen) {
    int lo = 0, hi = t->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const pst_sstable_entry *e = &t->entries[mid];
        size_t m = klen < e->klen ? klen : e->klen;
        int c = m ? memcmp(e->key, key, m) : 0;
        if (c == 0) c = (e->klen > klen) - (e->klen < klen);
        if (c == 0) return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}
