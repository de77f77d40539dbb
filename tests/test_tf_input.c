/* TF 1 input pipelines inside graphs: queues with TensorFlow's semantics (FIFO order,
 * capacity, close, OutOfRange, a RandomShuffleQueue's min_after_dequeue), ParseExample and
 * DecodeRaw values, and a real TF graph (19_gkchai) trained from its own TFRecord reader
 * pipeline started by its queue runners. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <unistd.h>

#include "example.h"
#include "imported.h"
#include "image_ops.h"
#include "io_ops.h"
#include "metagraph.h"
#include "op.h"
#include "testutil.h"
#include "tfrecord.h"

/* A one-component queue node (shape NULL: none declared; capacity <= 0: unbounded). */
static pst_output queue_node(pst_graph *g, const char *name, pst_dtype t, const pst_shape *shape,
                             int64_t capacity) {
    pst_node_builder *b = pst_nb_new(g, "FIFOQueueV2", name);
    pst_nb_attr_list_type(b, "component_types", 1, &t);
    if (shape) pst_nb_attr_list_shape(b, "shapes", 1, shape);
    if (capacity > 0) pst_nb_attr_i(b, "capacity", capacity);
    return pst_out(pst_nb_finish(b), 0);
}

/* A filename queue and an enqueue of one name (file) into it; *enq receives the enqueue. */
static pst_output filename_queue(pst_graph *g, const char *file, const char *enq_name,
                                 pst_node **enq) {
    pst_output q = queue_node(g, "files", PST_STRING, NULL, 0);
    pst_node_builder *b = pst_nb_new(g, "QueueEnqueueManyV2", enq_name);
    pst_nb_input(b, q);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_strs(1, (const char *const[]){file}), "names"));
    *enq = pst_nb_finish(b);
    return q;
}

/* Writes g as a meta graph at a new temporary path (in path), frees g, imports it. */
static pst_imported *reimport(pst_graph *g, char *path) {
    pst_status st = {0};
    pst_test_tmp_file(path);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    ck_assert_msg(pst_meta_graph_write(g, &(pst_meta_export_opts){0}, path, &st) == 0, "%s",
                  st.msg);
    pst_graph_free(g);
    pst_imported *m = pst_imported_load(path, &st);
    ck_assert_msg(m != NULL, "%s", st.msg);
    return m;
}

/* ---- A queue graph: queue, enqueue of a fed int32 scalar, dequeues, close, size --------- */
typedef struct qgraph {
    pst_graph *g;
    pst_session *s;
    pst_output x, xs, n;           /* an element; a batch of elements; a count */
    pst_node *enq, *enq_many, *close, *cancel;
    pst_output deq, deq_many, deq_up_to, size;
} qgraph;

static void qgraph_init(qgraph *q, const char *op, int64_t capacity, int64_t min_after) {
    pst_ops_init();
    q->g = pst_graph_new();
    pst_graph *g = q->g;
    pst_dtype t = PST_INT32;
    pst_shape sc = pst_shape_scalar();
    pst_node_builder *b = pst_nb_new(g, op, "q");
    pst_nb_attr_list_type(b, "component_types", 1, &t);
    pst_nb_attr_list_shape(b, "shapes", 1, &sc);
    pst_nb_attr_i(b, "capacity", capacity);
    pst_nb_attr_i(b, "min_after_dequeue", min_after);
    pst_nb_attr_i(b, "seed", 7);
    pst_output h = pst_out(pst_nb_finish(b), 0);
    q->x = pst_placeholder(g, "x", PST_INT32, sc);
    q->xs = pst_placeholder(g, "xs", PST_INT32, pst_shape_1d(-1));
    q->n = pst_placeholder(g, "n", PST_INT32, sc);
    b = pst_nb_new(g, "QueueEnqueueV2", "enq");
    pst_nb_input(b, h);
    pst_nb_input(b, q->x);
    q->enq = pst_nb_finish(b);
    b = pst_nb_new(g, "QueueEnqueueManyV2", "enq_many");
    pst_nb_input(b, h);
    pst_nb_input(b, q->xs);
    q->enq_many = pst_nb_finish(b);
    b = pst_nb_new(g, "QueueDequeueV2", "deq");
    pst_nb_input(b, h);
    pst_nb_attr_list_type(b, "component_types", 1, &t);
    q->deq = pst_out(pst_nb_finish(b), 0);
    b = pst_nb_new(g, "QueueDequeueManyV2", "deq_many");
    pst_nb_input(b, h);
    pst_nb_input(b, q->n);
    pst_nb_attr_list_type(b, "component_types", 1, &t);
    q->deq_many = pst_out(pst_nb_finish(b), 0);
    b = pst_nb_new(g, "QueueDequeueUpToV2", "deq_up_to");
    pst_nb_input(b, h);
    pst_nb_input(b, q->n);
    pst_nb_attr_list_type(b, "component_types", 1, &t);
    q->deq_up_to = pst_out(pst_nb_finish(b), 0);
    b = pst_nb_new(g, "QueueCloseV2", "close");
    pst_nb_input(b, h);
    q->close = pst_nb_finish(b);
    b = pst_nb_new(g, "QueueCloseV2", "cancel");
    pst_nb_input(b, h);
    pst_nb_attr_b(b, "cancel_pending_enqueues", 1);
    q->cancel = pst_nb_finish(b);
    b = pst_nb_new(g, "QueueSizeV2", "size");
    pst_nb_input(b, h);
    q->size = pst_out(pst_nb_finish(b), 0);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    q->s = pst_session_new(g, NULL, &st);
    ck_assert_msg(q->s != NULL, "%s", st.msg);
}

static void qgraph_destroy(qgraph *q) {
    pst_session_free(q->s);
    pst_graph_free(q->g);
}

static int enqueue(qgraph *q, int v, pst_status *st) {
    pst_tensor *t = pst_tensor_scalar_i32(v);
    pst_feed f = {q->x, t};
    int rc = pst_session_run(q->s, &f, 1, NULL, 0, &q->enq, 1, NULL, st);
    pst_tensor_unref(t);
    return rc;
}

/* Runs a dequeue (n elements for the batch ones); NULL with st set on error. */
static pst_tensor *dequeue(qgraph *q, pst_output which, int n, pst_status *st) {
    pst_tensor *k = pst_tensor_scalar_i32(n), *out[1] = {NULL};
    pst_feed f = {q->n, k};
    int batch = which.node != q->deq.node;
    pst_session_run(q->s, &f, batch, &which, 1, NULL, 0, out, st);
    pst_tensor_unref(k);
    return out[0];
}

