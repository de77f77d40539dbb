/* tf.data in imported graphs: dataset and iterator ops with TF's semantics (a TFRecordDataset
 * over a file the test writes -> Map(parse) -> Shuffle -> Batch -> Repeat -> Iterator), bad
 * input named, and the real 17_artem-oppermann graph (TF 1.5, a tf.data pipeline feeding an
 * autoencoder) imported and trained. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "example.h"
#include "imported.h"
#include "io_ops.h"
#include "metagraph.h"
#include "op.h"
#include "ops_state.h"
#include "session.h"
#include "tf_data.h"
#include "tf_graph.pb-c.h"
#include "tfrecord.h"
#include "testutil.h"

/* n Examples: "x" floats [i, i+1, i+2], "y" int64 i. */
static void write_records(const char *path, int n) {
    pst_status st = {0};
    pst_tfrecord_writer *w = pst_tfrecord_writer_open(path, NULL, &st);
    ck_assert_msg(w != NULL, "%s", st.msg);
    pst_pbwire_buf b;
    pst_pbwire_buf_init(&b);
    for (int i = 0; i < n; i++) {
        pst_example *ex = pst_example_new();
        float x[3] = {(float)i, (float)i + 1, (float)i + 2};
        int64_t y = i;
        ck_assert_int_eq(pst_example_add_floats(ex, "x", x, 3, &st), 0);
        ck_assert_int_eq(pst_example_add_int64s(ex, "y", &y, 1, &st), 0);
        pst_pbwire_buf_reset(&b);
        ck_assert_int_eq(pst_example_encode(ex, &b, &st), 0);
        ck_assert_int_eq(pst_tfrecord_writer_write(w, b.data, b.len, &st), 0);
        pst_example_free(ex);
    }
    ck_assert_int_eq(pst_tfrecord_writer_close(w, &st), 0);
    pst_pbwire_buf_destroy(&b);
}

/* The map function parse(record) -> (x float [3], y int64 []), as tf.parse_single_example
 * writes it into a Defun: ParseSingleExample on the string argument. */
static void add_parse_function(pst_graph *g) {
    pst_graph *body = pst_graph_new();
    pst_graph_set_library_parent(body, g);
    pst_output arg = pst_placeholder(body, "arg0", PST_STRING, pst_shape_unknown());
    pst_output d0 = pst_test_const(body, pst_tensor_new_zeros(PST_FLOAT, pst_shape_1d(0), NULL), "d0");
    pst_output d1 = pst_test_const(body, pst_tensor_new_zeros(PST_INT64, pst_shape_1d(0), NULL), "d1");
    pst_node_builder *b = pst_nb_new(body, "ParseSingleExample", "parse");
    pst_nb_input(b, arg);
    pst_nb_input(b, d0);
    pst_nb_input(b, d1);
    pst_nb_attr_i(b, "num_sparse", 0);
    const char *keys[] = {"x", "y"};
    pst_nb_attr_list_s(b, "dense_keys", 2, keys);
    pst_nb_attr_list_s(b, "sparse_keys", 0, NULL);
    pst_nb_attr_list_type(b, "sparse_types", 0, NULL);
    pst_dtype td[] = {PST_FLOAT, PST_INT64};
    pst_nb_attr_list_type(b, "Tdense", 2, td);
    pst_shape sh[] = {pst_shape_1d(3), pst_shape_scalar()};
    pst_nb_attr_list_shape(b, "dense_shapes", 2, sh);
    pst_node *p = pst_nb_finish(b);
    ck_assert_msg(p != NULL, "%s", pst_graph_status(body)->msg);
    pst_output rets[2] = {pst_out(p, 0), pst_out(p, 1)};
    ck_assert_int_eq(pst_graph_add_function(g, "parse", body, 1, &arg.node, NULL, 2, rets), 0);
}

static const pst_dtype xy_types[] = {PST_FLOAT, PST_INT64};

static void ds_attrs(pst_node_builder *b, int batched) {
    pst_nb_attr_list_type(b, "output_types", 2, xy_types);
    pst_shape sh[] = {batched ? pst_shape_2d(-1, 3) : pst_shape_1d(3),
                      batched ? pst_shape_1d(-1) : pst_shape_scalar()};
    pst_nb_attr_list_shape(b, "output_shapes", 2, sh);
}

static pst_output ds_node(pst_graph *g, const char *op, const char *name, pst_output in,
                          int n_extra, const pst_output *extra, int batched) {
    pst_node_builder *b = pst_nb_new(g, op, name);
    pst_nb_input(b, in);
    for (int i = 0; i < n_extra; i++) pst_nb_input(b, extra[i]);
    ds_attrs(b, batched);
    pst_output o = pst_nb_finish_out(b);
    ck_assert_msg(o.node != NULL, "%s", pst_graph_status(g)->msg);
    return o;
}

/* MapDataset(ds, f = "parse"). */
static pst_output map_parse(pst_graph *g, pst_output ds) {
    pst_node_builder *b = pst_nb_new(g, "MapDataset", "map");
    pst_nb_input(b, ds);
    pst_nb_attr_s(b, "f", "parse");
    pst_nb_attr_list_type(b, "Targuments", 0, NULL);
    ds_attrs(b, 0);
    pst_output o = pst_nb_finish_out(b);
    ck_assert_msg(o.node != NULL, "%s", pst_graph_status(g)->msg);
    return o;
}

typedef struct pipe {
    pst_graph *g;
    pst_session *s;
    pst_node *init;
    pst_node *next;
    pst_node *iterator;
} pipe_t;

/* An IteratorV2 over ds (x, y batches), its MakeIterator and IteratorGetNext, and a session. */
static void attach_iterator(pipe_t *p, pst_output ds) {
    pst_graph *g = p->g;
    pst_node_builder *b = pst_nb_new(g, "IteratorV2", "Iterator");
    pst_nb_attr_s(b, "shared_name", "");
    pst_nb_attr_s(b, "container", "");
    ds_attrs(b, 1);
    pst_output it = pst_nb_finish_out(b);
    b = pst_nb_new(g, "MakeIterator", "MakeIterator");
    pst_nb_input(b, ds);
    pst_nb_input(b, it);
    p->init = pst_nb_finish(b);
    b = pst_nb_new(g, "IteratorGetNext", "IteratorGetNext");
    pst_nb_input(b, it);
    ds_attrs(b, 1);
    p->next = pst_nb_finish(b);
    p->iterator = it.node;
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    p->s = pst_session_new(g, NULL, &st);
    ck_assert_ptr_nonnull(p->s);
}

/* TFRecordDataset(path) -> Map(parse) [-> Shuffle(buffer, seed)] -> Batch(batch, drop)
 * [-> Repeat(count)] -> Iterator; count 0: no repeat; buffer 0: no shuffle. */
static pipe_t build(const char *path, const char *fn, int64_t buffer, int64_t seed,
                    int reshuffle, int64_t batch, int drop, int64_t count) {
    pipe_t p = {.g = pst_graph_new()};
    pst_graph *g = p.g;
    pst_io_ops_init();
    add_parse_function(g);
    pst_node_builder *b = pst_nb_new(g, "TFRecordDataset", "TFRecordDataset");
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_strs(1, &path), "filenames"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str(""), "compression_type"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(0), "buffer_size"));
    pst_output ds = pst_nb_finish_out(b);
    ck_assert_msg(ds.node != NULL, "%s", pst_graph_status(g)->msg);
    b = pst_nb_new(g, "MapDataset", "MapDataset");
    pst_nb_input(b, ds);
    pst_nb_attr_s(b, "f", fn);
    pst_nb_attr_list_type(b, "Targuments", 0, NULL);
    ds_attrs(b, 0);
    ds = pst_nb_finish_out(b);
    if (ds.node == NULL) return p; /* the caller checks the error */
    if (buffer > 0) {
        b = pst_nb_new(g, "ShuffleDataset", "ShuffleDataset");
        pst_nb_input(b, ds);
        pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(buffer), "buffer"));
        pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(seed), "seed"));
        pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(0), "seed2"));
        pst_nb_attr_b(b, "reshuffle_each_iteration", reshuffle);
        ds_attrs(b, 0);
        ds = pst_nb_finish_out(b);
    }
    pst_output bx[2] = {pst_test_const(g, pst_tensor_scalar_i64(batch), "batch_size"),
                        pst_test_const(g, pst_tensor_scalar_bool(drop), "drop_remainder")};
    ds = ds_node(g, "BatchDatasetV2", "BatchDataset", ds, 2, bx, 1);
    if (count != 0) {
        pst_output c = pst_test_const(g, pst_tensor_scalar_i64(count), "count");
        ds = ds_node(g, "RepeatDataset", "RepeatDataset", ds, 1, &c, 1);
    }
    ds = ds_node(g, "PrefetchDataset", "PrefetchDataset", ds, 1, &bx[0], 1);
    attach_iterator(&p, ds);
    return p;
}

static void pipe_free(pipe_t *p) {
    pst_session_free(p->s);
    pst_graph_free(p->g);
}

/* Runs GetNext: 0 with x and y (caller unrefs), or the error code. */
static int get_next(pipe_t *p, pst_tensor **x, pst_tensor **y, pst_status *st) {
    pst_output f[2] = {pst_out(p->next, 0), pst_out(p->next, 1)};
    pst_tensor *out[2] = {NULL, NULL};
    int rc = pst_session_run(p->s, NULL, 0, f, 2, NULL, 0, out, st);
    *x = out[0], *y = out[1];
    return rc;
}

