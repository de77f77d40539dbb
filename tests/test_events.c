/* TensorBoard event files: the writer's file name and first event, scalars and session logs,
 * files decoded by outside tools (the Python de-framer and Debian's protoc), and a file
 * TensorFlow 2 wrote. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "testutil.h"

static char tmpdir[256];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pst_events_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

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
    ck_assert_msg(rc != 127, "command not found (install python3, protobuf-compiler): %s\n%s", cmd,
                  out);
    return rc;
}

static pst_events_writer *open_writer(const char *sub) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, sub);
    pst_status st = {0};
    pst_events_writer *w = pst_events_writer_open(dir, NULL, &st);
    ck_assert_msg(w != NULL, "%s", st.msg);
    return w;
}

static void close_writer(pst_events_writer *w) {
    pst_status st = {0};
    ck_assert_msg(pst_events_writer_close(w, &st) == 0, "%s", st.msg);
}

START_TEST(test_file_name_and_first_event) {
    setup();
    time_t before = time(NULL);
    pst_events_writer *w = open_writer("logs/run1");
    char path[4096];
    snprintf(path, sizeof path, "%s", pst_events_writer_path(w));
    close_writer(w);
    char prefix[600], host[256];
    snprintf(prefix, sizeof prefix, "%s/logs/run1/events.out.tfevents.", tmpdir);
    ck_assert_msg(strncmp(path, prefix, strlen(prefix)) == 0, "%s", path);
    const char *rest = path + strlen(prefix);
    for (int k = 0; k < 10; k++)
        ck_assert(rest[k] >= '0' && rest[k] <= '9');
    ck_assert_int_eq(rest[10], '.');
    long long secs = atoll(rest);
    ck_assert(secs >= before && secs <= time(NULL));
    ck_assert_int_eq(gethostname(host, sizeof host), 0);
    ck_assert_str_eq(rest + 11, host);

    pst_status st = {0};
    pst_events_reader *r = pst_events_reader_open(path, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    pst_event ev;
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 1);
    ck_assert_int_eq(ev.kind, PST_EVENTS_KIND_FILE_VERSION);
    ck_assert_str_eq(ev.file_version, "brain.Event:2");
    ck_assert(ev.wall_time >= (double)before && ev.wall_time <= (double)time(NULL) + 1);
    ck_assert_int_eq(ev.step, 0);
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 0);
    pst_events_reader_free(r);
    teardown();
}
END_TEST

START_TEST(test_scalars_and_session_logs_read_back) {
    setup();
    pst_events_writer *w = open_writer("run");
    pst_status st = {0};
    ck_assert_int_eq(pst_events_add_session_log(w, PST_EVENTS_START, 100, NULL, &st), 0);
    ck_assert_int_eq(pst_events_add_scalar(w, "loss", 0.25f, 100, &st), 0);
    ck_assert_int_eq(pst_events_add_scalar(w, "accuracy", 0.875f, 101, &st), 0);
    ck_assert_int_eq(
        pst_events_add_session_log(w, PST_EVENTS_CHECKPOINT, 101, "/ckpt/model.ckpt-101", &st), 0);
    ck_assert_int_eq(pst_events_add_session_log(w, PST_EVENTS_STOP, 101, NULL, &st), 0);
    char path[4096];
    snprintf(path, sizeof path, "%s", pst_events_writer_path(w));
    close_writer(w);

    pst_events_reader *r = pst_events_reader_open(path, &st);
    pst_event ev;
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 1); /* file_version */
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 1);
    ck_assert_int_eq(ev.kind, PST_EVENTS_KIND_SESSION_LOG);
    ck_assert_int_eq(ev.status, PST_EVENTS_START);
    ck_assert_int_eq(ev.step, 100);
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 1);
    ck_assert_int_eq(ev.kind, PST_EVENTS_KIND_SUMMARY);
    ck_assert_int_eq(ev.step, 100);
    ck_assert_int_eq(ev.n_values, 1);
    ck_assert_str_eq(ev.values[0].tag, "loss");
    ck_assert(ev.values[0].has_scalar && ev.values[0].scalar == 0.25);
    ck_assert_str_eq(ev.values[0].plugin, "");
    ck_assert(ev.wall_time > 1e9);
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 1);
    ck_assert_str_eq(ev.values[0].tag, "accuracy");
    ck_assert(ev.values[0].scalar == 0.875);
    ck_assert_int_eq(ev.step, 101);
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 1);
    ck_assert_int_eq(ev.status, PST_EVENTS_CHECKPOINT);
    ck_assert_str_eq(ev.checkpoint_path, "/ckpt/model.ckpt-101");
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 1);
    ck_assert_int_eq(ev.status, PST_EVENTS_STOP);
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 0);
    pst_events_reader_free(r);
    teardown();
}
END_TEST

