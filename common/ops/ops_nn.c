/* Neural-network ops (see ops_nn.h); the loops live in kernels_conv.c. */
#include "ops_nn.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_conv.h"
#include "op.h"
#include "ops.h"
#include "parallel.h"

static int need_float(pst_node *n, int i, pst_status *st) {
    pst_dtype dt = pst_node_in_dtype(n, i);
    if (dt != PST_FLOAT && dt != PST_DOUBLE)
        return pst_status_set(st, PST_E_INVALID, "input %d must be float or double, got %s", i,
                              pst_dtype_name(dt));
    return 0;
}

/* ---- MatMul ------------------------------------------------------------------------------ */

static int matmul_shape(pst_node *n, pst_status *st) {
    if (need_float(n, 0, st) < 0 || pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    pst_shape a = pst_node_in_shape(n, 0), b = pst_node_in_shape(n, 1);
    int ta = pst_node_attr_b(n, "transpose_a", 0), tb = pst_node_attr_b(n, "transpose_b", 0);
    char sa[128], sb[128];
    if ((a.rank >= 0 && a.rank != 2) || (b.rank >= 0 && b.rank != 2))
        return pst_status_set(st, PST_E_INVALID, "MatMul needs matrices, got %s and %s",
                              pst_shape_str(&a, sa, sizeof sa), pst_shape_str(&b, sb, sizeof sb));
    int64_t m = a.rank == 2 ? a.dims[ta ? 1 : 0] : -1, ka = a.rank == 2 ? a.dims[ta ? 0 : 1] : -1;
    int64_t kb = b.rank == 2 ? b.dims[tb ? 1 : 0] : -1, nn = b.rank == 2 ? b.dims[tb ? 0 : 1] : -1;
    if (ka >= 0 && kb >= 0 && ka != kb)
        return pst_status_set(st, PST_E_INVALID,
                              "inner dimensions differ: %s%s x %s%s", pst_shape_str(&a, sa, sizeof sa),
                              ta ? "^T" : "", pst_shape_str(&b, sb, sizeof sb), tb ? "^T" : "");
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_shape_2d(m, nn));
    return 0;
}

/* Rows [r0, r1) of the product, so the pool's threads split a MatMul by output rows. */
typedef struct mm_job {
    int ta, tb, n, k;
    const float *a;
    int lda;
    const float *b;
    int ldb;
    float *o;
} mm_job;

static void mm_range(void *ctx, int64_t r0, int64_t r1) {
    mm_job *j = ctx;
    const float *a = j->ta ? j->a + r0 : j->a + r0 * j->lda;
    cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans,
                (int)(r1 - r0), j->n, j->k, 1.0f, a, j->lda, j->b, j->ldb, 0.0f, j->o + r0 * j->n,
                j->n);
}

static int matmul_kernel(pst_kernel_ctx *c) {
    const pst_tensor *a = c->inputs[0], *b = c->inputs[1];
    int ta = pst_kctx_attr_b(c, "transpose_a", 0), tb = pst_kctx_attr_b(c, "transpose_b", 0);
    int64_t m = a->shape.dims[ta ? 1 : 0], k = a->shape.dims[ta ? 0 : 1];
    int64_t kb = b->shape.dims[tb ? 1 : 0], nn = b->shape.dims[tb ? 0 : 1];
    if (a->shape.rank != 2 || b->shape.rank != 2 || k != kb)
        return pst_kctx_error(c, PST_E_INVALID, "MatMul shapes do not agree (%lld vs %lld inner)",
                              (long long)k, (long long)kb);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, a->dtype, pst_shape_2d(m, nn));
    if (o == NULL) return c->status->code;
    if (m == 0 || nn == 0) return 0;
    if (k == 0) {
        memset(o->data, 0, o->nbytes);
        return 0;
    }
    if (a->dtype == PST_FLOAT) {
        mm_job j = {ta, tb, (int)nn, (int)k, pst_tensor_f32(a), (int)a->shape.dims[1],
                    pst_tensor_f32(b), (int)b->shape.dims[1], pst_tensor_f32(o)};
        /* one range per thread: every sgemm call packs all of b again */
        int64_t t = pst_parallel_threads(), grain = (m + t - 1) / t;
        pst_parallel_for(m, grain > 16 ? grain : 16, mm_range, &j);
    } else
        cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (int)m, (int)nn, (int)k, 1.0, pst_tensor_f64(a), (int)a->shape.dims[1],
                    pst_tensor_f64(b), (int)b->shape.dims[1], 0.0, pst_tensor_f64(o), (int)nn);
    return 0;
}

typedef pst_output (*mm_builder)(pst_graph *g, pst_output a, pst_output b, int ta, int tb,
                                 const char *name);

/* Gradients of y = op(a)·op(b) for each transposition (MatMul and BatchMatMul alike). */
static void product_grad(pst_graph *g, mm_builder mm, pst_output a, pst_output b, pst_output d,
                         int ta, int tb, pst_output *dx) {
    if (!ta && !tb) {
        dx[0] = mm(g, d, b, 0, 1, NULL);
        dx[1] = mm(g, a, d, 1, 0, NULL);
    } else if (!ta && tb) {
        dx[0] = mm(g, d, b, 0, 0, NULL);
        dx[1] = mm(g, d, a, 1, 0, NULL);
    } else if (ta && !tb) {
        dx[0] = mm(g, b, d, 0, 1, NULL);
        dx[1] = mm(g, a, d, 0, 0, NULL);
    } else {
        dx[0] = mm(g, b, d, 1, 1, NULL);
        dx[1] = mm(g, d, a, 1, 1, NULL);
    }
}

static int matmul_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    product_grad(g, pst_matmul, n->inputs[0], n->inputs[1], dy[0],
                 pst_node_attr_b(n, "transpose_a", 0), pst_node_attr_b(n, "transpose_b", 0), dx);
    return 0;
}

pst_output pst_matmul(pst_graph *g, pst_output a, pst_output b, int ta, int tb, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "MatMul", name);
    pst_nb_input(nb, a);
    pst_nb_input(nb, b);
    if (a.node) pst_nb_attr_type(nb, "T", pst_output_dtype(a));
    pst_nb_attr_b(nb, "transpose_a", ta);
    pst_nb_attr_b(nb, "transpose_b", tb);
    return pst_nb_finish_out(nb);
}

/* ---- BatchMatMul ------------------------------------------------------------------------- */

static int bmm_dims(const pst_shape *a, const pst_shape *b, int ax, int ay, int64_t *batch,
                    int64_t *m, int64_t *k, int64_t *nn, pst_status *st) {
    char sa[128], sb[128];
    if (a->rank < 2 || a->rank != b->rank)
        return pst_status_set(st, PST_E_INVALID, "BatchMatMul needs equal ranks >= 2: %s, %s",
                              pst_shape_str(a, sa, sizeof sa), pst_shape_str(b, sb, sizeof sb));
    *batch = 1;
    for (int d = 0; d < a->rank - 2; d++) {
        if (a->dims[d] >= 0 && b->dims[d] >= 0 && a->dims[d] != b->dims[d])
            return pst_status_set(st, PST_E_INVALID, "batch dims differ: %s, %s",
                                  pst_shape_str(a, sa, sizeof sa), pst_shape_str(b, sb, sizeof sb));
        *batch = (*batch < 0 || a->dims[d] < 0) ? -1 : *batch * a->dims[d];
    }
    int r = a->rank;
    *m = a->dims[ax ? r - 1 : r - 2];
    *k = a->dims[ax ? r - 2 : r - 1];
    int64_t kb = b->dims[ay ? r - 1 : r - 2];
    *nn = b->dims[ay ? r - 2 : r - 1];
    if (*k >= 0 && kb >= 0 && *k != kb)
        return pst_status_set(st, PST_E_INVALID, "inner dimensions differ: %s, %s",
                              pst_shape_str(a, sa, sizeof sa), pst_shape_str(b, sb, sizeof sb));
    return 0;
}

static int bmm_shape(pst_node *n, pst_status *st) {
    if (need_float(n, 0, st) < 0 || pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    pst_shape a = pst_node_in_shape(n, 0), b = pst_node_in_shape(n, 1), o = pst_shape_unknown();
    if (a.rank >= 0 && b.rank >= 0) {
        int64_t batch, m, k, nn;
        if (bmm_dims(&a, &b, pst_node_attr_b(n, "adj_x", 0), pst_node_attr_b(n, "adj_y", 0), &batch,
                     &m, &k, &nn, st) < 0)
            return PST_E_INVALID;
        o = a;
        o.dims[a.rank - 2] = m;
        o.dims[a.rank - 1] = nn;
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), o);
    return 0;
}

