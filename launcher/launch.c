/* launch: start, supervise, stop and resume a job (see launch.h). */
#define _GNU_SOURCE
#include "launch.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "coord.h"
#include "file.h"
#include "flags.h"
#include "format.h"
#include "jobfile.h"
#include "launch_mpirun.h"
#include "security.h"

extern char **environ;

#define MAX_ARGS 128

/* ---- the job as the launcher sees it ---------------------------------------------------- */

typedef struct strv {
    int n;
    char **v;
} strv;

typedef struct launch_spec {
    char name[64];
    char backend[16];   /* "local", "ssh" or "mpirun" */
    int n_ps, n_workers;
    pst_cluster *fixed; /* addresses given in the job file (fixed ports) */
    strv ps_hosts, worker_hosts;
    int max_restarts;
    int64_t backoff_ms;
    char run_root[PATH_MAX];
    char tls_dir[PATH_MAX];
    int insecure;
    char coord_bind[160];
    int64_t heartbeat_ms;
    strv ps_flags, worker_flags;
    /* ssh */
    char ssh_user[64], ssh_identity[PATH_MAX], remote_bin[PATH_MAX];
    int ssh_port;
    strv ssh_options;
    char checkpoint_dir[PATH_MAX]; /* from the job file ("" = RUN/checkpoints) */
    /* mpirun ("mpirun": {"hostfile": ..., "args": [...]}) */
    char mpi_hostfile[PATH_MAX];
    strv mpi_args;
} launch_spec;

static void strv_free(strv *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int strv_push(strv *s, const char *x) {
    char **v = realloc(s->v, (size_t)(s->n + 1) * sizeof *v);
    if (!v) return -1;
    s->v = v;
    if (!(v[s->n] = strdup(x))) return -1;
    s->n++;
    return 0;
}

static void spec_free(launch_spec *s) {
    pst_cluster_free(s->fixed);
    strv_free(&s->ps_hosts);
    strv_free(&s->worker_hosts);
    strv_free(&s->ps_flags);
    strv_free(&s->worker_flags);
    strv_free(&s->ssh_options);
    strv_free(&s->mpi_args);
    memset(s, 0, sizeof *s);
}

static int get_str(const cJSON *o, const char *key, const char *path, char *out, size_t len,
                   pst_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= len)
        return pst_status_set(st, PST_E_INVALID, "%s: \"%s\" must be a string (< %zu bytes)",
                              path, key, len);
    snprintf(out, len, "%s", v->valuestring);
    return 1;
}

static int get_int(const cJSON *o, const char *key, const char *path, int64_t lo, int64_t hi,
                   int64_t *out, pst_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)lo || v->valuedouble > (double)hi ||
        v->valuedouble != floor(v->valuedouble))
        return pst_status_set(st, PST_E_INVALID, "%s: \"%s\" must be an integer in [%lld, %lld]",
                              path, key, (long long)lo, (long long)hi);
    *out = (int64_t)v->valuedouble;
    return 1;
}

static int get_strv(const cJSON *o, const char *key, const char *path, strv *out,
                    pst_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key), *e;
    if (!v) return 0;
    if (!cJSON_IsArray(v))
        return pst_status_set(st, PST_E_INVALID, "%s: \"%s\" must be a list of strings", path, key);
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e))
            return pst_status_set(st, PST_E_INVALID, "%s: \"%s\" must be a list of strings", path,
                                  key);
        if (strv_push(out, e->valuestring) < 0)
            return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    }
    return 1;
}

/* The launcher's keys of a job file (the training settings are the trainer's: jobfile.h). */
static int spec_load(const pst_jobfile *jf, launch_spec *s, pst_status *st) {
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "job");
    snprintf(s->backend, sizeof s->backend, "local");
    snprintf(s->run_root, sizeof s->run_root, "runs");
    snprintf(s->coord_bind, sizeof s->coord_bind, "127.0.0.1:0");
    s->max_restarts = 3;
    s->backoff_ms = 1000;
    s->heartbeat_ms = 1000;
    s->n_ps = jf->n_ps;
    s->n_workers = jf->n_workers;
    const char *path = jf->path;
    cJSON *root = cJSON_Parse(jf->text);
    if (!root) return pst_status_set(st, PST_E_INVALID, "%s: invalid JSON", path);
    int rc = 0;
    int64_t v = 0;
    if (!cJSON_GetObjectItemCaseSensitive(root, "cluster") || s->n_workers < 1) {
        rc = pst_status_set(st, PST_E_INVALID, "%s: a job file for launch needs \"cluster\" with "
                            "at least one worker, e.g. {\"ps\": 2, \"worker\": 2}", path);
        goto done;
    }
    if (jf->cluster) {
        const char *text = jf->text;
        if (!(s->fixed = pst_cluster_parse(text, path, st))) {
            rc = st->code;
            goto done;
        }
    }
    if ((rc = get_str(root, "name", path, s->name, sizeof s->name, st)) < 0) goto done;
    for (const char *p = s->name; *p; p++)
        if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
            rc = pst_status_set(st, PST_E_INVALID, "%s: \"name\" may hold letters, digits, '-', "
                                "'_' and '.' only", path);
            goto done;
        }
    if ((rc = get_str(root, "backend", path, s->backend, sizeof s->backend, st)) < 0) goto done;
    if (strcmp(s->backend, "local") != 0 && strcmp(s->backend, "ssh") != 0 &&
        strcmp(s->backend, "mpirun") != 0) {
        rc = pst_status_set(st, PST_E_INVALID, "%s: \"backend\": '%s' is not local, ssh or "
                            "mpirun", path, s->backend);
        goto done;
    }
    const cJSON *mpi = cJSON_GetObjectItemCaseSensitive(root, "mpirun");
    if (mpi) {
        if (!cJSON_IsObject(mpi)) {
            rc = pst_status_set(st, PST_E_INVALID, "%s: \"mpirun\" must be an object like "
                                "{\"hostfile\": \"hosts\", \"args\": [\"--mca\", ...]}", path);
            goto done;
        }
        if ((rc = get_str(mpi, "hostfile", path, s->mpi_hostfile, sizeof s->mpi_hostfile, st)) < 0 ||
            (rc = get_strv(mpi, "args", path, &s->mpi_args, st)) < 0)
            goto done;
    }
    if ((rc = get_str(root, "run_dir", path, s->run_root, sizeof s->run_root, st)) < 0 ||
        (rc = get_str(root, "tls_dir", path, s->tls_dir, sizeof s->tls_dir, st)) < 0 ||
        (rc = get_str(root, "coordinator", path, s->coord_bind, sizeof s->coord_bind, st)) < 0 ||
        (rc = get_str(root, "checkpoint_dir", path, s->checkpoint_dir, sizeof s->checkpoint_dir,
                      st)) < 0 ||
        (rc = get_strv(root, "ps_flags", path, &s->ps_flags, st)) < 0 ||
        (rc = get_strv(root, "worker_flags", path, &s->worker_flags, st)) < 0)
        goto done;
    if ((rc = get_int(root, "heartbeat_ms", path, 50, 60000, &v, st)) < 0) goto done;
    if (rc) s->heartbeat_ms = v;
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(root, "insecure");
    if (ins && !cJSON_IsBool(ins)) {
        rc = pst_status_set(st, PST_E_INVALID, "%s: \"insecure\" must be true or false", path);
        goto done;
    }
    s->insecure = ins && cJSON_IsTrue(ins);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "restarts");
    if (r) {
        if (!cJSON_IsObject(r)) {
            rc = pst_status_set(st, PST_E_INVALID, "%s: \"restarts\" must be an object like "
                                "{\"max\": 3, \"backoff_ms\": 1000}", path);
            goto done;
        }
        if ((rc = get_int(r, "max", path, 0, 1000, &v, st)) < 0) goto done;
        if (rc) s->max_restarts = (int)v;
        if ((rc = get_int(r, "backoff_ms", path, 0, 600000, &v, st)) < 0) goto done;
        if (rc) s->backoff_ms = v;
    }
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(root, "hosts");
    if (h) {
        if (!cJSON_IsObject(h)) {
            rc = pst_status_set(st, PST_E_INVALID, "%s: \"hosts\" must be an object like "
                                "{\"ps\": [\"10.0.0.1\"], \"worker\": [\"10.0.0.2\"]}", path);
            goto done;
        }
        if ((rc = get_strv(h, "ps", path, &s->ps_hosts, st)) < 0 ||
            (rc = get_strv(h, "worker", path, &s->worker_hosts, st)) < 0)
            goto done;
    }
    const cJSON *ssh = cJSON_GetObjectItemCaseSensitive(root, "ssh");
    s->ssh_port = 22;
    if (ssh) {
        if (!cJSON_IsObject(ssh)) {
            rc = pst_status_set(st, PST_E_INVALID, "%s: \"ssh\" must be an object", path);
            goto done;
        }
        if ((rc = get_str(ssh, "user", path, s->ssh_user, sizeof s->ssh_user, st)) < 0 ||
            (rc = get_str(ssh, "identity", path, s->ssh_identity, sizeof s->ssh_identity, st)) < 0 ||
            (rc = get_str(ssh, "bin_dir", path, s->remote_bin, sizeof s->remote_bin, st)) < 0 ||
            (rc = get_strv(ssh, "options", path, &s->ssh_options, st)) < 0)
            goto done;
        if ((rc = get_int(ssh, "port", path, 1, 65535, &v, st)) < 0) goto done;
        if (rc) s->ssh_port = (int)v;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    if (rc < 0) spec_free(s);
    return rc < 0 ? rc : 0;
}

