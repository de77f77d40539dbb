/* pbwire: the protobuf wire format by hand (see pbwire.h). */
#include "pbwire.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "varint.h"

void pst_pbwire_buf_init(pst_pbwire_buf *b) {
    memset(b, 0, sizeof *b);
}

void pst_pbwire_buf_destroy(pst_pbwire_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void pst_pbwire_buf_reset(pst_pbwire_buf *b) {
    b->len = 0;
    b->failed = 0;
}

int pst_pbwire_reserve(pst_pbwire_buf *b, size_t n) {
    if (b->failed)
        return -1;
    if (n <= b->cap - b->len)
        return 0;
    if (n > SIZE_MAX / 2 - b->len) {
        b->failed = 1;
        return -1;
    }
    size_t want = b->len + n, cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (d == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void pst_pbwire_put_raw(pst_pbwire_buf *b, const void *p, size_t n) {
    if (n == 0 || pst_pbwire_reserve(b, n) < 0)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void pst_pbwire_put_rawvarint(pst_pbwire_buf *b, uint64_t v) {
    if (pst_pbwire_reserve(b, PST_VARINT_MAX) < 0)
        return;
    b->len += pst_varint_put64(b->data + b->len, v);
}

void pst_pbwire_put_tag(pst_pbwire_buf *b, uint32_t field, int wire_type) {
    pst_pbwire_put_rawvarint(b, (uint64_t)field << 3 | (uint64_t)wire_type);
}

void pst_pbwire_put_varint(pst_pbwire_buf *b, uint32_t field, uint64_t v) {
    pst_pbwire_put_tag(b, field, PST_PBWIRE_VARINT);
    pst_pbwire_put_rawvarint(b, v);
}

void pst_pbwire_put_bytes(pst_pbwire_buf *b, uint32_t field, const void *p, size_t n) {
    pst_pbwire_put_tag(b, field, PST_PBWIRE_LEN);
    pst_pbwire_put_rawvarint(b, n);
    pst_pbwire_put_raw(b, p, n);
}

void pst_pbwire_put_string(pst_pbwire_buf *b, uint32_t field, const char *s) {
    pst_pbwire_put_bytes(b, field, s, strlen(s));
}

void pst_pbwire_put_fixed32(pst_pbwire_buf *b, uint32_t field, uint32_t v) {
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    pst_pbwire_put_tag(b, field, PST_PBWIRE_FIXED32);
    pst_pbwire_put_raw(b, le, 4);
}

void pst_pbwire_put_fixed64(pst_pbwire_buf *b, uint32_t field, uint64_t v) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    pst_pbwire_put_tag(b, field, PST_PBWIRE_FIXED64);
    pst_pbwire_put_raw(b, le, 8);
}

void pst_pbwire_put_float(pst_pbwire_buf *b, uint32_t field, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    pst_pbwire_put_fixed32(b, field, bits);
}

void pst_pbwire_put_double(pst_pbwire_buf *b, uint32_t field, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    pst_pbwire_put_fixed64(b, field, bits);
}

size_t pst_pbwire_begin(pst_pbwire_buf *b, uint32_t field) {
    pst_pbwire_put_tag(b, field, PST_PBWIRE_LEN);
    return b->len;
}

void pst_pbwire_end(pst_pbwire_buf *b, size_t mark) {
    if (b->failed)
        return;
    PST_ASSERT(mark <= b->len);
    size_t body = b->len - mark;
    uint8_t v[PST_VARINT_MAX];
    size_t n = pst_varint_put64(v, body);
    if (pst_pbwire_reserve(b, n) < 0)
        return;
    memmove(b->data + mark + n, b->data + mark, body);
    memcpy(b->data + mark, v, n);
    b->len += n;
}

float pst_pbwire_float_of(uint32_t bits) {
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

double pst_pbwire_double_of(uint64_t bits) {
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

int pst_pbwire_next(const uint8_t **p, const uint8_t *end, pst_pbwire_field *f) {
    const uint8_t *q = *p;
    if (q == end)
        return 0;
    uint64_t key;
    size_t n = pst_varint_get64(q, end, &key);
    if (n == 0 || key >> 3 == 0 || key >> 3 > 0x1fffffff)
        return -1;
    q += n;
    f->number = (uint32_t)(key >> 3);
    f->wire_type = (int)(key & 7);
    f->v = 0;
    f->data = NULL;
    f->len = 0;
    switch (f->wire_type) {
    case PST_PBWIRE_VARINT:
        n = pst_varint_get64(q, end, &f->v);
        if (n == 0)
            return -1;
        q += n;
        break;
    case PST_PBWIRE_FIXED64:
        if (end - q < 8)
            return -1;
        f->v = pst_pbwire_le64(q);
        q += 8;
        break;
    case PST_PBWIRE_FIXED32:
        if (end - q < 4)
            return -1;
        f->v = pst_pbwire_le32(q);
        q += 4;
        break;
    case PST_PBWIRE_LEN: {
        uint64_t len;
        n = pst_varint_get64(q, end, &len);
        if (n == 0)
            return -1;
        q += n;
        if (len > (uint64_t)(end - q))
            return -1;
        f->data = q;
        f->len = (size_t)len;
        q += len;
        break;
    }
    default:
        return -1;
    }
    *p = q;
    return 1;
}

int pst_pbwire_next_packed_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    if (*p == end)
        return 0;
    size_t n = pst_varint_get64(*p, end, v);
    if (n == 0)
        return -1;
    *p += n;
    return 1;
}
