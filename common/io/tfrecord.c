/* tfrecord: TensorFlow's record files, streamed (see tfrecord.h). */
#include "tfrecord.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "crc32c.h"
#include "file.h"

#define IO_BUF ((size_t)64 << 10) /* file-side buffer of readers and writers */
#define HEADER 12                 /* uint64 length + masked crc of it */
#define FOOTER 4                  /* masked crc of the data */

static const char *const names[] = {"none", "zlib", "gzip", "auto"};

const char *pst_tfrecord_compression_name(pst_tfrecord_compression c) {
    return (unsigned)c < PST_TFRECORD_COMPRESSION_COUNT ? names[c] : "invalid";
}

int pst_tfrecord_compression_parse(const char *name, pst_tfrecord_compression *out,
                                   pst_status *st) {
    if (name[0] == '\0') {
        *out = PST_TFRECORD_NONE;
        return 0;
    }
    for (int i = 0; i < PST_TFRECORD_COMPRESSION_COUNT; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *out = (pst_tfrecord_compression)i;
            return 0;
        }
    }
    return pst_status_set(st, PST_E_INVALID,
                          "unknown record compression '%s' (expected none, zlib or gzip)", name);
}

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) {
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* ======================================== writer ======================================== */

struct pst_tfrecord_writer {
    char *path;
    char *tmp; /* atomic writers: the temporary name being written */
    int fd;
    pst_tfrecord_compression comp;
    z_stream z;
    int z_live;
    uint8_t *out; /* bytes on their way to fd (compressed ones when compressing) */
    size_t out_len;
    int64_t count;
    int failed; /* the first error's code; every later call returns it */
};

static const char *wname(const pst_tfrecord_writer *w) {
    return w->tmp ? w->tmp : w->path;
}

static int wfail(pst_tfrecord_writer *w, int code) {
    if (w->failed == 0)
        w->failed = code;
    return code;
}

static int drain(pst_tfrecord_writer *w, pst_status *st) {
    if (w->out_len == 0)
        return 0;
    int rc = pst_file_write_all(w->fd, w->out, w->out_len, wname(w), st);
    w->out_len = 0;
    return rc < 0 ? wfail(w, rc) : 0;
}

/* Runs deflate over the pending input with the given flush mode until it wants no more room. */
static int deflate_run(pst_tfrecord_writer *w, int flush, pst_status *st) {
    for (;;) {
        w->z.next_out = w->out + w->out_len;
        w->z.avail_out = (uInt)(IO_BUF - w->out_len);
        int zr = deflate(&w->z, flush);
        w->out_len = IO_BUF - w->z.avail_out;
        if (zr == Z_STREAM_ERROR)
            return wfail(w, pst_status_set(st, PST_E_INTERNAL, "%s: deflate failed", wname(w)));
        if (w->out_len == IO_BUF && drain(w, st) < 0)
            return w->failed;
        if (flush == Z_FINISH) {
            if (zr == Z_STREAM_END)
                return 0;
            continue;
        }
        /* Done when deflate left output room (all input taken, flush complete). */
        if (w->z.avail_out != 0 && w->z.avail_in == 0)
            return 0;
    }
}

static int sink(pst_tfrecord_writer *w, const void *p, size_t n, pst_status *st) {
    if (w->comp == PST_TFRECORD_NONE) {
        if (n >= IO_BUF) {
            if (drain(w, st) < 0)
                return w->failed;
            int rc = pst_file_write_all(w->fd, p, n, wname(w), st);
            return rc < 0 ? wfail(w, rc) : 0;
        }
        if (n > IO_BUF - w->out_len && drain(w, st) < 0)
            return w->failed;
        memcpy(w->out + w->out_len, p, n);
        w->out_len += n;
        return 0;
    }
    const uint8_t *q = p;
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        w->z.next_in = (Bytef *)q;
        w->z.avail_in = chunk;
        if (deflate_run(w, Z_NO_FLUSH, st) < 0)
            return w->failed;
        q += chunk;
        n -= chunk;
    }
    return 0;
}

