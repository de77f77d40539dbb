/* Importing TensorFlow users' graphs: string tensors (constants, meta graphs, checkpoints),
 * TF's saver subgraph run as TF runs it, errors naming the node and op pstrain lacks, and
 * `pstrain meta check`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "crc32c.h"
#include "file.h"
#include "imported.h"
#include "metagraph.h"
#include "op.h"
#include "testutil.h"
#include "tf_graph.pb-c.h"
#include "varstore.h"

static char *testdata(const char *rel) {
    static char buf[4096];
    const char *src = getenv("PST_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/tests/data/%s", src ? src : ".", rel);
    return buf;
}

static char tmp[256];
static void mk_tmp(void) {
    snprintf(tmp, sizeof tmp, "/tmp/pst_tfimport_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}
static void rm_tmp(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_string_const_round_trip) {
    pst_graph *g = pst_graph_new();
    pst_tensor *v = pst_tensor_from_strs(2, (const char *const[]){"model", ""});
    pst_output c = pst_const(g, v, "names");
    pst_output id = pst_identity(g, c, "id");
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    uint8_t *buf;
    size_t len;
    pst_status st = {0};
    ck_assert_int_eq(pst_graph_def_export(g, 0, &buf, &len, &st), 0);
    pst_graph *h = pst_graph_new();
    ck_assert_msg(pst_graph_def_import(h, buf, len, NULL, &st) == 0, "%s", st.msg);
    pst_session *s = pst_session_new(h, NULL, &st);
    pst_tensor *out = pst_session_run1(s, pst_graph_output_by_name(h, "id"), &st);
    ck_assert_msg(out != NULL, "%s", st.msg);
    ck_assert_int_eq(out->dtype, PST_STRING);
    ck_assert_int_eq(out->n, 2);
    ck_assert_str_eq(pst_tensor_str(out)[0].p, "model");
    ck_assert_uint_eq(pst_tensor_str(out)[1].len, 0);
    pst_tensor_unref(out);
    (void)id;
    pst_session_free(s);
    pst_graph_free(h);
    free(buf);
    pst_tensor_unref(v);
    pst_graph_free(g);
}
END_TEST

/* An op whose kernel is not written for strings refuses them when the node is built. */
START_TEST(test_string_refused_by_other_ops) {
    pst_graph *g = pst_graph_new();
    pst_tensor *v = pst_tensor_scalar_str("x");
    pst_output c = pst_const(g, v, "s");
    pst_neg(g, c, "neg");
    ck_assert(pst_graph_error(g));
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "node 'neg' (Neg)"));
    ck_assert_ptr_nonnull(strstr(pst_graph_status(g)->msg, "string"));
    pst_tensor_unref(v);
    pst_graph_free(g);
}
END_TEST

/* TF's bundle layout of a string tensor: varint lengths, their masked CRC-32C, the bytes. */
START_TEST(test_string_bundle_layout_and_round_trip) {
    mk_tmp();
    char prefix[512], data[600];
    snprintf(prefix, sizeof prefix, "%s/ck", tmp);
    pst_status st = {0};
    pst_bundle_writer *w = pst_bundle_writer_new(prefix, &st);
    pst_tensor *t = pst_tensor_from_strs(2, (const char *const[]){"ab", ""});
    ck_assert_int_eq(pst_bundle_writer_add(w, "names", t, &st), 0);
    ck_assert_msg(pst_bundle_writer_finish(w, &st) == 0, "%s", st.msg);
    snprintf(data, sizeof data, "%s.data-00000-of-00001", prefix);
    uint8_t *b;
    size_t n;
    ck_assert_int_eq(pst_file_read(data, 1 << 20, &b, &n, &st), 0);
    ck_assert_uint_eq(n, 2 + 4 + 2);
    ck_assert_int_eq(b[0], 2);
    ck_assert_int_eq(b[1], 0);
    uint32_t m = pst_crc32c_mask(pst_crc32c(0, b, 2));
    ck_assert_uint_eq(b[2] | b[3] << 8 | b[4] << 16 | (uint32_t)b[5] << 24, m);
    ck_assert_int_eq(memcmp(b + 6, "ab", 2), 0);
    free(b);
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    pst_tensor *u = pst_bundle_reader_read(r, "names", &st);
    ck_assert_msg(u != NULL, "%s", st.msg);
    ck_assert_str_eq(pst_tensor_str(u)[0].p, "ab");
    ck_assert_uint_eq(pst_tensor_str(u)[1].len, 0);
    pst_tensor_unref(u);
    pst_bundle_reader_free(r);
    /* One flipped byte of the string bytes is a checksum error naming the tensor. */
    FILE *f = fopen(data, "r+b");
    fseek(f, 6, SEEK_SET);
    fputc('x', f);
    fclose(f);
    r = pst_bundle_reader_open(prefix, &st);
    ck_assert_ptr_null(pst_bundle_reader_read(r, "names", &st));
    ck_assert_ptr_nonnull(strstr(st.msg, "'names'"));
    pst_bundle_reader_free(r);
    pst_tensor_unref(t);
    rm_tmp();
}
END_TEST

