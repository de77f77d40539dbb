#include "dataset.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct pst_dataset {
    pst_tensor *features, *labels;
    int64_t n;
    int64_t *idx; /* n global indices */
};

pst_dataset *pst_dataset_new(pst_tensor *features, pst_tensor *labels, pst_status *st) {
    if (features->shape.rank < 1 || labels->shape.rank < 1 ||
        features->shape.dims[0] != labels->shape.dims[0]) {
        pst_status_set(st, PST_E_INVALID, "features (%lld) and labels (%lld) disagree on the "
                       "number of examples",
                       (long long)(features->shape.rank ? features->shape.dims[0] : -1),
                       (long long)(labels->shape.rank ? labels->shape.dims[0] : -1));
        return NULL;
    }
    pst_dataset *ds = calloc(1, sizeof *ds);
    PST_ASSERT(ds != NULL);
    ds->features = pst_tensor_ref(features);
    ds->labels = pst_tensor_ref(labels);
    ds->n = features->shape.dims[0];
    ds->idx = malloc((size_t)(ds->n + 1) * sizeof *ds->idx);
    PST_ASSERT(ds->idx != NULL);
    for (int64_t i = 0; i < ds->n; i++) ds->idx[i] = i;
    return ds;
}

static pst_dataset *view(const pst_dataset *ds, int64_t n) {
    pst_dataset *v = calloc(1, sizeof *v);
    PST_ASSERT(v != NULL);
    v->features = pst_tensor_ref(ds->features);
    v->labels = pst_tensor_ref(ds->labels);
    v->n = n;
    v->idx = malloc((size_t)(n + 1) * sizeof *v->idx);
    PST_ASSERT(v->idx != NULL);
    return v;
}

void pst_dataset_free(pst_dataset *ds) {
    if (ds == NULL) return;
    pst_tensor_unref(ds->features);
    pst_tensor_unref(ds->labels);
    free(ds->idx);
    free(ds);
}

int64_t pst_dataset_size(const pst_dataset *ds) { return ds->n; }
int64_t pst_dataset_index(const pst_dataset *ds, int64_t i) { return ds->idx[i]; }

pst_dataset *pst_dataset_shard(const pst_dataset *ds, int index, int count, pst_status *st) {
    if (count < 1 || index < 0 || index >= count) {
        pst_status_set(st, PST_E_INVALID, "shard index %d is out of range for %d shards", index,
                       count);
        return NULL;
    }
    pst_dataset *v = view(ds, (ds->n - index + count - 1) / count);
    int64_t k = 0;
    for (int64_t i = index; i < ds->n; i += count) v->idx[k++] = ds->idx[i];
    v->n = k;
    return v;
}

pst_dataset *pst_dataset_take(const pst_dataset *ds, int64_t n) {
    if (n > ds->n) n = ds->n;
    if (n < 0) n = 0;
    pst_dataset *v = view(ds, n);
    memcpy(v->idx, ds->idx, (size_t)n * sizeof *v->idx);
    return v;
}

pst_dataset *pst_dataset_skip(const pst_dataset *ds, int64_t n) {
    if (n > ds->n) n = ds->n;
    if (n < 0) n = 0;
    pst_dataset *v = view(ds, ds->n - n);
    memcpy(v->idx, ds->idx + n, (size_t)(ds->n - n) * sizeof *v->idx);
    return v;
}

int pst_dataset_split(const pst_dataset *ds, int64_t n_train, pst_dataset **train,
                      pst_dataset **validation, pst_status *st) {
    if (n_train < 0 || n_train > ds->n)
        return pst_status_set(st, PST_E_INVALID, "cannot take %lld training examples of %lld",
                              (long long)n_train, (long long)ds->n);
    *train = pst_dataset_take(ds, n_train);
    *validation = pst_dataset_skip(ds, n_train);
    return 0;
}

int pst_dataset_split_for_worker(const pst_dataset *ds, int64_t n_validation, int index,
                                 int count, pst_dataset **mine, pst_dataset **validation,
                                 pst_status *st) {
    if (count < 1 || index < 0 || index >= count)
        return pst_status_set(st, PST_E_INVALID, "worker %d of %d: there is no such shard of the "
                              "training data", index, count);
    int64_t n_val = n_validation > 0 && n_validation < ds->n ? n_validation : 0;
    pst_dataset *train = pst_dataset_take(ds, ds->n - n_val);
    *mine = pst_dataset_shard(train, index, count, NULL);
    pst_dataset_free(train);
    *validation = pst_dataset_skip(ds, ds->n - n_val);
    return 0;
}

