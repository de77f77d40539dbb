/* More image ops of TF 1.x graphs (issue 17), NHWC, TF 1.15's kernel semantics:
 *   ResizeBicubic(images, size) and ResizeBicubicGrad(grads, original_image): cubic
 *     convolution over 4x4 taps; legacy coordinates (x * scale, Keys' a = -0.75, taps clamped
 *     to the border) or half_pixel_centers ((x + 0.5) * scale - 0.5, a = -0.5, taps outside
 *     the image weighted 0 and the rest renormalized); the weights come from TF's 1024-step
 *     table, so results match TF's to float rounding. align_corners scales by
 *     (in - 1) / (out - 1).
 *   ResizeArea(images, size): each output pixel the area-weighted mean of the input cells it
 *     covers (no gradient, as in TF).
 *   Dilation2D(input, filter) with Dilation2DBackpropInput/Filter: grayscale morphological
 *     dilation, out = max over taps inside the image of input + filter; gradients go to the
 *     first maximizing tap. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_conv.h"
#include "op.h"
#include "ops.h"

/* ---- Bicubic weights ------------------------------------------------------------------- */
#define TABLE 1024

static void coeffs_table(float *t, double a) {
    for (int i = 0; i <= TABLE; i++) {
        float x = (float)(i * 1.0 / TABLE);
        t[i * 2] = (float)(((a + 2) * x - (a + 3)) * x * x + 1);
        x += 1.0f;
        t[i * 2 + 1] = (float)(((a * x - 5 * a) * x + 8 * a) * x - 4 * a);
    }
}

typedef struct taps {
    int64_t idx[4];
    float w[4];
} taps;

static int64_t bound(int64_t v, int64_t limit) { return v < 0 ? 0 : v > limit - 1 ? limit - 1 : v; }

static float resize_scale(int64_t in, int64_t out, int align) {
    return align && out > 1 ? (float)(in - 1) / (float)(out - 1) : (float)in / (float)out;
}

static void taps_of(const float *tab, int half, float scale, int64_t out, int64_t limit, taps *t) {
    float f = half ? ((float)out + 0.5f) * scale - 0.5f : (float)out * scale;
    int64_t loc = (int64_t)floorf(f);
    float delta = f - (float)loc;
    long off = lrintf(delta * TABLE);
    float w[4] = {tab[off * 2 + 1], tab[off * 2], tab[(TABLE - off) * 2], tab[(TABLE - off) * 2 + 1]};
    float sum = 0;
    for (int k = 0; k < 4; k++) {
        t->idx[k] = bound(loc - 1 + k, limit);
        t->w[k] = half && t->idx[k] != loc - 1 + k ? 0.0f : w[k];
        sum += t->w[k];
    }
    if (half && fabsf(sum) >= 1000.0f * FLT_MIN)
        for (int k = 0; k < 4; k++) t->w[k] *= 1.0f / sum;
}

static int size_of(pst_kernel_ctx *c, const pst_tensor *sz, int64_t *oh, int64_t *ow) {
    if (sz->n != 2 || sz->shape.rank != 1) return pst_kctx_error(c, PST_E_INVALID, "size must be a 1-D int32 tensor of 2 elements");
    *oh = pst_tensor_get_i64(sz, 0), *ow = pst_tensor_get_i64(sz, 1);
    if (*oh <= 0 || *ow <= 0)
        return pst_kctx_error(c, PST_E_INVALID, "output dimensions must be positive, got %lld x %lld", (long long)*oh, (long long)*ow);
    return 0;
}

static int check_images(pst_kernel_ctx *c, const pst_tensor *x) {
    char s[128];
    if (x->shape.rank != 4) return pst_kctx_error(c, PST_E_INVALID, "input must be 4-dimensional, got %s", pst_shape_str(&x->shape, s, sizeof s));
    if (x->shape.dims[1] <= 0 || x->shape.dims[2] <= 0) return pst_kctx_error(c, PST_E_INVALID, "input image must be of non-zero size");
    return 0;
}

