/* End-to-end training: linear regression from graph ops, and the trainer's accuracy bars on
 * Fashion-MNIST (softmax regression >= 0.83, MLP >= 0.86). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "optimizer.h"
#include "testutil.h"

START_TEST(test_linear_regression_converges) {
    /* y = 3x + 2 + noise; plain gradient descent built from graph ops. */
    pst_graph *g = pst_graph_new();
    pst_tensor *xv = pst_test_rand(PST_FLOAT, pst_shape_1d(100), 11, -1, 1);
    pst_tensor *noise = pst_test_rand(PST_FLOAT, pst_shape_1d(100), 12, -0.05, 0.05);
    pst_tensor *yv = pst_tensor_new(PST_FLOAT, pst_shape_1d(100), NULL);
    for (int i = 0; i < 100; i++)
        pst_tensor_f32(yv)[i] = 3 * pst_tensor_f32(xv)[i] + 2 + pst_tensor_f32(noise)[i];
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_1d(-1));
    pst_output y = pst_placeholder(g, "y", PST_FLOAT, pst_shape_1d(-1));
    pst_output w = pst_variable(g, "w", pst_const_f32(g, 0, NULL), 1);
    pst_output b = pst_variable(g, "b", pst_const_f32(g, 0, NULL), 1);
    pst_output pred = pst_add(g, pst_mul(g, pst_variable_value(w), x, NULL), pst_variable_value(b), NULL);
    pst_output loss = pst_reduce_mean(g, pst_square(g, pst_sub(g, pred, y, NULL), NULL), 0, NULL, 0, "loss");
    pst_output vars[2] = {w, b}, grads[2];
    pst_status st = {0};
    ck_assert_int_eq(pst_gradients(g, 1, &loss, NULL, 2, vars, grads, NULL, &st), 0);
    pst_output lr = pst_const_f32(g, 0.1f, "lr");
    pst_node *upd[2];
    for (int i = 0; i < 2; i++)
        upd[i] = pst_assign_sub(g, vars[i], pst_mul(g, lr, grads[i], NULL), NULL).node;
    pst_node *train = pst_group(g, 2, upd, "train");
    pst_node *init = pst_global_variables_initializer(g);
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(s, init, &st), 0);
    pst_feed f[2] = {{x, xv}, {y, yv}};
    for (int step = 0; step < 300; step++)
        ck_assert_int_eq(pst_session_run(s, f, 2, NULL, 0, &train, 1, NULL, &st), 0);
    pst_tensor *wv = pst_session_run1(s, pst_variable_value(w), &st);
    pst_tensor *bv = pst_session_run1(s, pst_variable_value(b), &st);
    ck_assert_double_eq_tol(pst_tensor_f32(wv)[0], 3.0, 0.05);
    ck_assert_double_eq_tol(pst_tensor_f32(bv)[0], 2.0, 0.05);
    pst_tensor_unref(wv);
    pst_tensor_unref(bv);
    pst_tensor_unref(xv);
    pst_tensor_unref(yv);
    pst_tensor_unref(noise);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* Runs pstrain-worker and returns its test accuracy (-1 when it failed). */
static double run_worker(const char *args) {
    const char *bin = getenv("PST_BINARY_DIR");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/worker/pstrain-worker --quiet %s 2>&1", bin ? bin : "build", args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char line[1024];
    double acc = -1;
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        if (strncmp(line, "test_accuracy=", 14) == 0) acc = atof(line + 14);
    }
    ck_assert_int_eq(pclose(p), 0);
    return acc;
}

START_TEST(test_softmax_regression_accuracy) {
    double acc = run_worker("--model softmax --steps 3000 --batch 100 --optimizer adam --lr 0.001 --seed 1");
    ck_assert_msg(acc >= 0.83, "softmax regression reached %.4f, needs 0.83", acc);
}
END_TEST

START_TEST(test_mlp_accuracy) {
    double acc = run_worker("--model mlp --steps 3000 --batch 100 --optimizer adam --lr 0.001 --seed 1");
    ck_assert_msg(acc >= 0.86, "MLP reached %.4f, needs 0.86", acc);
}
END_TEST

