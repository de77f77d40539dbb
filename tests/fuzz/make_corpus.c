/*
 * make_corpus — writes the binary seeds of tests/fuzz/corpus/ from pstrain's own output (and
 * from the TensorFlow-written fixtures in tests/data/tf), plus the text seeds, so the corpora
 * can be made again with one command:
 *
 *     build/tests/fuzz/fuzz_make_corpus tests/fuzz/corpus     (from the source directory)
 *
 * Every file is small (the fuzzer mutates around the sizes it is given, and speed matters).
 * Inputs found by fuzzing (crashes fixed since, interesting cases) are added to the corpora by
 * hand and are not written here; this program never deletes anything.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "bundle.h"
#include "chunk.h"
#include "example.h"
#include "file.h"
#include "image_ops.h"
#include "layers.h"
#include "losses.h"
#include "metagraph.h"
#include "npz.h"
#include "ops.h"
#include "ops_math.h"
#include "ops_state.h"
#include "optimizer.h"
#include "saver.h"
#include "sstable.h"
#include "pstrain_task.pb-c.h"
#include "task.h"
#include "task_wire.h"
#include "tfrecord.h"
#include "tf_graph.pb-c.h"

static const char *out_dir;
static char tmp_dir[4096];

static void die(const char *what, const char *msg) {
    fprintf(stderr, "make_corpus: %s: %s\n", what, msg);
    exit(1);
}

/* Writes out_dir/corpus/name. */
static void put(const char *corpus, const char *name, const void *data, size_t len) {
    char dir[4200], path[4400];
    pst_status st = {0};
    snprintf(dir, sizeof dir, "%s/%s", out_dir, corpus);
    if (pst_file_make_dirs(dir, &st) < 0) die(dir, st.msg);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) die(path, "write");
    printf("%-60s %6zu bytes\n", path, len);
}

static void put_str(const char *corpus, const char *name, const char *text) {
    put(corpus, name, text, strlen(text));
}

static uint8_t *slurp(const char *path, size_t *len) {
    uint8_t *buf;
    pst_status st = {0};
    if (pst_file_read(path, (size_t)1 << 26, &buf, len, &st) < 0) die(path, st.msg);
    return buf;
}

static char *tmp_path(const char *name) {
    static char buf[4][4200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp_dir, name);
    return buf[k];
}

/* ---- Graphs ------------------------------------------------------------------------------ */

static void check_graph(pst_graph *g, const char *what) {
    if (pst_graph_error(g)) die(what, pst_graph_status(g)->msg);
}

/* Variables on a PS device, a placeholder, AddN, node and value collections. */
static pst_graph *sample_graph(void) {
    pst_graph *g = pst_graph_new();
    pst_graph_push_device(g, "/job:ps/task:0");
    pst_output a = pst_variable(g, "a", pst_const_f32(g, 2, NULL), 1);
    pst_graph_pop_device(g);
    pst_output b = pst_variable(g, "b", pst_const_f32(g, 3, NULL), 0);
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_scalar());
    pst_output terms[3] = {pst_variable_value(a), pst_variable_value(b), x};
    pst_output y = pst_add_n(g, 3, terms, "y");
    pst_graph_add_to_collection(g, "hparams", pst_const_f32(g, 0.01f, "learning_rate"));
    pst_graph_add_to_collection(g, "outputs", y);
    pst_graph_add_int64_to_collection(g, "hparams_int", 100);
    pst_graph_add_float_to_collection(g, "hparams_float", 0.5f);
    pst_global_variables_initializer(g);
    check_graph(g, "sample graph");
    return g;
}

/* A tiny CNN's training graph: conv, pool, dense, softmax cross entropy, Adam, global step. */
static pst_graph *train_graph(void) {
    pst_graph *g = pst_graph_new();
    pst_graph_set_seed(g, 1);
    pst_output images = pst_placeholder(g, "images", PST_FLOAT, pst_shape_4d(-1, 4, 4, 1));
    pst_output labels = pst_placeholder(g, "labels", PST_INT64, pst_shape_1d(-1));
    pst_output x = pst_layer_conv2d(g, images, 8, 3, 3, NULL, "conv1");
    x = pst_layer_max_pool2d(g, x, 2, 2, NULL, "pool1");
    x = pst_layer_flatten(g, x, "flatten");
    pst_output logits = pst_layer_fully_connected(g, x, 3, NULL, "logits");
    pst_loss_sparse_softmax_cross_entropy(g, logits, labels, pst_out(NULL, 0), NULL);
    pst_output total = pst_get_total_loss(g, 1, "total_loss");
    pst_optimizer_opts oo = pst_optimizer_defaults(PST_OPT_ADAM, 0.01f);
    pst_node *train_op;
    pst_create_train_op(g, total, &oo, pst_train_global_step(g), 0, &train_op);
    pst_global_variables_initializer(g);
    check_graph(g, "training graph");
    return g;
}

