#include "kernels_conv.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "status.h"

int64_t pst_conv_out_size(int64_t in, int64_t k, int64_t s, int same) {
    if (in < 0)
        return -1;
    return same ? (in + s - 1) / s : (in - k + s) / s;
}

int pst_conv_geom_make(pst_conv_geom *g, int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh,
                       int64_t kw, int64_t oc, int64_t sh, int64_t sw, const char *padding) {
    int same = strcmp(padding, "SAME") == 0;
    if (!same && strcmp(padding, "VALID") != 0)
        return -1;
    if (sh < 1 || sw < 1 || kh < 1 || kw < 1)
        return -1;
    *g = (pst_conv_geom){
        .n = n, .h = h, .w = w, .c = c, .kh = kh, .kw = kw, .oc = oc, .sh = sh, .sw = sw};
    g->oh = pst_conv_out_size(h, kh, sh, same);
    g->ow = pst_conv_out_size(w, kw, sw, same);
    if (g->oh <= 0 || g->ow <= 0)
        return -1;
    if (same) {
        int64_t ph = (g->oh - 1) * sh + kh - h, pw = (g->ow - 1) * sw + kw - w;
        g->pad_top = ph > 0 ? ph / 2 : 0;
        g->pad_left = pw > 0 ? pw / 2 : 0;
    }
    return 0;
}

/*
 * The im2col matrix has one row per output position (row = (n*OH + oh)*OW + ow) and one column
 * per filter tap and input channel (col = (i*KW + j)*C + c), so that
 *     forward:          out [rows, OC] = col [rows, K] x filter [K, OC]
 *     backprop filter:  dfilter [K, OC] = col^T x dy [rows, OC]
 *     backprop input:   col = dy x filter^T, then each column entry is added back where it came
 *                       from (col2im)
 * with K = KH*KW*C. The kernels handle float and double alike through the element size `es`.
 */

/* Bytes of im2col block per GEMM call: small enough that GEMM's packing reads the block from
 * cache right after im2col wrote it, large enough that GEMM packs the filter rarely. On a Zen 3
 * (512 KB L2 per core, 32 MB L3) the SimpleCNN's convolutions ran fastest at 1 MB, within a few
 * percent from 256 KB to 4 MB; one block covering the whole batch (60 MB) was 20-50% slower. */
#define COL_BLOCK_BYTES (1 << 20)

static int64_t kdim(const pst_conv_geom *g) {
    return g->kh * g->kw * g->c;
}

static int64_t chunk_rows(const pst_conv_geom *g, size_t es) {
    int64_t rows = COL_BLOCK_BYTES / ((int64_t)es * (kdim(g) > 0 ? kdim(g) : 1));
    return rows > 0 ? rows : 1;
}

static int is_pointwise(const pst_conv_geom *g) {
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pad_top == 0 &&
           g->pad_left == 0;
}

/* Filter columns [*j0, *j1) whose input column lies inside the image, for output column ow. */
static void col_range(const pst_conv_geom *g, int64_t ow, int64_t *j0, int64_t *j1) {
    int64_t iw0 = ow * g->sw - g->pad_left;
    *j0 = iw0 < 0 ? -iw0 : 0;
    *j1 = g->w - iw0 < g->kw ? g->w - iw0 : g->kw;
    if (*j1 < *j0)
        *j1 = *j0;
}

/* Writes rows [r0, r0 + nr) of the im2col matrix: per filter row one contiguous copy of the
 * in-image columns (KW*C values when the window is inside), zeros for the padding. */
