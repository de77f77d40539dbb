/* A TensorFlow user's CTC model trained by pstrain without the code that built it:
 * tests/data/tf_graphs/25_manucarbonell_ctc_tensorflow_example (TF 1.1: a convolution, a
 * dynamic_rnn LSTM in a while loop whose gradients hand activations over through TF 0.x's
 * Stack ops, CTCLoss, CTCGreedyDecoder and EditDistance, Momentum). Fed a fixed batch of two
 * "images" and their label sequences, its CTC loss falls, its label error rate is computed from
 * the greedy decoding, and `pstrain meta check` passes on it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imported.h"
#include "op.h"
#include "ops.h"
#include "testutil.h"

static const char *meta_file(void) {
    static char buf[4096];
    const char *src = getenv("PST_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/tests/data/tf_graphs/25_manucarbonell_ctc_tensorflow_example/"
             "model.ckpt.meta", src ? src : ".");
    return buf;
}

static pst_output out_named(pst_imported *m, const char *name) {
    pst_output o = pst_graph_output_by_name(pst_imported_graph(m), name);
    ck_assert_msg(o.node != NULL, "no tensor %s", name);
    return o;
}

START_TEST(test_ctc_graph_trains) {
    pst_status st = {0};
    pst_imported *m = pst_imported_load(meta_file(), &st);
    ck_assert_msg(m != NULL, "%s", st.msg);
    ck_assert_msg(pst_imported_init(m, &st) == 0, "%s", st.msg);
    pst_node *train = pst_imported_train_op(m, NULL, &st);
    ck_assert_msg(train != NULL && strcmp(train->name, "Momentum") == 0, "%s", st.msg);
    pst_output loss = pst_imported_loss(m, train);
    ck_assert_msg(loss.node && strcmp(loss.node->name, "Mean") == 0, "loss not found");

    /* Placeholder: images [2, 32, W, 1]; Placeholder_3/_2/_1: the labels' SparseTensor indices,
     * values and dense shape; Placeholder_4: sequence lengths (time steps of the logits, the
     * width here). */
    const int64_t W = 12;
    pst_tensor *img = pst_test_rand(PST_FLOAT, pst_shape_4d(2, 32, W, 1), 5, 0, 1);
    int64_t iv[10] = {0, 0, 0, 1, 0, 2, 1, 0, 1, 1};
    int32_t lv[5] = {1, 2, 3, 4, 5}, sl[2] = {(int32_t)W, (int32_t)W};
    pst_tensor *idx = pst_tensor_new(PST_INT64, pst_shape_2d(5, 2), NULL);
    memcpy(idx->data, iv, sizeof iv);
    pst_tensor *val = pst_tensor_from_i32(pst_shape_1d(5), lv), *len = pst_tensor_from_i32(pst_shape_1d(2), sl);
    pst_feed f[4] = {{out_named(m, "Placeholder:0"), img}, {out_named(m, "Placeholder_3:0"), idx},
                     {out_named(m, "Placeholder_2:0"), val}, {out_named(m, "Placeholder_4:0"), len}};
    double first = 0, last = 0;
    for (int s = 0; s < 40; s++) {
        pst_tensor *o[1];
        ck_assert_msg(pst_session_run(pst_imported_session(m), f, 4, &loss, 1, &train, 1, o, &st) == 0,
                      "step %d: %s", s, st.msg);
        last = pst_tensor_get_f64(o[0], 0);
        if (s == 0) first = last;
        pst_tensor_unref(o[0]);
    }
    printf("CTC loss over 40 steps: %g -> %g\n", first, last);
    ck_assert_msg(last < 0.5 * first, "CTC loss did not fall: %g -> %g", first, last);

    /* The graph's label error rate: EditDistance of the greedy decoding against the labels. */
    pst_graph *g = pst_imported_graph(m);
    pst_node *ed = NULL;
    for (int i = 0; i < pst_graph_num_nodes(g) && !ed; i++)
        if (strcmp(pst_graph_node(g, i)->op->name, "EditDistance") == 0) ed = pst_graph_node(g, i);
    ck_assert_ptr_nonnull(ed);
    pst_output d = pst_out(ed, 0);
    pst_tensor *o[1], *dense = pst_tensor_new(PST_INT64, pst_shape_1d(2), NULL);
    pst_tensor_i64(dense)[0] = 2;
    pst_tensor_i64(dense)[1] = 3;
    pst_feed f5[5] = {f[0], f[1], f[2], f[3], {out_named(m, "Placeholder_1:0"), dense}};
    ck_assert_msg(pst_session_run(pst_imported_session(m), f5, 5, &d, 1, NULL, 0, o, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(o[0]->n, 2);
    for (int b = 0; b < 2; b++) {
        float e = pst_tensor_f32(o[0])[b];
        printf("label error rate of entry %d: %g\n", b, e);
        ck_assert_msg(e >= 0 && e <= 4, "edit distance %g", e); /* normalized, at most W/len */
    }
    pst_tensor_unref(o[0]);
    pst_tensor_unref(dense);
    pst_tensor_unref(img);
    pst_tensor_unref(idx);
    pst_tensor_unref(val);
    pst_tensor_unref(len);
    pst_imported_free(m);
}
END_TEST

/* The compatibility check with synthetic feeds (tf.sparse_placeholder's parts made consistent)
 * imports and trains it. */
START_TEST(test_ctc_graph_meta_check) {
    char cmd[8192], out[8192];
    const char *bin = getenv("PST_BINARY_DIR");
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain meta check %s --steps 2 2>&1", bin ? bin : ".",
             meta_file());
    int rc = pst_test_run_command(cmd, out, sizeof out);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_msg(strstr(out, "missing ops: none") && strstr(out, "train_step: ok (train op 'Momentum'"),
                  "%s", out);
}
END_TEST

int main(void) {
    pst_ops_init();
    Suite *s = suite_create("tf_graph_ctc");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_ctc_graph_trains);
    tcase_add_test(tc, test_ctc_graph_meta_check);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