static void init(pipe_t *p) {
    pst_status st = {0};
    ck_assert_msg(pst_session_run_target(p->s, p->init, &st) == 0, "%s", st.msg);
}

/* The y values of the next batch (its size returned), checking x rows are [y, y+1, y+2]. */
static int next_batch(pipe_t *p, int64_t *ys, int *rc) {
    pst_status st = {0};
    pst_tensor *x, *y;
    *rc = get_next(p, &x, &y, &st);
    if (*rc < 0) return 0;
    ck_assert_int_eq(x->shape.rank, 2);
    ck_assert_int_eq(x->shape.dims[1], 3);
    ck_assert_int_eq(y->shape.rank, 1);
    ck_assert_int_eq(y->shape.dims[0], x->shape.dims[0]);
    int n = (int)y->shape.dims[0];
    for (int i = 0; i < n; i++) {
        ys[i] = pst_tensor_i64(y)[i];
        for (int j = 0; j < 3; j++)
            ck_assert_float_eq(pst_tensor_f32(x)[i * 3 + j], (float)(ys[i] + j));
    }
    pst_tensor_unref(x);
    pst_tensor_unref(y);
    return n;
}

START_TEST(test_batches_in_order_then_out_of_range) {
    char path[] = "/tmp/pst_tfdata_XXXXXX";
    pst_test_tmp_file(path);
    write_records(path, 10);
    pipe_t p = build(path, "parse", 0, 0, 1, 4, 0, 0);
    init(&p);
    int64_t ys[16];
    int rc;
    int sizes[3] = {4, 4, 2};
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(next_batch(&p, ys, &rc), sizes[k]);
        for (int i = 0; i < sizes[k]; i++) ck_assert_int_eq(ys[i], k * 4 + i);
    }
    ck_assert_int_eq(next_batch(&p, ys, &rc), 0);
    ck_assert_int_eq(rc, PST_E_OUT_OF_RANGE);
    /* MakeIterator starts over. */
    init(&p);
    ck_assert_int_eq(next_batch(&p, ys, &rc), 4);
    ck_assert_int_eq(ys[0], 0);
    pipe_free(&p);
    unlink(path);
}
END_TEST

START_TEST(test_drop_remainder) {
    char path[] = "/tmp/pst_tfdata_XXXXXX";
    pst_test_tmp_file(path);
    write_records(path, 10);
    pipe_t p = build(path, "parse", 0, 0, 1, 4, 1, 0);
    init(&p);
    int64_t ys[16];
    int rc;
    ck_assert_int_eq(next_batch(&p, ys, &rc), 4);
    ck_assert_int_eq(next_batch(&p, ys, &rc), 4);
    ck_assert_int_eq(next_batch(&p, ys, &rc), 0);
    ck_assert_int_eq(rc, PST_E_OUT_OF_RANGE);
    pipe_free(&p);
    unlink(path);
}
END_TEST

START_TEST(test_repeat_count) {
    char path[] = "/tmp/pst_tfdata_XXXXXX";
    pst_test_tmp_file(path);
    write_records(path, 10);
    /* batch(5).repeat(3): 6 batches, 0..4, 5..9, 0..4, ... then the end. */
    pipe_t p = build(path, "parse", 0, 0, 1, 5, 0, 3);
    init(&p);
    int64_t ys[16];
    int rc;
    for (int k = 0; k < 6; k++) {
        ck_assert_int_eq(next_batch(&p, ys, &rc), 5);
        ck_assert_int_eq(ys[0], (k % 2) * 5);
    }
    ck_assert_int_eq(next_batch(&p, ys, &rc), 0);
    ck_assert_int_eq(rc, PST_E_OUT_OF_RANGE);
    pipe_free(&p);
    /* count -1: forever. */
    p = build(path, "parse", 0, 0, 1, 5, 0, -1);
    init(&p);
    for (int k = 0; k < 25; k++) ck_assert_int_eq(next_batch(&p, ys, &rc), 5);
    pipe_free(&p);
    unlink(path);
}
END_TEST

/* Reads one epoch of 10 (batch 10) into order. */
static void epoch(pipe_t *p, int64_t *order) {
    int rc;
    ck_assert_int_eq(next_batch(p, order, &rc), 10);
}

static int is_permutation(const int64_t *v, int n) {
    int seen[64] = {0};
    for (int i = 0; i < n; i++) {
        if (v[i] < 0 || v[i] >= n || seen[v[i]]) return 0;
        seen[v[i]] = 1;
    }
    return 1;
}

START_TEST(test_shuffle_seeded) {
    char path[] = "/tmp/pst_tfdata_XXXXXX";
    pst_test_tmp_file(path);
    write_records(path, 10);
    int64_t a[10], b[10], c[10];
    /* A seeded shuffle without reshuffling: the same order every time it is initialized, and
     * in another session of the same graph. */
    pipe_t p = build(path, "parse", 10, 7, 0, 10, 0, 0);
    init(&p);
    epoch(&p, a);
    ck_assert(is_permutation(a, 10));
    int same_as_input = 1;
    for (int i = 0; i < 10; i++) same_as_input &= a[i] == i;
    ck_assert(!same_as_input);
    init(&p);
    epoch(&p, b);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    pipe_free(&p);
    p = build(path, "parse", 10, 7, 0, 10, 0, 0);
    init(&p);
    epoch(&p, c);
    ck_assert(memcmp(a, c, sizeof a) == 0);
    pipe_free(&p);
    /* reshuffle_each_iteration with repeat: each pass is a permutation; over several passes
     * the orders differ. */
    p = build(path, "parse", 4, 7, 1, 10, 0, 5);
    init(&p);
    int differ = 0;
    epoch(&p, a);
    ck_assert(is_permutation(a, 10));
    for (int k = 0; k < 4; k++) {
        epoch(&p, b);
        ck_assert(is_permutation(b, 10));
        differ |= memcmp(a, b, sizeof a) != 0;
    }
    ck_assert(differ);
    int rc;
    ck_assert_int_eq(next_batch(&p, b, &rc), 0);
    ck_assert_int_eq(rc, PST_E_OUT_OF_RANGE);
    pipe_free(&p);
    unlink(path);
}
END_TEST

START_TEST(test_unknown_function_named) {
    char path[] = "/tmp/pst_tfdata_XXXXXX";
    pst_test_tmp_file(path);
    pipe_t p = build(path, "no_such_fn", 0, 0, 1, 4, 0, 0);
    ck_assert(pst_graph_error(p.g) != 0);
    const char *msg = pst_graph_status(p.g)->msg;
    ck_assert_msg(strstr(msg, "MapDataset") && strstr(msg, "no_such_fn") &&
                  strstr(msg, "function library"), "%s", msg);
    pst_graph_free(p.g);
    unlink(path);
}
END_TEST

START_TEST(test_missing_file_named) {
    pipe_t p = build("/nonexistent/pst_tfdata.tfrecord", "parse", 0, 0, 1, 4, 0, 0);
    init(&p);
    pst_status st = {0};
    pst_tensor *x, *y;
    ck_assert_int_lt(get_next(&p, &x, &y, &st), 0);
    ck_assert_msg(strstr(st.msg, "/nonexistent/pst_tfdata.tfrecord") &&
                  strstr(st.msg, "IteratorGetNext"), "%s", st.msg);
    pipe_free(&p);
}
END_TEST

START_TEST(test_corrupt_record_named) {
    char path[] = "/tmp/pst_tfdata_XXXXXX";
    pst_test_tmp_file(path);
    write_records(path, 3);
    /* Flip a byte of the second record's data. */
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long rec = size / 3;
    fseek(f, rec + 16, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, rec + 16, SEEK_SET);
    fputc(ch ^ 0x55, f);
    fclose(f);
    pipe_t p = build(path, "parse", 0, 0, 1, 1, 0, 0);
    init(&p);
    int64_t ys[4];
    int rc;
    ck_assert_int_eq(next_batch(&p, ys, &rc), 1);
    pst_status st = {0};
    pst_tensor *x, *y;
    ck_assert_int_eq(get_next(&p, &x, &y, &st), PST_E_DATA_LOSS);
    ck_assert_msg(strstr(st.msg, path) && strstr(st.msg, "offset"), "%s", st.msg);
    pipe_free(&p);
    unlink(path);
}
END_TEST

START_TEST(test_uninitialized_iterator) {
    char path[] = "/tmp/pst_tfdata_XXXXXX";
    pst_test_tmp_file(path);
    write_records(path, 2);
    pipe_t p = build(path, "parse", 0, 0, 1, 1, 0, 0);
    pst_status st = {0};
    pst_tensor *x, *y;
    ck_assert_int_eq(get_next(&p, &x, &y, &st), PST_E_PRECONDITION);
    ck_assert_msg(strstr(st.msg, "not been initialized"), "%s", st.msg);
    pipe_free(&p);
    unlink(path);
}
END_TEST

