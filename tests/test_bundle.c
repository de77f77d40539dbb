/* CRC-32C, the sorted table, and tensor bundles: TensorFlow's own files, round trips and
 * corruption. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "crc32c.h"
#include "file.h"
#include "metagraph.h"
#include "sstable.h"
#include "testutil.h"
#include "tf_bundle.pb-c.h"
#include "varint.h"

static const char *testdata(const char *rel) {
    static char buf[4096];
    const char *src = getenv("PST_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/tests/data/tf/%s", src ? src : ".", rel);
    return buf;
}

static char dir[256];
static void mkdir_tmp(void) {
    snprintf(dir, sizeof dir, "/tmp/pst_bundle_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

START_TEST(test_crc32c_values) {
    ck_assert_uint_eq(pst_crc32c(0, "123456789", 9), 0xe3069283u);
    float half = 0.5f;
    ck_assert_uint_eq(pst_crc32c(0, &half, 4), 0x26973e52u);
    ck_assert_uint_eq(pst_crc32c_mask(0x26973e52u), 0x1f273806u);
    ck_assert_uint_eq(pst_crc32c_unmask(0x1f273806u), 0x26973e52u);
    /* incremental equals one shot */
    ck_assert_uint_eq(pst_crc32c(pst_crc32c(0, "12345", 5), "6789", 4), 0xe3069283u);
}
END_TEST

START_TEST(test_sstable_round_trip) {
    pst_sstable_builder *b = pst_sstable_builder_new();
    char key[32], val[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "key%05d", i);
        snprintf(val, sizeof val, "value-%d", i * 7);
        ck_assert_int_eq(pst_sstable_add(b, key, strlen(key), val, strlen(val)), 0);
    }
    ck_assert_int_eq(pst_sstable_add(b, "a", 1, "x", 1), -1); /* out of order */
    uint8_t *buf;
    size_t len;
    pst_sstable_finish(b, &buf, &len);
    pst_sstable *t;
    pst_status st = {0};
    ck_assert_int_eq(pst_sstable_parse(buf, len, "mem", &t, &st), 0);
    ck_assert_int_eq(t->n, 1000);
    const pst_sstable_entry *e = pst_sstable_find(t, "key00500", 8);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq((int)e->vlen, (int)strlen("value-3500"));
    ck_assert(memcmp(e->val, "value-3500", e->vlen) == 0);
    pst_sstable_free(t);
    buf[len / 3] ^= 0x40; /* a flipped bit inside a block */
    ck_assert_int_eq(pst_sstable_parse(buf, len, "mem", &t, &st), PST_E_DATA_LOSS);
    ck_assert_ptr_nonnull(strstr(st.msg, "checksum"));
    free(buf);
}
END_TEST

static double scalar_of(pst_bundle_reader *r, const char *name) {
    pst_status st = {0};
    pst_tensor *t = pst_bundle_reader_read(r, name, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    double v = pst_tensor_get_f64(t, 0);
    pst_tensor_unref(t);
    return v;
}

START_TEST(test_reads_tensorflow_checkpoints) {
    pst_status st = {0};
    /* Written by TF 1.14 with a Snappy-compressed block. */
    pst_bundle_reader *r = pst_bundle_reader_open(testdata("serving_half_plus_two_cpu/variables/variables"), &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    ck_assert_double_eq(scalar_of(r, "a"), 0.5);
    ck_assert_double_eq(scalar_of(r, "b"), 2);
    ck_assert_double_eq(scalar_of(r, "c"), 3);
    ck_assert_int_eq(pst_bundle_verify(r, &st), 0);
    pst_bundle_reader_free(r);
    r = pst_bundle_reader_open(testdata("serving_saved_model_counter/variables/variables"), &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    ck_assert_double_eq(scalar_of(r, "counter"), 0);
    pst_bundle_reader_free(r);
}
END_TEST

START_TEST(test_round_trip_every_dtype) {
    mkdir_tmp();
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s/model.ckpt-7", dir);
    pst_status st = {0};
    pst_dtype dts[6] = {PST_FLOAT, PST_DOUBLE, PST_INT32, PST_INT64, PST_UINT8, PST_BOOL};
    pst_tensor *ts[6];
    pst_bundle_writer *w = pst_bundle_writer_new(prefix, &st);
    ck_assert_ptr_nonnull(w);
    for (int i = 0; i < 6; i++) {
        ts[i] = pst_test_rand(dts[i], pst_shape_2d(3, 5), 100 + (uint64_t)i, 0, dts[i] == PST_BOOL ? 2 : 100);
        char name[32];
        snprintf(name, sizeof name, "scope/var_%s", pst_dtype_name(dts[i]));
        ck_assert_int_eq(pst_bundle_writer_add(w, name, ts[i], &st), 0);
    }
    ck_assert_int_eq(pst_bundle_writer_add(w, "scope/var_float", ts[0], &st), PST_E_EXISTS);
    ck_assert_int_eq(pst_bundle_writer_finish(w, &st), 0);
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_bundle_reader_num_entries(r), 6);
    for (int i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof name, "scope/var_%s", pst_dtype_name(dts[i]));
        pst_tensor *t = pst_bundle_reader_read(r, name, &st);
        ck_assert_msg(t != NULL, "%s", st.msg);
        ck_assert_int_eq(t->dtype, dts[i]);
        ck_assert(pst_shape_equal(&t->shape, &ts[i]->shape));
        ck_assert(memcmp(t->data, ts[i]->data, t->nbytes) == 0);
        pst_tensor_unref(t);
        pst_tensor_unref(ts[i]);
    }
    pst_bundle_reader_free(r);
}
END_TEST

static void flip_byte(const char *path, long off) {
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, off, off < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, -1, SEEK_CUR);
    fputc(c ^ 0x10, f);
    fclose(f);
}

