/* tf.train.Example: encode and parse (packed and unpacked lists, protobuf's merge rules),
 * Debian's protoc as an outside encoder and decoder, and whole files loaded into tensors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "example.h"
#include "testutil.h"

static char tmpdir[256];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pst_example_XXXXXX");
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

static int run(const char *cmd, char *out, size_t len) {
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    ck_assert(WIFEXITED(status));
    int rc = WEXITSTATUS(status);
    ck_assert_msg(rc != 127, "command not found (install protobuf-compiler): %s\n%s", cmd, out);
    return rc;
}

static void spit(const char *path, const void *b, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, len, f), len);
    fclose(f);
}

/* An example with every kind of list, negative and large int64s and an empty float list. */
static pst_example *sample(void) {
    pst_example *ex = pst_example_new();
    pst_status st = {0};
    pst_example_bytes b[2] = {{(const uint8_t *)"abc", 3}, {(const uint8_t *)"", 0}};
    float f[3] = {0.5f, -1.25f, 3e38f};
    int64_t i[3] = {-3, 0, INT64_MAX};
    ck_assert_int_eq(pst_example_add_bytes(ex, "name", b, 2, &st), 0);
    ck_assert_int_eq(pst_example_add_floats(ex, "weights", f, 3, &st), 0);
    ck_assert_int_eq(pst_example_add_int64s(ex, "label", i, 3, &st), 0);
    ck_assert_int_eq(pst_example_add_floats(ex, "nothing", NULL, 0, &st), 0);
    return ex;
}

static void check_sample(const pst_example *ex) {
    ck_assert_int_eq(pst_example_num_features(ex), 4);
    const pst_example_feature *f = pst_example_find(ex, "name");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->kind, PST_EXAMPLE_BYTES);
    ck_assert_uint_eq(f->count, 2);
    ck_assert_uint_eq(f->bytes[0].len, 3);
    ck_assert(memcmp(f->bytes[0].data, "abc", 3) == 0);
    ck_assert_uint_eq(f->bytes[1].len, 0);
    f = pst_example_find(ex, "weights");
    ck_assert_int_eq(f->kind, PST_EXAMPLE_FLOAT);
    ck_assert_uint_eq(f->count, 3);
    ck_assert(f->floats[0] == 0.5f && f->floats[1] == -1.25f && f->floats[2] == 3e38f);
    f = pst_example_find(ex, "label");
    ck_assert_int_eq(f->kind, PST_EXAMPLE_INT64);
    ck_assert_uint_eq(f->count, 3);
    ck_assert(f->int64s[0] == -3 && f->int64s[1] == 0 && f->int64s[2] == INT64_MAX);
    f = pst_example_find(ex, "nothing");
    ck_assert_int_eq(f->kind, PST_EXAMPLE_FLOAT);
    ck_assert_uint_eq(f->count, 0);
    ck_assert_ptr_null(pst_example_find(ex, "absent"));
}

START_TEST(test_encode_parse_round_trip) {
    pst_example *ex = sample();
    check_sample(ex);
    pst_pbwire_buf b;
    pst_pbwire_buf_init(&b);
    pst_status st = {0};
    ck_assert_int_eq(pst_example_encode(ex, &b, &st), 0);
    pst_example *back = pst_example_new();
    ck_assert_msg(pst_example_parse(back, b.data, b.len, &st) == 0, "%s", st.msg);
    check_sample(back);
    /* Parsing again into the same example reuses it. */
    ck_assert_int_eq(pst_example_parse(back, b.data, b.len, &st), 0);
    check_sample(back);
    pst_example_free(back);
    pst_example_free(ex);
    pst_pbwire_buf_destroy(&b);
}
END_TEST

