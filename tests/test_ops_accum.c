/* TF 1.x's gradient accumulators (ops_accum.c) as SyncReplicasOptimizer uses them: the
 * sync-replicas pattern built by hand (an accumulator for the variable, a token queue, two
 * replicas applying gradients from their own threads, the chief taking the average and
 * handing out the next step's tokens), the stale-gradient drop, SUM, the sparse accumulator's
 * per-row average, and the errors (shapes, dtypes, num_required, a timeout, cancellation). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "op.h"
#include "ops.h"
#include "ops_accum.h"
#include "testutil.h"

static pst_output accum(pst_graph *g, const char *op, const char *name, pst_shape shape,
                        const char *reduction) {
    pst_node_builder *b = pst_nb_new(g, op, name);
    pst_nb_attr_type(b, "dtype", PST_FLOAT);
    pst_nb_attr_shape(b, "shape", shape);
    pst_nb_attr_s(b, "shared_name", "");
    if (reduction) pst_nb_attr_s(b, "reduction_type", reduction);
    pst_output o = pst_nb_finish_out(b);
    ck_assert_msg(o.node != NULL, "%s", pst_graph_status(g)->msg);
    return o;
}

static pst_node *op_node(pst_graph *g, const char *op, int n, const pst_output *in,
                         int with_dtype) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_inputs(b, n, in);
    if (with_dtype) pst_nb_attr_type(b, "dtype", PST_FLOAT);
    pst_node *x = pst_nb_finish(b);
    ck_assert_msg(x != NULL, "%s: %s", op, pst_graph_status(g)->msg);
    return x;
}

static pst_output out0(pst_node *n) { return (pst_output){n, 0}; }

/* The sync-replicas graph of one variable w = [1, 2]. */
typedef struct sync_graph {
    pst_graph *g;
    pst_session *s;
    pst_output w, grad, tokens, num, gs;
    pst_node *init, *apply, *train, *enqueue, *set_gs;
} sync_graph;

static void sync_graph_init(sync_graph *sg) {
    pst_graph *g = sg->g = pst_graph_new();
    sg->w = pst_variable(g, "w", pst_const_f32_tensor(g, pst_shape_1d(2), (float[]){1, 2}, NULL),
                         1);
    sg->init = pst_global_variables_initializer(g);
    pst_output acc = accum(g, "ConditionalAccumulator", "w_accum", pst_shape_1d(2), NULL);
    pst_node_builder *b = pst_nb_new(g, "FIFOQueueV2", "sync_token_q");
    pst_nb_attr_list_type(b, "component_types", 1, (pst_dtype[]){PST_INT64});
    pst_nb_attr_list_shape(b, "shapes", 1, (pst_shape[]){pst_shape_scalar()});
    pst_nb_attr_i(b, "capacity", -1);
    pst_output q = pst_nb_finish_out(b);
    /* A replica: its local step is the token it dequeues; it applies its gradient. */
    b = pst_nb_new(g, "QueueDequeueV2", "token");
    pst_nb_input(b, q);
    pst_nb_attr_list_type(b, "component_types", 1, (pst_dtype[]){PST_INT64});
    pst_output token = pst_nb_finish_out(b);
    sg->grad = pst_placeholder(g, "grad", PST_FLOAT, pst_shape_1d(-1));
    sg->apply = op_node(g, "AccumulatorApplyGradient", 3,
                        (pst_output[]){acc, token, sg->grad}, 1);
    /* The chief: takes the average of 2 and applies it. */
    pst_node *take = op_node(g, "AccumulatorTakeGradient", 2,
                             (pst_output[]){acc, pst_const_i32(g, 2, NULL)}, 1);
    b = pst_nb_new(g, "ApplyGradientDescent", "train");
    pst_nb_inputs(b, 3, (pst_output[]){sg->w, pst_const_f32(g, 0.5f, NULL), out0(take)});
    pst_nb_attr_type(b, "T", PST_FLOAT);
    sg->train = pst_nb_finish(b);
    ck_assert_msg(sg->train != NULL, "%s", pst_graph_status(g)->msg);
    sg->tokens = pst_placeholder(g, "tokens", PST_INT64, pst_shape_1d(-1));
    sg->enqueue = op_node(g, "QueueEnqueueManyV2", 2, (pst_output[]){q, sg->tokens}, 0);
    sg->gs = pst_placeholder(g, "gs", PST_INT64, pst_shape_scalar());
    sg->set_gs = op_node(g, "AccumulatorSetGlobalStep", 2, (pst_output[]){acc, sg->gs}, 0);
    sg->num = out0(op_node(g, "AccumulatorNumAccumulated", 1, &acc, 0));
    pst_status st = {0};
    sg->s = pst_session_new(g, NULL, &st);
    ck_assert_msg(sg->s != NULL, "%s", st.msg);
    ck_assert_msg(pst_session_run(sg->s, NULL, 0, NULL, 0, &sg->init, 1, NULL, &st) == 0, "%s",
                  st.msg);
}