static void im2col(const pst_conv_geom *g, size_t es, const char *in, int64_t r0, int64_t nr,
                   char *col) {
    int64_t C = g->c, KW = g->kw * C, per = g->oh * g->ow;
    char *dst = col;
    for (int64_t r = 0; r < nr; r++) {
        int64_t row = r0 + r, n = row / per, p = row % per, oh = p / g->ow, ow = p % g->ow;
        int64_t j0, j1;
        col_range(g, ow, &j0, &j1);
        int64_t iw0 = ow * g->sw - g->pad_left;
        for (int64_t i = 0; i < g->kh; i++, dst += KW * es) {
            int64_t ih = oh * g->sh - g->pad_top + i;
            if (ih < 0 || ih >= g->h || j1 == j0) {
                memset(dst, 0, (size_t)KW * es);
                continue;
            }
            memset(dst, 0, (size_t)(j0 * C) * es);
            memcpy(dst + j0 * C * es, in + ((n * g->h + ih) * g->w + iw0 + j0) * C * es,
                   (size_t)((j1 - j0) * C) * es);
            memset(dst + j1 * C * es, 0, (size_t)((g->kw - j1) * C) * es);
        }
    }
}

static void add_f32(float *restrict d, const float *restrict s, int64_t n) {
    for (int64_t k = 0; k < n; k++)
        d[k] += s[k];
}

static void add_f64(double *restrict d, const double *restrict s, int64_t n) {
    for (int64_t k = 0; k < n; k++)
        d[k] += s[k];
}

static void add_n(size_t es, char *d, const char *s, int64_t n) {
    if (es == sizeof(float))
        add_f32((float *)d, (const float *)s, n);
    else
        add_f64((double *)d, (const double *)s, n);
}

/* Adds rows [r0, r0 + nr) of a column matrix onto the input positions they were taken from. */
static void col2im_add(const pst_conv_geom *g, size_t es, const char *col, int64_t r0, int64_t nr,
                       char *din) {
    int64_t C = g->c, KW = g->kw * C, per = g->oh * g->ow;
    for (int64_t r = 0; r < nr; r++) {
        int64_t row = r0 + r, n = row / per, p = row % per, oh = p / g->ow, ow = p % g->ow;
        int64_t j0, j1;
        col_range(g, ow, &j0, &j1);
        int64_t iw0 = ow * g->sw - g->pad_left;
        const char *src = col + (r * g->kh * KW + j0 * C) * (int64_t)es;
        for (int64_t i = 0; i < g->kh; i++, src += KW * es) {
            int64_t ih = oh * g->sh - g->pad_top + i;
            if (ih < 0 || ih >= g->h)
                continue;
            add_n(es, din + ((n * g->h + ih) * g->w + iw0 + j0) * C * es, src, (j1 - j0) * C);
        }
    }
}

/* Row-major C = op(A) op(B) (+ C when accumulate) in float or double, single-threaded BLAS. */
static void gemm(size_t es, int ta, int tb, int64_t m, int64_t n, int64_t k, const char *a,
                 int64_t lda, const char *b, int64_t ldb, int accumulate, char *c, int64_t ldc) {
    enum CBLAS_TRANSPOSE oa = ta ? CblasTrans : CblasNoTrans, ob = tb ? CblasTrans : CblasNoTrans;
    if (es == sizeof(float))
        cblas_sgemm(CblasRowMajor, oa, ob, (int)m, (int)n, (int)k, 1.0f, (const float *)a, (int)lda,
                    (const float *)b, (int)ldb, accumulate ? 1.0f : 0.0f, (float *)c, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, oa, ob, (int)m, (int)n, (int)k, 1.0, (const double *)a, (int)lda,
                    (const double *)b, (int)ldb, accumulate ? 1.0 : 0.0, (double *)c, (int)ldc);
}

static char *buf_alloc(int64_t count, size_t es) {
    char *p = malloc((size_t)(count > 0 ? count : 1) * es);
    PST_ASSERT(p != NULL);
    return p;
}

/*
 * One convolution call split into `parts` (one per pool thread): part p covers im2col rows or
 * images [p*total/parts, (p+1)*total/parts). Backprop filter gives each part its own partial
 * K x OC sum, added up in part order afterwards, so results do not depend on scheduling.
 */
