/* Readiness: the chief initializes, keeps what the PS hold, or restores the newest checkpoint;
 * the other workers wait until every variable is initialized on its PS, or give up naming one
 * that is not. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist_run.h"
#include "dist_save.h"
#include "ps_vars.h"
#include "readiness.h"
#include "task_client.h"
#include "testdist.h"
#include "testutil.h"

/* Two PS, two workers, the linear model placed for worker k. */
typedef struct fixture {
    pst_test_job j;
    pst_test_model m[2];
    pst_ps_vars map[2];
    pst_dist_run *init;
} fixture;

static void setup(fixture *f) {
    pst_test_job_start(&f->j, 2, 2, "inproc", NULL);
    pst_status st = {0};
    for (int k = 0; k < 2; k++) {
        char dev[64];
        snprintf(dev, sizeof dev, "/job:worker/task:%d", k);
        f->m[k] = pst_test_linear_model(2, dev);
        ck_assert_msg(pst_ps_vars_collect(f->m[k].g, 2, &f->map[k], &st) == 0, "%s", st.msg);
    }
    f->init = pst_dist_run_new(f->j.w[0], f->m[0].g, 0, NULL, 1, &f->m[0].init, &st);
    ck_assert_msg(f->init != NULL, "%s", st.msg);
}

static void teardown(fixture *f) {
    pst_dist_run_free(f->init);
    for (int k = 0; k < 2; k++) {
        pst_ps_vars_destroy(&f->map[k]);
        pst_graph_free(f->m[k].g);
    }
    pst_test_job_stop(&f->j);
}

static int progress_calls;
static void progress(void *ctx, int ready, int total, const char *missing) {
    (void)ctx;
    ck_assert_int_eq(total, 2);
    ck_assert_int_lt(ready, total);
    ck_assert_ptr_nonnull(strstr(missing, " on /job:ps/task:"));
    progress_calls++;
}

/* Nothing initialized: a worker waits, reports progress, and gives up naming a variable. */
START_TEST(test_wait_times_out_naming_a_variable) {
    fixture f;
    setup(&f);
    pst_status st = {0};
    int total = 0;
    char missing[512];
    ck_assert_int_eq(pst_readiness_count(f.j.w[1], &f.map[1], &total, missing, sizeof missing, &st),
                     0);
    ck_assert_int_eq(total, 2);
    ck_assert_str_eq(missing, "w on /job:ps/task:0");
    progress_calls = 0;
    ck_assert_int_eq(pst_readiness_wait(f.j.w[1], &f.map[1], 300, progress, NULL, &st),
                     PST_E_DEADLINE);
    ck_assert_msg(strstr(st.msg, "w on /job:ps/task:0") != NULL, "%s", st.msg);
    ck_assert_msg(strstr(st.msg, "2 of 2 variables uninitialized") != NULL, "%s", st.msg);
    ck_assert_int_ge(progress_calls, 1);
    teardown(&f);
}
END_TEST

static void *chief_later(void *arg) {
    fixture *f = arg;
    usleep(300 * 1000);
    pst_status st = {0};
    pst_readiness_result res;
    ck_assert_msg(pst_readiness_prepare(f->j.w[0], &f->map[0], NULL, 0, f->init, &res, &st) == 0,
                  "%s", st.msg);
    ck_assert_int_eq(res.how, PST_READY_INITIALIZED);
    return NULL;
}

/* The chief initializes while the other waits: the wait ends; a second prepare keeps the PS's
 * values instead of initializing again. */
START_TEST(test_chief_initializes_then_keeps) {
    fixture f;
    setup(&f);
    pthread_t th;
    pthread_create(&th, NULL, chief_later, &f);
    pst_status st = {0};
    ck_assert_msg(pst_readiness_wait(f.j.w[1], &f.map[1], 10000, NULL, NULL, &st) == 0, "%s",
                  st.msg);
    pthread_join(th, NULL);
    /* a value the initializer would overwrite */
    pst_tensor *b = pst_tensor_new(PST_FLOAT, pst_shape_1d(3), &st);
    memset(b->data, 0, b->nbytes);
    ck_assert_int_eq(pst_task_client_push_variable(f.j.w[0], "/job:ps/task:1", "b", b, &st), 0);
    pst_readiness_result res;
    ck_assert_msg(pst_readiness_prepare(f.j.w[0], &f.map[0], NULL, 0, f.init, &res, &st) == 0, "%s",
                  st.msg);
    ck_assert_int_eq(res.how, PST_READY_KEPT);
    pst_tensor *back = pst_task_client_pull_variable(f.j.w[0], "/job:ps/task:1", "b", &st);
    pst_test_assert_close(back, b, 0);
    pst_tensor_unref(back);
    pst_tensor_unref(b);
    teardown(&f);
}
END_TEST

/* With a checkpoint directory holding a checkpoint, the chief restores it onto the PS of a new
 * job; an empty directory (made when missing) means initialize. */
START_TEST(test_chief_restores_newest_checkpoint) {
    char dir[] = "/tmp/pst_readiness_XXXXXX", sub[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/ckpt", dir);
    fixture f;
    setup(&f);
    pst_status st = {0};
    pst_readiness_result res;
    ck_assert_msg(pst_readiness_prepare(f.j.w[0], &f.map[0], sub, 0, f.init, &res, &st) == 0, "%s",
                  st.msg);
    ck_assert_int_eq(res.how, PST_READY_INITIALIZED);
    pst_tensor *w = pst_task_client_pull_variable(f.j.w[0], "/job:ps/task:0", "w", &st);
    ck_assert_msg(w != NULL, "%s", st.msg);
    pst_dist_save_opts o = {.dir = sub};
    pst_dist_save *ds = pst_dist_save_new(f.j.w[0], f.m[0].g, &f.map[0], &o, &st);
    ck_assert_msg(ds && pst_dist_save_write(ds, 3, NULL, 0, &st) == 0, "%s", st.msg);
    pst_dist_save_free(ds);
    teardown(&f);

    fixture g;
    setup(&g);
    ck_assert_msg(pst_readiness_prepare(g.j.w[0], &g.map[0], sub, 0, g.init, &res, &st) == 0, "%s",
                  st.msg);
    ck_assert_int_eq(res.how, PST_READY_RESTORED);
    ck_assert_ptr_nonnull(strstr(res.checkpoint, "/ckpt/model.ckpt-3"));
    pst_tensor *w2 = pst_task_client_pull_variable(g.j.w[0], "/job:ps/task:0", "w", &st);
    ck_assert_msg(w2 != NULL, "%s", st.msg);
    pst_test_assert_close(w2, w, 0);
    ck_assert_msg(pst_readiness_wait(g.j.w[1], &g.map[1], 1000, NULL, NULL, &st) == 0, "%s",
                  st.msg);
    pst_tensor_unref(w);
    pst_tensor_unref(w2);
    teardown(&g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("readiness");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_wait_times_out_naming_a_variable);
    tcase_add_test(tc, test_chief_initializes_then_keeps);
    tcase_add_test(tc, test_chief_restores_newest_checkpoint);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
