/* NumPy .npz export/import of variables and frozen graphs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
