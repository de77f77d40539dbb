/* io_ops: TFRecord readers, Example parsing and image summaries as graph ops (see io_ops.h). */
#include "io_ops.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "example.h"
#include "op.h"
#include "ops.h"
#include "ops_queue.h"
#include "pbwire.h"
#include "tfrecord.h"
#include "varstore.h"

/* ---- TFRecordReaderV2 and ReaderReadV2 ------------------------------------------------- */

typedef struct reader {
    char *name;
    pst_tfrecord_compression compression;
    pthread_mutex_t mu;       /* one read at a time, as TF's ReaderBase */
    pst_tfrecord_reader *cur; /* the file being read, NULL between files */
    int64_t produced;
} reader;

static void reader_free(void *p) {
    reader *r = p;
    if (r == NULL) return;
    pst_tfrecord_reader_free(r->cur);
    pthread_mutex_destroy(&r->mu);
    free(r->name), free(r);
}

typedef struct make_ctx {
    const char *name;
    pst_tfrecord_compression compression;
} make_ctx;

static void *reader_make(void *p, pst_status *st) {
    make_ctx *m = p;
    reader *r = calloc(1, sizeof *r);
    if (r == NULL || (r->name = strdup(m->name)) == NULL) {
        free(r);
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        return NULL;
    }
    r->compression = m->compression;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static int tfrecord_reader_kernel(pst_kernel_ctx *c) {
    const char *shared = pst_kctx_attr_s(c, "shared_name", "");
    make_ctx m = {shared[0] ? shared : c->node_name, PST_TFRECORD_NONE};
    if (pst_tfrecord_compression_parse(pst_kctx_attr_s(c, "compression_type", ""),
                                       &m.compression, c->status) < 0)
        return c->status->code;
    char key[1200];
    snprintf(key, sizeof key, "reader:%s", m.name);
    reader *r = pst_var_store_resource(c->vars, key, reader_make, &m, reader_free, c->status);
    if (r == NULL) return c->status->code;
    pst_tensor *h = pst_ops_resource_handle(r);
    if (h == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    pst_kctx_set_output(c, 0, h);
    return 0;
}

static int reader_read_kernel(pst_kernel_ctx *c) {
    const pst_tensor *h = c->inputs[0];
    if (h->dtype != PST_RESOURCE || h->n != 1 || *(void **)h->data == NULL)
        return pst_kctx_error(c, PST_E_INVALID, "input 0 is not a reader handle");
    reader *r = *(reader **)h->data;
    pst_queue *q = pst_queue_from_handle(c->inputs[1], c->status);
    if (q == NULL) return pst_kctx_error(c, PST_E_INVALID, "input 1 is not a queue handle");
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    for (;;) {
        if (r->cur == NULL) {
            pst_tensor *fname = NULL;
            if ((rc = pst_queue_dequeue_one(q, &fname, c->status)) < 0) break;
            if (fname->dtype != PST_STRING || fname->n != 1) {
                pst_tensor_unref(fname);
                rc = pst_kctx_error(c, PST_E_INVALID, "queue '%s' holds no file names (a "
                                    "scalar string per element)", pst_queue_name(q));
                break;
            }
            const pst_tstring *s = pst_tensor_str(fname);
            char *path = strndup(s->p ? s->p : "", s->len);
            pst_tensor_unref(fname);
            if (path == NULL) {
                rc = pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
                break;
            }
            pst_tfrecord_reader_opts o = {.compression = r->compression};
            r->cur = pst_tfrecord_reader_open(path, &o, c->status);
            free(path);
            if (r->cur == NULL) {
                rc = c->status->code;
                break;
            }
        }
        const uint8_t *rec;
        size_t len;
        int got = pst_tfrecord_reader_next(r->cur, &rec, &len, c->status);
        if (got < 0) {
            rc = got;
            pst_tfrecord_reader_free(r->cur);
            r->cur = NULL;
            break;
        }
        if (got == 0) { /* the file is done: the next one */
            pst_tfrecord_reader_free(r->cur);
            r->cur = NULL;
            continue;
        }
        char key[4200];
        snprintf(key, sizeof key, "%s:%llu", pst_tfrecord_reader_path(r->cur),
                 (unsigned long long)pst_tfrecord_reader_offset(r->cur));
        pst_tensor *k = pst_tensor_scalar_str(key);
        pst_tensor *v = pst_tensor_new_zeros(PST_STRING, pst_shape_scalar(), c->status);
        if (k == NULL || v == NULL || pst_tstring_set(pst_tensor_str(v), rec, len) < 0) {
            pst_tensor_unref(k);
            pst_tensor_unref(v);
            rc = pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
            break;
        }
        pst_kctx_set_output(c, 0, k);
        pst_kctx_set_output(c, 1, v);
        r->produced++;
        break;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* ---- ParseExample / ParseSingleExample ------------------------------------------------- */

typedef struct parse_spec {
    int single;       /* ParseSingleExample: no batch dimension */
    int ns, nd;
    const char **sparse_keys, **dense_keys;
    const pst_dtype *sparse_types, *dense_types;
    const pst_shape *dense_shapes;
    pst_tensor *const *defaults;
} parse_spec;

static pst_example_kind kind_of(pst_dtype dt) {
    return dt == PST_FLOAT ? PST_EXAMPLE_FLOAT : dt == PST_INT64 ? PST_EXAMPLE_INT64
                                                                 : PST_EXAMPLE_BYTES;
}

/* Writes n values of feature f starting at value `from` into t at element `at`. */
static int put_values(pst_tensor *t, int64_t at, const pst_example_feature *f, size_t from,
                      size_t n, pst_status *st) {
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case PST_FLOAT: pst_tensor_f32(t)[at + (int64_t)i] = f->floats[from + i]; break;
        case PST_INT64: pst_tensor_i64(t)[at + (int64_t)i] = f->int64s[from + i]; break;
        default:
            if (pst_tstring_set(&pst_tensor_str(t)[at + (int64_t)i], f->bytes[from + i].data,
                                f->bytes[from + i].len) < 0)
                return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        }
    }
    return 0;
}

/* The feature named key of example ex when its list kind suits dt (count 0 for an empty
 * Feature); NULL when absent; an error for another kind. */
static int feature_of(const pst_example *ex, const char *key, pst_dtype dt, int64_t b,
                      const pst_example_feature **out, pst_status *st) {
    const pst_example_feature *f = pst_example_find(ex, key);
    *out = NULL;
    if (f == NULL) return 0;
    if (f->kind != PST_EXAMPLE_NONE && f->kind != kind_of(dt))
        return pst_status_set(st, PST_E_INVALID, "example %lld, feature '%s': data types don't "
                              "match (the graph expects %s, the example holds a %s)",
                              (long long)b, key, pst_dtype_name(dt), pst_example_kind_name(f->kind));
    *out = f;
    return 0;
}

static int parse_examples(pst_kernel_ctx *c, const pst_tensor *ser, const parse_spec *p) {
    int64_t B = ser->n;
    int rc = 0;
    pst_example **ex = calloc((size_t)B + 1, sizeof *ex);
    if (ex == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    for (int64_t b = 0; b < B && rc == 0; b++) {
        const pst_tstring *s = &pst_tensor_str(ser)[b];
        if ((ex[b] = pst_example_new()) == NULL)
            rc = pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
        else if ((rc = pst_example_parse(ex[b], (const uint8_t *)s->p, s->len, c->status)) < 0)
            pst_status_prefix(c->status, "serialized example %lld: ", (long long)b);
    }
    /* Sparse features: indices [N, 1 or 2], values [N], dense shape [1 or 2]. */
    for (int i = 0; i < p->ns && rc == 0; i++) {
        int64_t total = 0, longest = 0;
        for (int64_t b = 0; b < B && rc == 0; b++) {
            const pst_example_feature *f;
            if ((rc = feature_of(ex[b], p->sparse_keys[i], p->sparse_types[i], b, &f,
                                 c->status)) < 0)
                break;
            int64_t k = f ? (int64_t)f->count : 0;
            total += k;
            if (k > longest) longest = k;
        }
        if (rc < 0) break;
        int r = p->single ? 1 : 2;
        pst_tensor *ind = pst_kctx_alloc_output(c, i, PST_INT64, pst_shape_2d(total, r));
        pst_tensor *val = pst_kctx_alloc_output(c, p->ns + i, p->sparse_types[i],
                                                pst_shape_1d(total));
        pst_tensor *shp = pst_kctx_alloc_output(c, 2 * p->ns + i, PST_INT64, pst_shape_1d(r));
        if (ind == NULL || val == NULL || shp == NULL) {
            rc = c->status->code;
            break;
        }
        if (val->dtype == PST_STRING) memset(val->data, 0, val->nbytes);
        int64_t at = 0;
        for (int64_t b = 0; b < B && rc == 0; b++) {
            const pst_example_feature *f;
            feature_of(ex[b], p->sparse_keys[i], p->sparse_types[i], b, &f, c->status);
            size_t k = f ? f->count : 0;
            for (size_t j = 0; j < k; j++) {
                int64_t *row = pst_tensor_i64(ind) + (at + (int64_t)j) * r;
                if (r == 2) row[0] = b, row[1] = (int64_t)j;
                else row[0] = (int64_t)j;
            }
            if (k) rc = put_values(val, at, f, 0, k, c->status);
            at += (int64_t)k;
        }
        if (r == 2) pst_tensor_i64(shp)[0] = B, pst_tensor_i64(shp)[1] = longest;
        else pst_tensor_i64(shp)[0] = longest;
    }
    /* Dense features. */
    for (int i = 0; i < p->nd && rc == 0; i++) {
        const char *key = p->dense_keys[i];
        pst_dtype dt = p->dense_types[i];
        pst_shape ds = p->dense_shapes[i];
        const pst_tensor *dflt = p->defaults[i];
        char b1[96];
        int varlen = ds.rank > 0 && ds.dims[0] < 0;
        int64_t stride = 1;
        for (int d = varlen ? 1 : 0; d < ds.rank; d++) {
            if (ds.dims[d] < 0) {
                rc = pst_kctx_error(c, PST_E_INVALID, "feature '%s': dense shape %s has an "
                                    "unknown dim after the first", key,
                                    pst_shape_str(&ds, b1, sizeof b1));
                break;
            }
            stride *= ds.dims[d];
        }
        if (rc < 0) break;
        if (dflt->dtype != dt) {
            rc = pst_kctx_error(c, PST_E_INVALID, "feature '%s': default of type %s for a %s "
                                "feature", key, pst_dtype_name(dflt->dtype), pst_dtype_name(dt));
            break;
        }
        /* Rows per example (varlen) and the batch's longest. */
        int64_t rows_max = varlen ? 0 : 1;
        for (int64_t b = 0; b < B && rc == 0 && varlen; b++) {
            const pst_example_feature *f;
            if ((rc = feature_of(ex[b], key, dt, b, &f, c->status)) < 0) break;
            int64_t k = f ? (int64_t)f->count : 0;
            if (stride == 0 || k % stride)
                rc = pst_kctx_error(c, PST_E_INVALID, "example %lld, feature '%s': %lld values "
                                    "are not a whole number of rows of %lld", (long long)b, key,
                                    (long long)k, (long long)stride);
            else if (k / stride > rows_max)
                rows_max = k / stride;
        }
        if (rc < 0) break;
        pst_shape os = ds;
        if (varlen) os.dims[0] = rows_max;
        if (!p->single) {
            if (os.rank + 1 > PST_MAX_RANK) {
                rc = pst_kctx_error(c, PST_E_INVALID, "feature '%s': rank too large", key);
                break;
            }
            memmove(os.dims + 1, os.dims, (size_t)os.rank * sizeof *os.dims);
            os.dims[0] = B;
            os.rank++;
        }
        pst_tensor *o = pst_kctx_alloc_output(c, 3 * p->ns + i, dt, os);
        if (o == NULL) {
            rc = c->status->code;
            break;
        }
        if (dt == PST_STRING) memset(o->data, 0, o->nbytes);
        int64_t per = varlen ? rows_max * stride : stride;
        for (int64_t b = 0; b < B && rc == 0; b++) {
            const pst_example_feature *f;
            if ((rc = feature_of(ex[b], key, dt, b, &f, c->status)) < 0) break;
            int64_t k = f ? (int64_t)f->count : 0, at = b * per;
            if (!varlen && f != NULL && k != stride) {
                rc = pst_kctx_error(c, PST_E_INVALID, "example %lld, feature '%s': key has %lld "
                                    "values; the dense shape %s needs %lld", (long long)b, key,
                                    (long long)k, pst_shape_str(&ds, b1, sizeof b1),
                                    (long long)stride);
                break;
            }
            if (!varlen && f == NULL) { /* the default, or an error when there is none */
                if (dflt->n != stride) {
                    rc = pst_kctx_error(c, PST_E_INVALID, "example %lld: feature '%s' (%s) is "
                                        "required but could not be found", (long long)b, key,
                                        pst_dtype_name(dt));
                    break;
                }
                rc = pst_tensor_copy_elems(o, at, dflt, 0, stride, c->status);
                continue;
            }
            if (k) rc = put_values(o, at, f, 0, (size_t)k, c->status);
            for (int64_t j = k; j < per && rc == 0; j++) /* padding: the default's value */
                if (dflt->n >= 1) rc = pst_tensor_copy_elems(o, at + j, dflt, 0, 1, c->status);
        }
    }
    for (int64_t b = 0; b < B; b++) pst_example_free(ex[b]);
    free(ex);
    return rc;
}

static const char **key_list(pst_kernel_ctx *c, int first, int n) {
    const char **k = calloc((size_t)n + 1, sizeof *k);
    if (k == NULL) return NULL;
    for (int i = 0; i < n; i++) {
        const pst_tensor *t = c->inputs[first + i];
        k[i] = t->dtype == PST_STRING && t->n == 1 && pst_tensor_str(t)->p
                   ? pst_tensor_str(t)->p : "";
    }
    return k;
}

static const pst_dtype *types_attr(pst_kernel_ctx *c, const char *name, int n) {
    static const pst_dtype none[1] = {PST_DT_INVALID};
    const pst_attr *a = pst_kctx_attr(c, name);
    if (n == 0) return none;
    return a && a->kind == PST_ATTR_LIST_TYPE && a->n == n ? a->list.type : NULL;
}

static int parse_kernel(pst_kernel_ctx *c) {
    int single = strcmp(c->op->name, "ParseSingleExample") == 0;
    parse_spec p = {.single = single};
    p.ns = (int)pst_kctx_attr_i(c, single ? "num_sparse" : "Nsparse", 0);
    const pst_attr *shapes = pst_kctx_attr(c, "dense_shapes");
    p.nd = single ? (shapes ? shapes->n : 0) : (int)pst_kctx_attr_i(c, "Ndense", 0);
    p.sparse_types = types_attr(c, "sparse_types", p.ns);
    p.dense_types = types_attr(c, "Tdense", p.nd);
    if (p.nd && (shapes == NULL || shapes->kind != PST_ATTR_LIST_SHAPE || shapes->n != p.nd))
        return pst_kctx_error(c, PST_E_INVALID, "dense_shapes does not list %d shapes", p.nd);
    p.dense_shapes = p.nd ? shapes->list.shape : NULL;
    if (p.sparse_types == NULL || p.dense_types == NULL)
        return pst_kctx_error(c, PST_E_INVALID, "sparse_types or Tdense has the wrong length");
    const pst_tensor *ser = c->inputs[0];
    if (ser->dtype != PST_STRING || (single ? ser->shape.rank != 0 : ser->shape.rank != 1))
        return pst_kctx_error(c, PST_E_INVALID, "serialized must be a %s of strings",
                              single ? "scalar" : "vector");
    int rc;
    if (single) {
        const pst_attr *sk = pst_kctx_attr(c, "sparse_keys"), *dk = pst_kctx_attr(c, "dense_keys");
        if ((p.ns && (sk == NULL || sk->n != p.ns)) || (p.nd && (dk == NULL || dk->n != p.nd)) ||
            c->n_inputs != 1 + p.nd)
            return pst_kctx_error(c, PST_E_INVALID, "sparse_keys / dense_keys / inputs do not "
                                  "match num_sparse %d and %d dense shapes", p.ns, p.nd);
        p.sparse_keys = (const char **)(p.ns ? sk->list.s : NULL);
        p.dense_keys = (const char **)(p.nd ? dk->list.s : NULL);
        p.defaults = c->inputs + 1;
        rc = parse_examples(c, ser, &p);
    } else {
        if (c->n_inputs != 2 + 2 * p.nd + p.ns)
            return pst_kctx_error(c, PST_E_INVALID, "%d inputs do not match Nsparse %d and "
                                  "Ndense %d", c->n_inputs, p.ns, p.nd);
        p.sparse_keys = key_list(c, 2, p.ns);
        p.dense_keys = key_list(c, 2 + p.ns, p.nd);
        p.defaults = c->inputs + 2 + p.ns + p.nd;
        rc = p.sparse_keys && p.dense_keys ? parse_examples(c, ser, &p)
                                           : pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
        free(p.sparse_keys);
        free(p.dense_keys);
    }
    return rc;
}

static int parse_shape(pst_node *n, pst_status *st) {
    int single = strcmp(n->op->name, "ParseSingleExample") == 0;
    int ns = (int)pst_node_attr_i(n, single ? "num_sparse" : "Nsparse", 0);
    const pst_attr *shapes = pst_node_attr(n, "dense_shapes");
    int nd = single ? (shapes ? shapes->n : 0) : (int)pst_node_attr_i(n, "Ndense", 0);
    const pst_attr *st_ = pst_node_attr(n, "sparse_types"), *td = pst_node_attr(n, "Tdense");
    if (ns < 0 || nd < 0 || (ns && (st_ == NULL || st_->kind != PST_ATTR_LIST_TYPE || st_->n != ns)) ||
        (nd && (td == NULL || td->kind != PST_ATTR_LIST_TYPE || td->n != nd ||
                shapes == NULL || shapes->kind != PST_ATTR_LIST_SHAPE || shapes->n != nd)))
        return pst_status_set(st, PST_E_INVALID, "sparse_types, Tdense and dense_shapes do not "
                              "match %d sparse and %d dense features", ns, nd);
    if (pst_node_in_dtype(n, 0) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "input 0 (serialized) is not a string tensor");
    for (int i = 0; i < nd; i++) {
        pst_dtype dt = td->list.type[i];
        if (dt != PST_FLOAT && dt != PST_INT64 && dt != PST_STRING)
            return pst_status_set(st, PST_E_INVALID, "dense feature %d has type %s (float, "
                                  "int64 or string only)", i, pst_dtype_name(dt));
    }
    pst_node_set_num_outputs(n, 3 * ns + nd);
    pst_shape ser = pst_node_in_shape(n, 0);
    int64_t B = ser.rank == 1 ? ser.dims[0] : -1;
    for (int i = 0; i < ns; i++) {
        pst_node_set_output(n, i, PST_INT64, pst_shape_2d(-1, single ? 1 : 2));
        pst_node_set_output(n, ns + i, st_->list.type[i], pst_shape_1d(-1));
        pst_node_set_output(n, 2 * ns + i, PST_INT64, pst_shape_1d(single ? 1 : 2));
    }
    for (int i = 0; i < nd; i++) {
        pst_shape s = shapes->list.shape[i];
        if (!single && s.rank >= 0 && s.rank < PST_MAX_RANK) {
            memmove(s.dims + 1, s.dims, (size_t)s.rank * sizeof *s.dims);
            s.dims[0] = B;
            s.rank++;
        }
        pst_node_set_output(n, 3 * ns + i, td->list.type[i], s);
    }
    return 0;
}

/* ---- ImageSummary(tag, images [batch, h, w, 1|3|4]) ----------------------------------- */

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void png_chunk(pst_pbwire_buf *b, const char *type, const uint8_t *data, size_t len) {
    uint8_t hdr[8];
    put_be32(hdr, (uint32_t)len);
    memcpy(hdr + 4, type, 4);
    pst_pbwire_put_raw(b, hdr, 8);
    if (len) pst_pbwire_put_raw(b, data, len);
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (len) crc = crc32(crc, data, (uInt)len);
    put_be32(hdr, (uint32_t)crc);
    pst_pbwire_put_raw(b, hdr, 4);
}

/* A PNG of h x w pixels of ch 8-bit channels (gray, RGB, RGBA). 0 or -1. */
static int png_encode(const uint8_t *px, int64_t h, int64_t w, int ch, pst_pbwire_buf *out) {
    size_t row = (size_t)(w * ch) + 1, raw_len = row * (size_t)h;
    uint8_t *raw = malloc(raw_len + 1);
    uLongf zlen = compressBound((uLong)raw_len);
    uint8_t *z = malloc(zlen + 1);
    if (raw == NULL || z == NULL) goto fail;
    for (int64_t y = 0; y < h; y++) {
        raw[(size_t)y * row] = 0; /* filter: none */
        memcpy(raw + (size_t)y * row + 1, px + (size_t)y * (row - 1), row - 1);
    }
    if (compress2(z, &zlen, raw, (uLong)raw_len, 6) != Z_OK) goto fail;
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    pst_pbwire_put_raw(out, sig, 8);
    uint8_t ihdr[13];
    put_be32(ihdr, (uint32_t)w);
    put_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;
    ihdr[9] = ch == 1 ? 0 : ch == 3 ? 2 : 6;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    png_chunk(out, "IHDR", ihdr, 13);
    png_chunk(out, "IDAT", z, zlen);
    png_chunk(out, "IEND", NULL, 0);
    free(raw), free(z);
    return out->failed ? -1 : 0;
fail:
    free(raw), free(z);
    return -1;
}

static int image_summary_kernel(pst_kernel_ctx *c) {
    const pst_tensor *tag = c->inputs[0], *im = c->inputs[1];
    if (tag->dtype != PST_STRING || tag->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "tag must be a scalar string");
    if (im->shape.rank != 4 || (im->shape.dims[3] != 1 && im->shape.dims[3] != 3 &&
                                im->shape.dims[3] != 4))
        return pst_kctx_error(c, PST_E_INVALID, "images must be [batch, height, width, 1|3|4]");
    if (im->dtype != PST_UINT8 && !pst_dtype_is_float(im->dtype))
        return pst_kctx_error(c, PST_E_INVALID, "images of type %s are not supported",
                              pst_dtype_name(im->dtype));
    int64_t max_images = pst_kctx_attr_i(c, "max_images", 3);
    int64_t n = im->shape.dims[0] < max_images ? im->shape.dims[0] : max_images;
    int64_t h = im->shape.dims[1], w = im->shape.dims[2], ch = im->shape.dims[3];
    int64_t per = h * w * ch;
    const char *t = pst_tensor_str(tag)->p ? pst_tensor_str(tag)->p : "";
    uint8_t *px = malloc((size_t)per + 1);
    pst_pbwire_buf sum, png;
    pst_pbwire_buf_init(&sum);
    pst_pbwire_buf_init(&png);
    int rc = px ? 0 : PST_E_EXHAUSTED;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        if (im->dtype == PST_UINT8) {
            memcpy(px, pst_tensor_u8(im) + i * per, (size_t)per);
        } else { /* TF: the largest magnitude maps to 255, or 127 around 128 with negatives */
            double lo = 0, hi = 0;
            for (int64_t k = 0; k < per; k++) {
                double v = pst_tensor_get_f64(im, i * per + k);
                if (!isfinite(v)) continue;
                if (v < lo) lo = v;
                if (v > hi) hi = v;
            }
            double mx = fmax(fabs(lo), fabs(hi)), scale = 0, offset = lo < 0 ? 128 : 0;
            if (mx > FLT_EPSILON) scale = (lo < 0 ? 127.0 : 255.0) / mx;
            for (int64_t k = 0; k < per; k++) {
                double v = pst_tensor_get_f64(im, i * per + k);
                double x = isfinite(v) ? round(v * scale + offset) : 0;
                px[k] = (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : x);
            }
        }
        pst_pbwire_buf_reset(&png);
        if (png_encode(px, h, w, (int)ch, &png) < 0) {
            rc = PST_E_EXHAUSTED;
            break;
        }
        char name[1200];
        if (max_images == 1) snprintf(name, sizeof name, "%s/image", t);
        else snprintf(name, sizeof name, "%s/image/%lld", t, (long long)i);
        size_t v = pst_pbwire_begin(&sum, 1); /* Summary.value */
        pst_pbwire_put_string(&sum, 1, name);
        size_t img = pst_pbwire_begin(&sum, 4); /* Value.image */
        pst_pbwire_put_varint(&sum, 1, (uint64_t)h);
        pst_pbwire_put_varint(&sum, 2, (uint64_t)w);
        pst_pbwire_put_varint(&sum, 3, (uint64_t)ch);
        pst_pbwire_put_bytes(&sum, 4, png.data, png.len);
        pst_pbwire_end(&sum, img);
        pst_pbwire_end(&sum, v);
    }
    if (rc == 0 && sum.failed) rc = PST_E_EXHAUSTED;
    pst_tensor *o = rc == 0 ? pst_tensor_new_zeros(PST_STRING, pst_shape_scalar(), c->status) : NULL;
    if (o && pst_tstring_set(pst_tensor_str(o), sum.data, sum.len) < 0) {
        pst_tensor_unref(o);
        o = NULL;
    }
    free(px);
    pst_pbwire_buf_destroy(&sum);
    pst_pbwire_buf_destroy(&png);
    if (o == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    pst_kctx_set_output(c, 0, o);
    return 0;
}

/* ---- Registration ---------------------------------------------------------------------- */
static int read_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_RESOURCE || pst_node_in_dtype(n, 1) != PST_RESOURCE)
        return pst_status_set(st, PST_E_INVALID, "inputs must be a reader and a queue handle");
    pst_node_set_output(n, 0, PST_STRING, pst_shape_scalar());
    pst_node_set_output(n, 1, PST_STRING, pst_shape_scalar());
    return 0;
}

static int string_scalar_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_STRING, pst_shape_scalar());
    return 0;
}

