/*
 * fuzz_graphdef — pst_graph_def_import on arbitrary bytes, into a fresh graph. A GraphDef that
 * imports must export again and that export must import into another fresh graph with the
 * same nodes (names, ops, inputs and devices in the same order): import and export are each
 * other's inverse on everything import accepts.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "metagraph.h"

static void check_same_graph(const pst_graph *a, const pst_graph *b) {
    int n = pst_graph_num_nodes(a);
    PST_FUZZ_CHECK(pst_graph_num_nodes(b) == n, "%d nodes came back as %d", n,
                   pst_graph_num_nodes(b));
    for (int i = 0; i < n; i++) {
        const pst_node *x = pst_graph_node(a, i), *y = pst_graph_node(b, i);
        PST_FUZZ_CHECK(strcmp(x->name, y->name) == 0, "node %d: '%s' came back as '%s'", i,
                       x->name, y->name);
        PST_FUZZ_CHECK(x->op == y->op, "node '%s' changed its op", x->name);
        PST_FUZZ_CHECK(x->n_inputs == y->n_inputs && x->n_control == y->n_control &&
                           x->n_outputs == y->n_outputs,
                       "node '%s' changed its inputs or outputs", x->name);
        for (int k = 0; k < x->n_outputs; k++)
            PST_FUZZ_CHECK(x->out_dtypes[k] == y->out_dtypes[k], "node '%s' output %d changed "
                           "its dtype", x->name, k);
        PST_FUZZ_CHECK(strcmp(x->device, y->device) == 0,
                       "node '%s': device '%s' came back as '%s'", x->name, x->device, y->device);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pst_graph *g = pst_graph_new();
    pst_status st = {0};
    int rc = pst_graph_def_import(g, data, size, NULL, &st);
    pst_fuzz_check_status(rc, &st, "pst_graph_def_import");
    if (rc == 0) {
        uint8_t *buf;
        size_t len;
        rc = pst_graph_def_export(g, 0, &buf, &len, &st);
        pst_fuzz_check_status(rc, &st, "pst_graph_def_export");
        PST_FUZZ_CHECK(rc == 0, "an imported graph does not export: %s", st.msg);
        pst_graph *g2 = pst_graph_new();
        rc = pst_graph_def_import(g2, buf, len, NULL, &st);
        PST_FUZZ_CHECK(rc == 0, "an exported graph does not import: %s", st.msg);
        check_same_graph(g, g2);
        pst_graph_free(g2);
        free(buf);
    }
    pst_graph_free(g);
    return 0;
}
