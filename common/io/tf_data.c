/* tf_data: TF 1.x dataset and iterator ops (see tf_data.h). Semantics follow TF 1.13-1.15's
 * kernels: elements in order, a final short batch unless drop_remainder, shuffle buffers that
 * hand out a random element and refill from the input, repeat -1 forever (ending when the
 * input is empty), interleave cycling through cycle_length inputs block_length elements at a
 * time. Functions (map, filter, flat map) run their body graph in a session of their own
 * that shares the calling session's variables. */
#include "tf_data.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "op.h"
#include "ops.h"
#include "ops_queue.h"
#include "session.h"
#include "tfrecord.h"
#include "varstore.h"

#define DS_MAGIC 0x74666473u  /* a dataset */
#define IT_MAGIC 0x74666469u  /* an iterator resource */
#define MAX_COMP 64
#define OVERRIDE_KEY "tf.data file override:"

enum kind {
    K_TFRECORD, K_SLICES, K_TENSOR, K_RANGE, K_MAP, K_FILTER, K_FLAT_MAP, K_BATCH, K_SHUFFLE,
    K_REPEAT, K_TAKE, K_SKIP, K_CONCAT, K_ZIP, K_TEXT, K_FIXED, K_PADDED_BATCH, K_CACHE,
    K_UNBATCH, K_SHARD
};

typedef struct dataset dataset;
struct dataset {
    uint32_t magic;
    atomic_int refs;
    enum kind kind;
    int n_comp;
    dataset *in, *in2;        /* inputs (zip: in2 unused, see zip) */
    dataset **zip;
    int n_zip;
    int64_t a, b, c;          /* batch size / counts / range start, stop, step / cycle, block */
    int flag;                 /* drop_remainder, reshuffle_each_iteration */
    uint64_t seed;
    atomic_llong iterations;  /* shuffle: iterators made so far (reshuffle) */
    pst_tensor **t;           /* slices / tensor components, captured arguments */
    int n_t;
    char **files;
    int n_files;
    pst_tfrecord_compression comp;
    int64_t header, record, footer; /* FixedLengthRecordDataset */
    pst_tensor **pad_values;  /* PaddedBatchDataset: one scalar per component */
    int64_t (*pad_shapes)[PST_MAX_RANK]; /* and its padded shapes (-1: the batch's longest) */
    int *pad_ranks;
    /* CacheDataset: the elements of the first complete pass */
    pst_tensor **cache;
    int64_t n_cache;
    int cached;
    /* A function of the graph's library, run in a session of its own. */
    const pst_function *fn;
    pst_var_store *vars;
    pst_session *fs;
    pthread_mutex_t mu;
    char *name;               /* the node that made it, for errors */
};

typedef struct iter iter;
struct iter {
    dataset *d;
    iter *in, *sub;
    int64_t pos, left;
    int done;
    /* TFRecord, text and fixed-length files */
    int file;
    pst_tfrecord_reader *r;
    FILE *fp;
    char *line;
    size_t line_cap;
    int64_t file_left; /* fixed-length: record bytes left before the footer */
    /* cache: what this pass read so far; unbatch: the batch being split */
    pst_tensor **got;
    int64_t n_got, cap_got;
    /* shuffle buffer */
    pst_tensor **buf; /* n_comp per element */
    int64_t nbuf, cap_buf; /* elements held, room for (grown up to buffer_size) */
    uint64_t rng;
    /* interleave: the open inputs of the cycle (pos: the place in the current block); zip:
     * one iterator per input */
    iter **cycle;
    int64_t cur, n_open;
    int in_end;
};

typedef struct it_res {
    uint32_t magic;
    pthread_mutex_t mu;
    iter *it;
    int n_comp;
    int made;     /* OneShotIterator: its dataset was made */
    char key[512];
} it_res;

static void ds_unref(dataset *d);
static iter *iter_new(dataset *d, pst_status *st);
static void iter_free(iter *it);
static int iter_next(iter *it, pst_tensor **out, pst_status *st);

static void unref_all(pst_tensor **t, int n) {
    for (int i = 0; i < n; i++) {
        pst_tensor_unref(t[i]);
        t[i] = NULL;
    }
}

static dataset *ds_new(enum kind k, int n_comp, const char *name) {
    dataset *d = calloc(1, sizeof *d);
    PST_ASSERT(d != NULL);
    d->magic = DS_MAGIC;
    atomic_init(&d->refs, 1);
    d->kind = k;
    d->n_comp = n_comp;
    d->name = strdup(name ? name : "");
    PST_ASSERT(d->name != NULL);
    pthread_mutex_init(&d->mu, NULL);
    return d;
}

static dataset *ds_ref(dataset *d) {
    if (d) atomic_fetch_add(&d->refs, 1);
    return d;
}

static void ds_unref(dataset *d) {
    if (d == NULL || atomic_fetch_sub(&d->refs, 1) != 1) return;
    ds_unref(d->in);
    ds_unref(d->in2);
    for (int i = 0; i < d->n_zip; i++) ds_unref(d->zip[i]);
    free(d->zip);
    unref_all(d->t, d->n_t);
    free(d->t);
    if (d->pad_values) unref_all(d->pad_values, d->n_comp);
    free(d->pad_values), free(d->pad_shapes), free(d->pad_ranks);
    if (d->cache) unref_all(d->cache, (int)(d->n_cache * d->n_comp));
    free(d->cache);
    for (int i = 0; i < d->n_files; i++) free(d->files[i]);
    free(d->files);
    pst_session_free(d->fs);
    pthread_mutex_destroy(&d->mu);
    free(d->name);
    free(d);
}

/* ---- Functions -------------------------------------------------------------------------- */

/* Runs d's function on args (the element's components) followed by the captured arguments;
 * out receives its results (new references). */
static int call_fn(dataset *d, pst_tensor *const *args, int n_args, pst_tensor **out,
                   pst_status *st) {
    const pst_function *f = d->fn;
    if (n_args + d->n_t != f->n_args)
        return pst_status_set(st, PST_E_INVALID, "%s: function '%s' takes %d arguments, but "
                              "the element has %d components and %d captured inputs", d->name,
                              f->name, f->n_args, n_args, d->n_t);
    pthread_mutex_lock(&d->mu);
    if (d->fs == NULL) {
        pst_session_opts so = {.vars = d->vars, .inter_op_threads = 1};
        pst_status sst = {0};
        d->fs = pst_session_new(f->body, &so, &sst);
        if (d->fs == NULL) {
            pthread_mutex_unlock(&d->mu);
            return pst_status_set(st, sst.code ? sst.code : PST_E_EXHAUSTED, "%s: function "
                                  "'%s': %s", d->name, f->name, sst.msg);
        }
    }
    pthread_mutex_unlock(&d->mu);
    pst_feed feeds[MAX_COMP * 2];
    if (f->n_args > MAX_COMP * 2)
        return pst_status_set(st, PST_E_UNIMPLEMENTED, "%s: function '%s' has %d arguments "
                              "(at most %d)", d->name, f->name, f->n_args, MAX_COMP * 2);
    for (int i = 0; i < f->n_args; i++) {
        feeds[i].output = pst_out(f->args[i], 0);
        feeds[i].value = i < n_args ? args[i] : d->t[i - n_args];
    }
    pst_status fst = {0};
    if (pst_session_run(d->fs, feeds, f->n_args, f->rets, f->n_rets, NULL, 0, out, &fst) < 0)
        return pst_status_set(st, fst.code, "%s: function '%s': %s", d->name, f->name, fst.msg);
    return 0;
}

/* ---- Iterators -------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static iter *iter_new(dataset *d, pst_status *st) {
    iter *it = calloc(1, sizeof *it);
    PST_ASSERT(it != NULL);
    it->d = ds_ref(d);
    switch (d->kind) {
    case K_SHUFFLE:
    case K_MAP: case K_FILTER: case K_BATCH: case K_TAKE: case K_SKIP: case K_CONCAT:
    case K_PADDED_BATCH: case K_CACHE: case K_UNBATCH: case K_SHARD:
        if (d->kind == K_CACHE) {
            pthread_mutex_lock(&d->mu);
            int cached = d->cached;
            pthread_mutex_unlock(&d->mu);
            if (cached) break; /* replays the cache */
        }
        if (d->kind == K_SHUFFLE) {
            int64_t n = atomic_fetch_add(&d->iterations, 1);
            it->rng = mix64(d->seed ^ mix64((uint64_t)(d->flag ? n : 0)));
        }
        if ((it->in = iter_new(d->in, st)) == NULL) {
            iter_free(it);
            return NULL;
        }
        break;
    case K_REPEAT:
        it->left = d->a;
        if (d->a != 0 && (it->in = iter_new(d->in, st)) == NULL) {
            iter_free(it);
            return NULL;
        }
        break;
    case K_FLAT_MAP:
        if ((it->in = iter_new(d->in, st)) == NULL) {
            iter_free(it);
            return NULL;
        }
        it->cycle = calloc((size_t)d->b + 1, sizeof *it->cycle);
        PST_ASSERT(it->cycle != NULL);
        break;
    case K_ZIP:
        it->cycle = calloc((size_t)d->n_zip + 1, sizeof *it->cycle);
        PST_ASSERT(it->cycle != NULL);
        for (int i = 0; i < d->n_zip; i++)
            if ((it->cycle[i] = iter_new(d->zip[i], st)) == NULL) {
                iter_free(it);
                return NULL;
            }
        break;
    default: break;
    }
    if (d->kind == K_SKIP) it->left = d->a;
    if (d->kind == K_TAKE) it->left = d->a;
    if (d->kind == K_RANGE) it->pos = d->a;
    return it;
}

static void iter_free(iter *it) {
    if (it == NULL) return;
    iter_free(it->in);
    iter_free(it->sub);
    pst_tfrecord_reader_free(it->r);
    if (it->fp) fclose(it->fp);
    free(it->line);
    if (it->got) unref_all(it->got, (int)it->n_got);
    free(it->got);
    if (it->buf) unref_all(it->buf, (int)(it->nbuf * it->d->n_comp));
    free(it->buf);
    int nc = it->d->kind == K_ZIP ? it->d->n_zip : it->d->kind == K_FLAT_MAP ? (int)it->d->b : 0;
    for (int i = 0; it->cycle && i < nc; i++) iter_free(it->cycle[i]);
    free(it->cycle);
    ds_unref(it->d);
    free(it);
}

