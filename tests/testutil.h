/*
 * testutil — helpers shared by the Check suites: a main() runner, random tensors, tensor
 * comparisons and the finite-difference gradient checker every differentiable op must pass.
 */
#ifndef PST_TESTUTIL_H
#define PST_TESTUTIL_H

#include <check.h>

#include "gradients.h"
#include "graph.h"
#include "ops.h"
#include "session.h"
#include "tensor.h"

/* Runs the suite (CK_NORMAL output) and returns an exit status. */
int pst_test_main(Suite *s);

/* Uniform random values in [lo, hi) from a fixed seed (same on every run). */
pst_tensor *pst_test_rand(pst_dtype dt, pst_shape shape, uint64_t seed, double lo, double hi);

/* Runs `fetch` with n feeds (placeholder, value pairs); aborts the test on error. */
pst_tensor *pst_test_run(pst_session *s, pst_output fetch, int n, const pst_feed *feeds);

/* Asserts t has the given shape (rank, dims) and values within tol (absolute + relative). */
#define PST_ASSERT_TENSOR(t, rank, dims, vals, tol)                                               \
    pst_test_assert_tensor((t), (rank), (dims), (vals), (tol), __FILE__, __LINE__)
void pst_test_assert_tensor(const pst_tensor *t, int rank, const int64_t *dims, const double *vals,
                            double tol, const char *file, int line);

/*
 * Finite-difference gradient check. `y` is computed from the placeholders xs (fed with x_vals).
 * The analytic gradient of sum(y * R) (R random) w.r.t. each x is compared with central
 * differences of step eps. Returns the largest error, measured as
 * |analytic - numeric| / max(1, |analytic|, |numeric|). Fails the test on any run error.
 */
double pst_gradcheck(pst_graph *g, pst_output y, int n_x, const pst_output *xs,
                     pst_tensor *const *x_vals, double eps);

/* The path of a fixture under tests/data ($PST_SOURCE_DIR/tests/data/REL; a static buffer
 * overwritten by the next call). */
char *pst_test_data(const char *rel);
/* Creates an empty file from a mkstemp pattern (asserts it could). */
void pst_test_tmp_file(char *pattern);
/* A Const of t taking the caller's reference (pst_const borrows). */
pst_output pst_test_const(pst_graph *g, pst_tensor *t, const char *name);

/* Runs a shell command; its output (stdout and stderr) into out (NUL-terminated, cut at
 * len - 1); returns the exit status as pclose gives it. */
int pst_test_run_command(const char *cmd, char *out, size_t len);
/* Runs fn(ctx, st) in a child process whose address space may grow by at most extra_bytes
 * (RLIMIT_AS over what it already has) and returns fn's code, its status copied into st. A
 * reader that allocates what a hostile header claims fails there with an out-of-memory error
 * instead of succeeding lazily, so tests can tell "checked before allocating" from "allocated,
 * then noticed". Under AddressSanitizer (which reserves terabytes of address space) no limit is
 * set. A child that dies returns PST_E_INTERNAL with a message saying so. */
int pst_test_run_with_memory_limit(int (*fn)(void *ctx, pst_status *st), void *ctx,
                                   size_t extra_bytes, pst_status *st);

/* ---- Op tests (the test_ops_tf_* suites) ----
 * A builder of op over Const inputs (each tensor's reference is taken), T from input 0. */
pst_node_builder *pst_test_nb_consts(pst_graph *g, const char *op, int n, pst_tensor *const *in);
/* Finishes b, failing the test with the graph's message when it is refused. */
pst_node *pst_test_finish(pst_graph *g, pst_node_builder *b);
/* Output i of nd, run once in a new session (a new reference). */
pst_tensor *pst_test_run_out(pst_graph *g, pst_node *nd, int i);
/* Running nd fails with a message naming the node and containing want. */
void pst_test_run_fails(pst_graph *g, pst_node *nd, const char *want);
/* op(in) (T from in[0]) has one output equal to want, shape rank/dims, within 1e-6. */
void pst_test_check_op(const char *op, int n, pst_tensor *const *in, int rank, const int64_t *dims,
                       const double *want);
/* Finite-difference check of op's gradient over placeholders fed with vals (T from vals[0],
 * a bool attr akey = aval when akey is not NULL); error below 1e-6. */
void pst_test_grad_op(const char *op, int n, pst_tensor *const *vals, const char *akey, int aval);
/* Gradient check of op with respect to input 0 (a placeholder fed v; the others Consts of
 * extra, references taken; an int attr ikey = ival when ikey is not NULL). Takes v. */
void pst_test_grad1(const char *op, pst_tensor *v, int n_extra, pst_tensor *const *extra,
                    const char *ikey, int64_t ival);
/* Building op over Consts of in fails with a message naming op and containing want. */
void pst_test_build_fails(const char *op, int n, pst_tensor *const *in, const char *ikey,
                          int64_t ival, const char *want);

#endif
