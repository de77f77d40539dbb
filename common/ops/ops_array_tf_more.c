/* More array ops of TF 1.x graphs (issue 17), with TF 1.15's kernel semantics: Roll, Reverse
 * (TF 0.x's bool-dims form), DepthToSpace/SpaceToDepth (NHWC), Diag/DiagPart,
 * MatrixDiag/MatrixDiagPart/MatrixSetDiag (and TF 0.x's BatchMatrix* names), UniqueV2,
 * UniqueWithCounts(V2), InplaceAdd/Sub/Update, UnravelIndex, LowerBound/UpperBound, Bincount,
 * HistogramFixedWidth, NthElement. Gradients where TF has them (array_grad.py, math_grad.py). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

#define ND PST_OP_NOT_DIFFERENTIABLE

static void unravel(const pst_shape *s, int64_t flat, int64_t *idx) {
    for (int d = s->rank - 1; d >= 0; d--) {
        int64_t n = s->dims[d] ? s->dims[d] : 1;
        idx[d] = flat % n;
        flat /= n;
    }
}

static pst_dtype idx_type(const pst_node *n, const char *attr) {
    return pst_node_attr_type(n, attr, PST_INT32) == PST_INT64 ? PST_INT64 : PST_INT32;
}

static void set_index(pst_tensor *t, int64_t i, int64_t v) {
    if (t->dtype == PST_INT64)
        pst_tensor_i64(t)[i] = v;
    else
        pst_tensor_i32(t)[i] = (int32_t)v;
}

static int copy1(pst_kernel_ctx *c, pst_tensor *dst, int64_t di, const pst_tensor *src, int64_t si) {
    return pst_tensor_copy_elems(dst, di, src, si, 1, c->status) < 0 ? c->status->code : 0;
}

static int same_shape(pst_node *n, pst_status *st) { return pst_shape_same_as_input0(n, st); }

/* op(dy, extra inputs...) with T = dy's dtype and n's other attrs copied by the caller. */
static pst_node_builder *on_dy(pst_graph *g, const char *op, pst_output dy) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_input(b, dy);
    pst_nb_attr_type(b, "T", pst_output_dtype(dy));
    return b;
}

/* ---- Roll(input, shift, axis) ---------------------------------------------------------- */
static int roll_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *sh = c->inputs[1], *ax = c->inputs[2];
    if (sh->shape.rank > 1 || ax->shape.rank > 1 || sh->n != ax->n)
        return pst_kctx_error(c, PST_E_INVALID, "shift and axis must be scalars or vectors of one "
                              "size, got %lld and %lld elements", (long long)sh->n, (long long)ax->n);
    int64_t shift[PST_MAX_RANK] = {0};
    int r = x->shape.rank;
    for (int64_t k = 0; k < ax->n; k++) {
        int64_t a = pst_tensor_get_i64(ax, k);
        if (a < -r || a >= r)
            return pst_kctx_error(c, PST_E_INVALID, "axis %lld is out of range for rank %d", (long long)a, r);
        if (a < 0) a += r;
        int64_t n = x->shape.dims[a];
        if (n > 0) shift[a] = ((shift[a] + pst_tensor_get_i64(sh, k)) % n + n) % n;
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    int64_t idx[PST_MAX_RANK];
    for (int64_t i = 0; i < x->n; i++) {
        unravel(&x->shape, i, idx);
        int64_t at = 0;
        for (int d = 0; d < r; d++) at = at * x->shape.dims[d] + (idx[d] + shift[d]) % x->shape.dims[d];
        if (copy1(c, o, at, x, i) < 0) return c->status->code;
    }
    return 0;
}

static int roll_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node_builder *b = on_dy(g, "Roll", dy[0]);
    pst_nb_input(b, pst_neg(g, n->inputs[1], NULL));
    pst_nb_input(b, n->inputs[2]);
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

/* ---- Reverse(tensor, dims: bool[rank]) -------------------------------------------------- */
static int reverse_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *dims = c->inputs[1];
    if (dims->dtype != PST_BOOL || dims->shape.rank != 1 || dims->n != x->shape.rank)
        return pst_kctx_error(c, PST_E_INVALID, "dims must be a bool vector of the input's rank %d, "
                              "got %lld values", x->shape.rank, (long long)dims->n);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL) return c->status->code;
    int64_t idx[PST_MAX_RANK];
    const uint8_t *flip = pst_tensor_u8(dims);
    for (int64_t i = 0; i < x->n; i++) {
        unravel(&x->shape, i, idx);
        int64_t at = 0;
        for (int d = 0; d < x->shape.rank; d++)
            at = at * x->shape.dims[d] + (flip[d] ? x->shape.dims[d] - 1 - idx[d] : idx[d]);
        if (copy1(c, o, i, x, at) < 0) return c->status->code;
    }
    return 0;
}

static int reverse_shape(pst_node *n, pst_status *st) {
    pst_shape d = pst_node_in_shape(n, 1), x = pst_node_in_shape(n, 0);
    if (pst_node_in_dtype(n, 1) != PST_BOOL)
        return pst_status_set(st, PST_E_INVALID, "dims must be bool");
    if (x.rank >= 0 && d.rank == 1 && d.dims[0] >= 0 && d.dims[0] != x.rank)
        return pst_status_set(st, PST_E_INVALID, "dims has %lld values for rank %d",
                              (long long)d.dims[0], x.rank);
    return pst_shape_same_as_input0(n, st);
}

static int reverse_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node_builder *b = on_dy(g, "Reverse", dy[0]);
    pst_nb_input(b, n->inputs[1]);
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

/* ---- DepthToSpace / SpaceToDepth (NHWC) -------------------------------------------------
 * Depth entry (dy * bs + dx) * C' + c of space-to-depth's output at (y, x) is the input's
 * entry c at (y * bs + dy, x * bs + dx); DepthToSpace is the inverse. */
static int d2s_dims(const pst_node *n, const pst_shape *x, int64_t bs, pst_shape *o, pst_status *st) {
    int to_space = strcmp(n->op->name, "DepthToSpace") == 0;
    char sx[128];
    const char *fmt = pst_node_attr_s(n, "data_format", "NHWC");
    if (strcmp(fmt, "NHWC") != 0)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "data_format %s is not supported (NHWC only)", fmt);
    if (bs < 2) return pst_status_set(st, PST_E_INVALID, "block_size must be at least 2, got %lld", (long long)bs);
    if (x->rank < 0) {
        *o = pst_shape_4d(-1, -1, -1, -1);
        return 0;
    }
    if (x->rank != 4)
        return pst_status_set(st, PST_E_INVALID, "input must be 4-D, got %s", pst_shape_str(x, sx, sizeof sx));
    *o = *x;
    if (to_space) {
        if (x->dims[3] >= 0 && x->dims[3] % (bs * bs))
            return pst_status_set(st, PST_E_INVALID, "input depth %lld is not divisible by block_size^2 = %lld",
                                  (long long)x->dims[3], (long long)(bs * bs));
        for (int d = 1; d < 3; d++) o->dims[d] = x->dims[d] < 0 ? -1 : x->dims[d] * bs;
        o->dims[3] = x->dims[3] < 0 ? -1 : x->dims[3] / (bs * bs);
    } else {
        for (int d = 1; d < 3; d++) {
            if (x->dims[d] >= 0 && x->dims[d] % bs)
                return pst_status_set(st, PST_E_INVALID, "input %s: height and width must be divisible by "
                                      "block_size %lld", pst_shape_str(x, sx, sizeof sx), (long long)bs);
            o->dims[d] = x->dims[d] < 0 ? -1 : x->dims[d] / bs;
        }
        o->dims[3] = x->dims[3] < 0 ? -1 : x->dims[3] * bs * bs;
    }
    return 0;
}