/* ---- tasks and backends ---------------------------------------------------------------- */

typedef struct task {
    char job[16];
    int index;
    char name[32];      /* "ps0", "worker1": log and TLS subdirectory names */
    char host[128];     /* where it runs */
    char bind[192];     /* host:port it binds (port 0: any) */
    pid_t pid;          /* the local child (the task, or its ssh client); 0 when not running */
    int stdin_fd;       /* ssh: the pipe that keeps the remote task alive; -1 */
    int restarts;
    int finished;       /* exited cleanly */
    int exit_code;      /* last exit: code, or 128 + signal */
    double start_at;    /* a pending restart's time (0: none) */
    double started;     /* when the current incarnation started */
    double leave_by;    /* scale-down asked it to leave; killed after this time (0: not) */
    int removed;        /* left the job (scale-down): never restarted, not waited for */
} task;

typedef struct launcher launcher;

/* A launch backend: how a task's process is started on its host. */
typedef struct backend_ops {
    const char *name;
    int (*start)(launcher *L, task *t, pst_status *st);
} backend_ops;

#define RUN_MAX 2048 /* a run directory's path; files in it fit in PATH_MAX */

struct launcher {
    launch_spec spec;
    pst_jobfile jf;
    char run[RUN_MAX];
    char job_copy[PATH_MAX], token_path[PATH_MAX], ckpt[PATH_MAX], events[PATH_MAX];
    char bin_dir[PATH_MAX];
    const backend_ops *backend;
    pst_security *sec;
    pst_coord *co;
    task *tasks;
    int n_tasks, cap_tasks;
    int job_restarts;
    const char *backend_override; /* --backend */
    int quiet, tty;
    double started, last_line;
    int64_t total_steps;
};

static volatile sig_atomic_t got_signal, signal_count, got_scale;
static void on_signal(int sig) {
    if (sig == SIGUSR1) { /* pstrain scale wrote RUN/scale.json */
        got_scale = 1;
        return;
    }
    got_signal = sig;
    signal_count++;
}

/* The task's TLS directory: tls_dir/<name> when it exists, else tls_dir itself. */
static void task_tls_dir(const launcher *L, const task *t, char *out, size_t len) {
    out[0] = '\0';
    if (!L->spec.tls_dir[0]) return;
    char sub[PATH_MAX + 64];
    snprintf(sub, sizeof sub, "%s/%s", L->spec.tls_dir, t->name);
    struct stat sb;
    snprintf(out, len, "%s", stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode) ? sub : L->spec.tls_dir);
}

/* The task's command line (argv, NULL-terminated; strings owned by `store`). */
static int task_argv(launcher *L, const task *t, const char *bin_dir, int token_stdin, strv *store,
                     pst_status *st) {
    char buf[PATH_MAX + 64];
    int ps = strcmp(t->job, "ps") == 0;
    snprintf(buf, sizeof buf, "%s/%s", bin_dir, ps ? "pstrain-ps" : "pstrain-worker");
    int rc = strv_push(store, buf);
    if (!ps) {
        rc |= strv_push(store, "--job");
        rc |= strv_push(store, L->job_copy);
    }
    rc |= strv_push(store, "--coordinator");
    rc |= strv_push(store, pst_coord_address(L->co));
    rc |= strv_push(store, "--task");
    snprintf(buf, sizeof buf, "%d", t->index);
    rc |= strv_push(store, buf);
    rc |= strv_push(store, "--bind");
    rc |= strv_push(store, t->bind);
    snprintf(buf, sizeof buf, "%lld", (long long)L->spec.heartbeat_ms);
    rc |= strv_push(store, "--heartbeat-ms");
    rc |= strv_push(store, buf);
    rc |= strv_push(store, "--checkpoint-dir"); /* the PS: where Save/Restore may write */
    rc |= strv_push(store, L->ckpt);
    if (!ps) {
        if (t->index == 0) {
            rc |= strv_push(store, "--events-dir");
            rc |= strv_push(store, L->events);
        }
        rc |= strv_push(store, "--quiet");
    }
    char tls[PATH_MAX + 64];
    task_tls_dir(L, t, tls, sizeof tls);
    if (tls[0]) {
        rc |= strv_push(store, "--tls-dir");
        rc |= strv_push(store, tls);
    }
    if (L->spec.insecure) rc |= strv_push(store, "--insecure");
    if (token_stdin) rc |= strv_push(store, "--token-stdin");
    const strv *extra = ps ? &L->spec.ps_flags : &L->spec.worker_flags;
    for (int i = 0; i < extra->n; i++) rc |= strv_push(store, extra->v[i]);
    if (rc || store->n >= MAX_ARGS)
        return pst_status_set(st, PST_E_EXHAUSTED, "%s: command line too long", t->name);
    return 0;
}

static int open_log(const launcher *L, const task *t, pst_status *st) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/logs/%s.log", L->run, t->name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return pst_status_set(st, PST_E_IO, "cannot open %s: %s", path, strerror(errno));
    return fd;
}

/* posix_spawn (no fork: the launcher runs gRPC threads) in a new process group, with stdout and
 * stderr in the task's log and stdin from /dev/null or a pipe. */
