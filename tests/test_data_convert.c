/* `pstrain data convert` and `pstrain data show`: the built CLI on tiny IDX files written here,
 * its output read back with pst_example_load_tfrecord and the independent Python reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "example.h"
#include "testutil.h"

#define ROWS 4
#define COLS 5

static char tmpdir[256];

static void teardown(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
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
    ck_assert_msg(rc != 127, "command not found: %s\n%s", cmd, out);
    return rc;
}

/* Runs `pstrain ARGS` (stdout and stderr together); returns the exit status. */
static int pstrain(const char *args, char *out, size_t len) {
    const char *bin = getenv("PST_BINARY_DIR");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain %s 2>&1", bin ? bin : "build", args);
    return run(cmd, out, len);
}

static uint8_t pixel(int image, int j) {
    return (uint8_t)(image * 40 + j * 3);
}
static uint8_t label(int image) {
    return (uint8_t)((image * 3 + 1) % 10);
}

static void write_gz(const char *name, const uint8_t *b, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/idx/%s", tmpdir, name);
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, b, (unsigned)n), (int)n);
    gzclose(f);
}

/* IDX files for "train" (3 images) and "t10k" (2 images) of ROWS x COLS under tmpdir/idx. */
static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pst_convert_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    char dir[512];
    snprintf(dir, sizeof dir, "%s/idx", tmpdir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    const char *names[2] = {"train", "t10k"};
    int counts[2] = {3, 2};
    for (int s = 0; s < 2; s++) {
        int n = counts[s];
        uint8_t img[16 + 3 * ROWS * COLS] = {0, 0, 8, 3,    0, 0, 0, (uint8_t)n,
                                             0, 0, 0, ROWS, 0, 0, 0, COLS};
        uint8_t lab[8 + 3] = {0, 0, 8, 1, 0, 0, 0, (uint8_t)n};
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < ROWS * COLS; j++)
                img[16 + i * ROWS * COLS + j] = pixel(i, j);
            lab[8 + i] = label(i);
        }
        char name[64];
        snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", names[s]);
        write_gz(name, img, 16 + (size_t)n * ROWS * COLS);
        snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", names[s]);
        write_gz(name, lab, 8 + (size_t)n);
    }
}

static const char *const comp_names[3] = {"none", "zlib", "gzip"};
static const char *const suffixes[3] = {"", ".zlib", ".gz"};

