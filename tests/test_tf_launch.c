/* pstrain launch on a TensorFlow user's graph: the 07_DaviesX_mnist MLP's .meta (tests/data/
 * tf_graphs) trained by 2 PS + 2 workers, its placeholders fed from a TFRecord file that
 * `pstrain data convert` wrote, started from the user's TF checkpoint; bad feeds are errors
 * naming the placeholder. Real processes; this test never initializes gRPC itself. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "launchutil.h"
#include "testutil.h"

static char graph[1024], tf_ckpt[1024];

/* The test split of Fashion-MNIST as TFRecord (10,000 Examples: image float [784], label). */
static void convert_data(void) {
    const char *src = getenv("PST_SOURCE_DIR");
    snprintf(graph, sizeof graph, "%s/tests/data/tf_graphs/07_DaviesX_mnist/model.ckpt.meta",
             src ? src : ".");
    snprintf(tf_ckpt, sizeof tf_ckpt, "%s/tests/data/tf_graphs/07_DaviesX_mnist/model.ckpt",
             src ? src : ".");
    char cmd[2048], out[4096];
    snprintf(cmd, sizeof cmd, "%s data convert --from idx --to tfrecord --out %s/data --split test "
             "--float 2>&1", pst_lu_pstrain, pst_lu_dir);
    int rc = pst_lu_run(cmd, out, sizeof out);
    ck_assert_msg(rc == 0, "data convert: %s", out);
}

/* A job file for the graph; extra: more keys (", \"k\": v"). */
static const char *job(const char *name, const char *feeds, long steps, const char *extra) {
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"name\": \"%s\", \"cluster\": {\"ps\": 2, \"worker\": 2}, \"run_dir\": \"%s/runs\","
             " \"meta\": \"%s\", \"feeds\": [%s], \"batch\": 50, \"steps\": %ld,"
             " \"threads\": 1, \"heartbeat_ms\": 200, \"restarts\": {\"max\": 0}%s}",
             name, pst_lu_dir, graph, feeds, steps, extra);
    return pst_lu_write_job(name, buf);
}

static const char *good_feeds(void) {
    static char f[1024];
    snprintf(f, sizeof f, "\"input/x=%s/data/test.tfrecord:image\", "
             "\"output/output=%s/data/test.tfrecord:label\"", pst_lu_dir, pst_lu_dir);
    return f;
}

/* Both workers' logs (the first to fail ends the job, so the other may have said nothing). */
static char *workers_logs(const char *run) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cat %s/logs/worker0.log %s/logs/worker1.log 2>/dev/null", run, run);
    char *out = malloc(1 << 16);
    ck_assert_ptr_nonnull(out);
    pst_lu_run(cmd, out, 1 << 16);
    return out;
}

/* The user's checkpoint goes onto the PS as it is (its global step 10000 included): with no
 * step left to train, the job's checkpoint equals it tensor for tensor. Then 300 more global
 * steps move the weights, and the job ends at global step 10300 with a finite loss. */
START_TEST(test_launch_trains_imported_graph_from_tf_checkpoint) {
    pst_lu_setup();
    convert_data();
    char extra[1200], run[512], cmd[4096], out[4096];
    snprintf(extra, sizeof extra, ", \"init_checkpoint\": \"%s\"", tf_ckpt);
    ck_assert_int_eq(pst_lu_launch(job("start", good_feeds(), 10000, extra), run, sizeof run), 0);
    char *w0 = pst_lu_worker_log(run, 0);
    ck_assert_msg(strstr(w0, "started from") && strstr(w0, "(6 variables and global step 10000)"),
                  "%s", w0);
    free(w0);
    snprintf(cmd, sizeof cmd, "%s ckpt diff %s %s/checkpoints/model.ckpt-10000 --tolerance 0 2>&1",
             pst_lu_pstrain, tf_ckpt, run);
    int rc = pst_lu_run(cmd, out, sizeof out);
    ck_assert_msg(rc == 0 && strstr(out, "7 tensors agree"), "%s", out);
    /* Training on from it (the job's own checkpoint directory now: a resume). */
    char ck[1100];
    snprintf(ck, sizeof ck, ", \"checkpoint_dir\": \"%s/checkpoints\", \"save_every_steps\": 100",
             run);
    char run2[512];
    char log[256];
    snprintf(log, sizeof log, "%s/launch2.log", pst_lu_dir);
    pid_t p = pst_lu_start_pstrain(log, "launch", job("more", good_feeds(), 10300, ck), NULL, NULL,
                                   NULL);
    rc = pst_lu_wait_exit(p, 400);
    char *lo = pst_lu_slurp(log);
    ck_assert_msg(rc == 0, "launch exited %d:\n%s", rc, lo);
    free(lo);
    snprintf(cmd, sizeof cmd, "ls -d %s/runs/more-* | head -1", pst_lu_dir);
    ck_assert_int_eq(pst_lu_run(cmd, run2, sizeof run2), 0);
    run2[strcspn(run2, "\n")] = '\0';
    cJSON *st = pst_lu_state_of(run2);
    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(pst_lu_str(st, "status"), "done");
    ck_assert_double_ge(pst_lu_num(st, "global_step"), 10300);
    cJSON_Delete(st);
    for (int k = 0; k < 2; k++) {
        char *w = pst_lu_worker_log(run2, k);
        /* the chief resumes from the job's checkpoint; the other worker joins at once or
         * a few steps later */
        const char *at = strstr(w, k == 0 ? "resuming at global step "
                                          : "starting at global step ");
        long from = at ? atol(at + 24) : -1;
        ck_assert_msg(k == 0 ? from == 10000 : from >= 10000, "%s", w);
        const char *fl = strstr(w, "final_loss=");
        ck_assert_msg(fl != NULL, "%s", w);
        /* a worker that joined after the last step says so instead of a loss (loaded machine) */
        if (k == 0 || strncmp(fl + 11, "none: this worker made no steps", 31) != 0) {
            double l = atof(fl + 11);
            ck_assert_msg(l > 0 && l < 10, "final loss %g", l);
        }
        free(w);
    }
    /* The weights moved away from the user's checkpoint. */
    snprintf(cmd, sizeof cmd, "%s ckpt diff %s $(ls %s/checkpoints/model.ckpt-103*.index | tail -1 "
             "| sed 's/.index$//') 2>&1", pst_lu_pstrain, tf_ckpt, run);
    rc = pst_lu_run(cmd, out, sizeof out);
    ck_assert_msg(rc != 0 && strstr(out, "h1/w"), "training changed nothing: %s", out);
    pst_lu_teardown();
}
END_TEST