static int spawn(launcher *L, task *t, char **argv, char **envp, int want_stdin, pst_status *st) {
    int log = open_log(L, t, st);
    if (log < 0) return log;
    int pipefd[2] = {-1, -1};
    if (want_stdin && pipe2(pipefd, O_CLOEXEC) < 0) {
        close(log);
        return pst_status_set(st, PST_E_IO, "pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    if (want_stdin)
        posix_spawn_file_actions_adddup2(&fa, pipefd[0], 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, log, 1);
    posix_spawn_file_actions_adddup2(&fa, log, 2);
    posix_spawnattr_setpgroup(&at, 0);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    /* SIGINT/SIGTERM go back to default in the child (the launcher catches them). */
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int e = posix_spawn(&pid, argv[0], &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(log);
    if (want_stdin) close(pipefd[0]);
    if (e != 0) {
        if (want_stdin) close(pipefd[1]);
        return pst_status_set(st, PST_E_IO, "cannot start %s for %s: %s", argv[0], t->name,
                              strerror(e));
    }
    t->pid = pid;
    t->stdin_fd = want_stdin ? pipefd[1] : -1;
    return 0;
}

static char **task_env(launcher *L, int with_token_file, strv *store) {
    char buf[PATH_MAX + 64];
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "PST_JOB_TOKEN", 13) != 0 && strncmp(*e, "PST_LAUNCHER_PID=", 17) != 0 &&
            strncmp(*e, "TF_CONFIG=", 10) != 0)
            strv_push(store, *e);
    if (with_token_file) {
        snprintf(buf, sizeof buf, "PST_JOB_TOKEN_FILE=%s", L->token_path);
        strv_push(store, buf);
    }
    snprintf(buf, sizeof buf, "PST_LAUNCHER_PID=%ld", (long)getpid());
    strv_push(store, buf);
    char **v = realloc(store->v, (size_t)(store->n + 1) * sizeof *v);
    if (!v) return NULL;
    store->v = v;
    v[store->n] = NULL;
    return v;
}

static int local_start(launcher *L, task *t, pst_status *st) {
    strv args = {0}, env = {0};
    int rc = task_argv(L, t, L->bin_dir, 0, &args, st);
    char **envp = rc == 0 ? task_env(L, 1, &env) : NULL;
    if (rc == 0 && !envp) rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    if (rc == 0) {
        char **argv = realloc(args.v, (size_t)(args.n + 1) * sizeof *argv);
        if (argv) {
            args.v = argv;
            argv[args.n] = NULL;
            rc = spawn(L, t, argv, envp, 0, st);
        } else {
            rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        }
    }
    strv_free(&args);
    strv_free(&env);
    return rc;
}

/* Quotes s for a POSIX shell on the remote side. */
static void shell_quote(const char *s, char *out, size_t len) {
    size_t o = 0;
    if (o < len) out[o++] = '\'';
    for (; *s && o + 5 < len; s++) {
        if (*s == '\'') {
            memcpy(out + o, "'\\''", 4);
            o += 4;
        } else {
            out[o++] = *s;
        }
    }
    if (o + 1 < len) out[o++] = '\'';
    out[o < len ? o : len - 1] = '\0';
}

/* ssh HOST 'exec BIN ARGS --token-stdin': the token travels on the ssh connection's stdin (never
 * on a command line), and the remote task exits when that stdin closes (the launcher died or
 * stopped it). */
static int ssh_start(launcher *L, task *t, pst_status *st) {
    strv remote = {0}, args = {0}, env = {0};
    const char *bin = L->spec.remote_bin[0] ? L->spec.remote_bin : L->bin_dir;
    int rc = task_argv(L, t, bin, 1, &remote, st);
    if (rc < 0) goto out;
    char cmd[16384];
    size_t off = (size_t)snprintf(cmd, sizeof cmd, "exec");
    for (int i = 0; i < remote.n && off < sizeof cmd; i++) {
        char q[4096];
        shell_quote(remote.v[i], q, sizeof q);
        off += (size_t)snprintf(cmd + off, sizeof cmd - off, " %s", q);
    }
    if (off >= sizeof cmd) {
        rc = pst_status_set(st, PST_E_INVALID, "%s: remote command too long", t->name);
        goto out;
    }
    char port[16], target[256];
    snprintf(port, sizeof port, "%d", L->spec.ssh_port);
    if (L->spec.ssh_user[0])
        snprintf(target, sizeof target, "%s@%s", L->spec.ssh_user, t->host);
    else
        snprintf(target, sizeof target, "%s", t->host);
    rc |= strv_push(&args, "/usr/bin/ssh");
    rc |= strv_push(&args, "-p");
    rc |= strv_push(&args, port);
    rc |= strv_push(&args, "-o");
    rc |= strv_push(&args, "BatchMode=yes");
    rc |= strv_push(&args, "-o");
    rc |= strv_push(&args, "ServerAliveInterval=5");
    if (L->spec.ssh_identity[0]) {
        rc |= strv_push(&args, "-i");
        rc |= strv_push(&args, L->spec.ssh_identity);
    }
    for (int i = 0; i < L->spec.ssh_options.n; i++) rc |= strv_push(&args, L->spec.ssh_options.v[i]);
    rc |= strv_push(&args, target);
    rc |= strv_push(&args, cmd);
    char **argv = rc ? NULL : realloc(args.v, (size_t)(args.n + 1) * sizeof *argv);
    char **envp = argv ? task_env(L, 0, &env) : NULL;
    if (!argv || !envp) {
        rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        goto out;
    }
    args.v = argv;
    argv[args.n] = NULL;
    if ((rc = spawn(L, t, argv, envp, 1, st)) < 0) goto out;
    /* The token's line; the pipe stays open for the task's life. */
    const char *tok = pst_security_token(L->sec);
    char line[512];
    int n = snprintf(line, sizeof line, "%s\n", tok);
    if (write(t->stdin_fd, line, (size_t)n) != n)
        rc = pst_status_set(st, PST_E_IO, "%s: cannot hand the token to ssh: %s", t->name,
                            strerror(errno));
    memset(line, 0, sizeof line);
out:
    strv_free(&remote);
    strv_free(&args);
    strv_free(&env);
    return rc;
}

static const backend_ops local_backend = {"local", local_start};
static const backend_ops ssh_backend = {"ssh", ssh_start};

/* ---- the run directory ------------------------------------------------------------------ */

static int write_text(const char *path, const char *text, pst_status *st) {
    return pst_file_write_atomic(path, text, strlen(text), st);
}

static void task_name(const char *job, int i, char *out, size_t len) {
    snprintf(out, len, "%s%d", job, i);
}

/* Fills task t of job/index: its name, host and the address it binds. */
static void init_task(launcher *L, task *t, int ps, int index) {
    launch_spec *s = &L->spec;
    memset(t, 0, sizeof *t);
    snprintf(t->job, sizeof t->job, "%s", ps ? "ps" : "worker");
    t->index = index;
    t->stdin_fd = -1;
    task_name(t->job, t->index, t->name, sizeof t->name);
    const strv *hosts = ps ? &s->ps_hosts : &s->worker_hosts;
    const char *fixed = s->fixed ? pst_cluster_address(s->fixed, t->job, t->index) : NULL;
    if (fixed) {
        snprintf(t->bind, sizeof t->bind, "%s", fixed);
        const char *colon = strrchr(fixed, ':');
        snprintf(t->host, sizeof t->host, "%.*s", (int)(colon - fixed), fixed);
    } else {
        snprintf(t->host, sizeof t->host, "%s",
                 hosts->n ? hosts->v[t->index % hosts->n] : "127.0.0.1");
        snprintf(t->bind, sizeof t->bind, "%s%s%s:0", strchr(t->host, ':') ? "[" : "",
                 t->host, strchr(t->host, ':') ? "]" : "");
    }
}

static int make_tasks(launcher *L, pst_status *st) {
    launch_spec *s = &L->spec;
    free(L->tasks);
    L->n_tasks = L->cap_tasks = s->n_ps + s->n_workers;
    L->tasks = calloc((size_t)L->n_tasks, sizeof *L->tasks);
    if (!L->tasks) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    for (int k = 0; k < L->n_tasks; k++)
        init_task(L, &L->tasks[k], k < s->n_ps, k < s->n_ps ? k : k - s->n_ps);
    return 0;
}

/* Whether worker slot `index` belongs to one of the launcher's own tasks still in the job. */
static task *own_worker(launcher *L, int index) {
    for (int k = 0; k < L->n_tasks; k++) {
        task *t = &L->tasks[k];
        if (!t->removed && strcmp(t->job, "worker") == 0 && t->index == index) return t;
    }
    return NULL;
}

/* state.json: what `pstrain status` shows, rewritten atomically. */
static void write_state(launcher *L, const pst_coord_view *v, const char *status) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "run", L->run);
    cJSON_AddStringToObject(o, "name", L->spec.name);
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddNumberToObject(o, "launcher_pid", (double)getpid());
    cJSON_AddStringToObject(o, "coordinator", L->co ? pst_coord_address(L->co) : "");
    cJSON_AddStringToObject(o, "checkpoint_dir", L->ckpt);
    cJSON_AddNumberToObject(o, "epoch", v ? (double)v->epoch : 0);
    cJSON_AddNumberToObject(o, "job_restarts", L->job_restarts);
    cJSON_AddNumberToObject(o, "uptime_s", pst_clock_now() - L->started);
    int64_t gs = 0, total = L->total_steps;
    double eps = 0;
    const char *ckpt = "";
    cJSON *arr = cJSON_AddArrayToObject(o, "tasks");
    for (int k = 0; k < L->n_tasks; k++) {
        task *t = &L->tasks[k];
        const pst_coord_member *m = NULL;
        for (int i = 0; v && i < v->n; i++)
            if (strcmp(v->members[i].job, t->job) == 0 && v->members[i].index == t->index)
                m = &v->members[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "task", t->name);
        cJSON_AddStringToObject(e, "host", t->host);
        cJSON_AddStringToObject(e, "address", m ? m->address : "");
        const char *state = t->finished ? "done" : t->pid ? (m ? m->state_text : "starting")
                            : t->start_at > 0 ? "restarting" : "exited";
        if (m && m->state == PST_MEMBER_SILENT && t->pid) state = "silent";
        if (t->removed) state = "left";
        else if (t->leave_by > 0) state = "leaving";
        cJSON_AddStringToObject(e, "state", state[0] ? state : "starting");
        cJSON_AddNumberToObject(e, "pid", t->pid);
        cJSON_AddNumberToObject(e, "restarts", t->restarts);
        cJSON_AddNumberToObject(e, "exit_code", t->exit_code);
        if (m) {
            char inc[32];
            snprintf(inc, sizeof inc, "%016llx", (unsigned long long)m->incarnation);
            cJSON_AddStringToObject(e, "incarnation", inc);
            cJSON_AddNumberToObject(e, "joined_s", m->joined_s);
            cJSON_AddNumberToObject(e, "global_step", (double)m->global_step);
            cJSON_AddNumberToObject(e, "examples_per_sec", m->examples_per_sec);
            cJSON_AddNumberToObject(e, "loss", m->loss);
            if (strcmp(t->job, "worker") == 0 && t->pid && m->state == PST_MEMBER_RUNNING)
                eps += m->examples_per_sec;
            if (m->global_step > gs) gs = m->global_step;
            if (m->total_steps > total) total = m->total_steps;
            if (m->last_checkpoint[0]) ckpt = m->last_checkpoint;
            if (m->reason[0]) cJSON_AddStringToObject(e, "reason", m->reason);
        }
        cJSON_AddItemToArray(arr, e);
    }
    /* The membership of this epoch: every task in the job, with when it joined (seconds since
     * the launcher started, and as a wall-clock time). */
    cJSON *mem = cJSON_AddArrayToObject(o, "members");
    int n_workers = 0;
    double wall0 = (double)time(NULL) - (pst_clock_now() - L->started);
    for (int i = 0; v && i < v->n; i++) {
        const pst_coord_member *m = &v->members[i];
        if (m->vacant || m->address[0] == '\0') continue;
        cJSON *e = cJSON_CreateObject();
        char name[48], inc[32], when[32];
        task_name(m->job, m->index, name, sizeof name);
        snprintf(inc, sizeof inc, "%016llx", (unsigned long long)m->incarnation);
        time_t jt = (time_t)(wall0 + m->joined_s);
        struct tm tm;
        localtime_r(&jt, &tm);
        strftime(when, sizeof when, "%H:%M:%S", &tm);
        cJSON_AddStringToObject(e, "task", name);
        cJSON_AddStringToObject(e, "state", m->leaving ? "leaving" : pst_member_state_name(m->state));
        cJSON_AddStringToObject(e, "incarnation", inc);
        cJSON_AddNumberToObject(e, "joined_s", m->joined_s);
        cJSON_AddStringToObject(e, "joined_at", when);
        cJSON_AddBoolToObject(e, "launched", strcmp(m->job, "ps") == 0 || own_worker(L, m->index));
        cJSON_AddItemToArray(mem, e);
        if (strcmp(m->job, "worker") == 0 && m->state == PST_MEMBER_RUNNING) {
            n_workers++;
            if (!own_worker(L, m->index)) eps += m->examples_per_sec;
        }
    }
    cJSON_AddNumberToObject(o, "workers", n_workers);
    cJSON_AddNumberToObject(o, "global_step", (double)gs);
    cJSON_AddNumberToObject(o, "total_steps", (double)total);
    cJSON_AddNumberToObject(o, "examples_per_sec", eps);
    cJSON_AddStringToObject(o, "last_checkpoint", ckpt);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/state.json", L->run);
    pst_status st = {0};
    if (write_text(path, text, &st) < 0) fprintf(stderr, "pstrain launch: %s\n", st.msg);
    free(text);
}

