/* tf.contrib.rnn.GRUBlockCell's fused step (issue 17), as TF's gru_ops compute it:
 *   GRUBlockCell(x [B,I], h_prev [B,H], w_ru [I+H, 2H], w_c [I+H, H], b_ru [2H], b_c [H])
 *     -> r, u, c, h ([B,H] each): [r u] = sigmoid([x, h_prev] w_ru + b_ru),
 *     c = tanh([x, h_prev r] w_c + b_c), h = u h_prev + (1 - u) c.
 *   GRUBlockCellGrad(x, h_prev, w_ru, w_c, b_ru, b_c, r, u, c, d_h) -> d_x, d_h_prev, d_c_bar,
 *     d_r_bar_u_bar: d_c_bar = d_h (1 - u)(1 - c^2); d_u_bar = d_h (h_prev - c) u (1 - u);
 *     [dx2 d_hr] = d_c_bar w_c^T; d_r_bar = d_hr h_prev r (1 - r);
 *     [dx1 dh1] = [d_r_bar d_u_bar] w_ru^T; d_x = dx1 + dx2; d_h_prev = dh1 + d_hr r + d_h u.
 * The gradient function adds the weight and bias gradients with MatMul, ConcatV2 and
 * BiasAddGrad, as TF's does (only h's gradient flows back, as in TF). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

#define G(t, k) pst_tensor_get_f64((t), (k))

static int gru_dims(pst_kernel_ctx *c, int64_t *B, int64_t *I, int64_t *H) {
    const pst_tensor *x = c->inputs[0], *h = c->inputs[1], *wru = c->inputs[2], *wc = c->inputs[3];
    if (x->shape.rank != 2 || h->shape.rank != 2 || wru->shape.rank != 2 || wc->shape.rank != 2)
        return pst_kctx_error(c, PST_E_INVALID, "x, h_prev, w_ru and w_c must be matrices");
    *B = x->shape.dims[0], *I = x->shape.dims[1], *H = h->shape.dims[1];
    if (h->shape.dims[0] != *B || wru->shape.dims[0] != *I + *H || wru->shape.dims[1] != 2 * *H ||
        wc->shape.dims[0] != *I + *H || wc->shape.dims[1] != *H || c->inputs[4]->n != 2 * *H || c->inputs[5]->n != *H)
        return pst_kctx_error(c, PST_E_INVALID, "w_ru must be [%lld, %lld], w_c [%lld, %lld], b_ru [%lld] and b_c [%lld] "
                              "for x [%lld, %lld] and a cell of %lld", (long long)(*I + *H), (long long)(2 * *H),
                              (long long)(*I + *H), (long long)*H, (long long)(2 * *H), (long long)*H, (long long)*B,
                              (long long)*I, (long long)*H);
    if (c->n_inputs > 6)
        for (int k = 6; k < 10; k++)
            if (c->inputs[k]->shape.rank != 2 || c->inputs[k]->shape.dims[0] != *B || c->inputs[k]->shape.dims[1] != *H)
                return pst_kctx_error(c, PST_E_INVALID, "r, u, c and d_h must be [%lld, %lld]", (long long)*B, (long long)*H);
    return 0;
}

static int gru_kernel(pst_kernel_ctx *c) {
    int64_t B, I, H;
    if (gru_dims(c, &B, &I, &H) < 0) return c->status->code;
    const pst_tensor *x = c->inputs[0], *hp = c->inputs[1], *wru = c->inputs[2], *wc = c->inputs[3];
    const pst_tensor *bru = c->inputs[4], *bc = c->inputs[5];
    pst_tensor *o[4];
    for (int k = 0; k < 4; k++)
        if ((o[k] = pst_kctx_alloc_output(c, k, x->dtype, pst_shape_2d(B, H))) == NULL) return c->status->code;
    double *ru = malloc((size_t)(2 * H + 1) * sizeof *ru);
    if (ru == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    for (int64_t b = 0; b < B; b++) {
        for (int64_t j = 0; j < 2 * H; j++) {
            double s = G(bru, j);
            for (int64_t k = 0; k < I; k++) s += G(x, b * I + k) * G(wru, k * 2 * H + j);
            for (int64_t k = 0; k < H; k++) s += G(hp, b * H + k) * G(wru, (I + k) * 2 * H + j);
            ru[j] = 1 / (1 + exp(-s));
        }
        for (int64_t j = 0; j < H; j++) {
            double s = G(bc, j);
            for (int64_t k = 0; k < I; k++) s += G(x, b * I + k) * G(wc, k * H + j);
            for (int64_t k = 0; k < H; k++) s += G(hp, b * H + k) * ru[k] * G(wc, (I + k) * H + j);
            double cc = tanh(s), u = ru[H + j], h = u * G(hp, b * H + j) + (1 - u) * cc;
            pst_tensor_set_f64(o[0], b * H + j, ru[j]);
            pst_tensor_set_f64(o[1], b * H + j, u);
            pst_tensor_set_f64(o[2], b * H + j, cc);
            pst_tensor_set_f64(o[3], b * H + j, h);
        }
    }
    free(ru);
    return 0;
}

static int gru_grad_kernel(pst_kernel_ctx *c) {
    int64_t B, I, H;
    if (gru_dims(c, &B, &I, &H) < 0) return c->status->code;
    const pst_tensor *hp = c->inputs[1], *wru = c->inputs[2], *wc = c->inputs[3];
    const pst_tensor *r = c->inputs[6], *u = c->inputs[7], *cc = c->inputs[8], *dh = c->inputs[9];
    pst_dtype dt = c->inputs[0]->dtype;
    pst_tensor *dx = pst_kctx_alloc_output(c, 0, dt, pst_shape_2d(B, I));
    pst_tensor *dhp = dx ? pst_kctx_alloc_output(c, 1, dt, pst_shape_2d(B, H)) : NULL;
    pst_tensor *dcb = dhp ? pst_kctx_alloc_output(c, 2, dt, pst_shape_2d(B, H)) : NULL;
    pst_tensor *drub = dcb ? pst_kctx_alloc_output(c, 3, dt, pst_shape_2d(B, 2 * H)) : NULL;
    if (drub == NULL) return c->status->code;
    double *xh = malloc((size_t)(I + H + 1) * sizeof *xh);
    if (xh == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    for (int64_t b = 0; b < B; b++) {
        for (int64_t j = 0; j < H; j++) {
            int64_t at = b * H + j;
            double uj = G(u, at), cj = G(cc, at), d = G(dh, at);
            pst_tensor_set_f64(dcb, at, d * (1 - uj) * (1 - cj * cj));
            pst_tensor_set_f64(drub, b * 2 * H + H + j, d * (G(hp, at) - cj) * uj * (1 - uj));
        }
        /* [dx2 d_hr] = d_c_bar w_c^T */
        for (int64_t k = 0; k < I + H; k++) {
            double s = 0;
            for (int64_t j = 0; j < H; j++) s += G(dcb, b * H + j) * G(wc, k * H + j);
            xh[k] = s;
        }
        for (int64_t j = 0; j < H; j++) {
            double rj = G(r, b * H + j);
            pst_tensor_set_f64(drub, b * 2 * H + j, xh[I + j] * G(hp, b * H + j) * rj * (1 - rj));
        }
        for (int64_t k = 0; k < I + H; k++) {
            double s = 0; /* [dx1 dh1] = d_r_bar_u_bar w_ru^T */
            for (int64_t j = 0; j < 2 * H; j++) s += G(drub, b * 2 * H + j) * G(wru, k * 2 * H + j);
            if (k < I) {
                pst_tensor_set_f64(dx, b * I + k, s + xh[k]);
            } else {
                int64_t at = b * H + k - I;
                pst_tensor_set_f64(dhp, at, s + xh[k] * G(r, at) + G(dh, at) * G(u, at));
            }
        }
    }
    free(xh);
    return 0;
}

