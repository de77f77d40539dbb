/* TF 1.x's string ops as Estimator and feature-column graphs run them: hashing into buckets
 * (StringToHashBucketFast / Strong / the old StringToHashBucket, bit for bit: strhash.h),
 * splitting (StringSplit, StringSplitV2 into a SparseTensor's indices, values and shape),
 * StringLength, Substr (broadcasting pos/len, BYTE or UTF8_CHAR units), StringStrip,
 * StringLower / StringUpper (ASCII), AsString (TF's printf formats), ReduceJoin, web-safe
 * EncodeBase64 / DecodeBase64, Fingerprint (farmhash64), DecodePaddedRaw and
 * RegexFullMatch / StaticRegexFullMatch (POSIX extended regexes for RE2's common subset: \d \w \s
 * and their capitals are translated; RE2-only syntax is refused by name). Errors name the node (the
 * executor adds it) and what is wrong. */
#include <ctype.h>
#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "strhash.h"

static const pst_tstring *sref(const pst_tensor *t, int64_t i) { return pst_tensor_str(t) + i; }

/* Output i: a string tensor of shape s with every element empty (NULL with status set). */
static pst_tensor *str_out(pst_kernel_ctx *c, int i, pst_shape s) {
    pst_tensor *o = pst_tensor_new_zeros(PST_STRING, s, c->status);
    if (o) pst_kctx_set_output(c, i, o);
    return o;
}

static int set_str(pst_kernel_ctx *c, pst_tensor *o, int64_t i, const char *p, size_t len) {
    if (pst_tstring_set(pst_tensor_str(o) + i, p, len) < 0)
        return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    return 0;
}

static int string_in(const pst_node *n, int i, pst_status *st) {
    if (pst_node_in_dtype(n, i) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "input %d must be a string tensor, not %s", i,
                              pst_dtype_name(pst_node_in_dtype(n, i)));
    return 0;
}

/* ---- StringToHashBucket{,Fast,Strong}(input) -> int64, same shape ------------------------- */
static int hash_shape(pst_node *n, pst_status *st) {
    if (string_in(n, 0, st) < 0) return st->code;
    const pst_attr *nb = pst_node_attr(n, "num_buckets");
    if (nb == NULL || nb->kind != PST_ATTR_INT || nb->v.i < 1)
        return pst_status_set(st, PST_E_INVALID, "num_buckets must be an int >= 1");
    if (strcmp(n->op->name, "StringToHashBucketStrong") == 0) {
        const pst_attr *k = pst_node_attr(n, "key");
        if (k == NULL || k->kind != PST_ATTR_LIST_INT || k->n != 2)
            return pst_status_set(st, PST_E_INVALID, "key must have 2 elements");
    }
    pst_node_set_output(n, 0, PST_INT64, pst_node_in_shape(n, 0));
    return 0;
}

static int hash_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    uint64_t nb = (uint64_t)pst_kctx_attr_i(c, "num_buckets", 1);
    const char *op = c->op->name;
    int kind = strcmp(op, "StringToHashBucketFast") == 0     ? 0
               : strcmp(op, "StringToHashBucketStrong") == 0 ? 1
                                                              : 2;
    uint64_t k0 = 0, k1 = 0;
    if (kind == 1) {
        const pst_attr *k = pst_kctx_attr(c, "key");
        if (k == NULL || k->kind != PST_ATTR_LIST_INT || k->n != 2)
            return pst_kctx_error(c, PST_E_INVALID, "key must have 2 elements");
        k0 = (uint64_t)k->list.i[0], k1 = (uint64_t)k->list.i[1];
    }
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_INT64, in->shape);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < in->n; i++) {
        const pst_tstring *s = sref(in, i);
        uint64_t h = kind == 0   ? pst_strhash_fingerprint64(s->p, s->len)
                     : kind == 1 ? pst_strhash_siphash24(k0, k1, s->p, s->len)
                                 : pst_strhash_tf64(s->p, s->len);
        pst_tensor_i64(o)[i] = (int64_t)(h % nb);
    }
    return 0;
}

/* ---- StringSplit / StringSplitV2(input [N], sep) -> indices [n,2], values [n], shape [2] --- */
static int split_shape(pst_node *n, pst_status *st) {
    if (string_in(n, 0, st) < 0 || string_in(n, 1, st) < 0) return st->code;
    pst_shape s = pst_node_in_shape(n, 0);
    if (s.rank >= 0 && s.rank != 1)
        return pst_status_set(st, PST_E_INVALID, "input must be a vector, got rank %d", s.rank);
    pst_node_set_output(n, 0, PST_INT64, pst_shape_2d(-1, 2));
    pst_node_set_output(n, 1, PST_STRING, pst_shape_1d(-1));
    pst_node_set_output(n, 2, PST_INT64, pst_shape_1d(2));
    return 0;
}

typedef struct piece {
    const char *p;
    size_t len;
} piece;

typedef struct pieces {
    piece *v;
    int64_t n, cap;
} pieces;

static int push(pieces *ps, const char *p, size_t len) {
    if (ps->n == ps->cap) {
        int64_t cap = ps->cap ? ps->cap * 2 : 16;
        piece *v = realloc(ps->v, (size_t)cap * sizeof *v);
        if (v == NULL) return -1;
        ps->v = v, ps->cap = cap;
    }
    ps->v[ps->n++] = (piece){p, len};
    return 0;
}

/* TF 1.x StringSplit: an empty delimiter splits into bytes; otherwise every byte of the
 * delimiter separates (empty tokens dropped with skip_empty). */
