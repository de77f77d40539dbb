/* io_ops: TFRecord readers, Example parsing and image summaries as graph ops (see io_ops.h). */
#include "io_ops.h"
#include "tf_data.h"

#include <errno.h>
#include <float.h>
#include <glob.h>
#include <math.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "example.h"
#include "image_ops.h"
#include "op.h"
#include "ops.h"
#include "ops_queue.h"
#include "pbwire.h"
#include "tfrecord.h"
#include "varstore.h"

/* ---- Readers: TFRecordReaderV2, FixedLengthRecordReaderV2, TextLineReaderV2 --------------- */

enum { R_TFRECORD, R_FIXED, R_TEXT, R_WHOLE };

typedef struct reader {
    char *name;
    int kind;
    pst_tfrecord_compression compression;
    int64_t header, record, footer, hop; /* FixedLengthRecordReader's sizes */
    int64_t skip_lines;                  /* TextLineReader's skip_header_lines */
    pthread_mutex_t mu;       /* one read at a time, as TF's ReaderBase */
    pst_tfrecord_reader *cur; /* the TFRecord file being read, NULL between files */
    FILE *f;                  /* the fixed-length or text file being read */
    char *path;               /* the current file's name */
    int64_t index;            /* records (lines) of the current file read so far */
    int64_t end;              /* fixed-length: the offset where records stop */
    char *line;
    size_t line_cap;
    int64_t produced;
} reader;

static void reader_close_file(reader *r) {
    pst_tfrecord_reader_free(r->cur);
    r->cur = NULL;
    if (r->f) fclose(r->f);
    r->f = NULL;
    free(r->path);
    r->path = NULL;
}

static void reader_free(void *p) {
    reader *r = p;
    if (r == NULL) return;
    reader_close_file(r);
    pthread_mutex_destroy(&r->mu);
    free(r->line), free(r->name), free(r);
}

