/* String ops and logging ops of imported TF graphs: StringJoin, ShardedFilename and
 * ShardedFilespec (the sharded saver's file names), Assert, CheckNumerics, Print, and the
 * TF 1 summaries (ScalarSummary, HistogramSummary, MergeSummary) producing serialized
 * `Summary` protos an event writer stores as they are. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "varint.h"

static const char *str_at(const pst_tensor *t, int64_t i) {
    const char *p = pst_tensor_str(t)[i].p;
    return p ? p : "";
}

/* ---- StringJoin(inputs: N strings, separator) ------------------------------------------ */
static int string_join_shape(pst_node *n, pst_status *st) {
    pst_shape out = pst_shape_scalar();
    for (int i = 0; i < n->n_inputs; i++) {
        if (pst_node_in_dtype(n, i) != PST_STRING)
            return pst_status_set(st, PST_E_INVALID, "input %d is not a string tensor", i);
        pst_shape s = pst_node_in_shape(n, i);
        if (s.rank != 0) out = s;
    }
    pst_node_set_output(n, 0, PST_STRING, out);
    return 0;
}

static int string_join_kernel(pst_kernel_ctx *c) {
    const char *sep = pst_kctx_attr_s(c, "separator", "");
    const pst_tensor *shaped = c->inputs[0];
    for (int i = 0; i < c->n_inputs; i++) {
        const pst_tensor *t = c->inputs[i];
        if (t->shape.rank == 0) continue;
        if (shaped->shape.rank != 0 && !pst_shape_equal(&shaped->shape, &t->shape))
            return pst_kctx_error(c, PST_E_INVALID, "inputs 0..%d are neither scalars nor of one "
                                  "shape", i);
        shaped = t;
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_STRING, shaped->shape);
    if (o == NULL) return c->status->code;
    memset(o->data, 0, o->nbytes);
    for (int64_t e = 0; e < o->n; e++) {
        size_t len = 0;
        for (int i = 0; i < c->n_inputs; i++) {
            const pst_tensor *t = c->inputs[i];
            len += pst_tensor_str(t)[t->shape.rank ? e : 0].len + (i ? strlen(sep) : 0);
        }
        char *buf = malloc(len + 1), *p = buf;
        if (buf == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
        for (int i = 0; i < c->n_inputs; i++) {
            const pst_tensor *t = c->inputs[i];
            const pst_tstring *s = &pst_tensor_str(t)[t->shape.rank ? e : 0];
            if (i) p += sprintf(p, "%s", sep);
            if (s->len) memcpy(p, s->p, s->len);
            p += s->len;
        }
        int rc = pst_tstring_set(&pst_tensor_str(o)[e], buf, len);
        free(buf);
        if (rc < 0) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    }
    return 0;
}

/* ---- ShardedFilename(basename, shard, num_shards), ShardedFilespec(basename, num_shards) - */
static int scalar_string_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "basename is not a string tensor");
    pst_node_set_output(n, 0, PST_STRING, pst_shape_scalar());
    return 0;
}

