/* Work pool: jobs run on at most max_threads threads, at most max_queued wait, the rest are
 * refused at once; freeing the pool runs what it accepted. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "workpool.h"

/* Jobs that block until the test opens the gate. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    atomic_int started, finished;
} gate;

static void gated_job(void *arg) {
    gate *g = arg;
    atomic_fetch_add(&g->started, 1);
    pthread_mutex_lock(&g->mu);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_add(&g->finished, 1);
}

static void open_gate(gate *g) {
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void wait_started(gate *g, int n) {
    for (int i = 0; i < 2000 && atomic_load(&g->started) < n; i++) usleep(1000);
    ck_assert_int_eq(atomic_load(&g->started), n);
}

START_TEST(test_threads_bounded_queue_then_refused) {
    gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pst_status st = {0};
    pst_workpool *p = pst_workpool_new(2, 3, &st);
    ck_assert_msg(p != NULL, "%s", st.msg);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(pst_workpool_submit(p, gated_job, &g, &st) == 0, "job %d: %s", i, st.msg);
    wait_started(&g, 2); /* two run, three wait */
    ck_assert_int_eq(pst_workpool_threads(p), 2);
    ck_assert_int_eq(pst_workpool_pending(p), 5);
    ck_assert_int_eq(pst_workpool_submit(p, gated_job, &g, &st), PST_E_EXHAUSTED);
    ck_assert_msg(strstr(st.msg, "2 jobs run and 3 wait") != NULL, "%s", st.msg);
    open_gate(&g);
    pst_workpool_free(p);
    ck_assert_int_eq(atomic_load(&g.finished), 5); /* the refused one never ran */
}
END_TEST

START_TEST(test_no_queue_refuses_when_busy) {
    gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pst_status st = {0};
    pst_workpool *p = pst_workpool_new(1, 0, &st);
    ck_assert_int_eq(pst_workpool_submit(p, gated_job, &g, &st), 0);
    ck_assert_int_eq(pst_workpool_submit(p, gated_job, &g, &st), PST_E_EXHAUSTED);
    open_gate(&g);
    pst_workpool_free(p);
    ck_assert_int_eq(atomic_load(&g.finished), 1);
}
END_TEST

static void count_job(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

/* Threads are reused: many short jobs one after another need one thread. */
START_TEST(test_threads_start_on_demand_and_are_reused) {
    atomic_int n = 0;
    pst_status st = {0};
    pst_workpool *p = pst_workpool_new(8, 0, &st);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(pst_workpool_submit(p, count_job, &n, &st), 0);
        while (pst_workpool_pending(p) > 0) usleep(100);
    }
    ck_assert_int_eq(pst_workpool_threads(p), 1);
    pst_workpool_free(p);
    ck_assert_int_eq(atomic_load(&n), 100);
}
END_TEST

START_TEST(test_free_runs_queued_jobs) {
    gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .open = 1};
    pst_status st = {0};
    pst_workpool *p = pst_workpool_new(1, 50, &st);
    for (int i = 0; i < 51; i++) ck_assert_int_eq(pst_workpool_submit(p, gated_job, &g, &st), 0);
    pst_workpool_free(p);
    ck_assert_int_eq(atomic_load(&g.finished), 51);
}
END_TEST

START_TEST(test_limits_checked) {
    pst_status st = {0};
    ck_assert_ptr_null(pst_workpool_new(0, 1, &st));
    ck_assert_int_eq(st.code, PST_E_INVALID);
    pst_workpool_free(NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("workpool");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_threads_bounded_queue_then_refused);
    tcase_add_test(tc, test_no_queue_refuses_when_busy);
    tcase_add_test(tc, test_threads_start_on_demand_and_are_reused);
    tcase_add_test(tc, test_free_runs_queued_jobs);
    tcase_add_test(tc, test_limits_checked);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