/* Known bytes: Example{features{feature{key:"x" value{int64_list{value:[1,300]}}}}}. */
START_TEST(test_encoding_is_packed) {
    pst_example *ex = pst_example_new();
    int64_t v[2] = {1, 300};
    ck_assert_int_eq(pst_example_add_int64s(ex, "x", v, 2, NULL), 0);
    pst_pbwire_buf b;
    pst_pbwire_buf_init(&b);
    ck_assert_int_eq(pst_example_encode(ex, &b, NULL), 0);
    const uint8_t want[] = {0x0a, 0x0e, 0x0a, 0x0c, 0x0a, 0x01, 'x',  0x12,
                            0x07, 0x1a, 0x05, 0x0a, 0x03, 0x01, 0xac, 0x02};
    ck_assert_uint_eq(b.len, sizeof want);
    ck_assert(memcmp(b.data, want, sizeof want) == 0);
    pst_pbwire_buf_destroy(&b);
    pst_example_free(ex);
}
END_TEST

/* Debian's protoc decodes what we encode against proto/tf_example.proto. */
START_TEST(test_protoc_decodes_our_encoding) {
    setup();
    pst_example *ex = sample();
    pst_pbwire_buf b;
    pst_pbwire_buf_init(&b);
    ck_assert_int_eq(pst_example_encode(ex, &b, NULL), 0);
    const char *bin = tmp_path("ex.bin");
    spit(bin, b.data, b.len);
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd,
             "protoc --decode=tensorflow.Example -I%s/proto %s/proto/tf_example.proto < %s 2>&1",
             source_dir(), source_dir(), bin);
    ck_assert_msg(run(cmd, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "key: \"label\"") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "int64_list {\n        value: -3\n        value: 0\n        value: "
                              "9223372036854775807\n") != NULL,
                  "%s", out);
    ck_assert_msg(strstr(out, "float_list {\n        value: 0.5\n        value: -1.25\n") != NULL,
                  "%s", out);
    ck_assert_msg(strstr(out, "bytes_list {\n        value: \"abc\"\n        value: \"\"\n") !=
                      NULL,
                  "%s", out);
    pst_pbwire_buf_destroy(&b);
    pst_example_free(ex);
    teardown();
}
END_TEST

/* protoc encodes an Example from text; we parse it. */
START_TEST(test_parses_protoc_encoding) {
    setup();
    const char *txt = tmp_path("ex.txt"), *bin = tmp_path("ex.bin");
    const char *text = "features { feature { key: \"img\" value { float_list { value: [1.5, 2, "
                       "-0.25] } } }\n feature { key: \"id\" value { int64_list { value: [-7, "
                       "123456789012] } } }\n feature { key: \"raw\" value { bytes_list { value: "
                       "\"\\001\\002\\003\" } } } }\n";
    spit(txt, text, strlen(text));
    char cmd[2048], out[4096];
    snprintf(cmd, sizeof cmd,
             "protoc --encode=tensorflow.Example -I%s/proto %s/proto/tf_example.proto < %s > %s",
             source_dir(), source_dir(), txt, bin);
    ck_assert_msg(run(cmd, out, sizeof out) == 0, "%s", out);
    FILE *f = fopen(bin, "rb");
    uint8_t buf[512];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    pst_example *ex = pst_example_new();
    pst_status st = {0};
    ck_assert_msg(pst_example_parse(ex, buf, n, &st) == 0, "%s", st.msg);
    const pst_example_feature *img = pst_example_find(ex, "img"), *id = pst_example_find(ex, "id");
    const pst_example_feature *raw = pst_example_find(ex, "raw");
    ck_assert(img && id && raw);
    ck_assert_uint_eq(img->count, 3);
    ck_assert(img->floats[0] == 1.5f && img->floats[1] == 2.0f && img->floats[2] == -0.25f);
    ck_assert_uint_eq(id->count, 2);
    ck_assert(id->int64s[0] == -7 && id->int64s[1] == 123456789012LL);
    ck_assert_uint_eq(raw->count, 1);
    ck_assert(raw->bytes[0].len == 3 && memcmp(raw->bytes[0].data, "\1\2\3", 3) == 0);
    pst_example_free(ex);
    teardown();
}
END_TEST

