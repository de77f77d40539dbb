/* A real TensorFlow user's graph, trained by pstrain without the code that built it:
 * tests/data/tf_graphs/07_DaviesX_mnist (TF 1.5, an MLP for 28x28 digits with its checkpoint)
 * is imported, its TF checkpoint restored through its own save/restore_all, and it trains on
 * Fashion-MNIST (the same 784-pixel, 10-class format as the MNIST it was built for, and the
 * data set this machine has) until the loss falls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "fashion_mnist.h"
#include "imported.h"
#include "op.h"
#include "testutil.h"

static const char *corpus_file(const char *dir, const char *name) {
    static char buf[4096];
    const char *src = getenv("PST_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/tests/data/tf_graphs/%s/%s", src ? src : ".", dir, name);
    return buf;
}
static const char *graph_file(const char *name) { return corpus_file("07_DaviesX_mnist", name); }

START_TEST(test_tf_mlp_restores_and_trains) {
    pst_status st = {0};
    pst_tensor *images, *labels;
    ck_assert_msg(pst_fashion_mnist_load(NULL, "train", &images, &labels, &st) == 0, "%s", st.msg);
    pst_imported *m = pst_imported_load(graph_file("model.ckpt.meta"), &st);
    ck_assert_msg(m != NULL, "%s", st.msg);
    ck_assert_msg(pst_imported_init(m, &st) == 0, "%s", st.msg);
    int checked = 0;
    ck_assert_msg(pst_imported_restore(m, graph_file("model.ckpt"), &checked, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(checked, 7); /* every variable equals the TF checkpoint's tensor */
    pst_node *train = pst_imported_train_op(m, NULL, &st);
    ck_assert_msg(train != NULL, "%s", st.msg);
    ck_assert_str_eq(train->name, "GradientDescent");
    pst_output loss = pst_imported_loss(m, train);
    ck_assert_ptr_nonnull(loss.node);
    pst_graph *g = pst_imported_graph(m);
    pst_output x = pst_graph_output_by_name(g, "input/x"), y = pst_graph_output_by_name(g, "output/output");
    ck_assert_ptr_nonnull(x.node);
    ck_assert_ptr_nonnull(y.node);
    enum { B = 100, STEPS = 3000, WIN = 100 };
    pst_tensor *xb = pst_tensor_new(PST_FLOAT, pst_shape_2d(B, 784), &st);
    pst_tensor *yb = pst_tensor_new(PST_INT64, pst_shape_1d(B), &st);
    double first = 0, last = 0;
    for (int s = 0; s < STEPS; s++) {
        int64_t at = ((int64_t)s * B) % (labels->n - B);
        memcpy(xb->data, pst_tensor_f32(images) + at * 784, (size_t)B * 784 * sizeof(float));
        memcpy(yb->data, pst_tensor_i64(labels) + at, (size_t)B * sizeof(int64_t));
        pst_feed f[2] = {{x, xb}, {y, yb}};
        pst_tensor *out[1];
        ck_assert_msg(pst_session_run(pst_imported_session(m), f, 2, &loss, 1, &train, 1, out, &st) == 0,
                      "step %d: %s", s, st.msg);
        double l = pst_tensor_get_f64(out[0], 0);
        pst_tensor_unref(out[0]);
        if (s < WIN) first += l / WIN;
        if (s >= STEPS - WIN) last += l / WIN;
    }
    /* The graph's own optimizer: plain SGD at 0.001 from a nearly untrained checkpoint. */
    ck_assert_msg(last < first - 0.05, "loss did not fall: %g -> %g", first, last);
    pst_tensor_unref(xb);
    pst_tensor_unref(yb);
    pst_tensor_unref(images);
    pst_tensor_unref(labels);
    pst_imported_free(m);
}
END_TEST

/* A TF 1.14 LSTM built with tf.nn.dynamic_rnn: a while loop over time steps (frames,
 * TensorArrays) forward and another backward (Stacks of the forward activations), restored
 * from its TF checkpoint and trained with its own Adam on one fixed batch until the loss
 * falls. */
