#include "tensor.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

size_t pst_dtype_size(pst_dtype dt) {
    switch (dt) {
    case PST_FLOAT: return 4;
    case PST_DOUBLE: return 8;
    case PST_INT32: return 4;
    case PST_UINT8: return 1;
    case PST_INT64: return 8;
    case PST_BOOL: return 1;
    case PST_STRING: return sizeof(pst_tstring);
    case PST_RESOURCE: return sizeof(void *);
    default: return 0;
    }
}

const char *pst_dtype_name(pst_dtype dt) {
    switch (dt) {
    case PST_FLOAT: return "float";
    case PST_DOUBLE: return "double";
    case PST_INT32: return "int32";
    case PST_UINT8: return "uint8";
    case PST_INT64: return "int64";
    case PST_BOOL: return "bool";
    case PST_STRING: return "string";
    case PST_RESOURCE: return "resource";
    default: return "invalid";
    }
}

int pst_dtype_valid(int dt) { return pst_dtype_size((pst_dtype)dt) != 0; }
int pst_dtype_is_float(pst_dtype dt) { return dt == PST_FLOAT || dt == PST_DOUBLE; }
int pst_dtype_is_int(pst_dtype dt) {
    return dt == PST_INT32 || dt == PST_INT64 || dt == PST_UINT8;
}

pst_shape pst_shape_make(int rank, const int64_t *dims) {
    pst_shape s;
    memset(&s, 0, sizeof s);
    PST_ASSERT(rank >= -1 && rank <= PST_MAX_RANK);
    s.rank = rank;
    for (int i = 0; i < rank; i++) s.dims[i] = dims[i];
    return s;
}
pst_shape pst_shape_scalar(void) { return pst_shape_make(0, NULL); }
pst_shape pst_shape_1d(int64_t d0) { return pst_shape_make(1, &d0); }
pst_shape pst_shape_2d(int64_t d0, int64_t d1) {
    int64_t d[2] = {d0, d1};
    return pst_shape_make(2, d);
}
pst_shape pst_shape_4d(int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t d[4] = {d0, d1, d2, d3};
    return pst_shape_make(4, d);
}
pst_shape pst_shape_unknown(void) { return pst_shape_make(-1, NULL); }

pst_shape pst_shape_prepend(pst_shape s, int64_t d) {
    if (s.rank < 0 || s.rank >= PST_MAX_RANK) return pst_shape_unknown();
    memmove(s.dims + 1, s.dims, (size_t)s.rank * sizeof *s.dims);
    s.dims[0] = d;
    s.rank++;
    return s;
}

