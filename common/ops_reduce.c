/* Reductions (Sum, Mean, Max, Min, Prod), ArgMax/ArgMin, and the gradient helpers
 * PstReduceToShapeOf and PstReduceGrad (see ops_math.h). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_ew.h"
#include "op.h"
#include "ops.h"

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD };

typedef struct reduce_op {
    pst_op_def def;
    int mode;
} reduce_op;

/* Marks reduced dims from an axes tensor; errors name the bad axis. */
static int axes_mask(const pst_tensor *axes, int rank, int *reduced, pst_status *st) {
    for (int d = 0; d < rank; d++) reduced[d] = 0;
    for (int64_t i = 0; i < axes->n; i++) {
        int64_t a = pst_tensor_get_i64(axes, i);
        if (a < -rank || a >= rank)
            return pst_status_set(st, PST_E_INVALID, "axis %lld is out of range for rank %d",
                                  (long long)a, rank);
        reduced[a < 0 ? a + rank : a] = 1;
    }
    return 0;
}

static pst_shape reduced_shape(const pst_shape *in, const int *reduced, int keep) {
    pst_shape o = {0};
    for (int d = 0; d < in->rank; d++) {
        if (!reduced[d])
            o.dims[o.rank++] = in->dims[d];
        else if (keep)
            o.dims[o.rank++] = 1;
    }
    return o;
}

static int reduce_shape(pst_node *n, pst_status *st) {
    pst_shape in = pst_node_in_shape(n, 0);
    pst_dtype dt = pst_node_in_dtype(n, 0);
    int keep = pst_node_attr_b(n, "keep_dims", 0);
    if (dt == PST_BOOL) return pst_status_set(st, PST_E_INVALID, "cannot reduce bool tensors");
    const pst_tensor *axes = pst_node_in_const(n, 1);
    if (in.rank < 0 || axes == NULL) {
        pst_shape o = pst_shape_unknown();
        if (keep && in.rank >= 0) {
            o = in;
            for (int d = 0; d < o.rank; d++) o.dims[d] = -1;
        }
        pst_node_set_output(n, 0, dt, o);
        return 0;
    }
    int reduced[PST_MAX_RANK];
    if (axes_mask(axes, in.rank, reduced, st) < 0) return PST_E_INVALID;
    pst_node_set_output(n, 0, dt, reduced_shape(&in, reduced, keep));
    return 0;
}

/* out[p] = reduction over the elements that map to p. */
static void reduce_f32(const pst_reduce_plan *p, const float *in, float *out, int mode) {
    float init = mode == R_MAX ? -INFINITY : mode == R_MIN ? INFINITY : mode == R_PROD ? 1.0f : 0.0f;
    for (int64_t i = 0; i < p->out_n; i++) out[i] = init;
    if (p->contiguous) {
        int64_t R = p->r, K = p->inner;
        for (int64_t o = 0; o < p->outer; o++) {
            float *dst = out + o * K;
            const float *src = in + o * R * K;
            if (K == 1) {
                float acc = init;
                switch (mode) {
                case R_MAX: for (int64_t r = 0; r < R; r++) acc = src[r] > acc ? src[r] : acc; break;
                case R_MIN: for (int64_t r = 0; r < R; r++) acc = src[r] < acc ? src[r] : acc; break;
                case R_PROD: for (int64_t r = 0; r < R; r++) acc *= src[r]; break;
                default: for (int64_t r = 0; r < R; r++) acc += src[r]; break;
                }
                dst[0] = acc;
                continue;
            }
            for (int64_t r = 0; r < R; r++) {
                const float *row = src + r * K;
                switch (mode) {
                case R_MAX: for (int64_t k = 0; k < K; k++) dst[k] = row[k] > dst[k] ? row[k] : dst[k]; break;
                case R_MIN: for (int64_t k = 0; k < K; k++) dst[k] = row[k] < dst[k] ? row[k] : dst[k]; break;
                case R_PROD: for (int64_t k = 0; k < K; k++) dst[k] *= row[k]; break;
                default: for (int64_t k = 0; k < K; k++) dst[k] += row[k]; break;
                }
            }
        }
    } else {
        int64_t *map = pst_reduce_index_map(p);
        int64_t n = p->outer * p->r * p->inner;
        for (int64_t i = 0; i < n; i++) {
            float *d = &out[map[i]];
            switch (mode) {
            case R_MAX: if (in[i] > *d) *d = in[i]; break;
            case R_MIN: if (in[i] < *d) *d = in[i]; break;
            case R_PROD: *d *= in[i]; break;
            default: *d += in[i]; break;
            }
        }
        free(map);
    }
}

