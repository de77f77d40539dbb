/* CRC-32C, the sorted table, and tensor bundles: TensorFlow's own files, round trips and
 * corruption. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "crc32c.h"
#include "metagraph.h"
#include "sstable.h"
#include "testutil.h"

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

int main(void) {
    Suite *s = suite_create("bundle");
    TCase *tc = tcase_create("bundle");
    tcase_add_test(tc, test_crc32c_values);
    tcase_add_test(tc, test_sstable_round_trip);
    tcase_add_test(tc, test_reads_tensorflow_checkpoints);
    tcase_add_test(tc, test_round_trip_every_dtype);
    tcase_add_test(tc, test_corruption_is_detected_and_named);
    tcase_add_test(tc, test_slice_key_encoding);
    tcase_add_test(tc, test_sliced_tensor_round_trip);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
