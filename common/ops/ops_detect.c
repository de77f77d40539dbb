/* Detection-model ops of TF 1.x graphs (issue 17), TF 1.15's kernel semantics:
 *   NonMaxSuppression (iou_threshold an attr), V2 (an input), V3 (+ score_threshold), V4
 *   (+ pad_to_max_output_size, valid_outputs), V5 (+ soft_nms_sigma, selected_scores) and
 *   NonMaxSuppressionWithOverlaps (a precomputed [N, N] overlap matrix): candidates are the
 *   boxes scoring above score_threshold, taken by decreasing score (ties: lower index first);
 *   one is kept unless its IoU with a kept box is above iou_threshold. Boxes are
 *   [y1, x1, y2, x2] in any corner order; a box of no area overlaps nothing. With
 *   soft_nms_sigma > 0 (V5) a candidate's score decays by exp(-iou^2 / (2 sigma)) for each kept
 *   box instead, and it goes back in line until its score is unchanged or falls to
 *   score_threshold.
 *   CropAndResize(image [B,H,W,C], boxes [N,4], box_ind [N], crop_size [2]) -> float [N,h,w,C]
 *   sampling box (y1, x1, y2, x2) in normalized coordinates: crop row y at y1 (H-1) +
 *   y (y2-y1)(H-1)/(h-1) (the box centre when h = 1), bilinear or nearest (rounding half away
 *   from zero), extrapolation_value outside the image; CropAndResizeGradImage and
 *   CropAndResizeGradBoxes are its gradients (image_grad.py registers both).
 *   DrawBoundingBoxes(images [B,H,W,D], boxes [B,N,4]) and V2 (+ colors [K,4] RGBA): a copy
 *   with each box's outline in color box % K (TF's 10-color table by default, its first channel
 *   1 for grey images); edges at y1 (H-1), y2 (H-1), x1 (W-1), x2 (W-1) truncated, drawn where
 *   inside the image; inverted boxes and boxes wholly outside are skipped. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

/* ---- Non-max suppression --------------------------------------------------------------- */
typedef struct nms_cand {
    int64_t index;
    double score;
    int64_t checked; /* kept boxes already compared (soft NMS) */
} nms_cand;

/* Decreasing score, then increasing index. */
static int cand_cmp(const void *pa, const void *pb) {
    const nms_cand *a = pa, *b = pb;
    if (a->score != b->score) return a->score < b->score ? 1 : -1;
    return (a->index > b->index) - (a->index < b->index);
}

static double box_iou(const pst_tensor *boxes, int64_t i, int64_t j) {
    double bi[4], bj[4];
    for (int k = 0; k < 4; k++) {
        bi[k] = pst_tensor_get_f64(boxes, i * 4 + k);
        bj[k] = pst_tensor_get_f64(boxes, j * 4 + k);
    }
    double y0i = fmin(bi[0], bi[2]), x0i = fmin(bi[1], bi[3]), y1i = fmax(bi[0], bi[2]),
           x1i = fmax(bi[1], bi[3]);
    double y0j = fmin(bj[0], bj[2]), x0j = fmin(bj[1], bj[3]), y1j = fmax(bj[0], bj[2]),
           x1j = fmax(bj[1], bj[3]);
    double ai = (y1i - y0i) * (x1i - x0i), aj = (y1j - y0j) * (x1j - x0j);
    if (ai <= 0 || aj <= 0) return 0;
    double ih = fmax(fmin(y1i, y1j) - fmax(y0i, y0j), 0),
           iw = fmax(fmin(x1i, x1j) - fmax(x0i, x0j), 0);
    return ih * iw / (ai + aj - ih * iw);
}

/* Scalar input i as a double (the caller checked it is a scalar). */
static double scalar_in(pst_kernel_ctx *c, int i) { return pst_tensor_get_f64(c->inputs[i], 0); }

