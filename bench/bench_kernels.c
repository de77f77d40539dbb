/*
 * bench_kernels: Conv2D forward and both backprops and MatMul at the SimpleCNN's shapes
 * (batch 100: 28x28x1 -> conv 5x5x32 SAME -> pool -> conv 5x5x64 SAME -> pool -> 3136x1024 ->
 * 1024x10), as GFLOP/s and as a fraction of OpenBLAS SGEMM on 2048x2048x2048 with the same
 * number of threads, measured in the same run.
 *
 * Timing: one warm-up round, then RUNS rounds that each time every kernel once; each figure is
 * the median over the rounds. Interleaving spreads every kernel's samples over the run, so a
 * slow spell on a shared machine (common on VMs) does not skew one kernel alone.
 *
 * Threads: the kernels run as pstrain runs them, on its thread pool with single-threaded BLAS
 * calls inside. The reference uses OpenBLAS's own threads and is timed (median of RUNS) before
 * and after the kernels; the faster of the two is used, so a slow spell cannot flatter the
 * ratios. After a threaded call OpenBLAS's workers keep spinning for a while and would steal
 * the cores from the kernels (measured: conv1 forward 1.1 ms alone, 4-7 ms right after a
 * threaded SGEMM), hence the pause before the kernels.
 *
 * Usage: bench_kernels [threads]   (default: $OPENBLAS_NUM_THREADS, else 2)
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels_conv.h"
#include "kernels_gemm.h"
#include "parallel.h"

#define RUNS 11
#define MAX_CASES 16

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* 64-byte aligned like pstrain's tensors. */
static float *randbuf(size_t n) {
    float *p = aligned_alloc(64, (n * sizeof *p + 63) / 64 * 64);
    if (p == NULL) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

typedef struct gemm_ctx {
    int m, n, k, ta, tb;
    float *a, *b, *c;
    int reference; /* OpenBLAS threads instead of pstrain's pool */
} gemm_ctx;

/* The reference: one SGEMM call on OpenBLAS's threads. */
static void reference_gemm(gemm_ctx *g) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b,
                g->n, 0.0f, g->c, g->n);
}

typedef struct conv_ctx {
    pst_conv_geom geom;
    float *in, *filter, *out, *dy, *din, *dfilter;
    int which; /* 0 forward, 1 backprop input, 2 backprop filter */
} conv_ctx;

typedef struct bench_case {
    char label[64];
    double flops;
    int in_total; /* counted in "all training convolutions" */
    int is_gemm;
    gemm_ctx gemm;
    conv_ctx conv;
    double t[RUNS];
} bench_case;

static int threads;

static double run_case(bench_case *c) {
    double t0 = now();
    if (c->is_gemm && c->gemm.reference) {
        openblas_set_num_threads(threads);
        reference_gemm(&c->gemm);
        openblas_set_num_threads(1);
    } else if (c->is_gemm) {
        pst_gemm_f32(c->gemm.ta, c->gemm.tb, c->gemm.m, c->gemm.n, c->gemm.k, c->gemm.a, c->gemm.b,
                     c->gemm.c);
    } else if (c->conv.which == 0) {
        pst_conv_forward(&c->conv.geom, c->conv.in, c->conv.filter, c->conv.out);
    } else if (c->conv.which == 1) {
        pst_conv_backprop_input(&c->conv.geom, c->conv.filter, c->conv.dy, c->conv.din);
    } else {
        pst_conv_backprop_filter(&c->conv.geom, c->conv.in, c->conv.dy, c->conv.dfilter);
    }
    return now() - t0;
}

static double median(const double *t) {
    double s[RUNS];
    memcpy(s, t, sizeof s);
    qsort(s, RUNS, sizeof s[0], cmp);
    return s[RUNS / 2];
}

