/* mpi_job: an MPI job's cluster (see mpi_job.h). */
#include "mpi_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport_mpi.h"

/* {"ps": ["mpi:0", ...], "worker": ["mpi:P", ...]} for size ranks. */
static pst_cluster *made_cluster(int n_ps, int size, pst_status *st) {
    if (n_ps < 1 || n_ps >= size) {
        pst_status_set(st, PST_E_INVALID, "--ps %d: the MPI job has %d ranks; it needs at least "
                       "one PS and one worker (mpirun -np > --ps)", n_ps, size);
        return NULL;
    }
    size_t cap = 64 + (size_t)size * 16;
    char *json = malloc(cap);
    if (!json) {
        pst_status_set(st, PST_E_EXHAUSTED, "out of memory for the MPI job's cluster");
        return NULL;
    }
    size_t n = (size_t)snprintf(json, cap, "{\"ps\": [");
    for (int r = 0; r < size; r++) {
        if (r == n_ps) n += (size_t)snprintf(json + n, cap - n, "], \"worker\": [");
        n += (size_t)snprintf(json + n, cap - n, "%s\"mpi:%d\"", r == 0 || r == n_ps ? "" : ", ",
                              r);
    }
    snprintf(json + n, cap - n, "]}");
    pst_cluster *c = pst_cluster_parse(json, "the MPI job", st);
    free(json);
    return c;
}

pst_cluster *pst_mpi_job_cluster(const char *cluster_file, int n_ps, char *job, size_t len,
                                 int *index, pst_status *st) {
    int rank = 0, size = 0;
    if (pst_mpi_init(&rank, &size, st) < 0) return NULL;
    pst_cluster *c = cluster_file ? pst_cluster_load(cluster_file, st)
                                  : made_cluster(n_ps, size, st);
    if (!c) return NULL;
    char mine[32];
    snprintf(mine, sizeof mine, "mpi:%d", rank);
    *index = -1;
    for (int j = 0; j < pst_cluster_num_jobs(c); j++) {
        const char *name = pst_cluster_job_name(c, j);
        for (int i = 0; i < pst_cluster_num_tasks(c, name); i++) {
            const char *a = pst_cluster_address(c, name, i);
            int r;
            if (pst_mpi_parse_address(a, &r, st) < 0 || r >= size) {
                if (!st->code)
                    pst_status_set(st, PST_E_INVALID, "rank %d: the job has only %d ranks", r,
                                   size);
                pst_status_prefix(st, "%s: /job:%s/task:%d: ", cluster_file, name, i);
                pst_cluster_free(c);
                return NULL;
            }
            if (r == rank) {
                snprintf(job, len, "%s", name);
                *index = i;
            }
        }
    }
    if (*index < 0) {
        pst_status_set(st, PST_E_INVALID, "%s has no task for MPI rank %d (\"mpi:%d\")",
                       cluster_file ? cluster_file : "the MPI job's cluster", rank, rank);
        pst_cluster_free(c);
        return NULL;
    }
    return c;
}