static int nms_kernel(pst_kernel_ctx *c) {
    const char *op = c->op->name;
    int overlaps = strcmp(op, "NonMaxSuppressionWithOverlaps") == 0;
    int v1 = strcmp(op, "NonMaxSuppression") == 0, v5 = strcmp(op, "NonMaxSuppressionV5") == 0;
    const pst_tensor *boxes = c->inputs[0], *scores = c->inputs[1];
    for (int i = 2; i < c->n_inputs; i++)
        if (c->inputs[i]->shape.rank != 0)
            return pst_kctx_error(c, PST_E_INVALID, "input %d must be a scalar", i);
    int64_t n = scores->shape.rank == 1 ? scores->shape.dims[0] : -1;
    if (n < 0) return pst_kctx_error(c, PST_E_INVALID, "scores must be 1-D");
    if (overlaps ? boxes->shape.rank != 2 || boxes->shape.dims[0] != n || boxes->shape.dims[1] != n
                 : boxes->shape.rank != 2 || boxes->shape.dims[1] != 4 || boxes->shape.dims[0] != n)
        return pst_kctx_error(c, PST_E_INVALID, overlaps ? "overlaps must be [%lld, %lld]"
                                                         : "boxes must be [%lld, 4]",
                              (long long)n, (long long)n);
    int64_t max_out = pst_tensor_get_i64(c->inputs[2], 0);
    double thr = v1 ? pst_kctx_attr_f(c, "iou_threshold", 0.5f) : scalar_in(c, 3);
    double score_thr = c->n_inputs > 4 ? scalar_in(c, 4) : -INFINITY;
    double sigma = v5 ? scalar_in(c, 5) : 0;
    if (max_out < 0)
        return pst_kctx_error(c, PST_E_INVALID, "max_output_size %lld is negative",
                              (long long)max_out);
    if (!overlaps && !(thr >= 0 && thr <= 1))
        return pst_kctx_error(c, PST_E_INVALID, "iou_threshold %g must be in [0, 1]", thr);
    if (!(sigma >= 0))
        return pst_kctx_error(c, PST_E_INVALID, "soft_nms_sigma %g must be >= 0", sigma);
    nms_cand *q = malloc((size_t)(n + 1) * sizeof *q);
    int64_t *kept = malloc((size_t)(n + 1) * sizeof *kept);
    double *kept_score = malloc((size_t)(n + 1) * sizeof *kept_score);
    PST_ASSERT(q && kept && kept_score);
    int64_t nq = 0, nk = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = pst_tensor_get_f64(scores, i);
        if (s > score_thr) q[nq++] = (nms_cand){i, s, 0};
    }
    qsort(q, (size_t)nq, sizeof *q, cand_cmp);
    /* q[head..nq) stays sorted: a soft-decayed candidate is re-inserted in order */
    int64_t head = 0;
    while (nk < max_out && head < nq) {
        nms_cand cd = q[head++];
        double orig = cd.score;
        int suppressed = 0;
        for (int64_t j = nk - 1; j >= cd.checked; j--) {
            double sim = overlaps ? pst_tensor_get_f64(boxes, cd.index * n + kept[j])
                                  : box_iou(boxes, cd.index, kept[j]);
            if (sigma > 0) {
                cd.score *= exp(-0.5 * sim * sim / sigma);
                if (cd.score <= score_thr) break;
            } else if (sim > thr) {
                suppressed = 1;
                break;
            }
        }
        cd.checked = nk;
        if (suppressed) continue;
        if (cd.score == orig) {
            kept[nk] = cd.index;
            kept_score[nk++] = cd.score;
        } else if (cd.score > score_thr) { /* back in line at its new score */
            int64_t at = head;
            while (at < nq && cand_cmp(&q[at], &cd) < 0) at++;
            memmove(&q[head - 1], &q[head], (size_t)(at - head) * sizeof *q);
            q[at - 1] = cd;
            head--;
        }
    }
    int pad = pst_kctx_attr_b(c, "pad_to_max_output_size", 0);
    int64_t len = pad ? max_out : nk;
    pst_tensor *oi = pst_kctx_alloc_output(c, 0, PST_INT32, pst_shape_1d(len));
    pst_tensor *os =
        oi && v5 ? pst_kctx_alloc_output(c, 1, scores->dtype, pst_shape_1d(len)) : NULL;
    int rc = oi == NULL || (v5 && os == NULL) ? c->status->code : 0;
    for (int64_t i = 0; rc == 0 && i < len; i++) {
        pst_tensor_i32(oi)[i] = i < nk ? (int32_t)kept[i] : 0;
        if (os) pst_tensor_set_f64(os, i, i < nk ? kept_score[i] : 0);
    }
    if (rc == 0 && c->n_outputs > 1) {
        pst_tensor *nv = pst_kctx_alloc_output(c, c->n_outputs - 1, PST_INT32, pst_shape_scalar());
        if (nv == NULL) rc = c->status->code;
        else pst_tensor_i32(nv)[0] = (int32_t)nk;
    }
    free(q), free(kept), free(kept_score);
    return rc;
}

