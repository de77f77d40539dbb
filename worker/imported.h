/*
 * imported — a TensorFlow user's own graph (a `.meta` file or a SavedModel's saved_model.pb)
 * imported, initialized or restored from its TF checkpoint, and trained without the code that
 * built it. Shared by `pstrain meta check` (the compatibility report), `pstrain train --meta`
 * and the tests.
 *
 *     pst_imported *m = pst_imported_load("model.ckpt.meta", &st);
 *     pst_imported_restore(m, "model.ckpt", &st);        // TF's save/restore_all, prefix fed
 *     pst_node *train = pst_imported_train_op(m, NULL, &st);  // found when not named
 *     pst_output loss = pst_imported_loss(m, train);
 *     ... pst_session_run(pst_imported_session(m), feeds, n, &loss, 1, &train, 1, out, &st);
 *     pst_imported_free(m);
 */
#ifndef PST_WORKER_IMPORTED_H
#define PST_WORKER_IMPORTED_H

#include <stdint.h>

#include "graph.h"
#include "session.h"
#include "status.h"

typedef struct pst_imported pst_imported;

/* Imports the file into a new graph and opens a session on it. NULL with st set (the error
 * names the file and, for an op pstrain lacks, the node and the op). */
pst_imported *pst_imported_load(const char *path, pst_status *st);

typedef struct pst_imported_opts {
    pst_device_fn device_fn; /* places every imported node (e.g. pst_replica_setter_fn) */
    void *device_ctx;
    int clear_devices;       /* drop the devices the file names (TF users' /gpu:0 ...) */
    int no_session;          /* distributed runs go through dist_run instead */
} pst_imported_opts;
/* The same with placement: after the import, every node colocated with another by TF's
 * `_class: loc:@NAME` attr and every op taking a variable by reference (Assign, Apply*, ...)
 * gets that node's or variable's device, as TF's placer does. */
pst_imported *pst_imported_load_ex(const char *path, const pst_imported_opts *o, pst_status *st);
void pst_imported_free(pst_imported *m);
pst_graph *pst_imported_graph(pst_imported *m);
pst_session *pst_imported_session(pst_imported *m);
/* Without a session (no_session): how the graph's own input ops run (queue runners' enqueue,
 * close and cancel ops, iterator initializers), e.g. as distributed steps, and the store
 * holding their resources (queues, iterators, the records override). */
typedef int (*pst_imported_run_fn)(void *ctx, const pst_feed *feeds, int n_feeds,
                                   pst_node *const *targets, int n_targets, pst_status *st);
void pst_imported_set_runner(pst_imported *m, pst_imported_run_fn run, void *ctx,
                             pst_var_store *vars);
/* The session's store, else the runner's (NULL when neither). */
pst_var_store *pst_imported_vars(pst_imported *m);
/* Runs targets with feeds through the session, else the runner. */
int pst_imported_run_targets(pst_imported *m, const pst_feed *feeds, int n_feeds,
                             pst_node *const *targets, int n_targets, pst_status *st);
/* The op types of the file's graph that pstrain has no op for (borrowed, *n set). Filled by
 * pst_imported_load even when the import fails: use pst_imported_missing_ops_of below. */
int pst_imported_missing_ops_of(const char *path, char ***ops, int *n, pst_status *st);

/* The graph's tf.train.QueueRunners (its meta graph's `queue_runners` collection). */
int pst_imported_num_queue_runners(const pst_imported *m);
/* Starts them as tf.train.start_queue_runners does: one thread per enqueue op, each running
 * it until its queue is closed (an error the runner lists, OutOfRange by default; the last
 * thread of a runner then runs its close op). feeds (borrowed; values referenced until the
 * stop) go with every enqueue run, e.g. file names in place of the graph's own. A thread that
 * hits any other error records it and closes every runner's queue (cancel ops), so a step
 * waiting on a dequeue fails with OutOfRange instead of hanging. 0 when there are none. */
int pst_imported_start_queue_runners(pst_imported *m, const pst_feed *feeds, int n_feeds,
                                     pst_status *st);