/* TensorSliceDataset, RangeDataset, Take/Skip, Zip and the string-handle pattern. */
START_TEST(test_slices_range_and_string_handle) {
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    int64_t dims[2] = {3, 2};
    float v[6] = {1, 2, 3, 4, 5, 6};
    pst_node_builder *b = pst_nb_new(g, "TensorSliceDataset", "slices");
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_f32(pst_shape_make(2, dims), v), "v"));
    pst_dtype ft = PST_FLOAT, it = PST_INT64;
    pst_nb_attr_list_type(b, "Toutput_types", 1, &ft);
    pst_output sl = pst_nb_finish_out(b);
    b = pst_nb_new(g, "RangeDataset", "range");
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(10), "start"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(100), "stop"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(10), "step"));
    pst_nb_attr_list_type(b, "output_types", 1, &it);
    pst_output rg = pst_nb_finish_out(b);
    b = pst_nb_new(g, "SkipDataset", "skip");
    pst_nb_input(b, rg);
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(1), "one"));
    rg = pst_nb_finish_out(b);
    b = pst_nb_new(g, "ZipDataset", "zip");
    pst_nb_input(b, sl);
    pst_nb_input(b, rg);
    pst_output z = pst_nb_finish_out(b);
    pst_dtype zt[2] = {PST_FLOAT, PST_INT64};
    b = pst_nb_new(g, "Iterator", "it");
    pst_nb_attr_list_type(b, "output_types", 2, zt);
    pst_output iter = pst_nb_finish_out(b);
    b = pst_nb_new(g, "MakeIterator", "init");
    pst_nb_input(b, z);
    pst_nb_input(b, iter);
    pst_node *init_op = pst_nb_finish(b);
    b = pst_nb_new(g, "IteratorToStringHandle", "to_handle");
    pst_nb_input(b, iter);
    pst_output handle = pst_nb_finish_out(b);
    pst_output ph = pst_placeholder(g, "handle", PST_STRING, pst_shape_scalar());
    b = pst_nb_new(g, "IteratorFromStringHandleV2", "from_handle");
    pst_nb_input(b, ph);
    pst_nb_attr_list_type(b, "output_types", 2, zt);
    pst_output fh = pst_nb_finish_out(b);
    b = pst_nb_new(g, "IteratorGetNext", "next");
    pst_nb_input(b, fh);
    pst_nb_attr_list_type(b, "output_types", 2, zt);
    pst_node *next = pst_nb_finish(b);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(s, init_op, &st), 0);
    pst_tensor *h = pst_session_run1(s, handle, &st);
    ck_assert_ptr_nonnull(h);
    pst_feed feed = {ph, h};
    pst_output f[2] = {pst_out(next, 0), pst_out(next, 1)};
    for (int k = 0; k < 3; k++) {
        pst_tensor *out[2];
        ck_assert_msg(pst_session_run(s, &feed, 1, f, 2, NULL, 0, out, &st) == 0, "%s", st.msg);
        ck_assert_int_eq(out[0]->shape.rank, 1);
        ck_assert_int_eq(out[0]->shape.dims[0], 2);
        ck_assert_float_eq(pst_tensor_f32(out[0])[0], (float)(2 * k + 1));
        ck_assert_float_eq(pst_tensor_f32(out[0])[1], (float)(2 * k + 2));
        ck_assert_int_eq(out[1]->shape.rank, 0);
        ck_assert_int_eq(pst_tensor_i64(out[1])[0], 20 + 10 * k);
        pst_tensor_unref(out[0]);
        pst_tensor_unref(out[1]);
    }
    pst_tensor *out[2];
    ck_assert_int_eq(pst_session_run(s, &feed, 1, f, 2, NULL, 0, out, &st), PST_E_OUT_OF_RANGE);
    /* A handle no iterator has. */
    pst_tensor *bad = pst_tensor_scalar_str("nope");
    pst_feed bf = {ph, bad};
    st = (pst_status){0};
    ck_assert_int_eq(pst_session_run(s, &bf, 1, f, 2, NULL, 0, out, &st), PST_E_NOT_FOUND);
    ck_assert_msg(strstr(st.msg, "nope"), "%s", st.msg);
    pst_tensor_unref(bad);
    pst_tensor_unref(h);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* Iterator + MakeIterator + IteratorGetNext over dataset ds of one component of type dt. */
typedef struct one {
    pst_session *s;
    pst_node *init, *next;
} one_t;

static one_t iterate(pst_graph *g, pst_output ds, pst_dtype dt) {
    one_t o = {0};
    pst_node_builder *b = pst_nb_new(g, "Iterator", NULL);
    pst_nb_attr_list_type(b, "output_types", 1, &dt);
    pst_output it = pst_nb_finish_out(b);
    b = pst_nb_new(g, "MakeIterator", NULL);
    pst_nb_input(b, ds);
    pst_nb_input(b, it);
    o.init = pst_nb_finish(b);
    b = pst_nb_new(g, "IteratorGetNext", NULL);
    pst_nb_input(b, it);
    pst_nb_attr_list_type(b, "output_types", 1, &dt);
    o.next = pst_nb_finish(b);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    o.s = pst_session_new(g, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(o.s, o.init, &st), 0);
    return o;
}

/* The next element (caller unrefs) or NULL at OutOfRange (any other error fails). */
static pst_tensor *one_next(one_t *o) {
    pst_status st = {0};
    pst_tensor *t = pst_session_run1(o->s, pst_out(o->next, 0), &st);
    if (t == NULL) ck_assert_msg(st.code == PST_E_OUT_OF_RANGE, "%s", st.msg);
    return t;
}

static void expect_strings(one_t *o, int n, const char *const *want) {
    for (int i = 0; i < n; i++) {
        pst_tensor *t = one_next(o);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(t->shape.rank, 0);
        ck_assert_str_eq(pst_tensor_str(t)->p ? pst_tensor_str(t)->p : "", want[i]);
        pst_tensor_unref(t);
    }
    ck_assert_ptr_null(one_next(o));
}

START_TEST(test_text_line_and_fixed_length) {
    pst_io_ops_init();
    char path[] = "/tmp/pst_tfdata_txt_XXXXXX";
    pst_test_tmp_file(path);
    FILE *f = fopen(path, "wb");
    fputs("a\nbb\r\nccc", f);
    fclose(f);
    pst_graph *g = pst_graph_new();
    const char *files[1] = {path};
    pst_node_builder *b = pst_nb_new(g, "TextLineDataset", NULL);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_strs(1, files), "f"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str(""), "c"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(0), "b"));
    one_t o = iterate(g, pst_nb_finish_out(b), PST_STRING);
    expect_strings(&o, 3, (const char *const[]){"a", "bb", "ccc"});
    pst_session_free(o.s);
    pst_graph_free(g);
    f = fopen(path, "wb");
    fputs("HHabcdefF", f);
    fclose(f);
    g = pst_graph_new();
    b = pst_nb_new(g, "FixedLengthRecordDataset", NULL);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_strs(1, files), "f"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(2), "h"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(3), "r"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(1), "t"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(0), "b"));
    o = iterate(g, pst_nb_finish_out(b), PST_STRING);
    expect_strings(&o, 2, (const char *const[]){"abc", "def"});
    pst_session_free(o.s);
    pst_graph_free(g);
    /* The session's file override: a text dataset naming a file that does not exist reads
     * the override instead (a new session, the override set before its initializer runs). */
    g = pst_graph_new();
    const char *nowhere[1] = {"/nonexistent/lines.csv"};
    b = pst_nb_new(g, "TextLineDataset", NULL);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_strs(1, nowhere), "f"));
    pst_output ds = pst_nb_finish_out(b);
    pst_status st = {0};
    pst_session *s0 = pst_session_new(g, NULL, &st);
    ck_assert_int_lt(pst_tf_data_set_file(pst_session_vars(s0), "NoSuchDataset", path, &st), 0);
    ck_assert_msg(strstr(st.msg, "NoSuchDataset"), "%s", st.msg);
    pst_session_free(s0);
    f = fopen(path, "wb");
    fputs("x,1\ny,2\n", f);
    fclose(f);
    pst_node_builder *ib = pst_nb_new(g, "Iterator", NULL);
    pst_dtype stt = PST_STRING;
    pst_nb_attr_list_type(ib, "output_types", 1, &stt);
    pst_output it = pst_nb_finish_out(ib);
    ib = pst_nb_new(g, "MakeIterator", NULL);
    pst_nb_input(ib, ds);
    pst_nb_input(ib, it);
    o.init = pst_nb_finish(ib);
    ib = pst_nb_new(g, "IteratorGetNext", NULL);
    pst_nb_input(ib, it);
    pst_nb_attr_list_type(ib, "output_types", 1, &stt);
    o.next = pst_nb_finish(ib);
    o.s = pst_session_new(g, NULL, &st);
    ck_assert_int_eq(pst_tf_data_set_file(pst_session_vars(o.s), "TextLineDataset", path, &st), 0);
    ck_assert_int_eq(pst_session_run_target(o.s, o.init, &st), 0);
    expect_strings(&o, 2, (const char *const[]){"x,1", "y,2"});
    pst_session_free(o.s);
    pst_graph_free(g);
    unlink(path);
}
END_TEST

