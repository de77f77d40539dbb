/* idx: MNIST's IDX files, plain or gzip-compressed (see idx.h). */
#include "idx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* The largest IDX this reader accepts (4 GiB of data). */
#define IDX_MAX_BYTES ((int64_t)1 << 32)
/* Deflate never expands a stream by more than 1032:1, so a gzip file of c bytes holds at most
 * about 1032 * c bytes: a header promising more is lying, whatever else the file says. */
#define GZIP_MAX_RATIO 1032
/* Compressed data is read in pieces of at most this many bytes, the buffer growing only as
 * data actually arrives (a false promise in the header costs at most one piece). */
#define GZIP_PIECE ((size_t)1 << 20)

/* Reads up to n bytes; returns how many were read (fewer at the end of the data) or -1. */
static int64_t read_some(gzFile f, void *buf, size_t n) {
    size_t off = 0;
    while (off < n) {
        unsigned chunk = n - off > (1u << 30) ? (1u << 30) : (unsigned)(n - off);
        int r = gzread(f, (char *)buf + off, chunk);
        if (r < 0) return -1;
        if (r == 0) break;
        off += (size_t)r;
    }
    return (int64_t)off;
}

/* The data of a compressed file: exactly n bytes read incrementally into a buffer that grows
 * with what arrives, then copied into t. */
static int read_gzip_data(gzFile f, const char *path, int64_t n, pst_tensor **out, pst_shape s,
                          pst_status *st) {
    size_t cap = 0, got = 0;
    uint8_t *buf = NULL;
    int rc = 0;
    while ((int64_t)got < n) {
        if (got == cap) {
            size_t want = cap ? cap * 2 : GZIP_PIECE;
            if ((int64_t)want > n) want = (size_t)n;
            uint8_t *nb = realloc(buf, want);
            if (nb == NULL) {
                rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory reading %s", path);
                goto out;
            }
            buf = nb;
            cap = want;
        }
        size_t piece = cap - got < GZIP_PIECE ? cap - got : GZIP_PIECE;
        int64_t r = read_some(f, buf + got, piece);
        if (r < 0) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: corrupt gzip data", path);
            goto out;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    if ((int64_t)got != n) {
        rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: truncated: the header promises %lld bytes "
                            "of data, the file holds %zu", path, (long long)n, got);
        goto out;
    }
    pst_tensor *t = pst_tensor_new(PST_UINT8, s, st);
    if (t == NULL) {
        rc = st ? st->code : PST_E_EXHAUSTED;
        goto out;
    }
    if (n) memcpy(t->data, buf, (size_t)n);
    *out = t;
out:
    free(buf);
    return rc;
}

int pst_idx_read(const char *path, pst_tensor **out, pst_status *st) {
    *out = NULL;
    /* O_NONBLOCK: a FIFO with no writer must not hang the open; it is refused below. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return pst_status_set(st, errno == ENOENT ? PST_E_NOT_FOUND : PST_E_IO,
                              "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        close(fd);
        return pst_status_set(st, PST_E_INVALID, "%s: %s", path,
                              S_ISREG(sb.st_mode) ? strerror(e) : "not a regular file");
    }
    int64_t file_size = (int64_t)sb.st_size;
    unsigned char magic[2] = {0, 0};
    int gz = pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    gzFile f = gzdopen(fd, "rb"); /* reads plain files too; owns fd from here */
    if (f == NULL) {
        close(fd);
        return pst_status_set(st, PST_E_IO, "cannot open %s", path);
    }
    int rc = 0;
    unsigned char hdr[4];
    if (read_some(f, hdr, 4) != 4) {
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
    int64_t n = 1, header = 4 + 4 * (int64_t)s.rank;
    for (int i = 0; i < s.rank; i++) {
        unsigned char d[4];
        if (read_some(f, d, 4) != 4) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: truncated IDX header", path);
            goto out;
        }
        s.dims[i] = ((int64_t)d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3];
        if (pst_mul_overflow_i64(n, s.dims[i], &n) || n > IDX_MAX_BYTES) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: IDX dims are implausibly large (more "
                                "than %lld bytes)", path, (long long)IDX_MAX_BYTES);
            goto out;
        }
    }
    /* The header's promise is checked against the file before anything is allocated. */
    if (!gz) {
        if (file_size - header != n) {
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: the header promises %lld bytes of data "
                                "but the file holds %lld after its %lld-byte header", path,
                                (long long)n, (long long)(file_size - header), (long long)header);
            goto out;
        }
        pst_tensor *t = pst_tensor_new(PST_UINT8, s, st);
        if (t == NULL) {
            rc = st ? st->code : PST_E_EXHAUSTED;
            goto out;
        }
        if (read_some(f, t->data, t->nbytes) != n) {
            pst_tensor_unref(t);
            rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: truncated while being read", path);
            goto out;
        }
        *out = t;
        goto out;
    }
    if (n + header > file_size * GZIP_MAX_RATIO) {
        rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: the header promises %lld bytes of data, "
                            "more than %lld compressed bytes can hold", path, (long long)n,
                            (long long)file_size);
        goto out;
    }
    if ((rc = read_gzip_data(f, path, n, out, s, st)) < 0) goto out;
    unsigned char extra;
    if (read_some(f, &extra, 1) != 0) {
        pst_tensor_unref(*out);
        *out = NULL;
        rc = pst_status_set(st, PST_E_DATA_LOSS, "%s: bytes follow the %lld the header promises",
                            path, (long long)n);
    }
out:
    gzclose(f);
    return rc;
}
