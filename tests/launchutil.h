/*
 * launchutil — helpers of the suites that run `pstrain launch` with real processes
 * (test_launch, test_elastic): a private directory per test, the launcher and other programs
 * started by fork/exec with their output in a log, and the run directory's state.json read
 * back. The suites never initialize gRPC themselves.
 *
 *     pst_lu_setup();                                   // pst_lu_dir: /tmp/pst_launch_XXXXXX
 *     pid_t p = pst_lu_start_pstrain(log, "launch", pst_lu_write_job("j", json), NULL, NULL, NULL);
 *     char run[512]; pst_lu_wait_run_dir(run, sizeof run, 30);
 *     cJSON *st = pst_lu_wait_step(run, 300, 240);       // state.json at global step >= 300
 *     ck_assert_int_eq(pst_lu_wait_exit(p, 400), 0);
 *     pst_lu_teardown();
 */
#ifndef PST_TEST_LAUNCHUTIL_H
#define PST_TEST_LAUNCHUTIL_H

#include <check.h>
#include <cjson/cJSON.h>
#include <stddef.h>
#include <sys/types.h>

extern char pst_lu_dir[64];       /* this test's private directory */
extern char pst_lu_pstrain[1024]; /* $PST_BINARY_DIR/launcher/pstrain */

void pst_lu_setup(void);
void pst_lu_teardown(void);
/* Writes pst_lu_dir/NAME.json; returns its path (a static buffer). */
const char *pst_lu_write_job(const char *name, const char *json);
/* Starts `pstrain ARGS...` (NULL-terminated, at most five) with its output appended to log. */
pid_t pst_lu_start_pstrain(const char *log, const char *a1, const char *a2, const char *a3,
                           const char *a4, const char *a5);
/* Starts argv[0] with its output appended to log and PST_JOB_TOKEN set to token (NULL: no
 * token at all in its environment). */
pid_t pst_lu_spawn(const char *log, char *const argv[], const char *token);
/* Exit status, or -1 after killing it when it runs past secs (a hang guard, not a timing). */
int pst_lu_wait_exit(pid_t pid, int secs);
/* A file's contents (caller frees), NULL when unreadable. */
char *pst_lu_slurp(const char *path);
/* The run directory the launcher created under pst_lu_dir/runs (the only one). */
void pst_lu_find_run(char *out, size_t len);
/* `pstrain launch JOB` (log in pst_lu_dir/launch.log) waited for (at most 400 s): its exit
 * status; the run directory in run. */
int pst_lu_launch(const char *job, char *run, size_t len);
/* RUN/logs/workerK.log (caller frees); fails the test when missing. */
char *pst_lu_worker_log(const char *run, int k);
/* Waits until a run directory appears under pst_lu_dir/runs. */
void pst_lu_wait_run_dir(char *run, size_t len, int secs);
/* RUN/state.json parsed (caller deletes), NULL when missing or partial. */
cJSON *pst_lu_state_of(const char *run);
/* Waits until the run's global step reaches step; returns the state or NULL. */
cJSON *pst_lu_wait_step(const char *run, double step, int secs);
/* Waits until pred(state, ctx) holds; returns that state or NULL after secs. */
cJSON *pst_lu_wait_state(const char *run, int (*pred)(const cJSON *state, void *ctx), void *ctx,
                         int secs);
double pst_lu_num(const cJSON *o, const char *k); /* -1 when missing */
const char *pst_lu_str(const cJSON *o, const char *k); /* "" when missing */
/* The entry of state.json's "tasks" named name ("ps0", "worker1"), or NULL. */
const cJSON *pst_lu_task_of(const cJSON *state, const char *name);
int pst_lu_alive(double pid);
/* Runs a shell command; its standard output (up to len - 1 bytes) in out; its exit status. */
int pst_lu_run(const char *cmd, char *out, size_t len);
/* Asserts that checkpoints a and b hold the same tensors within rel (relative to magnitudes
 * above 1); *n_compared (may be NULL) gets how many were compared. */
void pst_lu_assert_checkpoints_equal(const char *a, const char *b, double rel, int *n_compared);

#endif