static void *reader_make(void *p, pst_status *st) {
    const reader *tmpl = p;
    reader *r = calloc(1, sizeof *r);
    if (r == NULL || (*r = *tmpl, r->name = strdup(tmpl->name)) == NULL) {
        free(r);
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static int reader_kernel(pst_kernel_ctx *c) {
    const char *shared = pst_kctx_attr_s(c, "shared_name", "");
    reader t = {.name = (char *)(shared[0] ? shared : c->node_name)};
    const char *op = c->op->name;
    t.kind = strncmp(op, "FixedLength", 11) == 0 ? R_FIXED
             : strncmp(op, "TextLine", 8) == 0   ? R_TEXT
             : strncmp(op, "WholeFile", 9) == 0  ? R_WHOLE
                                                 : R_TFRECORD;
    const char *comp = pst_kctx_attr_s(c, t.kind == R_FIXED ? "encoding" : "compression_type", "");
    if (pst_tfrecord_compression_parse(comp, &t.compression, c->status) < 0)
        return c->status->code;
    if (t.kind != R_TFRECORD && t.compression != PST_TFRECORD_NONE)
        return pst_kctx_error(c, PST_E_UNIMPLEMENTED, "compressed %s files are not supported",
                              t.kind == R_FIXED ? "fixed-length record" : "text");
    t.header = pst_kctx_attr_i(c, "header_bytes", 0);
    t.record = pst_kctx_attr_i(c, "record_bytes", 0);
    t.footer = pst_kctx_attr_i(c, "footer_bytes", 0);
    t.hop = pst_kctx_attr_i(c, "hop_bytes", 0);
    t.skip_lines = pst_kctx_attr_i(c, "skip_header_lines", 0);
    if (t.kind == R_FIXED && (t.record <= 0 || t.header < 0 || t.footer < 0 || t.hop < 0))
        return pst_kctx_error(c, PST_E_INVALID, "record_bytes must be > 0 and the other sizes "
                              ">= 0");
    char key[1200];
    snprintf(key, sizeof key, "reader:%s", t.name);
    reader *r = pst_var_store_resource(c->vars, key, reader_make, &t, reader_free, c->status);
    if (r == NULL) return c->status->code;
    pst_tensor *h = pst_ops_resource_handle(r);
    if (h == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    pst_kctx_set_output(c, 0, h);
    return 0;
}

/* Opens the next file named by the queue (blocking). */
static int reader_open_next(reader *r, pst_queue *q, pst_status *st) {
    pst_tensor *fname = NULL;
    if (pst_queue_dequeue_one(q, &fname, st) < 0) return st->code;
    if (fname->dtype != PST_STRING || fname->n != 1) {
        pst_tensor_unref(fname);
        return pst_status_set(st, PST_E_INVALID, "queue '%s' holds no file names (a scalar "
                              "string per element)", pst_queue_name(q));
    }
    const pst_tstring *s = pst_tensor_str(fname);
    r->path = strndup(s->p ? s->p : "", s->len);
    pst_tensor_unref(fname);
    if (r->path == NULL) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    r->index = 0;
    if (r->kind == R_TFRECORD) {
        pst_tfrecord_reader_opts o = {.compression = r->compression};
        r->cur = pst_tfrecord_reader_open(r->path, &o, st);
        if (r->cur == NULL) {
            reader_close_file(r);
            return st->code;
        }
        return 0;
    }
    if ((r->f = fopen(r->path, "rb")) == NULL) {
        pst_status_set(st, PST_E_NOT_FOUND, "cannot open %s: %s", r->path, strerror(errno));
        reader_close_file(r);
        return st->code;
    }
    if (r->kind == R_FIXED) {
        if (fseeko(r->f, 0, SEEK_END) < 0) goto io;
        int64_t size = (int64_t)ftello(r->f);
        r->end = size - r->footer;
        if (fseeko(r->f, (off_t)r->header, SEEK_SET) < 0) goto io;
    } else {
        for (int64_t i = 0; i < r->skip_lines; i++)
            if (getline(&r->line, &r->line_cap, r->f) < 0) break;
        r->index = r->skip_lines;
    }
    return 0;
io:
    pst_status_set(st, PST_E_IO, "%s: %s", r->path, strerror(errno));
    reader_close_file(r);
    return st->code;
}

/* The next record of the current file: 1 with key and value set, 0 at its end, < 0 error. */
static int reader_next(reader *r, pst_tensor **key, pst_tensor **value, pst_status *st) {
    const uint8_t *rec = NULL;
    size_t len = 0;
    char k[4200];
    if (r->kind == R_TFRECORD) {
        int got = pst_tfrecord_reader_next(r->cur, &rec, &len, st);
        if (got <= 0) return got;
        snprintf(k, sizeof k, "%s:%llu", r->path,
                 (unsigned long long)pst_tfrecord_reader_offset(r->cur));
    } else if (r->kind == R_FIXED) {
        int64_t at = r->header + r->index * (r->hop > 0 ? r->hop : r->record);
        if (at + r->record > r->end) return 0;
        if (r->line_cap < (size_t)r->record) {
            char *b = realloc(r->line, (size_t)r->record);
            if (b == NULL) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
            r->line = b;
            r->line_cap = (size_t)r->record;
        }
        if (fseeko(r->f, (off_t)at, SEEK_SET) < 0 ||
            fread(r->line, 1, (size_t)r->record, r->f) != (size_t)r->record)
            return pst_status_set(st, PST_E_DATA_LOSS, "%s: record %lld is cut short", r->path,
                                  (long long)r->index);
        rec = (const uint8_t *)r->line;
        len = (size_t)r->record;
        snprintf(k, sizeof k, "%s:%lld", r->path, (long long)r->index);
    } else if (r->kind == R_WHOLE) { /* one record: the whole file, keyed by its name */
        if (r->index > 0) return 0;
        size_t n = 0;
        for (;;) {
            if (r->line_cap < n + 65536) {
                char *b = realloc(r->line, n + 65536);
                if (b == NULL) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
                r->line = b;
                r->line_cap = n + 65536;
            }
            size_t got = fread(r->line + n, 1, r->line_cap - n, r->f);
            n += got;
            if (got == 0) break;
        }
        if (ferror(r->f)) return pst_status_set(st, PST_E_IO, "cannot read %s", r->path);
        rec = (const uint8_t *)r->line;
        len = n;
        snprintf(k, sizeof k, "%s", r->path);
    } else {
        ssize_t n = getline(&r->line, &r->line_cap, r->f);
        if (n < 0) return 0;
        while (n > 0 && (r->line[n - 1] == '\n' || r->line[n - 1] == '\r')) n--;
        rec = (const uint8_t *)r->line;
        len = (size_t)n;
        snprintf(k, sizeof k, "%s:%lld", r->path, (long long)r->index + 1);
    }
    r->index++;
    *key = pst_tensor_scalar_str(k);
    *value = pst_tensor_new_zeros(PST_STRING, pst_shape_scalar(), st);
    if (*key == NULL || *value == NULL || pst_tstring_set(pst_tensor_str(*value), rec, len) < 0) {
        pst_tensor_unref(*key);
        pst_tensor_unref(*value);
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    }
    return 1;
}

/* One record: the next file from the queue whenever the current one ends. */
static int reader_read(reader *r, pst_queue *q, pst_tensor **key, pst_tensor **value,
                       pst_status *st) {
    for (;;) {
        if (r->cur == NULL && r->f == NULL && reader_open_next(r, q, st) < 0) return st->code;
        int got = reader_next(r, key, value, st);
        if (got == 1) {
            r->produced++;
            return 0;
        }
        reader_close_file(r);
        if (got < 0) return got;
    }
}

static int reader_read_kernel(pst_kernel_ctx *c) {
    const pst_tensor *h = c->inputs[0];
    if (h->dtype != PST_RESOURCE || h->n != 1 || *(void **)h->data == NULL)
        return pst_kctx_error(c, PST_E_INVALID, "input 0 is not a reader handle");
    reader *r = *(reader **)h->data;
    pst_queue *q = pst_queue_from_handle(c->inputs[1], c->status);
    if (q == NULL) return pst_kctx_error(c, PST_E_INVALID, "input 1 is not a queue handle");
    int up_to = c->n_inputs > 2;
    int64_t n = up_to ? pst_tensor_get_i64(c->inputs[2], 0) : 1;
    if (n < 1) return pst_kctx_error(c, PST_E_INVALID, "num_records must be positive");
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    if (!up_to) {
        pst_tensor *k, *v;
        if ((rc = reader_read(r, q, &k, &v, c->status)) == 0) {
            pst_kctx_set_output(c, 0, k);
            pst_kctx_set_output(c, 1, v);
        }
        pthread_mutex_unlock(&r->mu);
        return rc;
    }
    /* ReadUpTo: up to n records, fewer at the end of the input (OutOfRange only for none). */
    pst_tensor *ks = pst_tensor_new_zeros(PST_STRING, pst_shape_1d(n), c->status);
    pst_tensor *vs = pst_tensor_new_zeros(PST_STRING, pst_shape_1d(n), c->status);
    int64_t got = 0;
    for (; ks && vs && got < n; got++) {
        pst_tensor *k, *v;
        pst_status rst = {0};
        if ((rc = reader_read(r, q, &k, &v, &rst)) < 0) {
            if (got == 0 || rc != PST_E_OUT_OF_RANGE) *c->status = rst;
            else rc = 0;
            break;
        }
        pst_tensor_copy_elems(ks, got, k, 0, 1, c->status);
        pst_tensor_copy_elems(vs, got, v, 0, 1, c->status);
        pst_tensor_unref(k);
        pst_tensor_unref(v);
    }
    pthread_mutex_unlock(&r->mu);
    if (ks == NULL || vs == NULL) rc = c->status->code;
    if (rc == 0 && got < n) { /* shrink to what was read */
        pst_tensor *k2 = pst_tensor_new_zeros(PST_STRING, pst_shape_1d(got), c->status);
        pst_tensor *v2 = pst_tensor_new_zeros(PST_STRING, pst_shape_1d(got), c->status);
        if (k2 && v2 && pst_tensor_copy_elems(k2, 0, ks, 0, got, c->status) == 0 &&
            pst_tensor_copy_elems(v2, 0, vs, 0, got, c->status) == 0) {
            pst_tensor_unref(ks), pst_tensor_unref(vs);
            ks = k2, vs = v2;
        } else {
            pst_tensor_unref(k2), pst_tensor_unref(v2);
            rc = c->status->code ? c->status->code : PST_E_EXHAUSTED;
        }
    }
    if (rc < 0) {
        pst_tensor_unref(ks), pst_tensor_unref(vs);
        return rc;
    }
    pst_kctx_set_output(c, 0, ks);
    pst_kctx_set_output(c, 1, vs);
    return 0;
}

/* ---- MatchingFiles(pattern) -> the sorted file names matching (tf.train.match_filenames_once)
 */
static int matching_files_kernel(pst_kernel_ctx *c) {
    const pst_tensor *p = c->inputs[0];
    if (p->dtype != PST_STRING || p->shape.rank > 1)
        return pst_kctx_error(c, PST_E_INVALID, "pattern must be a string scalar or vector");
    glob_t g = {0};
    int rc = 0;
    for (int64_t i = 0; i < p->n && rc == 0; i++) {
        const char *pat = pst_tensor_str(p)[i].p ? pst_tensor_str(p)[i].p : "";
        int r = glob(pat, i ? GLOB_APPEND : 0, NULL, &g);
        if (r != 0 && r != GLOB_NOMATCH)
            rc = pst_kctx_error(c, PST_E_IO, "cannot list files matching '%s'", pat);
    }
    if (rc == 0) {
        pst_tensor *o = pst_tensor_from_strs((int)g.gl_pathc, (const char *const *)g.gl_pathv);
        if (o == NULL) rc = pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
        else pst_kctx_set_output(c, 0, o);
    }
    if (p->n) globfree(&g);
    return rc;
}

static int matching_files_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "input 0 (pattern) is not a string tensor");
    pst_node_set_output(n, 0, PST_STRING, pst_shape_1d(-1));
    return 0;
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

/* ---- ParseSingleSequenceExample ------------------------------------------------------- */
/* A SequenceExample is {context = 1: Features, feature_lists = 2: FeatureLists}; FeatureLists
 * maps names to FeatureList {feature = 1: repeated Feature}. The context is an Example's
 * Features (same field number), so it parses as one; each step's Feature is parsed as the one
 * feature "f" of a wrapped Example. */

/* Wraps bytes as field `field` (length-delimited) of a new message, appended to b. */
static void wrap(pst_pbwire_buf *b, uint32_t field, const uint8_t *p, size_t n) {
    pst_pbwire_put_bytes(b, field, p, n);
}

/* The steps of a FeatureList: each Feature as an Example holding feature "f". */
typedef struct flist {
    const uint8_t *data; /* FeatureList bytes */
    size_t len;
} flist;

/* Parses step Feature bytes into ex (feature "f"). */
static int parse_feature(pst_example *ex, const uint8_t *f, size_t n, pst_status *st) {
    pst_pbwire_buf entry, feats, exb;
    pst_pbwire_buf_init(&entry), pst_pbwire_buf_init(&feats), pst_pbwire_buf_init(&exb);
    pst_pbwire_put_string(&entry, 1, "f");
    wrap(&entry, 2, f, n);
    wrap(&feats, 1, entry.data, entry.len);
    wrap(&exb, 1, feats.data, feats.len);
    int rc = exb.failed ? pst_status_set(st, PST_E_EXHAUSTED, "out of memory")
                        : pst_example_parse(ex, exb.data, exb.len, st);
    pst_pbwire_buf_destroy(&entry), pst_pbwire_buf_destroy(&feats), pst_pbwire_buf_destroy(&exb);
    return rc;
}

/* Finds feature list `key` in FeatureLists bytes; 1 found, 0 not, -1 malformed. */
static int find_flist(const uint8_t *p, size_t n, const char *key, flist *out) {
    const uint8_t *q = p, *end = p + n;
    pst_pbwire_field f;
    int r, found = 0;
    while ((r = pst_pbwire_next(&q, end, &f)) == 1) {
        if (f.number != 1 || f.wire_type != PST_PBWIRE_LEN) continue;
        const uint8_t *e = f.data, *ee = f.data + f.len;
        pst_pbwire_field g;
        const uint8_t *k = NULL, *v = NULL;
        size_t kl = 0, vl = 0;
        int r2;
        while ((r2 = pst_pbwire_next(&e, ee, &g)) == 1) {
            if (g.number == 1 && g.wire_type == PST_PBWIRE_LEN) k = g.data, kl = g.len;
            if (g.number == 2 && g.wire_type == PST_PBWIRE_LEN) v = g.data, vl = g.len;
        }
        if (r2 < 0) return -1;
        if (k && kl == strlen(key) && memcmp(k, key, kl) == 0) { /* the last one wins */
            out->data = v ? v : (const uint8_t *)"";
            out->len = vl;
            found = 1;
        }
    }
    return r < 0 ? -1 : found;
}

/* Each step's Feature bytes into steps (up to max; NULL: count only); the count or -1 when
 * malformed. */
static int64_t flist_steps(const flist *fl, flist *steps, int64_t max) {
    const uint8_t *q = fl->data, *end = fl->data + fl->len;
    pst_pbwire_field f;
    int64_t k = 0;
    int r;
    while ((r = pst_pbwire_next(&q, end, &f)) == 1)
        if (f.number == 1 && f.wire_type == PST_PBWIRE_LEN) {
            if (steps && k < max) steps[k] = (flist){f.data, f.len};
            k++;
        }
    return r < 0 ? -1 : k;
}

static int seq_kernel(pst_kernel_ctx *c) {
    int ncs = (int)pst_kctx_attr_i(c, "Ncontext_sparse", 0);
    int ncd = (int)pst_kctx_attr_i(c, "Ncontext_dense", 0);
    int nfs = (int)pst_kctx_attr_i(c, "Nfeature_list_sparse", 0);
    int nfd = (int)pst_kctx_attr_i(c, "Nfeature_list_dense", 0);
    if (c->n_inputs != 3 + ncs + 2 * ncd + nfs + nfd)
        return pst_kctx_error(c, PST_E_INVALID, "%d inputs do not match the feature counts",
                              c->n_inputs);
    const pst_tensor *ser = c->inputs[0], *assumed = c->inputs[1];
    if (ser->dtype != PST_STRING || ser->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "serialized must be a string scalar");
    const pst_tstring *sv = pst_tensor_str(ser);
    const uint8_t *buf = (const uint8_t *)(sv->p ? sv->p : ""), *q = buf, *end = buf + sv->len;
    const uint8_t *ctx = NULL, *fls = NULL;
    size_t ctx_len = 0, fls_len = 0;
    pst_pbwire_field f;
    int r;
    while ((r = pst_pbwire_next(&q, end, &f)) == 1) {
        if (f.number == 1 && f.wire_type == PST_PBWIRE_LEN) ctx = f.data, ctx_len = f.len;
        if (f.number == 2 && f.wire_type == PST_PBWIRE_LEN) fls = f.data, fls_len = f.len;
    }
    if (r < 0) return pst_kctx_error(c, PST_E_DATA_LOSS, "serialized is not a SequenceExample");
    /* The context: as a single Example of those features. */
    pst_pbwire_buf eb;
    pst_pbwire_buf_init(&eb);
    if (ctx) wrap(&eb, 1, ctx, ctx_len);
    pst_tensor *cser = pst_tensor_new_zeros(PST_STRING, pst_shape_scalar(), c->status);
    if (cser == NULL || eb.failed || pst_tstring_set(pst_tensor_str(cser), eb.data, eb.len) < 0) {
        pst_tensor_unref(cser);
        pst_pbwire_buf_destroy(&eb);
        return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    }
    pst_pbwire_buf_destroy(&eb);
    parse_spec p = {.single = 1, .ns = ncs, .nd = ncd};
    p.sparse_keys = key_list(c, 2, ncs);
    p.dense_keys = key_list(c, 2 + ncs, ncd);
    p.sparse_types = types_attr(c, "context_sparse_types", ncs);
    p.dense_types = types_attr(c, "Tcontext_dense", ncd);
    const pst_attr *cds = pst_kctx_attr(c, "context_dense_shapes");
    p.dense_shapes = ncd && cds && cds->n == ncd ? cds->list.shape : NULL;
    p.defaults = c->inputs + 2 + ncs + ncd + nfs + nfd;
    int rc = 0;
    if (!p.sparse_keys || !p.dense_keys || !p.sparse_types || !p.dense_types ||
        (ncd && !p.dense_shapes))
        rc = pst_kctx_error(c, PST_E_INVALID, "context keys, types or shapes do not match");
    else
        rc = parse_examples(c, cser, &p);
    free(p.sparse_keys), free(p.dense_keys);
    pst_tensor_unref(cser);
    if (rc < 0) return rc;
    /* Feature lists. */
    int base = 3 * ncs + ncd;
    const char **fkeys = key_list(c, 2 + ncs + ncd, nfs + nfd);
    const pst_dtype *fst = types_attr(c, "feature_list_sparse_types", nfs);
    const pst_dtype *fdt = types_attr(c, "feature_list_dense_types", nfd);
    const pst_attr *fds = pst_kctx_attr(c, "feature_list_dense_shapes");
    pst_example *ex = pst_example_new();
    if (!fkeys || !fst || !fdt || !ex || (nfd && !(fds && fds->n == nfd))) {
        free(fkeys);
        pst_example_free(ex);
        return pst_kctx_error(c, PST_E_INVALID, "feature list keys, types or shapes do not match");
    }
    for (int i = 0; i < nfs + nfd && rc == 0; i++) {
        int sparse = i < nfs;
        const char *key = fkeys[i];
        pst_dtype dt = sparse ? fst[i] : fdt[i - nfs];
        flist fl = {0};
        int found = fls ? find_flist(fls, fls_len, key, &fl) : 0;
        if (found < 0) {
            rc = pst_kctx_error(c, PST_E_DATA_LOSS, "feature list '%s' is malformed", key);
            break;
        }
        int64_t steps = found ? flist_steps(&fl, NULL, 0) : 0;
        flist *sp = calloc((size_t)steps + 1, sizeof *sp);
        if (sp == NULL || steps < 0) {
            free(sp);
            rc = pst_kctx_error(c, PST_E_DATA_LOSS, "feature list '%s' is malformed", key);
            break;
        }
        if (found) flist_steps(&fl, sp, steps);
        if (!sparse) { /* [steps] + shape */
            pst_shape ds = fds->list.shape[i - nfs];
            int64_t per = 1;
            for (int d = 0; d < ds.rank; d++) per *= ds.dims[d] < 0 ? 0 : ds.dims[d];
            int missing_ok = 0;
            for (int64_t a = 0; a < assumed->n && assumed->dtype == PST_STRING; a++)
                missing_ok |= pst_tensor_str(assumed)[a].p &&
                              strcmp(pst_tensor_str(assumed)[a].p, key) == 0;
            if (!found && !missing_ok) {
                rc = pst_kctx_error(c, PST_E_INVALID, "feature list '%s' is required but could "
                                    "not be found", key);
            } else if (ds.rank + 1 > PST_MAX_RANK) {
                rc = pst_kctx_error(c, PST_E_INVALID, "feature list '%s': rank too large", key);
            } else {
                pst_shape os = {.rank = ds.rank + 1};
                os.dims[0] = steps;
                memcpy(os.dims + 1, ds.dims, (size_t)ds.rank * sizeof *os.dims);
                pst_tensor *o = pst_kctx_alloc_output(c, base + nfs * 2 + i, dt, os);
                if (o == NULL) rc = c->status->code;
                else if (dt == PST_STRING) memset(o->data, 0, o->nbytes);
                for (int64_t t = 0; t < steps && rc == 0; t++) {
                    const pst_example_feature *ft;
                    if ((rc = parse_feature(ex, sp[t].data, sp[t].len, c->status)) < 0 ||
                        (rc = feature_of(ex, "f", dt, t, &ft, c->status)) < 0)
                        break;
                    if (ft == NULL || (int64_t)ft->count != per) {
                        rc = pst_kctx_error(c, PST_E_INVALID, "feature list '%s', step %lld: "
                                            "%lld values, the shape needs %lld", key, (long long)t,
                                            (long long)(ft ? (int64_t)ft->count : 0),
                                            (long long)per);
                        break;
                    }
                    rc = put_values(o, t * per, ft, 0, (size_t)per, c->status);
                }
            }
        } else { /* indices [N, 2] (step, j), values [N], shape [steps, longest] */
            int64_t total = 0, longest = 0;
            for (int64_t t = 0; t < steps && rc == 0; t++) {
                const pst_example_feature *ft;
                if ((rc = parse_feature(ex, sp[t].data, sp[t].len, c->status)) < 0 ||
                    (rc = feature_of(ex, "f", dt, t, &ft, c->status)) < 0)
                    break;
                int64_t k = ft ? (int64_t)ft->count : 0;
                total += k;
                if (k > longest) longest = k;
            }
            pst_tensor *ind = rc ? NULL : pst_kctx_alloc_output(c, base + i, PST_INT64,
                                                                 pst_shape_2d(total, 2));
            pst_tensor *val = rc ? NULL : pst_kctx_alloc_output(c, base + nfs + i, dt,
                                                                 pst_shape_1d(total));
            pst_tensor *shp = rc ? NULL : pst_kctx_alloc_output(c, base + 2 * nfs + i, PST_INT64,
                                                                 pst_shape_1d(2));
            if (rc == 0 && (!ind || !val || !shp)) rc = c->status->code;
            if (rc == 0 && dt == PST_STRING) memset(val->data, 0, val->nbytes);
            int64_t at = 0;
            for (int64_t t = 0; t < steps && rc == 0; t++) {
                const pst_example_feature *ft;
                parse_feature(ex, sp[t].data, sp[t].len, c->status);
                feature_of(ex, "f", dt, t, &ft, c->status);
                size_t k = ft ? ft->count : 0;
                for (size_t j = 0; j < k; j++) {
                    pst_tensor_i64(ind)[2 * (at + (int64_t)j)] = t;
                    pst_tensor_i64(ind)[2 * (at + (int64_t)j) + 1] = (int64_t)j;
                }
                if (k) rc = put_values(val, at, ft, 0, k, c->status);
                at += (int64_t)k;
            }
            if (rc == 0) pst_tensor_i64(shp)[0] = steps, pst_tensor_i64(shp)[1] = longest;
        }
        free(sp);
    }
    free(fkeys);
    pst_example_free(ex);
    return rc;
}

/* Checks a sequence-example node's counts, types and dense shapes (both ops share them). */
static int seq_check_attrs(pst_node *n, int counts[4], const pst_attr *t[4],
                           const pst_attr **cds, const pst_attr **fds, pst_status *st) {
    const char *names[4] = {"context_sparse_types", "Tcontext_dense", "feature_list_sparse_types",
                            "feature_list_dense_types"};
    const char *nums[4] = {"Ncontext_sparse", "Ncontext_dense", "Nfeature_list_sparse",
                           "Nfeature_list_dense"};
    for (int k = 0; k < 4; k++) {
        counts[k] = (int)pst_node_attr_i(n, nums[k], 0);
        t[k] = pst_node_attr(n, names[k]);
        if (counts[k] < 0 || (counts[k] && (t[k] == NULL || t[k]->kind != PST_ATTR_LIST_TYPE ||
                                            t[k]->n != counts[k])))
            return pst_status_set(st, PST_E_INVALID, "%s does not list %d types", names[k],
                                  counts[k]);
    }
    *cds = pst_node_attr(n, "context_dense_shapes");
    *fds = pst_node_attr(n, "feature_list_dense_shapes");
    if ((counts[1] && (!*cds || (*cds)->n != counts[1])) ||
        (counts[3] && (!*fds || (*fds)->n != counts[3])))
        return pst_status_set(st, PST_E_INVALID, "dense shapes do not match the dense counts");
    return 0;
}

/* ---- ParseSequenceExample (batched; tf.io.parse_sequence_example) -------------------------- */
/* Runs the single kernel above on each example and batches what it gives: sparse indices gain
 * the example's index as their first column and their dense shape the batch size; context
 * dense values stack; dense feature lists pad (zeros, empty strings) to the batch's longest
 * and report each example's length in feature_list_dense_lengths. */

/* A 1-D string tensor of a list-of-strings attr (empty when absent). */
static pst_tensor *attr_strings(pst_kernel_ctx *c, const char *name, int want, pst_status *st) {
    const pst_attr *a = pst_kctx_attr(c, name);
    int n = a && a->kind == PST_ATTR_LIST_STRING ? a->n : 0;
    if (want >= 0 && n != want) {
        pst_status_set(st, PST_E_INVALID, "%s lists %d keys, not %d", name, n, want);
        return NULL;
    }
    pst_tensor *t = pst_tensor_new_zeros(PST_STRING, pst_shape_1d(n), st);
    for (int i = 0; t && i < n; i++)
        if (pst_tstring_set(pst_tensor_str(t) + i, a->list.s[i], strlen(a->list.s[i])) < 0) {
            pst_tensor_unref(t);
            pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
            return NULL;
        }
    return t;
}

/* Output o of the batch from the examples' outputs at index k (of the single kernel): sparse
 * (indices with `cols` columns, values, shape) merged with the example index in front. */
static int batch_sparse(pst_kernel_ctx *c, pst_tensor **outs, int nout1, int64_t B, int k_ind,
                        int k_val, int k_shp, int cols, int o_ind, int o_val, int o_shp,
                        pst_dtype dt) {
    int64_t total = 0, dims[PST_MAX_RANK] = {0};
    for (int64_t b = 0; b < B; b++) {
        const pst_tensor *shp = outs[b * nout1 + k_shp];
        total += outs[b * nout1 + k_val]->n;
        for (int d = 0; d < cols; d++)
            if (pst_tensor_i64(shp)[d] > dims[d]) dims[d] = pst_tensor_i64(shp)[d];
    }
    pst_tensor *ind = pst_kctx_alloc_output(c, o_ind, PST_INT64, pst_shape_2d(total, cols + 1));
    pst_tensor *val = ind ? pst_tensor_new_zeros(dt, pst_shape_1d(total), c->status) : NULL;
    pst_tensor *shp =
        val ? pst_kctx_alloc_output(c, o_shp, PST_INT64, pst_shape_1d(cols + 1)) : NULL;
    if (val) pst_kctx_set_output(c, o_val, val);
    if (shp == NULL) return c->status->code;
    pst_tensor_i64(shp)[0] = B;
    for (int d = 0; d < cols; d++) pst_tensor_i64(shp)[d + 1] = dims[d];
    int64_t at = 0;
    for (int64_t b = 0; b < B; b++) {
        const pst_tensor *bi = outs[b * nout1 + k_ind], *bv = outs[b * nout1 + k_val];
        for (int64_t r = 0; r < bv->n; r++) {
            pst_tensor_i64(ind)[(at + r) * (cols + 1)] = b;
            for (int d = 0; d < cols; d++)
                pst_tensor_i64(ind)[(at + r) * (cols + 1) + 1 + d] =
                    pst_tensor_i64(bi)[r * cols + d];
        }
        if (bv->n && pst_tensor_copy_elems(val, at, bv, 0, bv->n, c->status) < 0)
            return c->status->code;
        at += bv->n;
    }
    return 0;
}

static int seq_batch_kernel(pst_kernel_ctx *c) {
    int ncs = (int)pst_kctx_attr_i(c, "Ncontext_sparse", 0);
    int ncd = (int)pst_kctx_attr_i(c, "Ncontext_dense", 0);
    int nfs = (int)pst_kctx_attr_i(c, "Nfeature_list_sparse", 0);
    int nfd = (int)pst_kctx_attr_i(c, "Nfeature_list_dense", 0);
    const pst_tensor *ser = c->inputs[0], *names = c->inputs[1];
    if (ser->dtype != PST_STRING || ser->shape.rank != 1)
        return pst_kctx_error(c, PST_E_INVALID, "serialized must be a vector of strings");
    if (c->n_inputs != 2 + ncd)
        return pst_kctx_error(c, PST_E_INVALID, "%d inputs, expected %d (serialized, debug_name "
                              "and %d context dense defaults)", c->n_inputs, 2 + ncd, ncd);
    int64_t B = ser->n;
    if (names->n != 0 && names->n != B)
        return pst_kctx_error(c, PST_E_INVALID, "debug_name has %lld names for %lld examples",
                              (long long)names->n, (long long)B);
    int nin = 3 + ncs + 2 * ncd + nfs + nfd, nout1 = 3 * ncs + ncd + 3 * nfs + nfd;
    pst_tensor **in = calloc((size_t)nin, sizeof *in);
    pst_tensor **outs = calloc((size_t)(B * nout1) + 1, sizeof *outs);
    int rc = in && outs ? 0 : pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    /* The single kernel's inputs: serialized, missing-assumed-empty keys, the four key lists,
     * context dense defaults, debug name. Only the defaults are borrowed. */
    const char *lists[4] = {"context_sparse_keys", "context_dense_keys",
                            "feature_list_sparse_keys", "feature_list_dense_keys"};
    int counts[4] = {ncs, ncd, nfs, nfd}, at = 2;
    if (rc == 0 && (in[1] = attr_strings(c, "feature_list_dense_missing_assumed_empty", -1,
                                         c->status)) == NULL)
        rc = c->status->code;
    for (int l = 0; l < 4 && rc == 0; l++) {
        pst_tensor *keys = attr_strings(c, lists[l], counts[l], c->status);
        if (keys == NULL) rc = pst_kctx_error(c, c->status->code, "%s", c->status->msg);
        for (int i = 0; i < counts[l] && rc == 0; i++) {
            const pst_tstring *k = pst_tensor_str(keys) + i;
            if ((in[at] = pst_tensor_scalar_str(k->len ? k->p : "")) == NULL)
                rc = pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
            at++;
        }
        pst_tensor_unref(keys);
    }
    for (int i = 0; i < ncd && rc == 0; i++) in[at + i] = c->inputs[2 + i];
    for (int64_t b = 0; b < B && rc == 0; b++) {
        const pst_tstring *sv = pst_tensor_str(ser) + b;
        pst_tensor_unref(in[0]), pst_tensor_unref(in[nin - 1]);
        in[0] = pst_tensor_new_zeros(PST_STRING, pst_shape_scalar(), c->status);
        in[nin - 1] = pst_tensor_scalar_str(names->n ? (pst_tensor_str(names)[b].len
                                                            ? pst_tensor_str(names)[b].p : "")
                                                     : "");
        if (!in[0] || !in[nin - 1] || pst_tstring_set(pst_tensor_str(in[0]), sv->p, sv->len) < 0) {
            rc = pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
            break;
        }
        pst_kernel_ctx sub = *c;
        sub.inputs = in;
        sub.n_inputs = nin;
        sub.outputs = outs + b * nout1;
        sub.n_outputs = nout1;
        if ((rc = seq_kernel(&sub)) < 0)
            pst_status_prefix(c->status, "example %lld%s%s: ", (long long)b,
                              names->n ? " " : "", names->n ? pst_tensor_str(in[nin - 1])->p : "");
    }
    /* Batch the outputs. */
    for (int i = 0; i < ncs && rc == 0; i++)
        rc = batch_sparse(c, outs, nout1, B, i, ncs + i, 2 * ncs + i, 1, i, ncs + i, 2 * ncs + i,
                          c->out_dtypes[ncs + i]);
    const pst_attr *cds = pst_kctx_attr(c, "context_dense_shapes");
    for (int i = 0; i < ncd && rc == 0; i++) {
        pst_shape ds = B > 0 ? outs[3 * ncs + i]->shape : cds->list.shape[i];
        pst_shape os = {.rank = ds.rank + 1};
        os.dims[0] = B;
        memcpy(os.dims + 1, ds.dims, (size_t)ds.rank * sizeof *os.dims);
        for (int64_t b = 1; b < B && rc == 0; b++)
            if (!pst_shape_equal(&outs[b * nout1 + 3 * ncs + i]->shape, &ds))
                rc = pst_kctx_error(c, PST_E_INVALID, "context dense feature %d has another "
                                    "shape in example %lld", i, (long long)b);
        if (rc < 0) break;
        pst_tensor *o = pst_tensor_new_zeros(c->out_dtypes[3 * ncs + i], os, c->status);
        if (o == NULL) {
            rc = c->status->code;
            break;
        }
        pst_kctx_set_output(c, 3 * ncs + i, o);
        int64_t per = B ? o->n / B : 0;
        for (int64_t b = 0; b < B && rc == 0; b++)
            rc =
                pst_tensor_copy_elems(o, b * per, outs[b * nout1 + 3 * ncs + i], 0, per, c->status);
    }
    int base = 3 * ncs + ncd;
    for (int i = 0; i < nfs && rc == 0; i++)
        rc = batch_sparse(c, outs, nout1, B, base + i, base + nfs + i, base + 2 * nfs + i, 2,
                          base + i, base + nfs + i, base + 2 * nfs + i,
                          c->out_dtypes[base + nfs + i]);
    base += 3 * nfs;
    const pst_attr *fds = pst_kctx_attr(c, "feature_list_dense_shapes");
    for (int i = 0; i < nfd && rc == 0; i++) {
        int64_t longest = 0;
        for (int64_t b = 0; b < B; b++)
            if (outs[b * nout1 + base + i]->shape.dims[0] > longest)
                longest = outs[b * nout1 + base + i]->shape.dims[0];
        pst_shape ds = fds->list.shape[i], os = {.rank = ds.rank + 2};
        os.dims[0] = B;
        os.dims[1] = longest;
        memcpy(os.dims + 2, ds.dims, (size_t)ds.rank * sizeof *os.dims);
        pst_tensor *o = pst_tensor_new_zeros(c->out_dtypes[base + i], os, c->status);
        pst_tensor *len = o ? pst_kctx_alloc_output(c, base + nfd + i, PST_INT64, pst_shape_1d(B))
                            : NULL;
        if (o) pst_kctx_set_output(c, base + i, o);
        if (len == NULL) {
            rc = c->status->code;
            break;
        }
        int64_t per_step = B && longest ? o->n / (B * longest) : 0;
        for (int64_t b = 0; b < B && rc == 0; b++) {
            const pst_tensor *x = outs[b * nout1 + base + i];
            pst_tensor_i64(len)[b] = x->shape.dims[0];
            if (x->n) rc = pst_tensor_copy_elems(o, b * longest * per_step, x, 0, x->n, c->status);
        }
    }
    if (in)
        for (int k = 0; k < nin; k++)
            if (k < 2 + ncs + ncd + nfs + nfd || k == nin - 1) pst_tensor_unref(in[k]);
    for (int64_t k = 0; outs && k < B * nout1; k++) pst_tensor_unref(outs[k]);
    free(in), free(outs);
    return rc;
}

static int seq_batch_shape(pst_node *n, pst_status *st) {
    int counts[4];
    const pst_attr *t[4], *cds, *fds;
    if (seq_check_attrs(n, counts, t, &cds, &fds, st) < 0) return st->code;
    int ncs = counts[0], ncd = counts[1], nfs = counts[2], nfd = counts[3];
    if (n->n_inputs != 2 + ncd)
        return pst_status_set(st, PST_E_INVALID, "%d inputs, expected %d", n->n_inputs, 2 + ncd);
    pst_node_set_num_outputs(n, 3 * ncs + ncd + 3 * nfs + 2 * nfd);
    int o = 0;
    for (int i = 0; i < ncs; i++) {
        pst_node_set_output(n, o + i, PST_INT64, pst_shape_2d(-1, 2));
        pst_node_set_output(n, o + ncs + i, t[0]->list.type[i], pst_shape_1d(-1));
        pst_node_set_output(n, o + 2 * ncs + i, PST_INT64, pst_shape_1d(2));
    }
    o += 3 * ncs;
    for (int i = 0; i < ncd; i++)
        pst_node_set_output(n, o + i, t[1]->list.type[i],
                            pst_shape_prepend(cds->list.shape[i], -1));
    o += ncd;
    for (int i = 0; i < nfs; i++) {
        pst_node_set_output(n, o + i, PST_INT64, pst_shape_2d(-1, 3));
        pst_node_set_output(n, o + nfs + i, t[2]->list.type[i], pst_shape_1d(-1));
        pst_node_set_output(n, o + 2 * nfs + i, PST_INT64, pst_shape_1d(3));
    }
    o += 3 * nfs;
    for (int i = 0; i < nfd; i++) {
        pst_shape s = fds->list.shape[i];
        if (s.rank >= 0 && s.rank + 2 <= PST_MAX_RANK) {
            memmove(s.dims + 2, s.dims, (size_t)s.rank * sizeof *s.dims);
            s.dims[0] = s.dims[1] = -1;
            s.rank += 2;
        } else {
            s = pst_shape_unknown();
        }
        pst_node_set_output(n, o + i, t[3]->list.type[i], s);
        pst_node_set_output(n, o + nfd + i, PST_INT64, pst_shape_1d(-1));
    }
    return 0;
}

static int seq_shape(pst_node *n, pst_status *st) {
    int counts[4];
    const pst_attr *t[4], *cds, *fds;
    if (seq_check_attrs(n, counts, t, &cds, &fds, st) < 0) return st->code;
    int ncs = counts[0], ncd = counts[1], nfs = counts[2], nfd = counts[3];
    pst_node_set_num_outputs(n, 3 * ncs + ncd + 3 * nfs + nfd);
    int o = 0;
    for (int i = 0; i < ncs; i++) {
        pst_node_set_output(n, o + i, PST_INT64, pst_shape_2d(-1, 1));
        pst_node_set_output(n, o + ncs + i, t[0]->list.type[i], pst_shape_1d(-1));
        pst_node_set_output(n, o + 2 * ncs + i, PST_INT64, pst_shape_1d(1));
    }
    o += 3 * ncs;
    for (int i = 0; i < ncd; i++) pst_node_set_output(n, o + i, t[1]->list.type[i], cds->list.shape[i]);
    o += ncd;
    for (int i = 0; i < nfs; i++) {
        pst_node_set_output(n, o + i, PST_INT64, pst_shape_2d(-1, 2));
        pst_node_set_output(n, o + nfs + i, t[2]->list.type[i], pst_shape_1d(-1));
        pst_node_set_output(n, o + 2 * nfs + i, PST_INT64, pst_shape_1d(2));
    }
    o += 3 * nfs;
    for (int i = 0; i < nfd; i++) {
        pst_node_set_output(n, o + i, t[3]->list.type[i], pst_shape_prepend(fds->list.shape[i], -1));
    }
    return 0;
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
        pst_node_set_output(n, 3 * ns + i, td->list.type[i], single ? s : pst_shape_prepend(s, B));
    }
    return 0;
}

/* ---- DecodeCSV(records, record_defaults...) -> one tensor per column --------------------- */

/* Splits one record into fields (quotes: "a,b" is one field, "" inside quotes is a quote).
 * Fields are written NUL-terminated into buf; starts[i] indexes them. Returns the count or -1
 * for a malformed quoted field. */
static int csv_split(const char *rec, size_t len, char delim, int quotes, char *buf,
                     size_t *starts, int max) {
    int n = 0;
    size_t i = 0, o = 0;
    for (;;) {
        if (n == max) return max + 1; /* too many */
        starts[n++] = o;
        if (quotes && i < len && rec[i] == '"') {
            for (i++;; i++) {
                if (i >= len) return -1;
                if (rec[i] == '"') {
                    if (i + 1 < len && rec[i + 1] == '"') buf[o++] = '"', i++;
                    else break;
                } else {
                    buf[o++] = rec[i];
                }
            }
            i++;
            if (i < len && rec[i] != delim) return -1;
        } else {
            while (i < len && rec[i] != delim) buf[o++] = rec[i++];
        }
        buf[o++] = '\0';
        if (i >= len) return n;
        i++; /* the delimiter */
    }
}

static int decode_csv_kernel(pst_kernel_ctx *c) {
    const pst_tensor *recs = c->inputs[0];
    int ncol = c->n_inputs - 1;
    const char *delim_s = pst_kctx_attr_s(c, "field_delim", ",");
    char delim = delim_s[0] ? delim_s[0] : ',';
    int quotes = pst_kctx_attr_b(c, "use_quote_delim", 1);
    const char *na = pst_kctx_attr_s(c, "na_value", "");
    const pst_attr *sel = pst_kctx_attr(c, "select_cols");
    int nsel = sel && sel->kind == PST_ATTR_LIST_INT ? sel->n : 0;
    if (nsel && nsel != ncol)
        return pst_kctx_error(c, PST_E_INVALID, "select_cols has %d columns, record_defaults %d",
                              nsel, ncol);
    for (int j = 0; j < ncol; j++) {
        if (c->inputs[1 + j]->n > 1)
            return pst_kctx_error(c, PST_E_INVALID, "record_defaults[%d] has more than one "
                                  "element", j);
        if (pst_kctx_alloc_output(c, j, c->out_dtypes[j], recs->shape) == NULL)
            return c->status->code;
        if (c->out_dtypes[j] == PST_STRING) memset(c->outputs[j]->data, 0, c->outputs[j]->nbytes);
    }
    int maxf = (nsel ? (int)sel->list.i[nsel - 1] + 1 : ncol) + 64;
    size_t *starts = malloc((size_t)maxf * sizeof *starts + 1);
    char *buf = NULL;
    int rc = starts ? 0 : pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    for (int64_t r = 0; r < recs->n && rc == 0; r++) {
        const pst_tstring *s = &pst_tensor_str(recs)[r];
        char *nb = realloc(buf, 2 * s->len + 2);
        if (nb == NULL) {
            rc = pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
            break;
        }
        buf = nb;
        int nf = csv_split(s->p ? s->p : "", s->len, delim, quotes, buf, starts, maxf);
        if (nf < 0) {
            rc = pst_kctx_error(c, PST_E_INVALID, "record %lld: a quoted field is not closed "
                                "properly", (long long)r);
            break;
        }
        if (!nsel && nf != ncol) {
            rc = pst_kctx_error(c, PST_E_INVALID, "expect %d fields but have %d in record %lld",
                                ncol, nf > maxf ? maxf : nf, (long long)r);
            break;
        }
        for (int j = 0; j < ncol && rc == 0; j++) {
            int col = nsel ? (int)sel->list.i[j] : j;
            if (col >= nf) {
                rc = pst_kctx_error(c, PST_E_INVALID, "record %lld has %d fields; column %d is "
                                    "selected", (long long)r, nf, col);
                break;
            }
            const char *f = buf + starts[col];
            pst_tensor *o = c->outputs[j];
            const pst_tensor *d = c->inputs[1 + j];
            if (f[0] == '\0' || (na[0] && strcmp(f, na) == 0)) {
                if (d->n == 0) {
                    rc = pst_kctx_error(c, PST_E_INVALID, "field %d is required but missing in "
                                        "record %lld", j, (long long)r);
                    break;
                }
                rc = pst_tensor_copy_elems(o, r, d, 0, 1, c->status);
                continue;
            }
            char *end = NULL;
            errno = 0;
            switch (o->dtype) {
            case PST_STRING:
                if (pst_tstring_set(&pst_tensor_str(o)[r], f, strlen(f)) < 0)
                    rc = pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
                continue;
            case PST_FLOAT:
            case PST_DOUBLE: {
                double v = strtod(f, &end);
                if (*end == '\0') pst_tensor_set_f64(o, r, v);
                break;
            }
            default: {
                long long v = strtoll(f, &end, 10);
                if (*end == '\0' && errno == 0 &&
                    (o->dtype != PST_INT32 || (v >= INT32_MIN && v <= INT32_MAX)))
                    pst_tensor_set_f64(o, r, (double)v);
                else
                    end = NULL;
            }
            }
            if (end == NULL || *end != '\0')
                rc = pst_kctx_error(c, PST_E_INVALID, "field %d in record %lld is not a valid "
                                    "%s: '%s'", j, (long long)r, pst_dtype_name(o->dtype), f);
        }
    }
    free(starts);
    free(buf);
    return rc;
}

static int decode_csv_shape(pst_node *n, pst_status *st) {
    if (pst_node_in_dtype(n, 0) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "input 0 (records) is not a string tensor");
    pst_node_set_num_outputs(n, n->n_inputs - 1);
    for (int j = 1; j < n->n_inputs; j++) {
        pst_dtype dt = pst_node_in_dtype(n, j);
        if (dt != PST_FLOAT && dt != PST_DOUBLE && dt != PST_INT32 && dt != PST_INT64 &&
            dt != PST_STRING)
            return pst_status_set(st, PST_E_INVALID, "record_defaults[%d] has type %s", j - 1,
                                  pst_dtype_name(dt));
        pst_node_set_output(n, j - 1, dt, pst_node_in_shape(n, 0));
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
    pst_shape s = n->n_inputs > 2 ? pst_shape_1d(-1) : pst_shape_scalar();
    pst_node_set_output(n, 0, PST_STRING, s);
    pst_node_set_output(n, 1, PST_STRING, s);
    return 0;
}

static int string_scalar_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_STRING, pst_shape_scalar());
    return 0;
}