/* A Const of every dtype the runtime has. */
static pst_graph *const_graph(void) {
    pst_graph *g = pst_graph_new();
    static const float f[3] = {1.5f, -2, 0.25f};
    static const double d[2] = {1e300, -0.0};
    static const int32_t i32[2] = {-7, 1 << 30};
    static const int64_t i64[2] = {-1, (int64_t)1 << 40};
    static const uint8_t u8[4] = {0, 1, 254, 255};
    static const uint8_t b[2] = {1, 0};
    struct {
        pst_dtype dt;
        pst_shape s;
        const void *v;
        const char *name;
    } c[] = {{PST_FLOAT, pst_shape_1d(3), f, "f32"},     {PST_DOUBLE, pst_shape_1d(2), d, "f64"},
             {PST_INT32, pst_shape_2d(1, 2), i32, "i32"}, {PST_INT64, pst_shape_1d(2), i64, "i64"},
             {PST_UINT8, pst_shape_2d(2, 2), u8, "u8"},   {PST_BOOL, pst_shape_1d(2), b, "bool"}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        pst_tensor *t = pst_tensor_new_copy(c[i].dt, c[i].s, c[i].v, NULL);
        pst_output o = pst_const(g, t, c[i].name);
        pst_tensor_unref(t);
        pst_identity(g, o, NULL);
    }
    check_graph(g, "const graph");
    return g;
}

static uint8_t *graph_def(const pst_graph *g, size_t *len) {
    uint8_t *buf;
    pst_status st = {0};
    if (pst_graph_def_export(g, 0, &buf, len, &st) < 0) die("GraphDef export", st.msg);
    return buf;
}

static uint8_t *meta_graph(const pst_graph *g, size_t *len) {
    uint8_t *buf;
    pst_status st = {0};
    pst_saver_def sd = {.max_to_keep = 5, .sharded = 1, .keep_checkpoint_every_n_hours = 10000};
    const char *tags[] = {"serve", NULL};
    pst_meta_export_opts o = {.tags = tags, .saver_def = &sd};
    if (pst_meta_graph_export(g, &o, &buf, len, &st) < 0) die("MetaGraphDef export", st.msg);
    return buf;
}

/* Writes graphdef/name: buf unpacked, edited by fn, packed again. Edits replace strings and
 * arrays with malloc'd ones, which free_unpacked frees like its own. */
static void put_edited_graph(const char *name, const uint8_t *buf, size_t len,
                             void (*fn)(Tensorflow__GraphDef *)) {
    Tensorflow__GraphDef *gd = tensorflow__graph_def__unpack(NULL, len, buf);
    if (gd == NULL) die(name, "cannot unpack our own GraphDef");
    fn(gd);
    size_t n = tensorflow__graph_def__get_packed_size(gd);
    uint8_t *out = malloc(n + 1);
    tensorflow__graph_def__pack(gd, out);
    put("graphdef", name, out, n);
    free(out);
    tensorflow__graph_def__free_unpacked(gd, NULL);
}

static Tensorflow__NodeDef *node_named(Tensorflow__GraphDef *gd, const char *name) {
    for (size_t i = 0; i < gd->n_node; i++)
        if (strcmp(gd->node[i]->name, name) == 0) return gd->node[i];
    die(name, "no such node in our own GraphDef");
    return NULL;
}

static void set_input(Tensorflow__NodeDef *n, size_t i, const char *ref) {
    if (i >= n->n_input) die(n->name, "too few inputs to edit");
    free(n->input[i]);
    n->input[i] = strdup(ref);
}

/* y = AddN(a/read, ...) and a/read = Identity(a): a/read reading y closes a cycle. */
static void make_cycle(Tensorflow__GraphDef *gd) {
    Tensorflow__NodeDef *y = node_named(gd, "y");
    set_input(node_named(gd, y->input[0]), 0, "y");
}
static void make_missing_input(Tensorflow__GraphDef *gd) {
    set_input(node_named(gd, "y"), 2, "missing:3");
}
static void make_bad_output_index(Tensorflow__GraphDef *gd) {
    set_input(node_named(gd, "y"), 2, "x:7");
}

/* Every float Const as TensorFlow often writes one: a single float_val repeated over its shape
 * instead of tensor_content. */
static void use_float_val(Tensorflow__GraphDef *gd) {
    for (size_t i = 0; i < gd->n_node; i++)
        for (size_t a = 0; a < gd->node[i]->n_attr; a++) {
            Tensorflow__AttrValue *v = gd->node[i]->attr[a]->value;
            if (v->value_case != TENSORFLOW__ATTR_VALUE__VALUE_TENSOR ||
                v->tensor->dtype != TENSORFLOW__DATA_TYPE__DT_FLOAT)
                continue;
            free(v->tensor->tensor_content.data);
            v->tensor->tensor_content.data = NULL;
            v->tensor->tensor_content.len = 0;
            v->tensor->n_float_val = 1;
            v->tensor->float_val = malloc(sizeof(float));
            v->tensor->float_val[0] = 4.5f;
        }
}

static void graph_seeds(void) {
    size_t len;
    pst_graph *g = sample_graph();
    uint8_t *buf = graph_def(g, &len);
    put("graphdef", "sample.pb", buf, len);
    put_edited_graph("cycle.pb", buf, len, make_cycle);
    put_edited_graph("missing_input.pb", buf, len, make_missing_input);
    put_edited_graph("bad_output_index.pb", buf, len, make_bad_output_index);
    free(buf);
    buf = meta_graph(g, &len);
    put("metagraph", "sample.meta", buf, len);
    free(buf);
    pst_graph_free(g);

    g = train_graph();
    buf = graph_def(g, &len);
    put("graphdef", "train_cnn_adam.pb", buf, len);
    free(buf);
    buf = meta_graph(g, &len);
    put("metagraph", "train_cnn_adam.meta", buf, len);
    free(buf);
    pst_graph_free(g);

    g = const_graph();
    buf = graph_def(g, &len);
    put("graphdef", "consts.pb", buf, len);
    put_edited_graph("consts_float_val.pb", buf, len, use_float_val);
    free(buf);
    pst_graph_free(g);

    put("graphdef", "empty.pb", "", 0);
    put("metagraph", "empty.meta", "", 0);
}

