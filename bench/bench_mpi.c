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
 * Part 1 also reports each way alone (the push against the raw MPI_Send, the pull against the
 * raw MPI_Recv) and against raw MPI in as many messages as pstrain sends (one per variable
 * each way, all posted at once), which separates pstrain's per-message cost from MPI's. Rank 0
 * (the PS) waits for the end of each pstrain run asleep, as a serving PS's main thread does.
 *
 * Usage: mpirun -np 2 bench_mpi [MB] [variables] [transport]   (default 100 MB in 25
 * variables; "transport" runs part 1 only)
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

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

#define RUNS 21 /* a pair takes ~35 ms */
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

/* The raw reference with pstrain's message count: n messages of per bytes from the worker
 * (rank 1) to the PS (rank 0), then n back, all posted at once as the transport does. */
static void raw_per_variable(MPI_Comm raw, int peer, char *buf, size_t per, int n, int first_send) {
    MPI_Request *q = malloc((size_t)n * sizeof *q);
    for (int pass = 0; pass < 2; pass++) {
        int sending = (pass == 0) == (first_send != 0);
        for (int i = 0; i < n; i++) {
            if (sending)
                MPI_Isend(buf + (size_t)i * per, (int)per, MPI_BYTE, peer, 3 + i, raw, &q[i]);
            else
                MPI_Irecv(buf + (size_t)i * per, (int)per, MPI_BYTE, peer, 3 + i, raw, &q[i]);
        }
        MPI_Waitall(n, q, MPI_STATUSES_IGNORE);
    }
    free(q);
}

/* Rank 0's wait for the end of rank 1's pstrain run of round r: asleep, as a PS's main thread
 * is while it serves (a blocking MPI barrier here would spin in MPI on this rank and take a
 * core and MPI's progress from the transport's threads); rank 1 pushes the round number to
 * the variable bench_round when its run is over. Both ranks then meet in a barrier (not timed)
 * so that the raw runs never time rank 0's wake-up. */