static int split_v1(pieces *ps, const pst_tstring *s, const pst_tstring *d, int skip_empty) {
    const char *p = s->len ? s->p : "";
    if (d->len == 0) {
        for (size_t i = 0; i < s->len; i++)
            if (push(ps, p + i, 1) < 0) return -1;
        return 0;
    }
    size_t start = 0;
    for (size_t i = 0; i <= s->len; i++) {
        if (i < s->len && memchr(d->p, (unsigned char)p[i], d->len) == NULL) continue;
        if ((!skip_empty || i > start) && push(ps, p + start, i - start) < 0) return -1;
        start = i + 1;
    }
    return 0;
}

static int is_space(char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r'); }

/* Python's str.split as TF's StringSplitV2 has it (after maxsplit splits on whitespace the
 * rest, leading whitespace removed, is one more token even when empty). */
static int split_v2(pieces *ps, const pst_tstring *s, const pst_tstring *sep, int64_t maxsplit) {
    const char *p = s->len ? s->p : "";
    size_t n = s->len, i = 0;
    if (maxsplit == 0) return push(ps, p, n);
    int64_t split = 0;
    if (sep->len == 0) {
        while (i < n && is_space(p[i])) i++;
        while (i < n) {
            size_t j = i;
            while (j < n && !is_space(p[j])) j++;
            if (push(ps, p + i, j - i) < 0) return -1;
            i = j;
            while (i < n && is_space(p[i])) i++;
            if (maxsplit > 0 && ++split == maxsplit) return push(ps, p + i, n - i);
        }
        return 0;
    }
    for (;;) {
        const char *hit = NULL;
        for (size_t j = i; j + sep->len <= n && hit == NULL; j++)
            if (memcmp(p + j, sep->p, sep->len) == 0) hit = p + j;
        if (hit == NULL) break;
        if (push(ps, p + i, (size_t)(hit - (p + i))) < 0) return -1;
        i = (size_t)(hit - p) + sep->len;
        if (maxsplit > 0 && ++split == maxsplit) break;
    }
    return push(ps, p + i, n - i);
}

static int split_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0], *sep = c->inputs[1];
    char b[96];
    if (in->shape.rank != 1)
        return pst_kctx_error(c, PST_E_INVALID, "input must be a vector, got shape %s",
                              pst_shape_str(&in->shape, b, sizeof b));
    if (sep->shape.rank != 0)
        return pst_kctx_error(c, PST_E_INVALID, "%s must be a scalar, got shape %s",
                              c->n_inputs > 1 && strstr(c->op->name, "V2") ? "sep" : "delimiter",
                              pst_shape_str(&sep->shape, b, sizeof b));
    int v2 = strcmp(c->op->name, "StringSplitV2") == 0;
    int skip = pst_kctx_attr_b(c, "skip_empty", 1);
    int64_t maxsplit = pst_kctx_attr_i(c, "maxsplit", -1);
    pieces ps = {0};
    int64_t *counts = calloc((size_t)in->n + 1, sizeof *counts), max = 0;
    int rc = counts ? 0 : -1;
    for (int64_t i = 0; i < in->n && rc == 0; i++) {
        int64_t before = ps.n;
        rc = v2 ? split_v2(&ps, sref(in, i), sref(sep, 0), maxsplit)
                : split_v1(&ps, sref(in, i), sref(sep, 0), skip);
        counts[i] = ps.n - before;
        if (counts[i] > max) max = counts[i];
    }
    if (rc < 0) {
        free(ps.v), free(counts);
        return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    }
    pst_tensor *ix = pst_kctx_alloc_output(c, 0, PST_INT64, pst_shape_2d(ps.n, 2));
    pst_tensor *vals = ix ? str_out(c, 1, pst_shape_1d(ps.n)) : NULL;
    pst_tensor *shape = vals ? pst_kctx_alloc_output(c, 2, PST_INT64, pst_shape_1d(2)) : NULL;
    if (shape) {
        pst_tensor_i64(shape)[0] = in->n;
        pst_tensor_i64(shape)[1] = max;
        int64_t k = 0;
        for (int64_t i = 0; i < in->n && rc == 0; i++)
            for (int64_t j = 0; j < counts[i] && rc == 0; j++, k++) {
                pst_tensor_i64(ix)[2 * k] = i;
                pst_tensor_i64(ix)[2 * k + 1] = j;
                rc = set_str(c, vals, k, ps.v[k].p, ps.v[k].len);
            }
    } else {
        rc = c->status->code;
    }
    free(ps.v), free(counts);
    return rc;
}

/* ---- StringLength(input) -> int32 (BYTE or UTF8_CHAR units) ---------------------------- */
static int unit_utf8(pst_kernel_ctx *c, int *utf8) {
    const char *u = pst_kctx_attr_s(c, "unit", "BYTE");
    *utf8 = strcmp(u, "UTF8_CHAR") == 0;
    if (!*utf8 && strcmp(u, "BYTE") != 0)
        return pst_kctx_error(c, PST_E_INVALID, "unit must be BYTE or UTF8_CHAR, not '%s'", u);
    return 0;
}

static int64_t utf8_chars(const char *p, size_t len) {
    int64_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)p[i] & 0xC0) != 0x80;
    return n;
}

static int same_shape_out(pst_node *n, pst_dtype dt, pst_status *st) {
    if (string_in(n, 0, st) < 0) return st->code;
    pst_node_set_output(n, 0, dt, pst_node_in_shape(n, 0));
    return 0;
}

static int length_shape(pst_node *n, pst_status *st) { return same_shape_out(n, PST_INT32, st); }
static int str_same_shape(pst_node *n, pst_status *st) {
    return same_shape_out(n, PST_STRING, st);
}