static int d2s_shape(pst_node *n, pst_status *st) {
    pst_shape x = pst_node_in_shape(n, 0), o;
    if (d2s_dims(n, &x, pst_node_attr_i(n, "block_size", 0), &o, st) < 0) return st->code;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), o);
    return 0;
}

static int d2s_kernel(pst_kernel_ctx *c) {
    int to_space = strcmp(c->op->name, "DepthToSpace") == 0;
    const pst_tensor *x = c->inputs[0];
    int64_t bs = pst_kctx_attr_i(c, "block_size", 0);
    if (bs < 2) return pst_kctx_error(c, PST_E_INVALID, "block_size must be at least 2");
    const pst_shape *sp = &x->shape; /* the space-side shape */
    pst_shape os = x->shape;
    if (x->shape.rank != 4) return pst_kctx_error(c, PST_E_INVALID, "input must be 4-D");
    if (to_space) {
        if (x->shape.dims[3] % (bs * bs))
            return pst_kctx_error(c, PST_E_INVALID, "input depth %lld is not divisible by block_size^2 = %lld",
                                  (long long)x->shape.dims[3], (long long)(bs * bs));
        os.dims[1] *= bs, os.dims[2] *= bs, os.dims[3] /= bs * bs;
        sp = &os;
    } else {
        if (x->shape.dims[1] % bs || x->shape.dims[2] % bs)
            return pst_kctx_error(c, PST_E_INVALID, "height %lld and width %lld must be divisible by block_size %lld",
                                  (long long)x->shape.dims[1], (long long)x->shape.dims[2], (long long)bs);
        os.dims[1] /= bs, os.dims[2] /= bs, os.dims[3] *= bs * bs;
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, os);
    if (o == NULL) return c->status->code;
    int64_t H = sp->dims[1], W = sp->dims[2], C = sp->dims[3], dH = H / bs, dW = W / bs, dC = C * bs * bs;
    for (int64_t b = 0; b < sp->dims[0]; b++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t xx = 0; xx < W; xx++)
                for (int64_t ch = 0; ch < C; ch++) {
                    int64_t s = ((b * H + y) * W + xx) * C + ch;
                    int64_t d = ((b * dH + y / bs) * dW + xx / bs) * dC + ((y % bs) * bs + xx % bs) * C + ch;
                    if ((to_space ? copy1(c, o, s, x, d) : copy1(c, o, d, x, s)) < 0) return c->status->code;
                }
    return 0;
}

static int d2s_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int to_space = strcmp(n->op->name, "DepthToSpace") == 0;
    pst_node_builder *b = on_dy(g, to_space ? "SpaceToDepth" : "DepthToSpace", dy[0]);
    pst_nb_attr_i(b, "block_size", pst_node_attr_i(n, "block_size", 2));
    dx[0] = pst_nb_finish_out(b);
    return 0;
}

/* ---- Diag / DiagPart -------------------------------------------------------------------- */
static int diag_shape(pst_node *n, pst_status *st) {
    int part = strcmp(n->op->name, "DiagPart") == 0;
    pst_shape x = pst_node_in_shape(n, 0), o = pst_shape_unknown();
    char sx[128];
    if (x.rank >= 0) {
        if (part) {
            int k = x.rank / 2;
            if (x.rank == 0 || x.rank % 2)
                return pst_status_set(st, PST_E_INVALID, "input must have an even rank >= 2, got %s",
                                      pst_shape_str(&x, sx, sizeof sx));
            o.rank = k;
            for (int d = 0; d < k; d++) {
                if (x.dims[d] >= 0 && x.dims[d + k] >= 0 && x.dims[d] != x.dims[d + k])
                    return pst_status_set(st, PST_E_INVALID, "input %s is not [D..., D...]",
                                          pst_shape_str(&x, sx, sizeof sx));
                o.dims[d] = x.dims[d] >= 0 ? x.dims[d] : x.dims[d + k];
            }
        } else {
            if (x.rank < 1 || 2 * x.rank > PST_MAX_RANK)
                return pst_status_set(st, PST_E_INVALID, "diagonal must have rank 1 to %d, got %s",
                                      PST_MAX_RANK / 2, pst_shape_str(&x, sx, sizeof sx));
            o.rank = 2 * x.rank;
            for (int d = 0; d < x.rank; d++) o.dims[d] = o.dims[d + x.rank] = x.dims[d];
        }
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), o);
    return 0;
}

static int diag_kernel(pst_kernel_ctx *c) {
    int part = strcmp(c->op->name, "DiagPart") == 0;
    const pst_tensor *x = c->inputs[0];
    pst_shape o = x->shape;
    int k = x->shape.rank;
    if (part) {
        if (k == 0 || k % 2) return pst_kctx_error(c, PST_E_INVALID, "input must have an even rank >= 2");
        k /= 2;
        for (int d = 0; d < k; d++)
            if (x->shape.dims[d] != x->shape.dims[d + k])
                return pst_kctx_error(c, PST_E_INVALID, "input is not [D..., D...]");
        o.rank = k;
    } else {
        if (k < 1 || 2 * k > PST_MAX_RANK) return pst_kctx_error(c, PST_E_INVALID, "diagonal must have rank 1 to 4");
        o.rank = 2 * k;
        for (int d = 0; d < k; d++) o.dims[d + k] = x->shape.dims[d];
    }
    pst_tensor *out = part ? pst_kctx_alloc_output(c, 0, x->dtype, o) : pst_tensor_new_zeros(x->dtype, o, c->status);
    if (out == NULL) return c->status->code;
    int64_t n = part ? out->n : x->n;
    for (int64_t i = 0; i < n; i++)
        if (part ? copy1(c, out, i, x, i * n + i) < 0 : copy1(c, out, i * n + i, x, i) < 0) {
            if (!part) pst_tensor_unref(out);
            return c->status->code;
        }
    if (!part) pst_kctx_set_output(c, 0, out);
    return 0;
}

static int diag_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    dx[0] = pst_nb_finish_out(on_dy(g, strcmp(n->op->name, "Diag") == 0 ? "DiagPart" : "Diag", dy[0]));
    return 0;
}

/* ---- MatrixDiag / MatrixDiagPart / MatrixSetDiag (batched over leading dims) ------------ */
static int is_op(const pst_op_def *op, const char *suffix) {
    size_t a = strlen(op->name), b = strlen(suffix);
    return a >= b && strcmp(op->name + a - b, suffix) == 0;
}