static const pst_attr_spec reader_attrs[] = {
    {"container", PST_ATTR_STRING, 0},  {"shared_name", PST_ATTR_STRING, 0},
    {"compression_type", PST_ATTR_STRING, 0}, {"encoding", PST_ATTR_STRING, 0},
    {"header_bytes", PST_ATTR_INT, 0},  {"record_bytes", PST_ATTR_INT, 0},
    {"footer_bytes", PST_ATTR_INT, 0},  {"hop_bytes", PST_ATTR_INT, 0},
    {"skip_header_lines", PST_ATTR_INT, 0}, {0}};
static const pst_attr_spec parse_attrs[] = {
    {"Nsparse", PST_ATTR_INT, 0},          {"Ndense", PST_ATTR_INT, 0},
    {"num_sparse", PST_ATTR_INT, 0},       {"sparse_keys", PST_ATTR_LIST_STRING, 0},
    {"dense_keys", PST_ATTR_LIST_STRING, 0}, {"sparse_types", PST_ATTR_LIST_TYPE, 0},
    {"Tdense", PST_ATTR_LIST_TYPE, 0},     {"dense_shapes", PST_ATTR_LIST_SHAPE, 0},
    {0}};
static const pst_attr_spec csv_attrs[] = {
    {"OUT_TYPE", PST_ATTR_LIST_TYPE, 0}, {"field_delim", PST_ATTR_STRING, 0},
    {"use_quote_delim", PST_ATTR_BOOL, 0}, {"na_value", PST_ATTR_STRING, 0},
    {"select_cols", PST_ATTR_LIST_INT, 0}, {0}};
