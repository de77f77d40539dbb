/*
 * bench_transport: push plus pull of 100 MB of variables between a worker and a PS (two
 * processes on 127.0.0.1) over pstrain's gRPC task service, against raw TCP over loopback moving
 * the same bytes (100 MB one way, then back) in the same run. Raw TCP and pstrain alternate so
 * both see the same machine noise; prints medians and the median of the per-pair ratios
 * raw-TCP time / pstrain time (1.0 = as fast as raw TCP).
 *
 * Usage: bench_transport [MB] [variables] [chunk KiB]
 *        (default 100 MB in 25 variables of 4 MB, the task's default chunk of 4096 KiB)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "memtune.h"
#include "benchutil.h"
#include "cluster.h"
#include "ops.h"
#include "security.h"
#include "task.h"
#include "task_client.h"
#include "varstore.h"

#define RUNS 9

static int full_io(int fd, void *buf, size_t n, int writing) {
    char *p = buf;
    while (n > 0) {
        ssize_t k = writing ? write(fd, p, n) : read(fd, p, n);
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The raw-TCP echo server: for each of `runs` connections reads `bytes`, writes them back. */
static void tcp_server(int lfd, size_t bytes, int runs) {
    char *buf = malloc(bytes);
    for (int r = 0; r < runs; r++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0 || full_io(fd, buf, bytes, 0) < 0 || full_io(fd, buf, bytes, 1) < 0) _exit(1);
        close(fd);
    }
    _exit(0);
}

/* One raw-TCP round trip of `bytes` each way on a new connection; seconds. */
static double tcp_once(const struct sockaddr_in *a, char *buf, size_t bytes) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)a, sizeof *a) < 0) {
        perror("bench_transport: connect");
        exit(1);
    }
    double t0 = pst_bench_now();
    if (full_io(fd, buf, bytes, 1) < 0 || full_io(fd, buf, bytes, 0) < 0) {
        fprintf(stderr, "bench_transport: raw TCP transfer failed\n");
        exit(1);
    }
    double t = pst_bench_now() - t0;
    close(fd);
    return t;
}

/* The PS process: serves on a port it picks (written to port_fd) until the worker says it is
 * done. */
