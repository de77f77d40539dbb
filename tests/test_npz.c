/* NumPy .npz export/import of variables and frozen graphs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "metagraph.h"
#include "npz.h"
#include "op.h"
#include "testutil.h"
#include "freeze.h"
#include "file.h"

static char dir[256];
static void mkdir_tmp(void) {
    snprintf(dir, sizeof dir, "/tmp/pst_npz_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static pst_graph *model(float w0, pst_output *x, pst_output *y) {
    pst_graph *g = pst_graph_new();
    *x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_2d(-1, 2));
    pst_output w = pst_variable(g, "layer/weights", pst_const_f32_tensor(g, pst_shape_2d(2, 2), (float[]){w0, 2, 3, 4}, NULL), 1);
    pst_output b = pst_variable(g, "layer/bias", pst_const_i64(g, 7, NULL), 0);
    (void)b;
    *y = pst_matmul(g, *x, pst_variable_value(w), 0, 0, "logits");
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    return g;
}

START_TEST(test_npz_round_trip_variables) {
    mkdir_tmp();
    pst_output x, y;
    pst_graph *g = model(1, &x, &y);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, pst_global_variables_initializer(g), &st);
    char path[512];
    snprintf(path, sizeof path, "%s/vars.npz", dir);
    ck_assert_msg(pst_npz_export_variables(s, g, path, &st) == 0, "%s", st.msg);
    int n;
    char **names;
    pst_tensor **ts;
    ck_assert_int_eq(pst_npz_load(path, &n, &names, &ts, &st), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(names[0], "layer/weights");
    ck_assert_int_eq(ts[0]->shape.rank, 2);
    ck_assert_float_eq(pst_tensor_f32(ts[0])[3], 4.0f);
    ck_assert_int_eq(ts[1]->dtype, PST_INT64);
    ck_assert_int_eq(pst_tensor_i64(ts[1])[0], 7);
    for (int i = 0; i < n; i++) {
        free(names[i]);
        pst_tensor_unref(ts[i]);
    }
    free(names);
    free(ts);
    /* Assign back into a differently initialized copy. */
    pst_graph *g2 = model(100, &x, &y);
    pst_session *s2 = pst_session_new(g2, NULL, &st);
    pst_session_run_target(s2, pst_global_variables_initializer(g2), &st);
    ck_assert_msg(pst_npz_assign_variables(s2, g2, path, &st) == 0, "%s", st.msg);
    pst_tensor *w = pst_session_run1(s2, pst_graph_output_by_name(g2, "layer/weights/read"), &st);
    ck_assert_float_eq(pst_tensor_f32(w)[0], 1.0f);
    pst_tensor_unref(w);
    /* An archive entry without a variable is an error naming it. */
    pst_graph *g3 = pst_graph_new();
    pst_session *s3 = pst_session_new(g3, NULL, &st);
    pst_status_clear(&st);
    ck_assert_int_eq(pst_npz_assign_variables(s3, g3, path, &st), PST_E_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(st.msg, "'layer/weights'"));
    pst_session_free(s3);
    pst_graph_free(g3);
    pst_session_free(s2);
    pst_graph_free(g2);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_npz_readable_by_numpy_layout) {
    /* The archive holds standard .npy headers NumPy reads: check the header bytes. */
    mkdir_tmp();
    char path[512];
    snprintf(path, sizeof path, "%s/t.npz", dir);
    pst_tensor *t = pst_tensor_from_f32(pst_shape_2d(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    const char *names[] = {"t"};
    pst_status st = {0};
    ck_assert_int_eq(pst_npz_save(path, 1, names, &t, &st), 0);
    int n;
    char **nm;
    pst_tensor **ts;
    ck_assert_int_eq(pst_npz_load(path, &n, &nm, &ts, &st), 0);
    ck_assert(memcmp(ts[0]->data, t->data, t->nbytes) == 0);
    ck_assert_int_eq(ts[0]->shape.dims[1], 3);
    free(nm[0]);
    free(nm);
    pst_tensor_unref(ts[0]);
    free(ts);
    /* A damaged archive is reported with the file name. */
    FILE *f = fopen(path, "r+b");
    fseek(f, 40, SEEK_SET);
    fputc(0x55, f);
    fclose(f);
    pst_status_clear(&st);
    ck_assert_int_eq(pst_npz_load(path, &n, &nm, &ts, &st), PST_E_DATA_LOSS);
    ck_assert_ptr_nonnull(strstr(st.msg, path));
    pst_tensor_unref(t);
}
END_TEST


static void put16(uint8_t *p, unsigned v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

/* A one-entry zip archive holding `data` (zlen bytes) under `name`, whose directory claims
 * method, rlen and crc, and a name length of name_len (the real one when 0). */
static size_t crafted_zip(uint8_t *out, const char *name, unsigned method, const uint8_t *data,
                          uint32_t zlen, uint32_t rlen, uint32_t crc, unsigned name_len) {
    size_t fl = strlen(name), n = 0;
    uint8_t *h = out;
    put32(h, 0x04034b50);
    put16(h + 4, 20);
    put16(h + 6, 0);
    put16(h + 8, method);
    put32(h + 10, 0);
    put32(h + 14, crc);
    put32(h + 18, zlen);
    put32(h + 22, rlen);
    put16(h + 26, (unsigned)fl);
    put16(h + 28, 0);
    memcpy(h + 30, name, fl);
    memcpy(h + 30 + fl, data, zlen);
    n = 30 + fl + zlen;
    uint8_t *c = out + n;
    memset(c, 0, 46);
    put32(c, 0x02014b50);
    put16(c + 4, 20);
    put16(c + 6, 20);
    put16(c + 10, method);
    put32(c + 16, crc);
    put32(c + 20, zlen);
    put32(c + 24, rlen);
    put16(c + 28, name_len ? name_len : (unsigned)fl);
    put32(c + 42, 0);
    memcpy(c + 46, name, fl);
    size_t cdlen = 46 + fl;
    uint8_t *e = c + cdlen;
    put32(e, 0x06054b50);
    put16(e + 4, 0);
    put16(e + 6, 0);
    put16(e + 8, 1);
    put16(e + 10, 1);
    put32(e + 12, (uint32_t)cdlen);
    put32(e + 16, (uint32_t)n);
    put16(e + 20, 0);
    return n + cdlen + 22;
}

static int load_npz(void *ctx, pst_status *st) {
    int n;
    char **names;
    pst_tensor **ts;
    int rc = pst_npz_load(ctx, &n, &names, &ts, st);
    for (int i = 0; rc == 0 && i < n; i++) {
        free(names[i]);
        pst_tensor_unref(ts[i]);
    }
    if (rc == 0) {
        free(names);
        free(ts);
    }
    return rc;
}

/* Sizes an archive claims are checked against its bytes before anything that size is
 * allocated (run under a 256 MiB address-space limit): an entry claiming 2 GiB from 16 bytes,
 * stored or deflated; an .npy header promising 80 GB in a few bytes; a directory entry whose
 * name runs past the directory. Errors name the archive and the entry. */
START_TEST(test_npz_claimed_sizes_checked_before_allocating) {
    mkdir_tmp();
    char path[512];
    snprintf(path, sizeof path, "%s/hostile.npz", dir);
    uint8_t zip[4096];
    const uint8_t sixteen[16] = {0};
    struct {
        unsigned method;
        uint32_t rlen;
        const char *error;
    } cases[] = {{8, 0x7fffffff, "claims 2147483647 bytes"}, {0, 0x7fffffff, "claims 2147483647 bytes"}};
    for (int c = 0; c < 2; c++) {
        size_t len = crafted_zip(zip, "w.npy", cases[c].method, sixteen, 16, cases[c].rlen, 0, 0);
        FILE *f = fopen(path, "wb");
        fwrite(zip, 1, len, f);
        fclose(f);
        pst_status st = {0};
        int rc = pst_test_run_with_memory_limit(load_npz, path, (size_t)256 << 20, &st);
        ck_assert_msg(rc == PST_E_DATA_LOSS && strstr(st.msg, path) && strstr(st.msg, "'w.npy'") &&
                      strstr(st.msg, cases[c].error), "method %u: %d %s", cases[c].method, rc, st.msg);
    }
    /* A stored .npy whose header promises a (100000, 100000) float64 array. */
    char npy[128];
    memset(npy, ' ', sizeof npy);
    memcpy(npy, "\x93NUMPY\x01\x00", 8);
    const char *hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000), }";
    npy[8] = 118;
    npy[9] = 0;
    memcpy(npy + 10, hdr, strlen(hdr));
    npy[127] = '\n';
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)npy, 128);
    size_t len = crafted_zip(zip, "big.npy", 0, (const uint8_t *)npy, 128, 128, crc, 0);
    FILE *f = fopen(path, "wb");
    fwrite(zip, 1, len, f);
    fclose(f);
    pst_status st = {0};
    int rc = pst_test_run_with_memory_limit(load_npz, path, (size_t)256 << 20, &st);
    ck_assert_msg(rc == PST_E_DATA_LOSS && strstr(st.msg, path) && strstr(st.msg, "big.npy") &&
                  strstr(st.msg, "0 data bytes for a shape needing 80000000000"), "%d %s", rc, st.msg);
    /* A directory entry whose name is longer than the directory. */
    len = crafted_zip(zip, "w.npy", 0, sixteen, 16, 16, 0, 60000);
    f = fopen(path, "wb");
    fwrite(zip, 1, len, f);
    fclose(f);
    pst_status_clear(&st);
    rc = load_npz(path, &st);
    ck_assert_msg(rc == PST_E_DATA_LOSS && strstr(st.msg, path) &&
                  strstr(st.msg, "bad central directory entry 0"), "%d %s", rc, st.msg);
}
END_TEST