START_TEST(test_corruption_is_detected_and_named) {
    mkdir_tmp();
    char prefix[512], data[600], index[600];
    snprintf(prefix, sizeof prefix, "%s/model.ckpt-1", dir);
    snprintf(data, sizeof data, "%s.data-00000-of-00001", prefix);
    snprintf(index, sizeof index, "%s.index", prefix);
    pst_status st = {0};
    pst_tensor *t = pst_test_rand(PST_FLOAT, pst_shape_1d(1000), 1, -1, 1);
    for (int kind = 0; kind < 4; kind++) {
        pst_bundle_writer *w = pst_bundle_writer_new(prefix, &st);
        pst_bundle_writer_add(w, "weights", t, &st);
        pst_bundle_writer_add(w, "zbias", t, &st);
        ck_assert_int_eq(pst_bundle_writer_finish(w, &st), 0);
        if (kind == 0) flip_byte(data, 100);                     /* data bit flip */
        if (kind == 1) ck_assert_int_eq(truncate(data, 5000), 0); /* data truncated */
        if (kind == 2) flip_byte(index, 10);                     /* index block bit flip */
        if (kind == 3) ck_assert_int_eq(truncate(index, 30), 0); /* index truncated */
        pst_status_clear(&st);
        pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
        int rc = r ? pst_bundle_verify(r, &st) : st.code;
        ck_assert_int_eq(rc, PST_E_DATA_LOSS);
        if (kind < 2) {
            ck_assert_msg(strstr(st.msg, data) != NULL, "%s", st.msg);
            ck_assert_msg(strstr(st.msg, kind == 0 ? "'weights'" : "'zbias'") != NULL, "%s", st.msg);
        } else {
            ck_assert_msg(strstr(st.msg, index) != NULL, "%s", st.msg);
        }
        pst_bundle_reader_free(r);
    }
    pst_tensor_unref(t);
}
END_TEST

START_TEST(test_slice_key_encoding) {
    uint8_t key[256];
    size_t n = pst_bundle_slice_key("w", 2, (int64_t[]){0, 0}, (int64_t[]){5, 4}, key);
    const uint8_t want[] = {0x00, 0x77, 0x00, 0x01, 0x01, 0x02, 0x80, 0x85, 0x80, 0x84};
    ck_assert_int_eq((int)n, (int)sizeof want);
    ck_assert(memcmp(key, want, n) == 0);
    /* SignedNumIncreasing: 100 -> c0 64, 0x424242 -> f0 42 42 42, -0x800 -> 38 00, -1 -> 7f */
    n = pst_bundle_slice_key("", 1, (int64_t[]){100}, (int64_t[]){0x424242}, key);
    const uint8_t tail1[] = {0xc0, 0x64, 0xf0, 0x42, 0x42, 0x42};
    ck_assert(memcmp(key + n - 6, tail1, 6) == 0);
    n = pst_bundle_slice_key("", 1, (int64_t[]){-0x800}, (int64_t[]){-1}, key);
    const uint8_t tail2[] = {0x38, 0x00, 0x7f};
    ck_assert(memcmp(key + n - 3, tail2, 3) == 0);
    /* 0x00 and 0xff inside names are escaped */
    n = pst_bundle_slice_key("a\xff", 0, NULL, NULL, key);
    const uint8_t esc[] = {0x00, 0x61, 0xff, 0x00, 0x00, 0x01, 0x00};
    ck_assert_int_eq((int)n, (int)sizeof esc);
    ck_assert(memcmp(key, esc, n) == 0);
}
END_TEST

START_TEST(test_sliced_tensor_round_trip) {
    mkdir_tmp();
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s/sliced", dir);
    pst_status st = {0};
    pst_tensor *full = pst_test_rand(PST_FLOAT, pst_shape_2d(10, 4), 9, -1, 1);
    pst_bundle_writer *w = pst_bundle_writer_new(prefix, &st);
    int64_t starts[3] = {0, 4, 7}, lens[3] = {4, 3, 3};
    for (int k = 0; k < 3; k++) {
        pst_tensor *part = pst_tensor_new_copy(PST_FLOAT, pst_shape_2d(lens[k], 4),
                                               pst_tensor_f32(full) + starts[k] * 4, &st);
        ck_assert_int_eq(pst_bundle_writer_add_slice(w, "emb/w", full->shape, (int64_t[]){starts[k], 0},
                                                     (int64_t[]){lens[k], 4}, part, &st), 0);
        pst_tensor_unref(part);
    }
    pst_bundle_writer_add(w, "other", full, &st);
    ck_assert_int_eq(pst_bundle_writer_finish(w, &st), 0);
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_bundle_reader_num_entries(r), 2); /* slice keys are not listed */
    const pst_bundle_entry *e = pst_bundle_reader_find(r, "emb/w");
    ck_assert_int_eq(e->n_slices, 3);
    ck_assert_int_eq(e->shape.dims[0], 10);
    pst_tensor *back = pst_bundle_reader_read(r, "emb/w", &st);
    ck_assert_msg(back != NULL, "%s", st.msg);
    ck_assert(memcmp(back->data, full->data, full->nbytes) == 0);
    ck_assert_int_eq(pst_bundle_verify(r, &st), 0);
    pst_tensor_unref(back);
    pst_bundle_reader_free(r);
    pst_tensor_unref(full);
}
END_TEST


/* ---- Hostile and corrupt index files -------------------------------------------------- */