pst_dataset *pst_dataset_map(const pst_dataset *ds, pst_dataset_map_fn fn, void *ctx,
                             pst_shape example_shape, pst_status *st) {
    int64_t per_out;
    if (pst_shape_num_elements(&example_shape, &per_out, st) < 0) return NULL;
    if (example_shape.rank + 1 > PST_MAX_RANK) {
        pst_status_set(st, PST_E_INVALID, "example rank too large");
        return NULL;
    }
    pst_shape s = {.rank = example_shape.rank + 1};
    s.dims[0] = ds->n;
    for (int i = 0; i < example_shape.rank; i++) s.dims[i + 1] = example_shape.dims[i];
    pst_tensor *out = pst_tensor_new(PST_FLOAT, s, st);
    pst_tensor *lab = pst_tensor_new(ds->labels->dtype, pst_shape_1d(ds->n), st);
    if (out == NULL || lab == NULL) {
        pst_tensor_unref(out);
        pst_tensor_unref(lab);
        return NULL;
    }
    int64_t per_in = ds->features->shape.dims[0] ? ds->features->n / ds->features->shape.dims[0] : 0;
    float *tmp = malloc((size_t)(per_in + 1) * sizeof *tmp);
    PST_ASSERT(tmp != NULL);
    size_t les = pst_dtype_size(ds->labels->dtype);
    for (int64_t i = 0; i < ds->n; i++) {
        int64_t g = ds->idx[i];
        for (int64_t k = 0; k < per_in; k++) tmp[k] = (float)pst_tensor_get_f64(ds->features, g * per_in + k);
        fn(ctx, tmp, pst_tensor_f32(out) + i * per_out);
        memcpy((char *)lab->data + (size_t)i * les, (const char *)ds->labels->data + (size_t)g * les, les);
    }
    free(tmp);
    pst_dataset *m = pst_dataset_new(out, lab, st);
    pst_tensor_unref(out);
    pst_tensor_unref(lab);
    return m;
}

/* ---- Iteration ------------------------------------------------------------------------- */

typedef struct batch {
    pst_tensor *x, *y;
} batch;

struct pst_dataset_iter {
    const pst_dataset *ds;
    pst_dataset_iter_opts o;
    uint64_t rng;
    int64_t epoch, pos;      /* position in the epoch's source order */
    int64_t *buf;            /* shuffle buffer */
    int64_t buf_n;
    int epoch_drained;       /* the current epoch's examples are all in the buffer or out */
    int done;
    /* prefetch */
    pthread_t th;
    int threaded;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    batch *q;
    int q_head, q_len, stop, finished;
    pst_status err;
};

static uint64_t next_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The next example's global index, or -1 at the end of all epochs. The shuffle buffer never
 * mixes epochs (like shuffle() before repeat() in tf.data): each epoch is a permutation. */
static int64_t next_example(pst_dataset_iter *it) {
    const pst_dataset *ds = it->ds;
    int64_t epochs = it->o.repeat == 0 ? 1 : it->o.repeat;
    int64_t cap = it->o.shuffle_buffer > 0 ? it->o.shuffle_buffer : 1;
    for (;;) {
        while (it->buf_n < cap && !it->epoch_drained && ds->n > 0) {
            it->buf[it->buf_n++] = ds->idx[it->pos++];
            if (it->pos == ds->n) it->epoch_drained = 1;
        }
        if (it->buf_n > 0) break;
        if (ds->n == 0 || !it->epoch_drained) return -1;
        it->epoch++;
        if (epochs >= 0 && it->epoch >= epochs) return -1;
        it->pos = 0;
        it->epoch_drained = 0;
    }
    int64_t k = it->o.shuffle_buffer > 0 ? (int64_t)(next_rand(&it->rng) % (uint64_t)it->buf_n) : 0;
    int64_t v = it->buf[k];
    it->buf[k] = it->buf[--it->buf_n];
    if (it->o.shuffle_buffer <= 0) it->buf_n = 0;
    return v;
}

/* The examples at global indices ids (into the original tensors) as one batch. */
static int gather_global(const pst_dataset *ds, const int64_t *ids, int64_t n, pst_tensor **x,
                         pst_tensor **y, pst_status *st) {
    pst_shape fs = ds->features->shape, ls = ds->labels->shape;
    fs.dims[0] = n;
    ls.dims[0] = n;
    *x = pst_tensor_new(ds->features->dtype, fs, st);
    *y = pst_tensor_new(ds->labels->dtype, ls, st);
    if (*x == NULL || *y == NULL) {
        pst_tensor_unref(*x);
        pst_tensor_unref(*y);
        *x = *y = NULL;
        return PST_E_EXHAUSTED;
    }
    size_t frow = ds->features->nbytes / (size_t)(ds->n > 0 ? ds->features->shape.dims[0] : 1);
    size_t lrow = ds->labels->nbytes / (size_t)(ds->n > 0 ? ds->labels->shape.dims[0] : 1);
    for (int64_t i = 0; i < n; i++) {
        memcpy((char *)(*x)->data + (size_t)i * frow, (const char *)ds->features->data + (size_t)ids[i] * frow, frow);
        memcpy((char *)(*y)->data + (size_t)i * lrow, (const char *)ds->labels->data + (size_t)ids[i] * lrow, lrow);
    }
    return 0;
}

