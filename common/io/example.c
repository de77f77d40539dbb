/* example: tf.train.Example by hand on the protobuf wire format (see example.h).
 *
 * Messages (field numbers from TensorFlow's example.proto and feature.proto):
 *   Example { Features features = 1; }
 *   Features { map<string, Feature> feature = 1; }   // entries: key = 1, value = 2
 *   Feature { oneof { BytesList bytes_list = 1; FloatList float_list = 2;
 *                     Int64List int64_list = 3; } }
 *   BytesList { repeated bytes value = 1; }  FloatList { repeated float value = 1 [packed]; }
 *   Int64List { repeated int64 value = 1 [packed]; }
 */
#include "example.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One feature's storage. The public view points into the arrays below; slots are kept across
 * pst_example_clear so parsing many records reuses the same memory. */
typedef struct feat {
    pst_example_feature view;
    char *name;
    size_t name_cap;
    float *f;
    size_t f_cap;
    int64_t *i;
    size_t i_cap;
    pst_example_bytes *b;
    size_t b_cap;
    size_t *b_off; /* offsets of bytes values in bd while bd may still move */
    size_t b_off_cap;
    uint8_t *bd; /* bytes values, back to back */
    size_t bd_len, bd_cap;
} feat;

struct pst_example {
    feat *feats;
    int n, cap;
};

static const char *const kind_names[] = {"no list", "bytes_list", "float_list", "int64_list"};

const char *pst_example_kind_name(pst_example_kind k) {
    return (unsigned)k < PST_EXAMPLE_KIND_COUNT ? kind_names[k] : "invalid";
}

/* Grows the array whose pointer is at pp (elements of size elem) to hold at least need; 0 or -1
 * (the array unchanged). pp is the address of any object pointer, copied as bytes. */
static int grow(void *pp, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return 0;
    void *p;
    memcpy(&p, pp, sizeof p);
    size_t c = *cap ? *cap : 8;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return -1;
        c *= 2;
    }
    if (c > SIZE_MAX / elem)
        return -1;
    void *q = realloc(p, c * elem);
    if (q == NULL)
        return -1;
    memcpy(pp, &q, sizeof q);
    *cap = c;
    return 0;
}

pst_example *pst_example_new(void) {
    return calloc(1, sizeof(pst_example));
}

void pst_example_free(pst_example *ex) {
    if (ex == NULL)
        return;
    for (int k = 0; k < ex->cap; k++) {
        feat *f = &ex->feats[k];
        free(f->name);
        free(f->f);
        free(f->i);
        free(f->b);
        free(f->b_off);
        free(f->bd);
    }
    free(ex->feats);
    free(ex);
}

void pst_example_clear(pst_example *ex) {
    ex->n = 0;
}

int pst_example_num_features(const pst_example *ex) {
    return ex->n;
}

const pst_example_feature *pst_example_feature_at(const pst_example *ex, int i) {
    PST_ASSERT(i >= 0 && i < ex->n);
    return &ex->feats[i].view;
}

static int find_index(const pst_example *ex, const char *name, int limit) {
    for (int k = 0; k < limit; k++)
        if (strcmp(ex->feats[k].name, name) == 0)
            return k;
    return -1;
}

const pst_example_feature *pst_example_find(const pst_example *ex, const char *name) {
    int k = find_index(ex, name, ex->n);
    return k < 0 ? NULL : &ex->feats[k].view;
}

/* The slot after the last feature, emptied (its memory kept). NULL when out of memory. */
static feat *next_slot(pst_example *ex) {
    if (ex->n == ex->cap) {
        int c = ex->cap ? ex->cap * 2 : 4;
        feat *q = realloc(ex->feats, (size_t)c * sizeof *q);
        if (q == NULL)
            return NULL;
        memset(q + ex->cap, 0, (size_t)(c - ex->cap) * sizeof *q);
        ex->feats = q;
        ex->cap = c;
    }
    feat *f = &ex->feats[ex->n];
    memset(&f->view, 0, sizeof f->view);
    f->bd_len = 0;
    return f;
}