/* A small checkpoint of every kind of entry: plain tensors of three dtypes and a variable
 * partitioned into two slices. */
static void write_small_checkpoint(const char *prefix) {
    pst_status st = {0};
    pst_bundle_writer *w = pst_bundle_writer_new(prefix, &st);
    ck_assert_msg(w != NULL, "%s", st.msg);
    pst_tensor *k = pst_test_rand(PST_FLOAT, pst_shape_2d(2, 3), 1, -1, 1);
    pst_tensor *gs = pst_tensor_scalar_i64(1234);
    pst_tensor *mask = pst_test_rand(PST_BOOL, pst_shape_1d(5), 2, 0, 2);
    ck_assert_int_eq(pst_bundle_writer_add(w, "dense/kernel", k, &st), 0);
    ck_assert_int_eq(pst_bundle_writer_add(w, "global_step", gs, &st), 0);
    ck_assert_int_eq(pst_bundle_writer_add(w, "mask", mask, &st), 0);
    ck_assert_int_eq(pst_bundle_writer_add(w, "dense/kernel/Adam", k, &st), 0);
    ck_assert_int_eq(pst_bundle_writer_add(w, "dense/kernel/Adam_1", k, &st), 0);
    for (int part = 0; part < 2; part++) {
        pst_tensor *t = pst_test_rand(PST_FLOAT, pst_shape_2d(2, 2), 3 + (uint64_t)part, -1, 1);
        ck_assert_int_eq(pst_bundle_writer_add_slice(w, "emb", pst_shape_2d(4, 2),
                                                     (int64_t[]){2 * part, 0}, (int64_t[]){2, 2},
                                                     t, &st), 0);
        pst_tensor_unref(t);
    }
    ck_assert_msg(pst_bundle_writer_finish(w, &st) == 0, "%s", st.msg);
    pst_tensor_unref(k);
    pst_tensor_unref(gs);
    pst_tensor_unref(mask);
}

/* What a reader reads of a checkpoint, as bytes: each entry's name, dtype and shape, then each
 * tensor's bytes. NULL (st set) when opening, verifying or reading fails. */
static uint8_t *reader_view(const char *prefix, size_t *len, pst_status *st) {
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, st);
    if (r == NULL || pst_bundle_verify(r, st) < 0) {
        pst_bundle_reader_free(r);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *out = malloc(cap);
    for (int i = 0; i < pst_bundle_reader_num_entries(r); i++) {
        const pst_bundle_entry *e = pst_bundle_reader_entry(r, i);
        pst_tensor *t = pst_bundle_reader_read(r, e->name, st);
        if (t == NULL) {
            free(out);
            pst_bundle_reader_free(r);
            return NULL;
        }
        size_t need = strlen(e->name) + 1 + sizeof e->dtype + sizeof e->shape + t->nbytes;
        while (n + need > cap) out = realloc(out, cap *= 2);
        memcpy(out + n, e->name, strlen(e->name) + 1);
        n += strlen(e->name) + 1;
        memcpy(out + n, &e->dtype, sizeof e->dtype);
        n += sizeof e->dtype;
        pst_shape sh = {.rank = e->shape.rank};
        for (int d = 0; d < sh.rank; d++) sh.dims[d] = e->shape.dims[d];
        memcpy(out + n, &sh, sizeof sh);
        n += sizeof sh;
        if (t->nbytes) memcpy(out + n, t->data, t->nbytes);
        n += t->nbytes;
        pst_tensor_unref(t);
    }
    pst_bundle_reader_free(r);
    *len = n;
    return out;
}

static uint8_t *slurp_file(const char *path, size_t *len) {
    uint8_t *buf;
    pst_status st = {0};
    ck_assert_msg(pst_file_read(path, 1 << 20, &buf, len, &st) == 0, "%s", st.msg);
    return buf;
}

static void put_file(const char *path, const void *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq((int)fwrite(buf, 1, len, f), (int)len);
    fclose(f);
}

/* Where a table's metaindex block starts (from its footer). */
static size_t metaindex_offset(const uint8_t *idx, size_t len) {
    uint64_t moff;
    ck_assert_uint_ne(pst_varint_get64(idx + len - 48, idx + len - 8, &moff), 0);
    return (size_t)moff;
}

/* Every single-bit flip of a checkpoint's .index is either reported when the checkpoint is
 * opened and verified (the message naming the .index) or leaves every name, dtype, shape and
 * tensor byte a reader reads unchanged. The CLI's `ckpt verify` says the same on a sample. */
