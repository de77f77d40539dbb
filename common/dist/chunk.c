/* chunk: tensor pieces on the wire (see chunk.h). */
#include "chunk.h"

#include "varint.h"

#include <stdlib.h>
#include <string.h>

/* A chunk: the packed header, then field 15 (data) whose bytes are the tensor's own memory. */
typedef struct chunk_owner {
    pst_tensor *t;
    uint8_t hdr[];
} chunk_owner;

static void chunk_release(void *p) {
    chunk_owner *o = p;
    pst_tensor_unref(o->t);
    free(o);
}

int pst_chunk_msg(const char *key, pst_tensor *t, uint64_t off, uint64_t len, pst_msg *out,
                  pst_status *st) {
    *out = (pst_msg){0};
    Pstrain__TensorChunk h = PSTRAIN__TENSOR_CHUNK__INIT;
    h.key = (char *)key;
    h.dtype = t->dtype;
    int64_t dims[PST_MAX_RANK];
    for (int d = 0; d < t->shape.rank; d++) dims[d] = t->shape.dims[d];
    h.n_dims = (size_t)t->shape.rank;
    h.dims = dims;
    h.total_bytes = (uint64_t)(t)->nbytes;
    h.offset = off;
    size_t hl = pstrain__tensor_chunk__get_packed_size(&h);
    chunk_owner *o = malloc(sizeof *o + hl + 12);
    if (!o)
        return pst_status_set(st, PST_E_EXHAUSTED, "tensor '%s': out of memory for a chunk "
                              "header", key);
    size_t n = pstrain__tensor_chunk__pack(&h, o->hdr);
    o->hdr[n++] = (15 << 3) | 2;
    n += pst_varint_put64(o->hdr + n, len);
    o->t = pst_tensor_ref(t);
    *out = (pst_msg){.n = len ? 2 : 1,
                     .seg = {{o->hdr, n, NULL}, {(const uint8_t *)t->data + off, (size_t)len, NULL}},
                     .release = chunk_release,
                     .owner = o};
    return 0;
}

pst_tensor *pst_chunk_adopt(pst_chunk_cursor *c, const Pstrain__TensorChunk *h, pst_shape shape,
                            uint64_t len, pst_status *st) {
    if (h->offset != 0 || len != h->total_bytes || len == 0 || h->dtype == PST_STRING)
        return NULL;
    while (c->i < c->n && c->off == c->v[c->i].len) {
        c->i++;
        c->off = 0;
    }
    if (c->i >= c->n || c->off != 0 || c->v[c->i].len != len) return NULL;
    void *block = pst_iov_take(&c->v[c->i]);
    if (!block) return NULL;
    c->off = (size_t)len;
    return pst_tensor_adopt((pst_dtype)h->dtype, shape, block, st);
}

static int cur_byte(pst_chunk_cursor *c, uint8_t *b) {
    while (c->i < c->n && c->off == c->v[c->i].len) {
        c->i++;
        c->off = 0;
    }
    if (c->i >= c->n) return -1;
    *b = ((const uint8_t *)c->v[c->i].base)[c->off++];
    return 0;
}

/* Copies n bytes at the cursor to dst (NULL: skips them); -1 if the message is shorter. */
int pst_chunk_take(pst_chunk_cursor *c, void *dst, size_t n) {
    uint8_t *d = dst;
    while (n > 0) {
        if (c->i >= c->n) return -1;
        size_t avail = c->v[c->i].len - c->off;
        if (avail == 0) {
            c->i++;
            c->off = 0;
            continue;
        }
        size_t k = avail < n ? avail : n;
        if (d) {
            memcpy(d, (const uint8_t *)c->v[c->i].base + c->off, k);
            d += k;
        }
        c->off += k;
        n -= k;
    }
    return 0;
}

/* Bytes left in the message from the cursor on. */
static uint64_t cursor_remaining(const pst_chunk_cursor *c) {
    uint64_t n = 0;
    for (int i = c->i; i < c->n; i++) n += c->v[i].len - (i == c->i ? c->off : 0);
    return n;
}

