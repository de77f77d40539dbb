/* tf.contrib.rnn.LSTMBlockCell's fused step: LSTMBlockCell and its gradient op
 * LSTMBlockCellGrad, as TF's lstm_ops compute them (and LSTMBlockFusedCell's BlockLSTM and
 * BlockLSTMGrad, below).
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

/* The gradient op of a cell (n_in inputs, then its first n_fwd outputs, the cs and h
 * gradients, zeros where none flows), attrs T (of input x_at) and use_peephole. */
static pst_node *grad_node(pst_graph *g, pst_node *n, const char *op, int n_in, int n_fwd, int x_at,
                           const pst_output *dy) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    for (int k = 0; k < n_in; k++) pst_nb_input(b, n->inputs[k]);
    for (int k = 0; k < n_fwd; k++) pst_nb_input(b, pst_out(n, k));
    pst_nb_input(b, dy[1].node ? dy[1] : pst_zeros_like(g, pst_out(n, 1), NULL));
    pst_nb_input(b, dy[6].node ? dy[6] : pst_zeros_like(g, pst_out(n, 6), NULL));
    pst_nb_attr_type(b, "T", pst_node_in_dtype(n, x_at));
    pst_nb_attr_b(b, "use_peephole", pst_node_attr_b(n, "use_peephole", 0));
    return pst_nb_finish(b);
}

static int cell_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_shape xs = pst_output_shape(n->inputs[0]);
    if (xs.rank != 2 || xs.dims[1] < 0)
        return pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "gradient of '%s' needs x's input size", n->name);
    pst_node *gr = grad_node(g, n, "LSTMBlockCellGrad", 8, 6, 0, dy);
    if (gr == NULL) return pst_graph_status(g)->code;
    pst_output dicfo = pst_out(gr, 1);
    pst_output xh_grad = pst_matmul(g, dicfo, n->inputs[3], 0, 1, NULL);
    pst_node_builder *b = pst_nb_new(g, "SplitV", NULL);
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


/* ---- BlockLSTM (tf.contrib.rnn.LSTMBlockFusedCell): the cell over time -----------------
 * BlockLSTM(seq_len_max, x [T,B,I], cs_prev, h_prev, w, wci, wcf, wco, b) -> i, cs, f, o, ci,
 * co, h, each [T,B,H]: the cell at every t < seq_len_max (zeros after), each step starting
 * from the previous one's cs and h. BlockLSTMGrad(seq_len_max, x, cs_prev, h_prev, w, wci,
 * wcf, wco, b, i, cs, f, o, ci, co, h, cs_grad, h_grad) -> x, cs_prev, h_prev, w, wci, wcf,
 * wco and b gradients: the cell's gradient backwards through time. Both run the cell kernels
 * above on copies of each step's rows. */
static pst_tensor *rows_at(const pst_tensor *t, int64_t step, int64_t rows, int64_t cols, pst_status *st) {
    pst_tensor *r = pst_tensor_new(t->dtype, pst_shape_2d(rows, cols), st);
    if (r && pst_tensor_copy_elems(r, 0, t, step * rows * cols, rows * cols, st) < 0) {
        pst_tensor_unref(r);
        return NULL;
    }
    return r;
}

/* Runs kernel k on the given inputs with n_out outputs into out[] (new references). */
static int run_cell(pst_kernel_ctx *c, pst_kernel_fn k, pst_tensor *const *ins, int n_in,
                    pst_tensor **out, int n_out) {
    pst_var *ov[8] = {NULL};
    pst_kernel_ctx sub = *c;
    sub.n_inputs = n_in;
    sub.inputs = ins;
    sub.n_outputs = n_out;
    sub.outputs = out;
    sub.output_vars = ov;
    for (int i = 0; i < n_out; i++) out[i] = NULL;
    int rc = k(&sub);
    if (rc < 0)
        for (int i = 0; i < n_out; i++) pst_tensor_unref(out[i]), out[i] = NULL;
    return rc;
}

static int block_dims(pst_kernel_ctx *c, int64_t *T, int64_t *smax, dims *d) {
    const pst_tensor *x = c->inputs[1], *cs = c->inputs[2], *w = c->inputs[4];
    if (x->shape.rank != 3 || cs->shape.rank != 2 || w->shape.rank != 2)
        return pst_kctx_error(c, PST_E_INVALID, "x must be [time, batch, input], cs_prev a matrix");
    *T = x->shape.dims[0], d->B = x->shape.dims[1], d->I = x->shape.dims[2], d->H = cs->shape.dims[1];
    *smax = pst_tensor_get_i64(c->inputs[0], 0);
    if (*smax < 0) return pst_kctx_error(c, PST_E_INVALID, "seq_len_max is negative");
    if (*smax > *T) *smax = *T;
    return 0;
}

