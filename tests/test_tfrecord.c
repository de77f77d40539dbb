/* TFRecord files: round trips for every compression, TensorFlow's own file, an independent
 * Python reader and writer (tests/tfrecord_check.py), and damaged or hostile files. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "crc32c.h"
#include "testutil.h"
#include "tfrecord.h"

static const pst_tfrecord_compression comps[3] = {PST_TFRECORD_NONE, PST_TFRECORD_ZLIB,
                                                  PST_TFRECORD_GZIP};
static char tmpdir[256];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pst_tfrecord_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *tmp_path(const char *name) {
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static const char *source_dir(void) {
    const char *s = getenv("PST_SOURCE_DIR");
    return s ? s : ".";
}

/* Runs a shell command; its stdout and stderr go to out. Returns the exit status. */
static int run(const char *cmd, char *out, size_t len) {
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    ck_assert(WIFEXITED(status));
    int rc = WEXITSTATUS(status);
    ck_assert_msg(rc != 127, "command not found (install python3): %s\n%s", cmd, out);
    return rc;
}

/* Record i of the test files: (i * 7 + j) & 0xff for j < (i * 37) % 1000, as the Python
 * script writes them; record 5 is made large so it spans several buffers. */
static size_t rec_len(int i) {
    return i == 5 ? 300000 : (size_t)((i * 37) % 1000);
}
static void rec_fill(int i, uint8_t *buf) {
    for (size_t j = 0; j < rec_len(i); j++)
        buf[j] = (uint8_t)((i * 7 + j) & 0xff);
}

static void write_records(const char *path, pst_tfrecord_compression c, int n) {
    pst_status st = {0};
    pst_tfrecord_writer_opts o = {.compression = c};
    pst_tfrecord_writer *w = pst_tfrecord_writer_open(path, &o, &st);
    ck_assert_msg(w != NULL, "%s", st.msg);
    uint8_t *buf = malloc(300000);
    for (int i = 0; i < n; i++) {
        rec_fill(i, buf);
        ck_assert_msg(pst_tfrecord_writer_write(w, buf, rec_len(i), &st) == 0, "%s", st.msg);
    }
    free(buf);
    ck_assert_int_eq(pst_tfrecord_writer_count(w), n);
    ck_assert_msg(pst_tfrecord_writer_close(w, &st) == 0, "%s", st.msg);
}

/* Reads path expecting records 0..n-1 as rec_fill makes them (record 5 short when the Python
 * script wrote the file: python_layout). */
static void check_records(const char *path, pst_tfrecord_compression c, int n, int python_layout) {
    pst_status st = {0};
    pst_tfrecord_reader_opts o = {.compression = c};
    pst_tfrecord_reader *r = pst_tfrecord_reader_open(path, &o, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    uint8_t *want = malloc(300000);
    const uint8_t *d;
    size_t len;
    for (int i = 0; i < n; i++) {
        ck_assert_msg(pst_tfrecord_reader_next(r, &d, &len, &st) == 1, "%s", st.msg);
        size_t wl = python_layout ? (size_t)((i * 37) % 1000) : rec_len(i);
        for (size_t j = 0; j < wl; j++)
            want[j] = (uint8_t)((i * 7 + j) & 0xff);
        ck_assert_uint_eq(len, wl);
        ck_assert(memcmp(d, want, wl) == 0);
        ck_assert_int_eq(pst_tfrecord_reader_index(r), i);
    }
    ck_assert_int_eq(pst_tfrecord_reader_next(r, &d, &len, &st), 0);
    free(want);
    pst_tfrecord_reader_free(r);
}

START_TEST(test_round_trip) {
    setup();
    pst_tfrecord_compression c = comps[_i];
    const char *path = tmp_path("r.tfrecord");
    write_records(path, c, 12);
    check_records(path, c, 12, 0);
    /* Detected, too. */
    pst_tfrecord_reader *r = pst_tfrecord_reader_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(pst_tfrecord_reader_compression(r), c);
    pst_tfrecord_reader_free(r);
    check_records(path, PST_TFRECORD_AUTO, 12, 0);
    int64_t count;
    ck_assert_int_eq(pst_tfrecord_count(path, NULL, &count, NULL), 0);
    ck_assert_int_eq(count, 12);
    teardown();
}
END_TEST

START_TEST(test_offsets_of_records) {
    setup();
    const char *path = tmp_path("o.tfrecord");
    write_records(path, PST_TFRECORD_NONE, 3);
    pst_tfrecord_reader *r = pst_tfrecord_reader_open(path, NULL, NULL);
    const uint8_t *d;
    size_t len;
    uint64_t off = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(pst_tfrecord_reader_next(r, &d, &len, NULL), 1);
        ck_assert_uint_eq(pst_tfrecord_reader_offset(r), off);
        off += 16 + len;
    }
    pst_tfrecord_reader_free(r);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_uint_eq((uint64_t)sb.st_size, off);
    teardown();
}
END_TEST