static int64_t qsize(qgraph *q) {
    pst_status st = {0};
    pst_tensor *t = pst_session_run1(q->s, q->size, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    int64_t n = pst_tensor_get_i64(t, 0);
    pst_tensor_unref(t);
    return n;
}

static void run_target(qgraph *q, pst_node *n) {
    pst_status st = {0};
    ck_assert_msg(pst_session_run_target(q->s, n, &st) == 0, "%s", st.msg);
}

/* Waits (bounded) until the queue holds n elements. */
static void wait_size(qgraph *q, int64_t n) {
    for (int i = 0; i < 2000 && qsize(q) != n; i++) usleep(5000);
    ck_assert_int_eq(qsize(q), n);
}

typedef struct bg {
    qgraph *q;
    int value;
    pst_output which;
    atomic_int done;
    int rc;
    pst_status st;
    pst_tensor *out;
} bg;

static void *bg_enqueue(void *p) {
    bg *b = p;
    b->rc = enqueue(b->q, b->value, &b->st);
    atomic_store(&b->done, 1);
    return NULL;
}

static void *bg_dequeue(void *p) {
    bg *b = p;
    b->out = dequeue(b->q, b->which, b->value, &b->st);
    b->rc = b->out ? 0 : b->st.code;
    atomic_store(&b->done, 1);
    return NULL;
}

/* Starts fn(b) in a thread and checks that it is still waiting a moment later (a queue op
 * that should block; on a slow machine this can only pass more easily). */
static void start_blocked(pthread_t *t, void *(*fn)(void *), bg *b) {
    pthread_create(t, NULL, fn, b);
    usleep(50000);
    ck_assert_int_eq(atomic_load(&b->done), 0);
}

START_TEST(test_fifo_order_and_capacity) {
    qgraph q;
    qgraph_init(&q, "FIFOQueueV2", 2, 0);
    pst_status st = {0};
    ck_assert_int_eq(enqueue(&q, 10, &st), 0);
    ck_assert_int_eq(enqueue(&q, 11, &st), 0);
    ck_assert_int_eq(qsize(&q), 2);
    /* A third enqueue waits for room: it completes only after a dequeue. */
    bg b = {.q = &q, .value = 12};
    pthread_t t;
    start_blocked(&t, bg_enqueue, &b);
    ck_assert_int_eq(qsize(&q), 2);
    pst_tensor *v = dequeue(&q, q.deq, 1, &st);
    ck_assert_msg(v != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_tensor_get_i64(v, 0), 10);
    pst_tensor_unref(v);
    pthread_join(t, NULL);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_int_eq(qsize(&q), 2);
    v = dequeue(&q, q.deq_many, 2, &st);
    ck_assert_msg(v != NULL, "%s", st.msg);
    PST_ASSERT_TENSOR(v, 1, ((int64_t[]){2}), ((double[]){11, 12}), 0);
    pst_tensor_unref(v);
    qgraph_destroy(&q);
}
END_TEST

START_TEST(test_fifo_close_semantics) {
    qgraph q;
    qgraph_init(&q, "FIFOQueueV2", -1, 0);
    pst_status st = {0};
    pst_tensor *xs = pst_tensor_from_i32(pst_shape_1d(3), (int32_t[]){1, 2, 3});
    pst_feed f = {q.xs, xs};
    ck_assert_int_eq(pst_session_run(q.s, &f, 1, NULL, 0, &q.enq_many, 1, NULL, &st), 0);
    pst_tensor_unref(xs);
    ck_assert_int_eq(qsize(&q), 3);
    /* A dequeue waiting for more than there is fails with OutOfRange once the queue closes. */
    bg b = {.q = &q, .value = 5, .which = q.deq_many};
    pthread_t t;
    start_blocked(&t, bg_dequeue, &b);
    run_target(&q, q.close);
    pthread_join(t, NULL);
    ck_assert_int_eq(b.rc, PST_E_OUT_OF_RANGE);
    ck_assert_ptr_nonnull(strstr(b.st.msg, "is closed and has insufficient elements"));
    /* Closed: enqueues are refused (Cancelled), what is left can still be dequeued. */
    ck_assert_int_eq(enqueue(&q, 4, &st), PST_E_CANCELLED);
    ck_assert_ptr_nonnull(strstr(st.msg, "is closed"));
    st = (pst_status){0};
    pst_tensor *v = dequeue(&q, q.deq, 1, &st);
    ck_assert_msg(v != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_tensor_get_i64(v, 0), 1);
    pst_tensor_unref(v);
    ck_assert_ptr_null(dequeue(&q, q.deq_many, 3, &st)); /* 2 left */
    ck_assert_int_eq(st.code, PST_E_OUT_OF_RANGE);
    v = dequeue(&q, q.deq_up_to, 3, &st); /* UpTo returns the rest */
    ck_assert_msg(v != NULL, "%s", st.msg);
    PST_ASSERT_TENSOR(v, 1, ((int64_t[]){2}), ((double[]){2, 3}), 0);
    pst_tensor_unref(v);
    st = (pst_status){0};
    ck_assert_ptr_null(dequeue(&q, q.deq_up_to, 3, &st));
    ck_assert_int_eq(st.code, PST_E_OUT_OF_RANGE);
    qgraph_destroy(&q);
}
END_TEST

START_TEST(test_cancel_pending_enqueues) {
    qgraph q;
    qgraph_init(&q, "FIFOQueueV2", 1, 0);
    pst_status st = {0};
    ck_assert_int_eq(enqueue(&q, 1, &st), 0);
    bg b = {.q = &q, .value = 2};
    pthread_t t;
    start_blocked(&t, bg_enqueue, &b);
    run_target(&q, q.cancel);
    pthread_join(t, NULL);
    ck_assert_int_eq(b.rc, PST_E_CANCELLED);
    ck_assert_int_eq(qsize(&q), 1);
    qgraph_destroy(&q);
}
END_TEST

START_TEST(test_shuffle_min_after_dequeue) {
    qgraph q;
    qgraph_init(&q, "RandomShuffleQueueV2", 100, 2);
    pst_status st = {0};
    int seen[10] = {0};
    for (int i = 0; i < 3; i++) ck_assert_int_eq(enqueue(&q, i, &st), 0);
    pst_tensor *v = dequeue(&q, q.deq, 1, &st); /* 3 >= 1 + 2 */
    ck_assert_msg(v != NULL, "%s", st.msg);
    seen[pst_tensor_get_i64(v, 0)]++;
    pst_tensor_unref(v);
    /* Two left = min_after_dequeue: the next dequeue waits for one more element. */
    bg b = {.q = &q, .value = 1, .which = q.deq};
    pthread_t t;
    start_blocked(&t, bg_dequeue, &b);
    ck_assert_int_eq(enqueue(&q, 3, &st), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(b.rc, 0);
    seen[pst_tensor_get_i64(b.out, 0)]++;
    pst_tensor_unref(b.out);
    wait_size(&q, 2);
    /* Closed: min_after_dequeue no longer holds the last elements back. */
    run_target(&q, q.close);
    v = dequeue(&q, q.deq_many, 2, &st);
    ck_assert_msg(v != NULL, "%s", st.msg);
    for (int i = 0; i < 2; i++) seen[pst_tensor_get_i64(v, i)]++;
    pst_tensor_unref(v);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(seen[i], 1); /* every element exactly once */
    ck_assert_ptr_null(dequeue(&q, q.deq, 1, &st));
    ck_assert_int_eq(st.code, PST_E_OUT_OF_RANGE);
    qgraph_destroy(&q);
}
END_TEST

START_TEST(test_shuffle_mixes) {
    qgraph q;
    qgraph_init(&q, "RandomShuffleQueueV2", -1, 0);
    pst_status st = {0};
    int32_t vals[64];
    for (int i = 0; i < 64; i++) vals[i] = i;
    pst_tensor *xs = pst_tensor_from_i32(pst_shape_1d(64), vals);
    pst_feed f = {q.xs, xs};
    ck_assert_int_eq(pst_session_run(q.s, &f, 1, NULL, 0, &q.enq_many, 1, NULL, &st), 0);
    pst_tensor_unref(xs);
    pst_tensor *v = dequeue(&q, q.deq_many, 64, &st);
    ck_assert_msg(v != NULL, "%s", st.msg);
    int in_order = 0, sum = 0;
    for (int i = 0; i < 64; i++) {
        in_order += pst_tensor_get_i64(v, i) == i;
        sum += (int)pst_tensor_get_i64(v, i);
    }
    ck_assert_int_eq(sum, 63 * 64 / 2);
    ck_assert_int_lt(in_order, 32); /* a permutation, not the order they went in */
    pst_tensor_unref(v);
    qgraph_destroy(&q);
}
END_TEST

/* ---- ParseExample, DecodeRaw -------------------------------------------------------- */


static pst_tensor *encode_example(pst_example *ex) {
    pst_pbwire_buf b;
    pst_pbwire_buf_init(&b);
    pst_status st = {0};
    ck_assert_int_eq(pst_example_encode(ex, &b, &st), 0);
    pst_tensor *t = pst_tensor_new_zeros(PST_STRING, pst_shape_scalar(), &st);
    pst_tstring_set(pst_tensor_str(t), b.data, b.len);
    pst_pbwire_buf_destroy(&b);
    return t;
}

START_TEST(test_parse_example_values) {
    pst_io_ops_init();
    pst_status st = {0};
    /* Two examples: the second lacks "w" (its default is used) and has two "tags". */
    pst_example *e0 = pst_example_new(), *e1 = pst_example_new();
    pst_example_add_floats(e0, "w", (float[]){1.5f, -2}, 2, &st);
    pst_example_add_int64s(e0, "label", (int64_t[]){3}, 1, &st);
    pst_example_add_int64s(e0, "tags", (int64_t[]){7}, 1, &st);
    pst_example_add_int64s(e1, "label", (int64_t[]){1}, 1, &st);
    pst_example_add_int64s(e1, "tags", (int64_t[]){8, 9}, 2, &st);
    pst_tensor *s0 = encode_example(e0), *s1 = encode_example(e1);
    pst_tensor *ser = pst_tensor_new_zeros(PST_STRING, pst_shape_1d(2), &st);
    pst_tensor_copy_elems(ser, 0, s0, 0, 1, &st);
    pst_tensor_copy_elems(ser, 1, s1, 0, 1, &st);

    pst_graph *g = pst_graph_new();
    pst_output in = pst_placeholder(g, "ser", PST_STRING, pst_shape_1d(-1));
    pst_node_builder *b = pst_nb_new(g, "ParseExample", "parse");
    pst_nb_input(b, in);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_strs(0, NULL), "names"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str("tags"), "sk0"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str("w"), "dk0"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str("label"), "dk1"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_f32(pst_shape_1d(2), (float[]){9, 8}), "d0"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(0), NULL), "d1"));
    pst_nb_attr_i(b, "Nsparse", 1);
    pst_nb_attr_i(b, "Ndense", 2);
    pst_nb_attr_list_type(b, "sparse_types", 1, (pst_dtype[]){PST_INT64});
    pst_nb_attr_list_type(b, "Tdense", 2, (pst_dtype[]){PST_FLOAT, PST_INT64});
    pst_nb_attr_list_shape(b, "dense_shapes", 2, (pst_shape[]){pst_shape_1d(2), pst_shape_scalar()});
    pst_node *p = pst_nb_finish(b);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    ck_assert_int_eq(p->n_outputs, 5);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_output fetch[5];
    for (int i = 0; i < 5; i++) fetch[i] = pst_out(p, i);
    pst_tensor *out[5];
    pst_feed f = {in, ser};
    ck_assert_msg(pst_session_run(s, &f, 1, fetch, 5, NULL, 0, out, &st) == 0, "%s", st.msg);
    PST_ASSERT_TENSOR(out[0], 2, ((int64_t[]){3, 2}), ((double[]){0, 0, 1, 0, 1, 1}), 0);
    PST_ASSERT_TENSOR(out[1], 1, ((int64_t[]){3}), ((double[]){7, 8, 9}), 0);
    PST_ASSERT_TENSOR(out[2], 1, ((int64_t[]){2}), ((double[]){2, 2}), 0);
    PST_ASSERT_TENSOR(out[3], 2, ((int64_t[]){2, 2}), ((double[]){1.5, -2, 9, 8}), 0);
    PST_ASSERT_TENSOR(out[4], 1, ((int64_t[]){2}), ((double[]){3, 1}), 0);
    for (int i = 0; i < 5; i++) pst_tensor_unref(out[i]);

    /* A required feature (empty default) missing, and a type mismatch, name the feature. */
    pst_example_clear(e0);
    pst_example_add_floats(e0, "label", (float[]){1}, 1, &st);
    pst_tensor_unref(s0);
    s0 = encode_example(e0);
    pst_tensor_copy_elems(ser, 1, s0, 0, 1, &st);
    ck_assert_int_lt(pst_session_run(s, &f, 1, fetch, 5, NULL, 0, out, &st), 0);
    ck_assert_msg(strstr(st.msg, "feature 'label'") && strstr(st.msg, "don't match"), "%s",
                  st.msg);
    pst_example_clear(e0);
    pst_tensor_unref(s0);
    s0 = encode_example(e0);
    pst_tensor_copy_elems(ser, 1, s0, 0, 1, &st);
    st = (pst_status){0};
    ck_assert_int_lt(pst_session_run(s, &f, 1, fetch, 5, NULL, 0, out, &st), 0);
    ck_assert_msg(strstr(st.msg, "'label' (int64) is required"), "%s", st.msg);

    pst_session_free(s);
    pst_graph_free(g);
    pst_tensor_unref(ser);
    pst_tensor_unref(s0);
    pst_tensor_unref(s1);
    pst_example_free(e0);
    pst_example_free(e1);
}
END_TEST

START_TEST(test_decode_raw) {
    pst_ops_init();
    pst_graph *g = pst_graph_new();
    pst_tensor *raw = pst_tensor_new_zeros(PST_STRING, pst_shape_1d(2), NULL);
    pst_tstring_set(&pst_tensor_str(raw)[0], "\x01\x00\x02\x00", 4);
    pst_tstring_set(&pst_tensor_str(raw)[1], "\xff\xff\x00\x01", 4);
    pst_node_builder *b = pst_nb_new(g, "DecodeRaw", "d");
    pst_nb_input(b, pst_test_const(g, raw, "raw"));
    pst_nb_attr_type(b, "out_type", PST_INT32);
    pst_nb_attr_b(b, "little_endian", 1);
    pst_output d = pst_out(pst_nb_finish(b), 0);
    b = pst_nb_new(g, "DecodeRaw", "u8");
    pst_nb_input(b, pst_graph_output_by_name(g, "raw"));
    pst_nb_attr_type(b, "out_type", PST_UINT8);
    pst_output u = pst_out(pst_nb_finish(b), 0);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *v = pst_session_run1(s, d, &st);
    ck_assert_msg(v != NULL, "%s", st.msg);
    PST_ASSERT_TENSOR(v, 2, ((int64_t[]){2, 1}), ((double[]){0x00020001, 0x0100ffff}), 0);
    pst_tensor_unref(v);
    v = pst_session_run1(s, u, &st);
    PST_ASSERT_TENSOR(v, 2, ((int64_t[]){2, 4}), ((double[]){1, 0, 2, 0, 255, 255, 0, 1}), 0);
    pst_tensor_unref(v);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_count_up_to) {
    pst_ops_init();
    pst_graph *g = pst_graph_new();
    pst_output v = pst_variable_v2(g, "epochs", PST_INT64, pst_shape_scalar());
    pst_node *init = pst_assign(g, v, pst_test_const(g, pst_tensor_scalar_i64(0), "zero"), "init").node;
    pst_node_builder *b = pst_nb_new(g, "CountUpTo", "count");
    pst_nb_input(b, v);
    pst_nb_attr_i(b, "limit", 2);
    pst_output c = pst_out(pst_nb_finish(b), 0);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(s, init, &st), 0);
    for (int i = 0; i < 2; i++) {
        pst_tensor *t = pst_session_run1(s, c, &st);
        ck_assert_msg(t != NULL, "%s", st.msg);
        ck_assert_int_eq(pst_tensor_get_i64(t, 0), i);
        pst_tensor_unref(t);
    }
    ck_assert_ptr_null(pst_session_run1(s, c, &st));
    ck_assert_int_eq(st.code, PST_E_OUT_OF_RANGE);
    ck_assert_ptr_nonnull(strstr(st.msg, "Reached limit of 2"));
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* ---- Readers on a hand-built filename queue --------------------------------------------- */