static int mdiag_shape(pst_node *n, pst_status *st) {
    pst_shape x = pst_node_in_shape(n, 0), o = x;
    char sx[128], sd[128];
    if (is_op(n->op, "MatrixDiag")) {
        if (x.rank >= 0) {
            if (x.rank < 1 || x.rank >= PST_MAX_RANK)
                return pst_status_set(st, PST_E_INVALID, "diagonal must have rank >= 1, got %s",
                                      pst_shape_str(&x, sx, sizeof sx));
            o.rank = x.rank + 1;
            o.dims[x.rank] = x.dims[x.rank - 1];
        }
    } else {
        if (x.rank >= 0 && x.rank < 2)
            return pst_status_set(st, PST_E_INVALID, "input must have rank >= 2, got %s",
                                  pst_shape_str(&x, sx, sizeof sx));
        if (is_op(n->op, "MatrixDiagPart") && x.rank >= 2) {
            int64_t m = x.dims[x.rank - 2], k = x.dims[x.rank - 1];
            o.rank = x.rank - 1;
            o.dims[o.rank - 1] = m < 0 || k < 0 ? -1 : m < k ? m : k;
        }
        if (is_op(n->op, "MatrixSetDiag")) {
            if (pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
            pst_shape d = pst_node_in_shape(n, 1);
            if (x.rank >= 2 && d.rank >= 0) {
                int64_t m = x.dims[x.rank - 2], k = x.dims[x.rank - 1], mn = m < 0 || k < 0 ? -1 : m < k ? m : k;
                int bad = d.rank != x.rank - 1 || (mn >= 0 && d.dims[d.rank - 1] >= 0 && d.dims[d.rank - 1] != mn);
                for (int i = 0; !bad && i < d.rank - 1; i++)
                    bad = x.dims[i] >= 0 && d.dims[i] >= 0 && x.dims[i] != d.dims[i];
                if (bad)
                    return pst_status_set(st, PST_E_INVALID, "diagonal %s does not fit input %s",
                                          pst_shape_str(&d, sd, sizeof sd), pst_shape_str(&x, sx, sizeof sx));
            }
        }
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), o);
    return 0;
}

static int mdiag_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int r = x->shape.rank;
    if (is_op(c->op, "MatrixDiag")) {
        if (r < 1 || r >= PST_MAX_RANK) return pst_kctx_error(c, PST_E_INVALID, "diagonal must have rank >= 1");
        pst_shape os = x->shape;
        os.rank = r + 1;
        int64_t N = x->shape.dims[r - 1];
        os.dims[r] = N;
        pst_tensor *o = pst_tensor_new_zeros(x->dtype, os, c->status);
        if (o == NULL) return c->status->code;
        for (int64_t i = 0; i < x->n; i++)
            if (copy1(c, o, (i / N) * N * N + (i % N) * (N + 1), x, i) < 0) {
                pst_tensor_unref(o);
                return c->status->code;
            }
        pst_kctx_set_output(c, 0, o);
        return 0;
    }
    if (r < 2) return pst_kctx_error(c, PST_E_INVALID, "input must have rank >= 2");
    int64_t M = x->shape.dims[r - 2], N = x->shape.dims[r - 1], K = M < N ? M : N;
    int64_t batches = (M * N) != 0 ? x->n / (M * N) : 0;
    if (is_op(c->op, "MatrixDiagPart")) {
        pst_shape os = x->shape;
        os.rank = r - 1;
        os.dims[r - 2] = K;
        pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, os);
        if (o == NULL) return c->status->code;
        for (int64_t b = 0; b < batches; b++)
            for (int64_t i = 0; i < K; i++)
                if (copy1(c, o, b * K + i, x, b * M * N + i * N + i) < 0) return c->status->code;
        return 0;
    }
    const pst_tensor *d = c->inputs[1];
    char sx[128], sd[128];
    int bad = d->shape.rank != r - 1 || d->shape.dims[r - 2] != K;
    for (int i = 0; !bad && i < r - 2; i++) bad = d->shape.dims[i] != x->shape.dims[i];
    if (bad || d->dtype != x->dtype)
        return pst_kctx_error(c, PST_E_INVALID, "diagonal %s does not fit input %s",
                              pst_shape_str(&d->shape, sd, sizeof sd), pst_shape_str(&x->shape, sx, sizeof sx));
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL || pst_tensor_copy_elems(o, 0, x, 0, x->n, c->status) < 0) return c->status->code;
    for (int64_t b = 0; b < batches; b++)
        for (int64_t i = 0; i < K; i++)
            if (copy1(c, o, b * M * N + i * N + i, d, b * K + i) < 0) return c->status->code;
    return 0;
}

static int mdiag_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    if (is_op(n->op, "MatrixDiag")) {
        dx[0] = pst_nb_finish_out(on_dy(g, "MatrixDiagPart", dy[0]));
    } else if (is_op(n->op, "MatrixDiagPart")) {
        pst_shape x = pst_node_in_shape(n, 0);
        if (x.rank >= 2 && x.dims[x.rank - 1] >= 0 && x.dims[x.rank - 1] == x.dims[x.rank - 2]) {
            dx[0] = pst_nb_finish_out(on_dy(g, "MatrixDiag", dy[0]));
        } else {
            pst_node_builder *b = pst_nb_new(g, "MatrixSetDiag", NULL);
            pst_nb_input(b, pst_zeros_like(g, n->inputs[0], NULL));
            pst_nb_input(b, dy[0]);
            pst_nb_attr_type(b, "T", pst_output_dtype(dy[0]));
            dx[0] = pst_nb_finish_out(b);
        }
    } else { /* MatrixSetDiag */
        pst_node_builder *b = on_dy(g, "MatrixSetDiag", dy[0]);
        pst_nb_input(b, pst_zeros_like(g, n->inputs[1], NULL));
        dx[0] = pst_nb_finish_out(b);
        dx[1] = pst_nb_finish_out(on_dy(g, "MatrixDiagPart", dy[0]));
    }
    return 0;
}

/* ---- MatrixDiagV2 / MatrixDiagPartV2 / MatrixSetDiagV2 (what TF 1.15's tf.linalg.diag,
 * diag_part and set_diag write): diagonals k = lo..hi of [..., M, N] matrices, packed as
 * [..., hi - lo + 1, max_len] (row hi - d holds diagonal d; [..., max_len] when lo == hi),
 * left aligned (element t of diagonal d is (t, t + d) or (t - d, t)), padding_value
 * elsewhere. */
typedef struct band_k {
    int64_t lo, hi;
} band_k;

static int read_k(pst_kernel_ctx *c, const pst_tensor *k, band_k *b) {
    if (k->n < 1 || k->n > 2 || k->shape.rank > 1)
        return pst_kctx_error(c, PST_E_INVALID, "k must be a scalar or a vector of 2 elements");
    b->lo = pst_tensor_get_i64(k, 0);
    b->hi = pst_tensor_get_i64(k, k->n - 1);
    if (b->lo > b->hi) return pst_kctx_error(c, PST_E_INVALID, "lower_diag_index must not be larger than upper_diag_index");
    return 0;
}

static int64_t diag_len(int64_t d, int64_t M, int64_t N) {
    int64_t a = M + (d < 0 ? d : 0), b = N - (d > 0 ? d : 0);
    return a < b ? a : b;
}

/* Flat index in an M x N matrix of element t of diagonal d. */
static int64_t diag_at(int64_t d, int64_t t, int64_t N) { return d >= 0 ? t * N + t + d : (t - d) * N + t; }