static int nms_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_in_dtype(n, 1);
    if (!pst_dtype_is_float(dt) || !pst_dtype_is_float(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "boxes and scores must be float or double");
    const pst_tensor *mo = pst_node_in_const(n, 2);
    int pad = pst_node_attr_b(n, "pad_to_max_output_size", 0);
    pst_node_set_output(n, 0, PST_INT32, pst_shape_1d(pad && mo ? pst_tensor_get_i64(mo, 0) : -1));
    if (strcmp(n->op->name, "NonMaxSuppressionV5") == 0)
        pst_node_set_output(n, 1, dt, pst_shape_1d(pad && mo ? pst_tensor_get_i64(mo, 0) : -1));
    if (n->n_outputs > 1) pst_node_set_output(n, n->n_outputs - 1, PST_INT32, pst_shape_scalar());
    return 0;
}

/* ---- CropAndResize ----------------------------------------------------------------------- */
/* Where crop row (or column) k of `size` samples box edge lo..hi on an axis of `len` pixels;
 * *slope is d position / d hi ((d / d lo) = (len - 1) - slope). */
static double crop_pos(double lo, double hi, int64_t k, int64_t size, int64_t len, double *slope) {
    if (size > 1) {
        *slope = (double)k * (double)(len - 1) / (double)(size - 1);
        return lo * (double)(len - 1) + (hi - lo) * *slope;
    }
    *slope = 0.5 * (double)(len - 1);
    return 0.5 * (lo + hi) * (double)(len - 1);
}

typedef struct crop_geom {
    int64_t b, h, w, c;   /* image */
    int64_t n, ch, cw;    /* boxes, crop size */
    int nearest;
} crop_geom;

/* Checks boxes [n, 4], box_ind [n] within [0, batch) and crop_size; fills g. */
static int crop_check(pst_kernel_ctx *c, const pst_tensor *boxes, const pst_tensor *ind,
                      crop_geom *g) {
    if (boxes->shape.rank != 2 || boxes->shape.dims[1] != 4)
        return pst_kctx_error(c, PST_E_INVALID, "boxes must be [num_boxes, 4]");
    g->n = boxes->shape.dims[0];
    if (ind->shape.rank != 1 || ind->shape.dims[0] != g->n)
        return pst_kctx_error(c, PST_E_INVALID, "box_ind must be [%lld]", (long long)g->n);
    for (int64_t i = 0; i < g->n; i++) {
        int64_t b = pst_tensor_get_i64(ind, i);
        if (b < 0 || b >= g->b)
            return pst_kctx_error(c, PST_E_INVALID, "box_ind[%lld] = %lld is not in [0, %lld)",
                                  (long long)i, (long long)b, (long long)g->b);
    }
    if (g->ch <= 0 || g->cw <= 0)
        return pst_kctx_error(c, PST_E_INVALID, "crop size %lld x %lld must be positive",
                              (long long)g->ch, (long long)g->cw);
    const char *m = pst_kctx_attr_s(c, "method", "bilinear");
    if (strcmp(m, "bilinear") != 0 && strcmp(m, "nearest") != 0)
        return pst_kctx_error(c, PST_E_INVALID, "method '%s' is not bilinear or nearest", m);
    g->nearest = strcmp(m, "nearest") == 0;
    return 0;
}

