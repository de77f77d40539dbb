/* `pstrain inspect placement --job FILE --dry-run`: the built CLI on temporary job files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* Writes json to a new temp file; path receives its name. */
static void write_job(char *path, const char *json) {
    strcpy(path, "/tmp/pst_job_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(json, f);
    fclose(f);
}

/* Runs `pstrain inspect placement ARGS` (stdout and stderr together); returns the exit code. */
static int run_inspect(const char *args, char *out, size_t len) {
    const char *bin = getenv("PST_BINARY_DIR");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain inspect placement %s 2>&1", bin ? bin : "build",
             args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    ck_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int inspect_job(const char *json, char *out, size_t len) {
    char path[64], args[256];
    write_job(path, json);
    snprintf(args, sizeof args, "--job %s --dry-run", path);
    int rc = run_inspect(args, out, len);
    unlink(path);
    return rc;
}

START_TEST(test_dry_run_lists_variables_per_ps) {
    char out[65536];
    int rc = inspect_job("{\"cluster\": {\"ps\": [\"127.0.0.1:2222\", \"127.0.0.1:2223\"],"
                         " \"worker\": [\"127.0.0.1:2224\"]}, \"model\": \"mlp\"}", out, sizeof out);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "/job:ps/task:0"));
    ck_assert_ptr_nonnull(strstr(out, "/job:ps/task:1"));
    ck_assert_ptr_nonnull(strstr(out, "127.0.0.1:2223"));
    ck_assert_ptr_nonnull(strstr(out, "mlp/fc1/weights "));
    ck_assert_ptr_nonnull(strstr(out, "[784,256]"));
    ck_assert_ptr_nonnull(strstr(out, "global_step"));
    ck_assert_ptr_nonnull(strstr(out, "imbalance"));
    /* Round robin over 2 PS: fc1/weights on task 0, fc1/biases on task 1. */
    char *t1 = strstr(out, "ps task 1 (/job:ps/task:1)");
    ck_assert_ptr_nonnull(t1);
    char *w = strstr(out, "mlp/fc1/weights "), *b = strstr(out, "mlp/fc1/biases ");
    ck_assert(w < t1);
    ck_assert(b > t1);
}
END_TEST

START_TEST(test_dry_run_places_optimizer_slots_with_their_variable) {
    char out[65536];
    int rc = inspect_job("{\"cluster\": {\"ps\": [\"a:1\", \"a:2\", \"a:3\"], \"worker\": [\"w:1\"]},"
                         " \"model\": \"simple_cnn\", \"optimizer\": \"momentum\","
                         " \"placement\": \"greedy\"}", out, sizeof out);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "/job:ps/task:2"));
    ck_assert_ptr_nonnull(strstr(out, "placement greedy"));
    /* Each Momentum slot sits in the same PS table as its variable. */
    const char *names[2] = {"fc1/weights ", "fc1/weights/Momentum "};
    int task[2] = {-1, -1};
    for (int i = 0; i < 2; i++) {
        char *at = strstr(out, names[i]);
        ck_assert_msg(at != NULL, "no %s in\n%s", names[i], out);
        for (int k = 0; k < 3; k++) {
            char hdr[64];
            snprintf(hdr, sizeof hdr, "ps task %d (", k);
            char *h = strstr(out, hdr);
            if (h && h < at) task[i] = k;
        }
    }
    ck_assert_int_ge(task[0], 0);
    ck_assert_int_eq(task[0], task[1]);
}
END_TEST

START_TEST(test_bare_cluster_file_uses_defaults) {
    char out[65536];
    int rc = inspect_job("{\"ps\": [\"a:1\"], \"worker\": [\"w:1\"]}", out, sizeof out);
    ck_assert_msg(rc == 0, "%s", out);
    /* The worker's defaults, since the worker builds the same graph from the same file. */
    ck_assert_ptr_nonnull(strstr(out, "model simple_cnn"));
    ck_assert_ptr_nonnull(strstr(out, "optimizer adam"));
    ck_assert_ptr_nonnull(strstr(out, "/weights/Adam"));
}
END_TEST

START_TEST(test_missing_job_file_is_named) {
    char out[4096];
    int rc = run_inspect("--job /nonexistent/job.json --dry-run", out, sizeof out);
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent/job.json"));
}
END_TEST

