/* launchutil: helpers of the suites that run pstrain launch with real processes (see
 * launchutil.h). */
#include "launchutil.h"

#include "bundle.h"

#include <dirent.h>
#include <math.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char pst_lu_dir[64];
char pst_lu_pstrain[1024];

void pst_lu_setup(void) {
    const char *b = getenv("PST_BINARY_DIR");
    ck_assert_msg(b != NULL, "PST_BINARY_DIR is not set (run under ctest)");
    snprintf(pst_lu_pstrain, sizeof pst_lu_pstrain, "%s/launcher/pstrain", b);
    snprintf(pst_lu_dir, sizeof pst_lu_dir, "/tmp/pst_launch_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(pst_lu_dir));
}

void pst_lu_teardown(void) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", pst_lu_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", pst_lu_dir);
}

const char *pst_lu_write_job(const char *name, const char *json) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s.json", pst_lu_dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(json, f);
    fclose(f);
    return path;
}

/* Starts `pstrain ARGS...` with output into log. */
/* fork/exec with output into log; keep_env: the test's own token stays in the environment. */
static pid_t spawn(const char *log, char *const argv[], int keep_env, const char *token) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        if (!keep_env) {
            unsetenv("PST_JOB_TOKEN");
            unsetenv("PST_JOB_TOKEN_FILE");
            if (token) setenv("PST_JOB_TOKEN", token, 1);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

pid_t pst_lu_start_pstrain(const char *log, const char *a1, const char *a2, const char *a3,
                           const char *a4, const char *a5) {
    char *argv[] = {pst_lu_pstrain, (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5,
                    NULL};
    return spawn(log, argv, 1, NULL);
}

int pst_lu_wait_exit(pid_t pid, int secs) {
    for (int i = 0; i < secs * 20; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(50 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

char *pst_lu_slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t r = fread(s, 1, (size_t)n, f);
    s[r] = '\0';
    fclose(f);
    return s;
}

/* The run directory the launcher created under pst_lu_dir/runs (the only one). */
void pst_lu_find_run(char *out, size_t len) {
    char root[128];
    snprintf(root, sizeof root, "%s/runs", pst_lu_dir);
    DIR *d = opendir(root);
    ck_assert_msg(d != NULL, "no %s", root);
    struct dirent *e;
    out[0] = '\0';
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') snprintf(out, len, "%s/%s", root, e->d_name);
    closedir(d);
    ck_assert_msg(out[0], "no run directory in %s", root);
}

int pst_lu_launch(const char *job, char *run, size_t len) {
    char log[256];
    snprintf(log, sizeof log, "%s/launch.log", pst_lu_dir);
    pid_t p = pst_lu_start_pstrain(log, "launch", job, NULL, NULL, NULL);
    int rc = pst_lu_wait_exit(p, 400);
    pst_lu_find_run(run, len);
    return rc;
}

char *pst_lu_worker_log(const char *run, int k) {
    char path[1024];
    snprintf(path, sizeof path, "%s/logs/worker%d.log", run, k);
    char *s = pst_lu_slurp(path);
    ck_assert_msg(s != NULL, "no %s", path);
    return s;
}

cJSON *pst_lu_state_of(const char *run) {
    char path[1024];
    snprintf(path, sizeof path, "%s/state.json", run);
    char *s = pst_lu_slurp(path);
    cJSON *o = s ? cJSON_Parse(s) : NULL;
    free(s);
    return o;
}

double pst_lu_num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

const char *pst_lu_str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

const cJSON *pst_lu_task_of(const cJSON *state, const char *name) {
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(state, "tasks"))
        if (strcmp(pst_lu_str(t, "task"), name) == 0) return t;
    return NULL;
}

/* Waits until the run's global step reaches step (state.json); returns the state or NULL. */
cJSON *pst_lu_wait_step(const char *run, double step, int secs) {
    for (int i = 0; i < secs * 10; i++) {
        cJSON *o = pst_lu_state_of(run);
        if (o && pst_lu_num(o, "global_step") >= step) return o;
        cJSON_Delete(o);
        usleep(100 * 1000);
    }
    return NULL;
}

void pst_lu_wait_run_dir(char *run, size_t len, int secs) {
    char root[128];
    snprintf(root, sizeof root, "%s/runs", pst_lu_dir);
    for (int i = 0; i < secs * 10; i++) {
        DIR *d = opendir(root);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)))
                if (e->d_name[0] != '.') {
                    snprintf(run, len, "%s/%s", root, e->d_name);
                    closedir(d);
                    return;
                }
            closedir(d);
        }
        usleep(100 * 1000);
    }
    ck_abort_msg("no run directory appeared in %s", root);
}

int pst_lu_alive(double pid) { return pid > 0 && kill((pid_t)pid, 0) == 0; }


pid_t pst_lu_spawn(const char *log, char *const argv[], const char *token) {
    return spawn(log, argv, 0, token);
}

cJSON *pst_lu_wait_state(const char *run, int (*pred)(const cJSON *state, void *ctx), void *ctx,
                         int secs) {
    for (int i = 0; i < secs * 10; i++) {
        cJSON *o = pst_lu_state_of(run);
        if (o && pred(o, ctx)) return o;
        cJSON_Delete(o);
        usleep(100 * 1000);
    }
    return NULL;
}

void pst_lu_assert_checkpoints_equal(const char *a, const char *b, double rel, int *n_compared) {
    pst_status st = {0};
    pst_bundle_reader *ra = pst_bundle_reader_open(a, &st);
    ck_assert_msg(ra != NULL, "%s", st.msg);
    pst_bundle_reader *rb = pst_bundle_reader_open(b, &st);
    ck_assert_msg(rb != NULL, "%s", st.msg);
    int n = pst_bundle_reader_num_entries(ra), cmp = 0;
    for (int i = 0; i < n; i++) {
        const pst_bundle_entry *e = pst_bundle_reader_entry(ra, i);
        if (strchr(e->name, '\001')) continue; /* slice keys: compared through the full name */
        pst_tensor *ta = pst_bundle_reader_read(ra, e->name, &st);
        ck_assert_msg(ta != NULL, "%s: %s", e->name, st.msg);
        pst_tensor *tb = pst_bundle_reader_read(rb, e->name, &st);
        ck_assert_msg(tb != NULL, "%s in %s: %s", e->name, b, st.msg);
        ck_assert_int_eq((int)ta->n, (int)tb->n);
        for (int64_t k = 0; k < ta->n; k++) {
            double x = pst_tensor_get_f64(ta, k), y = pst_tensor_get_f64(tb, k);
            double scale = fabs(x) > 1 ? fabs(x) : 1;
            ck_assert_msg(fabs(x - y) <= rel * scale, "%s[%lld]: %.9g vs %.9g", e->name,
                          (long long)k, x, y);
        }
        cmp++;
        pst_tensor_unref(ta);
        pst_tensor_unref(tb);
    }
    pst_bundle_reader_free(ra);
    pst_bundle_reader_free(rb);
    if (n_compared) *n_compared = cmp;
}

int pst_lu_run(const char *cmd, char *out, size_t len) {
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, len - 1, f);
    out[n] = 0;
    int rc = pclose(f);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}