static void wait_round(pst_task *t, int64_t r) {
    pst_var *v = pst_var_store_find(pst_task_vars(t), "bench_round");
    for (;;) {
        pst_tensor *x = pst_var_read(v);
        int64_t got = x ? pst_tensor_get_i64(x, 0) : -1;
        pst_tensor_unref(x);
        if (got >= r) return;
        nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
    }
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
    /* The same reference into a buffer in transparent huge pages, as pstrain's large tensor
     * blocks are (tensor.c): how much of the difference is the pages. */
    char *hbuf = NULL;
    if (posix_memalign((void **)&hbuf, (size_t)2 << 20, bytes) != 0)
        return pst_status_set(st, PST_E_EXHAUSTED, "no memory for %zu bytes", bytes);
    madvise(hbuf, bytes & ~(((size_t)2 << 20) - 1), MADV_HUGEPAGE);
    memset(hbuf, 7, bytes);
    int rc = 0;
    if (rank == 0) {
        for (int i = 0; i < n_vars && !rc; i++) {
            char name[32];
            snprintf(name, sizeof name, "v%d", i);
            if (!pst_var_store_get_or_create(pst_task_vars(t), name, PST_FLOAT,
                                             pst_shape_1d((int64_t)(per / 4)), st))
                rc = st->code;
        }
        pst_var *round = pst_var_store_get_or_create(pst_task_vars(t), "bench_round", PST_INT64,
                                                     pst_shape_scalar(), st);
        pst_tensor *minus1 = pst_tensor_scalar_i64(-1);
        if (!round || pst_var_assign(round, minus1, 0, st) < 0) rc = st->code;
        pst_tensor_unref(minus1);
        MPI_Barrier(raw); /* the variables exist */
        for (int r = 0; r <= RUNS; r++) {
            MPI_Barrier(raw); /* both ranks start the raw runs together */
            MPI_Recv(buf, (int)bytes, MPI_BYTE, 1, 1, raw, MPI_STATUS_IGNORE);
            MPI_Send(buf, (int)bytes, MPI_BYTE, 1, 2, raw);
            raw_per_variable(raw, 1, buf, per, n_vars, 0);
            MPI_Recv(hbuf, (int)bytes, MPI_BYTE, 1, 1, raw, MPI_STATUS_IGNORE);
            MPI_Send(hbuf, (int)bytes, MPI_BYTE, 1, 2, raw);
            wait_round(t, r); /* rank 1's pstrain run of this pair is over */
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
        double tp[RUNS], tr[RUNS], ratio[RUNS], trn[RUNS], ration[RUNS], trh[RUNS], ratioh[RUNS];
        double tpush[RUNS], tpull[RUNS], trsend[RUNS], trrecv[RUNS], ratio_push[RUNS],
            ratio_pull[RUNS];
        for (int r = 0; r <= RUNS && !rc; r++) { /* run 0 warms both up */
            MPI_Barrier(raw); /* rank 0 is back from its wait (not timed) */
            double t0 = pst_bench_now();
            MPI_Send(buf, (int)bytes, MPI_BYTE, 0, 1, raw);
            double t_rsend = pst_bench_now() - t0;
            MPI_Recv(buf, (int)bytes, MPI_BYTE, 0, 2, raw, MPI_STATUS_IGNORE);
            double t_raw = pst_bench_now() - t0;
            t0 = pst_bench_now();
            raw_per_variable(raw, 0, buf, per, n_vars, 1);
            double t_rawn = pst_bench_now() - t0;
            t0 = pst_bench_now();
            MPI_Send(hbuf, (int)bytes, MPI_BYTE, 0, 1, raw);
            MPI_Recv(hbuf, (int)bytes, MPI_BYTE, 0, 2, raw, MPI_STATUS_IGNORE);
            double t_rawh = pst_bench_now() - t0;
            t0 = pst_bench_now();
            rc = pst_task_client_push_variables(t, "/job:ps/task:0", n_vars,
                                                (const char *const *)names, vars, st);
            double t_push = pst_bench_now() - t0;
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
            pst_tensor *rt = pst_tensor_scalar_i64(r); /* rank 0 goes on (wait_round) */
            const char *round_name = "bench_round";
            pst_status rs = {0};
            if (pst_task_client_push_variables(t, "/job:ps/task:0", 1, &round_name, &rt, &rs) < 0 &&
                !rc)
                rc = pst_status_set(st, rs.code, "%s", rs.msg);
            pst_tensor_unref(rt);
            if (r > 0) {
                tp[r - 1] = t_pst;
                tr[r - 1] = t_raw;
                ratio[r - 1] = t_raw / t_pst;
                trn[r - 1] = t_rawn;
                ration[r - 1] = t_rawn / t_pst;
                trh[r - 1] = t_rawh;
                ratioh[r - 1] = t_rawh / t_pst;
                tpush[r - 1] = t_push;
                ratio_push[r - 1] = t_rsend / t_push;
                tpull[r - 1] = t_pst - t_push;
                ratio_pull[r - 1] = (t_raw - t_rsend) / (t_pst - t_push);
                trsend[r - 1] = t_rsend;
                trrecv[r - 1] = t_raw - t_rsend;
            }
        }
        pst_status ignore = {0};
        pst_task_client_say_done(t, "/job:ps/task:0", 0, NULL, &ignore);
        if (!rc) {
            printf("1. push + pull over the MPI transport vs raw MPI_Send/MPI_Recv:\n");
            report("pstrain MPI transport, push+pull", "raw MPI_Send + MPI_Recv", tp, tr, ratio,
                   RUNS, 2.0 * (double)bytes, ">= 0.9");
            printf("   each way alone: the push against the raw MPI_Send, the pull against the "
                   "raw MPI_Recv:\n");
            report("pstrain push", "raw MPI_Send", tpush, trsend, ratio_push, RUNS, (double)bytes,
                   "(none: which way is slower)");
            report("pstrain pull", "raw MPI_Recv", tpull, trrecv, ratio_pull, RUNS, (double)bytes,
                   "(none: which way is slower)");
            printf("   the same against raw MPI in one message per variable each way (Isend/Irecv):\n");
            report("pstrain MPI transport, push+pull", "raw MPI, a message per variable", tp, trn,
                   ration, RUNS, 2.0 * (double)bytes, "(none: how much is per-message cost)");
            printf("   the same against raw MPI_Send + MPI_Recv from and into huge pages, as "
                   "pstrain's tensors are:\n");
            report("pstrain MPI transport, push+pull", "raw MPI_Send + MPI_Recv, huge pages", tp,
                   trh, ratioh, RUNS, 2.0 * (double)bytes, "(none: the pages' share)");
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
    free(hbuf);
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
    int only_transport = argc > 3 && strcmp(argv[3], "transport") == 0; /* for profiling */
    int rc = bench_transport(rank, mb, n_vars, &st);
    fflush(stdout);
    MPI_Barrier(MPI_COMM_WORLD);
    if (!rc && !only_transport) rc = bench_allreduce(rank, 0, &st);
    fflush(stdout);
    if (!rc && !only_transport) rc = bench_allreduce(rank, 5, &st);
    fflush(stdout);
    if (rc) {
        fprintf(stderr, "bench_mpi: rank %d: %s\n", rank, st.msg);
        pst_mpi_abort(1);
    }
    pst_mpi_finalize();
    return 0;
}
