/* Cluster specs: parsing (bare, nested, TF_CONFIG), accessors, device mapping and errors. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "testutil.h"

static const char *SPEC = "{\"ps\": [\"127.0.0.1:2222\", \"127.0.0.1:2223\"],"
                          " \"worker\": [\"host-a:2224\", \"[::1]:2225\", \"host-b:1\"]}";

/* Parses json expecting an error; returns the message (static buffer). */
static const char *parse_error(const char *json, const char *origin) {
    static pst_status st;
    pst_status_clear(&st);
    pst_cluster *c = pst_cluster_parse(json, origin, &st);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(st.code, PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(st.msg, origin));
    return st.msg;
}

START_TEST(test_parse_bare) {
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse(SPEC, "cluster.json", &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_cluster_num_jobs(c), 2);
    ck_assert_str_eq(pst_cluster_job_name(c, 0), "ps");
    ck_assert_str_eq(pst_cluster_job_name(c, 1), "worker");
    ck_assert_ptr_null(pst_cluster_job_name(c, 2));
    ck_assert_ptr_null(pst_cluster_job_name(c, -1));
    ck_assert_int_eq(pst_cluster_num_tasks(c, "ps"), 2);
    ck_assert_int_eq(pst_cluster_num_tasks(c, "worker"), 3);
    ck_assert_int_eq(pst_cluster_num_tasks(c, "chief"), 0);
    pst_cluster_free(c);
}
END_TEST

START_TEST(test_parse_nested_job_file) {
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse(
        "{\"cluster\": {\"worker\": [\"w0:1\"], \"chief\": [\"c:2\"]}, \"model\": \"mlp\","
        " \"partitions\": {\"fc1/weights\": 3}}", "job.json", &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_cluster_num_jobs(c), 2);
    ck_assert_str_eq(pst_cluster_job_name(c, 1), "chief");
    ck_assert_int_eq(pst_cluster_num_tasks(c, "ps"), 0);
    ck_assert_str_eq(pst_cluster_address(c, "chief", 0), "c:2");
    pst_cluster_free(c);
}
END_TEST

START_TEST(test_addresses) {
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse(SPEC, "cluster.json", &st);
    ck_assert_str_eq(pst_cluster_address(c, "ps", 1), "127.0.0.1:2223");
    ck_assert_str_eq(pst_cluster_address(c, "worker", 1), "[::1]:2225");
    ck_assert_str_eq(pst_cluster_address(c, "worker", 2), "host-b:1");
    ck_assert_ptr_null(pst_cluster_address(c, "ps", 2));
    ck_assert_ptr_null(pst_cluster_address(c, "ps", -1));
    ck_assert_ptr_null(pst_cluster_address(c, "evaluator", 0));
    pst_cluster_free(c);
}
END_TEST

/* MPI ranks as addresses ("mpi:RANK", transport_mpi.h): rank 0 is no port 0, a rank used twice
 * is an error naming both entries, and anything but digits after "mpi:" is refused. */
START_TEST(test_mpi_addresses) {
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse("{\"ps\": [\"mpi:0\"], \"worker\": [\"mpi:1\", \"mpi:2\"]}",
                                       "mpi.json", &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    ck_assert_str_eq(pst_cluster_address(c, "worker", 1), "mpi:2");
    pst_cluster_free(c);
    c = pst_cluster_parse("{\"ps\": [\"mpi:0\"], \"worker\": [\"mpi:0\"]}", "mpi.json", &st);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(st.msg, "worker[0] \"mpi:0\" duplicates ps[0]"), "%s", st.msg);
    pst_status_clear(&st);
    c = pst_cluster_parse("{\"ps\": [\"mpi:x\"]}", "mpi.json", &st);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(st.msg, "ps[0] \"mpi:x\"") && strstr(st.msg, "mpi:RANK"), "%s", st.msg);
}
END_TEST