/* One line of job progress: on a terminal redrawn in place, else every 10 s. */
static void progress_line(launcher *L, const pst_coord_view *v, int force) {
    if (L->quiet) return;
    double now = pst_clock_now();
    if (!force && !L->tty && now - L->last_line < 10) return;
    L->last_line = now;
    int64_t gs = 0, total = L->total_steps;
    double eps = 0, loss = NAN;
    const char *ckpt = "";
    int restarts = L->job_restarts, running = 0;
    for (int i = 0; i < v->n; i++) {
        const pst_coord_member *m = &v->members[i];
        if (m->global_step > gs) gs = m->global_step;
        if (m->total_steps > total) total = m->total_steps;
        if (strcmp(m->job, "worker") == 0 && m->index == 0) loss = m->loss;
        if (strcmp(m->job, "worker") == 0 && m->state == PST_MEMBER_RUNNING) {
            eps += m->examples_per_sec;
            running++;
        }
        if (m->last_checkpoint[0]) ckpt = m->last_checkpoint;
    }
    for (int k = 0; k < L->n_tasks; k++) restarts += L->tasks[k].restarts;
    const char *base = strrchr(ckpt, '/');
    char eta[32] = "?";
    /* ETA from the job's rate: examples/s over the workers' batch is unknown here, so use the
     * global step's own rate since start. */
    double el = now - L->started;
    if (gs > 0 && total > gs && el > 1) pst_format_duration((double)(total - gs) * el / (double)gs, eta, sizeof eta);
    fprintf(stdout, "%sstep %lld/%lld  loss %.4f  %.0f examples/s (%d workers)  ETA %s  ckpt %s  "
                    "restarts %d%s",
            L->tty ? "\r\033[K" : "", (long long)gs, (long long)total, isnan(loss) ? 0.0 : loss,
            eps, running, eta, ckpt[0] ? (base ? base + 1 : ckpt) : "-", restarts,
            L->tty ? "" : "\n");
    fflush(stdout);
}

/* ---- supervision ------------------------------------------------------------------------ */

static int start_task(launcher *L, task *t, pst_status *st) {
    t->start_at = 0;
    t->started = pst_clock_now();
    int rc = L->backend->start(L, t, st);
    if (rc == 0 && !L->quiet && (t->restarts > 0 || L->job_restarts > 0))
        fprintf(stderr, "%spstrain launch: started %s again (pid %ld)\n", L->tty ? "\r\033[K" : "",
                t->name, (long)t->pid);
    return rc;
}

static void signal_task(task *t, int sig) {
    if (t->pid > 0) kill(-t->pid, sig); /* its process group: the task and anything it started */
}

static void describe_exit(int status, char *buf, size_t len, int *code) {
    if (WIFEXITED(status)) {
        *code = WEXITSTATUS(status);
        snprintf(buf, len, "exited with status %d", *code);
    } else if (WIFSIGNALED(status)) {
        *code = 128 + WTERMSIG(status);
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
        *code = 1;
        snprintf(buf, len, "ended (status 0x%x)", status);
    }
}