typedef struct conv_job {
    const pst_conv_geom *g;
    size_t es;
    const char *in, *filter, *dy;
    char *out;
    char *partials;
    int64_t total, parts;
} conv_job;

static void part_span(const conv_job *j, int64_t p, int64_t *b, int64_t *e) {
    *b = j->total * p / j->parts;
    *e = j->total * (p + 1) / j->parts;
}

static void fwd_part(void *ctx, int64_t p0, int64_t p1) {
    conv_job *j = ctx;
    const pst_conv_geom *g = j->g;
    size_t es = j->es;
    int64_t K = kdim(g), step = chunk_rows(g, es), direct = is_pointwise(g);
    char *col = direct ? NULL : buf_alloc(step * K, es);
    for (int64_t p = p0; p < p1; p++) {
        int64_t r0, r1;
        part_span(j, p, &r0, &r1);
        for (int64_t r = r0; r < r1; r += step) {
            int64_t nr = r1 - r < step ? r1 - r : step;
            const char *a = j->in + r * K * (int64_t)es;
            if (!direct) {
                im2col(g, es, j->in, r, nr, col);
                a = col;
            }
            gemm(es, 0, 0, nr, g->oc, K, a, K, j->filter, g->oc, 0,
                 j->out + r * g->oc * (int64_t)es, g->oc);
        }
    }
    free(col);
}

static void bf_part(void *ctx, int64_t p0, int64_t p1) {
    conv_job *j = ctx;
    const pst_conv_geom *g = j->g;
    size_t es = j->es;
    int64_t K = kdim(g), step = chunk_rows(g, es), direct = is_pointwise(g);
    char *col = direct ? NULL : buf_alloc(step * K, es);
    for (int64_t p = p0; p < p1; p++) {
        int64_t r0, r1;
        part_span(j, p, &r0, &r1);
        char *acc = j->partials + p * K * g->oc * (int64_t)es;
        memset(acc, 0, (size_t)(K * g->oc) * es);
        for (int64_t r = r0; r < r1; r += step) {
            int64_t nr = r1 - r < step ? r1 - r : step;
            const char *a = j->in + r * K * (int64_t)es;
            if (!direct) {
                im2col(g, es, j->in, r, nr, col);
                a = col;
            }
            gemm(es, 1, 0, K, g->oc, nr, a, K, j->dy + r * g->oc * (int64_t)es, g->oc, 1, acc,
                 g->oc);
        }
    }
    free(col);
}

/* Backprop input by col2im: parts are whole images so no two parts add into the same place. */
static void bi_part(void *ctx, int64_t p0, int64_t p1) {
    conv_job *j = ctx;
    const pst_conv_geom *g = j->g;
    size_t es = j->es;
    int64_t K = kdim(g), per = g->oh * g->ow, img = g->h * g->w * g->c;
    int64_t step = chunk_rows(g, es), direct = is_pointwise(g);
    char *col = direct ? NULL : buf_alloc(step * K, es);
    for (int64_t p = p0; p < p1; p++) {
        int64_t b, e;
        part_span(j, p, &b, &e);
        if (!direct)
            memset(j->out + b * img * (int64_t)es, 0, (size_t)((e - b) * img) * es);
        for (int64_t r = b * per; r < e * per; r += step) {
            int64_t nr = e * per - r < step ? e * per - r : step;
            /* A pointwise convolution's column matrix is the input gradient itself. */
            char *dst = direct ? j->out + r * K * (int64_t)es : col;
            gemm(es, 0, 1, nr, K, g->oc, j->dy + r * g->oc * (int64_t)es, g->oc, j->filter, g->oc,
                 0, dst, K);
            if (!direct)
                col2im_add(g, es, col, r, nr, j->out);
        }
    }
    free(col);
}

/* Splits `total` rows or images into one part per pool thread. */
static void plan_parts(conv_job *j, int64_t total) {
    int64_t t = pst_parallel_threads();
    j->total = total;
    j->parts = total < t ? total : t;
    if (j->parts < 1)
        j->parts = 1;
}