static int gru_shape(pst_node *n, pst_status *st) {
    if (pst_shape_check_same_dtype(n, 0, n->n_inputs - 1, st) < 0) return st->code;
    if (!pst_dtype_is_float(pst_node_in_dtype(n, 0))) return pst_status_set(st, PST_E_INVALID, "GRUBlockCell takes float or double");
    pst_shape x = pst_node_in_shape(n, 0), h = pst_node_in_shape(n, 1);
    int64_t B = x.rank == 2 ? x.dims[0] : -1, I = x.rank == 2 ? x.dims[1] : -1, H = h.rank == 2 ? h.dims[1] : -1;
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (strcmp(n->op->name, "GRUBlockCell") == 0) {
        for (int k = 0; k < 4; k++) pst_node_set_output(n, k, dt, pst_shape_2d(B, H));
    } else {
        pst_node_set_output(n, 0, dt, pst_shape_2d(B, I));
        pst_node_set_output(n, 1, dt, pst_shape_2d(B, H));
        pst_node_set_output(n, 2, dt, pst_shape_2d(B, H));
        pst_node_set_output(n, 3, dt, pst_shape_2d(B, H < 0 ? -1 : 2 * H));
    }
    return 0;
}

static pst_output bias_add_grad(pst_graph *g, pst_output d) {
    pst_node_builder *b = pst_nb_new(g, "BiasAddGrad", NULL);
    pst_nb_input(b, d);
    pst_nb_attr_type(b, "T", pst_output_dtype(d));
    return pst_nb_finish_out(b);
}