int pst_dataset_gather(const pst_dataset *ds, const int64_t *positions, int64_t n,
                       pst_tensor **features, pst_tensor **labels, pst_status *st) {
    int64_t *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    if (!ids) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a batch");
    for (int64_t i = 0; i < n; i++) {
        if (positions[i] < 0 || positions[i] >= ds->n) {
            free(ids);
            return pst_status_set(st, PST_E_OUT_OF_RANGE, "example %lld of a dataset of %lld",
                                  (long long)positions[i], (long long)ds->n);
        }
        ids[i] = ds->idx[positions[i]];
    }
    int rc = gather_global(ds, ids, n, features, labels, st);
    free(ids);
    return rc;
}

static int make_batch(pst_dataset_iter *it, batch *b, pst_status *st) {
    const pst_dataset *ds = it->ds;
    int64_t *ids = malloc((size_t)it->o.batch * sizeof *ids);
    PST_ASSERT(ids != NULL);
    int64_t n = 0;
    while (n < it->o.batch) {
        int64_t v = next_example(it);
        if (v < 0) break;
        ids[n++] = v;
    }
    if (n == 0 || (it->o.drop_remainder && n < it->o.batch)) {
        free(ids);
        return 0;
    }
    int rc = gather_global(ds, ids, n, &b->x, &b->y, st);
    free(ids);
    return rc < 0 ? rc : 1;
}

static void *prefetch_main(void *arg) {
    pst_dataset_iter *it = arg;
    for (;;) {
        pthread_mutex_lock(&it->mu);
        while (it->q_len == it->o.prefetch && !it->stop) pthread_cond_wait(&it->cv, &it->mu);
        int stop = it->stop;
        pthread_mutex_unlock(&it->mu);
        if (stop) return NULL;
        batch b = {0};
        pst_status st = {0};
        int rc = make_batch(it, &b, &st);
        pthread_mutex_lock(&it->mu);
        if (rc <= 0) {
            it->finished = 1;
            if (rc < 0) it->err = st;
        } else {
            it->q[(it->q_head + it->q_len) % it->o.prefetch] = b;
            it->q_len++;
        }
        pthread_cond_broadcast(&it->cv);
        pthread_mutex_unlock(&it->mu);
        if (rc <= 0) return NULL;
    }
}

pst_dataset_iter *pst_dataset_iter_new(const pst_dataset *ds, const pst_dataset_iter_opts *o,
                                       pst_status *st) {
    if (o->batch < 1) {
        pst_status_set(st, PST_E_INVALID, "batch size must be at least 1, got %d", o->batch);
        return NULL;
    }
    pst_dataset_iter *it = calloc(1, sizeof *it);
    PST_ASSERT(it != NULL);
    it->ds = ds;
    it->o = *o;
    it->rng = o->seed * 0x2545F4914F6CDD1DULL + 1;
    int64_t cap = o->shuffle_buffer > 0 ? o->shuffle_buffer : 1;
    it->buf = malloc((size_t)cap * sizeof *it->buf);
    PST_ASSERT(it->buf != NULL);
    if (o->prefetch > 0) {
        it->q = calloc((size_t)o->prefetch, sizeof *it->q);
        PST_ASSERT(it->q != NULL);
        pthread_mutex_init(&it->mu, NULL);
        pthread_cond_init(&it->cv, NULL);
        if (pthread_create(&it->th, NULL, prefetch_main, it) != 0) {
            pst_status_set(st, PST_E_UNAVAILABLE, "cannot start the prefetch thread");
            free(it->q);
            free(it->buf);
            free(it);
            return NULL;
        }
        it->threaded = 1;
    }
    return it;
}

int pst_dataset_next(pst_dataset_iter *it, pst_tensor **features, pst_tensor **labels,
                     pst_status *st) {
    *features = *labels = NULL;
    if (!it->threaded) {
        batch b = {0};
        int rc = make_batch(it, &b, st);
        if (rc == 1) {
            *features = b.x;
            *labels = b.y;
        }
        return rc;
    }
    pthread_mutex_lock(&it->mu);
    while (it->q_len == 0 && !it->finished) pthread_cond_wait(&it->cv, &it->mu);
    int rc = 0;
    if (it->q_len > 0) {
        batch b = it->q[it->q_head];
        it->q_head = (it->q_head + 1) % it->o.prefetch;
        it->q_len--;
        *features = b.x;
        *labels = b.y;
        rc = 1;
        pthread_cond_broadcast(&it->cv);
    } else if (it->err.code) {
        rc = pst_status_set(st, it->err.code, "%s", it->err.msg);
    }
    pthread_mutex_unlock(&it->mu);
    return rc;
}

void pst_dataset_iter_free(pst_dataset_iter *it) {
    if (it == NULL) return;
    if (it->threaded) {
        pthread_mutex_lock(&it->mu);
        it->stop = 1;
        pthread_cond_broadcast(&it->cv);
        pthread_mutex_unlock(&it->mu);
        pthread_join(it->th, NULL);
        for (int i = 0; i < it->q_len; i++) {
            batch *b = &it->q[(it->q_head + i) % it->o.prefetch];
            pst_tensor_unref(b->x);
            pst_tensor_unref(b->y);
        }
        pthread_mutex_destroy(&it->mu);
        pthread_cond_destroy(&it->cv);
        free(it->q);
    }
    free(it->buf);
    free(it);
}