static void reduce_generic(const pst_reduce_plan *p, const pst_tensor *in, pst_tensor *out,
                           int mode) {
    int64_t *map = pst_reduce_index_map(p);
    double *acc = malloc((size_t)(p->out_n + 1) * sizeof *acc);
    double init = mode == R_MAX ? -INFINITY : mode == R_MIN ? INFINITY : mode == R_PROD ? 1 : 0;
    for (int64_t i = 0; i < p->out_n; i++) acc[i] = init;
    for (int64_t i = 0; i < in->n; i++) {
        double v = pst_tensor_get_f64(in, i), *d = &acc[map[i]];
        switch (mode) {
        case R_MAX: if (v > *d) *d = v; break;
        case R_MIN: if (v < *d) *d = v; break;
        case R_PROD: *d *= v; break;
        default: *d += v; break;
        }
    }
    for (int64_t i = 0; i < p->out_n; i++) pst_tensor_set_f64(out, i, acc[i]);
    free(acc);
    free(map);
}

static int reduce_kernel(pst_kernel_ctx *c) {
    int mode = ((const reduce_op *)c->op)->mode;
    const pst_tensor *x = c->inputs[0];
    int reduced[PST_MAX_RANK];
    if (axes_mask(c->inputs[1], x->shape.rank, reduced, c->status) < 0) return c->status->code;
    int keep = pst_kctx_attr_b(c, "keep_dims", 0);
    pst_reduce_plan p;
    pst_reduce_plan_make(&x->shape, reduced, &p);
    if ((mode == R_MAX || mode == R_MIN) && p.r == 0 && p.out_n > 0)
        return pst_kctx_error(c, PST_E_INVALID, "cannot take the max/min over an empty axis");
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, reduced_shape(&x->shape, reduced, keep));
    if (o == NULL) return c->status->code;
    int64_t count = p.r;
    if (x->dtype == PST_FLOAT) {
        reduce_f32(&p, pst_tensor_f32(x), pst_tensor_f32(o), mode == R_MEAN ? R_SUM : mode);
        if (mode == R_MEAN && count > 0) {
            float k = 1.0f / (float)count, *d = pst_tensor_f32(o);
            for (int64_t i = 0; i < o->n; i++) d[i] *= k;
        }
    } else {
        reduce_generic(&p, x, o, mode == R_MEAN ? R_SUM : mode);
        if (mode == R_MEAN && count > 0)
            for (int64_t i = 0; i < o->n; i++)
                pst_tensor_set_f64(o, i, pst_tensor_get_f64(o, i) / (double)count);
    }
    return 0;
}

/* ---- Gradient helper ops --------------------------------------------------------------- */

/* PstReduceGrad(dy, x[, y]): x-shaped gradient of a reduction over the dims in attr
 * `reduced` (bitmask); mode as the forward op. */
static int reduce_grad_kernel(pst_kernel_ctx *c) {
    const pst_tensor *dy = c->inputs[0], *x = c->inputs[1];
    const pst_tensor *y = c->n_inputs > 2 ? c->inputs[2] : NULL;
    int mode = (int)pst_kctx_attr_i(c, "mode", R_SUM);
    int64_t mask = pst_kctx_attr_i(c, "reduced", 0);
    int reduced[PST_MAX_RANK];
    for (int d = 0; d < x->shape.rank; d++) reduced[d] = (int)((mask >> d) & 1);
    pst_reduce_plan p;
    pst_reduce_plan_make(&x->shape, reduced, &p);
    if (dy->n != p.out_n)
        return pst_kctx_error(c, PST_E_INVALID, "gradient has %lld elements, expected %lld",
                              (long long)dy->n, (long long)p.out_n);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    int64_t *map = pst_reduce_index_map(&p);
    double scale = mode == R_MEAN && p.r > 0 ? 1.0 / (double)p.r : 1.0;
    if ((mode == R_SUM || mode == R_MEAN) && x->dtype == PST_FLOAT) {
        const float *d = pst_tensor_f32(dy);
        float *out = pst_tensor_f32(o), k = (float)scale;
        for (int64_t i = 0; i < x->n; i++) out[i] = d[map[i]] * k;
    } else if (mode == R_MAX || mode == R_MIN) {
        /* Ties share the gradient equally. */
        double *cnt = calloc((size_t)p.out_n + 1, sizeof *cnt);
        for (int64_t i = 0; i < x->n; i++)
            if (pst_tensor_get_f64(x, i) == pst_tensor_get_f64(y, map[i])) cnt[map[i]] += 1;
        for (int64_t i = 0; i < x->n; i++) {
            int64_t m = map[i];
            double v = pst_tensor_get_f64(x, i) == pst_tensor_get_f64(y, m)
                           ? pst_tensor_get_f64(dy, m) / cnt[m]
                           : 0;
            pst_tensor_set_f64(o, i, v);
        }
        free(cnt);
    } else if (mode == R_PROD) {
        for (int64_t i = 0; i < x->n; i++)
            pst_tensor_set_f64(o, i, pst_tensor_get_f64(dy, map[i]) *
                                         pst_tensor_get_f64(y, map[i]) / pst_tensor_get_f64(x, i));
    } else {
        for (int64_t i = 0; i < x->n; i++)
            pst_tensor_set_f64(o, i, pst_tensor_get_f64(dy, map[i]) * scale);
    }
    free(map);
    return 0;
}