typedef struct rgraph {
    pst_graph *g;
    pst_session *s;
    pst_node *fill;      /* enqueues the file name and closes the queue */
    pst_output key, value;
} rgraph;

/* A filename queue holding path (then closed) read by a reader of op reader_op; n_up_to > 0:
 * ReaderReadUpToV2 of that many records, else ReaderReadV2. */
static void rgraph_init(rgraph *r, const char *path, const char *reader_op, int n_up_to,
                        void (*attrs)(pst_node_builder *)) {
    pst_io_ops_init();
    r->g = pst_graph_new();
    pst_graph *g = r->g;
    pst_node *enq;
    pst_output q = filename_queue(g, path, "enq", &enq);
    pst_node_builder *b = pst_nb_new(g, "QueueCloseV2", "close");
    pst_nb_input(b, q);
    pst_nb_control(b, enq);
    r->fill = pst_nb_finish(b);
    b = pst_nb_new(g, reader_op, "reader");
    if (attrs) attrs(b);
    pst_output rd = pst_out(pst_nb_finish(b), 0);
    b = pst_nb_new(g, n_up_to ? "ReaderReadUpToV2" : "ReaderReadV2", "read");
    pst_nb_input(b, rd);
    pst_nb_input(b, q);
    if (n_up_to) pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(n_up_to), "n"));
    pst_node *rn = pst_nb_finish(b);
    r->key = pst_out(rn, 0);
    r->value = pst_out(rn, 1);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    r->s = pst_session_new(g, NULL, &st);
    ck_assert_msg(r->s != NULL, "%s", st.msg);
    ck_assert_msg(pst_session_run_target(r->s, r->fill, &st) == 0, "%s", st.msg);
}

static void rgraph_destroy(rgraph *r) {
    pst_session_free(r->s);
    pst_graph_free(r->g);
}

static void fixed_attrs(pst_node_builder *b) {
    pst_nb_attr_i(b, "header_bytes", 2);
    pst_nb_attr_i(b, "record_bytes", 4);
    pst_nb_attr_i(b, "footer_bytes", 1);
}

START_TEST(test_fixed_length_reader) {
    char path[] = "/tmp/pst_tfinput_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "HHabcdefghijklF", 15), 15); /* header, 3 records, footer */
    close(fd);
    rgraph r;
    rgraph_init(&r, path, "FixedLengthRecordReaderV2", 0, fixed_attrs);
    const char *want[3] = {"abcd", "efgh", "ijkl"};
    pst_status st = {0};
    for (int i = 0; i < 3; i++) {
        pst_tensor *out[2] = {NULL, NULL};
        pst_output f[2] = {r.key, r.value};
        ck_assert_msg(pst_session_run(r.s, NULL, 0, f, 2, NULL, 0, out, &st) == 0, "%s", st.msg);
        char key[512];
        snprintf(key, sizeof key, "%s:%d", path, i);
        ck_assert_str_eq(pst_tensor_str(out[0])->p, key);
        ck_assert_str_eq(pst_tensor_str(out[1])->p, want[i]);
        pst_tensor_unref(out[0]);
        pst_tensor_unref(out[1]);
    }
    ck_assert_ptr_null(pst_session_run1(r.s, r.value, &st)); /* no more files */
    ck_assert_int_eq(st.code, PST_E_OUT_OF_RANGE);
    rgraph_destroy(&r);
    unlink(path);
}
END_TEST

static void text_attrs(pst_node_builder *b) { pst_nb_attr_i(b, "skip_header_lines", 1); }

START_TEST(test_text_reader_decode_csv) {
    char path[] = "/tmp/pst_tfinput_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text = "id,score,name\n7,2.5,\"a,b\"\n8,,c\n";
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    rgraph r;
    rgraph_init(&r, path, "TextLineReaderV2", 5, text_attrs);
    pst_node_builder *b = pst_nb_new(r.g, "DecodeCSV", "csv");
    pst_nb_input(b, r.value);
    pst_nb_input(b, pst_test_const(r.g, pst_tensor_from_i32(pst_shape_1d(0), NULL), "d0"));
    pst_nb_input(b, pst_test_const(r.g, pst_tensor_from_f32(pst_shape_1d(1), (float[]){-1}), "d1"));
    pst_nb_input(b, pst_test_const(r.g, pst_tensor_from_strs(1, (const char *const[]){"?"}), "d2"));
    pst_node *csv = pst_nb_finish(b);
    ck_assert_msg(!pst_graph_error(r.g), "%s", pst_graph_status(r.g)->msg);
    pst_output f[4] = {r.key, pst_out(csv, 0), pst_out(csv, 1), pst_out(csv, 2)};
    pst_tensor *out[4];
    pst_status st = {0};
    /* ReadUpTo 5 returns the 2 lines after the header (the input ends). */
    ck_assert_msg(pst_session_run(r.s, NULL, 0, f, 4, NULL, 0, out, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(out[0]->n, 2);
    char key[512];
    snprintf(key, sizeof key, "%s:2", path);
    ck_assert_str_eq(pst_tensor_str(out[0])[0].p, key);
    PST_ASSERT_TENSOR(out[1], 1, ((int64_t[]){2}), ((double[]){7, 8}), 0);
    PST_ASSERT_TENSOR(out[2], 1, ((int64_t[]){2}), ((double[]){2.5, -1}), 0);
    ck_assert_str_eq(pst_tensor_str(out[3])[0].p, "a,b");
    ck_assert_str_eq(pst_tensor_str(out[3])[1].p, "c");
    for (int i = 0; i < 4; i++) pst_tensor_unref(out[i]);
    ck_assert_int_lt(pst_session_run(r.s, NULL, 0, f, 4, NULL, 0, out, &st), 0);
    ck_assert_int_eq(st.code, PST_E_OUT_OF_RANGE);
    rgraph_destroy(&r);
    unlink(path);
}
END_TEST

START_TEST(test_whole_file_reader) {
    char path[] = "/tmp/pst_tfinput_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "line1\nline2", 11), 11);
    close(fd);
    rgraph r;
    rgraph_init(&r, path, "WholeFileReaderV2", 0, NULL);
    pst_status st = {0};
    pst_tensor *out[2];
    pst_output f[2] = {r.key, r.value};
    ck_assert_msg(pst_session_run(r.s, NULL, 0, f, 2, NULL, 0, out, &st) == 0, "%s", st.msg);
    ck_assert_str_eq(pst_tensor_str(out[0])->p, path);
    ck_assert_str_eq(pst_tensor_str(out[1])->p, "line1\nline2");
    pst_tensor_unref(out[0]);
    pst_tensor_unref(out[1]);
    ck_assert_ptr_null(pst_session_run1(r.s, r.value, &st));
    ck_assert_int_eq(st.code, PST_E_OUT_OF_RANGE);
    rgraph_destroy(&r);
    unlink(path);
}
END_TEST

/* Runs a one-output node of op over the given inputs (constants taken); NULL with st set. */
static pst_tensor *run_op(const char *op, int n, pst_tensor **in, void (*attrs)(pst_node_builder *),
                          pst_status *st) {
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, op, "op");
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", i);
        pst_nb_input(b, pst_test_const(g, in[i], name));
    }
    if (attrs) attrs(b);
    pst_output o = pst_out(pst_nb_finish(b), 0);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    pst_session *s = pst_session_new(g, NULL, st);
    pst_tensor *t = pst_session_run1(s, o, st);
    pst_session_free(s);
    pst_graph_free(g);
    return t;
}

static void out_int32(pst_node_builder *b) { pst_nb_attr_type(b, "out_type", PST_INT32); }

