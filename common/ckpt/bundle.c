#define _GNU_SOURCE /* O_DIRECT */
#include "bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "varint.h"
#include "file.h"
#include "kernels_ew.h"
#include "metagraph.h"
#include "sstable.h"
#include "strmap.h"
#include "tf_bundle.pb-c.h"

/* ---- Writer ----------------------------------------------------------------------------- */

typedef struct wslice {
    int64_t start[PST_MAX_RANK], len[PST_MAX_RANK];
} wslice;

typedef struct wentry {
    char *name; /* key bytes (slice keys contain NULs) */
    pst_dtype dtype;
    pst_shape shape;
    int64_t offset, size;
    uint32_t crc;
    size_t klen;
    int n_slices; /* a partitioned variable's full-name entry */
    wslice *slices;
} wentry;

struct pst_bundle_writer {
    char *prefix;
    char data_tmp[4300], data_path[4200];
    int fd;
    int direct_fd; /* the same file opened with O_DIRECT, or -1 */
    int64_t offset;
    wentry *e;
    int n, cap;
    pst_strmap *names;
};

pst_bundle_writer *pst_bundle_writer_new(const char *prefix, pst_status *st) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", prefix);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (pst_file_make_dirs(dir, st) < 0) return NULL;
    }
    pst_bundle_writer *w = calloc(1, sizeof *w);
    PST_ASSERT(w != NULL);
    w->prefix = strdup(prefix);
    snprintf(w->data_path, sizeof w->data_path, "%s.data-00000-of-00001", prefix);
    snprintf(w->data_tmp, sizeof w->data_tmp, "%.4000s.tempstate%ld", w->data_path, (long)getpid());
    w->fd = open(w->data_tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (w->fd < 0) {
        pst_status_set(st, PST_E_IO, "cannot create %s: %s", w->data_tmp, strerror(errno));
        free(w->prefix);
        free(w);
        return NULL;
    }
    /* Large page-aligned tensors bypass the page cache: much faster to disk on big saves. */
    w->direct_fd = open(w->data_tmp, O_WRONLY | O_DIRECT);
    w->names = pst_strmap_new();
    return w;
}

#define DIRECT_MIN ((size_t)1 << 20)
#define DIRECT_ALIGN 4096

static int ppst_file_write_all(int fd, const void *buf, size_t len, int64_t off, const char *path,
                      pst_status *st) {
    const char *p = buf;
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len > (1u << 30) ? (1u << 30) : len, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return pst_status_set(st, PST_E_IO, "writing %s: %s", path, strerror(errno));
        p += w;
        len -= (size_t)w;
        off += w;
    }
    return 0;
}

/* Writes t at the current offset: big page-aligned tensors start on a page boundary (the
 * entry records the offset, so the gap is harmless to readers) and go out with O_DIRECT. */
static int write_tensor(pst_bundle_writer *w, const pst_tensor *t, int64_t *at, pst_status *st) {
    const char *data = t->data;
    size_t n = t->nbytes;
    int direct = w->direct_fd >= 0 && n >= DIRECT_MIN && ((uintptr_t)data % DIRECT_ALIGN) == 0;
    if (direct) w->offset = (w->offset + DIRECT_ALIGN - 1) / DIRECT_ALIGN * DIRECT_ALIGN;
    *at = w->offset;
    int rc = 0;
    if (direct) {
        size_t head = n / DIRECT_ALIGN * DIRECT_ALIGN;
        if (ppst_file_write_all(w->direct_fd, data, head, w->offset, w->data_tmp, NULL) == 0) {
            rc = ppst_file_write_all(w->fd, data + head, n - head, w->offset + (int64_t)head, w->data_tmp, st);
        } else {
            rc = ppst_file_write_all(w->fd, data, n, w->offset, w->data_tmp, st); /* the file system said no */
        }
    } else if (n > 0) {
        rc = ppst_file_write_all(w->fd, data, n, w->offset, w->data_tmp, st);
    }
    if (rc == 0) w->offset += (int64_t)n;
    return rc;
}

/* TF's layout of a string tensor in a data file: every element's length as a varint64, the
 * masked CRC-32C of those varints (4 bytes, little-endian), then the elements' bytes. The
 * entry's checksum covers all of it. Returns a malloc'd buffer and its length. */
static uint8_t *string_tensor_bytes(const pst_tensor *t, size_t *len, pst_status *st) {
    size_t n = 4;
    for (int64_t i = 0; i < t->n; i++) {
        uint8_t v[PST_VARINT_MAX];
        n += pst_varint_put64(v, pst_tensor_str(t)[i].len) + pst_tensor_str(t)[i].len;
    }
    uint8_t *b = malloc(n), *p = b;
    if (b == NULL) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a %zu-byte string tensor", n);
        return NULL;
    }
    for (int64_t i = 0; i < t->n; i++) p += pst_varint_put64(p, pst_tensor_str(t)[i].len);
    uint32_t m = pst_crc32c_mask(pst_crc32c(0, b, (size_t)(p - b)));
    for (int k = 0; k < 4; k++) *p++ = (uint8_t)(m >> (8 * k));
    for (int64_t i = 0; i < t->n; i++) {
        if (pst_tensor_str(t)[i].len) memcpy(p, pst_tensor_str(t)[i].p, pst_tensor_str(t)[i].len);
        p += pst_tensor_str(t)[i].len;
    }
    *len = n;
    return b;
}

