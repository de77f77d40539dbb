/* Dense linear algebra of TF 1.x graphs (issue 17; tf.distributions' multivariate normals,
 * Gaussian processes, natural gradients), batched over leading dims, float or double computed
 * in double:
 *   MatrixInverse(adjoint), MatrixDeterminant, LogMatrixDeterminant (sign, log|det|),
 *   MatrixSolve(adjoint): LU with partial pivoting; an exactly zero pivot is "not invertible"
 *     for the inverse and the solve (TF's check), a zero determinant for the determinants.
 *   Cholesky: from the lower triangle; a matrix that is not positive definite is an error.
 *   CholeskyGrad(l, grad): the symmetrized dA of a Cholesky factor's gradient (lower part of
 *     grad): S = L^-T Phi(L^T tril(grad)) L^-1 with Phi the lower part, diagonal halved;
 *     dA = (S + S^T) / 2.
 *   MatrixTriangularSolve(lower, adjoint): the triangle named by `lower` only.
 * Gradients as linalg_grad.py's, from TF ops. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

enum { L_INV, L_DET, L_LOGDET, L_SOLVE, L_CHOL, L_CHOLGRAD, L_TRISOLVE };

typedef struct la_op {
    pst_op_def def;
    int code;
} la_op;

static int la_code(const pst_op_def *op) { return ((const la_op *)op)->code; }

/* LU of n x n a in place (row-major), perm[i] the source row; returns the permutation's sign
 * or 0 for an exactly zero pivot. */
static int lu(double *a, int64_t n, int64_t *perm) {
    int sign = 1;
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t k = 0; k < n; k++) {
        int64_t p = k;
        for (int64_t i = k + 1; i < n; i++)
            if (fabs(a[i * n + k]) > fabs(a[p * n + k])) p = i;
        if (a[p * n + k] == 0) return 0;
        if (p != k) {
            for (int64_t j = 0; j < n; j++) {
                double t = a[k * n + j];
                a[k * n + j] = a[p * n + j], a[p * n + j] = t;
            }
            int64_t t = perm[k];
            perm[k] = perm[p], perm[p] = t;
            sign = -sign;
        }
        for (int64_t i = k + 1; i < n; i++) {
            double f = a[i * n + k] /= a[k * n + k];
            for (int64_t j = k + 1; j < n; j++) a[i * n + j] -= f * a[k * n + j];
        }
    }
    return sign;
}

/* Solves (LU) x = P b for k right-hand sides b (n x k, row-major) in place. */
static void lu_solve(const double *a, const int64_t *perm, int64_t n, double *b, int64_t k, double *tmp) {
    for (int64_t i = 0; i < n; i++) memcpy(tmp + i * k, b + perm[i] * k, (size_t)k * sizeof *tmp);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < i; j++)
            for (int64_t c = 0; c < k; c++) tmp[i * k + c] -= a[i * n + j] * tmp[j * k + c];
    for (int64_t i = n - 1; i >= 0; i--)
        for (int64_t c = 0; c < k; c++) {
            double s = tmp[i * k + c];
            for (int64_t j = i + 1; j < n; j++) s -= a[i * n + j] * tmp[j * k + c];
            tmp[i * k + c] = s / a[i * n + i];
        }
    memcpy(b, tmp, (size_t)(n * k) * sizeof *b);
}

/* Solves T x = b (n x k) for triangular t (lower or upper, t's other triangle ignored). */
static void tri_solve(const double *t, int64_t n, int lower, double *b, int64_t k) {
    for (int64_t s = 0; s < n; s++) {
        int64_t i = lower ? s : n - 1 - s;
        for (int64_t c = 0; c < k; c++) {
            double v = b[i * k + c];
            if (lower)
                for (int64_t j = 0; j < i; j++) v -= t[i * n + j] * b[j * k + c];
            else
                for (int64_t j = i + 1; j < n; j++) v -= t[i * n + j] * b[j * k + c];
            b[i * k + c] = v / t[i * n + i];
        }
    }
}

static void transpose(double *a, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            double t = a[i * n + j];
            a[i * n + j] = a[j * n + i], a[j * n + i] = t;
        }
}