START_TEST(test_unknown_model_is_named) {
    char out[4096];
    int rc = inspect_job("{\"cluster\": {\"worker\": [\"w:1\"]}, \"model\": \"resnet9000\"}", out,
                         sizeof out);
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_nonnull(strstr(out, "unknown model 'resnet9000'"));
}
END_TEST

START_TEST(test_bad_cluster_and_bad_json) {
    char out[4096];
    int rc = inspect_job("{\"cluster\": {\"ps\": [\"a:1\"], \"worker\": [\"nope\"]}}", out, sizeof out);
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_nonnull(strstr(out, "worker[0] \"nope\" is not host:port"));
    rc = inspect_job("{\"cluster\": {\"ps\": [\"a:1\"]", out, sizeof out);
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_nonnull(strstr(out, "invalid JSON"));
    rc = inspect_job("{\"cluster\": {\"ps\": [\"a:1\"]}}", out, sizeof out);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "the cluster needs at least one worker"), "%s", out);
    rc = inspect_job("{\"cluster\": {\"worker\": [\"w:1\"]}, \"placement\": \"random\"}", out,
                     sizeof out);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "\"placement\": --placement: 'random' is not round_robin or greedy"),
                  "%s", out);
}
END_TEST

/* "partition_min_bytes" partitions the big layer weights over the PS, as the worker does. */
START_TEST(test_dry_run_partitioned_weights) {
    char out[65536];
    int rc = inspect_job("{\"cluster\": {\"ps\": [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"],"
                         " \"worker\": [\"127.0.0.1:4\"]}, \"model\": \"mlp\", \"partition_min_bytes\": 100000}",
                         out, sizeof out);
    ck_assert_msg(rc == 0, "%s", out);
    const char *t2 = strstr(out, "ps task 2 (/job:ps/task:2)");
    ck_assert_ptr_nonnull(t2);
    ck_assert_ptr_nonnull(strstr(t2, "mlp/fc1/weights/part_2"));
    ck_assert_ptr_nonnull(strstr(out, "mlp/fc1/weights/part_0"));
    rc = inspect_job("{\"cluster\": {\"worker\": [\"w:1\"]}, \"partition_min_bytes\": -3}", out,
                     sizeof out);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "\"partition_min_bytes\": --partition-min-bytes: '-3' is not an "
                              "integer in"), "%s", out);
}
END_TEST

START_TEST(test_usage_errors) {
    char out[4096];
    /* a missing cluster file is named */
    ck_assert_int_eq(run_inspect("--cluster /nonexistent/c.json", out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent/c.json"));
    ck_assert_int_eq(run_inspect("--dry-run", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--dry-run needs --job FILE"));
    ck_assert_int_eq(run_inspect("", out, sizeof out), 2);
    ck_assert_ptr_nonnull(strstr(out, "give --cluster FILE"));
}
END_TEST

/* Live mode against a PS that is not running: the error names its address. */
START_TEST(test_live_unreachable_ps_named) {
    char path[64], out[4096], args[256];
    write_job(path, "{\"ps\": [\"127.0.0.1:1\"], \"worker\": [\"127.0.0.1:2\"]}");
    snprintf(args, sizeof args, "--cluster %s --timeout-ms 2000", path);
    ck_assert_int_eq(run_inspect(args, out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "127.0.0.1:1"));
    ck_assert_ptr_nonnull(strstr(out, "/job:ps/task:0"));
    unlink(path);
}
END_TEST

int main(void) {
    Suite *s = suite_create("inspect");
    TCase *tc = tcase_create("inspect");
    tcase_add_test(tc, test_dry_run_lists_variables_per_ps);
    tcase_add_test(tc, test_dry_run_places_optimizer_slots_with_their_variable);
    tcase_add_test(tc, test_bare_cluster_file_uses_defaults);
    tcase_add_test(tc, test_missing_job_file_is_named);
    tcase_add_test(tc, test_unknown_model_is_named);
    tcase_add_test(tc, test_bad_cluster_and_bad_json);
    tcase_add_test(tc, test_usage_errors);
    tcase_add_test(tc, test_dry_run_partitioned_weights);
    tcase_add_test(tc, test_live_unreachable_ps_named);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
