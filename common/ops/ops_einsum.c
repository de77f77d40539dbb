/* Einsum (tf.einsum in TF 1.14+): one or two operands, float or double.
 *
 * The equation names each operand's dims by letters ("ij,jk->ik"); "..." stands for the dims the
 * letters leave (aligned from the right, broadcast where one operand has 1); without "->" the
 * output is the letters used once, in alphabetical order, after the broadcast "...". A letter
 * repeated in one operand takes the diagonal ("ii->i"). A letter missing from the output is
 * summed over. Two operands are computed as a batched matrix product: every letter is a batch
 * letter (in both operands and the output), a row letter (first operand and output), a column
 * letter (second operand and output), a contracted letter (both operands, not the output) or
 * summed away in its own operand first; the operands are gathered into [batch, rows, k] and
 * [batch, k, cols] blocks and multiplied with OpenBLAS.
 *
 * The gradient (as TF's: einsum of the incoming gradient with the other operand) is built for
 * equations whose every operand letter reaches the output or the other operand once, without
 * broadcasting; other equations have none (an error on a gradient path, naming the equation). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "ops_nn.h"

#define EIN_MAX_DIMS 16
#define EIN_LABELS 128 /* letters are their ASCII codes; "..." dims are 0..15 */

typedef struct ein_spec {
    int n_in;
    int rank[2], out_rank;
    int lab[2][EIN_MAX_DIMS]; /* each operand dim's label */
    int out[EIN_MAX_DIMS];
    int64_t size[EIN_LABELS]; /* -1 unknown */
} ein_spec;

/* One operand's (or the output's) letters with "..." expanded to rank - letters dims. */
static int parse_term(const char *s, size_t len, int rank, int ell_rank, int *lab, int *n,
                      int *has_ell, pst_status *st) {
    int letters = 0, ell = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.' || ell)
                return pst_status_set(st, PST_E_INVALID, "Einsum equation: a malformed '...' in "
                                      "'%.*s'", (int)len, s);
            ell = 1;
            i += 2;
        } else if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')) {
            letters++;
        } else if (s[i] != ' ') {
            return pst_status_set(st, PST_E_INVALID, "Einsum equation: '%c' in '%.*s' is not a "
                                  "letter", s[i], (int)len, s);
        }
    }
    int n_ell = 0;
    if (ell) n_ell = rank >= 0 ? rank - letters : ell_rank;
    if (rank >= 0 && ((!ell && letters != rank) || n_ell < 0))
        return pst_status_set(st, PST_E_INVALID, "Einsum equation: '%.*s' names %d dims of an "
                              "operand of rank %d", (int)len, s, letters, rank);
    if (letters + n_ell > EIN_MAX_DIMS)
        return pst_status_set(st, PST_E_INVALID, "Einsum: more than %d dims", EIN_MAX_DIMS);
    int k = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            for (int e = 0; e < n_ell; e++) lab[k++] = n_ell - 1 - e; /* from the right */
            i += 2;
        } else if (s[i] != ' ') {
            lab[k++] = (unsigned char)s[i];
        }
    }
    *n = k;
    if (has_ell) *has_ell = ell;
    return 0;
}