/* Parses string_tensor_bytes' layout into t (its shape set); 0 or -1 when malformed. */
static int string_tensor_parse(pst_tensor *t, const uint8_t *b, size_t n) {
    const uint8_t *p = b, *end = b + n;
    uint64_t *lens = malloc(((size_t)t->n + 1) * sizeof *lens);
    int rc = lens ? 0 : -1;
    for (int64_t i = 0; i < t->n && rc == 0; i++) {
        size_t k = pst_varint_get64(p, end, &lens[i]);
        if (k == 0) rc = -1;
        p += k;
    }
    if (rc == 0 && end - p < 4) rc = -1;
    if (rc == 0) {
        uint32_t m = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        if (m != pst_crc32c_mask(pst_crc32c(0, b, (size_t)(p - b)))) rc = -1;
        p += 4;
    }
    for (int64_t i = 0; i < t->n && rc == 0; i++) {
        if (lens[i] > (uint64_t)(end - p) ||
            pst_tstring_set(&pst_tensor_str(t)[i], p, (size_t)lens[i]) < 0)
            rc = -1;
        else
            p += lens[i];
    }
    if (rc == 0 && p != end) rc = -1;
    free(lens);
    return rc;
}

int pst_bundle_writer_add(pst_bundle_writer *w, const char *name, const pst_tensor *t,
                          pst_status *st) {
    if (pst_strmap_has(w->names, name))
        return pst_status_set(st, PST_E_EXISTS, "tensor '%s' added twice to %s", name, w->prefix);
    int64_t at;
    int rc;
    uint8_t *sb = NULL;
    size_t slen = 0;
    if (t->dtype == PST_STRING) {
        if ((sb = string_tensor_bytes(t, &slen, st)) == NULL) return PST_E_EXHAUSTED;
        at = w->offset;
        rc = ppst_file_write_all(w->fd, sb, slen, w->offset, w->data_tmp, st);
        if (rc == 0) w->offset += (int64_t)slen;
    } else {
        rc = write_tensor(w, t, &at, st);
    }
    if (rc < 0) {
        free(sb);
        return rc;
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 32;
        w->e = realloc(w->e, (size_t)w->cap * sizeof *w->e);
        PST_ASSERT(w->e != NULL);
    }
    wentry *e = &w->e[w->n++];
    if (sb)
        *e = (wentry){strdup(name), t->dtype, t->shape, at, (int64_t)slen, pst_crc32c(0, sb, slen),
                      strlen(name), 0, NULL};
    else
        *e = (wentry){strdup(name), t->dtype, t->shape, at, (int64_t)t->nbytes,
                      pst_crc32c(0, t->data, t->nbytes), strlen(name), 0, NULL};
    free(sb);
    pst_strmap_put(w->names, name, (void *)(intptr_t)w->n);
    return 0;
}

/* ---- Slice keys (FORMATS.md): NumIncreasing(0), String(name), NumIncreasing(rank), then per
 * dimension SignedNumIncreasing(start), SignedNumIncreasing(length). */

static size_t num_increasing(uint64_t v, uint8_t *out) {
    uint8_t be[8];
    int n = 0;
    while (v) {
        be[n++] = (uint8_t)v;
        v >>= 8;
    }
    out[0] = (uint8_t)n;
    for (int i = 0; i < n; i++) out[1 + i] = be[n - 1 - i];
    return (size_t)n + 1;
}

static size_t signed_num_increasing(int64_t v, uint8_t *out) {
    uint64_t x = v < 0 ? ~(uint64_t)v : (uint64_t)v;
    if (x < 64) {
        out[0] = (uint8_t)(0x80 ^ (uint8_t)v);
        return 1;
    }
    int bits = 64 - __builtin_clzll(x); /* x >= 64 */
    int len = 2;
    while (len < 10 && bits > 7 * len - 1) len++;
    uint8_t buf[10];
    uint8_t sign = v < 0 ? 0xff : 0x00;
    buf[0] = buf[1] = sign;
    for (int i = 0; i < 8; i++) buf[2 + i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
    static const uint8_t hdr[11][2] = {{0, 0},    {0x80, 0}, {0xc0, 0}, {0xe0, 0},
                                       {0xf0, 0}, {0xf8, 0}, {0xfc, 0}, {0xfe, 0},
                                       {0xff, 0}, {0xff, 0x80}, {0xff, 0xc0}};
    uint8_t *b = buf + 10 - len;
    b[0] ^= hdr[len][0];
    b[1] ^= hdr[len][1];
    memcpy(out, b, (size_t)len);
    return (size_t)len;
}

size_t pst_bundle_slice_key(const char *name, int rank, const int64_t *start, const int64_t *len,
                            uint8_t *out) {
    size_t n = num_increasing(0, out);
    for (const char *p = name; *p; p++) {
        uint8_t c = (uint8_t)*p;
        out[n++] = c;
        if (c == 0xff) out[n++] = 0x00;
    }
    out[n++] = 0x00;
    out[n++] = 0x01;
    n += num_increasing((uint64_t)rank, out + n);
    for (int d = 0; d < rank; d++) {
        n += signed_num_increasing(start[d], out + n);
        n += signed_num_increasing(len[d], out + n);
    }
    return n;
}

/* The slice key of (name, rank, start, len) in a malloc'd buffer (names have any length). */
static uint8_t *slice_key_new(const char *name, int rank, const int64_t *start, const int64_t *len,
                              size_t *klen) {
    uint8_t *key = malloc(2 * strlen(name) + 16 + 24 * (size_t)rank);
    PST_ASSERT(key != NULL);
    *klen = pst_bundle_slice_key(name, rank, start, len, key);
    return key;
}

int pst_bundle_writer_add_slice(pst_bundle_writer *w, const char *full_name, pst_shape full_shape,
                                const int64_t *start, const int64_t *len, const pst_tensor *t,
                                pst_status *st) {
    if (t->dtype == PST_STRING)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "'%s': slices of string tensors are not "
                              "supported", full_name);
    for (int d = 0; d < full_shape.rank; d++)
        if (start[d] < 0 || len[d] != t->shape.dims[d] || start[d] + len[d] > full_shape.dims[d])
            return pst_status_set(st, PST_E_INVALID, "slice of '%s' does not fit its full shape",
                                  full_name);
    int64_t at;
    int rc = write_tensor(w, t, &at, st);
    if (rc < 0) return rc;
    /* TensorFlow's key for a slice: a dimension the slice covers whole (start 0, the full
     * length) is spelled with length -1, as TF's reader computes it from the slice's proto
     * (whose extent for that dimension carries no length). */
    int64_t key_len[PST_MAX_RANK];
    for (int d = 0; d < full_shape.rank; d++)
        key_len[d] = start[d] == 0 && len[d] == full_shape.dims[d] ? -1 : len[d];
    size_t klen;
    uint8_t *kcopy = slice_key_new(full_name, full_shape.rank, start, key_len, &klen);
    intptr_t full = (intptr_t)pst_strmap_get(w->names, full_name);
    if (w->n + 2 > w->cap) {
        w->cap = w->cap ? w->cap * 2 : 32;
        w->e = realloc(w->e, (size_t)w->cap * sizeof *w->e);
        PST_ASSERT(w->e != NULL);
    }
    w->e[w->n++] = (wentry){(char *)kcopy, t->dtype, t->shape, at, (int64_t)t->nbytes,
                            pst_crc32c(0, t->data, t->nbytes), klen, 0, NULL};
    if (full == 0) {
        w->e[w->n++] = (wentry){strdup(full_name), t->dtype, full_shape, 0, 0, 0, strlen(full_name), 0, NULL};
        full = w->n;
        pst_strmap_put(w->names, full_name, (void *)full);
    }
    wentry *fe = &w->e[full - 1];
    if (fe->dtype != t->dtype || !pst_shape_equal(&fe->shape, &full_shape))
        return pst_status_set(st, PST_E_INVALID, "slices of '%s' disagree on dtype or full shape",
                              full_name);
    fe->slices = realloc(fe->slices, (size_t)(fe->n_slices + 1) * sizeof *fe->slices);
    wslice *sl = &fe->slices[fe->n_slices++];
    for (int d = 0; d < full_shape.rank; d++) {
        sl->start[d] = start[d];
        sl->len[d] = len[d];
    }
    return 0;
}