/* range(1, 5) -> map(n -> fill([n], 7.0)) -> padded_batch(2, [-1], 0.0) [-> unbatch]. */
START_TEST(test_padded_batch_and_unbatch) {
    pst_io_ops_init();
    for (int unbatch = 0; unbatch < 2; unbatch++) {
        pst_graph *g = pst_graph_new();
        pst_graph *body = pst_graph_new();
        pst_graph_set_library_parent(body, g);
        pst_output n = pst_placeholder(body, "n", PST_INT64, pst_shape_unknown());
        pst_node_builder *b = pst_nb_new(body, "ExpandDims", "dims");
        pst_nb_input(b, n);
        pst_nb_input(b, pst_test_const(body, pst_tensor_scalar_i32(0), "axis"));
        pst_output dims = pst_nb_finish_out(b);
        b = pst_nb_new(body, "Fill", "fill");
        pst_nb_input(b, dims);
        pst_nb_input(b, pst_test_const(body, pst_tensor_scalar_f32(7), "seven"));
        pst_output fill = pst_nb_finish_out(b);
        ck_assert_msg(!pst_graph_error(body), "%s", pst_graph_status(body)->msg);
        ck_assert_int_eq(pst_graph_add_function(g, "fill", body, 1, &n.node, NULL, 1, &fill), 0);
        pst_dtype it = PST_INT64, ft = PST_FLOAT;
        b = pst_nb_new(g, "RangeDataset", NULL);
        pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(1), "start"));
        pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(5), "stop"));
        pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(1), "step"));
        pst_nb_attr_list_type(b, "output_types", 1, &it);
        pst_output ds = pst_nb_finish_out(b);
        b = pst_nb_new(g, "MapDataset", NULL);
        pst_nb_input(b, ds);
        pst_nb_attr_s(b, "f", "fill");
        pst_nb_attr_list_type(b, "output_types", 1, &ft);
        ds = pst_nb_finish_out(b);
        b = pst_nb_new(g, "PaddedBatchDatasetV2", NULL);
        pst_nb_input(b, ds);
        pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(2), "batch"));
        int64_t minus1 = -1;
        pst_nb_input(b, pst_test_const(g, pst_tensor_from_i64(pst_shape_1d(1), &minus1), "ps"));
        pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_f32(0), "pv"));
        pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_bool(0), "drop"));
        pst_nb_attr_list_type(b, "Toutput_types", 1, &ft);
        ds = pst_nb_finish_out(b);
        if (unbatch) {
            b = pst_nb_new(g, "UnbatchDataset", NULL);
            pst_nb_input(b, ds);
            pst_nb_attr_list_type(b, "output_types", 1, &ft);
            ds = pst_nb_finish_out(b);
        }
        one_t o = iterate(g, ds, PST_FLOAT);
        static const float want[2][2][4] = {{{7, 0}, {7, 7}}, {{7, 7, 7, 0}, {7, 7, 7, 7}}};
        for (int k = 0; k < 2; k++) {
            int w = 2 * (k + 1);
            for (int r = 0; r < (unbatch ? 2 : 1); r++) {
                pst_tensor *t = one_next(&o);
                ck_assert_ptr_nonnull(t);
                ck_assert_int_eq(t->shape.rank, unbatch ? 1 : 2);
                if (!unbatch) ck_assert_int_eq(t->shape.dims[0], 2);
                ck_assert_int_eq(t->shape.dims[t->shape.rank - 1], w);
                for (int64_t i = 0; i < t->n; i++)
                    ck_assert_float_eq(pst_tensor_f32(t)[i],
                                       want[k][unbatch ? r : i / w][i % w]);
                pst_tensor_unref(t);
            }
        }
        ck_assert_ptr_null(one_next(&o));
        pst_session_free(o.s);
        pst_graph_free(g);
    }
}
END_TEST

/* shuffle(reshuffle) -> cache -> repeat(2): the second pass replays the first's order. */
START_TEST(test_cache_replays_first_pass) {
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    pst_dtype it = PST_INT64;
    pst_node_builder *b = pst_nb_new(g, "RangeDataset", NULL);
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(0), "start"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(20), "stop"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(1), "step"));
    pst_nb_attr_list_type(b, "output_types", 1, &it);
    pst_output ds = pst_nb_finish_out(b);
    b = pst_nb_new(g, "ShuffleDataset", NULL);
    pst_nb_input(b, ds);
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(20), "buf"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(3), "seed"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(4), "seed2"));
    ds = pst_nb_finish_out(b);
    b = pst_nb_new(g, "CacheDataset", NULL);
    pst_nb_input(b, ds);
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str(""), "filename"));
    ds = pst_nb_finish_out(b);
    b = pst_nb_new(g, "RepeatDataset", NULL);
    pst_nb_input(b, ds);
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(2), "count"));
    ds = pst_nb_finish_out(b);
    one_t o = iterate(g, ds, PST_INT64);
    int64_t first[20];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 20; i++) {
            pst_tensor *t = one_next(&o);
            ck_assert_ptr_nonnull(t);
            if (pass == 0) first[i] = pst_tensor_i64(t)[0];
            else ck_assert_int_eq(pst_tensor_i64(t)[0], first[i]);
            pst_tensor_unref(t);
        }
    ck_assert(is_permutation(first, 20));
    ck_assert_ptr_null(one_next(&o));
    pst_session_free(o.s);
    pst_graph_free(g);
}
END_TEST

/* interleave(cycle 2, block 1) over two record files, each read by a TFRecordDataset the
 * function makes from its file name; then map(parse) -> batch(1). */
START_TEST(test_interleave_files) {
    char p1[] = "/tmp/pst_tfdata_i1_XXXXXX", p2[] = "/tmp/pst_tfdata_i2_XXXXXX";
    pst_test_tmp_file(p1);
    pst_test_tmp_file(p2);
    write_records(p1, 3);  /* y 0 1 2 */
    write_records(p2, 1);  /* y 0 */
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    add_parse_function(g);
    pst_graph *body = pst_graph_new();
    pst_graph_set_library_parent(body, g);
    pst_output fname = pst_placeholder(body, "fname", PST_STRING, pst_shape_unknown());
    pst_node_builder *b = pst_nb_new(body, "TFRecordDataset", "records");
    pst_nb_input(b, fname);
    pst_output rec = pst_nb_finish_out(b);
    ck_assert_msg(rec.node != NULL, "%s", pst_graph_status(body)->msg);
    ck_assert_int_eq(pst_graph_add_function(g, "open", body, 1, &fname.node, NULL, 1, &rec), 0);
    const char *files[2] = {p1, p2};
    pst_dtype stt = PST_STRING;
    b = pst_nb_new(g, "TensorSliceDataset", NULL);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_strs(2, files), "files"));
    pst_nb_attr_list_type(b, "Toutput_types", 1, &stt);
    pst_output ds = pst_nb_finish_out(b);
    b = pst_nb_new(g, "InterleaveDataset", NULL);
    pst_nb_input(b, ds);
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(2), "cycle"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(1), "block"));
    pst_nb_attr_s(b, "f", "open");
    pst_nb_attr_list_type(b, "Targuments", 0, NULL);
    pst_nb_attr_list_type(b, "output_types", 1, &stt);
    ds = pst_nb_finish_out(b);
    ds = map_parse(g, ds);
    pst_output one = pst_test_const(g, pst_tensor_scalar_i64(1), "one");
    ds = ds_node(g, "BatchDataset", "batch1", ds, 1, &one, 1);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    pipe_t p = {.g = g};
    attach_iterator(&p, ds);
    init(&p);
    /* file 1's 0, file 2's 0, file 1's 1, (file 2 ended) file 1's 2. */
    static const int64_t want[4] = {0, 0, 1, 2};
    int64_t ys[2];
    int rc;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(next_batch(&p, ys, &rc), 1);
        ck_assert_int_eq(ys[0], want[i]);
    }
    ck_assert_int_eq(next_batch(&p, ys, &rc), 0);
    ck_assert_int_eq(rc, PST_E_OUT_OF_RANGE);
    pipe_free(&p);
    unlink(p1);
    unlink(p2);
}
END_TEST

/* make_one_shot_iterator: the dataset function (its own Const file name, a map calling another
 * function of the library) runs on first use; the session's records override points it at the
 * test's file. */
START_TEST(test_one_shot_iterator_with_records_override) {
    char path[] = "/tmp/pst_tfdata_os_XXXXXX";
    pst_test_tmp_file(path);
    write_records(path, 5);
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    add_parse_function(g);
    pst_graph *body = pst_graph_new();
    pst_graph_set_library_parent(body, g);
    const char *nowhere = "C:\\data\\train.tfrecord";
    pst_node_builder *b = pst_nb_new(body, "TFRecordDataset", "records");
    pst_nb_input(b, pst_test_const(body, pst_tensor_from_strs(1, &nowhere), "files"));
    pst_output ds = pst_nb_finish_out(b);
    ds = map_parse(body, ds);
    pst_output two = pst_test_const(body, pst_tensor_scalar_i64(2), "two");
    pst_output bd = ds_node(body, "BatchDataset", "batch", ds, 1, &two, 1);
    ck_assert_msg(!pst_graph_error(body), "%s", pst_graph_status(body)->msg);
    ck_assert_int_eq(pst_graph_add_function(g, "make_dataset", body, 0, NULL, NULL, 1, &bd), 0);
    b = pst_nb_new(g, "OneShotIterator", "one_shot");
    pst_nb_attr_s(b, "dataset_factory", "make_dataset");
    ds_attrs(b, 1);
    pst_output itr = pst_nb_finish_out(b);
    ck_assert_msg(itr.node != NULL, "%s", pst_graph_status(g)->msg);
    b = pst_nb_new(g, "IteratorGetNext", "gn");
    pst_nb_input(b, itr);
    ds_attrs(b, 1);
    pipe_t p = {.g = g, .next = pst_nb_finish(b)};
    pst_status st = {0};
    p.s = pst_session_new(g, NULL, &st);
    /* Without the override: the missing file, named. */
    pst_tensor *x, *y;
    ck_assert_int_lt(get_next(&p, &x, &y, &st), 0);
    ck_assert_msg(strstr(st.msg, nowhere), "%s", st.msg);
    pst_session_free(p.s);
    p.s = pst_session_new(g, NULL, &st);
    ck_assert_int_eq(pst_tf_data_set_file(pst_session_vars(p.s), "TFRecordDataset", path, &st), 0);
    int64_t ys[4];
    int rc;
    ck_assert_int_eq(next_batch(&p, ys, &rc), 2);
    ck_assert_int_eq(ys[0], 0);
    ck_assert_int_eq(next_batch(&p, ys, &rc), 2);
    ck_assert_int_eq(next_batch(&p, ys, &rc), 1);
    ck_assert_int_eq(ys[0], 4);
    ck_assert_int_eq(next_batch(&p, ys, &rc), 0);
    ck_assert_int_eq(rc, PST_E_OUT_OF_RANGE);
    pipe_free(&p);
    unlink(path);
}
END_TEST