static int length_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    int utf8;
    if (unit_utf8(c, &utf8) < 0) return c->status->code;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_INT32, in->shape);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < in->n; i++) {
        const pst_tstring *s = sref(in, i);
        pst_tensor_i32(o)[i] = (int32_t)(utf8 ? utf8_chars(s->p, s->len) : (int64_t)s->len);
    }
    return 0;
}

/* ---- Substr(input, pos, len) with broadcasting ----------------------------------------- */
static int substr_shape(pst_node *n, pst_status *st) {
    if (string_in(n, 0, st) < 0) return st->code;
    pst_dtype t = pst_node_in_dtype(n, 1);
    if ((t != PST_INT32 && t != PST_INT64) || pst_node_in_dtype(n, 2) != t)
        return pst_status_set(st, PST_E_INVALID, "pos and len must both be int32 or int64");
    pst_shape ps = pst_node_in_shape(n, 1), ls = pst_node_in_shape(n, 2),
              is = pst_node_in_shape(n, 0), o;
    if (ps.rank >= 0 && ls.rank >= 0 && !pst_shape_compatible(&ps, &ls))
        return pst_status_set(st, PST_E_INVALID, "pos and len should have the same shape");
    if (pst_shape_broadcast(&is, &ps, &o, st) < 0) return st->code;
    pst_node_set_output(n, 0, PST_STRING, o);
    return 0;
}

/* Byte offset of character k (0 <= k <= chars) of a UTF-8 string. */
static size_t utf8_offset(const char *p, size_t len, int64_t k) {
    size_t i = 0;
    for (; i < len; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80 && k-- == 0) return i;
    return len;
}

/* Index into a tensor of shape s broadcast to shape o, for flat output index i. */
static int64_t bcast_index(const pst_shape *s, const pst_shape *o, int64_t i) {
    int64_t idx = 0, stride = 1;
    for (int d = o->rank - 1, e = s->rank - 1; d >= 0; d--, e--) {
        int64_t coord = i % o->dims[d];
        i /= o->dims[d];
        if (e >= 0) {
            if (s->dims[e] != 1) idx += coord * stride;
            stride *= s->dims[e];
        }
    }
    return idx;
}

static int substr_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0], *pos = c->inputs[1], *len = c->inputs[2];
    char b1[96], b2[96];
    int utf8;
    if (unit_utf8(c, &utf8) < 0) return c->status->code;
    if (!pst_shape_equal(&pos->shape, &len->shape))
        return pst_kctx_error(c, PST_E_INVALID, "pos and len should have the same shape, got "
                              "%s vs %s", pst_shape_str(&pos->shape, b1, sizeof b1),
                              pst_shape_str(&len->shape, b2, sizeof b2));
    pst_shape os;
    if (pst_shape_broadcast(&in->shape, &pos->shape, &os, c->status) < 0) return c->status->code;
    pst_tensor *o = str_out(c, 0, os);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < o->n; i++) {
        const pst_tstring *s = sref(in, bcast_index(&in->shape, &os, i));
        int64_t k = bcast_index(&pos->shape, &os, i);
        int64_t p = pst_tensor_get_i64(pos, k), l = pst_tensor_get_i64(len, k);
        const char *sp = s->len ? s->p : "";
        int64_t total = utf8 ? utf8_chars(sp, s->len) : (int64_t)s->len;
        if (p > total || p < -total)
            return pst_kctx_error(c, PST_E_INVALID, "pos %" PRId64 " out of range for string "
                                  "b'%.*s' at index %" PRId64, p, (int)(s->len > 64 ? 64 : s->len),
                                  sp, i);
        if (utf8 && l < 0) { /* TF's UTF-8 path: an empty string, or an error past the start */
            if (p < 0 && -p - l > total)
                return pst_kctx_error(c, PST_E_INVALID, "pos %" PRId64 " out of range for string "
                                      "at index %" PRId64, p, i);
            l = 0;
        }
        if (p < 0) p += total;
        if (l < 0 || l > total - p) l = total - p; /* TF clamps (bytes: a negative len is huge) */
        size_t from = utf8 ? utf8_offset(sp, s->len, p) : (size_t)p;
        size_t to = utf8 ? utf8_offset(sp, s->len, p + l) : (size_t)(p + l);
        if (set_str(c, o, i, sp + from, to - from) < 0) return c->status->code;
    }
    return 0;
}

/* ---- StringStrip, StringLower, StringUpper --------------------------------------------- */
static int strip_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    pst_tensor *o = str_out(c, 0, in->shape);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < in->n; i++) {
        const pst_tstring *s = sref(in, i);
        size_t a = 0, z = s->len;
        while (a < z && is_space(s->p[a])) a++;
        while (z > a && is_space(s->p[z - 1])) z--;
        if (set_str(c, o, i, s->len ? s->p + a : "", z - a) < 0) return c->status->code;
    }
    return 0;
}