static int cmp_wentry(const void *a, const void *b) {
    const wentry *x = a, *y = b;
    size_t m = x->klen < y->klen ? x->klen : y->klen;
    int c = m ? memcmp(x->name, y->name, m) : 0;
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static void writer_free(pst_bundle_writer *w) {
    for (int i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].slices);
    }
    free(w->e);
    pst_strmap_free(w->names);
    free(w->prefix);
    free(w);
}

void pst_bundle_writer_abort(pst_bundle_writer *w) {
    if (w == NULL) return;
    if (w->fd >= 0) close(w->fd);
    if (w->direct_fd >= 0) close(w->direct_fd);
    unlink(w->data_tmp);
    writer_free(w);
}

static size_t pack_entry(const wentry *e, uint8_t **out) {
    Tensorflow__BundleEntryProto p = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT;
    Tensorflow__TensorShapeProto sh = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    Tensorflow__TensorShapeProto__Dim dims[PST_MAX_RANK], *dp[PST_MAX_RANK];
    for (int i = 0; i < e->shape.rank; i++) {
        Tensorflow__TensorShapeProto__Dim d = TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT;
        dims[i] = d;
        dims[i].size = e->shape.dims[i];
        dp[i] = &dims[i];
    }
    sh.n_dim = (size_t)e->shape.rank;
    sh.dim = dp;
    p.dtype = (Tensorflow__DataType)e->dtype;
    p.shape = &sh;
    p.offset = e->offset;
    p.size = e->size;
    p.crc32c = e->n_slices ? 0 : pst_crc32c_mask(e->crc);
    /* A full-name entry lists its slices; a dimension the slice covers whole has no extent. */
    Tensorflow__TensorSliceProto **sp = NULL;
    Tensorflow__TensorSliceProto__Extent *ext = NULL, **ep = NULL;
    if (e->n_slices) {
        int r = e->shape.rank;
        sp = calloc((size_t)e->n_slices, sizeof *sp);
        Tensorflow__TensorSliceProto *slices = calloc((size_t)e->n_slices, sizeof *slices);
        ext = calloc((size_t)(e->n_slices * r) + 1, sizeof *ext);
        ep = calloc((size_t)(e->n_slices * r) + 1, sizeof *ep);
        for (int i = 0; i < e->n_slices; i++) {
            Tensorflow__TensorSliceProto init = TENSORFLOW__TENSOR_SLICE_PROTO__INIT;
            slices[i] = init;
            slices[i].n_extent = (size_t)r;
            slices[i].extent = ep + i * r;
            for (int d = 0; d < r; d++) {
                Tensorflow__TensorSliceProto__Extent x = TENSORFLOW__TENSOR_SLICE_PROTO__EXTENT__INIT;
                ext[i * r + d] = x;
                if (!(e->slices[i].start[d] == 0 && e->slices[i].len[d] == e->shape.dims[d])) {
                    ext[i * r + d].start = e->slices[i].start[d];
                    ext[i * r + d].length = e->slices[i].len[d];
                }
                ep[i * r + d] = &ext[i * r + d];
            }
            sp[i] = &slices[i];
        }
        p.n_slices = (size_t)e->n_slices;
        p.slices = sp;
    }
    size_t n = tensorflow__bundle_entry_proto__get_packed_size(&p);
    *out = malloc(n ? n : 1);
    PST_ASSERT(*out != NULL);
    size_t packed = tensorflow__bundle_entry_proto__pack(&p, *out);
    if (sp) {
        free(sp[0]);
        free(sp);
        free(ext);
        free(ep);
    }
    return packed;
}

