/* Connectionist temporal classification as tf.nn.ctc_loss, tf.nn.ctc_greedy_decoder and
 * tf.edit_distance put it into graphs: CTCLoss, CTCGreedyDecoder, EditDistance.
 *
 * CTCLoss(inputs [T,B,C] logits, labels_indices [N,2] int64, labels_values [N] int32,
 * sequence_length [B] int32) -> loss [B], gradient [T,B,C]. Class C-1 is the blank. Per batch
 * entry b: the softmax of the logits over classes, the label sequence l (the values whose index
 * row starts with b, in order of their second index; a value >= C-1 ends the sequence, and with
 * preprocess_collapse_repeated runs of equal labels count once), the extended sequence l' =
 * blank, l1, blank, l2, ..., blank, and Graves' forward (alpha, including y at t) and backward
 * (beta, from t+1 on) variables in log space. With ctc_merge_repeated a label may stay on
 * itself (repeats of one label collapse), and a skip over a blank is allowed only between
 * different labels; without it only blanks repeat. loss_b = -log p(l|x), and the gradient with
 * respect to the logits is y(k,t) - sum_{u: l'(u)=k} alpha(u,t) beta(u,t) / p. Entries with
 * sequence length 0 (or, with ignore_longer_outputs_than_inputs, labels longer than the
 * sequence) get loss 0 and gradient 0; without that flag such labels are an error. When no path
 * is possible the loss is inf and the gradient the softmax itself. TF's gradient function
 * multiplies the gradient output by the incoming loss gradient; pstrain's does the same. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

static double log_sum(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

/* One batch entry's label sequence: values whose first index is b, ordered by the second. */
typedef struct label_ref {
    int64_t b, pos;
    int32_t v;
} label_ref;