START_TEST(test_every_index_bit_flip_reported_or_harmless) {
    mkdir_tmp();
    char prefix[512], index[600];
    snprintf(prefix, sizeof prefix, "%s/model.ckpt-9", dir);
    snprintf(index, sizeof index, "%s.index", prefix);
    write_small_checkpoint(prefix);
    size_t ilen, vlen0;
    uint8_t *orig = slurp_file(index, &ilen);
    pst_status st = {0};
    uint8_t *view0 = reader_view(prefix, &vlen0, &st);
    ck_assert_msg(view0 != NULL, "%s", st.msg);
    uint8_t *flipped = malloc(ilen);
    int reported = 0, harmless = 0, flips = 0;
    const char *bin = getenv("PST_BINARY_DIR");
    int cli_runs = 0;
    for (size_t byte = 0; byte < ilen; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(flipped, orig, ilen);
            flipped[byte] ^= (uint8_t)(1u << bit);
            put_file(index, flipped, ilen);
            flips++;
            pst_status_clear(&st);
            size_t vlen;
            uint8_t *view = reader_view(prefix, &vlen, &st);
            if (view == NULL) {
                ck_assert_msg(st.code == PST_E_DATA_LOSS && strstr(st.msg, index) != NULL,
                              "byte %zu bit %d: the error does not name %s: %s", byte, bit, index,
                              st.msg);
                reported++;
            } else {
                ck_assert_msg(vlen == vlen0 && memcmp(view, view0, vlen) == 0,
                              "byte %zu bit %d of %zu: not reported, yet a reader reads something "
                              "else", byte, bit, ilen);
                harmless++;
                free(view);
            }
            /* The CLI on every 29th flip (each region of the file gets some). */
            if (flips % 29 == 0) {
                char cmd[2048];
                snprintf(cmd, sizeof cmd, "%s/launcher/pstrain ckpt verify %s 2>&1",
                         bin ? bin : "build", prefix);
                FILE *p = popen(cmd, "r");
                char out[4096];
                size_t n = fread(out, 1, sizeof out - 1, p);
                out[n] = '\0';
                int rc = pclose(p);
                if (view == NULL)
                    ck_assert_msg(rc != 0 && strstr(out, index) != NULL,
                                  "byte %zu bit %d: ckpt verify exited %d: %s", byte, bit, rc, out);
                else
                    ck_assert_msg(rc == 0, "byte %zu bit %d: ckpt verify failed on a harmless "
                                  "flip: %s", byte, bit, out);
                cli_runs++;
            }
        }
    }
    printf("index bit flips: %d of %zu bytes: %d reported, %d harmless (reader view unchanged); "
           "%d checked through `pstrain ckpt verify`\n", flips, ilen, reported, harmless, cli_runs);
    put_file(index, orig, ilen);
    free(flipped);
    free(orig);
    free(view0);
}
END_TEST

/* The footer and the metaindex block have no checksum of their own in the format: flips there
 * must still be reported (padding and handles are checked against the layout, the metaindex
 * block's CRC is verified). */
START_TEST(test_footer_and_metaindex_flips_reported) {
    mkdir_tmp();
    char prefix[512], index[600];
    snprintf(prefix, sizeof prefix, "%s/model.ckpt-3", dir);
    snprintf(index, sizeof index, "%s.index", prefix);
    write_small_checkpoint(prefix);
    size_t ilen;
    uint8_t *orig = slurp_file(index, &ilen);
    int missed = 0, total = 0;
    char first_missed[64] = "";
    for (size_t byte = metaindex_offset(orig, ilen); byte < ilen; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            orig[byte] ^= (uint8_t)(1u << bit);
            put_file(index, orig, ilen);
            orig[byte] ^= (uint8_t)(1u << bit);
            pst_status st = {0};
            pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
            int rc = r ? pst_bundle_verify(r, &st) : st.code;
            pst_bundle_reader_free(r);
            total++;
            if (rc == 0) {
                if (!missed) snprintf(first_missed, sizeof first_missed, "byte %zu bit %d", byte, bit);
                missed++;
            }
        }
    }
    ck_assert_msg(missed == 0, "%d of %d flips in the metaindex block and footer went unreported "
                  "(first: %s)", missed, total, first_missed);
    free(orig);
}
END_TEST

static void fixed32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Appends a block and its trailer (type 0, masked CRC) to out at *n. */
static void append_block(uint8_t *out, size_t *n, const uint8_t *blk, size_t len) {
    memcpy(out + *n, blk, len);
    uint8_t type = 0;
    out[*n + len] = 0;
    fixed32(out + *n + len + 1, pst_crc32c_mask(pst_crc32c(pst_crc32c(0, blk, len), &type, 1)));
    *n += len + 5;
}

/* A table of one data block (contents given: entries, restarts, count) whose index key is sep.
 * Every checksum is right: only the structure can be wrong. */
static size_t table_around(const uint8_t *blk, size_t blen, const char *sep, uint8_t *out) {
    size_t n = 0;
    append_block(out, &n, blk, blen);
    size_t moff = n;
    uint8_t meta[8] = {0};
    fixed32(meta + 4, 1);
    append_block(out, &n, meta, 8);
    size_t ioff = n;
    uint8_t ib[256];
    size_t k = 0;
    ib[k++] = 0;
    ib[k++] = (uint8_t)strlen(sep);
    uint8_t h[20];
    size_t hl = pst_varint_put64(h, 0);
    hl += pst_varint_put64(h + hl, blen);
    ib[k++] = (uint8_t)hl;
    memcpy(ib + k, sep, strlen(sep));
    k += strlen(sep);
    memcpy(ib + k, h, hl);
    k += hl;
    fixed32(ib + k, 0);
    fixed32(ib + k + 4, 1);
    k += 8;
    append_block(out, &n, ib, k);
    uint8_t footer[48] = {0};
    size_t f = pst_varint_put64(footer, moff);
    f += pst_varint_put64(footer + f, 8);
    f += pst_varint_put64(footer + f, ioff);
    pst_varint_put64(footer + f, k);
    const uint8_t magic[8] = {0x57, 0xfb, 0x80, 0x8b, 0x24, 0x75, 0x47, 0xdb};
    memcpy(footer + 40, magic, 8);
    memcpy(out + n, footer, 48);
    return n + 48;
}