/* Hand-built: Example{features{feature{key:"f" value{float_list{<unpacked 1.0> <unpacked
 * 2.0>}}} feature{key:"i" value{int64_list{<unpacked 5> <unpacked -1>}}}}}. */
START_TEST(test_parses_unpacked_lists) {
    const uint8_t f_entry[] = {0x0a, 0x01, 'f',  0x12, 0x0c, 0x12,
                               0x0a, 0x0d, 0x00, 0x00, 0x80, 0x3f, /* value: 1.0 as fixed32 */
                               0x0d, 0x00, 0x00, 0x00, 0x40};      /* value: 2.0 */
    const uint8_t i_entry[] = {0x0a, 0x01, 'i',  0x12, 0x0f, 0x1a, 0x0d, 0x08, 0x05, /* 5 */
                               0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                               0xff, 0x01}; /* -1 */
    uint8_t msg[128];
    size_t n = 0;
    msg[n++] = 0x0a;
    msg[n++] = (uint8_t)(2 + sizeof f_entry + 2 + sizeof i_entry);
    msg[n++] = 0x0a;
    msg[n++] = sizeof f_entry;
    memcpy(msg + n, f_entry, sizeof f_entry);
    n += sizeof f_entry;
    msg[n++] = 0x0a;
    msg[n++] = sizeof i_entry;
    memcpy(msg + n, i_entry, sizeof i_entry);
    n += sizeof i_entry;
    pst_example *ex = pst_example_new();
    pst_status st = {0};
    ck_assert_msg(pst_example_parse(ex, msg, n, &st) == 0, "%s", st.msg);
    const pst_example_feature *f = pst_example_find(ex, "f"), *i = pst_example_find(ex, "i");
    ck_assert_uint_eq(f->count, 2);
    ck_assert(f->floats[0] == 1.0f && f->floats[1] == 2.0f);
    ck_assert_uint_eq(i->count, 2);
    ck_assert(i->int64s[0] == 5 && i->int64s[1] == -1);
    pst_example_free(ex);
}
END_TEST

/* A list split over packed and unpacked fields is one list, in wire order. */
START_TEST(test_parses_mixed_packed_and_unpacked) {
    /* int64_list { value: [1, 2] (packed)  value: 3 (unpacked)  value: [4] (packed) } */
    const uint8_t list[] = {0x0a, 0x02, 0x01, 0x02, 0x08, 0x03, 0x0a, 0x01, 0x04};
    uint8_t msg[64];
    size_t n = 0;
    const uint8_t entry_head[] = {0x0a, 0x01, 'm', 0x12, 2 + sizeof list, 0x1a, sizeof list};
    msg[n++] = 0x0a;
    msg[n++] = 2 + sizeof entry_head + sizeof list;
    msg[n++] = 0x0a;
    msg[n++] = sizeof entry_head + sizeof list;
    memcpy(msg + n, entry_head, sizeof entry_head);
    n += sizeof entry_head;
    memcpy(msg + n, list, sizeof list);
    n += sizeof list;
    pst_example *ex = pst_example_new();
    pst_status st = {0};
    ck_assert_msg(pst_example_parse(ex, msg, n, &st) == 0, "%s", st.msg);
    const pst_example_feature *m = pst_example_find(ex, "m");
    ck_assert_uint_eq(m->count, 4);
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(m->int64s[k], k + 1);
    pst_example_free(ex);
}
END_TEST

