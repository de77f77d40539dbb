/* launch_mpirun: the mpirun backend of pstrain launch (see launch_mpirun.h). */
#include "launch_mpirun.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "file.h"

extern char **environ;

#define MAX_ARGV 256

/* The mpirun command line (pointers into j and the static buffers of the caller). */
static int build_argv(const pst_mpirun_job *j, char *np, char *worker, char **argv) {
    int n = 0;
#define ADD(s)                                                                                     \
    do {                                                                                           \
        if (n >= MAX_ARGV - 1) return -1;                                                          \
        argv[n++] = (char *)(s);                                                                   \
    } while (0)
    ADD("mpirun");
    if (geteuid() == 0) ADD("--allow-run-as-root"); /* containers, CI */
    ADD("--bind-to");
    ADD("none");
    ADD("-x");
    ADD("OPENBLAS_NUM_THREADS=1");
    if (j->hostfile) {
        ADD("--hostfile");
        ADD(j->hostfile);
    } else {
        ADD("--oversubscribe"); /* one machine: as many ranks as the job has, whatever the cores */
    }
    for (int i = 0; i < j->n_args; i++) ADD(j->args[i]);
    ADD("-np");
    ADD(np);
    ADD(worker);
    ADD("--job");
    ADD(j->job_file);
    ADD("--checkpoint-dir");
    ADD(j->ckpt_dir);
    if (!j->allreduce) {
        static char ps[16];
        snprintf(ps, sizeof ps, "%d", j->n_ps);
        ADD("--transport");
        ADD("mpi");
        ADD("--ps");
        ADD(ps);
    }
    for (int i = 0; i < j->n_worker_flags; i++) ADD(j->worker_flags[i]);
    argv[n] = NULL;
#undef ADD
    return n;
}

/* The last "test_accuracy=" line of the log, or "". */
static void last_accuracy(const char *log, char *out, size_t len) {
    out[0] = '\0';
    FILE *f = fopen(log, "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "test_accuracy=");
        if (p) {
            p[strcspn(p, "\n")] = '\0';
            snprintf(out, len, "%s", p);
        }
    }
    fclose(f);
}

/* ---- state.json ---- */

/* The pids of mpirun's children on this host by their MPI rank (OMPI_COMM_WORLD_RANK in their
 * environment); pids[r] stays 0 for a rank not found. */
static void rank_pids(pid_t mpirun, int n, long *pids) {
    for (int r = 0; r < n; r++) pids[r] = 0;
    DIR *d = opendir("/proc");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *close_paren = strrchr(buf, ')'); /* the command may hold spaces */
        long ppid = 0;
        char state;
        if (!close_paren || sscanf(close_paren + 1, " %c %ld", &state, &ppid) != 2 ||
            ppid != (long)mpirun)
            continue;
        snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
        if (!(f = fopen(path, "r"))) continue;
        len = fread(buf, 1, sizeof buf - 1, f); /* the rank is among the first variables */
        fclose(f);
        buf[len] = '\0';
        for (size_t i = 0; i < len; i += strlen(buf + i) + 1) {
            if (strncmp(buf + i, "OMPI_COMM_WORLD_RANK=", 21) == 0) {
                int r = atoi(buf + i + 21);
                if (r >= 0 && r < n) pids[r] = atol(e->d_name);
                break;
            }
        }
    }
    closedir(d);
}

/* The newest global step and examples/s in the ranks' progress lines of the log ("step N/M ...
 * X examples/s" or "...: global step N, ... X examples/s"), and the newest checkpoint. */
typedef struct progress {
    int64_t step;
    double eps;
    char ckpt[PATH_MAX];
} progress;

