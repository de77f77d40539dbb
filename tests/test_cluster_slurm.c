/* Cluster specs from Slurm's environment: host list and tasks-per-node expansion, the rank to
 * task rules, the binaries' --cluster-from flag, and every error naming its variable. Each test
 * sets the environment by hand (Check runs each test in its own process). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_slurm.h"
#include "testutil.h"

/* Sets srun's four variables (NULL unsets one) and clears the optional ones. */
static void slurm_env(const char *procid, const char *ntasks, const char *nodelist,
                      const char *per_node) {
    const char *names[] = {"SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST",
                           "SLURM_STEP_TASKS_PER_NODE"};
    const char *vals[] = {procid, ntasks, nodelist, per_node};
    for (int i = 0; i < 4; i++) {
        if (vals[i])
            setenv(names[i], vals[i], 1);
        else
            unsetenv(names[i]);
    }
    unsetenv("SLURMD_NODENAME");
    unsetenv("SLURM_LOCALID");
    unsetenv("PST_SLURM_PS");
    unsetenv("PST_SLURM_PORT_BASE");
    unsetenv("TF_CONFIG");
}

/* Expands list and checks it against want (a NULL-terminated list). */
static void check_hosts(const char *list, const char *const *want) {
    pst_status st = {0};
    char **h = NULL;
    int n = -1;
    ck_assert_msg(pst_cluster_slurm_hostlist(list, "V", &h, &n, &st) == 0, "%s: %s", list, st.msg);
    int k = 0;
    while (want[k]) k++;
    ck_assert_msg(n == k, "%s: %d hosts, want %d", list, n, k);
    for (int i = 0; i < n; i++) ck_assert_str_eq(h[i], want[i]);
    pst_cluster_slurm_hosts_free(h, n);
}

/* Expects the host list to fail with a message holding the variable, the list and `why`. */
static void check_hostlist_error(const char *list, const char *why) {
    pst_status st = {0};
    char **h = (char **)1;
    int n = -1;
    ck_assert_int_eq(pst_cluster_slurm_hostlist(list, "SLURM_STEP_NODELIST", &h, &n, &st),
                     PST_E_INVALID);
    ck_assert_ptr_null(h);
    ck_assert_int_eq(n, 0);
    ck_assert_msg(strstr(st.msg, "SLURM_STEP_NODELIST") && strstr(st.msg, why),
                  "'%s': %s (want '%s')", list, st.msg, why);
}

static void check_counts(const char *list, int n_want, const int *want) {
    pst_status st = {0};
    int *c = NULL, n = -1;
    ck_assert_msg(pst_cluster_slurm_tasks_per_node(list, "V", &c, &n, &st) == 0, "%s: %s", list,
                  st.msg);
    ck_assert_int_eq(n, n_want);
    for (int i = 0; i < n; i++) ck_assert_int_eq(c[i], want[i]);
    free(c);
}

static void check_counts_error(const char *list, const char *why) {
    pst_status st = {0};
    int *c = (int *)1, n = -1;
    ck_assert_int_eq(pst_cluster_slurm_tasks_per_node(list, "SLURM_STEP_TASKS_PER_NODE", &c, &n,
                                                      &st), PST_E_INVALID);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(st.msg, "SLURM_STEP_TASKS_PER_NODE") && strstr(st.msg, why),
                  "'%s': %s (want '%s')", list, st.msg, why);
}