static int bmm_kernel(pst_kernel_ctx *c) {
    const pst_tensor *a = c->inputs[0], *b = c->inputs[1];
    int ax = pst_kctx_attr_b(c, "adj_x", 0), ay = pst_kctx_attr_b(c, "adj_y", 0);
    int64_t batch, m, k, nn;
    if (bmm_dims(&a->shape, &b->shape, ax, ay, &batch, &m, &k, &nn, c->status) < 0)
        return c->status->code;
    pst_shape os = a->shape;
    os.dims[os.rank - 2] = m;
    os.dims[os.rank - 1] = nn;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, a->dtype, os);
    if (o == NULL) return c->status->code;
    int lda = (int)a->shape.dims[a->shape.rank - 1], ldb = (int)b->shape.dims[b->shape.rank - 1];
    for (int64_t i = 0; i < batch; i++) {
        if (a->dtype == PST_FLOAT)
            cblas_sgemm(CblasRowMajor, ax ? CblasTrans : CblasNoTrans, ay ? CblasTrans : CblasNoTrans,
                        (int)m, (int)nn, (int)k, 1.0f, pst_tensor_f32(a) + i * m * k, lda,
                        pst_tensor_f32(b) + i * k * nn, ldb, 0.0f, pst_tensor_f32(o) + i * m * nn,
                        (int)nn);
        else
            cblas_dgemm(CblasRowMajor, ax ? CblasTrans : CblasNoTrans, ay ? CblasTrans : CblasNoTrans,
                        (int)m, (int)nn, (int)k, 1.0, pst_tensor_f64(a) + i * m * k, lda,
                        pst_tensor_f64(b) + i * k * nn, ldb, 0.0, pst_tensor_f64(o) + i * m * nn,
                        (int)nn);
    }
    return 0;
}

static int bmm_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    product_grad(g, pst_batch_matmul, n->inputs[0], n->inputs[1], dy[0],
                 pst_node_attr_b(n, "adj_x", 0), pst_node_attr_b(n, "adj_y", 0), dx);
    return 0;
}

pst_output pst_batch_matmul(pst_graph *g, pst_output a, pst_output b, int adj_x, int adj_y,
                            const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "BatchMatMul", name);
    pst_nb_input(nb, a);
    pst_nb_input(nb, b);
    if (a.node) pst_nb_attr_type(nb, "T", pst_output_dtype(a));
    pst_nb_attr_b(nb, "adj_x", adj_x);
    pst_nb_attr_b(nb, "adj_y", adj_y);
    return pst_nb_finish_out(nb);
}

/* ---- BiasAdd ----------------------------------------------------------------------------- */

static int bias_add_shape(pst_node *n, pst_status *st) {
    if (pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    pst_shape x = pst_node_in_shape(n, 0), b = pst_node_in_shape(n, 1);
    char sa[128], sb[128];
    if (b.rank >= 0 && b.rank != 1)
        return pst_status_set(st, PST_E_INVALID, "bias must be a vector, got %s",
                              pst_shape_str(&b, sb, sizeof sb));
    if (x.rank >= 0 && x.rank < 1) return pst_status_set(st, PST_E_INVALID, "input must have rank >= 1");
    if (x.rank >= 1 && b.rank == 1 && x.dims[x.rank - 1] >= 0 && b.dims[0] >= 0 &&
        x.dims[x.rank - 1] != b.dims[0])
        return pst_status_set(st, PST_E_INVALID, "bias %s does not match the last dim of %s",
                              pst_shape_str(&b, sb, sizeof sb), pst_shape_str(&x, sa, sizeof sa));
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), x);
    return 0;
}

typedef struct bias_job {
    const float *x, *b;
    float *y;
    int64_t c;
} bias_job;

static void bias_range(void *ctx, int64_t r0, int64_t r1) {
    bias_job *j = ctx;
    int64_t C = j->c;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t k = 0; k < C; k++) j->y[r * C + k] = j->x[r * C + k] + j->b[k];
}

static int bias_add_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *b = c->inputs[1];
    int64_t C = b->n;
    if (x->shape.rank < 1 || x->shape.dims[x->shape.rank - 1] != C)
        return pst_kctx_error(c, PST_E_INVALID, "bias of %lld does not match the last dim",
                              (long long)C);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    int64_t rows = C ? x->n / C : 0;
    if (x->dtype == PST_FLOAT) {
        bias_job j = {pst_tensor_f32(x), pst_tensor_f32(b), pst_tensor_f32(o), C};
        pst_parallel_for(rows, 1 + 16384 / (C ? C : 1), bias_range, &j);
    } else {
        for (int64_t i = 0; i < x->n; i++)
            pst_tensor_set_f64(o, i, pst_tensor_get_f64(x, i) + pst_tensor_get_f64(b, i % C));
    }
    return 0;
}

static int bias_grad_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape x = pst_node_in_shape(n, 0);
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), pst_shape_1d(x.rank > 0 ? x.dims[x.rank - 1] : -1));
    return 0;
}

static int bias_grad_kernel(pst_kernel_ctx *c) {
    const pst_tensor *d = c->inputs[0];
    int64_t C = d->shape.dims[d->shape.rank - 1], rows = C ? d->n / C : 0;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, d->dtype, pst_shape_1d(C));
    if (o == NULL) return c->status->code;
    if (d->dtype == PST_FLOAT) {
        float *y = pst_tensor_f32(o);
        const float *x = pst_tensor_f32(d);
        memset(y, 0, (size_t)C * sizeof(float));
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < C; k++) y[k] += x[r * C + k];
    } else {
        for (int64_t k = 0; k < C; k++) {
            double s = 0;
            for (int64_t r = 0; r < rows; r++) s += pst_tensor_get_f64(d, r * C + k);
            pst_tensor_set_f64(o, k, s);
        }
    }
    return 0;
}

static int bias_add_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    (void)n;
    dx[0] = dy[0];
    pst_node_builder *b = pst_nb_new(g, "BiasAddGrad", NULL);
    pst_nb_input(b, dy[0]);
    pst_nb_attr_type(b, "T", pst_output_dtype(dy[0]));
    dx[1] = pst_nb_finish_out(b);
    return 0;
}

pst_output pst_bias_add(pst_graph *g, pst_output x, pst_output bias, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "BiasAdd", name);
    pst_nb_input(nb, x);
    pst_nb_input(nb, bias);
    if (x.node) pst_nb_attr_type(nb, "T", pst_output_dtype(x));
    pst_nb_attr_s(nb, "data_format", "NHWC");
    return pst_nb_finish_out(nb);
}

/* ---- Conv2D and pooling ------------------------------------------------------------------- */

static int window_attrs(const pst_attr *strides, const pst_attr *ksize, const char *fmt,
                        int64_t *sh, int64_t *sw, int64_t *kh, int64_t *kw, pst_status *st) {
    if (fmt && strcmp(fmt, "NHWC") != 0)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "data_format %s is not supported (NHWC only)",
                              fmt);
    if (strides == NULL || strides->n != 4 || strides->list.i[0] != 1 || strides->list.i[3] != 1)
        return pst_status_set(st, PST_E_INVALID, "strides must be [1, sh, sw, 1]");
    *sh = strides->list.i[1];
    *sw = strides->list.i[2];
    if (ksize) {
        if (ksize->n != 4 || ksize->list.i[0] != 1 || ksize->list.i[3] != 1)
            return pst_status_set(st, PST_E_INVALID, "ksize must be [1, kh, kw, 1]");
        *kh = ksize->list.i[1];
        *kw = ksize->list.i[2];
    }
    if (*sh < 1 || *sw < 1) return pst_status_set(st, PST_E_INVALID, "strides must be positive");
    return 0;
}

static int conv_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_FLOAT || pst_shape_check_same_dtype(n, 0, 1, st) < 0)
        return pst_status_set(st, PST_E_INVALID, "Conv2D takes float32 inputs");
    pst_shape x = pst_node_in_shape(n, 0), f = pst_node_in_shape(n, 1);
    int64_t sh = 1, sw = 1, kh = 0, kw = 0;
    if (window_attrs(pst_node_attr(n, "strides"), NULL, pst_node_attr_s(n, "data_format", "NHWC"),
                     &sh, &sw, &kh, &kw, st) < 0)
        return PST_E_INVALID;
    char sx[128], sf[128];
    if ((x.rank >= 0 && x.rank != 4) || (f.rank >= 0 && f.rank != 4))
        return pst_status_set(st, PST_E_INVALID, "Conv2D needs 4-D input and filter, got %s and %s",
                              pst_shape_str(&x, sx, sizeof sx), pst_shape_str(&f, sf, sizeof sf));
    if (x.rank == 4 && f.rank == 4 && x.dims[3] >= 0 && f.dims[2] >= 0 && x.dims[3] != f.dims[2])
        return pst_status_set(st, PST_E_INVALID,
                              "input %s has %lld channels but filter %s expects %lld",
                              pst_shape_str(&x, sx, sizeof sx), (long long)x.dims[3],
                              pst_shape_str(&f, sf, sizeof sf), (long long)f.dims[2]);
    const char *pad = pst_node_attr_s(n, "padding", "");
    int same = strcmp(pad, "SAME") == 0;
    if (!same && strcmp(pad, "VALID") != 0)
        return pst_status_set(st, PST_E_INVALID, "padding must be SAME or VALID, got '%s'", pad);
    pst_shape o = pst_shape_4d(x.rank == 4 ? x.dims[0] : -1, -1, -1, f.rank == 4 ? f.dims[3] : -1);
    if (x.rank == 4 && f.rank == 4) {
        o.dims[1] = pst_conv_out_size(x.dims[1], f.dims[0], sh, same);
        o.dims[2] = pst_conv_out_size(x.dims[2], f.dims[1], sw, same);
        if ((x.dims[1] >= 0 && o.dims[1] <= 0) || (x.dims[2] >= 0 && o.dims[2] <= 0))
            return pst_status_set(st, PST_E_INVALID, "filter %s is larger than input %s (VALID)",
                                  pst_shape_str(&f, sf, sizeof sf), pst_shape_str(&x, sx, sizeof sx));
    }
    pst_node_set_output(n, 0, PST_FLOAT, o);
    return 0;
}