static int cmp_label(const void *x, const void *y) {
    const label_ref *a = x, *b = y;
    if (a->b != b->b) return a->b < b->b ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

/* Sorted (batch, position, value) triples of a SparseTensor's [N,2] indices and values; NULL
 * with an error when indices are malformed or a batch index is outside [0, batch). */
static label_ref *sparse_rows(pst_kernel_ctx *c, const pst_tensor *idx, const pst_tensor *val,
                              int64_t batch) {
    if (idx->shape.rank != 2 || idx->shape.dims[1] != 2 || val->n != idx->shape.dims[0]) {
        pst_kctx_error(c, PST_E_INVALID, "labels_indices must be [N, 2] and labels_values [N]");
        return NULL;
    }
    label_ref *r = calloc((size_t)val->n + 1, sizeof *r);
    PST_ASSERT(r != NULL);
    for (int64_t i = 0; i < val->n; i++) {
        r[i].b = pst_tensor_get_i64(idx, 2 * i);
        r[i].pos = pst_tensor_get_i64(idx, 2 * i + 1);
        r[i].v = (int32_t)pst_tensor_get_i64(val, i);
        if (r[i].b < 0 || r[i].b >= batch) {
            pst_kctx_error(c, PST_E_INVALID, "label %lld has batch index %lld, not in [0, %lld)",
                           (long long)i, (long long)r[i].b, (long long)batch);
            free(r);
            return NULL;
        }
    }
    qsort(r, (size_t)val->n, sizeof *r, cmp_label);
    return r;
}

/* Forward and backward variables of one sequence: la, lb are [U][T] in log space. */
static void ctc_alpha_beta(const double *ly, int64_t C, int64_t T, const int *lp, int U,
                           int merge, double *la, double *lb) {
    int blank = (int)C - 1;
    for (int64_t i = 0; i < (int64_t)U * T; i++) la[i] = lb[i] = -INFINITY;
#define LY(k, t) ly[(t) * C + (k)]
#define A(u, t) la[(int64_t)(u) * T + (t)]
#define B(u, t) lb[(int64_t)(u) * T + (t)]
    A(0, 0) = LY(blank, 0);
    if (U > 1) A(1, 0) = LY(lp[1], 0);
    for (int64_t t = 1; t < T; t++) {
        int64_t lo = U - 2 * (T - t), hi = 2 * (t + 1);
        for (int64_t u = lo < 0 ? 0 : lo; u < U && u < hi; u++) {
            double s = -INFINITY;
            if (merge || lp[u] == blank) s = A(u, t - 1);
            if (u > 0) s = log_sum(s, A(u - 1, t - 1));
            if (u > 1 && lp[u] != blank && !(merge && lp[u] == lp[u - 2]))
                s = log_sum(s, A(u - 2, t - 1));
            A(u, t) = s + LY(lp[u], t);
        }
    }
    for (int u = U - 2; u < U; u++)
        if (u >= 0) B(u, T - 1) = 0;
    for (int64_t t = T - 2; t >= 0; t--) {
        int64_t lo = U - 2 * (T - t), hi = 2 * (t + 1);
        for (int64_t u = lo < 0 ? 0 : lo; u < U && u < hi; u++) {
            double s = -INFINITY;
            if (merge || lp[u] == blank) s = B(u, t + 1) + LY(lp[u], t + 1);
            if (u + 1 < U) s = log_sum(s, B(u + 1, t + 1) + LY(lp[u + 1], t + 1));
            if (u + 2 < U && lp[u] != blank && !(merge && lp[u] == lp[u + 2]))
                s = log_sum(s, B(u + 2, t + 1) + LY(lp[u + 2], t + 1));
            B(u, t) = s;
        }
    }
#undef LY
#undef A
#undef B
}

static int ctc_loss_shape(pst_node *n, pst_status *st) {
    pst_shape x = pst_node_in_shape(n, 0);
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (!pst_dtype_is_float(dt))
        return pst_status_set(st, PST_E_INVALID, "inputs must be float or double, not %s",
                              pst_dtype_name(dt));
    if (x.rank >= 0 && x.rank != 3)
        return pst_status_set(st, PST_E_INVALID, "inputs must be 3-D [time, batch, classes]");
    pst_node_set_output(n, 0, dt, pst_shape_1d(x.rank == 3 ? x.dims[1] : -1));
    pst_node_set_output(n, 1, dt, x.rank == 3 ? x : pst_shape_unknown());
    return 0;
}

/* Checks inputs [T,B,C] (C >= 1) and sequence_length [B] with every length in [0, T]. */
static int check_dims(pst_kernel_ctx *c, const pst_tensor *x, const pst_tensor *sl, int64_t *T,
                      int64_t *Bn, int64_t *C) {
    if (x->shape.rank != 3 || x->shape.dims[2] < 1)
        return pst_kctx_error(c, PST_E_INVALID, "inputs must be 3-D [time, batch, classes]");
    *T = x->shape.dims[0], *Bn = x->shape.dims[1], *C = x->shape.dims[2];
    if (sl->n != *Bn)
        return pst_kctx_error(c, PST_E_INVALID, "sequence_length has %lld entries for a batch "
                              "of %lld", (long long)sl->n, (long long)*Bn);
    for (int64_t b = 0; b < *Bn; b++) {
        int64_t len = pst_tensor_get_i64(sl, b);
        if (len < 0 || len > *T)
            return pst_kctx_error(c, PST_E_INVALID, "sequence_length[%lld] = %lld is not in "
                                  "[0, %lld]", (long long)b, (long long)len, (long long)*T);
    }
    return 0;
}

static int ctc_loss_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *sl = c->inputs[3];
    int64_t T, Bn, C;
    if (check_dims(c, x, sl, &T, &Bn, &C) < 0) return c->status->code;
    int collapse = pst_kctx_attr_b(c, "preprocess_collapse_repeated", 0);
    int merge = pst_kctx_attr_b(c, "ctc_merge_repeated", 1);
    int ignore_longer = pst_kctx_attr_b(c, "ignore_longer_outputs_than_inputs", 0);
    label_ref *lab = sparse_rows(c, c->inputs[1], c->inputs[2], Bn);
    if (lab == NULL) return c->status->code;
    pst_tensor *loss = pst_kctx_alloc_output(c, 0, x->dtype, pst_shape_1d(Bn));
    pst_tensor *grad = loss ? pst_kctx_alloc_output(c, 1, x->dtype, x->shape) : NULL;
    int64_t nl = c->inputs[2]->n;
    int *lp = malloc((size_t)(2 * nl + 2) * sizeof *lp);
    double *ly = malloc((size_t)(T * C + 1) * sizeof *ly);
    double *la = malloc((size_t)((2 * nl + 2) * T + 1) * sizeof *la);
    double *lb = malloc((size_t)((2 * nl + 2) * T + 1) * sizeof *lb);
    PST_ASSERT(lp && ly && la && lb);
    int rc = grad ? 0 : c->status->code;
    for (int64_t i = 0; rc == 0 && i < grad->n; i++) pst_tensor_set_f64(grad, i, 0);
    int64_t at = 0;
    for (int64_t b = 0; rc == 0 && b < Bn; b++) {
        int64_t len = pst_tensor_get_i64(sl, b), first = at;
        while (at < nl && lab[at].b == b) at++;
        int64_t raw = at - first;
        if (raw == 0) {
            rc = pst_kctx_error(c, PST_E_INVALID, "labels length is zero in batch %lld", (long long)b);
            break;
        }
        /* l' = blank, l1, blank, l2, ..., blank; a label >= C-1 ends l. */
        int U = 0, ended = 0;
        lp[U++] = (int)C - 1;
        for (int64_t i = first; i < at && rc == 0; i++) {
            int32_t v = lab[i].v;
            if (i > first && collapse && v == lab[i - 1].v) continue;
            if (v < 0) {
                rc = pst_kctx_error(c, PST_E_INVALID, "label %d in batch %lld is negative", v, (long long)b);
            } else if (v >= C - 1) {
                ended = 1;
            } else if (ended) {
                rc = pst_kctx_error(c, PST_E_INVALID, "batch %lld: a label follows the blank "
                                    "(%lld) in its sequence", (long long)b, (long long)C - 1);
            } else {
                lp[U++] = v;
                lp[U++] = (int)C - 1;
            }
        }
        if (rc < 0) break;
        if (len == 0 || (ignore_longer && raw > len)) {
            pst_tensor_set_f64(loss, b, 0);
            continue;
        }
        if (raw > len) {
            rc = pst_kctx_error(c, PST_E_INVALID, "batch %lld: not enough time for the labels "
                                "(required: %lld, available: %lld); ignore_longer_outputs_than_"
                                "inputs turns this into a zero loss", (long long)b,
                                (long long)raw, (long long)len);
            break;
        }
        /* log softmax over classes, per time step */
        for (int64_t t = 0; t < len; t++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t k = 0; k < C; k++) {
                double v = pst_tensor_get_f64(x, (t * Bn + b) * C + k);
                if (v > mx) mx = v;
            }
            for (int64_t k = 0; k < C; k++)
                sum += exp(pst_tensor_get_f64(x, (t * Bn + b) * C + k) - mx);
            for (int64_t k = 0; k < C; k++)
                ly[t * C + k] = pst_tensor_get_f64(x, (t * Bn + b) * C + k) - mx - log(sum);
        }
        ctc_alpha_beta(ly, C, len, lp, U, merge, la, lb);
        double lpz = -INFINITY;
        for (int u = 0; u < U; u++) lpz = log_sum(lpz, la[(int64_t)u * len] + lb[(int64_t)u * len]);
        pst_tensor_set_f64(loss, b, -lpz);
        for (int64_t t = 0; t < len; t++)
            for (int64_t k = 0; k < C; k++) {
                double ps = -INFINITY;
                if (lpz != -INFINITY)
                    for (int u = 0; u < U; u++)
                        if (lp[u] == k) ps = log_sum(ps, la[(int64_t)u * len + t] + lb[(int64_t)u * len + t]);
                double y = exp(ly[t * C + k]);
                pst_tensor_set_f64(grad, (t * Bn + b) * C + k, lpz == -INFINITY ? y : y - exp(ps - lpz));
            }
    }
    free(lab), free(lp), free(ly), free(la), free(lb);
    return rc;
}