static void read_progress(const pst_mpirun_job *j, const char *log, progress *p) {
    memset(p, 0, sizeof *p);
    /* The end of the log: under mpirun the ranks' output is a terminal, so progress lines may
     * be separated by carriage returns. */
    FILE *f = fopen(log, "r");
    if (f) {
        enum { TAIL = 1 << 16 };
        char *buf = malloc(TAIL + 1);
        if (buf && fseek(f, 0, SEEK_END) == 0) {
            long size = ftell(f);
            long from = size > TAIL ? size - TAIL : 0;
            size_t len = 0;
            if (from >= 0 && fseek(f, from, SEEK_SET) == 0) len = fread(buf, 1, TAIL, f);
            buf[len] = '\0';
            for (char *save = NULL, *line = strtok_r(buf, "\r\n", &save); line;
                 line = strtok_r(NULL, "\r\n", &save)) {
                long long s = -1, local = 0;
                const char *g = strstr(line, ": global step ");
                if (!(g && sscanf(g, ": global step %lld, local step %lld", &s, &local) == 2)) {
                    const char *k = strstr(line, "step ");
                    long long total = 0;
                    if (!k || (k != line && k[-1] != ' ' && k[-1] != 'K') ||
                        sscanf(k, "step %lld/%lld", &s, &total) != 2)
                        continue;
                }
                const char *x = strstr(line, " examples/s");
                double eps = 0;
                if (x) { /* the number before it */
                    const char *b = x;
                    while (b > line && (isdigit((unsigned char)b[-1]) || b[-1] == '.')) b--;
                    eps = atof(b);
                }
                if (s >= p->step) {
                    p->step = s;
                    p->eps = eps;
                }
            }
        }
        free(buf);
        fclose(f);
    }
    /* checkpoints/checkpoint: model_checkpoint_path: "PREFIX" */
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/checkpoint", j->ckpt_dir);
    if ((f = fopen(path, "r"))) {
        char line[PATH_MAX + 64];
        if (fgets(line, sizeof line, f) && strncmp(line, "model_checkpoint_path:", 22) == 0) {
            char *q = strchr(line, '"'), *e = q ? strrchr(q + 1, '"') : NULL;
            if (q && e) snprintf(p->ckpt, sizeof p->ckpt, "%.*s", (int)(e - q - 1), q + 1);
            const char *dash = strrchr(p->ckpt, '-');
            long long s = dash ? atoll(dash + 1) : 0;
            if (s > p->step) p->step = s;
        }
        fclose(f);
    }
}

static void write_state(const pst_mpirun_job *j, const char *status, pid_t mpirun, int restarts,
                        double started, const char *log) {
    int ranks = j->allreduce ? j->n_workers : j->n_ps + j->n_workers;
    long *pids = calloc((size_t)ranks + 1, sizeof *pids);
    if (!pids) return;
    int live = strcmp(status, "running") == 0 || strcmp(status, "stopping") == 0;
    if (live && mpirun > 0) rank_pids(mpirun, ranks, pids);
    progress pr;
    read_progress(j, log, &pr);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "run", j->run);
    cJSON_AddStringToObject(o, "name", j->name ? j->name : "");
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddStringToObject(o, "backend", "mpirun");
    cJSON_AddNumberToObject(o, "launcher_pid", (double)getpid());
    cJSON_AddNumberToObject(o, "mpirun_pid", live ? (double)mpirun : 0);
    cJSON_AddStringToObject(o, "coordinator", "");
    cJSON_AddStringToObject(o, "checkpoint_dir", j->ckpt_dir);
    cJSON_AddNumberToObject(o, "epoch", 0);
    cJSON_AddNumberToObject(o, "job_restarts", restarts);
    cJSON_AddNumberToObject(o, "uptime_s", pst_clock_now() - started);
    cJSON *arr = cJSON_AddArrayToObject(o, "tasks");
    for (int r = 0; r < ranks; r++) {
        int ps = !j->allreduce && r < j->n_ps;
        char name[32], addr[32];
        snprintf(name, sizeof name, "%s%d", ps ? "ps" : "worker", ps ? r : r - (j->allreduce ? 0 : j->n_ps));
        snprintf(addr, sizeof addr, "mpi:%d", r);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "task", name);
        cJSON_AddStringToObject(e, "host", j->hostfile ? "" : "localhost");
        cJSON_AddStringToObject(e, "address", addr);
        const char *state = live ? (pids[r] || j->hostfile ? "running" : "starting")
                            : strcmp(status, "done") == 0 ? "done" : "exited";
        cJSON_AddStringToObject(e, "state", state);
        cJSON_AddNumberToObject(e, "pid", (double)pids[r]);
        cJSON_AddNumberToObject(e, "restarts", restarts);
        cJSON_AddNumberToObject(e, "global_step", (double)pr.step);
        cJSON_AddItemToArray(arr, e);
    }
    cJSON_AddArrayToObject(o, "members");
    cJSON_AddNumberToObject(o, "workers", live ? j->n_workers : 0);
    cJSON_AddNumberToObject(o, "global_step", (double)pr.step);
    cJSON_AddNumberToObject(o, "total_steps", (double)j->total_steps);
    /* rank 0 (allreduce) or the chief prints the job's rate: the job's examples/s are that
     * times the workers in allreduce mode (every rank steps together) */
    cJSON_AddNumberToObject(o, "examples_per_sec",
                            live ? pr.eps * (j->allreduce ? j->n_workers : 1) : 0);
    cJSON_AddStringToObject(o, "last_checkpoint", pr.ckpt);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    free(pids);
    if (!text) return;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/state.json", j->run);
    pst_status st = {0};
    if (pst_file_write_atomic(path, text, strlen(text), &st) < 0)
        fprintf(stderr, "pstrain launch: %s\n", st.msg);
    free(text);
}

