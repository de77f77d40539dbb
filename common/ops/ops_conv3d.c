/* 3-D convolution and pooling of TF 1.x graphs (issue 17; video and volume CNNs), NDHWC,
 * float or double, TF's SAME/VALID windows per dim (SAME: ceil(in / s) outputs, the padding
 * split with the extra at the end), dilations in Conv3D:
 *   Conv3D(input [N,D,H,W,C], filter [kd,kh,kw,C,OC]), Conv3DBackpropInputV2(input_sizes,
 *   filter, dy), Conv3DBackpropFilterV2(input, filter_sizes, dy) and TF 1.0's V1 backprops
 *   (a tensor of the shape instead of the sizes);
 *   MaxPool3D / MaxPool3DGrad (as TF's CPU kernel, the gradient goes to every window element
 *   within 1e-5 of the window's max), AvgPool3D / AvgPool3DGrad (the mean over the window's
 *   elements inside the input). Gradients as nn_grad.py's. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

typedef struct geom3 {
    int64_t n, in[3], c, k[3], oc, s[3], dil[3], out[3], pad[3];
} geom3;

static int list5(const pst_attr *a, const char *what, int64_t *v, int dflt, pst_status *st) {
    if (a == NULL && dflt) {
        for (int i = 0; i < 3; i++) v[i] = 1;
        return 0;
    }
    if (a == NULL || a->n != 5 || a->list.i[0] != 1 || a->list.i[4] != 1)
        return pst_status_set(st, PST_E_INVALID, "%s must be [1, d, h, w, 1]", what);
    for (int i = 0; i < 3; i++) {
        v[i] = a->list.i[i + 1];
        if (v[i] < 1) return pst_status_set(st, PST_E_INVALID, "%s must be positive", what);
    }
    return 0;
}

/* Fills g from the input shape, the window (kernel sizes k), attrs; 0 or an error. */
static int geom3_make(geom3 *g, const pst_shape *x, const int64_t *k, int64_t oc, const pst_attr *strides,
                      const pst_attr *dil, const char *pad, const char *fmt, pst_status *st) {
    char s[128];
    if (fmt && strcmp(fmt, "NDHWC") != 0)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "data_format %s is not supported (NDHWC only)", fmt);
    if (x->rank != 5) return pst_status_set(st, PST_E_INVALID, "input must be 5-D (NDHWC), got %s", pst_shape_str(x, s, sizeof s));
    if (list5(strides, "strides", g->s, 0, st) < 0 || list5(dil, "dilations", g->dil, 1, st) < 0) return PST_E_INVALID;
    int same = strcmp(pad, "SAME") == 0;
    if (!same && strcmp(pad, "VALID") != 0) return pst_status_set(st, PST_E_INVALID, "padding must be SAME or VALID, got '%s'", pad);
    g->n = x->dims[0], g->c = x->dims[4], g->oc = oc;
    for (int i = 0; i < 3; i++) {
        g->in[i] = x->dims[i + 1], g->k[i] = k[i];
        int64_t ek = (k[i] - 1) * g->dil[i] + 1;
        g->out[i] = same ? (g->in[i] + g->s[i] - 1) / g->s[i] : (g->in[i] - ek + g->s[i]) / g->s[i];
        if (g->out[i] <= 0 || k[i] < 1)
            return pst_status_set(st, PST_E_INVALID, "a window of %lld over %lld gives an empty output", (long long)ek,
                                  (long long)g->in[i]);
        int64_t total = (g->out[i] - 1) * g->s[i] + ek - g->in[i];
        g->pad[i] = same && total > 0 ? total / 2 : 0;
    }
    return 0;
}

static int64_t xat(const geom3 *g, int64_t b, const int64_t *p, int64_t ch) {
    return (((b * g->in[0] + p[0]) * g->in[1] + p[1]) * g->in[2] + p[2]) * g->c + ch;
}
static int64_t oat(const geom3 *g, int64_t b, const int64_t *o, int64_t ch, int64_t depth) {
    return (((b * g->out[0] + o[0]) * g->out[1] + o[1]) * g->out[2] + o[2]) * depth + ch;
}

/* Runs BODY for every output position op, window tap tp and input position ip inside the
 * input (b the batch entry). */