static int conv_geom(pst_kernel_ctx *c, const pst_shape *x, const pst_shape *f, pst_conv_geom *g) {
    int64_t sh = 1, sw = 1, kh = 0, kw = 0;
    if (window_attrs(pst_kctx_attr(c, "strides"), NULL, NULL, &sh, &sw, &kh, &kw, c->status) < 0)
        return c->status->code;
    if (x->rank != 4 || f->rank != 4 || x->dims[3] != f->dims[2])
        return pst_kctx_error(c, PST_E_INVALID, "input and filter shapes do not match");
    if (pst_conv_geom_make(g, x->dims[0], x->dims[1], x->dims[2], x->dims[3], f->dims[0],
                           f->dims[1], f->dims[3], sh, sw, pst_kctx_attr_s(c, "padding", "")) < 0)
        return pst_kctx_error(c, PST_E_INVALID, "bad padding or a window larger than the input");
    return 0;
}

static int conv_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *f = c->inputs[1];
    pst_conv_geom g;
    if (conv_geom(c, &x->shape, &f->shape, &g) < 0) return c->status->code;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_FLOAT, pst_shape_4d(g.n, g.oh, g.ow, g.oc));
    if (o == NULL) return c->status->code;
    pst_conv2d_forward(&g, pst_tensor_f32(x), pst_tensor_f32(f), pst_tensor_f32(o));
    return 0;
}

static int shape_from_tensor(const pst_tensor *t, pst_shape *s) {
    if (t->n != 4) return -1;
    s->rank = 4;
    for (int i = 0; i < 4; i++) s->dims[i] = pst_tensor_get_i64(t, i);
    return 0;
}

static int conv_bi_shape(pst_node *n, pst_status *st) {
    (void)st;
    const pst_tensor *sz = pst_node_in_const(n, 0);
    pst_shape s = pst_shape_4d(-1, -1, -1, -1);
    const pst_attr *hint = pst_node_attr(n, "_output_shape");
    if (sz)
        shape_from_tensor(sz, &s);
    else if (hint && hint->kind == PST_ATTR_SHAPE)
        s = hint->v.shape; /* a layer that knows the static shape (conv2d_transpose) */
    pst_node_set_output(n, 0, PST_FLOAT, s);
    return 0;
}

static int conv_bi_kernel(pst_kernel_ctx *c) {
    pst_shape xs;
    if (shape_from_tensor(c->inputs[0], &xs) < 0)
        return pst_kctx_error(c, PST_E_INVALID, "input_sizes must have 4 entries");
    const pst_tensor *f = c->inputs[1], *dy = c->inputs[2];
    pst_conv_geom g;
    if (conv_geom(c, &xs, &f->shape, &g) < 0) return c->status->code;
    if (dy->shape.rank != 4 || dy->shape.dims[1] != g.oh || dy->shape.dims[2] != g.ow ||
        dy->shape.dims[3] != g.oc)
        return pst_kctx_error(c, PST_E_INVALID, "out_backprop shape does not match the convolution");
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_FLOAT, xs);
    if (o == NULL) return c->status->code;
    pst_conv2d_backprop_input(&g, pst_tensor_f32(f), pst_tensor_f32(dy), pst_tensor_f32(o));
    return 0;
}

static int conv_bf_shape(pst_node *n, pst_status *st) {
    (void)st;
    const pst_tensor *sz = pst_node_in_const(n, 1);
    pst_shape s = pst_shape_4d(-1, -1, -1, -1);
    if (sz) shape_from_tensor(sz, &s);
    pst_node_set_output(n, 0, PST_FLOAT, s);
    return 0;
}

static int conv_bf_kernel(pst_kernel_ctx *c) {
    pst_shape fs;
    if (shape_from_tensor(c->inputs[1], &fs) < 0)
        return pst_kctx_error(c, PST_E_INVALID, "filter_sizes must have 4 entries");
    const pst_tensor *x = c->inputs[0], *dy = c->inputs[2];
    pst_conv_geom g;
    if (conv_geom(c, &x->shape, &fs, &g) < 0) return c->status->code;
    if (dy->shape.rank != 4 || dy->shape.dims[0] != g.n || dy->shape.dims[1] != g.oh ||
        dy->shape.dims[2] != g.ow || dy->shape.dims[3] != g.oc)
        return pst_kctx_error(c, PST_E_INVALID, "out_backprop shape does not match the convolution");
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_FLOAT, fs);
    if (o == NULL) return c->status->code;
    pst_conv2d_backprop_filter(&g, pst_tensor_f32(x), pst_tensor_f32(dy), pst_tensor_f32(o));
    return 0;
}

static void copy_conv_attrs(pst_node_builder *b, const pst_node *n) {
    pst_nb_attr_type(b, "T", PST_FLOAT);
    pst_nb_attr(b, pst_node_attr(n, "strides"));
    pst_nb_attr_s(b, "padding", pst_node_attr_s(n, "padding", "SAME"));
    pst_nb_attr_s(b, "data_format", "NHWC");
}

static int conv_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output x = n->inputs[0], f = n->inputs[1];
    pst_node_builder *b = pst_nb_new(g, "Conv2DBackpropInput", NULL);
    pst_nb_input(b, pst_shape_of(g, x, PST_INT32, NULL));
    pst_nb_input(b, f);
    pst_nb_input(b, dy[0]);
    copy_conv_attrs(b, n);
    dx[0] = pst_nb_finish_out(b);
    pst_shape fs = pst_output_shape(f);
    pst_output fsz = pst_shape_is_known(&fs)
                         ? pst_const_i32_vec(g, 4, (int32_t[]){(int32_t)fs.dims[0], (int32_t)fs.dims[1],
                                                               (int32_t)fs.dims[2], (int32_t)fs.dims[3]},
                                             NULL)
                         : pst_shape_of(g, f, PST_INT32, NULL);
    b = pst_nb_new(g, "Conv2DBackpropFilter", NULL);
    pst_nb_input(b, x);
    pst_nb_input(b, fsz);
    pst_nb_input(b, dy[0]);
    copy_conv_attrs(b, n);
    dx[1] = pst_nb_finish_out(b);
    return 0;
}

pst_output pst_conv2d(pst_graph *g, pst_output input, pst_output filter, int stride_h,
                      int stride_w, const char *padding, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "Conv2D", name);
    pst_nb_input(nb, input);
    pst_nb_input(nb, filter);
    pst_nb_attr_type(nb, "T", PST_FLOAT);
    int64_t s[4] = {1, stride_h, stride_w, 1};
    pst_nb_attr_list_i(nb, "strides", 4, s);
    pst_nb_attr_s(nb, "padding", padding);
    pst_nb_attr_s(nb, "data_format", "NHWC");
    return pst_nb_finish_out(nb);
}

static int pool_geom(const pst_attr *strides, const pst_attr *ksize, const char *fmt,
                     const char *pad, const pst_shape *x, pst_conv_geom *g, pst_status *st) {
    int64_t sh = 1, sw = 1, kh = 1, kw = 1;
    if (window_attrs(strides, ksize, fmt, &sh, &sw, &kh, &kw, st) < 0) return PST_E_INVALID;
    if (x->rank != 4) return pst_status_set(st, PST_E_INVALID, "pooling needs a 4-D input");
    if (pst_conv_geom_make(g, x->dims[0], x->dims[1] < 0 ? 1 << 20 : x->dims[1],
                           x->dims[2] < 0 ? 1 << 20 : x->dims[2], x->dims[3], kh, kw, x->dims[3],
                           sh, sw, pad) < 0)
        return pst_status_set(st, PST_E_INVALID, "bad padding '%s' or a window larger than the "
                              "input", pad);
    if (x->dims[1] < 0) g->oh = -1;
    if (x->dims[2] < 0) g->ow = -1;
    return 0;
}