START_TEST(test_worker_rejects_bad_flags) {
    const char *bin = getenv("PST_BINARY_DIR");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/worker/pstrain-worker --model resnet 2>&1", bin ? bin : "build");
    FILE *p = popen(cmd, "r");
    char line[512] = "";
    ck_assert_ptr_nonnull(fgets(line, sizeof line, p));
    ck_assert_int_ne(pclose(p), 0);
    ck_assert_ptr_nonnull(strstr(line, "unknown model 'resnet'"));
    snprintf(cmd, sizeof cmd, "%s/worker/pstrain-worker --data-dir /nonexistent --steps 1 2>&1",
             bin ? bin : "build");
    p = popen(cmd, "r");
    char all[8192] = "";
    size_t n = fread(all, 1, sizeof all - 1, p);
    all[n] = '\0';
    ck_assert_int_ne(pclose(p), 0);
    ck_assert_ptr_nonnull(strstr(all, "/nonexistent/train-images-idx3-ubyte.gz"));
    ck_assert_ptr_nonnull(strstr(all, "dataset-fashion-mnist"));
    snprintf(cmd, sizeof cmd, "%s/worker/pstrain-worker --inter-op-threads 0 2>&1",
             bin ? bin : "build");
    p = popen(cmd, "r");
    n = fread(all, 1, sizeof all - 1, p);
    all[n] = '\0';
    ck_assert_int_ne(pclose(p), 0);
    ck_assert_msg(strstr(all, "--inter-op-threads") != NULL, "%s", all);
    /* --help prints the whole usage, to its last line (the MPI tests look for --transport in
     * it: a usage cut short by the buffer made them skip as if built without MPI) */
    snprintf(cmd, sizeof cmd, "%s/worker/pstrain-worker --help", bin ? bin : "build");
    p = popen(cmd, "r");
    n = fread(all, 1, sizeof all - 1, p);
    all[n] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_msg(strstr(all, "[--transport grpc|mpi]") != NULL, "%s", all);
    ck_assert_msg(strstr(all, "prints test_accuracy=0.XXXX at the end.\n") != NULL, "%s", all);
}
END_TEST

/* --data-format tfrecord trains on the TFRecord files of tf.train.Example that pstrain data
 * convert writes (raw bytes gzip'd, floats uncompressed) exactly as on the IDX files they came
 * from: the same examples in the same order give the same test accuracy to the last digit. */
