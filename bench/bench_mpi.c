/*
 * bench_mpi (run with mpirun -np 2; bench/run_mpi_bench.sh does): two measurements, each
 * alternated with its reference in the same run, reported as medians and the median of the
 * per-pair ratios reference time / pstrain time (1.0 = as fast as the reference):
 *
 *  1. push plus pull of 100 MB of variables between a worker (rank 1) and a PS (rank 0) over
 *     pstrain's MPI transport, against raw MPI_Send + MPI_Recv of the same bytes (100 MB one
 *     way, then back) on a communicator of their own;
 *  2. the fused gradient allreduce of the SimpleCNN's gradients (the engine of --mode
 *     allreduce: negotiation, fusion of the small ones, averaging) against one raw
 *     MPI_Allreduce of the same bytes in one buffer, with the cycle time 0 and at its default
 *     (5 ms), 41 pairs each.
 *
 * Usage: mpirun -np 2 bench_mpi [MB] [variables]   (default 100 MB in 25 variables)
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memtune.h"
#include "allreduce.h"
#include "benchutil.h"
#include "cluster.h"
#include "nets.h"
#include "ops.h"
#include "task.h"
#include "task_client.h"
#include "transport_mpi.h"
#include "varstore.h"

#define RUNS 9
#define AR_RUNS 41 /* an allreduce pair takes ~10 ms: more of them for a steadier median */

static void report(const char *what, const char *ref, double *t, double *tr, double *ratio,
                   int n, double bytes, const char *target) {
    qsort(t, (size_t)n, sizeof t[0], pst_bench_cmp);
    qsort(tr, (size_t)n, sizeof tr[0], pst_bench_cmp);
    qsort(ratio, (size_t)n, sizeof ratio[0], pst_bench_cmp);
    printf("  %-34s %8.2f ms median (%.2f GB/s)\n", ref, tr[n / 2] * 1e3, bytes / tr[n / 2] / 1e9);
    printf("  %-34s %8.2f ms median (%.2f GB/s)\n", what, t[n / 2] * 1e3, bytes / t[n / 2] / 1e9);
    printf("  reference time / pstrain time: median %.2f (min %.2f, max %.2f); target %s\n",
           ratio[n / 2], ratio[0], ratio[n - 1], target);
}

