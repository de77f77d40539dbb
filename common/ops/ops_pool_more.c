/* Max pooling's other TF 1.x forms (issue 17), NHWC: MaxPoolV2 and MaxPoolGradV2 (ksize and
 * strides as inputs), MaxPoolWithArgmax, MaxPoolGradWithArgmax, and the second-order ops
 * MaxPoolGradGrad, MaxPoolGradGradV2, MaxPoolGradGradWithArgmax (a WGAN-GP gradient penalty
 * differentiates through max-pool gradients), plus the gradients of MaxPoolGrad and
 * AvgPoolGrad (ops_nn.c registers those two ops).
 *
 * As TF's CPU kernels, every op finds a window's maximum in the original input: the first
 * maximum scanning the window's rows, then columns (a NaN taken first stays). MaxPoolWithArgmax's
 * argmax is the flat NHWC index ((b * height + y) * width + x) * channels + c, without the
 * b * height * width * channels term unless include_batch_in_index. */
#include <stdlib.h>
#include <string.h>

#include "kernels_conv.h"
#include "op.h"
#include "ops.h"

/* Window sizes and strides from four-entry lists (attrs or V2's inputs). */
static int window_of(const int64_t *k, int nk, const int64_t *s, int ns, int64_t *kh, int64_t *kw,
                     int64_t *sh, int64_t *sw, pst_status *st) {
    if (nk != 4 || ns != 4)
        return pst_status_set(st, PST_E_INVALID, "ksize and strides must have 4 entries, got %d and %d",
                              nk, ns);
    if (k[0] != 1 || k[3] != 1 || s[0] != 1 || s[3] != 1)
        return pst_status_set(st, PST_E_INVALID,
                              "pooling over the batch or depth dimension is not supported "
                              "(ksize and strides must be [1, h, w, 1])");
    if (k[1] < 1 || k[2] < 1 || s[1] < 1 || s[2] < 1)
        return pst_status_set(st, PST_E_INVALID, "ksize and strides must be positive");
    *kh = k[1], *kw = k[2], *sh = s[1], *sw = s[2];
    return 0;
}

static int is_v2(const pst_op_def *op) { return strstr(op->name, "V2") != NULL; }

/* The window from the node's attrs, or (V2) from the Const inputs ki and ki + 1; 1 when known. */
static int node_window(const pst_node *n, int ki, int64_t *w, pst_status *st) {
    int64_t k[4], s[4];
    int nk, ns;
    if (is_v2(n->op)) {
        const pst_tensor *kt = pst_node_in_const(n, ki), *stt = pst_node_in_const(n, ki + 1);
        if (kt == NULL || stt == NULL) return 0;
        nk = (int)(kt->n < 5 ? kt->n : 5), ns = (int)(stt->n < 5 ? stt->n : 5);
        for (int i = 0; i < 4; i++) {
            k[i] = i < kt->n ? pst_tensor_get_i64(kt, i) : 0;
            s[i] = i < stt->n ? pst_tensor_get_i64(stt, i) : 0;
        }
    } else {
        const pst_attr *ka = pst_node_attr(n, "ksize"), *sa = pst_node_attr(n, "strides");
        if (ka == NULL || sa == NULL) return pst_status_set(st, PST_E_INVALID, "ksize and strides are required");
        nk = ka->n, ns = sa->n;
        for (int i = 0; i < 4; i++) {
            k[i] = i < ka->n ? ka->list.i[i] : 0;
            s[i] = i < sa->n ? sa->list.i[i] : 0;
        }
    }
    if (window_of(k, nk, s, ns, &w[0], &w[1], &w[2], &w[3], st) < 0) return PST_E_INVALID;
    return 1;
}

static int kernel_window(pst_kernel_ctx *c, int ki, int64_t *w) {
    int64_t k[4] = {0}, s[4] = {0};
    int nk, ns;
    if (is_v2(c->op)) {
        const pst_tensor *kt = c->inputs[ki], *stt = c->inputs[ki + 1];
        if (kt->shape.rank != 1 || stt->shape.rank != 1)
            return pst_kctx_error(c, PST_E_INVALID, "ksize and strides must be vectors");
        nk = (int)(kt->n < 5 ? kt->n : 5), ns = (int)(stt->n < 5 ? stt->n : 5);
        for (int i = 0; i < 4; i++) {
            k[i] = i < kt->n ? pst_tensor_get_i64(kt, i) : 0;
            s[i] = i < stt->n ? pst_tensor_get_i64(stt, i) : 0;
        }
    } else {
        const pst_attr *ka = pst_kctx_attr(c, "ksize"), *sa = pst_kctx_attr(c, "strides");
        if (ka == NULL || sa == NULL) return pst_kctx_error(c, PST_E_INVALID, "ksize and strides are required");
        nk = ka->n, ns = sa->n;
        for (int i = 0; i < 4 && i < ka->n; i++) k[i] = ka->list.i[i];
        for (int i = 0; i < 4 && i < sa->n; i++) s[i] = sa->list.i[i];
    }
    if (window_of(k, nk, s, ns, &w[0], &w[1], &w[2], &w[3], c->status) < 0) return c->status->code;
    return 0;
}