/* The TensorFlow-written SavedModel's meta graph and graph, as seeds of their own. */
static void tf_graph_seeds(const char *src) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tests/data/tf/serving_saved_model_counter/saved_model.pb", src);
    size_t len;
    uint8_t *buf = slurp(path, &len);
    put("metagraph", "tf_saved_model_counter.pb", buf, len);
    Tensorflow__SavedModel *sm = tensorflow__saved_model__unpack(NULL, len, buf);
    if (sm == NULL || sm->n_meta_graphs == 0) die(path, "not a SavedModel");
    Tensorflow__MetaGraphDef *mg = sm->meta_graphs[0];
    size_t n = tensorflow__meta_graph_def__get_packed_size(mg);
    uint8_t *out = malloc(n + 1);
    tensorflow__meta_graph_def__pack(mg, out);
    put("metagraph", "tf_counter.meta", out, n);
    free(out);
    if (mg->graph_def) {
        n = tensorflow__graph_def__get_packed_size(mg->graph_def);
        out = malloc(n + 1);
        tensorflow__graph_def__pack(mg->graph_def, out);
        put("graphdef", "tf_counter.pb", out, n);
        free(out);
    }
    tensorflow__saved_model__free_unpacked(sm, NULL);
    free(buf);
}

/* ---- Checkpoints ------------------------------------------------------------------------- */

static uint32_t le32(uint32_t v, uint8_t *p) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
    return v;
}

/* A bundle seed: the index's length, the index, the data (fuzz_bundle.c's input). */
static void put_bundle(const char *name, const char *index_path, const char *data_path) {
    size_t ilen, dlen;
    uint8_t *idx = slurp(index_path, &ilen), *data = slurp(data_path, &dlen);
    uint8_t *out = malloc(4 + ilen + dlen);
    le32((uint32_t)ilen, out);
    memcpy(out + 4, idx, ilen);
    if (dlen) memcpy(out + 4 + ilen, data, dlen);
    put("bundle", name, out, 4 + ilen + dlen);
    char sname[256];
    snprintf(sname, sizeof sname, "%.240s.index", name);
    put("sstable", sname, idx, ilen);
    free(out);
    free(idx);
    free(data);
}

static void add_tensor(pst_bundle_writer *w, const char *name, pst_dtype dt, pst_shape s,
                       const void *v) {
    pst_status st = {0};
    pst_tensor *t = pst_tensor_new_copy(dt, s, v, &st);
    if (t == NULL || pst_bundle_writer_add(w, name, t, &st) < 0) die(name, st.msg);
    pst_tensor_unref(t);
}

