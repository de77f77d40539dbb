/*
 * tensor — dtypes, shapes and reference-counted dense tensors.
 *
 * Dtype values equal TensorFlow's DataType numbers so they go to disk and wire unchanged.
 * A tensor's buffer is 64-byte aligned. Tensors are reference counted: pst_tensor_new returns
 * a tensor with one reference owned by the caller; pst_tensor_unref drops it. A view
 * (pst_tensor_reshape_view) shares its base's buffer and keeps the base alive.
 *
 *     int64_t dims[] = {2, 3};
 *     pst_tensor *t = pst_tensor_new(PST_FLOAT, pst_shape_make(2, dims), &st);
 *     float *p = pst_tensor_f32(t);
 *     ...
 *     pst_tensor_unref(t);
 */
#ifndef PST_TENSOR_H
#define PST_TENSOR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef enum pst_dtype {
    PST_DT_INVALID = 0,
    PST_FLOAT = 1,
    PST_DOUBLE = 2,
    PST_INT32 = 3,
    PST_UINT8 = 4,
    PST_STRING = 7, /* elements are pst_tstring: owned byte strings (any bytes, NUL-ended) */
    PST_INT64 = 9,
    PST_BOOL = 10,
    PST_RESOURCE = 20, /* a handle: one pointer per element to an object its maker owns
                          (TensorArray, Stack); never on disk or wire */
} pst_dtype;

/* One element of a PST_STRING tensor. The tensor owns each element's bytes (heap, followed by
 * a NUL so text can be printed); an empty string is {NULL, 0}. Copy elements only with
 * pst_tstring_set / pst_tensor_copy_elems: a byte copy would share (and later double free)
 * the bytes. */
typedef struct pst_tstring {
    char *p;
    size_t len;
} pst_tstring;

/* Bytes per element, 0 for a dtype pstrain does not support (sizeof(pst_tstring) for strings). */
size_t pst_dtype_size(pst_dtype dt);
/* TensorFlow's name ("float", "int32", ...), or "invalid". */
const char *pst_dtype_name(pst_dtype dt);
int pst_dtype_valid(int dt);
int pst_dtype_is_float(pst_dtype dt);
int pst_dtype_is_int(pst_dtype dt);

#define PST_MAX_RANK 8

/* A shape. During graph building a dim of -1 is unknown and rank -1 means unknown rank;
 * a tensor's shape is always fully known. */
typedef struct pst_shape {
    int rank;
    int64_t dims[PST_MAX_RANK];
} pst_shape;

pst_shape pst_shape_make(int rank, const int64_t *dims);
pst_shape pst_shape_scalar(void);
pst_shape pst_shape_1d(int64_t d0);
pst_shape pst_shape_2d(int64_t d0, int64_t d1);
pst_shape pst_shape_4d(int64_t d0, int64_t d1, int64_t d2, int64_t d3);
pst_shape pst_shape_unknown(void);
/* s with a leading dimension d (a batch of s); unknown when s is unknown or has no room. */
pst_shape pst_shape_prepend(pst_shape s, int64_t d);
int pst_shape_equal(const pst_shape *a, const pst_shape *b);
/* 1 when the rank and every dim are known. */
int pst_shape_is_known(const pst_shape *s);
/* 1 when a and b could describe the same tensor (unknowns match anything). */
int pst_shape_compatible(const pst_shape *a, const pst_shape *b);
/* Product of dims with overflow check; fails on unknown or negative dims. */
int pst_shape_num_elements(const pst_shape *s, int64_t *out, pst_status *st);
/* Writes "[2,3]" ("[?,3]" for unknown dims, "<unknown>" for unknown rank) into buf. */
const char *pst_shape_str(const pst_shape *s, char *buf, size_t len);

typedef struct pst_tensor {
    pst_dtype dtype;
    pst_shape shape;
    int64_t n;       /* number of elements */
    size_t nbytes;   /* n * dtype size */
    void *data;      /* 64-byte aligned; NULL only when nbytes == 0 */
    atomic_int refs;
    struct pst_tensor *base; /* non-NULL for a view: data belongs to base */
} pst_tensor;

/* New tensor with uninitialized contents; the caller owns the one reference. NULL on error
 * (bad dtype, bad or overflowing shape, out of memory) with st set. */