/* Lower Cholesky factor of a's lower triangle into l; -1 when not positive definite. */
static int cholesky(const double *a, double *l, int64_t n) {
    memset(l, 0, (size_t)(n * n) * sizeof *l);
    for (int64_t j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (int64_t k = 0; k < j; k++) d -= l[j * n + k] * l[j * n + k];
        if (!(d > 0)) return -1;
        l[j * n + j] = sqrt(d);
        for (int64_t i = j + 1; i < n; i++) {
            double s = a[i * n + j];
            for (int64_t k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
            l[i * n + j] = s / l[j * n + j];
        }
    }
    return 0;
}

static void get_mat(const pst_tensor *t, int64_t off, int64_t n, double *m) {
    for (int64_t i = 0; i < n; i++) m[i] = pst_tensor_get_f64(t, off + i);
}
static void put_mat(pst_tensor *t, int64_t off, int64_t n, const double *m) {
    for (int64_t i = 0; i < n; i++) pst_tensor_set_f64(t, off + i, m[i]);
}

static int la_kernel(pst_kernel_ctx *c) {
    int code = la_code(c->op);
    const pst_tensor *a = c->inputs[0], *b = c->n_inputs > 1 ? c->inputs[1] : NULL;
    char sa[128], sb[128];
    int r = a->shape.rank;
    if (r < 2 || a->shape.dims[r - 1] != a->shape.dims[r - 2])
        return pst_kctx_error(c, PST_E_INVALID, "input must be a (batch of) square matrices, got %s",
                              pst_shape_str(&a->shape, sa, sizeof sa));
    int64_t n = a->shape.dims[r - 1], nn = n * n, batch = nn ? a->n / nn : 0, k = n;
    if (b) {
        int ok = b->shape.rank == r && b->dtype == a->dtype && b->shape.dims[r - 2] == n;
        for (int d = 0; ok && d < r - 2; d++) ok = b->shape.dims[d] == a->shape.dims[d];
        if (code == L_CHOLGRAD) ok = ok && pst_shape_equal(&a->shape, &b->shape);
        if (!ok)
            return pst_kctx_error(c, PST_E_INVALID, "%s %s does not fit matrix %s", code == L_CHOLGRAD ? "grad" : "rhs",
                                  pst_shape_str(&b->shape, sb, sizeof sb), pst_shape_str(&a->shape, sa, sizeof sa));
        k = b->shape.dims[r - 1];
    }
    pst_shape os = a->shape;
    if (code == L_DET || code == L_LOGDET) os.rank = r - 2;
    if (code == L_SOLVE || code == L_TRISOLVE) os = b->shape;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, a->dtype, os);
    pst_tensor *o2 = o && code == L_LOGDET ? pst_kctx_alloc_output(c, 1, a->dtype, os) : NULL;
    if (o == NULL || (code == L_LOGDET && o2 == NULL)) return c->status->code;
    double *m = malloc((size_t)(4 * nn + 2 * n * k + 1) * sizeof *m);
    int64_t *perm = malloc((size_t)(n + 1) * sizeof *perm);
    if (m == NULL || perm == NULL) {
        free(m), free(perm);
        return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    }
    double *w = m + nn, *x = w + nn, *tmp = x + n * k, *s = tmp + n * k;
    int adjoint = pst_kctx_attr_b(c, "adjoint", 0), lower = pst_kctx_attr_b(c, "lower", 1), rc = 0;
    for (int64_t q = 0; q < batch && rc == 0; q++) {
        get_mat(a, q * nn, nn, m);
        switch (code) {
        case L_INV:
        case L_SOLVE: {
            if (adjoint) transpose(m, n);
            if (lu(m, n, perm) == 0) {
                rc = pst_kctx_error(c, PST_E_INVALID, code == L_INV ? "Input is not invertible." : "Input matrix is not invertible.");
                break;
            }
            if (code == L_INV)
                for (int64_t i = 0; i < nn; i++) x[i] = i / n == i % n;
            else
                get_mat(b, q * n * k, n * k, x);
            lu_solve(m, perm, n, x, k, tmp);
            put_mat(o, q * n * k, n * k, x);
            break;
        }
        case L_DET:
        case L_LOGDET: {
            int sign = lu(m, n, perm);
            double logabs = 0;
            for (int64_t i = 0; sign && i < n; i++) {
                if (m[i * n + i] < 0) sign = -sign;
                logabs += log(fabs(m[i * n + i]));
            }
            if (code == L_DET) {
                pst_tensor_set_f64(o, q, sign ? sign * exp(logabs) : 0);
            } else {
                pst_tensor_set_f64(o, q, sign);
                pst_tensor_set_f64(o2, q, sign ? logabs : -INFINITY);
            }
            break;
        }
        case L_CHOL:
            if (cholesky(m, w, n) < 0) {
                rc = pst_kctx_error(c, PST_E_INVALID, "Cholesky decomposition was not successful. The input might not be valid.");
                break;
            }
            put_mat(o, q * nn, nn, w);
            break;
        case L_CHOLGRAD: { /* m = L; w = tril(grad) */
            get_mat(b, q * nn, nn, w);
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < n; j++) {
                    if (j > i) w[i * n + j] = 0, m[i * n + j] = 0;
                }
            /* P = Phi(L^T G) into s */
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < n; j++) {
                    double v = 0;
                    for (int64_t t = 0; t < n; t++) v += m[t * n + i] * w[t * n + j];
                    s[i * n + j] = j > i ? 0 : i == j ? v / 2 : v;
                }
            /* S = L^-T P L^-1: Y = L^-T P (solve L^T Y = P), then S^T = L^-T Y^T */
            for (int64_t i = 0; i < nn; i++) x[i] = s[i];
            memcpy(tmp, m, (size_t)nn * sizeof *tmp);
            transpose(tmp, n); /* L^T, upper */
            tri_solve(tmp, n, 0, x, n);
            transpose(x, n);
            tri_solve(tmp, n, 0, x, n); /* x = S^T */
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < n; j++) w[i * n + j] = 0.5 * (x[i * n + j] + x[j * n + i]);
            put_mat(o, q * nn, nn, w);
            break;
        }
        case L_TRISOLVE:
            if (adjoint) transpose(m, n); /* A^T: the other triangle */
            get_mat(b, q * n * k, n * k, x);
            tri_solve(m, n, adjoint ? !lower : lower, x, k);
            put_mat(o, q * n * k, n * k, x);
            break;
        default: break;
        }
    }
    free(m), free(perm);
    return rc;
}