static void run_parts(conv_job *j, int64_t total, pst_range_fn fn) {
    plan_parts(j, total);
    pst_parallel_for(j->parts, 1, fn, j);
}

/*
 * Single-channel float inputs (the first layer on grayscale images). im2col would hand GEMM a
 * skinny K = KH*KW product that it runs poorly, so direct loops run instead. Each image is
 * first copied into a zero-bordered buffer so the inner loops carry no bounds checks; the
 * output channel count OC and the tile T are compile-time constants so that the T x OC
 * accumulators live in vector registers: the forward pass tiles T output columns, the filter
 * gradient T filter columns, and each loaded filter (or dy) vector feeds T multiply-adds.
 */

/* Size of the zero-bordered copy of one image: every window of the convolution fits. */
static void padded_dims(const pst_conv_geom *g, int64_t *ph, int64_t *pw) {
    *ph = (g->oh - 1) * g->sh + g->kh;
    *pw = (g->ow - 1) * g->sw + g->kw;
}

static const float *pad_image(const pst_conv_geom *g, const float *img, float *buf) {
    int64_t ph, pw;
    padded_dims(g, &ph, &pw);
    memset(buf, 0, (size_t)(ph * pw) * sizeof(float));
    for (int64_t y = 0; y < g->h && y + g->pad_top < ph; y++) {
        int64_t n = g->w < pw - g->pad_left ? g->w : pw - g->pad_left;
        memcpy(buf + (y + g->pad_top) * pw + g->pad_left, img + y * g->w,
               (size_t)n * sizeof(float));
    }
    return buf;
}

static float *pad_alloc(const pst_conv_geom *g) {
    int64_t ph, pw;
    padded_dims(g, &ph, &pw);
    return (float *)buf_alloc(ph * pw, sizeof(float));
}

