/*
 * transport_mpi — the task service over MPI point-to-point messages (OpenMPI, or any MPI with
 * MPI_THREAD_MULTIPLE). Every task is an MPI rank and its address is "mpi:RANK"; a call is one
 * message to that rank and its answer one message back, on a private duplicate of
 * MPI_COMM_WORLD whose error handler returns errors (MPI_ERRORS_RETURN) instead of aborting.
 *
 * Outgoing messages are sent straight from their segments (an MPI datatype of their absolute
 * addresses, so a tensor is never copied into a send buffer); a received message lands in one
 * buffer the handler reads its segments from. One thread per process polls for messages and
 * deadlines; handlers and completions run on a small pool. Every call has a deadline: a rank
 * that died or hangs is an error naming the rank ("mpi:3"), never a hang.
 *
 *     int rank, size;
 *     if (pst_mpi_init(&rank, &size, &st) < 0) ...        // once per process
 *     pst_transport *t = pst_transport_mpi_new(pst_task_methods, PST_TASK_METHOD_COUNT, NULL, &st);
 *     pst_transport_serve(t, "mpi:0", handler, ctx, bound, sizeof bound, &st);
 *     ...
 *     pst_transport_free(t);
 *     pst_mpi_finalize();
 *
 * Without MPI in the build (CMake option PST_MPI off) every function fails with an error saying
 * so. MPI messages carry no job token and no TLS: the ranks of one mpirun trust each other.
 */
#ifndef PST_TRANSPORT_MPI_H
#define PST_TRANSPORT_MPI_H

#include "transport.h"

/* 1 when this build has MPI. */
int pst_mpi_available(void);
/* 1 when this process was started by mpirun (or another MPI launcher that sets the usual
 * environment: OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK). */
int pst_mpi_launched(void);
/* Initializes MPI once per process with MPI_THREAD_MULTIPLE (an error when the library
 * provides less) and MPI_ERRORS_RETURN on MPI_COMM_WORLD; later calls only report rank and
 * size (either may be NULL). */
int pst_mpi_init(int *rank, int *size, pst_status *st);
/* Finalizes MPI when pst_mpi_init initialized it (no-op otherwise). */
void pst_mpi_finalize(void);
/* Ends every rank of the job (MPI_Abort) with code: for a rank that knows the job cannot go on
 * and must not wait in MPI_Finalize for a rank that died. Returns only without MPI. */
void pst_mpi_abort(int code);
/* Failures. pst_mpi_init records every rank's host and pid; pst_mpi_gone_ranks writes the
 * ranks of this host whose process has exited ("rank 1 (pid 4242 on node3)", comma-separated)
 * into out and returns how many (0 without MPI). */
int pst_mpi_gone_ranks(char *out, size_t len);
/* When mpirun ends the job because a rank died (it sends SIGTERM to the others), prints
 * "<who>: mpirun is ending the job: rank 1 (pid N on host) exited" to stderr, naming the ranks
 * of this host that are gone, and exits with status 1 at once. Call once, after pst_mpi_init. */
void pst_mpi_report_termination(const char *who);

/* Parses "mpi:RANK"; 0 with *rank set, or PST_E_INVALID naming the address. */
int pst_mpi_parse_address(const char *addr, int *rank, pst_status *st);

/* An MPI transport (pst_mpi_init first). opts: server_threads (handlers running at once,
 * default 4); keepalive and security are ignored. serve() takes "mpi:RANK" of this rank. */
pst_transport *pst_transport_mpi_new(const char *const *methods, int n_methods,
                                     const pst_transport_opts *o, pst_status *st);

#endif