static int gru_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node_builder *b = pst_nb_new(g, "GRUBlockCellGrad", NULL);
    for (int k = 0; k < 6; k++) pst_nb_input(b, n->inputs[k]);
    for (int k = 0; k < 3; k++) pst_nb_input(b, pst_out(n, k));
    pst_nb_input(b, dy[3].node ? dy[3] : pst_zeros_like(g, pst_out(n, 3), NULL));
    pst_nb_attr_type(b, "T", pst_node_in_dtype(n, 0));
    pst_node *gr = pst_nb_finish(b);
    if (gr == NULL) return pst_graph_status(g)->code;
    pst_output x = n->inputs[0], hp = n->inputs[1];
    pst_output xh = pst_concat(g, 2, (pst_output[]){x, hp}, 1, NULL);
    pst_output xhr = pst_concat(g, 2, (pst_output[]){x, pst_mul(g, hp, pst_out(n, 0), NULL)}, 1, NULL);
    dx[0] = pst_out(gr, 0);
    dx[1] = pst_out(gr, 1);
    dx[2] = pst_matmul(g, xh, pst_out(gr, 3), 1, 0, NULL);
    dx[3] = pst_matmul(g, xhr, pst_out(gr, 2), 1, 0, NULL);
    dx[4] = bias_add_grad(g, pst_out(gr, 3));
    dx[5] = bias_add_grad(g, pst_out(gr, 2));
    return 0;
}

static const pst_attr_spec gru_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_op_def gru_ops[] = {
    {.name = "GRUBlockCell", .min_inputs = 6, .max_inputs = 6, .n_outputs = 4, .attrs = gru_attrs,
     .shape = gru_shape, .kernel = gru_kernel, .grad = gru_grad},
    {.name = "GRUBlockCellGrad", .min_inputs = 10, .max_inputs = 10, .n_outputs = 4, .attrs = gru_attrs,
     .shape = gru_shape, .kernel = gru_grad_kernel},
};

void pst__register_gru_block_ops(void) {
    for (size_t i = 0; i < sizeof gru_ops / sizeof gru_ops[0]; i++) pst_op_register(&gru_ops[i]);
}
