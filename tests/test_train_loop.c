/* The training driver with a fake trainer: save cadence (steps, seconds on an injected clock,
 * the final save once), evaluation cadence, a global step that jumps, errors that stop the
 * loop, and the lines it prints. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "train_loop.h"

#define MAX_EVENTS 64

/* A trainer whose steps move the global step by `jump` and the clock by `secs`. */
typedef struct fake {
    int64_t jump;     /* global steps per step (1 when 0): > 1 acts as other workers */
    double secs;      /* seconds per step on the fake clock */
    double t;         /* the fake clock */
    int64_t fail_at;  /* the local step (1-based) whose step fails, 0: none */
    int64_t nan_at;   /* the local step whose loss is NaN, 0: none */
    int64_t save_fail_at; /* the global step whose save fails, 0: none */
    int64_t calls;
    int64_t saved[MAX_EVENTS], evaluated[MAX_EVENTS];
    int n_saved, n_evaluated;
    int64_t gstep; /* as the fake "PS" holds it, when jump > 0 */
} fake;

static int fake_step(void *ctx, float *loss, int64_t *global_step, pst_status *st) {
    fake *f = ctx;
    f->calls++;
    f->t += f->secs;
    if (f->fail_at && f->calls == f->fail_at)
        return pst_status_set(st, PST_E_UNAVAILABLE, "step %lld: /job:ps/task:0 at 127.0.0.1:1 "
                              "is unreachable", (long long)f->calls);
    if (f->jump > 0) {
        f->gstep += f->jump;
        *global_step = f->gstep;
    }
    *loss = f->nan_at && f->calls == f->nan_at ? NAN : 1.0f / (float)f->calls;
    return 0;
}

static int fake_eval(void *ctx, double *acc, pst_status *st) {
    (void)st;
    fake *f = ctx;
    ck_assert_int_lt(f->n_evaluated, MAX_EVENTS);
    f->evaluated[f->n_evaluated++] = f->calls;
    *acc = 0.5;
    return 0;
}

static int fake_save(void *ctx, int64_t global_step, pst_status *st) {
    fake *f = ctx;
    if (f->save_fail_at && global_step == f->save_fail_at)
        return pst_status_set(st, PST_E_IO, "writing ckpt-%lld: disk full", (long long)global_step);
    ck_assert_int_lt(f->n_saved, MAX_EVENTS);
    f->saved[f->n_saved++] = global_step;
    return 0;
}

static double fake_clock(void *ctx) { return ((fake *)ctx)->t; }

static const pst_train_ops ops = {.step = fake_step, .evaluate = fake_eval, .save = fake_save};

/* Runs the loop over f with its output in a temporary file; returns the loop's status and the
 * output (static buffer) in *text. */
static int run(fake *f, pst_train_opts o, pst_train_stats *stats, pst_status *st,
               const char **text) {
    static char buf[16384];
    FILE *out = tmpfile();
    ck_assert_ptr_nonnull(out);
    o.out = out;
    o.clock = fake_clock;
    o.clock_ctx = f;
    if (f->jump > 0) f->gstep = o.first_step;
    int rc = pst_train_run(&ops, f, &o, stats, st);
    rewind(out);
    size_t n = fread(buf, 1, sizeof buf - 1, out);
    buf[n] = 0;
    fclose(out);
    if (text) *text = buf;
    return rc;
}

static void assert_steps(const int64_t *got, int n, const int64_t *want, int n_want,
                         const char *what) {
    ck_assert_msg(n == n_want, "%s: %d events, expected %d", what, n, n_want);
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "%s #%d: step %lld, expected %lld", what, i,
                      (long long)got[i], (long long)want[i]);
}

START_TEST(test_saves_every_n_steps_and_at_the_end) {
    fake f = {0};
    pst_train_stats s;
    pst_status st = {0};
    pst_train_opts o = {.steps = 10, .batch_size = 1, .save_every_steps = 3, .quiet = 1};
    ck_assert_int_eq(run(&f, o, &s, &st, NULL), 0);
    const int64_t want[] = {3, 6, 9, 10};
    assert_steps(f.saved, f.n_saved, want, 4, "saves");
    ck_assert_int_eq(s.saves, 4);
    ck_assert_int_eq(s.last_saved_step, 10);
    ck_assert_int_eq(s.steps, 10);
    ck_assert_int_eq(s.global_step, 10);
}
END_TEST