START_TEST(test_sparse_to_dense_string_to_number_contrast) {
    pst_status st = {0};
    /* tf.sparse_tensor_to_dense of a VarLenFeature: [2, 3] with -1 where nothing was. */
    pst_tensor *in[4] = {pst_tensor_from_i64(pst_shape_2d(3, 2), (int64_t[]){0, 0, 0, 1, 1, 2}),
                         pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){2, 3}),
                         pst_tensor_from_f32(pst_shape_1d(3), (float[]){5, 6, 7}),
                         pst_tensor_scalar_f32(-1)};
    pst_tensor *t = run_op("SparseToDense", 4, in, NULL, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    PST_ASSERT_TENSOR(t, 2, ((int64_t[]){2, 3}), ((double[]){5, 6, -1, -1, -1, 7}), 0);
    pst_tensor_unref(t);
    st = (pst_status){0};
    pst_tensor *s = pst_tensor_from_strs(2, (const char *const[]){"42", "-7"});
    t = run_op("StringToNumber", 1, &s, out_int32, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    ck_assert_int_eq(t->dtype, PST_INT32);
    PST_ASSERT_TENSOR(t, 1, ((int64_t[]){2}), ((double[]){42, -7}), 0);
    pst_tensor_unref(t);
    s = pst_tensor_from_strs(1, (const char *const[]){"4x"});
    ck_assert_ptr_null(run_op("StringToNumber", 1, &s, NULL, &st));
    ck_assert_msg(strstr(st.msg, "'4x'"), "%s", st.msg);

    st = (pst_status){0};
    /* One 2x1 image of 2 channels: channel means 2 and 10; factor 2 doubles the spread. */
    pst_tensor *ac[2] = {pst_tensor_from_f32(pst_shape_make(3, (int64_t[]){2, 1, 2}),
                                             (float[]){1, 8, 3, 12}),
                         pst_tensor_scalar_f32(2)};
    t = run_op("AdjustContrastv2", 2, ac, NULL, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    PST_ASSERT_TENSOR(t, 3, ((int64_t[]){2, 1, 2}), ((double[]){0, 6, 4, 14}), 1e-6);
    pst_tensor_unref(t);
}
END_TEST

START_TEST(test_matching_files) {
    char dir[] = "/tmp/pst_tfinput_dir_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char a[256], b[256], pat[256];
    snprintf(a, sizeof a, "%s/part-1.tfrecord", dir);
    snprintf(b, sizeof b, "%s/part-0.tfrecord", dir);
    snprintf(pat, sizeof pat, "%s/part-*.tfrecord", dir);
    fclose(fopen(a, "w"));
    fclose(fopen(b, "w"));
    pst_status st = {0};
    pst_tensor *p = pst_tensor_scalar_str(pat);
    pst_tensor *t = run_op("MatchingFiles", 1, &p, NULL, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    ck_assert_int_eq(t->n, 2);
    ck_assert_str_eq(pst_tensor_str(t)[0].p, b); /* sorted */
    ck_assert_str_eq(pst_tensor_str(t)[1].p, a);
    pst_tensor_unref(t);
    unlink(a);
    unlink(b);
    rmdir(dir);
}
END_TEST

/* One step's Feature: an int64_list of n values (packed). */
static void put_int64_feature(pst_pbwire_buf *b, const int64_t *v, int n) {
    size_t feat = pst_pbwire_begin(b, 1);  /* FeatureList.feature */
    size_t list = pst_pbwire_begin(b, 3);  /* Feature.int64_list */
    size_t packed = pst_pbwire_begin(b, 1); /* Int64List.value */
    for (int i = 0; i < n; i++) pst_pbwire_put_rawvarint(b, (uint64_t)v[i]);
    pst_pbwire_end(b, packed);
    pst_pbwire_end(b, list);
    pst_pbwire_end(b, feat);
}

/* A SequenceExample: context {length: n}; feature_lists {tokens: one int64 per step (n);
 * tags: tag_counts[t] int64s per step (values from *next_tag up)}. */
static pst_tensor *seq_example(int n, const int64_t *tokens, const int *tag_counts,
                               int64_t *next_tag) {
    pst_status st = {0};
    pst_example *ctx = pst_example_new();
    pst_example_add_int64s(ctx, "length", (int64_t[]){n}, 1, &st);
    pst_pbwire_buf b;
    pst_pbwire_buf_init(&b);
    ck_assert_int_eq(pst_example_encode(ctx, &b, &st), 0);
    size_t lists = pst_pbwire_begin(&b, 2);
    size_t e = pst_pbwire_begin(&b, 1);
    pst_pbwire_put_string(&b, 1, "tokens");
    size_t fl = pst_pbwire_begin(&b, 2);
    for (int t = 0; t < n; t++) put_int64_feature(&b, tokens + t, 1);
    pst_pbwire_end(&b, fl);
    pst_pbwire_end(&b, e);
    e = pst_pbwire_begin(&b, 1);
    pst_pbwire_put_string(&b, 1, "tags");
    fl = pst_pbwire_begin(&b, 2);
    for (int t = 0; t < n; t++) {
        int64_t v[8];
        for (int k = 0; k < tag_counts[t]; k++) v[k] = (*next_tag)++;
        put_int64_feature(&b, v, tag_counts[t]);
    }
    pst_pbwire_end(&b, fl);
    pst_pbwire_end(&b, e);
    pst_pbwire_end(&b, lists);
    pst_tensor *ser = pst_tensor_new_zeros(PST_STRING, pst_shape_scalar(), &st);
    pst_tstring_set(pst_tensor_str(ser), b.data, b.len);
    pst_pbwire_buf_destroy(&b);
    pst_example_free(ctx);
    return ser;
}

START_TEST(test_parse_single_sequence_example) {
    pst_io_ops_init();
    pst_status st = {0};
    /* context {length: 3}; feature_lists {tokens: [5], [6], [7]; tags: [1, 2], [], [3]} */
    int64_t tag = 1;
    pst_tensor *ser = seq_example(3, (int64_t[]){5, 6, 7}, (int[]){2, 0, 1}, &tag);

    pst_graph *g = pst_graph_new();
    pst_node_builder *nb = pst_nb_new(g, "ParseSingleSequenceExample", "seq");
    pst_nb_input(nb, pst_test_const(g, ser, "ser"));
    pst_nb_input(nb, pst_test_const(g, pst_tensor_from_strs(1, (const char *const[]){"absent"}), "assumed"));
    pst_nb_input(nb, pst_test_const(g, pst_tensor_scalar_str("length"), "ck"));
    pst_nb_input(nb, pst_test_const(g, pst_tensor_scalar_str("tags"), "fsk"));
    pst_nb_input(nb, pst_test_const(g, pst_tensor_scalar_str("tokens"), "fdk0"));
    pst_nb_input(nb, pst_test_const(g, pst_tensor_scalar_str("absent"), "fdk1"));
    pst_nb_input(nb, pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(0), NULL), "cdef"));
    pst_nb_input(nb, pst_test_const(g, pst_tensor_scalar_str(""), "debug"));
    pst_nb_attr_i(nb, "Ncontext_dense", 1);
    pst_nb_attr_i(nb, "Nfeature_list_sparse", 1);
    pst_nb_attr_i(nb, "Nfeature_list_dense", 2);
    pst_nb_attr_list_type(nb, "Tcontext_dense", 1, (pst_dtype[]){PST_INT64});
    pst_nb_attr_list_type(nb, "feature_list_sparse_types", 1, (pst_dtype[]){PST_INT64});
    pst_nb_attr_list_type(nb, "feature_list_dense_types", 2, (pst_dtype[]){PST_INT64, PST_FLOAT});
    pst_nb_attr_list_shape(nb, "context_dense_shapes", 1, (pst_shape[]){pst_shape_scalar()});
    pst_nb_attr_list_shape(nb, "feature_list_dense_shapes", 2,
                           (pst_shape[]){pst_shape_scalar(), pst_shape_1d(2)});
    pst_node *n = pst_nb_finish(nb);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    ck_assert_int_eq(n->n_outputs, 6);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_output f[6];
    for (int i = 0; i < 6; i++) f[i] = pst_out(n, i);
    pst_tensor *out[6];
    ck_assert_msg(pst_session_run(s, NULL, 0, f, 6, NULL, 0, out, &st) == 0, "%s", st.msg);
    PST_ASSERT_TENSOR(out[0], 0, NULL, ((double[]){3}), 0);                      /* length */
    PST_ASSERT_TENSOR(out[1], 2, ((int64_t[]){3, 2}), ((double[]){0, 0, 0, 1, 2, 0}), 0);
    PST_ASSERT_TENSOR(out[2], 1, ((int64_t[]){3}), ((double[]){1, 2, 3}), 0);   /* tags */
    PST_ASSERT_TENSOR(out[3], 1, ((int64_t[]){2}), ((double[]){3, 2}), 0);
    PST_ASSERT_TENSOR(out[4], 1, ((int64_t[]){3}), ((double[]){5, 6, 7}), 0);   /* tokens */
    ck_assert_int_eq(out[5]->shape.rank, 2);                                     /* absent: */
    ck_assert_int_eq(out[5]->shape.dims[0], 0);                                  /* empty */
    for (int i = 0; i < 6; i++) pst_tensor_unref(out[i]);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* tf.io.parse_sequence_example (the batched ParseSequenceExample): context dense stacked,
 * sparse feature lists with the example index in front, dense feature lists padded to the
 * longest with their lengths; a required list that is missing names the example. */
static pst_node *batch_seq_node(pst_graph *g, pst_tensor *ser, const char *dense_key) {
    pst_node_builder *nb = pst_nb_new(g, "ParseSequenceExample", NULL);
    pst_nb_input(nb, pst_test_const(g, ser, NULL));
    pst_nb_input(nb,
                 pst_test_const(g, pst_tensor_from_strs(2, (const char *const[]){"a", "b"}), NULL));
    pst_nb_input(nb, pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(0), NULL), NULL));
    pst_nb_attr_i(nb, "Ncontext_dense", 1);
    pst_nb_attr_i(nb, "Nfeature_list_sparse", 1);
    pst_nb_attr_i(nb, "Nfeature_list_dense", 1);
    pst_nb_attr_list_s(nb, "context_dense_keys", 1, (const char *const[]){"length"});
    pst_nb_attr_list_s(nb, "feature_list_sparse_keys", 1, (const char *const[]){"tags"});
    pst_nb_attr_list_s(nb, "feature_list_dense_keys", 1, (const char *const[]){dense_key});
    pst_nb_attr_list_s(nb, "feature_list_dense_missing_assumed_empty", 1,
                       (const char *const[]){"optional"});
    pst_nb_attr_list_type(nb, "Tcontext_dense", 1, (pst_dtype[]){PST_INT64});
    pst_nb_attr_list_type(nb, "feature_list_sparse_types", 1, (pst_dtype[]){PST_INT64});
    pst_nb_attr_list_type(nb, "feature_list_dense_types", 1, (pst_dtype[]){PST_INT64});
    pst_nb_attr_list_shape(nb, "context_dense_shapes", 1, (pst_shape[]){pst_shape_scalar()});
    pst_nb_attr_list_shape(nb, "feature_list_dense_shapes", 1, (pst_shape[]){pst_shape_scalar()});
    pst_node *n = pst_nb_finish(nb);
    ck_assert_msg(n != NULL, "%s", pst_graph_status(g)->msg);
    return n;
}

START_TEST(test_parse_sequence_example_batched) {
    pst_io_ops_init();
    pst_status st = {0};
    int64_t tag = 1;
    pst_tensor *e0 = seq_example(3, (int64_t[]){5, 6, 7}, (int[]){2, 0, 1}, &tag);
    pst_tensor *e1 = seq_example(1, (int64_t[]){8}, (int[]){1}, &tag);
    pst_tensor *ser = pst_tensor_new_zeros(PST_STRING, pst_shape_1d(2), &st);
    pst_tensor_copy_elems(ser, 0, e0, 0, 1, &st);
    pst_tensor_copy_elems(ser, 1, e1, 0, 1, &st);
    pst_tensor_unref(e0), pst_tensor_unref(e1);
    pst_graph *g = pst_graph_new();
    pst_node *n = batch_seq_node(g, pst_tensor_ref(ser), "tokens");
    ck_assert_int_eq(n->n_outputs, 6);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_output f[6];
    for (int i = 0; i < 6; i++) f[i] = pst_out(n, i);
    pst_tensor *out[6];
    ck_assert_msg(pst_session_run(s, NULL, 0, f, 6, NULL, 0, out, &st) == 0, "%s", st.msg);
    PST_ASSERT_TENSOR(out[0], 1, ((int64_t[]){2}), ((double[]){3, 1}), 0);    /* length */
    PST_ASSERT_TENSOR(out[1], 2, ((int64_t[]){4, 3}),                          /* tags */
                      ((double[]){0, 0, 0, 0, 0, 1, 0, 2, 0, 1, 0, 0}), 0);
    PST_ASSERT_TENSOR(out[2], 1, ((int64_t[]){4}), ((double[]){1, 2, 3, 4}), 0);
    PST_ASSERT_TENSOR(out[3], 1, ((int64_t[]){3}), ((double[]){2, 3, 2}), 0);
    PST_ASSERT_TENSOR(out[4], 2, ((int64_t[]){2, 3}), ((double[]){5, 6, 7, 8, 0, 0}), 0);
    PST_ASSERT_TENSOR(out[5], 1, ((int64_t[]){2}), ((double[]){3, 1}), 0);    /* lengths */
    for (int i = 0; i < 6; i++) pst_tensor_unref(out[i]);
    pst_session_free(s);
    pst_graph_free(g);
    /* A dense feature list neither present nor assumed empty: an error naming the example. */
    g = pst_graph_new();
    n = batch_seq_node(g, pst_tensor_ref(ser), "absent");
    s = pst_session_new(g, NULL, &st);
    pst_tensor *o = NULL;
    st = (pst_status){0};
    pst_output dense = pst_out(n, 4);
    ck_assert_int_eq(pst_session_run(s, NULL, 0, &dense, 1, NULL, 0, &o, &st), PST_E_INVALID);
    ck_assert_msg(strstr(st.msg, "example 0 a") && strstr(st.msg, "'absent' is required"), "%s",
                  st.msg);
    pst_session_free(s);
    pst_graph_free(g);
    /* ... and an empty one when assumed empty. */
    g = pst_graph_new();
    n = batch_seq_node(g, pst_tensor_ref(ser), "optional");
    s = pst_session_new(g, NULL, &st);
    pst_output lens[2] = {pst_out(n, 4), pst_out(n, 5)};
    pst_tensor *lo[2];
    ck_assert_msg(pst_session_run(s, NULL, 0, lens, 2, NULL, 0, lo, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(lo[0]->shape.rank, 2);
    ck_assert_int_eq(lo[0]->shape.dims[0], 2);
    ck_assert_int_eq(lo[0]->shape.dims[1], 0);
    PST_ASSERT_TENSOR(lo[1], 1, ((int64_t[]){2}), ((double[]){0, 0}), 0);
    pst_tensor_unref(lo[0]), pst_tensor_unref(lo[1]);
    pst_session_free(s);
    pst_graph_free(g);
    pst_tensor_unref(ser);
}
END_TEST

/* tf.train.batch of SparseTensors: each row stored under a handle, the handles batched
 * (here reversed), the rows taken back as one SparseTensor. */
START_TEST(test_sparse_tensors_map) {
    pst_ops_init();
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "AddManySparseToTensorsMap", "add");
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_2d(3, 2), (int64_t[]){0, 1, 1, 0, 1, 2}),
                        "ind"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_f32(pst_shape_1d(3), (float[]){5, 6, 7}), "val"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(2), (int64_t[]){2, 3}), "shp"));
    pst_output handles = pst_out(pst_nb_finish(b), 0);
    b = pst_nb_new(g, "ReverseV2", "rev");
    pst_nb_input(b, handles);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_i32(pst_shape_1d(1), (int32_t[]){0}), "axis"));
    pst_output rev = pst_out(pst_nb_finish(b), 0);
    b = pst_nb_new(g, "TakeManySparseFromTensorsMap", "take");
    pst_nb_input(b, rev);
    pst_nb_attr_type(b, "dtype", PST_FLOAT);
    pst_node *take = pst_nb_finish(b);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_output f[4] = {pst_out(take, 0), pst_out(take, 1), pst_out(take, 2), rev};
    pst_tensor *out[4];
    ck_assert_msg(pst_session_run(s, NULL, 0, f, 4, NULL, 0, out, &st) == 0, "%s", st.msg);
    PST_ASSERT_TENSOR(out[0], 2, ((int64_t[]){3, 2}), ((double[]){0, 0, 0, 2, 1, 1}), 0);
    PST_ASSERT_TENSOR(out[1], 1, ((int64_t[]){3}), ((double[]){6, 7, 5}), 0);
    PST_ASSERT_TENSOR(out[2], 1, ((int64_t[]){2}), ((double[]){2, 3}), 0);
    /* Taken handles are gone: taking them again is an error naming the handle. */
    pst_feed fd = {rev, out[3]};
    pst_tensor *again[1];
    ck_assert_int_lt(pst_session_run(s, &fd, 1, f, 1, NULL, 0, again, &st), 0);
    ck_assert_msg(strstr(st.msg, "unable to find SparseTensor 0"), "%s", st.msg);
    for (int i = 0; i < 4; i++) pst_tensor_unref(out[i]);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

