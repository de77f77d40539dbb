/* The coordination service: registration with actual addresses, the cluster once complete,
 * heartbeats with progress, incarnations and epochs, stop requests, leaving, and refusal of
 * strangers. Real gRPC on 127.0.0.1:0 (Check forks each test, so gRPC starts inside it). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coord.h"
#include "security.h"
#include "testutil.h"

#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static pst_security *sec(const char *token) {
    pst_status st = {0};
    pst_security *s = pst_security_new(&(pst_security_opts){.token = token, .tls_dir = ""}, &st);
    ck_assert_msg(s != NULL, "%s", st.msg);
    return s;
}

static pst_coord *coord(const pst_security *s, int ps, int workers) {
    pst_status st = {0};
    pst_coord *co = pst_coord_new(&(pst_coord_opts){.bind = "127.0.0.1:0", .security = s,
                                                    .jobs = {"ps", "worker"},
                                                    .expected = {ps, workers}, .n_jobs = 2,
                                                    .heartbeat_timeout_ms = 400},
                                  &st);
    ck_assert_msg(co != NULL, "%s", st.msg);
    return co;
}

static pst_coord_client *client(pst_coord *co, const pst_security *s) {
    pst_status st = {0};
    pst_coord_client *c = pst_coord_client_new(pst_coord_address(co), s, &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    return c;
}

/* Tasks register the addresses they bound; the cluster is given only once every slot has one,
 * in job order with actual addresses. */
START_TEST(test_register_and_cluster) {
    pst_security *s = sec(TOKEN);
    pst_coord *co = coord(s, 1, 2);
    pst_coord_client *c = client(co, s);
    pst_status st = {0};
    pst_coord_id ps0 = {"ps", 0, 11}, w0 = {"worker", 0, 21}, w1 = {"worker", 1, 31};
    int64_t epoch = 0;
    ck_assert_msg(pst_coord_register(c, &ps0, "127.0.0.1:5000", 5000, &epoch, &st) == 0, "%s", st.msg);
    ck_assert_msg(pst_coord_register(c, &w1, "127.0.0.1:5002", 5000, &epoch, &st) == 0, "%s", st.msg);
    char *json = NULL;
    ck_assert_int_eq(pst_coord_wait_cluster(c, &w1, 300, &json, &epoch, &st), PST_E_DEADLINE);
    ck_assert_msg(strstr(st.msg, "/job:worker/task:0") != NULL, "%s", st.msg);
    ck_assert_ptr_null(pst_coord_cluster_json(co));
    pst_status_clear(&st);
    ck_assert_msg(pst_coord_register(c, &w0, "127.0.0.1:5001", 5000, &epoch, &st) == 0, "%s", st.msg);
    ck_assert_msg(pst_coord_wait_cluster(c, &w1, 2000, &json, &epoch, &st) == 0, "%s", st.msg);
    ck_assert_str_eq(json, "{\"ps\": [\"127.0.0.1:5000\"], \"worker\": [\"127.0.0.1:5001\", "
                           "\"127.0.0.1:5002\"]}");
    free(json);
    pst_coord_client_free(c);
    pst_coord_free(co);
    pst_security_free(s);
}
END_TEST

/* Heartbeats carry progress into the launcher's view; a task that registers again is a new
 * incarnation (epoch bumped, registrations counted) and the old one is told it is superseded. */
