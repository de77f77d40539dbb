/* The nn ops' forward values: the convolution and pooling ops (and their gradient ops) against
 * naive loops written here, on shapes that reach every kernel path (im2col blocks, pointwise,
 * single-channel direct kernels, the flipped-filter input gradient), in float32 and float64;
 * the other ops against hand-computed values. Gradient checks are in test_ops_nn_grad.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_softmax.h"
#include "parallel.h"
#include "testutil.h"

/* ---- naive references (double accumulation, TensorFlow's padding worked out here) ---------- */

typedef struct geo {
    int n, h, w, c, kh, kw, oc, sh, sw;
    const char *pad;
} geo;

typedef struct dims {
    int oh, ow, pt, pl;
} dims;

static dims out_dims(const geo *q) {
    dims d;
    int same = strcmp(q->pad, "SAME") == 0;
    d.oh = same ? (q->h + q->sh - 1) / q->sh : (q->h - q->kh + q->sh) / q->sh;
    d.ow = same ? (q->w + q->sw - 1) / q->sw : (q->w - q->kw + q->sw) / q->sw;
    int ph = (d.oh - 1) * q->sh + q->kh - q->h, pw = (d.ow - 1) * q->sw + q->kw - q->w;
    d.pt = same && ph > 0 ? ph / 2 : 0;
    d.pl = same && pw > 0 ? pw / 2 : 0;
    return d;
}

#define X(n_, i_, j_, c_) ((((int64_t)(n_)*q->h + (i_)) * q->w + (j_)) * q->c + (c_))
#define F(i_, j_, c_, o_) ((((int64_t)(i_)*q->kw + (j_)) * q->c + (c_)) * q->oc + (o_))
#define Y(n_, i_, j_, o_, C_) ((((int64_t)(n_)*d.oh + (i_)) * d.ow + (j_)) * (C_) + (o_))

/* Calls body for every (n, output y, x, filter i, j) whose input position (ih, iw) is inside. */
#define FOR_TAPS(body)                                                                             \
    for (int n = 0; n < q->n; n++)                                                                 \
        for (int y = 0; y < d.oh; y++)                                                             \
            for (int x = 0; x < d.ow; x++)                                                         \
                for (int i = 0; i < q->kh; i++)                                                    \
                    for (int j = 0; j < q->kw; j++) {                                              \
                        int ih = y * q->sh - d.pt + i, iw = x * q->sw - d.pl + j;                  \
                        if (ih < 0 || ih >= q->h || iw < 0 || iw >= q->w)                          \
                            continue;                                                              \
                        body                                                                       \
                    }

static void ref_conv(const geo *q, const double *in, const double *f, double *out) {
    dims d = out_dims(q);
    memset(out, 0, sizeof(double) * (size_t)q->n * d.oh * d.ow * q->oc);
    FOR_TAPS(for (int c = 0; c < q->c; c++) for (int o = 0; o < q->oc; o++)
                 out[Y(n, y, x, o, q->oc)] += in[X(n, ih, iw, c)] * f[F(i, j, c, o)];)
}

static void ref_conv_bi(const geo *q, const double *f, const double *dy, double *din) {
    dims d = out_dims(q);
    memset(din, 0, sizeof(double) * (size_t)q->n * q->h * q->w * q->c);
    FOR_TAPS(for (int c = 0; c < q->c; c++) for (int o = 0; o < q->oc; o++) din[X(n, ih, iw, c)] +=
             dy[Y(n, y, x, o, q->oc)] * f[F(i, j, c, o)];)
}

static void ref_conv_bf(const geo *q, const double *in, const double *dy, double *df) {
    dims d = out_dims(q);
    memset(df, 0, sizeof(double) * (size_t)q->kh * q->kw * q->c * q->oc);
    FOR_TAPS(for (int c = 0; c < q->c; c++) for (int o = 0; o < q->oc; o++) df[F(i, j, c, o)] +=
             in[X(n, ih, iw, c)] * dy[Y(n, y, x, o, q->oc)];)
}

/* Pooling over q->c channels (q->oc unused). Max: gradient to the first maximum of the window
 * in row-major order; average: divided by the in-image window size. */
