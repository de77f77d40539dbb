/* IDX files and the dataset pipeline. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dataset.h"
#include "idx.h"
#include "testutil.h"
#include "fashion_mnist.h"
#include "clock.h"

static char tmpdir[256];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pst_data_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static const char *write_idx(const char *name, const unsigned char *bytes, size_t n, int gz) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, bytes, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(bytes, 1, n, f);
        fclose(f);
    }
    return path;
}

START_TEST(test_idx_round_trip_plain_and_gzip) {
    setup();
    unsigned char img[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    for (int gz = 0; gz < 2; gz++) {
        pst_tensor *t = NULL;
        pst_status st = {0};
        ck_assert_int_eq(pst_idx_read(write_idx(gz ? "a.gz" : "a", img, sizeof img, gz), &t, &st), 0);
        int64_t dims[3] = {2, 2, 3};
        double v[12];
        for (int i = 0; i < 12; i++) v[i] = i + 1;
        PST_ASSERT_TENSOR(t, 3, dims, v, 0);
        pst_tensor_unref(t);
    }
}
END_TEST

START_TEST(test_idx_errors_name_the_file) {
    setup();
    pst_tensor *t = NULL;
    pst_status st = {0};
    unsigned char bad_magic[] = {0, 0, 9, 1, 0, 0, 0, 1, 7};
    const char *p = write_idx("bad", bad_magic, sizeof bad_magic, 0);
    ck_assert_int_eq(pst_idx_read(p, &t, &st), PST_E_DATA_LOSS);
    ck_assert_ptr_nonnull(strstr(st.msg, p));
    ck_assert_ptr_nonnull(strstr(st.msg, "magic"));
    unsigned char truncated[] = {0, 0, 8, 1, 0, 0, 0, 9, 1, 2};
    pst_status_clear(&st);
    p = write_idx("short.gz", truncated, sizeof truncated, 1);
    ck_assert_int_eq(pst_idx_read(p, &t, &st), PST_E_DATA_LOSS);
    ck_assert_ptr_nonnull(strstr(st.msg, "truncated"));
    pst_status_clear(&st);
    pst_tensor *im, *lb;
    ck_assert_int_eq(pst_fashion_mnist_load(tmpdir, "train", &im, &lb, &st), PST_E_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(st.msg, "train-images-idx3-ubyte.gz"));
    ck_assert_ptr_nonnull(strstr(st.msg, "dataset-fashion-mnist"));
}
END_TEST


static int read_idx(void *ctx, pst_status *st) {
    pst_tensor *t = NULL;
    int rc = pst_idx_read(ctx, &t, st);
    pst_tensor_unref(t);
    return rc;
}

/* A 29-byte IDX whose header promises 4.29 GB (65535 x 65535 x 1) fails at once with an error
 * naming the file, allocating nothing of that size (run under a 256 MiB address-space limit);
 * the same bytes gzipped too, and a real 2 MiB gzip file promising 1 GiB is read piece by piece
 * and found short. */
START_TEST(test_hostile_idx_header_fails_fast) {
    setup();
    unsigned char hostile[29] = {0, 0, 8, 3, 0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0, 0, 1};
    for (int gz = 0; gz < 2; gz++) {
        char path[512];
        snprintf(path, sizeof path, "%s", write_idx(gz ? "hostile.gz" : "hostile", hostile, 29, gz));
        pst_status st = {0};
        double t0 = pst_clock_now();
        int rc = pst_test_run_with_memory_limit(read_idx, path, (size_t)256 << 20, &st);
        ck_assert_msg(rc == PST_E_DATA_LOSS && strstr(st.msg, path) && strstr(st.msg, "promises"),
                      "%s: %d %s", path, rc, st.msg);
        ck_assert_msg(pst_clock_now() - t0 < 5, "took %.1f s", pst_clock_now() - t0);
    }
    /* 2 MiB of incompressible bytes under a header promising 1 GiB. */
    size_t n = (size_t)2 << 20;
    unsigned char *big = malloc(n + 12);
    const unsigned char hdr[12] = {0, 0, 8, 2, 0, 0, 0x40, 0, 0, 0, 0x40, 0}; /* 16384 x 16384 */
    memcpy(big, hdr, 12);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big[12 + i] = (unsigned char)x;
    }
    char path[512];
    snprintf(path, sizeof path, "%s", write_idx("short.gz", big, n + 12, 1));
    free(big);
    pst_status st = {0};
    int rc = pst_test_run_with_memory_limit(read_idx, path, (size_t)256 << 20, &st);
    ck_assert_msg(rc == PST_E_DATA_LOSS && strstr(st.msg, path) && strstr(st.msg, "truncated"),
                  "%d %s", rc, st.msg);
}
END_TEST

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "hung opening a FIFO\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(99);
}

