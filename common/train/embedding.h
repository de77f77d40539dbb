/*
 * embedding — tf.nn.embedding_lookup over a partitioned variable, with sparse updates.
 *
 * Each part (rows [start, start+len) of the full table, "div" strategy) gathers only the rows
 * the batch asks for, on the part's own device, so a PS sends k rows instead of its whole part;
 * the worker stitches them back in the order of the ids. With a plain SGD optimizer the
 * gradient stays sparse too: the gradient of the gathered rows (k x dim) travels to the PS,
 * which subtracts it from just those rows (ScatterSub). Other optimizers fall back to a dense
 * gradient of each part.
 *
 *     pst_partitioned_var *pv = pst_partitioned_var_new(g, "emb", PST_FLOAT, shape, 4, &init, 1);
 *     pst_output vecs = pst_embedding_lookup(g, pv, ids, "lookup");   // [n, dim]
 *
 * Ops: DynamicStitch and PstEmbeddingPartition (ops/ops_embedding.h).
 */
#ifndef PST_EMBEDDING_H
#define PST_EMBEDDING_H

#include "graph.h"
#include "partitioned_var.h"

/* Collection of the sparse reads: for every part, three entries in a row (the part's
 * VariableV2 output, its gathered rows, the local row ids). The optimizer uses them. */
#define PST_SPARSE_READS "pstrain_sparse_reads"

/* ids: int32 or int64 [n] of rows of the full table. Returns [n, dims[1:]...]. */
pst_output pst_embedding_lookup(pst_graph *g, const pst_partitioned_var *pv, pst_output ids,
                                const char *name);

/* If var is a part read sparsely, its gathered rows and local ids (returns 1). */
int pst_embedding_sparse_read(const pst_graph *g, pst_output var, pst_output *rows,
                              pst_output *local_ids);

#endif
