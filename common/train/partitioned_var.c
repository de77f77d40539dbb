/* partitioned_var: variables split along axis 0 (see partitioned_var.h). */
#include "partitioned_var.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

int pst_partitioned_var_count(pst_shape shape, pst_dtype dt, int fixed, int64_t min_slice_bytes,
                        int max_parts) {
    int64_t rows = shape.rank > 0 ? shape.dims[0] : 1;
    if (fixed > 0) return (int)(fixed < rows ? fixed : rows);
    int64_t total = (int64_t)pst_dtype_size(dt);
    for (int i = 0; i < shape.rank; i++) total *= shape.dims[i];
    int64_t n = min_slice_bytes > 0 ? total / min_slice_bytes : 1;
    if (n < 1) n = 1;
    if (max_parts > 0 && n > max_parts) n = max_parts;
    if (n > rows) n = rows;
    return (int)n;
}

int64_t pst_partitioned_var_rows(int64_t rows, int n, int i, int64_t *len) {
    int64_t base = rows / n, extra = rows % n;
    *len = base + (i < extra ? 1 : 0);
    return i * base + (i < extra ? i : extra);
}

void pst_partitioned_var_free(pst_partitioned_var *pv) {
    if (pv == NULL) return;
    free(pv->parts);
    free(pv->name);
    free(pv);
}

pst_partitioned_var *pst_partitioned_var_new(pst_graph *g, const char *name, pst_dtype dt,
                                              pst_shape shape, int n_parts,
                                              const pst_initializer *init, int trainable) {
    if (pst_graph_error(g)) return NULL;
    if (shape.rank < 1 || !pst_shape_is_known(&shape) || n_parts < 1 || n_parts > shape.dims[0]) {
        char buf[128];
        pst_graph_set_error(g, PST_E_INVALID,
                            "partitioned variable '%s': cannot split shape %s into %d parts", name,
                            pst_shape_str(&shape, buf, sizeof buf), n_parts);
        return NULL;
    }
    pst_partitioned_var *pv = calloc(1, sizeof *pv);
    PST_ASSERT(pv != NULL);
    pv->n_parts = n_parts;
    pv->parts = calloc((size_t)n_parts, sizeof *pv->parts);
    PST_ASSERT(pv->parts != NULL);
    pv->full_shape = shape;
    const char *scope = pst_graph_name_scope(g);
    size_t len = strlen(scope) + strlen(name) + 2;
    pv->name = malloc(len);
    PST_ASSERT(pv->name != NULL);
    snprintf(pv->name, len, "%s%s%s", scope, scope[0] ? "/" : "", name);
    pst_output *reads = calloc((size_t)n_parts, sizeof *reads);
    PST_ASSERT(reads != NULL);
    int64_t full_dims[PST_MAX_RANK];
    for (int d = 0; d < shape.rank; d++) full_dims[d] = shape.dims[d];
    for (int i = 0; i < n_parts && !pst_graph_error(g); i++) {
        int64_t rows;
        int64_t start = pst_partitioned_var_rows(shape.dims[0], n_parts, i, &rows);
        pst_shape ps = shape;
        ps.dims[0] = rows;
        char pname[512];
        snprintf(pname, sizeof pname, "%s/part_%d", name, i);
        pst_variable_opts o = {.name = pname,
                               .dtype = dt,
                               .shape = ps,
                               .init_fn = pst_init_fn_of,
                               .init_ctx = (void *)init,
                               .trainable = trainable};
        pv->parts[i] = pst_variable_ex(g, &o);
        if (pv->parts[i].node == NULL) break;
        /* TF's SaveSliceInfo, kept as internal attrs the saver and exporter read. */
        pst_node *n = pv->parts[i].node;
        int64_t offset[PST_MAX_RANK] = {0};
        offset[0] = start;
        pst_attr extra[4];
        memset(extra, 0, sizeof extra);
        extra[0] = (pst_attr){.name = "_save_slice_full_name", .kind = PST_ATTR_STRING};
        extra[0].v.s = pv->name;
        extra[1] = (pst_attr){.name = "_save_slice_full_shape", .kind = PST_ATTR_LIST_INT,
                              .n = shape.rank};
        extra[1].list.i = full_dims;
        extra[2] = (pst_attr){.name = "_save_slice_var_offset", .kind = PST_ATTR_LIST_INT,
                              .n = shape.rank};
        extra[2].list.i = offset;
        extra[3] = (pst_attr){.name = "_save_slice_var_shape", .kind = PST_ATTR_LIST_INT,
                              .n = shape.rank};
        extra[3].list.i = ps.dims;
        n->attrs = realloc(n->attrs, (size_t)(n->n_attrs + 4) * sizeof *n->attrs);
        PST_ASSERT(n->attrs != NULL);
        for (int k = 0; k < 4; k++) pst_attr_copy(&n->attrs[n->n_attrs++], &extra[k], NULL);
        reads[i] = pst_variable_value(pv->parts[i]);
    }
    if (!pst_graph_error(g)) {
        pst_graph_push_name_scope(g, name, 0);
        pv->value = n_parts == 1 ? reads[0] : pst_concat(g, n_parts, reads, 0, "concat");
        pst_graph_pop_name_scope(g);
    }
    free(reads);
    if (pst_graph_error(g)) {
        pst_partitioned_var_free(pv);
        return NULL;
    }
    return pv;
}
