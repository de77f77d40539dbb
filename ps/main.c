/*
 * pstrain-ps: a parameter server. Serves the task service on its cluster address, holds the
 * variables that workers' partitions place on it, applies their updates, writes its shard of
 * each checkpoint, and exits once every worker of the cluster said it is done (or on SIGTERM).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "cluster_slurm.h"
#include "task.h"
#include "ops.h"

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

static int usage(FILE *f, int rc) {
    fprintf(f, "usage: pstrain-ps --cluster FILE --task K [options]\n"
               "       (or TF_CONFIG='{\"cluster\": {...}, \"task\": {\"type\": \"ps\", \"index\": K}}')\n"
               "  --cluster FILE            JSON {\"ps\": [\"host:port\", ...], \"worker\": [...]}\n"
               "                            (or a job file holding it under \"cluster\")\n"
               "  --task K                  this PS's index in the \"ps\" list\n"
               "  --cluster-from slurm [--ps P] [--port-base B]\n"
               "                            under srun: the cluster from Slurm's environment\n"
               "                            (ranks 0..P-1 are the PS; see deploy/slurm/README.md)\n"
               "  --recv-timeout-ms N       how long a step waits for a worker's tensor (60000)\n"
               "  --workers N               exit after N workers finished (default: all)\n"
               "  --worker-timeout-ms N     a worker silent this long counts as failed (30000)\n"
               "  --quiet                   no log lines\n");
    return rc;
}

static int parse_int(const char *flag, const char *v, long long lo, long long hi, long long *out) {
    char *end;
    long long x = strtoll(v ? v : "", &end, 10);
    if (!v || *v == 0 || *end != 0 || x < lo || x > hi) {
        fprintf(stderr, "pstrain-ps: %s: '%s' is not an integer in [%lld, %lld]\n", flag,
                v ? v : "", lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

int main(int argc, char **argv) {
    pst_ops_init(); /* the built-in op families, before any graph */
    pst_status sst = {0}; /* --cluster-from slurm becomes TF_CONFIG (cluster_slurm.h) */
    if (pst_cluster_slurm_main(&argc, argv, "ps", &sst) < 0) {
        fprintf(stderr, "pstrain-ps: %s\n", sst.msg);
        return 2;
    }
    const char *cluster_file = NULL;
    long long task = -1, recv_ms = 0, workers = 0, worker_timeout = 0;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(stdout, 0);
        if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(a, "--cluster") == 0 && v) {
            cluster_file = v;
            i++;
        } else if (strcmp(a, "--task") == 0) {
            if (parse_int(a, v, 0, 1 << 20, &task) < 0) return 2;
            i++;
        } else if (strcmp(a, "--recv-timeout-ms") == 0) {
            if (parse_int(a, v, 1, 1LL << 40, &recv_ms) < 0) return 2;
            i++;
        } else if (strcmp(a, "--worker-timeout-ms") == 0) {
            if (parse_int(a, v, 1, 1LL << 40, &worker_timeout) < 0) return 2;
            i++;
        } else if (strcmp(a, "--workers") == 0) {
            if (parse_int(a, v, 1, 1 << 20, &workers) < 0) return 2;
            i++;
        } else {
            fprintf(stderr, "pstrain-ps: unknown or incomplete flag '%s'\n", a);
            return usage(stderr, 2);
        }
    }
    pst_status st = {0};
    pst_cluster *c = NULL;
    if (cluster_file) {
        c = pst_cluster_load(cluster_file, &st);
    } else {
        char type[64];
        int index = -1;
        c = pst_cluster_from_env("TF_CONFIG", type, sizeof type, &index, &st);
        if (c && task < 0) {
            if (strcmp(type, "ps") != 0) {
                fprintf(stderr, "pstrain-ps: TF_CONFIG names task type '%s', not 'ps'\n", type);
                pst_cluster_free(c);
                return 2;
            }
            task = index;
        }
        if (!c && !st.code) {
            fprintf(stderr, "pstrain-ps: give --cluster FILE or set TF_CONFIG\n");
            return usage(stderr, 2);
        }
    }
    if (!c) {
        fprintf(stderr, "pstrain-ps: %s\n", st.msg);
        return 2;
    }
    if (task < 0) {
        fprintf(stderr, "pstrain-ps: --task K is required\n");
        pst_cluster_free(c);
        return 2;
    }
    pst_task_opts o = {.cluster = c, .job = "ps", .index = (int)task, .quiet = quiet,
                       .recv_timeout_ms = recv_ms, .expected_workers = (int)workers,
                       .peer_timeout_ms = worker_timeout};
    pst_task *t = pst_task_new(&o, &st);
    if (!t) {
        fprintf(stderr, "pstrain-ps: %s\n", st.msg);
        pst_cluster_free(c);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    int rc = 0;
    for (;;) {
        pst_status ws = {0};
        int r = pst_task_wait_shutdown(t, 200, &ws);
        if (r == PST_E_DEADLINE) {
            if (stop_signal) {
                if (!quiet) fprintf(stderr, "pstrain-ps: stopping on signal %d\n", (int)stop_signal);
                rc = 1;
                break;
            }
            continue;
        }
        if (r < 0) {
            fprintf(stderr, "pstrain-ps: the job ended with an error: %s\n", ws.msg);
            rc = 1;
        } else if (!quiet) {
            fprintf(stderr, "pstrain-ps: every worker finished; exiting\n");
        }
        break;
    }
    pst_task_free(t);
    pst_cluster_free(c);
    return rc;
}