static int case_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    int upper = strcmp(c->op->name, "StringUpper") == 0;
    const char *enc = pst_kctx_attr_s(c, "encoding", "");
    int utf8 = strcmp(enc, "utf-8") == 0 || strcmp(enc, "UTF-8") == 0;
    if (enc[0] && !utf8)
        return pst_kctx_error(c, PST_E_INVALID, "encoding must be \"\" or \"utf-8\", not '%s'",
                              enc);
    pst_tensor *o = str_out(c, 0, in->shape);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < in->n; i++) {
        const pst_tstring *s = sref(in, i);
        if (set_str(c, o, i, s->len ? s->p : "", s->len) < 0) return c->status->code;
        char *p = pst_tensor_str(o)[i].p;
        for (size_t k = 0; k < s->len; k++) {
            unsigned char ch = (unsigned char)p[k];
            if (utf8 && ch >= 0x80)
                return pst_kctx_error(c, PST_E_UNIMPLEMENTED, "element %" PRId64 " has non-ASCII "
                                      "characters: pstrain changes the case of ASCII letters "
                                      "only (encoding utf-8)", i);
            if (ch < 0x80) p[k] = (char)(upper ? toupper(ch) : tolower(ch));
        }
    }
    return 0;
}

/* ---- AsString(input) ------------------------------------------------------------------- */
static int as_string_format(pst_kernel_ctx *c, pst_dtype dt, char *fmt, size_t cap) {
    int64_t precision = pst_kctx_attr_i(c, "precision", -1),
            width = pst_kctx_attr_i(c, "width", -1);
    int sci = pst_kctx_attr_b(c, "scientific", 0), shortest = pst_kctx_attr_b(c, "shortest", 0);
    const char *fill = pst_kctx_attr_s(c, "fill", "");
    int fl = pst_dtype_is_float(dt);
    if (!fl && (sci || shortest))
        return pst_kctx_error(c, PST_E_INVALID, "scientific and shortest format not supported "
                              "for datatype %s", pst_dtype_name(dt));
    if (!fl && precision >= 0)
        return pst_kctx_error(c, PST_E_INVALID, "precision not supported for datatype %s",
                              pst_dtype_name(dt));
    if (strlen(fill) > 1)
        return pst_kctx_error(c, PST_E_INVALID, "Fill string must be one or fewer characters");
    if (sci && shortest)
        return pst_kctx_error(c, PST_E_INVALID, "Cannot select both scientific and shortest "
                              "notation");
    if (fill[0] && !strchr(" +-0#", fill[0]))
        return pst_kctx_error(c, PST_E_INVALID, "Fill argument not supported: \"%s\"", fill);
    int n = snprintf(fmt, cap, "%%%s", fill);
    if (width > -1) n += snprintf(fmt + n, cap - (size_t)n, "%" PRId64, width);
    if (precision > -1) n += snprintf(fmt + n, cap - (size_t)n, ".%" PRId64, precision);
    snprintf(fmt + n, cap - (size_t)n, "%s", fl ? (shortest ? "g" : sci ? "e" : "f") : PRId64);
    return 0;
}

static int as_string_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (!pst_dtype_is_float(dt) && !pst_dtype_is_int(dt) && dt != PST_BOOL)
        return pst_status_set(st, PST_E_INVALID, "Type not supported: %s", pst_dtype_name(dt));
    pst_node_set_output(n, 0, PST_STRING, pst_node_in_shape(n, 0));
    return 0;
}

static int as_string_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    char fmt[64], buf[512];
    if (in->dtype != PST_BOOL && as_string_format(c, in->dtype, fmt, sizeof fmt) < 0)
        return c->status->code;
    pst_tensor *o = str_out(c, 0, in->shape);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < in->n; i++) {
        int len;
        if (in->dtype == PST_BOOL)
            len = snprintf(buf, sizeof buf, "%s", pst_tensor_u8(in)[i] ? "true" : "false");
        else if (pst_dtype_is_float(in->dtype))
            len = snprintf(buf, sizeof buf, fmt, pst_tensor_get_f64(in, i));
        else
            len = snprintf(buf, sizeof buf, fmt, pst_tensor_get_i64(in, i));
        if (len < 0 || (size_t)len >= sizeof buf)
            return pst_kctx_error(c, PST_E_INVALID, "element %" PRId64 " formats to more than "
                                  "%zu bytes (width or precision too large)", i, sizeof buf - 1);
        if (set_str(c, o, i, buf, (size_t)len) < 0) return c->status->code;
    }
    return 0;
}

/* ---- ReduceJoin(inputs, reduction_indices) --------------------------------------------- */
/* Marks the reduced dims (order kept in order[]); error names the bad index. */
static int reduced_dims(const pst_tensor *ix, int rank, int *is_red, int *order, int *n_red,
                        pst_status *st) {
    memset(is_red, 0, (size_t)PST_MAX_RANK * sizeof *is_red);
    *n_red = 0;
    for (int64_t i = 0; i < ix->n; i++) {
        int64_t d = pst_tensor_get_i64(ix, i), td = d < 0 ? d + rank : d;
        if (d < -rank || d >= rank)
            return pst_status_set(st, PST_E_OUT_OF_RANGE, "Invalid reduction dimension %" PRId64
                                  " for input with %d dimension(s)", d, rank);
        if (is_red[td])
            return pst_status_set(st, PST_E_INVALID, "Duplicate reduction dimension %" PRId64, d);
        is_red[td] = 1;
        order[(*n_red)++] = (int)td;
    }
    return 0;
}

static int reduce_join_shape(pst_node *n, pst_status *st) {
    if (string_in(n, 0, st) < 0) return st->code;
    pst_shape s = pst_node_in_shape(n, 0);
    const pst_tensor *ix = pst_node_in_const(n, 1);
    if (s.rank < 0 || ix == NULL) {
        pst_node_set_output(n, 0, PST_STRING, pst_shape_unknown());
        return 0;
    }
    int is_red[PST_MAX_RANK], order[PST_MAX_RANK], nr;
    if (reduced_dims(ix, s.rank, is_red, order, &nr, st) < 0) return st->code;
    int keep = pst_node_attr_b(n, "keep_dims", 0);
    pst_shape o = {0};
    for (int d = 0; d < s.rank; d++)
        if (!is_red[d]) o.dims[o.rank++] = s.dims[d];
        else if (keep) o.dims[o.rank++] = 1;
    pst_node_set_output(n, 0, PST_STRING, o);
    return 0;
}