static int mdiag_v2_kernel(pst_kernel_ctx *c) {
    int set = is_op(c->op, "MatrixSetDiagV2"), part = is_op(c->op, "MatrixDiagPartV2");
    const pst_tensor *x = c->inputs[0];
    band_k k = {0, 0};
    if (read_k(c, c->inputs[set ? 2 : 1], &k) < 0) return c->status->code;
    int64_t nd = k.hi - k.lo + 1;
    char sx[128];
    if (part || set) {
        int r = x->shape.rank;
        if (r < 2) return pst_kctx_error(c, PST_E_INVALID, "input must be at least a matrix");
        int64_t M = x->shape.dims[r - 2], N = x->shape.dims[r - 1], batch = (M * N) != 0 ? x->n / (M * N) : 0;
        if ((k.lo != 0 && !(-M < k.lo && k.lo < N)) || (k.hi != 0 && !(-M < k.hi && k.hi < N)))
            return pst_kctx_error(c, PST_E_INVALID, "diagonals %lld..%lld are out of bounds for %lld x %lld matrices",
                                  (long long)k.lo, (long long)k.hi, (long long)M, (long long)N);
        int64_t maxlen = 0;
        for (int64_t d = k.lo; d <= k.hi; d++) maxlen = diag_len(d, M, N) > maxlen ? diag_len(d, M, N) : maxlen;
        pst_shape ds = x->shape; /* the packed diagonals' shape */
        ds.rank = nd == 1 ? r - 1 : r;
        if (nd > 1) ds.dims[r - 2] = nd;
        ds.dims[ds.rank - 1] = maxlen;
        const pst_tensor *dg = set ? c->inputs[1] : NULL;
        if (dg && (!pst_shape_equal(&dg->shape, &ds) || dg->dtype != x->dtype))
            return pst_kctx_error(c, PST_E_INVALID, "diagonal must be %s", pst_shape_str(&ds, sx, sizeof sx));
        pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, part ? ds : x->shape);
        if (o == NULL) return c->status->code;
        if (part) {
            for (int64_t i = 0; i < o->n; i++)
                if (pst_tensor_copy_elems(o, i, c->inputs[2], 0, 1, c->status) < 0) return c->status->code;
        } else if (pst_tensor_copy_elems(o, 0, x, 0, x->n, c->status) < 0) {
            return c->status->code;
        }
        for (int64_t q = 0; q < batch; q++)
            for (int64_t d = k.lo; d <= k.hi; d++)
                for (int64_t t = 0; t < diag_len(d, M, N); t++) {
                    int64_t m_at = q * M * N + diag_at(d, t, N), d_at = (q * nd + (k.hi - d)) * maxlen + t;
                    int rc = part ? pst_tensor_copy_elems(o, d_at, x, m_at, 1, c->status)
                                  : pst_tensor_copy_elems(o, m_at, dg, d_at, 1, c->status);
                    if (rc < 0) return c->status->code;
                }
        return 0;
    }
    /* MatrixDiagV2(diagonal, k, num_rows, num_cols, padding_value) */
    int r = x->shape.rank;
    if (r < 1 || (nd > 1 && (r < 2 || x->shape.dims[r - 2] != nd)))
        return pst_kctx_error(c, PST_E_INVALID, "diagonal %s must be [..., %lld, max_diag_len] for k = %lld..%lld",
                              pst_shape_str(&x->shape, sx, sizeof sx), (long long)nd, (long long)k.lo, (long long)k.hi);
    int64_t maxlen = x->shape.dims[r - 1];
    int64_t rows = pst_tensor_get_i64(c->inputs[2], 0), cols = pst_tensor_get_i64(c->inputs[3], 0);
    int64_t min_rows = maxlen - (k.hi < 0 ? k.hi : 0), min_cols = maxlen + (k.lo > 0 ? k.lo : 0);
    if (rows == -1 && cols == -1) rows = cols = min_rows > min_cols ? min_rows : min_cols;
    else if (rows == -1) rows = min_rows;
    else if (cols == -1) cols = min_cols;
    if (rows != min_rows && cols != min_cols)
        return pst_kctx_error(c, PST_E_INVALID, "the number of rows or columns is not consistent with the "
                              "specified d_lower, d_upper, and diagonal");
    pst_shape os = x->shape;
    int br = nd > 1 ? r - 2 : r - 1; /* batch rank */
    os.rank = br + 2;
    if (os.rank > PST_MAX_RANK) return pst_kctx_error(c, PST_E_INVALID, "the result's rank exceeds %d", PST_MAX_RANK);
    os.dims[br] = rows, os.dims[br + 1] = cols;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, os);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < o->n; i++)
        if (pst_tensor_copy_elems(o, i, c->inputs[4], 0, 1, c->status) < 0) return c->status->code;
    int64_t batch = (rows * cols) != 0 ? o->n / (rows * cols) : 0;
    for (int64_t q = 0; q < batch; q++)
        for (int64_t d = k.lo; d <= k.hi; d++)
            for (int64_t t = 0; t < diag_len(d, rows, cols) && t < maxlen; t++)
                if (pst_tensor_copy_elems(o, q * rows * cols + diag_at(d, t, cols), x, (q * nd + (k.hi - d)) * maxlen + t, 1,
                                          c->status) < 0)
                    return c->status->code;
    return 0;
}

static int mdiag_v2_shape(pst_node *n, pst_status *st) {
    int set = is_op(n->op, "MatrixSetDiagV2"), part = is_op(n->op, "MatrixDiagPartV2");
    if (set && pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    if (!set && pst_node_in_dtype(n, part ? 2 : 4) != pst_node_in_dtype(n, 0))
        return pst_status_set(st, PST_E_INVALID, "padding_value must be of the input's dtype");
    pst_shape x = pst_node_in_shape(n, 0), o = pst_shape_unknown();
    const pst_tensor *k = pst_node_in_const(n, set ? 2 : 1);
    if (set) {
        o = x;
    } else if (part && x.rank >= 2 && k && k->n >= 1 && k->n <= 2) {
        int64_t lo = pst_tensor_get_i64(k, 0), hi = pst_tensor_get_i64(k, k->n - 1), M = x.dims[x.rank - 2], N = x.dims[x.rank - 1];
        o = x;
        o.rank = lo == hi ? x.rank - 1 : x.rank;
        if (lo != hi) o.dims[x.rank - 2] = hi - lo + 1;
        int64_t maxlen = 0;
        for (int64_t d = lo; d <= hi && M >= 0 && N >= 0; d++) maxlen = diag_len(d, M, N) > maxlen ? diag_len(d, M, N) : maxlen;
        o.dims[o.rank - 1] = M >= 0 && N >= 0 ? maxlen : -1;
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), o);
    return 0;
}

static pst_output zero_of(pst_graph *g, pst_output like) { return pst_const_scalar(g, pst_output_dtype(like), 0, NULL); }

static int mdiag_v2_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_node_builder *b;
    if (is_op(n->op, "MatrixDiagV2")) {
        b = on_dy(g, "MatrixDiagPartV2", dy[0]);
        pst_nb_input(b, n->inputs[1]);
        pst_nb_input(b, zero_of(g, dy[0]));
        dx[0] = pst_nb_finish_out(b);
    } else if (is_op(n->op, "MatrixDiagPartV2")) {
        pst_shape x = pst_node_in_shape(n, 0);
        if (x.rank >= 2 && x.dims[x.rank - 2] >= 0 && x.dims[x.rank - 1] >= 0) {
            b = on_dy(g, "MatrixDiagV2", dy[0]);
            pst_nb_input(b, n->inputs[1]);
            pst_nb_input(b, pst_const_i32(g, (int32_t)x.dims[x.rank - 2], NULL));
            pst_nb_input(b, pst_const_i32(g, (int32_t)x.dims[x.rank - 1], NULL));
            pst_nb_input(b, zero_of(g, dy[0]));
        } else {
            b = pst_nb_new(g, "MatrixSetDiagV2", NULL);
            pst_nb_inputs(b, 3, (pst_output[]){pst_zeros_like(g, n->inputs[0], NULL), dy[0], n->inputs[1]});
            pst_nb_attr_type(b, "T", pst_output_dtype(dy[0]));
        }
        dx[0] = pst_nb_finish_out(b);
    } else {
        b = on_dy(g, "MatrixSetDiagV2", dy[0]);
        pst_nb_input(b, pst_zeros_like(g, n->inputs[1], NULL));
        pst_nb_input(b, n->inputs[2]);
        dx[0] = pst_nb_finish_out(b);
        b = on_dy(g, "MatrixDiagPartV2", dy[0]);
        pst_nb_input(b, n->inputs[2]);
        pst_nb_input(b, zero_of(g, dy[0]));
        dx[1] = pst_nb_finish_out(b);
    }
    return 0;
}