/* Stops every running task: SIGTERM, then SIGKILL after grace_s; reaps them. */
static void stop_all(launcher *L, double grace_s) {
    for (int k = 0; k < L->n_tasks; k++) signal_task(&L->tasks[k], SIGTERM);
    double end = pst_clock_now() + grace_s;
    for (;;) {
        int alive = 0;
        for (int k = 0; k < L->n_tasks; k++) {
            task *t = &L->tasks[k];
            if (t->pid <= 0) continue;
            int status;
            pid_t r = waitpid(t->pid, &status, WNOHANG);
            if (r == t->pid || (r < 0 && errno == ECHILD)) {
                if (t->stdin_fd >= 0) close(t->stdin_fd);
                t->stdin_fd = -1;
                t->pid = 0;
            } else {
                alive++;
            }
        }
        if (!alive) return;
        if (pst_clock_now() > end) {
            for (int k = 0; k < L->n_tasks; k++) signal_task(&L->tasks[k], SIGKILL);
            end = pst_clock_now() + 5;
            grace_s = 0;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ---- elastic membership: pstrain scale ------------------------------------------------- */

/* Grows or shrinks the job to `target` workers, counting the launcher's workers (not leaving)
 * and workers that joined by hand and run. New workers take slots the coordination service
 * reserves (vacant ones first); leaving ones are the highest worker ids (never the chief):
 * they finish their step, deregister and exit. */
static int apply_scale(launcher *L, int target, pst_status *st) {
    if (L->spec.fixed)
        return pst_status_set(st, PST_E_INVALID, "pstrain scale: the job file's cluster lists "
                              "addresses; scaling needs task counts ({\"ps\": 2, \"worker\": 2})");
    pst_coord_view v;
    if (pst_coord_snapshot(L->co, &v) < 0) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    /* The members that count, by worker id. */
    int n = 0, cap = v.n + L->n_tasks + 1;
    int *ids = calloc((size_t)cap, sizeof *ids);
    if (!ids) {
        pst_coord_view_destroy(&v);
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    }
    for (int k = 0; k < L->n_tasks; k++) {
        task *t = &L->tasks[k];
        if (strcmp(t->job, "worker") == 0 && !t->removed && t->leave_by == 0) ids[n++] = t->index;
    }
    for (int i = 0; i < v.n; i++) {
        const pst_coord_member *m = &v.members[i];
        if (strcmp(m->job, "worker") == 0 && !m->vacant && !m->leaving &&
            m->state == PST_MEMBER_RUNNING && !own_worker(L, m->index))
            ids[n++] = m->index;
    }
    pst_coord_view_destroy(&v);
    int rc = 0;
    if (!L->quiet && target != n)
        fprintf(stderr, "%spstrain launch: scaling from %d to %d workers\n",
                L->tty ? "\r\033[K" : "", n, target);
    while (n > target) {
        /* the highest worker id that is not the chief */
        int best = -1;
        for (int i = 0; i < n; i++)
            if (ids[i] > 0 && (best < 0 || ids[i] > ids[best])) best = i;
        if (best < 0) break;
        int index = ids[best];
        ids[best] = ids[--n];
        pst_coord_request_leave(L->co, "worker", index);
        task *t = own_worker(L, index);
        if (t) t->leave_by = pst_clock_now() + 120;
    }
    free(ids);
    for (; n < target && rc == 0; n++) {
        int index = pst_coord_reserve(L->co, "worker", st);
        if (index < 0) return st->code;
        task *t = own_worker(L, index);
        if (!t) {
            if (L->n_tasks == L->cap_tasks) {
                int nc = L->cap_tasks ? 2 * L->cap_tasks : 4;
                task *nt = realloc(L->tasks, (size_t)nc * sizeof *nt);
                if (!nt) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
                L->tasks = nt;
                L->cap_tasks = nc;
            }
            t = &L->tasks[L->n_tasks++];
        }
        init_task(L, t, 0, index);
        rc = start_task(L, t, st);
        if (rc == 0 && !L->quiet)
            fprintf(stderr, "pstrain launch: started %s (pid %ld) to join the job\n", t->name,
                    (long)t->pid);
    }
    return rc;
}

/* RUN/scale.json ({"workers": N}, written by pstrain scale before it signals): N, or -1. */
static int read_scale_request(launcher *L) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/scale.json", L->run);
    uint8_t *buf = NULL;
    size_t len = 0;
    pst_status st = {0};
    if (pst_file_read(path, 4096, &buf, &len, &st) < 0) return -1;
    char *text = strndup((const char *)buf, len);
    free(buf);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *w = o ? cJSON_GetObjectItemCaseSensitive(o, "workers") : NULL;
    int n = cJSON_IsNumber(w) && w->valuedouble >= 1 && w->valuedouble <= 4096 ? (int)w->valuedouble
                                                                              : -1;
    cJSON_Delete(o);
    unlink(path);
    return n;
}

/* Workers that joined by hand and ended (left, failed, fell silent) leave the membership: no
 * launcher restarts them. */
static void drop_gone_joiners(launcher *L, const pst_coord_view *v) {
    for (int i = 0; i < v->n; i++) {
        const pst_coord_member *m = &v->members[i];
        if (strcmp(m->job, "worker") != 0 || m->vacant || m->address[0] == '\0' ||
            own_worker(L, m->index))
            continue;
        if (m->state == PST_MEMBER_DONE || m->state == PST_MEMBER_FAILED ||
            m->state == PST_MEMBER_SILENT) {
            pst_coord_vacate(L->co, "worker", m->index);
            if (!L->quiet)
                fprintf(stderr, "%spstrain launch: worker %d (joined by hand) left the job (%s)\n",
                        L->tty ? "\r\033[K" : "", m->index, pst_member_state_name(m->state));
        }
    }
}

/* Whether the chief (worker 0) exited cleanly: the job trained to its last step. */
static int chief_finished(const launcher *L) {
    for (int k = 0; k < L->n_tasks; k++)
        if (strcmp(L->tasks[k].job, "worker") == 0 && L->tasks[k].index == 0)
            return L->tasks[k].finished;
    return 0;
}

/* Runs the job until it ends; returns the launcher's exit code. */
static int supervise(launcher *L) {
    pst_status st = {0};
    for (int k = 0; k < L->n_tasks; k++)
        if (start_task(L, &L->tasks[k], &st) < 0) {
            fprintf(stderr, "pstrain launch: %s\n", st.msg);
            stop_all(L, 5);
            return 1;
        }
    int stopping = 0, result = -1;
    double stop_deadline = 0;
    char why[1200] = "";
    for (;;) {
        /* Signals: the first asks for a clean stop (a checkpoint, then every task exits); the
         * second kills. */
        if (got_signal && !stopping) {
            stopping = 1;
            stop_deadline = pst_clock_now() + 120;
            pst_coord_request_stop(L->co);
            if (!L->quiet)
                fprintf(stderr, "%spstrain launch: stopping (checkpoint, then every task exits); "
                                "interrupt again to kill\n", L->tty ? "\r\033[K\n" : "");
        }
        if (signal_count >= 2 || (stopping && pst_clock_now() > stop_deadline)) {
            stop_all(L, 0);
            snprintf(why, sizeof why, "killed on request");
            result = 130;
            break;
        }
        /* Reap. */
        for (int k = 0; k < L->n_tasks; k++) {
            task *t = &L->tasks[k];
            if (t->pid <= 0) continue;
            int status;
            pid_t r = waitpid(t->pid, &status, WNOHANG);
            if (r != t->pid) continue;
            if (t->stdin_fd >= 0) close(t->stdin_fd);
            t->stdin_fd = -1;
            t->pid = 0;
            char how[128];
            describe_exit(status, how, sizeof how, &t->exit_code);
            pst_coord_task_exited(L->co, t->job, t->index, 0, t->exit_code != 0, how);
            if (t->leave_by > 0) {
                /* Scale-down: it left (or was made to); its slot leaves the membership. */
                t->removed = 1;
                t->leave_by = 0;
                pst_coord_vacate(L->co, t->job, t->index);
                if (!L->quiet)
                    fprintf(stderr, "%spstrain launch: %s left the job (%s)\n",
                            L->tty ? "\r\033[K" : "", t->name, how);
                continue;
            }
            if (t->exit_code == 0) {
                t->finished = 1;
                continue;
            }
            int is_ps = strcmp(t->job, "ps") == 0;
            if (stopping) continue;
            if (!L->quiet)
                fprintf(stderr, "%spstrain launch: %s (pid %ld) %s; see %s/logs/%s.log\n",
                        L->tty ? "\r\033[K" : "", t->name, (long)r, how, L->run, t->name);
            if (!is_ps && t->index != 0 && chief_finished(L)) {
                /* The chief trained to the last step: nothing is left for this worker, and
                 * the PS exit once no worker runs, so a new incarnation would only wait for
                 * them until its restart budget is spent. */
                if (!L->quiet)
                    fprintf(stderr, "pstrain launch: the chief finished; %s is not restarted\n",
                            t->name);
                t->finished = 1;
                continue;
            }
            if (is_ps) {
                /* A PS holds state no one else has: restart the whole job from the newest
                 * checkpoint (at most one checkpoint interval of steps is redone). */
                if (L->job_restarts >= L->spec.max_restarts) {
                    snprintf(why, sizeof why, "%s %s and the job's restart budget (%d) is spent",
                             t->name, how, L->spec.max_restarts);
                    stop_all(L, 5);
                    result = 1;
                    break;
                }
                L->job_restarts++;
                if (!L->quiet)
                    fprintf(stderr, "pstrain launch: restarting the job from the newest "
                                    "checkpoint in %s (job restart %d of %d)\n",
                            L->ckpt, L->job_restarts, L->spec.max_restarts);
                stop_all(L, 5);
                for (int j = 0; j < L->n_tasks; j++) {
                    L->tasks[j].finished = 0;
                    L->tasks[j].start_at = pst_clock_now() + (double)L->spec.backoff_ms / 1000.0;
                }
                break;
            }
            if (t->restarts >= L->spec.max_restarts) {
                snprintf(why, sizeof why, "%s %s and its restart budget (%d) is spent", t->name,
                         how, L->spec.max_restarts);
                stop_all(L, 5);
                result = 1;
                break;
            }
            /* Backoff doubles per restart of this task, at most 30 s. */
            double delay = (double)L->spec.backoff_ms / 1000.0 * (double)(1 << (t->restarts < 5 ? t->restarts : 5));
            if (delay > 30) delay = 30;
            t->restarts++;
            t->start_at = pst_clock_now() + delay;
        }
        if (result >= 0) break;
        /* pstrain scale; and leaving workers that overstay are made to go. */
        if (got_scale && !stopping) {
            got_scale = 0;
            int target = read_scale_request(L);
            if (target > 0 && apply_scale(L, target, &st) < 0)
                fprintf(stderr, "%spstrain launch: %s\n", L->tty ? "\r\033[K" : "", st.msg);
            pst_status_clear(&st);
        }
        for (int k = 0; k < L->n_tasks; k++)
            if (L->tasks[k].leave_by > 0 && pst_clock_now() > L->tasks[k].leave_by)
                signal_task(&L->tasks[k], SIGKILL);
        /* Pending (re)starts. */
        for (int k = 0; k < L->n_tasks; k++) {
            task *t = &L->tasks[k];
            if (!stopping && !t->removed && t->pid == 0 && t->start_at > 0 &&
                pst_clock_now() >= t->start_at &&
                start_task(L, t, &st) < 0) {
                snprintf(why, sizeof why, "%s", st.msg);
                stop_all(L, 5);
                result = 1;
                break;
            }
        }
        if (result >= 0) break;
        /* The job is over when every worker finished; PS exit by themselves once workers are
         * done (or are stopped after a grace period). */
        int workers_done = 1, all_done = 1, running = 0;
        for (int k = 0; k < L->n_tasks; k++) {
            task *t = &L->tasks[k];
            if (t->removed) continue;
            if (strcmp(t->job, "worker") == 0 && !t->finished) workers_done = 0;
            if (t->pid > 0) running++;
            if (!t->finished && t->pid == 0 && t->start_at == 0) all_done = 0;
            if (t->pid > 0 || t->start_at > 0) all_done = 0;
        }
        if (stopping && running == 0) {
            result = 0;
            snprintf(why, sizeof why, "stopped");
            break;
        }
        pst_coord_view v;
        int have_view = pst_coord_snapshot(L->co, &v) == 0;
        if (have_view) {
            drop_gone_joiners(L, &v);
            /* Workers that joined by hand and still run keep the job going. */
            for (int i = 0; i < v.n; i++)
                if (strcmp(v.members[i].job, "worker") == 0 && !v.members[i].vacant &&
                    v.members[i].state == PST_MEMBER_RUNNING && !own_worker(L, v.members[i].index))
                    workers_done = 0;
        }
        if (workers_done) {
            static double ps_grace;
            if (ps_grace == 0) ps_grace = pst_clock_now() + 30;
            if (running == 0 || all_done || pst_clock_now() > ps_grace) {
                if (have_view) pst_coord_view_destroy(&v);
                stop_all(L, 5);
                result = 0;
                break;
            }
        }
        if (have_view) {
            static double last_state;
            if (pst_clock_now() - last_state >= 1.0) {
                write_state(L, &v, stopping ? "stopping" : "running");
                progress_line(L, &v, 0);
                last_state = pst_clock_now();
            }
            pst_coord_view_destroy(&v);
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    pst_coord_view v;
    int have = pst_coord_snapshot(L->co, &v) == 0;
    write_state(L, have ? &v : NULL, result == 0 ? (why[0] ? why : "done") : "failed");
    if (have) {
        progress_line(L, &v, 1);
        pst_coord_view_destroy(&v);
    }
    if (L->tty && !L->quiet) fputc('\n', stdout);
    if (result != 0 && why[0]) fprintf(stderr, "pstrain launch: job failed: %s\n", why);
    return result < 0 ? 1 : result;
}

/* ---- entry points ----------------------------------------------------------------------- */

/* The directory of the pstrain binary's siblings: $PST_BIN_DIR, or the build tree next to this
 * executable (build/launcher/pstrain -> build/{ps,worker}). */
static void find_bin_dir(launcher *L) {
    const char *e = getenv("PST_BIN_DIR");
    if (e && e[0]) {
        snprintf(L->bin_dir, sizeof L->bin_dir, "%s", e);
        return;
    }
    char self[RUN_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        snprintf(L->bin_dir, sizeof L->bin_dir, ".");
        return;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    /* Installed side by side, or the build tree (launcher/ next to ps/ and worker/). */
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/pstrain-worker", self);
    if (access(probe, X_OK) == 0) {
        snprintf(L->bin_dir, sizeof L->bin_dir, "%s", self);
        return;
    }
    slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    snprintf(L->bin_dir, sizeof L->bin_dir, "%s/bin", self);
    /* A build tree has no bin/: make one of links to the two binaries, once. */
    char ps[PATH_MAX + 32], wk[PATH_MAX + 32], lps[PATH_MAX + 32], lwk[PATH_MAX + 32];
    snprintf(ps, sizeof ps, "%s/ps/pstrain-ps", self);
    snprintf(wk, sizeof wk, "%s/worker/pstrain-worker", self);
    snprintf(lps, sizeof lps, "%s/pstrain-ps", L->bin_dir);
    snprintf(lwk, sizeof lwk, "%s/pstrain-worker", L->bin_dir);
    mkdir(L->bin_dir, 0755);
    if (access(lps, X_OK) != 0) symlink(ps, lps);
    if (access(lwk, X_OK) != 0) symlink(wk, lwk);
}

static int prepare_run(launcher *L, const char *job_path, const char *run_dir, int resume,
                       pst_status *st) {
    if (pst_jobfile_load(job_path, &L->jf, st) < 0) return st->code;
    if (spec_load(&L->jf, &L->spec, st) < 0) return st->code;
    if (L->backend_override)
        snprintf(L->spec.backend, sizeof L->spec.backend, "%s", L->backend_override);
    {
        /* The training settings as every worker will read them: refuse them now, not in a
         * restart loop. */
        pst_train_flags f;
        char err[1024] = "";
        char *args[] = {"pstrain-worker", "--job", (char *)job_path, NULL};
        int rc = pst_train_flags_parse(3, args, &f, err, sizeof err);
        pst_train_flags_destroy(&f);
        if (rc != 0) {
            size_t n = strlen(err);
            if (n && err[n - 1] == '\n') err[n - 1] = '\0';
            return pst_status_set(st, PST_E_INVALID, "%s", err);
        }
    }
    L->backend = strcmp(L->spec.backend, "ssh") == 0 ? &ssh_backend : &local_backend;
    if (run_dir) {
        snprintf(L->run, sizeof L->run, "%s", run_dir);
    } else {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        if (snprintf(L->run, sizeof L->run, "%.1900s/%s-%s-%ld", L->spec.run_root, L->spec.name,
                     stamp, (long)getpid()) >= (int)sizeof L->run)
            return pst_status_set(st, PST_E_INVALID, "run directory path too long");
    }
    char abs[PATH_MAX];
    if (pst_file_make_dirs(L->run, st) < 0) return st->code;
    if (!realpath(L->run, abs)) return pst_status_set(st, PST_E_IO, "%s: %s", L->run, strerror(errno));
    if (strlen(abs) >= sizeof L->run)
        return pst_status_set(st, PST_E_INVALID, "%s: run directory path too long", abs);
    memcpy(L->run, abs, strlen(abs) + 1);
    char logs[PATH_MAX + 16];
    snprintf(logs, sizeof logs, "%s/logs", L->run);
    snprintf(L->events, sizeof L->events, "%s/events", L->run);
    if (pst_file_make_dirs(logs, st) < 0 || pst_file_make_dirs(L->events, st) < 0) return st->code;
    snprintf(L->job_copy, sizeof L->job_copy, "%s/job.json", L->run);
    snprintf(L->token_path, sizeof L->token_path, "%s/token", L->run);
    if (L->spec.checkpoint_dir[0] == '/')
        snprintf(L->ckpt, sizeof L->ckpt, "%s", L->spec.checkpoint_dir);
    else
        snprintf(L->ckpt, sizeof L->ckpt, "%s/%.1900s", L->run,
                 L->spec.checkpoint_dir[0] ? L->spec.checkpoint_dir : "checkpoints");
    if (pst_file_make_dirs(L->ckpt, st) < 0) return st->code;
    if (!resume || access(L->job_copy, R_OK) != 0) {
        if (strcmp(job_path, L->job_copy) != 0 && write_text(L->job_copy, L->jf.text, st) < 0)
            return st->code;
    }
    if (access(L->token_path, R_OK) != 0 && pst_security_token_new(L->token_path, st) < 0)
        return st->code;
    /* The launcher's own certificate: tls_dir/launcher when it exists (scripts/tls_certs.sh
     * ... launcher=HOST), else tls_dir itself. */
    char own_tls[PATH_MAX + 16] = "";
    if (L->spec.tls_dir[0]) {
        struct stat sb;
        snprintf(own_tls, sizeof own_tls, "%s/launcher", L->spec.tls_dir);
        if (stat(own_tls, &sb) != 0 || !S_ISDIR(sb.st_mode))
            snprintf(own_tls, sizeof own_tls, "%s", L->spec.tls_dir);
    }
    L->sec = pst_security_new(&(pst_security_opts){.token_file = L->token_path,
                                                   .tls_dir = own_tls[0] ? own_tls : L->spec.tls_dir,
                                                   .insecure = L->spec.insecure,
                                                   .require_token = 1},
                              st);
    if (!L->sec) return st->code;
    /* The steps the job trains, for progress (the trainer's own default when absent). */
    L->total_steps = 2000;
    for (int i = 0; i + 1 < L->jf.argc; i++)
        if (strcmp(L->jf.argv[i], "--steps") == 0) L->total_steps = atoll(L->jf.argv[i + 1]);
    return 0;
}

/* The job's evaluator ("cluster": {"evaluator": 1}): `pstrain eval RUN` (this program), logging
 * to logs/evaluator.log; it evaluates each checkpoint as it appears and ends after the run. */
static pid_t start_evaluator(launcher *L, pst_status *st) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return pst_status_set(st, PST_E_IO, "/proc/self/exe: %s", strerror(errno));
    self[n] = '\0';
    task ev = {.stdin_fd = -1};
    snprintf(ev.name, sizeof ev.name, "evaluator");
    strv env = {0};
    char **envp = task_env(L, 0, &env);
    char *argv[] = {self, "eval", L->run, NULL};
    int rc = envp ? spawn(L, &ev, argv, envp, 0, st)
                  : pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    strv_free(&env);
    return rc < 0 ? rc : ev.pid;
}

/* Waits for the evaluator to evaluate what the run left (it ends by itself once the run's
 * state is final), at most 10 minutes. */
static void wait_evaluator(pid_t pid) {
    for (int i = 0; i < 3000; i++) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) return;
        usleep(200 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* The mpirun backend: one mpirun for the whole job (launch_mpirun.h). */
static int run_mpirun(launcher *L, pst_status *st) {
    int allreduce = 0;
    for (int i = 0; i + 1 < L->jf.argc; i++)
        if (strcmp(L->jf.argv[i], "--mode") == 0) allreduce = strcmp(L->jf.argv[i + 1], "allreduce") == 0;
    pst_mpirun_job j = {.run = L->run, .job_file = L->job_copy, .ckpt_dir = L->ckpt,
                        .bin_dir = L->bin_dir, .n_ps = L->spec.n_ps,
                        .n_workers = L->spec.n_workers, .allreduce = allreduce,
                        .hostfile = L->spec.mpi_hostfile[0] ? L->spec.mpi_hostfile : NULL,
                        .n_args = L->spec.mpi_args.n, .args = L->spec.mpi_args.v,
                        .n_worker_flags = L->spec.worker_flags.n,
                        .worker_flags = L->spec.worker_flags.v,
                        .max_restarts = L->spec.max_restarts, .backoff_ms = L->spec.backoff_ms,
                        .quiet = L->quiet, .stop = &got_signal, .name = L->spec.name,
                        .total_steps = L->total_steps};
    int rc = pst_mpirun_run(&j, st);
    return rc < 0 ? 2 : rc == 0 ? 0 : 1;
}

static int run_launcher(launcher *L, pst_status *st) {
    find_bin_dir(L);
    if (strcmp(L->spec.backend, "mpirun") == 0) return run_mpirun(L, st);
    if (make_tasks(L, st) < 0) return 1;
    pst_coord_opts co = {.bind = L->spec.coord_bind, .security = L->sec, .n_jobs = 2,
                         .jobs = {"ps", "worker"}, .expected = {L->spec.n_ps, L->spec.n_workers},
                         .heartbeat_timeout_ms = 10 * L->spec.heartbeat_ms,
                         .job_id = L->spec.name};
    if (L->spec.n_ps == 0) {
        co.jobs[0] = "worker";
        co.expected[0] = L->spec.n_workers;
        co.n_jobs = 1;
    }
    if (!(L->co = pst_coord_new(&co, st))) return 1;
    /* Workers joining by hand get the job's settings from the service. */
    if (pst_coord_set_job_json(L->co, L->jf.text, st) < 0) return 1;
    L->started = pst_clock_now();
    L->tty = isatty(1);
    if (!L->quiet)
        printf("pstrain launch: run %s\n  %d PS + %d workers (%s backend), coordination at %s\n"
               "  logs in %s/logs, checkpoints in %s\n",
               L->run, L->spec.n_ps, L->spec.n_workers, L->backend->name, pst_coord_address(L->co),
               L->run, L->ckpt);
    fflush(stdout);
    pid_t evaluator = 0;
    if (L->jf.n_evaluators > 0 && (evaluator = start_evaluator(L, st)) < 0) return 1;
    int rc = supervise(L);
    if (evaluator > 0) wait_evaluator(evaluator);
    return rc;
}

static void launcher_free(launcher *L) {
    pst_coord_free(L->co);
    pst_security_free(L->sec);
    free(L->tasks);
    spec_free(&L->spec);
    pst_jobfile_destroy(&L->jf);
}

static void install_signals(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int pst_cmd_launch(int argc, char **argv) {
    const char *job = NULL, *run_dir = NULL, *backend = NULL;
    launcher L = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--run-dir") == 0 && i + 1 < argc) {
            run_dir = argv[++i];
        } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            backend = argv[++i];
            if (strcmp(backend, "local") != 0 && strcmp(backend, "ssh") != 0 &&
                strcmp(backend, "mpirun") != 0) {
                fprintf(stderr, "pstrain launch: --backend: '%s' is not local, ssh or mpirun\n",
                        backend);
                return 2;
            }
        } else if (strcmp(argv[i], "--quiet") == 0) {
            L.quiet = 1;
        } else if (argv[i][0] != '-' && !job) {
            job = argv[i];
        } else {
            fprintf(stderr, "usage: pstrain launch JOB.json [--run-dir DIR] [--backend "
                    "local|ssh|mpirun] [--quiet]\n");
            return 2;
        }
    }
    if (!job) {
        fprintf(stderr, "usage: pstrain launch JOB.json [--run-dir DIR] [--quiet]\n");
        return 2;
    }
    install_signals();
    pst_status st = {0};
    L.backend_override = backend;
    int rc = prepare_run(&L, job, run_dir, 0, &st) < 0 ? 2 : run_launcher(&L, &st);
    if (rc == 2 || (rc == 1 && st.code)) fprintf(stderr, "pstrain launch: %s\n", st.msg);
    launcher_free(&L);
    return rc;
}

/* A small text file (job.json, state.json) as a NUL-terminated string (caller frees); NULL
 * with st naming the file. */
static char *read_text(const char *path, size_t max, pst_status *st) {
    uint8_t *buf;
    size_t len;
    if (pst_file_read(path, max, &buf, &len, st) < 0) return NULL;
    char *text = strndup((const char *)buf, len);
    free(buf);
    if (!text) pst_status_set(st, PST_E_EXHAUSTED, "out of memory reading %s", path);
    return text;
}

/* The JSON of a small file, or NULL (st says why). */
static cJSON *read_json(const char *path, size_t max, pst_status *st) {
    char *text = read_text(path, max, st);
    if (!text) return NULL;
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!o) pst_status_set(st, PST_E_INVALID, "%s: invalid JSON", path);
    return o;
}

/* Rewrites the run's job.json with other task counts (resume --ps N --workers M). */
static int reshape_job(const char *path, int ps, int workers, pst_status *st) {
    cJSON *root = read_json(path, 1 << 20, st);
    if (!root) return st->code;
    cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "cluster");
    int counts = c && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(c, "worker"));
    if (!counts) {
        cJSON_Delete(root);
        return pst_status_set(st, PST_E_INVALID, "%s: --ps/--workers need a cluster given as task "
                              "counts ({\"ps\": 2, \"worker\": 2})", path);
    }
    if (ps >= 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(c, "ps");
        cJSON_AddNumberToObject(c, "ps", ps);
    }
    if (workers >= 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(c, "worker");
        cJSON_AddNumberToObject(c, "worker", workers);
    }
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    if (!out) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    int rc = write_text(path, out, st);
    free(out);
    return rc;
}