/* ResizeBicubic(images, size) (grad = 0) and ResizeBicubicGrad(grads, original_image). */
static int bicubic_kernel(pst_kernel_ctx *c) {
    int grad = strcmp(c->op->name, "ResizeBicubicGrad") == 0;
    const pst_tensor *x = c->inputs[grad ? 1 : 0];
    if (check_images(c, x) < 0) return c->status->code;
    int64_t B = x->shape.dims[0], H = x->shape.dims[1], W = x->shape.dims[2], C = x->shape.dims[3], OH = 0, OW = 0;
    const pst_tensor *dy = grad ? c->inputs[0] : NULL;
    if (grad) {
        if (dy->shape.rank != 4 || dy->shape.dims[0] != B || dy->shape.dims[3] != C)
            return pst_kctx_error(c, PST_E_INVALID, "grads must be [batch, h, w, channels] of the original image's batch and channels");
        OH = dy->shape.dims[1], OW = dy->shape.dims[2];
    } else if (size_of(c, c->inputs[1], &OH, &OW) < 0) {
        return c->status->code;
    }
    int align = pst_kctx_attr_b(c, "align_corners", 0), half = pst_kctx_attr_b(c, "half_pixel_centers", 0);
    if (align && half) return pst_kctx_error(c, PST_E_INVALID, "half_pixel_centers and align_corners cannot both be true");
    float tab[(TABLE + 1) * 2];
    coeffs_table(tab, half ? -0.5 : -0.75);
    float sy = resize_scale(H, OH, align), sx = resize_scale(W, OW, align);
    taps *tx = malloc((size_t)OW * sizeof *tx);
    pst_tensor *o = tx ? (grad ? pst_kctx_alloc_output(c, 0, x->dtype, x->shape)
                               : pst_kctx_alloc_output(c, 0, PST_FLOAT, pst_shape_4d(B, OH, OW, C)))
                       : NULL;
    if (o == NULL) {
        free(tx);
        return tx ? c->status->code : pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    }
    for (int64_t j = 0; j < OW; j++) taps_of(tab, half, sx, j, W, &tx[j]);
    if (grad) memset(o->data, 0, o->nbytes);
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < OH; i++) {
            taps ty;
            taps_of(tab, half, sy, i, H, &ty);
            for (int64_t j = 0; j < OW; j++)
                for (int64_t ch = 0; ch < C; ch++) {
                    if (grad) {
                        double g = pst_tensor_get_f64(dy, ((b * OH + i) * OW + j) * C + ch);
                        for (int p = 0; p < 4; p++)
                            for (int q = 0; q < 4; q++) {
                                int64_t at = ((b * H + ty.idx[p]) * W + tx[j].idx[q]) * C + ch;
                                pst_tensor_set_f64(o, at, pst_tensor_get_f64(o, at) + g * ty.w[p] * tx[j].w[q]);
                            }
                        continue;
                    }
                    float col[4]; /* along y first, then x, as TF */
                    for (int q = 0; q < 4; q++) {
                        col[q] = 0;
                        for (int p = 0; p < 4; p++)
                            col[q] += ty.w[p] * (float)pst_tensor_get_f64(x, ((b * H + ty.idx[p]) * W + tx[j].idx[q]) * C + ch);
                    }
                    float v = 0;
                    for (int q = 0; q < 4; q++) v += col[q] * tx[j].w[q];
                    pst_tensor_f32(o)[((b * OH + i) * OW + j) * C + ch] = v;
                }
        }
    free(tx);
    return 0;
}