/* Restart arrays and index keys are checked against the entries they describe. */
START_TEST(test_block_structure_checked) {
    /* Entries "a" -> "1" and "ab" -> "2" (the second sharing one byte with the first). */
    const uint8_t entries[] = {0, 1, 1, 'a', '1', 1, 1, 1, 'b', '2'};
    struct {
        const char *what;
        uint32_t restarts[3];
        int nr;
        const char *sep;
        const char *error; /* NULL: parses */
    } cases[] = {
        {"well formed", {0}, 1, "ab", NULL},
        {"shortened separator", {0}, 1, "b", NULL},
        {"no restart point", {0}, 0, "ab", "restart count"},
        {"first restart not at 0", {5}, 1, "ab", "does not start at 0"},
        {"restart inside an entry", {0, 3}, 2, "ab", "corrupt entry"},
        {"restart at an entry that shares its key", {0, 5}, 2, "ab", "corrupt entry"},
        {"restart past the entries", {0, 12}, 2, "ab", "restart array"},
        {"index key before the block's last key", {0}, 1, "a", "ends after its index key"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint8_t blk[64], table[512];
        memcpy(blk, entries, sizeof entries);
        size_t n = sizeof entries;
        for (int r = 0; r < cases[c].nr; r++, n += 4) fixed32(blk + n, cases[c].restarts[r]);
        fixed32(blk + n, (uint32_t)cases[c].nr);
        n += 4;
        size_t len = table_around(blk, n, cases[c].sep, table);
        pst_sstable *t = NULL;
        pst_status st = {0};
        int rc = pst_sstable_parse(table, len, "crafted.index", &t, &st);
        if (cases[c].error == NULL) {
            ck_assert_msg(rc == 0, "%s: %s", cases[c].what, st.msg);
            ck_assert_int_eq(t->n, 2);
            ck_assert_str_eq(t->entries[1].key, "ab");
        } else {
            ck_assert_msg(rc == PST_E_DATA_LOSS, "%s: accepted", cases[c].what);
            ck_assert_msg(strstr(st.msg, "crafted.index") && strstr(st.msg, cases[c].error),
                          "%s: %s", cases[c].what, st.msg);
        }
        pst_sstable_free(t);
    }
}
END_TEST

/* An index built from the given header bytes and (key, value) entries. */
static void write_raw_index(const char *prefix, const uint8_t *hdr, size_t hlen, int n,
                            const char *const *keys, const size_t *klens,
                            uint8_t *const *vals, const size_t *vlens) {
    pst_sstable_builder *b = pst_sstable_builder_new();
    ck_assert_int_eq(pst_sstable_add(b, "", 0, hdr, hlen), 0);
    for (int i = 0; i < n; i++) ck_assert_int_eq(pst_sstable_add(b, keys[i], klens[i], vals[i], vlens[i]), 0);
    uint8_t *buf;
    size_t len;
    pst_sstable_finish(b, &buf, &len);
    char path[600];
    snprintf(path, sizeof path, "%s.index", prefix);
    put_file(path, buf, len);
    free(buf);
}

/* A packed BundleEntryProto (malloc'd). */
static uint8_t *entry_proto(pst_dtype dt, int rank, const int64_t *dims, int64_t offset,
                            int64_t size, uint32_t crc, int n_slices, const int64_t (*slices)[4],
                            size_t *len) {
    Tensorflow__BundleEntryProto p = TENSORFLOW__BUNDLE_ENTRY_PROTO__INIT;
    Tensorflow__TensorShapeProto sh = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    Tensorflow__TensorShapeProto__Dim dd[4], *dp[4];
    for (int i = 0; i < rank; i++) {
        Tensorflow__TensorShapeProto__Dim d0 = TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT;
        dd[i] = d0;
        dd[i].size = dims[i];
        dp[i] = &dd[i];
    }
    sh.n_dim = (size_t)rank;
    sh.dim = dp;
    p.dtype = (Tensorflow__DataType)dt;
    p.shape = &sh;
    p.offset = offset;
    p.size = size;
    p.crc32c = pst_crc32c_mask(crc);
    /* slices[k] = {start0, len0, start1, len1} of a rank-2 variable */
    Tensorflow__TensorSliceProto sl[4], *sp[4];
    Tensorflow__TensorSliceProto__Extent ex[8], *ep[8];
    for (int k = 0; k < n_slices; k++) {
        Tensorflow__TensorSliceProto s0 = TENSORFLOW__TENSOR_SLICE_PROTO__INIT;
        sl[k] = s0;
        for (int d = 0; d < 2; d++) {
            Tensorflow__TensorSliceProto__Extent e0 = TENSORFLOW__TENSOR_SLICE_PROTO__EXTENT__INIT;
            ex[2 * k + d] = e0;
            ex[2 * k + d].start = slices[k][2 * d];
            ex[2 * k + d].length = slices[k][2 * d + 1];
            ep[2 * k + d] = &ex[2 * k + d];
        }
        sl[k].n_extent = 2;
        sl[k].extent = ep + 2 * k;
        sp[k] = &sl[k];
    }
    p.n_slices = (size_t)n_slices;
    p.slices = sp;
    *len = tensorflow__bundle_entry_proto__get_packed_size(&p);
    uint8_t *out = malloc(*len + 8);
    tensorflow__bundle_entry_proto__pack(&p, out);
    return out;
}

static int open_verify(const char *prefix, pst_status *st) {
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, st);
    int rc = r ? pst_bundle_verify(r, st) : st->code;
    pst_bundle_reader_free(r);
    return rc;
}