static const pst_attr_spec reader_attrs[] = {{"container", PST_ATTR_STRING, 0},
                                             {"shared_name", PST_ATTR_STRING, 0},
                                             {"compression_type", PST_ATTR_STRING, 0},
                                             {0}};
static const pst_attr_spec parse_attrs[] = {
    {"Nsparse", PST_ATTR_INT, 0},          {"Ndense", PST_ATTR_INT, 0},
    {"num_sparse", PST_ATTR_INT, 0},       {"sparse_keys", PST_ATTR_LIST_STRING, 0},
    {"dense_keys", PST_ATTR_LIST_STRING, 0}, {"sparse_types", PST_ATTR_LIST_TYPE, 0},
    {"Tdense", PST_ATTR_LIST_TYPE, 0},     {"dense_shapes", PST_ATTR_LIST_SHAPE, 0},
    {0}};
static const pst_attr_spec image_attrs[] = {{"max_images", PST_ATTR_INT, 0},
                                            {"T", PST_ATTR_TYPE, 0},
                                            {"bad_color", PST_ATTR_TENSOR, 0},
                                            {0}};

#define IOF (PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS)
static const pst_op_def io_ops[] = {
    {.name = "TFRecordReaderV2", .n_outputs = 1, .attrs = reader_attrs, .shape = pst_ops_resource_shape,
     .kernel = tfrecord_reader_kernel, .flags = IOF},
    {.name = "TFRecordReader", .n_outputs = 1, .attrs = reader_attrs, .shape = pst_ops_resource_shape,
     .kernel = tfrecord_reader_kernel, .flags = IOF},
    {.name = "ReaderReadV2", .min_inputs = 2, .max_inputs = 2, .n_outputs = 2,
     .shape = read_shape, .kernel = reader_read_kernel, .flags = IOF},
    {.name = "ReaderRead", .min_inputs = 2, .max_inputs = 2, .n_outputs = 2,
     .shape = read_shape, .kernel = reader_read_kernel, .flags = IOF},
    {.name = "ParseExample", .min_inputs = 2, .max_inputs = -1, .n_outputs = -1,
     .attrs = parse_attrs, .shape = parse_shape, .kernel = parse_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "ParseSingleExample", .min_inputs = 1, .max_inputs = -1, .n_outputs = -1,
     .attrs = parse_attrs, .shape = parse_shape, .kernel = parse_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "ImageSummary", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = image_attrs, .shape = string_scalar_shape, .kernel = image_summary_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
};

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void register_io_ops(void) {
    pst_ops_init();
    for (size_t i = 0; i < sizeof io_ops / sizeof io_ops[0]; i++) pst_op_register(&io_ops[i]);
}

void pst_io_ops_init(void) { pthread_once(&once, register_io_ops); }