/* ---- UniqueV2, UniqueWithCounts(V2): unique slices along an axis, first-seen order ------ */
static int elem_eq(const pst_tensor *t, int64_t i, int64_t j) {
    if (t->dtype == PST_STRING) {
        const pst_tstring *a = pst_tensor_str(t) + i, *b = pst_tensor_str(t) + j;
        return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
    }
    if (t->dtype == PST_FLOAT) return pst_tensor_f32(t)[i] == pst_tensor_f32(t)[j];
    if (t->dtype == PST_DOUBLE) return pst_tensor_f64(t)[i] == pst_tensor_f64(t)[j];
    size_t es = pst_dtype_size(t->dtype);
    return memcmp((const char *)t->data + i * es, (const char *)t->data + j * es, es) == 0;
}

static int unique_axis(pst_kernel_ctx *c, int *axis) {
    const pst_tensor *x = c->inputs[0];
    *axis = -1;
    if (c->n_inputs > 1 && c->inputs[1]->shape.rank != 1)
        return pst_kctx_error(c, PST_E_INVALID, "axis expects a 1-D vector ([] for none, [a] for axis a)");
    if (c->n_inputs > 1 && c->inputs[1]->n > 0) {
        if (c->inputs[1]->n != 1) return pst_kctx_error(c, PST_E_INVALID, "axis must have at most one element");
        int64_t a = pst_tensor_get_i64(c->inputs[1], 0);
        if (a < -x->shape.rank || a >= x->shape.rank)
            return pst_kctx_error(c, PST_E_INVALID, "axis %lld is out of range for rank %d", (long long)a, x->shape.rank);
        *axis = (int)(a < 0 ? a + x->shape.rank : a);
    } else if (x->shape.rank != 1) {
        return pst_kctx_error(c, PST_E_INVALID, "unique expects a 1-D vector without an axis");
    }
    return 0;
}

static int unique_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    int axis;
    if (unique_axis(c, &axis) < 0) return c->status->code;
    if (axis < 0) axis = 0;
    int64_t len = x->shape.dims[axis], inner = 1, outer = 1;
    for (int d = axis + 1; d < x->shape.rank; d++) inner *= x->shape.dims[d];
    for (int d = 0; d < axis; d++) outer *= x->shape.dims[d];
    int64_t *first = malloc(((size_t)len + 1) * sizeof *first), *count = calloc((size_t)len + 1, sizeof *count);
    pst_tensor *idx = pst_kctx_alloc_output(c, 1, c->out_dtypes[1], pst_shape_1d(len));
    if (first == NULL || count == NULL || idx == NULL) {
        free(first);
        free(count);
        return idx ? pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory") : c->status->code;
    }
    int64_t k = 0; /* quadratic in the distinct slices */
    for (int64_t j = 0; j < len; j++) {
        int64_t u = 0;
        for (; u < k; u++) {
            int eq = 1;
            for (int64_t o = 0; eq && o < outer; o++)
                for (int64_t i = 0; eq && i < inner; i++)
                    eq = elem_eq(x, (o * len + j) * inner + i, (o * len + first[u]) * inner + i);
            if (eq) break;
        }
        if (u == k) first[k++] = j;
        count[u]++;
        set_index(idx, j, u);
    }
    pst_shape ys = x->shape;
    ys.dims[axis] = k;
    pst_tensor *y = pst_kctx_alloc_output(c, 0, x->dtype, ys);
    int rc = y ? 0 : c->status->code;
    for (int64_t o = 0; rc == 0 && o < outer; o++)
        for (int64_t u = 0; rc == 0 && u < k; u++)
            rc = pst_tensor_copy_elems(y, (o * k + u) * inner, x, (o * len + first[u]) * inner, inner, c->status);
    if (rc == 0 && c->n_outputs > 2) {
        pst_tensor *cnt = pst_kctx_alloc_output(c, 2, c->out_dtypes[2], pst_shape_1d(k));
        for (int64_t u = 0; cnt && u < k; u++) set_index(cnt, u, count[u]);
        if (cnt == NULL) rc = c->status->code;
    }
    free(first);
    free(count);
    return rc;
}

static int unique_shape(pst_node *n, pst_status *st) {
    pst_shape x = pst_node_in_shape(n, 0), y = x;
    const pst_tensor *ax = n->n_inputs > 1 ? pst_node_in_const(n, 1) : NULL;
    int has_axis = n->n_inputs > 1 && (ax == NULL || ax->n > 0);
    if (!has_axis && x.rank >= 0 && x.rank != 1)
        return pst_status_set(st, PST_E_INVALID, "x must be a vector");
    int64_t len = -1;
    if (x.rank >= 0) {
        int a = 0;
        if (has_axis && ax) {
            int64_t v = pst_tensor_get_i64(ax, 0);
            if (v < -x.rank || v >= x.rank)
                return pst_status_set(st, PST_E_INVALID, "axis %lld is out of range for rank %d", (long long)v, x.rank);
            a = (int)(v < 0 ? v + x.rank : v);
        }
        if (has_axis && ax == NULL)
            for (int d = 0; d < y.rank; d++) y.dims[d] = -1;
        else {
            len = x.dims[a];
            y.dims[a] = -1;
        }
    }
    pst_dtype it = idx_type(n, "out_idx");
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), y);
    pst_node_set_output(n, 1, it, pst_shape_1d(len));
    if (n->op->n_outputs > 2) pst_node_set_output(n, 2, it, pst_shape_1d(-1));
    return 0;
}

/* ---- InplaceAdd/Sub/Update(x, i, v): rows i of a copy of x -------------------------------- */
static int inplace_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != pst_node_in_dtype(n, 2))
        return pst_status_set(st, PST_E_INVALID, "v is %s, x %s", pst_dtype_name(pst_node_in_dtype(n, 2)),
                              pst_dtype_name(pst_node_in_dtype(n, 0)));
    if (pst_node_in_dtype(n, 1) != PST_INT32)
        return pst_status_set(st, PST_E_INVALID, "i must be int32");
    return pst_shape_same_as_input0(n, st);
}