static const pst_attr_spec seq_attrs[] = {
    {"Ncontext_sparse", PST_ATTR_INT, 0},     {"Ncontext_dense", PST_ATTR_INT, 0},
    {"Nfeature_list_sparse", PST_ATTR_INT, 0}, {"Nfeature_list_dense", PST_ATTR_INT, 0},
    {"context_sparse_types", PST_ATTR_LIST_TYPE, 0}, {"Tcontext_dense", PST_ATTR_LIST_TYPE, 0},
    {"feature_list_sparse_types", PST_ATTR_LIST_TYPE, 0},
    {"feature_list_dense_types", PST_ATTR_LIST_TYPE, 0},
    {"context_dense_shapes", PST_ATTR_LIST_SHAPE, 0},
    {"feature_list_dense_shapes", PST_ATTR_LIST_SHAPE, 0}, {0}};
static const pst_attr_spec seq_batch_attrs[] = {
    {"Ncontext_sparse", PST_ATTR_INT, 0},
    {"Ncontext_dense", PST_ATTR_INT, 0},
    {"Nfeature_list_sparse", PST_ATTR_INT, 0},
    {"Nfeature_list_dense", PST_ATTR_INT, 0},
    {"context_sparse_types", PST_ATTR_LIST_TYPE, 0},
    {"Tcontext_dense", PST_ATTR_LIST_TYPE, 0},
    {"feature_list_sparse_types", PST_ATTR_LIST_TYPE, 0},
    {"feature_list_dense_types", PST_ATTR_LIST_TYPE, 0},
    {"context_dense_shapes", PST_ATTR_LIST_SHAPE, 0},
    {"feature_list_dense_shapes", PST_ATTR_LIST_SHAPE, 0},
    {"context_sparse_keys", PST_ATTR_LIST_STRING, 0},
    {"context_dense_keys", PST_ATTR_LIST_STRING, 0},
    {"feature_list_sparse_keys", PST_ATTR_LIST_STRING, 0},
    {"feature_list_dense_keys", PST_ATTR_LIST_STRING, 0},
    {"feature_list_dense_missing_assumed_empty", PST_ATTR_LIST_STRING, 0},
    {0}};