static int block_kernel(pst_kernel_ctx *c) {
    int64_t T, smax;
    dims d;
    if (block_dims(c, &T, &smax, &d) < 0) return c->status->code;
    pst_dtype dt = c->inputs[1]->dtype;
    pst_tensor *big[7];
    for (int k = 0; k < 7; k++) {
        big[k] = pst_tensor_new_zeros(dt, pst_shape_make(3, (const int64_t[]){T, d.B, d.H}), c->status);
        if (big[k] == NULL) {
            while (--k >= 0) pst_tensor_unref(big[k]);
            return c->status->code;
        }
    }
    pst_tensor *csp = pst_tensor_ref(c->inputs[2]), *hp = pst_tensor_ref(c->inputs[3]);
    int rc = 0;
    for (int64_t t = 0; t < smax && rc == 0; t++) {
        pst_tensor *xt = rows_at(c->inputs[1], t, d.B, d.I, c->status), *out[7];
        if (xt == NULL) { rc = c->status->code; break; }
        pst_tensor *const ins[8] = {xt, csp, hp, c->inputs[4], c->inputs[5], c->inputs[6], c->inputs[7], c->inputs[8]};
        rc = run_cell(c, cell_kernel, ins, 8, out, 7);
        pst_tensor_unref(xt);
        for (int k = 0; k < 7 && rc == 0; k++)
            rc = pst_tensor_copy_elems(big[k], t * d.B * d.H, out[k], 0, d.B * d.H, c->status);
        if (rc == 0) {
            pst_tensor_unref(csp), pst_tensor_unref(hp);
            csp = pst_tensor_ref(out[1]), hp = pst_tensor_ref(out[6]);
        }
        for (int k = 0; k < 7; k++) pst_tensor_unref(out[k]);
    }
    pst_tensor_unref(csp), pst_tensor_unref(hp);
    for (int k = 0; k < 7; k++) {
        if (rc == 0) pst_kctx_set_output(c, k, big[k]);
        else pst_tensor_unref(big[k]);
    }
    return rc;
}

