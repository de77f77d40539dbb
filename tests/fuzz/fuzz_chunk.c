/*
 * fuzz_chunk — the tensor-chunk decoder of the task service's data path (pst_chunk_parse,
 * pst_chunk_check, pst_chunk_take) on arbitrary messages.
 *
 * Input: two bytes choosing where the message splits into up to three segments (as a
 * transport hands over its buffers), then the message. A header that parses and checks must
 * describe a range inside its tensor, and the data it announces must be there to take.
 */
#include <stdlib.h>

#include "chunk.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t a = data[0] % (size - 1), b = data[1] % (size - 1);
    data += 2;
    size -= 2;
    if (a > b) {
        size_t t = a;
        a = b;
        b = t;
    }
    pst_iov v[3] = {{data, a, NULL}, {data + a, b - a, NULL}, {data + b, size - b, NULL}};
    pst_chunk_cursor c;
    uint64_t len;
    pst_status st = {0};
    Pstrain__TensorChunk *h = pst_chunk_parse(v, 3, &c, &len, &st);
    pst_fuzz_check_status(h ? 0 : -1, &st, "pst_chunk_parse");
    if (h == NULL) return 0;
    pst_shape shape;
    int rc = pst_chunk_check(h, len, &shape, &st);
    pst_fuzz_check_status(rc, &st, "pst_chunk_check");
    if (rc == 0) {
        PST_FUZZ_CHECK(h->offset <= h->total_bytes && len <= h->total_bytes - h->offset,
                       "chunk [%llu, +%llu) outside %llu bytes", (unsigned long long)h->offset,
                       (unsigned long long)len, (unsigned long long)h->total_bytes);
        PST_FUZZ_CHECK(len <= size, "%llu data bytes announced in a %zu-byte message",
                       (unsigned long long)len, size);
        uint8_t *dst = malloc(len ? (size_t)len : 1);
        PST_FUZZ_CHECK(dst != NULL, "out of memory");
        PST_FUZZ_CHECK(pst_chunk_take(&c, dst, (size_t)len) == 0,
                       "the %llu data bytes announced are not in the message",
                       (unsigned long long)len);
        free(dst);
    }
    pst_chunk_header_free(h);
    return 0;
}