/* The header must describe what this reader reads; header and entries must parse fully. */
START_TEST(test_header_and_entries_must_parse_fully) {
    mkdir_tmp();
    char prefix[512], data[600];
    snprintf(prefix, sizeof prefix, "%s/crafted", dir);
    snprintf(data, sizeof data, "%s.data-00000-of-00001", prefix);
    float v = 0.5f;
    put_file(data, &v, 4);
    size_t vlen;
    uint8_t *val = entry_proto(PST_FLOAT, 0, NULL, 0, 4, pst_crc32c(0, &v, 4), 0, NULL, &vlen);
    const char *key = "x";
    size_t klen = 1;
    pst_status st = {0};
    /* num_shards 1 (08 01), then the variations */
    const struct {
        const char *what;
        uint8_t hdr[16];
        size_t hlen;
        const char *error;
    } hdrs[] = {
        {"plain", {0x08, 0x01}, 2, NULL},
        {"producer 1", {0x08, 0x01, 0x1a, 0x02, 0x08, 0x01}, 6, NULL},
        {"big-endian", {0x08, 0x01, 0x10, 0x01}, 4, "endianness"},
        {"min_consumer 2", {0x08, 0x01, 0x1a, 0x02, 0x10, 0x02}, 6, "min_consumer 2"},
        {"consumer 1 marked bad", {0x08, 0x01, 0x1a, 0x02, 0x18, 0x01}, 6, "marked bad"},
        {"no shards", {0x08, 0x00}, 2, "num_shards 0"},
        {"an unknown field", {0x08, 0x01, 0x20, 0x05}, 4, "does not parse"},
        {"an unknown field inside version", {0x08, 0x01, 0x1a, 0x02, 0x28, 0x01}, 6, "does not parse"},
    };
    for (size_t c = 0; c < sizeof hdrs / sizeof hdrs[0]; c++) {
        write_raw_index(prefix, hdrs[c].hdr, hdrs[c].hlen, 1, &key, &klen, &val, &vlen);
        pst_status_clear(&st);
        int rc = open_verify(prefix, &st);
        if (hdrs[c].error == NULL) {
            ck_assert_msg(rc == 0, "%s: %s", hdrs[c].what, st.msg);
        } else {
            ck_assert_msg(rc == PST_E_DATA_LOSS, "header with %s accepted", hdrs[c].what);
            ck_assert_msg(strstr(st.msg, ".index: bad bundle header") &&
                          strstr(st.msg, hdrs[c].error), "%s: %s", hdrs[c].what, st.msg);
        }
    }
    /* An entry with trailing bytes that parse as an unknown field (field 9, varint 1). */
    const uint8_t hdr[] = {0x08, 0x01};
    uint8_t *longer = malloc(vlen + 2);
    memcpy(longer, val, vlen);
    longer[vlen] = 0x48;
    longer[vlen + 1] = 0x01;
    size_t llen = vlen + 2;
    write_raw_index(prefix, hdr, 2, 1, &key, &klen, &longer, &llen);
    pst_status_clear(&st);
    ck_assert_int_eq(open_verify(prefix, &st), PST_E_DATA_LOSS);
    ck_assert_msg(strstr(st.msg, "cannot parse the entry of tensor 'x'"), "%s", st.msg);
    /* A tensor name with a NUL byte inside (readers see names as C strings). */
    const char *nul_key = "x\0y";
    size_t nul_len = 3;
    write_raw_index(prefix, hdr, 2, 1, &nul_key, &nul_len, &val, &vlen);
    pst_status_clear(&st);
    ck_assert_int_eq(open_verify(prefix, &st), PST_E_DATA_LOSS);
    ck_assert_msg(strstr(st.msg, "NUL"), "%s", st.msg);
    free(longer);
    free(val);
}
END_TEST

/* A partitioned variable's slices must tile its shape: a gap (which a reader would fill with
 * zeros) or an overlap is an error naming the index and the tensor. */
START_TEST(test_slices_must_tile_the_full_shape) {
    mkdir_tmp();
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s/gap", dir);
    pst_status st = {0};
    for (int kind = 0; kind < 2; kind++) {
        pst_bundle_writer *w = pst_bundle_writer_new(prefix, &st);
        pst_tensor *t = pst_test_rand(PST_FLOAT, pst_shape_2d(2, 2), 7, -1, 1);
        /* rows 0-1 of a [5, 2] variable, then rows 2-3 (a gap at row 4) or rows 1-2 again */
        ck_assert_int_eq(pst_bundle_writer_add_slice(w, "emb", pst_shape_2d(5, 2), (int64_t[]){0, 0},
                                                     (int64_t[]){2, 2}, t, &st), 0);
        ck_assert_int_eq(pst_bundle_writer_add_slice(w, "emb", pst_shape_2d(5, 2),
                                                     (int64_t[]){kind == 0 ? 2 : 1, 0},
                                                     (int64_t[]){2, 2}, t, &st), 0);
        if (kind == 1) {
            pst_tensor *row = pst_test_rand(PST_FLOAT, pst_shape_2d(1, 2), 8, -1, 1);
            ck_assert_int_eq(pst_bundle_writer_add_slice(w, "emb", pst_shape_2d(5, 2),
                                                         (int64_t[]){4, 0}, (int64_t[]){1, 2},
                                                         row, &st), 0);
            pst_tensor_unref(row);
        }
        ck_assert_int_eq(pst_bundle_writer_finish(w, &st), 0);
        pst_tensor_unref(t);
        pst_status_clear(&st);
        ck_assert_int_eq(open_verify(prefix, &st), PST_E_DATA_LOSS);
        ck_assert_msg(strstr(st.msg, "gap.index") && strstr(st.msg, "'emb'") &&
                      strstr(st.msg, kind == 0 ? "cover 8 of its 10" : "overlaps"), "%s", st.msg);
    }
}
END_TEST

typedef struct read_ctx {
    const char *prefix, *name;
} read_ctx;