/* ResizeArea(images, size). */
static int area_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int64_t OH = 0, OW = 0;
    if (check_images(c, x) < 0 || size_of(c, c->inputs[1], &OH, &OW) < 0) return c->status->code;
    int64_t B = x->shape.dims[0], H = x->shape.dims[1], W = x->shape.dims[2], C = x->shape.dims[3];
    int align = pst_kctx_attr_b(c, "align_corners", 0);
    float sy = resize_scale(H, OH, align), sx = resize_scale(W, OW, align);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_FLOAT, pst_shape_4d(B, OH, OW, C));
    if (o == NULL) return c->status->code;
    float norm = 1.0f / (sy * sx);
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < OH; i++) {
            float y0 = (float)i * sy, y1 = (float)(i + 1) * sy;
            for (int64_t j = 0; j < OW; j++) {
                float x0 = (float)j * sx, x1 = (float)(j + 1) * sx;
                for (int64_t ch = 0; ch < C; ch++) {
                    float sum = 0;
                    for (int64_t yy = (int64_t)floorf(y0); yy < (int64_t)ceilf(y1); yy++) {
                        float wy = (float)yy < y0 ? ((float)(yy + 1) > y1 ? sy : (float)(yy + 1) - y0)
                                                  : ((float)(yy + 1) > y1 ? y1 - (float)yy : 1.0f);
                        float row = 0;
                        for (int64_t xx = (int64_t)floorf(x0); xx < (int64_t)ceilf(x1); xx++) {
                            float wx = (float)xx < x0 ? ((float)(xx + 1) > x1 ? sx : (float)(xx + 1) - x0)
                                                      : ((float)(xx + 1) > x1 ? x1 - (float)xx : 1.0f);
                            int64_t at = ((b * H + (yy < H ? yy : H - 1)) * W + (xx < W ? xx : W - 1)) * C + ch;
                            row += wx * (float)pst_tensor_get_f64(x, at);
                        }
                        sum += wy * row;
                    }
                    pst_tensor_f32(o)[((b * OH + i) * OW + j) * C + ch] = sum * norm;
                }
            }
        }
    return 0;
}

static int resize_shape(pst_node *n, pst_status *st) {
    int grad = strcmp(n->op->name, "ResizeBicubicGrad") == 0;
    pst_shape x = pst_node_in_shape(n, grad ? 1 : 0), o = pst_shape_4d(-1, -1, -1, -1);
    char s[128];
    if (x.rank >= 0 && x.rank != 4)
        return pst_status_set(st, PST_E_INVALID, "input must be 4-dimensional, got %s", pst_shape_str(&x, s, sizeof s));
    if (pst_node_attr_b(n, "align_corners", 0) && pst_node_attr_b(n, "half_pixel_centers", 0))
        return pst_status_set(st, PST_E_INVALID, "half_pixel_centers and align_corners cannot both be true");
    if (grad) {
        pst_node_set_output(n, 0, pst_node_in_dtype(n, 1), x);
        return 0;
    }
    if (x.rank == 4) o.dims[0] = x.dims[0], o.dims[3] = x.dims[3];
    const pst_tensor *sz = pst_node_in_const(n, 1);
    if (sz && sz->n == 2) o.dims[1] = pst_tensor_get_i64(sz, 0), o.dims[2] = pst_tensor_get_i64(sz, 1);
    pst_node_set_output(n, 0, PST_FLOAT, o);
    return 0;
}

static int bicubic_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (dt != PST_FLOAT && dt != PST_DOUBLE) return 0; /* TF: integer images get none */
    pst_node_builder *b = pst_nb_new(g, "ResizeBicubicGrad", NULL);
    pst_nb_input(b, dy[0]);
    pst_nb_input(b, n->inputs[0]);
    pst_nb_attr_type(b, "T", dt);
    pst_nb_attr_b(b, "align_corners", pst_node_attr_b(n, "align_corners", 0));
    pst_nb_attr_b(b, "half_pixel_centers", pst_node_attr_b(n, "half_pixel_centers", 0));
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

/* ---- Dilation2D ------------------------------------------------------------------------ */
typedef struct dil_geom {
    pst_conv_geom g; /* over the effective (dilated) filter */
    int64_t fh, fw, rh, rw;
} dil_geom;