static int reduce_grad_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 1));
    return 0;
}

static int reduce_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int mode = ((const reduce_op *)n->op)->mode;
    const pst_tensor *axes = pst_node_in_const(n, 1);
    pst_shape in = pst_node_in_shape(n, 0);
    if (axes == NULL || in.rank < 0)
        return pst_graph_set_error(g, PST_E_UNIMPLEMENTED,
                                   "gradient of '%s' needs constant axes and a known rank",
                                   n->name);
    int reduced[PST_MAX_RANK];
    pst_status st = {0};
    if (axes_mask(axes, in.rank, reduced, &st) < 0)
        return pst_graph_set_error(g, st.code, "%s", st.msg);
    int64_t mask = 0;
    for (int d = 0; d < in.rank; d++) mask |= (int64_t)reduced[d] << d;
    pst_node_builder *b = pst_nb_new(g, "PstReduceGrad", NULL);
    pst_nb_input(b, dy[0]);
    pst_nb_input(b, n->inputs[0]);
    if (mode == R_MAX || mode == R_MIN || mode == R_PROD) pst_nb_input(b, pst_out(n, 0));
    pst_nb_attr_i(b, "mode", mode);
    pst_nb_attr_i(b, "reduced", mask);
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

/* PstReduceToShapeOf(dy, x): sums dy over the dims along which x was broadcast. */
static int rts_kernel(pst_kernel_ctx *c) {
    const pst_tensor *dy = c->inputs[0], *x = c->inputs[1];
    if (pst_shape_equal(&dy->shape, &x->shape)) {
        pst_kctx_set_output(c, 0, pst_tensor_ref(c->inputs[0]));
        return 0;
    }
    int r = dy->shape.rank, rx = x->shape.rank;
    if (rx > r) return pst_kctx_error(c, PST_E_INVALID, "cannot reduce rank %d to rank %d", r, rx);
    int reduced[PST_MAX_RANK];
    for (int d = 0; d < r; d++) {
        int dx = d - (r - rx);
        int64_t xd = dx >= 0 ? x->shape.dims[dx] : 1;
        if (xd != 1 && xd != dy->shape.dims[d])
            return pst_kctx_error(c, PST_E_INVALID, "gradient dim %d is %lld, input's is %lld", d,
                                  (long long)dy->shape.dims[d], (long long)xd);
        reduced[d] = xd == 1 && dy->shape.dims[d] != 1;
        if (dx < 0) reduced[d] = 1;
    }
    pst_reduce_plan p;
    pst_reduce_plan_make(&dy->shape, reduced, &p);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, dy->dtype, x->shape);
    if (o == NULL) return c->status->code;
    if (dy->dtype == PST_FLOAT)
        reduce_f32(&p, pst_tensor_f32(dy), pst_tensor_f32(o), R_SUM);
    else
        reduce_generic(&p, dy, o, R_SUM);
    return 0;
}

static int rts_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_node_in_shape(n, 1));
    return 0;
}

pst_output pst_reduce_to_shape_of(pst_graph *g, pst_output dy, pst_output x, const char *name) {
    pst_node_builder *b = pst_nb_new(g, "PstReduceToShapeOf", name);
    pst_nb_input(b, dy);
    pst_nb_input(b, x);
    return pst_nb_finish_out(b);
}

/* ---- ArgMax / ArgMin ------------------------------------------------------------------- */