static int block_grad_kernel(pst_kernel_ctx *c) {
    int64_t T, smax;
    dims d;
    if (block_dims(c, &T, &smax, &d) < 0) return c->status->code;
    pst_tensor *const *in = c->inputs;
    pst_dtype dt = in[1]->dtype;
    int64_t BH = d.B * d.H, G4 = 4 * d.H;
    pst_tensor *xg = pst_tensor_new_zeros(dt, in[1]->shape, c->status);
    pst_tensor *wg = xg ? pst_tensor_new_zeros(dt, in[4]->shape, c->status) : NULL;
    pst_tensor *pg[3] = {NULL, NULL, NULL}, *bg = NULL;
    for (int k = 0; k < 3 && wg; k++) pg[k] = pst_tensor_new_zeros(dt, pst_shape_1d(d.H), c->status);
    if (pg[2]) bg = pst_tensor_new_zeros(dt, pst_shape_1d(G4), c->status);
    pst_tensor *csg = bg ? pst_tensor_new_zeros(dt, pst_shape_2d(d.B, d.H), c->status) : NULL;
    pst_tensor *hg = csg ? pst_tensor_new_zeros(dt, pst_shape_2d(d.B, d.H), c->status) : NULL;
    int rc = hg ? 0 : c->status->code;
    for (int64_t t = smax - 1; t >= 0 && rc == 0; t--) {
        pst_tensor *step[8] = {NULL};
        /* x, cs_prev, h_prev of this step, then its i, cs, f, o, ci, co */
        step[0] = rows_at(in[1], t, d.B, d.I, c->status);
        step[1] = t ? rows_at(in[10], t - 1, d.B, d.H, c->status) : pst_tensor_ref(in[2]);
        step[2] = t ? rows_at(in[15], t - 1, d.B, d.H, c->status) : pst_tensor_ref(in[3]);
        pst_tensor *gates[6], *dcs = rows_at(in[16], t, d.B, d.H, c->status), *dh = rows_at(in[17], t, d.B, d.H, c->status);
        for (int k = 0; k < 6; k++) gates[k] = rows_at(in[9 + k], t, d.B, d.H, c->status);
        int ok = step[0] && step[1] && step[2] && dcs && dh;
        for (int k = 0; k < 6; k++) ok &= gates[k] != NULL;
        pst_tensor *out[5] = {NULL};
        if (!ok) {
            rc = c->status->code;
        } else {
            for (int64_t k = 0; k < BH; k++) { /* the carries from step t + 1 */
                pst_tensor_set_f64(dcs, k, pst_tensor_get_f64(dcs, k) + pst_tensor_get_f64(csg, k));
                pst_tensor_set_f64(dh, k, pst_tensor_get_f64(dh, k) + pst_tensor_get_f64(hg, k));
            }
            pst_tensor *const ins[16] = {step[0], step[1], step[2], in[4], in[5], in[6], in[7], in[8],
                                         gates[0], gates[1], gates[2], gates[3], gates[4], gates[5], dcs, dh};
            rc = run_cell(c, cell_grad_kernel, ins, 16, out, 5);
        }
        for (int64_t r = 0; rc == 0 && r < d.B; r++) {
            /* [x, h_prev] grad = dicfo w^T; w grad += [x, h_prev]^T dicfo; b grad += dicfo */
            for (int64_t k = 0; k < d.I + d.H; k++) {
                double s = 0, xv = k < d.I ? pst_tensor_get_f64(step[0], r * d.I + k) : pst_tensor_get_f64(step[2], r * d.H + k - d.I);
                for (int64_t j = 0; j < G4; j++) {
                    double g = pst_tensor_get_f64(out[1], r * G4 + j);
                    s += g * pst_tensor_get_f64(in[4], k * G4 + j);
                    pst_tensor_set_f64(wg, k * G4 + j, pst_tensor_get_f64(wg, k * G4 + j) + xv * g);
                }
                if (k < d.I) pst_tensor_set_f64(xg, (t * d.B + r) * d.I + k, s);
                else pst_tensor_set_f64(hg, r * d.H + k - d.I, s);
            }
            for (int64_t j = 0; j < G4; j++)
                pst_tensor_set_f64(bg, j, pst_tensor_get_f64(bg, j) + pst_tensor_get_f64(out[1], r * G4 + j));
        }
        for (int64_t k = 0; rc == 0 && k < BH; k++) pst_tensor_set_f64(csg, k, pst_tensor_get_f64(out[0], k));
        for (int k = 0; rc == 0 && k < 3; k++)
            for (int64_t j = 0; j < d.H; j++)
                pst_tensor_set_f64(pg[k], j, pst_tensor_get_f64(pg[k], j) + pst_tensor_get_f64(out[2 + k], j));
        for (int k = 0; k < 3; k++) pst_tensor_unref(step[k]);
        for (int k = 0; k < 6; k++) pst_tensor_unref(gates[k]);
        for (int k = 0; k < 5; k++) pst_tensor_unref(out[k]);
        pst_tensor_unref(dcs), pst_tensor_unref(dh);
    }
    pst_tensor *res[8] = {xg, csg, hg, wg, pg[0], pg[1], pg[2], bg};
    for (int k = 0; k < 8; k++) {
        if (rc == 0) pst_kctx_set_output(c, k, res[k]);
        else pst_tensor_unref(res[k]);
    }
    return rc;
}

static int block_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_shape x = pst_node_in_shape(n, 1), cs = pst_node_in_shape(n, 2);
    pst_dtype dt = pst_node_in_dtype(n, 1);
    int64_t H = cs.rank == 2 ? cs.dims[1] : -1;
    if (n->n_outputs == 7) {
        pst_shape s = pst_shape_make(3, (const int64_t[]){x.rank == 3 ? x.dims[0] : -1, x.rank == 3 ? x.dims[1] : -1, H});
        for (int k = 0; k < 7; k++) pst_node_set_output(n, k, dt, s);
        return 0;
    }
    for (int k = 0; k < 8; k++) pst_node_set_output(n, k, dt, pst_node_in_shape(n, k + 1));
    return 0;
}

static int block_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node *gr = grad_node(g, n, "BlockLSTMGrad", 9, 7, 1, dy);
    if (gr == NULL) return pst_graph_status(g)->code;
    for (int k = 0; k < 8; k++) dx[k + 1] = pst_out(gr, k);
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
    {.name = "BlockLSTM", .min_inputs = 9, .max_inputs = 9, .n_outputs = 7, .attrs = cell_attrs,
     .shape = block_shape, .kernel = block_kernel, .grad = block_grad},
    {.name = "BlockLSTMGrad", .min_inputs = 18, .max_inputs = 18, .n_outputs = 8,
     .attrs = cell_attrs, .shape = block_shape, .kernel = block_grad_kernel,
     .flags = PST_OP_NOT_DIFFERENTIABLE},
};

void pst__register_lstm_block_ops(void) {
    for (size_t i = 0; i < sizeof lstm_ops / sizeof lstm_ops[0]; i++) pst_op_register(&lstm_ops[i]);
}
