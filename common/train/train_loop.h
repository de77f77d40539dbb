/*
 * train_loop — slim.learning.train in C: runs a train op for a number of steps, feeding each
 * step from a callback, with a live progress line (step/total, loss, examples/s, ETA) on a
 * terminal and periodic plain lines otherwise, and a hook every N steps (evaluation,
 * checkpoints).
 *
 *     pst_train_loop_opts o = {.steps = 2000, .train_op = train, .loss = loss,
 *                              .next = my_batch, .ctx = &data, .batch_size = 100};
 *     pst_train_loop(sess, &o, &stats, &st);
 */
#ifndef PST_TRAIN_LOOP_H
#define PST_TRAIN_LOOP_H

#include <stdio.h>

#include "session.h"

#define PST_TRAIN_MAX_FEEDS 8

/* Fills feeds for one step (values are borrowed until the next call); returns 0 or an error. */
typedef int (*pst_train_feed_fn)(void *ctx, int64_t step, pst_feed *feeds, int *n_feeds,
                                 pst_status *st);
/* Called after step `step` (1-based) when step % every == 0; a negative return stops. */
typedef int (*pst_train_hook_fn)(void *ctx, pst_session *s, int64_t step, pst_status *st);

typedef struct pst_train_loop_opts {
    int64_t first_step;   /* steps already done (resuming), default 0 */
    int64_t steps;        /* total steps to reach */
    pst_node *train_op;
    pst_output loss;      /* fetched every step */
    pst_train_feed_fn next;
    void *ctx;
    int batch_size;       /* for examples/s */
    int64_t log_every;    /* plain-line interval when not a terminal (default 100) */
    int quiet;
    FILE *out;            /* default stdout */
    pst_train_hook_fn hook;
    void *hook_ctx;
    int64_t hook_every;
} pst_train_loop_opts;

typedef struct pst_train_stats {
    int64_t steps;
    double seconds;
    double examples_per_sec;
    float last_loss;
} pst_train_stats;

int pst_train_loop(pst_session *s, const pst_train_loop_opts *o, pst_train_stats *stats,
                   pst_status *st);

#endif
