#include "kernels_conv.h"

#include <cblas.h>
#include <stdatomic.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "status.h"

int64_t pst_conv_out_size(int64_t in, int64_t k, int64_t s, int same) {
    if (in < 0) return -1;
    return same ? (in + s - 1) / s : (in - k + s) / s;
}

int pst_conv_geom_make(pst_conv_geom *g, int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh,
                       int64_t kw, int64_t oc, int64_t sh, int64_t sw, const char *padding) {
    int same = strcmp(padding, "SAME") == 0;
    if (!same && strcmp(padding, "VALID") != 0) return -1;
    if (sh < 1 || sw < 1 || kh < 1 || kw < 1) return -1;
    *g = (pst_conv_geom){.n = n, .h = h, .w = w, .c = c, .kh = kh, .kw = kw, .oc = oc,
                         .sh = sh, .sw = sw};
    g->oh = pst_conv_out_size(h, kh, sh, same);
    g->ow = pst_conv_out_size(w, kw, sw, same);
    if (g->oh <= 0 || g->ow <= 0) return -1;
    if (same) {
        int64_t ph = (g->oh - 1) * sh + kh - h, pw = (g->ow - 1) * sw + kw - w;
        g->pad_top = ph > 0 ? ph / 2 : 0;
        g->pad_left = pw > 0 ? pw / 2 : 0;
    }
    return 0;
}

/* Rows of the im2col matrix per chunk: whole images, about 512 KB (see below). */
static int64_t chunk_rows(const pst_conv_geom *g) {
    int64_t k = g->kh * g->kw * g->c;
    /* Small blocks (at least one image): the sgemm then reads the im2col rows it was just
     * written from the cache instead of memory (16 MB blocks ran at ~0.55 of SGEMM, 512 KB
     * blocks at ~0.7 on this machine's conv2). */
    int64_t rows = (512 << 10) / (4 * (k > 0 ? k : 1));
    int64_t per_image = g->oh * g->ow;
    if (rows < per_image) rows = per_image;
    return rows - rows % per_image; /* whole images per chunk */
}

/* Writes rows [r0, r0 + nr) of the im2col matrix (row = n*OH*OW + oh*OW + ow). */
static void im2col(const pst_conv_geom *g, const float *in, int64_t r0, int64_t nr, float *col) {
    int64_t K = g->kh * g->kw * g->c, per = g->oh * g->ow;
    for (int64_t r = 0; r < nr; r++) {
        int64_t row = r0 + r, n = row / per, p = row % per, oh = p / g->ow, ow = p % g->ow;
        float *dst = col + r * K;
        int64_t iw0 = ow * g->sw - g->pad_left;
        for (int64_t i = 0; i < g->kh; i++) {
            int64_t ih = oh * g->sh - g->pad_top + i;
            if (ih >= 0 && ih < g->h && iw0 >= 0 && iw0 + g->kw <= g->w) {
                /* the window's row lies inside the image: kw*C contiguous floats in NHWC */
                memcpy(dst, in + ((n * g->h + ih) * g->w + iw0) * g->c,
                       (size_t)(g->kw * g->c) * sizeof(float));
                dst += g->kw * g->c;
                continue;
            }
            for (int64_t j = 0; j < g->kw; j++, dst += g->c) {
                int64_t iw = ow * g->sw - g->pad_left + j;
                if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w)
                    memset(dst, 0, (size_t)g->c * sizeof(float));
                else
                    memcpy(dst, in + ((n * g->h + ih) * g->w + iw) * g->c,
                           (size_t)g->c * sizeof(float));
            }
        }
    }
}

static void col2im_add(const pst_conv_geom *g, const float *col, int64_t r0, int64_t nr, float *din) {
    int64_t K = g->kh * g->kw * g->c, per = g->oh * g->ow;
    for (int64_t r = 0; r < nr; r++) {
        int64_t row = r0 + r, n = row / per, p = row % per, oh = p / g->ow, ow = p % g->ow;
        const float *src = col + r * K;
        for (int64_t i = 0; i < g->kh; i++) {
            int64_t ih = oh * g->sh - g->pad_top + i;
            for (int64_t j = 0; j < g->kw; j++, src += g->c) {
                int64_t iw = ow * g->sw - g->pad_left + j;
                if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                float *d = din + ((n * g->h + ih) * g->w + iw) * g->c;
                for (int64_t k = 0; k < g->c; k++) d[k] += src[k];
            }
        }
    }
}