START_TEST(test_heartbeats_and_incarnations) {
    pst_security *s = sec(TOKEN);
    pst_coord *co = coord(s, 1, 1);
    pst_coord_client *c = client(co, s);
    pst_status st = {0};
    pst_coord_id ps0 = {"ps", 0, 1}, w0 = {"worker", 0, 2};
    int64_t e1 = 0, e2 = 0;
    ck_assert_int_eq(pst_coord_register(c, &ps0, "127.0.0.1:6000", 5000, NULL, &st), 0);
    ck_assert_int_eq(pst_coord_register(c, &w0, "127.0.0.1:6001", 5000, &e1, &st), 0);
    pst_coord_reply r;
    pst_coord_progress p = {.global_step = 120, .total_steps = 2000, .loss = 0.5,
                            .examples_per_sec = 812.5, .last_checkpoint = "ckpt/model.ckpt-100"};
    ck_assert_msg(pst_coord_heartbeat(c, &w0, &p, "running", &r, &st) == 0, "%s", st.msg);
    ck_assert(r.member && !r.superseded && !r.stop);
    pst_coord_view v;
    ck_assert_int_eq(pst_coord_snapshot(co, &v), 0);
    ck_assert_int_eq(v.n, 2);
    ck_assert(v.complete);
    ck_assert_int_eq(v.members[1].global_step, 120);
    ck_assert_double_eq(v.members[1].examples_per_sec, 812.5);
    ck_assert_str_eq(v.members[1].last_checkpoint, "ckpt/model.ckpt-100");
    ck_assert_str_eq(v.members[1].state_text, "running");
    pst_coord_view_destroy(&v);
    pst_coord_id w0b = {"worker", 0, 3}; /* restarted: new incarnation, new port */
    ck_assert_int_eq(pst_coord_register(c, &w0b, "127.0.0.1:6002", 5000, &e2, &st), 0);
    ck_assert_int_gt(e2, e1);
    ck_assert_int_eq(pst_coord_heartbeat(c, &w0, &p, "running", &r, &st), 0);
    ck_assert(r.superseded);
    ck_assert_int_eq(pst_coord_snapshot(co, &v), 0);
    ck_assert_int_eq(v.members[1].registrations, 2);
    ck_assert_str_eq(v.members[1].address, "127.0.0.1:6002");
    pst_coord_view_destroy(&v);
    /* Silent after the heartbeat timeout; a process end reported by the launcher fails it. */
    usleep(600 * 1000);
    ck_assert_int_eq(pst_coord_snapshot(co, &v), 0);
    ck_assert_int_eq(v.members[0].state, PST_MEMBER_SILENT);
    pst_coord_view_destroy(&v);
    pst_coord_task_exited(co, "worker", 0, 2, 1, "old incarnation"); /* stale: ignored */
    pst_coord_task_exited(co, "ps", 0, 1, 1, "killed by signal 9");
    ck_assert_int_eq(pst_coord_snapshot(co, &v), 0);
    ck_assert_int_eq(v.members[0].state, PST_MEMBER_FAILED);
    ck_assert_str_eq(v.members[0].reason, "killed by signal 9");
    ck_assert_int_ne(v.members[1].state, PST_MEMBER_FAILED);
    pst_coord_view_destroy(&v);
    pst_coord_client_free(c);
    pst_coord_free(co);
    pst_security_free(s);
}
END_TEST

/* A stop request reaches tasks in heartbeat replies; leaving marks done or failed with the
 * reason; scaling changes the epoch and the expected slots. */
START_TEST(test_stop_leave_scale) {
    pst_security *s = sec(TOKEN);
    pst_coord *co = coord(s, 1, 1);
    pst_coord_client *c = client(co, s);
    pst_status st = {0};
    pst_coord_id ps0 = {"ps", 0, 1}, w0 = {"worker", 0, 2};
    ck_assert_int_eq(pst_coord_register(c, &ps0, "127.0.0.1:7000", 5000, NULL, &st), 0);
    ck_assert_int_eq(pst_coord_register(c, &w0, "127.0.0.1:7001", 5000, NULL, &st), 0);
    pst_coord_request_stop(co);
    pst_coord_reply r;
    ck_assert_int_eq(pst_coord_heartbeat(c, &w0, NULL, "running", &r, &st), 0);
    ck_assert(r.stop);
    ck_assert_int_eq(pst_coord_leave(c, &w0, 1, "NaN loss at step 7", &st), 0);
    pst_coord_view v;
    ck_assert_int_eq(pst_coord_snapshot(co, &v), 0);
    ck_assert_int_eq(v.members[1].state, PST_MEMBER_FAILED);
    ck_assert_str_eq(v.members[1].reason, "NaN loss at step 7");
    int64_t e = v.epoch;
    pst_coord_view_destroy(&v);
    ck_assert_int_eq(pst_coord_set_expected(co, "worker", 3, &st), 0);
    ck_assert_int_eq(pst_coord_snapshot(co, &v), 0);
    ck_assert_int_eq(v.n, 4);
    /* The job formed: new worker slots are not waited for (elastic), new PS slots are. */
    ck_assert(v.complete);
    ck_assert_int_gt(v.epoch, e);
    pst_coord_view_destroy(&v);
    ck_assert_int_eq(pst_coord_set_expected(co, "ps", 2, &st), 0);
    ck_assert_int_eq(pst_coord_snapshot(co, &v), 0);
    ck_assert(!v.complete);
    pst_coord_view_destroy(&v);
    ck_assert_int_eq(pst_coord_set_expected(co, "chief", 1, &st), PST_E_NOT_FOUND);
    pst_coord_client_free(c);
    pst_coord_free(co);
    pst_security_free(s);
}
END_TEST

/* Elastic membership: Join reserves a worker slot and hands out the job's settings; a formed
 * job's cluster gives empty worker slots a placeholder; leave requests reach the worker;
 * vacated slots are reused; the job is finished once the chief left and no worker runs. */