static int next_tfrecord(iter *it, pst_tensor **out, pst_status *st) {
    dataset *d = it->d;
    for (;;) {
        if (it->r == NULL) {
            if (it->file >= d->n_files) return 0;
            pst_tfrecord_reader_opts o = {.compression = d->comp};
            pst_status rst = {0};
            it->r = pst_tfrecord_reader_open(d->files[it->file], &o, &rst);
            if (it->r == NULL)
                return pst_status_set(st, rst.code ? rst.code : PST_E_NOT_FOUND, "%s: %s",
                                      d->name, rst.msg);
        }
        const uint8_t *rec;
        size_t len;
        pst_status rst = {0};
        int rc = pst_tfrecord_reader_next(it->r, &rec, &len, &rst);
        if (rc < 0) return pst_status_set(st, rc, "%s: %s", d->name, rst.msg);
        if (rc == 1) {
            pst_tensor *t = pst_tensor_new(PST_STRING, pst_shape_scalar(), st);
            if (t == NULL) return st->code;
            if (pst_tstring_set(pst_tensor_str(t), rec, len) < 0) {
                pst_tensor_unref(t);
                return pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory", d->name);
            }
            out[0] = t;
            return 1;
        }
        pst_tfrecord_reader_free(it->r);
        it->r = NULL;
        it->file++;
    }
}

/* Row i of each of n tensors (TensorSliceDataset's components, an unbatched batch). */
static int slice_row(pst_tensor *const *t, int n, int64_t i, pst_tensor **out, pst_status *st) {
    for (int k = 0; k < n; k++) {
        const pst_tensor *src = t[k];
        pst_shape s = {.rank = src->shape.rank - 1};
        for (int j = 1; j < src->shape.rank; j++) s.dims[j - 1] = src->shape.dims[j];
        int64_t per = src->shape.dims[0] ? src->n / src->shape.dims[0] : 0;
        pst_tensor *t = pst_tensor_new(src->dtype, s, st);
        if (t == NULL || pst_tensor_copy_elems(t, 0, src, i * per, per, st) < 0) {
            pst_tensor_unref(t);
            unref_all(out, k);
            return st->code ? st->code : PST_E_EXHAUSTED;
        }
        out[k] = t;
    }
    return 1;
}

/* Opens the iterator's next file for a text or fixed-length dataset: 1, 0 after the last. */
static int open_next_file(iter *it, pst_status *st) {
    dataset *d = it->d;
    while (it->fp == NULL) {
        if (it->file >= d->n_files) return 0;
        const char *path = d->files[it->file];
        it->fp = fopen(path, "rb");
        if (it->fp == NULL)
            return pst_status_set(st, PST_E_NOT_FOUND, "%s: cannot open %s", d->name, path);
        if (d->kind == K_FIXED) {
            if (fseek(it->fp, 0, SEEK_END) != 0) {
                fclose(it->fp), it->fp = NULL;
                return pst_status_set(st, PST_E_IO, "%s: cannot read %s", d->name, path);
            }
            int64_t size = ftell(it->fp);
            it->file_left = size - d->header - d->footer;
            if (it->file_left < 0 || it->file_left % d->record != 0) {
                fclose(it->fp), it->fp = NULL;
                return pst_status_set(st, PST_E_DATA_LOSS, "%s: %s holds %lld bytes, not a "
                                      "header of %lld, whole records of %lld and a footer of "
                                      "%lld", d->name, path, (long long)size,
                                      (long long)d->header, (long long)d->record,
                                      (long long)d->footer);
            }
            fseek(it->fp, d->header, SEEK_SET);
        }
    }
    return 1;
}

static pst_tensor *string_scalar(const void *p, size_t len, pst_status *st) {
    pst_tensor *t = pst_tensor_new(PST_STRING, pst_shape_scalar(), st);
    if (t && pst_tstring_set(pst_tensor_str(t), p, len) < 0) {
        pst_tensor_unref(t);
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
        return NULL;
    }
    return t;
}

/* TextLineDataset: each line without its "\n" (or "\r\n"). FixedLengthRecordDataset: each
 * record of `record` bytes between the header and the footer. */
static int next_file_record(iter *it, pst_tensor **out, pst_status *st) {
    dataset *d = it->d;
    for (;;) {
        int rc = open_next_file(it, st);
        if (rc <= 0) return rc;
        if (d->kind == K_TEXT) {
            ssize_t n = getline(&it->line, &it->line_cap, it->fp);
            if (n >= 0) {
                if (n > 0 && it->line[n - 1] == '\n') n--;
                if (n > 0 && it->line[n - 1] == '\r') n--;
                return (out[0] = string_scalar(it->line, (size_t)n, st)) ? 1 : st->code;
            }
        } else if (it->file_left > 0) {
            char *buf = malloc((size_t)d->record + 1);
            if (buf == NULL) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
            size_t got = fread(buf, 1, (size_t)d->record, it->fp);
            if ((int64_t)got != d->record) {
                free(buf);
                return pst_status_set(st, PST_E_DATA_LOSS, "%s: %s ends inside a record",
                                      d->name, d->files[it->file]);
            }
            it->file_left -= d->record;
            out[0] = string_scalar(buf, got, st);
            free(buf);
            return out[0] ? 1 : st->code;
        }
        if (d->kind == K_TEXT && ferror(it->fp))
            return pst_status_set(st, PST_E_IO, "%s: cannot read %s", d->name,
                                  d->files[it->file]);
        fclose(it->fp);
        it->fp = NULL;
        it->file++;
    }
}

/* Appends an element's components (the iterator's references) to it->got. */
static void keep(iter *it, pst_tensor *const *el, int n) {
    if (it->n_got + n > it->cap_got) {
        it->cap_got = (it->cap_got + n) * 2;
        it->got = realloc(it->got, (size_t)it->cap_got * sizeof *it->got);
        PST_ASSERT(it->got != NULL);
    }
    for (int i = 0; i < n; i++) it->got[it->n_got++] = el[i];
}

/* CacheDataset: the first pass that reaches the end stores what it read in the dataset; later
 * iterators replay it (a file name is treated as the in-memory cache). */
static int next_cache(iter *it, pst_tensor **out, pst_status *st) {
    dataset *d = it->d;
    int nc = d->n_comp;
    if (it->in == NULL) { /* replaying */
        if (it->pos >= d->n_cache) return 0;
        for (int k = 0; k < nc; k++) out[k] = pst_tensor_ref(d->cache[it->pos * nc + k]);
        it->pos++;
        return 1;
    }
    int rc = iter_next(it->in, out, st);
    if (rc > 0) {
        for (int k = 0; k < nc; k++) pst_tensor_ref(out[k]);
        keep(it, out, nc);
    } else if (rc == 0) {
        pthread_mutex_lock(&d->mu);
        if (!d->cached) {
            d->cached = 1;
            d->cache = it->got;
            d->n_cache = it->n_got / (nc ? nc : 1);
            it->got = NULL;
            it->n_got = it->cap_got = 0;
        }
        pthread_mutex_unlock(&d->mu);
    }
    return rc;
}

/* UnbatchDataset: each row of each input element. */
static int next_unbatch(iter *it, pst_tensor **out, pst_status *st) {
    dataset *d = it->d;
    int nc = d->n_comp;
    while (it->n_got == 0 || it->pos >= it->got[0]->shape.dims[0]) {
        if (it->got) unref_all(it->got, (int)it->n_got);
        it->n_got = 0;
        it->pos = 0;
        pst_tensor *el[MAX_COMP] = {0};
        int rc = iter_next(it->in, el, st);
        if (rc <= 0) return rc;
        for (int k = 0; k < nc; k++)
            if (el[k]->shape.rank < 1 || el[k]->shape.dims[0] != el[0]->shape.dims[0]) {
                unref_all(el, nc);
                return pst_status_set(st, PST_E_INVALID, "%s: the components of an element "
                                      "must share their first dimension to unbatch", d->name);
            }
        keep(it, el, nc);
    }
    return slice_row(it->got, nc, it->pos++, out, st);
}

/* Stacks n elements (n_comp tensors each, in elems) into one batch per component. A plain
 * batch needs equal shapes; a padded batch (PaddedBatchDataset) pads component k of every
 * element with pad_values[k] to its padded shape (a -1 dim: the batch's longest). */
