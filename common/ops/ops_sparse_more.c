/* SparseTensorDenseMatMul (issue 17; tf.sparse_tensor_dense_matmul, as graph convolutional
 * networks run it): op(A) op(B) for A a SparseTensor (a_indices [nnz, 2], a_values [nnz],
 * a_shape [2]) and B dense [K, N], op the adjoint when adjoint_a / adjoint_b; repeated indices
 * add up. An index outside a_shape, or shapes that do not multiply, are errors naming the node.
 * Gradients as sparse_grad.py's: for a_values, the rows of dy and of B its indices pair;
 * for B, the same op with adjoint_a flipped. */
#include <string.h>

#include "op.h"
#include "ops.h"

static int spmm_kernel(pst_kernel_ctx *c) {
    const pst_tensor *ix = c->inputs[0], *val = c->inputs[1], *shp = c->inputs[2], *b = c->inputs[3];
    int adj_a = pst_kctx_attr_b(c, "adjoint_a", 0), adj_b = pst_kctx_attr_b(c, "adjoint_b", 0);
    char s1[128], s2[128];
    if (ix->shape.rank != 2 || ix->shape.dims[1] != 2 || val->shape.rank != 1 || val->n != ix->shape.dims[0] || shp->n != 2)
        return pst_kctx_error(c, PST_E_INVALID, "a_indices %s, a_values %s and a_shape of %lld must describe a sparse matrix",
                              pst_shape_str(&ix->shape, s1, sizeof s1), pst_shape_str(&val->shape, s2, sizeof s2), (long long)shp->n);
    if (b->shape.rank != 2 || b->dtype != val->dtype)
        return pst_kctx_error(c, PST_E_INVALID, "b must be a matrix of a_values' dtype");
    int64_t ar = pst_tensor_get_i64(shp, 0), ac = pst_tensor_get_i64(shp, 1);
    int64_t M = adj_a ? ac : ar, K = adj_a ? ar : ac;
    int64_t bk = b->shape.dims[adj_b ? 1 : 0], N = b->shape.dims[adj_b ? 0 : 1];
    if (K != bk)
        return pst_kctx_error(c, PST_E_INVALID, "cannot multiply A (%lld x %lld, adjoint %d) and B %s (adjoint %d)",
                              (long long)ar, (long long)ac, adj_a, pst_shape_str(&b->shape, s1, sizeof s1), adj_b);
    int64_t nnz = ix->shape.dims[0];
    for (int64_t k = 0; k < nnz; k++) {
        int64_t i = pst_tensor_get_i64(ix, 2 * k), j = pst_tensor_get_i64(ix, 2 * k + 1);
        if (i < 0 || i >= ar || j < 0 || j >= ac)
            return pst_kctx_error(c, PST_E_INVALID, "index [%lld, %lld] (entry %lld) is outside a_shape [%lld, %lld]",
                                  (long long)i, (long long)j, (long long)k, (long long)ar, (long long)ac);
    }
    pst_tensor *o = pst_tensor_new_zeros(val->dtype, pst_shape_2d(M, N), c->status);
    if (o == NULL) return c->status->code;
    int64_t bc = b->shape.dims[1];
    for (int64_t k = 0; k < nnz; k++) {
        int64_t i = pst_tensor_get_i64(ix, 2 * k), j = pst_tensor_get_i64(ix, 2 * k + 1);
        int64_t row = adj_a ? j : i, kk = adj_a ? i : j;
        double v = pst_tensor_get_f64(val, k);
        for (int64_t n = 0; n < N; n++) {
            double bv = pst_tensor_get_f64(b, adj_b ? n * bc + kk : kk * bc + n);
            pst_tensor_set_f64(o, row * N + n, pst_tensor_get_f64(o, row * N + n) + v * bv);
        }
    }
    pst_kctx_set_output(c, 0, o);
    return 0;
}

static int spmm_shape(pst_node *n, pst_status *st) {
    pst_dtype it = pst_node_in_dtype(n, 0);
    if (it != PST_INT32 && it != PST_INT64) return pst_status_set(st, PST_E_INVALID, "a_indices must be int32 or int64");
    if (pst_node_in_dtype(n, 2) != PST_INT64) return pst_status_set(st, PST_E_INVALID, "a_shape must be int64");
    if (pst_node_in_dtype(n, 1) != pst_node_in_dtype(n, 3))
        return pst_status_set(st, PST_E_INVALID, "a_values is %s, b %s", pst_dtype_name(pst_node_in_dtype(n, 1)),
                              pst_dtype_name(pst_node_in_dtype(n, 3)));
    int adj_a = pst_node_attr_b(n, "adjoint_a", 0), adj_b = pst_node_attr_b(n, "adjoint_b", 0);
    const pst_tensor *shp = pst_node_in_const(n, 2);
    pst_shape b = pst_node_in_shape(n, 3);
    int64_t M = shp && shp->n == 2 ? pst_tensor_get_i64(shp, adj_a ? 1 : 0) : -1;
    int64_t N = b.rank == 2 ? b.dims[adj_b ? 0 : 1] : -1;
    pst_node_set_output(n, 0, pst_node_in_dtype(n, 1), pst_shape_2d(M, N));
    return 0;
}

static int spmm_grad(pst_graph *g, pst_node *n, const pst_output *dy, pst_output *dx) {
    int adj_a = pst_node_attr_b(n, "adjoint_a", 0), adj_b = pst_node_attr_b(n, "adjoint_b", 0);
    pst_output ix = n->inputs[0], b = n->inputs[3];
    pst_node_builder *nb = pst_nb_new(g, "SparseTensorDenseMatMul", NULL);
    pst_nb_inputs(nb, 4, (pst_output[]){ix, n->inputs[1], n->inputs[2], dy[0]});
    pst_nb_attr_type(nb, "T", pst_output_dtype(dy[0]));
    pst_nb_attr_type(nb, "Tindices", pst_output_dtype(ix));
    pst_nb_attr_b(nb, "adjoint_a", !adj_a);
    pst_output bg = pst_nb_finish_out(nb);
    if (adj_b) bg = pst_transpose(g, bg, 2, (int32_t[]){1, 0}, NULL);
    pst_output rows = pst_gather(g, ix, pst_const_i32(g, 0, NULL), 1, NULL);
    pst_output cols = pst_gather(g, ix, pst_const_i32(g, 1, NULL), 1, NULL);
    pst_output pa = pst_gather(g, dy[0], adj_a ? cols : rows, 0, NULL);
    pst_output pb = pst_gather(g, adj_b ? pst_transpose(g, b, 2, (int32_t[]){1, 0}, NULL) : b, adj_a ? rows : cols, 0, NULL);
    dx[1] = pst_reduce_sum(g, pst_mul(g, pa, pb, NULL), 1, (int32_t[]){1}, 0, NULL);
    dx[3] = bg;
    return 0;
}

static const pst_attr_spec spmm_attrs[] = {{"T", PST_ATTR_TYPE, 0}, {"Tindices", PST_ATTR_TYPE, 0},
                                           {"adjoint_a", PST_ATTR_BOOL, 0}, {"adjoint_b", PST_ATTR_BOOL, 0}, {0}};
static const pst_op_def spmm_op = {.name = "SparseTensorDenseMatMul", .min_inputs = 4, .max_inputs = 4, .n_outputs = 1,
                                   .attrs = spmm_attrs, .shape = spmm_shape, .kernel = spmm_kernel, .grad = spmm_grad};

void pst__register_sparse_more_ops(void) { pst_op_register(&spmm_op); }