static void sync_graph_destroy(sync_graph *sg) {
    pst_session_free(sg->s);
    pst_graph_free(sg->g);
}

static int run_fed(sync_graph *sg, pst_node *target, pst_output ph, pst_tensor *v,
                   pst_status *st) {
    pst_feed f = {ph, v};
    int rc = pst_session_run(sg->s, &f, 1, NULL, 0, &target, 1, NULL, st);
    pst_tensor_unref(v);
    return rc;
}

static void give_tokens(sync_graph *sg, int n, int64_t step) {
    int64_t t[4] = {step, step, step, step};
    pst_status st = {0};
    ck_assert_msg(run_fed(sg, sg->enqueue, sg->tokens, pst_tensor_from_i64(pst_shape_1d(n), t),
                          &st) == 0, "%s", st.msg);
}

static int num_accumulated(sync_graph *sg) {
    pst_tensor *t = pst_test_run(sg->s, sg->num, 0, NULL);
    int n = (int)pst_tensor_get_i64(t, 0);
    pst_tensor_unref(t);
    return n;
}

typedef struct replica {
    sync_graph *sg;
    float g[2];
    int rc;
    pst_status st;
    atomic_int done;
} replica;

static void *replica_run(void *p) {
    replica *r = p;
    r->rc = run_fed(r->sg, r->sg->apply, r->sg->grad,
                    pst_tensor_from_f32(pst_shape_1d(2), r->g), &r->st);
    atomic_store(&r->done, 1);
    return NULL;
}

typedef struct chief {
    pst_session *s;
    pst_node *train;
    int rc;
    pst_status st;
    atomic_int done;
} chief;

static void *chief_run(void *p) {
    chief *c = p;
    c->rc = pst_session_run(c->s, NULL, 0, NULL, 0, &c->train, 1, NULL, &c->st);
    atomic_store(&c->done, 1);
    return NULL;
}

static void assert_w(sync_graph *sg, float a, float b) {
    pst_tensor *t = pst_test_run(sg->s, sg->w, 0, NULL);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){2}), ((double[]){a, b}), 1e-6);
    pst_tensor_unref(t);
}

START_TEST(test_sync_replicas_pattern) {
    sync_graph sg;
    sync_graph_init(&sg);
    give_tokens(&sg, 2, 0);
    /* The chief waits for two gradients. */
    chief c = {.s = sg.s, .train = sg.train};
    pthread_t ct, rt[2];
    pthread_create(&ct, NULL, chief_run, &c);
    replica r[2] = {{.sg = &sg, .g = {1, 4}}, {.sg = &sg, .g = {3, 8}}};
    pthread_create(&rt[0], NULL, replica_run, &r[0]);
    pthread_join(rt[0], NULL);
    ck_assert_msg(r[0].rc == 0, "%s", r[0].st.msg);
    usleep(50000);
    ck_assert_int_eq(atomic_load(&c.done), 0); /* one of two: still waiting */
    ck_assert_int_eq(num_accumulated(&sg), 1);
    pthread_create(&rt[1], NULL, replica_run, &r[1]);
    pthread_join(rt[1], NULL);
    ck_assert_msg(r[1].rc == 0, "%s", r[1].st.msg);
    pthread_join(ct, NULL);
    ck_assert_msg(c.rc == 0, "%s", c.st.msg);
    /* w -= 0.5 * mean([1,4], [3,8]) = 0.5 * [2, 6] */
    assert_w(&sg, 0.0f, -1.0f);
    ck_assert_int_eq(num_accumulated(&sg), 0);

    /* The take advanced the accumulator's global step to 1: a late gradient of step 0 (a
     * backup replica's) is dropped, one of step 1 counts. */
    give_tokens(&sg, 1, 0);
    replica late = {.sg = &sg, .g = {100, 100}};
    replica_run(&late);
    ck_assert_msg(late.rc == 0, "%s", late.st.msg);
    ck_assert_int_eq(num_accumulated(&sg), 0);
    give_tokens(&sg, 2, 1);
    replica r2[2] = {{.sg = &sg, .g = {2, 2}}, {.sg = &sg, .g = {4, 0}}};
    replica_run(&r2[0]);
    replica_run(&r2[1]);
    ck_assert_int_eq(num_accumulated(&sg), 2);
    pst_status st = {0};
    ck_assert_msg(pst_session_run(sg.s, NULL, 0, NULL, 0, &sg.train, 1, NULL, &st) == 0, "%s",
                  st.msg);
    assert_w(&sg, -1.5f, -1.5f);

    /* SetGlobalStep: gradients older than the step set are stale (a smaller step is taken
     * too, as TF). */
    ck_assert_int_eq(run_fed(&sg, sg.set_gs, sg.gs, pst_tensor_scalar_i64(7), &st), 0);
    give_tokens(&sg, 1, 6);
    replica r3 = {.sg = &sg, .g = {1, 1}};
    replica_run(&r3);
    ck_assert_int_eq(num_accumulated(&sg), 0);
    ck_assert_int_eq(run_fed(&sg, sg.set_gs, sg.gs, pst_tensor_scalar_i64(3), &st), 0);
    give_tokens(&sg, 1, 6);
    replica_run(&r3);
    ck_assert_int_eq(num_accumulated(&sg), 1);

    /* A gradient of another shape is refused, naming the accumulator. */
    give_tokens(&sg, 1, 6);
    ck_assert_int_eq(run_fed(&sg, sg.apply, sg.grad,
                             pst_tensor_from_f32(pst_shape_1d(3), (float[]){1, 2, 3}), &st),
                     PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "w_accum") && strstr(st.msg, "shape mismatch"), "%s", st.msg);
    sync_graph_destroy(&sg);
}
END_TEST