static int read_one(void *ctx, pst_status *st) {
    read_ctx *c = ctx;
    pst_bundle_reader *r = pst_bundle_reader_open(c->prefix, st);
    if (r == NULL) return st->code;
    pst_tensor *t = pst_bundle_reader_read(r, c->name, st);
    int rc = t ? 0 : st->code;
    pst_tensor_unref(t);
    pst_bundle_reader_free(r);
    return rc;
}

/* Entries claiming more bytes than their data file holds fail before anything that size is
 * allocated, for a plain tensor and for a partitioned one (whose full tensor is allocated
 * before its slices are read). */
START_TEST(test_entry_sizes_checked_against_the_data_file) {
    mkdir_tmp();
    char prefix[512], data[600];
    snprintf(prefix, sizeof prefix, "%s/huge", dir);
    snprintf(data, sizeof data, "%s.data-00000-of-00001", prefix);
    put_file(data, "0123456789abcdef", 16);
    const uint8_t hdr[] = {0x08, 0x01};
    const int64_t rows = (int64_t)1 << 27, cols = 2; /* 1 GiB of floats */
    size_t l0, l1;
    uint8_t *full = entry_proto(PST_FLOAT, 2, (int64_t[]){rows, cols}, 0, 0, 0, 1,
                                (const int64_t[][4]){{0, rows, 0, 0}}, &l0);
    uint8_t key[64];
    size_t klen = pst_bundle_slice_key("emb", 2, (int64_t[]){0, 0}, (int64_t[]){rows, cols}, key);
    uint8_t *part = entry_proto(PST_FLOAT, 2, (int64_t[]){rows, cols}, 0, rows * cols * 4, 0, 0,
                                NULL, &l1);
    const char *keys[2] = {(const char *)key, "emb"};
    size_t klens[2] = {klen, 3}, vlens[2] = {l1, l0};
    uint8_t *vals[2] = {part, full};
    write_raw_index(prefix, hdr, 2, 2, keys, klens, vals, vlens);
    pst_status st = {0};
    read_ctx c = {prefix, "emb"};
    int rc = pst_test_run_with_memory_limit(read_one, &c, (size_t)256 << 20, &st);
    ck_assert_msg(rc == PST_E_DATA_LOSS && strstr(st.msg, data) && strstr(st.msg, "past the end"),
                  "%d: %s", rc, st.msg);
    /* The same slice as a plain tensor. */
    const char *k2 = "plain";
    size_t k2len = 5;
    write_raw_index(prefix, hdr, 2, 1, &k2, &k2len, &part, &l1);
    c.name = "plain";
    rc = pst_test_run_with_memory_limit(read_one, &c, (size_t)256 << 20, &st);
    ck_assert_msg(rc == PST_E_DATA_LOSS && strstr(st.msg, data) && strstr(st.msg, "past the end"),
                  "%d: %s", rc, st.msg);
    free(full);
    free(part);
}
END_TEST

/* A slice covering a dimension whole is stored under TensorFlow's key for it (length -1, what
 * TF's reader computes from the slice's proto, whose extent has no length there); checkpoints
 * of earlier pstrain versions, which spelled the full length in the key, still read. */