START_TEST(test_join_leave_vacate) {
    pst_security *s = sec(TOKEN);
    pst_coord *co = coord(s, 1, 1);
    pst_coord_client *c = client(co, s);
    pst_status st = {0};
    ck_assert_int_eq(pst_coord_set_job_json(co, "{\"model\": \"mlp\"}", &st), 0);
    pst_coord_id ps0 = {"ps", 0, 1}, w0 = {"worker", 0, 2};
    ck_assert_int_eq(pst_coord_register(c, &ps0, "127.0.0.1:7000", 5000, NULL, &st), 0);
    ck_assert_int_eq(pst_coord_register(c, &w0, "127.0.0.1:7001", 5000, NULL, &st), 0);
    char *json = pst_coord_cluster_json(co);
    ck_assert_ptr_nonnull(json);
    free(json);
    int index = -1;
    int64_t epoch = 0;
    char *settings = NULL;
    ck_assert_int_eq(pst_coord_join(c, "worker", 5000, &index, &epoch, &settings, &st), 0);
    ck_assert_int_eq(index, 1);
    ck_assert_str_eq(settings, "{\"model\": \"mlp\"}");
    free(settings);
    /* Reserved, not registered: a placeholder in the cluster, nobody waits for it. */
    json = pst_coord_cluster_json(co);
    ck_assert_ptr_nonnull(json);
    ck_assert_msg(strstr(json, "\"127.0.0.1:7001\", \"127.0.0.1:0\""), "%s", json);
    free(json);
    pst_coord_id w1 = {"worker", 1, 3};
    ck_assert_int_eq(pst_coord_register(c, &w1, "127.0.0.1:7002", 5000, NULL, &st), 0);
    pst_coord_reply r;
    ck_assert_int_eq(pst_coord_heartbeat(c, &w1, NULL, "running", &r, &st), 0);
    ck_assert_int_eq(r.workers, 2);
    ck_assert(!r.leave && !r.job_finished);
    ck_assert_msg(strncmp(r.members, "0:2:", 4) == 0 && strstr(r.members, ",1:3:"), "%s",
                  r.members);
    ck_assert_int_eq(pst_coord_request_leave(co, "worker", 1), 0);
    ck_assert_int_eq(pst_coord_heartbeat(c, &w1, NULL, "running", &r, &st), 0);
    ck_assert(r.leave);
    ck_assert_int_eq(pst_coord_leave(c, &w1, 0, "left the job", &st), 0);
    pst_coord_vacate(co, "worker", 1);
    /* The vacant slot is the next one reserved. */
    ck_assert_int_eq(pst_coord_reserve(co, "worker", &st), 1);
    /* The chief leaves cleanly and no worker runs: finished. */
    ck_assert_int_eq(pst_coord_leave(c, &w0, 0, "done", &st), 0);
    ck_assert_int_eq(pst_coord_heartbeat(c, &ps0, NULL, "running", &r, &st), 0);
    ck_assert(r.job_finished);
    ck_assert_int_eq(r.workers, 0);
    pst_coord_client_free(c);
    pst_coord_free(co);
    pst_security_free(s);
}
END_TEST

/* Strangers change nothing: no token or a wrong one is refused; a member id that is not a slot
 * of the job is an error naming it. */
START_TEST(test_strangers_refused) {
    pst_security *s = sec(TOKEN);
    pst_security *other = sec("fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210");
    pst_coord *co = coord(s, 1, 1);
    pst_status st = {0};
    pst_coord_client *bad = client(co, other), *good = client(co, s);
    pst_coord_id ps0 = {"ps", 0, 1};
    ck_assert_int_eq(pst_coord_register(bad, &ps0, "127.0.0.1:8000", 2000, NULL, &st),
                     PST_E_UNAUTHENTICATED);
    pst_status_clear(&st);
    pst_coord_id w5 = {"worker", 5, 1};
    ck_assert_int_eq(pst_coord_register(good, &w5, "127.0.0.1:8001", 2000, NULL, &st),
                     PST_E_NOT_FOUND);
    ck_assert_msg(strstr(st.msg, "/job:worker/task:5") != NULL, "%s", st.msg);
    pst_coord_view v;
    ck_assert_int_eq(pst_coord_snapshot(co, &v), 0);
    ck_assert_str_eq(v.members[0].address, "");
    ck_assert_int_eq(v.epoch, 1);
    pst_coord_view_destroy(&v);
    pst_coord_client_free(bad);
    pst_coord_client_free(good);
    pst_coord_free(co);
    pst_security_free(s);
    pst_security_free(other);
}
END_TEST

int main(void) {
    Suite *s = suite_create("coord");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_register_and_cluster);
    tcase_add_test(tc, test_heartbeats_and_incarnations);
    tcase_add_test(tc, test_stop_leave_scale);
    tcase_add_test(tc, test_join_leave_vacate);
    tcase_add_test(tc, test_strangers_refused);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
