/*
 * crc32c — CRC-32C (Castagnoli), as TensorFlow's checkpoints and records use it, with the
 * SSE4.2 instruction when the build targets a CPU that has it and a table otherwise.
 *
 *     uint32_t c = pst_crc32c(0, buf, len);           // crc32c("123456789") == 0xe3069283
 *     uint32_t stored = pst_crc32c_mask(c);          // what TF writes to disk
 */
#ifndef PST_CRC32C_H
#define PST_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over n bytes. */
uint32_t pst_crc32c(uint32_t crc, const void *data, size_t n);
static inline uint32_t pst_crc32c_mask(uint32_t c) {
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}
static inline uint32_t pst_crc32c_unmask(uint32_t m) {
    uint32_t r = m - 0xa282ead8u;
    return (r >> 17) | (r << 15);
}

#endif
