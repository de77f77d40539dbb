#include "testutil.h"

#include "ops_state.h"

#include <math.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pst_test_main(Suite *s) {
    pst_ops_init();
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

pst_tensor *pst_test_rand(pst_dtype dt, pst_shape shape, uint64_t seed, double lo, double hi) {
    pst_status st = {0};
    pst_tensor *t = pst_tensor_new(dt, shape, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    uint64_t s = seed;
    for (int64_t i = 0; i < t->n; i++) {
        double u = (double)(splitmix(&s) >> 11) / 9007199254740992.0;
        pst_tensor_set_f64(t, i, lo + (hi - lo) * u);
    }
    return t;
}

pst_tensor *pst_test_run(pst_session *s, pst_output fetch, int n, const pst_feed *feeds) {
    pst_status st = {0};
    pst_tensor *out = NULL;
    int rc = pst_session_run(s, feeds, n, &fetch, 1, NULL, 0, &out, &st);
    ck_assert_msg(rc == 0, "run failed: %s", st.msg);
    return out;
}

void pst_test_assert_tensor(const pst_tensor *t, int rank, const int64_t *dims, const double *vals,
                            double tol, const char *file, int line) {
    ck_assert_msg(t != NULL, "%s:%d: tensor is NULL", file, line);
    ck_assert_msg(t->shape.rank == rank, "%s:%d: rank %d, expected %d", file, line, t->shape.rank,
                  rank);
    for (int i = 0; i < rank; i++)
        ck_assert_msg(t->shape.dims[i] == dims[i], "%s:%d: dim %d is %lld, expected %lld", file,
                      line, i, (long long)t->shape.dims[i], (long long)dims[i]);
    for (int64_t i = 0; i < t->n; i++) {
        double v = pst_tensor_get_f64(t, i);
        ck_assert_msg(fabs(v - vals[i]) <= tol * (1 + fabs(vals[i])),
                      "%s:%d: element %lld is %.9g, expected %.9g", file, line, (long long)i, v,
                      vals[i]);
    }
}

static double weighted_sum(pst_session *s, pst_output y, int n_x, const pst_output *xs,
                           pst_tensor *const *x_vals, const pst_tensor *r) {
    pst_feed feeds[16];
    for (int i = 0; i < n_x; i++) feeds[i] = (pst_feed){xs[i], x_vals[i]};
    pst_tensor *out = pst_test_run(s, y, n_x, feeds);
    ck_assert_int_eq(out->n, r->n);
    double acc = 0;
    for (int64_t i = 0; i < out->n; i++) acc += pst_tensor_get_f64(out, i) * pst_tensor_get_f64(r, i);
    pst_tensor_unref(out);
    return acc;
}

double pst_gradcheck(pst_graph *g, pst_output y, int n_x, const pst_output *xs,
                     pst_tensor *const *x_vals, double eps) {
    pst_status st = {0};
    ck_assert(n_x <= 16);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_feed feeds[17];
    for (int i = 0; i < n_x; i++) feeds[i] = (pst_feed){xs[i], x_vals[i]};
    pst_tensor *y0 = pst_test_run(s, y, n_x, feeds);
    pst_tensor *r = pst_test_rand(y0->dtype, y0->shape, 12345, -1, 1);
    pst_output gy = pst_placeholder(g, "gradcheck_dy", y0->dtype, y0->shape);
    pst_output dxs[16];
    int rc = pst_gradients(g, 1, &y, &gy, n_x, xs, dxs, NULL, &st);
    ck_assert_msg(rc == 0, "gradients failed: %s", st.msg);
    feeds[n_x] = (pst_feed){gy, r};
    double worst = 0;
    for (int k = 0; k < n_x; k++) {
        if (dxs[k].node == NULL) continue;
        pst_tensor *ga = NULL;
        rc = pst_session_run(s, feeds, n_x + 1, &dxs[k], 1, NULL, 0, &ga, &st);
        ck_assert_msg(rc == 0, "gradient run failed: %s", st.msg);
        ck_assert_msg(pst_shape_equal(&ga->shape, &x_vals[k]->shape),
                      "gradient of input %d has the wrong shape", k);
        pst_tensor *x = x_vals[k];
        for (int64_t i = 0; i < x->n; i++) {
            double orig = pst_tensor_get_f64(x, i);
            pst_tensor_set_f64(x, i, orig + eps);
            double fp = weighted_sum(s, y, n_x, xs, x_vals, r);
            pst_tensor_set_f64(x, i, orig - eps);
            double fm = weighted_sum(s, y, n_x, xs, x_vals, r);
            pst_tensor_set_f64(x, i, orig);
            double num = (fp - fm) / (2 * eps), ana = pst_tensor_get_f64(ga, i);
            double den = fmax(1.0, fmax(fabs(num), fabs(ana)));
            double err = fabs(num - ana) / den;
            if (err > worst) worst = err;
        }
        pst_tensor_unref(ga);
    }
    pst_tensor_unref(y0);
    pst_tensor_unref(r);
    pst_session_free(s);
    return worst;
}

#if defined(__SANITIZE_ADDRESS__)
#define PST_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PST_TEST_ASAN 1
#endif
#endif

int pst_test_run_with_memory_limit(int (*fn)(void *ctx, pst_status *st), void *ctx,
                                   size_t extra_bytes, pst_status *st) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
#ifndef PST_TEST_ASAN
        unsigned long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f) {
            if (fscanf(f, "%lu", &pages) != 1) pages = 0;
            fclose(f);
        }
        rlim_t lim = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (rlim_t)extra_bytes;
        struct rlimit rl = {lim, lim};
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
#else
        (void)extra_bytes;