/* Calls visit for every crop sample inside the image: box i, crop pixel (y, x), the four
 * source pixels' flat (y, x) offsets in image b and their weights (nearest: one pixel,
 * weight 1), and for boxes' gradient the positions' slopes. Samples outside the image get
 * visit with n_src = 0. */
typedef void (*crop_visit_fn)(void *ctx, int64_t i, int64_t y, int64_t x, int n_src,
                              const int64_t *src, const double *w, double in_y, double in_x,
                              const double *lerp, double sy, double sx);

static void crop_walk(const crop_geom *g, const pst_tensor *boxes, const pst_tensor *ind,
                      crop_visit_fn visit, void *ctx) {
    for (int64_t i = 0; i < g->n; i++) {
        double bx[4];
        for (int k = 0; k < 4; k++) bx[k] = pst_tensor_get_f64(boxes, i * 4 + k);
        int64_t base = pst_tensor_get_i64(ind, i) * g->h * g->w;
        for (int64_t y = 0; y < g->ch; y++) {
            double sy, sx, in_y = crop_pos(bx[0], bx[2], y, g->ch, g->h, &sy);
            for (int64_t x = 0; x < g->cw; x++) {
                double in_x = crop_pos(bx[1], bx[3], x, g->cw, g->w, &sx);
                if (in_y < 0 || in_y > (double)(g->h - 1) || in_x < 0 ||
                    in_x > (double)(g->w - 1)) {
                    visit(ctx, i, y, x, 0, NULL, NULL, in_y, in_x, NULL, sy, sx);
                    continue;
                }
                if (g->nearest) {
                    int64_t src = base + (int64_t)round(in_y) * g->w + (int64_t)round(in_x);
                    visit(ctx, i, y, x, 1, &src, (double[]){1}, in_y, in_x, NULL, sy, sx);
                    continue;
                }
                int64_t t = (int64_t)floor(in_y), bo = (int64_t)ceil(in_y);
                int64_t l = (int64_t)floor(in_x), r = (int64_t)ceil(in_x);
                double yl = in_y - (double)t, xl = in_x - (double)l;
                int64_t src[4] = {base + t * g->w + l, base + t * g->w + r, base + bo * g->w + l,
                                  base + bo * g->w + r};
                double w[4] = {(1 - yl) * (1 - xl), (1 - yl) * xl, yl * (1 - xl), yl * xl};
                visit(ctx, i, y, x, 4, src, w, in_y, in_x, (double[]){yl, xl}, sy, sx);
            }
        }
    }
}

typedef struct crop_ctx {
    const crop_geom *g;
    const pst_tensor *image, *grads;
    pst_tensor *out;
    double extrapolation;
} crop_ctx;

static void crop_fwd_visit(void *vctx, int64_t i, int64_t y, int64_t x, int n_src,
                           const int64_t *src, const double *w, double in_y, double in_x,
                           const double *lerp, double sy, double sx) {
    (void)in_y, (void)in_x, (void)lerp, (void)sy, (void)sx;
    crop_ctx *cc = vctx;
    int64_t C = cc->g->c, o = ((i * cc->g->ch + y) * cc->g->cw + x) * C;
    float *out = pst_tensor_f32(cc->out);
    for (int64_t d = 0; d < C; d++) {
        double v = n_src ? 0 : cc->extrapolation;
        for (int k = 0; k < n_src; k++) v += w[k] * pst_tensor_get_f64(cc->image, src[k] * C + d);
        out[o + d] = (float)v;
    }
}