START_TEST(test_final_save_not_doubled) {
    fake f = {0};
    pst_train_stats s;
    pst_status st = {0};
    pst_train_opts o = {.steps = 9, .batch_size = 1, .save_every_steps = 3, .quiet = 1};
    ck_assert_int_eq(run(&f, o, &s, &st, NULL), 0);
    const int64_t want[] = {3, 6, 9};
    assert_steps(f.saved, f.n_saved, want, 3, "saves");
}
END_TEST

START_TEST(test_saves_every_n_seconds) {
    /* a step takes 1 s on the fake clock: 2.5 s pass first at step 3, then at 6 */
    fake f = {.secs = 1};
    pst_train_stats s;
    pst_status st = {0};
    pst_train_opts o = {.steps = 7, .batch_size = 10, .save_every_secs = 2.5, .quiet = 1};
    ck_assert_int_eq(run(&f, o, &s, &st, NULL), 0);
    const int64_t want[] = {3, 6, 7};
    assert_steps(f.saved, f.n_saved, want, 3, "saves");
    ck_assert_double_eq_tol(s.seconds, 7, 1e-9);
    ck_assert_double_eq_tol(s.examples_per_sec, 10, 1e-9);
}
END_TEST

START_TEST(test_steps_and_seconds_together_save_once_per_step) {
    /* every 4 steps and every 3 s (1 s a step): 3 s at step 3, the multiple 4 at step 4, 3 s
     * since then at step 7, the multiple 8, and the end at 9; never twice for one step */
    fake f = {.secs = 1};
    pst_train_stats s;
    pst_status st = {0};
    pst_train_opts o = {.steps = 9, .save_every_steps = 4, .save_every_secs = 3, .quiet = 1};
    ck_assert_int_eq(run(&f, o, &s, &st, NULL), 0);
    const int64_t want[] = {3, 4, 7, 8, 9};
    assert_steps(f.saved, f.n_saved, want, 5, "saves");
}
END_TEST

START_TEST(test_no_save_without_a_save_callback_or_after_no_step) {
    fake f = {0};
    pst_train_stats s;
    pst_status st = {0};
    /* resumed at the last step: nothing ran, nothing new to save */
    pst_train_opts o = {.first_step = 10, .steps = 10, .save_every_steps = 5, .quiet = 1};
    ck_assert_int_eq(run(&f, o, &s, &st, NULL), 0);
    ck_assert_int_eq(f.calls, 0);
    ck_assert_int_eq(f.n_saved, 0);
    ck_assert(isnan(s.last_loss));
    /* a distributed chief asks for the save anyway (its PS layout may differ) */
    o.always_save_at_end = 1;
    ck_assert_int_eq(run(&f, o, &s, &st, NULL), 0);
    const int64_t want[] = {10};
    assert_steps(f.saved, f.n_saved, want, 1, "saves");
    /* no save callback: no save */
    fake g = {0};
    pst_train_ops no_save = {.step = fake_step};
    pst_train_opts q = {.steps = 5, .save_every_steps = 1, .quiet = 1};
    FILE *out = tmpfile();
    q.out = out;
    ck_assert_int_eq(pst_train_run(&no_save, &g, &q, &s, &st), 0);
    fclose(out);
    ck_assert_int_eq(s.saves, 0);
    ck_assert_int_eq(s.steps, 5);
}
END_TEST

START_TEST(test_resumed_run_keeps_the_cadence_of_the_global_step) {
    fake f = {0};
    pst_train_stats s;
    pst_status st = {0};
    pst_train_opts o = {.first_step = 5, .steps = 13, .save_every_steps = 4, .eval_every = 3,
                        .quiet = 1};
    ck_assert_int_eq(run(&f, o, &s, &st, NULL), 0);
    const int64_t saves[] = {8, 12, 13}, evals[] = {1, 4, 7}; /* evals at global 6, 9, 12 */
    assert_steps(f.saved, f.n_saved, saves, 3, "saves");
    assert_steps(f.evaluated, f.n_evaluated, evals, 3, "evaluations (local steps)");
    ck_assert_int_eq(s.steps, 8);
    ck_assert_int_eq(s.global_step, 13);
}
END_TEST