/* A library function whose body holds an op pstrain lacks: the graph still imports (the
 * function is kept as broken), the missing-ops list names the op, and running the dataset that
 * calls it fails naming the function, the node and the op. */
START_TEST(test_broken_function_named_when_run) {
    Tensorflow__MetaGraphDef mg = TENSORFLOW__META_GRAPH_DEF__INIT;
    Tensorflow__GraphDef gd = TENSORFLOW__GRAPH_DEF__INIT;
    Tensorflow__FunctionDefLibrary lib = TENSORFLOW__FUNCTION_DEF_LIBRARY__INIT;
    Tensorflow__FunctionDef fd = TENSORFLOW__FUNCTION_DEF__INIT;
    Tensorflow__OpDef sig = TENSORFLOW__OP_DEF__INIT;
    Tensorflow__OpDef__ArgDef in = TENSORFLOW__OP_DEF__ARG_DEF__INIT, out = in;
    Tensorflow__NodeDef body = TENSORFLOW__NODE_DEF__INIT;
    Tensorflow__FunctionDef__RetEntry ret = TENSORFLOW__FUNCTION_DEF__RET_ENTRY__INIT;
    in.name = "arg0", in.type = TENSORFLOW__DATA_TYPE__DT_STRING;
    out.name = "out", out.type = TENSORFLOW__DATA_TYPE__DT_FLOAT;
    Tensorflow__OpDef__ArgDef *ins[1] = {&in}, *outs[1] = {&out};
    sig.name = "bad_fn", sig.n_input_arg = 1, sig.input_arg = ins;
    sig.n_output_arg = 1, sig.output_arg = outs;
    char *body_in[1] = {"arg0"};
    body.name = "decode", body.op = "NoSuchDecodeOp", body.n_input = 1, body.input = body_in;
    Tensorflow__NodeDef *nodes[1] = {&body};
    ret.key = "out", ret.value = "decode:y:0";
    Tensorflow__FunctionDef__RetEntry *rets[1] = {&ret};
    fd.signature = &sig, fd.n_node_def = 1, fd.node_def = nodes, fd.n_ret = 1, fd.ret = rets;
    Tensorflow__FunctionDef *fds[1] = {&fd};
    lib.n_function = 1, lib.function = fds;
    gd.library = &lib;
    mg.graph_def = &gd;
    size_t len = tensorflow__meta_graph_def__get_packed_size(&mg);
    uint8_t *buf = malloc(len + 1);
    tensorflow__meta_graph_def__pack(&mg, buf);
    char path[] = "/tmp/pst_tfdata_bad_XXXXXX";
    pst_test_tmp_file(path);
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    pst_status st = {0};
    char **missing;
    int n_missing;
    ck_assert_int_eq(pst_imported_missing_ops_of(path, &missing, &n_missing, &st), 0);
    ck_assert_int_eq(n_missing, 1);
    ck_assert_str_eq(missing[0], "NoSuchDecodeOp");
    free(missing[0]);
    free(missing);
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    ck_assert_msg(pst_meta_graph_import(g, buf, len, NULL, &st) == 0, "%s", st.msg);
    const pst_function *fn = pst_graph_function(g, "bad_fn");
    ck_assert_ptr_nonnull(fn);
    ck_assert_msg(fn->error && strstr(fn->error, "decode") && strstr(fn->error, "NoSuchDecodeOp"),
                  "%s", fn->error ? fn->error : "(no error)");
    /* A dataset mapping it builds; running it fails with the function's error. */
    const char *names[1] = {"x"};
    pst_dtype stt = PST_STRING, ft = PST_FLOAT;
    pst_node_builder *b = pst_nb_new(g, "TensorSliceDataset", NULL);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_strs(1, names), "names"));
    pst_nb_attr_list_type(b, "Toutput_types", 1, &stt);
    pst_output ds = pst_nb_finish_out(b);
    b = pst_nb_new(g, "MapDataset", "map_bad");
    pst_nb_input(b, ds);
    pst_nb_attr_s(b, "f", "bad_fn");
    pst_nb_attr_list_type(b, "output_types", 1, &ft);
    ds = pst_nb_finish_out(b);
    ck_assert_msg(ds.node != NULL, "%s", pst_graph_status(g)->msg);
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_int_lt(pst_session_run(s, NULL, 0, &ds, 1, NULL, 0, (pst_tensor *[1]){NULL}, &st), 0);
    ck_assert_msg(strstr(st.msg, "map_bad") && strstr(st.msg, "bad_fn") &&
                  strstr(st.msg, "NoSuchDecodeOp"), "%s", st.msg);
    pst_session_free(s);
    pst_graph_free(g);
    free(buf);
    unlink(path);
}
END_TEST

static pst_output range_ds(pst_graph *g, int64_t a, int64_t b) {
    pst_dtype it = PST_INT64;
    pst_node_builder *nb = pst_nb_new(g, "RangeDataset", NULL);
    pst_nb_input(nb, pst_test_const(g, pst_tensor_scalar_i64(a), "start"));
    pst_nb_input(nb, pst_test_const(g, pst_tensor_scalar_i64(b), "stop"));
    pst_nb_input(nb, pst_test_const(g, pst_tensor_scalar_i64(1), "step"));
    pst_nb_attr_list_type(nb, "output_types", 1, &it);
    return pst_nb_finish_out(nb);
}

/* range(10).shard(3, 1): 1, 4, 7. DatasetToSingleElement of one element, and of two (an
 * error). */
START_TEST(test_shard_and_single_element) {
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "ShardDataset", NULL);
    pst_nb_input(b, range_ds(g, 0, 10));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(3), "n"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(1), "i"));
    one_t o = iterate(g, pst_nb_finish_out(b), PST_INT64);
    for (int k = 0; k < 3; k++) {
        pst_tensor *t = one_next(&o);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(pst_tensor_i64(t)[0], 1 + 3 * k);
        pst_tensor_unref(t);
    }
    ck_assert_ptr_null(one_next(&o));
    pst_session_free(o.s);
    pst_dtype it = PST_INT64;
    b = pst_nb_new(g, "DatasetToSingleElement", "single");
    pst_nb_input(b, range_ds(g, 5, 6));
    pst_nb_attr_list_type(b, "output_types", 1, &it);
    pst_output one = pst_nb_finish_out(b);
    b = pst_nb_new(g, "DatasetToSingleElement", "two");
    pst_nb_input(b, range_ds(g, 5, 7));
    pst_nb_attr_list_type(b, "output_types", 1, &it);
    pst_output two = pst_nb_finish_out(b);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *t = pst_session_run1(s, one, &st);
    ck_assert_msg(t != NULL, "%s", st.msg);
    ck_assert_int_eq(pst_tensor_i64(t)[0], 5);
    pst_tensor_unref(t);
    ck_assert_ptr_null(pst_session_run1(s, two, &st));
    ck_assert_msg(strstr(st.msg, "more than one element"), "%s", st.msg);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* Adds a train op to g (an Assign of sum(x) to a variable, in the train_op collection),
 * exports it as a .meta, frees g and runs `pstrain meta check` on it for 3 steps: its output
 * (static) after asserting it passed. */
static const char *meta_check_sum_of(pst_graph *g, pst_output x) {
    pst_output v = pst_variable(g, "total", pst_const_f32(g, 0, "zero"), 0);
    pst_output sum = pst_reduce_sum(g, x, 0, NULL, 0, NULL);
    pst_graph_add_to_collection(g, PST_TRAIN_OP, pst_assign(g, v, sum, "train"));
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    char path[] = "/tmp/pst_tfdata_meta_XXXXXX";
    pst_test_tmp_file(path);
    pst_status st = {0};
    ck_assert_msg(pst_meta_graph_write(g, &(pst_meta_export_opts){0}, path, &st) == 0, "%s",
                  st.msg);
    pst_graph_free(g);
    const char *bin = getenv("PST_BINARY_DIR");
    char cmd[5000];
    static char out[16384];
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain meta check %s --steps 3 2>&1",
             bin ? bin : ".", path);
    ck_assert_msg(pst_test_run_command(cmd, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "train_step: ok (train op 'train'"), "%s", out);
    unlink(path);
    return out;
}

/* Dataset.from_tensor_slices((x, y)) of placeholders, fed at initialization (the usual TF 1
 * pattern: sess.run(iterator.initializer, feed_dict=...)): pstrain meta check feeds them
 * synthetic rows, initializes the iterator and runs the train op (an Assign of sum(x)) from
 * it. */
START_TEST(test_meta_check_feeds_initializer_placeholders) {
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_2d(-1, 3));
    pst_output y = pst_placeholder(g, "y", PST_INT64, pst_shape_1d(-1));
    pst_node_builder *b = pst_nb_new(g, "TensorSliceDataset", "slices");
    pst_nb_input(b, x);
    pst_nb_input(b, y);
    pst_nb_attr_list_type(b, "Toutput_types", 2, xy_types);
    pst_output ds = pst_nb_finish_out(b);
    pst_output four = pst_test_const(g, pst_tensor_scalar_i64(4), "four");
    ds = ds_node(g, "BatchDataset", "batch", ds, 1, &four, 1);
    pst_output forever = pst_test_const(g, pst_tensor_scalar_i64(-1), "forever");
    ds = ds_node(g, "RepeatDataset", "repeat", ds, 1, &forever, 1);
    pipe_t p = {.g = g};
    attach_iterator(&p, ds);
    pst_session_free(p.s);
    const char *out = meta_check_sum_of(g, pst_out(p.next, 0));
    ck_assert_msg(strstr(out, "tf.data pipeline"), "%s", out);
}
END_TEST