pst_tfrecord_writer *
pst_tfrecord_writer_open(const char *path, const pst_tfrecord_writer_opts *opts, pst_status *st) {
    pst_tfrecord_writer_opts o = {0};
    if (opts)
        o = *opts;
    if (o.compression != PST_TFRECORD_NONE && o.compression != PST_TFRECORD_ZLIB &&
        o.compression != PST_TFRECORD_GZIP) {
        pst_status_set(st, PST_E_INVALID, "%s: a writer needs compression none, zlib or gzip",
                       path);
        return NULL;
    }
    if (o.level < 0 || o.level > 9) {
        pst_status_set(st, PST_E_INVALID, "%s: compression level %d is not in 0..9", path, o.level);
        return NULL;
    }
    pst_tfrecord_writer *w = calloc(1, sizeof *w);
    if (w == NULL)
        goto oom;
    w->fd = -1;
    w->comp = o.compression;
    w->path = strdup(path);
    w->out = malloc(IO_BUF);
    if (w->path == NULL || w->out == NULL)
        goto oom;
    if (o.atomic) {
        size_t n = strlen(path) + 32;
        if ((w->tmp = malloc(n)) == NULL)
            goto oom;
        snprintf(w->tmp, n, "%s.tmp%ld", path, (long)getpid());
    }
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (o.exclusive && !o.atomic ? O_EXCL : O_TRUNC);
    w->fd = open(wname(w), flags, 0644);
    if (w->fd < 0) {
        pst_status_set(st, errno == EEXIST ? PST_E_EXISTS : PST_E_IO, "cannot create %s: %s",
                       wname(w), strerror(errno));
        goto fail;
    }
    if (w->comp != PST_TFRECORD_NONE) {
        int bits = w->comp == PST_TFRECORD_GZIP ? 15 + 16 : 15;
        int level = o.level ? o.level : Z_DEFAULT_COMPRESSION;
        if (deflateInit2(&w->z, level, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            pst_status_set(st, PST_E_EXHAUSTED, "%s: cannot start a %s stream", path,
                           names[w->comp]);
            goto fail;
        }
        w->z_live = 1;
    }
    return w;
oom:
    pst_status_set(st, PST_E_EXHAUSTED, "out of memory opening %s", path);
fail:
    pst_tfrecord_writer_abort(w);
    return NULL;
}

int pst_tfrecord_writer_write(pst_tfrecord_writer *w, const void *data, size_t len,
                              pst_status *st) {
    if (w->failed)
        return pst_status_set(st, w->failed, "%s: the writer failed earlier", wname(w));
    uint8_t hdr[HEADER], foot[FOOTER];
    put_le64(hdr, (uint64_t)len);
    put_le32(hdr + 8, pst_crc32c_mask(pst_crc32c(0, hdr, 8)));
    put_le32(foot, pst_crc32c_mask(pst_crc32c(0, data, len)));
    if (sink(w, hdr, HEADER, st) < 0 || sink(w, data, len, st) < 0 || sink(w, foot, FOOTER, st) < 0)
        return w->failed;
    w->count++;
    return 0;
}

int pst_tfrecord_writer_flush(pst_tfrecord_writer *w, pst_status *st) {
    if (w->failed)
        return pst_status_set(st, w->failed, "%s: the writer failed earlier", wname(w));
    if (w->z_live) {
        w->z.next_in = NULL;
        w->z.avail_in = 0;
        if (deflate_run(w, Z_SYNC_FLUSH, st) < 0)
            return w->failed;
    }
    if (drain(w, st) < 0)
        return w->failed;
    if (fsync(w->fd) < 0)
        return wfail(w, pst_status_set(st, PST_E_IO, "fsync %s: %s", wname(w), strerror(errno)));
    return 0;
}

int pst_tfrecord_writer_close(pst_tfrecord_writer *w, pst_status *st) {
    int rc =
        w->failed ? pst_status_set(st, w->failed, "%s: the writer failed earlier", wname(w)) : 0;
    if (rc == 0 && w->z_live) {
        w->z.next_in = NULL;
        w->z.avail_in = 0;
        rc = deflate_run(w, Z_FINISH, st);
    }
    if (rc == 0)
        rc = drain(w, st);
    if (rc == 0 && fsync(w->fd) < 0)
        rc = pst_status_set(st, PST_E_IO, "fsync %s: %s", wname(w), strerror(errno));
    if (close(w->fd) < 0 && rc == 0)
        rc = pst_status_set(st, PST_E_IO, "close %s: %s", wname(w), strerror(errno));
    w->fd = -1;
    if (rc == 0 && w->tmp && rename(w->tmp, w->path) < 0)
        rc = pst_status_set(st, PST_E_IO, "rename %s to %s: %s", w->tmp, w->path, strerror(errno));
    if (rc == 0) {
        free(w->tmp); /* renamed: nothing left for abort to remove */
        w->tmp = NULL;
        rc = pst_file_fsync_dir_of(w->path, st);
    }
    pst_tfrecord_writer_abort(w);
    return rc;
}

void pst_tfrecord_writer_abort(pst_tfrecord_writer *w) {
    if (w == NULL)
        return;
    if (w->z_live)
        deflateEnd(&w->z);
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp)
        unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    free(w->out);
    free(w);
}