int pst_shape_equal(const pst_shape *a, const pst_shape *b) {
    if (a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

int pst_shape_is_known(const pst_shape *s) {
    if (s->rank < 0) return 0;
    for (int i = 0; i < s->rank; i++)
        if (s->dims[i] < 0) return 0;
    return 1;
}

int pst_shape_compatible(const pst_shape *a, const pst_shape *b) {
    if (a->rank < 0 || b->rank < 0) return 1;
    if (a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] >= 0 && b->dims[i] >= 0 && a->dims[i] != b->dims[i]) return 0;
    return 1;
}

int pst_mul_overflow_i64(int64_t a, int64_t b, int64_t *out) {
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}
int pst_add_overflow_i64(int64_t a, int64_t b, int64_t *out) {
    return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

int pst_shape_num_elements(const pst_shape *s, int64_t *out, pst_status *st) {
    char buf[128];
    if (s->rank < 0 || s->rank > PST_MAX_RANK)
        return pst_status_set(st, PST_E_INVALID, "shape has invalid rank %d", s->rank);
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) {
        if (s->dims[i] < 0)
            return pst_status_set(st, PST_E_INVALID, "shape %s has a negative or unknown dim",
                                  pst_shape_str(s, buf, sizeof buf));
        if (pst_mul_overflow_i64(n, s->dims[i], &n))
            return pst_status_set(st, PST_E_INVALID, "shape %s has too many elements",
                                  pst_shape_str(s, buf, sizeof buf));
    }
    *out = n;
    return 0;
}

const char *pst_shape_str(const pst_shape *s, char *buf, size_t len) {
    if (s->rank < 0) {
        snprintf(buf, len, "<unknown>");
        return buf;
    }
    size_t off = 0;
    off += (size_t)snprintf(buf + off, len - off, "[");
    for (int i = 0; i < s->rank && off < len; i++) {
        if (s->dims[i] < 0)
            off += (size_t)snprintf(buf + off, len - off, "%s?", i ? "," : "");
        else
            off += (size_t)snprintf(buf + off, len - off, "%s%lld", i ? "," : "",
                                    (long long)s->dims[i]);
    }
    if (off < len) snprintf(buf + off, len - off, "]");
    return buf;
}

/*
 * Tensor buffers: 64-byte aligned (4096 for buffers of 1 MiB and more, so checkpoints can write
 * them with O_DIRECT), with the block size kept in a header in front. Large blocks (>= 64 KiB)
 * are recycled through a cache (up to 256 MiB in up to 512 blocks) instead of going back to the
 * kernel: a training step frees and reallocates the same activation sizes every step, a worker
 * pulls every variable every step, and fresh pages would each cost a page fault (with 64 blocks,
 * pulling 100 variables of 1 MB over MPI spent a fifth of its time clearing new pages).
 * Blocks of 2 MiB and more start on a 2 MiB boundary and ask for transparent huge pages
 * (madvise; Debian's kernels give them only on request) over their whole 2 MiB extents: moving
 * a tensor between processes (MPI's single-copy path pins every page) and reading it in a
 * kernel then walk a 512th of the page entries. PST_HUGE_PAGES=0 turns this off.
 */
#define CACHE_MIN ((size_t)64 << 10)
#define PAGE_ALIGN_MIN ((size_t)1 << 20)
#define CACHE_SLOTS 512
#define HUGE_MIN ((size_t)2 << 20)
#define CACHE_MAX_BYTES ((size_t)256 << 20)

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static void *cache_ptr[CACHE_SLOTS];
static size_t cache_size[CACHE_SLOTS];
static size_t cache_bytes;

/* Header before the data: [block size][...][header size] with the header size right before
 * the data pointer. */
static size_t header_for(size_t n) { return n >= PAGE_ALIGN_MIN ? 4096 : 64; }

static int huge_pages(void) {
    static atomic_int on = -1;
    int v = atomic_load(&on);
    if (v < 0) {
        const char *e = getenv("PST_HUGE_PAGES");
        v = !(e && strcmp(e, "0") == 0);
        atomic_store(&on, v);
    }
    return v;
}

void *pst_aligned_alloc(size_t nbytes) {
    size_t n = (nbytes + 63) & ~(size_t)63;
    if (n == 0) n = 64;
    size_t hdr = header_for(n);
    n = (n + hdr - 1) & ~(hdr - 1); /* aligned_alloc wants a multiple of the alignment */
    if (n >= CACHE_MIN) {
        pthread_mutex_lock(&cache_mu);
        int best = -1;
        for (int i = 0; i < CACHE_SLOTS; i++)
            if (cache_ptr[i] && cache_size[i] >= n && cache_size[i] <= n + n / 4 &&
                header_for(cache_size[i]) == hdr &&
                (best < 0 || cache_size[i] < cache_size[best]))
                best = i;
        if (best >= 0) {
            char *raw = cache_ptr[best];
            cache_ptr[best] = NULL;
            cache_bytes -= cache_size[best];
            pthread_mutex_unlock(&cache_mu);
            return raw + hdr;
        }
        pthread_mutex_unlock(&cache_mu);
    }
    char *raw = NULL;
    if (n + hdr >= HUGE_MIN && huge_pages()) {
        /* Whole extents only; a block within an eighth of a whole number of extents is
         * rounded up to it (4 MB of floats: 4.6% more), else its tail stays in small pages. */
        size_t whole = (n + hdr + HUGE_MIN - 1) & ~(HUGE_MIN - 1);
        if (whole - (n + hdr) <= (n + hdr) / 8) n = whole - hdr;
        if (posix_memalign((void **)&raw, HUGE_MIN, n + hdr) != 0) return NULL;
        madvise(raw, (n + hdr) & ~(HUGE_MIN - 1), MADV_HUGEPAGE); /* a hint: errors ignored */
    } else {
        raw = aligned_alloc(hdr, n + hdr);
    }
    if (raw == NULL) return NULL;
    *(size_t *)raw = n;
    ((size_t *)(raw + hdr))[-1] = hdr;
    return raw + hdr;
}

void pst_aligned_free(void *p) {
    if (p == NULL) return;
    size_t hdr = ((size_t *)p)[-1];
    char *raw = (char *)p - hdr;
    size_t n = *(size_t *)raw;
    if (n >= CACHE_MIN) {
        pthread_mutex_lock(&cache_mu);
        if (cache_bytes + n <= CACHE_MAX_BYTES)
            for (int i = 0; i < CACHE_SLOTS; i++)
                if (cache_ptr[i] == NULL) {
                    cache_ptr[i] = raw;
                    cache_size[i] = n;
                    cache_bytes += n;
                    raw = NULL;
                    break;
                }
        pthread_mutex_unlock(&cache_mu);
    }
    free(raw);
}

/* The tensor's header for dt and shape: 1 reference, no data yet (nbytes set). */
static pst_tensor *tensor_header(pst_dtype dt, pst_shape shape, pst_status *st) {
    size_t es = pst_dtype_size(dt);
    if (es == 0) {
        pst_status_set(st, PST_E_INVALID, "unsupported dtype %d", (int)dt);
        return NULL;
    }
    int64_t n, nb;
    if (pst_shape_num_elements(&shape, &n, st) < 0) return NULL;
    if (pst_mul_overflow_i64(n, (int64_t)es, &nb) || (uint64_t)nb > (uint64_t)SIZE_MAX / 2) {
        pst_status_set(st, PST_E_INVALID, "tensor of %lld elements is too large", (long long)n);
        return NULL;
    }
    pst_tensor *t = calloc(1, sizeof *t);
    if (t == NULL) goto oom;
    t->dtype = dt;
    t->shape = shape;
    t->n = n;
    t->nbytes = (size_t)nb;
    atomic_init(&t->refs, 1);
    return t;
oom:
    pst_status_set(st, PST_E_EXHAUSTED, "out of memory allocating %lld bytes", (long long)nb);
    return NULL;
}

static pst_tensor *tensor_alloc(pst_dtype dt, pst_shape shape, int zero, pst_status *st) {
    pst_tensor *t = tensor_header(dt, shape, st);
    if (t && t->nbytes > 0) {
        t->data = pst_aligned_alloc(t->nbytes);
        if (t->data == NULL) {
            pst_status_set(st, PST_E_EXHAUSTED, "out of memory allocating %zu bytes", t->nbytes);
            free(t);
            return NULL;
        }
        if (zero || dt == PST_STRING) memset(t->data, 0, t->nbytes);
    }
    return t;
}

pst_tensor *pst_tensor_adopt(pst_dtype dt, pst_shape shape, void *data, pst_status *st) {
    pst_tensor *t = dt == PST_STRING ? NULL : tensor_header(dt, shape, st);
    if (dt == PST_STRING) pst_status_set(st, PST_E_INVALID, "a string tensor cannot adopt bytes");
    if (!t) {
        pst_aligned_free(data);
        return NULL;
    }
    if (t->nbytes > 0) t->data = data;
    else pst_aligned_free(data);
    return t;
}

pst_tensor *pst_tensor_new(pst_dtype dt, pst_shape shape, pst_status *st) {
    return tensor_alloc(dt, shape, 0, st);
}
pst_tensor *pst_tensor_new_zeros(pst_dtype dt, pst_shape shape, pst_status *st) {
    return tensor_alloc(dt, shape, 1, st);
}
int pst_tstring_set(pst_tstring *s, const void *p, size_t len) {
    char *c = NULL;
    if (len) {
        if (len == SIZE_MAX || (c = malloc(len + 1)) == NULL) return PST_E_EXHAUSTED;
        memcpy(c, p, len);
        c[len] = '\0';
    }
    free(s->p);
    s->p = c;
    s->len = len;
    return 0;
}

int pst_tensor_copy_elems(pst_tensor *dst, int64_t di, const pst_tensor *src, int64_t si,
                          int64_t n, pst_status *st) {
    PST_ASSERT(dst->dtype == src->dtype && di >= 0 && si >= 0 && di + n <= dst->n &&
               si + n <= src->n);
    if (dst->dtype != PST_STRING) {
        size_t es = pst_dtype_size(dst->dtype);
        if (n > 0) memmove((char *)dst->data + (size_t)di * es, (const char *)src->data + (size_t)si * es,
                           (size_t)n * es);
        return 0;
    }
    const pst_tstring *s = pst_tensor_str(src) + si;
    pst_tstring *d = pst_tensor_str(dst) + di;
    for (int64_t i = 0; i < n; i++)
        if (pst_tstring_set(&d[i], s[i].p, s[i].len) < 0)
            return pst_status_set(st, PST_E_EXHAUSTED, "out of memory copying a %zu-byte string",
                                  s[i].len);
    return 0;
}

pst_tensor *pst_tensor_new_copy(pst_dtype dt, pst_shape shape, const void *src, pst_status *st) {
    pst_tensor *t = tensor_alloc(dt, shape, 0, st);
    if (t && t->nbytes && dt != PST_STRING) memcpy(t->data, src, t->nbytes);
    if (t && dt == PST_STRING) {
        const pst_tstring *s = src;
        for (int64_t i = 0; i < t->n; i++)
            if (pst_tstring_set(&pst_tensor_str(t)[i], s[i].p, s[i].len) < 0) {
                pst_status_set(st, PST_E_EXHAUSTED, "out of memory copying a string tensor");
                pst_tensor_unref(t);
                return NULL;
            }
    }
    return t;
}

pst_tensor *pst_tensor_from_strs(int n, const char *const *v) {
    pst_tensor *t = tensor_alloc(PST_STRING, pst_shape_1d(n), 1, NULL);
    for (int i = 0; t && i < n; i++)
        if (pst_tstring_set(&pst_tensor_str(t)[i], v[i], strlen(v[i])) < 0) {
            pst_tensor_unref(t);
            return NULL;
        }
    return t;
}

pst_tensor *pst_tensor_scalar_str(const char *v) {
    pst_tensor *t = tensor_alloc(PST_STRING, pst_shape_scalar(), 1, NULL);
    if (t && pst_tstring_set(pst_tensor_str(t), v, strlen(v)) < 0) {
        pst_tensor_unref(t);
        return NULL;
    }
    return t;
}

pst_tensor *pst_tensor_scalar_f32(float v) {
    return pst_tensor_new_copy(PST_FLOAT, pst_shape_scalar(), &v, NULL);
}
pst_tensor *pst_tensor_scalar_f64(double v) {
    return pst_tensor_new_copy(PST_DOUBLE, pst_shape_scalar(), &v, NULL);
}
pst_tensor *pst_tensor_scalar_i32(int32_t v) {
    return pst_tensor_new_copy(PST_INT32, pst_shape_scalar(), &v, NULL);
}
pst_tensor *pst_tensor_scalar_i64(int64_t v) {
    return pst_tensor_new_copy(PST_INT64, pst_shape_scalar(), &v, NULL);
}
pst_tensor *pst_tensor_scalar_bool(int v) {
    uint8_t b = v ? 1 : 0;
    return pst_tensor_new_copy(PST_BOOL, pst_shape_scalar(), &b, NULL);
}
pst_tensor *pst_tensor_from_f32(pst_shape shape, const float *v) {
    return pst_tensor_new_copy(PST_FLOAT, shape, v, NULL);
}
pst_tensor *pst_tensor_from_f64(pst_shape shape, const double *v) {
    return pst_tensor_new_copy(PST_DOUBLE, shape, v, NULL);
}
pst_tensor *pst_tensor_from_i32(pst_shape shape, const int32_t *v) {
    return pst_tensor_new_copy(PST_INT32, shape, v, NULL);
}
pst_tensor *pst_tensor_from_i64(pst_shape shape, const int64_t *v) {
    return pst_tensor_new_copy(PST_INT64, shape, v, NULL);
}

pst_tensor *pst_tensor_reshape_view(pst_tensor *t, pst_shape shape, pst_status *st) {
    int64_t n;
    char a[128], b[128];
    if (pst_shape_num_elements(&shape, &n, st) < 0) return NULL;
    if (n != t->n) {
        pst_status_set(st, PST_E_INVALID, "cannot reshape a tensor of shape %s to %s",
                       pst_shape_str(&t->shape, a, sizeof a), pst_shape_str(&shape, b, sizeof b));
        return NULL;
    }
    pst_tensor *v = calloc(1, sizeof *v);
    if (v == NULL) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        return NULL;
    }
    *v = (pst_tensor){.dtype = t->dtype, .shape = shape, .n = n, .nbytes = t->nbytes,
                      .data = t->data};
    atomic_init(&v->refs, 1);
    v->base = pst_tensor_ref(t->base ? t->base : t);
    return v;
}