START_TEST(test_worker_reads_tfrecord_input) {
    const char *bin = getenv("PST_BINARY_DIR");
    bin = bin ? bin : "build";
    char dir[] = "/tmp/pst_tfrecord_inputXXXXXX", cmd[2048], out[8192];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain data convert --from idx --to tfrecord --out "
             "%s/bytes --compression gzip", bin, dir);
    ck_assert_msg(pst_test_run_command(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain data convert --from idx --to tfrecord --out "
             "%s/floats --float", bin, dir);
    ck_assert_msg(pst_test_run_command(cmd, out, sizeof out) == 0, "%s", out);
    const char *common = "--model softmax --steps 200 --batch 50 --threads 1 --seed 3";
    snprintf(cmd, sizeof cmd, "%s", common);
    double idx = run_worker(cmd);
    snprintf(cmd, sizeof cmd, "%s --data-format tfrecord --data-dir %s/bytes", common, dir);
    double rec_bytes = run_worker(cmd);
    snprintf(cmd, sizeof cmd, "%s --data-format tfrecord --data-dir %s/floats", common, dir);
    double rec_floats = run_worker(cmd);
    ck_assert_msg(idx > 0.5 && idx == rec_bytes && idx == rec_floats,
                  "idx %.4f, tfrecord bytes %.4f, floats %.4f", idx, rec_bytes, rec_floats);
    /* A directory without the files: the error names the file and the command that makes it;
     * a damaged record names the file and the record. */
    snprintf(cmd, sizeof cmd, "%s/worker/pstrain-worker --data-format tfrecord --data-dir %s "
             "--steps 1", bin, dir);
    ck_assert_int_ne(pst_test_run_command(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "train.tfrecord") && strstr(out, "pstrain data convert"), "%s", out);
    char path[600];
    snprintf(path, sizeof path, "%s/floats/test.tfrecord", dir);
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 5000, SEEK_SET);
    fputc(0x5a ^ 0xff, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/worker/pstrain-worker --data-format tfrecord --data-dir "
             "%s/floats --steps 1", bin, dir);
    ck_assert_int_ne(pst_test_run_command(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, path) && strstr(out, "record"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s/worker/pstrain-worker --data-format csv", bin);
    ck_assert_int_ne(pst_test_run_command(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "--data-format: 'csv'"), "%s", out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Integer flags are range-checked, never cut to 32 bits: --task 4294967296 once made a second
 * chief and --batch 4294967297 trained at batch 1. */
START_TEST(test_worker_rejects_out_of_range_integers) {
    const char *bin = getenv("PST_BINARY_DIR");
    const char *cases[][2] = {{"--task 4294967296", "--task: '4294967296'"},
                              {"--batch 4294967297", "--batch: '4294967297'"},
                              {"--threads 99999999999", "--threads"},
                              {"--steps 99999999999999999999", "--steps"},
                              {"--recv-timeout-ms 9223372036854775807", "--recv-timeout-ms"},
                              {"--max-to-keep -1", "--max-to-keep"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[1024], all[4096] = "";
        snprintf(cmd, sizeof cmd, "%s/worker/pstrain-worker %s --steps 0 2>&1",
                 bin ? bin : "build", cases[i][0]);
        FILE *p = popen(cmd, "r");
        size_t n = fread(all, 1, sizeof all - 1, p);
        all[n] = '\0';
        int rc = pclose(p);
        ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "%s: exit %d: %s", cases[i][0], rc,
                      all);
        ck_assert_msg(strstr(all, cases[i][1]) != NULL && strstr(all, "is not an integer in"),
                      "%s: %s", cases[i][0], all);
    }
}
END_TEST

/* --lr-decay: the learning rate is a function of the global step. Polynomial decay to 0 over 1
 * step trains only the first step, so 30 steps end where 1 step does; without the decay they
 * do not. Bad schedule flags are errors naming the flag. */
START_TEST(test_worker_lr_decay) {
    const char *common = "--model softmax --batch 50 --threads 1 --seed 3 --validation 0";
    char args[512];
    snprintf(args, sizeof args, "%s --steps 1", common);
    double one = run_worker(args);
    snprintf(args, sizeof args, "%s --steps 30 --lr-decay polynomial --lr-decay-steps 1", common);
    double decayed = run_worker(args);
    snprintf(args, sizeof args, "%s --steps 30", common);
    double plain = run_worker(args);
    ck_assert_msg(one > 0 && decayed == one, "30 steps decayed to lr 0 after 1: %.4f, 1 step: %.4f",
                  decayed, one);
    ck_assert_msg(plain != one, "30 plain steps ended where 1 step did (%.4f)", plain);
    snprintf(args, sizeof args, "%s --steps 30 --lr-decay cosine --lr 0.01", common);
    ck_assert_double_gt(run_worker(args), 0.5);
    const char *bin = getenv("PST_BINARY_DIR");
    const char *cases[][2] = {{"--lr-decay linear", "--lr-decay: 'linear' is not none"},
                              {"--lr-decay cosine --lr-end 0.5", "--lr-end: 0.5 is above"},
                              {"--lr-decay-rate 0", "--lr-decay-rate"},
                              {"--lr-decay-steps 0", "--lr-decay-steps"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[1024], all[4096] = "";
        snprintf(cmd, sizeof cmd, "%s/worker/pstrain-worker %s --steps 1 2>&1", bin ? bin : "build",
                 cases[i][0]);
        FILE *p = popen(cmd, "r");
        size_t n = fread(all, 1, sizeof all - 1, p);
        all[n] = '\0';
        int rc = pclose(p);
        ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "%s: exit %d: %s", cases[i][0], rc, all);
        ck_assert_msg(strstr(all, cases[i][1]) != NULL, "%s: %s", cases[i][0], all);
    }
}
END_TEST

START_TEST(test_worker_checkpoints_and_resumes) {
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/pst_resume_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *bin = getenv("PST_BINARY_DIR");
    char cmd[2048], out[8192];
    for (int run = 0; run < 2; run++) {
        snprintf(cmd, sizeof cmd, "%s/worker/pstrain-worker --model softmax --steps %d --checkpoint-dir %s "
                 "--save-every-steps 100 --max-to-keep 2 --validation 0 2>&1",
                 bin ? bin : "build", run == 0 ? 200 : 300, dir);
        FILE *p = popen(cmd, "r");
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = '\0';
        ck_assert_int_eq(pclose(p), 0);
        if (run == 1) {
            ck_assert_msg(strstr(out, "model.ckpt-200 (global step 200)") != NULL, "%s", out);
            ck_assert_msg(strstr(out, "trained 100 steps") != NULL, "%s", out);
        }
    }
    char state[512];
    snprintf(state, sizeof state, "%s/checkpoint", dir);
    FILE *f = fopen(state, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    ck_assert_ptr_nonnull(strstr(out, "model_checkpoint_path: \"model.ckpt-300\""));
    ck_assert_ptr_null(strstr(out, "model.ckpt-100")); /* max_to_keep 2 */
}
END_TEST

int main(void) {
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_linear_regression_converges);
    tcase_add_test(tc, test_softmax_regression_accuracy);
    tcase_add_test(tc, test_mlp_accuracy);
    tcase_add_test(tc, test_worker_rejects_bad_flags);
    tcase_add_test(tc, test_worker_rejects_out_of_range_integers);
    tcase_add_test(tc, test_worker_lr_decay);
    tcase_add_test(tc, test_worker_checkpoints_and_resumes);
    tcase_add_test(tc, test_worker_reads_tfrecord_input);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