#define FOR_TAPS(g, ...)                                                                         \
    for (int64_t b = 0; b < (g)->n; b++)                                                          \
        for (op[0] = 0; op[0] < (g)->out[0]; op[0]++)                                             \
            for (op[1] = 0; op[1] < (g)->out[1]; op[1]++)                                         \
                for (op[2] = 0; op[2] < (g)->out[2]; op[2]++)                                     \
                    for (tp[0] = 0; tp[0] < (g)->k[0]; tp[0]++)                                   \
                        for (tp[1] = 0; tp[1] < (g)->k[1]; tp[1]++)                               \
                            for (tp[2] = 0; tp[2] < (g)->k[2]; tp[2]++) {                         \
                                int inside = 1;                                                   \
                                for (int i = 0; i < 3; i++) {                                     \
                                    ip[i] = op[i] * (g)->s[i] - (g)->pad[i] + tp[i] * (g)->dil[i]; \
                                    inside &= ip[i] >= 0 && ip[i] < (g)->in[i];                   \
                                }                                                                 \
                                if (!inside) continue;                                            \
                                __VA_ARGS__                                                       \
                            }

static int shape_arg(pst_kernel_ctx *c, const pst_tensor *t, pst_shape *s) {
    if (t->n != 5 || t->shape.rank != 1) return pst_kctx_error(c, PST_E_INVALID, "sizes must have 5 entries");
    s->rank = 5;
    for (int i = 0; i < 5; i++) s->dims[i] = pst_tensor_get_i64(t, i);
    return 0;
}

/* Conv3D (mode 0), its input backprop (1) and filter backprop (2), V2 or V1. */
static int conv3d_kernel(pst_kernel_ctx *c) {
    const char *name = c->op->name;
    int mode = strstr(name, "BackpropInput") ? 1 : strstr(name, "BackpropFilter") ? 2 : 0;
    int v2 = strstr(name, "V2") != NULL;
    pst_shape xs, fs;
    if (mode == 1 && v2) {
        if (shape_arg(c, c->inputs[0], &xs) < 0) return c->status->code;
    } else {
        xs = c->inputs[0]->shape;
    }
    if (mode == 2 && v2) {
        if (shape_arg(c, c->inputs[1], &fs) < 0) return c->status->code;
    } else {
        fs = c->inputs[1]->shape;
    }
    char sx[128], sf[128];
    if (fs.rank != 5 || xs.rank != 5 || fs.dims[3] != xs.dims[4])
        return pst_kctx_error(c, PST_E_INVALID, "input %s and filter %s must be 5-D with the input's depth",
                              pst_shape_str(&xs, sx, sizeof sx), pst_shape_str(&fs, sf, sizeof sf));
    geom3 g;
    if (geom3_make(&g, &xs, fs.dims, fs.dims[4], pst_kctx_attr(c, "strides"), pst_kctx_attr(c, "dilations"),
                   pst_kctx_attr_s(c, "padding", ""), pst_kctx_attr_s(c, "data_format", "NDHWC"), c->status) < 0)
        return c->status->code;
    pst_shape ys = {.rank = 5, .dims = {g.n, g.out[0], g.out[1], g.out[2], g.oc}};
    const pst_tensor *x = mode == 1 ? NULL : c->inputs[0], *f = mode == 2 ? NULL : c->inputs[1];
    const pst_tensor *dy = mode ? c->inputs[2] : NULL;
    if (dy && !pst_shape_equal(&dy->shape, &ys))
        return pst_kctx_error(c, PST_E_INVALID, "out_backprop must be %s", pst_shape_str(&ys, sx, sizeof sx));
    pst_dtype dt = c->inputs[mode == 1 ? 1 : 0]->dtype;
    pst_tensor *res = pst_tensor_new_zeros(dt, mode == 0 ? ys : mode == 1 ? xs : fs, c->status);
    if (res == NULL) return c->status->code;
    int64_t op[3], tp[3], ip[3];
    FOR_TAPS(&g, {
        int64_t fbase = ((tp[0] * g.k[1] + tp[1]) * g.k[2] + tp[2]) * g.c * g.oc;
        for (int64_t ci = 0; ci < g.c; ci++) {
            int64_t xi = xat(&g, b, ip, ci);
            for (int64_t co = 0; co < g.oc; co++) {
                int64_t fi = fbase + ci * g.oc + co, yi = oat(&g, b, op, co, g.oc);
                int64_t to = mode == 0 ? yi : mode == 1 ? xi : fi;
                double v = mode == 0 ? pst_tensor_get_f64(x, xi) * pst_tensor_get_f64(f, fi)
                         : mode == 1 ? pst_tensor_get_f64(dy, yi) * pst_tensor_get_f64(f, fi)
                                     : pst_tensor_get_f64(dy, yi) * pst_tensor_get_f64(x, xi);
                pst_tensor_set_f64(res, to, pst_tensor_get_f64(res, to) + v);
            }
        }
    })
    pst_kctx_set_output(c, 0, res);
    return 0;
}