static int sharded_filename_kernel(pst_kernel_ctx *c) {
    int spec = c->n_inputs == 2;
    int64_t shard = spec ? 0 : pst_tensor_get_i64(c->inputs[1], 0);
    int64_t num = pst_tensor_get_i64(c->inputs[spec ? 1 : 2], 0);
    char buf[4200];
    if (spec)
        snprintf(buf, sizeof buf, "%.4000s-\?\?\?\?\?-of-%05" PRId64, str_at(c->inputs[0], 0), num);
    else
        snprintf(buf, sizeof buf, "%.4000s-%05" PRId64 "-of-%05" PRId64, str_at(c->inputs[0], 0),
                 shard, num);
    pst_tensor *o = pst_tensor_scalar_str(buf);
    if (o == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    pst_kctx_set_output(c, 0, o);
    return 0;
}

/* ---- Assert, Print, CheckNumerics ------------------------------------------------------ */

/* Appends up to `max` values of t to buf as "[v v ...]". */
static void append_values(char *buf, size_t cap, const pst_tensor *t, int64_t max) {
    size_t off = strlen(buf);
    off += (size_t)snprintf(buf + off, off < cap ? cap - off : 0, "[");
    for (int64_t i = 0; i < t->n && i < max && off < cap; i++) {
        const char *sp = i ? " " : "";
        if (t->dtype == PST_STRING)
            off += (size_t)snprintf(buf + off, cap - off, "%s%.200s", sp, str_at(t, i));
        else if (pst_dtype_is_float(t->dtype))
            off += (size_t)snprintf(buf + off, cap - off, "%s%g", sp, pst_tensor_get_f64(t, i));
        else
            off += (size_t)snprintf(buf + off, cap - off, "%s%" PRId64, sp, pst_tensor_get_i64(t, i));
    }
    if (off < cap) snprintf(buf + off, cap - off, "%s]", t->n > max ? "..." : "");
}

static int assert_kernel(pst_kernel_ctx *c) {
    const pst_tensor *cond = c->inputs[0];
    if (cond->dtype != PST_BOOL || cond->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "condition must be a bool scalar");
    if (pst_tensor_u8(cond)[0]) return 0;
    char msg[2048] = "assertion failed: ";
    int64_t max = pst_kctx_attr_i(c, "summarize", 3);
    for (int i = 1; i < c->n_inputs; i++) {
        if (i > 1) strncat(msg, " ", sizeof msg - strlen(msg) - 1);
        append_values(msg, sizeof msg, c->inputs[i], max);
    }
    return pst_kctx_error(c, PST_E_INVALID, "%s", msg);
}

static int print_kernel(pst_kernel_ctx *c) {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", pst_kctx_attr_s(c, "message", ""));
    int64_t max = pst_kctx_attr_i(c, "summarize", 3);
    for (int i = 1; i < c->n_inputs; i++) append_values(msg, sizeof msg, c->inputs[i], max);
    fprintf(stderr, "%s\n", msg);
    pst_kctx_set_output(c, 0, pst_tensor_ref(c->inputs[0]));
    return 0;
}

static int check_numerics_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0];
    for (int64_t i = 0; i < x->n; i++) {
        double v = pst_tensor_get_f64(x, i);
        if (!isfinite(v))
            return pst_kctx_error(c, PST_E_INVALID, "%s : Tensor had %s values",
                                  pst_kctx_attr_s(c, "message", ""), isnan(v) ? "NaN" : "Inf");
    }
    pst_kctx_set_output(c, 0, pst_tensor_ref(c->inputs[0]));
    return 0;
}

static int pass_through_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    (void)g;
    (void)n;
    dx[0] = dy[0];
    return 0;
}

/* ---- Summaries: Summary { repeated Value value = 1 }, Value { tag = 1, simple_value = 2,
 * histo = 5 }, HistogramProto { min 1, max 2, num 3, sum 4, sum_squares 5, bucket_limit 6,
 * bucket 7 (packed doubles) }. */
typedef struct pbuf {
    uint8_t *p;
    size_t n, cap;
} pbuf;

static void pb_put(pbuf *b, const void *d, size_t n) {
    if (n == 0 && b->p != NULL) return; /* (d may be NULL: an empty message) */
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        PST_ASSERT(b->p != NULL);
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void pb_varint(pbuf *b, uint64_t v) {
    uint8_t t[PST_VARINT_MAX];
    pb_put(b, t, pst_varint_put64(t, v));
}
static void pb_bytes(pbuf *b, int field, const void *d, size_t n) {
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    pb_put(b, d, n);
}
static void pb_double(pbuf *b, int field, double v) {
    pb_varint(b, (uint64_t)field << 3 | 1);
    pb_put(b, &v, 8); /* little-endian hosts only, as everywhere in pstrain */
}

static int set_summary_output(pst_kernel_ctx *c, pbuf *summary) {
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_STRING, pst_shape_scalar());
    if (o == NULL) return c->status->code;
    memset(o->data, 0, o->nbytes);
    int rc = pst_tstring_set(pst_tensor_str(o), summary->p, summary->n);
    free(summary->p);
    return rc < 0 ? pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory") : 0;
}

static int summary_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_STRING, pst_shape_scalar());
    return 0;
}