static int set_name(feat *f, const char *name, size_t len) {
    if (grow(&f->name, &f->name_cap, len + 1, 1) < 0)
        return -1;
    memcpy(f->name, name, len);
    f->name[len] = '\0';
    f->view.name = f->name;
    return 0;
}

/* Points the view's arrays at the slot's storage (after the storage stopped moving). */
static void finish_view(feat *f) {
    f->view.bytes = NULL;
    f->view.floats = NULL;
    f->view.int64s = NULL;
    if (f->view.kind == PST_EXAMPLE_BYTES) {
        /* bd is still NULL when every value is empty. */
        for (size_t k = 0; k < f->view.count; k++)
            f->b[k].data = f->bd ? f->bd + f->b_off[k] : (const uint8_t *)"";
        f->view.bytes = f->b;
    } else if (f->view.kind == PST_EXAMPLE_FLOAT) {
        f->view.floats = f->f;
    } else if (f->view.kind == PST_EXAMPLE_INT64) {
        f->view.int64s = f->i;
    }
}

/* Makes the slot at ex->n a feature: an earlier feature of the same name takes its contents
 * (the last value of a name wins, in the first one's place); otherwise n grows. */
static void commit_slot(pst_example *ex) {
    feat *f = &ex->feats[ex->n];
    finish_view(f);
    int k = find_index(ex, f->name, ex->n);
    if (k < 0) {
        ex->n++;
        return;
    }
    feat tmp = ex->feats[k];
    ex->feats[k] = *f;
    *f = tmp;
}

static int append_bytes(feat *f, const uint8_t *p, size_t n) {
    size_t c = f->view.count;
    if (grow(&f->b, &f->b_cap, c + 1, sizeof *f->b) < 0 ||
        grow(&f->b_off, &f->b_off_cap, c + 1, sizeof *f->b_off) < 0)
        return -1;
    if (n > SIZE_MAX - f->bd_len || grow(&f->bd, &f->bd_cap, f->bd_len + n, 1) < 0)
        return -1;
    if (n)
        memcpy(f->bd + f->bd_len, p, n);
    f->b_off[c] = f->bd_len;
    f->b[c].len = n;
    f->b[c].data = NULL;
    f->bd_len += n;
    f->view.count = c + 1;
    return 0;
}

static int add_common(pst_example *ex, const char *name, pst_example_kind kind, feat **out,
                      pst_status *st) {
    feat *f = next_slot(ex);
    if (f == NULL || set_name(f, name, strlen(name)) < 0)
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory adding feature \"%s\"", name);
    f->view.kind = kind;
    *out = f;
    return 0;
}

int pst_example_add_bytes(pst_example *ex, const char *name, const pst_example_bytes *values,
                          size_t n, pst_status *st) {
    feat *f = NULL;
    if (add_common(ex, name, PST_EXAMPLE_BYTES, &f, st) < 0)
        return PST_E_EXHAUSTED;
    for (size_t k = 0; k < n; k++)
        if (append_bytes(f, values[k].data, values[k].len) < 0)
            return pst_status_set(st, PST_E_EXHAUSTED, "out of memory adding feature \"%s\"", name);
    commit_slot(ex);
    return 0;
}

int pst_example_add_floats(pst_example *ex, const char *name, const float *values, size_t n,
                           pst_status *st) {
    feat *f = NULL;
    if (add_common(ex, name, PST_EXAMPLE_FLOAT, &f, st) < 0)
        return PST_E_EXHAUSTED;
    if (grow(&f->f, &f->f_cap, n, sizeof *f->f) < 0)
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory adding feature \"%s\"", name);
    if (n)
        memcpy(f->f, values, n * sizeof *values);
    f->view.count = n;
    commit_slot(ex);
    return 0;
}

int pst_example_add_int64s(pst_example *ex, const char *name, const int64_t *values, size_t n,
                           pst_status *st) {
    feat *f = NULL;
    if (add_common(ex, name, PST_EXAMPLE_INT64, &f, st) < 0)
        return PST_E_EXHAUSTED;
    if (grow(&f->i, &f->i_cap, n, sizeof *f->i) < 0)
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory adding feature \"%s\"", name);
    if (n)
        memcpy(f->i, values, n * sizeof *values);
    f->view.count = n;
    commit_slot(ex);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