static int make_batch(dataset *d, pst_tensor **elems, int64_t n, pst_tensor **out,
                      pst_status *st) {
    int padded = d->pad_values != NULL;
    for (int k = 0; k < d->n_comp; k++) {
        const pst_tensor *first = elems[k];
        int r = padded ? d->pad_ranks[k] : first->shape.rank;
        if (r >= PST_MAX_RANK) {
            unref_all(out, k);
            return pst_status_set(st, PST_E_UNIMPLEMENTED, "%s: a batch of rank %d elements",
                                  d->name, r);
        }
        pst_shape s = {.rank = r + 1};
        s.dims[0] = n;
        for (int j = 0; j < r; j++)
            s.dims[j + 1] = !padded ? first->shape.dims[j]
                                    : d->pad_shapes[k][j] >= 0 ? d->pad_shapes[k][j] : 0;
        for (int64_t e = 0; e < n; e++) {
            const pst_tensor *x = elems[e * d->n_comp + k];
            char a[64], b[64];
            if (!padded && (!pst_shape_equal(&x->shape, &first->shape) || x->dtype != first->dtype)) {
                unref_all(out, k);
                return pst_status_set(st, PST_E_INVALID, "%s: cannot batch tensors with "
                                      "different shapes in component %d: the first element has "
                                      "shape %s and element %lld has %s", d->name, k,
                                      pst_shape_str(&first->shape, a, sizeof a), (long long)e,
                                      pst_shape_str(&x->shape, b, sizeof b));
            }
            if (padded && (x->shape.rank != r || x->dtype != first->dtype)) {
                unref_all(out, k);
                return pst_status_set(st, PST_E_INVALID, "%s: component %d of element %lld has "
                                      "rank %d; its padded shape has rank %d", d->name, k,
                                      (long long)e, x->shape.rank, r);
            }
            for (int j = 0; padded && j < r; j++) {
                if (d->pad_shapes[k][j] < 0) {
                    if (x->shape.dims[j] > s.dims[j + 1]) s.dims[j + 1] = x->shape.dims[j];
                } else if (x->shape.dims[j] > d->pad_shapes[k][j]) {
                    unref_all(out, k);
                    return pst_status_set(st, PST_E_INVALID, "%s: component %d of element %lld "
                                          "has %lld in dimension %d, more than its padded shape's "
                                          "%lld", d->name, k, (long long)e,
                                          (long long)x->shape.dims[j], j,
                                          (long long)d->pad_shapes[k][j]);
                }
            }
        }
        const pst_tensor *pv = padded ? d->pad_values[k] : NULL;
        if (pv && pv->dtype != first->dtype) {
            unref_all(out, k);
            return pst_status_set(st, PST_E_INVALID, "%s: padding value %d is %s, the component "
                                  "%s", d->name, k, pst_dtype_name(pv->dtype),
                                  pst_dtype_name(first->dtype));
        }
        pst_tensor *t = pst_tensor_new(first->dtype, s, st);
        int rc = t ? 0 : (st->code ? st->code : PST_E_EXHAUSTED);
        for (int64_t i = 0; pv && i < (t ? t->n : 0) && rc == 0; i++)
            rc = pst_tensor_copy_elems(t, i, pv, 0, 1, st);
        int64_t per = 1; /* elements per batch row */
        for (int j = 0; j < r; j++) per *= s.dims[j + 1];
        for (int64_t e = 0; e < n && rc == 0; e++) {
            const pst_tensor *x = elems[e * d->n_comp + k];
            /* Row q of x's last dim goes to its place in the (padded) row of the batch. */
            int64_t inner = r && padded ? x->shape.dims[r - 1] : x->n;
            int64_t rows = inner ? x->n / inner : 0;
            for (int64_t q = 0; q < rows && rc == 0; q++) {
                int64_t off = 0, rem = q;
                for (int j = r - 2; j >= 0 && padded; j--) {
                    int64_t idx = rem % x->shape.dims[j];
                    rem /= x->shape.dims[j];
                    int64_t stride = 1;
                    for (int m = j + 1; m < r; m++) stride *= s.dims[m + 1];
                    off += idx * stride;
                }
                rc = pst_tensor_copy_elems(t, e * per + off, x, q * inner, inner, st);
            }
        }
        if (rc < 0) {
            pst_tensor_unref(t);
            unref_all(out, k);
            return rc;
        }
        out[k] = t;
    }
    return 1;
}

static int next_batch(iter *it, pst_tensor **out, pst_status *st) {
    dataset *d = it->d;
    if (it->done) return 0;
    int64_t cap = d->a, n = 0;
    pst_tensor **elems = calloc((size_t)(cap * d->n_comp) + 1, sizeof *elems);
    if (elems == NULL) return pst_status_set(st, PST_E_EXHAUSTED, "%s: out of memory", d->name);
    int rc = 0;
    while (n < cap) {
        rc = iter_next(it->in, elems + n * d->n_comp, st);
        if (rc <= 0) break;
        n++;
    }
    if (rc == 0) it->done = 1;
    if (rc >= 0) {
        if (n == 0 || (n < cap && d->flag)) rc = 0;
        else rc = make_batch(d, elems, n, out, st);
    }
    unref_all(elems, (int)(n * d->n_comp));
    free(elems);
    return rc;
}

static int next_shuffle(iter *it, pst_tensor **out, pst_status *st) {
    dataset *d = it->d;
    int nc = d->n_comp;
    while (!it->in_end && it->nbuf < d->a) {
        if (it->nbuf == it->cap_buf) { /* grows as it fills: buffer_size may be huge */
            int64_t cap = it->cap_buf ? 2 * it->cap_buf : 64;
            if (cap > d->a) cap = d->a;
            pst_tensor **b = realloc(it->buf, ((size_t)cap * (size_t)nc + 1) * sizeof *b);
            if (b == NULL)
                return pst_status_set(st, PST_E_EXHAUSTED, "%s: a shuffle buffer of %lld "
                                      "elements does not fit in memory", d->name,
                                      (long long)cap);
            it->buf = b;
            it->cap_buf = cap;
        }
        int rc = iter_next(it->in, it->buf + it->nbuf * nc, st);
        if (rc < 0) return rc;
        if (rc == 0) it->in_end = 1;
        else it->nbuf++;
    }
    if (it->nbuf == 0) return 0;
    it->rng = mix64(it->rng);
    int64_t i = (int64_t)(it->rng % (uint64_t)it->nbuf);
    memcpy(out, it->buf + i * nc, (size_t)nc * sizeof *out);
    it->nbuf--;
    memmove(it->buf + i * nc, it->buf + it->nbuf * nc, (size_t)nc * sizeof *out);
    memset(it->buf + it->nbuf * nc, 0, (size_t)nc * sizeof *out);
    return 1;
}

static int next_repeat(iter *it, pst_tensor **out, pst_status *st) {
    dataset *d = it->d;
    for (;;) {
        if (it->in == NULL) return 0;
        int rc = iter_next(it->in, out, st);
        if (rc != 0) {
            if (rc > 0) it->pos++;
            return rc;
        }
        /* The end of one pass: another, unless that was the last or the input is empty. */
        iter_free(it->in);
        it->in = NULL;
        if (it->pos == 0) return 0;
        if (d->a > 0 && --it->left <= 0) return 0;
        it->pos = 0;
        if ((it->in = iter_new(d->in, st)) == NULL) return st->code;
    }
}

/* The dataset handle a flat-map function returned. */
static dataset *ds_of(const pst_tensor *h) {
    if (h == NULL || h->dtype != PST_RESOURCE || h->n != 1) return NULL;
    dataset *d = *(dataset **)h->data;
    return d && d->magic == DS_MAGIC ? d : NULL;
}

/* Opens the next input element's dataset into cycle slot j: 1, 0 at the input's end. */
static int open_sub(iter *it, int64_t j, pst_status *st) {
    dataset *d = it->d;
    pst_tensor *el[MAX_COMP] = {0}, *res[1] = {0};
    int rc = iter_next(it->in, el, st);
    if (rc <= 0) return rc;
    rc = call_fn(d, el, d->in->n_comp, res, st);
    unref_all(el, d->in->n_comp);
    if (rc < 0) return rc;
    dataset *sub = ds_of(res[0]);
    if (sub == NULL) {
        pst_tensor_unref(res[0]);
        return pst_status_set(st, PST_E_INVALID, "%s: function '%s' did not return a dataset",
                              d->name, d->fn->name);
    }
    it->cycle[j] = iter_new(sub, st);
    pst_tensor_unref(res[0]);
    if (it->cycle[j] == NULL) return st->code;
    it->n_open++;
    return 1;
}

/* FlatMap (cycle 1, a block that never ends) and Interleave, as TF's interleave: cycle
 * through b slots, c elements from each in turn; an empty slot takes the input's next element
 * (its dataset) when the cycle reaches it; a slot whose dataset ends passes the turn on. */
static int next_flat_map(iter *it, pst_tensor **out, pst_status *st) {
    dataset *d = it->d;
    while (!it->in_end || it->n_open > 0) {
        iter *c = it->cycle[it->cur];
        if (c) {
            int rc = iter_next(c, out, st);
            if (rc < 0) return rc;
            if (rc > 0) {
                if (d->c > 0 && ++it->pos >= d->c) {
                    it->pos = 0;
                    it->cur = (it->cur + 1) % d->b;
                }
                return 1;
            }
            iter_free(c);
            it->cycle[it->cur] = NULL;
            it->n_open--;
            it->pos = 0;
            it->cur = (it->cur + 1) % d->b;
        } else if (!it->in_end) {
            int rc = open_sub(it, it->cur, st);
            if (rc < 0) return rc;
            if (rc == 0) it->in_end = 1;
        } else {
            it->pos = 0;
            it->cur = (it->cur + 1) % d->b;
        }
    }
    return 0;
}

static int iter_next(iter *it, pst_tensor **out, pst_status *st) {
    dataset *d = it->d;
    switch (d->kind) {
    case K_TFRECORD: return next_tfrecord(it, out, st);
    case K_SLICES:
        if (d->n_t == 0 || it->pos >= d->t[0]->shape.dims[0]) return 0;
        return slice_row(d->t, d->n_comp, it->pos++, out, st);
    case K_TENSOR:
        if (it->pos++ > 0) return 0;
        for (int k = 0; k < d->n_comp; k++) out[k] = pst_tensor_ref(d->t[k]);
        return 1;
    case K_RANGE:
        if ((d->c > 0 && it->pos >= d->b) || (d->c < 0 && it->pos <= d->b)) return 0;
        out[0] = pst_tensor_scalar_i64(it->pos);
        it->pos += d->c;
        return 1;
    case K_MAP: {
        pst_tensor *el[MAX_COMP] = {0};
        int rc = iter_next(it->in, el, st);
        if (rc <= 0) return rc;
        rc = call_fn(d, el, d->in->n_comp, out, st);
        unref_all(el, d->in->n_comp);
        return rc < 0 ? rc : 1;
    }
    case K_FILTER: /* d->flag: TakeWhileDataset, which ends at the first false */
        if (d->flag && it->pos) return 0;
        for (;;) {
            int rc = iter_next(it->in, out, st);
            if (rc <= 0) return rc;
            pst_tensor *keep[1] = {0};
            if (call_fn(d, out, d->n_comp, keep, st) < 0) {
                unref_all(out, d->n_comp);
                return st->code;
            }
            int ok = keep[0]->dtype == PST_BOOL && keep[0]->n == 1;
            int yes = ok && pst_tensor_get_i64(keep[0], 0) != 0;
            pst_tensor_unref(keep[0]);
            if (!ok) {
                unref_all(out, d->n_comp);
                return pst_status_set(st, PST_E_INVALID, "%s: predicate '%s' must return a "
                                      "scalar bool", d->name, d->fn->name);
            }
            if (yes) return 1;
            unref_all(out, d->n_comp);
            if (d->flag) {
                it->pos = 1;
                return 0;
            }
        }
    case K_FLAT_MAP: return next_flat_map(it, out, st);
    case K_BATCH: case K_PADDED_BATCH: return next_batch(it, out, st);
    case K_TEXT: case K_FIXED: return next_file_record(it, out, st);
    case K_CACHE: return next_cache(it, out, st);
    case K_UNBATCH: return next_unbatch(it, out, st);
    case K_SHARD: /* elements index, index + num_shards, ... (a = num_shards, b = index) */
        for (;;) {
            int rc = iter_next(it->in, out, st);
            if (rc <= 0) return rc;
            if (it->pos++ % d->a == d->b) return 1;
            unref_all(out, d->n_comp);
        }
    case K_SHUFFLE: return next_shuffle(it, out, st);
    case K_REPEAT: return next_repeat(it, out, st);
    case K_TAKE:
        if (d->a >= 0 && it->left <= 0) return 0;
        it->left--;
        return iter_next(it->in, out, st);
    case K_SKIP:
        while (d->a < 0 || it->left > 0) {
            int rc = iter_next(it->in, out, st);
            if (rc <= 0) return rc;
            unref_all(out, d->n_comp);
            it->left--;
        }
        return iter_next(it->in, out, st);
    case K_CONCAT: {
        int rc = iter_next(it->in, out, st);
        if (rc != 0 || it->done) return rc;
        iter_free(it->in);
        it->done = 1; /* now reading the second input */
        if ((it->in = iter_new(d->in2, st)) == NULL) return st->code;
        return iter_next(it->in, out, st);
    }
    case K_ZIP: {
        int at = 0;
        for (int i = 0; i < d->n_zip; i++) {
            int rc = iter_next(it->cycle[i], out + at, st);
            if (rc <= 0) {
                unref_all(out, at);
                return rc;
            }
            at += d->zip[i]->n_comp;
        }
        return 1;
    }
    }
    return 0;
}