static void checkpoint_seeds(const char *src) {
    pst_status st = {0};
    char *prefix = tmp_path("model.ckpt-1");
    pst_bundle_writer *w = pst_bundle_writer_new(prefix, &st);
    if (w == NULL) die(prefix, st.msg);
    static const float f[6] = {1, 2, 3, 4, 5, 6};
    static const double d = 0.125;
    static const int32_t i32[2] = {-3, 3};
    static const int64_t step = 1000;
    static const uint8_t u8[3] = {7, 8, 9}, b[2] = {1, 0};
    add_tensor(w, "dense/kernel", PST_FLOAT, pst_shape_2d(2, 3), f);
    add_tensor(w, "dense/bias/Adam", PST_DOUBLE, pst_shape_scalar(), &d);
    add_tensor(w, "counts", PST_INT32, pst_shape_1d(2), i32);
    add_tensor(w, "global_step", PST_INT64, pst_shape_scalar(), &step);
    add_tensor(w, "pixels", PST_UINT8, pst_shape_1d(3), u8);
    add_tensor(w, "flags", PST_BOOL, pst_shape_1d(2), b);
    add_tensor(w, "empty", PST_FLOAT, pst_shape_2d(0, 4), NULL);
    /* A partitioned variable [4, 2] in two slices along axis 0, as TensorFlow stores one. */
    static const float p0[4] = {1, 2, 3, 4}, p1[4] = {5, 6, 7, 8};
    int64_t start0[2] = {0, 0}, start1[2] = {2, 0}, plen[2] = {2, 2};
    pst_tensor *t0 = pst_tensor_new_copy(PST_FLOAT, pst_shape_2d(2, 2), p0, NULL);
    pst_tensor *t1 = pst_tensor_new_copy(PST_FLOAT, pst_shape_2d(2, 2), p1, NULL);
    pst_shape full = pst_shape_2d(4, 2);
    if (pst_bundle_writer_add_slice(w, "part/weights", full, start0, plen, t0, &st) < 0 ||
        pst_bundle_writer_add_slice(w, "part/weights", full, start1, plen, t1, &st) < 0)
        die("slices", st.msg);
    pst_tensor_unref(t0);
    pst_tensor_unref(t1);
    if (pst_bundle_writer_finish(w, &st) < 0) die(prefix, st.msg);
    char ipath[4300], dpath[4300];
    snprintf(ipath, sizeof ipath, "%s.index", prefix);
    snprintf(dpath, sizeof dpath, "%s.data-00000-of-00001", prefix);
    put_bundle("pstrain_dtypes_slices", ipath, dpath);

    prefix = tmp_path("empty.ckpt");
    w = pst_bundle_writer_new(prefix, &st);
    if (w == NULL || pst_bundle_writer_finish(w, &st) < 0) die(prefix, st.msg);
    snprintf(ipath, sizeof ipath, "%s.index", prefix);
    snprintf(dpath, sizeof dpath, "%s.data-00000-of-00001", prefix);
    put_bundle("pstrain_empty", ipath, dpath);

    /* TensorFlow's own: a Snappy-compressed index block, and the smallest bundle. */
    static const char *tf[][2] = {{"tf_half_plus_two_snappy", "serving_half_plus_two_cpu"},
                                  {"tf_counter", "serving_saved_model_counter"}};
    for (size_t i = 0; i < sizeof tf / sizeof tf[0]; i++) {
        snprintf(ipath, sizeof ipath, "%s/tests/data/tf/%s/variables/variables.index", src,
                 tf[i][1]);
        snprintf(dpath, sizeof dpath, "%s/tests/data/tf/%s/variables/variables.data-00000-of-00001",
                 src, tf[i][1]);
        put_bundle(tf[i][0], ipath, dpath);
    }

    /* A bare table: the empty key, binary keys with NULs, enough keys for several restart
     * points (every 16 entries), values of assorted lengths. */
    pst_sstable_builder *sb = pst_sstable_builder_new();
    pst_sstable_add(sb, "", 0, "header", 6);
    pst_sstable_add(sb, "\0\x01", 2, "", 0);
    for (int i = 0; i < 40; i++) {
        char key[32], val[64];
        int kn = snprintf(key, sizeof key, "key/%03d", i);
        memset(val, 'a' + i % 26, sizeof val);
        pst_sstable_add(sb, key, (size_t)kn, val, (size_t)(i % 50));
    }
    pst_sstable_add(sb, "\xff\xff", 2, "last", 4);
    uint8_t *tb;
    size_t tlen;
    pst_sstable_finish(sb, &tb, &tlen);
    put("sstable", "restarts.sst", tb, tlen);
    free(tb);
    sb = pst_sstable_builder_new();
    pst_sstable_finish(sb, &tb, &tlen);
    put("sstable", "empty.sst", tb, tlen);
    free(tb);
}

/* ---- IDX ----------------------------------------------------------------------------------- */

/* An IDX file of unsigned bytes: magic, big-endian dims, data i * 37 mod 256. */
static size_t idx_bytes(int rank, const uint32_t *dims, uint8_t *out) {
    size_t n = 4, elems = 1;
    out[0] = out[1] = 0;
    out[2] = 0x08;
    out[3] = (uint8_t)rank;
    for (int i = 0; i < rank; i++) {
        out[n++] = (uint8_t)(dims[i] >> 24);
        out[n++] = (uint8_t)(dims[i] >> 16);
        out[n++] = (uint8_t)(dims[i] >> 8);
        out[n++] = (uint8_t)dims[i];
        elems *= dims[i];
    }
    for (size_t i = 0; i < elems; i++) out[n++] = (uint8_t)(i * 37);
    return n;
}

/* fuzz_idx.c's input: a mode byte (1: the harness gzips the rest), then the file. */
static void put_idx(const char *name, int mode, const uint8_t *file, size_t len) {
    uint8_t *out = malloc(len + 1);
    out[0] = (uint8_t)mode;
    memcpy(out + 1, file, len);
    put("idx", name, out, len + 1);
    free(out);
}

static void idx_seeds(void) {
    uint8_t buf[512];
    static const uint32_t labels[1] = {10}, images[3] = {2, 4, 4}, empty[2] = {0, 28};
    size_t n = idx_bytes(1, labels, buf);
    put_idx("labels_plain", 0, buf, n);
    n = idx_bytes(3, images, buf);
    put_idx("images_plain", 0, buf, n);
    put_idx("images_gzipped_by_harness", 1, buf, n);
    put_idx("images_truncated", 0, buf, n - 5);
    /* A .gz file as Fashion-MNIST ships them (zlib's gzip writer). */
    char *gz = tmp_path("images.gz");
    gzFile f = gzopen(gz, "wb9");
    if (f == NULL || gzwrite(f, buf, (unsigned)n) != (int)n || gzclose(f) != Z_OK) die(gz, "gzip");
    size_t zlen;
    uint8_t *z = slurp(gz, &zlen);
    put_idx("images_gz_file", 0, z, zlen);
    free(z);
    n = idx_bytes(2, empty, buf);
    put_idx("zero_images", 0, buf, n);
}

/* ---- npz ----------------------------------------------------------------------------------- */

