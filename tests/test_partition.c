/* Partitioning a placed graph into per-task subgraphs joined by Send/Recv, and running the
 * partitions of one step in separate sessions (separate variable stores), as tasks would. */
#include <pthread.h>
#include <string.h>

#include "partition.h"
#include "rendezvous.h"
#include "testutil.h"
#include "device.h"

typedef struct task_run {
    pst_session *s;
    pst_partition *p;
    int64_t step;
    pst_tensor *out[4];
    pst_status st;
    int rc;
} task_run;

static void *run_task(void *arg) {
    task_run *t = arg;
    t->rc = pst_session_run_step(t->s, t->step, NULL, 0, t->p->fetches, t->p->n_fetches,
                                 t->p->targets, t->p->n_targets, t->out, &t->st);
    return NULL;
}

/* Runs every partition of ps concurrently, one session per task; returns the client's out. */
static void run_step(pst_partition_set *ps, pst_session **sessions, int64_t step,
                     pst_tensor **client_out) {
    task_run runs[8];
    pthread_t th[8];
    ck_assert_int_le(ps->n, 8);
    for (int i = 0; i < ps->n; i++) {
        memset(&runs[i], 0, sizeof runs[i]);
        runs[i].s = sessions[i];
        runs[i].p = &ps->parts[i];
        runs[i].step = step;
        pthread_create(&th[i], NULL, run_task, &runs[i]);
    }
    for (int i = 0; i < ps->n; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < ps->n; i++)
        ck_assert_msg(runs[i].rc == 0, "task %s: %s", ps->parts[i].task, runs[i].st.msg);
    for (int i = 0; i < ps->parts[ps->client].n_fetches; i++)
        client_out[i] = runs[ps->client].out[i];
}