START_TEST(test_task_device) {
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse(SPEC, "cluster.json", &st);
    char buf[64];
    ck_assert_int_eq(pst_cluster_task_device(c, "ps", 1, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "/job:ps/replica:0/task:1");
    ck_assert_int_eq(pst_cluster_task_device(c, "ps", 2, buf, sizeof buf), PST_E_INVALID);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(pst_cluster_task_device(c, "worker", 0, buf, 10), PST_E_INVALID);
    ck_assert_str_eq(buf, "");
    pst_cluster_free(c);
}
END_TEST

START_TEST(test_address_of_device) {
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse(SPEC, "cluster.json", &st);
    ck_assert_str_eq(pst_cluster_address_of_device(c, "/job:ps/replica:0/task:1"), "127.0.0.1:2223");
    ck_assert_str_eq(pst_cluster_address_of_device(c, "/job:ps/task:1/device:CPU:0"),
                     "127.0.0.1:2223");
    ck_assert_str_eq(pst_cluster_address_of_device(c, "/job:worker/task:2/cpu:0"), "host-b:1");
    ck_assert_str_eq(pst_cluster_address_of_device(c, "/job:ps"), "127.0.0.1:2222");
    ck_assert_ptr_null(pst_cluster_address_of_device(c, "/job:ps/task:2"));
    ck_assert_ptr_null(pst_cluster_address_of_device(c, "/job:ps/replica:1/task:0"));
    ck_assert_ptr_null(pst_cluster_address_of_device(c, "/job:chief/task:0"));
    ck_assert_ptr_null(pst_cluster_address_of_device(c, "/task:0"));
    ck_assert_ptr_null(pst_cluster_address_of_device(c, "job:ps"));
    ck_assert_ptr_null(pst_cluster_address_of_device(c, ""));
    pst_cluster_free(c);
}
END_TEST

START_TEST(test_check_task) {
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse(SPEC, "cluster.json", &st);
    ck_assert_int_eq(pst_cluster_check_task(c, "worker", 2, &st), 0);
    ck_assert_int_eq(pst_cluster_check_task(c, "worker", 3, &st), PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(st.msg, "task 3 of job 'worker'"));
    ck_assert_ptr_nonnull(strstr(st.msg, "3 tasks"));
    ck_assert_ptr_nonnull(strstr(st.msg, "cluster.json"));
    pst_status_clear(&st);
    ck_assert_int_eq(pst_cluster_check_task(c, "chief", 0, &st), PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(st.msg, "no job 'chief'"));
    ck_assert_ptr_nonnull(strstr(st.msg, "jobs: ps, worker"));
    pst_cluster_free(c);
}
END_TEST

START_TEST(test_to_json_round_trip) {
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse(SPEC, "cluster.json", &st);
    char *json = pst_cluster_to_json(c);
    ck_assert_str_eq(json, "{\"ps\":[\"127.0.0.1:2222\",\"127.0.0.1:2223\"],"
                           "\"worker\":[\"host-a:2224\",\"[::1]:2225\",\"host-b:1\"]}");
    pst_cluster *back = pst_cluster_parse(json, "round trip", &st);
    ck_assert_msg(back != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_cluster_num_jobs(back), pst_cluster_num_jobs(c));
    for (int j = 0; j < pst_cluster_num_jobs(c); j++) {
        const char *name = pst_cluster_job_name(c, j);
        ck_assert_str_eq(pst_cluster_job_name(back, j), name);
        ck_assert_int_eq(pst_cluster_num_tasks(back, name), pst_cluster_num_tasks(c, name));
        for (int i = 0; i < pst_cluster_num_tasks(c, name); i++)
            ck_assert_str_eq(pst_cluster_address(back, name, i), pst_cluster_address(c, name, i));
    }
    free(json);
    pst_cluster_free(back);
    pst_cluster_free(c);
}
END_TEST

START_TEST(test_from_env_with_task) {
    setenv("PST_TEST_TF_CONFIG", "{\"cluster\": {\"ps\": [\"p:1\"], \"worker\": [\"w:1\", \"w:2\"]},"
           " \"task\": {\"type\": \"worker\", \"index\": 1}}", 1);
    pst_status st = {0};
    char type[16];
    int index = -7;
    pst_cluster *c = pst_cluster_from_env("PST_TEST_TF_CONFIG", type, sizeof type, &index, &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    ck_assert_str_eq(type, "worker");
    ck_assert_int_eq(index, 1);
    ck_assert_str_eq(pst_cluster_address(c, type, index), "w:2");
    pst_cluster_free(c);
}
END_TEST

START_TEST(test_from_env_without_task) {
    setenv("PST_TEST_TF_CONFIG", "{\"cluster\": {\"worker\": [\"w:1\"]}}", 1);
    pst_status st = {0};
    char type[16] = "junk";
    int index = 5;
    pst_cluster *c = pst_cluster_from_env("PST_TEST_TF_CONFIG", type, sizeof type, &index, &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    ck_assert_str_eq(type, "");
    ck_assert_int_eq(index, -1);
    pst_cluster_free(c);
}
END_TEST

START_TEST(test_from_env_unset_is_not_an_error) {
    unsetenv("PST_TEST_TF_CONFIG");
    pst_status st = {0};
    ck_assert_ptr_null(pst_cluster_from_env("PST_TEST_TF_CONFIG", NULL, 0, NULL, &st));
    ck_assert_int_eq(st.code, 0);
    setenv("PST_TEST_TF_CONFIG", "  ", 1);
    ck_assert_ptr_null(pst_cluster_from_env("PST_TEST_TF_CONFIG", NULL, 0, NULL, &st));
    ck_assert_int_eq(st.code, 0);
}
END_TEST

START_TEST(test_from_env_task_out_of_range) {
    setenv("PST_TEST_TF_CONFIG", "{\"cluster\": {\"worker\": [\"w:1\", \"w:2\"]},"
           " \"task\": {\"type\": \"worker\", \"index\": 2}}", 1);
    pst_status st = {0};
    ck_assert_ptr_null(pst_cluster_from_env("PST_TEST_TF_CONFIG", NULL, 0, NULL, &st));
    ck_assert_int_eq(st.code, PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(st.msg, "PST_TEST_TF_CONFIG"));
    ck_assert_ptr_nonnull(strstr(st.msg, "task 2 of job 'worker'"));
    ck_assert_ptr_nonnull(strstr(st.msg, "2 tasks"));
}
END_TEST

START_TEST(test_from_env_bad_task_and_missing_cluster) {
    pst_status st = {0};
    setenv("PST_TEST_TF_CONFIG", "{\"cluster\": {\"worker\": [\"w:1\"]},"
           " \"task\": {\"type\": \"worker\", \"index\": -1}}", 1);
    ck_assert_ptr_null(pst_cluster_from_env("PST_TEST_TF_CONFIG", NULL, 0, NULL, &st));
    ck_assert_ptr_nonnull(strstr(st.msg, "task.index"));
    pst_status_clear(&st);
    setenv("PST_TEST_TF_CONFIG", "{\"task\": {\"type\": \"worker\", \"index\": 0}}", 1);
    ck_assert_ptr_null(pst_cluster_from_env("PST_TEST_TF_CONFIG", NULL, 0, NULL, &st));
    ck_assert_ptr_nonnull(strstr(st.msg, "PST_TEST_TF_CONFIG: no \"cluster\""));
}
END_TEST

START_TEST(test_error_duplicate_address) {
    const char *msg = parse_error("{\"ps\": [\"127.0.0.1:2222\", \"127.0.0.1:2222\"]}", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "cluster.json: ps[1] \"127.0.0.1:2222\" duplicates ps[0]"));
    msg = parse_error("{\"ps\": [\"a:1\"], \"worker\": [\"b:1\", \"a:1\"]}", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "worker[1] \"a:1\" duplicates ps[0]"));
}
END_TEST

START_TEST(test_error_not_host_port) {
    const char *msg = parse_error("{\"worker\": [\"localhost\"]}", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "cluster.json: worker[0] \"localhost\" is not host:port"));
    msg = parse_error("{\"worker\": [\":2222\"]}", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "worker[0] \":2222\""));
    ck_assert_ptr_nonnull(strstr(msg, "empty host"));
    msg = parse_error("{\"worker\": [\"a b:1\"]}", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "host 'a b'"));
}
END_TEST

