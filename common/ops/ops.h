/*
 * ops — builders for every registered op, one header per family:
 *   ops_state.h  constants, placeholders, variables, assignment, identity, control flow helpers
 *   ops_math.h   elementwise arithmetic, reductions, activations, comparisons, casts
 *   ops_nn.h     matmul, conv, pooling, softmax and cross entropy, batch norm, bias add
 *   ops_array.h  reshape, shape, slicing, concat/split, pad, tile, gather, one-hot, fill, range
 *   ops_random.h random uniform / normal / truncated normal
 *   ops_train.h  optimizer apply ops (gradient descent, momentum, Adam, Adagrad, RMSProp)
 *   ops_embedding.h  DynamicStitch and the partitioned lookup's id partition
 * (_Send/_Recv, ops_sendrecv.c, are added by graph partitioning, not by builders.)
 *
 * The graph core (graph/op.h) knows no op: a program calls pst_ops_init() once, before it
 * builds or imports a graph, to register these families (as a Lua program opens its libraries):
 *
 *     pst_ops_init();
 *     pst_graph *g = pst_graph_new();
 *     pst_output y = pst_matmul(g, x, w, 0, 0, NULL);
 *
 * A builder adds one node and returns its output (a null output if the graph is in error).
 * `name` may be NULL, giving the op's name ("Add", "Add_1", ...) under the current scope.
 */
#ifndef PST_OPS_H
#define PST_OPS_H

#include "ops_array.h"
#include "ops_embedding.h"
#include "ops_math.h"
#include "ops_nn.h"
#include "ops_random.h"
#include "ops_state.h"
#include "ops_train.h"

/* Registers every built-in op family; idempotent and thread-safe. */
void pst_ops_init(void);

#endif