int pst_bundle_writer_finish(pst_bundle_writer *w, pst_status *st) {
    int rc = 0;
    if (ftruncate(w->fd, (off_t)w->offset) < 0 || fsync(w->fd) < 0)
        rc = pst_status_set(st, PST_E_IO, "fsync %s: %s", w->data_tmp, strerror(errno));
    close(w->fd);
    if (w->direct_fd >= 0) close(w->direct_fd);
    w->fd = w->direct_fd = -1;
    if (rc == 0 && rename(w->data_tmp, w->data_path) < 0)
        rc = pst_status_set(st, PST_E_IO, "rename %s: %s", w->data_tmp, strerror(errno));
    if (rc) {
        unlink(w->data_tmp);
        writer_free(w);
        return rc;
    }
    if (w->n > 1) qsort(w->e, (size_t)w->n, sizeof *w->e, cmp_wentry);
    pst_sstable_builder *b = pst_sstable_builder_new();
    Tensorflow__BundleHeaderProto h = TENSORFLOW__BUNDLE_HEADER_PROTO__INIT;
    Tensorflow__VersionDef v = TENSORFLOW__VERSION_DEF__INIT;
    v.producer = 1;
    h.num_shards = 1;
    h.version = &v;
    uint8_t hb[64];
    size_t hn = tensorflow__bundle_header_proto__pack(&h, hb);
    pst_sstable_add(b, "", 0, hb, hn);
    for (int i = 0; i < w->n; i++) {
        uint8_t *eb;
        size_t en = pack_entry(&w->e[i], &eb);
        pst_sstable_add(b, w->e[i].name, w->e[i].klen, eb, en);
        free(eb);
    }
    uint8_t *idx;
    size_t ilen;
    pst_sstable_finish(b, &idx, &ilen);
    char path[4200];
    snprintf(path, sizeof path, "%s.index", w->prefix);
    rc = pst_file_write_atomic(path, idx, ilen, st);
    free(idx);
    /* No index, no checkpoint: the data file would only take space (e.g. on a full disk). */
    if (rc < 0) unlink(w->data_path);
    writer_free(w);
    return rc;
}

/* ---- Reader ----------------------------------------------------------------------------- */

typedef struct rslice_key {
    uint8_t *key;
    size_t klen;
    pst_bundle_entry e; /* name unused */
} rslice_key;

struct pst_bundle_reader {
    char *prefix;
    int num_shards;
    int n;
    pst_bundle_entry *e;
    int64_t (*extents)[2 * PST_MAX_RANK]; /* per named entry: slices' start/len, flattened */
    unsigned *ext_whole;                 /* per extent: bit d set when dim d had no length */
    int *ext_first;                      /* index of each entry's first slice in extents */
    int n_ext;
    rslice_key *sk;                      /* slice-data entries, sorted by key */
    int n_sk;
    int *fds;
    int *direct_fds; /* the shards opened with O_DIRECT (-1 when unavailable) */
    int64_t *shard_size;
};

void pst_bundle_reader_free(pst_bundle_reader *r) {
    if (r == NULL) return;
    for (int i = 0; i < r->n; i++) free((char *)r->e[i].name);
    free(r->e);
    for (int i = 0; i < r->n_sk; i++) free(r->sk[i].key);
    free(r->sk);
    free(r->extents);
    free(r->ext_whole);
    free(r->ext_first);
    for (int i = 0; r->fds && i < r->num_shards; i++) {
        if (r->fds[i] >= 0) close(r->fds[i]);
        if (r->direct_fds[i] >= 0) close(r->direct_fds[i]);
    }
    free(r->fds);
    free(r->direct_fds);
    free(r->shard_size);
    free(r->prefix);
    free(r);
}

/* The tensor-bundle version pstrain reads and writes (TensorFlow's kTensorBundleVersion). */
#define BUNDLE_VERSION 1
#define MAX_SHARDS 100000
#define MAX_SLICES 4096 /* per variable; the overlap check is quadratic */

/* protobuf-c keeps the fields it does not know. In an index entry they can only come from
 * corruption (every field of BundleHeaderProto and BundleEntryProto is declared), so a message
 * holding one, at any depth, is refused: the entry must parse fully. */
static int has_unknown_fields(const ProtobufCMessage *m) {
    if (m == NULL) return 0;
    if (m->n_unknown_fields) return 1;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
            ProtobufCMessage *const *arr =
                *(ProtobufCMessage *const *const *)(const void *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (has_unknown_fields(arr[k])) return 1;
        } else {
            const ProtobufCMessage *sub =
                *(ProtobufCMessage *const *)(const void *)(base + f->offset);
            if (has_unknown_fields(sub)) return 1;
        }
    }
    return 0;
}

/* The header entry (key ""): it must parse fully and describe what this reader can read: 1 to
 * MAX_SHARDS shards, little-endian data, a version this consumer is allowed to read. */
static int read_header(const pst_sstable *t, const char *path, int *num_shards, pst_status *st) {
    if (t->n == 0 || t->entries[0].klen != 0)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: no bundle header entry", path);
    Tensorflow__BundleHeaderProto *h =
        tensorflow__bundle_header_proto__unpack(NULL, t->entries[0].vlen, t->entries[0].val);
    char why[160] = "";
    if (h == NULL || has_unknown_fields(&h->base)) {
        snprintf(why, sizeof why, "it does not parse");
    } else if (h->num_shards < 1 || h->num_shards > MAX_SHARDS) {
        snprintf(why, sizeof why, "num_shards %d", (int)h->num_shards);
    } else if (h->endianness != TENSORFLOW__BUNDLE_HEADER_PROTO__ENDIANNESS__LITTLE) {
        snprintf(why, sizeof why, "endianness %d: only little-endian data is read",
                 (int)h->endianness);
    } else if (h->version) {
        const Tensorflow__VersionDef *v = h->version;
        int bad_consumer = 0;
        for (size_t k = 0; k < v->n_bad_consumers; k++)
            bad_consumer |= v->bad_consumers[k] == BUNDLE_VERSION;
        if (v->producer < 0 || v->min_consumer > BUNDLE_VERSION || bad_consumer)
            snprintf(why, sizeof why, "version (producer %d, min_consumer %d%s) is not readable by "
                     "consumer version %d", (int)v->producer, (int)v->min_consumer,
                     bad_consumer ? ", this consumer marked bad" : "", BUNDLE_VERSION);
    }
    if (h) *num_shards = h->num_shards;
    if (h) tensorflow__bundle_header_proto__free_unpacked(h, NULL);
    if (why[0]) return pst_status_set(st, PST_E_DATA_LOSS, "%s: bad bundle header (%s)", path, why);
    return 0;
}

