/*
 * mpi_job — the cluster of a job started by mpirun: which task each MPI rank is. Either a
 * cluster file whose addresses are "mpi:RANK", or one made from the rank count: ranks
 * 0 .. n_ps-1 are /job:ps/task:0 .. n_ps-1, the others the workers in rank order (rank n_ps is
 * the chief).
 *
 *     char job[16]; int index;
 *     pst_cluster *c = pst_mpi_job_cluster(NULL, 2, job, sizeof job, &index, &st);
 *     // 6 ranks: rank 3 -> job "worker", index 1; cluster {"ps": ["mpi:0", "mpi:1"], ...}
 */
#ifndef PST_MPI_JOB_H
#define PST_MPI_JOB_H

#include <stddef.h>

#include "cluster.h"

/* Initializes MPI (transport_mpi.h) and returns the job's cluster (caller frees) with this
 * rank's job name and index; NULL with st naming the flag, the file or the rank at fault. */
pst_cluster *pst_mpi_job_cluster(const char *cluster_file, int n_ps, char *job, size_t len,
                                 int *index, pst_status *st);

#endif