/* d loss_b / d inputs = gradient[:, b, :]: the incoming [B] gradient broadcast over time and
 * classes. */
static int ctc_loss_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    if (dy[0].node == NULL) return 0;
    int64_t dims[3] = {1, -1, 1};
    dx[0] = pst_mul(g, pst_reshape(g, dy[0], 3, dims, NULL), pst_out(n, 1), NULL);
    return 0;
}

/* ---- CTCGreedyDecoder(inputs [T,B,C], sequence_length [B]) ------------------------------
 * Per entry and step the first class of largest logit; blanks (C-1) dropped, and with
 * merge_repeated a class equal to the previous step's counted once. log_probability[b, 0] is
 * minus the sum of those largest logits (TF's definition). The decoding is a SparseTensor of
 * shape [B, longest decoding]. */
static int greedy_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (!pst_dtype_is_float(dt))
        return pst_status_set(st, PST_E_INVALID, "inputs must be float or double");
    pst_shape x = pst_node_in_shape(n, 0);
    pst_node_set_output(n, 0, PST_INT64, pst_shape_2d(-1, 2));
    pst_node_set_output(n, 1, PST_INT64, pst_shape_1d(-1));
    pst_node_set_output(n, 2, PST_INT64, pst_shape_1d(2));
    pst_node_set_output(n, 3, dt, pst_shape_2d(x.rank == 3 ? x.dims[1] : -1, 1));
    return 0;
}

