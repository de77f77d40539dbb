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
    /* key may be NULL when klen is 0 (an empty last key): no pointer arithmetic on it. */
    if (klen > shared) buf_put(&bb->data, (const uint8_t *)key + shared, klen - shared);
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

/* ---- Reader ------------------------------------------------------------------------------
 *
 * The reader trusts nothing: every block's CRC is checked (metaindex included), the footer's
 * handles must be canonical varints followed by zero padding and must describe the file's
 * layout exactly (data blocks back to back from offset 0, then the metaindex block, then the
 * index block, then the footer), every block's restart array must agree with its entries, and
 * keys must increase strictly within and across blocks, with each index key separating its
 * block from the next. So a flipped bit anywhere in the file is an error, not a silently
 * different table. */

#define TRAILER 5 /* compression type + masked CRC after every block */

/* A varint in its shortest form (every LevelDB and TensorFlow writer emits that form): a
 * longer encoding of the same value is a corruption, not an alternative spelling. */
static size_t get_canonical_varint(const uint8_t *p, const uint8_t *end, uint64_t *v) {
    size_t n = pst_varint_get64(p, end, v);
    uint8_t tmp[PST_VARINT_MAX];
    return n && pst_varint_put64(tmp, *v) == n ? n : 0;
}

/* A block handle (offset, size) that must fill [p, end) exactly. */
static int get_handle(const uint8_t *p, const uint8_t *end, uint64_t *off, uint64_t *size) {
    size_t a = get_canonical_varint(p, end, off);
    size_t b = a ? get_canonical_varint(p + a, end, size) : 0;
    return b && p + a + b == end ? 0 : -1;
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    return c ? c : (an > bn) - (an < bn);
}

/* Returns the (possibly decompressed) block contents in *contents (malloc'd). `kind` names the
 * block in errors ("data", "index", "metaindex"). */
static int read_block(const uint8_t *buf, size_t len, uint64_t off, uint64_t size, const char *what,
                      const char *kind, uint8_t **contents, size_t *clen, pst_status *st) {
    if (off > len || size > len - off || len - off - size < TRAILER)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: %s block at %llu (+%llu) is past the end "
                              "of the file (%zu bytes)", what, kind, (unsigned long long)off,
                              (unsigned long long)size, len);
    const uint8_t *p = buf + off;
    uint8_t type = p[size];
    uint32_t want = pst_crc32c_unmask(get_fixed32(p + size + 1));
    uint32_t got = pst_crc32c(pst_crc32c(0, p, size), &type, 1);
    if (want != got)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: checksum mismatch in the %s block at "
                              "offset %llu", what, kind, (unsigned long long)off);
    if (type == 0) {
        *contents = malloc(size ? size : 1);
        PST_ASSERT(*contents != NULL);
        if (size) memcpy(*contents, p, size);
        *clen = size;
        return 0;
    }
    if (type == 1) {
        /* Snappy expands at most ~22x (a 3-byte copy emits 64 bytes): a larger claim in the
         * stream's header is a lie, refused before anything is allocated. */
        size_t ulen;
        if (snappy_uncompressed_length((const char *)p, size, &ulen) != SNAPPY_OK ||
            ulen > 32 * (size_t)size + 64)
            return pst_status_set(st, PST_E_DATA_LOSS, "%s: bad Snappy %s block at offset %llu",
                                  what, kind, (unsigned long long)off);
        *contents = malloc(ulen ? ulen : 1);
        PST_ASSERT(*contents != NULL);
        if (snappy_uncompress((const char *)p, size, (char *)*contents, &ulen) != SNAPPY_OK) {
            free(*contents);
            return pst_status_set(st, PST_E_DATA_LOSS, "%s: bad Snappy %s block at offset %llu",
                                  what, kind, (unsigned long long)off);
        }
        *clen = ulen;
        return 0;
    }
    return pst_status_set(st, PST_E_DATA_LOSS, "%s: unknown compression %d of the %s block at "
                          "offset %llu", what, type, kind, (unsigned long long)off);
}

/* Called for each entry of a block in order; sets st and returns a negative code to stop. */
typedef int (*entry_fn)(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val,
                        size_t vlen, pst_status *st);

