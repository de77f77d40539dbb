/*
 * member_data — which training examples a worker of a launched (elastic) job reads: the
 * assignment follows the job's membership.
 *
 * The rule: at membership epoch E, the n running workers, ranked by worker id, split the
 * training set. Pass p of epoch E is one permutation of it, the same on every worker (seeded
 * by the job's seed, E and p; in order with --no-shuffle); the worker of rank r takes the
 * permutation's positions r, r + n, r + 2n, ... and starts pass p + 1 at the end. So while
 * the membership stays the same, no example is read twice within a pass; when it changes
 * (a worker joins, leaves or is dropped: a new epoch), every worker starts on the new epoch's
 * permutation with its new rank.
 *
 *     pst_member_data *md = pst_member_data_new(train, seed, shuffle, &st);
 *     pst_member_data_set(md, epoch, rank, n);          // from the coordination service
 *     pst_member_data_next(md, batch, &x, &y, ids, &st); // ids: the examples' global indices
 *     pst_member_data_free(md);
 */
#ifndef PST_WORKER_MEMBER_DATA_H
#define PST_WORKER_MEMBER_DATA_H

#include <stdint.h>

#include "dataset.h"

typedef struct pst_member_data pst_member_data;

/* Over train (borrowed; must outlive it). */
pst_member_data *pst_member_data_new(const pst_dataset *train, uint64_t seed, int shuffle,
                                     pst_status *st);
void pst_member_data_free(pst_member_data *md);
/* The membership: epoch, this worker's rank among the n running workers. A different epoch,
 * rank or n starts the new epoch's first pass. */
void pst_member_data_set(pst_member_data *md, int64_t epoch, int rank, int n);
/* The next batch of this worker's share (new tensors); ids (batch entries, may be NULL) gets
 * each example's index in the original training tensors. */
int pst_member_data_next(pst_member_data *md, int batch, pst_tensor **x, pst_tensor **y,
                         int64_t *ids, pst_status *st);

/* This worker's rank among the running members "index:incarnation:joined_s,..." (the
 * coordination service's list) and their count; a worker missing from the list (it just
 * joined) counts itself in. */
void pst_member_data_rank(const char *members, int index, int *rank, int *n);

#endif