/* ---- Qr(input [..., M, N]; full_matrices) -> q, r -------------------------------------------
 * Householder QR with Eigen's reflector convention (which TF's kernel uses): column k's
 * reflector maps x = R[k:, k] to beta e0 with beta = -sign(x0) |x| (x0 = 0 counting as
 * positive), none when x's tail is zero (beta = x0). q is [M, P] and r [P, N] with P = min(M, N),
 * or q [M, M] and r [M, N] with full_matrices. */
static int qr_kernel(pst_kernel_ctx *c) {
    const pst_tensor *a = c->inputs[0];
    char sa[128];
    int rk = a->shape.rank;
    if (rk < 2) return pst_kctx_error(c, PST_E_INVALID, "input must be a (batch of) matrices, got %s", pst_shape_str(&a->shape, sa, sizeof sa));
    int64_t M = a->shape.dims[rk - 2], N = a->shape.dims[rk - 1], P = M < N ? M : N;
    int full = pst_kctx_attr_b(c, "full_matrices", 0);
    int64_t qc = full ? M : P, rr = full ? M : P, batch = (M * N) != 0 ? a->n / (M * N) : 0;
    pst_shape qs = a->shape, rs = a->shape;
    qs.dims[rk - 1] = qc;
    rs.dims[rk - 2] = rr;
    pst_tensor *q = pst_kctx_alloc_output(c, 0, a->dtype, qs), *r = q ? pst_kctx_alloc_output(c, 1, a->dtype, rs) : NULL;
    if (r == NULL) return c->status->code;
    double *w = malloc((size_t)(M * N + M * M + M + 1) * sizeof *w);
    if (w == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    double *qm = w + M * N, *v = qm + M * M;
    double *taus = malloc((size_t)(P + 1) * sizeof *taus), *vs = malloc((size_t)(P * M + 1) * sizeof *vs);
    if (taus == NULL || vs == NULL) {
        free(w), free(taus), free(vs);
        return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    }
    for (int64_t bq = 0; bq < batch; bq++) {
        get_mat(a, bq * M * N, M * N, w);
        for (int64_t k = 0; k < P; k++) {
            double c0 = w[k * N + k], tail = 0;
            for (int64_t i = k + 1; i < M; i++) tail += w[i * N + k] * w[i * N + k];
            double tau = 0, beta = c0;
            for (int64_t i = 0; i < M; i++) v[i] = 0;
            v[k] = 1;
            if (tail > DBL_MIN) {
                beta = sqrt(c0 * c0 + tail);
                if (c0 >= 0) beta = -beta;
                for (int64_t i = k + 1; i < M; i++) v[i] = w[i * N + k] / (c0 - beta);
                tau = (beta - c0) / beta;
                for (int64_t j = k + 1; j < N; j++) { /* columns right of k: (I - tau v v^T) */
                    double d = 0;
                    for (int64_t i = k; i < M; i++) d += v[i] * w[i * N + j];
                    for (int64_t i = k; i < M; i++) w[i * N + j] -= tau * v[i] * d;
                }
            }
            w[k * N + k] = beta;
            for (int64_t i = k + 1; i < M; i++) w[i * N + k] = 0;
            taus[k] = tau;
            memcpy(vs + k * M, v, (size_t)M * sizeof *v);
        }
        /* Q = H0 H1 ... H(P-1) applied to the identity's first qc columns, right to left */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < M; j++) qm[i * M + j] = i == j;
        for (int64_t k = P - 1; k >= 0; k--) {
            const double *vk = vs + k * M;
            for (int64_t j = 0; j < M; j++) {
                double d = 0;
                for (int64_t i = k; i < M; i++) d += vk[i] * qm[i * M + j];
                for (int64_t i = k; i < M; i++) qm[i * M + j] -= taus[k] * vk[i] * d;
            }
        }
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < qc; j++) pst_tensor_set_f64(q, (bq * M + i) * qc + j, qm[i * M + j]);
        for (int64_t i = 0; i < rr; i++)
            for (int64_t j = 0; j < N; j++) pst_tensor_set_f64(r, (bq * rr + i) * N + j, i < M ? (j < i ? 0 : w[i * N + j]) : 0);
    }
    free(w), free(taus), free(vs);
    return 0;
}