static int check_format(const char *fmt, pst_status *st) {
    if (fmt && strcmp(fmt, "NHWC") != 0)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "data_format %s is not supported (NHWC only)", fmt);
    return 0;
}

/* The pooling geometry of input shape x (4-D, known) and window w = {kh, kw, sh, sw}. */
static int geom_of(const pst_shape *x, const int64_t *w, const char *pad, pst_conv_geom *g,
                   pst_status *st) {
    char sx[128];
    if (x->rank != 4)
        return pst_status_set(st, PST_E_INVALID, "input must be 4-D (NHWC), got %s",
                              pst_shape_str(x, sx, sizeof sx));
    if (strcmp(pad, "SAME") != 0 && strcmp(pad, "VALID") != 0)
        return pst_status_set(st, PST_E_INVALID, "padding must be SAME or VALID, got '%s'", pad);
    if (pst_conv_geom_make(g, x->dims[0], x->dims[1], x->dims[2], x->dims[3], w[0], w[1], x->dims[3],
                           w[2], w[3], pad) < 0 || g->oh <= 0 || g->ow <= 0)
        return pst_status_set(st, PST_E_INVALID, "a %lldx%lld window over input %s gives an empty output",
                              (long long)w[0], (long long)w[1], pst_shape_str(x, sx, sizeof sx));
    return 0;
}

static double val(const pst_tensor *t, int64_t i) {
    switch (t->dtype) {
    case PST_FLOAT: return pst_tensor_f32(t)[i];
    case PST_DOUBLE: return pst_tensor_f64(t)[i];
    default: return pst_tensor_get_f64(t, i);
    }
}

/* arg[o] for every pooled element o ((b, y, x, c) row-major): the flat index in x (batch
 * included) of its window's first maximum. */
static void pool_argmax(const pst_conv_geom *g, const pst_tensor *x, int64_t *arg) {
    int64_t C = g->c;
    for (int64_t b = 0; b < g->n; b++)
        for (int64_t oy = 0; oy < g->oh; oy++)
            for (int64_t ox = 0; ox < g->ow; ox++) {
                int64_t *a = arg + ((b * g->oh + oy) * g->ow + ox) * C;
                for (int64_t c = 0; c < C; c++) a[c] = -1;
                for (int64_t i = 0; i < g->kh; i++) {
                    int64_t iy = oy * g->sh - g->pad_top + i;
                    if (iy < 0 || iy >= g->h) continue;
                    for (int64_t j = 0; j < g->kw; j++) {
                        int64_t ix = ox * g->sw - g->pad_left + j;
                        if (ix < 0 || ix >= g->w) continue;
                        int64_t base = ((b * g->h + iy) * g->w + ix) * C;
                        for (int64_t c = 0; c < C; c++)
                            if (a[c] < 0 || val(x, base + c) > val(x, a[c])) a[c] = base + c;
                    }
                }
            }
}

static int check_float(pst_dtype dt, pst_status *st) {
    if (dt != PST_FLOAT && dt != PST_DOUBLE)
        return pst_status_set(st, PST_E_INVALID, "max pooling takes float or double, got %s",
                              pst_dtype_name(dt));
    return 0;
}

/* Geometry and argmax of the kernel's input 0 (the original input), window from attrs or from
 * inputs ki, ki + 1. *arg is malloc'ed (n_pooled entries). */
