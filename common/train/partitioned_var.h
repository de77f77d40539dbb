/*
 * partitioned_var — a variable split along axis 0 into parts `w/part_0`, `w/part_1`, ...
 * (tf.fixed_size_partitioner / min_max_variable_partitioner with TF's "div" rows: the first
 * dim % n parts get one more row). Each part is its own variable that the replica setter may put
 * on another PS; the model reads the concatenation. Each part records TF's save-slice info so a
 * checkpoint stores it under the full name.
 *
 *     int n = pst_partitioned_var_count(shape, PST_FLOAT, 0, 64 << 10, 8);
 *     pst_partitioned_var *pv = pst_partitioned_var_new(g, "emb", PST_FLOAT, shape, n, &init, 1);
 *     pst_output table = pv->value;
 */
#ifndef PST_PARTITIONED_VAR_H
#define PST_PARTITIONED_VAR_H

#include "graph.h"
#include "init.h"

/* Number of parts for a partitioned variable: a fixed count, or (when fixed <= 0) as many as
 * keep each part at least min_slice_bytes, at most max_parts (tf.min_max_variable_partitioner). */
int pst_partitioned_var_count(pst_shape shape, pst_dtype dt, int fixed, int64_t min_slice_bytes,
                        int max_parts);
/* Rows of part i of n for a dim of `rows`: returns the first row, *len the count. */
int64_t pst_partitioned_var_rows(int64_t rows, int n, int i, int64_t *len);

typedef struct pst_partitioned_var {
    int n_parts;
    pst_output *parts;   /* the VariableV2 outputs, owned by this struct */
    pst_output value;    /* the concatenated read (what the model uses) */
    char *name;
    pst_shape full_shape;
} pst_partitioned_var;

/* Creates `name/part_i` variables (each with its slice of the full shape and initializer
 * `init`; each part carries TF's save-slice info as `_save_slice_*` attrs so checkpoints store
 * it under the full name), and builds `value` = concat of their reads along axis 0. NULL on
 * error (recorded in the graph). */
pst_partitioned_var *pst_partitioned_var_new(pst_graph *g, const char *name, pst_dtype dt,
                                              pst_shape shape, int n_parts,
                                              const pst_initializer *init, int trainable);
void pst_partitioned_var_free(pst_partitioned_var *pv);
#endif
