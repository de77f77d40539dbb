/*
 * fuzz_record_ops — the in-graph record decoders a TensorFlow input pipeline runs on bytes it
 * read from files (ParseExample, ParseSingleExample, DecodeRaw, DecodeCSV, DecodeJpeg,
 * DecodePng) and the TFRecord reader under them, on arbitrary bytes.
 *
 * Input: one selector byte, then the payload. Selector % 8:
 *   0 ParseExample of [payload, payload] (sparse int64 "s"; dense float[2] "f" with a
 *     default, int64 "i" required, string "b" with a default)
 *   1 ParseSingleExample of the payload (the same features)
 *   2 DecodeRaw as float32, 3 DecodeRaw as int32 big-endian
 *   4 DecodeCSV of the payload's lines (int32, float, string defaults; quotes on)
 *   5 DecodeJpeg (3 channels), or with the selector's bit 4 DecodeAndCropJpeg of the window
 *     [1, 1, 2, 2]; 6 DecodePng (any channels), or with bit 4 DecodeBmp (any channels), or
 *     with bit 5 (and not 4) DecodeGif
 *   7 the payload as a TFRecord file, read to its end (compression from the selector's bit 3:
 *     none or auto-detected)
 * A decoder either returns tensors whose sizes agree with their shapes or fails with an error
 * message; never a crash, a hang or a leak.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "io_ops.h"
#include "ops.h"
#include "ops_state.h"
#include "session.h"
#include "tfrecord.h"

#define MAX_OUT 16

typedef struct decoder {
    pst_graph *g;
    pst_session *s;
    pst_output in;
    pst_output out[MAX_OUT];
    int n_out;
} decoder;

static pst_output konst(pst_graph *g, pst_tensor *t, const char *name) {
    pst_output o = pst_const(g, t, name);
    pst_tensor_unref(t);
    return o;
}

static pst_tensor *strs1(const char *v) { return pst_tensor_from_strs(1, &v); }

/* The example features every Parse* decoder asks for. */
static void example_features(pst_graph *g, pst_node_builder *b, int single) {
    if (!single) pst_nb_input(b, konst(g, pst_tensor_from_strs(0, NULL), "names"));
    if (single) {
        pst_nb_input(b, konst(g, pst_tensor_from_f32(pst_shape_1d(2), (float[]){0, 0}), "d0"));
        pst_nb_input(b, konst(g, pst_tensor_from_i64(pst_shape_1d(0), NULL), "d1"));
        pst_nb_input(b, konst(g, strs1("none"), "d2"));
        const char *sk = "s", *dk[] = {"f", "i", "b"};
        pst_nb_attr_i(b, "num_sparse", 1);
        pst_nb_attr_list_s(b, "sparse_keys", 1, &sk);
        pst_nb_attr_list_s(b, "dense_keys", 3, dk);
    } else {
        pst_nb_input(b, konst(g, pst_tensor_scalar_str("s"), "sk0"));
        pst_nb_input(b, konst(g, pst_tensor_scalar_str("f"), "dk0"));
        pst_nb_input(b, konst(g, pst_tensor_scalar_str("i"), "dk1"));
        pst_nb_input(b, konst(g, pst_tensor_scalar_str("b"), "dk2"));
        pst_nb_input(b, konst(g, pst_tensor_from_f32(pst_shape_1d(2), (float[]){0, 0}), "d0"));
        pst_nb_input(b, konst(g, pst_tensor_from_i64(pst_shape_1d(0), NULL), "d1"));
        pst_nb_input(b, konst(g, strs1("none"), "d2"));
        pst_nb_attr_i(b, "Nsparse", 1);
        pst_nb_attr_i(b, "Ndense", 3);
    }
    pst_nb_attr_list_type(b, "sparse_types", 1, (pst_dtype[]){PST_INT64});
    pst_nb_attr_list_type(b, "Tdense", 3, (pst_dtype[]){PST_FLOAT, PST_INT64, PST_STRING});
    pst_nb_attr_list_shape(b, "dense_shapes", 3,
                           (pst_shape[]){pst_shape_1d(2), pst_shape_scalar(), pst_shape_scalar()});
}

/* Builds decoder k's graph: a string placeholder "in" feeding the decoder node. */
static void build(decoder *d, int k) {
    static const char *ops[] = {"ParseExample", "ParseSingleExample", "DecodeRaw", "DecodeRaw",
                                "DecodeCSV", "DecodeJpeg", "DecodePng", "DecodeBmp",
                                "DecodeAndCropJpeg", "DecodeGif"};
    pst_graph *g = pst_graph_new();
    d->g = g;
    d->in = pst_placeholder(g, "in", PST_STRING, k == 0 || k == 4 ? pst_shape_1d(-1)
                                                                  : pst_shape_scalar());
    pst_node_builder *b = pst_nb_new(g, ops[k], "dec");
    pst_nb_input(b, d->in);
    switch (k) {
    case 0:
    case 1: example_features(g, b, k == 1); break;
    case 2: pst_nb_attr_type(b, "out_type", PST_FLOAT); break;
    case 3:
        pst_nb_attr_type(b, "out_type", PST_INT32);
        pst_nb_attr_b(b, "little_endian", 0);
        break;
    case 4:
        pst_nb_input(b, konst(g, pst_tensor_from_i32(pst_shape_1d(1), (int32_t[]){0}), "c0"));
        pst_nb_input(b, konst(g, pst_tensor_from_f32(pst_shape_1d(1), (float[]){0}), "c1"));
        pst_nb_input(b, konst(g, strs1(""), "c2"));
        pst_nb_attr_list_type(b, "OUT_TYPE", 3, (pst_dtype[]){PST_INT32, PST_FLOAT, PST_STRING});
        pst_nb_attr_s(b, "field_delim", ",");
        pst_nb_attr_b(b, "use_quote_delim", 1);
        break;
    case 5: pst_nb_attr_i(b, "channels", 3); break;
    case 8:
        pst_nb_input(b, konst(g, pst_tensor_from_i32(pst_shape_1d(4), (int32_t[]){1, 1, 2, 2}),
                              "crop"));
        break;
    case 9: break; /* DecodeGif: no attrs */
    default: pst_nb_attr_i(b, "channels", 0); break;
    }
    pst_node *n = pst_nb_finish(b);
    pst_status st = {0};
    PST_FUZZ_CHECK(n != NULL && !pst_graph_error(g), "building %s: %s", ops[k],
                   pst_graph_status(g)->msg);
    d->n_out = n->n_outputs < MAX_OUT ? n->n_outputs : MAX_OUT;
    for (int i = 0; i < d->n_out; i++) d->out[i] = pst_out(n, i);
    d->s = pst_session_new(g, NULL, &st);
    PST_FUZZ_CHECK(d->s != NULL, "session for %s: %s", ops[k], st.msg);
}

