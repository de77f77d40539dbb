#include "kernels_pool.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "status.h"

/* Window (i, j) of output (oh, ow) covers input row oh*sh - pad_top + i and column
 * ow*sw - pad_left + j; the in-image part is rows [h0, h1) x columns [w0, w1). */
typedef struct window {
    int64_t h0, h1, w0, w1;
} window;

static window window_at(const pst_conv_geom *g, int64_t oh, int64_t ow) {
    window w = {oh * g->sh - g->pad_top, 0, ow * g->sw - g->pad_left, 0};
    w.h1 = w.h0 + g->kh < g->h ? w.h0 + g->kh : g->h;
    w.w1 = w.w0 + g->kw < g->w ? w.w0 + g->kw : g->w;
    if (w.h0 < 0)
        w.h0 = 0;
    if (w.w0 < 0)
        w.w0 = 0;
    return w;
}

/* TensorFlow's AvgPool divisor: the window elements inside the image. */
static int64_t window_count(const window *w) {
    int64_t c = (w->h1 - w->h0) * (w->w1 - w->w0);
    return c > 0 ? c : 1;
}

typedef struct pool_job {
    const pst_conv_geom *g;
    const void *in, *y, *dy;
    void *out;
} pool_job;

/* Forward passes run over output rows (n, oh); backward passes over whole images, because
 * overlapping windows of one image add into the same input positions. */