static int scalar_summary_kernel(pst_kernel_ctx *c) {
    const pst_tensor *tags = c->inputs[0], *vals = c->inputs[1];
    if (tags->dtype != PST_STRING || !pst_shape_equal(&tags->shape, &vals->shape))
        return pst_kctx_error(c, PST_E_INVALID, "tags and values must be of one shape");
    pbuf s = {0};
    for (int64_t i = 0; i < tags->n; i++) {
        pbuf v = {0};
        pb_bytes(&v, 1, str_at(tags, i), pst_tensor_str(tags)[i].len);
        float f = (float)pst_tensor_get_f64(vals, i);
        pb_varint(&v, 2 << 3 | 5);
        pb_put(&v, &f, 4);
        pb_bytes(&s, 1, v.p, v.n);
        free(v.p);
    }
    return set_summary_output(c, &s);
}

/* TF's default histogram buckets: 0, then +-1e-12 growing by 10% up to 1e20, then +-DBL_MAX. */
static int default_limits(double **out) {
    int np = 0;
    for (double v = 1e-12; v < 1e20; v *= 1.1) np++;
    int n = 2 * (np + 1) + 1;
    double *l = malloc((size_t)n * sizeof *l);
    PST_ASSERT(l != NULL);
    int k = 0;
    double v = 1e-12;
    for (int i = 0; i < np; i++, v *= 1.1) l[np + 1 + 1 + i] = v, l[np - i] = -v;
    l[0] = -DBL_MAX;
    l[np + 1] = 0;
    l[n - 1] = DBL_MAX;
    k = n;
    *out = l;
    return k;
}

static int histogram_summary_kernel(pst_kernel_ctx *c) {
    const pst_tensor *tag = c->inputs[0], *vals = c->inputs[1];
    if (tag->dtype != PST_STRING || tag->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "tag must be one string");
    double *lim;
    int nl = default_limits(&lim);
    double *cnt = calloc((size_t)nl, sizeof *cnt);
    PST_ASSERT(cnt != NULL);
    double mn = DBL_MAX, mx = -DBL_MAX, sum = 0, sq = 0;
    for (int64_t i = 0; i < vals->n; i++) {
        double x = pst_tensor_get_f64(vals, i);
        if (!isfinite(x)) {
            free(lim);
            free(cnt);
            return pst_kctx_error(c, PST_E_INVALID, "Nan in summary histogram for: %s",
                                  str_at(tag, 0));
        }
        int lo = 0, hi = nl - 1; /* the first limit above x */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (lim[mid] > x) hi = mid;
            else lo = mid + 1;
        }
        cnt[lo]++;
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
        sum += x;
        sq += x * x;
    }
    pbuf h = {0}, bl = {0}, bc = {0};
    pb_double(&h, 1, mn);
    pb_double(&h, 2, mx);
    pb_double(&h, 3, (double)vals->n);
    pb_double(&h, 4, sum);
    pb_double(&h, 5, sq);
    for (int i = 0; i < nl;) { /* runs of empty buckets collapse into their last limit */
        double end = lim[i], n = cnt[i++];
        if (n <= 0)
            while (i < nl && cnt[i] <= 0) end = lim[i++];
        pb_put(&bl, &end, 8);
        pb_put(&bc, &n, 8);
    }
    pb_bytes(&h, 6, bl.p, bl.n);
    pb_bytes(&h, 7, bc.p, bc.n);
    pbuf v = {0}, s = {0};
    pb_bytes(&v, 1, str_at(tag, 0), pst_tensor_str(tag)[0].len);
    pb_bytes(&v, 5, h.p, h.n);
    pb_bytes(&s, 1, v.p, v.n);
    free(h.p), free(bl.p), free(bc.p), free(v.p), free(lim), free(cnt);
    return set_summary_output(c, &s);
}

/* Serialized Summaries concatenate into one holding every value (a repeated field). */
static int merge_summary_kernel(pst_kernel_ctx *c) {
    pbuf s = {0};
    for (int i = 0; i < c->n_inputs; i++) {
        const pst_tensor *t = c->inputs[i];
        for (int64_t k = 0; k < t->n; k++)
            if (pst_tensor_str(t)[k].len) pb_put(&s, pst_tensor_str(t)[k].p, pst_tensor_str(t)[k].len);
    }
    if (s.p == NULL) pb_put(&s, "", 0);
    return set_summary_output(c, &s);
}

/* TensorSummaryV2(tag, tensor, serialized_summary_metadata) (tf.summary.text,
 * tensor_summary): Value { tag 1, tensor 8, metadata 9 }, the tensor as a TensorProto { dtype 1,
 * tensor_shape 2 { dim 2 { size 1 } }, then tensor_content 4 (numbers, raw little-endian) or
 * string_val 8 (strings, one per element) }, as TF's kernel writes it. */