static int is_pointwise(const pst_conv_geom *g) {
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pad_top == 0 &&
           g->pad_left == 0;
}

/*
 * The convolutions split the batch across the thread pool (pst_parallel_for); each range does
 * its own im2col and a single-threaded sgemm, so BLAS threads and pool threads never compete
 * (the runtime sets OpenBLAS to one thread when the pool has more).
 */
typedef struct conv_job {
    const pst_conv_geom *g;
    const float *in, *filter, *dy;
    float *out;
    float *partials; /* backprop filter: one K x OC block per range */
    atomic_int next_partial;
} conv_job;

static float *col_alloc(const pst_conv_geom *g, int64_t rows) {
    float *col = malloc((size_t)rows * (size_t)(g->kh * g->kw * g->c) * sizeof(float));
    PST_ASSERT(col != NULL);
    return col;
}

/* Images per range so each im2col block stays near 512 KB. */
static int64_t images_per_chunk(const pst_conv_geom *g) {
    int64_t per = g->oh * g->ow;
    int64_t k = chunk_rows(g) / (per > 0 ? per : 1);
    return k > 0 ? k : 1;
}

/* Forward over images [b, e): im2col and sgemm in blocks of ~512 KB of im2col rows (a block
 * may end inside an image), so the block the sgemm packs is still in the cache. */
static void fwd_range(void *ctx, int64_t b, int64_t e) {
    conv_job *j = ctx;
    const pst_conv_geom *g = j->g;
    int64_t K = g->kh * g->kw * g->c, per = g->oh * g->ow;
    int64_t step = (512 << 10) / (4 * (K > 0 ? K : 1));
    if (step < 16) step = 16;
    int64_t r_end = e * per;
    float *col = col_alloc(g, step < r_end - b * per ? step : r_end - b * per);
    for (int64_t r0 = b * per; r0 < r_end; r0 += step) {
        int64_t nr = r_end - r0 < step ? r_end - r0 : step;
        im2col(g, j->in, r0, nr, col);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)g->oc, (int)K, 1.0f,
                    col, (int)K, j->filter, (int)g->oc, 0.0f, j->out + r0 * g->oc, (int)g->oc);
    }
    free(col);
}

/* Single-channel inputs (the first layer on grayscale images): im2col would build a skinny
 * K = kh*kw matrix that sgemm handles poorly, so direct kernels run instead. Each image is
 * first copied into a zero-padded plane (no bounds checks in the inner loops); the output
 * channels are a compile-time multiple of 8 held in vector registers, and the forward pass
 * computes PB adjacent output pixels at once so each filter row loaded serves PB pixels. */
typedef float v8f __attribute__((vector_size(32), aligned(4)));

/* A buffer for one padded plane (ph x pw), allocated once per range (caller frees). */
static float *c1_plane_alloc(const pst_conv_geom *g, int64_t *ph, int64_t *pw) {
    *ph = (g->oh - 1) * g->sh + g->kh;
    *pw = (g->ow - 1) * g->sw + g->kw;
    float *p = malloc((size_t)(*ph * *pw) * sizeof(float));
    PST_ASSERT(p != NULL);
    return p;
}

/* Fills p with image n, zeros around. */
static void c1_plane_fill(const pst_conv_geom *g, const float *in, int64_t n, int64_t ph,
                          int64_t pw, float *p) {
    memset(p, 0, (size_t)(ph * pw) * sizeof(float));
    for (int64_t y = 0; y < g->h; y++) {
        int64_t py = y + g->pad_top;
        if (py < 0 || py >= ph) continue;
        for (int64_t x = 0; x < g->w; x++) {
            int64_t px = x + g->pad_left;
            if (px >= 0 && px < pw) p[py * pw + px] = in[(n * g->h + y) * g->w + x];
        }
    }
}

