/* A PS killed while a checkpoint is being written (real processes through pstrain launch): the
 * launcher restarts the job from the newest complete checkpoint, the interrupted save's
 * temporary files are gone, the job completes, and the chief's TensorBoard events, decoded by
 * tools that share no code with pstrain (the Python de-framer and Debian's protoc), hold a
 * SessionLog START at the step the job resumed from. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launchutil.h"
#include "testutil.h"

/* Whether dir holds a file of a save in flight (a distributed save's *_temp_shard* parts). */
static int save_in_flight(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) found = strstr(e->d_name, "_temp_shard") != NULL;
    closedir(d);
    return found;
}


START_TEST(test_ps_killed_during_save) {
    pst_lu_setup();
    char json[1024];
    snprintf(json, sizeof json,
             "{\"name\": \"savekill\", \"cluster\": {\"ps\": 2, \"worker\": 1}, \"run_dir\":"
             " \"%s/runs\", \"model\": \"mlp\", \"optimizer\": \"sgd\", \"learning_rate\": 0.1,"
             " \"batch\": 100, \"steps\": 1200, \"save_every_steps\": 100, \"threads\": 1,"
             " \"heartbeat_ms\": 200, \"restarts\": {\"max\": 3, \"backoff_ms\": 200}}",
             pst_lu_dir);
    const char *j = pst_lu_write_job("savekill", json);
    char log[256], run_dir[512], ckpt[700], path[1200];
    snprintf(log, sizeof log, "%s/launch.log", pst_lu_dir);
    pid_t p = pst_lu_start_pstrain(log, "launch", j, NULL, NULL, NULL);
    pst_lu_wait_run_dir(run_dir, sizeof run_dir, 30);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints", run_dir);
    cJSON *st = pst_lu_wait_step(run_dir, 250, 240); /* a checkpoint exists */
    ck_assert_msg(st != NULL, "the job did not reach step 250");
    double victim = pst_lu_num(pst_lu_task_of(st, "ps1"), "pid");
    cJSON_Delete(st);
    /* Catch a save in the act (every 100 steps): at most 60 s of looking, 0.5 ms apart. */
    int caught = 0;
    for (int i = 0; i < 120000 && !caught; i++) {
        caught = save_in_flight(ckpt);
        if (!caught) usleep(500);
    }
    kill((pid_t)victim, SIGKILL);
    fprintf(stderr, "test_recovery: PS killed %s\n",
            caught ? "while a save was writing its shards" : "(no save caught in 60 s)");
    int rc = pst_lu_wait_exit(p, 500);
    char *out = pst_lu_slurp(log);
    ck_assert_msg(rc == 0, "launch exited %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "restarting the job from the newest checkpoint"), "%s", out);
    free(out);
    st = pst_lu_state_of(run_dir);
    ck_assert_double_ge(pst_lu_num(st, "job_restarts"), 1);
    ck_assert_double_ge(pst_lu_num(st, "global_step"), 1200);
    cJSON_Delete(st);
    /* nothing of the interrupted save is left */
    ck_assert_msg(!save_in_flight(ckpt), "temporary shard files left in %s", ckpt);
    /* the restarted chief resumed at the restored checkpoint's step */
    snprintf(path, sizeof path, "%s/logs/worker0.log", run_dir);
    char *w0 = pst_lu_slurp(path);
    const char *r = w0 ? strstr(w0, "resuming at global step ") : NULL;
    ck_assert_msg(r != NULL, "worker0 did not resume:\n%s", w0 ? w0 : "");
    long resumed = atol(r + strlen("resuming at global step "));
    free(w0);
    ck_assert_int_ge(resumed, 100);
    ck_assert_int_eq(resumed % 100, 0);
    /* events: a START at the resumed step, and the loss after it */
    const char *src = getenv("PST_SOURCE_DIR");
    char cmd[4096], ev[1 << 16];
    snprintf(cmd, sizeof cmd,
             "set -e; d=%s/evbin; for f in %s/events/events.out.tfevents.*; do rm -rf $d;"
             " mkdir -p $d; python3 %s/tests/tfrecord_check.py deframe $f $d >/dev/null;"
             " for b in $(ls $d | sort -n); do protoc --decode=tensorflow.Event -I%s/proto"
             " %s/proto/tf_event.proto < $d/$b | tr '\\n' ' '; echo; done; done",
             pst_lu_dir, run_dir, src, src, src);
    ck_assert_msg(pst_lu_run(cmd, ev, sizeof ev) == 0, "%s", ev);
    char want[64];
    snprintf(want, sizeof want, "step: %ld session_log {   status: START }", resumed);
    ck_assert_msg(strstr(ev, want), "no '%s' among the events:\n%.4000s", want, ev);
    ck_assert_msg(strstr(ev, "tag: \"loss\""), "no loss among the events");
    pst_lu_teardown();
}
END_TEST

int main(void) {
    Suite *s = suite_create("recovery");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_ps_killed_during_save);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