/* A plain IDX must hold exactly the bytes its header promises; a FIFO is an error, not a hang. */
START_TEST(test_idx_length_must_match_the_header) {
    setup();
    unsigned char longer[] = {0, 0, 8, 1, 0, 0, 0, 2, 7, 8, 9};
    const char *p = write_idx("longer", longer, sizeof longer, 0);
    pst_tensor *t = NULL;
    pst_status st = {0};
    ck_assert_int_eq(pst_idx_read(p, &t, &st), PST_E_DATA_LOSS);
    ck_assert_msg(strstr(st.msg, p) && strstr(st.msg, "promises 2 bytes"), "%s", st.msg);
    p = write_idx("longer.gz", longer, sizeof longer, 1);
    pst_status_clear(&st);
    ck_assert_int_eq(pst_idx_read(p, &t, &st), PST_E_DATA_LOSS);
    ck_assert_msg(strstr(st.msg, p) && strstr(st.msg, "bytes follow"), "%s", st.msg);
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
    ck_assert_int_eq(mkfifo(fifo, 0644), 0);
    signal(SIGALRM, on_alarm);
    alarm(10);
    pst_status_clear(&st);
    ck_assert_int_lt(pst_idx_read(fifo, &t, &st), 0);
    alarm(0);
    ck_assert_msg(strstr(st.msg, fifo) && strstr(st.msg, "not a regular file"), "%s", st.msg);
}
END_TEST