int64_t pst_tfrecord_writer_count(const pst_tfrecord_writer *w) {
    return w->count;
}
const char *pst_tfrecord_writer_path(const pst_tfrecord_writer *w) {
    return w->path;
}

/* ======================================== reader ======================================== */

struct pst_tfrecord_reader {
    char *path;
    int fd;
    pst_tfrecord_compression comp;
    size_t max_record;
    uint64_t file_size; /* refreshed when a record seems to run past it (a growing file) */
    uint8_t *in;        /* raw file bytes: [in_pos, in_len) not yet consumed */
    size_t in_pos, in_len;
    int in_eof;
    z_stream z;
    int z_live, z_end; /* z_end: the compressed stream has ended */
    uint64_t pos;      /* bytes consumed from the uncompressed record stream */
    uint64_t file_pos; /* bytes consumed from the file (uncompressed files) */
    uint8_t *rec;      /* the current record */
    size_t rec_cap;
    int64_t index;       /* of the last record returned */
    uint64_t offset;     /* its offset */
    int64_t cur_index;   /* of the record being read (for errors) */
    uint64_t cur_offset; /* its offset */
    int failed;
};

static const char *stream_word(const pst_tfrecord_reader *r) {
    return r->comp == PST_TFRECORD_NONE ? "" : " of the uncompressed stream";
}

/* Records the first error (errors are sticky) and returns its code. */
static int rfail(pst_tfrecord_reader *r, int code) {
    if (r->failed == 0)
        r->failed = code;
    return code;
}

