/*
 * bench_kernels: Conv2D forward and both backprops and MatMul at the SimpleCNN's shapes
 * (batch 100: 28x28x1 -> conv 5x5x32 SAME -> pool -> conv 5x5x64 SAME -> pool -> 3136x1024 ->
 * 1024x10), as GFLOP/s (median of 9 runs after warm-up) and as a fraction of OpenBLAS SGEMM on
 * 2048x2048 measured in the same run with the same number of threads.
 *
 * Usage: bench_kernels [threads]   (default 2)
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "kernels_conv.h"
#include "parallel.h"

#define RUNS 9

static float *randbuf(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

typedef void (*bench_fn)(void *ctx);

static double median_seconds(bench_fn fn, void *ctx) {
    double t[RUNS];
    fn(ctx); /* warm-up */
    for (int i = 0; i < RUNS; i++) {
        double t0 = pst_bench_now();
        fn(ctx);
        t[i] = pst_bench_now() - t0;
    }
    qsort(t, RUNS, sizeof t[0], pst_bench_cmp);
    return t[RUNS / 2];
}

typedef struct gemm_ctx {
    int m, n, k, ta, tb;
    float *a, *b, *c;
    int pool; /* split rows across pstrain's pool (single-threaded BLAS) */
} gemm_ctx;

static void gemm_rows(void *vctx, int64_t r0, int64_t r1) {
    gemm_ctx *g = vctx;
    const float *a = g->ta ? g->a + r0 : g->a + r0 * (g->ta ? g->m : g->k);
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans,
                (int)(r1 - r0), g->n, g->k, 1.0f, a, g->ta ? g->m : g->k, g->b, g->tb ? g->k : g->n,
                0.0f, g->c + r0 * g->n, g->n);
}

static void run_gemm(void *vctx) {
    gemm_ctx *g = vctx;
    if (g->pool)
        pst_parallel_for(g->m, 16, gemm_rows, g);
    else
        gemm_rows(g, 0, g->m);
}

typedef struct conv_ctx {
    pst_conv_geom geom;
    float *in, *filter, *out, *dy, *din, *dfilter;
    int which; /* 0 forward, 1 backprop input, 2 backprop filter */
} conv_ctx;

static void run_conv(void *vctx) {
    conv_ctx *c = vctx;
    if (c->which == 0)
        pst_conv2d_forward(&c->geom, c->in, c->filter, c->out);
    else if (c->which == 1)
        pst_conv2d_backprop_input(&c->geom, c->filter, c->dy, c->din);
    else
        pst_conv2d_backprop_filter(&c->geom, c->in, c->dy, c->dfilter);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    /* Reference: OpenBLAS with its own threads on a large square SGEMM. */
    openblas_set_num_threads(threads);
    gemm_ctx ref = {2048, 2048, 2048, 0, 0, randbuf(2048 * 2048), randbuf(2048 * 2048),
                    randbuf(2048 * 2048), 0};
    double tref = median_seconds(run_gemm, &ref);
    double ref_gflops = 2.0 * 2048 * 2048 * 2048 / tref / 1e9;
    printf("reference: OpenBLAS SGEMM 2048x2048x2048, %d threads: %.1f GFLOP/s\n", threads, ref_gflops);
    /* pstrain's configuration: its pool splits the work, BLAS runs single-threaded inside.
     * OpenBLAS's own threads keep spinning for a while after the reference; let them park
     * before timing anything, or they steal the first kernels' cores. */
    openblas_set_num_threads(1);
    usleep(500 * 1000);
    pst_parallel_set_threads(threads);
    printf("%-34s %10s %10s %8s\n", "kernel (batch 100)", "ms", "GFLOP/s", "x SGEMM");
    struct {
        const char *name;
        int h, c, oc;
    } convs[2] = {{"conv1 28x28x1 -> 5x5x32", 28, 1, 32}, {"conv2 14x14x32 -> 5x5x64", 14, 32, 64}};
    const char *what[3] = {"forward", "backprop input", "backprop filter"};
    double conv_flops = 0, conv_time = 0;
    for (int k = 0; k < 2; k++) {
        conv_ctx c = {0};
        pst_conv_geom_make(&c.geom, 100, convs[k].h, convs[k].h, convs[k].c, 5, 5, convs[k].oc, 1, 1, "SAME");
        size_t in_n = (size_t)100 * convs[k].h * convs[k].h * convs[k].c;
        size_t out_n = (size_t)100 * c.geom.oh * c.geom.ow * convs[k].oc;
        size_t f_n = (size_t)25 * convs[k].c * convs[k].oc;
        c.in = randbuf(in_n);
        c.din = randbuf(in_n);
        c.filter = randbuf(f_n);
        c.dfilter = randbuf(f_n);
        c.out = randbuf(out_n);
        c.dy = randbuf(out_n);
        double flops = 2.0 * (double)out_n * 25 * convs[k].c;
        for (int w = 0; w < 3; w++) {
            if (k == 0 && w == 1) continue; /* the input image needs no gradient in training */
            c.which = w;
            double t = median_seconds(run_conv, &c);
            double gf = flops / t / 1e9;
            conv_flops += flops;
            conv_time += t;
            char label[96];
            snprintf(label, sizeof label, "%s %s", convs[k].name, what[w]);
            printf("%-34s %10.2f %10.1f %8.2f\n", label, t * 1e3, gf, gf / ref_gflops);
        }
        free(c.in);
        free(c.din);
        free(c.filter);
        free(c.dfilter);
        free(c.out);
        free(c.dy);
    }
    printf("%-34s %10.2f %10.1f %8.2f\n", "all convolutions", conv_time * 1e3,
           conv_flops / conv_time / 1e9, conv_flops / conv_time / 1e9 / ref_gflops);
    struct {
        const char *name;
        int m, n, k, ta, tb;
    } mms[4] = {{"matmul 100x3136 x 3136x1024", 100, 1024, 3136, 0, 0},
                {"matmul grad W: 3136x100 x 100x1024", 3136, 1024, 100, 1, 0},
                {"matmul grad x: 100x1024 x 1024x3136", 100, 3136, 1024, 0, 1},
                {"matmul 100x1024 x 1024x10", 100, 10, 1024, 0, 0}};
    for (int i = 0; i < 4; i++) {
        gemm_ctx g = {mms[i].m, mms[i].n, mms[i].k, mms[i].ta, mms[i].tb,
                      randbuf((size_t)mms[i].m * mms[i].k), randbuf((size_t)mms[i].k * mms[i].n),
                      randbuf((size_t)mms[i].m * mms[i].n), 1};
        double t = median_seconds(run_gemm, &g);
        double gf = 2.0 * mms[i].m * mms[i].n * mms[i].k / t / 1e9;
        printf("%-34s %10.2f %10.1f %8.2f\n", mms[i].name, t * 1e3, gf, gf / ref_gflops);
        free(g.a);
        free(g.b);
        free(g.c);
    }
    free(ref.a);
    free(ref.b);
    free(ref.c);
    return 0;
}