#define C1_KERNELS(OC, PB)                                                                        \
    static void c1_fwd_##OC(void *ctx, int64_t b, int64_t e) {                                    \
        conv_job *j = ctx;                                                                        \
        const pst_conv_geom *g = j->g;                                                            \
        enum { NV = OC / 8 };                                                                     \
        int64_t ph, pw;                                                                           \
        float *pl = c1_plane_alloc(g, &ph, &pw);                                                  \
        for (int64_t n = b; n < e; n++) {                                                         \
            c1_plane_fill(g, j->in, n, ph, pw, pl);                                               \
            for (int64_t oh = 0; oh < g->oh; oh++) {                                              \
                float *orow = j->out + (n * g->oh + oh) * g->ow * OC;                             \
                int64_t ow = 0;                                                                   \
                for (; ow + PB <= g->ow; ow += PB) {                                              \
                    v8f acc[PB][NV];                                                              \
                    memset(acc, 0, sizeof acc);                                                   \
                    for (int64_t i = 0; i < g->kh; i++) {                                         \
                        const float *prow = pl + (oh * g->sh + i) * pw + ow * g->sw;              \
                        for (int64_t q = 0; q < g->kw; q++) {                                     \
                            const v8f *wr = (const v8f *)(j->filter + (i * g->kw + q) * OC);      \
                            for (int v = 0; v < NV; v++) {                                        \
                                v8f w = wr[v];                                                    \
                                for (int p = 0; p < PB; p++) acc[p][v] += prow[p * g->sw + q] * w; \
                            }                                                                     \
                        }                                                                         \
                    }                                                                             \
                    for (int p = 0; p < PB; p++)                                                  \
                        for (int v = 0; v < NV; v++)                                              \
                            *(v8f *)(orow + (ow + p) * OC + v * 8) = acc[p][v];                   \
                }                                                                                 \
                for (; ow < g->ow; ow++) {                                                        \
                    v8f acc[NV];                                                                  \
                    memset(acc, 0, sizeof acc);                                                   \
                    for (int64_t i = 0; i < g->kh; i++)                                           \
                        for (int64_t q = 0; q < g->kw; q++) {                                     \
                            float x = pl[(oh * g->sh + i) * pw + ow * g->sw + q];                 \
                            const v8f *wr = (const v8f *)(j->filter + (i * g->kw + q) * OC);      \
                            for (int v = 0; v < NV; v++) acc[v] += x * wr[v];                     \
                        }                                                                         \
                    for (int v = 0; v < NV; v++) *(v8f *)(orow + ow * OC + v * 8) = acc[v];       \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        free(pl);                                                                                 \
    }                                                                                             \
    static void c1_bf_##OC(void *ctx, int64_t b, int64_t e) {                                     \
        conv_job *j = ctx;                                                                        \
        const pst_conv_geom *g = j->g;                                                            \
        enum { NV = OC / 8 };                                                                     \
        float *acc = j->partials + (int64_t)atomic_fetch_add(&j->next_partial, 1) * g->kh * g->kw * OC; \
        int64_t ph, pw;                                                                           \
        float *pl = c1_plane_alloc(g, &ph, &pw);                                                  \
        for (int64_t n = b; n < e; n++) {                                                         \
            c1_plane_fill(g, j->in, n, ph, pw, pl);                                               \
            const float *dyn = j->dy + n * g->oh * g->ow * OC;                                    \
            /* QB taps of a kernel row at a time: their OC sums stay in registers over the  */ \
            /* image and each dy vector loaded serves QB taps */                                  \
            for (int64_t i = 0; i < g->kh; i++)                                                   \
                for (int64_t q0 = 0; q0 < g->kw; q0 += PB) {                                      \
                    int64_t nq = g->kw - q0 < PB ? g->kw - q0 : PB;                               \
                    v8f s[PB][NV];                                                                \
                    memset(s, 0, sizeof s);                                                       \
                    for (int64_t oh = 0; oh < g->oh; oh++) {                                      \
                        const float *prow = pl + (oh * g->sh + i) * pw + q0;                      \
                        const v8f *drow = (const v8f *)(dyn + oh * g->ow * OC);                   \
                        if (nq == PB) {                                                           \
                            for (int64_t ow = 0; ow < g->ow; ow++) {                              \
                                const float *xp = prow + ow * g->sw;                              \
                                for (int v = 0; v < NV; v++) {                                    \
                                    v8f dv = drow[ow * NV + v];                                   \
                                    for (int p = 0; p < PB; p++) s[p][v] += xp[p] * dv;           \
                                }                                                                 \
                            }                                                                     \
                        } else {                                                                  \
                            for (int64_t ow = 0; ow < g->ow; ow++)                                \
                                for (int64_t p = 0; p < nq; p++) {                                \
                                    float x = prow[ow * g->sw + p];                               \
                                    for (int v = 0; v < NV; v++) s[p][v] += x * drow[ow * NV + v]; \
                                }                                                                 \
                        }                                                                         \
                    }                                                                             \
                    for (int64_t p = 0; p < nq; p++) {                                            \
                        float *dst = acc + (i * g->kw + q0 + p) * OC;                             \
                        for (int v = 0; v < NV; v++)                                              \
                            for (int k = 0; k < 8; k++) dst[v * 8 + k] += s[p][v][k];             \
                    }                                                                             \
                }                                                                                 \
        }                                                                                         \
        free(pl);                                                                                 \
    }
C1_KERNELS(16, 4)
C1_KERNELS(32, 3)
C1_KERNELS(64, 1)

/* The direct kernels for this geometry, or NULL. */
static pst_range_fn c1_kernel(const pst_conv_geom *g, int backprop_filter) {
    if (g->c != 1) return NULL;
    switch (g->oc) {
    case 16: return backprop_filter ? c1_bf_16 : c1_fwd_16;
    case 32: return backprop_filter ? c1_bf_32 : c1_fwd_32;
    case 64: return backprop_filter ? c1_bf_64 : c1_fwd_64;
    default: return NULL;
    }
}

void pst_conv2d_forward(const pst_conv_geom *g, const float *in, const float *filter, float *out) {
    int64_t K = g->kh * g->kw * g->c, M = g->n * g->oh * g->ow;
    pst_range_fn direct = c1_kernel(g, 0);
    if (direct) {
        conv_job j = {.g = g, .in = in, .filter = filter, .out = out};
        pst_parallel_for(g->n, 1, direct, &j);
        return;
    }

    if (is_pointwise(g)) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)g->oc, (int)K, 1.0f,
                    in, (int)K, filter, (int)g->oc, 0.0f, out, (int)g->oc);
        return;
    }
    conv_job j = {.g = g, .in = in, .filter = filter, .out = out};
    pst_parallel_for(g->n, 1, fwd_range, &j);
}