/* A GraphDef node of an op pstrain lacks: the import fails naming the node and the op. */
START_TEST(test_unknown_op_names_node_and_op) {
    Tensorflow__NodeDef nd = TENSORFLOW__NODE_DEF__INIT;
    nd.name = "layer/mystery";
    nd.op = "NoSuchOpAnywhere";
    Tensorflow__NodeDef *nodes[1] = {&nd};
    Tensorflow__GraphDef gd = TENSORFLOW__GRAPH_DEF__INIT;
    gd.n_node = 1;
    gd.node = nodes;
    uint8_t buf[256];
    size_t len = tensorflow__graph_def__pack(&gd, buf);
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    ck_assert_int_lt(pst_graph_def_import(g, buf, len, NULL, &st), 0);
    ck_assert_ptr_nonnull(strstr(st.msg, "node 'layer/mystery'"));
    ck_assert_ptr_nonnull(strstr(st.msg, "unknown op 'NoSuchOpAnywhere'"));
    pst_graph_free(g);
}
END_TEST

/* TF's sharded saver subgraph of a TF-written SavedModel: restore_all with the prefix fed puts
 * the checkpoint's value back; the save tensor writes a checkpoint (StringJoin, ShardedFilename,
 * SaveV2, MergeV2Checkpoints) that reads back with the variable's value. */