static int tensor_summary_kernel(pst_kernel_ctx *c) {
    int v1 = c->n_inputs == 1; /* TF 1.0's TensorSummary(tensor): the node's name, no metadata */
    const pst_tensor *tag = v1 ? NULL : c->inputs[0], *t = c->inputs[v1 ? 0 : 1], *meta = v1 ? NULL : c->inputs[2];
    if (!v1 && (tag->dtype != PST_STRING || tag->n != 1 || meta->dtype != PST_STRING || meta->n != 1))
        return pst_kctx_error(c, PST_E_INVALID, "tag and serialized_summary_metadata must be string scalars");
    pbuf tp = {0}, shape = {0}, v = {0}, sum = {0};
    pb_varint(&tp, 1 << 3);
    pb_varint(&tp, (uint64_t)t->dtype);
    for (int d = 0; d < t->shape.rank; d++) {
        pbuf dim = {0};
        pb_varint(&dim, 1 << 3);
        pb_varint(&dim, (uint64_t)t->shape.dims[d]);
        pb_bytes(&shape, 2, dim.p, dim.n);
        free(dim.p);
    }
    pb_bytes(&tp, 2, shape.p, shape.n);
    if (t->dtype == PST_STRING)
        for (int64_t i = 0; i < t->n; i++) pb_bytes(&tp, 8, str_at(t, i), pst_tensor_str(t)[i].len);
    else if (t->nbytes)
        pb_bytes(&tp, 4, t->data, t->nbytes);
    if (v1) {
        pb_bytes(&v, 7, c->node_name, strlen(c->node_name));
        pb_bytes(&v, 8, tp.p, tp.n);
    } else {
        pb_bytes(&v, 1, str_at(tag, 0), pst_tensor_str(tag)[0].len);
        pb_bytes(&v, 8, tp.p, tp.n);
        pb_bytes(&v, 9, str_at(meta, 0), pst_tensor_str(meta)[0].len);
    }
    pb_bytes(&sum, 1, v.p, v.n);
    free(tp.p), free(shape.p), free(v.p);
    return set_summary_output(c, &sum);
}

static const pst_attr_spec join_attrs[] = {
    {"N", PST_ATTR_INT, 0}, {"separator", PST_ATTR_STRING, 0}, {0}};
static const pst_attr_spec assert_attrs[] = {
    {"T", PST_ATTR_LIST_TYPE, 0}, {"summarize", PST_ATTR_INT, 0}, {0}};
static const pst_attr_spec print_attrs[] = {
    {"T", PST_ATTR_TYPE, 0},         {"U", PST_ATTR_LIST_TYPE, 0},
    {"message", PST_ATTR_STRING, 0}, {"first_n", PST_ATTR_INT, 0},
    {"summarize", PST_ATTR_INT, 0},  {0}};
static const pst_attr_spec numerics_attrs[] = {
    {"T", PST_ATTR_TYPE, 0}, {"message", PST_ATTR_STRING, 0}, {0}};
static const pst_attr_spec summary_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"N", PST_ATTR_INT, 0}, {0}};
static const pst_attr_spec tensor_summary_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                                     {"description", PST_ATTR_STRING, 0},
                                                     {"labels", PST_ATTR_LIST_STRING, 0},
                                                     {"display_name", PST_ATTR_STRING, 0},
                                                     {0}};

#define STR_OPS (PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE)

/* StringFormat(inputs...) (tf.strings.format, and tf.print's first half): the template with
 * each placeholder replaced by the next input's values; PrintV2(string) writes it. */
static int string_format_kernel(pst_kernel_ctx *c) {
    const char *tmpl = pst_kctx_attr_s(c, "template", "%s"), *ph = pst_kctx_attr_s(c, "placeholder", "%s");
    int64_t max = pst_kctx_attr_i(c, "summarize", 3);
    size_t phl = strlen(ph);
    char out[4096] = "";
    int next = 0;
    for (const char *p = tmpl; *p && strlen(out) < sizeof out - 1;) {
        if (phl && strncmp(p, ph, phl) == 0 && next < c->n_inputs) {
            append_values(out, sizeof out, c->inputs[next++], max < 0 ? INT64_MAX : max);
            p += phl;
        } else {
            size_t l = strlen(out);
            out[l] = *p++;
            out[l + 1] = '\0';
        }
    }
    pst_kctx_set_output(c, 0, pst_tensor_scalar_str(out));
    return 0;
}

