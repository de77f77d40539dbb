/*
 * fashion_mnist — the Fashion-MNIST data set (Debian's dataset-fashion-mnist) as tensors.
 *
 *     pst_tensor *images, *labels;
 *     pst_fashion_mnist_load(NULL, "train", &images, &labels, &st);  // float [N,28,28,1] in [0,1],
 *                                                                     // int64 [N]
 */
#ifndef PST_FASHION_MNIST_H
#define PST_FASHION_MNIST_H

#include "status.h"
#include "tensor.h"

#define PST_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Loads "train" or "t10k"/"test" from dir (NULL: PST_FASHION_MNIST_DIR). A missing file's error
 * names the path and the Debian package dataset-fashion-mnist. */
int pst_fashion_mnist_load(const char *dir, const char *which, pst_tensor **images,
                           pst_tensor **labels, pst_status *st);

/* The same with the images kept as uint8 [N, 28, 28, 1] (a quarter of the memory); scale them
 * by 1/255 in the graph. */
int pst_fashion_mnist_load_raw(const char *dir, const char *which, pst_tensor **images,
                               pst_tensor **labels, pst_status *st);

/* Where the trainer reads its examples from (--data-format). */
typedef enum pst_data_format { PST_DATA_IDX = 0, PST_DATA_TFRECORD } pst_data_format;
/* "idx" or "tfrecord"; -1 for anything else. */
int pst_data_format_parse(const char *s);

/* pst_fashion_mnist_load_raw for either format. PST_DATA_TFRECORD reads
 * dir/<which>.tfrecord, .tfrecord.gz or .tfrecord.zlib (the first that exists: what
 * `pstrain data convert` writes; TensorFlow's TFRecordWriter writes the same) of
 * tf.train.Example records holding "image" (784 raw bytes, or 784 floats in [0, 1]) and "label"
 * (one int64). Errors name the file, the record and the feature. */
int pst_fashion_mnist_load_format(const char *dir, const char *which, pst_data_format format,
                                  pst_tensor **images, pst_tensor **labels, pst_status *st);

#endif