/* ---- Dataset kernels -------------------------------------------------------------------- */

static void state_free(void *p) { ds_unref(p); }

/* Output 0 := a handle to d; the node keeps d (its last one) alive. */
static int emit(pst_kernel_ctx *c, dataset *d) {
    pst_tensor *h = pst_tensor_new(PST_RESOURCE, pst_shape_scalar(), c->status);
    if (h == NULL) {
        ds_unref(d);
        return c->status->code;
    }
    *(dataset **)h->data = d;
    ds_unref(*c->state);
    *c->state = d;
    pst_kctx_set_output(c, 0, h);
    return 0;
}

static dataset *in_ds(pst_kernel_ctx *c, int i) {
    dataset *d = ds_of(c->inputs[i]);
    if (d == NULL) pst_kctx_error(c, PST_E_INVALID, "input %d is not a dataset", i);
    return d;
}

static int in_i64(pst_kernel_ctx *c, int i, int64_t *v) {
    const pst_tensor *t = c->inputs[i];
    if (t->n != 1 || !pst_dtype_is_int(t->dtype)) {
        pst_kctx_error(c, PST_E_INVALID, "input %d must be an integer scalar", i);
        return -1;
    }
    *v = pst_tensor_get_i64(t, 0);
    return 0;
}

static int n_types(pst_kernel_ctx *c) {
    const pst_attr *a = pst_kctx_attr(c, "output_types");
    if (a == NULL) a = pst_kctx_attr(c, "Toutput_types");
    return a ? a->n : 0;
}

static int set_files(pst_kernel_ctx *c, dataset *d);
static int overridden(pst_kernel_ctx *c, dataset *d);
static dataset *batch_over(pst_kernel_ctx *c, dataset *in, int size_input, int drop_input);

static int tfrecord_kernel(pst_kernel_ctx *c) {
    pst_tfrecord_compression comp = PST_TFRECORD_NONE;
    if (c->n_inputs > 1) {
        const pst_tensor *ct = c->inputs[1];
        const char *name = ct->dtype == PST_STRING && ct->n == 1 && pst_tensor_str(ct)->p
                               ? pst_tensor_str(ct)->p : "";
        pst_status cst = {0};
        if (pst_tfrecord_compression_parse(name, &comp, &cst) < 0)
            return pst_kctx_error(c, PST_E_INVALID, "compression_type: %s", cst.msg);
    }
    dataset *d = ds_new(K_TFRECORD, 1, c->node_name);
    d->comp = comp;
    if (set_files(c, d) < 0) {
        ds_unref(d);
        return c->status->code;
    }
    if (overridden(c, d)) d->comp = PST_TFRECORD_AUTO;
    return emit(c, d);
}

static const char *override_key(enum kind k) {
    return k == K_TFRECORD ? OVERRIDE_KEY "TFRecordDataset"
           : k == K_TEXT   ? OVERRIDE_KEY "TextLineDataset"
                           : OVERRIDE_KEY "FixedLengthRecordDataset";
}

/* pst_tf_data_set_file: every dataset of d's kind in the session reads that file instead of
 * its own (1 when it does). */
static int overridden(pst_kernel_ctx *c, dataset *d) {
    const char *over = pst_var_store_find_resource(c->vars, override_key(d->kind));
    if (over == NULL) return 0;
    for (int i = 0; i < d->n_files; i++) free(d->files[i]);
    d->files = realloc(d->files, 2 * sizeof *d->files);
    PST_ASSERT(d->files != NULL);
    d->files[0] = strdup(over);
    PST_ASSERT(d->files[0] != NULL);
    d->n_files = 1;
    return 1;
}

/* The file names of input 0 (a string scalar or vector) into d. */
static int set_files(pst_kernel_ctx *c, dataset *d) {
    const pst_tensor *fn = c->inputs[0];
    if (fn->dtype != PST_STRING || fn->shape.rank > 1)
        return pst_kctx_error(c, PST_E_INVALID, "filenames must be a string scalar or vector");
    d->n_files = (int)fn->n;
    d->files = calloc((size_t)fn->n + 1, sizeof *d->files);
    PST_ASSERT(d->files != NULL);
    for (int64_t i = 0; i < fn->n; i++) {
        const pst_tstring *s = &pst_tensor_str(fn)[i];
        d->files[i] = strndup(s->p ? s->p : "", s->len);
        PST_ASSERT(d->files[i] != NULL);
    }
    return 0;
}

/* TextLineDataset(filenames, compression_type, buffer_size): uncompressed files only. */
static int text_line_kernel(pst_kernel_ctx *c) {
    if (c->n_inputs > 1) {
        const pst_tensor *ct = c->inputs[1];
        const char *name = ct->dtype == PST_STRING && ct->n == 1 && pst_tensor_str(ct)->p
                               ? pst_tensor_str(ct)->p : "";
        if (name[0])
            return pst_kctx_error(c, PST_E_UNIMPLEMENTED, "compression_type '%s': compressed "
                                  "text files are not supported", name);
    }
    dataset *d = ds_new(K_TEXT, 1, c->node_name);
    if (set_files(c, d) < 0) {
        ds_unref(d);
        return c->status->code;
    }
    overridden(c, d);
    return emit(c, d);
}

/* FixedLengthRecordDataset(filenames, header_bytes, record_bytes, footer_bytes, buffer_size
 * [, compression_type]). */
static int fixed_length_kernel(pst_kernel_ctx *c) {
    int64_t h = 0, r = 0, f = 0;
    if (in_i64(c, 1, &h) < 0 || in_i64(c, 2, &r) < 0 || in_i64(c, 3, &f) < 0)
        return c->status->code;
    if (h < 0 || r <= 0 || f < 0)
        return pst_kctx_error(c, PST_E_INVALID, "header_bytes %lld and footer_bytes %lld must "
                              "be >= 0 and record_bytes %lld > 0", (long long)h, (long long)f,
                              (long long)r);
    if (c->n_inputs > 5) {
        const pst_tensor *ct = c->inputs[5];
        if (ct->dtype == PST_STRING && ct->n == 1 && pst_tensor_str(ct)->p &&
            pst_tensor_str(ct)->p[0])
            return pst_kctx_error(c, PST_E_UNIMPLEMENTED, "compression_type '%s': compressed "
                                  "fixed-length files are not supported", pst_tensor_str(ct)->p);
    }
    dataset *d = ds_new(K_FIXED, 1, c->node_name);
    d->header = h, d->record = r, d->footer = f;
    if (set_files(c, d) < 0) {
        ds_unref(d);
        return c->status->code;
    }
    overridden(c, d);
    return emit(c, d);
}

/* PaddedBatchDataset(input, batch_size, padded_shapes (N int64 vectors), padding_values (N
 * scalars)) and V2 (+ drop_remainder). */
static int padded_batch_kernel(pst_kernel_ctx *c) {
    dataset *in = in_ds(c, 0);
    if (in == NULL) return c->status->code;
    int n = in->n_comp;
    int v2 = strcmp(c->op->name, "PaddedBatchDatasetV2") == 0;
    if (c->n_inputs != 2 + 2 * n + v2)
        return pst_kctx_error(c, PST_E_INVALID, "%d inputs for %d components: want the dataset, "
                              "batch_size, %d padded shapes, %d padding values%s", c->n_inputs,
                              n, n, n, v2 ? " and drop_remainder" : "");
    for (int k = 0; k < n; k++) {
        const pst_tensor *ps = c->inputs[2 + k], *pv = c->inputs[2 + n + k];
        if (ps->shape.rank != 1 || !pst_dtype_is_int(ps->dtype) || ps->n > PST_MAX_RANK)
            return pst_kctx_error(c, PST_E_INVALID, "padded_shapes[%d] must be an int64 vector",
                                  k);
        if (pv->n != 1)
            return pst_kctx_error(c, PST_E_INVALID, "padding_values[%d] must be a scalar", k);
    }
    dataset *d = batch_over(c, in, 1, v2 ? 2 + 2 * n : -1);
    if (d == NULL) return c->status->code;
    d->kind = K_PADDED_BATCH;
    d->pad_values = calloc((size_t)n + 1, sizeof *d->pad_values);
    d->pad_shapes = calloc((size_t)n + 1, sizeof *d->pad_shapes);
    d->pad_ranks = calloc((size_t)n + 1, sizeof *d->pad_ranks);
    PST_ASSERT(d->pad_values && d->pad_shapes && d->pad_ranks);
    for (int k = 0; k < n; k++) {
        const pst_tensor *ps = c->inputs[2 + k];
        d->pad_ranks[k] = (int)ps->n;
        for (int64_t j = 0; j < ps->n; j++) d->pad_shapes[k][j] = pst_tensor_get_i64(ps, j);
        d->pad_values[k] = pst_tensor_ref(c->inputs[2 + n + k]);
    }
    return emit(c, d);
}

