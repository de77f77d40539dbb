/*
 * tf_data — TensorFlow 1.x's tf.data in imported graphs: dataset ops that make dataset values
 * (TFRecordDataset, TensorSliceDataset, TensorDataset, RangeDataset, MapDataset and
 * ParallelMapDataset running a function of the graph's library per element, FilterDataset,
 * FlatMapDataset / InterleaveDataset, BatchDataset(V2), MapAndBatchDataset, ShuffleDataset,
 * RepeatDataset, ShuffleAndRepeatDataset, TakeDataset, SkipDataset, ConcatenateDataset,
 * ZipDataset, and the pass-throughs PrefetchDataset, ModelDataset, OptimizeDataset, ...) and
 * the iterator ops that read them (Iterator / IteratorV2, MakeIterator, IteratorGetNext(Sync),
 * IteratorToStringHandle, IteratorFromStringHandle(V2), OneShotIterator).
 *
 * A dataset value is a PST_RESOURCE scalar pointing at an immutable, reference-counted dataset
 * object (TF writes DT_VARIANT); the node that made it keeps it until it runs again. An
 * iterator is a resource of the session's var store (key "tf.data iterator:" + its shared_name
 * or node name, which is also its string handle) holding the current position: MakeIterator
 * starts it over on a dataset, IteratorGetNext returns the next element or fails with
 * OutOfRange ("End of sequence") at the end, the error kind TF 1 queues give for the end of
 * input. Registered by pst_io_ops_init().
 */
#ifndef PST_TF_DATA_H
#define PST_TF_DATA_H

#include "graph.h"

#define PST_TF_DATA_ITERATOR_KEY "tf.data iterator:"

void pst__register_tf_data_ops(void);

/* Makes every dataset of op dataset_op ("TFRecordDataset", any compression;
 * "TextLineDataset"; "FixedLengthRecordDataset", same header, record and footer sizes) the
 * session of vs creates from now on read `path` instead of its file names, wherever those come
 * from (a constant, a placeholder, the body of a one-shot iterator's dataset function):
 * synthetic or replacement input for a graph whose files are elsewhere. Set once per store and
 * op (a second call keeps the first path). */
typedef struct pst_var_store pst_var_store;
int pst_tf_data_set_file(pst_var_store *vs, const char *dataset_op, const char *path,
                         pst_status *st);

/* 1 when op names a tf.data dataset op registered here. */
int pst_tf_data_is_dataset_op(const char *op);

#endif
