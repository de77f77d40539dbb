/*
 * testdist — helpers for the distributed layer's suites: a job of in-process tasks (over the
 * in-process transport or gRPC on 127.0.0.1) whose servers bind port 0 and publish the port
 * they got, so concurrent test runs never race for a port.
 *
 *     pst_test_job j;
 *     pst_test_job_start(&j, 2, 1, "grpc", NULL);      // 2 PS, 1 worker
 *     ... pst_dist_run_new(j.w[0], g, ...) ...
 *     pst_test_job_stop(&j);
 */
#ifndef PST_TESTDIST_H
#define PST_TESTDIST_H

#include "cluster.h"
#include "graph.h"
#include "task.h"
#include "tensor.h"

#define PST_TEST_JOB_MAX 8

typedef struct pst_test_job {
    int n_ps, n_w;
    pst_cluster *ps_view; /* what the PS were made with: every port 0 */
    pst_cluster *cluster; /* the PS at the ports they bound, the workers at port 0 */
    pst_task *ps[PST_TEST_JOB_MAX], *w[PST_TEST_JOB_MAX];
} pst_test_job;

/* Starts n_ps PS, then n_w workers (quiet, 1 MiB chunks, 5 s connect and receive timeouts
 * unless o says otherwise; o's cluster, job and index are ignored). Fails the test on error. */
void pst_test_job_start(pst_test_job *j, int n_ps, int n_w, const char *transport,
                        const pst_task_opts *o);
/* Frees the tasks (workers first) and the clusters. Tasks set to NULL are skipped. */
void pst_test_job_stop(pst_test_job *j);
/* A cluster of n_ps PS at the addresses of ps[] (port 0 for NULL entries or ps NULL) and n_w
 * workers at port 0. */
pst_cluster *pst_test_cluster(int n_ps, int n_w, pst_task *const *ps);

/* Linear regression y = x w + b (x [8,5], y [8,3]) with squared error and plain SGD (lr 0.1);
 * with n_ps > 0 the replica device setter for `worker` places w and b on the PS (round robin:
 * w on task 0, b on task 1 % n_ps). */
typedef struct pst_test_model {
    pst_graph *g;
    pst_output x, y, loss;
    pst_node *train, *init;
    pst_output w, b;
} pst_test_model;
pst_test_model pst_test_linear_model(int n_ps, const char *worker);
/* Runs `steps` SGD steps of the model in one process, with the batches the distributed tests
 * feed (seeds 100 + i and 200 + i); returns w, b (caller unrefs) and the last loss. */
void pst_test_linear_local(int steps, pst_tensor **w, pst_tensor **b, float *last_loss);
/* The batch of step i: x and y (caller unrefs). */
void pst_test_linear_batch(int i, pst_tensor **x, pst_tensor **y);
/* Asserts two float tensors have the same size and values within tol. */
void pst_test_assert_close(const pst_tensor *a, const pst_tensor *b, double tol);

#endif