static int dil_attrs(const pst_attr *strides, const pst_attr *rates, int64_t *s, int64_t *r, pst_status *st) {
    if (strides == NULL || rates == NULL || strides->n != 4 || rates->n != 4 || strides->list.i[0] != 1 ||
        strides->list.i[3] != 1 || rates->list.i[0] != 1 || rates->list.i[3] != 1)
        return pst_status_set(st, PST_E_INVALID, "strides and rates must be [1, h, w, 1]");
    s[0] = strides->list.i[1], s[1] = strides->list.i[2], r[0] = rates->list.i[1], r[1] = rates->list.i[2];
    if (s[0] < 1 || s[1] < 1 || r[0] < 1 || r[1] < 1)
        return pst_status_set(st, PST_E_INVALID, "strides and rates must be positive");
    return 0;
}

static int dil_geom_of(const pst_shape *x, const pst_shape *f, const pst_attr *strides, const pst_attr *rates,
                       const char *pad, dil_geom *d, pst_status *st) {
    int64_t s[2] = {1, 1}, r[2] = {1, 1};
    char a[128], b[128];
    if (dil_attrs(strides, rates, s, r, st) < 0) return PST_E_INVALID;
    if (x->rank != 4 || f->rank != 3 || x->dims[3] != f->dims[2])
        return pst_status_set(st, PST_E_INVALID, "input %s must be 4-D and filter %s 3-D of the input's depth",
                              pst_shape_str(x, a, sizeof a), pst_shape_str(f, b, sizeof b));
    d->fh = f->dims[0], d->fw = f->dims[1], d->rh = r[0], d->rw = r[1];
    int64_t eh = (d->fh - 1) * r[0] + 1, ew = (d->fw - 1) * r[1] + 1;
    if (pst_conv_geom_make(&d->g, x->dims[0], x->dims[1], x->dims[2], x->dims[3], eh, ew, x->dims[3], s[0], s[1], pad) < 0 ||
        d->g.oh <= 0 || d->g.ow <= 0)
        return pst_status_set(st, PST_E_INVALID, "bad padding '%s' or a dilated filter larger than the input", pad);
    return 0;
}

static int dil_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *f = c->inputs[1];
    dil_geom d;
    if (dil_geom_of(&x->shape, &f->shape, pst_kctx_attr(c, "strides"), pst_kctx_attr(c, "rates"),
                    pst_kctx_attr_s(c, "padding", ""), &d, c->status) < 0)
        return c->status->code;
    const pst_conv_geom *g = &d.g;
    int mode = c->n_inputs == 2 ? 0 : strcmp(c->op->name, "Dilation2DBackpropInput") == 0 ? 1 : 2;
    const pst_tensor *dy = mode ? c->inputs[2] : NULL;
    pst_shape ps = pst_shape_4d(g->n, g->oh, g->ow, g->c);
    char a[128];
    if (dy && !pst_shape_equal(&dy->shape, &ps))
        return pst_kctx_error(c, PST_E_INVALID, "out_backprop must be %s", pst_shape_str(&ps, a, sizeof a));
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, mode == 0 ? ps : mode == 1 ? x->shape : f->shape);
    if (o == NULL) return c->status->code;
    if (mode) memset(o->data, 0, o->nbytes);
    for (int64_t b = 0; b < g->n; b++)
        for (int64_t oy = 0; oy < g->oh; oy++)
            for (int64_t ox = 0; ox < g->ow; ox++)
                for (int64_t ch = 0; ch < g->c; ch++) {
                    double best = -DBL_MAX;
                    int64_t bi = -1, bf = -1;
                    for (int64_t i = 0; i < d.fh; i++) {
                        int64_t iy = oy * g->sh - g->pad_top + i * d.rh;
                        if (iy < 0 || iy >= g->h) continue;
                        for (int64_t j = 0; j < d.fw; j++) {
                            int64_t ix = ox * g->sw - g->pad_left + j * d.rw;
                            if (ix < 0 || ix >= g->w) continue;
                            int64_t xi = ((b * g->h + iy) * g->w + ix) * g->c + ch, fi = (i * d.fw + j) * g->c + ch;
                            double v = pst_tensor_get_f64(x, xi) + pst_tensor_get_f64(f, fi);
                            if (v > best) best = v, bi = xi, bf = fi;
                        }
                    }
                    int64_t at = ((b * g->oh + oy) * g->ow + ox) * g->c + ch;
                    if (mode == 0)
                        pst_tensor_set_f64(o, at, best);
                    else if (bi >= 0) {
                        int64_t to = mode == 1 ? bi : bf;
                        pst_tensor_set_f64(o, to, pst_tensor_get_f64(o, to) + pst_tensor_get_f64(dy, at));
                    }
                }
    return 0;
}