/* ds (strings) -> batch(2) -> Iterator "it" with its MakeIterator "init": the batches
 * IteratorGetNext "next" gives. */
static pst_output string_batches(pst_graph *g, pst_output ds) {
    pst_dtype stt = PST_STRING;
    pst_node_builder *b = pst_nb_new(g, "BatchDataset", "batch");
    pst_nb_input(b, ds);
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(2), "two"));
    pst_nb_attr_list_type(b, "output_types", 1, &stt);
    ds = pst_nb_finish_out(b);
    b = pst_nb_new(g, "Iterator", "it");
    pst_nb_attr_list_type(b, "output_types", 1, &stt);
    pst_output it = pst_nb_finish_out(b);
    b = pst_nb_new(g, "MakeIterator", "init");
    pst_nb_input(b, ds);
    pst_nb_input(b, it);
    pst_nb_finish(b);
    b = pst_nb_new(g, "IteratorGetNext", "next");
    pst_nb_input(b, it);
    pst_nb_attr_list_type(b, "output_types", 1, &stt);
    pst_shape vs = pst_shape_1d(-1);
    pst_nb_attr_list_shape(b, "output_shapes", 1, &vs);
    return pst_nb_finish_out(b);
}

/* TextLineDataset of a CSV file the graph names (absent here) -> batch(2) -> iterator ->
 * DecodeCSV(float, int32): pstrain meta check writes synthetic lines of 2 columns and points
 * the dataset at them. */
START_TEST(test_meta_check_text_dataset_synthetic_lines) {
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    const char *nowhere[1] = {"C:\\data\\iris.csv"};
    pst_node_builder *b = pst_nb_new(g, "TextLineDataset", "lines");
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_strs(1, nowhere), "files"));
    pst_output lines = string_batches(g, pst_nb_finish_out(b));
    b = pst_nb_new(g, "DecodeCSV", "csv");
    pst_nb_input(b, lines);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_f32(pst_shape_1d(1), (float[]){0}), "d0"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_i32(pst_shape_1d(1), (int32_t[]){0}), "d1"));
    pst_dtype ot[2] = {PST_FLOAT, PST_INT32};
    pst_nb_attr_list_type(b, "OUT_TYPE", 2, ot);
    pst_node *csv = pst_nb_finish(b);
    ck_assert_msg(csv != NULL, "%s", pst_graph_status(g)->msg);
    meta_check_sum_of(g, pst_out(csv, 0));
}
END_TEST

/* TFRecordDataset(MatchingFiles(a pattern that matches nothing here)) -> batch(2) ->
 * iterator -> ParseExample(x float [3]): pstrain meta check feeds the pattern's matches with
 * its synthetic records, holding the feature the ParseExample after the iterator wants. */
START_TEST(test_meta_check_matching_files_and_parse_after_iterator) {
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "MatchingFiles", "list_files");
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str("C:\\data\\train-*.tfrecord"), "pattern"));
    pst_output files = pst_nb_finish_out(b);
    b = pst_nb_new(g, "TFRecordDataset", "records");
    pst_nb_input(b, files);
    pst_output recs = string_batches(g, pst_nb_finish_out(b));
    b = pst_nb_new(g, "ParseExample", "parse");
    pst_nb_input(b, recs);
    pst_nb_input(b, pst_test_const(g, pst_tensor_from_strs(0, NULL), "names"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_str("x"), "key"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_new_zeros(PST_FLOAT, pst_shape_1d(0), NULL), "dflt"));
    pst_nb_attr_i(b, "Nsparse", 0);
    pst_nb_attr_i(b, "Ndense", 1);
    pst_dtype ft = PST_FLOAT;
    pst_nb_attr_list_type(b, "Tdense", 1, &ft);
    pst_shape three = pst_shape_1d(3);
    pst_nb_attr_list_shape(b, "dense_shapes", 1, &three);
    pst_nb_attr_list_type(b, "sparse_types", 0, NULL);
    pst_node *parse = pst_nb_finish(b);
    ck_assert_msg(parse != NULL, "%s", pst_graph_status(g)->msg);
    const char *out = meta_check_sum_of(g, pst_out(parse, 0));
    ck_assert_msg(strstr(out, "of 1 features"), "%s", out);
}
END_TEST

/* The feedable-iterator pattern: the train op reads IteratorFromStringHandle(a string
 * placeholder); pstrain meta check initializes the iterator named "train..." and feeds its
 * string handle to the placeholder (the other iterator, "valid...", is left alone). */
START_TEST(test_meta_check_feeds_string_handle) {
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    pst_dtype ft = PST_FLOAT;
    const char *names[2] = {"valid", "train"};
    for (int k = 0; k < 2; k++) {
        char nm[64];
        float v[4] = {1, 2, 3, 4};
        pst_node_builder *b = pst_nb_new(g, "TensorSliceDataset", NULL);
        /* valid's dataset is empty: reading it would end the first step. */
        pst_nb_input(b, pst_test_const(g, pst_tensor_from_f32(pst_shape_1d(k ? 4 : 0), v), NULL));
        pst_nb_attr_list_type(b, "Toutput_types", 1, &ft);
        pst_output ds = pst_nb_finish_out(b);
        snprintf(nm, sizeof nm, "%s_iterator", names[k]);
        b = pst_nb_new(g, "IteratorV2", nm);
        pst_nb_attr_list_type(b, "output_types", 1, &ft);
        pst_output it = pst_nb_finish_out(b);
        b = pst_nb_new(g, "MakeIterator", NULL);
        pst_nb_input(b, ds);
        pst_nb_input(b, it);
        pst_nb_finish(b);
        b = pst_nb_new(g, "IteratorToStringHandle", NULL);
        pst_nb_input(b, it);
        pst_nb_finish(b);
    }
    pst_output h = pst_placeholder(g, "handle", PST_STRING, pst_shape_scalar());
    pst_node_builder *b = pst_nb_new(g, "IteratorFromStringHandleV2", NULL);
    pst_nb_input(b, h);
    pst_nb_attr_list_type(b, "output_types", 1, &ft);
    pst_output fh = pst_nb_finish_out(b);
    b = pst_nb_new(g, "IteratorGetNext", NULL);
    pst_nb_input(b, fh);
    pst_nb_attr_list_type(b, "output_types", 1, &ft);
    pst_shape sc = pst_shape_scalar();
    pst_nb_attr_list_shape(b, "output_shapes", 1, &sc);
    pst_output x = pst_nb_finish_out(b);
    const char *out = meta_check_sum_of(g, x);
    ck_assert_msg(strstr(out, "(1 iterators)"), "%s", out);
}
END_TEST

static Tensorflow__NodeDef__AttrEntry *attr_entry(const char *key, Tensorflow__AttrValue *v) {
    Tensorflow__NodeDef__AttrEntry *e = calloc(1, sizeof *e);
    tensorflow__node_def__attr_entry__init(e);
    e->key = (char *)key;
    e->value = v;
    return e;
}

/* A library function double_it(x) = x + x, called two ways: a node whose op is the function's
 * name (a Defun) and a PartitionedCall naming it in `f`; both give 2x. */
