/* ops_embedding: the ops a partitioned embedding lookup runs (see ops_embedding.h). */
#include "ops_embedding.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ops.h"

/* ---- PstEmbeddingPartition(ids) -> (local ids, positions) for rows [start, start+len) ---- */

static int part_shape(pst_node *n, pst_status *st) {
    pst_dtype dt = pst_node_in_dtype(n, 0);
    if (dt != PST_INT32 && dt != PST_INT64)
        return pst_status_set(st, PST_E_INVALID, "ids must be int32 or int64, not %s",
                              pst_dtype_name(dt));
    pst_node_set_output(n, 0, PST_INT64, pst_shape_1d(-1));
    pst_node_set_output(n, 1, PST_INT32, pst_shape_1d(-1));
    return 0;
}

static int part_kernel(pst_kernel_ctx *c) {
    const pst_tensor *ids = c->inputs[0];
    int64_t start = pst_kctx_attr_i(c, "start", 0), len = pst_kctx_attr_i(c, "len", 0);
    int64_t total = pst_kctx_attr_i(c, "total_rows", -1);
    if (ids->shape.rank != 1)
        return pst_kctx_error(c, PST_E_INVALID, "ids must be a vector, not rank %d",
                              ids->shape.rank);
    int64_t k = 0;
    for (int64_t i = 0; i < ids->n; i++) {
        int64_t r = pst_tensor_get_i64(ids, i);
        if (r < 0 || (total >= 0 && r >= total))
            return pst_kctx_error(c, PST_E_INVALID, "id %lld (at position %lld) is outside the "
                                  "table's %lld rows", (long long)r, (long long)i,
                                  (long long)total);
        k += r >= start && r < start + len;
    }
    pst_tensor *local = pst_kctx_alloc_output(c, 0, PST_INT64, pst_shape_1d(k));
    pst_tensor *pos = pst_kctx_alloc_output(c, 1, PST_INT32, pst_shape_1d(k));
    if (!local || !pos) return c->status->code;
    int64_t j = 0;
    for (int64_t i = 0; i < ids->n; i++) {
        int64_t r = pst_tensor_get_i64(ids, i);
        if (r >= start && r < start + len) {
            pst_tensor_i64(local)[j] = r - start;
            pst_tensor_i32(pos)[j] = (int32_t)i;
            j++;
        }
    }
    return 0;
}

/* ---- DynamicStitch ---- */

static int stitch_shape(pst_node *n, pst_status *st) {
    int N = n->n_inputs / 2;
    if (N < 1 || n->n_inputs != 2 * N)
        return pst_status_set(st, PST_E_INVALID, "DynamicStitch needs N indices and N data");
    pst_dtype dt = pst_node_in_dtype(n, N);
    for (int i = 0; i < N; i++) {
        if (!pst_dtype_is_int(pst_node_in_dtype(n, i)))
            return pst_status_set(st, PST_E_INVALID, "indices %d must be integers", i);
        if (pst_node_in_dtype(n, N + i) != dt)
            return pst_status_set(st, PST_E_INVALID, "data %d is %s, data 0 is %s", i,
                                  pst_dtype_name(pst_node_in_dtype(n, N + i)), pst_dtype_name(dt));
    }
    pst_shape is = pst_node_in_shape(n, 0), ds = pst_node_in_shape(n, N), out = pst_shape_unknown();
    if (is.rank >= 0 && ds.rank >= is.rank) {
        out.rank = 1 + ds.rank - is.rank;
        out.dims[0] = -1;
        for (int d = is.rank; d < ds.rank; d++) out.dims[1 + d - is.rank] = ds.dims[d];
    }
    pst_node_set_output(n, 0, dt, out);
    return 0;
}

