/*
 * dataset — an in-memory input pipeline: examples (a features tensor [N, ...] and a labels
 * tensor [N]) that are sharded, split, mapped, shuffled with a seeded buffer, batched, repeated
 * and prefetched on a background thread.
 *
 *     pst_dataset *train = pst_dataset_new(images, labels, &st);
 *     pst_dataset *mine = pst_dataset_shard(train, task, num_workers, &st);
 *     pst_dataset_iter_opts o = {.batch = 100, .shuffle_buffer = 10000, .seed = 1,
 *                                .repeat = -1, .prefetch = 2};
 *     pst_dataset_iter *it = pst_dataset_iter_new(mine, &o, &st);
 *     pst_tensor *x, *y;
 *     while (pst_dataset_next(it, &x, &y, &st) == 1) { ... pst_tensor_unref(x); ... }
 *
 * Datasets are immutable views; each operation returns a new one the caller frees.
 */
#ifndef PST_DATASET_H
#define PST_DATASET_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef struct pst_dataset pst_dataset;
typedef struct pst_dataset_iter pst_dataset_iter;

/* Takes references to features and labels; their first dims must agree. */
pst_dataset *pst_dataset_new(pst_tensor *features, pst_tensor *labels, pst_status *st);
void pst_dataset_free(pst_dataset *ds);
int64_t pst_dataset_size(const pst_dataset *ds);
/* The global index (in the original tensors) of example i. */
int64_t pst_dataset_index(const pst_dataset *ds, int64_t i);

/* The examples at positions (of ds, 0..size-1) as one batch: new tensors the caller unrefs. */
int pst_dataset_gather(const pst_dataset *ds, const int64_t *positions, int64_t n,
                       pst_tensor **features, pst_tensor **labels, pst_status *st);

/* Example i goes to shard i % count (before any shuffling). */
pst_dataset *pst_dataset_shard(const pst_dataset *ds, int index, int count, pst_status *st);
pst_dataset *pst_dataset_take(const pst_dataset *ds, int64_t n);
pst_dataset *pst_dataset_skip(const pst_dataset *ds, int64_t n);
/* The first n_train examples and the rest: a deterministic train/validation split. */
int pst_dataset_split(const pst_dataset *ds, int64_t n_train, pst_dataset **train,
                      pst_dataset **validation, pst_status *st);
/* The examples of worker `index` of `count` (one process is worker 0 of 1): the last
 * n_validation examples are held out as *validation (none when ds has no more than that), and of
 * the rest the worker trains on example i when i % count == index (*mine). Both are new datasets
 * the caller frees; on error (an index out of range) neither is set. */
int pst_dataset_split_for_worker(const pst_dataset *ds, int64_t n_validation, int index,
                                 int count, pst_dataset **mine, pst_dataset **validation,
                                 pst_status *st);
/* A new dataset whose features are fn(example) for every example: fn writes out_per_example
 * floats from in_per_example input values (as float). */
typedef void (*pst_dataset_map_fn)(void *ctx, const float *in, float *out);
pst_dataset *pst_dataset_map(const pst_dataset *ds, pst_dataset_map_fn fn, void *ctx,
                             pst_shape example_shape, pst_status *st);

typedef struct pst_dataset_iter_opts {
    int batch;              /* >= 1 */
    int drop_remainder;
    int64_t shuffle_buffer; /* 0: keep order; >= size: a full permutation per epoch */
    uint64_t seed;
    int64_t repeat;         /* epochs; -1 forever; 0 means 1 */
    int prefetch;           /* batches prepared ahead on a background thread; 0 none */
} pst_dataset_iter_opts;

pst_dataset_iter *pst_dataset_iter_new(const pst_dataset *ds, const pst_dataset_iter_opts *o,
                                       pst_status *st);
/* 1 with a batch (new references), 0 at the end, negative on error. */
int pst_dataset_next(pst_dataset_iter *it, pst_tensor **features, pst_tensor **labels,
                     pst_status *st);
void pst_dataset_iter_free(pst_dataset_iter *it);

#endif
