/*
 * launch_mpirun — the mpirun launch backend of `pstrain launch` ("backend": "mpirun" in the job
 * file, or --backend mpirun): one mpirun starts every task as an MPI rank of pstrain-worker,
 * on this machine or on the hosts of a hostfile. With "mode": "allreduce" every rank is a
 * worker ("cluster" {"worker": N}); otherwise ranks 0 .. P-1 are the PS and the others the
 * workers (--transport mpi --ps P). mpirun ends the whole job when a rank fails; the launcher
 * then runs it again (up to "restarts" {"max"} times) and the job resumes from its newest
 * checkpoint.
 *
 * While it runs, RUN/state.json says what `pstrain status` shows for the local backend's jobs:
 * "running" (then "stopping", "done", "failed" or "stopped"), the launcher's and mpirun's pids,
 * one entry per rank (task, address "mpi:R", its pid on this host while it runs), the global
 * step and rate from the ranks' progress lines, and the newest checkpoint; `pstrain stop RUN`
 * stops the mpirun (SIGTERM, which mpirun forwards to every rank).
 *
 *     {"cluster": {"ps": 1, "worker": 2}, "backend": "mpirun", "model": "mlp",
 *      "mpirun": {"hostfile": "deploy/mpirun/hosts", "args": ["--mca", "btl_tcp_if_include", "eth0"]}}
 */
#ifndef PST_LAUNCH_MPIRUN_H
#define PST_LAUNCH_MPIRUN_H

#include <signal.h>
#include <stdint.h>

#include "status.h"

typedef struct pst_mpirun_job {
    const char *run;        /* the run directory (logs/mpirun.log goes there) */
    const char *job_file;   /* the run's job.json, read by every rank */
    const char *ckpt_dir;
    const char *bin_dir;    /* where pstrain-worker is */
    int n_ps, n_workers;
    int allreduce;          /* --mode allreduce: no PS ranks */
    const char *hostfile;   /* NULL: this machine (with --oversubscribe) */
    int n_args;             /* more mpirun arguments, before -np */
    char *const *args;
    int n_worker_flags;     /* more pstrain-worker flags ("worker_flags") */
    char *const *worker_flags;
    int max_restarts;
    int64_t backoff_ms;
    int quiet;
    volatile sig_atomic_t *stop; /* set by a signal: stop mpirun, no restart */
    const char *name;       /* the job's name (state.json) */
    int64_t total_steps;    /* the job's --steps (state.json) */
} pst_mpirun_job;

/* Runs the job to its end; returns the exit status of the last mpirun (0: the job finished, or
 * stopped as *stop asked), or -1 with st set when mpirun cannot be started. */
int pst_mpirun_run(const pst_mpirun_job *j, pst_status *st);

#endif
