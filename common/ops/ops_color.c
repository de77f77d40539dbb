/* Color ops of TF 1.x input pipelines (issue 17; tf.image.random_hue / random_saturation /
 * rgb_to_hsv): RGBToHSV, HSVToRGB, AdjustHue(images, delta), AdjustSaturation(images, scale),
 * on float or double images whose last dim is 3, with TF's conversions:
 *   v = max(r, g, b); range = v - min(r, g, b); s = range / v (0 for v = 0);
 *   h = (g - b) / (6 range) if r is the max, (b - r) / (6 range) + 1/3 if g is,
 *       (r - g) / (6 range) + 2/3 otherwise; 0 for range 0; h + 1 when negative;
 *   back: rgb = ((1 - s) + s clamp(|6h - 3| - 1), (1 - s) + s clamp(2 - |6h - 2|),
 *         (1 - s) + s clamp(2 - |6h - 4|)) v, clamp to [0, 1].
 * AdjustHue adds delta to h modulo 1; AdjustSaturation scales s, clamped to [0, 1]. None has a
 * gradient in TF 1.15. */
#include <math.h>
#include <string.h>

#include "op.h"
#include "ops.h"

static void rgb_to_hsv(double r, double g, double b, double *h, double *s, double *v) {
    double vv = fmax(r, fmax(g, b)), range = vv - fmin(r, fmin(g, b));
    *s = vv > 0 ? range / vv : 0;
    double norm = 1.0 / (6.0 * range), hh;
    if (r == vv)
        hh = norm * (g - b);
    else if (g == vv)
        hh = norm * (b - r) + 2.0 / 6.0;
    else
        hh = norm * (r - g) + 4.0 / 6.0;
    if (!(range > 0)) hh = 0;
    if (hh < 0) hh += 1;
    *h = hh, *v = vv;
}

static double clamp01(double x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

static void hsv_to_rgb(double h, double s, double v, double *r, double *g, double *b) {
    double dh = h * 6, one_s = 1 - s;
    *r = (one_s + s * clamp01(fabs(dh - 3) - 1)) * v;
    *g = (one_s + s * clamp01(2 - fabs(dh - 2))) * v;
    *b = (one_s + s * clamp01(2 - fabs(dh - 4))) * v;
}

enum { C_RGB2HSV, C_HSV2RGB, C_HUE, C_SAT };

static int color_code(const pst_op_def *op) {
    return !strcmp(op->name, "RGBToHSV") ? C_RGB2HSV : !strcmp(op->name, "HSVToRGB") ? C_HSV2RGB
           : !strcmp(op->name, "AdjustHue") ? C_HUE : C_SAT;
}

static int color_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int code = color_code(c->op);
    char s[128];
    if (x->shape.rank < 1 || x->shape.dims[x->shape.rank - 1] != 3)
        return pst_kctx_error(c, PST_E_INVALID, "the last dimension must be 3 (channels), got %s",
                              pst_shape_str(&x->shape, s, sizeof s));
    double arg = 0;
    if (code >= C_HUE) {
        if (c->inputs[1]->n != 1) return pst_kctx_error(c, PST_E_INVALID, "%s must be a scalar", code == C_HUE ? "delta" : "scale");
        arg = pst_tensor_get_f64(c->inputs[1], 0);
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    for (int64_t p = 0; p < x->n / 3; p++) {
        double a = pst_tensor_get_f64(x, 3 * p), b = pst_tensor_get_f64(x, 3 * p + 1), d = pst_tensor_get_f64(x, 3 * p + 2);
        double h, sat, v, out[3];
        if (code == C_HSV2RGB) {
            hsv_to_rgb(a, b, d, &out[0], &out[1], &out[2]);
        } else {
            rgb_to_hsv(a, b, d, &h, &sat, &v);
            if (code == C_RGB2HSV) {
                out[0] = h, out[1] = sat, out[2] = v;
            } else {
                if (code == C_HUE) {
                    h = fmod(h + arg, 1.0);
                    if (h < 0) h += 1;
                } else {
                    sat = clamp01(sat * arg);
                }
                hsv_to_rgb(h, sat, v, &out[0], &out[1], &out[2]);
            }
        }
        for (int k = 0; k < 3; k++) pst_tensor_set_f64(o, 3 * p + k, out[k]);
    }
    return 0;
}

static int color_shape(pst_node *n, pst_status *st) {
    pst_shape x = pst_node_in_shape(n, 0);
    char s[128];
    if (!pst_dtype_is_float(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "images must be float or double, got %s", pst_dtype_name(pst_node_in_dtype(n, 0)));
    if (x.rank == 0 || (x.rank > 0 && x.dims[x.rank - 1] >= 0 && x.dims[x.rank - 1] != 3))
        return pst_status_set(st, PST_E_INVALID, "the last dimension must be 3 (channels), got %s", pst_shape_str(&x, s, sizeof s));
    if (color_code(n->op) >= C_HUE && pst_node_in_shape(n, 1).rank > 0)
        return pst_status_set(st, PST_E_INVALID, "the second input must be a scalar");
    return pst_shape_same_as_input0(n, st);
}

static const pst_attr_spec color_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_op_def color_ops[] = {
    {.name = "RGBToHSV", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = color_attrs,
     .shape = color_shape, .kernel = color_kernel},
    {.name = "HSVToRGB", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, .attrs = color_attrs,
     .shape = color_shape, .kernel = color_kernel},
    {.name = "AdjustHue", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, .attrs = color_attrs,
     .shape = color_shape, .kernel = color_kernel},
    {.name = "AdjustSaturation", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, .attrs = color_attrs,
     .shape = color_shape, .kernel = color_kernel},
};

void pst__register_color_ops(void) {
    for (size_t i = 0; i < sizeof color_ops / sizeof color_ops[0]; i++) pst_op_register(&color_ops[i]);
}
