/*
 * record_feed — a placeholder of a TensorFlow user's graph fed from one feature of the
 * tf.train.Example records of a TFRecord file (any compression): `pstrain train --meta` and
 * `pstrain-worker --meta` (distributed) share it.
 *
 *     pst_record_feed f;
 *     if (pst_record_feed_parse("input/x=train.tfrecord:image", &f, &st) < 0) ...
 *     if (pst_record_feed_load(graph, &f, &st) < 0) ...     // every record's value
 *     pst_record_feed_batch(&f, rows, 100, &st);             // f.batch: those records
 *     ... feed {f.ph, f.batch} ...
 *     pst_record_feed_destroy(&f);
 */
#ifndef PST_WORKER_RECORD_FEED_H
#define PST_WORKER_RECORD_FEED_H

#include <stdint.h>

#include "graph.h"
#include "status.h"

typedef struct pst_record_feed {
    char name[512], path[2048], feature[256];
    pst_output ph;     /* the placeholder (after load) */
    pst_tensor *all;   /* every record's value, [records, ...] */
    pst_tensor *batch; /* the last batch */
} pst_record_feed;

/* "PLACEHOLDER=FILE:FEATURE" (the last ':' ends the file). -1 with st naming the text. */
int pst_record_feed_parse(const char *s, pst_record_feed *f, pst_status *st);
/* Loads the feature of every record as the placeholder's per-example shape and dtype (only
 * the placeholder's first, batch dimension may be unknown). Errors name the flag's text, the
 * placeholder, the file and the record. */
int pst_record_feed_load(pst_graph *g, pst_record_feed *f, pst_status *st);
/* Records in the file (after load). */
int64_t pst_record_feed_count(const pst_record_feed *f);
/* f->batch = a new tensor of the records rows[0..b) (each taken modulo the count). */
int pst_record_feed_batch(pst_record_feed *f, const int64_t *rows, int b, pst_status *st);
void pst_record_feed_destroy(pst_record_feed *f);
/* Every placeholder the targets need is one of the loaded feeds; else an error naming the
 * first one left unfed ("placeholder 'x' needs a --feed"). */
struct pst_imported;
int pst_record_feeds_cover(struct pst_imported *m, pst_node *const *targets, int n_targets,
                           const pst_record_feed *feeds, int n_feeds, pst_status *st);

#endif
