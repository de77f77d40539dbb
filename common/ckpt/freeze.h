/*
 * freeze — a frozen GraphDef: the graph pruned to the named outputs with every variable
 * replaced by a Const of its current value, for inference without checkpoints
 * (TensorFlow's freeze_graph).
 *
 *     pst_freeze_graph(sess, g, 1, (const char *[]){"logits"}, "frozen.pb", &st);
 */
#ifndef PST_FREEZE_H
#define PST_FREEZE_H

#include "session.h"

/* Writes a frozen GraphDef for the named outputs to path. */
int pst_freeze_graph(pst_session *s, const pst_graph *g, int n_outputs, const char *const *outputs,
                     const char *path, pst_status *st);

#endif