/* 1: the transport. Rank 0 serves the PS and echoes the raw messages; rank 1 measures. */
static int bench_transport(int rank, size_t mb, int n_vars, pst_status *st) {
    size_t per = mb * 1000 * 1000 / (size_t)n_vars / 4 * 4, bytes = per * (size_t)n_vars;
    pst_cluster *c = pst_cluster_parse("{\"ps\": [\"mpi:0\"], \"worker\": [\"mpi:1\"]}", "bench",
                                       st);
    if (!c) return st->code;
    pst_task_opts o = {.cluster = c, .job = rank == 0 ? "ps" : "worker", .index = 0,
                       .transport = "mpi", .quiet = 1};
    pst_task *t = pst_task_new(&o, st);
    if (!t) {
        pst_cluster_free(c);
        return st->code;
    }
    MPI_Comm raw;
    MPI_Comm_dup(MPI_COMM_WORLD, &raw);
    char *buf = malloc(bytes);
    memset(buf, 7, bytes);
    int rc = 0;
    if (rank == 0) {
        for (int i = 0; i < n_vars && !rc; i++) {
            char name[32];
            snprintf(name, sizeof name, "v%d", i);
            if (!pst_var_store_get_or_create(pst_task_vars(t), name, PST_FLOAT,
                                             pst_shape_1d((int64_t)(per / 4)), st))
                rc = st->code;
        }
        MPI_Barrier(raw); /* the variables exist */
        for (int r = 0; r <= RUNS; r++) {
            MPI_Recv(buf, (int)bytes, MPI_BYTE, 1, 1, raw, MPI_STATUS_IGNORE);
            MPI_Send(buf, (int)bytes, MPI_BYTE, 1, 2, raw);
            MPI_Barrier(raw); /* rank 1's pstrain run of this pair is over */
        }
        pst_task_wait_shutdown(t, 0, st);
    } else {
        printf("bench_mpi: %.0f MB in %d variables of %.1f MB, worker (rank 1) <-> PS (rank 0), "
               "%d alternating runs\n", bytes / 1e6, n_vars, (double)per / 1e6, RUNS);
        pst_tensor **vars = calloc((size_t)n_vars, sizeof *vars), **back =
                                                                     calloc((size_t)n_vars,
                                                                            sizeof *back);
        char **names = calloc((size_t)n_vars, sizeof *names);
        for (int i = 0; i < n_vars; i++) {
            vars[i] = pst_tensor_new(PST_FLOAT, pst_shape_1d((int64_t)(per / 4)), st);
            float *f = pst_tensor_f32(vars[i]);
            for (size_t k = 0; k < per / 4; k++) f[k] = (float)(k % 1000) * 0.5f + (float)i;
            names[i] = malloc(32);
            snprintf(names[i], 32, "v%d", i);
        }
        MPI_Barrier(raw);
        double tp[RUNS], tr[RUNS], ratio[RUNS];
        for (int r = 0; r <= RUNS && !rc; r++) { /* run 0 warms both up */
            double t0 = pst_bench_now();
            MPI_Send(buf, (int)bytes, MPI_BYTE, 0, 1, raw);
            MPI_Recv(buf, (int)bytes, MPI_BYTE, 0, 2, raw, MPI_STATUS_IGNORE);
            double t_raw = pst_bench_now() - t0;
            t0 = pst_bench_now();
            rc = pst_task_client_push_variables(t, "/job:ps/task:0", n_vars,
                                                (const char *const *)names, vars, st);
            if (!rc)
                rc = pst_task_client_pull_variables(t, "/job:ps/task:0", n_vars,
                                                    (const char *const *)names, back, st);
            double t_pst = pst_bench_now() - t0;
            for (int i = 0; i < n_vars && !rc; i++)
                if (memcmp(back[i]->data, vars[i]->data, per) != 0)
                    rc = pst_status_set(st, PST_E_DATA_LOSS, "variable %s came back different",
                                        names[i]);
            for (int i = 0; i < n_vars; i++) {
                pst_tensor_unref(back[i]);
                back[i] = NULL;
            }
            MPI_Barrier(raw);
            if (r > 0) {
                tp[r - 1] = t_pst;
                tr[r - 1] = t_raw;
                ratio[r - 1] = t_raw / t_pst;
            }
        }
        pst_status ignore = {0};
        pst_task_client_say_done(t, "/job:ps/task:0", 0, NULL, &ignore);
        if (!rc) {
            printf("1. push + pull over the MPI transport vs raw MPI_Send/MPI_Recv:\n");
            report("pstrain MPI transport, push+pull", "raw MPI_Send + MPI_Recv", tp, tr, ratio,
                   RUNS, 2.0 * (double)bytes, ">= 0.9");
        }
        for (int i = 0; i < n_vars; i++) {
            pst_tensor_unref(vars[i]);
            free(names[i]);
        }
        free(vars);
        free(back);
        free(names);
    }
    free(buf);
    MPI_Comm_free(&raw);
    pst_task_free(t);
    pst_cluster_free(c);
    return rc;
}

/* The SimpleCNN's trainable variables as gradient-shaped tensors (caller unrefs). */
static int cnn_gradients(pst_tensor ***out, pst_status *st) {
    pst_graph *g = pst_graph_new();
    const pst_net_def *net = pst_net_lookup("simple_cnn");
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_4d(-1, 28, 28, 1));
    pst_net_opts no = pst_net_defaults();
    net->build(g, x, &no);
    int n = 0;
    const pst_output *vars = pst_graph_collection(g, PST_TRAINABLE_VARIABLES, &n);
    pst_tensor **t = calloc((size_t)n + 1, sizeof *t);
    for (int i = 0; i < n; i++) {
        t[i] = pst_tensor_new(PST_FLOAT, pst_output_shape(vars[i]), st);
        float *f = pst_tensor_f32(t[i]);
        for (int64_t k = 0; k < t[i]->n; k++) f[k] = (float)((k + i) % 97) * 0.01f;
    }
    pst_graph_free(g);
    *out = t;
    return n;
}