static int string_format_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_STRING, pst_shape_scalar());
    return 0;
}

static int print_v2_kernel(pst_kernel_ctx *c) {
    const char *to = pst_kctx_attr_s(c, "output_stream", "stderr");
    FILE *f = strcmp(to, "stdout") == 0 || strcmp(to, "log(info)") == 0 ? stdout : stderr;
    fprintf(f, "%s%s", str_at(c->inputs[0], 0), pst_kctx_attr_s(c, "end", "\n"));
    fflush(f);
    return 0;
}

static const pst_attr_spec format_attrs[] = {{"T", PST_ATTR_LIST_TYPE, 0},
                                             {"template", PST_ATTR_STRING, 0},
                                             {"placeholder", PST_ATTR_STRING, 0},
                                             {"summarize", PST_ATTR_INT, 0},
                                             {0}};
static const pst_attr_spec print_v2_attrs[] = {
    {"output_stream", PST_ATTR_STRING, 0}, {"end", PST_ATTR_STRING, 0}, {0}};

static const pst_op_def string_ops[] = {
    {.name = "StringJoin", .min_inputs = 1, .max_inputs = -1, .n_outputs = 1,
     .attrs = join_attrs, .shape = string_join_shape, .kernel = string_join_kernel,
     .flags = STR_OPS},
    {.name = "ShardedFilename", .min_inputs = 3, .max_inputs = 3, .n_outputs = 1,
     .shape = scalar_string_shape, .kernel = sharded_filename_kernel, .flags = STR_OPS},
    {.name = "ShardedFilespec", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .shape = scalar_string_shape, .kernel = sharded_filename_kernel, .flags = STR_OPS},
    {.name = "Assert", .min_inputs = 1, .max_inputs = -1, .n_outputs = 0, .attrs = assert_attrs,
     .kernel = assert_kernel, .flags = STR_OPS | PST_OP_STATEFUL},
    {.name = "Print", .min_inputs = 1, .max_inputs = -1, .n_outputs = 1, .attrs = print_attrs,
     .shape = pst_shape_same_as_input0, .kernel = print_kernel, .grad = pass_through_grad,
     .flags = PST_OP_STRINGS | PST_OP_STATEFUL},
    {.name = "StringFormat", .min_inputs = 0, .max_inputs = -1, .n_outputs = 1,
     .attrs = format_attrs, .shape = string_format_shape, .kernel = string_format_kernel,
     .flags = STR_OPS},
    {.name = "PrintV2", .min_inputs = 1, .max_inputs = 1, .n_outputs = 0, .attrs = print_v2_attrs,
     .kernel = print_v2_kernel, .flags = STR_OPS | PST_OP_STATEFUL},
    {.name = "CheckNumerics", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = numerics_attrs, .shape = pst_shape_same_as_input0, .kernel = check_numerics_kernel,
     .grad = pass_through_grad},
    {.name = "ScalarSummary", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = summary_attrs, .shape = summary_shape, .kernel = scalar_summary_kernel,
     .flags = STR_OPS},
    {.name = "HistogramSummary", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = summary_attrs, .shape = summary_shape, .kernel = histogram_summary_kernel,
     .flags = STR_OPS},
    {.name = "TensorSummary", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = tensor_summary_attrs, .shape = summary_shape, .kernel = tensor_summary_kernel,
     .flags = STR_OPS},
    {.name = "TensorSummaryV2", .min_inputs = 3, .max_inputs = 3, .n_outputs = 1,
     .attrs = summary_attrs, .shape = summary_shape, .kernel = tensor_summary_kernel,
     .flags = STR_OPS},
    {.name = "MergeSummary", .min_inputs = 1, .max_inputs = -1, .n_outputs = 1,
     .attrs = summary_attrs, .shape = summary_shape, .kernel = merge_summary_kernel,
     .flags = STR_OPS},
};

void pst__register_string_ops(void) {
    for (size_t i = 0; i < sizeof string_ops / sizeof string_ops[0]; i++)
        pst_op_register(&string_ops[i]);
}