int pst_example_encode(const pst_example *ex, pst_pbwire_buf *out, pst_status *st) {
    size_t m_ex = pst_pbwire_begin(out, 1); /* Example.features */
    for (int k = 0; k < ex->n; k++) {
        const pst_example_feature *f = &ex->feats[k].view;
        size_t m_entry = pst_pbwire_begin(out, 1); /* Features.feature map entry */
        pst_pbwire_put_string(out, 1, f->name);
        size_t m_feat = pst_pbwire_begin(out, 2); /* entry value: Feature */
        if (f->kind != PST_EXAMPLE_NONE) {
            size_t m_list = pst_pbwire_begin(out, (uint32_t)f->kind);
            if (f->kind == PST_EXAMPLE_BYTES) {
                for (size_t j = 0; j < f->count; j++)
                    pst_pbwire_put_bytes(out, 1, f->bytes[j].data, f->bytes[j].len);
            } else if (f->count > 0 && f->kind == PST_EXAMPLE_FLOAT) {
                if (f->count > SIZE_MAX / 4)
                    goto oom;
                pst_pbwire_put_tag(out, 1, PST_PBWIRE_LEN);
                pst_pbwire_put_rawvarint(out, 4 * (uint64_t)f->count);
                if (pst_pbwire_reserve(out, 4 * f->count) < 0)
                    goto oom;
                for (size_t j = 0; j < f->count; j++) {
                    uint32_t bits;
                    memcpy(&bits, &f->floats[j], 4);
                    uint8_t *p = out->data + out->len + 4 * j;
                    p[0] = (uint8_t)bits;
                    p[1] = (uint8_t)(bits >> 8);
                    p[2] = (uint8_t)(bits >> 16);
                    p[3] = (uint8_t)(bits >> 24);
                }
                out->len += 4 * f->count;
            } else if (f->count > 0 && f->kind == PST_EXAMPLE_INT64) {
                size_t m_vals = pst_pbwire_begin(out, 1);
                for (size_t j = 0; j < f->count; j++)
                    pst_pbwire_put_rawvarint(out, (uint64_t)f->int64s[j]);
                pst_pbwire_end(out, m_vals);
            }
            pst_pbwire_end(out, m_list);
        }
        pst_pbwire_end(out, m_feat);
        pst_pbwire_end(out, m_entry);
    }
    pst_pbwire_end(out, m_ex);
    if (!out->failed)
        return 0;
oom:
    return pst_status_set(st, PST_E_EXHAUSTED, "out of memory encoding an Example");
}

/* ------------------------------------------------------------------------------------------ */

static int bad(pst_status *st, const char *name, const char *what) {
    if (name)
        return pst_status_set(st, PST_E_DATA_LOSS, "feature \"%s\": %s", name, what);
    return pst_status_set(st, PST_E_DATA_LOSS, "not a valid tf.train.Example: %s", what);
}

static int oom(pst_status *st, const char *name) {
    return pst_status_set(st, PST_E_EXHAUSTED, "out of memory parsing feature \"%s\"", name);
}

