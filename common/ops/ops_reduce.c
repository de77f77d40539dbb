/* Reductions (Sum, Mean, Max, Min, Prod, EuclideanNorm), ArgMax/ArgMin, and the gradient helpers
 * PstReduceToShapeOf and PstReduceGrad (see ops_math.h). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_ew.h"
#include "op.h"
#include "ops.h"

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_EUCLID };

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

/* EuclideanNorm: sqrt(sum x^2) over the reduced dims (|x| where none is). */
static int euclid_kernel(pst_kernel_ctx *c, const pst_tensor *x, const int *reduced, int keep) {
    if (!pst_dtype_is_float(x->dtype))
        return pst_kctx_error(c, PST_E_INVALID, "EuclideanNorm takes float or double here, got %s",
                              pst_dtype_name(x->dtype));
    pst_tensor *sq = pst_tensor_new(x->dtype, x->shape, c->status);
    if (sq == NULL) return c->status->code;
    for (int64_t i = 0; i < x->n; i++) {
        double v = pst_tensor_get_f64(x, i);
        pst_tensor_set_f64(sq, i, v * v);
    }
    pst_reduce_plan p;
    pst_reduce_plan_make(&x->shape, reduced, &p);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, reduced_shape(&x->shape, reduced, keep));
    if (o != NULL) {
        reduce_generic(&p, sq, o, R_SUM);
        for (int64_t i = 0; i < o->n; i++) pst_tensor_set_f64(o, i, sqrt(pst_tensor_get_f64(o, i)));
    }
    pst_tensor_unref(sq);
    return o ? 0 : c->status->code;
}