/* For each queue the targets dequeue from (or read file names from) that no queue runner
 * fills but enqueue ops of the graph do (a user's own feeding thread: `sess.run(enqueue,
 * feed_dict=...)`), adds a runner running those enqueue ops (their placeholders fed through
 * the start's feeds); when its threads end (the input's epochs are done) the queue is closed,
 * and stopping closes it with its pending enqueues cancelled. Call before starting. Returns
 * how many were added. */
int pst_imported_adopt_enqueue_ops(pst_imported *m, pst_node *const *targets, int n_targets);
/* Runs every runner's cancel op and joins the threads; returns the first error a runner
 * thread hit (in st), else 0. Called by pst_imported_free too. */
int pst_imported_stop_queue_runners(pst_imported *m, pst_status *st);
/* The first error a runner thread hit so far, else 0. */
int pst_imported_queue_runner_error(pst_imported *m, pst_status *st);

/* 1 when the targets depend on a queue dequeue (the graph reads its own input: start its
 * queue runners before running them). */
int pst_imported_uses_queues(pst_imported *m, pst_node *const *targets, int n_targets);
/* How many synthetic records let `steps` training steps run even when the input has a single
 * epoch (string_input_producer(num_epochs=1)): steps times the largest batch a dequeue takes,
 * plus what RandomShuffleQueues hold back, plus a batch; between 16 and 4096. */
int pst_imported_records_needed(pst_imported *m, pst_node *train, int steps);
/* Feeds that point the graph's TF 1 readers at `path`: for each filename queue a ReaderRead
 * takes from, the names its enqueue ops put in (string_input_producer's list, whether from a
 * Const, match_filenames_once's variable or a placeholder) replaced by path, as many times as
 * the list is long (once when unknown). *feeds (malloc'd; the caller unrefs each value and
 * frees the array) and *n. */
int pst_imported_reader_files(pst_imported *m, const char *path, pst_feed **feeds, int *n,
                              pst_status *st);
/* Writes n_records synthetic records at path in the format of the graph's reader. TFRecord
 * readers: tf.train.Examples holding every feature the ParseExample / ParseSingleExample ops
 * downstream of the readers ask for (looking through reshapes and queues): floats in
 * [0.25, 0.75), int64 class ids 0 and 1, bytes as long as a DecodeRaw and the Reshape after it
 * need; a first dim of -1 gets 2 rows, sparse features 2 values; for a
 * ParseSingleSequenceExample, SequenceExamples with those context features and feature lists
 * of 2 steps. FixedLengthRecordReader:
 * header, records of record_bytes bytes 0 and 1 (valid labels and pixels), footer.
 * TextLineReader: the header lines it skips, then lines of as many comma-separated fields as
 * its DecodeCSV has columns (0/1, 0.5, or a letter by column type). WholeFileReader: one
 * 32x32 JPEG or PNG image when a DecodeJpeg / DecodePng reads it (each read gives it again). *n_features (optional):
 * how many features (columns) were found. */
int pst_imported_synthetic_records(pst_imported *m, const char *path, int n_records,
                                   int *n_features, pst_status *st);

/* Every variable's initializer ("VAR/Assign", as TF names them): *out malloc'd. */
int pst_imported_initializers(pst_imported *m, pst_node ***out, int *n, pst_status *st);
/* Runs every global and local variable's initializer, then the ops of the graph's
 * table_initializer collection (lookup tables). */
int pst_imported_init(pst_imported *m, pst_status *st);
/* Restores a TF V2 checkpoint the way TF's Saver does: feeds prefix to the SaverDef's filename
 * tensor and runs its restore op (graphs without a SaverDef: by variable name). Variables the
 * checkpoint does not hold keep their values. *n_checked (optional) receives how many
 * variables were then compared with the checkpoint's tensors (all must be equal). */
int pst_imported_restore(pst_imported *m, const char *prefix, int *n_checked, pst_status *st);
/* Writes a TF V2 checkpoint at prefix the way TF's Saver does (the prefix fed to the
 * SaverDef's filename tensor, its save tensor fetched); graphs without a SaverDef: pstrain's
 * saver by variable name. */
int pst_imported_save(pst_imported *m, const char *prefix, pst_status *st);
/* The train op: `name` when given; else the train_op collection's; else the node nothing
 * consumes that depends on the most optimizer apply ops. NULL with st set. */