static int greedy_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *sl = c->inputs[1];
    int64_t T, Bn, C;
    if (check_dims(c, x, sl, &T, &Bn, &C) < 0) return c->status->code;
    int merge = pst_kctx_attr_b(c, "merge_repeated", 0);
    int64_t *cls = malloc((size_t)(T * Bn + 1) * sizeof *cls), *cnt = calloc((size_t)Bn + 1, sizeof *cnt);
    PST_ASSERT(cls && cnt);
    pst_tensor *lp = pst_kctx_alloc_output(c, 3, x->dtype, pst_shape_2d(Bn, 1));
    int rc = lp ? 0 : c->status->code;
    int64_t total = 0, width = 0;
    for (int64_t b = 0; rc == 0 && b < Bn; b++) {
        int64_t len = pst_tensor_get_i64(sl, b), prev = -1;
        double score = 0;
        for (int64_t t = 0; t < len; t++) {
            int64_t best = 0;
            double bv = pst_tensor_get_f64(x, (t * Bn + b) * C);
            for (int64_t k = 1; k < C; k++) {
                double v = pst_tensor_get_f64(x, (t * Bn + b) * C + k);
                if (v > bv) bv = v, best = k;
            }
            score -= bv;
            if (best != C - 1 && !(merge && best == prev)) cls[b * T + cnt[b]++] = best;
            prev = best;
        }
        pst_tensor_set_f64(lp, b, score);
        total += cnt[b];
        if (cnt[b] > width) width = cnt[b];
    }
    pst_tensor *idx = rc == 0 ? pst_kctx_alloc_output(c, 0, PST_INT64, pst_shape_2d(total, 2)) : NULL;
    pst_tensor *val = idx ? pst_kctx_alloc_output(c, 1, PST_INT64, pst_shape_1d(total)) : NULL;
    pst_tensor *shp = val ? pst_kctx_alloc_output(c, 2, PST_INT64, pst_shape_1d(2)) : NULL;
    if (rc == 0 && shp == NULL) rc = c->status->code;
    for (int64_t b = 0, at = 0; rc == 0 && b < Bn; b++)
        for (int64_t j = 0; j < cnt[b]; j++, at++) {
            pst_tensor_i64(idx)[2 * at] = b;
            pst_tensor_i64(idx)[2 * at + 1] = j;
            pst_tensor_i64(val)[at] = cls[b * T + j];
        }
    if (rc == 0) {
        pst_tensor_i64(shp)[0] = Bn;
        pst_tensor_i64(shp)[1] = width;
    }
    free(cls), free(cnt);
    return rc;
}

