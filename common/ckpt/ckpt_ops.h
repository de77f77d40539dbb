/*
 * ckpt_ops — the ops of TensorFlow's tf.train.Saver subgraph, so the `save/...` nodes of an
 * imported graph run as TensorFlow runs them: with the checkpoint prefix fed to
 * `save/Const:0`, target `save/restore_all` restores a TF-written V2 checkpoint into the
 * graph's variables and `save/control_dependency` (SaveV2) writes one TF reads.
 *
 *     SaveV2(prefix, tensor_names, shape_and_slices, tensors...)   writes PREFIX.index/.data
 *     RestoreV2(prefix, tensor_names, shape_and_slices) -> tensors  reads (whole or a slice)
 *     MergeV2Checkpoints(checkpoint_prefixes, destination_prefix)   sharded savers' last step
 *     Save, SaveSlices, Restore, RestoreSlice                       TF's V1 format: imported,
 *                                                                   running them is an error
 *
 * They live in the ckpt layer (they need the bundle reader and writer); meta graph import
 * registers them, and a program that builds such nodes itself calls pst_ckpt_ops_init().
 */
#ifndef PST_CKPT_OPS_H
#define PST_CKPT_OPS_H

#include <stdint.h>

/* Registers the built-in ops (pst_ops_init) and the saver ops; idempotent, thread-safe. */
void pst_ckpt_ops_init(void);

/* Parses a TF slice spec "D0 D1 ... S0:S1:..." (each Si "-" or "start,length") into the full
 * shape, starts and lengths (a whole dimension: start 0, its full length). An empty spec
 * means the whole tensor (*rank = -1). 0 or -1 when malformed. */
int pst_ckpt_parse_slice_spec(const char *spec, int *rank, int64_t *full, int64_t *start,
                              int64_t *len);

#endif