static void ch3(pst_node_builder *b) { pst_nb_attr_i(b, "channels", 3); }

/* An image file read whole and decoded (PNG exactly, JPEG within its loss). */
static pst_tensor *decode_file(const char *op, const char *path, pst_status *st) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    pst_tensor *c = pst_tensor_new_zeros(PST_STRING, pst_shape_scalar(), st);
    pst_tstring_set(pst_tensor_str(c), buf, n);
    return run_op(op, 1, &c, ch3, st);
}

START_TEST(test_decode_png_jpeg) {
    pst_io_ops_init();
    char path[] = "/tmp/pst_tfinput_XXXXXX";
    pst_test_tmp_file(path);
    uint8_t px[4 * 3 * 3];
    for (int i = 0; i < 36; i++) px[i] = (uint8_t)(i * 7);
    pst_status st = {0};
    ck_assert_msg(pst_image_write(path, 0, px, 4, 3, 3, &st) == 0, "%s", st.msg);
    pst_tensor *t = decode_file("DecodePng", path, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    ck_assert_int_eq(t->shape.dims[0], 4);
    ck_assert_int_eq(t->shape.dims[1], 3);
    ck_assert_int_eq(t->shape.dims[2], 3);
    ck_assert_int_eq(memcmp(t->data, px, 36), 0);
    pst_tensor_unref(t);
    uint8_t gray[16 * 16];
    memset(gray, 100, sizeof gray);
    ck_assert_msg(pst_image_write(path, 1, gray, 16, 16, 1, &st) == 0, "%s", st.msg);
    t = decode_file("DecodeJpeg", path, &st); /* channels 3 from a grayscale JPEG */
    ck_assert_msg(t != NULL, "%s", st.msg);
    ck_assert_int_eq(t->n, 16 * 16 * 3);
    for (int64_t i = 0; i < t->n; i++) ck_assert_int_le(abs((int)pst_tensor_u8(t)[i] - 100), 2);
    pst_tensor_unref(t);
    pst_tensor *bad = pst_tensor_scalar_str("not an image");
    ck_assert_ptr_null(run_op("DecodeJpeg", 1, &bad, NULL, &st));
    ck_assert_msg(strstr(st.msg, "invalid JPEG data"), "%s", st.msg);
    st = (pst_status){0};
    bad = pst_tensor_scalar_str("not an image");
    ck_assert_ptr_null(run_op("DecodePng", 1, &bad, NULL, &st));
    ck_assert_msg(strstr(st.msg, "invalid PNG data"), "%s", st.msg);
    /* A header claiming 40000 x 40000 RGB pixels is refused before anything is allocated. */
    uint8_t png[45] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                       0, 0, 0x9c, 0x40, 0, 0, 0x9c, 0x40, 8, 2, 0, 0, 0, 0, 0, 0, 0, /* CRC */
                       0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xaf, 0x06, 0x1e}; /* empty IDAT */
    uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), png + 12, 17);
    for (int i = 0; i < 4; i++) png[29 + i] = (uint8_t)(crc >> (24 - 8 * i));
    bad = pst_tensor_new_zeros(PST_STRING, pst_shape_scalar(), &st);
    pst_tstring_set(pst_tensor_str(bad), png, sizeof png);
    st = (pst_status){0};
    ck_assert_ptr_null(run_op("DecodePng", 1, &bad, NULL, &st));
    ck_assert_msg(strstr(st.msg, "PNG image too large: 40000 x 40000 x 3"), "%s", st.msg);
    unlink(path);
}
END_TEST

/* A BMP file's bytes: w x h pixels of bpp bits (24 or 32), rows bottom-up unless top_down,
 * pixel (y, x) stored as B, G, R(, A) = y * 40 + x * 10 + {1, 2, 3(, 4)}. */
static pst_tensor *bmp_bytes(int w, int h, int bpp, int top_down, int compression, size_t cut) {
    int ch = bpp / 8, row = (w * bpp + 31) / 32 * 4;
    size_t size = 54 + (size_t)row * (size_t)h;
    uint8_t *b = calloc(1, size);
    b[0] = 'B', b[1] = 'M';
    uint32_t v[][2] = {{2, (uint32_t)size}, {10, 54}, {14, 40}, {18, (uint32_t)w},
                       {22, (uint32_t)(top_down ? -h : h)}, {30, (uint32_t)compression}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        for (int k = 0; k < 4; k++) b[v[i][0] + k] = (uint8_t)(v[i][1] >> (8 * k));
    b[26] = 1, b[28] = (uint8_t)bpp;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = b + 54 + (size_t)(top_down ? y : h - 1 - y) * (size_t)row + (size_t)x * ch;
            for (int k = 0; k < ch; k++) p[k] = (uint8_t)(y * 40 + x * 10 + k + 1);
        }
    pst_tensor *t = pst_tensor_new_zeros(PST_STRING, pst_shape_scalar(), NULL);
    pst_tstring_set(pst_tensor_str(t), b, size - cut);
    free(b);
    return t;
}

/* GIF building for the tests: 4-color tables, LZW with minimum code size 2 written as literal
 * codes with a clear code before every two (the code size stays 3 bits). */
typedef struct gif_w {
    uint8_t b[4096];
    size_t n;
    uint32_t bits;
    int nbits;
    uint8_t sub[255];
    int nsub;
} gif_w;

static void gw_bytes(gif_w *g, const void *p, size_t n) {
    memcpy(g->b + g->n, p, n);
    g->n += n;
}

static void gw_code(gif_w *g, int code) {
    g->bits |= (uint32_t)code << g->nbits;
    g->nbits += 3;
    while (g->nbits >= 8) {
        g->sub[g->nsub++] = (uint8_t)g->bits;
        g->bits >>= 8;
        g->nbits -= 8;
        if (g->nsub == 255) {
            g->b[g->n++] = 255;
            gw_bytes(g, g->sub, 255);
            g->nsub = 0;
        }
    }
}

/* An image descriptor and its data; transparent >= 0 adds a control extension before it. */
static void gw_image(gif_w *g, int l, int t, int w, int h, int interlace, int transparent,
                     const uint8_t *local_ct, const uint8_t *idx) {
    if (transparent >= 0)
        gw_bytes(g, (uint8_t[]){0x21, 0xF9, 4, 1, 0, 0, (uint8_t)transparent, 0}, 8);
    uint8_t d[10] = {0x2C, (uint8_t)l, 0, (uint8_t)t, 0, (uint8_t)w, 0, (uint8_t)h, 0,
                     (uint8_t)((interlace ? 0x40 : 0) | (local_ct ? 0x81 : 0))};
    gw_bytes(g, d, 10);
    if (local_ct) gw_bytes(g, local_ct, 12);
    g->b[g->n++] = 2; /* minimum code size */
    for (int i = 0; i < w * h; i++) {
        if (i % 2 == 0) gw_code(g, 4); /* clear */
        gw_code(g, idx[i]);
    }
    gw_code(g, 5); /* end */
    if (g->nbits > 0) g->sub[g->nsub++] = (uint8_t)g->bits;
    g->bits = 0, g->nbits = 0;
    if (g->nsub) {
        g->b[g->n++] = (uint8_t)g->nsub;
        gw_bytes(g, g->sub, (size_t)g->nsub);
        g->nsub = 0;
    }
    g->b[g->n++] = 0;
}

static pst_tensor *gw_finish(gif_w *g, size_t cut) {
    g->b[g->n++] = 0x3B;
    pst_tensor *t = pst_tensor_new_zeros(PST_STRING, pst_shape_scalar(), NULL);
    pst_tstring_set(pst_tensor_str(t), g->b, g->n - cut);
    return t;
}

static void gw_start(gif_w *g, int w, int h, int colors) {
    memset(g, 0, sizeof *g);
    gw_bytes(g, "GIF89a", 6);
    /* global table of 4 colors: i -> (10 + i, 20 + i, 30 + i); 2 colors when asked */
    gw_bytes(g, (uint8_t[]){(uint8_t)w, 0, (uint8_t)h, 0, colors == 2 ? 0x80 : 0x81, 0, 0}, 7);
    for (int i = 0; i < colors; i++)
        gw_bytes(g, (uint8_t[]){(uint8_t)(10 + i), (uint8_t)(20 + i), (uint8_t)(30 + i)}, 3);
}

/* DecodeGif: frames composited as TF 1.15 does (a frame starts as the previous one, its
 * transparent pixels keep the canvas), interlaced rows put back in order, local color tables,
 * and bad files named. */
