/* TF 0.x/1.0 batch normalization (issue 17): BatchNormWithGlobalNormalization(t, m, v, beta,
 * gamma) = (t - m) / sqrt(v + variance_epsilon) * gamma + beta over t's last (depth) dim, gamma
 * only with scale_after_normalization; and its gradient op
 * BatchNormWithGlobalNormalizationGrad(t, m, v, gamma, backprop) -> dx, dm, dv, db, dg with
 * TF's kernel formulas (s = 1 / sqrt(v + eps), g = gamma or 1, sums over all but depth):
 *   db = sum(dy); dx = dy g s; dm = -db g s; dg = sum(dy (t - m)) s (0 without scaling);
 *   dv = sum(dy (t - m)) g (-1/2) (v + eps)^(-3/2). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

static int is_grad(const pst_node *n) { return n->op->n_outputs == 5; }

static int bng_shape(pst_node *n, pst_status *st) {
    int grad = is_grad(n);
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (!pst_dtype_is_float(dt)) return pst_status_set(st, PST_E_INVALID, "t must be float or double, got %s", pst_dtype_name(dt));
    if (pst_shape_check_same_dtype(n, 0, 4, st) < 0) return PST_E_INVALID;
    pst_shape t = pst_node_in_shape(n, 0);
    char sx[128];
    if (t.rank >= 0 && t.rank != 4)
        return pst_status_set(st, PST_E_INVALID, "input must be 4-dimensional, got %s", pst_shape_str(&t, sx, sizeof sx));
    int64_t depth = t.rank == 4 ? t.dims[3] : -1;
    for (int i = 1; i < (grad ? 4 : 5); i++) {
        pst_shape p = pst_node_in_shape(n, i);
        if (p.rank >= 0 && (p.rank != 1 || (depth >= 0 && p.dims[0] >= 0 && p.dims[0] != depth)))
            return pst_status_set(st, PST_E_INVALID, "input %d %s must be a vector of the input's depth %lld", i,
                                  pst_shape_str(&p, sx, sizeof sx), (long long)depth);
    }
    if (grad) {
        pst_node_set_output(n, 0, dt, pst_node_in_shape(n, 4));
        for (int i = 1; i < 5; i++) pst_node_set_output(n, i, dt, pst_shape_1d(depth));
    } else {
        pst_node_set_output(n, 0, dt, t);
    }
    return 0;
}

static int bng_kernel(pst_kernel_ctx *c) {
    int grad = c->n_outputs == 5;
    const pst_tensor *t = c->inputs[0], *m = c->inputs[1], *v = c->inputs[2];
    const pst_tensor *gamma = c->inputs[grad ? 3 : 4], *beta = grad ? NULL : c->inputs[3];
    const pst_tensor *dy = grad ? c->inputs[4] : NULL;
    char sx[128];
    if (t->shape.rank != 4)
        return pst_kctx_error(c, PST_E_INVALID, "input must be 4-dimensional, got %s", pst_shape_str(&t->shape, sx, sizeof sx));
    int64_t depth = t->shape.dims[3], rows = depth ? t->n / depth : 0;
    for (int i = 1; i < (grad ? 4 : 5); i++)
        if (c->inputs[i]->shape.rank != 1 || c->inputs[i]->n != depth)
            return pst_kctx_error(c, PST_E_INVALID, "input %d must be a vector of the input's depth %lld", i, (long long)depth);
    if (dy && !pst_shape_equal(&dy->shape, &t->shape))
        return pst_kctx_error(c, PST_E_INVALID, "backprop must be shaped like the input");
    double eps = pst_kctx_attr_f(c, "variance_epsilon", 0);
    int scale = pst_kctx_attr_b(c, "scale_after_normalization", 0);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, t->dtype, t->shape);
    if (o == NULL) return c->status->code;
    if (!grad) {
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < depth; k++) {
                int64_t i = r * depth + k;
                double y = (pst_tensor_get_f64(t, i) - pst_tensor_get_f64(m, k)) / sqrt(pst_tensor_get_f64(v, k) + eps);
                if (scale) y *= pst_tensor_get_f64(gamma, k);
                pst_tensor_set_f64(o, i, y + pst_tensor_get_f64(beta, k));
            }
        return 0;
    }
    pst_tensor *out[4];
    for (int j = 0; j < 4; j++) {
        out[j] = pst_kctx_alloc_output(c, j + 1, t->dtype, pst_shape_1d(depth));
        if (out[j] == NULL) return c->status->code;
    }
    for (int64_t k = 0; k < depth; k++) {
        double db = 0, sxm = 0, mk = pst_tensor_get_f64(m, k), ve = pst_tensor_get_f64(v, k) + eps;
        double s = 1 / sqrt(ve), g = scale ? pst_tensor_get_f64(gamma, k) : 1;
        for (int64_t r = 0; r < rows; r++) {
            int64_t i = r * depth + k;
            double d = pst_tensor_get_f64(dy, i);
            db += d;
            sxm += d * (pst_tensor_get_f64(t, i) - mk);
            pst_tensor_set_f64(o, i, d * g * s);
        }
        pst_tensor_set_f64(out[0], k, -db * g * s);             /* dm */
        pst_tensor_set_f64(out[1], k, sxm * g * -0.5 * s / ve); /* dv */
        pst_tensor_set_f64(out[2], k, db);                      /* db */
        pst_tensor_set_f64(out[3], k, scale ? sxm * s : 0);     /* dg */
    }
    return 0;
}

static int bng_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node_builder *b = pst_nb_new(g, "BatchNormWithGlobalNormalizationGrad", NULL);
    pst_nb_inputs(b, 5, (pst_output[]){n->inputs[0], n->inputs[1], n->inputs[2], n->inputs[4], dy[0]});
    pst_nb_attr_type(b, "T", pst_node_in_dtype(n, 0));
    pst_nb_attr_f(b, "variance_epsilon", pst_node_attr_f(n, "variance_epsilon", 0));
    pst_nb_attr_b(b, "scale_after_normalization", pst_node_attr_b(n, "scale_after_normalization", 0));
    pst_node *gn = pst_nb_finish(b);
    if (gn == NULL) return pst_graph_error(g);
    for (int i = 0; i < 5; i++) dx[i] = pst_out(gn, i);
    return 0;
}

static const pst_attr_spec bng_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                          {"variance_epsilon", PST_ATTR_FLOAT, 1},
                                          {"scale_after_normalization", PST_ATTR_BOOL, 1},
                                          {0}};
static const pst_op_def bng_ops[] = {
    {.name = "BatchNormWithGlobalNormalization", .min_inputs = 5, .max_inputs = 5, .n_outputs = 1,
     .attrs = bng_attrs, .shape = bng_shape, .kernel = bng_kernel, .grad = bng_grad},
    {.name = "BatchNormWithGlobalNormalizationGrad", .min_inputs = 5, .max_inputs = 5, .n_outputs = 5,
     .attrs = bng_attrs, .shape = bng_shape, .kernel = bng_kernel},
};

void pst__register_bn_global_ops(void) {
    for (size_t i = 0; i < sizeof bng_ops / sizeof bng_ops[0]; i++) pst_op_register(&bng_ops[i]);
}
