/*
 * eval — the evaluation loop (TF-Slim's evaluation_loop): watches a checkpoint directory and
 * evaluates every new checkpoint of a job on the test set, once each, oldest first.
 *
 *     pst_eval_opts o = {.checkpoint_dir = "runs/x/checkpoints", .events_dir = "runs/x/events/eval"};
 *     if (pst_worker_eval_loop(&flags, &o, stdout, &st) < 0) fprintf(stderr, "%s\n", st.msg);
 *
 * For each checkpoint it prints one line (path, global step, accuracy, mean loss) and, with an
 * events directory, writes the scalars eval/accuracy and eval/loss at the checkpoint's global
 * step. It stops after max_evals evaluations, when a launched run (run_dir) is no longer
 * running and every checkpoint it left is evaluated, or after timeout_secs without a new one.
 */
#ifndef PST_WORKER_EVAL_H
#define PST_WORKER_EVAL_H

#include <stdint.h>
#include <stdio.h>

#include "flags.h"
#include "status.h"

typedef struct pst_eval_opts {
    const char *checkpoint_dir; /* required */
    const char *events_dir;     /* NULL: no event file */
    const char *run_dir;        /* a run of `pstrain launch`: stop once it ended */
    int max_evals;              /* 0: no limit */
    double interval_secs;       /* how often the directory is looked at (default 1) */
    double timeout_secs;        /* stop after this long without a new checkpoint (0: never) */
    int64_t last_step;          /* stop after a checkpoint at this global step or later (0: no) */
} pst_eval_opts;

/* Returns how many checkpoints it evaluated, or a negative error (a checkpoint that does not
 * restore is named; the model the flags build must be the job's). */
int pst_worker_eval_loop(const pst_train_flags *f, const pst_eval_opts *o, FILE *out,
                         pst_status *st);

#endif