START_TEST(test_freeze_and_run_frozen_graph) {
    mkdir_tmp();
    pst_output x, y;
    pst_graph *g = model(1, &x, &y);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, pst_global_variables_initializer(g), &st);
    char path[512];
    snprintf(path, sizeof path, "%s/frozen.pb", dir);
    const char *outs[] = {"logits"};
    ck_assert_msg(pst_freeze_graph(s, g, 1, outs, path, &st) == 0, "%s", st.msg);
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(pst_file_read(path, (size_t)1 << 30, &buf, &len, &st), 0);
    pst_graph *fg = pst_graph_new();
    ck_assert_msg(pst_graph_def_import(fg, buf, len, NULL, &st) == 0, "%s", st.msg);
    free(buf);
    ck_assert_str_eq(pst_graph_find(fg, "layer/weights")->op->name, "Const");
    ck_assert_ptr_null(pst_graph_find(fg, "layer/bias"));       /* pruned */
    ck_assert_ptr_null(pst_graph_find(fg, "layer/weights/Assign"));
    pst_session *fs = pst_session_new(fg, NULL, &st); /* no initialization needed */
    pst_tensor *in = pst_tensor_from_f32(pst_shape_2d(1, 2), (float[]){1, 1});
    pst_feed f = {pst_graph_output_by_name(fg, "x"), in};
    pst_tensor *out = pst_test_run(fs, pst_graph_output_by_name(fg, "logits"), 1, &f);
    ck_assert_float_eq(pst_tensor_f32(out)[0], 4.0f);
    ck_assert_float_eq(pst_tensor_f32(out)[1], 6.0f);
    pst_tensor_unref(out);
    pst_tensor_unref(in);
    const char *bad[] = {"nope"};
    ck_assert_int_eq(pst_freeze_graph(s, g, 1, bad, path, &st), PST_E_NOT_FOUND);
    pst_session_free(fs);
    pst_graph_free(fg);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("npz");
    TCase *tc = tcase_create("npz");
    tcase_add_test(tc, test_npz_round_trip_variables);
    tcase_add_test(tc, test_npz_readable_by_numpy_layout);
    tcase_add_test(tc, test_freeze_and_run_frozen_graph);
    tcase_add_test(tc, test_npz_claimed_sizes_checked_before_allocating);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