#define C1_KERNELS(OC, T)                                                                          \
    static void c1_fwd_##OC(void *ctx, int64_t b, int64_t e) {                                     \
        conv_job *j = ctx;                                                                         \
        const pst_conv_geom *g = j->g;                                                             \
        const float *filter = (const float *)j->filter;                                            \
        int64_t ph, pw;                                                                            \
        padded_dims(g, &ph, &pw);                                                                  \
        float *buf = pad_alloc(g);                                                                 \
        for (int64_t n = b; n < e; n++) {                                                          \
            const float *p = pad_image(g, (const float *)j->in + n * g->h * g->w, buf);            \
            float *out = (float *)j->out + n * g->oh * g->ow * OC;                                 \
            for (int64_t oh = 0; oh < g->oh; oh++) {                                               \
                int64_t ow = 0;                                                                    \
                for (; ow + T <= g->ow; ow += T) {                                                 \
                    float acc[T][OC] = {{0}};                                                      \
                    for (int64_t i = 0; i < g->kh; i++) {                                          \
                        const float *row = p + (oh * g->sh + i) * pw + ow * g->sw;                 \
                        const float *w = filter + i * g->kw * OC;                                  \
                        for (int64_t q = 0; q < g->kw; q++, w += OC)                               \
                            for (int t = 0; t < T; t++) {                                          \
                                float x = row[t * g->sw + q];                                      \
                                for (int k = 0; k < OC; k++)                                       \
                                    acc[t][k] += x * w[k];                                         \
                            }                                                                      \
                    }                                                                              \
                    memcpy(out + (oh * g->ow + ow) * OC, acc, sizeof acc);                         \
                }                                                                                  \
                for (; ow < g->ow; ow++) {                                                         \
                    float acc[OC] = {0};                                                           \
                    for (int64_t i = 0; i < g->kh; i++) {                                          \
                        const float *row = p + (oh * g->sh + i) * pw + ow * g->sw;                 \
                        const float *w = filter + i * g->kw * OC;                                  \
                        for (int64_t q = 0; q < g->kw; q++, w += OC)                               \
                            for (int k = 0; k < OC; k++)                                           \
                                acc[k] += row[q] * w[k];                                           \
                    }                                                                              \
                    memcpy(out + (oh * g->ow + ow) * OC, acc, sizeof acc);                         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        free(buf);                                                                                 \
    }                                                                                              \
    static void c1_bf_##OC(void *ctx, int64_t p0, int64_t p1) {                                    \
        conv_job *j = ctx;                                                                         \
        const pst_conv_geom *g = j->g;                                                             \
        int64_t ph, pw;                                                                            \
        padded_dims(g, &ph, &pw);                                                                  \
        float *buf = pad_alloc(g);                                                                 \
        for (int64_t part = p0; part < p1; part++) {                                               \
            int64_t b, e;                                                                          \
            part_span(j, part, &b, &e);                                                            \
            float *dw = (float *)j->partials + part * g->kh * g->kw * OC;                          \
            memset(dw, 0, (size_t)(g->kh * g->kw * OC) * sizeof(float));                           \
            for (int64_t n = b; n < e; n++) {                                                      \
                const float *p = pad_image(g, (const float *)j->in + n * g->h * g->w, buf);        \
                const float *dy = (const float *)j->dy + n * g->oh * g->ow * OC;                   \
                for (int64_t i = 0; i < g->kh; i++)                                                \
                    for (int64_t q = 0; q < g->kw; q += T) {                                       \
                        int tq = g->kw - q < T ? (int)(g->kw - q) : T;                             \
                        float acc[T][OC] = {{0}};                                                  \
                        for (int64_t oh = 0; oh < g->oh; oh++) {                                   \
                            const float *row = p + (oh * g->sh + i) * pw + q;                      \
                            const float *d = dy + oh * g->ow * OC;                                 \
                            for (int64_t ow = 0; ow < g->ow; ow++, d += OC) {                      \
                                const float *x = row + ow * g->sw;                                 \
                                for (int t = 0; t < T; t++) {                                      \
                                    float xv = t < tq ? x[t] : 0.0f;                               \
                                    for (int k = 0; k < OC; k++)                                   \
                                        acc[t][k] += xv * d[k];                                    \
                                }                                                                  \
                            }                                                                      \
                        }                                                                          \
                        for (int t = 0; t < tq; t++)                                               \
                            for (int k = 0; k < OC; k++)                                           \
                                dw[(i * g->kw + q + t) * OC + k] += acc[t][k];                     \
                    }                                                                              \
            }                                                                                      \
        }                                                                                          \
        free(buf);                                                                                 \
    }
C1_KERNELS(16, 4)
C1_KERNELS(32, 2)
C1_KERNELS(64, 1)

/* The direct kernels for this geometry, or NULL. */
static pst_range_fn c1_kernel(const pst_conv_geom *g, size_t es, int backprop_filter) {
    if (g->c != 1 || es != sizeof(float))
        return NULL;
    switch (g->oc) {
    case 16:
        return backprop_filter ? c1_bf_16 : c1_fwd_16;
    case 32:
        return backprop_filter ? c1_bf_32 : c1_fwd_32;
    case 64:
        return backprop_filter ? c1_bf_64 : c1_fwd_64;
    default:
        return NULL;
    }
}

static void conv_forward(const pst_conv_geom *g, size_t es, const void *in, const void *filter,
                         void *out) {
    conv_job j = {.g = g, .es = es, .in = in, .filter = filter, .out = out};
    pst_range_fn direct = c1_kernel(g, es, 0);
    if (direct)
        pst_parallel_for(g->n, 1, direct, &j);
    else
        run_parts(&j, g->n * g->oh * g->ow, fwd_part);
}

static void conv_backprop_filter(const pst_conv_geom *g, size_t es, const void *in, const void *dy,
                                 void *dfilter) {
    conv_job j = {.g = g, .es = es, .in = in, .dy = dy};
    pst_range_fn direct = c1_kernel(g, es, 1);
    int64_t KO = kdim(g) * g->oc;
    /* The direct kernels split by images, the GEMM path by im2col rows. */
    plan_parts(&j, direct ? g->n : g->n * g->oh * g->ow);
    j.partials = buf_alloc(j.parts * KO, es);
    pst_parallel_for(j.parts, 1, direct ? direct : bf_part, &j);
    memcpy(dfilter, j.partials, (size_t)KO * es);
    for (int64_t p = 1; p < j.parts; p++)
        add_n(es, dfilter, j.partials + p * KO * (int64_t)es, KO);
    free(j.partials);
}

/* With stride 1 the input gradient is itself a convolution: of dy (padded by k - 1 - pad) with
 * the filter flipped in space and its channel axes swapped. This beats GEMM + col2im when the
 * input has more channels than the output, since GEMM's inner dimension becomes KH*KW*OC
 * instead of OC. */
static void backprop_input_flipped(const pst_conv_geom *g, size_t es, const char *filter,
                                   const void *dy, void *din) {
    char *flip = buf_alloc(kdim(g) * g->oc, es);
    for (int64_t i = 0; i < g->kh; i++)
        for (int64_t q = 0; q < g->kw; q++)
            for (int64_t c = 0; c < g->c; c++)
                for (int64_t o = 0; o < g->oc; o++)
                    memcpy(
                        flip + (((i * g->kw + q) * g->oc + o) * g->c + c) * (int64_t)es,
                        filter +
                            ((((g->kh - 1 - i) * g->kw + (g->kw - 1 - q)) * g->c + c) * g->oc + o) *
                                (int64_t)es,
                        es);
    pst_conv_geom t = {.n = g->n,
                       .h = g->oh,
                       .w = g->ow,
                       .c = g->oc,
                       .kh = g->kh,
                       .kw = g->kw,
                       .oc = g->c,
                       .sh = 1,
                       .sw = 1,
                       .oh = g->h,
                       .ow = g->w,
                       .pad_top = g->kh - 1 - g->pad_top,
                       .pad_left = g->kw - 1 - g->pad_left};
    conv_forward(&t, es, dy, flip, din);
    free(flip);
}

static void conv_backprop_input(const pst_conv_geom *g, size_t es, const void *filter,
                                const void *dy, void *din) {
    if (g->sh == 1 && g->sw == 1 && g->c > g->oc && !is_pointwise(g)) {
        backprop_input_flipped(g, es, filter, dy, din);
        return;
    }
    conv_job j = {.g = g, .es = es, .filter = filter, .dy = dy, .out = din};
    run_parts(&j, g->n, bi_part);
}

void pst_conv_forward(const pst_conv_geom *g, const float *in, const float *filter, float *out) {
    conv_forward(g, sizeof(float), in, filter, out);
}

void pst_conv_forward_f64(const pst_conv_geom *g, const double *in, const double *filter,
                          double *out) {
    conv_forward(g, sizeof(double), in, filter, out);
}

void pst_conv_backprop_input(const pst_conv_geom *g, const float *filter, const float *dy,
                             float *din) {
    conv_backprop_input(g, sizeof(float), filter, dy, din);
}

void pst_conv_backprop_input_f64(const pst_conv_geom *g, const double *filter, const double *dy,
                                 double *din) {
    conv_backprop_input(g, sizeof(double), filter, dy, din);
}

void pst_conv_backprop_filter(const pst_conv_geom *g, const float *in, const float *dy,
                              float *dfilter) {
    conv_backprop_filter(g, sizeof(float), in, dy, dfilter);
}

void pst_conv_backprop_filter_f64(const pst_conv_geom *g, const double *in, const double *dy,
                                  double *dfilter) {
    conv_backprop_filter(g, sizeof(double), in, dy, dfilter);
}