static int pool_shape(pst_node *n, pst_status *st) {
    pst_shape x = pst_node_in_shape(n, 0);
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (dt != PST_FLOAT && dt != PST_DOUBLE)
        return pst_status_set(st, PST_E_INVALID, "pooling takes float32 or float64, got %s",
                              pst_dtype_name(dt));
    if (x.rank < 0) {
        pst_node_set_output(n, 0, dt, pst_shape_4d(-1, -1, -1, -1));
        return 0;
    }
    pst_conv_geom g;
    if (pool_geom(pst_node_attr(n, "strides"), pst_node_attr(n, "ksize"),
                  pst_node_attr_s(n, "data_format", "NHWC"), pst_node_attr_s(n, "padding", ""), &x,
                  &g, st) < 0)
        return PST_E_INVALID;
    pst_node_set_output(n, 0, dt, pst_shape_4d(x.dims[0], g.oh, g.ow, x.dims[3]));
    return 0;
}

static int pool_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    pst_conv_geom g;
    if (pool_geom(pst_kctx_attr(c, "strides"), pst_kctx_attr(c, "ksize"), NULL,
                  pst_kctx_attr_s(c, "padding", ""), &x->shape, &g, c->status) < 0)
        return c->status->code;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, pst_shape_4d(g.n, g.oh, g.ow, g.c));
    if (o == NULL) return c->status->code;
    if (x->dtype == PST_DOUBLE)
        pst_pool_f64(&g, strcmp(c->op->name, "MaxPool") == 0 ? PST_POOL_MAX_FWD : PST_POOL_AVG_FWD,
                     pst_tensor_f64(x), NULL, NULL, pst_tensor_f64(o));
    else if (strcmp(c->op->name, "MaxPool") == 0)
        pst_maxpool_forward(&g, pst_tensor_f32(x), pst_tensor_f32(o));
    else
        pst_avgpool_forward(&g, pst_tensor_f32(x), pst_tensor_f32(o));
    return 0;
}

/* MaxPoolGrad(orig_input, orig_output, grad); AvgPoolGrad(orig_input_shape, grad). */
static int pool_grad_kernel(pst_kernel_ctx *c) {
    int is_max = strcmp(c->op->name, "MaxPoolGrad") == 0;
    pst_shape xs;
    if (is_max)
        xs = c->inputs[0]->shape;
    else if (shape_from_tensor(c->inputs[0], &xs) < 0)
        return pst_kctx_error(c, PST_E_INVALID, "orig_input_shape must have 4 entries");
    const pst_tensor *dy = c->inputs[is_max ? 2 : 1];
    pst_conv_geom g;
    if (pool_geom(pst_kctx_attr(c, "strides"), pst_kctx_attr(c, "ksize"), NULL,
                  pst_kctx_attr_s(c, "padding", ""), &xs, &g, c->status) < 0)
        return c->status->code;
    if (dy->shape.rank != 4 || dy->shape.dims[1] != g.oh || dy->shape.dims[2] != g.ow)
        return pst_kctx_error(c, PST_E_INVALID, "gradient shape does not match the pooling");
    if (is_max && (c->inputs[0]->dtype != dy->dtype || c->inputs[1]->dtype != dy->dtype))
        return pst_kctx_error(c, PST_E_INVALID, "orig_input, orig_output and grad dtypes differ");
    if (dy->dtype != PST_FLOAT && dy->dtype != PST_DOUBLE)
        return pst_kctx_error(c, PST_E_INVALID, "pooling gradients take float32 or float64, got %s",
                              pst_dtype_name(dy->dtype));
    pst_tensor *o = pst_kctx_alloc_output(c, 0, dy->dtype, xs);
    if (o == NULL) return c->status->code;
    if (dy->dtype == PST_DOUBLE)
        pst_pool_f64(&g, is_max ? PST_POOL_MAX_BWD : PST_POOL_AVG_BWD,
                     is_max ? pst_tensor_f64(c->inputs[0]) : NULL,
                     is_max ? pst_tensor_f64(c->inputs[1]) : NULL, pst_tensor_f64(dy),
                     pst_tensor_f64(o));
    else if (is_max)
        pst_maxpool_backward(&g, pst_tensor_f32(c->inputs[0]), pst_tensor_f32(c->inputs[1]),
                             pst_tensor_f32(dy), pst_tensor_f32(o));
    else
        pst_avgpool_backward(&g, pst_tensor_f32(dy), pst_tensor_f32(o));
    return 0;
}

static int pool_grad_shape(pst_node *n, pst_status *st) {
    (void)st;
    int is_max = strcmp(n->op->name, "MaxPoolGrad") == 0;
    pst_shape s = pst_shape_4d(-1, -1, -1, -1);
    if (is_max)
        s = pst_node_in_shape(n, 0);
    else if (pst_node_in_const(n, 0))
        shape_from_tensor(pst_node_in_const(n, 0), &s);
    pst_dtype dt = pst_node_in_dtype(n, is_max ? 2 : 1);
    pst_node_set_output(n, 0, dt == PST_DOUBLE ? PST_DOUBLE : PST_FLOAT, s);
    return 0;
}

static void copy_pool_attrs(pst_node_builder *b, const pst_node *n) {
    pst_nb_attr_type(b, "T", pst_node_in_dtype(n, 0) == PST_DOUBLE ? PST_DOUBLE : PST_FLOAT);
    pst_nb_attr(b, pst_node_attr(n, "strides"));
    pst_nb_attr(b, pst_node_attr(n, "ksize"));
    pst_nb_attr_s(b, "padding", pst_node_attr_s(n, "padding", "VALID"));
    pst_nb_attr_s(b, "data_format", "NHWC");
}

static int pool_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int is_max = strcmp(n->op->name, "MaxPool") == 0;
    pst_node_builder *b = pst_nb_new(g, is_max ? "MaxPoolGrad" : "AvgPoolGrad", NULL);
    if (is_max) {
        pst_nb_input(b, n->inputs[0]);
        pst_nb_input(b, pst_out(n, 0));
    } else {
        pst_nb_input(b, pst_shape_of(g, n->inputs[0], PST_INT32, NULL));
    }
    pst_nb_input(b, dy[0]);
    copy_pool_attrs(b, n);
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

static pst_output pool(pst_graph *g, const char *op, pst_output x, int kh, int kw, int sh, int sw,
                       const char *padding, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, op, name);
    pst_nb_input(nb, x);
    pst_nb_attr_type(nb, "T", PST_FLOAT);
    int64_t k[4] = {1, kh, kw, 1}, s[4] = {1, sh, sw, 1};
    pst_nb_attr_list_i(nb, "ksize", 4, k);
    pst_nb_attr_list_i(nb, "strides", 4, s);
    pst_nb_attr_s(nb, "padding", padding);
    pst_nb_attr_s(nb, "data_format", "NHWC");
    return pst_nb_finish_out(nb);
}

pst_output pst_max_pool(pst_graph *g, pst_output x, int kh, int kw, int sh, int sw,
                        const char *padding, const char *name) {
    return pool(g, "MaxPool", x, kh, kw, sh, sw, padding, name);
}
pst_output pst_avg_pool(pst_graph *g, pst_output x, int kh, int kw, int sh, int sw,
                        const char *padding, const char *name) {
    return pool(g, "AvgPool", x, kh, kw, sh, sw, padding, name);
}

/* ---- Softmax family ------------------------------------------------------------------------ */

/* Row-wise (log-)softmax of an [rows, C] float buffer. */
static void softmax_rows(const float *x, float *y, int64_t rows, int64_t C, int log_out) {
    for (int64_t r = 0; r < rows; r++) {
        const float *a = x + r * C;
        float *o = y + r * C, m = -INFINITY, s = 0;
        for (int64_t k = 0; k < C; k++) m = a[k] > m ? a[k] : m;
        for (int64_t k = 0; k < C; k++) {
            o[k] = expf(a[k] - m);
            s += o[k];
        }
        if (log_out) {
            float ls = logf(s) + m;
            for (int64_t k = 0; k < C; k++) o[k] = a[k] - ls;
        } else {
            float inv = 1.0f / s;
            for (int64_t k = 0; k < C; k++) o[k] *= inv;
        }
    }
}

static void softmax_rows_f64(const double *x, double *y, int64_t rows, int64_t C, int log_out) {
    for (int64_t r = 0; r < rows; r++) {
        const double *a = x + r * C;
        double *o = y + r * C, m = -INFINITY, s = 0;
        for (int64_t k = 0; k < C; k++) m = a[k] > m ? a[k] : m;
        for (int64_t k = 0; k < C; k++) s += exp(a[k] - m);
        for (int64_t k = 0; k < C; k++) o[k] = log_out ? a[k] - m - log(s) : exp(a[k] - m) / s;
    }
}

static int softmax_shape(pst_node *n, pst_status *st) {
    if (need_float(n, 0, st) < 0) return PST_E_INVALID;
    pst_shape s = pst_node_in_shape(n, 0);
    if (s.rank == 0) return pst_status_set(st, PST_E_INVALID, "softmax needs rank >= 1");
    return pst_shape_same_as_input0(n, st);
}