/* Parses eq for operands of the given shapes (dims may be -1, ranks must be known). */
static int ein_parse(const char *eq, int n_in, const pst_shape *shapes, ein_spec *sp,
                     pst_status *st) {
    memset(sp, 0, sizeof *sp);
    for (int l = 0; l < EIN_LABELS; l++) sp->size[l] = -2; /* -2: not used */
    if (n_in < 1 || n_in > 2)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "Einsum of %d operands (1 or 2 are "
                              "supported)", n_in);
    sp->n_in = n_in;
    const char *arrow = strstr(eq, "->");
    size_t lhs = arrow ? (size_t)(arrow - eq) : strlen(eq);
    const char *p = eq;
    int max_ell = 0, any_ell = 0;
    for (int i = 0; i < n_in; i++) {
        const char *comma = memchr(p, ',', (size_t)(eq + lhs - p));
        const char *end = i == n_in - 1 ? eq + lhs : comma;
        if ((i < n_in - 1 && !comma) || (i == n_in - 1 && comma))
            return pst_status_set(st, PST_E_INVALID, "Einsum equation '%s' does not name %d "
                                  "operands", eq, n_in);
        int has_ell = 0;
        if (parse_term(p, (size_t)(end - p), shapes[i].rank, 0, sp->lab[i], &sp->rank[i],
                       &has_ell, st) < 0)
            return st->code;
        if (has_ell) {
            any_ell = 1;
            int n_ell = 0;
            for (int d = 0; d < sp->rank[i]; d++) n_ell += sp->lab[i][d] < 'A';
            if (n_ell > max_ell) max_ell = n_ell;
        }
        p = end + 1;
    }
    /* sizes, broadcasting 1 against n */
    for (int i = 0; i < n_in; i++)
        for (int d = 0; d < sp->rank[i]; d++) {
            int l = sp->lab[i][d];
            int64_t v = shapes[i].dims[d];
            int64_t *s = &sp->size[l];
            if (*s == -2 || *s == 1) *s = (*s == 1 && v == -1) ? -1 : v;
            else if (v >= 0 && *s >= 0 && v != *s && v != 1)
                return pst_status_set(st, PST_E_INVALID, "Einsum '%s': dim '%c' is %lld in one "
                                      "place and %lld in another", eq, l < 'A' ? '.' : l,
                                      (long long)*s, (long long)v);
        }
    if (arrow) {
        if (parse_term(arrow + 2, strlen(arrow + 2), -1, max_ell, sp->out, &sp->out_rank, NULL,
                       st) < 0)
            return st->code;
    } else { /* implicit: "..." then the letters used once, in order */
        int k = 0;
        for (int e = max_ell - 1; e >= 0 && any_ell; e--) sp->out[k++] = e;
        for (int l = 'A'; l <= 'z'; l++) {
            int uses = 0;
            for (int i = 0; i < n_in; i++)
                for (int d = 0; d < sp->rank[i]; d++) uses += sp->lab[i][d] == l;
            if (uses == 1) sp->out[k++] = l;
        }
        sp->out_rank = k;
    }
    for (int a = 0; a < sp->out_rank; a++) {
        if (sp->size[sp->out[a]] == -2)
            return pst_status_set(st, PST_E_INVALID, "Einsum '%s': output dim '%c' is in no "
                                  "operand", eq, sp->out[a] < 'A' ? '.' : sp->out[a]);
        for (int b = 0; b < a; b++)
            if (sp->out[a] == sp->out[b])
                return pst_status_set(st, PST_E_INVALID, "Einsum '%s': output dim '%c' is "
                                      "repeated", eq, sp->out[a]);
    }
    return 0;
}

static int ein_shape(pst_node *n, pst_status *st) {
    int k = n->n_inputs;
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (dt != PST_FLOAT && dt != PST_DOUBLE)
        return pst_status_set(st, PST_E_INVALID, "Einsum takes float or double, got %s",
                              pst_dtype_name(dt));
    if (k == 2 && pst_shape_check_same_dtype(n, 0, 1, st) < 0) return PST_E_INVALID;
    pst_shape s[2];
    int known = 1;
    for (int i = 0; i < k && i < 2; i++) {
        s[i] = pst_node_in_shape(n, i);
        known &= s[i].rank >= 0;
    }
    const char *eq = pst_node_attr_s(n, "equation", "");
    pst_shape o = pst_shape_unknown();
    if (known) {
        ein_spec sp;
        if (ein_parse(eq, k, s, &sp, st) < 0) return st->code;
        o.rank = sp.out_rank;
        for (int a = 0; a < sp.out_rank; a++) o.dims[a] = sp.size[sp.out[a]];
    } else if (k < 1 || k > 2) {
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "Einsum of %d operands (1 or 2 are "
                              "supported)", k);
    }
    pst_node_set_output(n, 0, dt, o);
    return 0;
}