/* The outside check: tests/tfrecord_check.py de-frames the file (verifying both CRC-32Cs with
 * its own implementation) and Debian's protoc decodes every record against
 * proto/tf_event.proto. */
START_TEST(test_protoc_decodes_our_events) {
    setup();
    pst_events_writer *w = open_writer("run");
    pst_status st = {0};
    ck_assert_int_eq(pst_events_add_session_log(w, PST_EVENTS_START, 100, NULL, &st), 0);
    ck_assert_int_eq(pst_events_add_scalar(w, "loss", 0.25f, 100, &st), 0);
    ck_assert_int_eq(pst_events_add_session_log(w, PST_EVENTS_CHECKPOINT, 100, "m.ckpt-100", &st),
                     0);
    char path[4096];
    snprintf(path, sizeof path, "%s", pst_events_writer_path(w));
    close_writer(w);
    char cmd[8192], out[8192];
    snprintf(cmd, sizeof cmd, "python3 %s/tests/tfrecord_check.py deframe %s %s 2>&1", source_dir(),
             path, tmpdir);
    ck_assert_msg(run(cmd, out, sizeof out) == 0, "%s", out);
    ck_assert_str_eq(out, "records 4\n");
    const char *want[4][3] = {
        {"file_version: \"brain.Event:2\"", "wall_time: ", NULL},
        {"step: 100", "session_log {\n  status: START\n}", NULL},
        {"step: 100", "summary {\n  value {\n    tag: \"loss\"\n    simple_value: 0.25\n  }\n}",
         NULL},
        {"session_log {\n  status: CHECKPOINT\n  checkpoint_path: \"m.ckpt-100\"\n}", NULL, NULL},
    };
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd,
                 "protoc --decode=tensorflow.Event -I%s/proto %s/proto/tf_event.proto "
                 "< %s/%d.bin 2>&1",
                 source_dir(), source_dir(), tmpdir, i);
        ck_assert_msg(run(cmd, out, sizeof out) == 0, "%s", out);
        for (int k = 0; k < 3 && want[i][k]; k++)
            ck_assert_msg(strstr(out, want[i][k]) != NULL, "record %d: '%s' not in:\n%s", i,
                          want[i][k], out);
    }
    teardown();
}
END_TEST

/* A TF 2 file (scalars as DT_FLOAT tensors with plugin "scalars"), copied into tests/data. */
START_TEST(test_reads_tensorflow2_file) {
    char path[1024];
    snprintf(path, sizeof path,
             "%s/tests/data/tf/gotb_tf2_events/events.out.tfevents.1585499054.Jaakkos-Mac-mini.local.11684.5.v2",
             source_dir());
    pst_status st = {0};
    pst_events_reader *r = pst_events_reader_open(path, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    pst_event ev;
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 1);
    ck_assert_int_eq(ev.kind, PST_EVENTS_KIND_FILE_VERSION);
    ck_assert_str_eq(ev.file_version, "brain.Event:2");
    ck_assert(ev.wall_time == 1585499054.0);
    int n = 0, rc;
    while ((rc = pst_events_reader_next(r, &ev, &st)) == 1) {
        ck_assert_int_eq(ev.kind, PST_EVENTS_KIND_SUMMARY);
        ck_assert_int_eq(ev.step, n);
        ck_assert_int_eq(ev.n_values, 1);
        ck_assert_str_eq(ev.values[0].tag, "my_metric");
        ck_assert_str_eq(ev.values[0].plugin, "scalars");
        ck_assert(ev.values[0].has_scalar);
        ck_assert(ev.values[0].scalar == 0.5 * n);
        n++;
    }
    ck_assert_msg(rc == 0, "%s", st.msg);
    ck_assert_int_eq(n, 100);
    pst_events_reader_free(r);
}
END_TEST