/* Merges one list message (field `kind` of a Feature) into f. */
static int parse_list(feat *f, pst_example_kind kind, const uint8_t *p, const uint8_t *end,
                      pst_status *st) {
    const char *name = f->name;
    pst_pbwire_field fl;
    int r;
    while ((r = pst_pbwire_next(&p, end, &fl)) == 1) {
        if (fl.number != 1)
            continue; /* unknown field: skipped, as protobuf does */
        size_t c = f->view.count;
        if (kind == PST_EXAMPLE_BYTES) {
            if (fl.wire_type != PST_PBWIRE_LEN)
                return bad(st, name, "a bytes_list value is not length-delimited");
            if (append_bytes(f, fl.data, fl.len) < 0)
                return oom(st, name);
        } else if (kind == PST_EXAMPLE_FLOAT) {
            if (fl.wire_type == PST_PBWIRE_FIXED32) { /* unpacked */
                if (grow(&f->f, &f->f_cap, c + 1, sizeof *f->f) < 0)
                    return oom(st, name);
                f->f[c] = pst_pbwire_float_of((uint32_t)fl.v);
                f->view.count = c + 1;
            } else if (fl.wire_type == PST_PBWIRE_LEN) { /* packed */
                if (fl.len % 4 != 0) {
                    char what[96];
                    snprintf(what, sizeof what,
                             "a packed float_list of %zu bytes (not a multiple of 4)", fl.len);
                    return bad(st, name, what);
                }
                size_t k = fl.len / 4;
                if (grow(&f->f, &f->f_cap, c + k, sizeof *f->f) < 0)
                    return oom(st, name);
                for (size_t j = 0; j < k; j++)
                    f->f[c + j] = pst_pbwire_float_of(pst_pbwire_le32(fl.data + 4 * j));
                f->view.count = c + k;
            } else {
                return bad(st, name, "a float_list value has the wrong wire type");
            }
        } else {
            if (fl.wire_type == PST_PBWIRE_VARINT) { /* unpacked */
                if (grow(&f->i, &f->i_cap, c + 1, sizeof *f->i) < 0)
                    return oom(st, name);
                f->i[c] = (int64_t)fl.v;
                f->view.count = c + 1;
            } else if (fl.wire_type == PST_PBWIRE_LEN) { /* packed */
                size_t k = 0;                            /* a varint ends at each byte below 0x80 */
                for (size_t j = 0; j < fl.len; j++)
                    k += fl.data[j] < 0x80;
                if (grow(&f->i, &f->i_cap, c + k, sizeof *f->i) < 0)
                    return oom(st, name);
                const uint8_t *q = fl.data, *qend = fl.data + fl.len;
                uint64_t v;
                int pr;
                while ((pr = pst_pbwire_next_packed_varint(&q, qend, &v)) == 1)
                    f->i[f->view.count++] = (int64_t)v;
                if (pr < 0)
                    return bad(st, name, "a packed int64_list has a malformed varint");
            } else {
                return bad(st, name, "an int64_list value has the wrong wire type");
            }
        }
    }
    return r < 0 ? bad(st, name, "a malformed list message") : 0;
}

/* Parses one Features map entry into the slot at ex->n. */
static int parse_entry(pst_example *ex, const uint8_t *p, const uint8_t *end, pst_status *st) {
    feat *f = next_slot(ex);
    if (f == NULL)
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory parsing an Example");
    /* The key first (it may follow the value), so errors can name the feature. */
    const uint8_t *q = p;
    pst_pbwire_field fl;
    const uint8_t *key = (const uint8_t *)"";
    size_t key_len = 0;
    int r;
    while ((r = pst_pbwire_next(&q, end, &fl)) == 1) {
        if (fl.number != 1)
            continue;
        if (fl.wire_type != PST_PBWIRE_LEN)
            return bad(st, NULL, "a feature name is not a string");
        key = fl.data;
        key_len = fl.len;
    }
    if (r < 0)
        return bad(st, NULL, "a malformed feature map entry");
    if (memchr(key, 0, key_len))
        return bad(st, NULL, "a feature name holds a NUL byte");
    if (set_name(f, (const char *)key, key_len) < 0)
        return pst_status_set(st, PST_E_EXHAUSTED, "out of memory parsing an Example");
    const char *name = f->name;
    while ((r = pst_pbwire_next(&p, end, &fl)) == 1) {
        if (fl.number != 2)
            continue;
        if (fl.wire_type != PST_PBWIRE_LEN)
            return bad(st, name, "the Feature is not a message");
        /* Feature: a oneof; the same member again merges, another member replaces. */
        const uint8_t *fp = fl.data, *fend = fl.data + fl.len;
        pst_pbwire_field lf;
        int fr;
        while ((fr = pst_pbwire_next(&fp, fend, &lf)) == 1) {
            if (lf.number < 1 || lf.number > 3)
                continue;
            if (lf.wire_type != PST_PBWIRE_LEN)
                return bad(st, name, "a list is not a message");
            pst_example_kind kind = (pst_example_kind)lf.number;
            if (f->view.kind != kind) {
                f->view.kind = kind;
                f->view.count = 0;
                f->bd_len = 0;
            }
            int rc = parse_list(f, kind, lf.data, lf.data + lf.len, st);
            if (rc < 0)
                return rc;
        }
        if (fr < 0)
            return bad(st, name, "a malformed Feature message");
    }
    if (r < 0)
        return bad(st, name, "a malformed feature map entry");
    commit_slot(ex);
    return 0;
}

