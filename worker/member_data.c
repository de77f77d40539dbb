/* member_data: a worker's share of the training set by membership (see member_data.h). */
#include "member_data.h"

#include <stdlib.h>
#include <string.h>

struct pst_member_data {
    const pst_dataset *train;
    int64_t n_train;
    uint64_t seed;
    int shuffle;
    int64_t epoch, pass, next; /* next: the next multiple-of-n slot in the pass */
    int rank, n, have;
    int64_t *perm;
};

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The permutation of pass md->pass of epoch md->epoch. */
static void permute(pst_member_data *md) {
    for (int64_t i = 0; i < md->n_train; i++) md->perm[i] = i;
    if (!md->shuffle) return;
    uint64_t s = md->seed ^ ((uint64_t)md->epoch * 0x632be59bd9b4e019ULL) ^
                 ((uint64_t)md->pass * 0x85157af5ULL);
    for (int64_t i = md->n_train - 1; i > 0; i--) {
        int64_t j = (int64_t)(splitmix(&s) % (uint64_t)(i + 1));
        int64_t t = md->perm[i];
        md->perm[i] = md->perm[j];
        md->perm[j] = t;
    }
}

pst_member_data *pst_member_data_new(const pst_dataset *train, uint64_t seed, int shuffle,
                                     pst_status *st) {
    pst_member_data *md = calloc(1, sizeof *md);
    int64_t n = pst_dataset_size(train);
    if (md) md->perm = malloc((size_t)(n > 0 ? n : 1) * sizeof *md->perm);
    if (!md || !md->perm) {
        if (md) free(md);
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory for the data assignment");
        return NULL;
    }
    md->train = train;
    md->n_train = n;
    md->seed = seed;
    md->shuffle = shuffle;
    md->n = 1;
    return md;
}

void pst_member_data_free(pst_member_data *md) {
    if (!md) return;
    free(md->perm);
    free(md);
}

void pst_member_data_set(pst_member_data *md, int64_t epoch, int rank, int n) {
    if (n < 1) n = 1;
    if (rank < 0 || rank >= n) rank = 0;
    if (md->have && md->epoch == epoch && md->rank == rank && md->n == n) return;
    md->epoch = epoch;
    md->rank = rank;
    md->n = n;
    md->pass = 0;
    md->next = 0;
    md->have = 1;
    permute(md);
}

int pst_member_data_next(pst_member_data *md, int batch, pst_tensor **x, pst_tensor **y,
                         int64_t *ids, pst_status *st) {
    if (!md->have) pst_member_data_set(md, 0, 0, 1);
    if (md->n_train < md->n)
        return pst_status_set(st, PST_E_OUT_OF_RANGE, "%lld training examples for %d workers",
                              (long long)md->n_train, md->n);
    int64_t *pos = malloc((size_t)batch * sizeof *pos);
    if (!pos) return pst_status_set(st, PST_E_EXHAUSTED, "out of memory for a batch");
    for (int i = 0; i < batch; i++) {
        int64_t p = md->next * md->n + md->rank;
        if (p >= md->n_train) { /* this worker's share of the pass is used: the next pass */
            md->pass++;
            md->next = 0;
            permute(md);
            p = md->rank;
        }
        md->next++;
        pos[i] = md->perm[p];
        if (ids) ids[i] = pst_dataset_index(md->train, pos[i]);
    }
    int rc = pst_dataset_gather(md->train, pos, batch, x, y, st);
    free(pos);
    return rc;
}

void pst_member_data_rank(const char *members, int index, int *rank, int *n) {
    int r = 0, count = 0, self = 0;
    for (const char *p = members; p && *p;) {
        int id = atoi(p);
        if (id == index) self = 1;
        else if (id < index) r++;
        count++;
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }
    if (!self) count++;
    *rank = r;
    *n = count;
}