/* What was flushed is in the file while the writer is still open. */
START_TEST(test_flush_makes_events_visible) {
    setup();
    pst_events_writer *w = open_writer("live");
    pst_status st = {0};
    ck_assert_int_eq(pst_events_add_scalar(w, "x", 1.0f, 7, &st), 0);
    ck_assert_int_eq(pst_events_flush(w, &st), 0);
    pst_events_reader *r = pst_events_reader_open(pst_events_writer_path(w), &st);
    pst_event ev;
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 1);
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 1);
    ck_assert_int_eq(ev.step, 7);
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 0);
    /* More after the reader reached the end: it sees them on its next call. */
    ck_assert_int_eq(pst_events_add_scalar(w, "x", 2.0f, 8, &st), 0);
    ck_assert_int_eq(pst_events_flush(w, &st), 0);
    ck_assert_int_eq(pst_events_reader_next(r, &ev, &st), 1);
    ck_assert_int_eq(ev.step, 8);
    pst_events_reader_free(r);
    close_writer(w);
    teardown();
}
END_TEST

/* An event written with pst_events_write keeps its wall time and several values. */
START_TEST(test_write_explicit_event) {
    setup();
    pst_events_writer *w = open_writer("x");
    pst_events_value v[2] = {{.tag = "a", .has_scalar = 1, .scalar = -2.5},
                             {.tag = "b", .has_scalar = 1, .scalar = 1e-3}};
    pst_event ev = {.wall_time = 1234567890.5,
                    .step = -1,
                    .kind = PST_EVENTS_KIND_SUMMARY,
                    .values = v,
                    .n_values = 2};
    pst_status st = {0};
    ck_assert_int_eq(pst_events_write(w, &ev, &st), 0);
    char path[4096];
    snprintf(path, sizeof path, "%s", pst_events_writer_path(w));
    close_writer(w);
    pst_events_reader *r = pst_events_reader_open(path, &st);
    pst_event got;
    ck_assert_int_eq(pst_events_reader_next(r, &got, &st), 1);
    ck_assert_int_eq(pst_events_reader_next(r, &got, &st), 1);
    ck_assert(got.wall_time == 1234567890.5);
    ck_assert_int_eq(got.step, -1);
    ck_assert_int_eq(got.n_values, 2);
    ck_assert_str_eq(got.values[1].tag, "b");
    ck_assert(got.values[0].scalar == -2.5);
    ck_assert(got.values[1].scalar == (double)1e-3f);
    pst_events_reader_free(r);
    teardown();
}
END_TEST

START_TEST(test_open_error_names_directory) {
    setup();
    char file[512];
    snprintf(file, sizeof file, "%s/plainfile", tmpdir);
    FILE *f = fopen(file, "w");
    fclose(f);
    pst_status st = {0};
    ck_assert_ptr_null(pst_events_writer_open(file, NULL, &st));
    ck_assert_ptr_nonnull(strstr(st.msg, file));
    teardown();
}
END_TEST

START_TEST(test_status_names) {
    ck_assert_str_eq(pst_events_status_name(PST_EVENTS_START), "START");
    ck_assert_str_eq(pst_events_status_name(PST_EVENTS_CHECKPOINT), "CHECKPOINT");
    ck_assert_str_eq(pst_events_status_name(PST_EVENTS_STATUS_COUNT), "invalid");
}
END_TEST

int main(void) {
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("events");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_file_name_and_first_event);
    tcase_add_test(tc, test_scalars_and_session_logs_read_back);
    tcase_add_test(tc, test_protoc_decodes_our_events);
    tcase_add_test(tc, test_reads_tensorflow2_file);
    tcase_add_test(tc, test_flush_makes_events_visible);
    tcase_add_test(tc, test_write_explicit_event);
    tcase_add_test(tc, test_open_error_names_directory);
    tcase_add_test(tc, test_status_names);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