/* ShardDataset(input, num_shards, index): every num_shards-th element from index on. */
static int shard_kernel(pst_kernel_ctx *c) {
    dataset *in = in_ds(c, 0);
    int64_t n = 0, i = 0;
    if (in == NULL || in_i64(c, 1, &n) < 0 || in_i64(c, 2, &i) < 0) return c->status->code;
    if (n <= 0 || i < 0 || i >= n)
        return pst_kctx_error(c, PST_E_INVALID, "index %lld must be in [0, num_shards %lld)",
                              (long long)i, (long long)n);
    dataset *d = ds_new(K_SHARD, in->n_comp, c->node_name);
    d->in = ds_ref(in);
    d->a = n, d->b = i;
    return emit(c, d);
}

/* DatasetToSingleElement(dataset): its one element (an error when it has none or more). */
static int single_element_kernel(pst_kernel_ctx *c) {
    dataset *d = in_ds(c, 0);
    if (d == NULL) return c->status->code;
    if (d->n_comp != c->n_outputs)
        return pst_kctx_error(c, PST_E_INVALID, "the dataset gives %d components; this op has "
                              "%d outputs", d->n_comp, c->n_outputs);
    iter *it = iter_new(d, c->status);
    if (it == NULL) return c->status->code;
    pst_tensor *out[MAX_COMP] = {0}, *more[MAX_COMP] = {0};
    pst_status st = {0};
    int rc = iter_next(it, out, &st);
    if (rc > 0) {
        int rc2 = iter_next(it, more, &st);
        unref_all(more, d->n_comp);
        if (rc2 != 0) {
            unref_all(out, d->n_comp);
            rc = rc2 < 0 ? rc2 : -1;
            if (rc2 > 0) rc = pst_kctx_error(c, PST_E_INVALID, "the dataset has more than one "
                                             "element");
        }
    }
    iter_free(it);
    if (rc == 0) return pst_kctx_error(c, PST_E_INVALID, "the dataset is empty");
    if (rc < 0) return c->status->code ? c->status->code : pst_kctx_error(c, st.code, "%s", st.msg);
    for (int i = 0; i < c->n_outputs; i++) pst_kctx_set_output(c, i, out[i]);
    return 0;
}

/* CacheDataset(input, filename) and UnbatchDataset(input). */
static int cache_unbatch_kernel(pst_kernel_ctx *c) {
    dataset *in = in_ds(c, 0);
    if (in == NULL) return c->status->code;
    dataset *d = ds_new(strstr(c->op->name, "Cache") ? K_CACHE : K_UNBATCH, in->n_comp,
                        c->node_name);
    d->in = ds_ref(in);
    return emit(c, d);
}

static dataset *tensors_ds(pst_kernel_ctx *c, enum kind k) {
    if (c->n_inputs > MAX_COMP) {
        pst_kctx_error(c, PST_E_UNIMPLEMENTED, "%d components (at most %d)", c->n_inputs, MAX_COMP);
        return NULL;
    }
    dataset *d = ds_new(k, c->n_inputs, c->node_name);
    d->n_t = c->n_inputs;
    d->t = calloc((size_t)c->n_inputs + 1, sizeof *d->t);
    PST_ASSERT(d->t != NULL);
    for (int i = 0; i < c->n_inputs; i++) d->t[i] = pst_tensor_ref(c->inputs[i]);
    return d;
}

static int slices_kernel(pst_kernel_ctx *c) {
    for (int i = 0; i < c->n_inputs; i++) {
        const pst_tensor *t = c->inputs[i];
        if (t->shape.rank < 1)
            return pst_kctx_error(c, PST_E_INVALID, "component %d is a scalar; slicing needs "
                                  "rank >= 1", i);
        if (t->shape.dims[0] != c->inputs[0]->shape.dims[0])
            return pst_kctx_error(c, PST_E_INVALID, "components 0 and %d have %lld and %lld "
                                  "rows; all must have the same first dimension", i,
                                  (long long)c->inputs[0]->shape.dims[0],
                                  (long long)t->shape.dims[0]);
    }
    dataset *d = tensors_ds(c, K_SLICES);
    return d ? emit(c, d) : c->status->code;
}

static int tensor_kernel(pst_kernel_ctx *c) {
    dataset *d = tensors_ds(c, K_TENSOR);
    return d ? emit(c, d) : c->status->code;
}

static int range_kernel(pst_kernel_ctx *c) {
    int64_t a = 0, b = 0, s = 0;
    if (in_i64(c, 0, &a) < 0 || in_i64(c, 1, &b) < 0 || in_i64(c, 2, &s) < 0)
        return c->status->code;
    if (s == 0) return pst_kctx_error(c, PST_E_INVALID, "step must not be 0");
    dataset *d = ds_new(K_RANGE, 1, c->node_name);
    d->a = a, d->b = b, d->c = s;
    return emit(c, d);
}

/* The function attr `attr` names, or NULL after an error naming it (not in the library, or
 * in it but not buildable: why). */
static const pst_function *kernel_function(pst_kernel_ctx *c, const char *attr) {
    const char *name = pst_kctx_attr_s(c, attr, "");
    const pst_function *f = c->graph ? pst_graph_function(c->graph, name) : NULL;
    if (f == NULL)
        pst_kctx_error(c, PST_E_NOT_FOUND, "function '%s' (attr %s) is not in the graph's "
                       "function library", name, attr);
    else if (f->error)
        pst_kctx_error(c, PST_E_UNIMPLEMENTED, "function '%s' (attr %s) could not be built: %s",
                       name, attr, f->error);
    return f && !f->error ? f : NULL;
}

/* A dataset calling function `attr` of the library on its input's elements; captured
 * arguments are the Targuments inputs right after the input dataset. */
static dataset *fn_ds(pst_kernel_ctx *c, enum kind k, const char *attr) {
    dataset *in = in_ds(c, 0);
    if (in == NULL) return NULL;
    const pst_function *f = kernel_function(c, attr);
    if (f == NULL) return NULL;
    const pst_attr *ta = pst_kctx_attr(c, "Targuments");
    int nt = ta ? ta->n : 0;
    if (1 + nt > c->n_inputs) {
        pst_kctx_error(c, PST_E_INVALID, "Targuments lists %d captured inputs; the node has %d "
                       "inputs", nt, c->n_inputs);
        return NULL;
    }
    int nc = k == K_FILTER ? in->n_comp : n_types(c);
    if (nc > MAX_COMP || in->n_comp > MAX_COMP) {
        pst_kctx_error(c, PST_E_UNIMPLEMENTED, "more than %d components", MAX_COMP);
        return NULL;
    }
    dataset *d = ds_new(k, nc, c->node_name);
    d->in = ds_ref(in);
    d->fn = f;
    d->vars = c->vars;
    d->n_t = nt;
    d->t = calloc((size_t)nt + 1, sizeof *d->t);
    PST_ASSERT(d->t != NULL);
    for (int i = 0; i < nt; i++) d->t[i] = pst_tensor_ref(c->inputs[1 + i]);
    return d;
}

static int map_kernel(pst_kernel_ctx *c) {
    dataset *d = fn_ds(c, K_MAP, "f");
    return d ? emit(c, d) : c->status->code;
}

/* FilterDataset; TakeWhileDataset: the elements before the first the predicate refuses. */
static int filter_kernel(pst_kernel_ctx *c) {
    dataset *d = fn_ds(c, K_FILTER, "predicate");
    if (d) d->flag = strstr(c->op->name, "TakeWhile") != NULL;
    return d ? emit(c, d) : c->status->code;
}

/* FlatMapDataset: one input at a time. InterleaveDataset and the parallel ones: cycle_length
 * and block_length follow the captured arguments (parallelism changes no order here; the
 * sloppy variants may give any order, this one is deterministic). */
static int flat_map_kernel(pst_kernel_ctx *c) {
    dataset *d = fn_ds(c, K_FLAT_MAP, "f");
    if (d == NULL) return c->status->code;
    d->b = 1, d->c = 0;
    if (strcmp(c->op->name, "FlatMapDataset") != 0) {
        int at = 1 + d->n_t;
        int64_t cyc = 0, blk = 0;
        if (at + 1 >= c->n_inputs || in_i64(c, at, &cyc) < 0 || in_i64(c, at + 1, &blk) < 0) {
            ds_unref(d);
            return c->status->code ? c->status->code
                                   : pst_kctx_error(c, PST_E_INVALID, "no cycle_length and "
                                                    "block_length inputs");
        }
        if (cyc == -1) { /* AUTOTUNE: as TF, the number of CPU cores */
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            cyc = cores > 0 ? cores : 1;
        }
        if (cyc <= 0 || cyc > 4096 || blk <= 0) {
            ds_unref(d);
            return pst_kctx_error(c, PST_E_INVALID, "cycle_length %lld (1 to 4096, or -1: "
                                  "AUTOTUNE) and block_length %lld (> 0) are out of range",
                                  (long long)cyc, (long long)blk);
        }
        d->b = cyc, d->c = blk;
    }
    return emit(c, d);
}

static dataset *batch_over(pst_kernel_ctx *c, dataset *in, int size_input, int drop_input) {
    int64_t bs = 0;
    if (in_i64(c, size_input, &bs) < 0) return NULL;
    if (bs <= 0) {
        pst_kctx_error(c, PST_E_INVALID, "batch_size must be greater than zero, got %lld",
                       (long long)bs);
        return NULL;
    }
    int drop = 0;
    if (drop_input >= 0 && drop_input < c->n_inputs) {
        const pst_tensor *t = c->inputs[drop_input];
        if (t->dtype != PST_BOOL || t->n != 1) {
            pst_kctx_error(c, PST_E_INVALID, "drop_remainder must be a bool scalar");
            return NULL;
        }
        drop = pst_tensor_get_i64(t, 0) != 0;
    }
    dataset *d = ds_new(K_BATCH, in->n_comp, c->node_name);
    d->in = ds_ref(in);
    d->a = bs;
    d->flag = drop;
    return d;
}