static int crop_kernel(pst_kernel_ctx *c) {
    const pst_tensor *img = c->inputs[0], *cs = c->inputs[3];
    if (img->shape.rank != 4)
        return pst_kctx_error(c, PST_E_INVALID, "image must be 4-D [batch, height, width, depth]");
    if (cs->n != 2) return pst_kctx_error(c, PST_E_INVALID, "crop_size must have 2 values");
    crop_geom g = {img->shape.dims[0],
                   img->shape.dims[1],
                   img->shape.dims[2],
                   img->shape.dims[3],
                   0,
                   pst_tensor_get_i64(cs, 0),
                   pst_tensor_get_i64(cs, 1),
                   0};
    if (crop_check(c, c->inputs[1], c->inputs[2], &g) < 0) return c->status->code;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_FLOAT, pst_shape_4d(g.n, g.ch, g.cw, g.c));
    if (o == NULL) return c->status->code;
    crop_ctx cc = {&g, img, NULL, o, pst_kctx_attr_f(c, "extrapolation_value", 0)};
    crop_walk(&g, c->inputs[1], c->inputs[2], crop_fwd_visit, &cc);
    return 0;
}

static void crop_grad_image_visit(void *vctx, int64_t i, int64_t y, int64_t x, int n_src,
                                  const int64_t *src, const double *w, double in_y, double in_x,
                                  const double *lerp, double sy, double sx) {
    (void)in_y, (void)in_x, (void)lerp, (void)sy, (void)sx;
    crop_ctx *cc = vctx;
    int64_t C = cc->g->c, o = ((i * cc->g->ch + y) * cc->g->cw + x) * C;
    for (int k = 0; k < n_src; k++)
        for (int64_t d = 0; d < C; d++) {
            int64_t at = src[k] * C + d;
            pst_tensor_set_f64(cc->out, at, pst_tensor_get_f64(cc->out, at) +
                                                w[k] * pst_tensor_get_f64(cc->grads, o + d));
        }
}

/* d box: the chain rule through in_y = y1 (H-1) + (y2 - y1) sy (and x alike); bilinear only. */
static void crop_grad_boxes_visit(void *vctx, int64_t i, int64_t y, int64_t x, int n_src,
                                  const int64_t *src, const double *w, double in_y, double in_x,
                                  const double *lerp, double sy, double sx) {
    (void)w, (void)in_y, (void)in_x;
    crop_ctx *cc = vctx;
    if (n_src != 4) return;
    int64_t C = cc->g->c, o = ((i * cc->g->ch + y) * cc->g->cw + x) * C;
    double dy = 0, dx = 0;
    for (int64_t d = 0; d < C; d++) {
        double v[4];
        for (int k = 0; k < 4; k++) v[k] = pst_tensor_get_f64(cc->image, src[k] * C + d);
        double gr = pst_tensor_get_f64(cc->grads, o + d);
        dy += gr * ((1 - lerp[1]) * (v[2] - v[0]) + lerp[1] * (v[3] - v[1]));
        dx += gr * ((1 - lerp[0]) * (v[1] - v[0]) + lerp[0] * (v[3] - v[2]));
    }
    float *ob = pst_tensor_f32(cc->out) + i * 4;
    double full_y = (double)(cc->g->h - 1), full_x = (double)(cc->g->w - 1);
    int one_y = cc->g->ch == 1, one_x = cc->g->cw == 1;
    ob[0] += (float)(dy * (one_y ? sy : full_y - sy));
    ob[2] += (float)(dy * sy);
    ob[1] += (float)(dx * (one_x ? sx : full_x - sx));
    ob[3] += (float)(dx * sx);
}