pst_node *pst_imported_train_op(pst_imported *m, const char *name, pst_status *st);
/* The loss tf.gradients differentiated for the train op (the input of its
 * ".../gradients/Shape"), or a null output. */
pst_output pst_imported_loss(pst_imported *m, pst_node *train_op);
/* Which nodes the targets depend on (through data and control inputs): need[node id] is 1 for
 * each (malloc'd, node count + 1 bytes; the caller frees). */
char *pst_imported_ancestors(pst_graph *g, pst_node *const *targets, int n);
/* The placeholders (op Placeholder) the targets need, in graph order: *out malloc'd. */
int pst_imported_placeholders(pst_imported *m, pst_node *const *targets, int n_targets,
                              pst_output **out, int *n);
/* The batch size the placeholders imply: the first known leading dim of a placeholder of rank
 * >= 2 (a graph built for a fixed batch), else dflt. */
int pst_imported_batch_hint(const pst_output *ph, int n, int dflt);
/* A value for a placeholder when no data is given: an unknown first dim becomes `batch`, other
 * unknown dims 2, floats uniform in [0.25, 0.75), integers alternating 0 and 1 (class ids and
 * token ids valid whatever the padding id; scalars: batch, so all integer scalars agree),
 * sequence lengths (an integer placeholder whose name holds "len", or that feeds a
 * ".../sequence_length" node or ReverseSequence's lengths) all 2, the synthetic time dim, so
 * lengths of different placeholders agree with each other and with the data, bools true,
 * strings empty. A placeholder of unknown rank gets the shape its consumers imply, else an error
 * naming it. */
pst_tensor *pst_imported_synthetic_feed(pst_output ph, int batch, uint64_t seed, pst_status *st);

/* ---- tf.data input --------------------------------------------------------------------- */
/* 1 when the targets read an iterator (IteratorGetNext): the graph's tf.data pipeline feeds
 * them, and its iterators must be initialized first (pst_imported_dataset_inputs). */
int pst_imported_uses_datasets(pst_imported *m, pst_node *const *targets, int n_targets);
typedef struct pst_imported_dataset_input {
    pst_node **inits;   /* the MakeIterator ops to run, with feeds */
    int n_inits;
    pst_feed *feeds;    /* each TFRecordDataset's filenames (and compression) input -> path */
    int n_feeds;
    pst_feed *handles;  /* string-handle placeholders of feedable iterators -> the handle of
                           the iterator chosen (the caller feeds them with every step) */
    int n_handles;
} pst_imported_dataset_input;
/* What initializes the iterators the targets read: for each, its MakeIterator (the one whose
 * name holds "train" when it has several); for a feedable iterator (IteratorFromStringHandle
 * of a placeholder), the graph's iterator whose name holds "train" (else the first with an
 * initializer), its string handle to feed to the placeholder. With path, every TFRecordDataset
 * those initializers run reads path (uncompressed) instead of its own files. With
 * synthetic_rows > 0, placeholders the initializers need (Dataset.from_tensor_slices of a
 * placeholder) get synthetic values with that many rows. Free with
 * pst_imported_dataset_input_free (also after an error). */
int pst_imported_dataset_inputs(pst_imported *m, pst_node *const *targets, int n_targets,
                                const char *path, int synthetic_rows,
                                pst_imported_dataset_input *in, pst_status *st);
/* For a graph holding a TextLineDataset or a FixedLengthRecordDataset (op: either name),
 * writes n_records synthetic records of its format at path: lines of as many 0/1 fields as
 * the DecodeCSV of its map function has columns; records of record_bytes bytes 0 and 1 between
 * the header and footer its constant inputs give. 1 when written, 0 when the graph has no
 * such dataset, or an error. Point the session's datasets at it with pst_tf_data_set_file. */
int pst_imported_synthetic_dataset_file(pst_imported *m, const char *op, const char *path,
                                        int n_records, pst_status *st);
/* Runs the initializers with their feeds (tf.data's iterator.initializer). */
int pst_imported_run_dataset_inits(pst_imported *m, const pst_imported_dataset_input *in,
                                   pst_status *st);
void pst_imported_dataset_input_free(pst_imported_dataset_input *in);

#endif