/* ---- EditDistance(hyp indices, values, shape, truth indices, values, shape) -------------
 * Both SparseTensors of rank R: the Levenshtein distance between the sequences (the values
 * along the last dimension) at every position of the first R-1 dimensions, as a dense float
 * tensor shaped by the larger of the two shapes there. With normalize the distance is divided
 * by the truth's length (a hypothesis against an empty truth gives inf; two empty give 0). */
typedef struct seq_ref {
    int64_t key, pos, i; /* row-major position over the first R-1 dims, last index, value index */
} seq_ref;

static int cmp_seq(const void *x, const void *y) {
    const seq_ref *a = x, *b = y;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

static seq_ref *seq_refs(pst_kernel_ctx *c, const pst_tensor *idx, const pst_tensor *val, int R,
                         const int64_t *out_dims, const char *what) {
    int64_t n = val->n;
    if (idx->shape.rank != 2 || idx->shape.dims[0] != n || idx->shape.dims[1] != R) {
        pst_kctx_error(c, PST_E_INVALID, "%s_indices must be [%lld, %d]", what, (long long)n, R);
        return NULL;
    }
    seq_ref *r = calloc((size_t)n + 1, sizeof *r);
    PST_ASSERT(r != NULL);
    for (int64_t i = 0; i < n; i++) {
        int64_t key = 0;
        for (int d = 0; d < R - 1; d++) {
            int64_t v = pst_tensor_get_i64(idx, i * R + d);
            if (v < 0 || v >= out_dims[d]) {
                pst_kctx_error(c, PST_E_INVALID, "%s index %lld is outside its shape", what, (long long)i);
                free(r);
                return NULL;
            }
            key = key * out_dims[d] + v;
        }
        r[i] = (seq_ref){key, pst_tensor_get_i64(idx, i * R + R - 1), i};
    }
    qsort(r, (size_t)n, sizeof *r, cmp_seq);
    return r;
}

static int values_equal(const pst_tensor *a, int64_t i, const pst_tensor *b, int64_t j) {
    if (a->dtype == PST_STRING) {
        const pst_tstring *x = (const pst_tstring *)a->data + i, *y = (const pst_tstring *)b->data + j;
        return x->len == y->len && (x->len == 0 || memcmp(x->p, y->p, x->len) == 0);
    }
    return pst_tensor_get_f64(a, i) == pst_tensor_get_f64(b, j);
}

static int64_t levenshtein(const pst_tensor *hv, const seq_ref *h, int64_t nh, const pst_tensor *tv,
                           const seq_ref *t, int64_t nt, int64_t *row) {
    for (int64_t j = 0; j <= nt; j++) row[j] = j;
    for (int64_t i = 1; i <= nh; i++) {
        int64_t diag = row[0];
        row[0] = i;
        for (int64_t j = 1; j <= nt; j++) {
            int64_t up = row[j], best = diag + (values_equal(hv, h[i - 1].i, tv, t[j - 1].i) ? 0 : 1);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[nt];
}

static int edit_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 1) != pst_node_in_dtype(n, 4))
        return pst_status_set(st, PST_E_INVALID, "hypothesis and truth values differ in dtype");
    const pst_tensor *hs = pst_node_in_const(n, 2);
    pst_shape s = pst_shape_unknown();
    if (hs && hs->n >= 1 && hs->n - 1 <= PST_MAX_RANK) {
        s.rank = (int)hs->n - 1;
        for (int d = 0; d < s.rank; d++) s.dims[d] = -1;
    }
    pst_node_set_output(n, 0, PST_FLOAT, s);
    return 0;
}