#endif
        pst_status cst = {0};
        cst.code = fn(ctx, &cst);
        ssize_t w = write(fds[1], &cst, sizeof cst);
        _exit(w == (ssize_t)sizeof cst ? 0 : 4);
    }
    close(fds[1]);
    pst_status got = {0};
    size_t off = 0;
    while (off < sizeof got) {
        ssize_t r = read(fds[0], (char *)&got + off, sizeof got - off);
        if (r <= 0) break;
        off += (size_t)r;
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (off != sizeof got) {
        pst_status_clear(st);
        return pst_status_set(st, PST_E_INTERNAL, "the child died (wait status %d)", status);
    }
    if (st) *st = got;
    return got.code;
}

int pst_test_run_command(const char *cmd, char *out, size_t len) {
    char *full = malloc(strlen(cmd) + 8);
    ck_assert_ptr_nonnull(full);
    sprintf(full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    free(full);
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    return pclose(p);
}

char *pst_test_data(const char *rel) {
    static char buf[4096];
    const char *src = getenv("PST_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/tests/data/%s", src ? src : ".", rel);
    return buf;
}

void pst_test_tmp_file(char *pattern) {
    int fd = mkstemp(pattern);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

pst_output pst_test_const(pst_graph *g, pst_tensor *t, const char *name) {
    pst_output o = pst_const(g, t, name);
    pst_tensor_unref(t);
    return o;
}

/* ---- Op tests: one node over Const inputs -------------------------------------------- */

/* A builder of op over Const inputs (each tensor's reference is taken), T from input 0. */
pst_node_builder *pst_test_nb_consts(pst_graph *g, const char *op, int n, pst_tensor *const *in) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    for (int i = 0; i < n; i++)
        pst_nb_input(b, pst_test_const(g, in[i], NULL));
    pst_nb_attr_type(b, "T", in[0]->dtype);
    return b;
}

pst_node *pst_test_finish(pst_graph *g, pst_node_builder *b) {
    pst_node *nd = pst_nb_finish(b);
    ck_assert_msg(nd != NULL, "%s", pst_graph_status(g)->msg);
    return nd;
}

/* Output i of nd, run once (a new reference). */
pst_tensor *pst_test_run_out(pst_graph *g, pst_node *nd, int i) {
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert(s != NULL);
    pst_tensor *t = pst_session_run1(s, pst_out(nd, i), &st);
    ck_assert_msg(t != NULL, "%s: %s", nd->name, st.msg);
    pst_session_free(s);
    return t;
}

/* Running nd fails with a message naming the node and containing want. */
void pst_test_run_fails(pst_graph *g, pst_node *nd, const char *want) {
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert(s != NULL);
    pst_tensor *t = pst_session_run1(s, pst_out(nd, 0), &st);
    ck_assert_msg(t == NULL, "%s ran", nd->name);
    ck_assert_msg(strstr(st.msg, nd->name) && strstr(st.msg, want), "message '%s'", st.msg);
    pst_session_free(s);
}

/* op(ins) is one output equal to want (shape `rank`/`dims`). */
void pst_test_check_op(const char *op, int n, pst_tensor *const *in, int rank, const int64_t *dims,
                       const double *want) {
    pst_graph *g = pst_graph_new();
    pst_node *nd = pst_test_finish(g, pst_test_nb_consts(g, op, n, in));
    pst_tensor *o = pst_test_run_out(g, nd, 0);
    PST_ASSERT_TENSOR(o, rank, dims, want, 1e-6);
    pst_tensor_unref(o);
    pst_graph_free(g);
}

/* Gradient check of op over double placeholders fed with vals. */
void pst_test_grad_op(const char *op, int n, pst_tensor *const *vals, const char *akey, int aval) {
    pst_graph *g = pst_graph_new();
    pst_output ph[4];
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    for (int i = 0; i < n; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "x%d", i);
        ph[i] = pst_placeholder(g, nm, vals[i]->dtype, vals[i]->shape);
        pst_nb_input(b, ph[i]);
    }
    pst_nb_attr_type(b, "T", vals[0]->dtype);
    if (akey)
        pst_nb_attr_b(b, akey, aval);
    pst_output y = pst_nb_finish_out(b);
    ck_assert_msg(y.node != NULL, "%s", pst_graph_status(g)->msg);
    double err = pst_gradcheck(g, y, n, ph, vals, 1e-6);
    ck_assert_msg(err < 1e-6, "%s: gradient error %g", op, err);
    pst_graph_free(g);
}