START_TEST(test_function_calls) {
    Tensorflow__OpDef sig = TENSORFLOW__OP_DEF__INIT;
    Tensorflow__OpDef__ArgDef in = TENSORFLOW__OP_DEF__ARG_DEF__INIT, out = in;
    in.name = "x", in.type = TENSORFLOW__DATA_TYPE__DT_FLOAT;
    out.name = "y", out.type = TENSORFLOW__DATA_TYPE__DT_FLOAT;
    Tensorflow__OpDef__ArgDef *ins[1] = {&in}, *outs[1] = {&out};
    sig.name = "double_it", sig.n_input_arg = 1, sig.input_arg = ins;
    sig.n_output_arg = 1, sig.output_arg = outs;
    Tensorflow__AttrValue tfloat = TENSORFLOW__ATTR_VALUE__INIT;
    tfloat.value_case = TENSORFLOW__ATTR_VALUE__VALUE_TYPE, tfloat.type = TENSORFLOW__DATA_TYPE__DT_FLOAT;
    Tensorflow__NodeDef add = TENSORFLOW__NODE_DEF__INIT;
    char *add_in[2] = {"x", "x"};
    Tensorflow__NodeDef__AttrEntry *add_attrs[1] = {attr_entry("T", &tfloat)};
    add.name = "add", add.op = "Add", add.n_input = 2, add.input = add_in;
    add.n_attr = 1, add.attr = add_attrs;
    Tensorflow__NodeDef *body[1] = {&add};
    Tensorflow__FunctionDef__RetEntry ret = TENSORFLOW__FUNCTION_DEF__RET_ENTRY__INIT;
    ret.key = "y", ret.value = "add:z:0";
    Tensorflow__FunctionDef__RetEntry *rets[1] = {&ret};
    Tensorflow__FunctionDef fd = TENSORFLOW__FUNCTION_DEF__INIT;
    fd.signature = &sig, fd.n_node_def = 1, fd.node_def = body, fd.n_ret = 1, fd.ret = rets;
    Tensorflow__FunctionDef *fds[1] = {&fd};
    Tensorflow__FunctionDefLibrary lib = TENSORFLOW__FUNCTION_DEF_LIBRARY__INIT;
    lib.n_function = 1, lib.function = fds;
    /* p = placeholder float [2]; call = double_it(p); pc = PartitionedCall(p, f=double_it) */
    Tensorflow__TensorShapeProto__Dim dim = TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT;
    dim.size = 2;
    Tensorflow__TensorShapeProto__Dim *dims[1] = {&dim};
    Tensorflow__TensorShapeProto shp = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    shp.n_dim = 1, shp.dim = dims;
    Tensorflow__AttrValue shape = TENSORFLOW__ATTR_VALUE__INIT;
    shape.value_case = TENSORFLOW__ATTR_VALUE__VALUE_SHAPE, shape.shape = &shp;
    Tensorflow__NodeDef ph = TENSORFLOW__NODE_DEF__INIT;
    Tensorflow__NodeDef__AttrEntry *ph_attrs[2] = {attr_entry("dtype", &tfloat),
                                                   attr_entry("shape", &shape)};
    ph.name = "p", ph.op = "Placeholder", ph.n_attr = 2, ph.attr = ph_attrs;
    char *call_in[1] = {"p"};
    Tensorflow__NodeDef call = TENSORFLOW__NODE_DEF__INIT;
    call.name = "call", call.op = "double_it", call.n_input = 1, call.input = call_in;
    Tensorflow__NameAttrList fname = TENSORFLOW__NAME_ATTR_LIST__INIT;
    fname.name = "double_it";
    Tensorflow__AttrValue fattr = TENSORFLOW__ATTR_VALUE__INIT;
    fattr.value_case = TENSORFLOW__ATTR_VALUE__VALUE_FUNC, fattr.func = &fname;
    Tensorflow__DataType types[1] = {TENSORFLOW__DATA_TYPE__DT_FLOAT};
    Tensorflow__AttrValue__ListValue tl = TENSORFLOW__ATTR_VALUE__LIST_VALUE__INIT;
    tl.n_type = 1, tl.type = types;
    Tensorflow__AttrValue tlist = TENSORFLOW__ATTR_VALUE__INIT;
    tlist.value_case = TENSORFLOW__ATTR_VALUE__VALUE_LIST, tlist.list = &tl;
    Tensorflow__NodeDef__AttrEntry *pc_attrs[3] = {attr_entry("f", &fattr),
                                                   attr_entry("Tin", &tlist),
                                                   attr_entry("Tout", &tlist)};
    Tensorflow__NodeDef pc = TENSORFLOW__NODE_DEF__INIT;
    pc.name = "pc", pc.op = "PartitionedCall", pc.n_input = 1, pc.input = call_in;
    pc.n_attr = 3, pc.attr = pc_attrs;
    Tensorflow__NodeDef *nodes[3] = {&ph, &call, &pc};
    Tensorflow__GraphDef gd = TENSORFLOW__GRAPH_DEF__INIT;
    gd.n_node = 3, gd.node = nodes, gd.library = &lib;
    size_t len = tensorflow__graph_def__get_packed_size(&gd);
    uint8_t *buf = malloc(len + 1);
    tensorflow__graph_def__pack(&gd, buf);
    for (int i = 0; i < 2; i++) free(ph_attrs[i]);
    for (int i = 0; i < 3; i++) free(pc_attrs[i]);
    free(add_attrs[0]);
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    ck_assert_msg(pst_graph_def_import(g, buf, len, NULL, &st) == 0, "%s", st.msg);
    free(buf);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_tensor *v = pst_tensor_from_f32(pst_shape_1d(2), (float[]){1.5f, -2});
    pst_feed feed = {pst_graph_output_by_name(g, "p"), v};
    pst_output f[2] = {pst_graph_output_by_name(g, "call"), pst_graph_output_by_name(g, "pc")};
    ck_assert_ptr_nonnull(f[0].node);
    pst_tensor *o[2];
    for (int run = 0; run < 2; run++) { /* the second run reuses the function's session */
        ck_assert_msg(pst_session_run(s, &feed, 1, f, 2, NULL, 0, o, &st) == 0, "%s", st.msg);
        for (int k = 0; k < 2; k++) {
            ck_assert_float_eq(pst_tensor_f32(o[k])[0], 3.0f);
            ck_assert_float_eq(pst_tensor_f32(o[k])[1], -4.0f);
            pst_tensor_unref(o[k]);
        }
    }
    pst_tensor_unref(v);
    pst_session_free(s);
    /* Exported, the library goes back as imported and the Defun call as a node named by the
     * function: the export imports into the same graph, which computes the same. */
    uint8_t *eb;
    size_t el;
    ck_assert_msg(pst_graph_def_export(g, 0, &eb, &el, &st) == 0, "%s", st.msg);
    pst_graph *g2 = pst_graph_new();
    ck_assert_msg(pst_graph_def_import(g2, eb, el, NULL, &st) == 0, "%s", st.msg);
    free(eb);
    ck_assert_int_eq(pst_graph_num_functions(g2), 1);
    ck_assert_int_eq(pst_graph_num_nodes(g2), pst_graph_num_nodes(g));
    ck_assert_str_eq(pst_graph_find(g2, "call")->op->name, "StatefulPartitionedCall");
    ck_assert_ptr_null(pst_node_attr(pst_graph_find(g2, "call"), "Tout"));
    s = pst_session_new(g2, NULL, &st);
    v = pst_tensor_from_f32(pst_shape_1d(2), (float[]){1, 2});
    feed = (pst_feed){pst_graph_output_by_name(g2, "p"), v};
    f[0] = pst_graph_output_by_name(g2, "call"), f[1] = pst_graph_output_by_name(g2, "pc");
    ck_assert_msg(pst_session_run(s, &feed, 1, f, 2, NULL, 0, o, &st) == 0, "%s", st.msg);
    for (int k = 0; k < 2; k++) {
        ck_assert_float_eq(pst_tensor_f32(o[k])[1], 4.0f);
        pst_tensor_unref(o[k]);
    }
    pst_tensor_unref(v);
    pst_session_free(s);
    pst_graph_free(g2);
    pst_graph_free(g);
}
END_TEST

/* The real graph: TFRecordDataset of 60 Windows paths -> map(parse_single_example of
 * movie_ratings float [3952]) -> shuffle -> repeat -> batch -> prefetch -> Iterator, the
 * autoencoder's Adam train op reading IteratorGetNext. Its dataset reads synthetic records
 * instead; the loss falls over 15 steps. */