/* Walks the entries of one block. The restart array must be consistent: at least one restart,
 * the first at offset 0, strictly increasing, each one the start of an entry that shares
 * nothing with the key before it; the entries must end exactly where the array begins. */
static int walk_block(const uint8_t *b, size_t n, const char *what, const char *kind,
                      uint64_t block_off, entry_fn fn, void *ctx, pst_status *st) {
    if (n < 4)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: %s block at offset %llu is too short",
                              what, kind, (unsigned long long)block_off);
    uint32_t nr = get_fixed32(b + n - 4);
    if (nr == 0 || (uint64_t)nr * 4 + 4 > n)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: %s block at offset %llu has a bad "
                              "restart count %u", what, kind, (unsigned long long)block_off, nr);
    size_t entries_end = n - 4 - 4 * (size_t)nr;
    const uint8_t *restarts = b + entries_end;
    if (get_fixed32(restarts) != 0)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: the restart array of the %s block at "
                              "offset %llu does not start at 0", what, kind,
                              (unsigned long long)block_off);
    const uint8_t *p = b, *end = b + entries_end;
    buf key = {0};
    uint32_t ri = 0; /* the next restart point to meet */
    int rc = 0;
    while (p < end) {
        size_t at = (size_t)(p - b);
        uint64_t shared, nonshared, vlen;
        size_t a = pst_varint_get64(p, end, &shared);
        size_t c = a ? pst_varint_get64(p + a, end, &nonshared) : 0;
        size_t d = c ? pst_varint_get64(p + a + c, end, &vlen) : 0;
        uint32_t r = ri < nr ? get_fixed32(restarts + 4 * ri) : UINT32_MAX;
        int bad = !d || r < at || (r == at && shared != 0);
        if (!bad) {
            p += a + c + d;
            bad = shared > key.n || nonshared > (size_t)(end - p) ||
                  vlen > (size_t)(end - p) - nonshared;
        }
        if (bad) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: corrupt entry at byte %zu of the %s "
                                "block at offset %llu", what, at, kind,
                                (unsigned long long)block_off);
            break;
        }
        if (r == at) ri++;
        key.n = shared;
        buf_put(&key, p, nonshared);
        p += nonshared;
        if ((rc = fn(ctx, key.p, key.n, p, vlen, st)) < 0) break;
        p += vlen;
    }
    /* Every restart point must have been an entry's start (an empty block has just [0]). */
    if (rc == 0 && !(ri == nr || (entries_end == 0 && nr == 1)))
        rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: the restart array of the %s block at "
                            "offset %llu does not match its entries", what, kind,
                            (unsigned long long)block_off);
    free(key.p);
    return rc;
}

typedef struct table_walk {
    const uint8_t *file;
    size_t body; /* bytes before the footer */
    const char *what;
    pst_sstable *t;
    int cap;
    uint64_t next_off;   /* where the next data block must start */
    int first_in_block;  /* the next entry is its block's first */
    buf sep;             /* a copy of the previous index key (the separator) */
    int has_sep;         /* 0 before the first index entry */
    uint64_t block_off;
} table_walk;

