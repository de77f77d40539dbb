/* Task service: partitions registered and run across tasks (in one process, over the
 * in-process transport and over gRPC on 127.0.0.1), variables pushed and pulled in chunks,
 * status, sharded save and restore onto another number of PS, errors naming the task. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "bundle.h"
#include "embedding.h"
#include "cluster.h"
#include "init.h"
#include "losses.h"
#include "optimizer.h"
#include "saver.h"
#include "task.h"
#include "testutil.h"
#include "replica_setter.h"
#include "partitioned_var.h"


/* A cluster of n_ps PS and n_w workers on 127.0.0.1 with free ports. */
static pst_cluster *make_cluster(int n_ps, int n_w) {
    char json[2048];
    size_t o = (size_t)snprintf(json, sizeof json, "{\"ps\": [");
    for (int i = 0; i < n_ps; i++)
        o += (size_t)snprintf(json + o, sizeof json - o, "%s\"127.0.0.1:%d\"", i ? "," : "", pst_test_free_port());
    o += (size_t)snprintf(json + o, sizeof json - o, "], \"worker\": [");
    for (int i = 0; i < n_w; i++)
        o += (size_t)snprintf(json + o, sizeof json - o, "%s\"127.0.0.1:%d\"", i ? "," : "", pst_test_free_port());
    snprintf(json + o, sizeof json - o, "]}");
    pst_status st = {0};
    pst_cluster *c = pst_cluster_parse(json, "test cluster", &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    return c;
}

static pst_task *make_task(const pst_cluster *c, const char *job, int i, const char *tr) {
    pst_status st = {0};
    pst_task_opts o = {.cluster = c, .job = job, .index = i, .transport = tr, .quiet = 1,
                       .chunk_bytes = 1 << 20, .connect_timeout_ms = 5000,
                       .recv_timeout_ms = 5000};
    pst_task *t = pst_task_new(&o, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    return t;
}

typedef struct model {
    pst_graph *g;
    pst_output x, y, loss;
    pst_node *train, *init;
    pst_output w, b;
} model;

/* Linear regression y = x w + b with squared error and plain SGD; with n_ps > 0 the replica
 * device setter places w and b on the PS. */
static model build(int n_ps, const char *worker) {
    model m;
    m.g = pst_graph_new();
    pst_status st = {0};
    pst_replica_setter *rs = NULL;
    if (n_ps > 0) {
        rs = pst_replica_setter_new(n_ps, worker, PST_PLACE_ROUND_ROBIN, &st);
        pst_graph_set_device_fn(m.g, pst_replica_setter_fn, rs);
    }
    m.x = pst_placeholder(m.g, "x", PST_FLOAT, pst_shape_2d(8, 5));
    m.y = pst_placeholder(m.g, "y", PST_FLOAT, pst_shape_2d(8, 3));
    pst_tensor *w0 = pst_test_rand(PST_FLOAT, pst_shape_2d(5, 3), 11, -1, 1);
    pst_tensor *b0 = pst_test_rand(PST_FLOAT, pst_shape_1d(3), 12, -1, 1);
    m.w = pst_variable(m.g, "w", pst_const(m.g, w0, "w0"), 1);
    m.b = pst_variable(m.g, "b", pst_const(m.g, b0, "b0"), 1);
    pst_tensor_unref(w0);
    pst_tensor_unref(b0);
    pst_output pred = pst_add(m.g, pst_matmul(m.g, m.x, pst_variable_value(m.w), 0, 0, NULL),
                              pst_variable_value(m.b), "pred");
    m.loss = pst_loss_mean_squared_error(m.g, pred, m.y, pst_out(NULL, 0), NULL);
    pst_optimizer_opts oo = pst_optimizer_defaults(PST_OPT_SGD, 0.1f);
    m.train = pst_optimizer_minimize(m.g, &oo, m.loss, 0, NULL, pst_out(NULL, 0), "train");
    m.init = pst_global_variables_initializer(m.g);
    ck_assert_msg(pst_graph_error(m.g) == 0, "%s", pst_graph_status(m.g)->msg);
    if (rs) {
        pst_graph_set_device_fn(m.g, NULL, NULL);
        pst_replica_setter_free(rs);
    }
    return m;
}

static void run_local(int steps, pst_tensor **w, pst_tensor **b, float *last_loss) {
    model m = build(0, NULL);
    pst_status st = {0};
    pst_session *s = pst_session_new(m.g, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(s, m.init, &st), 0);
    for (int i = 0; i < steps; i++) {
        pst_tensor *xv = pst_test_rand(PST_FLOAT, pst_shape_2d(8, 5), 100 + (uint64_t)i, -1, 1);
        pst_tensor *yv = pst_test_rand(PST_FLOAT, pst_shape_2d(8, 3), 200 + (uint64_t)i, -1, 1);
        pst_feed f[2] = {{m.x, xv}, {m.y, yv}};
        pst_tensor *out[1];
        ck_assert_int_eq(pst_session_run(s, f, 2, &m.loss, 1, &m.train, 1, out, &st), 0);
        *last_loss = pst_tensor_f32(out[0])[0];
        pst_tensor_unref(out[0]);
        pst_tensor_unref(xv);
        pst_tensor_unref(yv);
    }
    *w = pst_session_run1(s, pst_variable_value(m.w), &st);
    *b = pst_session_run1(s, pst_variable_value(m.b), &st);
    pst_session_free(s);
    pst_graph_free(m.g);
}

static void assert_close(const pst_tensor *a, const pst_tensor *b, double tol) {
    ck_assert_int_eq((int)a->n, (int)b->n);
    for (int64_t i = 0; i < a->n; i++)
        ck_assert_msg(fabs(pst_tensor_f32(a)[i] - pst_tensor_f32(b)[i]) <= tol, "%lld: %g vs %g",
                      (long long)i, pst_tensor_f32(a)[i], pst_tensor_f32(b)[i]);
}

/* Two PS and one worker: training steps partitioned across them give what one process gives. */
static void dist_matches_local(const char *tr) {
    pst_cluster *c = make_cluster(2, 1);
    pst_task *ps0 = make_task(c, "ps", 0, tr), *ps1 = make_task(c, "ps", 1, tr);
    pst_task *wk = make_task(c, "worker", 0, tr);
    model m = build(2, "/job:worker/task:0");
    ck_assert_ptr_nonnull(strstr(m.w.node->device, "/job:ps/task:0"));
    ck_assert_ptr_nonnull(strstr(m.b.node->device, "/job:ps/task:1"));
    pst_status st = {0};
    pst_dist_run *init = pst_dist_run_new(wk, m.g, 0, NULL, 1, &m.init, &st);
    ck_assert_msg(init != NULL, "%s", st.msg);
    ck_assert_msg(pst_dist_run_step(init, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pst_dist_run *train = pst_dist_run_new(wk, m.g, 1, &m.loss, 1, &m.train, &st);
    ck_assert_msg(train != NULL, "%s", st.msg);
    float loss = 0;
    for (int i = 0; i < 6; i++) {
        pst_tensor *xv = pst_test_rand(PST_FLOAT, pst_shape_2d(8, 5), 100 + (uint64_t)i, -1, 1);
        pst_tensor *yv = pst_test_rand(PST_FLOAT, pst_shape_2d(8, 3), 200 + (uint64_t)i, -1, 1);
        pst_feed f[2] = {{m.x, xv}, {m.y, yv}};
        pst_tensor *out[1];
        ck_assert_msg(pst_dist_run_step(train, f, 2, out, &st) == 0, "%s", st.msg);
        loss = pst_tensor_f32(out[0])[0];
        pst_tensor_unref(out[0]);
        pst_tensor_unref(xv);
        pst_tensor_unref(yv);
    }
    pst_tensor *lw, *lb;
    float lloss;
    run_local(6, &lw, &lb, &lloss);
    ck_assert_float_eq_tol(loss, lloss, 1e-6);
    pst_tensor *dw = pst_task_pull_variable(wk, "/job:ps/task:0", "w", &st);
    ck_assert_msg(dw != NULL, "%s", st.msg);
    pst_tensor *db = pst_task_pull_variable(wk, "/job:ps/task:1", "b", &st);
    ck_assert_msg(db != NULL, "%s", st.msg);
    assert_close(dw, lw, 1e-6);
    assert_close(db, lb, 1e-6);
    /* w lives on ps0 only */
    ck_assert_ptr_null(pst_task_pull_variable(wk, "/job:ps/task:1", "w", &st));
    ck_assert_ptr_nonnull(strstr(st.msg, "variable 'w' is not on /job:ps/replica:0/task:1"));
    /* the status shows the variable, its pulls and updates, and the partition */
    char *text = pst_task_status_text(wk, "/job:ps/task:0", &st);
    ck_assert_msg(text != NULL, "%s", st.msg);
    ck_assert_ptr_nonnull(strstr(text, "var w "));
    ck_assert_ptr_nonnull(strstr(text, "pulls 6"));
    ck_assert_ptr_nonnull(strstr(text, "updates 7")); /* init + 6 steps */
    ck_assert_ptr_nonnull(strstr(text, "from /job:worker/replica:0/task:0: 6 steps"));
    free(text);
    for (pst_tensor **p = (pst_tensor *[]){dw, db, lw, lb, NULL}; *p; p++) pst_tensor_unref(*p);
    pst_dist_run_free(train);
    pst_dist_run_free(init);
    pst_task_free(wk);
    pst_task_free(ps1);
    pst_task_free(ps0);
    pst_cluster_free(c);
    pst_graph_free(m.g);
}
START_TEST(test_inproc_dist_matches_local) { dist_matches_local("inproc"); }
END_TEST
START_TEST(test_grpc_dist_matches_local) { dist_matches_local("grpc"); }
END_TEST

/* A 20 MiB variable pushed and pulled in 1 MiB chunks arrives bit for bit. */
static void push_pull(const char *tr) {
    pst_cluster *c = make_cluster(1, 1);
    pst_task *ps = make_task(c, "ps", 0, tr), *wk = make_task(c, "worker", 0, tr);
    pst_tensor *v = pst_test_rand(PST_FLOAT, pst_shape_2d(1280, 4096), 5, -1, 1);
    pst_status st = {0};
    ck_assert_msg(pst_task_push_variable(wk, "/job:ps/task:0", "big", v, &st) == 0, "%s", st.msg);
    pst_tensor *back = pst_task_pull_variable(wk, "/job:ps/task:0", "big", &st);
    ck_assert_msg(back != NULL, "%s", st.msg);
    ck_assert_int_eq(back->shape.rank, 2);
    ck_assert_int_eq(back->shape.dims[1], 4096);
    ck_assert(memcmp(back->data, v->data, v->nbytes) == 0);
    /* an empty tensor too */
    pst_tensor *e = pst_tensor_new(PST_FLOAT, pst_shape_2d(0, 3), &st);
    ck_assert_int_eq(pst_task_push_variable(wk, "/job:ps/task:0", "empty", e, &st), 0);
    pst_tensor *eb = pst_task_pull_variable(wk, "/job:ps/task:0", "empty", &st);
    ck_assert_msg(eb != NULL, "%s", st.msg);
    ck_assert_int_eq(eb->shape.dims[1], 3);
    pst_tensor_unref(eb);
    pst_tensor_unref(e);
    pst_tensor_unref(back);
    pst_tensor_unref(v);
    pst_task_free(wk);
    pst_task_free(ps);
    pst_cluster_free(c);
}
START_TEST(test_inproc_push_pull) { push_pull("inproc"); }
END_TEST
START_TEST(test_grpc_push_pull) { push_pull("grpc"); }
END_TEST

/* A PS that is gone: the worker's call fails within the connect limit naming its address. */
START_TEST(test_grpc_unreachable_ps_named) {
    pst_cluster *c = make_cluster(1, 1);
    pst_task *wk = make_task(c, "worker", 0, "grpc");
    model m = build(1, "/job:worker/task:0");
    pst_status st = {0};
    pst_dist_run *init = pst_dist_run_new(wk, m.g, 0, NULL, 1, &m.init, &st);
    ck_assert_ptr_null(init);
    ck_assert_ptr_nonnull(strstr(st.msg, pst_cluster_address(c, "ps", 0)));
    pst_task_free(wk);
    pst_cluster_free(c);
    pst_graph_free(m.g);
}
END_TEST

/* A PS that dies between steps: the next step fails naming it (no hang). */
START_TEST(test_grpc_ps_dies) {
    pst_cluster *c = make_cluster(1, 1);
    pst_task *ps = make_task(c, "ps", 0, "grpc"), *wk = make_task(c, "worker", 0, "grpc");
    model m = build(1, "/job:worker/task:0");
    pst_status st = {0};
    pst_dist_run *init = pst_dist_run_new(wk, m.g, 0, NULL, 1, &m.init, &st);
    ck_assert_msg(init && pst_dist_run_step(init, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pst_dist_run *train = pst_dist_run_new(wk, m.g, 1, &m.loss, 1, &m.train, &st);
    ck_assert_msg(train != NULL, "%s", st.msg);
    pst_task_free(ps);
    pst_tensor *xv = pst_test_rand(PST_FLOAT, pst_shape_2d(8, 5), 1, -1, 1);
    pst_tensor *yv = pst_test_rand(PST_FLOAT, pst_shape_2d(8, 3), 2, -1, 1);
    pst_feed f[2] = {{m.x, xv}, {m.y, yv}};
    pst_tensor *out[1] = {NULL};
    ck_assert_int_lt(pst_dist_run_step(train, f, 2, out, &st), 0);
    ck_assert_msg(strstr(st.msg, pst_cluster_address(c, "ps", 0)) != NULL, "%s", st.msg);
    ck_assert_ptr_null(out[0]);
    pst_tensor_unref(xv);
    pst_tensor_unref(yv);
    pst_dist_run_free(train);
    pst_dist_run_free(init);
    pst_task_free(wk);
    pst_cluster_free(c);
    pst_graph_free(m.g);
}
END_TEST

/* Shutdown: the PS returns from its wait once every worker said done; a failure is reported. */
START_TEST(test_inproc_shutdown_after_workers) {
    pst_cluster *c = make_cluster(1, 2);
    pst_task *ps = make_task(c, "ps", 0, "inproc");
    pst_task *w0 = make_task(c, "worker", 0, "inproc"), *w1 = make_task(c, "worker", 1, "inproc");
    pst_status st = {0};
    ck_assert_int_eq(pst_task_say_done(w0, "/job:ps/task:0", 0, NULL, &st), 0);
    ck_assert_int_eq(pst_task_wait_shutdown(ps, 200, &st), PST_E_DEADLINE);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(pst_task_say_done(w1, "/job:ps/task:0", 1, "out of data", &st), 0);
    ck_assert_int_lt(pst_task_wait_shutdown(ps, 2000, &st), 0);
    ck_assert_ptr_nonnull(strstr(st.msg, "/job:worker/replica:0/task:1 failed: out of data"));
    pst_task_free(w1);
    pst_task_free(w0);
    pst_task_free(ps);
    pst_cluster_free(c);
}
END_TEST

/* A variable partitioned over 3 PS: each PS saves its slices to its own shard, the shards are
 * merged into one checkpoint holding the whole variable, and restoring onto 1 PS (unpartitioned)
 * gives the same values. */
START_TEST(test_inproc_sliced_save_restore_other_ps_count) {
    char dir[] = "/tmp/pst_task_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    pst_cluster *c = make_cluster(3, 1);
    pst_task *ps[3];
    for (int i = 0; i < 3; i++) ps[i] = make_task(c, "ps", i, "inproc");
    pst_task *wk = make_task(c, "worker", 0, "inproc");
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    pst_replica_setter *rs = pst_replica_setter_new(3, "/job:worker/task:0", PST_PLACE_ROUND_ROBIN, &st);
    pst_graph_set_device_fn(g, pst_replica_setter_fn, rs);
    pst_initializer init = pst_init_random_uniform(-1, 1, 3);
    pst_partitioned_var *pv = pst_partitioned_var_new(g, "emb", PST_FLOAT, pst_shape_2d(10, 4), 3, &init, 1);
    ck_assert_msg(pv != NULL, "%s", pst_graph_status(g)->msg);
    pst_output value = pv->value;
    pst_node *ini = pst_global_variables_initializer(g);
    pst_graph_set_device_fn(g, NULL, NULL);
    pst_dist_run *r = pst_dist_run_new(wk, g, 0, NULL, 1, &ini, &st);
    ck_assert_msg(r && pst_dist_run_step(r, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pst_dist_run *read = pst_dist_run_new(wk, g, 1, &value, 0, NULL, &st);
    pst_tensor *orig[1];
    ck_assert_msg(read && pst_dist_run_step(read, NULL, 0, orig, &st) == 0, "%s", st.msg);
    /* every part lives on a different PS */
    for (int i = 0; i < 3; i++) {
        char dev[64], name[32];
        snprintf(dev, sizeof dev, "/job:ps/task:%d", i);
        snprintf(name, sizeof name, "emb/part_%d", i);
        pst_tensor *p = pst_task_pull_variable(wk, dev, name, &st);
        ck_assert_msg(p != NULL, "%s", st.msg);
        pst_tensor_unref(p);
    }
    char prefix[256], shards[3][300];
    snprintf(prefix, sizeof prefix, "%s/model.ckpt-1", dir);
    const char *sp[3];
    for (int i = 0; i < 3; i++) {
        char dev[64];
        snprintf(dev, sizeof dev, "/job:ps/task:%d", i);
        snprintf(shards[i], sizeof shards[i], "%s_temp_shard%d", prefix, i);
        sp[i] = shards[i];
        ck_assert_msg(pst_task_save_remote(wk, dev, shards[i], i, 3, &st) == 0, "%s", st.msg);
    }
    ck_assert_msg(pst_bundle_merge(3, sp, prefix, &st) == 0, "%s", st.msg);
    /* the checkpoint holds one full [10,4] tensor, the concatenation */
    pst_bundle_reader *br = pst_bundle_reader_open(prefix, &st);
    ck_assert_msg(br != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_bundle_reader_num_shards(br), 3);
    pst_tensor *whole = pst_bundle_reader_read(br, "emb", &st);
    ck_assert_msg(whole != NULL, "%s", st.msg);
    assert_close(whole, orig[0], 0);
    pst_tensor_unref(whole);
    pst_bundle_reader_free(br);
    pst_dist_run_free(read);
    pst_dist_run_free(r);
    pst_task_free(wk);
    for (int i = 0; i < 3; i++) pst_task_free(ps[i]);
    pst_cluster_free(c);
    pst_partitioned_var_free(pv);
    pst_replica_setter_free(rs);
    pst_graph_free(g);

    /* Restore onto 1 PS with a whole variable, and onto 2 PS with 2 parts. */
    for (int n_ps = 1; n_ps <= 2; n_ps++) {
        pst_cluster *c2 = make_cluster(n_ps, 1);
        pst_task *p2[2] = {0};
        for (int i = 0; i < n_ps; i++) p2[i] = make_task(c2, "ps", i, "inproc");
        pst_task *w2 = make_task(c2, "worker", 0, "inproc");
        pst_graph *g2 = pst_graph_new();
        pst_replica_setter *rs2 = pst_replica_setter_new(n_ps, "/job:worker/task:0", PST_PLACE_ROUND_ROBIN, &st);
        pst_graph_set_device_fn(g2, pst_replica_setter_fn, rs2);
        pst_initializer zeros = pst_init_zeros();
        pst_output v2;
        pst_partitioned_var *pv2 = NULL;
        if (n_ps == 1) {
            pst_variable_opts o = {.name = "emb", .dtype = PST_FLOAT, .shape = pst_shape_2d(10, 4),
                                   .init_fn = pst_init_fn_of, .init_ctx = &zeros, .trainable = 1};
            v2 = pst_variable_value(pst_variable_ex(g2, &o));
        } else {
            pv2 = pst_partitioned_var_new(g2, "emb", PST_FLOAT, pst_shape_2d(10, 4), 2, &zeros, 1);
            v2 = pv2->value;
        }
        pst_graph_set_device_fn(g2, NULL, NULL);
        ck_assert_msg(pst_graph_error(g2) == 0, "%s", pst_graph_status(g2)->msg);
        /* registering a read partition tells each PS which variables (and slices) it holds */
        pst_dist_run *rd = pst_dist_run_new(w2, g2, 1, &v2, 0, NULL, &st);
        ck_assert_msg(rd != NULL, "%s", st.msg);
        int total = 0;
        for (int i = 0; i < n_ps; i++) {
            char dev[64];
            int n = 0;
            snprintf(dev, sizeof dev, "/job:ps/task:%d", i);
            ck_assert_msg(pst_task_restore_remote(w2, dev, prefix, &n, &st) == 0, "%s", st.msg);
            total += n;
        }
        ck_assert_int_eq(total, n_ps == 1 ? 1 : 2);
        pst_tensor *got[1];
        ck_assert_msg(pst_dist_run_step(rd, NULL, 0, got, &st) == 0, "%s", st.msg);
        assert_close(got[0], orig[0], 0);
        pst_tensor_unref(got[0]);
        pst_dist_run_free(rd);
        pst_task_free(w2);
        for (int i = 0; i < n_ps; i++) pst_task_free(p2[i]);
        pst_cluster_free(c2);
        pst_partitioned_var_free(pv2);
        pst_replica_setter_free(rs2);
        pst_graph_free(g2);
    }
    pst_tensor_unref(orig[0]);
}
END_TEST

/* embedding_lookup on a table partitioned over 2 PS: the lookup returns the asked rows, the PS
 * send only those rows, and SGD's sparse gradient changes only those rows, by exactly -lr times
 * the summed gradient of their occurrences. */
START_TEST(test_inproc_embedding_sparse) {
    pst_cluster *c = make_cluster(2, 1);
    pst_task *ps0 = make_task(c, "ps", 0, "inproc"), *ps1 = make_task(c, "ps", 1, "inproc");
    pst_task *wk = make_task(c, "worker", 0, "inproc");
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    pst_replica_setter *rs = pst_replica_setter_new(2, "/job:worker/task:0", PST_PLACE_ROUND_ROBIN, &st);
    pst_graph_set_device_fn(g, pst_replica_setter_fn, rs);
    pst_initializer init = pst_init_random_uniform(-1, 1, 7);
    pst_partitioned_var *pv = pst_partitioned_var_new(g, "emb", PST_FLOAT, pst_shape_2d(1000, 8), 2, &init, 1);
    ck_assert_msg(pv != NULL, "%s", pst_graph_status(g)->msg);
    pst_output ids = pst_placeholder(g, "ids", PST_INT64, pst_shape_1d(4));
    pst_output look = pst_embedding_lookup(g, pv, ids, "lookup");
    pst_tensor *wv = pst_test_rand(PST_FLOAT, pst_shape_2d(4, 8), 9, -1, 1);
    pst_output loss = pst_reduce_sum(g, pst_mul(g, look, pst_const(g, wv, "w"), NULL), 0, NULL, 0, "loss");
    pst_optimizer_opts oo = pst_optimizer_defaults(PST_OPT_SGD, 0.5f);
    pst_node *train = pst_optimizer_minimize(g, &oo, loss, 0, NULL, pst_out(NULL, 0), "train");
    pst_node *ini = pst_global_variables_initializer(g);
    pst_graph_set_device_fn(g, NULL, NULL);
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    /* the rows are gathered on the PS */
    ck_assert_ptr_nonnull(strstr(pst_graph_find(g, "lookup/gather_1")->device, "/job:ps/task:1"));
    pst_dist_run *r = pst_dist_run_new(wk, g, 0, NULL, 1, &ini, &st);
    ck_assert_msg(r && pst_dist_run_step(r, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    const char *names[2] = {"emb/part_0", "emb/part_1"};
    pst_tensor *before[2], *after[2];
    ck_assert_int_eq(pst_task_pull_variables(wk, "/job:ps/task:0", 1, names, &before[0], &st), 0);
    ck_assert_int_eq(pst_task_pull_variables(wk, "/job:ps/task:1", 1, names + 1, &before[1], &st), 0);
    pst_task_report rep0;
    ck_assert_int_eq(pst_task_query_report(pst_task_transport(wk), pst_cluster_address(c, "ps", 0), 2000, &rep0, &st), 0);
    int64_t sent0 = rep0.bytes_sent, recv0 = rep0.bytes_received;
    pst_task_report_destroy(&rep0);
    pst_dist_run *tr = pst_dist_run_new(wk, g, 1, &look, 1, &train, &st);
    ck_assert_msg(tr != NULL, "%s", st.msg);
    pst_tensor *idv = pst_tensor_new(PST_INT64, pst_shape_1d(4), &st);
    int64_t idl[4] = {3, 998, 3, 7};
    memcpy(idv->data, idl, sizeof idl);
    pst_feed f = {ids, idv};
    pst_tensor *out[1];
    ck_assert_msg(pst_dist_run_step(tr, &f, 1, out, &st) == 0, "%s", st.msg);
    /* the lookup is the asked rows (rows >= 500 live in part 1) */
    for (int i = 0; i < 4; i++) {
        int p = idl[i] >= 500;
        int64_t row = idl[i] - (p ? 500 : 0);
        for (int k = 0; k < 8; k++)
            ck_assert_float_eq(pst_tensor_f32(out[0])[i * 8 + k], pst_tensor_f32(before[p])[row * 8 + k]);
    }
    pst_tensor_unref(out[0]);
    /* PS 0 sent its 3 looked-up rows (3 x 32 bytes), not its 500-row part (16000 bytes), and
     * received ids and 3 rows of gradient */
    ck_assert_int_eq(pst_task_query_report(pst_task_transport(wk), pst_cluster_address(c, "ps", 0), 2000, &rep0, &st), 0);
    ck_assert_int_lt(rep0.bytes_sent - sent0, 1000);
    ck_assert_int_gt(rep0.bytes_sent - sent0, 0);
    ck_assert_int_lt(rep0.bytes_received - recv0, 1000);
    pst_task_report_destroy(&rep0);
    ck_assert_int_eq(pst_task_pull_variables(wk, "/job:ps/task:0", 1, names, &after[0], &st), 0);
    ck_assert_int_eq(pst_task_pull_variables(wk, "/job:ps/task:1", 1, names + 1, &after[1], &st), 0);
    const float *w = pst_tensor_f32(wv);
    for (int p = 0; p < 2; p++)
        for (int64_t row = 0; row < 500; row++) {
            int64_t id = row + p * 500;
            for (int k = 0; k < 8; k++) {
                double expect = pst_tensor_f32(before[p])[row * 8 + k];
                for (int i = 0; i < 4; i++)
                    if (idl[i] == id) expect -= 0.5 * w[i * 8 + k];
                ck_assert_msg(fabs(pst_tensor_f32(after[p])[row * 8 + k] - expect) < 1e-6,
                              "row %lld col %d", (long long)id, k);
            }
        }
    for (int p = 0; p < 2; p++) {
        pst_tensor_unref(before[p]);
        pst_tensor_unref(after[p]);
    }
    pst_tensor_unref(idv);
    pst_tensor_unref(wv);
    pst_dist_run_free(tr);
    pst_dist_run_free(r);
    pst_task_free(wk);
    pst_task_free(ps1);
    pst_task_free(ps0);
    pst_cluster_free(c);
    pst_partitioned_var_free(pv);
    pst_replica_setter_free(rs);
    pst_graph_free(g);
}
END_TEST

/* With an optimizer that has no sparse form (momentum), the rows' gradient is densified and
 * the result equals a single-process run of the same graph. */
static void embedding_momentum(int dist, pst_tensor **part0_out) {
    pst_cluster *c = dist ? make_cluster(2, 1) : NULL;
    pst_task *ps0 = NULL, *ps1 = NULL, *wk = NULL;
    if (dist) {
        ps0 = make_task(c, "ps", 0, "inproc");
        ps1 = make_task(c, "ps", 1, "inproc");
        wk = make_task(c, "worker", 0, "inproc");
    }
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    pst_replica_setter *rs = pst_replica_setter_new(2, "/job:worker/task:0", PST_PLACE_ROUND_ROBIN, &st);
    if (dist) pst_graph_set_device_fn(g, pst_replica_setter_fn, rs);
    pst_initializer init = pst_init_random_uniform(-1, 1, 7);
    pst_partitioned_var *pv = pst_partitioned_var_new(g, "emb", PST_FLOAT, pst_shape_2d(10, 3), 2, &init, 1);
    pst_output ids = pst_const_i64_vec(g, 3, (int64_t[]){1, 8, 1}, "ids");
    pst_output look = pst_embedding_lookup(g, pv, ids, "lookup");
    pst_output loss = pst_reduce_sum(g, pst_square(g, look, NULL), 0, NULL, 0, "loss");
    pst_optimizer_opts oo = pst_optimizer_defaults(PST_OPT_MOMENTUM, 0.1f);
    oo.momentum = 0.9f;
    pst_node *train = pst_optimizer_minimize(g, &oo, loss, 0, NULL, pst_out(NULL, 0), "train");
    pst_node *ini = pst_global_variables_initializer(g);
    pst_graph_set_device_fn(g, NULL, NULL);
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    if (dist) {
        pst_dist_run *r = pst_dist_run_new(wk, g, 0, NULL, 1, &ini, &st);
        ck_assert_msg(r && pst_dist_run_step(r, NULL, 0, NULL, &st) == 0, "%s", st.msg);
        pst_dist_run *t = pst_dist_run_new(wk, g, 0, NULL, 1, &train, &st);
        for (int i = 0; i < 3; i++) ck_assert_msg(pst_dist_run_step(t, NULL, 0, NULL, &st) == 0, "%s", st.msg);
        *part0_out = pst_task_pull_variable(wk, "/job:ps/task:0", "emb/part_0", &st);
        pst_dist_run_free(t);
        pst_dist_run_free(r);
        pst_task_free(wk);
        pst_task_free(ps1);
        pst_task_free(ps0);
    } else {
        pst_session *s = pst_session_new(g, NULL, &st);
        ck_assert_int_eq(pst_session_run_target(s, ini, &st), 0);
        for (int i = 0; i < 3; i++) ck_assert_int_eq(pst_session_run_target(s, train, &st), 0);
        *part0_out = pst_session_run1(s, pst_variable_value(pv->parts[0]), &st);
        pst_session_free(s);
    }
    ck_assert_msg(*part0_out != NULL, "%s", st.msg);
    pst_cluster_free(c);
    pst_partitioned_var_free(pv);
    pst_replica_setter_free(rs);
    pst_graph_free(g);
}
START_TEST(test_inproc_embedding_dense_fallback) {
    pst_tensor *a, *b;
    embedding_momentum(1, &a);
    embedding_momentum(0, &b);
    assert_close(a, b, 1e-6);
    /* row 1 moved, row 0 did not */
    pst_tensor *fresh;
    pst_graph *g = pst_graph_new();
    pst_initializer init = pst_init_random_uniform(-1, 1, 7);
    pst_partitioned_var *pv = pst_partitioned_var_new(g, "emb", PST_FLOAT, pst_shape_2d(10, 3), 2, &init, 1);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_session_run_target(s, pst_global_variables_initializer(g), &st);
    fresh = pst_session_run1(s, pst_variable_value(pv->parts[0]), &st);
    ck_assert_float_eq(pst_tensor_f32(fresh)[0], pst_tensor_f32(a)[0]);
    ck_assert_float_ne(pst_tensor_f32(fresh)[3], pst_tensor_f32(a)[3]);
    pst_tensor_unref(fresh);
    pst_session_free(s);
    pst_partitioned_var_free(pv);
    pst_graph_free(g);
    pst_tensor_unref(a);
    pst_tensor_unref(b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("task");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_inproc_dist_matches_local);
    tcase_add_test(tc, test_grpc_dist_matches_local);
    tcase_add_test(tc, test_inproc_push_pull);
    tcase_add_test(tc, test_grpc_push_pull);
    tcase_add_test(tc, test_grpc_unreachable_ps_named);
    tcase_add_test(tc, test_grpc_ps_dies);
    tcase_add_test(tc, test_inproc_shutdown_after_workers);
    tcase_add_test(tc, test_inproc_sliced_save_restore_other_ps_count);
    tcase_add_test(tc, test_inproc_embedding_sparse);
    tcase_add_test(tc, test_inproc_embedding_dense_fallback);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