static int run_arg(int argc, char **argv, int i, char *run, size_t len) {
    if (i >= argc) return -1;
    char state[PATH_MAX + 32];
    snprintf(state, sizeof state, "%s/job.json", argv[i]);
    if (access(state, R_OK) != 0) {
        fprintf(stderr, "pstrain: %s is not a run directory (no job.json)\n", argv[i]);
        return -2;
    }
    snprintf(run, len, "%s", argv[i]);
    return 0;
}

static long launcher_pid_of(const char *run) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/state.json", run);
    pst_status st = {0};
    cJSON *o = read_json(path, 16 << 20, &st);
    long pid = 0;
    const cJSON *p = o ? cJSON_GetObjectItemCaseSensitive(o, "launcher_pid") : NULL;
    const cJSON *s = o ? cJSON_GetObjectItemCaseSensitive(o, "status") : NULL;
    if (cJSON_IsNumber(p) && cJSON_IsString(s) &&
        (strcmp(s->valuestring, "running") == 0 || strcmp(s->valuestring, "stopping") == 0))
        pid = (long)p->valuedouble;
    cJSON_Delete(o);
    if (pid > 0 && kill((pid_t)pid, 0) != 0) pid = 0;
    return pid;
}

int pst_cmd_resume(int argc, char **argv) {
    char run[RUN_MAX];
    long long ps = -1, workers = -1;
    launcher L = {0};
    int r = run_arg(argc, argv, 1, run, sizeof run);
    if (r == -2) return 1;
    for (int i = 2; r == 0 && i < argc; i++) {
        char *end;
        if ((strcmp(argv[i], "--ps") == 0 || strcmp(argv[i], "--workers") == 0) && i + 1 < argc) {
            long long v = strtoll(argv[i + 1], &end, 10);
            if (*end || v < (strcmp(argv[i], "--ps") == 0 ? 0 : 1) || v > 4096) {
                fprintf(stderr, "pstrain resume: %s: '%s' is not a task count\n", argv[i], argv[i + 1]);
                return 2;
            }
            *(strcmp(argv[i], "--ps") == 0 ? &ps : &workers) = v;
            i++;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            L.quiet = 1;
        } else {
            r = -1;
        }
    }
    if (r < 0) {
        fprintf(stderr, "usage: pstrain resume RUN [--ps N] [--workers M] [--quiet]\n"
                        "  restarts a stopped or failed run from its newest checkpoint\n");
        return 2;
    }
    if (launcher_pid_of(run) > 0) {
        fprintf(stderr, "pstrain resume: %s is still running (pstrain stop it first)\n", run);
        return 1;
    }
    pst_status st = {0};
    char job[PATH_MAX + 32];
    snprintf(job, sizeof job, "%s/job.json", run);
    if ((ps >= 0 || workers >= 0) && reshape_job(job, (int)ps, (int)workers, &st) < 0) {
        fprintf(stderr, "pstrain resume: %s\n", st.msg);
        return 2;
    }
    install_signals();
    int rc = prepare_run(&L, job, run, 1, &st) < 0 ? 2 : run_launcher(&L, &st);
    if (rc == 2 || (rc == 1 && st.code)) fprintf(stderr, "pstrain resume: %s\n", st.msg);
    launcher_free(&L);
    return rc;
}

