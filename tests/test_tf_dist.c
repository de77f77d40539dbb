/* A TensorFlow user's graph trained distributed: the 07_DaviesX_mnist MLP (tests/data/
 * tf_graphs) imported under the replica device setter for 2 PS (its variables, and the ops TF
 * colocates with them, on /job:ps/task:0 and 1), initialized and trained over gRPC by a worker
 * through partitioned steps; the loss falls and the PS hold the variables. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist_run.h"
#include "fashion_mnist.h"
#include "gradients.h"
#include "metagraph.h"
#include "imported.h"
#include "op.h"
#include "ops.h"
#include "replica_setter.h"
#include "testdist.h"
#include "testutil.h"
#include "varstore.h"

/* path imported for 2 PS and worker 0 under the replica device setter (*rs: the caller frees). */
static pst_imported *load_for_two_ps(const char *path, pst_replica_setter **rs) {
    pst_status st = {0};
    *rs = pst_replica_setter_new(2, "/job:worker/task:0", PST_PLACE_ROUND_ROBIN, &st);
    pst_imported_opts o = {.device_fn = pst_replica_setter_fn, .device_ctx = *rs,
                           .clear_devices = 1, .no_session = 1};
    pst_imported *m = pst_imported_load_ex(path, &o, &st);
    ck_assert_msg(m != NULL, "%s", st.msg);
    return m;
}

