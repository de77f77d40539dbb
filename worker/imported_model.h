/*
 * imported_model — a TensorFlow user's graph as the distributed worker's model: `pstrain-worker
 * --meta FILE --feed PH=FILE.tfrecord:FEATURE ...` (and `pstrain launch` with "meta" and
 * "feeds" in the job file) trains it across PS and workers like a model-zoo network.
 *
 * The graph is imported under the worker's device function (the replica device setter: every
 * variable on a PS, what TF colocates with it alongside), its train op and loss found as
 * `pstrain train --meta` finds them, its global step taken from the graph (the "global_step"
 * collection) or added on a PS when it has none, and an increment added when the train op
 * does not move it. The model's images/labels/correct are unused: the feeds are
 * f->feeds, loaded from their TFRecord files.
 */
#ifndef PST_WORKER_IMPORTED_MODEL_H
#define PST_WORKER_IMPORTED_MODEL_H

#include <pthread.h>

#include "flags.h"
#include "model.h"
#include "record_feed.h"

struct pst_task;
struct pst_dist_run;
struct pst_imported_model_run;

typedef struct pst_imported_model {
    struct pst_imported *imp;      /* owns m->g */
    pst_record_feed feeds[PST_MAX_FEEDS];
    int n_feeds;
    int added_step, added_increment; /* what the worker added to the user's graph */
    pst_node *global_step;           /* its variable (not in the init op) */
    pst_output step_value;           /* set_step = Assign(global_step, step_value) */
    pst_node *set_step;
    /* A graph that reads its own input (queues and queue runners, tf.data iterators): */
    int reads_queues, reads_datasets;
    struct pst_task *task;
    pthread_mutex_t runs_mu;          /* runs */
    struct pst_imported_model_run *runs; /* the input ops' distributed runs, by targets */
    int n_runs;
    void *din;                        /* the iterators' initializers (pst_imported_dataset_input) */
    pst_output *inputs;               /* every output of the dequeues / IteratorGetNexts the step
                                         reads: fetched by input_run, then fed to the step */
    int n_inputs;
    struct pst_dist_run *input_run;
    char shard[64];                   /* this worker's share of --records (a temporary file) */
} pst_imported_model;

/* Imports f->meta into m (m->g, train_op, loss, global_step, init) placed by device_fn.
 * Errors name the file, the flag or the node. */
int pst_worker_build_imported_model(const pst_train_flags *f, model *m, pst_imported_model *im,
                                    pst_device_fn device_fn, void *device_ctx, pst_status *st);
/* Loads every --feed's records and checks that they feed every placeholder the step needs
 * (an error names the flag, the file or the placeholder). */
int pst_imported_model_load_feeds(const pst_train_flags *f, model *m, pst_imported_model *im,
                                  pst_status *st);
/* 1 when the train op reads the graph's own input (dequeues from queues, IteratorGetNext):
 * the step's feeds then come from pst_imported_model_next_input, not from --feed files. */
int pst_imported_model_reads_input(pst_imported_model *im, model *m);
/* Before training (variables ready): the input ops run as distributed steps from task t (the
 * queues, readers and iterators live in its resource store); with f->records, every reader and
 * TFRecordDataset reads this worker's share of it (records index, index + workers, ...; the
 * whole file when it has fewer records than workers); the iterators are initialized and the
 * queue runners started. *what describes it for the log. */
int pst_imported_model_start_input(const pst_train_flags *f, model *m, pst_imported_model *im,
                                   struct pst_task *t, int index, int workers, char *what,
                                   size_t len, pst_status *st);
/* The next batch the step reads: out[0..*n) (values the caller unrefs) for the dequeue and
 * IteratorGetNext outputs. PST_E_OUT_OF_RANGE when the input is exhausted (its epochs are
 * done, or the queues were closed). */
int pst_imported_model_next_input(pst_imported_model *im, pst_feed *out, int max, int *n,
                                  pst_status *st);
/* Stops the queue runners (closing their queues, joining their threads) and returns the first
 * error a runner hit, else 0. */
int pst_imported_model_stop_input(pst_imported_model *im, pst_status *st);
/* Feeds of the worker's next batch: records rows[0..b) of every feed into out[0..n_feeds). */
int pst_imported_model_feeds(pst_imported_model *im, const int64_t *rows, int b, pst_feed *out,
                             pst_status *st);
/* Records in the (shortest) feed file. */
int64_t pst_imported_model_records(const pst_imported_model *im);
/* Pushes every variable the TF checkpoint at prefix holds (by name; dtype and shape must
 * match) to the PS that holds it: the chief's start from a user's checkpoint. *n gets the
 * count; the global step is not pushed: *step gets its value when the checkpoint holds it. */
int pst_imported_model_push_checkpoint(pst_imported_model *im, pst_graph *g, struct pst_task *t,
                                       const char *prefix, int *n, int64_t *step,
                                       pst_status *st);
/* The chief's last act of initializing: global step := step (m->init leaves it out, so the
 * other workers wait until the model is complete). */
int pst_imported_model_set_step(pst_imported_model *im, struct pst_task *t, pst_graph *g,
                                int64_t step, pst_status *st);
/* Stops the input, frees the graph (m->g), the feeds and the input's runs. */
void pst_imported_model_destroy(pst_imported_model *im, model *m);

#endif