START_TEST(test_reads_tensorflow_file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/tf/rust_tfrecord/expected.tfrecord", source_dir());
    pst_status st = {0};
    pst_tfrecord_reader *r = pst_tfrecord_reader_open(path, NULL, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    const uint8_t *d;
    size_t len;
    ck_assert_msg(pst_tfrecord_reader_next(r, &d, &len, &st) == 1, "%s", st.msg);
    ck_assert_uint_eq(len, 19);
    ck_assert(memcmp(d, "The Quick Brown Fox", 19) == 0);
    ck_assert_int_eq(pst_tfrecord_reader_next(r, &d, &len, &st), 0);
    ck_assert_int_eq(pst_tfrecord_reader_compression(r), PST_TFRECORD_NONE);
    pst_tfrecord_reader_free(r);
}
END_TEST

/* Our writer's file, read by the Python script: lengths and zlib CRC-32s agree. */
START_TEST(test_python_reads_ours) {
    setup();
    pst_tfrecord_compression c = comps[_i];
    const char *path = tmp_path("p.tfrecord");
    write_records(path, c, 8);
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd, "python3 %s/tests/tfrecord_check.py read %s %s 2>&1", source_dir(),
             path, pst_tfrecord_compression_name(c));
    ck_assert_msg(run(cmd, out, sizeof out) == 0, "%s", out);
    uint8_t *buf = malloc(300000);
    char *line = out;
    for (int i = 0; i < 8; i++) {
        rec_fill(i, buf);
        char want[64];
        snprintf(want, sizeof want, "%d %zu %08lx\n", i, rec_len(i),
                 (unsigned long)crc32(0, buf, (uInt)rec_len(i)));
        ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "want %s got %s", want, line);
        line += strlen(want);
    }
    ck_assert_str_eq(line, "records 8\n");
    free(buf);
    teardown();
}
END_TEST

/* A file the Python script wrote (Python's zlib and gzip modules), read by ours. */
START_TEST(test_reads_python_written) {
    setup();
    pst_tfrecord_compression c = comps[_i];
    const char *path = tmp_path("py.tfrecord");
    char cmd[2048], out[4096];
    snprintf(cmd, sizeof cmd, "python3 %s/tests/tfrecord_check.py write %s %s 30 2>&1",
             source_dir(), path, pst_tfrecord_compression_name(c));
    ck_assert_msg(run(cmd, out, sizeof out) == 0, "%s", out);
    check_records(path, c, 30, 1);
    check_records(path, PST_TFRECORD_AUTO, 30, 1);
    teardown();
}
END_TEST

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len ? *len : 1);
    ck_assert_uint_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, len, f), len);
    fclose(f);
}

/* Reads to the first error; returns its code, with st filled. */
static int read_all(const char *path, pst_tfrecord_compression c, size_t max_record, int64_t *good,
                    pst_status *st) {
    pst_tfrecord_reader_opts o = {.compression = c, .max_record = max_record};
    pst_tfrecord_reader *r = pst_tfrecord_reader_open(path, &o, st);
    ck_assert_msg(r != NULL, "%s", st->msg);
    const uint8_t *d;
    size_t len;
    int rc;
    *good = 0;
    while ((rc = pst_tfrecord_reader_next(r, &d, &len, st)) == 1)
        (*good)++;
    /* Errors are sticky. */
    if (rc < 0)
        ck_assert_int_eq(pst_tfrecord_reader_next(r, &d, &len, NULL), rc);
    pst_tfrecord_reader_free(r);
    return rc;
}