static int reduce_join_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    int rank = in->shape.rank, is_red[PST_MAX_RANK], order[PST_MAX_RANK], nr;
    if (reduced_dims(c->inputs[1], rank, is_red, order, &nr, c->status) < 0)
        return pst_kctx_error(c, c->status->code, "%s", c->status->msg);
    const char *sep = pst_kctx_attr_s(c, "separator", "");
    size_t seplen = strlen(sep);
    int keep = pst_kctx_attr_b(c, "keep_dims", 0);
    int64_t stride[PST_MAX_RANK];
    int64_t acc = 1;
    for (int d = rank - 1; d >= 0; d--) {
        stride[d] = acc;
        acc *= in->shape.dims[d];
    }
    pst_shape os = {0}, kept = {0};
    int kept_dim[PST_MAX_RANK];
    for (int d = 0; d < rank; d++) {
        if (!is_red[d]) {
            kept_dim[kept.rank] = d;
            kept.dims[kept.rank++] = in->shape.dims[d];
        }
        if (!is_red[d] || keep) os.dims[os.rank++] = is_red[d] ? 1 : in->shape.dims[d];
    }
    int64_t group = 1; /* strings joined per output element */
    for (int k = 0; k < nr; k++) group *= in->shape.dims[order[k]];
    pst_tensor *o = str_out(c, 0, os);
    if (o == NULL) return c->status->code;
    for (int64_t e = 0; e < o->n; e++) {
        int64_t base = 0, rem = e;
        for (int k = kept.rank - 1; k >= 0; k--) {
            base += (rem % kept.dims[k]) * stride[kept_dim[k]];
            rem /= kept.dims[k];
        }
        /* The first listed reduction dim varies fastest (TF: [0, 1] on [[a,b],[c,d]] is
         * "acbd"). */
        size_t total = 0;
        for (int pass = 0; pass < 2; pass++) {
            char *buf = NULL;
            if (pass == 1 && (buf = malloc(total + 1)) == NULL)
                return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
            size_t at = 0;
            for (int64_t g = 0; g < group; g++) {
                int64_t off = base, r = g;
                for (int k = 0; k < nr; k++) {
                    off += (r % in->shape.dims[order[k]]) * stride[order[k]];
                    r /= in->shape.dims[order[k]];
                }
                const pst_tstring *s = sref(in, off);
                if (pass == 0) {
                    total += s->len + (g ? seplen : 0);
                    continue;
                }
                if (g) memcpy(buf + at, sep, seplen), at += seplen;
                if (s->len) memcpy(buf + at, s->p, s->len), at += s->len;
            }
            if (pass == 1) {
                int rc = set_str(c, o, e, buf, at);
                free(buf);
                if (rc < 0) return rc;
            }
        }
    }
    return 0;
}

/* ---- EncodeBase64 / DecodeBase64 (web-safe alphabet) ----------------------------------- */
static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int encode_b64_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    int pad = pst_kctx_attr_b(c, "pad", 0);
    pst_tensor *o = str_out(c, 0, in->shape);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < in->n; i++) {
        const pst_tstring *s = sref(in, i);
        const unsigned char *p = (const unsigned char *)s->p;
        char *buf = malloc(s->len / 3 * 4 + 5);
        if (buf == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
        size_t n = 0, k = 0;
        for (; k + 3 <= s->len; k += 3) {
            uint32_t v = (uint32_t)p[k] << 16 | (uint32_t)p[k + 1] << 8 | p[k + 2];
            for (int j = 3; j >= 0; j--) buf[n++] = B64[(v >> (6 * j)) & 63];
        }
        size_t left = s->len - k;
        if (left) {
            uint32_t v = (uint32_t)p[k] << 16 | (left == 2 ? (uint32_t)p[k + 1] << 8 : 0);
            buf[n++] = B64[(v >> 18) & 63];
            buf[n++] = B64[(v >> 12) & 63];
            if (left == 2) buf[n++] = B64[(v >> 6) & 63];
            if (pad)
                for (size_t j = left; j < 3; j++) buf[n++] = '=';
        }
        int rc = set_str(c, o, i, buf, n);
        free(buf);
        if (rc < 0) return rc;
    }
    return 0;
}

static int b64_value(unsigned char ch) {
    const char *at = ch ? strchr(B64, ch) : NULL;
    return at ? (int)(at - B64) : -1;
}

static int decode_b64_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    pst_tensor *o = str_out(c, 0, in->shape);
    if (o == NULL) return c->status->code;
    for (int64_t i = 0; i < in->n; i++) {
        const pst_tstring *s = sref(in, i);
        size_t len = s->len;
        /* Padding: up to two trailing '=' when the length is a multiple of 4. */
        if (len % 4 == 0)
            for (int k = 0; k < 2 && len > 0 && s->p[len - 1] == '='; k++) len--;
        if (len % 4 == 1)
            return pst_kctx_error(c, PST_E_INVALID, "element %" PRId64 ": invalid base64 "
                                  "length %zu", i, s->len);
        unsigned char *buf = malloc(len / 4 * 3 + 3);
        if (buf == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
        size_t n = 0;
        uint32_t acc = 0;
        int bits = 0;
        for (size_t k = 0; k < len; k++) {
            int v = b64_value((unsigned char)s->p[k]);
            if (v < 0) {
                free(buf);
                return pst_kctx_error(c, PST_E_INVALID, "element %" PRId64 ": invalid character "
                                      "0x%02x at byte %zu in web-safe base64", i,
                                      (unsigned char)s->p[k], k);
            }
            acc = acc << 6 | (uint32_t)v;
            if ((bits += 6) >= 8) {
                bits -= 8;
                buf[n++] = (unsigned char)(acc >> bits);
            }
        }
        int rc = set_str(c, o, i, (const char *)buf, n);
        free(buf);
        if (rc < 0) return rc;
    }
    return 0;
}

