/* Elastic jobs with real processes: pstrain scale grows and shrinks a launched job while it
 * trains, workers join by hand with the job's token (and are refused without it). */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launchutil.h"
#include "testutil.h"

/* An MLP job (async unless extra says), 2 PS, Adam 1e-3 as test_launch's bar. */
static const char *mlp_job(const char *name, int workers, int steps, const char *extra) {
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"name\": \"%s\", \"cluster\": {\"ps\": 2, \"worker\": %d}, \"run_dir\": "
             "\"%s/runs\", \"model\": \"mlp\", \"optimizer\": \"adam\", \"learning_rate\": 0.001,"
             " \"batch\": 100, \"steps\": %d, \"save_every_steps\": 2000, \"threads\": 1,"
             " \"heartbeat_ms\": 200, \"restarts\": {\"max\": 3, \"backoff_ms\": 200}%s}",
             name, workers, pst_lu_dir, steps, extra);
    return pst_lu_write_job(name, buf);
}

static void scale(const char *run, const char *n) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s scale %s --workers %s >> %s/scale.log 2>&1", pst_lu_pstrain,
             run, n, pst_lu_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* state.json: the running worker members, and whether worker w trained (a global step). */
static int workers_running(const cJSON *st, void *n) {
    return pst_lu_num(st, "workers") == *(int *)n;
}
static int trained(const cJSON *st, const char *task) {
    return pst_lu_num(pst_lu_task_of(st, task), "global_step") > 0;
}
static int three_trained(const cJSON *st, void *ctx) {
    (void)ctx;
    return pst_lu_num(st, "workers") == 3 && trained(st, "worker1") && trained(st, "worker2");
}
static int two_left(const cJSON *st, void *ctx) {
    (void)ctx;
    return strcmp(pst_lu_str(pst_lu_task_of(st, "worker1"), "state"), "left") == 0 &&
           strcmp(pst_lu_str(pst_lu_task_of(st, "worker2"), "state"), "left") == 0;
}

static double accuracy_in(const char *path) {
    char *s = pst_lu_slurp(path);
    const char *a = s ? strstr(s, "test_accuracy=") : NULL;
    double acc = a ? atof(a + 14) : -1;
    free(s);
    return acc;
}

/* A job started with 1 worker, scaled to 3 and back to 1 while it trains, completes with the
 * MLP's accuracy bar; the added workers trained and left cleanly. */
START_TEST(test_async_scale_1_to_3_to_1) {
    pst_lu_setup();
    const char *j = mlp_job("scale", 1, 6000, "");
    char log[256], run[512], path[1024];
    snprintf(log, sizeof log, "%s/launch.log", pst_lu_dir);
    pid_t p = pst_lu_start_pstrain(log, "launch", j, NULL, NULL, NULL);
    pst_lu_wait_run_dir(run, sizeof run, 30);
    cJSON *st = pst_lu_wait_step(run, 300, 240);
    ck_assert_msg(st != NULL, "the job did not reach step 300");
    ck_assert_double_eq(pst_lu_num(st, "workers"), 1);
    double epoch0 = pst_lu_num(st, "epoch");
    cJSON_Delete(st);
    scale(run, "3");
    st = pst_lu_wait_state(run, three_trained, NULL, 240);
    ck_assert_msg(st != NULL, "3 workers never trained together");
    ck_assert_double_gt(pst_lu_num(st, "epoch"), epoch0);
    ck_assert_double_lt(pst_lu_num(st, "global_step"), 6000);
    cJSON_Delete(st);
    scale(run, "1");
    st = pst_lu_wait_state(run, two_left, NULL, 240);
    ck_assert_msg(st != NULL, "worker1 and worker2 did not leave");
    int one = 1;
    ck_assert(workers_running(st, &one));
    cJSON_Delete(st);
    int rc = pst_lu_wait_exit(p, 500);
    char *out = pst_lu_slurp(log);
    ck_assert_msg(rc == 0, "launch exited %d:\n%s", rc, out);
    free(out);
    st = pst_lu_state_of(run);
    ck_assert_str_eq(pst_lu_str(st, "status"), "done");
    ck_assert_double_ge(pst_lu_num(st, "global_step"), 6000);
    cJSON_Delete(st);
    snprintf(path, sizeof path, "%s/logs/worker0.log", run);
    double acc = accuracy_in(path);
    ck_assert_msg(acc >= 0.86, "accuracy %.4f below the MLP bar 0.86", acc);
    for (int w = 1; w <= 2; w++) {
        snprintf(path, sizeof path, "%s/logs/worker%d.log", run, w);
        char *wl = pst_lu_slurp(path);
        ck_assert_msg(wl && strstr(wl, "first gradient applied") && strstr(wl, "left the job"),
                      "worker%d:\n%s", w, wl ? wl : "");
        free(wl);
    }
    pst_lu_teardown();
}
END_TEST

