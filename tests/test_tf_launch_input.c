/* pstrain launch on a TensorFlow user's graph that reads its own input: 19_gkchai's gesture
 * classifier (tests/data/tf_graphs; TFRecord readers, queues and queue runners), its readers
 * pointed by the job file's "records" at a file this test writes, trained by 1 PS + 2 workers,
 * each worker reading its half of the records. Real processes; this test never initializes
 * gRPC itself. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.h"
#include "launchutil.h"
#include "pbwire.h"
#include "testutil.h"
#include "tfrecord.h"

static char graph[1024];

static const char artem[] = "17_artem-oppermann_Deep-Autoencoders-For-Collaborative-Filtering/"
                            "model.ckpt.meta";

/* The features of record r (a class r % 4 spelled out in them, so the loss can fall). */
typedef void (*fill_fn)(pst_example *ex, int r, pst_status *st);

/* gkchai's ParseExample: label, series [120] and its three axes [40]. */
static void gesture(pst_example *ex, int r, pst_status *st) {
    static const char *const axes[3] = {"series/x", "series/y", "series/z"};
    int64_t label = r % 4;
    float series[120];
    for (int i = 0; i < 120; i++) series[i] = i / 30 == label ? 0.9f : 0.1f;
    pst_example_add_int64s(ex, "label", &label, 1, st);
    pst_example_add_floats(ex, "series", series, 120, st);
    for (int a = 0; a < 3; a++) pst_example_add_floats(ex, axes[a], series + a * 40, 40, st);
}

/* 17_artem's movie_ratings: 3952 floats, a few ratings each. */
static void ratings(pst_example *ex, int r, pst_status *st) {
    static float v[3952];
    for (int i = 0; i < 3952; i++) v[i] = (i + r) % 97 == 0 ? (float)(1 + i % 5) : 0;
    pst_example_add_floats(ex, "movie_ratings", v, 3952, st);
}

/* n tf.train.Examples that fill makes, in a TFRecord file at path. */
static void write_records(const char *path, int n, fill_fn fill) {
    pst_status st = {0};
    pst_tfrecord_writer *w = pst_tfrecord_writer_open(path, NULL, &st);
    ck_assert_msg(w != NULL, "%s", st.msg);
    pst_example *ex = pst_example_new();
    pst_pbwire_buf b;
    pst_pbwire_buf_init(&b);
    for (int r = 0; r < n; r++) {
        pst_example_clear(ex);
        fill(ex, r, &st);
        pst_pbwire_buf_reset(&b);
        ck_assert_msg(pst_example_encode(ex, &b, &st) == 0, "%s", st.msg);
        ck_assert_int_eq(pst_tfrecord_writer_write(w, b.data, b.len, &st), 0);
    }
    ck_assert_msg(pst_tfrecord_writer_close(w, &st) == 0, "%s", st.msg);
    pst_pbwire_buf_destroy(&b);
    pst_example_free(ex);
}

/* A job training g on records (NULL: the files the graph names). */
static const char *job_of(const char *name, const char *g, const char *records, long steps) {
    static char buf[4096];
    char rec[700] = "";
    if (records) snprintf(rec, sizeof rec, " \"records\": \"%s\",", records);
    snprintf(buf, sizeof buf,
             "{\"name\": \"%s\", \"cluster\": {\"ps\": 1, \"worker\": 2}, \"run_dir\": \"%s/runs\","
             " \"meta\": \"%s\",%s \"steps\": %ld, \"threads\": 1,"
             " \"heartbeat_ms\": 200, \"restarts\": {\"max\": 0}}",
             name, pst_lu_dir, g, rec, steps);
    return pst_lu_write_job(name, buf);
}

static const char *job(const char *name, const char *records, long steps) {
    return job_of(name, graph, records, steps);
}

/* Both workers' logs (the first to fail ends the job: the other may have said nothing). */
static void both_logs(const char *run, char *out, size_t len) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cat %s/logs/worker0.log %s/logs/worker1.log 2>/dev/null", run, run);
    pst_lu_run(cmd, out, len);
}

/* Launches j, which must end cleanly ("done", past global step steps); each worker's log
 * must say want and end with a finite loss. */
static void launch_done(const char *j, long steps, const char *want, char *run, size_t len) {
    int rc = pst_lu_launch(j, run, len);
    char log[600];
    snprintf(log, sizeof log, "%s/launch.log", pst_lu_dir);
    char *lo = pst_lu_slurp(log);
    static char w[3000];
    if (rc) both_logs(run, w, sizeof w);
    ck_assert_msg(rc == 0, "launch exited %d:\n%.1000s\n%s", rc, lo ? lo : "", w);
    free(lo);
    cJSON *st = pst_lu_state_of(run);
    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(pst_lu_str(st, "status"), "done");
    ck_assert_double_ge(pst_lu_num(st, "global_step"), (double)steps);
    cJSON_Delete(st);
    /* On a loaded machine one worker may reach the last step before the other made one: that
     * worker says so instead of a loss; at least one worker trained. */
    int trained = 0;
    for (int k = 0; k < 2; k++) {
        char *w = pst_lu_worker_log(run, k);
        ck_assert_msg(strstr(w, want), "%s", w);
        const char *fl = strstr(w, "final_loss=");
        ck_assert_msg(fl != NULL, "%s", w);
        if (strncmp(fl + 11, "none: this worker made no steps", 31) != 0) {
            double l = atof(fl + 11);
            ck_assert_msg(isfinite(l) && l > 0 && l < 100, "final loss %g", l);
            trained++;
        }
        free(w);
    }
    ck_assert_int_ge(trained, 1);
}