int main(int argc, char **argv) {
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    threads = argc > 1 ? atoi(argv[1]) : env && atoi(env) > 0 ? atoi(env) : 2;
    if (threads < 1)
        threads = 1;
    openblas_set_num_threads(1);
    pst_parallel_set_threads(threads);

    static bench_case cases[MAX_CASES];
    int n = 0;
    cases[n] = (bench_case){.label = "reference SGEMM 2048x2048x2048",
                            .is_gemm = 1,
                            .flops = 2.0 * 2048 * 2048 * 2048,
                            .gemm = {2048, 2048, 2048, 0, 0, randbuf(2048 * 2048),
                                     randbuf(2048 * 2048), randbuf(2048 * 2048), 1}};
    n++;
    struct {
        const char *name;
        int h, c, oc;
    } convs[2] = {{"conv1 28x28x1 5x5x32", 28, 1, 32}, {"conv2 14x14x32 5x5x64", 14, 32, 64}};
    const char *what[3] = {"forward", "backprop input", "backprop filter"};
    for (int k = 0; k < 2; k++) {
        conv_ctx c = {0};
        pst_conv_geom_make(&c.geom, 100, convs[k].h, convs[k].h, convs[k].c, 5, 5, convs[k].oc, 1,
                           1, "SAME");
        size_t in_n = (size_t)100 * convs[k].h * convs[k].h * convs[k].c;
        size_t out_n = (size_t)100 * c.geom.oh * c.geom.ow * convs[k].oc;
        size_t f_n = (size_t)25 * convs[k].c * convs[k].oc;
        c.in = randbuf(in_n);
        c.din = randbuf(in_n);
        c.filter = randbuf(f_n);
        c.dfilter = randbuf(f_n);
        c.out = randbuf(out_n);
        c.dy = randbuf(out_n);
        for (int w = 0; w < 3; w++) {
            bench_case *bc = &cases[n++];
            c.which = w;
            /* The input image takes no gradient in training: conv1's backprop input is shown
             * but left out of the total. */
            int needed = !(k == 0 && w == 1);
            *bc = (bench_case){
                .flops = 2.0 * (double)out_n * 25 * convs[k].c, .in_total = needed, .conv = c};
            snprintf(bc->label, sizeof bc->label, "%s %s%s", convs[k].name, what[w],
                     needed ? "" : " *");
        }
    }
    struct {
        const char *name;
        int m, n, k, ta, tb;
    } mms[4] = {{"matmul 100x3136 x 3136x1024", 100, 1024, 3136, 0, 0},
                {"matmul grad W: 3136x100 x 100x1024", 3136, 1024, 100, 1, 0},
                {"matmul grad x: 100x1024 x 1024x3136", 100, 3136, 1024, 0, 1},
                {"matmul 100x1024 x 1024x10", 100, 10, 1024, 0, 0}};
    for (int i = 0; i < 4; i++) {
        bench_case *bc = &cases[n++];
        *bc = (bench_case){.is_gemm = 1,
                           .flops = 2.0 * mms[i].m * mms[i].n * mms[i].k,
                           .gemm = {mms[i].m, mms[i].n, mms[i].k, mms[i].ta, mms[i].tb,
                                    randbuf((size_t)mms[i].m * mms[i].k),
                                    randbuf((size_t)mms[i].k * mms[i].n),
                                    randbuf((size_t)mms[i].m * mms[i].n), 0}};
        snprintf(bc->label, sizeof bc->label, "%s", mms[i].name);
    }

    for (int r = -1; r < RUNS; r++) {
        double t = run_case(&cases[0]);
        if (r >= 0)
            cases[0].t[r] = t;
    }
    double ref_before = cases[0].flops / median(cases[0].t) / 1e9;
    sleep(1); /* let OpenBLAS's workers go to sleep */
    for (int r = -1; r < RUNS; r++)
        for (int i = 1; i < n; i++) {
            double t = run_case(&cases[i]);
            if (r >= 0)
                cases[i].t[r] = t;
        }
    for (int r = 0; r < RUNS; r++)
        cases[0].t[r] = run_case(&cases[0]);
    double ref_after = cases[0].flops / median(cases[0].t) / 1e9;
    double ref = ref_before > ref_after ? ref_before : ref_after;
    printf("reference: OpenBLAS SGEMM 2048x2048x2048, %d threads: %.1f GFLOP/s "
           "(before the kernels %.1f, after %.1f)\n",
           threads, ref, ref_before, ref_after);
    printf("kernels on pstrain's pool of %d threads, single-threaded BLAS; median of %d rounds\n",
           threads, RUNS);
    printf("%-40s %9s %9s %8s\n", "kernel (batch 100)", "ms", "GFLOP/s", "x SGEMM");
    double conv_flops = 0, conv_time = 0;
    for (int i = 1; i < n; i++) {
        double t = median(cases[i].t), gf = cases[i].flops / t / 1e9;
        printf("%-40s %9.2f %9.1f %8.2f\n", cases[i].label, t * 1e3, gf, gf / ref);
        if (cases[i].in_total) {
            conv_flops += cases[i].flops;
            conv_time += t;
        }
        if (i == 6)
            printf("%-40s %9.2f %9.1f %8.2f\n", "all training convolutions", conv_time * 1e3,
                   conv_flops / conv_time / 1e9, conv_flops / conv_time / 1e9 / ref);
    }
    printf("* not needed in training (the input image takes no gradient); not in the total\n");
    for (int i = 0; i < n; i++) {
        if (cases[i].is_gemm) {
            free(cases[i].gemm.a);
            free(cases[i].gemm.b);
            free(cases[i].gemm.c);
        } else if (cases[i].conv.which == 0) { /* the three cases of a layer share buffers */
            conv_ctx *c = &cases[i].conv;
            free(c->in);
            free(c->din);
            free(c->filter);
            free(c->dfilter);
            free(c->out);
            free(c->dy);
        }
    }
    return 0;
}