START_TEST(test_ps_worker_step) {
    pst_graph *g = pst_graph_new();
    pst_graph_push_device(g, "/job:ps/task:0");
    pst_output v = pst_variable(g, "v", pst_const_f32(g, 1, NULL), 1);
    pst_graph_pop_device(g);
    pst_graph_push_device(g, "/job:worker/task:0");
    pst_output c = pst_const_f32(g, 2, "c");
    pst_output terms[2] = {pst_variable_value(v), c};
    pst_output z = pst_add_n(g, 2, terms, "z"); /* on the worker: v + 2 */
    pst_graph_pop_device(g);
    pst_output upd = pst_assign_add(g, v, z, "update"); /* colocated with v? set explicitly */
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    ck_assert_int_eq(pst_node_set_device(upd.node, "/job:ps/task:0", NULL), 0);
    pst_node *init = pst_global_variables_initializer(g);
    pst_node_set_device(init, "/job:ps/task:0", NULL);

    pst_status st = {0};
    pst_partition_set ps;
    ck_assert_msg(pst_partition_graph(g, "/job:worker/task:0", 1, &z, 1, &upd.node, &ps, &st) == 0,
                  "%s", st.msg);
    ck_assert_int_eq(ps.n, 2);
    ck_assert_str_eq(ps.parts[ps.client].task, "/job:worker/replica:0/task:0");
    pst_partition *pp = pst_partition_find(&ps, "/job:ps/replica:0/task:0");
    ck_assert_ptr_nonnull(pp);
    /* The PS holds the variable and the update; the worker only receives v's value. */
    ck_assert_ptr_nonnull(pst_graph_find(pp->graph, "v"));
    ck_assert_ptr_nonnull(pst_graph_find(pp->graph, "update"));
    ck_assert_ptr_null(pst_graph_find(ps.parts[ps.client].graph, "v"));
    ck_assert_ptr_nonnull(pst_graph_find(ps.parts[ps.client].graph, "z"));

    pst_rendezvous *r = pst_rendezvous_local_new();
    pst_var_store *ps_vars = pst_var_store_new();
    pst_session *sessions[2];
    for (int i = 0; i < 2; i++) {
        pst_session_opts so = {.vars = i == ps.client ? NULL : ps_vars, .exec = r};
        sessions[i] = pst_session_new(ps.parts[i].graph, &so, &st);
    }
    /* Initialize on the PS with its own session over the PS's store. */
    pst_session *init_s = pst_session_new(g, &(pst_session_opts){.vars = ps_vars}, &st);
    ck_assert_int_eq(pst_session_run_target(init_s, init, &st), 0);
    pst_tensor *out[1];
    run_step(&ps, sessions, 1, out);
    ck_assert_float_eq(pst_tensor_f32(out[0])[0], 3.0f); /* z = 1 + 2 */
    pst_tensor_unref(out[0]);
    run_step(&ps, sessions, 2, out);
    ck_assert_float_eq(pst_tensor_f32(out[0])[0], 6.0f); /* v = 4 after step 1 */
    pst_tensor_unref(out[0]);
    ck_assert_int_eq(pst_rendezvous_local_pending(r), 0);
    pst_var *pv = pst_var_store_find(ps_vars, "v");
    pst_tensor *val = pst_var_read(pv);
    ck_assert_float_eq(pst_tensor_f32(val)[0], 10.0f);
    pst_tensor_unref(val);
    for (int i = 0; i < 2; i++) pst_session_free(sessions[i]);
    pst_session_free(init_s);
    pst_var_store_free(ps_vars);
    pst_rendezvous_free(r);
    pst_partition_set_destroy(&ps);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_control_edge_across_tasks) {
    pst_graph *g = pst_graph_new();
    pst_graph_push_device(g, "/job:ps/task:1");
    pst_output v = pst_variable(g, "counter", pst_const_f32(g, 0, NULL), 0);
    pst_output inc = pst_assign_add(g, v, pst_const_f32(g, 1, NULL), "inc");
    pst_graph_pop_device(g);
    pst_graph_push_device(g, "/job:worker/task:0");
    pst_node *deps[1] = {inc.node};
    pst_node *done = pst_group(g, 1, deps, "done");
    pst_graph_pop_device(g);
    pst_status st = {0};
    pst_partition_set ps;
    ck_assert_int_eq(pst_partition_graph(g, "/job:worker/task:0", 0, NULL, 1, &done, &ps, &st), 0);
    ck_assert_int_eq(ps.n, 2);
    pst_rendezvous *r = pst_rendezvous_local_new();
    pst_var_store *vars = pst_var_store_new();
    pst_session *sessions[2];
    for (int i = 0; i < 2; i++)
        sessions[i] = pst_session_new(ps.parts[i].graph, &(pst_session_opts){.vars = vars, .exec = r}, &st);
    pst_session *init_s = pst_session_new(g, &(pst_session_opts){.vars = vars}, &st);
    pst_session_run_target(init_s, pst_global_variables_initializer(g), &st);
    pst_tensor *none[1];
    run_step(&ps, sessions, 7, none);
    run_step(&ps, sessions, 8, none);
    pst_tensor *val = pst_var_read(pst_var_store_find(vars, "counter"));
    ck_assert_float_eq(pst_tensor_f32(val)[0], 2.0f);
    pst_tensor_unref(val);
    for (int i = 0; i < 2; i++) pst_session_free(sessions[i]);
    pst_session_free(init_s);
    pst_var_store_free(vars);
    pst_rendezvous_free(r);
    pst_partition_set_destroy(&ps);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_recv_timeout_names_tensor) {
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "_Recv", "r");
    pst_nb_attr_type(b, "tensor_type", PST_FLOAT);
    pst_nb_attr_s(b, "tensor_name", "w/read:0");
    pst_nb_attr_s(b, "send_device", "/job:ps/replica:0/task:3/device:CPU:0");
    pst_nb_attr_s(b, "recv_device", "/job:worker/replica:0/task:0/device:CPU:0");
    pst_nb_attr_i(b, "_timeout_ms", 50);
    pst_output r = pst_nb_finish_out(b);
    ck_assert_ptr_nonnull(r.node);
    pst_rendezvous *rdv = pst_rendezvous_local_new();
    pst_status st = {0};
    pst_session *s = pst_session_new(g, &(pst_session_opts){.exec = rdv}, &st);
    ck_assert_ptr_null(pst_session_run1(s, r, &st));
    ck_assert_int_eq(st.code, PST_E_DEADLINE);
    ck_assert_ptr_nonnull(strstr(st.msg, "w/read:0"));
    ck_assert_ptr_nonnull(strstr(st.msg, "/job:ps/replica:0/task:3"));
    pst_session_free(s);
    pst_rendezvous_free(rdv);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_device_task) {
    char buf[128];
    pst_status st = {0};
    ck_assert_int_eq(pst_device_task("/job:ps/task:2/device:CPU:0", "/job:worker/task:0", buf,
                                     sizeof buf, &st),
                     0);
    ck_assert_str_eq(buf, "/job:ps/replica:0/task:2");
    ck_assert_int_eq(pst_device_task("", "/job:worker/task:1", buf, sizeof buf, &st), 0);
    ck_assert_str_eq(buf, "/job:worker/replica:0/task:1");
}
END_TEST

int main(void) {
    Suite *s = suite_create("partition");
    TCase *tc = tcase_create("partition");
    tcase_add_test(tc, test_ps_worker_step);
    tcase_add_test(tc, test_control_edge_across_tasks);
    tcase_add_test(tc, test_recv_timeout_names_tensor);
    tcase_add_test(tc, test_device_task);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