int pst_mpirun_run(const pst_mpirun_job *j, pst_status *st) {
    int ranks = j->allreduce ? j->n_workers : j->n_ps + j->n_workers;
    if (!j->allreduce && j->n_ps < 1)
        return pst_status_set(st, PST_E_INVALID, "the mpirun backend in PS mode needs \"ps\" >= 1 "
                              "in \"cluster\" (or \"mode\": \"allreduce\")");
    char np[16], worker[PATH_MAX + 32], log[PATH_MAX + 32];
    snprintf(np, sizeof np, "%d", ranks);
    snprintf(worker, sizeof worker, "%s/pstrain-worker", j->bin_dir);
    snprintf(log, sizeof log, "%s/logs/mpirun.log", j->run);
    char *argv[MAX_ARGV];
    if (build_argv(j, np, worker, argv) < 0)
        return pst_status_set(st, PST_E_INVALID, "too many mpirun arguments");
    if (!j->quiet) {
        printf("pstrain launch: mpirun backend, %d ranks (%s), output in %s\n  ", ranks,
               j->allreduce ? "allreduce" : "PS mode over MPI", log);
        for (int i = 0; argv[i]; i++) printf("%s ", argv[i]);
        printf("\n");
        fflush(stdout);
    }
    int status = 1, stopped = 0, restarts = 0;
    double started = pst_clock_now();
    write_state(j, "running", 0, 0, started, log);
    for (int attempt = 0;; attempt++) {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        pid_t pid;
        int e = posix_spawnp(&pid, "mpirun", &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (e != 0)
            return pst_status_set(st, PST_E_UNAVAILABLE, "cannot start mpirun: %s (install the "
                                  "Debian package openmpi-bin)", strerror(e));
        int stopping = 0, ws = 0;
        double last_state = 0;
        for (;;) {
            pid_t r = waitpid(pid, &ws, WNOHANG);
            if (r == pid) break;
            if (r < 0 && errno != EINTR) break;
            if (j->stop && *j->stop && !stopping) {
                kill(pid, SIGTERM); /* mpirun forwards it to every rank */
                stopping = 1;
                last_state = 0;
            }
            double now = pst_clock_now();
            if (now - last_state >= 1.0) { /* progress for pstrain status */
                write_state(j, stopping ? "stopping" : "running", pid, attempt, started, log);
                last_state = now;
            }
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL); /* a signal ends it early */
        }
        status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        stopped = stopping || (j->stop && *j->stop);
        restarts = attempt;
        if (status == 0 || stopped) break;
        if (attempt >= j->max_restarts) {
            fprintf(stderr, "pstrain launch: mpirun exited with status %d; no restarts left "
                    "(%d); see %s\n", status, j->max_restarts, log);
            break;
        }
        fprintf(stderr, "pstrain launch: mpirun exited with status %d; running it again from "
                "the newest checkpoint (restart %d of %d)\n", status, attempt + 1,
                j->max_restarts);
        struct timespec ts = {(time_t)(j->backoff_ms / 1000), (long)(j->backoff_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    write_state(j, status == 0 ? "done" : stopped ? "stopped" : "failed", 0, restarts, started,
                log);
    char acc[128];
    last_accuracy(log, acc, sizeof acc);
    if (stopped) {
        if (!j->quiet) printf("pstrain launch: the job stopped as asked\n");
        status = 0;
    } else if (!j->quiet || status != 0) {
        printf("pstrain launch: the job %s%s%s\n", status == 0 ? "finished" : "failed",
               acc[0] ? ", " : "", acc);
    }
    fflush(stdout);
    return status;
}