/* ---- RegexFullMatch(input, pattern) -> bool -------------------------------------------- */
/* Translates an RE2 pattern into an anchored POSIX ERE: \d \D \w \W \s \S become bracket
 * expressions, escapes of punctuation stay; syntax POSIX lacks or reads differently
 * ((?...) groups and flags, lazy quantifiers, \b, \A, \z, \p{..}, \x.., \Q..\E) is refused. */
static int re2_to_posix(const char *re, char *out, size_t cap, pst_status *st) {
    size_t n = 0;
#define PUT(s)                                                                                   \
    do {                                                                                         \
        size_t l_ = strlen(s);                                                                   \
        if (n + l_ + 3 >= cap) return pst_status_set(st, PST_E_INVALID, "pattern too long");    \
        memcpy(out + n, s, l_), n += l_;                                                         \
    } while (0)
    PUT("^(");
    int in_class = 0;
    for (const char *p = re; *p; p++) {
        char one[3] = {*p, 0, 0};
        if (*p == '\\') {
            char e = p[1];
            const char *cls = e == 'd'   ? "0-9"
                              : e == 'w' ? "A-Za-z0-9_"
                              : e == 's' ? "[:space:]"
                                         : NULL;
            const char *ncls = e == 'D'   ? "[^0-9]"
                               : e == 'W' ? "[^A-Za-z0-9_]"
                               : e == 'S' ? "[^[:space:]]"
                                          : NULL;
            if (cls) {
                if (!in_class) PUT("[");
                PUT(cls);
                if (!in_class) PUT("]");
            } else if (ncls && !in_class) {
                PUT(ncls);
            } else if (e && strchr(".^$*+?()[]{}|\\/-", e)) {
                one[0] = '\\', one[1] = e;
                if (in_class) one[0] = e, one[1] = 0; /* inside [] a char stands for itself */
                PUT(one);
            } else if (e == 'n' || e == 't') {
                one[0] = e == 'n' ? '\n' : '\t';
                PUT(one);
            } else {
                return pst_status_set(st, PST_E_UNIMPLEMENTED,
                                      "the escape \\%c of RE2 pattern "
                                      "'%s' has no POSIX equivalent pstrain translates",
                                      e ? e : ' ', re);
            }
            p++;
            continue;
        }
        if (!in_class && *p == '(' && p[1] == '?')
            return pst_status_set(st, PST_E_UNIMPLEMENTED, "RE2 group syntax '(?' in pattern "
                                  "'%s' is not supported (pstrain uses POSIX regexes)", re);
        if (!in_class && strchr("*+?}", *p) && p[1] == '?')
            return pst_status_set(st, PST_E_UNIMPLEMENTED, "the lazy quantifier '%c?' in pattern "
                                  "'%s' is not supported (pstrain uses POSIX regexes)", *p, re);
        if (*p == '[' && !in_class) {
            in_class = 1;
            PUT("[");
            if (p[1] == '^') {
                PUT("^");
                p++;
            }
            if (p[1] == ']') {
                PUT("]");
                p++;
            }
            continue;
        }
        if (*p == ']' && in_class) in_class = 0;
        PUT(one);
    }
    PUT(")$");
    out[n] = 0;
    return 0;
#undef PUT
}

static int regex_compile(const char *re, regex_t *rx, pst_status *st) {
    char buf[4096];
    if (re2_to_posix(re, buf, sizeof buf, st) < 0) return st->code;
    int rc = regcomp(rx, buf, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char err[128];
        regerror(rc, rx, err, sizeof err);
        return pst_status_set(st, PST_E_INVALID, "invalid pattern '%s': %s", re, err);
    }
    return 0;
}

static int full_match_shape(pst_node *n, pst_status *st) {
    if (string_in(n, 0, st) < 0 || string_in(n, 1, st) < 0) return st->code;
    pst_node_set_output(n, 0, PST_BOOL, pst_node_in_shape(n, 0));
    return 0;
}

/* StaticRegexFullMatch(input) with attr pattern (the sharded saver's "^s3://.*" test): the
 * pattern is checked when the graph is built. */
static int static_match_shape(pst_node *n, pst_status *st) {
    regex_t rx;
    if (string_in(n, 0, st) < 0 ||
        regex_compile(pst_node_attr_s(n, "pattern", ""), &rx, st) < 0)
        return st->code;
    regfree(&rx);
    pst_node_set_output(n, 0, PST_BOOL, pst_node_in_shape(n, 0));
    return 0;
}