static int dil_shape(pst_node *n, pst_status *st) {
    pst_shape x = pst_node_in_shape(n, 0), f = pst_node_in_shape(n, 1);
    if (pst_shape_check_same_dtype(n, 0, n->n_inputs - 1, st) < 0) return PST_E_INVALID;
    if (!pst_dtype_is_float(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "Dilation2D takes float or double");
    if (n->n_inputs == 3) {
        pst_node_set_output(n, 0, pst_node_in_dtype(n, 0),
                            strcmp(n->op->name, "Dilation2DBackpropInput") == 0 ? x : f);
        return 0;
    }
    pst_shape o = pst_shape_4d(x.rank == 4 ? x.dims[0] : -1, -1, -1, x.rank == 4 ? x.dims[3] : -1);
    if (pst_shape_is_known(&x) && pst_shape_is_known(&f)) {
        dil_geom d;
        if (dil_geom_of(&x, &f, pst_node_attr(n, "strides"), pst_node_attr(n, "rates"),
                        pst_node_attr_s(n, "padding", ""), &d, st) < 0)
            return PST_E_INVALID;
        o.dims[1] = d.g.oh, o.dims[2] = d.g.ow;
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), o);
    return 0;
}

static int dil_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    for (int k = 0; k < 2; k++) {
        pst_node_builder *b = pst_nb_new(g, k ? "Dilation2DBackpropFilter" : "Dilation2DBackpropInput", NULL);
        pst_nb_inputs(b, 3, (pst_output[]){n->inputs[0], n->inputs[1], dy[0]});
        pst_nb_attr_type(b, "T", pst_node_in_dtype(n, 0));
        pst_nb_attr(b, pst_node_attr(n, "strides"));
        pst_nb_attr(b, pst_node_attr(n, "rates"));
        pst_nb_attr_s(b, "padding", pst_node_attr_s(n, "padding", "VALID"));
        dx[k] = pst_nb_finish_out(b);
    }
    return 0;
}

/* ---- ExtractImagePatches(images; ksizes, strides, rates, padding) -----------------------
 * Output [b, out_rows, out_cols, kr * kc * depth]: each window's (row, col, depth) values,
 * zeros where the window leaves the image; the windows as a convolution's with the dilated
 * size (k - 1) * rate + 1. */
static int patch_attrs(const pst_attr *k, const pst_attr *s, const pst_attr *r, int64_t *v, pst_status *st) {
    const pst_attr *a[3] = {k, s, r};
    for (int i = 0; i < 3; i++) {
        if (a[i] == NULL || a[i]->n != 4 || a[i]->list.i[0] != 1 || a[i]->list.i[3] != 1 || a[i]->list.i[1] < 1 ||
            a[i]->list.i[2] < 1)
            return pst_status_set(st, PST_E_INVALID, "ksizes, strides and rates must be [1, rows, cols, 1] of positive values");
        v[2 * i] = a[i]->list.i[1], v[2 * i + 1] = a[i]->list.i[2];
    }
    return 0;
}