static int batch_kernel(pst_kernel_ctx *c) {
    dataset *in = in_ds(c, 0);
    if (in == NULL) return c->status->code;
    dataset *d = batch_over(c, in, 1, c->n_inputs > 2 ? 2 : -1);
    return d ? emit(c, d) : c->status->code;
}

/* MapAndBatchDataset: a map then a batch. After the captured arguments come batch_size, the
 * parallelism and (TF >= 1.9) drop_remainder. */
static int map_and_batch_kernel(pst_kernel_ctx *c) {
    dataset *m = fn_ds(c, K_MAP, "f");
    if (m == NULL) return c->status->code;
    int at = 1 + m->n_t;
    dataset *d = at < c->n_inputs ? batch_over(c, m, at, at + 2 < c->n_inputs ? at + 2 : -1)
                                  : NULL;
    ds_unref(m);
    if (d == NULL && c->status->code == 0)
        return pst_kctx_error(c, PST_E_INVALID, "no batch_size input");
    return d ? emit(c, d) : c->status->code;
}

static dataset *shuffle_over(pst_kernel_ctx *c, dataset *in) {
    int64_t size = 0, s1 = 0, s2 = 0;
    if (in_i64(c, 1, &size) < 0 || in_i64(c, 2, &s1) < 0 || in_i64(c, 3, &s2) < 0) return NULL;
    if (size <= 0) {
        pst_kctx_error(c, PST_E_INVALID, "buffer_size must be greater than zero, got %lld",
                       (long long)size);
        return NULL;
    }
    dataset *d = ds_new(K_SHUFFLE, in->n_comp, c->node_name);
    d->in = ds_ref(in);
    d->a = size;
    d->flag = pst_kctx_attr_b(c, "reshuffle_each_iteration", 1);
    if (s1 == 0 && s2 == 0) { /* no seed: a different order every run of the program */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        d->seed = mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uintptr_t)d);
    } else {
        d->seed = mix64((uint64_t)s1 * 0x100000001B3ull ^ mix64((uint64_t)s2));
    }
    return d;
}

static int shuffle_kernel(pst_kernel_ctx *c) {
    dataset *in = in_ds(c, 0);
    if (in == NULL) return c->status->code;
    dataset *d = shuffle_over(c, in);
    return d ? emit(c, d) : c->status->code;
}

static dataset *count_over(pst_kernel_ctx *c, dataset *in, enum kind k, int count_input) {
    int64_t n = 0;
    if (in_i64(c, count_input, &n) < 0) return NULL;
    dataset *d = ds_new(k, in->n_comp, c->node_name);
    d->in = ds_ref(in);
    d->a = n;
    return d;
}

/* ShuffleAndRepeatDataset: a shuffle reshuffled every pass, repeated count times. */
static int shuffle_and_repeat_kernel(pst_kernel_ctx *c) {
    dataset *in = in_ds(c, 0);
    if (in == NULL) return c->status->code;
    dataset *s = shuffle_over(c, in);
    if (s == NULL) return c->status->code;
    s->flag = 1;
    dataset *d = count_over(c, s, K_REPEAT, 4);
    ds_unref(s);
    return d ? emit(c, d) : c->status->code;
}

static int count_kernel(pst_kernel_ctx *c) {
    dataset *in = in_ds(c, 0);
    if (in == NULL) return c->status->code;
    enum kind k = strcmp(c->op->name, "RepeatDataset") == 0 ? K_REPEAT
                  : strcmp(c->op->name, "TakeDataset") == 0 ? K_TAKE : K_SKIP;
    dataset *d = count_over(c, in, k, 1);
    return d ? emit(c, d) : c->status->code;
}

static int concat_kernel(pst_kernel_ctx *c) {
    dataset *a = in_ds(c, 0), *b = a ? in_ds(c, 1) : NULL;
    if (b == NULL) return c->status->code;
    if (a->n_comp != b->n_comp)
        return pst_kctx_error(c, PST_E_INVALID, "the datasets have %d and %d components",
                              a->n_comp, b->n_comp);
    dataset *d = ds_new(K_CONCAT, a->n_comp, c->node_name);
    d->in = ds_ref(a);
    d->in2 = ds_ref(b);
    return emit(c, d);
}

static int zip_kernel(pst_kernel_ctx *c) {
    int nc = 0;
    for (int i = 0; i < c->n_inputs; i++) {
        dataset *x = in_ds(c, i);
        if (x == NULL) return c->status->code;
        nc += x->n_comp;
    }
    if (nc > MAX_COMP) return pst_kctx_error(c, PST_E_UNIMPLEMENTED, "more than %d components",
                                             MAX_COMP);
    dataset *d = ds_new(K_ZIP, nc, c->node_name);
    d->n_zip = c->n_inputs;
    d->zip = calloc((size_t)c->n_inputs + 1, sizeof *d->zip);
    PST_ASSERT(d->zip != NULL);
    for (int i = 0; i < c->n_inputs; i++) d->zip[i] = ds_ref(ds_of(c->inputs[i]));
    return emit(c, d);
}

/* Prefetch, Model, Optimize, thread-pool and stats wrappers: the same elements, so the same
 * dataset (prefetching is synchronous here). */
static int pass_kernel(pst_kernel_ctx *c) {
    dataset *in = in_ds(c, 0);
    if (in == NULL) return c->status->code;
    return emit(c, ds_ref(in));
}

/* ---- Iterators -------------------------------------------------------------------------- */

static void *it_make(void *ctx, pst_status *st) {
    (void)st;
    it_res *r = calloc(1, sizeof *r);
    PST_ASSERT(r != NULL);
    r->magic = IT_MAGIC;
    pthread_mutex_init(&r->mu, NULL);
    snprintf(r->key, sizeof r->key, "%s", (const char *)ctx);
    return r;
}