/* Reads a varint, appending its bytes to hdr (when given). */
static int cur_varint(pst_chunk_cursor *c, uint64_t *out, uint8_t *hdr, size_t *hl, size_t cap) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t b;
        if (cur_byte(c, &b) < 0) return -1;
        if (hdr) {
            if (*hl >= cap) return -1;
            hdr[(*hl)++] = b;
        }
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Splits a received chunk into its header (unpacked) and the cursor at its data. */
Pstrain__TensorChunk *pst_chunk_parse(const pst_iov *v, int n, pst_chunk_cursor *c, uint64_t *data_len,
                                         pst_status *st) {
    enum { CAP = 8192 };
    uint8_t hdr[CAP];
    size_t hl = 0;
    *c = (pst_chunk_cursor){.v = v, .n = n};
    *data_len = 0;
    for (;;) {
        uint64_t tag;
        size_t at = hl;
        uint8_t b;
        pst_chunk_cursor probe = *c;
        if (cur_byte(&probe, &b) < 0) break; /* end of message: no data field */
        if (cur_varint(c, &tag, hdr, &hl, CAP) < 0) goto bad;
        int field = (int)(tag >> 3), wt = (int)(tag & 7);
        if (field == 15 && wt == 2) {
            hl = at;
            if (cur_varint(c, data_len, NULL, NULL, 0) < 0) goto bad;
            break;
        }
        uint64_t x, len = 0;
        switch (wt) {
        case 0:
            if (cur_varint(c, &x, hdr, &hl, CAP) < 0) goto bad;
            break;
        case 1:
        case 5:
            len = wt == 1 ? 8 : 4;
            break;
        case 2:
            if (cur_varint(c, &len, hdr, &hl, CAP) < 0) goto bad;
            break;
        default:
            goto bad;
        }
        if (len > CAP - hl || pst_chunk_take(c, hdr + hl, (size_t)len) < 0) goto bad;
        hl += (size_t)len;
    }
    Pstrain__TensorChunk *h = pstrain__tensor_chunk__unpack(NULL, hl, hdr);
    if (!h) goto bad;
    /* The data is the rest of the message, exactly: fewer bytes would leave the destination
     * partly unwritten (heap bytes a peer could read back), more would be unread fields. */
    uint64_t rest = cursor_remaining(c);
    if (rest != *data_len) {
        pst_status_set(st, PST_E_INVALID, "malformed tensor chunk '%s': it announces %llu data "
                       "bytes and %llu follow", h->key, (unsigned long long)*data_len,
                       (unsigned long long)rest);
        pst_chunk_header_free(h);
        return NULL;
    }
    return h;
bad:
    pst_status_set(st, PST_E_INVALID, "malformed tensor chunk");
    return NULL;
}

/* Checks a chunk header against itself: dtype, rank, total = shape bytes, range inside. */
int pst_chunk_check(const Pstrain__TensorChunk *h, uint64_t len, pst_shape *shape,
                       pst_status *st) {
    if (!pst_dtype_valid((pst_dtype)h->dtype) || pst_dtype_size((pst_dtype)h->dtype) == 0)
        return pst_status_set(st, PST_E_INVALID, "tensor '%s': unsupported dtype %d", h->key,
                              h->dtype);
    if (h->n_dims > PST_MAX_RANK)
        return pst_status_set(st, PST_E_INVALID, "tensor '%s': rank %zu", h->key, h->n_dims);
    shape->rank = (int)h->n_dims;
    uint64_t elems = 1;
    for (size_t d = 0; d < h->n_dims; d++) {
        if (h->dims[d] < 0 || (h->dims[d] > 0 && elems > UINT64_MAX / (uint64_t)h->dims[d]))
            return pst_status_set(st, PST_E_INVALID, "tensor '%s': bad shape", h->key);
        shape->dims[d] = h->dims[d];
        elems *= (uint64_t)h->dims[d];
    }
    uint64_t es = pst_dtype_size((pst_dtype)h->dtype);
    if (elems > UINT64_MAX / es || elems * es != h->total_bytes || h->offset > h->total_bytes ||
        len > h->total_bytes - h->offset)
        return pst_status_set(st, PST_E_INVALID,
                              "tensor '%s': chunk [%llu, +%llu) does not fit %llu bytes", h->key,
                              (unsigned long long)h->offset, (unsigned long long)len,
                              (unsigned long long)h->total_bytes);
    return 0;
}

void pst_chunk_header_free(Pstrain__TensorChunk *h) {
    if (h) pstrain__tensor_chunk__free_unpacked(h, NULL);
}