static int conv3d_shape(pst_node *n, pst_status *st) {
    const char *name = n->op->name;
    int mode = strstr(name, "BackpropInput") ? 1 : strstr(name, "BackpropFilter") ? 2 : 0;
    int v2 = strstr(name, "V2") != NULL;
    pst_dtype dt = pst_node_in_dtype(n, mode == 1 && v2 ? 1 : 0);
    if (!pst_dtype_is_float(dt)) return pst_status_set(st, PST_E_INVALID, "3-D convolution takes float or double, got %s", pst_dtype_name(dt));
    pst_shape o = {.rank = 5, .dims = {-1, -1, -1, -1, -1}};
    if (mode == 0) {
        pst_shape x = pst_node_in_shape(n, 0), f = pst_node_in_shape(n, 1);
        if (pst_shape_is_known(&x) && pst_shape_is_known(&f)) {
            geom3 g;
            char sx[128], sf[128];
            if (x.rank != 5 || f.rank != 5 || f.dims[3] != x.dims[4])
                return pst_status_set(st, PST_E_INVALID, "input %s and filter %s must be 5-D with the input's depth",
                                      pst_shape_str(&x, sx, sizeof sx), pst_shape_str(&f, sf, sizeof sf));
            if (geom3_make(&g, &x, f.dims, f.dims[4], pst_node_attr(n, "strides"), pst_node_attr(n, "dilations"),
                           pst_node_attr_s(n, "padding", ""), pst_node_attr_s(n, "data_format", "NDHWC"), st) < 0)
                return st->code;
            o = (pst_shape){.rank = 5, .dims = {g.n, g.out[0], g.out[1], g.out[2], g.oc}};
        }
    } else if (!v2) {
        o = pst_node_in_shape(n, mode == 1 ? 0 : 1);
    } else {
        const pst_tensor *sz = pst_node_in_const(n, mode == 1 ? 0 : 1);
        if (sz && sz->n == 5)
            for (int i = 0; i < 5; i++) o.dims[i] = pst_tensor_get_i64(sz, i);
    }
    pst_node_set_output(n, 0, dt, o);
    return 0;
}

static void conv3d_attrs(pst_node_builder *b, const pst_node *n, pst_dtype t) {
    pst_nb_attr_type(b, "T", t);
    pst_nb_attr(b, pst_node_attr(n, "strides"));
    const pst_attr *d = pst_node_attr(n, "dilations");
    if (d) pst_nb_attr(b, d);
    pst_nb_attr_s(b, "padding", pst_node_attr_s(n, "padding", "VALID"));
    pst_nb_attr_s(b, "data_format", "NDHWC");
}

static int conv3d_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output x = n->inputs[0], f = n->inputs[1];
    pst_node_builder *b = pst_nb_new(g, "Conv3DBackpropInputV2", NULL);
    pst_nb_inputs(b, 3, (pst_output[]){pst_shape_of(g, x, PST_INT32, NULL), f, dy[0]});
    conv3d_attrs(b, n, pst_output_dtype(x));
    dx[0] = pst_nb_finish_out(b);
    b = pst_nb_new(g, "Conv3DBackpropFilterV2", NULL);
    pst_nb_inputs(b, 3, (pst_output[]){x, pst_shape_of(g, f, PST_INT32, NULL), dy[0]});
    conv3d_attrs(b, n, pst_output_dtype(x));
    dx[1] = pst_nb_finish_out(b);
    return 0;
}

