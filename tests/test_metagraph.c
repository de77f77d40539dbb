/* GraphDef / MetaGraphDef export and import, and reading TensorFlow's SavedModel protos. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metagraph.h"
#include "op.h"
#include "testutil.h"
#include "tf_graph.pb-c.h"
#include "file.h"

static char *testdata(const char *rel) {
    static char buf[4096];
    const char *src = getenv("PST_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/tests/data/tf/%s", src ? src : ".", rel);
    return buf;
}

static pst_graph *sample_graph(void) {
    pst_graph *g = pst_graph_new();
    pst_graph_push_device(g, "/job:ps/task:0");
    pst_output a = pst_variable(g, "a", pst_const_f32(g, 2, NULL), 1);
    pst_graph_pop_device(g);
    pst_output b = pst_variable(g, "b", pst_const_f32(g, 3, NULL), 0);
    pst_output x = pst_placeholder(g, "x", PST_FLOAT, pst_shape_scalar());
    pst_output terms[3] = {pst_variable_value(a), pst_variable_value(b), x};
    pst_output y = pst_add_n(g, 3, terms, "y");
    pst_graph_add_to_collection(g, "train_var", a);
    pst_graph_add_to_collection(g, "hparams", pst_const_f32(g, 0.01f, "learning_rate"));
    pst_graph_add_to_collection(g, "outputs", y);
    pst_graph_add_int64_to_collection(g, "hparams_int", 100);
    pst_graph_add_int64_to_collection(g, "hparams_int", 2000);
    pst_graph_add_float_to_collection(g, "hparams_float", 0.5f);
    pst_global_variables_initializer(g);
    ck_assert_msg(pst_graph_error(g) == 0, "%s", pst_graph_status(g)->msg);
    return g;
}

START_TEST(test_meta_graph_round_trip) {
    pst_graph *g = sample_graph();
    pst_status st = {0};
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(pst_meta_graph_export(g, NULL, &buf, &len, &st), 0);
    pst_graph *h = pst_graph_new();
    ck_assert_msg(pst_meta_graph_import(h, buf, len, NULL, &st) == 0, "%s", st.msg);
    ck_assert_int_eq(pst_graph_num_nodes(h), pst_graph_num_nodes(g));
    for (int i = 0; i < pst_graph_num_nodes(g); i++) {
        pst_node *n = pst_graph_node(g, i), *m = pst_graph_find(h, n->name);
        ck_assert_msg(m != NULL, "node %s missing after import", n->name);
        ck_assert_str_eq(m->op->name, n->op->name);
        ck_assert_str_eq(m->device, n->device);
        ck_assert_int_eq(m->n_inputs, n->n_inputs);
        ck_assert_int_eq(m->n_control, n->n_control);
        ck_assert_int_eq(m->n_attrs, n->n_attrs);
    }
    int nv, nt, nh;
    pst_graph_collection(h, PST_GLOBAL_VARIABLES, &nv);
    pst_graph_collection(h, PST_TRAINABLE_VARIABLES, &nt);
    const pst_output *hp = pst_graph_collection(h, "hparams", &nh);
    ck_assert_int_eq(nv, 2);
    ck_assert_int_eq(nt, 1);
    ck_assert_int_eq(nh, 1);
    const int64_t *hi = pst_graph_int64_collection(h, "hparams_int", &nh);
    ck_assert_int_eq(nh, 2);
    ck_assert_int_eq(hi[1], 2000);
    const float *hf = pst_graph_float_collection(h, "hparams_float", &nh);
    ck_assert_int_eq(nh, 1);
    ck_assert_float_eq(hf[0], 0.5f);
    /* The imported graph runs: init, then y = a + b + x. */
    pst_session *s = pst_session_new(h, NULL, &st);
    ck_assert_int_eq(pst_session_run_target(s, pst_graph_find(h, "init"), &st), 0);
    pst_tensor *lr = pst_session_run1(s, hp[0], &st);
    ck_assert_float_eq_tol(pst_tensor_f32(lr)[0], 0.01f, 1e-7);
    int no;
    const pst_output *outs = pst_graph_collection(h, "outputs", &no);
    pst_tensor *xt = pst_tensor_scalar_f32(1);
    pst_feed f = {pst_graph_output_by_name(h, "x"), xt};
    pst_tensor *y = pst_test_run(s, outs[0], 1, &f);
    ck_assert_float_eq(pst_tensor_f32(y)[0], 6.0f);
    pst_tensor_unref(y);
    pst_tensor_unref(xt);
    pst_tensor_unref(lr);
    pst_session_free(s);
    pst_graph_free(h);
    /* clear_devices and collection_list on export. */
    const char *keep[] = {"hparams", NULL};
    pst_meta_export_opts eo = {.collection_list = keep, .clear_devices = 1};
    free(buf);
    ck_assert_int_eq(pst_meta_graph_export(g, &eo, &buf, &len, &st), 0);
    h = pst_graph_new();
    ck_assert_int_eq(pst_meta_graph_import(h, buf, len, NULL, &st), 0);
    ck_assert_str_eq(pst_graph_find(h, "a")->device, "");
    pst_graph_collection(h, PST_GLOBAL_VARIABLES, &nv);
    ck_assert_int_eq(nv, 0);
    pst_graph_collection(h, "hparams", &nh);
    ck_assert_int_eq(nh, 1);
    pst_graph_free(h);
    free(buf);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_import_clear_devices_and_scope) {
    pst_graph *g = sample_graph();
    pst_status st = {0};
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(pst_meta_graph_export(g, NULL, &buf, &len, &st), 0);
    pst_graph *h = pst_graph_new();
    pst_meta_import_opts io = {.clear_devices = 1, .import_scope = "imported"};
    ck_assert_msg(pst_meta_graph_import(h, buf, len, &io, &st) == 0, "%s", st.msg);
    pst_node *a = pst_graph_find(h, "imported/a");
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(a->device, "");
    ck_assert_ptr_nonnull(pst_graph_find(h, "imported/a/read"));
    free(buf);
    pst_graph_free(h);
    pst_graph_free(g);
}
END_TEST