/* Gathers operand x (its labels lab, rank r) into dst[g0][g1][g2] over the label groups, summing
 * the labels in sum (dims of size 1 broadcast: stride 0). Works in double. */
typedef struct group {
    int lab[EIN_MAX_DIMS];
    int n;
} group;

static void gather(const pst_tensor *x, const int *lab, int r, const ein_spec *sp,
                   const group *g, int n_groups, const group *sum, double *dst) {
    int64_t xstride[EIN_MAX_DIMS], ls[EIN_LABELS];
    memset(ls, 0, sizeof ls);
    int64_t acc = 1;
    for (int d = r - 1; d >= 0; d--) {
        xstride[d] = acc;
        acc *= x->shape.dims[d];
    }
    for (int d = 0; d < r; d++)
        if (x->shape.dims[d] != 1) ls[lab[d]] += xstride[d]; /* repeated: the diagonal */
    /* the loop labels: the groups' in order, then the summed ones */
    int loop[2 * EIN_MAX_DIMS], nl = 0;
    for (int k = 0; k < n_groups; k++)
        for (int i = 0; i < g[k].n; i++) loop[nl++] = g[k].lab[i];
    int n_out = nl;
    for (int i = 0; i < sum->n; i++) loop[nl++] = sum->lab[i];
    int64_t total_out = 1, total_sum = 1;
    for (int i = 0; i < n_out; i++) total_out *= sp->size[loop[i]];
    for (int i = n_out; i < nl; i++) total_sum *= sp->size[loop[i]];
    int64_t idx[2 * EIN_MAX_DIMS];
    const float *xf = x->dtype == PST_FLOAT ? pst_tensor_f32((pst_tensor *)x) : NULL;
    const double *xd = x->dtype == PST_DOUBLE ? pst_tensor_f64((pst_tensor *)x) : NULL;
    for (int64_t o = 0; o < total_out; o++) {
        int64_t rem = o, base = 0;
        for (int i = n_out - 1; i >= 0; i--) {
            int64_t sz = sp->size[loop[i]];
            base += (rem % sz) * ls[loop[i]];
            rem /= sz;
        }
        double s = 0;
        for (int i = n_out; i < nl; i++) idx[i] = 0;
        for (int64_t q = 0; q < total_sum; q++) {
            int64_t off = base;
            for (int i = n_out; i < nl; i++) off += idx[i] * ls[loop[i]];
            s += xf ? (double)xf[off] : xd[off];
            for (int i = nl - 1; i >= n_out; i--) { /* odometer */
                if (++idx[i] < sp->size[loop[i]]) break;
                idx[i] = 0;
            }
        }
        dst[o] = s;
    }
}

static int in_list(const int *lab, int n, int l) {
    for (int i = 0; i < n; i++)
        if (lab[i] == l) return 1;
    return 0;
}

static void add_unique(group *g, int l) {
    if (!in_list(g->lab, g->n, l)) g->lab[g->n++] = l;
}

