/* More TF 1.x ops (issue 17), TF 1.15's kernel semantics:
 *   ParallelConcat(values..., shape attr): the values (each of first dim 1) joined along dim 0
 *     (tf.parallel_stack); the output must have the `shape` attr's dims.
 *   CompareAndBitpack(input [..., 8k], threshold) -> uint8 [..., k]: bit 7 - j of byte i is
 *     input[8i + j] > threshold (for bool input: input[8i + j] itself).
 *   AdjustContrast(images [..., h, w, c], contrast_factor, min_value, max_value) -> float
 *     (TF 0.x): per image and channel, (x - mean) * factor + mean, clipped to [min, max].
 *   CumulativeLogsumexp(x, axis; exclusive, reverse): log(sum exp) of the running prefix
 *     (or suffix), shifted by its maximum; an empty exclusive prefix is -inf. With
 *     math_grad.py's gradient. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

/* ---- ParallelConcat -------------------------------------------------------------------- */
static int pconcat_shape(pst_node *n, pst_status *st) {
    if (pst_shape_check_same_dtype(n, 0, n->n_inputs - 1, st) < 0) return PST_E_INVALID;
    const pst_attr *s = pst_node_attr(n, "shape");
    pst_shape out = s && s->kind == PST_ATTR_SHAPE ? s->v.shape : pst_shape_unknown();
    if (out.rank >= 1 && out.dims[0] >= 0 && out.dims[0] != n->n_inputs)
        return pst_status_set(st, PST_E_INVALID, "shape's first dim %lld is not the %d values",
                              (long long)out.dims[0], n->n_inputs);
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), out);
    return 0;
}

static int pconcat_kernel(pst_kernel_ctx *c) {
    const pst_tensor *v0 = c->inputs[0];
    char a[128], b[128];
    for (int i = 0; i < c->n_inputs; i++) {
        const pst_tensor *v = c->inputs[i];
        if (v->shape.rank < 1 || v->shape.dims[0] != 1 || !pst_shape_equal(&v->shape, &v0->shape))
            return pst_kctx_error(c, PST_E_INVALID, "value %d is %s: each must be %s with a first "
                                  "dim of 1", i, pst_shape_str(&v->shape, a, sizeof a),
                                  pst_shape_str(&v0->shape, b, sizeof b));
    }
    pst_shape os = v0->shape;
    os.dims[0] = c->n_inputs;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, v0->dtype, os);
    if (o == NULL) return c->status->code;
    for (int i = 0; i < c->n_inputs; i++)
        if (pst_tensor_copy_elems(o, i * v0->n, c->inputs[i], 0, v0->n, c->status) < 0)
            return c->status->code;
    return 0;
}

/* ---- CompareAndBitpack ------------------------------------------------------------------ */
static int bitpack_shape(pst_node *n, pst_status *st) {
    pst_shape s = pst_node_in_shape(n, 0);
    if (s.rank == 0) return pst_status_set(st, PST_E_INVALID, "input must be at least a vector");
    if (s.rank > 0 && s.dims[s.rank - 1] >= 0) {
        if (s.dims[s.rank - 1] % 8)
            return pst_status_set(st, PST_E_INVALID, "the last dim %lld is not a multiple of 8",
                                  (long long)s.dims[s.rank - 1]);
        s.dims[s.rank - 1] /= 8;
    }
    pst_node_set_output(n, 0, PST_UINT8, s);
    return 0;
}

static int bitpack_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    if (x->shape.rank < 1 || x->shape.dims[x->shape.rank - 1] % 8)
        return pst_kctx_error(c, PST_E_INVALID, "input's last dim must be a multiple of 8");
    pst_shape os = x->shape;
    os.dims[os.rank - 1] /= 8;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_UINT8, os);
    if (o == NULL) return c->status->code;
    double thr = pst_tensor_get_f64(c->inputs[1], 0);
    for (int64_t i = 0; i < o->n; i++) {
        uint8_t byte = 0;
        for (int j = 0; j < 8; j++) {
            double v = pst_tensor_get_f64(x, i * 8 + j);
            byte = (uint8_t)(byte << 1 | (x->dtype == PST_BOOL ? v != 0 : v > thr));
        }
        pst_tensor_u8(o)[i] = byte;
    }
    return 0;
}

/* ---- AdjustContrast (TF 0.x) -------------------------------------------------------------- */
static int contrast_shape(pst_node *n, pst_status *st) {
    pst_shape s = pst_node_in_shape(n, 0);
    if (s.rank >= 0 && s.rank < 3)
        return pst_status_set(st, PST_E_INVALID,
                              "images must be at least 3-D [height, width, channels]");
    pst_node_set_output(n, 0, PST_FLOAT, s);
    return 0;
}

static int contrast_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    for (int i = 1; i < 4; i++)
        if (c->inputs[i]->n != 1)
            return pst_kctx_error(c, PST_E_INVALID, "input %d must be a scalar", i);
    if (x->shape.rank < 3) return pst_kctx_error(c, PST_E_INVALID, "images must be at least 3-D");
    double f = pst_tensor_get_f64(c->inputs[1], 0), lo = pst_tensor_get_f64(c->inputs[2], 0),
           hi = pst_tensor_get_f64(c->inputs[3], 0);
    int r = x->shape.rank;
    int64_t ch = x->shape.dims[r - 1], px = x->shape.dims[r - 2] * x->shape.dims[r - 3];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_FLOAT, x->shape);
    if (o == NULL) return c->status->code;
    int64_t per = px * ch, images = per ? x->n / per : 0;
    for (int64_t im = 0; im < images; im++)
        for (int64_t k = 0; k < ch; k++) {
            double mean = 0;
            for (int64_t p = 0; p < px; p++) mean += pst_tensor_get_f64(x, im * per + p * ch + k);
            mean /= (double)(px ? px : 1);
            for (int64_t p = 0; p < px; p++) {
                int64_t at = im * per + p * ch + k;
                double v = (pst_tensor_get_f64(x, at) - mean) * f + mean;
                pst_tensor_f32(o)[at] = (float)(v < lo ? lo : v > hi ? hi : v);
            }
        }
    return 0;
}