/* A feed naming no placeholder, and a placeholder left unfed, stop the job with an error
 * naming it; nothing trains. */
START_TEST(test_bad_feeds_are_named) {
    pst_lu_setup();
    convert_data();
    char feeds[1024], run[512];
    snprintf(feeds, sizeof feeds, "\"input/nope=%s/data/test.tfrecord:image\"", pst_lu_dir);
    ck_assert_int_ne(pst_lu_launch(job("nope", feeds, 100, ""), run, sizeof run), 0);
    char *w = workers_logs(run);
    ck_assert_msg(strstr(w, "no placeholder 'input/nope'") != NULL, "%s", w);
    free(w);
    pst_lu_teardown();
    pst_lu_setup();
    convert_data();
    snprintf(feeds, sizeof feeds, "\"input/x=%s/data/test.tfrecord:image\"", pst_lu_dir);
    ck_assert_int_ne(pst_lu_launch(job("unfed", feeds, 100, ""), run, sizeof run), 0);
    w = workers_logs(run);
    ck_assert_msg(strstr(w, "placeholder 'output/output' needs a --feed") != NULL, "%s", w);
    free(w);
    /* A TF checkpoint that is not there is named; nothing trains. */
    pst_lu_teardown();
    pst_lu_setup();
    convert_data();
    char extra[1200];
    snprintf(extra, sizeof extra, ", \"init_checkpoint\": \"%s/nowhere/model.ckpt\"", pst_lu_dir);
    ck_assert_int_ne(pst_lu_launch(job("noinit", good_feeds(), 100, extra), run, sizeof run), 0);
    w = workers_logs(run);
    ck_assert_msg(strstr(w, "--init-checkpoint") && strstr(w, "nowhere/model.ckpt"), "%s", w);
    ck_assert_ptr_null(strstr(w, "final_loss="));
    free(w);
    /* "records" is for a graph reading its own input: this one has placeholders. */
    pst_lu_teardown();
    pst_lu_setup();
    convert_data();
    snprintf(extra, sizeof extra, ", \"records\": \"%s/data/test.tfrecord\"", pst_lu_dir);
    ck_assert_int_ne(pst_lu_launch(job("records", good_feeds(), 100, extra), run, sizeof run), 0);
    w = workers_logs(run);
    ck_assert_msg(strstr(w, "--records") && strstr(w, "reads no input of its own"), "%s", w);
    free(w);
    /* The dry run places the graph as the workers do, without reading the feeds. */
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd, "%s inspect placement --job %s --dry-run 2>&1", pst_lu_pstrain,
             job("dry", "\"input/x=/nonexistent.tfrecord:image\"", 100, ""));
    ck_assert_int_eq(pst_lu_run(cmd, out, sizeof out), 0);
    const char *ps0 = strstr(out, "ps task 0 (/job:ps/task:0)"), *ps1 = strstr(out, "ps task 1 (");
    ck_assert_msg(ps0 && ps1 && strstr(ps0, "h1/w") && strstr(ps0, "h1/w") < ps1 &&
                  strstr(ps1, "h1/b"), "%s", out);
    pst_lu_teardown();
}
END_TEST

int main(void) {
    Suite *s = suite_create("tf_launch");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_launch_trains_imported_graph_from_tf_checkpoint);
    tcase_add_test(tc, test_bad_feeds_are_named);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