int pst_cmd_scale(int argc, char **argv) {
    char run[RUN_MAX];
    int r = run_arg(argc, argv, 1, run, sizeof run);
    long long n = -1;
    if (r == 0 && argc == 4 && strcmp(argv[2], "--workers") == 0) {
        char *end;
        n = strtoll(argv[3], &end, 10);
        if (*end || argv[3][0] == '\0' || n < 1 || n > 4096) {
            fprintf(stderr, "pstrain scale: --workers: '%s' is not a worker count (1..4096)\n",
                    argv[3]);
            return 2;
        }
    } else if (r != -2) {
        fprintf(stderr, "usage: pstrain scale RUN --workers N\n"
                        "  grows or shrinks a running job's workers (the number of PS changes\n"
                        "  only through pstrain stop and pstrain resume RUN --ps N)\n");
        return 2;
    }
    if (r < 0) return 1;
    long pid = launcher_pid_of(run);
    if (pid <= 0) {
        fprintf(stderr, "pstrain scale: %s is not running (pstrain resume %s --workers %lld "
                        "restarts it with that many)\n", run, run, n);
        return 1;
    }
    char path[PATH_MAX + 32], text[64];
    snprintf(path, sizeof path, "%s/scale.json", run);
    snprintf(text, sizeof text, "{\"workers\": %lld}\n", n);
    pst_status st = {0};
    if (write_text(path, text, &st) < 0) {
        fprintf(stderr, "pstrain scale: %s\n", st.msg);
        return 1;
    }
    if (kill((pid_t)pid, SIGUSR1) != 0) {
        fprintf(stderr, "pstrain scale: cannot signal the launcher (pid %ld): %s\n", pid,
                strerror(errno));
        return 1;
    }
    printf("pstrain scale: asked %s to run %lld workers (pstrain status %s shows them)\n", run,
           n, run);
    return 0;
}

