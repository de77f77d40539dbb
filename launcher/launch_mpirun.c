/* launch_mpirun: the mpirun backend of pstrain launch (see launch_mpirun.h). */
#include "launch_mpirun.h"

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
    int status = 1;
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
        for (;;) {
            pid_t r = waitpid(pid, &ws, 0);
            if (r == pid) break;
            if (r < 0 && errno != EINTR) break;
            if (j->stop && *j->stop && !stopping) {
                kill(pid, SIGTERM); /* mpirun forwards it to every rank */
                stopping = 1;
            }
        }
        status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        if (status == 0 || stopping || (j->stop && *j->stop)) break;
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
    char acc[128];
    last_accuracy(log, acc, sizeof acc);
    if (!j->quiet || status != 0)
        printf("pstrain launch: the job %s%s%s\n", status == 0 ? "finished" : "failed",
               acc[0] ? ", " : "", acc);
    fflush(stdout);
    return status;
}