static uint8_t *graph_def_with(int n, const char *const *names, const char *const *ops,
                               const char *const *inputs, size_t *len) {
    Tensorflow__GraphDef gd = TENSORFLOW__GRAPH_DEF__INIT;
    Tensorflow__NodeDef nodes[4], *ptrs[4];
    char *ins[4];
    for (int i = 0; i < n; i++) {
        Tensorflow__NodeDef init = TENSORFLOW__NODE_DEF__INIT;
        nodes[i] = init;
        nodes[i].name = (char *)names[i];
        nodes[i].op = (char *)ops[i];
        if (inputs[i]) {
            ins[i] = (char *)inputs[i];
            nodes[i].n_input = 1;
            nodes[i].input = &ins[i];
        }
        ptrs[i] = &nodes[i];
    }
    gd.n_node = (size_t)n;
    gd.node = ptrs;
    *len = tensorflow__graph_def__get_packed_size(&gd);
    uint8_t *buf = malloc(*len);
    tensorflow__graph_def__pack(&gd, buf);
    return buf;
}


/* A GraphDef of one Const node "c" of dtype float whose value has the given shape and either
 * content bytes or one float value. */
static uint8_t *const_graph_def(int rank, const int64_t *dims, const void *content, size_t clen,
                                size_t *len) {
    Tensorflow__TensorShapeProto sh = TENSORFLOW__TENSOR_SHAPE_PROTO__INIT;
    Tensorflow__TensorShapeProto__Dim dd[4], *dp[4];
    for (int i = 0; i < rank; i++) {
        Tensorflow__TensorShapeProto__Dim d0 = TENSORFLOW__TENSOR_SHAPE_PROTO__DIM__INIT;
        dd[i] = d0;
        dd[i].size = dims[i];
        dp[i] = &dd[i];
    }
    sh.n_dim = (size_t)rank;
    sh.dim = dp;
    Tensorflow__TensorProto tp = TENSORFLOW__TENSOR_PROTO__INIT;
    tp.dtype = TENSORFLOW__DATA_TYPE__DT_FLOAT;
    tp.tensor_shape = &sh;
    float one = 1;
    if (content) {
        tp.tensor_content.data = (uint8_t *)content;
        tp.tensor_content.len = clen;
    } else {
        tp.n_float_val = 1;
        tp.float_val = &one;
    }
    Tensorflow__AttrValue value = TENSORFLOW__ATTR_VALUE__INIT, dtype = TENSORFLOW__ATTR_VALUE__INIT;
    value.value_case = TENSORFLOW__ATTR_VALUE__VALUE_TENSOR;
    value.tensor = &tp;
    dtype.value_case = TENSORFLOW__ATTR_VALUE__VALUE_TYPE;
    dtype.type = TENSORFLOW__DATA_TYPE__DT_FLOAT;
    Tensorflow__NodeDef__AttrEntry a0 = TENSORFLOW__NODE_DEF__ATTR_ENTRY__INIT,
                                   a1 = TENSORFLOW__NODE_DEF__ATTR_ENTRY__INIT;
    a0.key = "dtype";
    a0.value = &dtype;
    a1.key = "value";
    a1.value = &value;
    Tensorflow__NodeDef__AttrEntry *attrs[2] = {&a0, &a1};
    Tensorflow__NodeDef nd = TENSORFLOW__NODE_DEF__INIT;
    nd.name = "c";
    nd.op = "Const";
    nd.n_attr = 2;
    nd.attr = attrs;
    Tensorflow__NodeDef *np = &nd;
    Tensorflow__GraphDef gd = TENSORFLOW__GRAPH_DEF__INIT;
    gd.n_node = 1;
    gd.node = &np;
    *len = tensorflow__graph_def__get_packed_size(&gd);
    uint8_t *buf = malloc(*len);
    tensorflow__graph_def__pack(&gd, buf);
    return buf;
}

