/*
 * tfrecord — TensorFlow's record files (TFRecordWriter / TFRecordReader), streamed.
 *
 * A file is a sequence of records, each framed as
 *
 *     uint64 length (little-endian) | uint32 masked crc32c(length bytes) | data | uint32 masked
 *     crc32c(data)
 *
 * With ZLIB compression the whole sequence is one zlib-wrapped deflate stream, with GZIP one gzip
 * stream (TFRecordOptions' ZLIB and GZIP): the framing is inside the compressed stream.
 *
 *     pst_tfrecord_writer_opts wo = {.compression = PST_TFRECORD_GZIP, .atomic = 1};
 *     pst_tfrecord_writer *w = pst_tfrecord_writer_open("train.tfrecord.gz", &wo, &st);
 *     pst_tfrecord_writer_write(w, bytes, n, &st);
 *     if (pst_tfrecord_writer_close(w, &st) < 0) ...   // flushed, fsync'd, renamed into place
 *
 *     pst_tfrecord_reader *r = pst_tfrecord_reader_open("train.tfrecord.gz", NULL, &st);
 *     const uint8_t *rec; size_t len; int rc;
 *     while ((rc = pst_tfrecord_reader_next(r, &rec, &len, &st)) == 1) { ... }
 *     pst_tfrecord_reader_free(r);                       // rc < 0: st names file and record
 *
 * The reader never loads the whole file: it holds one input buffer and the largest record seen.
 * A record's length is checked against its checksum, a cap and (uncompressed) the bytes left in
 * the file before any memory is allocated for it; in a compressed file the record buffer grows
 * only as decompressed bytes actually arrive. Both checksums are verified on every record.
 */
#ifndef PST_TFRECORD_H
#define PST_TFRECORD_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef enum pst_tfrecord_compression {
    PST_TFRECORD_NONE = 0,
    PST_TFRECORD_ZLIB = 1,
    PST_TFRECORD_GZIP = 2,
    /* Readers only: uncompressed when the first record's length checksum holds, else gzip or
     * zlib by their header bytes. */
    PST_TFRECORD_AUTO = 3,
    PST_TFRECORD_COMPRESSION_COUNT
} pst_tfrecord_compression;

/* "none", "zlib", "gzip", "auto". */
const char *pst_tfrecord_compression_name(pst_tfrecord_compression c);
/* Parses one of those names (also TF's "", "ZLIB", "GZIP"; case-insensitive). */
int pst_tfrecord_compression_parse(const char *name, pst_tfrecord_compression *out, pst_status *st);

/* The default cap on one record's length, a guard against corrupt or hostile lengths. */
#define PST_TFRECORD_MAX_RECORD_DEFAULT ((size_t)256 << 20)

/* ---- writing ---- */

typedef struct pst_tfrecord_writer pst_tfrecord_writer;

typedef struct pst_tfrecord_writer_opts {
    pst_tfrecord_compression compression; /* NONE, ZLIB or GZIP */
    int level;     /* zlib level 1..9; 0 means zlib's default (6), as TF's default */
    int atomic;    /* write to "<path>.tmp<pid>"; close renames it over path, abort removes it */
    int exclusive; /* fail with PST_E_EXISTS when path already exists (non-atomic writers) */
} pst_tfrecord_writer_opts;

/* Creates path (truncating it unless exclusive). opts NULL: uncompressed, written in place.
 * Returns a writer the caller closes, or NULL with st naming the path. */
pst_tfrecord_writer *pst_tfrecord_writer_open(const char *path,
                                              const pst_tfrecord_writer_opts *opts, pst_status *st);
/* Appends one record (copied). After any error the writer is failed: later calls repeat it. */
int pst_tfrecord_writer_write(pst_tfrecord_writer *w, const void *data, size_t len, pst_status *st);
/* Makes every record written so far readable from the file and durable: drains the buffers (a
 * compressed stream is sync-flushed to a byte boundary) and fsyncs the file. */
int pst_tfrecord_writer_flush(pst_tfrecord_writer *w, pst_status *st);
/* Finishes the stream, fsyncs the file, renames it into place (atomic writers) and fsyncs the
 * directory. Frees w whatever the outcome; an atomic writer that fails leaves no file. */
int pst_tfrecord_writer_close(pst_tfrecord_writer *w, pst_status *st);
/* Frees w without finishing: an atomic writer's temporary file is removed, a plain writer's file
 * keeps what reached it. NULL is fine. */
void pst_tfrecord_writer_abort(pst_tfrecord_writer *w);
/* Records written so far. */
int64_t pst_tfrecord_writer_count(const pst_tfrecord_writer *w);
/* The final path (borrowed). */
const char *pst_tfrecord_writer_path(const pst_tfrecord_writer *w);

/* ---- reading ---- */

typedef struct pst_tfrecord_reader pst_tfrecord_reader;

typedef struct pst_tfrecord_reader_opts {
    pst_tfrecord_compression compression; /* what the file holds, or AUTO */
    size_t max_record;                    /* 0: PST_TFRECORD_MAX_RECORD_DEFAULT */
} pst_tfrecord_reader_opts;

/* Opens a regular file (a FIFO or directory is an error, never a hang). opts NULL: AUTO with
 * the default cap. Returns a reader the caller frees, or NULL with st naming the path. */
pst_tfrecord_reader *pst_tfrecord_reader_open(const char *path,
                                              const pst_tfrecord_reader_opts *opts, pst_status *st);
/* Reads the next record: 1 with *data and *len valid until the next call or free, 0 at a clean end
 * of the file, or a negative code (PST_E_DATA_LOSS for bad checksums, truncation, corrupt
 * compressed data or a length over the cap; PST_E_IO) with st naming the file, the record's
 * number (0-based) and its offset in the (uncompressed) record stream. Errors are sticky.
 * After 0, an uncompressed file is read again on the next call, so a reader can follow a file
 * that is still being written (a record cut in half by the writer is still truncation). */
int pst_tfrecord_reader_next(pst_tfrecord_reader *r, const uint8_t **data, size_t *len,
                             pst_status *st);
/* Number of the record the last successful next returned (-1 before the first). */
int64_t pst_tfrecord_reader_index(const pst_tfrecord_reader *r);
/* Offset of that record's header in the uncompressed record stream. */
uint64_t pst_tfrecord_reader_offset(const pst_tfrecord_reader *r);
/* The compression in use (AUTO resolved). */
pst_tfrecord_compression pst_tfrecord_reader_compression(const pst_tfrecord_reader *r);
const char *pst_tfrecord_reader_path(const pst_tfrecord_reader *r);
void pst_tfrecord_reader_free(pst_tfrecord_reader *r); /* NULL is fine */

/* Counts the records of a file, verifying every checksum on the way. */
int pst_tfrecord_count(const char *path, const pst_tfrecord_reader_opts *opts, int64_t *count,
                       pst_status *st);

#endif
