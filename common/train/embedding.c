/* embedding: partitioned embedding lookups with sparse updates (see embedding.h). */
#include "embedding.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "partitioned_var.h"
#include "ops_embedding.h"

pst_output pst_embedding_lookup(pst_graph *g, const pst_partitioned_var *pv, pst_output ids,
                                const char *name) {
    if (pst_graph_error(g)) return pst_out(NULL, 0);
    pst_graph_push_name_scope(g, name ? name : "embedding_lookup", 0);
    int n = pv->n_parts;
    pst_output *pos = calloc((size_t)n, sizeof *pos), *rows = calloc((size_t)n, sizeof *rows);
    for (int i = 0; i < n && !pst_graph_error(g); i++) {
        int64_t len;
        int64_t start = pst_partitioned_var_rows(pv->full_shape.dims[0], n, i, &len);
        char nm[64];
        snprintf(nm, sizeof nm, "partition_%d", i);
        /* Which ids this part holds: computed where the ids are (the worker). */
        pst_node_builder *b = pst_nb_new(g, "PstEmbeddingPartition", nm);
        pst_nb_input(b, ids);
        if (ids.node) pst_nb_attr_type(b, "Tids", pst_output_dtype(ids));
        pst_nb_attr_i(b, "start", start);
        pst_nb_attr_i(b, "len", len);
        pst_nb_attr_i(b, "total_rows", pv->full_shape.dims[0]);
        pst_node *pn = pst_nb_finish(b);
        if (!pn) break;
        pos[i] = pst_out(pn, 1);
        /* The rows are gathered next to the part, so only they travel. */
        pst_graph_push_device(g, pv->parts[i].node->device);
        snprintf(nm, sizeof nm, "gather_%d", i);
        rows[i] = pst_gather(g, pst_variable_value(pv->parts[i]), pst_out(pn, 0), 0, nm);
        pst_graph_pop_device(g);
        pst_graph_add_to_collection(g, PST_SPARSE_READS, pv->parts[i]);
        pst_graph_add_to_collection(g, PST_SPARSE_READS, rows[i]);
        pst_graph_add_to_collection(g, PST_SPARSE_READS, pst_out(pn, 0));
    }
    pst_output out = pst_graph_error(g) ? pst_out(NULL, 0)
                                        : pst_dynamic_stitch(g, n, pos, rows, "stitch");
    pst_graph_pop_name_scope(g);
    free(pos);
    free(rows);
    return out;
}

int pst_embedding_sparse_read(const pst_graph *g, pst_output var, pst_output *rows,
                              pst_output *local_ids) {
    int n = 0;
    const pst_output *c = pst_graph_collection(g, PST_SPARSE_READS, &n);
    for (int i = 0; i + 2 < n; i += 3)
        if (c[i].node == var.node && c[i].index == var.index) {
            *rows = c[i + 1];
            *local_ids = c[i + 2];
            return 1;
        }
    return 0;
}