typedef struct import_ctx {
    const uint8_t *buf;
    size_t len;
} import_ctx;

static int import_graph(void *ctx, pst_status *st) {
    import_ctx *c = ctx;
    pst_graph *g = pst_graph_new();
    int rc = pst_graph_def_import(g, c->buf, c->len, NULL, st);
    pst_graph_free(g);
    return rc;
}

/* A constant's shape is checked against the bytes its proto holds before the tensor is
 * allocated (under a 256 MiB address-space limit): 4 content bytes for 2^40 floats, and one
 * value broadcast over 4 GiB, are errors naming the node. */
START_TEST(test_constant_sizes_checked_before_allocating) {
    const float four[1] = {4};
    struct {
        int64_t dims[2];
        int content;
        const char *error;
    } cases[] = {{{(int64_t)1 << 20, (int64_t)1 << 20}, 1, "tensor_content has 4 bytes, shape needs 4398046511104"},
                 {{(int64_t)1 << 28, 4}, 0, "larger than the 1073741824 bytes a meta graph may hold"},
                 {{1, 1}, 1, NULL}};
    for (int c = 0; c < 3; c++) {
        import_ctx ic;
        ic.buf = const_graph_def(2, cases[c].dims, cases[c].content ? four : NULL, 4, &ic.len);
        pst_status st = {0};
        int rc = pst_test_run_with_memory_limit(import_graph, &ic, (size_t)256 << 20, &st);
        if (cases[c].error == NULL)
            ck_assert_msg(rc == 0, "%s", st.msg);
        else
            ck_assert_msg(rc == PST_E_INVALID && strstr(st.msg, "'c'") && strstr(st.msg, cases[c].error),
                          "case %d: %d %s", c, rc, st.msg);
        free((void *)ic.buf);
    }
}
END_TEST

START_TEST(test_cycle_rejected_naming_node) {
    const char *names[] = {"p", "q"}, *ops[] = {"Identity", "Identity"}, *ins[] = {"q", "p"};
    size_t len;
    uint8_t *buf = graph_def_with(2, names, ops, ins, &len);
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    ck_assert_int_eq(pst_graph_def_import(g, buf, len, NULL, &st), PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(st.msg, "cycle"));
    ck_assert(strstr(st.msg, "'p'") || strstr(st.msg, "'q'"));
    free(buf);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_unknown_op_and_missing_input) {
    const char *names[] = {"w"}, *ops[] = {"Frobnicate"}, *ins[] = {NULL};
    size_t len;
    uint8_t *buf = graph_def_with(1, names, ops, ins, &len);
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    ck_assert_int_eq(pst_graph_def_import(g, buf, len, NULL, &st), PST_E_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(st.msg, "'w'"));
    ck_assert_ptr_nonnull(strstr(st.msg, "Frobnicate"));
    free(buf);
    const char *names2[] = {"v"}, *ops2[] = {"Identity"}, *ins2[] = {"ghost:0"};
    buf = graph_def_with(1, names2, ops2, ins2, &len);
    pst_status_clear(&st);
    ck_assert_int_eq(pst_graph_def_import(g, buf, len, NULL, &st), PST_E_INVALID);
    ck_assert_ptr_nonnull(strstr(st.msg, "ghost"));
    free(buf);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_describe_tf_saved_model) {
    uint8_t *buf;
    size_t len;
    pst_status st = {0};
    ck_assert_msg(pst_file_read(testdata("serving_half_plus_two_cpu/saved_model.pb"), (size_t)1 << 30, &buf, &len,
                                &st) == 0,
                  "%s", st.msg);
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    ck_assert_int_eq(pst_meta_graph_describe(buf, len, 1, f, &st), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "tags [serve]"));
    ck_assert_ptr_nonnull(strstr(text, "collection variables (bytes_list"));
    ck_assert_ptr_nonnull(strstr(text, "  a float []"));
    ck_assert_ptr_nonnull(strstr(text, "  b float []"));
    free(text);
    free(buf);
}
END_TEST

