/* Distributed checkpoints: every PS writes its shard (slices of partitioned variables too),
 * the chief merges one index and writes the .meta and the state file; the result restores onto
 * another number of PS; a PS that cannot save is named. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "dist_run.h"
#include "dist_save.h"
#include "init.h"
#include "partitioned_var.h"
#include "ps_vars.h"
#include "replica_setter.h"
#include "saver.h"
#include "task_client.h"
#include "testdist.h"
#include "testutil.h"

/* A variable partitioned over 3 PS: each PS saves its slices to its own shard, the shards are
 * merged into one checkpoint holding the whole variable, and restoring onto 1 PS (unpartitioned)
 * gives the same values. */
START_TEST(test_inproc_sliced_save_restore_other_ps_count) {
    char dir[] = "/tmp/pst_task_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    pst_test_job j;
    pst_test_job_start(&j, 3, 1, "inproc", NULL);
    pst_task *wk = j.w[0];
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
        pst_tensor *p = pst_task_client_pull_variable(wk, dev, name, &st);
        ck_assert_msg(p != NULL, "%s", st.msg);
        pst_tensor_unref(p);
    }
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s/model.ckpt-1", dir);
    pst_ps_vars map;
    ck_assert_msg(pst_ps_vars_collect(g, 3, &map, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(pst_ps_vars_num_holding(&map), 3);
    ck_assert_msg(pst_dist_save_shards(wk, &map, prefix, &st) == 0, "%s", st.msg);
    pst_ps_vars_destroy(&map);
    /* the checkpoint holds one full [10,4] tensor, the concatenation */
    pst_bundle_reader *br = pst_bundle_reader_open(prefix, &st);
    ck_assert_msg(br != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_bundle_reader_num_shards(br), 3);
    pst_tensor *whole = pst_bundle_reader_read(br, "emb", &st);
    ck_assert_msg(whole != NULL, "%s", st.msg);
    pst_test_assert_close(whole, orig[0], 0);
    pst_tensor_unref(whole);
    pst_bundle_reader_free(br);
    pst_dist_run_free(read);
    pst_dist_run_free(r);
    pst_test_job_stop(&j);
    pst_partitioned_var_free(pv);
    pst_replica_setter_free(rs);
    pst_graph_free(g);

    /* Restore onto 1 PS with a whole variable, and onto 2 PS with 2 parts. */
    for (int n_ps = 1; n_ps <= 2; n_ps++) {
        pst_test_job j2;
        pst_test_job_start(&j2, n_ps, 1, "inproc", NULL);
        pst_task *w2 = j2.w[0];
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
            ck_assert_msg(pst_task_client_restore(w2, dev, prefix, &n, &st) == 0, "%s", st.msg);
            total += n;
        }
        ck_assert_int_eq(total, n_ps == 1 ? 1 : 2);
        pst_tensor *got[1];
        ck_assert_msg(pst_dist_run_step(rd, NULL, 0, got, &st) == 0, "%s", st.msg);
        pst_test_assert_close(got[0], orig[0], 0);
        pst_tensor_unref(got[0]);
        pst_dist_run_free(rd);
        pst_test_job_stop(&j2);
        pst_partitioned_var_free(pv2);
        pst_replica_setter_free(rs2);
        pst_graph_free(g2);
    }
    pst_tensor_unref(orig[0]);
}
END_TEST

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* A full checkpoint from 2 PS: one index over 2 data shards, the .meta, the state file naming
 * it; max_to_keep drops the older one. */
START_TEST(test_grpc_save_write_checkpoint) {
    char dir[] = "/tmp/pst_dist_save_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    pst_test_job j;
    pst_test_job_start(&j, 2, 1, "grpc", NULL);
    pst_test_model m = pst_test_linear_model(2, "/job:worker/task:0");
    pst_status st = {0};
    pst_dist_run *init = pst_dist_run_new(j.w[0], m.g, 0, NULL, 1, &m.init, &st);
    ck_assert_msg(init && pst_dist_run_step(init, NULL, 0, NULL, &st) == 0, "%s", st.msg);
    pst_ps_vars map;
    ck_assert_msg(pst_ps_vars_collect(m.g, 2, &map, &st) == 0, "%s", st.msg);
    pst_dist_save_opts o = {.dir = dir, .max_to_keep = 1};
    pst_dist_save *ds = pst_dist_save_new(j.w[0], m.g, &map, &o, &st);
    ck_assert_msg(ds != NULL, "%s", st.msg);
    char prefix[4096], path[4200];
    ck_assert_msg(pst_dist_save_write(ds, 7, prefix, sizeof prefix, &st) == 0, "%s", st.msg);
    snprintf(path, sizeof path, "%s/model.ckpt-7", dir);
    ck_assert_str_eq(prefix, path);
    snprintf(path, sizeof path, "%s.meta", prefix);
    ck_assert(exists(path));
    pst_bundle_reader *br = pst_bundle_reader_open(prefix, &st);
    ck_assert_msg(br != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_bundle_reader_num_shards(br), 2);
    pst_tensor *w = pst_bundle_reader_read(br, "w", &st);
    ck_assert_msg(w != NULL, "%s", st.msg);
    pst_tensor *pw = pst_task_client_pull_variable(j.w[0], "/job:ps/task:0", "w", &st);
    pst_test_assert_close(w, pw, 0);
    pst_tensor_unref(w);
    pst_tensor_unref(pw);
    pst_bundle_reader_free(br);
    char latest[4096], warn[256];
    ck_assert_int_eq(pst_latest_checkpoint(dir, 0, latest, sizeof latest, warn, sizeof warn, &st), 0);
    ck_assert_str_eq(latest, prefix);
    /* the next save replaces it (max_to_keep 1) */
    ck_assert_msg(pst_dist_save_write(ds, 8, NULL, 0, &st) == 0, "%s", st.msg);
    snprintf(path, sizeof path, "%s/model.ckpt-7.index", dir);
    ck_assert(!exists(path));
    snprintf(path, sizeof path, "%s/model.ckpt-8.index", dir);
    ck_assert(exists(path));
    /* a PS that is gone: the save fails naming it */
    pst_task_free(j.ps[1]);
    j.ps[1] = NULL;
    ck_assert_int_lt(pst_dist_save_write(ds, 9, NULL, 0, &st), 0);
    ck_assert_msg(strstr(st.msg, "saving on /job:ps/task:1") != NULL, "%s", st.msg);
    pst_dist_save_free(ds);
    pst_ps_vars_destroy(&map);
    pst_dist_run_free(init);
    pst_test_job_stop(&j);
    pst_graph_free(m.g);
}
END_TEST

/* Variables not on a PS of the cluster are named. */
START_TEST(test_ps_vars_rejects_variable_off_the_ps) {
    pst_test_model m = pst_test_linear_model(2, "/job:worker/task:0");
    pst_status st = {0};
    pst_ps_vars map;
    ck_assert_int_eq(pst_ps_vars_collect(m.g, 1, &map, &st), PST_E_INVALID); /* b is on task 1 */
    ck_assert_msg(strstr(st.msg, "variable 'b'") != NULL, "%s", st.msg);
    ck_assert_ptr_null(map.count);
    pst_graph_free(m.g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("dist_save");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_inproc_sliced_save_restore_other_ps_count);
    tcase_add_test(tc, test_grpc_save_write_checkpoint);
    tcase_add_test(tc, test_ps_vars_rejects_variable_off_the_ps);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