static int qr_shape(pst_node *n, pst_status *st) {
    pst_shape a = pst_node_in_shape(n, 0), q = pst_shape_unknown(), r = pst_shape_unknown();
    char sa[128];
    if (!pst_dtype_is_float(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "input must be float or double, got %s", pst_dtype_name(pst_node_in_dtype(n, 0)));
    if (a.rank >= 0 && a.rank < 2) return pst_status_set(st, PST_E_INVALID, "input must be a (batch of) matrices, got %s", pst_shape_str(&a, sa, sizeof sa));
    if (a.rank >= 2) {
        int64_t M = a.dims[a.rank - 2], N = a.dims[a.rank - 1], P = M < 0 || N < 0 ? -1 : M < N ? M : N;
        int full = pst_node_attr_b(n, "full_matrices", 0);
        q = a, r = a;
        q.dims[a.rank - 1] = full ? M : P;
        r.dims[a.rank - 2] = full ? M : P;
    }
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), q);
    pst_node_set_output(n, 1, pst_node_in_dtype(n, 0), r);
    return 0;
}

static int la_shape(pst_node *n, pst_status *st) {
    int code = la_code(n->op);
    pst_shape a = pst_node_in_shape(n, 0), o = a;
    char sa[128];
    if (!pst_dtype_is_float(pst_node_in_dtype(n, 0)))
        return pst_status_set(st, PST_E_INVALID, "input must be float or double, got %s", pst_dtype_name(pst_node_in_dtype(n, 0)));
    if (n->n_inputs > 1 && pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    if (a.rank >= 0 && (a.rank < 2 || (a.dims[a.rank - 1] >= 0 && a.dims[a.rank - 2] >= 0 && a.dims[a.rank - 1] != a.dims[a.rank - 2])))
        return pst_status_set(st, PST_E_INVALID, "input must be a (batch of) square matrices, got %s", pst_shape_str(&a, sa, sizeof sa));
    if (code == L_DET || code == L_LOGDET) {
        if (a.rank >= 2) o.rank = a.rank - 2;
        pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), o);
        if (code == L_LOGDET) pst_node_set_output(n, 1, pst_node_in_dtype(n, 0), o);
        return 0;
    }
    if (code == L_SOLVE || code == L_TRISOLVE) o = pst_node_in_shape(n, 1);
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 0), o);
    return 0;
}

