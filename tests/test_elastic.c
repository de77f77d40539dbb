/* Elastic jobs with real processes: pstrain scale grows and shrinks a launched job while it
 * trains, workers join by hand with the job's token (and are refused without it). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    /* The rate decayed to 0 (cosine) as test_launch: async noise at a constant rate moves the
     * last steps' accuracy by about a point. */
    const char *j = mlp_job("scale", 1, 6000, ", \"lr_decay\": \"cosine\"");
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
    /* pstrain status and inspect placement --cluster RUN show the membership. */
    char cmd[4400], txt[300];
    snprintf(txt, sizeof txt, "%s/members.txt", pst_lu_dir);
    snprintf(cmd, sizeof cmd, "(%s status %s; env -u PST_JOB_TOKEN %s inspect placement --cluster "
             "%s) > %s 2>&1", pst_lu_pstrain, run, pst_lu_pstrain, run, txt);
    /* The PS learn the new membership from the coordination service a moment after the
     * launcher records it: ask again until they show it (a hang guard of 60 tries). */
    char *shown = NULL;
    for (int tries = 0; tries < 60; tries++) {
        ck_assert_int_eq(system(cmd), 0);
        free(shown);
        shown = pst_lu_slurp(txt);
        if (shown && strstr(shown, "  worker 1  incarnation")) break;
        sleep(1);
    }
    ck_assert_msg(strstr(shown, "membership epoch") && strstr(shown, "joined (+") &&
                  strstr(shown, "2 workers") && strstr(shown, "  worker 1  incarnation"),
                  "%s", shown);
    free(shown);
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


/* ---- example logs (--example-log DIR: "round members epoch rank count ids...") ---- */

#define MAX_ROUNDS 4000
typedef struct exlog {
    int n_files;
    int64_t *ids[MAX_ROUNDS]; /* every example id of each round, all workers */
    int n_ids[MAX_ROUNDS], contributors[MAX_ROUNDS], members[MAX_ROUNDS];
    int last_round;
} exlog;

/* Calls fn for every line of every file in dir. */
static void each_line(const char *dir, void (*fn)(void *ctx, int file, char *line), void *ctx,
                      int *n_files) {
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "no %s", dir);
    struct dirent *e;
    int nf = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) fn(ctx, nf, line);
        free(line);
        fclose(f);
        nf++;
    }
    closedir(d);
    if (n_files) *n_files = nf;
}

static void add_round(void *ctx, int file, char *line) {
    (void)file;
    exlog *x = ctx;
    char *p = line;
    long round = strtol(p, &p, 10), members = strtol(p, &p, 10);
    for (int i = 0; i < 3; i++) strtol(p, &p, 10); /* epoch rank count */
    ck_assert_msg(round >= 0 && round < MAX_ROUNDS, "round %ld", round);
    x->contributors[round]++;
    if (members > x->members[round]) x->members[round] = (int)members;
    if (round > x->last_round) x->last_round = (int)round;
    for (;;) {
        char *end;
        long long id = strtoll(p, &end, 10);
        if (end == p) break;
        p = end;
        x->ids[round] = realloc(x->ids[round], (size_t)(x->n_ids[round] + 1) * sizeof(int64_t));
        x->ids[round][x->n_ids[round]++] = id;
    }
}

static void exlog_free(exlog *x) {
    for (int r = 0; r < MAX_ROUNDS; r++) free(x->ids[r]);
    free(x);
}

static int worker_left(const cJSON *st, void *task) {
    return strcmp(pst_lu_str(pst_lu_task_of(st, task), "state"), "left") == 0;
}

static const char *SYNC_EXTRA =
    ", \"mode\": \"sync\", \"worker_flags\": [\"--example-log\", \"%s\"]";

static const char *softmax_sync_job(const char *name, int workers, int steps, const char *exdir) {
    char extra[512], buf[1024];
    snprintf(extra, sizeof extra, SYNC_EXTRA, exdir);
    snprintf(buf, sizeof buf,
             "{\"name\": \"%s\", \"cluster\": {\"ps\": 2, \"worker\": %d}, \"run_dir\": "
             "\"%s/runs\", \"model\": \"softmax\", \"optimizer\": \"sgd\", \"learning_rate\": 0.1,"
             " \"batch\": 50, \"steps\": %d, \"threads\": 1, \"heartbeat_ms\": 200,"
             " \"restarts\": {\"max\": 3, \"backoff_ms\": 200}%s}",
             name, workers, pst_lu_dir, steps, extra);
    return pst_lu_write_job(name, buf);
}

/* A synchronous job grown from 2 to 3 workers and shrunk back ends with the variables of one
 * process that applied the same sequence of averaged batches (each round's members' examples,
 * from their --example-log files); every round 0..steps-1 ran once, none twice. */
