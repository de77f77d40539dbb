/*
 * saver — tf.train.Saver: checkpoints of a session's variables in TensorFlow's format, the
 * `checkpoint` state file, max_to_keep, keep_checkpoint_every_n_hours, restore (all, a subset,
 * or under other names) and latest_checkpoint with a fallback to the newest intact checkpoint.
 *
 *     pst_saver *sv = pst_saver_new(g, NULL, &st);              // every global variable
 *     pst_saver_save(sv, sess, "/ckpt/model.ckpt", step, prefix, sizeof prefix, &st);
 *     char latest[4096], warn[1024];
 *     if (pst_latest_checkpoint("/ckpt", 0, latest, sizeof latest, warn, sizeof warn, &st) == 0)
 *         pst_saver_restore(sv, sess, latest, &st);
 *
 * Each save writes PREFIX.data-00000-of-00001 and PREFIX.index (durably, index last),
 * PREFIX.meta, then the state file, each to a temporary name, fsync'd and renamed: killing the
 * process at any moment never leaves the state file naming an unreadable checkpoint, and the
 * temporary files such a kill leaves are removed by the next save or resume in the directory.
 * A trainer never silently starts over: pst_latest_checkpoint finds the newest intact
 * checkpoint even without a usable state file, and says why when it cannot.
 */
#ifndef PST_SAVER_H
#define PST_SAVER_H

#include <stddef.h>
#include <stdint.h>

#include "metagraph.h"
#include "session.h"

typedef struct pst_saver pst_saver;

typedef struct pst_saver_opts {
    int max_to_keep;                     /* default 5 when 0; negative keeps every checkpoint */
    float keep_checkpoint_every_n_hours; /* 0: none kept beyond max_to_keep */
    int n_vars;                          /* with vars: a subset; 0 with vars NULL: all globals */
    const pst_output *vars;
    const char *const *names;            /* checkpoint names for vars (NULL: the var names) */
    int write_meta;                      /* 1 (default when opts is NULL): also write PREFIX.meta */
    int sharded;                         /* one data shard per device task (each PS's
                                            variables in its own file), merged into one index */
    /* Distributed saves: when set, writes the bundle at prefix instead of the saver (e.g. every
     * PS writes its shard and the chief merges them); the session may then be NULL. */
    int (*write_fn)(void *ctx, const char *prefix, pst_status *st);
    void *write_ctx;
    /* The graph written as PREFIX.meta when it is not g (borrowed, must outlive the saver):
     * e.g. a synchronous job's graph as its asynchronous twin, which TensorFlow can load. Its
     * variables must carry the saved variables' names. */
    pst_graph *meta_graph;
} pst_saver_opts;

pst_saver *pst_saver_new(pst_graph *g, const pst_saver_opts *o, pst_status *st);
void pst_saver_free(pst_saver *s);
/* Saves to `path`-`step` (or `path` when step < 0); the prefix written goes to out. Temporary
 * files of interrupted saves in the directory are removed first; a save that fails removes what
 * it wrote and leaves the state file as it was. Checkpoints beyond max_to_keep are deleted only
 * once the new state file no longer lists them. */
int pst_saver_save(pst_saver *s, pst_session *sess, const char *path, int64_t step, char *out,
                   size_t out_len, pst_status *st);
/* Writes the graph as a MetaGraphDef (what PREFIX.meta holds) with a SaverDef and the saver
 * subgraph for the saver's variables under their checkpoint names, so TensorFlow's
 * import_meta_graph(path) returns a saver whose restore() reads this saver's checkpoints. */
int pst_saver_write_meta(const pst_saver *s, const char *path, pst_status *st);
/* Exports the session's values of the saver's variables as a SavedModel in the layout
 * TensorFlow Serving loads: export_dir/<version>/saved_model.pb (one MetaGraphDef tagged
 * "serve" with the graph, the saver subgraph and sigs) and variables/variables.index +
 * variables.data-00000-of-00001. Built in a hidden temporary directory and renamed into place
 * (a server watching export_dir never sees half a version); an existing version is an error.
 * The directory written goes to out. */
int pst_saver_export_saved_model(pst_saver *s, pst_session *sess, const char *export_dir,
                                 int64_t version, int n_sigs, const pst_signature_def *sigs,
                                 char *out, size_t out_len, pst_status *st);
/* Restores every saver variable; missing keys and dtype/shape mismatches are reported together,
 * naming each. */
int pst_saver_restore(pst_saver *s, pst_session *sess, const char *prefix, pst_status *st);
/* The same on a variable store (a parameter server's): writes the saver's variables as one
 * single-shard bundle at prefix (no meta, no state file: the chief merges the tasks' shards),
 * or restores them (slices re-cut from whatever partitioning the checkpoint has). */
int pst_saver_write_store(pst_saver *s, pst_var_store *vs, const char *prefix, pst_status *st);
int pst_saver_restore_store(pst_saver *s, pst_var_store *vs, const char *prefix, pst_status *st);

/* The checkpoints listed in dir's state file, oldest first, the newest (model_checkpoint_path)
 * last; caller frees each and the array. Returns the count (0 when there is no state file), or
 * a negative error naming the state file when it is not a regular file, does not parse, or
 * names a path outside dir (an absolute path elsewhere, a ".." component, a link out). */
int pst_checkpoint_list(const char *dir, char ***paths, pst_status *st);
/* Where a trainer resumes from dir; the rules (README.md, Training) are:
 *   - start_fresh: returns 1 (start from step 0) whatever dir holds, deleting no checkpoint;
 *   - otherwise the newest intact checkpoint the state file lists, falling back to older ones;
 *     when the state file is missing, empty, zeroed or unparsable, or lists only checkpoints
 *     that are gone or corrupt, the newest intact one found by listing dir (highest step,
 *     then newest index); 0 and its prefix in out;
 *   - 1 when dir holds no checkpoint at all;
 *   - an error naming dir when checkpoints exist but none is intact, and an error naming the
 *     state file when it is not a regular file (a FIFO never blocks) or names a path outside
 *     dir.
 * Every fallback is explained in warning (naming dir and the checkpoint chosen). It first
 * removes the temporary files interrupted saves left in dir (pst_checkpoint_remove_temp_files),
 * so call it when no save into dir is in flight, as a trainer does when it starts. */
int pst_latest_checkpoint(const char *dir, int start_fresh, char *out, size_t out_len,
                          char *warning, size_t warn_len, pst_status *st);
/* Whether a file name is a temporary name of pstrain's checkpoint writers: `X.index.tmpPID`,
 * `X.meta.tmpPID`, `checkpoint.tmpPID` (durable writes), `X.data-NNNNN-of-NNNNN.tempstatePID`
 * (the bundle writer) and `X_temp_shardK.index` / `X_temp_shardK.data-...` (the shards of a
 * sharded or distributed save, and their own temporary names). */
int pst_checkpoint_is_temp_file(const char *name);
/* Removes the regular files of dir whose names pst_checkpoint_is_temp_file accepts (nothing
 * else); returns how many, or a negative error when dir cannot be listed. Only safe when no save
 * into dir is in flight: pst_saver_save calls it before writing, pst_latest_checkpoint first. */
int pst_checkpoint_remove_temp_files(const char *dir, pst_status *st);
/* Writes the state file (model_checkpoint_path + all paths, oldest first) atomically. */
int pst_checkpoint_state_write(const char *dir, int n, char *const *paths, pst_status *st);

#endif