static void it_free(void *p) {
    it_res *r = p;
    if (r == NULL) return;
    iter_free(r->it);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static int emit_iterator(pst_kernel_ctx *c, it_res *r) {
    pst_tensor *h = pst_tensor_new(PST_RESOURCE, pst_shape_scalar(), c->status);
    if (h == NULL) return c->status->code;
    *(it_res **)h->data = r;
    pst_kctx_set_output(c, 0, h);
    return 0;
}

static it_res *iterator_of(pst_kernel_ctx *c, const char *key) {
    pst_status rst = {0};
    it_res *r = pst_var_store_resource(c->vars, key, it_make, (void *)key, it_free, &rst);
    if (r == NULL) pst_kctx_error(c, rst.code ? rst.code : PST_E_EXHAUSTED, "%s", rst.msg);
    else r->n_comp = n_types(c);
    return r;
}

/* Iterator / IteratorV2 / OneShotIterator: the session's iterator under its shared_name (in
 * its container), else under the node's name. */
static void iterator_key(pst_kernel_ctx *c, char *key, size_t len) {
    const char *shared = pst_kctx_attr_s(c, "shared_name", "");
    const char *cont = pst_kctx_attr_s(c, "container", "");
    if (shared[0]) snprintf(key, len, "%s%s%s%s", PST_TF_DATA_ITERATOR_KEY, cont, cont[0] ? "/" : "", shared);
    else snprintf(key, len, "%s%s", PST_TF_DATA_ITERATOR_KEY, c->node_name);
}

static int iterator_kernel(pst_kernel_ctx *c) {
    char key[512];
    iterator_key(c, key, sizeof key);
    it_res *r = iterator_of(c, key);
    return r ? emit_iterator(c, r) : c->status->code;
}

static it_res *in_iterator(pst_kernel_ctx *c, int i) {
    const pst_tensor *h = c->inputs[i];
    it_res *r = h->dtype == PST_RESOURCE && h->n == 1 ? *(it_res **)h->data : NULL;
    if (r == NULL || r->magic != IT_MAGIC)
        pst_kctx_error(c, PST_E_INVALID, "input %d is not an iterator", i);
    return r && r->magic == IT_MAGIC ? r : NULL;
}

static int make_iterator_kernel(pst_kernel_ctx *c) {
    dataset *d = in_ds(c, 0);
    it_res *r = d ? in_iterator(c, 1) : NULL;
    if (r == NULL) return c->status->code;
    iter *it = iter_new(d, c->status);
    if (it == NULL) return c->status->code;
    pthread_mutex_lock(&r->mu);
    iter *old = r->it;
    r->it = it;
    r->n_comp = d->n_comp;
    pthread_mutex_unlock(&r->mu);
    iter_free(old);
    return 0;
}

/* OneShotIterator: the dataset its dataset_factory function returns, made on first use. */
static int one_shot_kernel(pst_kernel_ctx *c) {
    char key[512];
    iterator_key(c, key, sizeof key);
    it_res *r = iterator_of(c, key);
    if (r == NULL) return c->status->code;
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    if (!r->made) {
        const char *name = pst_kctx_attr_s(c, "dataset_factory", "");
        const pst_function *f = kernel_function(c, "dataset_factory");
        dataset *fd = NULL;
        if (f == NULL) {
            rc = c->status->code;
        } else {
            /* A zero-argument call through a stand-in dataset holding the function. */
            fd = ds_new(K_TENSOR, 0, c->node_name);
            fd->fn = f;
            fd->vars = c->vars;
            pst_tensor *res[1] = {NULL};
            if (f->n_rets != 1 || call_fn(fd, NULL, 0, res, c->status) < 0) {
                rc = c->status->code ? c->status->code
                                     : pst_kctx_error(c, PST_E_INVALID, "dataset_factory '%s' "
                                                      "must return one dataset", name);
            } else if (ds_of(res[0]) == NULL) {
                rc = pst_kctx_error(c, PST_E_INVALID, "dataset_factory '%s' did not return a "
                                    "dataset", name);
            } else if ((r->it = iter_new(ds_of(res[0]), c->status)) == NULL) {
                rc = c->status->code;
            } else {
                r->made = 1;
            }
            pst_tensor_unref(res[0]);
        }
        if (rc < 0 && c->status->code == 0) rc = pst_kctx_error(c, rc, "cannot make the dataset");
        /* The factory's session holds the dataset's makers; the iterator holds the dataset. */
        ds_unref(fd);
    }
    pthread_mutex_unlock(&r->mu);
    return rc < 0 ? rc : emit_iterator(c, r);
}

static int get_next_kernel(pst_kernel_ctx *c) {
    it_res *r = in_iterator(c, 0);
    if (r == NULL) return c->status->code;
    pst_tensor *out[MAX_COMP] = {0};
    pthread_mutex_lock(&r->mu);
    int rc;
    if (r->it == NULL) {
        rc = pst_kctx_error(c, PST_E_PRECONDITION, "GetNext() failed because the iterator has "
                            "not been initialized: run its initializer (MakeIterator) first");
    } else if (r->it->d->n_comp != c->n_outputs) {
        rc = pst_kctx_error(c, PST_E_INVALID, "the iterator's dataset gives %d components; "
                            "this op has %d outputs", r->it->d->n_comp, c->n_outputs);
    } else {
        pst_status st = {0};
        rc = iter_next(r->it, out, &st);
        if (rc == 0) rc = pst_kctx_error(c, PST_E_OUT_OF_RANGE, "End of sequence");
        else if (rc < 0) rc = pst_kctx_error(c, st.code, "%s", st.msg);
    }
    pthread_mutex_unlock(&r->mu);
    if (rc < 0) return rc;
    for (int i = 0; i < c->n_outputs; i++) {
        if (out[i]->dtype != c->out_dtypes[i]) {
            unref_all(out, c->n_outputs);
            return pst_kctx_error(c, PST_E_INVALID, "component %d is %s; output_types says %s",
                                  i, pst_dtype_name(out[i] ? out[i]->dtype : 0),
                                  pst_dtype_name(c->out_dtypes[i]));
        }
    }
    for (int i = 0; i < c->n_outputs; i++) pst_kctx_set_output(c, i, out[i]);
    return 0;
}

static int to_string_handle_kernel(pst_kernel_ctx *c) {
    it_res *r = in_iterator(c, 0);
    if (r == NULL) return c->status->code;
    pst_tensor *t = pst_tensor_scalar_str(r->key);
    if (t == NULL) return pst_kctx_error(c, PST_E_EXHAUSTED, "out of memory");
    pst_kctx_set_output(c, 0, t);
    return 0;
}

static int from_string_handle_kernel(pst_kernel_ctx *c) {
    const pst_tensor *h = c->inputs[0];
    if (h->dtype != PST_STRING || h->n != 1)
        return pst_kctx_error(c, PST_E_INVALID, "string_handle must be a string scalar");
    const char *key = pst_tensor_str(h)->p ? pst_tensor_str(h)->p : "";
    it_res *r = strncmp(key, PST_TF_DATA_ITERATOR_KEY, strlen(PST_TF_DATA_ITERATOR_KEY)) == 0
                    ? pst_var_store_find_resource(c->vars, key) : NULL;
    if (r == NULL || r->magic != IT_MAGIC)
        return pst_kctx_error(c, PST_E_NOT_FOUND, "no iterator has the string handle '%s'", key);
    return emit_iterator(c, r);
}

/* ---- Shapes ----------------------------------------------------------------------------- */

static int check_fn_attr(pst_node *n, const char *attr, pst_status *st) {
    const char *name = pst_node_attr_s(n, attr, "");
    if (pst_graph_function(n->graph, name) == NULL)
        return pst_status_set(st, PST_E_NOT_FOUND, "function '%s' (attr %s) is not in the "
                              "graph's function library", name, attr);
    return 0;
}

static int dataset_shape(pst_node *n, pst_status *st) {
    const char *fattr = pst_node_attr(n, "f") ? "f" : pst_node_attr(n, "predicate") ? "predicate"
                                                                                    : NULL;
    if (fattr && check_fn_attr(n, fattr, st) < 0) return st->code;
    pst_node_set_output(n, 0, PST_RESOURCE, pst_shape_scalar());
    return 0;
}

static int one_shot_shape(pst_node *n, pst_status *st) {
    if (check_fn_attr(n, "dataset_factory", st) < 0) return st->code;
    pst_node_set_output(n, 0, PST_RESOURCE, pst_shape_scalar());
    return 0;
}

static int get_next_shape(pst_node *n, pst_status *st) {
    const pst_attr *t = pst_node_attr(n, "output_types");
    const pst_attr *s = pst_node_attr(n, "output_shapes");
    if (t == NULL || t->kind != PST_ATTR_LIST_TYPE || t->n < 1)
        return pst_status_set(st, PST_E_INVALID, "attr output_types must list the components' "
                              "types");
    pst_node_set_num_outputs(n, t->n);
    for (int i = 0; i < t->n; i++)
        pst_node_set_output(n, i, t->list.type[i],
                            s && s->kind == PST_ATTR_LIST_SHAPE && i < s->n ? s->list.shape[i]
                                                                             : pst_shape_unknown());
    return 0;
}

static int no_output_shape(pst_node *n, pst_status *st) {
    (void)n, (void)st;
    return 0;
}

static int string_handle_shape(pst_node *n, pst_status *st) {
    (void)st;
    pst_node_set_output(n, 0, PST_STRING, pst_shape_scalar());
    return 0;
}

/* ---- Function calls: PartitionedCall, StatefulPartitionedCall and a Defun called by name
 * (the importer builds those as StatefulPartitionedCall with `f` its name) --------------- */

typedef struct call_state {
    const pst_function *fn;
    pst_session *s;
} call_state;

static void call_state_free(void *p) {
    call_state *cs = p;
    if (cs) pst_session_free(cs->s);
    free(cs);
}

static int call_kernel(pst_kernel_ctx *c) {
    const pst_function *f = kernel_function(c, "f");
    if (f == NULL) return c->status->code;
    if (c->n_inputs != f->n_args || c->n_outputs != f->n_rets)
        return pst_kctx_error(c, PST_E_INVALID, "function '%s' takes %d arguments and gives %d "
                              "results; the node has %d inputs and %d outputs", f->name,
                              f->n_args, f->n_rets, c->n_inputs, c->n_outputs);
    call_state *cs = *c->state;
    if (cs == NULL || cs->fn != f) {
        call_state_free(cs);
        cs = calloc(1, sizeof *cs);
        PST_ASSERT(cs != NULL);
        cs->fn = f;
        pst_session_opts so = {.vars = c->vars, .inter_op_threads = 1};
        pst_status sst = {0};
        cs->s = pst_session_new(f->body, &so, &sst);
        *c->state = cs;
        if (cs->s == NULL)
            return pst_kctx_error(c, sst.code ? sst.code : PST_E_EXHAUSTED, "function '%s': %s",
                                  f->name, sst.msg);
    }
    pst_feed *feeds = calloc((size_t)f->n_args + 1, sizeof *feeds);
    pst_tensor **out = calloc((size_t)f->n_rets + 1, sizeof *out);
    PST_ASSERT(feeds && out);
    for (int i = 0; i < f->n_args; i++) feeds[i] = (pst_feed){pst_out(f->args[i], 0), c->inputs[i]};
    pst_status fst = {0};
    int rc = pst_session_run(cs->s, feeds, f->n_args, f->rets, f->n_rets, NULL, 0, out, &fst);
    if (rc < 0) {
        rc = pst_kctx_error(c, fst.code, "function '%s': %s", f->name, fst.msg);
    } else {
        for (int i = 0; i < f->n_rets; i++) pst_kctx_set_output(c, i, out[i]);
    }
    free(feeds);
    free(out);
    return rc;
}

/* Outputs: the function's results (dtypes and shapes of its body); a function that could not
 * be built gives Tout's dtypes with unknown shapes when the node has them. */
static int call_shape(pst_node *n, pst_status *st) {
    const char *name = pst_node_attr_s(n, "f", "");
    const pst_function *f = pst_graph_function(n->graph, name);
    if (f == NULL)
        return pst_status_set(st, PST_E_NOT_FOUND, "function '%s' (attr f) is not in the "
                              "graph's function library", name);
    const pst_attr *tout = pst_node_attr(n, "Tout");
    if (f->error) {
        if (tout == NULL || tout->kind != PST_ATTR_LIST_TYPE)
            return pst_status_set(st, PST_E_UNIMPLEMENTED, "function '%s' could not be built: "
                                  "%s", name, f->error);
        pst_node_set_num_outputs(n, tout->n);
        for (int i = 0; i < tout->n; i++)
            pst_node_set_output(n, i, tout->list.type[i], pst_shape_unknown());
        return 0;
    }
    if (n->n_inputs != f->n_args)
        return pst_status_set(st, PST_E_INVALID, "function '%s' takes %d arguments; the node has "
                              "%d inputs", name, f->n_args, n->n_inputs);
    for (int i = 0; i < n->n_inputs; i++)
        if (pst_node_in_dtype(n, i) != f->args[i]->out_dtypes[0])
            return pst_status_set(st, PST_E_INVALID, "input %d is %s; function '%s' takes %s", i,
                                  pst_dtype_name(pst_node_in_dtype(n, i)), name,
                                  pst_dtype_name(f->args[i]->out_dtypes[0]));
    pst_node_set_num_outputs(n, f->n_rets);
    for (int i = 0; i < f->n_rets; i++)
        pst_node_set_output(n, i, pst_output_dtype(f->rets[i]), pst_output_shape(f->rets[i]));
    return 0;
}

static const pst_attr_spec call_attrs[] = {
    {"f", PST_ATTR_STRING, 1}, {"Tin", PST_ATTR_LIST_TYPE, 0}, {"Tout", PST_ATTR_LIST_TYPE, 0},
    {"config", PST_ATTR_STRING, 0}, {"config_proto", PST_ATTR_STRING, 0},
    {"executor_type", PST_ATTR_STRING, 0}, {0}};

/* ---- Registration ----------------------------------------------------------------------- */

static const pst_attr_spec ds_attrs[] = {
    {"output_types", PST_ATTR_LIST_TYPE, 0}, {"output_shapes", PST_ATTR_LIST_SHAPE, 0},
    {"Toutput_types", PST_ATTR_LIST_TYPE, 0}, {"f", PST_ATTR_STRING, 0},
    {"predicate", PST_ATTR_STRING, 0}, {"Targuments", PST_ATTR_LIST_TYPE, 0},
    {"reshuffle_each_iteration", PST_ATTR_BOOL, 0}, {"use_inter_op_parallelism", PST_ATTR_BOOL, 0},
    {"preserve_cardinality", PST_ATTR_BOOL, 0}, {"sloppy", PST_ATTR_BOOL, 0},
    {"parallel_copy", PST_ATTR_BOOL, 0}, {"N", PST_ATTR_INT, 0},
    {"slack_period", PST_ATTR_INT, 0}, {"legacy_autotune", PST_ATTR_BOOL, 0},
    {"algorithm", PST_ATTR_INT, 0}, {"cpu_budget", PST_ATTR_INT, 0},
    {"optimization_configs", PST_ATTR_LIST_STRING, 0}, {"require_non_empty", PST_ATTR_BOOL, 0},
    {"auto_shard_policy", PST_ATTR_INT, 0},
    {0}};
static const pst_attr_spec it_attrs[] = {
    {"output_types", PST_ATTR_LIST_TYPE, 0}, {"output_shapes", PST_ATTR_LIST_SHAPE, 0},
    {"shared_name", PST_ATTR_STRING, 0}, {"container", PST_ATTR_STRING, 0},
    {"dataset_factory", PST_ATTR_STRING, 0}, {0}};

#define DSF (PST_OP_STATEFUL | PST_OP_NOT_DIFFERENTIABLE | PST_OP_STRINGS)
#define DS(nm, lo, hi, k)                                                                        \
    {.name = nm, .min_inputs = lo, .max_inputs = hi, .n_outputs = 1, .attrs = ds_attrs,          \
     .shape = dataset_shape, .kernel = k, .flags = DSF, .state_free = state_free}
static const pst_op_def tf_data_ops[] = {
    DS("TFRecordDataset", 1, 3, tfrecord_kernel),
    DS("TensorSliceDataset", 1, -1, slices_kernel),
    DS("TextLineDataset", 1, 3, text_line_kernel),
    DS("FixedLengthRecordDataset", 5, 5, fixed_length_kernel),
    DS("FixedLengthRecordDatasetV2", 5, 6, fixed_length_kernel),
    DS("PaddedBatchDataset", 2, -1, padded_batch_kernel),
    DS("PaddedBatchDatasetV2", 3, -1, padded_batch_kernel),
    DS("CacheDataset", 2, 2, cache_unbatch_kernel),
    DS("UnbatchDataset", 1, 1, cache_unbatch_kernel),
    DS("ExperimentalUnbatchDataset", 1, 1, cache_unbatch_kernel),
    DS("TensorDataset", 1, -1, tensor_kernel),
    DS("RangeDataset", 3, 3, range_kernel),
    DS("MapDataset", 1, -1, map_kernel),
    DS("ParallelMapDataset", 2, -1, map_kernel),
    DS("ExperimentalMapDataset", 1, -1, map_kernel),
    DS("FilterDataset", 1, -1, filter_kernel),
    DS("TakeWhileDataset", 1, -1, filter_kernel),
    DS("ExperimentalTakeWhileDataset", 1, -1, filter_kernel),
    DS("FlatMapDataset", 1, -1, flat_map_kernel),
    DS("InterleaveDataset", 3, -1, flat_map_kernel),
    DS("ParallelInterleaveDataset", 3, -1, flat_map_kernel),
    DS("ParallelInterleaveDatasetV2", 3, -1, flat_map_kernel),
    DS("ExperimentalParallelInterleaveDataset", 3, -1, flat_map_kernel),
    DS("BatchDataset", 2, 2, batch_kernel),
    DS("BatchDatasetV2", 3, 3, batch_kernel),
    DS("MapAndBatchDataset", 3, -1, map_and_batch_kernel),
    DS("MapAndBatchDatasetV2", 3, -1, map_and_batch_kernel),
    DS("ExperimentalMapAndBatchDataset", 3, -1, map_and_batch_kernel),
    DS("ShuffleDataset", 4, 4, shuffle_kernel),
    DS("ShuffleAndRepeatDataset", 5, 5, shuffle_and_repeat_kernel),
    DS("RepeatDataset", 2, 2, count_kernel),
    DS("TakeDataset", 2, 2, count_kernel),
    DS("SkipDataset", 2, 2, count_kernel),
    DS("ConcatenateDataset", 2, 2, concat_kernel),
    DS("ZipDataset", 1, -1, zip_kernel),
    DS("PrefetchDataset", 1, 2, pass_kernel),
    DS("ModelDataset", 1, 1, pass_kernel),
    DS("OptimizeDataset", 1, 2, pass_kernel),
    DS("MaxIntraOpParallelismDataset", 1, 2, pass_kernel),
    DS("ExperimentalMaxIntraOpParallelismDataset", 1, 2, pass_kernel),
    DS("PrivateThreadPoolDataset", 1, 2, pass_kernel),
    DS("ExperimentalPrivateThreadPoolDataset", 1, 2, pass_kernel),
    DS("NonSerializableDataset", 1, 1, pass_kernel),
    DS("AssertNextDataset", 2, 2, pass_kernel),
    DS("ExperimentalAssertNextDataset", 2, 2, pass_kernel),
    DS("LatencyStatsDataset", 2, 2, pass_kernel),
    DS("ExperimentalLatencyStatsDataset", 2, 2, pass_kernel),
    DS("BytesProducedStatsDataset", 2, 2, pass_kernel),
    DS("ExperimentalBytesProducedStatsDataset", 2, 2, pass_kernel),
    DS("ShardDataset", 3, 3, shard_kernel),
    /* AutoShardDataset(input, num_workers, index): every num_workers-th element from index, as
     * TF's DATA policy (TF's AUTO would shard by file where it can: other elements per worker,
     * the same union); SleepDataset passes its elements on at once. */
    DS("AutoShardDataset", 3, 3, shard_kernel),
    DS("ExperimentalAutoShardDataset", 3, 3, shard_kernel),
    DS("SleepDataset", 2, 2, pass_kernel),
    DS("ExperimentalSleepDataset", 2, 2, pass_kernel),
    DS("ExperimentalNonSerializableDataset", 1, 1, pass_kernel),
    {.name = "Iterator", .n_outputs = 1, .attrs = it_attrs, .shape = pst_ops_resource_shape,
     .kernel = iterator_kernel, .flags = DSF},
    {.name = "IteratorV2", .n_outputs = 1, .attrs = it_attrs, .shape = pst_ops_resource_shape,
     .kernel = iterator_kernel, .flags = DSF},
    {.name = "OneShotIterator", .n_outputs = 1, .attrs = it_attrs, .shape = one_shot_shape,
     .kernel = one_shot_kernel, .flags = DSF},
    {.name = "MakeIterator", .min_inputs = 2, .max_inputs = 2, .n_outputs = 0,
     .shape = no_output_shape, .kernel = make_iterator_kernel, .flags = DSF},
    {.name = "IteratorGetNext", .min_inputs = 1, .max_inputs = 1, .n_outputs = -1,
     .attrs = it_attrs, .shape = get_next_shape, .kernel = get_next_kernel, .flags = DSF},
    {.name = "IteratorGetNextSync", .min_inputs = 1, .max_inputs = 1, .n_outputs = -1,
     .attrs = it_attrs, .shape = get_next_shape, .kernel = get_next_kernel, .flags = DSF},
    {.name = "PartitionedCall", .min_inputs = 0, .max_inputs = -1, .n_outputs = -1,
     .attrs = call_attrs, .shape = call_shape, .kernel = call_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_STRINGS, .state_free = call_state_free},
    {.name = "StatefulPartitionedCall", .min_inputs = 0, .max_inputs = -1, .n_outputs = -1,
     .attrs = call_attrs, .shape = call_shape, .kernel = call_kernel,
     .flags = PST_OP_STATEFUL | PST_OP_STRINGS, .state_free = call_state_free},
    {.name = "DatasetToSingleElement", .min_inputs = 1, .max_inputs = 1, .n_outputs = -1,
     .attrs = it_attrs, .shape = get_next_shape, .kernel = single_element_kernel, .flags = DSF},
    {.name = "IteratorToStringHandle", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .shape = string_handle_shape, .kernel = to_string_handle_kernel, .flags = DSF},
    {.name = "IteratorFromStringHandle", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = it_attrs, .shape = pst_ops_resource_shape, .kernel = from_string_handle_kernel,
     .flags = DSF},
    {.name = "IteratorFromStringHandleV2", .min_inputs = 1, .max_inputs = 1, .n_outputs = 1,
     .attrs = it_attrs, .shape = pst_ops_resource_shape, .kernel = from_string_handle_kernel,
     .flags = DSF},
};

int pst_tf_data_is_dataset_op(const char *op) {
    const pst_op_def *d = pst_op_lookup(op);
    return d && d->kernel != NULL && d->shape == dataset_shape;
}

void pst__register_tf_data_ops(void) {
    for (size_t i = 0; i < sizeof tf_data_ops / sizeof tf_data_ops[0]; i++)
        pst_op_register(&tf_data_ops[i]);
}

static void *records_make(void *ctx, pst_status *st) {
    char *p = strdup(ctx);
    if (p == NULL) pst_status_set(st, PST_E_EXHAUSTED, "out of memory");
    return p;
}

int pst_tf_data_set_file(pst_var_store *vs, const char *dataset_op, const char *path,
                         pst_status *st) {
    enum kind k = strncmp(dataset_op, "TFRecord", 8) == 0   ? K_TFRECORD
                  : strncmp(dataset_op, "TextLine", 8) == 0 ? K_TEXT
                  : strncmp(dataset_op, "FixedLength", 11) == 0
                      ? K_FIXED
                      : K_ZIP;
    if (k == K_ZIP)
        return pst_status_set(st, PST_E_INVALID, "'%s' is not a file dataset op (TFRecordDataset, "
                              "TextLineDataset, FixedLengthRecordDataset)", dataset_op);
    return pst_var_store_resource(vs, override_key(k), records_make, (void *)path, free, st)
               ? 0 : st->code;
}