static int ein_kernel(pst_kernel_ctx *c) {
    int k = c->n_inputs;
    const char *eq = pst_kctx_attr_s(c, "equation", "");
    pst_shape s[2];
    for (int i = 0; i < k && i < 2; i++) s[i] = c->inputs[i]->shape;
    ein_spec sp;
    if (ein_parse(eq, k, s, &sp, c->status) < 0) return c->status->code;
    pst_dtype dt = c->inputs[0]->dtype;
    if (dt != PST_FLOAT && dt != PST_DOUBLE)
        return pst_kctx_error(c, PST_E_INVALID, "Einsum takes float or double, got %s",
                              pst_dtype_name(dt));
    pst_shape os = {.rank = sp.out_rank};
    for (int a = 0; a < sp.out_rank; a++) os.dims[a] = sp.size[sp.out[a]];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, dt, os);
    if (!o) return c->status->code;
    /* label groups */
    group batch = {0}, rows = {0}, cols = {0}, con = {0}, sum_a = {0}, sum_b = {0};
    for (int d = 0; d < sp.rank[0]; d++) {
        int l = sp.lab[0][d];
        int in_b = k == 2 && in_list(sp.lab[1], sp.rank[1], l), in_o = in_list(sp.out, sp.out_rank, l);
        if (in_b && in_o) add_unique(&batch, l);
        else if (in_o) add_unique(&rows, l);
        else if (in_b) add_unique(&con, l);
        else add_unique(&sum_a, l);
    }
    for (int d = 0; k == 2 && d < sp.rank[1]; d++) {
        int l = sp.lab[1][d];
        int in_a = in_list(sp.lab[0], sp.rank[0], l), in_o = in_list(sp.out, sp.out_rank, l);
        if (!in_a && in_o) add_unique(&cols, l);
        else if (!in_a) add_unique(&sum_b, l);
    }
    int64_t nb = 1, m = 1, kk = 1, n = 1;
    for (int i = 0; i < batch.n; i++) nb *= sp.size[batch.lab[i]];
    for (int i = 0; i < rows.n; i++) m *= sp.size[rows.lab[i]];
    for (int i = 0; i < con.n; i++) kk *= sp.size[con.lab[i]];
    for (int i = 0; i < cols.n; i++) n *= sp.size[cols.lab[i]];
    double *A = malloc((size_t)(nb * m * kk + 1) * sizeof *A);
    double *B = k == 2 ? malloc((size_t)(nb * kk * n + 1) * sizeof *B) : NULL;
    double *C = k == 2 ? malloc((size_t)(nb * m * n + 1) * sizeof *C) : NULL;
    if (!A || (k == 2 && (!B || !C))) {
        free(A);
        free(B);
        free(C);
        return pst_kctx_error(c, PST_E_EXHAUSTED, "Einsum '%s': out of memory", eq);
    }
    group ga[3] = {batch, rows, con}, gb[3] = {batch, con, cols};
    gather(c->inputs[0], sp.lab[0], sp.rank[0], &sp, ga, 3, &sum_a, A);
    const double *R = A; /* [batch, rows, cols] */
    if (k == 2) {
        gather(c->inputs[1], sp.lab[1], sp.rank[1], &sp, gb, 3, &sum_b, B);
        for (int64_t b = 0; b < nb; b++)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)kk, 1.0,
                        A + b * m * kk, (int)(kk > 0 ? kk : 1), B + b * kk * n,
                        (int)(n > 0 ? n : 1), 0.0, C + b * m * n, (int)(n > 0 ? n : 1));
        R = C;
    }
    /* scatter R[batch][rows][cols] into the output's order */
    int64_t rs[EIN_LABELS];
    memset(rs, 0, sizeof rs);
    int64_t acc = 1;
    for (int i = cols.n - 1; i >= 0; i--) rs[cols.lab[i]] = acc, acc *= sp.size[cols.lab[i]];
    for (int i = rows.n - 1; i >= 0; i--) rs[rows.lab[i]] = acc, acc *= sp.size[rows.lab[i]];
    for (int i = batch.n - 1; i >= 0; i--) rs[batch.lab[i]] = acc, acc *= sp.size[batch.lab[i]];
    int64_t total = o->n;
    for (int64_t q = 0; q < total; q++) {
        int64_t rem = q, src = 0;
        for (int a = sp.out_rank - 1; a >= 0; a--) {
            int64_t sz = sp.size[sp.out[a]];
            src += (rem % sz) * rs[sp.out[a]];
            rem /= sz;
        }
        if (dt == PST_FLOAT) pst_tensor_f32(o)[q] = (float)R[src];
        else pst_tensor_f64(o)[q] = R[src];
    }
    free(A);
    free(B);
    free(C);
    return 0;
}