/* ---- MaxPool3D, AvgPool3D and their gradient ops -------------------------------------- */
static int pool3d_kernel(pst_kernel_ctx *c) {
    const char *name = c->op->name;
    int is_max = strncmp(name, "Max", 3) == 0, grad = strstr(name, "Grad") != NULL;
    pst_shape xs;
    if (grad && !is_max) {
        if (shape_arg(c, c->inputs[0], &xs) < 0) return c->status->code;
    } else {
        xs = c->inputs[0]->shape;
    }
    int64_t k[3];
    geom3 g;
    if (list5(pst_kctx_attr(c, "ksize"), "ksize", k, 0, c->status) < 0) return c->status->code;
    if (xs.rank != 5) {
        char sx[128];
        return pst_kctx_error(c, PST_E_INVALID, "input must be 5-D (NDHWC), got %s", pst_shape_str(&xs, sx, sizeof sx));
    }
    if (geom3_make(&g, &xs, k, xs.dims[4], pst_kctx_attr(c, "strides"), NULL, pst_kctx_attr_s(c, "padding", ""),
                   pst_kctx_attr_s(c, "data_format", "NDHWC"), c->status) < 0)
        return c->status->code;
    pst_shape ys = {.rank = 5, .dims = {g.n, g.out[0], g.out[1], g.out[2], g.c}};
    const pst_tensor *dy = grad ? c->inputs[is_max ? 2 : 1] : NULL, *x = is_max || !grad ? c->inputs[0] : NULL;
    const pst_tensor *y = is_max && grad ? c->inputs[1] : NULL;
    char sy[128];
    if ((dy && !pst_shape_equal(&dy->shape, &ys)) || (y && !pst_shape_equal(&y->shape, &ys)))
        return pst_kctx_error(c, PST_E_INVALID, "orig_output and grad must be %s", pst_shape_str(&ys, sy, sizeof sy));
    pst_dtype dt = grad ? dy->dtype : x->dtype;
    pst_tensor *res = pst_tensor_new_zeros(dt, grad ? xs : ys, c->status);
    int64_t *cnt = calloc((size_t)(g.n * g.out[0] * g.out[1] * g.out[2]) + 1, sizeof *cnt);
    if (res == NULL || cnt == NULL) {
        pst_tensor_unref(res);
        free(cnt);
        return res ? pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory") : c->status->code;
    }
    if (is_max && !grad)
        for (int64_t i = 0; i < res->n; i++) pst_tensor_set_f64(res, i, -INFINITY);
    int64_t op[3], tp[3], ip[3];
    FOR_TAPS(&g, { cnt[oat(&g, b, op, 0, 1)]++; })
    FOR_TAPS(&g, {
        for (int64_t ch = 0; ch < g.c; ch++) {
            int64_t xi = xat(&g, b, ip, ch), yi = oat(&g, b, op, ch, g.c);
            if (!grad && is_max) {
                double v = pst_tensor_get_f64(x, xi);
                if (v > pst_tensor_get_f64(res, yi)) pst_tensor_set_f64(res, yi, v);
            } else if (!grad) {
                pst_tensor_set_f64(res, yi, pst_tensor_get_f64(res, yi) + pst_tensor_get_f64(x, xi) / (double)cnt[oat(&g, b, op, 0, 1)]);
            } else if (is_max) {
                if (fabs(pst_tensor_get_f64(x, xi) - pst_tensor_get_f64(y, yi)) < 1e-5)
                    pst_tensor_set_f64(res, xi, pst_tensor_get_f64(res, xi) + pst_tensor_get_f64(dy, yi));
            } else {
                pst_tensor_set_f64(res, xi, pst_tensor_get_f64(res, xi) + pst_tensor_get_f64(dy, yi) / (double)cnt[oat(&g, b, op, 0, 1)]);
            }
        }
    })
    free(cnt);
    pst_kctx_set_output(c, 0, res);
    return 0;
}

static int pool3d_shape(pst_node *n, pst_status *st) {
    const char *name = n->op->name;
    int is_max = strncmp(name, "Max", 3) == 0, grad = strstr(name, "Grad") != NULL;
    pst_dtype dt = pst_node_in_dtype(n, grad ? (is_max ? 2 : 1) : 0);
    if (!pst_dtype_is_float(dt)) return pst_status_set(st, PST_E_INVALID, "3-D pooling takes float or double, got %s", pst_dtype_name(dt));
    int64_t k[3];
    if (list5(pst_node_attr(n, "ksize"), "ksize", k, 0, st) < 0) return PST_E_INVALID;
    pst_shape o = {.rank = 5, .dims = {-1, -1, -1, -1, -1}};
    if (grad && is_max) {
        o = pst_node_in_shape(n, 0);
    } else if (grad) {
        const pst_tensor *sz = pst_node_in_const(n, 0);
        if (sz && sz->n == 5)
            for (int i = 0; i < 5; i++) o.dims[i] = pst_tensor_get_i64(sz, i);
    } else {
        pst_shape x = pst_node_in_shape(n, 0);
        if (pst_shape_is_known(&x)) {
            geom3 g;
            if (geom3_make(&g, &x, k, x.rank == 5 ? x.dims[4] : 0, pst_node_attr(n, "strides"), NULL,
                           pst_node_attr_s(n, "padding", ""), pst_node_attr_s(n, "data_format", "NDHWC"), st) < 0)
                return st->code;
            o = (pst_shape){.rank = 5, .dims = {g.n, g.out[0], g.out[1], g.out[2], g.c}};
        }
    }
    pst_node_set_output(n, 0, dt, o);
    return 0;
}