START_TEST(test_length_checksum_names_file_and_record) {
    setup();
    const char *path = tmp_path("len.tfrecord");
    write_records(path, PST_TFRECORD_NONE, 3);
    size_t len;
    uint8_t *b = slurp(path, &len);
    size_t off1 = 16 + rec_len(0); /* record 1's header */
    b[off1 + 1] ^= 0x01;
    spit(path, b, len);
    free(b);
    pst_status st = {0};
    int64_t good;
    ck_assert_int_eq(read_all(path, PST_TFRECORD_NONE, 0, &good, &st), PST_E_DATA_LOSS);
    ck_assert_int_eq(good, 1);
    ck_assert_ptr_nonnull(strstr(st.msg, path));
    ck_assert_ptr_nonnull(strstr(st.msg, "record 1 "));
    char where[64];
    snprintf(where, sizeof where, "offset %zu", off1);
    ck_assert_msg(strstr(st.msg, where) != NULL, "%s", st.msg);
    ck_assert_ptr_nonnull(strstr(st.msg, "length"));
    teardown();
}
END_TEST

START_TEST(test_data_checksum_names_file_and_record) {
    setup();
    const char *path = tmp_path("data.tfrecord");
    write_records(path, PST_TFRECORD_NONE, 4);
    size_t len;
    uint8_t *b = slurp(path, &len);
    size_t off2 = 32 + rec_len(0) + rec_len(1);
    b[off2 + 12 + 5] ^= 0x80; /* a data byte of record 2 */
    spit(path, b, len);
    free(b);
    pst_status st = {0};
    int64_t good;
    ck_assert_int_eq(read_all(path, PST_TFRECORD_NONE, 0, &good, &st), PST_E_DATA_LOSS);
    ck_assert_int_eq(good, 2);
    ck_assert_ptr_nonnull(strstr(st.msg, path));
    ck_assert_ptr_nonnull(strstr(st.msg, "record 2 "));
    char where[64];
    snprintf(where, sizeof where, "offset %zu", off2);
    ck_assert_msg(strstr(st.msg, where) != NULL, "%s", st.msg);
    ck_assert_ptr_nonnull(strstr(st.msg, "data checksum"));
    teardown();
}
END_TEST

/* Inside a compressed file the CRC still catches a changed record: rewrite the stream with one
 * payload byte flipped but the compression intact. */
START_TEST(test_data_checksum_inside_compressed_stream) {
    setup();
    const char *plain = tmp_path("plain.tfrecord"), *path = tmp_path("bad.tfrecord.gz");
    write_records(plain, PST_TFRECORD_NONE, 3);
    size_t len;
    uint8_t *b = slurp(plain, &len);
    b[16 + rec_len(0) + 12 + 3] ^= 0x10; /* record 1's data */
    gzFile g = gzopen(path, "wb");
    ck_assert_int_eq(gzwrite(g, b, (unsigned)len), (int)len);
    gzclose(g);
    free(b);
    pst_status st = {0};
    int64_t good;
    ck_assert_int_eq(read_all(path, PST_TFRECORD_GZIP, 0, &good, &st), PST_E_DATA_LOSS);
    ck_assert_int_eq(good, 1);
    ck_assert_ptr_nonnull(strstr(st.msg, "record 1 "));
    ck_assert_ptr_nonnull(strstr(st.msg, "uncompressed stream"));
    ck_assert_ptr_nonnull(strstr(st.msg, "data checksum"));
    teardown();
}
END_TEST

START_TEST(test_corrupt_compressed_stream) {
    setup();
    pst_tfrecord_compression c = comps[1 + _i];
    const char *path = tmp_path("z.tfrecord");
    write_records(path, c, 6);
    size_t len;
    uint8_t *b = slurp(path, &len);
    for (size_t k = len / 3; k < len / 3 + 16; k++)
        b[k] ^= 0x5a;
    spit(path, b, len);
    free(b);
    pst_status st = {0};
    int64_t good;
    ck_assert_int_eq(read_all(path, c, 0, &good, &st), PST_E_DATA_LOSS);
    ck_assert_ptr_nonnull(strstr(st.msg, path));
    ck_assert_ptr_nonnull(strstr(st.msg, "record "));
    teardown();
}
END_TEST

