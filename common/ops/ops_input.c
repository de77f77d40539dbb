/* Ops TF 1 input pipelines apply to what their readers produce: StringToNumber (labels read
 * as text) and AdjustContrastv2 (tf.image.random_contrast of the CIFAR-10 tutorial's
 * distorted inputs). (SparseToDense, for tf.sparse_tensor_to_dense of a VarLenFeature, is in
 * ops_array_more.c.) */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

/* ---- StringToNumber(strings) -> out_type ------------------------------------------------ */
static int string_to_number_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "out_type", PST_FLOAT);
    if (dt != PST_FLOAT && dt != PST_DOUBLE && dt != PST_INT32 && dt != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "out_type %s is not a number type",
                              pst_dtype_name(dt));
    if (pst_node_in_dtype(n, 0) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "input 0 is not a string tensor");
    pst_node_set_output(n, 0, dt, pst_node_in_shape(n, 0));
    return 0;
}

static int string_to_number_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    pst_dtype dt = c->out_dtypes[0];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, dt, x->shape);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < x->n; i++) {
        const char *s = pst_tensor_str(x)[i].p ? pst_tensor_str(x)[i].p : "";
        char *end;
        errno = 0;
        int ok;
        if (dt == PST_FLOAT || dt == PST_DOUBLE) {
            double v = strtod(s, &end);
            ok = end != s && *end == '\0';
            if (ok) pst_tensor_set_f64(o, i, v);
        } else {
            long long v = strtoll(s, &end, 10);
            ok = end != s && *end == '\0' && errno == 0 &&
                 (dt == PST_INT64 || (v >= INT32_MIN && v <= INT32_MAX));
            if (ok && dt == PST_INT32) pst_tensor_i32(o)[i] = (int32_t)v;
            if (ok && dt == PST_INT64) pst_tensor_i64(o)[i] = v;
        }
        if (!ok)
            return pst_kctx_error(c, PST_E_INVALID, "StringToNumber could not correctly convert "
                                  "string: '%s' (element %lld) to %s", s, (long long)i,
                                  pst_dtype_name(dt));
    }
    return 0;
}

/* ---- AdjustContrastv2(images [..., h, w, c], factor) ------------------------------------ */
/* Per image and channel: (x - mean over h and w) * factor + mean. */
static int adjust_contrast_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    if (x->shape.rank < 3 || c->inputs[1]->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "images must be [..., height, width, channels] "
                              "and contrast_factor a scalar");
    double f = pst_tensor_get_f64(c->inputs[1], 0);
    int r = x->shape.rank;
    int64_t ch = x->shape.dims[r - 1], hw = x->shape.dims[r - 2] * x->shape.dims[r - 3];
    int64_t imgs = (hw * ch) != 0 ? x->n / (hw * ch) : 0;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    for (int64_t b = 0; b < imgs; b++)
        for (int64_t k = 0; k < ch; k++) {
            double mean = 0;
            for (int64_t p = 0; p < hw; p++) mean += pst_tensor_get_f64(x, (b * hw + p) * ch + k);
            mean /= (double)hw;
            for (int64_t p = 0; p < hw; p++) {
                int64_t i = (b * hw + p) * ch + k;
                pst_tensor_set_f64(o, i, (pst_tensor_get_f64(x, i) - mean) * f + mean);
            }
        }
    return 0;
}

static int adjust_contrast_shape(pst_node *n, pst_status *st) {
    if (!pst_dtype_is_float(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "images must be float");
    return pst_shape_same_as_input0(n, st);
}

static const pst_attr_spec s2n_attrs[] = {{"out_type", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec t_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};

static const pst_op_def input_ops[] = {
    {.name = "StringToNumber", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = s2n_attrs, .shape = string_to_number_shape, .kernel = string_to_number_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "AdjustContrastv2", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = t_attrs, .shape = adjust_contrast_shape, .kernel = adjust_contrast_kernel,
     .flags = PST_OP_NOT_DIFFERENTIABLE},
};

void pst__register_input_ops(void) {
    for (size_t i = 0; i < sizeof input_ops / sizeof input_ops[0]; i++)
        pst_op_register(&input_ops[i]);
}
