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

#endif