static void bf_range(void *ctx, int64_t b, int64_t e) {
    conv_job *j = ctx;
    const pst_conv_geom *g = j->g;
    int64_t K = g->kh * g->kw * g->c, per = g->oh * g->ow, step = images_per_chunk(g);
    float *acc = j->partials + (int64_t)atomic_fetch_add(&j->next_partial, 1) * K * g->oc;
    float *col = col_alloc(g, (step < e - b ? step : e - b) * per);
    for (int64_t i = b; i < e; i += step) {
        int64_t ni = e - i < step ? e - i : step, r0 = i * per, nr = ni * per;
        im2col(g, j->in, r0, nr, col);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)g->oc, (int)nr, 1.0f,
                    col, (int)K, j->dy + r0 * g->oc, (int)g->oc, 1.0f, acc, (int)g->oc);
    }
    free(col);
}

void pst_conv2d_backprop_filter(const pst_conv_geom *g, const float *in, const float *dy,
                                float *dfilter) {
    int64_t K = g->kh * g->kw * g->c, M = g->n * g->oh * g->ow;
    if (is_pointwise(g)) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)g->oc, (int)M, 1.0f, in,
                    (int)K, dy, (int)g->oc, 0.0f, dfilter, (int)g->oc);
        return;
    }
    int t = pst_parallel_threads();
    int64_t slots = (int64_t)t * 2 + 2; /* ranges never exceed 2 per thread plus rounding */
    conv_job j = {.g = g, .in = in, .dy = dy};
    j.partials = calloc((size_t)(slots * K * g->oc), sizeof(float));
    PST_ASSERT(j.partials != NULL);
    atomic_init(&j.next_partial, 0);
    int64_t grain = (g->n + t - 1) / t;
    pst_range_fn direct = c1_kernel(g, 1);
    pst_parallel_for(g->n, grain > 0 ? grain : 1, direct ? direct : bf_range, &j);
    int used = atomic_load(&j.next_partial);
    memcpy(dfilter, j.partials, (size_t)(K * g->oc) * sizeof(float));
    for (int p = 1; p < used; p++) {
        const float *src = j.partials + (int64_t)p * K * g->oc;
        for (int64_t i = 0; i < K * g->oc; i++) dfilter[i] += src[i];
    }
    free(j.partials);
}