static int arg_shape(pst_node *n, pst_status *st) {
    pst_shape in = pst_node_in_shape(n, 0);
    pst_dtype ot = pst_node_attr_type(n, "output_type", PST_INT64);
    const pst_tensor *ax = pst_node_in_const(n, 1);
    if (in.rank < 0 || ax == NULL) {
        pst_node_set_output(n, 0, ot, pst_shape_unknown());
        return 0;
    }
    int64_t a = pst_tensor_get_i64(ax, 0);
    if (a < -in.rank || a >= in.rank)
        return pst_status_set(st, PST_E_INVALID, "axis %lld is out of range for rank %d",
                              (long long)a, in.rank);
    int reduced[PST_MAX_RANK] = {0};
    reduced[a < 0 ? a + in.rank : a] = 1;
    pst_node_set_output(n, 0, ot, reduced_shape(&in, reduced, 0));
    return 0;
}

static int arg_kernel(pst_kernel_ctx *c) {
    int is_max = strcmp(c->op->name, "ArgMax") == 0;
    const pst_tensor *x = c->inputs[0];
    int rank = x->shape.rank;
    int64_t a = pst_tensor_get_i64(c->inputs[1], 0);
    if (a < -rank || a >= rank)
        return pst_kctx_error(c, PST_E_INVALID, "axis %lld is out of range for rank %d",
                              (long long)a, rank);
    if (a < 0) a += rank;
    int reduced[PST_MAX_RANK] = {0};
    reduced[a] = 1;
    pst_reduce_plan p;
    pst_reduce_plan_make(&x->shape, reduced, &p);
    if (p.r == 0) return pst_kctx_error(c, PST_E_INVALID, "argmax over an empty axis");
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->out_dtypes[0], reduced_shape(&x->shape, reduced, 0));
    if (o == NULL) return c->status->code;
    for (int64_t out = 0; out < p.outer; out++)
        for (int64_t k = 0; k < p.inner; k++) {
            int64_t best = 0;
            if (x->dtype == PST_FLOAT) {
                const float *src = pst_tensor_f32(x) + out * p.r * p.inner + k;
                float bv = src[0];
                for (int64_t r = 1; r < p.r; r++) {
                    float v = src[r * p.inner];
                    if (is_max ? v > bv : v < bv) {
                        bv = v;
                        best = r;
                    }
                }
            } else {
                int64_t base = out * p.r * p.inner + k;
                double bv = pst_tensor_get_f64(x, base);
                for (int64_t r = 1; r < p.r; r++) {
                    double v = pst_tensor_get_f64(x, base + r * p.inner);
                    if (is_max ? v > bv : v < bv) {
                        bv = v;
                        best = r;
                    }
                }
            }
            pst_tensor_set_f64(o, out * p.inner + k, (double)best);
        }
    return 0;
}

/* ---- Builders and registration --------------------------------------------------------- */

static pst_output build_reduce(pst_graph *g, const char *op, pst_output x, int n_axes,
                               const int32_t *axes, int keep, const char *name) {
    int32_t all[PST_MAX_RANK];
    if (pst_graph_error(g) || x.node == NULL) return pst_out(NULL, 0);
    if (n_axes == 0 || axes == NULL) {
        pst_shape s = pst_output_shape(x);
        if (s.rank < 0) {
            pst_graph_set_error(g, PST_E_INVALID, "%s over all axes of '%s' needs a known rank",
                                op, x.node->name);
            return pst_out(NULL, 0);
        }
        for (int i = 0; i < s.rank; i++) all[i] = i;
        n_axes = s.rank;
        axes = all;
    }
    pst_graph_push_name_scope(g, name ? name : op, 0);
    pst_output ax = pst_const_i32_vec(g, n_axes, axes, "reduction_indices");
    pst_graph_pop_name_scope(g);
    return pst_reduce_sum_t_named(g, op, x, ax, keep, name);
}

pst_output pst_reduce_sum_t_named(pst_graph *g, const char *op, pst_output x, pst_output axes,
                                  int keep, const char *name) {
    pst_node_builder *b = pst_nb_new(g, op, name);
    pst_nb_input(b, x);
    pst_nb_input(b, axes);
    if (x.node) pst_nb_attr_type(b, "T", pst_output_dtype(x));
    if (axes.node) pst_nb_attr_type(b, "Tidx", pst_output_dtype(axes));
    pst_nb_attr_b(b, "keep_dims", keep);
    return pst_nb_finish_out(b);
}