START_TEST(test_decode_gif) {
    pst_status st = {0};
    gif_w g;
    gw_start(&g, 2, 5, 4);
    const uint8_t f0[10] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1};
    gw_image(&g, 0, 0, 2, 5, 0, -1, NULL, f0);
    /* frame 1: interlaced, stored rows 0, 4, 2, 1, 3; every pixel row r gets color r % 4 */
    const uint8_t f1[10] = {0, 0, 0, 0, 2, 2, 1, 1, 3, 3};
    gw_image(&g, 0, 0, 2, 5, 1, -1, NULL, f1);
    /* frame 2: a 1 x 2 image at (x 1, y 3) with a local table; index 0 transparent */
    const uint8_t lct[12] = {200, 201, 202, 210, 211, 212, 220, 221, 222, 230, 231, 232};
    gw_image(&g, 1, 3, 1, 2, 0, 0, lct, (uint8_t[]){3, 0});
    pst_tensor *gif = gw_finish(&g, 0);
    pst_tensor *im = run_op("DecodeGif", 1, &gif, NULL, &st);
    ck_assert_msg(im != NULL, "%s", st.msg);
    ck_assert_int_eq(im->shape.rank, 4);
    int64_t want_dims[4] = {3, 5, 2, 3};
    for (int d = 0; d < 4; d++) ck_assert_int_eq(im->shape.dims[d], want_dims[d]);
    const uint8_t *px = pst_tensor_u8(im);
    for (int k = 0; k < 3; k++)
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 2; x++) {
                int ci = k == 0 ? f0[y * 2 + x] : y % 4;
                int r = 10 + ci, gr = 20 + ci, bl = 30 + ci;
                if (k == 2 && x == 1 && y == 3) r = 230, gr = 231, bl = 232; /* local color 3 */
                const uint8_t *p = px + (((size_t)k * 5 + (size_t)y) * 2 + (size_t)x) * 3;
                ck_assert_msg(p[0] == r && p[1] == gr && p[2] == bl,
                              "frame %d (%d, %d): %d %d %d, want %d %d %d", k, y, x, p[0], p[1],
                              p[2], r, gr, bl);
            }
    pst_tensor_unref(im);
    /* a first frame that leaves part of the screen black, and a transparent pixel there */
    gw_start(&g, 2, 2, 4);
    gw_image(&g, 1, 0, 1, 2, 0, 2, NULL, (uint8_t[]){1, 2});
    gif = gw_finish(&g, 0);
    im = run_op("DecodeGif", 1, &gif, NULL, &st);
    ck_assert_msg(im != NULL, "%s", st.msg);
    const uint8_t want[12] = {0, 0, 0, 11, 21, 31, 0, 0, 0, 0, 0, 0};
    ck_assert_int_eq(memcmp(pst_tensor_u8(im), want, 12), 0);
    pst_tensor_unref(im);
    /* bad files */
    gw_start(&g, 2, 1, 2);
    gw_image(&g, 0, 0, 2, 1, 0, -1, NULL, (uint8_t[]){1, 3});
    pst_tensor *bad[4] = {gw_finish(&g, 0), NULL, pst_tensor_scalar_str("GIF89a"),
                          pst_tensor_scalar_str("PNG or so")};
    gw_start(&g, 2, 1, 4);
    gw_image(&g, 0, 0, 2, 1, 0, -1, NULL, (uint8_t[]){1, 3});
    bad[1] = gw_finish(&g, 4);
    const char *why[4] = {"a color index outside the color table", "image data is cut short",
                          "no GIF header", "no GIF header"};
    /* a frame claiming 60000 x 60000 pixels on a 2 x 2 screen: refused before allocating */
    gw_start(&g, 2, 2, 4);
    gw_bytes(&g, (uint8_t[]){0x2C, 0, 0, 0, 0, 0x60, 0xEA, 0x60, 0xEA, 0, 2, 0}, 12);
    pst_tensor *huge = gw_finish(&g, 0);
    ck_assert_ptr_null(run_op("DecodeGif", 1, &huge, NULL, &st));
    ck_assert_msg(strstr(st.msg, "GIF frame image too large: 60000 x 60000 x 3"), "%s", st.msg);
    for (int i = 0; i < 4; i++) {
        st = (pst_status){0};
        ck_assert_ptr_null(run_op("DecodeGif", 1, &bad[i], NULL, &st));
        ck_assert_msg(strstr(st.msg, "invalid GIF data") && strstr(st.msg, why[i]), "%d: %s", i,
                      st.msg);
    }
}
END_TEST

static void ch4(pst_node_builder *b) { pst_nb_attr_i(b, "channels", 4); }
static void q100_444(pst_node_builder *b) {
    pst_nb_attr_i(b, "quality", 100);
    pst_nb_attr_b(b, "chroma_downsampling", 0);
}
static void out_i64(pst_node_builder *b) { pst_nb_attr_type(b, "output_type", PST_INT64); }

/* EncodePng / EncodeJpeg and the decoders TF's decode_image holds (DecodeBmp,
 * DecodeAndCropJpeg, ExtractJpegShape): round trips, exact crops, BMP layouts, errors. */
START_TEST(test_encode_and_more_decoders) {
    pst_status st = {0};
    /* PNG round trips, 1 to 4 channels */
    for (int ch = 1; ch <= 4; ch++) {
        pst_tensor *im = pst_tensor_new(PST_UINT8, pst_shape_make(3, (int64_t[]){5, 3, ch}), &st);
        for (int64_t i = 0; i < im->n; i++) pst_tensor_u8(im)[i] = (uint8_t)(i * 37 + ch);
        pst_tensor_ref(im);
        pst_tensor *png = run_op("EncodePng", 1, &im, NULL, &st);
        ck_assert_msg(png != NULL, "%s", st.msg);
        ck_assert(png->dtype == PST_STRING && png->shape.rank == 0);
        pst_tensor *back = run_op("DecodePng", 1, &png, NULL, &st);
        ck_assert_msg(back != NULL, "%s", st.msg);
        ck_assert_int_eq(back->shape.dims[2], ch);
        ck_assert_int_eq(memcmp(back->data, im->data, (size_t)im->n), 0);
        pst_tensor_unref(back);
        pst_tensor_unref(im);
    }
    /* JPEG: a gray image comes back within its loss; its header's shape */
    pst_tensor *gray = pst_tensor_new(PST_UINT8, pst_shape_make(3, (int64_t[]){16, 24, 1}), &st);
    memset(gray->data, 100, (size_t)gray->n);
    pst_tensor *jpg = run_op("EncodeJpeg", 1, &gray, NULL, &st);
    ck_assert_msg(jpg != NULL, "%s", st.msg);
    pst_tensor_ref(jpg);
    pst_tensor *shape = run_op("ExtractJpegShape", 1, &jpg, out_i64, &st);
    ck_assert_msg(shape != NULL, "%s", st.msg);
    ck_assert(shape->dtype == PST_INT64);
    PST_ASSERT_TENSOR(shape, 1, (int64_t[]){3}, ((double[]){16, 24, 1}), 0);
    pst_tensor_unref(shape);
    pst_tensor *dec = run_op("DecodeJpeg", 1, &jpg, NULL, &st);
    ck_assert_msg(dec != NULL, "%s", st.msg);
    ck_assert_int_eq(dec->n, 16 * 24);
    for (int64_t i = 0; i < dec->n; i++) ck_assert_int_le(abs((int)pst_tensor_u8(dec)[i] - 100), 2);
    pst_tensor_unref(dec);
    /* DecodeAndCropJpeg is exactly the window of the whole decoded image */
    pst_tensor *rgb = pst_tensor_new(PST_UINT8, pst_shape_make(3, (int64_t[]){16, 24, 3}), &st);
    for (int64_t i = 0; i < rgb->n; i++) pst_tensor_u8(rgb)[i] = (uint8_t)((i * 5) % 251);
    jpg = run_op("EncodeJpeg", 1, &rgb, q100_444, &st);
    ck_assert_msg(jpg != NULL, "%s", st.msg);
    pst_tensor_ref(jpg);
    pst_tensor_ref(jpg);
    pst_tensor *whole = run_op("DecodeJpeg", 1, &jpg, NULL, &st);
    ck_assert_msg(whole != NULL, "%s", st.msg);
    pst_tensor *in2[2] = {jpg, pst_tensor_from_i32(pst_shape_1d(4), (int32_t[]){2, 3, 5, 7})};
    pst_tensor *crop = run_op("DecodeAndCropJpeg", 2, in2, NULL, &st);
    ck_assert_msg(crop != NULL, "%s", st.msg);
    ck_assert_int_eq(crop->shape.dims[0], 5);
    ck_assert_int_eq(crop->shape.dims[1], 7);
    ck_assert_int_eq(crop->shape.dims[2], 3);
    for (int y = 0; y < 5; y++)
        ck_assert_int_eq(memcmp(pst_tensor_u8(crop) + y * 7 * 3,
                                pst_tensor_u8(whole) + ((y + 2) * 24 + 3) * 3, 7 * 3), 0);
    pst_tensor_unref(crop);
    pst_tensor_unref(whole);
    in2[1] = pst_tensor_from_i32(pst_shape_1d(4), (int32_t[]){10, 20, 8, 5});
    ck_assert_ptr_null(run_op("DecodeAndCropJpeg", 2, in2, NULL, &st));
    ck_assert_msg(strstr(st.msg, "crop window [y 10, x 20, height 8, width 5] is not inside the "
                         "16 x 24 JPEG image"), "%s", st.msg);
    /* encoders refuse what they cannot encode */
    st = (pst_status){0};
    pst_tensor *f = pst_tensor_new_zeros(PST_FLOAT, pst_shape_make(3, (int64_t[]){2, 2, 3}), &st);
    ck_assert_ptr_null(run_op("EncodePng", 1, &f, NULL, &st));
    ck_assert_msg(strstr(st.msg, "EncodePng encodes uint8 images, not float"), "%s", st.msg);
    st = (pst_status){0};
    pst_tensor *two = pst_tensor_new_zeros(PST_UINT8, pst_shape_make(3, (int64_t[]){2, 2, 2}), &st);
    ck_assert_ptr_null(run_op("EncodeJpeg", 1, &two, NULL, &st));
    ck_assert_msg(strstr(st.msg, "EncodeJpeg: 2 channels (1 or 3)"), "%s", st.msg);

    /* BMP: 24 bits bottom-up with padded rows, 32 bits top-down; BGR(A) -> RGB(A) */
    for (int k = 0; k < 2; k++) {
        int bpp = k ? 32 : 24, ch = bpp / 8;
        st = (pst_status){0};
        pst_tensor *b = bmp_bytes(3, 2, bpp, k, k ? 3 : 0, 0);
        pst_tensor *im = run_op("DecodeBmp", 1, &b, NULL, &st);
        ck_assert_msg(im != NULL, "%s", st.msg);
        ck_assert_int_eq(im->shape.dims[0], 2);
        ck_assert_int_eq(im->shape.dims[1], 3);
        ck_assert_int_eq(im->shape.dims[2], ch);
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 3; x++) {
                const uint8_t *p = pst_tensor_u8(im) + (y * 3 + x) * ch;
                int base = y * 40 + x * 10;
                ck_assert_int_eq(p[0], base + 3); /* R was stored third */
                ck_assert_int_eq(p[1], base + 2);
                ck_assert_int_eq(p[2], base + 1);
                if (ch == 4) ck_assert_int_eq(p[3], base + 4);
            }
        pst_tensor_unref(im);
    }
    const struct { pst_tensor *b; void (*attrs)(pst_node_builder *); const char *want; } bad[] = {
        {bmp_bytes(3, 2, 24, 0, 0, 0), ch4, "channels attribute 4 does not match the 3 channels"},
        {bmp_bytes(3, 2, 24, 0, 0, 5), NULL, "need 24 bytes after offset 54, the data has 73"},
        {bmp_bytes(3, 2, 24, 0, 1, 0), NULL, "compressed BMP (compression 1) is not supported"},
        {pst_tensor_scalar_str("BMnot really"), NULL, "no BMP header"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = (pst_status){0};
        pst_tensor *b = bad[i].b;
        ck_assert_ptr_null(run_op("DecodeBmp", 1, &b, bad[i].attrs, &st));
        ck_assert_msg(strstr(st.msg, bad[i].want), "%s", st.msg);
    }
}
END_TEST

/* ---- A real TF graph reading its own TFRecord input ------------------------------------ */