START_TEST(test_tf_lstm_while_loop_trains) {
    const char *dir = "29_Pooja-AI_LSTM_TimeSeries_Analysis";
    pst_status st = {0};
    pst_imported *m = pst_imported_load(corpus_file(dir, "model.ckpt.meta"), &st);
    ck_assert_msg(m != NULL, "%s", st.msg);
    ck_assert(pst_graph_has_control_flow(pst_imported_graph(m)));
    ck_assert_msg(pst_imported_init(m, &st) == 0, "%s", st.msg);
    int checked = 0;
    char prefix[4096];
    snprintf(prefix, sizeof prefix, "%s", corpus_file(dir, "model.ckpt"));
    ck_assert_msg(pst_imported_restore(m, prefix, &checked, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(checked, 14);
    pst_node *train = pst_imported_train_op(m, NULL, &st);
    ck_assert_msg(train != NULL, "%s", st.msg);
    pst_output loss = pst_imported_loss(m, train);
    ck_assert_ptr_nonnull(loss.node);
    pst_output *ph;
    int nph;
    pst_imported_placeholders(m, &train, 1, &ph, &nph);
    ck_assert_int_eq(nph, 2);
    pst_feed f[2];
    for (int i = 0; i < nph; i++) {
        f[i].output = ph[i];
        f[i].value = pst_imported_synthetic_feed(ph[i], 4, (uint64_t)i + 1, &st);
        ck_assert_msg(f[i].value != NULL, "%s", st.msg);
    }
    double first = 0, last = 0;
    for (int s = 0; s < 20; s++) {
        pst_tensor *out[1];
        ck_assert_msg(pst_session_run(pst_imported_session(m), f, nph, &loss, 1, &train, 1, out, &st) == 0,
                      "step %d: %s", s, st.msg);
        last = pst_tensor_get_f64(out[0], 0);
        if (s == 0) first = last;
        pst_tensor_unref(out[0]);
    }
    ck_assert_msg(last < 0.8 * first, "loss did not fall: %g -> %g", first, last);
    for (int i = 0; i < nph; i++) pst_tensor_unref(f[i].value);
    free(ph);
    pst_imported_free(m);
}
END_TEST

/* pstrain train --meta from the command line: Fashion-MNIST converted to TFRecord, the graph's
 * placeholders fed from its features, restored from and saved to TF checkpoints through the
 * graph's own saver (the saved global_step is the restored one plus the steps run). */
START_TEST(test_train_meta_cli) {
    const char *bin = getenv("PST_BINARY_DIR");
    char tmp[] = "/tmp/pst_train_meta_XXXXXX", cmd[16384], meta[4096], ck[4096], out[20000];
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    snprintf(meta, sizeof meta, "%s", graph_file("model.ckpt.meta"));
    snprintf(ck, sizeof ck, "%s", graph_file("model.ckpt"));
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain data convert --from idx --to tfrecord --out %s "
             "--split test --float >/dev/null", bin ? bin : "build", tmp);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain train --meta %s --checkpoint %s --feed "
             "input/x=%s/test.tfrecord:image --feed output/output=%s/test.tfrecord:label "
             "--steps 200 --batch 50 --print-every 100 --save %s/out/model.ckpt 2>&1",
             bin ? bin : "build", meta, ck, tmp, tmp, tmp);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    ck_assert_msg(pclose(p) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "restored"));
    ck_assert_ptr_nonnull(strstr(out, "step 200 loss"));
    pst_status st = {0};
    pst_bundle_reader *r0 = pst_bundle_reader_open(ck, &st);
    ck_assert_msg(r0 != NULL, "%s", st.msg);
    char saved[4200];
    snprintf(saved, sizeof saved, "%s/out/model.ckpt", tmp);
    pst_bundle_reader *r1 = pst_bundle_reader_open(saved, &st);
    ck_assert_msg(r1 != NULL, "%s", st.msg);
    pst_tensor *g0 = pst_bundle_reader_read(r0, "global_step", &st);
    pst_tensor *g1 = pst_bundle_reader_read(r1, "global_step", &st);
    ck_assert_ptr_nonnull(g0);
    ck_assert_ptr_nonnull(g1);
    ck_assert_int_eq(pst_tensor_get_i64(g1, 0), pst_tensor_get_i64(g0, 0) + 200);
    pst_tensor_unref(g0);
    pst_tensor_unref(g1);
    pst_bundle_reader_free(r0);
    pst_bundle_reader_free(r1);
    /* A placeholder left without a feed is named. */
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain train --meta %s --feed "
             "input/x=%s/test.tfrecord:image --steps 1 2>&1", bin ? bin : "build", meta, tmp);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    ck_assert_int_ne(pclose(p), 0);
    ck_assert_ptr_nonnull(strstr(out, "placeholder 'output/output' needs a --feed"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* tests/data/tf_graphs/25_manucarbonell_ctc_tensorflow_example (TF 1.1: a convolution, a
 * dynamic_rnn LSTM in a while loop whose gradients hand activations over through TF 0.x's
 * Stack ops, CTCLoss, CTCGreedyDecoder and EditDistance, Momentum), no checkpoint: fed a fixed
 * batch of two "images" and their label sequences, its CTC loss falls, its label error rate is
 * computed from the greedy decoding, and `pstrain meta check` passes on it. */
static const char *ctc_meta_file(void) {
    return corpus_file("25_manucarbonell_ctc_tensorflow_example", "model.ckpt.meta");
}

static pst_output out_named(pst_imported *m, const char *name) {
    pst_output o = pst_graph_output_by_name(pst_imported_graph(m), name);
    ck_assert_msg(o.node != NULL, "no tensor %s", name);
    return o;
}

START_TEST(test_ctc_graph_trains) {
    pst_status st = {0};
    pst_imported *m = pst_imported_load(ctc_meta_file(), &st);
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
             ctc_meta_file());
    int rc = pst_test_run_command(cmd, out, sizeof out);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_msg(strstr(out, "missing ops: none") && strstr(out, "train_step: ok (train op 'Momentum'"),
                  "%s", out);
}
END_TEST

int main(void) {
    pst_ops_init();
    Suite *s = suite_create("tf_graph");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_tf_mlp_restores_and_trains);
    tcase_add_test(tc, test_tf_lstm_while_loop_trains);
    tcase_add_test(tc, test_train_meta_cli);
    tcase_add_test(tc, test_ctc_graph_trains);
    tcase_add_test(tc, test_ctc_graph_meta_check);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