static int stitch_kernel(pst_kernel_ctx *c) {
    int N = c->n_inputs / 2;
    const pst_tensor *d0 = c->inputs[N], *i0 = c->inputs[0];
    int inner_rank = d0->shape.rank - i0->shape.rank;
    if (inner_rank < 0)
        return pst_kctx_error(c, PST_E_INVALID, "data 0 has a lower rank than indices 0");
    int64_t inner = 1, max = -1;
    for (int d = i0->shape.rank; d < d0->shape.rank; d++) inner *= d0->shape.dims[d];
    for (int i = 0; i < N; i++) {
        const pst_tensor *idx = c->inputs[i], *dat = c->inputs[N + i];
        if (dat->n != idx->n * inner)
            return pst_kctx_error(c, PST_E_INVALID, "data %d has %lld values for %lld indices of "
                                  "%lld each", i, (long long)dat->n, (long long)idx->n,
                                  (long long)inner);
        for (int64_t k = 0; k < idx->n; k++) {
            int64_t r = pst_tensor_get_i64(idx, k);
            if (r < 0) return pst_kctx_error(c, PST_E_INVALID, "negative index %lld", (long long)r);
            if (r > max) max = r;
        }
    }
    pst_shape os = {.rank = 1 + inner_rank};
    os.dims[0] = max + 1;
    for (int d = 0; d < inner_rank; d++) os.dims[1 + d] = d0->shape.dims[i0->shape.rank + d];
    pst_tensor *o = pst_kctx_alloc_output(c, 0, d0->dtype, os);
    if (!o) return c->status->code;
    memset(o->data, 0, o->nbytes);
    size_t es = pst_dtype_size(d0->dtype);
    for (int i = 0; i < N; i++) {
        const pst_tensor *idx = c->inputs[i], *dat = c->inputs[N + i];
        for (int64_t k = 0; k < idx->n; k++)
            memcpy((char *)o->data + (size_t)(pst_tensor_get_i64(idx, k) * inner) * es,
                   (const char *)dat->data + (size_t)(k * inner) * es, (size_t)inner * es);
    }
    return 0;
}

/* The gradient of data i is dy gathered at indices i. */
static int stitch_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int N = n->n_inputs / 2;
    for (int i = 0; i < N; i++) dx[N + i] = pst_gather(g, dy[0], n->inputs[i], 0, NULL);
    return 0;
}

static const pst_attr_spec part_attrs[] = {{"Tids", PST_ATTR_TYPE, 0},
                                           {"start", PST_ATTR_INT, 1},
                                           {"len", PST_ATTR_INT, 1},
                                           {"total_rows", PST_ATTR_INT, 0},
                                           {0}};
static const pst_attr_spec stitch_attrs[] = {{"N", PST_ATTR_INT, 0}, {"T", PST_ATTR_TYPE, 0}, {0}};

static const pst_op_def embedding_ops[] = {
    {.name = "PstEmbeddingPartition", .min_inputs = 1, .max_inputs = 1, .n_outputs = 2,
     .attrs = part_attrs, .shape = part_shape, .kernel = part_kernel,
     .flags = PST_OP_NOT_DIFFERENTIABLE},
    {.name = "DynamicStitch", .min_inputs = 2, .max_inputs = -1, .n_outputs = 1,
     .attrs = stitch_attrs, .shape = stitch_shape, .kernel = stitch_kernel, .grad = stitch_grad},
    /* TF's parallel form: the same result when indices do not repeat (TF leaves which
     * duplicate wins unspecified there; here the last, as DynamicStitch). */
    {.name = "ParallelDynamicStitch", .min_inputs = 2, .max_inputs = -1, .n_outputs = 1,
     .attrs = stitch_attrs, .shape = stitch_shape, .kernel = stitch_kernel, .grad = stitch_grad},
};

void pst__register_embedding_ops(void) {
    for (size_t i = 0; i < sizeof embedding_ops / sizeof embedding_ops[0]; i++)
        pst_op_register(&embedding_ops[i]);
}

/* ---- builders ---- */

pst_output pst_dynamic_stitch(pst_graph *g, int n, const pst_output *indices,
                              const pst_output *data, const char *name) {
    pst_node_builder *b = pst_nb_new(g, "DynamicStitch", name);
    pst_nb_inputs(b, n, indices);
    pst_nb_inputs(b, n, data);
    pst_nb_attr_i(b, "N", n);
    if (n > 0 && data[0].node) pst_nb_attr_type(b, "T", pst_output_dtype(data[0]));
    return pst_nb_finish_out(b);
}