/* Gesture-like records for 19_gkchai: class c in 0..3, `series` 120 floats that say c. */
static void write_gestures(const char *path, int n) {
    pst_status st = {0};
    pst_tfrecord_writer *w = pst_tfrecord_writer_open(path, NULL, &st);
    ck_assert_msg(w != NULL, "%s", st.msg);
    pst_example *ex = pst_example_new();
    pst_pbwire_buf b;
    pst_pbwire_buf_init(&b);
    for (int r = 0; r < n; r++) {
        int64_t c = r % 4;
        float series[120], axis[40];
        for (int i = 0; i < 120; i++) series[i] = (i % 4 == c) ? 1.0f : 0.0f;
        for (int i = 0; i < 40; i++) axis[i] = 0.5f;
        pst_example_clear(ex);
        pst_example_add_int64s(ex, "label", &c, 1, &st);
        pst_example_add_floats(ex, "series", series, 120, &st);
        pst_example_add_floats(ex, "series/x", axis, 40, &st);
        pst_example_add_floats(ex, "series/y", axis, 40, &st);
        pst_example_add_floats(ex, "series/z", axis, 40, &st);
        pst_pbwire_buf_reset(&b);
        ck_assert_int_eq(pst_example_encode(ex, &b, &st), 0);
        ck_assert_int_eq(pst_tfrecord_writer_write(w, b.data, b.len, &st), 0);
    }
    ck_assert_msg(pst_tfrecord_writer_close(w, &st) == 0, "%s", st.msg);
    pst_pbwire_buf_destroy(&b);
    pst_example_free(ex);
}

static pst_imported *load_gkchai(pst_node **train, pst_output *loss) {
    pst_status st = {0};
    char meta[4096], prefix[4096];
    snprintf(meta, sizeof meta, "%s", pst_test_data("tf_graphs/19_gkchai_GestureRecognition/model.ckpt-0.meta"));
    snprintf(prefix, sizeof prefix, "%s", pst_test_data("tf_graphs/19_gkchai_GestureRecognition/model.ckpt-0"));
    pst_imported *m = pst_imported_load(meta, &st);
    ck_assert_msg(m != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_imported_num_queue_runners(m), 6);
    ck_assert_msg(pst_imported_init(m, &st) == 0, "%s", st.msg);
    int checked = 0;
    ck_assert_msg(pst_imported_restore(m, prefix, &checked, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(checked, 7);
    *train = pst_imported_train_op(m, NULL, &st);
    ck_assert_ptr_nonnull(*train);
    ck_assert_int_eq(pst_imported_uses_queues(m, train, 1), 1);
    *loss = pst_imported_loss(m, *train);
    ck_assert_ptr_nonnull(loss->node);
    return m;
}

/* Starts m's queue runners, its readers pointed at path (n_lists file lists replaced). */
static int start_on_n(pst_imported *m, const char *path, int n_lists) {
    pst_status st = {0};
    pst_feed *files;
    int nfiles;
    ck_assert_int_eq(pst_imported_reader_files(m, path, &files, &nfiles, &st), 0);
    ck_assert_int_eq(nfiles, n_lists);
    int rc = pst_imported_start_queue_runners(m, files, nfiles, &st);
    for (int i = 0; i < nfiles; i++) pst_tensor_unref(files[i].value);
    free(files);
    return rc;
}

/* 19_gkchai: the train and the test pipelines' file lists. */
static int start_on(pst_imported *m, const char *path) { return start_on_n(m, path, 2); }

START_TEST(test_gkchai_trains_from_its_reader) {
    char path[] = "/tmp/pst_tfinput_XXXXXX";
    pst_test_tmp_file(path);
    write_gestures(path, 64);
    pst_node *train;
    pst_output loss;
    pst_imported *m = load_gkchai(&train, &loss);
    ck_assert_int_eq(start_on(m, path), 0);
    pst_status st = {0};
    double first = 0, last = 0;
    const int steps = 60;
    for (int s = 0; s < steps; s++) {
        pst_tensor *out[1] = {NULL};
        ck_assert_msg(pst_session_run(pst_imported_session(m), NULL, 0, &loss, 1, &train, 1, out,
                                      &st) == 0, "%s", st.msg);
        double l = pst_tensor_get_f64(out[0], 0);
        if (s < 5) first += l / 5;
        if (s >= steps - 5) last += l / 5;
        pst_tensor_unref(out[0]);
    }
    ck_assert_msg(last < first * 0.8, "loss %g -> %g did not fall", first, last);
    ck_assert_int_eq(pst_imported_stop_queue_runners(m, &st), 0);
    pst_imported_free(m);
    unlink(path);
}
END_TEST

START_TEST(test_missing_file_fails_without_hanging) {
    pst_node *train;
    pst_output loss;
    pst_imported *m = load_gkchai(&train, &loss);
    ck_assert_int_eq(start_on(m, "/nonexistent/pst_gestures.tfrecords"), 0);
    pst_status st = {0};
    ck_assert_int_lt(pst_session_run(pst_imported_session(m), NULL, 0, NULL, 0, &train, 1, NULL,
                                     &st), 0);
    ck_assert_int_eq(st.code, PST_E_OUT_OF_RANGE); /* the runners closed the queues */
    st = (pst_status){0};
    ck_assert_int_lt(pst_imported_stop_queue_runners(m, &st), 0);
    ck_assert_msg(strstr(st.msg, "/nonexistent/pst_gestures.tfrecords"), "%s", st.msg);
    pst_imported_free(m);
}
END_TEST

START_TEST(test_synthetic_records_match_parse) {
    pst_node *train;
    pst_output loss;
    pst_imported *m = load_gkchai(&train, &loss);
    char path[] = "/tmp/pst_tfinput_XXXXXX";
    pst_test_tmp_file(path);
    pst_status st = {0};
    int nfeat = 0;
    ck_assert_msg(pst_imported_synthetic_records(m, path, 8, &nfeat, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(nfeat, 5);
    int64_t count = 0;
    ck_assert_int_eq(pst_tfrecord_count(path, NULL, &count, &st), 0);
    ck_assert_int_eq(count, 8);
    pst_example_spec spec[2] = {{"series", PST_FLOAT, pst_shape_1d(120)},
                                {"label", PST_INT64, pst_shape_scalar()}};
    pst_tensor *t[2];
    ck_assert_msg(pst_example_load_tfrecord(path, NULL, spec, 2, t, &st) == 0, "%s", st.msg);
    pst_tensor_unref(t[0]);
    pst_tensor_unref(t[1]);
    ck_assert_int_eq(start_on(m, path), 0);
    ck_assert_msg(pst_session_run(pst_imported_session(m), NULL, 0, NULL, 0, &train, 1, NULL,
                                  &st) == 0, "%s", st.msg);
    pst_imported_free(m); /* stops the runners */
    unlink(path);
}
END_TEST

/* 39_quantumedic's own pipeline (the user ran it and fed its batches to placeholders): with
 * synthetic records its shuffle_batch gives [100,32,32,3] images (DecodeRaw of 3072 bytes,
 * reshaped) and one-hot labels, through a RandomShuffleQueue holding back 100. */
START_TEST(test_quantumedic_shuffle_batch) {
    pst_status st = {0};
    char meta[4096];
    snprintf(meta, sizeof meta, "%s", pst_test_data("tf_graphs/39_quantumedic_cifar-10/model.ckpt.meta"));
    pst_imported *m = pst_imported_load(meta, &st);
    ck_assert_msg(m != NULL, "%s", st.msg);
    ck_assert_msg(pst_imported_init(m, &st) == 0, "%s", st.msg);
    pst_graph *g = pst_imported_graph(m);
    pst_node *batch = pst_graph_find(g, "train/shuffle_batch");
    ck_assert_ptr_nonnull(batch);
    ck_assert_int_eq(pst_imported_uses_queues(m, &batch, 1), 1);
    char path[] = "/tmp/pst_tfinput_XXXXXX";
    pst_test_tmp_file(path);
    int nfeat = 0;
    ck_assert_msg(pst_imported_synthetic_records(m, path, 16, &nfeat, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(nfeat, 2);
    ck_assert_int_eq(start_on_n(m, path, 1), 0); /* both readers take input_producer_1's */
    pst_output f[2] = {pst_out(batch, 0), pst_out(batch, 1)};
    pst_tensor *out[2];
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(pst_session_run(pst_imported_session(m), NULL, 0, f, 2, NULL, 0, out, &st)
                      == 0, "%s", st.msg);
        ck_assert_int_eq(out[0]->dtype, PST_FLOAT);
        ck_assert_int_eq(out[0]->shape.rank, 4);
        ck_assert_int_eq(out[0]->shape.dims[0], 100);
        ck_assert_int_eq(out[0]->shape.dims[3], 3);
        ck_assert_int_eq(out[1]->shape.dims[0], 100);
        ck_assert_int_eq(out[1]->shape.dims[1], 10);
        for (int r = 0; r < 100; r++) { /* one-hot rows of class 0 or 1 */
            int64_t sum = 0;
            for (int j = 0; j < 10; j++) sum += pst_tensor_get_i64(out[1], r * 10 + j);
            ck_assert_int_eq(sum, 1);
        }
        pst_tensor_unref(out[0]);
        pst_tensor_unref(out[1]);
    }
    ck_assert_int_eq(pst_imported_stop_queue_runners(m, &st), 0);
    pst_imported_free(m);
    unlink(path);
}
END_TEST

/* A queue that no QueueRunner fills but the user's own thread did (sess.run(enqueue,
 * feed_dict)): the enqueue op is adopted as a runner, its placeholder fed synthetic values. */
START_TEST(test_adopted_enqueue_ops) {
    pst_ops_init();
    pst_graph *g = pst_graph_new();
    pst_dtype t = PST_FLOAT;
    pst_shape s3 = pst_shape_1d(3);
    pst_output q = queue_node(g, "q", PST_FLOAT, &s3, 8);
    pst_output xs = pst_placeholder(g, "xs", PST_FLOAT, pst_shape_2d(-1, 3));
    pst_node_builder *b = pst_nb_new(g, "QueueEnqueueManyV2", "enqueue");
    pst_nb_input(b, q);
    pst_nb_input(b, xs);
    pst_nb_finish(b);
    b = pst_nb_new(g, "QueueDequeueManyV2", "batch");
    pst_nb_input(b, q);
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i32(4), "n"));
    pst_nb_attr_list_type(b, "component_types", 1, &t);
    pst_output batch = pst_out(pst_nb_finish(b), 0);
    pst_output total = pst_variable_v2(g, "total", PST_FLOAT, pst_shape_scalar());
    pst_assign(g, total, pst_test_const(g, pst_tensor_scalar_f32(0), "zero"), "total/Assign");
    pst_assign_add(g, total, pst_reduce_sum(g, batch, 0, NULL, 0, NULL), "step");
    char path[] = "/tmp/pst_tfinput_XXXXXX";
    pst_imported *m = reimport(g, path);
    pst_status st = {0};
    ck_assert_msg(pst_imported_init(m, &st) == 0, "%s", st.msg);
    pst_node *train = pst_imported_train_op(m, "step", &st);
    ck_assert_ptr_nonnull(train);
    ck_assert_int_eq(pst_imported_num_queue_runners(m), 0);
    ck_assert_int_eq(pst_imported_adopt_enqueue_ops(m, &train, 1), 1);
    pst_output ph = pst_graph_output_by_name(pst_imported_graph(m), "xs");
    pst_feed f = {ph, pst_imported_synthetic_feed(ph, 2, 1, &st)};
    ck_assert_ptr_nonnull(f.value);
    ck_assert_msg(pst_imported_start_queue_runners(m, &f, 1, &st) == 0, "%s", st.msg);
    pst_tensor_unref(f.value);
    pst_output out = pst_graph_output_by_name(pst_imported_graph(m), "step");
    double last = 0;
    for (int i = 0; i < 3; i++) {
        pst_tensor *v = pst_session_run1(pst_imported_session(m), out, &st);
        ck_assert_msg(v != NULL, "%s", st.msg);
        ck_assert(pst_tensor_get_f64(v, 0) > last); /* 12 values in [0.25, 0.75) each step */
        last = pst_tensor_get_f64(v, 0);
        pst_tensor_unref(v);
    }
    ck_assert_int_eq(pst_imported_stop_queue_runners(m, &st), 0); /* closes the full queue */
    pst_imported_free(m);
    unlink(path);
}
END_TEST

/* A graph reading SequenceExamples: pstrain's synthetic records hold its context feature and
 * its feature list (2 steps), and its own parse reads them back. */
START_TEST(test_synthetic_sequence_examples) {
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    pst_node *fill0;
    pst_output q = filename_queue(g, "data.tfrecord", "fill", &fill0);
    pst_node_builder *b = pst_nb_new(g, "TFRecordReaderV2", "reader");
    pst_output rd = pst_out(pst_nb_finish(b), 0);
    b = pst_nb_new(g, "ReaderReadV2", "read");
    pst_nb_input(b, rd);
    pst_nb_input(b, q);
    pst_output value = pst_out(pst_nb_finish(b), 1);
    b = pst_nb_new(g, "ParseSingleSequenceExample", "seq");
    pst_nb_input(b, value);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_strs(0, NULL), "assumed"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str("len"), "ck"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str("x"), "fk"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(0), NULL), "cdef"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str(""), "debug"));
    pst_nb_attr_i(b, "Ncontext_dense", 1);
    pst_nb_attr_i(b, "Nfeature_list_dense", 1);
    pst_nb_attr_list_type(b, "Tcontext_dense", 1, (pst_dtype[]){PST_INT64});
    pst_nb_attr_list_type(b, "feature_list_dense_types", 1, (pst_dtype[]){PST_FLOAT});
    pst_nb_attr_list_shape(b, "context_dense_shapes", 1, (pst_shape[]){pst_shape_scalar()});
    pst_nb_attr_list_shape(b, "feature_list_dense_shapes", 1, (pst_shape[]){pst_shape_1d(3)});
    pst_nb_finish(b);
    char meta[] = "/tmp/pst_tfinput_XXXXXX", path[] = "/tmp/pst_tfinput_XXXXXX";
    pst_imported *m = reimport(g, meta);
    pst_test_tmp_file(path);
    pst_status st = {0};
    int nfeat = 0;
    ck_assert_msg(pst_imported_synthetic_records(m, path, 4, &nfeat, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(nfeat, 2);
    pst_feed *files;
    int nfiles;
    ck_assert_int_eq(pst_imported_reader_files(m, path, &files, &nfiles, &st), 0);
    ck_assert_int_eq(nfiles, 1);
    pst_graph *h = pst_imported_graph(m);
    pst_node *fill = pst_graph_find(h, "fill");
    ck_assert_msg(pst_session_run(pst_imported_session(m), files, 1, NULL, 0, &fill, 1, NULL, &st)
                  == 0, "%s", st.msg);
    pst_tensor_unref(files[0].value);
    free(files);
    pst_node *seq = pst_graph_find(h, "seq");
    pst_output f[2] = {pst_out(seq, 0), pst_out(seq, 1)};
    pst_tensor *out[2];
    ck_assert_msg(pst_session_run(pst_imported_session(m), NULL, 0, f, 2, NULL, 0, out, &st) == 0,
                  "%s", st.msg);
    ck_assert_int_eq(out[0]->shape.rank, 0);
    PST_ASSERT_TENSOR(out[1], 2, ((int64_t[]){2, 3}), ((double[]){0.5, 0.5, 0.5, 0.5, 0.5, 0.5}),
                      0);
    pst_tensor_unref(out[0]);
    pst_tensor_unref(out[1]);
    pst_imported_free(m);
    unlink(meta);
    unlink(path);
}
END_TEST

/* string_input_producer(num_epochs=1) without QueueRunnerDefs: the file names go in once
 * (CountUpTo ends the second enqueue), the adopted runners close their queues when their input
 * ends, and the training steps get 8, 8, 4 of the 20 records, then OutOfRange. */
START_TEST(test_one_epoch_then_out_of_range) {
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    pst_output epochs = pst_variable_v2(g, "epochs", PST_INT64, pst_shape_scalar());
    pst_assign(g, epochs, pst_test_const(g, pst_tensor_scalar_i64(0), "e0"), "epochs/Assign");
    pst_node_builder *b = pst_nb_new(g, "CountUpTo", "count");
    pst_nb_input(b, epochs);
    pst_nb_attr_i(b, "limit", 1);
    pst_node *count = pst_nb_finish(b);
    b = pst_nb_new(g, "Identity", "names");
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_strs(1, (const char *const[]){"x.tfrecord"}), "n0"));
    pst_nb_control(b, count);
    pst_output names = pst_out(pst_nb_finish(b), 0);
    pst_output files = queue_node(g, "files", PST_STRING, NULL, 0);
    b = pst_nb_new(g, "QueueEnqueueManyV2", "files_fill");
    pst_nb_input(b, files);
    pst_nb_input(b, names);
    pst_nb_finish(b);
    pst_output rd = pst_out(pst_nb_finish(pst_nb_new(g, "TFRecordReaderV2", "reader")), 0);
    b = pst_nb_new(g, "ReaderReadV2", "read");
    pst_nb_input(b, rd);
    pst_nb_input(b, files);
    pst_output value = pst_out(pst_nb_finish(b), 1);
    b = pst_nb_new(g, "ParseSingleExample", "parse");
    pst_nb_input(b, value);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_f32(pst_shape_1d(0), NULL), "def"));
    pst_nb_attr_i(b, "num_sparse", 0);
    pst_nb_attr_list_s(b, "dense_keys", 1, (const char *const[]){"x"});
    pst_nb_attr_list_type(b, "Tdense", 1, (pst_dtype[]){PST_FLOAT});
    pst_nb_attr_list_shape(b, "dense_shapes", 1, (pst_shape[]){pst_shape_1d(2)});
    pst_output x = pst_out(pst_nb_finish(b), 0);
    pst_shape s2 = pst_shape_1d(2);
    pst_output q = queue_node(g, "examples", PST_FLOAT, &s2, 100);
    b = pst_nb_new(g, "QueueEnqueueV2", "examples_fill");
    pst_nb_input(b, q);
    pst_nb_input(b, x);
    pst_nb_finish(b);
    b = pst_nb_new(g, "QueueDequeueUpToV2", "batch");
    pst_nb_input(b, q);
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i32(8), "eight"));
    pst_nb_attr_list_type(b, "component_types", 1, (pst_dtype[]){PST_FLOAT});
    pst_output batch = pst_out(pst_nb_finish(b), 0);
    b = pst_nb_new(g, "Shape", "step");
    pst_nb_input(b, batch);
    pst_nb_finish(b);
    char meta[] = "/tmp/pst_tfinput_XXXXXX", path[] = "/tmp/pst_tfinput_XXXXXX";
    pst_imported *m = reimport(g, meta);
    pst_test_tmp_file(path);
    pst_status st = {0};
    ck_assert_msg(pst_imported_init(m, &st) == 0, "%s", st.msg);
    pst_node *train = pst_graph_find(pst_imported_graph(m), "step");
    ck_assert_int_eq(pst_imported_adopt_enqueue_ops(m, &train, 1), 2);
    ck_assert_msg(pst_imported_synthetic_records(m, path, 20, NULL, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(start_on_n(m, path, 1), 0);
    const int64_t want[3] = {8, 8, 4};
    for (int i = 0; i < 3; i++) {
        pst_tensor *t = pst_session_run1(pst_imported_session(m), pst_out(train, 0), &st);
        ck_assert_msg(t != NULL, "step %d: %s", i, st.msg);
        ck_assert_int_eq(pst_tensor_get_i64(t, 0), want[i]);
        pst_tensor_unref(t);
    }
    ck_assert_ptr_null(pst_session_run1(pst_imported_session(m), pst_out(train, 0), &st));
    ck_assert_int_eq(st.code, PST_E_OUT_OF_RANGE);
    st = (pst_status){0};
    ck_assert_int_eq(pst_imported_stop_queue_runners(m, &st), 0);
    pst_imported_free(m);
    unlink(meta);
    unlink(path);
}
END_TEST

/* The command line: pstrain train --meta on a graph reading its own input, pointed at a file;
 * and pstrain meta check on synthetic records. */
static char *run_cmd(const char *cmd, int *status) {
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    static char out[65536];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    *status = pclose(p);
    return out;
}

START_TEST(test_pstrain_train_records) {
    char path[] = "/tmp/pst_tfinput_XXXXXX";
    pst_test_tmp_file(path);
    write_gestures(path, 64);
    const char *bin = getenv("PST_BINARY_DIR");
    char meta[4096], cmd[9000];
    snprintf(meta, sizeof meta, "%s", pst_test_data("tf_graphs/19_gkchai_GestureRecognition/model.ckpt-0.meta"));
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain train --meta %s --records %s --steps 30 "
             "--print-every 10 2>&1", bin ? bin : "build", meta, path);
    int status;
    char *out = run_cmd(cmd, &status);
    ck_assert_msg(status == 0, "%s", out);
    ck_assert_msg(strstr(out, "started 6 queue runners, reading ") && strstr(out, "step 30 loss"),
                  "%s", out);
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain meta check %s --steps 2 2>&1", bin ? bin : "build",
             meta);
    out = run_cmd(cmd, &status);
    ck_assert_msg(status == 0, "%s", out);
    ck_assert_msg(strstr(out, "train_step: ok") && strstr(out, "synthetic records of 5 features"),
                  "%s", out);
    unlink(path);
}
END_TEST