/* 2: fused allreduce of the SimpleCNN's gradients vs one raw MPI_Allreduce. */
static int bench_allreduce(int rank, double cycle_ms, pst_status *st) {
    pst_tensor **grads = NULL;
    int n = cnn_gradients(&grads, st);
    int64_t elems = 0;
    for (int i = 0; i < n; i++) elems += grads[i]->n;
    pst_allreduce_opts ao = {.cycle_ms = cycle_ms > 0 ? cycle_ms : -1};
    int rc = pst_allreduce_start(&ao, NULL, NULL, st);
    float *buf = malloc((size_t)elems * sizeof(float)), *out = malloc((size_t)elems * sizeof(float));
    memset(buf, 0, (size_t)elems * sizeof(float));
    double tf[AR_RUNS], tr[AR_RUNS], ratio[AR_RUNS];
    for (int r = 0; r <= AR_RUNS && !rc; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = pst_bench_now();
        MPI_Allreduce(buf, out, (int)elems, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double t_raw = pst_bench_now() - t0;
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = pst_bench_now();
        for (int i = 0; i < n && !rc; i++) rc = pst_allreduce_submit(i, n, grads[i], st);
        for (int i = 0; i < n && !rc; i++) {
            pst_tensor *avg = pst_allreduce_wait(i, st);
            if (!avg) rc = st->code;
            else if (r == 0 && pst_tensor_f32(avg)[0] != pst_tensor_f32(grads[i])[0])
                rc = pst_status_set(st, PST_E_DATA_LOSS, "gradient %d: wrong average", i);
            pst_tensor_unref(avg);
        }
        double t_fused = pst_bench_now() - t0;
        if (r > 0) {
            tf[r - 1] = t_fused;
            tr[r - 1] = t_raw;
            ratio[r - 1] = t_raw / t_fused;
        }
    }
    pst_allreduce_stats s;
    pst_allreduce_get_stats(&s);
    pst_allreduce_stop();
    if (!rc && rank == 0) {
        printf("2. SimpleCNN gradients (%d tensors, %.1f MB), fused allreduce (cycle %g ms, "
               "%lld collectives of data in %d steps) vs one raw MPI_Allreduce:\n", n,
               (double)elems * 4 / 1e6, cycle_ms, (long long)s.reductions, AR_RUNS + 1);
        report("pstrain fused allreduce", "raw MPI_Allreduce, one buffer", tf, tr, ratio, AR_RUNS,
               (double)elems * 4, ">= 0.9");
    }
    for (int i = 0; i < n; i++) pst_tensor_unref(grads[i]);
    free(grads);
    free(buf);
    free(out);
    return rc;
}

int main(int argc, char **argv) {
    pst_memtune_process(); /* large buffers stay in the heap (base/memtune.h) */
    pst_ops_init();
    size_t mb = argc > 1 ? (size_t)atol(argv[1]) : 100;
    int n_vars = argc > 2 ? atoi(argv[2]) : 25;
    pst_status st = {0};
    int rank = 0, size = 0;
    if (pst_mpi_init(&rank, &size, &st) < 0 || size != 2) {
        fprintf(stderr, "bench_mpi: %s\n", st.code ? st.msg : "run it with mpirun -np 2");
        return 2;
    }
    int rc = bench_transport(rank, mb, n_vars, &st);
    fflush(stdout);
    MPI_Barrier(MPI_COMM_WORLD);
    if (!rc) rc = bench_allreduce(rank, 0, &st);
    fflush(stdout);
    if (!rc) rc = bench_allreduce(rank, 5, &st);
    fflush(stdout);
    if (rc) {
        fprintf(stderr, "bench_mpi: rank %d: %s\n", rank, st.msg);
        pst_mpi_abort(1);
    }
    pst_mpi_finalize();
    return 0;
}