pst_tensor *pst_tensor_clone(const pst_tensor *t, pst_status *st) {
    return pst_tensor_new_copy(t->dtype, t->shape, t->data, st);
}

pst_tensor *pst_tensor_ref(pst_tensor *t) {
    if (t) atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void pst_tensor_unref(pst_tensor *t) {
    if (t == NULL) return;
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
    if (t->base) {
        pst_tensor_unref(t->base);
    } else {
        if (t->dtype == PST_STRING)
            for (int64_t i = 0; i < t->n; i++) free(pst_tensor_str(t)[i].p);
        pst_aligned_free(t->data);
    }
    free(t);
}

double pst_tensor_get_f64(const pst_tensor *t, int64_t i) {
    switch (t->dtype) {
    case PST_FLOAT: return ((const float *)t->data)[i];
    case PST_DOUBLE: return ((const double *)t->data)[i];
    case PST_INT32: return ((const int32_t *)t->data)[i];
    case PST_INT64: return (double)((const int64_t *)t->data)[i];
    case PST_UINT8:
    case PST_BOOL: return ((const uint8_t *)t->data)[i];
    default: return 0;
    }
}

int64_t pst_tensor_get_i64(const pst_tensor *t, int64_t i) {
    switch (t->dtype) {
    case PST_FLOAT: return (int64_t)((const float *)t->data)[i];
    case PST_DOUBLE: return (int64_t)((const double *)t->data)[i];
    case PST_INT32: return ((const int32_t *)t->data)[i];
    case PST_INT64: return ((const int64_t *)t->data)[i];
    case PST_UINT8:
    case PST_BOOL: return ((const uint8_t *)t->data)[i];
    default: return 0;
    }
}

void pst_tensor_set_f64(pst_tensor *t, int64_t i, double v) {
    switch (t->dtype) {
    case PST_FLOAT: ((float *)t->data)[i] = (float)v; break;
    case PST_DOUBLE: ((double *)t->data)[i] = v; break;
    case PST_INT32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case PST_INT64: ((int64_t *)t->data)[i] = (int64_t)v; break;
    case PST_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
    case PST_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    default: break;
    }
}