/* The letters of labels lab (n of them) as equation text, "..." for the broadcast dims. */
static void term_str(const int *lab, int n, char *out) {
    int k = 0, ell = 0;
    for (int i = 0; i < n; i++) {
        if (lab[i] < 'A') {
            if (!ell) {
                memcpy(out + k, "...", 3);
                k += 3;
                ell = 1;
            }
        } else {
            out[k++] = (char)lab[i];
        }
    }
    out[k] = 0;
}

pst_output pst_einsum(pst_graph *g, const char *equation, int n, const pst_output *in,
                      const char *name) {
    pst_node_builder *nb = pst_nb_new(g, "Einsum", name);
    pst_nb_inputs(nb, n, in);
    pst_nb_attr_s(nb, "equation", equation);
    pst_nb_attr_i(nb, "N", n);
    if (n > 0 && in[0].node) pst_nb_attr_type(nb, "T", pst_output_dtype(in[0]));
    return pst_nb_finish_out(nb);
}

static int ein_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    const char *eq = pst_node_attr_s(n, "equation", "");
    int k = n->n_inputs;
    pst_shape s[2];
    for (int i = 0; i < k && i < 2; i++) s[i] = pst_node_in_shape(n, i);
    ein_spec sp;
    pst_status st = {0};
    int ok = k >= 1 && k <= 2 && s[0].rank >= 0 && (k == 1 || s[1].rank >= 0) &&
             ein_parse(eq, k, s, &sp, &st) == 0;
    /* every operand letter once, reaching the output or the other operand, no broadcast */
    for (int i = 0; ok && i < k; i++)
        for (int d = 0; ok && d < sp.rank[i]; d++) {
            int l = sp.lab[i][d];
            ok = !in_list(sp.lab[i], d, l) &&
                 (in_list(sp.out, sp.out_rank, l) ||
                  (k == 2 && in_list(sp.lab[1 - i], sp.rank[1 - i], l)));
            if (ok && k == 2 && in_list(sp.lab[1 - i], sp.rank[1 - i], l)) {
                for (int e = 0; e < sp.rank[1 - i]; e++)
                    if (sp.lab[1 - i][e] == l &&
                        (s[i].dims[d] < 0 || s[1 - i].dims[e] != s[i].dims[d]))
                        ok = 0;
            }
        }
    if (!ok) {
        pst_graph_set_error(g, PST_E_UNIMPLEMENTED, "Einsum '%s' (node '%s'): no gradient for "
                            "this equation (summed-away, repeated or broadcast dims)", eq,
                            n->name);
        return PST_E_UNIMPLEMENTED;
    }
    char to[3][64], geq[200];
    term_str(sp.lab[0], sp.rank[0], to[0]);
    if (k == 2) term_str(sp.lab[1], sp.rank[1], to[1]);
    term_str(sp.out, sp.out_rank, to[2]);
    if (k == 1) {
        snprintf(geq, sizeof geq, "%s->%s", to[2], to[0]);
        dx[0] = pst_einsum(g, geq, 1, &dy[0], NULL);
        return 0;
    }
    pst_output ins[2] = {dy[0], n->inputs[1]};
    snprintf(geq, sizeof geq, "%s,%s->%s", to[2], to[1], to[0]);
    dx[0] = pst_einsum(g, geq, 2, ins, NULL);
    ins[0] = n->inputs[0];
    ins[1] = dy[0];
    snprintf(geq, sizeof geq, "%s,%s->%s", to[0], to[2], to[1]);
    dx[1] = pst_einsum(g, geq, 2, ins, NULL);
    return 0;
}

static const pst_attr_spec ein_attrs[] = {
    {"equation", PST_ATTR_STRING, 1}, {"N", PST_ATTR_INT, 0}, {"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_op_def ein_op = {.name = "Einsum", .min_inputs = 1, .max_inputs = -1,
                                  .n_outputs = 1, .attrs = ein_attrs, .shape = ein_shape,
                                  .kernel = ein_kernel, .grad = ein_grad};

void pst__register_einsum_ops(void) { pst_op_register(&ein_op); }