/* CropAndResizeGradImage(grads [N,h,w,C], boxes, box_ind, image_size [4]) -> T image. */
static int crop_grad_image_kernel(pst_kernel_ctx *c) {
    const pst_tensor *gr = c->inputs[0], *is = c->inputs[3];
    if (gr->shape.rank != 4 || is->n != 4)
        return pst_kctx_error(c, PST_E_INVALID, "grads must be 4-D and image_size have 4 values");
    crop_geom g = {pst_tensor_get_i64(is, 0), pst_tensor_get_i64(is, 1), pst_tensor_get_i64(is, 2),
                   pst_tensor_get_i64(is, 3), 0, gr->shape.dims[1], gr->shape.dims[2], 0};
    if (g.b <= 0 || g.h <= 0 || g.w <= 0 || g.c != gr->shape.dims[3])
        return pst_kctx_error(c, PST_E_INVALID, "image_size must be positive with grads' depth");
    if (crop_check(c, c->inputs[1], c->inputs[2], &g) < 0) return c->status->code;
    if (gr->shape.dims[0] != g.n)
        return pst_kctx_error(c, PST_E_INVALID, "grads and boxes differ in count");
    pst_tensor *o =
        pst_tensor_new_zeros(c->out_dtypes[0], pst_shape_4d(g.b, g.h, g.w, g.c), c->status);
    if (o == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, o);
    crop_ctx cc = {&g, NULL, gr, o, 0};
    crop_walk(&g, c->inputs[1], c->inputs[2], crop_grad_image_visit, &cc);
    return 0;
}

/* CropAndResizeGradBoxes(grads, image, boxes, box_ind) -> float [N, 4]. */
static int crop_grad_boxes_kernel(pst_kernel_ctx *c) {
    const pst_tensor *gr = c->inputs[0], *img = c->inputs[1];
    if (gr->shape.rank != 4 || img->shape.rank != 4 || gr->shape.dims[3] != img->shape.dims[3])
        return pst_kctx_error(c, PST_E_INVALID, "grads and image must be 4-D of one depth");
    crop_geom g = {img->shape.dims[0],
                   img->shape.dims[1],
                   img->shape.dims[2],
                   img->shape.dims[3],
                   0,
                   gr->shape.dims[1],
                   gr->shape.dims[2],
                   0};
    if (crop_check(c, c->inputs[2], c->inputs[3], &g) < 0) return c->status->code;
    if (g.nearest) return pst_kctx_error(c, PST_E_INVALID, "method must be bilinear");
    if (gr->shape.dims[0] != g.n)
        return pst_kctx_error(c, PST_E_INVALID, "grads and boxes differ in count");
    pst_tensor *o = pst_tensor_new_zeros(PST_FLOAT, pst_shape_2d(g.n, 4), c->status);
    if (o == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, o);
    crop_ctx cc = {&g, img, gr, o, 0};
    crop_walk(&g, c->inputs[2], c->inputs[3], crop_grad_boxes_visit, &cc);
    return 0;
}

static int crop_shape(pst_node *n, pst_status *st) {
    pst_shape img = pst_node_in_shape(n, 0), bx = pst_node_in_shape(n, 1);
    if (img.rank >= 0 && img.rank != 4)
        return pst_status_set(st, PST_E_INVALID, "image must be 4-D [batch, height, width, depth]");
    const pst_tensor *cs = pst_node_in_const(n, 3);
    pst_node_set_output(n, 0, PST_FLOAT,
                        pst_shape_4d(bx.rank == 2 ? bx.dims[0] : -1,
                                     cs && cs->n == 2 ? pst_tensor_get_i64(cs, 0) : -1,
                                     cs && cs->n == 2 ? pst_tensor_get_i64(cs, 1) : -1,
                                     img.rank == 4 ? img.dims[3] : -1));
    return 0;
}

static int crop_grad_image_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "T", PST_FLOAT);
    if (!pst_dtype_is_float(dt))
        return pst_status_set(st, PST_E_INVALID, "T must be float or double, got %s",
                              pst_dtype_name(dt));
    const pst_tensor *is = pst_node_in_const(n, 3);
    pst_shape s = pst_shape_4d(-1, -1, -1, -1);
    for (int k = 0; is && is->n == 4 && k < 4; k++) s.dims[k] = pst_tensor_get_i64(is, k);
    pst_node_set_output(n, 0, dt, s);
    return 0;
}

static int crop_grad_boxes_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape bx = pst_node_in_shape(n, 2);
    pst_node_set_output(n, 0, PST_FLOAT, pst_shape_2d(bx.rank == 2 ? bx.dims[0] : -1, 4));
    return 0;
}

