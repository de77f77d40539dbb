/* SerializeTensor and ParseTensor (tf.io.serialize_tensor / parse_tensor): a tensor to and from
 * its TensorProto bytes, as TF 1.15 writes and reads them. Registered by pst_io_ops_init.
 *
 * Writing follows Tensor::AsProtoTensorContent: dtype (1), tensor_shape (2, always present;
 * dim (2) { size (1), left out when 0 }), then the numbers' raw little-endian bytes as
 * tensor_content (4, left out when empty) or, for strings, one string_val (8) per element.
 * Reading takes tensor_content, or the typed repeated fields (float_val 5, double_val 6,
 * int_val 7, string_val 8, int64_val 10, bool_val 11; packed or not); as TF, fewer values than
 * elements repeat the last one (none: zeros), more is an error. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"
#include "pbwire.h"

static int serialize_kernel(pst_kernel_ctx *c) {
    const pst_tensor *t = c->inputs[0];
    if (t->dtype == PST_RESOURCE)
        return pst_kctx_error(c, PST_E_UNIMPLEMENTED, "a resource handle cannot be serialized");
    pst_pbwire_buf b;
    pst_pbwire_buf_init(&b);
    pst_pbwire_put_varint(&b, 1, (uint64_t)t->dtype);
    size_t m = pst_pbwire_begin(&b, 2);
    for (int d = 0; d < t->shape.rank; d++) {
        size_t md = pst_pbwire_begin(&b, 2);
        if (t->shape.dims[d]) pst_pbwire_put_varint(&b, 1, (uint64_t)t->shape.dims[d]);
        pst_pbwire_end(&b, md);
    }
    pst_pbwire_end(&b, m);
    if (t->dtype == PST_STRING) {
        for (int64_t i = 0; i < t->n; i++) {
            const pst_tstring *s = pst_tensor_str(t) + i;
            pst_pbwire_put_bytes(&b, 8, s->len ? s->p : "", s->len);
        }
    } else if (t->nbytes) {
        pst_pbwire_put_bytes(&b, 4, t->data, t->nbytes);
    }
    pst_tensor *o =
        b.failed ? NULL : pst_tensor_new_zeros(PST_STRING, pst_shape_scalar(), c->status);
    if (o == NULL || pst_tstring_set(pst_tensor_str(o), b.data, b.len) < 0) {
        pst_pbwire_buf_destroy(&b);
        pst_tensor_unref(o);
        return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    }
    pst_pbwire_buf_destroy(&b);
    pst_kctx_set_output(c, 0, o);
    return 0;
}

/* The typed field of TensorProto that holds values of dtype dt. */
static uint32_t val_field(pst_dtype dt) {
    switch (dt) {
    case PST_FLOAT: return 5;
    case PST_DOUBLE: return 6;
    case PST_INT32:
    case PST_UINT8: return 7;
    case PST_STRING: return 8;
    case PST_INT64: return 10;
    case PST_BOOL: return 11;
    default: return 0;
    }
}

/* What ParseTensor reads besides the values. */
typedef struct parsed {
    int dtype;
    pst_shape shape;
    const uint8_t *content; /* tensor_content, NULL when absent */
    size_t content_len;
} parsed;

static int bad(pst_kernel_ctx *c, const char *why) {
    return pst_kctx_error(c, PST_E_INVALID, "could not parse `serialized` as a TensorProto: %s",
                          why);
}

