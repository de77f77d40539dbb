/*
 * fuzz_idx — pst_idx_read on arbitrary files, plain and gzip-compressed.
 *
 * Input: one mode byte, then the file. Mode bit 0 set: the rest is gzip-compressed here before
 * it is written, so mutations of a plain IDX file also reach the reader through zlib; clear:
 * the rest is written as it is (a seed may itself be a .gz file, or garbage). A tensor read
 * must be uint8 with the file's dims.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz.h"
#include "idx.h"

/* data as a gzip stream (malloc'd). */
static uint8_t *gzip(const uint8_t *data, size_t size, size_t *out_len) {
    z_stream z = {0};
    PST_FUZZ_CHECK(deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK,
                   "deflateInit2");
    size_t cap = deflateBound(&z, (uLong)size) + 32;
    uint8_t *out = malloc(cap);
    PST_FUZZ_CHECK(out != NULL, "out of memory");
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    PST_FUZZ_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate");
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int compress = data[0] & 1;
    data++;
    size--;
    if (compress) {
        size_t zlen;
        uint8_t *z = gzip(data, size, &zlen);
        pst_fuzz_write("file.idx", z, zlen);
        free(z);
    } else {
        pst_fuzz_write("file.idx", data, size);
    }
    char path[4200];
    pst_fuzz_path("file.idx", path, sizeof path);
    pst_tensor *t;
    pst_status st = {0};
    int rc = pst_idx_read(path, &t, &st);
    pst_fuzz_check_status(rc, &st, "pst_idx_read");
    PST_FUZZ_CHECK((rc == 0) == (t != NULL), "rc %d with tensor %p", rc, (void *)t);
    if (t) {
        PST_FUZZ_CHECK(t->dtype == PST_UINT8 && t->shape.rank >= 1, "wrong dtype or rank");
        if (compress && size >= 4)
            PST_FUZZ_CHECK(t->shape.rank == data[3], "rank %d from magic byte %d", t->shape.rank,
                           data[3]);
        pst_tensor_unref(t);
    }
    return 0;
}