static int full_match_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    const char *pattern;
    if (c->n_inputs == 1) {
        pattern = pst_kctx_attr_s(c, "pattern", "");
    } else {
        const pst_tensor *pat = c->inputs[1];
        if (pat->n != 1) return pst_kctx_error(c, PST_E_INVALID, "pattern must be a scalar");
        const pst_tstring *ps = sref(pat, 0);
        if (ps->len && memchr(ps->p, 0, ps->len))
            return pst_kctx_error(c, PST_E_INVALID, "pattern holds a NUL byte");
        pattern = ps->len ? ps->p : "";
    }
    regex_t rx;
    if (regex_compile(pattern, &rx, c->status) < 0)
        return pst_kctx_error(c, c->status->code, "%s", c->status->msg);
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_BOOL, in->shape);
    int rc = o ? 0 : c->status->code;
    for (int64_t i = 0; i < in->n && rc == 0; i++) {
        const pst_tstring *s = sref(in, i);
        /* Strings may hold NUL bytes: such a string cannot match a NUL-free pattern fully. */
        pst_tensor_u8(o)[i] = (s->len == 0 || memchr(s->p, 0, s->len) == NULL) &&
                              regexec(&rx, s->len ? s->p : "", 0, NULL, 0) == 0;
    }
    regfree(&rx);
    return rc;
}

/* ---- Fingerprint(data, method) -> uint8 [dim0, 8] ---------------------------------------------
 */
/* FarmHash Fingerprint64 of each row of data (its bytes, little-endian), written as 8
 * little-endian bytes. A row of several strings hashes the concatenation of their own 8-byte
 * fingerprints; a row of one string hashes the string. */
static int fingerprint_shape(pst_node *n, pst_status *st) {
    pst_shape s = pst_node_in_shape(n, 0);
    if (s.rank == 0)
        return pst_status_set(st, PST_E_INVALID, "data should have at least one dimension");
    if (string_in(n, 1, st) < 0) return st->code;
    pst_node_set_output(n, 0, PST_UINT8, pst_shape_2d(s.rank > 0 ? s.dims[0] : -1, 8));
    return 0;
}

static void put_le64(uint8_t *o, uint64_t v) {
    for (int j = 0; j < 8; j++) o[j] = (uint8_t)(v >> (8 * j));
}

static int fingerprint_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *m = c->inputs[1];
    char b[96];
    if (m->dtype != PST_STRING || m->shape.rank != 0)
        return pst_kctx_error(c, PST_E_INVALID, "method should be a scalar string");
    if (strcmp(sref(m, 0)->len ? sref(m, 0)->p : "", "farmhash64") != 0)
        return pst_kctx_error(c, PST_E_INVALID, "Unsupported fingerprint method: %s",
                              sref(m, 0)->len ? sref(m, 0)->p : "");
    if (x->shape.rank < 1)
        return pst_kctx_error(c, PST_E_INVALID, "data should have at least one dimension, got "
                              "shape %s", pst_shape_str(&x->shape, b, sizeof b));
    int64_t d0 = x->shape.dims[0], d1 = d0 ? x->n / d0 : 0;
    pst_tensor *o = pst_kctx_alloc_output(c, 0, PST_UINT8, pst_shape_2d(d0, 8));
    if (o == NULL) return c->status->code;
    uint8_t *out = pst_tensor_u8(o);
    if (x->dtype != PST_STRING) {
        size_t row = (size_t)d1 * pst_dtype_size(x->dtype);
        for (int64_t i = 0; i < d0; i++)
            put_le64(out + 8 * i,
                     pst_strhash_fingerprint64((const uint8_t *)x->data + i * row, row));
        return 0;
    }
    uint8_t *tmp = malloc((size_t)d1 * 8 + 1);
    if (tmp == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    for (int64_t i = 0; i < d0; i++) {
        if (d1 == 1) {
            const pst_tstring *s = sref(x, i);
            put_le64(out + 8 * i, pst_strhash_fingerprint64(s->p, s->len));
            continue;
        }
        for (int64_t j = 0; j < d1; j++) {
            const pst_tstring *s = sref(x, i * d1 + j);
            put_le64(tmp + 8 * j, pst_strhash_fingerprint64(s->p, s->len));
        }
        put_le64(out + 8 * i, pst_strhash_fingerprint64(tmp, (size_t)d1 * 8));
    }
    free(tmp);
    return 0;
}

/* ---- DecodePaddedRaw(input_bytes, fixed_length) -> out_type [..., fixed_length / size] ------ */
static int padded_raw_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "out_type", PST_DT_INVALID);
    if (!pst_dtype_is_float(dt) && !pst_dtype_is_int(dt))
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "out_type %s is not supported",
                              pst_dtype_name(dt));
    if (string_in(n, 0, st) < 0) return st->code;
    pst_shape s = pst_node_in_shape(n, 0);
    const pst_tensor *k = pst_node_in_const(n, 1);
    if (s.rank >= 0 && s.rank < PST_MAX_RANK)
        s.dims[s.rank++] =
            k && k->n == 1 ? pst_tensor_get_i64(k, 0) / (int64_t)pst_dtype_size(dt) : -1;
    else
        s = pst_shape_unknown();
    pst_node_set_output(n, 0, dt, s);
    return 0;
}