static int inplace_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *ix = c->inputs[1], *v = c->inputs[2];
    char sx[128], sv[128];
    int bad = x->shape.rank < 1 || ix->shape.rank > 1 || v->shape.rank != x->shape.rank ||
              v->shape.dims[0] != ix->n;
    for (int d = 1; !bad && d < x->shape.rank; d++) bad = v->shape.dims[d] != x->shape.dims[d];
    if (bad)
        return pst_kctx_error(c, PST_E_INVALID, "v %s does not fit %lld rows of x %s",
                              pst_shape_str(&v->shape, sv, sizeof sv), (long long)ix->n,
                              pst_shape_str(&x->shape, sx, sizeof sx));
    int64_t rows = x->shape.dims[0], row = rows ? x->n / rows : 0;
    for (int64_t k = 0; k < ix->n; k++) {
        int64_t r = pst_tensor_get_i64(ix, k);
        if (r < 0 || r >= rows)
            return pst_kctx_error(c, PST_E_INVALID, "index %lld is out of range [0, %lld)", (long long)r, (long long)rows);
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, x->shape);
    if (o == NULL || pst_tensor_copy_elems(o, 0, x, 0, x->n, c->status) < 0) return c->status->code;
    int mode = is_op(c->op, "Add") ? 1 : is_op(c->op, "Sub") ? -1 : 0;
    for (int64_t k = 0; k < ix->n; k++) {
        int64_t r = pst_tensor_get_i64(ix, k);
        for (int64_t j = 0; j < row; j++) {
            int64_t at = r * row + j;
            if (mode == 0) {
                if (copy1(c, o, at, v, k * row + j) < 0) return c->status->code;
            } else if (o->dtype == PST_INT64) {
                pst_tensor_i64(o)[at] += mode * pst_tensor_i64(v)[k * row + j];
            } else {
                pst_tensor_set_f64(o, at, pst_tensor_get_f64(o, at) + mode * pst_tensor_get_f64(v, k * row + j));
            }
        }
    }
    return 0;
}

/* ---- UnravelIndex(indices, dims) ------------------------------------------------------- */
static int unravel_shape(pst_node *n, pst_status *st) {
    pst_shape ix = pst_node_in_shape(n, 0), d = pst_node_in_shape(n, 1);
    if (ix.rank > 1 || d.rank > 1)
        return pst_status_set(st, PST_E_INVALID, "indices and dims must be scalars or vectors");
    int64_t nd = d.rank == 1 ? d.dims[0] : -1;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), ix.rank == 0 ? pst_shape_1d(nd)
                                                       : pst_shape_2d(nd, ix.rank == 1 ? ix.dims[0] : -1));
    return 0;
}

static int unravel_kernel(pst_kernel_ctx *c) {
    const pst_tensor *ix = c->inputs[0], *d = c->inputs[1];
    if (ix->shape.rank > 1 || d->shape.rank != 1)
        return pst_kctx_error(c, PST_E_INVALID, "indices must be a scalar or vector, dims a vector");
    int64_t prod = 1;
    for (int64_t k = 0; k < d->n; k++) {
        int64_t v = pst_tensor_get_i64(d, k);
        if (v <= 0 || pst_mul_overflow_i64(prod, v, &prod) < 0)
            return pst_kctx_error(c, PST_E_INVALID, "dims must be positive, got %lld at %lld", (long long)v, (long long)k);
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, ix->dtype, ix->shape.rank == 0 ? pst_shape_1d(d->n)
                                                                       : pst_shape_2d(d->n, ix->n));
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < ix->n; i++) {
        int64_t flat = pst_tensor_get_i64(ix, i);
        if (flat < 0 || flat >= prod)
            return pst_kctx_error(c, PST_E_INVALID, "index %lld is out of bounds for dims of %lld elements",
                                  (long long)flat, (long long)prod);
        for (int64_t k = d->n - 1; k >= 0; k--) {
            int64_t dk = pst_tensor_get_i64(d, k);
            set_index(o, k * ix->n + i, flat % dk);
            flat /= dk;
        }
    }
    return 0;
}

/* ---- LowerBound / UpperBound(sorted_inputs [B, N], values [B, M]) ----------------------- */
static int bound_shape(pst_node *n, pst_status *st) {
    if (pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    pst_shape s = pst_node_in_shape(n, 0), v = pst_node_in_shape(n, 1);
    if ((s.rank >= 0 && s.rank != 2) || (v.rank >= 0 && v.rank != 2))
        return pst_status_set(st, PST_E_INVALID, "sorted_inputs and values must be 2-D");
    pst_node_set_output(n, 0, idx_type(n, "out_type"), v);
    return 0;
}

static int cmp_at(const pst_tensor *a, int64_t i, const pst_tensor *b, int64_t j) {
    double x = pst_tensor_get_f64(a, i), y = pst_tensor_get_f64(b, j);
    if (a->dtype == PST_INT64) {
        int64_t p = pst_tensor_i64(a)[i], q = pst_tensor_i64(b)[j];
        return (p > q) - (p < q);
    }
    return (x > y) - (x < y);
}

static int bound_kernel(pst_kernel_ctx *c) {
    int upper = strcmp(c->op->name, "UpperBound") == 0;
    const pst_tensor *s = c->inputs[0], *v = c->inputs[1];
    if (s->shape.rank != 2 || v->shape.rank != 2 || s->shape.dims[0] != v->shape.dims[0])
        return pst_kctx_error(c, PST_E_INVALID, "sorted_inputs and values must be 2-D with the same "
                              "leading dim");
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->out_dtypes[0], v->shape);
    if (o == NULL) return c->status->code;
    int64_t N = s->shape.dims[1], M = v->shape.dims[1];
    for (int64_t b = 0; b < v->shape.dims[0]; b++)
        for (int64_t m = 0; m < M; m++) {
            int64_t lo = 0, hi = N; /* first position whose value is >= (or > for upper) v */
            while (lo < hi) {
                int64_t mid = lo + (hi - lo) / 2;
                int c0 = cmp_at(s, b * N + mid, v, b * M + m);
                if (upper ? c0 <= 0 : c0 < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            set_index(o, b * M + m, lo);
        }
    return 0;
}

/* ---- Bincount(arr, size, weights), HistogramFixedWidth(values, value_range, nbins) ------ */
static int bincount_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_INT32 || pst_node_in_dtype(n, 1) != PST_INT32)
        return pst_status_set(st, PST_E_INVALID, "arr and size must be int32");
    const pst_tensor *sz = pst_node_in_const(n, 1);
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 2), pst_shape_1d(sz ? pst_tensor_get_i64(sz, 0) : -1));
    return 0;
}

static int bincount_kernel(pst_kernel_ctx *c) {
    const pst_tensor *arr = c->inputs[0], *sz = c->inputs[1], *w = c->inputs[2];
    if (sz->n != 1 || sz->shape.rank != 0) return pst_kctx_error(c, PST_E_INVALID, "size must be a scalar");
    int64_t size = pst_tensor_get_i64(sz, 0);
    if (size < 0) return pst_kctx_error(c, PST_E_INVALID, "size (%lld) must be non-negative", (long long)size);
    char sa[128], sw[128];
    if (w->n > 0 && !pst_shape_equal(&w->shape, &arr->shape))
        return pst_kctx_error(c, PST_E_INVALID, "weights %s must be empty or shaped like arr %s",
                              pst_shape_str(&w->shape, sw, sizeof sw), pst_shape_str(&arr->shape, sa, sizeof sa));
    for (int64_t i = 0; i < arr->n; i++)
        if (pst_tensor_i32(arr)[i] < 0)
            return pst_kctx_error(c, PST_E_INVALID, "Input arr must be non-negative, got %d at %lld",
                                  pst_tensor_i32(arr)[i], (long long)i);
    pst_tensor *o = pst_tensor_new_zeros(w->dtype, pst_shape_1d(size), c->status);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < arr->n; i++) {
        int64_t b = pst_tensor_i32(arr)[i];
        if (b >= size) continue; /* values past the last bin are dropped */
        if (o->dtype == PST_INT64)
            pst_tensor_i64(o)[b] += w->n ? pst_tensor_i64(w)[i] : 1;
        else
            pst_tensor_set_f64(o, b, pst_tensor_get_f64(o, b) + (w->n ? pst_tensor_get_f64(w, i) : 1));
    }
    pst_kctx_set_output(c, 0, o);
    return 0;
}