static const rslice_key *lookup_slice(const pst_bundle_reader *r, const char *name, int rank,
                                      int ext);

/* A partitioned variable's slices must tile its full shape exactly: each inside the shape,
 * none overlapping another, their volumes adding up to the whole, each stored under its key
 * with the variable's dtype and the slice's shape. Checked when the index is opened, so the
 * full tensor a read allocates is never larger than the slices' data. */
static int check_slices(const pst_bundle_reader *r, int i, const char *path, pst_status *st) {
    const pst_bundle_entry *e = &r->e[i];
    int rank = e->shape.rank, first = r->ext_first[i];
    int64_t full = 1, total = 0;
    for (int d = 0; d < rank; d++) full *= e->shape.dims[d]; /* no overflow: checked at open */
    for (int k = 0; k < e->n_slices; k++) {
        const int64_t *x = r->extents[first + k];
        int64_t vol = 1;
        int ok = 1;
        for (int d = 0; d < rank && ok; d++)
            ok = x[d] >= 0 && x[PST_MAX_RANK + d] >= 1 && x[d] <= e->shape.dims[d] &&
                 x[PST_MAX_RANK + d] <= e->shape.dims[d] - x[d];
        for (int d = 0; d < rank && ok; d++) vol *= x[PST_MAX_RANK + d];
        for (int j = 0; j < k && ok; j++) {
            const int64_t *y = r->extents[first + j];
            int overlap = 1;
            for (int d = 0; d < rank && overlap; d++)
                overlap = x[d] < y[d] + y[PST_MAX_RANK + d] && y[d] < x[d] + x[PST_MAX_RANK + d];
            ok = !overlap;
        }
        if (!ok)
            return pst_status_set(st, PST_E_DATA_LOSS, "%s: slice %d of tensor '%s' lies outside "
                                  "its shape or overlaps another slice", path, k, e->name);
        const rslice_key *sk = lookup_slice(r, e->name, rank, first + k);
        int match = sk && sk->e.dtype == e->dtype && sk->e.shape.rank == rank;
        for (int d = 0; match && d < rank; d++) match = sk->e.shape.dims[d] == x[PST_MAX_RANK + d];
        if (!match)
            return pst_status_set(st, PST_E_DATA_LOSS, "%s: slice %d of tensor '%s' is %s", path,
                                  k, e->name,
                                  sk ? "stored with another dtype or shape" : "missing");
        total += vol;
    }
    if (total != full)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: the slices of tensor '%s' cover %lld of "
                              "its %lld elements", path, e->name, (long long)total,
                              (long long)full);
    return 0;
}

