/*
 * pbwire — the protobuf wire format by hand, for the few small messages the io layer writes and
 * reads (tf.train.Example, Event, Summary, SessionLog).
 *
 * Why not protoc-c: these messages are tiny, the readers want zero-copy access to the record
 * buffer and errors that name the field that was wrong, and the io layer then needs no generated
 * code. The schemas of record are proto/tf_example.proto and proto/tf_event.proto; the tests
 * decode what we write with Debian's protoc against them.
 *
 * Writing: fields are appended to a growable buffer; a nested message is opened with
 * pst_pbwire_begin and closed with pst_pbwire_end, which inserts its length in front of it.
 *
 *     pst_pbwire_buf b;
 *     pst_pbwire_buf_init(&b);
 *     pst_pbwire_put_double(&b, 1, wall_time);
 *     size_t m = pst_pbwire_begin(&b, 5);              // Event.summary
 *     ...
 *     pst_pbwire_end(&b, m);
 *     if (b.failed) ... out of memory ...
 *     pst_pbwire_buf_destroy(&b);
 *
 * Reading: pst_pbwire_next walks the fields of one message; length-delimited fields point into
 * the caller's buffer.
 *
 *     const uint8_t *p = data, *end = data + len;
 *     pst_pbwire_field f;
 *     int r;
 *     while ((r = pst_pbwire_next(&p, end, &f)) == 1) { switch (f.number) { ... } }
 *     if (r < 0) ... malformed ...
 */
#ifndef PST_PBWIRE_H
#define PST_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

enum {
    PST_PBWIRE_VARINT = 0,
    PST_PBWIRE_FIXED64 = 1,
    PST_PBWIRE_LEN = 2,
    PST_PBWIRE_FIXED32 = 5,
};

/* A growable output buffer. After any allocation failure `failed` is set and every later put is
 * a no-op, so callers check once at the end. */
typedef struct pst_pbwire_buf {
    uint8_t *data;
    size_t len, cap;
    int failed;
} pst_pbwire_buf;

void pst_pbwire_buf_init(pst_pbwire_buf *b);
void pst_pbwire_buf_destroy(pst_pbwire_buf *b);
/* Empties the buffer, keeping its memory (and clearing `failed`). */
void pst_pbwire_buf_reset(pst_pbwire_buf *b);
/* Makes room for n more bytes; 0 or -1 (and `failed` set). */
int pst_pbwire_reserve(pst_pbwire_buf *b, size_t n);

void pst_pbwire_put_raw(pst_pbwire_buf *b, const void *p, size_t n);
void pst_pbwire_put_rawvarint(pst_pbwire_buf *b, uint64_t v);
void pst_pbwire_put_tag(pst_pbwire_buf *b, uint32_t field, int wire_type);
/* int32/int64/uint64/bool/enum fields: negative values take 10 bytes, as protobuf says. */
void pst_pbwire_put_varint(pst_pbwire_buf *b, uint32_t field, uint64_t v);
void pst_pbwire_put_bytes(pst_pbwire_buf *b, uint32_t field, const void *p, size_t n);
void pst_pbwire_put_string(pst_pbwire_buf *b, uint32_t field, const char *s);
void pst_pbwire_put_fixed32(pst_pbwire_buf *b, uint32_t field, uint32_t v);
void pst_pbwire_put_fixed64(pst_pbwire_buf *b, uint32_t field, uint64_t v);
void pst_pbwire_put_float(pst_pbwire_buf *b, uint32_t field, float v);
void pst_pbwire_put_double(pst_pbwire_buf *b, uint32_t field, double v);
/* Opens a nested message (or packed list) as field `field`; returns the mark to pass to
 * pst_pbwire_end, which prefixes the bytes written since with their varint length. */
size_t pst_pbwire_begin(pst_pbwire_buf *b, uint32_t field);
void pst_pbwire_end(pst_pbwire_buf *b, size_t mark);

/* Little-endian fixed-width loads from unaligned bytes. */
static inline uint32_t pst_pbwire_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t pst_pbwire_le64(const uint8_t *p) {
    return (uint64_t)pst_pbwire_le32(p) | (uint64_t)pst_pbwire_le32(p + 4) << 32;
}
float pst_pbwire_float_of(uint32_t bits);
double pst_pbwire_double_of(uint64_t bits);

/* One decoded field. For VARINT, FIXED32 and FIXED64 the value is in `v` (fixed ones as their
 * raw bits); for LEN, [data, data + len) lies inside the buffer being read. */
typedef struct pst_pbwire_field {
    uint32_t number;
    int wire_type;
    uint64_t v;
    const uint8_t *data;
    size_t len;
} pst_pbwire_field;

/* Reads the field at *p (advancing *p past it). Returns 1 with a field, 0 at end (*p == end),
 * or -1 when the bytes are not a well-formed field: a truncated or over-long varint, a length
 * past the end, field number 0, or a wire type other than 0, 1, 2 and 5 (groups are not used by
 * any message we read). */
int pst_pbwire_next(const uint8_t **p, const uint8_t *end, pst_pbwire_field *f);

/* Reads one varint from a packed list at *p; 1, 0 at end, -1 when malformed. */
int pst_pbwire_next_packed_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);

#endif