START_TEST(test_sync_grow_shrink_equals_one_process) {
    pst_lu_setup();
    char exdir[256], log[256], run[512], path[1024], ref[256];
    snprintf(exdir, sizeof exdir, "%s/examples", pst_lu_dir);
    ck_assert_int_eq(mkdir(exdir, 0755), 0);
    const int steps = 3000;
    const char *j = softmax_sync_job("syncgrow", 2, steps, exdir);
    snprintf(log, sizeof log, "%s/launch.log", pst_lu_dir);
    pid_t p = pst_lu_start_pstrain(log, "launch", j, NULL, NULL, NULL);
    pst_lu_wait_run_dir(run, sizeof run, 30);
    cJSON *st = pst_lu_wait_step(run, 50, 240);
    ck_assert_msg(st != NULL, "the job did not reach step 50");
    cJSON_Delete(st);
    scale(run, "3");
    st = pst_lu_wait_state(run, three_trained, NULL, 240);
    ck_assert_msg(st != NULL, "3 workers never trained together");
    cJSON_Delete(st);
    scale(run, "2");
    st = pst_lu_wait_state(run, worker_left, "worker2", 240);
    ck_assert_msg(st != NULL, "worker2 did not leave");
    ck_assert_double_lt(pst_lu_num(st, "global_step"), steps);
    cJSON_Delete(st);
    int rc = pst_lu_wait_exit(p, 500);
    char *out = pst_lu_slurp(log);
    ck_assert_msg(rc == 0, "launch exited %d:\n%s", rc, out);
    free(out);
    exlog *x = calloc(1, sizeof *x);
    each_line(exdir, add_round, x, &x->n_files);
    ck_assert_int_eq(x->n_files, 3);
    ck_assert_int_eq(x->last_round, steps - 1);
    int three = 0, two_after = 0;
    for (int r = 0; r < steps; r++) {
        ck_assert_msg(x->contributors[r] >= 1 && x->contributors[r] <= 3, "round %d: %d", r,
                      x->contributors[r]);
        ck_assert_int_eq(x->n_ids[r], 50 * x->contributors[r]);
        if (x->contributors[r] == 3) three++;
        else if (three > 0 && x->contributors[r] == 2) two_after++;
    }
    ck_assert_msg(three > 0 && two_after > 0, "rounds of 3: %d, of 2 after them: %d", three,
                  two_after);
    /* The same sequence of averaged batches in one process. */
    char replay[256];
    snprintf(replay, sizeof replay, "%s/replay.txt", pst_lu_dir);
    FILE *f = fopen(replay, "w");
    ck_assert_ptr_nonnull(f);
    for (int r = 0; r < steps; r++) {
        for (int i = 0; i < x->n_ids[r]; i++)
            fprintf(f, "%s%lld", i ? " " : "", (long long)x->ids[r][i]);
        fputc('\n', f);
    }
    fclose(f);
    exlog_free(x);
    snprintf(ref, sizeof ref, "%s/ref", pst_lu_dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/worker/pstrain-worker --model softmax --optimizer sgd --lr 0.1 "
             "--steps %d --threads 1 --quiet --replay-batches %s --checkpoint-dir %s "
             "> %s/ref.log 2>&1", getenv("PST_BINARY_DIR"), steps, replay, ref, pst_lu_dir);
    ck_assert_int_eq(system(cmd), 0);
    char a[1200], b[600];
    snprintf(a, sizeof a, "%s/checkpoints/model.ckpt-%d", run, steps);
    snprintf(b, sizeof b, "%s/model.ckpt-%d", ref, steps);
    int n = 0;
    pst_lu_assert_checkpoints_equal(a, b, 1e-4, &n);
    ck_assert_int_ge(n, 3); /* weights, biases, global step */
    (void)path;
    pst_lu_teardown();
}
END_TEST

