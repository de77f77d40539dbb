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
 * process at any moment never leaves the state file naming an unreadable checkpoint.
 */
#ifndef PST_SAVER_H
#define PST_SAVER_H

#include <stddef.h>
#include <stdint.h>

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
} pst_saver_opts;

pst_saver *pst_saver_new(pst_graph *g, const pst_saver_opts *o, pst_status *st);
void pst_saver_free(pst_saver *s);
/* Saves to `path`-`step` (or `path` when step < 0); the prefix written goes to out. */
int pst_saver_save(pst_saver *s, pst_session *sess, const char *path, int64_t step, char *out,
                   size_t out_len, pst_status *st);
/* Restores every saver variable; missing keys and dtype/shape mismatches are reported together,
 * naming each. */
int pst_saver_restore(pst_saver *s, pst_session *sess, const char *prefix, pst_status *st);
/* The same on a variable store (a parameter server's): writes the saver's variables as one
 * single-shard bundle at prefix (no meta, no state file: the chief merges the tasks' shards),
 * or restores them (slices re-cut from whatever partitioning the checkpoint has). */
int pst_saver_write_store(pst_saver *s, pst_var_store *vs, const char *prefix, pst_status *st);
int pst_saver_restore_store(pst_saver *s, pst_var_store *vs, const char *prefix, pst_status *st);

/* The checkpoints listed in dir's state file, oldest first (caller frees each and the array);
 * returns the count, or a negative error for an unreadable state file. 0 when there is none. */
int pst_checkpoint_list(const char *dir, char ***paths, pst_status *st);
/* The newest intact checkpoint of dir. Returns 0 and the prefix, 1 when there is none (or
 * start_fresh is set and the state file is unreadable), negative on error. When the newest is
 * corrupt it falls back to an older one and says so in warning. */
int pst_latest_checkpoint(const char *dir, int start_fresh, char *out, size_t out_len,
                          char *warning, size_t warn_len, pst_status *st);
/* Writes the state file (model_checkpoint_path + all paths, oldest first) atomically. */
int pst_checkpoint_state_write(const char *dir, int n, char *const *paths, pst_status *st);

#endif
