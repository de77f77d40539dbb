#include "kernels_conv.h"

#include <cblas.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>

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

/* Rows of the im2col matrix per chunk: keeps the buffer near 16 MB. */
static int64_t chunk_rows(const pst_conv_geom *g) {
    int64_t k = g->kh * g->kw * g->c;
    int64_t rows = (16 << 20) / (4 * (k > 0 ? k : 1));
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
        for (int64_t i = 0; i < g->kh; i++) {
            int64_t ih = oh * g->sh - g->pad_top + i;
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

void pst_conv2d_forward(const pst_conv_geom *g, const float *in, const float *filter, float *out) {
    int64_t K = g->kh * g->kw * g->c, M = g->n * g->oh * g->ow;
    if (is_pointwise(g)) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)g->oc, (int)K, 1.0f,
                    in, (int)K, filter, (int)g->oc, 0.0f, out, (int)g->oc);
        return;
    }
    int64_t chunk = chunk_rows(g);
    float *col = malloc((size_t)(chunk < M ? chunk : M) * (size_t)K * sizeof(float));
    PST_ASSERT(col != NULL);
    for (int64_t r0 = 0; r0 < M; r0 += chunk) {
        int64_t nr = M - r0 < chunk ? M - r0 : chunk;
        im2col(g, in, r0, nr, col);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)g->oc, (int)K, 1.0f,
                    col, (int)K, filter, (int)g->oc, 0.0f, out + r0 * g->oc, (int)g->oc);
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
    int64_t chunk = chunk_rows(g);
    float *col = malloc((size_t)(chunk < M ? chunk : M) * (size_t)K * sizeof(float));
    PST_ASSERT(col != NULL);
    for (int64_t r0 = 0; r0 < M; r0 += chunk) {
        int64_t nr = M - r0 < chunk ? M - r0 : chunk;
        im2col(g, in, r0, nr, col);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)g->oc, (int)nr, 1.0f,
                    col, (int)K, dy + r0 * g->oc, (int)g->oc, r0 == 0 ? 0.0f : 1.0f, dfilter,
                    (int)g->oc);
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
    memset(din, 0, (size_t)(g->n * g->h * g->w * g->c) * sizeof(float));
    int64_t chunk = chunk_rows(g);
    float *col = malloc((size_t)(chunk < M ? chunk : M) * (size_t)K * sizeof(float));
    PST_ASSERT(col != NULL);
    for (int64_t r0 = 0; r0 < M; r0 += chunk) {
        int64_t nr = M - r0 < chunk ? M - r0 : chunk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)K, (int)g->oc, 1.0f,
                    dy + r0 * g->oc, (int)g->oc, filter, (int)g->oc, 0.0f, col, (int)K);
        col2im_add(g, col, r0, nr, din);
    }
    free(col);
}

/* Pooling: window (i, j) of output (oh, ow) covers input rows oh*sh - pad_top + i. */
void pst_maxpool_forward(const pst_conv_geom *g, const float *in, float *out) {
    int64_t C = g->c;
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                float *o = out + ((n * g->oh + oh) * g->ow + ow) * C;
                for (int64_t k = 0; k < C; k++) o[k] = -FLT_MAX;
                for (int64_t i = 0; i < g->kh; i++) {
                    int64_t ih = oh * g->sh - g->pad_top + i;
                    if (ih < 0 || ih >= g->h) continue;
                    for (int64_t j = 0; j < g->kw; j++) {
                        int64_t iw = ow * g->sw - g->pad_left + j;
                        if (iw < 0 || iw >= g->w) continue;
                        const float *x = in + ((n * g->h + ih) * g->w + iw) * C;
                        for (int64_t k = 0; k < C; k++) o[k] = x[k] > o[k] ? x[k] : o[k];
                    }
                }
            }
}

void pst_maxpool_backward(const pst_conv_geom *g, const float *in, const float *dy, float *din) {
    int64_t C = g->c;
    memset(din, 0, (size_t)(g->n * g->h * g->w * C) * sizeof(float));
    int64_t *best = malloc((size_t)C * sizeof *best);
    float *bv = malloc((size_t)C * sizeof *bv);
    PST_ASSERT(best && bv);
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                for (int64_t k = 0; k < C; k++) {
                    best[k] = -1;
                    bv[k] = -FLT_MAX;
                }
                for (int64_t i = 0; i < g->kh; i++) {
                    int64_t ih = oh * g->sh - g->pad_top + i;
                    if (ih < 0 || ih >= g->h) continue;
                    for (int64_t j = 0; j < g->kw; j++) {
                        int64_t iw = ow * g->sw - g->pad_left + j;
                        if (iw < 0 || iw >= g->w) continue;
                        int64_t base = ((n * g->h + ih) * g->w + iw) * C;
                        const float *x = in + base;
                        for (int64_t k = 0; k < C; k++)
                            if (x[k] > bv[k] || best[k] < 0) {
                                bv[k] = x[k];
                                best[k] = base + k;
                            }
                    }
                }
                const float *d = dy + ((n * g->oh + oh) * g->ow + ow) * C;
                for (int64_t k = 0; k < C; k++)
                    if (best[k] >= 0) din[best[k]] += d[k];
            }
    free(best);
    free(bv);
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
