/*
 * fuzz_metagraph — pst_meta_graph_import on arbitrary bytes, into a fresh graph, and
 * pst_meta_graph_describe on them (as a MetaGraphDef and as a SavedModel). A MetaGraphDef that
 * imports must export again, and the export must import into another fresh graph with the same
 * nodes and collections.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "metagraph.h"

static FILE *devnull;

static void check_same_collections(const pst_graph *a, const pst_graph *b) {
    int n = pst_graph_num_collections(a);
    for (int i = 0; i < n; i++) {
        const char *key = pst_graph_collection_key(a, i);
        int na, nb;
        const pst_output *xa = pst_graph_collection(a, key, &na);
        const pst_output *xb = pst_graph_collection(b, key, &nb);
        PST_FUZZ_CHECK(na == nb, "collection '%s': %d members came back as %d", key, na, nb);
        for (int k = 0; k < na; k++)
            PST_FUZZ_CHECK(strcmp(xa[k].node->name, xb[k].node->name) == 0 &&
                               xa[k].index == xb[k].index,
                           "collection '%s' member %d changed", key, k);
    }
    n = pst_graph_num_value_collections(a);
    for (int i = 0; i < n; i++) {
        int is_int64, na, nb;
        const char *key = pst_graph_value_collection_key(a, i, &is_int64);
        if (is_int64) {
            const int64_t *va = pst_graph_int64_collection(a, key, &na);
            const int64_t *vb = pst_graph_int64_collection(b, key, &nb);
            PST_FUZZ_CHECK(na == nb && (na == 0 || memcmp(va, vb, (size_t)na * sizeof *va) == 0),
                           "int64 collection '%s' changed", key);
        } else {
            const float *va = pst_graph_float_collection(a, key, &na);
            const float *vb = pst_graph_float_collection(b, key, &nb);
            PST_FUZZ_CHECK(na == nb && (na == 0 || memcmp(va, vb, (size_t)na * sizeof *va) == 0),
                           "float collection '%s' changed", key);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (devnull == NULL) {
        devnull = fopen("/dev/null", "w");
        PST_FUZZ_CHECK(devnull != NULL, "cannot open /dev/null");
    }
    pst_status st = {0};
    int rc = pst_meta_graph_describe(data, size, 0, devnull, &st);
    pst_fuzz_check_status(rc, &st, "pst_meta_graph_describe");
    pst_status_clear(&st);
    rc = pst_meta_graph_describe(data, size, 1, devnull, &st);
    pst_fuzz_check_status(rc, &st, "pst_meta_graph_describe (SavedModel)");
    pst_status_clear(&st);

    pst_graph *g = pst_graph_new();
    rc = pst_meta_graph_import(g, data, size, NULL, &st);
    pst_fuzz_check_status(rc, &st, "pst_meta_graph_import");
    if (rc == 0) {
        uint8_t *buf;
        size_t len;
        rc = pst_meta_graph_export(g, NULL, &buf, &len, &st);
        pst_fuzz_check_status(rc, &st, "pst_meta_graph_export");
        PST_FUZZ_CHECK(rc == 0, "an imported meta graph does not export: %s", st.msg);
        pst_graph *g2 = pst_graph_new();
        rc = pst_meta_graph_import(g2, buf, len, NULL, &st);
        PST_FUZZ_CHECK(rc == 0, "an exported meta graph does not import: %s", st.msg);
        PST_FUZZ_CHECK(pst_graph_num_nodes(g2) == pst_graph_num_nodes(g),
                       "%d nodes came back as %d", pst_graph_num_nodes(g), pst_graph_num_nodes(g2));
        check_same_collections(g, g2);
        pst_graph_free(g2);
        free(buf);
    }
    pst_graph_free(g);
    return 0;
}