static int histogram_shape(pst_node *n, pst_status *st) {
    if (pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    const pst_tensor *nb = pst_node_in_const(n, 2);
    pst_node_set_output(n, 0, idx_type(n, "dtype"), pst_shape_1d(nb ? pst_tensor_get_i64(nb, 0) : -1));
    return 0;
}

static int histogram_kernel(pst_kernel_ctx *c) {
    const pst_tensor *v = c->inputs[0], *range = c->inputs[1], *nb = c->inputs[2];
    if (range->n != 2 || range->shape.rank != 1)
        return pst_kctx_error(c, PST_E_INVALID, "value_range must have 2 elements");
    if (nb->n != 1) return pst_kctx_error(c, PST_E_INVALID, "nbins must be a scalar");
    int64_t nbins = pst_tensor_get_i64(nb, 0);
    if (nbins <= 0) return pst_kctx_error(c, PST_E_INVALID, "nbins should be a positive number, but got %lld", (long long)nbins);
    double lo = pst_tensor_get_f64(range, 0), hi = pst_tensor_get_f64(range, 1);
    if (!(lo < hi)) return pst_kctx_error(c, PST_E_INVALID, "value_range should satisfy value_range[0] < value_range[1], got [%g, %g]", lo, hi);
    pst_tensor *o = pst_tensor_new_zeros(c->out_dtypes[0], pst_shape_1d(nbins), c->status);
    if (o == NULL) return c->status->code;
    double step = (hi - lo) / (double)nbins;
    for (int64_t i = 0; i < v->n; i++) {
        double x = pst_tensor_get_f64(v, i), off = (x > lo ? x : lo) - lo;
        if (v->dtype == PST_FLOAT) off = (float)((float)(x > lo ? x : lo) - (float)lo); /* T's subtraction */
        double q = off / step;
        int64_t b = q < (double)(nbins - 1) ? (int64_t)q : nbins - 1;
        set_index(o, b, (o->dtype == PST_INT64 ? pst_tensor_i64(o)[b] : pst_tensor_i32(o)[b]) + 1);
    }
    pst_kctx_set_output(c, 0, o);
    return 0;
}

/* ---- NthElement(input, n): the n-th smallest (reverse: largest) of the last dim -------- */
static int nth_shape(pst_node *n, pst_status *st) {
    pst_shape x = pst_node_in_shape(n, 0), o = x;
    if (x.rank == 0) return pst_status_set(st, PST_E_INVALID, "input must be at least rank 1");
    if (x.rank > 0) o.rank = x.rank - 1;
    const pst_tensor *k = pst_node_in_const(n, 1);
    if (k && x.rank > 0 && x.dims[x.rank - 1] >= 0 && pst_tensor_get_i64(k, 0) >= x.dims[x.rank - 1])
        return pst_status_set(st, PST_E_INVALID, "input must have last dimension > n = %lld",
                              (long long)pst_tensor_get_i64(k, 0));
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), o);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int nth_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *kt = c->inputs[1];
    if (kt->n != 1 || kt->shape.rank != 0) return pst_kctx_error(c, PST_E_INVALID, "n must be a scalar");
    int64_t k = pst_tensor_get_i64(kt, 0);
    int r = x->shape.rank;
    if (r < 1) return pst_kctx_error(c, PST_E_INVALID, "input must be at least rank 1");
    int64_t N = x->shape.dims[r - 1];
    if (k < 0) return pst_kctx_error(c, PST_E_INVALID, "Need n >= 0, got %lld", (long long)k);
    if (k >= N) return pst_kctx_error(c, PST_E_INVALID, "Input must have last dimension > n = %lld", (long long)k);
    if (pst_kctx_attr_b(c, "reverse", 0)) k = N - 1 - k;
    pst_shape os = x->shape;
    os.rank = r - 1;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, x->dtype, os);
    double *row = malloc((size_t)N * sizeof *row);
    if (o == NULL || row == NULL) {
        free(row);
        return o ? pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory") : c->status->code;
    }
    for (int64_t i = 0; i < o->n; i++) {
        for (int64_t j = 0; j < N; j++) row[j] = pst_tensor_get_f64(x, i * N + j);
        qsort(row, (size_t)N, sizeof *row, cmp_double);
        pst_tensor_set_f64(o, i, row[k]);
    }
    free(row);
    return 0;
}

/* TF's: the gradient is split evenly among the entries equal to the output. */
static int nth_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_output x = n->inputs[0];
    pst_dtype dt = pst_output_dtype(x);
    pst_output ind = pst_cast(g, pst_equal(g, pst_expand_dims(g, pst_out(n, 0), -1, NULL), x, NULL), dt, NULL);
    pst_output num = pst_reduce_sum(g, ind, 1, (int32_t[]){-1}, 1, NULL);
    dx[0] = pst_real_div(g, pst_mul(g, ind, pst_expand_dims(g, dy[0], -1, NULL), NULL), num, NULL);
    return 0;
}

/* ---- Bucketize(input; boundaries): the number of boundaries <= each value ---------------- */
static int bucketize_shape(pst_node *n, pst_status *st) {
    const pst_attr *b = pst_node_attr(n, "boundaries");
    for (int i = 1; b && i < b->n; i++)
        if (b->list.f[i] < b->list.f[i - 1]) return pst_status_set(st, PST_E_INVALID, "Expected sorted boundaries");
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (dt == PST_BOOL || dt == PST_STRING || dt == PST_RESOURCE)
        return pst_status_set(st, PST_E_INVALID, "input must be numeric, got %s", pst_dtype_name(dt));
    pst_node_set_output(n, 0, PST_INT32, pst_node_in_shape(n, 0));
    return 0;
}

static int bucketize_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    const pst_attr *b = pst_kctx_attr(c, "boundaries");
    int nb = b ? b->n : 0;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_INT32, x->shape);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < x->n; i++) {
        double v = x->dtype == PST_FLOAT ? pst_tensor_f32(x)[i] : pst_tensor_get_f64(x, i);
        int lo = 0, hi = nb; /* first boundary > v */
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if ((double)b->list.f[mid] <= v)
                lo = mid + 1;
            else
                hi = mid;
        }
        pst_tensor_i32(o)[i] = lo;
    }
    return 0;
}

/* GuaranteeConst(input): the input (a promise to TF's optimizer that it is constant). */
static int guarantee_const_kernel(pst_kernel_ctx *c) {
    pst_kctx_set_output(c, 0, pst_tensor_ref(c->inputs[0]));
    return 0;
}

/* ---- Registration ---------------------------------------------------------------------- */
static const pst_attr_spec roll_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"Tshift", PST_ATTR_TYPE, 0},
                                           {"Taxis", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec t_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec d2s_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"block_size", PST_ATTR_INT, 1},
                                          {"data_format", PST_ATTR_STRING, 0}, {0}};
static const pst_attr_spec unique_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"out_idx", PST_ATTR_TYPE, 0},
                                             {"Taxis", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec tidx_attrs[] = {{"Tidx", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec bound_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"out_type", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec hist_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"dtype", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec bucketize_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"boundaries", PST_ATTR_LIST_FLOAT, 1}, {0}};
static const pst_attr_spec nth_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"reverse", PST_ATTR_BOOL, 0}, {0}};