/* Protobuf's rules: a repeated map key keeps the last value; so does adding a name twice. */
START_TEST(test_repeated_name_keeps_last_value) {
    pst_example *ex = pst_example_new();
    int64_t a = 1, b = 2;
    float c = 3;
    pst_example_add_int64s(ex, "k", &a, 1, NULL);
    pst_example_add_floats(ex, "other", &c, 1, NULL);
    pst_example_add_int64s(ex, "k", &b, 1, NULL);
    ck_assert_int_eq(pst_example_num_features(ex), 2);
    ck_assert_str_eq(pst_example_feature_at(ex, 0)->name, "k");
    ck_assert_int_eq(pst_example_find(ex, "k")->int64s[0], 2);
    /* On the wire: two entries for "k" (encode two examples and concatenate: fields merge). */
    pst_example *e1 = pst_example_new(), *e2 = pst_example_new();
    pst_example_add_int64s(e1, "k", &a, 1, NULL);
    pst_example_add_floats(e2, "k", &c, 1, NULL);
    pst_pbwire_buf buf;
    pst_pbwire_buf_init(&buf);
    pst_example_encode(e1, &buf, NULL);
    pst_example_encode(e2, &buf, NULL);
    ck_assert_int_eq(pst_example_parse(ex, buf.data, buf.len, NULL), 0);
    ck_assert_int_eq(pst_example_num_features(ex), 1);
    ck_assert_int_eq(pst_example_find(ex, "k")->kind, PST_EXAMPLE_FLOAT);
    ck_assert(pst_example_find(ex, "k")->floats[0] == 3.0f);
    pst_pbwire_buf_destroy(&buf);
    pst_example_free(e1);
    pst_example_free(e2);
    pst_example_free(ex);
}
END_TEST

START_TEST(test_malformed_messages_are_errors) {
    pst_example *ex = pst_example_new();
    pst_status st = {0};
    /* A length running past the end. */
    const uint8_t past[] = {0x0a, 0x20, 0x0a};
    ck_assert_int_eq(pst_example_parse(ex, past, sizeof past, &st), PST_E_DATA_LOSS);
    ck_assert_ptr_nonnull(strstr(st.msg, "not a valid tf.train.Example"));
    /* A packed float list of 5 bytes names its feature. */
    const uint8_t odd[] = {0x0a, 0x11, 0x0a, 0x0f, 0x0a, 0x03, 'i',  'm',  'g', 0x12,
                           0x08, 0x12, 0x06, 0x0a, 0x04, 0x00, 0x00, 0x80, 0x3f};
    uint8_t bad[sizeof odd];
    memcpy(bad, odd, sizeof odd);
    ck_assert_int_eq(pst_example_parse(ex, bad, sizeof bad, NULL), 0); /* the valid form */
    bad[14] = 0x03; /* packed length 3: a truncated float */
    bad[12] = 0x05;
    bad[10] = 0x07;
    bad[3] = 0x0e;
    bad[1] = 0x10;
    pst_status_clear(&st);
    ck_assert_int_eq(pst_example_parse(ex, bad, sizeof bad - 1, &st), PST_E_DATA_LOSS);
    ck_assert_msg(strstr(st.msg, "feature \"img\"") != NULL, "%s", st.msg);
    ck_assert_msg(strstr(st.msg, "not a multiple of 4") != NULL, "%s", st.msg);
    /* A truncated varint. */
    const uint8_t trunc[] = {0x0a, 0x02, 0x0a, 0x80};
    pst_status_clear(&st);
    ck_assert_int_eq(pst_example_parse(ex, trunc, sizeof trunc, &st), PST_E_DATA_LOSS);
    /* Plain text is not an Example. */
    pst_status_clear(&st);
    ck_assert_int_eq(pst_example_parse(ex, (const uint8_t *)"The Quick Brown Fox", 19, &st),
                     PST_E_DATA_LOSS);
    pst_example_free(ex);
}
END_TEST