#define POOL_KERNELS(T, SFX, LOWEST)                                                               \
    static void maxpool_fwd_##SFX(void *ctx, int64_t b, int64_t e) {                               \
        pool_job *j = ctx;                                                                         \
        const pst_conv_geom *g = j->g;                                                             \
        const T *in = j->in;                                                                       \
        int64_t C = g->c;                                                                          \
        for (int64_t row = b; row < e; row++) {                                                    \
            int64_t n = row / g->oh, oh = row % g->oh;                                             \
            for (int64_t ow = 0; ow < g->ow; ow++) {                                               \
                T *restrict o = (T *)j->out + (row * g->ow + ow) * C;                              \
                window w = window_at(g, oh, ow);                                                   \
                for (int64_t k = 0; k < C; k++)                                                    \
                    o[k] = LOWEST;                                                                 \
                for (int64_t ih = w.h0; ih < w.h1; ih++)                                           \
                    for (int64_t iw = w.w0; iw < w.w1; iw++) {                                     \
                        const T *restrict x = in + ((n * g->h + ih) * g->w + iw) * C;              \
                        for (int64_t k = 0; k < C; k++)                                            \
                            o[k] = x[k] > o[k] ? x[k] : o[k];                                      \
                    }                                                                              \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    static void maxpool_bwd_##SFX(void *ctx, int64_t b, int64_t e) {                               \
        pool_job *j = ctx;                                                                         \
        const pst_conv_geom *g = j->g;                                                             \
        const T *in = j->in, *y = j->y, *dy = j->dy;                                               \
        int64_t C = g->c;                                                                          \
        unsigned char *taken = malloc((size_t)(C > 0 ? C : 1));                                    \
        PST_ASSERT(taken != NULL);                                                                 \
        memset((T *)j->out + b * g->h * g->w * C, 0,                                               \
               (size_t)((e - b) * g->h * g->w * C) * sizeof(T));                                   \
        for (int64_t n = b; n < e; n++)                                                            \
            for (int64_t oh = 0; oh < g->oh; oh++)                                                 \
                for (int64_t ow = 0; ow < g->ow; ow++) {                                           \
                    int64_t o = ((n * g->oh + oh) * g->ow + ow) * C;                               \
                    const T *restrict yv = y + o, *restrict d = dy + o;                            \
                    window w = window_at(g, oh, ow);                                               \
                    memset(taken, 0, (size_t)C);                                                   \
                    for (int64_t ih = w.h0; ih < w.h1; ih++)                                       \
                        for (int64_t iw = w.w0; iw < w.w1; iw++) {                                 \
                            int64_t base = ((n * g->h + ih) * g->w + iw) * C;                      \
                            const T *restrict x = in + base;                                       \
                            T *restrict dx = (T *)j->out + base;                                   \
                            for (int64_t k = 0; k < C; k++) {                                      \
                                int hit = !taken[k] && x[k] == yv[k];                              \
                                dx[k] += hit ? d[k] : (T)0;                                        \
                                taken[k] |= (unsigned char)hit;                                    \
                            }                                                                      \
                        }                                                                          \
                }                                                                                  \
        free(taken);                                                                               \
    }                                                                                              \
    static void avgpool_fwd_##SFX(void *ctx, int64_t b, int64_t e) {                               \
        pool_job *j = ctx;                                                                         \
        const pst_conv_geom *g = j->g;                                                             \
        const T *in = j->in;                                                                       \
        int64_t C = g->c;                                                                          \
        for (int64_t row = b; row < e; row++) {                                                    \
            int64_t n = row / g->oh, oh = row % g->oh;                                             \
            for (int64_t ow = 0; ow < g->ow; ow++) {                                               \
                T *restrict o = (T *)j->out + (row * g->ow + ow) * C;                              \
                window w = window_at(g, oh, ow);                                                   \
                for (int64_t k = 0; k < C; k++)                                                    \
                    o[k] = 0;                                                                      \
                for (int64_t ih = w.h0; ih < w.h1; ih++)                                           \
                    for (int64_t iw = w.w0; iw < w.w1; iw++) {                                     \
                        const T *restrict x = in + ((n * g->h + ih) * g->w + iw) * C;              \
                        for (int64_t k = 0; k < C; k++)                                            \
                            o[k] += x[k];                                                          \
                    }                                                                              \
                T inv = (T)1 / (T)window_count(&w);                                                \
                for (int64_t k = 0; k < C; k++)                                                    \
                    o[k] *= inv;                                                                   \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    static void avgpool_bwd_##SFX(void *ctx, int64_t b, int64_t e) {                               \
        pool_job *j = ctx;                                                                         \
        const pst_conv_geom *g = j->g;                                                             \
        const T *dy = j->dy;                                                                       \
        int64_t C = g->c;                                                                          \
        memset((T *)j->out + b * g->h * g->w * C, 0,                                               \
               (size_t)((e - b) * g->h * g->w * C) * sizeof(T));                                   \
        for (int64_t n = b; n < e; n++)                                                            \
            for (int64_t oh = 0; oh < g->oh; oh++)                                                 \
                for (int64_t ow = 0; ow < g->ow; ow++) {                                           \
                    const T *restrict d = dy + ((n * g->oh + oh) * g->ow + ow) * C;                \
                    window w = window_at(g, oh, ow);                                               \
                    T inv = (T)1 / (T)window_count(&w);                                            \
                    for (int64_t ih = w.h0; ih < w.h1; ih++)                                       \
                        for (int64_t iw = w.w0; iw < w.w1; iw++) {                                 \
                            T *restrict x = (T *)j->out + ((n * g->h + ih) * g->w + iw) * C;       \
                            for (int64_t k = 0; k < C; k++)                                        \
                                x[k] += d[k] * inv;                                                \
                        }                                                                          \
                }                                                                                  \
    }
POOL_KERNELS(float, f32, -FLT_MAX)
POOL_KERNELS(double, f64, -DBL_MAX)

/* Rows per parallel chunk: enough work (about 16K multiply-adds) to be worth a hand-off. */
static int64_t row_grain(const pst_conv_geom *g) {
    int64_t work = g->ow * g->kh * g->kw * g->c;
    return 1 + 16384 / (work > 0 ? work : 1);
}

#define POOL_ENTRY_POINTS(T, SFX, NAME_SFX)                                                        \
    void pst_pool_max_forward##NAME_SFX(const pst_conv_geom *g, const T *in, T *out) {             \
        pool_job j = {g, in, NULL, NULL, out};                                                     \
        pst_parallel_for(g->n * g->oh, row_grain(g), maxpool_fwd_##SFX, &j);                       \
    }                                                                                              \
    void pst_pool_max_backward##NAME_SFX(const pst_conv_geom *g, const T *in, const T *y,          \
                                         const T *dy, T *din) {                                    \
        pool_job j = {g, in, y, dy, din};                                                          \
        pst_parallel_for(g->n, 1, maxpool_bwd_##SFX, &j);                                          \
    }                                                                                              \
    void pst_pool_avg_forward##NAME_SFX(const pst_conv_geom *g, const T *in, T *out) {             \
        pool_job j = {g, in, NULL, NULL, out};                                                     \
        pst_parallel_for(g->n * g->oh, row_grain(g), avgpool_fwd_##SFX, &j);                       \
    }                                                                                              \
    void pst_pool_avg_backward##NAME_SFX(const pst_conv_geom *g, const T *dy, T *din) {            \
        pool_job j = {g, NULL, NULL, dy, din};                                                     \
        pst_parallel_for(g->n, 1, avgpool_bwd_##SFX, &j);                                          \
    }
POOL_ENTRY_POINTS(float, f32, )
POOL_ENTRY_POINTS(double, f64, _f64)