pst_output pst_reduce_sum(pst_graph *g, pst_output x, int n, const int32_t *axes, int keep,
                          const char *name) {
    return build_reduce(g, "Sum", x, n, axes, keep, name);
}
pst_output pst_reduce_mean(pst_graph *g, pst_output x, int n, const int32_t *axes, int keep,
                           const char *name) {
    return build_reduce(g, "Mean", x, n, axes, keep, name);
}
pst_output pst_reduce_max(pst_graph *g, pst_output x, int n, const int32_t *axes, int keep,
                          const char *name) {
    return build_reduce(g, "Max", x, n, axes, keep, name);
}
pst_output pst_reduce_min(pst_graph *g, pst_output x, int n, const int32_t *axes, int keep,
                          const char *name) {
    return build_reduce(g, "Min", x, n, axes, keep, name);
}
pst_output pst_reduce_prod(pst_graph *g, pst_output x, int n, const int32_t *axes, int keep,
                           const char *name) {
    return build_reduce(g, "Prod", x, n, axes, keep, name);
}
pst_output pst_reduce_sum_t(pst_graph *g, pst_output x, pst_output axes, int keep,
                            const char *name) {
    return pst_reduce_sum_t_named(g, "Sum", x, axes, keep, name);
}

static pst_output build_arg(pst_graph *g, const char *op, pst_output x, int axis, pst_dtype ot,
                            const char *name) {
    if (pst_graph_error(g)) return pst_out(NULL, 0);
    pst_graph_push_name_scope(g, name ? name : op, 0);
    pst_output ax = pst_const_i32(g, axis, "dimension");
    pst_graph_pop_name_scope(g);
    pst_node_builder *b = pst_nb_new(g, op, name);
    pst_nb_input(b, x);
    pst_nb_input(b, ax);
    if (x.node) pst_nb_attr_type(b, "T", pst_output_dtype(x));
    pst_nb_attr_type(b, "Tidx", PST_INT32);
    pst_nb_attr_type(b, "output_type", ot);
    return pst_nb_finish_out(b);
}

pst_output pst_argmax(pst_graph *g, pst_output x, int axis, pst_dtype ot, const char *name) {
    return build_arg(g, "ArgMax", x, axis, ot, name);
}
pst_output pst_argmin(pst_graph *g, pst_output x, int axis, pst_dtype ot, const char *name) {
    return build_arg(g, "ArgMin", x, axis, ot, name);
}

static const pst_attr_spec red_attrs[] = {
    {"T", PST_ATTR_TYPE, 0}, {"Tidx", PST_ATTR_TYPE, 0}, {"keep_dims", PST_ATTR_BOOL, 0}, {0}};
#define RED(nm, mode)                                                                             \
    {{.name = nm, .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, .attrs = red_attrs,           \
      .shape = reduce_shape, .kernel = reduce_kernel, .grad = reduce_grad},                       \
     mode}
static const reduce_op reduce_ops[] = {RED("Sum", R_SUM), RED("Mean", R_MEAN), RED("Max", R_MAX),
                                       RED("Min", R_MIN), RED("Prod", R_PROD)};

static const pst_attr_spec rg_attrs[] = {{"mode", PST_ATTR_INT, 1}, {"reduced", PST_ATTR_INT, 1}, {0}};
static const pst_op_def reduce_grad_op = {.name = "PstReduceGrad", .min_inputs = 2,
                                          .max_inputs = 3, .n_outputs = 1, .attrs = rg_attrs,
                                          .shape = reduce_grad_shape,
                                          .kernel = reduce_grad_kernel};
static const pst_op_def rts_op = {.name = "PstReduceToShapeOf", .min_inputs = 2, .max_inputs = 2,
                                  .n_outputs = 1, .shape = rts_shape, .kernel = rts_kernel};
static const pst_attr_spec arg_attrs[] = {
    {"T", PST_ATTR_TYPE, 0}, {"Tidx", PST_ATTR_TYPE, 0}, {"output_type", PST_ATTR_TYPE, 0}, {0}};
static const pst_op_def argmax_op = {.name = "ArgMax", .min_inputs = 2, .max_inputs = 2,
                                     .n_outputs = 1, .attrs = arg_attrs, .shape = arg_shape,
                                     .kernel = arg_kernel, .flags = PST_OP_NOT_DIFFERENTIABLE};
static const pst_op_def argmin_op = {.name = "ArgMin", .min_inputs = 2, .max_inputs = 2,
                                     .n_outputs = 1, .attrs = arg_attrs, .shape = arg_shape,
                                     .kernel = arg_kernel, .flags = PST_OP_NOT_DIFFERENTIABLE};

void pst__register_reduce_ops(void) {
    for (size_t i = 0; i < sizeof reduce_ops / sizeof reduce_ops[0]; i++)
        pst_op_register(&reduce_ops[i].def);
    pst_op_register(&reduce_grad_op);
    pst_op_register(&rts_op);
    pst_op_register(&argmax_op);
    pst_op_register(&argmin_op);
}
