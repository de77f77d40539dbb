/*
 * dist — pstrain-worker in a cluster (between-graph replication). Each worker builds the same
 * model under the replica device setter (variables on the PS tasks), registers the partitions
 * of its training step on the tasks they name, and runs steps until the global step reaches
 * --steps. The chief (worker 0) initializes the variables or restores the latest checkpoint of
 * --checkpoint-dir and writes checkpoints (each PS writes its shard; the chief merges the
 * index); the others wait until the variables are ready. At the end every worker tells every
 * PS it is done, and the PS exit once all workers are.
 */
#ifndef PST_WORKER_DIST_H
#define PST_WORKER_DIST_H

#include "flags.h"
#include "nets.h"

/* 1 when the flags or the environment (TF_CONFIG) ask for distributed training. */
int pst_worker_is_distributed(const pst_train_flags *f);
/* --join ADDR: asks the job's coordination service for a worker slot (with the job token of
 * the flags' security settings) and writes the job's settings it returns to a private
 * temporary file, job_path (the caller removes it). *index gets the worker id. A service that
 * refuses (no or a wrong token) changes nothing; the error names the address. */
int pst_worker_join(const pst_train_flags *f, char *job_path, size_t len, int *index,
                    pst_status *st);
/* Runs this worker; returns the process exit status (messages on stderr name the fault). */
int pst_worker_run_distributed(const pst_train_flags *f, const pst_net_def *net);

#endif
