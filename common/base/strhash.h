/*
 * strhash — the 64-bit string hashes TensorFlow's ops bucket strings with, bit for bit:
 *   - pst_strhash_fingerprint64: FarmHash's Fingerprint64 (its "na" Hash64), what
 *     StringToHashBucketFast and Fingerprint use (feature columns' hashed categories);
 *   - pst_strhash_siphash24: SipHash-2-4 with a 128-bit key given as two 64-bit words, what
 *     StringToHashBucketStrong uses;
 *   - pst_strhash_tf64: TensorFlow's own Hash64 (MurmurHash64A with seed 0xDECAFCAFFE), what
 *     the old StringToHashBucket uses.
 * Bytes are read little-endian whatever the machine.
 *
 *     uint64_t bucket = pst_strhash_fingerprint64("Hello", 5) % 3;
 */
#ifndef PST_STRHASH_H
#define PST_STRHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t pst_strhash_fingerprint64(const void *s, size_t len);
uint64_t pst_strhash_siphash24(uint64_t k0, uint64_t k1, const void *s, size_t len);
uint64_t pst_strhash_tf64(const void *s, size_t len);

#endif
