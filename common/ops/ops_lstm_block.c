/* tf.contrib.rnn.LSTMBlockCell's fused step: LSTMBlockCell and its gradient op
 * LSTMBlockCellGrad, as TF's lstm_ops compute them.
 *
 * LSTMBlockCell(x [B,I], cs_prev [B,H], h_prev [B,H], w [I+H, 4H], wci, wcf, wco [H], b [4H])
 * -> i, cs, f, o, ci, co, h (each [B,H]). [x, h_prev] w + b holds the gates in the order
 * i, ci, f, o; i = sigmoid(. + cs_prev wci), ci = tanh(.), f = sigmoid(. + forget_bias +
 * cs_prev wcf), cs = ci i + cs_prev f (clipped to [-cell_clip, cell_clip] when cell_clip > 0),
 * co = tanh(cs), o = sigmoid(. + cs wco), h = co o; the peephole terms only with use_peephole.
 * LSTMBlockCellGrad gives cs_prev_grad, dicfo [B,4H] (the gates' pre-activation gradients) and
 * the peephole gradients; the gradient function turns dicfo into x, h_prev, w and b gradients
 * with MatMul, SplitV and BiasAddGrad, as TF's does (the cell clip is not differentiated, as
 * in TF). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

typedef struct dims {
    int64_t B, I, H;
} dims;

static int check_dims(pst_kernel_ctx *c, dims *d) {
    const pst_tensor *x = c->inputs[0], *cs = c->inputs[1], *h = c->inputs[2], *w = c->inputs[3];
    if (x->shape.rank != 2 || cs->shape.rank != 2 || h->shape.rank != 2 || w->shape.rank != 2)
        return pst_kctx_error(c, PST_E_INVALID, "x, cs_prev, h_prev and w must be matrices");
    d->B = x->shape.dims[0], d->I = x->shape.dims[1], d->H = cs->shape.dims[1];
    if (cs->shape.dims[0] != d->B || !pst_shape_equal(&h->shape, &cs->shape) ||
        w->shape.dims[0] != d->I + d->H || w->shape.dims[1] != 4 * d->H || c->inputs[7]->n != 4 * d->H)
        return pst_kctx_error(c, PST_E_INVALID, "w must be [%lld, %lld] and b [%lld] for x [%lld, %lld] "
                              "and a cell of %lld", (long long)(d->I + d->H), (long long)(4 * d->H),
                              (long long)(4 * d->H), (long long)d->B, (long long)d->I, (long long)d->H);
    for (int k = 4; k < 7; k++)
        if (c->inputs[k]->n != d->H) return pst_kctx_error(c, PST_E_INVALID, "peephole weights must be [%lld]", (long long)d->H);
    return 0;
}

static double sigm(double v) { return 1 / (1 + exp(-v)); }
#define G(t, k) pst_tensor_get_f64((t), (k))

static int cell_kernel(pst_kernel_ctx *c) {
    dims d;
    if (check_dims(c, &d) < 0) return c->status->code;
    const pst_tensor *x = c->inputs[0], *csp = c->inputs[1], *hp = c->inputs[2], *w = c->inputs[3];
    const pst_tensor *wci = c->inputs[4], *wcf = c->inputs[5], *wco = c->inputs[6], *b = c->inputs[7];
    double fb = pst_kctx_attr_f(c, "forget_bias", 1), clip = pst_kctx_attr_f(c, "cell_clip", 3);
    int peep = pst_kctx_attr_b(c, "use_peephole", 0);
    pst_tensor *out[7];
    for (int k = 0; k < 7; k++)
        if ((out[k] = pst_kctx_alloc_output(c, k, x->dtype, pst_shape_2d(d.B, d.H))) == NULL) return c->status->code;
    double *g = malloc((size_t)(4 * d.H + 1) * sizeof *g);
    PST_ASSERT(g != NULL);
    for (int64_t r = 0; r < d.B; r++) {
        for (int64_t j = 0; j < 4 * d.H; j++) {
            double s = G(b, j);
            for (int64_t k = 0; k < d.I; k++) s += G(x, r * d.I + k) * G(w, k * 4 * d.H + j);
            for (int64_t k = 0; k < d.H; k++) s += G(hp, r * d.H + k) * G(w, (d.I + k) * 4 * d.H + j);
            g[j] = s;
        }
        for (int64_t j = 0; j < d.H; j++) {
            int64_t at = r * d.H + j;
            double cp = G(csp, at);
            double i = sigm(g[j] + (peep ? cp * G(wci, j) : 0)), ci = tanh(g[d.H + j]);
            double f = sigm(g[2 * d.H + j] + fb + (peep ? cp * G(wcf, j) : 0));
            double cs = ci * i + cp * f;
            if (clip > 0) cs = cs < -clip ? -clip : cs > clip ? clip : cs;
            double o = sigm(g[3 * d.H + j] + (peep ? cs * G(wco, j) : 0)), co = tanh(cs);
            const double v[7] = {i, cs, f, o, ci, co, co * o};
            for (int k = 0; k < 7; k++) pst_tensor_set_f64(out[k], at, v[k]);
        }
    }
    free(g);
    return 0;
}

/* Inputs: x, cs_prev, h_prev, w, wci, wcf, wco, b, i, cs, f, o, ci, co, cs_grad, h_grad. */
static int cell_grad_kernel(pst_kernel_ctx *c) {
    dims d;
    if (check_dims(c, &d) < 0) return c->status->code;
    for (int k = 8; k < 16; k++)
        if (c->inputs[k]->n != d.B * d.H) return pst_kctx_error(c, PST_E_INVALID, "input %d must be [%lld, %lld]", k, (long long)d.B, (long long)d.H);
    pst_tensor *const *in = c->inputs;
    int peep = pst_kctx_attr_b(c, "use_peephole", 0);
    pst_dtype dt = in[0]->dtype;
    pst_tensor *csg = pst_kctx_alloc_output(c, 0, dt, pst_shape_2d(d.B, d.H));
    pst_tensor *dicfo = csg ? pst_kctx_alloc_output(c, 1, dt, pst_shape_2d(d.B, 4 * d.H)) : NULL;
    pst_tensor *pg[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3 && dicfo; k++) pg[k] = pst_tensor_new_zeros(dt, pst_shape_1d(d.H), c->status);
    if (pg[2] == NULL) {
        for (int k = 0; k < 3; k++) pst_tensor_unref(pg[k]);
        return c->status->code;
    }
    for (int64_t r = 0; r < d.B; r++)
        for (int64_t j = 0; j < d.H; j++) {
            int64_t at = r * d.H + j;
            double cp = G(in[1], at), i = G(in[8], at), cs = G(in[9], at), f = G(in[10], at), o = G(in[11], at);
            double ci = G(in[12], at), co = G(in[13], at), dcs_in = G(in[14], at), dh = G(in[15], at);
            double dO = o * (1 - o) * dh * co;
            double dcs = (1 - co * co) * dh * o + dcs_in + (peep ? dO * G(in[6], j) : 0);
            double dci = (1 - ci * ci) * dcs * i, df = f * (1 - f) * dcs * cp, di = i * (1 - i) * dcs * ci;
            const double gates[4] = {di, dci, df, dO};
            for (int k = 0; k < 4; k++) pst_tensor_set_f64(dicfo, r * 4 * d.H + k * d.H + j, gates[k]);
            pst_tensor_set_f64(csg, at, dcs * f + (peep ? di * G(in[4], j) + df * G(in[5], j) : 0));
            if (peep) {
                pst_tensor_set_f64(pg[0], j, G(pg[0], j) + di * cp);
                pst_tensor_set_f64(pg[1], j, G(pg[1], j) + df * cp);
                pst_tensor_set_f64(pg[2], j, G(pg[2], j) + dO * cs);
            }
        }
    for (int k = 0; k < 3; k++) pst_kctx_set_output(c, 2 + k, pg[k]);
    return 0;
}
#undef G