/* image_grad.py's: GradImage for the image (float types), GradBoxes for the boxes. */
static int crop_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node_builder *b = pst_nb_new(g, "CropAndResizeGradImage", NULL);
    pst_nb_inputs(b, 4, (pst_output[]){dy[0], n->inputs[1], n->inputs[2],
                                       pst_shape_of(g, n->inputs[0], PST_INT32, NULL)});
    pst_nb_attr_type(b, "T", pst_output_dtype(n->inputs[0]));
    pst_nb_attr_s(b, "method", pst_node_attr_s(n, "method", "bilinear"));
    dx[0] = pst_nb_finish_out(b);
    b = pst_nb_new(g, "CropAndResizeGradBoxes", NULL);
    pst_nb_inputs(b, 4, (pst_output[]){dy[0], n->inputs[0], n->inputs[1], n->inputs[2]});
    pst_nb_attr_type(b, "T", pst_output_dtype(n->inputs[0]));
    dx[1] = pst_nb_finish_out(b);
    return 0;
}

/* ---- DrawBoundingBoxes(V2) ------------------------------------------------------------------ */
static const float draw_colors[10][4] = {{1, 1, 0, 1},   {0, 0, 1, 1},   {1, 0, 0, 1},
                                         {0, 1, 0, 1},   {0.5f, 0, 0.5f, 1}, {0.5f, 0.5f, 0, 1},
                                         {0.5f, 0, 0, 1}, {0, 0, 0.5f, 1}, {0, 1, 1, 1},
                                         {1, 0, 1, 1}};

/* Paints pixels (r, c0..c1) (a row) or (r0..r1, c) (a column) of image b in color col. */
static void paint(pst_tensor *o, int64_t b, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                  const float *col) {
    int64_t H = o->shape.dims[1], W = o->shape.dims[2], D = o->shape.dims[3];
    for (int64_t r = r0; r <= r1; r++)
        for (int64_t c = c0; c <= c1; c++)
            for (int64_t d = 0; d < D; d++)
                pst_tensor_set_f64(o, ((b * H + r) * W + c) * D + d, col[d]);
}

static int draw_kernel(pst_kernel_ctx *c) {
    const pst_tensor *img = c->inputs[0], *bx = c->inputs[1];
    if (img->shape.rank != 4 || bx->shape.rank != 3 || bx->shape.dims[2] != 4 ||
        img->shape.dims[0] != bx->shape.dims[0])
        return pst_kctx_error(c, PST_E_INVALID, "images must be [batch, h, w, depth] and boxes "
                              "[batch, n, 4] of the same batch");
    int64_t B = img->shape.dims[0], H = img->shape.dims[1], W = img->shape.dims[2];
    int64_t D = img->shape.dims[3], N = bx->shape.dims[1];
    if (D != 1 && D != 3 && D != 4)
        return pst_kctx_error(c, PST_E_INVALID, "depth %lld must be 1, 3 or 4", (long long)D);
    float table[10][4];
    memcpy(table, draw_colors, sizeof table);
    for (int i = 0; D == 1 && i < 10; i++) table[i][0] = 1;
    const float *colors = &table[0][0];
    int64_t n_colors = 10;
    if (c->n_inputs == 3) {
        const pst_tensor *ct = c->inputs[2];
        if (ct->shape.rank != 2 || ct->shape.dims[1] != 4)
            return pst_kctx_error(c, PST_E_INVALID, "colors must be [n, 4] (RGBA)");
        if (ct->n > 0) {
            if (ct->dtype != PST_FLOAT)
                return pst_kctx_error(c, PST_E_INVALID, "colors must be float32");
            colors = pst_tensor_f32(ct);
            n_colors = ct->shape.dims[0];
        }
    }
    pst_tensor *o = pst_tensor_clone(img, c->status);
    if (o == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, o);
    for (int64_t b = 0; b < B; b++)
        for (int64_t k = 0; k < N; k++) {
            int64_t e[4]; /* top, left, bottom, right */
            for (int j = 0; j < 4; j++)
                e[j] = (int64_t)((float)pst_tensor_get_f64(bx, (b * N + k) * 4 + j) *
                                 (float)((j % 2 ? W : H) - 1));
            if (e[0] > e[2] || e[1] > e[3] || e[0] >= H || e[2] < 0 || e[1] >= W || e[3] < 0)
                continue; /* inverted or wholly outside: not drawn, as TF */
            const float *col = colors + (k % n_colors) * 4;
            int64_t r0 = e[0] < 0 ? 0 : e[0], r1 = e[2] > H - 1 ? H - 1 : e[2];
            int64_t c0 = e[1] < 0 ? 0 : e[1], c1 = e[3] > W - 1 ? W - 1 : e[3];
            if (e[0] >= 0) paint(o, b, e[0], e[0], c0, c1, col);
            if (e[2] < H) paint(o, b, e[2], e[2], c0, c1, col);
            if (e[1] >= 0) paint(o, b, r0, r1, e[1], e[1], col);
            if (e[3] < W) paint(o, b, r0, r1, e[3], e[3], col);
        }
    return 0;
}