static void ref_pool(const geo *q, int is_max, const double *in, const double *dy, double *out,
                     double *din) {
    dims d = out_dims(q);
    if (din)
        memset(din, 0, sizeof(double) * (size_t)q->n * q->h * q->w * q->c);
    for (int n = 0; n < q->n; n++)
        for (int y = 0; y < d.oh; y++)
            for (int x = 0; x < d.ow; x++)
                for (int c = 0; c < q->c; c++) {
                    double best = -INFINITY, sum = 0;
                    int64_t arg = -1, count = 0;
                    for (int i = 0; i < q->kh; i++)
                        for (int j = 0; j < q->kw; j++) {
                            int ih = y * q->sh - d.pt + i, iw = x * q->sw - d.pl + j;
                            if (ih < 0 || ih >= q->h || iw < 0 || iw >= q->w)
                                continue;
                            double v = in[X(n, ih, iw, c)];
                            sum += v;
                            count++;
                            if (v > best) {
                                best = v;
                                arg = X(n, ih, iw, c);
                            }
                        }
                    int64_t o = Y(n, y, x, c, q->c);
                    if (out)
                        out[o] = is_max ? best : sum / (double)count;
                    if (din && is_max)
                        din[arg] += dy[o];
                    if (din && !is_max)
                        for (int i = 0; i < q->kh; i++)
                            for (int j = 0; j < q->kw; j++) {
                                int ih = y * q->sh - d.pt + i, iw = x * q->sw - d.pl + j;
                                if (ih < 0 || ih >= q->h || iw < 0 || iw >= q->w)
                                    continue;
                                din[X(n, ih, iw, c)] += dy[o] / (double)count;
                            }
                }
}

/* ---- helpers ------------------------------------------------------------------------------- */

static pst_tensor *rand_t(pst_dtype dt, pst_shape s, uint64_t seed) {
    return pst_test_rand(dt, s, seed, -1, 1);
}

static double *as_f64(const pst_tensor *t) {
    double *v = malloc(sizeof(double) * (size_t)(t->n > 0 ? t->n : 1));
    ck_assert_ptr_nonnull(v);
    for (int64_t i = 0; i < t->n; i++)
        v[i] = pst_tensor_get_f64(t, i);
    return v;
}

/* Asserts t has shape s and values ref within tol * (1 + |ref|). */
static void expect_close(const char *what, const pst_tensor *t, pst_shape s, const double *ref,
                         double tol) {
    char a[128], b[128];
    ck_assert_msg(pst_shape_equal(&t->shape, &s), "%s: shape %s, expected %s", what,
                  pst_shape_str(&t->shape, a, sizeof a), pst_shape_str(&s, b, sizeof b));
    for (int64_t i = 0; i < t->n; i++) {
        double v = pst_tensor_get_f64(t, i);
        ck_assert_msg(fabs(v - ref[i]) <= tol * (1 + fabs(ref[i])),
                      "%s: element %lld is %.9g, expected %.9g", what, (long long)i, v, ref[i]);
    }
}

static pst_tensor *run_graph(pst_graph *g, pst_output out) {
    pst_status st = {0};
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_ptr_nonnull(s);
    pst_tensor *t = pst_test_run(s, out, 0, NULL);
    pst_session_free(s);
    return t;
}

static pst_output sizes(pst_graph *g, int a, int b, int c, int d) {
    return pst_const_i32_vec(g, 4, (int32_t[]){a, b, c, d}, NULL);
}

/* ---- convolutions against the naive loops ------------------------------------------------- */

static const geo conv_geos[] = {
    {2, 7, 6, 3, 3, 2, 4, 1, 1, "SAME"}, /* non-square kernel, even width: uneven padding */
    {2, 7, 6, 3, 3, 2, 4, 2, 2, "VALID"},   {3, 8, 7, 2, 5, 3, 5, 2, 1, "SAME"},
    {2, 9, 8, 3, 4, 4, 3, 3, 3, "SAME"},  /* window larger than the stride */
    {2, 5, 5, 8, 1, 1, 4, 1, 1, "VALID"}, /* pointwise: no im2col */
    {2, 5, 5, 8, 1, 1, 4, 2, 2, "SAME"},  /* 1x1 with stride: im2col */
    {3, 9, 9, 1, 5, 5, 32, 1, 1, "SAME"}, /* one input channel: direct kernels */
    {2, 8, 7, 1, 3, 4, 16, 2, 1, "SAME"},   {2, 7, 6, 1, 2, 3, 64, 1, 2, "VALID"},
    {2, 6, 6, 1, 3, 3, 5, 1, 1, "SAME"},    /* one channel, OC without a direct kernel */
    {2, 9, 9, 32, 3, 3, 8, 1, 1, "SAME"},   /* C > OC, stride 1: flipped-filter input gradient */
    {2, 8, 8, 32, 3, 3, 1, 1, 1, "VALID"},  /* ... whose convolution has one input channel */
    {4, 30, 30, 16, 3, 3, 8, 1, 1, "SAME"}, /* several im2col blocks per thread */
};