static int pool3d_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int is_max = strcmp(n->op->name, "MaxPool3D") == 0;
    pst_node_builder *b = pst_nb_new(g, is_max ? "MaxPool3DGrad" : "AvgPool3DGrad", NULL);
    if (is_max)
        pst_nb_inputs(b, 3, (pst_output[]){n->inputs[0], pst_out(n, 0), dy[0]});
    else
        pst_nb_inputs(b, 2, (pst_output[]){pst_shape_of(g, n->inputs[0], PST_INT32, NULL), dy[0]});
    pst_nb_attr_type(b, "T", pst_output_dtype(dy[0]));
    if (is_max) pst_nb_attr_type(b, "TInput", pst_node_in_dtype(n, 0));
    pst_nb_attr(b, pst_node_attr(n, "ksize"));
    pst_nb_attr(b, pst_node_attr(n, "strides"));
    pst_nb_attr_s(b, "padding", pst_node_attr_s(n, "padding", "VALID"));
    pst_nb_attr_s(b, "data_format", "NDHWC");
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

static const pst_attr_spec conv3d_attrs_spec[] = {{"T", PST_ATTR_TYPE, 0},          {"Tshape", PST_ATTR_TYPE, 0},
                                                  {"strides", PST_ATTR_LIST_INT, 1}, {"padding", PST_ATTR_STRING, 1},
                                                  {"data_format", PST_ATTR_STRING, 0}, {"dilations", PST_ATTR_LIST_INT, 0},
                                                  {0}};
static const pst_attr_spec pool3d_attrs[] = {{"T", PST_ATTR_TYPE, 0},          {"TInput", PST_ATTR_TYPE, 0},
                                             {"ksize", PST_ATTR_LIST_INT, 1},  {"strides", PST_ATTR_LIST_INT, 1},
                                             {"padding", PST_ATTR_STRING, 1},  {"data_format", PST_ATTR_STRING, 0},
                                             {0}};
#define OP3(nm, ni, at, sh, k, gr)                                                                \
    {.name = nm, .min_inputs = ni, .max_inputs = ni, .n_outputs = 1, .attrs = at, .shape = sh,    \
     .kernel = k, .grad = gr}
static const pst_op_def conv3d_ops[] = {
    OP3("Conv3D", 2, conv3d_attrs_spec, conv3d_shape, conv3d_kernel, conv3d_grad),
    OP3("Conv3DBackpropInputV2", 3, conv3d_attrs_spec, conv3d_shape, conv3d_kernel, NULL),
    OP3("Conv3DBackpropFilterV2", 3, conv3d_attrs_spec, conv3d_shape, conv3d_kernel, NULL),
    OP3("Conv3DBackpropInput", 3, conv3d_attrs_spec, conv3d_shape, conv3d_kernel, NULL),
    OP3("Conv3DBackpropFilter", 3, conv3d_attrs_spec, conv3d_shape, conv3d_kernel, NULL),
    OP3("MaxPool3D", 1, pool3d_attrs, pool3d_shape, pool3d_kernel, pool3d_grad),
    OP3("MaxPool3DGrad", 3, pool3d_attrs, pool3d_shape, pool3d_kernel, NULL),
    OP3("AvgPool3D", 1, pool3d_attrs, pool3d_shape, pool3d_kernel, pool3d_grad),
    OP3("AvgPool3DGrad", 2, pool3d_attrs, pool3d_shape, pool3d_kernel, NULL),
};

void pst__register_conv3d_ops(void) {
    for (size_t i = 0; i < sizeof conv3d_ops / sizeof conv3d_ops[0]; i++) pst_op_register(&conv3d_ops[i]);
}