static int kernel_argmax(pst_kernel_ctx *c, int ki, pst_conv_geom *g, int64_t **arg) {
    int64_t w[4];
    const pst_tensor *x = c->inputs[0];
    if (kernel_window(c, ki, w) < 0) return c->status->code;
    if (check_format(pst_kctx_attr_s(c, "data_format", "NHWC"), c->status) < 0 ||
        check_float(x->dtype, c->status) < 0 ||
        geom_of(&x->shape, w, pst_kctx_attr_s(c, "padding", ""), g, c->status) < 0)
        return c->status->code;
    int64_t n = g->n * g->oh * g->ow * g->c;
    *arg = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    if (*arg == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    pool_argmax(g, x, *arg);
    return 0;
}

static pst_shape pooled_shape(const pst_conv_geom *g) { return pst_shape_4d(g->n, g->oh, g->ow, g->c); }

static int same_shape_as(pst_kernel_ctx *c, const pst_tensor *t, pst_shape want, const char *what) {
    char a[128], b[128];
    if (!pst_shape_equal(&t->shape, &want))
        return pst_kctx_error(c, PST_E_INVALID, "%s has shape %s, want %s", what,
                              pst_shape_str(&t->shape, a, sizeof a), pst_shape_str(&want, b, sizeof b));
    return 0;
}

/* ---- Kernels --------------------------------------------------------------------------- */

/* MaxPoolV2(input, ksize, strides) and MaxPoolWithArgmax(input) -> (output, argmax). */
static int pool_fwd_kernel(pst_kernel_ctx *c) {
    pst_conv_geom g;
    int64_t *arg;
    if (kernel_argmax(c, 1, &g, &arg) < 0) return c->status->code;
    const pst_tensor *x = c->inputs[0];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, pooled_shape(&g));
    pst_tensor *a = o && c->n_outputs > 1 ? pst_kctx_alloc_output(c, 1, c->out_dtypes[1], pooled_shape(&g)) : NULL;
    if (o == NULL || (c->n_outputs > 1 && a == NULL)) {
        free(arg);
        return c->status->code;
    }
    size_t es = pst_dtype_size(x->dtype);
    int with_b = pst_kctx_attr_b(c, "include_batch_in_index", 0);
    int64_t per_b = g.h * g.w * g.c;
    for (int64_t i = 0; i < o->n; i++) {
        memcpy((char *)o->data + (size_t)i * es, (const char *)x->data + (size_t)arg[i] * es, es);
        if (a) {
            int64_t v = with_b ? arg[i] : arg[i] % per_b;
            if (a->dtype == PST_INT32)
                pst_tensor_i32(a)[i] = (int32_t)v;
            else
                pst_tensor_i64(a)[i] = v;
        }
    }
    free(arg);
    return 0;
}

/* MaxPoolGradV2(orig_input, orig_output, grad, ksize, strides): grad summed into each window's
 * maximum. MaxPoolGradGrad[V2](orig_input, orig_output, grad, ...): grad (input-shaped) read at
 * each window's maximum. */
static int pool_bwd_kernel(pst_kernel_ctx *c) {
    int gradgrad = strstr(c->op->name, "GradGrad") != NULL;
    pst_conv_geom g;
    int64_t *arg;
    if (kernel_argmax(c, 3, &g, &arg) < 0) return c->status->code;
    const pst_tensor *x = c->inputs[0], *dy = c->inputs[2];
    pst_shape ps = pooled_shape(&g);
    pst_tensor *o = NULL;
    if (dy->dtype != x->dtype)
        pst_kctx_error(c, PST_E_INVALID, "grad is %s, input %s", pst_dtype_name(dy->dtype),
                       pst_dtype_name(x->dtype));
    else if (same_shape_as(c, c->inputs[1], ps, "orig_output") == 0 &&
             same_shape_as(c, dy, gradgrad ? x->shape : ps, "grad") == 0)
        o = pst_kctx_alloc_output(c, 0, x->dtype, gradgrad ? ps : x->shape);
    if (o == NULL) {
        free(arg);
        return c->status->code;
    }
    int64_t np = g.n * g.oh * g.ow * g.c;
    if (gradgrad) {
        for (int64_t i = 0; i < np; i++) pst_tensor_set_f64(o, i, val(dy, arg[i]));
    } else {
        memset(o->data, 0, o->nbytes);
        for (int64_t i = 0; i < np; i++) pst_tensor_set_f64(o, arg[i], val(o, arg[i]) + val(dy, i));
    }
    free(arg);
    return 0;
}

/* MaxPoolGradWithArgmax(input, grad, argmax): grad (pooled) summed into input positions argmax;
 * MaxPoolGradGradWithArgmax(input, grad, argmax): grad (input-shaped) read at argmax. */