static void check_conv(const geo *q, pst_dtype dt, uint64_t seed) {
    dims d = out_dims(q);
    pst_shape xs = pst_shape_4d(q->n, q->h, q->w, q->c),
              fs = pst_shape_4d(q->kh, q->kw, q->c, q->oc);
    pst_shape ys = pst_shape_4d(q->n, d.oh, d.ow, q->oc);
    pst_tensor *x = rand_t(dt, xs, seed), *f = rand_t(dt, fs, seed + 1),
               *dy = rand_t(dt, ys, seed + 2);
    double *xv = as_f64(x), *fv = as_f64(f), *dyv = as_f64(dy);
    double *ref = malloc(sizeof(double) * (size_t)(x->n + f->n + dy->n));
    double tol = dt == PST_FLOAT ? 1e-4 : 1e-11;
    char what[128];
    pst_graph *g = pst_graph_new();
    pst_output cx = pst_const(g, x, "x"), cf = pst_const(g, f, "f"), cdy = pst_const(g, dy, "dy");
    pst_output y = pst_conv2d(g, cx, cf, q->sh, q->sw, q->pad, NULL);
    pst_output bi = pst_conv2d_backprop_input(g, sizes(g, q->n, q->h, q->w, q->c), cf, cdy, q->sh,
                                              q->sw, q->pad, NULL);
    pst_output bf = pst_conv2d_backprop_filter(g, cx, sizes(g, q->kh, q->kw, q->c, q->oc), cdy,
                                               q->sh, q->sw, q->pad, NULL);
    snprintf(what, sizeof what, "%s %dx%dx%d k%dx%dx%d s%dx%d %s", pst_dtype_name(dt), q->h, q->w,
             q->c, q->kh, q->kw, q->oc, q->sh, q->sw, q->pad);
    for (int threads = 1; threads <= 3; threads += 2) {
        pst_parallel_set_threads(threads);
        char w[160];
        pst_tensor *t = run_graph(g, y);
        ref_conv(q, xv, fv, ref);
        snprintf(w, sizeof w, "Conv2D %s, %d threads", what, threads);
        expect_close(w, t, ys, ref, tol);
        pst_tensor_unref(t);
        t = run_graph(g, bi);
        ref_conv_bi(q, fv, dyv, ref);
        snprintf(w, sizeof w, "Conv2DBackpropInput %s, %d threads", what, threads);
        expect_close(w, t, xs, ref, tol);
        pst_tensor_unref(t);
        t = run_graph(g, bf);
        ref_conv_bf(q, xv, dyv, ref);
        snprintf(w, sizeof w, "Conv2DBackpropFilter %s, %d threads", what, threads);
        expect_close(w, t, fs, ref, tol);
        pst_tensor_unref(t);
    }
    pst_parallel_set_threads(1);
    pst_graph_free(g);
    free(ref);
    free(xv);
    free(fv);
    free(dyv);
    pst_tensor_unref(x);
    pst_tensor_unref(f);
    pst_tensor_unref(dy);
}

START_TEST(test_conv_float32_matches_naive_loops) {
    check_conv(&conv_geos[_i], PST_FLOAT, 100 + (uint64_t)_i * 7);
}
END_TEST

START_TEST(test_conv_float64_matches_naive_loops) {
    check_conv(&conv_geos[_i], PST_DOUBLE, 200 + (uint64_t)_i * 7);
}
END_TEST

/* ---- pooling against the naive loops ------------------------------------------------------ */

static const geo pool_geos[] = {
    {2, 5, 5, 3, 2, 2, 0, 2, 2, "SAME"},
    {1, 6, 7, 2, 3, 2, 0, 1, 2, "VALID"},
    {2, 7, 7, 4, 3, 3, 0, 2, 2, "SAME"},
    {2, 5, 4, 3, 3, 3, 0, 1, 1, "SAME"}, /* overlapping windows */
    {1, 4, 4, 1, 4, 4, 0, 1, 1, "VALID"},
    {3, 6, 5, 17, 2, 3, 0, 2, 1, "SAME"},
};