static int padded_raw_kernel(pst_kernel_ctx *c) {
    const pst_tensor *x = c->inputs[0], *k = c->inputs[1];
    pst_dtype dt = c->out_dtypes[0];
    int64_t sz = (int64_t)pst_dtype_size(dt);
    if (k->shape.rank != 0)
        return pst_kctx_error(c, PST_E_INVALID, "fixed_length must be a scalar");
    int64_t fixed = pst_tensor_get_i64(k, 0);
    if (fixed % sz != 0)
        return pst_kctx_error(c, PST_E_INVALID, "fixed_length (%" PRId64 ") must be a multiple "
                              "of the size of out_type (%" PRId64 ")", fixed, sz);
    if (fixed <= 0)
        return pst_kctx_error(c, PST_E_INVALID, "fixed_length (%" PRId64 ") must be greater "
                              "than zero.", fixed);
    if (x->shape.rank + 1 > PST_MAX_RANK)
        return pst_kctx_error(c, PST_E_INVALID, "input rank too large");
    pst_shape os = x->shape;
    os.dims[os.rank++] = fixed / sz;
    pst_tensor *o = pst_tensor_new_zeros(dt, os, c->status);
    if (o == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, o);
    int big = !pst_kctx_attr_b(c, "little_endian", 1);
    uint8_t *d = o->data;
    for (int64_t i = 0; i < x->n; i++) {
        const pst_tstring *s = sref(x, i);
        size_t len = s->len < (size_t)fixed ? s->len : (size_t)fixed;
        uint8_t *row = d + (size_t)i * (size_t)fixed;
        if (len) memcpy(row, s->p, len);
        if (big && sz > 1)
            for (int64_t e = 0; e < fixed; e += sz)
                for (int64_t a = 0, z = sz - 1; a < z; a++, z--) {
                    uint8_t t = row[e + a];
                    row[e + a] = row[e + z];
                    row[e + z] = t;
                }
    }
    return 0;
}

/* ---- Registration ---------------------------------------------------------------------- */
static const pst_attr_spec hash_attrs[] = {{"num_buckets", PST_ATTR_INT, 1},
                                           {"key", PST_ATTR_LIST_INT, 0}, {0}};
static const pst_attr_spec split_attrs[] = {{"skip_empty", PST_ATTR_BOOL, 0},
                                            {"maxsplit", PST_ATTR_INT, 0}, {0}};
static const pst_attr_spec unit_attrs[] = {{"unit", PST_ATTR_STRING, 0}, {"T", PST_ATTR_TYPE, 0},
                                           {0}};
static const pst_attr_spec case_attrs[] = {{"encoding", PST_ATTR_STRING, 0}, {0}};
static const pst_attr_spec as_string_attrs[] = {{"T", PST_ATTR_TYPE, 0},
                                                {"precision", PST_ATTR_INT, 0},
                                                {"scientific", PST_ATTR_BOOL, 0},
                                                {"shortest", PST_ATTR_BOOL, 0},
                                                {"width", PST_ATTR_INT, 0},
                                                {"fill", PST_ATTR_STRING, 0},
                                                {0}};
static const pst_attr_spec join_attrs[] = {{"keep_dims", PST_ATTR_BOOL, 0},
                                           {"separator", PST_ATTR_STRING, 0}, {0}};
static const pst_attr_spec b64_attrs[] = {{"pad", PST_ATTR_BOOL, 0}, {0}};
static const pst_attr_spec pattern_attrs[] = {{"pattern", PST_ATTR_STRING, 1}, {0}};
static const pst_attr_spec fp_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec padded_attrs[] = {{"out_type", PST_ATTR_TYPE, 1},
                                             {"little_endian", PST_ATTR_BOOL, 0}, {0}};

#define SF (PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE)
#define UNARY(nm, shp, k, at) {.name = nm, .min_inputs = 1, .max_inputs = 1, .n_outputs = 1, \
                               .attrs = at, .shape = shp, .kernel = k, .flags = SF}
static const pst_op_def string_tf_ops[] = {
    UNARY("StringToHashBucketFast", hash_shape, hash_kernel, hash_attrs),
    UNARY("StringToHashBucketStrong", hash_shape, hash_kernel, hash_attrs),
    UNARY("StringToHashBucket", hash_shape, hash_kernel, hash_attrs),
    {.name = "StringSplit", .min_inputs = 2, .max_inputs = 2, .n_outputs = 3,
     .attrs = split_attrs, .shape = split_shape, .kernel = split_kernel, .flags = SF},
    {.name = "StringSplitV2", .min_inputs = 2, .max_inputs = 2, .n_outputs = 3,
     .attrs = split_attrs, .shape = split_shape, .kernel = split_kernel, .flags = SF},
    UNARY("StringLength", length_shape, length_kernel, unit_attrs),
    {.name = "Substr", .min_inputs = 3, .max_inputs = 3, .n_outputs = 1, .attrs = unit_attrs,
     .shape = substr_shape, .kernel = substr_kernel, .flags = SF},
    UNARY("StringStrip", str_same_shape, strip_kernel, NULL),
    UNARY("StringLower", str_same_shape, case_kernel, case_attrs),
    UNARY("StringUpper", str_same_shape, case_kernel, case_attrs),
    UNARY("AsString", as_string_shape, as_string_kernel, as_string_attrs),
    {.name = "ReduceJoin", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = join_attrs, .shape = reduce_join_shape, .kernel = reduce_join_kernel, .flags = SF},
    UNARY("EncodeBase64", str_same_shape, encode_b64_kernel, b64_attrs),
    UNARY("DecodeBase64", str_same_shape, decode_b64_kernel, NULL),
    {.name = "Fingerprint", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1, .attrs = fp_attrs,
     .shape = fingerprint_shape, .kernel = fingerprint_kernel, .flags = SF},
    {.name = "DecodePaddedRaw", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = padded_attrs, .shape = padded_raw_shape, .kernel = padded_raw_kernel, .flags = SF},
    UNARY("StaticRegexFullMatch", static_match_shape, full_match_kernel, pattern_attrs),
    {.name = "RegexFullMatch", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .shape = full_match_shape, .kernel = full_match_kernel, .flags = SF},
};

void pst__register_string_tf_ops(void) {
    for (size_t i = 0; i < sizeof string_tf_ops / sizeof string_tf_ops[0]; i++)
        pst_op_register(&string_tf_ops[i]);
}