static void put16(uint8_t *p, unsigned v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* A zip of one entry stored without compression (method 0), as numpy.savez writes. */
static size_t stored_zip(const char *fname, const uint8_t *data, size_t len, uint8_t *out) {
    size_t fl = strlen(fname), n = 0;
    uint32_t crc = (uint32_t)crc32(0, data, (uInt)len);
    le32(0x04034b50, out);
    put16(out + 4, 20);
    put16(out + 6, 0);
    put16(out + 8, 0);
    le32(0, out + 10);
    le32(crc, out + 14);
    le32((uint32_t)len, out + 18);
    le32((uint32_t)len, out + 22);
    put16(out + 26, (unsigned)fl);
    put16(out + 28, 0);
    memcpy(out + 30, fname, fl);
    memcpy(out + 30 + fl, data, len);
    n = 30 + fl + len;
    uint8_t *c = out + n;
    le32(0x02014b50, c);
    put16(c + 4, 20);
    put16(c + 6, 20);
    put16(c + 8, 0);
    put16(c + 10, 0);
    le32(0, c + 12);
    le32(crc, c + 16);
    le32((uint32_t)len, c + 20);
    le32((uint32_t)len, c + 24);
    put16(c + 28, (unsigned)fl);
    memset(c + 30, 0, 12);
    le32(0, c + 42);
    memcpy(c + 46, fname, fl);
    size_t cd = 46 + fl;
    uint8_t *e = c + cd;
    le32(0x06054b50, e);
    put16(e + 4, 0);
    put16(e + 6, 0);
    put16(e + 8, 1);
    put16(e + 10, 1);
    le32((uint32_t)cd, e + 12);
    le32((uint32_t)n, e + 16);
    put16(e + 20, 0);
    return n + cd + 22;
}

/* A .npy of int64 [3] with a version-major header (1: 2-byte length, 2: 4-byte length). */
static size_t npy_i64(int version, uint8_t *out) {
    const char *hdr = "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }";
    size_t pre = version == 1 ? 10 : 12, hl = strlen(hdr) + 1;
    size_t pad = (64 - (pre + hl) % 64) % 64, total = hl + pad;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (uint8_t)version;
    out[7] = 0;
    if (version == 1) {
        put16(out + 8, (unsigned)total);
    } else {
        le32((uint32_t)total, out + 8);
    }
    memcpy(out + pre, hdr, hl - 1);
    memset(out + pre + hl - 1, ' ', pad);
    out[pre + total - 1] = '\n';
    int64_t v[3] = {1, -2, (int64_t)1 << 50};
    memcpy(out + pre + total, v, sizeof v);
    return pre + total + sizeof v;
}

static void npz_seeds(void) {
    pst_status st = {0};
    static const float f[6] = {0.5f, 1, 1.5f, 2, 2.5f, 3};
    static const int64_t i64[3] = {1, 2, 3};
    static const uint8_t u8[4] = {1, 2, 3, 4}, b[2] = {0, 1};
    static const double d = 3.25;
    pst_tensor *ts[5] = {pst_tensor_new_copy(PST_FLOAT, pst_shape_2d(2, 3), f, NULL),
                         pst_tensor_new_copy(PST_INT64, pst_shape_1d(3), i64, NULL),
                         pst_tensor_new_copy(PST_UINT8, pst_shape_2d(2, 2), u8, NULL),
                         pst_tensor_new_copy(PST_BOOL, pst_shape_1d(2), b, NULL),
                         pst_tensor_new_copy(PST_DOUBLE, pst_shape_scalar(), &d, NULL)};
    const char *names[5] = {"dense/kernel", "global_step", "pixels", "flags", "lr"};
    char *path = tmp_path("vars.npz");
    if (pst_npz_save(path, 5, names, ts, &st) < 0) die(path, st.msg);
    size_t len;
    uint8_t *buf = slurp(path, &len);
    put("npz", "pstrain_dtypes.npz", buf, len);
    free(buf);
    if (pst_npz_save(path, 1, names, ts, &st) < 0) die(path, st.msg);
    buf = slurp(path, &len);
    put("npz", "pstrain_one.npz", buf, len);
    free(buf);
    if (pst_npz_save(path, 0, names, ts, &st) < 0) die(path, st.msg);
    buf = slurp(path, &len);
    put("npz", "empty.npz", buf, len);
    free(buf);
    for (int i = 0; i < 5; i++) pst_tensor_unref(ts[i]);

    uint8_t npy[256], zip[512];
    for (int v = 1; v <= 2; v++) {
        size_t nl = npy_i64(v, npy);
        char name[64];
        snprintf(name, sizeof name, "stored_npy_v%d.npz", v);
        put("npz", name, zip, stored_zip("step.npy", npy, nl, zip));
    }
}

/* ---- Tensor chunks ------------------------------------------------------------------------- */

/* fuzz_chunk.c's input: two split bytes, then the message's segments back to back. */
static void put_chunk(const char *name, uint8_t split_a, uint8_t split_b, pst_msg m) {
    uint8_t out[1024];
    size_t n = 2;
    out[0] = split_a;
    out[1] = split_b;
    for (int i = 0; i < m.n; i++) {
        if (n + m.seg[i].len > sizeof out) die(name, "chunk too big");
        memcpy(out + n, m.seg[i].base, m.seg[i].len);
        n += m.seg[i].len;
    }
    if (m.release) m.release(m.owner);
    put("chunk", name, out, n);
}

/* The chunk message of t's bytes [off, off + len) (aborts on error: a generator). */
static pst_msg chunk_of(const char *key, pst_tensor *t, uint64_t off, uint64_t len) {
    pst_msg m;
    pst_status st = {0};
    if (pst_chunk_msg(key, t, off, len, &m, &st) < 0) {
        fprintf(stderr, "make_corpus: %s\n", st.msg);
        abort();
    }
    return m;
}

static void chunk_seeds(void) {
    static const float f[6] = {1, 2, 3, 4, 5, 6};
    static const int64_t i64[2] = {-1, 1};
    pst_tensor *t = pst_tensor_new_copy(PST_FLOAT, pst_shape_2d(2, 3), f, NULL);
    put_chunk("whole_f32", 0, 0, chunk_of("w:0;step=7", t, 0, t->nbytes));
    put_chunk("range_f32_split", 5, 17, chunk_of("w:0;step=7", t, 8, 12));
    put_chunk("empty_range", 3, 200, chunk_of("grad/dense/kernel", t, 24, 0));
    pst_tensor_unref(t);
    t = pst_tensor_new_copy(PST_INT64, pst_shape_1d(2), i64, NULL);
    put_chunk("i64", 1, 2, chunk_of("global_step", t, 0, t->nbytes));
    pst_tensor_unref(t);
    t = pst_tensor_new(PST_FLOAT, pst_shape_2d(0, 3), NULL);
    put_chunk("empty_tensor", 0, 1, chunk_of("e", t, 0, 0));
    pst_tensor_unref(t);
}

/* ---- Task service requests (fuzz_task.c) --------------------------------------------------- */

typedef struct calls {
    uint8_t buf[8192];
    size_t n;
} calls;

/* Appends one call: the method byte, the payload's length (2 bytes, little endian), the payload
 * (the message's segments back to back; the message is released). */
static void add_call(calls *c, int method, pst_msg m) {
    size_t len = 0;
    for (int i = 0; i < m.n; i++) len += m.seg[i].len;
    if (len > 0xffff || c->n + 3 + len > sizeof c->buf) die("task", "call too big");
    c->buf[c->n++] = (uint8_t)method;
    c->buf[c->n++] = (uint8_t)(len & 0xff);
    c->buf[c->n++] = (uint8_t)(len >> 8);
    for (int i = 0; i < m.n; i++) {
        memcpy(c->buf + c->n, m.seg[i].base, m.seg[i].len);
        c->n += m.seg[i].len;
    }
    if (m.release) m.release(m.owner);
}

static void add_proto(calls *c, int method, const ProtobufCMessage *msg) {
    pst_msg m;
    pst_status st = {0};
    if (pst_task_wire_pack(msg, &m, &st) < 0) die("task", st.msg);
    add_call(c, method, m);
}

static void task_seeds(void) {
    static const float f[4] = {1, 2, 3, 4};
    pst_tensor *w = pst_tensor_new_copy(PST_FLOAT, pst_shape_1d(4), f, NULL);
    calls c = {.n = 0};
    add_call(&c, PST_TASK_STATUS, pst_msg_of(NULL, 0));
    put("task", "status", c.buf, c.n);
    c.n = 0;
    add_call(&c, PST_TASK_PUSH, chunk_of("var:w", w, 0, w->nbytes));
    Pstrain__FetchVariableRequest fr = PSTRAIN__FETCH_VARIABLE_REQUEST__INIT;
    fr.name = "w";
    add_proto(&c, PST_TASK_FETCH_VAR, &fr.base);
    put("task", "push_fetch_w", c.buf, c.n);
    c.n = 0;
    add_call(&c, PST_TASK_PUSH, chunk_of("var:w", w, 0, 8));
    add_call(&c, PST_TASK_PUSH, chunk_of("var:w", w, 0, 8));
    add_call(&c, PST_TASK_PUSH, chunk_of("var:w", w, 8, 8));
    add_call(&c, PST_TASK_PUSH, chunk_of("var:nope", w, 0, w->nbytes));
    put("task", "push_halves_twice", c.buf, c.n);
    c.n = 0;
    pst_graph *g = sample_graph();
    size_t gl;
    uint8_t *gd = graph_def(g, &gl);
    Pstrain__RegisterGraphRequest rr = PSTRAIN__REGISTER_GRAPH_REQUEST__INIT;
    rr.graph_def.data = gd;
    rr.graph_def.len = gl;
    rr.client = "/job:worker/replica:0/task:0";
    add_proto(&c, PST_TASK_REGISTER, &rr.base);
    Pstrain__RunGraphRequest run = PSTRAIN__RUN_GRAPH_REQUEST__INIT;
    run.handle = "g1";
    run.step_id = 1;
    add_proto(&c, PST_TASK_RUN, &run.base);
    Pstrain__SaveRequest sr = PSTRAIN__SAVE_REQUEST__INIT;
    sr.prefix = "model.ckpt-1";
    sr.num_shards = 1;
    add_proto(&c, PST_TASK_SAVE, &sr.base);
    Pstrain__RestoreRequest rs = PSTRAIN__RESTORE_REQUEST__INIT;
    rs.prefix = "../model.ckpt-1";
    add_proto(&c, PST_TASK_RESTORE, &rs.base);
    Pstrain__DeregisterGraphRequest dr = PSTRAIN__DEREGISTER_GRAPH_REQUEST__INIT;
    dr.handle = "g1";
    add_proto(&c, PST_TASK_DEREGISTER, &dr.base);
    Pstrain__ShutdownRequest sd = PSTRAIN__SHUTDOWN_REQUEST__INIT;
    sd.from = "/job:worker/replica:0/task:0";
    sd.reason = "";
    add_proto(&c, PST_TASK_SHUTDOWN, &sd.base);
    put("task", "register_run_save_shutdown", c.buf, c.n);
    free(gd);
    pst_graph_free(g);
    pst_tensor_unref(w);
}

/* ---- Text ---------------------------------------------------------------------------------- */

static void text_seeds(const char *src) {
    put_str("cluster", "bare.json",
            "{\"ps\": [\"127.0.0.1:2222\", \"127.0.0.1:2223\"], \"worker\": [\"127.0.0.1:2224\"]}");
    put_str("cluster", "ipv6_zone_names.json",
            "{\"chief\": [\"[::1]:2222\"],\n"
            " \"ps\": [\"[fe80::1%eth0]:2223\", \"host-a.example.com:1\"],\n"
            " \"evaluator\": [\"10.0.0.1:65535\"], \"worker_2\": [\"w_2:80\"]}\n");
    put_str("cluster", "job_file.json",
            "{\"cluster\": {\"ps\": [\"10.0.0.1:2222\"], \"worker\": [\"10.0.0.2:2222\", "
            "\"10.0.0.3:2222\"]},\n \"model\": \"mlp\", \"optimizer\": \"adam\", "
            "\"placement\": \"greedy\", \"learning_rate\": 0.001}\n");
    put_str("cluster", "duplicate.json",
            "{\"ps\": [\"127.0.0.1:2222\"], \"worker\": [\"127.0.0.1:2222\"]}");
    put_str("cluster", "bad_port.json", "{\"ps\": [\"h:0\"], \"worker\": [\"h:70000\"]}");
    put_str("cluster", "nul_escape.json", "{\"ps\": [\"127.0.0.1:22\\u0000x\"]}");
    put_str("cluster", "escaped_backslash.json", "{\"ps\": [\"a\\\\u0000:1\"]}");
    put_str("cluster", "not_object.json", "[\"127.0.0.1:2222\"]");
    put_str("cluster", "truncated.json", "{\"ps\": [\"127.0.0.1:2222\",\n");
    char path[4200];
    snprintf(path, sizeof path, "%s/examples/jobs/mlp_2ps.json", src);
    size_t len;
    uint8_t *buf = slurp(path, &len);
    put("cluster", "examples_mlp_2ps.json", buf, len);
    free(buf);

    put_str("tf_config", "worker1.json",
            "{\"cluster\": {\"ps\": [\"127.0.0.1:2222\"], \"worker\": [\"127.0.0.1:2223\", "
            "\"127.0.0.1:2224\"]}, \"task\": {\"type\": \"worker\", \"index\": 1}}");
    put_str("tf_config", "chief_ipv6.json",
            "{\"cluster\": {\"chief\": [\"[::1]:2222\"], \"ps\": [\"[::1]:2223\"]},\n"
            " \"task\": {\"type\": \"chief\", \"index\": 0}, \"environment\": \"cloud\"}");
    put_str("tf_config", "no_task.json", "{\"cluster\": {\"ps\": [\"h:1\"]}}");
    put_str("tf_config", "no_index.json",
            "{\"cluster\": {\"ps\": [\"h:1\"]}, \"task\": {\"type\": \"ps\"}}");
    put_str("tf_config", "index_out_of_range.json",
            "{\"cluster\": {\"ps\": [\"h:1\"]}, \"task\": {\"type\": \"ps\", \"index\": 1.5e9}}");
    put_str("tf_config", "bare_spec.json", "{\"ps\": [\"h:1\"]}");
    put_str("tf_config", "blank", " \t\n");

    static const char *devices[] = {
        "/job:ps/replica:0/task:1/device:CPU:0", "/job:worker/task:3", "/cpu:0", "/GPU:1",
        "/device:CPU:*", "/job:*/task:*", "/job:ps/device:gpu", "", "job:ps", "/task:999999999",
        "/job:a_very_long_job_name_that_is_still_fine_0123456789/replica:2/task:7",
    };
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "device_%02zu", i);
        put_str("device", name, devices[i]);
    }

    put_str("ckpt_state", "tf_style",
            "model_checkpoint_path: \"model.ckpt-200\"\n"
            "all_model_checkpoint_paths: \"model.ckpt-100\"\n"
            "all_model_checkpoint_paths: \"model.ckpt-200\"\n");
    put_str("ckpt_state", "absolute_paths",
            "model_checkpoint_path: \"/ckpt/run1/model.ckpt-5\"\n"
            "  all_model_checkpoint_paths: \"/ckpt/run1/model.ckpt-5\"\n\n");
    put_str("ckpt_state", "unknown_field",
            "model_checkpoint_path: \"m\"\nlast_preserved_timestamp: 1.5\n");
    put_str("ckpt_state", "no_model", "all_model_checkpoint_paths: \"model.ckpt-1\"\n");
    put_str("ckpt_state", "empty", "");
    /* And one written by pstrain itself. */
    char *paths[2] = {tmp_path("model.ckpt-10"), tmp_path("model.ckpt-20")};
    pst_status st = {0};
    if (pst_checkpoint_state_write(tmp_dir, 2, paths, &st) < 0) die(tmp_dir, st.msg);
    buf = slurp(tmp_path("checkpoint"), &len);
    put("ckpt_state", "pstrain_written", buf, len);
    free(buf);
}

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *f) {
    (void)sb;
    (void)type;
    (void)f;
    return remove(path);
}