static int softmax_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int log_out = strcmp(c->op->name, "LogSoftmax") == 0;
    int64_t C = x->shape.dims[x->shape.rank - 1], rows = C ? x->n / C : 0;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    if (x->dtype == PST_FLOAT)
        softmax_rows(pst_tensor_f32(x), pst_tensor_f32(o), rows, C, log_out);
    else
        softmax_rows_f64(pst_tensor_f64(x), pst_tensor_f64(o), rows, C, log_out);
    return 0;
}

/* softmax: dx = (dy - sum(dy * y, -1)) * y; log_softmax: dx = dy - exp(y) * sum(dy, -1). */
static int softmax_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int log_out = strcmp(n->op->name, "LogSoftmax") == 0;
    pst_output y = pst_out(n, 0);
    int32_t last = -1;
    if (log_out) {
        pst_output s = pst_reduce_sum(g, dy[0], 1, &last, 1, NULL);
        dx[0] = pst_sub(g, dy[0], pst_mul(g, pst_exp(g, y, NULL), s, NULL), NULL);
    } else {
        pst_output s = pst_reduce_sum(g, pst_mul(g, dy[0], y, NULL), 1, &last, 1, NULL);
        dx[0] = pst_mul(g, pst_sub(g, dy[0], s, NULL), y, NULL);
    }
    return 0;
}

pst_output pst_softmax(pst_graph *g, pst_output logits, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "Softmax", name);
    pst_nb_input(nb, logits);
    if (logits.node) pst_nb_attr_type(nb, "T", pst_output_dtype(logits));
    return pst_nb_finish_out(nb);
}
pst_output pst_log_softmax(pst_graph *g, pst_output logits, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "LogSoftmax", name);
    pst_nb_input(nb, logits);
    if (logits.node) pst_nb_attr_type(nb, "T", pst_output_dtype(logits));
    return pst_nb_finish_out(nb);
}

static int xent_shape(pst_node *n, pst_status *st) {
    int sparse = strcmp(n->op->name, "SparseSoftmaxCrossEntropyWithLogits") == 0;
    if (need_float(n, 0, st) < 0) return PST_E_INVALID;
    pst_shape l = pst_node_in_shape(n, 0), t = pst_node_in_shape(n, 1);
    char a[128], b[128];
    if (l.rank >= 0 && l.rank != 2)
        return pst_status_set(st, PST_E_INVALID, "logits must be [batch, classes], got %s",
                              pst_shape_str(&l, a, sizeof a));
    if (sparse) {
        pst_dtype lt = pst_node_in_dtype(n, 1);
        if (lt != PST_INT32 && lt != PST_INT64)
            return pst_status_set(st, PST_E_INVALID, "labels must be int32 or int64, got %s",
                                  pst_dtype_name(lt));
        if (t.rank >= 0 && (t.rank != 1 || (l.rank == 2 && l.dims[0] >= 0 && t.dims[0] >= 0 &&
                                              t.dims[0] != l.dims[0])))
            return pst_status_set(st, PST_E_INVALID, "labels %s do not match logits %s",
                                  pst_shape_str(&t, b, sizeof b), pst_shape_str(&l, a, sizeof a));
    } else {
        if (pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
        if (!pst_shape_compatible(&l, &t))
            return pst_status_set(st, PST_E_INVALID, "labels %s do not match logits %s",
                                  pst_shape_str(&t, b, sizeof b), pst_shape_str(&l, a, sizeof a));
    }
    pst_dtype dt = pst_node_in_dtype(n, 0);
    pst_node_set_output(n, 0, dt, pst_shape_1d(l.rank == 2 ? l.dims[0] : -1));
    pst_node_set_output(n, 1, dt, l.rank == 2 ? l : pst_shape_2d(-1, -1));
    return 0;
}

static int xent_kernel(pst_kernel_ctx *c) {
    int sparse = strcmp(c->op->name, "SparseSoftmaxCrossEntropyWithLogits") == 0;
    const pst_tensor *x = c->inputs[0], *t = c->inputs[1];
    if (x->shape.rank != 2) return pst_kctx_error(c, PST_E_INVALID, "logits must be 2-D");
    int64_t N = x->shape.dims[0], C = x->shape.dims[1];
    if (sparse ? t->n != N : !pst_shape_equal(&t->shape, &x->shape))
        return pst_kctx_error(c, PST_E_INVALID, "labels do not match logits");
    if (sparse)
        for (int64_t i = 0; i < N; i++) {
            int64_t lab = pst_tensor_get_i64(t, i);
            if (lab < 0 || lab >= C)
                return pst_kctx_error(c, PST_E_INVALID,
                                      "label %lld at index %lld is out of range [0, %lld)",
                                      (long long)lab, (long long)i, (long long)C);
        }
    pst_tensor *loss = pst_kctx_alloc_output(c, 0, x->dtype, pst_shape_1d(N));
    pst_tensor *bp = pst_kctx_alloc_output(c, 1, x->dtype, x->shape);
    if (loss == NULL || bp == NULL) return c->status->code;
    if (x->dtype == PST_FLOAT) {
        float *p = pst_tensor_f32(bp), *l = pst_tensor_f32(loss);
        softmax_rows(pst_tensor_f32(x), p, N, C, 1); /* log-probabilities */
        for (int64_t i = 0; i < N; i++) {
            float *row = p + i * C, s = 0;
            if (sparse) {
                int64_t lab = pst_tensor_get_i64(t, i);
                s = -row[lab];
                for (int64_t k = 0; k < C; k++) row[k] = expf(row[k]);
                row[lab] -= 1;
            } else {
                const float *lab = pst_tensor_f32(t) + i * C;
                for (int64_t k = 0; k < C; k++) {
                    s -= lab[k] * row[k];
                    row[k] = expf(row[k]) - lab[k];
                }
            }
            l[i] = s;
        }
    } else {
        double *p = pst_tensor_f64(bp), *l = pst_tensor_f64(loss);
        softmax_rows_f64(pst_tensor_f64(x), p, N, C, 1);
        for (int64_t i = 0; i < N; i++) {
            double *row = p + i * C, s = 0;
            for (int64_t k = 0; k < C; k++) {
                double lab = sparse ? (pst_tensor_get_i64(t, i) == k) : pst_tensor_f64(t)[i * C + k];
                s -= lab * row[k];
                row[k] = exp(row[k]) - lab;
            }
            l[i] = s;
        }
    }
    return 0;
}

static int xent_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    if (dy[0].node) dx[0] = pst_mul(g, pst_out(n, 1), pst_expand_dims(g, dy[0], -1, NULL), NULL);
    return 0;
}

static pst_node *xent(pst_graph *g, const char *op, pst_output logits, pst_output labels,
                      const char *name) {
    pst_node_builder *nb = pst_nb_new(g, op, name);
    pst_nb_input(nb, logits);
    pst_nb_input(nb, labels);
    if (logits.node) pst_nb_attr_type(nb, "T", pst_output_dtype(logits));
    if (labels.node && strncmp(op, "Sparse", 6) == 0)
        pst_nb_attr_type(nb, "Tlabels", pst_output_dtype(labels));
    return pst_nb_finish(nb);
}

pst_node *pst_softmax_cross_entropy_with_logits(pst_graph *g, pst_output logits,
                                                pst_output labels, const char *name) {
    return xent(g, "SoftmaxCrossEntropyWithLogits", logits, labels, name);
}
pst_node *pst_sparse_softmax_cross_entropy_with_logits(pst_graph *g, pst_output logits,
                                                       pst_output labels, const char *name) {
    return xent(g, "SparseSoftmaxCrossEntropyWithLogits", logits, labels, name);
}

/* ---- FusedBatchNorm ------------------------------------------------------------------------ */

static int bn_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_FLOAT)
        return pst_status_set(st, PST_E_INVALID, "FusedBatchNorm takes float32");
    const char *fmt = pst_node_attr_s(n, "data_format", "NHWC");
    if (strcmp(fmt, "NHWC") != 0)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "data_format %s is not supported", fmt);
    pst_shape x = pst_node_in_shape(n, 0);
    int64_t C = x.rank > 0 ? x.dims[x.rank - 1] : -1;
    int training = pst_node_attr_b(n, "is_training", 1);
    for (int i = 1; i < 5; i++) {
        pst_shape s = pst_node_in_shape(n, i);
        char a[128];
        /* In training mode TF passes empty mean and variance (they are computed). */
        if (training && i >= 3 && s.rank == 1 && s.dims[0] == 0) continue;
        if (s.rank >= 0 && (s.rank != 1 || (C >= 0 && s.dims[0] >= 0 && s.dims[0] != C)))
            return pst_status_set(st, PST_E_INVALID, "input %d has shape %s, expected [%lld]", i,
                                  pst_shape_str(&s, a, sizeof a), (long long)C);
    }
    pst_node_set_output(n, 0, PST_FLOAT, x);
    for (int i = 1; i < 5; i++) pst_node_set_output(n, i, PST_FLOAT, pst_shape_1d(C));
    return 0;
}

