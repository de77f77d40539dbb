/*
 * pstrain-ps: a parameter server. Serves the task service on its cluster address, holds the
 * variables that workers' partitions place on it, applies their updates, writes its shard of
 * each checkpoint, and exits once every worker of the cluster said it is done (or on SIGTERM).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memtune.h"
#include "cluster.h"
#include "cluster_slurm.h"
#include "coord_agent.h"
#include "dist_ops.h"
#include "file.h"
#include "member.h"
#include "mpi_job.h"
#include "ops.h"
#include "ps_sync.h"
#include "security.h"
#include "task.h"
#include "transport_mpi.h"

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) {
    stop_signal = sig;
}

static int usage(FILE *f, int rc) {
    fprintf(
        f,
        "usage: pstrain-ps --cluster FILE --task K [options]\n"
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
        "  --run-threads N           steps run at once at most (default: twice the\n"
        "                            cluster's tasks, at least 16; keep it above the\n"
        "                            number of workers in sync mode)\n"
        "  --run-queue N             steps waiting for a thread at most (default: as many\n"
        "                            as --run-threads); beyond, steps fail\n"
        "  security (see README \"Security\"): the job token from $PST_JOB_TOKEN_FILE,\n"
        "  --token-file FILE or $PST_JOB_TOKEN (never on the command line)\n"
        "  --tls-dir DIR             mutual TLS with DIR/ca.crt, task.crt, task.key\n"
        "  --insecure                allow cleartext to non-loopback addresses (warns)\n"
        "  --listen HOST:PORT        serve there instead of the cluster's address\n"
        "  launched (pstrain launch): --coordinator ADDR --bind HOST:PORT\n"
        "                            [--heartbeat-ms N] [--token-stdin]\n"
        "  --port-file FILE          write the port served on to FILE once serving (with\n"
        "                            port 0 in the cluster entry: a free port is picked)\n"
        "  --checkpoint-dir DIR      Save and Restore requests may name files only in DIR\n"
        "                            (created when missing); without it, only in\n"
        "                            directories that exist, never through '..'\n"
        "  --check-numerics          refuse pushed gradients and values with NaN or Inf\n"
        "  --max-pending-mb N        memory for tensors arriving in chunks (2048)\n"
        "  --max-graph-mb N          constant bytes of registered graphs in total (1024)\n"
        "  --transport mpi [--ps N]  under mpirun: every task is an MPI rank; ranks\n"
        "                            0..N-1 are the PS (or --cluster FILE with \"mpi:RANK\"\n"
        "                            addresses); no token or TLS (see README \"MPI\")\n"
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

/* A PS rank of an MPI job (--transport mpi): no token or TLS, the cluster from the ranks. On
 * an error MPI is not finalized: mpirun then ends the other ranks instead of leaving them to
 * wait for this one. */
static int run_mpi(const char *cluster_file, int n_ps, const pst_task_opts *tmpl) {
    pst_status st = {0};
    char job[64];
    int index = -1;
    pst_cluster *c = pst_mpi_job_cluster(cluster_file, n_ps, job, sizeof job, &index, &st);
    if (c && strcmp(job, "ps") != 0)
        pst_status_set(&st, PST_E_INVALID, "this rank is /job:%s/task:%d, not a PS: start "
                       "pstrain-worker on it (or give pstrain-ps fewer ranks)", job, index);
    if (c && !st.code && tmpl->checkpoint_dir) pst_file_make_dirs(tmpl->checkpoint_dir, &st);
    pst_task *t = NULL;
    if (c && !st.code) {
        int rank = 0;
        pst_mpi_init(&rank, NULL, &st);
        char who[128];
        snprintf(who, sizeof who, "pstrain-ps: rank %d (/job:ps/task:%d)", rank, index);
        pst_mpi_report_termination(who);
        pst_task_opts o = *tmpl;
        o.cluster = c;
        o.job = "ps";
        o.index = index;
        o.transport = "mpi";
        t = pst_task_new(&o, &st);
    }
    int rc = 1;
    if (t) {
        signal(SIGPIPE, SIG_IGN);
        pst_status ws = {0};
        rc = pst_task_wait_shutdown(t, 0, &ws) < 0 ? 1 : 0;
        if (rc) fprintf(stderr, "pstrain-ps: the job ended with an error: %s\n", ws.msg);
        pst_task_free(t);
    } else {
        fprintf(stderr, "pstrain-ps: %s\n", st.msg);
    }
    pst_cluster_free(c);
    if (rc == 0) pst_mpi_finalize();
    return rc;
}