/* Writes n examples: "image" (floats k*100+j, j < 6, or the same as bytes), "label" k. */
static const char *write_examples(const char *name, int n, int as_bytes, int skip_label_at) {
    const char *path = tmp_path(name);
    pst_tfrecord_writer *w = pst_tfrecord_writer_open(path, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    pst_example *ex = pst_example_new();
    pst_pbwire_buf b;
    pst_pbwire_buf_init(&b);
    for (int k = 0; k < n; k++) {
        pst_example_clear(ex);
        float f[6];
        uint8_t u[6];
        for (int j = 0; j < 6; j++) {
            f[j] = (float)(k * 100 + j);
            u[j] = (uint8_t)(k * 10 + j);
        }
        if (as_bytes) {
            pst_example_bytes v = {u, 6};
            pst_example_add_bytes(ex, "image", &v, 1, NULL);
        } else {
            pst_example_add_floats(ex, "image", f, 6, NULL);
        }
        int64_t label = k;
        if (k != skip_label_at)
            pst_example_add_int64s(ex, "label", &label, 1, NULL);
        pst_pbwire_buf_reset(&b);
        ck_assert_int_eq(pst_example_encode(ex, &b, NULL), 0);
        ck_assert_int_eq(pst_tfrecord_writer_write(w, b.data, b.len, NULL), 0);
    }
    pst_pbwire_buf_destroy(&b);
    pst_example_free(ex);
    ck_assert_int_eq(pst_tfrecord_writer_close(w, NULL), 0);
    return path;
}

START_TEST(test_load_floats_and_labels) {
    setup();
    const char *path = write_examples("f.tfrecord", 5, 0, -1);
    pst_example_spec specs[2] = {{"image", PST_FLOAT, pst_shape_2d(2, 3)},
                                 {"label", PST_INT64, pst_shape_scalar()}};
    pst_tensor *t[2];
    pst_status st = {0};
    ck_assert_msg(pst_example_load_tfrecord(path, NULL, specs, 2, t, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(t[0]->shape.rank, 3);
    ck_assert_int_eq(t[0]->shape.dims[0], 5);
    ck_assert_int_eq(t[0]->shape.dims[1], 2);
    ck_assert_int_eq(t[0]->shape.dims[2], 3);
    ck_assert_int_eq(t[1]->shape.rank, 1);
    for (int k = 0; k < 5; k++) {
        ck_assert_int_eq(pst_tensor_i64(t[1])[k], k);
        for (int j = 0; j < 6; j++)
            ck_assert(pst_tensor_f32(t[0])[k * 6 + j] == k * 100 + j);
    }
    pst_tensor_unref(t[0]);
    pst_tensor_unref(t[1]);
    teardown();
}
END_TEST

START_TEST(test_load_raw_bytes_and_int32) {
    setup();
    const char *path = write_examples("b.tfrecord", 4, 1, -1);
    pst_example_spec specs[2] = {{"image", PST_UINT8, pst_shape_make(3, (int64_t[]){3, 2, 1})},
                                 {"label", PST_INT32, pst_shape_1d(1)}};
    pst_tensor *t[2];
    pst_status st = {0};
    ck_assert_msg(pst_example_load_tfrecord(path, NULL, specs, 2, t, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(t[0]->dtype, PST_UINT8);
    ck_assert_int_eq(t[0]->shape.rank, 4);
    ck_assert_int_eq(t[1]->dtype, PST_INT32);
    ck_assert_int_eq(t[1]->shape.dims[1], 1);
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(pst_tensor_i32(t[1])[k], k);
        for (int j = 0; j < 6; j++)
            ck_assert_int_eq(pst_tensor_u8(t[0])[k * 6 + j], k * 10 + j);
    }
    pst_tensor_unref(t[0]);
    pst_tensor_unref(t[1]);
    teardown();
}
END_TEST

static void load_expect_error(const char *path, pst_example_spec *specs, int n,
                              const char *const *needles) {
    pst_tensor *t[2] = {(pst_tensor *)1, (pst_tensor *)1};
    pst_status st = {0};
    ck_assert_int_lt(pst_example_load_tfrecord(path, NULL, specs, n, t, &st), 0);
    ck_assert_ptr_null(t[0]);
    for (int k = 0; needles[k]; k++)
        ck_assert_msg(strstr(st.msg, needles[k]) != NULL, "'%s' not in: %s", needles[k], st.msg);
}

START_TEST(test_load_missing_feature_names_file_record_feature) {
    setup();
    const char *path = write_examples("m.tfrecord", 5, 0, 3);
    pst_example_spec specs[2] = {{"image", PST_FLOAT, pst_shape_1d(6)},
                                 {"label", PST_INT64, pst_shape_scalar()}};
    const char *needles[] = {path, "record 3 ", "feature \"label\" is missing", NULL};
    load_expect_error(path, specs, 2, needles);
    teardown();
}
END_TEST

START_TEST(test_load_wrong_count_names_feature) {
    setup();
    const char *path = write_examples("c.tfrecord", 2, 0, -1);
    pst_example_spec specs[1] = {{"image", PST_FLOAT, pst_shape_2d(28, 28)}};
    const char *needles[] = {path, "record 0 ", "feature \"image\" holds 6 values", "wants 784",
                             NULL};
    load_expect_error(path, specs, 1, needles);
    teardown();
}
END_TEST

START_TEST(test_load_wrong_kind_names_feature) {
    setup();
    const char *path = write_examples("k.tfrecord", 2, 1, -1);
    pst_example_spec specs[1] = {{"image", PST_FLOAT, pst_shape_1d(6)}};
    const char *needles[] = {path, "record 0 ", "feature \"image\" is a bytes_list",
                             "wants a float_list", NULL};
    load_expect_error(path, specs, 1, needles);
    teardown();
}
END_TEST

START_TEST(test_load_non_example_record) {
    setup();
    const char *path = tmp_path("fox.tfrecord");
    pst_tfrecord_writer *w = pst_tfrecord_writer_open(path, NULL, NULL);
    pst_tfrecord_writer_write(w, "The Quick Brown Fox", 19, NULL);
    ck_assert_int_eq(pst_tfrecord_writer_close(w, NULL), 0);
    pst_example_spec specs[1] = {{"label", PST_INT64, pst_shape_scalar()}};
    const char *needles[] = {path, "record 0 ", "not a valid tf.train.Example", NULL};
    load_expect_error(path, specs, 1, needles);
    teardown();
}
END_TEST

START_TEST(test_load_bad_spec) {
    setup();
    const char *path = write_examples("s.tfrecord", 1, 0, -1);
    pst_example_spec specs[1] = {{"image", PST_BOOL, pst_shape_1d(6)}};
    const char *needles[] = {"feature \"image\"", "bool", NULL};
    load_expect_error(path, specs, 1, needles);
    pst_example_spec unknown[1] = {{"image", PST_FLOAT, pst_shape_unknown()}};
    const char *needles2[] = {"fully known", NULL};
    load_expect_error(path, unknown, 1, needles2);
    teardown();
}
END_TEST

int main(void) {
    Suite *s = suite_create("example");
    TCase *tc = tcase_create("example");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_encode_parse_round_trip);
    tcase_add_test(tc, test_encoding_is_packed);
    tcase_add_test(tc, test_protoc_decodes_our_encoding);
    tcase_add_test(tc, test_parses_protoc_encoding);
    tcase_add_test(tc, test_parses_unpacked_lists);
    tcase_add_test(tc, test_parses_mixed_packed_and_unpacked);
    tcase_add_test(tc, test_repeated_name_keeps_last_value);
    tcase_add_test(tc, test_malformed_messages_are_errors);
    tcase_add_test(tc, test_load_floats_and_labels);
    tcase_add_test(tc, test_load_raw_bytes_and_int32);
    tcase_add_test(tc, test_load_missing_feature_names_file_record_feature);
    tcase_add_test(tc, test_load_wrong_count_names_feature);
    tcase_add_test(tc, test_load_wrong_kind_names_feature);
    tcase_add_test(tc, test_load_non_example_record);
    tcase_add_test(tc, test_load_bad_spec);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