static int count_in(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* A sync worker killed mid-round: the round finishes without it, the next rounds have the two
 * others, its restarted incarnation enters at a round boundary, and the job completes. */
START_TEST(test_sync_killed_worker_shrinks_the_round) {
    pst_lu_setup();
    char exdir[256], log[256], run[512], path[1024];
    snprintf(exdir, sizeof exdir, "%s/examples", pst_lu_dir);
    ck_assert_int_eq(mkdir(exdir, 0755), 0);
    const char *j = softmax_sync_job("synckill", 3, 3000, exdir);
    snprintf(log, sizeof log, "%s/launch.log", pst_lu_dir);
    pid_t p = pst_lu_start_pstrain(log, "launch", j, NULL, NULL, NULL);
    pst_lu_wait_run_dir(run, sizeof run, 30);
    int three = 3;
    cJSON *st = pst_lu_wait_state(run, three_trained, NULL, 240);
    ck_assert_msg(st != NULL, "3 workers never trained together");
    ck_assert(workers_running(st, &three));
    double victim = pst_lu_num(pst_lu_task_of(st, "worker2"), "pid");
    cJSON_Delete(st);
    ck_assert(pst_lu_alive(victim));
    kill((pid_t)victim, SIGKILL);
    int rc = pst_lu_wait_exit(p, 500);
    char *out = pst_lu_slurp(log);
    ck_assert_msg(rc == 0, "launch exited %d:\n%s", rc, out);
    free(out);
    st = pst_lu_state_of(run);
    ck_assert_double_ge(pst_lu_num(st, "global_step"), 3000);
    ck_assert_double_ge(pst_lu_num(pst_lu_task_of(st, "worker2"), "restarts"), 1);
    cJSON_Delete(st);
    /* Two incarnations of worker 2 entered the rounds; in between, rounds had 2 members. */
    snprintf(path, sizeof path, "%s/logs/worker2.log", run);
    char *w2 = pst_lu_slurp(path);
    ck_assert_msg(w2 && count_in(w2, "entered synchronous round") == 2, "%s", w2 ? w2 : "");
    free(w2);
    exlog *x = calloc(1, sizeof *x);
    each_line(exdir, add_round, x, &x->n_files);
    ck_assert_int_eq(x->n_files, 4); /* worker 2 twice */
    /* rounds of 3, then of 2 (the killed worker gone), then of 3 (its new incarnation) */
    int seen3 = 0, seen2 = 0, again3 = 0;
    for (int r = 0; r <= x->last_round; r++) {
        int c = x->contributors[r];
        ck_assert_msg(c >= 1, "round %d lost", r);
        if (c == 3 && !seen2) seen3 = 1;
        else if (c == 2 && seen3) seen2 = 1;
        else if (c == 3 && seen2) again3 = 1;
    }
    ck_assert_msg(seen3 && seen2 && again3, "rounds of 3: %d, then of 2: %d, then of 3: %d",
                  seen3, seen2, again3);
    exlog_free(x);
    pst_lu_teardown();
}
END_TEST

typedef struct seen_ids {
    int64_t epoch;
    char *used; /* per example id: 1 when read in this epoch */
    int dup, lines;
} seen_ids;

static void check_no_repeat(void *ctx, int file, char *line) {
    (void)file;
    seen_ids *s = ctx;
    char *p = line;
    strtol(p, &p, 10);
    strtol(p, &p, 10);
    long long epoch = strtoll(p, &p, 10);
    strtol(p, &p, 10);
    long count = strtol(p, &p, 10);
    if (epoch != s->epoch || count != 2) return; /* the stable membership of 2 */
    s->lines++;
    for (;;) {
        char *end;
        long long id = strtoll(p, &end, 10);
        if (end == p) break;
        p = end;
        ck_assert(id >= 0 && id < 60000);
        if (s->used[id]) s->dup++;
        s->used[id] = 1;
    }
}

static void last_epoch_of_two(void *ctx, int file, char *line) {
    (void)file;
    int64_t *e = ctx;
    char *p = line;
    strtol(p, &p, 10);
    strtol(p, &p, 10);
    long long epoch = strtoll(p, &p, 10);
    strtol(p, &p, 10);
    if (strtol(p, &p, 10) == 2 && epoch > *e) *e = epoch;
}

/* Data assignment follows membership: 2 workers of a stable membership never read the same
 * example within a pass (their shares of the epoch's permutation are disjoint). */
START_TEST(test_data_no_example_twice_while_stable) {
    pst_lu_setup();
    char exdir[256], extra[512], log[256];
    snprintf(exdir, sizeof exdir, "%s/examples", pst_lu_dir);
    ck_assert_int_eq(mkdir(exdir, 0755), 0);
    snprintf(extra, sizeof extra, ", \"worker_flags\": [\"--example-log\", \"%s\"]", exdir);
    /* 2 x 250 x 100 examples: less than one pass of the 55000 */
    const char *j = mlp_job("data", 2, 500, extra);
    snprintf(log, sizeof log, "%s/launch.log", pst_lu_dir);
    int rc = pst_lu_wait_exit(pst_lu_start_pstrain(log, "launch", j, NULL, NULL, NULL), 400);
    char *out = pst_lu_slurp(log);
    ck_assert_msg(rc == 0, "launch exited %d:\n%s", rc, out);
    free(out);
    seen_ids s = {.epoch = 0, .used = calloc(60000, 1)};
    each_line(exdir, last_epoch_of_two, &s.epoch, NULL);
    ck_assert_int_gt(s.epoch, 0);
    each_line(exdir, check_no_repeat, &s, NULL);
    ck_assert_int_gt(s.lines, 200);
    ck_assert_msg(s.dup == 0, "%d examples read twice in epoch %lld", s.dup, (long long)s.epoch);
    free(s.used);
    pst_lu_teardown();
}
END_TEST

int main(void) {
    Suite *s = suite_create("elastic");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_async_scale_1_to_3_to_1);
    tcase_add_test(tc, test_join_by_hand);
    tcase_add_test(tc, test_data_no_example_twice_while_stable);
    tcase_add_test(tc, test_sync_grow_shrink_equals_one_process);
    tcase_add_test(tc, test_sync_killed_worker_shrinks_the_round);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