/* An error about the record being read: "<path>: record N at offset X: <what>". */
static int rerr(pst_tfrecord_reader *r, int code, pst_status *st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int rerr(pst_tfrecord_reader *r, int code, pst_status *st, const char *fmt, ...) {
    char what[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return rfail(r, pst_status_set(st, code, "%s: record %lld at offset %llu%s: %s", r->path,
                                   (long long)r->cur_index, (unsigned long long)r->cur_offset,
                                   stream_word(r), what));
}

/* Tops up the input buffer (moving unconsumed bytes to its start); sets in_eof at the end. One
 * read per call, so a reader following a live file never blocks for long. */
static int refill(pst_tfrecord_reader *r, pst_status *st) {
    if (r->in_pos > 0) {
        memmove(r->in, r->in + r->in_pos, r->in_len - r->in_pos);
        r->in_len -= r->in_pos;
        r->in_pos = 0;
    }
    while (r->in_len < IO_BUF && !r->in_eof) {
        ssize_t n = read(r->fd, r->in + r->in_len, IO_BUF - r->in_len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return rerr(r, PST_E_IO, st, "read failed: %s", strerror(errno));
        if (n == 0)
            r->in_eof = 1;
        r->in_len += (size_t)n;
        break;
    }
    return 0;
}

/* Uncompressed: copies up to n bytes from the file. */
static int raw_read(pst_tfrecord_reader *r, uint8_t *dst, size_t n, size_t *got, pst_status *st) {
    while (*got < n) {
        if (r->in_pos == r->in_len) {
            if (r->in_eof)
                break;
            if (refill(r, st) < 0)
                return r->failed;
            continue;
        }
        size_t k = r->in_len - r->in_pos;
        if (k > n - *got)
            k = n - *got;
        memcpy(dst + *got, r->in + r->in_pos, k);
        r->in_pos += k;
        *got += k;
    }
    return 0;
}

/* Compressed: inflates up to n bytes. Running out of file before the stream's end is an error
 * (a torn file), wherever it happens. */
static int inflate_read(pst_tfrecord_reader *r, uint8_t *dst, size_t n, size_t *got,
                        pst_status *st) {
    while (*got < n) {
        if (r->in_pos == r->in_len && !r->in_eof && refill(r, st) < 0)
            return r->failed;
        if (r->z_end) {
            /* Concatenated gzip members are one stream (as gzip -d reads them); anything after
             * a zlib stream is corrupt. */
            if (r->in_pos == r->in_len) {
                if (r->in_eof)
                    return 0;
                continue;
            }
            if (r->comp != PST_TFRECORD_GZIP)
                return rerr(r, PST_E_DATA_LOSS, st, "bytes after the end of the zlib stream");
            inflateReset(&r->z);
            r->z_end = 0;
        }
        size_t room = n - *got;
        r->z.next_in = r->in + r->in_pos;
        r->z.avail_in = (uInt)(r->in_len - r->in_pos);
        r->z.next_out = dst + *got;
        r->z.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
        uInt before = r->z.avail_out;
        int zr = inflate(&r->z, Z_NO_FLUSH);
        r->in_pos = r->in_len - r->z.avail_in;
        *got += before - r->z.avail_out;
        if (zr == Z_STREAM_END) {
            r->z_end = 1;
        } else if (zr == Z_MEM_ERROR) {
            return rerr(r, PST_E_EXHAUSTED, st, "out of memory inflating");
        } else if (zr == Z_BUF_ERROR) {
            if (r->in_pos == r->in_len && r->in_eof)
                return rerr(r, PST_E_DATA_LOSS, st,
                            "the %s stream is truncated (the file ends without the stream's "
                            "trailer, at uncompressed offset %llu)",
                            names[r->comp], (unsigned long long)(r->pos + *got));
        } else if (zr != Z_OK) {
            return rerr(r, PST_E_DATA_LOSS, st,
                        "corrupt %s stream near uncompressed offset %llu: %s", names[r->comp],
                        (unsigned long long)(r->pos + *got),
                        r->z.msg ? r->z.msg : "inflate failed");
        }
    }
    return 0;
}

/* Reads up to n bytes of the record stream into dst; *got < n only at the stream's end. */
static int src_read(pst_tfrecord_reader *r, uint8_t *dst, size_t n, size_t *got, pst_status *st) {
    *got = 0;
    int rc = r->z_live ? inflate_read(r, dst, n, got, st) : raw_read(r, dst, n, got, st);
    if (rc < 0)
        return rc;
    r->pos += *got;
    if (!r->z_live)
        r->file_pos += *got;
    return 0;
}

static pst_tfrecord_compression detect(const uint8_t *b, size_t n) {
    if (n >= HEADER && pst_crc32c_mask(pst_crc32c(0, b, 8)) == le32(b + 8))
        return PST_TFRECORD_NONE;
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        return PST_TFRECORD_GZIP;
    if (n >= 2 && (b[0] & 0x0f) == 8 && (b[0] >> 4) <= 7 && ((b[0] << 8) | b[1]) % 31 == 0)
        return PST_TFRECORD_ZLIB;
    return PST_TFRECORD_NONE;
}

pst_tfrecord_reader *
pst_tfrecord_reader_open(const char *path, const pst_tfrecord_reader_opts *opts, pst_status *st) {
    pst_tfrecord_reader_opts o = {.compression = PST_TFRECORD_AUTO};
    if (opts)
        o = *opts;
    if ((unsigned)o.compression >= PST_TFRECORD_COMPRESSION_COUNT) {
        pst_status_set(st, PST_E_INVALID, "%s: unknown record compression %d", path,
                       (int)o.compression);
        return NULL;
    }
    pst_tfrecord_reader *r = calloc(1, sizeof *r);
    if (r == NULL || (r->path = strdup(path)) == NULL || (r->in = malloc(IO_BUF)) == NULL) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory opening %s", path);
        if (r)
            r->fd = -1;
        pst_tfrecord_reader_free(r);
        return NULL;
    }
    r->index = -1;
    r->max_record = o.max_record ? o.max_record : PST_TFRECORD_MAX_RECORD_DEFAULT;
    if (r->max_record > SIZE_MAX / 2)
        r->max_record = SIZE_MAX / 2; /* n + footer cannot wrap */
    /* O_NONBLOCK: opening a FIFO with no writer must not hang; regular files ignore it. */
    r->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (r->fd < 0) {
        pst_status_set(st, errno == ENOENT ? PST_E_NOT_FOUND : PST_E_IO, "cannot open %s: %s", path,
                       strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(r->fd, &sb) < 0) {
        pst_status_set(st, PST_E_IO, "cannot stat %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        pst_status_set(st, PST_E_INVALID, "%s is not a regular file", path);
        goto fail;
    }
    r->file_size = (uint64_t)sb.st_size;
    r->comp = o.compression;
    if (r->comp == PST_TFRECORD_AUTO) {
        while (r->in_len < HEADER && !r->in_eof)
            if (refill(r, st) < 0)
                goto fail;
        r->comp = detect(r->in, r->in_len);
    }
    if (r->comp != PST_TFRECORD_NONE) {
        int bits = r->comp == PST_TFRECORD_GZIP ? 15 + 16 : 15;
        if (inflateInit2(&r->z, bits) != Z_OK) {
            pst_status_set(st, PST_E_EXHAUSTED, "%s: cannot start inflating", path);
            goto fail;
        }
        r->z_live = 1;
    }
    return r;
fail:
    pst_tfrecord_reader_free(r);
    return NULL;
}

/* Makes room for n bytes of record (n already checked against the cap). */
static int rec_reserve(pst_tfrecord_reader *r, size_t n, pst_status *st) {
    if (n <= r->rec_cap)
        return 0;
    uint8_t *p = realloc(r->rec, n);
    if (p == NULL)
        return rerr(r, PST_E_EXHAUSTED, st, "out of memory for %zu bytes", n);
    r->rec = p;
    r->rec_cap = n;
    return 0;
}

int pst_tfrecord_reader_next(pst_tfrecord_reader *r, const uint8_t **data, size_t *len,
                             pst_status *st) {
    *data = NULL;
    *len = 0;
    if (r->failed)
        return pst_status_set(st, r->failed, "%s: the reader stopped at an earlier error", r->path);
    r->cur_index = r->index + 1;
    r->cur_offset = r->pos;
    uint8_t hdr[HEADER], foot[FOOTER];
    size_t got;
    if (src_read(r, hdr, HEADER, &got, st) < 0)
        return r->failed;
    if (got == 0) {
        /* A clean end. An uncompressed file may still grow (a live event file): the next call
         * reads again. */
        if (!r->z_live)
            r->in_eof = 0;
        return 0;
    }
    if (got < HEADER)
        return rerr(r, PST_E_DATA_LOSS, st, "truncated: %zu of its 12 header bytes", got);
    uint32_t want = le32(hdr + 8), have = pst_crc32c_mask(pst_crc32c(0, hdr, 8));
    if (want != have)
        return rerr(r, PST_E_DATA_LOSS, st,
                    "corrupt length (its checksum 0x%08x does not match the stored 0x%08x)", have,
                    want);
    uint64_t n = le64(hdr);
    if (n > r->max_record)
        return rerr(r, PST_E_DATA_LOSS, st,
                    "claims %llu bytes, more than the %zu-byte limit on one record",
                    (unsigned long long)n, r->max_record);
    if (!r->z_live) {
        /* The record and its footer must fit in what is left of the file (re-read its size
         * once: a live file may have grown). */
        uint64_t need = n + FOOTER;
        if (r->file_size < r->file_pos || need > r->file_size - r->file_pos) {
            struct stat sb;
            if (fstat(r->fd, &sb) == 0)
                r->file_size = (uint64_t)sb.st_size;
        }
        if (r->file_size < r->file_pos || need > r->file_size - r->file_pos)
            return rerr(
                r, PST_E_DATA_LOSS, st,
                "claims %llu bytes but only %llu remain in the file (truncated)",
                (unsigned long long)n,
                (unsigned long long)(r->file_size >= r->file_pos ? r->file_size - r->file_pos : 0));
        if (rec_reserve(r, (size_t)n, st) < 0)
            return r->failed;
        if (src_read(r, r->rec, (size_t)n, &got, st) < 0)
            return r->failed;
    } else {
        /* Grow the buffer only as decompressed bytes arrive, so a length within the cap that
         * the stream does not back costs no memory. */
        got = 0;
        while (got < n) {
            size_t target = r->rec_cap > got ? r->rec_cap : got * 2;
            if (target < IO_BUF)
                target = IO_BUF;
            if (target > n)
                target = (size_t)n;
            if (rec_reserve(r, target, st) < 0)
                return r->failed;
            size_t ask = target - got, k;
            if (src_read(r, r->rec + got, ask, &k, st) < 0)
                return r->failed;
            got += k;
            if (k < ask)
                break; /* end of stream */
        }
    }
    if (got < n)
        return rerr(r, PST_E_DATA_LOSS, st, "truncated: %zu of its %llu data bytes", got,
                    (unsigned long long)n);
    if (src_read(r, foot, FOOTER, &got, st) < 0)
        return r->failed;
    if (got < FOOTER)
        return rerr(r, PST_E_DATA_LOSS, st, "truncated: %zu of its 4 checksum bytes", got);
    want = le32(foot);
    have = pst_crc32c_mask(pst_crc32c(0, r->rec, (size_t)n));
    if (want != have)
        return rerr(r, PST_E_DATA_LOSS, st,
                    "data checksum mismatch over %llu bytes (computed 0x%08x, stored 0x%08x)",
                    (unsigned long long)n, have, want);
    r->index = r->cur_index;
    r->offset = r->cur_offset;
    *data = r->rec ? r->rec : (const uint8_t *)""; /* never NULL, even for an empty record */
    *len = (size_t)n;
    return 1;
}

int64_t pst_tfrecord_reader_index(const pst_tfrecord_reader *r) {
    return r->index;
}
uint64_t pst_tfrecord_reader_offset(const pst_tfrecord_reader *r) {
    return r->offset;
}
pst_tfrecord_compression pst_tfrecord_reader_compression(const pst_tfrecord_reader *r) {
    return r->comp;
}
const char *pst_tfrecord_reader_path(const pst_tfrecord_reader *r) {
    return r->path;
}

void pst_tfrecord_reader_free(pst_tfrecord_reader *r) {
    if (r == NULL)
        return;
    if (r->z_live)
        inflateEnd(&r->z);
    if (r->fd >= 0)
        close(r->fd);
    free(r->path);
    free(r->in);
    free(r->rec);
    free(r);
}

int pst_tfrecord_count(const char *path, const pst_tfrecord_reader_opts *opts, int64_t *count,
                       pst_status *st) {
    *count = 0;
    pst_tfrecord_reader *r = pst_tfrecord_reader_open(path, opts, st);
    if (r == NULL)
        return st ? st->code : PST_E_IO;
    const uint8_t *d;
    size_t n;
    int rc;
    while ((rc = pst_tfrecord_reader_next(r, &d, &n, st)) == 1)
        (*count)++;
    pst_tfrecord_reader_free(r);
    return rc;
}