static int bn_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int64_t C = x->shape.dims[x->shape.rank - 1], rows = C ? x->n / C : 0;
    int training = pst_kctx_attr_b(c, "is_training", 1);
    for (int i = 1; i < 5; i++)
        if (c->inputs[i]->n != C && !(training && i >= 3 && c->inputs[i]->n == 0))
            return pst_kctx_error(c, PST_E_INVALID, "input %d must have %lld values", i, (long long)C);
    float eps = pst_kctx_attr_f(c, "epsilon", 1e-3f);
    pst_tensor *y = pst_kctx_alloc_output(c, 0, PST_FLOAT, x->shape);
    pst_tensor *bm = pst_kctx_alloc_output(c, 1, PST_FLOAT, pst_shape_1d(C));
    pst_tensor *bv = pst_kctx_alloc_output(c, 2, PST_FLOAT, pst_shape_1d(C));
    pst_tensor *r1 = pst_kctx_alloc_output(c, 3, PST_FLOAT, pst_shape_1d(C));
    pst_tensor *r2 = pst_kctx_alloc_output(c, 4, PST_FLOAT, pst_shape_1d(C));
    if (!y || !bm || !bv || !r1 || !r2) return c->status->code;
    const float *xs = pst_tensor_f32(x), *scale = pst_tensor_f32(c->inputs[1]),
                *off = pst_tensor_f32(c->inputs[2]);
    float *mean = pst_tensor_f32(r1), *var = pst_tensor_f32(r2);
    if (training) {
        double *s = calloc((size_t)C, sizeof *s), *s2 = calloc((size_t)C, sizeof *s2);
        PST_ASSERT(s && s2);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < C; k++) s[k] += xs[r * C + k];
        for (int64_t k = 0; k < C; k++) mean[k] = (float)(s[k] / (double)rows);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < C; k++) {
                double d = xs[r * C + k] - mean[k];
                s2[k] += d * d;
            }
        for (int64_t k = 0; k < C; k++) {
            var[k] = (float)(s2[k] / (double)rows);
            pst_tensor_f32(bm)[k] = mean[k];
            /* The variance reported for moving averages is unbiased, as in TensorFlow. */
            pst_tensor_f32(bv)[k] = rows > 1 ? (float)(s2[k] / (double)(rows - 1)) : var[k];
        }
        free(s);
        free(s2);
    } else {
        memcpy(mean, pst_tensor_f32(c->inputs[3]), (size_t)C * sizeof(float));
        memcpy(var, pst_tensor_f32(c->inputs[4]), (size_t)C * sizeof(float));
        memcpy(pst_tensor_f32(bm), mean, (size_t)C * sizeof(float));
        memcpy(pst_tensor_f32(bv), var, (size_t)C * sizeof(float));
    }
    float *mul = malloc((size_t)C * sizeof *mul), *add = malloc((size_t)C * sizeof *add);
    PST_ASSERT(mul && add);
    for (int64_t k = 0; k < C; k++) {
        mul[k] = scale[k] / sqrtf(var[k] + eps);
        add[k] = off[k] - mean[k] * mul[k];
    }
    float *ys = pst_tensor_f32(y);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < C; k++) ys[r * C + k] = xs[r * C + k] * mul[k] + add[k];
    free(mul);
    free(add);
    return 0;
}

/* FusedBatchNormGrad(dy, x, scale, reserve_1 (mean), reserve_2 (variance)) ->
 * dx, dscale, doffset, and two empty outputs. */
static int bn_grad_kernel(pst_kernel_ctx *c) {
    const pst_tensor *dy = c->inputs[0], *x = c->inputs[1];
    int64_t C = x->shape.dims[x->shape.rank - 1], rows = C ? x->n / C : 0;
    float eps = pst_kctx_attr_f(c, "epsilon", 1e-3f);
    int training = pst_kctx_attr_b(c, "is_training", 1);
    const float *d = pst_tensor_f32(dy), *xs = pst_tensor_f32(x), *scale = pst_tensor_f32(c->inputs[2]),
                *mean = pst_tensor_f32(c->inputs[3]), *var = pst_tensor_f32(c->inputs[4]);
    pst_tensor *dx = pst_kctx_alloc_output(c, 0, PST_FLOAT, x->shape);
    pst_tensor *ds = pst_kctx_alloc_output(c, 1, PST_FLOAT, pst_shape_1d(C));
    pst_tensor *db = pst_kctx_alloc_output(c, 2, PST_FLOAT, pst_shape_1d(C));
    pst_tensor *e1 = pst_kctx_alloc_output(c, 3, PST_FLOAT, pst_shape_1d(0));
    pst_tensor *e2 = pst_kctx_alloc_output(c, 4, PST_FLOAT, pst_shape_1d(0));
    if (!dx || !ds || !db || !e1 || !e2) return c->status->code;
    double *sdy = calloc((size_t)C, sizeof *sdy), *sdyx = calloc((size_t)C, sizeof *sdyx);
    float *inv = malloc((size_t)C * sizeof *inv);
    PST_ASSERT(sdy && sdyx && inv);
    for (int64_t k = 0; k < C; k++) inv[k] = 1.0f / sqrtf(var[k] + eps);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < C; k++) {
            float xh = (xs[r * C + k] - mean[k]) * inv[k];
            sdy[k] += d[r * C + k];
            sdyx[k] += d[r * C + k] * xh;
        }
    float *o = pst_tensor_f32(dx);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < C; k++) {
            if (training) {
                float xh = (xs[r * C + k] - mean[k]) * inv[k];
                o[r * C + k] = scale[k] * inv[k] / (float)rows *
                               ((float)rows * d[r * C + k] - (float)sdy[k] - xh * (float)sdyx[k]);
            } else {
                o[r * C + k] = d[r * C + k] * scale[k] * inv[k];
            }
        }
    for (int64_t k = 0; k < C; k++) {
        pst_tensor_f32(ds)[k] = (float)sdyx[k];
        pst_tensor_f32(db)[k] = (float)sdy[k];
    }
    free(sdy);
    free(sdyx);
    free(inv);
    return 0;
}

static int bn_grad_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape x = pst_node_in_shape(n, 1);
    int64_t C = x.rank > 0 ? x.dims[x.rank - 1] : -1;
    pst_node_set_output(n, 0, PST_FLOAT, x);
    pst_node_set_output(n, 1, PST_FLOAT, pst_shape_1d(C));
    pst_node_set_output(n, 2, PST_FLOAT, pst_shape_1d(C));
    pst_node_set_output(n, 3, PST_FLOAT, pst_shape_1d(0));
    pst_node_set_output(n, 4, PST_FLOAT, pst_shape_1d(0));
    return 0;
}

static int bn_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    if (dy[0].node == NULL) return 0;
    pst_node_builder *b = pst_nb_new(g, "FusedBatchNormGrad", NULL);
    pst_nb_input(b, dy[0]);
    pst_nb_input(b, n->inputs[0]);
    pst_nb_input(b, n->inputs[1]);
    pst_nb_input(b, pst_out(n, 3));
    pst_nb_input(b, pst_out(n, 4));
    pst_nb_attr_type(b, "T", PST_FLOAT);
    pst_nb_attr_f(b, "epsilon", pst_node_attr_f(n, "epsilon", 1e-3f));
    pst_nb_attr_b(b, "is_training", pst_node_attr_b(n, "is_training", 1));
    pst_nb_attr_s(b, "data_format", "NHWC");
    pst_node *gn = pst_nb_finish(b);
    if (gn == NULL) return pst_graph_error(g);
    dx[0] = pst_out(gn, 0);
    dx[1] = pst_out(gn, 1);
    dx[2] = pst_out(gn, 2);
    return 0;
}

pst_node *pst_fused_batch_norm(pst_graph *g, pst_output x, pst_output scale, pst_output offset,
                               pst_output mean, pst_output variance, float epsilon,
                               int is_training, const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "FusedBatchNorm", name);
    pst_nb_input(nb, x);
    pst_nb_input(nb, scale);
    pst_nb_input(nb, offset);
    pst_nb_input(nb, mean);
    pst_nb_input(nb, variance);
    pst_nb_attr_type(nb, "T", PST_FLOAT);
    pst_nb_attr_f(nb, "epsilon", epsilon);
    pst_nb_attr_b(nb, "is_training", is_training);
    pst_nb_attr_s(nb, "data_format", "NHWC");
    return pst_nb_finish(nb);
}

/* ---- InTopK ---------------------------------------------------------------------------------- */

static int in_top_k_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_FLOAT || !pst_dtype_is_int(pst_node_in_dtype(n, 1)))
        return pst_status_set(st, PST_E_INVALID, "InTopK takes float predictions, int targets");
    pst_shape p = pst_node_in_shape(n, 0);
    pst_node_set_output(n, 0, PST_BOOL, pst_shape_1d(p.rank == 2 ? p.dims[0] : -1));
    return 0;
}