static int draw_shape(pst_node *n, pst_status *st) {
    if (!pst_dtype_is_float(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "images must be float");
    return pst_shape_same_as_input0(n, st);
}

/* ---- Registration ------------------------------------------------------------------------ */
static const pst_attr_spec nms_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                          {"iou_threshold", PST_ATTR_FLOAT, 0},
                                          {"pad_to_max_output_size", PST_ATTR_BOOL, 0},
                                          {0}};
static const pst_attr_spec crop_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                           {"method", PST_ATTR_STRING, 0},
                                           {"extrapolation_value", PST_ATTR_FLOAT, 0},
                                           {0}};
#define NMS(nm, nin, nout)                                                                        \
    {.name = nm, .min_inputs = nin, .max_inputs = nin, .n_outputs = nout, .attrs = nms_attrs,     \
     .shape = nms_shape, .kernel = nms_kernel, .flags = PST_OP_NOT_DIFFERENTIABLE}
static const pst_op_def detect_ops[] = {
    NMS("NonMaxSuppression", 3, 1),
    NMS("NonMaxSuppressionV2", 4, 1),
    NMS("NonMaxSuppressionV3", 5, 1),
    NMS("NonMaxSuppressionV4", 5, 2),
    NMS("NonMaxSuppressionV5", 6, 3),
    NMS("NonMaxSuppressionWithOverlaps", 5, 1),
    {.name = "CropAndResize", .min_inputs = 4, .max_inputs = 4, .n_outputs = 1, .attrs = crop_attrs,
     .shape = crop_shape, .kernel = crop_kernel, .grad = crop_grad},
    {.name = "CropAndResizeGradImage", .min_inputs = 4, .max_inputs = 4, .n_outputs = 1,
     .attrs = crop_attrs, .shape = crop_grad_image_shape, .kernel = crop_grad_image_kernel},
    {.name = "DrawBoundingBoxes", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = crop_attrs, .shape = draw_shape, .kernel = draw_kernel,
     .flags = PST_OP_NOT_DIFFERENTIABLE},
    {.name = "DrawBoundingBoxesV2", .min_inputs = 3, .max_inputs = 3, .n_outputs = 1,
     .attrs = crop_attrs, .shape = draw_shape, .kernel = draw_kernel,
     .flags = PST_OP_NOT_DIFFERENTIABLE},
    {.name = "CropAndResizeGradBoxes", .min_inputs = 4, .max_inputs = 4, .n_outputs = 1,
     .attrs = crop_attrs, .shape = crop_grad_boxes_shape, .kernel = crop_grad_boxes_kernel},
};

void pst__register_detect_ops(void) {
    for (size_t i = 0; i < sizeof detect_ops / sizeof detect_ops[0]; i++)
        pst_op_register(&detect_ops[i]);
}
