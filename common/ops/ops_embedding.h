/*
 * ops_embedding — the ops of a partitioned embedding lookup: TensorFlow's DynamicStitch (with
 * its gradient) and PstEmbeddingPartition (which ids of a batch fall in rows [start, start+len)
 * of the full table: their local row numbers and their positions in the batch).
 * train/embedding.h builds lookups from them.
 */
#ifndef PST_OPS_EMBEDDING_H
#define PST_OPS_EMBEDDING_H

#include "graph.h"

/* DynamicStitch(indices[0..n), data[0..n)): out[indices[i][j]] = data[i][j]. */
pst_output pst_dynamic_stitch(pst_graph *g, int n, const pst_output *indices,
                              const pst_output *data, const char *name);

#endif