static int add_entry(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                     pst_status *st) {
    table_walk *w = ctx;
    pst_sstable *t = w->t;
    if (t->n > 0) {
        const pst_sstable_entry *l = &t->entries[t->n - 1];
        if (key_cmp((const uint8_t *)l->key, l->klen, key, klen) >= 0)
            return pst_status_set(st, PST_E_DATA_LOSS, "%s: keys out of order or duplicated in "
                                  "the data block at offset %llu", w->what,
                                  (unsigned long long)w->block_off);
    }
    /* A block's first key must come after the separator that ended the block before it. */
    if (w->first_in_block && w->has_sep && key_cmp(key, klen, w->sep.p, w->sep.n) <= 0)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: the data block at offset %llu starts "
                              "before its index key", w->what, (unsigned long long)w->block_off);
    w->first_in_block = 0;
    if (t->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        t->entries = realloc(t->entries, (size_t)w->cap * sizeof *t->entries);
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

/* One index entry: the handle of the next data block, which must follow the previous one
 * directly; its entries are collected, and its last key must not exceed the index key. */
static int visit_handle(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val,
                        size_t vlen, pst_status *st) {
    table_walk *w = ctx;
    uint64_t off, size;
    if (get_handle(val, val + vlen, &off, &size) < 0)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: corrupt block handle in the index block",
                              w->what);
    if (off != w->next_off)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: the index block lists a data block at "
                              "offset %llu where one at %llu was expected", w->what,
                              (unsigned long long)off, (unsigned long long)w->next_off);
    if (w->has_sep && key_cmp(w->sep.p, w->sep.n, key, klen) >= 0)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: index keys out of order", w->what);
    uint8_t *blk;
    size_t n;
    int rc = read_block(w->file, w->body, off, size, w->what, "data", &blk, &n, st);
    if (rc < 0) return rc;
    int before = w->t->n;
    w->first_in_block = 1;
    w->block_off = off;
    rc = walk_block(blk, n, w->what, "data", off, add_entry, w, st);
    free(blk);
    if (rc < 0) return rc;
    if (w->t->n == before)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: the data block at offset %llu is empty",
                              w->what, (unsigned long long)off);
    const pst_sstable_entry *last = &w->t->entries[w->t->n - 1];
    if (key_cmp((const uint8_t *)last->key, last->klen, key, klen) > 0)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: the data block at offset %llu ends after "
                              "its index key", w->what, (unsigned long long)off);
    w->sep.n = 0;
    buf_put(&w->sep, key, klen);
    w->has_sep = 1;
    w->next_off = off + size + TRAILER;
    return 0;
}

/* The metaindex block names filter blocks, which TensorFlow's bundles never have; its
 * entries only need to parse in increasing order. */
static int visit_meta(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      pst_status *st) {
    (void)val;
    (void)vlen;
    table_walk *w = ctx;
    if (w->has_sep && key_cmp(w->sep.p, w->sep.n, key, klen) >= 0)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: metaindex keys out of order", w->what);
    w->sep.n = 0;
    buf_put(&w->sep, key, klen);
    w->has_sep = 1;
    return 0;
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
    /* Footer: metaindex handle, index handle, zero padding to 40 bytes. */
    uint64_t moff, msize, ioff, isize;
    size_t a = get_canonical_varint(f, f + 40, &moff);
    size_t b = a ? get_canonical_varint(f + a, f + 40, &msize) : 0;
    size_t c = b ? get_canonical_varint(f + a + b, f + 40, &ioff) : 0;
    size_t d = c ? get_canonical_varint(f + a + b + c, f + 40, &isize) : 0;
    int bad = !d;
    for (size_t i = a + b + c + d; !bad && i < 40; i++) bad = f[i] != 0;
    if (bad) return pst_status_set(st, PST_E_DATA_LOSS, "%s: corrupt footer", what);
    /* Data blocks, then the metaindex block, then the index block, then the footer. */
    size_t body = len - 48;
    if (moff > body || msize > body - moff || body - moff - msize < TRAILER ||
        ioff != moff + msize + TRAILER || isize > body - ioff || body - ioff - isize != TRAILER)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: the footer's block handles (metaindex at "
                              "%llu+%llu, index at %llu+%llu) do not match the file's %zu bytes",
                              what, (unsigned long long)moff, (unsigned long long)msize,
                              (unsigned long long)ioff, (unsigned long long)isize, len);
    uint8_t *meta, *index;
    size_t mn, n;
    int rc = read_block(buf, body, moff, msize, what, "metaindex", &meta, &mn, st);
    if (rc < 0) return rc;
    table_walk mw = {.what = what};
    rc = walk_block(meta, mn, what, "metaindex", moff, visit_meta, &mw, st);
    free(meta);
    free(mw.sep.p);
    if (rc < 0) return rc;
    if ((rc = read_block(buf, body, ioff, isize, what, "index", &index, &n, st)) < 0) return rc;
    pst_sstable *t = calloc(1, sizeof *t);
    PST_ASSERT(t != NULL);
    table_walk w = {.file = buf, .body = body, .what = what, .t = t};
    rc = walk_block(index, n, what, "index", ioff, visit_handle, &w, st);
    if (rc == 0 && w.next_off != moff)
        rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: the data blocks end at offset %llu but the "
                            "metaindex block starts at %llu", what,
                            (unsigned long long)w.next_off, (unsigned long long)moff);
    free(index);
    free(w.sep.p);
    if (rc < 0) {
        pst_sstable_free(t);
        return rc;
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