START_TEST(test_error_bad_port) {
    const char *msg = parse_error("{\"ps\": [\"h:1\", \"h:65536\"]}", "c.json");
    ck_assert_ptr_nonnull(strstr(msg, "ps[1] \"h:65536\""));
    ck_assert_ptr_nonnull(strstr(msg, "port '65536'"));
    msg = parse_error("{\"ps\": [\"h:\"]}", "c.json");
    ck_assert_ptr_nonnull(strstr(msg, "port ''"));
    msg = parse_error("{\"ps\": [\"h:22a\"]}", "c.json");
    ck_assert_ptr_nonnull(strstr(msg, "port '22a'"));
    msg = parse_error("{\"ps\": [\"h:-1\"]}", "c.json");
    ck_assert_ptr_nonnull(strstr(msg, "port '-1'"));
}
END_TEST

START_TEST(test_error_port_zero) {
    const char *msg = parse_error("{\"ps\": [\"h:1\", \"h:0\"]}", "c.json");
    ck_assert_ptr_nonnull(strstr(msg, "c.json: ps[1] \"h:0\""));
    ck_assert_ptr_nonnull(strstr(msg, "port 0"));
}
END_TEST

START_TEST(test_error_embedded_nul) {
    const char *msg = parse_error("{\"ps\": [\"127.0.0.1:2222\\u0000junk\"]}", "c.json");
    ck_assert_ptr_nonnull(strstr(msg, "c.json: line 1, column 24"));
    ck_assert_ptr_nonnull(strstr(msg, "\\u0000"));
    msg = parse_error("{\"p\\u0000s\": [\"h:1\"]}", "c.json");
    ck_assert_ptr_nonnull(strstr(msg, "NUL"));
    /* An escaped backslash followed by "u0000" is plain text, not a NUL: the address is then
     * refused for its own reason. */
    msg = parse_error("{\"ps\": [\"h\\\\u0000:1\"]}", "c.json");
    ck_assert_ptr_null(strstr(msg, "NUL"));
    ck_assert_ptr_nonnull(strstr(msg, "ps[0]"));
}
END_TEST

