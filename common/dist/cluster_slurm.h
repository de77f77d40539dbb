/*
 * cluster_slurm — the cluster spec of a job step that Slurm's srun started, built from the
 * environment srun gives every task, by the rules of TensorFlow's SlurmClusterResolver.
 *
 *     SLURM_PROCID               this task's rank, 0 .. N-1
 *     SLURM_STEP_NUM_TASKS       N, the tasks of the step
 *     SLURM_STEP_NODELIST        the step's hosts, compressed: "n[01-03],m5"
 *     SLURM_STEP_TASKS_PER_NODE  tasks on each of those hosts: "3(x2),2,1" = 3,3,2,1
 *
 * The rules (the same in every task, so all of them derive the same spec):
 *   1. Hosts are sorted, each keeping its task count. The order is Slurm's: by name, with runs
 *      of digits compared as numbers, so n2 comes before n10 (TensorFlow compares plain strings;
 *      the two agree whenever numbers are zero-padded to one width, as Slurm writes them).
 *   2. The k-th task of a host (k = 0 .. count-1) gets port port_base + k. The addresses, host
 *      after host, form one list of N entries: address r belongs to rank r (srun's default block
 *      distribution puts consecutive ranks on one host, hosts in this order).
 *   3. Jobs take the list in a fixed order: ranks 0 .. P-1 are "ps" tasks 0 .. P-1, ranks
 *      P .. N-1 are "worker" tasks 0 .. N-P-1 (worker 0, rank P, is the chief).
 *   4. This process is the task of rank SLURM_PROCID. Where srun also set SLURMD_NODENAME and
 *      SLURM_LOCALID, they must name the host and offset rule 2 gives that rank; they differ
 *      when the tasks were not distributed by block (srun -m cyclic, --arbitrary), which
 *      these rules cannot describe, and that is an error instead of a wrong cluster.
 *
 * With 1 PS and srun -N1 -n3 on host "a": ps = [a:8888], worker = [a:8889, a:8890]; rank 2 is
 * worker 1. Errors name the variable at fault (unset, malformed, counts that do not add up).
 *
 *     pst_cluster_slurm_opts o = {.num_ps = 2};
 *     char job[16]; int index;
 *     pst_cluster *c = pst_cluster_from_slurm(&o, job, sizeof job, &index, &st);
 *
 * Binaries take "--cluster-from slurm [--ps P] [--port-base B]" with
 * pst_cluster_slurm_main(), which hands the result on as TF_CONFIG.
 */
#ifndef PST_CLUSTER_SLURM_H
#define PST_CLUSTER_SLURM_H

#include <stddef.h>

#include "cluster.h"
#include "status.h"

/* TensorFlow's SlurmClusterResolver default. */
#define PST_SLURM_DEFAULT_PORT_BASE 8888
/* More hosts (or tasks) than this in one step is taken for a malformed list. */
#define PST_SLURM_MAX_TASKS 65536

typedef struct pst_cluster_slurm_opts {
    int num_ps;    /* ranks 0 .. num_ps-1 are PS tasks; 0: $PST_SLURM_PS, else 1 */
    int port_base; /* first port on every host; 0: $PST_SLURM_PORT_BASE, else 8888 */
} pst_cluster_slurm_opts;

/* Builds the cluster from Slurm's environment (the variables above) by rules 1-4. The job
 * ("ps" or "worker") of this process is copied into task_type (len bytes; may be NULL) and
 * its index into *task_index (may be NULL). Returns a new cluster the caller frees, or NULL
 * with st naming the variable at fault (PST_E_INVALID; PST_E_EXHAUSTED out of memory). */
pst_cluster *pst_cluster_from_slurm(const pst_cluster_slurm_opts *o, char *task_type, size_t len,
                                    int *task_index, pst_status *st);

/* Expands a Slurm host list: comma-separated names, each with any number of bracketed
 * ranges ("n[01-03,7]x" = n01x n02x n03x n07x; a range keeps the zero padding of its first
 * number). `var` names the list's origin in errors. On success *hosts is a new array of *n
 * new strings, in the list's order (free with pst_cluster_slurm_hosts_free). */
int pst_cluster_slurm_hostlist(const char *list, const char *var, char ***hosts, int *n,
                               pst_status *st);
void pst_cluster_slurm_hosts_free(char **hosts, int n);

/* Expands Slurm's tasks-per-node list ("3(x2),2,1" = 3, 3, 2, 1; every count >= 1). On
 * success *counts is a new array of *n entries the caller frees with free(). */
int pst_cluster_slurm_tasks_per_node(const char *list, const char *var, int **counts, int *n,
                                     pst_status *st);

/* For a binary's main(), before its own flag parsing. When argv holds "--cluster-from slurm",
 * removes it and the flags that go with it ("--ps P", "--port-base B") from argv (updating
 * *argc), builds the cluster as pst_cluster_from_slurm does and sets the environment variable
 * TF_CONFIG to it and this process's task, so the binary's TF_CONFIG path runs the task. `job`
 * is the job the binary serves ("ps" or "worker"); a rank of the other job is an error saying
 * so. "--cluster FILE" or "--task K" next to "--cluster-from" is an error. Without
 * "--cluster-from" nothing is removed, so "--ps" alone reaches the binary's parser (unknown).
 * Returns 1 when TF_CONFIG was set, 0 when argv has no "--cluster-from" (argv untouched), or a
 * negative code with st set (the flag or variable at fault). */
int pst_cluster_slurm_main(int *argc, char **argv, const char *job, pst_status *st);

#endif