#define OPD(nm, mn, mx, no, at, sh, k, gr, fl)                                                    \
    {.name = nm, .min_inputs = mn, .max_inputs = mx, .n_outputs = no, .attrs = at, .shape = sh,   \
     .kernel = k, .grad = gr, .flags = fl}
#define S PST_OP_STRINGS
static const pst_op_def tf_more_ops[] = {
    OPD("Roll", 3, 3, 1, roll_attrs, same_shape, roll_kernel, roll_grad, S),
    OPD("Reverse", 2, 2, 1, t_attrs, reverse_shape, reverse_kernel, reverse_grad, S),
    OPD("DepthToSpace", 1, 1, 1, d2s_attrs, d2s_shape, d2s_kernel, d2s_grad, S),
    OPD("SpaceToDepth", 1, 1, 1, d2s_attrs, d2s_shape, d2s_kernel, d2s_grad, S),
    OPD("Diag", 1, 1, 1, t_attrs, diag_shape, diag_kernel, diag_grad, 0),
    OPD("DiagPart", 1, 1, 1, t_attrs, diag_shape, diag_kernel, diag_grad, 0),
    OPD("MatrixDiag", 1, 1, 1, t_attrs, mdiag_shape, mdiag_kernel, mdiag_grad, 0),
    OPD("MatrixDiagPart", 1, 1, 1, t_attrs, mdiag_shape, mdiag_kernel, mdiag_grad, 0),
    OPD("MatrixSetDiag", 2, 2, 1, t_attrs, mdiag_shape, mdiag_kernel, mdiag_grad, 0),
    OPD("MatrixDiagV2", 5, 5, 1, t_attrs, mdiag_v2_shape, mdiag_v2_kernel, mdiag_v2_grad, 0),
    OPD("MatrixDiagPartV2", 3, 3, 1, t_attrs, mdiag_v2_shape, mdiag_v2_kernel, mdiag_v2_grad, 0),
    OPD("MatrixSetDiagV2", 3, 3, 1, t_attrs, mdiag_v2_shape, mdiag_v2_kernel, mdiag_v2_grad, 0),
    OPD("BatchMatrixDiag", 1, 1, 1, t_attrs, mdiag_shape, mdiag_kernel, mdiag_grad, 0),
    OPD("BatchMatrixDiagPart", 1, 1, 1, t_attrs, mdiag_shape, mdiag_kernel, mdiag_grad, 0),
    OPD("BatchMatrixSetDiag", 2, 2, 1, t_attrs, mdiag_shape, mdiag_kernel, mdiag_grad, 0),
    OPD("UniqueV2", 2, 2, 2, unique_attrs, unique_shape, unique_kernel, NULL, ND | S),
    OPD("UniqueWithCounts", 1, 1, 3, unique_attrs, unique_shape, unique_kernel, NULL, ND | S),
    OPD("UniqueWithCountsV2", 2, 2, 3, unique_attrs, unique_shape, unique_kernel, NULL, ND | S),
    OPD("InplaceAdd", 3, 3, 1, t_attrs, inplace_shape, inplace_kernel, NULL, 0),
    OPD("InplaceSub", 3, 3, 1, t_attrs, inplace_shape, inplace_kernel, NULL, 0),
    OPD("InplaceUpdate", 3, 3, 1, t_attrs, inplace_shape, inplace_kernel, NULL, 0),
    OPD("UnravelIndex", 2, 2, 1, tidx_attrs, unravel_shape, unravel_kernel, NULL, ND),
    OPD("LowerBound", 2, 2, 1, bound_attrs, bound_shape, bound_kernel, NULL, ND),
    OPD("UpperBound", 2, 2, 1, bound_attrs, bound_shape, bound_kernel, NULL, ND),
    OPD("Bincount", 3, 3, 1, t_attrs, bincount_shape, bincount_kernel, NULL, ND),
    OPD("HistogramFixedWidth", 3, 3, 1, hist_attrs, histogram_shape, histogram_kernel, NULL, ND),
    OPD("NthElement", 2, 2, 1, nth_attrs, nth_shape, nth_kernel, nth_grad, 0),
    OPD("Bucketize", 1, 1, 1, bucketize_attrs, bucketize_shape, bucketize_kernel, NULL, ND),
    OPD("GuaranteeConst", 1, 1, 1, t_attrs, same_shape, guarantee_const_kernel, NULL, ND | S),
};

/* ---- Bitcast(input T) -> type: the same bytes read as another dtype (little-endian, as TF on
 * x86). A wider T adds a last dim of sizeof(T) / sizeof(type); a narrower T needs a last dim of
 * sizeof(type) / sizeof(T) and drops it. */
static int bitcast_out(pst_shape in, pst_dtype from, pst_dtype to, pst_shape *out, pst_status *st) {
    size_t a = pst_dtype_size(from), b = pst_dtype_size(to);
    if (a == 0 || b == 0 || from == PST_STRING || to == PST_STRING || from == PST_RESOURCE ||
        to == PST_RESOURCE)
        return pst_status_set(st, PST_E_INVALID, "cannot bitcast %s to %s", pst_dtype_name(from),
                              pst_dtype_name(to));
    *out = in;
    if (a == b || in.rank < 0) return 0;
    if (a > b) {
        if (in.rank >= PST_MAX_RANK)
            return pst_status_set(st, PST_E_INVALID, "input has too many dims");
        out->dims[out->rank++] = (int64_t)(a / b);
        return 0;
    }
    if (in.rank < 1 || (in.dims[in.rank - 1] >= 0 && in.dims[in.rank - 1] != (int64_t)(b / a)))
        return pst_status_set(st, PST_E_INVALID, "bitcasting %s to %s needs a last dim of %zu",
                              pst_dtype_name(from), pst_dtype_name(to), b / a);
    out->rank--;
    return 0;
}

static int bitcast_shape(pst_node *n, pst_status *st) {
    pst_dtype to = pst_node_attr_type(n, "type", PST_DT_INVALID);
    pst_shape out;
    if (bitcast_out(pst_node_in_shape(n, 0), pst_node_in_dtype(n, 0), to, &out, st) < 0)
        return PST_E_INVALID;
    pst_node_set_output(n, 0, to, out);
    return 0;
}

static int bitcast_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    pst_shape out;
    if (bitcast_out(x->shape, x->dtype, c->out_dtypes[0], &out, c->status) < 0)
        return c->status->code;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, c->out_dtypes[0], out);
    if (o == NULL) return c->status->code;
    memcpy(o->data, x->data, o->nbytes);
    return 0;
}

static const pst_attr_spec bitcast_attrs[] = {
    {"T", PST_ATTR_TYPE, 0}, {"type", PST_ATTR_TYPE, 1}, {0}};
static const pst_op_def bitcast_op = {.name = "Bitcast", .min_inputs = 1, .max_inputs = 1,
                                      .n_outputs = 1, .attrs = bitcast_attrs,
                                      .shape = bitcast_shape, .kernel = bitcast_kernel,
                                      .flags = PST_OP_NOT_DIFFERENTIABLE};

void pst__register_array_tf_more_ops(void) {
    for (size_t i = 0; i < sizeof tf_more_ops / sizeof tf_more_ops[0]; i++) pst_op_register(&tf_more_ops[i]);
    pst_op_register(&bitcast_op);
}