START_TEST(test_slice_keys_use_tensorflows_whole_dimension) {
    mkdir_tmp();
    char prefix[512], index[600], data[600];
    snprintf(prefix, sizeof prefix, "%s/tfkeys", dir);
    snprintf(index, sizeof index, "%s.index", prefix);
    snprintf(data, sizeof data, "%s.data-00000-of-00001", prefix);
    pst_status st = {0};
    float vals[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    pst_bundle_writer *w = pst_bundle_writer_new(prefix, &st);
    for (int k = 0; k < 2; k++) {
        pst_tensor *part = pst_tensor_new_copy(PST_FLOAT, pst_shape_2d(2, 2), vals + 4 * k, &st);
        ck_assert_int_eq(pst_bundle_writer_add_slice(w, "w", pst_shape_2d(4, 2),
                                                     (int64_t[]){2 * k, 0}, (int64_t[]){2, 2},
                                                     part, &st), 0);
        pst_tensor_unref(part);
    }
    ck_assert_int_eq(pst_bundle_writer_finish(w, &st), 0);
    uint8_t tf_key[64], old_key[64];
    size_t tf_len = pst_bundle_slice_key("w", 2, (int64_t[]){2, 0}, (int64_t[]){2, -1}, tf_key);
    size_t old_len = pst_bundle_slice_key("w", 2, (int64_t[]){2, 0}, (int64_t[]){2, 2}, old_key);
    /* 00 'w' 00 01 | rank 2 | start 2, length 2 | start 0, length -1 */
    const uint8_t want[] = {0x00, 0x77, 0x00, 0x01, 0x01, 0x02, 0x82, 0x82, 0x80, 0x7f};
    ck_assert_uint_eq(tf_len, sizeof want);
    ck_assert(memcmp(tf_key, want, sizeof want) == 0);
    size_t ilen;
    uint8_t *ibuf = slurp_file(index, &ilen);
    pst_sstable *t;
    ck_assert_int_eq(pst_sstable_parse(ibuf, ilen, index, &t, &st), 0);
    ck_assert_msg(pst_sstable_find(t, tf_key, tf_len) != NULL, "no key with length -1");
    ck_assert_msg(pst_sstable_find(t, old_key, old_len) == NULL, "key spells the full length");
    pst_sstable_free(t);
    free(ibuf);
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    pst_tensor *back = pst_bundle_reader_read(r, "w", &st);
    ck_assert_msg(back != NULL, "%s", st.msg);
    ck_assert(memcmp(back->data, vals, sizeof vals) == 0);
    pst_tensor_unref(back);
    pst_bundle_reader_free(r);

    /* An earlier pstrain's file: the same slices (no length in the proto for dim 1), keyed with
     * the full length. */
    put_file(data, vals, sizeof vals);
    const uint8_t hdr[] = {0x08, 0x01};
    uint8_t k0[64], k1[64];
    size_t k0len = pst_bundle_slice_key("w", 2, (int64_t[]){0, 0}, (int64_t[]){2, 2}, k0);
    size_t k1len = pst_bundle_slice_key("w", 2, (int64_t[]){2, 0}, (int64_t[]){2, 2}, k1);
    size_t l0, l1, lf;
    uint8_t *p0 = entry_proto(PST_FLOAT, 2, (int64_t[]){2, 2}, 0, 16, pst_crc32c(0, vals, 16), 0,
                              NULL, &l0);
    uint8_t *p1 = entry_proto(PST_FLOAT, 2, (int64_t[]){2, 2}, 16, 16,
                              pst_crc32c(0, vals + 4, 16), 0, NULL, &l1);
    uint8_t *pf = entry_proto(PST_FLOAT, 2, (int64_t[]){4, 2}, 0, 0, 0, 2,
                              (const int64_t[][4]){{0, 2, 0, 0}, {2, 2, 0, 0}}, &lf);
    const char *keys[3] = {(const char *)k0, (const char *)k1, "w"};
    size_t klens[3] = {k0len, k1len, 1}, vlens[3] = {l0, l1, lf};
    uint8_t *vs[3] = {p0, p1, pf};
    write_raw_index(prefix, hdr, 2, 3, keys, klens, vs, vlens);
    r = pst_bundle_reader_open(prefix, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    back = pst_bundle_reader_read(r, "w", &st);
    ck_assert_msg(back != NULL, "%s", st.msg);
    ck_assert(memcmp(back->data, vals, sizeof vals) == 0);
    ck_assert_int_eq(pst_bundle_verify(r, &st), 0);
    pst_tensor_unref(back);
    pst_bundle_reader_free(r);
    free(p0);
    free(p1);
    free(pf);
}
END_TEST

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "hung opening a FIFO\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(99);
}

/* A FIFO (or directory) in place of a data file is an error naming it, never a hang. */
START_TEST(test_data_file_must_be_a_regular_file) {
    mkdir_tmp();
    char prefix[512], data[600];
    snprintf(prefix, sizeof prefix, "%s/model.ckpt-1", dir);
    snprintf(data, sizeof data, "%s.data-00000-of-00001", prefix);
    write_small_checkpoint(prefix);
    signal(SIGALRM, on_alarm);
    for (int kind = 0; kind < 2; kind++) {
        unlink(data);
        ck_assert_int_eq(kind == 0 ? mkfifo(data, 0644) : mkdir(data, 0755), 0);
        pst_status st = {0};
        alarm(10);
        ck_assert_int_eq(open_verify(prefix, &st), PST_E_DATA_LOSS);
        alarm(0);
        ck_assert_msg(strstr(st.msg, data) && strstr(st.msg, "not a regular file"), "%s", st.msg);
        if (kind == 1) rmdir(data);
    }
}
END_TEST

/* Partitioned variables with long names (slice keys are built on the heap, not in a fixed
 * stack buffer). */
START_TEST(test_long_partitioned_name_round_trip) {
    mkdir_tmp();
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s/long", dir);
    char name[3001];
    memset(name, 'n', 3000);
    name[3000] = '\0';
    name[10] = '\xff'; /* escaped: doubles in the key */
    pst_status st = {0};
    pst_bundle_writer *w = pst_bundle_writer_new(prefix, &st);
    pst_tensor *t = pst_test_rand(PST_FLOAT, pst_shape_2d(2, 3), 5, -1, 1);
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(pst_bundle_writer_add_slice(w, name, pst_shape_2d(4, 3), (int64_t[]){2 * k, 0},
                                                     (int64_t[]){2, 3}, t, &st), 0);
    ck_assert_msg(pst_bundle_writer_finish(w, &st) == 0, "%s", st.msg);
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    pst_tensor *back = pst_bundle_reader_read(r, name, &st);
    ck_assert_msg(back != NULL, "%s", st.msg);
    ck_assert(memcmp(back->data, t->data, t->nbytes) == 0);
    ck_assert(memcmp((char *)back->data + t->nbytes, t->data, t->nbytes) == 0);
    pst_tensor_unref(back);
    pst_tensor_unref(t);
    pst_bundle_reader_free(r);
}
END_TEST

int main(void) {
    Suite *s = suite_create("bundle");
    TCase *tc = tcase_create("bundle");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_crc32c_values);
    tcase_add_test(tc, test_sstable_round_trip);
    tcase_add_test(tc, test_reads_tensorflow_checkpoints);
    tcase_add_test(tc, test_round_trip_every_dtype);
    tcase_add_test(tc, test_corruption_is_detected_and_named);
    tcase_add_test(tc, test_slice_key_encoding);
    tcase_add_test(tc, test_sliced_tensor_round_trip);
    tcase_add_test(tc, test_slice_keys_use_tensorflows_whole_dimension);
    tcase_add_test(tc, test_every_index_bit_flip_reported_or_harmless);
    tcase_add_test(tc, test_footer_and_metaindex_flips_reported);
    tcase_add_test(tc, test_block_structure_checked);
    tcase_add_test(tc, test_header_and_entries_must_parse_fully);
    tcase_add_test(tc, test_slices_must_tile_the_full_shape);
    tcase_add_test(tc, test_entry_sizes_checked_against_the_data_file);
    tcase_add_test(tc, test_data_file_must_be_a_regular_file);
    tcase_add_test(tc, test_long_partitioned_name_round_trip);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