static int joined_running(const cJSON *st, void *ctx) {
    (void)ctx;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(st, "members"))
        if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(m, "launched")) &&
            strcmp(pst_lu_str(m, "state"), "running") == 0)
            return pst_lu_num(st, "workers") == 2;
    return 0;
}

static int count_members(const cJSON *st) {
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "members"));
}

/* A worker outside the launched cluster joins with the job's token and is counted; one
 * without the token, or with another job's, is refused and changes nothing. */
START_TEST(test_join_by_hand) {
    pst_lu_setup();
    const char *j = mlp_job("join", 1, 6000, "");
    char log[256], run[512], path[1024], worker[1024], coord[256];
    snprintf(log, sizeof log, "%s/launch.log", pst_lu_dir);
    snprintf(worker, sizeof worker, "%s/worker/pstrain-worker", getenv("PST_BINARY_DIR"));
    pid_t p = pst_lu_start_pstrain(log, "launch", j, NULL, NULL, NULL);
    pst_lu_wait_run_dir(run, sizeof run, 30);
    cJSON *st = pst_lu_wait_step(run, 200, 240);
    ck_assert_msg(st != NULL, "the job did not reach step 200");
    snprintf(coord, sizeof coord, "%s", pst_lu_str(st, "coordinator"));
    double epoch = pst_lu_num(st, "epoch");
    int members = count_members(st);
    cJSON_Delete(st);
    char *argv[] = {worker, "--join", coord, NULL};
    /* No token, then another job's token: refused before anything changes. */
    const char *tokens[2] = {NULL, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"};
    const char *why[2] = {"no job token", "wrong job token"};
    for (int k = 0; k < 2; k++) {
        char wlog[256];
        snprintf(wlog, sizeof wlog, "%s/refused%d.log", pst_lu_dir, k);
        int rc = pst_lu_wait_exit(pst_lu_spawn(wlog, argv, tokens[k]), 60);
        char *out = pst_lu_slurp(wlog);
        ck_assert_msg(rc == 1 && strstr(out, why[k]), "case %d: exit %d:\n%s", k, rc, out);
        free(out);
    }
    usleep(600 * 1000); /* state.json is rewritten every second */
    st = pst_lu_state_of(run);
    ck_assert_double_eq(pst_lu_num(st, "epoch"), epoch);
    ck_assert_int_eq(count_members(st), members);
    ck_assert_double_eq(pst_lu_num(st, "workers"), 1);
    cJSON_Delete(st);
    /* With the run's token: joins as worker 1, is counted, trains to the end. */
    snprintf(path, sizeof path, "%s/token", run);
    char *token = pst_lu_slurp(path);
    ck_assert_ptr_nonnull(token);
    token[strcspn(token, "\n")] = '\0';
    char jlog[256];
    snprintf(jlog, sizeof jlog, "%s/joined.log", pst_lu_dir);
    pid_t jp = pst_lu_spawn(jlog, argv, token);
    free(token);
    st = pst_lu_wait_state(run, joined_running, NULL, 240);
    ck_assert_msg(st != NULL, "the joined worker was never counted");
    ck_assert_double_gt(pst_lu_num(st, "epoch"), epoch);
    cJSON_Delete(st);
    int jrc = pst_lu_wait_exit(jp, 500);
    int rc = pst_lu_wait_exit(p, 500);
    char *out = pst_lu_slurp(log), *jout = pst_lu_slurp(jlog);
    ck_assert_msg(rc == 0, "launch exited %d:\n%s", rc, out);
    ck_assert_msg(jrc == 0 && strstr(jout, "as worker 1") && strstr(jout, "first gradient applied")
                  && strstr(jout, "test_accuracy="), "joined worker exited %d:\n%s", jrc, jout);
    free(out);
    free(jout);
    pst_lu_teardown();
}
END_TEST

int main(void) {
    Suite *s = suite_create("elastic");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_async_scale_1_to_3_to_1);
    tcase_add_test(tc, test_join_by_hand);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