pst_tensor *pst_tensor_new(pst_dtype dt, pst_shape shape, pst_status *st);
/* New tensor whose contents are data, a block from pst_aligned_alloc of at least the tensor's
 * bytes, which the tensor takes (freed when the last reference goes). Not for PST_STRING. On
 * error (bad dtype or shape, out of memory) data is freed too and NULL returned with st set. */
pst_tensor *pst_tensor_adopt(pst_dtype dt, pst_shape shape, void *data, pst_status *st);
/* Same, contents zeroed. */
pst_tensor *pst_tensor_new_zeros(pst_dtype dt, pst_shape shape, pst_status *st);
/* New tensor holding a copy of nbytes at src (must equal the tensor's size); for PST_STRING
 * src is an array of pst_tstring whose bytes are copied. String tensors are always created
 * zeroed (every element empty). */
pst_tensor *pst_tensor_new_copy(pst_dtype dt, pst_shape shape, const void *src, pst_status *st);
/* Scalars and small helpers for tests and graph constants. */
pst_tensor *pst_tensor_scalar_f32(float v);
pst_tensor *pst_tensor_scalar_f64(double v);
pst_tensor *pst_tensor_scalar_i32(int32_t v);
pst_tensor *pst_tensor_scalar_i64(int64_t v);
pst_tensor *pst_tensor_scalar_bool(int v);
/* 1-D or N-D float/int tensors from a C array (copied). */
pst_tensor *pst_tensor_from_f32(pst_shape shape, const float *v);
pst_tensor *pst_tensor_from_f64(pst_shape shape, const double *v);
pst_tensor *pst_tensor_from_i32(pst_shape shape, const int32_t *v);
pst_tensor *pst_tensor_from_i64(pst_shape shape, const int64_t *v);
/* A view with another shape of the same element count; shares data, holds a base ref. */
pst_tensor *pst_tensor_reshape_view(pst_tensor *t, pst_shape shape, pst_status *st);
/* Deep copy. */
pst_tensor *pst_tensor_clone(const pst_tensor *t, pst_status *st);

pst_tensor *pst_tensor_ref(pst_tensor *t);
void pst_tensor_unref(pst_tensor *t); /* NULL is fine */

static inline float *pst_tensor_f32(const pst_tensor *t) { return (float *)t->data; }
static inline double *pst_tensor_f64(const pst_tensor *t) { return (double *)t->data; }
static inline int32_t *pst_tensor_i32(const pst_tensor *t) { return (int32_t *)t->data; }
static inline int64_t *pst_tensor_i64(const pst_tensor *t) { return (int64_t *)t->data; }
static inline uint8_t *pst_tensor_u8(const pst_tensor *t) { return (uint8_t *)t->data; }
static inline pst_tstring *pst_tensor_str(const pst_tensor *t) { return (pst_tstring *)t->data; }

/* Replaces a string element with a copy of len bytes at p; 0 or PST_E_EXHAUSTED. */
int pst_tstring_set(pst_tstring *s, const void *p, size_t len);
/* A new scalar / 1-D string tensor holding copies of NUL-ended strings. */
pst_tensor *pst_tensor_scalar_str(const char *v);
pst_tensor *pst_tensor_from_strs(int n, const char *const *v);
/* Copies n elements from src (starting at element si) to dst (at di), deep for strings.
 * The dtypes must match. 0 or PST_E_EXHAUSTED with st set. */
int pst_tensor_copy_elems(pst_tensor *dst, int64_t di, const pst_tensor *src, int64_t si,
                          int64_t n, pst_status *st);

/* Element i converted to double / int64 whatever the dtype (slow; for tests, attrs, shapes). */
double pst_tensor_get_f64(const pst_tensor *t, int64_t i);
int64_t pst_tensor_get_i64(const pst_tensor *t, int64_t i);
void pst_tensor_set_f64(pst_tensor *t, int64_t i, double v);

/* Aligned allocation used for every tensor buffer; free with pst_aligned_free. */
void *pst_aligned_alloc(size_t nbytes);
void pst_aligned_free(void *p);

/* Checked arithmetic for sizes read from files and wire: 0 on success, -1 on overflow. */
int pst_mul_overflow_i64(int64_t a, int64_t b, int64_t *out);
int pst_add_overflow_i64(int64_t a, int64_t b, int64_t *out);

#endif
