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

/* 1 when op names a tf.data dataset op registered here. */
int pst_tf_data_is_dataset_op(const char *op);

#endif