static int parse_shape(pst_kernel_ctx *c, const uint8_t *p, size_t n, pst_shape *s) {
    const uint8_t *end = p + n;
    pst_pbwire_field f;
    int r;
    s->rank = 0;
    while ((r = pst_pbwire_next(&p, end, &f)) == 1) {
        if (f.number == 3 && f.wire_type == PST_PBWIRE_VARINT && f.v)
            return bad(c, "the shape has unknown rank");
        if (f.number != 2 || f.wire_type != PST_PBWIRE_LEN) continue;
        if (s->rank == PST_MAX_RANK) return bad(c, "the shape has too many dimensions");
        int64_t size = 0;
        const uint8_t *q = f.data, *qe = f.data + f.len;
        pst_pbwire_field g;
        int r2;
        while ((r2 = pst_pbwire_next(&q, qe, &g)) == 1)
            if (g.number == 1 && g.wire_type == PST_PBWIRE_VARINT) size = (int64_t)g.v;
        if (r2 < 0) return bad(c, "a malformed dimension");
        if (size < 0) return bad(c, "a dimension of unknown size");
        s->dims[s->rank++] = size;
    }
    return r < 0 ? bad(c, "a malformed shape") : 0;
}

/* Stores value k (of a typed field's element at wire value v or bytes) into o[i]. */
static int put_value(pst_tensor *o, int64_t i, const pst_pbwire_field *f, uint64_t v,
                     pst_status *st) {
    switch (o->dtype) {
    case PST_FLOAT: pst_tensor_f32(o)[i] = pst_pbwire_float_of((uint32_t)v); break;
    case PST_DOUBLE: pst_tensor_f64(o)[i] = pst_pbwire_double_of(v); break;
    case PST_INT32: pst_tensor_i32(o)[i] = (int32_t)v; break;
    case PST_UINT8: pst_tensor_u8(o)[i] = (uint8_t)v; break;
    case PST_INT64: pst_tensor_i64(o)[i] = (int64_t)v; break;
    case PST_BOOL: pst_tensor_u8(o)[i] = v != 0; break;
    case PST_STRING:
        if (pst_tstring_set(pst_tensor_str(o) + i, f->data, f->len) < 0)
            return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        break;
    default: break;
    }
    return 0;
}

/* Reads the typed values of field `want` into o (up to o->n; counts them in *count). */
static int read_values(pst_kernel_ctx *c, const uint8_t *p, size_t n, uint32_t want,
                       pst_tensor *o, int64_t *count) {
    const uint8_t *end = p + n;
    pst_pbwire_field f;
    int r;
    int fixed = o->dtype == PST_FLOAT ? 4 : o->dtype == PST_DOUBLE ? 8 : 0;
    *count = 0;
    while ((r = pst_pbwire_next(&p, end, &f)) == 1) {
        if (f.number != want) continue;
        if (f.wire_type == PST_PBWIRE_LEN && o->dtype != PST_STRING) { /* packed */
            const uint8_t *q = f.data, *qe = f.data + f.len;
            if (fixed) {
                if (f.len % (size_t)fixed) return bad(c, "a packed list of the wrong length");
                for (; q < qe; q += fixed, (*count)++) {
                    if (*count >= o->n) return bad(c, "more values than the shape holds");
                    uint64_t v = fixed == 4 ? pst_pbwire_le32(q) : pst_pbwire_le64(q);
                    put_value(o, *count, &f, v, c->status);
                }
            } else {
                uint64_t v;
                int r2;
                while ((r2 = pst_pbwire_next_packed_varint(&q, qe, &v)) == 1) {
                    if (*count >= o->n) return bad(c, "more values than the shape holds");
                    put_value(o, (*count)++, &f, v, c->status);
                }
                if (r2 < 0) return bad(c, "a malformed packed list");
            }
            continue;
        }
        if (*count >= o->n) return bad(c, "more values than the shape holds");
        if (put_value(o, (*count)++, &f, f.v, c->status) < 0) return c->status->code;
    }
    return r < 0 ? bad(c, "malformed bytes") : 0;
}