static void check_pool(const geo *q, pst_dtype dt, uint64_t seed) {
    dims d = out_dims(q);
    pst_shape xs = pst_shape_4d(q->n, q->h, q->w, q->c), ys = pst_shape_4d(q->n, d.oh, d.ow, q->c);
    pst_tensor *x = rand_t(dt, xs, seed), *dy = rand_t(dt, ys, seed + 1);
    double *xv = as_f64(x), *dyv = as_f64(dy);
    double *ref = malloc(sizeof(double) * (size_t)x->n),
           *refy = malloc(sizeof(double) * (size_t)dy->n);
    double tol = dt == PST_FLOAT ? 1e-5 : 1e-12;
    pst_graph *g = pst_graph_new();
    pst_output cx = pst_const(g, x, "x"), cdy = pst_const(g, dy, "dy");
    for (int is_max = 0; is_max <= 1; is_max++) {
        pst_output y = is_max ? pst_max_pool(g, cx, q->kh, q->kw, q->sh, q->sw, q->pad, NULL)
                              : pst_avg_pool(g, cx, q->kh, q->kw, q->sh, q->sw, q->pad, NULL);
        pst_output dx =
            is_max ? pst_max_pool_grad(g, cx, y, cdy, q->kh, q->kw, q->sh, q->sw, q->pad, NULL)
                   : pst_avg_pool_grad(g, sizes(g, q->n, q->h, q->w, q->c), cdy, q->kh, q->kw,
                                       q->sh, q->sw, q->pad, NULL);
        char w[160];
        ref_pool(q, is_max, xv, dyv, refy, ref);
        for (int threads = 1; threads <= 2; threads++) {
            pst_parallel_set_threads(threads);
            pst_tensor *t = run_graph(g, y);
            snprintf(w, sizeof w, "%s %s %dx%dx%d k%dx%d s%dx%d %s", is_max ? "MaxPool" : "AvgPool",
                     pst_dtype_name(dt), q->h, q->w, q->c, q->kh, q->kw, q->sh, q->sw, q->pad);
            expect_close(w, t, ys, refy, tol);
            pst_tensor_unref(t);
            t = run_graph(g, dx);
            strcat(w, " gradient");
            expect_close(w, t, xs, ref, tol);
            pst_tensor_unref(t);
        }
    }
    pst_parallel_set_threads(1);
    pst_graph_free(g);
    free(ref);
    free(refy);
    free(xv);
    free(dyv);
    pst_tensor_unref(x);
    pst_tensor_unref(dy);
}

START_TEST(test_pool_float32_matches_naive_loops) {
    check_pool(&pool_geos[_i], PST_FLOAT, 300 + (uint64_t)_i * 5);
}
END_TEST

START_TEST(test_pool_float64_matches_naive_loops) {
    check_pool(&pool_geos[_i], PST_DOUBLE, 400 + (uint64_t)_i * 5);
}
END_TEST

/* ---- hand-computed values ------------------------------------------------------------------ */

#define EXPECT(g, out, rank, dims_, vals)                                                          \
    do {                                                                                           \
        pst_tensor *t_ = run_graph(g, out);                                                        \
        PST_ASSERT_TENSOR(t_, rank, dims_, vals, 1e-6);                                            \
        pst_tensor_unref(t_);                                                                      \
    } while (0)

static pst_shape s3(int64_t a, int64_t b, int64_t c) {
    return pst_shape_make(3, (int64_t[]){a, b, c});
}

static pst_output cf(pst_graph *g, pst_shape s, const float *v) {
    return pst_const_f32_tensor(g, s, v, NULL);
}