START_TEST(test_jumping_global_step_crosses_multiples) {
    /* other workers: every step of ours moves the global step by 4 */
    fake f = {.jump = 4};
    pst_train_stats s;
    pst_status st = {0};
    pst_train_opts o = {.steps = 22, .save_every_steps = 5, .eval_every = 10, .quiet = 1};
    ck_assert_int_eq(run(&f, o, &s, &st, NULL), 0);
    /* global steps 4, 8, 12, 16, 20, 24 */
    const int64_t saves[] = {8, 12, 16, 20, 24}, evals[] = {3, 5}; /* at global 12 and 20 */
    assert_steps(f.saved, f.n_saved, saves, 5, "saves");
    assert_steps(f.evaluated, f.n_evaluated, evals, 2, "evaluations (local steps)");
    ck_assert_int_eq(s.steps, 6);
    ck_assert_int_eq(s.global_step, 24);
}
END_TEST

START_TEST(test_eval_cadence_and_lines) {
    fake f = {0};
    pst_train_stats s;
    pst_status st = {0};
    const char *out;
    pst_train_opts o = {.steps = 10, .eval_every = 4, .quiet = 1};
    ck_assert_int_eq(run(&f, o, &s, &st, &out), 0);
    const int64_t want[] = {4, 8};
    assert_steps(f.evaluated, f.n_evaluated, want, 2, "evaluations");
    ck_assert_int_eq(s.evals, 2);
    ck_assert_msg(strstr(out, "step 4: validation_accuracy=0.5000\n") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "step 8: validation_accuracy=0.5000\n") != NULL, "%s", out);
    /* no evaluate callback: no evaluation */
    fake g = {0};
    pst_train_ops no_eval = {.step = fake_step};
    FILE *tmp = tmpfile();
    o.out = tmp;
    ck_assert_int_eq(pst_train_run(&no_eval, &g, &o, &s, &st), 0);
    fclose(tmp);
    ck_assert_int_eq(s.evals, 0);
}
END_TEST

START_TEST(test_failing_step_stops_with_its_error) {
    fake f = {.fail_at = 5};
    pst_train_stats s;
    pst_status st = {0};
    const char *out;
    pst_train_opts o = {.steps = 100, .save_every_steps = 2, .quiet = 1};
    ck_assert_int_eq(run(&f, o, &s, &st, &out), PST_E_UNAVAILABLE);
    ck_assert_msg(strstr(st.msg, "127.0.0.1:1 is unreachable") != NULL, "%s", st.msg);
    ck_assert_int_eq(f.calls, 5);
    ck_assert_int_eq(s.steps, 4);
    const int64_t want[] = {2, 4}; /* and no final save of a failed run */
    assert_steps(f.saved, f.n_saved, want, 2, "saves");
    ck_assert_msg(strstr(out, "trained") == NULL, "a failed run printed a summary: %s", out);
}
END_TEST

START_TEST(test_failing_save_stops_with_its_error) {
    fake f = {.save_fail_at = 4};
    pst_train_stats s;
    pst_status st = {0};
    pst_train_opts o = {.steps = 100, .save_every_steps = 2, .quiet = 1};
    ck_assert_int_eq(run(&f, o, &s, &st, NULL), PST_E_IO);
    ck_assert_msg(strstr(st.msg, "ckpt-4: disk full") != NULL, "%s", st.msg);
    ck_assert_int_eq(f.calls, 4);
}
END_TEST

START_TEST(test_nonfinite_loss_stops_naming_the_step) {
    fake f = {.nan_at = 3};
    pst_train_stats s;
    pst_status st = {0};
    pst_train_opts o = {.steps = 100, .quiet = 1};
    ck_assert_int_eq(run(&f, o, &s, &st, NULL), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "loss became nan at step 3") != NULL, "%s", st.msg);
}
END_TEST

