/*
 * example — tf.train.Example: build, encode, parse, and load a TFRecord file of them as tensors.
 *
 * An Example maps feature names to one list each: bytes_list, float_list or int64_list
 * (proto/tf_example.proto). Encoding writes float and int64 lists packed, as TensorFlow does;
 * parsing accepts packed and unpacked lists (and a mix of both), merges repeated fields and
 * keeps the last value of a repeated name, as protobuf's rules say.
 *
 *     pst_example *ex = pst_example_new();
 *     pst_example_add_bytes(ex, "image", &(pst_example_bytes){pixels, 784}, 1, &st);
 *     pst_example_add_int64s(ex, "label", &label, 1, &st);
 *     pst_pbwire_buf b;  pst_pbwire_buf_init(&b);
 *     pst_example_encode(ex, &b, &st);                  // b.data, b.len: one record
 *
 *     pst_example_parse(ex, rec, len, &st);             // reuses ex's memory
 *     const pst_example_feature *f = pst_example_find(ex, "label");
 *     if (f && f->kind == PST_EXAMPLE_INT64 && f->count == 1) label = f->int64s[0];
 *
 * For the input pipeline, a whole file into tensors, one per feature spec:
 *
 *     pst_example_spec specs[] = {
 *         {"image", PST_FLOAT, pst_shape_make(3, (int64_t[]){28, 28, 1})}, // a float_list
 *         {"label", PST_INT64, pst_shape_scalar()},                         // an int64_list
 *     };
 *     pst_tensor *t[2];                                 // float [N,28,28,1], int64 [N]
 *     pst_example_load_tfrecord("train.tfrecord", NULL, specs, 2, t, &st);
 *     pst_dataset *ds = pst_dataset_new(t[0], t[1], &st);
 */
#ifndef PST_EXAMPLE_H
#define PST_EXAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "pbwire.h"
#include "status.h"
#include "tensor.h"
#include "tfrecord.h"

/* Values are the Feature oneof's field numbers. */
typedef enum pst_example_kind {
    PST_EXAMPLE_NONE = 0, /* a Feature with no list set */
    PST_EXAMPLE_BYTES = 1,
    PST_EXAMPLE_FLOAT = 2,
    PST_EXAMPLE_INT64 = 3,
    PST_EXAMPLE_KIND_COUNT
} pst_example_kind;

/* "bytes_list", "float_list", "int64_list", "no list". */
const char *pst_example_kind_name(pst_example_kind k);

typedef struct pst_example_bytes {
    const uint8_t *data;
    size_t len;
} pst_example_bytes;

/* One feature, borrowed from its pst_example (valid until the example changes). */
typedef struct pst_example_feature {
    const char *name; /* NUL-terminated; a name holding a NUL byte is refused by the parser */
    pst_example_kind kind;
    size_t count;                   /* values in the list */
    const pst_example_bytes *bytes; /* kind BYTES */
    const float *floats;            /* kind FLOAT */
    const int64_t *int64s;          /* kind INT64 */
} pst_example_feature;

typedef struct pst_example pst_example;

/* An empty example; NULL when out of memory. Free with pst_example_free. */
pst_example *pst_example_new(void);
void pst_example_free(pst_example *ex); /* NULL is fine */
/* Removes every feature, keeping the memory for reuse. */
void pst_example_clear(pst_example *ex);

/* Add a feature (values copied). A name already present is replaced. */
int pst_example_add_bytes(pst_example *ex, const char *name, const pst_example_bytes *values,
                          size_t n, pst_status *st);
int pst_example_add_floats(pst_example *ex, const char *name, const float *values, size_t n,
                           pst_status *st);
int pst_example_add_int64s(pst_example *ex, const char *name, const int64_t *values, size_t n,
                           pst_status *st);

int pst_example_num_features(const pst_example *ex);
/* Features in insertion (or wire) order; i in [0, num_features). */
const pst_example_feature *pst_example_feature_at(const pst_example *ex, int i);
/* The feature named name, or NULL. */
const pst_example_feature *pst_example_find(const pst_example *ex, const char *name);

/* Appends the serialized Example to out (features in order; lists packed). */
int pst_example_encode(const pst_example *ex, pst_pbwire_buf *out, pst_status *st);

/* Replaces ex's contents with the Example in [data, data + len). A malformed message is
 * PST_E_DATA_LOSS naming the feature (when known) and what was wrong; the caller prefixes the
 * file and record. */
int pst_example_parse(pst_example *ex, const uint8_t *data, size_t len, pst_status *st);

/* ---- loading a file into tensors ---- */

/* What one feature becomes: a tensor of dtype [N, shape...] (N records).
 *   PST_FLOAT  from a float_list of exactly num_elements(shape) values
 *   PST_INT64  from an int64_list of exactly that many values
 *   PST_INT32  the same, each value range-checked
 *   PST_UINT8  from a bytes_list holding one value of exactly that many bytes (raw pixels) */
typedef struct pst_example_spec {
    const char *name;
    pst_dtype dtype;
    pst_shape shape; /* per-record shape, fully known; rank < PST_MAX_RANK */
} pst_example_spec;

/* Reads every record of path (a TFRecord file of Examples; opts as for
 * pst_tfrecord_reader_open, NULL: compression detected) into out[i] for specs[i] (new tensors
 * the caller unrefs; all NULL on error). Two streaming passes: one counts the records, one
 * fills the tensors, so memory is the tensors plus one record. Errors name the file, the
 * record and the feature: a missing feature, another list kind, a wrong number of values. */
int pst_example_load_tfrecord(const char *path, const pst_tfrecord_reader_opts *opts,
                              const pst_example_spec *specs, int n_specs, pst_tensor **out,
                              pst_status *st);

#endif