START_TEST(test_truncated_inside_data) {
    setup();
    const char *path = tmp_path("t.tfrecord");
    write_records(path, PST_TFRECORD_NONE, 3);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(truncate(path, sb.st_size - 10), 0);
    pst_status st = {0};
    int64_t good;
    ck_assert_int_eq(read_all(path, PST_TFRECORD_NONE, 0, &good, &st), PST_E_DATA_LOSS);
    ck_assert_int_eq(good, 2);
    ck_assert_ptr_nonnull(strstr(st.msg, path));
    ck_assert_ptr_nonnull(strstr(st.msg, "record 2 "));
    ck_assert_ptr_nonnull(strstr(st.msg, "truncated"));
    teardown();
}
END_TEST

START_TEST(test_truncated_inside_header) {
    setup();
    const char *path = tmp_path("h.tfrecord");
    write_records(path, PST_TFRECORD_NONE, 2);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    int fd = open(path, O_WRONLY | O_APPEND);
    ck_assert_int_eq(write(fd, "\x05\x00\x00\x00\x00", 5), 5); /* 5 of 12 header bytes */
    close(fd);
    pst_status st = {0};
    int64_t good;
    ck_assert_int_eq(read_all(path, PST_TFRECORD_NONE, 0, &good, &st), PST_E_DATA_LOSS);
    ck_assert_int_eq(good, 2);
    ck_assert_ptr_nonnull(strstr(st.msg, "record 2 "));
    ck_assert_ptr_nonnull(strstr(st.msg, "5 of its 12 header bytes"));
    teardown();
}
END_TEST

/* A compressed file cut short (a writer that never closed) is an error, not a quiet end. */
START_TEST(test_truncated_compressed_stream) {
    setup();
    pst_tfrecord_compression c = comps[1 + _i];
    const char *path = tmp_path("tz.tfrecord");
    write_records(path, c, 6);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(truncate(path, sb.st_size - 6), 0);
    pst_status st = {0};
    int64_t good;
    ck_assert_int_eq(read_all(path, c, 0, &good, &st), PST_E_DATA_LOSS);
    ck_assert_ptr_nonnull(strstr(st.msg, path));
    ck_assert_ptr_nonnull(strstr(st.msg, "truncated"));
    teardown();
}
END_TEST

static void header(uint8_t *h, uint64_t len) {
    for (int i = 0; i < 8; i++)
        h[i] = (uint8_t)(len >> (8 * i));
    uint32_t m = pst_crc32c_mask(pst_crc32c(0, h, 8));
    for (int i = 0; i < 4; i++)
        h[8 + i] = (uint8_t)(m >> (8 * i));
}

/* A length with a valid checksum but far beyond the cap is refused before any allocation. */
START_TEST(test_hostile_length_over_cap) {
    setup();
    const char *path = tmp_path("huge.tfrecord");
    uint8_t h[16] = {0};
    header(h, (uint64_t)1 << 62);
    spit(path, h, sizeof h);
    pst_status st = {0};
    int64_t good;
    ck_assert_int_eq(read_all(path, PST_TFRECORD_NONE, 0, &good, &st), PST_E_DATA_LOSS);
    ck_assert_ptr_nonnull(strstr(st.msg, path));
    ck_assert_ptr_nonnull(strstr(st.msg, "record 0 "));
    ck_assert_ptr_nonnull(strstr(st.msg, "4611686018427387904 bytes"));
    ck_assert_ptr_nonnull(strstr(st.msg, "limit"));
    teardown();
}
END_TEST

/* Under the cap but more than the file holds: refused from the file's size, before allocating. */
START_TEST(test_hostile_length_past_end_of_file) {
    setup();
    const char *path = tmp_path("long.tfrecord");
    uint8_t h[40] = {0};
    header(h, 200u << 20);
    spit(path, h, sizeof h);
    pst_status st = {0};
    int64_t good;
    ck_assert_int_eq(read_all(path, PST_TFRECORD_NONE, 0, &good, &st), PST_E_DATA_LOSS);
    ck_assert_ptr_nonnull(strstr(st.msg, "claims 209715200 bytes but only 28 remain"));
    teardown();
}
END_TEST