/* ---- Gradients (linalg_grad.py) -------------------------------------------------------- */
static pst_output la_op1(pst_graph *g, const char *op, pst_output a, pst_output b, const char *bkey, int bval,
                         const char *bkey2, int bval2) {
    pst_node_builder *nb = pst_nb_new(g, op, NULL);
    pst_nb_input(nb, a);
    if (b.node) pst_nb_input(nb, b);
    pst_nb_attr_type(nb, "T", pst_output_dtype(a));
    if (bkey) pst_nb_attr_b(nb, bkey, bval);
    if (bkey2) pst_nb_attr_b(nb, bkey2, bval2);
    return pst_nb_finish_out(nb);
}

static pst_output band(pst_graph *g, pst_output x, int64_t lo, int64_t up) {
    pst_node_builder *nb = pst_nb_new(g, "MatrixBandPart", NULL);
    pst_nb_inputs(nb, 3, (pst_output[]){x, pst_const_i64(g, lo, NULL), pst_const_i64(g, up, NULL)});
    pst_nb_attr_type(nb, "T", pst_output_dtype(x));
    pst_nb_attr_type(nb, "Tindex", PST_INT64);
    return pst_nb_finish_out(nb);
}

static int la_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int code = la_code(n->op), adjoint = pst_node_attr_b(n, "adjoint", 0);
    pst_output a = n->inputs[0], y = pst_out(n, 0), none = {0};
    switch (code) {
    case L_INV: /* -Y^H G Y^H (adjoint: -Y G^H Y) */
        dx[0] = pst_neg(g, pst_batch_matmul(g, y, pst_batch_matmul(g, dy[0], y, adjoint, !adjoint, NULL), !adjoint, 0, NULL), NULL);
        break;
    case L_DET:
    case L_LOGDET: { /* (dy det) A^-H, or dlogdet A^-H */
        pst_output d = code == L_DET ? pst_mul(g, dy[0], y, NULL) : dy[1];
        if (d.node == NULL) break;
        pst_output inv = la_op1(g, "MatrixInverse", a, none, "adjoint", 1, NULL, 0);
        dx[0] = pst_mul(g, pst_expand_dims(g, pst_expand_dims(g, d, -1, NULL), -1, NULL), inv, NULL);
        break;
    }
    case L_SOLVE:
    case L_TRISOLVE: {
        int lower = pst_node_attr_b(n, "lower", 1);
        pst_output gb = code == L_SOLVE ? la_op1(g, "MatrixSolve", a, dy[0], "adjoint", !adjoint, NULL, 0)
                                        : la_op1(g, "MatrixTriangularSolve", a, dy[0], "lower", lower, "adjoint", !adjoint);
        pst_output ga = adjoint ? pst_batch_matmul(g, y, gb, 0, 1, NULL) : pst_batch_matmul(g, gb, y, 0, 1, NULL);
        ga = pst_neg(g, ga, NULL);
        if (code == L_TRISOLVE) ga = lower ? band(g, ga, -1, 0) : band(g, ga, 0, -1);
        dx[0] = ga;
        dx[1] = gb;
        break;
    }
    case L_CHOL:
        dx[0] = la_op1(g, "CholeskyGrad", y, dy[0], NULL, 0, NULL, 0);
        break;
    default: break;
    }
    return 0;
}