static int in_top_k_kernel(pst_kernel_ctx *c) {
    const pst_tensor *p = c->inputs[0], *t = c->inputs[1];
    int64_t k = pst_kctx_attr_i(c, "k", 1);
    if (p->shape.rank != 2 || t->n != p->shape.dims[0])
        return pst_kctx_error(c, PST_E_INVALID, "predictions must be [batch, classes] with a "
                              "target per row");
    int64_t N = p->shape.dims[0], C = p->shape.dims[1];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_BOOL, pst_shape_1d(N));
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < N; i++) {
        int64_t lab = pst_tensor_get_i64(t, i);
        int ok = 0;
        if (lab >= 0 && lab < C) {
            const float *row = pst_tensor_f32(p) + i * C;
            int64_t above = 0;
            for (int64_t j = 0; j < C; j++) above += row[j] > row[lab];
            ok = isfinite(row[lab]) && above < k;
        }
        pst_tensor_u8(o)[i] = (uint8_t)ok;
    }
    return 0;
}

pst_output pst_in_top_k(pst_graph *g, pst_output predictions, pst_output targets, int k,
                        const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "InTopK", name);
    pst_nb_input(nb, predictions);
    pst_nb_input(nb, targets);
    if (targets.node) pst_nb_attr_type(nb, "T", pst_output_dtype(targets));
    pst_nb_attr_i(nb, "k", k);
    return pst_nb_finish_out(nb);
}

/* ---- Registration ---------------------------------------------------------------------------- */

static const pst_attr_spec mm_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"transpose_a", PST_ATTR_BOOL, 0},
                                         {"transpose_b", PST_ATTR_BOOL, 0}, {0}};
static const pst_attr_spec bmm_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"adj_x", PST_ATTR_BOOL, 0},
                                          {"adj_y", PST_ATTR_BOOL, 0}, {0}};
static const pst_attr_spec bias_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"data_format", PST_ATTR_STRING, 0}, {0}};
/* ---- DepthwiseConv2dNative (separable convolutions, MobileNet) -------------------------
 * filter [kh, kw, C, M]: output channel c*M + m convolves input channel c with filter (c, m)
 * alone. BackpropInput(input_sizes, filter, dy), BackpropFilter(input, filter_sizes, dy). */
static int depthwise_shape(pst_node *n, pst_status *st) {
    if (conv_shape(n, st) < 0) return st->code;
    pst_shape f = pst_node_in_shape(n, 1), o = n->out_shapes[0];
    o.dims[3] = f.rank == 4 && f.dims[2] >= 0 && f.dims[3] >= 0 ? f.dims[2] * f.dims[3] : -1;
    pst_node_set_output(n, 0, PST_FLOAT, o);
    return 0;
}

/* mode 0: out = conv(x, f); 1: x += conv^T(dy, f); 2: f += corr(x, dy). */
static void depthwise(int mode, const pst_conv_geom *g, int64_t M, float *x, float *f, float *y) {
    for (int64_t b = 0; b < g->n; b++)
        for (int64_t oy = 0; oy < g->oh; oy++)
            for (int64_t ox = 0; ox < g->ow; ox++)
                for (int64_t c = 0; c < g->c; c++)
                    for (int64_t m = 0; m < M; m++) {
                        float *out = &y[((b * g->oh + oy) * g->ow + ox) * g->c * M + c * M + m];
                        double acc = 0;
                        for (int64_t i = 0; i < g->kh; i++) {
                            int64_t iy = oy * g->sh - g->pad_top + i;
                            if (iy < 0 || iy >= g->h) continue;
                            for (int64_t j = 0; j < g->kw; j++) {
                                int64_t ix = ox * g->sw - g->pad_left + j;
                                if (ix < 0 || ix >= g->w) continue;
                                float *xv = &x[((b * g->h + iy) * g->w + ix) * g->c + c];
                                float *fv = &f[(i * g->kw + j) * g->c * M + c * M + m];
                                if (mode == 0) acc += (double)*xv * *fv;
                                else if (mode == 1) *xv += *out * *fv;
                                else *fv += *out * *xv;
                            }
                        }
                        if (mode == 0) *out = (float)acc;
                    }
}

static int depthwise_kernel(pst_kernel_ctx *c) {
    int mode = strstr(c->op->name, "Input") ? 1 : strstr(c->op->name, "Filter") ? 2 : 0;
    const pst_attr *dil = pst_kctx_attr(c, "dilations");
    for (int i = 0; dil && dil->kind == PST_ATTR_LIST_INT && i < dil->n; i++)
        if (dil->list.i[i] != 1) return pst_kctx_error(c, PST_E_UNIMPLEMENTED, "dilations other than 1");
    pst_shape xs, fs;
    if (mode == 1 ? shape_from_tensor(c->inputs[0], &xs) : (xs = c->inputs[0]->shape, 0))
        return pst_kctx_error(c, PST_E_INVALID, "input_sizes must have 4 entries");
    if (mode == 2 ? shape_from_tensor(c->inputs[1], &fs) : (fs = c->inputs[1]->shape, 0))
        return pst_kctx_error(c, PST_E_INVALID, "filter_sizes must have 4 entries");
    pst_conv_geom g;
    if (conv_geom(c, &xs, &fs, &g) < 0) return c->status->code;
    int64_t M = fs.dims[3];
    pst_shape ys = pst_shape_4d(g.n, g.oh, g.ow, g.c * M);
    if (mode && !pst_shape_equal(&c->inputs[2]->shape, &ys))
        return pst_kctx_error(c, PST_E_INVALID, "out_backprop shape does not match the convolution");
    pst_tensor *o = pst_tensor_new_zeros(PST_FLOAT, mode == 0 ? ys : mode == 1 ? xs : fs, c->status);
    if (o == NULL) return c->status->code;
    float *x = mode == 1 ? pst_tensor_f32(o) : pst_tensor_f32(c->inputs[0]);
    float *f = mode == 2 ? pst_tensor_f32(o) : pst_tensor_f32(c->inputs[1]);
    float *y = mode == 0 ? pst_tensor_f32(o) : pst_tensor_f32(c->inputs[2]);
    depthwise(mode, &g, M, x, f, y);
    pst_kctx_set_output(c, 0, o);
    return 0;
}

static int depthwise_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output x = n->inputs[0], f = n->inputs[1];
    for (int k = 0; k < 2; k++) {
        pst_node_builder *b = pst_nb_new(g, k ? "DepthwiseConv2dNativeBackpropFilter"
                                              : "DepthwiseConv2dNativeBackpropInput", NULL);
        pst_nb_input(b, k ? x : pst_shape_of(g, x, PST_INT32, NULL));
        pst_nb_input(b, k ? pst_shape_of(g, f, PST_INT32, NULL) : f);
        pst_nb_input(b, dy[0]);
        copy_conv_attrs(b, n);
        dx[k] = pst_nb_finish_out(b);
    }
    return 0;
}

static const pst_attr_spec conv_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                           {"strides", PST_ATTR_LIST_INT, 1},
                                           {"padding", PST_ATTR_STRING, 1},
                                           {"data_format", PST_ATTR_STRING, 0},
                                           {"use_cudnn_on_gpu", PST_ATTR_BOOL, 0},
                                           {"dilations", PST_ATTR_LIST_INT, 0},
                                           {"explicit_paddings", PST_ATTR_LIST_INT, 0},
                                           {0}};
static const pst_attr_spec pool_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                           {"ksize", PST_ATTR_LIST_INT, 1},
                                           {"strides", PST_ATTR_LIST_INT, 1},
                                           {"padding", PST_ATTR_STRING, 1},
                                           {"data_format", PST_ATTR_STRING, 0},
                                           {0}};
static const pst_attr_spec t_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec xent_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"Tlabels", PST_ATTR_TYPE, 0}, {0}};
/* FusedBatchNormV3 (TF 1.15's tf.layers/keras batch norm): V1 plus a sixth, empty output
 * (reserve_space_3); FusedBatchNormGradV3 takes it as a sixth input and ignores it. */
static int bn_v3_shape(pst_node *n, pst_status *st) {
    int rc = bn_shape(n, st);
    if (rc == 0) pst_node_set_output(n, 5, PST_FLOAT, pst_shape_1d(0));
    return rc;
}

static int bn_v3_kernel(pst_kernel_ctx *c) {
    int rc = bn_kernel(c);
    if (rc == 0 && pst_kctx_alloc_output(c, 5, PST_FLOAT, pst_shape_1d(0)) == NULL)
        rc = c->status->code;
    return rc;
}

/* ---- LRN (local response normalization over the last dim; AlexNet, TF's cifar10) -------
 * out_c = x_c / (bias + alpha sum_{|c'-c| <= r} x_c'^2)^beta; LRNGrad(dy, x, y) is its exact
 * derivative: dx_c = sum_j dy_j ([j = c] n_j^-beta - 2 alpha beta x_j x_c n_j^(-beta-1)). */