pst_bundle_reader *pst_bundle_reader_open(const char *prefix, pst_status *st) {
    char path[4200];
    snprintf(path, sizeof path, "%s.index", prefix);
    uint8_t *buf;
    size_t len;
    if (pst_file_read(path, (size_t)1 << 30, &buf, &len, st) < 0) return NULL;
    pst_sstable *t;
    int rc = pst_sstable_parse(buf, len, path, &t, st);
    free(buf);
    if (rc < 0) return NULL;
    pst_bundle_reader *r = calloc(1, sizeof *r);
    PST_ASSERT(r != NULL);
    r->prefix = strdup(prefix);
    r->e = calloc((size_t)t->n + 1, sizeof *r->e);
    PST_ASSERT(r->e != NULL);
    if (read_header(t, path, &r->num_shards, st) < 0) {
        r->num_shards = 0;
        goto fail;
    }
    r->fds = malloc((size_t)r->num_shards * sizeof *r->fds);
    r->direct_fds = malloc((size_t)r->num_shards * sizeof *r->direct_fds);
    r->shard_size = calloc((size_t)r->num_shards, sizeof *r->shard_size);
    PST_ASSERT(r->fds && r->direct_fds && r->shard_size);
    for (int i = 0; i < r->num_shards; i++) r->fds[i] = r->direct_fds[i] = -1;
    r->sk = calloc((size_t)t->n + 1, sizeof *r->sk);
    r->ext_first = calloc((size_t)t->n + 1, sizeof *r->ext_first);
    PST_ASSERT(r->sk && r->ext_first);
    for (int i = 1; i < t->n; i++) {
        const pst_sstable_entry *se = &t->entries[i];
        /* Slice keys start with a NUL byte; a tensor name holds none (it is a C string). */
        int is_slice = se->klen > 0 && se->key[0] == 0;
        if (!is_slice && memchr(se->key, 0, se->klen) != NULL) {
            pst_status_set(st, PST_E_DATA_LOSS, "%s: entry %d has a key with a NUL byte", path, i);
            goto fail;
        }
        Tensorflow__BundleEntryProto *p =
            tensorflow__bundle_entry_proto__unpack(NULL, se->vlen, se->val);
        pst_bundle_entry *e;
        if (is_slice) {
            rslice_key *k = &r->sk[r->n_sk++];
            k->key = malloc(se->klen);
            memcpy(k->key, se->key, se->klen);
            k->klen = se->klen;
            e = &k->e;
            e->name = NULL;
        } else {
            e = &r->e[r->n];
            e->name = strdup(se->key);
            r->ext_first[r->n] = r->n_ext;
            r->n++;
        }
        if (p == NULL || has_unknown_fields(&p->base)) {
            pst_status_set(st, PST_E_DATA_LOSS, "%s: cannot parse the entry of tensor '%s'", path,
                           is_slice ? "(a slice)" : se->key);
            if (p) tensorflow__bundle_entry_proto__free_unpacked(p, NULL);
            goto fail;
        }
        e->dtype = (pst_dtype)p->dtype;
        e->shard_id = p->shard_id;
        e->offset = p->offset;
        e->size = p->size;
        e->crc32c = pst_crc32c_unmask(p->crc32c);
        e->n_slices = (int)p->n_slices;
        int bad = !pst_dtype_valid(e->dtype) || p->shard_id < 0 || p->shard_id >= r->num_shards ||
                  p->offset < 0 || p->size < 0 || !p->shape || p->shape->n_dim > PST_MAX_RANK ||
                  p->shape->unknown_rank || p->n_slices > MAX_SLICES || (is_slice && p->n_slices);
        for (size_t k = 0; !bad && k < p->n_slices; k++)
            bad = p->slices[k]->n_extent != p->shape->n_dim;
        if (!bad && p->n_slices > 0) {
            r->extents = realloc(r->extents, (size_t)(r->n_ext + (int)p->n_slices) * sizeof *r->extents);
            r->ext_whole = realloc(r->ext_whole, (size_t)(r->n_ext + (int)p->n_slices) * sizeof *r->ext_whole);
            PST_ASSERT(r->extents != NULL && r->ext_whole != NULL);
            int rank = (int)p->shape->n_dim;
            for (size_t k = 0; k < p->n_slices; k++) {
                r->ext_whole[r->n_ext] = 0;
                int64_t *x = r->extents[r->n_ext++];
                for (int d = 0; d < PST_MAX_RANK; d++) {
                    const Tensorflow__TensorSliceProto__Extent *ex =
                        d < rank ? p->slices[k]->extent[d] : NULL;
                    /* A dimension the slice covers whole has neither start nor length. */
                    int whole = ex == NULL || (ex->start == 0 && ex->length == 0);
                    int64_t dim = d < rank ? p->shape->dim[d]->size : 1;
                    if (whole && d < rank) r->ext_whole[r->n_ext - 1] |= 1u << d;
                    x[d] = whole ? 0 : ex->start;
                    x[PST_MAX_RANK + d] = whole ? dim : ex->length;
                }
            }
        }
        int64_t elems = 1;
        if (!bad) {
            e->shape.rank = (int)p->shape->n_dim;
            for (int d = 0; d < e->shape.rank && !bad; d++) {
                e->shape.dims[d] = p->shape->dim[d]->size;
                if (e->shape.dims[d] < 0 || pst_mul_overflow_i64(elems, e->shape.dims[d], &elems)) bad = 1;
            }
            int64_t bytes;
            if (!bad && e->dtype == PST_STRING) {
                /* Variable-length: at least the 4-byte length checksum and one length byte per
                 * element; the bytes themselves are checked when read. */
                if (e->n_slices || e->size < 4 || (e->size - 4) < elems) bad = 2;
            } else if (!bad && (pst_mul_overflow_i64(elems, (int64_t)pst_dtype_size(e->dtype), &bytes) ||
                         (e->n_slices == 0 && bytes != e->size))) {
                bad = 2;
            }
        }
        tensorflow__bundle_entry_proto__free_unpacked(p, NULL);
        if (bad) {
            pst_status_set(st, PST_E_DATA_LOSS, "%s: tensor '%s' has an invalid entry (%s)", path,
                           is_slice ? "(a slice)" : se->key,
                           bad == 2 ? "size does not match dtype and shape"
                                    : "bad dtype, shard, offset, size, shape or slices");
            goto fail;
        }
    }
    for (int i = 0; i < r->n; i++)
        if (r->e[i].n_slices > 0 && check_slices(r, i, path, st) < 0) goto fail;
    pst_sstable_free(t);
    return r;
fail:
    pst_sstable_free(t);
    pst_bundle_reader_free(r);
    return NULL;
}