static int reduce_kernel(pst_kernel_ctx *c) {
    int mode = ((const reduce_op *)c->op)->mode;
    const pst_tensor *x = c->inputs[0];
    int reduced[PST_MAX_RANK];
    if (axes_mask(c->inputs[1], x->shape.rank, reduced, c->status) < 0) return c->status->code;
    int keep = pst_kctx_attr_b(c, "keep_dims", 0);
    int any = 0;
    for (int d = 0; d < x->shape.rank; d++) any |= reduced[d];
    if (mode == R_EUCLID) return euclid_kernel(c, x, reduced, keep);
    if (!any) { /* no axis: the input itself (gradients reduce over no axis often) */
        pst_kctx_set_output(c, 0, pst_tensor_ref(c->inputs[0]));
        return 0;
    }
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

/* The two ops gradients used before they were built from TensorFlow's ops; still registered so
 * graphs exported then keep loading. */

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

/* x's shape with the reduced dims set to 1 (the forward op's output with keep_dims), and the
 * multiples that tile such a tensor back to x's shape: constants when x's shape is known,
 * else Select over Shape(x). */
static void kept_shape(pst_graph *g, pst_output x, const int *reduced, pst_output *kept,
                       pst_output *multiples) {
    pst_shape s = pst_output_shape(x);
    int32_t k[PST_MAX_RANK], m[PST_MAX_RANK];
    if (pst_shape_is_known(&s)) {
        for (int d = 0; d < s.rank; d++) {
            k[d] = reduced[d] ? 1 : (int32_t)s.dims[d];
            m[d] = reduced[d] ? (int32_t)s.dims[d] : 1;
        }
        *kept = pst_const_i32_vec(g, s.rank, k, "kept_shape");
        *multiples = pst_const_i32_vec(g, s.rank, m, "multiples");
        return;
    }
    pst_tensor *mask = pst_tensor_new(PST_BOOL, pst_shape_1d(s.rank), NULL);
    PST_ASSERT(mask != NULL);
    for (int d = 0; d < s.rank; d++) {
        ((uint8_t *)mask->data)[d] = (uint8_t)reduced[d];
        k[d] = 1;
    }
    pst_output is_reduced = pst_const(g, mask, "is_reduced");
    pst_tensor_unref(mask);
    pst_output ones = pst_const_i32_vec(g, s.rank, k, "ones");
    pst_output shape = pst_shape_of(g, x, PST_INT32, NULL);
    *kept = pst_select(g, is_reduced, ones, shape, "kept_shape");
    *multiples = pst_select(g, is_reduced, shape, ones, "multiples");
}

/* Gradients of the reductions in TensorFlow's own ops, so training graphs stay loadable by
 * TensorFlow: Sum tiles dy back over the reduced dims, Mean also divides by their size, Max
 * and Min share dy among the elements equal to the result, Prod multiplies by y / x. */
static int reduce_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int mode = ((const reduce_op *)n->op)->mode;
    const pst_tensor *axes = pst_node_in_const(n, 1);
    pst_output x = n->inputs[0];
    pst_shape in = pst_output_shape(x);
    if (axes == NULL || in.rank < 0)
        return pst_graph_set_error(g, PST_E_UNIMPLEMENTED,
                                   "gradient of '%s' needs constant axes and a known rank",
                                   n->name);
    int reduced[PST_MAX_RANK];
    pst_status st = {0};
    if (axes_mask(axes, in.rank, reduced, &st) < 0)
        return pst_graph_set_error(g, st.code, "%s", st.msg);
    pst_dtype dt = pst_output_dtype(x);
    pst_graph_push_name_scope(g, n->op->name, 0);
    pst_output kept, multiples;
    kept_shape(g, x, reduced, &kept, &multiples);
    pst_output dyr = pst_reshape_t(g, dy[0], kept, NULL);
    if (mode == R_SUM || mode == R_MEAN) {
        pst_output t = pst_tile_t(g, dyr, multiples, NULL);
        if (mode == R_MEAN) {
            pst_output count = pst_cast(g, pst_reduce_prod(g, multiples, 0, NULL, 0, NULL), dt,
                                        "count");
            t = pst_real_div(g, t, count, NULL);
        }
        dx[0] = t;
    } else {
        pst_output yr = pst_reshape_t(g, pst_out(n, 0), kept, NULL);
        if (mode == R_EUCLID) { /* math_grad.py's: x / (y / dy) */
            dx[0] = pst_real_div(g, x, pst_real_div(g, yr, dyr, NULL), NULL);
        } else if (mode == R_PROD) {
            dx[0] = pst_real_div(g, pst_mul(g, dyr, yr, NULL), x, NULL);
        } else {
            pst_output hit = pst_cast(g, pst_equal(g, x, yr, NULL), dt, "indicators");
            pst_output n_hit = pst_reshape_t(g, pst_reduce_sum_t(g, hit, n->inputs[1], 0, NULL),
                                             kept, "num_selected");
            dx[0] = pst_mul(g, pst_real_div(g, hit, n_hit, NULL), dyr, NULL);
        }
    }
    pst_graph_pop_name_scope(g);
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

/* BroadcastGradientArgs(s0, s1) -> (r0, r1): for two shapes broadcast together, the dims of
 * the result that each was broadcast along (the dims its gradient sums over). */
static int bga_axes(const pst_tensor *s, int r, const int64_t *out, pst_kernel_ctx *c, int k) {
    int64_t idx[PST_MAX_RANK];
    int n = 0, rs = (int)s->n;
    for (int d = 0; d < r; d++) {
        int ds = d - (r - rs);
        if (ds < 0 || (pst_tensor_get_i64(s, ds) == 1 && out[d] != 1)) idx[n++] = d;
    }
    pst_tensor *t = pst_kctx_alloc_output(c, k, c->inputs[k]->dtype, pst_shape_1d(n));
    if (t == NULL) return c->status->code;
    for (int i = 0; i < n; i++) pst_tensor_set_f64(t, i, (double)idx[i]);
    return 0;
}

static int bga_kernel(pst_kernel_ctx *c) {
    const pst_tensor *a = c->inputs[0], *b = c->inputs[1];
    if (a->shape.rank != 1 || b->shape.rank != 1 || a->n > PST_MAX_RANK || b->n > PST_MAX_RANK)
        return pst_kctx_error(c, PST_E_INVALID, "shapes must be vectors of at most %d dims",
                              PST_MAX_RANK);
    int r = (int)(a->n > b->n ? a->n : b->n);
    int64_t out[PST_MAX_RANK];
    for (int d = 0; d < r; d++) {
        int da = d - (r - (int)a->n), db = d - (r - (int)b->n);
        int64_t x = da >= 0 ? pst_tensor_get_i64(a, da) : 1, y = db >= 0 ? pst_tensor_get_i64(b, db) : 1;
        if (x != y && x != 1 && y != 1)
            return pst_kctx_error(c, PST_E_INVALID,
                                  "incompatible shapes: dim %d is %lld in one and %lld in the other",
                                  d, (long long)x, (long long)y);
        out[d] = x == 1 ? y : x;
    }
    if (bga_axes(a, r, out, c, 0) < 0) return c->status->code;
    return bga_axes(b, r, out, c, 1);
}

static int bga_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (dt != PST_INT32 && dt != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "shapes must be int32 or int64, got %s",
                              pst_dtype_name(dt));
    if (pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    pst_node_set_output(n, 0, dt, pst_shape_1d(-1));
    pst_node_set_output(n, 1, dt, pst_shape_1d(-1));
    return 0;
}

/* dy (the gradient of a broadcasting op's output) summed back to x's shape, in TensorFlow's
 * ops: Sum over the broadcast dims, then Reshape. When the static shapes decide which dims
 * those are, they are constants; otherwise Shape and BroadcastGradientArgs find them at run
 * time. */
pst_output pst_reduce_to_shape_of(pst_graph *g, pst_output dy, pst_output x, const char *name) {
    if (pst_graph_error(g) || dy.node == NULL || x.node == NULL) return pst_out(NULL, 0);
    pst_shape sd = pst_output_shape(dy), sx = pst_output_shape(x);
    if (pst_shape_is_known(&sd) && pst_shape_equal(&sd, &sx)) return dy;
    int decided = sd.rank >= 0 && sx.rank >= 0 && sx.rank <= sd.rank;
    int32_t axes[PST_MAX_RANK];
    int n_axes = 0, only_leading = 1;
    for (int d = 0; decided && d < sd.rank; d++) {
        int dx = d - (sd.rank - sx.rank);
        int64_t xd = dx >= 0 ? sx.dims[dx] : 1, yd = sd.dims[d];
        if (dx >= 0 && xd < 0 && yd != 1) {
            decided = 0; /* x's dim unknown: broadcast or not is known only at run time */
        } else if (dx < 0 || (xd == 1 && yd != 1)) {
            axes[n_axes++] = d;
            if (dx >= 0) only_leading = 0;
        } else if (xd >= 0 && yd >= 0 && xd != yd) {
            pst_graph_set_error(g, PST_E_INVALID, "cannot sum a gradient of shape dims %lld "
                                "back to dim %lld of '%s'", (long long)yd, (long long)xd,
                                x.node->name);
            return pst_out(NULL, 0);
        }
    }
    pst_graph_push_name_scope(g, name ? name : "BroadcastGrad", 0);
    pst_output out;
    if (decided) {
        out = n_axes ? pst_reduce_sum(g, dy, n_axes, axes, 0, NULL) : dy;
        /* Summing the leading dims away leaves x's shape already. */
        if (!only_leading)
            out = pst_shape_is_known(&sx)
                      ? pst_reshape(g, out, sx.rank, sx.dims, NULL)
                      : pst_reshape_t(g, out, pst_shape_of(g, x, PST_INT32, NULL), NULL);
    } else {
        pst_output shape_x = pst_shape_of(g, x, PST_INT32, NULL);
        pst_node_builder *b = pst_nb_new(g, "BroadcastGradientArgs", NULL);
        pst_nb_input(b, shape_x);
        pst_nb_input(b, pst_shape_of(g, dy, PST_INT32, NULL));
        pst_nb_attr_type(b, "T", PST_INT32);
        pst_node *bga = pst_nb_finish(b);
        out = pst_reshape_t(g, pst_reduce_sum_t(g, dy, pst_out(bga, 0), 0, NULL), shape_x, NULL);
    }
    pst_graph_pop_name_scope(g);
    return out;
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
                                       RED("Min", R_MIN), RED("Prod", R_PROD),
                                       RED("EuclideanNorm", R_EUCLID)};

static const pst_attr_spec rg_attrs[] = {{"mode", PST_ATTR_INT, 1}, {"reduced", PST_ATTR_INT, 1}, {0}};
static const pst_op_def reduce_grad_op = {.name = "PstReduceGrad", .min_inputs = 2,
                                          .max_inputs = 3, .n_outputs = 1, .attrs = rg_attrs,
                                          .shape = reduce_grad_shape,
                                          .kernel = reduce_grad_kernel};
static const pst_op_def rts_op = {.name = "PstReduceToShapeOf", .min_inputs = 2, .max_inputs = 2,
                                  .n_outputs = 1, .shape = rts_shape, .kernel = rts_kernel};
static const pst_attr_spec bga_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_op_def bga_op = {.name = "BroadcastGradientArgs", .min_inputs = 2,
                                  .max_inputs = 2, .n_outputs = 2, .attrs = bga_attrs,
                                  .shape = bga_shape, .kernel = bga_kernel,
                                  .flags = PST_OP_NOT_DIFFERENTIABLE};
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
    pst_op_register(&bga_op);
    pst_op_register(&argmax_op);
    pst_op_register(&argmin_op);
}
