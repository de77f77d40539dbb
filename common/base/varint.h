/*
 * varint — protobuf/LevelDB base-128 varints, the one encoder and decoder of the tree.
 *
 *     uint8_t b[PST_VARINT_MAX];
 *     size_t n = pst_varint_put64(b, 300);        // 2 bytes: ac 02
 *     uint64_t v;
 *     if (pst_varint_get64(b, b + n, &v) == 0) ... // truncated or longer than 10 bytes
 */
#ifndef PST_VARINT_H
#define PST_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define PST_VARINT_MAX 10

/* Writes v at dst (room for PST_VARINT_MAX bytes); returns the bytes written. */
size_t pst_varint_put64(uint8_t *dst, uint64_t v);
/* Reads a varint from [p, end); returns the bytes it took, or 0 when it is truncated or longer
 * than 10 bytes. */
size_t pst_varint_get64(const uint8_t *p, const uint8_t *end, uint64_t *v);

#endif