int main(void) {
    Suite *s = suite_create("tf_input");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_fifo_order_and_capacity);
    tcase_add_test(tc, test_fifo_close_semantics);
    tcase_add_test(tc, test_cancel_pending_enqueues);
    tcase_add_test(tc, test_shuffle_min_after_dequeue);
    tcase_add_test(tc, test_shuffle_mixes);
    tcase_add_test(tc, test_parse_example_values);
    tcase_add_test(tc, test_decode_raw);
    tcase_add_test(tc, test_count_up_to);
    tcase_add_test(tc, test_fixed_length_reader);
    tcase_add_test(tc, test_text_reader_decode_csv);
    tcase_add_test(tc, test_whole_file_reader);
    tcase_add_test(tc, test_sparse_to_dense_string_to_number_contrast);
    tcase_add_test(tc, test_matching_files);
    tcase_add_test(tc, test_parse_single_sequence_example);
    tcase_add_test(tc, test_parse_sequence_example_batched);
    tcase_add_test(tc, test_decode_png_jpeg);
    tcase_add_test(tc, test_encode_and_more_decoders);
    tcase_add_test(tc, test_decode_gif);
    tcase_add_test(tc, test_sparse_tensors_map);
    tcase_add_test(tc, test_gkchai_trains_from_its_reader);
    tcase_add_test(tc, test_missing_file_fails_without_hanging);
    tcase_add_test(tc, test_synthetic_records_match_parse);
    tcase_add_test(tc, test_pstrain_train_records);
    tcase_add_test(tc, test_quantumedic_shuffle_batch);
    tcase_add_test(tc, test_adopted_enqueue_ops);
    tcase_add_test(tc, test_synthetic_sequence_examples);
    tcase_add_test(tc, test_one_epoch_then_out_of_range);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