START_TEST(test_graph_def_export_is_tensorflow_shaped) {
    pst_graph *g = sample_graph();
    pst_status st = {0};
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(pst_graph_def_export(g, 0, &buf, &len, &st), 0);
    Tensorflow__GraphDef *gd = tensorflow__graph_def__unpack(NULL, len, buf);
    ck_assert_ptr_nonnull(gd);
    int found = 0;
    for (size_t i = 0; i < gd->n_node; i++) {
        Tensorflow__NodeDef *n = gd->node[i];
        if (strcmp(n->name, "a/read") == 0) {
            found = 1;
            ck_assert_str_eq(n->op, "Identity");
            ck_assert_str_eq(n->input[0], "a");
            ck_assert_str_eq(n->device, "/job:ps/task:0");
        }
        if (strcmp(n->name, "init") == 0) ck_assert_str_eq(n->input[0], "^a/Assign");
    }
    ck_assert(found);
    tensorflow__graph_def__free_unpacked(gd, NULL);
    free(buf);
    pst_graph_free(g);
}
END_TEST

START_TEST(test_meta_show_cli) {
    const char *bin = getenv("PST_BINARY_DIR");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain meta show %s", bin ? bin : "build",
             testdata("serving_half_plus_two_cpu/saved_model.pb"));
    FILE *p = popen(cmd, "r");
    char out[16384];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_ptr_nonnull(strstr(out, "collection variables"));
    ck_assert_ptr_nonnull(strstr(out, "  a float []"));
    snprintf(cmd, sizeof cmd, "%s/launcher/pstrain meta show /nonexistent.meta 2>/dev/null", bin ? bin : "build");
    ck_assert_int_ne(system(cmd), 0);
}
END_TEST

/* A NodeDef attr entry with a key and no value (40 bytes from a hostile peer once crashed a PS)
 * is an error naming the node and the attr; so is a shape attr whose shape is missing. */
START_TEST(test_attr_without_value_is_an_error) {
    for (int variant = 0; variant < 2; variant++) {
        Tensorflow__NodeDef__AttrEntry e = TENSORFLOW__NODE_DEF__ATTR_ENTRY__INIT;
        Tensorflow__AttrValue v = TENSORFLOW__ATTR_VALUE__INIT;
        e.key = variant == 0 ? "dtype" : "shape";
        if (variant == 1) {
            v.value_case = TENSORFLOW__ATTR_VALUE__VALUE_SHAPE; /* case set, message absent */
            e.value = &v;
        }
        Tensorflow__NodeDef__AttrEntry *attrs[1] = {&e};
        Tensorflow__NodeDef nd = TENSORFLOW__NODE_DEF__INIT;
        nd.name = "x";
        nd.op = "Placeholder";
        nd.n_attr = 1;
        nd.attr = attrs;
        Tensorflow__NodeDef *nodes[1] = {&nd};
        Tensorflow__GraphDef gd = TENSORFLOW__GRAPH_DEF__INIT;
        gd.n_node = 1;
        gd.node = nodes;
        size_t len = tensorflow__graph_def__get_packed_size(&gd);
        uint8_t *buf = malloc(len);
        tensorflow__graph_def__pack(&gd, buf);
        pst_graph *g = pst_graph_new();
        pst_status st = {0};
        ck_assert_int_lt(pst_graph_def_import(g, buf, len, NULL, &st), 0);
        ck_assert_msg(strstr(st.msg, "node 'x'") && strstr(st.msg, e.key), "%s", st.msg);
        pst_graph_free(g);
        free(buf);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("metagraph");
    TCase *tc = tcase_create("metagraph");
    tcase_add_test(tc, test_meta_graph_round_trip);
    tcase_add_test(tc, test_import_clear_devices_and_scope);
    tcase_add_test(tc, test_cycle_rejected_naming_node);
    tcase_add_test(tc, test_unknown_op_and_missing_input);
    tcase_add_test(tc, test_describe_tf_saved_model);
    tcase_add_test(tc, test_graph_def_export_is_tensorflow_shaped);
    tcase_add_test(tc, test_meta_show_cli);
    tcase_add_test(tc, test_constant_sizes_checked_before_allocating);
    tcase_add_test(tc, test_attr_without_value_is_an_error);
    suite_add_tcase(s, tc);
    return pst_test_main(s);
}