START_TEST(test_sum_resource_form_and_errors) {
    pst_graph *g = pst_graph_new();
    pst_output acc = accum(g, "ResourceConditionalAccumulator", "acc", pst_shape_unknown(), "SUM");
    pst_output grad = pst_placeholder(g, "grad", PST_FLOAT, pst_shape_unknown());
    pst_output step = pst_placeholder(g, "step", PST_INT64, pst_shape_scalar());
    pst_output req = pst_placeholder(g, "req", PST_INT32, pst_shape_scalar());
    pst_node *apply = op_node(g, "ResourceAccumulatorApplyGradient", 3,
                              (pst_output[]){acc, step, grad}, 1);
    pst_node_builder *b = pst_nb_new(g, "ResourceAccumulatorTakeGradient", "take");
    pst_nb_inputs(b, 2, (pst_output[]){acc, req});
    pst_nb_attr_type(b, "dtype", PST_FLOAT);
    pst_nb_attr_i(b, "timeout_ms", 200);
    pst_output take = pst_nb_finish_out(b);
    ck_assert_ptr_nonnull(take.node);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_msg(s != NULL, "%s", st.msg);
    float g1[4] = {1, 2, 3, 4}, g2[4] = {10, 20, 30, 40};
    for (int i = 0; i < 2; i++) {
        pst_tensor *gv = pst_tensor_from_f32(pst_shape_2d(2, 2), i ? g2 : g1);
        pst_tensor *sv = pst_tensor_scalar_i64(0);
        pst_feed f[2] = {{grad, gv}, {step, sv}};
        ck_assert_msg(pst_session_run(s, f, 2, NULL, 0, &apply, 1, NULL, &st) == 0, "%s", st.msg);
        pst_tensor_unref(gv), pst_tensor_unref(sv);
    }
    /* SUM: no division. */
    pst_tensor *rq = pst_tensor_scalar_i32(2);
    pst_feed fr = {req, rq};
    pst_tensor *t = pst_test_run(s, take, 1, &fr);
    PST_ASSERT_TENSOR(t, 2, ((int64_t[]){2, 2}), ((double[]){11, 22, 33, 44}), 0);
    pst_tensor_unref(t);
    /* Nothing arrives: the take fails after its timeout_ms, naming the accumulator. */
    pst_tensor *out = NULL;
    ck_assert_int_eq(pst_session_run(s, &fr, 1, &take, 1, NULL, 0, &out, &st), PST_E_DEADLINE);
    ck_assert_msg(strstr(st.msg, "'acc' got 0 of the 2"), "%s", st.msg);
    pst_tensor_unref(rq);
    /* num_required must be positive. */
    rq = pst_tensor_scalar_i32(0);
    fr.value = rq;
    st = (pst_status){0};
    ck_assert_int_eq(pst_session_run(s, &fr, 1, &take, 1, NULL, 0, &out, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "num_required must be positive"), "%s", st.msg);
    pst_tensor_unref(rq);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

typedef struct taker {
    pst_session *s;
    pst_output take;
    int rc;
    pst_status st;
} taker;

static void *take_run(void *p) {
    taker *k = p;
    pst_tensor *out = NULL;
    k->rc = pst_session_run(k->s, NULL, 0, &k->take, 1, NULL, 0, &out, &k->st);
    pst_tensor_unref(out);
    return NULL;
}

START_TEST(test_cancel_wakes_a_waiting_take) {
    pst_graph *g = pst_graph_new();
    pst_output acc = accum(g, "ConditionalAccumulator", "acc", pst_shape_1d(1), NULL);
    pst_output take = out0(op_node(g, "AccumulatorTakeGradient", 2,
                                   (pst_output[]){acc, pst_const_i32(g, 1, NULL)}, 1));
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_msg(s != NULL, "%s", st.msg);
    taker k = {.s = s, .take = take};
    pthread_t t;
    pthread_create(&t, NULL, take_run, &k);
    usleep(50000);
    pst_status why = {0};
    pst_status_set(&why, PST_E_CANCELLED, "the session is closing");
    pst_accumulators_cancel(pst_session_vars(s), &why);
    pthread_join(t, NULL);
    ck_assert_int_eq(k.rc, PST_E_CANCELLED);
    ck_assert_msg(strstr(k.st.msg, "the session is closing"), "%s", k.st.msg);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_sparse_accumulator) {
    pst_graph *g = pst_graph_new();
    pst_output acc = accum(g, "SparseConditionalAccumulator", "emb_accum", pst_shape_2d(4, 2),
                           NULL);
    pst_output step = pst_placeholder(g, "step", PST_INT64, pst_shape_scalar());
    pst_output ix = pst_placeholder(g, "ix", PST_INT64, pst_shape_1d(-1));
    pst_output vals = pst_placeholder(g, "vals", PST_FLOAT, pst_shape_2d(-1, 2));
    pst_output shape = pst_const_i64_vec(g, 2, (int64_t[]){4, 2}, NULL);
    pst_node_builder *b = pst_nb_new(g, "SparseAccumulatorApplyGradient", NULL);
    pst_nb_inputs(b, 5, (pst_output[]){acc, step, ix, vals, shape});
    pst_nb_attr_type(b, "dtype", PST_FLOAT);
    pst_nb_attr_b(b, "has_known_shape", 1);
    pst_node *apply = pst_nb_finish(b);
    ck_assert_ptr_nonnull(apply);
    pst_node *take = op_node(g, "SparseAccumulatorTakeGradient", 2,
                             (pst_output[]){acc, pst_const_i32(g, 2, NULL)}, 1);
    ck_assert_int_eq(take->out_shapes[1].rank, 2);
    ck_assert_int_eq(take->out_shapes[1].dims[1], 2);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_msg(s != NULL, "%s", st.msg);
    struct {
        int n;
        int64_t ix[3];
        float v[6];
        int64_t step;
    } grads[3] = {{2, {0, 2}, {1, 1, 2, 2}, 0},
                  {2, {2, 3}, {4, 4, 6, 6}, 0},
                  {1, {5}, {1, 1}, 0}};
    for (int i = 0; i < 3; i++) {
        pst_tensor *it = pst_tensor_from_i64(pst_shape_1d(grads[i].n), grads[i].ix);
        pst_tensor *vt = pst_tensor_from_f32(pst_shape_2d(grads[i].n, 2), grads[i].v);
        pst_tensor *stp = pst_tensor_scalar_i64(grads[i].step);
        pst_feed f[3] = {{ix, it}, {vals, vt}, {step, stp}};
        int rc = pst_session_run(s, f, 3, NULL, 0, &apply, 1, NULL, &st);
        if (i < 2) {
            ck_assert_msg(rc == 0, "%s", st.msg);
        } else { /* index 5 of a [4, 2] accumulator */
            ck_assert_int_eq(rc, PST_E_INVALID);
            ck_assert_msg(strstr(st.msg, "emb_accum") && strstr(st.msg, "index 5"), "%s",
                          st.msg);
        }
        pst_tensor_unref(it), pst_tensor_unref(vt), pst_tensor_unref(stp);
    }
    pst_output outs[3] = {{take, 0}, {take, 1}, {take, 2}};
    pst_tensor *o[3] = {0};
    ck_assert_msg(pst_session_run(s, NULL, 0, outs, 3, NULL, 0, o, &st) == 0, "%s", st.msg);
    /* Rows average over the gradients that had them: row 2 over two, rows 0 and 3 over one. */
    PST_ASSERT_TENSOR(o[0], 1, ((int64_t[]){3}), ((double[]){0, 2, 3}), 0);
    PST_ASSERT_TENSOR(o[1], 2, ((int64_t[]){3, 2}), ((double[]){1, 1, 3, 3, 6, 6}), 1e-6);
    PST_ASSERT_TENSOR(o[2], 1, ((int64_t[]){2}), ((double[]){4, 2}), 0);
    for (int i = 0; i < 3; i++) pst_tensor_unref(o[i]);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    pst_ops_init();
    Suite *s = suite_create("ops_accum");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sync_replicas_pattern);
    tcase_add_test(tc, test_sum_resource_form_and_errors);
    tcase_add_test(tc, test_cancel_wakes_a_waiting_take);
    tcase_add_test(tc, test_sparse_accumulator);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