/* One input placeholder of values v (others Consts given as tensors) and attr hooks. */
void pst_test_grad1(const char *op, pst_tensor *v, int n_extra, pst_tensor *const *extra,
                    const char *ikey, int64_t ival) {
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", v->dtype, v->shape);
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_input(b, x);
    for (int i = 0; i < n_extra; i++)
        pst_nb_input(b, pst_test_const(g, extra[i], NULL));
    pst_nb_attr_type(b, "T", v->dtype);
    if (ikey)
        pst_nb_attr_i(b, ikey, ival);
    pst_output y = pst_nb_finish_out(b);
    ck_assert_msg(y.node != NULL, "%s: %s", op, pst_graph_status(g)->msg);
    double err = pst_gradcheck(g, y, 1, &x, &v, 1e-6);
    ck_assert_msg(err < 1e-6, "%s: gradient error %g", op, err);
    pst_tensor_unref(v);
    pst_graph_free(g);
}

/* Building op over the given Consts fails with a message containing want. */
void pst_test_build_fails(const char *op, int n, pst_tensor *const *in, const char *ikey,
                          int64_t ival, const char *want) {
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_test_nb_consts(g, op, n, in);
    if (ikey)
        pst_nb_attr_i(b, ikey, ival);
    ck_assert_msg(pst_nb_finish(b) == NULL, "%s was built", op);
    ck_assert_msg(strstr(pst_graph_status(g)->msg, want) && strstr(pst_graph_status(g)->msg, op),
                  "message '%s'", pst_graph_status(g)->msg);
    pst_graph_free(g);
}