/* w = {kr, kc, sr, sc, rr, rc}; g over the dilated window. */
static int patch_geom(const pst_shape *x, const int64_t *w, const char *pad, pst_conv_geom *g, pst_status *st) {
    char sx[128];
    if (x->rank != 4) return pst_status_set(st, PST_E_INVALID, "images must be 4-D, got %s", pst_shape_str(x, sx, sizeof sx));
    int64_t er = (w[0] - 1) * w[4] + 1, ec = (w[1] - 1) * w[5] + 1;
    if (pst_conv_geom_make(g, x->dims[0], x->dims[1], x->dims[2], x->dims[3], er, ec, x->dims[3], w[2], w[3], pad) < 0 ||
        g->oh <= 0 || g->ow <= 0)
        return pst_status_set(st, PST_E_INVALID, "bad padding '%s' or a window larger than images %s", pad,
                              pst_shape_str(x, sx, sizeof sx));
    return 0;
}

static int patches_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int64_t w[6];
    pst_conv_geom g;
    if (patch_attrs(pst_kctx_attr(c, "ksizes"), pst_kctx_attr(c, "strides"), pst_kctx_attr(c, "rates"), w, c->status) < 0 ||
        patch_geom(&x->shape, w, pst_kctx_attr_s(c, "padding", ""), &g, c->status) < 0)
        return c->status->code;
    int64_t D = g.c, depth = w[0] * w[1] * D;
    pst_tensor *o = pst_tensor_new_zeros(x->dtype, pst_shape_4d(g.n, g.oh, g.ow, depth), c->status);
    if (o == NULL) return c->status->code;
    for (int64_t b = 0; b < g.n; b++)
        for (int64_t oy = 0; oy < g.oh; oy++)
            for (int64_t ox = 0; ox < g.ow; ox++)
                for (int64_t i = 0; i < w[0]; i++) {
                    int64_t iy = oy * g.sh - g.pad_top + i * w[4];
                    if (iy < 0 || iy >= g.h) continue;
                    for (int64_t j = 0; j < w[1]; j++) {
                        int64_t ix = ox * g.sw - g.pad_left + j * w[5];
                        if (ix < 0 || ix >= g.w) continue;
                        int64_t to = ((b * g.oh + oy) * g.ow + ox) * depth + (i * w[1] + j) * D;
                        if (pst_tensor_copy_elems(o, to, x, ((b * g.h + iy) * g.w + ix) * D, D, c->status) < 0) {
                            pst_tensor_unref(o);
                            return c->status->code;
                        }
                    }
                }
    pst_kctx_set_output(c, 0, o);
    return 0;
}

static int patches_shape(pst_node *n, pst_status *st) {
    pst_shape x = pst_node_in_shape(n, 0), o = pst_shape_4d(-1, -1, -1, -1);
    int64_t w[6];
    char sx[128];
    if (patch_attrs(pst_node_attr(n, "ksizes"), pst_node_attr(n, "strides"), pst_node_attr(n, "rates"), w, st) < 0)
        return PST_E_INVALID;
    if (x.rank >= 0 && x.rank != 4)
        return pst_status_set(st, PST_E_INVALID, "images must be 4-D, got %s", pst_shape_str(&x, sx, sizeof sx));
    if (x.rank == 4) {
        o.dims[0] = x.dims[0];
        o.dims[3] = x.dims[3] < 0 ? -1 : w[0] * w[1] * x.dims[3];
        if (pst_shape_is_known(&x)) {
            pst_conv_geom g;
            if (patch_geom(&x, w, pst_node_attr_s(n, "padding", ""), &g, st) < 0) return PST_E_INVALID;
            o.dims[1] = g.oh, o.dims[2] = g.ow;
        }
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), o);
    return 0;
}

/* The gradient with TF ops: patches of an index image (1..N, 0 where padded) name where each
 * patch value came from; UnsortedSegmentSum adds dy there (dropping the padding's -1). */
