/* fashion_mnist: the Fashion-MNIST IDX files as tensors (see fashion_mnist.h). */
#include "fashion_mnist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "idx.h"

static int load(const char *dir, const char *which, int as_float, pst_tensor **images,
                pst_tensor **labels, pst_status *st) {
    char ip[4096], lp[4096];
    const char *base = dir ? dir : PST_FASHION_MNIST_DIR;
    const char *w = strcmp(which, "test") == 0 ? "t10k" : which;
    *images = *labels = NULL;
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", base, w);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", base, w);
    pst_tensor *ri = NULL, *rl = NULL;
    int rc = pst_idx_read(ip, &ri, st);
    if (rc == 0) rc = pst_idx_read(lp, &rl, st);
    if (rc == PST_E_NOT_FOUND)
        pst_status_prefix(st, "Fashion-MNIST is missing (install the Debian package "
                              "dataset-fashion-mnist): ");
    if (rc < 0) goto fail;
    if (ri->shape.rank != 3 || rl->shape.rank != 1 || ri->shape.dims[0] != rl->shape.dims[0]) {
        rc = pst_status_set(st, PST_E_DATA_LOSS, "%s and %s do not hold matching images and labels",
                            ip, lp);
        goto fail;
    }
    int64_t n = ri->shape.dims[0];
    pst_shape is = pst_shape_4d(n, ri->shape.dims[1], ri->shape.dims[2], 1);
    pst_tensor *im = as_float ? pst_tensor_new(PST_FLOAT, is, st) : pst_tensor_reshape_view(ri, is, st);
    pst_tensor *lb = pst_tensor_new(PST_INT64, pst_shape_1d(n), st);
    if (im == NULL || lb == NULL) {
        pst_tensor_unref(im);
        pst_tensor_unref(lb);
        rc = PST_E_EXHAUSTED;
        goto fail;
    }
    if (as_float) {
        const uint8_t *src = pst_tensor_u8(ri);
        float *dst = pst_tensor_f32(im);
        for (int64_t i = 0; i < ri->n; i++) dst[i] = (float)src[i] * (1.0f / 255.0f);
    }
    for (int64_t i = 0; i < n; i++) pst_tensor_i64(lb)[i] = pst_tensor_u8(rl)[i];
    *images = im;
    *labels = lb;
fail:
    pst_tensor_unref(ri);
    pst_tensor_unref(rl);
    return rc;
}

int pst_fashion_mnist_load(const char *dir, const char *which, pst_tensor **images,
                           pst_tensor **labels, pst_status *st) {
    return load(dir, which, 1, images, labels, st);
}

int pst_fashion_mnist_load_raw(const char *dir, const char *which, pst_tensor **images,
                               pst_tensor **labels, pst_status *st) {
    return load(dir, which, 0, images, labels, st);
}