static void bi_range(void *ctx, int64_t b, int64_t e) {
    conv_job *j = ctx;
    const pst_conv_geom *g = j->g;
    int64_t K = g->kh * g->kw * g->c, per = g->oh * g->ow, step = images_per_chunk(g);
    memset(j->out + b * g->h * g->w * g->c, 0, (size_t)((e - b) * g->h * g->w * g->c) * sizeof(float));
    float *col = col_alloc(g, (step < e - b ? step : e - b) * per);
    for (int64_t i = b; i < e; i += step) {
        int64_t ni = e - i < step ? e - i : step, r0 = i * per, nr = ni * per;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)K, (int)g->oc, 1.0f,
                    j->dy + r0 * g->oc, (int)g->oc, j->filter, (int)g->oc, 0.0f, col, (int)K);
        col2im_add(g, col, r0, nr, j->out);
    }
    free(col);
}

void pst_conv2d_backprop_input(const pst_conv_geom *g, const float *filter, const float *dy,
                               float *din) {
    int64_t K = g->kh * g->kw * g->c, M = g->n * g->oh * g->ow;
    if (is_pointwise(g)) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)K, (int)g->oc, 1.0f, dy,
                    (int)g->oc, filter, (int)g->oc, 0.0f, din, (int)K);
        return;
    }
    if (g->sh == 1 && g->sw == 1) {
        /* With stride 1 the input gradient is a convolution of dy with the filter flipped and
         * its channels swapped, padded by k - 1 - pad: no col2im scatter. */
        float *flip = malloc((size_t)(g->kh * g->kw * g->c * g->oc) * sizeof(float));
        PST_ASSERT(flip != NULL);
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t q = 0; q < g->kw; q++)
                for (int64_t c = 0; c < g->c; c++)
                    for (int64_t o = 0; o < g->oc; o++)
                        flip[((i * g->kw + q) * g->oc + o) * g->c + c] =
                            filter[(((g->kh - 1 - i) * g->kw + (g->kw - 1 - q)) * g->c + c) * g->oc + o];
        pst_conv_geom t = {.n = g->n, .h = g->oh, .w = g->ow, .c = g->oc, .kh = g->kh, .kw = g->kw,
                           .oc = g->c, .sh = 1, .sw = 1, .oh = g->h, .ow = g->w,
                           .pad_top = g->kh - 1 - g->pad_top, .pad_left = g->kw - 1 - g->pad_left};
        pst_conv2d_forward(&t, dy, flip, din);
        free(flip);
        return;
    }
    conv_job j = {.g = g, .filter = filter, .dy = dy, .out = din};
    pst_parallel_for(g->n, 1, bi_range, &j);
}

/* Pooling: window (i, j) of output (oh, ow) covers input rows oh*sh - pad_top + i. */
typedef struct pool_job {
    const pst_conv_geom *g;
    const float *in, *y, *dy;
    float *out;
} pool_job;

static void maxpool_fwd_range(void *ctx, int64_t b, int64_t e) {
    pool_job *j = ctx;
    const pst_conv_geom *g = j->g;
    int64_t C = g->c;
    for (int64_t row = b; row < e; row++) {
        int64_t n = row / g->oh, oh = row % g->oh;
        for (int64_t ow = 0; ow < g->ow; ow++) {
            float *o = j->out + ((n * g->oh + oh) * g->ow + ow) * C;
            for (int64_t k = 0; k < C; k++) o[k] = -FLT_MAX;
            for (int64_t i = 0; i < g->kh; i++) {
                int64_t ih = oh * g->sh - g->pad_top + i;
                if (ih < 0 || ih >= g->h) continue;
                for (int64_t jj = 0; jj < g->kw; jj++) {
                    int64_t iw = ow * g->sw - g->pad_left + jj;
                    if (iw < 0 || iw >= g->w) continue;
                    const float *x = j->in + ((n * g->h + ih) * g->w + iw) * C;
                    for (int64_t k = 0; k < C; k++) o[k] = x[k] > o[k] ? x[k] : o[k];
                }
            }
        }
    }
}

/* The gradient goes to the first window element equal to the window's max (TF's choice);
 * windows of one image row never share input rows with other images, and overlapping
 * windows within an image are handled by running each image on one thread. */