/* The job's token (and TLS when a directory is given): both sides check every call. */
static const char bench_token[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void ps_main(int port_fd, int n_vars, size_t per, const char *tls_dir) {
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse_ex(
        "{\"ps\": [\"127.0.0.1:0\"], \"worker\": [\"127.0.0.1:0\"]}", "bench",
        PST_CLUSTER_ALLOW_PORT0, &st);
    pst_security *sec = c ? pst_security_new(&(pst_security_opts){.token = bench_token,
                                                                  .tls_dir = tls_dir ? tls_dir : "",
                                                                  .require_token = 1},
                                             &st)
                          : NULL;
    pst_task_opts o = {.cluster = c, .job = "ps", .index = 0, .quiet = 1, .security = sec};
    pst_task *t = sec ? pst_task_new(&o, &st) : NULL;
    /* the variables the worker pushes (a PS takes pushes only to variables it holds) */
    for (int i = 0; t && i < n_vars; i++) {
        char name[32];
        snprintf(name, sizeof name, "v%d", i);
        if (!pst_var_store_get_or_create(pst_task_vars(t), name, PST_FLOAT,
                                         pst_shape_1d((int64_t)(per / 4)), &st)) {
            pst_task_free(t);
            t = NULL;
        }
    }
    if (!t) {
        fprintf(stderr, "bench_transport: PS: %s\n", st.msg);
        _exit(1);
    }
    int port = pst_task_port(t);
    if (write(port_fd, &port, sizeof port) != (ssize_t)sizeof port) _exit(1);
    close(port_fd);
    pst_task_wait_shutdown(t, 0, &st);
    pst_task_free(t);
    pst_security_free(sec);
    pst_cluster_free(c);
    _exit(0);
}

int main(int argc, char **argv) {
    pst_memtune_process(); /* large buffers stay in the heap (base/memtune.h) */
    pst_ops_init(); /* the built-in op families, before any graph */
    size_t mb = argc > 1 ? (size_t)atol(argv[1]) : 100;
    int n_vars = argc > 2 ? atoi(argv[2]) : 25;
    int64_t chunk = argc > 3 ? atoll(argv[3]) * 1024 : 0;
    const char *tls_dir = argc > 4 ? argv[4] : NULL; /* scripts/tls_certs.sh's task directory */
    if (mb == 0 || n_vars <= 0) {
        fprintf(stderr, "usage: bench_transport [MB] [variables] [chunk KiB] [TLS dir]\n");
        return 2;
    }
    size_t per = mb * 1000 * 1000 / (size_t)n_vars / 4 * 4;
    size_t bytes = per * (size_t)n_vars;
    printf("bench_transport: job token on every call%s\n", tls_dir ? ", mutual TLS" : "");
    printf("bench_transport: %.0f MB in %d variables of %.1f MB, worker <-> PS on 127.0.0.1, "
           "%d alternating runs\n", bytes / 1e6, n_vars, (double)per / 1e6, RUNS);

    /* Both servers are forked before this process touches gRPC (a fork after grpc_init breaks
     * the child). */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in ta = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(lfd, (struct sockaddr *)&ta, sizeof ta);
    socklen_t tl = sizeof ta;
    getsockname(lfd, (struct sockaddr *)&ta, &tl);
    listen(lfd, 4);
    pid_t tcp_pid = fork();
    if (tcp_pid == 0) tcp_server(lfd, bytes, RUNS + 1);
    close(lfd);
    int port_pipe[2];
    if (pipe(port_pipe) < 0) {
        perror("bench_transport: pipe");
        return 1;
    }
    pid_t ps = fork();
    if (ps == 0) {
        close(port_pipe[0]);
        ps_main(port_pipe[1], n_vars, per, tls_dir);
    }
    close(port_pipe[1]);
    int ps_port = 0;
    if (read(port_pipe[0], &ps_port, sizeof ps_port) != (ssize_t)sizeof ps_port) {
        fprintf(stderr, "bench_transport: the PS did not start\n");
        kill(tcp_pid, SIGKILL);
        return 1;
    }
    close(port_pipe[0]);
    char json[256];
    snprintf(json, sizeof json, "{\"ps\": [\"127.0.0.1:%d\"], \"worker\": [\"127.0.0.1:0\"]}",
             ps_port);

    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse_ex(json, "bench", PST_CLUSTER_ALLOW_PORT0, &st);
    pst_security *sec = c ? pst_security_new(&(pst_security_opts){.token = bench_token,
                                                                  .tls_dir = tls_dir ? tls_dir : "",
                                                                  .require_token = 1},
                                             &st)
                          : NULL;
    pst_task_opts o = {.cluster = c, .job = "worker", .index = 0, .quiet = 1, .chunk_bytes = chunk,
                       .security = sec};
    pst_task *w = sec ? pst_task_new(&o, &st) : NULL;
    if (!w) {
        fprintf(stderr, "bench_transport: worker: %s\n", st.msg);
        kill(ps, SIGKILL);
        kill(tcp_pid, SIGKILL);
        return 1;
    }
    char *tcp_buf = malloc(bytes);
    memset(tcp_buf, 7, bytes);
    pst_tensor **vars = calloc((size_t)n_vars, sizeof *vars);
    pst_tensor **back = calloc((size_t)n_vars, sizeof *back);
    char **names = calloc((size_t)n_vars, sizeof *names);
    for (int i = 0; i < n_vars; i++) {
        vars[i] = pst_tensor_new(PST_FLOAT, pst_shape_1d((int64_t)(per / 4)), &st);
        float *f = pst_tensor_f32(vars[i]);
        for (size_t k = 0; k < per / 4; k++) f[k] = (float)(k % 1000) * 0.5f + (float)i;
        names[i] = malloc(32);
        snprintf(names[i], 32, "v%d", i);
    }
    double tg[RUNS], tt[RUNS], ratio[RUNS], tpush[RUNS];
    int rc = 0;
    for (int r = 0; r <= RUNS && rc == 0; r++) { /* run 0 warms both up */
        double tcp = tcp_once(&ta, tcp_buf, bytes);
        double t0 = pst_bench_now();
        rc = pst_task_client_push_variables(w, "/job:ps/task:0", n_vars, (const char *const *)names,
                                     vars, &st);
        double t_push = pst_bench_now() - t0;
        if (rc == 0)
            rc = pst_task_client_pull_variables(w, "/job:ps/task:0", n_vars, (const char *const *)names,
                                         back, &st);
        double g = pst_bench_now() - t0;
        for (int i = 0; i < n_vars && rc == 0; i++)
            if (r == 0 && memcmp(back[i]->data, vars[i]->data, per) != 0) {
                pst_status_set(&st, PST_E_DATA_LOSS, "variable %s came back different", names[i]);
                rc = -1;
            }
        for (int i = 0; i < n_vars; i++) {
            pst_tensor_unref(back[i]);
            back[i] = NULL;
        }
        if (r > 0) {
            tt[r - 1] = tcp;
            tg[r - 1] = g;
            ratio[r - 1] = tcp / g;
            tpush[r - 1] = t_push;
        }
    }
    if (rc < 0) fprintf(stderr, "bench_transport: %s\n", st.msg);
    pst_status ignore = {0};
    pst_task_client_say_done(w, "/job:ps/task:0", 0, NULL, &ignore);
    waitpid(ps, NULL, 0);
    waitpid(tcp_pid, NULL, 0);
    for (int i = 0; i < n_vars; i++) {
        pst_tensor_unref(vars[i]);
        free(names[i]);
    }
    free(vars);
    free(back);
    free(names);
    free(tcp_buf);
    pst_task_free(w);
    pst_security_free(sec);
    pst_cluster_free(c);
    if (rc < 0) return 1;
    qsort(tg, RUNS, sizeof tg[0], pst_bench_cmp);
    qsort(tt, RUNS, sizeof tt[0], pst_bench_cmp);
    qsort(ratio, RUNS, sizeof ratio[0], pst_bench_cmp);
    qsort(tpush, RUNS, sizeof tpush[0], pst_bench_cmp);
    printf("raw TCP loopback: %7.1f ms median  (%.2f GB/s moved)\n", tt[RUNS / 2] * 1e3,
           2 * bytes / tt[RUNS / 2] / 1e9);
    printf("pstrain gRPC    : %7.1f ms median  (%.2f GB/s moved), push then pull of every "
           "variable (push %.1f ms)\n", tg[RUNS / 2] * 1e3, 2 * bytes / tg[RUNS / 2] / 1e9,
           tpush[RUNS / 2] * 1e3);
    /* The target is for the token over cleartext (loopback or a private network); with TLS
     * every byte is encrypted and authenticated on both sides, and the figure says what that
     * costs against unencrypted raw TCP. */
    printf("raw TCP time / pstrain time: median %.2f (min %.2f, max %.2f); %s\n",
           ratio[RUNS / 2], ratio[0], ratio[RUNS - 1],
           tls_dir ? "TLS's cost (no target)" : "target >= 0.7");
    return 0;
}