/* In a compressed stream the size is unknown: a length under the cap that the stream does not
 * back ends as truncation (the buffer grew only with the bytes that came). */
START_TEST(test_hostile_length_in_compressed_stream) {
    setup();
    const char *path = tmp_path("long.tfrecord.gz");
    uint8_t h[100] = {0};
    header(h, 200u << 20);
    gzFile g = gzopen(path, "wb");
    gzwrite(g, h, sizeof h);
    gzclose(g);
    pst_status st = {0};
    int64_t good;
    ck_assert_int_eq(read_all(path, PST_TFRECORD_GZIP, 0, &good, &st), PST_E_DATA_LOSS);
    ck_assert_ptr_nonnull(strstr(st.msg, "truncated: 88 of its 209715200 data bytes"));
    /* A smaller cap refuses it up front. */
    pst_status_clear(&st);
    ck_assert_int_eq(read_all(path, PST_TFRECORD_GZIP, 1 << 20, &good, &st), PST_E_DATA_LOSS);
    ck_assert_ptr_nonnull(strstr(st.msg, "limit"));
    teardown();
}
END_TEST

START_TEST(test_empty_files_hold_no_records) {
    setup();
    for (int k = 0; k < 3; k++) {
        const char *path = tmp_path("empty.tfrecord");
        write_records(path, comps[k], 0);
        int64_t count = -1;
        pst_status st = {0};
        pst_tfrecord_reader_opts o = {.compression = comps[k]};
        ck_assert_msg(pst_tfrecord_count(path, &o, &count, &st) == 0, "%s", st.msg);
        ck_assert_int_eq(count, 0);
    }
    teardown();
}
END_TEST