static int patches_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_shape x = pst_node_in_shape(n, 0);
    if (!pst_shape_is_known(&x))
        return pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "the gradient of ExtractImagePatches '%s' needs its "
                                   "input's static shape", n->name);
    int64_t total = x.dims[0] * x.dims[1] * x.dims[2] * x.dims[3];
    pst_node_builder *b = pst_nb_new(g, "Range", NULL);
    pst_nb_inputs(b, 3, (pst_output[]){pst_const_i64(g, 1, NULL), pst_const_i64(g, total + 1, NULL), pst_const_i64(g, 1, NULL)});
    pst_nb_attr_type(b, "Tidx", PST_INT64);
    pst_output idx = pst_reshape(g, pst_nb_finish_out(b), 4, x.dims, NULL);
    b = pst_nb_new(g, "ExtractImagePatches", NULL);
    pst_nb_input(b, idx);
    pst_nb_attr_type(b, "T", PST_INT64);
    pst_nb_attr(b, pst_node_attr(n, "ksizes"));
    pst_nb_attr(b, pst_node_attr(n, "strides"));
    pst_nb_attr(b, pst_node_attr(n, "rates"));
    pst_nb_attr_s(b, "padding", pst_node_attr_s(n, "padding", "VALID"));
    pst_output ids = pst_sub(g, pst_nb_finish_out(b), pst_const_i64(g, 1, NULL), NULL);
    b = pst_nb_new(g, "UnsortedSegmentSum", NULL);
    pst_nb_inputs(b, 3, (pst_output[]){dy[0], ids, pst_const_i64(g, total, NULL)});
    pst_nb_attr_type(b, "T", pst_output_dtype(dy[0]));
    pst_nb_attr_type(b, "Tindices", PST_INT64);
    pst_nb_attr_type(b, "Tnumsegments", PST_INT64);
    dx[0] = pst_reshape(g, pst_nb_finish_out(b), 4, x.dims, NULL);
    return 0;
}

/* ---- Registration ---------------------------------------------------------------------- */
static const pst_attr_spec resize_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                             {"align_corners", PST_ATTR_BOOL, 0},
                                             {"half_pixel_centers", PST_ATTR_BOOL, 0},
                                             {0}};
static const pst_attr_spec dil_attrs_spec[] = {{"T", PST_ATTR_TYPE, 0},
                                               {"strides", PST_ATTR_LIST_INT, 1},
                                               {"rates", PST_ATTR_LIST_INT, 1},
                                               {"padding", PST_ATTR_STRING, 1},
                                               {0}};
static const pst_attr_spec patch_attrs_spec[] = {{"T", PST_ATTR_TYPE, 0},
                                                 {"ksizes", PST_ATTR_LIST_INT, 1},
                                                 {"strides", PST_ATTR_LIST_INT, 1},
                                                 {"rates", PST_ATTR_LIST_INT, 1},
                                                 {"padding", PST_ATTR_STRING, 1},
                                                 {0}};
#define IMG(nm, ni, at, sh, k, gr)                                                                \
    {.name = nm, .min_inputs = ni, .max_inputs = ni, .n_outputs = 1, .attrs = at, .shape = sh,    \
     .kernel = k, .grad = gr}
static const pst_op_def image_ops[] = {
    IMG("ResizeBicubic", 2, resize_attrs, resize_shape, bicubic_kernel, bicubic_grad),
    IMG("ResizeBicubicGrad", 2, resize_attrs, resize_shape, bicubic_kernel, NULL),
    IMG("ResizeArea", 2, resize_attrs, resize_shape, area_kernel, NULL),
    IMG("Dilation2D", 2, dil_attrs_spec, dil_shape, dil_kernel, dil_grad),
    IMG("Dilation2DBackpropInput", 3, dil_attrs_spec, dil_shape, dil_kernel, NULL),
    IMG("Dilation2DBackpropFilter", 3, dil_attrs_spec, dil_shape, dil_kernel, NULL),
    IMG("ExtractImagePatches", 1, patch_attrs_spec, patches_shape, patches_kernel, patches_grad),
};

void pst__register_image_more_ops(void) {
    for (size_t i = 0; i < sizeof image_ops / sizeof image_ops[0]; i++) pst_op_register(&image_ops[i]);
}