START_TEST(test_imported_graph_on_two_ps) {
    pst_test_job j;
    pst_status st = {0};
    pst_test_job_start(&j, 2, 1, "grpc", NULL);
    char path[4096];
    const char *src = getenv("PST_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/data/tf_graphs/07_DaviesX_mnist/model.ckpt.meta", src ? src : ".");
    pst_replica_setter *rs;
    pst_imported *m = load_for_two_ps(path, &rs);
    pst_graph *g = pst_imported_graph(m);
    ck_assert_ptr_nonnull(strstr(pst_graph_find(g, "h1/w")->device, "/job:ps/task:0"));
    ck_assert_ptr_nonnull(strstr(pst_graph_find(g, "h1/b")->device, "/job:ps/task:1"));
    /* Colocated with its variable, as TF places it. */
    ck_assert_str_eq(pst_graph_find(g, "h1/w/Assign")->device, pst_graph_find(g, "h1/w")->device);
    ck_assert_ptr_nonnull(strstr(pst_graph_find(g, "h1/MatMul")->device, "/job:worker/task:0"));

    pst_node **init;
    int n_init;
    ck_assert_int_eq(pst_imported_initializers(m, &init, &n_init, &st), 0);
    pst_dist_run *ir = pst_dist_run_new(j.w[0], g, 0, NULL, n_init, init, &st);
    ck_assert_msg(ir != NULL, "%s", st.msg);
    ck_assert_msg(pst_dist_run_step(ir, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pst_dist_run_free(ir);
    free(init);

    pst_node *train = pst_imported_train_op(m, NULL, &st);
    ck_assert_msg(train != NULL, "%s", st.msg);
    pst_output loss = pst_imported_loss(m, train);
    pst_dist_run *tr = pst_dist_run_new(j.w[0], g, 1, &loss, 1, &train, &st);
    ck_assert_msg(tr != NULL, "%s", st.msg);
    pst_tensor *images, *labels;
    ck_assert_msg(pst_fashion_mnist_load(NULL, "train", &images, &labels, &st) == 0, "%s", st.msg);
    enum { B = 100, STEPS = 1500, WIN = 100 };
    pst_tensor *xb = pst_tensor_new(PST_FLOAT, pst_shape_2d(B, 784), &st);
    pst_tensor *yb = pst_tensor_new(PST_INT64, pst_shape_1d(B), &st);
    pst_output x = pst_graph_output_by_name(g, "input/x"), y = pst_graph_output_by_name(g, "output/output");
    double first = 0, last = 0;
    for (int s = 0; s < STEPS; s++) {
        int64_t at = ((int64_t)s * B) % (labels->n - B);
        memcpy(xb->data, pst_tensor_f32(images) + at * 784, (size_t)B * 784 * sizeof(float));
        memcpy(yb->data, pst_tensor_i64(labels) + at, (size_t)B * sizeof(int64_t));
        pst_feed f[2] = {{x, xb}, {y, yb}};
        pst_tensor *out[1];
        ck_assert_msg(pst_dist_run_step(tr, f, 2, out, &st) == 0, "step %d: %s", s, st.msg);
        double l = pst_tensor_get_f64(out[0], 0);
        pst_tensor_unref(out[0]);
        if (s < WIN) first += l / WIN;
        if (s >= STEPS - WIN) last += l / WIN;
    }
    ck_assert_msg(last < first - 0.03, "loss did not fall: %g -> %g", first, last);
    /* The variables live on the PS. */
    ck_assert_ptr_nonnull(pst_var_store_find(pst_task_vars(j.ps[0]), "h1/w"));
    ck_assert_ptr_nonnull(pst_var_store_find(pst_task_vars(j.ps[1]), "h1/b"));
    pst_dist_run_free(tr);
    pst_tensor_unref(xb);
    pst_tensor_unref(yb);
    pst_tensor_unref(images);
    pst_tensor_unref(labels);
    pst_imported_free(m);
    pst_replica_setter_free(rs);
    pst_test_job_stop(&j);
}
END_TEST

/* A graph of resource variables (as TF 1.13+ writes them: VarHandleOp, NAME/Assign as
 * AssignVariableOp, ReadVariableOp, ResourceApplyGradientDescent), written to a .meta and
 * imported under the replica device setter for 2 PS: the handles go to the PS with their
 * initializers and apply ops, the reads and the model to the worker; a linear regression
 * trained over gRPC finds its weights on the PS. */
static pst_output res_var(pst_graph *g, const char *name, pst_shape s, const float *init) {
    pst_node_builder *b = pst_nb_new(g, "VarHandleOp", name);
    pst_nb_attr_type(b, "dtype", PST_FLOAT);
    pst_nb_attr_shape(b, "shape", s);
    pst_nb_attr_s(b, "shared_name", name);
    pst_output h = pst_nb_finish_out(b);
    char an[256];
    snprintf(an, sizeof an, "%s/Assign", name);
    b = pst_nb_new(g, "AssignVariableOp", an);
    pst_nb_input(b, h);
    pst_nb_input(b, pst_const_f32_tensor(g, s, init, NULL));
    pst_nb_attr_type(b, "dtype", PST_FLOAT);
    ck_assert_ptr_nonnull(pst_nb_finish(b));
    return h;
}

static pst_output res_read(pst_graph *g, pst_output h) {
    pst_node_builder *b = pst_nb_new(g, "ReadVariableOp", NULL);
    pst_nb_input(b, h);
    pst_nb_attr_type(b, "dtype", PST_FLOAT);
    return pst_nb_finish_out(b);
}

START_TEST(test_resource_variables_on_two_ps) {
    char dir[] = "/tmp/pst_tfres_XXXXXX", path[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/res.meta", dir);
    pst_status st = {0};
    {
        pst_graph *g = pst_graph_new();
        pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_2d(4, 2));
        pst_output y = pst_placeholder(g, "y", PST_FLOAT, pst_shape_2d(4, 1));
        pst_output w = res_var(g, "w", pst_shape_2d(2, 1), (const float[]){0, 0});
        pst_output b = res_var(g, "b", pst_shape_1d(1), (const float[]){0});
        pst_output pred = pst_add(g, pst_matmul(g, x, res_read(g, w), 0, 0, NULL), res_read(g, b), NULL);
        pst_output loss = pst_identity(g, pst_reduce_mean(g, pst_square(g, pst_sub(g, pred, y, NULL), NULL), 0, NULL, 0, NULL), "loss");
        pst_output hs[2] = {w, b}, d[2];
        ck_assert_msg(pst_gradients(g, 1, &loss, NULL, 2, hs, d, NULL, &st) == 0, "%s", st.msg);
        for (int i = 0; i < 2; i++) {
            pst_node_builder *nb = pst_nb_new(g, "ResourceApplyGradientDescent", i ? "apply_b" : "apply_w");
            pst_nb_input(nb, hs[i]);
            pst_nb_input(nb, pst_const_scalar(g, PST_FLOAT, 0.1, NULL));
            pst_nb_input(nb, d[i]);
            pst_nb_attr_type(nb, "T", PST_FLOAT);
            ck_assert_ptr_nonnull(pst_nb_finish(nb));
        }
        ck_assert_msg(pst_meta_graph_write(g, &(pst_meta_export_opts){0}, path, &st) == 0, "%s", st.msg);
        pst_graph_free(g);
    }
    pst_test_job j;
    pst_test_job_start(&j, 2, 1, "grpc", NULL);
    pst_replica_setter *rs;
    pst_imported *m = load_for_two_ps(path, &rs);
    pst_graph *g = pst_imported_graph(m);
    ck_assert_ptr_nonnull(strstr(pst_graph_find(g, "w")->device, "/job:ps/task:0"));
    ck_assert_ptr_nonnull(strstr(pst_graph_find(g, "b")->device, "/job:ps/task:1"));
    ck_assert_str_eq(pst_graph_find(g, "w/Assign")->device, pst_graph_find(g, "w")->device);
    ck_assert_str_eq(pst_graph_find(g, "apply_b")->device, pst_graph_find(g, "b")->device);
    ck_assert_ptr_nonnull(strstr(pst_graph_find(g, "loss")->device, "/job:worker/task:0"));

    pst_node **init;
    int n_init;
    ck_assert_int_eq(pst_imported_initializers(m, &init, &n_init, &st), 0);
    ck_assert_int_eq(n_init, 2);
    pst_dist_run *ir = pst_dist_run_new(j.w[0], g, 0, NULL, n_init, init, &st);
    ck_assert_msg(ir != NULL, "%s", st.msg);
    ck_assert_msg(pst_dist_run_step(ir, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pst_dist_run_free(ir);
    free(init);
    pst_node *train[2] = {pst_graph_find(g, "apply_w"), pst_graph_find(g, "apply_b")};
    pst_output loss = pst_graph_output_by_name(g, "loss");
    pst_dist_run *tr = pst_dist_run_new(j.w[0], g, 1, &loss, 2, train, &st);
    ck_assert_msg(tr != NULL, "%s", st.msg);
    /* y = 2 x0 - x1 + 0.5 */
    float xv[8] = {0, 0, 1, 0, 0, 1, 1, 1}, yv[4] = {0.5f, 2.5f, -0.5f, 1.5f};
    pst_tensor *xt = pst_tensor_from_f32(pst_shape_2d(4, 2), xv), *yt = pst_tensor_from_f32(pst_shape_2d(4, 1), yv);
    pst_feed f[2] = {{pst_graph_output_by_name(g, "x"), xt}, {pst_graph_output_by_name(g, "y"), yt}};
    double first = 0, last = 0;
    for (int s = 0; s < 400; s++) {
        pst_tensor *out[1];
        ck_assert_msg(pst_dist_run_step(tr, f, 2, out, &st) == 0, "step %d: %s", s, st.msg);
        last = pst_tensor_get_f64(out[0], 0);
        if (s == 0) first = last;
        pst_tensor_unref(out[0]);
    }
    ck_assert_msg(last < 1e-3 * first, "loss did not fall: %g -> %g", first, last);
    pst_tensor *wv = pst_var_read(pst_var_store_find(pst_task_vars(j.ps[0]), "w"));
    ck_assert_ptr_nonnull(wv);
    ck_assert_msg(fabs(pst_tensor_f32(wv)[0] - 2) < 0.05 && fabs(pst_tensor_f32(wv)[1] + 1) < 0.05,
                  "w = %g %g", pst_tensor_f32(wv)[0], pst_tensor_f32(wv)[1]);
    ck_assert_ptr_nonnull(pst_var_store_find(pst_task_vars(j.ps[1]), "b"));
    pst_tensor_unref(wv);
    pst_dist_run_free(tr);
    pst_tensor_unref(xt);
    pst_tensor_unref(yt);
    pst_imported_free(m);
    pst_replica_setter_free(rs);
    pst_test_job_stop(&j);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void) {
    pst_ops_init();
    Suite *s = suite_create("tf_dist");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_imported_graph_on_two_ps);
    tcase_add_test(tc, test_resource_variables_on_two_ps);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