START_TEST(test_convert_raw_bytes_and_read_back) {
    setup();
    char args[2048], out[8192], path[1024];
    snprintf(args, sizeof args,
             "data convert --from idx --to tfrecord --out %s/out --data-dir %s/idx --split train "
             "--compression %s",
             tmpdir, tmpdir, comp_names[_i]);
    ck_assert_msg(pstrain(args, out, sizeof out) == 0, "%s", out);
    snprintf(path, sizeof path, "%s/out/train.tfrecord%s", tmpdir, suffixes[_i]);
    ck_assert_msg(strstr(out, path) != NULL, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "wrote 3 records"));
    pst_example_spec specs[2] = {
        {"image", PST_UINT8, pst_shape_make(3, (int64_t[]){ROWS, COLS, 1})},
        {"label", PST_INT64, pst_shape_scalar()}};
    pst_tensor *t[2];
    pst_status st = {0};
    ck_assert_msg(pst_example_load_tfrecord(path, NULL, specs, 2, t, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(t[0]->shape.dims[0], 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(pst_tensor_i64(t[1])[i], label(i));
        for (int j = 0; j < ROWS * COLS; j++)
            ck_assert_int_eq(pst_tensor_u8(t[0])[i * ROWS * COLS + j], pixel(i, j));
    }
    pst_tensor_unref(t[0]);
    pst_tensor_unref(t[1]);
    /* The independent reader agrees on the framing: 3 records. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "python3 %s/tests/tfrecord_check.py read %s %s 2>&1", source_dir(),
             path, comp_names[_i]);
    ck_assert_msg(run(cmd, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "records 3\n") != NULL, "%s", out);
    teardown();
}
END_TEST

START_TEST(test_convert_float_images) {
    setup();
    char args[2048], out[8192], path[1024];
    snprintf(args, sizeof args,
             "data convert --from idx --to tfrecord --out %s/out --data-dir %s/idx --split test "
             "--float",
             tmpdir, tmpdir);
    ck_assert_msg(pstrain(args, out, sizeof out) == 0, "%s", out);
    snprintf(path, sizeof path, "%s/out/test.tfrecord", tmpdir);
    pst_example_spec specs[2] = {
        {"image", PST_FLOAT, pst_shape_make(3, (int64_t[]){ROWS, COLS, 1})},
        {"label", PST_INT64, pst_shape_scalar()}};
    pst_tensor *t[2];
    pst_status st = {0};
    ck_assert_msg(pst_example_load_tfrecord(path, NULL, specs, 2, t, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(t[0]->shape.dims[0], 2);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < ROWS * COLS; j++)
            ck_assert(pst_tensor_f32(t[0])[i * ROWS * COLS + j] ==
                      (float)pixel(i, j) * (1.0f / 255.0f));
    pst_tensor_unref(t[0]);
    pst_tensor_unref(t[1]);
    teardown();
}
END_TEST

START_TEST(test_convert_both_splits_by_default) {
    setup();
    char args[2048], out[8192], path[1024];
    snprintf(args, sizeof args,
             "data convert --from idx --to tfrecord --out %s/out/nested --data-dir %s/idx", tmpdir,
             tmpdir);
    ck_assert_msg(pstrain(args, out, sizeof out) == 0, "%s", out);
    int64_t n;
    snprintf(path, sizeof path, "%s/out/nested/train.tfrecord", tmpdir);
    ck_assert_int_eq(pst_tfrecord_count(path, NULL, &n, NULL), 0);
    ck_assert_int_eq(n, 3);
    snprintf(path, sizeof path, "%s/out/nested/test.tfrecord", tmpdir);
    ck_assert_int_eq(pst_tfrecord_count(path, NULL, &n, NULL), 0);
    ck_assert_int_eq(n, 2);
    teardown();
}
END_TEST

START_TEST(test_show_prints_features) {
    setup();
    char args[2048], out[16384];
    snprintf(args, sizeof args,
             "data convert --from idx --to tfrecord --out %s/out --data-dir %s/idx --split train "
             "--compression gzip",
             tmpdir, tmpdir);
    ck_assert_msg(pstrain(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "data show %s/out/train.tfrecord.gz --limit 2", tmpdir);
    ck_assert_msg(pstrain(args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "(gzip)") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "record 0 (offset 0, ") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "  image: bytes_list[1] 00 03 06 09 0c") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "... (20 bytes)") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "  label: int64_list[1] 4\n") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "record 2") == NULL, "%s", out);
    ck_assert_msg(strstr(out, "2 record(s) shown (--limit 2)") != NULL, "%s", out);
    teardown();
}
END_TEST

START_TEST(test_show_corrupt_file_fails) {
    setup();
    char args[2048], out[8192], path[1024];
    snprintf(args, sizeof args,
             "data convert --from idx --to tfrecord --out %s/out --data-dir %s/idx --split train",
             tmpdir, tmpdir);
    ck_assert_msg(pstrain(args, out, sizeof out) == 0, "%s", out);
    snprintf(path, sizeof path, "%s/out/train.tfrecord", tmpdir);
    FILE *f = fopen(path, "r+b");
    fseek(f, -3, SEEK_END);
    fputc(0xee, f);
    fclose(f);
    snprintf(args, sizeof args, "data show %s", path);
    ck_assert_int_eq(pstrain(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "record 2 ") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "data checksum") != NULL, "%s", out);
    teardown();
}
END_TEST

START_TEST(test_convert_missing_idx_names_package) {
    setup();
    char args[2048], out[8192];
    snprintf(args, sizeof args,
             "data convert --from idx --to tfrecord --out %s/out --data-dir %s/nowhere", tmpdir,
             tmpdir);
    ck_assert_int_eq(pstrain(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "dataset-fashion-mnist") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "train-images-idx3-ubyte.gz") != NULL, "%s", out);
    teardown();
}
END_TEST

START_TEST(test_convert_bad_arguments) {
    char out[8192];
    ck_assert_int_eq(pstrain("data convert --from csv --to tfrecord --out /tmp/x", out, sizeof out),
                     2);
    ck_assert_ptr_nonnull(strstr(out, "--from idx --to tfrecord"));
    ck_assert_int_eq(pstrain("data convert --from idx --to tfrecord --out /tmp/x --compression lz4",
                             out, sizeof out),
                     2);
    ck_assert_ptr_nonnull(strstr(out, "--compression"));
    ck_assert_int_eq(pstrain("data", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "usage: pstrain data"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("data_convert");
    TCase *tc = tcase_create("data_convert");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_convert_raw_bytes_and_read_back, 0, 3);
    tcase_add_test(tc, test_convert_float_images);
    tcase_add_test(tc, test_convert_both_splits_by_default);
    tcase_add_test(tc, test_show_prints_features);
    tcase_add_test(tc, test_show_corrupt_file_fails);
    tcase_add_test(tc, test_convert_missing_idx_names_package);
    tcase_add_test(tc, test_convert_bad_arguments);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