int pst_bundle_reader_num_shards(const pst_bundle_reader *r) { return r->num_shards; }
int pst_bundle_reader_num_entries(const pst_bundle_reader *r) { return r->n; }
const pst_bundle_entry *pst_bundle_reader_entry(const pst_bundle_reader *r, int i) {
    return i >= 0 && i < r->n ? &r->e[i] : NULL;
}
const pst_bundle_entry *pst_bundle_reader_find(const pst_bundle_reader *r, const char *name) {
    int lo = 0, hi = r->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(r->e[mid].name, name);
        if (c == 0) return &r->e[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* Opens data shard k once. It must be a regular file (a FIFO would block the open, a
 * directory cannot hold tensors); its size bounds every entry read from it. */
static int shard_fd(pst_bundle_reader *r, int k, char *path, size_t plen, pst_status *st) {
    snprintf(path, plen, "%s.data-%05d-of-%05d", r->prefix, k, r->num_shards);
    if (r->fds[k] >= 0) return r->fds[k];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return pst_status_set(st, PST_E_DATA_LOSS, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        close(fd);
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: %s", path,
                              S_ISREG(sb.st_mode) ? strerror(e) : "not a regular file");
    }
    r->shard_size[k] = sb.st_size;
    r->fds[k] = fd;
    r->direct_fds[k] = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    return fd;
}

/* Checks that entry e lies inside its data file, before anything is allocated for it. */
static int check_bounds(pst_bundle_reader *r, const pst_bundle_entry *e, const char *name,
                        char *path, size_t plen, pst_status *st) {
    int fd = shard_fd(r, e->shard_id, path, plen, st);
    if (fd < 0) return fd;
    if (e->offset > r->shard_size[e->shard_id] || e->size > r->shard_size[e->shard_id] - e->offset)
        return pst_status_set(st, PST_E_DATA_LOSS, "%s: tensor '%s' (bytes %lld..%lld) is past the "
                              "end of the file (%lld bytes); the file is truncated", path, name,
                              (long long)e->offset, (long long)e->offset + (long long)e->size,
                              (long long)r->shard_size[e->shard_id]);
    return fd;
}

/* read_entry for a string tensor t (elements empty): its bytes were checked against the data
 * file's size by check_bounds. Takes t; returns it filled, or NULL with st set. */
static pst_tensor *read_string_entry(pst_bundle_reader *r, const pst_bundle_entry *e,
                                     const char *name, int fd, const char *path, pst_tensor *t,
                                     pst_status *st) {
    (void)r;
    size_t n = (size_t)e->size, off = 0;
    uint8_t *b = malloc(n ? n : 1);
    if (b == NULL) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory reading tensor '%s'", name);
        pst_tensor_unref(t);
        return NULL;
    }
    while (off < n) {
        ssize_t k = pread(fd, b + off, n - off, e->offset + (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        off += (size_t)k;
    }
    const char *why = NULL;
    if (off < n) why = "unexpected end of file";
    else if (pst_crc32c(0, b, n) != e->crc32c) why = "checksum mismatch (the file is corrupt)";
    else if (string_tensor_parse(t, b, n) < 0) why = "malformed string tensor";
    free(b);
    if (why) {
        pst_status_set(st, PST_E_DATA_LOSS, "%s: tensor '%s': %s", path, name, why);
        pst_tensor_unref(t);
        return NULL;
    }
    return t;
}

/* Reads the bytes of one stored entry (a tensor or a slice) and checks its checksum. */
static pst_tensor *read_entry(pst_bundle_reader *r, const pst_bundle_entry *e, const char *name,
                              pst_status *st) {
    char path[4200];
    int fd = check_bounds(r, e, name, path, sizeof path, st);
    if (fd < 0) return NULL;
    pst_tensor *t = pst_tensor_new(e->dtype, e->shape, st);
    if (t == NULL) return NULL;
    if (e->dtype == PST_STRING) return read_string_entry(r, e, name, fd, path, t, st);
    size_t off = 0;
    int dfd = r->direct_fds[e->shard_id];
    if (dfd >= 0 && t->nbytes >= DIRECT_MIN && ((uintptr_t)t->data % DIRECT_ALIGN) == 0 &&
        e->offset % DIRECT_ALIGN == 0) {
        /* Big aligned tensors come straight from the disk into the tensor (no page cache). */
        size_t head = t->nbytes / DIRECT_ALIGN * DIRECT_ALIGN;
        while (off < head) {
            ssize_t n = pread(dfd, (char *)t->data + off, head - off, e->offset + (off_t)off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0 || n % DIRECT_ALIGN) break; /* fall back to buffered reads */
            off += (size_t)n;
        }
    }
    while (off < t->nbytes) {
        ssize_t n = pread(fd, (char *)t->data + off, t->nbytes - off, e->offset + (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            pst_status_set(st, PST_E_DATA_LOSS, "%s: reading tensor '%s': %s", path, name,
                           n < 0 ? strerror(errno) : "unexpected end of file");
            pst_tensor_unref(t);
            return NULL;
        }
        off += (size_t)n;
    }
    uint32_t crc = pst_crc32c(0, t->data, t->nbytes);
    if (crc != e->crc32c) {
        pst_status_set(st, PST_E_DATA_LOSS, "%s: checksum mismatch for tensor '%s' (the file is "
                       "corrupt)", path, name);
        pst_tensor_unref(t);
        return NULL;
    }
    return t;
}

static const rslice_key *find_slice(const pst_bundle_reader *r, const uint8_t *key, size_t klen) {
    int lo = 0, hi = r->n_sk - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const rslice_key *k = &r->sk[mid];
        size_t m = k->klen < klen ? k->klen : klen;
        int c = m ? memcmp(k->key, key, m) : 0;
        if (c == 0) c = (k->klen > klen) - (k->klen < klen);
        if (c == 0) return k;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* The data entry of extent ext of tensor name: under TensorFlow's key (a dimension without a
 * length in the slice's proto spelled as length -1), or, for checkpoints earlier pstrain
 * versions wrote, under the key spelling that dimension's full length. */
static const rslice_key *lookup_slice(const pst_bundle_reader *r, const char *name, int rank,
                                      int ext) {
    const int64_t *x = r->extents[ext];
    int64_t len[PST_MAX_RANK];
    for (int d = 0; d < rank; d++) len[d] = (r->ext_whole[ext] >> d) & 1 ? -1 : x[PST_MAX_RANK + d];
    size_t klen;
    uint8_t *key = slice_key_new(name, rank, x, len, &klen);
    const rslice_key *sk = find_slice(r, key, klen);
    free(key);
    if (sk == NULL && r->ext_whole[ext]) {
        key = slice_key_new(name, rank, x, x + PST_MAX_RANK, &klen);
        sk = find_slice(r, key, klen);
        free(key);
    }
    return sk;
}

pst_tensor *pst_bundle_reader_read(pst_bundle_reader *r, const char *name, pst_status *st) {
    const pst_bundle_entry *e = pst_bundle_reader_find(r, name);
    if (e == NULL) {
        pst_status_set(st, PST_E_NOT_FOUND, "tensor '%s' is not in checkpoint %s", name, r->prefix);
        return NULL;
    }
    if (e->n_slices == 0) return read_entry(r, e, name, st);
    /* A partitioned variable: its slices tile the full shape (checked at open) and each must
     * lie inside its data file before the full tensor is allocated. */
    int first = r->ext_first[e - r->e];
    int rank = e->shape.rank;
    size_t es = pst_dtype_size(e->dtype);
    const rslice_key **parts = calloc((size_t)e->n_slices, sizeof *parts);
    PST_ASSERT(parts != NULL);
    char what[1200], path[4200];
    pst_tensor *full = NULL;
    for (int k = 0; k < e->n_slices; k++) {
        parts[k] = lookup_slice(r, name, rank, first + k);
        snprintf(what, sizeof what, "%.1000s (slice %d)", name, k);
        if (parts[k] == NULL) {
            pst_status_set(st, PST_E_DATA_LOSS, "%s: slice %d of tensor '%s' is missing", r->prefix,
                           k, name);
            goto fail;
        }
        if (check_bounds(r, &parts[k]->e, what, path, sizeof path, st) < 0) goto fail;
    }
    if ((full = pst_tensor_new_zeros(e->dtype, e->shape, st)) == NULL) goto fail;
    for (int k = 0; k < e->n_slices; k++) {
        const int64_t *x = r->extents[first + k];
        snprintf(what, sizeof what, "%.1000s (slice %d)", name, k);
        pst_tensor *part = read_entry(r, &parts[k]->e, what, st);
        if (part == NULL) goto fail;
        int64_t fs[PST_MAX_RANK], ps[PST_MAX_RANK], off = 0;
        pst_shape_strides(&full->shape, fs);
        pst_shape_strides(&part->shape, ps);
        for (int d = 0; d < rank; d++) off += x[d] * fs[d];
        pst_strided_copy((char *)full->data + off * (int64_t)es, fs, part->data, ps,
                         part->shape.dims, rank, es);
        pst_tensor_unref(part);
    }
    free(parts);
    return full;
fail:
    free(parts);
    pst_tensor_unref(full);
    return NULL;
}

int pst_bundle_verify(pst_bundle_reader *r, pst_status *st) {
    for (int i = 0; i < r->n; i++) {
        pst_tensor *t = pst_bundle_reader_read(r, r->e[i].name, st);
        if (t == NULL) return st ? st->code : PST_E_DATA_LOSS;
        pst_tensor_unref(t);
    }
    return 0;
}

/* ---- Merging shards ---------------------------------------------------------------------- */

typedef struct mentry {
    uint8_t *key;
    size_t klen;
    Tensorflow__BundleEntryProto *p; /* unpacked; shard_id rewritten */
} mentry;

static int cmp_mentry(const void *a, const void *b) {
    const mentry *x = a, *y = b;
    size_t m = x->klen < y->klen ? x->klen : y->klen;
    int c = m ? memcmp(x->key, y->key, m) : 0;
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

int pst_bundle_merge(int n, const char *const *shards, const char *prefix, pst_status *st) {
    mentry *all = NULL;
    int n_all = 0, cap = 0, rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s.index", shards[k]);
        uint8_t *buf;
        size_t len;
        if ((rc = pst_file_read(path, (size_t)1 << 30, &buf, &len, st)) < 0) break;
        pst_sstable *t;
        rc = pst_sstable_parse(buf, len, path, &t, st);
        free(buf);
        if (rc < 0) break;
        for (int i = 1; i < t->n; i++) {
            Tensorflow__BundleEntryProto *p =
                tensorflow__bundle_entry_proto__unpack(NULL, t->entries[i].vlen, t->entries[i].val);
            if (p == NULL) {
                rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: entry %d does not parse", path, i);
                break;
            }
            p->shard_id = k;
            if (n_all == cap) {
                cap = cap ? cap * 2 : 64;
                all = realloc(all, (size_t)cap * sizeof *all);
                PST_ASSERT(all != NULL);
            }
            all[n_all].key = malloc(t->entries[i].klen + 1);
            memcpy(all[n_all].key, t->entries[i].key, t->entries[i].klen);
            all[n_all].klen = t->entries[i].klen;
            all[n_all].p = p;
            n_all++;
        }
        pst_sstable_free(t);
    }
    /* Data files become the shards of the merged checkpoint. */
    for (int k = 0; k < n && rc == 0; k++) {
        char from[4200], to[4200];
        snprintf(from, sizeof from, "%s.data-00000-of-00001", shards[k]);
        snprintf(to, sizeof to, "%s.data-%05d-of-%05d", prefix, k, n);
        if (rename(from, to) < 0)
            rc = pst_status_set(st, PST_E_IO, "rename %s to %s: %s", from, to, strerror(errno));
    }
    if (rc == 0) {
        if (n_all > 1) qsort(all, (size_t)n_all, sizeof *all, cmp_mentry);
        pst_sstable_builder *b = pst_sstable_builder_new();
        Tensorflow__BundleHeaderProto h = TENSORFLOW__BUNDLE_HEADER_PROTO__INIT;
        Tensorflow__VersionDef v = TENSORFLOW__VERSION_DEF__INIT;
        v.producer = 1;
        h.num_shards = n;
        h.version = &v;
        uint8_t hb[64];
        pst_sstable_add(b, "", 0, hb, tensorflow__bundle_header_proto__pack(&h, hb));
        for (int i = 0; i < n_all; i++) {
            /* A partitioned variable split over shards: one entry with every shard's slices. */
            int j = i;
            while (j + 1 < n_all && cmp_mentry(&all[i], &all[j + 1]) == 0) j++;
            Tensorflow__BundleEntryProto merged = *all[i].p;
            Tensorflow__TensorSliceProto **sl = NULL;
            if (j > i) {
                size_t ns = 0;
                for (int q = i; q <= j; q++) ns += all[q].p->n_slices;
                sl = malloc((ns + 1) * sizeof *sl);
                ns = 0;
                for (int q = i; q <= j; q++)
                    for (size_t z = 0; z < all[q].p->n_slices; z++) sl[ns++] = all[q].p->slices[z];
                merged.n_slices = ns;
                merged.slices = sl;
                merged.shard_id = 0;
            }
            size_t sz = tensorflow__bundle_entry_proto__get_packed_size(&merged);
            uint8_t *eb = malloc(sz ? sz : 1);
            tensorflow__bundle_entry_proto__pack(&merged, eb);
            pst_sstable_add(b, all[i].key, all[i].klen, eb, sz);
            free(eb);
            free(sl);
            i = j;
        }
        uint8_t *idx;
        size_t ilen;
        pst_sstable_finish(b, &idx, &ilen);
        char path[4200];
        snprintf(path, sizeof path, "%s.index", prefix);
        rc = pst_file_write_atomic(path, idx, ilen, st);
        free(idx);
    }
    for (int i = 0; i < n_all; i++) {
        free(all[i].key);
        tensorflow__bundle_entry_proto__free_unpacked(all[i].p, NULL);
    }
    free(all);
    for (int k = 0; k < n && rc == 0; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s.index", shards[k]);
        unlink(path);
    }
    return rc;
}