START_TEST(test_atomic_writer_appears_on_close) {
    setup();
    const char *path = tmp_path("a.tfrecord");
    pst_tfrecord_writer_opts o = {.compression = PST_TFRECORD_GZIP, .atomic = 1};
    pst_tfrecord_writer *w = pst_tfrecord_writer_open(path, &o, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(pst_tfrecord_writer_write(w, "x", 1, NULL), 0);
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(pst_tfrecord_writer_close(w, NULL), 0);
    int64_t count;
    ck_assert_int_eq(pst_tfrecord_count(path, NULL, &count, NULL), 0);
    ck_assert_int_eq(count, 1);
    /* An aborted atomic writer leaves nothing behind, not even its temporary file. */
    const char *other = tmp_path("b.tfrecord");
    w = pst_tfrecord_writer_open(other, &o, NULL);
    ck_assert_int_eq(pst_tfrecord_writer_write(w, "y", 1, NULL), 0);
    pst_tfrecord_writer_abort(w);
    char cmd[600], out[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '^b.tfrecord' || true", tmpdir);
    run(cmd, out, sizeof out);
    ck_assert_str_eq(out, "0\n");
    teardown();
}
END_TEST

/* Flushed records can be read while the writer is still open. */
START_TEST(test_flush_makes_records_readable) {
    setup();
    const char *path = tmp_path("live.tfrecord");
    pst_tfrecord_writer *w = pst_tfrecord_writer_open(path, NULL, NULL);
    ck_assert_int_eq(pst_tfrecord_writer_write(w, "one", 3, NULL), 0);
    ck_assert_int_eq(pst_tfrecord_writer_write(w, "two", 3, NULL), 0);
    ck_assert_int_eq(pst_tfrecord_writer_flush(w, NULL), 0);
    int64_t count;
    ck_assert_int_eq(pst_tfrecord_count(path, NULL, &count, NULL), 0);
    ck_assert_int_eq(count, 2);
    ck_assert_int_eq(pst_tfrecord_writer_close(w, NULL), 0);
    /* A compressed stream is sync-flushed: the records come out, then the missing trailer is
     * reported. */
    const char *gz = tmp_path("live.tfrecord.gz");
    pst_tfrecord_writer_opts o = {.compression = PST_TFRECORD_GZIP};
    w = pst_tfrecord_writer_open(gz, &o, NULL);
    ck_assert_int_eq(pst_tfrecord_writer_write(w, "one", 3, NULL), 0);
    ck_assert_int_eq(pst_tfrecord_writer_flush(w, NULL), 0);
    pst_status st = {0};
    int64_t good;
    ck_assert_int_eq(read_all(gz, PST_TFRECORD_GZIP, 0, &good, &st), PST_E_DATA_LOSS);
    ck_assert_int_eq(good, 1);
    ck_assert_ptr_nonnull(strstr(st.msg, "truncated"));
    ck_assert_int_eq(pst_tfrecord_writer_close(w, NULL), 0);
    ck_assert_int_eq(pst_tfrecord_count(gz, NULL, &count, NULL), 0);
    ck_assert_int_eq(count, 1);
    teardown();
}
END_TEST

START_TEST(test_open_errors_name_the_path) {
    setup();
    pst_status st = {0};
    const char *missing = tmp_path("missing.tfrecord");
    ck_assert_ptr_null(pst_tfrecord_reader_open(missing, NULL, &st));
    ck_assert_int_eq(st.code, PST_E_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(st.msg, missing));
    pst_status_clear(&st);
    ck_assert_ptr_null(pst_tfrecord_reader_open(tmpdir, NULL, &st));
    ck_assert_ptr_nonnull(strstr(st.msg, "not a regular file"));
    pst_status_clear(&st);
    const char *nodir = tmp_path("no/such/dir/x.tfrecord");
    ck_assert_ptr_null(pst_tfrecord_writer_open(nodir, NULL, &st));
    ck_assert_int_eq(st.code, PST_E_IO);
    ck_assert_ptr_nonnull(strstr(st.msg, nodir));
    pst_status_clear(&st);
    const char *there = tmp_path("there.tfrecord");
    write_records(there, PST_TFRECORD_NONE, 1);
    pst_tfrecord_writer_opts o = {.exclusive = 1};
    ck_assert_ptr_null(pst_tfrecord_writer_open(there, &o, &st));
    ck_assert_int_eq(st.code, PST_E_EXISTS);
    teardown();
}
END_TEST

START_TEST(test_compression_names) {
    pst_tfrecord_compression c;
    ck_assert_int_eq(pst_tfrecord_compression_parse("GZIP", &c, NULL), 0);
    ck_assert_int_eq(c, PST_TFRECORD_GZIP);
    ck_assert_int_eq(pst_tfrecord_compression_parse("zlib", &c, NULL), 0);
    ck_assert_int_eq(c, PST_TFRECORD_ZLIB);
    ck_assert_int_eq(pst_tfrecord_compression_parse("", &c, NULL), 0);
    ck_assert_int_eq(c, PST_TFRECORD_NONE);
    pst_status st = {0};
    ck_assert_int_eq(pst_tfrecord_compression_parse("snappy", &c, &st), PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(st.msg, "snappy"));
    ck_assert_str_eq(pst_tfrecord_compression_name(PST_TFRECORD_NONE), "none");
}
END_TEST

int main(void) {
    Suite *s = suite_create("tfrecord");
    TCase *tc = tcase_create("tfrecord");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_round_trip, 0, 3);
    tcase_add_test(tc, test_offsets_of_records);
    tcase_add_test(tc, test_reads_tensorflow_file);
    tcase_add_loop_test(tc, test_python_reads_ours, 0, 3);
    tcase_add_loop_test(tc, test_reads_python_written, 0, 3);
    tcase_add_test(tc, test_length_checksum_names_file_and_record);
    tcase_add_test(tc, test_data_checksum_names_file_and_record);
    tcase_add_test(tc, test_data_checksum_inside_compressed_stream);
    tcase_add_loop_test(tc, test_corrupt_compressed_stream, 0, 2);
    tcase_add_test(tc, test_truncated_inside_data);
    tcase_add_test(tc, test_truncated_inside_header);
    tcase_add_loop_test(tc, test_truncated_compressed_stream, 0, 2);
    tcase_add_test(tc, test_hostile_length_over_cap);
    tcase_add_test(tc, test_hostile_length_past_end_of_file);
    tcase_add_test(tc, test_hostile_length_in_compressed_stream);
    tcase_add_test(tc, test_empty_files_hold_no_records);
    tcase_add_test(tc, test_atomic_writer_appears_on_close);
    tcase_add_test(tc, test_flush_makes_records_readable);
    tcase_add_test(tc, test_open_errors_name_the_path);
    tcase_add_test(tc, test_compression_names);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