START_TEST(test_plain_progress_lines_and_summary) {
    fake f = {.secs = 0.5};
    pst_train_stats s;
    pst_status st = {0};
    const char *out;
    pst_train_opts o = {.steps = 250, .batch_size = 100};
    ck_assert_int_eq(run(&f, o, &s, &st, &out), 0);
    /* off a terminal: a line every 100 steps and at the end; 200 examples/s on the fake clock */
    ck_assert_msg(strstr(out, "step 100/250  loss 0.0100  200 examples/s  ETA 1m15s\n") != NULL,
                  "%s", out);
    ck_assert_msg(strstr(out, "step 200/250  loss 0.0050  200 examples/s  ETA 25s\n") != NULL,
                  "%s", out);
    ck_assert_msg(strstr(out, "step 250/250  loss 0.0040  200 examples/s  ETA 0s\n") != NULL,
                  "%s", out);
    ck_assert_ptr_null(strstr(out, "step 150/"));
    ck_assert_msg(strstr(out, "trained 250 steps in 125.0 s (200 examples/s), final loss 0.0040\n")
                  != NULL, "%s", out);
    /* --quiet: only the summary */
    fake g = {.secs = 0.5};
    o.quiet = 1;
    ck_assert_int_eq(run(&g, o, &s, &st, &out), 0);
    ck_assert_str_eq(out, "trained 250 steps in 125.0 s (200 examples/s), final loss 0.0040\n");
}
END_TEST

START_TEST(test_task_lines_every_n_seconds) {
    /* a distributed worker: lines name the task, the global and the local step */
    fake f = {.secs = 1, .jump = 2};
    pst_train_stats s;
    pst_status st = {0};
    const char *out;
    pst_train_opts o = {.first_step = 10, .steps = 20, .batch_size = 50, .eval_every = 6,
                        .task = "/job:worker/replica:0/task:1", .log_every_secs = 2};
    ck_assert_int_eq(run(&f, o, &s, &st, &out), 0);
    /* global 12, 14, 16, 18, 20 at 1..5 s: lines at 2 s, 4 s and the end */
    const char *want =
        "/job:worker/replica:0/task:1: global step 12: validation_accuracy=0.5000\n"
        "/job:worker/replica:0/task:1: global step 14, local step 2, loss 0.5000, 50 examples/s\n"
        "/job:worker/replica:0/task:1: global step 18, local step 4, loss 0.2500, 50 examples/s\n"
        "/job:worker/replica:0/task:1: global step 18: validation_accuracy=0.5000\n"
        "/job:worker/replica:0/task:1: global step 20, local step 5, loss 0.2000, 50 examples/s\n"
        "/job:worker/replica:0/task:1: trained 5 local steps in 5.0 s (50 examples/s), global "
        "step 20, final loss 0.2000\n";
    ck_assert_str_eq(out, want);
}
END_TEST

START_TEST(test_next_multiple) {
    ck_assert_int_eq(pst_train_next_multiple(0, 100), 100);
    ck_assert_int_eq(pst_train_next_multiple(99, 100), 100);
    ck_assert_int_eq(pst_train_next_multiple(100, 100), 200);
    ck_assert_int_eq(pst_train_next_multiple(150, 100), 200);
    ck_assert(pst_train_next_multiple(5, 0) == INT64_MAX);
}
END_TEST

int main(void) {
    Suite *s = suite_create("train_loop");
    TCase *tc = tcase_create("train_loop");
    tcase_add_test(tc, test_saves_every_n_steps_and_at_the_end);
    tcase_add_test(tc, test_final_save_not_doubled);
    tcase_add_test(tc, test_saves_every_n_seconds);
    tcase_add_test(tc, test_steps_and_seconds_together_save_once_per_step);
    tcase_add_test(tc, test_no_save_without_a_save_callback_or_after_no_step);
    tcase_add_test(tc, test_resumed_run_keeps_the_cadence_of_the_global_step);
    tcase_add_test(tc, test_jumping_global_step_crosses_multiples);
    tcase_add_test(tc, test_eval_cadence_and_lines);
    tcase_add_test(tc, test_failing_step_stops_with_its_error);
    tcase_add_test(tc, test_failing_save_stops_with_its_error);
    tcase_add_test(tc, test_nonfinite_loss_stops_naming_the_step);
    tcase_add_test(tc, test_plain_progress_lines_and_summary);
    tcase_add_test(tc, test_task_lines_every_n_seconds);
    tcase_add_test(tc, test_next_multiple);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