int pst_cmd_stop(int argc, char **argv) {
    char run[RUN_MAX];
    int r = run_arg(argc, argv, 1, run, sizeof run);
    if (r < 0 || argc > 3) {
        if (r == -1) fprintf(stderr, "usage: pstrain stop RUN [--kill]\n");
        return r == -2 ? 1 : 2;
    }
    int hard = argc == 3 && strcmp(argv[2], "--kill") == 0;
    long pid = launcher_pid_of(run);
    if (pid <= 0) {
        fprintf(stderr, "pstrain stop: %s is not running\n", run);
        return 1;
    }
    kill((pid_t)pid, SIGTERM);
    if (hard) kill((pid_t)pid, SIGTERM); /* a second signal kills */
    /* Wait for the launcher to finish the checkpoint and the tasks to exit. */
    for (int i = 0; i < 20 * 180; i++) {
        /* Done when the launcher wrote its final state (it may linger as a zombie of its
         * parent) or is gone. */
        if (launcher_pid_of(run) == 0 || kill((pid_t)pid, 0) != 0) {
            printf("pstrain stop: %s stopped\n", run);
            return 0;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "pstrain stop: %s (launcher pid %ld) did not stop within 180 s\n", run, pid);
    return 1;
}

int pst_cmd_status(int argc, char **argv) {
    char run[RUN_MAX];
    int r = run_arg(argc, argv, 1, run, sizeof run);
    if (r < 0) {
        if (r == -1) fprintf(stderr, "usage: pstrain status RUN [--json]\n");
        return r == -2 ? 1 : 2;
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/state.json", run);
    pst_status st = {0};
    if (argc > 2 && strcmp(argv[2], "--json") == 0) {
        char *text = read_text(path, 16 << 20, &st);
        if (!text) {
            fprintf(stderr, "pstrain status: %s\n", st.msg);
            return 1;
        }
        printf("%s\n", text);
        free(text);
        return 0;
    }
    cJSON *o = read_json(path, 16 << 20, &st);
    if (!o) {
        fprintf(stderr, "pstrain status: %s\n", st.msg);
        return 1;
    }
#define S(obj, k) (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(obj, k)) ? cJSON_GetObjectItemCaseSensitive(obj, k)->valuestring : "")
#define N(obj, k) (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(obj, k)) ? cJSON_GetObjectItemCaseSensitive(obj, k)->valuedouble : 0)
    long pid = launcher_pid_of(run);
    const char *status = S(o, "status");
    printf("run %s: %s%s\n", run, status,
           (strcmp(status, "running") == 0 || strcmp(status, "stopping") == 0) && pid == 0
               ? " (but its launcher is gone)"
               : "");
    printf("global step %.0f/%.0f, %.0f examples/s, epoch %.0f, job restarts %.0f, last "
           "checkpoint %s\n",
           N(o, "global_step"), N(o, "total_steps"), N(o, "examples_per_sec"), N(o, "epoch"),
           N(o, "job_restarts"), S(o, "last_checkpoint")[0] ? S(o, "last_checkpoint") : "-");
    printf("%-10s %-22s %-10s %8s %8s %10s %12s\n", "task", "address", "state", "pid", "restarts",
           "step", "examples/s");
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(o, "tasks")) {
        printf("%-10s %-22s %-10s %8.0f %8.0f %10.0f %12.1f%s%s\n", S(t, "task"), S(t, "address"),
               S(t, "state"), N(t, "pid"), N(t, "restarts"), N(t, "global_step"),
               N(t, "examples_per_sec"), S(t, "reason")[0] ? "  " : "", S(t, "reason"));
    }
    printf("membership epoch %.0f: %.0f workers\n%-10s %-10s %-18s %-9s %s\n", N(o, "epoch"),
           N(o, "workers"), "member", "state", "incarnation", "joined", "how");
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(o, "members")) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(t, "launched");
        printf("%-10s %-10s %-18s %-9s %s (+%.1f s)\n", S(t, "task"), S(t, "state"),
               S(t, "incarnation"), S(t, "joined_at"), cJSON_IsTrue(l) ? "launched" : "joined",
               N(t, "joined_s"));
    }
#undef S
#undef N
    cJSON_Delete(o);
    return 0;
}

int pst_cmd_logs(int argc, char **argv) {
    char run[RUN_MAX];
    int r = run_arg(argc, argv, 1, run, sizeof run);
    if (r < 0 || argc > 3) {
        if (r != -2) fprintf(stderr, "usage: pstrain logs RUN [TASK]   (TASK: ps0, worker1, ...)\n");
        return r == -2 ? 1 : 2;
    }
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/logs", run);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "pstrain logs: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    struct dirent *e;
    char names[256][64];
    int n = 0;
    while ((e = readdir(d)) && n < 256) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".log") == 0 && l < 64) {
            snprintf(names[n], sizeof names[n], "%.*s", (int)(l - 4), e->d_name);
            n++;
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    int shown = 0;
    for (int i = 0; i < n; i++) {
        if (argc == 3 && strcmp(names[i], argv[2]) != 0) continue;
        char path[PATH_MAX + 96];
        snprintf(path, sizeof path, "%.4000s/%.63s.log", dir, names[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (argc != 3) printf("==> %s <==\n", names[i]);
        char line[4096];
        while (fgets(line, sizeof line, f)) fputs(line, stdout);
        fclose(f);
        shown++;
    }
    if (!shown) {
        fprintf(stderr, "pstrain logs: no log%s%s in %s\n", argc == 3 ? " for " : "",
                argc == 3 ? argv[2] : "", dir);
        return 1;
    }
    return 0;
}
