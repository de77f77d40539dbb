/*
 * session_internal — what the session shares with its frame executor (frames.c), which runs
 * graphs with TensorFlow 1.x control flow. Not for use outside common/exec.
 */
#ifndef PST_SESSION_INTERNAL_H
#define PST_SESSION_INTERNAL_H

#include "session.h"

/* Calls n's kernel with the given inputs (ins[i] NULL where invs[i] is a ref input); outs and
 * outvs (n->n_outputs entries, NULL on entry) receive the outputs. Errors name the node. */
int pst__session_call_kernel(pst_session *s, pst_node *n, pst_tensor *const *ins,
                              pst_var *const *invs, pst_tensor **outs, pst_var **outvs,
                              int64_t step, pst_status *st);
/* Grows the per-node kernel state to the graph's size. */
void pst__session_ensure_state(pst_session *s);
/* step_id when >= 0, else the session's next step id. */
int64_t pst__session_next_step(pst_session *s, int64_t step_id);

/* Runs one step of a graph with control flow (Switch/Merge, while-loop frames) with TF's
 * semantics: dead tensors on untaken branches, frames and iterations for loops. Arguments as
 * pst_session_run_step's, already validated. */
int pst__frames_run(pst_session *s, int64_t step, const pst_feed *feeds, int n_feeds,
                    const pst_output *fetches, int n_fetches, pst_node *const *targets,
                    int n_targets, pst_tensor **out, pst_status *st);

#endif