START_TEST(test_fashion_mnist_test_set) {
    pst_tensor *im, *lb;
    pst_status st = {0};
    ck_assert_msg(pst_fashion_mnist_load(NULL, "test", &im, &lb, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(im->shape.dims[0], 10000);
    ck_assert_int_eq(im->shape.dims[1], 28);
    ck_assert_int_eq(im->shape.dims[3], 1);
    int count[10] = {0};
    for (int64_t i = 0; i < lb->n; i++) {
        int64_t l = pst_tensor_i64(lb)[i];
        ck_assert(l >= 0 && l < 10);
        count[l]++;
    }
    for (int k = 0; k < 10; k++) ck_assert_int_eq(count[k], 1000);
    for (int64_t i = 0; i < im->n; i++) ck_assert(pst_tensor_f32(im)[i] >= 0 && pst_tensor_f32(im)[i] <= 1);
    pst_tensor_unref(im);
    pst_tensor_unref(lb);
}
END_TEST

static pst_dataset *counting(int64_t n) {
    pst_tensor *x = pst_tensor_new(PST_FLOAT, pst_shape_2d(n, 2), NULL);
    pst_tensor *y = pst_tensor_new(PST_INT64, pst_shape_1d(n), NULL);
    for (int64_t i = 0; i < n; i++) {
        pst_tensor_f32(x)[2 * i] = (float)i;
        pst_tensor_f32(x)[2 * i + 1] = (float)(10 * i);
        pst_tensor_i64(y)[i] = i;
    }
    pst_dataset *ds = pst_dataset_new(x, y, NULL);
    pst_tensor_unref(x);
    pst_tensor_unref(y);
    return ds;
}

/* Collects every label the iterator yields (up to cap). */
static int64_t drain(pst_dataset_iter *it, int64_t *out, int64_t cap, int64_t *batches) {
    pst_tensor *x, *y;
    int64_t n = 0;
    pst_status st = {0};
    *batches = 0;
    while (pst_dataset_next(it, &x, &y, &st) == 1) {
        (*batches)++;
        for (int64_t i = 0; i < y->n && n < cap; i++) {
            out[n++] = pst_tensor_i64(y)[i];
            ck_assert_float_eq(pst_tensor_f32(x)[2 * i + 1], 10.0f * (float)pst_tensor_i64(y)[i]);
        }
        pst_tensor_unref(x);
        pst_tensor_unref(y);
    }
    return n;
}

START_TEST(test_shuffle_reproducible_and_epoch_permutation) {
    pst_dataset *ds = counting(100);
    int64_t a[200], b[200], c[200], nb;
    pst_dataset_iter_opts o = {.batch = 7, .shuffle_buffer = 100, .seed = 5, .repeat = 2};
    pst_dataset_iter *it = pst_dataset_iter_new(ds, &o, NULL);
    ck_assert_int_eq(drain(it, a, 200, &nb), 200);
    pst_dataset_iter_free(it);
    it = pst_dataset_iter_new(ds, &o, NULL);
    drain(it, b, 200, &nb);
    pst_dataset_iter_free(it);
    o.seed = 6;
    it = pst_dataset_iter_new(ds, &o, NULL);
    drain(it, c, 200, &nb);
    pst_dataset_iter_free(it);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    ck_assert(memcmp(a, c, sizeof a) != 0);
    /* each epoch is a permutation */
    for (int e = 0; e < 2; e++) {
        int seen[100] = {0};
        for (int i = 0; i < 100; i++) seen[a[e * 100 + i]]++;
        for (int i = 0; i < 100; i++) ck_assert_int_eq(seen[i], 1);
    }
    ck_assert(memcmp(a, a + 100, 100 * sizeof a[0]) != 0); /* reshuffled */
    pst_dataset_free(ds);
}
END_TEST

START_TEST(test_shards_cover_every_example_once) {
    pst_dataset *ds = counting(103);
    int seen[103] = {0};
    for (int k = 0; k < 4; k++) {
        pst_dataset *sh = pst_dataset_shard(ds, k, 4, NULL);
        pst_dataset_iter_opts o = {.batch = 10, .shuffle_buffer = 50, .seed = (uint64_t)k};
        pst_dataset_iter *it = pst_dataset_iter_new(sh, &o, NULL);
        int64_t got[103], nb;
        int64_t n = drain(it, got, 103, &nb);
        for (int64_t i = 0; i < n; i++) {
            ck_assert_int_eq(got[i] % 4, k);
            seen[got[i]]++;
        }
        pst_dataset_iter_free(it);
        pst_dataset_free(sh);
    }
    for (int i = 0; i < 103; i++) ck_assert_int_eq(seen[i], 1);
    pst_status st = {0};
    ck_assert_ptr_null(pst_dataset_shard(ds, 4, 4, &st));
    ck_assert_ptr_nonnull(strstr(st.msg, "shard index 4"));
    pst_dataset_free(ds);
}
END_TEST

/* The trainers' split: the last examples validate, and the rest go to worker i % W. */
START_TEST(test_split_for_worker_holds_out_validation_then_shards) {
    pst_dataset *ds = counting(23), *mine, *val;
    ck_assert_int_eq(pst_dataset_split_for_worker(ds, 5, 1, 3, &mine, &val, NULL), 0);
    ck_assert_int_eq(pst_dataset_size(val), 5); /* 18..22 */
    for (int64_t i = 0; i < 5; i++) ck_assert_int_eq(pst_dataset_index(val, i), 18 + i);
    ck_assert_int_eq(pst_dataset_size(mine), 6); /* of 0..17: 1, 4, 7, 10, 13, 16 */
    for (int64_t i = 0; i < 6; i++) ck_assert_int_eq(pst_dataset_index(mine, i), 1 + 3 * i);
    pst_dataset_free(mine);
    pst_dataset_free(val);
    /* the workers together read every training example once */
    int seen[23] = {0};
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(pst_dataset_split_for_worker(ds, 3, k, 4, &mine, &val, NULL), 0);
        for (int64_t i = 0; i < pst_dataset_size(mine); i++) seen[pst_dataset_index(mine, i)]++;
        pst_dataset_free(mine);
        pst_dataset_free(val);
    }
    for (int i = 0; i < 23; i++) ck_assert_int_eq(seen[i], i < 20 ? 1 : 0);
    /* one process is worker 0 of 1; asking for all examples (or more) holds none out */
    ck_assert_int_eq(pst_dataset_split_for_worker(ds, 23, 0, 1, &mine, &val, NULL), 0);
    ck_assert_int_eq(pst_dataset_size(mine), 23);
    ck_assert_int_eq(pst_dataset_size(val), 0);
    pst_dataset_free(mine);
    pst_dataset_free(val);
    pst_status st = {0};
    mine = val = NULL;
    ck_assert_int_eq(pst_dataset_split_for_worker(ds, 0, 3, 3, &mine, &val, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "worker 3 of 3") != NULL, "%s", st.msg);
    ck_assert_ptr_null(mine);
    ck_assert_ptr_null(val);
    pst_dataset_free(ds);
}
END_TEST

START_TEST(test_batches_remainder_prefetch_split) {
    pst_dataset *ds = counting(25);
    int64_t a[100], b[100], nb;
    pst_dataset_iter_opts o = {.batch = 10};
    pst_dataset_iter *it = pst_dataset_iter_new(ds, &o, NULL);
    ck_assert_int_eq(drain(it, a, 100, &nb), 25);
    ck_assert_int_eq(nb, 3);
    pst_dataset_iter_free(it);
    o.drop_remainder = 1;
    it = pst_dataset_iter_new(ds, &o, NULL);
    ck_assert_int_eq(drain(it, a, 100, &nb), 20);
    pst_dataset_iter_free(it);
    pst_dataset_iter_opts p = {.batch = 4, .shuffle_buffer = 8, .seed = 3, .repeat = 3};
    it = pst_dataset_iter_new(ds, &p, NULL);
    ck_assert_int_eq(drain(it, a, 100, &nb), 75);
    pst_dataset_iter_free(it);
    p.prefetch = 3;
    it = pst_dataset_iter_new(ds, &p, NULL);
    ck_assert_int_eq(drain(it, b, 100, &nb), 75);
    pst_dataset_iter_free(it);
    ck_assert(memcmp(a, b, 75 * sizeof a[0]) == 0);
    pst_dataset *tr, *va;
    ck_assert_int_eq(pst_dataset_split(ds, 20, &tr, &va, NULL), 0);
    ck_assert_int_eq(pst_dataset_size(tr), 20);
    ck_assert_int_eq(pst_dataset_size(va), 5);
    ck_assert_int_eq(pst_dataset_index(va, 0), 20);
    pst_dataset_free(tr);
    pst_dataset_free(va);
    pst_dataset_free(ds);
}
END_TEST

static void double_it(void *ctx, const float *in, float *out) {
    (void)ctx;
    out[0] = in[0] * 2;
}

START_TEST(test_map) {
    pst_dataset *ds = counting(5);
    pst_dataset *m = pst_dataset_map(ds, double_it, NULL, pst_shape_1d(1), NULL);
    ck_assert_ptr_nonnull(m);
    pst_dataset_iter_opts o = {.batch = 5};
    pst_dataset_iter *it = pst_dataset_iter_new(m, &o, NULL);
    pst_tensor *x, *y;
    ck_assert_int_eq(pst_dataset_next(it, &x, &y, NULL), 1);
    for (int i = 0; i < 5; i++) ck_assert_float_eq(pst_tensor_f32(x)[i], 2.0f * (float)i);
    pst_tensor_unref(x);
    pst_tensor_unref(y);
    pst_dataset_iter_free(it);
    pst_dataset_free(m);
    pst_dataset_free(ds);
}
END_TEST

int main(void) {
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_idx_round_trip_plain_and_gzip);
    tcase_add_test(tc, test_idx_errors_name_the_file);
    tcase_add_test(tc, test_hostile_idx_header_fails_fast);
    tcase_add_test(tc, test_idx_length_must_match_the_header);
    tcase_add_test(tc, test_fashion_mnist_test_set);
    tcase_add_test(tc, test_shuffle_reproducible_and_epoch_permutation);
    tcase_add_test(tc, test_shards_cover_every_example_once);
    tcase_add_test(tc, test_split_for_worker_holds_out_validation_then_shards);
    tcase_add_test(tc, test_batches_remainder_prefetch_split);
    tcase_add_test(tc, test_map);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