int pst_example_parse(pst_example *ex, const uint8_t *data, size_t len, pst_status *st) {
    pst_example_clear(ex);
    const uint8_t *p = data, *end = len ? data + len : data; /* an empty string's data may be NULL */
    pst_pbwire_field fl;
    int r;
    while ((r = pst_pbwire_next(&p, end, &fl)) == 1) {
        if (fl.number != 1)
            continue;
        if (fl.wire_type != PST_PBWIRE_LEN)
            return bad(st, NULL, "features is not a message");
        const uint8_t *q = fl.data, *qend = fl.data + fl.len;
        pst_pbwire_field ef;
        int er;
        while ((er = pst_pbwire_next(&q, qend, &ef)) == 1) {
            if (ef.number != 1)
                continue;
            if (ef.wire_type != PST_PBWIRE_LEN)
                return bad(st, NULL, "a feature map entry is not a message");
            int rc = parse_entry(ex, ef.data, ef.data + ef.len, st);
            if (rc < 0)
                return rc;
        }
        if (er < 0)
            return bad(st, NULL, "a malformed Features message");
    }
    if (r < 0)
        return bad(st, NULL, "malformed protobuf at the top level");
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

/* Checks one record's feature against its spec and copies its values into row `row` of t. */
static int fill(const pst_example_spec *sp, int64_t elems, const pst_example *ex, pst_tensor *t,
                int64_t row, pst_status *st) {
    const pst_example_feature *f = pst_example_find(ex, sp->name);
    char sh[128];
    pst_shape_str(&sp->shape, sh, sizeof sh);
    if (f == NULL)
        return pst_status_set(st, PST_E_INVALID, "feature \"%s\" is missing", sp->name);
    pst_example_kind want = sp->dtype == PST_FLOAT   ? PST_EXAMPLE_FLOAT
                            : sp->dtype == PST_UINT8 ? PST_EXAMPLE_BYTES
                                                     : PST_EXAMPLE_INT64;
    if (f->kind != want)
        return pst_status_set(st, PST_E_INVALID,
                              "feature \"%s\" is a %s, but the spec (%s %s) wants a %s", sp->name,
                              pst_example_kind_name(f->kind), pst_dtype_name(sp->dtype), sh,
                              pst_example_kind_name(want));
    size_t n = (size_t)elems;
    if (want == PST_EXAMPLE_BYTES) {
        if (f->count != 1)
            return pst_status_set(st, PST_E_INVALID,
                                  "feature \"%s\" holds %zu values, but the spec (uint8 %s) "
                                  "wants one value of %zu bytes",
                                  sp->name, f->count, sh, n);
        if (f->bytes[0].len != n)
            return pst_status_set(st, PST_E_INVALID,
                                  "feature \"%s\" holds %zu bytes, but the spec (uint8 %s) "
                                  "wants %zu",
                                  sp->name, f->bytes[0].len, sh, n);
        memcpy(pst_tensor_u8(t) + (size_t)row * n, f->bytes[0].data, n);
        return 0;
    }
    if (f->count != n)
        return pst_status_set(st, PST_E_INVALID,
                              "feature \"%s\" holds %zu values, but the spec (%s %s) wants %zu",
                              sp->name, f->count, pst_dtype_name(sp->dtype), sh, n);
    if (sp->dtype == PST_FLOAT) {
        memcpy(pst_tensor_f32(t) + (size_t)row * n, f->floats, n * sizeof(float));
    } else if (sp->dtype == PST_INT64) {
        memcpy(pst_tensor_i64(t) + (size_t)row * n, f->int64s, n * sizeof(int64_t));
    } else {
        int32_t *dst = pst_tensor_i32(t) + (size_t)row * n;
        for (size_t j = 0; j < n; j++) {
            if (f->int64s[j] < INT32_MIN || f->int64s[j] > INT32_MAX)
                return pst_status_set(st, PST_E_INVALID,
                                      "feature \"%s\" value %zu (%lld) does not fit the spec's "
                                      "int32",
                                      sp->name, j, (long long)f->int64s[j]);
            dst[j] = (int32_t)f->int64s[j];
        }
    }
    return 0;
}

int pst_example_load_tfrecord(const char *path, const pst_tfrecord_reader_opts *opts,
                              const pst_example_spec *specs, int n_specs, pst_tensor **out,
                              pst_status *st) {
    int64_t elems[64];
    if (n_specs < 1 || n_specs > 64)
        return pst_status_set(st, PST_E_INVALID, "%s: %d feature specs (1 to 64 allowed)", path,
                              n_specs);
    for (int k = 0; k < n_specs; k++)
        out[k] = NULL;
    for (int k = 0; k < n_specs; k++) {
        const pst_example_spec *sp = &specs[k];
        if (sp->name == NULL)
            return pst_status_set(st, PST_E_INVALID, "%s: feature spec %d has no name", path, k);
        if (sp->dtype != PST_FLOAT && sp->dtype != PST_INT64 && sp->dtype != PST_INT32 &&
            sp->dtype != PST_UINT8)
            return pst_status_set(st, PST_E_INVALID,
                                  "%s: feature \"%s\": dtype %s cannot come from an Example "
                                  "(float, int64, int32 or uint8)",
                                  path, sp->name, pst_dtype_name(sp->dtype));
        if (sp->shape.rank < 0 || sp->shape.rank >= PST_MAX_RANK ||
            pst_shape_num_elements(&sp->shape, &elems[k], NULL) < 0)
            return pst_status_set(st, PST_E_INVALID,
                                  "%s: feature \"%s\": the spec's shape must be fully known with "
                                  "rank below %d",
                                  path, sp->name, PST_MAX_RANK);
    }
    int64_t n;
    int rc = pst_tfrecord_count(path, opts, &n, st);
    if (rc < 0)
        return rc;
    for (int k = 0; k < n_specs; k++) {
        pst_shape s = {.rank = specs[k].shape.rank + 1};
        s.dims[0] = n;
        for (int d = 0; d < specs[k].shape.rank; d++)
            s.dims[d + 1] = specs[k].shape.dims[d];
        if ((out[k] = pst_tensor_new(specs[k].dtype, s, st)) == NULL) {
            pst_status_prefix(st, "%s: feature \"%s\": ", path, specs[k].name);
            rc = st ? st->code : PST_E_EXHAUSTED;
            goto fail;
        }
    }
    pst_example *ex = pst_example_new();
    pst_tfrecord_reader *r = ex ? pst_tfrecord_reader_open(path, opts, st) : NULL;
    if (ex == NULL)
        rc = pst_status_set(st, PST_E_EXHAUSTED, "out of memory reading %s", path);
    else if (r == NULL)
        rc = st ? st->code : PST_E_IO;
    int64_t row = 0;
    const uint8_t *rec;
    size_t len;
    while (rc == 0 && (rc = pst_tfrecord_reader_next(r, &rec, &len, st)) == 1) {
        rc = 0;
        if (row == n) {
            rc = pst_status_set(st, PST_E_ABORTED, "%s grew while being read", path);
            break;
        }
        rc = pst_example_parse(ex, rec, len, st);
        for (int k = 0; rc == 0 && k < n_specs; k++)
            rc = fill(&specs[k], elems[k], ex, out[k], row, st);
        if (rc < 0)
            pst_status_prefix(st, "%s: record %lld at offset %llu: ", path, (long long)row,
                              (unsigned long long)pst_tfrecord_reader_offset(r));
        row++;
    }
    if (rc == 0 && row != n)
        rc = pst_status_set(st, PST_E_ABORTED, "%s shrank while being read", path);
    pst_tfrecord_reader_free(r);
    pst_example_free(ex);
    if (rc == 0)
        return 0;
fail:
    for (int k = 0; k < n_specs; k++) {
        pst_tensor_unref(out[k]);
        out[k] = NULL;
    }
    return rc;
}
