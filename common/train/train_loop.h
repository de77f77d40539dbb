/*
 * train_loop — the one training driver (slim.learning.train in C). The caller says how one step
 * runs, how to evaluate and how to save (a small table of callbacks); the loop decides when:
 * it runs steps until the global step reaches `steps`, evaluates and saves on their cadence,
 * saves once more at a clean end unless that very step was just saved, prints progress (a live
 * line on a terminal, plain lines otherwise, with examples/s and ETA) and a closing summary.
 *
 * One loop serves both trainers: in one process a step is a session run and the global step
 * advances by one; on a distributed worker a step runs partitions on other tasks and reports the
 * global step its PS holds, which other workers move too, so it can jump (every cadence below
 * fires when the global step reaches or passes its next multiple, never only on equality).
 *
 *     static const pst_train_ops ops = {.step = my_step, .evaluate = my_eval, .save = my_save};
 *     pst_train_opts o = {.steps = 2000, .batch_size = 100, .save_every_steps = 500,
 *                         .eval_every = 100};
 *     pst_train_stats stats;
 *     if (pst_train_run(&ops, &me, &o, &stats, &st) < 0) fprintf(stderr, "%s\n", st.msg);
 *
 * Lines it prints (stdout unless opts.out), without a task name / with one (opts.task):
 *     step 200/2000  loss 0.4312  1040 examples/s  ETA 2m53s
 *     TASK: global step 200, local step 97, loss 0.4312, 1040 examples/s
 *     step 200: validation_accuracy=0.8512
 *     TASK: global step 200: validation_accuracy=0.8512
 *     trained 2000 steps in 95.1 s (2103 examples/s), final loss 0.3012
 *     TASK: trained 97 local steps in 9.3 s (1043 examples/s), global step 200, final loss 0.4312
 * Scripts parse the last two ("local steps in", "(N examples/s)", "global step N"): keep them.
 */
#ifndef PST_TRAIN_LOOP_H
#define PST_TRAIN_LOOP_H

#include <stdint.h>
#include <stdio.h>

#include "status.h"

/* What one trainer does; the loop calls these with the caller's ctx. Each returns 0 or a negative
 * PST_E_* code with st naming the fault; any error stops the loop, which returns it. */
typedef struct pst_train_ops {
    /* Runs one training step and sets *loss. *global_step arrives as the previous global step + 1
     * (what one process reaches); a distributed step overwrites it with the global step the job
     * reached, which may be further. Required. */
    int (*step)(void *ctx, float *loss, int64_t *global_step, pst_status *st);
    /* Validation accuracy in [0, 1]. NULL: no evaluation. */
    int (*evaluate)(void *ctx, double *accuracy, pst_status *st);
    /* Writes a checkpoint of global step `global_step` (and may print where it went; the loop
     * ends its live line first). NULL: no checkpoints. */
    int (*save)(void *ctx, int64_t global_step, pst_status *st);
    /* Checked before every step: non-zero ends the loop as a clean end (the final save runs,
     * stats.stopped is set). NULL: never. */
    int (*should_stop)(void *ctx);
} pst_train_ops;

/* Seconds on a monotonic clock; tests inject one to step time by hand. */
typedef double (*pst_train_clock_fn)(void *ctx);

/* Zero is the default of every field. */
typedef struct pst_train_opts {
    int64_t first_step;       /* the global step training starts at (a restored job's) */
    int64_t steps;            /* run until the global step reaches this */
    int batch_size;           /* examples per local step, for examples/s */
    int64_t save_every_steps; /* save when the global step reaches a multiple of this */
    double save_every_secs;   /* and when this long has passed since the last save */
    int always_save_at_end;   /* 1: the final save also when this run took no step (a
                                 distributed chief rewrites a restored checkpoint in its own PS
                                 layout); 0: only after steps, unless the last one was saved */
    int64_t eval_every;       /* evaluate when the global step reaches a multiple of this */
    const char *task;         /* NULL: one process; else a distributed worker's device name,
                                 prefixing its lines, which name global and local steps */
    int quiet;                /* no progress lines (evaluations and the summary still print) */
    FILE *out;                /* default stdout */
    int64_t log_every;        /* off a terminal: a plain line every this many global steps
                                 (default 100)... */
    double log_every_secs;    /* ...or, when > 0, every this many seconds instead */
    pst_train_clock_fn clock; /* default pst_clock_now */
    void *clock_ctx;
} pst_train_opts;

typedef struct pst_train_stats {
    int64_t steps;           /* local steps this run took */
    int64_t global_step;     /* where the job stood at the end */
    double seconds;          /* of the loop: evaluations and saves on the way count, the final
                                save does not */
    double examples_per_sec; /* steps * batch_size / seconds */
    float last_loss;         /* NAN when no step ran */
    int64_t saves, evals;    /* checkpoints written and evaluations run, the final save included */
    int64_t last_saved_step; /* -1: none */
    int stopped;             /* should_stop ended the loop before the last step */
} pst_train_stats;

/* Runs the loop (see the top of this file) and, when it ends cleanly, prints the summary line.
 * Borrows ops, ctx and o; fills *stats (also on error, with what ran). Returns 0, or the first
 * error of a callback, or PST_E_INVALID when a loss is not finite (naming the step). */
int pst_train_run(const pst_train_ops *ops, void *ctx, const pst_train_opts *o,
                  pst_train_stats *stats, pst_status *st);

/* The first multiple of `every` above `step` (INT64_MAX when every <= 0): where a cadence of
 * `every` global steps next fires once the global step is `step`. */
int64_t pst_train_next_multiple(int64_t step, int64_t every);

#endif