/* ---- In-graph record decoders (fuzz_record_ops: a selector byte, then the payload) ----- */

/* Writes record_ops/name: the selector, then len bytes. */
static void put_record_op(const char *name, int selector, const void *data, size_t len) {
    uint8_t *b = malloc(len + 1);
    if (!b) die(name, "out of memory");
    b[0] = (uint8_t)selector;
    if (len) memcpy(b + 1, data, len);
    put("record_ops", name, b, len + 1);
    free(b);
}

/* A file's bytes under record_ops/name after the selector; the file is removed. */
static void put_record_op_file(const char *name, int selector, const char *path) {
    size_t len;
    uint8_t *b = slurp(path, &len);
    put_record_op(name, selector, b, len);
    free(b);
    unlink(path);
}

static void record_ops_seeds(void) {
    pst_status st = {0};
    pst_example *ex = pst_example_new();
    pst_example_add_floats(ex, "f", (float[]){1.5f, -2}, 2, &st);
    pst_example_add_int64s(ex, "i", (int64_t[]){7}, 1, &st);
    pst_example_add_int64s(ex, "s", (int64_t[]){1, 2, 3}, 3, &st);
    pst_example_add_bytes(ex, "b", &(pst_example_bytes){(const uint8_t *)"hello", 5}, 1, &st);
    pst_pbwire_buf b;
    pst_pbwire_buf_init(&b);
    if (st.code || pst_example_encode(ex, &b, &st) < 0) die("example", st.msg);
    put_record_op("parse_example", 0, b.data, b.len);
    put_record_op("parse_single_example", 1, b.data, b.len);
    float f[4] = {1, 2, 3, 4};
    put_record_op("decode_raw_f32", 2, f, sizeof f);
    put_record_op("decode_raw_i32be", 3, (uint8_t[]){0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe}, 8);
    const char *csv = "1,2.5,abc\n3,4,\"x,\"\"y\"\"\"\n-7,,";
    put_record_op("decode_csv", 4, csv, strlen(csv));
    uint8_t px[4 * 3 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 23);
    if (pst_image_write(tmp_path("seed.jpg"), 1, px, 3, 4, 3, &st) < 0) die("jpeg", st.msg);
    put_record_op_file("decode_jpeg", 5, tmp_path("seed.jpg"));
    if (pst_image_write(tmp_path("seed.png"), 0, px, 3, 4, 3, &st) < 0) die("png", st.msg);
    put_record_op_file("decode_png", 6, tmp_path("seed.png"));
    if (pst_image_write(tmp_path("seed.jpg"), 1, px, 3, 4, 3, &st) < 0) die("jpeg", st.msg);
    put_record_op_file("decode_and_crop_jpeg", 5 | 16, tmp_path("seed.jpg"));
    /* a 24-bit BMP of 3 x 2 pixels, rows bottom-up and padded to 12 bytes */
    uint8_t bmp[54 + 24] = {'B', 'M', 78, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0, 3, 0,
                            0, 0, 2, 0, 0, 0, 1, 0, 24};
    for (int i = 0; i < 24; i++) bmp[54 + i] = (uint8_t)(i * 11);
    put_record_op("decode_bmp", 6 | 16, bmp, sizeof bmp);
    /* a 2 x 2 GIF89a: a 4-color table, a control extension, one frame of literal LZW codes */
    static const uint8_t gif[] = {71, 73, 70, 56, 57, 97, 2, 0, 2, 0, 129, 0, 0, 10, 20, 30, 11,
                                  21, 31, 12, 22, 32, 13, 23, 33, 33, 249, 4, 1, 0, 0, 0, 0, 44,
                                  0, 0, 0, 0, 2, 0, 2, 0, 0, 2, 3, 140, 56, 20, 0, 59};
    put_record_op("decode_gif", 6 | 32, gif, sizeof gif);
    for (int z = 0; z < 2; z++) { /* a TFRecord file of two records, plain and zlib */
        pst_tfrecord_writer_opts wo = {.compression = z ? PST_TFRECORD_ZLIB : PST_TFRECORD_NONE};
        pst_tfrecord_writer *w = pst_tfrecord_writer_open(tmp_path("seed.tfrecord"), &wo, &st);
        if (!w || pst_tfrecord_writer_write(w, b.data, b.len, &st) < 0 ||
            pst_tfrecord_writer_write(w, "second record", 13, &st) < 0 ||
            pst_tfrecord_writer_close(w, &st) < 0)
            die("tfrecord", st.msg);
        put_record_op_file(z ? "tfrecord_zlib_auto" : "tfrecord_plain", z ? 15 : 7,
                           tmp_path("seed.tfrecord"));
    }
    pst_pbwire_buf_destroy(&b);
    pst_example_free(ex);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR   (run from the source directory)\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    const char *src = getenv("PST_SOURCE_DIR");
    if (src == NULL) src = ".";
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/pst-make-corpus-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(tmp_dir) == NULL) die(tmp_dir, "mkdtemp");
    pst_ops_init();
    graph_seeds();
    tf_graph_seeds(src);
    checkpoint_seeds(src);
    idx_seeds();
    npz_seeds();
    chunk_seeds();
    task_seeds();
    record_ops_seeds();
    text_seeds(src);
    nftw(tmp_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