static void lrn_norms(const pst_tensor *x, int64_t pos, int64_t C, int64_t r, double bias,
                      double alpha, double *norm) {
    for (int64_t c = 0; c < C; c++) {
        double sq = 0;
        for (int64_t k = c - r < 0 ? 0 : c - r; k <= c + r && k < C; k++) {
            double v = pst_tensor_get_f64(x, pos * C + k);
            sq += v * v;
        }
        norm[c] = bias + alpha * sq;
    }
}

static int lrn_kernel(pst_kernel_ctx *c) {
    int grad = c->n_inputs == 3;
    const pst_tensor *x = c->inputs[grad ? 1 : 0], *dy = grad ? c->inputs[0] : NULL;
    if (x->shape.rank != 4) return pst_kctx_error(c, PST_E_INVALID, "LRN takes 4-D NHWC input");
    if (dy && !pst_shape_equal(&dy->shape, &x->shape))
        return pst_kctx_error(c, PST_E_INVALID, "input_grads and input_image differ in shape");
    int64_t C = x->shape.dims[3], r = pst_kctx_attr_i(c, "depth_radius", 5);
    double bias = pst_kctx_attr_f(c, "bias", 1), alpha = pst_kctx_attr_f(c, "alpha", 1),
           beta = pst_kctx_attr_f(c, "beta", 0.5f);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    double *norm = malloc((size_t)(C + 1) * sizeof *norm);
    PST_ASSERT(norm != NULL);
    for (int64_t pos = 0; C > 0 && pos < x->n / C; pos++) {
        lrn_norms(x, pos, C, r, bias, alpha, norm);
        for (int64_t ch = 0; ch < C; ch++) {
            double xc = pst_tensor_get_f64(x, pos * C + ch), v = 0;
            if (!grad) {
                v = xc * pow(norm[ch], -beta);
            } else {
                for (int64_t j = ch - r < 0 ? 0 : ch - r; j <= ch + r && j < C; j++) {
                    double xj = pst_tensor_get_f64(x, pos * C + j), g = pst_tensor_get_f64(dy, pos * C + j);
                    v += g * ((j == ch ? pow(norm[j], -beta) : 0) -
                              2 * alpha * beta * xj * xc * pow(norm[j], -beta - 1));
                }
            }
            pst_tensor_set_f64(o, pos * C + ch, v);
        }
    }
    free(norm);
    return 0;
}

static int lrn_shape(pst_node *n, pst_status *st) {
    pst_shape s = pst_node_in_shape(n, n->n_inputs == 3 ? 1 : 0);
    if (s.rank >= 0 && s.rank != 4) return pst_status_set(st, PST_E_INVALID, "LRN takes 4-D NHWC input");
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), s);
    return 0;
}

static int lrn_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node_builder *b = pst_nb_new(g, "LRNGrad", NULL);
    pst_nb_input(b, dy[0]);
    pst_nb_input(b, n->inputs[0]);
    pst_nb_input(b, pst_out(n, 0));
    for (int i = 0; i < n->n_attrs; i++)
        if (n->attrs[i].name[0] != '_') pst_nb_attr(b, &n->attrs[i]);
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

static const pst_attr_spec bn_attrs[] = {{"T", PST_ATTR_TYPE, 0},       {"U", PST_ATTR_TYPE, 0},
                                         {"epsilon", PST_ATTR_FLOAT, 0}, {"is_training", PST_ATTR_BOOL, 0},
                                         {"data_format", PST_ATTR_STRING, 0},
                                         {"exponential_avg_factor", PST_ATTR_FLOAT, 0}, {0}};
static const pst_attr_spec lrn_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                          {"depth_radius", PST_ATTR_INT, 0},
                                          {"bias", PST_ATTR_FLOAT, 0},
                                          {"alpha", PST_ATTR_FLOAT, 0},
                                          {"beta", PST_ATTR_FLOAT, 0},
                                          {0}};
static const pst_attr_spec topk_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"k", PST_ATTR_INT, 1}, {0}};

/* The gradients of MaxPoolGrad and AvgPoolGrad (ops_pool_more.c). */
int pst__max_pool_grad_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx);
int pst__avg_pool_grad_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx);
#define NN(nm, mn, mx, no, at, sh, k, gr, fl)                                                     \
    {.name = nm, .min_inputs = mn, .max_inputs = mx, .n_outputs = no, .attrs = at, .shape = sh,   \
     .kernel = k, .grad = gr, .flags = fl}
static const pst_op_def nn_ops[] = {
    NN("MatMul", 2, 2, 1, mm_attrs, matmul_shape, matmul_kernel, matmul_grad, 0),
    NN("BatchMatMul", 2, 2, 1, bmm_attrs, bmm_shape, bmm_kernel, bmm_grad, 0),
    NN("BatchMatMulV2", 2, 2, 1, bmm_attrs, bmm_shape, bmm_kernel, bmm_grad, 0),
    NN("BiasAdd", 2, 2, 1, bias_attrs, bias_add_shape, bias_add_kernel, bias_add_grad, 0),
    NN("BiasAddV1", 2, 2, 1, bias_attrs, bias_add_shape, bias_add_kernel, bias_add_grad, 0),
    NN("LRN", 1, 1, 1, lrn_attrs, lrn_shape, lrn_kernel, lrn_grad, 0),
    NN("LRNGrad", 3, 3, 1, lrn_attrs, lrn_shape, lrn_kernel, NULL, 0),
    NN("BiasAddGrad", 1, 1, 1, bias_attrs, bias_grad_shape, bias_grad_kernel, NULL, 0),
    NN("Conv2D", 2, 2, 1, conv_attrs, conv_shape, conv_kernel, conv_grad, 0),
    NN("Conv2DBackpropInput", 3, 3, 1, conv_attrs, conv_bi_shape, conv_bi_kernel, NULL, 0),
    NN("Conv2DBackpropFilter", 3, 3, 1, conv_attrs, conv_bf_shape, conv_bf_kernel, NULL, 0),
    NN("DepthwiseConv2dNative", 2, 2, 1, conv_attrs, depthwise_shape, depthwise_kernel, depthwise_grad, 0),
    NN("DepthwiseConv2dNativeBackpropInput", 3, 3, 1, conv_attrs, conv_bi_shape, depthwise_kernel, NULL, 0),
    NN("DepthwiseConv2dNativeBackpropFilter", 3, 3, 1, conv_attrs, conv_bf_shape, depthwise_kernel, NULL, 0),
    NN("MaxPool", 1, 1, 1, pool_attrs, pool_shape, pool_kernel, pool_grad, 0),
    NN("AvgPool", 1, 1, 1, pool_attrs, pool_shape, pool_kernel, pool_grad, 0),
    NN("MaxPoolGrad", 3, 3, 1, pool_attrs, pool_grad_shape, pool_grad_kernel, pst__max_pool_grad_grad, 0),
    NN("AvgPoolGrad", 2, 2, 1, pool_attrs, pool_grad_shape, pool_grad_kernel, pst__avg_pool_grad_grad, 0),
    NN("Softmax", 1, 1, 1, t_attrs, softmax_shape, softmax_kernel, softmax_grad, 0),
    NN("LogSoftmax", 1, 1, 1, t_attrs, softmax_shape, softmax_kernel, softmax_grad, 0),
    NN("SoftmaxCrossEntropyWithLogits", 2, 2, 2, xent_attrs, xent_shape, xent_kernel, xent_grad, 0),
    NN("SparseSoftmaxCrossEntropyWithLogits", 2, 2, 2, xent_attrs, xent_shape, xent_kernel,
       xent_grad, 0),
    NN("FusedBatchNorm", 5, 5, 5, bn_attrs, bn_shape, bn_kernel, bn_grad, 0),
    NN("FusedBatchNormGrad", 5, 5, 5, bn_attrs, bn_grad_shape, bn_grad_kernel, NULL, 0),
    NN("FusedBatchNormV2", 5, 5, 5, bn_attrs, bn_shape, bn_kernel, bn_grad, 0),
    NN("FusedBatchNormGradV2", 5, 5, 5, bn_attrs, bn_grad_shape, bn_grad_kernel, NULL, 0),
    NN("FusedBatchNormV3", 5, 5, 6, bn_attrs, bn_v3_shape, bn_v3_kernel, bn_grad, 0),
    NN("FusedBatchNormGradV3", 6, 6, 5, bn_attrs, bn_grad_shape, bn_grad_kernel, NULL, 0),
    NN("InTopK", 2, 2, 1, topk_attrs, in_top_k_shape, in_top_k_kernel, NULL, PST_OP_NOT_DIFFERENTIABLE),
};

void pst__register_nn_ops(void) {
    for (size_t i = 0; i < sizeof nn_ops / sizeof nn_ops[0]; i++) pst_op_register(&nn_ops[i]);
}