static int parse_kernel(pst_kernel_ctx *c) {
    const pst_tensor *in = c->inputs[0];
    pst_dtype want = c->out_dtypes[0];
    if (in->dtype != PST_STRING || in->shape.rank != 0)
        return pst_kctx_error(c, PST_E_INVALID, "serialized must be a string scalar");
    const pst_tstring *s = pst_tensor_str(in);
    const uint8_t *p = (const uint8_t *)(s->len ? s->p : ""), *end = p + s->len;
    parsed pr = {0};
    pr.shape.rank = 0;
    pst_pbwire_field f;
    int r;
    while ((r = pst_pbwire_next(&p, end, &f)) == 1) {
        if (f.number == 1 && f.wire_type == PST_PBWIRE_VARINT) pr.dtype = (int)f.v;
        if (f.number == 2 && f.wire_type == PST_PBWIRE_LEN &&
            parse_shape(c, f.data, f.len, &pr.shape) < 0)
            return c->status->code;
        if (f.number == 4 && f.wire_type == PST_PBWIRE_LEN) {
            pr.content = f.data;
            pr.content_len = f.len;
        }
    }
    if (r < 0) return bad(c, "malformed bytes");
    if (pr.dtype != (int)want)
        return pst_kctx_error(c, PST_E_INVALID, "Type mismatch between parsed tensor (%s) and "
                              "dtype (%s)", pst_dtype_valid(pr.dtype) ? pst_dtype_name(pr.dtype)
                                                                      : "unsupported",
                              pst_dtype_name(want));
    int64_t n = 1;
    for (int d = 0; d < pr.shape.rank; d++) {
        if (pr.shape.dims[d] && n > INT64_MAX / 16 / pr.shape.dims[d])
            return bad(c, "the shape is too large");
        n *= pr.shape.dims[d];
    }
    /* A proto may claim a large shape with one value to repeat; past 2 GiB of output that is
     * refused rather than allocated (TF would try). */
    if ((uint64_t)n * pst_dtype_size(want) > ((uint64_t)1 << 31))
        return pst_kctx_error(c, PST_E_EXHAUSTED, "ParseTensor: the shape claims %" PRId64
                              " elements (more than 2 GiB); refused", n);
    if (pr.content_len && want != PST_STRING &&
        (uint64_t)n * pst_dtype_size(want) != pr.content_len)
        return bad(c, "tensor_content's size does not match the shape");
    pst_tensor *o = pst_tensor_new_zeros(want, pr.shape, c->status);
    if (o == NULL) return c->status->code;
    pst_kctx_set_output(c, 0, o);
    if (pr.content_len && want != PST_STRING) {
        memcpy(o->data, pr.content, pr.content_len);
        return 0;
    }
    int64_t count = 0;
    const uint8_t *start = (const uint8_t *)(s->len ? s->p : "");
    if (read_values(c, start, s->len, val_field(want), o, &count) < 0) return c->status->code;
    for (int64_t i = count; count > 0 && i < n; i++) /* repeat the last value, as TF */
        if (pst_tensor_copy_elems(o, i, o, count - 1, 1, c->status) < 0) return c->status->code;
    return 0;
}

static int serialize_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_STRING, pst_shape_scalar());
    return 0;
}

static int parse_shape_fn(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_attr_type(n, "out_type", PST_DT_INVALID);
    if (val_field(dt) == 0)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "out_type %s is not supported",
                              pst_dtype_name(dt));
    if (pst_node_in_dtype(n, 0) != PST_STRING)
        return pst_status_set(st, PST_E_INVALID, "serialized must be a string");
    pst_node_set_output(n, 0, dt, pst_shape_unknown());
    return 0;
}

static const pst_attr_spec serialize_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {0}};
static const pst_attr_spec parse_attrs[] = {{"out_type", PST_ATTR_TYPE, 1}, {0}};

static const pst_op_def tensor_proto_ops[] = {
    {.name = "SerializeTensor", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = serialize_attrs, .shape = serialize_shape, .kernel = serialize_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
    {.name = "ParseTensor", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = parse_attrs, .shape = parse_shape_fn, .kernel = parse_kernel,
     .flags = PST_OP_STRINGS | PST_OP_NOT_DIFFERENTIABLE},
};

void pst__register_tensor_proto_ops(void) {
    for (size_t i = 0; i < sizeof tensor_proto_ops / sizeof tensor_proto_ops[0]; i++)
        pst_op_register(&tensor_proto_ops[i]);
}