/* Runs decoder k on the payload; checks what it returned. */
static void decode(int k, const uint8_t *p, size_t n) {
    static decoder dec[10];
    decoder *d = &dec[k];
    if (!d->g) build(d, k);
    pst_status st = {0};
    int rows = k == 0 ? 2 : 1;
    pst_tensor *in;
    if (k == 4) { /* one record per line */
        rows = 0;
        for (size_t i = 0; i < n; i++) rows += p[i] == '\n';
        rows++;
        if (rows > 64) rows = 64;
        in = pst_tensor_new_zeros(PST_STRING, pst_shape_1d(rows), &st);
        size_t at = 0;
        for (int r = 0; r < rows; r++) {
            size_t e = at;
            while (e < n && p[e] != '\n') e++;
            if (r == rows - 1) e = n; /* the last keeps the rest */
            pst_tstring_set(&pst_tensor_str(in)[r], p + at, e - at);
            at = e < n ? e + 1 : n;
        }
    } else {
        in = pst_tensor_new_zeros(PST_STRING, rows == 1 ? pst_shape_scalar() : pst_shape_1d(rows),
                                  &st);
        pst_tstring_set(&pst_tensor_str(in)[0], p, n);
        if (rows == 2) pst_tstring_set(&pst_tensor_str(in)[1], p, n);
    }
    PST_FUZZ_CHECK(in != NULL, "input tensor");
    pst_tensor *out[MAX_OUT] = {0};
    pst_feed f = {d->in, in};
    int rc = pst_session_run(d->s, &f, 1, d->out, d->n_out, NULL, 0, out, &st);
    pst_fuzz_check_status(rc, &st, "decoder");
    if (getenv("PST_FUZZ_VERBOSE")) /* what a seed does: PST_FUZZ_VERBOSE=1 fuzz_record_ops DIR */
        fprintf(stderr, "decoder %d: %s\n", k, rc == 0 ? "ok" : st.msg);
    for (int i = 0; rc == 0 && i < d->n_out; i++) {
        int64_t elems = 0;
        PST_FUZZ_CHECK(out[i] != NULL, "output %d missing", i);
        PST_FUZZ_CHECK(pst_shape_num_elements(&out[i]->shape, &elems, &st) == 0 &&
                           elems == out[i]->n,
                       "output %d: shape and element count disagree", i);
        PST_FUZZ_CHECK(out[i]->nbytes == (size_t)out[i]->n * pst_dtype_size(out[i]->dtype),
                       "output %d: byte count", i);
    }
    for (int i = 0; i < d->n_out; i++) pst_tensor_unref(out[i]);
    pst_tensor_unref(in);
}

/* The payload as a TFRecord file, read to its end. */
static void read_records(const uint8_t *p, size_t n, int auto_detect) {
    pst_fuzz_write("in.tfrecord", p, n);
    char path[4200];
    pst_fuzz_path("in.tfrecord", path, sizeof path);
    pst_tfrecord_reader_opts o = {.compression = auto_detect ? PST_TFRECORD_AUTO : PST_TFRECORD_NONE,
                                  .max_record = 1 << 20};
    pst_status st = {0};
    pst_tfrecord_reader *r = pst_tfrecord_reader_open(path, &o, &st);
    pst_fuzz_check_status(r ? 0 : -1, &st, "pst_tfrecord_reader_open");
    int rc = 0;
    for (int i = 0; r && i < 10000; i++) {
        const uint8_t *rec;
        size_t len;
        rc = pst_tfrecord_reader_next(r, &rec, &len, &st);
        if (rc <= 0) break;
        PST_FUZZ_CHECK(len <= o.max_record, "record of %zu bytes past the cap", len);
        volatile uint8_t sink = 0;
        for (size_t k = 0; k < len; k++) sink ^= rec[k]; /* every byte readable */
        (void)sink;
    }
    if (rc < 0) pst_fuzz_check_status(rc, &st, "pst_tfrecord_reader_next");
    if (getenv("PST_FUZZ_VERBOSE"))
        fprintf(stderr, "tfrecord: %s\n", !r ? st.msg : rc < 0 ? st.msg : "read to the end");
    pst_tfrecord_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    pst_io_ops_init();
    int sel = data[0];
    data++;
    size--;
    if ((sel & 7) == 7) read_records(data, size, sel & 8);
    else if ((sel & 7) >= 5 && (sel & 16)) decode((sel & 7) == 5 ? 8 : 7, data, size);
    else if ((sel & 7) == 6 && (sel & 32)) decode(9, data, size);
    else decode(sel & 7, data, size);
    return 0;
}
