/*
 * bench_kernels: Conv2D forward and both backprops and MatMul at the SimpleCNN's shapes
 * (batch 100: 28x28x1 -> conv 5x5x32 SAME -> pool -> conv 5x5x64 SAME -> pool -> 3136x1024 ->
 * 1024x10), as GFLOP/s and as a fraction of OpenBLAS SGEMM on 2048x2048.
 *
 * The machine is shared and its speed drifts by 20-30% over seconds, so each kernel is timed in
 * RUNS pairs that alternate one kernel call with one reference SGEMM (each timed kernel call
 * follows an untimed one, so its data is in the cache as in a training step, not evicted by the
 * reference's 48 MB); a pair's ratio compares the two, and the median ratio is reported. The interleaved reference runs the way pstrain
 * runs: the 2048x2048 product split by rows over pstrain's thread pool with single-threaded
 * OpenBLAS inside. OpenBLAS with its own threads is measured once at the start and printed
 * next to it, so a reader sees the two references agree.
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

/* 64-byte aligned, as tensor buffers are. */
static float *randbuf(size_t n) {
    float *p = aligned_alloc(64, (n * sizeof *p + 63) / 64 * 64);
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

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof v[0], pst_bench_cmp);
    return v[n / 2];
}

/* Times fn against ref in RUNS alternating pairs; returns the median kernel time and stores
 * the median of the per-pair ratios (kernel GFLOP/s over reference GFLOP/s). */
static double paired(bench_fn fn, void *ctx, double flops, bench_fn ref, void *rctx,
                     double ref_flops, double *ratio, double *ref_gflops) {
    double t[RUNS], r[RUNS], g[RUNS];
    for (int i = 0; i < RUNS; i++) {
        fn(ctx); /* the reference evicted the caches: time the kernel warm, as training runs it */
        double t0 = pst_bench_now();
        fn(ctx);
        double t1 = pst_bench_now();
        ref(rctx);
        double t2 = pst_bench_now();
        t[i] = t1 - t0;
        g[i] = ref_flops / (t2 - t1) / 1e9;
        r[i] = (flops / t[i]) / (ref_flops / (t2 - t1));
    }
    *ratio = median(r, RUNS);
    *ref_gflops = median(g, RUNS);
    return median(t, RUNS);
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
    if (g->pool) { /* as the MatMul kernel does: one range per thread */
        int64_t t = pst_parallel_threads(), grain = (g->m + t - 1) / t;
        pst_parallel_for(g->m, grain > 16 ? grain : 16, gemm_rows, g);
    } else
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

static double ref_sum, ref_n; /* the interleaved reference's GFLOP/s over all pairs */

static void report(const char *label, double t, double flops, double ratio, double ref_gflops) {
    printf("%-38s %8.2f %9.1f %8.2f\n", label, t * 1e3, flops / t / 1e9, ratio);
    ref_sum += ref_gflops;
    ref_n++;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    /* OpenBLAS with its own threads on the large square SGEMM, once. */
    openblas_set_num_threads(threads);
    gemm_ctx ref = {2048, 2048, 2048, 0, 0, randbuf(2048 * 2048), randbuf(2048 * 2048),
                    randbuf(2048 * 2048), 0};
    double ref_flops = 2.0 * 2048 * 2048 * 2048;
    double tref = median_seconds(run_gemm, &ref);
    double blas_gflops = ref_flops / tref / 1e9;
    /* pstrain's configuration from here on: its pool splits the work, BLAS runs single-threaded
     * inside. OpenBLAS's own threads keep spinning for a while after the call above; let them
     * park before timing anything, or they steal the first kernels' cores. */
    openblas_set_num_threads(1);
    usleep(500 * 1000);
    pst_parallel_set_threads(threads);
    ref.pool = 1;
    printf("%-38s %8s %9s %8s\n", "kernel (batch 100)", "ms", "GFLOP/s", "x SGEMM");
    struct {
        const char *name;
        int h, c, oc;
    } convs[2] = {{"conv1 28x28x1 -> 5x5x32", 28, 1, 32}, {"conv2 14x14x32 -> 5x5x64", 14, 32, 64}};
    const char *what[3] = {"forward", "backprop input", "backprop filter"};
    double conv_flops = 0, conv_time = 0, conv_ref_time = 0, conv_ratio_min = 1e9, conv_ratios[6];
    int nconv = 0;
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
            double ratio, rg;
            double t = paired(run_conv, &c, flops, run_gemm, &ref, ref_flops, &ratio, &rg);
            conv_flops += flops;
            conv_time += t;
            conv_ref_time += flops / ratio; /* the kernel's time in units of reference time */
            conv_ratios[nconv++] = ratio;
            if (ratio < conv_ratio_min) conv_ratio_min = ratio;
            char label[96];
            snprintf(label, sizeof label, "%s %s", convs[k].name, what[w]);
            report(label, t, flops, ratio, rg);
        }
        free(c.in);
        free(c.din);
        free(c.filter);
        free(c.dfilter);
        free(c.out);
        free(c.dy);
    }
    /* All convolutions: each one's time measured in reference time (flops / ratio), summed. */
    printf("%-38s %8.2f %9.1f %8.2f  (median of the five %.2f, lowest %.2f)\n",
           "all convolutions", conv_time * 1e3, conv_flops / conv_time / 1e9,
           conv_flops / conv_ref_time, median(conv_ratios, nconv), conv_ratio_min);
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
        double flops = 2.0 * mms[i].m * mms[i].n * mms[i].k, ratio, rg;
        double t = paired(run_gemm, &g, flops, run_gemm, &ref, ref_flops, &ratio, &rg);
        report(mms[i].name, t, flops, ratio, rg);
        free(g.a);
        free(g.b);
        free(g.c);
    }
    printf("reference: OpenBLAS SGEMM 2048x2048x2048: %.1f GFLOP/s with its own %d threads (once, "
           "at the start); %.1f GFLOP/s split over pstrain's %d threads (mean of the interleaved "
           "runs the ratios use)\n",
           blas_gflops, threads, ref_sum / ref_n, threads);
    free(ref.a);
    free(ref.b);
    free(ref.c);
    return 0;
}