static void setup_graph(void) {
    const char *src = getenv("PST_SOURCE_DIR");
    snprintf(graph, sizeof graph,
             "%s/tests/data/tf_graphs/19_gkchai_GestureRecognition/model.ckpt-0.meta",
             src ? src : ".");
}

/* 40 global steps: the job ends cleanly, each worker read its own half of the 200 records,
 * the loss is finite, and the chief's checkpoint at step 40 holds the graph's variables
 * (pstrain train --meta restores it through the graph's own saver). */
START_TEST(test_launch_trains_graph_reading_its_records) {
    pst_lu_setup();
    setup_graph();
    char records[512], run[512], cmd[4096], out[8192];
    snprintf(records, sizeof records, "%s/gestures.tfrecord", pst_lu_dir);
    write_records(records, 200, gesture);
    char want[700];
    snprintf(want, sizeof want, "reading 100 of the 200 records of %s; 6 queue runners started",
             records);
    launch_done(job("gestures", records, 40), 40, want, run, sizeof run);
    /* The checkpoint: listed, verified, and restored by the graph's own saver. */
    snprintf(cmd, sizeof cmd, "%s ckpt ls %s/checkpoints 2>&1", pst_lu_pstrain, run);
    int rc = pst_lu_run(cmd, out, sizeof out);
    ck_assert_msg(rc == 0 && strstr(out, "model.ckpt-4"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s ckpt verify $(ls %s/checkpoints/model.ckpt-*.index | tail -1 "
             "| sed 's/.index$//') 2>&1", pst_lu_pstrain, run);
    rc = pst_lu_run(cmd, out, sizeof out);
    ck_assert_msg(rc == 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s train --meta %s --checkpoint $(ls %s/checkpoints/"
             "model.ckpt-*.index | tail -1 | sed 's/.index$//') --records %s --steps 2 2>&1",
             pst_lu_pstrain, graph, run, records);
    rc = pst_lu_run(cmd, out, sizeof out);
    ck_assert_msg(rc == 0 && strstr(out, "restored ") && strstr(out, "(7 variables)"), "%s", out);
    pst_lu_teardown();
}
END_TEST

/* 17_artem's tf.data pipeline (TFRecordDataset -> map -> shuffle -> repeat -> batch ->
 * Iterator): its iterator initialized on each worker over that worker's half of the records. */
START_TEST(test_launch_trains_graph_reading_its_dataset) {
    pst_lu_setup();
    char g[1024], records[512], run[512];
    const char *src = getenv("PST_SOURCE_DIR");
    snprintf(g, sizeof g, "%s/tests/data/tf_graphs/%s", src ? src : ".", artem);
    snprintf(records, sizeof records, "%s/ratings.tfrecord", pst_lu_dir);
    write_records(records, 40, ratings);
    char want[700];
    snprintf(want, sizeof want, "reading 20 of the 40 records of %s; 1 tf.data iterators "
             "initialized", records);
    launch_done(job_of("ratings", g, records, 12), 12, want, run, sizeof run);
    pst_lu_teardown();
}
END_TEST

/* A records file that is not there stops the job with an error naming it; so does a graph
 * left to read the files it names (Windows paths of its author's machine): its queue runners
 * fail, the queues close, the workers' input ends and the job fails naming the file; nothing
 * hangs. */
START_TEST(test_missing_records_are_named) {
    pst_lu_setup();
    setup_graph();
    char records[512], run[512], out[1 << 14];
    snprintf(records, sizeof records, "%s/nowhere/gestures.tfrecord", pst_lu_dir);
    ck_assert_int_ne(pst_lu_launch(job("missing", records, 40), run, sizeof run), 0);
    both_logs(run, out, sizeof out);
    ck_assert_msg(strstr(out, "--records") && strstr(out, records), "%s", out);
    ck_assert_ptr_null(strstr(out, "final_loss="));
    pst_lu_teardown();
    pst_lu_setup();
    setup_graph();
    ck_assert_int_ne(pst_lu_launch(job("own_files", NULL, 40), run, sizeof run), 0);
    both_logs(run, out, sizeof out);
    ck_assert_msg(strstr(out, "queue runner of"), "%s", out);
    pst_lu_teardown();
}
END_TEST

int main(void) {
    Suite *s = suite_create("tf_launch_input");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_launch_trains_graph_reading_its_records);
    tcase_add_test(tc, test_launch_trains_graph_reading_its_dataset);
    tcase_add_test(tc, test_missing_records_are_named);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
