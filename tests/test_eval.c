/* pstrain eval and the job's evaluator task, with real processes: a launched job with
 * "cluster": {"evaluator": 1} has its every checkpoint evaluated exactly once (logs/evaluator.log)
 * and the accuracy in RUN/events/eval, decoded by tools that share no code with pstrain (the
 * Python de-framer and Debian's protoc); `pstrain eval RUN --max-evals N` afterwards evaluates N;
 * pstrain-worker with TF_CONFIG's type "evaluator" runs the same loop; bad arguments are named. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "launchutil.h"
#include "testutil.h"

static int count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

START_TEST(test_evaluator_task_and_eval_command) {
    pst_lu_setup();
    char json[1024];
    snprintf(json, sizeof json,
             "{\"name\": \"ev\", \"cluster\": {\"ps\": 1, \"worker\": 1, \"evaluator\": 1},"
             " \"run_dir\": \"%s/runs\", \"model\": \"softmax\", \"optimizer\": \"sgd\","
             " \"learning_rate\": 0.5, \"batch\": 100, \"steps\": 300, \"threads\": 1,"
             " \"save_every_steps\": 100}", pst_lu_dir);
    const char *job = pst_lu_write_job("ev", json);
    char log[600], run_dir[512], path[1200], cmd[4096], out[16384];
    snprintf(log, sizeof log, "%s/launch.log", pst_lu_dir);
    pid_t p = pst_lu_start_pstrain(log, "launch", job, NULL, NULL, NULL);
    int rc = pst_lu_wait_exit(p, 400);
    char *text = pst_lu_slurp(log);
    ck_assert_msg(rc == 0, "launch exited %d:\n%s", rc, text ? text : "");
    free(text);
    pst_lu_find_run(run_dir, sizeof run_dir);
    snprintf(path, sizeof path, "%s/logs/evaluator.log", run_dir);
    char *ev = pst_lu_slurp(path);
    ck_assert_msg(ev != NULL, "no %s", path);
    /* each checkpoint once, in order, with an accuracy a trained softmax reaches */
    const char *ck[3] = {"model.ckpt-100:", "model.ckpt-200:", "model.ckpt-300:"};
    const char *prev = ev;
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(count(ev, ck[i]) == 1, "%s evaluated %d times:\n%s", ck[i], count(ev, ck[i]),
                      ev);
        const char *at = strstr(ev, ck[i]);
        ck_assert_msg(at >= prev, "evaluations out of order:\n%s", ev);
        prev = at;
    }
    const char *acc = strstr(strstr(ev, ck[2]), "accuracy ");
    ck_assert_msg(acc && atof(acc + 9) > 0.7, "%s", ev);
    ck_assert_msg(strstr(ev, "3 checkpoint(s) evaluated"), "%s", ev);
    free(ev);
    /* the events: eval/accuracy and eval/loss at steps 100, 200, 300 */
    const char *src = getenv("PST_SOURCE_DIR");
    snprintf(cmd, sizeof cmd,
             "set -e; d=%s/evbin; mkdir -p $d; f=$(ls %s/events/eval/events.out.tfevents.*);"
             " python3 %s/tests/tfrecord_check.py deframe $f $d >/dev/null;"
             " for b in $(ls $d | sort -n); do protoc --decode=tensorflow.Event -I%s/proto"
             " %s/proto/tf_event.proto < $d/$b; done",
             pst_lu_dir, run_dir, src, src, src);
    ck_assert_msg(pst_lu_run(cmd, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(count(out, "tag: \"eval/accuracy\"") == 3 && count(out, "tag: \"eval/loss\"") == 3,
                  "%s", out);
    for (int s = 100; s <= 300; s += 100) {
        char want[32];
        snprintf(want, sizeof want, "step: %d\n", s);
        ck_assert_msg(count(out, want) == 2, "step %d:\n%s", s, out);
    }
    /* afterwards from the command line: the first two only */
    snprintf(cmd, sizeof cmd, "%s eval %s --max-evals 2 --events-dir %s/ev2 2>&1", pst_lu_pstrain,
             run_dir, pst_lu_dir);
    ck_assert_msg(pst_lu_run(cmd, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(count(out, "eval ") == 2 && strstr(out, "model.ckpt-100:") &&
                      strstr(out, "model.ckpt-200:") && !strstr(out, "model.ckpt-300:"),
                  "%s", out);
    /* TF_CONFIG's evaluator: pstrain-worker evaluates the directory until a checkpoint at the
     * last step (--steps) */
    snprintf(cmd, sizeof cmd,
             "TF_CONFIG='{\"cluster\": {\"ps\": [\"127.0.0.1:1\"], \"worker\": [\"127.0.0.1:2\"]},"
             " \"task\": {\"type\": \"evaluator\", \"index\": 0}}' timeout 120"
             " %s/worker/pstrain-worker --checkpoint-dir %s/checkpoints --model softmax"
             " --steps 300 2>&1",
             getenv("PST_BINARY_DIR"), run_dir);
    ck_assert_msg(pst_lu_run(cmd, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(count(out, "eval ") == 3 && strstr(out, "model.ckpt-300:"), "%s", out);
    /* bad input: the argument at fault is named */
    snprintf(cmd, sizeof cmd, "%s eval %s/nope 2>&1", pst_lu_pstrain, pst_lu_dir);
    ck_assert_int_eq(pst_lu_run(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "nope is not a run directory"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s eval %s --max-evals zero 2>&1", pst_lu_pstrain, run_dir);
    ck_assert_int_eq(pst_lu_run(cmd, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "--max-evals: 'zero'"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s eval --model softmax 2>&1", pst_lu_pstrain);
    ck_assert_int_eq(pst_lu_run(cmd, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "--checkpoint-dir"), "%s", out);
    pst_lu_teardown();
}
END_TEST

int main(void) {
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_evaluator_task_and_eval_command);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
