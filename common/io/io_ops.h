/*
 * io_ops — the ops of TF 1.x input pipelines that need the io layer's files and formats, so
 * an imported graph's own reader runs as TensorFlow runs it:
 *
 *     TFRecordReaderV2 (TFRecordReader)   a reader resource (compression_type "", ZLIB, GZIP);
 *                                         also FixedLengthRecordReaderV2 (header, record,
 *                                         footer, hop bytes), TextLineReaderV2 (one line per
 *                                         record, skip_header_lines), WholeFileReaderV2 (a
 *                                         file per record, keyed by its name)
 *     ReaderReadV2, ReaderReadUpToV2      (reader, filename queue[, n]) -> key, record (keys:
 *                                         "FILE:OFFSET", "FILE:INDEX", "FILE:LINE", "FILE");
 *                                         takes the next file name from the queue (blocking)
 *                                         when the current file ends; OutOfRange once the
 *                                         queue is closed and empty
 *     ParseExample, ParseSingleExample    tf.train.Example -> dense tensors (FixedLenFeature,
 *                                         with defaults; a first dim of -1 is
 *                                         FixedLenSequenceFeature, padded with the default)
 *                                         and sparse (indices, values, dense shape) triples
 *     ParseSingleSequenceExample          tf.train.SequenceExample: context features as
 *                                         ParseSingleExample's, feature lists as [steps, ...]
 *                                         dense tensors (missing: an error, or empty when
 *                                         listed as assumed empty) and (step, j) sparse ones
 *     DecodeCSV                           text lines -> one tensor per column (defaults,
 *                                         quotes, na_value, select_cols)
 *     ImageSummary                        a Summary with PNG images (uint8 as is, floats
 *                                         scaled to 0..255 as TF does)
 *
 * Queues, DecodeRaw and RandomShuffle are in the ops layer (ops_queue.h). Meta graph import
 * in pstrain's programs registers these; a program that builds such nodes itself calls
 * pst_io_ops_init() first.
 */
#ifndef PST_IO_OPS_H
#define PST_IO_OPS_H

/* Registers the built-in ops (pst_ops_init) and these; idempotent and thread-safe. */
void pst_io_ops_init(void);

#endif