START_TEST(test_graph17_trains_from_its_dataset) {
    pst_status st = {0};
    const char *meta = pst_test_data("tf_graphs/17_artem-oppermann_Deep-Autoencoders-For-Collaborative-"
                                "Filtering/model.ckpt.meta");
    pst_imported *m = pst_imported_load(meta, &st);
    ck_assert_msg(m != NULL, "%s", st.msg);
    pst_graph *g = pst_imported_graph(m);
    ck_assert_int_eq(pst_graph_num_functions(g), 1);
    /* Its meta graph exported imports again with the same library (the map function). */
    uint8_t *eb;
    size_t el;
    ck_assert_msg(pst_meta_graph_export(g, NULL, &eb, &el, &st) == 0, "%s", st.msg);
    pst_graph *g2 = pst_graph_new();
    ck_assert_msg(pst_meta_graph_import(g2, eb, el, NULL, &st) == 0, "%s", st.msg);
    free(eb);
    ck_assert_int_eq(pst_graph_num_nodes(g2), pst_graph_num_nodes(g));
    ck_assert_int_eq(pst_graph_num_functions(g2), 1);
    ck_assert_ptr_null(pst_graph_function_at(g2, 0)->error);
    pst_graph_free(g2);
    ck_assert_msg(pst_imported_init(m, &st) == 0, "%s", st.msg);
    pst_node *train = pst_imported_train_op(m, NULL, &st);
    ck_assert_ptr_nonnull(train);
    ck_assert_int_eq(pst_imported_uses_queues(m, &train, 1), 0);
    ck_assert_int_eq(pst_imported_uses_datasets(m, &train, 1), 1);
    char path[] = "/tmp/pst_tfdata_g17_XXXXXX";
    pst_test_tmp_file(path);
    int nfeat = 0;
    ck_assert_msg(pst_imported_synthetic_records(m, path, 64, &nfeat, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(nfeat, 1); /* movie_ratings */
    pst_imported_dataset_input in;
    ck_assert_msg(pst_imported_dataset_inputs(m, &train, 1, path, 0, &in, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(in.n_inits, 1);
    ck_assert_int_eq(in.n_handles, 0);
    ck_assert_int_ge(in.n_feeds, 1);
    ck_assert_msg(pst_imported_run_dataset_inits(m, &in, &st) == 0, "%s", st.msg);
    pst_output loss = pst_imported_loss(m, train);
    ck_assert_ptr_nonnull(loss.node);
    double first = 0, last = 0;
    for (int s = 0; s < 15; s++) {
        pst_tensor *out[1] = {NULL};
        ck_assert_msg(pst_session_run(pst_imported_session(m), NULL, 0, &loss, 1, &train, 1, out,
                                      &st) == 0, "step %d: %s", s, st.msg);
        last = pst_tensor_get_f64(out[0], 0);
        if (s == 0) first = last;
        pst_tensor_unref(out[0]);
    }
    ck_assert_msg(last < first, "loss %g -> %g", first, last);
    pst_imported_dataset_input_free(&in);
    pst_imported_free(m);
    unlink(path);
}
END_TEST

/* The same through the command line: `pstrain meta check` and `pstrain train --records`. */
START_TEST(test_graph17_command_line) {
    const char *bin = getenv("PST_BINARY_DIR");
    char meta[4096], cmd[9000], path[] = "/tmp/pst_tfdata_cli_XXXXXX";
    snprintf(meta, sizeof meta, "%s", pst_test_data("tf_graphs/17_artem-oppermann_Deep-Autoencoders-"
                                               "For-Collaborative-Filtering/model.ckpt.meta"));
    pst_test_tmp_file(path);
    /* Records for --records: movie_ratings of 3952 floats. */
    pst_status st = {0};
    pst_imported *m = pst_imported_load(meta, &st);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(pst_imported_synthetic_records(m, path, 8, NULL, &st), 0);
    pst_imported_free(m);
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain meta check '%s' --steps 2 2>&1",
             bin ? bin : ".", meta);
    static char out[16384];
    ck_assert_msg(pst_test_run_command(cmd, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "import: ok") && strstr(out, "train_step: ok") &&
                  strstr(out, "tf.data pipeline"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain train --meta '%s' --records %s --steps 4 "
             "--print-every 2 2>&1", bin ? bin : ".", meta, path);
    ck_assert_msg(pst_test_run_command(cmd, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "initialized 1 tf.data iterators") && strstr(out, "step 4 loss"),
                  "%s", out);
    unlink(path);
}
END_TEST

/* The int64 elements of ds (one component) through an IteratorV2, until OutOfRange (any other
 * error fails); frees g. Returns how many, at most max into vals. */
static int drain_i64(pst_graph *g, pst_output ds, int64_t *vals, int max) {
    pst_dtype it = PST_INT64;
    pst_node_builder *b = pst_nb_new(g, "IteratorV2", "Iterator");
    pst_nb_attr_list_type(b, "output_types", 1, &it);
    pst_output iter = pst_nb_finish_out(b);
    b = pst_nb_new(g, "MakeIterator", "MakeIterator");
    pst_nb_input(b, ds);
    pst_nb_input(b, iter);
    pst_node *init = pst_nb_finish(b);
    b = pst_nb_new(g, "IteratorGetNext", "next");
    pst_nb_input(b, iter);
    pst_nb_attr_list_type(b, "output_types", 1, &it);
    pst_output next = pst_nb_finish_out(b);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    pst_status st = {0};
    pst_session *s = pst_session_new(g, NULL, &st);
    ck_assert_int_eq(pst_session_run(s, NULL, 0, NULL, 0, &init, 1, NULL, &st), 0);
    int n = 0;
    for (pst_tensor *t; (t = pst_session_run1(s, next, &st)) != NULL; n++) {
        if (n < max)
            vals[n] = pst_tensor_i64(t)[0];
        pst_tensor_unref(t);
    }
    ck_assert_msg(st.code == PST_E_OUT_OF_RANGE, "%s", st.msg);
    /* the end stays the end */
    ck_assert_ptr_null(pst_session_run1(s, next, &st));
    pst_session_free(s);
    pst_graph_free(g);
    return n;
}

/* AutoShardDataset(range(10), 3 workers, index 1) gives 1, 4, 7 (element sharding), through a
 * SleepDataset that passes elements on. */
START_TEST(test_auto_shard_and_sleep) {
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    pst_dtype it = PST_INT64;
    pst_node_builder *b = pst_nb_new(g, "AutoShardDataset", "shard");
    pst_nb_input(b, range_ds(g, 0, 10));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(3), "workers"));
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(1), "index"));
    pst_nb_attr_list_type(b, "output_types", 1, &it);
    pst_nb_attr_i(b, "auto_shard_policy", 0);
    pst_output ds = pst_nb_finish_out(b);
    b = pst_nb_new(g, "SleepDataset", "sleep");
    pst_nb_input(b, ds);
    pst_nb_input(b, pst_test_const(g, pst_tensor_scalar_i64(1000), "us"));
    pst_nb_attr_list_type(b, "output_types", 1, &it);
    int64_t v[4];
    ck_assert_int_eq(drain_i64(g, pst_nb_finish_out(b), v, 4), 3);
    ck_assert(v[0] == 1 && v[1] == 4 && v[2] == 7);
}
END_TEST

/* TakeWhileDataset(range(10), x != 2) gives 0, 1 and ends (FilterDataset would go on at 3). */
START_TEST(test_take_while) {
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    pst_graph *body = pst_graph_new();
    pst_graph_set_library_parent(body, g);
    pst_output arg = pst_placeholder(body, "arg0", PST_INT64, pst_shape_scalar());
    pst_output ne =
        pst_not_equal(body, arg, pst_test_const(body, pst_tensor_scalar_i64(2), "two"), NULL);
    ck_assert_int_eq(pst_graph_add_function(g, "not_two", body, 1, &arg.node, NULL, 1, &ne), 0);
    pst_dtype it = PST_INT64;
    pst_node_builder *b = pst_nb_new(g, "TakeWhileDataset", "take_while");
    pst_nb_input(b, range_ds(g, 0, 10));
    pst_nb_attr_s(b, "predicate", "not_two");
    pst_nb_attr_list_type(b, "Targuments", 0, NULL);
    pst_nb_attr_list_type(b, "output_types", 1, &it);
    int64_t v[10];
    ck_assert_int_eq(drain_i64(g, pst_nb_finish_out(b), v, 10), 2);
    ck_assert(v[0] == 0 && v[1] == 1);
}
END_TEST

/* A finite input ends `pstrain train --meta` cleanly: Dataset.from_tensor_slices of 10 rows,
 * batch(4), no repeat, gives 3 steps (4, 4, 2 rows); the 4th meets OutOfRange, which stops
 * the loop: the process says so and exits 0 before the 100 steps asked for. */
START_TEST(test_finite_input_ends_training) {
    pst_io_ops_init();
    pst_graph *g = pst_graph_new();
    pst_node_builder *b = pst_nb_new(g, "TensorSliceDataset", "slices");
    pst_nb_input(b, pst_test_const(g, pst_test_rand(PST_FLOAT, pst_shape_2d(10, 3), 1, 0, 1), "x"));
    pst_nb_input(b, pst_test_const(g,
                                   pst_tensor_from_i64(pst_shape_1d(10),
                                                       (int64_t[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9}),
                                   "y"));
    pst_nb_attr_list_type(b, "Toutput_types", 2, xy_types);
    pst_output four = pst_test_const(g, pst_tensor_scalar_i64(4), "four");
    pipe_t p = {.g = g};
    attach_iterator(&p, ds_node(g, "BatchDataset", "batch", pst_nb_finish_out(b), 1, &four, 1));
    pst_session_free(p.s);
    pst_output v = pst_variable(g, "total", pst_const_f32(g, 0, "zero"), 0);
    pst_output sum =
        pst_cast(g, pst_reduce_sum(g, pst_out(p.next, 0), 0, NULL, 0, NULL), PST_FLOAT, NULL);
    pst_graph_add_to_collection(g, PST_TRAIN_OP, pst_assign(g, v, sum, "train"));
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    char path[] = "/tmp/pst_tfdata_end_XXXXXX";
    pst_test_tmp_file(path);
    pst_status st = {0};
    ck_assert_msg(pst_meta_graph_write(g, &(pst_meta_export_opts){0}, path, &st) == 0, "%s",
                  st.msg);
    pst_graph_free(g);
    const char *bin = getenv("PST_BINARY_DIR");
    char cmd[5000];
    static char out[16384];
    snprintf(cmd, sizeof cmd,
             "%s/launcher/pstrain train --meta %s --steps 100 --print-every 1 2>&1",
             bin ? bin : ".", path);
    ck_assert_msg(pst_test_run_command(cmd, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "input exhausted after 3 steps") && !strstr(out, "step 4 "), "%s",
                  out);
    unlink(path);
}
END_TEST

int main(void) {
    Suite *s = suite_create("tf_data");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_batches_in_order_then_out_of_range);
    tcase_add_test(tc, test_finite_input_ends_training);
    tcase_add_test(tc, test_auto_shard_and_sleep);
    tcase_add_test(tc, test_take_while);
    tcase_add_test(tc, test_drop_remainder);
    tcase_add_test(tc, test_repeat_count);
    tcase_add_test(tc, test_shuffle_seeded);
    tcase_add_test(tc, test_unknown_function_named);
    tcase_add_test(tc, test_missing_file_named);
    tcase_add_test(tc, test_corrupt_record_named);
    tcase_add_test(tc, test_uninitialized_iterator);
    tcase_add_test(tc, test_slices_range_and_string_handle);
    tcase_add_test(tc, test_text_line_and_fixed_length);
    tcase_add_test(tc, test_padded_batch_and_unbatch);
    tcase_add_test(tc, test_cache_replays_first_pass);
    tcase_add_test(tc, test_interleave_files);
    tcase_add_test(tc, test_one_shot_iterator_with_records_override);
    tcase_add_test(tc, test_broken_function_named_when_run);
    tcase_add_test(tc, test_meta_check_feeds_initializer_placeholders);
    tcase_add_test(tc, test_meta_check_text_dataset_synthetic_lines);
    tcase_add_test(tc, test_shard_and_single_element);
    tcase_add_test(tc, test_meta_check_matching_files_and_parse_after_iterator);
    tcase_add_test(tc, test_meta_check_feeds_string_handle);
    tcase_add_test(tc, test_function_calls);
    tcase_add_test(tc, test_graph17_trains_from_its_dataset);
    tcase_add_test(tc, test_graph17_command_line);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