static int cell_shape(pst_node *n, pst_status *st) {
    if (pst_shape_check_same_dtype(n, 0, 7, st) < 0) return st->code;
    pst_shape x = pst_node_in_shape(n, 0), cs = pst_node_in_shape(n, 1);
    pst_shape s = pst_shape_2d(x.rank == 2 ? x.dims[0] : -1, cs.rank == 2 ? cs.dims[1] : -1);
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), s); /* placeholder for n_outputs */
    for (int k = 0; k < n->n_outputs; k++) {
        pst_shape o = s;
        if (n->n_outputs == 5 && k == 1 && o.dims[1] >= 0) o.dims[1] *= 4;
        if (n->n_outputs == 5 && k >= 2) o = pst_shape_1d(s.dims[1]);
        pst_node_set_output(n, k, pst_node_in_dtype(n, 0), o);
    }
    return 0;
}

static int cell_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_shape xs = pst_output_shape(n->inputs[0]);
    if (xs.rank != 2 || xs.dims[1] < 0)
        return pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "gradient of '%s' needs x's input size", n->name);
    pst_node_builder *b = pst_nb_new(g, "LSTMBlockCellGrad", NULL);
    for (int k = 0; k < 8; k++) pst_nb_input(b, n->inputs[k]);
    for (int k = 0; k < 6; k++) pst_nb_input(b, pst_out(n, k));
    pst_nb_input(b, dy[1].node ? dy[1] : pst_zeros_like(g, pst_out(n, 1), NULL));
    pst_nb_input(b, dy[6].node ? dy[6] : pst_zeros_like(g, pst_out(n, 6), NULL));
    pst_nb_attr_type(b, "T", pst_node_in_dtype(n, 0));
    pst_nb_attr_b(b, "use_peephole", pst_node_attr_b(n, "use_peephole", 0));
    pst_node *gr = pst_nb_finish(b);
    if (gr == NULL) return pst_graph_status(g)->code;
    pst_output dicfo = pst_out(gr, 1);
    pst_output xh_grad = pst_matmul(g, dicfo, n->inputs[3], 0, 1, NULL);
    b = pst_nb_new(g, "SplitV", NULL);
    pst_nb_input(b, xh_grad);
    pst_nb_input(b, pst_const_i32_vec(g, 2, (const int32_t[]){(int32_t)xs.dims[1], -1}, NULL));
    pst_nb_input(b, pst_const_i32(g, 1, NULL));
    pst_nb_attr_i(b, "num_split", 2);
    pst_nb_attr_type(b, "T", pst_node_in_dtype(n, 0));
    pst_node *sp = pst_nb_finish(b);
    if (sp == NULL) return pst_graph_status(g)->code;
    pst_output xh_in[2] = {n->inputs[0], n->inputs[2]};
    pst_output xh = pst_concat(g, 2, xh_in, 1, NULL);
    b = pst_nb_new(g, "BiasAddGrad", NULL);
    pst_nb_input(b, dicfo);
    pst_nb_attr_type(b, "T", pst_node_in_dtype(n, 0));
    dx[0] = pst_out(sp, 0);
    dx[1] = pst_out(gr, 0);
    dx[2] = pst_out(sp, 1);
    dx[3] = pst_matmul(g, xh, dicfo, 1, 0, NULL);
    dx[4] = pst_out(gr, 2);
    dx[5] = pst_out(gr, 3);
    dx[6] = pst_out(gr, 4);
    dx[7] = pst_nb_finish_out(b);
    return 0;
}

static const pst_attr_spec cell_attrs[] = {{"forget_bias", PST_ATTR_FLOAT, 0},
                                           {"cell_clip", PST_ATTR_FLOAT, 0},
                                           {"use_peephole", PST_ATTR_BOOL, 0},
                                           {"T", PST_ATTR_TYPE, 0},
                                           {0}};

static const pst_op_def lstm_ops[] = {
    {.name = "LSTMBlockCell", .min_inputs = 8, .max_inputs = 8, .n_outputs = 7,
     .attrs = cell_attrs, .shape = cell_shape, .kernel = cell_kernel, .grad = cell_grad},
    {.name = "LSTMBlockCellGrad", .min_inputs = 16, .max_inputs = 16, .n_outputs = 5,
     .attrs = cell_attrs, .shape = cell_shape, .kernel = cell_grad_kernel,
     .flags = PST_OP_NOT_DIFFERENTIABLE},
};

void pst__register_lstm_block_ops(void) {
    for (size_t i = 0; i < sizeof lstm_ops / sizeof lstm_ops[0]; i++) pst_op_register(&lstm_ops[i]);
}