static int argmax_bwd_kernel(pst_kernel_ctx *c) {
    int gradgrad = strstr(c->op->name, "GradGrad") != NULL;
    const pst_tensor *x = c->inputs[0], *dy = c->inputs[1], *am = c->inputs[2];
    char a[128], b[128];
    if (x->shape.rank != 4)
        return pst_kctx_error(c, PST_E_INVALID, "input must be 4-D (NHWC), got %s",
                              pst_shape_str(&x->shape, a, sizeof a));
    if (check_float(x->dtype, c->status) < 0) return c->status->code;
    if (dy->dtype != x->dtype)
        return pst_kctx_error(c, PST_E_INVALID, "grad is %s, input %s", pst_dtype_name(dy->dtype),
                              pst_dtype_name(x->dtype));
    if (am->shape.rank != 4 || am->shape.dims[0] != x->shape.dims[0] || am->shape.dims[3] != x->shape.dims[3])
        return pst_kctx_error(c, PST_E_INVALID, "argmax %s does not match input %s",
                              pst_shape_str(&am->shape, a, sizeof a), pst_shape_str(&x->shape, b, sizeof b));
    if (same_shape_as(c, dy, gradgrad ? x->shape : am->shape, "grad") < 0) return c->status->code;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, gradgrad ? am->shape : x->shape);
    if (o == NULL) return c->status->code;
    if (!gradgrad) memset(o->data, 0, o->nbytes);
    int with_b = pst_kctx_attr_b(c, "include_batch_in_index", 0);
    int64_t batch = x->shape.dims[0], in_per_b = batch ? x->n / batch : 0;
    int64_t out_per_b = batch ? am->n / batch : 0;
    for (int64_t i = 0; i < am->n; i++) {
        int64_t bi = i / out_per_b, at = pst_tensor_get_i64(am, i);
        if (!with_b) at += bi * in_per_b;
        /* Each image's maxima lie in that image (TF checks the same). */
        if (at < bi * in_per_b || at >= (bi + 1) * in_per_b)
            return pst_kctx_error(c, PST_E_INVALID, "argmax %lld at %lld is outside image %lld of the input",
                                  (long long)pst_tensor_get_i64(am, i), (long long)i, (long long)bi);
        if (gradgrad)
            pst_tensor_set_f64(o, i, val(dy, at));
        else
            pst_tensor_set_f64(o, at, val(o, at) + val(dy, i));
    }
    return 0;
}

/* ---- Shape functions ------------------------------------------------------------------- */

/* The pooled shape of input 0 when the window is known, else [n, ?, ?, c]. */
static int pooled_of_input0(pst_node *n, int ki, pst_shape *out, pst_status *st) {
    pst_shape x = pst_node_in_shape(n, 0);
    char sx[128];
    if (check_format(pst_node_attr_s(n, "data_format", "NHWC"), st) < 0) return PST_E_UNIMPLEMENTED;
    if (check_float(pst_node_in_dtype(n, 0), st) < 0) return PST_E_INVALID;
    if (x.rank >= 0 && x.rank != 4)
        return pst_status_set(st, PST_E_INVALID, "input must be 4-D (NHWC), got %s",
                              pst_shape_str(&x, sx, sizeof sx));
    int64_t w[4];
    int known = node_window(n, ki, w, st);
    if (known < 0) return PST_E_INVALID;
    *out = x.rank == 4 ? pst_shape_4d(x.dims[0], -1, -1, x.dims[3]) : pst_shape_4d(-1, -1, -1, -1);
    const char *pad = pst_node_attr_s(n, "padding", "");
    if (strcmp(pad, "SAME") != 0 && strcmp(pad, "VALID") != 0)
        return pst_status_set(st, PST_E_INVALID, "padding must be SAME or VALID, got '%s'", pad);
    if (known && x.rank == 4) {
        int same = strcmp(pad, "SAME") == 0;
        out->dims[1] = pst_conv_out_size(x.dims[1], w[0], w[2], same);
        out->dims[2] = pst_conv_out_size(x.dims[2], w[1], w[3], same);
        if ((x.dims[1] >= 0 && out->dims[1] <= 0) || (x.dims[2] >= 0 && out->dims[2] <= 0))
            return pst_status_set(st, PST_E_INVALID, "a %lldx%lld window over input %s gives an empty output",
                                  (long long)w[0], (long long)w[1], pst_shape_str(&x, sx, sizeof sx));
    }
    return 0;
}