START_TEST(test_from_env_missing_index) {
    setenv("PST_TEST_TF_CONFIG", "{\"cluster\": {\"worker\": [\"w:1\", \"w:2\"]},"
           " \"task\": {\"type\": \"worker\"}}", 1);
    pst_status st = {0};
    ck_assert_ptr_null(pst_cluster_from_env("PST_TEST_TF_CONFIG", NULL, 0, NULL, &st));
    ck_assert_int_eq(st.code, PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(st.msg, "PST_TEST_TF_CONFIG: task.index is missing"));
}
END_TEST

START_TEST(test_ipv6_needs_brackets) {
    const char *msg = parse_error("{\"ps\": [\"::1:2222\"]}", "c.json");
    ck_assert_ptr_nonnull(strstr(msg, "brackets"));
    msg = parse_error("{\"ps\": [\"[::1:2222\"]}", "c.json");
    ck_assert_ptr_nonnull(strstr(msg, "']'"));
    msg = parse_error("{\"ps\": [\"[hello]:2222\"]}", "c.json");
    ck_assert_ptr_nonnull(strstr(msg, "not an IPv6 address"));
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse("{\"ps\": [\"[fe80::1%eth0]:2222\", \"[::ffff:10.0.0.1]:1\"]}",
                                       "c.json", &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    pst_cluster_free(c);
}
END_TEST

START_TEST(test_error_job_not_a_list) {
    const char *msg = parse_error("{\"ps\": \"127.0.0.1:2222\"}", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "ps is not a list"));
    /* A job file without "cluster" gets a hint. */
    msg = parse_error("{\"model\": \"mlp\"}", "job.json");
    ck_assert_ptr_nonnull(strstr(msg, "model is not a list"));
    ck_assert_ptr_nonnull(strstr(msg, "under \"cluster\""));
    msg = parse_error("{\"cluster\": {\"ps\": {\"0\": \"a:1\"}}}", "job.json");
    ck_assert_ptr_nonnull(strstr(msg, "cluster.ps is not a list"));
}
END_TEST

START_TEST(test_error_entry_not_a_string) {
    const char *msg = parse_error("{\"worker\": [\"a:1\", 2223]}", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "worker[1] is not a \"host:port\" string"));
}
END_TEST

START_TEST(test_error_empty_job_and_no_jobs) {
    const char *msg = parse_error("{\"ps\": [], \"worker\": [\"a:1\"]}", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "ps is an empty list"));
    msg = parse_error("{}", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "no jobs"));
    msg = parse_error("{\"cluster\": {}, \"model\": \"mlp\"}", "job.json");
    ck_assert_ptr_nonnull(strstr(msg, "no jobs"));
}
END_TEST

START_TEST(test_error_bad_job_name) {
    const char *msg = parse_error("{\"my-job\": [\"a:1\"]}", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "job name 'my-job'"));
    msg = parse_error("{\"ps\": [\"a:1\"], \"ps\": [\"a:2\"]}", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "job 'ps' appears twice"));
}
END_TEST