/* ---- CumulativeLogsumexp ---------------------------------------------------------------- */
static int cumlse_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int r = x->shape.rank;
    int64_t ax = pst_tensor_get_i64(c->inputs[1], 0);
    if (r < 1 || ax < -r || ax >= r)
        return pst_kctx_error(c, PST_E_INVALID, "axis %lld is out of range for rank %d",
                              (long long)ax, r);
    if (ax < 0) ax += r;
    int excl = pst_kctx_attr_b(c, "exclusive", 0), rev = pst_kctx_attr_b(c, "reverse", 0);
    int64_t len = x->shape.dims[ax], inner = 1;
    for (int d = (int)ax + 1; d < r; d++) inner *= x->shape.dims[d];
    int64_t outer = len * inner != 0 ? x->n / (len * inner) : 0;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    for (int64_t a = 0; a < outer; a++)
        for (int64_t in = 0; in < inner; in++) {
            double acc = -INFINITY; /* log of the running sum */
            for (int64_t k = 0; k < len; k++) {
                int64_t i = rev ? len - 1 - k : k, at = (a * len + i) * inner + in;
                double v = pst_tensor_get_f64(x, at);
                if (excl) pst_tensor_set_f64(o, at, acc);
                double m = fmax(acc, v);
                acc = isinf(m) && m < 0 ? m : m + log(exp(acc - m) + exp(v - m));
                if (!excl) pst_tensor_set_f64(o, at, acc);
            }
        }
    return 0;
}

static int cumlse_shape(pst_node *n, pst_status *st) {
    if (!pst_dtype_is_float(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "CumulativeLogsumexp takes float or double");
    return pst_shape_same_as_input0(n, st);
}

static pst_output cumlse(pst_graph *g, const pst_node *n, pst_output x, int reverse) {
    pst_node_builder *b = pst_nb_new(g, "CumulativeLogsumexp", NULL);
    pst_nb_input(b, x);
    pst_nb_input(b, n->inputs[1]);
    pst_nb_attr_type(b, "T", pst_output_dtype(x));
    pst_nb_attr_b(b, "exclusive", pst_node_attr_b(n, "exclusive", 0));
    pst_nb_attr_b(b, "reverse", reverse);
    return pst_nb_finish_out(b);
}

/* math_grad.py's: dy split into its positive and negative parts, each taken to log space:
 *   dx = exp(cumlse(log(dy+) - y, !reverse) + x) - exp(cumlse(log(dy-) - y, !reverse) + x),
 * with the type's lowest value where a part is empty. */
static int cumlse_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output x = n->inputs[0], y = pst_out(n, 0), d = dy[0];
    pst_dtype dt = pst_output_dtype(x);
    int rev = pst_node_attr_b(n, "reverse", 0);
    pst_output zero = pst_zeros_like(g, d, NULL);
    pst_output lowest = pst_add(
        g, zero, pst_const_scalar(g, dt, dt == PST_FLOAT ? -FLT_MAX : -DBL_MAX, NULL), NULL);
    pst_output part[2];
    for (int k = 0; k < 2; k++) {
        pst_output mask = k == 0 ? pst_greater(g, d, zero, NULL) : pst_less(g, d, zero, NULL);
        pst_output mag = k == 0 ? d : pst_neg(g, d, NULL);
        pst_output safe = pst_select(g, mask, mag, pst_ones_like(g, d, NULL), NULL);
        pst_output logd = pst_select(g, mask, pst_log(g, safe, NULL), lowest, NULL);
        part[k] =
            pst_exp(g, pst_add(g, cumlse(g, n, pst_sub(g, logd, y, NULL), !rev), x, NULL), NULL);
    }
    dx[0] = pst_sub(g, part[0], part[1], NULL);
    return 0;
}

/* ---- Registration ------------------------------------------------------------------------ */
static const pst_attr_spec misc_attrs[] = {
    {"T", PST_ATTR_TYPE, 0},         {"N", PST_ATTR_INT, 0},         {"shape", PST_ATTR_SHAPE, 0},
    {"Tidx", PST_ATTR_TYPE, 0},      {"exclusive", PST_ATTR_BOOL, 0}, {"reverse", PST_ATTR_BOOL, 0},
    {0}};
#define MISC(nm, lo, hi, sh, k, g, fl)                                                            \
    {.name = nm, .min_inputs = lo, .max_inputs = hi, .n_outputs = 1, .attrs = misc_attrs,         \
     .shape = sh, .kernel = k, .grad = g, .flags = fl}
static const pst_op_def misc_tf_ops[] = {
    MISC("ParallelConcat", 1, 1 << 16, pconcat_shape, pconcat_kernel, NULL, PST_OP_STRINGS),
    MISC("CompareAndBitpack", 2, 2, bitpack_shape, bitpack_kernel, NULL, PST_OP_NOT_DIFFERENTIABLE),
    MISC("AdjustContrast", 4, 4, contrast_shape, contrast_kernel, NULL, PST_OP_NOT_DIFFERENTIABLE),
    MISC("CumulativeLogsumexp", 2, 2, cumlse_shape, cumlse_kernel, cumlse_grad, 0),
};

void pst__register_misc_tf_ops(void) {
    for (size_t i = 0; i < sizeof misc_tf_ops / sizeof misc_tf_ops[0]; i++)
        pst_op_register(&misc_tf_ops[i]);
}