static int pool_fwd_shape(pst_node *n, pst_status *st) {
    pst_shape p;
    if (pooled_of_input0(n, 1, &p, st) < 0) return st->code;
    int with_argmax = n->op->max_inputs == 1;
    if (with_argmax) {
        pst_dtype t = pst_node_attr_type(n, "Targmax", PST_INT64);
        if (t != PST_INT32 && t != PST_INT64)
            return pst_status_set(st, PST_E_INVALID, "Targmax must be int32 or int64");
        pst_node_set_output(n, 1, t, p);
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), p);
    return 0;
}

/* MaxPoolGradV2: input 0's shape; MaxPoolGradGrad[V2]: the pooled shape (input 1's). */
static int pool_bwd_shape(pst_node *n, pst_status *st) {
    pst_shape p;
    if (pooled_of_input0(n, 3, &p, st) < 0) return st->code;
    if (pst_shape_check_same_dtype(n, 0, 2, st) < 0) return PST_E_INVALID;
    int gradgrad = strstr(n->op->name, "GradGrad") != NULL;
    pst_shape o1 = pst_node_in_shape(n, 1);
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0),
                        gradgrad ? (pst_shape_is_known(&p) ? p : o1) : pst_node_in_shape(n, 0));
    return 0;
}

static int argmax_bwd_shape(pst_node *n, pst_status *st) {
    if (check_float(pst_node_in_dtype(n, 0), st) < 0) return PST_E_INVALID;
    if (pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    pst_dtype at = pst_node_in_dtype(n, 2);
    if (at != PST_INT32 && at != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "argmax must be int32 or int64, got %s", pst_dtype_name(at));
    int gradgrad = strstr(n->op->name, "GradGrad") != NULL;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_node_in_shape(n, gradgrad ? 2 : 0));
    return 0;
}

/* ---- Gradients (nn_grad.py's) ---------------------------------------------------------- */

static void copy_attrs(pst_node_builder *b, const pst_node *n, pst_dtype t, int window) {
    pst_nb_attr_type(b, "T", t);
    if (window) {
        pst_nb_attr(b, pst_node_attr(n, "ksize"));
        pst_nb_attr(b, pst_node_attr(n, "strides"));
    }
    pst_nb_attr_s(b, "padding", pst_node_attr_s(n, "padding", "VALID"));
    const pst_attr *ib = pst_node_attr(n, "include_batch_in_index");
    if (ib) pst_nb_attr(b, ib);
    if (strstr(n->op->name, "Argmax") == NULL) pst_nb_attr_s(b, "data_format", "NHWC");
}

/* op(in0, in1, dy[, in3, in4]) with n's attrs. */
static pst_output pool_op(pst_graph *g, const char *op, pst_node *n, pst_output a, pst_output b,
                          pst_output d, int v2_ki) {
    pst_node_builder *nb = pst_nb_new(g, op, NULL);
    pst_nb_input(nb, a);
    pst_nb_input(nb, b);
    pst_nb_input(nb, d);
    if (v2_ki) {
        pst_nb_input(nb, n->inputs[v2_ki]);
        pst_nb_input(nb, n->inputs[v2_ki + 1]);
    }
    copy_attrs(nb, n, pst_output_dtype(d), !v2_ki);
    return pst_nb_finish_out(nb);
}

static int maxpool_v2_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    dx[0] = pool_op(g, "MaxPoolGradV2", n, n->inputs[0], pst_out(n, 0), dy[0], 1);
    return 0;
}

static int with_argmax_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    if (dy[0].node == NULL) return 0;
    dx[0] = pool_op(g, "MaxPoolGradWithArgmax", n, n->inputs[0], dy[0], pst_out(n, 1), 0);
    return 0;
}

/* MaxPoolGrad, MaxPoolGradV2, MaxPoolGradGrad: zeros for the original input and output, and
 * the other order's op on dy for the gradient input. MaxPoolGradGrad's is MaxPoolGradV2 over
 * its ksize and strides as Consts (TF writes MaxPoolGrad, whose kernel here is float only). */
