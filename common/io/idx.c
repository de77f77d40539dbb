#include "idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static int read_all(gzFile f, void *buf, size_t n) {
    size_t off = 0;
    while (off < n) {
        unsigned chunk = n - off > (1u << 30) ? (1u << 30) : (unsigned)(n - off);
        int r = gzread(f, (char *)buf + off, chunk);
        if (r <= 0) return -1;
        off += (size_t)r;
    }
    return 0;
}

int pst_idx_read(const char *path, pst_tensor **out, pst_status *st) {
    *out = NULL;
    if (access(path, R_OK) != 0)
        return pst_status_set(st, PST_E_NOT_FOUND, "cannot open %s: %s", path, strerror(errno));
    gzFile f = gzopen(path, "rb"); /* reads plain files too */
    if (f == NULL) return pst_status_set(st, PST_E_IO, "cannot open %s", path);
    int rc = 0;
    unsigned char hdr[4];
    if (read_all(f, hdr, 4) < 0) {
        rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: file too short for an IDX header", path);
        goto out;
    }
    if (hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08 || hdr[3] < 1 || hdr[3] > PST_MAX_RANK) {
        rc = pst_status_set(st, PST_E_DATA_LOSS,
                            "%s: bad IDX magic %02x%02x%02x%02x (expected unsigned-byte data, "
                            "0x0000080N)", path, hdr[0], hdr[1], hdr[2], hdr[3]);
        goto out;
    }
    pst_shape s = {.rank = hdr[3]};
    int64_t n = 1;
    for (int i = 0; i < s.rank; i++) {
        unsigned char d[4];
        if (read_all(f, d, 4) < 0) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: truncated IDX header", path);
            goto out;
        }
        s.dims[i] = ((int64_t)d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3];
        if (pst_mul_overflow_i64(n, s.dims[i], &n) || n > (1LL << 32)) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: IDX dims are implausibly large", path);
            goto out;
        }
    }
    pst_tensor *t = pst_tensor_new(PST_UINT8, s, st);
    if (t == NULL) {
        rc = st ? st->code : PST_E_EXHAUSTED;
        goto out;
    }
    if (read_all(f, t->data, t->nbytes) < 0) {
        pst_tensor_unref(t);
        rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: truncated: the header promises %lld bytes",
                            path, (long long)n);
        goto out;
    }
    *out = t;
out:
    gzclose(f);
    return rc;
}