static int edit_kernel(pst_kernel_ctx *c) {
    const pst_tensor *hs = c->inputs[2], *ts = c->inputs[5], *hv = c->inputs[1], *tv = c->inputs[4];
    int R = (int)hs->n;
    if (R < 1 || ts->n != R || R - 1 > PST_MAX_RANK)
        return pst_kctx_error(c, PST_E_INVALID, "hypothesis_shape and truth_shape must have one "
                              "rank >= 1, got %lld and %lld", (long long)hs->n, (long long)ts->n);
    pst_shape os = {.rank = R - 1};
    int64_t cells = 1;
    for (int d = 0; d < R - 1; d++) {
        int64_t a = pst_tensor_get_i64(hs, d), b = pst_tensor_get_i64(ts, d);
        os.dims[d] = a > b ? a : b;
        cells *= os.dims[d];
    }
    int normalize = pst_kctx_attr_b(c, "normalize", 1);
    seq_ref *h = seq_refs(c, c->inputs[0], hv, R, os.dims, "hypothesis");
    seq_ref *t = h ? seq_refs(c, c->inputs[3], tv, R, os.dims, "truth") : NULL;
    pst_tensor *o = t ? pst_kctx_alloc_output(c, 0, PST_FLOAT, os) : NULL;
    if (o == NULL) {
        free(h), free(t);
        return c->status->code;
    }
    if (cells > 0) memset(o->data, 0, (size_t)cells * sizeof(float));
    int64_t *row = malloc((size_t)(tv->n + 2) * sizeof *row);
    PST_ASSERT(row != NULL);
    int64_t i = 0, j = 0;
    while (i < hv->n || j < tv->n) {
        int64_t key = i < hv->n && (j >= tv->n || h[i].key <= t[j].key) ? h[i].key : t[j].key;
        int64_t i0 = i, j0 = j;
        while (i < hv->n && h[i].key == key) i++;
        while (j < tv->n && t[j].key == key) j++;
        double d = (double)levenshtein(hv, h + i0, i - i0, tv, t + j0, j - j0, row);
        if (normalize) d = j > j0 ? d / (double)(j - j0) : (i > i0 ? INFINITY : 0);
        pst_tensor_f32(o)[key] = (float)d;
    }
    free(row), free(h), free(t);
    return 0;
}

static const pst_attr_spec ctc_attrs[] = {{"preprocess_collapse_repeated", PST_ATTR_BOOL, 0},
                                          {"ctc_merge_repeated", PST_ATTR_BOOL, 0},
                                          {"ignore_longer_outputs_than_inputs", PST_ATTR_BOOL, 0},
                                          {"T", PST_ATTR_TYPE, 0},
                                          {0}};
static const pst_attr_spec greedy_attrs[] = {
    {"merge_repeated", PST_ATTR_BOOL, 0}, {"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec edit_attrs[] = {
    {"normalize", PST_ATTR_BOOL, 0}, {"T", PST_ATTR_TYPE, 0}, {0}};

static const pst_op_def ctc_ops[] = {
    {.name = "CTCLoss", .min_inputs = 4, .max_inputs = 4, .n_outputs = 2, .attrs = ctc_attrs,
     .shape = ctc_loss_shape, .kernel = ctc_loss_kernel, .grad = ctc_loss_grad},
    {.name = "CTCGreedyDecoder", .min_inputs = 2, .max_inputs = 2, .n_outputs = 4,
     .attrs = greedy_attrs, .shape = greedy_shape, .kernel = greedy_kernel,
     .flags = PST_OP_NOT_DIFFERENTIABLE},
    {.name = "EditDistance", .min_inputs = 6, .max_inputs = 6, .n_outputs = 1,
     .attrs = edit_attrs, .shape = edit_shape, .kernel = edit_kernel,
     .flags = PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS},
};

void pst__register_ctc_ops(void) {
    for (size_t i = 0; i < sizeof ctc_ops / sizeof ctc_ops[0]; i++) pst_op_register(&ctc_ops[i]);
}
