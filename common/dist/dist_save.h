/*
 * dist_save — checkpoints of a job whose variables live on parameter servers, in TensorFlow's
 * format: every PS holding variables writes its shard of the data at once (a Save call each,
 * in parallel), then the chief merges the shards' indexes into one and writes PREFIX.meta and
 * the `checkpoint` state file (through pst_saver, with its max_to_keep), so the result reads
 * like a single-process checkpoint and restores onto any number of PS.
 *
 *     pst_dist_save_opts o = {.dir = "/ckpt", .max_to_keep = 5};
 *     pst_dist_save *ds = pst_dist_save_new(t, g, &pv, &o, &st);     // pv: ps_vars.h
 *     char prefix[4096];
 *     pst_dist_save_write(ds, global_step, prefix, sizeof prefix, &st); // "/ckpt/model.ckpt-100"
 *     pst_dist_save_free(ds);
 */
#ifndef PST_DIST_SAVE_H
#define PST_DIST_SAVE_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"
#include "ps_vars.h"
#include "task.h"

typedef struct pst_dist_save_opts {
    const char *dir;      /* the checkpoint directory (must exist) */
    const char *basename; /* checkpoints are DIR/BASENAME-STEP (default "model.ckpt") */
    int max_to_keep;      /* as pst_saver_opts: default 5 when 0, negative keeps all */
    pst_graph *meta_graph; /* written as the .meta instead of g (pst_saver_opts.meta_graph) */
} pst_dist_save_opts;

typedef struct pst_dist_save pst_dist_save;

/* A saver of g's global variables held by the PS in pv, run from task t (the chief). t, g and
 * pv are borrowed and must outlive it. NULL with st set on error. */
pst_dist_save *pst_dist_save_new(pst_task *t, pst_graph *g, const pst_ps_vars *pv,
                                 const pst_dist_save_opts *o, pst_status *st);
/* Writes checkpoint DIR/BASENAME-step: the shards, the merged index, the .meta and the state
 * file (dropping checkpoints beyond max_to_keep). The prefix written goes to prefix (len bytes,
 * may be NULL). Errors name the PS whose shard failed. */
int pst_dist_save_write(pst_dist_save *s, int64_t step, char *prefix, size_t len,
                        pst_status *st);
void pst_dist_save_free(pst_dist_save *s);

/* The data part alone: every PS of pv holding variables writes shard i of n at
 * PREFIX_temp_shardI, all at once, then the shards are merged into one bundle at prefix. */
int pst_dist_save_shards(pst_task *t, const pst_ps_vars *pv, const char *prefix, pst_status *st);

#endif