int main(int argc, char **argv) {
    pst_memtune_process(); /* large buffers stay in the heap (base/memtune.h) */
    pst_ops_init();      /* the built-in op families, before any graph */
    pst_dist_ops_init(); /* and the distributed ones (synchronous replicas) */
    pst_status sst = {0}; /* --cluster-from slurm becomes TF_CONFIG (cluster_slurm.h) */
    if (pst_cluster_slurm_main(&argc, argv, "ps", &sst) < 0) {
        fprintf(stderr, "pstrain-ps: %s\n", sst.msg);
        return 2;
    }
    const char *cluster_file = NULL, *port_file = NULL, *token_file = NULL, *tls_dir = NULL,
               *coordinator = NULL, *bind = NULL, *listen = NULL, *ckpt_dir = NULL;
    long long task = -1, recv_ms = 0, workers = 0, worker_timeout = 0, run_threads = 0,
              run_queue = 0, heartbeat_ms = 1000, pending_mb = 2048, graph_mb = 1024, mpi_ps = 0;
    int quiet = 0, insecure = 0, token_stdin = 0, check_numerics = 0, mpi = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return usage(stdout, 0);
        if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(a, "--insecure") == 0) {
            insecure = 1;
        } else if (strcmp(a, "--check-numerics") == 0) {
            check_numerics = 1;
        } else if (strcmp(a, "--checkpoint-dir") == 0 && v) {
            ckpt_dir = v;
            i++;
        } else if (strcmp(a, "--max-pending-mb") == 0 || strcmp(a, "--max-graph-mb") == 0) {
            if (parse_int(a, v, 1, 1 << 24, a[6] == 'p' ? &pending_mb : &graph_mb) < 0)
                return 2;
            i++;
        } else if (strcmp(a, "--token-stdin") == 0) {
            token_stdin = 1;
        } else if ((strcmp(a, "--token-file") == 0 || strcmp(a, "--tls-dir") == 0 ||
                    strcmp(a, "--coordinator") == 0 || strcmp(a, "--bind") == 0 ||
                    strcmp(a, "--listen") == 0) &&
                   v) {
            const char **dst = strcmp(a, "--token-file") == 0    ? &token_file
                               : strcmp(a, "--tls-dir") == 0     ? &tls_dir
                               : strcmp(a, "--coordinator") == 0 ? &coordinator
                               : strcmp(a, "--bind") == 0        ? &bind
                                                                 : &listen;
            *dst = v;
            i++;
        } else if (strcmp(a, "--heartbeat-ms") == 0) {
            if (parse_int(a, v, 10, 600000, &heartbeat_ms) < 0)
                return 2;
            i++;
        } else if (strcmp(a, "--transport") == 0 && v) {
            if (strcmp(v, "mpi") != 0 && strcmp(v, "grpc") != 0) {
                fprintf(stderr, "pstrain-ps: --transport: '%s' is not grpc or mpi\n", v);
                return 2;
            }
            mpi = strcmp(v, "mpi") == 0;
            i++;
        } else if (strcmp(a, "--ps") == 0) {
            if (parse_int(a, v, 1, 1 << 20, &mpi_ps) < 0)
                return 2;
            i++;
        } else if (strcmp(a, "--cluster") == 0 && v) {
            cluster_file = v;
            i++;
        } else if (strcmp(a, "--port-file") == 0 && v) {
            port_file = v;
            i++;
        } else if (strcmp(a, "--task") == 0) {
            if (parse_int(a, v, 0, 1 << 20, &task) < 0)
                return 2;
            i++;
        } else if (strcmp(a, "--recv-timeout-ms") == 0) {
            if (parse_int(a, v, 1, 1LL << 40, &recv_ms) < 0)
                return 2;
            i++;
        } else if (strcmp(a, "--worker-timeout-ms") == 0) {
            if (parse_int(a, v, 1, 1LL << 40, &worker_timeout) < 0)
                return 2;
            i++;
        } else if (strcmp(a, "--run-threads") == 0) {
            if (parse_int(a, v, 1, 1 << 16, &run_threads) < 0)
                return 2;
            i++;
        } else if (strcmp(a, "--run-queue") == 0) {
            if (parse_int(a, v, 0, 1 << 20, &run_queue) < 0)
                return 2;
            i++;
            if (run_queue == 0)
                run_queue = -1; /* none */
        } else if (strcmp(a, "--workers") == 0) {
            if (parse_int(a, v, 1, 1 << 20, &workers) < 0)
                return 2;
            i++;
        } else {
            fprintf(stderr, "pstrain-ps: unknown or incomplete flag '%s'\n", a);
            return usage(stderr, 2);
        }
    }
    pst_status st = {0};
    if (mpi)
        return run_mpi(cluster_file, (int)mpi_ps,
                       &(pst_task_opts){.quiet = quiet, .recv_timeout_ms = recv_ms,
                                        .expected_workers = (int)workers,
                                        .peer_timeout_ms = worker_timeout,
                                        .run_threads = (int)run_threads,
                                        .run_queue = (int)run_queue,
                                        .checkpoint_dir = ckpt_dir,
                                        .check_numerics = check_numerics,
                                        .max_pending_bytes = pending_mb << 20,
                                        .max_graph_bytes = graph_mb << 20});
    if (pst_coord_agent_die_with_launcher(&st) < 0) {
        fprintf(stderr, "pstrain-ps: %s\n", st.msg);
        return 1;
    }
    char token[512] = "";
    if (token_stdin && pst_coord_agent_token_from_stdin(token, sizeof token, &st) < 0) {
        fprintf(stderr, "pstrain-ps: %s\n", st.msg);
        return 2;
    }
    pst_security *sec = pst_security_new(&(pst_security_opts){.token_file = token_file,
                                                              .token = token[0] ? token : NULL,
                                                              .tls_dir = tls_dir,
                                                              .insecure = insecure,
                                                              .require_token = 1},
                                         &st);
    memset(token, 0, sizeof token);
    if (!sec) {
        fprintf(stderr, "pstrain-ps: %s\n", st.msg);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (coordinator) {
        /* Started by pstrain launch: any port, the cluster from the launcher, supervised. */
        if (task < 0 || !bind) {
            fprintf(stderr, "pstrain-ps: --coordinator needs --task K and --bind HOST:PORT\n");
            pst_security_free(sec);
            return 2;
        }
        pst_member m;
        pst_member_opts mo = {.task = {.job = "ps",
                                       .index = (int)task,
                                       .quiet = quiet,
                                       .recv_timeout_ms = recv_ms,
                                       .peer_timeout_ms = worker_timeout,
                                       .run_threads = (int)run_threads,
                                       .run_queue = (int)run_queue,
                                       /* Workers come and go (pstrain scale, --join): the
                                        * coordination service says when the job is over,
                                        * not a count of workers done. */
                                       .expected_workers = workers > 0 ? (int)workers
                                                                       : (1 << 30),
                                       .security = sec,
                                       .supervised = 1},
                              .bind = bind,
                              .coordinator = coordinator,
                              .heartbeat_ms = heartbeat_ms};
        if (pst_member_start(&mo, &m, &st) < 0) {
            fprintf(stderr, "pstrain-ps: %s\n", st.msg);
            pst_security_free(sec);
            return 1;
        }
        if (!quiet)
            fprintf(stderr, "pstrain-ps: serving on %s\n", pst_task_address(m.task));
        int rc = 0;
        char members[1024] = "", seen[1024] = "";
        for (;;) {
            /* Elastic sync rounds stop waiting for workers the coordination service dropped. */
            pst_coord_agent_members(m.agent, members, sizeof members);
            pst_task_set_membership(m.task, pst_coord_agent_epoch(m.agent), members);
            if (strcmp(members, seen) != 0) {
                pst_status ms = {0};
                if (pst_ps_sync_set_running(pst_task_vars(m.task), members, &ms) < 0)
                    fprintf(stderr, "pstrain-ps: %s\n", ms.msg);
                memcpy(seen, members, sizeof seen);
            }
            pst_status ws = {0};
            int r = pst_task_wait_shutdown(m.task, 200, &ws);
            if (r == PST_E_DEADLINE) {
                if (stop_signal || pst_coord_agent_superseded(m.agent)) {
                    rc = stop_signal ? 1 : 0;
                    break;
                }
                if (pst_coord_agent_job_finished(m.agent)) {
                    if (!quiet)
                        fprintf(stderr, "pstrain-ps: the chief finished and no worker runs; "
                                        "exiting\n");
                    break;
                }
                continue;
            }
            rc = r < 0 ? 1 : 0;
            if (r < 0)
                fprintf(stderr, "pstrain-ps: the job ended with an error: %s\n", ws.msg);
            break;
        }
        pst_member_finish(&m, rc != 0, rc ? "stopped" : "every worker finished");
        pst_security_free(sec);
        return rc;
    }
    pst_cluster *c = NULL;
    if (cluster_file) {
        c = pst_cluster_load_ex(cluster_file, port_file ? PST_CLUSTER_ALLOW_PORT0 : 0, &st);
    } else {
        char type[64];
        int index = -1;
        c = pst_cluster_from_env("TF_CONFIG", type, sizeof type, &index, &st);
        if (c && task < 0) {
            if (strcmp(type, "ps") != 0) {
                fprintf(stderr, "pstrain-ps: TF_CONFIG names task type '%s', not 'ps'\n", type);
                pst_cluster_free(c);
                pst_security_free(sec);
                return 2;
            }
            task = index;
        }
        if (!c && !st.code) {
            fprintf(stderr, "pstrain-ps: give --cluster FILE or set TF_CONFIG\n");
            pst_security_free(sec);
            return usage(stderr, 2);
        }
    }
    if (!c) {
        fprintf(stderr, "pstrain-ps: %s\n", st.msg);
        pst_security_free(sec);
        return 2;
    }
    if (task < 0) {
        fprintf(stderr, "pstrain-ps: --task K is required\n");
        pst_cluster_free(c);
        pst_security_free(sec);
        return 2;
    }
    if (ckpt_dir && pst_file_make_dirs(ckpt_dir, &st) < 0) {
        fprintf(stderr, "pstrain-ps: --checkpoint-dir: %s\n", st.msg);
        pst_cluster_free(c);
        pst_security_free(sec);
        return 2;
    }
    pst_task_opts o = {.cluster = c,
                       .job = "ps",
                       .index = (int)task,
                       .quiet = quiet,
                       .recv_timeout_ms = recv_ms,
                       .expected_workers = (int)workers,
                       .peer_timeout_ms = worker_timeout,
                       .run_threads = (int)run_threads,
                       .run_queue = (int)run_queue,
                       .listen = listen,
                       .security = sec,
                       .checkpoint_dir = ckpt_dir,
                       .check_numerics = check_numerics,
                       .max_pending_bytes = pending_mb << 20,
                       .max_graph_bytes = graph_mb << 20};
    pst_task *t = pst_task_new(&o, &st);
    if (!t) {
        fprintf(stderr, "pstrain-ps: %s\n", st.msg);
        pst_cluster_free(c);
        pst_security_free(sec);
        return 1;
    }
    int rc = 0;
    if (port_file) {
        char line[32];
        int n = snprintf(line, sizeof line, "%d\n", pst_task_port(t));
        if (pst_file_write_atomic(port_file, line, (size_t)n, &st) < 0) {
            fprintf(stderr, "pstrain-ps: %s\n", st.msg);
            pst_task_free(t);
            pst_cluster_free(c);
            pst_security_free(sec);
            return 1;
        }
    }
    for (;;) {
        pst_status ws = {0};
        int r = pst_task_wait_shutdown(t, 200, &ws);
        if (r == PST_E_DEADLINE) {
            if (stop_signal) {
                if (!quiet)
                    fprintf(stderr, "pstrain-ps: stopping on signal %d\n", (int)stop_signal);
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
    pst_security_free(sec);
    return rc;
}