int pst__max_pool_grad_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    const char *name = n->op->name;
    dx[0] = pst_zeros_like(g, n->inputs[0], NULL);
    dx[1] = pst_zeros_like(g, n->inputs[1], NULL);
    if (strcmp(name, "MaxPoolGradGrad") != 0) {
        const char *op = !strcmp(name, "MaxPoolGrad") ? "MaxPoolGradGrad" : "MaxPoolGradGradV2";
        dx[2] = pool_op(g, op, n, n->inputs[0], n->inputs[1], dy[0], is_v2(n->op) ? 3 : 0);
        return 0;
    }
    const pst_attr *ka = pst_node_attr(n, "ksize"), *sa = pst_node_attr(n, "strides");
    if (ka == NULL || sa == NULL || ka->n != 4 || sa->n != 4) return 0; /* the op was refused */
    int32_t k[4], s[4];
    for (int i = 0; i < 4; i++) k[i] = (int32_t)ka->list.i[i], s[i] = (int32_t)sa->list.i[i];
    pst_node_builder *b = pst_nb_new(g, "MaxPoolGradV2", NULL);
    pst_nb_input(b, n->inputs[0]);
    pst_nb_input(b, n->inputs[1]);
    pst_nb_input(b, dy[0]);
    pst_nb_input(b, pst_const_i32_vec(g, 4, k, NULL));
    pst_nb_input(b, pst_const_i32_vec(g, 4, s, NULL));
    copy_attrs(b, n, pst_output_dtype(dy[0]), 0);
    dx[2] = pst_nb_finish_out(b);
    return 0;
}

/* MaxPoolGradWithArgmax (TF 1.15 has none built in; this is the one SegNet-style unpooling
 * code registers): zeros for input, MaxPoolGradGradWithArgmax for grad, none for argmax. */
static int argmax_grad_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    dx[0] = pst_zeros_like(g, n->inputs[0], NULL);
    dx[1] = pool_op(g, "MaxPoolGradGradWithArgmax", n, n->inputs[0], dy[0], n->inputs[2], 0);
    return 0;
}

/* AvgPoolGrad(orig_input_shape, grad): AvgPool of dy (nn_grad.py's _AvgPoolGradGrad). */
int pst__avg_pool_grad_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node_builder *b = pst_nb_new(g, "AvgPool", NULL);
    pst_nb_input(b, dy[0]);
    copy_attrs(b, n, pst_output_dtype(dy[0]), 1);
    dx[1] = pst_nb_finish_out(b);
    return 0;
}

/* ---- Registration ---------------------------------------------------------------------- */
static const pst_attr_spec v1_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                         {"ksize", PST_ATTR_LIST_INT, 1},
                                         {"strides", PST_ATTR_LIST_INT, 1},
                                         {"padding", PST_ATTR_STRING, 1},
                                         {"data_format", PST_ATTR_STRING, 0},
                                         {0}};
static const pst_attr_spec v2_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                         {"padding", PST_ATTR_STRING, 1},
                                         {"data_format", PST_ATTR_STRING, 0},
                                         {0}};
static const pst_attr_spec argmax_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                             {"Targmax", PST_ATTR_TYPE, 0},
                                             {"ksize", PST_ATTR_LIST_INT, 1},
                                             {"strides", PST_ATTR_LIST_INT, 1},
                                             {"padding", PST_ATTR_STRING, 1},
                                             {"include_batch_in_index", PST_ATTR_BOOL, 0},
                                             {0}};

#define POOL(nm, mn, no, at, sh, k, gr)                                                           \
    {.name = nm, .min_inputs = mn, .max_inputs = mn, .n_outputs = no, .attrs = at, .shape = sh,   \
     .kernel = k, .grad = gr}
static const pst_op_def pool_ops[] = {
    POOL("MaxPoolV2", 3, 1, v2_attrs, pool_fwd_shape, pool_fwd_kernel, maxpool_v2_grad),
    POOL("MaxPoolGradV2", 5, 1, v2_attrs, pool_bwd_shape, pool_bwd_kernel, pst__max_pool_grad_grad),
    POOL("MaxPoolGradGrad", 3, 1, v1_attrs, pool_bwd_shape, pool_bwd_kernel, pst__max_pool_grad_grad),
    POOL("MaxPoolGradGradV2", 5, 1, v2_attrs, pool_bwd_shape, pool_bwd_kernel, NULL),
    POOL("MaxPoolWithArgmax", 1, 2, argmax_attrs, pool_fwd_shape, pool_fwd_kernel, with_argmax_grad),
    POOL("MaxPoolGradWithArgmax", 3, 1, argmax_attrs, argmax_bwd_shape, argmax_bwd_kernel, argmax_grad_grad),
    POOL("MaxPoolGradGradWithArgmax", 3, 1, argmax_attrs, argmax_bwd_shape, argmax_bwd_kernel, NULL),
};

void pst__register_pool_more_ops(void) {
    for (size_t i = 0; i < sizeof pool_ops / sizeof pool_ops[0]; i++) pst_op_register(&pool_ops[i]);
}