START_TEST(test_conv_gradient_ops_by_hand) {
    pst_graph *g = pst_graph_new();
    /* 3x3 image, 2x2 all-ones filter, VALID: the input gradient spreads each dy over its window;
     * the filter gradient sums the image under each tap's positions. */
    pst_output ones = cf(g, pst_shape_4d(2, 2, 1, 1), (float[]){1, 1, 1, 1});
    pst_output dy = cf(g, pst_shape_4d(1, 2, 2, 1), (float[]){1, 2, 3, 4});
    EXPECT(g, pst_conv2d_backprop_input(g, sizes(g, 1, 3, 3, 1), ones, dy, 1, 1, "VALID", NULL), 4,
           ((int64_t[]){1, 3, 3, 1}), ((double[]){1, 3, 2, 4, 10, 6, 3, 7, 4}));
    pst_output img = cf(g, pst_shape_4d(1, 3, 3, 1), (float[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    pst_output dy1 = cf(g, pst_shape_4d(1, 2, 2, 1), (float[]){1, 1, 1, 1});
    EXPECT(g, pst_conv2d_backprop_filter(g, img, sizes(g, 2, 2, 1, 1), dy1, 1, 1, "VALID", NULL), 4,
           ((int64_t[]){2, 2, 1, 1}), ((double[]){12, 16, 24, 28}));
    /* SAME with stride 2 on 3x3: outputs at rows/cols 0 and 2, no top/left padding; the
     * bottom-right output sees only the corner pixel. */
    EXPECT(g, pst_conv2d_backprop_filter(g, img, sizes(g, 2, 2, 1, 1), dy1, 2, 2, "SAME", NULL), 4,
           ((int64_t[]){2, 2, 1, 1}), ((double[]){1 + 3 + 7 + 9, 2 + 8, 4 + 6, 5}));
    /* Two output channels: filter [1,1,1,2] = {1, 10}; the input gradient is dy0 + 10 dy1. */
    pst_output f2 = cf(g, pst_shape_4d(1, 1, 1, 2), (float[]){1, 10});
    pst_output dy2 = cf(g, pst_shape_4d(1, 1, 2, 2), (float[]){1, 2, 3, 4});
    EXPECT(g, pst_conv2d_backprop_input(g, sizes(g, 1, 1, 2, 1), f2, dy2, 1, 1, "VALID", NULL), 4,
           ((int64_t[]){1, 1, 2, 1}), ((double[]){21, 43}));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_pool_gradient_ops_by_hand) {
    pst_graph *g = pst_graph_new();
    /* 2x2 max pool of one window: the gradient goes to the maximum, and on ties to the first
     * element in row-major order. */
    pst_output x = cf(g, pst_shape_4d(1, 2, 2, 1), (float[]){1, 5, 3, 2});
    pst_output tie = cf(g, pst_shape_4d(1, 2, 2, 1), (float[]){4, 4, 4, 4});
    pst_output d = cf(g, pst_shape_4d(1, 1, 1, 1), (float[]){7});
    pst_output y = pst_max_pool(g, x, 2, 2, 2, 2, "VALID", NULL);
    EXPECT(g, pst_max_pool_grad(g, x, y, d, 2, 2, 2, 2, "VALID", NULL), 4,
           ((int64_t[]){1, 2, 2, 1}), ((double[]){0, 7, 0, 0}));
    pst_output yt = pst_max_pool(g, tie, 2, 2, 2, 2, "VALID", NULL);
    EXPECT(g, pst_max_pool_grad(g, tie, yt, d, 2, 2, 2, 2, "VALID", NULL), 4,
           ((int64_t[]){1, 2, 2, 1}), ((double[]){7, 0, 0, 0}));
    /* SAME 2x2/2 average pooling of 3x3: windows of 4, 2, 2 and 1 in-image elements. A dy equal
     * to those counts gives every input a gradient of exactly 1. */
    pst_output dc = cf(g, pst_shape_4d(1, 2, 2, 1), (float[]){4, 2, 2, 1});
    EXPECT(g, pst_avg_pool_grad(g, sizes(g, 1, 3, 3, 1), dc, 2, 2, 2, 2, "SAME", NULL), 4,
           ((int64_t[]){1, 3, 3, 1}), ((double[]){1, 1, 1, 1, 1, 1, 1, 1, 1}));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_matmul_family_by_hand) {
    pst_graph *g = pst_graph_new();
    /* Two batches of [2x3] x [3x2]. */
    pst_output a = cf(g, s3(2, 2, 3), (float[]){1, 2, 3, 4, 5, 6, 1, 0, 0, 0, 1, 0});
    pst_output b = cf(g, s3(2, 3, 2), (float[]){1, 0, 0, 1, 1, 1, 7, 8, 9, 10, 11, 12});
    EXPECT(g, pst_batch_matmul(g, a, b, 0, 0, NULL), 3, ((int64_t[]){2, 2, 2}),
           ((double[]){4, 5, 10, 11, 7, 8, 9, 10}));
    /* adj_x on a [2,3,2] (as b) times adj_y of b: each batch is b^T b^T^T = b^T b. */
    EXPECT(g, pst_batch_matmul(g, b, b, 1, 0, NULL), 3, ((int64_t[]){2, 2, 2}),
           ((double[]){2, 1, 1, 2, 49 + 81 + 121, 56 + 90 + 132, 56 + 90 + 132, 64 + 100 + 144}));
    EXPECT(g, pst_batch_matmul(g, a, a, 0, 1, NULL), 3, ((int64_t[]){2, 2, 2}),
           ((double[]){14, 32, 32, 77, 1, 0, 0, 1}));
    /* A double MatMul with a wide product (split by columns over the pool). */
    pst_parallel_set_threads(2);
    pst_tensor *l = pst_tensor_new_zeros(PST_DOUBLE, pst_shape_2d(2, 64), NULL);
    pst_tensor *r = pst_tensor_new_zeros(PST_DOUBLE, pst_shape_2d(64, 300), NULL);
    for (int i = 0; i < 64; i++) {
        pst_tensor_f64(l)[i] = 1;      /* row 0: all ones */
        pst_tensor_f64(l)[64 + i] = i; /* row 1: 0..63 */
    }
    for (int i = 0; i < 64 * 300; i++)
        pst_tensor_f64(r)[i] = (double)(i % 300);
    pst_tensor *m =
        run_graph(g, pst_matmul(g, pst_const(g, l, NULL), pst_const(g, r, NULL), 0, 0, NULL));
    for (int j = 0; j < 300; j++) {
        ck_assert_double_eq_tol(pst_tensor_f64(m)[j], 64.0 * j, 1e-9);
        ck_assert_double_eq_tol(pst_tensor_f64(m)[300 + j], 2016.0 * j, 1e-9);
    }
    pst_parallel_set_threads(1);
    pst_tensor_unref(m);
    pst_tensor_unref(l);
    pst_tensor_unref(r);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_bias_and_softmax_family_by_hand) {
    pst_graph *g = pst_graph_new();
    pst_output dy = cf(g, s3(2, 2, 3), (float[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    EXPECT(g, pst_bias_add_grad(g, dy, NULL), 1, ((int64_t[]){3}), ((double[]){22, 26, 30}));
    /* Softmax over the last axis of a 3-D tensor: rows {0, ln 3} give {1/4, 3/4}. */
    pst_output l3 = cf(g, s3(2, 1, 2), (float[]){0, logf(3), 5, 5});
    EXPECT(g, pst_softmax(g, l3, NULL), 3, ((int64_t[]){2, 1, 2}),
           ((double[]){0.25, 0.75, 0.5, 0.5}));
    EXPECT(g, pst_log_softmax(g, l3, NULL), 3, ((int64_t[]){2, 1, 2}),
           ((double[]){log(0.25), log(0.75), log(0.5), log(0.5)}));
    /* Cross entropy with int32 labels, and with a soft label row in double. */
    pst_output logits = cf(g, pst_shape_2d(2, 2), (float[]){0, logf(3), 5, 5});
    pst_node *sx = pst_sparse_softmax_cross_entropy_with_logits(
        g, logits, pst_const_i32_vec(g, 2, (int32_t[]){0, 1}, NULL), NULL);
    EXPECT(g, pst_out(sx, 0), 1, ((int64_t[]){2}), ((double[]){-log(0.25), -log(0.5)}));
    EXPECT(g, pst_out(sx, 1), 2, ((int64_t[]){2, 2}), ((double[]){0.25 - 1, 0.75, 0.5, 0.5 - 1}));
    pst_tensor *ld = pst_tensor_new_zeros(PST_DOUBLE, pst_shape_2d(1, 2), NULL);
    pst_tensor *lab = pst_tensor_new_zeros(PST_DOUBLE, pst_shape_2d(1, 2), NULL);
    pst_tensor_f64(ld)[1] = log(3.0);
    pst_tensor_f64(lab)[0] = 0.5;
    pst_tensor_f64(lab)[1] = 0.5;
    pst_node *dx = pst_softmax_cross_entropy_with_logits(g, pst_const(g, ld, NULL),
                                                         pst_const(g, lab, NULL), NULL);
    EXPECT(g, pst_out(dx, 0), 1, ((int64_t[]){1}),
           ((double[]){-0.5 * log(0.25) - 0.5 * log(0.75)}));
    EXPECT(g, pst_out(dx, 1), 2, ((int64_t[]){1, 2}), ((double[]){-0.25, 0.25}));
    pst_tensor_unref(ld);
    pst_tensor_unref(lab);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_in_top_k_by_hand) {
    pst_graph *g = pst_graph_new();
    pst_output p =
        cf(g, pst_shape_2d(4, 3),
           (float[]){0.1f, 0.8f, 0.1f, 0.5f, 0.3f, 0.2f, 0.4f, 0.4f, 0.2f, 0.2f, 0.3f, 0.5f});
    /* Row 2 has a tie for first: both tied classes count as within k = 1. A target outside the
     * classes is never in the top k. */
    EXPECT(g, pst_in_top_k(g, p, pst_const_i32_vec(g, 4, (int32_t[]){1, 1, 1, 3}, NULL), 1, NULL),
           1, ((int64_t[]){4}), ((double[]){1, 0, 1, 0}));
    EXPECT(g, pst_in_top_k(g, p, pst_const_i64_vec(g, 4, (int64_t[]){2, 1, 2, 1}, NULL), 2, NULL),
           1, ((int64_t[]){4}), ((double[]){1, 1, 0, 1}));
    pst_graph_free(g);
}
END_TEST

START_TEST(test_fused_batch_norm_grad_by_hand) {
    pst_graph *g = pst_graph_new();
    /* One channel, x = {1, 3} (mean 2, variance 1), epsilon 0, scale 2: x_hat = {-1, 1}.
     * dy = {1, 3}: doffset = 4, dscale = sum(dy * x_hat) = 2, and in training
     * dx = scale / sqrt(var) / N * (N dy - sum(dy) - x_hat sum(dy x_hat)) = {0, 0};
     * in inference (given mean 0, variance 4) dx = dy * scale / 2 = {1, 3}. */
    pst_output x = cf(g, pst_shape_4d(2, 1, 1, 1), (float[]){1, 3});
    pst_output dy = cf(g, pst_shape_4d(2, 1, 1, 1), (float[]){1, 3});
    pst_output scale = cf(g, pst_shape_1d(1), (float[]){2});
    pst_node *gt = pst_fused_batch_norm_grad(g, dy, x, scale, cf(g, pst_shape_1d(1), (float[]){2}),
                                             cf(g, pst_shape_1d(1), (float[]){1}), 0, 1, NULL);
    EXPECT(g, pst_out(gt, 0), 4, ((int64_t[]){2, 1, 1, 1}), ((double[]){0, 0}));
    EXPECT(g, pst_out(gt, 1), 1, ((int64_t[]){1}), ((double[]){2}));
    EXPECT(g, pst_out(gt, 2), 1, ((int64_t[]){1}), ((double[]){4}));
    pst_node *gi = pst_fused_batch_norm_grad(g, dy, x, scale, cf(g, pst_shape_1d(1), (float[]){0}),
                                             cf(g, pst_shape_1d(1), (float[]){4}), 0, 0, NULL);
    EXPECT(g, pst_out(gi, 0), 4, ((int64_t[]){2, 1, 1, 1}), ((double[]){1, 3}));
    EXPECT(g, pst_out(gi, 1), 1, ((int64_t[]){1}), ((double[]){(1 * 0.5 + 3 * 1.5)}));
    /* The forward op's reserve spaces: batch mean and biased variance. */
    pst_node *bn = pst_fused_batch_norm(g, x, scale, cf(g, pst_shape_1d(1), (float[]){0}),
                                        cf(g, pst_shape_1d(1), (float[]){0}),
                                        cf(g, pst_shape_1d(1), (float[]){1}), 0, 1, NULL);
    EXPECT(g, pst_out(bn, 0), 4, ((int64_t[]){2, 1, 1, 1}), ((double[]){-2, 2}));
    EXPECT(g, pst_out(bn, 2), 1, ((int64_t[]){1}), ((double[]){2}));
    EXPECT(g, pst_out(bn, 3), 1, ((int64_t[]){1}), ((double[]){2}));
    EXPECT(g, pst_out(bn, 4), 1, ((int64_t[]){1}), ((double[]){1}));
    pst_graph_free(g);
}
END_TEST

/* The float32 softmax uses its own vectorized exponential: check it against libm in double,
 * across the exponent range down to the subnormals, and with non-finite logits. */
START_TEST(test_softmax_kernel_accuracy) {
    /* Rows {0, -d}: the second probability is e^-d / (1 + e^-d). */
    for (int i = 0; i <= 1200; i++) {
        float d = (float)i * 0.1f, x[2] = {0, -d}, y[2], ly[2];
        pst_softmax_f32(x, y, 1, 2, 0);
        pst_softmax_f32(x, ly, 1, 2, 1);
        double e = exp(-(double)d), p1 = e / (1 + e), p0 = 1 / (1 + e);
        ck_assert_msg(fabs(y[0] - p0) <= 2e-7 * p0, "d=%g: p0 %.9g vs %.9g", d, y[0], p0);
        if (p1 >= 1.2e-38) /* normal floats: relative accuracy */
            ck_assert_msg(fabs(y[1] - p1) <= 1e-6 * p1, "d=%g: p1 %.9g vs %.9g", d, y[1], p1);
        else /* subnormals and underflow: absolute */
            ck_assert_msg(fabs(y[1] - p1) <= 3e-45, "d=%g: p1 %.9g vs %.9g", d, y[1], p1);
        ck_assert_msg(fabs(ly[1] - log(p1)) <= 1e-6 * (1 + fabs(log(p1))), "d=%g: log p1 %.9g", d,
                      ly[1]);
    }
    /* Random rows of several widths (the vector loops' tails included). */
    int widths[] = {1, 7, 8, 33, 1000};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        int C = widths[w], rows = 3;
        pst_tensor *t = pst_test_rand(PST_FLOAT, pst_shape_2d(rows, C), 77 + w, -30, 30);
        float *y = malloc(sizeof(float) * (size_t)(rows * C));
        pst_softmax_f32(pst_tensor_f32(t), y, rows, C, 0);
        for (int r = 0; r < rows; r++) {
            const float *a = pst_tensor_f32(t) + r * C;
            double m = -INFINITY, s = 0;
            for (int k = 0; k < C; k++)
                m = fmax(m, a[k]);
            for (int k = 0; k < C; k++)
                s += exp(a[k] - m);
            for (int k = 0; k < C; k++) {
                /* a - m rounds to float first: half an ulp of |a - m| is an absolute error in
                 * the exponent, i.e. a relative one in the result. */
                double p = exp(a[k] - m) / s, tol = 1e-6 + 6e-8 * fabs(a[k] - m);
                ck_assert_msg(fabs(y[r * C + k] - p) <= tol * p + 3e-45, "C=%d: %.9g vs %.9g", C,
                              y[r * C + k], p);
            }
        }
        free(y);
        pst_tensor_unref(t);
    }
    /* A NaN poisons its row; -inf gets probability 0; +inf gives NaN, as in TensorFlow. */
    float x[9] = {1, NAN, 2, 0, -INFINITY, 0, 1, INFINITY, 2}, y[9];
    pst_softmax_f32(x, y, 3, 3, 0);
    for (int k = 0; k < 3; k++)
        ck_assert(isnan(y[k]));
    ck_assert_float_eq_tol(y[3], 0.5f, 1e-7f);
    ck_assert_float_eq(y[4], 0.0f);
    ck_assert_float_eq_tol(y[5], 0.5f, 1e-7f);
    ck_assert(isnan(y[7]));
    /* Cross entropy straight from the kernel: sparse and dense labels agree. */
    float logits[6] = {0, 1, 2, 2, 1, 0}, dense[6] = {0, 0, 1, 1, 0, 0}, loss[2], loss2[2], bp[6],
          bp2[6];
    int64_t sparse[2] = {2, 0};
    pst_softmax_xent_f32(logits, NULL, sparse, 2, 3, loss, bp);
    pst_softmax_xent_f32(logits, dense, NULL, 2, 3, loss2, bp2);
    double z = 1 + exp(1) + exp(2);
    for (int i = 0; i < 2; i++) {
        ck_assert_double_eq_tol(loss[i], log(z) - 2, 1e-6);
        ck_assert_double_eq_tol(loss2[i], log(z) - 2, 1e-6);
    }
    for (int k = 0; k < 6; k++)
        ck_assert_float_eq_tol(bp[k], bp2[k], 1e-7f);
    ck_assert_double_eq_tol(bp[2], exp(2) / z - 1, 1e-6);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops_nn");
    TCase *tc = tcase_create("forward");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_conv_float32_matches_naive_loops, 0,
                        (int)(sizeof conv_geos / sizeof conv_geos[0]));
    tcase_add_loop_test(tc, test_conv_float64_matches_naive_loops, 0,
                        (int)(sizeof conv_geos / sizeof conv_geos[0]));
    tcase_add_loop_test(tc, test_pool_float32_matches_naive_loops, 0,
                        (int)(sizeof pool_geos / sizeof pool_geos[0]));
    tcase_add_loop_test(tc, test_pool_float64_matches_naive_loops, 0,
                        (int)(sizeof pool_geos / sizeof pool_geos[0]));
    tcase_add_test(tc, test_conv_gradient_ops_by_hand);
    tcase_add_test(tc, test_pool_gradient_ops_by_hand);
    tcase_add_test(tc, test_matmul_family_by_hand);
    tcase_add_test(tc, test_bias_and_softmax_family_by_hand);
    tcase_add_test(tc, test_in_top_k_by_hand);
    tcase_add_test(tc, test_fused_batch_norm_grad_by_hand);
    tcase_add_test(tc, test_softmax_kernel_accuracy);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