/* Builds the cluster from the environment; fails the test on error. */
static pst_cluster *from_slurm(int num_ps, int port_base, char *type, int *index) {
    pst_status st = {0};
    pst_cluster_slurm_opts o = {.num_ps = num_ps, .port_base = port_base};
    pst_cluster *c = pst_cluster_from_slurm(&o, type, 16, index, &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    return c;
}

/* Expects pst_cluster_from_slurm to fail naming `what`; returns the message. */
static const char *from_slurm_error(int num_ps, int port_base, const char *what) {
    static pst_status st;
    pst_status_clear(&st);
    pst_cluster_slurm_opts o = {.num_ps = num_ps, .port_base = port_base};
    char type[16] = "x";
    int index = 7;
    pst_cluster *c = pst_cluster_from_slurm(&o, type, sizeof type, &index, &st);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(st.code, PST_E_INVALID);
    ck_assert_str_eq(type, "");
    ck_assert_int_eq(index, -1);
    ck_assert_msg(strstr(st.msg, what), "%s (want '%s')", st.msg, what);
    return st.msg;
}

static void check_job(const pst_cluster *c, const char *job, const char *const *want) {
    int k = 0;
    while (want[k]) k++;
    ck_assert_int_eq(pst_cluster_num_tasks(c, job), k);
    for (int i = 0; i < k; i++) ck_assert_str_eq(pst_cluster_address(c, job, i), want[i]);
}

/* ---- host lists ------------------------------------------------------------------------- */

START_TEST(test_hostlist_plain_names) {
    check_hosts("n1", (const char *const[]){"n1", NULL});
    check_hosts("a,b.example.org,c_d-e", (const char *const[]){"a", "b.example.org", "c_d-e",
                                                              NULL});
}
END_TEST

START_TEST(test_hostlist_range_and_single) {
    check_hosts("n[01-03],m5", (const char *const[]){"n01", "n02", "n03", "m5", NULL});
}
END_TEST

START_TEST(test_hostlist_several_ranges_in_brackets) {
    check_hosts("node[1-2,5],gpu[001-002]",
                (const char *const[]){"node1", "node2", "node5", "gpu001", "gpu002", NULL});
}
END_TEST

START_TEST(test_hostlist_padding_follows_first_number) {
    check_hosts("n[8-10]", (const char *const[]){"n8", "n9", "n10", NULL});
    check_hosts("n[08-10]", (const char *const[]){"n08", "n09", "n10", NULL});
    check_hosts("n[098-101]", (const char *const[]){"n098", "n099", "n100", "n101", NULL});
    check_hosts("n[7]", (const char *const[]){"n7", NULL});
}
END_TEST

START_TEST(test_hostlist_suffix_and_two_brackets) {
    check_hosts("n[1-2]-ib", (const char *const[]){"n1-ib", "n2-ib", NULL});
    check_hosts("rack[1-2]n[0-1]",
                (const char *const[]){"rack1n0", "rack1n1", "rack2n0", "rack2n1", NULL});
    check_hosts("[1-2]", (const char *const[]){"1", "2", NULL});
}
END_TEST

START_TEST(test_hostlist_errors) {
    check_hostlist_error("", "is empty");
    check_hostlist_error("n[01-03", "'[' without a closing ']'");
    check_hostlist_error("n]1", "']' without '['");
    check_hostlist_error("n[1[2]]", "'[' inside brackets");
    check_hostlist_error("n[3-1]", "range 3-1 runs backwards");
    check_hostlist_error("n[a-b]", "expected a number");
    check_hostlist_error("n[1-]", "expected a number after '-'");
    check_hostlist_error("n[]", "expected a number");
    check_hostlist_error("n[1;2]", "unexpected ';'");
    check_hostlist_error("a,,b", "empty host name at offset 2");
    check_hostlist_error("a,", "empty host name");
    check_hostlist_error("a b", "unexpected ' '");
    check_hostlist_error("n[1-99999999]", "more than 65536 hosts");
    check_hostlist_error("n[1234567890]", "at most 9 digits");
}
END_TEST

/* ---- tasks per node --------------------------------------------------------------------- */

START_TEST(test_tasks_per_node_expansion) {
    check_counts("3(x2),2,1", 4, (const int[]){3, 3, 2, 1});
    check_counts("1", 1, (const int[]){1});
    check_counts("2(x3)", 3, (const int[]){2, 2, 2});
    check_counts("4,1(x2)", 3, (const int[]){4, 1, 1});
}
END_TEST

START_TEST(test_tasks_per_node_errors) {
    check_counts_error("", "is empty");
    check_counts_error("0", "task count >= 1");
    check_counts_error("a", "task count >= 1");
    check_counts_error("3,", "task count >= 1 at offset 2");
    check_counts_error("3(x0)", "R >= 1");
    check_counts_error("3(x2", "R >= 1 and ')'");
    check_counts_error("3(2)", "expected '(x'");
    check_counts_error("3x2", "unexpected 'x'");
    check_counts_error("1(x70000)", "more than 65536");
}
END_TEST

/* ---- the rules -------------------------------------------------------------------------- */

/* srun -N1 -n3 on one host with 1 PS: rank 0 the PS, ranks 1 and 2 the workers. */
START_TEST(test_one_host_three_tasks) {
    slurm_env("2", "3", "vm", "3");
    char type[16];
    int index;
    pst_cluster *c = from_slurm(0, 0, type, &index);
    check_job(c, "ps", (const char *const[]){"vm:8888", NULL});
    check_job(c, "worker", (const char *const[]){"vm:8889", "vm:8890", NULL});
    ck_assert_int_eq(pst_cluster_num_jobs(c), 2);
    ck_assert_str_eq(pst_cluster_job_name(c, 0), "ps");
    ck_assert_str_eq(type, "worker");
    ck_assert_int_eq(index, 1);
    pst_cluster_free(c);
    setenv("SLURM_PROCID", "0", 1);
    c = from_slurm(0, 0, type, &index);
    ck_assert_str_eq(type, "ps");
    ck_assert_int_eq(index, 0);
    pst_cluster_free(c);
}
END_TEST

/* Hosts sorted (m5 first), each keeping its count; ports restart at the base on each host;
 * ranks 0-1 PS, then workers. */
START_TEST(test_several_hosts_sorted_with_counts) {
    slurm_env("4", "9", "n[01-03],m5", "3(x2),2,1");
    char type[16];
    int index;
    pst_cluster *c = from_slurm(2, 0, type, &index);
    check_job(c, "ps", (const char *const[]){"m5:8888", "n01:8888", NULL});
    check_job(c, "worker", (const char *const[]){"n01:8889", "n01:8890", "n02:8888", "n02:8889",
                                                 "n02:8890", "n03:8888", "n03:8889", NULL});
    ck_assert_str_eq(type, "worker");
    ck_assert_int_eq(index, 2); /* rank 4 = n02:8888 */
    pst_cluster_free(c);
}
END_TEST

/* Slurm's order: n9 before n10 (a plain string sort would swap them and their counts). */
START_TEST(test_numbers_sort_as_numbers) {
    slurm_env("0", "3", "n[9-10]", "1,2");
    pst_cluster *c = from_slurm(1, 0, NULL, NULL);
    check_job(c, "ps", (const char *const[]){"n9:8888", NULL});
    check_job(c, "worker", (const char *const[]){"n10:8888", "n10:8889", NULL});
    pst_cluster_free(c);
    /* An unsorted list is sorted, counts travelling with their hosts. */
    slurm_env("0", "3", "b,a", "1,2");
    c = from_slurm(1, 0, NULL, NULL);
    check_job(c, "ps", (const char *const[]){"a:8888", NULL});
    check_job(c, "worker", (const char *const[]){"a:8889", "b:8888", NULL});
    pst_cluster_free(c);
}
END_TEST

START_TEST(test_port_base_from_option_and_environment) {
    slurm_env("1", "2", "h", "2");
    pst_cluster *c = from_slurm(0, 30000, NULL, NULL);
    check_job(c, "ps", (const char *const[]){"h:30000", NULL});
    check_job(c, "worker", (const char *const[]){"h:30001", NULL});
    pst_cluster_free(c);
    setenv("PST_SLURM_PORT_BASE", "40000", 1);
    c = from_slurm(0, 0, NULL, NULL);
    check_job(c, "worker", (const char *const[]){"h:40001", NULL});
    pst_cluster_free(c);
    c = from_slurm(0, 30000, NULL, NULL); /* the option wins */
    check_job(c, "worker", (const char *const[]){"h:30001", NULL});
    pst_cluster_free(c);
}
END_TEST

START_TEST(test_num_ps_from_option_and_environment) {
    slurm_env("2", "4", "h", "4");
    setenv("PST_SLURM_PS", "2", 1);
    char type[16];
    int index;
    pst_cluster *c = from_slurm(0, 0, type, &index);
    ck_assert_int_eq(pst_cluster_num_tasks(c, "ps"), 2);
    ck_assert_str_eq(type, "worker");
    ck_assert_int_eq(index, 0);
    pst_cluster_free(c);
    c = from_slurm(3, 0, type, &index); /* the option wins */
    ck_assert_int_eq(pst_cluster_num_tasks(c, "ps"), 3);
    ck_assert_int_eq(pst_cluster_num_tasks(c, "worker"), 1);
    ck_assert_str_eq(type, "ps");
    ck_assert_int_eq(index, 2);
    pst_cluster_free(c);
}
END_TEST

/* Where srun says where the task is, it must agree with the block rule. */
START_TEST(test_node_name_and_local_id_agree) {
    slurm_env("3", "4", "a,b", "2,2");
    setenv("SLURMD_NODENAME", "b", 1);
    setenv("SLURM_LOCALID", "1", 1);
    char type[16];
    int index;
    pst_cluster *c = from_slurm(1, 0, type, &index);
    ck_assert_str_eq(type, "worker");
    ck_assert_int_eq(index, 2);
    pst_cluster_free(c);
}
END_TEST

START_TEST(test_cyclic_distribution_is_an_error) {
    slurm_env("1", "4", "a,b", "2,2");
    setenv("SLURMD_NODENAME", "b", 1); /* srun -m cyclic puts rank 1 on b */
    from_slurm_error(1, 0, "SLURMD_NODENAME 'b'");
    slurm_env("1", "4", "a,b", "2,2");
    setenv("SLURM_LOCALID", "0", 1);
    from_slurm_error(1, 0, "SLURM_LOCALID '0'");
}
END_TEST

START_TEST(test_missing_variables_are_named) {
    const char *names[] = {"SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST",
                           "SLURM_STEP_TASKS_PER_NODE"};
    for (int i = 0; i < 4; i++) {
        slurm_env("0", "2", "h", "2");
        unsetenv(names[i]);
        const char *m = from_slurm_error(0, 0, names[i]);
        ck_assert_msg(strstr(m, "is not set") && strstr(m, "srun"), "%s", m);
        slurm_env("0", "2", "h", "2");
        setenv(names[i], "", 1);
        from_slurm_error(0, 0, names[i]);
    }
}
END_TEST

START_TEST(test_malformed_numbers_are_named) {
    slurm_env("x", "3", "h", "3");
    from_slurm_error(0, 0, "SLURM_PROCID 'x' is not a whole number");
    slurm_env("-1", "3", "h", "3");
    from_slurm_error(0, 0, "SLURM_PROCID '-1'");
    slurm_env("3", "3", "h", "3");
    from_slurm_error(0, 0, "SLURM_PROCID 3 is not below SLURM_STEP_NUM_TASKS 3");
    slurm_env("0", "0", "h", "3");
    from_slurm_error(0, 0, "SLURM_STEP_NUM_TASKS '0'");
    slurm_env("0", "3 ", "h", "3");
    from_slurm_error(0, 0, "SLURM_STEP_NUM_TASKS '3 '");
    slurm_env("0", "3", "h", "3");
    setenv("PST_SLURM_PS", "two", 1);
    from_slurm_error(0, 0, "PST_SLURM_PS 'two'");
    slurm_env("0", "3", "h", "3");
    setenv("PST_SLURM_PORT_BASE", "70000", 1);
    from_slurm_error(0, 0, "PST_SLURM_PORT_BASE '70000'");
}
END_TEST

START_TEST(test_malformed_lists_are_named) {
    slurm_env("0", "3", "n[1-3", "3");
    from_slurm_error(0, 0, "SLURM_STEP_NODELIST 'n[1-3'");
    slurm_env("0", "3", "n1", "3(x");
    from_slurm_error(0, 0, "SLURM_STEP_TASKS_PER_NODE '3(x'");
}
END_TEST

START_TEST(test_counts_that_do_not_add_up) {
    slurm_env("0", "4", "n[1-3]", "2,2");
    const char *m = from_slurm_error(0, 0, "SLURM_STEP_TASKS_PER_NODE '2,2' gives task counts "
                                           "for 2 hosts");
    ck_assert_msg(strstr(m, "SLURM_STEP_NODELIST 'n[1-3]' has 3"), "%s", m);
    slurm_env("0", "5", "n[1-2]", "3(x2)");
    from_slurm_error(0, 0, "SLURM_STEP_TASKS_PER_NODE '3(x2)' adds up to 6 tasks, but "
                           "SLURM_STEP_NUM_TASKS is 5");
    slurm_env("0", "3", "h", "3");
    from_slurm_error(3, 0, "3 PS (--ps or PST_SLURM_PS) leave no worker");
    slurm_env("0", "2", "n1,n1", "1,1");
    from_slurm_error(0, 0, "names host 'n1' twice");
}
END_TEST

START_TEST(test_ports_past_65535) {
    slurm_env("0", "3", "h", "3");
    from_slurm_error(0, 65534, "port base 65534");
    pst_cluster *c = from_slurm(0, 65533, NULL, NULL); /* 65533..65535 fit */
    check_job(c, "worker", (const char *const[]){"h:65534", "h:65535", NULL});
    pst_cluster_free(c);
    from_slurm_error(-1, 0, "the number of PS -1 is negative");
}
END_TEST

/* ---- the binaries' flag ----------------------------------------------------------------- */

START_TEST(test_main_sets_tf_config_and_removes_flags) {
    slurm_env("1", "3", "vm", "3");
    char *argv[] = {"pstrain-worker", "--model", "mlp", "--cluster-from", "slurm", "--ps", "1",
                    "--port-base", "9000", "--steps", "5", NULL};
    int argc = 11;
    pst_status st = {0};
    ck_assert_int_eq(pst_cluster_slurm_main(&argc, argv, "worker", &st), 1);
    ck_assert_int_eq(argc, 5);
    const char *rest[] = {"pstrain-worker", "--model", "mlp", "--steps", "5"};
    for (int i = 0; i < 5; i++) ck_assert_str_eq(argv[i], rest[i]);
    ck_assert_ptr_null(argv[5]);
    char type[16];
    int index = -1;
    pst_cluster *c = pst_cluster_from_env("TF_CONFIG", type, sizeof type, &index, &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    ck_assert_str_eq(type, "worker");
    ck_assert_int_eq(index, 0);
    check_job(c, "ps", (const char *const[]){"vm:9000", NULL});
    check_job(c, "worker", (const char *const[]){"vm:9001", "vm:9002", NULL});
    pst_cluster_free(c);
}
END_TEST

START_TEST(test_main_without_the_flag_changes_nothing) {
    slurm_env("1", "3", "vm", "3");
    char *argv[] = {"pstrain-ps", "--ps", "2", NULL};
    int argc = 3;
    pst_status st = {0};
    ck_assert_int_eq(pst_cluster_slurm_main(&argc, argv, "ps", &st), 0);
    ck_assert_int_eq(argc, 3);
    ck_assert_str_eq(argv[1], "--ps");
    ck_assert_ptr_null(getenv("TF_CONFIG"));
}
END_TEST

START_TEST(test_main_rank_of_the_other_job) {
    slurm_env("2", "3", "vm", "3");
    char *argv[] = {"pstrain-ps", "--cluster-from", "slurm", NULL};
    int argc = 3;
    pst_status st = {0};
    ck_assert_int_eq(pst_cluster_slurm_main(&argc, argv, "ps", &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "SLURM_PROCID 2 is worker task 1") &&
                  strstr(st.msg, "runs ps tasks"), "%s", st.msg);
    ck_assert_int_eq(argc, 3);
    ck_assert_ptr_null(getenv("TF_CONFIG"));
}
END_TEST

START_TEST(test_main_flag_errors) {
    slurm_env("0", "3", "vm", "3");
    struct {
        char *argv[6];
        int argc;
        const char *want;
    } cases[] = {
        {{"p", "--cluster-from", "tf", NULL}, 3, "--cluster-from: 'tf' is not a source"},
        {{"p", "--cluster-from", NULL}, 2, "--cluster-from: ''"},
        {{"p", "--cluster-from", "slurm", "--ps", "0", NULL}, 5, "--ps: '0'"},
        {{"p", "--cluster-from", "slurm", "--ps", NULL}, 4, "--ps: ''"},
        {{"p", "--cluster-from", "slurm", "--port-base", "x", NULL}, 5, "--port-base: 'x'"},
        {{"p", "--cluster", "c.json", "--cluster-from", "slurm", NULL}, 5, "--cluster and"},
        {{"p", "--cluster-from", "slurm", "--task", "1", NULL}, 5, "--task and"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pst_status st = {0};
        int argc = cases[i].argc;
        ck_assert_int_eq(pst_cluster_slurm_main(&argc, cases[i].argv, "ps", &st), PST_E_INVALID);
        ck_assert_msg(strstr(st.msg, cases[i].want), "case %zu: %s", i, st.msg);
        ck_assert_int_eq(argc, cases[i].argc);
    }
    /* Slurm's errors come through unchanged. */
    unsetenv("SLURM_STEP_NODELIST");
    char *argv[] = {"p", "--cluster-from", "slurm", NULL};
    int argc = 3;
    pst_status st = {0};
    ck_assert_int_eq(pst_cluster_slurm_main(&argc, argv, "ps", &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "SLURM_STEP_NODELIST is not set"), "%s", st.msg);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cluster_slurm");
    TCase *tc = tcase_create("cluster_slurm");
    tcase_add_test(tc, test_hostlist_plain_names);
    tcase_add_test(tc, test_hostlist_range_and_single);
    tcase_add_test(tc, test_hostlist_several_ranges_in_brackets);
    tcase_add_test(tc, test_hostlist_padding_follows_first_number);
    tcase_add_test(tc, test_hostlist_suffix_and_two_brackets);
    tcase_add_test(tc, test_hostlist_errors);
    tcase_add_test(tc, test_tasks_per_node_expansion);
    tcase_add_test(tc, test_tasks_per_node_errors);
    tcase_add_test(tc, test_one_host_three_tasks);
    tcase_add_test(tc, test_several_hosts_sorted_with_counts);
    tcase_add_test(tc, test_numbers_sort_as_numbers);
    tcase_add_test(tc, test_port_base_from_option_and_environment);
    tcase_add_test(tc, test_num_ps_from_option_and_environment);
    tcase_add_test(tc, test_node_name_and_local_id_agree);
    tcase_add_test(tc, test_cyclic_distribution_is_an_error);
    tcase_add_test(tc, test_missing_variables_are_named);
    tcase_add_test(tc, test_malformed_numbers_are_named);
    tcase_add_test(tc, test_malformed_lists_are_named);
    tcase_add_test(tc, test_counts_that_do_not_add_up);
    tcase_add_test(tc, test_ports_past_65535);
    tcase_add_test(tc, test_main_sets_tf_config_and_removes_flags);
    tcase_add_test(tc, test_main_without_the_flag_changes_nothing);
    tcase_add_test(tc, test_main_rank_of_the_other_job);
    tcase_add_test(tc, test_main_flag_errors);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
