/* strhash: FarmHash Fingerprint64, SipHash-2-4 and TF's Hash64 (see strhash.h). */
#include "strhash.h"

static const uint64_t K0 = 0xc3a5c85c97cb3127ULL, K1 = 0xb492b66fbe98f273ULL,
                      K2 = 0x9ae16a3b2f90404fULL;

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ror(uint64_t v, int s) { return s == 0 ? v : (v >> s) | (v << (64 - s)); }
static uint64_t shift_mix(uint64_t v) { return v ^ (v >> 47); }

static uint64_t mix16(uint64_t u, uint64_t v, uint64_t mul) {
    uint64_t a = (u ^ v) * mul;
    a ^= a >> 47;
    uint64_t b = (v ^ a) * mul;
    b ^= b >> 47;
    return b * mul;
}

static uint64_t len0to16(const unsigned char *s, size_t len) {
    if (len >= 8) {
        uint64_t mul = K2 + len * 2, a = le64(s) + K2, b = le64(s + len - 8);
        uint64_t c = ror(b, 37) * mul + a, d = (ror(a, 25) + b) * mul;
        return mix16(c, d, mul);
    }
    if (len >= 4) {
        uint64_t mul = K2 + len * 2, a = le32(s);
        return mix16(len + (a << 3), le32(s + len - 4), mul);
    }
    if (len > 0) {
        uint32_t y = (uint32_t)s[0] + ((uint32_t)s[len >> 1] << 8);
        uint32_t z = (uint32_t)len + ((uint32_t)s[len - 1] << 2);
        return shift_mix(y * K2 ^ z * K0) * K2;
    }
    return K2;
}

static uint64_t len17to32(const unsigned char *s, size_t len) {
    uint64_t mul = K2 + len * 2, a = le64(s) * K1, b = le64(s + 8);
    uint64_t c = le64(s + len - 8) * mul, d = le64(s + len - 16) * K2;
    return mix16(ror(a + b, 43) + ror(c, 30) + d, a + ror(b + K2, 18) + c, mul);
}

static uint64_t len33to64(const unsigned char *s, size_t len) {
    uint64_t mul = K2 + len * 2, a = le64(s) * K2, b = le64(s + 8);
    uint64_t c = le64(s + len - 8) * mul, d = le64(s + len - 16) * K2;
    uint64_t y = ror(a + b, 43) + ror(c, 30) + d;
    uint64_t z = mix16(y, a + ror(b + K2, 18) + c, mul);
    uint64_t e = le64(s + 16) * mul, f = le64(s + 24);
    uint64_t g = (y + le64(s + len - 32)) * mul, h = (z + le64(s + len - 24)) * mul;
    return mix16(ror(e + f, 43) + ror(g, 30) + h, e + ror(f + a, 18) + g, mul);
}

typedef struct pair64 {
    uint64_t a, b;
} pair64;

/* 32 bytes at s mixed with two seeds. */
static pair64 weak32(const unsigned char *s, uint64_t a, uint64_t b) {
    uint64_t w = le64(s), x = le64(s + 8), y = le64(s + 16), z = le64(s + 24);
    a += w;
    b = ror(b + a + z, 21);
    uint64_t c = a;
    a += x;
    a += y;
    b += ror(a, 44);
    return (pair64){a + z, b + c};
}

uint64_t pst_strhash_fingerprint64(const void *data, size_t len) {
    const unsigned char *s = data;
    if (len <= 16) return len0to16(s, len);
    if (len <= 32) return len17to32(s, len);
    if (len <= 64) return len33to64(s, len);
    const uint64_t seed = 81;
    uint64_t x = seed, y = seed * K1 + 113, z = shift_mix(y * K2 + 113) * K2, t;
    pair64 v = {0, 0}, w = {0, 0};
    x = x * K2 + le64(s);
    const unsigned char *end = s + ((len - 1) / 64) * 64;
    const unsigned char *last64 = end + ((len - 1) & 63) - 63;
    do {
        x = ror(x + y + v.a + le64(s + 8), 37) * K1;
        y = ror(y + v.b + le64(s + 48), 42) * K1;
        x ^= w.b;
        y += v.a + le64(s + 40);
        z = ror(z + w.a, 33) * K1;
        v = weak32(s, v.b * K1, x + w.a);
        w = weak32(s + 32, z + w.b, y + le64(s + 16));
        t = z, z = x, x = t;
        s += 64;
    } while (s != end);
    uint64_t mul = K1 + ((z & 0xff) << 1);
    s = last64;
    w.a += (len - 1) & 63;
    v.a += w.a;
    w.a += v.a;
    x = ror(x + y + v.a + le64(s + 8), 37) * mul;
    y = ror(y + v.b + le64(s + 48), 42) * mul;
    x ^= w.b * 9;
    y += v.a * 9 + le64(s + 40);
    z = ror(z + w.a, 33) * mul;
    v = weak32(s, v.b * mul, x + w.a);
    w = weak32(s + 32, z + w.b, y + le64(s + 16));
    t = z, z = x, x = t;
    return mix16(mix16(v.a, w.a, mul) + shift_mix(y) * K0 + z, mix16(v.b, w.b, mul) + x, mul);
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1, v1 = ror(v1, 64 - 13), v1 ^= v0, v0 = ror(v0, 32);                               \
        v2 += v3, v3 = ror(v3, 64 - 16), v3 ^= v2;                                                 \
        v0 += v3, v3 = ror(v3, 64 - 21), v3 ^= v0;                                                 \
        v2 += v1, v1 = ror(v1, 64 - 17), v1 ^= v2, v2 = ror(v2, 32);                               \
    } while (0)

uint64_t pst_strhash_siphash24(uint64_t k0, uint64_t k1, const void *data, size_t len) {
    const unsigned char *s = data;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = le64(s + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)(len & 0xff) << 56;
    for (size_t i = 0; i < (len & 7); i++) last |= (uint64_t)s[full + i] << (8 * i);
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t pst_strhash_tf64(const void *data, size_t n) {
    const unsigned char *s = data;
    const uint64_t m = 0xc6a4a7935bd1e995ULL;
    uint64_t h = 0xDECAFCAFFEULL ^ (n * m);
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t k = le64(s) * m;
        k ^= k >> 47;
        h = (h ^ (k * m)) * m;
    }
    if (n > 0) {
        for (size_t i = n; i-- > 0;) h ^= (uint64_t)s[i] << (8 * i);
        h *= m;
    }
    h ^= h >> 47;
    h *= m;
    return h ^ (h >> 47);
}