static void maxpool_bwd_range(void *ctx, int64_t b, int64_t e) {
    pool_job *j = ctx;
    const pst_conv_geom *g = j->g;
    int64_t C = g->c;
    uint8_t *taken = malloc((size_t)C);
    PST_ASSERT(taken != NULL);
    for (int64_t n = b; n < e; n++) {
        memset(j->out + n * g->h * g->w * C, 0, (size_t)(g->h * g->w * C) * sizeof(float));
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                int64_t o = ((n * g->oh + oh) * g->ow + ow) * C;
                const float *yv = j->y + o, *d = j->dy + o;
                memset(taken, 0, (size_t)C);
                for (int64_t i = 0; i < g->kh; i++) {
                    int64_t ih = oh * g->sh - g->pad_top + i;
                    if (ih < 0 || ih >= g->h) continue;
                    for (int64_t jj = 0; jj < g->kw; jj++) {
                        int64_t iw = ow * g->sw - g->pad_left + jj;
                        if (iw < 0 || iw >= g->w) continue;
                        int64_t base = ((n * g->h + ih) * g->w + iw) * C;
                        const float *x = j->in + base;
                        float *dx = j->out + base;
                        for (int64_t k = 0; k < C; k++) {
                            int hit = !taken[k] && x[k] == yv[k];
                            dx[k] += hit ? d[k] : 0.0f;
                            taken[k] |= (uint8_t)hit;
                        }
                    }
                }
            }
    }
    free(taken);
}

void pst_maxpool_forward(const pst_conv_geom *g, const float *in, float *out) {
    pool_job j = {g, in, NULL, NULL, out};
    pst_parallel_for(g->n * g->oh, 4, maxpool_fwd_range, &j);
}

void pst_maxpool_backward(const pst_conv_geom *g, const float *in, const float *y,
                          const float *dy, float *din) {
    pool_job j = {g, in, y, dy, din};
    pst_parallel_for(g->n, 1, maxpool_bwd_range, &j);
}

/* Window element count excluding padding (TF's AvgPool divisor). */
static int64_t window_count(const pst_conv_geom *g, int64_t oh, int64_t ow) {
    int64_t h0 = oh * g->sh - g->pad_top, w0 = ow * g->sw - g->pad_left;
    int64_t h1 = h0 + g->kh, w1 = w0 + g->kw;
    if (h0 < 0) h0 = 0;
    if (w0 < 0) w0 = 0;
    if (h1 > g->h) h1 = g->h;
    if (w1 > g->w) w1 = g->w;
    int64_t c = (h1 - h0) * (w1 - w0);
    return c > 0 ? c : 1;
}

void pst_avgpool_forward(const pst_conv_geom *g, const float *in, float *out) {
    int64_t C = g->c;
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                float *o = out + ((n * g->oh + oh) * g->ow + ow) * C;
                memset(o, 0, (size_t)C * sizeof(float));
                for (int64_t i = 0; i < g->kh; i++) {
                    int64_t ih = oh * g->sh - g->pad_top + i;
                    if (ih < 0 || ih >= g->h) continue;
                    for (int64_t j = 0; j < g->kw; j++) {
                        int64_t iw = ow * g->sw - g->pad_left + j;
                        if (iw < 0 || iw >= g->w) continue;
                        const float *x = in + ((n * g->h + ih) * g->w + iw) * C;
                        for (int64_t k = 0; k < C; k++) o[k] += x[k];
                    }
                }
                float inv = 1.0f / (float)window_count(g, oh, ow);
                for (int64_t k = 0; k < C; k++) o[k] *= inv;
            }
}

void pst_avgpool_backward(const pst_conv_geom *g, const float *dy, float *din) {
    int64_t C = g->c;
    memset(din, 0, (size_t)(g->n * g->h * g->w * C) * sizeof(float));
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                const float *d = dy + ((n * g->oh + oh) * g->ow + ow) * C;
                float inv = 1.0f / (float)window_count(g, oh, ow);
                for (int64_t i = 0; i < g->kh; i++) {
                    int64_t ih = oh * g->sh - g->pad_top + i;
                    if (ih < 0 || ih >= g->h) continue;
                    for (int64_t j = 0; j < g->kw; j++) {
                        int64_t iw = ow * g->sw - g->pad_left + j;
                        if (iw < 0 || iw >= g->w) continue;
                        float *x = din + ((n * g->h + ih) * g->w + iw) * C;
                        for (int64_t k = 0; k < C; k++) x[k] += d[k] * inv;
                    }
                }
            }
}