START_TEST(test_error_invalid_json_says_where) {
    const char *msg = parse_error("{\"ps\": [\"a:1\",\n  \"b:2\" \"c:3\"]}", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "invalid JSON"));
    ck_assert_ptr_nonnull(strstr(msg, "line 2"));
    ck_assert_ptr_nonnull(strstr(msg, "\"c:3\""));
    msg = parse_error("{\"ps\": [\"a:1\"", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "unexpected end"));
    msg = parse_error("{\"ps\": [\"a:1\"]} trailing", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "trailing"));
    msg = parse_error("[\"a:1\"]", "cluster.json");
    ck_assert_ptr_nonnull(strstr(msg, "expected a JSON object"));
}
END_TEST

START_TEST(test_load_file) {
    char path[] = "/tmp/pst_cluster_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(SPEC, f);
    fclose(f);
    pst_status st = {0};
    pst_cluster *c = pst_cluster_load(path, &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    ck_assert_str_eq(pst_cluster_address(c, "worker", 0), "host-a:2224");
    pst_cluster_free(c);
    /* Errors in a file's content name the file. */
    f = fopen(path, "w");
    fputs("{\"ps\": [\"nope\"]}", f);
    fclose(f);
    ck_assert_ptr_null(pst_cluster_load(path, &st));
    ck_assert_ptr_nonnull(strstr(st.msg, path));
    ck_assert_ptr_nonnull(strstr(st.msg, "ps[0] \"nope\""));
    unlink(path);
}
END_TEST

START_TEST(test_load_missing_file) {
    pst_status st = {0};
    ck_assert_ptr_null(pst_cluster_load("/nonexistent/dir/cluster.json", &st));
    ck_assert_int_eq(st.code, PST_E_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(st.msg, "/nonexistent/dir/cluster.json"));
    ck_assert_ptr_nonnull(strstr(st.msg, "No such file or directory"));
}
END_TEST


static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "hung opening a FIFO cluster spec\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(99);
}

/* A FIFO in place of the cluster file is an error naming it, not a hang. */
START_TEST(test_load_fifo_is_an_error) {
    char dir[] = "/tmp/pst_cluster_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/cluster.json", dir);
    ck_assert_int_eq(mkfifo(path, 0644), 0);
    signal(SIGALRM, on_alarm);
    alarm(10);
    pst_status st = {0};
    ck_assert_ptr_null(pst_cluster_load(path, &st));
    alarm(0);
    ck_assert_msg(strstr(st.msg, path) && strstr(st.msg, "not a regular file"), "%s", st.msg);
    unlink(path);
    rmdir(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("cluster");
    tcase_add_test(tc, test_parse_bare);
    tcase_add_test(tc, test_load_fifo_is_an_error);
    tcase_add_test(tc, test_parse_nested_job_file);
    tcase_add_test(tc, test_addresses);
    tcase_add_test(tc, test_mpi_addresses);
    tcase_add_test(tc, test_task_device);
    tcase_add_test(tc, test_address_of_device);
    tcase_add_test(tc, test_check_task);
    tcase_add_test(tc, test_to_json_round_trip);
    tcase_add_test(tc, test_from_env_with_task);
    tcase_add_test(tc, test_from_env_without_task);
    tcase_add_test(tc, test_from_env_unset_is_not_an_error);
    tcase_add_test(tc, test_from_env_task_out_of_range);
    tcase_add_test(tc, test_from_env_bad_task_and_missing_cluster);
    tcase_add_test(tc, test_error_duplicate_address);
    tcase_add_test(tc, test_error_not_host_port);
    tcase_add_test(tc, test_error_bad_port);
    tcase_add_test(tc, test_error_port_zero);
    tcase_add_test(tc, test_error_embedded_nul);
    tcase_add_test(tc, test_from_env_missing_index);
    tcase_add_test(tc, test_ipv6_needs_brackets);
    tcase_add_test(tc, test_error_job_not_a_list);
    tcase_add_test(tc, test_error_entry_not_a_string);
    tcase_add_test(tc, test_error_empty_job_and_no_jobs);
    tcase_add_test(tc, test_error_bad_job_name);
    tcase_add_test(tc, test_error_invalid_json_says_where);
    tcase_add_test(tc, test_load_file);
    tcase_add_test(tc, test_load_missing_file);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