static const pst_attr_spec la_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"adjoint", PST_ATTR_BOOL, 0}, {"lower", PST_ATTR_BOOL, 0}, {0}};
#define LA(nm, ni, no, code, gr)                                                                  \
    {{.name = nm, .min_inputs = ni, .max_inputs = ni, .n_outputs = no, .attrs = la_attrs,         \
      .shape = la_shape, .kernel = la_kernel, .grad = gr},                                        \
     code}
static const la_op la_ops[] = {
    LA("MatrixInverse", 1, 1, L_INV, la_grad),
    LA("MatrixDeterminant", 1, 1, L_DET, la_grad),
    LA("LogMatrixDeterminant", 1, 2, L_LOGDET, la_grad),
    LA("MatrixSolve", 2, 1, L_SOLVE, la_grad),
    LA("Cholesky", 1, 1, L_CHOL, la_grad),
    LA("CholeskyGrad", 2, 1, L_CHOLGRAD, NULL),
    LA("MatrixTriangularSolve", 2, 1, L_TRISOLVE, la_grad),
};

/* x with its last two dims swapped (rank r known). */
static pst_output adjoint_of(pst_graph *g, pst_output x, int r) {
    int32_t perm[PST_MAX_RANK];
    for (int i = 0; i < r; i++) perm[i] = i;
    perm[r - 2] = r - 1, perm[r - 1] = r - 2;
    return pst_transpose(g, x, r, perm, NULL);
}

/* linalg_grad.py's _QrGrad (M >= N, reduced or square): with X R^-T from a triangular solve. */
static int qr_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    pst_shape a = pst_node_in_shape(n, 0);
    int r = a.rank;
    int64_t M = r >= 2 ? a.dims[r - 2] : -1, N = r >= 2 ? a.dims[r - 1] : -1;
    if (r < 2 || M < 0 || N < 0 || N > M || (pst_node_attr_b(n, "full_matrices", 0) && M != N))
        return pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "the gradient of Qr '%s' is only for matrices of known "
                                   "shape with no more columns than rows (and full_matrices only when square), as "
                                   "in TensorFlow", n->name);
    pst_output q = pst_out(n, 0), rr = pst_out(n, 1), none = {0};
    pst_output dq = dy[0].node ? dy[0] : pst_zeros_like(g, q, NULL), dr = dy[1].node ? dy[1] : pst_zeros_like(g, rr, NULL);
    pst_output qdq = pst_batch_matmul(g, q, dq, 1, 0, NULL);
    pst_output qdq_ = pst_sub(g, qdq, pst_batch_matmul(g, dq, q, 1, 0, NULL), NULL);
    pst_output rdr_ = pst_sub(g, pst_batch_matmul(g, rr, dr, 0, 1, NULL), pst_batch_matmul(g, dr, rr, 0, 1, NULL), NULL);
    pst_output tril = band(g, pst_add(g, qdq_, rdr_, NULL), -1, 0);
    /* X R^-T = (R^-1 X^T)^T */
    pst_output ts1 = adjoint_of(g, la_op1(g, "MatrixTriangularSolve", rr, adjoint_of(g, tril, r), "lower", 0, "adjoint", 0), r);
    pst_output ga = pst_batch_matmul(g, q, pst_add(g, dr, ts1, NULL), 0, 0, NULL);
    pst_output x2 = pst_sub(g, dq, pst_batch_matmul(g, q, qdq, 0, 0, NULL), NULL);
    pst_output ts2 = adjoint_of(g, la_op1(g, "MatrixTriangularSolve", rr, adjoint_of(g, x2, r), "lower", 0, "adjoint", 0), r);
    (void)none;
    dx[0] = pst_add(g, ga, ts2, NULL);
    return 0;
}

static const pst_attr_spec qr_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"full_matrices", PST_ATTR_BOOL, 0}, {0}};
static const pst_op_def qr_op = {.name = "Qr", .min_inputs = 1, .max_inputs = 1, .n_outputs = 2, .attrs = qr_attrs,
                                 .shape = qr_shape, .kernel = qr_kernel, .grad = qr_grad};

void pst__register_linalg_ops(void) {
    for (size_t i = 0; i < sizeof la_ops / sizeof la_ops[0]; i++) pst_op_register(&la_ops[i].def);
    pst_op_register(&qr_op);
}