START_TEST(test_tf_saver_subgraph_restores_and_saves) {
    pst_status st = {0};
    pst_imported *m = pst_imported_load(testdata("tf/serving_saved_model_counter/saved_model.pb"), &st);
    ck_assert_msg(m != NULL, "%s", st.msg);
    ck_assert_msg(pst_imported_init(m, &st) == 0, "%s", st.msg);
    pst_var *v = pst_var_store_find(pst_session_vars(pst_imported_session(m)), "counter");
    ck_assert_ptr_nonnull(v);
    pst_tensor *seven = pst_tensor_scalar_f32(7);
    ck_assert_int_eq(pst_var_assign(v, seven, 1, &st), 0);
    int checked = 0;
    ck_assert_msg(pst_imported_restore(m, testdata("tf/serving_saved_model_counter/variables/variables"),
                                       &checked, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(checked, 1);
    pst_tensor *now = pst_var_read(v);
    ck_assert_float_eq(pst_tensor_f32(now)[0], 0);
    pst_tensor_unref(now);
    /* Save through the graph's own save tensor after setting 7. */
    ck_assert_int_eq(pst_var_assign(v, seven, 1, &st), 0);
    mk_tmp();
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s/model.ckpt", tmp);
    pst_graph *g = pst_imported_graph(m);
    pst_tensor *p = pst_tensor_scalar_str(prefix);
    pst_feed f = {pst_graph_output_by_name(g, "save/Const:0"), p};
    pst_output save = pst_graph_output_by_name(g, "save/Identity:0");
    ck_assert_ptr_nonnull(f.output.node);
    ck_assert_ptr_nonnull(save.node);
    pst_tensor *out[1];
    ck_assert_msg(pst_session_run(pst_imported_session(m), &f, 1, &save, 1, NULL, 0, out, &st) == 0,
                  "%s", st.msg);
    ck_assert_str_eq(pst_tensor_str(out[0])[0].p, prefix);
    pst_tensor_unref(out[0]);
    pst_bundle_reader *r = pst_bundle_reader_open(prefix, &st);
    ck_assert_msg(r != NULL, "%s", st.msg);
    pst_tensor *c = pst_bundle_reader_read(r, "counter", &st);
    ck_assert_msg(c != NULL, "%s", st.msg);
    ck_assert_float_eq(pst_tensor_f32(c)[0], 7);
    pst_tensor_unref(c);
    pst_bundle_reader_free(r);
    /* A checkpoint without the variable: RestoreV2's error names the key. */
    pst_status st2 = {0};
    char other[600];
    snprintf(other, sizeof other, "%s/none", tmp);
    pst_bundle_writer *w = pst_bundle_writer_new(other, &st2);
    ck_assert_int_eq(pst_bundle_writer_add(w, "something_else", seven, &st2), 0);
    ck_assert_int_eq(pst_bundle_writer_finish(w, &st2), 0);
    ck_assert_int_lt(pst_imported_restore(m, other, NULL, &st2), 0);
    ck_assert_ptr_nonnull(strstr(st2.msg, "counter"));
    pst_tensor_unref(p);
    pst_tensor_unref(seven);
    pst_imported_free(m);
    rm_tmp();
}
END_TEST

START_TEST(test_meta_check_cli) {
    const char *bin = getenv("PST_BINARY_DIR");
    char cmd[12288], meta[4096];
    snprintf(meta, sizeof meta, "%s", testdata("tf/serving_saved_model_counter/saved_model.pb"));
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain meta check %s --checkpoint %s",
             bin ? bin : "build", meta, testdata("tf/serving_saved_model_counter/variables/variables"));
    FILE *p = popen(cmd, "r");
    char out[16384];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    ck_assert_int_ne(pclose(p), 0); /* no train op in a serving graph */
    ck_assert_ptr_nonnull(strstr(out, "missing ops: none"));
    ck_assert_ptr_nonnull(strstr(out, "import: ok (30 nodes)"));
    ck_assert_ptr_nonnull(strstr(out, "restore: ok (1 variables"));
    ck_assert_ptr_nonnull(strstr(out, "train_step: FAIL the graph has no train op"));
}
END_TEST

/* A node of op `op` over the given inputs with attr T (and Tidx/out_type left default). */
static pst_node *op_node(pst_graph *g, const char *op, int n, const pst_output *in) {
    pst_node_builder *b = pst_nb_new(g, op, NULL);
    pst_nb_inputs(b, n, in);
    if (strcmp(op, "UnsortedSegmentSum") != 0 && strcmp(op, "ConcatOffset") != 0)
        pst_nb_attr_type(b, "T", pst_output_dtype(in[0]));
    pst_node *x = pst_nb_finish(b);
    ck_assert_msg(x != NULL, "%s", pst_graph_status(g)->msg);
    return x;
}

static pst_output i32_vec(pst_graph *g, int n, const int32_t *v) {
    pst_tensor *t = pst_tensor_from_i32(pst_shape_1d(n), v);
    pst_output o = pst_const(g, t, NULL);
    pst_tensor_unref(t);
    return o;
}

/* Forward values of the gradient-helper ops TF's graphs are full of. */
START_TEST(test_tf_helper_ops_values) {
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    pst_output a = i32_vec(g, 4, (const int32_t[]){7, -7, 6, 0}), b = i32_vec(g, 4, (const int32_t[]){2, 2, -4, 3});
    pst_output in2[2] = {a, b};
    pst_node *fd = op_node(g, "FloorDiv", 2, in2), *fm = op_node(g, "FloorMod", 2, in2),
             *dv = op_node(g, "Div", 2, in2);
    pst_output perm = i32_vec(g, 3, (const int32_t[]){2, 0, 1});
    pst_node *inv = op_node(g, "InvertPermutation", 1, &perm);
    pst_output co_in[3] = {pst_const_i32(g, 1, NULL), i32_vec(g, 2, (const int32_t[]){2, 3}),
                           i32_vec(g, 2, (const int32_t[]){2, 5})};
    pst_node *co = op_node(g, "ConcatOffset", 3, co_in);
    pst_output u = i32_vec(g, 5, (const int32_t[]){4, 1, 4, 2, 1});
    pst_node *uq = op_node(g, "Unique", 1, &u);
    float dvals[6] = {1, 2, 3, 4, 5, 6};
    pst_output seg_in[3] = {pst_const_f32_tensor(g, pst_shape_2d(3, 2), dvals, NULL),
                            i32_vec(g, 3, (const int32_t[]){1, 0, 1}), pst_const_i32(g, 2, NULL)};
    pst_node *seg = op_node(g, "UnsortedSegmentSum", 3, seg_in);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_output f[9] = {pst_out(fd, 0), pst_out(fm, 0), pst_out(dv, 0), pst_out(inv, 0),
                       pst_out(co, 0), pst_out(co, 1), pst_out(uq, 0), pst_out(uq, 1),
                       pst_out(seg, 0)};
    pst_tensor *o[9];
    ck_assert_msg(pst_session_run(s, NULL, 0, f, 9, NULL, 0, o, &st) == 0, "%s", st.msg);
    int64_t d4[] = {4}, d3[] = {3}, d2[] = {2}, d5[] = {5}, d22[] = {2, 2};
    PST_ASSERT_TENSOR(o[0], 1, d4, ((const double[]){3, -4, -2, 0}), 0);
    PST_ASSERT_TENSOR(o[1], 1, d4, ((const double[]){1, 1, -2, 0}), 0);
    PST_ASSERT_TENSOR(o[2], 1, d4, ((const double[]){3, -3, -1, 0}), 0);
    PST_ASSERT_TENSOR(o[3], 1, d3, ((const double[]){1, 2, 0}), 0);
    PST_ASSERT_TENSOR(o[4], 1, d2, ((const double[]){0, 0}), 0);
    PST_ASSERT_TENSOR(o[5], 1, d2, ((const double[]){0, 3}), 0);
    PST_ASSERT_TENSOR(o[6], 1, d3, ((const double[]){4, 1, 2}), 0);
    PST_ASSERT_TENSOR(o[7], 1, d5, ((const double[]){0, 1, 0, 2, 1}), 0);
    PST_ASSERT_TENSOR(o[8], 2, d22, ((const double[]){3, 4, 6, 8}), 0);
    for (int i = 0; i < 9; i++) pst_tensor_unref(o[i]);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* tf.sets' DenseToDenseSetOperation and ReverseSequence (bidirectional RNNs). */
START_TEST(test_set_op_and_reverse_sequence) {
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    int32_t av[] = {3, 1, 3, 2}, bv[] = {2, 5, 1, 1};
    pst_tensor *at = pst_tensor_from_i32(pst_shape_2d(1, 4), av), *bt = pst_tensor_from_i32(pst_shape_2d(1, 4), bv);
    pst_output sets[2] = {pst_const(g, at, NULL), pst_const(g, bt, NULL)};
    pst_node_builder *b = pst_nb_new(g, "DenseToDenseSetOperation", "inter");
    pst_nb_inputs(b, 2, sets);
    pst_nb_attr_s(b, "set_operation", "intersection");
    pst_node *inter = pst_nb_finish(b);
    b = pst_nb_new(g, "DenseToDenseSetOperation", "amb");
    pst_nb_inputs(b, 2, sets);
    pst_nb_attr_s(b, "set_operation", "a-b");
    pst_node *amb = pst_nb_finish(b);
    float xv[] = {1, 2, 3, 4, 5, 6};
    pst_output rs_in[2] = {pst_const_f32_tensor(g, pst_shape_2d(2, 3), xv, NULL),
                           i32_vec(g, 2, (const int32_t[]){2, 3})};
    b = pst_nb_new(g, "ReverseSequence", "rev");
    pst_nb_inputs(b, 2, rs_in);
    pst_nb_attr_i(b, "seq_dim", 1);
    pst_nb_attr_i(b, "batch_dim", 0);
    pst_node *rev = pst_nb_finish(b);
    ck_assert_msg(!pst_graph_error(g), "%s", pst_graph_status(g)->msg);
    pst_session *s = pst_session_new(g, NULL, &st);
    pst_output f[5] = {pst_out(inter, 1), pst_out(inter, 2), pst_out(amb, 1), pst_out(amb, 0),
                       pst_out(rev, 0)};
    pst_tensor *o[5];
    ck_assert_msg(pst_session_run(s, NULL, 0, f, 5, NULL, 0, o, &st) == 0, "%s", st.msg);
    int64_t d2[] = {2}, d1[] = {1}, d12[] = {1, 2}, d23[] = {2, 3};
    PST_ASSERT_TENSOR(o[0], 1, d2, ((const double[]){1, 2}), 0);
    PST_ASSERT_TENSOR(o[1], 1, d2, ((const double[]){1, 2}), 0);
    PST_ASSERT_TENSOR(o[2], 1, d1, ((const double[]){3}), 0);
    PST_ASSERT_TENSOR(o[3], 2, d12, ((const double[]){0, 0}), 0);
    PST_ASSERT_TENSOR(o[4], 2, d23, ((const double[]){2, 1, 3, 6, 5, 4}), 0);
    for (int i = 0; i < 5; i++) pst_tensor_unref(o[i]);
    pst_tensor_unref(at);
    pst_tensor_unref(bt);
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* Finite differences for the differentiable ones (float64). */
START_TEST(test_tf_helper_ops_gradients) {
    const char *ops[] = {"Reciprocal", "Atan", "FloorMod", "Div", "UnsortedSegmentSum"};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        pst_graph *g = pst_graph_new();
        pst_output x = pst_placeholder(g, "x", PST_DOUBLE, pst_shape_2d(3, 2));
        pst_output in[3] = {x, pst_const_scalar(g, PST_DOUBLE, 0.7, NULL)};
        int n = 2;
        if (strcmp(ops[k], "Reciprocal") == 0 || strcmp(ops[k], "Atan") == 0) n = 1;
        if (strcmp(ops[k], "UnsortedSegmentSum") == 0) {
            in[1] = i32_vec(g, 3, (const int32_t[]){1, 0, 1});
            in[2] = pst_const_i32(g, 2, NULL);
            n = 3;
        }
        pst_output y = pst_out(op_node(g, ops[k], n, in), 0);
        pst_tensor *v = pst_test_rand(PST_DOUBLE, pst_shape_2d(3, 2), 7, 0.3, 1.9);
        double err = pst_gradcheck(g, y, 1, &x, &v, 1e-6);
        ck_assert_msg(err < 1e-6, "%s: gradient error %g", ops[k], err);
        pst_tensor_unref(v);
        pst_graph_free(g);
    }
}
END_TEST

static pst_node *cf_node(pst_graph *g, const char *op, const char *name, int n, const pst_output *in) {
    pst_node_builder *b = pst_nb_new(g, op, name);
    pst_nb_inputs(b, n, in);
    if (n > 0) pst_nb_attr_type(b, "T", pst_output_dtype(in[0]));
    if (strcmp(op, "Enter") == 0) {
        pst_nb_attr_s(b, "frame_name", "loop");
        pst_nb_attr_b(b, "is_constant", strstr(name, "const") != NULL);
    }
    pst_node *x = pst_nb_finish(b);
    ck_assert_msg(x != NULL, "%s", pst_graph_status(g)->msg);
    return x;
}

/* tf.while_loop as TF writes it: i = 0; while i < n: i = i + step; with n and step entering
 * the frame as constants. The back edge NextIteration -> Merge is set after both exist. */
START_TEST(test_while_loop_frames) {
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    pst_output n = pst_placeholder(g, "n", PST_INT32, pst_shape_scalar());
    pst_output i0 = pst_const_i32(g, 0, "i0"), step = pst_const_i32(g, 3, "step");
    pst_node *enter = cf_node(g, "Enter", "w/Enter", 1, &i0);
    pst_node *en = cf_node(g, "Enter", "w/Enter_const_n", 1, &n);
    pst_node *es = cf_node(g, "Enter", "w/Enter_const_step", 1, &step);
    pst_output min[2] = {pst_out(enter, 0), pst_out(enter, 0)};
    pst_node *merge = cf_node(g, "Merge", "w/Merge", 2, min);
    pst_output less = pst_less(g, pst_out(merge, 0), pst_out(en, 0), "w/Less");
    pst_node *cond = pst_nb_finish(pst_nb_new(g, "LoopCond", "w/LoopCond"));
    ck_assert_ptr_null(cond); /* LoopCond needs its input */
    pst_graph_clear_error(g);
    pst_node_builder *b = pst_nb_new(g, "LoopCond", "w/LoopCond");
    pst_nb_input(b, less);
    cond = pst_nb_finish(b);
    pst_output sw_in[2] = {pst_out(merge, 0), pst_out(cond, 0)};
    pst_node *sw = cf_node(g, "Switch", "w/Switch", 2, sw_in);
    pst_output body = pst_add(g, pst_identity(g, pst_out(sw, 1), "w/Identity"), pst_out(es, 0), "w/add");
    pst_node *next = cf_node(g, "NextIteration", "w/NextIteration", 1, &body);
    pst_output ex_in = pst_out(sw, 0);
    pst_node *ex = cf_node(g, "Exit", "w/Exit", 1, &ex_in);
    ck_assert_int_eq(pst_graph_set_back_edge(g, merge, 1, pst_out(next, 0)), 0);
    ck_assert(pst_graph_has_control_flow(g));
    pst_session *s = pst_session_new(g, NULL, &st);
    int32_t want[3][2] = {{10, 12}, {0, 0}, {1, 3}}; /* n -> result */
    for (int k = 0; k < 3; k++) {
        pst_tensor *nv = pst_tensor_scalar_i32(want[k][0]);
        pst_feed f = {n, nv};
        pst_output fetch = pst_out(ex, 0);
        pst_tensor *out[1];
        ck_assert_msg(pst_session_run(s, &f, 1, &fetch, 1, NULL, 0, out, &st) == 0, "%s", st.msg);
        ck_assert_int_eq(pst_tensor_i32(out[0])[0], want[k][1]);
        pst_tensor_unref(out[0]);
        pst_tensor_unref(nv);
    }
    /* The body's value is on a dead branch once the loop is done: fetching it is an error. */
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* tf.cond: Switch sends x to one branch, the other is dead; Merge takes the live one. */
START_TEST(test_cond_switch_merge) {
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_scalar());
    pst_output p = pst_placeholder(g, "p", PST_BOOL, pst_shape_scalar());
    pst_output sw_in[2] = {x, p};
    pst_node *sw = cf_node(g, "Switch", "cond/Switch", 2, sw_in);
    pst_output t = pst_mul(g, pst_out(sw, 1), pst_const_f32(g, 10, NULL), "cond/true");
    pst_output f = pst_neg(g, pst_out(sw, 0), "cond/false");
    pst_output m_in[2] = {f, t};
    pst_node *m = cf_node(g, "Merge", "cond/Merge", 2, m_in);
    pst_session *s = pst_session_new(g, NULL, &st);
    for (int k = 0; k < 2; k++) {
        pst_tensor *xv = pst_tensor_scalar_f32(2), *pv = pst_tensor_scalar_bool(k);
        pst_feed fd[2] = {{x, xv}, {p, pv}};
        pst_output fetch[2] = {pst_out(m, 0), pst_out(m, 1)};
        pst_tensor *out[2];
        ck_assert_msg(pst_session_run(s, fd, 2, fetch, 2, NULL, 0, out, &st) == 0, "%s", st.msg);
        ck_assert_float_eq(pst_tensor_f32(out[0])[0], k ? 20.0f : -2.0f);
        ck_assert_int_eq(pst_tensor_i32(out[1])[0], k);
        pst_tensor_unref(out[0]);
        pst_tensor_unref(out[1]);
        /* The untaken branch's value is dead: an error naming the fetch. */
        pst_output dead = k ? f : t;
        pst_tensor *o2[1];
        ck_assert_int_lt(pst_session_run(s, fd, 2, &dead, 1, NULL, 0, o2, &st), 0);
        ck_assert_ptr_nonnull(strstr(st.msg, "branch not taken"));
        pst_tensor_unref(xv);
        pst_tensor_unref(pv);
    }
    pst_session_free(s);
    pst_graph_free(g);
}
END_TEST

/* Synthetic feeds (pstrain meta check): sequence lengths (an integer vector named like
 * "seq_len") as long as the unknown dims of the sequences, and tf.sparse_placeholder's parts
 * (int64 [?, R] indices, values, int64 [R] dense shape) one consistent SparseTensor. */
START_TEST(test_synthetic_feeds_lengths_and_sparse) {
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    pst_output seq = pst_placeholder(g, "inputs", PST_INT32, pst_shape_2d(-1, -1));
    pst_output len = pst_placeholder(g, "seq_lengths", PST_INT32, pst_shape_1d(-1));
    pst_output idx = pst_placeholder(g, "Placeholder/indices", PST_INT64, pst_shape_2d(-1, 2));
    pst_output shp = pst_placeholder(g, "Placeholder/shape", PST_INT64, pst_shape_1d(2));
    pst_tensor *t[4];
    pst_output ph[4] = {seq, len, idx, shp};
    for (int i = 0; i < 4; i++) {
        t[i] = pst_imported_synthetic_feed(ph[i], 3, (uint64_t)i + 1, &st);
        ck_assert_msg(t[i] != NULL, "%s", st.msg);
    }
    ck_assert_int_eq(t[0]->shape.dims[0], 3);
    int64_t d3[] = {3}, d32[] = {3, 2}, d2[] = {2};
    PST_ASSERT_TENSOR(t[1], 1, d3, ((const double[]){t[0]->shape.dims[1], t[0]->shape.dims[1],
                                                   t[0]->shape.dims[1]}), 0);
    PST_ASSERT_TENSOR(t[2], 2, d32, ((const double[]){0, 0, 1, 0, 2, 0}), 0);
    PST_ASSERT_TENSOR(t[3], 1, d2, ((const double[]){3, 1}), 0);
    for (int i = 0; i < 4; i++) pst_tensor_unref(t[i]);
    pst_graph_free(g);
}
END_TEST

int main(void) {
    pst_ops_init();
    Suite *s = suite_create("tf_import");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_string_const_round_trip);
    tcase_add_test(tc, test_string_refused_by_other_ops);
    tcase_add_test(tc, test_string_bundle_layout_and_round_trip);
    tcase_add_test(tc, test_unknown_op_names_node_and_op);
    tcase_add_test(tc, test_tf_saver_subgraph_restores_and_saves);
    tcase_add_test(tc, test_meta_check_cli);
    tcase_add_test(tc, test_tf_helper_ops_values);
    tcase_add_test(tc, test_tf_helper_ops_gradients);
    tcase_add_test(tc, test_set_op_and_reverse_sequence);
    tcase_add_test(tc, test_while_loop_frames);
    tcase_add_test(tc, test_cond_switch_merge);
    tcase_add_test(tc, test_synthetic_feeds_lengths_and_sparse);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