static const pst_attr_spec image_attrs[] = {{"max_images", PST_ATTR_INT, 0},
                                            {"T", PST_ATTR_TYPE, 0},
                                            {"bad_color", PST_ATTR_TENSOR, 0},
                                            {0}};

#define IOF (PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS)
#define READER(nm) {.name = nm, .n_outputs = 1, .attrs = reader_attrs, \
                    .shape = pst_ops_resource_shape, .kernel = reader_kernel, .flags = IOF}
static const pst_op_def io_ops[] = {
    READER("TFRecordReaderV2"), READER("TFRecordReader"), READER("FixedLengthRecordReaderV2"),
    READER("FixedLengthRecordReader"), READER("TextLineReaderV2"), READER("TextLineReader"),
    READER("WholeFileReaderV2"), READER("WholeFileReader"),
    {.name = "ReaderReadV2", .min_inputs = 2, .max_inputs = 2, .n_outputs = 2,
     .shape = read_shape, .kernel = reader_read_kernel, .flags = IOF},
    {.name = "ReaderRead", .min_inputs = 2, .max_inputs = 2, .n_outputs = 2,
     .shape = read_shape, .kernel = reader_read_kernel, .flags = IOF},
    {.name = "ReaderReadUpToV2", .min_inputs = 3, .max_inputs = 3, .n_outputs = 2,
     .shape = read_shape, .kernel = reader_read_kernel, .flags = IOF},
    {.name = "ReaderReadUpTo", .min_inputs = 3, .max_inputs = 3, .n_outputs = 2,
     .shape = read_shape, .kernel = reader_read_kernel, .flags = IOF},
    {.name = "ParseExample", .min_inputs = 2, .max_inputs = -1, .n_outputs = -1,
     .attrs = parse_attrs, .shape = parse_shape, .kernel = parse_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "ParseSingleExample", .min_inputs = 1, .max_inputs = -1, .n_outputs = -1,
     .attrs = parse_attrs, .shape = parse_shape, .kernel = parse_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "MatchingFiles", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .shape = matching_files_shape, .kernel = matching_files_kernel, .flags = IOF},
    {.name = "ParseSingleSequenceExample", .min_inputs = 3, .max_inputs = -1, .n_outputs = -1,
     .attrs = seq_attrs, .shape = seq_shape, .kernel = seq_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "ParseSequenceExample", .min_inputs = 2, .max_inputs = -1, .n_outputs = -1,
     .attrs = seq_batch_attrs, .shape = seq_batch_shape, .kernel = seq_batch_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "DecodeCSV", .min_inputs = 2, .max_inputs = -1, .n_outputs = -1,
     .attrs = csv_attrs, .shape = decode_csv_shape, .kernel = decode_csv_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "ImageSummary", .min_inputs = 2, .max_inputs = 2, .n_outputs = 1,
     .attrs = image_attrs, .shape = string_scalar_shape, .kernel = image_summary_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
};

static pthread_once_t once = PTHREAD_ONCE_INIT;

void pst__register_tensor_proto_ops(void); /* tensor_proto_ops.c */

static void register_io_ops(void) {
    pst_ops_init();
    for (size_t i = 0; i < sizeof io_ops / sizeof io_ops[0]; i++) pst_op_register(&io_ops[i]);
    pst__register_image_ops();
    pst__register_tf_data_ops();
    pst__register_tensor_proto_ops();
}

void pst_io_ops_init(void) { pthread_once(&once, register_io_ops); }
